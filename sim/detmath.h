// Deterministic elementary functions: log, exp and pow built from +, -, *, / and frexp/ldexp only.
//
// libm's log and exp are not required to round the same way on every machine or library version,
// and a single differing last bit changes every later draw of a run. These functions use fixed
// polynomial evaluations in IEEE double arithmetic (with -ffp-contract=off set for the whole
// build), so they give bit-identical results on every conforming machine. Accuracy is within a few
// ulps, which is far finer than any distribution here needs.
#pragma once

namespace dynasim::sim {

// Natural logarithm. REQUIRES: x > 0 and finite.
double det_log(double x);
// e^x. Saturates to 0 below about -745 and to +infinity above about 709.78.
double det_exp(double x);
// base^exponent for base > 0.
double det_pow(double base, double exponent);
// sin(x) and cos(x), x in radians. The argument is reduced by multiples of pi/2 (Cody and Waite,
// pi/2 in three parts), then Taylor polynomials of degree 17 and 16 on |r| <= pi/4 (first omitted
// terms below 1e-19 and 3e-18). Within 2e-15 of libm up to |x| = 1e6 (DetMathTrigTest).
// REQUIRES: |x| <= 1e9.
double det_sin(double x);
double det_cos(double x);

}  // namespace dynasim::sim
