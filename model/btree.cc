// The storage replica's B+tree: see model/btree.h for the design and the contract.
//
// Page layout (every page is one 4096-byte sector):
//   header (48 bytes): checksum u64 (over bytes 8..4095), magic u32, kind u8, level u8,
//   count u16, page number u64, generation u64, used bytes u32, next checksum u64, 4 spare bytes.
//   leaf body: `count` u16 record end offsets, then the records back to back.
//   inner body: `count` children as (page u64, checksum u64), then count - 1 separator keys, each
//   a varint length and an encoded key.
//   overflow body: `used` bytes of an item's canonical encoding; `next checksum` is the checksum of
//   the following page of the chain (the chain occupies consecutive page slots).
//   space map body: a bitmap of the slots the checkpoint references (1 = in use).
//   superblock body: root pointer, counters, the space map's page pointers and the metadata.
//
// Keys are encoded so that comparing two encodings field by field with memcmp gives PrimaryKey's
// order: a flags byte (partition type, has sort key, sort type; bit 7 marks an overflow record),
// then each key value as a varint length and bytes. Strings and binaries are their bytes; numbers
// use an order-preserving form (sign class, biased exponent, digits; negatives inverted).
//
// A leaf record is an encoded key followed either by the item's attributes (the canonical
// Item::encode() form, except that a Payload's size and version are varints: this keeps a typical
// 1 KB workload item under 50 bytes on the page) or, for an overflow record, by the reference to
// its chain: canonical length, first page, page count, first page's checksum and the item's
// content hash (so the content digest can drop it without reading the chain).
#include "model/btree.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "sim/buffer_pool.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

const char* to_string(BTreeStatus status) {
  switch (status) {
    case BTreeStatus::kOk:
      return "ok";
    case BTreeStatus::kNotFound:
      return "not found";
    case BTreeStatus::kCorrupt:
      return "corrupt";
    case BTreeStatus::kIoError:
      return "io error";
    case BTreeStatus::kNoSpace:
      return "no space";
    case BTreeStatus::kQueueFull:
      return "queue full";
  }
  return "?";
}

namespace {

constexpr uint32_t kPageBytes = BTree::kPageBytes;
constexpr uint32_t kHeaderBytes = 48;
constexpr uint32_t kBodyBytes = kPageBytes - kHeaderBytes;
constexpr uint64_t kNoSlot = UINT64_MAX;
constexpr uint64_t kPendingBit = uint64_t{1} << 63;
constexpr uint32_t kMagic = 0x31544244;                    // "DBT1"
constexpr uint64_t kChecksumSeed = 0x6274726565706167ULL;  // "btreepag"
constexpr uint64_t kSuperblockSlots = 2;
constexpr uint64_t kMaxMetadataBytes = 1024;
constexpr uint32_t kSpaceMapBitsPerPage = kBodyBytes * 8;
// Fixed part of the superblock body before the space map pointers and the metadata.
constexpr uint32_t kSuperFixedBytes = 8 + 8 + 1 + 8 + 8 + 8 + 8 + 4 + 4;
// Our assumption: a chain cache of a few items is enough, since only the operation at the head of
// the queue reads chains and consumes what it read at once.
constexpr size_t kChainCacheEntries = 4;

enum PageKind : uint8_t {
  kLeafPage = 1,
  kInnerPage = 2,
  kOverflowPage = 3,
  kSuperPage = 4,
  kSpaceMapPage = 5
};

constexpr size_t kOffChecksum = 0;
constexpr size_t kOffMagic = 8;
constexpr size_t kOffKind = 12;
constexpr size_t kOffLevel = 13;
constexpr size_t kOffCount = 14;
constexpr size_t kOffSlot = 16;
constexpr size_t kOffGeneration = 24;
constexpr size_t kOffUsed = 32;
constexpr size_t kOffNext = 36;

constexpr uint8_t kFlagOverflow = 0x80;
constexpr uint8_t kFlagKeyMask = 0x1F;

enum ValueTag : uint8_t { kTagNull, kTagBool, kTagString, kTagNumber, kTagBinary, kTagPayload };

void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void store_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void store_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t load_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t load_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t load_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
void append_u64(std::vector<uint8_t>& out, uint64_t v) {
  const size_t at = out.size();
  out.resize(at + 8);
  store_u64(out.data() + at, v);
}
void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}
size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
// Unchecked: only for bytes that passed validation (resident records and separators).
uint64_t read_varint(const uint8_t*& p) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const uint8_t byte = *p++;
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return v;
  }
}

// A bounds-checked reader for bytes that came from the disk.
struct Reader {
  const uint8_t* bytes;
  size_t length;
  size_t position = 0;
  bool varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (position >= length) return false;
      const uint8_t byte = bytes[position++];
      *value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool span(uint64_t size, const uint8_t** out) {
    if (size > length - position) return false;
    *out = bytes + position;
    position += size;
    return true;
  }
  bool byte(uint8_t* out) {
    if (position >= length) return false;
    *out = bytes[position++];
    return true;
  }
  bool u64(uint64_t* out) {
    const uint8_t* p;
    if (!span(8, &p)) return false;
    *out = load_u64(p);
    return true;
  }
};

uint64_t page_checksum(const uint8_t* page) {
  return sim::hash_bytes(kChecksumSeed, page + 8, kPageBytes - 8);
}

// Fills in the header and the checksum of a page whose body is already written.
uint64_t seal_page(uint8_t* page, PageKind kind, uint8_t level, uint16_t count, uint64_t slot,
                   uint64_t generation, uint32_t used, uint64_t next_checksum) {
  store_u32(page + kOffMagic, kMagic);
  page[kOffKind] = kind;
  page[kOffLevel] = level;
  store_u16(page + kOffCount, count);
  store_u64(page + kOffSlot, slot);
  store_u64(page + kOffGeneration, generation);
  store_u32(page + kOffUsed, used);
  store_u64(page + kOffNext, next_checksum);
  const uint64_t checksum = page_checksum(page);
  store_u64(page + kOffChecksum, checksum);
  return checksum;
}

// --- Key encoding -------------------------------------------------------------------------------

// Order-preserving bytes of a number: class (1 negative, 2 zero, 3 positive), the exponent biased
// to a big-endian u16, then the significant digits; a negative number inverts the exponent and the
// digits and ends with 0xFF so that a shorter digit string sorts after its extensions.
size_t number_sort_bytes(const Decimal& number, uint8_t* out) {
  if (number.is_zero()) {
    out[0] = 2;
    return 1;
  }
  const std::string text = number.to_string();
  const bool negative = text[0] == '-';
  std::string_view body(text);
  if (negative) body.remove_prefix(1);
  const size_t point = body.find('.');
  const std::string_view integer = body.substr(0, point);
  const std::string_view fraction =
      point == std::string_view::npos ? std::string_view() : body.substr(point + 1);
  std::string digits;
  int32_t exponent = 0;
  if (integer != "0") {
    exponent = static_cast<int32_t>(integer.size());
    digits.append(integer);
    digits.append(fraction);
  } else {
    size_t zeros = 0;
    while (zeros < fraction.size() && fraction[zeros] == '0') ++zeros;
    exponent = -static_cast<int32_t>(zeros);
    digits.append(fraction.substr(zeros));
  }
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  DYN_ASSERT(!digits.empty() && digits.size() <= static_cast<size_t>(kMaxNumberDigits));
  out[0] = negative ? 1 : 3;
  const uint16_t biased = static_cast<uint16_t>(negative ? 0x8000 - exponent : 0x8000 + exponent);
  out[1] = static_cast<uint8_t>(biased >> 8);
  out[2] = static_cast<uint8_t>(biased);
  size_t n = 3;
  for (char c : digits) {
    out[n++] = negative ? static_cast<uint8_t>(0xFF - c) : static_cast<uint8_t>(c);
  }
  if (negative) out[n++] = 0xFF;
  return n;
}

bool decode_number(const uint8_t* p, size_t n, Decimal* out) {
  if (n == 1 && p[0] == 2) {
    *out = Decimal();
    return true;
  }
  if (n < 4 || (p[0] != 1 && p[0] != 3)) return false;
  const bool negative = p[0] == 1;
  const int32_t biased = (p[1] << 8) | p[2];
  const int32_t exponent = negative ? 0x8000 - biased : biased - 0x8000;
  const size_t end = negative ? n - 1 : n;
  if (negative && p[n - 1] != 0xFF) return false;
  std::string text = negative ? "-0." : "0.";
  for (size_t i = 3; i < end; ++i) {
    const char c = static_cast<char>(negative ? 0xFF - p[i] : p[i]);
    if (c < '0' || c > '9') return false;
    text.push_back(c);
  }
  text += "e" + std::to_string(exponent);
  return Decimal::parse(text, out);
}

void append_key_value(std::vector<uint8_t>& out, const KeyValue& value) {
  if (value.type != ScalarType::kNumber) {
    put_varint(out, value.bytes.size());
    out.insert(out.end(), value.bytes.begin(), value.bytes.end());
    return;
  }
  uint8_t buffer[64];
  const size_t n = number_sort_bytes(value.number, buffer);
  put_varint(out, n);
  out.insert(out.end(), buffer, buffer + n);
}

void encode_key(const PrimaryKey& key, std::vector<uint8_t>& out) {
  uint8_t flags = static_cast<uint8_t>(key.partition.type);
  if (key.sort.has_value())
    flags |= 4 | static_cast<uint8_t>(static_cast<uint8_t>(key.sort->type) << 3);
  out.push_back(flags);
  append_key_value(out, key.partition);
  if (key.sort.has_value()) append_key_value(out, *key.sort);
}

// Validated keys only.
size_t key_length(const uint8_t* key) {
  const uint8_t* p = key;
  const uint8_t flags = *p++;
  p += read_varint(p);
  if (flags & 4) p += read_varint(p);
  return static_cast<size_t>(p - key);
}

int compare_field(const uint8_t*& a, const uint8_t*& b) {
  const uint64_t la = read_varint(a);
  const uint64_t lb = read_varint(b);
  const int c = std::memcmp(a, b, std::min(la, lb));
  a += la;
  b += lb;
  if (c != 0) return c < 0 ? -1 : 1;
  return la < lb ? -1 : (la > lb ? 1 : 0);
}

// Compares two validated encoded keys in PrimaryKey order.
int compare_keys(const uint8_t* a, const uint8_t* b) {
  const uint8_t fa = *a++ & kFlagKeyMask;
  const uint8_t fb = *b++ & kFlagKeyMask;
  if ((fa & 3) != (fb & 3)) return (fa & 3) < (fb & 3) ? -1 : 1;
  if (const int c = compare_field(a, b); c != 0) return c;
  const bool sa = (fa & 4) != 0;
  const bool sb = (fb & 4) != 0;
  if (sa != sb) return sa ? 1 : -1;
  if (!sa) return 0;
  if ((fa >> 3) != (fb >> 3)) return (fa >> 3) < (fb >> 3) ? -1 : 1;
  return compare_field(a, b);
}

bool decode_key_value(Reader& reader, uint8_t type, KeyValue* out) {
  uint64_t size;
  const uint8_t* bytes;
  if (type > 2 || !reader.varint(&size) || !reader.span(size, &bytes)) return false;
  out->type = static_cast<ScalarType>(type);
  if (out->type == ScalarType::kNumber) {
    out->bytes.clear();
    return decode_number(bytes, size, &out->number);
  }
  out->bytes.assign(reinterpret_cast<const char*>(bytes), size);
  return true;
}

bool decode_key(Reader& reader, PrimaryKey* out) {
  uint8_t flags;
  if (!reader.byte(&flags)) return false;
  flags &= kFlagKeyMask;
  if (!decode_key_value(reader, flags & 3, &out->partition)) return false;
  if ((flags & 4) == 0) {
    out->sort.reset();
    return true;
  }
  KeyValue sort;
  if (!decode_key_value(reader, (flags >> 3) & 3, &sort)) return false;
  out->sort = std::move(sort);
  return true;
}

PrimaryKey decode_valid_key(const uint8_t* key) {
  Reader reader{key, key_length(key)};
  PrimaryKey out;
  const bool ok = decode_key(reader, &out);
  DYN_ASSERT(ok);
  return out;
}

// Checks an encoded key from the disk; on success *length is its size.
bool validate_key(const uint8_t* p, size_t n, size_t* length) {
  Reader reader{p, n};
  PrimaryKey key;
  if (!decode_key(reader, &key)) return false;
  *length = reader.position;
  return true;
}

// --- Records ------------------------------------------------------------------------------------

void append_record(const Item& item, const std::vector<uint8_t>& key, std::vector<uint8_t>& out) {
  out.insert(out.end(), key.begin(), key.end());
  put_varint(out, item.attributes().size());
  for (const auto& [name, value] : item.attributes()) {
    put_varint(out, name.size());
    out.insert(out.end(), name.begin(), name.end());
    out.push_back(static_cast<uint8_t>(value.index()));
    switch (value.index()) {
      case kTagNull:
        break;
      case kTagBool:
        out.push_back(std::get<bool>(value) ? 1 : 0);
        break;
      case kTagString: {
        const auto& text = std::get<std::string>(value);
        put_varint(out, text.size());
        out.insert(out.end(), text.begin(), text.end());
        break;
      }
      case kTagNumber: {
        const std::string text = std::get<Decimal>(value).to_string();
        put_varint(out, text.size());
        out.insert(out.end(), text.begin(), text.end());
        break;
      }
      case kTagBinary: {
        const auto& raw = std::get<std::vector<uint8_t>>(value);
        put_varint(out, raw.size());
        out.insert(out.end(), raw.begin(), raw.end());
        break;
      }
      case kTagPayload: {
        const Payload& payload = std::get<Payload>(value);
        put_varint(out, payload.size_bytes);
        put_varint(out, payload.version);
        append_u64(out, payload.checksum);
        break;
      }
    }
  }
}

struct OverflowRef {
  uint64_t canonical_bytes = 0;
  uint64_t first = 0;  // first page slot, or kPendingBit | pending id before the first checkpoint
  uint32_t pages = 0;
  uint64_t first_checksum = 0;
  uint64_t item_hash = 0;
  size_t first_offset = 0;  // of `first` within the record, for patching at checkpoint
};

constexpr size_t kOverflowFixedBytes = 8 + 4 + 8 + 8;

bool parse_overflow(const uint8_t* record, size_t length, size_t key_bytes, OverflowRef* out) {
  Reader reader{record, length, key_bytes};
  const uint8_t* fixed;
  if (!reader.varint(&out->canonical_bytes) || !reader.span(kOverflowFixedBytes, &fixed) ||
      reader.position != length) {
    return false;
  }
  out->first_offset = static_cast<size_t>(fixed - record);
  out->first = load_u64(fixed);
  out->pages = load_u32(fixed + 8);
  out->first_checksum = load_u64(fixed + 12);
  out->item_hash = load_u64(fixed + 20);
  return out->canonical_bytes <= kMaxItemSizeBytes * 2 && out->pages >= 1 &&
         out->pages == (out->canonical_bytes + kBodyBytes - 1) / kBodyBytes;
}

void append_canonical_key_value(std::vector<uint8_t>& out, uint8_t type, const uint8_t* bytes,
                                size_t size, bool* ok) {
  out.push_back(type);
  if (type != static_cast<uint8_t>(ScalarType::kNumber)) {
    put_varint(out, size);
    out.insert(out.end(), bytes, bytes + size);
    return;
  }
  Decimal number;
  if (!decode_number(bytes, size, &number)) {
    *ok = false;
    return;
  }
  const std::string text = number.to_string();
  put_varint(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
}

// Records and canonical encodings lay out attributes alike (name, tag, value) except payloads:
// varint size, varint version, u64 checksum in a record; three u64s in a canonical encoding.
enum class AttributeForm : uint8_t { kRecord, kCanonical };

// Reads the attribute count and the attributes in `from` form, appends them in the other form.
// False if they are malformed or do not end exactly at the end of the reader's bytes.
bool convert_attributes(Reader& reader, AttributeForm from, std::vector<uint8_t>& out) {
  uint64_t count;
  if (!reader.varint(&count) || count > reader.length) return false;
  put_varint(out, count);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t size;
    const uint8_t* bytes;
    uint8_t tag;
    if (!reader.varint(&size) || !reader.span(size, &bytes) || !reader.byte(&tag)) return false;
    put_varint(out, size);
    out.insert(out.end(), bytes, bytes + size);
    out.push_back(tag);
    switch (tag) {
      case kTagNull:
        break;
      case kTagBool: {
        uint8_t flag;
        if (!reader.byte(&flag) || flag > 1) return false;
        out.push_back(flag);
        break;
      }
      case kTagString:
      case kTagNumber:
      case kTagBinary:
        if (!reader.varint(&size) || !reader.span(size, &bytes)) return false;
        put_varint(out, size);
        out.insert(out.end(), bytes, bytes + size);
        break;
      case kTagPayload: {
        uint64_t payload_size;
        uint64_t version;
        uint64_t checksum;
        if (from == AttributeForm::kRecord) {
          if (!reader.varint(&payload_size) || !reader.varint(&version) ||
              !reader.u64(&checksum)) {
            return false;
          }
          append_u64(out, payload_size);
          append_u64(out, version);
        } else {
          if (!reader.u64(&payload_size) || !reader.u64(&version) || !reader.u64(&checksum)) {
            return false;
          }
          put_varint(out, payload_size);
          put_varint(out, version);
        }
        append_u64(out, checksum);
        break;
      }
      default:
        return false;
    }
  }
  return reader.position == reader.length;
}

// Rewrites an inline record as Item::encode() would write the item. False if it is malformed.
bool record_to_canonical(const uint8_t* record, size_t length, std::vector<uint8_t>& out) {
  out.clear();
  Reader reader{record, length};
  uint8_t flags;
  if (!reader.byte(&flags) || (flags & kFlagOverflow) != 0) return false;
  bool ok = true;
  uint64_t size;
  const uint8_t* bytes;
  if ((flags & 3) > 2 || !reader.varint(&size) || !reader.span(size, &bytes)) return false;
  append_canonical_key_value(out, flags & 3, bytes, size, &ok);
  out.push_back((flags & 4) ? 1 : 0);
  if (flags & 4) {
    const uint8_t type = (flags >> 3) & 3;
    if (type > 2 || !reader.varint(&size) || !reader.span(size, &bytes)) return false;
    append_canonical_key_value(out, type, bytes, size, &ok);
  }
  if (!ok) return false;
  return convert_attributes(reader, AttributeForm::kRecord, out);
}

// Appends a key value read from a canonical encoding (type byte, length, bytes; numbers as
// decimal text) in the tree's key form (numbers in their order-preserving bytes).
bool append_key_value_from_canonical(Reader& reader, uint8_t* type, std::vector<uint8_t>& out) {
  uint64_t size;
  const uint8_t* bytes;
  if (!reader.byte(type) || *type > 2 || !reader.varint(&size) || !reader.span(size, &bytes)) {
    return false;
  }
  if (*type != static_cast<uint8_t>(ScalarType::kNumber)) {
    put_varint(out, size);
    out.insert(out.end(), bytes, bytes + size);
    return true;
  }
  Decimal number;
  if (!Decimal::parse(std::string_view(reinterpret_cast<const char*>(bytes), size), &number)) {
    return false;
  }
  uint8_t buffer[64];
  const size_t n = number_sort_bytes(number, buffer);
  put_varint(out, n);
  out.insert(out.end(), buffer, buffer + n);
  return true;
}

// The inverse of record_to_canonical: an item's key encoding and inline record built from its
// canonical encoding. False if the bytes are malformed.
bool canonical_to_record(const uint8_t* canonical, size_t length, std::vector<uint8_t>& key,
                         std::vector<uint8_t>& record) {
  key.clear();
  record.clear();
  Reader reader{canonical, length};
  key.push_back(0);  // the flags, once the key's shape is known
  uint8_t partition_type;
  uint8_t has_sort;
  if (!append_key_value_from_canonical(reader, &partition_type, key) || !reader.byte(&has_sort) ||
      has_sort > 1) {
    return false;
  }
  uint8_t flags = partition_type;
  if (has_sort == 1) {
    uint8_t sort_type;
    if (!append_key_value_from_canonical(reader, &sort_type, key)) return false;
    flags |= static_cast<uint8_t>(4 | (sort_type << 3));
  }
  key[0] = flags;
  record.insert(record.end(), key.begin(), key.end());
  return convert_attributes(reader, AttributeForm::kCanonical, record);
}

uint64_t content_hash(const std::vector<uint8_t>& canonical) {
  return sim::hash_bytes(0, canonical.data(), canonical.size());
}

// --- Nodes --------------------------------------------------------------------------------------

struct Node;

// A parent's pointer to a child page: where the child's current image lives and its checksum
// (both kNoSlot/0 until a checkpoint first writes it), and the child itself when resident.
struct ChildRef {
  uint64_t slot = kNoSlot;
  uint64_t checksum = 0;
  std::unique_ptr<Node> node;
  bool corrupt = false;  // the image failed verification: never served
};

struct Node {
  bool leaf = true;
  bool dirty = true;
  uint8_t level = 0;  // 0 for leaves; an inner node's children have level - 1
  bool in_lru = false;
  uint64_t written_generation = 0;  // the checkpoint that last wrote this node's image
  Node* parent = nullptr;
  Node* lru_prev = nullptr;
  Node* lru_next = nullptr;
  // Leaf: records back to back, and the end offset of each.
  std::vector<uint8_t> data;
  std::vector<uint16_t> ends;
  // Inner: children.size() - 1 separators; child i holds keys in [separator i-1, separator i).
  std::vector<ChildRef> children;
  std::vector<std::string> separators;

  size_t count() const { return ends.size(); }
  uint32_t begin(size_t i) const { return i == 0 ? 0 : ends[i - 1]; }
  const uint8_t* record(size_t i) const { return data.data() + begin(i); }
  size_t record_length(size_t i) const { return ends[i] - begin(i); }
  size_t leaf_bytes() const { return 2 * ends.size() + data.size(); }
  size_t inner_bytes() const {
    size_t bytes = 16 * children.size();
    for (const std::string& s : separators) bytes += varint_size(s.size()) + s.size();
    return bytes;
  }
};

const uint8_t* key_bytes(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

// Where to cut a sequence of entries of the given sizes into pieces of at most `capacity` bytes:
// two balanced pieces when they fit, otherwise greedy packing. Returns each piece's first index.
std::vector<size_t> plan_pieces(const std::vector<size_t>& sizes, size_t capacity) {
  size_t total = 0;
  for (size_t s : sizes) total += s;
  size_t best = 0;
  size_t best_max = SIZE_MAX;
  size_t left = 0;
  for (size_t m = 1; m < sizes.size(); ++m) {
    left += sizes[m - 1];
    const size_t right = total - left;
    if (left <= capacity && right <= capacity && std::max(left, right) < best_max) {
      best = m;
      best_max = std::max(left, right);
    }
  }
  if (best != 0) return {0, best};
  std::vector<size_t> starts = {0};
  size_t used = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (used + sizes[i] > capacity && i > starts.back()) {
      starts.push_back(i);
      used = 0;
    }
    used += sizes[i];
  }
  return starts;
}

}  // namespace

// --- The implementation -------------------------------------------------------------------------

struct BTree::Impl {
  enum class Step { kDone, kWait };
  enum class RouteKind { kLeaf, kWait, kCorrupt, kIoError };
  enum class OpType : uint8_t {
    kGet,
    kPut,
    kPutEncoded,
    kErase,
    kScan,
    kClear,
    kCheckpoint,
    kDigest,
    kScrub,
    kRangeDigest,
    kRepair
  };

  struct ScrubRun;
  struct RepairRun;

  struct Route {
    RouteKind kind = RouteKind::kLeaf;
    Node* leaf = nullptr;
    const std::string* lower = nullptr;
    const std::string* upper = nullptr;
  };

  struct Op {
    OpType type = OpType::kGet;
    Item item;
    std::vector<uint8_t> key;  // get/erase: the key; scan/digest: the cursor (empty: the start);
                               // put_encoded: the item's canonical encoding
    uint32_t max_items = 0;
    std::vector<Item> items;
    uint64_t digest = 0;
    uint64_t count = 0;
    CheckpointMetadata metadata;
    GetDone get_done;
    StatusDone status_done;
    ScanDone scan_done;
    DigestDone digest_done;
    // range_digest and repair_range: the range's end (the begin is `key`).
    bool has_end = false;
    std::vector<uint8_t> end_key;
    std::unique_ptr<ScrubRun> scrub;
    std::unique_ptr<RepairRun> repair;
  };

  struct PageImage {
    uint64_t slot = 0;
    std::vector<uint8_t> bytes;
  };

  // A scrub step in progress: the cursor (see ScrubCursor), the budget, what was found, and the
  // last leaf the step read from the disk without installing it (to list its overflow chains).
  struct ScrubRun {
    uint8_t stage = 0;
    uint32_t index = 0;
    std::vector<uint8_t> key;
    int32_t rank = INT32_MIN;
    uint32_t max_pages = 0;
    ScrubStep result;
    std::unique_ptr<Node> leaf_copy;
    uint64_t leaf_copy_slot = kNoSlot;
    std::function<void(ScrubRun&)> done;  // turns the run into the caller's ScrubStep
  };

  // What a repair learned about a leaf outside its range while reading the tree (phase 1), for
  // the leaves that may be evicted again before the recount.
  struct LeafSummary {
    uint64_t digest = 0;
    uint64_t items = 0;
    uint64_t chain_pages = 0;
    std::vector<std::pair<uint64_t, uint32_t>> chains;  // (first slot, pages), written chains only
  };

  struct RepairRun {
    KeyRangeBounds bounds;
    std::vector<uint8_t> cursor;             // phase 1: where the walk over the leaves continues
    std::map<uint64_t, LeafSummary> leaves;  // by slot
  };

  struct CheckpointRun {
    uint64_t generation = 0;
    CheckpointMetadata metadata;
    StatusDone done;
    std::vector<uint64_t> vacated;  // released when the superblock is durable
    std::vector<uint8_t> superblock;
    uint64_t super_slot = 0;
    uint64_t super_checksum = 0;
    uint32_t writes_outstanding = 0;
    BTreeStatus status = BTreeStatus::kOk;
  };

  struct LoadTask {
    bool space_map = false;
    uint32_t space_index = 0;
    ChildRef* ref = nullptr;
    Node* parent = nullptr;
    uint8_t level = 0;
    std::string lower;  // bounds of the page's key range (empty: open)
    std::string upper;
  };

  Impl(BTree& owner_in, sim::Disk& disk_in, BTreeOptions options_in)
      : owner(owner_in), disk(disk_in), options(options_in), token(std::make_shared<Impl*>(this)) {
    DYN_ASSERT(disk.options().sector_size_bytes == kPageBytes);
    DYN_ASSERT(options.region_offset_bytes % kPageBytes == 0);
    DYN_ASSERT(options.region_sectors >= 16);
    DYN_ASSERT(options.region_offset_bytes / kPageBytes + options.region_sectors <=
               disk.capacity_sectors());
    DYN_ASSERT(options.max_pages_per_checkpoint_write >= 1);
    space_map_pages = (options.region_sectors + kSpaceMapBitsPerPage - 1) / kSpaceMapBitsPerPage;
    DYN_ASSERT(kSuperFixedBytes + 16 * space_map_pages + kMaxMetadataBytes <= kBodyBytes);
    allocated.assign((options.region_sectors + 63) / 64, 0);
    releasing.assign(allocated.size(), 0);
    free_slots = options.region_sectors;
    for (uint64_t s = 0; s < kSuperblockSlots; ++s) mark_allocated(s);
    reset_tree();
  }

  ~Impl() {
    *token = nullptr;
    // Unlink the LRU before the nodes go, so no destructor walks a dangling list.
    root = ChildRef();
  }

  BTree& owner;
  sim::Disk& disk;
  BTreeOptions options;
  std::shared_ptr<Impl*> token;  // callbacks check it: the disk may outlive the tree

  ChildRef root;
  uint8_t root_level = 0;
  bool root_known = true;  // false after recovery found no valid superblock over written data
  uint64_t item_count = 0;
  uint64_t content_digest = 0;
  uint64_t pages_in_tree = 1;

  // Checkpoints.
  uint64_t durable_generation = 0;
  uint64_t next_generation = 1;
  int durable_super_slot = -1;
  int corrupt_super_slot = -1;
  bool space_unknown = false;
  // What the durable checkpoint's superblock and space map pages are, for scrub (the current
  // space_map_slots belong to the running checkpoint while one runs). A space map page that failed
  // at rest makes the tree unhealthy until the next checkpoint writes a new space map.
  uint64_t durable_super_checksum = 0;
  std::vector<uint64_t> durable_space_map_slots;
  std::vector<uint64_t> durable_space_map_checksums;
  bool durable_space_map_corrupt = false;
  bool checkpoint_running = false;
  CheckpointRun run;
  std::vector<PageImage> unconfirmed_chains;  // chain pages of a failed checkpoint, rewritten next

  // Page slots: allocated = referenced by some checkpoint (durable or being written) or queued for
  // release; releasing = queued in `vacated` or in the running checkpoint's list.
  uint64_t space_map_pages = 0;
  std::vector<uint64_t> allocated;
  std::vector<uint64_t> releasing;
  uint64_t free_slots = 0;
  uint64_t allocation_hint = 0;
  std::vector<uint64_t> vacated;
  std::vector<uint64_t> space_map_slots;
  std::vector<uint64_t> space_map_checksums;

  // Clean resident leaves, most recently used first.
  Node* lru_head = nullptr;
  Node* lru_tail = nullptr;
  uint64_t lru_size = 0;

  // Overflow items not yet written, by pending id; chains read recently; chains that failed.
  std::map<uint64_t, std::vector<uint8_t>> pending_chains;
  uint64_t next_pending_id = 1;
  std::map<uint64_t, std::vector<uint8_t>> chain_cache;
  std::deque<uint64_t> chain_cache_order;
  std::set<uint64_t> corrupt_chains;

  // Operations and reads.
  std::deque<Op> queue;
  bool in_pump = false;
  bool recovering = false;
  bool read_in_flight = false;
  uint64_t read_slot = 0;
  uint64_t read_pages = 0;
  bool read_ready = false;
  sim::IoStatus read_status = sim::IoStatus::kOk;
  std::vector<uint8_t> read_data;

  // Recovery.
  std::deque<LoadTask> load_tasks;
  BTreeRecovery recovery;
  RecoverDone recover_done;

  BTreeStats counters;

  // Scratch buffers reused by every operation, so the resident path does not allocate.
  std::vector<uint8_t> key_scratch;
  std::vector<uint8_t> record_scratch;
  std::vector<uint8_t> canonical_scratch;

  // --- Slots
  // --------------------------------------------------------------------------------------

  bool is_allocated(uint64_t s) const { return (allocated[s / 64] >> (s % 64)) & 1; }
  void mark_allocated(uint64_t s) {
    DYN_ASSERT(!is_allocated(s));
    allocated[s / 64] |= uint64_t{1} << (s % 64);
    --free_slots;
  }
  uint64_t allocate_slot() {
    for (uint64_t w = allocation_hint / 64; w < allocated.size(); ++w) {
      if (allocated[w] == ~uint64_t{0}) continue;
      const uint64_t s = w * 64 + static_cast<uint64_t>(__builtin_ctzll(~allocated[w]));
      if (s >= options.region_sectors) break;
      mark_allocated(s);
      allocation_hint = s;
      return s;
    }
    DYN_ASSERT_MSG(false, "allocate_slot called without a free slot");
    return kNoSlot;
  }
  // First fit of `count` consecutive free slots; kNoSlot if the region is too fragmented.
  uint64_t allocate_run(uint64_t count) {
    uint64_t run_start = 0;
    uint64_t run_length = 0;
    for (uint64_t s = kSuperblockSlots; s < options.region_sectors; ++s) {
      if (is_allocated(s)) {
        run_length = 0;
        continue;
      }
      if (run_length == 0) run_start = s;
      if (++run_length == count) {
        for (uint64_t i = 0; i < count; ++i) mark_allocated(run_start + i);
        return run_start;
      }
    }
    return kNoSlot;
  }
  void free_slot_now(uint64_t s) {
    DYN_ASSERT(is_allocated(s));
    allocated[s / 64] &= ~(uint64_t{1} << (s % 64));
    ++free_slots;
    allocation_hint = std::min(allocation_hint, s);
  }
  bool is_releasing(uint64_t s) const { return (releasing[s / 64] >> (s % 64)) & 1; }
  // The slot's image is no longer part of the tree; the durable checkpoint may still use it, so
  // it becomes free only once the next checkpoint is durable.
  void vacate(uint64_t s) {
    DYN_ASSERT(s >= kSuperblockSlots && s < options.region_sectors && is_allocated(s));
    DYN_ASSERT_MSG(!is_releasing(s), "a page slot was vacated twice");
    releasing[s / 64] |= uint64_t{1} << (s % 64);
    vacated.push_back(s);
  }
  void release(uint64_t s) {
    releasing[s / 64] &= ~(uint64_t{1} << (s % 64));
    free_slot_now(s);
  }
  uint64_t disk_offset(uint64_t slot) const {
    return options.region_offset_bytes + slot * kPageBytes;
  }
  // Tells the disk that the pages in these slots failed verification (see Disk::
  // report_verification_failure); the disk keeps it for checkers and acts on nothing.
  void report_failure(uint64_t slot, uint64_t pages, const char* by) {
    disk.report_verification_failure(options.region_offset_bytes / kPageBytes + slot, pages, by);
  }
  uint64_t usable_tree_pages() const {
    return options.region_sectors - kSuperblockSlots - space_map_pages;
  }

  // --- LRU
  // ----------------------------------------------------------------------------------------

  void lru_remove(Node* n) {
    if (!n->in_lru) return;
    (n->lru_prev ? n->lru_prev->lru_next : lru_head) = n->lru_next;
    (n->lru_next ? n->lru_next->lru_prev : lru_tail) = n->lru_prev;
    n->lru_prev = n->lru_next = nullptr;
    n->in_lru = false;
    --lru_size;
  }
  void lru_push_front(Node* n) {
    DYN_ASSERT(!n->in_lru && n->leaf && !n->dirty);
    n->lru_prev = nullptr;
    n->lru_next = lru_head;
    (lru_head ? lru_head->lru_prev : lru_tail) = n;
    lru_head = n;
    n->in_lru = true;
    ++lru_size;
  }
  void touch(Node* n) {
    if (n->in_lru && lru_head != n) {
      lru_remove(n);
      lru_push_front(n);
    }
  }
  bool evictable(const Node* n) const {
    return !n->dirty && n->written_generation <= durable_generation;
  }
  ChildRef& ref_of(Node* n) {
    if (n->parent == nullptr) {
      DYN_ASSERT(root.node.get() == n);
      return root;
    }
    return n->parent->children[index_in_parent(n)];
  }
  static size_t index_in_parent(const Node* n) {
    const Node* p = n->parent;
    for (size_t i = 0; i < p->children.size(); ++i) {
      if (p->children[i].node.get() == n) return i;
    }
    DYN_ASSERT_MSG(false, "a node is missing from its parent");
    return 0;
  }
  void evict(Node* n) {
    lru_remove(n);
    ref_of(n).node.reset();
  }
  void maybe_evict() {
    while (lru_size > options.cache_pages && evictable(lru_tail)) evict(lru_tail);
  }

  // --- Tree shape
  // -----------------------------------------------------------------------------------

  void drop_subtree_lru(Node* n) {
    lru_remove(n);
    for (ChildRef& c : n->children) {
      if (c.node) drop_subtree_lru(c.node.get());
    }
  }

  void reset_tree() {
    if (root.node) drop_subtree_lru(root.node.get());
    root = ChildRef();
    root.node = std::make_unique<Node>();
    root_level = 0;
    root_known = true;
    pages_in_tree = 1;
    item_count = 0;
    content_digest = 0;
  }

  void mark_dirty(Node* n) {
    while (n != nullptr && !n->dirty) {
      n->dirty = true;
      lru_remove(n);
      n = n->parent;
    }
  }

  size_t child_index(const Node* n, const uint8_t* key) const {
    if (key == nullptr) return 0;
    size_t lo = 0;
    size_t hi = n->separators.size();
    while (lo < hi) {  // the number of separators <= key
      const size_t mid = (lo + hi) / 2;
      if (compare_keys(key_bytes(n->separators[mid]), key) <= 0) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  // The first record with a key >= `key` (nullptr: the first record).
  static size_t leaf_lower_bound(const Node* leaf, const uint8_t* key, bool* found) {
    *found = false;
    if (key == nullptr) return 0;
    size_t lo = 0;
    size_t hi = leaf->count();
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      const int c = compare_keys(leaf->record(mid), key);
      if (c < 0) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    *found = lo < leaf->count() && compare_keys(leaf->record(lo), key) == 0;
    return lo;
  }

  void mark_unhealthy(const uint8_t* lower, const uint8_t* upper) {
    KeyRangeBounds range;
    if (lower != nullptr) range.begin = decode_valid_key(lower);
    if (upper != nullptr) range.end = decode_valid_key(upper);
    for (const KeyRangeBounds& r : owner.unhealthy_) {
      if (r.begin == range.begin && r.end == range.end) return;
    }
    owner.unhealthy_.push_back(std::move(range));
  }

  // Verifies a page image against what its parent (or the superblock) says about it.
  bool verify_page(const uint8_t* page, uint64_t slot, PageKind kind, bool check_expected,
                   uint64_t expected_checksum) const {
    if (options.plant_skip_page_verification) return page[kOffKind] == kind;
    const uint64_t stored = load_u64(page + kOffChecksum);
    return stored == page_checksum(page) && load_u32(page + kOffMagic) == kMagic &&
           page[kOffKind] == kind && load_u64(page + kOffSlot) == slot &&
           (!check_expected || stored == expected_checksum);
  }

  // Builds a node from a verified page image; nullptr if its content is malformed.
  std::unique_ptr<Node> parse_node(const uint8_t* page, uint8_t level) {
    auto node = std::make_unique<Node>();
    node->dirty = false;
    node->written_generation = 0;
    node->level = level;
    const uint16_t count = load_u16(page + kOffCount);
    const uint8_t* body = page + kHeaderBytes;
    if (page[kOffLevel] != level) return nullptr;
    if (level == 0) {
      const uint32_t used = load_u32(page + kOffUsed);
      if (2 * size_t{count} + used > kBodyBytes) return nullptr;
      node->ends.resize(count);
      uint32_t previous = 0;
      for (size_t i = 0; i < count; ++i) {
        node->ends[i] = load_u16(body + 2 * i);
        if (node->ends[i] <= previous || node->ends[i] > used) return nullptr;
        previous = node->ends[i];
      }
      if (count > 0 && previous != used) return nullptr;
      if (count == 0 && used != 0) return nullptr;
      node->data.assign(body + 2 * count, body + 2 * count + used);
      for (size_t i = 0; i < count; ++i) {
        if (!validate_record(node->record(i), node->record_length(i))) return nullptr;
        if (i > 0 && compare_keys(node->record(i - 1), node->record(i)) >= 0) return nullptr;
      }
      return node;
    }
    node->leaf = false;
    if (count < 1 || 16 * size_t{count} > kBodyBytes) return nullptr;
    node->children.resize(count);
    for (size_t i = 0; i < count; ++i) {
      node->children[i].slot = load_u64(body + 16 * i);
      node->children[i].checksum = load_u64(body + 16 * i + 8);
      if (node->children[i].slot < kSuperblockSlots ||
          node->children[i].slot >= options.region_sectors) {
        return nullptr;
      }
    }
    Reader reader{body, kBodyBytes, 16 * size_t{count}};
    for (size_t i = 0; i + 1 < count; ++i) {
      uint64_t size;
      const uint8_t* bytes;
      size_t length;
      if (!reader.varint(&size) || !reader.span(size, &bytes) ||
          !validate_key(bytes, size, &length) || length != size) {
        return nullptr;
      }
      node->separators.emplace_back(reinterpret_cast<const char*>(bytes), size);
      if (i > 0 && compare_keys(key_bytes(node->separators[i - 1]), bytes) >= 0) return nullptr;
    }
    if (load_u32(page + kOffUsed) != reader.position) return nullptr;
    return node;
  }

  bool validate_record(const uint8_t* record, size_t length) {
    size_t key_length_bytes;
    if (!validate_key(record, length, &key_length_bytes)) return false;
    if (record[0] & kFlagOverflow) {
      OverflowRef ref;
      return parse_overflow(record, length, key_length_bytes, &ref) &&
             (ref.first & kPendingBit) == 0 && ref.first >= kSuperblockSlots &&
             ref.first + ref.pages <= options.region_sectors;
    }
    return record_to_canonical(record, length, canonical_scratch);
  }

  void request_read(uint64_t slot, uint64_t pages) {
    DYN_ASSERT(!read_in_flight);
    read_in_flight = true;
    read_ready = false;
    read_slot = slot;
    read_pages = pages;
    disk.read(disk_offset(slot), pages * kPageBytes, [t = token](sim::ReadResult result) {
      if (Impl* self = *t) self->on_read_done(std::move(result));
    });
  }

  void on_read_done(sim::ReadResult result) {
    read_in_flight = false;
    read_ready = true;
    read_status = result.status;
    read_data = std::move(result.data);
    if (result.status == sim::IoStatus::kOk) counters.page_reads += read_pages;
    pump();
  }

  bool take_read(uint64_t slot, uint64_t pages) {
    if (!read_ready || read_slot != slot || read_pages != pages) return false;
    read_ready = false;
    return true;
  }

  // Loads the child behind `ref` if its read has arrived; otherwise asks for it.
  RouteKind load_child(ChildRef& ref, Node* parent, const std::string* lower,
                       const std::string* upper) {
    if (!take_read(ref.slot, 1)) {
      request_read(ref.slot, 1);
      return RouteKind::kWait;
    }
    if (read_status != sim::IoStatus::kOk) return RouteKind::kIoError;
    const uint8_t level = parent == nullptr ? root_level : static_cast<uint8_t>(parent->level - 1);
    std::unique_ptr<Node> node;
    if (verify_page(read_data.data(), ref.slot, level == 0 ? kLeafPage : kInnerPage, true,
                    ref.checksum)) {
      node = parse_node(read_data.data(), level);
    }
    if (!node) {
      ref.corrupt = true;
      ++counters.verification_failures;
      report_failure(ref.slot, 1, "read");
      mark_unhealthy(lower ? key_bytes(*lower) : nullptr, upper ? key_bytes(*upper) : nullptr);
      return RouteKind::kCorrupt;
    }
    node->parent = parent;
    node->written_generation = durable_generation;
    ref.node = std::move(node);
    if (ref.node->leaf) lru_push_front(ref.node.get());
    return RouteKind::kLeaf;
  }

  Route descend(const uint8_t* key) {
    Route route;
    if (!root_known) {
      route.kind = RouteKind::kCorrupt;
      return route;
    }
    ChildRef* ref = &root;
    Node* parent = nullptr;
    for (;;) {
      if (ref->corrupt) {
        route.kind = RouteKind::kCorrupt;
        return route;
      }
      if (!ref->node) {
        const RouteKind kind = load_child(*ref, parent, route.lower, route.upper);
        if (kind != RouteKind::kLeaf) {
          route.kind = kind;
          return route;
        }
      }
      Node* n = ref->node.get();
      if (n->leaf) {
        touch(n);
        route.leaf = n;
        return route;
      }
      const size_t i = child_index(n, key);
      if (i > 0) route.lower = &n->separators[i - 1];
      if (i < n->separators.size()) route.upper = &n->separators[i];
      parent = n;
      ref = &n->children[i];
    }
  }

  static BTreeStatus route_status(RouteKind kind) {
    return kind == RouteKind::kCorrupt ? BTreeStatus::kCorrupt : BTreeStatus::kIoError;
  }

  // --- Overflow chains
  // ----------------------------------------------------------------------------

  enum class Fetch { kReady, kWait, kCorrupt, kIoError };

  Fetch fetch_chain(const OverflowRef& ref, const uint8_t* key, const std::string* upper,
                    const std::vector<uint8_t>** out) {
    if (ref.first & kPendingBit) {
      *out = &pending_chains.at(ref.first & ~kPendingBit);
      return Fetch::kReady;
    }
    if (corrupt_chains.contains(ref.first)) return Fetch::kCorrupt;
    if (auto it = chain_cache.find(ref.first); it != chain_cache.end()) {
      *out = &it->second;
      return Fetch::kReady;
    }
    if (!take_read(ref.first, ref.pages)) {
      request_read(ref.first, ref.pages);
      return Fetch::kWait;
    }
    if (read_status != sim::IoStatus::kOk) return Fetch::kIoError;
    std::vector<uint8_t> bytes;
    if (!verify_chain(ref, &bytes, "read")) {
      corrupt_chains.insert(ref.first);
      ++counters.verification_failures;
      mark_unhealthy(key, upper ? key_bytes(*upper) : nullptr);
      return Fetch::kCorrupt;
    }
    if (chain_cache.size() >= kChainCacheEntries) {
      chain_cache.erase(chain_cache_order.front());
      chain_cache_order.pop_front();
    }
    chain_cache_order.push_back(ref.first);
    auto [it, inserted] = chain_cache.emplace(ref.first, std::move(bytes));
    DYN_ASSERT(inserted);
    *out = &it->second;
    return Fetch::kReady;
  }

  // Verifies a chain just read (read_data) and gathers its bytes. On failure, reports the page
  // that failed to the disk under `by` (the whole chain if only the assembled item is wrong).
  bool verify_chain(const OverflowRef& ref, std::vector<uint8_t>* out, const char* by) {
    uint64_t expected = ref.first_checksum;
    for (uint32_t k = 0; k < ref.pages; ++k) {
      const uint8_t* page = read_data.data() + size_t{k} * kPageBytes;
      const bool page_ok = verify_page(page, ref.first + k, kOverflowPage, true, expected) &&
                           load_u32(page + kOffUsed) <= kBodyBytes;
      if (!page_ok) {
        report_failure(ref.first + k, 1, by);
        return false;
      }
      const uint32_t used = load_u32(page + kOffUsed);
      out->insert(out->end(), page + kHeaderBytes, page + kHeaderBytes + used);
      expected = load_u64(page + kOffNext);
    }
    const bool ok = out->size() == ref.canonical_bytes &&
                    (options.plant_skip_page_verification || content_hash(*out) == ref.item_hash);
    if (!ok) report_failure(ref.first, ref.pages, by);
    return ok;
  }

  void drop_chain(const OverflowRef& ref) {
    pages_in_tree -= ref.pages;
    if (ref.first & kPendingBit) {
      pending_chains.erase(ref.first & ~kPendingBit);
      return;
    }
    for (uint32_t k = 0; k < ref.pages; ++k) vacate(ref.first + k);
    if (chain_cache.erase(ref.first) > 0) {
      chain_cache_order.erase(
          std::find(chain_cache_order.begin(), chain_cache_order.end(), ref.first));
    }
    corrupt_chains.erase(ref.first);
  }

  OverflowRef overflow_of(const Node* leaf, size_t i) const {
    OverflowRef ref;
    const uint8_t* record = leaf->record(i);
    const bool ok = parse_overflow(record, leaf->record_length(i), key_length(record), &ref);
    DYN_ASSERT(ok);
    return ref;
  }

  // The content hash of record i (its canonical encoding's hash).
  uint64_t record_hash(const Node* leaf, size_t i) {
    if (leaf->record(i)[0] & kFlagOverflow) return overflow_of(leaf, i).item_hash;
    const bool ok = record_to_canonical(leaf->record(i), leaf->record_length(i), canonical_scratch);
    DYN_ASSERT(ok);
    return content_hash(canonical_scratch);
  }

  // Record i's canonical encoding (inline) or chain; kReady sets *out.
  Fetch canonical_of(const Node* leaf, size_t i, const std::string* upper,
                     const std::vector<uint8_t>** out) {
    const uint8_t* record = leaf->record(i);
    if (record[0] & kFlagOverflow) return fetch_chain(overflow_of(leaf, i), record, upper, out);
    const bool ok = record_to_canonical(record, leaf->record_length(i), canonical_scratch);
    DYN_ASSERT(ok);
    *out = &canonical_scratch;
    return Fetch::kReady;
  }

  static BTreeStatus fetch_status(Fetch f) {
    return f == Fetch::kCorrupt ? BTreeStatus::kCorrupt : BTreeStatus::kIoError;
  }

  // --- Leaf edits
  // ---------------------------------------------------------------------------------

  static void leaf_replace(Node* leaf, size_t i, const uint8_t* record, size_t length) {
    const uint32_t begin = leaf->begin(i);
    const size_t old_length = leaf->record_length(i);
    if (length > old_length) {
      leaf->data.insert(leaf->data.begin() + begin + old_length, length - old_length, 0);
    } else if (length < old_length) {
      leaf->data.erase(leaf->data.begin() + begin + length,
                       leaf->data.begin() + begin + old_length);
    }
    std::memcpy(leaf->data.data() + begin, record, length);
    const auto delta = static_cast<int64_t>(length) - static_cast<int64_t>(old_length);
    for (size_t k = i; k < leaf->count(); ++k) {
      leaf->ends[k] = static_cast<uint16_t>(leaf->ends[k] + delta);
    }
  }
  static void leaf_insert(Node* leaf, size_t i, const uint8_t* record, size_t length) {
    const uint32_t begin = leaf->begin(i);
    leaf->data.insert(leaf->data.begin() + begin, record, record + length);
    leaf->ends.insert(leaf->ends.begin() + static_cast<std::ptrdiff_t>(i),
                      static_cast<uint16_t>(begin));
    for (size_t k = i; k < leaf->count(); ++k) {
      leaf->ends[k] = static_cast<uint16_t>(leaf->ends[k] + length);
    }
  }
  static void leaf_remove(Node* leaf, size_t i) {
    const uint32_t begin = leaf->begin(i);
    const size_t length = leaf->record_length(i);
    leaf->data.erase(leaf->data.begin() + begin, leaf->data.begin() + begin + length);
    leaf->ends.erase(leaf->ends.begin() + static_cast<std::ptrdiff_t>(i));
    for (size_t k = i; k < leaf->count(); ++k) {
      leaf->ends[k] = static_cast<uint16_t>(leaf->ends[k] - length);
    }
  }

  static std::string separator_of(const uint8_t* record) {
    std::string key(reinterpret_cast<const char*>(record), key_length(record));
    key[0] = static_cast<char>(static_cast<uint8_t>(key[0]) & kFlagKeyMask);
    return key;
  }

  // Gives `node` new right siblings (with their lower bound separators), growing the tree upward.
  void insert_siblings(Node* node, std::vector<std::pair<std::string, std::unique_ptr<Node>>> add) {
    if (node->parent == nullptr) {
      auto new_root = std::make_unique<Node>();
      new_root->leaf = false;
      new_root->level = static_cast<uint8_t>(node->level + 1);
      new_root->children.push_back(std::move(root));
      root = ChildRef();
      node->parent = new_root.get();
      root.node = std::move(new_root);
      root_level = root.node->level;
      ++pages_in_tree;
    }
    Node* parent = node->parent;
    DYN_ASSERT(parent->dirty);
    const size_t at = index_in_parent(node) + 1;
    for (size_t k = 0; k < add.size(); ++k) {
      add[k].second->parent = parent;
      ChildRef ref;
      ref.node = std::move(add[k].second);
      parent->children.insert(parent->children.begin() + static_cast<std::ptrdiff_t>(at + k),
                              std::move(ref));
      parent->separators.insert(
          parent->separators.begin() + static_cast<std::ptrdiff_t>(at + k - 1),
          std::move(add[k].first));
      ++pages_in_tree;
    }
    if (parent->inner_bytes() > kBodyBytes) split_inner(parent);
  }

  void split_leaf(Node* leaf) {
    std::vector<size_t> sizes(leaf->count());
    for (size_t i = 0; i < leaf->count(); ++i) sizes[i] = 2 + leaf->record_length(i);
    const std::vector<size_t> starts = plan_pieces(sizes, kBodyBytes);
    std::vector<std::pair<std::string, std::unique_ptr<Node>>> add;
    for (size_t k = 1; k < starts.size(); ++k) {
      const size_t first = starts[k];
      const size_t last = k + 1 < starts.size() ? starts[k + 1] : leaf->count();
      auto piece = std::make_unique<Node>();
      const uint32_t base = leaf->begin(first);
      piece->data.assign(leaf->data.begin() + base, leaf->data.begin() + leaf->ends[last - 1]);
      for (size_t i = first; i < last; ++i) {
        piece->ends.push_back(static_cast<uint16_t>(leaf->ends[i] - base));
      }
      add.emplace_back(separator_of(leaf->record(first)), std::move(piece));
    }
    const size_t keep = starts.size() > 1 ? starts[1] : leaf->count();
    leaf->data.resize(leaf->begin(keep));
    leaf->ends.resize(keep);
    insert_siblings(leaf, std::move(add));
  }

  void split_inner(Node* node) {
    std::vector<size_t> sizes(node->children.size());
    for (size_t i = 0; i < sizes.size(); ++i) {
      sizes[i] = 16 + (i == 0 ? 0
                              : varint_size(node->separators[i - 1].size()) +
                                    node->separators[i - 1].size());
    }
    const std::vector<size_t> starts = plan_pieces(sizes, kBodyBytes);
    std::vector<std::pair<std::string, std::unique_ptr<Node>>> add;
    for (size_t k = 1; k < starts.size(); ++k) {
      const size_t first = starts[k];
      const size_t last = k + 1 < starts.size() ? starts[k + 1] : node->children.size();
      auto piece = std::make_unique<Node>();
      piece->leaf = false;
      piece->level = node->level;
      for (size_t i = first; i < last; ++i) {
        piece->children.push_back(std::move(node->children[i]));
        if (piece->children.back().node) piece->children.back().node->parent = piece.get();
        if (i > first) piece->separators.push_back(std::move(node->separators[i - 1]));
      }
      add.emplace_back(std::move(node->separators[first - 1]), std::move(piece));
    }
    const size_t keep = starts.size() > 1 ? starts[1] : node->children.size();
    node->children.resize(keep);
    node->separators.resize(keep - 1);
    insert_siblings(node, std::move(add));
  }

  // Removes a child (and its lower separator) from its parent, cascading upward.
  void remove_node(Node* node) {
    Node* parent = node->parent;
    DYN_ASSERT(parent != nullptr && parent->dirty);
    const size_t i = index_in_parent(node);
    ChildRef& ref = parent->children[i];
    if (ref.slot != kNoSlot) vacate(ref.slot);
    drop_subtree_lru(node);
    --pages_in_tree;
    parent->children.erase(parent->children.begin() + static_cast<std::ptrdiff_t>(i));
    if (i > 0) {
      parent->separators.erase(parent->separators.begin() + static_cast<std::ptrdiff_t>(i - 1));
    } else if (!parent->separators.empty()) {
      parent->separators.erase(parent->separators.begin());
    }
    if (parent->children.empty()) {
      if (parent->parent != nullptr) {
        remove_node(parent);
      } else {
        if (root.slot != kNoSlot) vacate(root.slot);
        root = ChildRef();
        root.node = std::make_unique<Node>();
        root_level = 0;
      }
      return;
    }
    if (parent->parent == nullptr && parent->children.size() == 1) {
      // A root with one child: the child becomes the root.
      if (root.slot != kNoSlot) vacate(root.slot);
      ChildRef child = std::move(parent->children[0]);
      root_level = static_cast<uint8_t>(parent->level - 1);
      root = std::move(child);
      if (root.node) root.node->parent = nullptr;
      --pages_in_tree;
    }
  }

  // After an erase: frees an empty leaf, or merges a small one into a resident sibling.
  void rebalance(Node* leaf) {
    Node* parent = leaf->parent;
    if (parent == nullptr) return;
    if (leaf->count() == 0) {
      remove_node(leaf);
      return;
    }
    if (leaf->leaf_bytes() >= kBodyBytes / 4) return;
    const size_t i = index_in_parent(leaf);
    auto mergeable = [&](size_t k) {
      const ChildRef& c = parent->children[k];
      return c.node && !c.corrupt &&
             c.node->leaf_bytes() + leaf->leaf_bytes() <= kBodyBytes * 3 / 4;
    };
    if (i > 0 && mergeable(i - 1)) {
      merge_leaves(parent->children[i - 1].node.get(), leaf);
    } else if (i + 1 < parent->children.size() && mergeable(i + 1)) {
      merge_leaves(leaf, parent->children[i + 1].node.get());
    }
  }

  void merge_leaves(Node* left, Node* right) {
    mark_dirty(left);
    mark_dirty(right);
    const auto base = static_cast<uint16_t>(left->data.size());
    left->data.insert(left->data.end(), right->data.begin(), right->data.end());
    for (uint16_t end : right->ends) left->ends.push_back(static_cast<uint16_t>(base + end));
    remove_node(right);
  }

  // --- Operations
  // ---------------------------------------------------------------------------------

  Step run_put(Item& item, StatusDone& done) {
    key_scratch.clear();
    encode_key(item.key(), key_scratch);
    const Route route = descend(key_scratch.data());
    if (route.kind == RouteKind::kWait) return Step::kWait;
    if (route.kind != RouteKind::kLeaf) {
      done(route_status(route.kind));
      return Step::kDone;
    }
    record_scratch.clear();
    append_record(item, key_scratch, record_scratch);
    if (record_scratch.size() <= kMaxInlineRecordBytes) {
      const bool ok =
          record_to_canonical(record_scratch.data(), record_scratch.size(), canonical_scratch);
      DYN_ASSERT(ok);
      return put_record(route.leaf, content_hash(canonical_scratch), nullptr, done);
    }
    std::vector<uint8_t> canonical = item.encode();
    return put_record(route.leaf, content_hash(canonical), &canonical, done);
  }

  Step run_put_encoded(std::span<const uint8_t> canonical, StatusDone& done) {
    const bool ok =
        canonical_to_record(canonical.data(), canonical.size(), key_scratch, record_scratch);
    DYN_ASSERT_MSG(ok, "put_encoded: not an item encoding");
    const Route route = descend(key_scratch.data());
    if (route.kind == RouteKind::kWait) return Step::kWait;
    if (route.kind != RouteKind::kLeaf) {
      done(route_status(route.kind));
      return Step::kDone;
    }
    const uint64_t hash = sim::hash_bytes(0, canonical.data(), canonical.size());
    if (record_scratch.size() <= kMaxInlineRecordBytes) {
      return put_record(route.leaf, hash, nullptr, done);
    }
    std::vector<uint8_t> chain(canonical.begin(), canonical.end());
    return put_record(route.leaf, hash, &chain, done);
  }

  // The common tail of both puts, in `leaf` (where key_scratch belongs): record_scratch holds the
  // inline record, or `overflow` holds the canonical encoding of an item stored in a chain.
  // `new_hash` is the content hash of the item's canonical encoding.
  Step put_record(Node* leaf, uint64_t new_hash, std::vector<uint8_t>* overflow,
                  StatusDone& done) {
    uint32_t new_chain_pages = 0;
    if (overflow != nullptr) {
      new_chain_pages = static_cast<uint32_t>((overflow->size() + kBodyBytes - 1) / kBodyBytes);
      if (pages_in_tree + new_chain_pages + root_level + 2 > usable_tree_pages()) {
        done(BTreeStatus::kNoSpace);
        return Step::kDone;
      }
      const uint64_t id = next_pending_id++;
      record_scratch.assign(key_scratch.begin(), key_scratch.end());
      record_scratch[0] |= kFlagOverflow;
      put_varint(record_scratch, overflow->size());
      append_u64(record_scratch, kPendingBit | id);
      const size_t at = record_scratch.size();
      record_scratch.resize(at + 4);
      store_u32(record_scratch.data() + at, new_chain_pages);
      append_u64(record_scratch, 0);
      append_u64(record_scratch, new_hash);
      pending_chains.emplace(id, std::move(*overflow));
    }
    if (pages_in_tree + new_chain_pages + root_level + 2 > usable_tree_pages()) {
      done(BTreeStatus::kNoSpace);
      return Step::kDone;
    }
    bool found;
    const size_t i = leaf_lower_bound(leaf, key_scratch.data(), &found);
    mark_dirty(leaf);
    if (found) {
      content_digest -= record_hash(leaf, i);
      if (leaf->record(i)[0] & kFlagOverflow) drop_chain(overflow_of(leaf, i));
      leaf_replace(leaf, i, record_scratch.data(), record_scratch.size());
    } else {
      leaf_insert(leaf, i, record_scratch.data(), record_scratch.size());
      ++item_count;
    }
    content_digest += new_hash;
    pages_in_tree += new_chain_pages;
    if (leaf->leaf_bytes() > kBodyBytes) split_leaf(leaf);
    done(BTreeStatus::kOk);
    return Step::kDone;
  }

  Step run_get(const uint8_t* key, GetDone& done) {
    const Route route = descend(key);
    if (route.kind == RouteKind::kWait) return Step::kWait;
    if (route.kind != RouteKind::kLeaf) {
      done(route_status(route.kind), std::nullopt);
      return Step::kDone;
    }
    bool found;
    const size_t i = leaf_lower_bound(route.leaf, key, &found);
    if (!found) {
      done(BTreeStatus::kNotFound, std::nullopt);
      return Step::kDone;
    }
    const std::vector<uint8_t>* canonical = nullptr;
    const Fetch fetch = canonical_of(route.leaf, i, route.upper, &canonical);
    if (fetch == Fetch::kWait) return Step::kWait;
    if (fetch != Fetch::kReady) {
      done(fetch_status(fetch), std::nullopt);
      return Step::kDone;
    }
    Item item;
    const bool ok = Item::decode(canonical->data(), canonical->size(), &item);
    if (!ok) {
      // Only reachable when verification is skipped (the planted bug): say so rather than crash.
      done(BTreeStatus::kCorrupt, std::nullopt);
      return Step::kDone;
    }
    done(BTreeStatus::kOk, std::move(item));
    return Step::kDone;
  }

  Step run_erase(const uint8_t* key, StatusDone& done) {
    const Route route = descend(key);
    if (route.kind == RouteKind::kWait) return Step::kWait;
    if (route.kind != RouteKind::kLeaf) {
      done(route_status(route.kind));
      return Step::kDone;
    }
    Node* leaf = route.leaf;
    bool found;
    const size_t i = leaf_lower_bound(leaf, key, &found);
    if (!found) {
      done(BTreeStatus::kNotFound);
      return Step::kDone;
    }
    mark_dirty(leaf);
    content_digest -= record_hash(leaf, i);
    if (leaf->record(i)[0] & kFlagOverflow) drop_chain(overflow_of(leaf, i));
    leaf_remove(leaf, i);
    --item_count;
    rebalance(leaf);
    done(BTreeStatus::kOk);
    return Step::kDone;
  }

  // Walks items from the op's cursor in key order, calling `visit(canonical)` for each; false
  // from visit stops the walk (with the cursor at the next item). Used by scan and digest.
  template <typename Visit>
  Step walk(Op& op, BTreeStatus* status, bool* at_end, Visit visit) {
    *at_end = false;
    for (;;) {
      const uint8_t* cursor = op.key.empty() ? nullptr : op.key.data();
      const Route route = descend(cursor);
      if (route.kind == RouteKind::kWait) return Step::kWait;
      if (route.kind != RouteKind::kLeaf) {
        *status = route_status(route.kind);
        return Step::kDone;
      }
      bool found;
      size_t i = leaf_lower_bound(route.leaf, cursor, &found);
      for (; i < route.leaf->count(); ++i) {
        const std::vector<uint8_t>* canonical = nullptr;
        const Fetch fetch = canonical_of(route.leaf, i, route.upper, &canonical);
        if (fetch == Fetch::kWait || fetch != Fetch::kReady) {
          op.key.assign(route.leaf->record(i),
                        route.leaf->record(i) + key_length(route.leaf->record(i)));
          op.key[0] &= kFlagKeyMask;
          if (fetch == Fetch::kWait) return Step::kWait;
          *status = fetch_status(fetch);
          return Step::kDone;
        }
        if (!visit(*canonical)) {
          *status = BTreeStatus::kOk;
          if (i + 1 < route.leaf->count()) {
            const uint8_t* next = route.leaf->record(i + 1);
            op.key.assign(next, next + key_length(next));
            op.key[0] &= kFlagKeyMask;
          } else if (route.upper != nullptr) {
            op.key.assign(route.upper->begin(), route.upper->end());
          } else {
            *at_end = true;
          }
          return Step::kDone;
        }
      }
      if (route.upper == nullptr) {
        *status = BTreeStatus::kOk;
        *at_end = true;
        return Step::kDone;
      }
      op.key.assign(route.upper->begin(), route.upper->end());
    }
  }

  Step run_scan(Op& op) {
    BTreeStatus status = BTreeStatus::kOk;
    bool at_end = false;
    bool decode_failed = false;
    if (op.max_items > 0) {
      const Step step = walk(op, &status, &at_end, [&](const std::vector<uint8_t>& canonical) {
        Item item;
        if (!Item::decode(canonical.data(), canonical.size(), &item)) {
          decode_failed = true;
          return false;
        }
        op.items.push_back(std::move(item));
        return op.items.size() < op.max_items;
      });
      if (step == Step::kWait) return Step::kWait;
    }
    if (decode_failed) status = BTreeStatus::kCorrupt;
    std::optional<PrimaryKey> next;
    if (status == BTreeStatus::kOk && !at_end) {
      if (op.key.empty()) {
        next.reset();
      } else {
        next = decode_valid_key(op.key.data());
      }
    }
    op.scan_done(status, std::move(op.items), std::move(next));
    return Step::kDone;
  }

  Step run_digest(Op& op) {
    BTreeStatus status = BTreeStatus::kOk;
    bool at_end = false;
    const Step step = walk(op, &status, &at_end, [&](const std::vector<uint8_t>& canonical) {
      op.digest = sim::hash_bytes(op.digest, canonical.data(), canonical.size());
      ++op.count;
      return true;
    });
    if (step == Step::kWait) return Step::kWait;
    op.digest_done(status, op.digest, op.count);
    return Step::kDone;
  }

  // --- Scrub
  // -------------------------------------------------------------------------------------------

  static constexpr uint8_t kScrubSuperblock = 0;
  static constexpr uint8_t kScrubSpaceMap = 1;
  static constexpr uint8_t kScrubTree = 2;
  static constexpr uint8_t kScrubEnd = 3;

  enum class ScrubOutcome { kNext, kWait, kStop };

  // Orders positions (key, rank) of the scrub's walk over the tree; a null key is before every
  // key. A page at level L with lower bound l sits at (l, -L): before every page of its subtree
  // (their keys are >= l, and those starting at l are lower in the tree, so of higher rank), and
  // after every page of the subtrees to its left. A leaf's overflow chain sits at (its key, 1).
  static int compare_positions(const uint8_t* a, int32_t a_rank, const uint8_t* b, int32_t b_rank) {
    if (a == nullptr || b == nullptr) {
      if (a != b) return a == nullptr ? -1 : 1;
    } else if (const int c = compare_keys(a, b); c != 0) {
      return c;
    }
    return a_rank < b_rank ? -1 : (a_rank > b_rank ? 1 : 0);
  }

  struct ScrubTarget {
    enum class Kind { kEnd, kPage, kLeafChains, kChain };
    Kind kind = Kind::kEnd;
    ChildRef* ref = nullptr;
    uint8_t level = 0;
    const std::string* lower = nullptr;
    const std::string* upper = nullptr;
    OverflowRef chain;
    const uint8_t* chain_key = nullptr;  // the chain's record, in a resident leaf or the copy
  };

  // The first page or chain at or after the run's cursor in the walk's order. kLeafChains: the
  // cursor lies among the chains of a leaf that is not resident, which must be read to list them.
  ScrubTarget find_scrub_target(ScrubRun& run) {
    using Kind = ScrubTarget::Kind;
    for (uint64_t restarts = 0;; ++restarts) {
      // Each restart moves the cursor past a subtree: at most one per page.
      DYN_ASSERT(restarts <= pages_in_tree + 1);
      ScrubTarget target;
      target.ref = &root;
      target.level = root_level;
      for (;;) {
        const uint8_t* cursor = run.key.empty() ? nullptr : run.key.data();
        const uint8_t* lower = target.lower ? key_bytes(*target.lower) : nullptr;
        if (compare_positions(cursor, run.rank, lower, -int32_t{target.level}) <= 0) {
          target.kind = Kind::kPage;
          return target;
        }
        // The page is behind the cursor: what is left lies in its subtree, if anywhere.
        const ChildRef& ref = *target.ref;
        if (ref.corrupt || (!ref.node && target.level > 0)) break;
        if (target.level == 0) {
          const Node* leaf = ref.node.get();
          if (leaf == nullptr && run.leaf_copy && run.leaf_copy_slot == ref.slot) {
            leaf = run.leaf_copy.get();
          }
          if (leaf == nullptr) {
            target.kind = Kind::kLeafChains;
            return target;
          }
          bool found;
          for (size_t i = leaf_lower_bound(leaf, cursor, &found); i < leaf->count(); ++i) {
            const uint8_t* record = leaf->record(i);
            if ((record[0] & kFlagOverflow) == 0) continue;
            if (compare_positions(cursor, run.rank, record, 1) > 0) continue;  // done already
            target.kind = Kind::kChain;
            target.chain = overflow_of(leaf, i);
            target.chain_key = record;
            return target;
          }
          break;
        }
        Node* n = ref.node.get();
        const size_t i = child_index(n, cursor);
        if (i > 0) target.lower = &n->separators[i - 1];
        if (i < n->separators.size()) target.upper = &n->separators[i];
        target.ref = &n->children[i];
        target.level = static_cast<uint8_t>(target.level - 1);
      }
      // Nothing left in this subtree: continue with the pages that start where it ends.
      if (target.upper == nullptr) return ScrubTarget();
      run.key.assign(target.upper->begin(), target.upper->end());
      run.rank = INT32_MIN;
    }
  }

  bool chain_unconfirmed(uint64_t first) const {
    return std::any_of(unconfirmed_chains.begin(), unconfirmed_chains.end(),
                       [first](const PageImage& image) { return image.slot == first; });
  }

  // A read that ended without data: kMediaError (a latent sector error, sticky) is a finding;
  // anything else (the disk lost power) stops the step with the cursor unchanged.
  bool stop_on_read_status(ScrubRun& run) {
    if (read_status == sim::IoStatus::kOk || read_status == sim::IoStatus::kMediaError)
      return false;
    run.result.status = BTreeStatus::kIoError;
    return true;
  }

  ScrubOutcome scrub_metadata(ScrubRun& run) {
    ScrubStep& result = run.result;
    uint64_t slot = 0;
    uint64_t checksum = 0;
    PageKind kind = kSuperPage;
    if (run.stage == kScrubSuperblock) {
      if (durable_super_slot < 0) {
        run.stage = kScrubSpaceMap;
        run.index = 0;
        return ScrubOutcome::kNext;
      }
      slot = static_cast<uint64_t>(durable_super_slot);
      checksum = durable_super_checksum;
    } else {
      if (run.index >= durable_space_map_slots.size()) {
        run.stage = kScrubTree;
        run.key.clear();
        run.rank = INT32_MIN;
        return ScrubOutcome::kNext;
      }
      slot = durable_space_map_slots[run.index];
      checksum = durable_space_map_checksums[run.index];
      kind = kSpaceMapPage;
    }
    if (!take_read(slot, 1)) {
      request_read(slot, 1);
      return ScrubOutcome::kWait;
    }
    if (stop_on_read_status(run)) return ScrubOutcome::kStop;
    ++result.pages_examined;
    const bool ok = read_status == sim::IoStatus::kOk &&
                    verify_page(read_data.data(), slot, kind, true, checksum) &&
                    (kind != kSuperPage || superblock_sane(read_data.data()));
    if (ok) {
      ++result.pages_read;
    } else {
      ++result.failures;
      if (read_status == sim::IoStatus::kOk) {
        ++counters.verification_failures;
        report_failure(slot, 1, "scrub");
      }
      // Recovery would have to fall back to the older superblock or could not rebuild the free
      // space: unhealthy until the checkpoints that rewrite them (see finish_checkpoint).
      if (kind == kSuperPage) {
        corrupt_super_slot = durable_super_slot;
      } else {
        durable_space_map_corrupt = true;
      }
      owner.superblock_corrupt_ = true;
    }
    if (run.stage == kScrubSuperblock) {
      run.stage = kScrubSpaceMap;
      run.index = 0;
    } else {
      ++run.index;
    }
    return ScrubOutcome::kNext;
  }

  // Re-reads one tree page (or, for kLeafChains, the leaf whose chains are next) and verifies it
  // as load_child() does.
  ScrubOutcome scrub_page(ScrubRun& run, const ScrubTarget& target) {
    ScrubStep& result = run.result;
    const bool listing_chains = target.kind == ScrubTarget::Kind::kLeafChains;
    auto advance = [&] {
      if (listing_chains) return;  // the cursor stays among the leaf's chains
      if (target.lower) {
        run.key.assign(target.lower->begin(), target.lower->end());
      } else {
        run.key.clear();
      }
      run.rank = 1 - int32_t{target.level};
    };
    ChildRef& ref = *target.ref;
    Node* n = ref.node.get();
    if (ref.corrupt || ref.slot == kNoSlot || (n != nullptr && needs_write(n))) {
      ++result.pages_examined;
      ++result.pages_skipped;
      advance();
      return ScrubOutcome::kNext;
    }
    if (n != nullptr && options.plant_scrub_trusts_resident_pages) {
      ++result.pages_examined;
      ++result.pages_read;
      advance();
      return ScrubOutcome::kNext;
    }
    if (!take_read(ref.slot, 1)) {
      request_read(ref.slot, 1);
      return ScrubOutcome::kWait;
    }
    if (stop_on_read_status(run)) return ScrubOutcome::kStop;
    // Listing a leaf's chains again (the cursor stopped among them in an earlier step) is not
    // charged to the budget: a step would otherwise spend a budget of one on it every time and
    // never move on.
    if (!listing_chains) ++result.pages_examined;
    std::unique_ptr<Node> image;
    if (read_status == sim::IoStatus::kOk &&
        verify_page(read_data.data(), ref.slot, target.level == 0 ? kLeafPage : kInnerPage, true,
                    ref.checksum)) {
      image = parse_node(read_data.data(), target.level);
    }
    if (image) {
      ++result.pages_read;
      if (n == nullptr && target.level == 0) {
        run.leaf_copy = std::move(image);
        run.leaf_copy_slot = ref.slot;
      }
      advance();
      return ScrubOutcome::kNext;
    }
    ++result.failures;
    if (read_status == sim::IoStatus::kOk) {
      ++counters.verification_failures;
      report_failure(ref.slot, 1, "scrub");
    }
    mark_unhealthy(target.lower ? key_bytes(*target.lower) : nullptr,
                   target.upper ? key_bytes(*target.upper) : nullptr);
    if (n != nullptr) {
      // The resident copy is good: keep serving it and have the next checkpoint write it anew.
      mark_dirty(n);
    } else {
      ref.corrupt = true;
    }
    advance();
    return ScrubOutcome::kNext;
  }

  ScrubOutcome scrub_chain(ScrubRun& run, const ScrubTarget& target) {
    ScrubStep& result = run.result;
    const OverflowRef& chain = target.chain;
    // The cursor moves past this chain: (its key, 2). Copied first, the key lives in a leaf.
    std::vector<uint8_t> key(target.chain_key, target.chain_key + key_length(target.chain_key));
    key[0] &= kFlagKeyMask;
    auto advance = [&] {
      run.key = key;
      run.rank = 2;
    };
    // Not on the media yet (pending, or written by a checkpoint that is not durable), or known.
    if ((chain.first & kPendingBit) != 0 || chain_unconfirmed(chain.first) ||
        corrupt_chains.contains(chain.first)) {
      ++result.pages_examined;
      ++result.pages_skipped;
      advance();
      return ScrubOutcome::kNext;
    }
    if (!take_read(chain.first, chain.pages)) {
      request_read(chain.first, chain.pages);
      return ScrubOutcome::kWait;
    }
    if (stop_on_read_status(run)) return ScrubOutcome::kStop;
    result.pages_examined += chain.pages;
    std::vector<uint8_t> bytes;
    if (read_status == sim::IoStatus::kOk && verify_chain(chain, &bytes, "scrub")) {
      result.pages_read += chain.pages;
    } else {
      ++result.failures;
      if (read_status == sim::IoStatus::kOk) ++counters.verification_failures;
      corrupt_chains.insert(chain.first);
      mark_unhealthy(key.data(), target.upper ? key_bytes(*target.upper) : nullptr);
    }
    advance();
    return ScrubOutcome::kNext;
  }

  Step run_scrub(Op& op) {
    ScrubRun& run = *op.scrub;
    for (uint64_t guard = 0;; ++guard) {
      // Every round examines a page or moves to the next stage; listing a leaf's chains reads it
      // once more.
      DYN_ASSERT(guard <= 2 * uint64_t{run.max_pages} + 8);
      if (run.stage == kScrubEnd || (!root_known && run.stage == kScrubTree)) {
        run.stage = kScrubEnd;
        run.result.pass_complete = true;
        break;
      }
      if (run.result.pages_examined >= run.max_pages) break;
      ScrubOutcome outcome = ScrubOutcome::kNext;
      if (run.stage != kScrubTree) {
        outcome = scrub_metadata(run);
      } else {
        const ScrubTarget target = find_scrub_target(run);
        switch (target.kind) {
          case ScrubTarget::Kind::kEnd:
            run.stage = kScrubEnd;
            break;
          case ScrubTarget::Kind::kPage:
          case ScrubTarget::Kind::kLeafChains:
            outcome = scrub_page(run, target);
            break;
          case ScrubTarget::Kind::kChain:
            outcome = scrub_chain(run, target);
            break;
        }
      }
      if (outcome == ScrubOutcome::kWait) return Step::kWait;
      if (outcome == ScrubOutcome::kStop) break;
    }
    run.done(run);
    return Step::kDone;
  }

  // --- Range digest and repair
  // --------------------------------------------------------------------------------

  // A key range as encoded keys (nullptr: open).
  struct EncodedRange {
    const uint8_t* begin = nullptr;
    const uint8_t* end = nullptr;
  };

  static EncodedRange encoded_range(const Op& op) {
    return EncodedRange{op.key.empty() ? nullptr : op.key.data(),
                        op.has_end ? op.end_key.data() : nullptr};
  }
  // [lower, upper) lies inside the range.
  static bool range_holds(const EncodedRange& range, const std::string* lower,
                          const std::string* upper) {
    const bool from = range.begin == nullptr ||
                      (lower != nullptr && compare_keys(key_bytes(*lower), range.begin) >= 0);
    const bool to = range.end == nullptr ||
                    (upper != nullptr && compare_keys(key_bytes(*upper), range.end) <= 0);
    return from && to;
  }
  static bool range_meets(const EncodedRange& range, const std::string* lower,
                          const std::string* upper) {
    const bool below_end =
        range.end == nullptr || lower == nullptr || compare_keys(key_bytes(*lower), range.end) < 0;
    const bool above_begin = range.begin == nullptr || upper == nullptr ||
                             compare_keys(key_bytes(*upper), range.begin) > 0;
    return below_end && above_begin;
  }

  Step run_range_digest(Op& op) {
    const uint8_t* end = op.has_end ? op.end_key.data() : nullptr;
    for (uint64_t guard = 0;; ++guard) {
      DYN_ASSERT(guard <= pages_in_tree);  // one round per leaf
      const uint8_t* cursor = op.key.empty() ? nullptr : op.key.data();
      const Route route = descend(cursor);
      if (route.kind == RouteKind::kWait) return Step::kWait;
      if (route.kind != RouteKind::kLeaf) {
        op.digest_done(route_status(route.kind), 0, 0);
        return Step::kDone;
      }
      const Node* leaf = route.leaf;
      bool found;
      for (size_t i = leaf_lower_bound(leaf, cursor, &found); i < leaf->count(); ++i) {
        const uint8_t* record = leaf->record(i);
        if (end != nullptr && compare_keys(record, end) >= 0) {
          op.digest_done(BTreeStatus::kOk, op.digest, op.count);
          return Step::kDone;
        }
        if ((record[0] & kFlagOverflow) != 0 &&
            corrupt_chains.contains(overflow_of(leaf, i).first)) {
          op.digest_done(BTreeStatus::kCorrupt, 0, 0);
          return Step::kDone;
        }
        op.digest += record_hash(leaf, i);
        ++op.count;
      }
      if (route.upper == nullptr ||
          (end != nullptr && compare_keys(key_bytes(*route.upper), end) >= 0)) {
        op.digest_done(BTreeStatus::kOk, op.digest, op.count);
        return Step::kDone;
      }
      op.key.assign(route.upper->begin(), route.upper->end());
    }
  }

  // Why repair recounts the whole tree: a page that cannot be read takes with it the hashes of
  // its items (and, for an inner page, which slots its subtree occupies), so content_digest,
  // item_count and the page count cannot be adjusted by subtracting what was dropped. Keeping a
  // digest per subtree in the parent's child pointer would know them, but it would change the page
  // format and cost every write an update along its path. Repairs are rare (one per corruption
  // found), so the repair instead reads every leaf outside its range once (phase 1) and recounts
  // from what the tree then holds, which is exact by construction. The same walk gives the slots
  // still referenced, so those of a lost subtree are found and vacated by a sweep.
  enum class WalkOutcome { kNext, kFinished, kWait, kCorrupt, kIoError };

  LeafSummary summarize(const Node* leaf) {
    LeafSummary summary;
    for (size_t i = 0; i < leaf->count(); ++i) {
      summary.digest += record_hash(leaf, i);
      ++summary.items;
      if ((leaf->record(i)[0] & kFlagOverflow) == 0) continue;
      const OverflowRef chain = overflow_of(leaf, i);
      summary.chain_pages += chain.pages;
      if ((chain.first & kPendingBit) == 0) summary.chains.emplace_back(chain.first, chain.pages);
    }
    return summary;
  }

  // Phase 1: visits the next leaf at or after the walk's cursor that does not lie inside the
  // range, reading it if it is evicted. A leaf straddling a bound is pinned (marked dirty, so it
  // stays resident for phase 2); one wholly outside is summarized in case it is evicted again.
  WalkOutcome repair_visit_next_leaf(RepairRun& run, const EncodedRange& range) {
    const uint8_t* cursor = run.cursor.empty() ? nullptr : run.cursor.data();
    ChildRef* ref = &root;
    Node* parent = nullptr;
    const std::string* lower = nullptr;
    const std::string* upper = nullptr;
    for (;;) {
      if (range_holds(range, lower, upper)) break;  // dropped in phase 2 without being read
      if (ref->corrupt) return WalkOutcome::kCorrupt;
      if (!ref->node) {
        switch (load_child(*ref, parent, lower, upper)) {
          case RouteKind::kLeaf:
            break;
          case RouteKind::kWait:
            return WalkOutcome::kWait;
          case RouteKind::kCorrupt:
            return WalkOutcome::kCorrupt;
          case RouteKind::kIoError:
            return WalkOutcome::kIoError;
        }
      }
      Node* n = ref->node.get();
      if (n->leaf) {
        if (range_meets(range, lower, upper)) {
          mark_dirty(n);
        } else if (ref->slot != kNoSlot) {
          run.leaves[ref->slot] = summarize(n);
        }
        break;
      }
      const size_t i = child_index(n, cursor);
      if (i > 0) lower = &n->separators[i - 1];
      if (i < n->separators.size()) upper = &n->separators[i];
      parent = n;
      ref = &n->children[i];
    }
    if (upper == nullptr) return WalkOutcome::kFinished;
    run.cursor.assign(upper->begin(), upper->end());
    return WalkOutcome::kNext;
  }

  void forget_pending_chains(const Node* n) {
    if (n->leaf) {
      for (size_t i = 0; i < n->count(); ++i) {
        if ((n->record(i)[0] & kFlagOverflow) == 0) continue;
        const OverflowRef chain = overflow_of(n, i);
        if (chain.first & kPendingBit) pending_chains.erase(chain.first & ~kPendingBit);
      }
      return;
    }
    for (const ChildRef& c : n->children) {
      if (c.node) forget_pending_chains(c.node.get());
    }
  }

  // Replaces the subtree behind `ref` (resident, evicted or lost) by an empty one of the same
  // height: a path of inner pages with one child each down to an empty leaf, which it returns.
  // The old pages' slots are left to the sweep.
  Node* replace_with_empty(ChildRef& ref, Node* parent, uint8_t level) {
    if (ref.node) {
      forget_pending_chains(ref.node.get());
      drop_subtree_lru(ref.node.get());
    }
    auto top = std::make_unique<Node>();
    Node* bottom = top.get();
    bottom->level = level;
    bottom->leaf = level == 0;
    while (bottom->level > 0) {
      ChildRef child;
      child.node = std::make_unique<Node>();
      child.node->level = static_cast<uint8_t>(bottom->level - 1);
      child.node->leaf = child.node->level == 0;
      child.node->parent = bottom;
      bottom->children.push_back(std::move(child));
      bottom = bottom->children.back().node.get();
    }
    top->parent = parent;
    ref = ChildRef();
    ref.node = std::move(top);
    return bottom;
  }

  // Phase 2: removes the range's content below `ref`, whose page straddles a bound of the range
  // (it is resident: an inner page, or a leaf pinned in phase 1). Leaves it edits or creates go
  // to `touched`.
  void clear_range(ChildRef& ref, const std::string* lower, const std::string* upper,
                   const EncodedRange& range, std::vector<Node*>& touched) {
    Node* n = ref.node.get();
    DYN_ASSERT(n != nullptr && !ref.corrupt);
    if (n->leaf) {
      bool found;
      const size_t i = leaf_lower_bound(n, range.begin, &found);
      while (i < n->count() &&
             (range.end == nullptr || compare_keys(n->record(i), range.end) < 0)) {
        if (n->record(i)[0] & kFlagOverflow) drop_chain(overflow_of(n, i));
        leaf_remove(n, i);
      }
      mark_dirty(n);
      touched.push_back(n);
      return;
    }
    for (size_t i = 0; i < n->children.size(); ++i) {
      const std::string* child_lower = i > 0 ? &n->separators[i - 1] : lower;
      const std::string* child_upper = i < n->separators.size() ? &n->separators[i] : upper;
      if (!range_meets(range, child_lower, child_upper)) continue;
      if (range_holds(range, child_lower, child_upper)) {
        touched.push_back(
            replace_with_empty(n->children[i], n, static_cast<uint8_t>(n->level - 1)));
      } else {
        clear_range(n->children[i], child_lower, child_upper, range, touched);
      }
    }
    mark_dirty(n);
  }

  // Content digest, item count and page count of the tree below `ref`, from the resident pages
  // and, for evicted leaves, from what phase 1 read.
  void recount_subtree(const ChildRef& ref, uint8_t level, const RepairRun& run, uint64_t* digest,
                       uint64_t* items, uint64_t* pages) {
    DYN_ASSERT(!ref.corrupt);
    ++*pages;
    const Node* n = ref.node.get();
    if (n == nullptr) {
      DYN_ASSERT(level == 0);
      const auto found = run.leaves.find(ref.slot);
      DYN_ASSERT_MSG(found != run.leaves.end(), "repair: an evicted leaf was never read");
      *digest += found->second.digest;
      *items += found->second.items;
      *pages += found->second.chain_pages;
      return;
    }
    if (n->leaf) {
      for (size_t i = 0; i < n->count(); ++i) {
        *digest += record_hash(n, i);
        ++*items;
        if (n->record(i)[0] & kFlagOverflow) *pages += overflow_of(n, i).pages;
      }
      return;
    }
    for (const ChildRef& c : n->children) {
      recount_subtree(c, static_cast<uint8_t>(level - 1), run, digest, items, pages);
    }
  }

  void mark_referenced(const ChildRef& ref, const RepairRun& run, std::vector<uint64_t>& bits) {
    auto mark = [&bits](uint64_t s, uint64_t count) {
      for (uint64_t k = s; k < s + count; ++k) bits[k / 64] |= uint64_t{1} << (k % 64);
    };
    if (ref.slot != kNoSlot) mark(ref.slot, 1);
    const Node* n = ref.node.get();
    if (n == nullptr) {
      for (const auto& [first, pages] : run.leaves.at(ref.slot).chains) mark(first, pages);
      return;
    }
    if (n->leaf) {
      for (size_t i = 0; i < n->count(); ++i) {
        if ((n->record(i)[0] & kFlagOverflow) == 0) continue;
        const OverflowRef chain = overflow_of(n, i);
        if ((chain.first & kPendingBit) == 0) mark(chain.first, chain.pages);
      }
      return;
    }
    for (const ChildRef& c : n->children) mark_referenced(c, run, bits);
  }

  // Vacates every slot in use that the tree no longer references and that is not already on its
  // way out: the pages of dropped subtrees, lost ones included. The durable checkpoint may still
  // reference them, so they are freed only when the next checkpoint is durable.
  void sweep_unreferenced_slots(const RepairRun& run) {
    std::vector<uint64_t> referenced(allocated.size(), 0);
    mark_referenced(root, run, referenced);
    for (uint64_t s : space_map_slots) referenced[s / 64] |= uint64_t{1} << (s % 64);
    for (uint64_t s = kSuperblockSlots; s < options.region_sectors; ++s) {
      if (!is_allocated(s) || is_releasing(s) || ((referenced[s / 64] >> (s % 64)) & 1)) continue;
      vacate(s);
      corrupt_chains.erase(s);
      if (chain_cache.erase(s) > 0) {
        chain_cache_order.erase(std::find(chain_cache_order.begin(), chain_cache_order.end(), s));
      }
    }
  }

  static bool bounds_inside(const KeyRangeBounds& inner, const KeyRangeBounds& outer) {
    const bool from = !outer.begin || (inner.begin && *inner.begin >= *outer.begin);
    const bool to = !outer.end || (inner.end && *inner.end <= *outer.end);
    return from && to;
  }

  // Phase 2, with nothing left to read: drop the range's content, recount, insert the items,
  // drop leaves left empty, sweep the slots nothing references.
  void repair_apply(Op& op) {
    RepairRun& run = *op.repair;
    const EncodedRange range = encoded_range(op);
    std::vector<Node*> touched;
    if (range_holds(range, nullptr, nullptr)) {
      if (root.node) {
        forget_pending_chains(root.node.get());
        drop_subtree_lru(root.node.get());
      }
      root = ChildRef();
      root.node = std::make_unique<Node>();
      root_level = 0;
      touched.push_back(root.node.get());
    } else {
      clear_range(root, nullptr, nullptr, range, touched);
    }
    // From here on put_record and remove_node keep the three counts, as for any write.
    content_digest = 0;
    item_count = 0;
    pages_in_tree = 0;
    recount_subtree(root, root_level, run, &content_digest, &item_count, &pages_in_tree);
    BTreeStatus status = BTreeStatus::kOk;
    StatusDone record_status = [&status](BTreeStatus s) { status = s; };
    for (Item& item : op.items) {
      const Step step = run_put(item, record_status);
      DYN_ASSERT_MSG(step == Step::kDone, "repair: a leaf in the range is not resident");
      if (status != BTreeStatus::kOk) break;
    }
    for (Node* leaf : touched) {
      if (leaf->count() == 0 && leaf->parent != nullptr) remove_node(leaf);
    }
    sweep_unreferenced_slots(run);
    auto& unhealthy = owner.unhealthy_;
    if (status == BTreeStatus::kOk) {
      std::erase_if(unhealthy,
                    [&run](const KeyRangeBounds& r) { return bounds_inside(r, run.bounds); });
    } else {
      mark_unhealthy(range.begin, range.end);
    }
    op.status_done(status);
  }

  Step run_repair(Op& op) {
    if (checkpoint_running) return Step::kWait;  // its pages are not durable yet: let it finish
    if (!root_known || space_unknown) {
      op.status_done(BTreeStatus::kCorrupt);
      return Step::kDone;
    }
    const EncodedRange range = encoded_range(op);
    RepairRun& run = *op.repair;
    for (uint64_t guard = 0;; ++guard) {
      DYN_ASSERT(guard <= pages_in_tree + 1);  // one round per leaf or dropped subtree
      switch (repair_visit_next_leaf(run, range)) {
        case WalkOutcome::kNext:
          continue;
        case WalkOutcome::kWait:
          return Step::kWait;
        case WalkOutcome::kCorrupt:
          op.status_done(BTreeStatus::kCorrupt);
          return Step::kDone;
        case WalkOutcome::kIoError:
          op.status_done(BTreeStatus::kIoError);
          return Step::kDone;
        case WalkOutcome::kFinished:
          break;
      }
      break;
    }
    repair_apply(op);
    return Step::kDone;
  }

  void run_clear() {
    // Every slot in use goes: the durable checkpoint keeps them until the next one is durable.
    for (uint64_t s = kSuperblockSlots; s < options.region_sectors; ++s) {
      if (is_allocated(s) && !is_releasing(s)) vacate(s);
    }
    space_map_slots.clear();
    space_map_checksums.clear();
    unconfirmed_chains.clear();
    pending_chains.clear();
    chain_cache.clear();
    chain_cache_order.clear();
    corrupt_chains.clear();
    owner.unhealthy_.clear();
    reset_tree();
  }

  // --- Checkpoint
  // ---------------------------------------------------------------------------------

  bool needs_write(const Node* n) const {
    return n->dirty || n->written_generation > durable_generation;
  }

  void collect(ChildRef& ref, std::vector<ChildRef*>& out) {
    Node* n = ref.node.get();
    if (n == nullptr || !needs_write(n)) return;
    for (ChildRef& c : n->children) collect(c, out);
    out.push_back(&ref);
  }

  std::vector<uint8_t> serialize(const Node* n, uint64_t slot, uint64_t generation,
                                 uint64_t* checksum) const {
    std::vector<uint8_t> page = sim::take_buffer(kPageBytes);
    uint8_t* body = page.data() + kHeaderBytes;
    if (n->leaf) {
      DYN_ASSERT(n->leaf_bytes() <= kBodyBytes);
      for (size_t i = 0; i < n->count(); ++i) store_u16(body + 2 * i, n->ends[i]);
      if (!n->data.empty()) std::memcpy(body + 2 * n->count(), n->data.data(), n->data.size());
      *checksum = seal_page(page.data(), kLeafPage, 0, static_cast<uint16_t>(n->count()), slot,
                            generation, static_cast<uint32_t>(n->data.size()), 0);
      return page;
    }
    DYN_ASSERT(n->inner_bytes() <= kBodyBytes);
    size_t at = 0;
    for (const ChildRef& c : n->children) {
      DYN_ASSERT(c.slot != kNoSlot);
      store_u64(body + at, c.slot);
      store_u64(body + at + 8, c.checksum);
      at += 16;
    }
    for (const std::string& s : n->separators) {
      uint64_t size = s.size();
      while (size >= 0x80) {
        body[at++] = static_cast<uint8_t>(size | 0x80);
        size >>= 7;
      }
      body[at++] = static_cast<uint8_t>(size);
      std::memcpy(body + at, s.data(), s.size());
      at += s.size();
    }
    *checksum =
        seal_page(page.data(), kInnerPage, n->level, static_cast<uint16_t>(n->children.size()),
                  slot, generation, static_cast<uint32_t>(at), 0);
    return page;
  }

  struct PendingChainWrite {
    Node* leaf;
    size_t record;
    OverflowRef ref;
    uint64_t first = kNoSlot;
  };

  Step run_checkpoint(Op& op) {
    if (checkpoint_running) return Step::kWait;
    DYN_ASSERT_MSG(op.metadata.bytes.size() <= kMaxMetadataBytes, "checkpoint metadata > 1 KB");
    if (!root_known || root.corrupt || space_unknown) {
      op.status_done(BTreeStatus::kCorrupt);
      return Step::kDone;
    }
    // Phase 1, without changing anything: what to write, and whether it fits.
    std::vector<ChildRef*> nodes;
    collect(root, nodes);
    std::vector<PendingChainWrite> chains;
    uint64_t needed = space_map_pages;
    for (ChildRef* ref : nodes) {
      Node* n = ref->node.get();
      if (!options.plant_overwrite_live_pages || ref->slot == kNoSlot) ++needed;
      if (!n->leaf) continue;
      for (size_t i = 0; i < n->count(); ++i) {
        if ((n->record(i)[0] & kFlagOverflow) == 0) continue;
        const OverflowRef ref_of_chain = overflow_of(n, i);
        if (ref_of_chain.first & kPendingBit) chains.push_back({n, i, ref_of_chain});
      }
    }
    for (const PendingChainWrite& c : chains) needed += c.ref.pages;
    if (needed > free_slots) {
      op.status_done(BTreeStatus::kNoSpace);
      return Step::kDone;
    }
    for (size_t k = 0; k < chains.size(); ++k) {
      chains[k].first = allocate_run(chains[k].ref.pages);
      if (chains[k].first == kNoSlot) {
        for (size_t j = 0; j < k; ++j) {
          for (uint32_t p = 0; p < chains[j].ref.pages; ++p) free_slot_now(chains[j].first + p);
        }
        op.status_done(BTreeStatus::kNoSpace);
        return Step::kDone;
      }
    }
    // Phase 2: assign slots and build every page image, children before parents.
    const uint64_t generation = next_generation++;
    std::vector<PageImage> images = unconfirmed_chains;  // copies: kept until durable
    for (PendingChainWrite& c : chains) write_chain(c, generation, images);
    for (ChildRef* ref : nodes) {
      Node* n = ref->node.get();
      if (ref->slot != kNoSlot && !options.plant_overwrite_live_pages) {
        vacate(ref->slot);
        ref->slot = kNoSlot;
      }
      if (ref->slot == kNoSlot) ref->slot = allocate_slot();
      images.push_back({ref->slot, serialize(n, ref->slot, generation, &ref->checksum)});
      n->dirty = false;
      n->written_generation = generation;
      if (n->leaf) {
        if (n->data.capacity() > n->data.size() + n->data.size() / 4) n->data.shrink_to_fit();
        if (!n->in_lru) lru_push_front(n);
      }
    }
    for (uint64_t s : space_map_slots) vacate(s);
    space_map_slots.clear();
    space_map_checksums.clear();
    for (uint64_t k = 0; k < space_map_pages; ++k) space_map_slots.push_back(allocate_slot());
    write_space_map(generation, images);
    run = CheckpointRun();
    run.generation = generation;
    run.metadata = std::move(op.metadata);
    run.metadata.generation = generation;
    run.done = std::move(op.status_done);
    run.vacated = std::move(vacated);
    vacated.clear();
    run.super_slot = durable_super_slot == 1 ? 0 : 1;
    run.superblock = build_superblock(generation, run.super_slot, run.metadata);
    run.super_checksum = load_u64(run.superblock.data() + kOffChecksum);
    checkpoint_running = true;
    counters.page_writes += images.size();
    issue_writes(std::move(images));
    return Step::kDone;
  }

  void write_chain(PendingChainWrite& c, uint64_t generation, std::vector<PageImage>& images) {
    const uint64_t id = c.ref.first & ~kPendingBit;
    const std::vector<uint8_t>& bytes = pending_chains.at(id);
    uint64_t next_checksum = 0;
    std::vector<PageImage> chain(c.ref.pages);
    for (uint32_t k = c.ref.pages; k-- > 0;) {
      const size_t from = size_t{k} * kBodyBytes;
      const size_t used = std::min<size_t>(kBodyBytes, bytes.size() - from);
      chain[k].slot = c.first + k;
      chain[k].bytes = sim::take_buffer(kPageBytes);
      std::memcpy(chain[k].bytes.data() + kHeaderBytes, bytes.data() + from, used);
      next_checksum = seal_page(chain[k].bytes.data(), kOverflowPage, 0, 0, c.first + k, generation,
                                static_cast<uint32_t>(used), next_checksum);
    }
    uint8_t* fixed = c.leaf->data.data() + c.leaf->begin(c.record) + c.ref.first_offset;
    store_u64(fixed, c.first);
    store_u64(fixed + 12, next_checksum);
    pending_chains.erase(id);
    // Kept until the checkpoint is durable: a failed one must write them again.
    for (PageImage& image : chain) {
      unconfirmed_chains.push_back({image.slot, image.bytes});
      images.push_back(std::move(image));
    }
  }

  void write_space_map(uint64_t generation, std::vector<PageImage>& images) {
    for (uint64_t k = 0; k < space_map_pages; ++k) {
      PageImage image{space_map_slots[k], sim::take_buffer(kPageBytes)};
      uint8_t* body = image.bytes.data() + kHeaderBytes;
      const uint64_t first = k * kSpaceMapBitsPerPage;
      const uint64_t last =
          std::min<uint64_t>(first + kSpaceMapBitsPerPage, options.region_sectors);
      // Slot s is bit (s - first) % 8 of body byte (s - first) / 8: a word of the bitmaps stored
      // little-endian is exactly that layout (pages start on a word: 32,384 bits = 506 words).
      static_assert(kSpaceMapBitsPerPage % 64 == 0);
      for (uint64_t s = first; s < last; s += 64) {
        uint64_t word = allocated[s / 64] & ~releasing[s / 64];
        if (last - s < 64) word &= (uint64_t{1} << (last - s)) - 1;
        store_u64(body + (s - first) / 8, word);
      }
      space_map_checksums.push_back(seal_page(image.bytes.data(), kSpaceMapPage, 0, 0, image.slot,
                                              generation, static_cast<uint32_t>(last - first), 0));
      images.push_back(std::move(image));
    }
  }

  std::vector<uint8_t> build_superblock(uint64_t generation, uint64_t slot,
                                        const CheckpointMetadata& metadata) const {
    std::vector<uint8_t> page(kPageBytes, 0);
    uint8_t* body = page.data() + kHeaderBytes;
    store_u64(body, root.slot);
    store_u64(body + 8, root.checksum);
    body[16] = root_level;
    store_u64(body + 17, item_count);
    store_u64(body + 25, content_digest);
    store_u64(body + 33, pages_in_tree);
    store_u64(body + 41, options.region_sectors);
    store_u32(body + 49, static_cast<uint32_t>(space_map_slots.size()));
    store_u32(body + 53, static_cast<uint32_t>(metadata.bytes.size()));
    size_t at = kSuperFixedBytes;
    for (size_t k = 0; k < space_map_slots.size(); ++k) {
      store_u64(body + at, space_map_slots[k]);
      store_u64(body + at + 8, space_map_checksums[k]);
      at += 16;
    }
    if (!metadata.bytes.empty())
      std::memcpy(body + at, metadata.bytes.data(), metadata.bytes.size());
    at += metadata.bytes.size();
    seal_page(page.data(), kSuperPage, 0, 0, slot, generation, static_cast<uint32_t>(at), 0);
    return page;
  }

  void issue_writes(std::vector<PageImage> images) {
    std::sort(images.begin(), images.end(),
              [](const PageImage& a, const PageImage& b) { return a.slot < b.slot; });
    const uint64_t max_pages = std::min<uint64_t>(options.max_pages_per_checkpoint_write,
                                                  sim::Disk::kMaxIoBytes / kPageBytes);
    // Runs of consecutive slots go out as one write each. When a page is one sector, the page
    // buffers move into the disk as they are; otherwise they are joined into one buffer.
    const bool page_is_sector = disk.options().sector_size_bytes == kPageBytes;
    std::vector<std::pair<uint64_t, std::vector<std::vector<uint8_t>>>> writes;
    for (size_t i = 0; i < images.size();) {
      size_t j = i + 1;
      while (j < images.size() && images[j].slot == images[j - 1].slot + 1 && j - i < max_pages) {
        ++j;
      }
      std::vector<std::vector<uint8_t>> pages;
      pages.reserve(j - i);
      for (size_t k = i; k < j; ++k) pages.push_back(std::move(images[k].bytes));
      writes.emplace_back(images[i].slot, std::move(pages));
      i = j;
    }
    run.writes_outstanding = static_cast<uint32_t>(writes.size());
    for (auto& [slot, pages] : writes) {
      auto done = [t = token](sim::IoStatus status) {
        if (Impl* self = *t) self->on_page_write_done(status);
      };
      if (page_is_sector) {
        disk.write_sectors(disk_offset(slot), std::move(pages), std::move(done));
        continue;
      }
      std::vector<uint8_t> buffer;
      buffer.reserve(pages.size() * kPageBytes);
      for (const std::vector<uint8_t>& page : pages) {
        buffer.insert(buffer.end(), page.begin(), page.end());
      }
      disk.write(disk_offset(slot), std::move(buffer), std::move(done));
    }
  }

  static BTreeStatus io_status(sim::IoStatus status) {
    return status == sim::IoStatus::kNoSpace ? BTreeStatus::kNoSpace : BTreeStatus::kIoError;
  }

  void on_page_write_done(sim::IoStatus status) {
    if (status != sim::IoStatus::kOk && run.status == BTreeStatus::kOk)
      run.status = io_status(status);
    if (--run.writes_outstanding > 0) return;
    if (run.status != BTreeStatus::kOk) {
      finish_checkpoint(run.status);
      return;
    }
    disk.fsync([t = token](sim::IoStatus fsync_status) {
      if (Impl* self = *t) self->on_pages_synced(fsync_status);
    });
  }

  void on_pages_synced(sim::IoStatus status) {
    if (status != sim::IoStatus::kOk) {
      finish_checkpoint(io_status(status));
      return;
    }
    // Only now may the superblock point at the new pages.
    disk.write(disk_offset(run.super_slot), std::move(run.superblock),
               [t = token](sim::IoStatus write_status) {
                 Impl* self = *t;
                 if (self == nullptr) return;
                 if (write_status != sim::IoStatus::kOk) {
                   self->finish_checkpoint(io_status(write_status));
                   return;
                 }
                 self->disk.fsync([t2 = self->token](sim::IoStatus fsync_status) {
                   if (Impl* me = *t2) {
                     me->finish_checkpoint(fsync_status == sim::IoStatus::kOk
                                               ? BTreeStatus::kOk
                                               : io_status(fsync_status));
                   }
                 });
               });
  }

  void finish_checkpoint(BTreeStatus status) {
    if (status == BTreeStatus::kOk) {
      for (uint64_t s : run.vacated) release(s);
      durable_generation = run.generation;
      durable_super_slot = static_cast<int>(run.super_slot);
      durable_super_checksum = run.super_checksum;
      durable_space_map_slots = space_map_slots;
      durable_space_map_checksums = space_map_checksums;
      durable_space_map_corrupt = false;
      if (corrupt_super_slot == durable_super_slot) corrupt_super_slot = -1;
      owner.superblock_corrupt_ = corrupt_super_slot >= 0 || space_unknown;
      owner.durable_metadata_ = std::move(run.metadata);
      unconfirmed_chains.clear();
      ++counters.checkpoints;
    } else {
      vacated.insert(vacated.end(), run.vacated.begin(), run.vacated.end());
    }
    checkpoint_running = false;
    StatusDone done = std::move(run.done);
    run = CheckpointRun();
    done(status);
    maybe_evict();
    pump();
  }

  // --- Recovery
  // -----------------------------------------------------------------------------------

  void start_recovery(RecoverDone done) {
    DYN_ASSERT_MSG(!recovering && queue.empty() && !checkpoint_running,
                   "recover() must come before any other operation");
    recovering = true;
    recover_done = std::move(done);
    recovery = BTreeRecovery();
    disk.read(disk_offset(0), kSuperblockSlots * kPageBytes, [t = token](sim::ReadResult result) {
      if (Impl* self = *t) self->on_superblocks(std::move(result));
    });
  }

  void finish_recovery() {
    recovering = false;
    RecoverDone done = std::move(recover_done);
    done(recovery);
    pump();
  }

  void on_superblocks(sim::ReadResult result) {
    if (result.status != sim::IoStatus::kOk) {
      recovery.status = BTreeStatus::kIoError;
      root_known = false;
      finish_recovery();
      return;
    }
    counters.page_reads += kSuperblockSlots;
    int best = -1;
    uint64_t best_generation = 0;
    bool any_written = false;
    for (int s = 0; s < static_cast<int>(kSuperblockSlots); ++s) {
      const uint8_t* page = result.data.data() + s * kPageBytes;
      const bool written = std::any_of(page, page + kPageBytes, [](uint8_t b) { return b != 0; });
      any_written = any_written || written;
      const bool valid = verify_page(page, static_cast<uint64_t>(s), kSuperPage, false, 0) &&
                         superblock_sane(page);
      if (written && !valid) {
        corrupt_super_slot = s;
        owner.superblock_corrupt_ = true;
        ++counters.verification_failures;
        report_failure(static_cast<uint64_t>(s), 1, "read");
      }
      if (valid && (best < 0 || load_u64(page + kOffGeneration) > best_generation)) {
        best = s;
        best_generation = load_u64(page + kOffGeneration);
      }
    }
    if (best < 0) {
      if (any_written) {
        recovery.status = BTreeStatus::kCorrupt;
        root_known = false;
        mark_unhealthy(nullptr, nullptr);
      }
      finish_recovery();
      return;
    }
    install_superblock(result.data.data() + best * kPageBytes, best);
    next_load();
  }

  bool superblock_sane(const uint8_t* page) const {
    const uint8_t* body = page + kHeaderBytes;
    const uint32_t maps = load_u32(body + 49);
    const uint32_t metadata_bytes = load_u32(body + 53);
    return load_u64(body + 41) == options.region_sectors && maps == space_map_pages &&
           metadata_bytes <= kMaxMetadataBytes &&
           load_u32(page + kOffUsed) == kSuperFixedBytes + 16 * maps + metadata_bytes &&
           load_u64(body) >= kSuperblockSlots && load_u64(body) < options.region_sectors;
  }

  void install_superblock(const uint8_t* page, int slot) {
    const uint8_t* body = page + kHeaderBytes;
    const uint64_t generation = load_u64(page + kOffGeneration);
    durable_generation = generation;
    next_generation = generation + 1;
    durable_super_slot = slot;
    durable_super_checksum = load_u64(page + kOffChecksum);
    root = ChildRef();
    root.slot = load_u64(body);
    root.checksum = load_u64(body + 8);
    root_level = body[16];
    item_count = load_u64(body + 17);
    content_digest = load_u64(body + 25);
    pages_in_tree = load_u64(body + 33);
    const uint32_t maps = load_u32(body + 49);
    const uint32_t metadata_bytes = load_u32(body + 53);
    size_t at = kSuperFixedBytes;
    for (uint32_t k = 0; k < maps; ++k) {
      space_map_slots.push_back(load_u64(body + at));
      space_map_checksums.push_back(load_u64(body + at + 8));
      at += 16;
    }
    durable_space_map_slots = space_map_slots;
    durable_space_map_checksums = space_map_checksums;
    recovery.found_checkpoint = true;
    recovery.item_count = item_count;
    recovery.metadata.generation = generation;
    recovery.metadata.bytes.assign(body + at, body + at + metadata_bytes);
    owner.durable_metadata_ = recovery.metadata;
    for (uint32_t k = 0; k < maps; ++k) {
      LoadTask task;
      task.space_map = true;
      task.space_index = k;
      load_tasks.push_back(std::move(task));
    }
    LoadTask root_task;
    root_task.ref = &root;
    root_task.level = root_level;
    load_tasks.push_back(std::move(root_task));
    // The space map replaces the fresh tree's allocation.
    std::fill(allocated.begin(), allocated.end(), 0);
    free_slots = options.region_sectors;
    for (uint64_t s = 0; s < kSuperblockSlots; ++s) mark_allocated(s);
  }

  void next_load() {
    if (load_tasks.empty()) {
      finish_recovery();
      return;
    }
    const LoadTask& task = load_tasks.front();
    const uint64_t slot = task.space_map ? space_map_slots[task.space_index] : task.ref->slot;
    disk.read(disk_offset(slot), kPageBytes, [t = token](sim::ReadResult result) {
      if (Impl* self = *t) self->on_load(std::move(result));
    });
  }

  void on_load(sim::ReadResult result) {
    LoadTask task = std::move(load_tasks.front());
    load_tasks.pop_front();
    if (result.status != sim::IoStatus::kOk) {
      recovery.status = BTreeStatus::kIoError;
      if (task.space_map) {
        space_unknown = true;
      } else {
        task.ref->corrupt = true;  // unreadable: never served, like a page that fails checks
      }
      next_load();
      return;
    }
    ++counters.page_reads;
    const uint8_t* page = result.data.data();
    if (task.space_map) {
      load_space_map(page, task.space_index);
    } else {
      load_tree_page(page, task);
    }
    next_load();
  }

  void load_space_map(const uint8_t* page, uint32_t index) {
    const uint64_t slot = space_map_slots[index];
    if (!verify_page(page, slot, kSpaceMapPage, true, space_map_checksums[index])) {
      ++counters.verification_failures;
      report_failure(slot, 1, "read");
      space_unknown = true;
      owner.superblock_corrupt_ = true;
      if (recovery.status == BTreeStatus::kOk) recovery.status = BTreeStatus::kCorrupt;
      return;
    }
    const uint8_t* body = page + kHeaderBytes;
    const uint64_t first = uint64_t{index} * kSpaceMapBitsPerPage;
    const uint64_t last = std::min<uint64_t>(first + kSpaceMapBitsPerPage, options.region_sectors);
    for (uint64_t s = std::max<uint64_t>(first, kSuperblockSlots); s < last; ++s) {
      if ((body[(s - first) / 8] >> ((s - first) % 8)) & 1) mark_allocated(s);
    }
  }

  void load_tree_page(const uint8_t* page, LoadTask& task) {
    std::unique_ptr<Node> node;
    if (verify_page(page, task.ref->slot, task.level == 0 ? kLeafPage : kInnerPage, true,
                    task.ref->checksum)) {
      node = parse_node(page, task.level);
    }
    if (!node) {
      task.ref->corrupt = true;
      ++counters.verification_failures;
      report_failure(task.ref->slot, 1, "read");
      mark_unhealthy(task.lower.empty() ? nullptr : key_bytes(task.lower),
                     task.upper.empty() ? nullptr : key_bytes(task.upper));
      recovery.status = BTreeStatus::kCorrupt;
      return;
    }
    node->parent = task.parent;
    node->written_generation = durable_generation;
    task.ref->node = std::move(node);
    Node* n = task.ref->node.get();
    if (n->leaf) {
      lru_push_front(n);
      return;
    }
    if (n->level < 2) return;  // its children are leaves: read when needed
    for (size_t i = 0; i < n->children.size(); ++i) {
      LoadTask child;
      child.ref = &n->children[i];
      child.parent = n;
      child.level = static_cast<uint8_t>(n->level - 1);
      child.lower = i > 0 ? n->separators[i - 1] : task.lower;
      child.upper = i < n->separators.size() ? n->separators[i] : task.upper;
      load_tasks.push_back(std::move(child));
    }
  }

  // --- The queue
  // ----------------------------------------------------------------------------------

  bool idle() const { return queue.empty() && !recovering && !read_in_flight && !in_pump; }

  Step run_op(Op& op) {
    switch (op.type) {
      case OpType::kGet:
        return run_get(op.key.data(), op.get_done);
      case OpType::kPut:
        return run_put(op.item, op.status_done);
      case OpType::kPutEncoded:
        return run_put_encoded(op.key, op.status_done);
      case OpType::kErase:
        return run_erase(op.key.data(), op.status_done);
      case OpType::kScan:
        return run_scan(op);
      case OpType::kClear:
        run_clear();
        op.status_done(BTreeStatus::kOk);
        return Step::kDone;
      case OpType::kCheckpoint:
        return run_checkpoint(op);
      case OpType::kDigest:
        return run_digest(op);
      case OpType::kScrub:
        return run_scrub(op);
      case OpType::kRangeDigest:
        return run_range_digest(op);
      case OpType::kRepair:
        return run_repair(op);
    }
    return Step::kDone;
  }

  void pump() {
    if (in_pump || recovering) return;
    in_pump = true;
    while (!queue.empty() && !read_in_flight) {
      if (run_op(queue.front()) == Step::kWait) break;
      queue.pop_front();
      read_ready = false;  // a read the finished operation did not consume is stale now
      maybe_evict();
    }
    in_pump = false;
    maybe_evict();
  }

  // Queues an operation that could not complete at once. REQUIRES: the queue has room.
  void enqueue(Op op) {
    DYN_ASSERT(queue.size() < options.max_queued_operations);
    queue.push_back(std::move(op));
    pump();
  }

  void walk_stats(const Node* n, BTreeStats& s) const {
    ++s.resident_pages;
    if (n->dirty) ++s.dirty_pages;
    s.memory_bytes += sizeof(Node) + n->data.capacity() + n->ends.capacity() * sizeof(uint16_t) +
                      n->children.capacity() * sizeof(ChildRef) +
                      n->separators.capacity() * sizeof(std::string);
    for (const std::string& sep : n->separators) {
      if (sep.capacity() > 15) s.memory_bytes += sep.capacity() + 1;
    }
    for (const ChildRef& c : n->children) {
      if (c.node) walk_stats(c.node.get(), s);
    }
  }
};

// --- The public API
// -------------------------------------------------------------------------------

BTree::BTree(sim::Disk& disk, BTreeOptions options)
    : impl_(std::make_unique<Impl>(*this, disk, options)) {}

BTree::~BTree() = default;

void BTree::recover(RecoverDone done) {
  impl_->start_recovery(std::move(done));
}

void BTree::get(const PrimaryKey& key, GetDone done) {
  Impl& m = *impl_;
  if (m.idle()) {
    m.key_scratch.clear();
    encode_key(key, m.key_scratch);
    if (m.run_get(m.key_scratch.data(), done) == Impl::Step::kDone) {
      m.maybe_evict();
      return;
    }
  }
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull, std::nullopt);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kGet;
  encode_key(key, op.key);
  op.get_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::put(Item item, StatusDone done) {
  Impl& m = *impl_;
  if (m.idle() && m.run_put(item, done) == Impl::Step::kDone) {
    m.maybe_evict();
    return;
  }
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kPut;
  op.item = std::move(item);
  op.status_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::put_encoded(std::span<const uint8_t> canonical, StatusDone done) {
  Impl& m = *impl_;
  if (m.idle() && m.run_put_encoded(canonical, done) == Impl::Step::kDone) {
    m.maybe_evict();
    return;
  }
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kPutEncoded;
  op.key.assign(canonical.begin(), canonical.end());
  op.status_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::erase(const PrimaryKey& key, StatusDone done) {
  Impl& m = *impl_;
  if (m.idle()) {
    m.key_scratch.clear();
    encode_key(key, m.key_scratch);
    if (m.run_erase(m.key_scratch.data(), done) == Impl::Step::kDone) {
      m.maybe_evict();
      return;
    }
  }
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kErase;
  encode_key(key, op.key);
  op.status_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::scan(std::optional<PrimaryKey> from, uint32_t max_items, ScanDone done) {
  Impl& m = *impl_;
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull, {}, std::nullopt);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kScan;
  if (from.has_value()) encode_key(*from, op.key);
  op.max_items = max_items;
  op.scan_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::clear(StatusDone done) {
  Impl& m = *impl_;
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kClear;
  op.status_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::checkpoint(CheckpointMetadata metadata, StatusDone done) {
  Impl& m = *impl_;
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kCheckpoint;
  op.metadata = std::move(metadata);
  op.status_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::digest(DigestDone done) {
  Impl& m = *impl_;
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull, 0, 0);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kDigest;
  op.digest_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::scrub_pages(ScrubCursor cursor, uint32_t max_pages, ScrubDone done) {
  Impl& m = *impl_;
  if (m.queue.size() >= m.options.max_queued_operations) {
    ScrubStep step;
    step.status = BTreeStatus::kQueueFull;
    step.next = std::move(cursor);
    done(std::move(step));
    return;
  }
  auto run = std::make_unique<Impl::ScrubRun>();
  run->stage = cursor.stage_;
  run->index = cursor.index_;
  run->key = std::move(cursor.key_);
  run->rank = cursor.rank_;
  run->max_pages = max_pages;
  run->done = [done = std::move(done)](Impl::ScrubRun& finished) {
    ScrubStep step = std::move(finished.result);
    step.next.stage_ = finished.stage;
    step.next.index_ = finished.index;
    step.next.key_ = std::move(finished.key);
    step.next.rank_ = finished.rank;
    done(std::move(step));
  };
  Impl::Op op;
  op.type = Impl::OpType::kScrub;
  op.scrub = std::move(run);
  m.enqueue(std::move(op));
}

void BTree::range_digest(KeyRangeBounds range, DigestDone done) {
  Impl& m = *impl_;
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull, 0, 0);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kRangeDigest;
  if (range.begin.has_value()) encode_key(*range.begin, op.key);
  if (range.end.has_value()) {
    op.has_end = true;
    encode_key(*range.end, op.end_key);
  }
  op.digest_done = std::move(done);
  m.enqueue(std::move(op));
}

void BTree::repair_range(KeyRangeBounds range, std::vector<Item> items, StatusDone done) {
  Impl& m = *impl_;
  DYN_ASSERT_MSG(!range.begin || !range.end || *range.begin < *range.end,
                 "repair_range: the range is empty");
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.key() < b.key(); });
  for (size_t i = 0; i < items.size(); ++i) {
    const PrimaryKey& key = items[i].key();
    DYN_ASSERT_MSG((!range.begin || *range.begin <= key) && (!range.end || key < *range.end),
                   "repair_range: an item lies outside the range");
    DYN_ASSERT_MSG(i == 0 || items[i - 1].key() < key, "repair_range: two items share a key");
  }
  if (m.queue.size() >= m.options.max_queued_operations) {
    done(BTreeStatus::kQueueFull);
    return;
  }
  Impl::Op op;
  op.type = Impl::OpType::kRepair;
  if (range.begin.has_value()) encode_key(*range.begin, op.key);
  if (range.end.has_value()) {
    op.has_end = true;
    encode_key(*range.end, op.end_key);
  }
  op.items = std::move(items);
  op.status_done = std::move(done);
  op.repair = std::make_unique<Impl::RepairRun>();
  op.repair->bounds = std::move(range);
  m.enqueue(std::move(op));
}

void BTree::mark_range_unhealthy(KeyRangeBounds range) {
  for (const KeyRangeBounds& listed : unhealthy_) {
    if (listed.begin == range.begin && listed.end == range.end) return;
  }
  unhealthy_.push_back(std::move(range));
}

uint64_t BTree::content_digest() const {
  return impl_->content_digest;
}
uint64_t BTree::item_count() const {
  return impl_->item_count;
}

BTreeStats BTree::stats() const {
  const Impl& m = *impl_;
  BTreeStats s = m.counters;
  s.items = m.item_count;
  s.pages_in_tree = m.pages_in_tree;
  s.free_page_slots = m.free_slots;
  if (m.root.node) m.walk_stats(m.root.node.get(), s);
  s.memory_bytes += sizeof(Impl) + (m.allocated.capacity() + m.releasing.capacity()) * 8 +
                    m.vacated.capacity() * 8 + m.key_scratch.capacity() +
                    m.record_scratch.capacity() + m.canonical_scratch.capacity();
  for (const auto& [id, bytes] : m.pending_chains) s.memory_bytes += bytes.capacity() + 64;
  for (const auto& [slot, bytes] : m.chain_cache) s.memory_bytes += bytes.capacity() + 64;
  for (const auto& image : m.unconfirmed_chains) s.memory_bytes += image.bytes.capacity();
  return s;
}

bool BTree::sector_referenced(uint64_t disk_sector) const {
  const Impl& m = *impl_;
  const uint64_t first = m.options.region_offset_bytes / kPageBytes;
  if (disk_sector < first || disk_sector >= first + m.options.region_sectors) return false;
  const uint64_t slot = disk_sector - first;
  if (slot < kSuperblockSlots) return static_cast<int>(slot) == m.durable_super_slot;
  return m.is_allocated(slot) && !m.is_releasing(slot);
}

std::optional<uint64_t> BTree::leaf_sector_for(const PrimaryKey& key) const {
  const Impl& m = *impl_;
  std::vector<uint8_t> encoded;
  encode_key(key, encoded);
  const ChildRef* ref = &m.root;
  while (ref->node && !ref->node->leaf) {
    ref = &ref->node->children[m.child_index(ref->node.get(), encoded.data())];
  }
  if (ref->slot == kNoSlot) return std::nullopt;
  return m.options.region_offset_bytes / kPageBytes + ref->slot;
}

void BTree::drop_clean_pages() {
  Impl& m = *impl_;
  Node* n = m.lru_tail;
  while (n != nullptr) {
    Node* previous = n->lru_prev;
    if (m.evictable(n)) m.evict(n);
    n = previous;
  }
}

}  // namespace dynasim::model
