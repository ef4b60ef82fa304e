#include "gameday/gac_checker.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "gameday/units.h"
#include "model/admission.h"
#include "sim/check.h"

namespace dynasim::gameday {

namespace {

// capacity units per second over `span` -> milli-units, rounded down.
uint64_t milli_over(uint64_t capacity_units, sim::Duration span) {
  if (span.ns <= 0) return 0;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(capacity_units) *
                               model::kMilliUnitsPerUnit * static_cast<uint64_t>(span.ns) /
                               1'000'000'000);
}

std::string kind_name(model::CapacityKind kind) {
  return kind == model::CapacityKind::kRead ? "read" : "write";
}

}  // namespace

GacChecker::GacChecker(const sim::Simulation* simulation, GacCheckOptions options)
    : simulation_(simulation), options_(std::move(options)) {
  DYN_ASSERT(simulation_ != nullptr);
  DYN_ASSERT(options_.slot_length.ns > 0 && options_.horizon_slots >= 1);
  DYN_ASSERT(!options_.windows.empty());
}

void GacChecker::on_vend(const model::GacVendRecord& record) {
  if (vends_.size() >= options_.max_vends) {
    ++vends_unchecked_;
    return;
  }
  vends_.push_back(Vend{simulation_->now(), record});
}

void GacChecker::finish() {
  if (finished_) return;
  finished_ = true;
  // Vends arrive in true-time order; grouped by bucket they stay in it.
  std::map<model::GacBucketId, std::vector<const Vend*>> by_bucket;
  for (const Vend& vend : vends_) by_bucket[vend.record.bucket].push_back(&vend);
  for (const auto& [bucket, vends] : by_bucket) check_bucket(bucket, vends);
}

void GacChecker::check_bucket(model::GacBucketId bucket, const std::vector<const Vend*>& vends) {
  const sim::Duration slot = options_.slot_length;
  const sim::Duration horizon = slot * options_.horizon_slots;
  // Whole ppm, rounded up, so the bound is computed in integers.
  const uint64_t drift_ppm =
      static_cast<uint64_t>(std::ceil(std::max(0.0, options_.clock_drift_ppm_bound)));
  size_t capacity_from = 0;  // the first vend at or after a - H - U
  for (size_t start = 0; start < vends.size(); ++start) {
    const sim::SimTime a = vends[start]->true_time;
    while (vends[capacity_from]->true_time < a - horizon - slot) ++capacity_from;
    for (const sim::Duration window : options_.windows) {
      const sim::SimTime end = a + window;
      uint64_t capacity = 0;
      for (size_t i = capacity_from; i < start; ++i) {
        capacity = std::max(capacity, vends[i]->record.capacity_units_per_second);
      }
      uint64_t vended = 0;
      bool several_ledgers = false;
      size_t stop = start;
      for (; stop < vends.size() && vends[stop]->true_time <= end; ++stop) {
        const model::GacVendRecord& record = vends[stop]->record;
        vended += record.amount_milli_units;
        capacity = std::max(capacity, record.capacity_units_per_second);
        several_ledgers =
            several_ledgers || record.server_nonce != vends[start]->record.server_nonce;
      }
      uint64_t extra = 0;
      if (several_ledgers) {
        std::map<uint64_t, std::set<int64_t>> slots_by_ledger;
        for (size_t i = start; i < stop; ++i) {
          const model::GacVendRecord& record = vends[i]->record;
          for (int64_t s = record.first_slot; s <= record.last_slot; ++s) {
            slots_by_ledger[record.server_nonce].insert(s);
          }
        }
        std::set<int64_t> all;
        uint64_t sum = 0;
        for (const auto& [ledger, slots] : slots_by_ledger) {
          sum += slots.size();
          all.insert(slots.begin(), slots.end());
        }
        extra = sum - all.size();
      }
      max_extra_slots_ = std::max(max_extra_slots_, extra);
      const uint64_t drift_slack = (milli_over(capacity, window) * drift_ppm + 999'999) / 1'000'000;
      const uint64_t bound = milli_over(capacity, window + slot + horizon) + drift_slack +
                             extra * milli_over(capacity, slot);
      ++windows_checked_;
      if (bound > 0) {
        max_ratio_ = std::max(max_ratio_, static_cast<double>(vended) / static_cast<double>(bound));
      }
      if (vended <= bound) continue;
      ++violations_;
      if (first_violation_.empty()) {
        first_violation_ = "table " + std::to_string(bucket.table.value) + " " +
                           kind_name(bucket.kind) + " bucket: " + std::to_string(vended) +
                           " milli-units vended in the " + format_duration_short(window) +
                           " from " + sim::format_time(a) + ", bound " + std::to_string(bound) +
                           " (capacity " + std::to_string(capacity) +
                           " units/s, extra ledger-slots " + std::to_string(extra) + ")";
      }
    }
  }
}

nlohmann::json GacChecker::report() const {
  nlohmann::json windows = nlohmann::json::array();
  for (const sim::Duration window : options_.windows)
    windows.push_back(format_duration_short(window));
  return {{"passed", passed()},
          {"first_violation", first_violation_},
          {"vends_checked", vends_.size()},
          {"vends_unchecked", vends_unchecked_},
          {"windows_checked", windows_checked_},
          {"violations", violations_},
          {"window_lengths", windows},
          {"max_vended_over_bound", max_ratio_},
          {"max_extra_ledger_slots", max_extra_slots_}};
}

}  // namespace dynasim::gameday
