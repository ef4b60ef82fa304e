// The storage replica's B+tree on the simulated disk: agreement with a std::map model under random
// operations and eviction, overflow items, checkpoints and recovery, power loss at every point of a
// checkpoint, bit rot, stale and misdirected pages, a corrupt superblock, and a full region. The
// two planted bugs (BTreeOptions::plant_*) are shown to make their guarding checks fail.
#include "model/btree.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "sim/random.h"
#include "sim/simulation.h"

namespace dynasim::model {
namespace {

using Model = std::map<PrimaryKey, Item>;

sim::DiskOptions test_disk() {
  sim::DiskOptions options;
  options.capacity_bytes = 256 << 20;
  return options;
}

BTreeOptions small_tree(uint64_t cache_pages = 8) {
  BTreeOptions options;
  options.region_offset_bytes = 4096 * 16;
  options.region_sectors = 16384;  // 64 MB
  options.cache_pages = cache_pages;
  options.max_queued_operations = 1 << 16;
  return options;
}

PrimaryKey key_of(uint64_t i, bool with_sort = false) {
  char text[32];
  std::snprintf(text, sizeof(text), "user%08llu", static_cast<unsigned long long>(i));
  PrimaryKey key{KeyValue::string(text), std::nullopt};
  if (with_sort) {
    // Numbers of both signs and fractions, so the order-preserving number encoding is exercised.
    Decimal number;
    const std::string digits =
        (i % 3 == 0 ? "-" : "") + std::to_string(i % 97) + "." + std::to_string(i % 13);
    EXPECT_TRUE(Decimal::parse(digits, &number));
    key.partition = KeyValue::string("p" + std::to_string(i % 5));
    key.sort = KeyValue::number_value(number);
  }
  return key;
}

Item item_of(const PrimaryKey& key, uint64_t version, size_t string_bytes) {
  Item item(key);
  item.set("payload", Payload{1024, version, sim::splitmix64(version)});
  item.set("ver", Decimal::from_int(static_cast<int64_t>(version)));
  if (string_bytes > 0)
    item.set("text", std::string(string_bytes, static_cast<char>('a' + version % 26)));
  if (version % 7 == 0) item.set("flag", version % 2 == 0);
  if (version % 11 == 0) item.set("nothing", Null{});
  if (version % 5 == 0)
    item.set("raw", std::vector<uint8_t>{1, 2, 3, static_cast<uint8_t>(version)});
  return item;
}

uint64_t multiset_digest(const Model& model) {
  uint64_t sum = 0;
  for (const auto& [key, item] : model) {
    const std::vector<uint8_t> bytes = item.encode();
    sum += sim::hash_bytes(0, bytes.data(), bytes.size());
  }
  return sum;
}

uint64_t ordered_digest(const Model& model) {
  uint64_t digest = 0;
  for (const auto& [key, item] : model) {
    const std::vector<uint8_t> bytes = item.encode();
    digest = sim::hash_bytes(digest, bytes.data(), bytes.size());
  }
  return digest;
}

struct Fixture {
  explicit Fixture(BTreeOptions options_in = small_tree(),
                   sim::DiskOptions disk_options = test_disk(), uint64_t seed = 1)
      : simulation(seed),
        disk(simulation, sim::DiskId(0), "btree-test", disk_options),
        options(options_in),
        tree(std::make_unique<BTree>(disk, options)) {}

  // Runs the simulation until `done` is set (operations on resident pages are already done).
  void wait(const bool& done) {
    for (int i = 0; i < 10'000'000 && !done; ++i) {
      if (!simulation.step()) break;
    }
    ASSERT_TRUE(done) << "operation never completed";
  }

  BTreeStatus put(Item item) {
    bool done = false;
    BTreeStatus result = BTreeStatus::kIoError;
    tree->put(std::move(item), [&](BTreeStatus s) {
      result = s;
      done = true;
    });
    wait(done);
    return result;
  }
  BTreeStatus put_encoded(const Item& item) {
    bool done = false;
    BTreeStatus result = BTreeStatus::kIoError;
    tree->put_encoded(item.encode(), [&](BTreeStatus s) {
      result = s;
      done = true;
    });
    wait(done);
    return result;
  }
  BTreeStatus erase(const PrimaryKey& key) {
    bool done = false;
    BTreeStatus result = BTreeStatus::kIoError;
    tree->erase(key, [&](BTreeStatus s) {
      result = s;
      done = true;
    });
    wait(done);
    return result;
  }
  std::pair<BTreeStatus, std::optional<Item>> get(const PrimaryKey& key) {
    bool done = false;
    std::pair<BTreeStatus, std::optional<Item>> result;
    tree->get(key, [&](BTreeStatus s, std::optional<Item> item) {
      result = {s, std::move(item)};
      done = true;
    });
    wait(done);
    return result;
  }
  BTreeStatus checkpoint(std::vector<uint8_t> bytes = {}) {
    bool done = false;
    BTreeStatus result = BTreeStatus::kIoError;
    tree->checkpoint(CheckpointMetadata{0, std::move(bytes)}, [&](BTreeStatus s) {
      result = s;
      done = true;
    });
    wait(done);
    return result;
  }
  // Every item, through paged scans; the status of the first failing page.
  BTreeStatus scan_all(std::vector<Item>* out, uint32_t page = 37) {
    std::optional<PrimaryKey> from;
    for (int rounds = 0; rounds < 1'000'000; ++rounds) {
      bool done = false;
      BTreeStatus status = BTreeStatus::kIoError;
      std::optional<PrimaryKey> next;
      tree->scan(from, page,
                 [&](BTreeStatus s, std::vector<Item> items, std::optional<PrimaryKey> n) {
                   status = s;
                   for (Item& item : items) out->push_back(std::move(item));
                   next = std::move(n);
                   done = true;
                 });
      wait(done);
      if (status != BTreeStatus::kOk) return status;
      if (!next.has_value()) return BTreeStatus::kOk;
      from = std::move(next);
    }
    return BTreeStatus::kIoError;
  }
  BTreeRecovery restart() {
    tree.reset();
    tree = std::make_unique<BTree>(disk, options);
    bool done = false;
    BTreeRecovery result;
    tree->recover([&](BTreeRecovery r) {
      result = std::move(r);
      done = true;
    });
    wait(done);
    return result;
  }
  void power_cycle() {
    disk.power_off();
    tree.reset();  // the process dies with the host
    disk.power_on();
  }

  sim::Simulation simulation;
  sim::Disk disk;
  BTreeOptions options;
  std::unique_ptr<BTree> tree;
};

// The tree's whole content against the model: "" when equal, else what differs.
std::string compare_content(Fixture& f, const Model& model) {
  std::vector<Item> items;
  const BTreeStatus status = f.scan_all(&items);
  if (status != BTreeStatus::kOk) return std::string("scan failed: ") + to_string(status);
  if (items.size() != model.size()) {
    return "item count " + std::to_string(items.size()) + " != " + std::to_string(model.size());
  }
  auto it = model.begin();
  for (size_t i = 0; i < items.size(); ++i, ++it) {
    if (!(items[i] == it->second)) return "item " + std::to_string(i) + " differs";
  }
  if (f.tree->content_digest() != multiset_digest(model)) return "content_digest differs";
  if (f.tree->item_count() != model.size()) return "item_count differs";
  return "";
}

TEST(BTreeTest, ContentDigestMatchesItemEncodeForEveryValueKind) {
  Fixture f;
  Model model;
  for (uint64_t v = 0; v < 40; ++v) {
    Item item = item_of(key_of(v, v % 2 == 0), v, v * 3);
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
    ASSERT_EQ(f.tree->content_digest(), multiset_digest(model)) << v;
  }
  EXPECT_EQ(compare_content(f, model), "");
}

TEST(BTreeTest, PutEncodedStoresWhatPutStores) {
  // Every value kind, number and string keys, inline and overflow records: a tree fed canonical
  // encodings holds the same items, pages and digest as one fed Items.
  Fixture from_items;
  Fixture from_bytes;
  Model model;
  for (uint64_t v = 0; v < 60; ++v) {
    Item item = item_of(key_of(v % 45, v % 2 == 0), v, v % 20 == 0 ? 9000 + v : v * 3);
    if (v % 9 == 0) item.set("blob", Payload{5'000 + v, v, 0xabc0 + v});
    model[item.key()] = item;
    ASSERT_EQ(from_items.put(item), BTreeStatus::kOk);
    ASSERT_EQ(from_bytes.put_encoded(item), BTreeStatus::kOk);
    ASSERT_EQ(from_bytes.tree->content_digest(), from_items.tree->content_digest()) << v;
    ASSERT_EQ(from_bytes.tree->item_count(), from_items.tree->item_count()) << v;
  }
  EXPECT_EQ(from_bytes.tree->content_digest(), multiset_digest(model));
  EXPECT_EQ(compare_content(from_bytes, model), "");
  ASSERT_EQ(from_items.checkpoint(), BTreeStatus::kOk);
  ASSERT_EQ(from_bytes.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(from_bytes.disk.stats().bytes_written, from_items.disk.stats().bytes_written);
}

TEST(BTreeTest, NumberKeysKeepDecimalOrder) {
  Fixture f;
  Model model;
  const char* numbers[] = {"-1e100", "-12.5", "-12.25", "-12", "-0.001", "0",    "0.001",
                           "0.0011", "1",     "1.5",    "10",  "12.25",  "1e20", "99999999"};
  for (size_t i = 0; i < std::size(numbers); ++i) {
    Decimal number;
    ASSERT_TRUE(Decimal::parse(numbers[(i * 5) % std::size(numbers)], &number));
    Item item(PrimaryKey{KeyValue::number_value(number), std::nullopt});
    item.set("i", Decimal::from_int(static_cast<int64_t>(i)));
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  EXPECT_EQ(compare_content(f, model), "");
}

// Random puts, erases, gets and scans against a std::map, with a cache of a few pages so that
// leaves are evicted and read back (verified) all the time, and checkpoints so eviction can happen.
void random_operations(uint64_t seed, int operations) {
  Fixture f(small_tree(/*cache_pages=*/4), test_disk(), seed);
  sim::Random random(seed);
  Model model;
  for (int op = 0; op < operations; ++op) {
    const uint64_t k = random.uniform_u64(3000);
    const PrimaryKey key = key_of(k, k % 4 == 0);
    const uint64_t dice = random.uniform_u64(100);
    if (dice < 60) {
      const bool large = random.uniform_u64(200) == 0;
      const size_t text = large ? 5000 + random.uniform_u64(60000) : random.uniform_u64(120);
      Item item = item_of(key, random.uniform_u64(1000), text);
      model[key] = item;
      // Half the puts arrive as the item's canonical encoding, as the replication log has them.
      if (dice % 2 == 0) {
        ASSERT_EQ(f.put_encoded(item), BTreeStatus::kOk);
      } else {
        ASSERT_EQ(f.put(std::move(item)), BTreeStatus::kOk);
      }
    } else if (dice < 80) {
      const BTreeStatus status = f.erase(key);
      ASSERT_EQ(status, model.erase(key) ? BTreeStatus::kOk : BTreeStatus::kNotFound);
    } else if (dice < 95) {
      auto [status, item] = f.get(key);
      auto it = model.find(key);
      if (it == model.end()) {
        ASSERT_EQ(status, BTreeStatus::kNotFound);
      } else {
        ASSERT_EQ(status, BTreeStatus::kOk);
        ASSERT_TRUE(item.has_value() && *item == it->second);
      }
    } else if (dice < 99) {
      const uint32_t count = static_cast<uint32_t>(random.uniform_u64(50));
      bool done = false;
      f.tree->scan(key, count,
                   [&](BTreeStatus s, std::vector<Item> items, std::optional<PrimaryKey> next) {
                     ASSERT_EQ(s, BTreeStatus::kOk);
                     auto it = model.lower_bound(key);
                     for (const Item& item : items) {
                       ASSERT_TRUE(it != model.end());
                       ASSERT_EQ(item, it->second);
                       ++it;
                     }
                     ASSERT_LE(items.size(), count);
                     if (items.size() < count) {
                       ASSERT_TRUE(it == model.end());
                     }
                     if (next.has_value()) {
                       ASSERT_TRUE(it == model.end() || !(*next > it->first));
                     } else {
                       ASSERT_TRUE(it == model.end());
                     }
                     done = true;
                   });
      f.wait(done);
    } else {
      ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
    }
    ASSERT_EQ(f.tree->item_count(), model.size());
    if (op % 1000 == 0) {
      ASSERT_EQ(f.tree->content_digest(), multiset_digest(model));
    }
  }
  ASSERT_EQ(compare_content(f, model), "");
  bool done = false;
  f.tree->digest([&](BTreeStatus s, uint64_t digest, uint64_t count) {
    EXPECT_EQ(s, BTreeStatus::kOk);
    EXPECT_EQ(digest, ordered_digest(model));
    EXPECT_EQ(count, model.size());
    done = true;
  });
  f.wait(done);
  const BTreeStats stats = f.tree->stats();
  EXPECT_GT(stats.page_reads, 0u) << "the cache never missed: eviction is not exercised";
  EXPECT_EQ(stats.verification_failures, 0u);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  const uint64_t digest = f.tree->content_digest();
  const BTreeRecovery recovery = f.restart();
  ASSERT_EQ(recovery.status, BTreeStatus::kOk);
  EXPECT_EQ(recovery.item_count, model.size());
  EXPECT_EQ(f.tree->content_digest(), digest);
  EXPECT_EQ(compare_content(f, model), "");
  EXPECT_TRUE(f.tree->healthy());
}

TEST(BTreeTest, RandomOperationsMatchAMapSeed1) {
  random_operations(1, 30000);
}
TEST(BTreeTest, RandomOperationsMatchAMapSeed2) {
  random_operations(2, 30000);
}
TEST(BTreeTest, RandomOperationsMatchAMapSeed3) {
  random_operations(3, 30000);
}
TEST(BTreeTest, RandomOperationsMatchAMapSeed4) {
  random_operations(4, 30000);
}

TEST(BTreeTest, OverflowItemsUpTo400KBSurviveCheckpointAndRecovery) {
  Fixture f(small_tree(2));
  Model model;
  const size_t sizes[] = {2000, 4048, 4049, 100000, 399000};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    Item item = item_of(key_of(i * 10), i, sizes[i]);
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  for (uint64_t i = 0; i < 300; ++i) {  // small neighbours so the big ones share leaves
    Item item = item_of(key_of(i * 10 + 5), i, 10);
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  EXPECT_EQ(compare_content(f, model), "");
  ASSERT_EQ(f.checkpoint({1, 2, 3}), BTreeStatus::kOk);
  // Replace a large item by a small one and a small one by a large one, erase another large one.
  Item small = item_of(key_of(30), 77, 3);
  Item big = item_of(key_of(15), 78, 50000);
  model[small.key()] = small;
  model[big.key()] = big;
  model.erase(key_of(40));
  ASSERT_EQ(f.put(small), BTreeStatus::kOk);
  ASSERT_EQ(f.put(big), BTreeStatus::kOk);
  ASSERT_EQ(f.erase(key_of(40)), BTreeStatus::kOk);
  EXPECT_EQ(compare_content(f, model), "");
  ASSERT_EQ(f.checkpoint({4}), BTreeStatus::kOk);
  const BTreeRecovery recovery = f.restart();
  ASSERT_EQ(recovery.status, BTreeStatus::kOk);
  EXPECT_EQ(recovery.metadata.bytes, std::vector<uint8_t>{4});
  EXPECT_EQ(compare_content(f, model), "");
  auto [status, item] = f.get(key_of(15));
  ASSERT_EQ(status, BTreeStatus::kOk);
  EXPECT_EQ(*item, big);
}

TEST(BTreeTest, CheckpointThenRecoverGivesIdenticalContentDigestAndMetadata) {
  Fixture f;
  Model model;
  for (uint64_t i = 0; i < 5000; ++i) {
    Item item = item_of(key_of(i * 7919 % 100000), i, 20);
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  const BTreeRecovery fresh = f.restart();  // nothing checkpointed yet
  EXPECT_FALSE(fresh.found_checkpoint);
  EXPECT_EQ(fresh.status, BTreeStatus::kOk);
  EXPECT_EQ(f.tree->item_count(), 0u);
  for (const auto& [key, item] : model) ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint({9, 9}), BTreeStatus::kOk);
  EXPECT_EQ(f.tree->durable_metadata().bytes, (std::vector<uint8_t>{9, 9}));
  const uint64_t generation = f.tree->durable_metadata().generation;
  const uint64_t digest = f.tree->content_digest();
  const BTreeRecovery recovery = f.restart();
  ASSERT_EQ(recovery.status, BTreeStatus::kOk);
  EXPECT_TRUE(recovery.found_checkpoint);
  EXPECT_EQ(recovery.metadata.generation, generation);
  EXPECT_EQ(recovery.metadata.bytes, (std::vector<uint8_t>{9, 9}));
  EXPECT_EQ(recovery.item_count, model.size());
  EXPECT_EQ(f.tree->content_digest(), digest);
  EXPECT_EQ(compare_content(f, model), "");
  // Leaves are read lazily: the recovered tree reads pages as they are needed.
  EXPECT_GT(f.tree->stats().page_reads, 10u);
}

TEST(BTreeTest, ErasingEverythingShrinksTheTree) {
  Fixture f;
  for (uint64_t i = 0; i < 20000; ++i)
    ASSERT_EQ(f.put(item_of(key_of(i), i, 30)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  const uint64_t full_pages = f.tree->stats().pages_in_tree;
  EXPECT_GT(full_pages, 200u);
  sim::Random random(5);
  for (uint64_t i = 0; i < 20000; ++i) {
    ASSERT_EQ(f.erase(key_of((i * 7919) % 20000)), BTreeStatus::kOk);
    if (i == 15000) {
      EXPECT_LT(f.tree->stats().pages_in_tree, full_pages / 2) << "leaves are not merged";
    }
  }
  EXPECT_EQ(f.tree->item_count(), 0u);
  EXPECT_EQ(f.tree->stats().pages_in_tree, 1u);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  // Refilling reuses the freed slots rather than growing the disk footprint.
  const uint64_t used = f.disk.used_bytes();
  for (uint64_t i = 0; i < 20000; ++i)
    ASSERT_EQ(f.put(item_of(key_of(i), i, 30)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.disk.used_bytes(), used);
}

TEST(BTreeTest, OperationsCompleteInFifoOrderAcrossDiskReads) {
  Fixture f(small_tree(1));
  for (uint64_t i = 0; i < 3000; ++i) ASSERT_EQ(f.put(item_of(key_of(i), i, 40)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  f.tree->drop_clean_pages();
  std::vector<int> order;
  std::optional<Item> seen;
  f.tree->get(key_of(5), [&](BTreeStatus s, std::optional<Item>) {
    EXPECT_EQ(s, BTreeStatus::kOk);
    order.push_back(1);
  });
  EXPECT_TRUE(order.empty()) << "a cold read completed inside the call";
  f.tree->put(item_of(key_of(2500), 999, 1), [&](BTreeStatus s) {
    EXPECT_EQ(s, BTreeStatus::kOk);
    order.push_back(2);
  });
  f.tree->get(key_of(2500), [&](BTreeStatus s, std::optional<Item> item) {
    EXPECT_EQ(s, BTreeStatus::kOk);
    seen = std::move(item);
    order.push_back(3);
  });
  bool done = false;
  f.tree->erase(key_of(6), [&](BTreeStatus s) {
    EXPECT_EQ(s, BTreeStatus::kOk);
    order.push_back(4);
    done = true;
  });
  f.wait(done);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(*seen, item_of(key_of(2500), 999, 1));
  // A resident operation with nothing queued completes inside the call.
  bool sync = false;
  f.tree->get(key_of(2500), [&](BTreeStatus, std::optional<Item>) { sync = true; });
  EXPECT_TRUE(sync);
}

// --- Power loss during a checkpoint
// ---------------------------------------------------------------

// Checkpoint 1 holds `before`; checkpoint 2 (with `after`) is cut by a power-off after `steps`
// simulation events. Recovery must give exactly one of the two. Returns "" or the failure, and sets
// *finished when the checkpoint completed within `steps`.
std::string power_off_during_checkpoint(BTreeOptions options, int steps, bool* finished) {
  sim::DiskOptions disk_options = test_disk();
  disk_options.torn_write_probability = 1.0;
  Fixture f(options, disk_options, 7);
  Model before;
  for (uint64_t i = 0; i < 3000; ++i) {
    Item item = item_of(key_of(i), i, i % 100 == 0 ? 6000 : 40);
    before[item.key()] = item;
    if (f.put(item) != BTreeStatus::kOk) return "put failed";
  }
  if (f.checkpoint({1}) != BTreeStatus::kOk) return "checkpoint 1 failed";
  Model after = before;
  for (uint64_t i = 0; i < 3000; i += 3) {
    Item item = item_of(key_of(i), i + 5000, i % 300 == 0 ? 9000 : 50);
    after[item.key()] = item;
    if (f.put(item) != BTreeStatus::kOk) return "put failed";
  }
  for (uint64_t i = 1; i < 3000; i += 11) {
    after.erase(key_of(i));
    if (f.erase(key_of(i)) != BTreeStatus::kOk) return "erase failed";
  }
  bool done = false;
  f.tree->checkpoint(CheckpointMetadata{0, {2}}, [&](BTreeStatus) { done = true; });
  for (int i = 0; i < steps && !done; ++i) f.simulation.step();
  *finished = done;
  f.power_cycle();
  const BTreeRecovery recovery = f.restart();
  if (recovery.status != BTreeStatus::kOk) {
    return std::string("recovery failed: ") + to_string(recovery.status);
  }
  if (recovery.metadata.bytes.size() != 1) return "no metadata";
  const Model& expected = recovery.metadata.bytes[0] == 1 ? before : after;
  if (done && recovery.metadata.bytes[0] != 2) return "a completed checkpoint was lost";
  const std::string difference = compare_content(f, expected);
  if (!difference.empty()) {
    return "after power-off at step " + std::to_string(steps) + " (checkpoint " +
           std::to_string(recovery.metadata.bytes[0]) + "): " + difference;
  }
  return "";
}

TEST(BTreeTest, PowerOffAtEveryPointOfACheckpointRecoversOneCheckpointExactly) {
  int points = 0;
  for (int steps = 0; steps < 10000; ++steps) {
    bool finished = false;
    ASSERT_EQ(power_off_during_checkpoint(small_tree(), steps, &finished), "");
    ++points;
    if (finished) break;
  }
  EXPECT_GE(points, 5) << "the checkpoint has fewer steps than writes, fsync, superblock, fsync";
}

TEST(BTreeTest, PlantedOverwriteOfLivePagesLosesDataOnPowerOff) {
  BTreeOptions options = small_tree();
  options.plant_overwrite_live_pages = true;
  int failures = 0;
  for (int steps = 0; steps < 10000; ++steps) {
    bool finished = false;
    const std::string failure = power_off_during_checkpoint(options, steps, &finished);
    if (!failure.empty() && failures++ == 0) RecordProperty("first_failure", failure);
    if (finished) break;
  }
  EXPECT_GT(failures, 0) << "the power-off check did not catch checkpoints written in place";
}

// --- Corruption ---------------------------------------------------------------------------------

// A bit flip in one leaf's durable image: that range answers kCorrupt, the rest is served.
std::string bit_flip_in_leaf(BTreeOptions options) {
  Fixture f(options);
  for (uint64_t i = 0; i < 2000; ++i) {
    if (f.put(item_of(key_of(i), i, 200)) != BTreeStatus::kOk) return "put failed";
  }
  if (f.checkpoint() != BTreeStatus::kOk) return "checkpoint failed";
  const std::optional<uint64_t> sector = f.tree->leaf_sector_for(key_of(1000));
  if (!sector.has_value()) return "no sector";
  // The middle of the page: inside the records' text.
  f.disk.inject_bit_flip(*sector, 8 * 2100 + 3);
  if (f.restart().status != BTreeStatus::kOk) return "recovery failed (leaves are lazy)";
  auto [status, item] = f.get(key_of(1000));
  if (status != BTreeStatus::kCorrupt) {
    return std::string("a corrupt page was served: get answered ") + to_string(status);
  }
  if (f.tree->healthy() || f.tree->unhealthy_ranges().size() != 1) return "range not reported";
  const KeyRangeBounds& range = f.tree->unhealthy_ranges()[0];
  if (!range.begin.has_value() || !range.end.has_value() || !(*range.begin <= key_of(1000)) ||
      !(key_of(1000) < *range.end)) {
    return "the unhealthy range does not hold the key";
  }
  if (f.get(key_of(0)).first != BTreeStatus::kOk || f.get(key_of(1999)).first != BTreeStatus::kOk) {
    return "other ranges are not served";
  }
  if (f.put(item_of(key_of(1000), 1, 1)) != BTreeStatus::kCorrupt) return "put into corrupt range";
  std::vector<Item> items;
  if (f.scan_all(&items) != BTreeStatus::kCorrupt) return "scan crossed the corrupt range";
  if (f.tree->stats().verification_failures != 1) return "verification failure not counted";
  return "";
}

TEST(BTreeTest, BitFlipInALeafIsCaughtAndOnlyItsRangeIsUnhealthy) {
  EXPECT_EQ(bit_flip_in_leaf(small_tree()), "");
}

TEST(BTreeTest, PlantedSkipOfPageVerificationServesACorruptPage) {
  BTreeOptions options = small_tree();
  options.plant_skip_page_verification = true;
  const std::string failure = bit_flip_in_leaf(options);
  EXPECT_NE(failure, "");
  RecordProperty("failure", failure);
}

void write_sector(Fixture& f, uint64_t sector, std::vector<uint8_t> bytes) {
  bool done = false;
  f.disk.write(sector * 4096, std::move(bytes), [&](sim::IoStatus s) {
    EXPECT_EQ(s, sim::IoStatus::kOk);
    f.disk.fsync([&](sim::IoStatus) { done = true; });
  });
  f.wait(done);
}

TEST(BTreeTest, AStaleButValidPageImageIsCaughtByTheParentChecksum) {
  Fixture f;
  for (uint64_t i = 0; i < 2000; ++i)
    ASSERT_EQ(f.put(item_of(key_of(i), i, 100)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  const uint64_t old_sector = *f.tree->leaf_sector_for(key_of(700));
  const std::vector<uint8_t> old_image = f.disk.durable_sector(old_sector);
  // Rewrite the leaf twice: the second time it lands in a free slot, likely its old one.
  ASSERT_EQ(f.put(item_of(key_of(700), 1, 100)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  ASSERT_EQ(f.put(item_of(key_of(700), 2, 100)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  const uint64_t live_sector = *f.tree->leaf_sector_for(key_of(700));
  // The old image is internally valid: its own checksum holds (and its page number too when the
  // leaf came back to its old slot: a stale page; otherwise a misdirected one).
  write_sector(f, live_sector, old_image);
  ASSERT_EQ(f.restart().status, BTreeStatus::kOk);
  EXPECT_EQ(f.get(key_of(700)).first, BTreeStatus::kCorrupt);
  EXPECT_EQ(f.get(key_of(0)).first, BTreeStatus::kOk);
  EXPECT_FALSE(f.tree->healthy());
}

TEST(BTreeTest, AMisdirectedPageFromAnotherSlotIsCaught) {
  Fixture f;
  for (uint64_t i = 0; i < 2000; ++i)
    ASSERT_EQ(f.put(item_of(key_of(i), i, 100)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  const uint64_t victim = *f.tree->leaf_sector_for(key_of(100));
  const uint64_t other = *f.tree->leaf_sector_for(key_of(1900));
  ASSERT_NE(victim, other);
  write_sector(f, victim, f.disk.durable_sector(other));
  ASSERT_EQ(f.restart().status, BTreeStatus::kOk);
  EXPECT_EQ(f.get(key_of(100)).first, BTreeStatus::kCorrupt);
  EXPECT_EQ(f.get(key_of(1900)).first, BTreeStatus::kOk);
}

TEST(BTreeTest, PagesThatFailVerificationAreReportedToTheDisk) {
  Fixture f;
  for (uint64_t i = 0; i < 3000; ++i)
    ASSERT_EQ(f.put(item_of(key_of(i), i, 120)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  f.tree->drop_clean_pages();
  f.disk.inject_bit_flip(*f.tree->leaf_sector_for(key_of(200)), 8 * 900);
  f.simulation.run_until(f.simulation.now() + sim::seconds(5));
  EXPECT_EQ(f.get(key_of(200)).first, BTreeStatus::kCorrupt);
  const sim::CorruptionLedger& ledger = f.disk.corruption_ledger();
  ASSERT_EQ(ledger.records().size(), 1u);
  const sim::BitFlipRecord& record = ledger.records()[0];
  EXPECT_EQ(record.fate, sim::FlipFate::kDetected);
  EXPECT_EQ(record.by, "read");
  EXPECT_GE(record.fate_at - record.injected_at, sim::seconds(5));  // plus the read's latency
  EXPECT_LT(record.fate_at - record.injected_at, sim::seconds(6));
  // The read that returned the flip is the one that reported it: nothing corrupt got past.
  EXPECT_EQ(record.first_read_at, std::optional<sim::SimTime>(record.fate_at));
  EXPECT_EQ(f.disk.stats().pending_flip_reads, 1u);
  // A page that fails without any flipped bit (another leaf's image, as a misdirected write
  // leaves it) is reported too, and the disk counts it apart.
  const uint64_t victim = *f.tree->leaf_sector_for(key_of(2500));
  write_sector(f, victim, f.disk.durable_sector(*f.tree->leaf_sector_for(key_of(10))));
  f.tree->drop_clean_pages();
  EXPECT_EQ(f.get(key_of(2500)).first, BTreeStatus::kCorrupt);
  EXPECT_EQ(ledger.reports_without_flip(), 1u);
  EXPECT_EQ(ledger.reports_detecting(), 1u);
}

TEST(BTreeTest, ACorruptInnerPageFailsRecoveryForItsRange) {
  Fixture f;
  for (uint64_t i = 0; i < 20000; ++i)
    ASSERT_EQ(f.put(item_of(key_of(i), i, 10)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  // The superblock names the root; the root is an inner page. Find it through the superblock.
  const BTreeRecovery clean = f.restart();
  ASSERT_EQ(clean.status, BTreeStatus::kOk);
  const std::vector<uint8_t> super =
      f.disk.durable_sector(f.options.region_offset_bytes / 4096 + 1);
  uint64_t root_slot = 0;
  for (int i = 0; i < 8; ++i) root_slot |= static_cast<uint64_t>(super[48 + i]) << (8 * i);
  f.disk.inject_bit_flip(f.options.region_offset_bytes / 4096 + root_slot, 8 * 100);
  const BTreeRecovery recovery = f.restart();
  EXPECT_EQ(recovery.status, BTreeStatus::kCorrupt);
  EXPECT_EQ(f.get(key_of(5)).first, BTreeStatus::kCorrupt);
  EXPECT_FALSE(f.tree->healthy());
}

TEST(BTreeTest, ACorruptSuperblockFallsBackToTheOtherOne) {
  Fixture f;
  Model first;
  for (uint64_t i = 0; i < 1000; ++i) {
    Item item = item_of(key_of(i), i, 30);
    first[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  ASSERT_EQ(f.checkpoint({1}), BTreeStatus::kOk);  // generation 1
  for (uint64_t i = 0; i < 1000; i += 2)
    ASSERT_EQ(f.put(item_of(key_of(i), i + 1, 30)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint({2}), BTreeStatus::kOk);  // generation 2, the other slot
  const uint64_t region = f.options.region_offset_bytes / 4096;
  // Find the superblock of generation 2 and flip a bit in it.
  for (uint64_t s = 0; s < 2; ++s) {
    const std::vector<uint8_t> page = f.disk.durable_sector(region + s);
    if (page[24] == 2) f.disk.inject_bit_flip(region + s, 8 * 300 + 1);
  }
  const BTreeRecovery recovery = f.restart();
  ASSERT_EQ(recovery.status, BTreeStatus::kOk);
  EXPECT_EQ(recovery.metadata.bytes, std::vector<uint8_t>{1});
  EXPECT_EQ(compare_content(f, first), "");
  EXPECT_FALSE(f.tree->healthy()) << "a corrupt superblock must be reported";
  // The next checkpoint rewrites the corrupt slot.
  ASSERT_EQ(f.checkpoint({3}), BTreeStatus::kOk);
  EXPECT_TRUE(f.tree->healthy());
  EXPECT_EQ(f.restart().metadata.bytes, std::vector<uint8_t>{3});
  EXPECT_EQ(compare_content(f, first), "");
}

TEST(BTreeTest, AFullRegionAnswersNoSpaceAndKeepsTheLastCheckpoint) {
  BTreeOptions options = small_tree();
  options.region_sectors = 64;
  Fixture f(options);
  Model durable;
  Model model;
  bool saw_no_space = false;
  for (uint64_t i = 0; i < 5000 && !saw_no_space; ++i) {
    Item item = item_of(key_of(i), i, 300);
    const BTreeStatus status = f.put(item);
    if (status == BTreeStatus::kNoSpace) {
      saw_no_space = true;
      break;
    }
    ASSERT_EQ(status, BTreeStatus::kOk);
    model[item.key()] = item;
    if (i % 50 == 49) {
      const BTreeStatus checkpoint = f.checkpoint();
      if (checkpoint == BTreeStatus::kNoSpace) {
        saw_no_space = true;
      } else {
        ASSERT_EQ(checkpoint, BTreeStatus::kOk);
        durable = model;
      }
    }
  }
  ASSERT_TRUE(saw_no_space);
  EXPECT_EQ(compare_content(f, model), "") << "the tree still serves what it holds";
  ASSERT_EQ(f.restart().status, BTreeStatus::kOk);
  EXPECT_EQ(compare_content(f, durable), "");
}

TEST(BTreeTest, ClearEmptiesTheTreeAndItsSpaceIsReused) {
  Fixture f;
  for (uint64_t i = 0; i < 3000; ++i) ASSERT_EQ(f.put(item_of(key_of(i), i, 30)), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  bool done = false;
  f.tree->clear([&](BTreeStatus s) {
    EXPECT_EQ(s, BTreeStatus::kOk);
    done = true;
  });
  f.wait(done);
  EXPECT_EQ(f.tree->item_count(), 0u);
  EXPECT_EQ(f.tree->content_digest(), 0u);
  EXPECT_EQ(f.get(key_of(3)).first, BTreeStatus::kNotFound);
  Model model;
  for (uint64_t i = 0; i < 100; ++i) {
    Item item = item_of(key_of(i + 10000), i, 5);
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  ASSERT_EQ(f.restart().status, BTreeStatus::kOk);
  EXPECT_EQ(compare_content(f, model), "");
}

}  // namespace
}  // namespace dynasim::model
