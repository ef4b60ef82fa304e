// The scenario loader's fuzz target (tests/fuzz/scenario_loader_target.h) over deterministic
// mutations of every shipped scenario, in every build (the ASan+UBSan one included): bad input
// must end in an error that names what is wrong, never a crash or another exception. The
// libFuzzer binary explores further (./dev test runs it for a minute).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sim/random.h"
#include "tests/fuzz/scenario_loader_target.h"

namespace dynasim::gameday {
namespace {

std::vector<std::string> shipped_scenarios() {
  std::vector<std::string> texts;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(DYNASIM_SOURCE_DIR) + "/scenarios")) {
    const std::string name = entry.path().filename().string();
    const bool schema = name.ends_with(".schema.json");  // the JSON Schema, not a scenario
    if (entry.path().extension() == ".json" && !schema) paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    texts.push_back(text.str());
  }
  return texts;
}

int run_target(const std::string& input) {
  return load_scenario_bytes(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

// Pieces mutations splice in: the format's own tokens and values that stress the readers.
const std::vector<std::string> kTokens = {"\"duration\"",
                                          "\"heal\"",
                                          "\"storage\"",
                                          "\"faults\"",
                                          "\"timeline\"",
                                          "\"at\"",
                                          "\"for\"",
                                          "\"target\"",
                                          "\"kind\"",
                                          "\"partitions\"",
                                          "\"5m\"",
                                          "\"1KB\"",
                                          "\"100/s\"",
                                          "\"-5s\"",
                                          "1e400",
                                          "-1",
                                          "0",
                                          "null",
                                          "true",
                                          "[]",
                                          "{}",
                                          "\"\\u0000\"",
                                          "18446744073709551616",
                                          "\"9999999h\"",
                                          "\"0.5ns\"",
                                          ",",
                                          ":",
                                          "[",
                                          "{"};

std::string mutate(const std::string& base, sim::Random& random) {
  std::string text = base;
  const int edits = 1 + static_cast<int>(random.uniform_u64(4));
  for (int e = 0; e < edits && !text.empty(); ++e) {
    const size_t at = random.uniform_u64(text.size());
    switch (random.uniform_u64(5)) {
      case 0:  // flip a byte
        text[at] = static_cast<char>(random.uniform_u64(256));
        break;
      case 1:  // delete a run
        text.erase(at, 1 + random.uniform_u64(16));
        break;
      case 2:  // insert a token
        text.insert(at, kTokens[random.uniform_u64(kTokens.size())]);
        break;
      case 3:  // truncate
        text.resize(at);
        break;
      default:  // duplicate a run
        text.insert(at, text.substr(random.uniform_u64(text.size()), 1 + random.uniform_u64(64)));
        break;
    }
  }
  if (random.bernoulli(0.2)) {
    text.push_back('\0');
    text += "duration=" + kTokens[random.uniform_u64(kTokens.size())] + "\n";
    text += "storage.partitions=" + kTokens[random.uniform_u64(kTokens.size())];
  }
  return text;
}

TEST(ScenarioFuzzTest, ShippedScenariosLoadAndMutationsAreRejectedCleanly) {
  const std::vector<std::string> scenarios = shipped_scenarios();
  ASSERT_GE(scenarios.size(), 4u);
  for (const std::string& text : scenarios) EXPECT_EQ(run_target(text), 0);
  sim::Random random(20261124);
  uint64_t rejected = 0;
  constexpr int kCases = 3000;
  for (int i = 0; i < kCases; ++i) {
    const std::string input = mutate(scenarios[i % scenarios.size()], random);
    rejected += static_cast<uint64_t>(run_target(input));
  }
  // Most mutations break something; a few (inside a description string) still load.
  EXPECT_GT(rejected, kCases / 2);
}

}  // namespace
}  // namespace dynasim::gameday
