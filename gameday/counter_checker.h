// The counter check: the UpdateItem ADDs the workload sends to its counters are neither lost nor
// invented.
//
// The workload (gameday/workload.h) sends UpdateItem "ADD n :one" to counter keys "counter-<i>"
// that no other operation of the run touches, and after the run strong-reads every counter it
// updated. API reference, UpdateItem: ADD adds the number to a number attribute, and on an
// attribute (or item) that does not exist yet starts from 0. So a counter's value is the number
// of ADDs the service applied to it, and what the clients saw bounds it:
// - at least the ADD attempts acknowledged (kOk) before the final read began: each of them was
//   applied, once;
// - at most the ADD attempts sent before the final read completed. An attempt whose answer never
//   came, or came as an error, may or may not have been applied, and the client's retry of it is
//   another request that may be applied too: ADD is not idempotent, so a retry after an unknown
//   outcome can add twice, as with DynamoDB's own SDKs, which retry timeouts and 5xx errors. The
//   bound is therefore attempts, not operations.
// A counter's final read is the last to complete of the successful strong reads invoked at or
// after `verification_start` (as for the durability checker, gameday/storage_checkers.h). A
// counter with ADD attempts and no final read is unverified and fails the check: a claim about a
// counter needs its read. A value that is not a non-negative integer fails it too.
//
// It stands outside the system (CONVENTIONS.md rule 10): a tap of the HistoryRecorder
// (model::ClientObserver), stamping what it sees with true simulated time. It keeps one small
// record per ADD attempt and per counter read, judged once at the end.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/client.h"
#include "sim/simulation.h"

namespace dynasim::gameday {

class CounterChecker final : public model::ClientObserver {
 public:
  // REQUIRES: the simulation outlives the checker.
  explicit CounterChecker(const sim::Simulation* simulation);

  // model::ClientObserver. The counters' reads are GetItems (register-shaped hooks); the ADDs
  // are UpdateItems (the on_api_* hooks). Everything on other keys is ignored.
  void on_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                        const model::ClientRequest& request, sim::Address replica) override;
  void on_attempt_end(uint64_t client_id, uint64_t request_id, model::StorageStatus status,
                      bool timed_out, const std::optional<model::Item>& item) override;
  void on_api_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                            const model::ClientRequest& request, sim::Address replica) override;
  void on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                          const model::StorageResponse* response) override;

  // Judges every counter. Call once, after the run.
  void finish(sim::SimTime verification_start);

  bool passed() const { return violations_ == 0 && counters_unverified_ == 0; }
  const std::string& first_violation() const { return first_violation_; }
  uint64_t adds_attempted() const { return adds_attempted_; }
  uint64_t adds_acknowledged() const { return adds_acknowledged_; }
  // {passed, counters_checked, counters_unverified, adds_attempted, adds_acknowledged,
  //  adds_timed_out, adds_failed, violations, first_violation}
  nlohmann::json report() const;

 private:
  struct Add {
    int64_t invoke_ns = 0;
    int64_t complete_ns = INT64_MAX;  // INT64_MAX until an answer (or a timeout) ends it
    bool acknowledged = false;
  };
  struct Read {
    int64_t invoke_ns = 0;
    int64_t complete_ns = 0;
    std::optional<uint64_t> value;  // nullopt: the item held no usable count
  };
  struct Counter {
    std::vector<Add> adds;
    std::vector<Read> reads;  // successful strong reads only
  };
  // An attempt in flight on a counter: an ADD (its index in the counter's adds) or a read.
  struct Open {
    std::string key;
    bool add = false;
    size_t add_index = 0;
    int64_t invoke_ns = 0;
  };

  void check_counter(const std::string& key, const Counter& counter,
                     sim::SimTime verification_start);
  void violation(std::string what);
  int64_t now_ns() const { return simulation_->now().ns; }

  const sim::Simulation* simulation_;
  std::map<std::string, Counter> counters_;             // by key_string()
  std::map<std::pair<uint64_t, uint64_t>, Open> open_;  // by (client, request id)
  uint64_t counters_checked_ = 0;
  uint64_t counters_unverified_ = 0;
  uint64_t adds_attempted_ = 0;
  uint64_t adds_acknowledged_ = 0;
  uint64_t adds_timed_out_ = 0;
  uint64_t adds_failed_ = 0;  // answered with an error status
  uint64_t violations_ = 0;
  std::string first_violation_;
  bool finished_ = false;
};

}  // namespace dynasim::gameday
