// The gac check of a game day with global admission control (docs/gac.md, "The bound" and "In a
// game day"; model/gac.h).
//
// P22 section 4.2 has GAC track "the total consumption of the table capacity in terms of tokens";
// the property judged here is that the GAC servers together never vend more of a bucket (the
// table's read or write capacity) than the capacity in force allows plus the bounded slack
// docs/gac.md states. For every vend a (true time) and every window length W of the check:
//
//   vended(a, W) <= C x (W + U + H + W x drift) + C x U x E
//
// - vended(a, W): milli-units all servers vended for the bucket in grants made in [a, a + W];
// - C: the capacity in force, the largest any server metered for the bucket in
//   [a - H - U, a + W]. A slot's budget is fixed when a vend first touches it, with the capacity
//   of that moment, and the window's grants draw from slots no vend touched before a - H - U;
//   capacity changes (auto scaling, on-demand growth) therefore enter the bound as they happened;
// - U the slot length, H the horizon (horizon_slots x U): one slot of rounding at the window's
//   start and the horizon a grant pays ahead (docs/gac.md, "One ledger");
// - drift: the scenario's clock drift bound. Slots are cut on each server's local clock, so a
//   true window of W spans up to W x (1 + drift) of local time;
// - E: the extra ledger-slots of the window's grants (docs/gac.md, "Several ledgers"): over the
//   ledgers (server incarnations) they drew from, the slots each drew from, summed, minus the
//   distinct slots. 0 while one server serves the bucket; a restart or a failover adds at most
//   horizon_slots.
//
// Window lengths: 1 s (a few slots: the bound's fixed slack dominates) and 10 s (several refresh
// intervals: the rate dominates). Our choice: the two regimes the slack and the rate govern.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/gac.h"
#include "sim/simulation.h"
#include "sim/time.h"

namespace dynasim::gameday {

struct GacCheckOptions {
  sim::Duration slot_length = sim::milliseconds(500);  // the servers' GacServerOptions
  uint32_t horizon_slots = 4;
  double clock_drift_ppm_bound = 0;  // the scenario's topology.clock_drift_ppm
  std::vector<sim::Duration> windows = {sim::seconds(1), sim::seconds(10)};
  // Bound on the vends kept (about 100 bytes each); beyond it vends are counted, not judged. Our
  // assumption: nearly six hours of six routers refreshing both buckets four times a second.
  size_t max_vends = 1'000'000;
};

class GacChecker final : public model::GacServerObserver {
 public:
  // REQUIRES: simulation outlives the checker (it stamps vends with true time).
  GacChecker(const sim::Simulation* simulation, GacCheckOptions options);

  void on_vend(const model::GacVendRecord& record) override;

  // Judges every window; call once, after the run.
  void finish();
  bool passed() const { return violations_ == 0; }
  const std::string& first_violation() const { return first_violation_; }
  // {"passed", "first_violation", "vends_checked", "vends_unchecked", "windows_checked",
  //  "violations", "window_lengths", "max_vended_over_bound", "max_extra_ledger_slots"}.
  nlohmann::json report() const;

 private:
  struct Vend {
    sim::SimTime true_time;
    model::GacVendRecord record;
  };
  void check_bucket(model::GacBucketId bucket, const std::vector<const Vend*>& vends);

  const sim::Simulation* simulation_;
  GacCheckOptions options_;
  std::vector<Vend> vends_;
  uint64_t vends_unchecked_ = 0;
  uint64_t windows_checked_ = 0;
  uint64_t violations_ = 0;
  double max_ratio_ = 0;
  uint64_t max_extra_slots_ = 0;
  std::string first_violation_;
  bool finished_ = false;
};

}  // namespace dynasim::gameday
