#include "gameday/split_recorder.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>

namespace dynasim::gameday {

void SplitRecorder::on_split_committed(model::GroupId parent, model::GroupId child,
                                       uint32_t replica, sim::Address node, uint64_t parent_begin,
                                       uint64_t parent_end, uint64_t split_hash, bool for_size,
                                       sim::SimTime decided_local, sim::SimTime local_now) {
  (void)replica, (void)node;
  if (by_child_.contains(child.value)) return;
  Split split;
  split.at = simulation_->now();
  split.parent = parent.value;
  split.child = child.value;
  split.parent_begin = parent_begin;
  split.parent_end = parent_end;
  split.split_hash = split_hash;
  split.for_size = for_size;
  split.duration = sim::Duration(std::max<int64_t>(0, local_now.ns - decided_local.ns));
  by_child_[child.value] = splits_.size();
  splits_.push_back(split);
}

uint32_t SplitRecorder::group_for(uint32_t initial, uint64_t hash) const {
  uint32_t group = initial;
  // Splits in order: a child takes the hash from its parent when the hash lies in its half.
  for (const Split& split : splits_) {
    if (split.parent == group && hash >= split.split_hash && hash <= split.parent_end) {
      group = split.child;
    }
  }
  return group;
}

nlohmann::json SplitRecorder::report() const {
  nlohmann::json out = nlohmann::json::array();
  for (const Split& split : splits_) {
    char hash[24];
    std::snprintf(hash, sizeof hash, "0x%016" PRIx64, split.split_hash);
    out.push_back({{"time_s", static_cast<double>(split.at.ns) / 1e9},
                   {"parent", split.parent},
                   {"children", {split.parent, split.child}},
                   {"split_hash", hash},
                   {"reason", split.for_size ? "size" : "consumption"},
                   {"duration_s", static_cast<double>(split.duration.ns) / 1e9}});
  }
  return out;
}

}  // namespace dynasim::gameday
