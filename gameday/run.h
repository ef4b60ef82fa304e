// One run of a scenario with one seed: builds the world, places the probes, schedules the faults,
// runs the fault phase and the heal phase, checks, and writes the summary.
//
// A run owns its Simulation and everything in it, so two runs can step side by side in one
// process; the determinism check does exactly that, comparing every executed event.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "gameday/chrome_trace.h"
#include "gameday/metrics.h"
#include "gameday/probe.h"
#include "gameday/scenario.h"
#include "gameday/service.h"
#include "sim/faults.h"
#include "sim/simulation.h"
#include "sim/world.h"

namespace dynasim::gameday {

// Every acknowledged record must survive: each time a probe recovers after a restart it must find
// at least every record it had acknowledged, and at the end of the run the durable disk image must
// still hold them. Watches through the probe's observer hook; changes nothing.
class DurabilityChecker final : public ProbeObserver {
 public:
  void on_acknowledged(sim::Address probe, uint64_t record_index) override;
  void on_recovered(sim::Address probe, uint64_t records_recovered) override;
  // The final check against the durable image of each probe's disk.
  void verify_final(sim::World& world, uint32_t port);

  // The simulation whose clock violations are stamped with.
  void bind(const sim::Simulation* simulation) { simulation_ = simulation; }
  bool passed() const { return lost_records_ == 0; }
  nlohmann::json report() const;

 private:
  struct ProbeState {
    uint64_t acknowledged = 0;  // records 0..acknowledged-1 were acknowledged
    uint64_t recoveries = 0;
  };
  void violation(sim::Address probe, uint64_t acknowledged, uint64_t found, const char* when);

  std::map<sim::Address, ProbeState> probes_;
  uint64_t acknowledged_total_ = 0;
  uint64_t lost_records_ = 0;
  uint64_t recoveries_checked_ = 0;
  std::string first_violation_;
  const sim::Simulation* simulation_ = nullptr;
};

class ScenarioRun {
 public:
  static constexpr uint32_t kProbePort = 7000;

  // The run keeps its own copy of the scenario: a temporary spec may be passed.
  ScenarioRun(ScenarioSpec spec, uint64_t seed);
  ~ScenarioRun();

  // Runs one event of the fault or heal phase. False when the run has reached its end.
  bool step();
  // Runs to the end and performs the final checks.
  void run_to_end();
  // Final checks; called by run_to_end() or after stepping to the end.
  void finish();

  // Writes the clients' history as JSON lines to `out` as it is recorded (one line per invocation
  // and per completion; the format is HistoryRecorder::set_dump's). False, and nothing written,
  // for a world-level scenario, which has no clients. Call before the run starts; `out` must
  // outlive the run.
  bool write_history_to(std::ostream* out);
  // Records the run's time series (gameday/metrics.h) with rows of `interval`. Call before the
  // run starts. REQUIRES: interval >= 1 s. It adds no event: the trace_hash does not change.
  void record_metrics(sim::Duration interval);
  // Writes metrics.csv and partitions.csv into `directory`. False if a file cannot be written.
  // REQUIRES: record_metrics was called and the run finished.
  bool write_metrics(const std::string& directory) const;
  // Writes a Chrome Trace Event document of the window [from, to] of true time to `out` as the
  // run goes (gameday/chrome_trace.h), closed when the run finishes. Call before the run starts;
  // `out` must outlive the run. Not with the determinism check, which observes events itself.
  void write_trace_to(std::ostream* out, sim::SimTime from, sim::SimTime to);

  sim::Simulation& simulation() { return *simulation_; }
  sim::World& world() { return *world_; }
  // The storage service of a service scenario (null for a world-level one).
  ServiceHarness* service() { return service_.get(); }
  sim::SimTime end_time() const { return end_time_; }
  bool passed() const;
  nlohmann::json summary(double wall_seconds) const;
  std::string reproduce_command() const;

 private:
  void build_world();
  void schedule_faults();
  sim::FaultTarget resolve_target(const std::string& name, const std::string& path) const;
  void begin_heal();
  bool service_scenario() const { return spec_.storage.has_value(); }

  const ScenarioSpec spec_;
  uint64_t seed_;
  std::unique_ptr<sim::Simulation> simulation_;
  std::unique_ptr<sim::World> world_;
  std::unique_ptr<sim::FaultInjector> faults_;
  DurabilityChecker durability_;             // world-level scenarios (probes)
  std::unique_ptr<ServiceHarness> service_;  // service scenarios
  std::unique_ptr<MetricsRecorder> metrics_;
  std::unique_ptr<ChromeTraceWriter> trace_;
  sim::SimTime heal_start_;
  sim::SimTime end_time_;
  bool heal_started_ = false;
  bool finished_ = false;
};

}  // namespace dynasim::gameday
