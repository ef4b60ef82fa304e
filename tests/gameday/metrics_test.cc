// The run's time series (gameday/metrics.h) and the plots made from it (tools/plot/plot_run.py).
#include "gameday/metrics.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gameday/run.h"
#include "gameday/scenario.h"

namespace dynasim::gameday {
namespace {

ScenarioSpec short_service_run() {
  return load_scenario(
      std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json",
      {"duration=40s", "heal=30s", "workload.verify_after=10s", "storage.partitions=6",
       R"(faults.timeline=[{"at":"15s","kind":"power_off","target":"az-b/r0/h0","for":"5s"}])"});
}

std::vector<std::vector<std::string>> read_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream fields(line);
    while (std::getline(fields, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    rows.push_back(cells);
  }
  return rows;
}

size_t column(const std::vector<std::string>& header, const std::string& name) {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return i;
  }
  ADD_FAILURE() << "no column " << name;
  return 0;
}

// The series adds no event, so the trace is the same; its rows cover the run exactly, and what
// they count adds up to what the history counted over the whole run.
TEST(MetricsTest, RowsCoverTheRunAndAddUpWithoutChangingIt) {
  const ScenarioSpec spec = short_service_run();
  ScenarioRun with(spec, 1);
  with.record_metrics(sim::seconds(10));
  with.run_to_end();
  ScenarioRun without(spec, 1);
  without.run_to_end();
  EXPECT_EQ(with.simulation().trace_hash(), without.simulation().trace_hash());

  const std::string directory = ::testing::TempDir() + "/metrics-test";
  std::filesystem::create_directories(directory);
  ASSERT_TRUE(with.write_metrics(directory));
  std::ifstream file(directory + "/metrics.csv");
  std::stringstream text;
  text << file.rdbuf();
  const auto rows = read_csv(text.str());
  ASSERT_EQ(rows.size(), 1u + 7u) << "a header and one row per 10 s of 70 s";
  const auto& header = rows[0];
  EXPECT_EQ(rows.back()[column(header, "time_s")], "70.000");
  uint64_t attempts = 0;
  uint64_t operations = 0;
  uint64_t checkpoints = 0;
  for (size_t r = 1; r < rows.size(); ++r) {
    attempts += std::stoull(rows[r][column(header, "attempts")]);
    operations += std::stoull(rows[r][column(header, "operations")]);
    checkpoints += std::stoull(rows[r][column(header, "storage.checkpoints")]);
  }
  const nlohmann::json summary = with.summary(0);
  EXPECT_EQ(attempts, summary["history"]["attempts_started"].get<uint64_t>());
  EXPECT_GT(operations, 0u);
  EXPECT_EQ(static_cast<int64_t>(checkpoints),
            summary["metrics"]["storage.checkpoints"].get<int64_t>());

  std::ifstream partitions_file(directory + "/partitions.csv");
  std::stringstream partitions_text;
  partitions_text << partitions_file.rdbuf();
  const auto cells = read_csv(partitions_text.str());
  ASSERT_GT(cells.size(), 1u);
  EXPECT_EQ(cells[0], (std::vector<std::string>{"time_s", "partition", "attempts", "errors"}));
  uint64_t partition_attempts = 0;
  for (size_t r = 1; r < cells.size(); ++r) {
    EXPECT_LT(std::stoul(cells[r][1]), 6u);
    partition_attempts += std::stoull(cells[r][2]);
  }
  EXPECT_EQ(partition_attempts, attempts);
}

std::string python() {
  // Debian's interpreter, which has Debian's python3-matplotlib (./dev installs both).
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

// tools/plot on a small run: every plot and a self-contained report with the images inside.
TEST(PlotTest, APlotScriptRunTurnsARunDirectoryIntoPlotsAndAReport) {
  const std::string directory = ::testing::TempDir() + "/plot-test-run";
  std::filesystem::remove_all(directory);
  const std::string run =
      std::string(DYNASIM_CLI_PATH) + " run " + DYNASIM_SOURCE_DIR +
      "/scenarios/node-loss-healing.json --seed 1 --quiet --set duration=40s" +
      " --set heal=30s --set workload.verify_after=10s --set storage.partitions=6" +
      " --set "
      "'faults.timeline=[{\"at\":\"10s\",\"kind\":\"power_off\",\"target\":\"az-a/r0/"
      "h1\",\"for\":\"20s\"}]'" +
      " --metrics-interval 5s --out " + directory + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(run.c_str()), 0) << run;
  const std::string plot =
      python() + " " + DYNASIM_SOURCE_DIR + "/tools/plot/plot_run.py " + directory + " >/dev/null";
  ASSERT_EQ(std::system(plot.c_str()), 0) << plot;
  for (const char* name : {"throughput.png", "latency.png", "partitions.png", "availability.png",
                           "healing.png", "report.html"}) {
    const std::filesystem::path path = std::filesystem::path(directory) / "plots" / name;
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    EXPECT_GT(std::filesystem::file_size(path), 1000u) << path;
  }
  std::ifstream report(directory + "/plots/report.html");
  std::stringstream text;
  text << report.rdbuf();
  EXPECT_NE(text.str().find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(text.str().find("replica_convergence"), std::string::npos);

  // A run directory without metrics is refused with a message, exit code 2.
  const std::string empty = ::testing::TempDir() + "/plot-test-empty";
  std::filesystem::create_directories(empty);
  const std::string refused =
      python() + " " + DYNASIM_SOURCE_DIR + "/tools/plot/plot_run.py " + empty + " 2>/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(refused.c_str())), 2);
}

// A run whose partitions split gets the partition count over time (splits.png) in its report.
TEST(PlotTest, ARunWithSplitsGetsThePartitionCountPlot) {
  const std::string directory = ::testing::TempDir() + "/plot-test-splits";
  std::filesystem::remove_all(directory);
  const std::string run = std::string(DYNASIM_CLI_PATH) + " run " + DYNASIM_SOURCE_DIR +
                          "/scenarios/hot-partition.json --seed 1 --quiet --set duration=30s" +
                          " --set heal=15s --set workload.verify_after=5s --metrics-interval 5s" +
                          " --out " + directory + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(run.c_str()), 0) << run;
  const std::string plot =
      python() + " " + DYNASIM_SOURCE_DIR + "/tools/plot/plot_run.py " + directory + " >/dev/null";
  ASSERT_EQ(std::system(plot.c_str()), 0) << plot;
  const std::filesystem::path path = std::filesystem::path(directory) / "plots" / "splits.png";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_GT(std::filesystem::file_size(path), 1000u);
  std::ifstream report(directory + "/plots/report.html");
  std::stringstream text;
  text << report.rdbuf();
  EXPECT_NE(text.str().find("Partitions and splits"), std::string::npos);
}

}  // namespace
}  // namespace dynasim::gameday

namespace dynasim::gameday {
namespace {

// The share of the busiest partition over the mean, from the run's partitions.csv.
double busiest_partition_over_mean(const std::string& key_distribution) {
  const ScenarioSpec spec =
      load_scenario(std::string(DYNASIM_SOURCE_DIR) + "/scenarios/power-off-game-day.json",
                    {"duration=20s", "heal=20s", "workload.verify_after=5s", "storage.partitions=6",
                     "faults.timeline=[]", "workload.key_distribution=" + key_distribution});
  ScenarioRun run(spec, 1);
  run.record_metrics(sim::seconds(10));
  run.run_to_end();
  EXPECT_TRUE(run.passed()) << key_distribution;
  const std::string directory = ::testing::TempDir() + "/key-distribution";
  std::filesystem::create_directories(directory);
  EXPECT_TRUE(run.write_metrics(directory));
  std::ifstream file(directory + "/partitions.csv");
  std::stringstream text;
  text << file.rdbuf();
  const auto rows = read_csv(text.str());
  std::map<uint32_t, uint64_t> attempts;
  uint64_t total = 0;
  for (size_t r = 1; r < rows.size(); ++r) {
    if (std::stod(rows[r][0]) > 20.0) continue;  // the workload phase only
    attempts[static_cast<uint32_t>(std::stoul(rows[r][1]))] += std::stoull(rows[r][2]);
    total += std::stoull(rows[r][2]);
  }
  uint64_t busiest = 0;
  for (const auto& [partition, count] : attempts) busiest = std::max(busiest, count);
  return static_cast<double>(busiest) / (static_cast<double>(total) / 6.0);
}

// workload.key_distribution shapes where the load lands: uniform spreads it over the six
// partitions, one hot key or a steep Zipf piles it on one partition.
TEST(KeyDistributionTest, SkewedDistributionsPileLoadOnOnePartition) {
  EXPECT_LT(busiest_partition_over_mean(R"({"kind":"uniform"})"), 1.4);
  EXPECT_LT(busiest_partition_over_mean(R"({"kind":"sequential"})"), 1.4);
  EXPECT_GT(busiest_partition_over_mean(
                R"({"kind":"hot_set","hot_keys_fraction":0.001,"hot_traffic":0.9})"),
            2.5);
  EXPECT_GT(busiest_partition_over_mean(R"({"kind":"zipf","exponent":2})"), 2.5);
}

}  // namespace
}  // namespace dynasim::gameday
