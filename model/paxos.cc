#include "model/paxos.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <utility>

#include "model/codec.h"
#include "sim/check.h"

namespace dynasim::model {
namespace {

// take_ready() must be called after every input; this catches a caller that never drains.
constexpr size_t kMaxReadyMessages = 4096;

std::string index_string(LogIndex index) {
  return std::to_string(index.value);
}

constexpr uint8_t kConfigurationFormat = 1;

using codec::put_u32;
using codec::put_u64;
using codec::put_u8;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Configurations.

const Member* Configuration::find(uint32_t replica) const {
  for (const Member& member : members) {
    if (member.replica == replica) return &member;
  }
  return nullptr;
}

bool Configuration::is_voter(uint32_t replica) const {
  const Member* member = find(replica);
  return member != nullptr && member->voter;
}

size_t Configuration::voter_count() const {
  return static_cast<size_t>(
      std::count_if(members.begin(), members.end(), [](const Member& m) { return m.voter; }));
}

bool Configuration::has_quorum(const std::vector<uint32_t>& replicas) const {
  size_t votes = 0;
  for (const Member& member : members) {
    if (member.voter &&
        std::find(replicas.begin(), replicas.end(), member.replica) != replicas.end()) {
      ++votes;
    }
  }
  return voter_count() > 0 && votes >= quorum();
}

std::vector<uint8_t> Configuration::encode() const {
  std::vector<uint8_t> out;
  out.reserve(17 + members.size() * 14);
  put_u8(out, kConfigurationFormat);
  put_u64(out, epoch);
  put_u32(out, next_replica);
  put_u32(out, static_cast<uint32_t>(members.size()));
  for (const Member& member : members) {
    put_u32(out, member.replica);
    put_u8(out, static_cast<uint8_t>(member.kind));
    put_u8(out, member.voter ? 1 : 0);
    put_u64(out, member.endpoint);
  }
  return out;
}

bool Configuration::decode(const std::vector<uint8_t>& bytes, Configuration* out) {
  codec::Reader in{bytes};
  if (in.get(1) != kConfigurationFormat) return false;
  Configuration decoded;
  decoded.epoch = in.get(8);
  decoded.next_replica = static_cast<uint32_t>(in.get(4));
  const uint64_t count = in.get(4);
  if (!in.ok || count > 64) return false;
  for (uint64_t i = 0; i < count && in.ok; ++i) {
    Member member;
    member.replica = static_cast<uint32_t>(in.get(4));
    const uint64_t kind = in.get(1);
    const uint64_t voter = in.get(1);
    member.endpoint = in.get(8);
    if (kind > 1 || voter > 1 || member.replica == 0 || member.replica >= decoded.next_replica) {
      return false;
    }
    if (!decoded.members.empty() && decoded.members.back().replica >= member.replica) return false;
    member.kind = static_cast<MemberKind>(kind);
    member.voter = voter == 1;
    decoded.members.push_back(member);
  }
  if (!in.ok || in.at != bytes.size()) return false;
  *out = std::move(decoded);
  return true;
}

Configuration Configuration::of_voters(const std::vector<uint32_t>& replicas) {
  Configuration configuration;
  for (uint32_t replica : replicas) {
    configuration.members.push_back(Member{replica, MemberKind::kFull, true, 0});
    configuration.next_replica = std::max(configuration.next_replica, replica + 1);
  }
  std::sort(configuration.members.begin(), configuration.members.end(),
            [](const Member& a, const Member& b) { return a.replica < b.replica; });
  return configuration;
}

std::string to_string(const Configuration& configuration) {
  // "e2 {1 2 4L 5(learner)}"
  std::string text = "e" + std::to_string(configuration.epoch) + " {";
  for (size_t i = 0; i < configuration.members.size(); ++i) {
    const Member& member = configuration.members[i];
    if (i > 0) text += " ";
    text += std::to_string(member.replica);
    if (member.kind == MemberKind::kLog) text += "L";
    if (!member.voter) text += "(learner)";
  }
  return text + "}";
}

const char* to_string(ConfigChange::Kind kind) {
  switch (kind) {
    case ConfigChange::Kind::kAddLearner:
      return "add-learner";
    case ConfigChange::Kind::kPromote:
      return "promote";
    case ConfigChange::Kind::kRemove:
      return "remove";
  }
  return "?";
}

sim::Duration lease_safety_margin(const PaxosOptions& options) {
  DYN_ASSERT(options.max_clock_drift_ppm >= 0.0 && options.max_clock_drift_ppm < 100000.0);
  DYN_ASSERT(options.lease_duration > sim::Duration(0));
  // The drift bound in parts per billion, rounded up so the margin never undershoots it.
  const auto drift_ppb = static_cast<int64_t>(std::ceil(options.max_clock_drift_ppm * 1000.0));
  // margin = D * 2r / (1 + r), r = drift_ppb / 1e9, rounded up (docs/paxos.md, "The lease"),
  // plus one clock tick at each end: a reading is a whole number of nanoseconds, truncated, so the
  // interval a grant or lease really spans may be one tick shorter or longer than its readings.
  constexpr int64_t kClockResolutionTicks = 2;
  const __int128 numerator = static_cast<__int128>(options.lease_duration.ns) * 2 * drift_ppb;
  const __int128 denominator = 1'000'000'000 + static_cast<__int128>(drift_ppb);
  const auto derived =
      static_cast<int64_t>((numerator + denominator - 1) / denominator) + kClockResolutionTicks;
  return std::max(sim::Duration(derived), options.min_lease_safety_margin);
}

sim::Duration leader_lease_duration(const PaxosOptions& options) {
  const sim::Duration lease = options.lease_duration - lease_safety_margin(options);
  DYN_ASSERT(lease > sim::Duration(0));
  return lease;
}

PaxosReplica::PaxosReplica(PaxosOptions options, sim::Random random, RecoveredState recovered,
                           sim::SimTime local_now)
    : options_(std::move(options)),
      random_(random),
      leader_lease_(leader_lease_duration(options_)) {
  base_config_ = recovered.configuration ? *recovered.configuration
                                          : Configuration::of_voters(options_.members);
  base_config_index_ = recovered.applied_through;
  for (size_t i = 0; i < base_config_.members.size(); ++i) {
    DYN_ASSERT(base_config_.members[i].replica < base_config_.next_replica);
    if (i > 0) DYN_ASSERT(base_config_.members[i - 1].replica < base_config_.members[i].replica);
  }
  DYN_ASSERT(options_.self >= 1);
  DYN_ASSERT(options_.heartbeat_interval > sim::Duration(0));
  DYN_ASSERT(options_.election_timeout > options_.heartbeat_interval);
  DYN_ASSERT(options_.leader_check_timeout > sim::Duration(0));
  DYN_ASSERT(options_.max_uncommitted_entries >= 1);
  DYN_ASSERT(options_.max_entries_per_message >= 1);
  DYN_ASSERT(options_.max_promise_entries >= options_.max_uncommitted_entries);

  // The log: every recovered entry, contiguous. Entries at or below the checkpoint stay while the
  // storage layer still has them, so lagging peers can be caught up from them.
  const LogIndex applied = recovered.applied_through;
  if (!recovered.log.empty()) {
    const LogIndex first = recovered.log.front().index;
    DYN_ASSERT(first.value >= 1);
    DYN_ASSERT(first <= applied.next());
    compacted_through_ = LogIndex(first.value - 1);
    for (LogEntry& recovered_entry : recovered.log) {
      DYN_ASSERT(recovered_entry.index == first + log_.size());
      highest_accepted_ballot_ = std::max(highest_accepted_ballot_, recovered_entry.ballot);
      // Configuration entries up to the applied index are part of the recovered configuration.
      if (recovered_entry.index > base_config_index_) note_config_entry(recovered_entry, false);
      log_.push_back(std::move(recovered_entry));
    }
    last_index_ = log_.back().index;
  } else {
    compacted_through_ = applied;
    last_index_ = applied;
  }
  if (applied > last_index_) {
    // The checkpoint is newer than every logged entry.
    log_.clear();
    compacted_through_ = applied;
    last_index_ = applied;
  }
  applied_ = applied;
  // A commit index whose entries never reached the disk is knowledge lost, not a broken promise.
  commit_ = std::min(std::max(recovered.hard_state.commit, applied), last_index_);
  // Accepting in a ballot implies promising it, even if the hard state saying so was not durable.
  promised_ = std::max(recovered.hard_state.promised, highest_accepted_ballot_);
  max_seen_round_ = promised_.round;
  last_queued_hard_state_ = recovered.hard_state;
  if (hard_state() != last_queued_hard_state_) queue_hard_state();

  // A replica that promised anything may have granted a lease before the crash; grants are not
  // persisted, so it honours them by refusing every promise for one full lease_duration.
  grant_until_ = local_now;
  recovery_block_until_ = local_now;
  if (!promised_.is_none() && !options_.plant_no_lease_wait) {
    recovery_block_until_ = local_now + options_.lease_duration;
  }
  reset_election_deadline(local_now);
  emit_committed();
  check_invariants();
}

// ---------------------------------------------------------------------------------------------
// Inputs.

void PaxosReplica::tick(sim::SimTime now) {
  switch (role_) {
    case PaxosRole::kLeader:
      // Without a quorum's acks for a whole election timeout the leader can neither commit nor
      // renew its lease; stepping down lets clients and the leader check see that.
      if (now - leader_->last_quorum_contact >= options_.election_timeout) {
        become_follower(promised_, now);
      } else if (now >= leader_->next_heartbeat_at) {
        send_heartbeats(now);
      }
      break;
    case PaxosRole::kCandidate:
      if (now >= election_->deadline) become_follower(promised_, now);
      break;
    case PaxosRole::kFollower:
      if (check_.active) {
        // No peer said it still hears a leader: either one said it does not, or none answered.
        if (now >= check_.deadline) {
          check_.active = false;
          start_election(now);
        }
      } else if (now >= election_deadline_) {
        start_leader_check(now);
      }
      break;
  }
  check_invariants();
}

void PaxosReplica::step(const PaxosMessage& message, sim::SimTime now) {
  DYN_ASSERT(message.to == options_.self);
  DYN_ASSERT(message.from != options_.self && message.from != 0);
  max_seen_round_ = std::max(max_seen_round_, message.ballot.round);
  switch (message.type) {
    case PaxosMessage::Type::kPrepare:
      on_prepare(message, now);
      break;
    case PaxosMessage::Type::kPromise:
      on_promise(message, now);
      break;
    case PaxosMessage::Type::kAccept:
    case PaxosMessage::Type::kCatchUp:
      on_entries(message, now);
      break;
    case PaxosMessage::Type::kAccepted:
      on_accepted(message, now);
      break;
    case PaxosMessage::Type::kHeartbeat:
      on_heartbeat(message, now);
      break;
    case PaxosMessage::Type::kHeartbeatAck:
      on_heartbeat_ack(message, now);
      break;
    case PaxosMessage::Type::kLeaderCheck:
      on_leader_check(message, now);
      break;
    case PaxosMessage::Type::kLeaderCheckReply:
      on_leader_check_reply(message, now);
      break;
    case PaxosMessage::Type::kNack:
      on_nack(message, now);
      break;
  }
  check_invariants();
}

ProposeResult PaxosReplica::propose(Command command, sim::SimTime now) {
  ProposeResult result;
  if (command.is_noop() || command.is_configuration()) {
    result.status = ProposeStatus::kInvalidCommand;
    return result;
  }
  if (role_ != PaxosRole::kLeader) {
    result.status = ProposeStatus::kNotLeader;
    result.leader_hint = leader_hint();
    return result;
  }
  // Writes wait out the old lease too: a write acknowledged here while the old leader still
  // serves reads from its lease would let that leader return a state without it.
  if (now < leader_->serving_from) {
    result.status = ProposeStatus::kNotServingYet;
    return result;
  }
  if (last_index_ - commit_ >= options_.max_uncommitted_entries) {
    result.status = ProposeStatus::kBusy;
    return result;
  }
  if (last_index_ - compacted_through_ >= options_.max_log_entries) {
    result.status = ProposeStatus::kLogFull;
    return result;
  }
  const LogIndex index = last_index_.next();
  write_entry(LogEntry{index, own_ballot_, std::move(command)});
  for (PeerProgress& peer : leader_->peers) {
    // A peer whose stream is behind gets this entry when its catch-up reaches it.
    if (peer.next == index) send_entries(peer, index, PaxosMessage::Type::kAccept, now);
  }
  advance_leader_commit(now);
  check_invariants();
  result.status = ProposeStatus::kOk;
  result.index = index;
  return result;
}

ProposeResult PaxosReplica::propose_change(const ConfigChange& change, sim::SimTime now) {
  ProposeResult result;
  if (role_ != PaxosRole::kLeader) {
    result.status = ProposeStatus::kNotLeader;
    result.leader_hint = leader_hint();
    return result;
  }
  if (now < leader_->serving_from) {
    result.status = ProposeStatus::kNotServingYet;
    return result;
  }
  // One change at a time, and none before an entry of our own ballot is committed: otherwise a
  // configuration left uncommitted by an earlier leader could be built upon (docs/paxos.md).
  if (change_pending() || commit_ < leader_->noop_index) {
    result.status = ProposeStatus::kChangePending;
    return result;
  }
  if (last_index_ - commit_ >= options_.max_uncommitted_entries) {
    result.status = ProposeStatus::kBusy;
    return result;
  }
  if (last_index_ - compacted_through_ >= options_.max_log_entries) {
    result.status = ProposeStatus::kLogFull;
    return result;
  }
  Configuration next = configuration();
  const Member* target = next.find(change.replica);
  switch (change.kind) {
    case ConfigChange::Kind::kAddLearner: {
      if (next.members.size() >= 16) {
        result.status = ProposeStatus::kInvalidCommand;
        return result;
      }
      Member member{next.next_replica, change.member_kind, false, change.endpoint};
      result.replica = member.replica;
      ++next.next_replica;
      next.members.push_back(member);
      break;
    }
    case ConfigChange::Kind::kPromote: {
      if (target == nullptr || target->voter) {
        result.status = ProposeStatus::kInvalidCommand;
        return result;
      }
      const PeerProgress* peer = find_peer(change.replica);
      if (peer == nullptr || !caught_up(*peer)) {
        result.status = ProposeStatus::kNotCaughtUp;
        return result;
      }
      for (Member& member : next.members) {
        if (member.replica == change.replica) member.voter = true;
      }
      break;
    }
    case ConfigChange::Kind::kRemove: {
      if (target == nullptr || change.replica == options_.self ||
          (target->voter && next.voter_count() <= 1)) {
        result.status = ProposeStatus::kInvalidCommand;
        return result;
      }
      std::erase_if(next.members,
                    [&](const Member& member) { return member.replica == change.replica; });
      break;
    }
  }
  ++next.epoch;
  const LogIndex index = last_index_.next();
  Command command;
  command.id = next.epoch;
  command.bytes = next.encode();
  command.configuration = true;
  write_entry(LogEntry{index, own_ballot_, std::move(command)});
  sync_peers(now);
  for (PeerProgress& peer : leader_->peers) {
    if (peer.next == index) send_entries(peer, index, PaxosMessage::Type::kAccept, now);
  }
  advance_leader_commit(now);
  check_invariants();
  result.status = ProposeStatus::kOk;
  result.index = index;
  return result;
}

bool PaxosReplica::can_serve_strong_read(sim::SimTime now) const {
  if (options_.plant_follower_strong_reads && role_ != PaxosRole::kLeader) return true;
  if (role_ != PaxosRole::kLeader) return false;
  return now >= leader_->serving_from && leader_->lease_until.has_value() &&
         now < *leader_->lease_until && commit_ >= leader_->noop_index;
}

Ready PaxosReplica::take_ready() {
  Ready ready = std::move(ready_);
  ready_ = std::move(spare_ready_);
  spare_ready_ = Ready{};
  return ready;
}

void PaxosReplica::recycle_ready(Ready&& used) {
  used.hard_state.reset();
  used.entries_to_persist.clear();
  used.messages.clear();
  used.committed.clear();
  used.snapshots_needed.clear();
  used.role_changes.clear();
  spare_ready_ = std::move(used);
}

namespace {

bool can_join(const PaxosMessage& earlier, const PaxosMessage& later, uint32_t max_entries) {
  if (earlier.type != later.type || earlier.ballot != later.ballot || earlier.to != later.to ||
      earlier.from != later.from) {
    return false;
  }
  switch (later.type) {
    case PaxosMessage::Type::kAccept:
    case PaxosMessage::Type::kCatchUp:
      return !earlier.entries.empty() && !later.entries.empty() &&
             later.prev_index == earlier.prev_index + earlier.entries.size() &&
             earlier.entries.size() + later.entries.size() <= max_entries &&
             later.commit >= earlier.commit;
    case PaxosMessage::Type::kAccepted:
      return !earlier.rejected && !later.rejected && !earlier.behind && !later.behind &&
             earlier.prev_index <= later.prev_index &&
             later.prev_index <= earlier.accepted_through && later.commit >= earlier.commit &&
             later.last_index >= earlier.last_index;
    default:
      return false;
  }
}

void join(PaxosMessage& earlier, PaxosMessage&& later) {
  if (later.type == PaxosMessage::Type::kAccepted) {
    earlier.accepted_through = std::max(earlier.accepted_through, later.accepted_through);
  } else {
    earlier.entries.insert(earlier.entries.end(), std::make_move_iterator(later.entries.begin()),
                           std::make_move_iterator(later.entries.end()));
  }
  earlier.commit = later.commit;
  earlier.last_index = later.last_index;
}

}  // namespace

void coalesce_messages(std::vector<PaxosMessage>& messages, uint32_t max_entries) {
  if (messages.size() < 2) return;
  std::vector<PaxosMessage> out;
  out.reserve(messages.size());
  // The position in `out` of the latest message to each peer (replica numbers are small).
  std::vector<std::pair<uint32_t, size_t>> latest;
  for (PaxosMessage& message : messages) {
    auto found = std::find_if(latest.begin(), latest.end(),
                              [&](const auto& p) { return p.first == message.to; });
    if (found != latest.end() && can_join(out[found->second], message, max_entries)) {
      join(out[found->second], std::move(message));
      continue;
    }
    out.push_back(std::move(message));
    if (found != latest.end()) {
      found->second = out.size() - 1;
    } else {
      latest.emplace_back(out.back().to, out.size() - 1);
    }
  }
  messages = std::move(out);
}

CompactStatus PaxosReplica::compact(LogIndex through) {
  if (through <= compacted_through_) return CompactStatus::kAlreadyCompacted;
  if (through > applied_) return CompactStatus::kNotApplied;
  while (!log_.empty() && log_.front().index <= through) log_.pop_front();
  compacted_through_ = through;
  // Configuration entries at or below the compaction point fold into the base.
  if (through > base_config_index_) {
    base_config_ = Configuration(configuration_at(through));
    base_config_index_ = through;
    std::erase_if(config_entries_, [&](const auto& e) { return e.first <= through; });
  }
  check_invariants();
  return CompactStatus::kCompacted;
}

InstallSnapshotStatus PaxosReplica::install_snapshot(LogIndex through,
                                                     const Configuration& configuration) {
  // A leader never needs one; a snapshot that arrives after this replica won an election is late.
  if (role_ == PaxosRole::kLeader) return InstallSnapshotStatus::kRefusedWhileLeader;
  if (through <= applied_) return InstallSnapshotStatus::kStale;
  while (!log_.empty() && log_.front().index <= through) log_.pop_front();
  compacted_through_ = through;
  base_config_ = configuration;
  base_config_index_ = through;
  std::erase_if(config_entries_, [&](const auto& e) { return e.first <= through; });
  if (last_index_ < through) last_index_ = through;
  applied_ = through;
  if (commit_ < through) set_commit(through);
  // Entries above the snapshot that were already known chosen are applied now.
  emit_committed();
  check_invariants();
  return InstallSnapshotStatus::kInstalled;
}

std::optional<uint32_t> PaxosReplica::leader_hint() const {
  if (role_ == PaxosRole::kLeader) return options_.self;
  return leader_hint_;
}

std::optional<sim::SimTime> PaxosReplica::lease_expiry() const {
  if (role_ != PaxosRole::kLeader) return std::nullopt;
  return leader_->lease_until;
}

std::optional<sim::SimTime> PaxosReplica::serving_start() const {
  if (role_ != PaxosRole::kLeader) return std::nullopt;
  return leader_->serving_from;
}

sim::SimTime PaxosReplica::next_tick_at() const {
  switch (role_) {
    case PaxosRole::kLeader:
      return std::min(leader_->next_heartbeat_at,
                      leader_->last_quorum_contact + options_.election_timeout);
    case PaxosRole::kCandidate:
      return election_->deadline;
    case PaxosRole::kFollower:
      return check_.active ? check_.deadline : election_deadline_;
  }
  return election_deadline_;
}

const LogEntry* PaxosReplica::entry_at(LogIndex index) const {
  if (index <= compacted_through_ || index > last_index_) return nullptr;
  return &entry(index);
}

const Configuration& PaxosReplica::configuration() const {
  return config_entries_.empty() ? base_config_ : config_entries_.back().second;
}

const Configuration& PaxosReplica::configuration_at(LogIndex index) const {
  DYN_ASSERT(index >= base_config_index_);
  const Configuration* found = &base_config_;
  for (const auto& [at, configuration] : config_entries_) {
    if (at > index) break;
    found = &configuration;
  }
  return *found;
}

bool PaxosReplica::change_pending() const {
  return !config_entries_.empty() && config_entries_.back().first > commit_;
}

bool PaxosReplica::can_lead() const {
  const Member* me = configuration().find(options_.self);
  return me != nullptr && me->voter && me->kind == MemberKind::kFull;
}

std::vector<PeerStatus> PaxosReplica::peer_status() const {
  std::vector<PeerStatus> out;
  if (role_ != PaxosRole::kLeader) return out;
  const Configuration& latest = configuration();
  for (const Member& member : latest.members) {
    if (member.replica == options_.self) continue;
    const PeerProgress* peer = find_peer(member.replica);
    DYN_ASSERT(peer != nullptr);
    out.push_back(PeerStatus{member.replica, member.voter, member.kind, peer->last_heard,
                             peer->match, caught_up(*peer)});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Phase 1.

void PaxosReplica::on_prepare(const PaxosMessage& message, sim::SimTime now) {
  DYN_ASSERT(message.ballot.replica == message.from);
  // A repeated Prepare for the ballot we already promised gets the Promise again: the first one
  // may have been lost.
  const bool repeat = message.ballot == promised_;
  // promised_ names another replica, so we cannot be campaigning or leading in it.
  DYN_ASSERT(!repeat || role_ == PaxosRole::kFollower);
  if (message.ballot < promised_) {
    PaxosMessage nack = reply_to(message, PaxosMessage::Type::kNack);
    nack.ballot = promised_;
    nack.nack_reason = PaxosMessage::NackReason::kBallotTooLow;
    send(std::move(nack));
    return;
  }
  if (!repeat && promise_blocked(now)) {
    PaxosMessage nack = reply_to(message, PaxosMessage::Type::kNack);
    nack.ballot = promised_;
    nack.nack_reason = PaxosMessage::NackReason::kLeaseHeld;
    send(std::move(nack));
    return;
  }
  // The Promise must carry every accepted entry above the candidate's commit. If some are
  // compacted, or there are too many for one message, this replica cannot vouch for them.
  const LogIndex from = std::max(message.commit, compacted_through_);
  const bool too_many = last_index_ > from && last_index_ - from > options_.max_promise_entries;
  if (message.commit < compacted_through_ || too_many) {
    PaxosMessage nack = reply_to(message, PaxosMessage::Type::kNack);
    nack.ballot = promised_;
    nack.nack_reason = PaxosMessage::NackReason::kCandidateBehind;
    send(std::move(nack));
    return;
  }
  if (!repeat) {
    if (role_ != PaxosRole::kFollower) {
      become_follower(message.ballot, now);
    } else {
      set_promised(message.ballot);
    }
    leader_hint_.reset();
    check_.active = false;
    reset_election_deadline(now);
  }
  PaxosMessage promise = reply_to(message, PaxosMessage::Type::kPromise);
  promise.ballot = message.ballot;
  promise.commit = commit_;
  promise.last_index = last_index_;
  for (LogIndex index = from.next(); index <= last_index_; index = index.next()) {
    promise.entries.push_back(entry(index));
  }
  send(std::move(promise));
}

void PaxosReplica::on_promise(const PaxosMessage& message, sim::SimTime now) {
  if (role_ != PaxosRole::kCandidate || message.ballot != own_ballot_) return;
  for (const ReceivedPromise& received : election_->promises) {
    if (received.replica == message.from) return;  // a duplicate
  }
  election_->promises.push_back(ReceivedPromise{message.from, message.commit, message.entries});
  const ElectionPlan plan = plan_election();
  if (election_won(plan)) {
    become_leader(plan, now);
    return;
  }
  const Member* me = plan.chain.back().find(options_.self);
  if (me == nullptr || !me->voter || me->kind != MemberKind::kFull) {
    // The log we would lead with has a configuration that leaves us out (we were removed, or
    // demoted): we cannot lead it. Someone in it will.
    become_follower(promised_, now);
    return;
  }
  // The promises may reveal a configuration with voters we have not asked yet.
  send_prepares(&plan);
}

// The new leader's log, from its own log and the promises so far (P22 section 3; Lamport,
// "Paxos Made Simple", section 3). Above our commit, every slot gets: the value a promiser
// already knows chosen (its commit covers the slot); else the value accepted in the highest
// ballot; else a no-op. Chosen values keep their ballot; the rest are re-proposed in ours.
PaxosReplica::ElectionPlan PaxosReplica::plan_election() const {
  DYN_ASSERT(role_ == PaxosRole::kCandidate);
  ElectionPlan plan;
  const LogIndex base = commit_;
  plan.known_chosen = commit_;
  LogIndex highest = last_index_;
  for (const ReceivedPromise& received : election_->promises) {
    if (!received.entries.empty()) highest = std::max(highest, received.entries.back().index);
    plan.known_chosen = std::max(plan.known_chosen, received.commit);
  }
  // Each promise holds every entry above the Prepare's commit, which is <= base.
  auto promised_entry = [](const ReceivedPromise& received, LogIndex index) -> const LogEntry* {
    if (received.entries.empty()) return nullptr;
    const LogIndex first = received.entries.front().index;
    if (index < first || index > received.entries.back().index) return nullptr;
    const LogEntry& found = received.entries[index - first];
    DYN_ASSERT(found.index == index);
    return &found;
  };
  // The configuration in effect after the known-chosen prefix starts the chain: slots up to
  // known_chosen are decided already, so only the configurations above it govern what the
  // promises must cover.
  plan.chain.push_back(configuration_at(base));
  for (LogIndex index = base.next(); index <= highest; index = index.next()) {
    const LogEntry* own = index <= last_index_ ? &entry(index) : nullptr;
    const LogEntry* chosen = nullptr;
    if (own != nullptr && own->is_hole()) own = nullptr;
    const LogEntry* best = own;
    for (const ReceivedPromise& received : election_->promises) {
      const LogEntry* theirs = promised_entry(received, index);
      if (theirs == nullptr || theirs->is_hole()) continue;
      if (index <= received.commit) {
        DYN_ASSERT(chosen == nullptr || same_command_or_planted(*chosen, *theirs));
        chosen = theirs;
      }
      if (best == nullptr || theirs->ballot > best->ballot) best = theirs;
      // One proposer, one value per slot and ballot.
      DYN_ASSERT(best->ballot != theirs->ballot || best->command == theirs->command);
    }
    if (index <= plan.known_chosen) {
      // Some promiser's commit covers this slot, and it sent the entry.
      DYN_ASSERT(chosen != nullptr);
      plan.log.push_back(*chosen);
    } else {
      plan.log.push_back(
          LogEntry{index, own_ballot_, best != nullptr ? best->command : Command::noop()});
    }
    const Command& command = plan.log.back().command;
    if (command.is_configuration()) {
      Configuration next;
      const bool decoded = Configuration::decode(command.bytes, &next);
      DYN_ASSERT_MSG(decoded, "a configuration entry does not decode");
      if (index <= plan.known_chosen) {
        plan.chain.back() = std::move(next);
      } else {
        plan.chain.push_back(std::move(next));
      }
    }
  }
  return plan;
}

// The slots above our commit are governed by each configuration in the plan's chain in turn; a
// value chosen in any of them was accepted by a majority of that configuration, so we must have
// heard from a majority of every one (docs/paxos.md, "Membership changes").
bool PaxosReplica::election_won(const ElectionPlan& plan) const {
  std::vector<uint32_t> voters{options_.self};
  for (const ReceivedPromise& received : election_->promises) voters.push_back(received.replica);
  const Member* me = plan.chain.back().find(options_.self);
  if (me == nullptr || !me->voter || me->kind != MemberKind::kFull) return false;
  if (options_.plant_single_config_election) {
    return configuration_at(commit_).has_quorum(voters);
  }
  return std::all_of(plan.chain.begin(), plan.chain.end(),
                     [&](const Configuration& c) { return c.has_quorum(voters); });
}

void PaxosReplica::send_prepares(const ElectionPlan* plan) {
  std::vector<uint32_t> targets;
  auto add_voters = [&](const Configuration& configuration) {
    for (const Member& member : configuration.members) {
      if (member.voter && member.replica != options_.self &&
          std::find(targets.begin(), targets.end(), member.replica) == targets.end()) {
        targets.push_back(member.replica);
      }
    }
  };
  if (plan != nullptr) {
    for (const Configuration& configuration : plan->chain) add_voters(configuration);
  } else {
    // Our own log's configurations above the commit, before any promise came in.
    add_voters(configuration_at(commit_));
    for (const auto& [at, configuration] : config_entries_) {
      if (at > commit_) add_voters(configuration);
    }
  }
  for (uint32_t target : targets) {
    if (std::find(election_->asked.begin(), election_->asked.end(), target) !=
        election_->asked.end()) {
      continue;
    }
    election_->asked.push_back(target);
    PaxosMessage prepare;
    prepare.type = PaxosMessage::Type::kPrepare;
    prepare.to = target;
    prepare.ballot = own_ballot_;
    prepare.commit = commit_;
    send(std::move(prepare));
  }
}

bool PaxosReplica::lead_first_ballot(sim::SimTime now) {
  const Ballot first{1, options_.self};
  if (role_ != PaxosRole::kFollower || promised_ != first || !highest_accepted_ballot_.is_none() ||
      last_index_ != commit_) {
    return false;
  }
  const Member* me = configuration_at(commit_).find(options_.self);
  if (me == nullptr || !me->voter || me->kind != MemberKind::kFull) return false;
  own_ballot_ = first;
  max_seen_round_ = std::max(max_seen_round_, first.round);
  role_ = PaxosRole::kCandidate;
  leader_hint_.reset();
  election_ = ElectionState{};
  note_role(PaxosRole::kCandidate, own_ballot_);
  // Nothing above the commit anywhere: the plan is the empty log over the current configuration.
  ElectionPlan plan;
  plan.known_chosen = commit_;
  plan.chain.push_back(configuration_at(commit_));
  become_leader(plan, now, /*serve_at_once=*/true);
  check_invariants();
  return true;
}

void PaxosReplica::become_leader(const ElectionPlan& plan, sim::SimTime now, bool serve_at_once) {
  DYN_ASSERT(role_ == PaxosRole::kCandidate);
  for (const LogEntry& planned : plan.log) {
    const LogEntry* own = planned.index <= last_index_ ? &entry(planned.index) : nullptr;
    if (own != nullptr && own->is_hole()) own = nullptr;
    if (planned.index <= plan.known_chosen) {
      if (own == nullptr || own->command != planned.command) write_entry(planned);
      continue;
    }
    write_entry(planned);
  }
  // A no-op in our ballot follows, so strong reads can wait for an entry of our own.
  write_entry(LogEntry{last_index_.next(), own_ballot_, Command::noop()});
  set_commit(plan.known_chosen);
  emit_committed();

  role_ = PaxosRole::kLeader;
  election_.reset();
  leader_hint_ = options_.self;
  check_.active = false;
  LeaderState state;
  state.commit_at_election = commit_;
  state.noop_index = last_index_;
  // The wait for the old lease: one full lease_duration on our clock (docs/paxos.md). The
  // planted bug serves at once, with a lease it never earned.
  state.serving_from =
      options_.plant_no_lease_wait || serve_at_once ? now : now + options_.lease_duration;
  if (options_.plant_no_lease_wait) state.lease_until = now + leader_lease_;
  state.next_heartbeat_at = now;
  state.last_quorum_contact = now;
  leader_ = std::move(state);
  sync_peers(now);
  note_role(PaxosRole::kLeader, own_ballot_);
  for (PeerProgress& peer : leader_->peers) {
    send_entries(peer, peer.next, PaxosMessage::Type::kAccept, now);
  }
  // A heartbeat at once starts the lease (and the self-grant) without waiting a full interval.
  send_heartbeats(now);
  advance_leader_commit(now);
}

// ---------------------------------------------------------------------------------------------
// Phase 2 and heartbeats, follower side.

// Common to every message from a leader (Accept, CatchUp, Heartbeat): refuse a stale ballot;
// otherwise follow it, note that we heard it, and grant it the lease.
bool PaxosReplica::accept_leader_message(const PaxosMessage& message, sim::SimTime now) {
  DYN_ASSERT(message.ballot.replica == message.from);
  if (message.ballot < promised_) {
    PaxosMessage nack = reply_to(message, PaxosMessage::Type::kNack);
    nack.ballot = promised_;
    nack.nack_reason = PaxosMessage::NackReason::kBallotTooLow;
    send(std::move(nack));
    return false;
  }
  if (message.ballot > promised_) {
    if (role_ != PaxosRole::kFollower) {
      become_follower(message.ballot, now);
    } else {
      set_promised(message.ballot);
    }
  }
  // Equal ballots name the same proposer; only a follower can receive its leader's messages.
  DYN_ASSERT(role_ == PaxosRole::kFollower);
  leader_hint_ = message.from;
  last_heard_from_leader_ = now;
  check_.active = false;
  reset_election_deadline(now);
  if (!options_.plant_no_lease_wait) {
    // The grant: no promise to another ballot before now + lease_duration on our clock. It only
    // grows, so a delayed duplicate never shortens a grant already made.
    grant_until_ = std::max(grant_until_, now + options_.lease_duration);
  }
  return true;
}

void PaxosReplica::on_entries(const PaxosMessage& message, sim::SimTime now) {
  if (!accept_leader_message(message, now)) return;
  PaxosMessage reply = reply_to(message, PaxosMessage::Type::kAccepted);
  reply.ballot = message.ballot;
  reply.prev_index = message.prev_index;
  // Up to one pipeline window past our log we hold the place with holes (an earlier Accept was
  // lost or is late); further than that we ask for a catch-up instead of writing many holes.
  if (message.prev_index > last_index_ &&
      message.prev_index - last_index_ <= options_.max_uncommitted_entries) {
    while (last_index_ < message.prev_index) {
      write_entry(LogEntry{last_index_.next(), Ballot{}, Command::noop()});
    }
  }
  if (message.prev_index > last_index_) {
    reply.rejected = true;
    reply.accepted_through = message.prev_index;
    advance_follower_commit(message.commit, message.ballot, LogIndex(1), LogIndex(0));
  } else {
    const LogIndex first = message.prev_index.next();
    const LogIndex through = message.prev_index + message.entries.size();
    for (size_t i = 0; i < message.entries.size(); ++i) {
      const LogEntry& incoming = message.entries[i];
      DYN_ASSERT(incoming.index == first + i);
      DYN_ASSERT(!incoming.is_hole() && incoming.ballot <= message.ballot);
      if (incoming.index <= compacted_through_) continue;  // held in our checkpoint
      const LogEntry& held_or_none =
          incoming.index <= last_index_ ? entry(incoming.index) : incoming;
      if (incoming.index <= commit_) {
        // Chosen here already: Paxos says the leader holds the same value.
        DYN_ASSERT(same_command_or_planted(held_or_none, incoming));
        continue;
      }
      if (incoming.index <= last_index_ && held_or_none == incoming) continue;  // a duplicate
      write_entry(incoming);
    }
    // Report the whole run of the leader's entries from `first` on: entries of its ballot past
    // this message arrived earlier (out of order) and are the leader's too.
    LogIndex run_end = through;
    const LogIndex scan_limit =
        std::min(last_index_, through + uint64_t{options_.max_uncommitted_entries});
    while (run_end >= compacted_through_ && run_end < scan_limit &&
           entry(run_end.next()).ballot == message.ballot) {
      run_end = run_end.next();
    }
    reply.accepted_through = run_end;
    advance_follower_commit(message.commit, message.ballot, first, through);
  }
  reply.commit = commit_;
  reply.last_index = last_index_;
  reply.behind = commit_ < message.commit;
  send(std::move(reply));
}

void PaxosReplica::on_heartbeat(const PaxosMessage& message, sim::SimTime now) {
  if (!accept_leader_message(message, now)) return;
  advance_follower_commit(message.commit, message.ballot, LogIndex(1), LogIndex(0));
  PaxosMessage ack = reply_to(message, PaxosMessage::Type::kHeartbeatAck);
  ack.ballot = message.ballot;
  ack.sequence = message.sequence;
  ack.commit = commit_;
  ack.last_index = last_index_;
  ack.behind = commit_ < message.commit;
  send(std::move(ack));
}

// A follower knows slot s is chosen when the leader's commit covers s and our entry at s is the
// leader's: it came in this message ([first_new, last_new]), or it carries the leader's ballot
// (a leader proposes one value per slot in its ballot, and never reuses a ballot). An entry of an
// older ballot may differ from the chosen one, so the commit stops there until a CatchUp.
void PaxosReplica::advance_follower_commit(LogIndex leader_commit, Ballot leader_ballot,
                                           LogIndex first_new, LogIndex last_new) {
  const LogIndex limit = std::min(leader_commit, last_index_);
  LogIndex known = commit_;
  while (known < limit) {
    const LogIndex index = known.next();
    const bool from_message = first_new <= index && index <= last_new;
    if (!from_message && entry(index).ballot != leader_ballot) break;
    known = index;
  }
  if (known > commit_) {
    set_commit(known);
    emit_committed();
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 2 and heartbeats, leader side.

void PaxosReplica::on_accepted(const PaxosMessage& message, sim::SimTime now) {
  if (role_ != PaxosRole::kLeader || message.ballot != own_ballot_) return;
  PeerProgress* peer = find_peer(message.from);
  if (peer == nullptr) return;  // removed since; its acceptance no longer counts
  peer->commit = message.commit;
  peer->reported = true;
  peer->last_heard = now;
  if (message.rejected) {
    send_catch_up(*peer, now);
    return;
  }
  // `match` counts only an unbroken run of acceptances in our ballot. A reply that starts past
  // `match` (the follower holds a hole where an earlier Accept was lost or is late) does not
  // extend it; the late Accept's reply, or the resend after a stalled heartbeat, will.
  if (message.prev_index <= peer->match) {
    peer->match = std::max(peer->match, std::min(message.accepted_through, last_index_));
  }
  advance_leader_commit(now);
  peer = find_peer(message.from);  // a commit may have retired it
  if (peer == nullptr) return;
  if (message.accepted_through.next() == peer->next && peer->next <= last_index_) {
    // The reply to our latest send: continue the stream.
    const auto type =
        peer->next <= commit_ ? PaxosMessage::Type::kCatchUp : PaxosMessage::Type::kAccept;
    send_entries(*peer, peer->next, type, now);
  } else if (message.behind) {
    send_catch_up(*peer, now);
  }
}

void PaxosReplica::on_heartbeat_ack(const PaxosMessage& message, sim::SimTime now) {
  if (role_ != PaxosRole::kLeader || message.ballot != own_ballot_) return;
  PeerProgress* peer = find_peer(message.from);
  if (peer == nullptr) return;
  peer->commit = message.commit;
  peer->reported = true;
  peer->last_heard = now;
  HeartbeatRecord& record = leader_->heartbeats[message.sequence % kHeartbeatHistory];
  if (record.sequence == message.sequence &&
      std::find(record.acked.begin(), record.acked.end(), message.from) == record.acked.end()) {
    record.acked.push_back(message.from);
    if (quorum_of_current_configs(record.acked)) {
      // The lease runs from when we SENT the heartbeat a quorum acked: every acker granted us
      // lease_duration on its clock from a later instant (docs/paxos.md).
      const sim::SimTime until = record.sent_at + leader_lease_;
      if (!leader_->lease_until || *leader_->lease_until < until) leader_->lease_until = until;
      leader_->last_quorum_contact = std::max(leader_->last_quorum_contact, record.sent_at);
    }
  }
  if (message.behind) {
    send_catch_up(*peer, now);
  } else if (peer->match < last_index_ && peer->match == peer->match_at_last_heartbeat_ack) {
    // No progress for a whole heartbeat interval: the tail of the stream was lost. Resend it.
    send_entries(*peer, peer->match.next(), PaxosMessage::Type::kCatchUp, now);
  }
  peer->match_at_last_heartbeat_ack = peer->match;
}

void PaxosReplica::send_heartbeats(sim::SimTime now) {
  DYN_ASSERT(role_ == PaxosRole::kLeader);
  const uint64_t sequence = leader_->next_heartbeat_sequence++;
  HeartbeatRecord& record = leader_->heartbeats[sequence % kHeartbeatHistory];
  record.sequence = sequence;
  record.sent_at = now;
  record.acked.assign(1, options_.self);
  if (!options_.plant_no_lease_wait) {
    // The leader grants itself the lease too: while any lease it may earn from this heartbeat
    // runs, it promises no other ballot (docs/paxos.md).
    grant_until_ = std::max(grant_until_, now + options_.lease_duration);
  }
  for (const PeerProgress& peer : leader_->peers) {
    PaxosMessage heartbeat;
    heartbeat.type = PaxosMessage::Type::kHeartbeat;
    heartbeat.to = peer.replica;
    heartbeat.ballot = own_ballot_;
    heartbeat.commit = commit_;
    heartbeat.sequence = sequence;
    send(std::move(heartbeat));
  }
  leader_->next_heartbeat_at = now + options_.heartbeat_interval;
}

// Sends [from, from + max_entries_per_message) (clipped to the log) and moves the peer's stream
// to follow it. Entries the leader has compacted cannot be sent: the peer needs a snapshot.
void PaxosReplica::send_entries(PeerProgress& peer, LogIndex from, PaxosMessage::Type type,
                                sim::SimTime now) {
  DYN_ASSERT(role_ == PaxosRole::kLeader);
  DYN_ASSERT(from.value >= 1);
  if (from <= compacted_through_) {
    // Reported at most once per election timeout, so a slow transfer is not asked for twice.
    if (!peer.snapshot_requested_at ||
        now - *peer.snapshot_requested_at >= options_.election_timeout) {
      ready_.snapshots_needed.push_back(SnapshotNeeded{peer.replica, compacted_through_});
      peer.snapshot_requested_at = now;
    }
    return;
  }
  if (from > last_index_) return;
  const LogIndex through =
      std::min(last_index_, from + (options_.max_entries_per_message - uint64_t{1}));
  PaxosMessage message;
  message.type = type;
  message.to = peer.replica;
  message.ballot = own_ballot_;
  message.commit = commit_;
  message.prev_index = LogIndex(from.value - 1);
  message.entries.reserve(through - from + 1);
  for (LogIndex index = from; index <= through; index = index.next()) {
    message.entries.push_back(entry(index));
  }
  send(std::move(message));
  peer.next = through.next();
}

// Resend from the peer's commit: everything after it may be missing or stale there. Limited to
// once per heartbeat interval, since a burst of rejected Accepts asks for the same thing.
void PaxosReplica::send_catch_up(PeerProgress& peer, sim::SimTime now) {
  if (peer.last_catch_up_at && now - *peer.last_catch_up_at < options_.heartbeat_interval) return;
  peer.last_catch_up_at = now;
  send_entries(peer, peer.commit.next(), PaxosMessage::Type::kCatchUp, now);
}

// Slot s commits when a majority of the configuration in effect at s (the latest configuration
// entry below s, docs/paxos.md) accepted it in our ballot: ourselves (our accept was durable
// before any Accept left, so any peer's acceptance implies ours) and enough peers. The commit is
// a prefix, so the slots above a configuration entry count in its configuration only once the
// entry itself has committed.
void PaxosReplica::advance_leader_commit(sim::SimTime now) {
  DYN_ASSERT(role_ == PaxosRole::kLeader);
  LogIndex commit = commit_;
  bool moved = true;
  while (moved && commit < last_index_) {
    moved = false;
    const Configuration& governing = configuration_at(commit);
    // The end of this configuration's run: the next configuration entry (inclusive) or the log.
    LogIndex run_end = last_index_;
    for (const auto& [at, configuration] : config_entries_) {
      if (at > commit) {
        run_end = at;
        break;
      }
    }
    LogIndex reached;
    if (options_.plant_quorum_of_one) {
      reached = last_index_;
    } else {
      std::vector<LogIndex> matches;
      for (const Member& member : governing.members) {
        if (!member.voter) continue;
        if (member.replica == options_.self) {
          matches.push_back(last_index_);
          continue;
        }
        const PeerProgress* peer = find_peer(member.replica);
        matches.push_back(peer != nullptr ? peer->match : LogIndex());
      }
      std::sort(matches.begin(), matches.end(), std::greater<>());
      const size_t needed = governing.quorum();
      if (matches.size() < needed) break;
      reached = matches[needed - 1];
    }
    const LogIndex next_commit = std::min(reached, run_end);
    if (next_commit > commit) {
      commit = next_commit;
      moved = next_commit == run_end;
    }
  }
  if (commit > commit_) {
    const bool passed_config = std::any_of(config_entries_.begin(), config_entries_.end(),
                                           [&](const auto& e) {
                                             return e.first > commit_ && e.first <= commit;
                                           });
    set_commit(commit);
    emit_committed();
    if (passed_config) sync_peers(now);  // members removed by a committed change leave
  }
}

// The leader streams to every member of every configuration still in effect above its commit
// (the latest one and, while a change is uncommitted, the one before it).
void PaxosReplica::sync_peers(sim::SimTime now) {
  DYN_ASSERT(role_ == PaxosRole::kLeader);
  std::vector<uint32_t> wanted;
  auto add = [&](const Configuration& configuration) {
    for (const Member& member : configuration.members) {
      if (member.replica != options_.self &&
          std::find(wanted.begin(), wanted.end(), member.replica) == wanted.end()) {
        wanted.push_back(member.replica);
      }
    }
  };
  add(configuration_at(commit_));
  for (const auto& [at, configuration] : config_entries_) {
    if (at > commit_) add(configuration);
  }
  std::erase_if(leader_->peers, [&](const PeerProgress& peer) {
    return std::find(wanted.begin(), wanted.end(), peer.replica) == wanted.end();
  });
  for (uint32_t replica : wanted) {
    if (find_peer(replica) != nullptr) continue;
    PeerProgress peer;
    peer.replica = replica;
    peer.next = commit_.next();
    // Nothing of ours is known accepted there yet. A member joining mid-leadership starts at
    // our commit: the slots up to it are chosen already and never counted again, and a replica
    // seeded above commit_at_election (a log replica holds no older entries) could never
    // report the run below its seed that `match` would otherwise wait for.
    peer.match = commit_;
    peer.match_at_last_heartbeat_ack = peer.match;
    peer.last_heard = now;
    peer.commit_when_added = commit_;
    leader_->peers.push_back(peer);
  }
  std::sort(leader_->peers.begin(), leader_->peers.end(),
            [](const PeerProgress& a, const PeerProgress& b) { return a.replica < b.replica; });
}

// A peer has caught up when it reported (in this leadership) a commit that reaches the commit we
// had when it joined our stream, and is within the slack of our commit now. Its commit counts only
// entries it holds and knows chosen (or a snapshot it installed), so an empty replica that wrote
// holes ahead of its catch-up does not qualify.
bool PaxosReplica::caught_up(const PeerProgress& peer) const {
  return peer.reported && peer.commit >= peer.commit_when_added &&
         peer.commit.value + options_.learner_caught_up_slack >= commit_.value;
}

bool PaxosReplica::quorum_of_current_configs(const std::vector<uint32_t>& acked) const {
  if (!configuration_at(commit_).has_quorum(acked)) return false;
  return configuration().has_quorum(acked);
}

// ---------------------------------------------------------------------------------------------
// Failure detection, the leader check and elections.

void PaxosReplica::start_leader_check(sim::SimTime now) {
  if (!can_lead()) {
    // A log replica, a learner or a replica outside the configuration never campaigns.
    reset_election_deadline(now);
    return;
  }
  if (promise_blocked(now)) {
    // We could not promise our own ballot yet; ask again when our grant has run out.
    election_deadline_ = std::max(grant_until_, recovery_block_until_);
    return;
  }
  check_ = LeaderCheckState{true, next_check_sequence_++, now + options_.leader_check_timeout, 0};
  for (const Member& member : configuration().members) {
    if (!member.voter || member.replica == options_.self) continue;
    PaxosMessage ask;
    ask.type = PaxosMessage::Type::kLeaderCheck;
    ask.to = member.replica;
    ask.ballot = promised_;
    ask.sequence = check_.sequence;
    send(std::move(ask));
  }
}

void PaxosReplica::on_leader_check(const PaxosMessage& message, sim::SimTime now) {
  PaxosMessage reply = reply_to(message, PaxosMessage::Type::kLeaderCheckReply);
  reply.ballot = promised_;
  reply.sequence = message.sequence;
  // "Have you heard from a leader within the (base) election timeout?" A leader answers for
  // itself: it is alive and reachable from the asker.
  reply.leader_heard = role_ == PaxosRole::kLeader ||
                       (role_ == PaxosRole::kFollower && last_heard_from_leader_.has_value() &&
                        now - *last_heard_from_leader_ < options_.election_timeout);
  send(std::move(reply));
}

void PaxosReplica::on_leader_check_reply(const PaxosMessage& message, sim::SimTime now) {
  if (role_ != PaxosRole::kFollower || !check_.active || message.sequence != check_.sequence) {
    return;
  }
  if (message.leader_heard) {
    // P22 section 6.2: a peer still hears a healthy leader, so ours is a local fault. Stay.
    check_.active = false;
    reset_election_deadline(now);
    return;
  }
  if (!configuration().is_voter(message.from)) return;
  ++check_.replies_not_heard;
  if (check_.replies_not_heard + 1 >= configuration().voter_count()) {
    check_.active = false;
    start_election(now);
  }
}

void PaxosReplica::start_election(sim::SimTime now) {
  DYN_ASSERT(role_ == PaxosRole::kFollower);
  if (!can_lead()) {
    reset_election_deadline(now);
    return;
  }
  if (promise_blocked(now)) {
    election_deadline_ = std::max(grant_until_, recovery_block_until_);
    return;
  }
  const uint64_t round = std::max(max_seen_round_, promised_.round) + 1;
  own_ballot_ = Ballot{round, options_.self};
  max_seen_round_ = round;
  set_promised(own_ballot_);
  role_ = PaxosRole::kCandidate;
  leader_hint_.reset();
  ElectionState election;
  election.deadline = now + options_.election_timeout +
                      sim::Duration(random_.uniform_int(0, options_.election_timeout.ns - 1));
  election_ = std::move(election);
  note_role(PaxosRole::kCandidate, own_ballot_);
  send_prepares(nullptr);
  // A configuration of one voter: our own promise is the majority.
  const ElectionPlan plan = plan_election();
  if (election_won(plan)) become_leader(plan, now);
}

void PaxosReplica::on_nack(const PaxosMessage& message, sim::SimTime now) {
  // A Nack naming a ballot above ours means a newer candidate or leader holds a promise: step
  // down. One refused on lease grounds or because we are behind names a lower ballot; the
  // candidate then waits for its other peer or for its timeout.
  if (role_ == PaxosRole::kFollower || message.ballot <= own_ballot_) return;
  become_follower(promised_, now);
}

void PaxosReplica::become_follower(Ballot promised, sim::SimTime now) {
  const bool changed = role_ != PaxosRole::kFollower;
  role_ = PaxosRole::kFollower;
  leader_.reset();
  election_.reset();
  if (promised > promised_) set_promised(promised);
  leader_hint_.reset();
  check_.active = false;
  reset_election_deadline(now);
  if (changed) note_role(PaxosRole::kFollower, promised_);
}

bool PaxosReplica::promise_blocked(sim::SimTime now) const {
  if (options_.plant_no_lease_wait) return false;
  return now < recovery_block_until_ || now < grant_until_;
}

void PaxosReplica::reset_election_deadline(sim::SimTime now) {
  const int64_t base_ns = options_.election_timeout.ns;
  election_deadline_ = now + sim::Duration(base_ns + random_.uniform_int(0, base_ns - 1));
}

// ---------------------------------------------------------------------------------------------
// State changes that reach the Ready.

void PaxosReplica::write_entry(LogEntry written) {
  DYN_ASSERT(written.index > compacted_through_);
  DYN_ASSERT(written.index <= last_index_.next());
  DYN_ASSERT(written.ballot <= promised_);
  highest_accepted_ballot_ = std::max(highest_accepted_ballot_, written.ballot);
  ready_.entries_to_persist.push_back(written);
  bool replaced_config = false;
  if (written.index == last_index_.next()) {
    last_index_ = written.index;
    log_.push_back(std::move(written));
  } else {
    LogEntry& slot = log_[written.index - compacted_through_ - 1];
    replaced_config = slot.command.is_configuration();
    slot = std::move(written);
  }
  note_config_entry(entry(ready_.entries_to_persist.back().index), replaced_config);
}

// Keeps config_entries_ equal to the configuration entries of the log above the base. A
// configuration entry that is overwritten (a new leader chose otherwise) is undone with it.
void PaxosReplica::note_config_entry(const LogEntry& written, bool replaced_config) {
  if (replaced_config) {
    std::erase_if(config_entries_, [&](const auto& e) { return e.first == written.index; });
  }
  if (!written.command.is_configuration()) return;
  Configuration configuration;
  const bool decoded = Configuration::decode(written.command.bytes, &configuration);
  DYN_ASSERT_MSG(decoded, "a configuration entry does not decode");
  auto at = std::find_if(config_entries_.begin(), config_entries_.end(),
                         [&](const auto& e) { return e.first >= written.index; });
  if (at != config_entries_.end() && at->first == written.index) {
    at->second = std::move(configuration);
  } else {
    config_entries_.insert(at, {written.index, std::move(configuration)});
  }
}

void PaxosReplica::set_promised(Ballot ballot) {
  DYN_ASSERT(ballot >= promised_);
  promised_ = ballot;
  queue_hard_state();
}

void PaxosReplica::set_commit(LogIndex commit) {
  DYN_ASSERT(commit >= commit_);
  DYN_ASSERT(commit <= last_index_);
  commit_ = commit;
  queue_hard_state();
}

void PaxosReplica::queue_hard_state() {
  last_queued_hard_state_ = hard_state();
  ready_.hard_state = last_queued_hard_state_;
}

void PaxosReplica::emit_committed() {
  while (applied_ < commit_) {
    applied_ = applied_.next();
    DYN_ASSERT(!entry(applied_).is_hole());
    ready_.committed.push_back(entry(applied_));
  }
}

// Persist before send: every change to the hard state is queued before any message leaves, and
// entries are queued by write_entry() as they change, so whatever a message vouches for (a
// promise, an acceptance, a commit) is in this Ready or an earlier one.
void PaxosReplica::send(PaxosMessage message) {
  DYN_ASSERT(hard_state() == last_queued_hard_state_);
  DYN_ASSERT(ready_.messages.size() < kMaxReadyMessages);
  message.from = options_.self;
  DYN_ASSERT(message.to != options_.self);
  ready_.messages.push_back(std::move(message));
}

PaxosMessage PaxosReplica::reply_to(const PaxosMessage& message, PaxosMessage::Type type) const {
  PaxosMessage reply;
  reply.type = type;
  reply.from = options_.self;
  reply.to = message.from;
  return reply;
}

void PaxosReplica::note_role(PaxosRole role, Ballot ballot) {
  ready_.role_changes.push_back(RoleChange{role, ballot});
}

const LogEntry& PaxosReplica::entry(LogIndex index) const {
  DYN_ASSERT(index > compacted_through_ && index <= last_index_);
  const LogEntry& found = log_[index - compacted_through_ - 1];
  DYN_ASSERT(found.index == index);
  return found;
}

PaxosReplica::PeerProgress* PaxosReplica::find_peer(uint32_t replica) {
  for (PeerProgress& peer : leader_->peers) {
    if (peer.replica == replica) return &peer;
  }
  return nullptr;
}

const PaxosReplica::PeerProgress* PaxosReplica::find_peer(uint32_t replica) const {
  for (const PeerProgress& peer : leader_->peers) {
    if (peer.replica == replica) return &peer;
  }
  return nullptr;
}

// Under a planted bug the replica's own cross-checks step aside so the test's checker is what
// catches it.
bool PaxosReplica::same_command_or_planted(const LogEntry& held, const LogEntry& incoming) const {
  return options_.planted_bugs_active() || held.command == incoming.command;
}

void PaxosReplica::check_invariants() const {
  DYN_ASSERT(compacted_through_ <= applied_);
  DYN_ASSERT(applied_ == commit_);  // committed entries are emitted as soon as they are known
  DYN_ASSERT(commit_ <= last_index_);
  DYN_ASSERT(log_.size() == last_index_ - compacted_through_);
  if (!log_.empty()) {
    DYN_ASSERT(log_.front().index == compacted_through_.next());
    DYN_ASSERT(log_.back().index == last_index_);
    DYN_ASSERT(log_.back().ballot <= promised_);
  }
  DYN_ASSERT(highest_accepted_ballot_ <= promised_);
  DYN_ASSERT(max_seen_round_ >= promised_.round);
  DYN_ASSERT(base_config_index_ <= applied_);
  for (size_t i = 0; i < config_entries_.size(); ++i) {
    DYN_ASSERT(config_entries_[i].first > base_config_index_);
    DYN_ASSERT(config_entries_[i].first > compacted_through_);
    DYN_ASSERT(i == 0 || config_entries_[i - 1].first < config_entries_[i].first);
  }
  DYN_ASSERT(ready_.messages.size() <= kMaxReadyMessages);
  switch (role_) {
    case PaxosRole::kFollower:
      DYN_ASSERT(!leader_.has_value() && !election_.has_value());
      break;
    case PaxosRole::kCandidate:
      DYN_ASSERT(election_.has_value() && !leader_.has_value());
      DYN_ASSERT(own_ballot_ == promised_ && own_ballot_.replica == options_.self);
      DYN_ASSERT(!check_.active);
      break;
    case PaxosRole::kLeader: {
      DYN_ASSERT(leader_.has_value() && !election_.has_value());
      DYN_ASSERT(own_ballot_ == promised_ && own_ballot_.replica == options_.self);
      DYN_ASSERT(!check_.active);
      DYN_ASSERT(leader_->commit_at_election <= commit_);
      DYN_ASSERT(leader_->commit_at_election < leader_->noop_index);
      DYN_ASSERT(leader_->noop_index <= last_index_);
      // A leader never removes itself, and streams to every other member.
      DYN_ASSERT(configuration().is_voter(options_.self));
      for (const Member& member : configuration().members) {
        DYN_ASSERT(member.replica == options_.self || find_peer(member.replica) != nullptr);
      }
      for (const PeerProgress& peer : leader_->peers) {
        DYN_ASSERT(peer.match >= leader_->commit_at_election && peer.match <= last_index_);
      }
      // Everything above the commit at election is in our ballot (re-proposed or new).
      if (!log_.empty() && last_index_ > leader_->commit_at_election) {
        DYN_ASSERT(log_.back().ballot == own_ballot_);
      }
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Names, for transcripts and traces.

const char* to_string(PaxosRole role) {
  switch (role) {
    case PaxosRole::kFollower:
      return "follower";
    case PaxosRole::kCandidate:
      return "candidate";
    case PaxosRole::kLeader:
      return "leader";
  }
  return "?";
}

const char* to_string(PaxosMessage::Type type) {
  switch (type) {
    case PaxosMessage::Type::kPrepare:
      return "Prepare";
    case PaxosMessage::Type::kPromise:
      return "Promise";
    case PaxosMessage::Type::kAccept:
      return "Accept";
    case PaxosMessage::Type::kCatchUp:
      return "CatchUp";
    case PaxosMessage::Type::kAccepted:
      return "Accepted";
    case PaxosMessage::Type::kHeartbeat:
      return "Heartbeat";
    case PaxosMessage::Type::kHeartbeatAck:
      return "HeartbeatAck";
    case PaxosMessage::Type::kLeaderCheck:
      return "LeaderCheck";
    case PaxosMessage::Type::kLeaderCheckReply:
      return "LeaderCheckReply";
    case PaxosMessage::Type::kNack:
      return "Nack";
  }
  return "?";
}

const char* to_string(PaxosMessage::NackReason reason) {
  switch (reason) {
    case PaxosMessage::NackReason::kNone:
      return "none";
    case PaxosMessage::NackReason::kBallotTooLow:
      return "ballot-too-low";
    case PaxosMessage::NackReason::kLeaseHeld:
      return "lease-held";
    case PaxosMessage::NackReason::kCandidateBehind:
      return "candidate-behind";
  }
  return "?";
}

const char* to_string(ProposeStatus status) {
  switch (status) {
    case ProposeStatus::kOk:
      return "ok";
    case ProposeStatus::kNotLeader:
      return "not-leader";
    case ProposeStatus::kNotServingYet:
      return "not-serving-yet";
    case ProposeStatus::kBusy:
      return "busy";
    case ProposeStatus::kLogFull:
      return "log-full";
    case ProposeStatus::kInvalidCommand:
      return "invalid-command";
    case ProposeStatus::kChangePending:
      return "change-pending";
    case ProposeStatus::kNotCaughtUp:
      return "not-caught-up";
  }
  return "?";
}

std::string to_string(Ballot ballot) {
  return std::to_string(ballot.round) + "." + std::to_string(ballot.replica);
}

std::string to_string(const PaxosMessage& message) {
  using Type = PaxosMessage::Type;
  std::string text = std::to_string(message.from) + "->" + std::to_string(message.to) + " " +
                     to_string(message.type) + " b=" + to_string(message.ballot);
  auto add = [&text](const char* name, const std::string& value) {
    text += " ";
    text += name;
    text += "=";
    text += value;
  };
  auto add_entries = [&text, &message]() {
    text += " [";
    for (size_t i = 0; i < message.entries.size(); ++i) {
      const LogEntry& e = message.entries[i];
      if (i > 0) text += " ";
      text += index_string(e.index) + "@" + to_string(e.ballot) + ":";
      // "3@0.0:hole", "4@2.2:noop", "5@2.2:#11".
      if (e.is_hole()) {
        text += "hole";
      } else {
        text += e.command.is_noop() ? std::string("noop") : "#" + std::to_string(e.command.id);
      }
    }
    text += "]";
  };
  switch (message.type) {
    case Type::kPrepare:
      add("commit", index_string(message.commit));
      break;
    case Type::kPromise:
      add("commit", index_string(message.commit));
      add("last", index_string(message.last_index));
      add_entries();
      break;
    case Type::kAccept:
    case Type::kCatchUp:
      add("commit", index_string(message.commit));
      add("prev", index_string(message.prev_index));
      add_entries();
      break;
    case Type::kAccepted:
      add("prev", index_string(message.prev_index));
      add("through", index_string(message.accepted_through));
      add("commit", index_string(message.commit));
      add("last", index_string(message.last_index));
      if (message.rejected) text += " rejected";
      if (message.behind) text += " behind";
      break;
    case Type::kHeartbeat:
      add("commit", index_string(message.commit));
      add("seq", std::to_string(message.sequence));
      break;
    case Type::kHeartbeatAck:
      add("seq", std::to_string(message.sequence));
      add("commit", index_string(message.commit));
      add("last", index_string(message.last_index));
      if (message.behind) text += " behind";
      break;
    case Type::kLeaderCheck:
      add("seq", std::to_string(message.sequence));
      break;
    case Type::kLeaderCheckReply:
      add("seq", std::to_string(message.sequence));
      add("heard", message.leader_heard ? "yes" : "no");
      break;
    case Type::kNack:
      add("reason", to_string(message.nack_reason));
      break;
  }
  return text;
}

}  // namespace dynasim::model
