// The game day's admission check (docs/admission.md, "In a game day"): admission never exceeds
// what was granted.
//
// P22 section 4.1.1: a partition may take its allocated rate, plus what its allocated bucket holds
// and the burst it saved (up to 300 seconds of unused capacity). So over any window [t, t + w] of
// a node's clock, the capacity a node admitted on one partition, in one direction (reads or
// writes), is at most
//     allocation * w + allocated depth + burst depth
// (allocated depth: AdmissionOptions::allocated_depth_seconds of the allocation; burst depth:
// burst_window of it). The same bound tests/model/admission_test.cc's PartitionThroughputBound
// proves on NodeAdmission alone; here it is judged on every admission the storage nodes report
// (StorageObserver::on_admitted) in a whole run, with healing, restarts and clock steps.
//
// Windows are on the admitting node's own clock, which the buckets refill by. A series is one set
// of buckets (the observer's `buckets` id: new buckets start full, so the bound restarts with
// them); a clock reading below the series' last one (the clock stepped back; the buckets then
// lose time and never credit any twice) starts a new segment, and windows are judged within one
// segment. The check keeps, per series, two numbers: the prefix sum of admitted units and the
// best window start so far (O(1) per admission; exact, in 128-bit integers).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>

#include "model/admission.h"
#include "model/storage_protocol.h"

namespace dynasim::gameday {

class AdmissionChecker final : public model::StorageObserver {
 public:
  // `allocation` is every partition's; `options` the nodes' (its depths make the bound).
  AdmissionChecker(model::PartitionAllocation allocation, model::AdmissionOptions options);

  // model::StorageObserver (the other hooks: nothing to do).
  void on_applied(model::GroupId, uint32_t, model::LogIndex, uint64_t) override {}
  void on_lease(model::GroupId, uint32_t, sim::SimTime, sim::SimTime) override {}
  void on_strong_read(model::GroupId, uint32_t, sim::SimTime) override {}
  void on_admitted(model::GroupId group, sim::Address node, uint64_t buckets,
                   sim::SimTime local_now, int64_t milli_units, bool write,
                   bool used_burst) override;

  bool passed() const { return violations_ == 0; }
  const std::string& first_violation() const { return first_violation_; }
  // {"passed", "first_violation", "violations", "admitted_reads", "admitted_writes",
  //  "admitted_using_burst", "series", "worst_excess_milli_units"}.
  nlohmann::json report() const;

  // The bound's constant part for a rate (allocated depth + burst depth), in milli units.
  int64_t depth_milli_units(int64_t rate_milli_units_per_second) const;

 private:
  struct Series {
    int64_t last_ns = INT64_MIN;
    __int128 prefix = 0;      // milli units admitted in this segment before the current one
    __int128 best_start = 0;  // max over the segment's admissions i of rate * t_i - S_{i-1} * 1e9
    bool started = false;
  };
  // (node, group, buckets id, write)
  using SeriesKey = std::tuple<sim::Address, uint32_t, uint64_t, bool>;

  model::PartitionAllocation allocation_;
  model::AdmissionOptions options_;
  std::map<SeriesKey, Series> series_;
  uint64_t admitted_reads_ = 0;
  uint64_t admitted_writes_ = 0;
  uint64_t admitted_using_burst_ = 0;
  uint64_t violations_ = 0;
  int64_t worst_excess_milli_units_ = INT64_MIN;
  std::string first_violation_;
};

}  // namespace dynasim::gameday
