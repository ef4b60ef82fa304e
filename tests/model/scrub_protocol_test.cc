// The replica comparison's pure parts (model/scrub_protocol.h): the marker's encoding, the
// majority verdict, and the cutting of a differing range into pieces.
#include "model/scrub_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/storage_protocol.h"

namespace dynasim::model {
namespace {

PrimaryKey key(const std::string& text) { return PrimaryKey{KeyValue::string(text), std::nullopt}; }

PrimaryKey sorted_key(const std::string& partition, const std::string& sort) {
  return PrimaryKey{KeyValue::string(partition), KeyValue::string(sort)};
}

TEST(DigestMarker, RoundTripsEveryKindOfBound) {
  DigestMarker marker;
  marker.round = 0x1234'5678'9abc'def0;
  marker.leader = 3;
  marker.depth = 2;
  marker.ranges = {KeyRangeBounds{},
                   KeyRangeBounds{std::nullopt, key("m")},
                   KeyRangeBounds{key("m"), sorted_key("q", "s")},
                   KeyRangeBounds{sorted_key("q", "s"), std::nullopt}};
  const std::vector<uint8_t> bytes = marker.encode();
  EXPECT_TRUE(DigestMarker::is_marker(bytes));
  DigestMarker decoded;
  ASSERT_TRUE(DigestMarker::decode(bytes, &decoded));
  EXPECT_EQ(decoded.round, marker.round);
  EXPECT_EQ(decoded.leader, 3u);
  EXPECT_EQ(decoded.depth, 2u);
  ASSERT_EQ(decoded.ranges.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(decoded.ranges[i].begin, marker.ranges[i].begin) << i;
    EXPECT_EQ(decoded.ranges[i].end, marker.ranges[i].end) << i;
  }
}

TEST(DigestMarker, RejectsTruncatedTrailingAndInvertedBytes) {
  DigestMarker marker;
  marker.ranges = {KeyRangeBounds{key("a"), key("b")}};
  std::vector<uint8_t> bytes = marker.encode();
  DigestMarker out;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(DigestMarker::decode(std::vector<uint8_t>(bytes.begin(), bytes.begin() + cut),
                                      &out))
        << cut;
  }
  std::vector<uint8_t> trailing = bytes;
  trailing.push_back(0);
  EXPECT_FALSE(DigestMarker::decode(trailing, &out));
  DigestMarker inverted;
  inverted.ranges = {KeyRangeBounds{key("b"), key("a")}};
  EXPECT_FALSE(DigestMarker::decode(inverted.encode(), &out));
}

TEST(DigestMarker, NoWriteCommandIsAMarkerAndNoMarkerIsAWriteCommand) {
  Item item(key("k"));
  item.set("ver", true);
  const std::vector<uint8_t> write =
      WriteCommand::encode(1, 2, StorageOp::kPut, key("k"), item, Condition{});
  EXPECT_FALSE(DigestMarker::is_marker(write));
  WriteCommand decoded;
  EXPECT_FALSE(WriteCommand::decode(DigestMarker{}.encode(), &decoded));
}

TEST(JudgeRange, TheMajorityOfTheExpectedReplicasDecides) {
  const RangeDigest a{true, 11, 5};
  const RangeDigest b{true, 22, 5};
  const RangeDigest unknown{};
  // Two of three agree: the third differs.
  RangeVerdict v = judge_range({{1, a}, {2, b}, {3, a}}, 3);
  ASSERT_TRUE(v.majority.has_value());
  EXPECT_EQ(*v.majority, a);
  EXPECT_EQ(v.agreeing, (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(v.differing, (std::vector<uint32_t>{2}));
  // Two reports that differ, one missing: no majority of three, nobody is blamed.
  v = judge_range({{1, a}, {2, b}}, 3);
  EXPECT_FALSE(v.majority.has_value());
  EXPECT_TRUE(v.differing.empty());
  // A report that could not be computed counts for nobody.
  v = judge_range({{1, a}, {2, unknown}, {3, a}}, 3);
  ASSERT_TRUE(v.majority.has_value());
  EXPECT_TRUE(v.differing.empty());
  // Equal digests with different counts are different content.
  v = judge_range({{1, a}, {2, RangeDigest{true, 11, 6}}, {3, a}}, 3);
  EXPECT_EQ(v.differing, (std::vector<uint32_t>{2}));
  // Four expected (a full replica being added): two is not a majority.
  v = judge_range({{1, a}, {2, a}, {3, b}, {4, b}}, 4);
  EXPECT_FALSE(v.majority.has_value());
}

TEST(CutRange, QuantileSplitsCutIntoNearEqualPiecesThatCoverTheRange) {
  std::vector<PrimaryKey> keys;
  for (char c = 'a'; c <= 'p'; ++c) keys.push_back(key(std::string(1, c)));  // 16 keys
  const std::vector<PrimaryKey> splits = quantile_splits(keys, 4);
  ASSERT_EQ(splits.size(), 3u);
  EXPECT_EQ(splits[0], key("e"));
  EXPECT_EQ(splits[1], key("i"));
  EXPECT_EQ(splits[2], key("m"));
  const KeyRangeBounds whole;
  const std::vector<KeyRangeBounds> pieces = cut_range(whole, splits);
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_FALSE(pieces.front().begin.has_value());
  EXPECT_FALSE(pieces.back().end.has_value());
  for (size_t i = 1; i < pieces.size(); ++i) EXPECT_EQ(pieces[i - 1].end, pieces[i].begin);
  // Fewer keys than pieces: one piece per key at most; one key: the range itself.
  EXPECT_EQ(quantile_splits({key("a"), key("b")}, 8).size(), 1u);
  EXPECT_TRUE(quantile_splits({key("a")}, 8).empty());
  const KeyRangeBounds bounded{key("c"), key("x")};
  const std::vector<KeyRangeBounds> one = cut_range(bounded, {});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].begin, bounded.begin);
  EXPECT_EQ(one[0].end, bounded.end);
  // A split at the range's own begin adds no empty piece.
  const std::vector<KeyRangeBounds> no_empty = cut_range(bounded, {key("c"), key("k")});
  ASSERT_EQ(no_empty.size(), 2u);
  EXPECT_EQ(no_empty[0].end, key("k"));
}

}  // namespace
}  // namespace dynasim::model
