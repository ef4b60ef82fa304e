// The splits a game day saw, for the summary's `partitions` section and partitions.csv
// (docs/summary.md; docs/partitions.md, "Splitting a running partition").
//
// It stands outside the system: it watches the storage nodes through
// model::StorageObserver::on_split_committed (every replica of the parent reports the commit it
// applied; the first report of a child counts) and changes nothing.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/storage_protocol.h"
#include "sim/simulation.h"

namespace dynasim::gameday {

class SplitRecorder final : public model::StorageObserver {
 public:
  // REQUIRES: simulation outlives the recorder.
  explicit SplitRecorder(const sim::Simulation* simulation) : simulation_(simulation) {}

  void on_applied(model::GroupId, uint32_t, model::LogIndex, uint64_t) override {}
  void on_lease(model::GroupId, uint32_t, sim::SimTime, sim::SimTime) override {}
  void on_strong_read(model::GroupId, uint32_t, sim::SimTime) override {}
  void on_split_committed(model::GroupId parent, model::GroupId child, uint32_t replica,
                          sim::Address node, uint64_t parent_begin, uint64_t parent_end,
                          uint64_t split_hash, bool for_size, sim::SimTime decided_local,
                          sim::SimTime local_now) override;

  struct Split {
    sim::SimTime at;  // true time of the first commit report
    uint32_t parent = 0;
    uint32_t child = 0;
    uint64_t parent_begin = 0;
    uint64_t parent_end = 0;
    uint64_t split_hash = 0;
    bool for_size = false;
    sim::Duration duration;  // from the leader's decision to the commit (node clocks)
  };
  const std::vector<Split>& splits() const { return splits_; }

  // The group whose range holds `hash` now: `initial` (the placement's group) or the newest
  // child whose range holds it.
  uint32_t group_for(uint32_t initial, uint64_t hash) const;

  // [{time_s, parent, children: [parent, child], split_hash (hex), reason, duration_s}, ...]
  nlohmann::json report() const;

 private:
  const sim::Simulation* simulation_;
  std::vector<Split> splits_;
  std::map<uint32_t, size_t> by_child_;  // child group id -> index in splits_
};

}  // namespace dynasim::gameday
