// Global admission control in game days (docs/gac.md, "In a game day"): the scenario's
// storage.admission.gac section, short runs of scenarios/router-cold-cache.json with GAC servers
// on their own hosts and a GacClient in every router, the gac check passing on a correct run and
// failing with the planted server bug, and what GAC is for: a write burst above the table's
// capacity, which the partitions' saved burst would otherwise admit, held near the capacity.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gameday/json_reader.h"
#include "gameday/run.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kColdCache =
    std::string(DYNASIM_SOURCE_DIR) + "/scenarios/router-cold-cache.json";
const std::string kGameDay = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json";

std::vector<std::string> with(std::vector<std::string> base,
                              const std::vector<std::string>& extra) {
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

// 20 s of the cold-cache scenario on 6 partitions, without its router restart, with admission at
// the given capacity.
std::vector<std::string> short_run(uint64_t read_units, uint64_t write_units) {
  return {"duration=20s",
          "heal=10s",
          "workload.verify_after=5s",
          "storage.partitions=6",
          "faults.timeline=[]",
          "workload.item_size=512B",
          "storage.admission.read_capacity_units=" + std::to_string(read_units),
          "storage.admission.write_capacity_units=" + std::to_string(write_units)};
}

const std::vector<std::string> kGac = {"storage.admission.gac.servers=3"};

TEST(GacScenario, OffUnlessTheSectionIsPresentAndRequiresRouting) {
  EXPECT_FALSE(load_scenario(kColdCache, short_run(100, 100)).storage->gac);
  const ScenarioSpec spec = load_scenario(
      kColdCache, with(short_run(100, 100), {"storage.admission.gac.servers=5",
                                             "storage.admission.gac.refresh_interval=1s",
                                             "storage.admission.gac.token_lifetime=3s"}));
  ASSERT_TRUE(spec.storage->gac);
  EXPECT_EQ(spec.storage->gac_servers, 5u);
  EXPECT_EQ(spec.storage->gac_refresh_interval, sim::seconds(1));
  EXPECT_EQ(spec.storage->gac_token_lifetime, sim::seconds(3));
  EXPECT_EQ(spec.storage->gac_horizon_slots, 4u);
  EXPECT_FALSE(spec.storage->plant_gac_ignore_outstanding_grants);
  EXPECT_FALSE(
      load_scenario(kColdCache, with(short_run(100, 100), {"storage.admission.gac.enabled=false"}))
          .storage->gac);
  // Without routing: refused at the section's path, saying what to do.
  const std::string error = scenario_error_of(
      kGameDay, {"storage.admission.read_capacity_units=100",
                 "storage.admission.write_capacity_units=100", "storage.admission.gac.servers=3"});
  EXPECT_NE(error.find("$.storage.admission.gac"), std::string::npos) << error;
  EXPECT_NE(error.find("storage.routing"), std::string::npos) << error;
  EXPECT_NE(
      scenario_error_of(kColdCache, with(short_run(100, 100), {"storage.admission.gac.servers=0"}))
          .find("storage.admission.gac.servers"),
      std::string::npos);
}

TEST(GacGameDay, RoutersTakeTokensAndEveryCheckPasses) {
  const ServiceRunOutcome outcome =
      run_service(load_scenario(kColdCache, with(short_run(2000, 2000), kGac)), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& gac = outcome.summary["gac"];
  EXPECT_EQ(gac["servers"].get<int64_t>(), 3);
  EXPECT_GT(gac["token_requests"].get<int64_t>(), 0) << gac.dump();
  EXPECT_GT(gac["granted_milli_units"]["read"].get<int64_t>(), 0) << gac.dump();
  EXPECT_GT(gac["granted_milli_units"]["write"].get<int64_t>(), 0) << gac.dump();
  // Capacity well above the workload's load. The refusals come from the read-back pass, which
  // reads every key at once, far faster than a router's share of 2000 RCU; the clients retry.
  EXPECT_GT(gac["router_admitted"].get<int64_t>(), 1000) << gac.dump();
  EXPECT_LT(gac["router_throttled"].get<int64_t>() * 10, gac["router_admitted"].get<int64_t>())
      << gac.dump();
  const nlohmann::json& check = outcome.summary["checks"]["gac"];
  EXPECT_TRUE(check["passed"].get<bool>()) << check.dump();
  EXPECT_GT(check["vends_checked"].get<int64_t>(), 0) << check.dump();
  EXPECT_EQ(check["max_extra_ledger_slots"].get<int64_t>(), 0) << check.dump();
}

// Offered writes far above the table's capacity: routers run out of tokens, ask early, and
// throttle.
std::vector<std::string> overloaded() {
  return with(short_run(2000, 40), kGac);
}

TEST(GacGameDay, OverloadThrottlesAtTheRoutersAndTheCheckHolds) {
  const ServiceRunOutcome outcome = run_service(load_scenario(kColdCache, overloaded()), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& gac = outcome.summary["gac"];
  EXPECT_GT(gac["router_throttled"].get<int64_t>(), 100) << gac.dump();
  const nlohmann::json& check = outcome.summary["checks"]["gac"];
  std::printf("gac: %s\ncheck: %s\n", gac.dump().c_str(), check.dump().c_str());
  EXPECT_TRUE(check["passed"].get<bool>()) << check.dump();
  EXPECT_LE(check["max_vended_over_bound"].get<double>(), 1.0) << check.dump();
}

TEST(GacGameDay, PlantedIgnoreOutstandingGrantsFailsTheGacCheck) {
  const ServiceRunOutcome outcome = run_service(
      load_scenario(
          kColdCache,
          with(overloaded(), {"storage.admission.gac.plant_ignore_outstanding_grants=true"})),
      1);
  EXPECT_FALSE(outcome.passed);
  const nlohmann::json& check = outcome.summary["checks"]["gac"];
  EXPECT_FALSE(check["passed"].get<bool>()) << check.dump();
  EXPECT_GT(check["violations"].get<int64_t>(), 0) << check.dump();
  EXPECT_NE(check["first_violation"].get<std::string>().find("bucket"), std::string::npos)
      << check.dump();
}

// 150 s with auto scaling that applies UpdateTable at once (as in CapacityGameDay): the table's
// 40 WCU are far below the workload's writes, so the high data points at 1 and 2 minutes raise
// the write capacity at 2 minutes. The GAC servers learn it from the controller's
// AllocationUpdates and vend the new capacity; the gac check judges each window against the
// capacity in force.
TEST(GacGameDay, ServersFollowAutoScalingThroughTheCapacityController) {
  ScenarioRun run(
      load_scenario(kColdCache, with(with(short_run(2000, 40), kGac),
                                     {"duration=150s", "heal=25s", "workload.verify_after=10s",
                                      "storage.admission.auto_scaling.update_delay=0s"})),
      1);
  const auto granted_write = [&run] {
    auto it = run.world().counters().find("gac.granted_milli_units.write");
    return it == run.world().counters().end() ? int64_t{0} : it->second;
  };
  const auto step_to = [&run](sim::Duration at) {
    while (run.simulation().now() < sim::SimTime::zero() + at && run.step()) {
    }
  };
  step_to(sim::seconds(90));
  const int64_t before_from = granted_write();
  step_to(sim::seconds(115));
  const double before = static_cast<double>(granted_write() - before_from) / 25'000.0;
  step_to(sim::seconds(125));
  const int64_t after_from = granted_write();
  step_to(sim::seconds(145));
  const double after = static_cast<double>(granted_write() - after_from) / 20'000.0;
  run.run_to_end();
  const nlohmann::json summary = run.summary(0);
  const nlohmann::json& capacity = summary["capacity"];
  std::printf(
      "write capacity %lld -> %lld WCU; GAC granted %.1f WCU/s over 90-115 s, %.1f over "
      "125-145 s\ngac: %s\ncheck: %s\n",
      static_cast<long long>(capacity["write_units"]["start"].get<int64_t>()),
      static_cast<long long>(capacity["write_units"]["end"].get<int64_t>()), before, after,
      summary["gac"].dump().c_str(), summary["checks"]["gac"].dump().c_str());
  ASSERT_TRUE(run.passed()) << summary["checks"].dump(2);
  EXPECT_GT(capacity["write_units"]["end"].get<int64_t>(), 40);
  // The controller's first announcement (after its recovery wait) and the change.
  EXPECT_GE(summary["gac"]["capacity_updates"].get<int64_t>(), 2) << summary["gac"].dump();
  EXPECT_LE(before, 40 * 1.1);
  EXPECT_GT(after, 40 * 1.3);
  EXPECT_TRUE(summary["checks"]["gac"]["passed"].get<bool>());
}

// Requests admitted by the storage nodes' partition buckets in [from, to] of true time, per
// second.
double admitted_per_second(const std::vector<std::string>& overrides, sim::Duration from,
                           sim::Duration to, int64_t* router_throttled) {
  // The rate shape is the whole table's: operations_per_second (per client host) goes.
  nlohmann::json document = parse_json_file(kColdCache);
  for (const std::string& assignment : overrides) apply_override(document, assignment);
  document["workload"].erase("operations_per_second");
  ScenarioRun run(parse_scenario(document, kColdCache), 1);
  const auto counter = [&run](const char* name) {
    auto it = run.world().counters().find(name);
    return it == run.world().counters().end() ? int64_t{0} : it->second;
  };
  while (run.simulation().now() < sim::SimTime::zero() + from && run.step()) {
  }
  const int64_t admitted_from = counter("admission.admitted");
  const int64_t throttled_from = counter("router.gac_throttled");
  while (run.simulation().now() < sim::SimTime::zero() + to && run.step()) {
  }
  *router_throttled = counter("router.gac_throttled") - throttled_from;
  return static_cast<double>(counter("admission.admitted") - admitted_from) /
         (static_cast<double>((to - from).ns) / 1e9);
}

// What GAC is for (P22 section 4.2): eventually consistent reads above the table's capacity,
// spread over all partitions. Such a read may go to any replica, and each replica's partition
// buckets admit up to the partition's allocation on their own (P22 section 4.1.1), plus the burst
// the light first 10 s saved: without GAC the table serves well above its 40 RCU. With GAC the
// routers hold the table near its capacity and refuse the rest before it reaches storage. Every
// read costs half an RCU (items of 512 bytes, or none), so 40 RCU are 80 reads per second.
TEST(GacGameDay, ReadsAboveTheTableCapacityAreHeldNearItWithGac) {
  const std::vector<std::string> burst = with(
      short_run(40, 2000),
      {R"(workload.rate={"spike": {"base": "20/s", "peak": "480/s", "at": "10s", "hold": "1m"}})",
       R"(workload.mix={"put": 0, "get_strong": 0, "get_eventual": 100, "put_if_version": 0, "put_if_absent": 0, "delete": 0})"});
  int64_t throttled_without = 0;
  int64_t throttled_with = 0;
  const double without =
      admitted_per_second(burst, sim::seconds(11), sim::seconds(19), &throttled_without);
  const double with_gac =
      admitted_per_second(with(burst, kGac), sim::seconds(11), sim::seconds(19), &throttled_with);
  std::printf(
      "eventual reads admitted per second over 11-19 s, offered 480/s, table capacity "
      "40 RCU = 80 reads/s: without GAC %.1f, with GAC %.1f (%lld refused at the "
      "routers)\n",
      without, with_gac, static_cast<long long>(throttled_with));
  EXPECT_GT(without, 80 * 1.5);
  EXPECT_LT(with_gac, 80 * 1.15);
  EXPECT_GT(with_gac, 80 * 0.75);
  EXPECT_EQ(throttled_without, 0);
  EXPECT_GT(throttled_with, 100);
}

// The read-back pass through GAC at 150 RCU: routers refuse many verification reads for lack of
// tokens. A read refused on every attempt goes back in the queue without using one of the key's
// verification rounds, so with 80 s of heal every key is read back and durability holds. When
// throttled reads used up rounds, this run (seed 2) failed durability on keys never read back.
TEST(GacGameDay, ThrottledVerificationReadsAreReadAgainNotGivenUp) {
  const ServiceRunOutcome outcome = run_service(
      load_scenario(kColdCache, {"duration=90s", "heal=80s", "storage.partitions=24",
                                 "storage.admission.read_capacity_units=150",
                                 "storage.admission.write_capacity_units=60",
                                 "storage.admission.gac.servers=3"}),
      2);
  const nlohmann::json& durability = outcome.summary["checks"]["durability"];
  std::printf("durability: %s\n", durability.dump().c_str());
  EXPECT_TRUE(durability["passed"].get<bool>()) << durability.dump(2);
  EXPECT_EQ(durability["keys_unverified"].get<uint64_t>(), 0u);
  EXPECT_GT(outcome.summary["gac"]["router_throttled"].get<uint64_t>(), 10'000u);
}

}  // namespace
}  // namespace dynasim::gameday
