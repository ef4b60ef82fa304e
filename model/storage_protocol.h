// What storage nodes and their clients say to each other, the static placement of replication
// groups, and the hooks through which checkers watch the storage layer.
//
// P22 section 3: a table is cut into partitions; each partition is a replication group of three
// storage replicas in three AZs, running Multi-Paxos. In this layer a group is addressed directly
// (the direct client of model/client.h); the request routers of a later layer replace how a group
// is found, not what is asked of it.
//
// Writes are state-machine commands: the leader proposes the request itself (item, condition,
// update actions) and every replica evaluates the condition and the update when it applies the
// committed entry, in log order, so both are always judged against the state the write lands on
// (an ADD counter is exact under any concurrency). Strong reads (GetItem, Query, Scan) are served
// only by a leader inside its lease that has applied everything committed; eventual reads by any
// replica from what it has applied.
//
// DynamoDB's data-plane operations at this level (docs/api.md; model/api.h is what routers use):
// GetItem, PutItem, DeleteItem and UpdateItem on one key, with condition expressions
// (model/expression.h); Query on one partition key with a key condition, a filter, Limit,
// ScanIndexForward and ExclusiveStartKey; Scan over a range of partition-hash values of one
// group (a parallel Scan's segment, api.h). Query and Scan pages stop at 1 MB of items read,
// counted before the filter (Developer Guide, Query.FilterExpression: "This limit applies before
// the filter expression is evaluated"). Every answer carries the capacity it consumed, in half
// units, with DynamoDB's rounding (Developer Guide, CapacityUnitCalculations).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/expression.h"
#include "model/item.h"
#include "model/paxos.h"
#include "sim/ids.h"
#include "sim/message.h"
#include "sim/time.h"

namespace dynasim::model {

// One partition's replication group.
using GroupId = sim::Id<struct GroupTag>;

inline constexpr uint32_t kStoragePort = 8000;
inline constexpr uint32_t kClientPort = 9000;
inline constexpr uint32_t kReplicasPerGroup = 3;

// Message types on the wire (sim::Message::type). The world does not interpret them.
enum class StorageMessageType : uint32_t {
  kPaxos = 100,            // PaxosEnvelope, replica to replica
  kRequest = 101,          // StorageRequest, client to replica
  kResponse = 102,         // StorageResponse, replica to client
  kSnapshotRequest = 103,  // replica to replica: catch-up past the leader's compacted log
  kSnapshotChunk = 104,
  // Healing (model/auto_admin.h, docs/healing.md).
  kNodeHeartbeat = 105,  // storage node to auto-admin: alive, in this AZ, hosting this many
  kPlaceRequest = 106,   // a group's leader to auto-admin: where should a new replica go?
  kPlaceReply = 107,     // auto-admin to the leader
  kEnsureReplica = 108,  // a group's leader to a node: host this new replica (idempotent)
  kDropReplica = 109,    // to a node: this replica left the group's configuration; delete it
  // Scrub repair (model/scrub_protocol.h, docs/scrub.md).
  kRangeRequest = 110,  // a replica with a damaged key range to a healthy peer
  kRangeItems = 111,    // the peer's items of the range, as of its applied index
  // Replica comparison (model/scrub_protocol.h).
  kDigestReport = 112,  // a replica's range digests at a marker, to the marker's proposer
  kRangeSuspect = 113,  // the leader to a replica that differs from a majority: repair the range
};

// A condition on the item a write lands on (DynamoDB's ConditionExpression, the subset the direct
// client needs: attribute_exists, attribute_not_exists, and equality on an attribute, which is
// how optimistic locking on a version attribute is written).
struct Condition {
  enum class Kind : uint8_t { kNone, kAttributeExists, kAttributeNotExists, kAttributeEquals };
  Kind kind = Kind::kNone;
  std::string attribute;
  AttributeValue value;  // kAttributeEquals only

  // Whether the condition holds on `current` (nullptr: no item with the key).
  bool holds(const Item* current) const;
  bool operator==(const Condition&) const = default;
};

enum class StorageOp : uint8_t { kGet, kPut, kDelete, kUpdate, kQuery, kScan };
const char* to_string(StorageOp op);
inline bool is_write(StorageOp op) {
  return op == StorageOp::kPut || op == StorageOp::kDelete || op == StorageOp::kUpdate;
}

// DynamoDB's ReturnValues, the subset modelled: NONE, ALL_OLD (PutItem, DeleteItem,
// UpdateItem), ALL_NEW (UpdateItem).
enum class ReturnValues : uint8_t { kNone, kAllOld, kAllNew };

// Query and Scan pages: at most 1 MB of items read (Developer Guide, Query.Pagination; 1 MB =
// 1,048,576 bytes, Developer Guide, Constraints: "1 MB = 1024 KB").
inline constexpr uint64_t kMaxPageBytes = 1024 * 1024;

// What a Query reads: one partition key's items in sort key order (ScanIndexForward) or reverse.
struct QuerySpec {
  KeyCondition key_condition;
  bool scan_forward = true;
  bool operator==(const QuerySpec&) const = default;
};

// What a Scan reads: the items of the group whose partition_hash lies in [hash_begin, hash_end]
// (a parallel Scan's segment intersected with the group's range; api.h, segment_hash_range).
struct ScanSpec {
  uint64_t hash_begin = 0;
  uint64_t hash_end = UINT64_MAX;
  bool operator==(const ScanSpec&) const = default;
};

// A Query's or Scan's page: the filter applies after the page is cut (Limit counts items
// evaluated, the 1 MB items read, both before the filter, as DynamoDB does).
struct PageSpec {
  ConditionExpression filter;
  uint32_t limit = 0;  // items evaluated; 0: no limit but the 1 MB
  std::optional<PrimaryKey> exclusive_start_key;
  bool operator==(const PageSpec&) const = default;
};

struct StorageRequest final : sim::MessageBody {
  GroupId group;
  uint64_t client_id = 0;
  uint64_t request_id = 0;  // unique per attempt of one client
  StorageOp op = StorageOp::kGet;
  // kGet, kQuery, kScan.
  ReadConsistency consistency = ReadConsistency::kStrong;
  PrimaryKey key;       // kGet, kPut, kDelete, kUpdate; kQuery: the partition key (no sort key)
  Item item;            // kPut: the full new item (its key equals `key`)
  Condition condition;  // kPut, kDelete, kUpdate (the direct client's simple form)
  // kPut, kDelete, kUpdate: must hold too (both must hold for the write to be made).
  ConditionExpression condition_expression;
  UpdateExpression update;                           // kUpdate
  ReturnValues return_values = ReturnValues::kNone;  // kPut, kDelete (kAllOld), kUpdate
  // Bytes of the table's key attribute names, which the router knows from the table's schema and
  // items here do not carry: added to every item's size for consumed capacity.
  uint32_t key_name_bytes = 0;
  QuerySpec query;  // kQuery
  ScanSpec scan;    // kScan
  PageSpec page;    // kQuery, kScan
  // The configuration epoch of the client's view of where the group's replicas are (0: the
  // static placement, which is the group's first configuration). A replica whose group has
  // committed a later configuration sends the members back (StorageResponse::members). It rides
  // in the request's header.
  uint64_t known_epoch = 0;
};

enum class StorageStatus : uint8_t {
  kOk,
  kConditionFailed,  // the condition did not hold; nothing was written
  kNotFound,         // kGet: no item with the key (not an error)
  kNotLeader,        // retry at leader_hint, or another replica
  kNotServing,       // the leader is still waiting out an old lease, or has no valid lease
  kBusy,             // a bounded queue is full (Paxos in-flight window, CPU queue)
  kUnhealthy,        // the replica found a corrupt page or record for this key's range
  kNoSuchGroup,      // this node hosts no replica of the group
  kValidation,       // the request is malformed (key or item too large, key mismatch)
  kRecovering,       // the replica is still reading its disk after a restart
  // Admission control refused the request (model/admission.h, P22 section 4.1.1): the partition's
  // allocated and burst tokens, the node's, or the peers' reported room were short. Nothing was
  // read or proposed; the client retries after a backoff (DynamoDB's
  // ProvisionedThroughputExceededException, retryable).
  kThrottled,
};
const char* to_string(StorageStatus status);

// Where a group's replicas are, as of one of its committed configurations: what a client needs to
// keep finding the group once healing has moved replicas off the static placement
// (docs/healing.md, "Clients").
struct GroupMembers {
  uint64_t epoch = 0;  // the configuration's epoch: a client keeps the highest it has seen
  // The full voters: the replicas that can lead and serve reads. Log replicas and learners are
  // left out (a log replica holds no items; a learner may still be receiving them).
  std::vector<sim::Address> replicas;
  bool operator==(const GroupMembers&) const = default;
};

struct StorageResponse final : sim::MessageBody {
  GroupId group;
  uint64_t request_id = 0;
  StorageStatus status = StorageStatus::kOk;
  // kGet with kOk; a write's old or new item when ReturnValues asked for it (kOk only).
  std::optional<Item> item;
  // What the operation consumed (kOk, kNotFound, kConditionFailed; zero otherwise), half units:
  // reads per 4 KB (eventual half), writes per 1 KB of the larger of the old and new item.
  CapacityUnits consumed;
  // kQuery, kScan: the page's items that passed the filter, in the order read; how many were
  // evaluated (ScannedCount); where to continue (LastEvaluatedKey; none: the read is complete).
  std::vector<Item> items;
  uint32_t scanned_count = 0;
  std::optional<PrimaryKey> last_evaluated_key;
  std::optional<sim::Address> leader_hint;  // kNotLeader, when the replica knows one
  LogIndex applied_index;                   // the entry that carried the write (kPut, kDelete)
  // The group's committed configuration, when it is newer than the request's known_epoch. Any
  // answer may carry it, from any replica that hosts the group.
  std::optional<GroupMembers> members;
};

// A replication group and where its replicas are. Placement is static in this layer: replica
// number r (1..3) of a group lives on `replicas[r - 1]`, one per AZ.
struct GroupPlacement {
  GroupId group;
  uint64_t hash_begin = 0;  // the group owns partition_hash values in [hash_begin, hash_end]
  uint64_t hash_end = UINT64_MAX;
  std::array<sim::Address, kReplicasPerGroup> replicas;
};

struct Placement {
  std::vector<GroupPlacement> groups;  // sorted by hash_begin; ranges cover the space exactly

  // The group whose range holds the key's partition hash. REQUIRES: groups is not empty.
  const GroupPlacement& group_for(const PrimaryKey& key) const;
  const GroupPlacement& group(GroupId id) const { return groups.at(id.value); }
  // Groups are numbered 0..n-1 in hash order; each gets an equal share of the hash space.
  static Placement uniform(uint32_t group_count,
                           const std::vector<std::array<sim::Address, kReplicasPerGroup>>& hosts);
};

// The hooks through which checkers watch the storage layer. Called from inside the run; an
// observer must not change anything. Times are the replica's local clock readings; the observer
// maps them to true time if it needs to (it can see the world, the model cannot).
enum class ReferenceOutcome : uint8_t {
  kMatch,        // the archive's content equals the replicas'
  kMismatch,     // it does not: the archive would restore something else
  kError,        // the archive could not be rebuilt at that index (a gap, a bad object)
  kUnavailable,  // the object store did not answer: no verdict
};
const char* to_string(ReferenceOutcome outcome);

class StorageObserver {
 public:
  // A replica applied a committed log entry. `command_digest` identifies the command (no-ops
  // included), so a checker can see two replicas apply different commands in one slot.
  virtual void on_applied(GroupId group, uint32_t replica, LogIndex index,
                          uint64_t command_digest) = 0;
  // A replica's window for strong reads changed: from now until `local_until` (on its own clock)
  // it may serve them; `local_until <= local_now` means it holds no lease any more. Reported when
  // the lease is first taken, each time it is extended, and when it is given up or lost.
  virtual void on_lease(GroupId group, uint32_t replica, sim::SimTime local_now,
                        sim::SimTime local_until) = 0;
  // A replica answered a strong read (at `local_now` on its clock).
  virtual void on_strong_read(GroupId group, uint32_t replica, sim::SimTime local_now) = 0;

  // Healing (default: ignored). Times are on the clock of the node at `node`.
  // The node at `node` hosts replica `replica` of `group` (at boot, or created by healing).
  virtual void on_replica_hosted(GroupId group, uint32_t replica, sim::Address node) {
    (void)group, (void)replica, (void)node;
  }
  // The group's leader (on `node`) found a voter silent since `local_last_heard`.
  virtual void on_replica_lost(GroupId group, sim::Address node, uint32_t replica,
                               sim::SimTime local_now, sim::SimTime local_last_heard) {
    (void)group, (void)node, (void)replica, (void)local_now, (void)local_last_heard;
  }
  // A voter the leader had reported lost was heard from again before healing removed it.
  virtual void on_replica_returned(GroupId group, sim::Address node, uint32_t replica,
                                   sim::SimTime local_now) {
    (void)group, (void)node, (void)replica, (void)local_now;
  }
  // The group's leader (on `node`) committed a configuration entry.
  virtual void on_configuration_committed(GroupId group, sim::Address node,
                                          const Configuration& configuration,
                                          sim::SimTime local_now) {
    (void)group, (void)node, (void)configuration, (void)local_now;
  }

  // Splits (model/split_executor.h, docs/partitions.md): replica `replica` of `parent` (on
  // `node`) applied the commit of the split that gave [split_hash, parent_end] to the new group
  // `child`. Every replica reports; times are on the reporting node's clock, `decided_local` on
  // the deciding leader's. `for_size`: split for size, else for consumption.
  virtual void on_split_committed(GroupId parent, GroupId child, uint32_t replica,
                                  sim::Address node, uint64_t parent_begin, uint64_t parent_end,
                                  uint64_t split_hash, bool for_size, sim::SimTime decided_local,
                                  sim::SimTime local_now) {
    (void)parent, (void)child, (void)replica, (void)node, (void)parent_begin, (void)parent_end,
        (void)split_hash, (void)for_size, (void)decided_local, (void)local_now;
  }

  // Scrub's reference check (docs/scrub.md, "The reference check"): the content a majority of a
  // group's replicas agreed on at log index `at`, against the reference replica rebuilt from the
  // archive at `at`. `detail` says what differed or what failed.
  virtual void on_reference_checked(GroupId group, LogIndex at, ReferenceOutcome outcome,
                                    const std::string& detail) {
    (void)group, (void)at, (void)outcome, (void)detail;
  }

  // Admission control (model/admission.h; default: ignored). The node at `node` admitted a
  // request of `milli_units` on `group`'s partition buckets at `local_now` on its clock: a write
  // (at the leader, before proposing) or a read. `buckets` names the buckets that paid: it changes
  // whenever the node builds them afresh (a restart, or the partition dropped and hosted again),
  // since new buckets start full and an admitted-units bound holds only within one set.
  // `used_burst`: the allocated tokens were short and burst paid.
  virtual void on_admitted(GroupId group, sim::Address node, uint64_t buckets,
                           sim::SimTime local_now, int64_t milli_units, bool write,
                           bool used_burst) {
    (void)group, (void)node, (void)buckets, (void)local_now, (void)milli_units, (void)write,
        (void)used_burst;
  }

 protected:
  ~StorageObserver() = default;
};

// What a checker can ask a storage node about one of its replicas, after the run has quiesced.
struct ReplicaSnapshot {
  GroupId group;
  uint32_t replica = 0;
  bool recovered = false;  // false while it is still reading its disk
  bool healthy = true;     // false once any page or record failed its checksum
  LogIndex applied;        // every committed entry up to here is in the state machine
  // The highest index <= applied whose entry changes items (a write command, not a no-op, a
  // configuration or a scrub marker), as far as the in-memory log shows; where the log is
  // compacted before finding one, the compaction point. Replicas whose applied indexes differ
  // only by entries that change nothing hold the same content.
  LogIndex last_write;
  LogIndex commit;
  PaxosRole role = PaxosRole::kFollower;
  MemberKind kind = MemberKind::kFull;  // a log replica holds no items
  Configuration configuration;          // its latest configuration (empty until recovered)
  // A digest over the items in key order (key and encoded item), and their count. Meaningful
  // only when `content_known`: every page could be read and verified without I/O pending.
  bool content_known = false;
  uint64_t content_digest = 0;
  uint64_t item_count = 0;
};

// An item's size as this layer counts it: key values, attribute names and values
// (value_size_bytes), plus `key_name_bytes` for the key attribute names the router knows (Developer
// Guide, CapacityUnitCalculations: "the sum of the lengths of its attribute names and values").
uint64_t stored_item_size_bytes(const Item& item, uint64_t key_name_bytes);

// What applying a write command to the item it lands on does (WriteCommand::apply_to).
struct WriteEffect {
  enum class Change : uint8_t { kNone, kPut, kErase };
  // kOk; kConditionFailed (nothing written); kValidation (the update cannot be made: ADD to a
  // string, an operand missing, a number out of range, the new item over 400 KB; nothing
  // written).
  StorageStatus status = StorageStatus::kOk;
  Change change = Change::kNone;
  Item item;  // kPut: the item as it is after the write
};

// Encodes a write command for the replication log, and reads it back. The command id is unique
// per (client, request) so duplicates and no-ops are told apart.
//
// Layout: format byte, client id, request id, op, the simple condition's kind, stand-in bytes
// (u64), then length-prefixed blobs: the key, the item (kPut), the simple condition. A command
// with a condition expression, or an UpdateItem, appends an extension: a flags byte (1: a
// condition expression follows, 2: an update expression follows) and those blobs. Plain puts
// and deletes have no extension, so unconditional_put_item stays a fixed-offset read.
struct WriteCommand {
  uint64_t client_id = 0;
  uint64_t request_id = 0;
  StorageOp op = StorageOp::kPut;  // kPut, kDelete or kUpdate
  PrimaryKey key;
  Item item;
  Condition condition;
  ConditionExpression condition_expression;
  UpdateExpression update;  // kUpdate

  std::vector<uint8_t> encode() const;
  // The same encoding from the parts, without building a WriteCommand (no copy of the item).
  static std::vector<uint8_t> encode(uint64_t client_id, uint64_t request_id, StorageOp op,
                                     const PrimaryKey& key, const Item& item,
                                     const Condition& condition,
                                     const ConditionExpression& condition_expression = {},
                                     const UpdateExpression& update = {});
  static bool decode(const std::vector<uint8_t>& bytes, WriteCommand* out);

  // The command's effect on `current` (nullptr: no item with the key), as every replica and the
  // archive's reference replica apply it: the conditions first, then the put, the delete or the
  // update. Moves the command's item out (kPut).
  WriteEffect apply_to(const Item* current);
  // The bytes the item's payload stand-ins represent beyond their encoding (a Payload of size S
  // is encoded in 24 bytes). The encoding carries this figure at a fixed place, so message sizes
  // are known without decoding the command; decode() checks it against the item.
  static uint64_t stand_in_bytes(const Item& item);
  // The same over every part a command carries (the item, Payload literals in expressions).
  uint64_t command_stand_in_bytes() const;
  static std::optional<uint64_t> peek_stand_in_bytes(const std::vector<uint8_t>& bytes);

  // An unconditional put read without decoding its item: what a replica applies most often. The
  // item's canonical encoding goes to BTree::put_encoded as it is. Nullopt for anything else
  // (deletes, conditional writes, bytes that are not a command), which decode() handles.
  // The span points into `bytes`.
  static std::optional<std::span<const uint8_t>> unconditional_put_item(
      const std::vector<uint8_t>& bytes);
};

}  // namespace dynasim::model
