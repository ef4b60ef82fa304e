#include "gameday/admission_checker.h"

#include <algorithm>

#include "sim/check.h"

namespace dynasim::gameday {

namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

// rate (milli units per second) * duration, in milli units, in 128 bits.
int64_t milli_units_over(int64_t rate_milli_units_per_second, sim::Duration duration) {
  const __int128 product =
      static_cast<__int128>(rate_milli_units_per_second) * duration.ns / kNanosPerSecond;
  return product > INT64_MAX ? INT64_MAX : static_cast<int64_t>(product);
}

}  // namespace

namespace {

model::PartitionAllocation capped(model::PartitionAllocation allocation) {
  // The node caps every allocation at the partition ceiling (model/admission.h); so does the bound.
  allocation.read_milli_units_per_second =
      std::min(allocation.read_milli_units_per_second,
               model::kPartitionMaxReadUnitsPerSecond * model::kMilliUnitsPerUnit);
  allocation.write_milli_units_per_second =
      std::min(allocation.write_milli_units_per_second,
               model::kPartitionMaxWriteUnitsPerSecond * model::kMilliUnitsPerUnit);
  return allocation;
}

}  // namespace

AdmissionChecker::AdmissionChecker(model::PartitionAllocation allocation,
                                   model::AdmissionOptions options)
    : allocation_(capped(allocation)), options_(options) {}

int64_t AdmissionChecker::depth_milli_units(int64_t rate_milli_units_per_second) const {
  return milli_units_over(rate_milli_units_per_second,
                          sim::seconds(options_.allocated_depth_seconds)) +
         milli_units_over(rate_milli_units_per_second, options_.burst_window);
}

int64_t AdmissionChecker::rate_for(sim::Address node, bool write) const {
  auto found = node_allocation_.find(node);
  const model::PartitionAllocation& allocation =
      found == node_allocation_.end() ? allocation_ : found->second;
  return write ? allocation.write_milli_units_per_second : allocation.read_milli_units_per_second;
}

__int128 AdmissionChecker::integral_at(const Series& series, int64_t now_ns) const {
  return series.integral + static_cast<__int128>(series.rate) * (now_ns - series.anchor_ns);
}

void AdmissionChecker::on_allocation_set(sim::Address node, sim::SimTime local_now,
                                         model::PartitionAllocation allocation) {
  allocation = capped(allocation);
  auto [entry, inserted] = node_allocation_.try_emplace(node, allocation_);
  if (entry->second == allocation) return;
  (void)inserted;
  entry->second = allocation;
  ++allocation_changes_;
  // Every series of the node: the old rate up to now, the new one from now.
  for (auto it = series_.lower_bound(SeriesKey{node, 0, 0, false});
       it != series_.end() && std::get<0>(it->first) == node; ++it) {
    Series& series = it->second;
    if (!series.started) continue;
    if (local_now.ns < series.last_ns) {
      // The clock stepped back: the next admission starts a new segment.
      series.started = false;
      continue;
    }
    series.integral = integral_at(series, local_now.ns);
    series.anchor_ns = local_now.ns;
    series.last_ns = local_now.ns;
    series.rate = std::get<3>(it->first) ? allocation.write_milli_units_per_second
                                         : allocation.read_milli_units_per_second;
  }
}

void AdmissionChecker::on_admitted(model::GroupId group, sim::Address node, uint64_t buckets,
                                   sim::SimTime local_now, int64_t milli_units, bool write,
                                   bool used_burst) {
  DYN_ASSERT(milli_units >= 0);
  (write ? admitted_writes_ : admitted_reads_) += 1;
  if (used_burst) ++admitted_using_burst_;
  Series& series = series_[SeriesKey{node, group.value, buckets, write}];
  if (!series.started || local_now.ns < series.last_ns) {
    // A new series, or the clock stepped back: a new segment.
    series = Series{};
    series.started = true;
    series.rate = rate_for(node, write);
    series.anchor_ns = local_now.ns;
    series.best_start = -static_cast<__int128>(depth_milli_units(series.rate)) * kNanosPerSecond;
  }
  series.last_ns = local_now.ns;
  const int64_t rate = series.rate;
  const __int128 integral = integral_at(series, local_now.ns);
  // Admission j at t_j with cost c_j; S_j the segment's sum up to j. The worst window ending at j
  // starts at some admission i <= j: S_j - S_{i-1} - (R(t_j) - R(t_i)) - depth(rate(t_i)),
  // scaled by 1e9.
  series.best_start = std::max(
      series.best_start, integral - series.prefix * kNanosPerSecond -
                             static_cast<__int128>(depth_milli_units(rate)) * kNanosPerSecond);
  series.prefix += milli_units;
  const __int128 excess = series.prefix * kNanosPerSecond - integral + series.best_start;
  const __int128 excess_milli = excess / kNanosPerSecond;
  worst_excess_milli_units_ =
      std::max(worst_excess_milli_units_,
               excess_milli > INT64_MAX ? INT64_MAX : static_cast<int64_t>(excess_milli));
  if (excess <= 0) return;
  if (violations_++ == 0) {
    first_violation_ =
        std::string(write ? "writes" : "reads") + " admitted on group " +
        std::to_string(group.value) + " at node host " + std::to_string(node.host.value) +
        " exceed the allocation's integral over the window + allocated depth + burst depth by " +
        std::to_string(static_cast<int64_t>(excess_milli)) +
        " milli units, in a window ending at " + sim::format_time(local_now) +
        " on its clock (allocation now " + std::to_string(rate) + " milli units/s, depths " +
        std::to_string(depth_milli_units(rate)) + " milli units)";
  }
}

nlohmann::json AdmissionChecker::report() const {
  return {{"passed", passed()},
          {"first_violation", first_violation_},
          {"violations", violations_},
          {"admitted_reads", admitted_reads_},
          {"admitted_writes", admitted_writes_},
          {"admitted_using_burst", admitted_using_burst_},
          {"series", series_.size()},
          {"worst_excess_milli_units", worst_excess_milli_units_ == INT64_MIN
                                           ? nlohmann::json(nullptr)
                                           : nlohmann::json(worst_excess_milli_units_)},
          {"allocation_milli_units_per_second",
           {{"read", allocation_.read_milli_units_per_second},
            {"write", allocation_.write_milli_units_per_second}}},
          {"burst_window_s", static_cast<double>(options_.burst_window.ns) / 1e9},
          {"allocation_changes", allocation_changes_}};
}

CapacityRecorder::CapacityRecorder(sim::MetricSink* counters, model::CapacityMode mode,
                                   model::TableCapacity initial)
    : counters_(counters), mode_(mode), initial_(initial), current_(initial) {
  DYN_ASSERT(counters_ != nullptr);
  counters_->add("capacity.provisioned_read_units", initial.read_units_per_second);
  counters_->add("capacity.provisioned_write_units", initial.write_units_per_second);
  timeline_.push_back(Point{sim::SimTime::zero(), initial});
}

void CapacityRecorder::on_capacity(sim::SimTime local_now, model::TableCapacity capacity,
                                   model::AllocationVersion version) {
  (void)version;
  const bool changed = capacity.read_units_per_second != current_.read_units_per_second ||
                       capacity.write_units_per_second != current_.write_units_per_second;
  // The controller's first announcement restates the initial capacity: not a change.
  if (!changed) return;
  ++changes_;
  counters_->add("capacity.provisioned_read_units",
                 capacity.read_units_per_second - current_.read_units_per_second);
  counters_->add("capacity.provisioned_write_units",
                 capacity.write_units_per_second - current_.write_units_per_second);
  current_ = capacity;
  if (timeline_.size() < kMaxTimeline) timeline_.push_back(Point{local_now, capacity});
}

void CapacityRecorder::on_data_point(sim::SimTime local_now, int64_t consumed_read_milli_units,
                                     int64_t consumed_write_milli_units) {
  (void)local_now;
  (void)consumed_read_milli_units;
  (void)consumed_write_milli_units;
  ++data_points_;
}

nlohmann::json CapacityRecorder::report() const {
  nlohmann::json timeline = nlohmann::json::array();
  for (const Point& point : timeline_) {
    timeline.push_back({static_cast<double>(point.at.ns) / 1e9,
                        point.capacity.read_units_per_second,
                        point.capacity.write_units_per_second});
  }
  return {{"mode", model::to_string(mode_)},
          {"throttling_error", model::throttling_error_name(mode_)},
          {"read_units",
           {{"start", initial_.read_units_per_second}, {"end", current_.read_units_per_second}}},
          {"write_units",
           {{"start", initial_.write_units_per_second}, {"end", current_.write_units_per_second}}},
          {"changes", changes_},
          {"data_points", data_points_},
          {"timeline", timeline}};
}

}  // namespace dynasim::gameday
