// MemDS: the in-memory metadata service that tells request routers where partitions are.
//
// P22 section 6.6. Routing metadata (each table's partition map: which replication group serves
// which range of partition hashes, and where its replicas are) lives in MemDS, an in-memory
// distributed store replicated across the whole MemDS fleet and scaled horizontally to the full
// incoming request rate. Each node keeps its copy in a Perkle tree (model/perkle.h) and answers a
// key lookup with a floor lookup: the entry with the greatest range start <= the key's partition
// hash is the partition whose range holds it.
//
// Storage nodes are the authoritative source of partition membership (P22 section 6.6): when a
// group's membership, leader or range changes, the storage side pushes the new entry to every
// MemDS node (MemdsPublisher, retried until acked). An update carries the entry's version; a node
// keeps the highest version it has seen, so an older update never overwrites a newer one, and
// applying the same update twice changes nothing. A node that was down while updates were pushed,
// or that a publisher gave up on, converges through anti-entropy: every anti_entropy_interval a
// node compares its Perkle tree with one peer's (round robin), from the root down, descending
// only into prefixes whose Merkle hashes differ, and both sides copy the newer entries. The
// paper does not describe how MemDS nodes repair each other; this anti-entropy is our design,
// built on the Merkle half of the Perkle tree the paper names.
//
// Anti-entropy, one round (initiator I, peer P), every message naming the round:
//   I -> P  SyncProbe(prefix, I's hash of prefix)
//   P: equal hash -> nothing. P holds <= max_entries_per_sync_message entries under the prefix
//      -> SyncEntries(all of them, reply wanted). Otherwise -> SyncChildren(P's covering subtree
//      under the prefix: its branch bit and the hashes of its two halves).
//   I on SyncChildren: sends P (as SyncEntries, no reply) its own entries under the prefix that
//      lie outside P's subtree, and a SyncProbe for each half whose hash differs from its own.
//   I on SyncEntries(reply wanted): applies them (newer wins) and sends back the entries it holds
//      under the prefix that P lacks or holds older.
// Probes per round are bounded (max_probes_per_round); what a round leaves is found next round.
//
// The components are driven by their owner process (like DirectClient): it forwards messages and
// timer cookies, and they answer whether they consumed them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "model/perkle.h"
#include "sim/env.h"

namespace dynasim::model {

inline constexpr uint32_t kMemdsPort = 8400;

// Message types on the wire (sim::Message::type): MemDS owns 140-149.
enum class MemdsMessageType : uint32_t {
  kMapUpdate = 140,     // PartitionMapUpdate: storage side to every MemDS node
  kMapUpdateAck = 141,  // PartitionMapUpdateAck: MemDS node to the publisher
  kLookup = 142,        // MemdsLookup: router to a MemDS node
  kLookupReply = 143,   // MemdsLookupReply
  kRangeRead = 144,     // MemdsRangeRead: a router downloading a table's map (legacy cache)
  kRangeReply = 145,    // MemdsRangeReply
  kSyncProbe = 146,     // anti-entropy between MemDS nodes
  kSyncChildren = 147,
  kSyncEntries = 148,
};

// On-the-wire sizes (our assumption): a 64-byte header like the storage messages', and 64 bytes
// per partition entry (two keys, a group id, three addresses, an epoch and a version).
inline constexpr uint32_t kMemdsHeaderBytes = 64;
inline constexpr uint32_t kMemdsEntryBytes = 64;

struct PartitionMapUpdate final : sim::MessageBody {
  uint64_t update_id = 0;  // unique per publisher incarnation; echoed by the ack
  std::vector<PartitionEntry> entries;
};

struct PartitionMapUpdateAck final : sim::MessageBody {
  uint64_t update_id = 0;
};

struct MemdsLookup final : sim::MessageBody {
  uint64_t request_id = 0;
  TableId table{0};
  uint64_t partition_hash = 0;
};

enum class MemdsStatus : uint8_t {
  kOk,
  kNoEntry,  // no partition of the table holds the hash (unknown table, or not yet pushed)
};
const char* to_string(MemdsStatus status);

struct MemdsLookupReply final : sim::MessageBody {
  uint64_t request_id = 0;
  MemdsStatus status = MemdsStatus::kOk;
  PartitionEntry entry;  // kOk: the partition whose range holds the hash, with its version
};

// A page of a table's partition map, in hash order, starting at the partition holding
// `hash_from` (the floor entry) or the first after it.
struct MemdsRangeRead final : sim::MessageBody {
  uint64_t request_id = 0;
  TableId table{0};
  uint64_t hash_from = 0;
  uint32_t max_entries = 0;
};

struct MemdsRangeReply final : sim::MessageBody {
  uint64_t request_id = 0;
  std::vector<PartitionEntry> entries;  // live entries only
  bool more = false;                    // the next page starts at next_hash_from
  uint64_t next_hash_from = 0;
};

struct MemdsSyncProbe final : sim::MessageBody {
  uint64_t round = 0;
  PerkleKey prefix;
  uint32_t prefix_bits = 0;
  uint64_t prefix_hash = 0;  // the sender's
};

struct MemdsSyncChildren final : sim::MessageBody {
  uint64_t round = 0;
  PerkleKey prefix;  // as probed
  uint32_t prefix_bits = 0;
  PerkleTree::Split split;  // the responder's covering subtree under the prefix
};

struct MemdsSyncEntries final : sim::MessageBody {
  uint64_t round = 0;
  PerkleKey prefix;
  uint32_t prefix_bits = 0;
  std::vector<PartitionEntry> entries;
  // True: `entries` are all the sender holds under the prefix, and it wants back what the
  // receiver holds there that is missing from them or newer.
  bool reply_wanted = false;
};

// Checkers and summaries watch the MemDS load through this hook; it must not change anything.
class MemdsObserver {
 public:
  // The node at `node` answered a request: a point lookup, or a page of a range read.
  virtual void on_request_served(sim::Address node, bool range_read) = 0;

 protected:
  ~MemdsObserver() = default;
};

struct MemdsOptions {
  // Our assumption: seconds are short next to how long a node stays down, and a round costs a
  // probe when nothing differs.
  sim::Duration anti_entropy_interval = sim::seconds(2);
  // Our assumptions: one message stays small (a few KB), and a round repairs thousands of
  // entries while staying bounded.
  uint32_t max_entries_per_sync_message = 32;
  uint32_t max_probes_per_round = 512;
  uint32_t max_range_entries = 1024;  // per MemdsRangeReply page
  PerkleOptions perkle;
  MemdsObserver* observer = nullptr;  // may be null

  // Planted bug for the versioning test: an update replaces the stored entry whenever its version
  // differs, so an older (late, reordered or re-sent) update overwrites a newer one. Never set
  // outside tests.
  bool plant_accept_older_version = false;
};

// One MemDS node's state machine.
class MemdsNode {
 public:
  // Timer cookies with this top byte belong to the node; the owner forwards them.
  static constexpr uint64_t kTimerCookieBase = uint64_t{0x4d} << 56;

  // `peers`: every MemDS node's address (this node's own may be among them; it is skipped).
  MemdsNode(MemdsOptions options, std::vector<sim::Address> peers);

  // Arms the anti-entropy timer. Call once from the owner's on_start.
  void start(sim::Env& env);
  // True if the message was a MemDS message (consumed).
  bool on_message(sim::Env& env, sim::Address from, const sim::Message& message);
  // True if the cookie was the node's (consumed).
  bool on_timer(sim::Env& env, uint64_t cookie);

  enum class ApplyOutcome : uint8_t { kApplied, kDuplicate, kStale };
  // Applies one entry: a higher version replaces the stored one; the same version changes
  // nothing (if the contents differ, the greater digest wins so that replicas converge); a lower
  // version is ignored.
  ApplyOutcome apply(const PartitionEntry& entry);
  // The floor lookup a MemdsLookup is answered with; nullopt: kNoEntry.
  std::optional<PartitionEntry> lookup(TableId table, uint64_t partition_hash) const;

  const PerkleTree& tree() const { return tree_; }

  struct Stats {
    uint64_t lookups = 0;             // MemdsLookup answered
    uint64_t lookups_no_entry = 0;    // of which kNoEntry
    uint64_t range_reads = 0;         // MemdsRangeRead pages answered
    uint64_t range_entries_sent = 0;  // entries in those pages
    uint64_t updates_received = 0;    // PartitionMapUpdate messages
    uint64_t entries_applied = 0;     // entries that replaced or added (updates and sync)
    uint64_t entries_duplicate = 0;   // same version already held
    uint64_t entries_stale = 0;       // older than held: ignored
    uint64_t sync_rounds = 0;         // rounds this node started
    uint64_t sync_probes_sent = 0;
    uint64_t sync_probes_equal = 0;  // probes received whose hash matched
    uint64_t sync_entries_sent = 0;
    uint64_t sync_entries_applied = 0;  // entries anti-entropy copied into this node
  };
  const Stats& stats() const { return stats_; }

 private:
  void on_update(sim::Env& env, sim::Address from, const PartitionMapUpdate& update);
  void on_lookup(sim::Env& env, sim::Address from, const MemdsLookup& lookup);
  void on_range_read(sim::Env& env, sim::Address from, const MemdsRangeRead& read);
  void on_probe(sim::Env& env, sim::Address from, const MemdsSyncProbe& probe);
  void on_children(sim::Env& env, sim::Address from, const MemdsSyncChildren& children);
  void on_sync_entries(sim::Env& env, sim::Address from, const MemdsSyncEntries& message);
  void start_round(sim::Env& env);
  void send_probe(sim::Env& env, sim::Address to, uint64_t round, const PerkleKey& prefix,
                  uint32_t prefix_bits);
  void send_entries(sim::Env& env, sim::Address to, uint64_t round, const PerkleKey& prefix,
                    uint32_t prefix_bits, std::vector<PartitionEntry> entries, bool reply_wanted);
  void arm_timer(sim::Env& env);

  MemdsOptions options_;
  std::vector<sim::Address> peers_;  // excluding self once started
  PerkleTree tree_;
  uint64_t round_ = 0;
  uint32_t probes_this_round_ = 0;
  std::optional<sim::Address> round_peer_;
  size_t next_peer_ = 0;
  bool started_ = false;
  Stats stats_;
};

struct MemdsPublisherOptions {
  // Our assumptions: a lost update is re-sent within a fraction of a second, and a MemDS node
  // that stays away for max_attempts re-sends (about 10 s) is left to anti-entropy.
  sim::Duration retry_interval = sim::milliseconds(200);
  uint32_t max_attempts = 50;
  uint32_t max_pending_updates = 256;  // beyond: publish() refuses
};

// The storage side's half of the push (P22 section 6.6: updates go to all MemDS nodes): sends each
// update to every MemDS node and re-sends it on a timer to the nodes that have not acked it.
class MemdsPublisher {
 public:
  static constexpr uint64_t kTimerCookieBase = uint64_t{0x50} << 56;

  // REQUIRES: memds_nodes is not empty.
  MemdsPublisher(MemdsPublisherOptions options, std::vector<sim::Address> memds_nodes);

  enum class PublishStatus : uint8_t { kQueued, kQueueFull };
  // Sends `entries` to every MemDS node now and keeps re-sending until each acks.
  PublishStatus publish(sim::Env& env, std::vector<PartitionEntry> entries);
  // True if the message was an ack (consumed).
  bool on_message(sim::Env& env, sim::Address from, const sim::Message& message);
  bool on_timer(sim::Env& env, uint64_t cookie);

  size_t pending_updates() const { return pending_.size(); }

  struct Stats {
    uint64_t updates_published = 0;
    uint64_t updates_refused = 0;  // queue full
    uint64_t sends = 0;            // first sends and re-sends
    uint64_t resends = 0;
    uint64_t acks = 0;
    uint64_t nodes_given_up = 0;  // (update, node) pairs left to anti-entropy
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Pending {
    std::shared_ptr<const PartitionMapUpdate> update;
    std::set<sim::Address> unacked;
    uint32_t attempts = 1;
  };
  void send(sim::Env& env, sim::Address to, const std::shared_ptr<const PartitionMapUpdate>& body);

  MemdsPublisherOptions options_;
  std::vector<sim::Address> memds_nodes_;
  uint64_t next_update_id_ = 0;          // drawn at the first publish, so incarnations differ
  std::map<uint64_t, Pending> pending_;  // by update id
  bool timer_armed_ = false;
  Stats stats_;
};

// A MemDS server: a process that is one MemdsNode and nothing else, listening on kMemdsPort.
// Its state is in memory only: a restarted server starts empty and refills through anti-entropy
// (and the next pushes).
class MemdsProcess final : public sim::Process {
 public:
  MemdsProcess(MemdsOptions options, std::vector<sim::Address> peers)
      : node_(options, std::move(peers)) {}
  void on_start(sim::Env& env) override { node_.start(env); }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;
  MemdsNode& node() { return node_; }
  const MemdsNode& node() const { return node_; }

 private:
  MemdsNode node_;
};

// A table's partition map as MemDS holds it, from a placement (each group's range and its
// replicas; members at epoch 0, the static placement's configuration): what the storage side
// publishes first. `leader_hint` stays empty.
std::vector<PartitionEntry> partition_map_of(TableId table, const Placement& placement,
                                             uint64_t version);

// A digest of entries, for message digests (the trace fingerprint).
uint64_t digest_of(const std::vector<PartitionEntry>& entries);

}  // namespace dynasim::model
