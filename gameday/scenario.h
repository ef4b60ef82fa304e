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
#include <optional>
#include <string>
#include <vector>

#include "gameday/probe.h"
#include "gameday/rate_shape.h"
#include "gameday/workload.h"
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

// The storage service: storage nodes on every topology host, partitions as Multi-Paxos groups.
// Present only in service scenarios; a world-level scenario runs probes instead.
struct StorageSpec {
  uint32_t partitions = 12;
  uint32_t cpu_cores = 16;
  uint64_t checkpoint_every_entries = 2'000;
  sim::Duration checkpoint_interval = sim::seconds(30);
  uint64_t log_tail_entries = 10'000;
  uint64_t btree_cache_pages = 256;
  sim::Duration heartbeat_interval = sim::milliseconds(100);
  sim::Duration election_timeout = sim::seconds(1);
  sim::Duration lease = sim::seconds(2);
  double max_clock_drift_ppm = 200;  // the bound the lease margin is derived from
  // Planted bugs, for the tests that prove the checkers catch them. Never set in real scenarios.
  bool plant_quorum_of_one = false;
  bool plant_no_lease_wait = false;
  bool plant_follower_strong_reads = false;
  bool plant_send_before_fsync = false;
  // model::StorageNodeOptions::plant_acknowledge_update_without_apply (the counter check's).
  bool plant_acknowledge_update_without_apply = false;
  // Healing (docs/healing.md): off unless the scenario has a "healing" section.
  bool healing = false;
  sim::Duration replica_lost_after = sim::seconds(2);
  sim::Duration healing_check_interval = sim::milliseconds(200);
  bool log_replicas = true;
  uint64_t log_replica_seed_entries = 64;
  uint64_t rebuild_bytes_per_second = 50'000'000;
  sim::Duration rebuild_waits_for_az = sim::minutes(10);
  bool plant_remove_log_replica_early = false;
  // WAL archival (docs/archival.md): off unless the scenario has an "archival" section.
  bool archival = false;
  uint64_t archive_entries_per_segment = 1024;
  uint64_t archive_snapshot_every_entries = 16 * 1024;
  bool plant_accept_sequence_gap = false;
  uint64_t plant_archive_alter_entry_every = 0;  // planted bug: see ArchiverOptions
  // Scrub against bit rot (docs/scrub.md): off unless the scenario has a "scrub" section.
  bool scrub = false;
  double scrub_pages_per_second = 200;
  uint32_t scrub_pages_per_step = 8;
  uint32_t plant_scrub_skip_replica = 0;  // planted bug: this replica number never scrubs
  // Replica comparison by range digests (docs/scrub.md, "Comparing replicas"); 0 interval: off.
  sim::Duration compare_interval = sim::seconds(60);
  uint32_t compare_fanout = 8;
  uint64_t compare_leaf_items = 32;
  uint32_t compare_max_depth = 8;
  sim::Duration compare_timeout = sim::seconds(10);
  uint32_t plant_compare_ignore_replica = 0;  // planted bug: leaders ignore this one's reports
  // Storage-side admission control (docs/admission.md, "In a game day"): off unless the scenario
  // has an "admission" section. The table's provisioned capacity, divided evenly over the
  // partitions (model::allocate_to_partitions); the storage nodes' own throughput.
  bool admission = false;
  uint64_t read_capacity_units = 0;
  uint64_t write_capacity_units = 0;
  uint64_t node_read_units_per_second = 60'000;  // model::AdmissionOptions' defaults
  uint64_t node_write_units_per_second = 20'000;
  // Burst depth in time of the allocation: P22 section 4.1.1, 300 seconds.
  sim::Duration admission_burst_window = sim::seconds(300);
  // Planted bug for the admission check (model::AdmissionOptions::plant_burst_ignores_depth).
  bool plant_burst_ignores_depth = false;
  // Global admission control (docs/gac.md, "In a game day"; model/gac.h): off unless
  // storage.admission has a "gac" section, which requires storage.routing. GAC servers on their
  // own hosts ("<az>/gac" racks, spared by faults like MemDS), placed on a GacRing; every router
  // holds a GacClient for the table's read and write buckets.
  bool gac = false;
  uint32_t gac_servers = 3;
  sim::Duration gac_refresh_interval = sim::seconds(2);          // GacClientOptions
  sim::Duration gac_token_lifetime = sim::seconds(4);            // GacServerOptions
  sim::Duration gac_slot_length = sim::milliseconds(500);        // GacServerOptions
  uint32_t gac_horizon_slots = 4;                                // GacServerOptions
  sim::Duration gac_static_stability_period = sim::seconds(60);  // GacClientOptions
  // Planted bug for the gac check (model::GacServerOptions::plant_ignore_outstanding_grants).
  bool plant_gac_ignore_outstanding_grants = false;
  // Request routers fed by MemDS (docs/scenarios.md, "Routing"; model/router.h, model/memds.h):
  // off unless the scenario has a "routing" section. MemDS nodes on their own hosts ("<az>/memds"
  // racks, spared by faults like the clients), routers on "<az>/routers" racks, storage leaders
  // publishing their partitions' entries, clients sending every attempt through a router.
  bool routing = false;
  uint32_t routers_per_az = 1;
  uint32_t memds_nodes = 3;
  bool routing_cache_bimodal = false;  // "cache": "constant_work" (default) or "bimodal"
  sim::Duration router_forward_timeout = sim::milliseconds(200);
  uint32_t router_max_forwards = 4;
  sim::Duration memds_lookup_timeout = sim::milliseconds(50);
  // Planted bug for the router_groups check (model::RouterOptions::plant_forward_to_neighbour).
  bool plant_router_forward_to_neighbour = false;
  // Partition splits (docs/partitions.md, "Splitting a running partition"; model/split_executor.h):
  // off unless the scenario has a "splits" section. Needs "routing".
  bool splits = false;
  uint32_t splits_consumption_threshold_percent = 80;  // of a partition's 3,000 RCU / 1,000 WCU
  uint32_t splits_sustained_periods = 6;
  uint64_t splits_size_threshold_bytes = uint64_t{9} << 30;  // 90% of 10 GB
  uint64_t splits_copy_bytes_per_second = uint64_t{16} << 20;
  sim::Duration splits_policy_period = sim::seconds(10);
  // The committing leader leads the child at once (model::SplitExecutorOptions::
  // first_leader_at_once); false: the child elects a leader, leaving its range unserved meanwhile.
  bool splits_first_leader_at_once = true;
  // Planted bug (model::SplitExecutorOptions::plant_child_serves_before_copy).
  bool plant_split_child_before_copy = false;
  // The table's capacity mode (docs/admission.md, "Capacity modes in a game day"): "provisioned"
  // (read/write_capacity_units; with auto_scaling, a capacity controller scales them) or
  // "on_demand": a table switched to on-demand from read/write_capacity_units, which keeps at
  // least that level and at least a new table's 12,000 RCU / 4,000 WCU, and then accommodates up
  // to twice its previous peak (Developer Guide, HowItWorks.ReadWriteCapacityMode).
  bool capacity_on_demand = false;
  // The per-table quota an on-demand table's instant capacity is capped at, reads and writes each:
  // DynamoDB's default is 40,000 (Developer Guide, ServiceQuotas); the quota is adjustable.
  uint64_t table_quota_units = 40'000;
  // Target-tracking auto scaling of a provisioned table (model::AutoScalingPolicy).
  bool auto_scaling = false;
  uint32_t auto_scaling_target_utilization_percent = 70;
  uint64_t auto_scaling_min_read_units = 1;
  uint64_t auto_scaling_max_read_units = 40'000;
  uint64_t auto_scaling_min_write_units = 1;
  uint64_t auto_scaling_max_write_units = 40'000;
  sim::Duration auto_scaling_update_delay = sim::minutes(3);
  // Planted software bug (model::DivergentApplyPlant): this replica number diverges silently on
  // every `every`-th write it applies, until `until` after the start.
  uint32_t plant_divergent_apply_replica = 0;
  uint64_t plant_divergent_apply_every = 0;
  sim::Duration plant_divergent_apply_until{INT64_MAX};  // INT64_MAX: the whole run
};

// One phase of a phased workload (docs/scenarios.md, "Rate shapes and phases"): its rate shape is
// the whole table's; mix and keys are the workload's unless the phase overrides them.
struct WorkloadPhaseSpec {
  sim::Duration duration;
  RateShape rate;  // the phase's own, else the workload's rate, else operations_per_second
  MixWeights mix;
  KeyDistribution key_distribution;
};

// The clients: one workload process per client host; client hosts sit in their own rack in each
// AZ ("<az>/clients") so that faults aimed at storage racks do not hit them.
struct WorkloadSpec {
  uint32_t client_hosts_per_az = 1;
  double operations_per_second = 100;  // per client host; without rate and phases
  // The whole table's rate, split evenly over the client processes (rate_share). Absent with no
  // phases: operations_per_second per client host, as a homogeneous Poisson process.
  std::optional<RateShape> rate;
  // One after another from the start; their total fits in the scenario's duration, and after the
  // last one the clients issue nothing more.
  std::vector<WorkloadPhaseSpec> phases;
  uint64_t keys = 1'000;
  KeyDistribution key_distribution;  // which key each operation draws (gameday/workload.h)
  uint64_t item_size_bytes = 1'024;
  std::optional<ItemSizeDistribution> item_size_distribution;  // overrides item_size_bytes
  // Operation mix, as relative weights.
  double put = 30;
  double get_strong = 25;
  double get_eventual = 20;
  double put_if_version = 15;
  double put_if_absent = 5;
  double delete_item = 5;
  double update = 0;  // UpdateItem ADD on a counter (gameday/workload.h)
  double query = 0;   // Query of a register key, paged
  double scan = 0;    // one page of a parallel Scan's segment
  // Counter keys the updates go to ("counter-0" ..): few, so that ADDs meet on each.
  uint64_t counters = 8;
  uint32_t max_attempts = 5;
  sim::Duration attempt_timeout = sim::milliseconds(500);
  // After the heal phase starts: the workload stops at once; after `verify_after` it reads back
  // every key it wrote (strongly), which the durability check judges.
  sim::Duration verify_after = sim::seconds(30);
};

struct ChecksSpec {
  sim::Duration availability_window = sim::minutes(5);
  // Healing: the 99th percentile of quorum restore must not exceed this (0: not checked).
  sim::Duration max_quorum_restore_p99 = sim::Duration(0);
  uint64_t linearizability_max_states_per_key = 200'000;
};

struct ScenarioSpec {
  std::string name;
  std::string description;
  std::string source;                  // the file it came from, for the reproduce line
  std::vector<std::string> overrides;  // the --set assignments applied, for the reproduce line
  sim::Duration duration = sim::minutes(10);
  sim::Duration heal = sim::minutes(1);
  TopologySpec topology;
  sim::NetworkOptions network;
  ProbeOptions probe;
  sim::SurvivabilityPolicy survivability;
  std::vector<NamedTimelineFault> timeline;
  std::vector<NamedRandomFault> random_faults;
  // Service scenarios only.
  std::optional<StorageSpec> storage;
  WorkloadSpec workload;
  ChecksSpec checks;
};

// The workload processes' phases for `processes` client processes: empty without rate and phases
// (operations_per_second per process), otherwise the phases (or one open-ended phase of the rate)
// with each process's share 1 / processes of the table's rate.
std::vector<WorkloadPhase> workload_phases(const WorkloadSpec& workload, uint32_t processes);
// OperationMix (whole-number weights) from relative weights: each scaled by 100 and rounded.
OperationMix operation_mix(const MixWeights& weights);
// The workload's own mix (not a phase's).
MixWeights mix_weights(const WorkloadSpec& workload);

// Reads and validates a scenario. Throws ScenarioError (gameday/json_reader.h) on bad input.
ScenarioSpec load_scenario(const std::string& path, const std::vector<std::string>& overrides);
ScenarioSpec parse_scenario(const nlohmann::json& document, const std::string& source);

}  // namespace dynasim::gameday
