#include "model/item.h"

#include <algorithm>

#include "sim/random.h"

namespace dynasim::model {

namespace {

std::strong_ordering compare_magnitude(const std::string& a_digits, int32_t a_exponent,
                                       const std::string& b_digits, int32_t b_exponent) {
  if (a_digits.empty() || b_digits.empty()) return !a_digits.empty() <=> !b_digits.empty();
  if (a_exponent != b_exponent) return a_exponent <=> b_exponent;
  // Same exponent: digit strings compare like fractions; a missing digit is a zero.
  const int order = a_digits.compare(b_digits);
  return order <=> 0;
}

std::strong_ordering compare_bytes(const std::string& a, const std::string& b) {
  // Unsigned byte order, as DynamoDB orders strings (UTF-8 bytes) and binaries.
  const size_t common = std::min(a.size(), b.size());
  for (size_t i = 0; i < common; ++i) {
    const auto x = static_cast<uint8_t>(a[i]);
    const auto y = static_cast<uint8_t>(b[i]);
    if (x != y) return x <=> y;
  }
  return a.size() <=> b.size();
}

void put_varint(std::vector<uint8_t>& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

void put_u64(std::vector<uint8_t>& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

void put_bytes(std::vector<uint8_t>& out, std::string_view bytes) {
  put_varint(out, bytes.size());
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// A bounds-checked reader: every getter fails (returns false) past the end instead of reading it.
struct Reader {
  const uint8_t* bytes;
  size_t length;
  size_t position = 0;

  bool varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (position >= length) return false;
      const uint8_t byte = bytes[position++];
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool u64(uint64_t* value) {
    if (length - position < 8) return false;
    *value = 0;
    for (int i = 0; i < 8; ++i) *value |= static_cast<uint64_t>(bytes[position++]) << (8 * i);
    return true;
  }
  bool byte(uint8_t* value) {
    if (position >= length) return false;
    *value = bytes[position++];
    return true;
  }
  bool text(std::string* value) {
    uint64_t size;
    if (!varint(&size) || size > length - position) return false;
    value->assign(reinterpret_cast<const char*>(bytes + position), size);
    position += size;
    return true;
  }
};

enum ValueTag : uint8_t { kTagNull, kTagBool, kTagString, kTagNumber, kTagBinary, kTagPayload };

void encode_key(std::vector<uint8_t>& out, const KeyValue& key) {
  out.push_back(static_cast<uint8_t>(key.type));
  put_bytes(out, key.type == ScalarType::kNumber ? key.number.to_string() : key.bytes);
}

bool decode_key(Reader& reader, KeyValue* key) {
  uint8_t type;
  std::string bytes;
  if (!reader.byte(&type) || type > 2 || !reader.text(&bytes)) return false;
  key->type = static_cast<ScalarType>(type);
  if (key->type == ScalarType::kNumber) {
    key->bytes.clear();
    return Decimal::parse(bytes, &key->number);
  }
  key->bytes = std::move(bytes);
  return true;
}

}  // namespace

bool Decimal::parse(std::string_view text, Decimal* out) {
  size_t i = 0;
  Decimal result;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) result.negative_ = text[i++] == '-';
  std::string digits;
  int64_t digits_before_point = 0;
  bool seen_point = false;
  bool seen_digit = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      seen_digit = true;
      if (digits.size() > 200) return false;
      digits.push_back(c);
      if (!seen_point) ++digits_before_point;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return false;
  int64_t exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exponent_negative = false;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) exponent_negative = text[i++] == '-';
    if (i == text.size()) return false;
    for (; i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9' || exponent > 100000) return false;
      exponent = exponent * 10 + (text[i] - '0');
    }
    if (exponent_negative) exponent = -exponent;
  }
  if (i != text.size()) return false;
  // value = 0.digits * 10^(digits_before_point + exponent); now trim zeros on both ends.
  int64_t scale = digits_before_point + exponent;
  size_t first = 0;
  while (first < digits.size() && digits[first] == '0') {
    ++first;
    --scale;
  }
  size_t last = digits.size();
  while (last > first && digits[last - 1] == '0') --last;
  result.digits_ = digits.substr(first, last - first);
  if (result.digits_.size() > kMaxNumberDigits) return false;
  if (result.digits_.empty()) {
    *out = Decimal();
    return true;
  }
  // DynamoDB's range is 1e-130 to 1e126 in magnitude.
  if (scale > 126 || scale < -129) return false;
  result.exponent_ = static_cast<int32_t>(scale);
  *out = result;
  return true;
}

Decimal Decimal::from_int(int64_t value) {
  Decimal result;
  const bool parsed = parse(std::to_string(value), &result);
  (void)parsed;
  return result;
}

std::string Decimal::to_string() const {
  if (digits_.empty()) return "0";
  std::string text = negative_ ? "-" : "";
  const auto length = static_cast<int32_t>(digits_.size());
  if (exponent_ <= 0) {
    text += "0." + std::string(static_cast<size_t>(-exponent_), '0') + digits_;
  } else if (exponent_ >= length) {
    text += digits_ + std::string(static_cast<size_t>(exponent_ - length), '0');
  } else {
    text += digits_.substr(0, static_cast<size_t>(exponent_)) + "." +
            digits_.substr(static_cast<size_t>(exponent_));
  }
  return text;
}

Decimal Decimal::negated() const {
  Decimal result = *this;
  if (!result.is_zero()) result.negative_ = !negative_;
  return result;
}

namespace {

// Magnitudes as digit strings with a common scale: value = digits * 10^scale (most significant
// digit first). Adds or subtracts them in base 10.
std::string add_digits(const std::string& a, const std::string& b) {
  std::string sum;
  int carry = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) || carry != 0; ++i) {
    int digit = carry;
    if (i < a.size()) digit += a[a.size() - 1 - i] - '0';
    if (i < b.size()) digit += b[b.size() - 1 - i] - '0';
    sum.push_back(static_cast<char>('0' + digit % 10));
    carry = digit / 10;
  }
  std::reverse(sum.begin(), sum.end());
  return sum;
}

// a - b for magnitudes a >= b of equal length.
std::string subtract_digits(const std::string& a, const std::string& b) {
  std::string difference(a.size(), '0');
  int borrow = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int digit = (a[a.size() - 1 - i] - '0') - borrow - (b[b.size() - 1 - i] - '0');
    borrow = digit < 0 ? 1 : 0;
    if (digit < 0) digit += 10;
    difference[a.size() - 1 - i] = static_cast<char>('0' + digit);
  }
  return difference;
}

}  // namespace

bool Decimal::add(const Decimal& a, const Decimal& b, Decimal* out) {
  if (a.is_zero()) {
    *out = b;
    return true;
  }
  if (b.is_zero()) {
    *out = a;
    return true;
  }
  // value = 0.d1..dn * 10^e = d1..dn * 10^(e - n). Align both on the lower scale. Exponents
  // are within [-129, 126] and digits at most 38, so the strings stay under 300 characters.
  const int32_t a_scale = a.exponent_ - static_cast<int32_t>(a.digits_.size());
  const int32_t b_scale = b.exponent_ - static_cast<int32_t>(b.digits_.size());
  const int32_t scale = std::min(a_scale, b_scale);
  std::string x = a.digits_ + std::string(static_cast<size_t>(a_scale - scale), '0');
  std::string y = b.digits_ + std::string(static_cast<size_t>(b_scale - scale), '0');
  const size_t width = std::max(x.size(), y.size());
  x.insert(0, width - x.size(), '0');
  y.insert(0, width - y.size(), '0');
  Decimal result;
  std::string digits;
  if (a.negative_ == b.negative_) {
    digits = add_digits(x, y);
    result.negative_ = a.negative_;
  } else if (x >= y) {  // equal widths: string order is magnitude order
    digits = subtract_digits(x, y);
    result.negative_ = a.negative_;
  } else {
    digits = subtract_digits(y, x);
    result.negative_ = b.negative_;
  }
  size_t first = 0;
  while (first < digits.size() && digits[first] == '0') ++first;
  size_t last = digits.size();
  while (last > first && digits[last - 1] == '0') --last;
  if (first == last) {
    *out = Decimal();
    return true;
  }
  const int64_t exponent =
      static_cast<int64_t>(scale) + static_cast<int64_t>(digits.size() - first);
  result.digits_ = digits.substr(first, last - first);
  if (result.digits_.size() > static_cast<size_t>(kMaxNumberDigits)) return false;
  if (exponent > 126 || exponent < -129) return false;
  result.exponent_ = static_cast<int32_t>(exponent);
  *out = result;
  return true;
}

std::strong_ordering Decimal::operator<=>(const Decimal& other) const {
  const bool this_negative = negative_ && !is_zero();
  const bool other_negative = other.negative_ && !other.is_zero();
  if (this_negative != other_negative) {
    return this_negative ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  const std::strong_ordering magnitude =
      compare_magnitude(digits_, exponent_, other.digits_, other.exponent_);
  if (!this_negative) return magnitude;
  return 0 <=> magnitude;  // for negatives the larger magnitude is the smaller number
}

const char* to_string(ScalarType type) {
  switch (type) {
    case ScalarType::kString:
      return "S";
    case ScalarType::kNumber:
      return "N";
    case ScalarType::kBinary:
      return "B";
  }
  return "?";
}

uint64_t KeyValue::size_bytes() const {
  if (type == ScalarType::kNumber) return (number.significant_digits() + 1) / 2 + 1;
  return bytes.size();
}

std::strong_ordering KeyValue::operator<=>(const KeyValue& other) const {
  if (type != other.type) return type <=> other.type;
  if (type == ScalarType::kNumber) return number <=> other.number;
  return compare_bytes(bytes, other.bytes);
}

bool KeyValue::operator==(const KeyValue& other) const {
  return (*this <=> other) == std::strong_ordering::equal;
}

std::strong_ordering PrimaryKey::operator<=>(const PrimaryKey& other) const {
  if (auto order = partition <=> other.partition; order != 0) return order;
  if (sort.has_value() != other.sort.has_value())
    return sort.has_value() <=> other.sort.has_value();
  if (!sort.has_value()) return std::strong_ordering::equal;
  return *sort <=> *other.sort;
}

uint64_t partition_hash(const KeyValue& partition_key) {
  const std::string canonical = partition_key.type == ScalarType::kNumber
                                    ? partition_key.number.to_string()
                                    : partition_key.bytes;
  return sim::splitmix64(sim::stable_hash(canonical) ^
                         (static_cast<uint64_t>(partition_key.type) << 56));
}

uint64_t value_size_bytes(const AttributeValue& value) {
  struct Visitor {
    uint64_t operator()(const Null&) const { return 1; }
    uint64_t operator()(bool) const { return 1; }
    uint64_t operator()(const std::string& text) const { return text.size(); }
    uint64_t operator()(const Decimal& number) const {
      return (number.significant_digits() + 1) / 2 + 1;
    }
    uint64_t operator()(const std::vector<uint8_t>& raw) const { return raw.size(); }
    uint64_t operator()(const Payload& payload) const { return payload.size_bytes; }
  };
  return std::visit(Visitor{}, value);
}

const char* to_string(ItemStatus status) {
  switch (status) {
    case ItemStatus::kOk:
      return "ok";
    case ItemStatus::kItemTooLarge:
      return "item larger than 400 KB";
    case ItemStatus::kKeyEmpty:
      return "empty key attribute";
    case ItemStatus::kPartitionKeyTooLarge:
      return "partition key larger than 2048 bytes";
    case ItemStatus::kSortKeyTooLarge:
      return "sort key larger than 1024 bytes";
  }
  return "?";
}

void Item::set(std::string name, AttributeValue value) {
  auto position = std::lower_bound(
      attributes_.begin(), attributes_.end(), name,
      [](const auto& attribute, const std::string& key) { return attribute.first < key; });
  if (position != attributes_.end() && position->first == name) {
    position->second = std::move(value);
  } else {
    attributes_.insert(position, {std::move(name), std::move(value)});
  }
}

bool Item::remove(std::string_view name) {
  auto position = std::lower_bound(
      attributes_.begin(), attributes_.end(), name,
      [](const auto& attribute, std::string_view key) { return attribute.first < key; });
  if (position == attributes_.end() || position->first != name) return false;
  attributes_.erase(position);
  return true;
}

const AttributeValue* Item::find(std::string_view name) const {
  auto position = std::lower_bound(
      attributes_.begin(), attributes_.end(), name,
      [](const auto& attribute, std::string_view key) { return attribute.first < key; });
  if (position == attributes_.end() || position->first != name) return nullptr;
  return &position->second;
}

uint64_t Item::size_bytes(const KeySchema& schema) const {
  uint64_t size = schema.partition_key_name.size() + key_.partition.size_bytes();
  if (key_.sort.has_value() && schema.sort_key_name.has_value()) {
    size += schema.sort_key_name->size() + key_.sort->size_bytes();
  }
  for (const auto& [name, value] : attributes_) size += name.size() + value_size_bytes(value);
  return size;
}

ItemStatus Item::validate(const KeySchema& schema) const {
  if (key_.partition.size_bytes() == 0) return ItemStatus::kKeyEmpty;
  if (key_.partition.size_bytes() > kMaxPartitionKeyBytes) return ItemStatus::kPartitionKeyTooLarge;
  if (key_.sort.has_value()) {
    if (key_.sort->size_bytes() == 0) return ItemStatus::kKeyEmpty;
    if (key_.sort->size_bytes() > kMaxSortKeyBytes) return ItemStatus::kSortKeyTooLarge;
  }
  if (size_bytes(schema) > kMaxItemSizeBytes) return ItemStatus::kItemTooLarge;
  return ItemStatus::kOk;
}

size_t Item::encoded_size_hint() const {
  // Numbers, whose decimal text length is not known here, are counted at 48 bytes.
  size_t hint = 16 + key_.partition.bytes.size() + (key_.sort ? key_.sort->bytes.size() + 16 : 0);
  if (key_.partition.type == ScalarType::kNumber) hint += 48;
  if (key_.sort && key_.sort->type == ScalarType::kNumber) hint += 48;
  for (const auto& [name, value] : attributes_) {
    hint += name.size() + 12;
    if (const auto* text = std::get_if<std::string>(&value)) hint += text->size();
    if (const auto* raw = std::get_if<std::vector<uint8_t>>(&value)) hint += raw->size();
    if (value.index() == kTagNumber || value.index() == kTagPayload) hint += 48;
  }
  return hint;
}

std::vector<uint8_t> Item::encode() const {
  std::vector<uint8_t> out;
  out.reserve(encoded_size_hint());  // one allocation in the common case
  encode_to(out);
  return out;
}

void Item::encode_to(std::vector<uint8_t>& out) const {
  encode_key(out, key_.partition);
  out.push_back(key_.sort.has_value() ? 1 : 0);
  if (key_.sort.has_value()) encode_key(out, *key_.sort);
  put_varint(out, attributes_.size());
  for (const auto& [name, value] : attributes_) {
    put_bytes(out, name);
    out.push_back(static_cast<uint8_t>(value.index()));
    switch (value.index()) {
      case kTagNull:
        break;
      case kTagBool:
        out.push_back(std::get<bool>(value) ? 1 : 0);
        break;
      case kTagString:
        put_bytes(out, std::get<std::string>(value));
        break;
      case kTagNumber:
        put_bytes(out, std::get<Decimal>(value).to_string());
        break;
      case kTagBinary: {
        const auto& raw = std::get<std::vector<uint8_t>>(value);
        put_varint(out, raw.size());
        out.insert(out.end(), raw.begin(), raw.end());
        break;
      }
      case kTagPayload: {
        const Payload& payload = std::get<Payload>(value);
        put_u64(out, payload.size_bytes);
        put_u64(out, payload.version);
        put_u64(out, payload.checksum);
        break;
      }
    }
  }
}

bool Item::decode(const uint8_t* bytes, size_t length, Item* out) {
  Reader reader{bytes, length};
  Item item;
  uint8_t has_sort;
  if (!decode_key(reader, &item.key_.partition) || !reader.byte(&has_sort) || has_sort > 1) {
    return false;
  }
  if (has_sort == 1) {
    KeyValue sort;
    if (!decode_key(reader, &sort)) return false;
    item.key_.sort = std::move(sort);
  }
  uint64_t count;
  if (!reader.varint(&count) || count > length) return false;
  item.attributes_.reserve(count);  // bounded: each attribute takes at least two bytes
  for (uint64_t i = 0; i < count; ++i) {
    std::string name;
    uint8_t tag;
    if (!reader.text(&name) || !reader.byte(&tag)) return false;
    // Names must arrive strictly sorted, as encode() writes them.
    if (!item.attributes_.empty() && !(item.attributes_.back().first < name)) return false;
    AttributeValue value;
    switch (tag) {
      case kTagNull:
        value = Null{};
        break;
      case kTagBool: {
        uint8_t flag;
        if (!reader.byte(&flag) || flag > 1) return false;
        value = flag == 1;
        break;
      }
      case kTagString: {
        std::string text;
        if (!reader.text(&text)) return false;
        value = std::move(text);
        break;
      }
      case kTagNumber: {
        std::string text;
        Decimal number;
        if (!reader.text(&text) || !Decimal::parse(text, &number)) return false;
        value = number;
        break;
      }
      case kTagBinary: {
        std::string raw;
        if (!reader.text(&raw)) return false;
        value = std::vector<uint8_t>(raw.begin(), raw.end());
        break;
      }
      case kTagPayload: {
        Payload payload;
        if (!reader.u64(&payload.size_bytes) || !reader.u64(&payload.version) ||
            !reader.u64(&payload.checksum)) {
          return false;
        }
        value = payload;
        break;
      }
      default:
        return false;
    }
    item.attributes_.emplace_back(std::move(name), std::move(value));
  }
  if (reader.position != length) return false;
  *out = std::move(item);
  return true;
}

uint64_t Item::checksum() const {
  const std::vector<uint8_t> bytes = encode();
  return sim::hash_bytes(0, bytes.data(), bytes.size());
}

CapacityUnits read_capacity(uint64_t size_bytes, ReadConsistency consistency) {
  const uint64_t blocks = std::max<uint64_t>(1, (size_bytes + 4095) / 4096);
  // A strongly consistent read costs one unit per 4 KB; an eventually consistent one half.
  return CapacityUnits{consistency == ReadConsistency::kStrong ? blocks * 2 : blocks};
}

CapacityUnits write_capacity(uint64_t size_bytes) {
  const uint64_t blocks = std::max<uint64_t>(1, (size_bytes + 1023) / 1024);
  return CapacityUnits{blocks * 2};
}

}  // namespace dynasim::model
