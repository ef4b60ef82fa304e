// The WAL record encoding: its bytes are pinned field by field (a change would change every run's
// trace and make old logs unreadable), it round-trips, and damaged bytes fail to decode cleanly.
#include "model/wal_record.h"

#include <gtest/gtest.h>

#include <vector>

namespace dynasim::model {
namespace {

LogEntry entry(uint64_t index, uint64_t round, uint32_t replica, uint64_t id,
               std::vector<uint8_t> bytes) {
  return LogEntry{LogIndex(index), Ballot{round, replica}, Command{id, std::move(bytes)}};
}

TEST(WalRecordTest, BytesArePinnedFieldByField) {
  const HardState hard_state{Ballot{0x0102, 3}, LogIndex(0x0a0b)};
  const std::vector<LogEntry> entries = {entry(7, 2, 1, 0x99, {0xaa, 0xbb})};
  const std::vector<uint8_t> bytes = encode_wal_record(hard_state, entries.data(), 1);
  // clang-format off
  const std::vector<uint8_t> expected = {
      1, 1,                                      // format, has_hard_state
      0x02, 0x01, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,  // promised round, replica
      0x0b, 0x0a, 0, 0, 0, 0, 0, 0,              // commit
      1, 0, 0, 0,                                // entry count
      7, 0, 0, 0, 0, 0, 0, 0,                    // index
      2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,        // ballot round, replica
      0x99, 0, 0, 0, 0, 0, 0, 0,                 // command id
      2, 0, 0, 0, 0xaa, 0xbb};                   // length, bytes
  // clang-format on
  EXPECT_EQ(bytes, expected);
}

TEST(WalRecordTest, RoundTripsWithAndWithoutHardState) {
  const std::vector<LogEntry> entries = {entry(1, 1, 1, 0, {}), entry(2, 1, 1, 5, {1, 2, 3}),
                                         entry(3, 4, 2, 6, std::vector<uint8_t>(300, 9))};
  for (const bool with_hard_state : {false, true}) {
    std::optional<HardState> hard_state;
    if (with_hard_state) hard_state = HardState{Ballot{4, 2}, LogIndex(2)};
    const std::vector<uint8_t> bytes =
        encode_wal_record(hard_state, entries.data(), entries.size());
    WalBatch batch;
    ASSERT_TRUE(decode_wal_record(bytes, &batch));
    EXPECT_EQ(batch.hard_state, hard_state);
    EXPECT_EQ(batch.entries, entries);
  }
}

// A membership change (model/paxos.h) is marked in the length's top bit and comes back marked;
// the same command bytes without the mark are a different entry.
TEST(WalRecordTest, AConfigurationEntryKeepsItsMark) {
  LogEntry change = entry(9, 3, 2, 4, Configuration::of_voters({1, 2, 3}).encode());
  change.command.configuration = true;
  const std::vector<LogEntry> entries = {change, entry(10, 3, 2, 77, {1})};
  WalBatch batch;
  ASSERT_TRUE(decode_wal_record(encode_wal_record(std::nullopt, entries.data(), 2), &batch));
  ASSERT_EQ(batch.entries.size(), 2u);
  EXPECT_TRUE(batch.entries[0].command.is_configuration());
  EXPECT_FALSE(batch.entries[1].command.is_configuration());
  EXPECT_EQ(batch.entries[0], change);
  LogEntry unmarked = change;
  unmarked.command.configuration = false;
  EXPECT_FALSE(batch.entries[0] == unmarked);
}

TEST(WalRecordTest, DamagedBytesFailCleanly) {
  const std::vector<LogEntry> entries = {entry(1, 1, 1, 5, {1, 2, 3}), entry(2, 1, 1, 6, {4})};
  const std::vector<uint8_t> bytes =
      encode_wal_record(HardState{Ballot{1, 1}, LogIndex(1)}, entries.data(), entries.size());
  // Every truncation, one byte of trailing garbage, a wrong format, a bad flag.
  for (size_t length = 0; length < bytes.size(); ++length) {
    WalBatch batch;
    EXPECT_FALSE(
        decode_wal_record(std::vector<uint8_t>(bytes.begin(), bytes.begin() + length), &batch))
        << "truncated to " << length;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  WalBatch batch;
  EXPECT_FALSE(decode_wal_record(longer, &batch));
  std::vector<uint8_t> wrong_format = bytes;
  wrong_format[0] = 2;
  EXPECT_FALSE(decode_wal_record(wrong_format, &batch));
  std::vector<uint8_t> bad_flag = bytes;
  bad_flag[1] = 2;
  EXPECT_FALSE(decode_wal_record(bad_flag, &batch));
  // A command length far past the end.
  std::vector<uint8_t> huge_length = bytes;
  const size_t first_length_at = 2 + 20 + 4 + 8 + 12 + 8;
  huge_length[first_length_at + 3] = 0xff;
  EXPECT_FALSE(decode_wal_record(huge_length, &batch));
}

}  // namespace
}  // namespace dynasim::model
