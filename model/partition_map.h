// A table's partition map: the 64-bit partition-hash space cut into contiguous ranges, one per
// partition, and how it changed (docs/partitions.md).
//
// P22 section 3: each partition holds "a disjoint and contiguous part of the table's key-range";
// the partition key's hash decides where an item lives (model/item.h, partition_hash). P22
// section 6.6: a key maps to its partition by a floor lookup on range starts (MemDS's Perkle tree
// offers floor and ceiling for exactly this). BLOG Part 3: partitions are "only split, never
// merged", so the map has split() and no merge.
//
// Invariants, checked (DYN_ASSERT) after every change:
// - the live ranges are sorted by hash_begin, the first begins at 0, the last ends at 2^64 - 1,
//   and each begins right after the one before it ends: they cover the space exactly, without
//   gaps or overlap;
// - every live id is unique and none is retired; a retired id never comes back;
// - every range's version is at most the map's version.
//
// Versions: the map's version starts at 1 and grows by one with each split; each range carries
// the map version at which it was created. A router or MemDS entry that holds (id, version)
// knows it is stale when the map's entry for that hash has another id.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "model/archive.h"
#include "sim/ids.h"
#include "sim/time.h"

namespace dynasim::model {

// A partition of a table. Ids are unique across a region (one PartitionIdSource gives them) and
// never reused: a split's children get new ids and the parent's is retired.
using PartitionId = sim::Id<struct PartitionTag>;

// Hands out partition ids in order. One per region, so ids never clash across tables.
class PartitionIdSource {
 public:
  explicit PartitionIdSource(uint32_t first = 0) : next_(first) {}
  PartitionId next();
  uint32_t peek() const { return next_; }

 private:
  uint32_t next_;
};

// One live partition: it owns partition_hash values in [hash_begin, hash_end], both included.
struct PartitionRange {
  PartitionId id;
  uint64_t hash_begin = 0;
  uint64_t hash_end = UINT64_MAX;
  uint64_t version = 0;  // the map version at which this range was created
  bool contains(uint64_t hash) const { return hash_begin <= hash && hash <= hash_end; }
  bool operator==(const PartitionRange&) const = default;
};

// One split, kept for reports: parent [begin, end] became low [begin, split_hash - 1] and high
// [split_hash, end].
struct SplitRecord {
  PartitionId parent;
  PartitionId low_child;
  PartitionId high_child;
  uint64_t parent_begin = 0;
  uint64_t parent_end = 0;
  uint64_t split_hash = 0;
  uint64_t map_version = 0;  // the map's version after the split
  sim::SimTime local_time;   // the caller's clock reading when it was applied
};

enum class SplitStatus : uint8_t {
  kOk,
  kUnknownPartition,  // no live partition has this id (never existed, or already split)
  kSplitHashOutside,  // split_hash is not in (hash_begin, hash_end]: a child would be empty
};
const char* to_string(SplitStatus status);

struct SplitOutcome {
  SplitStatus status = SplitStatus::kOk;
  // kOk only: the two children and the map's new version.
  PartitionRange low;
  PartitionRange high;
  uint64_t map_version = 0;
};

struct PartitionMapOptions {
  // Planted bug for PartitionMapDeathTest.PlantedChildGapIsCaughtByTheInvariants: the low child ends
  // one hash short, leaving a gap. Never set outside tests.
  bool plant_child_gap = false;
  // Planted bug for PartitionMapTest.PlantedCeilingLookupIsCaughtByTheReference: lookup returns
  // the range starting at or after the hash instead of the one at or before it. Never set
  // outside tests.
  bool plant_lookup_ceiling = false;
};

class PartitionMap {
 public:
  // `count` ranges of equal share: range i begins at floor(i * 2^64 / count), as
  // Placement::uniform cuts groups (model/storage_protocol.h). REQUIRES: count >= 1.
  static PartitionMap uniform(TableId table, uint32_t count, PartitionIdSource& ids,
                              PartitionMapOptions options = {});
  // A map from explicit ranges (e.g. a Placement's groups, with PartitionId(g) for GroupId(g)).
  // REQUIRES: the ranges satisfy the invariants above.
  static PartitionMap from_ranges(TableId table, std::vector<PartitionRange> ranges,
                                  PartitionMapOptions options = {});

  TableId table() const { return table_; }
  uint64_t version() const { return version_; }
  size_t size() const { return ranges_.size(); }
  // Live ranges, sorted by hash_begin.
  const std::vector<PartitionRange>& ranges() const { return ranges_; }

  // The live range holding `hash` (the last one whose hash_begin <= hash).
  const PartitionRange& lookup(uint64_t hash) const;
  // The live range of `id`, or nullptr if it is retired or was never in this map.
  const PartitionRange* find(PartitionId id) const;
  bool is_retired(PartitionId id) const { return retired_.contains(id); }

  // Splits live partition `parent` at `split_hash`: the low child takes [hash_begin,
  // split_hash - 1], the high child [split_hash, hash_end]. Both get new ids from `ids` (low
  // first), the parent is retired, the map's version grows by one and the split is recorded.
  // A refused split changes nothing.
  SplitOutcome split(PartitionId parent, uint64_t split_hash, PartitionIdSource& ids,
                     sim::SimTime local_now);

  // Every split applied, oldest first (one record per split; a map of n partitions created with
  // k has n - k records).
  const std::vector<SplitRecord>& history() const { return history_; }

  // DYN_ASSERTs the invariants in the header comment.
  void check_invariants() const;

 private:
  PartitionMap(TableId table, PartitionMapOptions options) : table_(table), options_(options) {}
  size_t index_of(uint64_t hash) const;

  TableId table_;
  PartitionMapOptions options_;
  uint64_t version_ = 1;
  std::vector<PartitionRange> ranges_;
  std::map<PartitionId, uint64_t> begin_by_id_;  // live ids to their range's hash_begin
  std::set<PartitionId> retired_;
  std::vector<SplitRecord> history_;
};

}  // namespace dynasim::model
