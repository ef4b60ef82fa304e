// Tests for the simulated disk: durability across power loss, torn and misdirected writes caught by
// checksums, latent errors, bit rot rates, the service-time model, full disks and determinism.
#include "sim/disk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "sim/simulation.h"

namespace dynasim::sim {
namespace {

constexpr uint32_t kSectorBytes = 4096;

// Fixed latencies and no throughput limit to speak of, so each test controls the timing it checks.
DiskOptions quiet_options(uint64_t capacity_sectors) {
  DiskOptions options;
  options.capacity_bytes = capacity_sectors * kSectorBytes;
  options.sector_size_bytes = kSectorBytes;
  options.read_latency_ns = DistributionSpec::constant(10'000);
  options.write_latency_ns = DistributionSpec::constant(20'000);
  options.fsync_latency_ns = DistributionSpec::constant(100'000);
  options.iops_limit = 1e12;                  // a start interval that rounds to 0 ns
  options.bandwidth_bytes_per_second = 1e15;  // a 4 KB transfer that rounds to 0 ns
  return options;
}

class FaultLog final : public DiskObserver {
 public:
  void on_disk_fault(DiskId disk, const DiskFaultRecord& record) override {
    disks.push_back(disk);
    records.push_back(record);
  }
  std::vector<DiskFaultRecord> of_kind(DiskFaultKind kind) const {
    std::vector<DiskFaultRecord> matching;
    for (const DiskFaultRecord& record : records) {
      if (record.kind == kind) matching.push_back(record);
    }
    return matching;
  }
  std::vector<DiskId> disks;
  std::vector<DiskFaultRecord> records;
};

// Runs the simulation until `done` holds or nothing is left to run.
template <typename Predicate>
void step_until(Simulation& simulation, Predicate done) {
  while (!done() && simulation.step()) {
  }
}

IoStatus write_now(Simulation& simulation, Disk& disk, uint64_t sector,
                   std::vector<uint8_t> bytes) {
  std::optional<IoStatus> status;
  disk.write(sector * kSectorBytes, std::move(bytes), [&status](IoStatus s) { status = s; });
  step_until(simulation, [&] { return status.has_value(); });
  EXPECT_TRUE(status.has_value());
  return status.value_or(IoStatus::kPoweredOff);
}

ReadResult read_now(Simulation& simulation, Disk& disk, uint64_t sector, uint64_t sector_count) {
  std::optional<ReadResult> result;
  disk.read(sector * kSectorBytes, sector_count * kSectorBytes,
            [&result](ReadResult r) { result = std::move(r); });
  step_until(simulation, [&] { return result.has_value(); });
  EXPECT_TRUE(result.has_value());
  return result.value_or(ReadResult{IoStatus::kPoweredOff, {}, Disk::kNoSector});
}

IoStatus fsync_now(Simulation& simulation, Disk& disk) {
  std::optional<IoStatus> status;
  disk.fsync([&status](IoStatus s) { status = s; });
  step_until(simulation, [&] { return status.has_value(); });
  EXPECT_TRUE(status.has_value());
  return status.value_or(IoStatus::kPoweredOff);
}

std::vector<uint8_t> filled(uint8_t value, uint64_t sector_count = 1) {
  return std::vector<uint8_t>(sector_count * kSectorBytes, value);
}

std::vector<uint8_t> slice(const std::vector<uint8_t>& bytes, uint64_t sector_index) {
  const auto begin = bytes.begin() + static_cast<std::ptrdiff_t>(sector_index * kSectorBytes);
  return std::vector<uint8_t>(begin, begin + kSectorBytes);
}

// A self-describing page, laid out the way database pages are:
//   [0, 8) version, [8, 16) the address it was written for, [16, 4080) payload,
//   [4080, 4088) FNV-1a checksum of every other byte, [4088, 4096) the version again (a trailer).
// Two versions of one page differ in every payload byte, in the header and in the trailer.
constexpr size_t kChecksumOffset = 4080;
constexpr size_t kTrailerOffset = 4088;

void put_u64(std::vector<uint8_t>& page, size_t offset, uint64_t value) {
  for (size_t i = 0; i < 8; ++i) page[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}
uint64_t get_u64(const uint8_t* page, size_t offset) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value |= uint64_t{page[offset + i]} << (8 * i);
  return value;
}

uint64_t page_checksum(const uint8_t* page) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < kSectorBytes; ++i) {
    if (i >= kChecksumOffset && i < kTrailerOffset) continue;
    hash = (hash ^ page[i]) * 0x100000001b3ULL;
  }
  return hash;
}

std::vector<uint8_t> make_page(uint64_t address, uint64_t version) {
  std::vector<uint8_t> page(kSectorBytes);
  put_u64(page, 0, version);
  put_u64(page, 8, address);
  for (size_t i = 16; i < kChecksumOffset; ++i) {
    page[i] = static_cast<uint8_t>(address * 131 + version * 37 + i * 11);
  }
  put_u64(page, kTrailerOffset, version);
  put_u64(page, kChecksumOffset, page_checksum(page.data()));
  return page;
}

// The checksum a page carries matches its content (a payload-only check).
bool page_checksum_ok(const uint8_t* page) {
  return get_u64(page, kChecksumOffset) == page_checksum(page);
}
// Also checks that the page was written for the address it was read from.
bool page_ok_at(const uint8_t* page, uint64_t address) {
  return page_checksum_ok(page) && get_u64(page, 8) == address;
}

// Writes version `version` of pages [0, sector_count) as one operation.
std::vector<uint8_t> make_pages(uint64_t sector_count, uint64_t version) {
  std::vector<uint8_t> bytes;
  for (uint64_t sector = 0; sector < sector_count; ++sector) {
    const std::vector<uint8_t> page = make_page(sector, version);
    bytes.insert(bytes.end(), page.begin(), page.end());
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Durability and the write cache.

TEST(DiskTest, SyncedDataSurvivesPowerOffAndUnsyncedDataDoesNot) {
  Simulation simulation(1);
  FaultLog log;
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  disk.set_observer(&log);

  ASSERT_EQ(write_now(simulation, disk, 0, make_page(0, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  ASSERT_EQ(write_now(simulation, disk, 0, make_page(0, 2)), IoStatus::kOk);
  ASSERT_EQ(write_now(simulation, disk, 1, make_page(1, 1)), IoStatus::kOk);
  EXPECT_EQ(disk.used_bytes(), 2 * kSectorBytes);

  disk.power_off();
  disk.power_on();

  const ReadResult result = read_now(simulation, disk, 0, 2);
  ASSERT_EQ(result.status, IoStatus::kOk);
  EXPECT_EQ(slice(result.data, 0), make_page(0, 1));  // the synced version
  EXPECT_EQ(slice(result.data, 1), filled(0));        // never synced: gone
  EXPECT_EQ(disk.used_bytes(), 1 * kSectorBytes);
  EXPECT_EQ(disk.stats().lost_unsynced_sectors, 2u);
  const auto lost = log.of_kind(DiskFaultKind::kLostUnsyncedWrites);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].sector, 0u);
  EXPECT_EQ(lost[0].count, 2u);
  EXPECT_EQ(log.disks[0], DiskId(0));
}

TEST(DiskTest, ReadsSeeTheCacheBeforeFsync) {
  Simulation simulation(2);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  ASSERT_EQ(write_now(simulation, disk, 3, make_page(3, 7)), IoStatus::kOk);

  EXPECT_TRUE(disk.sector_cached(3));
  EXPECT_EQ(disk.durable_sector(3), filled(0));
  const ReadResult before = read_now(simulation, disk, 3, 1);
  ASSERT_EQ(before.status, IoStatus::kOk);
  EXPECT_EQ(before.data, make_page(3, 7));

  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  EXPECT_FALSE(disk.sector_cached(3));
  EXPECT_EQ(disk.cached_sector_count(), 0u);
  EXPECT_EQ(disk.durable_sector(3), make_page(3, 7));
}

TEST(DiskTest, NeverWrittenSectorsReadAsZeros) {
  Simulation simulation(3);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  const ReadResult result = read_now(simulation, disk, 10, 4);
  ASSERT_EQ(result.status, IoStatus::kOk);
  EXPECT_EQ(result.data, filled(0, 4));
  EXPECT_EQ(disk.used_bytes(), 0u);
}

TEST(DiskTest, WriteSectorsEqualsOneWriteOfTheConcatenation) {
  Simulation first_simulation(4);
  Disk first(first_simulation, DiskId(0), "d0", quiet_options(64));
  Simulation second_simulation(4);
  Disk second(second_simulation, DiskId(0), "d0", quiet_options(64));
  ASSERT_EQ(write_now(first_simulation, first, 5, make_pages(3, 2)), IoStatus::kOk);
  std::optional<IoStatus> status;
  const std::vector<uint8_t> joined = make_pages(3, 2);
  second.write_sectors(5 * kSectorBytes, {slice(joined, 0), slice(joined, 1), slice(joined, 2)},
                       [&status](IoStatus s) { status = s; });
  step_until(second_simulation, [&] { return status.has_value(); });
  ASSERT_EQ(status, std::optional<IoStatus>(IoStatus::kOk));
  EXPECT_EQ(first_simulation.trace_hash(), second_simulation.trace_hash());
  EXPECT_EQ(read_now(second_simulation, second, 5, 3).data, joined);
}

TEST(DiskTest, DiscardDropsCachedAndDurableDataAndReadsZeros) {
  Simulation simulation(3);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  ASSERT_EQ(write_now(simulation, disk, 8, make_pages(4, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  ASSERT_EQ(write_now(simulation, disk, 10, make_pages(4, 2)), IoStatus::kOk);  // 10..13 cached
  ASSERT_EQ(disk.used_bytes(), 6 * kSectorBytes);
  disk.discard(9 * kSectorBytes, 3 * kSectorBytes);  // 9 durable, 10 and 11 cached over durable
  EXPECT_EQ(disk.stats().discarded_sectors, 3u);
  EXPECT_EQ(disk.used_bytes(), 3 * kSectorBytes);
  EXPECT_FALSE(disk.sector_cached(10));
  EXPECT_EQ(disk.durable_sector(9), filled(0));
  EXPECT_EQ(read_now(simulation, disk, 9, 3).data, filled(0, 3));
  EXPECT_EQ(read_now(simulation, disk, 8, 1).data, make_page(0, 1));  // outside: untouched
  EXPECT_EQ(read_now(simulation, disk, 12, 1).data, slice(make_pages(4, 2), 2));
  // Nothing left there to lose or tear: a power-off keeps the range empty.
  disk.power_off();
  disk.power_on();
  EXPECT_EQ(read_now(simulation, disk, 9, 3).data, filled(0, 3));
  EXPECT_EQ(read_now(simulation, disk, 8, 1).data, make_page(0, 1));
}

TEST(DiskTest, FsyncWaitsForEarlierOperations) {
  Simulation simulation(4);
  DiskOptions options = quiet_options(64);
  options.write_latency_ns = DistributionSpec::constant(500'000);
  options.fsync_latency_ns = DistributionSpec::constant(10'000);
  Disk disk(simulation, DiskId(0), "d0", options);

  std::vector<int> order;
  SimTime write_done_at;
  SimTime fsync_done_at;
  disk.write(0, make_page(0, 1), [&](IoStatus) {
    order.push_back(1);
    write_done_at = simulation.now();
  });
  disk.fsync([&](IoStatus) {
    order.push_back(2);
    fsync_done_at = simulation.now();
    // The write completed before the fsync: it must now be durable.
    EXPECT_EQ(disk.durable_sector(0), make_page(0, 1));
  });
  simulation.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(write_done_at, SimTime(500'000));
  EXPECT_EQ(fsync_done_at, SimTime(510'000));
}

// ---------------------------------------------------------------------------------------------
// Torn writes.

struct TornRun {
  std::vector<uint8_t> sectors;  // sectors 0..7 after the power cycle
  std::vector<DiskFaultRecord> torn;
};

// Syncs version 1 of pages 0..7, writes version 2 of all of them as one write (sector 7 is the
// last written), then loses power before any fsync.
TornRun power_off_over_unsynced_pages(uint64_t seed, double torn_write_probability) {
  Simulation simulation(seed);
  FaultLog log;
  DiskOptions options = quiet_options(64);
  options.torn_write_probability = torn_write_probability;
  Disk disk(simulation, DiskId(0), "d0", options);
  disk.set_observer(&log);
  EXPECT_EQ(write_now(simulation, disk, 0, make_pages(8, 1)), IoStatus::kOk);
  EXPECT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  EXPECT_EQ(write_now(simulation, disk, 0, make_pages(8, 2)), IoStatus::kOk);
  disk.power_off();
  disk.power_on();
  const ReadResult result = read_now(simulation, disk, 0, 8);
  EXPECT_EQ(result.status, IoStatus::kOk);
  EXPECT_EQ(disk.stats().torn_writes, log.of_kind(DiskFaultKind::kTornWrite).size());
  return TornRun{result.data, log.of_kind(DiskFaultKind::kTornWrite)};
}

TEST(DiskTest, TornSectorIsCaughtByItsChecksum) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    const TornRun run = power_off_over_unsynced_pages(seed, 1.0);
    ASSERT_EQ(run.torn.size(), 1u);
    EXPECT_EQ(run.torn[0].sector, 7u);
    std::vector<uint64_t> failing;
    for (uint64_t sector = 0; sector < 8; ++sector) {
      const uint8_t* page = run.sectors.data() + sector * kSectorBytes;
      if (!page_ok_at(page, sector)) failing.push_back(sector);
    }
    EXPECT_EQ(failing, (std::vector<uint64_t>{7}));
    // Untorn sectors fell back to the synced version.
    for (uint64_t sector = 0; sector < 7; ++sector) {
      EXPECT_EQ(slice(run.sectors, sector), make_page(sector, 1));
    }
    // The torn sector is new bytes up to the split, old bytes after it.
    const uint64_t split = run.torn[0].count;
    ASSERT_GE(split, 1u);
    ASSERT_LT(split, kSectorBytes);
    const std::vector<uint8_t> torn = slice(run.sectors, 7);
    const std::vector<uint8_t> new_page = make_page(7, 2);
    const std::vector<uint8_t> old_page = make_page(7, 1);
    for (uint64_t i = 0; i < kSectorBytes; ++i) {
      ASSERT_EQ(torn[i], i < split ? new_page[i] : old_page[i]) << "byte " << i;
    }
  }
}

TEST(DiskTest, WithoutTearingTheUnsyncedSectorRevertsCleanly) {
  const TornRun run = power_off_over_unsynced_pages(1, 0.0);
  EXPECT_TRUE(run.torn.empty());
  for (uint64_t sector = 0; sector < 8; ++sector) {
    EXPECT_EQ(slice(run.sectors, sector), make_page(sector, 1));
  }
}

TEST(DiskTest, TornSectorThatWasNeverSyncedKeepsZerosAfterTheSplit) {
  Simulation simulation(5);
  FaultLog log;
  DiskOptions options = quiet_options(64);
  options.torn_write_probability = 1.0;
  Disk disk(simulation, DiskId(0), "d0", options);
  disk.set_observer(&log);
  ASSERT_EQ(write_now(simulation, disk, 2, filled(0xab)), IoStatus::kOk);
  disk.power_off();
  const auto torn = log.of_kind(DiskFaultKind::kTornWrite);
  ASSERT_EQ(torn.size(), 1u);
  const std::vector<uint8_t> durable = disk.durable_sector(2);
  for (uint64_t i = 0; i < kSectorBytes; ++i) {
    ASSERT_EQ(durable[i], i < torn[0].count ? 0xab : 0) << "byte " << i;
  }
  EXPECT_EQ(disk.used_bytes(), kSectorBytes);  // the torn sector reached the media
}

TEST(DiskTest, NothingIsTornAfterAFsync) {
  Simulation simulation(6);
  FaultLog log;
  DiskOptions options = quiet_options(64);
  options.torn_write_probability = 1.0;
  Disk disk(simulation, DiskId(0), "d0", options);
  disk.set_observer(&log);
  ASSERT_EQ(write_now(simulation, disk, 2, make_page(2, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  disk.power_off();
  EXPECT_TRUE(log.records.empty());
  EXPECT_EQ(disk.durable_sector(2), make_page(2, 1));
}

// ---------------------------------------------------------------------------------------------
// Power loss, crashes and pending callbacks.

TEST(DiskTest, PendingCallbacksNeverRunAfterPowerOff) {
  Simulation simulation(7);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  int callbacks = 0;
  disk.write(0, make_page(0, 1), [&](IoStatus) { ++callbacks; });
  disk.read(0, kSectorBytes, [&](ReadResult) { ++callbacks; });
  disk.fsync([&](IoStatus) { ++callbacks; });
  EXPECT_EQ(disk.pending_ops(), 3u);
  disk.power_off();
  EXPECT_EQ(disk.pending_ops(), 0u);
  EXPECT_EQ(simulation.pending_events(), 0u);  // no stale completion is left to fire
  simulation.run();
  EXPECT_EQ(callbacks, 0);
  disk.power_on();
  EXPECT_EQ(read_now(simulation, disk, 0, 1).data, filled(0));  // the write never landed
}

TEST(DiskTest, PowerOffBetweenCompletionsStopsOnlyTheLaterOnes) {
  Simulation simulation(8);
  DiskOptions options = quiet_options(64);
  options.iops_limit = 1000;  // starts 1 ms apart
  Disk disk(simulation, DiskId(0), "d0", options);
  std::vector<int> completed;
  for (int i = 0; i < 3; ++i) {
    disk.write(static_cast<uint64_t>(i) * kSectorBytes, make_page(static_cast<uint64_t>(i), 1),
               [&completed, i](IoStatus) { completed.push_back(i); });
  }
  static constexpr EventKind kPowerCut = event_kind("test.power_cut");
  simulation.call_at(SimTime(1'500'000), kPowerCut, 0, [&disk] { disk.power_off(); });
  simulation.run();
  EXPECT_EQ(completed, (std::vector<int>{0, 1}));  // done at 20 us and 1.02 ms; the third at 2.02
  EXPECT_EQ(disk.stats().lost_unsynced_sectors, 2u);
}

TEST(DiskTest, AbortPendingIoDropsCallbacksButKeepsTheCache) {
  Simulation simulation(9);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  ASSERT_EQ(write_now(simulation, disk, 0, make_page(0, 1)), IoStatus::kOk);

  int callbacks = 0;
  disk.write(kSectorBytes, make_page(1, 1), [&](IoStatus) { ++callbacks; });
  disk.read(0, kSectorBytes, [&](ReadResult) { ++callbacks; });
  disk.fsync([&](IoStatus) { ++callbacks; });
  disk.abort_pending_io();
  simulation.run();
  EXPECT_EQ(callbacks, 0);

  EXPECT_TRUE(disk.powered());
  EXPECT_TRUE(disk.sector_cached(0));            // the cache survived the crash
  EXPECT_EQ(disk.durable_sector(0), filled(0));  // and the aborted fsync flushed nothing
  EXPECT_EQ(read_now(simulation, disk, 0, 1).data, make_page(0, 1));
  EXPECT_EQ(read_now(simulation, disk, 1, 1).data, filled(0));  // the aborted write never landed
}

TEST(DiskTest, OperationsWhilePoweredOffGetPoweredOffThroughTheQueue) {
  Simulation simulation(10);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  simulation.run_until(SimTime(1'000));
  disk.power_off();
  EXPECT_FALSE(disk.powered());

  std::optional<IoStatus> write_status;
  std::optional<IoStatus> fsync_status;
  std::optional<ReadResult> read_result;
  SimTime answered_at;
  disk.write(0, make_page(0, 1), [&](IoStatus s) {
    write_status = s;
    answered_at = simulation.now();
  });
  disk.read(0, kSectorBytes, [&](ReadResult r) { read_result = std::move(r); });
  disk.fsync([&](IoStatus s) { fsync_status = s; });
  // Never re-entrant: nothing has been called back yet.
  EXPECT_FALSE(write_status || fsync_status || read_result);

  simulation.run();
  EXPECT_EQ(write_status, IoStatus::kPoweredOff);
  EXPECT_EQ(fsync_status, IoStatus::kPoweredOff);
  ASSERT_TRUE(read_result.has_value());
  EXPECT_EQ(read_result->status, IoStatus::kPoweredOff);
  EXPECT_TRUE(read_result->data.empty());
  EXPECT_EQ(answered_at, SimTime(1'000));  // at once

  disk.power_on();
  EXPECT_EQ(write_now(simulation, disk, 0, make_page(0, 1)), IoStatus::kOk);
}

TEST(DiskTest, DestroyingADiskCancelsItsEvents) {
  Simulation simulation(11);
  int callbacks = 0;
  {
    DiskOptions options = quiet_options(64);
    options.bit_rot_per_tb_hour = 1e9;
    Disk disk(simulation, DiskId(0), "d0", options);
    disk.write(0, make_page(0, 1), [&](IoStatus) { ++callbacks; });
    EXPECT_EQ(simulation.pending_events(), 2u);  // the write and the next bit flip
  }
  EXPECT_EQ(simulation.pending_events(), 0u);
  simulation.run();
  EXPECT_EQ(callbacks, 0);
}

// ---------------------------------------------------------------------------------------------
// Latent sector errors.

TEST(DiskTest, LatentSectorErrorIsStickyUntilTheRewriteReachesTheMedia) {
  Simulation simulation(12);
  FaultLog log;
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  disk.set_observer(&log);
  ASSERT_EQ(write_now(simulation, disk, 0, make_pages(8, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);

  disk.inject_latent_error(5);
  for (int attempt = 0; attempt < 3; ++attempt) {
    const ReadResult result = read_now(simulation, disk, 4, 3);
    EXPECT_EQ(result.status, IoStatus::kMediaError);
    EXPECT_EQ(result.first_bad_sector, 5u);
    EXPECT_TRUE(result.data.empty());
  }
  EXPECT_EQ(read_now(simulation, disk, 4, 1).status, IoStatus::kOk);
  EXPECT_EQ(read_now(simulation, disk, 6, 1).status, IoStatus::kOk);

  // A rewrite sitting in the cache serves reads, but if power fails before it reaches the media
  // the sector is as bad as before.
  ASSERT_EQ(write_now(simulation, disk, 5, make_page(5, 2)), IoStatus::kOk);
  EXPECT_EQ(read_now(simulation, disk, 5, 1).data, make_page(5, 2));
  disk.power_off();
  disk.power_on();
  EXPECT_EQ(read_now(simulation, disk, 5, 1).status, IoStatus::kMediaError);

  ASSERT_EQ(write_now(simulation, disk, 5, make_page(5, 3)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  EXPECT_FALSE(disk.sector_bad(5));
  const ReadResult healed = read_now(simulation, disk, 4, 3);
  ASSERT_EQ(healed.status, IoStatus::kOk);
  EXPECT_EQ(slice(healed.data, 1), make_page(5, 3));

  const auto latent = log.of_kind(DiskFaultKind::kLatentSectorError);
  ASSERT_EQ(latent.size(), 1u);
  EXPECT_EQ(latent[0].sector, 5u);
  EXPECT_EQ(disk.stats().latent_errors, 1u);
}

TEST(DiskTest, LatentErrorsAppearOnReadAtTheConfiguredRate) {
  Simulation simulation(13);
  FaultLog log;
  constexpr uint64_t kSectors = 4000;
  Disk disk(simulation, DiskId(0), "d0", quiet_options(kSectors + 16));
  disk.set_observer(&log);
  ASSERT_EQ(write_now(simulation, disk, 0, make_pages(kSectors, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);

  disk.set_latent_error_probability(0.05);
  std::vector<uint64_t> bad;
  for (uint64_t sector = 0; sector < kSectors; ++sector) {
    const ReadResult result = read_now(simulation, disk, sector, 1);
    if (result.status == IoStatus::kMediaError) bad.push_back(result.first_bad_sector);
  }
  // Binomial(4000, 0.05): mean 200, standard deviation 13.8; allow five of them.
  EXPECT_GT(bad.size(), 131u);
  EXPECT_LT(bad.size(), 269u);
  EXPECT_EQ(log.of_kind(DiskFaultKind::kLatentSectorError).size(), bad.size());

  // Sticky: with the probability back at zero, the bad sectors stay bad and the rest stay good.
  disk.set_latent_error_probability(0.0);
  const std::set<uint64_t> bad_set(bad.begin(), bad.end());
  for (uint64_t sector = 0; sector < kSectors; ++sector) {
    const bool expect_bad = bad_set.contains(sector);
    ASSERT_EQ(read_now(simulation, disk, sector, 1).status,
              expect_bad ? IoStatus::kMediaError : IoStatus::kOk)
        << sector;
  }

  // An unmapped (never written) sector has no flash behind it: it reads as zeros even at p = 1.
  disk.set_latent_error_probability(1.0);
  const ReadResult unmapped = read_now(simulation, disk, kSectors + 1, 1);
  EXPECT_EQ(unmapped.status, IoStatus::kOk);
  EXPECT_EQ(unmapped.data, filled(0));
}

// ---------------------------------------------------------------------------------------------
// Misdirected writes.

TEST(DiskTest, MisdirectedWriteIsCaughtOnlyByAnAddressChecksumAndIsReported) {
  Simulation simulation(14);
  FaultLog log;
  constexpr uint64_t kSectors = 64;
  Disk disk(simulation, DiskId(3), "d3", quiet_options(kSectors));
  disk.set_observer(&log);
  ASSERT_EQ(write_now(simulation, disk, 0, make_pages(kSectors, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);

  disk.set_misdirected_write_probability(1.0);
  EXPECT_EQ(write_now(simulation, disk, 20, make_page(20, 2)), IoStatus::kOk);  // it says ok
  disk.set_misdirected_write_probability(0.0);

  const auto misdirected = log.of_kind(DiskFaultKind::kMisdirectedWrite);
  ASSERT_EQ(misdirected.size(), 1u);
  EXPECT_EQ(log.disks.back(), DiskId(3));
  EXPECT_EQ(misdirected[0].sector, 20u);
  EXPECT_EQ(misdirected[0].count, 1u);
  const uint64_t landed = misdirected[0].landed_sector;
  EXPECT_NE(landed, 20u);
  EXPECT_LE(landed, 20u + Disk::kMaxMisdirectDistanceSectors);
  EXPECT_GE(landed, 20u - Disk::kMaxMisdirectDistanceSectors);

  const ReadResult result = read_now(simulation, disk, 0, kSectors);
  ASSERT_EQ(result.status, IoStatus::kOk);
  std::vector<uint64_t> address_failures;
  for (uint64_t sector = 0; sector < kSectors; ++sector) {
    const uint8_t* page = result.data.data() + sector * kSectorBytes;
    EXPECT_TRUE(page_checksum_ok(page)) << sector;  // every page is self-consistent
    if (!page_ok_at(page, sector)) address_failures.push_back(sector);
  }
  EXPECT_EQ(address_failures, (std::vector<uint64_t>{landed}));
  EXPECT_EQ(slice(result.data, 20), make_page(20, 1));  // the intended sector kept its old page
  EXPECT_EQ(disk.stats().misdirected_writes, 1u);
}

// ---------------------------------------------------------------------------------------------
// Service times.

TEST(DiskTest, SlowFactorMultipliesTheLatency) {
  Simulation simulation(15);
  DiskOptions options = quiet_options(64);
  options.write_latency_ns = DistributionSpec::constant(100'000);
  options.bandwidth_bytes_per_second = 4.096e9;  // 4096 bytes take 1 us
  Disk disk(simulation, DiskId(0), "d0", options);

  std::vector<SimTime> done_at;
  auto record = [&done_at, &simulation](IoStatus) { done_at.push_back(simulation.now()); };
  disk.write(0, make_page(0, 1), record);
  simulation.run();
  disk.set_slow_factor(3.0);
  const SimTime issued = simulation.now();
  disk.write(0, make_page(0, 1), record);
  simulation.run();
  ASSERT_EQ(done_at.size(), 2u);
  EXPECT_EQ(done_at[0], SimTime(100'000 + 1'000));
  EXPECT_EQ(done_at[1] - issued, Duration(300'000 + 1'000));  // the transfer is not scaled
}

TEST(DiskTest, IopsLimitSpacesOperationStarts) {
  Simulation simulation(16);
  DiskOptions options = quiet_options(64);
  options.iops_limit = 1000;
  options.write_latency_ns = DistributionSpec::constant(0);
  options.read_latency_ns = DistributionSpec::constant(50'000);
  Disk disk(simulation, DiskId(0), "d0", options);
  std::vector<SimTime> done_at;
  for (uint64_t i = 0; i < 4; ++i) {
    disk.write(i * kSectorBytes, make_page(i, 1),
               [&](IoStatus) { done_at.push_back(simulation.now()); });
  }
  disk.read(0, kSectorBytes, [&](ReadResult) { done_at.push_back(simulation.now()); });
  simulation.run();
  EXPECT_EQ(done_at, (std::vector<SimTime>{SimTime(0), SimTime(1'000'000), SimTime(2'000'000),
                                           SimTime(3'000'000), SimTime(4'050'000)}));
}

TEST(DiskTest, BandwidthSerialisesTransfers) {
  Simulation simulation(17);
  DiskOptions options = quiet_options(64);
  options.bandwidth_bytes_per_second = 4096.0 * 1000;  // one sector per millisecond
  options.write_latency_ns = DistributionSpec::constant(30'000);
  Disk disk(simulation, DiskId(0), "d0", options);
  std::vector<SimTime> done_at;
  auto record = [&](IoStatus) { done_at.push_back(simulation.now()); };
  disk.write(0, filled(1), record);
  disk.write(kSectorBytes, filled(2), record);
  disk.write(2 * kSectorBytes, filled(3, 2), record);  // two sectors: two milliseconds
  disk.write(4 * kSectorBytes, filled(4), record);
  simulation.run();
  EXPECT_EQ(done_at, (std::vector<SimTime>{SimTime(1'030'000), SimTime(2'030'000),
                                           SimTime(4'030'000), SimTime(5'030'000)}));
}

TEST(DiskTest, DefaultOptionsGiveDatacenterNvmeLatencies) {
  Simulation simulation(18);
  Disk disk(simulation, DiskId(0), "d0", DiskOptions());
  EXPECT_EQ(disk.capacity_sectors(), 468'843'606u);
  // One 4 KB write at a time: median latency 20 us plus 3.9 us of transfer at 1.05 GB/s.
  std::vector<int64_t> latencies_ns;
  for (int i = 0; i < 201; ++i) {
    const SimTime issued = simulation.now();
    ASSERT_EQ(write_now(simulation, disk, 0, filled(1)), IoStatus::kOk);
    latencies_ns.push_back((simulation.now() - issued).ns);
  }
  std::sort(latencies_ns.begin(), latencies_ns.end());
  EXPECT_GT(latencies_ns[100], 20'000);
  EXPECT_LT(latencies_ns[100], 28'000);
}

// ---------------------------------------------------------------------------------------------
// Full disks.

TEST(DiskTest, FullDiskReturnsNoSpaceAsAValue) {
  Simulation simulation(19);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  ASSERT_EQ(write_now(simulation, disk, 0, filled(1)), IoStatus::kOk);
  disk.set_full(true);
  EXPECT_EQ(write_now(simulation, disk, 1, filled(2)), IoStatus::kNoSpace);
  EXPECT_EQ(read_now(simulation, disk, 1, 1).data, filled(0));
  EXPECT_EQ(write_now(simulation, disk, 0, filled(3)), IoStatus::kOk);  // overwriting is fine
  // All or nothing: one new sector fails the whole write.
  EXPECT_EQ(write_now(simulation, disk, 0, filled(4, 2)), IoStatus::kNoSpace);
  EXPECT_EQ(read_now(simulation, disk, 0, 1).data, filled(3));
  EXPECT_EQ(disk.used_bytes(), kSectorBytes);
  disk.set_full(false);
  EXPECT_EQ(write_now(simulation, disk, 1, filled(2)), IoStatus::kOk);
  EXPECT_EQ(disk.used_bytes(), 2 * kSectorBytes);
  EXPECT_EQ(disk.stats().writes, 3u);
}

// ---------------------------------------------------------------------------------------------
// Bit rot.

// A disk of 256 sectors (1 MiB) whose whole capacity rots at one flip per hour.
constexpr uint64_t kRotSectors = 256;
constexpr double kOneFlipPerHourPerTb = 1e12 / (kRotSectors * kSectorBytes);

struct RotRun {
  uint64_t flips = 0;
  uint64_t rot_events = 0;
  std::vector<DiskFaultRecord> records;
  bool image_matches_reports = false;
};

class KindCounter final : public EventObserver {
 public:
  explicit KindCounter(const EventKind* kind) : kind_(kind) {}
  void on_executed(const Event& event, uint64_t) override {
    if (event.kind == kind_) ++count;
  }
  uint64_t count = 0;

 private:
  const EventKind* kind_;
};

RotRun run_bit_rot(uint64_t seed, uint64_t written_sectors, Duration span) {
  Simulation simulation(seed);
  KindCounter rot_events(&Disk::kDiskBitRot);
  simulation.set_observer(&rot_events);
  FaultLog log;
  DiskOptions options = quiet_options(kRotSectors);
  options.bit_rot_per_tb_hour = kOneFlipPerHourPerTb;
  Disk disk(simulation, DiskId(0), "rot", options);
  disk.set_observer(&log);
  std::vector<uint8_t> expected;
  if (written_sectors > 0) {
    expected = make_pages(written_sectors, 1);
    EXPECT_EQ(write_now(simulation, disk, 0, expected), IoStatus::kOk);
    EXPECT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  }
  simulation.run_until(SimTime::zero() + span);

  RotRun run;
  run.flips = disk.stats().bit_flips;
  run.rot_events = rot_events.count;
  run.records = log.of_kind(DiskFaultKind::kBitFlip);
  // Replay the reported flips on the written image: it must equal what the media holds.
  for (const DiskFaultRecord& record : run.records) {
    expected[record.sector * kSectorBytes + record.bit / 8] ^=
        static_cast<uint8_t>(1u << (record.bit % 8));
  }
  run.image_matches_reports = true;
  for (uint64_t sector = 0; sector < written_sectors; ++sector) {
    if (disk.durable_sector(sector) != slice(expected, sector)) run.image_matches_reports = false;
  }
  return run;
}

TEST(DiskTest, BitRotOnAFullyWrittenDiskMatchesTheRate) {
  const RotRun run = run_bit_rot(20, kRotSectors, hours(1000));
  // Poisson with mean 1000: standard deviation 31.6; allow five of them.
  EXPECT_GT(run.flips, 842u);
  EXPECT_LT(run.flips, 1158u);
  EXPECT_EQ(run.records.size(), run.flips);
  EXPECT_TRUE(run.image_matches_reports);
}

TEST(DiskTest, BitRotCountsOnlyStoredData) {
  const RotRun run = run_bit_rot(21, kRotSectors / 2, hours(1000));
  // Half the capacity holds data, so half the flips land: mean 500, deviation 22.4.
  EXPECT_GT(run.flips, 388u);
  EXPECT_LT(run.flips, 612u);
  for (const DiskFaultRecord& record : run.records) EXPECT_LT(record.sector, kRotSectors / 2);
  EXPECT_TRUE(run.image_matches_reports);
}

TEST(DiskTest, BitRotOnAnEmptyDiskReportsNothing) {
  const RotRun run = run_bit_rot(22, 0, hours(1000));
  EXPECT_GT(run.rot_events, 842u);  // the process ran
  EXPECT_EQ(run.flips, 0u);
  EXPECT_TRUE(run.records.empty());
}

TEST(DiskTest, BitRotContinuesWithoutPowerAndStopsAtRateZero) {
  Simulation simulation(23);
  DiskOptions options = quiet_options(kRotSectors);
  options.bit_rot_per_tb_hour = kOneFlipPerHourPerTb;
  Disk disk(simulation, DiskId(0), "rot", options);
  ASSERT_EQ(write_now(simulation, disk, 0, make_pages(kRotSectors, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  disk.power_off();
  simulation.run_until(SimTime::zero() + hours(100));
  const uint64_t flips_unpowered = disk.stats().bit_flips;
  EXPECT_GT(flips_unpowered, 50u);  // mean 100

  disk.set_bit_rot_per_tb_hour(0);
  EXPECT_EQ(simulation.pending_events(), 0u);
  simulation.run();  // returns: nothing is left to run
  EXPECT_EQ(disk.stats().bit_flips, flips_unpowered);

  disk.set_bit_rot_per_tb_hour(kOneFlipPerHourPerTb * 10);
  simulation.run_until(simulation.now() + hours(10));
  EXPECT_GT(disk.stats().bit_flips, flips_unpowered + 50);  // mean 100 more
}

TEST(DiskTest, InjectedBitFlipReachesTheCachedCopyAndSurvivesTheFlush) {
  Simulation simulation(24);
  FaultLog log;
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  disk.set_observer(&log);
  ASSERT_EQ(write_now(simulation, disk, 4, make_page(4, 1)), IoStatus::kOk);
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  ASSERT_EQ(write_now(simulation, disk, 4, make_page(4, 2)), IoStatus::kOk);  // cached too
  disk.inject_bit_flip(4, 100 * 8 + 3);

  std::vector<uint8_t> flipped = make_page(4, 2);
  flipped[100] ^= 1u << 3;
  EXPECT_EQ(read_now(simulation, disk, 4, 1).data, flipped);
  EXPECT_FALSE(page_checksum_ok(flipped.data()));
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  EXPECT_EQ(disk.durable_sector(4), flipped);

  const auto flips = log.of_kind(DiskFaultKind::kBitFlip);
  ASSERT_EQ(flips.size(), 1u);
  EXPECT_EQ(flips[0].sector, 4u);
  EXPECT_EQ(flips[0].bit, 100u * 8 + 3);

  // A never-written sector becomes zeros with one bit set.
  disk.inject_bit_flip(9, 0);
  std::vector<uint8_t> one_bit = filled(0);
  one_bit[0] = 1;
  EXPECT_EQ(read_now(simulation, disk, 9, 1).data, one_bit);
}

// ---------------------------------------------------------------------------------------------
// Determinism and the trace fingerprint.

struct WorkloadOutcome {
  uint64_t trace_hash = 0;
  std::vector<std::vector<uint8_t>> durable;
  uint64_t faults = 0;
  uint64_t writes = 0;
};

// Every fault on, default (random) latencies, writes chained from callbacks, periodic fsyncs and
// two power cycles.
WorkloadOutcome run_workload(uint64_t seed) {
  Simulation simulation(seed);
  FaultLog log;
  DiskOptions options;
  options.capacity_bytes = 512 * kSectorBytes;
  options.torn_write_probability = 0.5;
  options.bit_rot_per_tb_hour = 1e12 / (512.0 * kSectorBytes) * 3600.0;  // one flip a second
  options.latent_error_probability_per_read = 0.01;
  options.misdirected_write_probability = 0.05;
  Disk disk(simulation, DiskId(1), "determinism", options);
  disk.set_observer(&log);
  Random workload = simulation.random_stream("test/workload");

  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 200; ++i) {
      const uint64_t sector = workload.uniform_u64(500);
      const uint64_t count = 1 + workload.uniform_u64(4);
      std::vector<uint8_t> bytes(count * kSectorBytes);
      for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(workload.next_u64());
      disk.write(sector * kSectorBytes, std::move(bytes), [](IoStatus) {});
      disk.read(workload.uniform_u64(500) * kSectorBytes, kSectorBytes, [](ReadResult) {});
      if (i % 16 == 15) disk.fsync([](IoStatus) {});
      simulation.run_until(simulation.now() + microseconds(50));
    }
    simulation.run_until(simulation.now() + seconds(5));
    disk.power_off();
    simulation.run_until(simulation.now() + seconds(5));
    disk.power_on();
  }

  WorkloadOutcome outcome;
  outcome.trace_hash = simulation.trace_hash();
  for (uint64_t sector = 0; sector < 512; ++sector) {
    outcome.durable.push_back(disk.durable_sector(sector));
  }
  outcome.faults = log.records.size();
  outcome.writes = disk.stats().writes;
  return outcome;
}

TEST(DiskTest, SameSeedGivesTheSameTraceAndTheSameBytes) {
  const WorkloadOutcome first = run_workload(42);
  const WorkloadOutcome second = run_workload(42);
  const WorkloadOutcome other = run_workload(43);
  EXPECT_GT(first.faults, 10u);
  EXPECT_GT(first.writes, 400u);
  EXPECT_EQ(first.trace_hash, second.trace_hash);
  EXPECT_TRUE(first.durable == second.durable);
  EXPECT_EQ(first.faults, second.faults);
  EXPECT_NE(first.trace_hash, other.trace_hash);
  EXPECT_FALSE(first.durable == other.durable);
}

TEST(DiskTest, TraceHashReflectsTheBytesWritten) {
  auto trace_of = [](uint8_t value) {
    Simulation simulation(7);
    Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
    EXPECT_EQ(write_now(simulation, disk, 0, filled(value)), IoStatus::kOk);
    return simulation.trace_hash();
  };
  EXPECT_EQ(trace_of(1), trace_of(1));
  EXPECT_NE(trace_of(1), trace_of(2));
}

TEST(DiskTest, DisksWithDifferentNamesDrawDifferentStreams) {
  auto latency_of = [](const char* name) {
    Simulation simulation(7);
    DiskOptions options = quiet_options(64);
    options.write_latency_ns = DistributionSpec::uniform(0, 1e9);
    Disk disk(simulation, DiskId(0), name, options);
    EXPECT_EQ(write_now(simulation, disk, 0, filled(1)), IoStatus::kOk);
    return simulation.now();
  };
  EXPECT_EQ(latency_of("a"), latency_of("a"));
  EXPECT_NE(latency_of("a"), latency_of("b"));
}

// ---------------------------------------------------------------------------------------------
// Sector images: the compact representation.

// A sector's bytes in one of the shapes writers produce: zeros, a few bytes at either edge, a
// window of records, a dense random sector, one value throughout.
std::vector<uint8_t> random_sector_bytes(Random& random, size_t sector_size) {
  std::vector<uint8_t> bytes(sector_size, 0);
  switch (random.uniform_u64(6)) {
    case 0:
      break;  // zeros
    case 1:
      bytes.front() = static_cast<uint8_t>(1 + random.uniform_u64(255));
      break;
    case 2:
      bytes.back() = static_cast<uint8_t>(1 + random.uniform_u64(255));
      break;
    case 3: {  // a window of records, itself holding zeros
      const uint64_t begin = random.uniform_u64(sector_size);
      const uint64_t end = begin + 1 + random.uniform_u64(sector_size - begin);
      for (uint64_t i = begin; i < end; ++i) {
        bytes[i] = random.bernoulli(0.3) ? 0 : static_cast<uint8_t>(random.next_u64());
      }
      break;
    }
    case 4:
      for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(random.next_u64());
      break;
    default:
      std::fill(bytes.begin(), bytes.end(), static_cast<uint8_t>(1 + random.uniform_u64(255)));
      break;
  }
  return bytes;
}

// A head followed by the stream's words, written out the way the world probe encodes a record.
std::vector<uint8_t> expand_pattern(const std::vector<uint8_t>& head, Random fill,
                                    size_t sector_size) {
  std::vector<uint8_t> bytes(sector_size, 0);
  std::copy(head.begin(), head.end(), bytes.begin());
  for (size_t at = head.size(); at + 8 <= sector_size; at += 8) {
    const uint64_t word = fill.next_u64();
    std::memcpy(&bytes[at], &word, sizeof word);
  }
  return bytes;
}

TEST(SectorImageTest, AnyBytesComeBackExactlyFromTheirNonZeroWindow) {
  Random random(101);
  for (int round = 0; round < 2000; ++round) {
    SCOPED_TRACE(round);
    const size_t sector_size = random.bernoulli(0.5) ? 4096 : 512;
    const std::vector<uint8_t> bytes = random_sector_bytes(random, sector_size);
    const SectorImage image = SectorImage::of_bytes(bytes);
    ASSERT_EQ(image.bytes(sector_size), bytes);
    ASSERT_EQ(image.hash(77, sector_size), hash_bytes(77, bytes.data(), bytes.size()));
    const auto first = std::find_if(bytes.begin(), bytes.end(), [](uint8_t b) { return b != 0; });
    const auto last = std::find_if(bytes.rbegin(), bytes.rend(), [](uint8_t b) { return b != 0; });
    const size_t window =
        first == bytes.end() ? 0
                             : static_cast<size_t>((bytes.rend() - last) - (first - bytes.begin()));
    ASSERT_EQ(image.zero(), window == 0);
    ASSERT_EQ(image.stored_bytes(), window);  // exactly the window: no zeros stored around it
    ASSERT_FALSE(image.pattern());
  }
}

TEST(SectorImageTest, APatternIsItsHeadAndTheWordsTheStreamDraws) {
  Random random(102);
  for (int round = 0; round < 500; ++round) {
    SCOPED_TRACE(round);
    // Sector sizes that leave 0 to 7 bytes after the last whole word.
    const size_t sector_size = 512 + random.uniform_u64(16);
    std::vector<uint8_t> head(random.uniform_u64(65));
    for (uint8_t& byte : head) byte = static_cast<uint8_t>(random.next_u64());
    Random fill(random.next_u64());
    const Random fill_before = fill;
    const SectorImage image = SectorImage::of_pattern(head, fill);
    const std::vector<uint8_t> expected = expand_pattern(head, fill_before, sector_size);
    ASSERT_EQ(image.bytes(sector_size), expected);
    ASSERT_EQ(image.hash(5, sector_size), hash_bytes(5, expected.data(), expected.size()));
    ASSERT_TRUE(image.pattern());
    ASSERT_EQ(image.stored_bytes(), sizeof(Random) + head.size());
    // The caller's stream is untouched, and reading twice draws the same words.
    ASSERT_EQ(fill.next_u64(), Random(fill_before).next_u64());
    ASSERT_EQ(image.bytes(sector_size), expected);
  }
}

TEST(DiskTest, WriteImagesEqualsAWriteOfTheirBytes) {
  const std::vector<uint8_t> head = {1, 2, 3, 4, 5, 6, 7, 8};
  const Random fill(9);
  std::vector<uint8_t> joined = expand_pattern(head, fill, kSectorBytes);
  const std::vector<uint8_t> page = make_page(6, 3);
  joined.insert(joined.end(), page.begin(), page.end());

  Simulation by_bytes_simulation(8);
  Disk by_bytes(by_bytes_simulation, DiskId(0), "d0", quiet_options(64));
  ASSERT_EQ(write_now(by_bytes_simulation, by_bytes, 5, joined), IoStatus::kOk);

  Simulation by_images_simulation(8);
  Disk by_images(by_images_simulation, DiskId(0), "d0", quiet_options(64));
  std::vector<SectorImage> images;
  images.push_back(SectorImage::of_pattern(head, fill));
  images.push_back(SectorImage::of_bytes(page));
  std::optional<IoStatus> status;
  by_images.write_images(5 * kSectorBytes, std::move(images),
                         [&status](IoStatus s) { status = s; });
  step_until(by_images_simulation, [&] { return status.has_value(); });
  ASSERT_EQ(status, std::optional<IoStatus>(IoStatus::kOk));

  EXPECT_EQ(by_bytes_simulation.trace_hash(), by_images_simulation.trace_hash());
  EXPECT_EQ(read_now(by_images_simulation, by_images, 5, 2).data, joined);
  EXPECT_EQ(read_now(by_bytes_simulation, by_bytes, 5, 2).data, joined);
  EXPECT_EQ(by_bytes_simulation.trace_hash(), by_images_simulation.trace_hash());
  ASSERT_EQ(fsync_now(by_images_simulation, by_images), IoStatus::kOk);
  EXPECT_EQ(by_images.durable_sector(5), slice(joined, 0));
  // The random sector is kept as its head and the stream's state, not as 4 KB.
  EXPECT_EQ(by_images.stored_image_bytes(), sizeof(Random) + head.size() + (kTrailerOffset + 1));
}

TEST(DiskTest, TornAndFlippedPatternSectorsHoldTheExactBytes) {
  const std::vector<uint8_t> head(32, 0x5a);
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    Simulation simulation(seed);
    FaultLog log;
    DiskOptions options = quiet_options(64);
    options.torn_write_probability = 1.0;
    Disk disk(simulation, DiskId(0), "d0", options);
    disk.set_observer(&log);
    const Random old_fill(seed * 2);
    const Random new_fill(seed * 2 + 1);
    const auto write_pattern = [&](const Random& fill) {
      std::vector<SectorImage> images;
      images.push_back(SectorImage::of_pattern(head, fill));
      std::optional<IoStatus> status;
      disk.write_images(3 * kSectorBytes, std::move(images), [&status](IoStatus s) { status = s; });
      step_until(simulation, [&] { return status.has_value(); });
      EXPECT_EQ(status, std::optional<IoStatus>(IoStatus::kOk));
    };
    write_pattern(old_fill);
    ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
    write_pattern(new_fill);
    disk.power_off();
    disk.power_on();
    const auto torn = log.of_kind(DiskFaultKind::kTornWrite);
    ASSERT_EQ(torn.size(), 1u);
    const std::vector<uint8_t> old_bytes = expand_pattern(head, old_fill, kSectorBytes);
    const std::vector<uint8_t> new_bytes = expand_pattern(head, new_fill, kSectorBytes);
    std::vector<uint8_t> expected = old_bytes;
    std::copy(new_bytes.begin(), new_bytes.begin() + static_cast<std::ptrdiff_t>(torn[0].count),
              expected.begin());
    ASSERT_EQ(read_now(simulation, disk, 3, 1).data, expected);

    const uint32_t bit = static_cast<uint32_t>(Random(seed).uniform_u64(kSectorBytes * 8));
    disk.inject_bit_flip(3, bit);
    expected[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    ASSERT_EQ(read_now(simulation, disk, 3, 1).data, expected);
    ASSERT_EQ(disk.durable_sector(3), expected);
  }
}

TEST(DiskTest, StoredBytesFollowTheDataNotTheSectorsTouched) {
  Simulation simulation(9);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(1024));
  // 512 sectors, each with 100 bytes of records at its start and zeros after them.
  for (uint64_t sector = 0; sector < 512; ++sector) {
    std::vector<uint8_t> bytes(kSectorBytes, 0);
    for (size_t i = 0; i < 100; ++i) bytes[i] = static_cast<uint8_t>(sector + i + 1) | 1;
    ASSERT_EQ(write_now(simulation, disk, sector, bytes), IoStatus::kOk);
  }
  ASSERT_EQ(fsync_now(simulation, disk), IoStatus::kOk);
  EXPECT_EQ(disk.used_bytes(), 512u * kSectorBytes);
  EXPECT_EQ(disk.stored_image_bytes(), 512u * 100);
  disk.discard(0, 512 * kSectorBytes);
  EXPECT_EQ(disk.stored_image_bytes(), 0u);
  EXPECT_EQ(disk.used_bytes(), 0u);
}

// A reference disk for the property test below: a plain byte copy of every sector's cached and
// durable content, driven by the same operations and by the faults the disk reports (flips, tears,
// misdirection, lost caches). Whatever the disk stores internally, its reads must match it.
class ReferenceDisk final : public DiskObserver {
 public:
  void on_disk_fault(DiskId, const DiskFaultRecord& record) override {
    switch (record.kind) {
      case DiskFaultKind::kBitFlip: {
        auto durable = durable_.find(record.sector);
        auto cached = cached_.find(record.sector);
        if (durable == durable_.end() && cached == cached_.end()) {
          durable = durable_.emplace(record.sector, std::vector<uint8_t>(kSectorBytes, 0)).first;
        }
        const auto mask = static_cast<uint8_t>(1u << (record.bit % 8));
        if (durable != durable_.end()) durable->second[record.bit / 8] ^= mask;
        if (cached != cached_.end()) cached->second[record.bit / 8] ^= mask;
        break;
      }
      case DiskFaultKind::kTornWrite: {
        std::vector<uint8_t> torn = durable_bytes(record.sector);
        const std::vector<uint8_t>& fresh = cached_.at(record.sector);
        std::copy(fresh.begin(), fresh.begin() + static_cast<std::ptrdiff_t>(record.count),
                  torn.begin());
        durable_[record.sector] = std::move(torn);
        break;
      }
      case DiskFaultKind::kMisdirectedWrite:
        landed_sector_ = record.landed_sector;
        break;
      case DiskFaultKind::kLostUnsyncedWrites:
        cached_.clear();
        break;
      case DiskFaultKind::kLatentSectorError:
        break;
    }
  }

  // A write of `bytes` meant for `first_sector` completed with kOk.
  void written(uint64_t first_sector, const std::vector<uint8_t>& bytes) {
    const uint64_t landed = landed_sector_.value_or(first_sector);
    landed_sector_.reset();
    for (uint64_t i = 0; i * kSectorBytes < bytes.size(); ++i)
      cached_[landed + i] = slice(bytes, i);
  }
  void synced() {
    for (auto& [sector, bytes] : cached_) durable_[sector] = std::move(bytes);
    cached_.clear();
  }
  void discarded(uint64_t first_sector, uint64_t sector_count) {
    for (uint64_t sector = first_sector; sector < first_sector + sector_count; ++sector) {
      cached_.erase(sector);
      durable_.erase(sector);
    }
  }
  std::vector<uint8_t> visible_bytes(uint64_t sector) const {
    if (const auto cached = cached_.find(sector); cached != cached_.end()) return cached->second;
    return durable_bytes(sector);
  }
  std::vector<uint8_t> durable_bytes(uint64_t sector) const {
    const auto durable = durable_.find(sector);
    return durable == durable_.end() ? std::vector<uint8_t>(kSectorBytes, 0) : durable->second;
  }

 private:
  std::map<uint64_t, std::vector<uint8_t>> durable_;
  std::map<uint64_t, std::vector<uint8_t>> cached_;
  std::optional<uint64_t> landed_sector_;
};

struct ReferenceOutcome {
  uint64_t reads_compared = 0;
  uint64_t mismatches = 0;  // sectors whose bytes differ from the reference's
  uint64_t bit_flips = 0;
  uint64_t torn_writes = 0;
  uint64_t misdirected_writes = 0;
  uint64_t pattern_writes = 0;
};

// Random writes of every shape (bytes, one buffer per sector, patterns), reads, fsyncs, discards,
// injected flips, power cycles and crashes, with bit rot, tearing and misdirection on; every read
// and, at the end, every durable sector is compared with the reference disk.
ReferenceOutcome run_against_reference(uint64_t seed, bool plant_window_drops_last_byte) {
  constexpr uint64_t kSectors = 96;
  Simulation simulation(seed);
  ReferenceDisk reference;
  DiskOptions options = quiet_options(kSectors);
  options.write_latency_ns = DistributionSpec::uniform(1'000, 50'000);
  options.torn_write_probability = 0.7;
  options.misdirected_write_probability = 0.05;
  options.latent_error_probability_per_read = 0.005;
  options.bit_rot_per_tb_hour = 1e12 / (kSectors * 4096.0) * 3600.0 * 1000;  // 1000 flips a second
  options.plant_window_drops_last_byte = plant_window_drops_last_byte;
  Disk disk(simulation, DiskId(0), "reference", options);
  disk.set_observer(&reference);
  Random random = simulation.random_stream("test/reference");
  ReferenceOutcome outcome;

  const auto compare = [&](uint64_t first_sector, const ReadResult& result) {
    if (result.status != IoStatus::kOk) return;
    for (uint64_t i = 0; i * kSectorBytes < result.data.size(); ++i) {
      ++outcome.reads_compared;
      if (slice(result.data, i) != reference.visible_bytes(first_sector + i)) ++outcome.mismatches;
    }
  };
  for (int step = 0; step < 3000; ++step) {
    const uint64_t action = random.uniform_u64(100);
    const uint64_t count = 1 + random.uniform_u64(3);
    const uint64_t sector = random.uniform_u64(kSectors - count + 1);
    if (action < 45) {
      std::vector<uint8_t> bytes;
      std::vector<SectorImage> images;
      std::vector<std::vector<uint8_t>> buffers;
      const uint64_t shape = random.uniform_u64(3);
      for (uint64_t i = 0; i < count; ++i) {
        std::vector<uint8_t> one;
        if (shape == 2) {
          std::vector<uint8_t> head(random.uniform_u64(40));
          for (uint8_t& byte : head) byte = static_cast<uint8_t>(random.next_u64());
          const Random fill(random.next_u64());
          one = expand_pattern(head, fill, kSectorBytes);
          images.push_back(SectorImage::of_pattern(head, fill));
        } else {
          one = random_sector_bytes(random, kSectorBytes);
          buffers.push_back(one);
        }
        bytes.insert(bytes.end(), one.begin(), one.end());
      }
      const auto done = [&reference, sector, bytes](IoStatus status) {
        if (status == IoStatus::kOk) reference.written(sector, bytes);
      };
      if (shape == 0) {
        disk.write(sector * kSectorBytes, bytes, done);
      } else if (shape == 1) {
        disk.write_sectors(sector * kSectorBytes, std::move(buffers), done);
      } else {
        ++outcome.pattern_writes;
        disk.write_images(sector * kSectorBytes, std::move(images), done);
      }
    } else if (action < 75) {
      disk.read(sector * kSectorBytes, count * kSectorBytes,
                [&compare, sector](ReadResult result) { compare(sector, result); });
    } else if (action < 88) {
      disk.fsync([&reference](IoStatus status) {
        if (status == IoStatus::kOk) reference.synced();
      });
    } else if (action < 91) {
      disk.discard(sector * kSectorBytes, count * kSectorBytes);
      if (disk.powered()) reference.discarded(sector, count);
    } else if (action < 94) {
      disk.inject_bit_flip(sector, static_cast<uint32_t>(random.uniform_u64(kSectorBytes * 8)));
    } else if (action < 97) {
      disk.power_off();
      simulation.run_until(simulation.now() + microseconds(random.uniform_u64(200)));
      disk.power_on();
    } else {
      disk.abort_pending_io();
    }
    simulation.run_until(simulation.now() + microseconds(random.uniform_u64(30)));
  }
  simulation.run_until(simulation.now() + seconds(1));
  for (uint64_t sector = 0; sector < kSectors; ++sector) {
    ++outcome.reads_compared;
    if (disk.durable_sector(sector) != reference.durable_bytes(sector)) ++outcome.mismatches;
  }
  outcome.bit_flips = disk.stats().bit_flips;
  outcome.torn_writes = disk.stats().torn_writes;
  outcome.misdirected_writes = disk.stats().misdirected_writes;
  return outcome;
}

TEST(DiskTest, CompactImagesReadBackAsAReferenceDiskOfPlainBytes) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(seed);
    const ReferenceOutcome outcome = run_against_reference(seed, false);
    EXPECT_EQ(outcome.mismatches, 0u);
    // The run exercised what it claims to.
    EXPECT_GT(outcome.reads_compared, 1000u);
    EXPECT_GT(outcome.bit_flips, 20u);
    EXPECT_GT(outcome.torn_writes, 5u);
    EXPECT_GT(outcome.misdirected_writes, 5u);
    EXPECT_GT(outcome.pattern_writes, 100u);
  }
}

TEST(DiskTest, PlantedShortWindowIsCaughtByTheReferenceDisk) {
  const ReferenceOutcome outcome = run_against_reference(1, true);
  EXPECT_GT(outcome.mismatches, 10u);
}

// ---------------------------------------------------------------------------------------------
// Preconditions.

TEST(DiskDeathTest, UnalignedOffsetIsAnAssertion) {
  Simulation simulation(30);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  EXPECT_DEATH(disk.write(100, filled(1), [](IoStatus) {}), "not sector aligned");
  EXPECT_DEATH(disk.read(0, 100, [](ReadResult) {}), "whole number of sectors");
}

TEST(DiskDeathTest, RangePastTheCapacityIsAnAssertion) {
  Simulation simulation(31);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  EXPECT_DEATH(disk.read(63 * kSectorBytes, 2 * kSectorBytes, [](ReadResult) {}),
               "past the capacity");
}

}  // namespace
}  // namespace dynasim::sim
