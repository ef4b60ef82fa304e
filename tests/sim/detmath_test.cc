// Tests for sim/detmath.h: det_log and det_exp must stay within a few ulps of the correctly rounded
// result everywhere (compared with the host's libm, which glibc rounds to within 1 ulp), saturate
// as documented, and give the same bits forever (pinned values).

#include "sim/detmath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "sim/random.h"

namespace dynasim::sim {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kLargestFinite = std::numeric_limits<double>::max();
constexpr double kSmallestNormal = std::numeric_limits<double>::min();
constexpr double kSmallestSubnormal = std::numeric_limits<double>::denorm_min();
constexpr double kEpsilon = std::numeric_limits<double>::epsilon();

// Maps a finite double to an integer so that adjacent doubles map to adjacent integers (also
// across zero), which makes the difference of two images the distance in ulps.
int64_t ordered_bits(double x) {
  int64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits < 0 ? std::numeric_limits<int64_t>::min() - bits : bits;
}

int64_t ulp_distance(double a, double b) {
  const int64_t difference = ordered_bits(a) - ordered_bits(b);
  return difference < 0 ? -difference : difference;
}

// True when `actual` is within 4 ulps of `expected`, or within a relative 1e-15 of it.
bool close_to_libm(double actual, double expected) {
  if (ulp_distance(actual, expected) <= 4) return true;
  return std::fabs(actual - expected) <= 1e-15 * std::fabs(expected);
}

// Arguments for det_log: tiny, huge, near 1, powers of two and a geometric sweep in between.
std::vector<double> log_arguments() {
  std::vector<double> arguments = {kSmallestSubnormal,
                                   3 * kSmallestSubnormal,
                                   kSmallestNormal,
                                   kSmallestNormal * (1 + kEpsilon),
                                   1e-300,
                                   1e-10,
                                   0.1,
                                   0.5,
                                   0.7071067811865476,
                                   0.75,
                                   1.0,
                                   1.4142135623730951,
                                   2.0,
                                   3.0,
                                   10.0,
                                   1e10,
                                   1e300,
                                   kLargestFinite};
  for (int exponent = -1074; exponent <= 1023; ++exponent) {
    arguments.push_back(std::ldexp(1.0, exponent));
  }
  for (int steps = 1; steps <= 64; ++steps) {
    arguments.push_back(1.0 + steps * kEpsilon);
    arguments.push_back(1.0 - steps * kEpsilon / 2);
  }
  for (double offset = 1e-15; offset < 0.5; offset *= 1.7) {
    arguments.push_back(1.0 + offset);
    arguments.push_back(1.0 - offset);
  }
  for (double x = 1e-320; x < 1e308; x *= 1.013) arguments.push_back(x);
  return arguments;
}

TEST(DetMathTest, LogMatchesLibmWithinFourUlps) {
  int checked = 0;
  for (double x : log_arguments()) {
    ASSERT_TRUE(close_to_libm(det_log(x), std::log(x)))
        << "x=" << std::hexfloat << x << " det_log=" << det_log(x) << " log=" << std::log(x)
        << std::defaultfloat << " ulps=" << ulp_distance(det_log(x), std::log(x));
    ++checked;
  }
  EXPECT_GT(checked, 50000);
}

TEST(DetMathTest, LogMatchesLibmOnRandomBitPatterns) {
  // Every positive finite double is equally likely to be picked by its bit pattern, so this
  // reaches all exponents and mantissas, subnormals included.
  Random random(20240601);
  for (int i = 0; i < 100'000; ++i) {
    const uint64_t bits = random.next_u64() >> 1;  // clear the sign bit
    double x;
    std::memcpy(&x, &bits, sizeof x);
    if (!(x > 0.0) || x > kLargestFinite) continue;  // zero, infinity or NaN
    ASSERT_TRUE(close_to_libm(det_log(x), std::log(x))) << std::hexfloat << "x=" << x;
  }
}

TEST(DetMathTest, LogIsExactAtOneAndOddAroundIt) {
  EXPECT_EQ(det_log(1.0), 0.0);
  EXPECT_LT(det_log(1.0 - kEpsilon / 2), 0.0);
  EXPECT_GT(det_log(1.0 + kEpsilon), 0.0);
  for (double x : {2.0, 10.0, 12345.678, 1e200}) {
    EXPECT_NEAR(det_log(1.0 / x), -det_log(x), 4 * kEpsilon * det_log(x)) << x;
  }
}

TEST(DetMathTest, ExpMatchesLibmWithinFourUlps) {
  std::vector<double> arguments = {0.0,    -0.0,   1e-300, -1e-300, 1e-17, -1e-17, 1e-9,
                                   -1e-9,  0.5,    -0.5,   1.0,     -1.0,  2.0,    10.0,
                                   -10.0,  100.0,  700.0,  709.0,   709.7, -700.0, -708.0,
                                   -709.0, -720.0, -744.0, -745.0};
  for (int k = -1074; k <= 1023; ++k) arguments.push_back(k * 0.6931471805599453);
  for (double x = -745.0; x <= 709.7; x += 0.0137) arguments.push_back(x);
  for (double x = 1e-12; x < 1.0; x *= 1.1) {
    arguments.push_back(x);
    arguments.push_back(-x);
  }
  for (double x : arguments) {
    ASSERT_TRUE(close_to_libm(det_exp(x), std::exp(x)))
        << "x=" << std::hexfloat << x << " det_exp=" << det_exp(x) << " exp=" << std::exp(x)
        << std::defaultfloat << " ulps=" << ulp_distance(det_exp(x), std::exp(x));
  }
}

TEST(DetMathTest, ExpIsExactAtZero) {
  EXPECT_EQ(det_exp(0.0), 1.0);
  EXPECT_EQ(det_exp(-0.0), 1.0);
  EXPECT_EQ(det_exp(1e-300), 1.0);
}

TEST(DetMathTest, ExpOverflowsToInfinity) {
  // The contract: +infinity above about 709.78 (log of the largest double is 709.7827...).
  EXPECT_EQ(det_exp(709.79), kInfinity);
  EXPECT_EQ(det_exp(1000.0), kInfinity);
  EXPECT_EQ(det_exp(kLargestFinite), kInfinity);
  EXPECT_EQ(det_exp(kInfinity), kInfinity);
  // Just below the threshold the result is finite and still accurate.
  EXPECT_LT(det_exp(709.78), kInfinity);
  EXPECT_TRUE(close_to_libm(det_exp(709.78), std::exp(709.78)));
}

TEST(DetMathTest, ExpUnderflowsThroughSubnormalsToZero) {
  EXPECT_EQ(det_exp(-746.0), 0.0);
  EXPECT_EQ(det_exp(-1e6), 0.0);
  EXPECT_EQ(det_exp(-kLargestFinite), 0.0);
  EXPECT_EQ(det_exp(-kInfinity), 0.0);
  // e^-745 is about 0.57 of the smallest subnormal, so it rounds up to that subnormal.
  EXPECT_EQ(det_exp(-745.0), kSmallestSubnormal);
  // e^-740 is a subnormal with about six significant bits.
  EXPECT_GT(det_exp(-740.0), 0.0);
  EXPECT_LT(det_exp(-740.0), kSmallestNormal);
}

TEST(DetMathTest, ExpPassesNaNThrough) {
  const double not_a_number = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(det_exp(not_a_number)));
}

TEST(DetMathTest, ExpInvertsLog) {
  for (double x = 1e-300; x < 1e300; x *= 7.3) {
    EXPECT_NEAR(det_exp(det_log(x)), x, 1e-12 * x) << x;
  }
}

TEST(DetMathTest, PowSanity) {
  EXPECT_EQ(det_pow(3.7, 0.0), 1.0);
  EXPECT_EQ(det_pow(1.0, 123.456), 1.0);
  EXPECT_NEAR(det_pow(2.0, 10.0), 1024.0, 1024.0 * 1e-14);
  EXPECT_NEAR(det_pow(10.0, -3.0), 1e-3, 1e-3 * 1e-14);
  EXPECT_NEAR(det_pow(2.0, 0.5), std::sqrt(2.0), 1e-15);
  EXPECT_NEAR(det_pow(0.25, -0.5), 2.0, 1e-15);
  EXPECT_EQ(det_pow(2.0, -1074.0), kSmallestSubnormal);
  EXPECT_EQ(det_pow(2.0, 1100.0), kInfinity);
  EXPECT_EQ(det_pow(0.5, 1100.0), 0.0);
  // exp(y log x) turns an absolute error of a few ulps in y log x into a relative error of the
  // result, so the tolerance grows with |y log x|.
  auto tolerance = [](double base, double exponent, double expected) {
    return (std::fabs(exponent * std::log(base)) + 2.0) * 4 * kEpsilon * std::fabs(expected);
  };
  for (double base = 1e-5; base < 1e5; base *= 3.1) {
    EXPECT_NEAR(det_pow(base, 1.0), base, tolerance(base, 1.0, base)) << base;
    EXPECT_NEAR(det_pow(base, 0.5), std::sqrt(base), tolerance(base, 0.5, std::sqrt(base))) << base;
    const double inverse_square = 1.0 / (base * base);
    EXPECT_NEAR(det_pow(base, -2.0), inverse_square, tolerance(base, -2.0, inverse_square)) << base;
    for (double exponent : {-7.5, -1.3, 0.01, 2.2, 9.0}) {
      const double expected = std::pow(base, exponent);
      EXPECT_NEAR(det_pow(base, exponent), expected, tolerance(base, exponent, expected))
          << base << "^" << exponent;
    }
  }
}

TEST(DetMathTest, PinnedValues) {
  // Bit patterns of today's implementation. Any change to the polynomials or the range reduction
  // shifts every draw of every run, so it must show up here and be made on purpose.
  EXPECT_EQ(det_log(10.0), 0x1.26bb1bbb55516p+1);
  EXPECT_EQ(det_exp(1.0), 0x1.5bf0a8b14576ap+1);
  EXPECT_EQ(det_pow(2.0, 0.5), 0x1.6a09e667f3bccp+0);
}

}  // namespace
}  // namespace dynasim::sim
