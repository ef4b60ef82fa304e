// The Chrome Trace Event document of a run's window (gameday/chrome_trace.h).
#include "gameday/chrome_trace.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "gameday/run.h"
#include "gameday/scenario.h"

namespace dynasim::gameday {
namespace {

// A window around a power-off: valid JSON, kernel events only inside the window, every client
// slice begun is ended, the fault is there, and the run is the same run as without the trace.
TEST(ChromeTraceTest, AWindowOfTheRunIsAValidTraceThatChangesNothing) {
  const ScenarioSpec spec = load_scenario(
      std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json",
      {"duration=30s", "heal=20s", "workload.verify_after=5s", "storage.partitions=6",
       R"(faults.timeline=[{"at":"12s","kind":"power_off","target":"az-b/r0/h0","for":"3s"}])"});
  const sim::SimTime from = sim::SimTime::zero() + sim::seconds(11);
  const sim::SimTime to = sim::SimTime::zero() + sim::seconds(13);
  std::ostringstream out;
  ScenarioRun traced(spec, 1);
  traced.write_trace_to(&out, from, to);
  traced.run_to_end();
  ScenarioRun plain(spec, 1);
  plain.run_to_end();
  EXPECT_EQ(traced.simulation().trace_hash(), plain.simulation().trace_hash());

  const nlohmann::json document = nlohmann::json::parse(out.str());
  const nlohmann::json& events = document.at("traceEvents");
  std::map<uint64_t, int> open_slices;
  uint64_t kernel = 0;
  uint64_t faults = 0;
  uint64_t names = 0;
  for (const nlohmann::json& event : events) {
    const std::string phase = event.at("ph");
    if (phase == "M") {
      ++names;
      continue;
    }
    const double ts_us = event.at("ts");
    EXPECT_GE(ts_us, 11e6) << event.dump();
    EXPECT_LE(ts_us, 13e6) << event.dump();
    if (phase == "b") ++open_slices[event.at("id")];
    if (phase == "e") --open_slices[event.at("id")];
    if (event.value("cat", "") == "kernel") ++kernel;
    if (event.value("cat", "") == "fault") {
      ++faults;
      EXPECT_NE(event.at("name").get<std::string>().find("power_off"), std::string::npos);
    }
  }
  for (const auto& [id, balance] : open_slices) EXPECT_EQ(balance, 0) << "slice " << id;
  EXPECT_GT(open_slices.size(), 10u) << "client attempts in the window";
  EXPECT_GT(kernel, 1000u);
  EXPECT_EQ(faults, 1u);
  EXPECT_GT(names, 9u) << "the clients and every host are named";
}

}  // namespace
}  // namespace dynasim::gameday
