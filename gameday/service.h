// The storage service inside a scenario run: storage nodes on the topology's hosts, one
// replication group per partition with a replica in each AZ, workload clients in their own racks,
// and the checkers that judge the run.
//
// Phases (docs/scenarios.md): during the fault phase the clients run the workload; when the heal
// phase starts they stop; `verify_after` later each client strongly reads back every key it wrote;
// at the end the checks run:
// - durability: every acknowledged write is still there (judged on the read-back pass);
// - linearizability: per key, over every attempt the clients saw (gameday/linearizability.h);
// - replica_convergence: the replicas of each group hold equal content at equal applied index;
// - scrub (when the scenario enables it): every bit flip on data a replica's B-tree still uses was
//   detected unless overwritten first, and no read handed a flipped bit on without detecting it;
// - admission (when the scenario enables it): no node admitted more on a partition than its
//   allocation, allocated bucket and burst bucket granted (gameday/admission_checker.h);
// - router_groups (when the scenario has a "routing" section): every forward of a router went to a
//   node that belonged to the request's group (gameday/router_checker.h);
// - gac (when storage.admission has a "gac" section): the GAC servers together never vended more
//   of a bucket than its capacity in force over every window plus the stated slack
//   (gameday/gac_checker.h);
// - paxos_safety: one command per slot, at most one lease holder per group at any true instant,
//   strong reads only inside the holder's window;
// - counters (when the workload's mix sends UpdateItem): every counter's final value lies between
//   the ADDs acknowledged and the ADD attempts sent (gameday/counter_checker.h).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gameday/admission_checker.h"
#include "gameday/canary.h"
#include "gameday/counter_checker.h"
#include "gameday/gac_checker.h"
#include "gameday/healing.h"
#include "gameday/history.h"
#include "gameday/router_checker.h"
#include "gameday/scenario.h"
#include "gameday/split_recorder.h"
#include "gameday/storage_checkers.h"
#include "model/storage_node.h"
#include "model/storage_protocol.h"
#include "sim/simulation.h"
#include "sim/world.h"

namespace dynasim::gameday {

class WorkloadProcess;

class ServiceHarness {
 public:
  // REQUIRES: the world's storage hosts are built (storage_hosts_by_az[a] lists AZ a's hosts)
  // and the world has not started. Adds the client racks and hosts and every process.
  ServiceHarness(const ScenarioSpec& spec, sim::Simulation& simulation, sim::World& world,
                 const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az);
  ~ServiceHarness();

  // The clients' history, for writing it out as it is recorded (HistoryRecorder::set_dump).
  HistoryRecorder& history() { return *history_; }

  // The heal phase began: the clients stop issuing new operations.
  void on_heal_start();
  // The clients read back every key they wrote.
  void on_verify_start();
  // After the run's last event: runs the checks.
  void finish();

  bool passed() const;
  // Adds "checks", "availability", "workload" and "storage" to the run's summary.
  void add_to_summary(nlohmann::json& summary) const;
  // The first failed check's violation, for the CLI's one-line verdict.
  std::string first_failure() const;

  const model::Placement& placement() const { return placement_; }
  // The group a key's requests go to now: the placement's, or a split's child that took it.
  uint32_t partition_of(const model::PrimaryKey& key) const;
  // The client hosts, and the MemDS hosts when routing is on: faults spare them
  // (sim::SurvivabilityPolicy::spared_hosts).
  const std::vector<sim::HostId>& client_hosts() const {
    return spared_hosts_.empty() ? client_hosts_ : spared_hosts_;
  }

 private:
  void build_placement(const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az);
  void add_storage_nodes(const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az);
  void add_clients();
  void check_archive();
  std::vector<WorkloadProcess*> live_workloads();

  const ScenarioSpec& spec_;
  sim::Simulation& simulation_;
  sim::World& world_;
  model::Placement placement_;
  std::vector<sim::HostId> client_hosts_;
  uint64_t next_client_id_ = 1;

  std::unique_ptr<HistoryRecorder> history_;
  std::unique_ptr<CounterChecker> counter_checker_;  // only when the mix sends UpdateItem
  // One canary per AZ on its first client host (gameday/canary.h).
  std::unique_ptr<CanaryRecorder> canaries_;
  std::unique_ptr<PaxosSafetyChecker> paxos_safety_;
  std::unique_ptr<HealingRecorder> healing_;
  std::unique_ptr<ReferenceCheckRecorder> reference_checks_;
  // Admission (docs/admission.md, "In a game day"): the nodes' wiring, and the check; only when
  // the scenario has an "admission" section.
  model::AdmissionWiring admission_;
  std::unique_ptr<AdmissionChecker> admission_checker_;
  // Capacity modes: the table's mode and initial capacity, and what its controller did (only
  // when one runs: on-demand, or provisioned with auto scaling).
  void add_capacity_controller(const std::vector<std::vector<sim::HostId>>& storage_hosts_by_az);
  static model::TableCapacity initial_capacity(const StorageSpec& storage);
  model::CapacityMode capacity_mode_ = model::CapacityMode::kProvisioned;
  model::TableCapacity capacity_initial_;
  std::unique_ptr<CapacityRecorder> capacity_recorder_;
  std::unique_ptr<ObserverFanout> observers_;
  std::optional<sim::Address> auto_admin_;
  std::vector<sim::Address> storage_nodes_;
  nlohmann::json durability_report_;
  nlohmann::json linearizability_report_;
  nlohmann::json convergence_report_;
  bool durability_passed_ = false;
  bool linearizability_passed_ = false;
  bool convergence_passed_ = false;
  bool healing_passed_ = true;
  // Scrub (docs/scrub.md): the corruption ledgers of the storage disks, judged at the end.
  void judge_scrub();
  nlohmann::json scrub_report_;
  bool scrub_passed_ = true;
  std::string scrub_failure_;
  std::string healing_failure_;
  bool archive_passed_ = true;
  nlohmann::json archive_report_;
  bool finished_ = false;

  // Routing (docs/scenarios.md, "Routing"): MemDS nodes, routers, and what judges them; only when
  // the scenario has a "routing" section.
  void add_routing();
  void add_routing_to_summary(nlohmann::json& summary) const;
  std::vector<sim::Address> memds_addresses_;
  std::vector<model::RouterEndpoint> routers_;
  std::vector<sim::HostId> spared_hosts_;  // client, MemDS and GAC hosts
  std::unique_ptr<RouterGroupsChecker> router_groups_;
  std::unique_ptr<SplitRecorder> split_recorder_;  // storage.splits only
  std::unique_ptr<MemdsLoadRecorder> memds_load_;

  // Global admission control (docs/gac.md, "In a game day"): GAC servers on "<az>/gac" hosts, the
  // routers' GacClients, and the gac check; only when storage.admission has a "gac" section.
  void add_gac();
  void add_gac_to_summary(nlohmann::json& summary) const;
  std::vector<sim::Address> gac_addresses_;
  std::unique_ptr<GacChecker> gac_checker_;
};

}  // namespace dynasim::gameday
