// Scrub against bit rot in whole service runs (scenarios/bit-rot-scrub.json, shortened to four
// minutes at a much higher rot rate): every flip on live data is detected or overwritten, no read
// hands a flipped bit on undetected, damaged ranges are repaired from peers, the run replays to
// the same trace, and the planted bug that never runs one replica's scrubber is caught by the
// scrub check. Then the replica comparison against a planted divergent apply.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gameday/run.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kBitRot = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/bit-rot-scrub.json";

// Rot at 10^8 flips per TB-hour for the four minutes of traffic and 30 s into the quiet heal
// minute. During the busy minutes checkpoints rewrite most rotten data pages before a scrub pass
// reaches them (so whether any live page needs a repair then is up to the seed); the flips of the
// quiet half minute stay until scrub finds them and a peer's copy repairs them.
ScenarioSpec short_bit_rot(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {"duration=4m",
                                        "heal=1m",
                                        "workload.verify_after=15s",
                                        "workload.keys=20000",
                                        "checks.availability_window=1m",
                                        "faults.timeline=["
                                        "{\"at\":\"0s\",\"kind\":\"bit_rot\",\"target\":\"az-a/"
                                        "r0\",\"value\":100000000,\"for\":\"270s\"},"
                                        "{\"at\":\"0s\",\"kind\":\"bit_rot\",\"target\":\"az-b/"
                                        "r0\",\"value\":100000000,\"for\":\"270s\"},"
                                        "{\"at\":\"0s\",\"kind\":\"bit_rot\",\"target\":\"az-c/"
                                        "r0\",\"value\":100000000,\"for\":\"270s\"}]"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_scenario(kBitRot, overrides);
}

using Outcome = ServiceRunOutcome;

Outcome run(const ScenarioSpec& spec, uint64_t seed) {
  return run_service(spec, seed);
}

TEST(ServiceRun, ScrubDetectsEveryFlipOnLiveDataAndRepairsAndReplaysIdentically) {
  const ScenarioSpec spec = short_bit_rot();
  const Outcome first = run(spec, 1);
  ASSERT_TRUE(first.passed) << first.summary["checks"].dump(2);
  const nlohmann::json& scrub = first.summary["scrub"];
  std::printf("scrub: %s\n", scrub.dump().c_str());
  EXPECT_TRUE(first.summary["checks"]["scrub"]["passed"].get<bool>());
  EXPECT_EQ(scrub["pending_on_live_data"].get<uint64_t>(), 0u);
  EXPECT_EQ(scrub["corrupted_reads_served"].get<uint64_t>(), 0u);
  EXPECT_GT(scrub["detected"].get<uint64_t>(), 0u);
  EXPECT_GT(scrub["repaired"].get<int64_t>(), 0);
  EXPECT_GT(scrub["pages_scrubbed"].get<int64_t>(), 0);
  EXPECT_EQ(scrub["corruptions_injected"].get<uint64_t>(),
            scrub["detected"].get<uint64_t>() + scrub["overwritten"].get<uint64_t>() +
                scrub["discarded"].get<uint64_t>() + scrub["pending"].get<uint64_t>());
  EXPECT_TRUE(first.summary["checks"]["replica_convergence"]["passed"].get<bool>());
  const Outcome second = run(spec, 1);
  EXPECT_EQ(first.trace_hash, second.trace_hash);
}

// The flips of the quiet half minute: a replica that scrubs finds them within a pass (seconds),
// while the one that never scrubs keeps them (with no writes, no checkpoint rewrites its pages).
TEST(ServiceRun, ScrubPlantedSkippedReplicaIsCaught) {
  const ScenarioSpec spec = short_bit_rot({"storage.plant.scrub_skip_replica=2"});
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const Outcome outcome = run(spec, seed);
    if (outcome.passed) continue;
    EXPECT_FALSE(outcome.summary["checks"]["scrub"]["passed"].get<bool>())
        << outcome.summary["checks"].dump(2);
    EXPECT_GT(outcome.summary["scrub"]["pending_on_live_data"].get<uint64_t>(), 0u);
    std::printf("planted bug caught at seed %llu: %s\n  %s\n",
                static_cast<unsigned long long>(seed),
                outcome.summary["checks"]["scrub"]["first_violation"].get<std::string>().c_str(),
                outcome.reproduce.c_str());
    return;
  }
  ADD_FAILURE() << "the scrub check missed the replica that never scrubs in seeds 1..4";
}

// The replica comparison against a planted software bug: replica 2 of every group applies every
// 40th write with an attribute the command does not carry, for the first three minutes. Page
// verification cannot see it (the pages are written with valid checksums); only comparing the
// replicas' content can. No rot, so the convergence check judges the comparison alone.
ScenarioSpec short_divergence(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {
      "duration=3m",
      "heal=90s",
      "workload.verify_after=15s",
      "workload.keys=20000",
      "checks.availability_window=1m",
      "faults.timeline=[]",
      "storage.scrub.compare_interval=20s",
      "storage.plant.divergent_apply={\"replica\":2,\"every\":40,\"until\":\"3m\"}"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_scenario(kBitRot, overrides);
}

TEST(ServiceRun, ReplicaComparisonNarrowsToTheDivergentRangesAndRepairsThem) {
  const Outcome outcome = run(short_divergence(), 1);
  const nlohmann::json& compare = outcome.summary["scrub"]["compare"];
  std::printf("compare: %s\n", compare.dump().c_str());
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  EXPECT_GT(compare["divergent_ranges"].get<int64_t>(), 0);
  EXPECT_GT(compare["narrowing_rounds"].get<int64_t>(), 0);
  EXPECT_EQ(compare["no_majority"].get<int64_t>(), 0);
  EXPECT_GT(outcome.summary["scrub"]["repaired"].get<int64_t>(), 0);
}

// The planted bug alone is a divergence the convergence check sees, so the test above shows the
// comparison repairing it, not the check missing it.
TEST(ServiceRun, DivergentApplyWithoutComparisonFailsTheConvergenceCheck) {
  const Outcome outcome = run(short_divergence({"storage.scrub.compare_interval=0s"}), 1);
  EXPECT_FALSE(outcome.passed);
  EXPECT_FALSE(outcome.summary["checks"]["replica_convergence"]["passed"].get<bool>());
  EXPECT_EQ(outcome.summary["scrub"]["compare"]["rounds"].get<int64_t>(), 0);
}

// Planted bug in the comparison: leaders ignore replica 2's digests, so its divergence is never
// found and the convergence check fails.
TEST(ServiceRun, ComparisonIgnoringAReplicaIsCaughtByTheConvergenceCheck) {
  const Outcome outcome = run(short_divergence({"storage.plant.compare_ignore_replica=2"}), 1);
  EXPECT_FALSE(outcome.passed);
  EXPECT_FALSE(outcome.summary["checks"]["replica_convergence"]["passed"].get<bool>())
      << outcome.summary["checks"].dump(2);
  EXPECT_EQ(outcome.summary["scrub"]["compare"]["divergent_ranges"].get<int64_t>(), 0);
  std::printf("planted bug caught: %s\n  %s\n",
              outcome.summary["checks"]["replica_convergence"]["first_violation"]
                  .get<std::string>()
                  .c_str(),
              outcome.reproduce.c_str());
}

// The reference check: archival with small segments and frequent snapshots beside the replica
// comparison, no rot. Each leader rebuilds its group's content from the archive at the index of a
// comparison round and compares it with the digest the replicas agreed on there.
ScenarioSpec short_archive(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {
      "duration=3m",
      "heal=90s",
      "workload.verify_after=15s",
      "workload.keys=20000",
      "checks.availability_window=1m",
      "faults.timeline=[]",
      "storage.scrub.compare_interval=20s",
      "storage.archival={\"entries_per_segment\":64,\"snapshot_every_entries\":256}"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_scenario(kBitRot, overrides);
}

TEST(ServiceRun, ReferenceReplicaFromTheArchiveMatchesTheReplicas) {
  const Outcome outcome = run(short_archive(), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& reference = outcome.summary["checks"]["archive"]["reference_checks"];
  std::printf("reference checks: %s\n", reference.dump().c_str());
  EXPECT_GT(reference["matches"].get<uint64_t>(), 12u);  // more than one a group
  EXPECT_EQ(reference["mismatches"].get<uint64_t>(), 0u);
  EXPECT_EQ(reference["errors"].get<uint64_t>(), 0u);
}

// Planted bug: every archiver alters every 97th entry that holds a put. All three agents alter the
// same entries, so their segments agree and the audit finds nothing; the reference check fails.
TEST(ServiceRun, ArchiverAlteringEntriesIsCaughtByTheReferenceCheckAlone) {
  const Outcome outcome =
      run(short_archive({"storage.archival.plant_alter_entry_every=97"}), 1);
  EXPECT_FALSE(outcome.passed);
  const nlohmann::json& archive = outcome.summary["checks"]["archive"];
  EXPECT_FALSE(archive["passed"].get<bool>());
  EXPECT_EQ(archive["findings"].get<uint64_t>(), 0u) << "the audit alone should not see it";
  EXPECT_GT(archive["reference_checks"]["mismatches"].get<uint64_t>(), 0u);
  std::printf("planted archive alteration caught: %s\n  %s\n",
              archive["first_violation"].get<std::string>().c_str(), outcome.reproduce.c_str());
}

}  // namespace
}  // namespace dynasim::gameday
