// Simulated time: an integer count of nanoseconds, never a floating-point value.
//
// SimTime is a point on the true (global) simulated timeline; Duration is a signed span between two
// points. Model code never sees SimTime directly: it reads its host's drifting clock through the
// Env (see sim/env.h), which also speaks in these types. Floating point appears only when a figure
// is printed for a person (to_seconds()).
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace dynasim::sim {

struct Duration {
  int64_t ns = 0;

  constexpr Duration() = default;
  constexpr explicit Duration(int64_t nanoseconds) : ns(nanoseconds) {}

  constexpr auto operator<=>(const Duration&) const = default;
  constexpr Duration operator+(Duration other) const { return Duration(ns + other.ns); }
  constexpr Duration operator-(Duration other) const { return Duration(ns - other.ns); }
  constexpr Duration operator-() const { return Duration(-ns); }
  constexpr Duration operator*(int64_t factor) const { return Duration(ns * factor); }
  constexpr Duration operator/(int64_t divisor) const { return Duration(ns / divisor); }
  constexpr int64_t operator/(Duration other) const { return ns / other.ns; }
  constexpr Duration& operator+=(Duration other) {
    ns += other.ns;
    return *this;
  }
  constexpr Duration& operator-=(Duration other) {
    ns -= other.ns;
    return *this;
  }
};

struct SimTime {
  int64_t ns = 0;

  constexpr SimTime() = default;
  constexpr explicit SimTime(int64_t nanoseconds) : ns(nanoseconds) {}

  constexpr auto operator<=>(const SimTime&) const = default;
  constexpr SimTime operator+(Duration d) const { return SimTime(ns + d.ns); }
  constexpr SimTime operator-(Duration d) const { return SimTime(ns - d.ns); }
  constexpr Duration operator-(SimTime other) const { return Duration(ns - other.ns); }
  constexpr SimTime& operator+=(Duration d) {
    ns += d.ns;
    return *this;
  }

  static constexpr SimTime zero() { return SimTime(0); }
  static constexpr SimTime max() { return SimTime(INT64_MAX); }
};

constexpr Duration nanoseconds(int64_t n) {
  return Duration(n);
}
constexpr Duration microseconds(int64_t n) {
  return Duration(n * 1'000);
}
constexpr Duration milliseconds(int64_t n) {
  return Duration(n * 1'000'000);
}
constexpr Duration seconds(int64_t n) {
  return Duration(n * 1'000'000'000);
}
constexpr Duration minutes(int64_t n) {
  return seconds(n * 60);
}
constexpr Duration hours(int64_t n) {
  return seconds(n * 3600);
}

// For reports and progress lines only; never feed the result back into the simulation.
inline double to_seconds(Duration d) {
  return static_cast<double>(d.ns) * 1e-9;
}
inline double to_seconds(SimTime t) {
  return static_cast<double>(t.ns) * 1e-9;
}

// "12.345678901s": exact, for messages a person reads.
std::string format_time(SimTime t);
std::string format_duration(Duration d);

}  // namespace dynasim::sim
