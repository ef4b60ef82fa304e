// tools/plot/experiments.py, the script behind docs/experiments.md: a shortened run of one cheap
// experiment writes its figure and its numbers, and an experiment whose scenario dynasim refuses
// (exit code 2) is skipped with the reason instead of failing the others.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace dynasim::gameday {
namespace {

std::string python() {
  // Debian's interpreter, which has Debian's python3-matplotlib (./dev installs both).
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

std::string script(const std::string& directory, const std::string& arguments) {
  return python() + " " + DYNASIM_SOURCE_DIR + "/tools/plot/experiments.py --dynasim " +
         DYNASIM_CLI_PATH + " --work " + directory + "/work --out " + directory + "/figures " +
         arguments + " >" + directory + "/stdout.txt 2>&1";
}

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The burst experiment, shortened (--quick): two 100 s runs of scenarios/hot-partition-burst.json.
TEST(ExperimentsScript, QuickBurstExperimentWritesItsFigureAndNumbers) {
  const std::string directory = ::testing::TempDir() + "/experiments-quick";
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  const std::string command = script(directory, "--quick --only burst");
  ASSERT_EQ(std::system(command.c_str()), 0) << read_text(directory + "/stdout.txt");

  const std::filesystem::path png = std::filesystem::path(directory) / "figures" / "burst.png";
  ASSERT_TRUE(std::filesystem::exists(png)) << read_text(directory + "/stdout.txt");
  EXPECT_GT(std::filesystem::file_size(png), 10'000u);
  EXPECT_LT(std::filesystem::file_size(png), 150'000u);
  const nlohmann::json numbers =
      nlohmann::json::parse(read_text(directory + "/figures/burst.json"));
  EXPECT_EQ(numbers["experiment"], "burst");
  EXPECT_TRUE(numbers["quick"].get<bool>());
  ASSERT_EQ(numbers["commands"].size(), 2u);
  EXPECT_NE(numbers["commands"][0].get<std::string>().find("--seed 1"), std::string::npos);
  const nlohmann::json& with_burst = numbers["variants"]["burst 300 s"];
  const nlohmann::json& without = numbers["variants"]["no burst"];
  // The hot phase throttles without burst at once; with 30 s of saved capacity it throttles less.
  EXPECT_GT(without["throttled_attempts"].get<int64_t>(), 0) << numbers.dump(1);
  EXPECT_LT(with_burst["throttled_attempts"].get<int64_t>(),
            without["throttled_attempts"].get<int64_t>())
      << numbers.dump(1);
  EXPECT_GT(with_burst["admitted_using_burst"].get<int64_t>(), 0) << numbers.dump(1);
  // A 1 ms burst window holds a tenth of a WCU: it can only top up the last fraction of a write.
  EXPECT_LT(10 * without["admitted_using_burst"].get<int64_t>(),
            with_burst["admitted_using_burst"].get<int64_t>())
      << numbers.dump(1);
}

// A scenario dynasim refuses (here: a knob that does not exist) skips the experiment, prints
// why, and writes no figure; an unknown experiment name is refused with exit code 2.
TEST(ExperimentsScript, RefusedScenarioIsSkippedWithTheReason) {
  const std::string directory = ::testing::TempDir() + "/experiments-refused";
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  const std::string command =
      script(directory, "--quick --only burst --extra-set storage.no_such_knob=1");
  ASSERT_EQ(std::system(command.c_str()), 0) << read_text(directory + "/stdout.txt");
  const std::string output = read_text(directory + "/stdout.txt");
  EXPECT_NE(output.find("skipped burst"), std::string::npos) << output;
  EXPECT_NE(output.find("no_such_knob"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(directory + "/figures/burst.png"));

  const std::string unknown = script(directory, "--only no-such-experiment");
  EXPECT_EQ(WEXITSTATUS(std::system(unknown.c_str())), 2);
}

}  // namespace
}  // namespace dynasim::gameday
