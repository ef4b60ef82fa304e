// The partition map (model/partition_map.h): exact cover of the 64-bit hash space after any
// sequence of splits, floor lookups that agree with a brute-force reference, ids never reused,
// versions and history. The two planted bugs show that the invariant check and the reference
// comparison each catch what they exist for.
#include "model/partition_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "model/storage_protocol.h"
#include "sim/random.h"

namespace dynasim::model {
namespace {

using u128 = unsigned __int128;

TEST(PartitionMapTest, UniformCutsTheSpaceLikeTheStaticPlacement) {
  for (uint32_t count : {1u, 2u, 3u, 7u, 64u}) {
    PartitionIdSource ids(10);
    const PartitionMap map = PartitionMap::uniform(TableId(1), count, ids);
    std::vector<std::array<sim::Address, kReplicasPerGroup>> hosts(count);
    const Placement placement = Placement::uniform(count, hosts);
    ASSERT_EQ(map.size(), count);
    for (uint32_t i = 0; i < count; ++i) {
      EXPECT_EQ(map.ranges()[i].id, PartitionId(10 + i));
      EXPECT_EQ(map.ranges()[i].hash_begin, placement.groups[i].hash_begin);
      EXPECT_EQ(map.ranges()[i].hash_end, placement.groups[i].hash_end);
      EXPECT_EQ(map.ranges()[i].version, 1u);
    }
    EXPECT_EQ(map.version(), 1u);
    EXPECT_EQ(ids.peek(), 10 + count);
  }
}

TEST(PartitionMapTest, ASplitMakesTwoNewChildrenAndRetiresTheParent) {
  PartitionIdSource ids;
  PartitionMap map = PartitionMap::uniform(TableId(3), 2, ids);
  const PartitionRange parent = map.ranges()[0];  // [0, 2^63 - 1]
  const SplitOutcome outcome = map.split(parent.id, 1000, ids, sim::SimTime(77));
  ASSERT_EQ(outcome.status, SplitStatus::kOk);
  EXPECT_EQ(outcome.low, (PartitionRange{PartitionId(2), 0, 999, 2}));
  EXPECT_EQ(outcome.high, (PartitionRange{PartitionId(3), 1000, parent.hash_end, 2}));
  EXPECT_EQ(outcome.map_version, 2u);
  EXPECT_EQ(map.version(), 2u);
  EXPECT_EQ(map.size(), 3u);
  EXPECT_TRUE(map.is_retired(parent.id));
  EXPECT_EQ(map.find(parent.id), nullptr);
  EXPECT_EQ(map.lookup(999).id, PartitionId(2));
  EXPECT_EQ(map.lookup(1000).id, PartitionId(3));
  EXPECT_EQ(map.lookup(UINT64_MAX).id, PartitionId(1));
  ASSERT_EQ(map.history().size(), 1u);
  const SplitRecord& record = map.history()[0];
  EXPECT_EQ(record.parent, parent.id);
  EXPECT_EQ(record.low_child, PartitionId(2));
  EXPECT_EQ(record.high_child, PartitionId(3));
  EXPECT_EQ(record.split_hash, 1000u);
  EXPECT_EQ(record.map_version, 2u);
  EXPECT_EQ(record.local_time, sim::SimTime(77));
}

TEST(PartitionMapTest, RefusedSplitsChangeNothing) {
  PartitionIdSource ids;
  PartitionMap map = PartitionMap::uniform(TableId(3), 2, ids);
  const std::vector<PartitionRange> before = map.ranges();
  const PartitionRange first = before[0];
  EXPECT_EQ(map.split(PartitionId(99), 5, ids, {}).status, SplitStatus::kUnknownPartition);
  EXPECT_EQ(map.split(first.id, first.hash_begin, ids, {}).status,
            SplitStatus::kSplitHashOutside);  // the low child would be empty
  EXPECT_EQ(map.split(first.id, first.hash_end + 1, ids, {}).status,
            SplitStatus::kSplitHashOutside);  // outside the range
  EXPECT_EQ(map.ranges(), before);
  EXPECT_EQ(map.version(), 1u);
  EXPECT_EQ(ids.peek(), 2u);
  // The highest hash is a valid split point: the high child is one hash wide.
  ASSERT_EQ(map.split(first.id, first.hash_end, ids, {}).status, SplitStatus::kOk);
  // A retired id cannot be split again.
  EXPECT_EQ(map.split(first.id, 5, ids, {}).status, SplitStatus::kUnknownPartition);
}

// The reference: a plain list of ranges searched one by one.
struct ReferenceRange {
  uint64_t begin;
  uint64_t end;
  PartitionId id;
};

PartitionId reference_lookup(const std::vector<ReferenceRange>& ranges, uint64_t hash) {
  for (const ReferenceRange& range : ranges) {
    if (range.begin <= hash && hash <= range.end) return range.id;
  }
  ADD_FAILURE() << "the reference does not cover " << hash;
  return PartitionId();
}

// Random split sequences; after each split, the map's lookups are compared with the reference on
// random hashes and on every range's edges. Returns the number of disagreements.
uint64_t run_random_splits(uint64_t seed, PartitionMapOptions options) {
  sim::Random random(seed);
  PartitionIdSource ids(static_cast<uint32_t>(random.uniform_u64(1000)));
  const uint32_t initial = 1 + static_cast<uint32_t>(random.uniform_u64(8));
  PartitionMap map = PartitionMap::uniform(TableId(1), initial, ids, options);
  std::vector<ReferenceRange> reference;
  for (const PartitionRange& range : map.ranges()) {
    reference.push_back({range.hash_begin, range.hash_end, range.id});
  }
  std::vector<PartitionId> retired;
  uint64_t mismatches = 0;
  const int splits = 40 + static_cast<int>(random.uniform_u64(80));
  for (int s = 0; s < splits; ++s) {
    // A random live partition, split at a random point, an edge, or (sometimes) refused.
    const size_t index = random.uniform_u64(reference.size());
    const ReferenceRange parent = reference[index];
    if (parent.begin == parent.end) continue;
    uint64_t split_hash = 0;
    switch (random.uniform_u64(4)) {
      case 0:
        split_hash = parent.begin + 1;
        break;
      case 1:
        split_hash = parent.end;
        break;
      default:
        split_hash = parent.begin + 1 + random.uniform_u64(parent.end - parent.begin);
    }
    const uint64_t version_before = map.version();
    const SplitOutcome outcome =
        map.split(parent.id, split_hash, ids, sim::SimTime(static_cast<int64_t>(s)));
    EXPECT_EQ(outcome.status, SplitStatus::kOk);
    EXPECT_EQ(map.version(), version_before + 1);
    reference[index] = {parent.begin, split_hash - 1, outcome.low.id};
    reference.insert(reference.begin() + static_cast<std::ptrdiff_t>(index) + 1,
                     {split_hash, parent.end, outcome.high.id});
    retired.push_back(parent.id);

    // Exact cover: the widths sum to 2^64 and the ranges are the reference's.
    u128 covered = 0;
    for (const PartitionRange& range : map.ranges()) {
      covered += static_cast<u128>(range.hash_end - range.hash_begin) + 1;
    }
    EXPECT_TRUE(covered == (static_cast<u128>(1) << 64));
    EXPECT_EQ(map.size(), reference.size());
    // Lookups: random hashes and every edge.
    std::vector<uint64_t> probes;
    for (int p = 0; p < 32; ++p) probes.push_back(random.next_u64());
    for (const ReferenceRange& range : reference) {
      probes.push_back(range.begin);
      probes.push_back(range.end);
      if (range.end - range.begin >= 2) probes.push_back(range.begin + 1);
    }
    for (uint64_t hash : probes) {
      const PartitionId expected = reference_lookup(reference, hash);
      if (map.lookup(hash).id != expected) ++mismatches;
      const PartitionRange* found = map.find(expected);
      if (found == nullptr || !found->contains(hash)) ++mismatches;
    }
    for (PartitionId id : retired) EXPECT_TRUE(map.is_retired(id));
  }
  EXPECT_EQ(map.history().size(), map.size() - initial);
  return mismatches;
}

TEST(PartitionMapTest, RandomSplitSequencesKeepAnExactCoverAndAgreeWithTheReference) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    EXPECT_EQ(run_random_splits(seed, {}), 0u) << "seed " << seed;
  }
}

TEST(PartitionMapTest, PlantedCeilingLookupIsCaughtByTheReference) {
  PartitionMapOptions options;
  options.plant_lookup_ceiling = true;
  uint64_t mismatches = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) mismatches += run_random_splits(seed, options);
  EXPECT_GT(mismatches, 0u);
}

TEST(PartitionMapDeathTest, PlantedChildGapIsCaughtByTheInvariants) {
  PartitionMapOptions options;
  options.plant_child_gap = true;
  EXPECT_DEATH(
      {
        PartitionIdSource ids;
        PartitionMap map = PartitionMap::uniform(TableId(1), 2, ids, options);
        map.split(map.ranges()[0].id, 1000, ids, {});
      },
      "leave a gap or overlap");
}

TEST(PartitionMapTest, FromRangesAdoptsAStaticPlacement) {
  std::vector<std::array<sim::Address, kReplicasPerGroup>> hosts(5);
  const Placement placement = Placement::uniform(5, hosts);
  std::vector<PartitionRange> ranges;
  for (const GroupPlacement& group : placement.groups) {
    ranges.push_back({PartitionId(group.group.value), group.hash_begin, group.hash_end, 1});
  }
  const PartitionMap map = PartitionMap::from_ranges(TableId(2), ranges);
  for (int p = 0; p < 100; ++p) {
    const uint64_t hash = sim::splitmix64(static_cast<uint64_t>(p));
    uint32_t group = 0;
    while (placement.groups[group].hash_end < hash) ++group;
    EXPECT_EQ(map.lookup(hash).id.value, group);
  }
}

}  // namespace
}  // namespace dynasim::model
