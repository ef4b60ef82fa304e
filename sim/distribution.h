// A latency (or size) distribution chosen by configuration: constant, uniform, exponential,
// normal, log-normal or Pareto, with every parameter in nanoseconds (or plain units for sizes).
//
// The network, the disk and the object store draw their latencies through this type, so a
// scenario can set any of them the same way. Samples are clamped to at least `minimum_ns`
// (default 0): a latency is never negative.
#pragma once

#include <cstdint>
#include <string>

#include "sim/random.h"
#include "sim/time.h"

namespace dynasim::sim {

struct DistributionSpec {
  enum class Kind { kConstant, kUniform, kExponential, kNormal, kLogNormal, kPareto };
  Kind kind = Kind::kConstant;
  // kConstant: value. kUniform: [low, high]. kExponential: mean. kNormal: mean, stddev.
  // kLogNormal: median and sigma (of the underlying normal; median = e^mu). kPareto: scale x_m and
  // shape alpha.
  double value = 0;
  double low = 0;
  double high = 0;
  double mean = 0;
  double stddev = 0;
  double median = 0;
  double sigma = 0;
  double scale = 0;
  double shape = 0;
  double minimum = 0;  // floor applied to every sample
  // Optional ceiling (0 means none): heavy tails stay finite in a simulation.
  double maximum = 0;

  static DistributionSpec constant(double value);
  static DistributionSpec uniform(double low, double high);
  static DistributionSpec exponential(double mean);
  static DistributionSpec normal(double mean, double stddev);
  static DistributionSpec lognormal(double median, double sigma);
  static DistributionSpec pareto(double scale, double shape);

  double sample(Random& random) const;
  Duration sample_duration(Random& random) const;
  // The distribution's mean (infinite for Pareto with shape <= 1, before the ceiling).
  double expected_mean() const;
  std::string describe() const;
};

}  // namespace dynasim::sim
