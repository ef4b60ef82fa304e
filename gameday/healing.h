// Healing, measured (docs/healing.md). Watches what the groups' leaders report: a voter found
// lost, and every configuration they commit. For each loss it derives, in true time from the
// moment the leader last heard the lost replica:
// - time at two copies: until a configuration with a new voter (a log replica, or a full one)
//   replacing it commits, so the group's log is on three live replicas again;
// - quorum restore: until a configuration without the lost voter and with at least three voters
//   commits, so the group again survives one more failure;
// - full replica: until the group is three full voters with no log replica.
// A lost replica that is heard again before healing removed it (a short outage, a partition that
// healed) ends its loss at that moment, and is counted as returned.
// And it checks the redundancy invariant healing must keep: no committed configuration has
// fewer voters than a group is built with (the planted bug that retires the log replica before
// the full replica has caught up breaks it).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/paxos.h"
#include "model/storage_protocol.h"
#include "sim/world.h"

namespace dynasim::gameday {

class HealingRecorder final : public model::StorageObserver {
 public:
  explicit HealingRecorder(sim::World& world) : world_(world) {}

  void on_applied(model::GroupId, uint32_t, model::LogIndex, uint64_t) override {}
  void on_lease(model::GroupId, uint32_t, sim::SimTime, sim::SimTime) override {}
  void on_strong_read(model::GroupId, uint32_t, sim::SimTime) override {}
  void on_replica_lost(model::GroupId group, sim::Address node, uint32_t replica,
                       sim::SimTime local_now, sim::SimTime local_last_heard) override;
  void on_replica_returned(model::GroupId group, sim::Address node, uint32_t replica,
                           sim::SimTime local_now) override;
  void on_configuration_committed(model::GroupId group, sim::Address node,
                                  const model::Configuration& configuration,
                                  sim::SimTime local_now) override;

  struct Loss {
    model::GroupId group;
    uint32_t replica = 0;
    sim::SimTime lost_at;      // true time the leader last heard it
    sim::SimTime detected_at;  // true time
    std::optional<sim::SimTime> two_copies_end;
    std::optional<sim::SimTime> quorum_restored;
    std::optional<sim::SimTime> full_replica;
    // It came back (was heard again) before healing removed it: the group is whole again then.
    std::optional<sim::SimTime> returned;
  };
  const std::vector<Loss>& losses() const { return losses_; }
  bool passed() const { return violations_ == 0; }
  const std::string& first_violation() const { return first_violation_; }
  // {events, completed..., time_at_two_copies_s, quorum_restore_s, full_replica_s (each p50, p99,
  // max), configurations_committed, groups_sharing_an_az (at the end: groups whose latest
  // committed configuration has two voters in one AZ), redundancy: {passed, violations,
  // first_violation}}
  nlohmann::json report() const;

 private:
  sim::SimTime true_time_of(sim::Address node, sim::SimTime local_now,
                            sim::SimTime local_then) const;

  sim::World& world_;
  std::vector<Loss> losses_;
  std::map<uint32_t, uint64_t> committed_epoch_;     // by group
  std::map<size_t, model::Configuration> before_;    // configuration when each loss was found
  std::map<uint32_t, model::Configuration> latest_;  // by group
  uint64_t configurations_committed_ = 0;
  uint64_t violations_ = 0;
  std::string first_violation_;
};

// Forwards every storage hook to several observers.
class ObserverFanout final : public model::StorageObserver {
 public:
  explicit ObserverFanout(std::vector<model::StorageObserver*> observers)
      : observers_(std::move(observers)) {}
  void on_applied(model::GroupId g, uint32_t r, model::LogIndex i, uint64_t d) override {
    for (auto* o : observers_) o->on_applied(g, r, i, d);
  }
  void on_lease(model::GroupId g, uint32_t r, sim::SimTime n, sim::SimTime u) override {
    for (auto* o : observers_) o->on_lease(g, r, n, u);
  }
  void on_strong_read(model::GroupId g, uint32_t r, sim::SimTime n) override {
    for (auto* o : observers_) o->on_strong_read(g, r, n);
  }
  void on_replica_hosted(model::GroupId g, uint32_t r, sim::Address node) override {
    for (auto* o : observers_) o->on_replica_hosted(g, r, node);
  }
  void on_replica_returned(model::GroupId g, sim::Address node, uint32_t r,
                           sim::SimTime n) override {
    for (auto* o : observers_) o->on_replica_returned(g, node, r, n);
  }
  void on_replica_lost(model::GroupId g, sim::Address node, uint32_t r, sim::SimTime n,
                       sim::SimTime l) override {
    for (auto* o : observers_) o->on_replica_lost(g, node, r, n, l);
  }
  void on_configuration_committed(model::GroupId g, sim::Address node,
                                  const model::Configuration& c, sim::SimTime n) override {
    for (auto* o : observers_) o->on_configuration_committed(g, node, c, n);
  }
  void on_reference_checked(model::GroupId g, model::LogIndex at, model::ReferenceOutcome o,
                            const std::string& detail) override {
    for (auto* observer : observers_) observer->on_reference_checked(g, at, o, detail);
  }
  void on_admitted(model::GroupId g, sim::Address node, uint64_t buckets, sim::SimTime n,
                   int64_t milli_units, bool write, bool used_burst) override {
    for (auto* o : observers_) o->on_admitted(g, node, buckets, n, milli_units, write, used_burst);
  }
  void on_split_committed(model::GroupId parent, model::GroupId child, uint32_t r,
                          sim::Address node, uint64_t begin, uint64_t end, uint64_t split_hash,
                          bool for_size, sim::SimTime decided, sim::SimTime n) override {
    for (auto* o : observers_) {
      o->on_split_committed(parent, child, r, node, begin, end, split_hash, for_size, decided, n);
    }
  }

 private:
  std::vector<model::StorageObserver*> observers_;
};

}  // namespace dynasim::gameday
