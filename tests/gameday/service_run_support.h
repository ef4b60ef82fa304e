// What the whole-service run tests share: one run of a scenario at a seed, and what they look at.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gameday/json_reader.h"
#include "gameday/run.h"
#include "gameday/scenario.h"

namespace dynasim::gameday {

struct ServiceRunOutcome {
  bool passed = false;
  uint64_t trace_hash = 0;
  nlohmann::json summary;
  std::string reproduce;
};

inline ServiceRunOutcome run_service(const ScenarioSpec& spec, uint64_t seed) {
  ScenarioRun scenario_run(spec, seed);
  scenario_run.run_to_end();
  return ServiceRunOutcome{scenario_run.passed(), scenario_run.simulation().trace_hash(),
                           scenario_run.summary(0), scenario_run.reproduce_command()};
}

// The loader's message for `file` with `overrides` (ScenarioError::what), or "(no error)" when it
// loads.
inline std::string scenario_error_of(const std::string& file,
                                     const std::vector<std::string>& overrides) {
  try {
    load_scenario(file, overrides);
  } catch (const ScenarioError& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace dynasim::gameday
