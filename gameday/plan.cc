#include "gameday/plan.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <queue>
#include <sstream>

#include "gameday/history.h"
#include "gameday/json_reader.h"
#include "gameday/run.h"
#include "gameday/service.h"
#include "gameday/svg_chart.h"
#include "gameday/units.h"
#include "gameday/workload.h"
#include "model/admission.h"
#include "model/item.h"
#include "model/partition_map.h"
#include "model/split_policy.h"
#include "model/storage_protocol.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::gameday {

// ---------------------------------------------------------------------------------------------
// Prices and the SLO

PriceTable parse_price_table(const nlohmann::json& document, const std::string& source) {
  try {
    ObjectReader reader(document, "$");
    PriceTable prices;
    prices.region = reader.required_string("region");
    prices.currency = reader.required_string("currency");
    prices.table_class = reader.required_string("table_class");
    prices.as_of = reader.required_string("as_of");
    prices.source = reader.required_string("source");
    prices.provisioned_wcu_hour = reader.required_number("provisioned_wcu_hour", 0);
    prices.provisioned_rcu_hour = reader.required_number("provisioned_rcu_hour", 0);
    prices.on_demand_write_per_million = reader.required_number("on_demand_write_per_million", 0);
    prices.on_demand_read_per_million = reader.required_number("on_demand_read_per_million", 0);
    prices.storage_gb_month = reader.required_number("storage_gb_month", 0);
    prices.hours_per_month = reader.optional_number("hours_per_month", 730, 1, 744);
    reader.finish();
    return prices;
  } catch (const ScenarioError& error) {
    throw error.with_file(source);
  }
}

PriceTable load_price_table(const std::string& path) {
  return parse_price_table(parse_json_file(path), path);
}

bool parse_slo_term(const std::string& text, PlanSlo* slo, std::string* error) {
  const size_t equals = text.find('=');
  const std::string name = text.substr(0, equals);
  const std::string value = equals == std::string::npos ? "" : text.substr(equals + 1);
  if (name == "throttled" && !value.empty() && value.back() == '%') {
    char* end = nullptr;
    const std::string number = value.substr(0, value.size() - 1);
    const double percent = std::strtod(number.c_str(), &end);
    if (!number.empty() && end == number.c_str() + number.size() && percent >= 0 &&
        percent <= 100) {
      slo->max_throttled_percent = percent;
      return true;
    }
  } else if (name == "p99") {
    try {
      const sim::Duration bound = parse_duration(value);
      if (bound.ns > 0) {
        slo->max_p99_ms = static_cast<double>(bound.ns) / 1e6;
        return true;
      }
    } catch (const std::exception&) {
      // falls through to the error below
    }
  }
  *error =
      "--slo: expected \"throttled=<percent>%\" (e.g. throttled=0.5%) or \"p99=<duration>\" "
      "(e.g. p99=25ms), found \"" +
      text + "\"";
  return false;
}

const char* to_string(PlanMode mode) {
  switch (mode) {
    case PlanMode::kProvisioned:
      return "provisioned";
    case PlanMode::kAutoScaling:
      return "provisioned_auto_scaling";
    case PlanMode::kOnDemand:
      return "on_demand";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// The workload and its demand

namespace {

// The shares of strong reads, eventual reads and writes in a mix. An UpdateItem is a write, a
// Query a strong read; a Scan page counts as one read, half of them strong and half eventual as
// the workload sends them (our approximation: a page reads up to ten items).
void mix_shares(const OperationMix& mix, double* strong, double* eventual, double* writes) {
  const double total = mix.total();
  const double write_weight =
      mix.put + mix.put_if_version + mix.put_if_absent + mix.delete_item + mix.update;
  *strong = total > 0 ? (mix.get_strong + mix.query + mix.scan / 2.0) / total : 0;
  *eventual = total > 0 ? (mix.get_eventual + mix.scan / 2.0) / total : 0;
  *writes = total > 0 ? write_weight / total : 1;
}

}  // namespace

PlanWorkload plan_workload(const ScenarioSpec& spec) {
  if (!spec.storage.has_value()) {
    throw ScenarioError("$.storage", "a service scenario (a \"storage\" section)",
                        "a world-level scenario",
                        "dynasim plan sizes a table: use a scenario with storage and workload");
  }
  const WorkloadSpec& w = spec.workload;
  PlanWorkload workload;
  workload.duration = spec.duration;
  const uint32_t azs = static_cast<uint32_t>(spec.topology.az_names.size());
  // The whole table's phases: one process's share is 1 (gameday/scenario.h, workload_phases).
  const std::vector<WorkloadPhase> phases = workload_phases(w, 1);
  mix_shares(operation_mix(mix_weights(w)), &workload.strong_read_share,
             &workload.eventual_read_share, &workload.write_share);
  workload.key_distribution = w.key_distribution;
  if (phases.empty()) {
    // operations_per_second is per client host (docs/scenarios.md).
    const double table_rate =
        w.operations_per_second * static_cast<double>(w.client_hosts_per_az) * azs;
    workload.operations_per_second = [table_rate](sim::SimTime) { return table_rate; };
    workload.max_operations_per_second = table_rate;
  } else {
    sim::Duration start(0);
    for (const WorkloadPhase& phase : phases) {
      if (start >= spec.duration) break;
      PlanPhase plan_phase;
      plan_phase.start = start;
      const sim::Duration left = spec.duration - start;
      const sim::Duration length = phase.duration < left ? phase.duration : left;
      plan_phase.end = start + length;
      mix_shares(phase.mix, &plan_phase.strong_read_share, &plan_phase.eventual_read_share,
                 &plan_phase.write_share);
      plan_phase.key_distribution = phase.keys;
      workload.phases.push_back(plan_phase);
      workload.max_operations_per_second =
          std::max(workload.max_operations_per_second, phase.rate.max_rate(length));
      start = plan_phase.end;
    }
    const PlanPhase& first = workload.phases.front();
    workload.strong_read_share = first.strong_read_share;
    workload.eventual_read_share = first.eventual_read_share;
    workload.write_share = first.write_share;
    workload.key_distribution = first.key_distribution;
    std::vector<std::pair<PlanPhase, RateShape>> shaped;
    for (size_t i = 0; i < workload.phases.size(); ++i) {
      shaped.emplace_back(workload.phases[i], phases[i].rate);
    }
    workload.operations_per_second = [shaped](sim::SimTime t) {
      const sim::Duration since = t - sim::SimTime::zero();
      for (const auto& [phase, rate] : shaped) {
        if (since >= phase.start && since < phase.end) return rate.rate_at(since - phase.start);
      }
      return 0.0;  // after the last phase the clients issue nothing
    };
  }
  workload.keys = w.keys;
  workload.item_size_bytes = w.item_size_bytes;
  workload.item_sizes = w.item_size_distribution;
  workload.max_attempts = w.max_attempts;
  workload.partitions = spec.storage->partitions;
  workload.azs = azs;
  workload.nodes_per_az = spec.topology.racks_per_az * spec.topology.hosts_per_rack;
  workload.node_read_units_per_second =
      static_cast<int64_t>(spec.storage->node_read_units_per_second);
  workload.node_write_units_per_second =
      static_cast<int64_t>(spec.storage->node_write_units_per_second);
  workload.burst_window = spec.storage->admission_burst_window;
  return workload;
}

DemandEstimate estimate_demand(const PlanWorkload& workload) {
  DemandEstimate demand;
  // Units per operation of each kind: DynamoDB's rounding over the item size distribution.
  const ItemSizeDistribution sizes = workload.item_sizes
                                         ? *workload.item_sizes
                                         : ItemSizeDistribution::fixed(workload.item_size_bytes);
  const double strong = sizes.expected_units(4096);
  const double eventual = strong / 2;
  const double write = sizes.expected_units(1024);
  const int64_t seconds = std::max<int64_t>(1, workload.duration.ns / sim::seconds(1).ns);
  double sum = 0, read_sum = 0, write_sum = 0;
  size_t phase = 0;
  for (int64_t s = 0; s < seconds; ++s) {
    const sim::Duration at = sim::seconds(s);
    const double rate = workload.operations_per_second(sim::SimTime::zero() + at);
    double strong_share = workload.strong_read_share;
    double eventual_share = workload.eventual_read_share;
    double write_share = workload.write_share;
    while (phase + 1 < workload.phases.size() && at >= workload.phases[phase].end) ++phase;
    if (!workload.phases.empty()) {
      strong_share = workload.phases[phase].strong_read_share;
      eventual_share = workload.phases[phase].eventual_read_share;
      write_share = workload.phases[phase].write_share;
    }
    const double reads = rate * (strong_share * strong + eventual_share * eventual);
    const double writes = rate * write_share * write;
    sum += rate;
    read_sum += reads;
    write_sum += writes;
    demand.peak_operations_per_second = std::max(demand.peak_operations_per_second, rate);
    demand.peak_read_units_per_second = std::max(demand.peak_read_units_per_second, reads);
    demand.peak_write_units_per_second = std::max(demand.peak_write_units_per_second, writes);
  }
  const double n = static_cast<double>(seconds);
  demand.mean_operations_per_second = sum / n;
  demand.mean_read_units_per_second = read_sum / n;
  demand.mean_write_units_per_second = write_sum / n;
  demand.table_size_bytes =
      static_cast<uint64_t>(static_cast<double>(workload.keys) * sizes.mean_bytes());
  return demand;
}

// ---------------------------------------------------------------------------------------------
// Calibration: the full service's attempt latencies

namespace {

class LatencyTap final : public model::ClientObserver {
 public:
  LatencyTap(const sim::Simulation& simulation, LatencyProfile& profile)
      : simulation_(simulation), profile_(profile) {}

  void on_attempt_start(uint64_t client_id, uint64_t, uint64_t request_id,
                        const model::ClientRequest& request, sim::Address) override {
    LatencyProfile::Kind kind = LatencyProfile::kWrite;
    if (request.op == model::StorageOp::kGet) {
      kind = request.consistency == model::ReadConsistency::kStrong ? LatencyProfile::kStrongRead
                                                                    : LatencyProfile::kEventualRead;
    }
    started_[{client_id, request_id}] = {simulation_.now().ns, kind};
  }
  void on_attempt_end(uint64_t client_id, uint64_t request_id, model::StorageStatus status,
                      bool timed_out, const std::optional<model::Item>&) override {
    auto it = started_.find({client_id, request_id});
    if (it == started_.end()) return;
    const bool answered = !timed_out && (status == model::StorageStatus::kOk ||
                                         status == model::StorageStatus::kNotFound ||
                                         status == model::StorageStatus::kConditionFailed);
    if (answered)
      profile_.samples_ns[it->second.second].push_back(simulation_.now().ns - it->second.first);
    started_.erase(it);
  }

 private:
  const sim::Simulation& simulation_;
  LatencyProfile& profile_;
  std::map<std::pair<uint64_t, uint64_t>, std::pair<int64_t, LatencyProfile::Kind>> started_;
};

}  // namespace

LatencyProfile calibrate_latency(const ScenarioSpec& spec, uint64_t seed,
                                 sim::Duration calibration) {
  ScenarioSpec quiet = spec;
  quiet.duration = calibration;
  quiet.heal = sim::seconds(4);
  quiet.workload.verify_after = sim::seconds(1);
  quiet.timeline.clear();
  quiet.random_faults.clear();
  // Light load on a few partitions: the storage path's own latency, not a queue's.
  quiet.storage->partitions = std::min<uint32_t>(quiet.storage->partitions, 24);
  quiet.storage->admission = false;
  quiet.workload.operations_per_second = std::min(quiet.workload.operations_per_second, 200.0);
  LatencyProfile profile;
  ScenarioRun run(quiet, seed);
  LatencyTap tap(run.simulation(), profile);
  DYN_ASSERT(run.service() != nullptr);
  run.service()->history().add_tap(&tap);
  run.run_to_end();
  for (auto& samples : profile.samples_ns) std::sort(samples.begin(), samples.end());
  return profile;
}

// ---------------------------------------------------------------------------------------------
// The front door

namespace {

// Latency in log-linear buckets: 32 per power of two (within about 3 percent), so an hour of
// millions of operations keeps a few KB. Percentiles are nearest-rank over buckets and report the
// bucket's upper end.
class LatencyHistogram {
 public:
  void add(int64_t ns) {
    const uint64_t v = static_cast<uint64_t>(std::max<int64_t>(ns, 1));
    ++counts_[index(v)];
    ++total_;
  }
  double percentile_ms(uint32_t per_ten_thousand) const {
    if (total_ == 0) return 0;
    const uint64_t rank = (total_ * per_ten_thousand + 9'999) / 10'000;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<uint64_t>(rank, 1)) return static_cast<double>(upper(i)) / 1e6;
    }
    return static_cast<double>(upper(counts_.size() - 1)) / 1e6;
  }

 private:
  static constexpr int kSub = 32;
  static size_t index(uint64_t v) {
    if (v < kSub) return v;
    const int exponent = 63 - std::countl_zero(v);  // >= 5
    const uint64_t sub = (v >> (exponent - 5)) & (kSub - 1);
    return static_cast<size_t>(kSub + (exponent - 5) * kSub + static_cast<int>(sub));
  }
  static uint64_t upper(size_t i) {
    if (i < kSub) return i;
    const int exponent = static_cast<int>((i - kSub) / kSub) + 5;
    const uint64_t sub = (i - kSub) % kSub;
    return ((kSub + sub + 1) << (exponent - 5)) - 1;
  }
  std::array<uint64_t, kSub + 59 * kSub> counts_{};
  uint64_t total_ = 0;
};

class FrontDoor {
 public:
  FrontDoor(const PlanWorkload& workload, const PlanCandidate& candidate,
            const LatencyProfile& latency, const PriceTable& prices, const PlanOptions& options,
            uint32_t index)
      : w_(workload),
        candidate_(candidate),
        latency_(latency),
        prices_(prices),
        options_(options),
        random_(sim::Random::derive(options.seed, "plan/" + std::to_string(index))),
        keys_(std::max<uint64_t>(workload.keys, 1), index),
        map_(model::PartitionMap::uniform(model::TableId(0), workload.partitions, ids_)) {
    DYN_ASSERT(w_.partitions > 0 && w_.nodes_per_az > 0 && w_.azs > 0);
    key_hashes_.resize(w_.keys);
    for (uint64_t k = 0; k < w_.keys; ++k) {
      key_hashes_[k] = model::partition_hash(workload_key(k).partition);
    }
    sizes_ = w_.item_sizes ? *w_.item_sizes : ItemSizeDistribution::fixed(w_.item_size_bytes);
    table_bytes_ = static_cast<uint64_t>(static_cast<double>(w_.keys) * sizes_.mean_bytes());
    model::AdmissionOptions admission;
    admission.node_read_units_per_second = w_.node_read_units_per_second;
    admission.node_write_units_per_second = w_.node_write_units_per_second;
    admission.burst_window = w_.burst_window;
    const uint32_t nodes = w_.azs * w_.nodes_per_az;
    for (uint32_t n = 0; n < nodes; ++n) {
      nodes_.push_back(
          std::make_unique<model::NodeAdmission>(admission, address(n), 1, sim::SimTime::zero()));
    }
    const sim::SimTime zero = sim::SimTime::zero();
    if (candidate_.mode == PlanMode::kOnDemand) {
      on_demand_read_.emplace(model::OnDemandCapacity::new_table_reads(), zero);
      on_demand_write_.emplace(model::OnDemandCapacity::new_table_writes(), zero);
    } else {
      auto make = [&](int64_t units, int64_t max_units) {
        model::ProvisionedCapacity::Options o;
        o.initial_units = std::max<int64_t>(1, units);
        if (candidate_.mode == PlanMode::kAutoScaling) {
          model::AutoScalingPolicy policy;
          policy.min_units = o.initial_units;
          policy.max_units = std::max(max_units, o.initial_units);
          policy.target_utilization_percent = candidate_.target_utilization_percent;
          o.auto_scaling = policy;
        }
        return model::ProvisionedCapacity(o, zero);
      };
      provisioned_read_.emplace(make(candidate_.read_units, candidate_.max_read_units));
      provisioned_write_.emplace(make(candidate_.write_units, candidate_.max_write_units));
    }
    for (const model::PartitionRange& range : map_.ranges()) add_partition(range, range.id.value);
    reallocate(zero);
    result_.candidate = candidate_;
    result_.partitions_initial = w_.partitions;
  }

  PlanResult run() {
    const int64_t end = w_.duration.ns;
    push(next_arrival(0), kArrival, 0);
    push(sim::seconds(1).ns, kTick, 0);
    push(sampler_period().ns, kPeriod, 0);
    push(sim::minutes(1).ns, kMinute, 0);
    while (!queue_.empty()) {
      const Event event = queue_.top();
      queue_.pop();
      if (event.at_ns > end) break;
      const sim::SimTime now = sim::SimTime::zero() + sim::Duration(event.at_ns);
      switch (event.type) {
        case kArrival:
          arrive(now);
          push(next_arrival(event.at_ns), kArrival, 0);
          break;
        case kAttempt:
          attempt(now, event.arg);
          break;
        case kTick:
          tick(now);
          push(event.at_ns + sim::seconds(1).ns, kTick, 0);
          break;
        case kPeriod:
          decide_splits(now);
          push(event.at_ns + sampler_period().ns, kPeriod, 0);
          break;
        case kMinute:
          close_minute(now);
          push(event.at_ns + sim::minutes(1).ns, kMinute, 0);
          break;
        case kSplitDone:
          finish_split(now, event.arg);
          break;
      }
    }
    if (minute_.attempts > 0 || minute_.arrivals > 0)
      close_minute(sim::SimTime::zero() + w_.duration);
    return finish();
  }

 private:
  enum EventType : uint8_t { kArrival, kAttempt, kTick, kPeriod, kMinute, kSplitDone };
  struct Event {
    int64_t at_ns;
    uint64_t sequence;
    EventType type;
    uint64_t arg;
    bool operator>(const Event& other) const {
      return at_ns != other.at_ns ? at_ns > other.at_ns : sequence > other.sequence;
    }
  };
  enum OpKind : uint8_t { kStrongRead, kEventualRead, kWrite };
  struct Operation {
    uint64_t key = 0;
    OpKind kind = kWrite;
    int64_t first_ns = 0;
    uint32_t attempts = 0;
    model::CapacityUnits cost;
  };
  struct Partition {
    model::PartitionRange range;
    std::array<uint32_t, 3> nodes{};  // node index per AZ
    uint32_t leader = 0;              // index into nodes
    std::unique_ptr<model::KeyTrafficSampler> sampler;
    bool splitting = false;
    bool live = true;
  };
  struct MinuteCounters {
    uint64_t arrivals = 0;
    uint64_t attempts = 0;
    uint64_t throttled = 0;
    int64_t read_milli = 0;
    int64_t write_milli = 0;
  };

  static sim::Address address(uint32_t node) {
    return sim::Address{sim::HostId(node), model::kStoragePort};
  }
  static sim::Duration sampler_period() { return model::KeyTrafficSamplerOptions{}.period; }

  void push(int64_t at_ns, EventType type, uint64_t arg) {
    queue_.push(Event{at_ns, next_sequence_++, type, arg});
  }

  // Poisson arrivals at the workload's rate, by thinning against its upper bound.
  int64_t next_arrival(int64_t from_ns) {
    const double bound = std::max(w_.max_operations_per_second, 1e-9);
    int64_t t = from_ns;
    for (int guard = 0; guard < 1'000'000; ++guard) {
      t += std::max<int64_t>(1, static_cast<int64_t>(random_.exponential(1e9 / bound)));
      const double rate = w_.operations_per_second(sim::SimTime::zero() + sim::Duration(t));
      if (random_.next_double() * bound < rate) return t;
      if (t > w_.duration.ns) return t;
    }
    return w_.duration.ns + 1;
  }

  void add_partition(const model::PartitionRange& range, uint64_t placement_seed) {
    Partition p;
    p.range = range;
    for (uint32_t a = 0; a < w_.azs && a < 3; ++a) {
      p.nodes[a] =
          a * w_.nodes_per_az + static_cast<uint32_t>((placement_seed + a) % w_.nodes_per_az);
    }
    p.leader = static_cast<uint32_t>(placement_seed % std::min<uint32_t>(w_.azs, 3));
    p.sampler = std::make_unique<model::KeyTrafficSampler>(range.hash_begin, range.hash_end, now_);
    if (partitions_.size() <= range.id.value) partitions_.resize(range.id.value + 1);
    partitions_[range.id.value] = std::move(p);
  }

  uint32_t replicas() const { return std::min<uint32_t>(w_.azs, 3); }

  model::TableCapacity table_capacity(sim::SimTime now) {
    if (candidate_.mode == PlanMode::kOnDemand) {
      // Partitions are capped at their ceiling only; the table limit is OnDemandCapacity's.
      const auto partitions = static_cast<int64_t>(map_.size());
      return model::TableCapacity{model::kPartitionMaxReadUnitsPerSecond * partitions,
                                  model::kPartitionMaxWriteUnitsPerSecond * partitions};
    }
    return model::TableCapacity{provisioned_read_->units(now), provisioned_write_->units(now)};
  }

  // Divides the table's capacity over the live partitions and sets it on every replica's node.
  void reallocate(sim::SimTime now) {
    const model::TableCapacity capacity = table_capacity(now);
    const model::PartitionAllocation share =
        model::allocate_to_partitions(capacity, static_cast<uint32_t>(map_.size()));
    for (const model::PartitionRange& range : map_.ranges()) {
      const Partition& p = partitions_[range.id.value];
      for (uint32_t r = 0; r < replicas(); ++r) {
        nodes_[p.nodes[r]]->set_allocation(model::GroupId(range.id.value), share, now);
      }
    }
    allocated_read_ = capacity.read_units_per_second;
    allocated_write_ = capacity.write_units_per_second;
  }

  void arrive(sim::SimTime now) {
    ++minute_.arrivals;
    ++result_.operations;
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<uint32_t>(operations_.size());
      operations_.emplace_back();
    }
    Operation& op = operations_[slot];
    double strong = w_.strong_read_share;
    double eventual = w_.eventual_read_share;
    const KeyDistribution* keys = &w_.key_distribution;
    if (!w_.phases.empty()) {
      while (phase_ + 1 < w_.phases.size() && now - sim::SimTime::zero() >= w_.phases[phase_].end) {
        ++phase_;
      }
      strong = w_.phases[phase_].strong_read_share;
      eventual = w_.phases[phase_].eventual_read_share;
      keys = &w_.phases[phase_].key_distribution;
    }
    op.key = keys_.draw(*keys, random_);
    const double u = random_.next_double();
    op.kind = u < strong ? kStrongRead : u < strong + eventual ? kEventualRead : kWrite;
    const uint64_t size = sizes_.draw(random_);
    op.cost = op.kind == kWrite
                  ? model::write_capacity(size)
                  : model::read_capacity(size, op.kind == kStrongRead
                                                   ? model::ReadConsistency::kStrong
                                                   : model::ReadConsistency::kEventual);
    op.first_ns = now.ns;
    op.attempts = 0;
    attempt(now, slot);
  }

  int64_t sample_latency(LatencyProfile::Kind kind) {
    const std::vector<int64_t>& samples = latency_.samples_ns[kind];
    if (samples.empty()) return sim::milliseconds(2).ns;  // no calibration samples of this kind
    return samples[random_.uniform_u64(samples.size())];
  }

  void attempt(sim::SimTime now, uint64_t slot) {
    now_ = now;
    Operation& op = operations_[slot];
    ++op.attempts;
    ++minute_.attempts;
    ++result_.attempts;
    const uint64_t hash = key_hashes_[op.key];
    const model::PartitionRange& range = map_.lookup(hash);
    Partition& p = partitions_[range.id.value];
    const model::GroupId group(range.id.value);
    const bool write = op.kind == kWrite;
    const model::CapacityUnits cost = op.cost;
    const int64_t milli = model::to_milli_units(cost);
    bool admitted = true;
    if (candidate_.mode == PlanMode::kOnDemand) {
      model::OnDemandCapacity& table = write ? *on_demand_write_ : *on_demand_read_;
      admitted = table.admit_milli_units(milli, now) == model::OnDemandDecision::kAdmitted;
    }
    if (admitted) {
      if (write) {
        const uint32_t leader = p.nodes[p.leader];
        std::array<sim::Address, 2> others;
        size_t count = 0;
        for (uint32_t r = 0; r < replicas(); ++r) {
          if (r != p.leader) others[count++] = address(p.nodes[r]);
        }
        admitted = model::admitted(nodes_[leader]->admit_write(
            group, cost, std::span<const sim::Address>(others.data(), count), now));
        if (admitted) {
          for (uint32_t r = 0; r < replicas(); ++r) {
            if (r != p.leader) nodes_[p.nodes[r]]->on_replicated_write(cost, now);
          }
        }
      } else {
        const uint32_t replica = op.kind == kStrongRead
                                     ? p.leader
                                     : static_cast<uint32_t>(random_.uniform_u64(replicas()));
        admitted = model::admitted(nodes_[p.nodes[replica]]->admit_read(group, cost, now));
      }
    }
    if (admitted) {
      (write ? minute_.write_milli : minute_.read_milli) += milli;
      (write ? second_write_milli_ : second_read_milli_) += milli;
      (write ? admitted_write_milli_ : admitted_read_milli_) += milli;
      model::TrafficObservation observation;
      observation.partition_hash = hash;
      observation.key_identity = hash;
      (write ? observation.write_milli_units : observation.read_milli_units) =
          static_cast<uint64_t>(milli);
      p.sampler->observe(observation, now);
      const LatencyProfile::Kind kind = op.kind == kStrongRead     ? LatencyProfile::kStrongRead
                                        : op.kind == kEventualRead ? LatencyProfile::kEventualRead
                                                                   : LatencyProfile::kWrite;
      latency_histogram_.add(now.ns + sample_latency(kind) - op.first_ns);
      free_.push_back(static_cast<uint32_t>(slot));
      return;
    }
    ++minute_.throttled;
    ++result_.throttled;
    // Under the table's capacity: the table-wide admitted units of the last whole second stayed
    // below what the table has (a table-level calculator would call this table fine).
    const int64_t table_milli =
        (write ? allocated_write_ : allocated_read_) * model::kMilliUnitsPerUnit;
    const int64_t last_second = write ? last_second_write_milli_ : last_second_read_milli_;
    if (candidate_.mode != PlanMode::kOnDemand && last_second < table_milli) {
      ++result_.throttled_under_table_capacity;
    }
    if (op.attempts >= w_.max_attempts) {
      ++result_.operations_failed;
      free_.push_back(static_cast<uint32_t>(slot));
      return;
    }
    // The SDK's full-jitter backoff after a throttled answer (model/client.h).
    const int64_t ceiling = std::min<int64_t>(
        w_.backoff_cap.ns, w_.backoff_base.ns << std::min<uint32_t>(op.attempts - 1, 30));
    const int64_t backoff = static_cast<int64_t>(
        random_.uniform_u64(static_cast<uint64_t>(std::max<int64_t>(ceiling, 1)) + 1));
    push(now.ns + sample_latency(LatencyProfile::kStrongRead) + backoff, kAttempt, slot);
  }

  void tick(sim::SimTime now) {
    now_ = now;
    last_second_read_milli_ = second_read_milli_;
    last_second_write_milli_ = second_write_milli_;
    second_read_milli_ = second_write_milli_ = 0;
    // Capacity reports between the nodes (model/admission.h): every node hears every other.
    std::vector<model::NodeCapacityReport> reports;
    reports.reserve(nodes_.size());
    for (auto& node : nodes_) reports.push_back(node->make_report(now));
    for (size_t i = 0; i < nodes_.size(); ++i) {
      for (size_t j = 0; j < nodes_.size(); ++j) {
        if (i != j) nodes_[j]->on_capacity_report(reports[i], now);
      }
    }
    if (candidate_.mode != PlanMode::kOnDemand) {
      const int64_t reads = provisioned_read_->units(now);
      const int64_t writes = provisioned_write_->units(now);
      if (reads != allocated_read_ || writes != allocated_write_) reallocate(now);
      unit_seconds_read_ += static_cast<double>(reads);
      unit_seconds_write_ += static_cast<double>(writes);
    }
  }

  void decide_splits(sim::SimTime now) {
    now_ = now;
    const model::SplitPolicy policy;
    std::vector<model::PartitionRange> live(map_.ranges().begin(), map_.ranges().end());
    for (const model::PartitionRange& range : live) {
      Partition& p = partitions_[range.id.value];
      model::PartitionStatus status;
      status.id = range.id;
      status.hash_begin = range.hash_begin;
      status.hash_end = range.hash_end;
      status.size_bytes = size_of(range);
      status.split_in_progress = p.splitting;
      const model::SplitDecision decision = policy.decide(status, *p.sampler, now);
      if (!model::is_split(decision.verdict)) continue;
      p.splitting = true;
      pending_splits_.push_back({range.id, decision.split_hash});
      const double seconds =
          static_cast<double>(status.size_bytes) /
          static_cast<double>(std::max<uint64_t>(options_.split_bytes_per_second, 1));
      push(now.ns + std::max<int64_t>(sim::seconds(1).ns, static_cast<int64_t>(seconds * 1e9)),
           kSplitDone, pending_splits_.size() - 1);
    }
  }

  uint64_t size_of(const model::PartitionRange& range) const {
    const long double width = static_cast<long double>(range.hash_end - range.hash_begin) + 1.0L;
    return static_cast<uint64_t>(static_cast<long double>(table_bytes_) * width /
                                 18446744073709551616.0L);
  }

  void finish_split(sim::SimTime now, uint64_t index) {
    now_ = now;
    const auto [parent, split_hash] = pending_splits_[index];
    const Partition& old = partitions_[parent.value];
    const std::array<uint32_t, 3> parent_nodes = old.nodes;
    const model::SplitOutcome outcome = map_.split(parent, split_hash, ids_, now);
    if (outcome.status != model::SplitStatus::kOk) {
      partitions_[parent.value].splitting = false;
      return;
    }
    for (uint32_t r = 0; r < replicas(); ++r) {
      nodes_[parent_nodes[r]]->remove_partition(model::GroupId(parent.value));
    }
    partitions_[parent.value].live = false;
    partitions_[parent.value].sampler.reset();
    // The low child stays on the parent's nodes; the high child moves to the next node of each
    // AZ (auto-admin's placement spreads children; model/auto_admin.h).
    add_partition(outcome.low, parent_nodes[0] % w_.nodes_per_az);
    partitions_[outcome.low.id.value].nodes = parent_nodes;
    add_partition(outcome.high, parent_nodes[0] % w_.nodes_per_az + 1);
    ++result_.splits;
    reallocate(now);
  }

  void close_minute(sim::SimTime now) {
    PlanMinute minute;
    minute.minute = static_cast<double>(now.ns) / 60e9;
    minute.offered_per_second = static_cast<double>(minute_.arrivals) / 60.0;
    minute.throttled_percent = minute_.attempts ? 100.0 * static_cast<double>(minute_.throttled) /
                                                      static_cast<double>(minute_.attempts)
                                                : 0.0;
    minute.read_units_consumed = static_cast<double>(minute_.read_milli) / 60'000.0;
    minute.write_units_consumed = static_cast<double>(minute_.write_milli) / 60'000.0;
    if (candidate_.mode == PlanMode::kOnDemand) {
      minute.read_units_provisioned =
          static_cast<double>(on_demand_read_->instant_units_per_second(now));
      minute.write_units_provisioned =
          static_cast<double>(on_demand_write_->instant_units_per_second(now));
    } else {
      minute.read_units_provisioned = static_cast<double>(provisioned_read_->units(now));
      minute.write_units_provisioned = static_cast<double>(provisioned_write_->units(now));
      if (provisioned_read_->on_period(now, minute_.read_milli)) ++result_.scaling_actions;
      if (provisioned_write_->on_period(now, minute_.write_milli)) ++result_.scaling_actions;
    }
    minute.partitions = static_cast<uint32_t>(map_.size());
    result_.minutes.push_back(minute);
    minute_ = MinuteCounters{};
  }

  PlanResult finish() {
    PlanResult& r = result_;
    r.partitions_final = static_cast<uint32_t>(map_.size());
    r.throttled_percent =
        r.attempts ? 100.0 * static_cast<double>(r.throttled) / static_cast<double>(r.attempts)
                   : 0.0;
    r.p50_ms = latency_histogram_.percentile_ms(5'000);
    r.p99_ms = latency_histogram_.percentile_ms(9'900);
    r.p999_ms = latency_histogram_.percentile_ms(9'990);
    const double seconds = std::max(1.0, static_cast<double>(w_.duration.ns) / 1e9);
    const double month_seconds = prices_.hours_per_month * 3600.0;
    if (candidate_.mode == PlanMode::kOnDemand) {
      // Request units consumed, scaled from the simulated period to a month.
      r.read_cost = static_cast<double>(admitted_read_milli_) / 1000.0 / 1e6 *
                    prices_.on_demand_read_per_million * month_seconds / seconds;
      r.write_cost = static_cast<double>(admitted_write_milli_) / 1000.0 / 1e6 *
                     prices_.on_demand_write_per_million * month_seconds / seconds;
    } else {
      // The capacity in force, averaged over the simulated period, for a month.
      const double ticks = std::max(1.0, std::floor(seconds));
      r.read_cost =
          unit_seconds_read_ / ticks * prices_.provisioned_rcu_hour * prices_.hours_per_month;
      r.write_cost =
          unit_seconds_write_ / ticks * prices_.provisioned_wcu_hour * prices_.hours_per_month;
    }
    r.storage_cost =
        static_cast<double>(table_bytes_) / (1024.0 * 1024 * 1024) * prices_.storage_gb_month;
    r.monthly_cost = r.read_cost + r.write_cost + r.storage_cost;
    const bool throttling_ok = r.throttled_percent <= options_.slo.max_throttled_percent;
    const bool latency_ok = options_.slo.max_p99_ms <= 0 || r.p99_ms <= options_.slo.max_p99_ms;
    r.meets_slo = throttling_ok && latency_ok;
    std::ostringstream why;
    why.precision(3);
    if (r.meets_slo) {
      why << "meets the SLO";
    } else {
      if (!throttling_ok) {
        why << "throttled " << r.throttled_percent << "% > " << options_.slo.max_throttled_percent
            << "%";
        if (r.throttled_under_table_capacity > 0) {
          why << " (" << r.throttled_under_table_capacity
              << " throttles while the table was under its capacity: hot partitions)";
        }
      }
      if (!latency_ok) {
        if (!throttling_ok) why << "; ";
        why << "p99 " << r.p99_ms << " ms > " << options_.slo.max_p99_ms << " ms";
      }
    }
    r.verdict = why.str();
    return r;
  }

  const PlanWorkload& w_;
  PlanCandidate candidate_;
  const LatencyProfile& latency_;
  const PriceTable& prices_;
  const PlanOptions& options_;
  sim::Random random_;
  KeyPicker keys_;
  model::PartitionIdSource ids_;
  model::PartitionMap map_;
  size_t phase_ = 0;  // the phase of the latest arrival
  std::vector<uint64_t> key_hashes_;
  ItemSizeDistribution sizes_;
  uint64_t table_bytes_ = 0;
  std::vector<std::unique_ptr<model::NodeAdmission>> nodes_;
  std::vector<Partition> partitions_;  // by partition id
  std::optional<model::ProvisionedCapacity> provisioned_read_, provisioned_write_;
  std::optional<model::OnDemandCapacity> on_demand_read_, on_demand_write_;
  int64_t allocated_read_ = 0, allocated_write_ = 0;
  std::vector<std::pair<model::PartitionId, uint64_t>> pending_splits_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  uint64_t next_sequence_ = 0;
  std::vector<Operation> operations_;
  std::vector<uint32_t> free_;
  sim::SimTime now_ = sim::SimTime::zero();
  MinuteCounters minute_;
  int64_t second_read_milli_ = 0, second_write_milli_ = 0;
  int64_t last_second_read_milli_ = 0, last_second_write_milli_ = 0;
  int64_t admitted_read_milli_ = 0, admitted_write_milli_ = 0;
  double unit_seconds_read_ = 0, unit_seconds_write_ = 0;
  LatencyHistogram latency_histogram_;
  PlanResult result_;
};

}  // namespace

PlanResult simulate_candidate(const PlanWorkload& workload, const PlanCandidate& candidate,
                              const LatencyProfile& latency, const PriceTable& prices,
                              const PlanOptions& options, uint32_t index) {
  FrontDoor door(workload, candidate, latency, prices, options, index);
  return door.run();
}

// ---------------------------------------------------------------------------------------------
// The sweep

namespace {
int64_t whole_units(double value) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(value)));
}
}  // namespace

PlanCandidate provisioned_candidate(const DemandEstimate& demand, double factor) {
  PlanCandidate c;
  c.mode = PlanMode::kProvisioned;
  c.factor = factor;
  c.read_units = whole_units(demand.peak_read_units_per_second * factor);
  c.write_units = whole_units(demand.peak_write_units_per_second * factor);
  char label[96];
  std::snprintf(label, sizeof label, "provisioned %.3gx peak (%lld RCU, %lld WCU)", factor,
                static_cast<long long>(c.read_units), static_cast<long long>(c.write_units));
  c.label = label;
  c.table_level_estimate = factor == 1.0;
  return c;
}

std::vector<PlanCandidate> plan_candidates(const DemandEstimate& demand,
                                           const PlanOptions& options) {
  std::vector<PlanCandidate> candidates;
  auto units = whole_units;
  for (double factor : options.provisioned_factors) {
    candidates.push_back(provisioned_candidate(demand, factor));
  }
  for (int32_t target : options.auto_scaling_targets) {
    PlanCandidate c;
    c.mode = PlanMode::kAutoScaling;
    c.target_utilization_percent = target;
    // Starts (and never goes below) the mean demand at the target utilization.
    c.read_units = units(demand.mean_read_units_per_second * 100.0 / target);
    c.write_units = units(demand.mean_write_units_per_second * 100.0 / target);
    c.max_read_units =
        std::max<int64_t>(c.read_units, units(demand.peak_read_units_per_second * 4));
    c.max_write_units =
        std::max<int64_t>(c.write_units, units(demand.peak_write_units_per_second * 4));
    c.label = "auto scaling, target " + std::to_string(target) + "%";
    candidates.push_back(c);
  }
  PlanCandidate on_demand;
  on_demand.mode = PlanMode::kOnDemand;
  on_demand.label = "on-demand";
  candidates.push_back(on_demand);
  return candidates;
}

namespace {

// The cheapest provisioned multiple that meets the SLO, searched past the grid: throttling falls
// as the multiple grows (more allocation per partition), so bisection between a failing and a
// passing multiple converges on the boundary; with no passing one, the multiple doubles until
// one passes or every partition's share reaches its ceiling (more capacity cannot help then).
void search_provisioned(PlanReport& report, const LatencyProfile& latency, const PriceTable& prices,
                        const PlanOptions& options) {
  double failing = 0;
  double passing = 0;
  for (const PlanResult& r : report.results) {
    if (r.candidate.mode != PlanMode::kProvisioned) continue;
    if (r.meets_slo && (passing == 0 || r.candidate.factor < passing)) passing = r.candidate.factor;
  }
  for (const PlanResult& r : report.results) {
    if (r.candidate.mode != PlanMode::kProvisioned || r.meets_slo) continue;
    if ((passing == 0 || r.candidate.factor < passing) && r.candidate.factor > failing) {
      failing = r.candidate.factor;
    }
  }
  if (failing == 0) return;  // the smallest multiple swept already meets it, or none was swept
  const DemandEstimate& d = report.demand;
  const double partitions = report.workload.partitions;
  double ceiling_factor = 0;
  if (d.peak_read_units_per_second > 0) {
    ceiling_factor = std::max(ceiling_factor, model::kPartitionMaxReadUnitsPerSecond * partitions /
                                                  d.peak_read_units_per_second);
  }
  if (d.peak_write_units_per_second > 0) {
    ceiling_factor = std::max(ceiling_factor, model::kPartitionMaxWriteUnitsPerSecond * partitions /
                                                  d.peak_write_units_per_second);
  }
  for (uint32_t step = 0; step < options.search_steps; ++step) {
    double factor;
    if (passing == 0) {
      if (failing >= ceiling_factor) return;
      factor = std::min(failing * 2, ceiling_factor);
    } else {
      factor = (failing + passing) / 2;
      if (passing - failing < 0.05 * passing) return;
    }
    PlanCandidate candidate = provisioned_candidate(d, factor);
    candidate.searched = true;
    candidate.table_level_estimate = false;
    candidate.label += " (search)";
    PlanResult result = simulate_candidate(report.workload, candidate, latency, prices, options,
                                           static_cast<uint32_t>(report.results.size()));
    (result.meets_slo ? passing : failing) = factor;
    report.results.push_back(std::move(result));
    if (options.progress) options.progress(report.results.size(), report.results.size());
  }
}

}  // namespace

PlanReport run_plan(const ScenarioSpec& spec, const PriceTable& prices,
                    const PlanOptions& options) {
  PlanReport report;
  report.scenario = spec.name;
  report.scenario_file = spec.source;
  report.seed = options.seed;
  report.slo = options.slo;
  report.prices = prices;
  report.workload = plan_workload(spec);
  report.demand = estimate_demand(report.workload);
  const LatencyProfile latency = calibrate_latency(spec, options.seed, options.calibration);
  const std::vector<PlanCandidate> candidates = plan_candidates(report.demand, options);
  report.results.resize(candidates.size());
  std::atomic<size_t> done{0};
  {
    boost::asio::thread_pool pool(std::max<uint32_t>(1, options.jobs));
    for (size_t i = 0; i < candidates.size(); ++i) {
      boost::asio::post(pool, [&, i] {
        report.results[i] = simulate_candidate(report.workload, candidates[i], latency, prices,
                                               options, static_cast<uint32_t>(i));
        const size_t finished = ++done;
        if (options.progress) options.progress(finished, candidates.size());
      });
    }
    pool.join();
  }
  search_provisioned(report, latency, prices, options);
  for (size_t i = 0; i < report.results.size(); ++i) {
    const PlanResult& r = report.results[i];
    if (!r.meets_slo) continue;
    if (!report.recommended || r.monthly_cost < report.results[*report.recommended].monthly_cost) {
      report.recommended = i;
    }
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Reports

namespace {

std::string money(double value) {
  char text[48];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}
std::string fixed(double value, int digits) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

// The charts, by file name.
std::vector<std::pair<std::string, std::string>> plan_charts(const PlanReport& report) {
  std::vector<std::pair<std::string, std::string>> charts;
  SvgChart throttling("Throttled attempts per minute", "minute", "throttled %");
  for (const PlanResult& r : report.results) {
    std::vector<std::pair<double, double>> points;
    for (const PlanMinute& m : r.minutes) points.emplace_back(m.minute, m.throttled_percent);
    throttling.add_series(r.candidate.label, points);
  }
  charts.emplace_back("plan-throttling.svg", throttling.render());

  SvgChart cost("Monthly cost and throttling per setting",
                "monthly cost (" + report.prices.currency + ")", "throttled %");
  for (const PlanResult& r : report.results) {
    cost.add_series(r.candidate.label, {{r.monthly_cost, r.throttled_percent}}, /*markers=*/true);
  }
  charts.emplace_back("plan-cost.svg", cost.render());

  // Capacity against consumption for the recommended setting and the table-level estimate.
  for (size_t i = 0; i < report.results.size(); ++i) {
    const PlanResult& r = report.results[i];
    const bool recommended = report.recommended && *report.recommended == i;
    if (!recommended && !r.candidate.table_level_estimate) continue;
    SvgChart capacity("Write capacity and consumption: " + r.candidate.label, "minute",
                      "write units / s");
    std::vector<std::pair<double, double>> provisioned, consumed, offered_partitions;
    for (const PlanMinute& m : r.minutes) {
      provisioned.emplace_back(m.minute, m.write_units_provisioned);
      consumed.emplace_back(m.minute, m.write_units_consumed);
    }
    capacity.add_series("capacity", provisioned);
    capacity.add_series("consumed", consumed);
    charts.emplace_back(
        recommended ? "plan-recommended-capacity.svg" : "plan-table-level-capacity.svg",
        capacity.render());
  }
  return charts;
}

}  // namespace

nlohmann::json plan_json(const PlanReport& report) {
  nlohmann::json results = nlohmann::json::array();
  for (const PlanResult& r : report.results) {
    nlohmann::json minutes = nlohmann::json::array();
    for (const PlanMinute& m : r.minutes) {
      minutes.push_back({{"minute", m.minute},
                         {"offered_per_second", m.offered_per_second},
                         {"throttled_percent", m.throttled_percent},
                         {"read_units_capacity", m.read_units_provisioned},
                         {"write_units_capacity", m.write_units_provisioned},
                         {"read_units_consumed", m.read_units_consumed},
                         {"write_units_consumed", m.write_units_consumed},
                         {"partitions", m.partitions}});
    }
    results.push_back(
        {{"label", r.candidate.label},
         {"mode", to_string(r.candidate.mode)},
         {"read_units", r.candidate.read_units},
         {"write_units", r.candidate.write_units},
         {"target_utilization_percent", r.candidate.target_utilization_percent},
         {"table_level_estimate", r.candidate.table_level_estimate},
         {"operations", r.operations},
         {"operations_failed", r.operations_failed},
         {"attempts", r.attempts},
         {"throttled", r.throttled},
         {"throttled_percent", r.throttled_percent},
         {"throttled_under_table_capacity", r.throttled_under_table_capacity},
         {"latency_ms", {{"p50", r.p50_ms}, {"p99", r.p99_ms}, {"p999", r.p999_ms}}},
         {"partitions",
          {{"initial", r.partitions_initial}, {"final", r.partitions_final}, {"splits", r.splits}}},
         {"scaling_actions", r.scaling_actions},
         {"monthly_cost",
          {{"read", r.read_cost},
           {"write", r.write_cost},
           {"storage", r.storage_cost},
           {"total", r.monthly_cost}}},
         {"meets_slo", r.meets_slo},
         {"verdict", r.verdict},
         {"minutes", minutes}});
  }
  const DemandEstimate& d = report.demand;
  return {{"scenario", report.scenario},
          {"scenario_file", report.scenario_file},
          {"seed", report.seed},
          {"slo",
           {{"max_throttled_percent", report.slo.max_throttled_percent},
            {"max_p99_ms", report.slo.max_p99_ms}}},
          {"prices",
           {{"region", report.prices.region},
            {"currency", report.prices.currency},
            {"as_of", report.prices.as_of},
            {"source", report.prices.source}}},
          {"demand",
           {{"peak_operations_per_second", d.peak_operations_per_second},
            {"mean_operations_per_second", d.mean_operations_per_second},
            {"peak_read_units_per_second", d.peak_read_units_per_second},
            {"peak_write_units_per_second", d.peak_write_units_per_second},
            {"mean_read_units_per_second", d.mean_read_units_per_second},
            {"mean_write_units_per_second", d.mean_write_units_per_second},
            {"table_size_bytes", d.table_size_bytes}}},
          {"partitions", report.workload.partitions},
          {"recommended", report.recommended
                              ? nlohmann::json(report.results[*report.recommended].candidate.label)
                              : nlohmann::json(nullptr)},
          {"results", results}};
}

std::string plan_markdown(const PlanReport& report) {
  std::ostringstream md;
  const DemandEstimate& d = report.demand;
  md << "# Capacity plan: " << report.scenario << "\n\n";
  md << "Scenario `" << report.scenario_file << "`, seed " << report.seed << ", "
     << report.workload.partitions << " partitions, "
     << fixed(sim::to_seconds(report.workload.duration) / 60.0, 1)
     << " simulated minutes. SLO: throttled attempts at most " << report.slo.max_throttled_percent
     << "%";
  if (report.slo.max_p99_ms > 0) md << ", p99 at most " << report.slo.max_p99_ms << " ms";
  md << ".\n\n";
  md << "Demand from the rate and mix alone (what a table-level calculator sees): peak "
     << fixed(d.peak_operations_per_second, 0)
     << " operations/s = " << fixed(d.peak_read_units_per_second, 0) << " RCU and "
     << fixed(d.peak_write_units_per_second, 0) << " WCU; mean "
     << fixed(d.mean_read_units_per_second, 0) << " RCU and "
     << fixed(d.mean_write_units_per_second, 0) << " WCU.\n\n";
  if (report.recommended) {
    const PlanResult& r = report.results[*report.recommended];
    md << "**Recommended: " << r.candidate.label << "**, " << money(r.monthly_cost) << " "
       << report.prices.currency << " a month, " << fixed(r.throttled_percent, 3)
       << "% throttled, p99 " << fixed(r.p99_ms, 2) << " ms.\n\n";
  } else {
    md << "**No setting swept meets the SLO.** Look at the throttles under table capacity below: "
          "they come from hot partitions, which more table capacity does not fix.\n\n";
  }
  md << "| setting | monthly cost (" << report.prices.currency
     << ") | throttled % | under table capacity | p50 ms | p99 ms | p999 ms | partitions | splits "
        "| "
        "SLO |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const PlanResult& r : report.results) {
    md << "| " << r.candidate.label
       << (r.candidate.table_level_estimate ? " (table-level estimate)" : "") << " | "
       << money(r.monthly_cost) << " | " << fixed(r.throttled_percent, 3) << " | "
       << r.throttled_under_table_capacity << " | " << fixed(r.p50_ms, 2) << " | "
       << fixed(r.p99_ms, 2) << " | " << fixed(r.p999_ms, 2) << " | " << r.partitions_initial
       << " → " << r.partitions_final << " | " << r.splits << " | " << r.verdict << " |\n";
  }
  md << "\n![throttling](plan-throttling.svg)\n\n![cost](plan-cost.svg)\n\n";
  if (report.recommended) md << "![recommended](plan-recommended-capacity.svg)\n\n";
  md << "![table-level estimate](plan-table-level-capacity.svg)\n\n";
  md << "Prices: " << report.prices.region << ", " << report.prices.table_class << ", as of "
     << report.prices.as_of << ". Source: " << report.prices.source << "\n\n";
  md << "These are model estimates (docs/capacity-planning.md says what the front door simulates "
        "and what it takes from the calibration run); check them against your table's metrics.\n";
  return md.str();
}

std::string plan_html(const PlanReport& report) {
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Capacity plan: "
       << xml_escape(report.scenario)
       << "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
          "text-align:right}td:first-child,td:last-child{text-align:left}"
          "tr.rec{background:#e6f4e6}tr.miss{color:#a00}</style></head><body>\n";
  html << "<h1>Capacity plan: " << xml_escape(report.scenario) << "</h1>\n";
  const std::string md = plan_markdown(report);
  // The summary paragraphs of the Markdown, before its table.
  const size_t table = md.find("| setting");
  std::istringstream lines(md.substr(0, table));
  std::string line;
  std::getline(lines, line);  // the title
  while (std::getline(lines, line)) {
    if (!line.empty()) html << "<p>" << xml_escape(line) << "</p>\n";
  }
  html << "<table><tr><th>setting</th><th>monthly cost (" << xml_escape(report.prices.currency)
       << ")</th><th>throttled %</th><th>under table capacity</th><th>p50 ms</th><th>p99 ms</th>"
          "<th>p999 ms</th><th>partitions</th><th>splits</th><th>SLO</th></tr>\n";
  for (size_t i = 0; i < report.results.size(); ++i) {
    const PlanResult& r = report.results[i];
    const bool recommended = report.recommended && *report.recommended == i;
    html << "<tr class=\""
         << (recommended   ? "rec"
             : r.meets_slo ? ""
                           : "miss")
         << "\"><td>" << xml_escape(r.candidate.label)
         << (r.candidate.table_level_estimate ? " (table-level estimate)" : "") << "</td><td>"
         << money(r.monthly_cost) << "</td><td>" << fixed(r.throttled_percent, 3) << "</td><td>"
         << r.throttled_under_table_capacity << "</td><td>" << fixed(r.p50_ms, 2) << "</td><td>"
         << fixed(r.p99_ms, 2) << "</td><td>" << fixed(r.p999_ms, 2) << "</td><td>"
         << r.partitions_initial << " → " << r.partitions_final << "</td><td>" << r.splits
         << "</td><td>" << xml_escape(r.verdict) << "</td></tr>\n";
  }
  html << "</table>\n";
  for (const auto& [name, svg] : plan_charts(report)) html << "<div>" << svg << "</div>\n";
  html << "<p>Prices: " << xml_escape(report.prices.source) << "</p>\n</body></html>\n";
  return html.str();
}

bool write_plan(const PlanReport& report, const std::string& directory) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) return false;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream out(directory + "/" + name);
    out << text;
    return static_cast<bool>(out);
  };
  bool ok = write("plan.json", plan_json(report).dump(2) + "\n");
  ok = write("plan.md", plan_markdown(report)) && ok;
  ok = write("plan.html", plan_html(report)) && ok;
  for (const auto& [name, svg] : plan_charts(report)) ok = write(name, svg) && ok;
  return ok;
}

}  // namespace dynasim::gameday
