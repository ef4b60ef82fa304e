// The scenario loader's fuzz target body, shared by the libFuzzer binary
// (tests/fuzz/scenario_loader_fuzz.cc, built with -DDYNASIM_FUZZ=ON by clang++) and by the unit
// test that replays deterministic mutations of the shipped scenarios in every build
// (tests/gameday/scenario_fuzz_test.cc).
//
// Input: the scenario's JSON text, then optionally a NUL byte and "--set" assignments, one per
// line. Bad input must end in a ScenarioError (or UnitError) naming what is wrong; anything else
// that escapes (another exception, an assertion, a sanitizer report) is a bug in the loader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gameday/json_reader.h"
#include "gameday/scenario.h"
#include "gameday/units.h"

namespace dynasim::gameday {

// 0: the scenario loaded; 1: it was rejected with a ScenarioError or UnitError whose message is
// not empty. Other failures propagate.
inline int load_scenario_bytes(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t separator = input.find('\0');
  const std::string text(input.substr(0, separator));
  try {
    nlohmann::json document = parse_json_text(text, "fuzz-input.json");
    if (separator != std::string_view::npos) {
      std::string_view rest = input.substr(separator + 1);
      // A bound on the overrides one input applies, so an input cannot make the target slow.
      for (int applied = 0; !rest.empty() && applied < 16; ++applied) {
        const size_t end = rest.find('\n');
        const std::string assignment(rest.substr(0, end));
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
        if (assignment.find('\0') != std::string::npos) continue;
        apply_override(document, assignment);
      }
    }
    // In the unit test the input stands in the scenarios directory, so that a shipped scenario's
    // relative data files (a CloudWatch replay's CSV) resolve.
#ifdef DYNASIM_SOURCE_DIR
    const ScenarioSpec spec =
        parse_scenario(document, DYNASIM_SOURCE_DIR "/scenarios/fuzz-input.json");
#else
    const ScenarioSpec spec = parse_scenario(document, "fuzz-input.json");
#endif
    (void)spec;
    return 0;
  } catch (const ScenarioError& error) {
    if (std::string_view(error.what()).empty()) throw;
    return 1;
  } catch (const UnitError& error) {
    if (std::string_view(error.what()).empty()) throw;
    return 1;
  }
}

}  // namespace dynasim::gameday
