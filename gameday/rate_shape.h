// The shape of a game-day workload in time and in bytes (docs/scenarios.md, "Rate shapes and
// phases", "Replaying CloudWatch", "Item sizes"):
// - RateShape: the whole table's offered rate, in operations per second, as a function of the time
//   since its phase began: constant, a linear ramp, a diurnal sine, a spike (rise, hold, fall),
//   or the replay of a CloudWatch export of consumed capacity, one value per minute;
// - ItemSizeDistribution: the payload size of each written item: fixed, uniform, lognormal or a
//   weighted histogram, bounded by DynamoDB's 400 KB item limit (Developer Guide, "Service,
//   account, and table quotas": "The maximum item size in DynamoDB is 400 KB");
// - the CloudWatch CSV reader and the conversion of consumed capacity units per minute into
//   operations per second, given the item sizes and the operation mix.
//
// The workload process (gameday/workload.h) draws its arrivals from a RateShape by thinning
// (Lewis and Shedler, 1979): candidates from a homogeneous Poisson process at the shape's maximum
// rate, each kept with probability rate(t) / maximum, which is an exact draw of the
// non-homogeneous Poisson process with intensity rate(t).
//
// Everything here is plain arithmetic in doubles on values read from the scenario, with
// sim::det_* for the transcendental functions, so g++ and clang++ give the same bits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sim/random.h"
#include "sim/time.h"

namespace dynasim::gameday {

// DynamoDB's item size limit (Developer Guide, "Service, account, and table quotas": 400 KB,
// counting attribute names and values). The workload applies it to the payload it writes.
inline constexpr uint64_t kMaxWorkloadItemBytes = 400 * 1024;

struct RateShape {
  enum class Kind : uint8_t { kConstant, kRamp, kDiurnal, kSpike, kReplay };
  Kind kind = Kind::kConstant;

  // kConstant.
  double constant_per_second = 0;
  // kRamp: from `from` at the phase's start, linearly to `to` at `over`, then `to`.
  double from_per_second = 0;
  double to_per_second = 0;
  sim::Duration over = sim::seconds(1);
  // kDiurnal: mean + amplitude * sin(2 pi (t + phase) / period). REQUIRES amplitude <= mean.
  double mean_per_second = 0;
  double amplitude_per_second = 0;
  sim::Duration period = sim::hours(24);
  sim::Duration phase = sim::Duration(0);
  // kSpike: base until `at`, a linear rise to `peak` over `rise`, `peak` for `hold`, a linear fall
  // back to base over `fall`, then base.
  double base_per_second = 0;
  double peak_per_second = 0;
  sim::Duration at = sim::Duration(0);
  sim::Duration rise = sim::Duration(0);
  sim::Duration hold = sim::Duration(0);
  sim::Duration fall = sim::Duration(0);
  // kReplay: the table's operations per second during each minute, from the phase's start; after
  // the last minute, 0 (the loader refuses phases longer than the replay).
  std::vector<double> per_minute_per_second;

  // Planted bug for RateShapeTest.PlantedRampIgnoringItsEndIsCaught: the ramp keeps its slope past
  // `over` instead of holding `to`. Never set outside tests.
  bool plant_ramp_ignores_end = false;

  // Operations per second of the whole table at `since_start` (>= 0) into the phase.
  double rate_at(sim::Duration since_start) const;
  // An upper bound of rate_at over [0, length), exact for every kind (the maximum of the
  // piecewise-linear or tabulated function, mean + amplitude for the sine).
  double max_rate(sim::Duration length) const;
  // The expected number of operations in [from, to): the integral of rate_at, in closed form.
  double expected_operations(sim::Duration from, sim::Duration to) const;

  static RateShape constant(double per_second);
  static RateShape ramp(double from, double to, sim::Duration over);
};
const char* to_string(RateShape::Kind kind);

struct ItemSizeDistribution {
  enum class Kind : uint8_t { kFixed, kUniform, kLognormal, kHistogram };
  struct Bucket {
    uint64_t size_bytes = 0;
    double weight = 0;
  };
  Kind kind = Kind::kFixed;
  uint64_t fixed_bytes = 1024;
  uint64_t min_bytes = 0;  // kUniform: both ends included
  uint64_t max_bytes = 0;
  uint64_t median_bytes = 0;  // kLognormal: median * exp(sigma * N(0, 1)), redrawn above the limit
  double sigma = 0;
  std::vector<Bucket> buckets;  // kHistogram: each size with probability weight / total

  // Planted bug for RateShapeTest.PlantedLognormalIgnoringSigmaIsCaught: lognormal draws return
  // the median. Never set outside tests.
  bool plant_lognormal_ignores_sigma = false;

  // One size in [1, kMaxWorkloadItemBytes]. kFixed draws nothing from `random`.
  uint64_t draw(sim::Random& random) const;
  // The exact mean of draw() (the lognormal's from its truncation at the limit, numerically).
  double mean_bytes() const;
  // E[ceil(size / unit_bytes)]: capacity units of one request per unit_bytes (1 KB for writes,
  // 4 KB for reads; Developer Guide, "Read/write capacity mode").
  double expected_units(uint64_t unit_bytes) const;

  static ItemSizeDistribution fixed(uint64_t bytes);
};
const char* to_string(ItemSizeDistribution::Kind kind);

// ---- CloudWatch replay ------------------------------------------------------------------------

// Which consumed-capacity metric a CSV holds (AWS/DynamoDB namespace).
enum class CapacityMetric : uint8_t { kConsumedReadCapacityUnits, kConsumedWriteCapacityUnits };

struct CloudWatchColumns {
  std::string timestamp = "Timestamp";
  std::string value = "Sum";
};

// Reads a CSV of one metric's per-minute Sum: a header row naming the columns, then one row per
// datapoint. Only the two named columns are read; other columns are ignored. Timestamps are
// ISO 8601 in UTC ("2024-05-01T12:00:00Z", "2024-05-01 12:00:00", optional ".000" and "Z" or
// "+00:00"); rows may come in any order (get-metric-statistics does not sort them) and must be
// whole minutes apart; a minute without a row consumed nothing (CloudWatch writes no datapoint
// then). Returns the units consumed in each minute from the earliest row to the latest.
// Throws ScenarioError (gameday/json_reader.h) with `json_path` as the path and the file, line and
// column of the first bad row or cell.
std::vector<double> parse_cloudwatch_csv(std::string_view text, const std::string& file_name,
                                         const CloudWatchColumns& columns,
                                         const std::string& json_path);

// The operation mix as fractions of the operations (weights as in OperationMix's order: put,
// get_strong, get_eventual, put_if_version, put_if_absent, delete, update, query, scan).
struct MixWeights {
  double put = 0;
  double get_strong = 0;
  double get_eventual = 0;
  double put_if_version = 0;
  double put_if_absent = 0;
  double delete_item = 0;
  double update = 0;
  double query = 0;
  double scan = 0;
  double total() const {
    return put + get_strong + get_eventual + put_if_version + put_if_absent + delete_item + update +
           query + scan;
  }
};

// The capacity units of `metric` that one average operation of the mix consumes:
//   writes: ((put + put_if_version + put_if_absent + delete) * E[ceil(size / 1 KB)]
//            + update) / total;
//   reads:  ((get_strong + get_eventual / 2 + query) * E[ceil(size / 4 KB)]
//            + scan * 3/4 * ceil(scan_page_items * E[size] / 4 KB)) / total.
// Developer Guide, "Read/write capacity mode": one WCU per write of up to 1 KB, one RCU per
// strongly consistent read of up to 4 KB, half for an eventually consistent one; sizes round up.
// An UpdateItem ADDs to a counter item far below 1 KB: one WCU. A Query reads one item strongly
// (the empty second page it may read costs one more RCU, left out). A Scan page reads up to
// scan_page_items items, their sizes summed before rounding (Developer Guide,
// CapacityUnitCalculations), half of the pages strongly and half eventually (3/4 on average);
// the page's items are taken as the item size's mean each (our approximation).
// The game day's Scan page (gameday/workload.h, WorkloadOptions::scan_page_limit).
inline constexpr uint32_t kWorkloadScanPageItems = 10;
double capacity_units_per_operation(CapacityMetric metric, const MixWeights& mix,
                                    const ItemSizeDistribution& sizes,
                                    uint32_t scan_page_items = kWorkloadScanPageItems);

// ---- Time stamps -------------------------------------------------------------------------------

// Seconds since 1970-01-01T00:00:00Z of an ISO 8601 UTC time stamp as described above; false when
// `text` is not one.
bool parse_utc_timestamp(std::string_view text, int64_t* seconds_since_epoch);

}  // namespace dynasim::gameday
