// The whole-service game day (scenarios/region-game-day.json: routers and MemDS, admission with
// auto scaling, healing, archival, scrub), shortened: a storage node loses power long enough for
// healing to place new replicas (30 of the 120 partitions' replicas were on it) while admission
// reports node capacity to every peer of every hosted replica each second. A replica healing
// placed that has not recovered yet has no Paxos state; its node once took the group's members
// from the replica's unset static assignment and sent the report to no host at all, which stopped
// the run 2 s after the power-off (the network refuses an unknown host). Now the members come from
// the configuration the replica was seeded with.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kRegion = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/region-game-day.json";

TEST(ServiceRun, RegionGameDayHealsUnderAdmissionAndRouting) {
  const ScenarioSpec spec = load_scenario(
      kRegion, {"duration=75s", "heal=40s", "workload.verify_after=15s",
                R"(workload.phases=[{"duration": "75s", "rate": {"constant": "300/s"}}])",
                "storage.partitions=120",
                R"(faults.timeline=[{"at": "20s", "kind": "power_off", "target": "az-a/r0/h1",
                                     "for": "45s"}])"});
  const ServiceRunOutcome outcome = run_service(spec, 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& healing = outcome.summary["healing"];
  std::printf("healing: %s\n", healing.dump().c_str());
  EXPECT_GT(healing["events"].get<uint64_t>(), 0u);
  EXPECT_TRUE(outcome.summary["checks"]["admission"]["passed"].get<bool>());
  EXPECT_TRUE(outcome.summary["checks"]["router_groups"]["passed"].get<bool>());
  EXPECT_EQ(outcome.summary["checks"]["admission"]["violations"].get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace dynasim::gameday
