// The Perkle tree against std::map over seeded random operation sequences (find, floor, ceiling,
// range, prefix queries, size, shape and hash verification); Merkle roots equal iff contents are
// equal, whatever the build order; prefix hashes comparable across trees; diff finds exactly the
// differing keys. The planted bug (a leaf hash not updated on overwrite) is shown caught.
#include "model/perkle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <vector>

#include "sim/random.h"

namespace dynasim::model {
namespace {

// Keys cluster so that the trie has long shared prefixes and the map sees overwrites: a few
// tables, hashes drawn from a small pool half of the time.
PerkleKey random_key(sim::Random& random, const std::vector<uint64_t>& pool) {
  PerkleKey key;
  key.table = random.uniform_u64(4);
  if (random.bernoulli(0.05)) key.table = random.next_u64();
  key.hash = random.bernoulli(0.5) ? pool[random.uniform_u64(pool.size())] : random.next_u64();
  if (random.bernoulli(0.1)) key.hash &= 0xffff;  // small hashes: shared high zero bits
  return key;
}

PartitionEntry random_entry(sim::Random& random, const PerkleKey& key) {
  PartitionEntry entry;
  entry.table = TableId(static_cast<uint32_t>(key.table));
  entry.hash_begin = key.hash;
  // The tree keys by table id and hash; tables beyond 32 bits keep their full key here.
  entry.hash_end = key.hash + random.uniform_u64(1000);
  entry.group = GroupId(static_cast<uint32_t>(random.uniform_u64(100)));
  entry.members.epoch = random.uniform_u64(5);
  for (int r = 0; r < 3; ++r) {
    entry.members.replicas.push_back(
        sim::Address{sim::HostId(static_cast<uint32_t>(random.uniform_u64(50))), 8000});
  }
  if (random.bernoulli(0.5)) entry.leader_hint = entry.members.replicas[0];
  entry.version = random.uniform_u64(10);
  entry.retired = random.bernoulli(0.1);
  return entry;
}

// Tables are 32-bit ids in entries; keep generated keys within that.
PerkleKey clamp_table(PerkleKey key) {
  key.table &= 0xffffffffULL;
  return key;
}

std::vector<uint64_t> hash_pool(sim::Random& random) {
  std::vector<uint64_t> pool;
  for (int i = 0; i < 40; ++i) pool.push_back(random.next_u64());
  return pool;
}

using Model = std::map<PerkleKey, PartitionEntry>;

std::vector<PartitionEntry> model_entries(const Model& model) {
  std::vector<PartitionEntry> out;
  for (const auto& [key, entry] : model) out.push_back(entry);
  return out;
}

// Checks every query at `probe` against the model; returns false on the first difference.
::testing::AssertionResult queries_agree(const PerkleTree& tree, const Model& model,
                                         const PerkleKey& probe, const PerkleKey& probe_hi) {
  const PartitionEntry* found = tree.find(probe);
  auto it = model.find(probe);
  if ((found != nullptr) != (it != model.end()) || (found != nullptr && !(*found == it->second))) {
    return ::testing::AssertionFailure() << "find";
  }
  const PartitionEntry* floor = tree.floor(probe);
  auto upper = model.upper_bound(probe);
  const PartitionEntry* expected_floor =
      upper == model.begin() ? nullptr : &std::prev(upper)->second;
  if ((floor == nullptr) != (expected_floor == nullptr) ||
      (floor != nullptr && !(*floor == *expected_floor))) {
    return ::testing::AssertionFailure() << "floor";
  }
  const PartitionEntry* ceiling = tree.ceiling(probe);
  auto lower = model.lower_bound(probe);
  if ((ceiling == nullptr) != (lower == model.end()) ||
      (ceiling != nullptr && !(*ceiling == lower->second))) {
    return ::testing::AssertionFailure() << "ceiling";
  }
  std::vector<PartitionEntry> expected_range;
  for (auto r = model.lower_bound(probe); r != model.end() && r->first <= probe_hi; ++r) {
    if (expected_range.size() == 25) break;
    expected_range.push_back(r->second);
  }
  if (probe <= probe_hi && tree.range(probe, probe_hi, 25) != expected_range) {
    return ::testing::AssertionFailure() << "range";
  }
  for (uint32_t bits : {0u, 3u, 62u, 64u, 70u, 100u, 128u}) {
    std::vector<PartitionEntry> expected;
    for (const auto& [key, entry] : model) {
      if (PerkleKey::common_prefix_bits(key, probe) >= bits) expected.push_back(entry);
    }
    if (tree.count_with_prefix(probe, bits) != expected.size()) {
      return ::testing::AssertionFailure() << "count_with_prefix " << bits;
    }
    if (expected.size() > 50) expected.resize(50);
    if (tree.with_prefix(probe, bits, 50) != expected) {
      return ::testing::AssertionFailure() << "with_prefix " << bits;
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(PerkleTest, MatchesStdMapOverRandomOperations) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    sim::Random random(seed);
    const std::vector<uint64_t> pool = hash_pool(random);
    PerkleTree tree;
    Model model;
    for (int op = 0; op < 600; ++op) {
      const PerkleKey key = clamp_table(random_key(random, pool));
      const uint64_t choice = random.uniform_u64(10);
      if (choice < 6) {
        const PartitionEntry entry = random_entry(random, key);
        const bool added = tree.insert(entry);
        ASSERT_EQ(added, model.count(key) == 0) << "seed " << seed << " op " << op;
        model[key] = entry;
      } else if (choice < 9) {
        // Erase a present key most of the time.
        PerkleKey victim = key;
        if (!model.empty() && random.bernoulli(0.8)) {
          victim =
              std::next(model.begin(), static_cast<long>(random.uniform_u64(model.size())))->first;
        }
        ASSERT_EQ(tree.erase(victim), model.erase(victim) == 1) << "seed " << seed;
      } else if (random.bernoulli(0.05)) {
        tree.clear();
        model.clear();
      }
      ASSERT_EQ(tree.size(), model.size());
      const PerkleKey probe = clamp_table(random_key(random, pool));
      PerkleKey probe_hi = clamp_table(random_key(random, pool));
      if (random.bernoulli(0.5)) probe_hi = PerkleKey{probe.table, UINT64_MAX};
      ASSERT_TRUE(queries_agree(tree, model, probe, probe_hi)) << "seed " << seed << " op " << op;
      if (!model.empty()) {
        // Probe at an existing key too: floor and ceiling must return it.
        const PerkleKey present =
            std::next(model.begin(), static_cast<long>(random.uniform_u64(model.size())))->first;
        ASSERT_TRUE(queries_agree(tree, model, present, present));
      }
      if (op % 20 == 0) {
        ASSERT_TRUE(tree.verify()) << "seed " << seed << " op " << op;
      }
    }
    ASSERT_TRUE(tree.verify());
    EXPECT_EQ(tree.entries(), model_entries(model));
  }
}

// Builds a tree from `entries` inserted in a random order, with some extra keys inserted and
// erased on the way and some entries first written with another value.
PerkleTree build_shuffled(const std::vector<PartitionEntry>& entries, sim::Random& random,
                          PerkleOptions options = {}) {
  std::vector<PartitionEntry> order = entries;
  for (size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[random.uniform_u64(i)]);
  }
  PerkleTree tree(options);
  std::vector<PerkleKey> extras;
  for (const PartitionEntry& entry : order) {
    if (random.bernoulli(0.2)) {
      PartitionEntry other = entry;
      other.version += 1 + random.uniform_u64(5);
      tree.insert(other);  // overwritten below
    }
    if (random.bernoulli(0.2)) {
      PartitionEntry extra = entry;
      extra.hash_begin ^= random.next_u64() | 1;
      if (std::none_of(entries.begin(), entries.end(),
                       [&](const PartitionEntry& e) { return e.key() == extra.key(); })) {
        tree.insert(extra);
        extras.push_back(extra.key());
      }
    }
    tree.insert(entry);
  }
  for (const PerkleKey& key : extras) tree.erase(key);
  return tree;
}

std::vector<PartitionEntry> random_contents(sim::Random& random, size_t count) {
  const std::vector<uint64_t> pool = hash_pool(random);
  Model model;
  while (model.size() < count) {
    const PerkleKey key = clamp_table(random_key(random, pool));
    model[key] = random_entry(random, key);
  }
  return model_entries(model);
}

// The property "root hashes are equal iff the contents are equal", over many seeded cases.
// Returns the number of cases where it failed.
int root_hash_property_failures(PerkleOptions options) {
  int failures = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    sim::Random random(seed * 7919);
    const std::vector<PartitionEntry> contents =
        random_contents(random, 1 + random.uniform_u64(120));
    const PerkleTree a = build_shuffled(contents, random, options);
    const PerkleTree b = build_shuffled(contents, random, options);
    if (a.root_hash() != b.root_hash() || a.entries() != b.entries()) ++failures;
    if (!a.verify() || !b.verify()) ++failures;
    // One changed value, one missing key, one extra key: each must change the root.
    std::vector<PartitionEntry> changed = contents;
    changed[random.uniform_u64(changed.size())].version += 100;
    if (build_shuffled(changed, random, options).root_hash() == a.root_hash()) ++failures;
    std::vector<PartitionEntry> fewer = contents;
    fewer.erase(fewer.begin() + static_cast<long>(random.uniform_u64(fewer.size())));
    if (!fewer.empty() && build_shuffled(fewer, random, options).root_hash() == a.root_hash()) {
      ++failures;
    }
  }
  return failures;
}

TEST(PerkleTest, RootHashesEqualIffContentsEqual) {
  EXPECT_EQ(root_hash_property_failures(PerkleOptions{}), 0);
  PerkleTree empty;
  EXPECT_EQ(empty.root_hash(), 0u);
  EXPECT_TRUE(empty.verify());
}

TEST(PerkleTest, PlantedSkipHashUpdateIsCaught) {
  PerkleOptions planted;
  planted.plant_skip_hash_update = true;
  EXPECT_GT(root_hash_property_failures(planted), 0);
  // And directly: an overwrite leaves a stale hash that verify() sees.
  PerkleTree tree(planted);
  sim::Random random(3);
  for (const PartitionEntry& entry : random_contents(random, 20)) tree.insert(entry);
  ASSERT_TRUE(tree.verify());
  PartitionEntry first = tree.entries()[0];
  first.version += 1;
  tree.insert(first);
  EXPECT_FALSE(tree.verify());
}

TEST(PerkleTest, FloorMapsAHashToItsPartition) {
  PerkleTree tree;
  // Table 7 cut at 0, 1000, 5000; table 8 at 0.
  for (uint64_t begin : {0ull, 1000ull, 5000ull}) {
    PartitionEntry entry;
    entry.table = TableId(7);
    entry.hash_begin = begin;
    entry.hash_end = begin == 0 ? 999 : (begin == 1000 ? 4999 : UINT64_MAX);
    entry.group = GroupId(static_cast<uint32_t>(begin));
    tree.insert(entry);
  }
  PartitionEntry other;
  other.table = TableId(8);
  tree.insert(other);
  EXPECT_EQ(tree.floor(PerkleKey{7, 999})->hash_begin, 0u);
  EXPECT_EQ(tree.floor(PerkleKey{7, 1000})->hash_begin, 1000u);
  EXPECT_EQ(tree.floor(PerkleKey{7, 4321})->hash_begin, 1000u);
  EXPECT_EQ(tree.floor(PerkleKey{7, UINT64_MAX})->hash_begin, 5000u);
  EXPECT_EQ(tree.ceiling(PerkleKey{7, 1001})->hash_begin, 5000u);
  EXPECT_EQ(tree.ceiling(PerkleKey{7, 5001})->table, TableId(8));
  EXPECT_EQ(tree.floor(PerkleKey{6, UINT64_MAX}), nullptr);
  EXPECT_EQ(tree.with_prefix(PerkleKey{7, 0}, 64, 10).size(), 3u);
  EXPECT_EQ(tree.range(PerkleKey{7, 1}, PerkleKey{7, 5000}, 10).size(), 2u);
}

TEST(PerkleTest, PrefixHashesCompareAcrossTrees) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    sim::Random random(seed);
    const std::vector<PartitionEntry> contents = random_contents(random, 80);
    PerkleTree a = build_shuffled(contents, random);
    PerkleTree b = build_shuffled(contents, random);
    // Change table 1 in b only: every prefix outside table 1 still hashes the same.
    PartitionEntry added;
    added.table = TableId(1);
    added.hash_begin = random.next_u64();
    b.insert(added);
    EXPECT_NE(a.prefix_hash(PerkleKey{1, 0}, 64), b.prefix_hash(PerkleKey{1, 0}, 64));
    for (uint64_t table : {0ull, 2ull, 3ull}) {
      EXPECT_EQ(a.prefix_hash(PerkleKey{table, 0}, 64), b.prefix_hash(PerkleKey{table, 0}, 64));
    }
    EXPECT_EQ(a.prefix_hash(PerkleKey{1, added.hash_begin}, 128), 0u);
    EXPECT_NE(b.prefix_hash(PerkleKey{1, added.hash_begin}, 128), 0u);
  }
}

// diff() against the true symmetric difference, over seeded cases.
int diff_failures(PerkleOptions options, uint64_t* total_compares, uint64_t* total_entries) {
  int failures = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    sim::Random random(seed * 31);
    const std::vector<PartitionEntry> contents = random_contents(random, 200);
    PerkleTree a(options);
    for (const PartitionEntry& entry : contents) a.insert(entry);
    Model model_b;
    for (const PartitionEntry& entry : contents) model_b[entry.key()] = entry;
    std::set<PerkleKey> expected;
    const uint64_t changes = 1 + random.uniform_u64(6);
    for (uint64_t c = 0; c < changes; ++c) {
      auto it = std::next(model_b.begin(), static_cast<long>(random.uniform_u64(model_b.size())));
      const uint64_t kind = random.uniform_u64(3);
      if (kind == 0) {
        it->second.version += 1;  // changed value
        expected.insert(it->first);
      } else if (kind == 1) {
        expected.insert(it->first);  // missing in b
        model_b.erase(it);
      } else {
        PartitionEntry extra = it->second;
        extra.hash_begin += 1;
        if (model_b.count(extra.key()) == 0 && a.find(extra.key()) == nullptr) {
          model_b[extra.key()] = extra;
          expected.insert(extra.key());
        }
      }
    }
    // b is built fresh, then a's side of the changes is written over a copy of the old values so
    // that a stale hash (the planted bug) can hide a changed value.
    PerkleTree b(options);
    for (const PartitionEntry& entry : contents) b.insert(entry);
    for (const PartitionEntry& entry : contents) {
      if (model_b.count(entry.key()) == 0) b.erase(entry.key());
    }
    for (const auto& [key, entry] : model_b) b.insert(entry);
    uint64_t compares = 0;
    const std::vector<PerkleKey> found = PerkleTree::diff(a, b, 1000, &compares);
    if (std::set<PerkleKey>(found.begin(), found.end()) != expected ||
        found.size() != expected.size()) {
      ++failures;
    }
    *total_compares += compares;
    *total_entries += contents.size();
  }
  return failures;
}

TEST(PerkleTest, DiffFindsExactlyTheDifferingKeys) {
  uint64_t compares = 0;
  uint64_t entries = 0;
  EXPECT_EQ(diff_failures(PerkleOptions{}, &compares, &entries), 0);
  // Descending only into differing subtrees: far fewer comparisons than entries.
  EXPECT_LT(compares * 2, entries);
  PerkleTree a;
  PerkleTree b;
  EXPECT_TRUE(PerkleTree::diff(a, b, 10).empty());
}

TEST(PerkleTest, PlantedSkipHashUpdateHidesDifferencesFromDiff) {
  PerkleOptions planted;
  planted.plant_skip_hash_update = true;
  uint64_t compares = 0;
  uint64_t entries = 0;
  EXPECT_GT(diff_failures(planted, &compares, &entries), 0);
}

}  // namespace
}  // namespace dynasim::model
