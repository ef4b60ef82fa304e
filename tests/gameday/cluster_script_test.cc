// tools/cluster/run-shard.sh, the script every scheduler in docs/scaling-out.md runs: its shards,
// merged, give the report one `dynasim swarm` over the whole range writes, byte for byte, with a
// failing seed's capsule among them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace dynasim::gameday {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

int shell(const std::string& command) {
  const int status = std::system((command + " >/dev/null 2>&1").c_str());
  return WEXITSTATUS(status);
}

TEST(ClusterScriptTest, ShardsRunByTheScriptMergeIntoTheSingleMachineReport) {
  const std::filesystem::path root =
      std::filesystem::path(::testing::TempDir()) / "cluster-script-test";
  std::filesystem::remove_all(root);
  const std::string source = DYNASIM_SOURCE_DIR;
  const std::string cli = DYNASIM_CLI_PATH;
  // world-smoke, short; the planted acknowledgement before fsync fails some seeds, so the
  // reports carry failures and capsules.
  const std::string scenario = source + "/scenarios/world-smoke.json";
  const std::string knobs = " --set duration=20s --set heal=10s --set probe.ack_before_fsync=true";

  const int single = shell(cli + " swarm " + scenario + " --seeds 1..4 --jobs 1 --out " +
                           (root / "single").string() + knobs);
  ASSERT_LE(single, 1);
  for (int shard = 1; shard <= 2; ++shard) {
    const std::string command = "JOBS=1 DYNASIM=" + cli + " " + source +
                                "/tools/cluster/run-shard.sh " + std::to_string(shard) +
                                " 2 1..4 " + scenario + " " + root.string() + knobs;
    ASSERT_EQ(shell(command), 0) << command;
  }
  ASSERT_EQ(shell(cli + " merge " + (root / "shard-2").string() + " " +
                  (root / "shard-1").string() + " --out " + (root / "merged").string()),
            single);
  const std::string expected = read_file(root / "single" / "report.json");
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(read_file(root / "merged" / "report.json"), expected);
  if (single == 1) {
    EXPECT_TRUE(std::filesystem::exists(root / "merged" / "capsules"));
  }
  // Too few arguments: the script prints its usage and exits 2.
  EXPECT_EQ(shell(source + "/tools/cluster/run-shard.sh 1 2"), 2);
}

}  // namespace
}  // namespace dynasim::gameday
