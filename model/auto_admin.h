// Auto-admin: the control-plane process that decides where replicas go.
//
// Healing (P22 section 3: it "replaces unhealthy replicas"): storage nodes report to it every
// second; a group's leader asks it where a new replica should be placed, and it answers with a
// live node that holds no member of the group, preferring an AZ that holds no other member (the
// replaced replica's first) so that each AZ keeps one copy, and the least loaded node there
// (docs/healing.md).
//
// Placement by space and throughput (P22 section 4.3, docs/partitions.md): "storage nodes
// independently monitor the overall throughput and data size of all their hosted replicas"; a node
// past "a threshold percentage of the maximum capacity" reports "a list of candidate partition
// replicas to be moved", and auto-admin finds each a node "in the same or another Availability
// Zone that doesn't have a replica of this partition". Here:
// - nodes send a NodeLoadReport (their capacity, and each replica's stored bytes and load) beside
//   the heartbeat, which stays as it was;
// - a node's load is the larger of its space and throughput fractions of its capacity; every
//   placement (healing, a split's children, a move) goes to the least loaded qualifying node;
// - a node past the threshold sends MoveCandidates (chosen by choose_move_candidates), and
//   auto-admin answers each with a destination in an AZ holding no other replica of the
//   partition that stays under the threshold with it, or with none;
// - a split executor asks for a new partition's replicas (PlaceGroupRequest) and gets one node in
//   each of distinct AZs, or nothing.
// The threshold percentage is not published (UNCONFIRMED); 80% is our assumption.
//
// One process on a control-plane host that faults spare: a replicated auto-admin is not modelled
// (our assumption; its own availability is outside what the game days test).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "model/healing_protocol.h"
#include "model/table.h"
#include "sim/env.h"

namespace dynasim::model {

// Message types of placement by space and throughput (the splits area, 160-169).
enum class PlacementMessageType : uint32_t {
  kNodeLoadReport = 160,     // storage node to auto-admin: capacity and per-replica load
  kMoveCandidates = 161,     // a node past its threshold to auto-admin: replicas it would shed
  kMoveDecision = 162,       // auto-admin to that node: a destination for each, or none
  kPlaceGroupRequest = 163,  // a split executor to auto-admin: where do a new partition's go?
  kPlaceGroupReply = 164,    // auto-admin to the executor
};

// What a node can hold and serve. Load is in read-equivalent milli units per second
// (model/table.h: an RCU is 1,000, a WCU 3,000).
struct NodeCapacity {
  uint64_t size_bytes = 0;
  uint64_t load_per_second = 0;
};

// One replica's share of its node, as the node measures it.
struct ReplicaLoad {
  GroupId group;
  uint32_t replica = 0;
  uint64_t size_bytes = 0;
  uint64_t load_per_second = 0;
  bool operator==(const ReplicaLoad&) const = default;
};

// A node reports at most this many replicas in one report (P22 section 4.3: a node "hosts
// thousands of partition replicas"; the bound is our assumption). Entries past it are ignored.
inline constexpr size_t kMaxReplicasPerLoadReport = 16'384;
// At most this many candidates in one MoveCandidates (our assumption; a node sheds load a few
// replicas at a time, since each move copies a replica).
inline constexpr size_t kMaxMoveCandidates = 16;

// kNodeLoadReport: the node at the sender's address, in `az`, with this capacity, hosts these.
struct NodeLoadReportBody final : sim::MessageBody {
  sim::AzId az;
  NodeCapacity capacity;
  std::vector<ReplicaLoad> replicas;
};

// A replica a node would move away, with the nodes of its group's other members (auto-admin
// keeps the partition's replicas in distinct AZs).
struct MoveCandidate {
  ReplicaLoad replica;
  std::vector<sim::Address> other_members;
};

// kMoveCandidates.
struct MoveCandidatesBody final : sim::MessageBody {
  uint64_t report_id = 0;
  sim::AzId az;
  std::vector<MoveCandidate> candidates;  // at most kMaxMoveCandidates are considered
};

struct MoveDestination {
  GroupId group;
  uint32_t replica = 0;
  std::optional<sim::Address> node;  // none: no node qualifies now
};

// kMoveDecision: one entry per candidate considered, in the candidates' order.
struct MoveDecisionBody final : sim::MessageBody {
  uint64_t report_id = 0;
  std::vector<MoveDestination> moves;
};

// kPlaceGroupRequest: a new partition (a split's child) needs `replica_count` replicas, each
// expected to hold `size_bytes` and serve `load_per_second`; none on the nodes in `exclude`.
struct PlaceGroupRequestBody final : sim::MessageBody {
  uint64_t request_id = 0;
  GroupId group;
  uint32_t replica_count = kReplicasPerGroup;
  uint64_t size_bytes = 0;
  uint64_t load_per_second = 0;
  std::vector<sim::Address> exclude;
};

// kPlaceGroupReply: one node per replica, each in a different AZ; empty when there are not
// enough live nodes in distinct AZs.
struct PlaceGroupReplyBody final : sim::MessageBody {
  uint64_t request_id = 0;
  GroupId group;
  std::vector<sim::Address> nodes;
};

// Which of a node's replicas to offer for moving, when its space or throughput is past
// `threshold_per_mille` of its capacity: the largest contributors to the fuller dimension, until
// what stays is under `target_per_mille` on both, at most kMaxMoveCandidates. Empty when the
// node is under the threshold. Deterministic: ties go to the lower (group, replica).
struct NodeBalanceOptions {
  // P22 section 4.3's "threshold percentage" (UNCONFIRMED): 80% is our assumption.
  uint64_t threshold_per_mille = 800;
  // Shed down to 70% (our assumption), so a node does not hover at the threshold.
  uint64_t target_per_mille = 700;
};
std::vector<ReplicaLoad> choose_move_candidates(const NodeCapacity& capacity,
                                                std::span<const ReplicaLoad> replicas,
                                                const NodeBalanceOptions& options = {});

struct AutoAdminOptions {
  // A node not heard from for this long is not placed on. Our assumption: a few heartbeats.
  sim::Duration node_dead_after = sim::seconds(3);
  // Each placement counts against its node's load for this long, until its heartbeats include
  // the new replica.
  sim::Duration placement_counts_for = sim::seconds(5);
  // A move's destination must stay at or under this share of its capacity with the replica
  // (P22 section 4.3's threshold, UNCONFIRMED; our assumption, as NodeBalanceOptions).
  uint64_t balance_threshold_per_mille = 800;

  // Planted bug for PlacementPropertyTest.PlantedSameAzIsCaught: the AZs of a partition's other
  // replicas are ignored. Never set outside tests.
  bool plant_allow_same_az = false;
  // Planted bug for PlacementPropertyTest.PlantedIgnoreLoadIsCaught: the lowest address is picked
  // whatever its load. Never set outside tests.
  bool plant_ignore_load = false;
};

// What auto-admin knows about the storage nodes, and its placement rules. AutoAdmin feeds it from
// messages; tests can drive it directly. Deterministic: nodes are kept by address and every tie
// goes to the lower address.
class PlacementPlanner {
 public:
  explicit PlacementPlanner(AutoAdminOptions options) : options_(options) {}

  void on_heartbeat(sim::Address node, sim::AzId az, uint32_t replicas, sim::SimTime now);
  void on_load_report(sim::Address node, const NodeLoadReportBody& report, sim::SimTime now);

  // Healing: a new replica of request.group (see PlaceRequestBody).
  std::optional<sim::Address> place_replica(const PlaceRequestBody& request, sim::SimTime now);
  // A new partition's replicas, one per distinct AZ; empty if they do not all fit.
  std::vector<sim::Address> place_group(const PlaceGroupRequestBody& request, sim::SimTime now);
  // A destination for a candidate replica leaving `source`.
  std::optional<sim::Address> place_move(sim::Address source, const MoveCandidate& candidate,
                                         sim::SimTime now);

  // A node's load: the larger of its space and throughput shares of its capacity, in millionths,
  // counting recent placements (0 for a dimension whose capacity it has not reported).
  uint64_t load_per_million(sim::Address node, sim::SimTime now);
  std::optional<sim::AzId> az_of(sim::Address node) const;

 private:
  struct Pending {
    uint32_t replicas = 0;
    uint64_t size_bytes = 0;
    uint64_t load_per_second = 0;
  };
  struct NodeRecord {
    sim::AzId az;
    uint32_t replicas = 0;
    sim::SimTime last_heard;
    NodeCapacity capacity;
    uint64_t size_bytes = 0;  // reported
    uint64_t load_per_second = 0;
    std::map<sim::SimTime, Pending> recent_placements;  // by when they stop counting
  };
  struct Score {
    int tier = 0;
    uint64_t load_per_million = 0;
    uint64_t replicas = 0;
    sim::Address address;
    auto key() const { return std::tie(tier, load_per_million, replicas, address); }
  };
  bool alive(const NodeRecord& node, sim::SimTime now) const;
  void expire(NodeRecord& node, sim::SimTime now);
  // The node's score with `extra` added to it.
  Score score(sim::Address address, NodeRecord& node, int tier, const Pending& extra,
              sim::SimTime now);
  void record(sim::Address node, const Pending& placed, sim::SimTime now);
  std::vector<sim::AzId> azs_of(std::span<const sim::Address> nodes) const;

  AutoAdminOptions options_;
  std::map<sim::Address, NodeRecord> nodes_;
};

class AutoAdmin final : public sim::Process {
 public:
  explicit AutoAdmin(AutoAdminOptions options) : planner_(options) {}

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  uint64_t placements() const { return placements_; }
  uint64_t refusals() const { return refusals_; }
  uint64_t group_placements() const { return group_placements_; }
  uint64_t group_refusals() const { return group_refusals_; }
  uint64_t moves_placed() const { return moves_placed_; }
  PlacementPlanner& planner() { return planner_; }

 private:
  void on_place_request(sim::Env& env, sim::Address from, const PlaceRequestBody& body);
  void on_place_group(sim::Env& env, sim::Address from, const PlaceGroupRequestBody& body);
  void on_move_candidates(sim::Env& env, sim::Address from, const MoveCandidatesBody& body);

  PlacementPlanner planner_;
  uint64_t placements_ = 0;
  uint64_t refusals_ = 0;
  uint64_t group_placements_ = 0;
  uint64_t group_refusals_ = 0;
  uint64_t moves_placed_ = 0;
};

}  // namespace dynasim::model
