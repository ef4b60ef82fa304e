// Table capacity modes (model/capacity_mode.h): division over partitions, target-tracking auto
// scaling (scale out after two high minutes and not before, scale in after fifteen low ones, the
// daily limit on decreases, the update delay), and on-demand (a new table at 4,000 WCU / 12,000
// RCU, double the previous peak absorbed at once, more throttled, the 30-minute window). Each
// property has a planted bug that a test shows it catches.
#include "model/capacity_mode.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "sim/random.h"

namespace dynasim::model {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

sim::SimTime at_seconds(int64_t s) {
  return sim::SimTime(s * kNanosPerSecond);
}

TEST(CapacityModes, ThrottlingErrorNames) {
  EXPECT_STREQ(throttling_error_name(CapacityMode::kProvisioned),
               "ProvisionedThroughputExceededException");
  EXPECT_STREQ(throttling_error_name(CapacityMode::kOnDemand), "ThrottlingException");
}

TEST(CapacityModes, AllocationDividesEvenlyAndCapsAtTheCeiling) {
  // P22 section 4's example: 3200 WCU over 4 partitions is 800 each.
  PartitionAllocation share = allocate_to_partitions(TableCapacity{0, 3200}, 4);
  EXPECT_EQ(share.write_milli_units_per_second, 800'000);
  share = allocate_to_partitions(TableCapacity{12'000, 6000}, 2);
  EXPECT_EQ(share.read_milli_units_per_second, 3000'000);   // 6000 capped at 3000
  EXPECT_EQ(share.write_milli_units_per_second, 1000'000);  // 3000 capped at 1000
  sim::Random random(5);
  for (int trial = 0; trial < 1000; ++trial) {
    const TableCapacity table{random.uniform_int(0, 100'000), random.uniform_int(0, 100'000)};
    const uint32_t partitions = static_cast<uint32_t>(random.uniform_int(1, 200));
    share = allocate_to_partitions(table, partitions);
    EXPECT_LE(share.read_milli_units_per_second * partitions, table.read_units_per_second * 1000);
    EXPECT_LE(share.write_milli_units_per_second * partitions, table.write_units_per_second * 1000);
    EXPECT_LE(share.read_milli_units_per_second, 3'000'000);
    EXPECT_LE(share.write_milli_units_per_second, 1'000'000);
  }
}

// ---------------------------------------------------------------------------------------------
// Auto scaling

AutoScalingPolicy default_policy() {
  AutoScalingPolicy policy;
  policy.min_units = 5;
  policy.max_units = 40'000;
  policy.target_utilization_percent = 70;
  return policy;
}

int64_t consumed_in_minute(int64_t units_per_second) {
  return units_per_second * kMilliUnitsPerUnit * 60;
}

TEST(AutoScalingRules, ScalesOutAfterTwoHighMinutesWithDelay) {
  ProvisionedCapacity::Options options;
  options.initial_units = 100;
  options.auto_scaling = default_policy();
  ProvisionedCapacity table(options, sim::SimTime(0));
  // 90 units/s against 100 provisioned: above the 70 percent target.
  EXPECT_FALSE(table.on_period(at_seconds(60), consumed_in_minute(90)));
  const std::optional<ScalingAction> action =
      table.on_period(at_seconds(120), consumed_in_minute(90));
  ASSERT_TRUE(action);
  EXPECT_EQ(action->from_units, 100);
  EXPECT_EQ(action->to_units, 129);  // ceil(90 / 0.7)
  EXPECT_EQ(action->effective_at, at_seconds(120) + sim::minutes(3));
  EXPECT_EQ(table.units(action->effective_at - sim::Duration(1)), 100);
  EXPECT_EQ(table.units(action->effective_at), 129);
}

TEST(AutoScalingRules, ScalesInAfterFifteenLowMinutes) {
  ProvisionedCapacity::Options options;
  options.initial_units = 1000;
  options.auto_scaling = default_policy();
  ProvisionedCapacity table(options, sim::SimTime(0));
  // 400 units/s is 40 percent: below 70 - 20 = 50.
  for (int minute = 1; minute < 15; ++minute) {
    EXPECT_FALSE(table.on_period(at_seconds(60 * minute), consumed_in_minute(400)));
  }
  const std::optional<ScalingAction> action =
      table.on_period(at_seconds(900), consumed_in_minute(400));
  ASSERT_TRUE(action);
  EXPECT_EQ(action->to_units, 572);  // ceil(400 / 0.7)
  // 60 percent is neither high nor low: no action however long it lasts.
  ProvisionedCapacity steady(options, sim::SimTime(0));
  for (int minute = 1; minute < 200; ++minute) {
    EXPECT_FALSE(steady.on_period(at_seconds(60 * minute), consumed_in_minute(600)));
  }
}

// A random six-hour run of per-minute consumption. The test keeps its own count of consecutive
// high and low minutes and checks every action against the rules: scale out only after
// `scale_out_periods` high minutes in a row, scale in only after `scale_in_periods` low ones,
// and (liveness) a scale-out whenever the rule calls for one and no update is in progress.
// Returns the number of rule violations.
int auto_scaling_violations(uint64_t seed, AutoScalingPolicy policy) {
  sim::Random random(seed);
  ProvisionedCapacity::Options options;
  options.initial_units = random.uniform_int(10, 2000);
  options.auto_scaling = policy;
  ProvisionedCapacity table(options, sim::SimTime(0));
  uint32_t high_run = 0;
  uint32_t low_run = 0;
  int violations = 0;
  int regime = 1;
  for (int minute = 1; minute <= 360; ++minute) {
    if (random.bernoulli(0.2)) regime = static_cast<int>(random.uniform_u64(3));
    const sim::SimTime end = at_seconds(60 * minute);
    const int64_t units = table.units(end);
    const int64_t percent = regime == 0   ? random.uniform_int(0, 49)
                            : regime == 1 ? random.uniform_int(51, 69)
                                          : random.uniform_int(71, 160);
    const int64_t consumed = units * kMilliUnitsPerUnit * 60 * percent / 100;
    const bool high =
        consumed * 100 > int64_t{policy.target_utilization_percent} * units * 1000 * 60;
    const bool low = consumed * 100 <
                     int64_t{policy.target_utilization_percent - policy.scale_in_margin_percent} *
                         units * 1000 * 60;
    high_run = high ? high_run + 1 : 0;
    low_run = low ? low_run + 1 : 0;
    const bool was_pending = table.pending().has_value();
    const std::optional<ScalingAction> action = table.on_period(end, consumed);
    const int64_t desired = std::clamp<int64_t>(
        (consumed * 100 + int64_t{policy.target_utilization_percent} * 1000 * 60 - 1) /
            (int64_t{policy.target_utilization_percent} * 1000 * 60),
        policy.min_units, policy.max_units);
    if (action) {
      if (action->to_units > action->from_units && high_run < 2) ++violations;
      if (action->to_units < action->from_units && low_run < 15) ++violations;
      if (action->effective_at != end + policy.update_delay) ++violations;
      if (action->to_units != desired) ++violations;
      high_run = 0;
      low_run = 0;
    } else if (!was_pending && high_run >= 2 && desired > units) {
      ++violations;  // the rule called for a scale-out that did not come
    }
  }
  return violations;
}

TEST(AutoScalingRules, RandomRunsFollowTheConsecutivePeriodRules) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE(seed);
    EXPECT_EQ(auto_scaling_violations(seed, default_policy()), 0);
  }
}

TEST(AutoScalingRules, PlantedEarlyScaleOutIsCaught) {
  AutoScalingPolicy planted = default_policy();
  planted.plant_scale_out_after_one_period = true;
  int violations = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) violations += auto_scaling_violations(seed, planted);
  EXPECT_GT(violations, 0);
}

TEST(AutoScalingRules, DecreasesAreLimitedPerDay) {
  ProvisionedCapacity::Options options;
  options.initial_units = 1000;
  options.update_delay = sim::seconds(10);
  ProvisionedCapacity table(options, sim::SimTime(0));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(table.request_update(900 - 10 * i, at_seconds(60 * (i + 1))), UpdateStatus::kOk);
  }
  // A fifth within the hour is refused; increases are never limited.
  EXPECT_EQ(table.request_update(800, at_seconds(300)), UpdateStatus::kDecreaseLimitExceeded);
  EXPECT_EQ(table.request_update(2000, at_seconds(300)), UpdateStatus::kOk);
  EXPECT_EQ(table.request_update(3000, at_seconds(305)), UpdateStatus::kUpdateInProgress);
  // One hour after the last decrease, one more.
  EXPECT_EQ(table.request_update(800, at_seconds(240) + sim::hours(1) - sim::seconds(1)),
            UpdateStatus::kDecreaseLimitExceeded);
  EXPECT_EQ(table.request_update(800, at_seconds(240) + sim::hours(1)), UpdateStatus::kOk);
  EXPECT_EQ(table.decreases().decreases_today(at_seconds(240) + sim::hours(1)), 5u);
  // A new UTC day: four at once again.
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(
        table.request_update(700 - 10 * i, sim::SimTime(0) + sim::hours(24) + sim::minutes(i + 1)),
        UpdateStatus::kOk);
  }
}

// Random UpdateTable calls over three days; checks every decrease that went through against the
// limit (at most 27 a day; beyond the fourth of a day, none within an hour of the previous) and
// that refusals happen only when the limit applies. Returns the number of violations.
int decrease_limit_violations(uint64_t seed, bool plant) {
  sim::Random random(seed);
  ProvisionedCapacity::Options options;
  options.initial_units = 10'000;
  options.update_delay = sim::seconds(1);
  options.plant_skip_decrease_limit = plant;
  ProvisionedCapacity table(options, sim::SimTime(0));
  std::map<int64_t, std::vector<sim::SimTime>> decreases_by_day;
  std::optional<sim::SimTime> last_decrease;
  int violations = 0;
  sim::SimTime now(0);
  while (now < sim::SimTime(0) + sim::hours(72)) {
    now += random.exponential_duration(sim::minutes(6)) + sim::seconds(2);
    const int64_t current = table.units(now);
    const bool decrease = random.bernoulli(0.7);
    const int64_t target = decrease ? std::max<int64_t>(1, current - random.uniform_int(1, 50))
                                    : current + random.uniform_int(1, 100);
    const int64_t day = now.ns / sim::hours(24).ns;
    const std::vector<sim::SimTime>& today = decreases_by_day[day];
    const bool limit_applies =
        today.size() >= 4 && last_decrease && now - *last_decrease < sim::hours(1);
    const UpdateStatus status = table.request_update(target, now);
    if (status == UpdateStatus::kDecreaseLimitExceeded && !limit_applies) ++violations;
    if (status == UpdateStatus::kOk && target < current) {
      if (limit_applies) ++violations;
      decreases_by_day[day].push_back(now);
      last_decrease = now;
    }
  }
  for (const auto& [day, times] : decreases_by_day) {
    if (times.size() > 27) ++violations;
  }
  return violations;
}

TEST(AutoScalingRules, DecreaseLimitHoldsOverRandomUpdates) {
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    SCOPED_TRACE(seed);
    EXPECT_EQ(decrease_limit_violations(seed, false), 0);
  }
}

TEST(AutoScalingRules, PlantedSkippedDecreaseLimitIsCaught) {
  int violations = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) violations += decrease_limit_violations(seed, true);
  EXPECT_GT(violations, 0);
}

TEST(AutoScalingRules, ScaleInWaitsForTheDecreaseLimit) {
  ProvisionedCapacity::Options options;
  options.initial_units = 1000;
  options.update_delay = sim::seconds(1);
  options.auto_scaling = default_policy();
  options.auto_scaling->update_delay = sim::seconds(1);
  ProvisionedCapacity table(options, sim::SimTime(0));
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(table.request_update(990 - i, at_seconds(10 * (i + 1))), UpdateStatus::kOk);
  }
  // Fifteen low minutes, then more: scale-in is held until an hour after the last decrease.
  std::optional<ScalingAction> action;
  int minute = 1;
  for (; minute <= 120 && !action; ++minute) {
    action = table.on_period(at_seconds(60 * minute), consumed_in_minute(100));
  }
  ASSERT_TRUE(action);
  EXPECT_GE(action->decided_at, at_seconds(40) + sim::hours(1));
  EXPECT_LT(action->to_units, action->from_units);
}

// ---------------------------------------------------------------------------------------------
// On-demand

struct Drive {
  int64_t admitted_milli = 0;
  uint64_t throttled = 0;
};

// Requests of `cost_units` each, evenly spaced so they add up to `units_per_second`, over
// [start, start + length).
Drive drive(OnDemandCapacity& table, sim::SimTime start, int64_t units_per_second,
            sim::Duration length, int64_t cost_units) {
  Drive result;
  for (int64_t k = 0;; ++k) {
    const sim::SimTime at =
        start + sim::Duration(static_cast<int64_t>(static_cast<__int128>(k) * cost_units *
                                                   kNanosPerSecond / units_per_second));
    if (at >= start + length) break;
    if (table.admit(CapacityUnits{static_cast<uint64_t>(2 * cost_units)}, at) ==
        OnDemandDecision::kAdmitted) {
      result.admitted_milli += cost_units * kMilliUnitsPerUnit;
    } else {
      ++result.throttled;
    }
  }
  return result;
}

TEST(OnDemandRules, NewTableSustainsFourThousandWritesAndTwelveThousandReads) {
  OnDemandCapacity writes(OnDemandCapacity::new_table_writes(), sim::SimTime(0));
  EXPECT_EQ(writes.instant_units_per_second(sim::SimTime(0)), 4000);
  EXPECT_EQ(drive(writes, sim::SimTime(0), 4000, sim::minutes(10), 10).throttled, 0u);
  OnDemandCapacity reads(OnDemandCapacity::new_table_reads(), sim::SimTime(0));
  EXPECT_EQ(reads.instant_units_per_second(sim::SimTime(0)), 12'000);
  EXPECT_EQ(drive(reads, sim::SimTime(0), 12'000, sim::minutes(2), 10).throttled, 0u);
  // Beyond: throttled, and what is admitted stays within 4,000/s plus one second of depth.
  OnDemandCapacity fresh(OnDemandCapacity::new_table_writes(), sim::SimTime(0));
  const Drive over = drive(fresh, sim::SimTime(0), 5000, sim::minutes(1), 10);
  EXPECT_GT(over.throttled, 0u);
  EXPECT_LE(over.admitted_milli, (4000 * 60 + 4000) * kMilliUnitsPerUnit);
}

// Sets a previous peak of r units/s (one full minute at r, then the 30-minute window), then
// drives 2r for five minutes (must be absorbed) and 2.5r for two minutes (must be throttled to
// at most 2r plus depth). Returns the number of failed expectations.
int doubling_failures(uint64_t seed, OnDemandCapacity::Options options) {
  sim::Random random(seed);
  const int64_t r = random.uniform_int(210, 400) * 10;  // above half the initial 4,000
  OnDemandCapacity table(options, sim::SimTime(0));
  int failures = 0;
  if (drive(table, at_seconds(60), r, sim::minutes(1), 10).throttled != 0) ++failures;
  const sim::SimTime matured = at_seconds(120) + sim::minutes(30);
  if (table.previous_peak_milli_units_per_second(matured) != r * kMilliUnitsPerUnit) ++failures;
  if (drive(table, matured, 2 * r, sim::minutes(5), 10).throttled != 0) ++failures;
  const Drive over = drive(table, matured + sim::minutes(6), r * 5 / 2, sim::minutes(2), 10);
  if (over.throttled == 0) ++failures;
  if (over.admitted_milli > (2 * r * 120 + 2 * r) * kMilliUnitsPerUnit) ++failures;
  return failures;
}

TEST(OnDemandRules, DoubleThePreviousPeakIsAbsorbedAndMoreIsThrottled) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(seed);
    EXPECT_EQ(doubling_failures(seed, OnDemandCapacity::new_table_writes()), 0);
  }
}

TEST(OnDemandRules, PlantedMissingDoublingIsCaught) {
  OnDemandCapacity::Options planted = OnDemandCapacity::new_table_writes();
  planted.plant_no_doubling = true;
  int failures = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) failures += doubling_failures(seed, planted);
  EXPECT_GT(failures, 0);
}

// Sets a peak of r, then within the 30-minute window drives 2r (above the initial 4,000) for 20
// seconds: it must be throttled. Once the window has passed, 2r is absorbed. Returns failures.
int window_failures(uint64_t seed, OnDemandCapacity::Options options) {
  sim::Random random(seed);
  const int64_t r = random.uniform_int(250, 400) * 10;
  OnDemandCapacity table(options, sim::SimTime(0));
  int failures = 0;
  if (drive(table, at_seconds(60), r, sim::minutes(1), 10).throttled != 0) ++failures;
  const sim::SimTime early =
      at_seconds(120) + sim::Duration(random.uniform_int(0, sim::minutes(28).ns));
  if (drive(table, early, 2 * r, sim::seconds(20), 10).throttled == 0) ++failures;
  const sim::SimTime late = early + sim::minutes(31);
  if (drive(table, late, 2 * r, sim::minutes(2), 10).throttled != 0) ++failures;
  return failures;
}

TEST(OnDemandRules, PeaksCountOnlyAfterTheThirtyMinuteWindow) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(seed);
    EXPECT_EQ(window_failures(seed, OnDemandCapacity::new_table_writes()), 0);
  }
}

TEST(OnDemandRules, PlantedSkippedWindowIsCaught) {
  OnDemandCapacity::Options planted = OnDemandCapacity::new_table_writes();
  planted.plant_peak_skips_window = true;
  int failures = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) failures += window_failures(seed, planted);
  EXPECT_GT(failures, 0);
}

TEST(OnDemandRules, PreviousPeakNeverDecaysAndIdlePeriodsDoNotCount) {
  OnDemandCapacity table(OnDemandCapacity::new_table_writes(), sim::SimTime(0));
  drive(table, at_seconds(0), 3000, sim::minutes(1), 10);
  EXPECT_EQ(table.previous_peak_milli_units_per_second(sim::SimTime(0) + sim::hours(1)),
            3000 * kMilliUnitsPerUnit);
  drive(table, sim::SimTime(0) + sim::hours(2), 1000, sim::minutes(5), 10);
  EXPECT_EQ(table.previous_peak_milli_units_per_second(sim::SimTime(0) + sim::hours(30)),
            3000 * kMilliUnitsPerUnit);
  EXPECT_EQ(table.instant_units_per_second(sim::SimTime(0) + sim::hours(30)), 6000);
}

}  // namespace
}  // namespace dynasim::model
