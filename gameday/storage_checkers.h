// Checkers for the storage layer: no acknowledged write lost, Paxos safety (one command per log
// slot, at most one lease holder per group at any instant of true time, strong reads only inside
// a lease), and replica convergence after a quiet heal phase.
//
// P22 section 3: writes are acknowledged once a quorum of a partition's three replicas has
// persisted them, strong reads are served by the leader inside its lease, and replicas of a
// group hold the same data once they have applied the same log. These checkers test exactly
// those promises. They stand outside the system (CONVENTIONS.md rule 10): they watch through
// hooks (model::StorageObserver), read the client history and, after the run, inspect replicas;
// they never change what happens.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gameday/linearizability.h"
#include "model/storage_protocol.h"
#include "sim/pair_hash.h"
#include "sim/world.h"

namespace dynasim::gameday {

// No acknowledged write is lost. After the workload stops and the service heals, a verification
// pass strong-reads every key written (gameday/workload.h), recorded in the same history. A key's
// final state is what the last successful read invoked at or after `verification_start` returned.
//
// A write w (put, conditional put or delete, acknowledged or with an unknown outcome) is
// superseded when some acknowledged write or delete w2 was invoked after w completed: w2 then
// took effect after w, so the final state need not show w. The final state must be explained by
// a write that is not superseded: a non-superseded put of the value read, or for "no item" a
// non-superseded delete, or no acknowledged write at all (the key's initial state). Anything else
// is a lost write: an acknowledged write vanished, or a value appeared that no surviving write put.
// A key with an acknowledged write and no final read is unverified, and fails the check too: a
// durability claim needs the read.
class DurabilityOfWritesChecker {
 public:
  explicit DurabilityOfWritesChecker(sim::SimTime verification_start);

  void check(const std::map<std::string, std::vector<RegisterOperation>>& by_key);

  bool passed() const { return lost_writes_ == 0 && keys_unverified_ == 0; }
  uint64_t acknowledged_writes() const { return acknowledged_writes_; }
  uint64_t lost_writes() const { return lost_writes_; }
  uint64_t keys_unverified() const { return keys_unverified_; }
  const std::string& first_violation() const { return first_violation_; }
  // {passed, acknowledged_writes, lost_writes, keys_checked, keys_unverified, first_violation}
  nlohmann::json report() const;

 private:
  void check_key(const std::string& key, const std::vector<RegisterOperation>& operations);
  void violation(std::string what);

  sim::SimTime verification_start_;
  uint64_t acknowledged_writes_ = 0;
  uint64_t lost_writes_ = 0;
  uint64_t keys_checked_ = 0;
  uint64_t keys_unverified_ = 0;
  bool first_is_unverified_ = false;  // the first violation is a key never read back
  std::string first_violation_;
};

// Paxos safety, watched live. One value per slot: every on_applied for (group, index), on any
// replica at any time, carries one command digest. One lease holder: a replica's lease window
// [taken, local_until mapped to true time) must not overlap another replica's window in the same
// group. Strong reads: each must fall inside the serving replica's window.
//
// Local times map to true time through the replica's host clock: the window ends at
// now + clock.true_delay_for(local_until - local_now), with the clock's rate at the report. A later
// clock step on that host is not reflected (a forward step makes the real lease end earlier, so
// the checker is then conservative; the scenarios that step clocks say so). A window that is
// reported again before it ends is extended; one reported with local_until <= local_now ends now.
class PaxosSafetyChecker final : public model::StorageObserver {
 public:
  // REQUIRES: world and placement outlive the checker.
  PaxosSafetyChecker(sim::World& world, const model::Placement& placement);

  void on_applied(model::GroupId group, uint32_t replica, model::LogIndex index,
                  uint64_t command_digest) override;
  void on_lease(model::GroupId group, uint32_t replica, sim::SimTime local_now,
                sim::SimTime local_until) override;
  void on_strong_read(model::GroupId group, uint32_t replica, sim::SimTime local_now) override;
  void on_replica_hosted(model::GroupId group, uint32_t replica, sim::Address node) override;

  bool passed() const { return violations_ == 0; }
  uint64_t violations() const { return violations_; }
  uint64_t slots_checked() const { return slots_.size(); }
  const std::string& first_violation() const { return first_violation_; }
  // {passed, slots_checked, lease_windows, strong_reads, violations, first_violation}
  nlohmann::json report() const;

 private:
  struct Window {
    sim::SimTime start;
    sim::SimTime end;  // exclusive
  };
  struct Slot {
    uint64_t digest = 0;
    uint32_t first_replica = 0;
  };
  sim::HostId host_of(model::GroupId group, uint32_t replica) const;
  void violation(std::string what);

  sim::World& world_;
  const model::Placement& placement_;
  // By (group, replica); looked up by key only, never iterated (sim/pair_hash.h).
  std::unordered_map<std::pair<uint32_t, uint32_t>, sim::HostId, sim::PairHash> hosts_;
  // By (group, index); looked up by key only, never iterated (sim/pair_hash.h).
  std::unordered_map<std::pair<uint32_t, uint64_t>, Slot, sim::PairHash> slots_;
  // The latest window of each replica, by (group, replica). Older windows of a replica ended
  // before its latest began, and every new window begins now, so the latest ones are all a
  // check of a new or extended window needs.
  std::map<std::pair<uint32_t, uint32_t>, Window> windows_;
  uint64_t lease_windows_ = 0;
  uint64_t strong_reads_ = 0;
  uint64_t violations_ = 0;
  std::string first_violation_;
};

// Replicas converge after a quiet heal phase. For each group: among the replicas that are
// available (a live process), recovered, healthy and whose content is known, those at equal
// applied index hold equal content (digest and item count); and every available, recovered,
// healthy replica has reached the group's highest applied index. Replicas that are unavailable,
// still recovering, unhealthy or of unknown content are counted and reported, not failed: after
// a fault the scenario may leave a host down, and scrub (a later layer) owns corrupt replicas.
// Scrub's reference checks (docs/scrub.md, "The reference check"), as the groups' leaders report
// them: how many compared the archive's content with the replicas' and matched, and the first
// that did not. A mismatch, or an archive that could not be rebuilt at an index it claimed to
// hold, fails the archive check; a store that did not answer gives no verdict.
class ReferenceCheckRecorder final : public model::StorageObserver {
 public:
  void on_applied(model::GroupId, uint32_t, model::LogIndex, uint64_t) override {}
  void on_lease(model::GroupId, uint32_t, sim::SimTime, sim::SimTime) override {}
  void on_strong_read(model::GroupId, uint32_t, sim::SimTime) override {}
  void on_reference_checked(model::GroupId group, model::LogIndex at,
                            model::ReferenceOutcome outcome, const std::string& detail) override;

  bool passed() const { return first_failure_.empty(); }
  const std::string& first_failure() const { return first_failure_; }
  nlohmann::json report() const;

 private:
  std::map<model::ReferenceOutcome, uint64_t> counts_;
  std::string first_failure_;
};

struct ReplicaConvergence {
  uint64_t groups_checked = 0;
  uint64_t groups_diverged = 0;
  uint64_t replicas_lagging = 0;
  uint64_t replicas_unavailable = 0;
  uint64_t replicas_recovering = 0;
  uint64_t replicas_unhealthy = 0;
  uint64_t replicas_content_unknown = 0;
  std::string first_violation;

  bool passed() const { return groups_diverged == 0 && replicas_lagging == 0; }
  // {passed, groups_checked, groups_diverged, replicas_lagging, replicas_unavailable,
  //  replicas_recovering, replicas_unhealthy, replicas_content_unknown, first_violation}
  nlohmann::json report() const;
};

// Compares one group's replicas as found: replicas[r - 1] is replica r's snapshot, or nullopt
// when it could not be inspected (its host is down). Adds the group to `result`.
void compare_group_replicas(model::GroupId group,
                            const std::vector<std::optional<model::ReplicaSnapshot>>& replicas,
                            ReplicaConvergence* result);

// Inspects every group of `placement` in the live world (model::StorageNode::inspect() on the
// process at each replica's address) and compares each with compare_group_replicas().
// Built only with DYNASIM_HAVE_STORAGE_NODE (default 1): a tree without model/storage_node.cc
// builds with -DDYNASIM_HAVE_STORAGE_NODE=0 and lacks this one function.
#ifndef DYNASIM_HAVE_STORAGE_NODE
#define DYNASIM_HAVE_STORAGE_NODE 1
#endif
#if DYNASIM_HAVE_STORAGE_NODE
// `nodes`: every storage node's address (healing places replicas beyond the placement's).
ReplicaConvergence check_convergence(sim::World& world, const model::Placement& placement,
                                     const std::vector<sim::Address>& nodes);
#endif

}  // namespace dynasim::gameday
