// Whole runs: pinned fingerprints, the determinism check (and a planted difference it must find),
// the durability checker against a planted ack-before-fsync bug, and the CLI's exit codes.
#include "gameday/run.h"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "gameday/determinism.h"
#include "gameday/json_reader.h"
#include "gameday/scenario.h"

namespace dynasim::gameday {
namespace {

const std::string kSmoke = std::string(DYNASIM_SOURCE_DIR) + "/scenarios/world-smoke.json";

// The default scenario, shortened; later overrides win over earlier ones.
ScenarioSpec smoke(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {"duration=2m", "heal=20s"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_scenario(kSmoke, overrides);
}

uint64_t run_hash(const ScenarioSpec& spec, uint64_t seed) {
  ScenarioRun run(spec, seed);
  run.run_to_end();
  EXPECT_TRUE(run.passed()) << run.summary(0).dump(2);
  return run.simulation().trace_hash();
}

TEST(RunTest, SameSeedSameTraceHashDifferentSeedDifferent) {
  const ScenarioSpec spec = smoke();
  EXPECT_EQ(run_hash(spec, 5), run_hash(spec, 5));
  EXPECT_NE(run_hash(spec, 5), run_hash(spec, 6));
}

// Pinned fingerprints: any change to the kernel, the world's behaviour, the random streams or
// the probe changes these. When a change is intended, update them in the same commit and say so.
// Both compilers must produce them (./dev test runs this suite built by g++ and by clang++).
TEST(RunTest, PinnedFingerprints) {
  const ScenarioSpec spec = smoke();
  EXPECT_EQ(run_hash(spec, 1), 0x24555628466c096dULL);
  EXPECT_EQ(run_hash(spec, 2), 0x9b383a011cf7c772ULL);
}

TEST(DeterminismTest, TwoRunsInLockstepAreIdentical) {
  const DeterminismReport report = check_determinism(smoke(), 9);
  EXPECT_TRUE(report.identical);
  EXPECT_GT(report.events_compared, 10000u);
}

TEST(DeterminismTest, APlantedDifferenceIsFoundAtItsEvent) {
  static constexpr sim::EventKind kPlanted = sim::event_kind("test.planted");
  const DeterminismReport report = check_determinism(smoke(), 9, [](ScenarioRun& second) {
    second.simulation().call_at(sim::SimTime(0) + sim::seconds(30), kPlanted, 0, [] {});
  });
  ASSERT_FALSE(report.identical);
  EXPECT_EQ(report.second_run.kind, "test.planted");
  EXPECT_EQ(report.second_run.time, sim::SimTime(0) + sim::seconds(30));
  EXPECT_NE(report.first_run.kind, "test.planted");
}

TEST(DurabilityCheckTest, PlantedAckBeforeFsyncIsCaughtAndTheSameSeedsPassWithoutIt) {
  // Power-offs every few seconds make unsynced-but-acknowledged records likely to be lost.
  const std::vector<std::string> harsh = {"duration=40s", "faults.unrestricted=true",
                                          "faults.random[0].rate_per_host_hour=120",
                                          "probe.append_interval=5ms"};
  std::vector<std::string> planted = harsh;
  planted.push_back("probe.ack_before_fsync=true");
  const ScenarioSpec clean_spec = smoke(harsh);
  const ScenarioSpec planted_spec = smoke(planted);
  int caught = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    ScenarioRun clean(clean_spec, seed);
    clean.run_to_end();
    EXPECT_TRUE(clean.passed()) << "seed " << seed << " failed without the planted bug";
    ScenarioRun bugged(planted_spec, seed);
    bugged.run_to_end();
    if (!bugged.passed()) {
      ++caught;
      std::printf("planted ack-before-fsync caught: %s\n", bugged.reproduce_command().c_str());
    }
  }
  EXPECT_GE(caught, 1) << "no seed in 1..5 caught an acknowledgement before fsync";
}

int run_cli(const std::string& arguments) {
  const std::string command = std::string(DYNASIM_CLI_PATH) + " " + arguments + " >/dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WEXITSTATUS(status);
}

// --history: the clients' history as JSON lines, one per invocation and per completion, written
// as the run goes, without changing the run. A world-level scenario has no clients.
TEST(RunTest, HistoryIsWrittenAsJsonLinesWithoutChangingTheRun) {
  const ScenarioSpec spec = load_scenario(
      std::string(DYNASIM_SOURCE_DIR) + "/scenarios/bit-rot-scrub.json",
      {"duration=20s", "heal=30s", "workload.verify_after=10s", "faults.timeline=[]"});
  std::ostringstream history;
  ScenarioRun with(spec, 1);
  ASSERT_TRUE(with.write_history_to(&history));
  with.run_to_end();
  ScenarioRun without(spec, 1);
  without.run_to_end();
  EXPECT_EQ(with.simulation().trace_hash(), without.simulation().trace_hash());
  std::istringstream lines(history.str());
  std::string line;
  uint64_t invokes = 0, completions = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json event = nlohmann::json::parse(line);
    ASSERT_TRUE(event.contains("client") && event.contains("key") && event.contains("time_ns"))
        << line;
    (event["type"] == "invoke" ? invokes : completions) += 1;
  }
  EXPECT_GT(invokes, 1000u);
  EXPECT_EQ(invokes, completions);  // every attempt ended: the run drains before it stops

  const ScenarioSpec world = smoke();
  ScenarioRun world_run(world, 1);
  EXPECT_FALSE(world_run.write_history_to(&history));
  EXPECT_EQ(run_cli("run " + kSmoke + " --history --quiet --out " + ::testing::TempDir() + "/h"),
            2);
}

TEST(CliTest, ExitCodes) {
  const std::string out = std::string("--out ") + ::testing::TempDir() + "/cli";
  EXPECT_EQ(run_cli("--help"), 0);
  EXPECT_EQ(run_cli("run --help"), 0);
  EXPECT_EQ(run_cli("frobnicate"), 2);
  EXPECT_EQ(run_cli("run " + kSmoke + " --seed 1 --set duration=20s --set heal=5s --quiet " + out),
            0);
  EXPECT_EQ(run_cli("run " + kSmoke + " --set duration=5minutes " + out), 2);
  EXPECT_EQ(run_cli("run " + kSmoke + " --set faults.timeline[0].target=az-q " + out), 2);
  EXPECT_EQ(run_cli("run /nonexistent.json " + out), 2);
  EXPECT_EQ(run_cli("validate " + kSmoke), 0);
  EXPECT_EQ(
      run_cli("run " + kSmoke +
              " --seed 1 --set duration=1m --set heal=5s --set faults.unrestricted=true"
              " --set faults.random[0].rate_per_host_hour=600 --set faults.random[0].for=1s"
              " --set probe.ack_before_fsync=true"
              " --set probe.append_interval=2ms --quiet " +
              out),
      1);
}

TEST(ScenarioTest, BadFieldNamesThePathWhatWasExpectedAndWhatWasFound) {
  try {
    smoke({"topology.hosts_per_rak=3"});
    FAIL() << "an unknown field was accepted";
  } catch (const ScenarioError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("$.topology.hosts_per_rak"), std::string::npos) << message;
    EXPECT_NE(message.find("hosts_per_rack"), std::string::npos) << message;
  }
  try {
    smoke({"faults.timeline[1].kind=\"power_of\""});
    FAIL() << "an unknown fault kind was accepted";
  } catch (const ScenarioError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("$.faults.timeline[1].kind"), std::string::npos) << message;
    EXPECT_NE(message.find("power_off"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace dynasim::gameday
