// The schema of summary.json (docs/summary.schema.json, described in docs/summary.md) against the
// summaries real runs write. The run (gameday/run.cc, gameday/service.cc) is the authority; these
// tests keep the schema in step with it both ways:
// - the summaries of short runs of every kind validate: a world-level scenario, a service game
//   day, one with healing and archival, one with scrub and bit rot, one with admission, one with
//   routing, one with global admission control, one whose mix sends every operation (UpdateItem,
//   Query, Scan; the counters check), and a run that fails a check (so `reproduce` and the failed
//   check's fields are written);
// - every property the schema lists appears in at least one of those summaries, except the few
//   that only a kind of failure or a CLI flag writes (kNotCovered, each with its reason): a field
//   the runs stopped writing cannot stay documented;
// - planted: the schema with any one property a summary uses removed fails validation of that
//   summary (no unknown field passes at any fixed level); a summary with an unknown field at any
//   level, or without any required field, fails.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gameday/run.h"
#include "gameday/scenario.h"
#include "tests/gameday/service_run_support.h"
#include "tests/support/json_schema_validator.h"

namespace dynasim::gameday {
namespace {

using nlohmann::json;
using testing_support::SchemaValidator;

const std::string kSourceDir = DYNASIM_SOURCE_DIR;

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

json schema() {
  return read_json(kSourceDir + "/docs/summary.schema.json");
}

ScenarioSpec scenario(const std::string& file, const std::vector<std::string>& overrides) {
  return load_scenario(kSourceDir + "/scenarios/" + file, overrides);
}

// The summaries of one short run of each kind, computed once for the whole suite.
const std::map<std::string, json>& summaries() {
  static const std::map<std::string, json> all = [] {
    std::map<std::string, json> runs;
    {
      ScenarioRun run(scenario("world-smoke.json", {"duration=20s", "heal=10s"}), 1);
      run.run_to_end();
      runs["world-smoke"] = run.summary(1.0);
    }
    const std::vector<std::string> short_service = {"duration=20s", "heal=12s",
                                                    "workload.verify_after=5s"};
    auto with = [&](std::vector<std::string> extra) {
      extra.insert(extra.begin(), short_service.begin(), short_service.end());
      return extra;
    };
    runs["power-off"] = run_service(scenario("power-off-game-day.json", short_service), 1).summary;
    // One node powered off long enough for its groups to heal.
    runs["healing"] = run_service(scenario("node-loss-healing.json",
                                           {"duration=30s", "heal=12s", "workload.verify_after=5s",
                                            R"(faults.timeline=[{"at": "3s", "kind": "power_off",
                                  "target": "az-a/r0/h1", "for": "20s"}])"}),
                                  1)
                          .summary;
    runs["scrub"] = run_service(scenario("bit-rot-scrub.json", short_service), 1).summary;
    runs["admission"] =
        run_service(
            scenario("power-off-game-day.json",
                     with({"storage.partitions=4", "storage.admission.read_capacity_units=200",
                           "storage.admission.write_capacity_units=40"})),
            1)
            .summary;
    // Requests through routers fed by MemDS.
    runs["routing"] = run_service(scenario("router-cold-cache.json", short_service), 1).summary;
    // Global admission control in the routers, with the table's capacity below the load.
    runs["gac"] = run_service(scenario("router-cold-cache.json",
                                       with({"storage.admission.read_capacity_units=200",
                                             "storage.admission.write_capacity_units=40",
                                             "storage.admission.gac.servers=3"})),
                              1)
                      .summary;
    // Every operation of the workload: UpdateItem on counters (the counters check), Query, Scan.
    runs["api-mix"] = run_service(scenario("api-mix.json", short_service), 1).summary;
    // A hot partition that splits for consumption (docs/partitions.md).
    runs["split"] = run_service(scenario("hot-partition.json", {"duration=20s", "heal=12s",
                                                                "workload.verify_after=5s"}),
                                1)
                        .summary;
    // The planted unbounded burst bucket fails the admission check (AdmissionGameDay): a failed
    // run's summary.
    runs["failed"] =
        run_service(scenario("power-off-game-day.json",
                             {"duration=35s", "heal=25s", "workload.verify_after=10s",
                              "storage.partitions=4", "storage.admission.read_capacity_units=200",
                              "storage.admission.write_capacity_units=40",
                              "storage.admission.burst_window=1s",
                              "storage.admission.plant_burst_ignores_depth=true"}),
                    1)
            .summary;
    return runs;
  }();
  return all;
}

// Properties of the schema that no run above writes, and why.
const std::map<std::string, std::string> kNotCovered = {
    {"$.checks.acknowledged_records_durable.first_violation",
     "written only when a probe lost an acknowledged record (DurabilityCheckTest plants it)"},
    {"$.checks.linearizability.first_violation",
     "written only when a key has no linearization (ServiceRun's planted bugs)"},
    {"$.checks.linearizability.first_violation_history", "the same"},
    {"$.checks.determinism", "written only by `run --check-determinism`"},
};

// Every property path the schema lists at a fixed level ("$.a.b"; array items as "[]").
void schema_paths(const SchemaValidator& validator, const json& node, const std::string& path,
                  std::set<std::string>& out) {
  const json& resolved = validator.resolve(node);
  if (resolved.contains("properties")) {
    for (const auto& [name, child] : resolved.at("properties").items()) {
      out.insert(path + "." + name);
      schema_paths(validator, child, path + "." + name, out);
    }
  }
  if (resolved.contains("items")) schema_paths(validator, resolved.at("items"), path + "[]", out);
}

// Every object key path an instance holds, in the same notation. Keys of a map (an object whose
// schema has no "properties", only "additionalProperties") are not fixed names: not listed.
void instance_paths(const SchemaValidator& validator, const json& node, const json& value,
                    const std::string& path, std::set<std::string>& out) {
  const json& resolved = validator.resolve(node);
  if (value.is_object() && resolved.contains("properties")) {
    for (const auto& [name, child] : value.items()) {
      out.insert(path + "." + name);
      if (resolved.at("properties").contains(name)) {
        instance_paths(validator, resolved.at("properties").at(name), child, path + "." + name,
                       out);
      }
    }
  }
  if (value.is_array() && resolved.contains("items")) {
    for (const json& item : value) {
      instance_paths(validator, resolved.at("items"), item, path + "[]", out);
    }
  }
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

TEST(SummarySchemaTest, EveryKindOfRunsSummaryValidates) {
  const json document = schema();
  const SchemaValidator validator(document);
  ASSERT_EQ(summaries().size(), 10u);
  for (const auto& [kind, summary] : summaries()) {
    EXPECT_EQ(validator.validate(summary), std::vector<std::string>{})
        << kind << ":\n"
        << joined(validator.validate(summary));
  }
  // The runs are the kinds they claim to be.
  EXPECT_TRUE(summaries().at("healing").contains("healing"));
  EXPECT_TRUE(summaries().at("scrub").contains("scrub"));
  EXPECT_TRUE(summaries().at("admission").contains("admission"));
  EXPECT_TRUE(summaries().at("admission").contains("capacity"));
  EXPECT_TRUE(summaries().at("routing").contains("memds"));
  EXPECT_TRUE(summaries().at("routing").at("checks").contains("router_groups"));
  EXPECT_TRUE(summaries().at("gac").contains("gac"));
  EXPECT_TRUE(summaries().at("gac").at("checks").contains("gac"));
  EXPECT_FALSE(summaries().at("split").at("partitions").at("splits").empty());
  EXPECT_FALSE(summaries().at("failed").at("passed").get<bool>());
  EXPECT_TRUE(summaries().at("failed").contains("reproduce"));
}

TEST(SummarySchemaTest, EveryPropertyOfTheSchemaIsWrittenBySomeRun) {
  const json document = schema();
  const SchemaValidator validator(document);
  std::set<std::string> listed;
  schema_paths(validator, document, "$", listed);
  std::set<std::string> written;
  for (const auto& [kind, summary] : summaries()) {
    instance_paths(validator, document, summary, "$", written);
  }
  std::vector<std::string> stale;
  for (const std::string& path : listed) {
    if (written.contains(path)) continue;
    bool excused = false;
    for (const auto& [prefix, reason] : kNotCovered) {
      excused = excused || path == prefix || path.rfind(prefix + ".", 0) == 0;
    }
    if (!excused) stale.push_back(path);
  }
  EXPECT_TRUE(stale.empty()) << "schema properties no run writes:\n" << joined(stale);
  // And the excuses are not stale themselves: each names a property the schema lists.
  for (const auto& [path, reason] : kNotCovered) EXPECT_TRUE(listed.contains(path)) << path;
}

// Removes the property at `path` ("$.a.b", "[]" for items) from the schema, following $refs into
// a copy of the definition so that other uses keep it.
bool remove_property(json& document, const std::string& path) {
  std::string dotted;  // "$.faults.log[].time" -> "$.faults.log.[].time"
  for (size_t i = 0; i < path.size(); ++i) {
    if (path.compare(i, 2, "[]") == 0) dotted += ".";
    dotted += path[i];
  }
  std::vector<std::string> parts;
  std::string current;
  for (char c : dotted.substr(2) + ".") {
    if (c == '.') {
      parts.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  json* node = &document;
  for (size_t i = 0; i < parts.size(); ++i) {
    while (node->contains("$ref")) {
      const std::string ref = node->at("$ref").get<std::string>();
      json copy = document.at(json::json_pointer(ref.substr(1)));
      *node = copy;
    }
    if (parts[i] == "[]") {
      node = &node->at("items");
      continue;
    }
    json& properties = node->at("properties");
    if (i + 1 == parts.size()) {
      properties.erase(parts[i]);
      if (node->contains("required")) {
        json& required = node->at("required");
        for (auto it = required.begin(); it != required.end(); ++it) {
          if (*it == parts[i]) {
            required.erase(it);
            break;
          }
        }
      }
      return true;
    }
    node = &properties.at(parts[i]);
  }
  return false;
}

TEST(SummarySchemaTest, PlantedSchemaMissingAnyPropertyFailsTheSummaryThatUsesIt) {
  const json document = schema();
  const SchemaValidator validator(document);
  size_t planted = 0;
  for (const auto& [kind, summary] : summaries()) {
    std::set<std::string> written;
    instance_paths(validator, document, summary, "$", written);
    for (const std::string& path : written) {
      json broken = document;
      ASSERT_TRUE(remove_property(broken, path)) << path;
      const SchemaValidator broken_validator(broken);
      EXPECT_FALSE(broken_validator.validate(summary).empty())
          << kind << ": a schema without " << path << " still accepts the summary";
      ++planted;
    }
  }
  EXPECT_GT(planted, 200u);
}

TEST(SummarySchemaTest, PlantedUnknownOrMissingFieldsFail) {
  const json document = schema();
  const SchemaValidator validator(document);
  const json& summary = summaries().at("admission");
  // An unknown field at every fixed object level of the summary.
  std::set<std::string> written;
  instance_paths(validator, document, summary, "$", written);
  size_t levels = 0;
  std::function<void(const json&, const json&, json::json_pointer)> visit =
      [&](const json& node, const json& value, json::json_pointer pointer) {
        const json& resolved = validator.resolve(node);
        if (!value.is_object() || !resolved.contains("properties")) return;
        json planted = summary;
        planted[pointer]["zz_unknown_field"] = 1;
        EXPECT_FALSE(validator.validate(planted).empty()) << pointer.to_string();
        ++levels;
        if (resolved.contains("required")) {
          for (const json& name : resolved.at("required")) {
            json missing = summary;
            missing[pointer].erase(name.get<std::string>());
            EXPECT_FALSE(validator.validate(missing).empty())
                << pointer.to_string() << " without " << name;
          }
        }
        for (const auto& [name, child] : value.items()) {
          if (resolved.at("properties").contains(name)) {
            visit(resolved.at("properties").at(name), child, pointer / name);
          }
        }
      };
  visit(document, summary, json::json_pointer());
  EXPECT_GT(levels, 20u);
}

}  // namespace
}  // namespace dynasim::gameday
