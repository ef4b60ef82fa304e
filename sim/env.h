// The Env: the only interface model code uses to reach the world (CONVENTIONS.md rule 1).
//
// A process sees its host's drifting clock, sets timers measured on that clock, sends messages,
// uses its host's disks and the object store, draws from its own random stream and reports
// metrics. It never sees true simulated time, other hosts' state, or whether it is simulated.
// Everything here follows the process's lifetime: when its host loses power or crashes, its
// pending timers, disk completions and object-store callbacks never run.
#pragma once

#include <cstdint>
#include <string_view>

#include "sim/disk.h"
#include "sim/ids.h"
#include "sim/message.h"
#include "sim/object_store.h"
#include "sim/random.h"
#include "sim/time.h"

namespace dynasim::sim {

struct TimerHandle {
  uint32_t slot = UINT32_MAX;
  uint32_t generation = 0;
  bool valid() const { return slot != UINT32_MAX; }
};

// Counters and observations a process reports; the driver decides what to keep.
class MetricSink {
 public:
  virtual void add(std::string_view counter, int64_t delta) = 0;
  virtual void observe(std::string_view series, double value) = 0;

 protected:
  ~MetricSink() = default;
};

class Env {
 public:
  virtual Address self() const = 0;
  virtual AzId az() const = 0;
  // This host's clock reading (drifts and may jump). Not true simulated time.
  virtual SimTime local_now() const = 0;
  // Calls Process::on_timer(cookie) after `local_delay` has passed on this host's clock.
  virtual TimerHandle set_timer(Duration local_delay, uint64_t cookie) = 0;
  // False if the timer already fired or was cancelled.
  virtual bool cancel_timer(TimerHandle timer) = 0;
  virtual void send(Address to, Message message) = 0;
  virtual uint32_t disk_count() const = 0;
  virtual Disk& disk(uint32_t index) = 0;
  virtual void object_put(std::string key, ObjectBytes data,
                          InplaceFunction<void(ObjectStatus), 48> done) = 0;
  // The same put, with a checksum of the content that the store verifies before it stores
  // anything (kChecksumMismatch when the bytes do not match it).
  virtual void object_put_with_checksum(std::string key, ObjectBytes data,
                                        uint64_t content_checksum,
                                        InplaceFunction<void(ObjectStatus), 48> done) = 0;
  virtual void object_get(std::string key, InplaceFunction<void(ObjectResult), 48> done) = 0;
  virtual void object_list(
      std::string prefix,
      InplaceFunction<void(ObjectStatus, std::vector<std::string>), 48> done) = 0;
  virtual Random& random() = 0;
  virtual MetricSink& metrics() = 0;

 protected:
  ~Env() = default;
};

// A program running on a host. Built by its factory at boot; destroyed with all its volatile state
// when the host loses power or crashes; built again at restart, when it must recover from disk.
class Process {
 public:
  virtual ~Process() = default;
  virtual void on_start(Env& env) = 0;
  virtual void on_message(Env& env, Address from, const Message& message) = 0;
  virtual void on_timer(Env& env, uint64_t cookie) = 0;
};

}  // namespace dynasim::sim
