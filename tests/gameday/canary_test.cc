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
