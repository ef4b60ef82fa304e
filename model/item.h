// Keys, attribute values and items, with DynamoDB's sizes and capacity-unit rounding.
//
// Follows the DynamoDB Developer Guide, "DynamoDB item sizes and formats"
// (CapacityUnitCalculations): an item's size is the sum of its attribute names' UTF-8 bytes and
// its values' sizes; a string counts its UTF-8 bytes, a binary its raw bytes, a number about one
// byte per two significant digits plus one, a Boolean or null one byte. Limits from the Developer
// Guide's ServiceQuotas page: items up to 400 KB, partition keys 1-2048 bytes, sort keys 1-1024
// bytes, numbers up to 38 significant digits. Capacity: a read costs one unit per 4 KB (half for an
// eventually consistent read), a write one unit per 1 KB, each rounded up, with a minimum of one
// (P22 section 4; Developer Guide, HowItWorks.ReadWriteCapacityMode).
//
// Large tables must fit in memory, so a value may be a Payload: (size, version, checksum) standing
// for bytes derived from the seed. It counts its full size everywhere, and its checksum is stored
// like any other bytes, so corruption of what is stored is still caught.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace dynasim::model {

inline constexpr uint64_t kMaxItemSizeBytes = 400 * 1024;
inline constexpr uint64_t kMaxPartitionKeyBytes = 2048;
inline constexpr uint64_t kMaxSortKeyBytes = 1024;
inline constexpr int kMaxNumberDigits = 38;

// A decimal number as DynamoDB keeps it: up to 38 significant digits, leading and trailing zeros
// trimmed. value = (negative ? -1 : 1) * 0.d1 d2 d3 ... * 10^exponent; zero has no digits.
class Decimal {
 public:
  Decimal() = default;
  // Parses "-12.50", "3e5", "0.001". False (and *out untouched) for anything else or > 38 digits.
  static bool parse(std::string_view text, Decimal* out);
  static Decimal from_int(int64_t value);

  bool is_zero() const { return digits_.empty(); }
  bool negative() const { return negative_; }
  size_t significant_digits() const { return digits_.size(); }
  std::string to_string() const;  // canonical, e.g. "-12.5", "300000", "0.001"
  Decimal negated() const;
  // The exact sum a + b, as DynamoDB's ADD and SET a = b + c compute it. False (and *out
  // untouched) when the sum needs more than 38 significant digits or leaves the range
  // 1e-130..1e126, which DynamoDB refuses with a ValidationException.
  static bool add(const Decimal& a, const Decimal& b, Decimal* out);

  std::strong_ordering operator<=>(const Decimal& other) const;
  bool operator==(const Decimal& other) const = default;

 private:
  bool negative_ = false;
  std::string digits_;  // '1'..'9' first and last
  int32_t exponent_ = 0;
};

enum class ScalarType : uint8_t { kString, kNumber, kBinary };
const char* to_string(ScalarType type);

// A key attribute's value. Strings and binaries hold their bytes; numbers a Decimal.
struct KeyValue {
  ScalarType type = ScalarType::kString;
  std::string bytes;  // kString: UTF-8; kBinary: raw bytes
  Decimal number;     // kNumber

  static KeyValue string(std::string text) { return {ScalarType::kString, std::move(text), {}}; }
  static KeyValue binary(std::string raw) { return {ScalarType::kBinary, std::move(raw), {}}; }
  static KeyValue number_value(Decimal value) { return {ScalarType::kNumber, {}, value}; }

  uint64_t size_bytes() const;
  // DynamoDB's order for sort keys: numbers by value, strings and binaries by unsigned bytes.
  // Values of different types order by type (a table never mixes them in one key attribute).
  std::strong_ordering operator<=>(const KeyValue& other) const;
  bool operator==(const KeyValue& other) const;
};

struct PrimaryKey {
  KeyValue partition;
  std::optional<KeyValue> sort;

  std::strong_ordering operator<=>(const PrimaryKey& other) const;
  bool operator==(const PrimaryKey& other) const = default;
};

// Where a partition key lands in the table's key space: a stable 64-bit hash of its type and bytes.
// Partitions own contiguous ranges of this space.
uint64_t partition_hash(const KeyValue& partition_key);

struct Payload {
  uint64_t size_bytes = 0;
  uint64_t version = 0;
  uint64_t checksum = 0;  // of the bytes it stands for: derived from (seed, key, version)
  bool operator==(const Payload& other) const = default;
};

struct Null {
  bool operator==(const Null&) const = default;
};

using AttributeValue =
    std::variant<Null, bool, std::string /*S*/, Decimal /*N*/, std::vector<uint8_t> /*B*/, Payload>;

uint64_t value_size_bytes(const AttributeValue& value);

enum class ItemStatus { kOk, kItemTooLarge, kKeyEmpty, kPartitionKeyTooLarge, kSortKeyTooLarge };
const char* to_string(ItemStatus status);

struct KeySchema {
  std::string partition_key_name;
  ScalarType partition_key_type = ScalarType::kString;
  std::optional<std::string> sort_key_name;
  ScalarType sort_key_type = ScalarType::kString;
};

// An item: its primary key and its other attributes, kept sorted by name.
class Item {
 public:
  Item() = default;
  explicit Item(PrimaryKey key) : key_(std::move(key)) {}

  const PrimaryKey& key() const { return key_; }
  void set(std::string name, AttributeValue value);
  bool remove(std::string_view name);
  const AttributeValue* find(std::string_view name) const;
  const std::vector<std::pair<std::string, AttributeValue>>& attributes() const {
    return attributes_;
  }

  // DynamoDB's size: key attribute names and values included.
  uint64_t size_bytes(const KeySchema& schema) const;
  ItemStatus validate(const KeySchema& schema) const;

  // A canonical byte encoding (for the WAL and B-tree pages) and its inverse.
  std::vector<uint8_t> encode() const;
  // The same bytes appended to `out`, and a bound on their count that is exact unless the item
  // holds numbers (for reserving).
  void encode_to(std::vector<uint8_t>& out) const;
  size_t encoded_size_hint() const;
  static bool decode(const uint8_t* bytes, size_t length, Item* out);
  uint64_t checksum() const;  // over encode()

  bool operator==(const Item& other) const = default;

 private:
  PrimaryKey key_;
  std::vector<std::pair<std::string, AttributeValue>> attributes_;
};

enum class ReadConsistency { kEventual, kStrong };

// Capacity units, in half units so that eventually consistent reads stay integral.
struct CapacityUnits {
  uint64_t half_units = 0;
  double units() const { return static_cast<double>(half_units) / 2.0; }
};

// A read of an item of `size_bytes` (0 for a missing item, which still costs the minimum).
CapacityUnits read_capacity(uint64_t size_bytes, ReadConsistency consistency);
// A write of an item of `size_bytes` (the larger of the old and new item for updates).
CapacityUnits write_capacity(uint64_t size_bytes);

}  // namespace dynasim::model
