// The JSON Schema of scenario files (scenarios/scenario.schema.json) against the loader
// (gameday/scenario.cc), which is the authority. The tests keep the two in step:
// - every shipped scenario validates against the schema (and names it in "$schema");
// - field names agree both ways at every object level: (a) each property the schema lists loads
//   with the value the schema gives as its default or example, and (b) the fields the loader
//   knows at a level (ScenarioError::known_fields of an unknown-field error) are exactly the
//   schema's properties there;
// - every "default" in the schema is the loader's: a document with the field set to it loads to
//   the same scenario as one without it;
// - numeric bounds agree: the schema's minimum and maximum load, one step beyond is refused by
//   both; the unit patterns agree with gameday/units.h's parsers;
// - planted errors: a schema missing any one property, or listing one the loader does not know,
//   fails (a) or (b); a wrong default fails the default check; a typo in any field name of a
//   shipped scenario fails schema validation.
// The validator (tests/support/json_schema_validator.h) covers the part of JSON Schema draft-07 the
// schema uses and refuses any other keyword, so the schema cannot rely on a check this test would
// silently skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gameday/json_reader.h"
#include "gameday/scenario.h"
#include "gameday/units.h"
#include "sim/random.h"
#include "tests/support/json_schema_validator.h"

namespace dynasim::gameday {
namespace {

using nlohmann::json;
using testing_support::SchemaValidator;

const std::string kSourceDir = DYNASIM_SOURCE_DIR;
const std::string kSchemaFile = kSourceDir + "/scenarios/scenario.schema.json";
constexpr const char* kUnknownField = "zz_no_such_field";
// Documents built here stand in the scenarios directory, so that a replay's relative file (the
// schema's example) resolves as it does for a shipped scenario.
const std::string kDocumentSource = kSourceDir + "/scenarios/schema-test.json";

// ---- Documents built from the schema --------------------------------------------------------

json read_schema() {
  return parse_json_file(kSchemaFile);
}

std::vector<std::filesystem::path> shipped_scenarios() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(kSourceDir + "/scenarios")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".json" && !name.ends_with(".schema.json")) {
      paths.push_back(entry.path());
    }
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// A value the schema says is valid: its default, else its first example, else its first enum
// value, else for an object its required properties, else an empty array.
json sample(const SchemaValidator& validator, const json& schema_node, const std::string& where) {
  const json& schema = validator.resolve(schema_node);
  if (schema_node.contains("default")) return schema_node.at("default");
  if (schema_node.contains("examples")) return schema_node.at("examples").at(0);
  if (schema.contains("default")) return schema.at("default");
  if (schema.contains("examples")) return schema.at("examples").at(0);
  if (schema.contains("enum")) return schema.at("enum").at(0);
  const json type = schema.value("type", json());
  if (type == "object") {
    json object = json::object();
    for (const json& key : schema.value("required", json::array())) {
      const std::string name = key.get<std::string>();
      object[name] = sample(validator, schema.at("properties").at(name), where + "." + name);
    }
    return object;
  }
  if (type == "array") return json::array();
  throw std::logic_error(where + ": the schema gives no default or example");
}

// Adds what the schema's "dependencies" (array form) ask for: a workload needs storage. And the
// one nested dependency (the schema's not-clause at storage level): storage.admission.gac needs
// storage.routing.
void complete(const SchemaValidator& validator, const json& schema_node, json& value) {
  const json& schema = validator.resolve(schema_node);
  if (value.is_object() && value.contains("admission") && value["admission"].is_object() &&
      value["admission"].contains("gac") && !value.contains("routing") &&
      schema.contains("properties") && schema.at("properties").contains("routing")) {
    value["routing"] = sample(validator, schema.at("properties").at("routing"), "routing");
  }
  if (value.is_object()) {
    if (schema.contains("dependencies")) {
      for (const auto& [key, dependency] : schema.at("dependencies").items()) {
        if (!value.contains(key) || !dependency.is_array()) continue;
        for (const json& needed : dependency) {
          const std::string name = needed.get<std::string>();
          if (value.contains(name)) continue;
          const json& properties = schema.at("properties");
          value[name] = properties.contains(name) ? sample(validator, properties.at(name), name)
                                                  : json::object();
        }
      }
    }
    if (schema.contains("properties")) {
      for (auto& [key, item] : value.items()) {
        if (schema.at("properties").contains(key)) {
          complete(validator, schema.at("properties").at(key), item);
        }
      }
    }
  } else if (value.is_array() && schema.contains("items")) {
    for (json& item : value) complete(validator, schema.at("items"), item);
  }
}

// An object level of the format: where it is in a document and its schema.
struct Level {
  std::string path;            // "$.faults.timeline[0]", as the loader names it
  json::json_pointer pointer;  // "/faults/timeline/0"
  json steps;                  // ["faults", "timeline", 0]
  const json* schema;          // an object schema with "properties"
};

void collect_levels(const SchemaValidator& validator, const json& schema_node, Level level,
                    std::vector<Level>& out) {
  const json& schema = validator.resolve(schema_node);
  if (schema.value("type", json()) == "array" && schema.contains("items")) {
    level.path += "[0]";
    level.pointer /= 0;
    level.steps.push_back(0);
    collect_levels(validator, schema.at("items"), level, out);
    return;
  }
  if (!schema.contains("properties")) return;
  level.schema = &schema;
  out.push_back(level);
  for (const auto& [key, property] : schema.at("properties").items()) {
    Level child = level;
    child.path += "." + key;
    child.pointer /= key;
    child.steps.push_back(key);
    collect_levels(validator, property, child, out);
  }
}

std::vector<Level> levels(const SchemaValidator& validator, const json& schema) {
  std::vector<Level> out;
  collect_levels(validator, schema, Level{"$", json::json_pointer(), json::array(), nullptr}, out);
  return out;
}

// The smallest valid document that holds `level` (the schema's required fields, samples along
// the way).
json document_reaching(const SchemaValidator& validator, const json& schema, const Level& level) {
  json document = sample(validator, schema, "$");
  json* node = &document;
  const json* node_schema = &validator.resolve(schema);
  std::string where = "$";
  for (const json& step : level.steps) {
    if (step.is_string()) {
      const std::string key = step.get<std::string>();
      where += "." + key;
      const json& child = node_schema->at("properties").at(key);
      if (!node->contains(key)) (*node)[key] = sample(validator, child, where);
      node = &(*node)[key];
      node_schema = &validator.resolve(child);
    } else {
      where += "[0]";
      const json& items = node_schema->at("items");
      if (node->empty()) node->push_back(sample(validator, items, where));
      node = &(*node)[0];
      node_schema = &validator.resolve(items);
    }
  }
  return document;
}

std::optional<ScenarioError> load_error(const json& document) {
  try {
    parse_scenario(document, kDocumentSource);
  } catch (const ScenarioError& error) {
    return error;
  }
  return std::nullopt;
}

std::vector<std::string> property_names(const json& object_schema) {
  std::vector<std::string> names;
  for (const auto& [key, unused] : object_schema.at("properties").items()) names.push_back(key);
  return names;
}

// Check (a): each property the schema lists, set to each default and example the schema gives,
// validates against the schema and loads. Returns the problems.
std::vector<std::string> properties_the_loader_refuses(const json& schema) {
  const SchemaValidator validator(schema);
  std::vector<std::string> problems;
  for (const Level& level : levels(validator, schema)) {
    for (const auto& [key, property] : level.schema->at("properties").items()) {
      std::vector<json> values;
      std::vector<const json*> nodes = {&property};
      if (&validator.resolve(property) != &property) nodes.push_back(&validator.resolve(property));
      for (const json* node : nodes) {
        if (node->contains("default")) values.push_back(node->at("default"));
        for (const json& example : node->value("examples", json::array()))
          values.push_back(example);
      }
      if (values.empty()) values.push_back(sample(validator, property, level.path + "." + key));
      for (const json& value : values) {
        json document = document_reaching(validator, schema, level);
        document[level.pointer][key] = value;
        complete(validator, schema, document);
        const std::string what = level.path + "." + key + " = " + value.dump();
        for (const std::string& error : validator.validate(document)) {
          problems.push_back(what + ": the schema refuses its own value: " + error);
        }
        if (const auto error = load_error(document)) {
          problems.push_back(what + ": the loader refuses it: " + error->what());
        }
      }
    }
  }
  return problems;
}

// Check (b): at each level, an unknown field makes the loader list the fields it knows there;
// they must be exactly the schema's properties. Returns the problems.
std::vector<std::string> loader_fields_outside_the_schema(const json& schema) {
  const SchemaValidator validator(schema);
  std::vector<std::string> problems;
  for (const Level& level : levels(validator, schema)) {
    json document = document_reaching(validator, schema, level);
    complete(validator, schema, document);
    document[level.pointer][kUnknownField] = 1;
    const std::optional<ScenarioError> error = load_error(document);
    const std::string unknown_path = level.path + "." + kUnknownField;
    if (!error || error->path != unknown_path) {
      problems.push_back(level.path + ": expected the loader to refuse " + unknown_path + ", got " +
                         (error ? error->what() : std::string("no error")));
      continue;
    }
    const std::vector<std::string> in_schema = property_names(*level.schema);
    for (const std::string& field : error->known_fields) {
      if (std::find(in_schema.begin(), in_schema.end(), field) == in_schema.end()) {
        problems.push_back(level.path + ": the loader accepts \"" + field +
                           "\", the schema does not list it");
      }
    }
    for (const std::string& field : in_schema) {
      if (std::find(error->known_fields.begin(), error->known_fields.end(), field) ==
          error->known_fields.end()) {
        problems.push_back(level.path + ": the schema lists \"" + field +
                           "\", the loader does not know it");
      }
    }
  }
  return problems;
}

// Every field of a loaded scenario that the format sets, one "name=value" per line, to compare
// a document without a field against one with the schema's default for it.
std::string fingerprint(const ScenarioSpec& spec) {
  std::ostringstream out;
  out.precision(17);
  const auto put = [&](const char* name, const auto& value) {
    out << name << "=" << value << "\n";
  };
  const auto time = [&](const char* name, sim::Duration value) { put(name, value.ns); };
  put("name", spec.name);
  put("description", spec.description);
  time("duration", spec.duration);
  time("heal", spec.heal);
  for (const std::string& az : spec.topology.az_names) put("az", az);
  put("racks_per_az", spec.topology.racks_per_az);
  put("hosts_per_rack", spec.topology.hosts_per_rack);
  put("clock_drift_ppm", spec.topology.clock_drift_ppm_bound);
  const sim::DiskOptions& disk = spec.topology.disk;
  put("capacity", disk.capacity_bytes);
  put("torn", disk.torn_write_probability);
  put("bit_rot", disk.bit_rot_per_tb_hour);
  put("latent", disk.latent_error_probability_per_read);
  put("misdirected", disk.misdirected_write_probability);
  put("fsync_kind", static_cast<int>(disk.fsync_latency_ns.kind));
  put("fsync_median", disk.fsync_latency_ns.median);
  put("fsync_sigma", disk.fsync_latency_ns.sigma);
  put("fsync_maximum", disk.fsync_latency_ns.maximum);
  put("loss", spec.network.loss_probability);
  put("duplicate", spec.network.duplicate_probability);
  put("reorder", spec.network.reorder_probability);
  time("append_interval", spec.probe.append_interval);
  time("ping_interval", spec.probe.ping_interval);
  put("max_records", spec.probe.max_records);
  put("ack_before_fsync", spec.probe.ack_before_fsync);
  put("unrestricted", spec.survivability.unrestricted);
  put("max_impaired_azs", spec.survivability.max_impaired_azs);
  for (const NamedTimelineFault& fault : spec.timeline) {
    time("at", fault.at);
    put("kind", sim::to_string(fault.kind));
    put("target", fault.target);
    time("for", fault.duration);
    put("value", fault.value);
  }
  for (const NamedRandomFault& fault : spec.random_faults) {
    put("kind", sim::to_string(fault.kind));
    put("scope", fault.scope);
    put("rate", fault.rate_per_host_hour);
    time("for", fault.duration);
    put("value", fault.value);
  }
  if (spec.storage) {
    const StorageSpec& s = *spec.storage;
    put("partitions", s.partitions);
    put("cpu_cores", s.cpu_cores);
    put("checkpoint_every_entries", s.checkpoint_every_entries);
    time("checkpoint_interval", s.checkpoint_interval);
    put("log_tail_entries", s.log_tail_entries);
    put("btree_cache_pages", s.btree_cache_pages);
    time("heartbeat_interval", s.heartbeat_interval);
    time("election_timeout", s.election_timeout);
    time("lease", s.lease);
    put("max_clock_drift_ppm", s.max_clock_drift_ppm);
    put("plant_quorum_of_one", s.plant_quorum_of_one);
    put("plant_no_lease_wait", s.plant_no_lease_wait);
    put("plant_follower_strong_reads", s.plant_follower_strong_reads);
    put("plant_send_before_fsync", s.plant_send_before_fsync);
    put("plant_acknowledge_update_without_apply", s.plant_acknowledge_update_without_apply);
    put("healing", s.healing);
    time("replica_lost_after", s.replica_lost_after);
    time("healing_check_interval", s.healing_check_interval);
    put("log_replicas", s.log_replicas);
    put("log_replica_seed_entries", s.log_replica_seed_entries);
    put("rebuild_bytes_per_second", s.rebuild_bytes_per_second);
    time("rebuild_waits_for_az", s.rebuild_waits_for_az);
    put("plant_remove_log_replica_early", s.plant_remove_log_replica_early);
    put("archival", s.archival);
    put("archive_entries_per_segment", s.archive_entries_per_segment);
    put("archive_snapshot_every_entries", s.archive_snapshot_every_entries);
    put("plant_accept_sequence_gap", s.plant_accept_sequence_gap);
    put("plant_archive_alter_entry_every", s.plant_archive_alter_entry_every);
    put("scrub", s.scrub);
    put("scrub_pages_per_second", s.scrub_pages_per_second);
    put("scrub_pages_per_step", s.scrub_pages_per_step);
    put("plant_scrub_skip_replica", s.plant_scrub_skip_replica);
    time("compare_interval", s.compare_interval);
    put("compare_fanout", s.compare_fanout);
    put("compare_leaf_items", s.compare_leaf_items);
    put("compare_max_depth", s.compare_max_depth);
    time("compare_timeout", s.compare_timeout);
    put("plant_compare_ignore_replica", s.plant_compare_ignore_replica);
    put("plant_divergent_apply_replica", s.plant_divergent_apply_replica);
    put("plant_divergent_apply_every", s.plant_divergent_apply_every);
    time("plant_divergent_apply_until", s.plant_divergent_apply_until);
    // Routing.
    put("routing", s.routing);
    put("routers_per_az", s.routers_per_az);
    put("memds_nodes", s.memds_nodes);
    put("routing_cache_bimodal", s.routing_cache_bimodal);
    time("router_forward_timeout", s.router_forward_timeout);
    put("router_max_forwards", s.router_max_forwards);
    time("memds_lookup_timeout", s.memds_lookup_timeout);
    put("plant_router_forward_to_neighbour", s.plant_router_forward_to_neighbour);
    put("splits", s.splits);
    put("splits_consumption_threshold_percent", s.splits_consumption_threshold_percent);
    put("splits_sustained_periods", s.splits_sustained_periods);
    put("splits_size_threshold_bytes", s.splits_size_threshold_bytes);
    put("splits_copy_bytes_per_second", s.splits_copy_bytes_per_second);
    time("splits_policy_period", s.splits_policy_period);
    put("plant_split_child_before_copy", s.plant_split_child_before_copy);
    put("admission", s.admission);
    put("read_capacity_units", s.read_capacity_units);
    put("write_capacity_units", s.write_capacity_units);
    put("node_read_units_per_second", s.node_read_units_per_second);
    put("node_write_units_per_second", s.node_write_units_per_second);
    time("admission_burst_window", s.admission_burst_window);
    put("plant_burst_ignores_depth", s.plant_burst_ignores_depth);
    put("capacity_on_demand", s.capacity_on_demand);
    put("auto_scaling", s.auto_scaling);
    put("auto_scaling_target_utilization_percent", s.auto_scaling_target_utilization_percent);
    put("auto_scaling_min_read_units", s.auto_scaling_min_read_units);
    put("auto_scaling_max_read_units", s.auto_scaling_max_read_units);
    put("auto_scaling_min_write_units", s.auto_scaling_min_write_units);
    put("auto_scaling_max_write_units", s.auto_scaling_max_write_units);
    time("auto_scaling_update_delay", s.auto_scaling_update_delay);
    put("gac", s.gac);
    put("gac_servers", s.gac_servers);
    time("gac_refresh_interval", s.gac_refresh_interval);
    time("gac_token_lifetime", s.gac_token_lifetime);
    time("gac_slot_length", s.gac_slot_length);
    put("gac_horizon_slots", s.gac_horizon_slots);
    time("gac_static_stability_period", s.gac_static_stability_period);
    put("plant_gac_ignore_outstanding_grants", s.plant_gac_ignore_outstanding_grants);
  }
  const WorkloadSpec& w = spec.workload;
  put("client_hosts_per_az", w.client_hosts_per_az);
  put("operations_per_second", w.operations_per_second);
  put("keys", w.keys);
  put("item_size_bytes", w.item_size_bytes);
  put("key_distribution.kind", static_cast<int>(w.key_distribution.kind));
  put("key_distribution.exponent", w.key_distribution.zipf_exponent);
  put("key_distribution.hot_keys_fraction", w.key_distribution.hot_keys_fraction);
  put("key_distribution.hot_traffic", w.key_distribution.hot_traffic);
  put("put", w.put);
  put("get_strong", w.get_strong);
  put("get_eventual", w.get_eventual);
  put("put_if_version", w.put_if_version);
  put("put_if_absent", w.put_if_absent);
  put("delete", w.delete_item);
  put("update", w.update);
  put("query", w.query);
  put("scan", w.scan);
  put("counters", w.counters);
  const auto shape = [&](const char* name, const RateShape& r) {
    put(name, to_string(r.kind));
    put("constant", r.constant_per_second);
    put("from", r.from_per_second);
    put("to", r.to_per_second);
    time("over", r.over);
    put("mean", r.mean_per_second);
    put("amplitude", r.amplitude_per_second);
    time("period", r.period);
    time("phase", r.phase);
    put("base", r.base_per_second);
    put("peak", r.peak_per_second);
    time("at", r.at);
    time("rise", r.rise);
    time("hold", r.hold);
    time("fall", r.fall);
    for (double minute : r.per_minute_per_second) put("minute", minute);
  };
  if (w.rate) shape("rate", *w.rate);
  for (const WorkloadPhaseSpec& phase : w.phases) {
    time("phase.duration", phase.duration);
    shape("phase.rate", phase.rate);
    put("phase.put", phase.mix.put);
    put("phase.get_strong", phase.mix.get_strong);
    put("phase.get_eventual", phase.mix.get_eventual);
    put("phase.put_if_version", phase.mix.put_if_version);
    put("phase.put_if_absent", phase.mix.put_if_absent);
    put("phase.delete", phase.mix.delete_item);
    put("phase.update", phase.mix.update);
    put("phase.query", phase.mix.query);
    put("phase.scan", phase.mix.scan);
    put("phase.keys.kind", static_cast<int>(phase.key_distribution.kind));
    put("phase.keys.exponent", phase.key_distribution.zipf_exponent);
    put("phase.keys.hot_keys_fraction", phase.key_distribution.hot_keys_fraction);
    put("phase.keys.hot_traffic", phase.key_distribution.hot_traffic);
  }
  if (const auto& sizes = w.item_size_distribution) {
    put("sizes.kind", to_string(sizes->kind));
    put("sizes.min", sizes->min_bytes);
    put("sizes.max", sizes->max_bytes);
    put("sizes.median", sizes->median_bytes);
    put("sizes.sigma", sizes->sigma);
    for (const ItemSizeDistribution::Bucket& bucket : sizes->buckets) {
      put("sizes.bucket", bucket.size_bytes);
      put("sizes.weight", bucket.weight);
    }
  }
  put("max_attempts", w.max_attempts);
  time("attempt_timeout", w.attempt_timeout);
  time("verify_after", w.verify_after);
  time("availability_window", spec.checks.availability_window);
  time("max_quorum_restore_p99", spec.checks.max_quorum_restore_p99);
  put("linearizability_max_states_per_key", spec.checks.linearizability_max_states_per_key);
  return out.str();
}

// Check: each "default" the schema gives is the loader's, i.e. a document with the field set to
// it loads to the same scenario as one without the field. Returns the problems.
std::vector<std::string> defaults_the_loader_does_not_have(const json& schema) {
  const SchemaValidator validator(schema);
  std::vector<std::string> problems;
  for (const Level& level : levels(validator, schema)) {
    for (const auto& [key, property] : level.schema->at("properties").items()) {
      if (!property.contains("default")) continue;
      json without = document_reaching(validator, schema, level);
      without[level.pointer].erase(key);
      complete(validator, schema, without);
      json with = without;
      with[level.pointer][key] = property.at("default");
      complete(validator, schema, with);
      try {
        const std::string loaded_without = fingerprint(parse_scenario(without, kDocumentSource));
        const std::string loaded_with = fingerprint(parse_scenario(with, kDocumentSource));
        if (loaded_without != loaded_with) {
          problems.push_back(level.path + "." + key + ": the default " +
                             property.at("default").dump() + " is not the loader's");
        }
      } catch (const ScenarioError& error) {
        problems.push_back(level.path + "." + key + ": " + error.what());
      }
    }
  }
  return problems;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

bool mentions(const std::vector<std::string>& lines, const std::string& needle) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& line) {
    return line.find(needle) != std::string::npos;
  });
}

// ---- Tests ----------------------------------------------------------------------------------

TEST(ScenarioSchemaTest, EveryShippedScenarioValidatesAndNamesTheSchema) {
  const json schema = read_schema();
  const SchemaValidator validator(schema);
  const std::vector<std::filesystem::path> paths = shipped_scenarios();
  ASSERT_GE(paths.size(), 4u);
  for (const auto& path : paths) {
    SCOPED_TRACE(path.string());
    const json document = parse_json_file(path.string());
    EXPECT_EQ(joined(validator.validate(document)), "");
    EXPECT_EQ(document.value("$schema", ""), "./scenario.schema.json");
    EXPECT_NO_THROW(parse_scenario(document, path.string()));
  }
}

TEST(ScenarioSchemaTest, EveryObjectLevelRefusesUnknownFields) {
  const json schema = read_schema();
  const SchemaValidator validator(schema);
  const std::vector<Level> all = levels(validator, schema);
  // Root, topology, disk, network, probe, faults, timeline entry, random entry, storage,
  // healing, archival, scrub, admission, auto_scaling, gac, routing, splits, plant,
  // divergent_apply,
  // workload, rate and its ramp, diurnal, spike and replay, a phase with its rate (and the rate's
  // four shapes), mix and key_distribution, item_size_distribution with uniform, lognormal and a
  // histogram bucket, key_distribution, mix, checks.
  EXPECT_EQ(all.size(), 40u);
  for (const Level& level : all) {
    EXPECT_EQ(level.schema->value("additionalProperties", json(true)), json(false)) << level.path;
    for (const auto& [key, property] : level.schema->at("properties").items()) {
      EXPECT_TRUE(validator.resolve(property).contains("description") ||
                  property.contains("description"))
          << level.path << "." << key << " has no description";
    }
  }
}

TEST(ScenarioSchemaTest, EveryPropertyInTheSchemaLoads) {
  EXPECT_EQ(joined(properties_the_loader_refuses(read_schema())), "");
}

TEST(ScenarioSchemaTest, EveryDefaultInTheSchemaIsTheLoaders) {
  EXPECT_EQ(joined(defaults_the_loader_does_not_have(read_schema())), "");
}

// Planted error: a default the loader does not have is caught.
TEST(ScenarioSchemaTest, PlantedWrongDefaultIsCaught) {
  json schema = read_schema();
  schema["properties"]["storage"]["properties"]["lease"]["default"] = "3s";
  schema["properties"]["workload"]["properties"]["mix"]["default"]["put"] = 31;
  const std::vector<std::string> problems = defaults_the_loader_does_not_have(schema);
  EXPECT_TRUE(mentions(problems, "$.storage.lease: the default \"3s\" is not the loader's"));
  EXPECT_TRUE(mentions(problems, "$.workload.mix: the default"));
  EXPECT_EQ(problems.size(), 2u) << joined(problems);
}

TEST(ScenarioSchemaTest, TheLoaderKnowsExactlyTheSchemasFieldsAtEveryLevel) {
  EXPECT_EQ(joined(loader_fields_outside_the_schema(read_schema())), "");
}

// Planted error: a schema without any one of its properties fails check (b), naming it.
TEST(ScenarioSchemaTest, PlantedSchemaMissingAnyPropertyIsCaught) {
  const json schema = read_schema();
  const SchemaValidator validator(schema);
  int dropped = 0;
  for (const Level& level : levels(validator, schema)) {
    for (const std::string& key : property_names(*level.schema)) {
      json mutated = schema;
      // The level's schema inside the mutated copy: levels are reached without $ref.
      json* node = &mutated;
      for (const json& step : level.steps) {
        node = step.is_string() ? &node->at("properties").at(step.get<std::string>())
                                : &node->at("items");
      }
      node->at("properties").erase(key);
      if (node->contains("required")) {
        json& required = node->at("required");
        required.erase(std::remove(required.begin(), required.end(), json(key)), required.end());
      }
      const std::vector<std::string> problems = loader_fields_outside_the_schema(mutated);
      // A dropped optional field is one the loader knows and the schema does not; a dropped
      // required field is missing from the documents built from the schema, and the loader says so.
      EXPECT_TRUE(mentions(problems, level.path + ": the loader accepts \"" + key + "\"") ||
                  mentions(problems, level.path + "." + key + ": expected"))
          << "dropping " << level.path << "." << key << " went unnoticed:\n"
          << joined(problems);
      ++dropped;
    }
  }
  EXPECT_GT(dropped, 100);
}

// Planted error: a property the loader does not know fails both checks.
TEST(ScenarioSchemaTest, PlantedSchemaListingAnUnknownPropertyIsCaught) {
  json schema = read_schema();
  schema["properties"]["storage"]["properties"]["scrub"]["properties"]["pages_per_hour"] = {
      {"description", "not a field"}, {"type", "integer"}, {"default", 5}};
  EXPECT_TRUE(mentions(properties_the_loader_refuses(schema),
                       "$.storage.scrub.pages_per_hour = 5: the loader refuses it"));
  EXPECT_TRUE(mentions(loader_fields_outside_the_schema(schema),
                       "$.storage.scrub: the schema lists \"pages_per_hour\""));
}

// Replaces one field name with a typo of it, at `pointer`.
void rename_key(json& document, const json::json_pointer& parent, const std::string& from,
                const std::string& to) {
  json& object = document[parent];
  object[to] = object[from];
  object.erase(from);
}

std::string typo(const std::string& name, sim::Random& random) {
  std::string text = name;
  const size_t at = random.uniform_u64(text.size());
  switch (random.uniform_u64(4)) {
    case 0:  // drop a letter
      text.erase(at, 1);
      break;
    case 1:  // double a letter
      text.insert(at, 1, text[at]);
      break;
    case 2:  // swap two neighbours
      if (at + 1 < text.size())
        std::swap(text[at], text[at + 1]);
      else
        text += "s";
      break;
    default:  // a letter changed
      text[at] = text[at] == 'x' ? 'y' : 'x';
      break;
  }
  return text;
}

// Planted error: a typo in any field name of any shipped scenario fails schema validation at
// that path, and the loader refuses the document too.
TEST(ScenarioSchemaTest, PlantedTypoInAShippedScenarioFailsValidation) {
  const json schema = read_schema();
  const SchemaValidator validator(schema);
  sim::Random random(20261124);
  int typos = 0;
  for (const auto& path : shipped_scenarios()) {
    const json original = parse_json_file(path.string());
    // Every object in the document, with its pointer and path.
    std::vector<std::pair<json::json_pointer, std::string>> objects;
    const std::function<void(const json&, const json::json_pointer&, const std::string&)> walk =
        [&](const json& value, const json::json_pointer& pointer, const std::string& where) {
          if (value.is_object()) {
            objects.emplace_back(pointer, where);
            for (const auto& [key, item] : value.items())
              walk(item, pointer / key, where + "." + key);
          } else if (value.is_array()) {
            for (size_t i = 0; i < value.size(); ++i) {
              walk(value[i], pointer / i, where + "[" + std::to_string(i) + "]");
            }
          }
        };
    walk(original, json::json_pointer(), "$");
    for (const auto& [pointer, where] : objects) {
      for (const auto& [key, unused] : original[pointer].items()) {
        std::string wrong = typo(key, random);
        while (wrong == key || original[pointer].contains(wrong) || wrong.empty()) {
          wrong = typo(key, random);
        }
        json document = original;
        rename_key(document, pointer, key, wrong);
        const std::vector<std::string> errors = validator.validate(document);
        EXPECT_TRUE(mentions(errors, where + "." + wrong + ": an unknown field"))
            << path.filename() << ": " << key << " -> " << wrong << ":\n"
            << joined(errors);
        EXPECT_TRUE(load_error(document).has_value()) << key << " -> " << wrong;
        ++typos;
      }
    }
  }
  EXPECT_GT(typos, 150);
}

// Mistakes other than typos: the schema and the loader both refuse each.
TEST(ScenarioSchemaTest, SchemaAndLoaderRefuseTheSameMistakes) {
  const json schema = read_schema();
  const SchemaValidator validator(schema);
  const json base = parse_json_file(kSourceDir + "/scenarios/power-off-game-day.json");
  const json world = parse_json_file(kSourceDir + "/scenarios/world-smoke.json");
  struct Mistake {
    const char* what;
    json document;
  };
  std::vector<Mistake> mistakes;
  const auto with = [](json document, const std::string& pointer, const json& value) {
    document[json::json_pointer(pointer)] = value;
    return document;
  };
  json no_duration = base;
  no_duration.erase("duration");
  json workload_alone = world;
  workload_alone["workload"] = json::object();
  mistakes.push_back({"a quoted number", with(base, "/storage/partitions", "12")});
  mistakes.push_back({"below the minimum", with(base, "/storage/partitions", 0)});
  mistakes.push_back({"a fraction for an integer", with(base, "/workload/keys", 10.5)});
  mistakes.push_back({"a duration in words", with(base, "/heal", "5 minutes")});
  mistakes.push_back({"a duration without a unit", with(base, "/heal", 300)});
  mistakes.push_back({"a size in bits", with(base, "/workload/item_size", "1kb")});
  mistakes.push_back({"an unknown fault kind", with(base, "/faults/timeline/0/kind", "power-off")});
  mistakes.push_back({"a missing required field", no_duration});
  mistakes.push_back({"a workload without storage", workload_alone});
  mistakes.push_back({"a probe in a service scenario", with(base, "/probe", json::object())});
  mistakes.push_back(
      {"two AZs in a service scenario", with(base, "/topology/azs", json{"az-a", "az-b"})});
  mistakes.push_back({"no AZ", with(world, "/topology/azs", json::array())});
  mistakes.push_back({"null for a bool", with(base, "/faults/unrestricted", nullptr)});
  mistakes.push_back(
      {"a random fault without a rate", with(world, "/faults/random/0", json{{"kind", "crash"}})});
  mistakes.push_back(
      {"a rate without a unit", with(base, "/workload/rate", json{{"constant", "300"}})});
  mistakes.push_back(
      {"a ramp without its length",
       with(base, "/workload/rate", json{{"ramp", {{"from", "1/s"}, {"to", "9/s"}}}})});
  mistakes.push_back({"no phases", with(base, "/workload/phases", json::array())});
  mistakes.push_back(
      {"a phase without a duration",
       with(base, "/workload/phases", json::array({json{{"rate", json::object()}}}))});
  mistakes.push_back(
      {"a negative histogram weight",
       with(base, "/workload/item_size_distribution",
            json{{"histogram", json::array({json{{"size", "1KB"}, {"weight", -1}}})}})});
  mistakes.push_back(
      {"an unknown replay metric", with(base, "/workload/rate",
                                        json{{"replay",
                                              {{"file", "data/cloudwatch-consumed-wcu.csv"},
                                               {"metric", "ConsumedWriteCapacity"}}}})});
  for (const Mistake& mistake : mistakes) {
    EXPECT_FALSE(validator.validate(mistake.document).empty()) << mistake.what;
    EXPECT_TRUE(load_error(mistake.document).has_value()) << mistake.what;
  }
  // The number 0 is a duration; the bases themselves are valid.
  EXPECT_EQ(joined(validator.validate(with(base, "/faults/timeline/0/at", 0))), "");
  EXPECT_FALSE(load_error(with(base, "/faults/timeline/0/at", 0)).has_value());
}

// The schema's minimum and maximum of every number are the loader's: both load, and one step
// beyond is refused by both, at that field's path.
TEST(ScenarioSchemaTest, NumericBoundsAreTheLoaders) {
  const json schema = read_schema();
  const SchemaValidator validator(schema);
  int bounds = 0;
  for (const Level& level : levels(validator, schema)) {
    for (const auto& [key, property] : level.schema->at("properties").items()) {
      const json type = property.value("type", json());
      if (type != "integer" && type != "number") continue;
      for (const char* bound : {"minimum", "maximum"}) {
        if (!property.contains(bound)) continue;
        const double edge = property.at(bound).get<double>();
        const double sign = std::string(bound) == "minimum" ? -1 : 1;
        const json inside =
            type == "integer" ? json(property.at(bound).get<int64_t>()) : json(edge);
        const json outside =
            type == "integer" ? json(property.at(bound).get<int64_t>() + static_cast<int64_t>(sign))
                              : json(edge + sign * std::max(1.0, std::fabs(edge)) * 1e-6);
        const std::string field = level.path + "." + key;
        json document = document_reaching(validator, schema, level);
        complete(validator, schema, document);
        document[level.pointer][key] = inside;
        EXPECT_EQ(joined(validator.validate(document)), "") << field << " = " << inside;
        const auto inside_error = load_error(document);
        EXPECT_FALSE(inside_error.has_value())
            << field << " = " << inside << ": " << (inside_error ? inside_error->what() : "");
        document[level.pointer][key] = outside;
        EXPECT_FALSE(validator.validate(document).empty()) << field << " = " << outside;
        const auto outside_error = load_error(document);
        EXPECT_TRUE(outside_error && outside_error->path == field)
            << field << " = " << outside << ": "
            << (outside_error ? outside_error->what() : "loaded");
        ++bounds;
      }
    }
  }
  EXPECT_GT(bounds, 80);
}

// The unit patterns agree with gameday/units.h: what a parser accepts matches the pattern, and
// what matches is accepted unless it is not a whole number of the base unit or too large, which
// a pattern cannot see.
TEST(ScenarioSchemaTest, UnitPatternsAgreeWithTheParsers) {
  const json schema = read_schema();
  struct Unit {
    const char* definition;
    std::function<void(const std::string&)> parse;
    std::vector<std::string> units;
  };
  const std::vector<Unit> kinds = {
      {"duration",
       [](const std::string& text) { parse_duration(text); },
       {"ns", "us", "ms", "s", "m", "h", "d", "sec", "min", "S", "M", " s", "", "us ", "µs"}},
      {"bytes",
       [](const std::string& text) { parse_bytes(text); },
       {"B", "KB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB", "PB", "PiB", "kb", "b", "K", " KB",
        "", "EB"}},
      {"rate",
       [](const std::string& text) { parse_rate_per_second(text); },
       {"/s", "/m", "/h", "/d", "/sec", "s", "/S", "/ s", "", "rps", "/s/"}},
  };
  sim::Random random(7);
  for (const Unit& kind : kinds) {
    const std::regex pattern(
        schema.at("definitions").at(kind.definition).at("pattern").get<std::string>());
    int accepted = 0;
    std::vector<std::string> samples = {"0",   "00",  "0.0", "-1s",
                                        "+1s", ".5s", "1.s", "1e3s",
                                        "",    " 1s", "1s ", "99999999999999999999d"};
    for (int i = 0; i < 3000; ++i) {
      std::string number = std::to_string(random.uniform_u64(random.bernoulli(0.5) ? 10 : 100000));
      if (random.bernoulli(0.4)) number += "." + std::to_string(random.uniform_u64(1000));
      samples.push_back(number + kind.units[random.uniform_u64(kind.units.size())]);
    }
    for (const std::string& text : samples) {
      const bool matches = std::regex_search(text, pattern);
      std::optional<UnitError> error;
      try {
        kind.parse(text);
      } catch (const UnitError& e) {
        error = e;
      }
      if (!error) {
        EXPECT_TRUE(matches) << kind.definition << ": the parser accepts \"" << text
                             << "\", the pattern does not";
        ++accepted;
      } else if (matches) {
        const std::string& hint = error->hint;
        const bool unseen_by_patterns = hint.find("whole") != std::string::npos ||
                                        hint.find("longer than") != std::string::npos ||
                                        hint.find("larger than") != std::string::npos ||
                                        hint.find("digits") != std::string::npos;
        EXPECT_TRUE(unseen_by_patterns) << kind.definition << ": the pattern matches \"" << text
                                        << "\", the parser refuses it: " << error->what();
      }
    }
    EXPECT_GT(accepted, 500) << kind.definition;
  }
}

}  // namespace
}  // namespace dynasim::gameday
