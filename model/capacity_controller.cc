#include "model/capacity_controller.h"

#include <algorithm>
#include <set>

#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {

constexpr uint64_t kCookiePeriod = 1;
constexpr uint64_t kCookieRetry = 2;
constexpr uint64_t kCookieRecovered = 3;

// Wire sizes: a header and the fields; our assumption, as for the other control messages.
constexpr uint32_t kHeaderBytes = 64;
constexpr uint32_t kGroupEntryBytes = 4 + 2 * 8;

uint64_t mix(uint64_t digest, uint64_t value) {
  return sim::splitmix64(digest ^ value);
}

uint64_t address_digest(sim::Address address) {
  return sim::splitmix64((static_cast<uint64_t>(address.host.value) << 32) ^ address.port);
}

uint64_t version_digest(uint64_t digest, AllocationVersion version) {
  return mix(mix(digest, version.epoch), version.number);
}

// Time to the next multiple of `period` on the local clock (a full period when on one).
sim::Duration to_next_boundary(sim::SimTime now, sim::Duration period) {
  int64_t into = now.ns % period.ns;
  if (into < 0) into += period.ns;
  return sim::Duration(period.ns - into);
}

}  // namespace

sim::Message make_message(const ConsumedCapacityReport& report) {
  sim::Message message;
  message.type = static_cast<uint32_t>(CapacityMessageType::kConsumedCapacityReport);
  message.size_bytes =
      kHeaderBytes + 16 + kGroupEntryBytes * static_cast<uint32_t>(report.groups.size());
  uint64_t digest = mix(address_digest(report.reporter), report.incarnation);
  digest = mix(digest, report.sequence);
  digest = version_digest(digest, report.allocation_version);
  digest = mix(digest, static_cast<uint64_t>(report.allocation_capacity.read_units_per_second));
  digest = mix(digest, static_cast<uint64_t>(report.allocation_capacity.write_units_per_second));
  for (const GroupConsumption& group : report.groups) {
    digest = mix(digest, group.group.value);
    digest = mix(digest, static_cast<uint64_t>(group.read_milli_units));
    digest = mix(digest, static_cast<uint64_t>(group.write_milli_units));
  }
  for (const GroupId group : report.serving) digest = mix(digest, group.value);
  message.size_bytes += 4 * static_cast<uint32_t>(report.serving.size());
  message.digest = digest;
  message.body = std::make_shared<ConsumedCapacityReport>(report);
  return message;
}

sim::Message make_message(const AllocationUpdate& update) {
  sim::Message message;
  message.type = static_cast<uint32_t>(CapacityMessageType::kAllocationUpdate);
  message.size_bytes = kHeaderBytes + 6 * 8 + 4;
  uint64_t digest = version_digest(0x5ca1ab1e, update.version);
  digest = mix(digest, update.partitions);
  digest = mix(digest, static_cast<uint64_t>(update.capacity.read_units_per_second));
  digest = mix(digest, static_cast<uint64_t>(update.capacity.write_units_per_second));
  digest = mix(digest, static_cast<uint64_t>(update.allocation.read_milli_units_per_second));
  digest = mix(digest, static_cast<uint64_t>(update.allocation.write_milli_units_per_second));
  message.digest = digest;
  message.body = std::make_shared<AllocationUpdate>(update);
  return message;
}

sim::Message make_message(const AllocationAck& ack) {
  sim::Message message;
  message.type = static_cast<uint32_t>(CapacityMessageType::kAllocationAck);
  message.size_bytes = kHeaderBytes + 3 * 8;
  message.digest = version_digest(address_digest(ack.node), ack.version);
  message.body = std::make_shared<AllocationAck>(ack);
  return message;
}

sim::Message make_message(const AllocationRequest& request) {
  sim::Message message;
  message.type = static_cast<uint32_t>(CapacityMessageType::kAllocationRequest);
  message.size_bytes = kHeaderBytes + 2 * 8;
  message.digest = mix(address_digest(request.node), request.incarnation);
  message.body = std::make_shared<AllocationRequest>(request);
  return message;
}

// ---------------------------------------------------------------------------------------------
// CapacityAgent

CapacityAgent::CapacityAgent(Options options, sim::Address self, uint64_t incarnation,
                             PartitionAllocation initial)
    : options_(options), self_(self), incarnation_(incarnation), allocation_(initial) {
  DYN_ASSERT(options_.report_interval > sim::Duration(0));
  DYN_ASSERT(options_.request_retry > sim::Duration(0));
}

void CapacityAgent::on_admitted(GroupId group, int64_t milli_units, bool write) {
  DYN_ASSERT(milli_units >= 0);
  auto found = consumed_.find(group);
  if (found == consumed_.end()) {
    // The node refuses partitions beyond its own bound, so this one holds too.
    DYN_ASSERT(consumed_.size() < options_.max_groups);
    found = consumed_.emplace(group, Consumed{}).first;
  }
  (write ? found->second.write_milli_units : found->second.read_milli_units) += milli_units;
}

ConsumedCapacityReport CapacityAgent::make_report(std::vector<GroupId> serving) {
  DYN_ASSERT(std::is_sorted(serving.begin(), serving.end()));
  ConsumedCapacityReport report;
  report.serving = std::move(serving);
  report.reporter = self_;
  report.incarnation = incarnation_;
  report.sequence = next_sequence_++;
  report.allocation_version = version_;
  report.allocation_capacity = capacity_;
  report.groups.reserve(consumed_.size());
  for (const auto& [group, consumed] : consumed_) {
    report.groups.push_back(
        GroupConsumption{group, consumed.read_milli_units, consumed.write_milli_units});
  }
  return report;
}

AllocationRequest CapacityAgent::make_request() const {
  AllocationRequest request;
  request.node = self_;
  request.incarnation = incarnation_;
  return request;
}

CapacityAgent::UpdateResult CapacityAgent::on_update(const AllocationUpdate& update) {
  UpdateResult result;
  const bool newer =
      options_.plant_accept_older_version ? update.version != version_ : update.version > version_;
  if (newer) {
    version_ = update.version;
    allocation_ = update.allocation;
    capacity_ = update.capacity;
    result.apply = update.allocation;
  }
  awaiting_ = false;
  result.ack.node = self_;
  result.ack.version = version_;
  return result;
}

// ---------------------------------------------------------------------------------------------
// CapacityController

CapacityController::CapacityController(CapacityControllerOptions options)
    : options_(std::move(options)) {
  DYN_ASSERT(options_.partitions > 0);
  partition_count_ = options_.partitions;
  DYN_ASSERT(options_.period > sim::Duration(0));
  DYN_ASSERT(options_.retry_interval > sim::Duration(0));
  DYN_ASSERT(options_.storage_nodes.size() <= options_.max_nodes);
}

void CapacityController::on_start(sim::Env& env) {
  env_ = &env;
  const sim::SimTime now = env.local_now();
  // A new epoch: later than any boot before it, as the clock never steps back by a restart's
  // length (the same reasoning as the storage node's incarnation).
  version_ = AllocationVersion{static_cast<uint64_t>(std::max<int64_t>(now.ns, 0)) + 1, 0};
  for (const sim::Address& node : options_.storage_nodes) nodes_.emplace(node, NodeState{});
  env.set_timer(options_.recovery_wait, kCookieRecovered);
}

void CapacityController::finish_recovery() {
  const sim::SimTime now = env_->local_now();
  ProvisionedCapacity::Options read_provisioned = options_.read_provisioned;
  ProvisionedCapacity::Options write_provisioned = options_.write_provisioned;
  OnDemandCapacity::Options read_on_demand = options_.read_on_demand;
  OnDemandCapacity::Options write_on_demand = options_.write_on_demand;
  if (recovered_version_ != AllocationVersion{}) {
    // The table's capacity as the newest update a node holds says (on-demand, the instant
    // capacity is twice the previous peak).
    const TableCapacity& table = recovered_capacity_;
    read_provisioned.initial_units = std::max<int64_t>(1, table.read_units_per_second);
    write_provisioned.initial_units = std::max<int64_t>(1, table.write_units_per_second);
    read_on_demand.initial_previous_peak_units = table.read_units_per_second / 2;
    write_on_demand.initial_previous_peak_units = table.write_units_per_second / 2;
  }
  if (options_.mode == CapacityMode::kProvisioned) {
    read_provisioned_.emplace(read_provisioned, now);
    write_provisioned_.emplace(write_provisioned, now);
  } else {
    read_on_demand_.emplace(read_on_demand, now);
    write_on_demand_.emplace(write_on_demand, now);
  }
  recovered_ = true;
  // Splits reported while recovering count from the first announcement.
  recount_partitions();
  // Consumption heard while recovering goes into the first data point.
  period_start_ = now;
  announce(capacity_in_effect(now));
  // Data points on multiples of the period (CloudWatch's minutes).
  env_->set_timer(to_next_boundary(now, options_.period), kCookiePeriod);
}

TableCapacity CapacityController::capacity_in_effect(sim::SimTime now) {
  if (options_.mode == CapacityMode::kProvisioned) {
    return TableCapacity{read_provisioned_->units(now), write_provisioned_->units(now)};
  }
  return TableCapacity{read_on_demand_->instant_units_per_second(now),
                       write_on_demand_->instant_units_per_second(now)};
}

void CapacityController::announce(TableCapacity capacity) {
  announced_ = capacity;
  ++version_.number;
  if (options_.observer != nullptr) {
    options_.observer->on_capacity(env_->local_now(), capacity, version_);
  }
  env_->metrics().add("capacity.changes", 1);
  send_updates(/*only_behind=*/false);
}

AllocationUpdate CapacityController::current_update() const {
  AllocationUpdate update;
  update.version = version_;
  update.capacity = announced_;
  update.partitions = partition_count_;
  update.allocation = partition_allocation(options_.mode, announced_, partition_count_);
  return update;
}

// The union of the partitions the newest reports list, never fewer than at start. Counted before
// the first announcement, it only sets the count; afterwards a larger count is a new version.
void CapacityController::recount_partitions() {
  std::set<GroupId> serving;
  for (const auto& [node, state] : nodes_) {
    (void)node;
    serving.insert(state.serving.begin(), state.serving.end());
  }
  const uint32_t count = std::max(
      partition_count_, static_cast<uint32_t>(std::min<size_t>(serving.size(), UINT32_MAX)));
  if (count == partition_count_) return;
  partition_count_ = count;
  env_->metrics().add("capacity.partition_count_changes", 1);
  if (version_.number == 0) return;  // finish_recovery announces it
  ++version_.number;
  send_updates(/*only_behind=*/false);
}

void CapacityController::send_updates(bool only_behind) {
  const sim::Message message = make_message(current_update());
  for (const auto& [node, state] : nodes_) {
    if (only_behind && state.acked >= version_) continue;
    env_->send(node, message);
    ++updates_sent_;
  }
  arm_retry();
}

void CapacityController::arm_retry() {
  if (retry_armed_ || nodes_behind() == 0) return;
  retry_armed_ = true;
  env_->set_timer(options_.retry_interval, kCookieRetry);
}

uint32_t CapacityController::nodes_behind() const {
  uint32_t behind = 0;
  for (const auto& [node, state] : nodes_) behind += state.acked < version_ ? 1 : 0;
  return behind;
}

void CapacityController::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  (void)env;
  (void)from;
  switch (static_cast<CapacityMessageType>(message.type)) {
    case CapacityMessageType::kConsumedCapacityReport: {
      const auto* report = dynamic_cast<const ConsumedCapacityReport*>(message.body.get());
      if (report != nullptr) on_report(*report);
      return;
    }
    case CapacityMessageType::kAllocationAck: {
      const auto* ack = dynamic_cast<const AllocationAck*>(message.body.get());
      if (ack == nullptr) return;
      auto node = nodes_.find(ack->node);
      if (node == nodes_.end()) return;
      // Acks can arrive out of order: keep the newest.
      node->second.acked = std::max(node->second.acked, ack->version);
      return;
    }
    case CapacityMessageType::kAllocationRequest: {
      const auto* request = dynamic_cast<const AllocationRequest*>(message.body.get());
      if (request == nullptr) return;
      auto node = nodes_.find(request->node);
      if (node == nodes_.end() || !recovered_) return;  // it asks again
      // The node restarted and holds only its static allocation: it is behind until it acks.
      node->second.acked = AllocationVersion{};
      env_->send(request->node, make_message(current_update()));
      ++updates_sent_;
      arm_retry();
      return;
    }
    case CapacityMessageType::kAllocationUpdate:
      return;
  }
}

void CapacityController::on_report(const ConsumedCapacityReport& report) {
  auto found = nodes_.find(report.reporter);
  if (found == nodes_.end()) return;
  NodeState& node = found->second;
  if (node.reported) {
    // An older or duplicated report adds nothing: the newer one kept already counts it.
    if (report.incarnation < node.incarnation) return;
    if (report.incarnation == node.incarnation && report.sequence <= node.sequence) return;
  }
  if (report.groups.size() > options_.max_groups_per_report) return;
  if (report.serving.size() > options_.max_groups_per_report) return;
  if (report.allocation_version > recovered_version_) {
    recovered_version_ = report.allocation_version;
    recovered_capacity_ = report.allocation_capacity;
  }
  const bool same_incarnation = node.reported && report.incarnation == node.incarnation;
  std::map<GroupId, GroupConsumption> latest;
  for (const GroupConsumption& group : report.groups) {
    GroupConsumption delta = group;
    if (same_incarnation) {
      auto before = node.last.find(group.group);
      if (before != node.last.end()) {
        delta.read_milli_units -= before->second.read_milli_units;
        delta.write_milli_units -= before->second.write_milli_units;
      }
    }
    // Counters of one incarnation only grow.
    DYN_ASSERT(delta.read_milli_units >= 0 && delta.write_milli_units >= 0);
    period_read_milli_ += delta.read_milli_units;
    period_write_milli_ += delta.write_milli_units;
    latest.emplace(group.group, group);
  }
  node.incarnation = report.incarnation;
  node.sequence = report.sequence;
  node.reported = true;
  node.last = std::move(latest);
  const bool serving_changed = node.serving != report.serving;
  if (!options_.plant_ignore_serving_partitions) node.serving = report.serving;
  ++reports_accepted_;
  if (serving_changed && recovered_) recount_partitions();
}

void CapacityController::on_timer(sim::Env& env, uint64_t cookie) {
  if (cookie == kCookiePeriod) {
    close_period();
    env.set_timer(to_next_boundary(env.local_now(), options_.period), kCookiePeriod);
    return;
  }
  if (cookie == kCookieRecovered) {
    finish_recovery();
    return;
  }
  if (cookie == kCookieRetry) {
    retry_armed_ = false;
    send_updates(/*only_behind=*/true);
  }
}

void CapacityController::close_period() {
  const sim::SimTime now = env_->local_now();
  const int64_t read = period_read_milli_;
  const int64_t write = period_write_milli_;
  if (!options_.plant_reuse_previous_period) {
    period_read_milli_ = 0;
    period_write_milli_ = 0;
  }
  if (options_.observer != nullptr) options_.observer->on_data_point(now, read, write);
  if (options_.mode == CapacityMode::kProvisioned) {
    read_provisioned_->on_period(now, read);
    write_provisioned_->on_period(now, write);
  } else {
    // The consumption belongs to the period that began at the previous data point.
    read_on_demand_->record_consumed(read, period_start_);
    write_on_demand_->record_consumed(write, period_start_);
  }
  period_start_ = now;
  const TableCapacity capacity = capacity_in_effect(now);
  if (capacity.read_units_per_second != announced_.read_units_per_second ||
      capacity.write_units_per_second != announced_.write_units_per_second) {
    announce(capacity);
  }
}

}  // namespace dynasim::model
