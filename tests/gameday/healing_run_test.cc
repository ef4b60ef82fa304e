// Healing in whole service runs (scenarios/node-loss-healing.json, shortened): every loss is
// healed through a log replica and then a full replica, every check passes, the run replays to
// the same trace, and the planted bug that retires the log replica before the full replica has
// caught up is caught by the healing check's redundancy invariant.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gameday/run.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kHealing = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/node-loss-healing.json";

// 12 partitions on 12 nodes; a node lost at 40 s for a minute, an AZ at 1m50s for 40 s.
ScenarioSpec short_healing(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {
      "duration=3m",
      "heal=40s",
      "workload.verify_after=15s",
      "storage.partitions=12",
      "workload.operations_per_second=100",
      "workload.keys=500",
      "workload.item_size=64KB",
      "checks.availability_window=1m",
      "faults.timeline=["
      "{\"at\":\"40s\",\"kind\":\"power_off\",\"target\":\"az-a/r0/h1\",\"for\":\"1m\"},"
      "{\"at\":\"110s\",\"kind\":\"power_off\",\"target\":\"az-c\",\"for\":\"40s\"}]"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_scenario(kHealing, overrides);
}

using Outcome = ServiceRunOutcome;

Outcome run(const ScenarioSpec& spec, uint64_t seed) {
  return run_service(spec, seed);
}

TEST(ServiceRun, HealingRestoresEveryGroupAndReplaysIdentically) {
  const ScenarioSpec spec = short_healing();
  const Outcome first = run(spec, 1);
  ASSERT_TRUE(first.passed) << first.summary["checks"].dump(2);
  const nlohmann::json& healing = first.summary["healing"];
  // The lost node hosted replicas of several groups, and the AZ one of every group.
  EXPECT_GE(healing["events"].get<uint64_t>(), 12u);
  EXPECT_EQ(healing["unfinished"].get<uint64_t>(), 0u);
  EXPECT_EQ(healing["quorum_restore_s"]["count"], healing["events"]);
  EXPECT_LE(healing["quorum_restore_s"]["p99"].get<double>(), 10.0);
  EXPECT_LE(healing["time_at_two_copies_s"]["p99"].get<double>(),
            healing["full_replica_s"]["p99"].get<double>());
  EXPECT_EQ(first.summary["checks"]["durability"]["lost_writes"].get<uint64_t>(), 0u);
  // az-c was down when its replicas were lost, so their log replicas went to other AZs; the
  // full replicas waited for az-c to return and went there. Every group ends with one voter per
  // AZ again.
  EXPECT_EQ(healing["groups_sharing_an_az"].get<uint64_t>(), 0u);
  // Clients follow the groups to the nodes healing moved them to: every answer from a group
  // whose configuration changed names its members. In the last window (the AZ lost and healed,
  // with the node lost before it healed too) every operation succeeds. Before clients learned
  // members they kept asking the nodes the groups had left, and that window was 96.5%.
  const nlohmann::json& windows = first.summary["availability"]["windows"];
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_GE(windows[2]["fraction"].get<double>(), 0.995) << windows.dump();
  EXPECT_TRUE(first.summary["checks"]["replica_convergence"]["passed"].get<bool>());
  const Outcome second = run(spec, 1);
  EXPECT_EQ(first.trace_hash, second.trace_hash);
}

// The knob that trades a rebuild's wait for its AZ against how long a group keeps two full
// copies: at zero, the full replicas replace the log replicas at once in the AZs the log
// replicas went to, and every group that lost its az-c replica keeps two voters in one AZ.
TEST(ServiceRun, ARebuildThatDoesNotWaitForItsAzLeavesGroupsSharingAnAz) {
  const Outcome outcome = run(short_healing({"storage.healing.rebuild_waits_for_az=0s"}), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  EXPECT_EQ(outcome.summary["healing"]["groups_sharing_an_az"].get<uint64_t>(), 12u);
}

TEST(ServiceRun, PlantedEarlyLogReplicaRemovalIsCaught) {
  const ScenarioSpec spec = short_healing({"storage.healing.plant_remove_log_replica_early=true"});
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const Outcome outcome = run(spec, seed);
    if (outcome.passed) continue;
    EXPECT_FALSE(outcome.summary["checks"]["healing"]["passed"].get<bool>())
        << outcome.summary["checks"].dump(2);
    std::printf("planted bug caught at seed %llu: %s\n  %s\n",
                static_cast<unsigned long long>(seed),
                outcome.summary["checks"]["healing"]["first_violation"].get<std::string>().c_str(),
                outcome.reproduce.c_str());
    return;
  }
  ADD_FAILURE() << "no seed in 1..3 caught the early removal of the log replica";
}

// Archival runs beside healing: with a short log tail, replicas that join are sent snapshots, so
// their archivers must start after them. The audit of every group's archive passes; with the
// planted bug (no restart after a snapshot install, no sequence check) it finds the hole.
TEST(ServiceRun, ArchiveAuditPassesAndCatchesAPlantedSequenceGap) {
  const std::vector<std::string> short_tail = {"storage.log_tail_entries=100",
                                               "storage.checkpoint_every_entries=100"};
  const Outcome clean = run(short_healing(short_tail), 1);
  ASSERT_TRUE(clean.passed) << clean.summary["checks"].dump(2);
  const nlohmann::json& archive = clean.summary["checks"]["archive"];
  EXPECT_GT(archive["segments"].get<uint64_t>(), 12u);
  EXPECT_GT(archive["archived_through_min"].get<uint64_t>(), 0u);

  std::vector<std::string> planted = short_tail;
  planted.push_back("storage.archival.plant_accept_sequence_gap=true");
  const ScenarioSpec spec = short_healing(planted);
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const Outcome outcome = run(spec, seed);
    if (outcome.passed) continue;
    EXPECT_FALSE(outcome.summary["checks"]["archive"]["passed"].get<bool>())
        << outcome.summary["checks"].dump(2);
    std::printf("planted sequence gap caught at seed %llu: %s\n  %s\n",
                static_cast<unsigned long long>(seed),
                outcome.summary["checks"]["archive"]["first_violation"].get<std::string>().c_str(),
                outcome.reproduce.c_str());
    return;
  }
  ADD_FAILURE() << "no seed in 1..3 caught the planted sequence gap";
}

}  // namespace
}  // namespace dynasim::gameday
