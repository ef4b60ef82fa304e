#include "sim/network.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "sim/check.h"

namespace dynasim::sim {

namespace {

uint64_t mix(uint64_t hash, uint64_t word) {
  return splitmix64(hash ^ word);
}

// 2^62 ns is about 146 years: a transmission longer than that is a configuration error.
constexpr double kMaxTransmissionNs = 4.6e18;

Duration transmission_time(uint32_t size_bytes, double bandwidth_bytes_per_second) {
  const double ns = std::ceil(static_cast<double>(size_bytes) * 1e9 / bandwidth_bytes_per_second);
  DYN_ASSERT_MSG(ns >= 0 && ns < kMaxTransmissionNs, "transmission time out of range");
  return Duration(static_cast<int64_t>(ns));
}

}  // namespace

LinkOptions NetworkOptions::default_intra_az() {
  // Sources in network.h: one-way median 125 us; 10 Gbps.
  LinkOptions options;
  options.one_way_latency_ns = DistributionSpec::lognormal(125'000, 0.3);
  options.one_way_latency_ns.minimum = 50'000;
  options.one_way_latency_ns.maximum = 10'000'000;
  options.bandwidth_bytes_per_second = 10e9 / 8;
  return options;
}

LinkOptions NetworkOptions::default_cross_az() {
  // Sources in network.h: one-way median 400 us, rare spikes of several ms; 5 Gbps.
  LinkOptions options;
  options.one_way_latency_ns = DistributionSpec::lognormal(400'000, 0.3);
  options.one_way_latency_ns.minimum = 200'000;
  options.one_way_latency_ns.maximum = 20'000'000;
  options.bandwidth_bytes_per_second = 5e9 / 8;
  return options;
}

Network::Network(Simulation& simulation, NetworkOptions options, NetworkReceiver* receiver)
    : simulation_(simulation),
      options_(std::move(options)),
      receiver_(receiver),
      random_(simulation.random_stream("net")) {
  DYN_ASSERT(receiver_ != nullptr);
  check_link_options(options_.intra_az);
  check_link_options(options_.cross_az);
  check_probability(options_.loss_probability);
  check_probability(options_.duplicate_probability);
  check_probability(options_.reorder_probability);
  DYN_ASSERT(options_.reorder_window >= Duration(0));
  DYN_ASSERT(options_.max_in_flight > 0);
}

void Network::check_probability(double probability) {
  DYN_ASSERT_MSG(probability >= 0.0 && probability <= 1.0, "a probability must be in [0, 1]");
}

void Network::check_link_options(const LinkOptions& options) {
  DYN_ASSERT_MSG(options.bandwidth_bytes_per_second > 0, "link bandwidth must be positive");
}

void Network::check_host(HostId host) const {
  DYN_ASSERT_MSG(host.valid() && host.value < hosts_.size(), "unknown host");
}

void Network::add_host(HostId host, AzId az) {
  DYN_ASSERT_MSG(host.value == hosts_.size(), "hosts must be added in id order");
  DYN_ASSERT(az.valid());
  // Host ids share a 64-bit link key with their peer, 32 bits each.
  DYN_ASSERT(host.valid());
  hosts_.push_back(HostState{az, SimTime::zero(), SimTime::zero()});
}

// ---- Sending ----------------------------------------------------------------------------------

void Network::send(Address from, Address to, Message message) {
  check_host(from.host);
  check_host(to.host);
  ++stats_.sent;
  stats_.bytes_sent += message.size_bytes;

  if (from.host == to.host) {
    const std::optional<uint32_t> slot = allocate_slot(from, to, std::move(message));
    if (slot.has_value()) schedule_delivery(*slot, simulation_.now() + kLoopbackLatency);
    return;
  }
  // A cut route never reaches the NIC's wire: the message costs no bandwidth.
  if (!can_reach(from.host, to.host)) {
    ++stats_.dropped_partition;
    return;
  }
  LinkState& link = link_state(from.host, to.host);
  const std::optional<uint32_t> slot = allocate_slot(from, to, std::move(message));
  if (!slot.has_value()) return;
  // Behind a clog, or behind messages still waiting for one: keep the link's order.
  if (clog_end(from.host, to.host, link) > simulation_.now() || !link.waiting_to_send.empty()) {
    wait_for_clog(*slot, from.host, to.host, link, link.waiting_to_send);
    return;
  }
  transmit(*slot, link);
}

void Network::transmit(uint32_t slot, LinkState& link) {
  const HostId from = slots_[slot].from.host;
  const HostId to = slots_[slot].to.host;
  const LinkOptions& options = link_options(from, to, link);

  // The sender's serialiser: one transmission at a time, in the order they were handed over.
  HostState& sender = hosts_[from.value];
  const SimTime start = std::max(simulation_.now(), sender.egress_busy_until);
  const SimTime transmitted = start + transmission_time(slots_[slot].message.size_bytes,
                                                        options.bandwidth_bytes_per_second);
  sender.egress_busy_until = transmitted;

  // Random faults draw only when enabled, so a fault-free run spends draws on latency alone.
  if (options_.loss_probability > 0 && random_.bernoulli(options_.loss_probability)) {
    ++stats_.dropped_loss;
    free_slot(slot);
    return;
  }

  const auto place = [&](uint32_t copy) {
    SimTime when = transmitted + options.one_way_latency_ns.sample_duration(random_);
    if (options_.reorder_probability > 0 && random_.bernoulli(options_.reorder_probability)) {
      // Exempt from the link's order both ways: it neither waits for earlier messages nor holds
      // back later ones.
      ++stats_.reordered;
      when += Duration(random_.uniform_int(0, options_.reorder_window.ns));
    } else if (options_.fifo_links) {
      when = std::max(when, link.last_fifo_delivery);
      link.last_fifo_delivery = when;
    }
    schedule_delivery(copy, when);
  };

  const bool duplicate =
      options_.duplicate_probability > 0 && random_.bernoulli(options_.duplicate_probability);
  // Copy before place(): allocate_slot() may grow slots_. The body is shared, not copied.
  Message copy_of_message;
  if (duplicate) copy_of_message = slots_[slot].message;
  place(slot);
  if (duplicate) {
    const Address from_address = slots_[slot].from;
    const Address to_address = slots_[slot].to;
    const std::optional<uint32_t> copy =
        allocate_slot(from_address, to_address, std::move(copy_of_message));
    if (copy.has_value()) {
      ++stats_.duplicated;
      place(*copy);
    }
  }
}

void Network::schedule_delivery(uint32_t slot, SimTime when) {
  Slot& entry = slots_[slot];
  entry.state = SlotState::kInFlight;
  simulation_.schedule_at(when, this, kNetDeliver, entry.to.host.value, slot);
}

// ---- Delivering -------------------------------------------------------------------------------

void Network::on_event(const Event& event) {
  if (event.kind->id == kNetDeliver.id) {
    DYN_ASSERT(event.payload < slots_.size());
    on_deliver(static_cast<uint32_t>(event.payload));
  } else if (event.kind->id == kNetRelease.id) {
    on_release(event.payload);
  } else {
    DYN_ASSERT_MSG(false, "the network got an event it did not schedule");
  }
}

void Network::on_deliver(uint32_t slot) {
  const Slot& entry = slots_[slot];
  DYN_ASSERT(entry.state == SlotState::kInFlight);
  // The payload is only a slot number: fold what it stands for into the trace fingerprint.
  simulation_.fold_digest(message_digest(entry));
  const HostId from = entry.from.host;
  const HostId to = entry.to.host;
  if (from == to) {
    deliver_now(slot);
    return;
  }
  LinkState& link = link_state(from, to);
  // Arrived while the link is clogged, or behind messages that wait: wait in order.
  if (clog_end(from, to, link) > simulation_.now() || !link.waiting_to_deliver.empty()) {
    wait_for_clog(slot, from, to, link, link.waiting_to_deliver);
    return;
  }
  deliver_now(slot);
}

void Network::deliver_now(uint32_t slot) {
  // Take the message out first: the receiver may send, which can grow slots_.
  const Address from = slots_[slot].from;
  const Address to = slots_[slot].to;
  const Message message = std::move(slots_[slot].message);
  free_slot(slot);
  if (from.host != to.host && !can_reach(from.host, to.host)) {
    ++stats_.dropped_partition;
    return;
  }
  ++stats_.delivered;
  receiver_->deliver(from, to, message);
}

// ---- Clogging ---------------------------------------------------------------------------------

void Network::clog_host(HostId host, Duration for_how_long) {
  check_host(host);
  DYN_ASSERT(for_how_long >= Duration(0));
  SimTime& until = hosts_[host.value].clogged_until;
  until = std::max(until, simulation_.now() + for_how_long);
}

void Network::clog_link(HostId from, HostId to, Duration for_how_long) {
  check_host(from);
  check_host(to);
  DYN_ASSERT_MSG(from != to, "a host's loopback cannot be clogged");
  DYN_ASSERT(for_how_long >= Duration(0));
  SimTime& until = link_state(from, to).clogged_until;
  until = std::max(until, simulation_.now() + for_how_long);
}

SimTime Network::clog_end(HostId from, HostId to, const LinkState& link) const {
  return std::max(
      {hosts_[from.value].clogged_until, hosts_[to.value].clogged_until, link.clogged_until});
}

void Network::wait_for_clog(uint32_t slot, HostId from, HostId to, LinkState& link,
                            std::deque<uint32_t>& queue) {
  Slot& entry = slots_[slot];
  entry.state =
      &queue == &link.waiting_to_send ? SlotState::kWaitingToSend : SlotState::kWaitingToDeliver;
  if (!entry.clog_counted) {
    entry.clog_counted = true;
    ++stats_.clog_delayed;
  }
  queue.push_back(slot);
  schedule_release(from, to, link);
}

void Network::schedule_release(HostId from, HostId to, LinkState& link) {
  if (link.release_scheduled) return;  // it re-checks the clog when it runs
  link.release_scheduled = true;
  const uint64_t key = link_key(from, to);
  const SimTime when = std::max(simulation_.now(), clog_end(from, to, link));
  simulation_.schedule_at(when, this, kNetRelease, from.value, key);
}

void Network::on_release(uint64_t key) {
  const HostId from(static_cast<uint32_t>(key >> 32));
  const HostId to(static_cast<uint32_t>(key));
  LinkState& link = link_state(from, to);  // made when the release was scheduled
  DYN_ASSERT(link.release_scheduled);
  link.release_scheduled = false;

  // Arrived messages first: they were all sent before anything still waiting to be sent. The
  // receiver may clog the link again, so the clog is checked before each message.
  while (!link.waiting_to_deliver.empty()) {
    if (clog_end(from, to, link) > simulation_.now()) {
      schedule_release(from, to, link);
      return;
    }
    const uint32_t slot = link.waiting_to_deliver.front();
    link.waiting_to_deliver.pop_front();
    DYN_ASSERT(slots_[slot].state == SlotState::kWaitingToDeliver);
    simulation_.fold_digest(message_digest(slots_[slot]));
    deliver_now(slot);
  }
  while (!link.waiting_to_send.empty()) {
    if (clog_end(from, to, link) > simulation_.now()) {
      schedule_release(from, to, link);
      return;
    }
    const uint32_t slot = link.waiting_to_send.front();
    link.waiting_to_send.pop_front();
    DYN_ASSERT(slots_[slot].state == SlotState::kWaitingToSend);
    // A partition raised during the clog drops the message now; it would never leave the host.
    if (!can_reach(from, to)) {
      ++stats_.dropped_partition;
      free_slot(slot);
      continue;
    }
    transmit(slot, link);
  }
}

// ---- Partitions -------------------------------------------------------------------------------

PartitionId Network::partition(std::vector<HostId> side_a, std::vector<HostId> side_b,
                               bool symmetric) {
  PartitionRule rule;
  rule.kind = RuleKind::kSides;
  rule.symmetric = symmetric;
  rule.side.assign(hosts_.size(), Side::kNone);
  for (HostId host : side_a) {
    check_host(host);
    rule.side[host.value] = Side::kA;
  }
  for (HostId host : side_b) {
    check_host(host);
    DYN_ASSERT_MSG(rule.side[host.value] != Side::kA, "a host is on both sides of a partition");
    rule.side[host.value] = Side::kB;
  }
  return add_rule(std::move(rule));
}

PartitionId Network::isolate_host(HostId host) {
  check_host(host);
  PartitionRule rule;
  rule.kind = RuleKind::kIsolateHost;
  rule.host = host;
  return add_rule(std::move(rule));
}

PartitionId Network::isolate_az(AzId az) {
  DYN_ASSERT(az.valid());
  PartitionRule rule;
  rule.kind = RuleKind::kIsolateAz;
  rule.az = az;
  return add_rule(std::move(rule));
}

PartitionId Network::add_rule(PartitionRule rule) {
  DYN_ASSERT(next_partition_id_ != UINT32_MAX);
  rule.id = PartitionId(next_partition_id_++);
  rules_.push_back(std::move(rule));  // ids only grow, so the table stays in id order
  return rules_.back().id;
}

bool Network::heal(PartitionId id) {
  const auto found =
      std::lower_bound(rules_.begin(), rules_.end(), id,
                       [](const PartitionRule& rule, PartitionId key) { return rule.id < key; });
  if (found == rules_.end() || found->id != id) return false;
  rules_.erase(found);
  return true;
}

void Network::heal_all() {
  rules_.clear();
}

bool Network::rule_cuts(const PartitionRule& rule, HostId from, HostId to) const {
  switch (rule.kind) {
    case RuleKind::kSides: {
      const Side from_side = from.value < rule.side.size() ? rule.side[from.value] : Side::kNone;
      const Side to_side = to.value < rule.side.size() ? rule.side[to.value] : Side::kNone;
      if (from_side == Side::kA && to_side == Side::kB) return true;
      return rule.symmetric && from_side == Side::kB && to_side == Side::kA;
    }
    case RuleKind::kIsolateHost:
      return (from == rule.host) != (to == rule.host);
    case RuleKind::kIsolateAz:
      return (hosts_[from.value].az == rule.az) != (hosts_[to.value].az == rule.az);
  }
  return false;
}

bool Network::can_reach(HostId from, HostId to) const {
  check_host(from);
  check_host(to);
  if (from == to) return true;
  for (const PartitionRule& rule : rules_) {
    if (rule_cuts(rule, from, to)) return false;
  }
  return true;
}

// ---- Options ----------------------------------------------------------------------------------

void Network::set_link_override(HostId from, HostId to, LinkOptions options) {
  check_host(from);
  check_host(to);
  DYN_ASSERT_MSG(from != to, "loopback has no link options");
  check_link_options(options);
  link_state(from, to).override_options = std::move(options);
}

void Network::clear_link_override(HostId from, HostId to) {
  check_host(from);
  check_host(to);
  link_state(from, to).override_options.reset();
}

void Network::set_loss_probability(double probability) {
  check_probability(probability);
  options_.loss_probability = probability;
}

void Network::set_duplicate_probability(double probability) {
  check_probability(probability);
  options_.duplicate_probability = probability;
}

void Network::set_reorder_probability(double probability) {
  check_probability(probability);
  options_.reorder_probability = probability;
}

const LinkOptions& Network::link_options(HostId from, HostId to, const LinkState& link) const {
  if (link.override_options.has_value()) return *link.override_options;
  return hosts_[from.value].az == hosts_[to.value].az ? options_.intra_az : options_.cross_az;
}

Network::LinkState& Network::link_state(HostId from, HostId to) {
  // Every message looks its link up: a row per sending host, indexed by the receiving host, of
  // positions in links_ (0: not made yet). Rows grow to the largest receiver each host sent to.
  if (from.value >= link_rows_.size()) link_rows_.resize(from.value + 1);
  std::vector<uint32_t>& row = link_rows_[from.value];
  if (to.value >= row.size()) row.resize(to.value + 1, 0);
  if (row[to.value] == 0) {
    links_.emplace_back();
    row[to.value] = static_cast<uint32_t>(links_.size());
  }
  return links_[row[to.value] - 1];
}

// ---- Slot table -------------------------------------------------------------------------------

std::optional<uint32_t> Network::allocate_slot(Address from, Address to, Message message) {
  if (slots_in_use_ >= options_.max_in_flight) {
    ++stats_.dropped_overflow;
    return std::nullopt;
  }
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& entry = slots_[slot];
  DYN_ASSERT(entry.state == SlotState::kFree);
  entry.from = from;
  entry.to = to;
  entry.message = std::move(message);
  entry.state = SlotState::kInFlight;
  entry.clog_counted = false;
  ++slots_in_use_;
  return slot;
}

void Network::free_slot(uint32_t slot) {
  Slot& entry = slots_[slot];
  DYN_ASSERT(entry.state != SlotState::kFree);
  entry.state = SlotState::kFree;
  entry.message = Message();  // drop the shared body now, not when the slot is reused
  free_slots_.push_back(slot);
  DYN_ASSERT(slots_in_use_ > 0);
  --slots_in_use_;
}

uint64_t Network::message_digest(const Slot& slot) {
  uint64_t hash = mix(0x6e65742e64656c69ULL, slot.message.type);
  hash = mix(hash, slot.message.size_bytes);
  hash = mix(hash, slot.message.digest);
  hash = mix(hash, (uint64_t{slot.from.host.value} << 32) | slot.from.port);
  return mix(hash, (uint64_t{slot.to.host.value} << 32) | slot.to.port);
}

}  // namespace dynasim::sim
