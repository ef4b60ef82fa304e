// The game-day workload with UpdateItem, Query and Scan in its mix (scenarios/api-mix.json): the
// mix draws them in proportion, every check passes on a clean run and the new kinds are timed and
// counted, the counters check fails with the planted unapplied ADD, a run replays to one
// trace_hash, zero weights for the new kinds leave an existing scenario's draws untouched, and
// bad weights and counter counts are refused at their field path.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gameday/workload.h"
#include "model/storage_protocol.h"
#include "tests/gameday/service_run_support.h"

namespace dynasim::gameday {
namespace {

const std::string kApiMix = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/api-mix.json";
const std::string kGameDay = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json";

std::vector<std::string> short_run(std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = {"duration=20s", "heal=12s", "workload.verify_after=5s"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return overrides;
}

// The mix's weights in OperationMix's order, as api-mix.json gives them.
constexpr double kWeights[kOperationKinds] = {20, 15, 10, 10, 5, 5, 15, 12, 8};

TEST(ApiMixRun, TheMixDrawsUpdateQueryAndScanInProportion) {
  ScenarioRun run(load_scenario(kApiMix, short_run()), 1);
  run.run_to_end();
  ASSERT_TRUE(run.passed()) << run.service()->first_failure();
  WorkloadProcess::Stats total;
  for (sim::HostId host : run.service()->client_hosts()) {
    const auto* workload = dynamic_cast<const WorkloadProcess*>(
        run.world().process_at(sim::Address{host, model::kClientPort}));
    ASSERT_NE(workload, nullptr);
    const WorkloadProcess::Stats& stats = workload->stats();
    total.submitted += stats.submitted;
    for (size_t k = 0; k < kOperationKinds; ++k) total.by_kind[k] += stats.by_kind[k];
    total.query_items += stats.query_items;
    total.scan_items += stats.scan_items;
    total.counters_updated += stats.counters_updated;
    total.counters_verified += stats.counters_verified;
    total.counters_unverified += stats.counters_unverified;
  }
  // About 6,000 operations: each share within 0.02 of its weight (binomial sigma below 0.0055).
  ASSERT_GT(total.submitted, 5000u);
  double weight_sum = 0;
  for (double weight : kWeights) weight_sum += weight;
  for (size_t k = 0; k < kOperationKinds; ++k) {
    EXPECT_NEAR(static_cast<double>(total.by_kind[k]) / static_cast<double>(total.submitted),
                kWeights[k] / weight_sum, 0.02)
        << "kind " << k;
  }
  // Queries found items (of 500 keys, most are written within seconds) and scans read pages.
  EXPECT_GT(total.query_items, total.by_kind[7] / 4);
  EXPECT_GT(total.scan_items, total.by_kind[8]);
  // Each of 3 processes sent ADDs to all 8 counters and read every one back.
  EXPECT_EQ(total.counters_updated, 3u * 8u);
  EXPECT_EQ(total.counters_verified, total.counters_updated);
  EXPECT_EQ(total.counters_unverified, 0u);
}

TEST(ApiMixRun, EveryCheckPassesAndTheNewKindsAreTimedAndCounted) {
  const ServiceRunOutcome outcome = run_service(load_scenario(kApiMix, short_run()), 1);
  ASSERT_TRUE(outcome.passed) << outcome.summary["checks"].dump(2);
  const nlohmann::json& counters = outcome.summary["checks"]["counters"];
  EXPECT_TRUE(counters["passed"].get<bool>());
  EXPECT_EQ(counters["counters_checked"], 8);
  EXPECT_GT(counters["adds_acknowledged"].get<uint64_t>(), 500u);
  EXPECT_GE(counters["adds_attempted"].get<uint64_t>(),
            counters["adds_acknowledged"].get<uint64_t>());
  for (const char* kind : {"update", "query", "scan"}) {
    EXPECT_GT(outcome.summary["latency_ms"][kind]["count"].get<uint64_t>(), 100u) << kind;
    EXPECT_GT(outcome.summary["operation_latency_ms"][kind]["count"].get<uint64_t>(), 100u) << kind;
  }
  // A query reads two pages when it finds its item: more attempts than operations.
  EXPECT_GT(outcome.summary["latency_ms"]["query"]["count"].get<uint64_t>(),
            outcome.summary["operation_latency_ms"]["query"]["count"].get<uint64_t>());
  const nlohmann::json& history = outcome.summary["history"];
  EXPECT_GT(history["query_reads_recorded"].get<uint64_t>(), 100u);
  EXPECT_GT(history["attempts_outside_registers"].get<uint64_t>(), 1000u);
  EXPECT_EQ(history["impossible_answers"], 0);
  // Every attempt, the new kinds' too, is a request.
  EXPECT_EQ(outcome.summary["requests"]["total"], history["attempts_ended"]);
  EXPECT_EQ(history["attempts_started"], history["attempts_ended"]);
}

// The planted bug: replicas apply an UpdateItem as a no-op and the leader still says OK. The
// counters check fails naming the lost ADDs; the register checks, which never see counters, pass.
TEST(ApiMixRun, ThePlantedUnappliedAddFailsTheCounterCheck) {
  const ServiceRunOutcome outcome = run_service(
      load_scenario(kApiMix, short_run({"storage.plant.acknowledge_update_without_apply=true"})),
      1);
  EXPECT_FALSE(outcome.passed);
  const nlohmann::json& checks = outcome.summary["checks"];
  EXPECT_FALSE(checks["counters"]["passed"].get<bool>());
  EXPECT_EQ(checks["counters"]["violations"], 8);
  EXPECT_NE(
      checks["counters"]["first_violation"].get<std::string>().find("acknowledged ADDs were lost"),
      std::string::npos)
      << checks["counters"].dump(2);
  EXPECT_TRUE(checks["durability"]["passed"].get<bool>());
  EXPECT_TRUE(checks["linearizability"]["passed"].get<bool>());
  EXPECT_TRUE(checks["replica_convergence"]["passed"].get<bool>());
  EXPECT_NE(outcome.reproduce.find("acknowledge_update_without_apply=true"), std::string::npos)
      << outcome.reproduce;
}

// A request the network delivers twice is proposed once: its leader remembers the command ids it
// proposed lately. Before it did, this run (seed 3, 30% of messages duplicated) failed the counters
// check: counter-1 read 463 after only 432 ADD attempts, the copies of requests applied again.
TEST(ApiMixRun, ANetworkCopyOfAnAddIsAppliedOnce) {
  const ServiceRunOutcome outcome =
      run_service(load_scenario(kApiMix, {"network.duplicate_probability=0.3"}), 3);
  const nlohmann::json& checks = outcome.summary["checks"];
  EXPECT_TRUE(checks["counters"]["passed"].get<bool>()) << checks["counters"].dump(2);
  EXPECT_TRUE(outcome.passed) << checks.dump(2);
  EXPECT_GT(outcome.summary["metrics"].value("storage.duplicate_requests_dropped", int64_t{0}), 0)
      << outcome.summary["metrics"].dump();
}

TEST(ApiMixRun, TwoRunsOfOneSeedGiveOneTraceHash) {
  const ScenarioSpec spec = load_scenario(kApiMix, short_run());
  const ServiceRunOutcome first = run_service(spec, 7);
  const ServiceRunOutcome second = run_service(spec, 7);
  EXPECT_EQ(first.trace_hash, second.trace_hash);
  EXPECT_EQ(first.summary["latency_ms"].dump(), second.summary["latency_ms"].dump());
  EXPECT_NE(run_service(spec, 8).trace_hash, first.trace_hash);
}

// The three new weights at 0 draw exactly as a mix without them: an existing scenario keeps its
// trace_hash whether or not it names them.
TEST(ApiMixRun, ZeroWeightsForTheNewKindsLeaveTheDrawsAsTheyWere) {
  const std::vector<std::string> base = {"duration=15s", "heal=12s", "workload.verify_after=5s"};
  std::vector<std::string> named = base;
  named.push_back(
      R"(workload.mix={"put": 30, "get_strong": 25, "get_eventual": 20, "put_if_version": 15,
                       "put_if_absent": 5, "delete": 5, "update": 0, "query": 0, "scan": 0})");
  named.push_back("workload.counters=99");
  const ServiceRunOutcome without = run_service(load_scenario(kGameDay, base), 3);
  const ServiceRunOutcome with = run_service(load_scenario(kGameDay, named), 3);
  EXPECT_EQ(without.trace_hash, with.trace_hash);
  EXPECT_FALSE(with.summary["checks"].contains("counters"));  // no UpdateItem: no counters check
}

TEST(ApiMixRun, BadWeightsAndCounterCountsAreRefusedAtTheirPath) {
  const std::string negative = scenario_error_of(kApiMix, {"workload.mix.update=-1"});
  EXPECT_NE(negative.find("$.workload.mix.update"), std::string::npos) << negative;
  const std::string text = scenario_error_of(kApiMix, {R"(workload.mix.query="many")"});
  EXPECT_NE(text.find("$.workload.mix.query"), std::string::npos) << text;
  const std::string phase =
      scenario_error_of(kApiMix, {R"(workload.phases=[{"duration": "10s", "mix": {"scan": -2}}])"});
  EXPECT_NE(phase.find("$.workload.phases[0].mix.scan"), std::string::npos) << phase;
  const std::string typo = scenario_error_of(kApiMix, {"workload.mix.updates=1"});
  EXPECT_NE(typo.find("$.workload.mix.updates"), std::string::npos) << typo;
  EXPECT_NE(typo.find("update"), std::string::npos) << typo;
  const std::string zero = scenario_error_of(kApiMix, {"workload.counters=0"});
  EXPECT_NE(zero.find("$.workload.counters"), std::string::npos) << zero;
  const std::string huge = scenario_error_of(kApiMix, {"workload.counters=100001"});
  EXPECT_NE(huge.find("$.workload.counters"), std::string::npos) << huge;
  const std::string fraction = scenario_error_of(kApiMix, {"workload.counters=2.5"});
  EXPECT_NE(fraction.find("$.workload.counters"), std::string::npos) << fraction;
  EXPECT_EQ(scenario_error_of(kApiMix, {"workload.counters=100000"}), "(no error)");
  // Only the new kinds in a mix is a mix.
  EXPECT_EQ(scenario_error_of(kApiMix, {R"(workload.mix={"scan": 1})"}), "(no error)");
}

}  // namespace
}  // namespace dynasim::gameday
