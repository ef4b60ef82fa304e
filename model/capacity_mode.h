// Table capacity modes: provisioned (with optional target-tracking auto scaling) and on-demand,
// and how a table's capacity is divided over its partitions.
//
// Provisioned follows the Developer Guide: auto scaling is Application Auto Scaling's target
// tracking, driven by CloudWatch's one-minute ConsumedCapacity data points. It "triggers when your
// consumed capacity breaches the configured target utilization for two consecutive minutes"; "a
// scale down event can occur when 15 consecutive data points are lower than the target
// utilization"; after it triggers, UpdateTable "takes several minutes to update the provisioned
// capacity", during which requests beyond the previous capacity are throttled (Developer Guide,
// metrics-dimensions and AutoScaling). Target utilization is 20-90 percent (AutoScaling). The
// scale-in alarm fires at 20 points below the target (AWS re:Post knowledge center,
// "dynamodb-auto-scaling": with a 70 percent target it scales in at 50). Decreases of provisioned
// capacity are limited: four at any time in a UTC day, plus one more whenever none was made in the
// past hour, 27 a day at most (Developer Guide, ServiceQuotas).
//
// On-demand follows P22 section 4.5 and the Developer Guide (HowItWorks.ReadWriteCapacityMode,
// on-demand-capacity-mode): a table instantly accommodates up to double its previous peak;
// "throttling can occur if you exceed double your previous peak within 30 minutes"; a new table
// sustains 4,000 writes and 12,000 reads per second. Throttled on-demand requests get
// ThrottlingException, provisioned ones ProvisionedThroughputExceededException (Developer Guide,
// Programming.Errors). docs/admission.md gives the full design.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "model/admission.h"
#include "sim/time.h"

namespace dynasim::model {

enum class CapacityMode : uint8_t { kProvisioned, kOnDemand };
const char* to_string(CapacityMode mode);
// The error name DynamoDB returns for a data-plane request throttled in this mode.
const char* throttling_error_name(CapacityMode mode);

// A table's capacity in whole units per second (RCU, WCU; on-demand: request units).
struct TableCapacity {
  int64_t read_units_per_second = 0;
  int64_t write_units_per_second = 0;
};

// Each partition's share: the table capacity divided evenly over `partitions` (P22 section 4:
// "a table of 3200 WCU gets 4 partitions x 800"), capped at the per-partition ceiling of 3,000 RCU
// and 1,000 WCU. In milli units; the division rounds down, so the shares never add up to more
// than the table's capacity. REQUIRES: partitions > 0.
PartitionAllocation allocate_to_partitions(TableCapacity capacity, uint32_t partitions);
// What a capacity controller gives every partition of a table in `mode`: a provisioned table's
// capacity divided (allocate_to_partitions); on-demand, each partition's maximum, whatever the
// count, as the table's capacity is metered at the table (GAC) and a divided share would hold a
// split's children below the split threshold (model/capacity_controller.h).
PartitionAllocation partition_allocation(CapacityMode mode, TableCapacity capacity,
                                         uint32_t partitions);

// ---------------------------------------------------------------------------------------------
// Provisioned capacity

// DynamoDB's limit on decreases of provisioned capacity (Developer Guide, ServiceQuotas). Days
// are UTC days; the simulation's time zero is taken as a UTC midnight (our assumption).
class DecreaseLimiter {
 public:
  struct Options {
    uint32_t decreases_any_time_per_day = 4;
    sim::Duration extra_decrease_after = sim::hours(1);
    sim::Duration day = sim::hours(24);
  };
  DecreaseLimiter() = default;
  explicit DecreaseLimiter(Options options) : options_(options) {}

  bool allowed(sim::SimTime now) const;
  // REQUIRES: allowed(now).
  void record(sim::SimTime now);
  uint32_t decreases_today(sim::SimTime now) const;

 private:
  int64_t day_of(sim::SimTime now) const { return now.ns / options_.day.ns; }

  Options options_;
  int64_t day_ = -1;
  uint32_t count_in_day_ = 0;
  std::optional<sim::SimTime> last_decrease_;
};

struct AutoScalingPolicy {
  int64_t min_units = 1;       // Developer Guide, ServiceQuotas: minimum 1 RCU / 1 WCU
  int64_t max_units = 40'000;  // Developer Guide, ServiceQuotas: per-table default quota
  // Developer Guide, AutoScaling: 20 to 90 percent. 70 is the console's default.
  int32_t target_utilization_percent = 70;
  // Developer Guide, metrics-dimensions: two consecutive one-minute data points above target.
  uint32_t scale_out_periods = 2;
  // Developer Guide, metrics-dimensions: 15 consecutive data points below.
  uint32_t scale_in_periods = 15;
  // AWS re:Post knowledge center, dynamodb-auto-scaling: "20% or more below the target".
  int32_t scale_in_margin_percent = 20;
  // CloudWatch's period for ConsumedCapacity (Developer Guide, metrics-dimensions).
  sim::Duration period = sim::minutes(1);
  // UpdateTable "takes several minutes" (Developer Guide, metrics-dimensions). Our assumption:
  // three minutes.
  sim::Duration update_delay = sim::minutes(3);

  // Planted bug for AutoScalingRules. Never set outside tests. Scales out after one high period.
  bool plant_scale_out_after_one_period = false;
};

enum class UpdateStatus : uint8_t {
  kOk,
  kUnchanged,              // the new value equals the current one
  kUpdateInProgress,       // an earlier update has not taken effect yet (table UPDATING)
  kDecreaseLimitExceeded,  // Developer Guide, ServiceQuotas
  kOutOfRange,             // below 1 unit
};
const char* to_string(UpdateStatus status);

// A scaling action auto scaling took: from `from_units` to `to_units`, decided at `decided_at`,
// in effect from `effective_at`.
struct ScalingAction {
  int64_t from_units = 0;
  int64_t to_units = 0;
  sim::SimTime decided_at;
  sim::SimTime effective_at;
};

// One dimension (reads or writes) of a provisioned table: its capacity, pending UpdateTable, and
// target-tracking auto scaling fed with per-period consumption.
class ProvisionedCapacity {
 public:
  struct Options {
    int64_t initial_units = 5;  // the console's default for a new provisioned table
    std::optional<AutoScalingPolicy> auto_scaling;
    DecreaseLimiter::Options decreases;
    sim::Duration update_delay = sim::minutes(3);  // for manual updates; our assumption as above
    // Planted bug for AutoScalingRules. Never set outside tests. Decreases skip the daily limit.
    bool plant_skip_decrease_limit = false;
  };

  ProvisionedCapacity(Options options, sim::SimTime now);

  // The capacity in effect at `now` (a pending update takes effect at its time).
  int64_t units(sim::SimTime now);
  // An UpdateTable call from the table's owner.
  UpdateStatus request_update(int64_t new_units, sim::SimTime now);
  // One CloudWatch data point: `consumed_milli_units` consumed during the period that ends at
  // `period_end`. Returns the scaling action it set off, if any.
  std::optional<ScalingAction> on_period(sim::SimTime period_end, int64_t consumed_milli_units);

  std::optional<ScalingAction> pending() const { return pending_; }
  uint32_t high_periods() const { return high_periods_; }
  uint32_t low_periods() const { return low_periods_; }
  const DecreaseLimiter& decreases() const { return limiter_; }

 private:
  UpdateStatus start_update(int64_t new_units, sim::SimTime now, sim::Duration delay);

  Options options_;
  int64_t units_ = 0;
  std::optional<ScalingAction> pending_;
  DecreaseLimiter limiter_;
  uint32_t high_periods_ = 0;
  uint32_t low_periods_ = 0;
};

// ---------------------------------------------------------------------------------------------
// On-demand capacity

enum class OnDemandDecision : uint8_t { kAdmitted, kThrottled };

// One dimension (reads or writes) of an on-demand table.
//
// "Previous peak", precisely: consumption is measured in periods of `peak_period` (one minute,
// CloudWatch's granularity), aligned to multiples of it on the caller's clock. A period's rate is
// the admitted milli units in it divided by its length. A period becomes part of the table's
// history once `peak_window` (30 minutes) has passed since it ended; the previous peak at a time
// is the highest rate in that history, and never less than `initial_previous_peak_units`. The
// table instantly accommodates twice the previous peak (capped at `max_units_per_second`): a
// token bucket refilled at that rate, `depth_seconds` deep, admits or throttles each request.
// A new table's initial previous peak is half of 4,000 WCU / 12,000 RCU, so it sustains exactly
// those figures (Developer Guide, HowItWorks.ReadWriteCapacityMode); a table switched from
// provisioned starts with its provisioned level.
class OnDemandCapacity {
 public:
  struct Options {
    int64_t initial_previous_peak_units = 2000;
    sim::Duration peak_period = sim::minutes(1);
    sim::Duration peak_window = sim::minutes(30);  // Developer Guide, ReadWriteCapacityMode
    // Developer Guide, ServiceQuotas: 40,000 request units per table by default.
    int64_t max_units_per_second = 40'000;
    // Our assumption: one second of the instant capacity, like the partition buckets.
    int64_t depth_seconds = 1;

    // Planted bug for OnDemandRules. Never set outside tests. A period counts as previous peak
    // as soon as it ends (no 30-minute window).
    bool plant_peak_skips_window = false;
    // Planted bug for OnDemandRules. Never set outside tests. Instant capacity is the previous
    // peak itself rather than its double.
    bool plant_no_doubling = false;
  };
  // New tables (Developer Guide, HowItWorks.ReadWriteCapacityMode: 4,000 writes/s, 12,000
  // reads/s).
  static Options new_table_writes();
  static Options new_table_reads();

  OnDemandCapacity(Options options, sim::SimTime now);

  OnDemandDecision admit(CapacityUnits cost, sim::SimTime now);
  OnDemandDecision admit_milli_units(int64_t cost_milli_units, sim::SimTime now);
  // Consumption admitted elsewhere (by the partitions' buckets, which enforce this capacity; see
  // model/capacity_controller.h): it counts towards the period that holds `now`, as an admission
  // would, without passing the table-level bucket. REQUIRES: consumed_milli_units >= 0.
  void record_consumed(int64_t consumed_milli_units, sim::SimTime now);

  // The rate the table accommodates at `now` without throttling, in units per second.
  int64_t instant_units_per_second(sim::SimTime now);
  // In milli units per second.
  int64_t previous_peak_milli_units_per_second(sim::SimTime now);
  uint64_t throttled() const { return throttled_; }
  uint64_t admitted_requests() const { return admitted_; }

 private:
  struct ClosedPeriod {
    sim::SimTime end;
    int64_t rate_milli_units_per_second = 0;
  };
  void advance(sim::SimTime now);
  int64_t instant_milli_units_per_second() const;

  Options options_;
  int64_t previous_peak_milli_ = 0;
  sim::SimTime period_start_;
  int64_t period_consumed_milli_ = 0;
  std::deque<ClosedPeriod> maturing_;  // ended, not yet peak_window old; bounded (see .cc)
  TokenBucket limiter_;
  uint64_t throttled_ = 0;
  uint64_t admitted_ = 0;
};

}  // namespace dynasim::model
