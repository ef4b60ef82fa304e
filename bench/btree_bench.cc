// The storage replica's B+tree: memory and disk per item at a million items, and resident puts/s.
//
// BM_BTreeMemoryPerItem: one tree, 1,000,000 items of the shape a workload writes (a ~16-byte
// string partition key, a numeric sort key, a 1 KB Payload and a small number "ver"), in hashed key
// order, checkpointed every 50,000 puts, default options. Counters, per item:
//   heap_bytes_per_item: heap the tree holds, measured with glibc mallinfo2() (uordblks) as what
//     destroying the tree gives back, so the disk's own sector map is not counted here;
//   disk_bytes_per_item: Disk::used_bytes() (the simulator keeps those sectors in memory too);
//   bytes_per_item: their sum. The target is at most 200 bytes per item per replica.
// BM_BTreePutResident: puts that overwrite items of a tree whose pages are all resident; the
// resident path a replica's state machine takes for every committed write.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "model/btree.h"
#include "sim/random.h"
#include "sim/simulation.h"

namespace dynasim::model {
namespace {

Item workload_item(uint64_t i, uint64_t version) {
  char text[32];
  std::snprintf(text, sizeof(text), "u%015llx",
                static_cast<unsigned long long>(sim::splitmix64(i) & 0xFFFFFFFFFFFFFULL));
  Item item(PrimaryKey{KeyValue::string(text),
                       KeyValue::number_value(Decimal::from_int(static_cast<int64_t>(i % 10)))});
  item.set("payload", Payload{1024, version, sim::splitmix64(i ^ version)});
  item.set("ver", Decimal::from_int(static_cast<int64_t>(version)));
  return item;
}

size_t heap_in_use() {
  return mallinfo2().uordblks;
}

void run_until_done(sim::Simulation& simulation, const bool& done) {
  while (!done && simulation.step()) {
  }
}

void BM_BTreeMemoryPerItem(benchmark::State& state) {
  const uint64_t items = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    sim::Simulation simulation(1);
    sim::Disk disk(simulation, sim::DiskId(0), "bench-btree", sim::DiskOptions{});
    auto tree = std::make_unique<BTree>(disk, BTreeOptions{});
    BTreeStatus last = BTreeStatus::kOk;
    for (uint64_t i = 0; i < items; ++i) {
      // A put whose leaf was evicted waits for its read: run the simulation until it is done.
      bool put_done = false;
      tree->put(workload_item(i, 1), [&](BTreeStatus s) {
        if (s != BTreeStatus::kOk) last = s;
        put_done = true;
      });
      run_until_done(simulation, put_done);
      if ((i + 1) % 50'000 == 0 || i + 1 == items) {
        bool done = false;
        tree->checkpoint(CheckpointMetadata{}, [&](BTreeStatus s) {
          if (s != BTreeStatus::kOk) last = s;
          done = true;
        });
        run_until_done(simulation, done);
      }
    }
    if (last != BTreeStatus::kOk) {
      state.SkipWithError((std::string("put or checkpoint failed: ") + to_string(last)).c_str());
    }
    const BTreeStats stats = tree->stats();
    const size_t with_tree = heap_in_use();
    tree.reset();
    const size_t without_tree = heap_in_use();
    const double n = static_cast<double>(items);
    const double heap = static_cast<double>(with_tree - without_tree) / n;
    const double on_disk = static_cast<double>(disk.used_bytes()) / n;
    state.counters["heap_bytes_per_item"] = heap;
    state.counters["disk_bytes_per_item"] = on_disk;
    state.counters["bytes_per_item"] = heap + on_disk;
    state.counters["estimate_heap_bytes_per_item"] = static_cast<double>(stats.memory_bytes) / n;
    state.counters["pages_in_tree"] = static_cast<double>(stats.pages_in_tree);
    state.counters["items_per_leaf_page"] = n / static_cast<double>(stats.pages_in_tree);
  }
}
BENCHMARK(BM_BTreeMemoryPerItem)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_BTreePutResident(benchmark::State& state) {
  const uint64_t items = static_cast<uint64_t>(state.range(0));
  sim::Simulation simulation(1);
  sim::Disk disk(simulation, sim::DiskId(0), "bench-btree", sim::DiskOptions{});
  BTreeOptions options;
  options.cache_pages = 1 << 20;  // everything stays resident
  BTree tree(disk, options);
  for (uint64_t i = 0; i < items; ++i) tree.put(workload_item(i, 1), [](BTreeStatus) {});
  bool done = false;
  tree.checkpoint(CheckpointMetadata{}, [&](BTreeStatus) { done = true; });
  run_until_done(simulation, done);
  std::vector<Item> pool;
  for (uint64_t i = 0; i < 4096; ++i) pool.push_back(workload_item((i * 7919) % items, 2));
  uint64_t puts = 0;
  uint64_t failures = 0;
  for (auto _ : state) {
    Item item = pool[puts % pool.size()];
    tree.put(std::move(item), [&](BTreeStatus s) { failures += s != BTreeStatus::kOk; });
    ++puts;
  }
  if (failures > 0) state.SkipWithError("a resident put failed");
  state.SetItemsProcessed(static_cast<int64_t>(puts));
  benchmark::DoNotOptimize(tree.content_digest());
}
BENCHMARK(BM_BTreePutResident)->Arg(100'000);

}  // namespace
}  // namespace dynasim::model
