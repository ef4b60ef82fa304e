// Canaries (gameday/canary.h): the recorder's windows, and in game days, one canary per AZ whose
// availability drops when the storage service is down and stays whole when it is not.
#include "gameday/canary.h"

#include <gtest/gtest.h>

#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

TEST(CanaryRecorderTest, CountsProbesByTheWindowTheyStartedIn) {
  sim::Simulation simulation(1);
  CanaryRecorder recorder(&simulation);
  recorder.record("az-a", sim::SimTime::zero() + sim::seconds(1), true);
  recorder.record("az-a", sim::SimTime::zero() + sim::seconds(299), false);
  recorder.record("az-a", sim::SimTime::zero() + sim::seconds(300), true);
  recorder.record("az-b", sim::SimTime::zero() + sim::seconds(5), true);
  recorder.record("az-b", sim::SimTime::zero() + sim::seconds(700), false);  // after `until`
  const nlohmann::json report =
      recorder.report(sim::minutes(5), sim::SimTime::zero() + sim::seconds(600));
  const nlohmann::json& a = report["azs"]["az-a"];
  EXPECT_EQ(a["probes"], 3);
  EXPECT_EQ(a["succeeded"], 2);
  ASSERT_EQ(a["windows"].size(), 2u);
  EXPECT_EQ(a["windows"][0]["probes"], 2);
  EXPECT_DOUBLE_EQ(a["windows"][0]["fraction"].get<double>(), 0.5);
  EXPECT_EQ(a["windows"][1]["start_ns"], sim::minutes(5).ns);
  EXPECT_EQ(report["azs"]["az-b"]["probes"], 1);
  EXPECT_DOUBLE_EQ(report["worst_window_fraction"].get<double>(), 0.5);
}

}  // namespace
}  // namespace dynasim::gameday

namespace dynasim::gameday {
namespace {

// Two AZs' storage hosts lose power for a minute (past the survivability guard): no group keeps
// a quorum, and every AZ's canary sees it; the minute before is whole, the minute after it has
// the seconds of recovery, and the one after that is whole again. A light workload: the canaries
// are what is measured.
TEST(CanaryGameDay, EveryAzsCanarySeesTheOutageAndOnlyIt) {
  const ScenarioSpec spec = load_scenario(
      std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json",
      {"duration=5m", "heal=20s", "workload.verify_after=5s", "storage.partitions=6",
       "workload.operations_per_second=5", "checks.availability_window=1m",
       "faults.unrestricted=true", "faults.random=[]",
       R"(faults.timeline=[{"at": "120s", "kind": "power_off", "target": "az-a", "for": "60s"},
                           {"at": "120s", "kind": "power_off", "target": "az-b", "for": "60s"}])"});
  const ServiceRunOutcome outcome = run_service(spec, 1);
  const nlohmann::json& canaries = outcome.summary["canaries"];
  ASSERT_EQ(canaries["azs"].size(), 3u) << canaries.dump();
  for (const auto& [az, report] : canaries["azs"].items()) {
    const nlohmann::json& windows = report["windows"];
    ASSERT_EQ(windows.size(), 5u) << az;
    std::printf("%s: %s\n", az.c_str(), windows.dump().c_str());
    EXPECT_DOUBLE_EQ(windows[1]["fraction"].get<double>(), 1.0) << az;  // before
    EXPECT_LT(windows[2]["fraction"].get<double>(), 0.5) << az;         // during
    EXPECT_GT(windows[3]["fraction"].get<double>(), 0.75) << az;        // recovering
    EXPECT_DOUBLE_EQ(windows[4]["fraction"].get<double>(), 1.0) << az;  // after
  }
  EXPECT_LT(canaries["worst_window_fraction"].get<double>(), 0.5);
}

}  // namespace
}  // namespace dynasim::gameday
