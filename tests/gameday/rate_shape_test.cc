// Rate shapes, item size distributions and the CloudWatch replay (gameday/rate_shape.h), their
// loading (gameday/scenario.cc) and their effect on a run:
// - each shape's rate at chosen points, and its closed-form integral against a fine numeric one;
// - a planted ramp that ignores its end is caught by the same checks;
// - the CloudWatch CSV reader: order, gaps, quotes, and every kind of bad row named by line;
// - capacity units per operation from the mix and the item sizes;
// - item size draws: the mean of seeded draws within five standard errors of the exact mean (and
//   of E[ceil(size / 1 KB)]), for every distribution, and a planted lognormal that ignores sigma
//   is caught;
// - the loader: every new field's errors name the JSON path, with hints;
// - a run with a ramp shows it in metrics.csv: each interval's operations within five Poisson
//   standard deviations of the ramp's integral, and rising.
#include "gameday/rate_shape.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gameday/json_reader.h"
#include "gameday/run.h"
#include "gameday/scenario.h"
#include "gameday/workload.h"
#include "sim/random.h"
#include "sim/world.h"

namespace dynasim::gameday {
namespace {

const std::string kSourceDir = DYNASIM_SOURCE_DIR;

// ---- Shapes ------------------------------------------------------------------------------------

// The integral of rate_at over [from, to) by the midpoint rule with `steps` steps.
double numeric_integral(const RateShape& shape, sim::Duration from, sim::Duration to,
                        int steps = 20'000) {
  const int64_t width = (to - from).ns / steps;
  double total = 0;
  for (int i = 0; i < steps; ++i) {
    total += shape.rate_at(from + sim::Duration(width * i + width / 2));
  }
  return total * static_cast<double>(width) / 1e9;
}

// What a ramp must do: start at `from`, reach `to` at `over` and hold it; its integral agrees with
// the trapezoid. Returns the problems (empty when the ramp is right).
std::vector<std::string> ramp_problems(const RateShape& ramp) {
  std::vector<std::string> problems;
  const auto expect_near = [&](const std::string& what, double actual, double expected) {
    if (std::fabs(actual - expected) > 1e-9 * std::max(1.0, std::fabs(expected))) {
      problems.push_back(what + ": " + std::to_string(actual) + " instead of " +
                         std::to_string(expected));
    }
  };
  const double from = ramp.from_per_second;
  const double to = ramp.to_per_second;
  const double over_s = static_cast<double>(ramp.over.ns) / 1e9;
  expect_near("rate at 0", ramp.rate_at(sim::Duration(0)), from);
  expect_near("rate at over / 2", ramp.rate_at(ramp.over / 2), (from + to) / 2);
  expect_near("rate at over", ramp.rate_at(ramp.over), to);
  expect_near("rate at 3 over", ramp.rate_at(ramp.over * 3), to);
  expect_near("max over 3 over", ramp.max_rate(ramp.over * 3), std::max(from, to));
  expect_near("operations over 3 over", ramp.expected_operations(sim::Duration(0), ramp.over * 3),
              (from + to) / 2 * over_s + to * 2 * over_s);
  return problems;
}

TEST(RateShapeTest, ConstantAndRampAtChosenPoints) {
  const RateShape constant = RateShape::constant(250);
  EXPECT_EQ(constant.rate_at(sim::Duration(0)), 250);
  EXPECT_EQ(constant.rate_at(sim::hours(5)), 250);
  EXPECT_DOUBLE_EQ(constant.expected_operations(sim::seconds(10), sim::seconds(70)), 15'000);

  const RateShape up = RateShape::ramp(100, 1000, sim::minutes(5));
  EXPECT_EQ(up.rate_at(sim::Duration(0)), 100);
  EXPECT_DOUBLE_EQ(up.rate_at(sim::seconds(60)), 280);
  EXPECT_EQ(up.rate_at(sim::minutes(5)), 1000);
  EXPECT_EQ(up.rate_at(sim::minutes(50)), 1000);
  EXPECT_EQ(up.max_rate(sim::minutes(2)), 100 + 900 * 2.0 / 5);
  EXPECT_EQ(ramp_problems(up), std::vector<std::string>{});
  const RateShape down = RateShape::ramp(800, 200, sim::seconds(30));
  EXPECT_DOUBLE_EQ(down.rate_at(sim::seconds(15)), 500);
  EXPECT_EQ(down.max_rate(sim::minutes(1)), 800);
  EXPECT_EQ(ramp_problems(down), std::vector<std::string>{});
}

// Planted bug: a ramp that keeps climbing past its end fails the ramp checks.
TEST(RateShapeTest, PlantedRampIgnoringItsEndIsCaught) {
  RateShape ramp = RateShape::ramp(100, 1000, sim::minutes(5));
  ramp.plant_ramp_ignores_end = true;
  const std::vector<std::string> problems = ramp_problems(ramp);
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("rate at 3 over"), std::string::npos) << problems[0];
}

TEST(RateShapeTest, DiurnalAtChosenPoints) {
  RateShape sine;
  sine.kind = RateShape::Kind::kDiurnal;
  sine.mean_per_second = 200;
  sine.amplitude_per_second = 150;
  sine.period = sim::hours(24);
  EXPECT_DOUBLE_EQ(sine.rate_at(sim::Duration(0)), 200);
  EXPECT_NEAR(sine.rate_at(sim::hours(6)), 350, 1e-9);
  EXPECT_NEAR(sine.rate_at(sim::hours(12)), 200, 1e-9);
  EXPECT_NEAR(sine.rate_at(sim::hours(18)), 50, 1e-9);
  EXPECT_NEAR(sine.rate_at(sim::hours(30)), 350, 1e-9);  // periodic
  EXPECT_EQ(sine.max_rate(sim::hours(24)), 350);
  // A whole period integrates to the mean; the first half to mean + 2 amplitude / (2 pi / T).
  EXPECT_NEAR(sine.expected_operations(sim::Duration(0), sim::hours(24)), 200.0 * 86'400, 1e-3);
  const double half = 200.0 * 43'200 + 150.0 * 86'400 / 3.14159265358979323846;
  EXPECT_NEAR(sine.expected_operations(sim::Duration(0), sim::hours(12)), half, 1e-3);
  // The phase shifts: the rate at t is the unshifted one at t + phase.
  sine.phase = sim::hours(6);
  EXPECT_NEAR(sine.rate_at(sim::Duration(0)), 350, 1e-9);
  EXPECT_NEAR(sine.rate_at(sim::hours(12)), 50, 1e-9);
}

TEST(RateShapeTest, SpikeAtChosenPoints) {
  RateShape spike;
  spike.kind = RateShape::Kind::kSpike;
  spike.base_per_second = 100;
  spike.peak_per_second = 1100;
  spike.at = sim::seconds(60);
  spike.rise = sim::seconds(10);
  spike.hold = sim::seconds(30);
  spike.fall = sim::seconds(20);
  EXPECT_EQ(spike.rate_at(sim::Duration(0)), 100);
  EXPECT_EQ(spike.rate_at(sim::seconds(60)), 100);
  EXPECT_DOUBLE_EQ(spike.rate_at(sim::seconds(65)), 600);
  EXPECT_EQ(spike.rate_at(sim::seconds(70)), 1100);
  EXPECT_EQ(spike.rate_at(sim::seconds(99)), 1100);
  EXPECT_DOUBLE_EQ(spike.rate_at(sim::seconds(110)), 600);
  EXPECT_EQ(spike.rate_at(sim::seconds(120)), 100);
  EXPECT_EQ(spike.rate_at(sim::hours(1)), 100);
  EXPECT_EQ(spike.max_rate(sim::hours(1)), 1100);
  // 200 s: base 100 throughout, plus the spike's area above it: 1000 * (10/2 + 30 + 20/2).
  EXPECT_DOUBLE_EQ(spike.expected_operations(sim::Duration(0), sim::seconds(200)),
                   100.0 * 200 + 1000.0 * 45);
  // A step (no rise, no fall).
  spike.rise = sim::Duration(0);
  spike.fall = sim::Duration(0);
  EXPECT_EQ(spike.rate_at(sim::seconds(59)), 100);
  EXPECT_EQ(spike.rate_at(sim::seconds(60)), 1100);
  EXPECT_EQ(spike.rate_at(sim::seconds(90)), 100);
  EXPECT_DOUBLE_EQ(spike.expected_operations(sim::Duration(0), sim::seconds(200)),
                   100.0 * 200 + 1000.0 * 30);
}

// Every shape's closed-form integral agrees with a fine numeric one over assorted intervals.
TEST(RateShapeTest, IntegralsAgreeWithNumericOnes) {
  std::vector<RateShape> shapes;
  shapes.push_back(RateShape::constant(42));
  shapes.push_back(RateShape::ramp(10, 500, sim::seconds(90)));
  RateShape sine;
  sine.kind = RateShape::Kind::kDiurnal;
  sine.mean_per_second = 300;
  sine.amplitude_per_second = 250;
  sine.period = sim::minutes(7);
  sine.phase = sim::seconds(100);
  shapes.push_back(sine);
  RateShape spike;
  spike.kind = RateShape::Kind::kSpike;
  spike.base_per_second = 50;
  spike.peak_per_second = 400;
  spike.at = sim::seconds(40);
  spike.rise = sim::seconds(5);
  spike.hold = sim::seconds(20);
  spike.fall = sim::seconds(35);
  shapes.push_back(spike);
  RateShape replay;
  replay.kind = RateShape::Kind::kReplay;
  replay.per_minute_per_second = {10, 0, 35.5, 80, 12};
  shapes.push_back(replay);
  sim::Random random(11);
  for (const RateShape& shape : shapes) {
    for (int i = 0; i < 20; ++i) {
      const sim::Duration from =
          sim::milliseconds(static_cast<int64_t>(random.uniform_u64(200'000)));
      const sim::Duration to =
          from + sim::milliseconds(1 + static_cast<int64_t>(random.uniform_u64(200'000)));
      const double exact = shape.expected_operations(from, to);
      EXPECT_NEAR(exact, numeric_integral(shape, from, to), 1e-3 * std::max(1.0, exact))
          << to_string(shape.kind) << " over [" << from.ns << ", " << to.ns << ")";
      EXPECT_LE(shape.rate_at(from), shape.max_rate(to) + 1e-9) << to_string(shape.kind);
    }
  }
}

// ---- CloudWatch --------------------------------------------------------------------------------

std::vector<double> parse(const std::string& text, CloudWatchColumns columns = {}) {
  return parse_cloudwatch_csv(text, "metrics.csv", columns, "$.workload.rate.replay.file");
}

std::optional<ScenarioError> parse_error(const std::string& text) {
  try {
    parse(text);
  } catch (const ScenarioError& error) {
    return error;
  }
  return std::nullopt;
}

TEST(RateShapeTest, CloudWatchCsvInAnyOrderWithGaps) {
  // Out of order (as get-metric-statistics returns them), a missing minute, CRLF, quotes, an
  // extra column, fractions of a second that are zero, a blank line.
  const std::string text =
      "\"Timestamp\",\"Sum\",\"Unit\"\r\n"
      "2026-03-02T08:02:00Z,180,Count\r\n"
      "\"2026-03-02 08:00:00\",\"60.5\",Count\r\n"
      "\r\n"
      "2026-03-02T08:04:00.000+00:00,0,Count\r\n"
      "2026-03-02T08:01:00Z,120,Count\r\n";
  EXPECT_EQ(parse(text), (std::vector<double>{60.5, 120, 180, 0, 0}));
  // Other column names, by configuration.
  CloudWatchColumns columns;
  columns.timestamp = "Time";
  columns.value = "ConsumedWriteCapacityUnits";
  EXPECT_EQ(parse("Time,ConsumedWriteCapacityUnits\n2024-02-29 23:59:00,6\n2024-03-01 00:00:00,7\n",
                  columns),
            (std::vector<double>{6, 7}));
  int64_t seconds = 0;
  ASSERT_TRUE(parse_utc_timestamp("2024-02-29T23:59:00Z", &seconds));
  EXPECT_EQ(seconds, 1'709'251'140);
  EXPECT_FALSE(parse_utc_timestamp("2023-02-29T00:00:00Z", &seconds));
  EXPECT_FALSE(parse_utc_timestamp("2024-01-01T00:00:00+01:00", &seconds));
}

TEST(RateShapeTest, CloudWatchCsvBadRowsNameTheirLine) {
  const std::string header = "Timestamp,Sum,Unit\n";
  struct Case {
    std::string text;
    size_t line;
    std::string words;  // in the message
  };
  const std::vector<Case> cases = {
      {header + "2026-03-02T08:00:00Z,1,Count\n2026-03-02T8:01:00Z,2,Count\n", 3,
       "a UTC time stamp"},
      {header + "2026-03-02T08:00:00Z,1,Count\n2026-03-02T08:01:00Z,-2,Count\n", 3,
       "a non-negative number"},
      {header + "2026-03-02T08:00:00Z,1,Count\n2026-03-02T08:01:00Z,,Count\n", 3, "an empty cell"},
      {header + "2026-03-02T08:00:00Z,1,Count\n2026-03-02T08:01:00Z\n", 3, "comma-separated"},
      {header + "2026-03-02T08:00:00Z,1,Count\n2026-03-02T08:01:30Z,2,Count\n", 3,
       "whole minutes apart"},
      {header + "2026-03-02T08:00:00Z,1,Count\n\n2026-03-02T08:00:00Z,2,Count\n", 4,
       "one datapoint per minute"},
      {header + "2026-03-02T08:00:00Z,1e999,Count\n", 2, "a non-negative number"},
      {"Timestamp,Sun,Unit\n2026-03-02T08:00:00Z,1,Count\n", 1, "did you mean \"Sun\"?"},
      {header, 2, "no datapoint rows"},
  };
  for (const Case& c : cases) {
    const std::optional<ScenarioError> error = parse_error(c.text);
    ASSERT_TRUE(error.has_value()) << c.text;
    EXPECT_EQ(error->line, c.line) << error->what();
    EXPECT_EQ(error->file, "metrics.csv");
    EXPECT_EQ(error->path, "$.workload.rate.replay.file");
    EXPECT_NE(std::string(error->what()).find(c.words), std::string::npos) << error->what();
    EXPECT_NE(std::string(error->what()).find("metrics.csv:" + std::to_string(c.line) + ":"),
              std::string::npos)
        << error->what();
  }
}

TEST(RateShapeTest, CapacityUnitsPerOperation) {
  MixWeights mix;
  mix.put = 30;
  mix.get_strong = 25;
  mix.get_eventual = 20;
  mix.put_if_version = 15;
  mix.put_if_absent = 5;
  mix.delete_item = 5;
  // 1 KB items: a write is 1 WCU, a read 1 RCU strong, 1/2 eventual.
  const ItemSizeDistribution one_kb = ItemSizeDistribution::fixed(1024);
  EXPECT_DOUBLE_EQ(
      capacity_units_per_operation(CapacityMetric::kConsumedWriteCapacityUnits, mix, one_kb), 0.55);
  EXPECT_DOUBLE_EQ(
      capacity_units_per_operation(CapacityMetric::kConsumedReadCapacityUnits, mix, one_kb), 0.35);
  // 5 KB items: 5 WCU per write, 2 RCU per strong read.
  const ItemSizeDistribution five_kb = ItemSizeDistribution::fixed(5 * 1024);
  EXPECT_DOUBLE_EQ(
      capacity_units_per_operation(CapacityMetric::kConsumedWriteCapacityUnits, mix, five_kb),
      0.55 * 5);
  EXPECT_DOUBLE_EQ(
      capacity_units_per_operation(CapacityMetric::kConsumedReadCapacityUnits, mix, five_kb),
      0.35 * 2);
  // Sizes 1..3072 alike: a third of them need 1, 2 and 3 WCU.
  ItemSizeDistribution uniform;
  uniform.kind = ItemSizeDistribution::Kind::kUniform;
  uniform.min_bytes = 1;
  uniform.max_bytes = 3 * 1024;
  EXPECT_DOUBLE_EQ(uniform.expected_units(1024), 2.0);
  EXPECT_DOUBLE_EQ(uniform.expected_units(4096), 1.0);
}

// UpdateItem, Query and Scan in the mix: an ADD to a small counter is one WCU, a Query one strong
// read of an item, a Scan page ten items summed then rounded, at 3/4 of a strong read.
TEST(RateShapeTest, CapacityUnitsPerOperationOfUpdateQueryAndScan) {
  MixWeights mix;
  mix.put = 10;
  mix.update = 30;
  mix.get_eventual = 20;
  mix.query = 20;
  mix.scan = 20;
  const ItemSizeDistribution one_kb = ItemSizeDistribution::fixed(1024);
  EXPECT_DOUBLE_EQ(
      capacity_units_per_operation(CapacityMetric::kConsumedWriteCapacityUnits, mix, one_kb),
      0.1 + 0.3);
  // Reads: 0.2 / 2 + 0.2 strong items of 1 RCU; scans: ceil(10 KB / 4 KB) = 3 RCU, times 3/4.
  EXPECT_DOUBLE_EQ(
      capacity_units_per_operation(CapacityMetric::kConsumedReadCapacityUnits, mix, one_kb),
      0.1 + 0.2 + 0.2 * 0.75 * 3);
  EXPECT_DOUBLE_EQ(
      capacity_units_per_operation(CapacityMetric::kConsumedReadCapacityUnits, mix, one_kb, 4),
      0.1 + 0.2 + 0.2 * 0.75 * 1);
}

// ---- Item sizes
// ----------------------------------------------------------------------------------

// Seeded draws: the mean of the sizes and of the 1 KB units each needs must lie within five
// standard errors of the exact values. Returns the problems.
std::vector<std::string> item_size_problems(const ItemSizeDistribution& sizes, uint64_t seed) {
  constexpr int kDraws = 40'000;
  sim::Random random(seed);
  double sum = 0, sum_sq = 0, units = 0, units_sq = 0;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t size = sizes.draw(random);
    if (size < 1 || size > kMaxWorkloadItemBytes) {
      return {"a size out of range: " + std::to_string(size)};
    }
    const double x = static_cast<double>(size);
    const double u = static_cast<double>((size + 1023) / 1024);
    sum += x;
    sum_sq += x * x;
    units += u;
    units_sq += u * u;
  }
  std::vector<std::string> problems;
  const auto check = [&](const char* what, double total, double total_sq, double expected) {
    const double mean = total / kDraws;
    const double variance = std::max(total_sq / kDraws - mean * mean, 0.0);
    // A floor on the standard error for distributions with (nearly) no spread.
    const double standard_error = std::max(std::sqrt(variance / kDraws), 1e-6 * expected);
    if (std::fabs(mean - expected) > 5 * standard_error) {
      problems.push_back(std::string(what) + ": mean " + std::to_string(mean) + ", expected " +
                         std::to_string(expected) + " +- " + std::to_string(5 * standard_error));
    }
  };
  check("size", sum, sum_sq, sizes.mean_bytes());
  check("units", units, units_sq, sizes.expected_units(1024));
  return problems;
}

std::vector<ItemSizeDistribution> assorted_sizes() {
  std::vector<ItemSizeDistribution> all;
  all.push_back(ItemSizeDistribution::fixed(1500));
  ItemSizeDistribution uniform;
  uniform.kind = ItemSizeDistribution::Kind::kUniform;
  uniform.min_bytes = 100;
  uniform.max_bytes = 9000;
  all.push_back(uniform);
  for (const auto& [median, sigma] : std::vector<std::pair<uint64_t, double>>{
           {1024, 0.5}, {4096, 1.5}, {200 * 1024, 1.0}, {300, 0.0}}) {
    ItemSizeDistribution lognormal;
    lognormal.kind = ItemSizeDistribution::Kind::kLognormal;
    lognormal.median_bytes = median;
    lognormal.sigma = sigma;
    all.push_back(lognormal);
  }
  ItemSizeDistribution histogram;
  histogram.kind = ItemSizeDistribution::Kind::kHistogram;
  histogram.buckets = {{512, 5}, {2048, 3}, {64 * 1024, 0.5}, {100, 0}};
  all.push_back(histogram);
  return all;
}

TEST(RateShapeTest, ItemSizeDrawsMatchTheirMeans) {
  uint64_t seed = 1;
  for (const ItemSizeDistribution& sizes : assorted_sizes()) {
    for (int round = 0; round < 3; ++round) {
      EXPECT_EQ(item_size_problems(sizes, seed++), std::vector<std::string>{})
          << to_string(sizes.kind) << " median " << sizes.median_bytes << " sigma " << sizes.sigma;
    }
  }
}

// Planted bug: lognormal draws that ignore sigma miss the mean by far more than the bound.
TEST(RateShapeTest, PlantedLognormalIgnoringSigmaIsCaught) {
  ItemSizeDistribution lognormal;
  lognormal.kind = ItemSizeDistribution::Kind::kLognormal;
  lognormal.median_bytes = 1024;
  lognormal.sigma = 0.5;
  lognormal.plant_lognormal_ignores_sigma = true;
  EXPECT_FALSE(item_size_problems(lognormal, 7).empty());
}

// ---- Loading -----------------------------------------------------------------------------------

const std::string kReplayScenario = kSourceDir + "/scenarios/cloudwatch-replay.json";

std::optional<ScenarioError> load_error(const std::vector<std::string>& overrides) {
  try {
    load_scenario(kReplayScenario, overrides);
  } catch (const ScenarioError& error) {
    return error;
  }
  return std::nullopt;
}

TEST(RateShapeLoaderTest, TheExampleLoadsWithItsReplayConverted) {
  const ScenarioSpec spec = load_scenario(kReplayScenario, {});
  const WorkloadSpec& workload = spec.workload;
  ASSERT_EQ(workload.phases.size(), 2u);
  EXPECT_EQ(workload.phases[0].rate.kind, RateShape::Kind::kRamp);
  EXPECT_EQ(workload.phases[0].rate.to_per_second, 100);
  const RateShape& replay = workload.phases[1].rate;
  ASSERT_EQ(replay.kind, RateShape::Kind::kReplay);
  ASSERT_EQ(replay.per_minute_per_second.size(), 10u);
  ASSERT_TRUE(workload.item_size_distribution.has_value());
  // 3000 WCU in the first minute = 50 WCU/s; each operation consumes 0.55 writes times
  // E[ceil(size / 1 KB)] units.
  const double units = 0.55 * workload.item_size_distribution->expected_units(1024);
  EXPECT_DOUBLE_EQ(replay.per_minute_per_second[0], 3000.0 / 60 / units);
  EXPECT_DOUBLE_EQ(replay.per_minute_per_second[5], 12000.0 / 60 / units);
  // The phases' processes split the table's rate.
  const std::vector<WorkloadPhase> phases = workload_phases(workload, 3);
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[1].duration, sim::minutes(8));
  EXPECT_EQ(phases[0].mix.put, 3000u);
  // Without rate and phases, nothing changes: operations_per_second per process.
  const ScenarioSpec plain =
      load_scenario(kSourceDir + "/scenarios/power-off-game-day.json", {"duration=2m"});
  EXPECT_TRUE(workload_phases(plain.workload, 3).empty());
  EXPECT_FALSE(plain.workload.item_size_distribution.has_value());
}

TEST(RateShapeLoaderTest, ErrorsNameTheFieldWithHints) {
  struct Case {
    std::vector<std::string> overrides;
    std::string path;
    std::string words;
  };
  const std::vector<Case> cases = {
      {{R"(workload.phases[0].rate={"ramp":{"from":"1/s","to":"9/s","ovr":"1m"}})"},
       "$.workload.phases[0].rate.ramp.over",
       "\"ovr\" a typo for \"over\""},
      {{R"(workload.phases[0].rate={"constant":"5/s","ramp":{"from":"1/s","to":"9/s","over":"1m"}})"},
       "$.workload.phases[0].rate",
       "the shapes \"constant\" and \"ramp\""},
      {{R"(workload.phases[0].rate={"constant":"5"})"},
       "$.workload.phases[0].rate.constant",
       "a rate such as"},
      {{R"(workload.phases[0].rate={"diurnal":{"mean":"10/s","amplitude":"20/s","period":"1h"}})"},
       "$.workload.phases[0].rate.diurnal.amplitude",
       "at most the mean (10/s)"},
      {{"workload.phases[1].duration=9m"}, "$.workload.phases", "fit in the scenario's duration"},
      {{"workload.phases[1].duration=11m", "duration=20m"},
       "$.workload.phases[1].duration",
       "a CSV of 10 minutes"},
      {{"workload.phases[1].rate.replay.metric=ConsumedWriteCapacity"},
       "$.workload.phases[1].rate.replay.metric",
       "did you mean \"ConsumedWriteCapacityUnits\"?"},
      {{"workload.phases[1].rate.replay.file=data/no-such.csv"},
       "$.workload.phases[1].rate.replay.file",
       "cannot be opened"},
      {{R"(workload.phases[1].mix={"get_strong":1})"},
       "$.workload.phases[1].rate.replay.metric",
       "a mix of no writes"},
      {{R"(workload.rate={"constant":"10/s"})", "workload.operations_per_second=5"},
       "$.workload.rate",
       "either rate"},
      {{R"(workload.item_size_distribution={"uniform":{"min":"1KB","max":"500KB"}})"},
       "$.workload.item_size_distribution.uniform.max",
       "maximum item size is 400 KB"},
      {{R"(workload.item_size_distribution={"uniform":{"min":"2KB","max":"1KB"}})"},
       "$.workload.item_size_distribution.uniform.max",
       "at least min (2KB)"},
      {{R"(workload.item_size_distribution={"lognormal":{"median":"1KB","sigm":1}})"},
       "$.workload.item_size_distribution.lognormal.sigma",
       "\"sigm\" a typo for \"sigma\""},
      {{R"(workload.item_size_distribution={"histogram":[{"size":"1KB","weight":0}]})"},
       "$.workload.item_size_distribution.histogram[0].weight",
       "from 1 to"},
      {{"workload.item_size=2KB"}, "$.workload.item_size_distribution", "either item_size"},
      {{R"(workload.phases[0].key_distribution={"kind":"zipff"})"},
       "$.workload.phases[0].key_distribution.kind",
       "did you mean \"zipf\"?"},
      {{R"(workload.phases[0].durration="2m")"},
       "$.workload.phases[0].durration",
       "did you mean \"duration\"?"},
  };
  for (const Case& c : cases) {
    const std::optional<ScenarioError> error = load_error(c.overrides);
    ASSERT_TRUE(error.has_value()) << c.overrides[0];
    EXPECT_EQ(error->path, c.path) << error->what();
    EXPECT_NE(std::string(error->what()).find(c.words), std::string::npos) << error->what();
  }
}

// ---- A run
// ---------------------------------------------------------------------------------------

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(file, line)) {
    std::vector<std::string> cells;
    std::stringstream fields(line);
    std::string cell;
    while (std::getline(fields, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

// One workload process against storage addresses nobody answers (its arrivals do not depend on
// answers), through five phases and a quiet tail. Returns the arrivals counted at each phase end
// and at the end, and the candidates thinned.
struct PhasedArrivals {
  std::vector<uint64_t> at_phase_ends;
  uint64_t thinned = 0;
};

PhasedArrivals run_phases(const std::vector<WorkloadPhase>& phases, sim::Duration length,
                          uint64_t seed, bool plant_keep_every_candidate = false) {
  sim::Simulation simulation(seed);
  sim::World world(simulation, sim::WorldOptions{});
  const sim::RackId rack = world.add_rack(world.add_az("az-a"), "az-a/r0");
  std::array<sim::Address, model::kReplicasPerGroup> replicas;
  for (uint32_t r = 0; r < model::kReplicasPerGroup; ++r) {
    replicas[r] =
        sim::Address{world.add_host(rack, "az-a/s" + std::to_string(r), {}), model::kStoragePort};
  }
  const model::Placement placement = model::Placement::uniform(1, {replicas});
  WorkloadOptions options;
  options.phases = phases;
  options.rate_share = 0.5;  // one of two processes: half of each phase's table rate
  options.plant_keep_every_candidate = plant_keep_every_candidate;
  options.client.max_attempts = 1;
  options.client.attempt_timeout = sim::milliseconds(20);
  const sim::HostId client = world.add_host(rack, "az-a/client", {});
  world.add_process(client, model::kClientPort, [&] {
    return std::make_unique<WorkloadProcess>(options, &placement, 1, nullptr);
  });
  world.start();
  PhasedArrivals result;
  sim::Duration end(0);
  const auto* workload = [&] {
    return dynamic_cast<const WorkloadProcess*>(
        world.process_at(sim::Address{client, model::kClientPort}));
  }();
  for (const WorkloadPhase& phase : phases) {
    end += phase.duration;
    simulation.run_until(sim::SimTime::zero() + end);
    result.at_phase_ends.push_back(workload->stats().arrivals);
  }
  simulation.run_until(sim::SimTime::zero() + length);
  result.at_phase_ends.push_back(workload->stats().arrivals);
  result.thinned = workload->stats().thinned;
  return result;
}

std::vector<WorkloadPhase> assorted_phases() {
  std::vector<WorkloadPhase> phases(4);
  phases[0].rate = RateShape::constant(400);
  phases[1].rate = RateShape::ramp(0, 800, sim::seconds(20));
  phases[2].rate.kind = RateShape::Kind::kSpike;
  phases[2].rate.base_per_second = 100;
  phases[2].rate.peak_per_second = 1000;
  phases[2].rate.at = sim::seconds(5);
  phases[2].rate.rise = sim::seconds(2);
  phases[2].rate.hold = sim::seconds(5);
  phases[2].rate.fall = sim::seconds(3);
  phases[3].rate.kind = RateShape::Kind::kDiurnal;
  phases[3].rate.mean_per_second = 300;
  phases[3].rate.amplitude_per_second = 200;
  phases[3].rate.period = sim::seconds(40);
  for (WorkloadPhase& phase : phases) phase.duration = sim::seconds(20);
  return phases;
}

// Each phase's arrivals must lie within five Poisson standard deviations of its shape's integral
// (the process's half of it), and nothing may arrive after the last phase. Returns the problems.
std::vector<std::string> arrival_problems(const std::vector<WorkloadPhase>& phases,
                                          const PhasedArrivals& run) {
  std::vector<std::string> problems;
  uint64_t before = 0;
  for (size_t i = 0; i < phases.size(); ++i) {
    const double expected =
        0.5 * phases[i].rate.expected_operations(sim::Duration(0), phases[i].duration);
    const double observed = static_cast<double>(run.at_phase_ends[i] - before);
    if (std::fabs(observed - expected) > 5 * std::sqrt(expected)) {
      problems.push_back("phase " + std::to_string(i) + ": " + std::to_string(observed) +
                         " arrivals, expected " + std::to_string(expected));
    }
    before = run.at_phase_ends[i];
  }
  if (run.at_phase_ends.back() != before) problems.push_back("arrivals after the last phase");
  return problems;
}

TEST(RateShapeRunTest, PhasedArrivalsFollowEachPhasesIntegral) {
  const std::vector<WorkloadPhase> phases = assorted_phases();
  const PhasedArrivals run = run_phases(phases, sim::seconds(100), 5);
  ASSERT_EQ(run.at_phase_ends.size(), 5u);
  EXPECT_EQ(arrival_problems(phases, run), std::vector<std::string>{});
  EXPECT_GT(run.thinned, 0u);
  const PhasedArrivals again = run_phases(phases, sim::seconds(100), 5);
  EXPECT_EQ(again.at_phase_ends, run.at_phase_ends);
  EXPECT_EQ(again.thinned, run.thinned);
}

// Planted bug: thinning that keeps every candidate runs each shaped phase at its maximum.
TEST(RateShapeRunTest, PlantedThinningThatKeepsEveryCandidateIsCaught) {
  const std::vector<WorkloadPhase> phases = assorted_phases();
  const PhasedArrivals run = run_phases(phases, sim::seconds(100), 5, true);
  const std::vector<std::string> problems = arrival_problems(phases, run);
  EXPECT_EQ(problems.size(), 3u);  // the ramp, the spike and the sine; not the constant phase
  EXPECT_EQ(run.thinned, 0u);
}

// A 60 s ramp from 30/s to 300/s for the whole table: in metrics.csv each 10 s interval's
// operations lie within five Poisson standard deviations (plus the few operations in flight
// across a boundary) of the ramp's integral over it, and every interval has more than the one
// before (the expected step, 450, is over six standard deviations of the difference).
TEST(RateShapeRunTest, RampIsVisibleInMetricsCsv) {
  const ScenarioSpec spec = load_scenario(
      kReplayScenario,
      {"duration=60s", "heal=20s", "workload.verify_after=5s", "faults.timeline=[]",
       R"(workload.phases=[{"duration":"60s","rate":{"ramp":{"from":"30/s","to":"300/s","over":"60s"}}}])"});
  const RateShape& ramp = spec.workload.phases[0].rate;
  ScenarioRun run(spec, 3);
  run.record_metrics(sim::seconds(10));
  run.run_to_end();
  const std::string directory = ::testing::TempDir() + "/rate-shape-ramp";
  std::filesystem::create_directories(directory);
  ASSERT_TRUE(run.write_metrics(directory));
  const auto rows = read_csv(directory + "/metrics.csv");
  ASSERT_GE(rows.size(), 7u);
  ASSERT_EQ(rows[0][1], "operations");
  double previous = -1;
  for (int i = 0; i < 6; ++i) {
    const double observed = std::stod(rows[1 + i][1]);
    const double expected =
        ramp.expected_operations(sim::seconds(10 * i), sim::seconds(10 * (i + 1)));
    EXPECT_NEAR(observed, expected, 5 * std::sqrt(expected) + 10) << "interval " << i;
    EXPECT_GT(observed, previous) << "interval " << i;
    previous = observed;
  }
}

}  // namespace
}  // namespace dynasim::gameday
