// scenarios/traffic-spike.json, scaled down by five so that it runs in a test: 10 partitions of
// an on-demand table that takes 24,000 WCU at once, a spike from 2,000 to 20,000 writes/s. The
// partitions hold half the peak, so they split for consumption (twice); each child is led at once
// by the leader that committed its split, GAC meters the table, and the clients see almost no
// throttling and no lost work. The full-size run and its figures are in docs/experiments.md.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kTrafficSpike = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/traffic-spike.json";

TEST(ServiceRun, TrafficSpikeSplitsTheOnDemandTableAndThrottlingStaysRare) {
  const ScenarioSpec spec = load_scenario(
      kTrafficSpike,
      {"storage.partitions=10", "storage.admission.write_capacity_units=24000",
       "storage.admission.table_quota_units=24000", "workload.client_hosts_per_az=2",
       "workload.keys=20000",
       R"(workload.phases=[{"duration": "5s", "rate": {"constant": "0/s"}},
                           {"duration": "45s", "rate": {"spike": {"base": "2000/s",
                            "peak": "20000/s", "at": "5s", "rise": "15s", "hold": "10s",
                            "fall": "10s"}}}])"});
  const ServiceRunOutcome outcome = run_service(spec, 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& partitions = outcome.summary["partitions"];
  const nlohmann::json& requests = outcome.summary["requests"];
  std::printf("partitions %lld -> %lld; requests %s\n",
              static_cast<long long>(partitions["initial"].get<int64_t>()),
              static_cast<long long>(partitions["final"].get<int64_t>()), requests.dump().c_str());
  // 10 partitions of 1,000 WCU hold half the peak: at least one round of splits, all of them for
  // consumption.
  EXPECT_EQ(partitions["initial"].get<int64_t>(), 10);
  EXPECT_GE(partitions["final"].get<int64_t>(), 20);
  for (const nlohmann::json& split : partitions["splits"]) {
    EXPECT_EQ(split["reason"].get<std::string>(), "consumption") << split.dump();
  }
  // Burst covers the partitions until they split; GAC keeps the table under 24,000 WCU, above
  // the peak. Throttling and errors stay a small fraction of the attempts.
  const auto total = requests["total"].get<uint64_t>();
  EXPECT_LT(requests["throttled"].get<uint64_t>() * 50, total) << requests.dump();
  EXPECT_LT(requests["errors"].get<uint64_t>() * 200, total) << requests.dump();
  // The children were served at once: hardly any router lookup found no partition.
  const nlohmann::json& metrics = outcome.summary["metrics"];
  EXPECT_LT(metrics.value("router.resolve_failures", int64_t{0}) * 500, static_cast<int64_t>(total))
      << metrics.dump();
}

}  // namespace
}  // namespace dynasim::gameday
