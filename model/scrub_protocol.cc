#include "model/scrub_protocol.h"

#include <algorithm>
#include <map>

#include "model/codec.h"

namespace dynasim::model {
namespace {

constexpr uint8_t kNoBound = 0;
constexpr uint8_t kBound = 1;
// A marker names few ranges (the fanout times the ranges that differed); more is not a marker.
constexpr uint32_t kMaxMarkerRanges = 4096;

// A bound travels as a present flag, then the key as an item with no attributes (the item's
// canonical encoding), behind its length.
void put_bound(std::vector<uint8_t>& out, const std::optional<PrimaryKey>& bound) {
  if (!bound) {
    codec::put_u8(out, kNoBound);
    return;
  }
  codec::put_u8(out, kBound);
  const size_t length_at = out.size();
  codec::put_u32(out, 0);
  Item(*bound).encode_to(out);
  const uint32_t length = static_cast<uint32_t>(out.size() - length_at - 4);
  for (int i = 0; i < 4; ++i) out[length_at + i] = static_cast<uint8_t>(length >> (8 * i));
}

bool get_bound(codec::Reader& in, std::optional<PrimaryKey>* bound) {
  const uint8_t present = in.u8();
  if (!in.ok || present > kBound) return false;
  if (present == kNoBound) {
    bound->reset();
    return true;
  }
  const uint32_t length = in.u32();
  if (!in.ok || in.bytes.size() - in.at < length) return false;
  Item holder;
  if (!Item::decode(in.bytes.data() + in.at, length, &holder) || !holder.attributes().empty()) {
    return false;
  }
  in.at += length;
  *bound = holder.key();
  return true;
}

}  // namespace

std::vector<uint8_t> DigestMarker::encode() const {
  std::vector<uint8_t> out;
  codec::put_u32(out, kDigestMarkerMagic);
  codec::put_u64(out, round);
  codec::put_u32(out, leader);
  codec::put_u32(out, depth);
  codec::put_u32(out, static_cast<uint32_t>(ranges.size()));
  for (const KeyRangeBounds& range : ranges) {
    put_bound(out, range.begin);
    put_bound(out, range.end);
  }
  return out;
}

bool DigestMarker::is_marker(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 4) return false;
  codec::Reader in{bytes};
  return in.u32() == kDigestMarkerMagic;
}

bool DigestMarker::decode(const std::vector<uint8_t>& bytes, DigestMarker* out) {
  codec::Reader in{bytes};
  if (in.u32() != kDigestMarkerMagic || !in.ok) return false;
  DigestMarker marker;
  marker.round = in.u64();
  marker.leader = in.u32();
  marker.depth = in.u32();
  const uint32_t count = in.u32();
  if (!in.ok || count > kMaxMarkerRanges) return false;
  marker.ranges.resize(count);
  for (KeyRangeBounds& range : marker.ranges) {
    if (!get_bound(in, &range.begin) || !get_bound(in, &range.end)) return false;
    if (range.begin && range.end && !(*range.begin < *range.end)) return false;
  }
  if (!in.ok || in.at != bytes.size()) return false;
  *out = std::move(marker);
  return true;
}

RangeVerdict judge_range(const std::vector<std::pair<uint32_t, RangeDigest>>& reports,
                         size_t expected) {
  RangeVerdict verdict;
  // Count each digest's holders; std::map keeps the tally's order independent of arrival.
  std::map<std::pair<uint64_t, uint64_t>, size_t> holders;
  for (const auto& [replica, digest] : reports) {
    if (digest.ok) ++holders[{digest.digest, digest.items}];
  }
  for (const auto& [value, count] : holders) {
    if (2 * count > expected) verdict.majority = RangeDigest{true, value.first, value.second};
  }
  if (!verdict.majority) return verdict;
  for (const auto& [replica, digest] : reports) {
    if (!digest.ok) continue;
    (digest == *verdict.majority ? verdict.agreeing : verdict.differing).push_back(replica);
  }
  std::sort(verdict.agreeing.begin(), verdict.agreeing.end());
  std::sort(verdict.differing.begin(), verdict.differing.end());
  return verdict;
}

std::vector<PrimaryKey> quantile_splits(const std::vector<PrimaryKey>& keys, uint32_t count) {
  std::vector<PrimaryKey> splits;
  if (count < 2 || keys.size() < 2) return splits;
  const size_t pieces = std::min<size_t>(count, keys.size());
  for (size_t i = 1; i < pieces; ++i) {
    const size_t at = i * keys.size() / pieces;
    if (splits.empty() || splits.back() < keys[at]) splits.push_back(keys[at]);
  }
  return splits;
}

std::vector<KeyRangeBounds> cut_range(const KeyRangeBounds& range,
                                      const std::vector<PrimaryKey>& splits) {
  std::vector<KeyRangeBounds> pieces;
  std::optional<PrimaryKey> begin = range.begin;
  for (const PrimaryKey& split : splits) {
    if (begin && !(*begin < split)) continue;
    if (range.end && !(split < *range.end)) break;
    pieces.push_back(KeyRangeBounds{begin, split});
    begin = split;
  }
  pieces.push_back(KeyRangeBounds{begin, range.end});
  return pieces;
}

}  // namespace dynasim::model
