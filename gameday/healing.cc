#include "gameday/healing.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "gameday/history.h"
#include "gameday/units.h"

namespace dynasim::gameday {
namespace {

nlohmann::json percentiles(std::vector<double> seconds) {
  if (seconds.empty()) return {{"count", 0}};
  std::sort(seconds.begin(), seconds.end());
  // Nearest rank: the smallest value with at least p of the values at or below it.
  auto rank = [&](uint32_t per_ten_thousand) {
    return seconds[nearest_rank_index(seconds.size(), per_ten_thousand)];
  };
  auto round3 = [](double v) { return std::round(v * 1000.0) / 1000.0; };
  return {{"count", seconds.size()},
          {"p50", round3(rank(5'000))},
          {"p99", round3(rank(9'900))},
          {"max", round3(seconds.back())}};
}

size_t voters(const model::Configuration& c) {
  return c.voter_count();
}

}  // namespace

sim::SimTime HealingRecorder::true_time_of(sim::Address node, sim::SimTime local_now,
                                           sim::SimTime local_then) const {
  const sim::SimTime now = world_.simulation().now();
  if (local_then >= local_now) return now;
  const sim::Duration back = world_.clock(node.host).true_delay_for(local_now - local_then);
  return back.ns >= now.ns ? sim::SimTime::zero() : now - back;
}

void HealingRecorder::on_replica_lost(model::GroupId group, sim::Address node, uint32_t replica,
                                      sim::SimTime local_now, sim::SimTime local_last_heard) {
  Loss loss;
  loss.group = group;
  loss.replica = replica;
  loss.detected_at = world_.simulation().now();
  loss.lost_at = true_time_of(node, local_now, local_last_heard);
  auto latest = latest_.find(group.value);
  if (latest != latest_.end()) before_[losses_.size()] = latest->second;
  losses_.push_back(loss);
}

void HealingRecorder::on_replica_returned(model::GroupId group, sim::Address node, uint32_t replica,
                                          sim::SimTime local_now) {
  (void)node;
  (void)local_now;
  const sim::SimTime now = world_.simulation().now();
  for (Loss& loss : losses_) {
    if (loss.group != group || loss.replica != replica || loss.returned) continue;
    if (loss.quorum_restored && loss.full_replica) continue;  // healed already
    loss.returned = now;
    if (!loss.two_copies_end) loss.two_copies_end = now;
    if (!loss.quorum_restored) loss.quorum_restored = now;
    if (!loss.full_replica) loss.full_replica = now;
  }
}

void HealingRecorder::on_configuration_committed(model::GroupId group, sim::Address node,
                                                 const model::Configuration& configuration,
                                                 sim::SimTime local_now) {
  (void)node;
  (void)local_now;
  uint64_t& epoch = committed_epoch_[group.value];
  if (configuration.epoch <= epoch && configuration.epoch != 0) return;  // a new leader repeats
  epoch = configuration.epoch;
  latest_[group.value] = configuration;
  ++configurations_committed_;
  const sim::SimTime now = world_.simulation().now();
  if (voters(configuration) < model::kReplicasPerGroup) {
    ++violations_;
    if (first_violation_.empty()) {
      first_violation_ = "group " + std::to_string(group.value) + " committed configuration " +
                         model::to_string(configuration) + " with " +
                         std::to_string(voters(configuration)) + " voters at " +
                         sim::format_time(now) + ": healing reduced the group's redundancy";
    }
  }
  size_t full_voters = 0;
  bool log_voter = false;
  for (const model::Member& m : configuration.members) {
    if (!m.voter) continue;
    if (m.kind == model::MemberKind::kFull) ++full_voters;
    if (m.kind == model::MemberKind::kLog) log_voter = true;
  }
  for (size_t i = 0; i < losses_.size(); ++i) {
    Loss& loss = losses_[i];
    if (loss.group != group) continue;
    const bool lost_is_voter = configuration.is_voter(loss.replica);
    // A voter that was not one when the loss was found: the replacement's copy of the log.
    bool new_voter = false;
    auto before = before_.find(i);
    for (const model::Member& m : configuration.members) {
      if (!m.voter || m.replica == loss.replica) continue;
      if (before != before_.end() && !before->second.is_voter(m.replica)) new_voter = true;
      if (before == before_.end() && m.replica > model::kReplicasPerGroup) new_voter = true;
    }
    if (!loss.two_copies_end && (new_voter || !lost_is_voter)) loss.two_copies_end = now;
    if (!loss.quorum_restored && !lost_is_voter && voters(configuration) >= 3) {
      loss.quorum_restored = now;
    }
    if (!loss.full_replica && !lost_is_voter && full_voters >= 3 && !log_voter) {
      loss.full_replica = now;
    }
  }
}

nlohmann::json HealingRecorder::report() const {
  std::vector<double> two_copies;
  std::vector<double> quorum;
  std::vector<double> full;
  uint64_t unfinished = 0;
  uint64_t returned = 0;
  for (const Loss& loss : losses_) {
    if (loss.returned) ++returned;
    auto seconds = [&](sim::SimTime end) { return (end - loss.lost_at).ns / 1e9; };
    if (loss.two_copies_end) two_copies.push_back(seconds(*loss.two_copies_end));
    if (loss.quorum_restored) quorum.push_back(seconds(*loss.quorum_restored));
    if (loss.full_replica) {
      full.push_back(seconds(*loss.full_replica));
    } else {
      ++unfinished;
    }
  }
  // The five slowest to restore the quorum (or never restored): where to look first.
  std::vector<const Loss*> order;
  for (const Loss& loss : losses_) order.push_back(&loss);
  auto restore_ns = [](const Loss* loss) {
    return loss->quorum_restored ? (*loss->quorum_restored - loss->lost_at).ns : INT64_MAX;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](const Loss* a, const Loss* b) { return restore_ns(a) > restore_ns(b); });
  nlohmann::json slowest = nlohmann::json::array();
  for (size_t i = 0; i < order.size() && i < 5; ++i) {
    const Loss& loss = *order[i];
    auto at = [](const std::optional<sim::SimTime>& t) {
      return t ? sim::format_time(*t) : std::string("never");
    };
    slowest.push_back({{"group", loss.group.value},
                       {"replica", loss.replica},
                       {"lost_at", sim::format_time(loss.lost_at)},
                       {"detected_at", sim::format_time(loss.detected_at)},
                       {"two_copies_at", at(loss.two_copies_end)},
                       {"quorum_restored_at", at(loss.quorum_restored)},
                       {"full_replica_at", at(loss.full_replica)},
                       {"returned_at", at(loss.returned)}});
  }
  // Groups whose latest committed configuration has two voters in one AZ: that AZ's loss takes
  // their majority. Groups that never changed keep the placement's one replica per AZ.
  uint64_t sharing_an_az = 0;
  for (const auto& [group, configuration] : latest_) {
    std::set<uint32_t> azs;
    size_t voter_count = 0;
    for (const model::Member& m : configuration.members) {
      if (!m.voter) continue;
      ++voter_count;
      azs.insert(world_.az_of(sim::HostId(static_cast<uint32_t>(m.endpoint >> 32))).value);
    }
    if (azs.size() < voter_count) ++sharing_an_az;
  }
  return {
      {"events", losses_.size()},
      {"returned_before_healed", returned},
      {"groups_sharing_an_az", sharing_an_az},
      {"slowest", slowest},
      {"unfinished", unfinished},
      {"configurations_committed", configurations_committed_},
      {"time_at_two_copies_s", percentiles(two_copies)},
      {"quorum_restore_s", percentiles(quorum)},
      {"full_replica_s", percentiles(full)},
      {"redundancy",
       {{"passed", passed()}, {"violations", violations_}, {"first_violation", first_violation_}}}};
}

}  // namespace dynasim::gameday
