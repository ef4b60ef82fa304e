// Tests for det_sin and det_cos (sim/detmath.h): close to the host's libm over the range rate
// shapes use and well beyond, exact where the functions are exactly known, odd/even, and
// consistent with each other (sin^2 + cos^2 = 1, the shift by pi/2).

#include <gtest/gtest.h>

#include <cmath>

#include "sim/detmath.h"
#include "sim/random.h"

namespace dynasim::sim {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(DetMathTrigTest, MatchesLibmOnOneTurnAndBeyond) {
  Random random(41);
  for (int i = 0; i < 100'000; ++i) {
    // Most draws in one turn (what rate shapes ask for), some out to 1e6 radians.
    const double x = i % 10 == 0 ? random.uniform_real(-1e6, 1e6) : random.uniform_real(0, 2 * kPi);
    EXPECT_NEAR(det_sin(x), std::sin(x), 2e-15 * (1 + std::fabs(x) * 1e-6)) << x;
    EXPECT_NEAR(det_cos(x), std::cos(x), 2e-15 * (1 + std::fabs(x) * 1e-6)) << x;
  }
}

TEST(DetMathTrigTest, ExactAtZeroAndOddEven) {
  EXPECT_EQ(det_sin(0.0), 0.0);
  EXPECT_EQ(det_cos(0.0), 1.0);
  Random random(42);
  for (int i = 0; i < 10'000; ++i) {
    const double x = random.uniform_real(-50, 50);
    EXPECT_EQ(det_sin(-x), -det_sin(x)) << x;
    EXPECT_EQ(det_cos(-x), det_cos(x)) << x;
  }
}

TEST(DetMathTrigTest, QuarterTurnsAndIdentities) {
  EXPECT_NEAR(det_sin(kPi / 2), 1.0, 1e-16);
  EXPECT_NEAR(det_sin(kPi), 0.0, 1e-15);
  EXPECT_NEAR(det_sin(3 * kPi / 2), -1.0, 1e-16);
  EXPECT_NEAR(det_cos(kPi), -1.0, 1e-16);
  EXPECT_NEAR(det_sin(kPi / 6), 0.5, 1e-16);
  EXPECT_NEAR(det_cos(kPi / 3), 0.5, 1e-15);
  Random random(43);
  for (int i = 0; i < 10'000; ++i) {
    const double x = random.uniform_real(-20, 20);
    const double s = det_sin(x);
    const double c = det_cos(x);
    EXPECT_NEAR(s * s + c * c, 1.0, 4e-16) << x;
    EXPECT_NEAR(det_cos(x), det_sin(x + kPi / 2), 4e-15) << x;
  }
}

}  // namespace
}  // namespace dynasim::sim
