// The split executor's pure parts (model/split_executor.h): the markers' encoding, the copy-done
// quorum before the commit, the child's start only after the copy caught up with the commit, the
// MemDS entry version of a split generation, and the planted early child.
#include "model/split_executor.h"

#include <gtest/gtest.h>

#include "sim/random.h"

namespace dynasim::model {
namespace {

SplitMarker begin_marker() {
  SplitMarker marker;
  marker.kind = SplitMarker::Kind::kBegin;
  marker.parent = GroupId(2);
  marker.child = GroupId(6);
  marker.parent_begin = 100;
  marker.parent_end = 1000;
  marker.split_hash = 500;
  marker.child_stride = 8;
  marker.reason = SplitVerdict::kSplitForConsumption;
  return marker;
}

TEST(SplitMarkerTest, RoundTripsAndRefusesOtherBytes) {
  sim::Random random(7);
  for (int i = 0; i < 500; ++i) {
    SplitMarker marker;
    marker.kind =
        random.next_u64() % 2 == 0 ? SplitMarker::Kind::kBegin : SplitMarker::Kind::kCommit;
    marker.parent = GroupId(static_cast<uint32_t>(random.next_u64()));
    marker.child = GroupId(static_cast<uint32_t>(random.next_u64()));
    marker.parent_begin = random.next_u64() % (uint64_t{1} << 62);
    marker.parent_end = marker.parent_begin + 1 + random.next_u64() % (uint64_t{1} << 62);
    marker.split_hash =
        marker.parent_begin + 1 + random.next_u64() % (marker.parent_end - marker.parent_begin);
    marker.child_stride = static_cast<uint32_t>(random.next_u64());
    marker.reason = random.next_u64() % 2 == 0 ? SplitVerdict::kSplitForSize
                                               : SplitVerdict::kSplitForConsumption;
    marker.begin_index = random.next_u64();
    marker.decided_local_ns = static_cast<int64_t>(random.next_u64() >> 1);
    const std::vector<uint8_t> bytes = marker.encode();
    ASSERT_TRUE(SplitMarker::is_marker(bytes));
    SplitMarker decoded;
    ASSERT_TRUE(SplitMarker::decode(bytes, &decoded));
    EXPECT_EQ(decoded.encode(), bytes);
    // A cut or extended marker does not decode.
    std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 1);
    EXPECT_FALSE(SplitMarker::decode(cut, &decoded));
    std::vector<uint8_t> longer = bytes;
    longer.push_back(0);
    EXPECT_FALSE(SplitMarker::decode(longer, &decoded));
  }
  // A split hash outside (parent_begin, parent_end] is refused: a child would be empty.
  SplitMarker empty_child = begin_marker();
  empty_child.split_hash = empty_child.parent_begin;
  SplitMarker decoded;
  EXPECT_FALSE(SplitMarker::decode(empty_child.encode(), &decoded));
  EXPECT_FALSE(SplitMarker::is_marker({1, 2, 3}));
}

TEST(SplitExecutionTest, CommitNeedsAQuorumOfCopiesAndOnePerTerm) {
  const Configuration configuration = Configuration::of_voters({1, 2, 3});
  SplitExecution split(begin_marker(), LogIndex(10), /*plant=*/false);
  split.on_term(1);
  EXPECT_FALSE(split.commit_due(configuration));
  split.on_copy_reported(2, 10);
  EXPECT_FALSE(split.commit_due(configuration));  // one of three
  split.on_copy_reported(3, 9);                   // another split's report
  EXPECT_FALSE(split.commit_due(configuration));
  split.on_copy_reported(3, 10);
  EXPECT_TRUE(split.commit_due(configuration));
  split.on_commit_proposed(1);
  EXPECT_FALSE(split.commit_due(configuration));  // proposed in this term
  split.on_term(2);                               // a new leader term may propose again
  EXPECT_TRUE(split.commit_due(configuration));
  split.on_commit_applied(LogIndex(20));
  EXPECT_FALSE(split.commit_due(configuration));  // committed
}

TEST(SplitExecutionTest, ChildStartsOnlyAfterTheCopyCaughtUpWithTheCommit) {
  SplitExecution split(begin_marker(), LogIndex(10), /*plant=*/false);
  EXPECT_FALSE(split.report_due());
  EXPECT_FALSE(split.child_may_start(0));  // not committed
  split.on_bulk_copy_done();
  EXPECT_TRUE(split.report_due());
  EXPECT_EQ(split.phase(), SplitExecution::Phase::kCopied);
  EXPECT_FALSE(split.child_may_start(0));  // still not committed
  split.on_commit_applied(LogIndex(20));
  EXPECT_FALSE(split.report_due());
  EXPECT_FALSE(split.child_may_start(3));  // keys applied before the commit still to copy
  EXPECT_TRUE(split.copying());
  EXPECT_TRUE(split.child_may_start(0));
  split.on_child_started();
  EXPECT_FALSE(split.copying());
  EXPECT_EQ(split.phase(), SplitExecution::Phase::kChildStarted);

  // Committed before this replica's bulk copy finished (a quorum of others did): it waits.
  SplitExecution late(begin_marker(), LogIndex(10), /*plant=*/false);
  late.on_commit_applied(LogIndex(20));
  EXPECT_FALSE(late.child_may_start(0));
  late.on_bulk_copy_done();
  EXPECT_TRUE(late.child_may_start(0));
}

// The planted bug lets the state machine commit and start the child before any copy: the model
// property above (no start before the copy) fails under it.
TEST(SplitExecutionTest, PlantedEarlyChildBreaksTheProperty) {
  const Configuration configuration = Configuration::of_voters({1, 2, 3});
  SplitExecution split(begin_marker(), LogIndex(10), /*plant=*/true);
  split.on_term(1);
  EXPECT_TRUE(split.commit_due(configuration));  // no report at all
  split.on_commit_applied(LogIndex(11));
  EXPECT_TRUE(split.child_may_start(5));  // copy not done, keys pending
  EXPECT_FALSE(split.copying());
}

TEST(SplitEntryVersionTest, EachGenerationIsAboveEveryEntryOfTheOneBefore) {
  EXPECT_EQ(split_entry_version(0, 12345), 12345u);
  sim::Random random(3);
  for (int i = 0; i < 1000; ++i) {
    const uint32_t generation = static_cast<uint32_t>(random.next_u64() % 200);
    const uint64_t older = random.next_u64() % (uint64_t{1} << 56);
    const uint64_t newer = random.next_u64() % (uint64_t{1} << 56);
    EXPECT_LT(split_entry_version(generation, older), split_entry_version(generation + 1, newer));
  }
}

}  // namespace
}  // namespace dynasim::model
