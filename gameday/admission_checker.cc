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

AdmissionChecker::AdmissionChecker(model::PartitionAllocation allocation,
                                   model::AdmissionOptions options)
    : options_(options) {
  // The node caps every allocation at the partition ceiling (model/admission.h); so does the bound.
  allocation_.read_milli_units_per_second =
      std::min(allocation.read_milli_units_per_second,
               model::kPartitionMaxReadUnitsPerSecond * model::kMilliUnitsPerUnit);
  allocation_.write_milli_units_per_second =
      std::min(allocation.write_milli_units_per_second,
               model::kPartitionMaxWriteUnitsPerSecond * model::kMilliUnitsPerUnit);
}

int64_t AdmissionChecker::depth_milli_units(int64_t rate_milli_units_per_second) const {
  return milli_units_over(rate_milli_units_per_second,
                          sim::seconds(options_.allocated_depth_seconds)) +
         milli_units_over(rate_milli_units_per_second, options_.burst_window);
}

void AdmissionChecker::on_admitted(model::GroupId group, sim::Address node, uint64_t buckets,
                                   sim::SimTime local_now, int64_t milli_units, bool write,
                                   bool used_burst) {
  DYN_ASSERT(milli_units >= 0);
  (write ? admitted_writes_ : admitted_reads_) += 1;
  if (used_burst) ++admitted_using_burst_;
  Series& series = series_[SeriesKey{node, group.value, buckets, write}];
  const int64_t rate =
      write ? allocation_.write_milli_units_per_second : allocation_.read_milli_units_per_second;
  if (!series.started || local_now.ns < series.last_ns) {
    // A new series, or the clock stepped back: a new segment.
    series = Series{};
    series.started = true;
    series.best_start = static_cast<__int128>(rate) * local_now.ns;
  }
  series.last_ns = local_now.ns;
  // Admission j at t_j with cost c_j; S_j the segment's sum up to j. The worst window ending at j
  // starts at some admission i <= j: S_j - S_{i-1} - rate * (t_j - t_i) - depth, scaled by 1e9.
  series.best_start = std::max(series.best_start, static_cast<__int128>(rate) * local_now.ns -
                                                      series.prefix * kNanosPerSecond);
  series.prefix += milli_units;
  const __int128 excess = series.prefix * kNanosPerSecond -
                          static_cast<__int128>(rate) * local_now.ns + series.best_start -
                          static_cast<__int128>(depth_milli_units(rate)) * kNanosPerSecond;
  const __int128 excess_milli = excess / kNanosPerSecond;
  worst_excess_milli_units_ =
      std::max(worst_excess_milli_units_,
               excess_milli > INT64_MAX ? INT64_MAX : static_cast<int64_t>(excess_milli));
  if (excess <= 0) return;
  if (violations_++ == 0) {
    first_violation_ =
        std::string(write ? "writes" : "reads") + " admitted on group " +
        std::to_string(group.value) + " at node host " + std::to_string(node.host.value) +
        " exceed allocation * window + allocated depth + burst depth by " +
        std::to_string(static_cast<int64_t>(excess_milli)) +
        " milli units, in a window ending at " + sim::format_time(local_now) +
        " on its clock (allocation " + std::to_string(rate) + " milli units/s, depths " +
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
          {"burst_window_s", static_cast<double>(options_.burst_window.ns) / 1e9}};
}

}  // namespace dynasim::gameday
