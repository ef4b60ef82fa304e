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

}  // namespace dynasim::sim
