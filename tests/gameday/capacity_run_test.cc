// Capacity modes in the game day (docs/admission.md, "Capacity modes in a game day"): the
// scenario's storage.admission.mode and auto_scaling, the admission check judged against the
// allocation in force over time (synthetic streams: an allocation that rises, one that falls and a
// node that kept admitting at the old rate), and short game days: a provisioned table whose auto
// scaling raises its write capacity mid-run, with the nodes' buckets following and the check
// passing (and failing with the planted unbounded burst bucket), and an on-demand table.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gameday/admission_checker.h"
#include "gameday/json_reader.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kGameDay = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json";

std::string error_of(const std::vector<std::string>& overrides) {
  return scenario_error_of(kGameDay, overrides);
}

const std::vector<std::string> kAdmission = {"storage.admission.read_capacity_units=200",
                                             "storage.admission.write_capacity_units=40"};

std::vector<std::string> with(std::vector<std::string> base,
                              const std::vector<std::string>& extra) {
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

// ---------------------------------------------------------------------------------------------
// The scenario section

TEST(CapacityScenario, ProvisionedWithoutAutoScalingByDefault) {
  const ScenarioSpec spec = load_scenario(kGameDay, kAdmission);
  EXPECT_FALSE(spec.storage->capacity_on_demand);
  EXPECT_FALSE(spec.storage->auto_scaling);
  const ScenarioSpec scaled = load_scenario(
      kGameDay, with(kAdmission, {"storage.admission.auto_scaling.target_utilization=50",
                                  "storage.admission.auto_scaling.max_write_units=400",
                                  "storage.admission.auto_scaling.update_delay=30s"}));
  EXPECT_TRUE(scaled.storage->auto_scaling);
  EXPECT_EQ(scaled.storage->auto_scaling_target_utilization_percent, 50u);
  EXPECT_EQ(scaled.storage->auto_scaling_max_write_units, 400u);
  EXPECT_EQ(scaled.storage->auto_scaling_max_read_units, 40'000u);
  EXPECT_EQ(scaled.storage->auto_scaling_update_delay, sim::seconds(30));
  const ScenarioSpec on_demand =
      load_scenario(kGameDay, with(kAdmission, {"storage.admission.mode=on_demand"}));
  EXPECT_TRUE(on_demand.storage->capacity_on_demand);
}

TEST(CapacityScenario, BadSectionsNameTheField) {
  EXPECT_NE(error_of(with(kAdmission, {"storage.admission.mode=reserved"}))
                .find("storage.admission.mode"),
            std::string::npos);
  EXPECT_NE(error_of(with(kAdmission, {"storage.admission.auto_scaling.target_utilization=95"}))
                .find("storage.admission.auto_scaling.target_utilization"),
            std::string::npos);
  EXPECT_NE(error_of(with(kAdmission, {"storage.admission.auto_scaling.min_write_units=50",
                                       "storage.admission.auto_scaling.max_write_units=10"}))
                .find("storage.admission.auto_scaling.max_write_units"),
            std::string::npos);
  EXPECT_NE(error_of(with(kAdmission, {"storage.admission.auto_scaling.target_utilisation=50"}))
                .find("target_utilisation"),
            std::string::npos);
  EXPECT_NE(error_of(with(kAdmission, {"storage.admission.mode=on_demand",
                                       "storage.admission.auto_scaling.target_utilization=50"}))
                .find("storage.admission.auto_scaling"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The check against a changing allocation

model::AdmissionOptions one_second_burst() {
  model::AdmissionOptions options;
  options.burst_window = sim::seconds(1);  // depths: 1 s allocated + 1 s burst
  return options;
}

const sim::Address kNode{sim::HostId(3), 8000};

sim::SimTime at_ms(int64_t ms) {
  return sim::SimTime::zero() + sim::milliseconds(ms);
}

TEST(CapacityCheck, ARaisedAllocationRaisesTheBoundFromWhenItTookEffect) {
  // 10 WCU/s (depths 20) until 1 s, then 20 WCU/s. From t = 0: depth 20 + 10 + 20 = 50 units.
  const model::GroupId group(1);
  AdmissionChecker checker(model::PartitionAllocation{100'000, 10'000}, one_second_burst());
  checker.on_allocation_set(kNode, at_ms(0), model::PartitionAllocation{100'000, 10'000});
  checker.on_admitted(group, kNode, 1, at_ms(0), 20'000, true, true);
  checker.on_admitted(group, kNode, 1, at_ms(1000), 10'000, true, false);
  checker.on_allocation_set(kNode, at_ms(1000), model::PartitionAllocation{100'000, 20'000});
  checker.on_admitted(group, kNode, 1, at_ms(2000), 20'000, true, false);
  EXPECT_TRUE(checker.passed()) << checker.first_violation();
  EXPECT_EQ(checker.report()["worst_excess_milli_units"].get<int64_t>(), 0);
  EXPECT_EQ(checker.report()["allocation_changes"].get<uint64_t>(), 1u);
  checker.on_admitted(group, kNode, 1, at_ms(2000), 1, true, false);
  EXPECT_FALSE(checker.passed());

  // The same stream judged as if the allocation had stayed 10 WCU/s is over the bound: the check
  // must follow the change, or it would blame a node that did right.
  AdmissionChecker static_check(model::PartitionAllocation{100'000, 10'000}, one_second_burst());
  static_check.on_admitted(group, kNode, 1, at_ms(0), 20'000, true, true);
  static_check.on_admitted(group, kNode, 1, at_ms(1000), 10'000, true, false);
  static_check.on_admitted(group, kNode, 1, at_ms(2000), 20'000, true, false);
  EXPECT_FALSE(static_check.passed());
}

// A node whose allocation was lowered but kept admitting at the old rate: within the old bound,
// over the new one. The check catches it only because it judges the allocation in force.
TEST(CapacityCheck, ANodeThatKeepsTheOldRateAfterALoweredAllocationFails) {
  const model::GroupId group(2);
  AdmissionChecker checker(model::PartitionAllocation{100'000, 20'000}, one_second_burst());
  checker.on_admitted(group, kNode, 1, at_ms(0), 40'000, true, true);
  checker.on_allocation_set(kNode, at_ms(500), model::PartitionAllocation{100'000, 10'000});
  checker.on_admitted(group, kNode, 1, at_ms(1000), 20'000, true, false);
  checker.on_admitted(group, kNode, 1, at_ms(2000), 20'000, true, false);
  EXPECT_FALSE(checker.passed());
  // Bound from t = 0: 40 + 20 * 0.5 + 10 * 1.5 = 65 units; 80 were admitted.
  EXPECT_EQ(checker.report()["worst_excess_milli_units"].get<int64_t>(), 15'000);
  // Other nodes keep their own allocation.
  const uint64_t violations = checker.report()["violations"].get<uint64_t>();
  checker.on_admitted(group, sim::Address{sim::HostId(4), 8000}, 1, at_ms(0), 40'000, true, true);
  EXPECT_EQ(checker.report()["violations"].get<uint64_t>(), violations);
}

// ---------------------------------------------------------------------------------------------
// Game days

// 150 s of the power-off game day on 4 partitions at 40 WCU, far below the workload's writes,
// with auto scaling that applies UpdateTable at once: the two high data points at 1 and 2 minutes
// raise the write capacity at 2 minutes.
ScenarioSpec auto_scaled_game_day(const std::vector<std::string>& extra = {}) {
  return load_scenario(kGameDay, with(with({"duration=150s", "heal=25s",
                                            "workload.verify_after=10s", "storage.partitions=4",
                                            "storage.admission.auto_scaling.update_delay=0s"},
                                           kAdmission),
                                      extra));
}

TEST(CapacityGameDay, AutoScalingRaisesTheAllocationsAndTheCheckFollowsThem) {
  const ServiceRunOutcome outcome = run_service(auto_scaled_game_day(), 1);
  const nlohmann::json& capacity = outcome.summary["capacity"];
  const nlohmann::json& check = outcome.summary["checks"]["admission"];
  std::printf("capacity: %s\ncheck: %s\n", capacity.dump().c_str(), check.dump().c_str());
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  EXPECT_EQ(capacity["mode"].get<std::string>(), "provisioned");
  EXPECT_EQ(capacity["throttling_error"].get<std::string>(),
            "ProvisionedThroughputExceededException");
  EXPECT_EQ(capacity["write_units"]["start"].get<int64_t>(), 40);
  EXPECT_GT(capacity["write_units"]["end"].get<int64_t>(), 40);
  EXPECT_EQ(capacity["read_units"]["end"].get<int64_t>(), 200);
  EXPECT_GE(capacity["changes"].get<uint64_t>(), 1u);
  ASSERT_GE(capacity["timeline"].size(), 2u);
  EXPECT_EQ(capacity["timeline"][1][0].get<double>(), 120.0);
  // Every storage node applied the new allocation; the check judged against it.
  EXPECT_TRUE(check["passed"].get<bool>());
  EXPECT_GE(check["allocation_changes"].get<uint64_t>(), 9u);
  EXPECT_GT(outcome.summary["requests"]["throttled"].get<uint64_t>(), 0u);
  // Every throttled attempt carries the provisioned mode's error name.
  const nlohmann::json& by_error = outcome.summary["requests"]["by_error"];
  EXPECT_EQ(by_error.value("ProvisionedThroughputExceededException", uint64_t{0}),
            outcome.summary["requests"]["throttled"].get<uint64_t>());
  EXPECT_FALSE(by_error.contains("ThrottlingException"));

  // With the planted unbounded burst bucket (and a one-second burst window) the check still fails
  // while the allocation changes.
  const ServiceRunOutcome planted =
      run_service(auto_scaled_game_day({"storage.admission.burst_window=1s",
                                        "storage.admission.plant_burst_ignores_depth=true"}),
                  1);
  EXPECT_FALSE(planted.passed);
  EXPECT_FALSE(planted.summary["checks"]["admission"]["passed"].get<bool>());
  EXPECT_GE(planted.summary["capacity"]["changes"].get<uint64_t>(), 1u);
}

TEST(CapacityGameDay, OnDemandStartsAtTheNewTableFloorAndThrottlesAsThrottlingException) {
  const ServiceRunOutcome outcome = run_service(
      load_scenario(kGameDay, with({"duration=35s", "heal=25s", "workload.verify_after=10s",
                                    "storage.partitions=4", "storage.admission.mode=on_demand"},
                                   kAdmission)),
      1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& capacity = outcome.summary["capacity"];
  EXPECT_EQ(capacity["mode"].get<std::string>(), "on_demand");
  EXPECT_EQ(capacity["throttling_error"].get<std::string>(), "ThrottlingException");
  // A table switched from 200 RCU / 40 WCU keeps at least a new table's 12,000 / 4,000.
  EXPECT_EQ(capacity["read_units"]["start"].get<int64_t>(), 12'000);
  EXPECT_EQ(capacity["write_units"]["start"].get<int64_t>(), 4'000);
  EXPECT_EQ(capacity["changes"].get<uint64_t>(), 0u);
  // 1,000 WCU per partition (the ceiling): the workload is not throttled.
  EXPECT_EQ(outcome.summary["requests"]["throttled"].get<uint64_t>(), 0u);

  // One partition of 8 KB items: its writes pass the partition's 1,000 WCU ceiling and are
  // throttled, and the clients see ThrottlingException, never the provisioned mode's error.
  const ServiceRunOutcome one_partition = run_service(
      load_scenario(kGameDay, with({"duration=35s", "heal=25s", "workload.verify_after=10s",
                                    "storage.partitions=1", "storage.admission.mode=on_demand",
                                    "workload.item_size=8KB"},
                                   kAdmission)),
      1);
  ASSERT_TRUE(one_partition.passed) << one_partition.summary["checks"].dump(2);
  const nlohmann::json& requests = one_partition.summary["requests"];
  std::printf("on-demand, one partition: %s\n", requests.dump().c_str());
  EXPECT_GT(requests["throttled"].get<uint64_t>(), 0u);
  EXPECT_EQ(requests["by_error"].value("ThrottlingException", uint64_t{0}),
            requests["throttled"].get<uint64_t>());
  EXPECT_FALSE(requests["by_error"].contains("ProvisionedThroughputExceededException"));
}

// A table switched to on-demand from 100,000 WCU: twice its previous peak is 100,000, capped at
// the per-table quota: 40,000 by default (Developer Guide, ServiceQuotas), or the quota the
// scenario raised; a quota of zero is refused with its path.
TEST(CapacityGameDay, OnDemandInstantCapacityStopsAtTheTableQuota) {
  const std::vector<std::string> base = {"duration=20s",
                                         "heal=15s",
                                         "workload.verify_after=5s",
                                         "storage.partitions=4",
                                         "storage.admission.mode=on_demand",
                                         "storage.admission.read_capacity_units=12000",
                                         "storage.admission.write_capacity_units=100000"};
  const ServiceRunOutcome quota = run_service(load_scenario(kGameDay, base), 1);
  ASSERT_TRUE(quota.passed) << quota.summary["checks"].dump(2);
  EXPECT_EQ(quota.summary["capacity"]["write_units"]["end"].get<int64_t>(), 40'000);
  const ServiceRunOutcome raised = run_service(
      load_scenario(kGameDay, with(base, {"storage.admission.table_quota_units=100000"})), 1);
  ASSERT_TRUE(raised.passed) << raised.summary["checks"].dump(2);
  EXPECT_EQ(raised.summary["capacity"]["write_units"]["end"].get<int64_t>(), 100'000);
  EXPECT_NE(error_of(with(base, {"storage.admission.table_quota_units=0"}))
                .find("storage.admission.table_quota_units"),
            std::string::npos);
}

}  // namespace
}  // namespace dynasim::gameday
