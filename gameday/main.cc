// dynasim: the command-line front door. Runs game-day scenarios, validates scenario files and
// checks determinism. Exit codes: 0 every check passed, 1 a check failed, 2 bad input
// (scenario or command line), 3 internal error.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "gameday/determinism.h"
#include "gameday/json_reader.h"
#include "gameday/run.h"
#include "gameday/scenario.h"
#include "gameday/units.h"

namespace po = boost::program_options;
using namespace dynasim;

namespace {

constexpr int kExitPassed = 0;
constexpr int kExitCheckFailed = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitInternalError = 3;
constexpr const char* kDefaultScenario = "scenarios/world-smoke.json";

const char* kUsage =
    R"(dynasim: a deterministic simulator of a DynamoDB-style service, for game days,
bug reproduction by seed and capacity planning.

Usage:
  dynasim run [SCENARIO] [--seed N] [--out DIR] [--set PATH=VALUE ...] [--check-determinism]
  dynasim validate SCENARIO [--set PATH=VALUE ...]
  dynasim --help | dynasim COMMAND --help

Commands:
  run        Run a scenario with one seed and write DIR/summary.json. The same scenario, seed
             and build always replay the same events; the summary's trace_hash proves it.
  validate   Check a scenario file and print what is wrong with it, with the JSON path.

Examples:
  dynasim run scenarios/world-smoke.json --seed 7 --out out/smoke
  dynasim run scenarios/world-smoke.json --seed 7 --set duration=2m --set faults.unrestricted=true
  dynasim run scenarios/world-smoke.json --seed 7 --check-determinism

Exit codes: 0 every check passed, 1 a check failed (the summary and stderr name it and print the
reproduce command), 2 bad input (scenario or command line), 3 internal error.
See docs/scenarios.md for the scenario format and docs/reproducing-bugs.md for seeds.
)";

std::string hex64(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64, value);
  return buffer;
}

int bad_input(const std::string& message) {
  std::cerr << "dynasim: " << message << "\n";
  return kExitBadInput;
}

// Runs with a progress line on a terminal: simulated time, events and speed.
double run_with_progress(gameday::ScenarioRun& run, bool show_progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_print = start;
  uint64_t steps = 0;
  while (run.step()) {
    if (show_progress && (++steps & 0xffff) == 0) {
      const auto now = Clock::now();
      if (now - last_print > std::chrono::milliseconds(250)) {
        last_print = now;
        const double wall = std::chrono::duration<double>(now - start).count();
        const double sim_seconds = sim::to_seconds(run.simulation().now());
        const double total = sim::to_seconds(run.end_time());
        std::fprintf(stderr, "\r  %5.1f%%  sim %.0fs / %.0fs  %" PRIu64 " events  %.2fM events/s  ",
                     100.0 * sim_seconds / total, sim_seconds, total,
                     run.simulation().events_executed(),
                     static_cast<double>(run.simulation().events_executed()) / wall * 1e-6);
      }
    }
  }
  if (show_progress) {
    std::fprintf(stderr,
                 "\r%78s\r  running the final checks (linearizability search, convergence)...", "");
  }
  run.finish();
  if (show_progress) std::fprintf(stderr, "\r%78s\r", "");
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int command_run(const std::vector<std::string>& arguments) {
  po::options_description options("dynasim run options");
  uint64_t seed = 1;
  std::string out_dir;
  std::vector<std::string> overrides;
  std::string metrics_interval;
  std::string trace_window;
  options.add_options()("help,h", "show this help")(
      "seed", po::value<uint64_t>(&seed)->default_value(1), "the root seed: decides every draw")(
      "out", po::value<std::string>(&out_dir),
      "folder for summary.json (default: out/<scenario name>-seed<N>)")(
      "set", po::value<std::vector<std::string>>(&overrides)->composing(),
      "override a scenario field, e.g. --set duration=2m --set faults.timeline[0].at=30s")(
      "check-determinism", "run twice side by side and report the first differing event")(
      "history",
      "also write the clients' history to <out>/history.jsonl: one JSON line per invocation and "
      "per completion (client, op, f, key, value, type, time_ns), the shape Porcupine and "
      "Jepsen read; large for long runs (about 150 bytes a line)")(
      "metrics-interval", po::value<std::string>(&metrics_interval)->default_value("10s"),
      "row length of <out>/metrics.csv and <out>/partitions.csv, the time series tools/plot "
      "draws (at least 1s)")(
      "trace", po::value<std::string>(&trace_window),
      "also write <out>/trace.json for the window FROM..TO of simulated time (e.g. 60s..70s): "
      "Chrome Trace Event JSON that Perfetto (ui.perfetto.dev) opens, with every kernel event "
      "on its host's track, every client attempt as a slice and the faults")("quiet",
                                                                             "no progress line");
  po::options_description hidden;
  std::string scenario_path = kDefaultScenario;
  hidden.add_options()("scenario", po::value<std::string>(&scenario_path));
  po::positional_options_description positional;
  positional.add("scenario", 1);
  po::options_description all;
  all.add(options).add(hidden);
  po::variables_map values;
  try {
    po::store(po::command_line_parser(arguments).options(all).positional(positional).run(), values);
    po::notify(values);
  } catch (const po::error& error) {
    std::cerr << options;
    return bad_input(std::string(error.what()) + " (see 'dynasim run --help')");
  }
  if (values.count("help")) {
    std::cout << "Usage: dynasim run [SCENARIO] [options]\n  SCENARIO defaults to "
              << kDefaultScenario << "\n\n"
              << options;
    return kExitPassed;
  }

  sim::Duration metrics_row;
  try {
    metrics_row = gameday::parse_duration(metrics_interval);
  } catch (const gameday::UnitError& error) {
    return bad_input("--metrics-interval: " + std::string(error.what()));
  }
  if (metrics_row < sim::seconds(1)) {
    return bad_input("--metrics-interval: expected at least 1s, found " + metrics_interval);
  }

  sim::SimTime trace_from;
  sim::SimTime trace_to;
  if (!trace_window.empty()) {
    const size_t dots = trace_window.find("..");
    try {
      if (dots == std::string::npos) throw gameday::UnitError("FROM..TO", trace_window, "");
      trace_from = sim::SimTime::zero() + gameday::parse_duration(trace_window.substr(0, dots));
      trace_to = sim::SimTime::zero() + gameday::parse_duration(trace_window.substr(dots + 2));
    } catch (const gameday::UnitError&) {
      return bad_input("--trace: expected a window such as 60s..70s, found \"" + trace_window +
                       "\"");
    }
    if (trace_to < trace_from) {
      return bad_input("--trace: the window's end comes before its start in \"" + trace_window +
                       "\"");
    }
  }

  gameday::ScenarioSpec spec;
  try {
    spec = gameday::load_scenario(scenario_path, overrides);
  } catch (const gameday::ScenarioError& error) {
    return bad_input(error.what());
  }

  if (values.count("check-determinism")) {
    try {
      const gameday::DeterminismReport report = gameday::check_determinism(spec, seed);
      if (report.identical) {
        std::printf("determinism: identical over %" PRIu64 " events, trace_hash %s\n",
                    report.events_compared, hex64(report.trace_hash).c_str());
      } else {
        std::printf("determinism: runs differ after %" PRIu64
                    " identical events\n"
                    "  first run:  %s\n  second run: %s\n",
                    report.events_compared, report.first_run.describe().c_str(),
                    report.second_run.describe().c_str());
        std::printf("reproduce: dynasim run %s --seed %" PRIu64 " --check-determinism\n",
                    scenario_path.c_str(), seed);
      }
      if (!report.identical) return kExitCheckFailed;
    } catch (const gameday::ScenarioError& error) {
      return bad_input(error.what());
    }
  }

  try {
    gameday::ScenarioRun run(spec, seed);
    if (out_dir.empty()) out_dir = "out/" + spec.name + "-seed" + std::to_string(seed);
    std::filesystem::create_directories(out_dir);
    std::ofstream history;
    if (values.count("history")) {
      const std::string history_path = out_dir + "/history.jsonl";
      history.open(history_path);
      if (!history) return bad_input("cannot write " + history_path + " (check --out)");
      if (!run.write_history_to(&history)) {
        return bad_input("--history: scenario '" + spec.name +
                         "' has no clients (it has no \"storage\" section), so no history");
      }
    }
    run.record_metrics(metrics_row);
    std::ofstream trace;
    if (!trace_window.empty()) {
      const std::string trace_path = out_dir + "/trace.json";
      trace.open(trace_path);
      if (!trace) return bad_input("cannot write " + trace_path + " (check --out)");
      run.write_trace_to(&trace, trace_from, trace_to);
    }
    const bool show_progress = !values.count("quiet") && isatty(STDERR_FILENO);
    const double wall_seconds = run_with_progress(run, show_progress);
    if (!run.write_metrics(out_dir)) return bad_input("cannot write metrics.csv in " + out_dir);
    nlohmann::json summary = run.summary(wall_seconds);
    if (values.count("check-determinism")) {
      summary["checks"]["determinism"] = {{"passed", true}};
    }
    const std::string summary_path = out_dir + "/summary.json";
    std::ofstream(summary_path) << summary.dump(2) << "\n";
    std::printf("%s seed %" PRIu64 ": %s  trace_hash %s  %" PRIu64
                " events  %.0f sim-s in %.2f wall-s (%.2fM events/s, %.0f sim-s per wall-s)\n",
                spec.name.c_str(), seed, run.passed() ? "PASSED" : "FAILED",
                summary["trace_hash"].get<std::string>().c_str(), summary["events"].get<uint64_t>(),
                summary["sim_seconds"].get<double>(), wall_seconds,
                summary["events_per_second"].get<double>() * 1e-6,
                summary["sim_seconds_per_wall_second"].get<double>());
    for (const auto& [name, check] : summary["checks"].items()) {
      std::printf("  check %-32s %s\n", name.c_str(),
                  check["passed"].get<bool>() ? "passed" : "FAILED");
      if (check.contains("first_violation")) {
        std::printf("    %s\n", check["first_violation"].get<std::string>().c_str());
      }
    }
    std::printf("  summary: %s\n", summary_path.c_str());
    if (!run.passed()) {
      std::printf("reproduce: %s\n", run.reproduce_command().c_str());
      return kExitCheckFailed;
    }
    return kExitPassed;
  } catch (const gameday::ScenarioError& error) {
    return bad_input(error.what());
  }
}

int command_validate(const std::vector<std::string>& arguments) {
  po::options_description options("dynasim validate options");
  std::vector<std::string> overrides;
  options.add_options()("help,h", "show this help")(
      "set", po::value<std::vector<std::string>>(&overrides)->composing(), "override a field");
  po::options_description hidden;
  std::string scenario_path;
  hidden.add_options()("scenario", po::value<std::string>(&scenario_path));
  po::positional_options_description positional;
  positional.add("scenario", 1);
  po::options_description all;
  all.add(options).add(hidden);
  po::variables_map values;
  try {
    po::store(po::command_line_parser(arguments).options(all).positional(positional).run(), values);
    po::notify(values);
  } catch (const po::error& error) {
    return bad_input(std::string(error.what()) + " (see 'dynasim validate --help')");
  }
  if (values.count("help") || scenario_path.empty()) {
    std::cout << "Usage: dynasim validate SCENARIO [--set PATH=VALUE ...]\n\n" << options;
    return values.count("help") ? kExitPassed : kExitBadInput;
  }
  try {
    const gameday::ScenarioSpec spec = gameday::load_scenario(scenario_path, overrides);
    // Building a run resolves fault targets against the topology, which the file alone cannot.
    gameday::ScenarioRun run(spec, 1);
    std::printf("%s: valid scenario \"%s\"\n", scenario_path.c_str(), spec.name.c_str());
    return kExitPassed;
  } catch (const gameday::ScenarioError& error) {
    return bad_input(error.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) {
      std::cout << kUsage;
      return kExitBadInput;
    }
    const std::string command = argv[1];
    const std::vector<std::string> rest(argv + 2, argv + argc);
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return kExitPassed;
    }
    if (command == "run") return command_run(rest);
    if (command == "validate") return command_validate(rest);
    std::cerr << "dynasim: unknown command \"" << command << "\"; the commands are run and validate"
              << " (see 'dynasim --help')\n";
    return kExitBadInput;
  } catch (const std::exception& error) {
    std::cerr << "dynasim: internal error: " << error.what() << "\n";
    return kExitInternalError;
  }
}
