#include "gameday/scenario.h"

#include "gameday/json_reader.h"

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

}  // namespace

ScenarioSpec parse_scenario(const nlohmann::json& document, const std::string& source) {
  ObjectReader root(document, "$");
  ScenarioSpec spec;
  spec.source = source;
  spec.name = root.required_string("name");
  spec.description = root.optional_string("description", "");
  spec.duration = root.required_duration("duration", sim::seconds(1), sim::hours(24 * 30));
  spec.heal = root.optional_duration("heal", spec.heal, sim::Duration(0), sim::hours(24));
  if (auto topology = root.optional_object("topology")) read_topology(*topology, &spec.topology);
  if (auto network = root.optional_object("network")) read_network(*network, &spec.network);
  if (auto probe = root.optional_object("probe")) read_probe(*probe, &spec.probe);
  if (auto faults = root.optional_object("faults")) read_faults(*faults, &spec);
  root.finish();
  return spec;
}

ScenarioSpec load_scenario(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json document = parse_json_file(path);
  for (const std::string& assignment : overrides) apply_override(document, assignment);
  return parse_scenario(document, path);
}

}  // namespace dynasim::gameday
