// Storage-side admission control: the token buckets a storage node keeps for its partitions and
// for itself, and the capacity reports its peers send so that a leader can judge burst writes.
//
// Follows P22 section 4.1.1 (bursting): each partition has an *allocated* and a *burst* token
// bucket and each storage node has one *node-level* bucket. A request that finds tokens in the
// partition's allocated bucket is admitted and charged to both the partition and the node. Once
// allocated tokens are exhausted, a request may burst only if both the burst bucket and the node
// bucket have tokens. Reads are admitted on the local buckets alone; a write that bursts also needs
// node-level room on the partition's other replicas, which the leader learns from the reports each
// member's node sends it periodically. Burst capacity is the partition's unused capacity of up to
// 300 seconds (P22 section 4.1.1; Developer Guide, bp-partition-key-design: "up to five minutes
// (300 seconds) of unused read and write capacity"). A partition's allocation is capped at
// 3,000 RCU and 1,000 WCU (Developer Guide, bp-partition-key-design; GuidelinesForTables, 2017).
//
// Reads and writes have separate buckets (RCU and WCU) everywhere. Tokens are integer milli
// capacity units so every machine and compiler computes the same balances; docs/admission.md
// describes the whole design with the source of every number.
#pragma once

#include <cstdint>
#include <map>
#include <span>

#include "model/item.h"
#include "model/storage_protocol.h"
#include "sim/ids.h"
#include "sim/message.h"
#include "sim/time.h"

namespace dynasim::model {

// One capacity unit in milli units. An eventually consistent read's half unit is 500.
inline constexpr int64_t kMilliUnitsPerUnit = 1000;
inline constexpr int64_t to_milli_units(CapacityUnits units) {
  return static_cast<int64_t>(units.half_units) * (kMilliUnitsPerUnit / 2);
}

// The per-partition ceiling (Developer Guide, bp-partition-key-design: a partition "will strive
// to deliver the full capacity of 3,000 RCU and 1,000 WCU"; 2017 GuidelinesForTables: "maximum of
// 3,000 read capacity units or 1,000 write capacity units").
inline constexpr int64_t kPartitionMaxReadUnitsPerSecond = 3000;
inline constexpr int64_t kPartitionMaxWriteUnitsPerSecond = 1000;

// Burst holds up to 300 seconds of the partition's allocated rate (P22 section 4.1.1).
inline constexpr sim::Duration kBurstWindow = sim::seconds(300);

// Message types of admission on the wire (sim::Message::type; 120-129 are admission's).
enum class AdmissionMessageType : uint32_t {
  kNodeCapacityReport = 120,  // a storage node to the nodes that host its partitions' replicas
};

// ---------------------------------------------------------------------------------------------
// TokenBucket: `tokens` milli units, refilled lazily at `refill_milli_units_per_second` up to
// `depth_milli_units`.
//
// Time is the caller's local clock, which can step backwards. A refill with elapsed < 0 adds
// nothing and re-anchors the bucket at the earlier reading; later refills count from there. A
// step back therefore loses the time between the last refill and the step and never credits any
// span twice. Refill is exact: the fraction of a milli unit left over by integer division is kept
// (`carry`) and paid out by later refills.
//
// Invariant, asserted at the end of every method: 0 <= tokens <= depth, 0 <= carry < 1e9.
struct TokenBucketOptions {
  // Planted bug for TokenBucketDeathTest. Never set outside tests. Refill ignores the depth (the
  // invariant assertion must catch it).
  bool plant_refill_ignores_depth = false;
};

class TokenBucket {
 public:
  using Options = TokenBucketOptions;

  TokenBucket() = default;
  // Starts full. REQUIRES: rate >= 0, depth >= 0.
  TokenBucket(int64_t refill_milli_units_per_second, int64_t depth_milli_units,
              sim::SimTime local_now, Options options = {});

  // Brings the bucket to `local_now`. Returns the milli units the refill produced beyond the
  // depth (what a full bucket could not hold), so a caller can pass unused capacity on.
  int64_t refill(sim::SimTime local_now);

  int64_t tokens_milli_units() const { return tokens_; }
  int64_t depth_milli_units() const { return depth_; }
  int64_t refill_milli_units_per_second() const { return rate_; }

  // REQUIRES: 0 <= amount <= tokens.
  void take(int64_t amount_milli_units);
  // Takes min(amount, tokens); returns what was taken.
  int64_t take_up_to(int64_t amount_milli_units);
  // Adds up to the depth; returns the part that did not fit. REQUIRES: amount >= 0.
  int64_t add(int64_t amount_milli_units);

  // Allocation changes. The bucket is refilled to `local_now` at the old rate first, so the old
  // rate applies exactly up to the change. A smaller depth drops the tokens above it.
  void set_refill_rate(int64_t refill_milli_units_per_second, sim::SimTime local_now);
  void set_depth(int64_t depth_milli_units, sim::SimTime local_now);

 private:
  void check() const;

  int64_t rate_ = 0;
  int64_t depth_ = 0;
  int64_t tokens_ = 0;
  int64_t carry_ = 0;  // milli unit * ns / 1e9 owed by the last refill's integer division
  sim::SimTime last_refill_;
  Options options_;
};

// ---------------------------------------------------------------------------------------------
// Capacity reports: node-level room, from a storage node to the leaders that need it.

// kNodeCapacityReport. A storage node sends it every AdmissionOptions::report_interval to every
// node that hosts a replica of a partition it hosts. `incarnation` grows each time the node
// process starts (e.g. its restart count); `sequence` grows with each report of one incarnation.
// The available figures are the node-level buckets' tokens at sending time.
struct NodeCapacityReport final : sim::MessageBody {
  sim::Address reporter;
  uint64_t incarnation = 0;
  uint64_t sequence = 0;
  int64_t read_available_milli_units = 0;
  int64_t write_available_milli_units = 0;
};

// The wire form: type kNodeCapacityReport, size and digest set from the content.
sim::Message make_capacity_report_message(const NodeCapacityReport& report);

// The leader's view of its peers' node-level write room, built from their reports.
//
// Per peer it keeps the newest report (by (incarnation, sequence): a delayed or duplicated older
// report never replaces a newer one), when it arrived on the local clock, and how much the local
// node has charged against that peer since (every burst write admitted on a peer's room is
// debited, so many burst writes cannot all spend one report's room). A peer's room is the
// reported figure minus the debits. A report older than `staleness_bound`, or one that seems to
// have arrived in the future after the local clock stepped back, counts as no room.
class PeerCapacityView {
 public:
  struct Options {
    sim::Duration staleness_bound = sim::seconds(3);
    uint32_t max_peers = 4096;
    // Planted bug for PeerCheckProperty. Never set outside tests. Stale reports count as fresh.
    bool plant_ignore_staleness = false;
  };

  PeerCapacityView() = default;
  explicit PeerCapacityView(Options options) : options_(options) {}

  // Records a report received at `local_now`. False when it is older than the one kept or the
  // view is full of fresher peers.
  bool on_report(const NodeCapacityReport& report, sim::SimTime local_now);

  // The write room of `peer` at `local_now` in milli units; 0 when unknown or stale.
  int64_t write_room_milli_units(sim::Address peer, sim::SimTime local_now) const;
  // Debits `amount` from the peer's room until its next report.
  void charge_write(sim::Address peer, int64_t amount_milli_units);

  void forget(sim::Address peer) { peers_.erase(peer); }
  size_t peer_count() const { return peers_.size(); }

 private:
  struct PeerRecord {
    uint64_t incarnation = 0;
    uint64_t sequence = 0;
    int64_t write_available_milli_units = 0;
    int64_t charged_milli_units = 0;
    sim::SimTime received;
  };
  bool fresh(const PeerRecord& record, sim::SimTime local_now) const;

  Options options_;
  std::map<sim::Address, PeerRecord> peers_;
};

// How many of a partition's other replicas must report room for a burst write, given how many
// other full replicas it has. The write commits once a write quorum (a majority of all replicas,
// P22 section 3 and 6.1: two of three) has persisted it; the leader is one of the quorum and its
// own node bucket is checked locally, so quorum - 1 others must be able to take the extra write.
// With three replicas that is one of the two others. A replica beyond the quorum that lacks room
// falls behind and catches up later; it does not hold up the write.
uint32_t peers_needed_for_burst_write(uint32_t other_replicas);

// ---------------------------------------------------------------------------------------------
// NodeAdmission: one storage node's buckets and its view of its peers.

enum class AdmissionDecision : uint8_t {
  kAdmitted,              // from the partition's allocated tokens
  kAdmittedUsingBurst,    // allocated tokens were short; burst and node tokens paid
  kThrottledByPartition,  // allocated and burst tokens were short
  kThrottledByNode,       // burst was possible but the node-level bucket was short
  kThrottledByPeers,      // a burst write lacked reported room on a quorum of other replicas
  kUnknownPartition,      // no allocation was set for this partition on this node
};
const char* to_string(AdmissionDecision decision);
inline bool admitted(AdmissionDecision decision) {
  return decision == AdmissionDecision::kAdmitted ||
         decision == AdmissionDecision::kAdmittedUsingBurst;
}

struct AdmissionOptions {
  // The node's own throughput, shared by all its replicas. P22 gives no figure: our assumption,
  // a node that can serve a few dozen partitions at their ceiling.
  int64_t node_read_units_per_second = 60'000;
  int64_t node_write_units_per_second = 20'000;
  // Depth of the node bucket, in seconds of its rate. Our assumption: one second, so the node
  // absorbs sub-second jitter but no sustained overload.
  int64_t node_depth_seconds = 1;
  // Depth of a partition's allocated bucket, in seconds of its rate. Our assumption: one second;
  // everything older than that which went unused is burst.
  int64_t allocated_depth_seconds = 1;
  // Burst depth: P22 section 4.1.1, 300 seconds of the allocated rate.
  sim::Duration burst_window = kBurstWindow;
  // Reports: our assumption, every second (P22 says only "periodically"), stale after three
  // intervals so two lost reports in a row do not stop bursting.
  sim::Duration report_interval = sim::seconds(1);
  sim::Duration staleness_bound = sim::seconds(3);
  uint32_t max_partitions = 20'000;  // P22 section 4.3: "thousands of partition replicas"
  uint32_t max_peers = 4096;

  // Planted bug for PartitionThroughputBound. Never set outside tests. The burst bucket is
  // unbounded (its depth ignores burst_window).
  bool plant_burst_ignores_depth = false;
  // Planted bug for PeerCheckProperty. Never set outside tests. Burst writes skip the peer check.
  bool plant_burst_write_skips_peer_check = false;
  // Planted bug for PeerCheckProperty. Never set outside tests. Stale reports count as fresh.
  bool plant_ignore_staleness = false;
};

// A partition's allocation: the table capacity's share for it (model/capacity_mode.h,
// allocate_to_partitions), in milli units per second. Capped at the partition ceiling when set.
struct PartitionAllocation {
  int64_t read_milli_units_per_second = 0;
  int64_t write_milli_units_per_second = 0;
  bool operator==(const PartitionAllocation&) const = default;
};

struct AdmissionStats {
  uint64_t read_admitted = 0;
  uint64_t read_admitted_using_burst = 0;
  uint64_t write_admitted = 0;
  uint64_t write_admitted_using_burst = 0;
  uint64_t throttled_by_partition = 0;
  uint64_t throttled_by_node = 0;
  uint64_t throttled_by_peers = 0;
  uint64_t unknown_partition = 0;
  int64_t read_admitted_milli_units = 0;
  int64_t write_admitted_milli_units = 0;
  uint64_t replicated_writes_charged = 0;
  uint64_t reports_sent = 0;
  uint64_t reports_accepted = 0;
  uint64_t reports_rejected = 0;
};

class NodeAdmission {
 public:
  // `self` is this node's address (it names the reporter in its reports); `incarnation` must
  // grow across restarts of the node process.
  NodeAdmission(AdmissionOptions options, sim::Address self, uint64_t incarnation,
                sim::SimTime local_now);

  // Sets (or adds) a partition's allocation, capped at the partition ceiling. New partitions
  // start with full allocated buckets and empty burst buckets. Changing the allocation keeps the
  // tokens (clipped to the new depths). False when the node already tracks max_partitions.
  bool set_allocation(GroupId group, PartitionAllocation allocation, sim::SimTime local_now);
  void remove_partition(GroupId group);
  PartitionAllocation allocation(GroupId group) const;

  // On each read a replica serves (eventual reads at any replica, strong reads at the leader).
  AdmissionDecision admit_read(GroupId group, CapacityUnits cost, sim::SimTime local_now);
  // On each write the leader is about to propose. `other_replicas`: the nodes of the partition's
  // other full replicas (not this node). On admission the cost is charged locally and, for a
  // burst write, debited from the peers whose room was counted.
  AdmissionDecision admit_write(GroupId group, CapacityUnits cost,
                                std::span<const sim::Address> other_replicas,
                                sim::SimTime local_now);

  // On each replicated write a follower persists (and on each write the leader admitted that it
  // persists itself through a path that did not come through admit_write): the node-level write
  // bucket pays for the work, down to zero at most, so the node's reports show the room it really
  // has left. Partition buckets are the leader's business and are not charged here.
  void on_replicated_write(CapacityUnits cost, sim::SimTime local_now);

  // On the report timer (every report_interval): the report to send to every node hosting a
  // replica of a partition this node hosts.
  NodeCapacityReport make_report(sim::SimTime local_now);
  // On receiving a kNodeCapacityReport.
  void on_capacity_report(const NodeCapacityReport& report, sim::SimTime local_now);

  // For tests and metrics.
  struct BucketLevels {
    int64_t allocated_milli_units = 0;
    int64_t burst_milli_units = 0;
    int64_t burst_depth_milli_units = 0;
  };
  BucketLevels read_levels(GroupId group, sim::SimTime local_now);
  BucketLevels write_levels(GroupId group, sim::SimTime local_now);
  int64_t node_read_available(sim::SimTime local_now);
  int64_t node_write_available(sim::SimTime local_now);
  const AdmissionStats& stats() const { return stats_; }
  const PeerCapacityView& peers() const { return peers_; }
  const AdmissionOptions& options() const { return options_; }

 private:
  // Allocated plus burst for one direction of one partition.
  struct PartitionBuckets {
    TokenBucket allocated;
    TokenBucket burst;
  };
  struct Partition {
    PartitionAllocation allocation;
    PartitionBuckets read;
    PartitionBuckets write;
  };

  PartitionBuckets make_buckets(int64_t rate_milli_units_per_second, sim::SimTime local_now) const;
  void resize(PartitionBuckets& buckets, int64_t rate_milli_units_per_second,
              sim::SimTime local_now) const;
  int64_t burst_depth(int64_t rate_milli_units_per_second) const;
  // Refills the allocated bucket and moves its overflow into burst.
  static void refill(PartitionBuckets& buckets, sim::SimTime local_now);
  // The local part of a decision (P22 4.1.1); `burst_allowed` is asked before anything is
  // charged and may veto a burst.
  template <typename BurstAllowed>
  AdmissionDecision decide(PartitionBuckets& buckets, TokenBucket& node, int64_t cost,
                           sim::SimTime local_now, BurstAllowed burst_allowed);

  AdmissionOptions options_;
  sim::Address self_;
  uint64_t incarnation_ = 0;
  uint64_t next_sequence_ = 1;
  TokenBucket node_read_;
  TokenBucket node_write_;
  std::map<GroupId, Partition> partitions_;
  PeerCapacityView peers_;
  AdmissionStats stats_;
};

}  // namespace dynasim::model
