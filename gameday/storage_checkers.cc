#include "gameday/storage_checkers.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <set>

#include "sim/check.h"

#if DYNASIM_HAVE_STORAGE_NODE
#include "model/storage_node.h"
#endif

namespace dynasim::gameday {

namespace {

using Kind = RegisterOperation::Kind;
using Outcome = RegisterOperation::Outcome;

bool is_write(const RegisterOperation& operation) {
  return operation.kind != Kind::kRead;
}

// A write that may have taken effect: acknowledged, or with an unknown outcome. A conditional
// write whose condition failed changed nothing.
bool may_have_applied(const RegisterOperation& operation) {
  return is_write(operation) && operation.outcome != Outcome::kConditionFailed;
}

std::string describe_value(std::optional<uint64_t> value) {
  return value.has_value() ? std::to_string(*value) : std::string("no item");
}

std::string describe(const RegisterOperation& operation) {
  char buffer[160];
  const char* kind = operation.kind == Kind::kDelete ? "delete" : "put";
  std::snprintf(buffer, sizeof buffer,
                "%s of %" PRIu64 " (client %" PRIu64 ", request %" PRIu64 ", %" PRId64
                " ns to %" PRId64 " ns)",
                kind, operation.value, operation.client, operation.id, operation.invoke_ns,
                operation.complete_ns);
  return buffer;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// DurabilityOfWritesChecker

DurabilityOfWritesChecker::DurabilityOfWritesChecker(sim::SimTime verification_start)
    : verification_start_(verification_start) {}

void DurabilityOfWritesChecker::check(
    const std::map<std::string, std::vector<RegisterOperation>>& by_key) {
  for (const auto& [key, operations] : by_key) check_key(key, operations);
  if (first_is_unverified_ && keys_unverified_ > 1) {
    // Many unread keys usually mean the verification pass ran out of time, not lost data.
    first_violation_ += "; " + std::to_string(keys_unverified_) +
                        " keys in all were never read back successfully (if the verification "
                        "pass had no time to read them all, lengthen heal or "
                        "workload.verify_after)";
  }
}

void DurabilityOfWritesChecker::check_key(const std::string& key,
                                          const std::vector<RegisterOperation>& operations) {
  // The final read: the last to complete among the verification pass's reads.
  const RegisterOperation* final_read = nullptr;
  uint64_t acknowledged_here = 0;
  for (const RegisterOperation& operation : operations) {
    if (is_write(operation) && operation.outcome == Outcome::kOk) ++acknowledged_here;
    if (operation.kind != Kind::kRead || operation.outcome != Outcome::kOk) continue;
    if (operation.invoke_ns < verification_start_.ns) continue;
    if (final_read == nullptr || operation.complete_ns > final_read->complete_ns ||
        (operation.complete_ns == final_read->complete_ns &&
         operation.invoke_ns > final_read->invoke_ns)) {
      final_read = &operation;
    }
  }
  acknowledged_writes_ += acknowledged_here;
  if (acknowledged_here == 0 && final_read == nullptr) return;  // nothing to keep, nothing seen
  ++keys_checked_;
  if (final_read == nullptr) {
    ++keys_unverified_;
    if (first_violation_.empty()) first_is_unverified_ = true;
    violation("key " + key + ": " + std::to_string(acknowledged_here) +
              " acknowledged writes and no successful read in the verification pass");
    return;
  }
  // Writes acknowledged before the final read began are ordered before it; the latest such
  // invocation supersedes every write that completed before it.
  int64_t latest_superseding_invoke_ns = INT64_MIN;
  for (const RegisterOperation& operation : operations) {
    if (!is_write(operation) || operation.outcome != Outcome::kOk) continue;
    if (operation.complete_ns >= final_read->invoke_ns) continue;  // concurrent with the read
    latest_superseding_invoke_ns = std::max(latest_superseding_invoke_ns, operation.invoke_ns);
  }
  auto superseded = [&](const RegisterOperation& write) {
    return latest_superseding_invoke_ns > write.complete_ns;
  };
  const std::optional<uint64_t> observed = final_read->read_value;
  // The initial state (no item) is a write that completed before everything.
  bool explained = !observed.has_value() && latest_superseding_invoke_ns == INT64_MIN;
  const RegisterOperation* latest_surviving = nullptr;
  for (const RegisterOperation& operation : operations) {
    if (explained) break;
    if (!may_have_applied(operation) || superseded(operation)) continue;
    if (operation.invoke_ns >= final_read->complete_ns) continue;  // began after the read
    if (operation.outcome == Outcome::kOk &&
        (latest_surviving == nullptr || operation.invoke_ns > latest_surviving->invoke_ns)) {
      latest_surviving = &operation;
    }
    const bool matches = operation.kind == Kind::kDelete
                             ? !observed.has_value()
                             : observed.has_value() && *observed == operation.value;
    explained = matches;
  }
  if (explained) return;
  ++lost_writes_;
  std::string what = "key " + key + ": the final read (invoked at " +
                     std::to_string(final_read->invoke_ns) + " ns) returned " +
                     describe_value(observed) + ", which no surviving write explains";
  if (latest_surviving != nullptr) {
    what += "; lost: the acknowledged " + describe(*latest_surviving);
  }
  violation(std::move(what));
}

void DurabilityOfWritesChecker::violation(std::string what) {
  if (first_violation_.empty()) first_violation_ = std::move(what);
}

nlohmann::json DurabilityOfWritesChecker::report() const {
  return {{"passed", passed()},
          {"acknowledged_writes", acknowledged_writes_},
          {"lost_writes", lost_writes_},
          {"keys_checked", keys_checked_},
          {"keys_unverified", keys_unverified_},
          {"first_violation", first_violation_}};
}

// ---------------------------------------------------------------------------------------------
// PaxosSafetyChecker

PaxosSafetyChecker::PaxosSafetyChecker(sim::World& world, const model::Placement& placement)
    : world_(world), placement_(placement) {}

sim::HostId PaxosSafetyChecker::host_of(model::GroupId group, uint32_t replica) const {
  auto found = hosts_.find(std::make_pair(group.value, replica));
  if (found != hosts_.end()) return found->second;
  DYN_ASSERT(replica >= 1 && replica <= model::kReplicasPerGroup);
  return placement_.group(group).replicas[replica - 1].host;
}

void PaxosSafetyChecker::on_replica_hosted(model::GroupId group, uint32_t replica,
                                           sim::Address node) {
  hosts_[std::make_pair(group.value, replica)] = node.host;
}

void PaxosSafetyChecker::violation(std::string what) {
  ++violations_;
  if (first_violation_.empty()) first_violation_ = std::move(what);
}

void PaxosSafetyChecker::on_applied(model::GroupId group, uint32_t replica, model::LogIndex index,
                                    uint64_t command_digest) {
  const auto [it, inserted] =
      slots_.emplace(std::make_pair(group.value, index.value), Slot{command_digest, replica});
  if (inserted || it->second.digest == command_digest) return;
  char buffer[200];
  std::snprintf(buffer, sizeof buffer,
                "group %u slot %" PRIu64 ": replica %u applied command %016" PRIx64
                ", replica %u applied %016" PRIx64 " (at %s)",
                group.value, index.value, it->second.first_replica, it->second.digest, replica,
                command_digest, sim::format_time(world_.simulation().now()).c_str());
  violation(buffer);
}

void PaxosSafetyChecker::on_lease(model::GroupId group, uint32_t replica, sim::SimTime local_now,
                                  sim::SimTime local_until) {
  const sim::SimTime now = world_.simulation().now();
  const auto self = std::make_pair(group.value, replica);
  auto existing = windows_.find(self);
  const bool open = existing != windows_.end() && existing->second.end > now;
  if (local_until <= local_now) {
    if (open) existing->second.end = now;  // given up or lost: it serves no more
    return;
  }
  const sim::HostClock& clock = world_.clock(host_of(group, replica));
  const sim::SimTime end = now + clock.true_delay_for(local_until - local_now);
  Window window{now, end};
  if (open) {
    window.start = existing->second.start;  // an extension of the window it holds
  } else {
    ++lease_windows_;
  }
  windows_[self] = window;
  for (auto found = windows_.lower_bound(std::make_pair(group.value, 0u));
       found != windows_.end() && found->first.first == group.value; ++found) {
    const uint32_t other = found->first.second;
    if (other == replica) continue;
    const Window& theirs = found->second;
    if (theirs.start < window.end && window.start < theirs.end) {
      violation("group " + std::to_string(group.value) + ": replica " + std::to_string(replica) +
                " holds a lease [" + sim::format_time(window.start) + ", " +
                sim::format_time(window.end) + ") that overlaps replica " + std::to_string(other) +
                "'s [" + sim::format_time(theirs.start) + ", " + sim::format_time(theirs.end) +
                ")");
    }
  }
}

void PaxosSafetyChecker::on_strong_read(model::GroupId group, uint32_t replica,
                                        sim::SimTime local_now) {
  (void)local_now;
  ++strong_reads_;
  const sim::SimTime now = world_.simulation().now();
  auto found = windows_.find(std::make_pair(group.value, replica));
  if (found != windows_.end() && found->second.start <= now && now < found->second.end) return;
  violation("group " + std::to_string(group.value) + ": replica " + std::to_string(replica) +
            " served a strong read at " + sim::format_time(now) + " outside any lease it held");
}

nlohmann::json PaxosSafetyChecker::report() const {
  return {{"passed", passed()},
          {"slots_checked", slots_.size()},
          {"lease_windows", lease_windows_},
          {"strong_reads", strong_reads_},
          {"violations", violations_},
          {"first_violation", first_violation_}};
}

// ---------------------------------------------------------------------------------------------
// Replica convergence

nlohmann::json ReplicaConvergence::report() const {
  return {{"passed", passed()},
          {"groups_checked", groups_checked},
          {"groups_diverged", groups_diverged},
          {"replicas_lagging", replicas_lagging},
          {"replicas_unavailable", replicas_unavailable},
          {"replicas_recovering", replicas_recovering},
          {"replicas_unhealthy", replicas_unhealthy},
          {"replicas_content_unknown", replicas_content_unknown},
          {"first_violation", first_violation}};
}

void compare_group_replicas(model::GroupId group,
                            const std::vector<std::optional<model::ReplicaSnapshot>>& replicas,
                            ReplicaConvergence* result) {
  ++result->groups_checked;
  std::vector<const model::ReplicaSnapshot*> serving;  // available, recovered and healthy
  for (size_t r = 0; r < replicas.size(); ++r) {
    if (!replicas[r].has_value()) {
      ++result->replicas_unavailable;
      continue;
    }
    const model::ReplicaSnapshot& snapshot = *replicas[r];
    DYN_ASSERT_MSG(snapshot.group == group, "a snapshot compared under the wrong group");
    if (!snapshot.recovered) {
      ++result->replicas_recovering;
    } else if (!snapshot.healthy) {
      ++result->replicas_unhealthy;
    } else {
      serving.push_back(&snapshot);
    }
  }
  auto note = [&](std::string what) {
    if (result->first_violation.empty()) {
      result->first_violation = "group " + std::to_string(group.value) + ": " + std::move(what);
    }
  };
  // The furthest replica, and the last entry up to its applied index that changed items: a
  // replica that applied that far holds the same content, whatever no-ops, configurations or
  // scrub markers (which leaders propose at any time, to the run's last instant) follow it.
  model::LogIndex highest;
  model::LogIndex settled;
  for (const model::ReplicaSnapshot* snapshot : serving) {
    if (snapshot->applied > highest) {
      highest = snapshot->applied;
      settled = snapshot->last_write;
    }
  }
  auto caught_up = [&](const model::ReplicaSnapshot& s) { return s.applied >= settled; };
  for (const model::ReplicaSnapshot* snapshot : serving) {
    if (!caught_up(*snapshot)) {
      ++result->replicas_lagging;
      note("replica " + std::to_string(snapshot->replica) + " applied up to " +
           std::to_string(snapshot->applied.value) + ", the group up to " +
           std::to_string(highest.value));
    }
    if (!snapshot->content_known) ++result->replicas_content_unknown;
  }
  bool diverged = false;
  for (size_t i = 0; i < serving.size() && !diverged; ++i) {
    for (size_t j = i + 1; j < serving.size() && !diverged; ++j) {
      const model::ReplicaSnapshot& a = *serving[i];
      const model::ReplicaSnapshot& b = *serving[j];
      if (!a.content_known || !b.content_known) continue;
      if (a.applied != b.applied && !(caught_up(a) && caught_up(b))) continue;
      if (a.content_digest == b.content_digest && a.item_count == b.item_count) continue;
      diverged = true;
      char buffer[200];
      std::snprintf(buffer, sizeof buffer,
                    "replicas %u and %u both applied up to %" PRIu64
                    " but hold different content (digest %016" PRIx64 " with %" PRIu64
                    " items, %016" PRIx64 " with %" PRIu64 " items)",
                    a.replica, b.replica, a.applied.value, a.content_digest, a.item_count,
                    b.content_digest, b.item_count);
      note(buffer);
    }
  }
  if (diverged) ++result->groups_diverged;
}

#if DYNASIM_HAVE_STORAGE_NODE
// The one place that reaches into live storage nodes (kept small so a tree without
// model/storage_node.cc can leave it out; see the header).
ReplicaConvergence check_convergence(sim::World& world, const model::Placement& placement,
                                     const std::vector<sim::Address>& nodes) {
  ReplicaConvergence result;
  // inspect() reports every replica a node hosts: ask each node once.
  std::map<uint32_t, std::vector<model::ReplicaSnapshot>> by_group;
  for (const sim::Address& address : nodes) {
    auto* node = dynamic_cast<model::StorageNode*>(world.process_at(address));
    if (node == nullptr) continue;  // host down
    for (model::ReplicaSnapshot& snapshot : node->inspect()) {
      by_group[snapshot.group.value].push_back(std::move(snapshot));
    }
  }
  // The placement's groups, and every group a node hosts besides them (a split's children,
  // docs/partitions.md): each is compared alike.
  std::set<uint32_t> groups;
  for (const model::GroupPlacement& group : placement.groups) groups.insert(group.group.value);
  for (const auto& [group, snapshots] : by_group) groups.insert(group);
  for (const uint32_t group_id : groups) {
    const model::GroupId group_key(group_id);
    const std::vector<model::ReplicaSnapshot>& found = by_group[group_id];
    // The group's members: the newest configuration any recovered replica holds (healing may
    // have replaced the placement's replicas). Its full voters are compared; a log replica holds
    // no items, a learner may still be catching up, and a replica outside it was removed.
    model::Configuration members = model::Configuration::of_voters({1, 2, 3});
    for (const model::ReplicaSnapshot& snapshot : found) {
      if (snapshot.recovered && !snapshot.configuration.members.empty() &&
          snapshot.configuration.epoch >= members.epoch) {
        members = snapshot.configuration;
      }
    }
    std::vector<std::optional<model::ReplicaSnapshot>> replicas;
    for (const model::Member& member : members.members) {
      if (!member.voter || member.kind != model::MemberKind::kFull) continue;
      std::optional<model::ReplicaSnapshot> snapshot;
      for (const model::ReplicaSnapshot& candidate : found) {
        if (candidate.replica == member.replica) snapshot = candidate;
      }
      replicas.push_back(std::move(snapshot));
    }
    compare_group_replicas(group_key, replicas, &result);
  }
  return result;
}
#endif

// ---------------------------------------------------------------------------------------------
// Reference checks

void ReferenceCheckRecorder::on_reference_checked(model::GroupId group, model::LogIndex at,
                                                  model::ReferenceOutcome outcome,
                                                  const std::string& detail) {
  ++counts_[outcome];
  const bool failed =
      outcome == model::ReferenceOutcome::kMismatch || outcome == model::ReferenceOutcome::kError;
  if (failed && first_failure_.empty()) {
    first_failure_ = "group " + std::to_string(group.value) + " at index " +
                     std::to_string(at.value) + ": " + detail;
  }
}

nlohmann::json ReferenceCheckRecorder::report() const {
  auto count = [this](model::ReferenceOutcome outcome) -> uint64_t {
    auto it = counts_.find(outcome);
    return it == counts_.end() ? 0 : it->second;
  };
  return {{"matches", count(model::ReferenceOutcome::kMatch)},
          {"mismatches", count(model::ReferenceOutcome::kMismatch)},
          {"errors", count(model::ReferenceOutcome::kError)},
          {"unavailable", count(model::ReferenceOutcome::kUnavailable)},
          {"first_violation", first_failure_}};
}

}  // namespace dynasim::gameday
