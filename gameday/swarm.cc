#include "gameday/swarm.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>

#include "gameday/json_reader.h"
#include "gameday/run.h"
#include "sim/random.h"

namespace dynasim::gameday {

namespace {

using nlohmann::json;

bool parse_u64(std::string_view text, uint64_t* value) {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

std::string hex64(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64, value);
  return buffer;
}

// The path of a --set assignment, without a leading "$.".
std::string assignment_path(const std::string& assignment) {
  std::string path = assignment.substr(0, assignment.find('='));
  if (path.rfind("$.", 0) == 0) path = path.substr(2);
  return path;
}

// True when `prefix` names `path` or an object or array that contains it.
bool path_within(const std::string& path, const std::string& prefix) {
  if (path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '.' || path[prefix.size()] == '[';
}

bool user_sets(const std::vector<std::string>& user_overrides, const std::string& knob) {
  for (const std::string& assignment : user_overrides) {
    const std::string path = assignment_path(assignment);
    if (path_within(path, knob) || path_within(knob, path)) return true;
  }
  return false;
}

// A probability drawn in units of 1/10,000 in [0, max_units / 10,000], as decimal text.
std::string draw_probability(sim::Random& random, uint64_t max_units) {
  if (random.uniform_u64(2) == 0) return "0";
  const uint64_t units = random.uniform_u64(max_units + 1);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%" PRIu64 ".%04" PRIu64, units / 10'000, units % 10'000);
  return buffer;
}

const json* find_path(const json& document, std::initializer_list<const char*> keys) {
  const json* current = &document;
  for (const char* key : keys) {
    if (!current->is_object() || !current->contains(key)) return nullptr;
    current = &(*current)[key];
  }
  return current;
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string run_command(const std::string& scenario_path, uint64_t seed,
                        const std::vector<std::string>& overrides) {
  std::string command = "dynasim run " + scenario_path + " --seed " + std::to_string(seed);
  for (const std::string& assignment : overrides) command += " --set " + shell_quote(assignment);
  return command;
}

}  // namespace

bool parse_seed_range(const std::string& text, SeedRange* range) {
  const size_t dots = text.find("..");
  SeedRange parsed;
  if (dots == std::string::npos) {
    if (!parse_u64(text, &parsed.first)) return false;
    parsed.last = parsed.first;
  } else if (!parse_u64(std::string_view(text).substr(0, dots), &parsed.first) ||
             !parse_u64(std::string_view(text).substr(dots + 2), &parsed.last)) {
    return false;
  }
  if (parsed.first > parsed.last || parsed.count() == 0) return false;  // count 0: the full range
  *range = parsed;
  return true;
}

bool parse_shard(const std::string& text, Shard* shard) {
  const size_t slash = text.find('/');
  uint64_t index = 0, count = 0;
  if (slash == std::string::npos || !parse_u64(std::string_view(text).substr(0, slash), &index) ||
      !parse_u64(std::string_view(text).substr(slash + 1), &count)) {
    return false;
  }
  if (index < 1 || index > count || count > 1'000'000) return false;
  shard->index = static_cast<uint32_t>(index);
  shard->count = static_cast<uint32_t>(count);
  return true;
}

std::vector<uint64_t> shard_seeds(const SeedRange& range, const Shard& shard) {
  std::vector<uint64_t> seeds;
  for (uint64_t offset = shard.index - 1; offset < range.count(); offset += shard.count) {
    seeds.push_back(range.first + offset);
    if (range.count() - offset <= shard.count) break;  // the next step would pass the end
  }
  return seeds;
}

std::string build_id() {
  std::ifstream input("/proc/self/exe", std::ios::binary);
  if (!input) return "unknown";
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(input)),
                                   std::istreambuf_iterator<char>());
  if (input.bad() || bytes.empty()) return "unknown";
  return "exe:" + hex64(sim::hash_bytes(0, bytes.data(), bytes.size()));
}

ScenarioSpec spec_from_document(const json& document, const std::string& source,
                                const std::vector<std::string>& overrides) {
  json updated = document;
  for (const std::string& assignment : overrides) apply_override(updated, assignment);
  ScenarioSpec spec = parse_scenario(updated, source);
  spec.overrides = overrides;
  return spec;
}

std::vector<std::string> draw_knobs(const json& document, uint64_t seed,
                                    const std::vector<std::string>& user_overrides) {
  std::vector<std::string> knobs;
  const auto stream = [seed](const std::string& knob) {
    return sim::Random::derive(seed, "swarm/knobs/" + knob);
  };
  const bool service = document.is_object() && document.contains("storage");

  if (const json* timeline = find_path(document, {"faults", "timeline"});
      timeline != nullptr && timeline->is_array() && !timeline->empty() &&
      !user_sets(user_overrides, "faults.timeline")) {
    sim::Random random = stream("faults.timeline");
    json kept = json::array();
    for (const json& entry : *timeline) {
      if (random.uniform_u64(2) == 0) kept.push_back(entry);
    }
    knobs.push_back("faults.timeline=" + kept.dump());
  }

  if (!user_sets(user_overrides, "faults.random")) {
    sim::Random random = stream("faults.random");
    json processes = json::array();
    std::set<std::string> file_kinds;
    if (const json* file = find_path(document, {"faults", "random"});
        file != nullptr && file->is_array()) {
      static constexpr double kRateFactors[] = {0.5, 1, 2, 4};
      for (const json& entry : *file) {
        if (entry.is_object() && entry.contains("kind") && entry["kind"].is_string()) {
          file_kinds.insert(entry["kind"].get<std::string>());
        }
        const bool keep = random.uniform_u64(2) == 0;
        const double factor = kRateFactors[random.uniform_u64(4)];
        if (!keep) continue;
        json process = entry;
        if (process.is_object() && process.contains("rate_per_host_hour") &&
            process["rate_per_host_hour"].is_number()) {
          process["rate_per_host_hour"] = process["rate_per_host_hour"].get<double>() * factor;
        }
        processes.push_back(process);
      }
    }
    for (const char* kind : {"crash", "power_off", "isolate", "clog"}) {
      const bool add = random.uniform_u64(4) == 0;
      const double rate_per_host_hour = static_cast<double>(random.uniform_int(5, 40)) / 10.0;
      if (!add || file_kinds.count(kind)) continue;
      processes.push_back({{"kind", kind},
                           {"scope", "region"},
                           {"rate_per_host_hour", rate_per_host_hour},
                           {"for", "10s"}});
    }
    knobs.push_back("faults.random=" + processes.dump());
  }

  const std::pair<const char*, uint64_t> network_knobs[] = {{"network.loss_probability", 200},
                                                            {"network.duplicate_probability", 100},
                                                            {"network.reorder_probability", 500}};
  for (const auto& [knob, max_units] : network_knobs) {
    if (user_sets(user_overrides, knob)) continue;
    sim::Random random = stream(knob);
    knobs.push_back(std::string(knob) + "=" + draw_probability(random, max_units));
  }

  if (service && !user_sets(user_overrides, "workload.mix")) {
    sim::Random random = stream("workload.mix");
    json mix;
    for (const char* kind :
         {"put", "get_strong", "get_eventual", "put_if_version", "put_if_absent", "delete"}) {
      mix[kind] = random.uniform_int(0, 100);
    }
    if (mix["put"].get<int64_t>() == 0) mix["put"] = 1;
    knobs.push_back("workload.mix=" + mix.dump());
  }
  if (!service && !user_sets(user_overrides, "probe.append_interval")) {
    sim::Random random = stream("probe.append_interval");
    static constexpr const char* kIntervals[] = {"5ms", "10ms", "20ms", "50ms"};
    knobs.push_back(std::string("probe.append_interval=") + kIntervals[random.uniform_u64(4)]);
  }
  return knobs;
}

SeedResult run_seed(const json& document, const std::string& source, uint64_t seed,
                    const std::vector<std::string>& overrides, std::vector<std::string> knobs) {
  SeedResult result;
  result.seed = seed;
  result.overrides = overrides;
  result.overrides.insert(result.overrides.end(), knobs.begin(), knobs.end());
  result.knobs = std::move(knobs);
  try {
    const ScenarioSpec spec = spec_from_document(document, source, result.overrides);
    ScenarioRun run(spec, seed);
    run.run_to_end();
    const json summary = run.summary(0);
    result.passed = run.passed();
    result.trace_hash = summary["trace_hash"].get<std::string>();
    result.events = summary["events"].get<uint64_t>();
    result.sim_seconds = summary["sim_seconds"].get<double>();
    // The first failing check in name order (nlohmann::json objects keep their keys sorted).
    for (const auto& [name, check] : summary["checks"].items()) {
      if (check.value("passed", true)) continue;
      result.failed_check = name;
      if (check.contains("first_violation") && check["first_violation"].is_string()) {
        result.first_failure = check["first_violation"].get<std::string>();
      }
      break;
    }
    if (!result.passed && result.failed_check.empty()) result.failed_check = "unnamed";
  } catch (const std::exception& error) {
    result.passed = false;
    result.error = error.what();
    result.failed_check = "run_error";
    result.first_failure = error.what();
  }
  return result;
}

SwarmOutcome run_swarm(const SwarmOptions& options, const json& document,
                       const std::function<void(const SwarmProgress&)>& on_progress) {
  {
    // Bad input stops here, before any thread starts. Building a run resolves fault targets.
    const ScenarioSpec spec =
        spec_from_document(document, options.scenario_path, options.overrides);
    ScenarioRun check(spec, options.seeds.first);
  }
  const std::vector<uint64_t> seeds = shard_seeds(options.seeds, options.shard);
  SwarmOutcome outcome;
  outcome.results.resize(seeds.size());
  std::mutex mutex;
  SwarmProgress progress;
  progress.total = seeds.size();
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  {
    boost::asio::thread_pool pool(std::max<uint32_t>(1, options.jobs));
    for (size_t i = 0; i < seeds.size(); ++i) {
      boost::asio::post(pool, [&, i] {
        const uint64_t seed = seeds[i];
        std::vector<std::string> knobs;
        if (options.randomize) {
          json updated = document;
          for (const std::string& assignment : options.overrides) {
            apply_override(updated, assignment);
          }
          knobs = draw_knobs(updated, seed, options.overrides);
        }
        // Each task writes only its own slot; the vector is not resized while the pool runs.
        outcome.results[i] =
            run_seed(document, options.scenario_path, seed, options.overrides, std::move(knobs));
        const std::lock_guard<std::mutex> lock(mutex);
        ++progress.done;
        if (!outcome.results[i].passed) ++progress.failed;
        progress.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
        if (on_progress) on_progress(progress);
      });
    }
    pool.join();
  }
  outcome.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const SeedResult& result : outcome.results) outcome.sim_seconds += result.sim_seconds;
  return outcome;
}

std::string capsule_name(uint64_t seed) {
  return "capsules/seed-" + std::to_string(seed) + ".json";
}

json swarm_report(const SwarmOptions& options, const json& document, const SwarmOutcome& outcome,
                  const std::string& build) {
  json report;
  report["report_version"] = 1;
  report["scenario"] = document.value("name", "");
  report["scenario_file"] = options.scenario_path;
  report["seeds"] = {{"first", options.seeds.first}, {"last", options.seeds.last}};
  report["shard"] = {{"index", options.shard.index}, {"count", options.shard.count}};
  report["randomize"] = options.randomize;
  report["overrides"] = options.overrides;
  report["build_id"] = build;
  json results = json::array();
  uint64_t passed = 0;
  for (const SeedResult& result : outcome.results) {
    json entry = {{"seed", result.seed},
                  {"passed", result.passed},
                  {"trace_hash", result.trace_hash},
                  {"events", result.events}};
    if (options.randomize) entry["knobs"] = result.knobs;
    if (!result.passed) {
      entry["failed_check"] = result.failed_check;
      entry["first_failure"] = result.first_failure;
      entry["capsule"] = capsule_name(result.seed);
    }
    if (!result.error.empty()) entry["error"] = result.error;
    passed += result.passed ? 1 : 0;
    results.push_back(std::move(entry));
  }
  report["seeds_run"] = outcome.results.size();
  report["passed"] = passed;
  report["failed"] = outcome.results.size() - passed;
  report["results"] = std::move(results);
  return report;
}

std::string report_text(const json& report) {
  return report.dump(2) + "\n";
}

json merge_reports(const std::vector<json>& reports) {
  const auto fail = [](const std::string& expected, const std::string& found) {
    return ScenarioError("merge", expected, found);
  };
  if (reports.empty()) throw fail("at least one shard report", "none");
  static constexpr const char* kShared[] = {"report_version", "scenario",  "scenario_file", "seeds",
                                            "randomize",      "overrides", "build_id"};
  for (const json& report : reports) {
    if (!report.is_object() || !report.value("results", json()).is_array()) {
      throw fail("a swarm report: an object with \"results\"", describe_json_value(report));
    }
  }
  const json& first = reports.front();
  for (const char* key : kShared) {
    if (!first.contains(key))
      throw fail("a swarm report with \"" + std::string(key) + "\"", "none");
  }
  if (!first.contains("shard") || !first["shard"].contains("count") ||
      !first["shard"]["count"].is_number_unsigned()) {
    throw fail("a swarm report with \"shard\": {\"index\", \"count\"}",
               first.value("shard", json()).dump());
  }
  const uint64_t count = first["shard"]["count"].get<uint64_t>();
  std::set<uint64_t> indexes;
  std::map<uint64_t, json> results;
  for (const json& report : reports) {
    for (const char* key : kShared) {
      if (report.value(key, json()) != first[key]) {
        throw fail("shards of one swarm: the same \"" + std::string(key) + "\" (" +
                       first[key].dump() + ")",
                   report.value(key, json()).dump());
      }
    }
    const json shard = report.value("shard", json());
    if (!shard.is_object() || shard.value("count", json()) != count ||
        !shard.value("index", json()).is_number_unsigned()) {
      throw fail("a shard of " + std::to_string(count), shard.dump());
    }
    const uint64_t index = shard["index"].get<uint64_t>();
    if (!indexes.insert(index).second) {
      throw fail("each shard once",
                 "shard " + std::to_string(index) + "/" + std::to_string(count) + " twice");
    }
    for (const json& entry : report.value("results", json::array())) {
      const uint64_t seed = entry.value("seed", uint64_t{0});
      if (!results.emplace(seed, entry).second) {
        throw fail("each seed in one shard", "seed " + std::to_string(seed) + " twice");
      }
    }
  }
  for (uint64_t index = 1; index <= count; ++index) {
    if (!indexes.count(index)) {
      throw fail("every shard 1.." + std::to_string(count),
                 "no report for shard " + std::to_string(index) + "/" + std::to_string(count));
    }
  }
  SwarmOptions options;
  options.seeds = {first["seeds"]["first"].get<uint64_t>(), first["seeds"]["last"].get<uint64_t>()};
  if (results.size() != options.seeds.count()) {
    throw fail(std::to_string(options.seeds.count()) + " seeds",
               std::to_string(results.size()) + " seeds in the shard reports");
  }
  json merged = first;
  merged["shard"] = {{"index", 1}, {"count", 1}};
  json merged_results = json::array();
  uint64_t passed = 0;
  for (auto& [seed, entry] : results) {
    passed += entry.value("passed", false) ? 1 : 0;
    merged_results.push_back(entry);
  }
  merged["seeds_run"] = results.size();
  merged["passed"] = passed;
  merged["failed"] = results.size() - passed;
  merged["results"] = std::move(merged_results);
  return merged;
}

json make_capsule(const SwarmOptions& options, const json& document, const SeedResult& result,
                  const std::string& build, const std::string& capsule_path) {
  json capsule;
  capsule["capsule_version"] = 1;
  capsule["scenario_file"] = options.scenario_path;
  capsule["scenario"] = document;
  capsule["seed"] = result.seed;
  capsule["overrides"] = result.overrides;
  capsule["knobs"] = result.knobs;
  capsule["build_id"] = build;
  capsule["trace_hash"] = result.trace_hash;
  capsule["failed_check"] = result.failed_check;
  capsule["first_failure"] = result.first_failure;
  capsule["replay"] = "dynasim replay " + capsule_path;
  capsule["run"] = run_command(options.scenario_path, result.seed, result.overrides);
  return capsule;
}

ReplayOutcome replay_capsule(const json& capsule, const std::string& build) {
  const auto field = [&capsule](const char* key, json::value_t type, const char* expected) {
    const json* value = capsule.is_object() && capsule.contains(key) ? &capsule[key] : nullptr;
    const bool ok = value != nullptr &&
                    (value->type() == type ||
                     (type == json::value_t::number_unsigned && value->is_number_unsigned()));
    if (!ok) {
      throw ScenarioError(std::string("capsule.") + key, expected,
                          value ? describe_json_value(*value) : "nothing");
    }
    return *value;
  };
  const json scenario = field("scenario", json::value_t::object, "the scenario's JSON object");
  const uint64_t seed =
      field("seed", json::value_t::number_unsigned, "the seed, an unsigned integer")
          .get<uint64_t>();
  const std::string source =
      field("scenario_file", json::value_t::string, "the scenario's file name").get<std::string>();
  const json overrides = field("overrides", json::value_t::array, "an array of --set assignments");
  std::vector<std::string> assignments;
  for (const json& assignment : overrides) {
    if (!assignment.is_string()) {
      throw ScenarioError("capsule.overrides", "strings such as \"duration=2m\"",
                          describe_json_value(assignment));
    }
    assignments.push_back(assignment.get<std::string>());
  }
  for (const char* key : {"trace_hash", "failed_check", "first_failure", "build_id"}) {
    field(key, json::value_t::string, "a string");
  }
  ReplayOutcome outcome;
  outcome.result = run_seed(scenario, source, seed, assignments, {});
  if (!outcome.result.error.empty())
    throw ScenarioError("capsule", "a runnable scenario", outcome.result.error);
  outcome.same_trace_hash = outcome.result.trace_hash == capsule.value("trace_hash", "");
  outcome.same_failure = outcome.result.failed_check == capsule.value("failed_check", "") &&
                         outcome.result.first_failure == capsule.value("first_failure", "");
  outcome.same_build = build == capsule.value("build_id", "");
  return outcome;
}

}  // namespace dynasim::gameday
