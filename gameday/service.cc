#include "gameday/service.h"

#include "gameday/linearizability.h"
#include "gameday/units.h"
#include "gameday/workload.h"
#include "model/auto_admin.h"
#include "model/healing_protocol.h"
#include "sim/check.h"

namespace dynasim::gameday {

ServiceHarness::ServiceHarness(const ScenarioSpec& spec, sim::Simulation& simulation,
                               sim::World& world,
                               const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az)
    : spec_(spec), simulation_(simulation), world_(world) {
  DYN_ASSERT(spec_.storage.has_value());
  DYN_ASSERT(storage_hosts_by_az.size() == model::kReplicasPerGroup);
  history_ = std::make_unique<HistoryRecorder>(&simulation_);
  build_placement(storage_hosts_by_az);
  paxos_safety_ = std::make_unique<PaxosSafetyChecker>(world_, placement_);
  healing_ = std::make_unique<HealingRecorder>(world_);
  observers_ = std::make_unique<ObserverFanout>(
      std::vector<model::StorageObserver*>{paxos_safety_.get(), healing_.get()});
  add_clients();
  add_storage_nodes(storage_hosts_by_az);
}

ServiceHarness::~ServiceHarness() = default;

void ServiceHarness::build_placement(
    const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az) {
  // Replica r of group g lives in AZ r, on that AZ's host (g + r) mod n: each AZ holds one copy
  // of every partition, and neighbouring groups spread over different hosts.
  const uint32_t partitions = spec_.storage->partitions;
  std::vector<std::array<sim::Address, model::kReplicasPerGroup>> hosts(partitions);
  for (uint32_t g = 0; g < partitions; ++g) {
    for (uint32_t r = 0; r < model::kReplicasPerGroup; ++r) {
      const std::vector<sim::HostId>& az_hosts = storage_hosts_by_az[r];
      hosts[g][r] = sim::Address{az_hosts[(g + r) % az_hosts.size()], model::kStoragePort};
    }
  }
  placement_ = model::Placement::uniform(partitions, hosts);
}

void ServiceHarness::add_storage_nodes(
    const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az) {
  const StorageSpec& storage = *spec_.storage;
  model::StorageNodeOptions base;
  base.paxos.heartbeat_interval = storage.heartbeat_interval;
  base.paxos.election_timeout = storage.election_timeout;
  base.paxos.lease_duration = storage.lease;
  base.paxos.max_clock_drift_ppm = storage.max_clock_drift_ppm;
  base.paxos.plant_quorum_of_one = storage.plant_quorum_of_one;
  base.paxos.plant_no_lease_wait = storage.plant_no_lease_wait;
  base.paxos.plant_follower_strong_reads = storage.plant_follower_strong_reads;
  base.plant_send_before_fsync = storage.plant_send_before_fsync;
  base.checkpoint_every_entries = storage.checkpoint_every_entries;
  base.checkpoint_interval = storage.checkpoint_interval;
  base.log_tail_entries = storage.log_tail_entries;
  base.btree_cache_pages = storage.btree_cache_pages;
  base.cost.cpu_cores = storage.cpu_cores;
  base.observer = observers_.get();
  if (storage.healing) {
    // Auto-admin runs on the first client host: a control-plane host the faults spare.
    DYN_ASSERT(!client_hosts_.empty());
    auto_admin_ = sim::Address{client_hosts_.front(), model::kAutoAdminPort};
    world_.add_process(client_hosts_.front(), model::kAutoAdminPort, [] {
      return std::make_unique<model::AutoAdmin>(model::AutoAdminOptions{});
    });
    base.healing.enabled = true;
    base.healing.auto_admin = *auto_admin_;
    base.healing.replica_lost_after = storage.replica_lost_after;
    base.healing.check_interval = storage.healing_check_interval;
    base.healing.log_replicas = storage.log_replicas;
    base.healing.log_replica_seed_entries = storage.log_replica_seed_entries;
    base.healing.rebuild_bytes_per_second = static_cast<double>(storage.rebuild_bytes_per_second);
    base.healing.plant_remove_log_replica_early = storage.plant_remove_log_replica_early;
  }
  if (storage.archival) {
    base.archival.enabled = true;
    base.archival.entries_per_segment = storage.archive_entries_per_segment;
    base.archival.snapshot_every_entries = storage.archive_snapshot_every_entries;
    base.archival.plant_accept_sequence_gap = storage.plant_accept_sequence_gap;
    for (const model::GroupPlacement& group : placement_.groups) {
      base.archival.group_hash_ranges.emplace_back(group.hash_begin, group.hash_end);
    }
  }

  for (const std::vector<sim::HostId>& az_hosts : storage_hosts_by_az) {
    for (sim::HostId host : az_hosts) {
      model::StorageNodeOptions options = base;
      const sim::Address self{host, model::kStoragePort};
      for (const model::GroupPlacement& group : placement_.groups) {
        for (uint32_t r = 0; r < model::kReplicasPerGroup; ++r) {
          if (group.replicas[r] != self) continue;
          options.replicas.push_back(model::ReplicaAssignment{group.group, r + 1, group.replicas});
        }
      }
      // With healing, every storage host runs a node: it may be given replicas later.
      if (options.replicas.empty() && !storage.healing) continue;
      storage_nodes_.push_back(self);
      world_.add_process(host, model::kStoragePort,
                         [options] { return std::make_unique<model::StorageNode>(options); });
    }
  }
}

void ServiceHarness::add_clients() {
  const WorkloadSpec& workload = spec_.workload;
  WorkloadOptions options;
  options.operations_per_second = workload.operations_per_second;
  options.key_count = workload.keys;
  options.item_size_bytes = workload.item_size_bytes;
  // The mix is given as relative weights; the workload takes whole numbers, so scale by 100.
  auto weight = [](double value) { return static_cast<uint32_t>(value * 100.0 + 0.5); };
  options.mix.put = weight(workload.put);
  options.mix.get_strong = weight(workload.get_strong);
  options.mix.get_eventual = weight(workload.get_eventual);
  options.mix.put_if_version = weight(workload.put_if_version);
  options.mix.put_if_absent = weight(workload.put_if_absent);
  options.mix.delete_item = weight(workload.delete_item);
  options.client.max_attempts = workload.max_attempts;
  options.client.attempt_timeout = workload.attempt_timeout;

  for (uint32_t a = 0; a < world_.az_count(); ++a) {
    const sim::AzId az(a);
    const std::string rack_name = world_.az_name(az) + "/clients";
    const sim::RackId rack = world_.add_rack(az, rack_name);
    for (uint32_t h = 0; h < workload.client_hosts_per_az; ++h) {
      sim::HostOptions host_options;
      host_options.disks = {spec_.topology.disk};
      const sim::HostId host =
          world_.add_host(rack, rack_name + "/h" + std::to_string(h), host_options);
      client_hosts_.push_back(host);
      // A new client id per incarnation, so that a rebuilt process never repeats a "ver" value.
      world_.add_process(host, model::kClientPort, [this, options] {
        return std::make_unique<WorkloadProcess>(options, &placement_, next_client_id_++,
                                                 history_.get());
      });
    }
  }
}

std::vector<WorkloadProcess*> ServiceHarness::live_workloads() {
  std::vector<WorkloadProcess*> workloads;
  for (sim::HostId host : client_hosts_) {
    sim::Process* process = world_.process_at(sim::Address{host, model::kClientPort});
    if (auto* workload = dynamic_cast<WorkloadProcess*>(process)) workloads.push_back(workload);
  }
  return workloads;
}

void ServiceHarness::on_heal_start() {
  for (WorkloadProcess* workload : live_workloads()) workload->stop();
}

void ServiceHarness::on_verify_start() {
  for (WorkloadProcess* workload : live_workloads()) workload->verify_all();
}

void ServiceHarness::finish() {
  if (finished_) return;
  finished_ = true;
  const sim::SimTime verification_start =
      sim::SimTime::zero() + spec_.duration + spec_.workload.verify_after;
  DurabilityOfWritesChecker durability(verification_start);
  durability.check(history_->by_key());
  durability_passed_ = durability.passed() && history_->counts().impossible_answers == 0;
  durability_report_ = durability.report();
  if (history_->counts().impossible_answers > 0) {
    durability_report_["passed"] = false;
    durability_report_["impossible_answers"] = history_->counts().impossible_answers;
    durability_report_["first_impossible_answer"] = history_->first_impossible_answer();
  }

  LinearizabilityOptions options;
  options.max_states_per_key = spec_.checks.linearizability_max_states_per_key;
  const LinearizabilityReport linearizability = check_history(history_->by_key(), options);
  linearizability_passed_ = linearizability.passed();
  linearizability_report_ = {{"passed", linearizability.passed()},
                             {"operations_checked", linearizability.operations_checked},
                             {"keys_checked", linearizability.keys_checked},
                             {"unknown", linearizability.keys_unknown},
                             {"keys_violated", linearizability.keys_violated}};
  if (!linearizability.first_violation.empty()) {
    linearizability_report_["first_violation"] = linearizability.first_violation;
    // The violating key's operations, one line each (at most 200, around the first invocations).
    nlohmann::json lines = nlohmann::json::array();
    for (const RegisterOperation& op : linearizability.first_violation_history) {
      if (lines.size() >= 200) break;
      static constexpr const char* kKinds[] = {"read", "write", "delete", "conditional_write"};
      static constexpr const char* kOutcomes[] = {"ok", "condition_failed", "unknown"};
      std::string line = "client " + std::to_string(op.client) + " op " + std::to_string(op.id) +
                         " " + kKinds[static_cast<int>(op.kind)] + " [" +
                         sim::format_time(sim::SimTime(op.invoke_ns)) + ", " +
                         (op.complete_ns == INT64_MAX
                              ? std::string("?")
                              : sim::format_time(sim::SimTime(op.complete_ns))) +
                         "] " + kOutcomes[static_cast<int>(op.outcome)];
      if (op.kind == RegisterOperation::Kind::kRead) {
        line += " -> " + (op.read_value ? std::to_string(*op.read_value) : std::string("none"));
      } else if (op.kind != RegisterOperation::Kind::kDelete) {
        line += " value " + std::to_string(op.value);
      }
      if (op.expected_version) line += " if version " + std::to_string(*op.expected_version);
      if (op.expected_exists) line += *op.expected_exists ? " if exists" : " if absent";
      if (op.expected_value) line += " if value " + std::to_string(*op.expected_value);
      lines.push_back(line);
    }
    linearizability_report_["first_violation_history"] = lines;
  }

  const ReplicaConvergence convergence = check_convergence(world_, placement_, storage_nodes_);
  convergence_passed_ = convergence.passed();
  convergence_report_ = convergence.report();

  if (spec_.storage->archival) check_archive();
  if (spec_.storage->healing) {
    healing_passed_ = healing_->passed();
    healing_failure_ = healing_->first_violation();
    const nlohmann::json report = healing_->report();
    const sim::Duration limit = spec_.checks.max_quorum_restore_p99;
    const nlohmann::json& restore = report["quorum_restore_s"];
    if (healing_passed_ && limit > sim::Duration(0) && restore.contains("p99") &&
        restore["p99"].get<double>() > static_cast<double>(limit.ns) / 1e9) {
      healing_passed_ = false;
      healing_failure_ = "quorum_restore_s.p99 " + restore["p99"].dump() + " s exceeds " +
                         sim::format_duration(limit);
    }
  }
}

bool ServiceHarness::passed() const {
  return durability_passed_ && linearizability_passed_ && convergence_passed_ &&
         paxos_safety_->passed() && healing_passed_ && archive_passed_;
}

// Every group's archive, audited in the object store (model::ArchiveAudit): segments decode and
// their checksums hold, manifests match keys and the group, and the segments are contiguous with
// no hole inside or between them.
void ServiceHarness::check_archive() {
  uint64_t segments = 0;
  uint64_t snapshots = 0;
  uint64_t entries = 0;
  uint64_t findings = 0;
  uint64_t lowest_archived = UINT64_MAX;
  uint64_t highest_archived = 0;
  std::string first_finding;
  for (const model::GroupPlacement& group : placement_.groups) {
    const model::ArchiveAudit audit(world_.object_store(),
                                    model::ArchiveScope::of(model::TableId(0), group));
    const model::ArchiveAuditReport report = audit.run();
    segments += report.segments;
    snapshots += report.snapshots;
    entries += report.entries;
    findings += report.findings.size();
    lowest_archived = std::min(lowest_archived, report.archived_through.value);
    highest_archived = std::max(highest_archived, report.archived_through.value);
    if (first_finding.empty() && !report.findings.empty()) {
      first_finding = "group " + std::to_string(group.group.value) + ": " +
                      model::to_string(report.findings.front());
    }
  }
  archive_passed_ = findings == 0;
  archive_report_ = {{"passed", archive_passed_},
                     {"segments", segments},
                     {"snapshots", snapshots},
                     {"entries_archived", entries},
                     {"archived_through_min", lowest_archived == UINT64_MAX ? 0 : lowest_archived},
                     {"archived_through_max", highest_archived},
                     {"findings", findings},
                     {"first_violation", first_finding}};
}

std::string ServiceHarness::first_failure() const {
  if (!paxos_safety_->passed()) return "paxos_safety: " + paxos_safety_->first_violation();
  if (!durability_passed_) return "durability: " + durability_report_.value("first_violation", "");
  if (!linearizability_passed_) {
    return "linearizability: " + linearizability_report_.value("first_violation", "");
  }
  if (!convergence_passed_) {
    return "replica_convergence: " + convergence_report_.value("first_violation", "");
  }
  if (!healing_passed_) return "healing: " + healing_failure_;
  if (!archive_passed_) return "archive: " + archive_report_.value("first_violation", "");
  return "";
}

void ServiceHarness::add_to_summary(nlohmann::json& summary) const {
  summary["checks"]["durability"] = durability_report_;
  summary["checks"]["linearizability"] = linearizability_report_;
  summary["checks"]["replica_convergence"] = convergence_report_;
  summary["checks"]["paxos_safety"] = paxos_safety_->report();
  if (spec_.storage->archival) summary["checks"]["archive"] = archive_report_;
  if (spec_.storage->healing) {
    nlohmann::json healing = healing_->report();
    summary["checks"]["healing"] = {{"passed", healing_passed_},
                                    {"first_violation", healing_failure_},
                                    {"redundancy", healing["redundancy"]}};
    healing.erase("redundancy");
    healing["log_replicas"] = spec_.storage->log_replicas;
    summary["healing"] = healing;
  }

  // Availability as the clients saw it, per window of the workload phase.
  nlohmann::json windows = nlohmann::json::array();
  const int64_t workload_end_ns = spec_.duration.ns;
  for (const nlohmann::json& window : history_->availability(spec_.checks.availability_window)) {
    if (window["start_ns"].get<int64_t>() >= workload_end_ns) continue;
    windows.push_back(window);
  }
  summary["availability"] = {{"window", format_duration_short(spec_.checks.availability_window)},
                             {"windows", windows}};
  summary["history"] = history_->counts_json();

  summary["storage"] = {{"partitions", placement_.groups.size()},
                        {"storage_nodes", world_.host_count() - client_hosts_.size()},
                        {"client_hosts", client_hosts_.size()}};
}

}  // namespace dynasim::gameday
