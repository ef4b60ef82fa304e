// Capacity planning (gameday/plan.h, docs/capacity-planning.md): the price table and SLO inputs
// refuse bad input by name; the front door is deterministic and its report does not depend on the
// number of threads; and it sees what each mechanism does to a workload: a hot partition
// throttles while the table is under its capacity (and uniform keys at the same capacity do
// not), on-demand takes twice the previous peak and throttles a jump beyond it, auto scaling
// raises the capacity after sustained use, a partition hot across its range splits for
// consumption while a single hot key does not.
#include "gameday/plan.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gameday/json_reader.h"
#include "gameday/scenario.h"
#include "gameday/svg_chart.h"

namespace dynasim::gameday {
namespace {

const std::string kSourceDir = DYNASIM_SOURCE_DIR;

PriceTable shipped_prices() {
  return load_price_table(kSourceDir + "/scenarios/prices/dynamodb-us-east-1.json");
}

// A synthetic latency profile: 1 ms reads, 2 ms writes (the tests look at throttling, not at
// the storage path).
LatencyProfile flat_latency() {
  LatencyProfile profile;
  profile.samples_ns[LatencyProfile::kStrongRead] = {sim::milliseconds(1).ns};
  profile.samples_ns[LatencyProfile::kEventualRead] = {sim::milliseconds(1).ns};
  profile.samples_ns[LatencyProfile::kWrite] = {sim::milliseconds(2).ns};
  return profile;
}

PlanWorkload workload(double operations_per_second, sim::Duration duration) {
  PlanWorkload w;
  w.duration = duration;
  w.operations_per_second = [operations_per_second](sim::SimTime) { return operations_per_second; };
  w.max_operations_per_second = operations_per_second;
  w.keys = 20'000;
  w.item_size_bytes = 1024;
  w.strong_read_share = 0.5;
  w.eventual_read_share = 0.0;
  w.write_share = 0.5;
  w.partitions = 20;
  w.nodes_per_az = 4;
  return w;
}

PlanCandidate provisioned(int64_t read_units, int64_t write_units) {
  PlanCandidate c;
  c.mode = PlanMode::kProvisioned;
  c.label = "provisioned";
  c.read_units = read_units;
  c.write_units = write_units;
  return c;
}

PlanResult simulate(const PlanWorkload& w, const PlanCandidate& c, uint64_t seed = 1) {
  PlanOptions options;
  options.seed = seed;
  static const PriceTable prices = shipped_prices();
  static const LatencyProfile latency = flat_latency();
  return simulate_candidate(w, c, latency, prices, options, 0);
}

TEST(PlanInputTest, ShippedPriceTableNamesItsSourceAndDate) {
  const PriceTable prices = shipped_prices();
  EXPECT_EQ(prices.region, "us-east-1");
  EXPECT_FALSE(prices.source.empty());
  EXPECT_EQ(prices.as_of, "2024-11-01");
  EXPECT_GT(prices.provisioned_wcu_hour, prices.provisioned_rcu_hour);
  EXPECT_GT(prices.on_demand_write_per_million, prices.on_demand_read_per_million);
}

TEST(PlanInputTest, BadPriceTablesNameTheField) {
  nlohmann::json document =
      parse_json_file(kSourceDir + "/scenarios/prices/dynamodb-us-east-1.json");
  auto error_of = [](const nlohmann::json& d) -> std::string {
    try {
      parse_price_table(d, "prices.json");
    } catch (const ScenarioError& error) {
      return error.what();
    }
    return "(no error)";
  };
  nlohmann::json missing = document;
  missing.erase("provisioned_wcu_hour");
  EXPECT_NE(error_of(missing).find("$.provisioned_wcu_hour"), std::string::npos)
      << error_of(missing);
  nlohmann::json negative = document;
  negative["storage_gb_month"] = -1;
  EXPECT_NE(error_of(negative).find("$.storage_gb_month"), std::string::npos);
  nlohmann::json typo = document;
  typo["on_demand_writes_per_million"] = 1;
  const std::string typo_error = error_of(typo);
  EXPECT_NE(typo_error.find("on_demand_write_per_million"), std::string::npos) << typo_error;
  EXPECT_NE(typo_error.find("prices.json"), std::string::npos);
}

TEST(PlanInputTest, SloTerms) {
  PlanSlo slo;
  std::string error;
  EXPECT_TRUE(parse_slo_term("throttled=0.5%", &slo, &error));
  EXPECT_DOUBLE_EQ(slo.max_throttled_percent, 0.5);
  EXPECT_TRUE(parse_slo_term("p99=25ms", &slo, &error));
  EXPECT_DOUBLE_EQ(slo.max_p99_ms, 25);
  for (const char* bad : {"throttled=0.5", "throttled=200%", "p99=25", "p99=0ms", "p50=1ms", ""}) {
    EXPECT_FALSE(parse_slo_term(bad, &slo, &error)) << bad;
    EXPECT_NE(error.find("throttled=<percent>%"), std::string::npos);
  }
}

TEST(PlanTest, DemandEstimateIsTheRateTimesTheMix) {
  const PlanWorkload w = workload(1000, sim::minutes(2));
  const DemandEstimate demand = estimate_demand(w);
  EXPECT_DOUBLE_EQ(demand.peak_operations_per_second, 1000);
  EXPECT_DOUBLE_EQ(demand.peak_read_units_per_second, 500);   // 1 KB strong reads: 1 RCU
  EXPECT_DOUBLE_EQ(demand.peak_write_units_per_second, 500);  // 1 KB writes: 1 WCU
}

// A scenario's phases give each stretch its own rate and mix, and its item sizes set the units
// per operation: a minute of 2 KB writes at 400/s (2 WCU each) then a minute of 2 KB strong
// reads at 600/s (1 RCU each).
TEST(PlanTest, PhasesAndItemSizesShapeTheDemandAndTheRun) {
  const ScenarioSpec spec = load_scenario(
      kSourceDir + "/scenarios/capacity-plan.json",
      {"duration=2m", "storage.partitions=20", "workload.keys=20000", "workload.item_size=2KB",
       "workload.key_distribution={\"kind\":\"uniform\"}",
       "workload.phases=["
       "{\"duration\":\"1m\",\"rate\":{\"constant\":\"400/s\"},\"mix\":{\"put\":1}},"
       "{\"duration\":\"1m\",\"rate\":{\"constant\":\"600/s\"},"
       "\"mix\":{\"get_strong\":1}}]"});
  const PlanWorkload w = plan_workload(spec);
  ASSERT_EQ(w.phases.size(), 2u);
  EXPECT_DOUBLE_EQ(w.max_operations_per_second, 600);
  const DemandEstimate demand = estimate_demand(w);
  EXPECT_DOUBLE_EQ(demand.peak_write_units_per_second, 800);
  EXPECT_DOUBLE_EQ(demand.peak_read_units_per_second, 600);
  const PlanResult result = simulate(w, provisioned(900, 1000));
  ASSERT_GE(result.minutes.size(), 2u);
  EXPECT_NEAR(result.minutes[0].write_units_consumed, 800, 80);
  EXPECT_EQ(result.minutes[0].read_units_consumed, 0);
  EXPECT_NEAR(result.minutes[1].read_units_consumed, 600, 60);
  EXPECT_EQ(result.minutes[1].write_units_consumed, 0);
  EXPECT_EQ(result.throttled, 0u);
}

TEST(PlanTest, SameSeedSameResultOtherSeedOtherDraws) {
  const PlanWorkload w = workload(800, sim::minutes(2));
  const PlanResult a = simulate(w, provisioned(300, 300), 1);
  const PlanResult b = simulate(w, provisioned(300, 300), 1);
  const PlanResult c = simulate(w, provisioned(300, 300), 2);
  EXPECT_EQ(a.operations, b.operations);
  EXPECT_EQ(a.throttled, b.throttled);
  EXPECT_EQ(a.p99_ms, b.p99_ms);
  EXPECT_NE(a.operations, c.operations);
}

TEST(PlanTest, HotPartitionThrottlesWhileTheTableIsUnderItsCapacity) {
  // The table is provisioned at 1.5 times the demand a table-level calculator computes.
  PlanWorkload uniform = workload(1000, sim::minutes(10));
  const DemandEstimate demand = estimate_demand(uniform);
  const PlanCandidate sized =
      provisioned(static_cast<int64_t>(demand.peak_read_units_per_second * 1.5),
                  static_cast<int64_t>(demand.peak_write_units_per_second * 1.5));
  const PlanResult even = simulate(uniform, sized);
  PlanWorkload skewed = uniform;
  skewed.key_distribution.kind = KeyDistribution::Kind::kHotSet;
  skewed.key_distribution.hot_keys_fraction = 0.0005;  // 10 keys
  skewed.key_distribution.hot_traffic = 0.5;
  const PlanResult hot = simulate(skewed, sized);
  std::printf("uniform: %.3f%% throttled; hot set: %.3f%% throttled, %llu under table capacity\n",
              even.throttled_percent, hot.throttled_percent,
              static_cast<unsigned long long>(hot.throttled_under_table_capacity));
  EXPECT_LT(even.throttled_percent, 0.5);
  EXPECT_GT(hot.throttled_percent, 5.0);
  EXPECT_GT(hot.throttled_under_table_capacity, hot.throttled / 2);
  // Throttled operations retried with backoff: the tail grows.
  EXPECT_GT(hot.p99_ms, even.p99_ms);
}

TEST(PlanTest, OnDemandTakesTwiceThePreviousPeakAndThrottlesAJumpBeyond) {
  PlanCandidate on_demand;
  on_demand.mode = PlanMode::kOnDemand;
  // 3,000 writes/s: under a new table's 4,000. Spread over enough partitions that no partition
  // reaches its ceiling.
  PlanWorkload steady = workload(3000, sim::minutes(3));
  steady.write_share = 1.0;
  steady.strong_read_share = 0.0;
  steady.partitions = 50;
  EXPECT_LT(simulate(steady, on_demand).throttled_percent, 0.1);
  // A jump to 12,000 writes/s after two minutes: three times the new table's capacity.
  PlanWorkload jump = steady;
  jump.operations_per_second = [](sim::SimTime t) {
    return t < sim::SimTime::zero() + sim::minutes(2) ? 3000.0 : 12000.0;
  };
  jump.max_operations_per_second = 12000;
  const PlanResult r = simulate(jump, on_demand);
  ASSERT_GE(r.minutes.size(), 3u);
  EXPECT_LT(r.minutes[0].throttled_percent, 0.1);
  EXPECT_GT(r.minutes[2].throttled_percent, 20.0);
  EXPECT_EQ(r.throttled_under_table_capacity, 0u);  // not counted for on-demand
}

TEST(PlanTest, AutoScalingRaisesTheCapacityAfterSustainedUse) {
  // 200 RCU and 200 WCU consumed; the table starts at 80 of each. Throttling caps what is
  // consumed at what is provisioned, so target tracking climbs in steps of 1/0.7 (each after two
  // high minutes and the update's delay), as DynamoDB's does.
  PlanWorkload w = workload(400, sim::minutes(24));
  PlanCandidate c;
  c.mode = PlanMode::kAutoScaling;
  c.target_utilization_percent = 70;
  c.read_units = 80;
  c.write_units = 80;
  c.max_read_units = 5000;
  c.max_write_units = 5000;
  const PlanResult r = simulate(w, c);
  ASSERT_GE(r.minutes.size(), 24u);
  EXPECT_GE(r.scaling_actions, 6u);  // reads and writes, three steps each at least
  EXPECT_EQ(r.minutes[0].write_units_provisioned, 80);
  for (size_t i = 1; i < r.minutes.size(); ++i) {
    EXPECT_GE(r.minutes[i].write_units_provisioned, r.minutes[i - 1].write_units_provisioned);
  }
  EXPECT_GT(r.minutes.back().write_units_provisioned, 200);
  EXPECT_GT(r.minutes[1].throttled_percent, 10.0);
  EXPECT_LT(r.minutes.back().throttled_percent, 1.0);
  // Without auto scaling the same table keeps throttling.
  const PlanResult fixed = simulate(w, provisioned(80, 80));
  EXPECT_GT(fixed.minutes.back().throttled_percent, 10.0);
}

TEST(PlanTest, SplitForConsumptionButNotForASingleHotKey) {
  PlanCandidate on_demand;
  on_demand.mode = PlanMode::kOnDemand;
  // One partition written at 950 WCU from many keys: past the split threshold, sustained.
  PlanWorkload spread = workload(950, sim::minutes(4));
  spread.partitions = 1;
  spread.write_share = 1.0;
  spread.strong_read_share = 0.0;
  const PlanResult split = simulate(spread, on_demand);
  EXPECT_GE(split.splits, 1u);
  EXPECT_GT(split.partitions_final, split.partitions_initial);
  // The same load on one key: no cut spreads it.
  PlanWorkload single = spread;
  single.keys = 1;
  const PlanResult kept = simulate(single, on_demand);
  EXPECT_EQ(kept.splits, 0u);
  EXPECT_EQ(kept.partitions_final, 1u);
}

TEST(PlanTest, CostsFollowThePriceTable) {
  const PriceTable prices = shipped_prices();
  const PlanWorkload w = workload(100, sim::minutes(2));
  const PlanResult r = simulate(w, provisioned(100, 50));
  EXPECT_NEAR(r.read_cost, 100 * prices.provisioned_rcu_hour * prices.hours_per_month, 1e-9);
  EXPECT_NEAR(r.write_cost, 50 * prices.provisioned_wcu_hour * prices.hours_per_month, 1e-9);
  PlanCandidate on_demand;
  on_demand.mode = PlanMode::kOnDemand;
  const PlanResult d = simulate(w, on_demand);
  // About 50 reads and 50 writes a second, each one request unit, for a month.
  const double month_seconds = prices.hours_per_month * 3600;
  EXPECT_NEAR(d.write_cost, 50 * month_seconds / 1e6 * prices.on_demand_write_per_million,
              0.1 * d.write_cost);
}

TEST(PlanTest, RecommendsTheCheapestSettingThatMeetsTheSlo) {
  const PriceTable prices = shipped_prices();
  const ScenarioSpec spec =
      load_scenario(kSourceDir + "/scenarios/capacity-plan.json",
                    {"duration=2m", "storage.partitions=40", "workload.operations_per_second=300",
                     "workload.keys=20000"});
  PlanOptions options;
  options.calibration = sim::seconds(5);
  options.provisioned_factors = {1.0, 4.0};
  options.auto_scaling_targets = {70};
  options.jobs = 1;
  const PlanReport one = run_plan(spec, prices, options);
  options.jobs = 2;
  const PlanReport two = run_plan(spec, prices, options);
  EXPECT_EQ(plan_json(one).dump(), plan_json(two).dump());
  // The grid (two provisioned multiples, one auto scaling target, on-demand), then the search.
  ASSERT_GT(one.results.size(), 4u);
  for (size_t i = 4; i < one.results.size(); ++i) EXPECT_TRUE(one.results[i].candidate.searched);
  // The search ends on the boundary: the cheapest passing provisioned multiple found, with a
  // failing one within 5% below it (or the grid's smallest multiple passing).
  double passing = 0, failing = 0;
  for (const PlanResult& r : one.results) {
    if (r.candidate.mode != PlanMode::kProvisioned) continue;
    if (r.meets_slo && (passing == 0 || r.candidate.factor < passing)) passing = r.candidate.factor;
  }
  for (const PlanResult& r : one.results) {
    if (r.candidate.mode == PlanMode::kProvisioned && !r.meets_slo && r.candidate.factor < passing)
      failing = std::max(failing, r.candidate.factor);
  }
  std::printf("provisioned boundary: fails at %.3gx, passes at %.3gx peak\n", failing, passing);
  if (passing > 0 && failing > 0) {
    EXPECT_LT(passing - failing, 0.05 * passing + 1e-9);
  }
  if (one.recommended) {
    for (const PlanResult& r : one.results) {
      if (r.meets_slo) {
        EXPECT_LE(one.results[*one.recommended].monthly_cost, r.monthly_cost);
      }
    }
  }
  const std::string dir = ::testing::TempDir() + "/plan-test";
  ASSERT_TRUE(write_plan(one, dir));
  for (const char* file : {"plan.json", "plan.md", "plan.html", "plan-throttling.svg"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + file)) << file;
  }
  std::ifstream html(dir + "/plan.html");
  const std::string text((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("table-level estimate"), std::string::npos);
}

TEST(SvgChartTest, DrawsEverySeriesWithTicksAndLegend) {
  SvgChart chart("title <&>", "x", "y");
  chart.add_series("a", {{0, 0}, {1, 5}, {2, 3}});
  chart.add_series("b", {{1, 2}}, true);
  const std::string svg = chart.render();
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("<circle"), std::string::npos);
  EXPECT_NE(svg.find("title &lt;&amp;&gt;"), std::string::npos);
  EXPECT_EQ(svg, chart.render());
  const std::vector<double> ticks = nice_ticks(0, 97, 5);
  ASSERT_FALSE(ticks.empty());
  EXPECT_EQ(ticks.front(), 0);
  EXPECT_GE(ticks.back(), 80);
  EXPECT_EQ(ticks[1] - ticks[0], 20);
}

}  // namespace
}  // namespace dynasim::gameday
