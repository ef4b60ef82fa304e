#include "sim/detmath.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "sim/check.h"

namespace dynasim::sim {

namespace {
// ln 2 split so that k * kLn2High is exact for |k| < 2^11.
constexpr double kLn2High = 6.93147180369123816490e-01;
constexpr double kLn2Low = 1.90821492927058770002e-10;
constexpr double kLn2 = 6.93147180559945309417e-01;
constexpr double kSqrtTwo = 1.41421356237309504880e+00;
}  // namespace

double det_log(double x) {
  DYN_ASSERT_MSG(x > 0.0 && x <= std::numeric_limits<double>::max(), "det_log needs x > 0");
  // Split x = mantissa * 2^exponent from the bits (exact); scale subnormals into range first.
  int exponent_adjust = 0;
  if (x < std::numeric_limits<double>::min()) {
    x *= 0x1p54;
    exponent_adjust = -54;
  }
  const auto bits = std::bit_cast<uint64_t>(x);
  int exponent = static_cast<int>((bits >> 52) & 0x7ff) - 1023 + exponent_adjust;
  double mantissa = std::bit_cast<double>((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  if (mantissa > kSqrtTwo) {  // mantissa was in [1, 2); bring it to [sqrt(1/2), sqrt(2))
    mantissa *= 0.5;
    exponent += 1;
  }
  // log(m) = 2 atanh(f) with f = (m - 1) / (m + 1), |f| < 0.1716:
  // 2 f (1 + y/3 + y^2/5 + ... + y^11/23) with y = f^2; the first omitted term is below 1e-19
  // relative. The polynomial is evaluated by Estrin's scheme (independent pairs, then pairs of
  // pairs) rather than Horner's, which shortens the chain of dependent operations threefold. The
  // order of operations is fixed, so the result is still the same on every machine.
  const double f = (mantissa - 1.0) / (mantissa + 1.0);
  const double y = f * f;
  const double y2 = y * y;
  const double y4 = y2 * y2;
  const double y8 = y4 * y4;
  const double p01 = 1.0 + y * (1.0 / 3);
  const double p23 = 1.0 / 5 + y * (1.0 / 7);
  const double p45 = 1.0 / 9 + y * (1.0 / 11);
  const double p67 = 1.0 / 13 + y * (1.0 / 15);
  const double p89 = 1.0 / 17 + y * (1.0 / 19);
  const double p1011 = 1.0 / 21 + y * (1.0 / 23);
  const double p0123 = p01 + y2 * p23;
  const double p4567 = p45 + y2 * p67;
  const double p891011 = p89 + y2 * p1011;
  const double series = (p0123 + y4 * p4567) + y8 * p891011;
  const double log_mantissa = 2.0 * f * series;
  const double e = static_cast<double>(exponent);
  return e * kLn2High + (e * kLn2Low + log_mantissa);
}

double det_exp(double x) {
  if (x != x) return x;  // NaN
  if (x > 709.78) return std::numeric_limits<double>::infinity();
  if (x < -745.2) return 0.0;
  // x = k ln2 + r, |r| <= ln2 / 2.
  const double k = std::nearbyint(x / kLn2);
  const double r = (x - k * kLn2High) - k * kLn2Low;
  // Taylor series of e^r to r^17 (Horner); the first omitted term is below 1e-20 for |r| <= 0.35.
  static constexpr double kInverse[] = {0.0,      1.0,      1.0 / 2,  1.0 / 3,  1.0 / 4,  1.0 / 5,
                                        1.0 / 6,  1.0 / 7,  1.0 / 8,  1.0 / 9,  1.0 / 10, 1.0 / 11,
                                        1.0 / 12, 1.0 / 13, 1.0 / 14, 1.0 / 15, 1.0 / 16, 1.0 / 17};
  double sum = 1.0;
  for (int n = 17; n >= 1; --n) sum = 1.0 + sum * r * kInverse[n];
  return std::ldexp(sum, static_cast<int>(k));
}

double det_pow(double base, double exponent) {
  DYN_ASSERT_MSG(base > 0.0, "det_pow needs base > 0");
  if (exponent == 0.0 || base == 1.0) return 1.0;
  return det_exp(exponent * det_log(base));
}

namespace {

// pi/2 in three parts (Cody and Waite's reduction); the first has 33 significant bits, so
// k * kHalfPi1 is exact for |k| < 2^20.
constexpr double kHalfPi1 = 1.57079632673412561417e+00;
constexpr double kHalfPi2 = 6.07710050650619224932e-11;
constexpr double kHalfPi3 = 2.02226624879595063154e-21;
constexpr double kTwoOverPi = 6.36619772367581382433e-01;

// sin(r) for |r| <= pi/4: r - r^3/3! + ... - r^15/15! + r^17/17! (Horner in r^2).
double sin_kernel(double r) {
  const double r2 = r * r;
  double sum = 1.0;
  for (int n = 17; n >= 3; n -= 2) sum = 1.0 - sum * r2 / (static_cast<double>(n) * (n - 1));
  return r * sum;
}

// cos(r) for |r| <= pi/4: 1 - r^2/2! + ... + r^16/16!.
double cos_kernel(double r) {
  const double r2 = r * r;
  double sum = 1.0;
  for (int n = 16; n >= 2; n -= 2) sum = 1.0 - sum * r2 / (static_cast<double>(n) * (n - 1));
  return sum;
}

// sin or cos (cosine: quadrant shifted by one) after reducing x by multiples of pi/2.
double sin_quadrant(double x, int64_t shift) {
  DYN_ASSERT_MSG(x == x && x >= -1e9 && x <= 1e9, "det_sin/det_cos need |x| <= 1e9");
  const double k = std::nearbyint(x * kTwoOverPi);
  // Rate shapes reduce their phase to [0, 2 pi) first, so k is at most 4 there.
  const double r = ((x - k * kHalfPi1) - k * kHalfPi2) - k * kHalfPi3;
  const int64_t quadrant = ((static_cast<int64_t>(k) + shift) % 4 + 4) % 4;
  switch (quadrant) {
    case 0:
      return sin_kernel(r);
    case 1:
      return cos_kernel(r);
    case 2:
      return -sin_kernel(r);
    default:
      return -cos_kernel(r);
  }
}

}  // namespace

double det_sin(double x) {
  return sin_quadrant(x, 0);
}

double det_cos(double x) {
  return sin_quadrant(x, 1);
}

}  // namespace dynasim::sim
