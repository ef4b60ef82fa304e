// dynasim: the command-line front door. Runs game-day scenarios, validates scenario files and
// checks determinism. Exit codes: 0 every check passed, 1 a check failed, 2 bad input
// (scenario or command line), 3 internal error.
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gameday/determinism.h"
#include "gameday/json_reader.h"
#include "gameday/plan.h"
#include "gameday/run.h"
#include "gameday/scenario.h"
#include "gameday/swarm.h"
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
  dynasim swarm SCENARIO --seeds A..B [--jobs J] [--randomize] [--shard K/N] [--out DIR]
  dynasim replay CAPSULE
  dynasim merge DIR... [--out DIR]
  dynasim plan SCENARIO [--slo throttled=1%] [--slo p99=25ms] [--prices FILE] [--out DIR]
  dynasim --help | dynasim COMMAND --help

Commands:
  run        Run a scenario with one seed and write DIR/summary.json. The same scenario, seed
             and build always replay the same events; the summary's trace_hash proves it.
  validate   Check a scenario file and print what is wrong with it, with the JSON path.
  swarm      Run a scenario over a range of seeds on J threads; write a report, and a capsule
             for every failing seed. --randomize draws knobs and fault classes per seed.
  replay     Run a capsule's scenario, seed and overrides again and compare the trace_hash
             and the failing check with the capsule's.
  merge      Combine the reports of swarm shards (--shard K/N) into one report.
  plan       Sweep capacity settings (provisioned, auto scaling, on-demand) for the scenario's
             workload; report cost, throttling, latency and partitions, and recommend the
             cheapest setting that meets the SLO (docs/capacity-planning.md).

Examples:
  dynasim run scenarios/world-smoke.json --seed 7 --out out/smoke
  dynasim run scenarios/world-smoke.json --seed 7 --set duration=2m --set faults.unrestricted=true
  dynasim run scenarios/world-smoke.json --seed 7 --check-determinism
  dynasim swarm scenarios/world-smoke.json --seeds 1..100 --jobs 2 --randomize --set duration=1m
  dynasim replay out/swarm-world-smoke/capsules/seed-17.json

Exit codes: 0 every check passed, 1 a check failed (the summary and stderr name it and print the
reproduce command), 2 bad input (scenario, capsule, report or command line), 3 internal error.
See docs/scenarios.md for the scenario format and docs/reproducing-bugs.md for seeds, swarms,
capsules and replay.
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
      if (check.contains("first_violation") &&
          !check["first_violation"].get<std::string>().empty()) {
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
  } catch (const std::filesystem::filesystem_error& error) {
    return bad_input(std::string(error.what()) + " (check --out)");
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

bool write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream output(path, std::ios::binary);
  output << text;
  return static_cast<bool>(output.flush());
}

// Parses a subcommand's arguments; returns -1 to go on, or the exit code (help or bad input).
int parse_arguments(const std::vector<std::string>& arguments,
                    const po::options_description& options, const po::options_description& hidden,
                    const po::positional_options_description& positional, const char* command,
                    const std::string& usage, po::variables_map* values) {
  po::options_description all;
  all.add(options).add(hidden);
  try {
    po::store(po::command_line_parser(arguments).options(all).positional(positional).run(),
              *values);
    po::notify(*values);
  } catch (const po::error& error) {
    return bad_input(std::string(error.what()) + " (see 'dynasim " + command + " --help')");
  }
  if (values->count("help")) {
    std::cout << usage << "\n" << options;
    return kExitPassed;
  }
  return -1;
}

const char* kSwarmUsage =
    R"(Usage: dynasim swarm SCENARIO --seeds A..B [--jobs J] [--randomize] [--shard K/N] [--out DIR]
                     [--set PATH=VALUE ...]

Runs SCENARIO once per seed in A..B, J simulations at a time (one per thread), and writes
  DIR/report.json        every seed in order: passed, trace_hash, events, the first failing check;
                         the same bytes for any --jobs
  DIR/figures.json       seeds per second and simulated seconds per wall second (not in the
                         report: they depend on the machine)
  DIR/capsules/seed-N.json  for each failing seed: the scenario's content, seed, overrides, build id,
                         trace_hash and failing check; 'dynasim replay' runs it again
--randomize draws, per seed and from that seed alone, a subset of the fault timeline, random fault
classes and rates, network loss/duplication/reordering and the workload mix (or the probe's
append interval); the drawn knobs are recorded as --set overrides in the report and the capsule.
--shard K/N runs the seeds s with (s - A) mod N = K - 1; 'dynasim merge' combines the shards'
reports into the report one machine would have written for A..B.

Examples:
  dynasim swarm scenarios/world-smoke.json --seeds 1..200 --jobs 2 --set duration=1m --set heal=20s
  dynasim swarm scenarios/world-smoke.json --seeds 1..200 --jobs 2 --randomize --set duration=1m
  dynasim swarm scenarios/world-smoke.json --seeds 1..1000 --shard 1/4 --out out/shard1
  dynasim merge out/shard1 out/shard2 out/shard3 out/shard4 --out out/merged

Exit codes: 0 every seed passed, 1 a check failed for some seed, 2 bad input, 3 internal error
(including a seed whose run threw). docs/reproducing-bugs.md has the details.
)";

int command_swarm(const std::vector<std::string>& arguments) {
  po::options_description options("dynasim swarm options");
  std::string seeds_text, shard_text = "1/1", out_dir;
  uint32_t jobs = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::string> overrides;
  options.add_options()("help,h", "show this help")("seeds", po::value<std::string>(&seeds_text),
                                                    "the seeds, A..B (both included) or one seed")(
      "jobs,j", po::value<uint32_t>(&jobs)->default_value(jobs),
      "simulations run at once, one per thread (default: the number of cores)")(
      "randomize", "draw knobs and fault classes per seed (swarm testing)")(
      "shard", po::value<std::string>(&shard_text)->default_value("1/1"),
      "run shard K of N: the seeds s with (s - A) mod N = K - 1")(
      "out", po::value<std::string>(&out_dir),
      "output folder (default: out/swarm-<scenario>, or out/swarm-<scenario>-shard-K-of-N)")(
      "set", po::value<std::vector<std::string>>(&overrides)->composing(),
      "override a scenario field for every seed, e.g. --set duration=2m")("quiet",
                                                                          "no progress line");
  po::options_description hidden;
  std::string scenario_path;
  hidden.add_options()("scenario", po::value<std::string>(&scenario_path));
  po::positional_options_description positional;
  positional.add("scenario", 1);
  po::variables_map values;
  if (const int code =
          parse_arguments(arguments, options, hidden, positional, "swarm", kSwarmUsage, &values);
      code >= 0) {
    return code;
  }
  if (scenario_path.empty()) return bad_input("swarm: no SCENARIO (see 'dynasim swarm --help')");
  gameday::SwarmOptions swarm;
  swarm.scenario_path = scenario_path;
  swarm.overrides = overrides;
  swarm.randomize = values.count("randomize") > 0;
  swarm.jobs = jobs;
  if (seeds_text.empty()) return bad_input("swarm: --seeds A..B is required");
  if (!gameday::parse_seed_range(seeds_text, &swarm.seeds)) {
    return bad_input("swarm: --seeds expects A..B with A <= B (e.g. 1..100), found \"" +
                     seeds_text + "\"");
  }
  if (swarm.seeds.count() > 100'000'000) {
    return bad_input("swarm: --seeds spans more than 100,000,000 seeds; use --shard");
  }
  if (!gameday::parse_shard(shard_text, &swarm.shard)) {
    return bad_input("swarm: --shard expects K/N with 1 <= K <= N (e.g. 2/4), found \"" +
                     shard_text + "\"");
  }
  if (jobs < 1 || jobs > 1024) return bad_input("swarm: --jobs expects 1..1024");

  nlohmann::json document;
  gameday::SwarmOutcome outcome;
  const bool show_progress = !values.count("quiet") && isatty(STDERR_FILENO);
  try {
    document = gameday::parse_json_file(scenario_path);
    outcome = gameday::run_swarm(swarm, document, [&](const gameday::SwarmProgress& progress) {
      if (!show_progress) return;
      std::fprintf(
          stderr, "\r  seeds %" PRIu64 " / %" PRIu64 "  failures %" PRIu64 "  %.2f seeds/s  ",
          progress.done, progress.total, progress.failed,
          progress.wall_seconds > 0 ? static_cast<double>(progress.done) / progress.wall_seconds
                                    : 0.0);
    });
  } catch (const gameday::ScenarioError& error) {
    return bad_input(error.what());
  }
  if (show_progress) std::fprintf(stderr, "\r%70s\r", "");

  const std::string build = gameday::build_id();
  const std::string name = document.value("name", "scenario");
  if (out_dir.empty()) {
    out_dir = "out/swarm-" + name;
    if (swarm.shard.count > 1) {
      out_dir += "-shard-" + std::to_string(swarm.shard.index) + "-of-" +
                 std::to_string(swarm.shard.count);
    }
  }
  const std::filesystem::path out(out_dir);
  std::error_code error_code;
  std::filesystem::create_directories(out / "capsules", error_code);
  if (error_code) return bad_input("cannot create " + (out / "capsules").string() + " (--out)");

  bool internal_error = false;
  for (const gameday::SeedResult& result : outcome.results) {
    if (result.passed) continue;
    const std::string capsule_path = (out / gameday::capsule_name(result.seed)).string();
    const nlohmann::json capsule =
        gameday::make_capsule(swarm, document, result, build, capsule_path);
    if (!write_file(capsule_path, capsule.dump(2) + "\n")) {
      return bad_input("cannot write " + capsule_path);
    }
    if (!result.error.empty()) {
      internal_error = true;
      std::printf("seed %" PRIu64 ": ERROR %s\n", result.seed, result.error.c_str());
    } else {
      std::printf("seed %" PRIu64 ": FAILED %s%s%s\n", result.seed, result.failed_check.c_str(),
                  result.first_failure.empty() ? "" : ": ", result.first_failure.c_str());
    }
    std::printf("  replay: dynasim replay %s\n", capsule_path.c_str());
  }
  const nlohmann::json report = gameday::swarm_report(swarm, document, outcome, build);
  const std::string report_path = (out / "report.json").string();
  if (!write_file(report_path, gameday::report_text(report))) {
    return bad_input("cannot write " + report_path);
  }
  const double seeds_per_second =
      outcome.wall_seconds > 0 ? static_cast<double>(outcome.results.size()) / outcome.wall_seconds
                               : 0.0;
  const double sim_per_wall =
      outcome.wall_seconds > 0 ? outcome.sim_seconds / outcome.wall_seconds : 0.0;
  const nlohmann::json figures = {{"jobs", jobs},
                                  {"seeds", outcome.results.size()},
                                  {"wall_seconds", outcome.wall_seconds},
                                  {"seeds_per_second", seeds_per_second},
                                  {"sim_seconds", outcome.sim_seconds},
                                  {"sim_seconds_per_wall_second", sim_per_wall}};
  if (!write_file(out / "figures.json", figures.dump(2) + "\n")) {
    return bad_input("cannot write " + (out / "figures.json").string());
  }
  const uint64_t failed = report["failed"].get<uint64_t>();
  std::printf("%s seeds %s shard %u/%u: %" PRIu64 " run, %" PRIu64 " passed, %" PRIu64
              " failed; %.2f seeds/s, %.0f sim-s per wall-s (%u jobs, %.2f wall-s)\n",
              name.c_str(), seeds_text.c_str(), swarm.shard.index, swarm.shard.count,
              static_cast<uint64_t>(outcome.results.size()), report["passed"].get<uint64_t>(),
              failed, seeds_per_second, sim_per_wall, jobs, outcome.wall_seconds);
  std::printf("  report: %s\n", report_path.c_str());
  if (internal_error) return kExitInternalError;
  return failed > 0 ? kExitCheckFailed : kExitPassed;
}

const char* kReplayUsage =
    R"(Usage: dynasim replay CAPSULE

Runs the scenario stored in CAPSULE (its content, not the file it came from) with the capsule's
seed and overrides, and compares the trace_hash and the failing check with the capsule's. Warns
when this binary's build id differs from the one that wrote the capsule: the same build replays
the same events bit for bit; another build may not.

Examples:
  dynasim replay out/swarm-world-smoke/capsules/seed-17.json
  dynasim replay capsule.json && echo "no longer fails"

Exit codes: 1 the failure reproduced (or a check failed in another way: the output says which),
0 the run passed (the failure did not reproduce), 2 bad input (no such capsule, malformed
capsule), 3 internal error.
)";

int command_replay(const std::vector<std::string>& arguments) {
  po::options_description options("dynasim replay options");
  options.add_options()("help,h", "show this help");
  po::options_description hidden;
  std::string capsule_path;
  hidden.add_options()("capsule", po::value<std::string>(&capsule_path));
  po::positional_options_description positional;
  positional.add("capsule", 1);
  po::variables_map values;
  if (const int code =
          parse_arguments(arguments, options, hidden, positional, "replay", kReplayUsage, &values);
      code >= 0) {
    return code;
  }
  if (capsule_path.empty()) return bad_input("replay: no CAPSULE (see 'dynasim replay --help')");
  try {
    const nlohmann::json capsule = gameday::parse_json_file(capsule_path);
    const std::string build = gameday::build_id();
    const gameday::ReplayOutcome outcome = gameday::replay_capsule(capsule, build);
    if (!outcome.same_build) {
      std::fprintf(stderr,
                   "dynasim: warning: the capsule was written by build %s, this is build %s; "
                   "another build may run other events\n",
                   capsule.value("build_id", "?").c_str(), build.c_str());
    }
    const gameday::SeedResult& result = outcome.result;
    std::printf("replay seed %" PRIu64 ": trace_hash %s (capsule %s)\n", result.seed,
                result.trace_hash.c_str(), capsule.value("trace_hash", "?").c_str());
    if (outcome.reproduced()) {
      std::printf("reproduced: check %s failed again, bit for bit%s%s\n",
                  result.failed_check.c_str(), result.first_failure.empty() ? "" : ": ",
                  result.first_failure.c_str());
      return kExitCheckFailed;
    }
    if (result.passed) {
      std::printf("did not reproduce: every check passed\n");
      return kExitPassed;
    }
    std::printf("a check failed, but not as recorded: %s%s%s (capsule: %s%s%s)\n",
                result.failed_check.c_str(), result.first_failure.empty() ? "" : ": ",
                result.first_failure.c_str(), capsule.value("failed_check", "?").c_str(),
                capsule.value("first_failure", "").empty() ? "" : ": ",
                capsule.value("first_failure", "").c_str());
    return kExitCheckFailed;
  } catch (const gameday::ScenarioError& error) {
    return bad_input(error.what());
  }
}

const char* kMergeUsage =
    R"(Usage: dynasim merge DIR... [--out DIR]

Reads DIR/report.json of each shard written by 'dynasim swarm --shard K/N' (all N shards of one
range, scenario, build and options) and writes OUT/report.json: the same bytes one machine would
have written for the whole range. The failing seeds' capsules are copied to OUT/capsules/.

Examples:
  dynasim swarm scenarios/world-smoke.json --seeds 1..100 --shard 1/2 --out out/s1
  dynasim swarm scenarios/world-smoke.json --seeds 1..100 --shard 2/2 --out out/s2
  dynasim merge out/s1 out/s2 --out out/all

Exit codes: 0 every seed passed, 1 a check failed for some seed, 2 bad input (a missing or
repeated shard, reports of different swarms), 3 internal error.
)";

int command_merge(const std::vector<std::string>& arguments) {
  po::options_description options("dynasim merge options");
  std::string out_dir;
  options.add_options()("help,h", "show this help")(
      "out", po::value<std::string>(&out_dir), "output folder (default: out/swarm-<scenario>)");
  po::options_description hidden;
  std::vector<std::string> shard_dirs;
  hidden.add_options()("dirs", po::value<std::vector<std::string>>(&shard_dirs));
  po::positional_options_description positional;
  positional.add("dirs", -1);
  po::variables_map values;
  if (const int code =
          parse_arguments(arguments, options, hidden, positional, "merge", kMergeUsage, &values);
      code >= 0) {
    return code;
  }
  if (shard_dirs.empty()) return bad_input("merge: no shard folders (see 'dynasim merge --help')");
  try {
    std::vector<nlohmann::json> reports;
    for (const std::string& dir : shard_dirs) {
      reports.push_back(
          gameday::parse_json_file((std::filesystem::path(dir) / "report.json").string()));
    }
    const nlohmann::json merged = gameday::merge_reports(reports);
    if (out_dir.empty()) out_dir = "out/swarm-" + merged.value("scenario", std::string("scenario"));
    const std::filesystem::path out(out_dir);
    std::error_code error_code;
    std::filesystem::create_directories(out / "capsules", error_code);
    if (error_code) return bad_input("cannot create " + (out / "capsules").string() + " (--out)");
    for (size_t i = 0; i < reports.size(); ++i) {
      for (const nlohmann::json& entry : reports[i]["results"]) {
        if (!entry.contains("capsule")) continue;
        const std::string name = entry["capsule"].get<std::string>();
        nlohmann::json capsule =
            gameday::parse_json_file((std::filesystem::path(shard_dirs[i]) / name).string());
        capsule["replay"] = "dynasim replay " + (out / name).string();
        if (!write_file(out / name, capsule.dump(2) + "\n")) {
          return bad_input("cannot write " + (out / name).string());
        }
        std::printf("seed %" PRIu64 ": FAILED %s\n  replay: dynasim replay %s\n",
                    entry["seed"].get<uint64_t>(), entry.value("failed_check", "").c_str(),
                    (out / name).string().c_str());
      }
    }
    const std::string report_path = (out / "report.json").string();
    if (!write_file(report_path, gameday::report_text(merged))) {
      return bad_input("cannot write " + report_path);
    }
    std::printf("merged %zu shards: %" PRIu64 " seeds, %" PRIu64 " passed, %" PRIu64
                " failed\n  report: %s\n",
                reports.size(), merged["seeds_run"].get<uint64_t>(),
                merged["passed"].get<uint64_t>(), merged["failed"].get<uint64_t>(),
                report_path.c_str());
    return merged["failed"].get<uint64_t>() > 0 ? kExitCheckFailed : kExitPassed;
  } catch (const gameday::ScenarioError& error) {
    return bad_input(error.what());
  }
}

const char* kPlanUsage =
    R"(Usage: dynasim plan SCENARIO [--slo throttled=1%] [--slo p99=25ms] [options]

Sweeps the table's capacity settings for the scenario's workload (provisioned at multiples of
the peak demand, auto scaling at 50% and 70% targets, on-demand), simulates each through the
front door (partitions, token buckets, bursting, splits, SDK retries) and reports monthly cost,
throttling, latency percentiles and partition counts; recommends the cheapest setting that
meets the SLO. Exit code 0 when one does, 1 when none does, 2 on bad input. See
docs/capacity-planning.md.

Example:
  dynasim plan scenarios/capacity-plan.json --slo throttled=0.5% --slo p99=20ms
)";

int command_plan(const std::vector<std::string>& arguments) {
  po::options_description options("dynasim plan options");
  uint64_t seed = 1;
  uint32_t jobs = std::max(1u, std::thread::hardware_concurrency());
  std::string out_dir;
  std::string prices_path = "scenarios/prices/dynamodb-us-east-1.json";
  std::string calibration = "20s";
  std::string factors_text;
  std::vector<std::string> overrides;
  std::vector<std::string> slo_terms;
  options.add_options()("help,h", "show this help")(
      "slo", po::value<std::vector<std::string>>(&slo_terms)->composing(),
      "the service level a setting must meet, repeatable: throttled=<percent>% (share of "
      "attempts throttled; default 1%) and p99=<duration> (client operation latency, e.g. "
      "p99=25ms; default none)")(
      "prices", po::value<std::string>(&prices_path)->default_value(prices_path),
      "price table (JSON naming its source and date); copy and edit it for your region or "
      "discounts")("out", po::value<std::string>(&out_dir),
                   "folder for plan.md, plan.html, plan.json and the SVG charts (default: "
                   "out/plan-<scenario name>)")("jobs", po::value<uint32_t>(&jobs),
                                                "settings simulated at once (default: the cores)")(
      "seed", po::value<uint64_t>(&seed)->default_value(1), "the root seed of every draw")(
      "calibration", po::value<std::string>(&calibration)->default_value(calibration),
      "simulated time of the full-service run whose attempt latencies the sweep draws from")(
      "factors", po::value<std::string>(&factors_text),
      "provisioned settings to sweep, as multiples of the peak demand, e.g. 1,1.5,2 (default "
      "0.75,1,1.25,1.5,2,3,5)")(
      "set", po::value<std::vector<std::string>>(&overrides)->composing(),
      "override a scenario field, e.g. --set duration=1h --set storage.partitions=1000")(
      "quiet", "no progress line");
  po::options_description hidden;
  std::string scenario_path;
  hidden.add_options()("scenario", po::value<std::string>(&scenario_path));
  po::positional_options_description positional;
  positional.add("scenario", 1);
  po::variables_map values;
  const int parsed =
      parse_arguments(arguments, options, hidden, positional, "plan", kPlanUsage, &values);
  if (parsed >= 0) return parsed;
  if (scenario_path.empty()) return bad_input("plan: name a scenario (see 'dynasim plan --help')");
  gameday::PlanOptions plan;
  plan.seed = seed;
  plan.jobs = std::max<uint32_t>(1, jobs);
  for (const std::string& term : slo_terms) {
    std::string error;
    if (!gameday::parse_slo_term(term, &plan.slo, &error)) return bad_input(error);
  }
  try {
    plan.calibration = gameday::parse_duration(calibration);
  } catch (const gameday::UnitError& error) {
    return bad_input("--calibration: " + std::string(error.what()));
  }
  if (plan.calibration < sim::seconds(5)) {
    return bad_input("--calibration: expected at least 5s, found " + calibration);
  }
  if (!factors_text.empty()) {
    plan.provisioned_factors.clear();
    std::stringstream stream(factors_text);
    std::string item;
    while (std::getline(stream, item, ',')) {
      char* end = nullptr;
      const double factor = std::strtod(item.c_str(), &end);
      if (item.empty() || end != item.c_str() + item.size() || !(factor > 0) || factor > 1000) {
        return bad_input("--factors: expected positive multiples such as 1,1.5,2, found \"" + item +
                         "\" in \"" + factors_text + "\"");
      }
      plan.provisioned_factors.push_back(factor);
    }
  }
  try {
    const gameday::ScenarioSpec spec = gameday::load_scenario(scenario_path, overrides);
    const gameday::PriceTable prices = gameday::load_price_table(prices_path);
    if (out_dir.empty()) out_dir = "out/plan-" + spec.name;
    const bool progress = !values.count("quiet") && isatty(STDERR_FILENO);
    const auto start = std::chrono::steady_clock::now();
    if (progress) std::fprintf(stderr, "  calibrating latency on the full service...");
    plan.progress = [progress](size_t done, size_t total) {
      if (progress) std::fprintf(stderr, "\r  simulated %zu of %zu settings...   ", done, total);
    };
    const gameday::PlanReport report = gameday::run_plan(spec, prices, plan);
    if (progress) std::fprintf(stderr, "\r%60s\r", "");
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!gameday::write_plan(report, out_dir)) return bad_input("cannot write into " + out_dir);
    std::printf("%-52s %12s %11s %9s %9s %11s\n", "setting", "monthly cost", "throttled%", "p99 ms",
                "parts", "SLO");
    for (size_t i = 0; i < report.results.size(); ++i) {
      const gameday::PlanResult& r = report.results[i];
      std::printf("%-52s %12.2f %11.3f %9.2f %4u->%-4u %s%s\n", r.candidate.label.c_str(),
                  r.monthly_cost, r.throttled_percent, r.p99_ms, r.partitions_initial,
                  r.partitions_final, r.meets_slo ? "meets" : "misses",
                  report.recommended && *report.recommended == i ? "  <- recommended" : "");
    }
    std::printf("plan: %zu settings in %.1f s wall; report: %s/plan.md, %s/plan.html\n",
                report.results.size(), wall, out_dir.c_str(), out_dir.c_str());
    if (!report.recommended) {
      std::printf(
          "no setting meets the SLO; see the throttles under table capacity in the "
          "report (hot partitions)\n");
      return kExitCheckFailed;
    }
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
    if (command == "swarm") return command_swarm(rest);
    if (command == "replay") return command_replay(rest);
    if (command == "merge") return command_merge(rest);
    if (command == "plan") return command_plan(rest);
    std::cerr << "dynasim: unknown command \"" << command
              << "\"; the commands are run, validate, swarm, replay, merge and plan"
              << " (see 'dynasim --help')\n";
    return kExitBadInput;
  } catch (const std::exception& error) {
    std::cerr << "dynasim: internal error: " << error.what() << "\n";
    return kExitInternalError;
  }
}
