// Tests for the disk's corruption ledger: each fate a bit flip can meet (overwritten by a write, a
// flush, a torn write or a power-off; discarded; absorbed; detected by a report, first report
// wins), reports without a flip, reads that return a pending flip, and a random workload with every
// fault on whose final image differs from a shadow model exactly by the flips the ledger holds.
#include "sim/corruption_ledger.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "sim/disk.h"
#include "sim/simulation.h"

namespace dynasim::sim {
namespace {

constexpr uint32_t kSectorBytes = 4096;

DiskOptions quiet_options(uint64_t capacity_sectors) {
  DiskOptions options;
  options.capacity_bytes = capacity_sectors * kSectorBytes;
  options.read_latency_ns = DistributionSpec::constant(10'000);
  options.write_latency_ns = DistributionSpec::constant(20'000);
  options.fsync_latency_ns = DistributionSpec::constant(100'000);
  options.iops_limit = 1e12;
  options.bandwidth_bytes_per_second = 1e15;
  return options;
}

template <typename Predicate>
void step_until(Simulation& simulation, Predicate done) {
  while (!done() && simulation.step()) {
  }
}

void write_now(Simulation& simulation, Disk& disk, uint64_t sector, uint8_t fill) {
  std::optional<IoStatus> status;
  disk.write(sector * kSectorBytes, std::vector<uint8_t>(kSectorBytes, fill),
             [&status](IoStatus s) { status = s; });
  step_until(simulation, [&] { return status.has_value(); });
  ASSERT_EQ(status, std::optional<IoStatus>(IoStatus::kOk));
}

void fsync_now(Simulation& simulation, Disk& disk) {
  std::optional<IoStatus> status;
  disk.fsync([&status](IoStatus s) { status = s; });
  step_until(simulation, [&] { return status.has_value(); });
  ASSERT_EQ(status, std::optional<IoStatus>(IoStatus::kOk));
}

std::vector<uint8_t> read_now(Simulation& simulation, Disk& disk, uint64_t sector) {
  std::optional<ReadResult> result;
  disk.read(sector * kSectorBytes, kSectorBytes,
            [&result](ReadResult r) { result = std::move(r); });
  step_until(simulation, [&] { return result.has_value(); });
  EXPECT_TRUE(result.has_value() && result->status == IoStatus::kOk);
  return result.has_value() ? result->data : std::vector<uint8_t>();
}

// Lets simulated time pass with nothing to do.
void advance(Simulation& simulation, Duration span) {
  simulation.run_until(simulation.now() + span);
}

const BitFlipRecord& only_record(const Disk& disk) {
  const std::vector<BitFlipRecord>& records = disk.corruption_ledger().records();
  EXPECT_EQ(records.size(), 1u);
  return records.front();
}

TEST(DiskLedgerTest, AFlushOfANewerWriteOverwritesAFlipOnTheMedia) {
  Simulation simulation(1);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  write_now(simulation, disk, 5, 0x11);
  fsync_now(simulation, disk);
  disk.inject_bit_flip(5, 77);
  {
    const BitFlipRecord& record = only_record(disk);
    EXPECT_EQ(record.fate, FlipFate::kPending);
    EXPECT_EQ(record.source, FlipSource::kInjected);
    EXPECT_EQ(record.sector, 5u);
    EXPECT_EQ(record.bit, 77u);
    EXPECT_TRUE(record.on_media);
    EXPECT_FALSE(record.in_cache);
  }
  // The newer write sits in the cache: the media copy still holds the flip, reads do not.
  write_now(simulation, disk, 5, 0x22);
  EXPECT_EQ(only_record(disk).fate, FlipFate::kPending);
  EXPECT_TRUE(only_record(disk).on_media);
  EXPECT_EQ(read_now(simulation, disk, 5), std::vector<uint8_t>(kSectorBytes, 0x22));
  EXPECT_EQ(disk.stats().pending_flip_reads, 0u);

  advance(simulation, milliseconds(3));
  fsync_now(simulation, disk);
  const BitFlipRecord& record = only_record(disk);
  EXPECT_EQ(record.fate, FlipFate::kOverwritten);
  EXPECT_EQ(record.by, "write");
  EXPECT_EQ(record.fate_at, simulation.now());
  EXPECT_FALSE(record.on_media || record.in_cache);
  EXPECT_EQ(disk.corruption_ledger().count(FlipFate::kOverwritten), 1u);
  EXPECT_EQ(disk.corruption_ledger().count(FlipFate::kPending), 0u);
  EXPECT_EQ(disk.corruption_ledger().stored_flips(), 0u);
}

TEST(DiskLedgerTest, AWriteOverACacheOnlyFlipOverwritesItAtOnce) {
  Simulation simulation(2);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  write_now(simulation, disk, 3, 0x11);  // never flushed: the flip lives in the cache only
  disk.inject_bit_flip(3, 9);
  EXPECT_TRUE(only_record(disk).in_cache);
  EXPECT_FALSE(only_record(disk).on_media);
  write_now(simulation, disk, 3, 0x33);
  EXPECT_EQ(only_record(disk).fate, FlipFate::kOverwritten);
  EXPECT_EQ(only_record(disk).by, "write");
}

TEST(DiskLedgerTest, PowerLossBringsBackTheMediaFlipAndLosesTheCachedOne) {
  Simulation simulation(3);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  write_now(simulation, disk, 1, 0x11);
  fsync_now(simulation, disk);
  disk.inject_bit_flip(1, 100);          // on the media
  write_now(simulation, disk, 1, 0x22);  // hidden behind a newer cached copy
  write_now(simulation, disk, 2, 0x44);
  disk.inject_bit_flip(2, 200);  // in the cache only
  disk.power_off();
  disk.power_on();
  const std::vector<BitFlipRecord>& records = disk.corruption_ledger().records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].fate, FlipFate::kPending) << "the write never reached the media";
  EXPECT_TRUE(records[0].on_media);
  EXPECT_EQ(records[1].fate, FlipFate::kOverwritten);
  EXPECT_EQ(records[1].by, "power_loss");
  // The old, rotten media copy is what a read returns now.
  std::vector<uint8_t> expected(kSectorBytes, 0x11);
  expected[100 / 8] ^= 1u << (100 % 8);
  EXPECT_EQ(read_now(simulation, disk, 1), expected);
  EXPECT_EQ(disk.stats().pending_flip_reads, 1u);
}

TEST(DiskLedgerTest, ATornWriteOverwritesTheFlipOnlyWhereItsNewBytesLanded) {
  int replaced = 0;
  int kept = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    Simulation simulation(seed);
    DiskOptions options = quiet_options(64);
    options.torn_write_probability = 1.0;
    Disk disk(simulation, DiskId(0), "d0", options);
    write_now(simulation, disk, 7, 0x11);
    fsync_now(simulation, disk);
    const uint32_t bit = 8 * 2048;  // the middle of the sector: splits fall on both sides
    disk.inject_bit_flip(7, bit);
    write_now(simulation, disk, 7, 0x22);
    disk.power_off();
    ASSERT_EQ(disk.stats().torn_writes, 1u);
    const std::vector<uint8_t> media = disk.durable_sector(7);
    const BitFlipRecord& record = only_record(disk);
    if (media[bit / 8] == 0x22) {  // the split fell after the flipped byte
      EXPECT_EQ(record.fate, FlipFate::kOverwritten);
      EXPECT_EQ(record.by, "torn_write");
      ++replaced;
    } else {
      EXPECT_EQ(media[bit / 8], 0x11 ^ 1);
      EXPECT_EQ(record.fate, FlipFate::kPending);
      EXPECT_TRUE(record.on_media);
      ++kept;
    }
  }
  EXPECT_GT(replaced, 0);
  EXPECT_GT(kept, 0);
}

TEST(DiskLedgerTest, DiscardDropsAPendingFlip) {
  Simulation simulation(4);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  write_now(simulation, disk, 10, 0x11);
  fsync_now(simulation, disk);
  disk.inject_bit_flip(10, 5);
  advance(simulation, seconds(2));
  disk.discard(8 * kSectorBytes, 4 * kSectorBytes);
  EXPECT_EQ(only_record(disk).fate, FlipFate::kDiscarded);
  EXPECT_EQ(only_record(disk).fate_at, simulation.now());
  EXPECT_EQ(disk.corruption_ledger().count(FlipFate::kDiscarded), 1u);
  EXPECT_EQ(disk.corruption_ledger().stored_flips(), 0u);
}

TEST(DiskLedgerTest, AReportDetectsWithItsTimeAndTheFirstReportWins) {
  Simulation simulation(5);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  write_now(simulation, disk, 20, 0x11);
  fsync_now(simulation, disk);
  const SimTime injected = simulation.now();
  disk.inject_bit_flip(20, 31);
  advance(simulation, seconds(90));
  const SimTime reported = simulation.now();
  disk.report_verification_failure(19, 3, "scrub");  // a range that holds the sector
  advance(simulation, seconds(1));
  disk.report_verification_failure(20, 1, "read");
  const BitFlipRecord& record = only_record(disk);
  EXPECT_EQ(record.fate, FlipFate::kDetected);
  EXPECT_EQ(record.by, "scrub");
  EXPECT_EQ(record.fate_at, reported);
  EXPECT_EQ(record.injected_at, injected);
  const CorruptionLedger& ledger = disk.corruption_ledger();
  EXPECT_EQ(ledger.detection_delays(), std::vector<Duration>{seconds(90)});
  EXPECT_EQ(ledger.reported_sectors(), 4u);
  EXPECT_EQ(ledger.reports_detecting(), 1u);
  EXPECT_EQ(ledger.reports_without_flip(), 2u);  // sectors 19 and 21
  EXPECT_EQ(ledger.reports_of_known_flips(), 1u);
  // Still stored: a later rewrite leaves the detection as it was.
  EXPECT_TRUE(record.on_media);
  write_now(simulation, disk, 20, 0x22);
  fsync_now(simulation, disk);
  EXPECT_EQ(only_record(disk).fate, FlipFate::kDetected);
  EXPECT_EQ(ledger.stored_flips(), 0u);
}

TEST(DiskLedgerTest, AReportOnACleanSectorIsCountedAndDetectsNothing) {
  Simulation simulation(6);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  write_now(simulation, disk, 2, 0x11);
  fsync_now(simulation, disk);
  disk.inject_bit_flip(2, 1);
  disk.report_verification_failure(3, 1, "read");
  EXPECT_EQ(disk.corruption_ledger().reports_without_flip(), 1u);
  EXPECT_EQ(disk.corruption_ledger().reports_detecting(), 0u);
  EXPECT_EQ(only_record(disk).fate, FlipFate::kPending);
  // A flip hidden behind a newer cached copy is not what a read returns: no match either.
  write_now(simulation, disk, 2, 0x22);
  disk.report_verification_failure(2, 1, "read");
  EXPECT_EQ(disk.corruption_ledger().reports_without_flip(), 2u);
  EXPECT_EQ(only_record(disk).fate, FlipFate::kPending);
}

TEST(DiskLedgerTest, AReadOfAFlippedSectorCountsUntilTheFlipIsReported) {
  Simulation simulation(7);
  Disk disk(simulation, DiskId(0), "d0", quiet_options(64));
  write_now(simulation, disk, 4, 0x11);
  fsync_now(simulation, disk);
  write_now(simulation, disk, 5, 0x55);
  fsync_now(simulation, disk);
  disk.inject_bit_flip(4, 3);
  EXPECT_EQ(disk.stats().pending_flip_reads, 0u);
  read_now(simulation, disk, 5);  // a clean neighbour
  EXPECT_EQ(disk.stats().pending_flip_reads, 0u);
  const SimTime first_read = simulation.now();
  std::vector<uint8_t> bytes = read_now(simulation, disk, 4);
  EXPECT_EQ(bytes[0], 0x11 ^ (1u << 3));
  read_now(simulation, disk, 4);
  EXPECT_EQ(disk.stats().pending_flip_reads, 2u);
  EXPECT_EQ(disk.corruption_ledger().pending_flip_sector_reads(), 2u);
  EXPECT_EQ(only_record(disk).reads_while_pending, 2u);
  EXPECT_GT(only_record(disk).first_read_at.value_or(SimTime::zero()), first_read);
  disk.report_verification_failure(4, 1, "read");
  read_now(simulation, disk, 4);
  EXPECT_EQ(disk.stats().pending_flip_reads, 2u) << "a detected flip is not pending any more";
}

TEST(DiskLedgerTest, RotOnAnEmptySectorIsAbsorbedAndASecondFlipOfTheBitUndoesTheFirst) {
  Simulation simulation(8);
  DiskOptions options = quiet_options(256);
  options.bit_rot_per_tb_hour = 1e12 / (256.0 * kSectorBytes);  // one flip an hour
  Disk disk(simulation, DiskId(0), "rot", options);
  advance(simulation, hours(50));
  const CorruptionLedger& ledger = disk.corruption_ledger();
  EXPECT_GT(ledger.records().size(), 20u);
  EXPECT_EQ(ledger.count(FlipFate::kAbsorbed), ledger.records().size());
  EXPECT_EQ(disk.stats().bit_flips, 0u);
  for (const BitFlipRecord& record : ledger.records()) {
    EXPECT_EQ(record.source, FlipSource::kBitRot);
    EXPECT_EQ(record.fate_at, record.injected_at);
  }
  disk.set_bit_rot_per_tb_hour(0);

  const size_t before = ledger.records().size();
  disk.inject_bit_flip(9, 44);
  disk.inject_bit_flip(9, 44);
  ASSERT_EQ(ledger.records().size(), before + 2);
  EXPECT_EQ(ledger.records()[before].fate, FlipFate::kOverwritten);
  EXPECT_EQ(ledger.records()[before].by, "bit_flip");
  EXPECT_EQ(ledger.records()[before + 1].fate, FlipFate::kOverwritten);
  EXPECT_EQ(read_now(simulation, disk, 9), std::vector<uint8_t>(kSectorBytes, 0));
}

// --- The ledger against a shadow model ----------------------------------------------------------

// Follows what the disk's media and cache must hold, from the writes that completed, the flushes,
// the torn writes and misdirections the observer reports, and the discards. Bit flips are left
// out on purpose: the difference between the disk and this model is then exactly the flips.
class ShadowDisk final : public DiskObserver {
 public:
  void on_disk_fault(DiskId, const DiskFaultRecord& record) override {
    if (record.kind == DiskFaultKind::kMisdirectedWrite) landed = record.landed_sector;
    if (record.kind == DiskFaultKind::kTornWrite) {
      std::vector<uint8_t> torn = media_or_zeros(record.sector);
      const std::vector<uint8_t>& fresh = cache.at(record.sector);
      std::copy(fresh.begin(), fresh.begin() + static_cast<std::ptrdiff_t>(record.count),
                torn.begin());
      media[record.sector] = std::move(torn);
    }
  }
  std::vector<uint8_t> media_or_zeros(uint64_t sector) const {
    auto found = media.find(sector);
    return found == media.end() ? std::vector<uint8_t>(kSectorBytes, 0) : found->second;
  }

  std::map<uint64_t, std::vector<uint8_t>> media;
  std::map<uint64_t, std::vector<uint8_t>> cache;
  std::optional<uint64_t> landed;  // set by a misdirected write, consumed by its completion
};

// The (sector, bit) pairs where two images differ.
void collect_differences(uint64_t sector, const std::vector<uint8_t>& actual,
                         const std::vector<uint8_t>& expected,
                         std::set<std::pair<uint64_t, uint32_t>>& out) {
  for (uint32_t byte = 0; byte < kSectorBytes; ++byte) {
    const uint8_t diff = actual[byte] ^ expected[byte];
    for (uint32_t b = 0; b < 8; ++b) {
      if ((diff >> b) & 1) out.emplace(sector, byte * 8 + b);
    }
  }
}

TEST(DiskLedgerTest, UnderEveryFaultTheStoredFlipsAreExactlyWhereTheImageDiffers) {
  constexpr uint64_t kSectors = 64;
  Simulation simulation(11);
  DiskOptions options = quiet_options(kSectors);
  options.torn_write_probability = 0.5;
  options.misdirected_write_probability = 0.05;
  options.bit_rot_per_tb_hour = 1e12 / (kSectors * kSectorBytes) * 3600.0 * 50;  // 50 a second
  Disk disk(simulation, DiskId(0), "shadow", options);
  ShadowDisk shadow;
  disk.set_observer(&shadow);
  Random workload = simulation.random_stream("test/ledger-workload");

  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 300; ++i) {
      const uint64_t sector = workload.uniform_u64(kSectors - 2);
      const uint64_t count = 1 + workload.uniform_u64(2);
      std::vector<std::vector<uint8_t>> sectors(count, std::vector<uint8_t>(kSectorBytes));
      for (auto& bytes : sectors) {
        for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(workload.next_u64());
      }
      std::vector<uint8_t> joined;
      for (const auto& bytes : sectors) joined.insert(joined.end(), bytes.begin(), bytes.end());
      disk.write(sector * kSectorBytes, std::move(joined),
                 [&shadow, sector, sectors](IoStatus status) {
                   const uint64_t at = shadow.landed.value_or(sector);
                   shadow.landed.reset();
                   if (status != IoStatus::kOk) return;
                   for (size_t k = 0; k < sectors.size(); ++k) shadow.cache[at + k] = sectors[k];
                 });
      disk.read(workload.uniform_u64(kSectors) * kSectorBytes, kSectorBytes, [](ReadResult) {});
      if (i % 16 == 15) {
        disk.fsync([&shadow](IoStatus status) {
          if (status != IoStatus::kOk) return;
          for (auto& [s, bytes] : shadow.cache) shadow.media[s] = std::move(bytes);
          shadow.cache.clear();
        });
      }
      if (i % 97 == 96) {
        const uint64_t first = workload.uniform_u64(kSectors - 4);
        disk.discard(first * kSectorBytes, 4 * kSectorBytes);
        for (uint64_t s = first; s < first + 4; ++s) {
          shadow.media.erase(s);
          shadow.cache.erase(s);
        }
      }
      if (i % 41 == 40) {
        disk.report_verification_failure(workload.uniform_u64(kSectors), 1, "test");
      }
      simulation.run_until(simulation.now() + microseconds(200));
    }
    simulation.run_until(simulation.now() + seconds(1));
    if (round % 2 == 0) {
      disk.power_off();  // the observer applies the tear, if any, before the cache goes
      shadow.cache.clear();
      shadow.landed.reset();
      simulation.run_until(simulation.now() + seconds(1));
      disk.power_on();
    }
  }
  disk.set_bit_rot_per_tb_hour(0);
  simulation.run();  // let the last operations complete

  std::set<std::pair<uint64_t, uint32_t>> media_differences;
  std::set<std::pair<uint64_t, uint32_t>> cache_differences;
  for (uint64_t sector = 0; sector < kSectors; ++sector) {
    collect_differences(sector, disk.durable_sector(sector), shadow.media_or_zeros(sector),
                        media_differences);
    ASSERT_EQ(disk.sector_cached(sector), shadow.cache.contains(sector)) << sector;
    if (disk.sector_cached(sector)) {
      collect_differences(sector, read_now(simulation, disk, sector), shadow.cache.at(sector),
                          cache_differences);
    }
  }
  std::set<std::pair<uint64_t, uint32_t>> on_media;
  std::set<std::pair<uint64_t, uint32_t>> in_cache;
  const CorruptionLedger& ledger = disk.corruption_ledger();
  std::array<uint64_t, kFlipFateCount> fates{};
  for (const BitFlipRecord& record : ledger.records()) {
    ++fates[static_cast<size_t>(record.fate)];
    if (record.on_media) {
      EXPECT_TRUE(on_media.emplace(record.sector, record.bit).second);
    }
    if (record.in_cache) {
      EXPECT_TRUE(in_cache.emplace(record.sector, record.bit).second);
    }
    const bool stored = record.on_media || record.in_cache;
    if (record.fate != FlipFate::kPending && record.fate != FlipFate::kDetected) {
      EXPECT_FALSE(stored) << record.id;
    }
    if (record.fate == FlipFate::kPending) {
      EXPECT_TRUE(stored) << record.id;
    }
  }
  EXPECT_EQ(on_media, media_differences);
  EXPECT_EQ(in_cache, cache_differences);
  for (size_t f = 0; f < kFlipFateCount; ++f) {
    EXPECT_EQ(fates[f], ledger.count(static_cast<FlipFate>(f))) << to_string(FlipFate(f));
  }
  // The workload reached every fate but absorption (the disk is nearly full).
  EXPECT_GT(ledger.count(FlipFate::kPending), 0u);
  EXPECT_GT(ledger.count(FlipFate::kOverwritten), 0u);
  EXPECT_GT(ledger.count(FlipFate::kDiscarded), 0u);
  EXPECT_GT(ledger.count(FlipFate::kDetected), 0u);
  EXPECT_GT(disk.stats().torn_writes, 0u);
  EXPECT_GT(disk.stats().misdirected_writes, 0u);
  EXPECT_GT(disk.stats().pending_flip_reads, 0u);
}

}  // namespace
}  // namespace dynasim::sim
