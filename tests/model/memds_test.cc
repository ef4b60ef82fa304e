// MemDS nodes and the storage side's publisher in a small simulated region: updates reach every
// node; versions only move forward (a seeded property over random update orders, and through the
// network); duplicates change nothing; lookups are floor lookups; the publisher's queue is
// bounded; a node that was down or cut off while updates were pushed converges through
// anti-entropy. Planted bugs: accepting older versions breaks the versioning property; a Perkle
// hash not updated on overwrite keeps anti-entropy from repairing a node.
#include "model/memds.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <vector>

#include "tests/model/memds_harness.h"

namespace dynasim::model {
namespace {

using memds_testing::Region;
using memds_testing::RegionOptions;
using memds_testing::table_map;

bool all_roots_equal(Region& region) {
  for (size_t i = 1; i < region.memds.size(); ++i) {
    if (region.node(i).tree().root_hash() != region.node(0).tree().root_hash()) return false;
  }
  return true;
}

TEST(MemdsTest, UpdatesGoToEveryNodeAndLookupsAreFloorLookups) {
  Region region(RegionOptions{});
  const TableId table(5);
  ASSERT_EQ(region.publisher().publish(table_map(table, 16, 1)),
            MemdsPublisher::PublishStatus::kQueued);
  region.run_for(sim::seconds(1));
  EXPECT_EQ(region.publisher().publisher().pending_updates(), 0u);
  EXPECT_EQ(region.publisher().publisher().stats().acks, 3u);
  EXPECT_EQ(region.publisher().publisher().stats().resends, 0u);
  for (size_t i = 0; i < region.memds.size(); ++i) {
    EXPECT_EQ(region.node(i).tree().size(), 16u) << i;
    EXPECT_EQ(region.node(i).stats().updates_received, 1u);
  }
  EXPECT_TRUE(all_roots_equal(region));
  const std::vector<PartitionEntry> map = table_map(table, 16, 1);
  for (const PartitionEntry& entry : map) {
    for (uint64_t hash :
         {entry.hash_begin, entry.hash_end, entry.hash_begin / 2 + entry.hash_end / 2}) {
      const auto found = region.node(1).lookup(table, hash);
      ASSERT_TRUE(found.has_value());
      EXPECT_EQ(found->group, entry.group);
    }
  }
  EXPECT_FALSE(region.node(0).lookup(TableId(6), 0).has_value());
  EXPECT_FALSE(region.node(0).lookup(TableId(4), UINT64_MAX).has_value());
}

// Random orders of the versions of a few entries applied to a node, duplicates included; the
// node must end with the highest version of each. Returns the failing cases.
int versioning_failures(MemdsOptions options) {
  int failures = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    sim::Random random(seed);
    MemdsNode node(options, {});
    std::vector<PartitionEntry> updates;
    std::map<PerkleKey, uint64_t> highest;
    for (uint32_t key = 0; key < 4; ++key) {
      const uint64_t versions = 1 + random.uniform_u64(6);
      for (uint64_t v = 1; v <= versions; ++v) {
        PartitionEntry entry = table_map(TableId(1), 4, v)[key];
        updates.push_back(entry);
        if (random.bernoulli(0.3)) updates.push_back(entry);  // re-sent
        highest[entry.key()] = versions;
      }
    }
    for (size_t i = updates.size(); i > 1; --i) {
      std::swap(updates[i - 1], updates[random.uniform_u64(i)]);
    }
    for (const PartitionEntry& entry : updates) node.apply(entry);
    for (const auto& [key, version] : highest) {
      const PartitionEntry* held = node.tree().find(key);
      if (held == nullptr || held->version != version) {
        ++failures;
        break;
      }
    }
  }
  return failures;
}

TEST(MemdsTest, AnOlderVersionNeverOverwritesANewerOne) {
  EXPECT_EQ(versioning_failures(MemdsOptions{}), 0);
  // Through the network too: version 3 pushed, then a late version 2.
  Region region(RegionOptions{});
  region.publisher().publish(table_map(TableId(1), 4, 3));
  region.run_for(sim::milliseconds(100));
  region.publisher().publish(table_map(TableId(1), 4, 2));
  region.run_for(sim::milliseconds(100));
  for (size_t i = 0; i < region.memds.size(); ++i) {
    EXPECT_EQ(region.node(i).lookup(TableId(1), 0)->version, 3u);
    EXPECT_EQ(region.node(i).stats().entries_stale, 4u);
  }
}

TEST(MemdsTest, PlantedAcceptOlderVersionIsCaught) {
  MemdsOptions planted;
  planted.plant_accept_older_version = true;
  EXPECT_GT(versioning_failures(planted), 0);
}

TEST(MemdsTest, APlacementsMapResolvesLikeThePlacement) {
  const std::array<sim::Address, kReplicasPerGroup> hosts{
      sim::Address{sim::HostId(1), kStoragePort}, sim::Address{sim::HostId(2), kStoragePort},
      sim::Address{sim::HostId(3), kStoragePort}};
  const Placement placement = Placement::uniform(7, std::vector(7, hosts));
  MemdsNode node(MemdsOptions{}, {});
  for (const PartitionEntry& entry : partition_map_of(TableId(9), placement, 1)) node.apply(entry);
  sim::Random random(5);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t hash = random.next_u64();
    const auto found = node.lookup(TableId(9), hash);
    ASSERT_TRUE(found.has_value());
    const GroupPlacement& group = placement.groups[found->group.value];
    EXPECT_LE(group.hash_begin, hash);
    EXPECT_LE(hash, group.hash_end);
    EXPECT_EQ(found->members.replicas.size(), kReplicasPerGroup);
  }
}

TEST(MemdsTest, ApplyingAnUpdateTwiceChangesNothing) {
  MemdsNode node(MemdsOptions{}, {});
  for (const PartitionEntry& entry : table_map(TableId(2), 8, 4)) {
    EXPECT_EQ(node.apply(entry), MemdsNode::ApplyOutcome::kApplied);
  }
  const uint64_t root = node.tree().root_hash();
  for (const PartitionEntry& entry : table_map(TableId(2), 8, 4)) {
    EXPECT_EQ(node.apply(entry), MemdsNode::ApplyOutcome::kDuplicate);
  }
  EXPECT_EQ(node.tree().root_hash(), root);
  EXPECT_EQ(node.stats().entries_duplicate, 8u);
}

TEST(MemdsTest, ARetiredRangeIsSkippedByLookups) {
  MemdsNode node(MemdsOptions{}, {});
  std::vector<PartitionEntry> map = table_map(TableId(2), 4, 1);
  for (const PartitionEntry& entry : map) node.apply(entry);
  // Partitions 1 and 2 merge: 1 grows over 2's range, 2 becomes a tombstone.
  PartitionEntry grown = map[1];
  grown.hash_end = map[2].hash_end;
  grown.version = 2;
  PartitionEntry retired = map[2];
  retired.retired = true;
  retired.version = 2;
  node.apply(grown);
  node.apply(retired);
  const auto found = node.lookup(TableId(2), map[2].hash_begin + 5);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->group, map[1].group);
  EXPECT_EQ(node.lookup(TableId(2), map[3].hash_begin)->group, map[3].group);
}

TEST(MemdsTest, PublisherRetriesUntilAckedAndItsQueueIsBounded) {
  RegionOptions options;
  options.publisher.max_pending_updates = 2;
  options.publisher.max_attempts = 5;
  Region region(options);
  for (const sim::Address& node : region.memds) region.world.power_off(node.host);
  EXPECT_EQ(region.publisher().publish(table_map(TableId(1), 2, 1)),
            MemdsPublisher::PublishStatus::kQueued);
  EXPECT_EQ(region.publisher().publish(table_map(TableId(1), 2, 2)),
            MemdsPublisher::PublishStatus::kQueued);
  EXPECT_EQ(region.publisher().publish(table_map(TableId(1), 2, 3)),
            MemdsPublisher::PublishStatus::kQueueFull);
  // Nodes come back before the attempts run out: the re-sends reach them.
  region.run_for(sim::milliseconds(500));
  for (const sim::Address& node : region.memds) region.world.power_on(node.host);
  region.run_for(sim::seconds(1));
  EXPECT_EQ(region.publisher().publisher().pending_updates(), 0u);
  EXPECT_GT(region.publisher().publisher().stats().resends, 0u);
  for (size_t i = 0; i < region.memds.size(); ++i) {
    EXPECT_EQ(region.node(i).lookup(TableId(1), 0)->version, 2u);
  }
  // With every node down for good, the publisher gives up after max_attempts.
  for (const sim::Address& node : region.memds) region.world.power_off(node.host);
  region.publisher().publish(table_map(TableId(1), 2, 4));
  region.run_for(sim::seconds(5));
  EXPECT_EQ(region.publisher().publisher().pending_updates(), 0u);
  EXPECT_EQ(region.publisher().publisher().stats().nodes_given_up, 3u);
}

// A node is powered off (losing its memory) while maps are pushed and the publisher gives up on
// it; once back, anti-entropy alone fills it.
TEST(MemdsTest, ANodeDownDuringUpdatesConvergesThroughAntiEntropy) {
  RegionOptions options;
  options.publisher.max_attempts = 3;
  Region region(options);
  region.publisher().publish(table_map(TableId(1), 100, 1));
  region.run_for(sim::milliseconds(100));
  region.world.power_off(region.memds[2].host);
  // While it is down: a new table, and a new version of the first one's map.
  region.publisher().publish(table_map(TableId(2), 300, 1));
  region.publisher().publish(table_map(TableId(1), 100, 2, /*first_group=*/500));
  region.run_for(sim::seconds(2));
  EXPECT_GT(region.publisher().publisher().stats().nodes_given_up, 0u);
  region.world.power_on(region.memds[2].host);
  region.run_for(sim::milliseconds(10));
  EXPECT_EQ(region.node(2).tree().size(), 0u);  // in memory only: it came back empty
  EXPECT_FALSE(all_roots_equal(region));
  region.run_for(sim::seconds(30));
  EXPECT_TRUE(all_roots_equal(region));
  EXPECT_EQ(region.node(2).tree().size(), 400u);
  EXPECT_EQ(region.node(2).lookup(TableId(1), 0)->version, 2u);
  EXPECT_EQ(region.node(2).stats().sync_entries_applied, 400u);
  EXPECT_TRUE(region.node(2).tree().verify());
}

// Two nodes overwrite a map with a newer version while the third is cut off; after the cut heals
// the third must converge through anti-entropy alone. Returns whether it did.
bool cut_off_node_converges(PerkleOptions perkle) {
  RegionOptions options;
  options.publisher.max_attempts = 2;
  options.memds.perkle = perkle;
  Region region(options);
  region.publisher().publish(table_map(TableId(1), 200, 1));
  region.run_for(sim::milliseconds(100));
  const sim::PartitionId cut = region.world.network().isolate_host(region.memds[2].host);
  region.publisher().publish(table_map(TableId(1), 200, 2, /*first_group=*/900));
  region.run_for(sim::seconds(2));
  region.world.network().heal(cut);
  region.run_for(sim::seconds(30));
  for (size_t i = 0; i < region.memds.size(); ++i) {
    const auto entry = region.node(i).lookup(TableId(1), 12345);
    if (!entry.has_value() || entry->version != 2) return false;
  }
  return true;
}

TEST(MemdsTest, ACutOffNodeCatchesUpOnOverwrites) {
  EXPECT_TRUE(cut_off_node_converges(PerkleOptions{}));
}

TEST(MemdsTest, PlantedSkipHashUpdateStopsAntiEntropyFromRepairing) {
  PerkleOptions planted;
  planted.plant_skip_hash_update = true;
  EXPECT_FALSE(cut_off_node_converges(planted));
}

TEST(MemdsTest, AntiEntropyCopiesOnlyWhatDiffers) {
  RegionOptions options;
  options.publisher.max_attempts = 2;
  Region region(options);
  region.publisher().publish(table_map(TableId(1), 1000, 1));
  region.run_for(sim::seconds(1));
  const sim::PartitionId cut = region.world.network().isolate_host(region.memds[2].host);
  std::vector<PartitionEntry> changed = table_map(TableId(1), 1000, 2);
  changed.resize(3);  // three partitions move
  region.publisher().publish(changed);
  region.run_for(sim::seconds(2));
  region.world.network().heal(cut);
  uint64_t sent_before = 0;
  for (size_t i = 0; i < 3; ++i) sent_before += region.node(i).stats().sync_entries_sent;
  region.run_for(sim::seconds(10));
  EXPECT_TRUE(all_roots_equal(region));
  EXPECT_EQ(region.node(2).stats().sync_entries_applied, 3u);
  uint64_t sent_after = 0;
  for (size_t i = 0; i < 3; ++i) sent_after += region.node(i).stats().sync_entries_sent;
  // Each differing leaf travels in small batches, never the whole 1000-entry map.
  EXPECT_LT(sent_after - sent_before, 200u);
}

}  // namespace
}  // namespace dynasim::model
