// A host's clock: true simulated time seen through a drift (in parts per million) and step jumps.
//
// Real hosts' clocks run fast or slow by tens of ppm and are sometimes stepped by NTP. Leases and
// timeouts in the model are measured on this clock, so drift and jumps test what the model
// assumes about time. The arithmetic is integer (parts per billion, 128-bit products): the same
// drift gives the same readings on every machine.
//
// local(t) = local_at_change + (t - true_at_change) * (1e9 + drift_ppb) / 1e9, where the
// "change" is the last drift change or jump. Timers are measured in local time: a local delay d
// lasts d * 1e9 / (1e9 + drift_ppb) of true time. A jump moves the reading, not running timers.
#pragma once

#include <cstdint>

#include "sim/time.h"

namespace dynasim::sim {

class HostClock {
 public:
  HostClock() = default;

  SimTime local_now(SimTime true_now) const;
  // How much true time passes while this clock advances by `local_delay`. REQUIRES: delay >= 0.
  Duration true_delay_for(Duration local_delay) const;

  // Changes the rate from `true_now` on. |ppm| must stay below 100000 (10%).
  void set_drift_ppm(double drift_ppm, SimTime true_now);
  // Steps the reading by `jump` (either sign) at `true_now`.
  void step(Duration jump, SimTime true_now);

  int64_t drift_ppb() const { return drift_ppb_; }
  // local - true at `true_now`: what a perfect observer would call this clock's error.
  Duration offset(SimTime true_now) const { return local_now(true_now) - true_now; }

 private:
  SimTime true_at_change_ = SimTime::zero();
  SimTime local_at_change_ = SimTime::zero();
  int64_t drift_ppb_ = 0;
};

}  // namespace dynasim::sim
