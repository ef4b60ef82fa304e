// A game-day workload: a client process that sends a mix of reads and writes to the storage layer
// through a model::DirectClient, with open-loop Poisson arrivals, and reports every attempt to the
// history recorder (gameday/history.h) for the linearizability, durability and availability
// checks.
//
// Open loop, because real DynamoDB traffic does not slow down when the service does: requests
// keep arriving at their rate whatever the latency, which is what makes an outage visible as
// failed or late operations (P22 section 1: predictable performance at any load). Arrivals are a
// Poisson process drawn from the process's own random stream:
// - without phases, homogeneous at operations_per_second (exponential gaps);
// - with phases (docs/scenarios.md, "Rate shapes and phases"), non-homogeneous: each phase has a
//   RateShape (gameday/rate_shape.h) of the whole table's rate, of which this process issues
//   `rate_share`; candidates come at the phase's maximum rate and each is kept with probability
//   rate(t) / maximum (thinning, exact). A candidate past its phase's end is dropped and drawing
//   restarts at the next phase's start with its maximum (the exponential is memoryless, so this
//   is exact too). Phase times are the process's local time since it started. After the last
//   phase the process issues nothing more.
// Items have the shape the history needs: a number attribute "ver" unique per write (client_id
// << 40 | sequence) and a Payload attribute "data" standing for item_size_bytes of bytes, or a
// size drawn from item_sizes for each write.
//
// Beyond the register operations, the mix may send the data-plane operations the register model
// cannot express (model/client.h: they reach the observer's on_api_* hooks):
// - update: UpdateItem "ADD n :one" on a counter key "counter-<i>" (i < counter_count), a key set
//   apart from the register keys, so the register checkers never see a read-modify-write. The
//   counter checker (gameday/counter_checker.h) judges the counters.
// - query: a strongly consistent Query of one register key (equality on the partition key; the
//   game day's items have no sort key, so it matches at most that one item) with Limit
//   query_page_limit, following LastEvaluatedKey for up to query_max_pages pages. With Limit 1 a
//   query that finds the item is cut there and reads a second, empty page. Its first page is a
//   strong read of the key, which the history records as one (gameday/history.h).
// - scan: one page (Limit scan_page_limit) of one segment of a parallel Scan with
//   scan_total_segments segments, over the part of the segment one group owns (a group drawn
//   among those the segment meets; model/api.h, segment_hash_range). Every other scan of a process
//   is strongly consistent, the others eventually. Its items are counted, not checked.
// With the three weights 0 the draws are exactly those of a mix without them.
//
// After stop(), verify_all() strong-reads every key this process ever wrote, a few at a time,
// through the same client and so into the same history: the durability checker takes the final
// state of each key from those reads. Then it strong-reads every counter it sent an ADD to (a
// GetItem, which the history keeps out of the register histories): the counter checker's final
// values.
//
// REQUIRES: the host of a workload process is never powered off or crashed (a rebuilt process
// would restart its sequence and repeat "ver" values); scenarios place workloads on client hosts
// outside the fault timeline.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "gameday/history.h"
#include "gameday/rate_shape.h"
#include "model/client.h"
#include "sim/env.h"
#include "sim/random.h"

namespace dynasim::gameday {

// Relative weights of each kind of operation; only their ratios matter. The defaults are our
// assumption: a read-heavy mix with some of every kind the checkers care about.
struct OperationMix {
  uint32_t put = 25;
  uint32_t get_strong = 30;
  uint32_t get_eventual = 20;
  uint32_t put_if_version = 10;  // read-modify-write on the last "ver" read for the key
  uint32_t put_if_absent = 5;
  uint32_t delete_item = 10;
  uint32_t update = 0;  // UpdateItem ADD on a counter key
  uint32_t query = 0;   // Query of one register key, paged
  uint32_t scan = 0;    // one page of a parallel Scan's segment in one group
  uint32_t total() const {
    return put + get_strong + get_eventual + put_if_version + put_if_absent + delete_item + update +
           query + scan;
  }
};
inline constexpr size_t kOperationKinds = 9;  // OperationMix's fields

// Which key an operation goes to (docs/scenarios.md, "Key distributions"):
// - kUniform: every key equally likely;
// - kZipf: key i (from 0) with probability proportional to 1 / (i + 1)^zipf_exponent, so key-0 is
//   the hottest (YCSB's skewed workloads use 0.99);
// - kHotSet: a fraction `hot_traffic` of the operations goes uniformly to the first
//   `hot_keys_fraction` of the keys, the rest uniformly to the others;
// - kSequential: each client walks the keys in order, from a starting key of its own, the access
//   pattern of a time series written in key order (P22 section 4.4 names it: no split helps it).
struct KeyDistribution {
  enum class Kind : uint8_t { kUniform, kZipf, kHotSet, kSequential };
  Kind kind = Kind::kUniform;
  double zipf_exponent = 0.99;
  double hot_keys_fraction = 0.01;
  double hot_traffic = 0.9;
};
const char* to_string(KeyDistribution::Kind kind);

// Draws key indexes in [0, keys) from a KeyDistribution, keeping what a distribution needs
// between draws (the Zipf table, a sequential walk's position). The workload process and the
// capacity planner (gameday/plan.h) draw keys through it.
class KeyPicker {
 public:
  // `walk_seed` places a sequential walk's start: key 1 + splitmix64(walk_seed) % keys, so that
  // clients with different seeds do not write the same keys in step. REQUIRES: keys > 0.
  KeyPicker(uint64_t keys, uint64_t walk_seed) : keys_(keys), walk_seed_(walk_seed) {}
  uint64_t draw(const KeyDistribution& distribution, sim::Random& random);

 private:
  uint64_t keys_;
  uint64_t walk_seed_;
  std::optional<sim::ZipfDistribution> zipf_;  // kZipf only (rebuilt when the exponent changes)
  uint64_t next_sequential_key_ = 0;           // kSequential only
};

// One phase of a phased workload: its length, the whole table's rate over it, and the mix and
// key distribution of its operations.
struct WorkloadPhase {
  sim::Duration duration = sim::Duration(INT64_MAX);  // INT64_MAX: until the workload stops
  RateShape rate;
  OperationMix mix;
  KeyDistribution keys;
};

struct WorkloadOptions {
  double operations_per_second = 100;  // per process, without phases; mean of the arrivals
  // When not empty, the phases replace operations_per_second, mix and keys (see above).
  std::vector<WorkloadPhase> phases;
  double rate_share = 1;      // with phases: this process's share of each phase's rate, in (0, 1]
  uint64_t key_count = 1000;  // keys "key-0" .. "key-<key_count - 1>"
  KeyDistribution keys;       // which key each operation draws
  uint64_t item_size_bytes = 1024;  // the "data" payload of each item, unless item_sizes
  // When set, each write draws its payload size from it (from the process's random stream).
  std::optional<ItemSizeDistribution> item_sizes;
  OperationMix mix;
  // Counter keys "counter-0" .. "counter-<counter_count - 1>", which the update operations ADD to.
  uint64_t counter_count = 8;
  // Query and Scan pages (our assumptions: small, so that paging and LastEvaluatedKey are
  // exercised; DynamoDB's own page bound is 1 MB, model::kMaxPageBytes).
  uint32_t query_page_limit = 1;
  uint32_t query_max_pages = 2;
  uint32_t scan_page_limit = kWorkloadScanPageItems;
  uint32_t scan_total_segments = 4;
  model::ClientOptions client;
  // Operations in flight at once; an arrival beyond is refused and counted (the client's own
  // limit, not the service's failure, so it is kept out of availability).
  uint32_t max_outstanding = 256;
  uint32_t verify_parallelism = 8;  // verification reads in flight at once
  uint32_t verify_rounds = 3;       // tries per key before it is left unverified
  // Planted bug for RateShapeRunTest.PlantedThinningThatKeepsEveryCandidateIsCaught: every
  // candidate arrival is kept, so each phase runs at its maximum rate. Never set outside tests.
  bool plant_keep_every_candidate = false;
};

class WorkloadProcess final : public sim::Process {
 public:
  // Timer cookie of the next arrival; the client's cookies are at DirectClient::kTimerCookieBase
  // and above.
  static constexpr uint64_t kArrivalCookie = 1;

  // REQUIRES: placement outlives the process; client_id < 2^23 (so "ver" fits a signed 64-bit
  // number). `recorder` may be null (nothing is recorded then).
  WorkloadProcess(WorkloadOptions options, const model::Placement* placement, uint64_t client_id,
                  HistoryRecorder* recorder);

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  // Stops issuing new operations; those in flight finish. Callable from outside the run.
  void stop() { stopped_ = true; }
  // Starts the verification pass (stops the workload first). REQUIRES: the process started.
  void verify_all();
  // True once every written key was read back successfully or ran out of tries.
  bool verification_done() const {
    return verifying_ && verify_queue_.empty() && verify_in_flight_ == 0;
  }

  struct Stats {
    uint64_t arrivals = 0;
    uint64_t thinned = 0;  // candidate arrivals dropped by thinning (phases only)
    uint64_t submitted = 0;
    uint64_t refused = 0;  // arrivals beyond max_outstanding
    uint64_t succeeded = 0;
    uint64_t failed = 0;
    uint64_t by_kind[kOperationKinds] = {};  // submitted, in the order of OperationMix's fields
    uint64_t keys_written = 0;
    uint64_t counters_updated = 0;       // distinct counters sent an ADD
    uint64_t query_items = 0;            // items the succeeded queries returned
    uint64_t scan_items = 0;             // items the succeeded scans returned
    uint64_t counters_verified = 0;      // counters read back in the verification pass
    uint64_t counters_unverified = 0;    // ran out of verify_rounds
    uint64_t payload_bytes_written = 0;  // sum of the "data" sizes of the puts submitted
    uint64_t verify_reads = 0;
    uint64_t keys_verified = 0;
    uint64_t keys_unverified = 0;  // ran out of verify_rounds
    uint64_t verify_throttled = 0;  // verification reads whose every attempt was throttled
  };
  const Stats& stats() const { return stats_; }
  const model::DirectClient& client() const { return client_; }
  // With phases: the index of the phase the next arrival falls in (phases.size() after the last).
  size_t phase_index() const { return phase_index_; }

  // The key index of the next operation, drawn from the options' distribution.
  uint64_t draw_key(sim::Env& env);

 private:
  enum class OperationKind {
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
  // What a verification read reads: a register key or a counter.
  struct VerifyTarget {
    uint64_t index = 0;
    bool counter = false;
    uint32_t tries = 0;
  };

  void schedule_arrival(sim::Env& env);
  // With phases: draws the next candidate after `from` (time since start) and sets its timer.
  void schedule_candidate(sim::Env& env, sim::Duration from);
  void arrive(sim::Env& env);
  const OperationMix& current_mix() const;
  const KeyDistribution& current_keys() const;
  OperationKind draw_kind(sim::Env& env) const;
  // The key index of an operation of `kind`: a register key, a counter (kUpdate), or a scan's
  // segment (kScan; its group is drawn when the request is built).
  uint64_t draw_target(sim::Env& env, OperationKind kind);
  model::ClientRequest build_request(sim::Env& env, OperationKind kind, uint64_t key_index);
  void build_scan(sim::Env& env, uint64_t segment, model::ClientRequest* request);
  model::Item make_item(const model::PrimaryKey& key);
  void on_done(uint64_t key_index, const model::ClientRequest& request,
               const model::ClientResult& result, sim::SimTime started_local);
  void pump_verification();

  WorkloadOptions options_;
  uint64_t client_id_;
  HistoryRecorder* recorder_;
  model::DirectClient client_;
  sim::Env* env_ = nullptr;  // the slot's Env, stable for this process's life
  bool stopped_ = false;
  uint64_t next_sequence_ = 1;
  // The last "ver" this process saw on each key (read or written), for put_if_version.
  std::map<uint64_t, uint64_t> last_version_;
  std::set<uint64_t> written_keys_;
  std::set<uint64_t> updated_counters_;
  uint64_t scans_sent_ = 0;  // every other scan is strongly consistent
  const model::Placement* placement_;
  bool verifying_ = false;
  std::deque<VerifyTarget> verify_queue_;
  uint32_t verify_in_flight_ = 0;
  Stats stats_;
  KeyPicker key_picker_;
  // With phases: the local time at start, the phase of the next candidate, when it began (since
  // start), each phase's per-process maximum rate, and the next candidate's time (since start).
  sim::SimTime start_local_;
  size_t phase_index_ = 0;
  size_t arrival_phase_ = 0;  // the phase of the arrival being handled (its mix and keys)
  sim::Duration phase_start_{0};
  std::vector<double> phase_max_per_second_;
  sim::Duration next_candidate_{0};
};

model::PrimaryKey workload_key(uint64_t key_index);
// "counter-<index>" (gameday/history.h, kCounterKeyPrefix).
model::PrimaryKey counter_key(uint64_t index);

}  // namespace dynasim::gameday
