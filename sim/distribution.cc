#include "sim/distribution.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "sim/check.h"
#include "sim/detmath.h"

namespace dynasim::sim {

DistributionSpec DistributionSpec::constant(double value) {
  DistributionSpec spec;
  spec.kind = Kind::kConstant;
  spec.value = value;
  return spec;
}
DistributionSpec DistributionSpec::uniform(double low, double high) {
  DistributionSpec spec;
  spec.kind = Kind::kUniform;
  spec.low = low;
  spec.high = high;
  return spec;
}
DistributionSpec DistributionSpec::exponential(double mean) {
  DistributionSpec spec;
  spec.kind = Kind::kExponential;
  spec.mean = mean;
  return spec;
}
DistributionSpec DistributionSpec::normal(double mean, double stddev) {
  DistributionSpec spec;
  spec.kind = Kind::kNormal;
  spec.mean = mean;
  spec.stddev = stddev;
  return spec;
}
DistributionSpec DistributionSpec::lognormal(double median, double sigma) {
  DistributionSpec spec;
  spec.kind = Kind::kLogNormal;
  spec.median = median;
  spec.sigma = sigma;
  return spec;
}
DistributionSpec DistributionSpec::pareto(double scale, double shape) {
  DistributionSpec spec;
  spec.kind = Kind::kPareto;
  spec.scale = scale;
  spec.shape = shape;
  return spec;
}

double DistributionSpec::sample(Random& random) const {
  double x = 0;
  switch (kind) {
    case Kind::kConstant:
      x = value;
      break;
    case Kind::kUniform:
      x = low < high ? random.uniform_real(low, high) : low;
      break;
    case Kind::kExponential:
      x = mean > 0 ? random.exponential(mean) : 0.0;
      break;
    case Kind::kNormal:
      x = random.normal(mean, stddev);
      break;
    case Kind::kLogNormal:
      DYN_ASSERT(median > 0);
      x = median * det_exp(random.normal(0.0, sigma));
      break;
    case Kind::kPareto:
      x = random.pareto(scale, shape);
      break;
  }
  if (x < minimum) x = minimum;
  if (maximum > 0 && x > maximum) x = maximum;
  return x;
}

Duration DistributionSpec::sample_duration(Random& random) const {
  const double x = sample(random);
  // 2^62 ns is about 146 years: nothing in a run waits longer. The same bound on the negative side
  // (reachable only with a negative `minimum`) keeps the conversion below defined.
  if (x >= 4.6e18) return Duration(int64_t{1} << 62);
  if (x <= -4.6e18) return Duration(-(int64_t{1} << 62));
  // Round half up. floor() rather than truncation, which would round negative spans towards zero.
  return Duration(static_cast<int64_t>(std::floor(x + 0.5)));
}

double DistributionSpec::expected_mean() const {
  switch (kind) {
    case Kind::kConstant:
      return value;
    case Kind::kUniform:
      return (low + high) / 2;
    case Kind::kExponential:
      return mean;
    case Kind::kNormal:
      return mean;
    case Kind::kLogNormal:
      return median * det_exp(sigma * sigma / 2);
    case Kind::kPareto:
      return shape > 1 ? shape * scale / (shape - 1) : std::numeric_limits<double>::infinity();
  }
  return 0;
}

std::string DistributionSpec::describe() const {
  char buffer[128];
  switch (kind) {
    case Kind::kConstant:
      std::snprintf(buffer, sizeof buffer, "constant(%g)", value);
      break;
    case Kind::kUniform:
      std::snprintf(buffer, sizeof buffer, "uniform(%g, %g)", low, high);
      break;
    case Kind::kExponential:
      std::snprintf(buffer, sizeof buffer, "exponential(mean %g)", mean);
      break;
    case Kind::kNormal:
      std::snprintf(buffer, sizeof buffer, "normal(mean %g, stddev %g)", mean, stddev);
      break;
    case Kind::kLogNormal:
      std::snprintf(buffer, sizeof buffer, "lognormal(median %g, sigma %g)", median, sigma);
      break;
    case Kind::kPareto:
      std::snprintf(buffer, sizeof buffer, "pareto(scale %g, shape %g)", scale, shape);
      break;
  }
  return buffer;
}

}  // namespace dynasim::sim
