// Request routers in game days (docs/scenarios.md, "Routing"): the scenario's "routing" section,
// short runs of scenarios/router-cold-cache.json in which every client request goes through a
// router and the checks pass, and the planted neighbour forward that the router_groups check
// must catch.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gameday/json_reader.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kColdCache =
    std::string(DYNASIM_SOURCE_DIR) + "/scenarios/router-cold-cache.json";
const std::string kGameDay = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json";

TEST(RoutingScenario, OffUnlessTheSectionIsPresent) {
  EXPECT_FALSE(load_scenario(kGameDay, {}).storage->routing);
  const ScenarioSpec spec = load_scenario(kColdCache, {});
  EXPECT_TRUE(spec.storage->routing);
  EXPECT_EQ(spec.storage->routers_per_az, 2u);
  EXPECT_EQ(spec.storage->memds_nodes, 3u);
  EXPECT_FALSE(spec.storage->routing_cache_bimodal);
  EXPECT_FALSE(spec.storage->plant_router_forward_to_neighbour);
  EXPECT_TRUE(
      load_scenario(kColdCache, {"storage.routing.cache=bimodal"}).storage->routing_cache_bimodal);
  try {
    load_scenario(kColdCache, {"storage.routing.cache=lru"});
    ADD_FAILURE() << "an unknown cache was accepted";
  } catch (const ScenarioError& error) {
    EXPECT_NE(std::string(error.what()).find("storage.routing.cache"), std::string::npos);
  }
}

// 20 s of the cold-cache scenario on 6 partitions (the router restart at 60 s is past the end).
ScenarioSpec short_run(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {"duration=20s", "heal=10s", "workload.verify_after=5s",
                                        "storage.partitions=6"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_scenario(kColdCache, overrides);
}

TEST(RoutingGameDay, ClientsGoThroughRoutersAndEveryCheckPasses) {
  const ServiceRunOutcome outcome = run_service(short_run(), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& routing = outcome.summary["routing"];
  EXPECT_EQ(routing["routers"].get<int64_t>(), 6);
  EXPECT_GT(routing["forwards"].get<int64_t>(), 1000) << routing.dump();
  EXPECT_GT(routing["hits"].get<int64_t>(), routing["misses"].get<int64_t>()) << routing.dump();
  const nlohmann::json& check = outcome.summary["checks"]["router_groups"];
  EXPECT_EQ(check["forwards_checked"].get<int64_t>(), routing["forwards"].get<int64_t>());
  // Constant work: MemDS serves one lookup per resolution.
  const nlohmann::json& memds = outcome.summary["memds"];
  EXPECT_EQ(memds["lookups"].get<int64_t>(), routing["memds_lookups_sent"].get<int64_t>());
  EXPECT_GT(memds["lookups_per_s"]["mean"].get<double>(), 0.0);
  EXPECT_EQ(outcome.summary["requests"]["total"].get<int64_t>() > 0, true);
}

TEST(RoutingGameDay, PlantedNeighbourForwardFailsTheRouterGroupsCheck) {
  const ServiceRunOutcome outcome =
      run_service(short_run({"storage.routing.plant_forward_to_neighbour=true"}), 1);
  EXPECT_FALSE(outcome.passed);
  const nlohmann::json& check = outcome.summary["checks"]["router_groups"];
  EXPECT_FALSE(check["passed"].get<bool>()) << check.dump(2);
  EXPECT_NE(check["first_violation"].get<std::string>().find("never hosted"), std::string::npos)
      << check.dump(2);
}

}  // namespace
}  // namespace dynasim::gameday
