#include "model/admission.h"

#include <algorithm>

#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
// A burst bucket that ignores its depth (planted bug) still needs a finite one for the invariant.
constexpr int64_t kUnboundedDepthMilliUnits = INT64_MAX / 4;
// Bytes on the wire of a capacity report: a header plus five 8-byte fields. Our assumption.
constexpr uint32_t kReportBytes = 64 + 5 * 8;

int64_t saturating_product(int64_t a, int64_t b) {
  const __int128 product = static_cast<__int128>(a) * b;
  return product > kUnboundedDepthMilliUnits ? kUnboundedDepthMilliUnits
                                             : static_cast<int64_t>(product);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TokenBucket

TokenBucket::TokenBucket(int64_t refill_milli_units_per_second, int64_t depth_milli_units,
                         sim::SimTime local_now, Options options)
    : rate_(refill_milli_units_per_second),
      depth_(depth_milli_units),
      tokens_(depth_milli_units),
      last_refill_(local_now),
      options_(options) {
  DYN_ASSERT(rate_ >= 0);
  DYN_ASSERT(depth_ >= 0);
  check();
}

void TokenBucket::check() const {
  DYN_ASSERT_MSG(tokens_ >= 0 && tokens_ <= depth_, "token bucket outside [0, depth]");
  DYN_ASSERT(carry_ >= 0 && carry_ < kNanosPerSecond);
}

int64_t TokenBucket::refill(sim::SimTime local_now) {
  const sim::Duration elapsed = local_now - last_refill_;
  last_refill_ = local_now;
  if (elapsed.ns <= 0 || rate_ == 0) {
    // A clock that stepped back refills nothing; the bucket counts from the new reading on.
    check();
    return 0;
  }
  // Exact: tokens * 1e9 = elapsed_ns * rate + carry; __int128 so long idle spans cannot overflow.
  const __int128 numerator = static_cast<__int128>(elapsed.ns) * rate_ + carry_;
  const __int128 produced = numerator / kNanosPerSecond;
  carry_ = static_cast<int64_t>(numerator % kNanosPerSecond);
  const __int128 room = depth_ - tokens_;
  int64_t overflow = 0;
  if (produced <= room || options_.plant_refill_ignores_depth) {
    tokens_ += static_cast<int64_t>(std::min<__int128>(produced, INT64_MAX - tokens_));
  } else {
    tokens_ = depth_;
    const __int128 beyond = produced - room;
    overflow = beyond > INT64_MAX ? INT64_MAX : static_cast<int64_t>(beyond);
    carry_ = 0;  // a full bucket owes nothing
  }
  check();
  return overflow;
}

void TokenBucket::take(int64_t amount_milli_units) {
  DYN_ASSERT(amount_milli_units >= 0 && amount_milli_units <= tokens_);
  tokens_ -= amount_milli_units;
  check();
}

int64_t TokenBucket::take_up_to(int64_t amount_milli_units) {
  DYN_ASSERT(amount_milli_units >= 0);
  const int64_t taken = std::min(amount_milli_units, tokens_);
  tokens_ -= taken;
  check();
  return taken;
}

int64_t TokenBucket::add(int64_t amount_milli_units) {
  DYN_ASSERT(amount_milli_units >= 0);
  const int64_t fits = std::min(amount_milli_units, depth_ - tokens_);
  tokens_ += fits;
  check();
  return amount_milli_units - fits;
}

void TokenBucket::set_refill_rate(int64_t refill_milli_units_per_second, sim::SimTime local_now) {
  DYN_ASSERT(refill_milli_units_per_second >= 0);
  refill(local_now);
  rate_ = refill_milli_units_per_second;
  check();
}

void TokenBucket::set_depth(int64_t depth_milli_units, sim::SimTime local_now) {
  DYN_ASSERT(depth_milli_units >= 0);
  refill(local_now);
  depth_ = depth_milli_units;
  tokens_ = std::min(tokens_, depth_);
  check();
}

// ---------------------------------------------------------------------------------------------
// Reports and the peer view

sim::Message make_capacity_report_message(const NodeCapacityReport& report) {
  sim::Message message;
  message.type = static_cast<uint32_t>(AdmissionMessageType::kNodeCapacityReport);
  message.size_bytes = kReportBytes;
  uint64_t digest = sim::splitmix64((static_cast<uint64_t>(report.reporter.host.value) << 32) ^
                                    report.reporter.port);
  digest = sim::splitmix64(digest ^ report.incarnation);
  digest = sim::splitmix64(digest ^ report.sequence);
  digest = sim::splitmix64(digest ^ static_cast<uint64_t>(report.read_available_milli_units));
  digest = sim::splitmix64(digest ^ static_cast<uint64_t>(report.write_available_milli_units));
  message.digest = digest;
  message.body = std::make_shared<NodeCapacityReport>(report);
  return message;
}

bool PeerCapacityView::fresh(const PeerRecord& record, sim::SimTime local_now) const {
  if (options_.plant_ignore_staleness) return true;
  const sim::Duration age = local_now - record.received;
  // A negative age means the local clock stepped back since the report arrived: its age is
  // unknown, so it is not trusted.
  return age >= sim::Duration(0) && age <= options_.staleness_bound;
}

bool PeerCapacityView::on_report(const NodeCapacityReport& report, sim::SimTime local_now) {
  auto found = peers_.find(report.reporter);
  if (found != peers_.end()) {
    PeerRecord& record = found->second;
    const bool newer =
        report.incarnation > record.incarnation ||
        (report.incarnation == record.incarnation && report.sequence > record.sequence);
    if (!newer) return false;
    record = PeerRecord{report.incarnation, report.sequence,
                        std::max<int64_t>(0, report.write_available_milli_units), 0, local_now};
    return true;
  }
  if (peers_.size() >= options_.max_peers) {
    // Full: make room only by dropping a peer whose report is stale anyway.
    auto stale = std::find_if(peers_.begin(), peers_.end(),
                              [&](const auto& entry) { return !fresh(entry.second, local_now); });
    if (stale == peers_.end()) return false;
    peers_.erase(stale);
  }
  peers_.emplace(
      report.reporter,
      PeerRecord{report.incarnation, report.sequence,
                 std::max<int64_t>(0, report.write_available_milli_units), 0, local_now});
  return true;
}

int64_t PeerCapacityView::write_room_milli_units(sim::Address peer, sim::SimTime local_now) const {
  auto found = peers_.find(peer);
  if (found == peers_.end() || !fresh(found->second, local_now)) return 0;
  return std::max<int64_t>(
      0, found->second.write_available_milli_units - found->second.charged_milli_units);
}

void PeerCapacityView::charge_write(sim::Address peer, int64_t amount_milli_units) {
  DYN_ASSERT(amount_milli_units >= 0);
  auto found = peers_.find(peer);
  if (found == peers_.end()) return;
  found->second.charged_milli_units += amount_milli_units;
}

uint32_t peers_needed_for_burst_write(uint32_t other_replicas) {
  const uint32_t replicas = other_replicas + 1;
  const uint32_t write_quorum = replicas / 2 + 1;
  return write_quorum - 1;
}

// ---------------------------------------------------------------------------------------------
// NodeAdmission

const char* to_string(AdmissionDecision decision) {
  switch (decision) {
    case AdmissionDecision::kAdmitted:
      return "admitted";
    case AdmissionDecision::kAdmittedUsingBurst:
      return "admitted_using_burst";
    case AdmissionDecision::kThrottledByPartition:
      return "throttled_by_partition";
    case AdmissionDecision::kThrottledByNode:
      return "throttled_by_node";
    case AdmissionDecision::kThrottledByPeers:
      return "throttled_by_peers";
    case AdmissionDecision::kUnknownPartition:
      return "unknown_partition";
  }
  return "?";
}

NodeAdmission::NodeAdmission(AdmissionOptions options, sim::Address self, uint64_t incarnation,
                             sim::SimTime local_now)
    : options_(options),
      self_(self),
      incarnation_(incarnation),
      node_read_(options.node_read_units_per_second * kMilliUnitsPerUnit,
                 saturating_product(options.node_read_units_per_second * kMilliUnitsPerUnit,
                                    options.node_depth_seconds),
                 local_now),
      node_write_(options.node_write_units_per_second * kMilliUnitsPerUnit,
                  saturating_product(options.node_write_units_per_second * kMilliUnitsPerUnit,
                                     options.node_depth_seconds),
                  local_now),
      peers_(PeerCapacityView::Options{options.staleness_bound, options.max_peers,
                                       options.plant_ignore_staleness}) {
  DYN_ASSERT(options_.node_read_units_per_second >= 0);
  DYN_ASSERT(options_.node_write_units_per_second >= 0);
  DYN_ASSERT(options_.allocated_depth_seconds >= 1);
  DYN_ASSERT(options_.burst_window >= sim::Duration(0));
}

int64_t NodeAdmission::burst_depth(int64_t rate_milli_units_per_second) const {
  if (options_.plant_burst_ignores_depth) return kUnboundedDepthMilliUnits;
  // rate (milli/s) * window (ns) / 1e9, in 128 bits.
  const __int128 depth = static_cast<__int128>(rate_milli_units_per_second) *
                         options_.burst_window.ns / kNanosPerSecond;
  return depth > kUnboundedDepthMilliUnits ? kUnboundedDepthMilliUnits
                                           : static_cast<int64_t>(depth);
}

NodeAdmission::PartitionBuckets NodeAdmission::make_buckets(int64_t rate_milli_units_per_second,
                                                            sim::SimTime local_now) const {
  PartitionBuckets buckets;
  buckets.allocated = TokenBucket(
      rate_milli_units_per_second,
      saturating_product(rate_milli_units_per_second, options_.allocated_depth_seconds), local_now);
  // The burst bucket fills only from the allocated bucket's overflow: no refill of its own.
  buckets.burst = TokenBucket(0, burst_depth(rate_milli_units_per_second), local_now);
  buckets.burst.take(buckets.burst.tokens_milli_units());
  return buckets;
}

void NodeAdmission::resize(PartitionBuckets& buckets, int64_t rate_milli_units_per_second,
                           sim::SimTime local_now) const {
  refill(buckets, local_now);
  buckets.allocated.set_refill_rate(rate_milli_units_per_second, local_now);
  buckets.allocated.set_depth(
      saturating_product(rate_milli_units_per_second, options_.allocated_depth_seconds), local_now);
  buckets.burst.set_depth(burst_depth(rate_milli_units_per_second), local_now);
}

void NodeAdmission::refill(PartitionBuckets& buckets, sim::SimTime local_now) {
  const int64_t unused = buckets.allocated.refill(local_now);
  buckets.burst.refill(local_now);
  // Capacity the allocated bucket could not hold went unused: it accrues as burst, up to the
  // burst depth; the rest is lost.
  if (unused > 0) buckets.burst.add(unused);
}

bool NodeAdmission::set_allocation(GroupId group, PartitionAllocation allocation,
                                   sim::SimTime local_now) {
  DYN_ASSERT(allocation.read_milli_units_per_second >= 0);
  DYN_ASSERT(allocation.write_milli_units_per_second >= 0);
  allocation.read_milli_units_per_second = std::min(
      allocation.read_milli_units_per_second, kPartitionMaxReadUnitsPerSecond * kMilliUnitsPerUnit);
  allocation.write_milli_units_per_second =
      std::min(allocation.write_milli_units_per_second,
               kPartitionMaxWriteUnitsPerSecond * kMilliUnitsPerUnit);
  auto found = partitions_.find(group);
  if (found == partitions_.end()) {
    if (partitions_.size() >= options_.max_partitions) return false;
    Partition partition;
    partition.allocation = allocation;
    partition.read = make_buckets(allocation.read_milli_units_per_second, local_now);
    partition.write = make_buckets(allocation.write_milli_units_per_second, local_now);
    partitions_.emplace(group, std::move(partition));
    return true;
  }
  Partition& partition = found->second;
  partition.allocation = allocation;
  resize(partition.read, allocation.read_milli_units_per_second, local_now);
  resize(partition.write, allocation.write_milli_units_per_second, local_now);
  return true;
}

void NodeAdmission::remove_partition(GroupId group) {
  partitions_.erase(group);
}

PartitionAllocation NodeAdmission::allocation(GroupId group) const {
  auto found = partitions_.find(group);
  return found == partitions_.end() ? PartitionAllocation{} : found->second.allocation;
}

template <typename BurstAllowed>
AdmissionDecision NodeAdmission::decide(PartitionBuckets& buckets, TokenBucket& node, int64_t cost,
                                        sim::SimTime local_now, BurstAllowed burst_allowed) {
  refill(buckets, local_now);
  node.refill(local_now);
  if (buckets.allocated.tokens_milli_units() >= cost) {
    // Allocated capacity is the partition's own: it is admitted even when the node bucket runs
    // short (which then drains to zero, leaving no room for anyone's burst).
    buckets.allocated.take(cost);
    node.take_up_to(cost);
    return AdmissionDecision::kAdmitted;
  }
  // The allocated tokens left pay first; burst pays the shortfall.
  const int64_t shortfall = cost - buckets.allocated.tokens_milli_units();
  if (buckets.burst.tokens_milli_units() < shortfall)
    return AdmissionDecision::kThrottledByPartition;
  if (node.tokens_milli_units() < cost) return AdmissionDecision::kThrottledByNode;
  if (!burst_allowed()) return AdmissionDecision::kThrottledByPeers;
  buckets.allocated.take(buckets.allocated.tokens_milli_units());
  buckets.burst.take(shortfall);
  node.take(cost);
  return AdmissionDecision::kAdmittedUsingBurst;
}

namespace {

void count_decision(AdmissionStats& stats, AdmissionDecision decision, int64_t cost, bool write) {
  switch (decision) {
    case AdmissionDecision::kAdmitted:
    case AdmissionDecision::kAdmittedUsingBurst: {
      const bool burst = decision == AdmissionDecision::kAdmittedUsingBurst;
      if (write) {
        ++(burst ? stats.write_admitted_using_burst : stats.write_admitted);
        stats.write_admitted_milli_units += cost;
      } else {
        ++(burst ? stats.read_admitted_using_burst : stats.read_admitted);
        stats.read_admitted_milli_units += cost;
      }
      return;
    }
    case AdmissionDecision::kThrottledByPartition:
      ++stats.throttled_by_partition;
      return;
    case AdmissionDecision::kThrottledByNode:
      ++stats.throttled_by_node;
      return;
    case AdmissionDecision::kThrottledByPeers:
      ++stats.throttled_by_peers;
      return;
    case AdmissionDecision::kUnknownPartition:
      ++stats.unknown_partition;
      return;
  }
}

}  // namespace

AdmissionDecision NodeAdmission::admit_read(GroupId group, CapacityUnits cost,
                                            sim::SimTime local_now) {
  const int64_t cost_milli = to_milli_units(cost);
  auto found = partitions_.find(group);
  AdmissionDecision decision = AdmissionDecision::kUnknownPartition;
  if (found != partitions_.end()) {
    // Reads are admitted on the local buckets alone (P22 section 4.1.1).
    decision = decide(found->second.read, node_read_, cost_milli, local_now, [] { return true; });
  }
  count_decision(stats_, decision, cost_milli, /*write=*/false);
  return decision;
}

AdmissionDecision NodeAdmission::admit_write(GroupId group, CapacityUnits cost,
                                             std::span<const sim::Address> other_replicas,
                                             sim::SimTime local_now) {
  const int64_t cost_milli = to_milli_units(cost);
  auto found = partitions_.find(group);
  AdmissionDecision decision = AdmissionDecision::kUnknownPartition;
  if (found != partitions_.end()) {
    DYN_ASSERT(other_replicas.size() < 16);  // a replication group is a handful of replicas
    sim::Address counted[16];
    uint32_t counted_size = 0;
    auto peers_have_room = [&] {
      if (options_.plant_burst_write_skips_peer_check) return true;
      const uint32_t needed =
          peers_needed_for_burst_write(static_cast<uint32_t>(other_replicas.size()));
      for (const sim::Address& peer : other_replicas) {
        if (counted_size >= needed) break;
        if (peers_.write_room_milli_units(peer, local_now) >= cost_milli) {
          counted[counted_size++] = peer;
        }
      }
      return counted_size >= needed;
    };
    decision = decide(found->second.write, node_write_, cost_milli, local_now, peers_have_room);
    if (decision == AdmissionDecision::kAdmittedUsingBurst) {
      for (uint32_t i = 0; i < counted_size; ++i) peers_.charge_write(counted[i], cost_milli);
    }
  }
  count_decision(stats_, decision, cost_milli, /*write=*/true);
  return decision;
}

void NodeAdmission::on_replicated_write(CapacityUnits cost, sim::SimTime local_now) {
  node_write_.refill(local_now);
  node_write_.take_up_to(to_milli_units(cost));
  ++stats_.replicated_writes_charged;
}

NodeCapacityReport NodeAdmission::make_report(sim::SimTime local_now) {
  NodeCapacityReport report;
  report.reporter = self_;
  report.incarnation = incarnation_;
  report.sequence = next_sequence_++;
  report.read_available_milli_units = node_read_available(local_now);
  report.write_available_milli_units = node_write_available(local_now);
  ++stats_.reports_sent;
  return report;
}

void NodeAdmission::on_capacity_report(const NodeCapacityReport& report, sim::SimTime local_now) {
  if (report.reporter == self_) return;
  if (peers_.on_report(report, local_now)) {
    ++stats_.reports_accepted;
  } else {
    ++stats_.reports_rejected;
  }
}

NodeAdmission::BucketLevels NodeAdmission::read_levels(GroupId group, sim::SimTime local_now) {
  auto found = partitions_.find(group);
  if (found == partitions_.end()) return {};
  refill(found->second.read, local_now);
  return {found->second.read.allocated.tokens_milli_units(),
          found->second.read.burst.tokens_milli_units(),
          found->second.read.burst.depth_milli_units()};
}

NodeAdmission::BucketLevels NodeAdmission::write_levels(GroupId group, sim::SimTime local_now) {
  auto found = partitions_.find(group);
  if (found == partitions_.end()) return {};
  refill(found->second.write, local_now);
  return {found->second.write.allocated.tokens_milli_units(),
          found->second.write.burst.tokens_milli_units(),
          found->second.write.burst.depth_milli_units()};
}

int64_t NodeAdmission::node_read_available(sim::SimTime local_now) {
  node_read_.refill(local_now);
  return node_read_.tokens_milli_units();
}

int64_t NodeAdmission::node_write_available(sim::SimTime local_now) {
  node_write_.refill(local_now);
  return node_write_.tokens_milli_units();
}

}  // namespace dynasim::model
