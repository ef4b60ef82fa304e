// Canaries: one small client per AZ that writes and reads back its own key every probe interval,
// so availability is measured from every AZ the way a service team measures it, not only from the
// workload's traffic (issue: "canaries in every AZ measuring availability per 5-minute window";
// P22 section 1 states DynamoDB's availability SLA per month, and its availability is measured
// by clients: the canaries play that part).
//
// A probe: PutItem of one of the AZ's canary items ("canary-<az>-<i>", i the probe's number modulo
// `items`, so that the probes reach many partitions; attribute "seq" = the probe's number), then,
// if the put succeeded, a strongly consistent GetItem of it. The probe succeeds when both
// operations succeed and the read returns the number just written (or a later probe's, if probes
// overlap). Each operation has the workload's SDK behaviour: max attempts, full-jitter backoff,
// a timeout per attempt (model/client.h). A probe is counted in the window in which it started,
// in true time; it has ended by the time the next window is reported, since its attempts are
// bounded.
//
// The canary items are outside the workload's key space, so the canaries leave the workload's
// history and checks untouched; they carry no "ver", and the client has no observer.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/client.h"
#include "sim/env.h"
#include "sim/simulation.h"

namespace dynasim::gameday {

inline constexpr uint32_t kCanaryPort = 9100;

// Probe outcomes per AZ, by second of true time; shared by the canaries of a run.
class CanaryRecorder {
 public:
  // REQUIRES: the simulation outlives the recorder.
  explicit CanaryRecorder(const sim::Simulation* simulation) : simulation_(simulation) {}

  // A probe that started at `started` (true time) in AZ `az` ended.
  void record(const std::string& az, sim::SimTime started, bool succeeded);

  // {"window", "azs": {"<az>": {"probes", "succeeded", "windows": [{start_ns, end_ns, probes,
  // succeeded, fraction}]}}, "worst_window_fraction"} over windows starting before `until`.
  // REQUIRES: window is a positive whole number of seconds.
  nlohmann::json report(sim::Duration window, sim::SimTime until) const;

  const sim::Simulation& simulation() const { return *simulation_; }

 private:
  const sim::Simulation* simulation_;
  // By AZ, then by second: (probes, succeeded).
  std::map<std::string, std::map<int64_t, std::pair<uint64_t, uint64_t>>> by_az_;
};

struct CanaryOptions {
  std::string az;
  // Our assumption: one probe a second, so a 5-minute window holds 300 and one failed probe moves
  // availability by a third of a percent.
  sim::Duration probe_interval = sim::seconds(1);
  // Canary items per AZ, each probe writing the next. Our assumption: enough to touch most
  // partitions of a game day's table within a few minutes.
  uint32_t items = 64;
  model::ClientOptions client;
};

class CanaryProcess final : public sim::Process {
 public:
  static constexpr uint64_t kProbeCookie = 1;

  // REQUIRES: placement and recorder outlive the process; client_id is unique in the run.
  CanaryProcess(CanaryOptions options, const model::Placement* placement, uint64_t client_id,
                CanaryRecorder* recorder);

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  struct Stats {
    uint64_t probes = 0;
    uint64_t succeeded = 0;
  };
  const Stats& stats() const { return stats_; }
  model::DirectClient& client() { return client_; }

 private:
  void probe(sim::Env& env);
  void finish(sim::SimTime started, bool succeeded);

  CanaryOptions options_;
  CanaryRecorder* recorder_;
  model::DirectClient client_;
  uint64_t next_probe_ = 1;
  Stats stats_;
};

}  // namespace dynasim::gameday
