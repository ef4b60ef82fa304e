// The determinism check: runs one scenario and seed twice, side by side in one process, and
// compares every executed event (time, kind, target, payload) and the running trace hash. On the
// first difference it reports that event from each run, so a broken determinism rule can be found
// at the event where it first shows, not at the end of the run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "gameday/run.h"

namespace dynasim::gameday {

struct EventRecord {
  bool present = false;
  sim::SimTime time;
  std::string kind;
  uint32_t target = 0;
  uint64_t payload = 0;
  uint64_t trace_hash = 0;
  std::string describe() const;
};

struct DeterminismReport {
  bool identical = true;
  uint64_t events_compared = 0;
  uint64_t trace_hash = 0;  // of the first run
  EventRecord first_run;    // the first differing event of each run (when not identical)
  EventRecord second_run;
};

// `perturb_second_run`, if set, is applied to the second run before it starts: tests use it to
// plant a difference and show that the check finds it.
DeterminismReport check_determinism(
    const ScenarioSpec& spec, uint64_t seed,
    const std::function<void(ScenarioRun&)>& perturb_second_run = {});

}  // namespace dynasim::gameday
