#include "gameday/router_checker.h"

#include <algorithm>

namespace dynasim::gameday {

namespace {

sim::Address address_of_endpoint(uint64_t endpoint) {
  return sim::Address{sim::HostId(static_cast<uint32_t>(endpoint >> 32)),
                      static_cast<uint32_t>(endpoint & 0xffffffffu)};
}

}  // namespace

RouterGroupsChecker::RouterGroupsChecker(const sim::World& world, const sim::Simulation* simulation,
                                         const model::Placement& placement)
    : world_(world), simulation_(simulation), placement_(placement) {
  for (const model::GroupPlacement& group : placement_.groups) {
    members_[group.group.value].insert(group.replicas.begin(), group.replicas.end());
  }
}

void RouterGroupsChecker::on_replica_hosted(model::GroupId group, uint32_t replica,
                                            sim::Address node) {
  (void)replica;
  members_[group.value].insert(node);
}

void RouterGroupsChecker::on_split_committed(model::GroupId parent, model::GroupId child,
                                             uint32_t replica, sim::Address node,
                                             uint64_t parent_begin, uint64_t parent_end,
                                             uint64_t split_hash, bool for_size,
                                             sim::SimTime decided_local, sim::SimTime local_now) {
  (void)parent, (void)replica, (void)node, (void)parent_begin, (void)for_size,
      (void)decided_local, (void)local_now;
  child_ranges_[child.value] = {split_hash, parent_end};
}

void RouterGroupsChecker::on_configuration_committed(model::GroupId group, sim::Address node,
                                                     const model::Configuration& configuration,
                                                     sim::SimTime local_now) {
  (void)node, (void)local_now;
  for (const model::Member& member : configuration.members) {
    members_[group.value].insert(address_of_endpoint(member.endpoint));
  }
}

void RouterGroupsChecker::on_forward(sim::Address router, model::TableId table,
                                     uint64_t partition_hash, model::GroupId group,
                                     sim::Address destination) {
  (void)table;
  ++forwards_;
  // Named only when there is a violation to report: this runs on every forward.
  const auto who = [&] {
    return "router " + world_.host_name(router.host) + " at " + sim::format_time(simulation_->now());
  };
  uint64_t hash_begin = 0;
  uint64_t hash_end = 0;
  if (group.value < placement_.groups.size()) {
    hash_begin = placement_.groups[group.value].hash_begin;
    hash_end = placement_.groups[group.value].hash_end;
  } else if (auto child = child_ranges_.find(group.value); child != child_ranges_.end()) {
    hash_begin = child->second.first;
    hash_end = child->second.second;
  } else {
    violation(who() + " forwarded to unknown group " + std::to_string(group.value));
    return;
  }
  if (partition_hash < hash_begin || partition_hash > hash_end) {
    violation(who() + " forwarded partition hash " + std::to_string(partition_hash) +
              " as a request for group " + std::to_string(group.value) +
              ", whose range does not hold it");
    return;
  }
  const std::set<sim::Address>& members = members_[group.value];
  if (members.count(destination) == 0) {
    violation(who() + " forwarded a request for group " + std::to_string(group.value) + " to " +
              world_.host_name(destination.host) + ", which never hosted a replica of it");
  }
}

void RouterGroupsChecker::violation(std::string what) {
  if (violations_++ == 0) first_violation_ = std::move(what);
}

nlohmann::json RouterGroupsChecker::report() const {
  return {{"passed", passed()},
          {"forwards_checked", forwards_},
          {"violations", violations_},
          {"first_violation", first_violation_}};
}

void MemdsLoadRecorder::on_request_served(sim::Address node, bool range_read) {
  (void)node;
  ++per_second_[simulation_->now().ns / 1'000'000'000];
  if (range_read) {
    ++range_pages_;
  } else {
    ++lookups_;
  }
}

nlohmann::json MemdsLoadRecorder::report(sim::SimTime end) const {
  const int64_t seconds = std::max<int64_t>(1, (end.ns + 999'999'999) / 1'000'000'000);
  uint64_t max_per_second = 0;
  for (const auto& [second, count] : per_second_) max_per_second = std::max(max_per_second, count);
  const double total = static_cast<double>(lookups_ + range_pages_);
  return {
      {"lookups", lookups_},
      {"range_pages", range_pages_},
      {"lookups_per_s", {{"mean", total / static_cast<double>(seconds)}, {"max", max_per_second}}}};
}

}  // namespace dynasim::gameday
