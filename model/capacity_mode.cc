#include "model/capacity_mode.h"

#include <algorithm>

#include "sim/check.h"

namespace dynasim::model {

namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

// floor(a / b) for b > 0, also for negative a (a local clock may read before time zero).
int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// Average milli units per second over a period: consumed * 1e9 / period_ns, in 128 bits.
__int128 scaled_consumption(int64_t consumed_milli_units) {
  return static_cast<__int128>(consumed_milli_units) * kNanosPerSecond;
}

}  // namespace

const char* to_string(CapacityMode mode) {
  switch (mode) {
    case CapacityMode::kProvisioned:
      return "provisioned";
    case CapacityMode::kOnDemand:
      return "on_demand";
  }
  return "?";
}

const char* throttling_error_name(CapacityMode mode) {
  switch (mode) {
    case CapacityMode::kProvisioned:
      return "ProvisionedThroughputExceededException";
    case CapacityMode::kOnDemand:
      return "ThrottlingException";
  }
  return "?";
}

const char* to_string(UpdateStatus status) {
  switch (status) {
    case UpdateStatus::kOk:
      return "ok";
    case UpdateStatus::kUnchanged:
      return "unchanged";
    case UpdateStatus::kUpdateInProgress:
      return "update_in_progress";
    case UpdateStatus::kDecreaseLimitExceeded:
      return "decrease_limit_exceeded";
    case UpdateStatus::kOutOfRange:
      return "out_of_range";
  }
  return "?";
}

PartitionAllocation allocate_to_partitions(TableCapacity capacity, uint32_t partitions) {
  DYN_ASSERT(partitions > 0);
  DYN_ASSERT(capacity.read_units_per_second >= 0 && capacity.write_units_per_second >= 0);
  PartitionAllocation share;
  share.read_milli_units_per_second =
      std::min(capacity.read_units_per_second * kMilliUnitsPerUnit / partitions,
               kPartitionMaxReadUnitsPerSecond * kMilliUnitsPerUnit);
  share.write_milli_units_per_second =
      std::min(capacity.write_units_per_second * kMilliUnitsPerUnit / partitions,
               kPartitionMaxWriteUnitsPerSecond * kMilliUnitsPerUnit);
  return share;
}

PartitionAllocation partition_allocation(CapacityMode mode, TableCapacity capacity,
                                         uint32_t partitions) {
  if (mode == CapacityMode::kOnDemand) {
    return allocate_to_partitions(
        TableCapacity{kPartitionMaxReadUnitsPerSecond, kPartitionMaxWriteUnitsPerSecond}, 1);
  }
  return allocate_to_partitions(capacity, partitions);
}

// ---------------------------------------------------------------------------------------------
// DecreaseLimiter

uint32_t DecreaseLimiter::decreases_today(sim::SimTime now) const {
  return floor_div(now.ns, options_.day.ns) == day_ ? count_in_day_ : 0;
}

bool DecreaseLimiter::allowed(sim::SimTime now) const {
  if (decreases_today(now) < options_.decreases_any_time_per_day) return true;
  // Beyond the first few of the day: one more whenever none was made in the past hour.
  return !last_decrease_ || now - *last_decrease_ >= options_.extra_decrease_after;
}

void DecreaseLimiter::record(sim::SimTime now) {
  DYN_ASSERT(allowed(now));
  const int64_t day = floor_div(now.ns, options_.day.ns);
  if (day != day_) {
    day_ = day;
    count_in_day_ = 0;
  }
  ++count_in_day_;
  last_decrease_ = now;
}

// ---------------------------------------------------------------------------------------------
// ProvisionedCapacity

ProvisionedCapacity::ProvisionedCapacity(Options options, sim::SimTime /*now*/)
    : options_(options), units_(options.initial_units), limiter_(options.decreases) {
  DYN_ASSERT(units_ >= 1);
  if (options_.auto_scaling) {
    const AutoScalingPolicy& policy = *options_.auto_scaling;
    DYN_ASSERT(policy.target_utilization_percent >= 20 && policy.target_utilization_percent <= 90);
    DYN_ASSERT(policy.min_units >= 1 && policy.min_units <= policy.max_units);
    DYN_ASSERT(policy.scale_out_periods >= 1 && policy.scale_in_periods >= 1);
    DYN_ASSERT(policy.scale_in_margin_percent >= 0 &&
               policy.scale_in_margin_percent < policy.target_utilization_percent);
    DYN_ASSERT(policy.period > sim::Duration(0));
  }
}

int64_t ProvisionedCapacity::units(sim::SimTime now) {
  if (pending_ && now >= pending_->effective_at) {
    units_ = pending_->to_units;
    pending_.reset();
  }
  return units_;
}

UpdateStatus ProvisionedCapacity::start_update(int64_t new_units, sim::SimTime now,
                                               sim::Duration delay) {
  const int64_t current = units(now);
  if (pending_) return UpdateStatus::kUpdateInProgress;
  if (new_units < 1) return UpdateStatus::kOutOfRange;
  if (new_units == current) return UpdateStatus::kUnchanged;
  if (new_units < current) {
    if (limiter_.allowed(now)) {
      limiter_.record(now);
    } else if (!options_.plant_skip_decrease_limit) {
      return UpdateStatus::kDecreaseLimitExceeded;
    }
  }
  pending_ = ScalingAction{current, new_units, now, now + delay};
  return UpdateStatus::kOk;
}

UpdateStatus ProvisionedCapacity::request_update(int64_t new_units, sim::SimTime now) {
  return start_update(new_units, now, options_.update_delay);
}

std::optional<ScalingAction> ProvisionedCapacity::on_period(sim::SimTime period_end,
                                                            int64_t consumed_milli_units) {
  DYN_ASSERT(consumed_milli_units >= 0);
  if (!options_.auto_scaling) return std::nullopt;
  const AutoScalingPolicy& policy = *options_.auto_scaling;
  const int64_t current = units(period_end);
  // Utilization = average consumed per second / provisioned, compared in integers:
  // consumed * 1e9 * 100 against percent * units * 1000 * period_ns.
  const __int128 consumed = scaled_consumption(consumed_milli_units) * 100;
  const __int128 per_percent =
      static_cast<__int128>(current) * kMilliUnitsPerUnit * policy.period.ns;
  const bool high = consumed > per_percent * policy.target_utilization_percent;
  const bool low =
      consumed < per_percent * (policy.target_utilization_percent - policy.scale_in_margin_percent);
  high_periods_ = high ? high_periods_ + 1 : 0;
  low_periods_ = low ? low_periods_ + 1 : 0;
  if (pending_) return std::nullopt;  // the table is UPDATING: no new UpdateTable

  // Target tracking: the capacity at which this consumption sits at the target, rounded up.
  const __int128 denominator = static_cast<__int128>(policy.target_utilization_percent) *
                               kMilliUnitsPerUnit * policy.period.ns;
  const __int128 exact = (consumed + denominator - 1) / denominator;
  const int64_t desired =
      static_cast<int64_t>(std::clamp<__int128>(exact, policy.min_units, policy.max_units));

  const uint32_t out_periods =
      policy.plant_scale_out_after_one_period ? 1 : policy.scale_out_periods;
  const bool scale_out = high_periods_ >= out_periods && desired > current;
  const bool scale_in = low_periods_ >= policy.scale_in_periods && desired < current;
  if (!scale_out && !scale_in) return std::nullopt;
  // A decrease refused by the daily limit leaves the alarm in its state: it is tried again at
  // the next data point.
  if (start_update(desired, period_end, policy.update_delay) != UpdateStatus::kOk) {
    return std::nullopt;
  }
  high_periods_ = 0;
  low_periods_ = 0;
  return pending_;
}

// ---------------------------------------------------------------------------------------------
// OnDemandCapacity

OnDemandCapacity::Options OnDemandCapacity::new_table_writes() {
  Options options;
  options.initial_previous_peak_units = 4000 / 2;
  return options;
}

OnDemandCapacity::Options OnDemandCapacity::new_table_reads() {
  Options options;
  options.initial_previous_peak_units = 12'000 / 2;
  return options;
}

OnDemandCapacity::OnDemandCapacity(Options options, sim::SimTime now)
    : options_(options),
      previous_peak_milli_(options.initial_previous_peak_units * kMilliUnitsPerUnit) {
  DYN_ASSERT(options_.initial_previous_peak_units >= 0);
  DYN_ASSERT(options_.peak_period > sim::Duration(0));
  DYN_ASSERT(options_.peak_window >= sim::Duration(0));
  DYN_ASSERT(options_.depth_seconds >= 1);
  period_start_ =
      sim::SimTime(floor_div(now.ns, options_.peak_period.ns) * options_.peak_period.ns);
  const int64_t rate = instant_milli_units_per_second();
  limiter_ = TokenBucket(rate, rate * options_.depth_seconds, now);
}

int64_t OnDemandCapacity::instant_milli_units_per_second() const {
  const int64_t factor = options_.plant_no_doubling ? 1 : 2;
  return std::min(previous_peak_milli_ * factor,
                  options_.max_units_per_second * kMilliUnitsPerUnit);
}

void OnDemandCapacity::advance(sim::SimTime now) {
  const sim::SimTime period_end = period_start_ + options_.peak_period;
  if (now >= period_end) {
    if (period_consumed_milli_ > 0) {
      const int64_t rate = static_cast<int64_t>(scaled_consumption(period_consumed_milli_) /
                                                options_.peak_period.ns);
      maturing_.push_back(ClosedPeriod{period_end, rate});
    }
    // Periods skipped while idle consumed nothing and are not recorded.
    period_start_ =
        sim::SimTime(floor_div(now.ns, options_.peak_period.ns) * options_.peak_period.ns);
    period_consumed_milli_ = 0;
  }
  // Closed periods enter the history in order, once peak_window has passed since they ended.
  while (!maturing_.empty() && (options_.plant_peak_skips_window ||
                                maturing_.front().end + options_.peak_window <= now)) {
    previous_peak_milli_ =
        std::max(previous_peak_milli_, maturing_.front().rate_milli_units_per_second);
    maturing_.pop_front();
  }
  // One period closes per period length at most, and each leaves after peak_window.
  DYN_ASSERT(maturing_.size() <=
             static_cast<size_t>(options_.peak_window / options_.peak_period) + 1);
  const int64_t rate = instant_milli_units_per_second();
  if (rate != limiter_.refill_milli_units_per_second()) {
    limiter_.set_refill_rate(rate, now);
    limiter_.set_depth(rate * options_.depth_seconds, now);
  }
}

OnDemandDecision OnDemandCapacity::admit(CapacityUnits cost, sim::SimTime now) {
  return admit_milli_units(to_milli_units(cost), now);
}

OnDemandDecision OnDemandCapacity::admit_milli_units(int64_t cost_milli_units, sim::SimTime now) {
  DYN_ASSERT(cost_milli_units >= 0);
  advance(now);
  limiter_.refill(now);
  if (limiter_.tokens_milli_units() < cost_milli_units) {
    ++throttled_;
    return OnDemandDecision::kThrottled;
  }
  limiter_.take(cost_milli_units);
  period_consumed_milli_ += cost_milli_units;
  ++admitted_;
  return OnDemandDecision::kAdmitted;
}

void OnDemandCapacity::record_consumed(int64_t consumed_milli_units, sim::SimTime now) {
  DYN_ASSERT(consumed_milli_units >= 0);
  advance(now);
  period_consumed_milli_ += consumed_milli_units;
}

int64_t OnDemandCapacity::instant_units_per_second(sim::SimTime now) {
  advance(now);
  return instant_milli_units_per_second() / kMilliUnitsPerUnit;
}

int64_t OnDemandCapacity::previous_peak_milli_units_per_second(sim::SimTime now) {
  advance(now);
  return previous_peak_milli_;
}

}  // namespace dynasim::model
