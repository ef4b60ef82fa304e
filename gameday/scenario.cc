#include "gameday/scenario.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "gameday/json_reader.h"
#include "gameday/units.h"
#include "model/storage_protocol.h"
#include "sim/check.h"

namespace dynasim::gameday {

namespace {

std::vector<std::string> fault_kind_names() {
  return {"power_off",
          "crash",
          "isolate",
          "clog",
          "packet_loss",
          "disk_slow",
          "disk_full",
          "bit_rot",
          "latent_errors",
          "misdirected_writes",
          "clock_drift",
          "clock_jump",
          "object_store_outage"};
}

sim::FaultKind read_fault_kind(ObjectReader& reader) {
  const std::string text = reader.required_string("kind");
  sim::FaultKind kind;
  if (!sim::parse_fault_kind(text, &kind)) {
    std::string expected = "one of";
    for (const std::string& name : fault_kind_names()) expected += " \"" + name + "\"";
    throw ScenarioError(reader.child_path("kind"), expected, "\"" + text + "\"",
                        did_you_mean(text, fault_kind_names()));
  }
  return kind;
}

void read_topology(ObjectReader reader, TopologySpec* topology) {
  if (auto azs = reader.optional_array("azs")) {
    topology->az_names.clear();
    for (size_t i = 0; i < azs->size(); ++i) topology->az_names.push_back(azs->string(i));
    if (topology->az_names.empty()) {
      throw ScenarioError(reader.child_path("azs"), "at least one AZ name", "an empty array");
    }
  }
  topology->racks_per_az =
      static_cast<uint32_t>(reader.optional_uint("racks_per_az", topology->racks_per_az, 1, 64));
  topology->hosts_per_rack = static_cast<uint32_t>(
      reader.optional_uint("hosts_per_rack", topology->hosts_per_rack, 1, 256));
  topology->clock_drift_ppm_bound =
      reader.optional_number("clock_drift_ppm", topology->clock_drift_ppm_bound, 0, 10000);
  if (auto disk = reader.optional_object("disk")) {
    sim::DiskOptions& options = topology->disk;
    options.capacity_bytes =
        disk->optional_bytes("capacity", options.capacity_bytes, 1 << 20, uint64_t{1} << 50);
    options.torn_write_probability =
        disk->optional_number("torn_write_probability", options.torn_write_probability, 0, 1);
    options.bit_rot_per_tb_hour =
        disk->optional_number("bit_rot_per_tb_hour", options.bit_rot_per_tb_hour, 0, 1e9);
    options.latent_error_probability_per_read = disk->optional_number(
        "latent_error_probability", options.latent_error_probability_per_read, 0, 1);
    const sim::Duration median = disk->optional_duration("fsync_latency", sim::Duration(0),
                                                         sim::Duration(1), sim::seconds(10));
    if (median > sim::Duration(0)) {  // absent: DiskOptions' default
      options.fsync_latency_ns =
          sim::DiskOptions::make_latency(static_cast<double>(median.ns), 0.5);
    }
    options.misdirected_write_probability = disk->optional_number(
        "misdirected_write_probability", options.misdirected_write_probability, 0, 1);
    disk->finish();
  }
  reader.finish();
}

void read_network(ObjectReader reader, sim::NetworkOptions* network) {
  network->loss_probability = reader.optional_number("loss_probability", 0, 0, 1);
  network->duplicate_probability = reader.optional_number("duplicate_probability", 0, 0, 1);
  network->reorder_probability = reader.optional_number("reorder_probability", 0, 0, 1);
  reader.finish();
}

void read_probe(ObjectReader reader, ProbeOptions* probe) {
  probe->append_interval = reader.optional_duration("append_interval", probe->append_interval,
                                                    sim::microseconds(100), sim::hours(1));
  probe->ping_interval = reader.optional_duration("ping_interval", probe->ping_interval,
                                                  sim::microseconds(100), sim::hours(1));
  probe->max_records = reader.optional_uint("max_records", probe->max_records, 1, 100'000'000);
  probe->ack_before_fsync = reader.optional_bool("ack_before_fsync", probe->ack_before_fsync);
  reader.finish();
}

void read_faults(ObjectReader reader, ScenarioSpec* spec) {
  spec->survivability.unrestricted = reader.optional_bool("unrestricted", false);
  spec->survivability.max_impaired_azs =
      static_cast<uint32_t>(reader.optional_uint("max_impaired_azs", 1, 0, 1000));
  if (auto timeline = reader.optional_array("timeline")) {
    for (size_t i = 0; i < timeline->size(); ++i) {
      ObjectReader entry = timeline->object(i);
      NamedTimelineFault fault;
      fault.path = entry.path();
      fault.at = entry.required_duration("at");
      fault.kind = read_fault_kind(entry);
      fault.target = entry.optional_string("target", "region");
      fault.duration = entry.optional_duration("for", sim::Duration(0));
      fault.value = entry.optional_number("value", 0);
      entry.finish();
      spec->timeline.push_back(fault);
    }
  }
  if (auto random = reader.optional_array("random")) {
    for (size_t i = 0; i < random->size(); ++i) {
      ObjectReader entry = random->object(i);
      NamedRandomFault fault;
      fault.path = entry.path();
      fault.kind = read_fault_kind(entry);
      fault.scope = entry.optional_string("scope", "region");
      fault.rate_per_host_hour = entry.required_number("rate_per_host_hour", 0, 1e6);
      fault.duration = entry.optional_duration("for", sim::seconds(30));
      fault.value = entry.optional_number("value", 0);
      entry.finish();
      spec->random_faults.push_back(fault);
    }
  }
  reader.finish();
}

void read_storage(ObjectReader reader, StorageSpec* storage) {
  storage->partitions =
      static_cast<uint32_t>(reader.optional_uint("partitions", storage->partitions, 1, 100'000));
  storage->cpu_cores =
      static_cast<uint32_t>(reader.optional_uint("cpu_cores", storage->cpu_cores, 1, 1024));
  storage->checkpoint_every_entries = reader.optional_uint(
      "checkpoint_every_entries", storage->checkpoint_every_entries, 1, 100'000'000);
  storage->checkpoint_interval = reader.optional_duration(
      "checkpoint_interval", storage->checkpoint_interval, sim::milliseconds(10), sim::hours(24));
  storage->log_tail_entries =
      reader.optional_uint("log_tail_entries", storage->log_tail_entries, 0, 100'000'000);
  storage->btree_cache_pages =
      reader.optional_uint("btree_cache_pages", storage->btree_cache_pages, 4, 100'000'000);
  storage->heartbeat_interval = reader.optional_duration(
      "heartbeat_interval", storage->heartbeat_interval, sim::milliseconds(1), sim::minutes(1));
  storage->election_timeout = reader.optional_duration(
      "election_timeout", storage->election_timeout, sim::milliseconds(10), sim::minutes(10));
  storage->lease =
      reader.optional_duration("lease", storage->lease, sim::milliseconds(10), sim::minutes(10));
  storage->max_clock_drift_ppm =
      reader.optional_number("max_clock_drift_ppm", storage->max_clock_drift_ppm, 0, 100'000);
  if (storage->election_timeout <= storage->heartbeat_interval) {
    throw ScenarioError(reader.child_path("election_timeout"),
                        "a duration longer than heartbeat_interval (" +
                            sim::format_duration(storage->heartbeat_interval) + ")",
                        sim::format_duration(storage->election_timeout),
                        "followers would suspect a healthy leader between two heartbeats");
  }
  if (auto healing = reader.optional_object("healing")) {
    storage->healing = healing->optional_bool("enabled", true);
    storage->replica_lost_after = healing->optional_duration(
        "replica_lost_after", storage->replica_lost_after, sim::milliseconds(10), sim::hours(1));
    storage->healing_check_interval = healing->optional_duration(
        "check_interval", storage->healing_check_interval, sim::milliseconds(1), sim::minutes(1));
    storage->log_replicas = healing->optional_bool("log_replicas", storage->log_replicas);
    storage->log_replica_seed_entries = healing->optional_uint(
        "log_replica_seed_entries", storage->log_replica_seed_entries, 0, 100'000'000);
    storage->rebuild_bytes_per_second = healing->optional_bytes(
        "rebuild_bytes_per_second", storage->rebuild_bytes_per_second, 1024, uint64_t{1} << 40);
    storage->rebuild_waits_for_az = healing->optional_duration(
        "rebuild_waits_for_az", storage->rebuild_waits_for_az, sim::Duration(0), sim::hours(24));
    storage->plant_remove_log_replica_early =
        healing->optional_bool("plant_remove_log_replica_early", false);
    healing->finish();
  }
  if (auto archival = reader.optional_object("archival")) {
    storage->archival = archival->optional_bool("enabled", true);
    storage->archive_entries_per_segment = archival->optional_uint(
        "entries_per_segment", storage->archive_entries_per_segment, 1, 1'000'000);
    storage->archive_snapshot_every_entries = archival->optional_uint(
        "snapshot_every_entries", storage->archive_snapshot_every_entries, 0, 1'000'000'000);
    storage->plant_accept_sequence_gap =
        archival->optional_bool("plant_accept_sequence_gap", false);
    storage->plant_archive_alter_entry_every =
        archival->optional_uint("plant_alter_entry_every", 0, 0, 1'000'000'000);
    archival->finish();
  }
  if (auto scrub = reader.optional_object("scrub")) {
    storage->scrub = scrub->optional_bool("enabled", true);
    storage->scrub_pages_per_second = scrub->optional_number(
        "pages_per_second", storage->scrub_pages_per_second, 0.01, 1'000'000);
    storage->scrub_pages_per_step = static_cast<uint32_t>(
        scrub->optional_uint("pages_per_step", storage->scrub_pages_per_step, 1, 4096));
    storage->compare_interval = scrub->optional_duration(
        "compare_interval", storage->compare_interval, sim::Duration(0), sim::hours(24 * 365));
    storage->compare_fanout = static_cast<uint32_t>(
        scrub->optional_uint("compare_fanout", storage->compare_fanout, 2, 256));
    storage->compare_leaf_items =
        scrub->optional_uint("compare_leaf_items", storage->compare_leaf_items, 1, 1'000'000'000);
    storage->compare_max_depth = static_cast<uint32_t>(
        scrub->optional_uint("compare_max_depth", storage->compare_max_depth, 0, 64));
    storage->compare_timeout = scrub->optional_duration("compare_timeout", storage->compare_timeout,
                                                        sim::milliseconds(10), sim::hours(1));
    scrub->finish();
  }
  bool gac_section = false;  // storage.admission.gac is present: storage.routing must be
  if (auto admission = reader.optional_object("admission")) {
    storage->admission = admission->optional_bool("enabled", true);
    // DynamoDB's default per-table quota is 40,000 RCU and 40,000 WCU (Developer Guide,
    // ServiceQuotas); a scenario may ask for more (our limit), and each partition's share is
    // capped at 3,000 RCU and 1,000 WCU anyway (model::allocate_to_partitions).
    const uint64_t max_units = 100'000'000;
    storage->capacity_on_demand = admission->optional_enum("mode", {"provisioned", "on_demand"},
                                                           "provisioned") == "on_demand";
    storage->read_capacity_units = admission->required_uint("read_capacity_units", 1, max_units);
    storage->write_capacity_units = admission->required_uint("write_capacity_units", 1, max_units);
    // Caps an on-demand table's instant capacity; a provisioned table's capacity is its own.
    storage->table_quota_units =
        admission->optional_uint("table_quota_units", storage->table_quota_units, 1, max_units);
    if (storage->capacity_on_demand && admission->has("auto_scaling")) {
      throw ScenarioError(admission->child_path("auto_scaling"), "no auto_scaling with mode \"on_demand\"",
                          admission->raw("auto_scaling").dump(),
                          "auto scaling adjusts provisioned capacity; on-demand follows its peak");
    }
    if (auto scaling = admission->optional_object("auto_scaling")) {
      // model::AutoScalingPolicy; 20-90 percent (Developer Guide, AutoScaling).
      storage->auto_scaling = true;
      storage->auto_scaling_target_utilization_percent =
          static_cast<uint32_t>(scaling->optional_uint("target_utilization", 70, 20, 90));
      storage->auto_scaling_min_read_units = scaling->optional_uint(
          "min_read_units", storage->auto_scaling_min_read_units, 1, max_units);
      // The maximum defaults to DynamoDB's per-table quota of 40,000 (Developer Guide,
      // ServiceQuotas), or to the minimum when that is higher.
      storage->auto_scaling_max_read_units = scaling->optional_uint(
          "max_read_units",
          std::max(storage->auto_scaling_max_read_units, storage->auto_scaling_min_read_units), 1,
          max_units);
      storage->auto_scaling_min_write_units = scaling->optional_uint(
          "min_write_units", storage->auto_scaling_min_write_units, 1, max_units);
      storage->auto_scaling_max_write_units = scaling->optional_uint(
          "max_write_units",
          std::max(storage->auto_scaling_max_write_units, storage->auto_scaling_min_write_units), 1,
          max_units);
      storage->auto_scaling_update_delay = scaling->optional_duration(
          "update_delay", storage->auto_scaling_update_delay, sim::Duration(0), sim::hours(1));
      if (storage->auto_scaling_max_read_units < storage->auto_scaling_min_read_units) {
        throw ScenarioError(scaling->child_path("max_read_units"), "at least min_read_units",
                            std::to_string(storage->auto_scaling_max_read_units), "");
      }
      if (storage->auto_scaling_max_write_units < storage->auto_scaling_min_write_units) {
        throw ScenarioError(scaling->child_path("max_write_units"), "at least min_write_units",
                            std::to_string(storage->auto_scaling_max_write_units), "");
      }
      scaling->finish();
    }
    storage->node_read_units_per_second = admission->optional_uint(
        "node_read_units_per_second", storage->node_read_units_per_second, 1, 100'000'000);
    storage->node_write_units_per_second = admission->optional_uint(
        "node_write_units_per_second", storage->node_write_units_per_second, 1, 100'000'000);
    storage->admission_burst_window = admission->optional_duration(
        "burst_window", storage->admission_burst_window, sim::milliseconds(1), sim::hours(24));
    storage->plant_burst_ignores_depth =
        admission->optional_bool("plant_burst_ignores_depth", false);
    // Each partition's share is in milli units per second, rounded down: it must not be zero.
    for (const char* field : {"read_capacity_units", "write_capacity_units"}) {
      const uint64_t units = std::string_view(field) == "read_capacity_units"
                                 ? storage->read_capacity_units
                                 : storage->write_capacity_units;
      if (units * 1000 < storage->partitions) {
        throw ScenarioError(
            admission->child_path(field), "at least one unit per 1000 partitions",
            std::to_string(units) + " over " + std::to_string(storage->partitions) + " partitions",
            "each partition's share would be zero: every request throttled");
      }
    }
    // Global admission control (docs/gac.md, "In a game day"); checked against routing below.
    if (auto gac = admission->optional_object("gac")) {
      gac_section = true;
      storage->gac = gac->optional_bool("enabled", true) && storage->admission;
      storage->gac_servers =
          static_cast<uint32_t>(gac->optional_uint("servers", storage->gac_servers, 1, 64));
      storage->gac_refresh_interval =
          gac->optional_duration("refresh_interval", storage->gac_refresh_interval,
                                 sim::milliseconds(100), sim::minutes(1));
      storage->gac_token_lifetime = gac->optional_duration(
          "token_lifetime", storage->gac_token_lifetime, sim::milliseconds(100), sim::minutes(10));
      storage->gac_slot_length = gac->optional_duration("slot_length", storage->gac_slot_length,
                                                        sim::milliseconds(10), sim::seconds(10));
      storage->gac_horizon_slots = static_cast<uint32_t>(
          gac->optional_uint("horizon_slots", storage->gac_horizon_slots, 1, 64));
      storage->gac_static_stability_period =
          gac->optional_duration("static_stability_period", storage->gac_static_stability_period,
                                 sim::Duration(0), sim::hours(1));
      storage->plant_gac_ignore_outstanding_grants =
          gac->optional_bool("plant_ignore_outstanding_grants", false);
      gac->finish();
    }
    admission->finish();
  }
  if (auto routing = reader.optional_object("routing")) {
    storage->routing = routing->optional_bool("enabled", true);
    storage->routers_per_az = static_cast<uint32_t>(
        routing->optional_uint("routers_per_az", storage->routers_per_az, 1, 64));
    storage->memds_nodes =
        static_cast<uint32_t>(routing->optional_uint("memds_nodes", storage->memds_nodes, 1, 64));
    storage->routing_cache_bimodal =
        routing->optional_enum("cache", {"constant_work", "bimodal"}, "constant_work") == "bimodal";
    storage->router_forward_timeout = routing->optional_duration(
        "forward_timeout", storage->router_forward_timeout, sim::milliseconds(1), sim::minutes(1));
    storage->router_max_forwards = static_cast<uint32_t>(
        routing->optional_uint("max_forwards", storage->router_max_forwards, 1, 16));
    storage->memds_lookup_timeout =
        routing->optional_duration("memds_lookup_timeout", storage->memds_lookup_timeout,
                                   sim::milliseconds(1), sim::minutes(1));
    storage->plant_router_forward_to_neighbour =
        routing->optional_bool("plant_forward_to_neighbour", false);
    routing->finish();
  }
  // GAC runs in the routers: a "gac" section needs a "routing" section (scenario.schema.json says
  // the same); with routing turned off, GAC is off too.
  storage->gac = storage->gac && storage->routing;
  if (gac_section && !reader.has("routing")) {
    throw ScenarioError(reader.child_path("admission") + ".gac", "storage.routing present",
                        "no \"routing\" section in storage",
                        "GAC runs in the request routers: add storage.routing, or remove "
                        "storage.admission.gac");
  }
  if (auto splits = reader.optional_object("splits")) {
    storage->splits = splits->optional_bool("enabled", true);
    storage->splits_consumption_threshold_percent = static_cast<uint32_t>(
        splits->optional_uint("consumption_threshold_percent",
                              storage->splits_consumption_threshold_percent, 1, 100));
    storage->splits_sustained_periods = static_cast<uint32_t>(
        splits->optional_uint("sustained_periods", storage->splits_sustained_periods, 1, 32));
    storage->splits_size_threshold_bytes =
        splits->optional_bytes("size_threshold", storage->splits_size_threshold_bytes,
                               uint64_t{1} << 20, uint64_t{10} << 30);
    storage->splits_copy_bytes_per_second =
        splits->optional_bytes("copy_bytes_per_second", storage->splits_copy_bytes_per_second,
                               uint64_t{1} << 10, uint64_t{1} << 40);
    storage->splits_policy_period = splits->optional_duration(
        "policy_period", storage->splits_policy_period, sim::milliseconds(100), sim::hours(1));
    storage->plant_split_child_before_copy =
        splits->optional_bool("plant_child_before_copy", false);
    storage->splits_first_leader_at_once =
        splits->optional_bool("first_leader_at_once", storage->splits_first_leader_at_once);
    if (storage->splits && !storage->routing) {
      throw ScenarioError(splits->path(), "a \"routing\" section in \"storage\"",
                          "splits without routing",
                          "clients without routers use the static placement and never find a "
                          "split's children: add \"routing\": {} or remove \"splits\"");
    }
    for (const char* other : {"healing", "archival"}) {
      if (storage->splits && reader.has(other)) {
        throw ScenarioError(splits->path(), std::string("no \"") + other + "\" section with splits",
                            std::string("splits with ") + other,
                            "a replica's range and split state are not kept across replica "
                            "changes yet (docs/partitions.md)");
      }
    }
    splits->finish();
  }
  if (auto plant = reader.optional_object("plant")) {
    storage->plant_scrub_skip_replica =
        static_cast<uint32_t>(plant->optional_uint("scrub_skip_replica", 0, 0, 3));
    storage->plant_quorum_of_one = plant->optional_bool("quorum_of_one", false);
    storage->plant_no_lease_wait = plant->optional_bool("no_lease_wait", false);
    storage->plant_follower_strong_reads = plant->optional_bool("follower_strong_reads", false);
    storage->plant_send_before_fsync = plant->optional_bool("send_before_fsync", false);
    storage->plant_acknowledge_update_without_apply =
        plant->optional_bool("acknowledge_update_without_apply", false);
    storage->plant_compare_ignore_replica =
        static_cast<uint32_t>(plant->optional_uint("compare_ignore_replica", 0, 0, 3));
    if (auto divergent = plant->optional_object("divergent_apply")) {
      storage->plant_divergent_apply_replica =
          static_cast<uint32_t>(divergent->required_uint("replica", 1, 3));
      storage->plant_divergent_apply_every = divergent->required_uint("every", 1, 1'000'000'000);
      storage->plant_divergent_apply_until = divergent->optional_duration(
          "until", sim::Duration(INT64_MAX), sim::Duration(0), sim::Duration(INT64_MAX));
      divergent->finish();
    }
    plant->finish();
  }
  reader.finish();
}

// ---- The workload ----------------------------------------------------------------------------

// Whole-table rates: at most 100 million operations per second (our bound, far above the 40,000
// units per second of DynamoDB's default table quota, Developer Guide, "Service, account, and
// table quotas").
constexpr double kMaxTableRatePerSecond = 100'000'000;
// Phases in one workload (our bound; a day of hourly phases fits).
constexpr size_t kMaxPhases = 1'000;
// Buckets of an item size histogram (our bound).
constexpr size_t kMaxHistogramBuckets = 64;
// Counter keys of a workload (our bound: the counter check keeps a record per ADD attempt, not
// per counter, so this only bounds the verification pass's reads).
constexpr uint64_t kMaxCounters = 100'000;

std::string rate_text(double per_second) {
  std::ostringstream out;
  out.precision(15);
  out << per_second << "/s";
  return out.str();
}

// A size of an item: from 1 B to DynamoDB's item limit, with the limit's source when beyond.
uint64_t read_item_bytes(ObjectReader& reader, std::string_view key) {
  const uint64_t bytes = reader.required_bytes(key, 1);
  if (bytes > kMaxWorkloadItemBytes) {
    throw ScenarioError(reader.child_path(key), "a size from 1B to 400KB", format_bytes(bytes),
                        "DynamoDB's maximum item size is 400 KB (Developer Guide, \"Service, "
                        "account, and table quotas\")");
  }
  return bytes;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) {
    text += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + ("\"" + names[i] + "\"");
  }
  return text;
}

// The mix's weights; at least one positive.
MixWeights read_mix(ObjectReader mix) {
  MixWeights weights;
  weights.put = mix.optional_number("put", 0, 0, 1e9);
  weights.get_strong = mix.optional_number("get_strong", 0, 0, 1e9);
  weights.get_eventual = mix.optional_number("get_eventual", 0, 0, 1e9);
  weights.put_if_version = mix.optional_number("put_if_version", 0, 0, 1e9);
  weights.put_if_absent = mix.optional_number("put_if_absent", 0, 0, 1e9);
  weights.delete_item = mix.optional_number("delete", 0, 0, 1e9);
  weights.update = mix.optional_number("update", 0, 0, 1e9);
  weights.query = mix.optional_number("query", 0, 0, 1e9);
  weights.scan = mix.optional_number("scan", 0, 0, 1e9);
  mix.finish();
  if (weights.total() <= 0) {
    throw ScenarioError(mix.path(), "at least one positive weight", "all weights zero",
                        "give weights such as {\"put\": 50, \"get_strong\": 50}");
  }
  return weights;
}

// A key distribution; fields left out keep `base`'s.
KeyDistribution read_key_distribution(ObjectReader keys, const KeyDistribution& base) {
  KeyDistribution distribution = base;
  const std::string kind = keys.optional_enum("kind", {"uniform", "zipf", "hot_set", "sequential"},
                                              to_string(base.kind));
  distribution.kind = kind == "zipf"         ? KeyDistribution::Kind::kZipf
                      : kind == "hot_set"    ? KeyDistribution::Kind::kHotSet
                      : kind == "sequential" ? KeyDistribution::Kind::kSequential
                                             : KeyDistribution::Kind::kUniform;
  distribution.zipf_exponent =
      keys.optional_number("exponent", distribution.zipf_exponent, 0.01, 10);
  distribution.hot_keys_fraction =
      keys.optional_number("hot_keys_fraction", distribution.hot_keys_fraction, 1e-9, 1);
  distribution.hot_traffic = keys.optional_number("hot_traffic", distribution.hot_traffic, 0, 1);
  keys.finish();
  return distribution;
}

// What a rate shape's reader needs from around it.
struct RateContext {
  std::string source;  // the scenario file; a replay's file is relative to its directory
  MixWeights mix;      // the mix the replay's capacity units are converted with
  ItemSizeDistribution sizes;
};

RateShape read_replay(ObjectReader replay, const RateContext& context) {
  const std::string file = replay.required_string("file");
  const std::string metric =
      replay.required_enum("metric", {"ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"});
  CloudWatchColumns columns;
  columns.timestamp = replay.optional_string("timestamp_column", columns.timestamp);
  columns.value = replay.optional_string("value_column", columns.value);
  const double scale = replay.optional_number("scale", 1, 0.001, 1000);
  replay.finish();
  std::filesystem::path path(file);
  if (path.is_relative()) path = std::filesystem::path(context.source).parent_path() / path;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ScenarioError(replay.child_path("file"),
                        "a readable CSV file (relative paths start at "
                        "the scenario file's directory)",
                        "\"" + file + "\", which cannot be opened as " + path.string());
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::vector<double> units_per_minute =
      parse_cloudwatch_csv(text.str(), path.string(), columns, replay.child_path("file"));
  const CapacityMetric kind = metric == "ConsumedReadCapacityUnits"
                                  ? CapacityMetric::kConsumedReadCapacityUnits
                                  : CapacityMetric::kConsumedWriteCapacityUnits;
  const double units_per_operation = capacity_units_per_operation(kind, context.mix, context.sizes);
  if (units_per_operation <= 0) {
    throw ScenarioError(
        replay.child_path("metric"), "a metric the operation mix consumes",
        "\"" + metric + "\" with a mix of no " +
            (kind == CapacityMetric::kConsumedReadCapacityUnits ? "reads" : "writes"),
        "give the mix some operations of that kind, or replay the other metric");
  }
  RateShape shape;
  shape.kind = RateShape::Kind::kReplay;
  for (double units : units_per_minute) {
    // Units consumed in a minute / 60 = units per second; / units per operation = operations
    // per second of the whole table.
    const double per_second = units / 60.0 / units_per_operation * scale;
    if (per_second > kMaxTableRatePerSecond) {
      throw ScenarioError(
          replay.child_path("file"),
          "at most " + std::to_string(static_cast<int64_t>(kMaxTableRatePerSecond)) +
              " operations per second in any minute",
          std::to_string(per_second) + " from " + std::to_string(units) + " units in a minute");
    }
    shape.per_minute_per_second.push_back(per_second);
  }
  return shape;
}

// Reads {"constant": "300/s"} or {"<shape>": {...}}. An empty object gives nothing.
std::optional<RateShape> read_rate(ObjectReader reader, const RateContext& context) {
  const double max = kMaxTableRatePerSecond;
  reader.allow({"constant"});  // read below when present
  std::vector<std::string> given;
  std::optional<RateShape> shape;
  if (reader.has("constant")) {
    given.push_back("constant");
    shape = RateShape::constant(reader.required_rate("constant", 0, max));
  }
  if (auto ramp = reader.optional_object("ramp")) {
    given.push_back("ramp");
    shape =
        RateShape::ramp(ramp->required_rate("from", 0, max), ramp->required_rate("to", 0, max),
                        ramp->required_duration("over", sim::milliseconds(1), sim::hours(24 * 30)));
    ramp->finish();
  }
  if (auto diurnal = reader.optional_object("diurnal")) {
    given.push_back("diurnal");
    RateShape sine;
    sine.kind = RateShape::Kind::kDiurnal;
    sine.mean_per_second = diurnal->required_rate("mean", 0, max);
    sine.amplitude_per_second = diurnal->required_rate("amplitude", 0, max);
    sine.period = diurnal->required_duration("period", sim::seconds(1), sim::hours(24 * 365));
    sine.phase = diurnal->optional_duration("phase", sim::Duration(0), sim::Duration(0),
                                            sim::hours(24 * 365));
    if (sine.amplitude_per_second > sine.mean_per_second) {
      throw ScenarioError(diurnal->child_path("amplitude"),
                          "at most the mean (" + rate_text(sine.mean_per_second) + ")",
                          rate_text(sine.amplitude_per_second),
                          "the rate mean - amplitude at the trough must not be negative");
    }
    diurnal->finish();
    shape = sine;
  }
  if (auto spike = reader.optional_object("spike")) {
    given.push_back("spike");
    RateShape burst;
    burst.kind = RateShape::Kind::kSpike;
    const sim::Duration longest = sim::hours(24 * 30);
    burst.base_per_second = spike->required_rate("base", 0, max);
    burst.peak_per_second = spike->required_rate("peak", 0, max);
    burst.at = spike->required_duration("at", sim::Duration(0), longest);
    burst.rise = spike->optional_duration("rise", sim::Duration(0), sim::Duration(0), longest);
    burst.hold = spike->optional_duration("hold", sim::Duration(0), sim::Duration(0), longest);
    burst.fall = spike->optional_duration("fall", sim::Duration(0), sim::Duration(0), longest);
    spike->finish();
    shape = burst;
  }
  if (auto replay = reader.optional_object("replay")) {
    given.push_back("replay");
    shape = read_replay(*replay, context);
  }
  reader.finish();
  if (given.size() > 1) {
    throw ScenarioError(reader.path(),
                        "one rate shape: \"constant\", \"ramp\", \"diurnal\", \"spike\" or "
                        "\"replay\"",
                        "the shapes " + quoted_list(given),
                        "a workload whose shape changes goes in \"phases\"");
  }
  return shape;
}

// The replay behind `shape` (if any) must cover `length`.
void check_replay_covers(const std::optional<RateShape>& shape, sim::Duration length,
                         const std::string& path, const std::string& what) {
  if (!shape || shape->kind != RateShape::Kind::kReplay) return;
  const sim::Duration covered =
      sim::minutes(static_cast<int64_t>(shape->per_minute_per_second.size()));
  if (length > covered) {
    throw ScenarioError(path,
                        "a replay that covers " + what + " (" + format_duration_short(length) + ")",
                        "a CSV of " + std::to_string(shape->per_minute_per_second.size()) +
                            " minutes (" + format_duration_short(covered) + ")",
                        "shorten the phase or the run, or export a longer time range");
  }
}

std::optional<ItemSizeDistribution> read_item_sizes(ObjectReader reader) {
  std::vector<std::string> given;
  std::optional<ItemSizeDistribution> sizes;
  if (auto uniform = reader.optional_object("uniform")) {
    given.push_back("uniform");
    ItemSizeDistribution d;
    d.kind = ItemSizeDistribution::Kind::kUniform;
    d.min_bytes = read_item_bytes(*uniform, "min");
    d.max_bytes = read_item_bytes(*uniform, "max");
    if (d.max_bytes < d.min_bytes) {
      throw ScenarioError(uniform->child_path("max"),
                          "a size of at least min (" + format_bytes(d.min_bytes) + ")",
                          format_bytes(d.max_bytes));
    }
    uniform->finish();
    sizes = d;
  }
  if (auto lognormal = reader.optional_object("lognormal")) {
    given.push_back("lognormal");
    ItemSizeDistribution d;
    d.kind = ItemSizeDistribution::Kind::kLognormal;
    d.median_bytes = read_item_bytes(*lognormal, "median");
    d.sigma = lognormal->required_number("sigma", 0, 4);
    lognormal->finish();
    sizes = d;
  }
  if (auto histogram = reader.optional_array("histogram")) {
    given.push_back("histogram");
    histogram->require_size(1, kMaxHistogramBuckets);
    ItemSizeDistribution d;
    d.kind = ItemSizeDistribution::Kind::kHistogram;
    for (size_t i = 0; i < histogram->size(); ++i) {
      ObjectReader bucket = histogram->object(i);
      ItemSizeDistribution::Bucket b;
      b.size_bytes = read_item_bytes(bucket, "size");
      b.weight = static_cast<double>(bucket.required_uint("weight", 1, 1'000'000'000));
      bucket.finish();
      d.buckets.push_back(b);
    }
    sizes = d;
  }
  reader.finish();
  if (given.size() > 1) {
    throw ScenarioError(reader.path(),
                        "one distribution: \"uniform\", \"lognormal\" or \"histogram\"",
                        "the distributions " + quoted_list(given));
  }
  return sizes;
}

void read_workload(ObjectReader reader, WorkloadSpec* workload, sim::Duration duration,
                   const std::string& source) {
  workload->client_hosts_per_az = static_cast<uint32_t>(
      reader.optional_uint("client_hosts_per_az", workload->client_hosts_per_az, 1, 64));
  const bool per_host_rate_given = reader.has("operations_per_second");
  workload->operations_per_second = reader.optional_number(
      "operations_per_second", workload->operations_per_second, 0.001, 10'000'000);
  workload->keys = reader.optional_uint("keys", workload->keys, 1, 100'000'000);
  workload->item_size_bytes =
      reader.optional_bytes("item_size", workload->item_size_bytes, 1, kMaxWorkloadItemBytes);
  if (auto sizes = reader.optional_object("item_size_distribution")) {
    workload->item_size_distribution = read_item_sizes(*sizes);
    if (workload->item_size_distribution && reader.has("item_size")) {
      throw ScenarioError(reader.child_path("item_size_distribution"),
                          "either item_size (one size) or item_size_distribution", "both",
                          "leave out item_size");
    }
  }
  if (auto keys = reader.optional_object("key_distribution")) {
    workload->key_distribution = read_key_distribution(*keys, workload->key_distribution);
  }
  if (auto mix = reader.optional_object("mix")) {
    const MixWeights weights = read_mix(*mix);
    workload->put = weights.put;
    workload->get_strong = weights.get_strong;
    workload->get_eventual = weights.get_eventual;
    workload->put_if_version = weights.put_if_version;
    workload->put_if_absent = weights.put_if_absent;
    workload->delete_item = weights.delete_item;
    workload->update = weights.update;
    workload->query = weights.query;
    workload->scan = weights.scan;
  }
  workload->counters = reader.optional_uint("counters", workload->counters, 1, kMaxCounters);
  const MixWeights mix = mix_weights(*workload);
  const ItemSizeDistribution sizes = workload->item_size_distribution.value_or(
      ItemSizeDistribution::fixed(workload->item_size_bytes));
  if (auto rate = reader.optional_object("rate")) {
    workload->rate = read_rate(*rate, RateContext{source, mix, sizes});
    if (workload->rate && per_host_rate_given) {
      throw ScenarioError(reader.child_path("rate"),
                          "either rate (the whole table's) or operations_per_second (per client "
                          "host)",
                          "both", "leave out operations_per_second");
    }
  }
  if (auto phases = reader.optional_array("phases")) {
    phases->require_size(1, kMaxPhases);
    sim::Duration total(0);
    const uint32_t processes = workload->client_hosts_per_az * model::kReplicasPerGroup;
    for (size_t i = 0; i < phases->size(); ++i) {
      ObjectReader entry = phases->object(i);
      WorkloadPhaseSpec phase;
      phase.duration =
          entry.required_duration("duration", sim::milliseconds(1), sim::hours(24 * 30));
      phase.mix = mix;
      if (auto phase_mix = entry.optional_object("mix")) phase.mix = read_mix(*phase_mix);
      phase.key_distribution = workload->key_distribution;
      if (auto keys = entry.optional_object("key_distribution")) {
        phase.key_distribution = read_key_distribution(*keys, workload->key_distribution);
      }
      std::optional<RateShape> own;
      if (auto rate = entry.optional_object("rate")) {
        own = read_rate(*rate, RateContext{source, phase.mix, sizes});
      }
      entry.finish();
      const std::optional<RateShape>& shape = own ? own : workload->rate;
      check_replay_covers(shape, phase.duration, entry.child_path("duration"), "the phase");
      phase.rate =
          shape ? *shape : RateShape::constant(workload->operations_per_second * processes);
      total += phase.duration;
      workload->phases.push_back(std::move(phase));
    }
    if (total > duration) {
      throw ScenarioError(
          phases->path(),
          "phases that fit in the scenario's duration (" + format_duration_short(duration) + ")",
          "phases of " + format_duration_short(total) + " in all",
          "after the last phase the clients go quiet; lengthen duration or "
          "shorten a phase");
    }
  } else {
    check_replay_covers(workload->rate, duration, reader.child_path("rate"), "the run's duration");
  }
  workload->max_attempts =
      static_cast<uint32_t>(reader.optional_uint("max_attempts", workload->max_attempts, 1, 100));
  workload->attempt_timeout = reader.optional_duration("attempt_timeout", workload->attempt_timeout,
                                                       sim::milliseconds(1), sim::minutes(10));
  workload->verify_after = reader.optional_duration("verify_after", workload->verify_after,
                                                    sim::Duration(0), sim::hours(24));
  reader.finish();
}

void read_checks(ObjectReader reader, ChecksSpec* checks) {
  checks->availability_window = reader.optional_duration(
      "availability_window", checks->availability_window, sim::seconds(1), sim::hours(24));
  checks->linearizability_max_states_per_key =
      reader.optional_uint("linearizability_max_states_per_key",
                           checks->linearizability_max_states_per_key, 1, 1'000'000'000);
  checks->max_quorum_restore_p99 = reader.optional_duration(
      "max_quorum_restore_p99", checks->max_quorum_restore_p99, sim::Duration(0), sim::hours(24));
  reader.finish();
}

}  // namespace

ScenarioSpec parse_scenario(const nlohmann::json& document, const std::string& source) {
  ObjectReader root(document, "$");
  ScenarioSpec spec;
  spec.source = source;
  // "$schema" names the JSON Schema (scenarios/scenario.schema.json) for editors; ignored here.
  root.optional_string("$schema", "");
  spec.name = root.required_string("name");
  spec.description = root.optional_string("description", "");
  spec.duration = root.required_duration("duration", sim::seconds(1), sim::hours(24 * 30));
  spec.heal = root.optional_duration("heal", spec.heal, sim::Duration(0), sim::hours(24));
  if (auto topology = root.optional_object("topology")) read_topology(*topology, &spec.topology);
  if (auto network = root.optional_object("network")) read_network(*network, &spec.network);
  if (auto probe = root.optional_object("probe")) read_probe(*probe, &spec.probe);
  if (auto faults = root.optional_object("faults")) read_faults(*faults, &spec);
  if (auto storage = root.optional_object("storage")) {
    spec.storage.emplace();
    read_storage(*storage, &*spec.storage);
  }
  if (auto workload = root.optional_object("workload")) {
    if (!spec.storage) {
      throw ScenarioError(workload->path(), "a \"storage\" section next to \"workload\"",
                          "a workload without storage",
                          "a workload needs the storage service to run against");
    }
    read_workload(*workload, &spec.workload, spec.duration, source);
  }
  if (auto checks = root.optional_object("checks")) read_checks(*checks, &spec.checks);
  if (spec.storage) {
    if (root.has("probe")) {
      throw ScenarioError(root.child_path("probe"), "no \"probe\" section in a service scenario",
                          "a probe section", "probes run only in world-level scenarios");
    }
    if (spec.topology.az_names.size() != model::kReplicasPerGroup) {
      throw ScenarioError("$.topology.azs", "exactly 3 AZs (one replica of each group per AZ)",
                          std::to_string(spec.topology.az_names.size()) + " AZs");
    }
    if (spec.topology.clock_drift_ppm_bound > spec.storage->max_clock_drift_ppm) {
      throw ScenarioError("$.topology.clock_drift_ppm",
                          "at most storage.max_clock_drift_ppm (" +
                              std::to_string(spec.storage->max_clock_drift_ppm) + ")",
                          std::to_string(spec.topology.clock_drift_ppm_bound),
                          "the leader lease's safety margin is derived from that bound; raise it "
                          "or lower the drift");
    }
    if (spec.storage->splits) {
      // A split's state lives in memory (docs/partitions.md): no fault may restart a storage node.
      const auto restarts = [](sim::FaultKind kind) {
        return kind == sim::FaultKind::kPowerOff || kind == sim::FaultKind::kCrash;
      };
      for (const NamedTimelineFault& fault : spec.timeline) {
        if (restarts(fault.kind)) {
          throw ScenarioError(fault.path, "no power_off or crash with storage.splits",
                              sim::to_string(fault.kind),
                              "a split's state is not kept across a restart yet "
                              "(docs/partitions.md)");
        }
      }
      for (const NamedRandomFault& fault : spec.random_faults) {
        if (restarts(fault.kind)) {
          throw ScenarioError(fault.path, "no power_off or crash with storage.splits",
                              sim::to_string(fault.kind),
                              "a split's state is not kept across a restart yet "
                              "(docs/partitions.md)");
        }
      }
    }
    if (spec.workload.verify_after >= spec.heal) {
      throw ScenarioError("$.workload.verify_after",
                          "a duration shorter than heal (" + sim::format_duration(spec.heal) + ")",
                          sim::format_duration(spec.workload.verify_after),
                          "the read-back pass must finish inside the heal phase");
    }
  }
  root.finish();
  return spec;
}

OperationMix operation_mix(const MixWeights& weights) {
  auto weight = [](double value) { return static_cast<uint32_t>(value * 100.0 + 0.5); };
  OperationMix mix;
  mix.put = weight(weights.put);
  mix.get_strong = weight(weights.get_strong);
  mix.get_eventual = weight(weights.get_eventual);
  mix.put_if_version = weight(weights.put_if_version);
  mix.put_if_absent = weight(weights.put_if_absent);
  mix.delete_item = weight(weights.delete_item);
  mix.update = weight(weights.update);
  mix.query = weight(weights.query);
  mix.scan = weight(weights.scan);
  return mix;
}

MixWeights mix_weights(const WorkloadSpec& workload) {
  MixWeights mix;
  mix.put = workload.put;
  mix.get_strong = workload.get_strong;
  mix.get_eventual = workload.get_eventual;
  mix.put_if_version = workload.put_if_version;
  mix.put_if_absent = workload.put_if_absent;
  mix.delete_item = workload.delete_item;
  mix.update = workload.update;
  mix.query = workload.query;
  mix.scan = workload.scan;
  return mix;
}

std::vector<WorkloadPhase> workload_phases(const WorkloadSpec& workload, uint32_t processes) {
  DYN_ASSERT(processes > 0);
  std::vector<WorkloadPhase> phases;
  const MixWeights mix = mix_weights(workload);
  if (workload.phases.empty()) {
    if (!workload.rate) return phases;
    WorkloadPhase phase;  // open-ended: until the clients stop
    phase.rate = *workload.rate;
    phase.mix = operation_mix(mix);
    phase.keys = workload.key_distribution;
    phases.push_back(phase);
    return phases;
  }
  for (const WorkloadPhaseSpec& spec : workload.phases) {
    WorkloadPhase phase;
    phase.duration = spec.duration;
    phase.rate = spec.rate;
    phase.mix = operation_mix(spec.mix);
    phase.keys = spec.key_distribution;
    phases.push_back(phase);
  }
  return phases;
}

ScenarioSpec load_scenario(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json document = parse_json_file(path);
  for (const std::string& assignment : overrides) apply_override(document, assignment);
  ScenarioSpec spec = parse_scenario(document, path);
  spec.overrides = overrides;
  return spec;
}

}  // namespace dynasim::gameday
