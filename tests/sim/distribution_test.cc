// Tests for sim/distribution.h: each kind's sample mean agrees with expected_mean(), the floor and
// ceiling clamps hold, sample_duration rounds to the nearest nanosecond and saturates, and
// describe() prints what a person would expect to read.

#include "sim/distribution.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "sim/random.h"
#include "sim/time.h"

namespace dynasim::sim {
namespace {

constexpr int kDrawCount = 200'000;

double sample_mean(const DistributionSpec& spec, uint64_t seed) {
  Random random(seed);
  double sum = 0;
  for (int i = 0; i < kDrawCount; ++i) sum += spec.sample(random);
  return sum / kDrawCount;
}

TEST(DistributionSpecTest, FactoriesSetKindAndParameters) {
  const DistributionSpec constant = DistributionSpec::constant(7);
  EXPECT_EQ(constant.kind, DistributionSpec::Kind::kConstant);
  EXPECT_EQ(constant.value, 7);
  const DistributionSpec uniform = DistributionSpec::uniform(1, 3);
  EXPECT_EQ(uniform.kind, DistributionSpec::Kind::kUniform);
  EXPECT_EQ(uniform.low, 1);
  EXPECT_EQ(uniform.high, 3);
  const DistributionSpec exponential = DistributionSpec::exponential(5);
  EXPECT_EQ(exponential.kind, DistributionSpec::Kind::kExponential);
  EXPECT_EQ(exponential.mean, 5);
  const DistributionSpec normal = DistributionSpec::normal(4, 2);
  EXPECT_EQ(normal.kind, DistributionSpec::Kind::kNormal);
  EXPECT_EQ(normal.mean, 4);
  EXPECT_EQ(normal.stddev, 2);
  const DistributionSpec lognormal = DistributionSpec::lognormal(9, 0.5);
  EXPECT_EQ(lognormal.kind, DistributionSpec::Kind::kLogNormal);
  EXPECT_EQ(lognormal.median, 9);
  EXPECT_EQ(lognormal.sigma, 0.5);
  const DistributionSpec pareto = DistributionSpec::pareto(10, 2.5);
  EXPECT_EQ(pareto.kind, DistributionSpec::Kind::kPareto);
  EXPECT_EQ(pareto.scale, 10);
  EXPECT_EQ(pareto.shape, 2.5);
  // No floor other than 0 and no ceiling unless asked for.
  EXPECT_EQ(pareto.minimum, 0);
  EXPECT_EQ(pareto.maximum, 0);
}

TEST(DistributionSpecTest, ExpectedMeanFormulas) {
  EXPECT_EQ(DistributionSpec::constant(7).expected_mean(), 7);
  EXPECT_EQ(DistributionSpec::uniform(10, 20).expected_mean(), 15);
  EXPECT_EQ(DistributionSpec::exponential(100).expected_mean(), 100);
  EXPECT_EQ(DistributionSpec::normal(50, 5).expected_mean(), 50);
  EXPECT_NEAR(DistributionSpec::lognormal(100, 0.5).expected_mean(), 100 * std::exp(0.125), 1e-9);
  EXPECT_EQ(DistributionSpec::pareto(10, 3).expected_mean(), 15);
  EXPECT_EQ(DistributionSpec::pareto(10, 1).expected_mean(),
            std::numeric_limits<double>::infinity());
  EXPECT_EQ(DistributionSpec::pareto(10, 0.5).expected_mean(),
            std::numeric_limits<double>::infinity());
}

TEST(DistributionSpecTest, ConstantAlwaysReturnsItsValue) {
  const DistributionSpec spec = DistributionSpec::constant(42.5);
  Random random(1);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(spec.sample(random), 42.5);
}

TEST(DistributionSpecTest, SampleMeansMatchExpectedMean) {
  struct Case {
    DistributionSpec spec;
    // Allowed relative error of the sample mean: several standard errors for that distribution.
    double relative_tolerance;
  };
  const std::vector<Case> cases = {
      {DistributionSpec::uniform(10, 20), 0.01},       // standard error 0.04%
      {DistributionSpec::exponential(100), 0.02},      // 0.22%
      {DistributionSpec::normal(50, 5), 0.005},        // 0.02%
      {DistributionSpec::lognormal(100, 0.5), 0.015},  // 0.12%
      {DistributionSpec::pareto(10, 3), 0.03},         // 0.13%
  };
  uint64_t seed = 30;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec.describe());
    const double expected = c.spec.expected_mean();
    EXPECT_NEAR(sample_mean(c.spec, seed++), expected, c.relative_tolerance * expected);
  }
}

TEST(DistributionSpecTest, LogNormalMedianIsTheMedian) {
  // The log-normal is parameterised by its median, not its mean: half of the draws lie below it.
  const DistributionSpec spec = DistributionSpec::lognormal(1000, 1.2);
  Random random(40);
  int below = 0;
  for (int i = 0; i < kDrawCount; ++i) below += spec.sample(random) < 1000;
  EXPECT_NEAR(below / double{kDrawCount}, 0.5, 0.01);  // standard error 0.0011
}

TEST(DistributionSpecTest, SampleSequencesAreReproducible) {
  for (const DistributionSpec& spec :
       {DistributionSpec::uniform(1, 2), DistributionSpec::exponential(3),
        DistributionSpec::normal(4, 5), DistributionSpec::lognormal(6, 0.7),
        DistributionSpec::pareto(8, 1.9)}) {
    Random first(41);
    Random second(41);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(spec.sample(first), spec.sample(second));
  }
}

TEST(DistributionSpecTest, DefaultFloorKeepsSamplesNonNegative) {
  // A normal centred on 0 has half its mass below 0; with the default floor of 0 all of that mass
  // lands exactly on 0.
  const DistributionSpec spec = DistributionSpec::normal(0, 10);
  Random random(42);
  int zeros = 0;
  for (int i = 0; i < 100'000; ++i) {
    const double x = spec.sample(random);
    ASSERT_GE(x, 0.0);
    zeros += x == 0.0;
  }
  EXPECT_NEAR(zeros / 100'000.0, 0.5, 0.01);
}

TEST(DistributionSpecTest, MinimumAndMaximumClamp) {
  DistributionSpec spec = DistributionSpec::exponential(10);
  spec.minimum = 5;
  spec.maximum = 20;
  Random random(43);
  int at_minimum = 0;
  int at_maximum = 0;
  constexpr int kClampDraws = 100'000;
  for (int i = 0; i < kClampDraws; ++i) {
    const double x = spec.sample(random);
    ASSERT_GE(x, 5.0);
    ASSERT_LE(x, 20.0);
    at_minimum += x == 5.0;
    at_maximum += x == 20.0;
  }
  // P(X < 5) = 1 - e^-0.5 = 0.393; P(X > 20) = e^-2 = 0.135.
  EXPECT_NEAR(at_minimum / double{kClampDraws}, 1 - std::exp(-0.5), 0.01);
  EXPECT_NEAR(at_maximum / double{kClampDraws}, std::exp(-2.0), 0.01);
}

TEST(DistributionSpecTest, ZeroMaximumMeansNoCeiling) {
  // A Pareto with shape 0.5 has an infinite mean: without a ceiling, huge values appear.
  DistributionSpec spec = DistributionSpec::pareto(1, 0.5);
  Random random(44);
  double largest = 0;
  for (int i = 0; i < 10'000; ++i) largest = std::max(largest, spec.sample(random));
  EXPECT_GT(largest, 1e6);

  spec.maximum = 1000;
  int at_ceiling = 0;
  for (int i = 0; i < 10'000; ++i) {
    const double x = spec.sample(random);
    ASSERT_LE(x, 1000.0);
    at_ceiling += x == 1000.0;
  }
  // P(X > 1000) = 1000^-0.5 = 0.0316.
  EXPECT_NEAR(at_ceiling / 10'000.0, 0.0316, 0.01);
}

TEST(DistributionSpecTest, DegenerateParameters) {
  Random random(45);
  // low == high: the single value; mean 0: always 0.
  EXPECT_EQ(DistributionSpec::uniform(3, 3).sample(random), 3);
  EXPECT_EQ(DistributionSpec::exponential(0).sample(random), 0);
  EXPECT_EQ(DistributionSpec::normal(7, 0).sample(random), 7);
}

Duration duration_of_constant(double value, double minimum = 0) {
  DistributionSpec spec = DistributionSpec::constant(value);
  spec.minimum = minimum;
  Random random(46);
  return spec.sample_duration(random);
}

TEST(DistributionSpecTest, SampleDurationRoundsToNearestNanosecond) {
  EXPECT_EQ(duration_of_constant(0).ns, 0);
  EXPECT_EQ(duration_of_constant(0.49).ns, 0);
  EXPECT_EQ(duration_of_constant(1.4).ns, 1);
  EXPECT_EQ(duration_of_constant(1.5).ns, 2);
  EXPECT_EQ(duration_of_constant(1.6).ns, 2);
  EXPECT_EQ(duration_of_constant(2.5).ns, 3);  // halves round up
  EXPECT_EQ(duration_of_constant(1e9).ns, 1'000'000'000);
  EXPECT_EQ(duration_of_constant(123456789.7).ns, 123456790);
  // Below the default floor of 0 a sample is 0, never negative.
  EXPECT_EQ(duration_of_constant(-3.7).ns, 0);
  // With a negative floor a negative span is rounded to the nearest nanosecond as well.
  EXPECT_EQ(duration_of_constant(-1.4, -10).ns, -1);
  EXPECT_EQ(duration_of_constant(-1.7, -10).ns, -2);
  EXPECT_EQ(duration_of_constant(-2.5, -10).ns, -2);  // halves round up
}

TEST(DistributionSpecTest, SampleDurationSaturatesInsteadOfOverflowing) {
  const int64_t saturated_ns = int64_t{1} << 62;  // about 146 years
  EXPECT_EQ(duration_of_constant(4.599e18).ns, 4'599'000'000'000'000'000);
  EXPECT_EQ(duration_of_constant(4.6e18).ns, saturated_ns);
  EXPECT_EQ(duration_of_constant(1e19).ns, saturated_ns);
  EXPECT_EQ(duration_of_constant(1e300).ns, saturated_ns);
  EXPECT_EQ(duration_of_constant(std::numeric_limits<double>::infinity()).ns, saturated_ns);
  // A negative floor allows negative spans; they saturate symmetrically.
  EXPECT_EQ(duration_of_constant(-1e19, -1e300).ns, -saturated_ns);
}

TEST(DistributionSpecTest, SampleDurationMeanMatches) {
  const DistributionSpec spec = DistributionSpec::exponential(1e6);  // 1 ms in nanoseconds
  Random random(47);
  double sum_ns = 0;
  for (int i = 0; i < 100'000; ++i) sum_ns += static_cast<double>(spec.sample_duration(random).ns);
  EXPECT_NEAR(sum_ns / 100'000, 1e6, 0.02 * 1e6);  // standard error 0.3%
}

TEST(DistributionSpecTest, Describe) {
  EXPECT_EQ(DistributionSpec::constant(5).describe(), "constant(5)");
  EXPECT_EQ(DistributionSpec::uniform(1, 2.5).describe(), "uniform(1, 2.5)");
  EXPECT_EQ(DistributionSpec::exponential(1e6).describe(), "exponential(mean 1e+06)");
  EXPECT_EQ(DistributionSpec::exponential(250000).describe(), "exponential(mean 250000)");
  EXPECT_EQ(DistributionSpec::normal(100, 15).describe(), "normal(mean 100, stddev 15)");
  EXPECT_EQ(DistributionSpec::lognormal(2e6, 0.75).describe(),
            "lognormal(median 2e+06, sigma 0.75)");
  EXPECT_EQ(DistributionSpec::pareto(1000, 2.5).describe(), "pareto(scale 1000, shape 2.5)");
}

}  // namespace
}  // namespace dynasim::sim
