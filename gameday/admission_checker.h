// The game day's admission check (docs/admission.md, "In a game day"): admission never exceeds
// what was granted.
//
// P22 section 4.1.1: a partition may take its allocated rate, plus what its allocated bucket holds
// and the burst it saved (up to 300 seconds of unused capacity). So over any window [t, t + w] of
// a node's clock, the capacity a node admitted on one partition, in one direction (reads or
// writes), is at most
//     integral of the allocation over [t, t + w] + allocated depth + burst depth at t
// (allocated depth: AdmissionOptions::allocated_depth_seconds of the allocation in force at t;
// burst depth: burst_window of it). With a static allocation that is allocation * w + depths. The
// allocation changes when a capacity controller (model/capacity_controller.h) updates it: the
// nodes tell the check through model::AllocationObserver when, on their clocks, each allocation
// took effect (the buckets refill at the old rate up to that instant and hold at most the depths
// at any instant, so the bound holds across changes). The same bound
// tests/model/admission_test.cc's PartitionThroughputBound proves on NodeAdmission alone; here it
// is judged on every admission the storage nodes report (StorageObserver::on_admitted) in a whole
// run, with healing, restarts and clock steps.
//
// Windows are on the admitting node's own clock, which the buckets refill by. A series is one set
// of buckets (the observer's `buckets` id: new buckets start full, so the bound restarts with
// them); a clock reading below the series' last one (the clock stepped back; the buckets then
// lose time and never credit any twice) starts a new segment, and windows are judged within one
// segment. The check keeps, per series, the prefix sum of admitted units, the integral of the
// allocation up to its last change, and the best window start so far (O(1) per admission, O(series
// on the node) per allocation change; exact, in 128-bit integers).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "model/admission.h"
#include "model/capacity_controller.h"
#include "model/storage_protocol.h"
#include "sim/env.h"

namespace dynasim::gameday {

class AdmissionChecker final : public model::StorageObserver, public model::AllocationObserver {
 public:
  // `allocation` is every partition's at the start (and a node's until it reports another);
  // `options` the nodes' (its depths make the bound).
  AdmissionChecker(model::PartitionAllocation allocation, model::AdmissionOptions options);

  // model::StorageObserver (the other hooks: nothing to do).
  void on_applied(model::GroupId, uint32_t, model::LogIndex, uint64_t) override {}
  void on_lease(model::GroupId, uint32_t, sim::SimTime, sim::SimTime) override {}
  void on_strong_read(model::GroupId, uint32_t, sim::SimTime) override {}
  void on_admitted(model::GroupId group, sim::Address node, uint64_t buckets,
                   sim::SimTime local_now, int64_t milli_units, bool write,
                   bool used_burst) override;
  // model::AllocationObserver: from `local_now` on its clock, `node` enforces `allocation`.
  void on_allocation_set(sim::Address node, sim::SimTime local_now,
                         model::PartitionAllocation allocation) override;

  bool passed() const { return violations_ == 0; }
  const std::string& first_violation() const { return first_violation_; }
  // {"passed", "first_violation", "violations", "admitted_reads", "admitted_writes",
  //  "admitted_using_burst", "series", "worst_excess_milli_units", "allocation_changes"}.
  nlohmann::json report() const;

  // The bound's constant part for a rate (allocated depth + burst depth), in milli units.
  int64_t depth_milli_units(int64_t rate_milli_units_per_second) const;

 private:
  // R(t): the integral of the allocation from the segment's start, in milli units * 1e9.
  struct Series {
    int64_t last_ns = INT64_MIN;
    __int128 prefix = 0;  // milli units admitted in this segment before the current one
    // max over the segment's admissions i of R(t_i) - S_{i-1} * 1e9 - depth(rate(t_i)) * 1e9
    __int128 best_start = 0;
    int64_t rate = 0;       // the allocation in force, milli units per second
    int64_t anchor_ns = 0;  // R is known exactly at anchor_ns:
    __int128 integral = 0;  // R(anchor_ns)
    bool started = false;
  };
  __int128 integral_at(const Series& series, int64_t now_ns) const;
  int64_t rate_for(sim::Address node, bool write) const;
  // (node, group, buckets id, write)
  using SeriesKey = std::tuple<sim::Address, uint32_t, uint64_t, bool>;

  model::PartitionAllocation allocation_;
  model::AdmissionOptions options_;
  std::map<sim::Address, model::PartitionAllocation> node_allocation_;  // after their changes
  uint64_t allocation_changes_ = 0;
  std::map<SeriesKey, Series> series_;
  uint64_t admitted_reads_ = 0;
  uint64_t admitted_writes_ = 0;
  uint64_t admitted_using_burst_ = 0;
  uint64_t violations_ = 0;
  int64_t worst_excess_milli_units_ = INT64_MIN;
  std::string first_violation_;
};

// What the table's capacity controller did in a run (model::CapacityObserver), for the summary's
// "capacity" section and the metrics: each change of the capacity in effect, on the controller's
// clock, and the levels as the world counters "capacity.provisioned_read_units" and
// "capacity.provisioned_write_units" (which metrics.csv writes as levels, not increases). It
// stands outside the system: it only records.
class CapacityRecorder final : public model::CapacityObserver {
 public:
  // `initial`: the capacity before the controller's first report (the scenario's).
  CapacityRecorder(sim::MetricSink* counters, model::CapacityMode mode,
                   model::TableCapacity initial);

  void on_capacity(sim::SimTime local_now, model::TableCapacity capacity,
                   model::AllocationVersion version) override;
  void on_data_point(sim::SimTime local_now, int64_t consumed_read_milli_units,
                     int64_t consumed_write_milli_units) override;

  // {"mode", "throttling_error", "read_units": {"start", "end"}, "write_units": {...},
  //  "changes", "data_points", "timeline": [[time_s, read units, write units], ...]}.
  nlohmann::json report() const;

 private:
  struct Point {
    sim::SimTime at;
    model::TableCapacity capacity;
  };
  // Bounds the timeline; changes beyond it are counted, not listed. One change per data point
  // at most: 10,000 is a week of minutes.
  static constexpr size_t kMaxTimeline = 10'000;

  sim::MetricSink* counters_;
  model::CapacityMode mode_;
  model::TableCapacity initial_;
  model::TableCapacity current_;
  uint64_t changes_ = 0;
  uint64_t data_points_ = 0;
  std::vector<Point> timeline_;
};

}  // namespace dynasim::gameday
