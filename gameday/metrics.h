// The time series of a run: what the clients saw and what the service counted, per interval of
// true simulated time, written as CSV next to summary.json (docs/scenarios.md, "Metrics").
//
// It stands outside the system (CONVENTIONS.md rule 10): it watches the clients through
// model::ClientObserver (tapped off the HistoryRecorder) and reads the world's counters
// (sim::MetricSink, fed by the model's env.metrics().add calls) at interval boundaries. The
// driver calls advance_to() before each event, so a row holds exactly the events of its interval;
// it schedules nothing, so the run's trace_hash is the same with or without it.
//
// Two files:
// - metrics.csv, one row per interval: time_s (the interval's end), the clients' operations
//   ended, succeeded and failed, availability, whole-operation latency p50/p99/max of the
//   operations that succeeded in it, attempts and attempt timeouts, then every world counter's
//   increase in the interval (a column per counter name, sorted; counters first seen later are
//   zero before). With a capacity controller (docs/admission.md):
//   capacity.consumed_read_milli_units and capacity.consumed_write_milli_units are the units
//   admitted in the interval; capacity.provisioned_read_units and capacity.provisioned_write_units
//   are levels, the table's capacity at the interval's end.
// - partitions.csv, long form: time_s, partition, attempts, errors: the attempts the clients sent
//   to each partition's group in the interval and how many ended without a success (a timeout or
//   an error status). Only rows with attempts are written. It feeds the per-partition heat map
//   of tools/plot.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/client.h"
#include "sim/pair_hash.h"
#include "sim/world.h"

namespace dynasim::gameday {

class MetricsRecorder final : public model::ClientObserver {
 public:
  // The partition (replication group) a key's requests go to; may be empty (world-level runs).
  using PartitionOf = std::function<uint32_t(const model::PrimaryKey&)>;

  // REQUIRES: interval > 0; the simulation and the world outlive the recorder.
  MetricsRecorder(const sim::Simulation* simulation, const sim::World* world,
                  sim::Duration interval, PartitionOf partition_of);

  // Closes every interval that ends at or before `now` (true time). Call before executing an
  // event at `now`, and once at the end of the run with the end time.
  void advance_to(sim::SimTime now);
  // The run ended at `end`: closes the intervals up to it, and a last, partial one when `end` is
  // not on a boundary (its row is stamped with the boundary after `end`).
  void finish_at(sim::SimTime end);

  // model::ClientObserver
  void on_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                        const model::ClientRequest& request, sim::Address replica) override;
  void on_attempt_end(uint64_t client_id, uint64_t request_id, model::StorageStatus status,
                      bool timed_out, const std::optional<model::Item>& item) override;
  void on_operation_end(uint64_t client_id, uint64_t operation_id,
                        const model::ClientResult& result) override;
  // UpdateItem, Query and Scan count alike; a Scan's partition is the group it reads.
  void on_api_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                            const model::ClientRequest& request, sim::Address replica) override;
  void on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                          const model::StorageResponse* response) override;
  void on_api_operation_end(uint64_t client_id, uint64_t operation_id,
                            const model::ClientResult& result) override;

  void write_metrics_csv(std::ostream& out) const;
  void write_partitions_csv(std::ostream& out) const;

  sim::Duration interval() const { return interval_; }
  size_t rows() const { return rows_.size(); }

 private:
  struct Row {
    int64_t end_ns = 0;
    uint64_t operations = 0;
    uint64_t succeeded = 0;
    uint64_t attempts = 0;
    uint64_t attempt_timeouts = 0;
    int64_t latency_p50_ns = -1;  // -1: no operation succeeded in the interval
    int64_t latency_p99_ns = -1;
    int64_t latency_max_ns = -1;
    std::map<std::string, int64_t, std::less<>> counter_deltas;  // nonzero only
  };
  struct PartitionCell {
    uint64_t attempts = 0;
    uint64_t errors = 0;
  };
  void close_interval();

  const sim::Simulation* simulation_;
  const sim::World* world_;
  sim::Duration interval_;
  PartitionOf partition_of_;
  int64_t next_boundary_ns_;

  // The interval being filled.
  Row current_;
  std::vector<int64_t> current_latency_ns_;
  std::map<uint32_t, PartitionCell> current_partitions_;

  // In flight: (client, request id) -> partition; (client, operation id) -> first invoke time.
  // Looked up by key only, never iterated (sim/pair_hash.h).
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint32_t, sim::PairHash> attempt_partition_;
  std::unordered_map<std::pair<uint64_t, uint64_t>, int64_t, sim::PairHash> operation_invoke_ns_;

  std::map<std::string, int64_t, std::less<>> counters_at_last_close_;
  std::vector<Row> rows_;
  // (row index, partition) -> cell, for rows with attempts.
  std::vector<std::pair<size_t, std::pair<uint32_t, PartitionCell>>> partition_cells_;
};

}  // namespace dynasim::gameday
