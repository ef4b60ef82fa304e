#include "model/partition_map.h"

#include <algorithm>
#include <string>

#include "sim/check.h"

namespace dynasim::model {

PartitionId PartitionIdSource::next() {
  DYN_ASSERT_MSG(next_ != UINT32_MAX, "partition ids exhausted");
  return PartitionId(next_++);
}

const char* to_string(SplitStatus status) {
  switch (status) {
    case SplitStatus::kOk:
      return "ok";
    case SplitStatus::kUnknownPartition:
      return "unknown_partition";
    case SplitStatus::kSplitHashOutside:
      return "split_hash_outside";
  }
  return "?";
}

PartitionMap PartitionMap::uniform(TableId table, uint32_t count, PartitionIdSource& ids,
                                   PartitionMapOptions options) {
  DYN_ASSERT(count >= 1);
  std::vector<PartitionRange> ranges;
  ranges.reserve(count);
  const unsigned __int128 span = static_cast<unsigned __int128>(1) << 64;
  for (uint32_t i = 0; i < count; ++i) {
    PartitionRange range;
    range.id = ids.next();
    range.hash_begin = static_cast<uint64_t>(span * i / count);
    range.hash_end = static_cast<uint64_t>(span * (i + 1) / count - 1);
    range.version = 1;
    ranges.push_back(range);
  }
  return from_ranges(table, std::move(ranges), options);
}

PartitionMap PartitionMap::from_ranges(TableId table, std::vector<PartitionRange> ranges,
                                       PartitionMapOptions options) {
  PartitionMap map(table, options);
  map.ranges_ = std::move(ranges);
  for (const PartitionRange& range : map.ranges_) {
    DYN_ASSERT_MSG(map.begin_by_id_.emplace(range.id, range.hash_begin).second,
                   "duplicate partition id " + std::to_string(range.id.value));
    map.version_ = std::max(map.version_, range.version);
  }
  map.check_invariants();
  return map;
}

size_t PartitionMap::index_of(uint64_t hash) const {
  DYN_ASSERT(!ranges_.empty());
  // The first range beginning after `hash`; the one before it holds `hash` (the first range
  // begins at 0, so there always is one).
  auto after = std::upper_bound(
      ranges_.begin(), ranges_.end(), hash,
      [](uint64_t value, const PartitionRange& range) { return value < range.hash_begin; });
  if (options_.plant_lookup_ceiling) {
    // The planted bug: the range beginning at or after the hash.
    auto at_or_after = std::lower_bound(
        ranges_.begin(), ranges_.end(), hash,
        [](const PartitionRange& range, uint64_t value) { return range.hash_begin < value; });
    if (at_or_after != ranges_.end()) return static_cast<size_t>(at_or_after - ranges_.begin());
  }
  DYN_ASSERT(after != ranges_.begin());
  return static_cast<size_t>(after - ranges_.begin()) - 1;
}

const PartitionRange& PartitionMap::lookup(uint64_t hash) const {
  return ranges_[index_of(hash)];
}

const PartitionRange* PartitionMap::find(PartitionId id) const {
  auto found = begin_by_id_.find(id);
  if (found == begin_by_id_.end()) return nullptr;
  const PartitionRange& range = ranges_[index_of(found->second)];
  DYN_ASSERT(range.id == id);
  return &range;
}

SplitOutcome PartitionMap::split(PartitionId parent, uint64_t split_hash, PartitionIdSource& ids,
                                 sim::SimTime local_now) {
  SplitOutcome outcome;
  auto found = begin_by_id_.find(parent);
  if (found == begin_by_id_.end()) {
    outcome.status = SplitStatus::kUnknownPartition;
    return outcome;
  }
  const size_t index = index_of(found->second);
  const PartitionRange old = ranges_[index];
  DYN_ASSERT(old.id == parent);
  if (split_hash <= old.hash_begin || split_hash > old.hash_end) {
    outcome.status = SplitStatus::kSplitHashOutside;
    return outcome;
  }
  ++version_;
  PartitionRange low{ids.next(), old.hash_begin, split_hash - 1, version_};
  PartitionRange high{ids.next(), split_hash, old.hash_end, version_};
  if (options_.plant_child_gap && low.hash_end > low.hash_begin) --low.hash_end;
  ranges_[index] = low;
  ranges_.insert(ranges_.begin() + static_cast<std::ptrdiff_t>(index) + 1, high);
  begin_by_id_.erase(found);
  begin_by_id_.emplace(low.id, low.hash_begin);
  begin_by_id_.emplace(high.id, high.hash_begin);
  retired_.insert(parent);
  history_.push_back(SplitRecord{parent, low.id, high.id, old.hash_begin, old.hash_end, split_hash,
                                 version_, local_now});
  check_invariants();
  outcome.low = low;
  outcome.high = high;
  outcome.map_version = version_;
  return outcome;
}

void PartitionMap::check_invariants() const {
  DYN_ASSERT_MSG(!ranges_.empty(), "a partition map with no partitions");
  DYN_ASSERT_MSG(ranges_.front().hash_begin == 0, "the first range does not begin at 0");
  DYN_ASSERT_MSG(ranges_.back().hash_end == UINT64_MAX, "the last range does not end at 2^64-1");
  DYN_ASSERT(begin_by_id_.size() == ranges_.size());
  for (size_t i = 0; i < ranges_.size(); ++i) {
    const PartitionRange& range = ranges_[i];
    DYN_ASSERT_MSG(range.hash_begin <= range.hash_end,
                   "partition " + std::to_string(range.id.value) + " has an empty range");
    if (i > 0) {
      DYN_ASSERT_MSG(
          ranges_[i - 1].hash_end != UINT64_MAX && range.hash_begin == ranges_[i - 1].hash_end + 1,
          "partitions " + std::to_string(ranges_[i - 1].id.value) + " and " +
              std::to_string(range.id.value) + " leave a gap or overlap");
    }
    DYN_ASSERT(range.version <= version_);
    auto by_id = begin_by_id_.find(range.id);
    DYN_ASSERT_MSG(by_id != begin_by_id_.end() && by_id->second == range.hash_begin,
                   "partition " + std::to_string(range.id.value) + " is not indexed");
    DYN_ASSERT_MSG(!retired_.contains(range.id),
                   "retired partition " + std::to_string(range.id.value) + " is live");
  }
}

}  // namespace dynasim::model
