#include "gameday/metrics.h"

#include <algorithm>
#include <set>

#include "gameday/history.h"
#include "sim/check.h"

namespace dynasim::gameday {

namespace {

// Milliseconds with microsecond resolution, written from integers (no locale, no rounding
// differences between standard libraries).
void write_ms(std::ostream& out, int64_t ns) {
  if (ns < 0) return;  // an empty cell
  const int64_t us = ns / 1000;
  out << us / 1000 << '.';
  const int64_t fraction = us % 1000;
  if (fraction < 100) out << '0';
  if (fraction < 10) out << '0';
  out << fraction;
}

void write_seconds(std::ostream& out, int64_t ns) {
  write_ms(out, ns / 1000);
}

// Counters that hold a level (the table's provisioned capacity, in units per second), written as
// their value at each interval's end.
bool is_level_counter(std::string_view name) {
  return name.starts_with("capacity.provisioned_");
}

}  // namespace

MetricsRecorder::MetricsRecorder(const sim::Simulation* simulation, const sim::World* world,
                                 sim::Duration interval, PartitionOf partition_of)
    : simulation_(simulation),
      world_(world),
      interval_(interval),
      partition_of_(std::move(partition_of)),
      next_boundary_ns_(interval.ns) {
  DYN_ASSERT(interval_.ns > 0);
  DYN_ASSERT(simulation_ != nullptr && world_ != nullptr);
}

void MetricsRecorder::advance_to(sim::SimTime now) {
  while (now.ns >= next_boundary_ns_) close_interval();
}

void MetricsRecorder::finish_at(sim::SimTime end) {
  advance_to(end);
  if (end.ns > next_boundary_ns_ - interval_.ns) close_interval();
}

void MetricsRecorder::close_interval() {
  Row row = std::move(current_);
  row.end_ns = next_boundary_ns_;
  if (!current_latency_ns_.empty()) {
    const LatencySummary summary = summarize_latency(current_latency_ns_);
    row.latency_p50_ns = summary.p50_ns;
    row.latency_p99_ns = summary.p99_ns;
    row.latency_max_ns = summary.max_ns;
  }
  for (const auto& [name, value] : world_->counters()) {
    auto previous = counters_at_last_close_.find(name);
    const int64_t before = previous == counters_at_last_close_.end() ? 0 : previous->second;
    // Capacity levels: the level at the interval's end, not its increase.
    if (is_level_counter(name)) {
      if (value != 0) row.counter_deltas.emplace(name, value);
      continue;
    }
    if (value != before) row.counter_deltas.emplace(name, value - before);
  }
  counters_at_last_close_ = world_->counters();
  const size_t index = rows_.size();
  for (const auto& [partition, cell] : current_partitions_) {
    partition_cells_.push_back({index, {partition, cell}});
  }
  rows_.push_back(std::move(row));
  current_ = Row{};
  current_latency_ns_.clear();
  current_partitions_.clear();
  next_boundary_ns_ += interval_.ns;
}

void MetricsRecorder::on_attempt_start(uint64_t client_id, uint64_t operation_id,
                                       uint64_t request_id, const model::ClientRequest& request,
                                       sim::Address replica) {
  (void)replica;
  ++current_.attempts;
  const uint32_t partition = partition_of_ ? partition_of_(request.key) : 0;
  ++current_partitions_[partition].attempts;
  attempt_partition_[{client_id, request_id}] = partition;
  // try_emplace: only the first attempt of an operation sets its invoke time.
  operation_invoke_ns_.try_emplace({client_id, operation_id}, simulation_->now().ns);
}

void MetricsRecorder::on_attempt_end(uint64_t client_id, uint64_t request_id,
                                     model::StorageStatus status, bool timed_out,
                                     const std::optional<model::Item>& item) {
  (void)item;
  auto found = attempt_partition_.find({client_id, request_id});
  if (found == attempt_partition_.end()) return;  // the history checker reports this
  const bool success = !timed_out && (status == model::StorageStatus::kOk ||
                                      status == model::StorageStatus::kNotFound ||
                                      status == model::StorageStatus::kConditionFailed);
  if (timed_out) ++current_.attempt_timeouts;
  if (!success) ++current_partitions_[found->second].errors;
  attempt_partition_.erase(found);
}

void MetricsRecorder::on_api_attempt_start(uint64_t client_id, uint64_t operation_id,
                                           uint64_t request_id, const model::ClientRequest& request,
                                           sim::Address replica) {
  if (request.op != model::StorageOp::kScan) {
    on_attempt_start(client_id, operation_id, request_id, request, replica);
    return;
  }
  ++current_.attempts;
  const uint32_t partition = request.scan_group.value;
  ++current_partitions_[partition].attempts;
  attempt_partition_[{client_id, request_id}] = partition;
  operation_invoke_ns_.try_emplace({client_id, operation_id}, simulation_->now().ns);
}

void MetricsRecorder::on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                                         const model::StorageResponse* response) {
  on_attempt_end(client_id, request_id,
                 response == nullptr ? model::StorageStatus::kBusy : response->status,
                 response == nullptr, std::nullopt);
}

void MetricsRecorder::on_api_operation_end(uint64_t client_id, uint64_t operation_id,
                                           const model::ClientResult& result) {
  on_operation_end(client_id, operation_id, result);
}

void MetricsRecorder::on_operation_end(uint64_t client_id, uint64_t operation_id,
                                       const model::ClientResult& result) {
  auto found = operation_invoke_ns_.find({client_id, operation_id});
  if (found == operation_invoke_ns_.end()) return;
  ++current_.operations;
  if (result.succeeded()) {
    ++current_.succeeded;
    current_latency_ns_.push_back(simulation_->now().ns - found->second);
  }
  operation_invoke_ns_.erase(found);
}

void MetricsRecorder::write_metrics_csv(std::ostream& out) const {
  std::set<std::string> counter_names;
  for (const Row& row : rows_) {
    for (const auto& entry : row.counter_deltas) counter_names.insert(entry.first);
  }
  out << "time_s,operations,succeeded,failed,availability,latency_p50_ms,latency_p99_ms,"
         "latency_max_ms,attempts,attempt_timeouts";
  for (const std::string& name : counter_names) out << ',' << name;
  out << '\n';
  for (const Row& row : rows_) {
    write_seconds(out, row.end_ns);
    out << ',' << row.operations << ',' << row.succeeded << ',' << row.operations - row.succeeded
        << ',';
    if (row.operations > 0) {
      // Six decimals from integers: succeeded / operations in millionths, truncated.
      const uint64_t millionths = row.succeeded * 1'000'000 / row.operations;
      out << millionths / 1'000'000 << '.';
      const std::string digits = std::to_string(millionths % 1'000'000);
      out << std::string(6 - digits.size(), '0') << digits;
    }
    out << ',';
    write_ms(out, row.latency_p50_ns);
    out << ',';
    write_ms(out, row.latency_p99_ns);
    out << ',';
    write_ms(out, row.latency_max_ns);
    out << ',' << row.attempts << ',' << row.attempt_timeouts;
    for (const std::string& name : counter_names) {
      auto found = row.counter_deltas.find(name);
      out << ',' << (found == row.counter_deltas.end() ? 0 : found->second);
    }
    out << '\n';
  }
}

void MetricsRecorder::write_partitions_csv(std::ostream& out) const {
  out << "time_s,partition,attempts,errors\n";
  for (const auto& [row, cell] : partition_cells_) {
    write_seconds(out, rows_[row].end_ns);
    out << ',' << cell.first << ',' << cell.second.attempts << ',' << cell.second.errors << '\n';
  }
}

}  // namespace dynasim::gameday
