// The messages of scrub repair and of the replica comparison (P22 section 5.3; docs/scrub.md).
//
// Repair: a replica whose B-tree lists a damaged key range asks a healthy full peer of its group
// for the items of that range, and replaces the range with them (BTree::repair_range).
//
// Consistency: the items are the peer's state of the range at its applied index `as_of`. A write
// command touches one key and its condition reads only that key, so the requester, once it has
// installed the items, skips every log entry with index <= as_of whose key lies in the range (its
// effect is already in the items) and applies every later entry normally. A requester whose own
// applied index is already above as_of drops the reply and asks again later; to make that rare,
// the requester pauses its applies while it waits and names its applied index (`at_least`), and
// the peer answers only once it has applied that far.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/btree.h"
#include "model/item.h"
#include "model/paxos.h"
#include "model/storage_protocol.h"
#include "sim/message.h"

namespace dynasim::model {

// kRangeRequest: replica `from_replica` of `group` asks replica `to_replica` for its items in
// `range`. `request_id` is unique per requester incarnation.
struct RangeRequestBody final : sim::MessageBody {
  GroupId group;
  uint32_t from_replica = 0;
  uint32_t to_replica = 0;
  uint64_t request_id = 0;
  KeyRangeBounds range;
  // The requester's applied index (it holds its apply pipeline until the answer): a peer behind
  // it waits until it has applied this far, since older items would undo entries.
  LogIndex at_least;
};

// kRangeItems: the answer. `ok` false: the peer cannot serve the range now (not recovered,
// damaged itself, busy with its own repair); the requester asks another peer. Otherwise `items`
// are every item of the range at the peer's applied index `as_of`, in key order.
struct RangeItemsBody final : sim::MessageBody {
  GroupId group;
  uint32_t from_replica = 0;
  uint32_t to_replica = 0;
  uint64_t request_id = 0;
  bool ok = false;
  KeyRangeBounds range;
  LogIndex as_of;
  std::vector<Item> items;
};

// ---------------------------------------------------------------------------------------------
// Replica comparison: range digests that narrow down to the differing range.
//
// The leader of a group proposes a marker command through the replication log. Every full replica
// applies it at the same log index, so the digests it computes there (BTree::range_digest, queued
// behind everything applied before the marker and ahead of everything after) describe the same
// state on every replica. Each reports them to the marker's proposer (kDigestReport). The leader
// compares, range by range. A range where one replica differs from a majority is either small
// enough (at most ScrubOptions::compare_leaf_items items) or deep enough to repair at once: the
// differing replica is told to repair it from a majority replica (kRangeSuspect), through the
// same range repair that bit rot uses. Otherwise the leader cuts it into compare_fanout pieces at
// its own items' quantiles and proposes a new marker for the pieces: each round narrows the
// differing key range by the fanout.

// Bytes of a marker command start with this (little-endian "DRKM"); a write command's start with
// its format byte (2), so no write command is ever taken for a marker.
inline constexpr uint32_t kDigestMarkerMagic = 0x4D4B5244;

struct DigestMarker {
  uint64_t round = 0;    // the proposer's round number
  uint32_t leader = 0;   // the proposing replica: where reports go
  uint32_t depth = 0;    // 0 for the whole key space; each narrowing adds one
  std::vector<KeyRangeBounds> ranges;

  std::vector<uint8_t> encode() const;
  static bool is_marker(const std::vector<uint8_t>& bytes);
  // False for bytes that are not exactly one marker.
  static bool decode(const std::vector<uint8_t>& bytes, DigestMarker* out);
};

// One range's digest at the marker: BTree::range_digest's multiset digest and item count.
// `ok` false: the replica could not compute it (a page failed verification, its tree is not the
// state at one index while a repair is pending, the tree's queue was full).
struct RangeDigest {
  bool ok = false;
  uint64_t digest = 0;
  uint64_t items = 0;
  bool operator==(const RangeDigest&) const = default;
};

// kDigestReport: replica `from_replica` of `group` to the marker's proposer.
struct DigestReportBody final : sim::MessageBody {
  GroupId group;
  uint32_t from_replica = 0;
  uint32_t to_replica = 0;
  uint64_t round = 0;
  LogIndex at;                       // the marker's index
  std::vector<RangeDigest> digests;  // one per marker range, in order
};

// kRangeSuspect: the leader to a replica whose digest of `range` differs from a majority's at the
// marker's index: repair the range, asking `good_replica` (which held the majority's digest)
// first.
struct RangeSuspectBody final : sim::MessageBody {
  GroupId group;
  uint32_t from_replica = 0;
  uint32_t to_replica = 0;
  uint64_t round = 0;
  KeyRangeBounds range;
  uint32_t good_replica = 0;
};

// The leader's verdict on one range, from the reports of `expected` replicas (the full voters at
// the marker's index). `majority` is set when more than half of `expected` reported one digest;
// `differing` lists the replicas that reported another digest (ok reports only). Reports that are
// not ok count for nobody.
struct RangeVerdict {
  std::optional<RangeDigest> majority;
  std::vector<uint32_t> agreeing;
  std::vector<uint32_t> differing;
};
RangeVerdict judge_range(const std::vector<std::pair<uint32_t, RangeDigest>>& reports,
                         size_t expected);

// `count` - 1 split keys cutting `keys` (sorted, distinct) into `count` runs of near-equal size:
// the first key of each run after the first. Fewer when there are fewer keys.
std::vector<PrimaryKey> quantile_splits(const std::vector<PrimaryKey>& keys, uint32_t count);

// The pieces of `range` cut at `splits` (sorted, each inside the range).
std::vector<KeyRangeBounds> cut_range(const KeyRangeBounds& range,
                                      const std::vector<PrimaryKey>& splits);

}  // namespace dynasim::model
