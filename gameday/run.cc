#include "gameday/run.h"

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <utility>

#include "gameday/json_reader.h"

namespace dynasim::gameday {

namespace {
constexpr sim::EventKind kHealPhase = sim::event_kind("gameday.heal");
constexpr sim::EventKind kVerifyPhase = sim::event_kind("gameday.verify");

std::string hex64(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64, value);
  return buffer;
}
}  // namespace

void DurabilityChecker::on_acknowledged(sim::Address probe, uint64_t record_index) {
  ProbeState& state = probes_[probe];
  // Records are acknowledged in order, one at a time.
  if (record_index + 1 > state.acknowledged) {
    acknowledged_total_ += record_index + 1 - state.acknowledged;
    state.acknowledged = record_index + 1;
  }
}

void DurabilityChecker::violation(sim::Address probe, uint64_t acknowledged, uint64_t found,
                                  const char* when) {
  lost_records_ += acknowledged - found;
  if (!first_violation_.empty()) return;
  char buffer[256];
  std::snprintf(buffer, sizeof buffer,
                "%s: probe on host %u acknowledged %" PRIu64 " records but %" PRIu64
                " were found (at %s)",
                when, probe.host.value, acknowledged, found,
                simulation_ ? sim::format_time(simulation_->now()).c_str() : "?");
  first_violation_ = buffer;
}

void DurabilityChecker::on_recovered(sim::Address probe, uint64_t records_recovered) {
  ProbeState& state = probes_[probe];
  ++state.recoveries;
  ++recoveries_checked_;
  if (records_recovered < state.acknowledged) {
    violation(probe, state.acknowledged, records_recovered, "recovery after restart");
    // The lost records are counted once; what the probe rebuilds from here is checked anew.
    state.acknowledged = records_recovered;
  }
}

void DurabilityChecker::verify_final(sim::World& world, uint32_t port) {
  for (auto& [address, state] : probes_) {
    if (address.port != port) continue;
    sim::Disk& disk = world.disk(address.host, 0);
    const uint32_t sector_size = disk.options().sector_size_bytes;
    uint64_t valid = 0;
    while (valid < state.acknowledged &&
           Probe::record_valid(disk.durable_sector(valid), 0, sector_size, valid, valid)) {
      ++valid;
    }
    if (valid < state.acknowledged) {
      violation(address, state.acknowledged, valid, "final read of the durable disk image");
    }
  }
}

nlohmann::json DurabilityChecker::report() const {
  nlohmann::json report = {{"passed", passed()},
                           {"acknowledged_records", acknowledged_total_},
                           {"lost_records", lost_records_},
                           {"recoveries_checked", recoveries_checked_}};
  if (!first_violation_.empty()) report["first_violation"] = first_violation_;
  return report;
}

ScenarioRun::ScenarioRun(ScenarioSpec spec, uint64_t seed) : spec_(std::move(spec)), seed_(seed) {
  simulation_ = std::make_unique<sim::Simulation>(seed, spec.source);
  durability_.bind(simulation_.get());
  sim::ScopedCheckContext context(simulation_->check_context());
  build_world();
  schedule_faults();
  heal_start_ = sim::SimTime::zero() + spec_.duration;
  end_time_ = heal_start_ + spec_.heal;
  simulation_->call_at(heal_start_, kHealPhase, 0, [this] { begin_heal(); });
  if (service_) {
    simulation_->call_at(heal_start_ + spec_.workload.verify_after, kVerifyPhase, 0,
                         [this] { service_->on_verify_start(); });
  }
  world_->start();
}

ScenarioRun::~ScenarioRun() = default;

void ScenarioRun::build_world() {
  sim::WorldOptions options;
  options.network = spec_.network;
  world_ = std::make_unique<sim::World>(*simulation_, options);
  const TopologySpec& topology = spec_.topology;
  sim::Random drift_random = simulation_->random_stream("world/clock-drift");
  std::vector<sim::HostId> hosts;
  std::vector<std::vector<sim::HostId>> hosts_by_az;
  for (const std::string& az_name : topology.az_names) {
    hosts_by_az.emplace_back();
    const sim::AzId az = world_->add_az(az_name);
    for (uint32_t r = 0; r < topology.racks_per_az; ++r) {
      const std::string rack_name = az_name + "/r" + std::to_string(r);
      const sim::RackId rack = world_->add_rack(az, rack_name);
      for (uint32_t h = 0; h < topology.hosts_per_rack; ++h) {
        sim::HostOptions host_options;
        host_options.disks = {topology.disk};
        if (topology.clock_drift_ppm_bound > 0) {
          host_options.clock_drift_ppm = drift_random.uniform_real(-topology.clock_drift_ppm_bound,
                                                                   topology.clock_drift_ppm_bound);
        }
        hosts.push_back(world_->add_host(rack, rack_name + "/h" + std::to_string(h), host_options));
        hosts_by_az.back().push_back(hosts.back());
      }
    }
  }
  if (service_scenario()) {
    service_ = std::make_unique<ServiceHarness>(spec_, *simulation_, *world_, hosts_by_az);
    return;
  }
  for (sim::HostId host : hosts) {
    ProbeOptions probe = spec_.probe;
    for (sim::HostId peer : hosts) {
      if (peer != host) probe.peers.push_back(sim::Address{peer, kProbePort});
    }
    world_->add_process(host, kProbePort,
                        [probe, this] { return std::make_unique<Probe>(probe, &durability_); });
  }
}

sim::FaultTarget ScenarioRun::resolve_target(const std::string& name,
                                             const std::string& path) const {
  using Scope = sim::FaultTarget::Scope;
  if (name == "region") return sim::FaultTarget{Scope::kRegion, 0};
  if (auto az = world_->find_az(name); az.valid()) return sim::FaultTarget{Scope::kAz, az.value};
  if (auto rack = world_->find_rack(name); rack.valid()) {
    return sim::FaultTarget{Scope::kRack, rack.value};
  }
  if (auto host = world_->find_host(name); host.valid()) {
    return sim::FaultTarget{Scope::kHost, host.value};
  }
  std::vector<std::string> names{"region"};
  for (uint32_t i = 0; i < world_->az_count(); ++i) names.push_back(world_->az_name(sim::AzId(i)));
  for (uint32_t i = 0; i < world_->rack_count(); ++i) {
    names.push_back(world_->rack_name(sim::RackId(i)));
  }
  for (uint32_t i = 0; i < world_->host_count(); ++i) {
    names.push_back(world_->host_name(sim::HostId(i)));
  }
  throw ScenarioError(path,
                      "\"region\" or the name of an AZ, rack or host (e.g. \"" + names[1] +
                          "\", \"" + world_->rack_name(sim::RackId(0)) + "\", \"" +
                          world_->host_name(sim::HostId(0)) + "\")",
                      "\"" + name + "\"", did_you_mean(name, names));
}

void ScenarioRun::schedule_faults() {
  sim::SurvivabilityPolicy policy = spec_.survivability;
  if (service_) policy.spared_hosts = service_->client_hosts();
  faults_ = std::make_unique<sim::FaultInjector>(*world_, policy);
  for (const NamedTimelineFault& named : spec_.timeline) {
    sim::TimelineFault fault;
    fault.at = named.at;
    fault.fault.kind = named.kind;
    fault.fault.target = resolve_target(named.target, named.path + ".target");
    fault.fault.duration = named.duration;
    fault.fault.value = named.value;
    faults_->schedule(fault);
  }
  for (const NamedRandomFault& named : spec_.random_faults) {
    sim::RandomFaultProcess process;
    process.kind = named.kind;
    process.scope = resolve_target(named.scope, named.path + ".scope");
    process.rate_per_host_hour = named.rate_per_host_hour;
    process.duration_ns =
        sim::DistributionSpec::exponential(static_cast<double>(named.duration.ns));
    process.value = named.value;
    process.end = spec_.duration;
    faults_->add_random_process(process);
  }
}

void ScenarioRun::begin_heal() {
  // The heal phase: every host comes back, the network heals, the object store returns. Checks
  // then require that the service (here, the probes) recovers within the heal time.
  heal_started_ = true;
  faults_->drop_waiting();
  for (uint32_t i = 0; i < world_->host_count(); ++i) world_->restart(sim::HostId(i));
  world_->network().heal_all();
  world_->object_store().set_available(true);
  if (service_) service_->on_heal_start();
}

bool ScenarioRun::step() {
  if (finished_) return false;
  sim::ScopedCheckContext context(simulation_->check_context());
  const sim::SimTime next = simulation_->next_event_time();
  if (next > end_time_) return false;
  if (metrics_) metrics_->advance_to(next);
  return simulation_->step();
}

void ScenarioRun::run_to_end() {
  while (step()) {
  }
  finish();
}

void ScenarioRun::finish() {
  if (finished_) return;
  finished_ = true;
  sim::ScopedCheckContext context(simulation_->check_context());
  if (metrics_) metrics_->finish_at(end_time_);
  if (trace_) {
    for (const sim::FaultLogEntry& entry : faults_->log()) {
      if (entry.applied) trace_->fault(entry.time, entry.description);
    }
    trace_->finish();
    simulation_->set_observer(nullptr);
  }
  if (service_) {
    service_->finish();
  } else {
    durability_.verify_final(*world_, kProbePort);
  }
}

bool ScenarioRun::write_history_to(std::ostream* out) {
  if (!service_) return false;
  service_->history().set_dump(out);
  return true;
}

void ScenarioRun::record_metrics(sim::Duration interval) {
  DYN_ASSERT(interval >= sim::seconds(1));
  DYN_ASSERT(simulation_->events_executed() == 0);
  MetricsRecorder::PartitionOf partition_of;
  if (service_) {
    const ServiceHarness* service = service_.get();
    partition_of = [service](const model::PrimaryKey& key) { return service->partition_of(key); };
  }
  metrics_ = std::make_unique<MetricsRecorder>(simulation_.get(), world_.get(), interval,
                                               std::move(partition_of));
  if (service_) service_->history().add_tap(metrics_.get());
}

void ScenarioRun::write_trace_to(std::ostream* out, sim::SimTime from, sim::SimTime to) {
  DYN_ASSERT(simulation_->events_executed() == 0 && trace_ == nullptr);
  trace_ = std::make_unique<ChromeTraceWriter>(world_.get(), out, from, to);
  simulation_->set_observer(trace_.get());
  if (service_) service_->history().add_tap(trace_.get());
}

bool ScenarioRun::write_metrics(const std::string& directory) const {
  DYN_ASSERT(metrics_ != nullptr && finished_);
  std::ofstream metrics(directory + "/metrics.csv");
  metrics_->write_metrics_csv(metrics);
  std::ofstream partitions(directory + "/partitions.csv");
  metrics_->write_partitions_csv(partitions);
  return static_cast<bool>(metrics) && static_cast<bool>(partitions);
}

bool ScenarioRun::passed() const {
  return service_ ? service_->passed() : durability_.passed();
}

std::string ScenarioRun::reproduce_command() const {
  std::string command = "dynasim run " + spec_.source + " --seed " + std::to_string(seed_);
  for (const std::string& assignment : spec_.overrides) {
    // Single quotes keep JSON values (brackets, quotes) intact in a POSIX shell.
    std::string quoted = "'";
    for (char c : assignment) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    command += " --set " + quoted + "'";
  }
  return command;
}

nlohmann::json ScenarioRun::summary(double wall_seconds) const {
  const double sim_seconds = sim::to_seconds(end_time_);
  const uint64_t events = simulation_->events_executed();
  nlohmann::json summary;
  summary["seed"] = seed_;
  summary["scenario"] = spec_.name;
  summary["scenario_file"] = spec_.source;
  summary["trace_hash"] = hex64(simulation_->trace_hash());
  summary["events"] = events;
  summary["sim_seconds"] = sim_seconds;
  summary["wall_seconds"] = wall_seconds;
  summary["events_per_second"] =
      wall_seconds > 0 ? static_cast<double>(events) / wall_seconds : 0.0;
  summary["sim_seconds_per_wall_second"] = wall_seconds > 0 ? sim_seconds / wall_seconds : 0.0;
  // When each phase ran, in simulated seconds (docs/scenarios.md, "Phases").
  summary["phases"] = {
      {"faults", {{"start_s", 0.0}, {"end_s", sim::to_seconds(heal_start_)}}},
      {"heal", {{"start_s", sim::to_seconds(heal_start_)}, {"end_s", sim::to_seconds(end_time_)}}}};
  if (service_) {
    service_->add_to_summary(summary);
  } else {
    summary["checks"]["acknowledged_records_durable"] = durability_.report();
  }
  summary["passed"] = passed();
  if (!passed()) summary["reproduce"] = reproduce_command();

  const sim::FaultInjector::Stats& faults = faults_->stats();
  nlohmann::json fault_log = nlohmann::json::array();
  for (const sim::FaultLogEntry& entry : faults_->log()) {
    fault_log.push_back({{"time", sim::format_time(entry.time)},
                         {"fault", entry.description},
                         {"applied", entry.applied}});
  }
  summary["faults"] = {{"applied", faults.applied},
                       {"refused_by_guard", faults.refused},
                       {"waited_for_guard", faults.waited},
                       {"power_offs", faults.power_offs},
                       {"az_power_offs", faults.az_power_offs},
                       {"crashes", faults.crashes},
                       {"isolations", faults.isolations},
                       {"disk_faults", faults.disk_faults},
                       {"clock_faults", faults.clock_faults},
                       {"network_faults", faults.network_faults},
                       {"log", fault_log}};

  const sim::Network::Stats& network = world_->network().stats();
  summary["network"] = {{"sent", network.sent},
                        {"delivered", network.delivered},
                        {"dropped_partition", network.dropped_partition},
                        {"dropped_loss", network.dropped_loss},
                        {"duplicated", network.duplicated},
                        {"dropped_host_down", world_->stats().messages_dropped_host_down}};
  uint64_t writes = 0, fsyncs = 0, lost_sectors = 0, torn = 0;
  for (uint32_t h = 0; h < world_->host_count(); ++h) {
    for (uint32_t d = 0; d < world_->disk_count(sim::HostId(h)); ++d) {
      const sim::Disk::Stats& stats = world_->disk(sim::HostId(h), d).stats();
      writes += stats.writes;
      fsyncs += stats.fsyncs;
      lost_sectors += stats.lost_unsynced_sectors;
      torn += stats.torn_writes;
    }
  }
  summary["disks"] = {{"writes", writes},
                      {"fsyncs", fsyncs},
                      {"lost_unsynced_sectors", lost_sectors},
                      {"torn_writes", torn}};
  nlohmann::json metrics;
  for (const auto& [name, value] : world_->counters()) metrics[name] = value;
  for (const auto& [name, series] : world_->series()) {
    metrics[name] = {{"count", series.count},
                     {"mean", series.count ? series.sum / static_cast<double>(series.count) : 0.0},
                     {"min", series.min},
                     {"max", series.max}};
  }
  summary["metrics"] = metrics;
  return summary;
}

}  // namespace dynasim::gameday
