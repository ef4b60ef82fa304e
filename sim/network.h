// The simulated network between hosts: per-link latency and bandwidth, and the network faults a
// game day injects (loss, duplication, reordering, partitions, clogging).
//
// What it models, and why:
// - Each host has one egress serialiser, like a NIC: a message's transmission starts when the
//   host's previous transmission ends and takes size_bytes / bandwidth. A burst from one host is
//   therefore spread out in time, which capacity planning needs; two hosts never slow each other
//   (ingress contention, "incast", is not modelled).
// - After transmission, the message propagates for a one-way latency drawn from the link's
//   distribution. Links inside an AZ and links between AZs have separate defaults (see
//   NetworkOptions), since a Paxos write quorum spans AZs and pays the cross-AZ figure.
// - With fifo_links (the default), a directed host pair behaves like a TCP connection: a message is
//   never delivered before one sent earlier on the same link. The reorder fault is the one way
//   around that: a picked message gets extra delay and is exempt from the ordering, so it can
//   overtake earlier messages and be overtaken by later ones.
// - Loss and duplication are per message. A lost message still occupies the sender's serialiser
//   (the bytes left the NIC); a duplicate is a second copy with its own latency draw.
// - Partitions are rules in a table ordered by id, so healing one leaves the others in place. A
//   message is checked at send time (a message sent across a cut is dropped) and again at delivery
//   time (a cut raised while the message was in flight drops it too, as a dead switch would).
// - Clogging stalls a host or a directed link without losing anything: messages wait in order
//   until the clog ends, like a TCP connection whose peer stops reading. A message that arrives
//   while its link is clogged waits too. Clogs only ever extend.
// - A message from a host to itself takes a fixed loopback latency and sees no network fault: it
//   never touches a NIC or a switch.
//
// The receiver (the World) decides what a delivery means, for instance that a powered-off host
// drops it; it is called only for messages that survive the network. The network draws every
// random number from one stream, simulation.random_stream("net").
//
// Every queue is bounded: all messages held by the network (in flight, waiting for a clog, waiting
// for the serialiser) share one slot table of at most max_in_flight entries. A message that finds
// it full is dropped and counted, as an overflowing switch buffer drops packets.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "sim/distribution.h"
#include "sim/event_queue.h"
#include "sim/ids.h"
#include "sim/message.h"
#include "sim/random.h"
#include "sim/simulation.h"
#include "sim/time.h"

namespace dynasim::sim {

// Implemented by the World: receives every message that survives the network.
class NetworkReceiver {
 public:
  virtual void deliver(Address from, Address to, const Message& message) = 0;

 protected:
  ~NetworkReceiver() = default;
};

struct LinkOptions {
  DistributionSpec one_way_latency_ns;
  // Serialisation rate at the sender. REQUIRES: > 0 (infinity means "no bandwidth limit").
  double bandwidth_bytes_per_second = 0;
};

// Defaults. Sources:
// - Intra-AZ latency: ping RTTs between EC2 instances in one AZ averaged 0.26 to 0.41 ms
//   (O. Solomianik, "Network Latency Inside And Across Amazon EC2 Availability Zones", 2009,
//   orensol.com), and the data centres of one AZ are within 250 us of each other (J. Hamilton,
//   AWS re:Invent 2014 SPOT301, as reported by blog.dshr.org). So a one-way median of 125 us.
// - Cross-AZ latency: AZs are "<2ms apart, usually <1ms" (J. Hamilton, AWS re:Invent 2014
//   SPOT301, @18:00; gist.github.com/rjhintz/a27d0ef48121a410e714); measured RTTs of 0.89 to
//   1.25 ms (Solomianik 2009) and an average of 0.82 ms with rare spikes to 12.3 ms (L. Liesis,
//   "What is AWS EC2 cross availability zones network lag vs inside same zone?", 2022). So a
//   one-way median of 400 us (RTT about 0.8 ms); with sigma 0.3 about 0.1% of one-way trips
//   exceed 1 ms. The log-normal shape and the floors and ceilings are our assumption.
// - Bandwidth: "single-flow traffic is limited to 5 Gbps when instances are not in the same
//   cluster placement group", and up to 10 Gbps inside one (Amazon EC2 User Guide, "Amazon EC2
//   instance network bandwidth"). We use 5 Gbps across AZs and 10 Gbps inside an AZ; treating a
//   whole AZ like a placement group is our assumption.
// - Reorder window and loopback latency: our assumption.
struct NetworkOptions {
  LinkOptions intra_az = default_intra_az();
  LinkOptions cross_az = default_cross_az();

  double loss_probability = 0;
  double duplicate_probability = 0;
  // A reordered message gets extra delay uniform in [0, reorder_window] and may overtake.
  double reorder_probability = 0;
  Duration reorder_window = milliseconds(1);
  // Like TCP: per directed host pair, a message is never delivered before one sent earlier on the
  // same link, unless the reorder fault picks it.
  bool fifo_links = true;
  // Bound on the messages the network holds at once (in flight plus waiting for a clog).
  uint32_t max_in_flight = 1u << 22;

  static LinkOptions default_intra_az();
  static LinkOptions default_cross_az();
};

// Names one network partition rule (not a DynamoDB key-range partition), as returned by
// partition(), isolate_host() and isolate_az(), and passed to heal().
using PartitionId = Id<struct NetworkPartitionTag>;

class Network final : public EventSink {
 public:
  static constexpr EventKind kNetDeliver = event_kind("net.deliver");
  // Ends the clog of one directed link: releases what waited on it, in order.
  static constexpr EventKind kNetRelease = event_kind("net.release");
  // Host-local delivery: no NIC, no switch, so no network fault applies. Our assumption.
  static constexpr Duration kLoopbackLatency = microseconds(5);

  struct Stats {
    uint64_t sent = 0;               // send() calls, loopback included
    uint64_t delivered = 0;          // receiver calls, duplicates included
    uint64_t dropped_partition = 0;  // at send time or at delivery time
    uint64_t dropped_loss = 0;
    uint64_t dropped_overflow = 0;  // the slot table was full (max_in_flight)
    uint64_t duplicated = 0;        // extra copies made
    uint64_t reordered = 0;         // messages the reorder fault picked
    uint64_t clog_delayed = 0;      // messages that waited for a clog (each counted once)
    uint64_t bytes_sent = 0;        // size_bytes of every send() call
  };

  // REQUIRES: receiver != nullptr; probabilities in [0, 1]; bandwidths > 0; max_in_flight > 0.
  Network(Simulation& simulation, NetworkOptions options, NetworkReceiver* receiver);
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // REQUIRES: hosts are added in id order, 0, 1, 2, ...; az is valid.
  void add_host(HostId host, AzId az);
  uint32_t host_count() const { return static_cast<uint32_t>(hosts_.size()); }

  // Takes the message into the network. It reaches the receiver later, or never (partition,
  // loss, overflow). REQUIRES: both hosts were added.
  void send(Address from, Address to, Message message);

  // Faults: partitions. Each call adds a rule and returns its id; rules stack.
  // Cuts side_a -> side_b, and side_b -> side_a too when symmetric. REQUIRES: the sides are
  // disjoint and name added hosts.
  PartitionId partition(std::vector<HostId> side_a, std::vector<HostId> side_b, bool symmetric);
  // Cuts every link to and from the host.
  PartitionId isolate_host(HostId host);
  // Cuts every link that crosses the AZ's boundary; links inside the AZ stay up.
  PartitionId isolate_az(AzId az);
  // Removes one rule. Returns false if it was not active (already healed, or never made).
  bool heal(PartitionId id);
  void heal_all();
  uint32_t active_partitions() const { return static_cast<uint32_t>(rules_.size()); }

  // Faults: clogging. Messages from and to the host (or on the directed link) wait, queued and in
  // order, until the clog ends. A clog never shortens an earlier one. REQUIRES: duration >= 0.
  void clog_host(HostId host, Duration for_how_long);
  void clog_link(HostId from, HostId to, Duration for_how_long);

  // Per directed link, replaces the intra-AZ or cross-AZ options (e.g. a slow or narrow path).
  void set_link_override(HostId from, HostId to, LinkOptions options);
  void clear_link_override(HostId from, HostId to);

  // REQUIRES: probability in [0, 1].
  void set_loss_probability(double probability);
  void set_duplicate_probability(double probability);
  void set_reorder_probability(double probability);

  // Whether the partition rules let a message through from `from` to `to` right now. Clogs and
  // random faults are not considered. A host can always reach itself.
  bool can_reach(HostId from, HostId to) const;

  const Stats& stats() const { return stats_; }
  const NetworkOptions& options() const { return options_; }
  // Messages the network holds now (in flight or waiting for a clog).
  uint32_t messages_held() const { return slots_in_use_; }

  void on_event(const Event& event) override;

 private:
  enum class SlotState : uint8_t { kFree, kWaitingToSend, kInFlight, kWaitingToDeliver };

  struct Slot {
    Address from;
    Address to;
    Message message;
    SlotState state = SlotState::kFree;
    bool clog_counted = false;
  };

  struct HostState {
    AzId az;
    SimTime egress_busy_until;  // when the serialiser finishes its last transmission
    SimTime clogged_until;
  };

  // One directed host pair. Created on first use.
  struct LinkState {
    SimTime last_fifo_delivery;  // latest delivery time handed to an in-order message
    SimTime clogged_until;
    std::optional<LinkOptions> override_options;
    // Messages that wait for the clog, in send order. Everything in waiting_to_deliver was
    // transmitted, so it was sent before everything in waiting_to_send.
    std::deque<uint32_t> waiting_to_deliver;
    std::deque<uint32_t> waiting_to_send;
    bool release_scheduled = false;
  };

  enum class RuleKind : uint8_t { kSides, kIsolateHost, kIsolateAz };
  enum class Side : uint8_t { kNone, kA, kB };

  struct PartitionRule {
    PartitionId id;
    RuleKind kind;
    bool symmetric = true;
    HostId host;             // kIsolateHost
    AzId az;                 // kIsolateAz
    std::vector<Side> side;  // kSides: indexed by host id; hosts added later are on no side
  };

  static uint64_t link_key(HostId from, HostId to) {
    return (uint64_t{from.value} << 32) | to.value;
  }
  static uint64_t message_digest(const Slot& slot);

  bool rule_cuts(const PartitionRule& rule, HostId from, HostId to) const;
  const LinkOptions& link_options(HostId from, HostId to, const LinkState& link) const;
  LinkState& link_state(HostId from, HostId to);
  SimTime clog_end(HostId from, HostId to, const LinkState& link) const;
  bool link_blocked(HostId from, HostId to, const LinkState& link) const;
  void check_host(HostId host) const;
  static void check_probability(double probability);
  static void check_link_options(const LinkOptions& options);

  // Slot table: a vector plus a free list, so a pending event names its message by index.
  std::optional<uint32_t> allocate_slot(Address from, Address to, Message message);
  void free_slot(uint32_t slot);

  void transmit(uint32_t slot, LinkState& link);
  void schedule_delivery(uint32_t slot, SimTime when);
  void on_deliver(uint32_t slot);
  void deliver_now(uint32_t slot);
  void wait_for_clog(uint32_t slot, HostId from, HostId to, LinkState& link,
                     std::deque<uint32_t>& queue);
  void schedule_release(HostId from, HostId to, LinkState& link);
  void on_release(uint64_t key);
  PartitionId add_rule(PartitionRule rule);

  Simulation& simulation_;
  NetworkOptions options_;
  NetworkReceiver* receiver_;
  Random random_;

  std::vector<HostState> hosts_;
  // The directed links made so far, in the order they were first used (a deque: references stay
  // valid as it grows); link_rows_[from][to] is a link's position plus one, 0 when not made.
  std::deque<LinkState> links_;
  std::vector<std::vector<uint32_t>> link_rows_;
  std::vector<PartitionRule> rules_;  // ascending id
  uint32_t next_partition_id_ = 0;

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  uint32_t slots_in_use_ = 0;

  Stats stats_;
};

}  // namespace dynasim::sim
