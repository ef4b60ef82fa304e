// StorageNode: replicas of many groups on one host (see storage_node.h and docs/storage.md).
//
// Code map, top to bottom:
// - wire bodies (PaxosEnvelope, SnapshotChunkBody) and their sizes and digests;
// - checkpoint metadata encoding (WAL records are in model/wal_record.h);
// - Impl: the replica table, the CPU queue, the tick index, and per-replica Ready handling,
//   apply, reads, checkpoints, snapshots and recovery.
#include "model/storage_node.h"

#include "model/healing_protocol.h"
#include "model/scrub_protocol.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "model/wal_record.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {

// ---------------------------------------------------------------------------------------------
// Wire bodies. storage_protocol.h names kPaxos's body "PaxosEnvelope" but does not define it, nor
// a body for the snapshot messages; both are private to storage nodes, so they live here.

struct PaxosEnvelope final : sim::MessageBody {
  GroupId group;
  PaxosMessage message;
};

// One chunk of a state transfer: items in key order from the leader's tree, as of `through`.
struct SnapshotChunkBody final : sim::MessageBody {
  GroupId group;
  uint32_t from_replica = 0;
  uint32_t to_replica = 0;
  uint64_t session = 0;   // unique per (sender incarnation, transfer); chunks of one session only
  uint32_t sequence = 0;  // 0, 1, 2, ...: a gap aborts the install
  bool last = false;
  LogIndex through;  // the leader's applied index the items reflect
  Configuration configuration;  // the group's configuration in effect at `through`
  std::vector<Item> items;
};

// The replica directory: which disk slot holds which group's replica. Two copies after the last
// slot; the newer valid one wins (as the B-tree's superblocks do).
//   u32 magic, u64 generation, u32 count, count x (u32 slot, u32 group, u32 replica, u8 kind),
//   u64 checksum of what precedes it
constexpr uint32_t kDirectoryMagic = 0x44534452;  // "DSDR"
constexpr uint64_t kDirectorySectors = 8;          // per copy: room for about 2,500 replicas
constexpr uint32_t kMaxDirectoryEntries = 2'400;

struct DirectoryEntry {
  uint32_t disk_slot = 0;
  GroupId group;
  uint32_t replica = 0;
  MemberKind kind = MemberKind::kFull;
};

// Header bytes we charge per message on the wire (our assumption: framing, addresses, type,
// group, a few ids; in the range of an RPC header).
constexpr uint32_t kMessageHeaderBytes = 64;
// Bytes of an address on the wire (host and port).
constexpr uint64_t kAddressBytes = 8;
// Bytes per log entry besides its command (index, ballot, command id, length).
constexpr uint32_t kEntryHeaderBytes = 32;
// Items per snapshot chunk (our assumption: ~1 MB chunks for 8 KB items, small enough to pace).
constexpr uint32_t kSnapshotChunkItems = 128;
// Strong reads waiting for the apply pipeline to catch up with the commit index, per replica.
constexpr size_t kMaxDeferredReads = 1024;
// How long, and for how many writes at most, a leader remembers per group the (client id,
// request id) of the writes it proposed, to drop network copies (our assumption: a copy has its
// own latency draw, milliseconds, so seconds cover reordering and clogs). The time bound keeps
// the memory to the recent write rate: without it every leader of a long run held the maximum.
constexpr sim::Duration kRecentCommandsWindow = sim::seconds(5);
constexpr size_t kRecentCommands = 4096;
// Committed entries waiting for the apply pipeline, per replica: more than a Paxos window and a
// recovery's re-apply can hold is a bug.
constexpr size_t kMaxApplyQueue = size_t{1} << 21;

// Bytes an attribute value stands for beyond its encoding: a Payload encodes as three u64s but
// stands for size_bytes of data, which is what travels on a real wire.
uint64_t item_wire_bytes(const Item& item) {
  return item.encode().size() + WriteCommand::stand_in_bytes(item);
}

uint64_t key_bytes(const PrimaryKey& key) {
  return key.partition.size_bytes() + (key.sort ? key.sort->size_bytes() : 0);
}

// The command bytes of a write plus what its payloads stand for (read from the encoding's fixed
// field, without decoding the command).
uint64_t command_wire_bytes(const Command& command) {
  if (command.is_noop()) return 0;
  return command.bytes.size() + WriteCommand::peek_stand_in_bytes(command.bytes).value_or(0);
}

uint64_t mix(uint64_t hash, uint64_t value) {
  return sim::splitmix64(hash ^ value);
}

uint64_t command_digest(const Command& command) {
  if (command.is_noop()) return 0;
  return mix(command.id, sim::hash_bytes(command.id, command.bytes.data(), command.bytes.size()));
}

uint64_t paxos_digest(GroupId group, const PaxosMessage& m) {
  uint64_t h = mix(0x70617870, group.value);
  h = mix(h, static_cast<uint64_t>(m.type) | (uint64_t{m.from} << 8) | (uint64_t{m.to} << 40));
  h = mix(h, m.ballot.round);
  h = mix(h, m.ballot.replica);
  h = mix(h, m.commit.value);
  h = mix(h, m.last_index.value);
  h = mix(h, m.prev_index.value);
  h = mix(h, m.accepted_through.value);
  h = mix(h, m.sequence);
  h = mix(h, (m.rejected ? 1u : 0u) | (m.behind ? 2u : 0u) | (m.leader_heard ? 4u : 0u) |
                 (static_cast<uint64_t>(m.nack_reason) << 8));
  for (const LogEntry& entry : m.entries) {
    h = mix(h, entry.index.value);
    h = mix(h, entry.ballot.round ^ (uint64_t{entry.ballot.replica} << 48));
    h = mix(h, entry.command.id);
  }
  return h;
}

uint64_t response_digest(const StorageResponse& r) {
  uint64_t h = mix(0x72657370, r.group.value);
  h = mix(h, r.request_id);
  h = mix(h, static_cast<uint64_t>(r.status));
  h = mix(h, r.applied_index.value);
  h = mix(h, r.item ? r.item->checksum() : 0);
  h = mix(h, r.leader_hint ? (uint64_t{r.leader_hint->host.value} << 32 | r.leader_hint->port)
                           : UINT64_MAX);
  // Fields of the data-plane operations, folded in when set.
  if (r.consumed.half_units != 0) h = mix(h, 0x63617061 ^ r.consumed.half_units);
  if (!r.items.empty() || r.scanned_count != 0) {
    h = mix(h, r.scanned_count);
    for (const Item& item : r.items) h = mix(h, item.checksum());
  }
  if (r.last_evaluated_key) h = mix(h, Item(*r.last_evaluated_key).checksum());
  if (r.members) {
    h = mix(h, r.members->epoch);
    for (const sim::Address& replica : r.members->replicas) {
      h = mix(h, uint64_t{replica.host.value} << 32 | replica.port);
    }
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint metadata. The WAL record encoding and the field codec are in model/wal_record.h.

using codec::get_hard_state;
using codec::put_hard_state;
using codec::put_u32;
using codec::put_u64;
using codec::put_u8;
using codec::Reader;

// What a replica's B-tree checkpoint records beside the tree.
struct CheckpointState {
  LogIndex applied;                  // the tree holds every entry up to here, and nothing after
  uint64_t wal_replay_position = 0;  // recovery reads the WAL from this sector
  uint64_t wal_next_sequence = 1;    // floor for the sequence numbers after recovery
  HardState hard_state;              // the latest hard state appended when the checkpoint began
  Configuration configuration;       // the group's configuration in effect at `applied`
};
constexpr uint8_t kCheckpointFormat = 2;

std::vector<uint8_t> encode_checkpoint(const CheckpointState& state) {
  std::vector<uint8_t> out;
  put_u8(out, kCheckpointFormat);
  put_u64(out, state.applied.value);
  put_u64(out, state.wal_replay_position);
  put_u64(out, state.wal_next_sequence);
  put_hard_state(out, state.hard_state);
  const std::vector<uint8_t> configuration = state.configuration.encode();
  put_u32(out, static_cast<uint32_t>(configuration.size()));
  out.insert(out.end(), configuration.begin(), configuration.end());
  return out;
}

bool decode_checkpoint(const std::vector<uint8_t>& bytes, CheckpointState* out) {
  Reader in{bytes};
  if (in.u8() != kCheckpointFormat) return false;
  out->applied = LogIndex(in.u64());
  out->wal_replay_position = in.u64();
  out->wal_next_sequence = in.u64();
  out->hard_state = get_hard_state(in);
  const uint32_t length = in.u32();
  if (!in.ok || bytes.size() - in.at != length) return false;
  const std::vector<uint8_t> configuration(bytes.begin() + static_cast<ptrdiff_t>(in.at),
                                           bytes.end());
  return Configuration::decode(configuration, &out->configuration);
}

uint64_t endpoint_of(sim::Address address) {
  return (uint64_t{address.host.value} << 32) | address.port;
}

sim::Address address_of(uint64_t endpoint) {
  return sim::Address{sim::HostId(static_cast<uint32_t>(endpoint >> 32)),
                      static_cast<uint32_t>(endpoint & 0xffffffffu)};
}

bool in_range(const KeyRangeBounds& range, const PrimaryKey& key) {
  if (range.begin && key < *range.begin) return false;
  if (range.end && !(key < *range.end)) return false;
  return true;
}

// Timer cookies: the top byte names the timer, the rest is a generation so that a timer that
// fired after it was superseded is recognised and ignored.
constexpr uint64_t kCookieKindShift = 56;
constexpr uint64_t kCookieTick = 1;
constexpr uint64_t kCookieCpu = 2;
constexpr uint64_t kCookieCheckpoint = 3;
constexpr uint64_t kCookieHealing = 4;      // the leaders' healing checks
constexpr uint64_t kCookieNodeHeartbeat = 5;  // to auto-admin
constexpr uint64_t kCookieSnapshotPace = 6;   // generation: the replica's index
constexpr uint64_t kCookieArchive = 7;  // generation: replica index, component, its cookie
constexpr uint64_t kCookieScrub = 8;          // scrub steps and repair bookkeeping
constexpr uint64_t kCookieAdmission = 9;      // admission's capacity reports
constexpr uint64_t kCookieCapacityReport = 20;   // consumption reports to the capacity controller
constexpr uint64_t kCookieCapacityRequest = 21;  // asking the controller for the allocation
constexpr uint64_t kCookieSplitPolicy = 22;      // splits: the leaders' policy period
constexpr uint64_t kCookieSplitCopy = 23;        // splits: a paced copy step; generation: slot
// The attribute DivergentApplyPlant adds: not the workload's "ver", so reads still judge right.
constexpr const char* kPlantedDivergenceAttribute = "planted_divergence";
// The archival components of a replica, in kCookieArchive timers (2 bits).
constexpr uint64_t kArchiveComponentArchiver = 0;
constexpr uint64_t kArchiveComponentUploader = 1;
constexpr uint64_t kArchiveComponentReference = 2;
constexpr uint64_t kCookieGenerationMask = (uint64_t{1} << kCookieKindShift) - 1;

uint64_t make_cookie(uint64_t kind, uint64_t generation) {
  return (kind << kCookieKindShift) | (generation & kCookieGenerationMask);
}

}  // namespace

// =============================================================================================

struct StorageNode::Impl {
  // A Ready's messages, waiting for the WAL to make `needed_sequence` durable (persist before
  // send).
  struct PendingReady {
    LogSequence needed_sequence = 0;
    std::vector<PaxosMessage> messages;
  };
  struct Waiter {
    sim::Address client;
    uint64_t request_id = 0;
    uint64_t command_id = 0;
    uint64_t known_epoch = 0;  // the client's view of the group (StorageRequest::known_epoch)
    ReturnValues return_values = ReturnValues::kNone;
    uint32_t key_name_bytes = 0;  // StorageRequest::key_name_bytes, for consumed capacity
  };
  // What applying one entry came to, for the client the leader answers: the outcome, the sizes
  // of the item before and after (0: none; known only where the apply read the old item) and
  // the item ReturnValues asked for.
  struct ApplyResult {
    StorageStatus status = StorageStatus::kOk;
    bool sizes_known = false;
    uint64_t old_size_bytes = 0;
    uint64_t new_size_bytes = 0;
    std::optional<Item> returned;
  };
  // What an answer carries besides its status (StorageResponse's fields of the same names).
  struct Answer {
    std::optional<Item> item;
    CapacityUnits consumed;
    std::vector<Item> items;
    uint32_t scanned_count = 0;
    std::optional<PrimaryKey> last_evaluated_key;
  };
  struct DeferredRead {
    sim::Address client;
    std::shared_ptr<const StorageRequest> request;
    LogIndex needed_applied;
  };
  // A WAL record that carried entries: its sequence and the highest index in it, to find where
  // recovery must start to see every entry above a given index.
  struct EntryRecord {
    LogSequence sequence = 0;
    uint64_t max_index = 0;
  };
  struct SnapshotSend {
    uint32_t peer = 0;
    uint64_t session = 0;
    uint32_t next_sequence = 0;
    LogIndex through;
    std::optional<PrimaryKey> next_key;
    bool started = false;
    bool holding = true;  // the apply pipeline waits while the state is read
    std::deque<std::vector<Item>> buffered;  // a paced transfer's chunks, read, not yet sent
  };
  struct SnapshotReceive {
    uint32_t from = 0;
    uint64_t session = 0;
    uint32_t next_sequence = 0;
    LogIndex through;
    Configuration configuration;
  };

  class ReplicaArchiveIo;

  // A new replica's first state, written as its first checkpoint.
  struct Seed {
    LogIndex base;
    Configuration configuration;
  };
  // The leader's view of a learner it added: where it lives, so the node there can be told to
  // create it (again, until it is heard from).
  struct LearnerSeed {
    uint32_t replica = 0;
    sim::Address node;
    MemberKind kind = MemberKind::kFull;
    Seed seed;
    sim::SimTime last_sent;
  };

  struct ScrubReplicaState;  // in "Scrub and repair" below

  struct Replica {
    size_t slot = 0;        // index in `replicas` (callbacks carry it)
    size_t disk_slot = 0;   // where its WAL and tree live on the disk
    MemberKind kind = MemberKind::kFull;
    bool dropped = false;   // left the group: kept only so in-flight callbacks find it
    std::optional<Seed> seed;  // created by healing, not yet checkpointed
    ReplicaAssignment assignment;
    std::unique_ptr<Wal> wal;
    std::unique_ptr<BTree> tree;
    std::unique_ptr<PaxosReplica> paxos;  // null until recovered
    bool recovered = false;
    bool failed = false;         // unusable (tree unrecoverable, WAL I/O error): serves nothing
    bool healthy = true;         // false once a page or record failed verification
    bool apply_stalled = false;  // the tree refused an apply (corrupt page, I/O error, no space)
    LogIndex applied;

    // Persist before send.
    LogSequence last_appended_sequence = 0;
    HardState last_appended_hard_state;
    std::deque<PendingReady> awaiting_durable;
    bool wal_full = false;  // a flush found no room: wait for a checkpoint to release some
    std::deque<EntryRecord> entry_records;

    // Apply.
    std::deque<LogEntry> apply_queue;
    bool applying = false;
    LogEntry applying_entry;  // the entry being applied, while `applying`
    bool in_pump = false;
    uint32_t apply_holds = 0;            // checkpoints and snapshot scans hold the pipeline
    std::map<uint64_t, Waiter> waiters;  // by log index, leader only
    // Leader: the (client id, request id) of the writes it proposed lately, oldest first. The
    // network may deliver one request twice (NetworkOptions::duplicate_probability); proposed
    // twice, an UpdateItem ADD would apply twice. A retry is a new attempt with a new request id,
    // so only such copies are dropped. The pair, not the command id: command ids are a hash of
    // client id ^ request id, which two clients can share. Bounded: kRecentCommandsWindow and
    // kRecentCommands; the order holds each pair with the local time it was proposed.
    std::set<std::pair<uint64_t, uint64_t>> recent_commands;
    std::deque<std::pair<sim::SimTime, std::pair<uint64_t, uint64_t>>> recent_commands_order;
    std::deque<DeferredRead> deferred_reads;

    // Checkpoints.
    uint64_t applied_since_checkpoint = 0;
    sim::SimTime last_checkpoint_at;
    bool checkpoint_running = false;
    bool checkpoint_wanted = false;
    bool checkpoint_urgent = false;

    // Snapshots.
    std::optional<SnapshotSend> sending;
    std::deque<SnapshotNeeded> snapshot_queue;
    std::optional<SnapshotReceive> receiving;
    bool content_invalid = false;  // the tree was cleared for an install not yet complete

    // Where peers' messages came from, for replies to replicas outside our configuration.
    std::map<uint32_t, sim::Address> peer_addresses;

    // Healing, while leader.
    std::map<uint32_t, sim::Address> member_nodes;  // of the last committed configuration
    std::optional<uint64_t> placement_request;  // waiting for auto-admin's answer
    sim::SimTime placement_sent;
    bool placement_may_share_az = true;  // of the request awaiting an answer
    // Since when the full replica that is to replace the log voter has waited for a node in an
    // AZ without another member (HealingOptions::rebuild_waits_for_az).
    std::optional<sim::SimTime> rebuild_waiting_since;
    std::optional<LearnerSeed> learner;
    std::set<uint32_t> reported_lost;
    uint64_t reported_epoch = 0;
    uint64_t published_version = 0;  // the last partition entry version sent to MemDS
    sim::TimerHandle pace_timer;
    uint64_t pace_session = 0;

    // Archival.
    std::unique_ptr<ReplicaArchiveIo> archive_io;
    std::unique_ptr<Archiver> archiver;
    std::unique_ptr<ReplicaArchiveIo> snapshot_io;
    std::unique_ptr<SnapshotUploader> uploader;
    bool snapshot_scanning = false;
    // Scrub's reference check, while leader (created when first needed).
    std::unique_ptr<ReplicaArchiveIo> reference_io;
    std::unique_ptr<ReferenceBuilder> reference;

    // Tick index key and lease reporting.
    sim::SimTime tick_at = sim::SimTime::max();
    uint64_t tick_version = 0;  // the version of its live tick-heap entry
    sim::SimTime reported_lease_until;  // zero: nothing reported as held
    bool lease_reported = false;

    std::unique_ptr<ScrubReplicaState> scrub;  // created by the scrubber when first needed

    // Splits (model/split_executor.h). The range the group serves now, its split generation and
    // id stride (in memory: StorageNodeOptions::splits says why no restart is supported).
    uint64_t hash_begin = 0;
    uint64_t hash_end = UINT64_MAX;
    uint32_t split_generation = 0;
    uint32_t id_stride = 1;
    std::unique_ptr<KeyTrafficSampler> sampler;  // while leader
    // The split under way, on the parent's replica; the child's replica slot.
    std::optional<SplitExecution> split;
    size_t split_child_slot = 0;
    std::optional<PrimaryKey> copy_cursor;  // where the bulk copy reads next; nullopt: the start
    // High-half keys applied since the begin marker, to copy again. Bounded by the keys the
    // partition holds.
    std::set<PrimaryKey> copy_marked;
    std::optional<PrimaryKey> applying_marked_key;  // of the entry being applied
    std::optional<uint64_t> applying_size_hash;     // of the entry being applied, if answered
    bool copy_running = false;    // a copy step is in flight
    bool copy_timer_armed = false;
    bool split_child_filling = false;  // on a child: created by a split, not started yet
    // On a child: the replica its commit marker names as the first leader (0: none). Its first
    // checkpoint holds the promise of Ballot{1, first_leader}; that replica leads at once.
    uint32_t first_leader = 0;
  };

  // Group id -> replica slot. Every message a node receives names its group, so this lookup is on
  // the hot path: group ids below kDense (the placement's, and the first generations of split
  // children) index a flat vector; larger ids, which splits reach after many generations (a
  // child's id is its parent's plus a stride that doubles), go to a map. The interface is the
  // map's subset the node uses: find / end / erase(found) / contains / operator[].
  class GroupSlots {
   public:
    struct Entry {
      uint32_t first = 0;
      size_t second = kNone;
    };
    Entry* find(uint32_t group) {
      if (group < kDense) {
        return group < dense_.size() && dense_[group].second != kNone ? &dense_[group] : nullptr;
      }
      auto found = sparse_.find(group);
      return found == sparse_.end() ? nullptr : &found->second;
    }
    Entry* end() { return nullptr; }
    bool contains(uint32_t group) { return find(group) != nullptr; }
    void erase(Entry* entry) {
      if (entry->first < kDense) {
        entry->second = kNone;
      } else {
        sparse_.erase(entry->first);
      }
    }
    size_t& operator[](uint32_t group) {
      if (group >= kDense) {
        Entry& entry = sparse_[group];
        entry.first = group;
        return entry.second;
      }
      if (group >= dense_.size()) dense_.resize(group + 1);
      dense_[group].first = group;
      return dense_[group].second;
    }

   private:
    static constexpr size_t kNone = SIZE_MAX;
    static constexpr uint32_t kDense = 1u << 16;
    std::vector<Entry> dense_;
    std::map<uint32_t, Entry> sparse_;
  };

  struct QueuedMessage {
    sim::SimTime complete_at;
    sim::Address from;
    sim::Message message;
  };

  explicit Impl(StorageNodeOptions opts) : options(std::move(opts)) {}

  StorageNodeOptions options;
  sim::Env* env = nullptr;
  std::vector<std::unique_ptr<Replica>> replicas;
  GroupSlots slot_of_group;  // by group id
  uint64_t node_seed = 0;
  std::unique_ptr<MemdsPublisher> memds_publisher;  // MemdsPublishing; null when off

  // Tick index: replicas by next due time; one node timer at the earliest. A binary min-heap by
  // (due time, slot) whose entries are never removed in place: an entry is live while its
  // replica's tick_at and tick_version still match it (every reschedule takes a fresh version),
  // and stale entries are dropped when they reach the top. Due replicas leave it in (time, slot)
  // order.
  struct TickEntry {
    sim::SimTime at;
    size_t slot;
    uint64_t version;
  };
  struct TickLater {
    bool operator()(const TickEntry& a, const TickEntry& b) const {
      return a.at != b.at ? a.at > b.at : a.slot > b.slot;
    }
  };
  std::vector<TickEntry> tick_heap;
  uint64_t tick_versions = 0;
  sim::TimerHandle tick_timer;
  sim::SimTime tick_timer_at = sim::SimTime::max();
  uint64_t tick_generation = 0;

  // CPU: cores' next free times and the FIFO queue of messages being handled.
  std::vector<sim::SimTime> core_free_at;
  std::deque<QueuedMessage> cpu_queue;
  bool cpu_timer_armed = false;
  uint64_t cpu_generation = 0;

  uint64_t next_session = 1;

  // The replica directory and the disk slots.
  uint64_t slot_sectors = 0;
  uint64_t sector_bytes = 0;
  uint64_t max_slots = 0;
  uint64_t directory_generation = 0;
  bool directory_writing = false;
  bool directory_dirty = false;
  std::vector<std::function<void()>> directory_waiters;  // run when the directory is durable
  std::set<size_t> disk_slots_used;  // this incarnation: never reused before a restart
  uint64_t next_place_request = 1;
  // Groups whose replica left this node, and a node to send their clients to (lost at restart:
  // the client then tries another replica).
  std::map<uint32_t, sim::Address> moved_groups;

  // Admission control (AdmissionWiring): built at start when enabled. Each group's buckets carry
  // an id, incarnation + the count of bucket sets built before, for StorageObserver::on_admitted.
  std::optional<NodeAdmission> admission;
  uint64_t admission_incarnation = 0;
  uint64_t admission_buckets_built = 0;
  std::map<uint32_t, uint64_t> admission_buckets;  // by group id
  // Capacity modes (AdmissionWiring::capacity_controller): the allocation every hosted partition
  // gets, the static one until the controller's first update, and the agent that reports
  // consumption and takes updates.
  PartitionAllocation admission_allocation;
  std::optional<CapacityAgent> capacity_agent;

  // ------------------------------------------------------------------------------------------
  // Boot.

  void start(sim::Env& e) {
    env = &e;
    node_seed = e.random().next_u64();
    if (options.admission.enabled) start_admission();
    if (options.splits.enabled) {
      DYN_ASSERT_MSG(!options.memds.memds_nodes.empty(), "splits need MemDS publishing");
      env->set_timer(options.splits.policy_period, make_cookie(kCookieSplitPolicy, 0));
    }
    if (!options.memds.memds_nodes.empty()) {
      memds_publisher =
          std::make_unique<MemdsPublisher>(options.memds.publisher, options.memds.memds_nodes);
    }
    core_free_at.assign(std::max<uint32_t>(1, options.cost.cpu_cores), sim::SimTime::zero());
    sim::Disk& disk = e.disk(options.disk_index);
    sector_bytes = disk.options().sector_size_bytes;
    slot_sectors = options.wal_region_sectors + options.btree_region_sectors;
    const uint64_t fit = (disk.capacity_sectors() - 2 * kDirectorySectors) / slot_sectors;
    max_slots = options.max_replica_slots == 0
                    ? fit
                    : std::min<uint64_t>(fit, options.max_replica_slots);
    DYN_ASSERT(options.replicas.size() <= max_slots);
    DYN_ASSERT(options.replicas.size() <= kMaxDirectoryEntries);
    // The directory names the replicas this node hosts; a node that never changed them has none
    // and hosts its placement's.
    disk.read(directory_offset(), 2 * kDirectorySectors * sector_bytes,
              [this](sim::ReadResult result) {
      std::vector<DirectoryEntry> entries;
      bool found = false;
      if (result.status == sim::IoStatus::kOk) {
        const uint64_t copy_bytes = kDirectorySectors * sector_bytes;
        for (uint64_t copy = 0; copy < 2; ++copy) {
          std::vector<uint8_t> sector(
              result.data.begin() + static_cast<ptrdiff_t>(copy * copy_bytes),
              result.data.begin() + static_cast<ptrdiff_t>((copy + 1) * copy_bytes));
          uint64_t generation = 0;
          std::vector<DirectoryEntry> decoded;
          if (decode_directory(sector, &generation, &decoded) &&
              (!found || generation > directory_generation)) {
            found = true;
            directory_generation = generation;
            entries = std::move(decoded);
          }
        }
      }
      if (!found) {
        for (size_t i = 0; i < options.replicas.size(); ++i) {
          entries.push_back(DirectoryEntry{static_cast<uint32_t>(i), options.replicas[i].group,
                                           options.replicas[i].replica, MemberKind::kFull});
        }
      }
      for (const DirectoryEntry& entry : entries) {
        ReplicaAssignment assignment;
        assignment.group = entry.group;
        assignment.replica = entry.replica;
        for (const ReplicaAssignment& placed : options.replicas) {
          if (placed.group == entry.group) assignment.members = placed.members;
        }
        add_replica(assignment, entry.disk_slot, entry.kind, std::nullopt);
      }
      for (auto& r : replicas) begin_recovery(*r);
      if (options.healing.enabled) {
        env->set_timer(options.healing.check_interval, make_cookie(kCookieHealing, 0));
        send_node_heartbeat();
      }
    });
  }

  uint64_t directory_offset() const { return slot_sectors * max_slots * sector_bytes; }

  static bool decode_directory(const std::vector<uint8_t>& sector, uint64_t* generation,
                               std::vector<DirectoryEntry>* entries) {
    Reader in{sector};
    if (in.u32() != kDirectoryMagic) return false;
    *generation = in.u64();
    const uint32_t count = in.u32();
    if (!in.ok || count > kMaxDirectoryEntries) return false;
    for (uint32_t i = 0; i < count && in.ok; ++i) {
      DirectoryEntry entry;
      entry.disk_slot = in.u32();
      entry.group = GroupId(in.u32());
      entry.replica = in.u32();
      const uint8_t kind = in.u8();
      if (kind > 1) return false;
      entry.kind = static_cast<MemberKind>(kind);
      entries->push_back(entry);
    }
    const size_t covered = in.at;
    const uint64_t checksum = in.u64();
    return in.ok && checksum == sim::hash_bytes(kDirectoryMagic, sector.data(), covered);
  }

  // Builds a replica's objects in `disk_slot` (not started: begin_recovery does that).
  Replica& add_replica(const ReplicaAssignment& assignment, size_t disk_slot, MemberKind kind,
                       std::optional<Seed> seed) {
    sim::Disk& disk = env->disk(options.disk_index);
    auto r = std::make_unique<Replica>();
    r->slot = replicas.size();
    r->disk_slot = disk_slot;
    r->kind = kind;
    r->seed = std::move(seed);
    r->assignment = assignment;
    DYN_ASSERT(r->assignment.replica >= 1);
    DYN_ASSERT(disk_slot < max_slots);
    DYN_ASSERT(!slot_of_group.contains(r->assignment.group.value));
    DYN_ASSERT(!disk_slots_used.contains(disk_slot));
    disk_slots_used.insert(disk_slot);
    slot_of_group[r->assignment.group.value] = r->slot;
    WalOptions wal_options;
    wal_options.region_offset_bytes = disk_slot * slot_sectors * sector_bytes;
    wal_options.region_sectors = options.wal_region_sectors;
    r->wal = std::make_unique<Wal>(disk, wal_options);
    BTreeOptions tree_options;
    tree_options.region_offset_bytes =
        (disk_slot * slot_sectors + options.wal_region_sectors) * sector_bytes;
    tree_options.region_sectors = options.btree_region_sectors;
    tree_options.cache_pages = options.btree_cache_pages;
    r->tree = std::make_unique<BTree>(disk, tree_options);
    if (options.observer != nullptr) {
      options.observer->on_replica_hosted(r->assignment.group, r->assignment.replica, env->self());
    }
    if (admission && kind == MemberKind::kFull) admission_host(r->assignment.group);
    if (r->assignment.group.value < options.memds.group_hash_ranges.size()) {
      r->hash_begin = options.memds.group_hash_ranges[r->assignment.group.value].first;
      r->hash_end = options.memds.group_hash_ranges[r->assignment.group.value].second;
    }
    r->id_stride = std::max<uint32_t>(1, options.splits.first_group_stride);
    replicas.push_back(std::move(r));
    return *replicas.back();
  }

  std::vector<DirectoryEntry> directory_entries() const {
    std::vector<DirectoryEntry> entries;
    for (const auto& r : replicas) {
      if (r->dropped || r->seed) continue;  // a new replica is listed once its seed is durable
      entries.push_back(DirectoryEntry{static_cast<uint32_t>(r->disk_slot), r->assignment.group,
                                       r->assignment.replica, r->kind});
    }
    return entries;
  }

  // Writes the directory (to the older copy) and fsyncs; `done` runs once a directory at least
  // as new as the current replica set is durable.
  void write_directory(std::function<void()> done) {
    if (done) directory_waiters.push_back(std::move(done));
    if (directory_writing) {
      directory_dirty = true;
      return;
    }
    directory_writing = true;
    directory_dirty = false;
    const std::vector<DirectoryEntry> entries = directory_entries();
    DYN_ASSERT(entries.size() <= kMaxDirectoryEntries);
    ++directory_generation;
    std::vector<uint8_t> sector;
    put_u32(sector, kDirectoryMagic);
    put_u64(sector, directory_generation);
    put_u32(sector, static_cast<uint32_t>(entries.size()));
    for (const DirectoryEntry& entry : entries) {
      put_u32(sector, entry.disk_slot);
      put_u32(sector, entry.group.value);
      put_u32(sector, entry.replica);
      put_u8(sector, static_cast<uint8_t>(entry.kind));
    }
    put_u64(sector, sim::hash_bytes(kDirectoryMagic, sector.data(), sector.size()));
    DYN_ASSERT(sector.size() <= kDirectorySectors * sector_bytes);
    sector.resize(kDirectorySectors * sector_bytes, 0);
    std::vector<std::function<void()>> waiting = std::move(directory_waiters);
    directory_waiters.clear();
    sim::Disk& disk = env->disk(options.disk_index);
    const uint64_t offset =
        directory_offset() + (directory_generation % 2) * kDirectorySectors * sector_bytes;
    auto shared_waiting = std::make_shared<std::vector<std::function<void()>>>(std::move(waiting));
    disk.write(offset, std::move(sector), [this, shared_waiting](sim::IoStatus status) {
      if (status != sim::IoStatus::kOk) return on_directory_written(false, shared_waiting);
      env->disk(options.disk_index).fsync([this, shared_waiting](sim::IoStatus synced) {
        on_directory_written(synced == sim::IoStatus::kOk, shared_waiting);
      });
    });
  }

  void on_directory_written(bool ok, std::shared_ptr<std::vector<std::function<void()>>> waiting) {
    directory_writing = false;
    if (!ok) {
      // The disk failed under the directory: try again with the next change (or now).
      directory_dirty = true;
    }
    if (ok) {
      for (auto& done : *waiting) done();
    } else {
      for (auto& done : *waiting) directory_waiters.push_back(std::move(done));
    }
    // A failed write is retried with the next change, not at once: a disk that keeps failing
    // must not turn this into a loop.
    if (ok && (directory_dirty || !directory_waiters.empty())) write_directory(nullptr);
  }

  // Recovery: the tree's checkpoint names where the WAL must be replayed from.
  void begin_recovery(Replica& r) {
    const size_t slot = r.slot;
    r.tree->recover([this, slot](BTreeRecovery recovery) {
      Replica& rep = *replicas[slot];
      if (rep.dropped) return;
      if (recovery.status != BTreeStatus::kOk) {
        // No valid checkpoint (or a bad inner page): this replica cannot know its state. It
        // serves nothing and does not vote; healing must rebuild it (docs/storage.md).
        rep.failed = true;
        rep.healthy = false;
        return;
      }
      CheckpointState checkpoint;
      if (recovery.found_checkpoint) {
        if (!decode_checkpoint(recovery.metadata.bytes, &checkpoint)) {
          rep.failed = true;
          rep.healthy = false;
          return;
        }
      }
      rep.wal->recover(checkpoint.wal_replay_position, [this, slot, checkpoint](WalRecovery wal) {
        if (replicas[slot]->dropped) return;
        finish_recovery(*replicas[slot], checkpoint, std::move(wal));
      });
    });
  }

  void finish_recovery(Replica& r, const CheckpointState& checkpoint, WalRecovery wal) {
    // The latest hard state: promised and commit only grow, so the component-wise maximum of
    // the checkpoint's and every record's is the latest.
    RecoveredState state;
    state.hard_state = checkpoint.hard_state;
    std::map<uint64_t, LogEntry> latest;  // latest entry per index
    LogSequence last_sequence = checkpoint.wal_next_sequence - 1;
    for (WalRecord& record : wal.records) {
      WalBatch batch;
      if (!decode_wal_record(record.payload, &batch)) {
        // A record that passed its checksum but does not parse: our own bug or a collision.
        DYN_ASSERT_MSG(false, "undecodable WAL record");
      }
      if (batch.hard_state) {
        state.hard_state.promised = std::max(state.hard_state.promised, batch.hard_state->promised);
        state.hard_state.commit = std::max(state.hard_state.commit, batch.hard_state->commit);
      }
      uint64_t max_index = 0;
      for (LogEntry& e : batch.entries) {
        max_index = std::max(max_index, e.index.value);
        latest[e.index.value] = std::move(e);
      }
      if (max_index > 0) r.entry_records.push_back(EntryRecord{record.sequence, max_index});
      last_sequence = std::max(last_sequence, record.sequence);
    }
    // The log: the contiguous run that reaches down to applied + 1 (or starts above nothing).
    state.applied_through = checkpoint.applied;
    uint64_t first = checkpoint.applied.value + 1;
    while (first > 1 && latest.contains(first - 1)) --first;
    for (uint64_t i = first; latest.contains(i); ++i) state.log.push_back(latest[i]);
    if (state.log.empty()) {
      // Entries above a gap cannot be used; nothing at applied + 1 means nothing past it.
      state.log.clear();
    }
    r.wal->reset(wal.next_position, last_sequence + 1);
    r.last_appended_sequence = last_sequence;
    r.last_appended_hard_state = state.hard_state;
    r.applied = checkpoint.applied;
    r.last_checkpoint_at = env->local_now();

    PaxosOptions paxos_options = options.paxos;
    paxos_options.self = r.assignment.replica;
    paxos_options.members.clear();
    state.configuration = checkpoint.configuration.members.empty()
                              ? initial_configuration(r.assignment)
                              : checkpoint.configuration;
    sim::Random random(sim::splitmix64(node_seed ^ (uint64_t{r.assignment.group.value} << 8) ^
                                       r.assignment.replica));
    // Wal::reset makes every sector before the recovered end reusable, including the records
    // this recovery just read from [replay position, end). So the log above the checkpoint is
    // appended again at the end, and a checkpoint that keeps no WAL tail is taken as soon as the
    // re-apply lets it: from then on nothing before the end is needed. (Until it is durable, a
    // full lap of new writes would overwrite the old records; see docs/storage.md.)
    Ready rewrite;
    rewrite.hard_state = state.hard_state;
    for (const LogEntry& entry : state.log) {
      if (entry.index > checkpoint.applied) rewrite.entries_to_persist.push_back(entry);
    }
    if (!rewrite.entries_to_persist.empty() || !(state.hard_state == HardState{})) {
      persist(r, rewrite);
      start_flush(r);
      r.checkpoint_wanted = true;
      r.checkpoint_urgent = true;
    }
    r.paxos = std::make_unique<PaxosReplica>(std::move(paxos_options), random, std::move(state),
                                             env->local_now());
    r.recovered = true;
    start_archival(r);
    // The first Ready re-emits (applied_through, commit] as committed: the re-apply.
    after_input(r);
  }

  // The group's first configuration: replicas 1..3, full voters, where the placement put them.
  static Configuration initial_configuration(const ReplicaAssignment& assignment) {
    Configuration configuration;
    for (uint32_t m = 1; m <= kReplicasPerGroup; ++m) {
      configuration.members.push_back(
          Member{m, MemberKind::kFull, true, endpoint_of(assignment.members[m - 1])});
    }
    configuration.next_replica = kReplicasPerGroup + 1;
    return configuration;
  }

  // Where replica `replica` of r's group lives: the latest configuration, the one at the commit
  // (a member being removed is still streamed to), or the address its messages came from.
  std::optional<sim::Address> member_address(const Replica& r, uint32_t replica) const {
    if (r.paxos) {
      if (const Member* m = r.paxos->configuration().find(replica)) return address_of(m->endpoint);
      if (const Member* m = r.paxos->configuration_at(r.paxos->commit_index()).find(replica)) {
        return address_of(m->endpoint);
      }
    }
    auto learned = r.peer_addresses.find(replica);
    if (learned != r.peer_addresses.end()) return learned->second;
    return std::nullopt;
  }

  // ------------------------------------------------------------------------------------------
  // The tick index.

  void reschedule(Replica& r) {
    const sim::SimTime due = r.paxos ? r.paxos->next_tick_at() : sim::SimTime::max();
    if (due == r.tick_at) return;
    r.tick_at = due;
    r.tick_version = ++tick_versions;
    if (due != sim::SimTime::max()) {
      tick_heap.push_back(TickEntry{due, r.slot, r.tick_version});
      std::push_heap(tick_heap.begin(), tick_heap.end(), TickLater{});
    }
    arm_tick_timer();
  }

  bool tick_entry_live(const TickEntry& entry) const {
    const Replica& r = *replicas[entry.slot];
    return r.tick_at == entry.at && r.tick_version == entry.version;
  }

  void pop_tick_entry() {
    std::pop_heap(tick_heap.begin(), tick_heap.end(), TickLater{});
    tick_heap.pop_back();
  }

  void arm_tick_timer() {
    while (!tick_heap.empty() && !tick_entry_live(tick_heap.front())) pop_tick_entry();
    if (tick_heap.empty()) return;
    const sim::SimTime earliest = tick_heap.front().at;
    if (tick_timer_at <= earliest && tick_timer.valid()) return;
    if (tick_timer.valid()) env->cancel_timer(tick_timer);
    ++tick_generation;
    const sim::SimTime now = env->local_now();
    const sim::Duration delay = earliest > now ? earliest - now : sim::Duration(0);
    tick_timer = env->set_timer(delay, make_cookie(kCookieTick, tick_generation));
    tick_timer_at = earliest;
  }

  void on_tick_timer(uint64_t generation) {
    if (generation != (tick_generation & kCookieGenerationMask)) return;
    tick_timer = sim::TimerHandle{};
    tick_timer_at = sim::SimTime::max();
    const sim::SimTime now = env->local_now();
    // Bounded: each replica is taken out once; reschedule puts it back at a later due time.
    std::vector<size_t> due;
    while (!tick_heap.empty() && tick_heap.front().at <= now) {
      if (tick_entry_live(tick_heap.front())) due.push_back(tick_heap.front().slot);
      pop_tick_entry();
    }
    for (size_t slot : due) {
      Replica& r = *replicas[slot];
      r.tick_at = sim::SimTime::max();
      r.paxos->tick(now);
      after_input(r);
    }
    arm_tick_timer();
  }

  // ------------------------------------------------------------------------------------------
  // After every input to a replica's Paxos: take its Ready, report its lease, re-index it.

  void after_input(Replica& r) {
    if (r.dropped) return;
    handle_ready(r);
    report_lease(r);
    reschedule(r);
    serve_deferred_reads(r);
    if (options.healing.enabled && r.paxos->role() == PaxosRole::kLeader &&
        r.paxos->configuration_at(r.paxos->commit_index()).epoch != r.reported_epoch) {
      note_committed_configuration(r);
    }
    if (memds_publisher) publish_partition_entry(r);
  }

  // MemdsPublishing: a leader publishes its partition's entry when its version changes.
  void publish_partition_entry(Replica& r) {
    if (r.dropped || !r.paxos || r.paxos->role() != PaxosRole::kLeader) return;
    const Configuration& committed = r.paxos->configuration_at(r.paxos->commit_index());
    const Ballot ballot = r.paxos->ballot();
    // The ballot (round, then replica number: ballots of one round are ordered by replica) in
    // the high bits, the epoch in the low 32.
    DYN_ASSERT(ballot.round < (uint64_t{1} << 24) && ballot.replica < 256 &&
               committed.epoch < (uint64_t{1} << 32));
    const uint64_t version = split_entry_version(
        r.split_generation, ballot.round << 40 | uint64_t{ballot.replica} << 32 | committed.epoch);
    if (version == r.published_version) return;
    if (r.split_generation == 0) {
      DYN_ASSERT(r.assignment.group.value < options.memds.group_hash_ranges.size());
    }
    PartitionEntry entry;
    entry.table = options.memds.table;
    entry.hash_begin = r.hash_begin;
    entry.hash_end = r.hash_end;
    entry.group = r.assignment.group;
    entry.members.epoch = committed.epoch;
    for (const Member& member : committed.members) {
      if (member.voter && member.kind == MemberKind::kFull) {
        entry.members.replicas.push_back(address_of(member.endpoint));
      }
    }
    if (entry.members.replicas.empty()) return;
    entry.leader_hint = env->self();
    entry.version = version;
    // A full queue: the next input tries again.
    if (memds_publisher->publish(*env, {entry}) == MemdsPublisher::PublishStatus::kQueued) {
      r.published_version = version;
    }
  }

  void report_lease(Replica& r) {
    if (options.observer == nullptr || !r.paxos) return;
    const sim::SimTime now = env->local_now();
    const bool can_serve = r.paxos->can_serve_strong_read(now);
    const std::optional<sim::SimTime> expiry = r.paxos->lease_expiry();
    if (can_serve && expiry) {
      if (!r.lease_reported || r.reported_lease_until != *expiry) {
        r.lease_reported = true;
        r.reported_lease_until = *expiry;
        options.observer->on_lease(r.assignment.group, r.assignment.replica, now, *expiry);
      }
    } else if (r.lease_reported) {
      r.lease_reported = false;
      r.reported_lease_until = sim::SimTime::zero();
      options.observer->on_lease(r.assignment.group, r.assignment.replica, now, now);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Ready handling: persist, then send, then apply.

  void handle_ready(Replica& r) {
    if (r.failed) return;
    Ready ready = r.paxos->take_ready();
    if (ready.empty()) {
      r.paxos->recycle_ready(std::move(ready));
      return;
    }
    for (const RoleChange& change : ready.role_changes) {
      if (change.role != PaxosRole::kLeader) {
        // Not leader any more: the waiters' entries may still commit (and are answered then),
        // or be replaced by another leader's (answered kNotLeader when that applies).
        if (r.sending) {
          if (r.sending->holding) --r.apply_holds;
          r.sending.reset();  // a scan in flight sees the session gone and stops
        }
        r.snapshot_queue.clear();
      }
    }
    const bool appended = persist(r, ready);
    // Committed entries apply at once: each is already durable at a quorum (the leader counts
    // its own acceptance only because its Accept left after its flush, and a peer acknowledges
    // only what it made durable), so the state machine may take it before this replica's own
    // flush of the commit index completes. Only messages wait for the flush.
    for (LogEntry& entry : ready.committed) {
      r.apply_queue.push_back(std::move(entry));
      DYN_ASSERT(r.apply_queue.size() <= kMaxApplyQueue);
    }
    queue_snapshots(r, ready.snapshots_needed);
    PendingReady pending{r.last_appended_sequence, std::move(ready.messages)};
    r.paxos->recycle_ready(std::move(ready));
    if (options.plant_send_before_fsync) {
      // Planted bug: acknowledge before fsync. Messages (acceptances, acks) leave now; the flush
      // still runs but nothing waits for it.
      release(r, pending);
      if (appended) r.wal->flush([](WalStatus, LogSequence) {});
    } else if (r.awaiting_durable.empty() && pending.needed_sequence <= r.wal->durable_through()) {
      release(r, pending);
    } else {
      r.awaiting_durable.push_back(std::move(pending));
      if (appended) start_flush(r);
    }
    pump_apply(r);
    start_next_snapshot(r);
  }

  // Appends the Ready's hard state and entries to the WAL. Returns whether anything was added.
  bool persist(Replica& r, const Ready& ready) {
    if (!ready.hard_state && ready.entries_to_persist.empty()) return false;
    const uint64_t max_record = 256 * 1024;  // well under WalOptions::max_record_bytes
    std::optional<HardState> hard_state = ready.hard_state;
    size_t begin = 0;
    const std::vector<LogEntry>& entries = ready.entries_to_persist;
    do {
      size_t end = begin;
      uint64_t bytes = 0;
      while (end < entries.size() &&
             (end == begin || bytes + entries[end].command.bytes.size() + 64 < max_record)) {
        bytes += entries[end].command.bytes.size() + 64;
        ++end;
      }
      std::vector<uint8_t> record =
          encode_wal_record(hard_state, entries.data() + begin, end - begin);
      LogSequence sequence = 0;
      const WalStatus status = r.wal->append(std::move(record), &sequence);
      // The append buffer is bounded at 8 MB; a Ready is bounded by Paxos's windows far below.
      DYN_ASSERT_MSG(status == WalStatus::kOk, to_string(status));
      r.last_appended_sequence = sequence;
      uint64_t max_index = 0;
      for (size_t i = begin; i < end; ++i) max_index = std::max(max_index, entries[i].index.value);
      if (max_index > 0) r.entry_records.push_back(EntryRecord{sequence, max_index});
      if (hard_state) r.last_appended_hard_state = *hard_state;
      hard_state.reset();
      begin = end;
    } while (begin < entries.size());
    return true;
  }

  void start_flush(Replica& r) {
    const size_t slot = r.slot;
    r.wal->flush([this, slot](WalStatus status, LogSequence durable_through) {
      on_flushed(*replicas[slot], status, durable_through);
    });
  }

  void on_flushed(Replica& r, WalStatus status, LogSequence durable_through) {
    if (r.failed) return;
    if (status == WalStatus::kFull) {
      // Records went back to the WAL's buffer: checkpoint now, release what it covers, flush
      // again when it is done.
      r.wal_full = true;
      r.checkpoint_urgent = true;
      request_checkpoint(r);
      return;
    }
    if (status != WalStatus::kOk) {
      // The disk failed under the log: nothing more can be made durable, so nothing more may be
      // sent. The replica stops (as a real one would crash on an fsync error).
      r.failed = true;
      r.healthy = false;
      return;
    }
    // Every Ready this flush made durable leaves together, so consecutive Accepts (and
    // Accepteds) to a peer travel as one message: Multi-Paxos batching at the flush boundary.
    PendingReady durable{durable_through, {}};
    while (!r.awaiting_durable.empty() &&
           r.awaiting_durable.front().needed_sequence <= durable_through) {
      std::vector<PaxosMessage>& messages = r.awaiting_durable.front().messages;
      durable.messages.insert(durable.messages.end(), std::make_move_iterator(messages.begin()),
                              std::make_move_iterator(messages.end()));
      r.awaiting_durable.pop_front();
    }
    coalesce_messages(durable.messages, options.paxos.max_entries_per_message);
    release(r, durable);
    report_lease(r);
    serve_deferred_reads(r);
  }

  void release(Replica& r, PendingReady& pending) {
    for (PaxosMessage& m : pending.messages) send_paxos(r, std::move(m));
    pending.messages.clear();
  }

  void queue_snapshots(Replica& r, const std::vector<SnapshotNeeded>& needs) {
    for (const SnapshotNeeded& need : needs) {
      if (r.paxos->role() != PaxosRole::kLeader) continue;
      const bool queued =
          std::any_of(r.snapshot_queue.begin(), r.snapshot_queue.end(),
                      [&](const SnapshotNeeded& s) { return s.replica == need.replica; });
      if (!queued && !(r.sending && r.sending->peer == need.replica)) {
        r.snapshot_queue.push_back(need);
      }
    }
  }

  void send_paxos(Replica& r, PaxosMessage&& outgoing) {
    auto body = std::make_shared<PaxosEnvelope>();
    body->group = r.assignment.group;
    body->message = std::move(outgoing);
    const PaxosMessage& m = body->message;
    uint64_t bytes = kMessageHeaderBytes;
    for (const LogEntry& entry : m.entries) {
      bytes += kEntryHeaderBytes + command_wire_bytes(entry.command);
    }
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kPaxos);
    message.size_bytes = static_cast<uint32_t>(std::min<uint64_t>(bytes, UINT32_MAX));
    message.digest = paxos_digest(r.assignment.group, m);
    const std::optional<sim::Address> to = member_address(r, m.to);
    if (!to) return;  // a replica we know nothing of: dropped, as the network might
    message.body = std::move(body);
    env->send(*to, std::move(message));
  }

  // ------------------------------------------------------------------------------------------
  // Apply: one entry at a time, in order, so a conditional write's get and put are never
  // interleaved with another entry's operations.

  bool apply_blocked(const Replica& r) const {
    return r.applying || r.apply_holds > 0 || r.apply_stalled || r.content_invalid || r.failed;
  }

  void pump_apply(Replica& r) {
    if (r.in_pump) return;
    r.in_pump = true;
    size_t budget = r.apply_queue.size();  // bounded: each entry is applied once
    while (budget-- > 0 && !apply_blocked(r) && !r.apply_queue.empty()) {
      LogEntry entry = std::move(r.apply_queue.front());
      r.apply_queue.pop_front();
      if (entry.index <= r.applied) continue;  // covered by a snapshot or checkpoint
      DYN_ASSERT(entry.index == r.applied.next());
      start_apply(r, std::move(entry));
    }
    r.in_pump = false;
    if (r.scrub && !r.scrub->to_serve.empty()) serve_queued_range_requests(r);
    if (!apply_blocked(r)) maybe_checkpoint(r);
    serve_deferred_reads(r);
    if (!r.applying) start_next_snapshot(r);
  }

  void start_apply(Replica& r, LogEntry entry) {
    if (!entry.command.is_configuration() && DigestMarker::is_marker(entry.command.bytes)) {
      apply_digest_marker(r, entry);
      return;
    }
    if (options.splits.enabled && !entry.command.is_configuration() && !entry.command.is_noop() &&
        SplitMarker::is_marker(entry.command.bytes)) {
      apply_split_marker(r, entry);
      return;
    }
    if (r.kind == MemberKind::kFull && scrub_skip_entry(r, entry)) return;
    if (entry.command.is_noop() || entry.command.is_configuration() || r.kind == MemberKind::kLog) {
      // A log replica holds no items: it only moves its applied index (for checkpoints).
      // Paxos acts on configurations itself; the checkpoint records the one at `applied`.
      finish_apply(r, entry, StorageStatus::kOk);
      return;
    }
    if (options.splits.enabled && !split_admits_entry(r, entry)) {
      // A write for the half a split moved away, ordered after the commit marker: no replica
      // applies it; the client is told the group does not hold the key and asks again.
      env->metrics().add("splits.writes_for_moved_half", 1);
      finish_apply(r, entry, StorageStatus::kNoSuchGroup);
      return;
    }
    // The leader answers a client for this entry: it reads the old item to report capacity
    // and ReturnValues, so it takes the general path below.
    auto waiter = r.waiters.find(entry.index.value);
    const bool answering = waiter != r.waiters.end();
    if (admission && r.recovered && r.paxos && r.paxos->role() != PaxosRole::kLeader) {
      // A follower's work for a replicated write: the node-level bucket pays (admission.h). The
      // size: the command's bytes and the payload they stand for.
      const uint64_t size_bytes =
          entry.command.bytes.size() +
          WriteCommand::peek_stand_in_bytes(entry.command.bytes).value_or(0);
      admission->on_replicated_write(write_capacity(size_bytes), env->local_now());
    }
    const ReturnValues return_values =
        answering ? waiter->second.return_values : ReturnValues::kNone;
    // Points into the command's bytes, which the entry keeps alive while it applies.
    const bool diverge = planted_divergence_due(r);
    std::optional<std::span<const uint8_t>> put_item;
    if (!diverge && !answering) put_item = WriteCommand::unconditional_put_item(entry.command.bytes);
    WriteCommand command;
    if (!put_item) {
      const bool decoded = WriteCommand::decode(entry.command.bytes, &command);
      DYN_ASSERT_MSG(decoded, "a committed command does not decode");
      if (diverge && command.op == StorageOp::kPut) {
        command.item.set(kPlantedDivergenceAttribute, true);
        env->metrics().add("plant.divergent_applies", 1);
      }
    }
    r.applying = true;
    // One apply at a time per replica: the entry waits in the replica, and the callbacks carry
    // only (this, slot), which std::function holds without allocating.
    r.applying_entry = std::move(entry);
    const size_t slot = r.slot;
    auto done = [this, slot](BTreeStatus status, ApplyResult result) {
      Replica& rep = *replicas[slot];
      rep.applying = false;
      if (rep.dropped) return;
      const LogEntry applied_entry = std::move(rep.applying_entry);
      rep.applying_entry = LogEntry{};
      if (status != BTreeStatus::kOk && status != BTreeStatus::kNotFound) {
        rep.applying_marked_key.reset();
        apply_failed(rep, applied_entry, status);
        return;
      }
      const bool marked = rep.applying_marked_key.has_value();
      if (marked) {
        rep.copy_marked.insert(std::move(*rep.applying_marked_key));
        rep.applying_marked_key.reset();
      }
      finish_apply(rep, applied_entry, std::move(result));
      if (marked) split_copy_step(rep);
      if (!rep.in_pump) pump_apply(rep);
    };
    if (put_item) {
      // The item's canonical encoding, straight from the log: the tree needs no Item for it.
      r.tree->put_encoded(*put_item,
                          [done](BTreeStatus status) { done(status, ApplyResult{}); });
      return;
    }
    const bool needs_item = answering || command.op == StorageOp::kUpdate ||
                            command.condition.kind != Condition::Kind::kNone ||
                            !command.condition_expression.is_true();
    if (!needs_item) {
      write_to_tree(r, std::move(command), done);
      return;
    }
    // The conditions and the update are judged against the item the write lands on, here, in
    // log order, on every replica alike.
    auto shared_command = std::make_shared<WriteCommand>(std::move(command));
    r.tree->get(shared_command->key, [this, slot, shared_command, done, return_values](
                                         BTreeStatus status, std::optional<Item> current) {
      if (status != BTreeStatus::kOk && status != BTreeStatus::kNotFound) {
        done(status, ApplyResult{});
        return;
      }
      const Item* current_item = current ? &*current : nullptr;
      ApplyResult result;
      result.sizes_known = true;
      result.old_size_bytes = current_item ? stored_item_size_bytes(*current_item, 0) : 0;
      WriteEffect effect = shared_command->apply_to(current_item);
      if (options.plant_acknowledge_update_without_apply &&
          shared_command->op == StorageOp::kUpdate && effect.status == StorageStatus::kOk) {
        effect.change = WriteEffect::Change::kNone;  // the planted bug: the ADD is dropped
      }
      result.status = effect.status;
      if (effect.status != StorageStatus::kOk) {
        if (effect.status != StorageStatus::kConditionFailed) result.old_size_bytes = 0;
        done(BTreeStatus::kOk, std::move(result));
        return;
      }
      if (effect.change == WriteEffect::Change::kPut) {
        result.new_size_bytes = stored_item_size_bytes(effect.item, 0);
      }
      if (return_values == ReturnValues::kAllOld && current) result.returned = std::move(current);
      if (return_values == ReturnValues::kAllNew && effect.change == WriteEffect::Change::kPut) {
        result.returned = effect.item;
      }
      Replica& rep = *replicas[slot];
      switch (effect.change) {
        case WriteEffect::Change::kPut:
          rep.tree->put(std::move(effect.item), [done, result](BTreeStatus put_status) mutable {
            done(put_status, std::move(result));
          });
          return;
        case WriteEffect::Change::kErase:
          rep.tree->erase(shared_command->key,
                          [done, result](BTreeStatus erase_status) mutable {
                            done(erase_status, std::move(result));
                          });
          return;
        case WriteEffect::Change::kNone:
          done(BTreeStatus::kOk, std::move(result));
          return;
      }
    });
  }

  template <typename Done>
  void write_to_tree(Replica& r, WriteCommand command, Done done) {
    if (command.op == StorageOp::kPut) {
      r.tree->put(std::move(command.item),
                  [done](BTreeStatus status) { done(status, ApplyResult{}); });
    } else {
      DYN_ASSERT(command.op == StorageOp::kDelete);
      r.tree->erase(command.key, [done](BTreeStatus status) { done(status, ApplyResult{}); });
    }
  }

  void apply_failed(Replica& r, const LogEntry& entry, BTreeStatus status) {
    // The state machine cannot take this entry: applying later ones would diverge, so the
    // replica stops applying. It keeps its log and keeps voting (the WAL is intact), serves no
    // reads from the bad range, and no strong reads at all (applied < commit).
    r.apply_stalled = true;
    if (status == BTreeStatus::kCorrupt || !r.tree->healthy()) r.healthy = false;
    env->metrics().add("storage.apply_stalled", 1);
    r.apply_queue.push_front(entry);  // not applied
    auto it = r.waiters.find(entry.index.value);
    if (it != r.waiters.end()) {
      respond(r, it->second.client, it->second.request_id, it->second.known_epoch,
              StorageStatus::kUnhealthy, {}, {}, LogIndex());
      r.waiters.erase(it);
    }
  }

  void finish_apply(Replica& r, const LogEntry& entry, StorageStatus outcome) {
    ApplyResult result;
    result.status = outcome;
    finish_apply(r, entry, std::move(result));
  }

  void finish_apply(Replica& r, const LogEntry& entry, ApplyResult result) {
    DYN_ASSERT(entry.index == r.applied.next());
    if (r.applying_size_hash) {
      if (result.sizes_known && result.status == StorageStatus::kOk) {
        split_observe_size(r, static_cast<int64_t>(result.new_size_bytes) -
                                  static_cast<int64_t>(result.old_size_bytes));
      }
      r.applying_size_hash.reset();
    }
    r.applied = entry.index;
    if (r.archiver) offer_to_archiver(r, entry);
    ++r.applied_since_checkpoint;
    if (options.observer != nullptr) {
      options.observer->on_applied(r.assignment.group, r.assignment.replica, entry.index,
                                   command_digest(entry.command));
    }
    auto it = r.waiters.find(entry.index.value);
    if (it != r.waiters.end()) {
      const Waiter waiter = it->second;
      r.waiters.erase(it);
      if (waiter.command_id == entry.command.id && !entry.command.is_noop()) {
        const StorageStatus outcome = result.status;
        Answer answer;
        answer.item = std::move(result.returned);
        if (outcome == StorageStatus::kOk || outcome == StorageStatus::kConditionFailed) {
          // Developer Guide, CapacityUnitCalculations: the larger of the item before and after,
          // per 1 KB; a failed condition costs the existing item's size, or one unit.
          const auto sized = [&](uint64_t bytes) {
            return bytes == 0 ? 0 : bytes + waiter.key_name_bytes;
          };
          answer.consumed = write_capacity(
              std::max(sized(result.old_size_bytes), sized(result.new_size_bytes)));
        }
        respond(r, waiter.client, waiter.request_id, waiter.known_epoch, outcome, {}, {},
                entry.index, std::move(answer));
      } else {
        // Another leader's entry took the slot: the write was not made here.
        respond(r, waiter.client, waiter.request_id, waiter.known_epoch, StorageStatus::kNotLeader,
                {}, leader_address(r), LogIndex());
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Checkpoints.

  void maybe_checkpoint(Replica& r) {
    if (r.checkpoint_running || !r.recovered || r.failed || r.content_invalid) return;
    const bool by_count = r.applied_since_checkpoint >= options.checkpoint_every_entries;
    const bool by_time = r.applied_since_checkpoint > 0 &&
                         env->local_now() - r.last_checkpoint_at >= options.checkpoint_interval;
    if (by_count || by_time || r.checkpoint_wanted || r.checkpoint_urgent) start_checkpoint(r);
  }

  void request_checkpoint(Replica& r) {
    r.checkpoint_wanted = true;
    if (!apply_blocked(r)) maybe_checkpoint(r);
  }

  // Where recovery must start reading the WAL to see every entry above `keep_from`, and the
  // sequence of the first record it must read (records before it can be forgotten).
  struct ReplayStart {
    uint64_t position = 0;
    LogSequence first_sequence = 0;
  };
  ReplayStart replay_start(Replica& r, uint64_t keep_from) {
    for (const EntryRecord& record : r.entry_records) {
      if (record.max_index > keep_from) {
        uint64_t position = r.wal->position_of(record.sequence);
        if (position == UINT64_MAX) {
          // The WAL no longer knows where the record is. Either it is still in the append
          // buffer (it will be written at or after next_position), or it was written before the
          // WAL stopped tracking it: released by an earlier checkpoint, or read back at recovery
          // (Wal::reset). Then the replay must start at the oldest sector still retained, which
          // holds every record that survives; starting at next_position would skip them.
          position = record.sequence > r.wal->durable_through() ? r.wal->next_position()
                                                                : r.wal->oldest_position();
        }
        return ReplayStart{position, record.sequence};
      }
    }
    return ReplayStart{r.wal->next_position(), r.wal->next_sequence()};
  }

  void start_checkpoint(Replica& r) {
    if (r.apply_stalled || !r.healthy) return;  // never checkpoint state we could not apply
    if (scrub_blocks_state_reads(r)) return;
    r.checkpoint_running = true;
    r.checkpoint_wanted = false;
    ++r.apply_holds;  // the tree must hold exactly `applied` while the checkpoint is taken
    const LogIndex applied = r.applied;
    const uint64_t tail = options.log_tail_entries;
    uint64_t keep_from = applied.value > tail ? applied.value - tail : 0;
    // A WAL more than half full keeps no tail behind the checkpoint (the tail stays in memory).
    if (r.checkpoint_urgent || r.wal->sectors_in_use() * 2 > options.wal_region_sectors) {
      keep_from = applied.value;
    }
    // Nothing the object store has not acknowledged leaves the WAL or the log (docs/archival.md).
    if (r.archiver) keep_from = std::min(keep_from, r.archiver->archived_through().value);
    CheckpointState state;
    state.applied = applied;
    const ReplayStart replay = replay_start(r, keep_from);
    state.wal_replay_position = replay.position;
    state.wal_next_sequence = r.wal->next_sequence();
    state.hard_state = r.last_appended_hard_state;
    state.configuration = r.paxos->configuration_at(applied);
    r.checkpoint_urgent = false;
    const size_t slot = r.slot;
    CheckpointMetadata metadata;
    metadata.bytes = encode_checkpoint(state);
    r.applied_since_checkpoint = 0;
    r.last_checkpoint_at = env->local_now();
    const LogSequence first_kept = replay.first_sequence;
    r.tree->checkpoint(std::move(metadata),
                       [this, slot, state, keep_from, first_kept](BTreeStatus status) {
                         on_checkpointed(*replicas[slot], status, state, keep_from, first_kept);
                       });
  }

  void on_checkpointed(Replica& r, BTreeStatus status, const CheckpointState& state,
                       uint64_t keep_from, LogSequence first_kept) {
    r.checkpoint_running = false;
    --r.apply_holds;
    if (r.dropped) return;
    if (status == BTreeStatus::kOk) {
      r.wal->release_before(state.wal_replay_position);
      while (!r.entry_records.empty() && r.entry_records.front().sequence < first_kept) {
        r.entry_records.pop_front();
      }
      if (keep_from > 0 && r.paxos->compacted_through().value < keep_from) {
        r.paxos->compact(LogIndex(keep_from));
      }
      env->metrics().add("storage.checkpoints", 1);
    } else {
      if (status == BTreeStatus::kCorrupt) r.healthy = false;
      env->metrics().add("storage.checkpoint_failures", 1);
    }
    if (r.wal_full) {
      r.wal_full = false;
      start_flush(r);
    }
    pump_apply(r);
    start_next_snapshot(r);
    after_input(r);
  }

  void on_checkpoint_timer() {
    // Time-based checkpoints for replicas that applied something but stopped receiving writes.
    for (auto& r : replicas) {
      if (r->recovered && !apply_blocked(*r)) maybe_checkpoint(*r);
    }
    env->set_timer(options.checkpoint_interval, make_cookie(kCookieCheckpoint, 0));
  }

  // ------------------------------------------------------------------------------------------
  // Snapshots: leader side. The scan holds the apply pipeline so the items it reads are exactly
  // the state at `through` (the tree keeps no older versions to read from).

  void start_next_snapshot(Replica& r) {
    if (r.sending || r.snapshot_queue.empty() || r.failed || !r.healthy) return;
    if (r.paxos->role() != PaxosRole::kLeader) {
      r.snapshot_queue.clear();
      return;
    }
    if (r.applying || r.checkpoint_running) return;  // retried when those finish
    if (scrub_blocks_state_reads(r)) return;         // retried after the repair
    const SnapshotNeeded need = r.snapshot_queue.front();
    r.snapshot_queue.pop_front();
    if (r.applied < need.through) {
      r.snapshot_queue.push_back(need);  // not applied that far yet: retry after more applies
      return;
    }
    SnapshotSend send;
    send.peer = need.replica;
    send.session = (node_seed << 20) ^ next_session++;
    send.through = r.applied;
    r.sending = send;
    ++r.apply_holds;
    env->metrics().add("storage.snapshots_sent", 1);
    scan_next_chunk(r);
  }

  void scan_next_chunk(Replica& r) {
    const size_t slot = r.slot;
    const uint64_t session = r.sending->session;
    r.tree->scan(r.sending->next_key, kSnapshotChunkItems,
                 [this, slot, session](BTreeStatus status, std::vector<Item> items,
                                       std::optional<PrimaryKey> next) {
                   Replica& rep = *replicas[slot];
                   if (!rep.sending || rep.sending->session != session) {
                     // Stepped down meanwhile: the hold was released there.
                     return;
                   }
                   if (status != BTreeStatus::kOk) {
                     if (status == BTreeStatus::kCorrupt) rep.healthy = false;
                     end_snapshot_send(rep);
                     return;
                   }
                   if (paced()) {
                     // A paced rebuild reads the whole state now (the hold must be short:
                     // writes wait behind it) and sends it at the rebuild's pace afterwards.
                     rep.sending->buffered.push_back(std::move(items));
                     if (next) {
                       rep.sending->next_key = std::move(next);
                       scan_next_chunk(rep);
                       return;
                     }
                     release_snapshot_hold(rep);
                     send_buffered_chunk(rep);
                     return;
                   }
                   send_chunk(rep, std::move(items), !next.has_value());
                   if (!next) {
                     end_snapshot_send(rep);
                     return;
                   }
                   rep.sending->next_key = std::move(next);
                   scan_next_chunk(rep);
                 });
  }

  // Returns the bytes the chunk charges the wire.
  uint64_t send_chunk(Replica& r, std::vector<Item> items, bool last) {
    auto body = std::make_shared<SnapshotChunkBody>();
    body->group = r.assignment.group;
    body->from_replica = r.assignment.replica;
    body->to_replica = r.sending->peer;
    body->session = r.sending->session;
    body->sequence = r.sending->next_sequence++;
    body->last = last;
    body->through = r.sending->through;
    body->configuration = r.paxos->configuration_at(body->through);
    uint64_t bytes = kMessageHeaderBytes;
    uint64_t digest = mix(mix(body->session, body->sequence), body->through.value);
    for (const Item& item : items) {
      bytes += item_wire_bytes(item);
      digest = mix(digest, item.checksum());
    }
    body->items = std::move(items);
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kSnapshotChunk);
    message.size_bytes = static_cast<uint32_t>(std::min<uint64_t>(bytes, UINT32_MAX));
    message.digest = digest;
    const std::optional<sim::Address> to = member_address(r, body->to_replica);
    if (!to) return bytes;
    message.body = std::move(body);
    env->send(*to, std::move(message));
    return bytes;
  }

  bool paced() const {
    return options.healing.enabled && options.healing.rebuild_bytes_per_second > 0;
  }

  void release_snapshot_hold(Replica& r) {
    if (!r.sending || !r.sending->holding) return;
    r.sending->holding = false;
    --r.apply_holds;
    pump_apply(r);
  }

  // The next buffered chunk, then a pause of its bytes at the rebuild's pace.
  void send_buffered_chunk(Replica& r) {
    if (r.sending->buffered.empty()) {
      end_snapshot_send(r);
      return;
    }
    std::vector<Item> items = std::move(r.sending->buffered.front());
    r.sending->buffered.pop_front();
    const bool last = r.sending->buffered.empty();
    const uint64_t bytes = send_chunk(r, std::move(items), last);
    if (last) {
      end_snapshot_send(r);
      return;
    }
    const auto delay = sim::Duration(static_cast<int64_t>(
        static_cast<double>(bytes) / options.healing.rebuild_bytes_per_second * 1e9));
    r.pace_timer = env->set_timer(delay, make_cookie(kCookieSnapshotPace, r.slot));
    r.pace_session = r.sending->session;
  }

  void on_snapshot_pace(uint64_t slot) {
    if (slot >= replicas.size()) return;
    Replica& r = *replicas[slot];
    r.pace_timer = sim::TimerHandle{};
    if (r.dropped || !r.sending || r.sending->session != r.pace_session) return;
    send_buffered_chunk(r);
  }

  void end_snapshot_send(Replica& r) {
    release_snapshot_hold(r);
    r.sending.reset();
    pump_apply(r);
    start_next_snapshot(r);
  }

  // Snapshots: receiver side.

  void on_snapshot_chunk(Replica& r, const SnapshotChunkBody& chunk) {
    if (!r.recovered || r.failed || !r.healthy) return;
    if (chunk.sequence == 0) {
      // A new transfer. Only worth it if it moves us past our commit, and only when no apply is
      // in flight (its nested tree operations would land after the clear).
      if (r.paxos->role() == PaxosRole::kLeader || chunk.through <= r.paxos->commit_index() ||
          r.applying || r.checkpoint_running) {
        return;
      }
      r.receiving =
          SnapshotReceive{chunk.from_replica, chunk.session, 0, chunk.through, chunk.configuration};
      r.content_invalid = true;
      scrub_forget(r);
      if (r.kind == MemberKind::kFull) r.tree->clear([](BTreeStatus) {});
      env->metrics().add("storage.snapshots_received", 1);
    }
    if (!r.receiving || r.receiving->session != chunk.session ||
        r.receiving->next_sequence != chunk.sequence) {
      // A lost or late chunk: this transfer is unusable. The tree stays invalid (it serves
      // nothing) until a full transfer arrives; Paxos asks the leader again.
      r.receiving.reset();
      return;
    }
    ++r.receiving->next_sequence;
    if (r.kind == MemberKind::kFull) {
      for (const Item& item : chunk.items) r.tree->put(item, [](BTreeStatus) {});
    }
    if (!chunk.last) return;
    // Every item is queued ahead of the checkpoint (FIFO), which makes them durable with the
    // snapshot's index as applied; only then does Paxos learn of it.
    const LogIndex through = chunk.through;
    const Configuration configuration = r.receiving->configuration;
    r.receiving.reset();
    r.checkpoint_running = true;
    CheckpointState state;
    state.applied = through;
    state.wal_replay_position = replay_start(r, through.value).position;
    state.wal_next_sequence = r.wal->next_sequence();
    state.hard_state = r.last_appended_hard_state;
    state.configuration = configuration;
    CheckpointMetadata metadata;
    metadata.bytes = encode_checkpoint(state);
    const size_t slot = r.slot;
    r.tree->checkpoint(std::move(metadata), [this, slot, through,
                                             configuration](BTreeStatus status) {
      Replica& rep = *replicas[slot];
      rep.checkpoint_running = false;
      if (rep.dropped) return;
      if (status != BTreeStatus::kOk) {
        if (status == BTreeStatus::kCorrupt) rep.healthy = false;
        return;  // still invalid; a later transfer may succeed
      }
      install_snapshot(rep, through, configuration);
    });
  }

  void install_snapshot(Replica& r, LogIndex through, const Configuration& configuration) {
    const InstallSnapshotStatus status = r.paxos->install_snapshot(through, configuration);
    // The entries up to `through` are not this replica's to archive: its peers hold them.
    if (r.archiver && !options.archival.plant_accept_sequence_gap) r.archiver->start_after(through);
    DYN_ASSERT(status != InstallSnapshotStatus::kRefusedWhileLeader);
    r.content_invalid = false;
    r.applied = std::max(r.applied, through);
    r.applied_since_checkpoint = 0;
    r.last_checkpoint_at = env->local_now();
    while (!r.apply_queue.empty() && r.apply_queue.front().index <= through) {
      r.apply_queue.pop_front();
    }
    after_input(r);
    pump_apply(r);
  }

  // ------------------------------------------------------------------------------------------
  // Requests.

  std::optional<sim::Address> leader_address(const Replica& r) const {
    if (!r.paxos) return std::nullopt;
    const std::optional<uint32_t> hint = r.paxos->leader_hint();
    if (!hint) return std::nullopt;
    return member_address(r, *hint);
  }

  // `known_epoch` is the asking client's view of the group (StorageRequest::known_epoch): when
  // the group has committed a later configuration, the answer carries its members, so that
  // clients follow replicas that healing moved (docs/healing.md, "Clients").
  void respond(const Replica& r, sim::Address client, uint64_t request_id, uint64_t known_epoch,
               StorageStatus status, std::optional<Item> item, std::optional<sim::Address> hint,
               LogIndex applied) {
    respond(r, client, request_id, known_epoch, status, std::move(item), hint, applied,
            Answer());
  }
  void respond(const Replica& r, sim::Address client, uint64_t request_id, uint64_t known_epoch,
               StorageStatus status, std::optional<Item> item, std::optional<sim::Address> hint,
               LogIndex applied, Answer answer) {
    if (item) answer.item = std::move(item);
    respond_group(r.assignment.group, client, request_id, status, std::nullopt, hint, applied,
                  members_newer_than(r, known_epoch), std::move(answer));
  }

  // The full voters of the latest configuration r's commit has passed, if its epoch is above
  // `known_epoch`. Committed, so that one epoch always names one member set.
  std::optional<GroupMembers> members_newer_than(const Replica& r, uint64_t known_epoch) const {
    if (!r.paxos || r.dropped) return std::nullopt;
    const Configuration& committed = r.paxos->configuration_at(r.paxos->commit_index());
    if (committed.epoch <= known_epoch) return std::nullopt;
    GroupMembers members;
    members.epoch = committed.epoch;
    for (const Member& member : committed.members) {
      if (member.voter && member.kind == MemberKind::kFull) {
        members.replicas.push_back(address_of(member.endpoint));
      }
    }
    if (members.replicas.empty()) return std::nullopt;
    return members;
  }

  void respond_group(GroupId group, sim::Address client, uint64_t request_id, StorageStatus status,
                     std::optional<Item> item, std::optional<sim::Address> hint, LogIndex applied,
                     std::optional<GroupMembers> members = std::nullopt) {
    respond_group(group, client, request_id, status, std::move(item), hint, applied,
                  std::move(members), Answer());
  }
  void respond_group(GroupId group, sim::Address client, uint64_t request_id, StorageStatus status,
                     std::optional<Item> item, std::optional<sim::Address> hint, LogIndex applied,
                     std::optional<GroupMembers> members, Answer answer) {
    auto body = std::make_shared<StorageResponse>();
    body->group = group;
    body->request_id = request_id;
    body->status = status;
    body->item = item ? std::move(item) : std::move(answer.item);
    body->leader_hint = hint;
    body->applied_index = applied;
    body->members = std::move(members);
    body->consumed = answer.consumed;
    body->items = std::move(answer.items);
    body->scanned_count = answer.scanned_count;
    body->last_evaluated_key = std::move(answer.last_evaluated_key);
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kResponse);
    // Members: the epoch and an address (host and port) each.
    const uint64_t members_bytes =
        body->members ? 8 + kAddressBytes * body->members->replicas.size() : 0;
    uint64_t page_bytes = 0;
    for (const Item& page_item : body->items) page_bytes += item_wire_bytes(page_item);
    if (body->last_evaluated_key) page_bytes += key_bytes(*body->last_evaluated_key);
    message.size_bytes = static_cast<uint32_t>(
        kMessageHeaderBytes + (body->item ? item_wire_bytes(*body->item) : 0) + members_bytes +
        page_bytes);
    message.digest = response_digest(*body);
    message.body = std::move(body);
    env->send(client, std::move(message));
  }

  bool range_unhealthy(const Replica& r, const PrimaryKey& key) const {
    for (const KeyRangeBounds& range : r.tree->unhealthy_ranges()) {
      if (in_range(range, key)) return true;
    }
    return false;
  }

  StorageStatus validate(const StorageRequest& request) const {
    const auto ok = [](ExpressionStatus status) { return status == ExpressionStatus::kOk; };
    if (is_write(request.op)) {
      if (!ok(request.condition_expression.validate())) return StorageStatus::kValidation;
      if (request.op == StorageOp::kUpdate && !ok(request.update.validate())) {
        return StorageStatus::kValidation;
      }
      // DynamoDB: PutItem and DeleteItem return ALL_OLD at most.
      if (request.return_values == ReturnValues::kAllNew && request.op != StorageOp::kUpdate) {
        return StorageStatus::kValidation;
      }
    }
    if (request.op == StorageOp::kQuery || request.op == StorageOp::kScan) {
      if (!ok(request.page.filter.validate())) return StorageStatus::kValidation;
    }
    if (request.op == StorageOp::kScan) {
      // The group is named; no key. The range must be a range.
      return request.scan.hash_begin <= request.scan.hash_end ? StorageStatus::kOk
                                                              : StorageStatus::kValidation;
    }
    if (request.op == StorageOp::kQuery) {
      const KeyCondition& condition = request.query.key_condition;
      if (!ok(condition.validate()) || !(condition.partition == request.key.partition)) {
        return StorageStatus::kValidation;
      }
      // DynamoDB: "The provided starting key is invalid" when it is not of the query.
      const auto& start = request.page.exclusive_start_key;
      if (start && !(start->partition == condition.partition)) return StorageStatus::kValidation;
    }
    if (request.key.partition.size_bytes() == 0) return StorageStatus::kValidation;
    if (request.key.partition.size_bytes() > kMaxPartitionKeyBytes) {
      return StorageStatus::kValidation;
    }
    if (request.key.sort && (request.key.sort->size_bytes() == 0 ||
                             request.key.sort->size_bytes() > kMaxSortKeyBytes)) {
      return StorageStatus::kValidation;
    }
    if (request.op == StorageOp::kPut) {
      if (!(request.item.key() == request.key)) return StorageStatus::kValidation;
      uint64_t size = key_bytes(request.key);
      for (const auto& [name, value] : request.item.attributes()) {
        size += name.size() + value_size_bytes(value);
      }
      if (size > kMaxItemSizeBytes) return StorageStatus::kValidation;
    }
    return StorageStatus::kOk;
  }

  void on_request(sim::Address from, const std::shared_ptr<const StorageRequest>& request) {
    auto found = slot_of_group.find(request->group.value);
    if (found == slot_of_group.end()) {
      // A group whose replica left this node: point the client at where the group went (the
      // node that told us, or a member we knew), as a leader hint. Clients find groups through
      // the static placement until request routers and MemDS take over (a later layer), so
      // without this a group healed away from all its first nodes would be unreachable.
      auto moved = moved_groups.find(request->group.value);
      if (moved != moved_groups.end()) {
        env->metrics().add("healing.clients_redirected", 1);
        respond_group(request->group, from, request->request_id, StorageStatus::kNotLeader, {},
                      moved->second, LogIndex());
        return;
      }
      respond_group(request->group, from, request->request_id, StorageStatus::kNoSuchGroup, {}, {},
                    LogIndex());
      return;
    }
    Replica& r = *replicas[found->second];
    auto answer = [&](StorageStatus status, std::optional<sim::Address> hint = std::nullopt) {
      respond(r, from, request->request_id, request->known_epoch, status, {}, hint, LogIndex());
    };
    if (r.failed) return answer(StorageStatus::kUnhealthy);
    if (!r.recovered) return answer(StorageStatus::kRecovering);
    // A log replica has no items to read and never leads: send the client to the leader.
    if (r.kind == MemberKind::kLog) return answer(StorageStatus::kNotLeader, leader_address(r));
    const StorageStatus valid = validate(*request);
    if (valid != StorageStatus::kOk) return answer(valid);
    if (options.splits.enabled && request->op != StorageOp::kScan &&
        !in_split_range(r, partition_hash(request->key.partition))) {
      // The key's half moved to a split's child: no members, so the router re-resolves.
      return respond_group(r.assignment.group, from, request->request_id,
                           StorageStatus::kNoSuchGroup, {}, {}, LogIndex());
    }
    if (!is_write(request->op)) return on_get(r, from, request);
    if (request->op == StorageOp::kUpdate && options.plant_evaluate_update_at_leader_before_log &&
        r.paxos->role() == PaxosRole::kLeader) {
      return planted_update_at_leader(r, from, request);
    }
    on_write(r, from, *request);
  }

  // The planted bug (StorageNodeOptions::plant_evaluate_update_at_leader_before_log): evaluate
  // the update against the leader's tree now and log the resulting item as a plain put. Two
  // updates that arrive before either applies both start from the same old item.
  void planted_update_at_leader(Replica& r, sim::Address from,
                                const std::shared_ptr<const StorageRequest>& request) {
    const size_t slot = r.slot;
    r.tree->get(request->key, [this, slot, from, request](BTreeStatus status,
                                                         std::optional<Item> current) {
      Replica& rep = *replicas[slot];
      if (rep.dropped) return;
      if (status != BTreeStatus::kOk && status != BTreeStatus::kNotFound) {
        respond(rep, from, request->request_id, request->known_epoch, StorageStatus::kUnhealthy,
                {}, {}, LogIndex());
        return;
      }
      StorageRequest put = *request;
      put.op = StorageOp::kPut;
      put.update = UpdateExpression{};
      if (request->update.apply(current ? &*current : nullptr, request->key, &put.item) !=
          ExpressionStatus::kOk) {
        respond(rep, from, request->request_id, request->known_epoch, StorageStatus::kValidation,
                {}, {}, LogIndex());
        return;
      }
      env->metrics().add("plant.updates_evaluated_at_leader", 1);
      on_write(rep, from, put);
    });
  }

  // A copy of a request this leader proposed (Replica::recent_commands): dropped, counted, and the
  // first one's answer is the client's.
  bool proposed_lately(Replica& r, const StorageRequest& request) {
    if (!r.recent_commands.contains({request.client_id, request.request_id})) return false;
    env->metrics().add("storage.duplicate_requests_dropped", 1);
    return true;
  }

  void remember_proposed(Replica& r, const StorageRequest& request) {
    const sim::SimTime now = env->local_now();
    while (!r.recent_commands_order.empty() &&
           (r.recent_commands_order.size() >= kRecentCommands ||
            r.recent_commands_order.front().first + kRecentCommandsWindow < now)) {
      r.recent_commands.erase(r.recent_commands_order.front().second);
      r.recent_commands_order.pop_front();
    }
    r.recent_commands.insert({request.client_id, request.request_id});
    r.recent_commands_order.push_back({now, {request.client_id, request.request_id}});
  }

  void on_write(Replica& r, sim::Address from, const StorageRequest& request) {
    // Unique per (client, request); never 0 (the no-op's id).
    const uint64_t command_id = sim::splitmix64(mix(request.client_id, request.request_id)) | 1;
    if (proposed_lately(r, request)) return;
    if (r.paxos->role() != PaxosRole::kLeader) {
      respond(r, from, request.request_id, request.known_epoch, StorageStatus::kNotLeader, {},
              leader_address(r), LogIndex());
      return;
    }
    if (!r.healthy || r.apply_stalled) {
      // This leader could not apply the write to its tree (docs/storage.md: a gap until
      // leadership can be handed over).
      respond(r, from, request.request_id, request.known_epoch, StorageStatus::kUnhealthy, {}, {},
              LogIndex());
      return;
    }
    if (admission && !admit_write(r, request)) {
      respond(r, from, request.request_id, request.known_epoch, StorageStatus::kThrottled, {}, {},
              LogIndex());
      return;
    }
    if (options.splits.enabled) {
      split_observe(r, partition_hash(request.key.partition),
                    write_capacity(request.op == StorageOp::kPut
                                       ? stored_item_size_bytes(request.item, request.key_name_bytes)
                                       : 0),
                    /*write=*/true);
    }
    Command paxos_command;
    paxos_command.id = command_id;
    paxos_command.bytes = WriteCommand::encode(request.client_id, request.request_id, request.op,
                                               request.key, request.item, request.condition,
                                               request.condition_expression, request.update);
    const ProposeResult result = r.paxos->propose(std::move(paxos_command), env->local_now());
    switch (result.status) {
      case ProposeStatus::kOk:
        r.waiters[result.index.value] =
            Waiter{from,         request.request_id,    command_id,
                   request.known_epoch, request.return_values, request.key_name_bytes};
        remember_proposed(r, request);
        break;
      case ProposeStatus::kNotLeader:
        respond(r, from, request.request_id, request.known_epoch, StorageStatus::kNotLeader, {},
                leader_address(r), LogIndex());
        break;
      case ProposeStatus::kNotServingYet:
        respond(r, from, request.request_id, request.known_epoch, StorageStatus::kNotServing, {},
                {}, LogIndex());
        break;
      case ProposeStatus::kBusy:
      case ProposeStatus::kLogFull:
        if (result.status == ProposeStatus::kLogFull) request_checkpoint(r);
        respond(r, from, request.request_id, request.known_epoch, StorageStatus::kBusy, {}, {},
                LogIndex());
        break;
      case ProposeStatus::kInvalidCommand:
        respond(r, from, request.request_id, request.known_epoch, StorageStatus::kValidation, {},
                {}, LogIndex());
        break;
      case ProposeStatus::kChangePending:
      case ProposeStatus::kNotCaughtUp:
        DYN_ASSERT_MSG(false, "a membership status for a write");
        break;
    }
    after_input(r);
  }

  void on_get(Replica& r, sim::Address from, const std::shared_ptr<const StorageRequest>& request) {
    if (r.content_invalid) {
      respond(r, from, request->request_id, request->known_epoch, StorageStatus::kRecovering, {},
              {}, LogIndex());
      return;
    }
    if (read_touches_unhealthy_range(r, *request)) {
      respond(r, from, request->request_id, request->known_epoch, StorageStatus::kUnhealthy, {}, {},
              LogIndex());
      return;
    }
    if (request->consistency == ReadConsistency::kEventual) {
      read_from_tree(r, from, request);
      return;
    }
    if (r.paxos->role() != PaxosRole::kLeader && !r.paxos->options().plant_follower_strong_reads) {
      respond(r, from, request->request_id, request->known_epoch, StorageStatus::kNotLeader, {},
              leader_address(r), LogIndex());
      return;
    }
    if (!r.paxos->can_serve_strong_read(env->local_now())) {
      respond(r, from, request->request_id, request->known_epoch, StorageStatus::kNotServing, {},
              {}, LogIndex());
      return;
    }
    if (r.applied < r.paxos->commit_index()) {
      // Committed entries still on their way through the WAL or the apply pipeline: the read
      // waits for them (it must see every write acknowledged before it arrived).
      if (r.deferred_reads.size() >= kMaxDeferredReads || r.apply_stalled) {
        respond(r, from, request->request_id, request->known_epoch,
                r.apply_stalled ? StorageStatus::kUnhealthy : StorageStatus::kBusy, {}, {},
                LogIndex());
        return;
      }
      r.deferred_reads.push_back(DeferredRead{from, request, r.paxos->commit_index()});
      return;
    }
    serve_strong_read(r, from, request);
  }

  void serve_strong_read(Replica& r, sim::Address from,
                         const std::shared_ptr<const StorageRequest>& request) {
    report_lease(r);
    if (options.observer != nullptr) {
      options.observer->on_strong_read(r.assignment.group, r.assignment.replica, env->local_now());
    }
    read_from_tree(r, from, request);
  }

  // Kept out of line: inlined into serve_deferred_reads, g++ 12 warns that the answer's empty
  // std::optional<Item> "may be used uninitialized" (a false positive that -Werror turns fatal).
  [[gnu::noinline]] void refuse_deferred_read(const Replica& r, const DeferredRead& read,
                                              StorageStatus status,
                                              std::optional<sim::Address> hint) {
    respond(r, read.client, read.request->request_id, read.request->known_epoch, status,
            std::nullopt, hint, LogIndex());
  }

  void serve_deferred_reads(Replica& r) {
    size_t budget = r.deferred_reads.size();
    while (budget-- > 0 && !r.deferred_reads.empty()) {
      DeferredRead& head = r.deferred_reads.front();
      const bool leader_now = r.paxos && r.paxos->can_serve_strong_read(env->local_now());
      if (leader_now && r.applied < head.needed_applied && !r.apply_stalled) return;
      DeferredRead read = std::move(head);
      r.deferred_reads.pop_front();
      if (!leader_now) {
        const bool leader = r.paxos && r.paxos->role() == PaxosRole::kLeader;
        refuse_deferred_read(r, read,
                             leader ? StorageStatus::kNotServing : StorageStatus::kNotLeader,
                             leader ? std::nullopt : leader_address(r));
      } else if (r.apply_stalled && r.applied < read.needed_applied) {
        refuse_deferred_read(r, read, StorageStatus::kUnhealthy, std::nullopt);
      } else {
        serve_strong_read(r, read.client, read.request);
      }
    }
  }

  // A read that would touch a key range the tree lists as damaged (a Scan reads the whole tree).
  bool read_touches_unhealthy_range(const Replica& r, const StorageRequest& request) const {
    if (request.op == StorageOp::kGet) return range_unhealthy(r, request.key);
    if (request.op == StorageOp::kScan) return !r.tree->unhealthy_ranges().empty();
    const PrimaryKey first{request.key.partition, std::nullopt};
    for (const KeyRangeBounds& range : r.tree->unhealthy_ranges()) {
      if (in_range(range, first)) return true;
      if (range.begin && range.begin->partition == request.key.partition) return true;
    }
    return false;
  }

  void read_from_tree(Replica& r, sim::Address from,
                      const std::shared_ptr<const StorageRequest>& request) {
    const uint64_t key_hash =
        options.splits.enabled && request->op != StorageOp::kScan
            ? partition_hash(request->key.partition)
            : 0;
    if (options.splits.enabled && request->op != StorageOp::kScan &&
        !in_split_range(r, key_hash)) {
      // The range shrank since the read arrived (a deferred strong read behind a split's commit).
      respond_group(r.assignment.group, from, request->request_id, StorageStatus::kNoSuchGroup, {},
                    {}, LogIndex());
      return;
    }
    if (request->op != StorageOp::kGet) {
      start_page_read(r, from, request);
      return;
    }
    const size_t slot = r.slot;
    const uint64_t request_id = request->request_id;
    const uint64_t known_epoch = request->known_epoch;
    const ReadConsistency consistency = request->consistency;
    const uint32_t key_name_bytes = request->key_name_bytes;
    r.tree->get(request->key, [this, slot, from, request_id, known_epoch, consistency,
                               key_name_bytes, key_hash](BTreeStatus status,
                                                           std::optional<Item> item) {
      Replica& rep = *replicas[slot];
      Answer answer;
      switch (status) {
        case BTreeStatus::kOk:
          // Developer Guide, CapacityUnitCalculations: per 4 KB, eventual reads half.
          answer.consumed =
              read_capacity(stored_item_size_bytes(*item, key_name_bytes), consistency);
          if (admission && !admit_read(rep, answer.consumed)) {
            respond(rep, from, request_id, known_epoch, StorageStatus::kThrottled, {}, {},
                    LogIndex());
            return;
          }
          split_observe(rep, key_hash, answer.consumed, /*write=*/false);
          respond(rep, from, request_id, known_epoch, StorageStatus::kOk, std::move(item), {},
                  LogIndex(), std::move(answer));
          return;
        case BTreeStatus::kNotFound:
          // A missing item still costs the minimum.
          answer.consumed = read_capacity(0, consistency);
          if (admission && !admit_read(rep, answer.consumed)) {
            respond(rep, from, request_id, known_epoch, StorageStatus::kThrottled, {}, {},
                    LogIndex());
            return;
          }
          split_observe(rep, key_hash, answer.consumed, /*write=*/false);
          respond(rep, from, request_id, known_epoch, StorageStatus::kNotFound, {}, {}, LogIndex(),
                  std::move(answer));
          return;
        case BTreeStatus::kQueueFull:
          respond(rep, from, request_id, known_epoch, StorageStatus::kBusy, {}, {}, LogIndex());
          return;
        case BTreeStatus::kCorrupt:
        case BTreeStatus::kIoError:
        case BTreeStatus::kNoSpace:
          if (status == BTreeStatus::kCorrupt) rep.healthy = false;
          respond(rep, from, request_id, known_epoch, StorageStatus::kUnhealthy, {}, {},
                  LogIndex());
          return;
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Query and Scan pages (docs/api.md). A page is read from the tree in chunks, in key order:
  // a Query from its key condition's lower bound (or its ExclusiveStartKey) until the condition
  // ends; a Scan over the whole tree, taking the items whose partition hash lies in its range.
  // Items evaluated count against Limit and the 1 MB before the filter. A reverse Query reads
  // forward too (the tree has no reverse cursor) and keeps the last items that fit the page: the
  // page DynamoDB would read backwards, at the cost of passing over the items before it.

  // Items per tree scan call. Our assumption: enough to amortise the call, few enough that a
  // chunk stays small next to a page.
  static constexpr uint32_t kPageChunkItems = 128;

  struct PageRead {
    size_t slot = 0;
    sim::Address client;
    std::shared_ptr<const StorageRequest> request;
    std::optional<PrimaryKey> cursor;  // where the next chunk starts (inclusive)
    std::deque<Item> evaluated;        // the page before the filter, in key order
    uint64_t evaluated_bytes = 0;      // their sizes, for the 1 MB and the capacity
    bool dropped_front = false;        // reverse: items before the page were passed over
    bool cut = false;                  // forward: the page stopped at Limit or 1 MB
    uint64_t passed_items = 0;         // every item read, for the CPU charge
    uint64_t passed_bytes = 0;
    bool in_call = false;              // the tree is inside the scan() call
    bool answered_inline = false;      // and it answered within it
  };

  void start_page_read(Replica& r, sim::Address from,
                       const std::shared_ptr<const StorageRequest>& request) {
    auto read = std::make_shared<PageRead>();
    read->slot = r.slot;
    read->client = from;
    read->request = request;
    const std::optional<PrimaryKey>& start = request->page.exclusive_start_key;
    if (request->op == StorageOp::kQuery) {
      read->cursor = request->query.key_condition.lower_bound();
      // Forward: continue at the start key (skipped when met). Reverse reads up to it.
      if (request->query.scan_forward && start && *read->cursor < *start) read->cursor = start;
    } else {
      read->cursor = start;  // nullopt: from the first key
    }
    continue_page_read(read);
  }

  // Issues chunk reads while the tree answers inside the call; an answer that waited for the
  // disk resumes here from its callback. Each chunk moves the cursor forward, so the loop ends
  // with the tree.
  void continue_page_read(const std::shared_ptr<PageRead>& read) {
    while (true) {
      Replica& r = *replicas[read->slot];
      if (r.dropped) return;
      read->in_call = true;
      read->answered_inline = false;
      r.tree->scan(read->cursor, kPageChunkItems,
                   [this, read](BTreeStatus status, std::vector<Item> items,
                                std::optional<PrimaryKey> next) {
                     if (!on_page_chunk(*read, status, std::move(items), next)) return;
                     if (read->in_call) {
                       read->answered_inline = true;
                     } else {
                       continue_page_read(read);
                     }
                   });
      read->in_call = false;
      if (!read->answered_inline) return;
    }
  }

  // Takes one chunk into the page. Returns true if another chunk is needed; otherwise the read
  // was answered (finish_page_read returns false for that).
  bool on_page_chunk(PageRead& read, BTreeStatus status, std::vector<Item> items,
                     const std::optional<PrimaryKey>& next) {
    Replica& r = *replicas[read.slot];
    if (r.dropped) return false;
    if (status != BTreeStatus::kOk) {
      if (status == BTreeStatus::kCorrupt) r.healthy = false;
      return finish_page_read(read, status == BTreeStatus::kQueueFull ? StorageStatus::kBusy
                                                                      : StorageStatus::kUnhealthy);
    }
    const StorageRequest& request = *read.request;
    const std::optional<PrimaryKey>& start = request.page.exclusive_start_key;
    const bool query = request.op == StorageOp::kQuery;
    const bool forward = !query || request.query.scan_forward;
    const uint32_t limit = request.page.limit;
    for (Item& item : items) {
      const PrimaryKey& key = item.key();
      const uint64_t size = stored_item_size_bytes(item, request.key_name_bytes);
      ++read.passed_items;
      read.passed_bytes += size;
      if (query) {
        const KeyCondition& condition = request.query.key_condition;
        if (condition.past_end(key)) return finish_page_read(read, StorageStatus::kOk);
        if (!forward && start && !(key < *start)) {
          return finish_page_read(read, StorageStatus::kOk);
        }
        if (!condition.matches(key)) continue;
      } else {
        const uint64_t hash = partition_hash(key.partition);
        if (hash < request.scan.hash_begin || hash > request.scan.hash_end) continue;
        if (options.splits.enabled && !in_split_range(r, hash)) continue;  // moved by a split
      }
      if (forward && start && !(*start < key)) continue;
      if (forward && options.plant_page_limit_after_filter && !request.page.filter.evaluate(&item)) {
        continue;  // the planted bug: items the filter drops are not counted
      }
      if (forward) {
        // The page ends before the item that would take it past 1 MB (an item is at most
        // 400 KB, so a page always holds one), or at Limit items evaluated.
        if (!read.evaluated.empty() && read.evaluated_bytes + size > kMaxPageBytes) {
          read.cut = true;
          return finish_page_read(read, StorageStatus::kOk);
        }
        read.evaluated_bytes += size;
        read.evaluated.push_back(std::move(item));
        if (limit != 0 && read.evaluated.size() >= limit) {
          read.cut = true;
          return finish_page_read(read, StorageStatus::kOk);
        }
      } else {
        // Reverse: keep the last items that fit; those before them are passed over.
        read.evaluated_bytes += size;
        read.evaluated.push_back(std::move(item));
        while (read.evaluated.size() > 1 &&
               ((limit != 0 && read.evaluated.size() > limit) ||
                read.evaluated_bytes > kMaxPageBytes)) {
          read.evaluated_bytes -= stored_item_size_bytes(read.evaluated.front(),
                                                         request.key_name_bytes);
          read.evaluated.pop_front();
          read.dropped_front = true;
        }
      }
    }
    if (!next) return finish_page_read(read, StorageStatus::kOk);
    read.cursor = next;
    return true;
  }

  bool finish_page_read(PageRead& read, StorageStatus status) {
    Replica& r = *replicas[read.slot];
    const StorageRequest& request = *read.request;
    const StorageCostModel& c = options.cost;
    // The page's CPU: every item read, and its bytes. It takes a core now, so messages queued
    // behind it wait (the answer itself leaves at once; our simplification).
    charge_cpu(c.per_scanned_item * static_cast<int64_t>(read.passed_items) +
               c.per_kilobyte * static_cast<int64_t>(read.passed_bytes / 1024));
    env->metrics().add("storage.page_items_read", read.passed_items);
    if (status != StorageStatus::kOk) {
      respond(r, read.client, request.request_id, request.known_epoch, status, {}, {},
              LogIndex());
      return false;
    }
    const bool forward = request.op != StorageOp::kQuery || request.query.scan_forward;
    Answer answer;
    // Developer Guide, CapacityUnitCalculations: the items read summed, then rounded up to 4 KB
    // (an empty page still costs the minimum).
    answer.consumed = read_capacity(read.evaluated_bytes, request.consistency);
    if (admission && !admit_read(r, answer.consumed)) {
      respond(r, read.client, request.request_id, request.known_epoch, StorageStatus::kThrottled,
              {}, {}, LogIndex());
      return false;
    }
    if (options.splits.enabled && request.op == StorageOp::kQuery) {
      split_observe(r, partition_hash(request.key.partition), answer.consumed, /*write=*/false);
    }
    answer.scanned_count = static_cast<uint32_t>(read.evaluated.size());
    const uint32_t limit = request.page.limit;
    if (forward) {
      if (read.cut) answer.last_evaluated_key = read.evaluated.back().key();
    } else {
      std::reverse(read.evaluated.begin(), read.evaluated.end());
      const bool full = limit != 0 && read.evaluated.size() >= limit;
      if ((read.dropped_front || full) && !read.evaluated.empty()) {
        answer.last_evaluated_key = read.evaluated.back().key();
      }
    }
    for (Item& item : read.evaluated) {
      if (request.page.filter.evaluate(&item)) answer.items.push_back(std::move(item));
    }
    respond(r, read.client, request.request_id, request.known_epoch, StorageStatus::kOk, {}, {},
            LogIndex(), std::move(answer));
    return false;
  }

  // ------------------------------------------------------------------------------------------
  // Messages and the CPU queue.

  bool is_request(const sim::Message& m) const {
    return m.type == static_cast<uint32_t>(StorageMessageType::kRequest);
  }

  sim::Duration cost_of(const sim::Message& m) const {
    const StorageCostModel& c = options.cost;
    sim::Duration cost = c.per_message;
    const auto kilobytes = [](uint64_t bytes) { return static_cast<int64_t>(bytes / 1024); };
    if (m.type == static_cast<uint32_t>(StorageMessageType::kRequest)) {
      const auto* request = dynamic_cast<const StorageRequest*>(m.body.get());
      if (request == nullptr) return cost;
      if (!is_write(request->op)) return cost + c.per_read;  // a page's items: PageRead
      return cost + c.per_write + c.per_kilobyte * kilobytes(m.size_bytes);
    }
    if (m.type == static_cast<uint32_t>(StorageMessageType::kPaxos)) {
      const auto* envelope = dynamic_cast<const PaxosEnvelope*>(m.body.get());
      if (envelope == nullptr) return cost;
      const int64_t entries = static_cast<int64_t>(envelope->message.entries.size());
      return cost + c.per_write * entries + c.per_kilobyte * kilobytes(m.size_bytes);
    }
    if (m.type == static_cast<uint32_t>(StorageMessageType::kSnapshotChunk)) {
      const auto* chunk = dynamic_cast<const SnapshotChunkBody*>(m.body.get());
      if (chunk == nullptr) return cost;
      return cost + c.per_write * static_cast<int64_t>(chunk->items.size()) +
             c.per_kilobyte * kilobytes(m.size_bytes);
    }
    return cost;
  }

  // Work that is not a message (scrub's page verification) takes the earliest free core for
  // `cost`: messages queued behind it start later.
  void charge_cpu(sim::Duration cost) {
    if (cost <= sim::Duration(0)) return;
    auto core = std::min_element(core_free_at.begin(), core_free_at.end());
    *core = std::max(env->local_now(), *core) + cost;
  }

  void on_message(sim::Address from, const sim::Message& message) {
    if (memds_publisher && memds_publisher->on_message(*env, from, message)) return;
    if (cpu_queue.size() >= options.cost.max_queued_messages) {
      env->metrics().add("storage.cpu_queue_full", 1);
      if (is_request(message)) {
        const auto* request = dynamic_cast<const StorageRequest*>(message.body.get());
        if (request != nullptr) {
          respond_group(request->group, from, request->request_id, StorageStatus::kBusy, {}, {},
                        LogIndex());
        }
      }
      return;  // protocol messages are dropped; Paxos resends
    }
    const sim::SimTime now = env->local_now();
    auto core = std::min_element(core_free_at.begin(), core_free_at.end());
    const sim::SimTime start = std::max(now, *core);
    const sim::SimTime done = start + cost_of(message);
    *core = done;
    // FIFO: a message never completes before the one ahead of it.
    const sim::SimTime complete_at =
        cpu_queue.empty() ? done : std::max(done, cpu_queue.back().complete_at);
    cpu_queue.push_back(QueuedMessage{complete_at, from, message});
    if (!cpu_timer_armed) arm_cpu_timer();
  }

  void arm_cpu_timer() {
    DYN_ASSERT(!cpu_queue.empty());
    const sim::SimTime now = env->local_now();
    const sim::SimTime at = cpu_queue.front().complete_at;
    ++cpu_generation;
    env->set_timer(at > now ? at - now : sim::Duration(0), make_cookie(kCookieCpu, cpu_generation));
    cpu_timer_armed = true;
  }

  void on_cpu_timer(uint64_t generation) {
    if (generation != (cpu_generation & kCookieGenerationMask)) return;
    cpu_timer_armed = false;
    const sim::SimTime now = env->local_now();
    size_t budget = cpu_queue.size();
    while (budget-- > 0 && !cpu_queue.empty() && cpu_queue.front().complete_at <= now) {
      QueuedMessage queued = std::move(cpu_queue.front());
      cpu_queue.pop_front();
      dispatch(queued.from, queued.message);
    }
    if (!cpu_queue.empty() && !cpu_timer_armed) arm_cpu_timer();
  }

  void dispatch(sim::Address from, const sim::Message& message) {
    if (message.type == static_cast<uint32_t>(AdmissionMessageType::kNodeCapacityReport)) {
      const auto* report = dynamic_cast<const NodeCapacityReport*>(message.body.get());
      if (report != nullptr && admission) admission->on_capacity_report(*report, env->local_now());
      return;
    }
    if (message.type == static_cast<uint32_t>(SplitMessageType::kCopyDone)) {
      const auto* body = dynamic_cast<const SplitCopyDoneBody*>(message.body.get());
      if (body != nullptr && options.splits.enabled) on_split_copy_done(*body);
      return;
    }
    if (message.type == static_cast<uint32_t>(CapacityMessageType::kAllocationUpdate)) {
      const auto* update = dynamic_cast<const AllocationUpdate*>(message.body.get());
      if (update != nullptr && capacity_agent) on_allocation_update(*update);
      return;
    }
    switch (static_cast<StorageMessageType>(message.type)) {
      case StorageMessageType::kPaxos: {
        const auto* envelope = dynamic_cast<const PaxosEnvelope*>(message.body.get());
        if (envelope == nullptr) return;
        auto found = slot_of_group.find(envelope->group.value);
        if (found == slot_of_group.end()) return;
        Replica& r = *replicas[found->second];
        if (!r.recovered || r.failed) return;  // Paxos resends; nothing to vote with yet
        const PaxosMessage& m = envelope->message;
        if (m.to != r.assignment.replica || m.from == m.to || m.from == 0) return;
        r.peer_addresses[m.from] = from;
        notice_removed_sender(r, m, from);
        r.paxos->step(m, env->local_now());
        after_input(r);
        return;
      }
      case StorageMessageType::kRequest: {
        auto request = std::dynamic_pointer_cast<const StorageRequest>(message.body);
        if (request == nullptr) return;
        on_request(from, request);
        return;
      }
      case StorageMessageType::kSnapshotChunk: {
        const auto* chunk = dynamic_cast<const SnapshotChunkBody*>(message.body.get());
        if (chunk == nullptr) return;
        auto found = slot_of_group.find(chunk->group.value);
        if (found == slot_of_group.end()) return;
        Replica& r = *replicas[found->second];
        if (chunk->to_replica != r.assignment.replica) return;
        on_snapshot_chunk(r, *chunk);
        return;
      }
      case StorageMessageType::kEnsureReplica: {
        const auto* body = dynamic_cast<const EnsureReplicaBody*>(message.body.get());
        if (body != nullptr) on_ensure_replica(*body);
        return;
      }
      case StorageMessageType::kDropReplica: {
        const auto* body = dynamic_cast<const DropReplicaBody*>(message.body.get());
        if (body != nullptr) on_drop_replica(from, *body);
        return;
      }
      case StorageMessageType::kPlaceReply: {
        const auto* body = dynamic_cast<const PlaceReplyBody*>(message.body.get());
        if (body != nullptr) on_place_reply(*body);
        return;
      }
      case StorageMessageType::kRangeRequest:
      case StorageMessageType::kRangeItems:
      case StorageMessageType::kDigestReport:
      case StorageMessageType::kRangeSuspect:
        dispatch_scrub(from, message);
        return;
      case StorageMessageType::kSnapshotRequest:
      case StorageMessageType::kResponse:
      case StorageMessageType::kNodeHeartbeat:
      case StorageMessageType::kPlaceRequest:
        return;
    }
  }

  void on_timer(uint64_t cookie) {
    if (memds_publisher && memds_publisher->on_timer(*env, cookie)) return;
    const uint64_t kind = cookie >> kCookieKindShift;
    const uint64_t generation = cookie & kCookieGenerationMask;
    switch (kind) {
      case kCookieTick:
        on_tick_timer(generation);
        return;
      case kCookieCpu:
        on_cpu_timer(generation);
        return;
      case kCookieCheckpoint:
        on_checkpoint_timer();
        return;
      case kCookieHealing:
        on_healing_timer();
        return;
      case kCookieNodeHeartbeat:
        send_node_heartbeat();
        return;
      case kCookieSnapshotPace:
        on_snapshot_pace(generation);
        return;
      case kCookieArchive:
        on_archive_timer(generation);
        return;
      case kCookieScrub:
        on_scrub_timer();
        return;
      case kCookieAdmission:
        on_admission_timer();
        return;
      case kCookieCapacityReport:
        on_capacity_report_timer();
        return;
      case kCookieCapacityRequest:
        on_capacity_request_timer();
        return;
      case kCookieSplitPolicy:
        on_split_policy_timer();
        return;
      case kCookieSplitCopy:
        on_split_copy_timer(generation);
        return;
      default:
        DYN_ASSERT_MSG(false, "unknown timer cookie");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Admission control (AdmissionWiring; model/admission.h, docs/admission.md).

  void start_admission() {
    const sim::SimTime now = env->local_now();
    // Grows across restarts: a restart takes seconds, far more than the clock ever steps back.
    admission_incarnation = static_cast<uint64_t>(std::max<int64_t>(now.ns, 0)) + 1;
    admission.emplace(options.admission.admission, env->self(), admission_incarnation, now);
    admission_buckets.clear();
    env->set_timer(options.admission.admission.report_interval, make_cookie(kCookieAdmission, 0));
    start_capacity_agent();
  }

  void admission_host(GroupId group) {
    if (!admission->set_allocation(group, admission_allocation, env->local_now())) {
      env->metrics().add("admission.partitions_refused", 1);
      return;
    }
    admission_buckets[group.value] = admission_incarnation + admission_buckets_built++;
  }

  // Counts the decision and reports an admission; true when admitted.
  bool admission_decided(const Replica& r, AdmissionDecision decision, CapacityUnits cost,
                         bool write, sim::SimTime now) {
    switch (decision) {
      case AdmissionDecision::kAdmitted:
      case AdmissionDecision::kAdmittedUsingBurst: {
        const bool burst = decision == AdmissionDecision::kAdmittedUsingBurst;
        env->metrics().add("admission.admitted", 1);
        if (burst) env->metrics().add("admission.burst", 1);
        if (capacity_agent) capacity_consumed(r.assignment.group, to_milli_units(cost), write);
        if (options.observer != nullptr) {
          auto buckets = admission_buckets.find(r.assignment.group.value);
          DYN_ASSERT(buckets != admission_buckets.end());
          options.observer->on_admitted(r.assignment.group, env->self(), buckets->second, now,
                                        to_milli_units(cost), write, burst);
        }
        return true;
      }
      case AdmissionDecision::kThrottledByPartition:
        env->metrics().add("admission.throttled.partition", 1);
        return false;
      case AdmissionDecision::kThrottledByNode:
        env->metrics().add("admission.throttled.node", 1);
        return false;
      case AdmissionDecision::kThrottledByPeers:
        env->metrics().add("admission.throttled.peers", 1);
        return false;
      case AdmissionDecision::kUnknownPartition:
        // No allocation here (the node tracks max_partitions already): nothing was granted, so
        // nothing is admitted.
        env->metrics().add("admission.throttled.unknown_partition", 1);
        return false;
    }
    return false;
  }

  bool admit_read(const Replica& r, CapacityUnits cost) {
    const sim::SimTime now = env->local_now();
    return admission_decided(r, admission->admit_read(r.assignment.group, cost, now), cost,
                             /*write=*/false, now);
  }

  // At the leader, before proposing: a put pays for its new item, a delete or an update the
  // minimum (the old item, and the updated one, are known only at apply).
  bool admit_write(const Replica& r, const StorageRequest& request) {
    const CapacityUnits cost = write_capacity(
        request.op == StorageOp::kPut ? stored_item_size_bytes(request.item, request.key_name_bytes)
                                      : 0);
    std::vector<sim::Address> others;
    for (const Member& member : r.paxos->configuration().members) {
      if (member.voter && member.kind == MemberKind::kFull &&
          member.replica != r.assignment.replica) {
        others.push_back(address_of(member.endpoint));
      }
    }
    const sim::SimTime now = env->local_now();
    return admission_decided(r, admission->admit_write(r.assignment.group, cost, others, now), cost,
                             /*write=*/true, now);
  }

  // Every report_interval: the node's room, to every node hosting a replica of a group it hosts.
  void on_admission_timer() {
    if (!admission) return;
    const sim::SimTime now = env->local_now();
    std::set<sim::Address> peers;
    for (const auto& r : replicas) {
      if (r->dropped) continue;
      if (r->paxos) {
        for (const Member& member : r->paxos->configuration().members) {
          peers.insert(address_of(member.endpoint));
        }
      } else if (r->seed) {
        // Created by healing and not recovered yet: its static assignment is unset; the
        // configuration it was seeded with names the group's members.
        for (const Member& member : r->seed->configuration.members) {
          peers.insert(address_of(member.endpoint));
        }
      } else {
        // Recovering. A replica healing created has no static assignment (its members are unset
        // addresses) and, once its first checkpoint is durable, no seed either: it names no
        // peers until recovery gives it its Paxos state.
        for (const sim::Address& member : r->assignment.members) {
          if (member.host.valid()) peers.insert(member);
        }
      }
    }
    peers.erase(env->self());
    if (!peers.empty()) {
      const NodeCapacityReport report = admission->make_report(now);
      for (const sim::Address& peer : peers) env->send(peer, make_capacity_report_message(report));
    }
    env->set_timer(options.admission.admission.report_interval, make_cookie(kCookieAdmission, 0));
  }

  // ------------------------------------------------------------------------------------------
  // Capacity modes (AdmissionWiring::capacity_controller; model/capacity_controller.h).

  void start_capacity_agent() {
    admission_allocation = options.admission.allocation;
    if (options.admission.allocation_observer != nullptr) {
      options.admission.allocation_observer->on_allocation_set(env->self(), env->local_now(),
                                                               admission_allocation);
    }
    capacity_agent.reset();
    if (!options.admission.capacity_controller) return;
    CapacityAgent::Options agent_options = options.admission.capacity_agent;
    agent_options.controller = *options.admission.capacity_controller;
    capacity_agent.emplace(agent_options, env->self(), admission_incarnation, admission_allocation);
    env->send(agent_options.controller, make_message(capacity_agent->make_request()));
    env->set_timer(agent_options.report_interval, make_cookie(kCookieCapacityReport, 0));
    env->set_timer(agent_options.request_retry, make_cookie(kCookieCapacityRequest, 0));
  }

  void capacity_consumed(GroupId group, int64_t milli_units, bool write) {
    capacity_agent->on_admitted(group, milli_units, write);
    env->metrics().add(
        write ? "capacity.consumed_write_milli_units" : "capacity.consumed_read_milli_units",
        milli_units);
  }

  void on_allocation_update(const AllocationUpdate& update) {
    const CapacityAgent::UpdateResult result = capacity_agent->on_update(update);
    if (result.apply) {
      const sim::SimTime now = env->local_now();
      admission_allocation = *result.apply;
      for (const auto& [group, buckets] : admission_buckets) {
        (void)buckets;
        admission->set_allocation(GroupId(group), admission_allocation, now);
      }
      env->metrics().add("capacity.allocation_updates_applied", 1);
      if (options.admission.allocation_observer != nullptr) {
        options.admission.allocation_observer->on_allocation_set(env->self(), now,
                                                                 admission_allocation);
      }
    }
    env->send(capacity_agent->options().controller, make_message(result.ack));
  }

  // The partitions whose buckets this node keeps, less a split's children still filling: the
  // controller divides the table's capacity over the partitions that serve.
  std::vector<GroupId> serving_partitions() {
    std::vector<GroupId> serving;
    serving.reserve(admission_buckets.size());
    for (const auto& [group, buckets] : admission_buckets) {
      (void)buckets;
      const auto* slot = slot_of_group.find(group);
      if (slot == nullptr) continue;
      const Replica& r = *replicas[slot->second];
      if (r.dropped || r.split_child_filling) continue;
      serving.push_back(GroupId(group));
    }
    return serving;
  }

  void on_capacity_report_timer() {
    if (!capacity_agent) return;
    env->send(capacity_agent->options().controller,
              make_message(capacity_agent->make_report(serving_partitions())));
    env->set_timer(capacity_agent->options().report_interval,
                   make_cookie(kCookieCapacityReport, 0));
  }

  void on_capacity_request_timer() {
    if (!capacity_agent || !capacity_agent->awaiting()) return;
    env->send(capacity_agent->options().controller, make_message(capacity_agent->make_request()));
    env->set_timer(capacity_agent->options().request_retry, make_cookie(kCookieCapacityRequest, 0));
  }

  // ------------------------------------------------------------------------------------------
  // WAL archival (docs/archival.md).

  // The archiver's and the snapshot uploader's I/O: timers come back through the node's timer
  // with the replica, the component and the component's cookie in the generation.
  class ReplicaArchiveIo final : public ArchiveIo {
   public:
    ReplicaArchiveIo(Impl& impl, size_t slot, uint64_t component)
        : impl_(impl), slot_(slot), component_(component) {}
    void set_timer(sim::Duration delay, uint64_t cookie) override {
      DYN_ASSERT(cookie < (uint64_t{1} << 34));
      DYN_ASSERT(component_ < 4);
      impl_.env->set_timer(delay, make_cookie(kCookieArchive, (uint64_t{slot_} << 36) |
                                                                  (component_ << 34) | cookie));
    }
    void put(std::string key, sim::ObjectBytes data, uint64_t content_checksum,
             PutDone done) override {
      impl_.env->object_put_with_checksum(std::move(key), std::move(data), content_checksum,
                                          std::move(done));
    }
    void get(std::string key, GetDone done) override {
      impl_.env->object_get(std::move(key), std::move(done));
    }
    void list(std::string prefix, ListDone done) override {
      impl_.env->object_list(std::move(prefix), std::move(done));
    }
    void report_failure(const ArchiveError& error) override {
      impl_.env->metrics().add("archive.failures", 1);
      impl_.env->metrics().add(std::string("archive.failure.") + to_string(error.check), 1);
    }

   private:
    Impl& impl_;
    size_t slot_;
    uint64_t component_;
  };

  void start_archival(Replica& r) {
    if (!options.archival.enabled) return;
    const ArchivalOptions& a = options.archival;
    ArchiveScope scope;
    scope.table = a.table;
    scope.group = r.assignment.group;
    if (r.assignment.group.value < a.group_hash_ranges.size()) {
      scope.hash_begin = a.group_hash_ranges[r.assignment.group.value].first;
      scope.hash_end = a.group_hash_ranges[r.assignment.group.value].second;
    }
    ArchiverOptions archiver_options;
    archiver_options.scope = scope;
    archiver_options.entries_per_segment = a.entries_per_segment;
    archiver_options.max_pending_entries = 4 * a.entries_per_segment;
    archiver_options.plant_accept_sequence_gap = a.plant_accept_sequence_gap;
    archiver_options.plant_alter_entry_every = a.plant_alter_entry_every;
    const uint64_t seed = sim::splitmix64(node_seed ^ (uint64_t{r.assignment.group.value} << 20) ^
                                          r.assignment.replica ^ 0xa5c11e);
    r.archive_io =
        std::make_unique<ReplicaArchiveIo>(*this, r.slot, kArchiveComponentArchiver);
    r.archiver = std::make_unique<Archiver>(archiver_options, *r.archive_io, sim::Random(seed));
    r.snapshot_io =
        std::make_unique<ReplicaArchiveIo>(*this, r.slot, kArchiveComponentUploader);
    r.uploader = std::make_unique<SnapshotUploader>(scope, *r.snapshot_io,
                                                    sim::Random(sim::splitmix64(seed)));
    // What the log no longer holds was archived before (the log is compacted only behind the
    // archive) or is a peer's to archive (a snapshot was installed).
    if (r.paxos->compacted_through().value > 0) {
      r.archiver->start_after(r.paxos->compacted_through());
    }
    // Entries applied at recovery (the checkpoint's) are offered from the log.
    for (LogIndex index = r.paxos->compacted_through().next(); index <= r.applied;
         index = index.next()) {
      const LogEntry* entry = r.paxos->entry_at(index);
      if (entry == nullptr || r.archiver->offer(*entry) == OfferStatus::kBackPressure) break;
    }
  }

  // Applied entries go to the archiver in order. One refused for back-pressure (the store is
  // slow or down) is offered again, from the log, once segments are acknowledged.
  void offer_to_archiver(Replica& r, const LogEntry& entry) {
    if (r.archiver->halted()) return;
    if (r.archiver->offered_through().next() < entry.index) catch_up_archiver(r);
    if (r.archiver->offered_through().next() == entry.index ||
        options.archival.plant_accept_sequence_gap) {
      r.archiver->offer(entry);
    }
    maybe_upload_snapshot(r);
  }

  void catch_up_archiver(Replica& r) {
    LogIndex index = std::max(r.archiver->offered_through(), r.archiver->start()).next();
    for (; index < r.applied; index = index.next()) {
      const LogEntry* entry = r.paxos->entry_at(index);
      if (entry == nullptr) {
        // Compacted without archiving: only a snapshot install does that; its start_after
        // already covers it unless the plant skipped it.
        return;
      }
      if (r.archiver->offer(*entry) == OfferStatus::kBackPressure) return;
    }
  }

  void on_archive_timer(uint64_t generation) {
    const uint64_t slot = generation >> 36;
    const uint64_t component = (generation >> 34) & 3;
    const uint64_t cookie = generation & ((uint64_t{1} << 34) - 1);
    if (slot >= replicas.size()) return;
    Replica& r = *replicas[slot];
    if (r.dropped || !r.archiver) return;
    if (component == kArchiveComponentArchiver) {
      r.archiver->on_timer(cookie);
      catch_up_archiver(r);
    } else if (component == kArchiveComponentUploader) {
      r.uploader->on_timer(cookie);
    } else if (component == kArchiveComponentReference && r.reference) {
      r.reference->on_timer(cookie);
    }
  }

  // The leader uploads a partition snapshot every snapshot_every_entries archived entries
  // (P22 section 5.5). Its items are read under a short hold, as a paced rebuild reads them.
  void maybe_upload_snapshot(Replica& r) {
    if (!r.uploader || r.snapshot_scanning || r.uploader->busy() || r.kind != MemberKind::kFull ||
        r.paxos->role() != PaxosRole::kLeader || r.content_invalid || !r.healthy) {
      return;
    }
    SnapshotPolicy policy;
    policy.every_archived_entries = options.archival.snapshot_every_entries;
    if (!policy.due(r.archiver->archived_through(), r.uploader->uploaded_through())) return;
    if (r.applying || r.checkpoint_running) return;  // tried again after the next apply
    r.snapshot_scanning = true;
    ++r.apply_holds;
    auto items = std::make_shared<std::vector<Item>>();
    scan_for_upload(r, std::nullopt, r.applied, items);
  }

  void scan_for_upload(Replica& r, std::optional<PrimaryKey> from, LogIndex through,
                       std::shared_ptr<std::vector<Item>> items) {
    const size_t slot = r.slot;
    r.tree->scan(std::move(from), kSnapshotChunkItems,
                 [this, slot, through, items](BTreeStatus status, std::vector<Item> chunk,
                                              std::optional<PrimaryKey> next) {
                   Replica& rep = *replicas[slot];
                   if (status == BTreeStatus::kOk) {
                     items->insert(items->end(), std::make_move_iterator(chunk.begin()),
                                   std::make_move_iterator(chunk.end()));
                     if (next && !rep.dropped) {
                       scan_for_upload(rep, std::move(next), through, items);
                       return;
                     }
                   }
                   rep.snapshot_scanning = false;
                   --rep.apply_holds;
                   if (rep.dropped) return;
                   if (status == BTreeStatus::kOk) {
                     ArchiveError refusal;
                     if (rep.uploader->upload(through, *items, &refusal) ==
                         SnapshotUploader::Start::kStarted) {
                       env->metrics().add("archive.snapshots_started", 1);
                     }
                   }
                   pump_apply(rep);
                 });
  }

  // ------------------------------------------------------------------------------------------
  // Healing, the new replica's side: create it from its seed, or delete it.

  void on_ensure_replica(const EnsureReplicaBody& body) {
    auto found = slot_of_group.find(body.group.value);
    if (found != slot_of_group.end()) {
      Replica& existing = *replicas[found->second];
      if (existing.assignment.replica == body.replica) return;  // hosted already
      // An older replica of the group (removed since): the new one replaces it.
      drop_replica(existing);
    }
    std::optional<size_t> disk_slot;
    for (size_t candidate = 0; candidate < max_slots; ++candidate) {
      if (!disk_slots_used.contains(candidate)) {
        disk_slot = candidate;
        break;
      }
    }
    if (!disk_slot) {
      env->metrics().add("healing.no_free_slot", 1);
      return;
    }
    ReplicaAssignment assignment;
    assignment.group = body.group;
    assignment.replica = body.replica;
    Replica& r = add_replica(assignment, *disk_slot, body.kind,
                             Seed{body.base, body.configuration});
    env->metrics().add("healing.replicas_created", 1);
    start_created_replica(r);
  }

  // A new replica's first state is a checkpoint of an empty tree at the seed's base, with the
  // configuration there; once it and the directory naming the replica are durable, it recovers
  // from it like any other replica.
  // The first checkpoint of a replica made from a seed (healing's copy or a split's child): the
  // seed's items at its base index, an empty WAL, the seed's configuration.
  static CheckpointState seeded_checkpoint_state(const Replica& r) {
    CheckpointState state;
    state.applied = r.seed->base;
    state.wal_replay_position = 0;
    state.wal_next_sequence = 1;
    state.hard_state.commit = r.seed->base;
    state.configuration = r.seed->configuration;
    if (r.first_leader != 0) state.hard_state.promised = Ballot{1, r.first_leader};
    return state;
  }

  void start_created_replica(Replica& r) {
    sim::Disk& disk = env->disk(options.disk_index);
    // Whatever an earlier occupant of the slot left (before a restart) must not be recovered.
    disk.discard(r.disk_slot * slot_sectors * sector_bytes, slot_sectors * sector_bytes);
    const CheckpointState state = seeded_checkpoint_state(r);
    CheckpointMetadata metadata;
    metadata.bytes = encode_checkpoint(state);
    const size_t slot = r.slot;
    r.tree->checkpoint(std::move(metadata), [this, slot, state](BTreeStatus status) {
      Replica& rep = *replicas[slot];
      if (rep.dropped) return;
      if (status != BTreeStatus::kOk) {
        // The leader asks again; this attempt is abandoned.
        drop_replica(rep);
        return;
      }
      rep.seed.reset();
      write_directory([this, slot, state] {
        Replica& listed = *replicas[slot];
        if (listed.dropped) return;
        // The tree holds exactly the checkpoint just written and the WAL is empty: start from
        // them as a recovery would (a restart reads the same back from the disk).
        finish_recovery(listed, state, WalRecovery{});
      });
    });
  }

  void on_drop_replica(sim::Address from, const DropReplicaBody& body) {
    auto found = slot_of_group.find(body.group.value);
    if (found == slot_of_group.end()) return;
    Replica& r = *replicas[found->second];
    if (r.assignment.replica != body.replica) return;
    // A replica never drops itself on a configuration it holds as a member.
    if (r.paxos && r.paxos->configuration().find(body.replica) != nullptr &&
        r.paxos->configuration().epoch >= body.epoch) {
      return;
    }
    drop_replica(r);
    moved_groups[body.group.value] = from;  // a member of the committed configuration
  }

  void drop_replica(Replica& r) {
    if (r.dropped) return;
    // Where the group lives now, as far as this replica knew: another member of its latest
    // configuration (on_drop_replica replaces it with the node that sent the notice).
    if (r.paxos) {
      for (const Member& member : r.paxos->configuration().members) {
        const sim::Address address = address_of(member.endpoint);
        if (member.replica != r.assignment.replica && address != env->self()) {
          moved_groups[r.assignment.group.value] = address;
          break;
        }
      }
    }
    r.dropped = true;
    r.failed = true;
    if (admission) {
      admission->remove_partition(r.assignment.group);
      admission_buckets.erase(r.assignment.group.value);
    }
    auto found = slot_of_group.find(r.assignment.group.value);
    if (found != slot_of_group.end() && found->second == r.slot) slot_of_group.erase(found);
    r.tick_at = sim::SimTime::max();  // its tick-heap entry, if any, is stale now
    if (r.pace_timer.valid()) env->cancel_timer(r.pace_timer);
    // Writes waiting here may still commit in the group: their clients get no answer (a time
    // out, which they treat as unknown), never a "not applied" that could be false.
    r.waiters.clear();
    r.deferred_reads.clear();
    r.sending.reset();
    r.snapshot_queue.clear();
    r.apply_queue.clear();
    r.awaiting_durable.clear();
    if (r.lease_reported && options.observer != nullptr) {
      const sim::SimTime now = env->local_now();
      options.observer->on_lease(r.assignment.group, r.assignment.replica, now, now);
      r.lease_reported = false;
    }
    env->disk(options.disk_index)
        .discard(r.disk_slot * slot_sectors * sector_bytes, slot_sectors * sector_bytes);
    env->metrics().add("healing.replicas_dropped", 1);
    write_directory(nullptr);
  }

  // ------------------------------------------------------------------------------------------
  // Healing, the leader's side (docs/healing.md).

  void on_healing_timer() {
    const sim::SimTime now = env->local_now();
    for (size_t i = 0; i < replicas.size(); ++i) {
      Replica& r = *replicas[i];
      if (r.dropped || !r.recovered || r.failed || !r.paxos) continue;
      if (r.paxos->role() != PaxosRole::kLeader) {
        r.placement_request.reset();
        r.learner.reset();
        r.reported_lost.clear();
        r.rebuild_waiting_since.reset();
        continue;
      }
      heal(r, now);
    }
    env->set_timer(options.healing.check_interval, make_cookie(kCookieHealing, 0));
  }

  void send_node_heartbeat() {
    auto body = std::make_shared<NodeHeartbeatBody>();
    body->az = env->az();
    for (const auto& r : replicas) body->replicas += r->dropped ? 0 : 1;
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kNodeHeartbeat);
    message.size_bytes = static_cast<uint32_t>(kMessageHeaderBytes);
    message.digest = mix(body->az.value, body->replicas);
    message.body = std::move(body);
    env->send(options.healing.auto_admin, std::move(message));
    env->set_timer(options.healing.node_heartbeat_interval, make_cookie(kCookieNodeHeartbeat, 0));
  }

  // The leader reports each configuration its commit passes, and tells the nodes of removed
  // members to delete them.
  void note_committed_configuration(Replica& r) {
    if (!options.healing.enabled || r.dropped || !r.paxos ||
        r.paxos->role() != PaxosRole::kLeader) {
      return;
    }
    const Configuration& committed = r.paxos->configuration_at(r.paxos->commit_index());
    if (committed.epoch == r.reported_epoch) return;
    r.reported_epoch = committed.epoch;
    if (options.observer != nullptr) {
      options.observer->on_configuration_committed(r.assignment.group, env->self(), committed,
                                                   env->local_now());
    }
    for (const auto& [replica, address] : r.member_nodes) {
      if (committed.find(replica) == nullptr) send_drop(r, replica, address, committed.epoch);
    }
    r.member_nodes.clear();
    for (const Member& member : committed.members) {
      r.member_nodes[member.replica] = address_of(member.endpoint);
    }
    if (r.learner && committed.find(r.learner->replica) == nullptr &&
        r.paxos->configuration().find(r.learner->replica) == nullptr) {
      r.learner.reset();
    }
    // A step of healing committed: take the next one now rather than at the next check.
    heal(r, env->local_now());
  }

  void send_drop(const Replica& r, uint32_t replica, sim::Address node, uint64_t epoch) {
    auto body = std::make_shared<DropReplicaBody>();
    body->group = r.assignment.group;
    body->replica = replica;
    body->epoch = epoch;
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kDropReplica);
    message.size_bytes = static_cast<uint32_t>(kMessageHeaderBytes);
    message.digest = mix(mix(body->group.value, replica), epoch);
    message.body = std::move(body);
    env->send(node, std::move(message));
  }

  // Whether a new replica may share an AZ with another member (PlaceRequestBody::may_share_az).
  enum class AzSharing { kAllowed, kForbidden };

  void heal(Replica& r, sim::SimTime now) {
    if (!options.healing.enabled) return;
    PaxosReplica& p = *r.paxos;
    if (p.role() != PaxosRole::kLeader || p.change_pending()) return;
    const std::optional<sim::SimTime> serving = p.serving_start();
    if (!serving || now < *serving) return;
    const HealingOptions& h = options.healing;
    const Configuration configuration = p.configuration();
    const std::vector<PeerStatus> peers = p.peer_status();
    const PeerStatus* learner = nullptr;
    const PeerStatus* lost = nullptr;
    const PeerStatus* log_voter = nullptr;
    size_t full_voters = 1;  // the leader
    for (const PeerStatus& peer : peers) {
      if (!peer.voter) {
        learner = &peer;
        continue;
      }
      if (now - peer.last_heard < h.replica_lost_after && r.reported_lost.erase(peer.replica) > 0 &&
          options.observer != nullptr) {
        options.observer->on_replica_returned(r.assignment.group, env->self(), peer.replica, now);
      }
      if (now - peer.last_heard >= h.replica_lost_after) {
        if (lost == nullptr) lost = &peer;
        if (r.reported_lost.insert(peer.replica).second && options.observer != nullptr) {
          options.observer->on_replica_lost(r.assignment.group, env->self(), peer.replica, now,
                                            peer.last_heard);
        }
      }
      if (peer.kind == MemberKind::kLog) {
        log_voter = &peer;
      } else {
        ++full_voters;
      }
    }
    if (learner != nullptr) {
      if (now - learner->last_heard >= h.replica_lost_after) {
        propose_change(r, ConfigChange{ConfigChange::Kind::kRemove, learner->replica,
                                       MemberKind::kFull, 0});
        return;
      }
      if (h.plant_remove_log_replica_early && learner->kind == MemberKind::kFull &&
          log_voter != nullptr && lost == nullptr) {
        // Planted bug: the log replica leaves before the full replica has caught up.
        propose_change(r, ConfigChange{ConfigChange::Kind::kRemove, log_voter->replica,
                                       MemberKind::kLog, 0});
        return;
      }
      if (learner->caught_up) {
        propose_change(r, ConfigChange{ConfigChange::Kind::kPromote, learner->replica,
                                       learner->kind, 0});
        return;
      }
      ensure_learner(r, *learner, now);
      return;
    }
    const size_t voters = configuration.voter_count();
    if (voters > kReplicasPerGroup) {
      if (lost != nullptr) {
        propose_change(r, ConfigChange{ConfigChange::Kind::kRemove, lost->replica, lost->kind, 0});
      } else if (log_voter != nullptr && full_voters >= kReplicasPerGroup) {
        propose_change(r, ConfigChange{ConfigChange::Kind::kRemove, log_voter->replica,
                                       MemberKind::kLog, 0});
      }
      return;
    }
    if (lost == nullptr && log_voter == nullptr && voters >= kReplicasPerGroup) {
      r.rebuild_waiting_since.reset();
      return;
    }
    const MemberKind kind = lost != nullptr && h.log_replicas && log_voter == nullptr
                                ? MemberKind::kLog
                                : MemberKind::kFull;
    const PeerStatus* replaced = lost != nullptr ? lost : log_voter;
    // The rebuild (a full replica for the log voter, nothing lost): the log voter holds the
    // quorum, so the full replica can wait for a node in the AZ the group is missing.
    AzSharing sharing = AzSharing::kAllowed;
    if (lost == nullptr && log_voter != nullptr) {
      if (!r.rebuild_waiting_since) r.rebuild_waiting_since = now;
      if (now - *r.rebuild_waiting_since < h.rebuild_waits_for_az) sharing = AzSharing::kForbidden;
    }
    request_placement(r, kind,
                      replaced != nullptr ? member_address(r, replaced->replica) : std::nullopt,
                      sharing);
  }

  void propose_change(Replica& r, const ConfigChange& change) {
    const ProposeResult result = r.paxos->propose_change(change, env->local_now());
    env->metrics().add(result.status == ProposeStatus::kOk ? "healing.changes_proposed"
                                                            : "healing.changes_refused",
                       1);
    after_input(r);
  }

  // An unanswered request is asked again after replica_lost_after, and so is one refused while
  // it could not share an AZ (until a node in the missing AZ is heard from again).
  void request_placement(Replica& r, MemberKind kind, std::optional<sim::Address> replacing,
                         AzSharing sharing) {
    const bool may_share_az = sharing == AzSharing::kAllowed;
    const sim::SimTime now = env->local_now();
    if (r.placement_request && now - r.placement_sent < options.healing.replica_lost_after) return;
    auto body = std::make_shared<PlaceRequestBody>();
    body->request_id = (node_seed << 16) ^ next_place_request++;
    body->group = r.assignment.group;
    body->kind = kind;
    body->replacing = replacing;
    body->may_share_az = may_share_az;
    r.placement_may_share_az = may_share_az;
    for (const Member& member : r.paxos->configuration().members) {
      body->exclude.push_back(address_of(member.endpoint));
    }
    r.placement_request = body->request_id;
    r.placement_sent = now;
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kPlaceRequest);
    message.size_bytes = static_cast<uint32_t>(kMessageHeaderBytes + 16 * body->exclude.size());
    message.digest = mix(mix(body->request_id, body->group.value),
                         static_cast<uint64_t>(kind) | (may_share_az ? 0 : 2));
    message.body = std::move(body);
    env->send(options.healing.auto_admin, std::move(message));
  }

  void on_place_reply(const PlaceReplyBody& body) {
    auto found = slot_of_group.find(body.group.value);
    if (found == slot_of_group.end()) return;
    Replica& r = *replicas[found->second];
    if (!r.placement_request || *r.placement_request != body.request_id || !r.paxos) return;
    if (!body.node) {
      env->metrics().add("healing.no_placement", 1);
      // A rebuild waiting for its AZ asks again after replica_lost_after, not at every check.
      if (r.placement_may_share_az) r.placement_request.reset();
      return;
    }
    r.placement_request.reset();
    PaxosReplica& p = *r.paxos;
    if (p.role() != PaxosRole::kLeader || p.change_pending()) return;
    // Decide again what is needed: the group may have changed while auto-admin answered.
    MemberKind kind = MemberKind::kFull;
    bool lost = false;
    bool log_voter = false;
    for (const PeerStatus& peer : p.peer_status()) {
      if (!peer.voter) return;  // a learner joined meanwhile
      lost = lost || env->local_now() - peer.last_heard >= options.healing.replica_lost_after;
      log_voter = log_voter || peer.kind == MemberKind::kLog;
    }
    if (!lost && !log_voter && p.configuration().voter_count() >= kReplicasPerGroup) return;
    if (lost && options.healing.log_replicas && !log_voter) kind = MemberKind::kLog;
    ConfigChange change;
    change.kind = ConfigChange::Kind::kAddLearner;
    change.member_kind = kind;
    change.endpoint = endpoint_of(*body.node);
    const sim::SimTime now = env->local_now();
    const ProposeResult result = p.propose_change(change, now);
    if (result.status != ProposeStatus::kOk) {
      env->metrics().add("healing.changes_refused", 1);
      after_input(r);
      return;
    }
    env->metrics().add("healing.changes_proposed", 1);
    r.rebuild_waiting_since.reset();
    LearnerSeed learner;
    learner.replica = result.replica;
    learner.node = *body.node;
    learner.kind = kind;
    learner.seed = seed_for(p, kind);
    r.learner = learner;
    after_input(r);
    send_ensure(r, now);
  }

  // A log replica is seeded from the recent log: its base is a little behind the commit, so a
  // candidate whose commit lags slightly can still gather its promise. A full replica starts
  // empty and is sent a snapshot.
  Seed seed_for(const PaxosReplica& p, MemberKind kind) const {
    if (kind == MemberKind::kFull) return Seed{LogIndex(), p.configuration()};
    const uint64_t commit = p.commit_index().value;
    const uint64_t back = options.healing.log_replica_seed_entries;
    LogIndex base(commit > back ? commit - back : 0);
    base = std::max(base, p.earliest_configuration_index());
    base = std::max(base, p.compacted_through());
    return Seed{base, p.configuration_at(base)};
  }

  // Until the learner has caught up, its node is told (again, each second) to host it: the first
  // message may have been lost, or the node restarted before the replica was durable. A new
  // leader that finds a learner it did not add reseeds it from its own log.
  void ensure_learner(Replica& r, const PeerStatus& learner, sim::SimTime now) {
    if (!r.learner || r.learner->replica != learner.replica) {
      const Member* member = r.paxos->configuration().find(learner.replica);
      if (member == nullptr) return;
      LearnerSeed seed;
      seed.replica = learner.replica;
      seed.node = address_of(member->endpoint);
      seed.kind = member->kind;
      seed.seed = seed_for(*r.paxos, member->kind);
      r.learner = seed;
      send_ensure(r, now);
      return;
    }
    if (now - r.learner->last_sent >= sim::seconds(1)) send_ensure(r, now);
  }

  void send_ensure(Replica& r, sim::SimTime now) {
    DYN_ASSERT(r.learner.has_value());
    r.learner->last_sent = now;
    auto body = std::make_shared<EnsureReplicaBody>();
    body->group = r.assignment.group;
    body->replica = r.learner->replica;
    body->kind = r.learner->kind;
    body->base = r.learner->seed.base;
    body->configuration = r.learner->seed.configuration;
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kEnsureReplica);
    message.size_bytes = static_cast<uint32_t>(kMessageHeaderBytes + 64);
    message.digest = mix(mix(body->group.value, body->replica), body->base.value);
    message.body = std::move(body);
    env->send(r.learner->node, std::move(message));
  }

  // A replica that a committed configuration left out, still talking to us (it was down when it
  // was removed): tell its node to delete it.
  void notice_removed_sender(Replica& r, const PaxosMessage& m, sim::Address from) {
    if (!options.healing.enabled || !r.paxos) return;
    if (m.type != PaxosMessage::Type::kLeaderCheck && m.type != PaxosMessage::Type::kPrepare) {
      return;
    }
    const Configuration& committed = r.paxos->configuration_at(r.paxos->commit_index());
    if (m.from >= committed.next_replica || committed.find(m.from) != nullptr ||
        r.paxos->configuration().find(m.from) != nullptr) {
      return;
    }
    send_drop(r, m.from, from, committed.epoch);
  }

  // ==========================================================================================
  // Scrub and repair (P22 section 5.3; docs/scrub.md; off unless options.scrub.enabled).
  //
  // One node timer (kCookieScrub) runs every pages_per_step / pages_per_second seconds. At each
  // tick every full replica scrubs its next pages_per_step durable pages (BTree::scrub_pages) and
  // does its repair bookkeeping: a replica whose tree lists a damaged key range (found by scrub,
  // by a read, or by an apply that stalled) asks a healthy full peer for the range's items
  // (RangeRequestBody), and on the answer replaces the range (BTree::repair_range) under an
  // apply hold. The repaired range then reflects the peer's applied index `as_of`; until this
  // replica has applied past it, entries with index <= as_of whose key lies in the range are
  // skipped (their effect is in the items), and no checkpoint, snapshot or range is served from
  // the tree (its state is not the state at one index). Everything else the node does is
  // untouched; the hooks elsewhere are: the timer cookie and its dispatch, the two message
  // dispatch cases, scrub_skip_entry() in start_apply, serving queued range requests in
  // pump_apply (a peer waits until it has applied as far as the requester),
  // scrub_blocks_state_reads() in start_checkpoint and start_next_snapshot, and scrub_forget() when
  // a snapshot install clears the tree.

  struct ScrubReplicaState {
    ScrubCursor cursor;
    bool stepping = false;  // a scrub_pages step is in flight
    // The current repair round.
    bool repairing = false;
    KeyRangeBounds range;
    uint32_t attempts = 0;
    uint64_t request_id = 0;  // the request awaiting an answer (0: none)
    uint32_t asked_replica = 0;
    sim::SimTime deadline;
    sim::SimTime backoff_until;
    bool installing = false;
    // The apply pipeline is held from a request until its answer is installed or given up, so
    // the answer (as of at least our applied index) is not overtaken by our own applies.
    bool holding = false;
    std::shared_ptr<const RangeItemsBody> answer;  // waiting for the apply pipeline to pause
    // Repaired ranges and the index they reflect, until applied reaches it.
    std::vector<std::pair<KeyRangeBounds, LogIndex>> skips;
    // Peers' requests waiting for this replica's apply pipeline to pause (bounded).
    struct QueuedRangeRequest {
      sim::Address from;
      RangeRequestBody request;
      sim::SimTime queued_at;
    };
    std::deque<QueuedRangeRequest> to_serve;
    bool serving = false;
    // A peer a leader named as holding the majority's content of a suspect range: asked first.
    uint32_t preferred_peer = 0;

    // Replica comparison, while leader (see "Replica comparison" below).
    struct CompareRound {
      uint64_t round = 0;
      LogIndex index;  // the marker's
      uint32_t depth = 0;
      std::vector<KeyRangeBounds> ranges;
      std::vector<uint32_t> expected;  // the full voters when the marker was proposed
      std::map<uint32_t, std::vector<RangeDigest>> reports;  // by replica
      sim::SimTime deadline;
      bool narrowing = false;  // the leader is reading its keys to cut differing ranges
    };
    std::optional<CompareRound> compare;
    sim::SimTime next_compare_at = sim::SimTime::max();  // max: not scheduled yet
    // Ranges to narrow that could not be proposed yet (the log refused the marker).
    std::optional<std::pair<uint32_t, std::vector<KeyRangeBounds>>> narrow_pending;
    uint64_t divergent_puts = 0;  // the planted bug's count of writes applied
    // The reference check: a whole-key-space digest a majority agreed on at a marker's index,
    // waiting for the archive to reach that index (see "The reference check" below).
    struct ReferenceDue {
      LogIndex at;
      RangeDigest majority;
    };
    std::optional<ReferenceDue> reference_due;
  };
  static constexpr size_t kMaxRangeRequestsQueued = 8;
  static constexpr uint32_t kRangeScanItems = 256;

  uint64_t next_range_request = 1;

  ScrubReplicaState& scrub_state(Replica& r) {
    if (!r.scrub) r.scrub = std::make_unique<ScrubReplicaState>();
    return *r.scrub;
  }

  sim::Duration scrub_interval() const {
    const ScrubOptions& s = options.scrub;
    const double seconds = static_cast<double>(std::max<uint32_t>(1, s.pages_per_step)) /
                           std::max(1e-3, s.pages_per_second);
    return sim::Duration(static_cast<int64_t>(seconds * 1e9));
  }

  void arm_scrub_timer() {
    if (!options.scrub.enabled) return;
    env->set_timer(scrub_interval(), make_cookie(kCookieScrub, 0));
  }

  void on_scrub_timer() {
    for (auto& r : replicas) {
      if (!r->dropped) scrub_tick(*r);
    }
    arm_scrub_timer();
  }

  // Hook for start_apply: true if the entry's effect is already in a repaired range (its key lies
  // in the range and its index is at or below the range's as_of). The entry is then finished
  // without touching the tree. A conditional write's or an update's outcome is not known here, so
  // its client (at a leader) gets no answer and sees a timeout, the honest "unknown"; a plain
  // put's or delete's client is answered with the minimum capacity (the old item is not read).
  bool scrub_skip_entry(Replica& r, const LogEntry& entry) {
    if (!r.scrub || r.scrub->skips.empty()) return false;
    if (entry.command.is_noop() || entry.command.is_configuration()) return false;
    WriteCommand command;
    if (!WriteCommand::decode(entry.command.bytes, &command)) return false;
    for (const auto& [range, as_of] : r.scrub->skips) {
      if (entry.index <= as_of && in_range(range, command.key)) {
        env->metrics().add("scrub.entries_skipped", 1);
        // Conditions and updates have outcomes not known here, and so have the old item's
        // size and ReturnValues: those clients get no answer (the honest "unknown").
        auto waiter = r.waiters.find(entry.index.value);
        if (waiter != r.waiters.end() &&
            (command.condition.kind != Condition::Kind::kNone ||
             !command.condition_expression.is_true() || command.op == StorageOp::kUpdate ||
             waiter->second.return_values != ReturnValues::kNone)) {
          r.waiters.erase(waiter);
        }
        finish_apply(r, entry, StorageStatus::kOk);
        return true;
      }
    }
    return false;
  }

  // Hook for checkpoints and snapshot sends: while a repaired range is ahead of `applied`, or a
  // range is damaged, the tree is not the state at one log index and must not be made durable
  // or copied.
  bool scrub_blocks_state_reads(const Replica& r) const {
    if (!options.scrub.enabled) return false;
    if (r.scrub && (!r.scrub->skips.empty() || r.scrub->installing)) return true;
    return !r.tree->unhealthy_ranges().empty();
  }

  // Hook for a snapshot install, which clears the tree: nothing repaired before it holds.
  void scrub_forget(Replica& r) {
    if (!r.scrub) return;
    r.scrub->skips.clear();
    r.scrub->answer.reset();
    r.scrub->request_id = 0;
    r.scrub->repairing = false;
    set_repair_hold(r, false);
    r.scrub->cursor = ScrubCursor();
  }

  void scrub_tick(Replica& r) {
    if (!r.recovered || r.failed || !r.paxos) return;
    ScrubReplicaState& s = scrub_state(r);
    drop_reached_skips(r);
    serve_queued_range_requests(r);
    if (r.kind != MemberKind::kFull || r.content_invalid) return;
    repair_bookkeeping(r);
    compare_tick(r);
    if (!r.tree->healthy() && r.tree->unhealthy_ranges().empty() && !r.checkpoint_running) {
      // Scrub found the superblock or a space map page bad: checkpoints rewrite them (the space
      // map at the next, the superblock slot at the second), so ask for them.
      request_checkpoint(r);
    }
    if (!s.stepping && r.assignment.replica != options.scrub.plant_skip_replica) scrub_step(r);
  }

  void drop_reached_skips(Replica& r) {
    auto& skips = r.scrub->skips;
    skips.erase(std::remove_if(skips.begin(), skips.end(),
                               [&](const auto& skip) { return skip.second <= r.applied; }),
                skips.end());
  }

  void scrub_step(Replica& r) {
    ScrubReplicaState& s = *r.scrub;
    s.stepping = true;
    const size_t slot = r.slot;
    r.tree->scrub_pages(s.cursor, options.scrub.pages_per_step, [this, slot](ScrubStep step) {
      Replica& rep = *replicas[slot];
      ScrubReplicaState& state = *rep.scrub;
      state.stepping = false;
      env->metrics().add("scrub.pages_read", static_cast<int64_t>(step.pages_read));
      const sim::Duration cpu =
          options.cost.per_verified_page * static_cast<int64_t>(step.pages_read);
      charge_cpu(cpu);
      env->metrics().add("scrub.cpu_us", cpu.ns / 1000);
      if (step.failures > 0) {
        env->metrics().add("scrub.failures", static_cast<int64_t>(step.failures));
      }
      if (step.status == BTreeStatus::kOk) {
        state.cursor = step.pass_complete ? ScrubCursor() : step.next;
        if (step.pass_complete) env->metrics().add("scrub.passes", 1);
      } else if (step.status == BTreeStatus::kIoError) {
        state.cursor = step.next;
      }
      if (rep.dropped) return;
      if (step.failures > 0) repair_bookkeeping(rep);
    });
  }

  // Starts, retries or finishes the repair of the tree's damaged ranges.
  void repair_bookkeeping(Replica& r) {
    ScrubReplicaState& s = scrub_state(r);
    if (s.installing) return;
    const sim::SimTime now = env->local_now();
    if (s.answer) {
      try_install(r);
      return;
    }
    if (!s.repairing) {
      if (r.tree->unhealthy_ranges().empty() || now < s.backoff_until) return;
      s.repairing = true;
      s.range = r.tree->unhealthy_ranges().front();
      s.attempts = 0;
      send_range_request(r);
      return;
    }
    if (s.request_id == 0 || now >= s.deadline) {
      retry_repair(r);
    }
  }

  void set_repair_hold(Replica& r, bool hold) {
    ScrubReplicaState& s = *r.scrub;
    if (s.holding == hold) return;
    s.holding = hold;
    if (hold) {
      ++r.apply_holds;
    } else {
      --r.apply_holds;
      pump_apply(r);
    }
  }

  void retry_repair(Replica& r) {
    ScrubReplicaState& s = *r.scrub;
    s.request_id = 0;
    if (++s.attempts >= options.scrub.max_repair_attempts) {
      set_repair_hold(r, false);
      // This round failed. The range stays unhealthy (reads of it answer kUnhealthy, an apply
      // that needs it stalls); a later round tries again after the backoff.
      env->metrics().add("scrub.repair_failures", 1);
      s.repairing = false;
      s.backoff_until = env->local_now() + options.scrub.repair_backoff;
      return;
    }
    send_range_request(r);
  }

  // The peer to ask at this attempt: the leader if it is another replica, then the full voters
  // other than this replica, in turn.
  std::optional<uint32_t> repair_peer(const Replica& r, uint32_t attempt) const {
    std::vector<uint32_t> candidates;
    const uint32_t self = r.assignment.replica;
    const uint32_t preferred = r.scrub ? r.scrub->preferred_peer : 0;
    if (attempt == 0 && preferred != 0 && preferred != self) {
      const Member* m = r.paxos->configuration().find(preferred);
      if (m != nullptr && m->kind == MemberKind::kFull) return preferred;
    }
    const std::optional<uint32_t> leader = r.paxos->leader_hint();
    if (leader && *leader != self && r.paxos->role() != PaxosRole::kLeader) {
      candidates.push_back(*leader);
    }
    for (const Member& m : r.paxos->configuration().members) {
      if (m.replica == self || m.kind != MemberKind::kFull || !m.voter) continue;
      if (leader && m.replica == *leader && !candidates.empty()) continue;
      candidates.push_back(m.replica);
    }
    if (candidates.empty()) return std::nullopt;
    return candidates[attempt % candidates.size()];
  }

  void send_range_request(Replica& r) {
    ScrubReplicaState& s = *r.scrub;
    s.deadline = env->local_now() + options.scrub.repair_timeout;
    const std::optional<uint32_t> peer = repair_peer(r, s.attempts);
    std::optional<sim::Address> to;
    if (peer) to = member_address(r, *peer);
    s.request_id = (node_seed << 20) ^ next_range_request++;
    if (s.request_id == 0) s.request_id = 1;
    s.asked_replica = peer.value_or(0);
    if (!to) return;  // retried at the deadline
    auto body = std::make_shared<RangeRequestBody>();
    body->group = r.assignment.group;
    body->from_replica = r.assignment.replica;
    body->to_replica = *peer;
    body->request_id = s.request_id;
    body->range = s.range;
    set_repair_hold(r, true);
    // An apply already in flight will finish: the answer must cover it too.
    body->at_least = r.applying ? r.applied.next() : r.applied;
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kRangeRequest);
    message.size_bytes = kMessageHeaderBytes;
    message.digest = mix(mix(body->group.value, body->request_id), *peer);
    message.body = std::move(body);
    env->metrics().add("scrub.repair_requests", 1);
    env->send(*to, std::move(message));
  }

  void on_range_items(Replica& r, const std::shared_ptr<const RangeItemsBody>& answer) {
    if (!r.scrub || !r.scrub->repairing || r.scrub->request_id != answer->request_id) return;
    ScrubReplicaState& s = *r.scrub;
    s.request_id = 0;
    if (!answer->ok || r.content_invalid || r.failed) {
      retry_repair(r);
      return;
    }
    s.answer = answer;
    try_install(r);
  }

  // Installs the answer once the apply pipeline is idle: an apply in flight (a conditional
  // write's get, then its put) must not straddle the repair.
  void try_install(Replica& r) {
    ScrubReplicaState& s = *r.scrub;
    if (!s.answer || s.installing) return;
    if (r.applied > s.answer->as_of) {
      // The peer is behind this replica: its items would undo entries applied here.
      s.answer.reset();
      env->metrics().add("scrub.stale_answers", 1);
      retry_repair(r);
      return;
    }
    if (r.applying || r.content_invalid || r.receiving) return;  // the next tick tries again
    std::shared_ptr<const RangeItemsBody> answer = std::move(s.answer);
    s.answer.reset();
    s.installing = true;
    set_repair_hold(r, true);
    const size_t slot = r.slot;
    r.tree->repair_range(answer->range, answer->items, [this, slot, answer](BTreeStatus status) {
      on_repaired(*replicas[slot], status, *answer);
    });
  }

  void on_repaired(Replica& r, BTreeStatus status, const RangeItemsBody& answer) {
    ScrubReplicaState& s = *r.scrub;
    s.installing = false;
    if (r.dropped) return;
    if (status != BTreeStatus::kOk) {
      if (status == BTreeStatus::kCorrupt) {
        // A damaged page outside the range (or straddling a bound): repair a range covering it.
        // The whole key space covers every page.
        s.range = KeyRangeBounds{};
        env->metrics().add("scrub.repairs_widened", 1);
      }
      retry_repair(r);
      return;
    }
    env->metrics().add("scrub.repairs", 1);
    if (answer.as_of > r.applied) s.skips.emplace_back(answer.range, answer.as_of);
    s.repairing = false;
    s.preferred_peer = 0;
    s.attempts = 0;
    if (r.tree->unhealthy_ranges().empty()) {
      // Nothing damaged is left: serve and apply again. The pages scrub found bad while resident
      // were marked dirty, so the next checkpoint (once applied reaches every as_of) rewrites them.
      if (!r.failed) {
        r.healthy = true;
        r.apply_stalled = false;
      }
      r.checkpoint_wanted = true;
    }
    set_repair_hold(r, false);
    if (!r.tree->unhealthy_ranges().empty()) repair_bookkeeping(r);  // the next damaged range
    pump_apply(r);
  }

  // The peer's side.

  bool can_serve_range(const Replica& r) const {
    return r.recovered && !r.failed && r.paxos && r.kind == MemberKind::kFull &&
           !r.content_invalid && r.healthy && !r.apply_stalled && !r.receiving &&
           !scrub_blocks_state_reads(r);
  }

  void on_range_request(Replica& r, sim::Address from, const RangeRequestBody& request) {
    if (!can_serve_range(r)) {
      reply_range(r, from, request, false, LogIndex(), {});
      return;
    }
    ScrubReplicaState& s = scrub_state(r);
    if (s.to_serve.size() >= kMaxRangeRequestsQueued) {
      reply_range(r, from, request, false, LogIndex(), {});
      return;
    }
    s.to_serve.push_back(ScrubReplicaState::QueuedRangeRequest{from, request, env->local_now()});
    serve_queued_range_requests(r);
  }

  void serve_queued_range_requests(Replica& r) {
    ScrubReplicaState& s = scrub_state(r);
    // Requests their requester has given up on (it asks another peer after repair_timeout).
    while (!s.to_serve.empty() &&
           env->local_now() - s.to_serve.front().queued_at >= options.scrub.repair_timeout) {
      s.to_serve.pop_front();
    }
    if (s.serving || s.to_serve.empty() || r.applying) return;
    // Not applied as far as the requester yet: wait (pump_apply and the ticks come back here).
    if (can_serve_range(r) && r.applied < s.to_serve.front().request.at_least) return;
    const sim::Address from = s.to_serve.front().from;
    const RangeRequestBody request = std::move(s.to_serve.front().request);
    s.to_serve.pop_front();
    if (!can_serve_range(r)) {
      reply_range(r, from, request, false, LogIndex(), {});
      return;
    }
    // A short hold, as snapshot sends take: the items read are exactly the state at `applied`.
    s.serving = true;
    ++r.apply_holds;
    auto collected = std::make_shared<std::vector<Item>>();
    scan_range(r, from, request, r.applied, request.range.begin, collected);
  }

  void scan_range(Replica& r, sim::Address from, const RangeRequestBody& request, LogIndex as_of,
                  std::optional<PrimaryKey> at, std::shared_ptr<std::vector<Item>> collected) {
    const size_t slot = r.slot;
    r.tree->scan(std::move(at), kRangeScanItems,
                 [this, slot, from, request, as_of, collected](
                     BTreeStatus status, std::vector<Item> items, std::optional<PrimaryKey> next) {
                   Replica& rep = *replicas[slot];
                   bool done = status != BTreeStatus::kOk || !next;
                   for (Item& item : items) {
                     if (request.range.end && !(item.key() < *request.range.end)) {
                       done = true;
                       break;
                     }
                     collected->push_back(std::move(item));
                   }
                   if (status == BTreeStatus::kOk && !done && !rep.dropped) {
                     scan_range(rep, from, request, as_of, std::move(next), collected);
                     return;
                   }
                   rep.scrub->serving = false;
                   --rep.apply_holds;
                   if (rep.dropped) return;
                   const bool ok = status == BTreeStatus::kOk;
                   if (!ok && status == BTreeStatus::kCorrupt) rep.healthy = false;
                   reply_range(rep, from, request, ok, as_of,
                               ok ? std::move(*collected) : std::vector<Item>{});
                   if (ok) env->metrics().add("scrub.ranges_served", 1);
                   pump_apply(rep);
                   serve_queued_range_requests(rep);
                 });
  }

  void reply_range(const Replica& r, sim::Address to, const RangeRequestBody& request, bool ok,
                   LogIndex as_of, std::vector<Item> items) {
    auto body = std::make_shared<RangeItemsBody>();
    body->group = r.assignment.group;
    body->from_replica = r.assignment.replica;
    body->to_replica = request.from_replica;
    body->request_id = request.request_id;
    body->ok = ok;
    body->range = request.range;
    body->as_of = as_of;
    uint64_t bytes = kMessageHeaderBytes;
    uint64_t digest = mix(mix(request.request_id, ok ? 1 : 0), as_of.value);
    for (const Item& item : items) {
      bytes += item_wire_bytes(item);
      digest = mix(digest, item.checksum());
    }
    body->items = std::move(items);
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kRangeItems);
    message.size_bytes = static_cast<uint32_t>(std::min<uint64_t>(bytes, UINT32_MAX));
    message.digest = digest;
    message.body = std::move(body);
    env->send(to, std::move(message));
  }

  // Dispatch of the two messages.
  void dispatch_scrub(sim::Address from, const sim::Message& message) {
    if (!options.scrub.enabled) return;
    if (message.type == static_cast<uint32_t>(StorageMessageType::kDigestReport) ||
        message.type == static_cast<uint32_t>(StorageMessageType::kRangeSuspect)) {
      dispatch_compare(message);
      return;
    }
    if (message.type == static_cast<uint32_t>(StorageMessageType::kRangeRequest)) {
      const auto* request = dynamic_cast<const RangeRequestBody*>(message.body.get());
      if (request == nullptr) return;
      auto found = slot_of_group.find(request->group.value);
      if (found == slot_of_group.end()) return;
      Replica& r = *replicas[found->second];
      if (r.dropped || r.assignment.replica != request->to_replica) return;
      on_range_request(r, from, *request);
      return;
    }
    auto answer = std::dynamic_pointer_cast<const RangeItemsBody>(message.body);
    if (answer == nullptr) return;
    auto found = slot_of_group.find(answer->group.value);
    if (found == slot_of_group.end()) return;
    Replica& r = *replicas[found->second];
    if (r.dropped || r.assignment.replica != answer->to_replica) return;
    on_range_items(r, answer);
  }

  // ------------------------------------------------------------------------------------------
  // Replica comparison: range digests that narrow down to the differing range
  // (model/scrub_protocol.h; docs/scrub.md, "Comparing replicas"). Scrub's page verification
  // finds bits that changed at rest; this finds replicas whose content differs although every
  // page verifies: a software bug in an apply, a repair or a snapshot install.
  //
  // The leader proposes a DigestMarker through the log every compare_interval. Each full replica
  // computes the marker's range digests when it applies the marker, so every replica digests the
  // state at the same index: the digests are tree operations queued behind everything applied
  // before the marker and ahead of everything applied after it (the tree runs its operations in
  // order). Each reports to the proposer, which judges each range by majority and either orders
  // the differing replica to repair the range or cuts it into pieces for the next round.

  static constexpr size_t kMaxNarrowedRanges = 8;  // differing ranges narrowed per round

  uint64_t next_compare_round = 1;

  // Planted bug (DivergentApplyPlant): true for every `every`-th write this replica applies.
  bool planted_divergence_due(Replica& r) {
    const DivergentApplyPlant& plant = options.plant_divergent_apply;
    if (plant.replica == 0 || plant.every == 0 || r.assignment.replica != plant.replica) {
      return false;
    }
    if (env->local_now() >= plant.until) return false;
    return ++scrub_state(r).divergent_puts % plant.every == 0;
  }

  // start_apply's hook for a marker: queue the digests, then move `applied` past the marker.
  void apply_digest_marker(Replica& r, const LogEntry& entry) {
    DigestMarker marker;
    const bool decoded = DigestMarker::decode(entry.command.bytes, &marker);
    DYN_ASSERT_MSG(decoded, "a committed digest marker does not decode");
    if (options.scrub.enabled && r.kind == MemberKind::kFull) {
      compute_marker_digests(r, marker, entry.index);
    }
    finish_apply(r, entry, StorageStatus::kOk);
  }

  // True when the tree is the state at `applied` and fit to digest: no repaired range ahead of
  // it, no range known damaged, nothing being installed.
  bool can_digest(const Replica& r) const {
    return r.recovered && !r.failed && !r.content_invalid && !r.receiving &&
           !scrub_blocks_state_reads(r);
  }

  void compute_marker_digests(Replica& r, const DigestMarker& marker, LogIndex at) {
    struct Pending {
      DigestReportBody report;
      size_t remaining = 0;
    };
    auto pending = std::make_shared<Pending>();
    pending->report.group = r.assignment.group;
    pending->report.from_replica = r.assignment.replica;
    pending->report.to_replica = marker.leader;
    pending->report.round = marker.round;
    pending->report.at = at;
    pending->report.digests.resize(marker.ranges.size());
    if (!can_digest(r) || marker.ranges.empty()) {
      send_digest_report(r, std::move(pending->report));  // every digest !ok
      return;
    }
    pending->remaining = marker.ranges.size();
    const size_t slot = r.slot;
    for (size_t i = 0; i < marker.ranges.size(); ++i) {
      r.tree->range_digest(marker.ranges[i], [this, slot, pending, i](BTreeStatus status,
                                                                     uint64_t digest,
                                                                     uint64_t items) {
        if (status == BTreeStatus::kOk) {
          pending->report.digests[i] = RangeDigest{true, digest, items};
        } else if (status == BTreeStatus::kCorrupt) {
          env->metrics().add("scrub.compare_read_failures", 1);
        }
        if (--pending->remaining > 0) return;
        Replica& rep = *replicas[slot];
        if (rep.dropped) return;
        // A page that failed while digesting listed its range unhealthy: repair it.
        if (status == BTreeStatus::kCorrupt) repair_bookkeeping(rep);
        send_digest_report(rep, std::move(pending->report));
      });
    }
  }

  void send_digest_report(Replica& r, DigestReportBody report) {
    env->metrics().add("scrub.compare_reports", 1);
    if (report.to_replica == r.assignment.replica) {
      on_digest_report(r, report);
      return;
    }
    const std::optional<sim::Address> to = member_address(r, report.to_replica);
    if (!to) return;  // the proposer is gone: its round times out
    auto body = std::make_shared<DigestReportBody>(std::move(report));
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kDigestReport);
    message.size_bytes =
        static_cast<uint32_t>(kMessageHeaderBytes + 24 * body->digests.size());
    uint64_t digest = mix(mix(body->group.value, body->round), body->from_replica);
    for (const RangeDigest& d : body->digests) digest = mix(mix(digest, d.digest), d.items);
    message.digest = digest;
    message.body = std::move(body);
    env->send(*to, std::move(message));
  }

  // At each scrub tick of a full replica: start a round when one is due, end one that timed out.
  void compare_tick(Replica& r) {
    ScrubReplicaState& s = *r.scrub;
    const ScrubOptions& o = options.scrub;
    if (o.compare_interval <= sim::Duration(0)) return;
    if (r.paxos->role() != PaxosRole::kLeader) {
      s.compare.reset();
      s.narrow_pending.reset();
      s.next_compare_at = sim::SimTime::max();
      s.reference_due.reset();
      if (r.reference) r.reference->cancel();
      return;
    }
    maybe_check_reference(r);
    const sim::SimTime now = env->local_now();
    if (s.compare) {
      if (!s.compare->narrowing && now >= s.compare->deadline) conclude_compare(r);
      return;
    }
    if (s.narrow_pending) {
      auto [depth, ranges] = std::move(*s.narrow_pending);
      s.narrow_pending.reset();
      start_compare(r, depth, std::move(ranges));
      return;
    }
    if (s.next_compare_at == sim::SimTime::max()) {
      // A new leader's first round comes after a spread of up to one interval, so the groups of
      // a node do not all compare at once.
      const uint64_t spread = sim::splitmix64(node_seed ^ r.assignment.group.value) % 1024;
      s.next_compare_at = now + o.compare_interval / 1024 * static_cast<int64_t>(spread);
      return;
    }
    if (now < s.next_compare_at) return;
    s.next_compare_at = now + o.compare_interval;
    start_compare(r, 0, {KeyRangeBounds{}});
  }

  void start_compare(Replica& r, uint32_t depth, std::vector<KeyRangeBounds> ranges) {
    ScrubReplicaState& s = *r.scrub;
    DigestMarker marker;
    marker.round = sim::splitmix64(node_seed ^ (uint64_t{r.assignment.group.value} << 32) ^
                                   next_compare_round++);
    marker.leader = r.assignment.replica;
    marker.depth = depth;
    marker.ranges = std::move(ranges);
    Command command;
    command.id = sim::splitmix64(marker.round) | 1;  // never the no-op's 0
    command.bytes = marker.encode();
    const ProposeResult result = r.paxos->propose(std::move(command), env->local_now());
    if (result.status != ProposeStatus::kOk) {
      env->metrics().add("scrub.compare_refused", 1);
      if (depth > 0) s.narrow_pending.emplace(depth, std::move(marker.ranges));
      after_input(r);
      return;
    }
    ScrubReplicaState::CompareRound round;
    round.round = marker.round;
    round.index = result.index;
    round.depth = depth;
    round.ranges = std::move(marker.ranges);
    for (const Member& m : r.paxos->configuration().members) {
      if (m.voter && m.kind == MemberKind::kFull) round.expected.push_back(m.replica);
    }
    round.deadline = env->local_now() + options.scrub.compare_timeout;
    s.compare = std::move(round);
    env->metrics().add(depth == 0 ? "scrub.compare_rounds" : "scrub.compare_narrowing_rounds", 1);
    env->metrics().add("scrub.compare_ranges", static_cast<int64_t>(s.compare->ranges.size()));
    after_input(r);
  }

  void on_digest_report(Replica& r, const DigestReportBody& report) {
    if (!r.scrub || !r.scrub->compare) return;
    ScrubReplicaState::CompareRound& round = *r.scrub->compare;
    if (report.round != round.round || round.narrowing) return;
    if (report.digests.size() != round.ranges.size()) return;
    if (report.from_replica == options.scrub.plant_compare_ignore_replica) return;  // planted
    if (std::find(round.expected.begin(), round.expected.end(), report.from_replica) ==
        round.expected.end()) {
      return;
    }
    round.reports[report.from_replica] = report.digests;
    if (round.reports.size() == round.expected.size()) conclude_compare(r);
  }

  // Judges every range of the round: the differing replicas of a small (or deep) range are told
  // to repair it; larger differing ranges are cut for the next round.
  void conclude_compare(Replica& r) {
    ScrubReplicaState& s = *r.scrub;
    ScrubReplicaState::CompareRound& round = *s.compare;
    if (round.reports.size() < round.expected.size()) {
      env->metrics().add("scrub.compare_incomplete", 1);
    }
    std::vector<KeyRangeBounds> to_narrow;
    for (size_t i = 0; i < round.ranges.size(); ++i) {
      std::vector<std::pair<uint32_t, RangeDigest>> digests;
      for (const auto& [replica, reported] : round.reports) digests.emplace_back(replica, reported[i]);
      const RangeVerdict verdict = judge_range(digests, round.expected.size());
      if (verdict.majority && round.depth == 0) note_reference_due(r, round, i, *verdict.majority);
      if (!verdict.majority) {
        size_t ok = 0;
        for (const auto& d : digests) ok += d.second.ok ? 1 : 0;
        if (ok >= 2) env->metrics().add("scrub.compare_no_majority", 1);
        continue;
      }
      if (verdict.differing.empty()) continue;
      const KeyRangeBounds& range = round.ranges[i];
      const bool leaf = verdict.majority->items <= options.scrub.compare_leaf_items ||
                        round.depth >= options.scrub.compare_max_depth;
      if (!leaf) {
        if (to_narrow.size() < kMaxNarrowedRanges) to_narrow.push_back(range);
        continue;
      }
      for (uint32_t replica : verdict.differing) {
        env->metrics().add("scrub.divergent_ranges", 1);
        suspect_range(r, replica, range, verdict.agreeing.front(), round.round);
      }
    }
    if (to_narrow.empty()) {
      s.compare.reset();
      return;
    }
    round.narrowing = true;
    auto keys = std::make_shared<std::vector<std::vector<PrimaryKey>>>(to_narrow.size());
    collect_keys(r, std::make_shared<std::vector<KeyRangeBounds>>(std::move(to_narrow)), 0,
                 std::nullopt, keys);
  }

  // Reads the keys of ranges[i..] from the leader's tree (in kRangeScanItems batches), then cuts
  // each range at its keys' quantiles and proposes the pieces.
  void collect_keys(Replica& r, std::shared_ptr<std::vector<KeyRangeBounds>> ranges, size_t i,
                    std::optional<PrimaryKey> at,
                    std::shared_ptr<std::vector<std::vector<PrimaryKey>>> keys) {
    const size_t slot = r.slot;
    const uint64_t round = r.scrub->compare->round;
    std::optional<PrimaryKey> from = at ? std::move(at) : (*ranges)[i].begin;
    r.tree->scan(std::move(from), kRangeScanItems,
                 [this, slot, round, ranges, i, keys](BTreeStatus status, std::vector<Item> items,
                                                      std::optional<PrimaryKey> next) {
                   Replica& rep = *replicas[slot];
                   if (rep.dropped || !rep.scrub || !rep.scrub->compare ||
                       rep.scrub->compare->round != round) {
                     return;
                   }
                   if (status != BTreeStatus::kOk || rep.paxos->role() != PaxosRole::kLeader) {
                     rep.scrub->compare.reset();  // a later round starts over
                     return;
                   }
                   const KeyRangeBounds& range = (*ranges)[i];
                   bool done = !next;
                   for (const Item& item : items) {
                     if (range.end && !(item.key() < *range.end)) {
                       done = true;
                       break;
                     }
                     (*keys)[i].push_back(item.key());
                   }
                   if (!done) {
                     collect_keys(rep, ranges, i, std::move(next), keys);
                     return;
                   }
                   if (i + 1 < ranges->size()) {
                     collect_keys(rep, ranges, i + 1, std::nullopt, keys);
                     return;
                   }
                   std::vector<KeyRangeBounds> pieces;
                   for (size_t k = 0; k < ranges->size(); ++k) {
                     for (KeyRangeBounds& piece : cut_range(
                              (*ranges)[k],
                              quantile_splits((*keys)[k], options.scrub.compare_fanout))) {
                       pieces.push_back(std::move(piece));
                     }
                   }
                   const uint32_t depth = rep.scrub->compare->depth + 1;
                   rep.scrub->compare.reset();
                   start_compare(rep, depth, std::move(pieces));
                 });
  }

  // The reference check (P22 section 5.3: live replicas compared with "a replica built offline
  // using the archived write-ahead log entries"). A depth-0 round whose whole-key-space digest a
  // majority agreed on leaves that digest and the marker's index A. Once this leader's archiver
  // has seen the archive reach A, a ReferenceBuilder rebuilds the group's content at A from the
  // newest snapshot at or below A and the archived segments after it, through the object store,
  // and its digest is compared with the majority's. A mismatch means the archive does not hold
  // what the replicas agreed on: restoring from it would restore something else. One check runs
  // at a time; a later round's digest waits for it.
  void note_reference_due(Replica& r, const ScrubReplicaState::CompareRound& round, size_t i,
                          const RangeDigest& majority) {
    ScrubReplicaState& s = *r.scrub;
    const KeyRangeBounds& range = round.ranges[i];
    if (!options.archival.enabled || range.begin || range.end || s.reference_due) return;
    s.reference_due = ScrubReplicaState::ReferenceDue{round.index, majority};
  }

  void maybe_check_reference(Replica& r) {
    ScrubReplicaState& s = *r.scrub;
    if (!s.reference_due || !r.archiver) return;
    if (r.reference && r.reference->running()) return;
    if (r.archiver->archived_through() < s.reference_due->at) return;
    if (!r.reference) {
      r.reference_io =
          std::make_unique<ReplicaArchiveIo>(*this, r.slot, kArchiveComponentReference);
      ReferenceBuilderOptions builder_options;
      builder_options.scope = r.archiver->options().scope;
      r.reference = std::make_unique<ReferenceBuilder>(
          builder_options, *r.reference_io,
          sim::Random(sim::splitmix64(node_seed ^ r.assignment.group.value ^ 0x7ef3)));
    }
    const size_t slot = r.slot;
    const LogIndex at = s.reference_due->at;
    env->metrics().add("scrub.reference_builds", 1);
    r.reference->start(at, [this, slot](ReferenceReplica reference) {
      on_reference_built(*replicas[slot], std::move(reference));
    });
  }

  void on_reference_built(Replica& r, ReferenceReplica reference) {
    if (r.dropped || !r.scrub || !r.scrub->reference_due) return;
    const ScrubReplicaState::ReferenceDue due = *r.scrub->reference_due;
    r.scrub->reference_due.reset();
    if (due.at != reference.through) return;
    ReferenceOutcome outcome = ReferenceOutcome::kMatch;
    std::string detail;
    if (!reference.ok()) {
      outcome = reference.error.check == ArchiveCheck::kStore ? ReferenceOutcome::kUnavailable
                                                             : ReferenceOutcome::kError;
      detail = to_string(reference.error);
    } else if (reference.content_digest != due.majority.digest ||
               reference.item_count != due.majority.items) {
      outcome = ReferenceOutcome::kMismatch;
      char text[160];
      std::snprintf(text, sizeof(text),
                    "the replicas' majority holds digest %016llx with %llu items, the archive's "
                    "reference replica %016llx with %llu items",
                    static_cast<unsigned long long>(due.majority.digest),
                    static_cast<unsigned long long>(due.majority.items),
                    static_cast<unsigned long long>(reference.content_digest),
                    static_cast<unsigned long long>(reference.item_count));
      detail = text;
    }
    env->metrics().add(std::string("scrub.reference_") + to_string(outcome), 1);
    if (options.observer != nullptr) {
      options.observer->on_reference_checked(r.assignment.group, due.at, outcome, detail);
    }
  }

  void suspect_range(Replica& r, uint32_t replica, const KeyRangeBounds& range, uint32_t good,
                     uint64_t round) {
    RangeSuspectBody suspect;
    suspect.group = r.assignment.group;
    suspect.from_replica = r.assignment.replica;
    suspect.to_replica = replica;
    suspect.round = round;
    suspect.range = range;
    suspect.good_replica = good;
    if (replica == r.assignment.replica) {
      on_range_suspect(r, suspect);
      return;
    }
    const std::optional<sim::Address> to = member_address(r, replica);
    if (!to) return;
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kRangeSuspect);
    message.size_bytes = kMessageHeaderBytes;
    message.digest = mix(mix(suspect.group.value, round), replica);
    message.body = std::make_shared<RangeSuspectBody>(std::move(suspect));
    env->send(*to, std::move(message));
  }

  // The differing replica's side: list the range as damaged, so reads of it are refused and the
  // repair bookkeeping replaces it with a majority replica's items.
  void on_range_suspect(Replica& r, const RangeSuspectBody& suspect) {
    if (!r.recovered || r.failed || r.kind != MemberKind::kFull || r.content_invalid) return;
    ScrubReplicaState& s = scrub_state(r);
    r.tree->mark_range_unhealthy(suspect.range);
    if (!s.repairing) s.preferred_peer = suspect.good_replica;
    env->metrics().add("scrub.suspect_ranges", 1);
    repair_bookkeeping(r);
  }

  void dispatch_compare(const sim::Message& message) {
    GroupId group;
    uint32_t to_replica = 0;
    const auto* report = dynamic_cast<const DigestReportBody*>(message.body.get());
    const auto* suspect = dynamic_cast<const RangeSuspectBody*>(message.body.get());
    if (report != nullptr) {
      group = report->group;
      to_replica = report->to_replica;
    } else if (suspect != nullptr) {
      group = suspect->group;
      to_replica = suspect->to_replica;
    } else {
      return;
    }
    auto found = slot_of_group.find(group.value);
    if (found == slot_of_group.end()) return;
    Replica& r = *replicas[found->second];
    if (r.dropped || r.assignment.replica != to_replica) return;
    if (report != nullptr) {
      on_digest_report(r, *report);
    } else {
      on_range_suspect(r, *suspect);
    }
  }

  // For checkers (StorageNode::sector_use).
  StorageNode::SectorUse sector_use(uint64_t sector) const {
    if (slot_sectors == 0) return StorageNode::SectorUse::kOther;
    const uint64_t disk_slot = sector / slot_sectors;
    for (const auto& r : replicas) {
      if (r->dropped || r->disk_slot != disk_slot) continue;
      if (sector - disk_slot * slot_sectors < options.wal_region_sectors) {
        return StorageNode::SectorUse::kWal;
      }
      return r->tree->sector_referenced(sector) ? StorageNode::SectorUse::kBTreeLive
                                                : StorageNode::SectorUse::kBTreeFree;
    }
    return StorageNode::SectorUse::kOther;
  }

  // ==========================================================================================
  // End of scrub and repair.

  // ------------------------------------------------------------------------------------------
  // Inspection.

  ReplicaSnapshot snapshot_of(const Replica& r) const {
    ReplicaSnapshot s;
    s.group = r.assignment.group;
    s.replica = r.assignment.replica;
    s.kind = r.kind;
    if (r.paxos) s.configuration = r.paxos->configuration();
    s.recovered = r.recovered;
    s.healthy = r.healthy && !r.failed && r.tree->healthy();
    s.applied = r.applied;
    s.last_write = r.applied;
    if (r.paxos) {
      for (LogIndex i = r.applied; i > r.paxos->compacted_through(); i = LogIndex(i.value - 1)) {
        const LogEntry* entry = r.paxos->entry_at(i);
        s.last_write = i;
        if (entry == nullptr) break;
        if (!entry->command.is_noop() && !entry->command.is_configuration() &&
            !DigestMarker::is_marker(entry->command.bytes)) {
          break;
        }
        s.last_write = LogIndex(i.value - 1);
      }
      s.commit = r.paxos->commit_index();
      s.role = r.paxos->role();
    }
    s.content_known = r.recovered && !r.failed && !r.content_invalid && r.tree->healthy();
    if (s.content_known) {
      s.content_digest = r.tree->content_digest();
      s.item_count = r.tree->item_count();
    }
    return s;
  }

  // ------------------------------------------------------------------------------------------
  // Splits (model/split_executor.h, docs/partitions.md "Splitting a running partition").

  static bool in_split_range(const Replica& r, uint64_t hash) {
    return r.hash_begin <= hash && hash <= r.hash_end;
  }

  static uint64_t split_term(const Replica& r) {
    const Ballot ballot = r.paxos->ballot();
    return ballot.round << 8 | ballot.replica;
  }

  // A write entry the replica may apply: its key lies in the group's range. Marks high-half keys
  // for the copy while a split copies, and notes the key's hash for the size figure.
  bool split_admits_entry(Replica& r, const LogEntry& entry) {
    WriteCommand command;
    if (!WriteCommand::decode(entry.command.bytes, &command)) return true;  // start_apply asserts
    const uint64_t hash = partition_hash(command.key.partition);
    if (!in_split_range(r, hash)) return false;
    if (r.split && r.split->copying() && hash >= r.split->marker().split_hash) {
      r.applying_marked_key = command.key;
    }
    if (r.sampler && r.waiters.contains(entry.index.value)) r.applying_size_hash = hash;
    return true;
  }

  // The leader counts what it admitted (or served, without admission) in its sampler.
  void split_observe(Replica& r, uint64_t hash, CapacityUnits cost, bool write) {
    if (!options.splits.enabled || r.kind != MemberKind::kFull || !r.paxos ||
        r.paxos->role() != PaxosRole::kLeader || !in_split_range(r, hash)) {
      return;
    }
    const sim::SimTime now = env->local_now();
    if (!r.sampler) {
      r.sampler = std::make_unique<KeyTrafficSampler>(r.hash_begin, r.hash_end, now,
                                                      options.splits.sampler);
    }
    TrafficObservation observation;
    observation.partition_hash = hash;
    observation.key_identity = hash;
    const uint64_t milli = static_cast<uint64_t>(std::max<int64_t>(0, to_milli_units(cost)));
    (write ? observation.write_milli_units : observation.read_milli_units) = milli;
    r.sampler->observe(observation, now);
  }

  // The size figure: each write the leader answered changes the bytes at its key.
  void split_observe_size(Replica& r, int64_t delta_bytes) {
    if (!r.applying_size_hash) return;
    const uint64_t hash = *r.applying_size_hash;
    r.applying_size_hash.reset();
    if (r.sampler && in_split_range(r, hash) && r.sampler->hash_begin() == r.hash_begin &&
        r.sampler->hash_end() == r.hash_end) {
      r.sampler->observe_stored_bytes(hash, delta_bytes);
    }
  }

  void on_split_policy_timer() {
    env->set_timer(options.splits.policy_period, make_cookie(kCookieSplitPolicy, 0));
    for (size_t i = 0; i < replicas.size(); ++i) {
      Replica& r = *replicas[i];
      if (r.dropped || r.failed || !r.recovered || !r.paxos || r.kind != MemberKind::kFull) {
        continue;
      }
      if (r.paxos->role() != PaxosRole::kLeader) {
        r.sampler.reset();
        if (r.split && r.split->report_due()) send_copy_done(r);
        continue;
      }
      if (r.split) {
        if (r.split->report_due()) {
          r.split->on_copy_reported(r.assignment.replica, r.split->begin_index().value);
        }
        maybe_propose_split_commit(r);
        continue;
      }
      split_decide(r);
    }
  }

  void split_decide(Replica& r) {
    const sim::SimTime now = env->local_now();
    if (!r.sampler) {
      r.sampler = std::make_unique<KeyTrafficSampler>(r.hash_begin, r.hash_end, now,
                                                      options.splits.sampler);
    }
    // Only a group of three full voters splits (its child takes the same members).
    const Configuration& configuration = r.paxos->configuration_at(r.paxos->commit_index());
    if (configuration.voter_count() != kReplicasPerGroup ||
        configuration.members.size() != kReplicasPerGroup) {
      return;
    }
    for (const Member& member : configuration.members) {
      if (member.kind != MemberKind::kFull || !member.voter) return;
    }
    if (r.split_generation >= 255 || r.id_stride > UINT32_MAX / 2 ||
        r.assignment.group.value > UINT32_MAX - r.id_stride) {
      return;  // the id space of this lineage is used up
    }
    PartitionStatus status;
    status.id = PartitionId(r.assignment.group.value);
    status.hash_begin = r.hash_begin;
    status.hash_end = r.hash_end;
    status.size_bytes = r.sampler->stored_bytes();
    status.split_in_progress = false;
    const SplitDecision decision =
        SplitPolicy(options.splits.policy).decide(status, *r.sampler, now);
    env->metrics().add(std::string("splits.decisions.") + to_string(decision.verdict), 1);
    if (!is_split(decision.verdict)) return;
    SplitMarker marker;
    marker.kind = SplitMarker::Kind::kBegin;
    marker.parent = r.assignment.group;
    marker.child = GroupId(r.assignment.group.value + r.id_stride);
    marker.parent_begin = r.hash_begin;
    marker.parent_end = r.hash_end;
    marker.split_hash = decision.split_hash;
    marker.child_stride = r.id_stride * 2;
    marker.reason = decision.verdict;
    marker.decided_local_ns = now.ns;
    propose_split_marker(r, marker);
  }

  bool propose_split_marker(Replica& r, const SplitMarker& marker) {
    Command command;
    command.id = sim::splitmix64(mix(mix(marker.child.value, static_cast<uint64_t>(marker.kind)),
                                     mix(marker.begin_index, split_term(r)))) |
                 1;  // never the no-op's 0
    command.bytes = marker.encode();
    const ProposeResult result = r.paxos->propose(std::move(command), env->local_now());
    after_input(r);
    if (result.status != ProposeStatus::kOk) {
      env->metrics().add("splits.propose_refused", 1);
      return false;
    }
    return true;
  }

  void maybe_propose_split_commit(Replica& r) {
    if (!r.split || !r.paxos || r.paxos->role() != PaxosRole::kLeader) return;
    r.split->on_term(split_term(r));
    const Configuration& configuration = r.paxos->configuration_at(r.paxos->commit_index());
    if (!r.split->commit_due(configuration)) return;
    SplitMarker marker = r.split->marker();
    marker.kind = SplitMarker::Kind::kCommit;
    marker.begin_index = r.split->begin_index().value;
    marker.child_leader = options.splits.first_leader_at_once ? r.assignment.replica : 0;
    if (propose_split_marker(r, marker)) r.split->on_commit_proposed(split_term(r));
  }

  void send_copy_done(Replica& r) {
    const std::optional<sim::Address> leader = leader_address(r);
    if (!leader) return;
    auto body = std::make_shared<SplitCopyDoneBody>();
    body->parent = r.assignment.group;
    body->replica = r.assignment.replica;
    body->begin_index = r.split->begin_index().value;
    sim::Message message;
    message.type = static_cast<uint32_t>(SplitMessageType::kCopyDone);
    message.size_bytes = kMessageHeaderBytes;
    message.digest = mix(mix(body->parent.value, body->replica), body->begin_index);
    message.body = std::move(body);
    env->send(*leader, std::move(message));
  }

  void on_split_copy_done(const SplitCopyDoneBody& body) {
    auto found = slot_of_group.find(body.parent.value);
    if (found == slot_of_group.end()) return;
    Replica& r = *replicas[found->second];
    if (!r.split || !r.paxos || r.paxos->role() != PaxosRole::kLeader) return;
    r.split->on_copy_reported(body.replica, body.begin_index);
    if (r.split->report_due()) {
      r.split->on_copy_reported(r.assignment.replica, r.split->begin_index().value);
    }
    maybe_propose_split_commit(r);
  }

  std::optional<size_t> free_disk_slot() const {
    for (size_t candidate = 0; candidate < max_slots; ++candidate) {
      if (!disk_slots_used.contains(candidate)) return candidate;
    }
    return std::nullopt;
  }

  void apply_split_marker(Replica& r, const LogEntry& entry) {
    SplitMarker marker;
    const bool decoded = SplitMarker::decode(entry.command.bytes, &marker);
    DYN_ASSERT_MSG(decoded, "a committed split marker does not decode");
    // A marker for another range (a duplicate proposed by a later leader, or a begin whose split
    // already ran) changes nothing.
    const bool current = marker.parent == r.assignment.group &&
                         marker.parent_begin == r.hash_begin && marker.parent_end == r.hash_end;
    if (marker.kind == SplitMarker::Kind::kBegin) {
      if (current && !r.split && r.kind == MemberKind::kFull) begin_split(r, marker, entry.index);
      finish_apply(r, entry, StorageStatus::kOk);
      if (r.split && r.split->begin_index() == entry.index) split_copy_step(r);
      return;
    }
    if (!current) {
      finish_apply(r, entry, StorageStatus::kOk);
      return;
    }
    // The cutover: from this index on the group holds the low half only.
    r.hash_end = marker.split_hash - 1;
    r.split_generation += 1;
    r.id_stride = marker.child_stride;
    r.sampler.reset();
    env->metrics().add("splits.commits_applied", 1);
    if (options.observer != nullptr) {
      options.observer->on_split_committed(
          marker.parent, marker.child, r.assignment.replica, env->self(), marker.parent_begin,
          marker.parent_end, marker.split_hash, marker.reason == SplitVerdict::kSplitForSize,
          sim::SimTime(marker.decided_local_ns), env->local_now());
    }
    if (r.split && r.split->begin_index().value == marker.begin_index) {
      r.split->on_commit_applied(entry.index);
      replicas[r.split_child_slot]->first_leader = marker.child_leader;
    }
    finish_apply(r, entry, StorageStatus::kOk);
    maybe_start_split_child(r);
    if (memds_publisher) publish_partition_entry(r);
  }

  void begin_split(Replica& r, const SplitMarker& marker, LogIndex index) {
    const std::optional<size_t> disk_slot = free_disk_slot();
    if (!disk_slot || slot_of_group.contains(marker.child.value)) {
      // This replica cannot host the child: the split goes on with the others (the child then
      // runs on the replicas that could).
      env->metrics().add("splits.no_child_slot", 1);
      return;
    }
    ReplicaAssignment assignment;
    assignment.group = marker.child;
    assignment.replica = r.assignment.replica;
    assignment.members = r.assignment.members;
    const Configuration configuration = r.paxos->configuration_at(index);
    const size_t parent_slot = r.slot;
    Replica& child =
        add_replica(assignment, *disk_slot, MemberKind::kFull, Seed{LogIndex(), configuration});
    Replica& parent = *replicas[parent_slot];
    child.hash_begin = marker.split_hash;
    child.hash_end = marker.parent_end;
    child.split_generation = parent.split_generation + 1;
    child.id_stride = marker.child_stride;
    child.split_child_filling = true;
    // Whatever an earlier occupant of the slot left must not be read.
    env->disk(options.disk_index)
        .discard(child.disk_slot * slot_sectors * sector_bytes, slot_sectors * sector_bytes);
    parent.split.emplace(marker, index, options.splits.plant_child_serves_before_copy);
    parent.split_child_slot = child.slot;
    parent.copy_cursor.reset();
    parent.copy_marked.clear();
    env->metrics().add("splits.begun", 1);
  }

  // One paced copy step: keys marked by applies first, then the next chunk of the bulk copy.
  void split_copy_step(Replica& r) {
    if (!r.split || !r.split->copying() || r.copy_running || r.copy_timer_armed || r.dropped ||
        r.failed) {
      return;
    }
    const size_t slot = r.slot;
    if (!r.copy_marked.empty()) {
      std::vector<PrimaryKey> keys;
      while (!r.copy_marked.empty() && keys.size() < options.splits.copy_chunk_items) {
        keys.push_back(*r.copy_marked.begin());
        r.copy_marked.erase(r.copy_marked.begin());
      }
      r.copy_running = true;
      copy_keys(slot, std::make_shared<std::vector<PrimaryKey>>(std::move(keys)), 0, 0);
      return;
    }
    if (r.split->bulk_copy_done()) {
      maybe_start_split_child(r);
      return;
    }
    r.copy_running = true;
    r.tree->scan(r.copy_cursor, options.splits.copy_chunk_items,
                 [this, slot](BTreeStatus status, std::vector<Item> items,
                              std::optional<PrimaryKey> next) {
                   Replica& rep = *replicas[slot];
                   if (rep.dropped || !rep.split) return;
                   if (status != BTreeStatus::kOk) {
                     // Try the chunk again after a pause (a full queue, or a bad page that
                     // scrub may repair).
                     copy_step_done(rep, options.splits.copy_chunk_items * 1024);
                     return;
                   }
                   const uint64_t split_hash = rep.split->marker().split_hash;
                   const uint64_t end = rep.split->marker().parent_end;
                   auto moving = std::make_shared<std::vector<Item>>();
                   for (Item& item : items) {
                     const uint64_t hash = partition_hash(item.key().partition);
                     if (split_hash <= hash && hash <= end) moving->push_back(std::move(item));
                   }
                   rep.copy_cursor = std::move(next);
                   const bool last = !rep.copy_cursor.has_value();
                   put_copied(slot, moving, 0, 0, last);
                 });
  }

  // Puts items[i..] into the child's tree, one after another; then ends the step.
  void put_copied(size_t slot, std::shared_ptr<std::vector<Item>> items, size_t i, uint64_t bytes,
                  bool last) {
    Replica& r = *replicas[slot];
    if (r.dropped || !r.split) return;
    if (i == items->size()) {
      if (last) {
        r.split->on_bulk_copy_done();
        env->metrics().add("splits.bulk_copies_done", 1);
        if (r.paxos && r.paxos->role() == PaxosRole::kLeader) {
          r.split->on_copy_reported(r.assignment.replica, r.split->begin_index().value);
          maybe_propose_split_commit(r);
        } else {
          send_copy_done(r);
        }
      }
      copy_step_done(r, bytes);
      return;
    }
    Replica& child = *replicas[r.split_child_slot];
    const uint64_t size = stored_item_size_bytes((*items)[i], 0);
    env->metrics().add("splits.copied_bytes", static_cast<int64_t>(size));
    child.tree->put((*items)[i], [this, slot, items, i, bytes, size, last](BTreeStatus) {
      put_copied(slot, items, i + 1, bytes + size, last);
    });
  }

  // Copies keys[i..] again from the parent's tree (the item, or its absence) into the child's.
  void copy_keys(size_t slot, std::shared_ptr<std::vector<PrimaryKey>> keys, size_t i,
                 uint64_t bytes) {
    Replica& r = *replicas[slot];
    if (r.dropped || !r.split) return;
    if (i == keys->size()) {
      copy_step_done(r, bytes);
      return;
    }
    r.tree->get((*keys)[i], [this, slot, keys, i, bytes](BTreeStatus status,
                                                          std::optional<Item> item) {
      Replica& rep = *replicas[slot];
      if (rep.dropped || !rep.split) return;
      if (status != BTreeStatus::kOk && status != BTreeStatus::kNotFound) {
        rep.copy_marked.insert((*keys)[i]);  // again in a later step
        copy_keys(slot, keys, i + 1, bytes);
        return;
      }
      Replica& child = *replicas[rep.split_child_slot];
      if (item) {
        const uint64_t size = stored_item_size_bytes(*item, 0);
        child.tree->put(std::move(*item), [this, slot, keys, i, bytes, size](BTreeStatus) {
          copy_keys(slot, keys, i + 1, bytes + size);
        });
      } else {
        child.tree->erase((*keys)[i], [this, slot, keys, i, bytes](BTreeStatus) {
          copy_keys(slot, keys, i + 1, bytes + 1);
        });
      }
    });
  }

  // A step moved `bytes`: the next one waits bytes / copy_bytes_per_second.
  void copy_step_done(Replica& r, uint64_t bytes) {
    r.copy_running = false;
    if (!r.split) return;
    maybe_start_split_child(r);
    if (!r.split || !r.split->copying()) return;
    if (r.split->bulk_copy_done() && r.copy_marked.empty()) return;  // the next apply marks
    const uint64_t rate = std::max<uint64_t>(1, options.splits.copy_bytes_per_second);
    const int64_t delay_ns = static_cast<int64_t>(
        std::min<uint64_t>(std::max<uint64_t>(bytes, 1), UINT64_MAX / 1'000'000'000) *
        1'000'000'000 / rate);
    r.copy_timer_armed = true;
    env->set_timer(sim::nanoseconds(std::max<int64_t>(delay_ns, 1)),
                   make_cookie(kCookieSplitCopy, r.slot));
  }

  void on_split_copy_timer(uint64_t slot) {
    if (slot >= replicas.size()) return;
    Replica& r = *replicas[slot];
    r.copy_timer_armed = false;
    split_copy_step(r);
  }

  void maybe_start_split_child(Replica& r) {
    if (!r.split || r.copy_running) return;
    if (!r.split->child_may_start(r.copy_marked.size())) {
      // Keys marked before the commit still to copy: keep stepping.
      if (r.split->committed() && !r.copy_timer_armed) split_copy_step(r);
      return;
    }
    r.split->on_child_started();
    Replica& child = *replicas[r.split_child_slot];
    r.split.reset();
    r.copy_marked.clear();
    r.copy_cursor.reset();
    if (child.dropped) return;
    env->metrics().add("splits.children_started", 1);
    start_split_child(child);
  }

  // The child's first checkpoint holds the copied high half at its log index 0; once it and the
  // directory naming the child are durable, the child recovers from them and its Paxos starts.
  void start_split_child(Replica& child) {
    const CheckpointState state = seeded_checkpoint_state(child);
    CheckpointMetadata metadata;
    metadata.bytes = encode_checkpoint(state);
    const size_t slot = child.slot;
    child.tree->checkpoint(std::move(metadata), [this, slot, state](BTreeStatus status) {
      Replica& rep = *replicas[slot];
      if (rep.dropped) return;
      if (status != BTreeStatus::kOk) {
        // The child's copy here cannot be made durable: this replica does not take part.
        env->metrics().add("splits.child_checkpoint_failed", 1);
        rep.failed = true;
        return;
      }
      rep.seed.reset();
      rep.split_child_filling = false;
      write_directory([this, slot, state] {
        Replica& listed = *replicas[slot];
        if (listed.dropped) return;
        finish_recovery(listed, state, WalRecovery{});
        // The child's first leader takes over the range at once: no election, no lease to wait
        // out, so the moved half is served again as soon as this replica has started.
        if (listed.first_leader == listed.assignment.replica && listed.paxos &&
            listed.paxos->lead_first_ballot(env->local_now())) {
          env->metrics().add("splits.children_led_at_once", 1);
          after_input(listed);
        }
      });
    });
  }
};

// =============================================================================================

StorageNode::StorageNode(StorageNodeOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

StorageNode::~StorageNode() = default;

void StorageNode::on_start(sim::Env& env) {
  impl_->start(env);
  env.set_timer(impl_->options.checkpoint_interval, make_cookie(kCookieCheckpoint, 0));
  impl_->arm_scrub_timer();
}

void StorageNode::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  DYN_ASSERT(impl_->env == &env);
  impl_->on_message(from, message);
}

void StorageNode::on_timer(sim::Env& env, uint64_t cookie) {
  DYN_ASSERT(impl_->env == &env);
  impl_->on_timer(cookie);
}

std::vector<ReplicaSnapshot> StorageNode::inspect() const {
  std::vector<ReplicaSnapshot> out;
  out.reserve(impl_->replicas.size());
  for (const auto& r : impl_->replicas) {
    if (!r->dropped) out.push_back(impl_->snapshot_of(*r));
  }
  return out;
}

StorageNode::SectorUse StorageNode::sector_use(uint64_t sector) const {
  return impl_->sector_use(sector);
}

size_t StorageNode::replica_count() const {
  if (impl_->env == nullptr) return impl_->options.replicas.size();  // not started yet
  size_t count = 0;
  for (const auto& r : impl_->replicas) count += r->dropped ? 0 : 1;
  return count;
}

}  // namespace dynasim::model
