// The service sections of the scenario format: storage, workload, checks. Bad input names the
// field path, what was expected and what was found.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gameday/json_reader.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kGameDay = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json";

std::string error_of(const std::vector<std::string>& overrides) {
  return scenario_error_of(kGameDay, overrides);
}

TEST(ServiceScenario, ThePowerOffGameDayMeetsTheIssuesShape) {
  const ScenarioSpec spec = load_scenario(kGameDay, {});
  ASSERT_TRUE(spec.storage.has_value());
  EXPECT_EQ(spec.topology.az_names.size(), 3u);
  EXPECT_GE(spec.topology.racks_per_az * spec.topology.hosts_per_rack * 3, 9u);
  EXPECT_GE(spec.storage->partitions, 100u);
  EXPECT_EQ(spec.duration, sim::minutes(30));
  EXPECT_GT(spec.workload.put, 0);
  EXPECT_GT(spec.workload.get_strong, 0);
  EXPECT_GT(spec.workload.get_eventual, 0);
  EXPECT_GT(spec.workload.put_if_version + spec.workload.put_if_absent, 0);
  bool az_power_off = false;
  for (const NamedTimelineFault& fault : spec.timeline) {
    az_power_off =
        az_power_off || (fault.kind == sim::FaultKind::kPowerOff && fault.target == "az-b");
  }
  EXPECT_TRUE(az_power_off);
  bool random_power_offs = false;
  for (const NamedRandomFault& fault : spec.random_faults) {
    random_power_offs = random_power_offs || fault.kind == sim::FaultKind::kPowerOff;
  }
  EXPECT_TRUE(random_power_offs);
  EXPECT_FALSE(spec.storage->plant_quorum_of_one || spec.storage->plant_no_lease_wait ||
               spec.storage->plant_follower_strong_reads || spec.storage->plant_send_before_fsync);
}

TEST(ServiceScenario, BadFieldsNameThePath) {
  std::string message = error_of({"storage.partitons=10"});
  EXPECT_NE(message.find("$.storage.partitons"), std::string::npos) << message;
  EXPECT_NE(message.find("partitions"), std::string::npos) << message;

  message = error_of({"workload.mix.gett_strong=3"});
  EXPECT_NE(message.find("$.workload.mix.gett_strong"), std::string::npos) << message;
  EXPECT_NE(message.find("get_strong"), std::string::npos) << message;

  message = error_of({"workload.item_size=\"1 parsec\""});
  EXPECT_NE(message.find("$.workload.item_size"), std::string::npos) << message;

  message = error_of({"storage.election_timeout=50ms"});
  EXPECT_NE(message.find("$.storage.election_timeout"), std::string::npos) << message;
  EXPECT_NE(message.find("heartbeat_interval"), std::string::npos) << message;

  message = error_of({"topology.clock_drift_ppm=500"});
  EXPECT_NE(message.find("$.topology.clock_drift_ppm"), std::string::npos) << message;
  EXPECT_NE(message.find("max_clock_drift_ppm"), std::string::npos) << message;

  message = error_of({"workload.verify_after=5m"});
  EXPECT_NE(message.find("$.workload.verify_after"), std::string::npos) << message;

  message = error_of({"topology.azs=[\"a\",\"b\"]"});
  EXPECT_NE(message.find("$.topology.azs"), std::string::npos) << message;
  EXPECT_NE(message.find("exactly 3"), std::string::npos) << message;

  message = error_of({"workload.mix={\"put\":0}"});
  EXPECT_NE(message.find("$.workload.mix"), std::string::npos) << message;
  EXPECT_NE(message.find("positive weight"), std::string::npos) << message;

  message = error_of({"storage.plant.quorum_of_two=true"});
  EXPECT_NE(message.find("$.storage.plant.quorum_of_two"), std::string::npos) << message;
}

}  // namespace
}  // namespace dynasim::gameday
