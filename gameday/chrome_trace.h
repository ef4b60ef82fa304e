// A trace of one window of a run in the Chrome Trace Event format (JSON object form), which
// Perfetto (ui.perfetto.dev) and chrome://tracing open (docs/scenarios.md, "A trace").
//
// What it shows, for events whose true time falls in [from, to]:
// - every kernel event the simulation executes (message deliveries, process timers, disk
//   completions, object-store replies, faults), as an instant on the track of the host (or disk)
//   it acts on, named by its event kind;
// - every client attempt as an async slice from invocation to answer or timeout, on the client's
//   track, named by operation and key, with the replica it went to and the status it got;
// - the faults the injector applied, as global instants.
// Hosts are processes in the trace (pid = host id + 1) named after the topology; disks get
// pid 1'000'000 + disk id; the clients are pid 0.
//
// It stands outside the system: it watches through sim::EventObserver and
// model::ClientObserver, schedules nothing and changes nothing, so the trace_hash is the same with
// it. Events are written to the stream as they happen, so memory stays bounded by the attempts in
// flight; the window bounds the file (a busy service scenario executes a few hundred thousand
// events per simulated second, about 100 bytes each).
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <utility>

#include "model/client.h"
#include "sim/simulation.h"
#include "sim/world.h"

namespace dynasim::gameday {

class ChromeTraceWriter final : public sim::EventObserver, public model::ClientObserver {
 public:
  // REQUIRES: from <= to; the world and `out` outlive the writer.
  ChromeTraceWriter(sim::World* world, std::ostream* out, sim::SimTime from, sim::SimTime to);

  // sim::EventObserver
  void on_executed(const sim::Event& event, uint64_t trace_hash_after) override;

  // model::ClientObserver
  void on_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                        const model::ClientRequest& request, sim::Address replica) override;
  void on_attempt_end(uint64_t client_id, uint64_t request_id, model::StorageStatus status,
                      bool timed_out, const std::optional<model::Item>& item) override;
  // UpdateItem, Query and Scan attempts, drawn as the others are.
  void on_api_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                            const model::ClientRequest& request, sim::Address replica) override;
  void on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                          const model::StorageResponse* response) override;

  // A fault was applied at true time `at` (from the injector's log).
  void fault(sim::SimTime at, const std::string& description);

  // Closes the JSON document: attempts still open are ended at the window's end. Call once.
  void finish();

  uint64_t events_written() const { return events_written_; }

 private:
  bool in_window(sim::SimTime time) const { return time >= from_ && time <= to_; }
  void begin_event();
  void write_process_names();
  sim::SimTime now() const;

  struct OpenAttempt {
    uint64_t id = 0;  // the async slice's id
    std::string name;
  };

  sim::World* world_;
  std::ostream* out_;
  sim::SimTime from_;
  sim::SimTime to_;
  bool names_written_ = false;
  bool finished_ = false;
  uint64_t events_written_ = 0;
  uint64_t next_slice_id_ = 1;
  std::map<std::pair<uint64_t, uint64_t>, OpenAttempt> open_;  // by (client, request id)
};

}  // namespace dynasim::gameday
