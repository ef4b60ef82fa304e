// The router_groups check, and the MemDS load recorder of a game day with routing
// (docs/scenarios.md, "Routing"; model/router.h, model/memds.h).
//
// router_groups. The property, exactly: every request a router forwards for group g, as a request
// for the partition holding partition hash h,
// (a) names a group whose range holds or held h: the placement's range, or for a split's child
//     the high half its parent gave it (StorageObserver::on_split_committed). A parent keeps its
//     first range here: a router whose entry predates the split may still send it the moved half,
//     and the parent answers kNoSuchGroup. And
// (b) goes to a storage node that hosts or has hosted a replica of g by the time of the forward,
//     as the storage side reported it: a node of g's static placement (its first configuration),
//     a node that StorageObserver::on_replica_hosted named for g, or a member (any kind, voter or
//     not) of a configuration of g that some leader reported committed
//     (StorageObserver::on_configuration_committed).
// A router with a stale entry may send to a node the group is leaving or has left (that node
// answers kNoSuchGroup or the new members, and the router learns); it must never send a group's
// request to a node that never belonged to the group, such as a replica of another partition.
//
// The checker stands outside the system: it watches the routers through model::RouterObserver and
// the storage nodes through model::StorageObserver, and changes nothing.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "model/memds.h"
#include "model/router.h"
#include "model/storage_protocol.h"
#include "sim/simulation.h"
#include "sim/world.h"

namespace dynasim::gameday {

class RouterGroupsChecker final : public model::RouterObserver, public model::StorageObserver {
 public:
  // REQUIRES: world, simulation and placement outlive the checker.
  RouterGroupsChecker(const sim::World& world, const sim::Simulation* simulation,
                      const model::Placement& placement);

  // model::RouterObserver
  void on_forward(sim::Address router, model::TableId table, uint64_t partition_hash,
                  model::GroupId group, sim::Address destination) override;

  // model::StorageObserver: what the storage side says each group's members are.
  void on_applied(model::GroupId, uint32_t, model::LogIndex, uint64_t) override {}
  void on_lease(model::GroupId, uint32_t, sim::SimTime, sim::SimTime) override {}
  void on_strong_read(model::GroupId, uint32_t, sim::SimTime) override {}
  void on_replica_hosted(model::GroupId group, uint32_t replica, sim::Address node) override;
  void on_split_committed(model::GroupId parent, model::GroupId child, uint32_t replica,
                          sim::Address node, uint64_t parent_begin, uint64_t parent_end,
                          uint64_t split_hash, bool for_size, sim::SimTime decided_local,
                          sim::SimTime local_now) override;
  void on_configuration_committed(model::GroupId group, sim::Address node,
                                  const model::Configuration& configuration,
                                  sim::SimTime local_now) override;

  bool passed() const { return violations_ == 0; }
  uint64_t forwards_checked() const { return forwards_; }
  const std::string& first_violation() const { return first_violation_; }
  // {passed, forwards_checked, violations, first_violation}
  nlohmann::json report() const;

 private:
  void violation(std::string what);

  const sim::World& world_;
  const sim::Simulation* simulation_;
  const model::Placement& placement_;
  std::map<uint32_t, std::set<sim::Address>> members_;  // by group id: ever hosted it
  // Split children's ranges, by group id.
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> child_ranges_;
  uint64_t forwards_ = 0;
  uint64_t violations_ = 0;
  std::string first_violation_;
};

// Counts the requests MemDS serves per second of true simulated time.
class MemdsLoadRecorder final : public model::MemdsObserver {
 public:
  // REQUIRES: simulation outlives the recorder.
  explicit MemdsLoadRecorder(const sim::Simulation* simulation) : simulation_(simulation) {}
  void on_request_served(sim::Address node, bool range_read) override;
  // {lookups, range_pages, lookups_per_s: {mean, max}} over [0, end).
  nlohmann::json report(sim::SimTime end) const;

 private:
  const sim::Simulation* simulation_;
  std::map<int64_t, uint64_t> per_second_;  // by second of true time: requests served
  uint64_t lookups_ = 0;
  uint64_t range_pages_ = 0;
};

}  // namespace dynasim::gameday
