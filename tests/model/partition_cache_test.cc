// The routers' partition-map caches against real MemDS nodes in a small simulated region.
//
// The paper's lesson (P22 section 6.6), as two shapes of MemDS load over time with a router
// restart in the middle: with the constant-work cache MemDS serves one lookup per router request
// in every window, before and after the restart; with the bimodal cache MemDS sees nothing in
// steady state and a burst of lookups and whole-table downloads on the cold start. Also: hits
// refresh entries asynchronously, misses wait and retry on another MemDS node, invalidation and
// learned members, version rules, the caps, and the legacy cache's paging and TTL.
#include "model/partition_cache.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "tests/model/memds_harness.h"

namespace dynasim::model {
namespace {

using memds_testing::Region;
using memds_testing::RegionOptions;
using memds_testing::RouterProcess;
using memds_testing::table_map;

constexpr uint32_t kTables = 50;
constexpr uint32_t kPartitionsPerTable = 40;
constexpr uint32_t kRequestsPerSecond = 2000;

void load_tables(Region& region) {
  sim::Random random(99);
  for (uint32_t t = 1; t <= kTables; ++t) {
    region.publisher().publish(table_map(TableId(t), kPartitionsPerTable, 1, t * 1000));
    for (int k = 0; k < 20; ++k) region.workload.keys.emplace_back(TableId(t), random.next_u64());
  }
  region.run_for(sim::milliseconds(200));
}

// MemDS requests (lookups and download pages) the fleet served so far.
uint64_t fleet_metadata_requests(Region& region) {
  uint64_t total = 0;
  for (size_t i = 0; i < region.memds.size(); ++i) {
    total += region.node(i).stats().lookups + region.node(i).stats().range_reads;
  }
  return total;
}

// MemDS requests served in each of `windows` consecutive windows of `window` each.
std::vector<uint64_t> metadata_per_window(Region& region, int windows, sim::Duration window) {
  std::vector<uint64_t> out;
  for (int w = 0; w < windows; ++w) {
    const uint64_t before = fleet_metadata_requests(region);
    region.run_for(window);
    out.push_back(fleet_metadata_requests(region) - before);
  }
  return out;
}

void restart_router(Region& region) {
  region.world.crash(region.router_address.host);
  region.world.restart(region.router_address.host);
}

constexpr sim::Duration kWindow = sim::milliseconds(100);
constexpr uint64_t kRequestsPerWindow = kRequestsPerSecond / 10;

TEST(PartitionCacheTest, ConstantWorkMemdsLoadEqualsRequestRateThroughARestart) {
  Region region(RegionOptions{});
  load_tables(region);
  region.workload.requests_per_second = kRequestsPerSecond;
  restart_router(region);  // starts the workload
  region.run_for(sim::seconds(2));
  const PartitionCache::Stats warm = region.router().cache().stats();
  EXPECT_GT(warm.hits, warm.misses * 3);  // a warm cache
  const std::vector<uint64_t> steady = metadata_per_window(region, 10, kWindow);
  restart_router(region);  // an empty cache
  const std::vector<uint64_t> cold = metadata_per_window(region, 10, kWindow);
  // One lookup per request in every window, hit or miss (up to the few in flight at a window's
  // edges).
  for (uint64_t served : steady)
    EXPECT_LE(std::llabs(int64_t(served) - int64_t(kRequestsPerWindow)), 3);
  for (uint64_t served : cold)
    EXPECT_LE(std::llabs(int64_t(served) - int64_t(kRequestsPerWindow)), 3);
  const PartitionCache::Stats& after = region.router().cache().stats();
  EXPECT_GT(after.misses, 100u);  // the restart did empty the cache
  EXPECT_EQ(after.range_reads_sent, 0u);
  EXPECT_EQ(after.memds_lookups_sent, after.requests);
  // Every request was answered (but a miss or two still in flight at the end).
  EXPECT_GE(region.router().results[CacheStatus::kOk] + 2, after.requests);
  EXPECT_EQ(region.router().results.count(CacheStatus::kTimeout), 0u);
  EXPECT_EQ(region.router().results.count(CacheStatus::kBusy), 0u);
}

TEST(PartitionCacheTest, BimodalMemdsLoadIsNearZeroThenSpikesOnAColdStart) {
  RegionOptions options;
  options.cache.mode = PartitionCacheMode::kBimodal;
  Region region(options);
  load_tables(region);
  region.workload.requests_per_second = kRequestsPerSecond;
  restart_router(region);
  region.run_for(sim::seconds(2));
  const std::vector<uint64_t> steady = metadata_per_window(region, 10, kWindow);
  restart_router(region);
  const std::vector<uint64_t> cold = metadata_per_window(region, 10, kWindow);
  uint64_t steady_total = 0;
  for (uint64_t served : steady) steady_total += served;
  EXPECT_EQ(steady_total, 0u);  // every request a local hit
  // The first window after the restart: every table's first request downloads its map and
  // becomes a lookup, and so does every other request that misses.
  EXPECT_GE(cold[0], kTables);
  EXPECT_GE(cold[0] * 4, kRequestsPerWindow);
  // It settles back to nothing once the maps are in.
  EXPECT_EQ(cold.back(), 0u);
  const PartitionCache::Stats& after = region.router().cache().stats();
  EXPECT_EQ(after.downloads_started, kTables);
  EXPECT_EQ(after.entries_downloaded, uint64_t{kTables} * kPartitionsPerTable);
  EXPECT_EQ(after.memds_lookups_sent, after.misses);  // every miss was a metadata lookup
  EXPECT_GE(region.router().results[CacheStatus::kOk] + 2, after.requests);
}

// The same seed replays the same run, event for event; another seed does not.
uint64_t trace_of_a_run(PartitionCacheMode mode, uint64_t seed) {
  RegionOptions options;
  options.cache.mode = mode;
  options.seed = seed;
  options.publisher.max_attempts = 2;
  Region region(options);
  load_tables(region);
  region.workload.requests_per_second = kRequestsPerSecond;
  restart_router(region);
  region.run_for(sim::milliseconds(500));
  region.world.power_off(region.memds[1].host);  // lookups time out and retry elsewhere
  region.publisher().publish(table_map(TableId(1), kPartitionsPerTable, 2));
  region.run_for(sim::milliseconds(500));
  region.world.power_on(region.memds[1].host);  // and anti-entropy refills it
  restart_router(region);
  region.run_for(sim::seconds(5));
  return region.simulation.trace_hash();
}

TEST(PartitionCacheTest, TheSameSeedReplaysTheSameRun) {
  for (PartitionCacheMode mode :
       {PartitionCacheMode::kConstantWork, PartitionCacheMode::kBimodal}) {
    EXPECT_EQ(trace_of_a_run(mode, 7), trace_of_a_run(mode, 7));
    EXPECT_NE(trace_of_a_run(mode, 7), trace_of_a_run(mode, 8));
  }
}

TEST(PartitionCacheTest, AHitAnswersAtOnceAndItsRefreshBringsTheNewerVersion) {
  Region region(RegionOptions{});
  region.publisher().publish(table_map(TableId(3), 4, 1));
  region.run_for(sim::milliseconds(100));
  RouterProcess& router = region.router();
  router.resolve(TableId(3), 77);
  EXPECT_EQ(router.results[CacheStatus::kOk], 0u);  // a miss waits
  region.run_for(sim::milliseconds(10));
  ASSERT_EQ(router.results[CacheStatus::kOk], 1u);
  EXPECT_FALSE(router.last.hit);
  EXPECT_EQ(router.last.entry.version, 1u);
  region.publisher().publish(table_map(TableId(3), 4, 2, /*first_group=*/40));
  region.run_for(sim::milliseconds(100));
  router.resolve(TableId(3), 77);
  ASSERT_EQ(router.results[CacheStatus::kOk], 2u);  // answered before resolve() returned
  EXPECT_TRUE(router.last.hit);
  EXPECT_EQ(router.last.entry.version, 1u);
  region.run_for(sim::milliseconds(10));
  ASSERT_NE(router.cache().peek(TableId(3), 77), nullptr);
  EXPECT_EQ(router.cache().peek(TableId(3), 77)->version, 2u);
  EXPECT_EQ(router.cache().peek(TableId(3), 77)->group, GroupId(40));
  EXPECT_EQ(router.cache().stats().refreshes_sent, 1u);
}

TEST(PartitionCacheTest, AMissRetriesOnAnotherMemdsNodeThenTimesOut) {
  Region region(RegionOptions{});
  region.publisher().publish(table_map(TableId(3), 4, 1));
  region.run_for(sim::milliseconds(100));
  region.world.power_off(region.memds[0].host);
  region.world.power_off(region.memds[1].host);
  RouterProcess& router = region.router();
  for (uint64_t k = 0; k < 30; ++k) router.resolve(TableId(3), k * 1'000'000'000'000ULL);
  region.run_for(sim::seconds(1));
  EXPECT_EQ(router.results[CacheStatus::kOk], 30u);
  EXPECT_GT(router.cache().stats().lookup_retries, 0u);
  region.world.power_off(region.memds[2].host);
  router.cache().clear();
  router.resolve(TableId(3), 5);
  region.run_for(sim::seconds(1));
  EXPECT_EQ(router.results[CacheStatus::kTimeout], 1u);
  EXPECT_EQ(router.cache().stats().lookups_failed, 1u);
  EXPECT_EQ(router.cache().outstanding_lookups(), 0u);
}

TEST(PartitionCacheTest, AnEmptyRestartedMemdsNodeDoesNotFailRequests) {
  Region region(RegionOptions{});
  region.publisher().publish(table_map(TableId(3), 64, 1));
  region.run_for(sim::milliseconds(100));
  region.world.power_off(region.memds[0].host);
  region.world.power_on(region.memds[0].host);  // back with nothing in memory
  region.run_for(sim::milliseconds(1));
  ASSERT_EQ(region.node(0).tree().size(), 0u);
  RouterProcess& router = region.router();
  const uint64_t width = UINT64_MAX / 64;
  for (uint64_t p = 0; p < 64; ++p) router.resolve(TableId(3), p * width + 5);
  region.run_for(sim::milliseconds(20));
  for (uint64_t p = 0; p < 64; ++p) router.resolve(TableId(3), p * width + 5);  // hits
  region.run_for(sim::milliseconds(20));
  EXPECT_EQ(router.results[CacheStatus::kOk], 128u);
  EXPECT_EQ(router.results.count(CacheStatus::kNoEntry), 0u);
  EXPECT_GT(router.cache().stats().no_entry_answers, 0u);  // node 0 was asked
  EXPECT_EQ(router.cache().size(), 64u);                   // refreshes it answered kept entries
}

TEST(PartitionCacheTest, StaleEntriesAreInvalidatedAndNewerMembersLearned) {
  Region region(RegionOptions{});
  region.publisher().publish(table_map(TableId(3), 4, 1));
  region.run_for(sim::milliseconds(100));
  RouterProcess& router = region.router();
  PartitionCache& cache = router.cache();
  router.resolve(TableId(3), 9);
  region.run_for(sim::milliseconds(10));
  ASSERT_NE(cache.peek(TableId(3), 9), nullptr);
  // A storage answer carried the group's members at a later epoch: kept.
  GroupMembers moved{7, {sim::Address{sim::HostId(77), kStoragePort}}};
  cache.learn_members(TableId(3), 9, moved);
  EXPECT_EQ(cache.peek(TableId(3), 9)->members, moved);
  EXPECT_FALSE(cache.peek(TableId(3), 9)->leader_hint.has_value());  // not among the members
  // An older epoch changes nothing, and neither does a MemDS refresh still at epoch 1.
  cache.learn_members(TableId(3), 9, GroupMembers{2, {}});
  router.resolve(TableId(3), 9);
  region.run_for(sim::milliseconds(10));
  EXPECT_EQ(cache.peek(TableId(3), 9)->members, moved);
  EXPECT_EQ(cache.stats().members_learned, 1u);
  // Wrong node: the entry goes, and the next request is a miss that looks MemDS up.
  cache.invalidate(TableId(3), 9);
  EXPECT_EQ(cache.peek(TableId(3), 9), nullptr);
  const uint64_t misses = cache.stats().misses;
  router.resolve(TableId(3), 9);
  EXPECT_EQ(cache.stats().misses, misses + 1);
  region.run_for(sim::milliseconds(10));
  EXPECT_NE(cache.peek(TableId(3), 9), nullptr);
}

TEST(PartitionCacheTest, CapsBoundEntriesAndOutstandingLookups) {
  RegionOptions options;
  options.cache.max_entries = 5;
  options.cache.max_outstanding_lookups = 8;
  Region region(options);
  region.publisher().publish(table_map(TableId(3), 64, 1));
  region.run_for(sim::milliseconds(100));
  RouterProcess& router = region.router();
  const uint64_t width = UINT64_MAX / 64;
  for (uint64_t p = 0; p < 20; ++p) router.resolve(TableId(3), p * width + 1);
  // Eight lookups fit; the twelve others are refused at once.
  EXPECT_EQ(router.results[CacheStatus::kBusy], 12u);
  region.run_for(sim::milliseconds(10));
  EXPECT_EQ(router.results[CacheStatus::kOk], 8u);
  EXPECT_EQ(router.cache().size(), 5u);
  EXPECT_EQ(router.cache().stats().evictions, 3u);
}

TEST(PartitionCacheTest, TheBimodalDownloadPagesAndExpires) {
  RegionOptions options;
  options.cache.mode = PartitionCacheMode::kBimodal;
  options.cache.download_page_entries = 16;
  options.cache.entry_ttl = sim::seconds(30);
  Region region(options);
  region.publisher().publish(table_map(TableId(4), 100, 1));
  region.run_for(sim::milliseconds(100));
  RouterProcess& router = region.router();
  auto& cache = dynamic_cast<BimodalCache&>(router.cache());
  router.resolve(TableId(4), 123);
  region.run_for(sim::milliseconds(100));
  EXPECT_TRUE(cache.downloaded(TableId(4)));
  EXPECT_EQ(cache.size(), 100u);
  EXPECT_EQ(cache.stats().range_reads_sent, 7u);  // 100 entries in pages of 16
  EXPECT_EQ(cache.stats().entries_downloaded, 100u);
  EXPECT_EQ(cache.stats().memds_lookups_sent, 1u);  // the first request's own lookup
  for (int i = 0; i < 50; ++i) router.resolve(TableId(4), uint64_t(i) * 1'000'000'000'000'000ULL);
  EXPECT_EQ(cache.stats().hits, 50u);
  EXPECT_EQ(cache.stats().memds_lookups_sent, 1u);
  // Past the TTL the entries expire and the table is downloaded again.
  region.run_for(sim::seconds(31));
  router.resolve(TableId(4), 123);
  region.run_for(sim::milliseconds(100));
  EXPECT_EQ(cache.stats().expirations, 1u);
  EXPECT_EQ(cache.stats().downloads_started, 2u);
  EXPECT_EQ(cache.stats().entries_downloaded, 200u);
}

}  // namespace
}  // namespace dynasim::model
