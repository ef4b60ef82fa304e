// Swarm runs: one scenario over a range of seeds, one simulation per thread at a time, with a
// report that does not depend on the number of threads, capsules for the failing seeds, shards
// that merge into the report one machine would write, and randomized knobs per seed.
//
// Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012; also how FoundationDB's and
// TigerBeetle's simulators vary their configurations per seed): with --randomize, each seed also
// draws which fault classes are on and the values of a few knobs, from a stream derived from the
// seed, so that one range of seeds covers many configurations, not one. The drawn knobs are
// written as --set overrides; `dynasim run SCENARIO --seed N --set ...` with them alone replays
// the seed (docs/reproducing-bugs.md).
//
// Threads: each seed's ScenarioRun owns its Simulation, World and checkers (gameday/run.h); the
// only per-thread state below sim/ is sim/check.h's thread-local check context (read only to
// print a failing assertion) and sim/buffer_pool.h's thread-local buffer pool (capacity only).
// Seeds are run on a boost::asio::thread_pool; each task writes its own result slot, and the
// report is built from the slots in seed order after the pool has joined.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gameday/scenario.h"

namespace dynasim::gameday {

// Seeds A..B, both ends included.
struct SeedRange {
  uint64_t first = 1;
  uint64_t last = 1;
  uint64_t count() const { return last - first + 1; }
};

// Shard K of N (1-based). A shard runs the seeds s of the range with (s - first) mod N == K - 1:
// strided, not contiguous, so that slow and fast seeds spread evenly over the machines.
struct Shard {
  uint32_t index = 1;
  uint32_t count = 1;
};

// "A..B" or a single seed "A". False on malformed text or A > B.
bool parse_seed_range(const std::string& text, SeedRange* range);
// "K/N" with 1 <= K <= N. False otherwise.
bool parse_shard(const std::string& text, Shard* shard);
// The seeds of `range` that shard `shard` runs, in increasing order.
std::vector<uint64_t> shard_seeds(const SeedRange& range, const Shard& shard);

// The build that ran: "exe:" and a 64-bit hash of this executable's bytes (/proc/self/exe), so a
// capsule can tell whether it is replayed by the same binary. Needs no git. "unknown" when the
// executable cannot be read. Computed once per call; callers keep the value.
std::string build_id();

// The scenario as a document: `scenario_file`'s JSON, the overrides applied, then parsed.
// Throws ScenarioError like load_scenario. `source` becomes ScenarioSpec::source.
ScenarioSpec spec_from_document(const nlohmann::json& document, const std::string& source,
                                const std::vector<std::string>& overrides);

// --randomize: the knobs drawn for `seed` over `document` (the scenario with the user's
// overrides applied), as --set assignments in a fixed order. Each knob draws from its own stream,
// sim::Random::derive(seed, "swarm/knobs/<knob>"), so adding a knob never changes another's
// draws. A knob whose path is a prefix of one in `user_overrides`, or has one as its prefix, is
// not drawn: what the user set stays set. The table (docs/reproducing-bugs.md):
//   faults.timeline   each entry of the file's timeline kept with probability 1/2
//   faults.random     each of the file's random fault processes kept with probability 1/2, its
//                     rate multiplied by 1/2, 1, 2 or 4; then each class of crash, power_off,
//                     isolate, clog the file has none of added with probability 1/4, region-wide,
//                     at a rate uniform in 0.5..4 per host-hour, lasting 10 s on average
//   network.loss_probability       0 with probability 1/2, else uniform in 0..0.02
//   network.duplicate_probability  0 with probability 1/2, else uniform in 0..0.01
//   network.reorder_probability    0 with probability 1/2, else uniform in 0..0.05
//   workload.mix      (service scenarios) six weights, each uniform in 0..100, put at least 1
//   probe.append_interval  (world-level scenarios) one of 5ms, 10ms, 20ms, 50ms
// Probabilities are drawn in units of 1/10,000 so their decimal text reads back exactly.
std::vector<std::string> draw_knobs(const nlohmann::json& document, uint64_t seed,
                                    const std::vector<std::string>& user_overrides);

struct SwarmOptions {
  std::string scenario_path;  // for the report and the capsules' replay lines
  SeedRange seeds;
  Shard shard;
  uint32_t jobs = 1;  // threads; results do not depend on it
  bool randomize = false;
  std::vector<std::string> overrides;  // the user's --set assignments, applied to every seed
};

struct SeedResult {
  uint64_t seed = 0;
  bool passed = false;
  std::string trace_hash;  // 16 hex digits
  uint64_t events = 0;
  double sim_seconds = 0;
  std::string failed_check;            // the first failing check's name (checks in name order)
  std::string first_failure;           // its first violation, when it reports one
  std::vector<std::string> knobs;      // the drawn knobs (--randomize), as --set assignments
  std::vector<std::string> overrides;  // everything applied: the user's, then the knobs
  std::string error;                   // a run that threw: the exception's message
};

struct SwarmProgress {
  uint64_t done = 0;
  uint64_t total = 0;
  uint64_t failed = 0;
  double wall_seconds = 0;
};

struct SwarmOutcome {
  std::vector<SeedResult> results;  // in seed order
  double wall_seconds = 0;
  double sim_seconds = 0;  // summed over the seeds
};

// Runs the seeds of options.shard over `document` (the scenario file's JSON, no overrides
// applied) on options.jobs threads. `on_progress`, if set, is called after each seed under a lock,
// from the thread that ran it. Throws ScenarioError if the scenario with the user's overrides is
// invalid (checked once before any thread starts).
SwarmOutcome run_swarm(const SwarmOptions& options, const nlohmann::json& document,
                       const std::function<void(const SwarmProgress&)>& on_progress = {});

// The report: scenario, seed range, shard, randomize, the user's overrides, the build id, and one
// entry per seed in seed order (seed, passed, trace_hash, first failure, knobs, capsule path
// relative to the output folder). No timings: the same bytes for any number of jobs.
nlohmann::json swarm_report(const SwarmOptions& options, const nlohmann::json& document,
                            const SwarmOutcome& outcome, const std::string& build);
// The bytes written to report.json.
std::string report_text(const nlohmann::json& report);

// Combines shard reports of one range into the report a single machine would write for it.
// Throws ScenarioError (path "merge") if they disagree on scenario, range, shard count, options
// or build, repeat a shard, or miss one.
nlohmann::json merge_reports(const std::vector<nlohmann::json>& reports);

// The capsule of a failing seed: everything needed to replay it, the scenario's content included.
nlohmann::json make_capsule(const SwarmOptions& options, const nlohmann::json& document,
                            const SeedResult& result, const std::string& build,
                            const std::string& capsule_path);
// The relative path of a seed's capsule in the output folder.
std::string capsule_name(uint64_t seed);

struct ReplayOutcome {
  SeedResult result;
  bool same_trace_hash = false;
  bool same_failure = false;  // same failing check and first violation
  bool same_build = false;
  bool reproduced() const { return !result.passed && same_trace_hash && same_failure; }
};

// Runs a capsule's scenario content with its seed and overrides and compares the outcome with the
// capsule's. Throws ScenarioError (path "capsule...") on a malformed capsule.
ReplayOutcome replay_capsule(const nlohmann::json& capsule, const std::string& build);

// One seed's run, the way swarm runs it (for replay and tests).
SeedResult run_seed(const nlohmann::json& document, const std::string& source, uint64_t seed,
                    const std::vector<std::string>& overrides, std::vector<std::string> knobs);

}  // namespace dynasim::gameday
