// The write-ahead log on the simulated disk: durability only after fsync, recovery through torn
// writes, bit rot and stale laps, group commit, and a bounded circular region.
#include "model/wal.h"

#include <gtest/gtest.h>

#include "sim/simulation.h"

namespace dynasim::model {
namespace {

sim::DiskOptions small_disk() {
  sim::DiskOptions options;
  options.capacity_bytes = 64 << 20;
  return options;
}

std::vector<uint8_t> payload_for(LogSequence sequence, size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(sequence * 31 + i);
  return bytes;
}

WalOptions small_log() {
  WalOptions options;
  options.region_sectors = 4096;  // 16 MB of the 64 MB test disk
  return options;
}

struct Fixture {
  explicit Fixture(WalOptions options = small_log(), sim::DiskOptions disk_options = small_disk(),
                   uint64_t seed = 1)
      : simulation(seed),
        disk(simulation, sim::DiskId(0), "wal-test", disk_options),
        wal(disk, options),
        options_used(options) {
    wal.reset(0, 1);
  }
  LogSequence append(size_t size) {
    LogSequence sequence = 0;
    EXPECT_EQ(wal.append(payload_for(wal.next_sequence(), size), &sequence), WalStatus::kOk);
    return sequence;
  }
  WalRecovery recover(uint64_t start = 0) {
    Wal reader(disk, options_used);
    WalRecovery result;
    bool done = false;
    reader.recover(start, [&](WalRecovery recovery) {
      result = std::move(recovery);
      done = true;
    });
    simulation.run_until(simulation.now() + sim::seconds(10));
    EXPECT_TRUE(done);
    return result;
  }
  sim::Simulation simulation;
  sim::Disk disk;
  Wal wal;
  WalOptions options_used;
};

TEST(WalTest, FlushedRecordsAreRecoveredExactly) {
  Fixture f;
  std::vector<size_t> sizes = {0, 10, 5000, 4064, 100000, 3};
  for (size_t size : sizes) f.append(size);
  WalStatus status = WalStatus::kIoError;
  LogSequence durable = 0;
  f.wal.flush([&](WalStatus s, LogSequence through) {
    status = s;
    durable = through;
  });
  f.simulation.run_until(sim::SimTime(0) + sim::seconds(1));
  ASSERT_EQ(status, WalStatus::kOk);
  EXPECT_EQ(durable, sizes.size());
  const WalRecovery recovery = f.recover();
  EXPECT_TRUE(recovery.clean_end);
  ASSERT_EQ(recovery.records.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(recovery.records[i].sequence, i + 1);
    EXPECT_EQ(recovery.records[i].payload, payload_for(i + 1, sizes[i]));
  }
  EXPECT_EQ(recovery.next_position, f.wal.next_position());
}

TEST(WalTest, NothingIsAcknowledgedBeforeFsyncAndUnsyncedRecordsDieWithThePower) {
  Fixture f;
  f.append(100);
  bool first_done = false;
  f.wal.flush([&](WalStatus s, LogSequence) { first_done = s == WalStatus::kOk; });
  f.simulation.run_until(sim::SimTime(0) + sim::seconds(1));
  ASSERT_TRUE(first_done);
  f.append(100);
  bool second_done = false;
  f.wal.flush([&](WalStatus, LogSequence) { second_done = true; });
  // Run until the write has completed but not the fsync: step until the disk cache holds it.
  while (f.disk.cached_sector_count() == 0) ASSERT_TRUE(f.simulation.step());
  EXPECT_FALSE(second_done) << "acknowledged before fsync";
  f.disk.power_off();
  f.disk.power_on();
  f.simulation.run_until(f.simulation.now() + sim::seconds(1));
  EXPECT_FALSE(second_done);
  const WalRecovery recovery = f.recover();
  ASSERT_EQ(recovery.records.size(), 1u);
  EXPECT_EQ(recovery.records[0].sequence, 1u);
}

TEST(WalTest, ATornTailSectorLosesOnlyUnsyncedRecords) {
  sim::DiskOptions disk_options = small_disk();
  disk_options.torn_write_probability = 1.0;
  Fixture f(small_log(), disk_options);
  for (int i = 0; i < 3; ++i) f.append(1000);
  f.wal.flush([](WalStatus, LogSequence) {});
  f.simulation.run_until(sim::SimTime(0) + sim::seconds(1));
  for (int i = 0; i < 3; ++i) f.append(1000);
  f.wal.flush([](WalStatus, LogSequence) {});
  while (f.disk.cached_sector_count() == 0) ASSERT_TRUE(f.simulation.step());
  f.disk.power_off();  // tears the unsynced sector: part new, part zeros
  f.disk.power_on();
  const WalRecovery recovery = f.recover();
  ASSERT_EQ(recovery.records.size(), 3u);  // every synced record, nothing torn
  EXPECT_FALSE(recovery.clean_end);
  EXPECT_EQ(recovery.damaged_position, 1u);
}

TEST(WalTest, BitRotInTheMiddleStopsRecoveryThereAndIsReported) {
  Fixture f;
  for (int round = 0; round < 4; ++round) {
    f.append(3000);
    f.wal.flush([](WalStatus, LogSequence) {});
    f.simulation.run_until(f.simulation.now() + sim::seconds(1));
  }
  ASSERT_EQ(f.wal.next_position(), 4u);
  f.disk.inject_bit_flip(2, 12345);
  const WalRecovery recovery = f.recover();
  EXPECT_FALSE(recovery.clean_end);
  EXPECT_EQ(recovery.damaged_position, 2u);
  EXPECT_EQ(recovery.records.size(), 2u);  // never a record from the damaged sector
}

TEST(WalTest, CircularRegionWrapsRejectsStaleLapsAndRefusesToOverrunLiveRecords) {
  WalOptions options;
  options.region_sectors = 8;
  Fixture f(options);
  auto flush_one = [&f](size_t size) {
    LogSequence sequence = 0;
    EXPECT_EQ(f.wal.append(payload_for(f.wal.next_sequence(), size), &sequence), WalStatus::kOk);
    WalStatus status = WalStatus::kIoError;
    f.wal.flush([&](WalStatus s, LogSequence) { status = s; });
    f.simulation.run_until(f.simulation.now() + sim::seconds(1));
    return std::make_pair(status, sequence);
  };
  for (int i = 0; i < 8; ++i) EXPECT_EQ(flush_one(100).first, WalStatus::kOk);
  // The region is full of live records: the next flush is refused, nothing overwritten.
  EXPECT_EQ(flush_one(100).first, WalStatus::kFull);
  // A checkpoint releases the first five sectors; the buffered record and a new one now fit.
  f.wal.release_before(5);
  // The released sectors are trimmed on the disk: the simulator keeps only live log sectors.
  EXPECT_EQ(f.disk.stats().discarded_sectors, 5u);
  EXPECT_EQ(f.disk.used_bytes(), 3 * f.disk.options().sector_size_bytes);
  EXPECT_EQ(flush_one(100).first, WalStatus::kOk);
  // Records 9 (held back by the refused flush) and 10 share one sector at position 8, which
  // reuses physical sector 0.
  EXPECT_EQ(f.wal.next_position(), 9u);
  const WalRecovery recovery = f.recover(5);
  EXPECT_TRUE(recovery.clean_end);  // physical sector 1 was trimmed: zeros, a clean end
  ASSERT_EQ(recovery.records.size(), 5u);
  EXPECT_EQ(recovery.records.front().sequence, 6u);
  EXPECT_EQ(recovery.records.back().sequence, 10u);
  EXPECT_EQ(recovery.next_position, 9u);
}

TEST(WalTest, ASectorFromAnEarlierLapEndsRecoveryCleanly) {
  WalOptions options;
  options.region_sectors = 8;
  Fixture f(options);
  for (int i = 0; i < 3; ++i) {
    f.append(100);
    WalStatus status = WalStatus::kIoError;
    f.wal.flush([&](WalStatus s, LogSequence) { status = s; });
    f.simulation.run_until(f.simulation.now() + sim::seconds(1));
    ASSERT_EQ(status, WalStatus::kOk);
  }
  // Position 8 maps to physical sector 0, which holds position 0's valid sector: not ours.
  const WalRecovery from_next_lap = f.recover(8);
  EXPECT_TRUE(from_next_lap.clean_end);
  EXPECT_TRUE(from_next_lap.records.empty());
  EXPECT_EQ(f.recover(0).records.size(), 3u);
}

TEST(WalTest, GroupCommitAnswersEveryWaiterAfterOneFsync) {
  Fixture f;
  f.append(10);
  std::vector<LogSequence> answers;
  f.wal.flush([&](WalStatus, LogSequence through) { answers.push_back(through); });
  f.append(10);
  f.wal.flush([&](WalStatus, LogSequence through) { answers.push_back(through); });
  f.append(10);
  f.wal.flush([&](WalStatus, LogSequence through) { answers.push_back(through); });
  f.simulation.run_until(sim::SimTime(0) + sim::seconds(1));
  // The first flush covers record 1; the other two wait and are answered by one flush.
  EXPECT_EQ(answers, (std::vector<LogSequence>{1, 3, 3}));
  EXPECT_EQ(f.disk.stats().fsyncs, 2u);
}

TEST(WalTest, MisdirectedWritesNeverYieldAWrongRecord) {
  sim::DiskOptions disk_options = small_disk();
  disk_options.misdirected_write_probability = 0.3;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Fixture f(small_log(), disk_options, seed);
    for (int round = 0; round < 20; ++round) {
      f.append(2000 + round);
      f.wal.flush([](WalStatus, LogSequence) {});
      f.simulation.run_until(f.simulation.now() + sim::seconds(1));
    }
    const WalRecovery recovery = f.recover();
    for (size_t i = 0; i < recovery.records.size(); ++i) {
      ASSERT_EQ(recovery.records[i].sequence, i + 1) << "seed " << seed;
      ASSERT_EQ(recovery.records[i].payload, payload_for(i + 1, 2000 + i)) << "seed " << seed;
    }
    // A misdirected write leaves its intended sectors unwritten; recovery stops there. The
    // replica must compare what it recovers with what its replication log says it accepted.
    EXPECT_LE(recovery.records.size(), 20u);
  }
}

TEST(WalTest, AppendLimitsAreValues) {
  WalOptions options = small_log();
  options.max_record_bytes = 1000;
  options.max_buffered_bytes = 3000;
  Fixture f(options);
  LogSequence sequence;
  EXPECT_EQ(f.wal.append(std::vector<uint8_t>(1001), &sequence), WalStatus::kRecordTooLarge);
  EXPECT_EQ(f.wal.append(std::vector<uint8_t>(1000), &sequence), WalStatus::kOk);
  EXPECT_EQ(f.wal.append(std::vector<uint8_t>(1000), &sequence), WalStatus::kOk);
  EXPECT_EQ(f.wal.append(std::vector<uint8_t>(1000), &sequence), WalStatus::kBufferFull);
}

}  // namespace
}  // namespace dynasim::model
