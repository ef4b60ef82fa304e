// The probe: a small durable-log process that exercises the simulated world until the service
// model exists. Used by the world-level scenarios and by the tests of sim/.
//
// Each probe appends fixed-size records to its disk, one sector per record, and acknowledges a
// record only after fsync returned (unless the planted bug `ack_before_fsync` is set). After every
// boot it recovers by reading its log from the disk, record by record, until a record fails its
// checksum or is empty: exactly what a WAL does after a power-off. Every record carries a
// checksum over its index, its sector address and its payload, so a torn or misdirected write is
// caught. Probes also ping each other, so the network's latency, partitions and clogs show up in
// the metrics.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "sim/env.h"

namespace dynasim::gameday {

struct ProbeOptions {
  sim::Duration append_interval = sim::milliseconds(50);
  sim::Duration ping_interval = sim::milliseconds(200);
  sim::Duration ping_timeout = sim::seconds(1);
  uint64_t max_records = 1'000'000;
  uint32_t recovery_batch_sectors = 64;
  bool ack_before_fsync = false;  // a planted bug: acknowledge before the record is durable
  std::vector<sim::Address> peers;
};

// What the durability checker sees. Calls come from inside the run; observers must not change it.
class ProbeObserver {
 public:
  virtual void on_acknowledged(sim::Address probe, uint64_t record_index) = 0;
  virtual void on_recovered(sim::Address probe, uint64_t records_recovered) = 0;

 protected:
  ~ProbeObserver() = default;
};

class Probe final : public sim::Process {
 public:
  static constexpr uint32_t kPing = 1;
  static constexpr uint32_t kPong = 2;

  Probe(ProbeOptions options, ProbeObserver* observer);

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  // A record's sector: header (index, length, checksum) and a payload drawn from the stream.
  static std::vector<uint8_t> encode_record(uint64_t index, uint64_t sector, uint32_t sector_size,
                                            sim::Random& random);
  // True if `bytes` hold a valid record with this index at this sector.
  static bool record_valid(const std::vector<uint8_t>& bytes, size_t offset, uint32_t sector_size,
                           uint64_t index, uint64_t sector);

 private:
  enum TimerCookie : uint64_t { kAppendTimer = 1, kPingTimer = 2 };
  void recover_from(sim::Env& env, uint64_t next_index);
  void append(sim::Env& env);
  void acknowledge(sim::Address self, uint64_t index);
  void send_ping(sim::Env& env);

  ProbeOptions options_;
  ProbeObserver* observer_;
  bool recovered_ = false;
  bool append_in_flight_ = false;
  uint64_t next_index_ = 0;
  uint64_t next_ping_id_ = 0;
  std::vector<std::pair<uint64_t, sim::SimTime>> pings_in_flight_;  // id, local send time
};

}  // namespace dynasim::gameday
