// Partition splits in game days (docs/partitions.md, "Splitting a running partition"): the
// scenario's "splits" section, short runs of scenarios/hot-partition.json in which the hot
// partition splits for consumption while every check stays green and the run replays bit for bit,
// the single hot key that must not split, and the planted early child that a check must catch.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gameday/json_reader.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kHotPartition = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/hot-partition.json";
const std::string kColdCache =
    std::string(DYNASIM_SOURCE_DIR) + "/scenarios/router-cold-cache.json";

ScenarioSpec short_run(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {"duration=30s", "heal=15s", "workload.verify_after=8s"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_scenario(kHotPartition, overrides);
}

const std::vector<std::string> kSingleHotKey = {
    "workload.key_distribution.kind=hot_set", "workload.key_distribution.hot_keys_fraction=0.0005",
    "workload.key_distribution.hot_traffic=0.6"};

TEST(SplitScenario, KnobsAndRefusals) {
  const ScenarioSpec spec = load_scenario(kHotPartition, {});
  EXPECT_TRUE(spec.storage->splits);
  EXPECT_EQ(spec.storage->splits_consumption_threshold_percent, 45u);
  EXPECT_EQ(spec.storage->splits_sustained_periods, 3u);
  EXPECT_EQ(spec.storage->splits_policy_period, sim::seconds(2));
  EXPECT_EQ(spec.storage->splits_copy_bytes_per_second, uint64_t{1} << 20);
  EXPECT_FALSE(spec.storage->plant_split_child_before_copy);
  EXPECT_FALSE(load_scenario(kColdCache, {}).storage->splits);
  // Splits need routing: clients on the static placement would never find a child.
  try {
    load_scenario(kHotPartition, {"storage.routing.enabled=false"});
    ADD_FAILURE() << "splits without routing were accepted";
  } catch (const ScenarioError& error) {
    EXPECT_NE(std::string(error.what()).find("storage.splits"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("routing"), std::string::npos) << error.what();
  }
}

TEST(SplitGameDay, HotPartitionSplitsForConsumptionAndEveryCheckPasses) {
  const ServiceRunOutcome outcome = run_service(short_run(), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& partitions = outcome.summary["partitions"];
  EXPECT_EQ(partitions["initial"].get<int64_t>(), 4);
  ASSERT_GE(partitions["splits"].size(), 1u) << partitions.dump(2);
  EXPECT_EQ(partitions["final"].get<int64_t>(),
            4 + static_cast<int64_t>(partitions["splits"].size()));
  for (const nlohmann::json& split : partitions["splits"]) {
    EXPECT_EQ(split["reason"].get<std::string>(), "consumption") << split.dump();
    EXPECT_EQ(split["children"][0], split["parent"]) << split.dump();
    EXPECT_GE(split["children"][1].get<int64_t>(), 4) << split.dump();
  }
  // Admission throttled the hot partition before the split.
  EXPECT_GT(outcome.summary["admission"]["throttled_by_partition"].get<int64_t>(), 0);
  // The children took traffic: routers forwarded to them and the check followed.
  EXPECT_TRUE(outcome.summary["checks"]["router_groups"]["passed"].get<bool>());

  // The same seed replays the same run.
  const ServiceRunOutcome again = run_service(short_run(), 1);
  EXPECT_EQ(again.trace_hash, outcome.trace_hash);
  EXPECT_EQ(again.summary["partitions"], partitions);
}

int64_t metric(const ServiceRunOutcome& outcome, const char* name) {
  const nlohmann::json& metrics = outcome.summary["metrics"];
  return metrics.contains(name) ? metrics[name].get<int64_t>() : 0;
}

// The leader that commits a split leads the child from its first start (docs/partitions.md,
// "The child's first leader"), so the moved half is served again at once: routers find the
// child in MemDS and hardly a lookup comes back empty. With the child left to elect its own
// leader, its range goes unserved for a follower timeout, a leader check and a lease, and the
// routers' lookups for it fail in the thousands.
TEST(SplitGameDay, TheChildsFirstLeaderServesItsRangeAtOnce) {
  const ServiceRunOutcome at_once = run_service(short_run(), 1);
  ASSERT_TRUE(at_once.passed) << at_once.summary["checks"].dump(2);
  const int64_t splits = static_cast<int64_t>(at_once.summary["partitions"]["splits"].size());
  ASSERT_GE(splits, 1);
  EXPECT_EQ(metric(at_once, "splits.children_led_at_once"), splits);
  const ServiceRunOutcome elected =
      run_service(short_run({"storage.splits.first_leader_at_once=false"}), 1);
  ASSERT_TRUE(elected.passed) << elected.summary["checks"].dump(2);
  ASSERT_GE(elected.summary["partitions"]["splits"].size(), 1u);
  EXPECT_EQ(metric(elected, "splits.children_led_at_once"), 0);
  const int64_t failures_at_once = metric(at_once, "router.resolve_failures");
  const int64_t failures_elected = metric(elected, "router.resolve_failures");
  EXPECT_GT(failures_elected, 1000);
  EXPECT_LT(failures_at_once * 20, failures_elected)
      << failures_at_once << " lookups failed with the first leader at once, " << failures_elected
      << " with an election";
}

TEST(SplitGameDay, SingleHotKeyDoesNotSplit) {
  const ServiceRunOutcome outcome = run_service(short_run(kSingleHotKey), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& partitions = outcome.summary["partitions"];
  EXPECT_EQ(partitions["splits"].size(), 0u) << partitions.dump(2);
  EXPECT_EQ(partitions["final"].get<int64_t>(), 4);
  // The key stays at its partition's ceiling: admission throttles it.
  EXPECT_GT(outcome.summary["admission"]["throttled_by_partition"].get<int64_t>(), 1000);
}

TEST(SplitGameDay, PlantedEarlyChildIsCaught) {
  const ServiceRunOutcome outcome =
      run_service(short_run({"storage.splits.plant_child_before_copy=true"}), 1);
  EXPECT_FALSE(outcome.passed);
  const nlohmann::json& checks = outcome.summary["checks"];
  const bool caught = !checks["replica_convergence"]["passed"].get<bool>() ||
                      !checks["durability"]["passed"].get<bool>() ||
                      !checks["linearizability"]["passed"].get<bool>();
  EXPECT_TRUE(caught) << checks.dump(2);
}

}  // namespace
}  // namespace dynasim::gameday
