// Capacity planning (`dynasim plan`, docs/capacity-planning.md): for a scenario's workload, sweep
// the table's capacity settings (provisioned RCU and WCU, provisioned with target-tracking auto
// scaling, on-demand), simulate each one, and report per setting the monthly cost, the throttled
// share of requests, client latency percentiles and the partition count; recommend the cheapest
// setting that meets the SLO.
//
// What each setting runs through (the front door, FrontDoorSimulation): the workload's arrivals
// (open-loop Poisson at the workload's rate, keys from its key distribution, its operation mix and
// item size) hash to partitions of a model::PartitionMap; each attempt is admitted or throttled by
// the model's own admission code on the node that serves it: model::NodeAdmission's allocated and
// burst buckets per partition, the node bucket, and the peer check for burst writes, with the
// nodes' capacity reports exchanged every report interval; on-demand tables also pass the table's
// model::OnDemandCapacity (twice the previous peak); provisioned tables with auto scaling feed
// model::ProvisionedCapacity one data point a minute and re-divide the table's capacity over the
// partitions when it changes (model::allocate_to_partitions). Every partition keeps a
// model::KeyTrafficSampler and model::SplitPolicy decides splits for consumption and size; a
// split completes after its data has moved at split_bytes_per_second, then the map splits.
// Throttled attempts are retried the way the SDK does (max attempts, full-jitter backoff).
//
// What it does not run: replication, disks and the network. An answered attempt's latency is
// drawn from the latencies the full service showed in a calibration run of the same scenario
// (the real game day, at light load, for `calibration` of simulated time), by kind (strong read,
// eventual read, write); a throttled answer costs a strong read's latency. So the plan sees
// throttling, bursting, splits and retries exactly as the model does them, and the storage
// path's latency as the service measured it, but not queueing inside an overloaded storage node.
// This is what makes an hour of a 1,000-partition table fit in minutes (docs/capacity-planning.md
// gives the figures).
//
// What a table-level calculator cannot see and this does: a hot partition that throttles while
// the table as a whole is under its capacity. Every result counts the throttled attempts that
// happened in a second whose table-wide admitted units stayed below the table's capacity
// (`throttled_under_table_capacity`).
//
// Deterministic: each setting's simulation draws from a stream derived from (seed, setting index);
// results do not depend on --jobs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gameday/rate_shape.h"
#include "gameday/scenario.h"
#include "model/capacity_mode.h"
#include "sim/time.h"

namespace dynasim::gameday {

// Prices per unit, read from a data file that names its source and date
// (scenarios/prices/dynamodb-us-east-1.json; `--prices FILE` for another).
struct PriceTable {
  std::string region;
  std::string currency;
  std::string table_class;
  std::string as_of;
  std::string source;
  double provisioned_wcu_hour = 0;
  double provisioned_rcu_hour = 0;
  double on_demand_write_per_million = 0;
  double on_demand_read_per_million = 0;
  double storage_gb_month = 0;
  double hours_per_month = 730;
};
// Throws ScenarioError (gameday/json_reader.h) naming the field on bad input.
PriceTable load_price_table(const std::string& path);
PriceTable parse_price_table(const nlohmann::json& document, const std::string& source);

struct PlanSlo {
  // Throttled attempts over all attempts, in percent.
  double max_throttled_percent = 1.0;
  // Client operation latency p99 in milliseconds (0: not bounded).
  double max_p99_ms = 0;
};
// "throttled=0.5%" or "p99=25ms"; false with `error` set on anything else.
bool parse_slo_term(const std::string& text, PlanSlo* slo, std::string* error);

enum class PlanMode : uint8_t { kProvisioned, kAutoScaling, kOnDemand };
const char* to_string(PlanMode mode);

struct PlanCandidate {
  std::string label;
  PlanMode mode = PlanMode::kProvisioned;
  // kProvisioned: the table's capacity. kAutoScaling: the initial capacity (also the minimum).
  int64_t read_units = 0;
  int64_t write_units = 0;
  int32_t target_utilization_percent = 70;  // kAutoScaling
  int64_t max_read_units = 40'000;          // kAutoScaling
  int64_t max_write_units = 40'000;
  // kProvisioned: the multiple of the peak demand it was made from.
  double factor = 0;
  // True for the setting a table-level calculator would pick: the peak demand, provisioned.
  bool table_level_estimate = false;
  // Found by the search for the cheapest provisioned setting, not on the grid.
  bool searched = false;
};

// What the workload asks of the table, from its rate and mix alone (a table-level calculator's
// view).
struct DemandEstimate {
  double peak_operations_per_second = 0;
  double mean_operations_per_second = 0;
  double peak_read_units_per_second = 0;
  double peak_write_units_per_second = 0;
  double mean_read_units_per_second = 0;
  double mean_write_units_per_second = 0;
  uint64_t table_size_bytes = 0;
};

// A stretch of the workload with its own mix and keys (a scenario's workload phases).
struct PlanPhase {
  sim::Duration start;
  sim::Duration end;
  double strong_read_share = 0;
  double eventual_read_share = 0;
  double write_share = 1;
  KeyDistribution key_distribution;
};

// The workload and table the front door runs, from a scenario.
struct PlanWorkload {
  sim::Duration duration;
  std::function<double(sim::SimTime)> operations_per_second;  // the whole table's offered rate
  double max_operations_per_second = 0;                       // an upper bound of that rate
  uint64_t keys = 0;
  KeyDistribution key_distribution;
  uint64_t item_size_bytes = 0;
  // When set, each operation draws its item's size from it (a read takes a fresh draw as the
  // size of the item it reads: our approximation, since the front door keeps no items).
  std::optional<ItemSizeDistribution> item_sizes;
  double strong_read_share = 0;  // of operations; the rest of reads are eventual
  double eventual_read_share = 0;
  double write_share = 0;
  // When not empty, each arrival takes its mix and keys from the phase it falls in (sorted,
  // contiguous); the shares and key_distribution above are then the first phase's.
  std::vector<PlanPhase> phases;
  uint32_t max_attempts = 5;
  sim::Duration backoff_base = sim::milliseconds(25);  // model::ClientOptions' defaults
  sim::Duration backoff_cap = sim::seconds(2);
  uint32_t partitions = 0;
  uint32_t azs = 3;
  uint32_t nodes_per_az = 1;
  int64_t node_read_units_per_second = 60'000;
  int64_t node_write_units_per_second = 20'000;
  sim::Duration burst_window = sim::seconds(300);
};
// Throws ScenarioError when the scenario has no storage service.
PlanWorkload plan_workload(const ScenarioSpec& spec);
DemandEstimate estimate_demand(const PlanWorkload& workload);

// Latencies of answered attempts from the calibration run, in nanoseconds, by kind.
struct LatencyProfile {
  enum Kind : uint8_t { kStrongRead, kEventualRead, kWrite };
  std::array<std::vector<int64_t>, 3> samples_ns;
};
// Runs the scenario's game day without faults for `calibration` of simulated time at a light
// load and collects its answered attempts' latencies.
LatencyProfile calibrate_latency(const ScenarioSpec& spec, uint64_t seed,
                                 sim::Duration calibration);

struct PlanOptions {
  PlanSlo slo;
  uint64_t seed = 1;
  uint32_t jobs = 1;
  sim::Duration calibration = sim::seconds(20);
  // Provisioned settings at these multiples of the peak demand (reads and writes alike).
  std::vector<double> provisioned_factors = {0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0};
  std::vector<int32_t> auto_scaling_targets = {50, 70};
  // Splits move data at this rate (our assumption: P22 section 4.4 says splits complete "in the
  // order of minutes"; 10 GB at 50 MB/s is 3.4 minutes).
  uint64_t split_bytes_per_second = 50'000'000;
  // After the grid: search for the cheapest provisioned setting that meets the SLO (bisection
  // between the grid's last failing and first passing multiple, or doubling past the grid until
  // one passes, up to the multiple at which every partition gets its ceiling), this many
  // simulations at most.
  uint32_t search_steps = 6;
  // Progress: called after each setting finishes (from the worker thread that ran it).
  std::function<void(size_t done, size_t total)> progress;
};

// One minute of one setting.
struct PlanMinute {
  double minute = 0;
  double offered_per_second = 0;      // operations that arrived
  double throttled_percent = 0;       // of the attempts in the minute
  double read_units_provisioned = 0;  // table capacity in force (on-demand: its instant capacity)
  double write_units_provisioned = 0;
  double read_units_consumed = 0;  // admitted, per second
  double write_units_consumed = 0;
  uint32_t partitions = 0;
};

struct PlanResult {
  PlanCandidate candidate;
  uint64_t operations = 0;
  uint64_t operations_failed = 0;  // every attempt throttled
  uint64_t attempts = 0;
  uint64_t throttled = 0;
  uint64_t throttled_under_table_capacity = 0;
  double throttled_percent = 0;
  double p50_ms = 0, p99_ms = 0, p999_ms = 0;
  uint32_t partitions_initial = 0;
  uint32_t partitions_final = 0;
  uint32_t splits = 0;
  uint32_t scaling_actions = 0;
  double read_cost = 0, write_cost = 0, storage_cost = 0;
  double monthly_cost = 0;
  bool meets_slo = false;
  std::string verdict;  // why it meets or misses the SLO, in words
  std::vector<PlanMinute> minutes;
};

// Runs one setting. `index` separates the settings' random streams.
PlanResult simulate_candidate(const PlanWorkload& workload, const PlanCandidate& candidate,
                              const LatencyProfile& latency, const PriceTable& prices,
                              const PlanOptions& options, uint32_t index);

struct PlanReport {
  std::string scenario;
  std::string scenario_file;
  uint64_t seed = 0;
  PlanSlo slo;
  PriceTable prices;
  DemandEstimate demand;
  PlanWorkload workload;
  std::vector<PlanResult> results;  // in candidate order
  std::optional<size_t> recommended;
};

// The settings to sweep for a demand (docs/capacity-planning.md, "What is swept").
std::vector<PlanCandidate> plan_candidates(const DemandEstimate& demand,
                                           const PlanOptions& options);
// The provisioned setting at `factor` times the peak demand.
PlanCandidate provisioned_candidate(const DemandEstimate& demand, double factor);
// Calibrates, sweeps every candidate on a thread pool of options.jobs and recommends.
PlanReport run_plan(const ScenarioSpec& spec, const PriceTable& prices, const PlanOptions& options);

nlohmann::json plan_json(const PlanReport& report);
std::string plan_markdown(const PlanReport& report);
std::string plan_html(const PlanReport& report);
// Writes plan.json, plan.md, plan.html and the charts (SVG) into `directory`. False on I/O error.
bool write_plan(const PlanReport& report, const std::string& directory);

}  // namespace dynasim::gameday
