// Scrub and repair of the storage replica's B+tree against bit rot at rest (P22 section 5.3): a
// flipped bit under a resident clean leaf is found only by re-reading the media, reported to the
// disk's corruption ledger, and repaired from a peer's items; a lost evicted leaf, a lost inner
// page with its subtree, a rotten overflow chain and a rotten superblock likewise; range digests
// of a partition add up to the content digest; repairs over random ranges keep the tree equal to a
// map model. The planted bug plant_scrub_trusts_resident_pages is shown to make the detection check
// fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <string>

#include "model/btree.h"
#include "sim/random.h"
#include "sim/simulation.h"

namespace dynasim::model {
namespace {

using Model = std::map<PrimaryKey, Item>;

BTreeOptions tree_options(uint64_t cache_pages) {
  BTreeOptions options;
  options.region_offset_bytes = 4096 * 16;
  options.region_sectors = 16384;
  options.cache_pages = cache_pages;
  options.max_queued_operations = 1 << 16;
  return options;
}

sim::DiskOptions disk_options() {
  sim::DiskOptions options;
  options.capacity_bytes = 256 << 20;
  return options;
}

PrimaryKey key_of(uint64_t i) {
  char text[32];
  std::snprintf(text, sizeof(text), "user%08llu", static_cast<unsigned long long>(i));
  return PrimaryKey{KeyValue::string(text), std::nullopt};
}

Item item_of(uint64_t i, uint64_t version, size_t text_bytes) {
  Item item(key_of(i));
  item.set("payload", Payload{1024, version, sim::splitmix64(version * 7 + i)});
  item.set("ver", Decimal::from_int(static_cast<int64_t>(version)));
  item.set("text", std::string(text_bytes, static_cast<char>('a' + (i + version) % 26)));
  return item;
}

uint64_t item_hash(const Item& item) {
  const std::vector<uint8_t> bytes = item.encode();
  return sim::hash_bytes(0, bytes.data(), bytes.size());
}

uint64_t multiset_digest(const Model& model) {
  uint64_t sum = 0;
  for (const auto& [key, item] : model) sum += item_hash(item);
  return sum;
}

bool in_range(const KeyRangeBounds& range, const PrimaryKey& key) {
  return (!range.begin || *range.begin <= key) && (!range.end || key < *range.end);
}

std::vector<Item> items_in(const Model& model, const KeyRangeBounds& range) {
  std::vector<Item> items;
  for (const auto& [key, item] : model) {
    if (in_range(range, key)) items.push_back(item);
  }
  return items;
}

struct ScrubPass {
  uint64_t steps = 0;
  uint64_t pages_read = 0;
  uint64_t pages_skipped = 0;
  uint64_t failures = 0;
  BTreeStatus status = BTreeStatus::kOk;
};

struct Fixture {
  explicit Fixture(BTreeOptions options_in, uint64_t seed = 1)
      : simulation(seed),
        disk(simulation, sim::DiskId(0), "scrub-test", disk_options()),
        options(options_in),
        tree(std::make_unique<BTree>(disk, options)) {}

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
  BTreeStatus checkpoint() {
    bool done = false;
    BTreeStatus result = BTreeStatus::kIoError;
    tree->checkpoint(CheckpointMetadata{0, {7}}, [&](BTreeStatus s) {
      result = s;
      done = true;
    });
    wait(done);
    return result;
  }
  std::pair<BTreeStatus, std::pair<uint64_t, uint64_t>> range_digest(KeyRangeBounds range) {
    bool done = false;
    std::pair<BTreeStatus, std::pair<uint64_t, uint64_t>> result;
    tree->range_digest(std::move(range), [&](BTreeStatus s, uint64_t digest, uint64_t count) {
      result = {s, {digest, count}};
      done = true;
    });
    wait(done);
    return result;
  }
  BTreeStatus repair(KeyRangeBounds range, std::vector<Item> items) {
    bool done = false;
    BTreeStatus result = BTreeStatus::kIoError;
    tree->repair_range(std::move(range), std::move(items), [&](BTreeStatus s) {
      result = s;
      done = true;
    });
    wait(done);
    return result;
  }
  ScrubStep scrub_step(ScrubCursor cursor, uint32_t max_pages) {
    bool done = false;
    ScrubStep result;
    tree->scrub_pages(std::move(cursor), max_pages, [&](ScrubStep step) {
      result = std::move(step);
      done = true;
    });
    wait(done);
    return result;
  }
  // One whole pass, `max_pages` at a time.
  ScrubPass scrub_pass(uint32_t max_pages) {
    ScrubPass pass;
    ScrubCursor cursor;
    for (int i = 0; i < 1'000'000; ++i) {
      ScrubStep step = scrub_step(std::move(cursor), max_pages);
      ++pass.steps;
      pass.pages_read += step.pages_read;
      pass.pages_skipped += step.pages_skipped;
      pass.failures += step.failures;
      EXPECT_LE(step.pages_examined, uint64_t{max_pages} + 200);  // one chain may overrun
      if (step.status != BTreeStatus::kOk) {
        pass.status = step.status;
        return pass;
      }
      if (step.pass_complete) return pass;
      cursor = std::move(step.next);
    }
    ADD_FAILURE() << "the scrub pass never completed";
    return pass;
  }
  // Every item through scans: "" when it equals the model, and the digests agree.
  std::string compare_content(const Model& model) {
    std::vector<Item> items;
    std::optional<PrimaryKey> from;
    for (int rounds = 0; rounds < 1'000'000; ++rounds) {
      bool done = false;
      BTreeStatus status = BTreeStatus::kIoError;
      std::optional<PrimaryKey> next;
      tree->scan(from, 53, [&](BTreeStatus s, std::vector<Item> page, std::optional<PrimaryKey> n) {
        status = s;
        for (Item& item : page) items.push_back(std::move(item));
        next = std::move(n);
        done = true;
      });
      wait(done);
      if (status != BTreeStatus::kOk) return std::string("scan failed: ") + to_string(status);
      if (!next.has_value()) break;
      from = std::move(next);
    }
    if (items.size() != model.size()) {
      return "item count " + std::to_string(items.size()) + " != " + std::to_string(model.size());
    }
    auto it = model.begin();
    for (size_t i = 0; i < items.size(); ++i, ++it) {
      if (!(items[i] == it->second)) return "item " + std::to_string(i) + " differs";
    }
    if (tree->content_digest() != multiset_digest(model)) return "content_digest differs";
    if (tree->item_count() != model.size()) return "item_count differs";
    return "";
  }
  // Right after a checkpoint with nothing changed: every slot is free, a superblock, a space map
  // page, or a page of the tree. A slot leaked by a repair would break the equation.
  std::string slot_accounting() const {
    const BTreeStats stats = tree->stats();
    const uint64_t space_map_pages = (options.region_sectors + 32383) / 32384;
    const uint64_t expected = options.region_sectors - 2 - space_map_pages - stats.pages_in_tree;
    if (stats.free_page_slots == expected) return "";
    return "free slots " + std::to_string(stats.free_page_slots) + ", expected " +
           std::to_string(expected);
  }
  BTreeRecovery power_cycle_and_recover() {
    disk.power_off();
    tree.reset();
    disk.power_on();
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
  const sim::CorruptionLedger& ledger() const { return disk.corruption_ledger(); }

  sim::Simulation simulation;
  sim::Disk disk;
  BTreeOptions options;
  std::unique_ptr<BTree> tree;
};

Model fill(Fixture& f, uint64_t count, size_t text_bytes) {
  Model model;
  for (uint64_t i = 0; i < count; ++i) {
    Item item = item_of(i, i + 1, text_bytes);
    model[item.key()] = item;
    EXPECT_EQ(f.put(item), BTreeStatus::kOk);
  }
  return model;
}

// The one unhealthy range, which must hold `key`.
std::optional<KeyRangeBounds> the_unhealthy_range(const BTree& tree, const PrimaryKey& key) {
  if (tree.unhealthy_ranges().size() != 1) return std::nullopt;
  const KeyRangeBounds& range = tree.unhealthy_ranges()[0];
  if (!in_range(range, key)) return std::nullopt;
  return range;
}

// --- Rot under a resident clean leaf -------------------------------------------------------------

// Flips a bit in the durable image of a leaf whose clean copy is resident, scrubs, and checks that
// the scrub found it. "" when everything held, else what did not.
std::string scrub_detects_rot_under_a_resident_leaf(Fixture& f, Model* out_model) {
  *out_model = fill(f, 2000, 200);
  if (f.checkpoint() != BTreeStatus::kOk) return "checkpoint failed";
  const PrimaryKey victim = key_of(1000);
  const std::optional<uint64_t> sector = f.tree->leaf_sector_for(victim);
  if (!sector) return "no sector for the leaf";
  const sim::SimTime injected = f.simulation.now();
  f.disk.inject_bit_flip(*sector, 8 * 2100 + 5);  // inside the records
  // Nothing reads the media: the clean copy in memory answers.
  auto [status, item] = f.get(victim);
  if (status != BTreeStatus::kOk || !item || !(*item == out_model->at(victim))) {
    return "a get did not answer from memory";
  }
  if (f.ledger().count(sim::FlipFate::kPending) != 1) return "the flip is not pending";
  f.simulation.run_until(f.simulation.now() + sim::seconds(30));

  const ScrubPass pass = f.scrub_pass(16);
  if (pass.status != BTreeStatus::kOk) return "the scrub pass failed";
  if (pass.steps < 10) return "the pass did not pace itself";
  if (pass.failures != 1) return "scrub failures: " + std::to_string(pass.failures);
  const sim::BitFlipRecord& record = f.ledger().records().at(0);
  if (record.fate != sim::FlipFate::kDetected || record.by != "scrub") {
    return std::string("the ledger says ") + sim::to_string(record.fate) + " by " +
           std::string(record.by);
  }
  if (record.fate_at - injected < sim::seconds(30)) return "detected before the scrub ran";
  if (f.ledger().reports_without_flip() != 0) return "a report named a clean sector";
  if (!the_unhealthy_range(*f.tree, victim)) return "the leaf's range is not unhealthy";
  // The copy in memory still serves the tree's reads.
  if (f.get(victim).first != BTreeStatus::kOk) return "the resident copy stopped serving";
  return "";
}

TEST(BTreeScrubTest, RotUnderAResidentLeafIsFoundByScrubAndRepaired) {
  Fixture f(tree_options(4096));
  Model model;
  ASSERT_EQ(scrub_detects_rot_under_a_resident_leaf(f, &model), "");
  const KeyRangeBounds range = *the_unhealthy_range(*f.tree, key_of(1000));

  // A replica built cleanly with the same items agrees, range by range.
  Fixture clean(tree_options(4096), 2);
  fill(clean, 2000, 200);
  EXPECT_EQ(f.range_digest(range), clean.range_digest(range));

  ASSERT_EQ(f.repair(range, items_in(model, range)), BTreeStatus::kOk);
  EXPECT_TRUE(f.tree->healthy());
  EXPECT_TRUE(f.tree->unhealthy_ranges().empty());
  EXPECT_EQ(f.compare_content(model), "");
  EXPECT_EQ(f.tree->content_digest(), clean.tree->content_digest());
  EXPECT_EQ(f.tree->item_count(), clean.tree->item_count());

  // The repaired leaf goes to a fresh slot; the rotten one is freed.
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.slot_accounting(), "");
  const BTreeRecovery recovery = f.power_cycle_and_recover();
  ASSERT_EQ(recovery.status, BTreeStatus::kOk);
  EXPECT_EQ(f.compare_content(model), "");
  EXPECT_TRUE(f.tree->healthy());
  const ScrubPass again = f.scrub_pass(64);
  EXPECT_EQ(again.failures, 0u);
  EXPECT_GT(again.pages_read, 20u);
}

TEST(BTreeScrubTest, PlantedScrubThatTrustsResidentPagesMissesTheRot) {
  BTreeOptions options = tree_options(4096);
  options.plant_scrub_trusts_resident_pages = true;
  Fixture f(options);
  Model model;
  const std::string failure = scrub_detects_rot_under_a_resident_leaf(f, &model);
  EXPECT_NE(failure, "") << "the detection check passed with a scrub that trusts the cache";
  RecordProperty("failure", failure);
}

TEST(BTreeScrubTest, AStepWithNoBudgetExaminesNothingAndKeepsItsCursor) {
  Fixture f(tree_options(4096));
  fill(f, 500, 100);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  f.disk.inject_bit_flip(*f.tree->leaf_sector_for(key_of(10)), 8 * 3000);
  ScrubStep step = f.scrub_step(ScrubCursor(), 0);
  EXPECT_EQ(step.pages_examined, 0u);
  EXPECT_FALSE(step.pass_complete);
  EXPECT_TRUE(step.next.at_start());
  EXPECT_EQ(f.ledger().count(sim::FlipFate::kPending), 1u);
}

// --- Lost pages ---------------------------------------------------------------------------------

TEST(BTreeScrubTest, AnEvictedRottenLeafIsLostUntilRepairedAndItsSlotIsFreed) {
  Fixture f(tree_options(8));
  Model model = fill(f, 3000, 120);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  f.tree->drop_clean_pages();
  const PrimaryKey victim = key_of(1500);
  f.disk.inject_bit_flip(*f.tree->leaf_sector_for(victim), 8 * 1500 + 2);

  const ScrubPass pass = f.scrub_pass(7);
  EXPECT_EQ(pass.failures, 1u);
  EXPECT_EQ(f.ledger().records().at(0).fate, sim::FlipFate::kDetected);
  EXPECT_EQ(f.ledger().records().at(0).by, "scrub");
  // The scrub does not fill the cache with what it reads.
  EXPECT_LE(f.tree->stats().resident_pages, 8u + 10u);
  const std::optional<KeyRangeBounds> range = the_unhealthy_range(*f.tree, victim);
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(f.get(victim).first, BTreeStatus::kCorrupt);
  EXPECT_EQ(f.get(key_of(0)).first, BTreeStatus::kOk);
  EXPECT_EQ(f.range_digest(*range).first, BTreeStatus::kCorrupt);

  // Writes continue elsewhere, then the repair.
  for (uint64_t i = 0; i < 3000; i += 97) {
    if (in_range(*range, key_of(i))) continue;
    Item item = item_of(i, 9000 + i, 40);
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  ASSERT_EQ(f.repair(*range, items_in(model, *range)), BTreeStatus::kOk);
  EXPECT_TRUE(f.tree->healthy());
  EXPECT_EQ(f.compare_content(model), "");
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.slot_accounting(), "");
  ASSERT_EQ(f.power_cycle_and_recover().status, BTreeStatus::kOk);
  EXPECT_EQ(f.compare_content(model), "");
  EXPECT_EQ(f.scrub_pass(50).failures, 0u);
}

// The root of a 20,000-item tree and its inner pages below it; a lost inner page takes its whole
// subtree with it, whose slots nothing can name any more.
TEST(BTreeScrubTest, ALostInnerPageAndItsSubtreeAreRepairedWithoutLeakingSlots) {
  Fixture f(tree_options(16));
  Model model = fill(f, 20000, 10);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  // Find a child of the root that is an inner page: descend the durable image by hand.
  const uint64_t region = f.options.region_offset_bytes / 4096;
  uint64_t super_slot = 0;
  for (uint64_t s = 0; s < 2; ++s) {
    if (f.disk.durable_sector(region + s)[24] == 1) super_slot = s;  // generation 1
  }
  const std::vector<uint8_t> super = f.disk.durable_sector(region + super_slot);
  auto u64 = [](const std::vector<uint8_t>& page, size_t at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(page[at + i]) << (8 * i);
    return v;
  };
  const uint64_t root_slot = u64(super, 48);
  const std::vector<uint8_t> root_page = f.disk.durable_sector(region + root_slot);
  ASSERT_GE(root_page[13], 2) << "the tree is too shallow for this test";
  const uint64_t child_slot = u64(root_page, 48 + 16);  // the root's second child
  f.disk.inject_bit_flip(region + child_slot, 8 * 200 + 1);

  const BTreeRecovery recovery = f.power_cycle_and_recover();
  EXPECT_EQ(recovery.status, BTreeStatus::kCorrupt);
  EXPECT_EQ(f.ledger().records().at(0).by, "read");
  ASSERT_EQ(f.tree->unhealthy_ranges().size(), 1u);
  const KeyRangeBounds range = f.tree->unhealthy_ranges()[0];
  ASSERT_TRUE(range.begin.has_value() && range.end.has_value());
  // A repair that covers only part of the lost subtree would lose the rest: refused.
  KeyRangeBounds half = range;
  for (const auto& [key, item] : model) {
    if (*range.begin < key && key < *range.end) {
      half.end = key;
      break;
    }
  }
  const uint64_t digest_before = f.tree->content_digest();
  EXPECT_EQ(f.repair(half, items_in(model, half)), BTreeStatus::kCorrupt);
  EXPECT_EQ(f.tree->content_digest(), digest_before);

  ASSERT_EQ(f.repair(range, items_in(model, range)), BTreeStatus::kOk);
  EXPECT_TRUE(f.tree->unhealthy_ranges().empty());
  EXPECT_EQ(f.compare_content(model), "");
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.slot_accounting(), "") << "the lost subtree's slots leaked";
  ASSERT_EQ(f.power_cycle_and_recover().status, BTreeStatus::kOk);
  EXPECT_TRUE(f.tree->healthy());
  EXPECT_EQ(f.compare_content(model), "");
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.slot_accounting(), "");
}

TEST(BTreeScrubTest, ARepairRefusesWhileAnotherLostLeafLiesOutsideItsRange) {
  Fixture f(tree_options(8));
  Model model = fill(f, 3000, 120);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  f.tree->drop_clean_pages();
  f.disk.inject_bit_flip(*f.tree->leaf_sector_for(key_of(300)), 8 * 1000);
  f.disk.inject_bit_flip(*f.tree->leaf_sector_for(key_of(2700)), 8 * 1000);
  EXPECT_EQ(f.scrub_pass(32).failures, 2u);
  ASSERT_EQ(f.tree->unhealthy_ranges().size(), 2u);
  const KeyRangeBounds first = f.tree->unhealthy_ranges()[0];
  const KeyRangeBounds second = f.tree->unhealthy_ranges()[1];
  const uint64_t digest = f.tree->content_digest();
  EXPECT_EQ(f.repair(first, items_in(model, first)), BTreeStatus::kCorrupt);
  EXPECT_EQ(f.tree->content_digest(), digest);
  EXPECT_EQ(f.tree->unhealthy_ranges().size(), 2u);
  // One range that covers both.
  const KeyRangeBounds both{first.begin < second.begin ? first.begin : second.begin,
                            first.end < second.end ? second.end : first.end};
  ASSERT_EQ(f.repair(both, items_in(model, both)), BTreeStatus::kOk);
  EXPECT_TRUE(f.tree->healthy());
  EXPECT_EQ(f.compare_content(model), "");
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.slot_accounting(), "");
}

// Rounds of writes, checkpoints, rot in evicted leaves, scrub passes and repairs over ranges that
// do not follow leaf bounds, with new content for the range (items dropped, added, changed, some
// large enough for overflow chains): the tree must equal a std::map model throughout, its slots
// must add up after each checkpoint, and it must recover to the model after a power-off.
void random_repairs(uint64_t seed) {
  Fixture f(tree_options(6), seed);
  sim::Random random(seed);
  Model model;
  auto random_item = [&](uint64_t i) {
    return item_of(i, random.uniform_u64(1'000'000),
                   random.uniform_u64(60) == 0 ? 6000 : random.uniform_u64(150));
  };
  for (int round = 0; round < 12; ++round) {
    for (int n = 0; n < 400; ++n) {
      const uint64_t i = random.uniform_u64(5000);
      if (random.uniform_u64(4) == 0) {
        bool done = false;
        BTreeStatus erased = BTreeStatus::kIoError;
        f.tree->erase(key_of(i), [&](BTreeStatus s) {
          erased = s;
          done = true;
        });
        f.wait(done);
        ASSERT_EQ(erased, model.erase(key_of(i)) ? BTreeStatus::kOk : BTreeStatus::kNotFound);
      } else {
        Item item = random_item(i);
        model[item.key()] = item;
        ASSERT_EQ(f.put(item), BTreeStatus::kOk);
      }
    }
    ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
    ASSERT_EQ(f.slot_accounting(), "") << "round " << round;
    f.tree->drop_clean_pages();
    // Rot in one to three evicted leaves.
    const uint64_t flips = 1 + random.uniform_u64(3);
    for (uint64_t k = 0; k < flips; ++k) {
      const std::optional<uint64_t> sector =
          f.tree->leaf_sector_for(key_of(random.uniform_u64(5000)));
      ASSERT_TRUE(sector.has_value());
      f.disk.inject_bit_flip(*sector,
                             static_cast<uint32_t>(8 * 100 + random.uniform_u64(8 * 3000)));
    }
    const ScrubPass pass = f.scrub_pass(1 + static_cast<uint32_t>(random.uniform_u64(40)));
    ASSERT_EQ(pass.status, BTreeStatus::kOk);
    ASSERT_GE(pass.failures, 1u);
    // One repair over a range that covers every damaged range, widened at both ends by a random
    // amount (so its bounds fall inside leaves), with new content for it.
    std::optional<PrimaryKey> begin;
    std::optional<PrimaryKey> end;
    bool open_begin = false;
    bool open_end = false;
    for (const KeyRangeBounds& r : f.tree->unhealthy_ranges()) {
      if (!r.begin) open_begin = true;
      if (!r.end) open_end = true;
      if (r.begin && (!begin || *r.begin < *begin)) begin = r.begin;
      if (r.end && (!end || *end < *r.end)) end = r.end;
    }
    KeyRangeBounds range;
    if (!open_begin && random.uniform_u64(5) != 0) {
      range.begin = key_of(0);
      for (const auto& [key, item] : model) {
        if (!(key < *begin)) break;
        if (random.uniform_u64(3) == 0) range.begin = key;
      }
      if (*begin < *range.begin) range.begin = begin;
    }
    if (!open_end && random.uniform_u64(5) != 0) {
      range.end = end;
      auto it = model.lower_bound(*end);
      for (int step = 0; it != model.end() && step < 200; ++it, ++step) {
        if (random.uniform_u64(40) == 0) {
          range.end = it->first;
          break;
        }
      }
    }
    for (auto it = model.begin(); it != model.end();) {
      it = in_range(range, it->first) ? model.erase(it) : std::next(it);
    }
    std::vector<Item> fresh;
    for (uint64_t i = 0; i < 5000; ++i) {
      if (!in_range(range, key_of(i)) || random.uniform_u64(3) != 0) continue;
      Item item = random_item(i);
      model[item.key()] = item;
      fresh.push_back(std::move(item));
    }
    std::reverse(fresh.begin(), fresh.end());  // any order will do
    ASSERT_EQ(f.repair(range, std::move(fresh)), BTreeStatus::kOk) << "round " << round;
    ASSERT_TRUE(f.tree->healthy()) << "round " << round;
    ASSERT_EQ(f.compare_content(model), "") << "round " << round;
    if (round % 3 == 2) {
      ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
      ASSERT_EQ(f.slot_accounting(), "") << "round " << round;
      ASSERT_EQ(f.power_cycle_and_recover().status, BTreeStatus::kOk);
      ASSERT_EQ(f.compare_content(model), "") << "round " << round;
      ASSERT_EQ(f.scrub_pass(100).failures, 0u);
    }
  }
  EXPECT_EQ(f.ledger().count(sim::FlipFate::kPending), 0u)
      << "a flip in a durable page was neither found nor overwritten";
}

TEST(BTreeScrubTest, RandomRotScrubAndRepairsMatchAMapSeed1) {
  random_repairs(1);
}
TEST(BTreeScrubTest, RandomRotScrubAndRepairsMatchAMapSeed2) {
  random_repairs(2);
}
TEST(BTreeScrubTest, RandomRotScrubAndRepairsMatchAMapSeed3) {
  random_repairs(3);
}

// --- Overflow chains and the superblock ---------------------------------------------------------

TEST(BTreeScrubTest, ARottenOverflowChainIsFoundAndRepaired) {
  Fixture f(tree_options(8));
  Model model = fill(f, 400, 30);
  Item big = item_of(123, 77, 30000);  // an overflow chain of 8 pages
  model[big.key()] = big;
  ASSERT_EQ(f.put(big), BTreeStatus::kOk);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  f.tree->drop_clean_pages();
  // The chain is the only run of overflow pages: find it on the media.
  const uint64_t region = f.options.region_offset_bytes / 4096;
  uint64_t chain_sector = 0;
  for (uint64_t s = 2; s < 2000 && chain_sector == 0; ++s) {
    const std::vector<uint8_t> page = f.disk.durable_sector(region + s);
    if (page[12] == 3) chain_sector = region + s;  // kind byte 3: an overflow page
  }
  ASSERT_NE(chain_sector, 0u);
  f.disk.inject_bit_flip(chain_sector + 3, 8 * 2000 + 7);

  const ScrubPass pass = f.scrub_pass(5);
  EXPECT_EQ(pass.failures, 1u);
  EXPECT_EQ(f.ledger().records().at(0).fate, sim::FlipFate::kDetected);
  EXPECT_EQ(f.ledger().records().at(0).by, "scrub");
  EXPECT_EQ(f.get(big.key()).first, BTreeStatus::kCorrupt);
  const std::optional<KeyRangeBounds> range = the_unhealthy_range(*f.tree, big.key());
  ASSERT_TRUE(range.has_value());
  ASSERT_EQ(f.repair(*range, items_in(model, *range)), BTreeStatus::kOk);
  auto [status, item] = f.get(big.key());
  ASSERT_EQ(status, BTreeStatus::kOk);
  EXPECT_EQ(*item, big);
  EXPECT_EQ(f.compare_content(model), "");
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.slot_accounting(), "");
  ASSERT_EQ(f.power_cycle_and_recover().status, BTreeStatus::kOk);
  EXPECT_EQ(f.compare_content(model), "");
}

TEST(BTreeScrubTest, ARottenSuperblockIsFoundAndTheCheckpointsRewriteIt) {
  Fixture f(tree_options(64));
  fill(f, 300, 30);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  const uint64_t region = f.options.region_offset_bytes / 4096;
  uint64_t durable = 0;
  for (uint64_t s = 0; s < 2; ++s) {
    if (f.disk.durable_sector(region + s)[24] == 1) durable = s;
  }
  f.disk.inject_bit_flip(region + durable, 8 * 400);
  EXPECT_EQ(f.scrub_pass(16).failures, 1u);
  EXPECT_EQ(f.ledger().records().at(0).by, "scrub");
  EXPECT_FALSE(f.tree->healthy());
  EXPECT_TRUE(f.tree->unhealthy_ranges().empty()) << "no key range is damaged";
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);  // writes the other slot
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);  // rewrites the rotten one
  EXPECT_TRUE(f.tree->healthy());
  EXPECT_EQ(f.scrub_pass(16).failures, 0u);
}

TEST(BTreeScrubTest, DirtyPagesAreSkippedUntilTheNextCheckpoint) {
  Fixture f(tree_options(4096));
  fill(f, 2000, 100);
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  const uint64_t sector = *f.tree->leaf_sector_for(key_of(800));
  ASSERT_EQ(f.put(item_of(800, 5, 100)), BTreeStatus::kOk);  // the leaf is dirty now
  f.disk.inject_bit_flip(sector, 8 * 3000);
  const ScrubPass pass = f.scrub_pass(1000);
  EXPECT_EQ(pass.failures, 0u);
  EXPECT_GE(pass.pages_skipped, 2u);  // the leaf and its parent
  // The checkpoint writes the leaf elsewhere and frees the rotten slot: nothing reads it again.
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  EXPECT_EQ(f.scrub_pass(1000).failures, 0u);
  EXPECT_NE(*f.tree->leaf_sector_for(key_of(800)), sector);
  EXPECT_EQ(f.ledger().count(sim::FlipFate::kPending), 1u) << "rot on a free slot stays pending";
}

// --- Range digests ------------------------------------------------------------------------------

TEST(BTreeScrubTest, RangeDigestsOfASplitOfTheKeySpaceSumToTheContentDigest) {
  Fixture f(tree_options(6));
  Model model;
  sim::Random random(17);
  for (uint64_t n = 0; n < 4000; ++n) {
    const uint64_t i = random.uniform_u64(100000);
    Item item = item_of(i, n, random.uniform_u64(100) == 0 ? 9000 : random.uniform_u64(80));
    model[item.key()] = item;
    ASSERT_EQ(f.put(item), BTreeStatus::kOk);
  }
  ASSERT_EQ(f.checkpoint(), BTreeStatus::kOk);
  f.tree->drop_clean_pages();
  std::vector<std::optional<PrimaryKey>> cuts = {std::nullopt};
  for (uint64_t c = 1; c < 12; ++c) cuts.push_back(key_of(c * 8000 + random.uniform_u64(50)));
  cuts.push_back(std::nullopt);
  uint64_t sum = 0;
  uint64_t count = 0;
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    const KeyRangeBounds range{cuts[c], cuts[c + 1]};
    const auto [status, digest] = f.range_digest(range);
    ASSERT_EQ(status, BTreeStatus::kOk);
    Model part;
    for (const Item& item : items_in(model, range)) part[item.key()] = item;
    EXPECT_EQ(digest.first, multiset_digest(part)) << c;
    EXPECT_EQ(digest.second, part.size()) << c;
    sum += digest.first;
    count += digest.second;
  }
  EXPECT_EQ(sum, f.tree->content_digest());
  EXPECT_EQ(count, f.tree->item_count());
  const auto whole = f.range_digest(KeyRangeBounds{});
  EXPECT_EQ(whole.second.first, f.tree->content_digest());
  EXPECT_GT(f.tree->stats().page_reads, 20u) << "evicted leaves were read";
}

}  // namespace
}  // namespace dynasim::model
