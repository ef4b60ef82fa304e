#include "sim/clock.h"

#include "sim/check.h"

namespace dynasim::sim {

namespace {
constexpr int64_t kBillion = 1'000'000'000;
}  // namespace

SimTime HostClock::local_now(SimTime true_now) const {
  const __int128 elapsed = true_now.ns - true_at_change_.ns;
  const __int128 scaled = elapsed * (kBillion + drift_ppb_) / kBillion;
  return SimTime(local_at_change_.ns + static_cast<int64_t>(scaled));
}

Duration HostClock::true_delay_for(Duration local_delay) const {
  DYN_ASSERT(local_delay.ns >= 0);
  const __int128 numerator = static_cast<__int128>(local_delay.ns) * kBillion;
  const __int128 rate = kBillion + drift_ppb_;
  // Round up: a timer never fires before its local delay has passed on this clock.
  return Duration(static_cast<int64_t>((numerator + rate - 1) / rate));
}

void HostClock::set_drift_ppm(double drift_ppm, SimTime true_now) {
  DYN_ASSERT_MSG(drift_ppm > -100000.0 && drift_ppm < 100000.0, "clock drift beyond 10%");
  local_at_change_ = local_now(true_now);
  true_at_change_ = true_now;
  // Rounded to whole parts per billion; the scenario's value is printed with the run.
  drift_ppb_ = static_cast<int64_t>(drift_ppm * 1000.0 + (drift_ppm >= 0 ? 0.5 : -0.5));
}

void HostClock::step(Duration jump, SimTime true_now) {
  local_at_change_ = local_now(true_now) + jump;
  true_at_change_ = true_now;
}

}  // namespace dynasim::sim
