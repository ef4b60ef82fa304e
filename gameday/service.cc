#include "gameday/service.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "gameday/linearizability.h"
#include "gameday/units.h"
#include "gameday/workload.h"
#include "model/auto_admin.h"
#include "model/capacity_controller.h"
#include "model/capacity_mode.h"
#include "model/gac.h"
#include "model/healing_protocol.h"
#include "model/memds.h"
#include "model/router.h"
#include "sim/check.h"

namespace dynasim::gameday {

namespace {

// Whether the workload's mix, or a phase's, sends UpdateItem: the counter check runs then.
bool sends_updates(const WorkloadSpec& workload) {
  if (workload.phases.empty()) return workload.update > 0;
  return std::any_of(workload.phases.begin(), workload.phases.end(),
                     [](const WorkloadPhaseSpec& phase) { return phase.mix.update > 0; });
}

}  // namespace

ServiceHarness::ServiceHarness(const ScenarioSpec& spec, sim::Simulation& simulation,
                               sim::World& world,
                               const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az)
    : spec_(spec), simulation_(simulation), world_(world) {
  DYN_ASSERT(spec_.storage.has_value());
  DYN_ASSERT(storage_hosts_by_az.size() == model::kReplicasPerGroup);
  history_ = std::make_unique<HistoryRecorder>(&simulation_);
  if (sends_updates(spec_.workload)) {
    counter_checker_ = std::make_unique<CounterChecker>(&simulation_);
    history_->add_tap(counter_checker_.get());
  }
  canaries_ = std::make_unique<CanaryRecorder>(&simulation_);
  // Latency is the workload phase's: the final verification reads are left out.
  history_->measure_latency_until(sim::SimTime::zero() + spec_.duration);
  build_placement(storage_hosts_by_az);
  paxos_safety_ = std::make_unique<PaxosSafetyChecker>(world_, placement_);
  healing_ = std::make_unique<HealingRecorder>(world_);
  reference_checks_ = std::make_unique<ReferenceCheckRecorder>();
  std::vector<model::StorageObserver*> observers{paxos_safety_.get(), healing_.get(),
                                                 reference_checks_.get()};
  const StorageSpec& storage = *spec_.storage;
  if (storage.admission) {
    admission_.enabled = true;
    admission_.admission.node_read_units_per_second =
        static_cast<int64_t>(storage.node_read_units_per_second);
    admission_.admission.node_write_units_per_second =
        static_cast<int64_t>(storage.node_write_units_per_second);
    admission_.admission.burst_window = storage.admission_burst_window;
    admission_.admission.plant_burst_ignores_depth = storage.plant_burst_ignores_depth;
    capacity_initial_ = initial_capacity(storage);
    admission_.allocation =
        model::partition_allocation(storage.capacity_on_demand ? model::CapacityMode::kOnDemand
                                                               : model::CapacityMode::kProvisioned,
                                    capacity_initial_, storage.partitions);
    admission_checker_ =
        std::make_unique<AdmissionChecker>(admission_.allocation, admission_.admission);
    observers.push_back(admission_checker_.get());
    admission_.allocation_observer = admission_checker_.get();
  }
  if (storage.routing) {
    router_groups_ = std::make_unique<RouterGroupsChecker>(world_, &simulation_, placement_);
    observers.push_back(router_groups_.get());
  }
  if (storage.splits) {
    split_recorder_ = std::make_unique<SplitRecorder>(&simulation_);
    observers.push_back(split_recorder_.get());
  }
  observers_ = std::make_unique<ObserverFanout>(std::move(observers));
  if (storage.gac) add_gac();
  if (storage.routing) add_routing();
  add_clients();
  if (storage.admission) add_capacity_controller(storage_hosts_by_az);
  add_storage_nodes(storage_hosts_by_az);
}

// The table's capacity at the start. On-demand: a table switched from the scenario's provisioned
// capacity keeps at least that level, and has at least a new table's 12,000 RCU and 4,000 WCU
// (Developer Guide, HowItWorks.ReadWriteCapacityMode); the instant capacity is twice the previous
// peak, so it is rounded up to an even number of units.
model::TableCapacity ServiceHarness::initial_capacity(const StorageSpec& storage) {
  const auto units = [](uint64_t configured) { return static_cast<int64_t>(configured); };
  if (!storage.capacity_on_demand) {
    return model::TableCapacity{units(storage.read_capacity_units),
                                units(storage.write_capacity_units)};
  }
  const auto at_least = [](int64_t level, int64_t floor) {
    return std::max(floor, (level + 1) / 2 * 2);
  };
  return model::TableCapacity{
      at_least(units(storage.read_capacity_units),
               2 * model::OnDemandCapacity::new_table_reads().initial_previous_peak_units),
      at_least(units(storage.write_capacity_units),
               2 * model::OnDemandCapacity::new_table_writes().initial_previous_peak_units)};
}

// Capacity modes (docs/admission.md, "Capacity modes in a game day"): an on-demand table, or a
// provisioned one with auto scaling, gets a capacity controller on the first client host (a
// control-plane host the faults spare, like auto-admin), which every storage node reports to. A
// provisioned table without auto scaling keeps its static allocation and runs no controller,
// unless it splits: the controller then divides the table's capacity over the partitions as
// splits add them.
void ServiceHarness::add_capacity_controller(
    const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az) {
  const StorageSpec& storage = *spec_.storage;
  const model::CapacityMode mode = storage.capacity_on_demand ? model::CapacityMode::kOnDemand
                                                              : model::CapacityMode::kProvisioned;
  const model::TableCapacity initial = capacity_initial_;
  capacity_mode_ = mode;
  history_->set_capacity_mode(mode);
  if (!storage.capacity_on_demand && !storage.auto_scaling && !storage.splits) return;
  capacity_recorder_ = std::make_unique<CapacityRecorder>(&world_, mode, initial);
  model::CapacityControllerOptions options;
  options.mode = mode;
  options.partitions = storage.partitions;
  options.read_provisioned.initial_units = initial.read_units_per_second;
  options.write_provisioned.initial_units = initial.write_units_per_second;
  // On-demand: the instant capacity is twice the previous peak, so the initial capacity is.
  options.read_on_demand.initial_previous_peak_units = initial.read_units_per_second / 2;
  options.write_on_demand.initial_previous_peak_units = initial.write_units_per_second / 2;
  options.read_on_demand.max_units_per_second = static_cast<int64_t>(storage.table_quota_units);
  options.write_on_demand.max_units_per_second = static_cast<int64_t>(storage.table_quota_units);
  if (storage.auto_scaling) {
    model::AutoScalingPolicy policy;
    policy.target_utilization_percent =
        static_cast<int32_t>(storage.auto_scaling_target_utilization_percent);
    policy.update_delay = storage.auto_scaling_update_delay;
    policy.min_units = static_cast<int64_t>(storage.auto_scaling_min_read_units);
    policy.max_units = static_cast<int64_t>(storage.auto_scaling_max_read_units);
    options.read_provisioned.auto_scaling = policy;
    policy.min_units = static_cast<int64_t>(storage.auto_scaling_min_write_units);
    policy.max_units = static_cast<int64_t>(storage.auto_scaling_max_write_units);
    options.write_provisioned.auto_scaling = policy;
  }
  for (const std::vector<sim::HostId>& hosts : storage_hosts_by_az) {
    for (const sim::HostId host : hosts) {
      options.storage_nodes.push_back(sim::Address{host, model::kStoragePort});
    }
  }
  // GAC servers learn the table's capacity from the same updates (model::GacServerProcess).
  for (const sim::Address& server : gac_addresses_) options.storage_nodes.push_back(server);
  options.observer = capacity_recorder_.get();
  DYN_ASSERT(!client_hosts_.empty());
  const sim::Address controller{client_hosts_.front(), model::kCapacityControllerPort};
  world_.add_process(controller.host, controller.port,
                     [options] { return std::make_unique<model::CapacityController>(options); });
  admission_.capacity_controller = controller;
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
  base.plant_acknowledge_update_without_apply = storage.plant_acknowledge_update_without_apply;
  base.checkpoint_every_entries = storage.checkpoint_every_entries;
  base.checkpoint_interval = storage.checkpoint_interval;
  base.log_tail_entries = storage.log_tail_entries;
  base.btree_cache_pages = storage.btree_cache_pages;
  base.cost.cpu_cores = storage.cpu_cores;
  base.observer = observers_.get();
  base.admission = admission_;
  if (storage.routing) {
    base.memds.memds_nodes = memds_addresses_;
    for (const model::GroupPlacement& group : placement_.groups) {
      base.memds.group_hash_ranges.emplace_back(group.hash_begin, group.hash_end);
    }
  }
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
    base.healing.rebuild_waits_for_az = storage.rebuild_waits_for_az;
    base.healing.plant_remove_log_replica_early = storage.plant_remove_log_replica_early;
  }
  if (storage.archival) {
    base.archival.enabled = true;
    base.archival.entries_per_segment = storage.archive_entries_per_segment;
    base.archival.snapshot_every_entries = storage.archive_snapshot_every_entries;
    base.archival.plant_accept_sequence_gap = storage.plant_accept_sequence_gap;
    base.archival.plant_alter_entry_every = storage.plant_archive_alter_entry_every;
    for (const model::GroupPlacement& group : placement_.groups) {
      base.archival.group_hash_ranges.emplace_back(group.hash_begin, group.hash_end);
    }
  }
  if (storage.scrub) {
    base.scrub.enabled = true;
    base.scrub.pages_per_second = storage.scrub_pages_per_second;
    base.scrub.pages_per_step = storage.scrub_pages_per_step;
    base.scrub.plant_skip_replica = storage.plant_scrub_skip_replica;
    base.scrub.compare_interval = storage.compare_interval;
    base.scrub.compare_fanout = storage.compare_fanout;
    base.scrub.compare_leaf_items = storage.compare_leaf_items;
    base.scrub.compare_max_depth = storage.compare_max_depth;
    base.scrub.compare_timeout = storage.compare_timeout;
    base.scrub.plant_compare_ignore_replica = storage.plant_compare_ignore_replica;
  }
  if (storage.splits) {
    // Splits (docs/partitions.md, "Splitting a running partition").
    base.splits.enabled = true;
    base.splits.policy.consumption_threshold_per_mille =
        uint64_t{storage.splits_consumption_threshold_percent} * 10;
    base.splits.policy.sustained_periods = storage.splits_sustained_periods;
    base.splits.policy.split_for_size_at_bytes = storage.splits_size_threshold_bytes;
    base.splits.sampler.period = storage.splits_policy_period;
    base.splits.policy_period = storage.splits_policy_period;
    base.splits.copy_bytes_per_second = storage.splits_copy_bytes_per_second;
    base.splits.first_group_stride = static_cast<uint32_t>(placement_.groups.size());
    base.splits.plant_child_serves_before_copy = storage.plant_split_child_before_copy;
    base.splits.first_leader_at_once = storage.splits_first_leader_at_once;
  }
  if (storage.plant_divergent_apply_replica != 0) {
    base.plant_divergent_apply.replica = storage.plant_divergent_apply_replica;
    base.plant_divergent_apply.every = storage.plant_divergent_apply_every;
    if (storage.plant_divergent_apply_until != sim::Duration(INT64_MAX)) {
      base.plant_divergent_apply.until = sim::SimTime::zero() + storage.plant_divergent_apply_until;
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
  options.keys = workload.key_distribution;
  options.item_size_bytes = workload.item_size_bytes;
  // The mix is given as relative weights; the workload takes whole numbers, so scale by 100.
  options.mix = operation_mix(mix_weights(workload));
  options.counter_count = workload.counters;
  options.client.max_attempts = workload.max_attempts;
  options.client.attempt_timeout = workload.attempt_timeout;
  // Rate shapes and phases are the whole table's, split evenly over the client processes.
  const uint32_t processes = workload.client_hosts_per_az * world_.az_count();
  options.phases = workload_phases(workload, processes);
  options.rate_share = 1.0 / processes;
  options.item_sizes = workload.item_size_distribution;
  options.client.routers = routers_;  // empty unless routing is on

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
      if (spec_.storage->routing) spared_hosts_.push_back(host);
      // A new client id per incarnation, so that a rebuilt process never repeats a "ver" value.
      world_.add_process(host, model::kClientPort, [this, options] {
        return std::make_unique<WorkloadProcess>(options, &placement_, next_client_id_++,
                                                 history_.get());
      });
      if (h == 0) {
        CanaryOptions canary;
        canary.az = world_.az_name(az);
        canary.client = options.client;
        world_.add_process(host, kCanaryPort, [this, canary] {
          return std::make_unique<CanaryProcess>(canary, &placement_, next_client_id_++,
                                                 canaries_.get());
        });
      }
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
      std::string line =
          "client " + std::to_string(op.client) + " op " + std::to_string(op.id) + " " +
          kKinds[static_cast<int>(op.kind)] + " [" + sim::format_time(sim::SimTime(op.invoke_ns)) +
          ", " +
          (op.complete_ns == INT64_MAX ? std::string("?")
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
  if (spec_.storage->scrub) judge_scrub();
  if (gac_checker_ != nullptr) gac_checker_->finish();
  if (counter_checker_ != nullptr) counter_checker_->finish(verification_start);
}

// The scrub check (docs/scrub.md). Every flip of every storage disk's corruption ledger is put in
// one class by its fate and, if still pending, by what its sector holds at the end:
// - detected (by scrub or by a read), overwritten, discarded: decided;
// - absorbed: it hit a sector that never held data (not counted as injected);
// - pending in a page a hosted replica's B-tree still uses: a miss; the check fails;
// - pending on free space: a free page slot of a B-tree region, or a sector no replica uses (a
//   dropped replica's slot): nothing will read it again, so nothing can detect it;
// - pending in a WAL region: out of the B-tree scrub's reach (the WAL verifies its records when
//   recovery reads them, and rewrites or trims its sectors; it does not report to the ledger).
// corrupted_reads_served: flips in a B-tree region whose first read while pending did not detect
// them at that instant. The tree verifies a page in the callback of the read that returned it and
// reports a failure there, so a read that the tree rejected has first_read_at == fate_at with
// fate kDetected; any other first read handed the flipped bit on (to a client, to an apply, or to
// a peer) unverified. WAL-region flips read while pending are counted apart
// (wal_reads_unreported): the WAL rejects a failed record but does not report it.
void ServiceHarness::judge_scrub() {
  const model::StorageNodeOptions layout;  // the service keeps the default disk layout
  const uint64_t slot_sectors = layout.wal_region_sectors + layout.btree_region_sectors;
  uint64_t injected = 0, absorbed = 0, detected = 0, detected_by_scrub = 0, overwritten = 0;
  uint64_t discarded = 0, pending_live = 0, on_free_space = 0, on_wal = 0, pending_unknown = 0;
  uint64_t served = 0, wal_reads = 0;
  std::vector<double> delays;
  std::string first_miss;
  for (const sim::Address& address : storage_nodes_) {
    const auto* node = dynamic_cast<const model::StorageNode*>(world_.process_at(address));
    for (uint32_t d = 0; d < world_.disk_count(address.host); ++d) {
      const sim::Disk& disk = world_.disk(address.host, d);
      for (const sim::BitFlipRecord& record : disk.corruption_ledger().records()) {
        if (record.fate == sim::FlipFate::kAbsorbed) {
          ++absorbed;
          continue;
        }
        ++injected;
        const bool in_wal_region =
            d == 0 && record.sector % slot_sectors < layout.wal_region_sectors;
        if (record.first_read_at) {
          const bool detected_then =
              record.fate == sim::FlipFate::kDetected && record.fate_at == *record.first_read_at;
          if (!detected_then) {
            if (in_wal_region) {
              ++wal_reads;
            } else {
              ++served;
            }
          }
        }
        switch (record.fate) {
          case sim::FlipFate::kDetected:
            ++detected;
            if (record.by == "scrub") ++detected_by_scrub;
            delays.push_back(static_cast<double>((record.fate_at - record.injected_at).ns) / 1e9);
            break;
          case sim::FlipFate::kOverwritten:
            ++overwritten;
            break;
          case sim::FlipFate::kDiscarded:
            ++discarded;
            break;
          case sim::FlipFate::kAbsorbed:
            break;
          case sim::FlipFate::kPending: {
            if (node == nullptr || d != 0) {
              ++pending_unknown;
              break;
            }
            switch (node->sector_use(record.sector)) {
              case model::StorageNode::SectorUse::kBTreeLive:
                ++pending_live;
                if (first_miss.empty()) {
                  first_miss = "a flip in a live B-tree page of " + world_.host_name(address.host) +
                               " (sector " + std::to_string(record.sector) + ", injected at " +
                               sim::format_time(record.injected_at) + ") was never detected";
                }
                break;
              case model::StorageNode::SectorUse::kWal:
                ++on_wal;
                break;
              case model::StorageNode::SectorUse::kBTreeFree:
              case model::StorageNode::SectorUse::kOther:
                ++on_free_space;
                break;
            }
            break;
          }
        }
      }
    }
  }
  std::sort(delays.begin(), delays.end());
  auto percentile = [&](uint32_t per_ten_thousand) {
    return delays.empty() ? 0.0 : delays[nearest_rank_index(delays.size(), per_ten_thousand)];
  };
  auto counter = [&](std::string_view name) -> int64_t {
    auto it = world_.counters().find(name);
    return it == world_.counters().end() ? 0 : it->second;
  };
  scrub_report_ = {{"corruptions_injected", injected},
                   {"absorbed", absorbed},
                   {"detected", detected},
                   {"detected_by_scrub", detected_by_scrub},
                   {"detected_by_read", detected - detected_by_scrub},
                   {"repaired", counter("scrub.repairs")},
                   {"repair_failures", counter("scrub.repair_failures")},
                   {"overwritten", overwritten},
                   {"discarded", discarded},
                   {"pending", pending_live + on_free_space + on_wal + pending_unknown},
                   {"pending_on_live_data", pending_live},
                   {"on_free_space", on_free_space},
                   {"on_wal", on_wal},
                   {"pending_unknown", pending_unknown},
                   {"corrupted_reads_served", served},
                   {"wal_reads_unreported", wal_reads},
                   {"detection_delay_s",
                    {{"p50", percentile(5'000)},
                     {"p99", percentile(9'900)},
                     {"max", delays.empty() ? 0.0 : delays.back()}}},
                   {"compare",
                    {{"rounds", counter("scrub.compare_rounds")},
                     {"narrowing_rounds", counter("scrub.compare_narrowing_rounds")},
                     {"ranges_compared", counter("scrub.compare_ranges")},
                     {"divergent_ranges", counter("scrub.divergent_ranges")},
                     {"no_majority", counter("scrub.compare_no_majority")},
                     {"incomplete_rounds", counter("scrub.compare_incomplete")}}},
                   {"pages_scrubbed", counter("scrub.pages_read")},
                   {"cpu_ms", counter("scrub.cpu_us") / 1000},
                   {"passes", counter("scrub.passes")},
                   {"pages_per_second_per_replica", spec_.storage->scrub_pages_per_second}};
  scrub_passed_ = pending_live == 0 && served == 0;
  if (pending_live > 0) {
    scrub_failure_ =
        std::to_string(pending_live) + " flips on live data stayed pending; " + first_miss;
  } else if (served > 0) {
    scrub_failure_ = std::to_string(served) + " reads handed a flipped bit on without detecting it";
  }
}

bool ServiceHarness::passed() const {
  return durability_passed_ && linearizability_passed_ && convergence_passed_ &&
         paxos_safety_->passed() && healing_passed_ && archive_passed_ && scrub_passed_ &&
         (admission_checker_ == nullptr || admission_checker_->passed()) &&
         (router_groups_ == nullptr || router_groups_->passed()) &&
         (gac_checker_ == nullptr || gac_checker_->passed()) &&
         (counter_checker_ == nullptr || counter_checker_->passed());
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
  if (first_finding.empty() && !reference_checks_->passed()) {
    first_finding = "reference replica: " + reference_checks_->first_failure();
  }
  archive_passed_ = findings == 0 && reference_checks_->passed();
  archive_report_ = {{"passed", archive_passed_},
                     {"reference_checks", reference_checks_->report()},
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
  if (!scrub_passed_) return "scrub: " + scrub_failure_;
  if (admission_checker_ != nullptr && !admission_checker_->passed()) {
    return "admission: " + admission_checker_->first_violation();
  }
  if (router_groups_ != nullptr && !router_groups_->passed()) {
    return "router_groups: " + router_groups_->first_violation();
  }
  if (gac_checker_ != nullptr && !gac_checker_->passed()) {
    return "gac: " + gac_checker_->first_violation();
  }
  if (counter_checker_ != nullptr && !counter_checker_->passed()) {
    return "counters: " + counter_checker_->first_violation();
  }
  return "";
}

void ServiceHarness::add_to_summary(nlohmann::json& summary) const {
  summary["checks"]["durability"] = durability_report_;
  summary["checks"]["linearizability"] = linearizability_report_;
  summary["checks"]["replica_convergence"] = convergence_report_;
  summary["checks"]["paxos_safety"] = paxos_safety_->report();
  if (counter_checker_ != nullptr) summary["checks"]["counters"] = counter_checker_->report();
  if (spec_.storage->archival) summary["checks"]["archive"] = archive_report_;
  if (spec_.storage->healing) {
    nlohmann::json healing = healing_->report();
    summary["checks"]["healing"] = {{"passed", healing_passed_},
                                    {"first_violation", healing_failure_},
                                    {"redundancy", healing["redundancy"]}};
    healing.erase("redundancy");
    healing["log_replicas"] = spec_.storage->log_replicas;
    healing["rebuild_waits_for_az"] = format_duration_short(spec_.storage->rebuild_waits_for_az);
    summary["healing"] = healing;
  }
  if (spec_.storage->scrub) {
    summary["checks"]["scrub"] = {{"passed", scrub_passed_}, {"first_violation", scrub_failure_}};
    summary["scrub"] = scrub_report_;
  }
  if (admission_checker_ != nullptr) {
    summary["checks"]["admission"] = admission_checker_->report();
    auto counter = [&](std::string_view name) -> int64_t {
      auto it = world_.counters().find(name);
      return it == world_.counters().end() ? 0 : it->second;
    };
    if (capacity_recorder_ != nullptr) {
      summary["capacity"] = capacity_recorder_->report();
    } else {
      // No controller: the static provisioned capacity, all run long.
      summary["capacity"] = {{"mode", model::to_string(capacity_mode_)},
                             {"throttling_error", model::throttling_error_name(capacity_mode_)},
                             {"read_units",
                              {{"start", capacity_initial_.read_units_per_second},
                               {"end", capacity_initial_.read_units_per_second}}},
                             {"write_units",
                              {{"start", capacity_initial_.write_units_per_second},
                               {"end", capacity_initial_.write_units_per_second}}},
                             {"changes", 0},
                             {"data_points", 0},
                             {"timeline", nlohmann::json::array({nlohmann::json::array(
                                              {0.0, capacity_initial_.read_units_per_second,
                                               capacity_initial_.write_units_per_second})})}};
    }
    summary["admission"] = {{"read_capacity_units", spec_.storage->read_capacity_units},
                            {"write_capacity_units", spec_.storage->write_capacity_units},
                            {"admitted", counter("admission.admitted")},
                            {"admitted_using_burst", counter("admission.burst")},
                            {"throttled_by_partition", counter("admission.throttled.partition")},
                            {"throttled_by_node", counter("admission.throttled.node")},
                            {"throttled_by_peers", counter("admission.throttled.peers")}};
  }
  // Requests as the clients saw them (every attempt): answered, throttled, or failed otherwise.
  summary["requests"] = history_->requests_json();

  // Availability as the clients saw it, per window of the workload phase.
  nlohmann::json windows = nlohmann::json::array();
  const int64_t workload_end_ns = spec_.duration.ns;
  for (const nlohmann::json& window : history_->availability(spec_.checks.availability_window)) {
    if (window["start_ns"].get<int64_t>() >= workload_end_ns) continue;
    windows.push_back(window);
  }
  summary["availability"] = {{"window", format_duration_short(spec_.checks.availability_window)},
                             {"windows", windows}};
  // Availability from every AZ, as the canaries probed it, over the workload phase.
  summary["canaries"] =
      canaries_->report(spec_.checks.availability_window, sim::SimTime::zero() + spec_.duration);
  summary["history"] = history_->counts_json();
  // Client-measured latency in true time (docs/scenarios.md): per answered attempt, and per
  // succeeded operation with its retries.
  summary["latency_ms"] = history_->attempt_latency_json();
  summary["operation_latency_ms"] = history_->operation_latency_json();

  summary["storage"] = {
      {"partitions", placement_.groups.size()},
      {"storage_nodes", world_.host_count() - client_hosts_.size() - memds_addresses_.size() -
                            routers_.size() - gac_addresses_.size()},
      {"client_hosts", client_hosts_.size()}};
  if (spec_.storage->routing) add_routing_to_summary(summary);
  if (gac_checker_ != nullptr) add_gac_to_summary(summary);
  // Partitions (docs/partitions.md): the count at the start and the end, and each split.
  const size_t splits = split_recorder_ ? split_recorder_->splits().size() : 0;
  summary["partitions"] = {{"initial", placement_.groups.size()},
                           {"final", placement_.groups.size() + splits},
                           {"splits", split_recorder_ ? split_recorder_->report()
                                                      : nlohmann::json::array()}};
}

uint32_t ServiceHarness::partition_of(const model::PrimaryKey& key) const {
  const uint32_t initial = placement_.group_for(key).group.value;
  if (!split_recorder_) return initial;
  return split_recorder_->group_for(initial, model::partition_hash(key.partition));
}

// ---------------------------------------------------------------------------------------------
// Routing (docs/scenarios.md, "Routing").

// MemDS node i runs on its own host in AZ i mod 3 ("<az>/memds"), seeded with the table's map as
// the control plane created it (partition_map_of, version 0: every leader's publication is newer)
// on its first start only: a restarted node comes back empty and refills by anti-entropy and
// pushes. Routers run on "<az>/routers" hosts, routers_per_az each.
void ServiceHarness::add_routing() {
  const StorageSpec& storage = *spec_.storage;
  memds_load_ = std::make_unique<MemdsLoadRecorder>(&simulation_);
  const uint32_t azs = world_.az_count();
  std::vector<sim::RackId> memds_racks;
  for (uint32_t a = 0; a < azs; ++a) {
    const std::string name = world_.az_name(sim::AzId(a)) + "/memds";
    memds_racks.push_back(world_.add_rack(sim::AzId(a), name));
  }
  std::vector<sim::HostId> memds_hosts;
  for (uint32_t i = 0; i < storage.memds_nodes; ++i) {
    const uint32_t a = i % azs;
    const std::string name = world_.az_name(sim::AzId(a)) + "/memds/h" + std::to_string(i / azs);
    sim::HostOptions host_options;
    host_options.disks = {spec_.topology.disk};
    const sim::HostId host = world_.add_host(memds_racks[a], name, host_options);
    memds_hosts.push_back(host);
    spared_hosts_.push_back(host);
    memds_addresses_.push_back(sim::Address{host, model::kMemdsPort});
  }
  model::MemdsOptions memds_options;
  memds_options.observer = memds_load_.get();
  const std::vector<model::PartitionEntry> initial_map =
      model::partition_map_of(model::TableId(0), placement_, 0);
  for (sim::HostId host : memds_hosts) {
    auto first_start = std::make_shared<bool>(true);
    world_.add_process(host, model::kMemdsPort, [this, memds_options, initial_map, first_start] {
      auto process = std::make_unique<model::MemdsProcess>(memds_options, memds_addresses_);
      if (std::exchange(*first_start, false)) {
        for (const model::PartitionEntry& entry : initial_map) {
          process->node().apply(entry);
        }
      }
      return process;
    });
  }

  model::RouterOptions router_options;
  router_options.memds_nodes = memds_addresses_;
  router_options.cache.mode = storage.routing_cache_bimodal
                                  ? model::PartitionCacheMode::kBimodal
                                  : model::PartitionCacheMode::kConstantWork;
  router_options.cache.lookup_timeout = storage.memds_lookup_timeout;
  router_options.forward_timeout = storage.router_forward_timeout;
  router_options.max_forwards_per_request = storage.router_max_forwards;
  router_options.observer = router_groups_.get();
  router_options.plant_forward_to_neighbour = storage.plant_router_forward_to_neighbour;
  if (storage.gac) {
    router_options.gac_servers = gac_addresses_;
    router_options.gac_client.refresh_interval = storage.gac_refresh_interval;
    router_options.gac_client.static_stability_period = storage.gac_static_stability_period;
  }
  uint64_t router_number = 0;
  for (uint32_t a = 0; a < azs; ++a) {
    const sim::AzId az(a);
    const std::string rack_name = world_.az_name(az) + "/routers";
    const sim::RackId rack = world_.add_rack(az, rack_name);
    for (uint32_t h = 0; h < storage.routers_per_az; ++h) {
      sim::HostOptions host_options;
      host_options.disks = {spec_.topology.disk};
      const sim::HostId host =
          world_.add_host(rack, rack_name + "/h" + std::to_string(h), host_options);
      routers_.push_back(model::RouterEndpoint{sim::Address{host, model::kRouterPort}, az});
      model::RouterOptions options = router_options;
      // Router client ids sit far above the workload's (below 2^23).
      options.router_client_id = (uint64_t{1} << 40) + router_number++;
      world_.add_process(host, model::kRouterPort,
                         [options] { return std::make_unique<model::RouterProcess>(options); });
    }
  }
}

void ServiceHarness::add_routing_to_summary(nlohmann::json& summary) const {
  summary["checks"]["router_groups"] = router_groups_->report();
  auto counter = [&](std::string_view name) -> int64_t {
    auto it = world_.counters().find(name);
    return it == world_.counters().end() ? 0 : it->second;
  };
  summary["memds"] = memds_load_->report(simulation_.now());
  summary["memds"]["nodes"] = memds_addresses_.size();
  nlohmann::json routing = {
      {"routers", routers_.size()},
      {"cache", spec_.storage->routing_cache_bimodal ? "bimodal" : "constant_work"}};
  for (const char* name : {"requests", "forwards", "hits", "misses", "memds_lookups_sent",
                           "not_leader_retries", "re_resolutions", "resolve_failures",
                           "forward_timeouts", "busy_refusals", "late_answers_dropped"}) {
    routing[name] = counter(std::string("router.") + name);
  }
  summary["routing"] = routing;
}

// ---------------------------------------------------------------------------------------------
// Global admission control (docs/gac.md, "In a game day").

// GAC server i runs on its own host in AZ i mod 3 ("<az>/gac"), spared by faults like MemDS: a
// control-plane service outside the storage fleet the faults aim at. The servers form one
// GacRing (built from this list at every router) and meter table 0's read and write buckets at
// the table's capacity; with a capacity controller (auto scaling, on-demand) they subscribe to
// its AllocationUpdates (model::GacServerProcess). Runs before add_routing, which hands the
// routers the server list.
void ServiceHarness::add_gac() {
  const StorageSpec& storage = *spec_.storage;
  DYN_ASSERT(storage.routing && storage.admission);
  GacCheckOptions check;
  check.slot_length = storage.gac_slot_length;
  check.horizon_slots = storage.gac_horizon_slots;
  check.clock_drift_ppm_bound = spec_.topology.clock_drift_ppm_bound;
  gac_checker_ = std::make_unique<GacChecker>(&simulation_, check);

  const uint32_t azs = world_.az_count();
  std::vector<sim::RackId> racks;
  for (uint32_t a = 0; a < azs; ++a) {
    racks.push_back(world_.add_rack(sim::AzId(a), world_.az_name(sim::AzId(a)) + "/gac"));
  }
  model::GacServerProcessOptions options;
  options.server.slot_length = storage.gac_slot_length;
  options.server.horizon_slots = storage.gac_horizon_slots;
  options.server.token_lifetime = storage.gac_token_lifetime;
  // Three refresh intervals and a bit, as the default's 7 s for 2 s (GacServerOptions).
  options.server.router_idle_forget = std::max(options.server.router_idle_forget,
                                               storage.gac_refresh_interval * 3 + sim::seconds(1));
  options.server.plant_ignore_outstanding_grants = storage.plant_gac_ignore_outstanding_grants;
  options.table = model::TableId(0);
  options.read_capacity_units = static_cast<uint64_t>(capacity_initial_.read_units_per_second);
  options.write_capacity_units = static_cast<uint64_t>(capacity_initial_.write_units_per_second);
  options.observer = gac_checker_.get();
  for (uint32_t i = 0; i < storage.gac_servers; ++i) {
    const uint32_t a = i % azs;
    const std::string name = world_.az_name(sim::AzId(a)) + "/gac/h" + std::to_string(i / azs);
    sim::HostOptions host_options;
    host_options.disks = {spec_.topology.disk};
    const sim::HostId host = world_.add_host(racks[a], name, host_options);
    spared_hosts_.push_back(host);
    gac_addresses_.push_back(sim::Address{host, model::kGacPort});
    // The controller's address is known once add_capacity_controller ran; processes are made
    // when the world starts.
    world_.add_process(host, model::kGacPort, [this, options] {
      model::GacServerProcessOptions started = options;
      started.capacity_controller = admission_.capacity_controller;
      return std::make_unique<model::GacServerProcess>(started);
    });
  }
}

void ServiceHarness::add_gac_to_summary(nlohmann::json& summary) const {
  auto counter = [&](std::string_view name) -> int64_t {
    auto it = world_.counters().find(name);
    return it == world_.counters().end() ? 0 : it->second;
  };
  const StorageSpec& storage = *spec_.storage;
  summary["checks"]["gac"] = gac_checker_->report();
  summary["gac"] = {{"servers", gac_addresses_.size()},
                    {"refresh_interval", format_duration_short(storage.gac_refresh_interval)},
                    {"token_lifetime", format_duration_short(storage.gac_token_lifetime)},
                    {"token_requests", counter("gac.token_requests")},
                    {"grants", counter("gac.grants")},
                    {"granted_milli_units",
                     {{"read", counter("gac.granted_milli_units.read")},
                      {"write", counter("gac.granted_milli_units.write")}}},
                    {"capacity_updates", counter("gac.capacity_updates")},
                    {"router_admitted", counter("router.gac_admitted")},
                    {"router_admitted_fallback", counter("router.gac_admitted_fallback")},
                    {"router_throttled", counter("router.gac_throttled")}};
}

}  // namespace dynasim::gameday
