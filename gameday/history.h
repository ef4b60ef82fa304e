// The client history of a game day: every attempt the direct clients made, stamped with true
// simulated time, turned into per-key register operations for the linearizability and durability
// checkers, plus per-window availability as the clients saw it.
//
// It stands outside the system (CONVENTIONS.md rule 10): it watches through
// model::ClientObserver and never changes the run. It reads true time from the simulation, which
// no model code may see, because a history is judged on one timeline.
//
// The register of a key is the workload's number attribute "ver" (gameday/workload.h): every
// write puts a value unique in the run, so a read's "ver" names the write it saw. Mapping:
// - a put writes its item's "ver"; a delete is kDelete; a strong read reads "ver" (nullopt when
//   no item; an item without "ver" reads as kForeignValue, which no write ever puts);
// - a put conditioned on "ver" = X is a conditional write expecting the value X (optimistic
//   locking); on attribute_not_exists("ver") one expecting no item; on attribute_exists("ver")
//   one expecting an item;
// - outcomes: kOk (and kNotFound for reads) -> kOk; kConditionFailed -> kConditionFailed; no
//   answer (the attempt timed out) -> kUnknown with complete_ns = INT64_MAX, since the write may
//   still take effect at any later moment (P22 section 2: the client cannot tell);
// - a write answered kNotLeader, kNotServing, kBusy, kThrottled, kRecovering, kUnhealthy,
//   kValidation or kNoSuchGroup was surely not applied (the replica did not propose it), so it is
//   no operation on the register and is dropped; a read that failed or timed out observed nothing
//   and is dropped too. This relies on a replica answering those statuses only for requests it
//   never proposed: a leader that proposed a write and lost leadership must stay silent.
// - eventually consistent reads are counted and dumped but kept out of the register histories:
//   they are allowed to be stale (P22 section 3), so they are not linearizable by design.
//
// Each attempt is its own register operation: a retried write is a second request that may also
// apply, exactly as the service sees it.
//
// Operations the register model does not express (model/client.h: UpdateItem, Query and Scan,
// reported through the on_api_* hooks) and every operation on a counter key ("counter-<n>", the
// workload's UpdateItem targets, gameday/workload.h) stay out of the register histories: they are
// counted (counts_json, requests_json), timed (latency), and passed on to the taps, which is where
// the counter checker (gameday/counter_checker.h) sees them. One exception: the first page of a
// strongly consistent Query of a register key, without a filter, is a strong read of that key
// (the game day's items have no sort key, so the Query matches at most the one item; none means
// no item) and is recorded as one. More than one item in its answer is an impossible answer. Its
// later pages (after a LastEvaluatedKey) read past the item and are not reads of it.
//
// Latency as the clients saw it, in true time, over answered attempts and over whole operations
// (docs/scenarios.md, `latency_ms` and `operation_latency_ms`). The attempts are not stored
// twice: strong reads and writes are read back from the register histories, which keep each
// attempt's invoke and completion; only eventual reads, which stay out of those, keep their
// latency here. Whole operations keep one latency each.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gameday/linearizability.h"
#include "model/api.h"
#include "model/capacity_mode.h"
#include "model/client.h"
#include "sim/simulation.h"

namespace dynasim::gameday {

inline constexpr const char* kVersionAttribute = "ver";
// What a read of an item without a usable "ver" reads: no write puts it (the workload's values
// are client_id << 40 | sequence with client ids far below 2^23).
inline constexpr uint64_t kForeignValue = UINT64_MAX;
// The workload's counters (gameday/workload.h): keys "counter-<n>" holding the number attribute
// "n" that UpdateItem ADDs to. No register operation goes to them.
inline constexpr const char* kCounterKeyPrefix = "counter-";
inline constexpr const char* kCounterAttribute = "n";
// True for a key_string() of a counter key.
bool is_counter_key(const std::string& key);

// A printable, unambiguous form of a key: the partition key, then "|" and the sort key if any.
// Strings as they are, numbers in canonical decimal, binaries as "0x" and hex.
std::string key_string(const model::PrimaryKey& key);
// The non-negative integer an attribute holds, if it is a number that fits in 64 bits.
std::optional<uint64_t> integer_value(const model::AttributeValue& value);

enum class OperationEnd { kSucceeded, kFailed };

// The kinds of operation the workload issues (gameday/workload.h, OperationMix), told apart by
// the request's shape, as the service sees them. A put_if_version the workload sends before its
// client has seen any "ver" for the key is a put conditioned on attribute_not_exists("ver"), the
// same request as a put_if_absent, and is counted as one.
enum class LatencyKind : uint8_t {
  kPut,
  kGetStrong,
  kGetEventual,
  kPutIfVersion,
  kPutIfAbsent,
  kDelete,
  kUpdate,
  kQuery,
  kScan,
};
inline constexpr size_t kLatencyKindCount = 9;
// The workload mix's names: "put", "get_strong", "get_eventual", "put_if_version",
// "put_if_absent", "delete", "update", "query", "scan".
const char* to_string(LatencyKind kind);
// nullopt for a shape the workload never sends (a put conditioned on attribute_exists). UpdateItem,
// Query and Scan are kUpdate, kQuery and kScan whatever their fields.
std::optional<LatencyKind> latency_kind(const model::ClientRequest& request);

// Latency figures of a set of samples, in integer nanoseconds. Percentiles are nearest-rank: the
// p-th is the smallest sample with at least p% of the samples at or below it, i.e. the sample of
// rank ceil(p/100 * count) (1-based) in ascending order. With 100 samples p99 is the 99th
// smallest, not the largest.
struct LatencySummary {
  uint64_t count = 0;
  int64_t p50_ns = 0;
  int64_t p99_ns = 0;
  int64_t p999_ns = 0;
  int64_t max_ns = 0;
};
// Sorts `samples_ns` in place. An empty set gives count 0 and zeros.
LatencySummary summarize_latency(std::vector<int64_t>& samples_ns);
// The index (from 0) of the sample of rank ceil(per_ten_thousand / 10000 * count): the nearest-rank
// percentile, computed in integers. REQUIRES: count > 0; 0 < per_ten_thousand <= 10000.
size_t nearest_rank_index(size_t count, uint32_t per_ten_thousand);
// The sample of that rank. REQUIRES: sorted_ns ascending and not empty.
int64_t nearest_rank(const std::vector<int64_t>& sorted_ns, uint32_t per_ten_thousand);
// {"count", "p50", "p99", "p999", "max"}, the four in milliseconds (null when count is 0).
nlohmann::json latency_summary_json(const LatencySummary& summary);

// A write the service acknowledged (kOk): a put, a conditional put that succeeded, or a delete.
struct AcknowledgedWrite {
  std::string key;
  RegisterOperation::Kind kind = RegisterOperation::Kind::kWrite;
  uint64_t value = 0;  // puts
  int64_t invoke_ns = 0;
  int64_t complete_ns = 0;
  uint64_t client = 0;
  uint64_t request_id = 0;
};

struct HistoryCounts {
  uint64_t attempts_started = 0;
  uint64_t attempts_ended = 0;
  uint64_t attempts_timed_out = 0;
  uint64_t reads_recorded = 0;    // strong reads in the register histories
  uint64_t writes_recorded = 0;   // puts, conditional puts and deletes, any outcome kept
  uint64_t unknown_outcomes = 0;  // writes recorded as kUnknown
  uint64_t eventual_reads = 0;    // ended with an answer; not in the register histories
  uint64_t writes_dropped = 0;    // answered with a status that proves they did not apply
  uint64_t reads_dropped = 0;     // failed or timed out
  // Answers the protocol cannot give (an unconditional write "condition failed", an end for an
  // attempt that never started or already ended). Counted, and they fail the history.
  uint64_t impossible_answers = 0;
  uint64_t operations_succeeded = 0;  // from record_operation_end
  uint64_t operations_failed = 0;
  // Every ended attempt, by how it ended: answered (kOk, kNotFound, kConditionFailed), refused
  // by admission control (kThrottled), or anything else (other statuses, timeouts).
  uint64_t attempts_answered = 0;
  uint64_t attempts_throttled = 0;
  uint64_t attempts_failed = 0;
  // Attempts kept out of the register histories: UpdateItem, Query (but the strong first pages
  // recorded as reads) and Scan, and the reads of counter keys.
  uint64_t attempts_outside_registers = 0;
  uint64_t query_reads_recorded = 0;  // strong Query first pages recorded as strong reads
};

class HistoryRecorder final : public model::ClientObserver {
 public:
  // REQUIRES: the simulation outlives the recorder.
  explicit HistoryRecorder(const sim::Simulation* simulation);

  // model::ClientObserver
  void on_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                        const model::ClientRequest& request, sim::Address replica) override;
  void on_attempt_end(uint64_t client_id, uint64_t request_id, model::StorageStatus status,
                      bool timed_out, const std::optional<model::Item>& item) override;
  void on_operation_end(uint64_t client_id, uint64_t operation_id,
                        const model::ClientResult& result) override;
  void on_api_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                            const model::ClientRequest& request, sim::Address replica) override;
  void on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                          const model::StorageResponse* response) override;
  void on_api_operation_end(uint64_t client_id, uint64_t operation_id,
                            const model::ClientResult& result) override;

  // Attempts and operations whose first attempt was invoked at or after `end` are left out of
  // the latency figures (the game day passes the end of the workload phase, so the final
  // verification reads do not count). Without a call, everything counts.
  void measure_latency_until(sim::SimTime end) { latency_until_ns_ = end.ns; }
  // Latency of attempts the service answered (kOk, kNotFound, kConditionFailed), completion
  // minus invocation: {"<kind>": latency_summary_json, ..., "all": ...} with every LatencyKind.
  // Timed-out attempts, attempts answered with an error, and shapes the workload never sends
  // are left out.
  nlohmann::json attempt_latency_json() const;
  // The same over whole operations that succeeded: from the first attempt's invocation to the
  // end of the last, backoffs and retries included.
  nlohmann::json operation_latency_json() const;

  // A whole operation (all its attempts) ended, for availability from the client's side.
  // Availability is kept in one-second buckets of true time.
  void record_operation_end(sim::SimTime true_time, OperationEnd end);
  void record_operation_end(OperationEnd end) { record_operation_end(simulation_->now(), end); }

  // Register histories by key_string(), for check_history() and the durability checker.
  // Attempts still in flight are not in them (see pending_attempts()).
  const std::map<std::string, std::vector<RegisterOperation>>& by_key() const { return by_key_; }
  const std::vector<AcknowledgedWrite>& acknowledged_writes() const { return acknowledged_; }
  const HistoryCounts& counts() const { return counts_; }
  size_t pending_attempts() const { return pending_.size(); }
  const std::string& first_impossible_answer() const { return first_impossible_; }

  // [{start_ns, end_ns, operations, succeeded, fraction}] for each window [start, end) of true
  // time from the first to the last with an operation end; fraction is null when a window saw
  // no operation end. REQUIRES: window is a positive whole number of seconds.
  nlohmann::json availability(sim::Duration window) const;
  nlohmann::json counts_json() const;
  // {"total", "ok", "throttled", "errors", "by_error"} over every attempt the clients ended (a
  // retried operation counts each attempt): ok = answered, throttled = answered kThrottled,
  // errors = the rest (timeouts included); by_error counts the answered attempts by the error
  // DynamoDB would name (model::api_error_for under the table's capacity mode, e.g.
  // "ProvisionedThroughputExceededException", "ConditionalCheckFailedException"), timeouts as
  // "ClientTimeout" (the SDK's own, no service error).
  nlohmann::json requests_json() const;
  // The table's capacity mode, which names a throttled attempt's error. Provisioned unless set.
  void set_capacity_mode(model::CapacityMode mode) { capacity_mode_ = mode; }

  // Writes one JSON line per invocation and per completion to `out` from now on, shaped like
  // Porcupine's and Jepsen's histories: {"client", "op" (request id), "operation", "type":
  // "invoke"|"ok"|"fail"|"info", "f": "read"|"write"|"cas", "key", "value", "time_ns"}, plus
  // "status" on completions and "consistency" on reads, and "api": "Query" on the strong reads a
  // Query's first page stands for. Operations outside the register histories are not written. A
  // delete is a write of null; a cas's value is [expected, new] (expected null: no item; "*": any
  // item). Null stops the dump.
  void set_dump(std::ostream* out) { dump_ = out; }
  // Another observer that sees every attempt and operation end too, through the same hooks (the
  // on_api_* ones included), before the recorder: the run's metrics time series
  // (gameday/metrics.h), its trace (gameday/chrome_trace.h), the counter checker
  // (gameday/counter_checker.h).
  void add_tap(model::ClientObserver* tap) { taps_.push_back(tap); }

  int64_t now_ns() const { return simulation_->now().ns; }

 private:
  struct Pending {
    uint64_t operation_id = 0;
    std::string key;
    // The item's attributes are dropped: only "ver" matters. A strong Query's first page is kept
    // as the strong GetItem it stands for (query_read).
    model::ClientRequest request;
    uint64_t value = 0;  // puts: the "ver" written
    int64_t invoke_ns = 0;
    // Not a register operation (see the header): counted and timed only.
    bool outside_registers = false;
    bool query_read = false;
    std::optional<LatencyKind> kind;  // for the attempt latency of outside_registers ones
  };

  RegisterOperation make_operation(uint64_t client_id, uint64_t request_id,
                                   const Pending& pending) const;
  void record_write(uint64_t client_id, uint64_t request_id, const Pending& pending,
                    model::StorageStatus status, bool timed_out);
  void record_read(uint64_t client_id, uint64_t request_id, const Pending& pending,
                   model::StorageStatus status, bool timed_out,
                   const std::optional<model::Item>& item);
  void impossible(std::string what);
  // Counts an ended attempt under requests and history; false if it never started (or ended).
  bool count_attempt_end(uint64_t client_id, uint64_t request_id, model::StorageStatus status,
                         bool timed_out);
  // An attempt kept out of the register histories ended: only its latency is kept.
  void record_outside(const Pending& pending, model::StorageStatus status, bool timed_out);
  void end_operation(uint64_t client_id, uint64_t operation_id, const model::ClientResult& result);
  static nlohmann::json written_value_json(const Pending& pending);
  void dump_invoke(uint64_t client_id, uint64_t request_id, const Pending& pending) const;
  void dump_completion(uint64_t client_id, uint64_t request_id, const Pending& pending,
                       model::StorageStatus status, bool timed_out,
                       std::optional<uint64_t> read_value) const;

  // An operation whose first attempt started and which has not ended.
  struct OpenOperation {
    int64_t invoke_ns = 0;
    std::optional<LatencyKind> kind;
  };
  using LatencySamples = std::array<std::vector<int64_t>, kLatencyKindCount>;
  static nlohmann::json latency_section(LatencySamples samples_by_kind);

  const sim::Simulation* simulation_;
  std::map<std::pair<uint64_t, uint64_t>, Pending> pending_;  // by (client, request id)
  // By (client, operation id); bounded by the operations the clients have in flight.
  std::map<std::pair<uint64_t, uint64_t>, OpenOperation> open_operations_;
  int64_t latency_until_ns_ = INT64_MAX;
  // Answered attempts that are in no register history (eventual reads, UpdateItem, Query, Scan,
  // counter reads), by kind.
  LatencySamples latency_outside_histories_ns_;
  // The strong Query first pages in the register histories, by (client, request id): their
  // latency is in latency_outside_histories_ns_ (as kQuery), not read back from the histories.
  std::set<std::pair<uint64_t, uint64_t>> query_reads_;
  LatencySamples operation_latency_ns_;  // succeeded operations, by kind
  std::map<std::string, std::vector<RegisterOperation>> by_key_;
  std::vector<AcknowledgedWrite> acknowledged_;
  HistoryCounts counts_;
  model::CapacityMode capacity_mode_ = model::CapacityMode::kProvisioned;
  std::map<std::string, uint64_t> errors_by_name_;
  std::string first_impossible_;
  // Availability: by whole second of true time, (operations, succeeded).
  std::map<int64_t, std::pair<uint64_t, uint64_t>> availability_by_second_;
  std::ostream* dump_ = nullptr;
  std::vector<model::ClientObserver*> taps_;
};

}  // namespace dynasim::gameday
