// A game-day scenario, read from JSON into plain option structs. model/ and sim/ never see JSON.
//
// The world-level scenario format (docs/scenarios.md describes every field):
//   name, description, duration (faults and workload), heal (a quiet phase before the checks),
//   topology (AZs, racks per AZ, hosts per rack, disk options, clock drift bound),
//   network (loss, duplication, reordering), probe (the workload of the probe processes),
//   faults (survivability policy, a timeline, random fault processes).
// Every error names the JSON path, what was expected and what was found (gameday/json_reader.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gameday/probe.h"
#include "sim/disk.h"
#include "sim/faults.h"
#include "sim/network.h"

namespace dynasim::gameday {

struct TopologySpec {
  std::vector<std::string> az_names{"az-a", "az-b", "az-c"};
  uint32_t racks_per_az = 1;
  uint32_t hosts_per_rack = 3;
  sim::DiskOptions disk;
  double clock_drift_ppm_bound = 0;  // each host drifts by a value drawn in [-bound, bound]
};

// A fault whose target is still a name: resolved against the built world.
struct NamedTimelineFault {
  sim::Duration at;
  sim::FaultKind kind = sim::FaultKind::kPowerOff;
  std::string target;  // "region", an AZ, a rack or a host name
  sim::Duration duration;
  double value = 0;
  std::string path;  // JSON path, for errors found while resolving
};

struct NamedRandomFault {
  sim::FaultKind kind = sim::FaultKind::kPowerOff;
  std::string scope = "region";
  double rate_per_host_hour = 0;
  sim::Duration duration;
  double value = 0;
  std::string path;
};

struct ScenarioSpec {
  std::string name;
  std::string description;
  std::string source;  // the file it came from, for the reproduce line
  sim::Duration duration = sim::minutes(10);
  sim::Duration heal = sim::minutes(1);
  TopologySpec topology;
  sim::NetworkOptions network;
  ProbeOptions probe;
  sim::SurvivabilityPolicy survivability;
  std::vector<NamedTimelineFault> timeline;
  std::vector<NamedRandomFault> random_faults;
};

// Reads and validates a scenario. Throws ScenarioError (gameday/json_reader.h) on bad input.
ScenarioSpec load_scenario(const std::string& path, const std::vector<std::string>& overrides);
ScenarioSpec parse_scenario(const nlohmann::json& document, const std::string& source);

}  // namespace dynasim::gameday
