// Items and keys: DynamoDB's number semantics, key order, sizes, capacity units, limits and the
// stored encoding.
#include "model/item.h"

#include <gtest/gtest.h>

#include "sim/random.h"

namespace dynasim::model {
namespace {

Decimal number(const char* text) {
  Decimal value;
  EXPECT_TRUE(Decimal::parse(text, &value)) << text;
  return value;
}

TEST(DecimalTest, ParsesToCanonicalFormTrimmingZeros) {
  EXPECT_EQ(number("0012.5000").to_string(), "12.5");
  EXPECT_EQ(number("-0.00100").to_string(), "-0.001");
  EXPECT_EQ(number("3e5").to_string(), "300000");
  EXPECT_EQ(number("1.5E-3").to_string(), "0.0015");
  EXPECT_EQ(number("-0").to_string(), "0");
  EXPECT_EQ(number("+7").to_string(), "7");
  EXPECT_EQ(number("12.5"), number("1.25e1"));
  Decimal out;
  for (const char* bad : {"", "-", "1.2.3", "abc", "1e", "1e+", "12x", ".", "--1"}) {
    EXPECT_FALSE(Decimal::parse(bad, &out)) << bad;
  }
  // 38 significant digits are allowed, 39 are not; zeros around them do not count.
  EXPECT_TRUE(Decimal::parse("12345678901234567890123456789012345678000", &out));
  EXPECT_FALSE(Decimal::parse("123456789012345678901234567890123456789", &out));
  EXPECT_FALSE(Decimal::parse("1e200", &out));
}

TEST(DecimalTest, OrdersByValue) {
  const char* ascending[] = {"-1000", "-12.5", "-0.001", "0",   "0.0001", "0.5",
                             "1",     "9.99",  "10",     "1e3", "1001"};
  for (size_t i = 0; i + 1 < std::size(ascending); ++i) {
    EXPECT_LT(number(ascending[i]), number(ascending[i + 1]))
        << ascending[i] << " vs " << ascending[i + 1];
    EXPECT_GT(number(ascending[i + 1]), number(ascending[i]));
  }
}

TEST(KeyTest, SortKeysOrderAsDynamoDbOrdersThem) {
  // Strings by unsigned UTF-8 bytes: "Z" < "a" < "é" (0xC3 0xA9).
  EXPECT_LT(KeyValue::string("Z"), KeyValue::string("a"));
  EXPECT_LT(KeyValue::string("a"), KeyValue::string("\xc3\xa9"));
  EXPECT_LT(KeyValue::string("ab"), KeyValue::string("abc"));
  // Numbers by value, not by text.
  EXPECT_LT(KeyValue::number_value(number("9")), KeyValue::number_value(number("10")));
  // Binaries by unsigned bytes: 0x7f < 0x80.
  EXPECT_LT(KeyValue::binary("\x7f"), KeyValue::binary("\x80"));
  PrimaryKey a{KeyValue::string("p"), KeyValue::number_value(number("2"))};
  PrimaryKey b{KeyValue::string("p"), KeyValue::number_value(number("10"))};
  EXPECT_LT(a, b);
}

TEST(KeyTest, PartitionHashIsStableAndSpreadsKeys) {
  // Pinned: the key space layout of every table depends on it.
  EXPECT_EQ(partition_hash(KeyValue::string("user#1")), partition_hash(KeyValue::string("user#1")));
  EXPECT_NE(partition_hash(KeyValue::string("1")),
            partition_hash(KeyValue::number_value(number("1"))));
  // Numbers hash by value: 1.50 and 1.5 are one key.
  EXPECT_EQ(partition_hash(KeyValue::number_value(number("1.50"))),
            partition_hash(KeyValue::number_value(number("1.5"))));
  int upper_half = 0;
  for (int i = 0; i < 10000; ++i) {
    upper_half += partition_hash(KeyValue::string("key" + std::to_string(i))) >> 63;
  }
  EXPECT_NEAR(upper_half, 5000, 300);
}

TEST(ItemTest, SizesFollowTheDeveloperGuide) {
  const KeySchema schema{"pk", ScalarType::kString, "sk", ScalarType::kNumber};
  Item item(PrimaryKey{KeyValue::string("user#42"), KeyValue::number_value(number("12345"))});
  // pk: 2 + 7; sk: 2 + (5 digits -> 3 + 1 = 4)
  EXPECT_EQ(item.size_bytes(schema), 9u + 6u);
  item.set("name", std::string("Ana"));           // 4 + 3
  item.set("ok", true);                           // 2 + 1
  item.set("gone", Null{});                       // 4 + 1
  item.set("blob", std::vector<uint8_t>(10, 0));  // 4 + 10
  item.set("body", Payload{1000, 3, 77});         // 4 + 1000
  item.set("n", number("-0.001"));                // 1 + (1 digit -> 1 + 1)
  EXPECT_EQ(item.size_bytes(schema), 15u + 7 + 3 + 5 + 14 + 1004 + 3);
  EXPECT_EQ(item.validate(schema), ItemStatus::kOk);
  item.set("body", Payload{400 * 1024, 3, 77});
  EXPECT_EQ(item.validate(schema), ItemStatus::kItemTooLarge);
  Item long_key(PrimaryKey{KeyValue::string(std::string(2049, 'k')), std::nullopt});
  EXPECT_EQ(
      long_key.validate(KeySchema{"pk", ScalarType::kString, std::nullopt, ScalarType::kString}),
      ItemStatus::kPartitionKeyTooLarge);
  Item long_sort(PrimaryKey{KeyValue::string("p"), KeyValue::string(std::string(1025, 's'))});
  EXPECT_EQ(long_sort.validate(schema), ItemStatus::kSortKeyTooLarge);
  Item empty(PrimaryKey{KeyValue::string(""), std::nullopt});
  EXPECT_EQ(empty.validate(KeySchema{"pk", ScalarType::kString, std::nullopt, ScalarType::kString}),
            ItemStatus::kKeyEmpty);
}

TEST(ItemTest, AttributesStaySortedAndCanBeReplacedOrRemoved) {
  Item item(PrimaryKey{KeyValue::string("p"), std::nullopt});
  item.set("b", true);
  item.set("a", std::string("x"));
  item.set("b", false);
  ASSERT_EQ(item.attributes().size(), 2u);
  EXPECT_EQ(item.attributes()[0].first, "a");
  EXPECT_EQ(std::get<bool>(*item.find("b")), false);
  EXPECT_TRUE(item.remove("a"));
  EXPECT_FALSE(item.remove("a"));
  EXPECT_EQ(item.find("a"), nullptr);
}

TEST(CapacityTest, RoundsUpPerBlockWithAMinimumOfOne) {
  EXPECT_EQ(read_capacity(0, ReadConsistency::kStrong).units(), 1.0);  // a missing item
  EXPECT_EQ(read_capacity(4096, ReadConsistency::kStrong).units(), 1.0);
  EXPECT_EQ(read_capacity(4097, ReadConsistency::kStrong).units(), 2.0);
  EXPECT_EQ(read_capacity(4097, ReadConsistency::kEventual).units(), 1.0);
  EXPECT_EQ(read_capacity(100, ReadConsistency::kEventual).units(), 0.5);
  EXPECT_EQ(write_capacity(0).units(), 1.0);
  EXPECT_EQ(write_capacity(1024).units(), 1.0);
  EXPECT_EQ(write_capacity(1025).units(), 2.0);
  EXPECT_EQ(write_capacity(400 * 1024).units(), 400.0);
}

TEST(ItemTest, EncodingRoundTripsAndItsChecksumCatchesAnyBitFlip) {
  Item item(PrimaryKey{KeyValue::number_value(number("-17.25")), KeyValue::binary("\x01\x02")});
  item.set("s", std::string("text"));
  item.set("n", number("1e10"));
  item.set("b", std::vector<uint8_t>{1, 2, 3});
  item.set("t", true);
  item.set("z", Null{});
  item.set("p", Payload{4096, 9, 0xabcdef});
  const std::vector<uint8_t> bytes = item.encode();
  Item decoded;
  ASSERT_TRUE(Item::decode(bytes.data(), bytes.size(), &decoded));
  EXPECT_EQ(decoded, item);
  EXPECT_EQ(decoded.checksum(), item.checksum());
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::vector<uint8_t> flipped = bytes;
    flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    Item other;
    if (Item::decode(flipped.data(), flipped.size(), &other)) {
      EXPECT_NE(other.checksum(), item.checksum()) << "bit " << bit;
    }
  }
}

TEST(ItemTest, DecodingArbitraryBytesNeverCrashes) {
  sim::Random random(5);
  Item item;
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> bytes(random.uniform_u64(40));
    for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(random.next_u64());
    Item::decode(bytes.data(), bytes.size(), &item);
  }
  SUCCEED();  // the assertion is that ASan/UBSan and the bounds checks saw nothing
}

}  // namespace
}  // namespace dynasim::model
