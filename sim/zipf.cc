// ZipfDistribution (declared in sim/random.h): Zipf over ranks 1..n by rejection-inversion.
//
// The method (W. Hoermann and G. Derflinger, "Rejection-inversion to generate variates from
// monotone discrete distributions", ACM TOMACS 6(3), 1996), in the form used here:
//
// The hat function is hat(x) = x^-exponent, a continuous, decreasing and convex extension of the
// unnormalised probabilities p(k) = k^-exponent. Let H be an antiderivative of hat:
//
//   H(x) = (x^(1 - exponent) - 1) / (1 - exponent)    (which is log(x) when exponent == 1).
//
// Because hat is convex, the area under it over [k - 1/2, k + 1/2] is at least hat(k) = p(k). So
// give rank k >= 2 the strip [H(k - 1/2), H(k + 1/2)] of the "area axis", and give rank 1 the strip
// [H(3/2) - p(1), H(3/2)], whose length is exactly p(1). The strips are adjacent and together cover
// [H(3/2) - 1, H(n + 1/2)]. One draw picks U uniformly on that interval, maps it back with
// x = H^-1(U) and rounds x to the nearest rank k. Rank k is accepted when U lies in the top part of
// its strip of length p(k), that is U >= H(k + 1/2) - p(k); otherwise the draw is repeated. Each
// rank is therefore accepted with probability proportional to p(k), as wanted. The strips are
// never much longer than p(k), so the expected number of rounds is a small constant for every n
// and exponent: set-up and draws are O(1), and n may be 10^9 or more.
//
// A cheap squeeze avoids most evaluations of H in the acceptance test: since H is increasing, the
// test is equivalent to x >= H^-1(H(k + 1/2) - p(k)), and k - H^-1(H(k + 1/2) - p(k)) is smallest
// at k = 2. Calling that smallest value `s_`, any x with k - x <= s_ is accepted at once.
//
// Determinism: everything below uses only +, -, *, /, floor and det_log / det_exp (sim/detmath.h),
// so every machine and compiler produces the same ranks from the same stream.

#include <cmath>
#include <cstdint>
#include <limits>

#include "sim/check.h"
#include "sim/detmath.h"
#include "sim/random.h"

namespace dynasim::sim {

namespace {

// Below this magnitude the helpers use a Taylor series. The first omitted term is then below
// |x|^6 / 7 < 2e-19, far under one ulp of the result (which is close to 1).
constexpr double kSeriesThreshold = 1e-3;

// log(1 + x) / x, continuous through x = 0 (where it is 1). REQUIRES: x > -1.
//
// Near 0 the quotient log(1 + x) / x would lose most of its digits to cancellation, so it is
// replaced by its Taylor series 1 - x/2 + x^2/3 - x^3/4 + x^4/5 - x^5/6. Elsewhere it uses the
// rounded sum u = 1 + x and returns log(u) / (u - 1): u - 1 is exact, and dividing by it instead of
// by x cancels the rounding error of u to first order (the quotient is a smooth function of u).
double log1p_over_x(double x) {
  DYN_ASSERT(x > -1.0);
  if (x > -kSeriesThreshold && x < kSeriesThreshold) {
    return 1.0 + x * (-1.0 / 2 + x * (1.0 / 3 + x * (-1.0 / 4 + x * (1.0 / 5 + x * (-1.0 / 6)))));
  }
  const double u = 1.0 + x;
  return det_log(u) / (u - 1.0);
}

// (e^x - 1) / x, continuous through x = 0 (where it is 1).
//
// Near 0 it uses the Taylor series 1 + x/2 + x^2/6 + x^3/24 + x^4/120 + x^5/720. For moderate x it
// uses u = e^x and returns (u - 1) / log(u): the rounding error of u then appears in both numerator
// and denominator and cancels to first order. For |x| > 1 nothing cancels, so the direct quotient
// is accurate (and stays correct when e^x overflows to infinity or underflows to 0).
double expm1_over_x(double x) {
  if (x > -kSeriesThreshold && x < kSeriesThreshold) {
    return 1.0 + x * (1.0 / 2 + x * (1.0 / 6 + x * (1.0 / 24 + x * (1.0 / 120 + x * (1.0 / 720)))));
  }
  if (x >= -1.0 && x <= 1.0) {
    const double u = det_exp(x);
    return (u - 1.0) / det_log(u);
  }
  return (det_exp(x) - 1.0) / x;
}

// The hat function x^-exponent, which equals the unnormalised probability of rank x at integers.
// REQUIRES: x > 0.
double hat(double x, double exponent) {
  return det_exp(-exponent * det_log(x));
}

}  // namespace

ZipfDistribution::ZipfDistribution(uint64_t n, double exponent) : n_(n), exponent_(exponent) {
  DYN_ASSERT_MSG(n >= 1, "ZipfDistribution needs at least one rank");
  DYN_ASSERT_MSG(exponent > 0.0 && exponent <= std::numeric_limits<double>::max(),
                 "ZipfDistribution needs a finite exponent > 0");
  // Rank 1's strip is [H(3/2) - p(1), H(3/2)] with p(1) = 1; see the comment at the top.
  h_integral_x1_ = h(1.5) - 1.0;
  h_integral_n_ = h(static_cast<double>(n) + 0.5);
  // The squeeze bound: the value at k = 2 of k - H^-1(H(k + 1/2) - p(k)).
  s_ = 2.0 - h_inverse(h(2.5) - hat(2.0, exponent));
}

// H(x) = (x^(1 - exponent) - 1) / (1 - exponent). Written as log(x) * (e^t - 1) / t with
// t = (1 - exponent) * log(x), so it is exact in form at exponent == 1 (t = 0 gives log(x)) and
// loses no digits when the exponent is merely close to 1.
double ZipfDistribution::h(double x) const {
  const double log_x = det_log(x);
  return log_x * expm1_over_x((1.0 - exponent_) * log_x);
}

// H^-1(y) = (1 + (1 - exponent) y)^(1 / (1 - exponent)) = exp(y * log(1 + t) / t) with
// t = (1 - exponent) * y, which again is exact in form at exponent == 1 (it gives e^y).
double ZipfDistribution::h_inverse(double y) const {
  const double t = (1.0 - exponent_) * y;
  if (t <= -1.0) {
    // Only reachable by rounding at the very ends of H's range: for exponent > 1, H approaches
    // 1 / (exponent - 1) as x grows without bound, so y has reached "infinitely far right"; for
    // exponent < 1, y has reached H(0). Callers never pass such y except through rounding, and the
    // probability mass there is below one ulp.
    return exponent_ > 1.0 ? std::numeric_limits<double>::infinity() : 0.0;
  }
  return det_exp(y * log1p_over_x(t));
}

uint64_t ZipfDistribution::sample(Random& random) const {
  const double n_as_double = static_cast<double>(n_);
  while (true) {
    // Uniform on (H(3/2) - 1, H(n + 1/2)]. The one end left out lies in rank 1's strip, which
    // is always accepted, so leaving it out changes no probability.
    const double area = h_integral_n_ + random.next_double() * (h_integral_x1_ - h_integral_n_);
    const double x = h_inverse(area);
    // Round x to the nearest rank and clamp it to [1, n]. Inside rank 1's strip x can fall below
    // 1/2, and rounding can push it just past n + 1/2. The comparisons come before the
    // conversion, which is undefined for values beyond the range of uint64_t.
    const double nearest = std::floor(x + 0.5);
    uint64_t rank;
    if (!(nearest >= 1.0)) {
      rank = 1;
    } else if (nearest >= n_as_double) {
      rank = n_;
    } else {
      rank = static_cast<uint64_t>(nearest);
    }
    const double rank_as_double = static_cast<double>(rank);
    // The squeeze accepts most draws without evaluating H; the full test decides the rest.
    if (rank_as_double - x <= s_ ||
        area >= h(rank_as_double + 0.5) - hat(rank_as_double, exponent_)) {
      return rank;
    }
  }
}

}  // namespace dynasim::sim
