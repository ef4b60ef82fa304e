// Multi-Paxos for one partition's replication group, as a pure state machine.
//
// Follows P22 section 3 ("Multi-Paxos per replication group"): any replica may trigger an
// election; the leader keeps its leadership by renewing a lease; only the leader serves writes and
// strongly consistent reads; a write is acknowledged once a quorum (2 of 3) has persisted its log
// record. It also follows P22 section 6.2: a follower that suspects the leader first asks its peers
// whether they still hear it (the gray-failure fix), and a new leader serves nothing until the old
// leader's lease has expired. docs/paxos.md gives the protocol message by message, the lease
// argument under a bounded clock drift, and what is persisted when.
//
// Shape (etcd raft's RawNode/Ready): no I/O, no timers, no threads. Inputs come in through step()
// (a message), tick() (the host's local clock advanced) and propose(); effects go out through
// take_ready(). The caller MUST, for each Ready, in this order:
//   1. make hard_state and entries_to_persist durable (entries replace any entry at their index),
//   2. only then send messages,
//   3. apply committed, in order (no-ops included; the state machine skips them).
// Every message depends only on state that is in the same Ready or an earlier one, so a crash at
// any point leaves nothing sent that the durable state does not back (asserted in send()).
//
// Time: every input carries the host's local clock reading, which drifts from true time by at most
// max_clock_drift_ppm (the stated bound the lease argument relies on). A clock step breaks that
// assumption and is outside what the lease guarantees (docs/paxos.md, "Assumptions").
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sim/random.h"
#include "sim/time.h"

namespace dynasim::model {

// A slot in the replicated log. Index 0 means "nothing": the first real slot is 1.
struct LogIndex {
  uint64_t value = 0;

  constexpr LogIndex() = default;
  constexpr explicit LogIndex(uint64_t v) : value(v) {}
  constexpr auto operator<=>(const LogIndex&) const = default;
  constexpr LogIndex next() const { return LogIndex(value + 1); }
  constexpr LogIndex operator+(uint64_t count) const { return LogIndex(value + count); }
  // How many slots lie in (other, *this]. REQUIRES: other <= *this.
  constexpr uint64_t operator-(LogIndex other) const { return value - other.value; }
};

// A Paxos ballot: a round number made unique by the proposing replica's number. Round 0 is "no
// ballot" (nothing promised yet); every real ballot has round >= 1.
struct Ballot {
  uint64_t round = 0;
  uint32_t replica = 0;

  constexpr auto operator<=>(const Ballot&) const = default;
  constexpr bool is_none() const { return round == 0; }
};

// Immutable bytes shared by every copy: a command is copied into the log, the Ready to persist,
// each peer's Accept, the message envelope, the committed list and the apply queue, and each of
// those copies is a reference count, not a byte copy. Reads like a const std::vector<uint8_t>;
// equality compares contents.
class SharedBytes {
 public:
  SharedBytes() = default;
  SharedBytes(std::vector<uint8_t> bytes)  // NOLINT(google-explicit-constructor): a value type
      : bytes_(bytes.empty() ? nullptr
                             : std::make_shared<const std::vector<uint8_t>>(std::move(bytes))) {}
  SharedBytes(std::initializer_list<uint8_t> bytes) : SharedBytes(std::vector<uint8_t>(bytes)) {}
  const std::vector<uint8_t>& vector() const { return bytes_ ? *bytes_ : empty_vector(); }
  operator const std::vector<uint8_t>&() const { return vector(); }  // NOLINT: read as a vector
  size_t size() const { return bytes_ ? bytes_->size() : 0; }
  bool empty() const { return size() == 0; }
  const uint8_t* data() const { return vector().data(); }
  std::vector<uint8_t>::const_iterator begin() const { return vector().begin(); }
  std::vector<uint8_t>::const_iterator end() const { return vector().end(); }
  uint8_t operator[](size_t i) const { return vector()[i]; }
  bool operator==(const SharedBytes& other) const {
    return bytes_ == other.bytes_ || vector() == other.vector();
  }

 private:
  static const std::vector<uint8_t>& empty_vector() {
    static const std::vector<uint8_t> empty;
    return empty;
  }
  std::shared_ptr<const std::vector<uint8_t>> bytes_;
};

// What the log carries. Opaque to Paxos except for two kinds: the no-op, which a new leader uses
// to fill gaps and to commit an entry of its own ballot (id 0, no bytes, not a configuration),
// and the configuration entry, which changes the group's membership (its bytes are an encoded
// Configuration; docs/paxos.md, "Membership changes"). Everything else is the state machine's.
struct Command {
  uint64_t id = 0;
  SharedBytes bytes;
  bool configuration = false;  // bytes hold Configuration::encode(); the state machine skips it

  static Command noop() { return Command{}; }
  bool is_noop() const { return id == 0 && bytes.empty() && !configuration; }
  bool is_configuration() const { return configuration; }
  bool operator==(const Command&) const = default;
};

// A member of a replication group. A voter accepts and promises, counts toward quorums and, when
// it is a full replica, may lead. A learner receives the log (and, when full, a snapshot first)
// but has no vote: a replica being built joins as a learner and is promoted once caught up. A log
// replica (P22 section 5.1: "akin to acceptors in Paxos") persists the log and votes, but holds
// no state machine, so it never leads and never serves reads.
enum class MemberKind : uint8_t { kFull, kLog };

struct Member {
  uint32_t replica = 0;  // never reused within a group
  MemberKind kind = MemberKind::kFull;
  bool voter = true;
  // Where the storage layer reaches this replica; opaque to Paxos.
  uint64_t endpoint = 0;
  bool operator==(const Member&) const = default;
};

// A group's membership. Epoch 0 is the group's first configuration; each change adds one.
struct Configuration {
  uint64_t epoch = 0;
  std::vector<Member> members;  // sorted by replica number
  uint32_t next_replica = 1;    // the number the next added replica gets

  const Member* find(uint32_t replica) const;
  bool is_voter(uint32_t replica) const;
  size_t voter_count() const;
  // A majority of the voters.
  size_t quorum() const { return voter_count() / 2 + 1; }
  // Whether `replicas` (duplicates and non-voters ignored) hold a majority of the voters.
  bool has_quorum(const std::vector<uint32_t>& replicas) const;
  std::vector<uint8_t> encode() const;
  static bool decode(const std::vector<uint8_t>& bytes, Configuration* out);
  // Full voters numbered as given, endpoints 0, next_replica past the largest.
  static Configuration of_voters(const std::vector<uint32_t>& replicas);
  bool operator==(const Configuration&) const = default;
};
std::string to_string(const Configuration& configuration);

// One membership change. Each changes the voter set by at most one replica, which is what makes
// two consecutive configurations' majorities intersect (docs/paxos.md).
struct ConfigChange {
  enum class Kind : uint8_t {
    kAddLearner,  // a new replica (numbered by the leader: Configuration::next_replica)
    kPromote,     // learner -> voter; refused until the learner has caught up
    kRemove,      // a voter or a learner leaves; never the leader itself
  };
  Kind kind = Kind::kAddLearner;
  uint32_t replica = 0;                   // kPromote, kRemove
  MemberKind member_kind = MemberKind::kFull;  // kAddLearner
  uint64_t endpoint = 0;                  // kAddLearner
};
const char* to_string(ConfigChange::Kind kind);

struct LogEntry {
  LogIndex index;
  Ballot ballot;  // the ballot in which this replica accepted the entry
  Command command;

  // A hole: nothing accepted at this index yet. A follower writes holes when an Accept arrives
  // past one that was lost or delayed, so its log stays contiguous; a new leader fills a slot that
  // is a hole everywhere in its quorum with a no-op. Holes are never committed.
  bool is_hole() const { return ballot.is_none(); }
  bool operator==(const LogEntry&) const = default;
};

struct PaxosOptions {
  uint32_t self = 0;
  // The group's first configuration, as full voters, when RecoveredState carries none (tests;
  // the storage layer always passes a Configuration with endpoints).
  std::vector<uint32_t> members;

  sim::Duration heartbeat_interval = sim::milliseconds(100);
  // Base follower timeout; each wait is drawn uniformly from [base, 2 * base) with the injected
  // Random, so two followers rarely start elections together.
  sim::Duration election_timeout = sim::seconds(1);
  // How long a grant made by a follower (or a leader to itself) blocks promises to other ballots,
  // measured on the granting replica's clock. The leader's own lease is shorter by the margin.
  sim::Duration lease_duration = sim::seconds(2);
  // The stated bound on |clock rate - 1| for every replica's clock, in parts per million.
  double max_clock_drift_ppm = 200;
  // The leader's lease is lease_duration minus max(derived margin, this floor). The derived margin
  // is ceil(lease_duration * 2r / (1 + r)) + 2 ns with r = max_clock_drift_ppm / 1e6 (the 2 ns
  // cover the clock's 1 ns reading resolution at each end; docs/paxos.md). The floor lets an
  // operator add slack beyond the drift bound.
  sim::Duration min_lease_safety_margin = sim::Duration(0);
  // How long a suspecting follower waits for answers to its leader check before deciding.
  sim::Duration leader_check_timeout = sim::milliseconds(200);

  // Bounds on every queue (TigerBeetle style): a proposal beyond them gets kBusy or kLogFull.
  uint32_t max_uncommitted_entries = 256;        // in flight at the leader
  uint32_t max_entries_per_message = 64;         // per Accept / CatchUp message
  uint32_t max_promise_entries = 4096;           // accepted entries one Promise may carry
  uint64_t max_log_entries = uint64_t{1} << 20;  // held in memory between compactions
  // A learner counts as caught up (and may be promoted) when it has accepted everything up to
  // the leader's commit minus this many entries.
  uint64_t learner_caught_up_slack = 0;

  // Planted bugs, for the tests that prove the checkers can see them. Default off; never set them
  // outside tests. While any is set, the replica's own cross-checks that would catch the bug
  // before the test's checker does are skipped (see planted_bugs_active()).
  bool plant_quorum_of_one = false;          // commit on the leader's own accept
  bool plant_no_lease_wait = false;          // no promise refusal, new leader serves at once
  bool plant_follower_strong_reads = false;  // can_serve_strong_read() is true on followers
  // A candidate wins with a majority of the configuration at its own commit alone, ignoring the
  // newer configurations its promises reveal (docs/paxos.md, "Membership changes").
  bool plant_single_config_election = false;

  bool planted_bugs_active() const {
    return plant_quorum_of_one || plant_no_lease_wait || plant_follower_strong_reads ||
           plant_single_config_election;
  }
};

// The margin and the leader's lease that follow from the options (docs/paxos.md, "The lease").
sim::Duration lease_safety_margin(const PaxosOptions& options);
sim::Duration leader_lease_duration(const PaxosOptions& options);

// What must survive a crash, besides the log. Persisted whenever it changes, before any message
// that depends on it.
struct HardState {
  Ballot promised;  // the highest ballot this replica promised (or accepted in)
  LogIndex commit;  // a prefix of the log known to be chosen
  bool operator==(const HardState&) const = default;
};

struct PaxosMessage {
  // The fields each type uses are listed beside it; the rest keep their defaults.
  enum class Type : uint8_t {
    kPrepare,           // ballot, commit (the candidate's; promises carry entries above it)
    kPromise,           // ballot, commit, last_index, entries (all accepted entries > prepare's)
    kAccept,            // ballot, commit, prev_index, entries (new proposals)
    kCatchUp,           // ballot, commit, prev_index, entries (resent from the follower's commit)
    kAccepted,          // ballot, prev_index, accepted_through, commit, last_index, rejected,
                        // behind
    kHeartbeat,         // ballot, commit, sequence
    kHeartbeatAck,      // ballot, sequence, commit, last_index, behind
    kLeaderCheck,       // ballot (the asker's promised), sequence
    kLeaderCheckReply,  // ballot (the replier's promised), sequence, leader_heard
    kNack,              // ballot (the refuser's promised), nack_reason
  };
  enum class NackReason : uint8_t {
    kNone,
    kBallotTooLow,     // the refuser promised a higher ballot
    kLeaseHeld,        // the refuser holds a lease grant for another ballot (or just restarted)
    kCandidateBehind,  // the candidate's commit is below what the refuser can still send
  };

  Type type = Type::kHeartbeat;
  uint32_t from = 0;
  uint32_t to = 0;
  Ballot ballot;
  LogIndex commit;
  LogIndex last_index;
  LogIndex prev_index;
  LogIndex accepted_through;
  std::vector<LogEntry> entries;
  uint64_t sequence = 0;
  bool rejected = false;  // kAccepted: prev_index is beyond the follower's log (a gap)
  bool behind = false;    // kAccepted/kHeartbeatAck: could not confirm up to the sender's commit
  bool leader_heard = false;  // kLeaderCheckReply
  NackReason nack_reason = NackReason::kNone;
};

enum class PaxosRole : uint8_t { kFollower, kCandidate, kLeader };

struct RoleChange {
  PaxosRole role;
  Ballot ballot;  // the replica's ballot (leader, candidate) or its promised ballot (follower)
};

// A peer needs a snapshot covering at least `through` before catch-up can continue: the leader
// has compacted the entries it is missing. The storage layer ships a B-tree checkpoint and the
// peer calls install_snapshot().
struct SnapshotNeeded {
  uint32_t replica = 0;
  LogIndex through;
};

struct Ready {
  std::optional<HardState> hard_state;       // persist first
  std::vector<LogEntry> entries_to_persist;  // persist first; each replaces its index
  std::vector<PaxosMessage> messages;        // send only once the above is durable
  std::vector<LogEntry> committed;           // apply in order
  std::vector<SnapshotNeeded> snapshots_needed;
  std::vector<RoleChange> role_changes;

  bool empty() const {
    return !hard_state && entries_to_persist.empty() && messages.empty() && committed.empty() &&
           snapshots_needed.empty() && role_changes.empty();
  }
};

// Merges messages that a sender releases together (a storage node sends every Ready its WAL
// flush made durable at once) without changing what any receiver concludes:
// - an Accept (or CatchUp) whose entries continue the previous message to the same peer, of the
//   same type and ballot, joins it (up to max_entries entries), carrying the later commit;
// - an Accepted that continues the previous Accepted to the same peer (same ballot, neither
//   rejected nor behind, its run starting inside the earlier run) joins it: the leader's match
//   moves exactly as it would after both.
// Messages to one peer keep their order; messages to different peers may move relative to each
// other, as the network may reorder them anyway. Receivers handle a merged message as the
// sequence it replaces (tests/model/paxos_test.cc checks both sides).
void coalesce_messages(std::vector<PaxosMessage>& messages, uint32_t max_entries);

enum class ProposeStatus : uint8_t {
  kOk,
  kNotLeader,
  kNotServingYet,   // leader, but still waiting out the previous leader's lease
  kBusy,            // max_uncommitted_entries in flight
  kLogFull,         // max_log_entries held; the storage layer must checkpoint and compact
  kInvalidCommand,  // the reserved no-op, a configuration entry, or an impossible change
  kChangePending,   // propose_change: an earlier change (or our own no-op) is not committed yet
  kNotCaughtUp,     // propose_change(kPromote): the learner is behind the commit
};

struct ProposeResult {
  ProposeStatus status = ProposeStatus::kNotLeader;
  LogIndex index;                       // kOk: the slot the command will commit in, if it commits
  std::optional<uint32_t> leader_hint;  // kNotLeader: where to retry
  uint32_t replica = 0;                 // propose_change(kAddLearner), kOk: the new number
};

// What the leader knows of another member, for failure detection and healing.
struct PeerStatus {
  uint32_t replica = 0;
  bool voter = true;
  MemberKind kind = MemberKind::kFull;
  // Local time of the last message from it in this leadership (the election if none since).
  sim::SimTime last_heard;
  LogIndex match;     // accepted in our ballot through here
  bool caught_up = false;
};

enum class CompactStatus : uint8_t { kCompacted, kAlreadyCompacted, kNotApplied };
enum class InstallSnapshotStatus : uint8_t { kInstalled, kStale, kRefusedWhileLeader };

// What the storage layer recovered after a restart. `log` is every durable entry (the latest
// written at each index), contiguous, in index order. `applied_through` is the index its state
// machine already holds (its checkpoint); the replica re-emits (applied_through, commit] as
// committed. REQUIRES: the log's first index <= applied_through + 1 when the log is not empty.
struct RecoveredState {
  HardState hard_state;
  std::vector<LogEntry> log;
  LogIndex applied_through;
  // The configuration in effect at applied_through (every configuration entry up to it applied);
  // none: the first configuration, from PaxosOptions::members.
  std::optional<Configuration> configuration;
};

class PaxosReplica {
 public:
  // A replica that has never run passes a default RecoveredState. A replica that has promised
  // anything before refuses every promise for lease_duration of local time after `local_now`: it
  // may have granted a lease it no longer remembers.
  PaxosReplica(PaxosOptions options, sim::Random random, RecoveredState recovered,
               sim::SimTime local_now);

  // Drives heartbeats, failure detection, leader checks, elections and quorum loss. Call it at
  // next_tick_at() or more often.
  void tick(sim::SimTime local_now);
  // REQUIRES: message.to == self, message.from a member other than self.
  void step(const PaxosMessage& message, sim::SimTime local_now);
  // Leader only, once serving. Never throws; a refused proposal leaves no trace.
  ProposeResult propose(Command command, sim::SimTime local_now);
  // A membership change through the log (docs/paxos.md, "Membership changes"). Leader only, once
  // serving, with an entry of its own ballot committed and no other change uncommitted. Takes
  // effect as soon as it is in a replica's log; a change that is overwritten is undone.
  ProposeResult propose_change(const ConfigChange& change, sim::SimTime local_now);
  // A new group's first leader, without an election (docs/paxos.md, "A new group's first
  // leader"). Every replica of the group was created having promised Ballot{1, L} and nothing
  // else, so phase 1 of that ballot is complete before anything runs: no acceptor can have
  // accepted a value in a lower ballot, and every later candidate starts at round 2, so its
  // phase 1 finds whatever L had accepted. Replica L alone may call this, once, at its first
  // start; it leads at once, and serves at once too, because the group never had another
  // leader whose lease could still run. Returns false, changing nothing, unless this replica is
  // a follower that promised exactly Ballot{1, self}, has accepted nothing and is a full voter.
  bool lead_first_ballot(sim::SimTime local_now);
  // A leader, past its wait for the old lease, inside its own lease (with the drift margin), and
  // with an entry of its own ballot committed. The caller must have applied every committed
  // entry from earlier Readys before serving the read.
  bool can_serve_strong_read(sim::SimTime local_now) const;
  Ready take_ready();
  // Optional: hands a consumed Ready back so the next one reuses its vectors' memory (a replica
  // produces a Ready per input; allocating its vectors each time is most of the cost of small
  // Readys). Its contents are discarded.
  void recycle_ready(Ready&& used);

  // Drops entries <= through from memory. REQUIRES: the state machine's checkpoint covers them.
  CompactStatus compact(LogIndex through);
  // The storage layer installed a checkpoint covering (0, through]; catch-up continues after it.
  // `configuration` is the one in effect at `through` (the sender's configuration_at(through)).
  InstallSnapshotStatus install_snapshot(LogIndex through, const Configuration& configuration);

  PaxosRole role() const { return role_; }
  uint32_t self() const { return options_.self; }
  // The ballot this replica leads or campaigns in; none for a follower.
  Ballot ballot() const { return role_ == PaxosRole::kFollower ? Ballot{} : own_ballot_; }
  Ballot promised() const { return promised_; }
  LogIndex commit_index() const { return commit_; }
  LogIndex last_index() const { return last_index_; }
  LogIndex compacted_through() const { return compacted_through_; }
  std::optional<uint32_t> leader_hint() const;
  // Local time until which this leader's lease is valid (exclusive), if it has one.
  std::optional<sim::SimTime> lease_expiry() const;
  // Local time from which this leader may serve (the wait for the old lease); none unless leader.
  std::optional<sim::SimTime> serving_start() const;
  // The earliest local time at which tick() has something to do.
  sim::SimTime next_tick_at() const;
  const PaxosOptions& options() const { return options_; }
  // The entry at `index`, if held (not compacted, not beyond the log).
  const LogEntry* entry_at(LogIndex index) const;

  // The latest configuration in the log (committed or not): the one this replica acts on.
  const Configuration& configuration() const;
  // The configuration in effect after slot `index`. REQUIRES: index >= the earliest slot whose
  // configuration is still known (the recovered or installed base); snapshots and checkpoints
  // take it at their applied index.
  const Configuration& configuration_at(LogIndex index) const;
  // The earliest index configuration_at() answers for.
  LogIndex earliest_configuration_index() const { return base_config_index_; }
  // Whether a configuration entry is in the log but not yet committed.
  bool change_pending() const;
  // Whether this replica may campaign: a full voter in its latest configuration.
  bool can_lead() const;
  // Leader only (empty otherwise): every other member of the latest configuration.
  std::vector<PeerStatus> peer_status() const;

 private:
  struct PeerProgress {
    uint32_t replica = 0;
    LogIndex next;    // the next index to send as a new Accept
    LogIndex match;   // every entry in (commit_at_election, match] accepted in our ballot
    LogIndex commit;  // the peer's commit, as last reported
    LogIndex match_at_last_heartbeat_ack;  // to see a stream that stopped moving
    sim::SimTime last_heard;
    bool reported = false;       // `commit` came from the peer in this leadership
    LogIndex commit_when_added;  // our commit when it joined our stream (caught_up() needs it)
    std::optional<sim::SimTime> last_catch_up_at;
    std::optional<sim::SimTime> snapshot_requested_at;
  };
  struct HeartbeatRecord {
    uint64_t sequence = 0;
    sim::SimTime sent_at;
    std::vector<uint32_t> acked;  // replicas that acknowledged it (ourselves included)
  };
  static constexpr size_t kHeartbeatHistory = 8;
  struct LeaderState {
    std::vector<PeerProgress> peers;
    LogIndex commit_at_election;
    LogIndex noop_index;  // the no-op of our own ballot; strong reads wait for it to commit
    sim::SimTime serving_from;
    std::optional<sim::SimTime> lease_until;
    sim::SimTime next_heartbeat_at;
    sim::SimTime last_quorum_contact;  // send time of the newest heartbeat a quorum acked
    uint64_t next_heartbeat_sequence = 1;
    std::array<HeartbeatRecord, kHeartbeatHistory> heartbeats{};
  };
  struct ReceivedPromise {
    uint32_t replica = 0;
    LogIndex commit;
    std::vector<LogEntry> entries;
  };
  struct ElectionState {
    sim::SimTime deadline;
    std::vector<ReceivedPromise> promises;
    std::vector<uint32_t> asked;  // replicas a Prepare went to
  };
  struct LeaderCheckState {
    bool active = false;
    uint64_t sequence = 0;
    sim::SimTime deadline;
    uint32_t replies_not_heard = 0;  // a "heard" reply ends the check at once
  };

  // Inputs, by message type.
  void on_prepare(const PaxosMessage& message, sim::SimTime now);
  void on_promise(const PaxosMessage& message, sim::SimTime now);
  void on_entries(const PaxosMessage& message, sim::SimTime now);
  void on_accepted(const PaxosMessage& message, sim::SimTime now);
  void on_heartbeat(const PaxosMessage& message, sim::SimTime now);
  void on_heartbeat_ack(const PaxosMessage& message, sim::SimTime now);
  void on_leader_check(const PaxosMessage& message, sim::SimTime now);
  void on_leader_check_reply(const PaxosMessage& message, sim::SimTime now);
  void on_nack(const PaxosMessage& message, sim::SimTime now);

  // Follower side.
  bool accept_leader_message(const PaxosMessage& message, sim::SimTime now);
  void advance_follower_commit(LogIndex leader_commit, Ballot leader_ballot, LogIndex first_new,
                               LogIndex last_new);
  bool promise_blocked(sim::SimTime now) const;
  void reset_election_deadline(sim::SimTime now);
  void start_leader_check(sim::SimTime now);
  void start_election(sim::SimTime now);

  // Leader side.
  // The log a candidate would lead with, and whether its promises hold a majority of every
  // configuration that log puts in effect above its commit (docs/paxos.md).
  struct ElectionPlan {
    std::vector<LogEntry> log;  // (commit, highest], before the trailing no-op
    LogIndex known_chosen;
    std::vector<Configuration> chain;  // configuration at commit, then each one the log adds
  };
  ElectionPlan plan_election() const;
  bool election_won(const ElectionPlan& plan) const;
  void send_prepares(const ElectionPlan* plan);
  // `serve_at_once`: no lease to wait out (lead_first_ballot only).
  void become_leader(const ElectionPlan& plan, sim::SimTime now, bool serve_at_once = false);
  void become_follower(Ballot promised, sim::SimTime now);
  void send_heartbeats(sim::SimTime now);
  void send_entries(PeerProgress& peer, LogIndex from, PaxosMessage::Type type, sim::SimTime now);
  void send_catch_up(PeerProgress& peer, sim::SimTime now);
  void advance_leader_commit(sim::SimTime now);
  void sync_peers(sim::SimTime now);  // the leader's peers follow the latest configuration
  PeerProgress* find_peer(uint32_t replica);
  const PeerProgress* find_peer(uint32_t replica) const;
  bool caught_up(const PeerProgress& peer) const;
  // Whether `acked` (with ourselves) holds a majority of the configuration at the commit and of
  // the latest one: what a lease must rest on while a change is in flight.
  bool quorum_of_current_configs(const std::vector<uint32_t>& acked) const;

  // State changes that must reach the Ready.
  void write_entry(LogEntry entry);
  void set_promised(Ballot ballot);
  void set_commit(LogIndex commit);
  void queue_hard_state();
  void emit_committed();
  void send(PaxosMessage message);
  PaxosMessage reply_to(const PaxosMessage& message, PaxosMessage::Type type) const;
  void note_role(PaxosRole role, Ballot ballot);

  const LogEntry& entry(LogIndex index) const;
  HardState hard_state() const { return HardState{promised_, commit_}; }
  // The configuration entries in the log above the base (rebuilt when an entry is overwritten).
  void note_config_entry(const LogEntry& written, bool replaced_config);
  bool same_command_or_planted(const LogEntry& held, const LogEntry& incoming) const;
  void check_invariants() const;

  PaxosOptions options_;
  sim::Random random_;
  sim::Duration leader_lease_;

  PaxosRole role_ = PaxosRole::kFollower;
  Ballot promised_;
  Ballot own_ballot_;  // when candidate or leader
  uint64_t max_seen_round_ = 0;
  Ballot highest_accepted_ballot_;  // over every entry written; <= promised_

  std::deque<LogEntry> log_;  // (compacted_through_, last_index_], contiguous
  // Membership: the configuration in effect after base_config_index_ (<= every index the log
  // holds a configuration entry at), and the configuration entries above it, by index.
  Configuration base_config_;
  LogIndex base_config_index_;
  std::vector<std::pair<LogIndex, Configuration>> config_entries_;  // ascending index
  LogIndex compacted_through_;
  LogIndex last_index_;
  LogIndex commit_;
  LogIndex applied_;  // emitted as committed (or held by the recovered state machine)

  // Follower state (kept across roles where noted).
  std::optional<uint32_t> leader_hint_;
  std::optional<sim::SimTime> last_heard_from_leader_;
  sim::SimTime election_deadline_;
  // The lease grant: no new promise before grant_until_ (local), made to the leader whose message
  // we accepted last (or to ourselves as leader). A Prepare always carries a ballot above the one
  // granted, so the grant blocks every Prepare. Kept across role changes: stepping down does not
  // undo a grant.
  sim::SimTime grant_until_;
  sim::SimTime recovery_block_until_;  // after a restart, no promise before this
  LeaderCheckState check_;
  uint64_t next_check_sequence_ = 1;

  std::optional<ElectionState> election_;
  std::optional<LeaderState> leader_;

  Ready ready_;
  Ready spare_ready_;  // cleared, with capacity: becomes ready_ at the next take_ready()
  HardState last_queued_hard_state_;  // what the caller has been (or is being) told to persist
};

const char* to_string(PaxosRole role);
const char* to_string(PaxosMessage::Type type);
const char* to_string(PaxosMessage::NackReason reason);
const char* to_string(ProposeStatus status);
std::string to_string(Ballot ballot);
// One line, only the fields the type uses: "1->2 Accept b=1.1 commit=3 prev=3 [4@1.1:#7]".
std::string to_string(const PaxosMessage& message);

}  // namespace dynasim::model
