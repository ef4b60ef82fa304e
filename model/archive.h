// WAL archival to the object store, partition snapshots, and the reference replica rebuilt from
// them; docs/archival.md gives the formats, the agent's states and the reasoning.
//
// P22 section 5.1: write-ahead logs are "periodically archived to S3". Section 5.2: every archived
// log file carries a manifest ("table, partition, start and end markers"); before uploading, the
// archiver checks that every entry belongs to the right table and partition, that the checksums
// are valid and that there are "no holes in the sequence numbers"; archival agents run on all
// three replicas, and an agent that finds a file already archived downloads it and compares it
// with its local WAL; uploads carry a content checksum the store verifies. Section 5.3: scrub
// compares live replicas with "a replica built offline using the archived write-ahead log
// entries". Section 5.5: partition snapshots are uploaded periodically, "decided based on the
// amount of write-ahead logs accumulated".
//
// What is here:
// - the segment: the committed entries of one group for a fixed index range ((k-1)N, kN], with
//   its manifest, under the key wal/<table>/<group>/<first>-<last>. The boundaries are fixed and
//   a segment holds no ballots (they differ between replicas), so the three replicas of a group
//   produce byte-identical segments;
// - the checks an agent runs before an upload (check_segment_entries);
// - the agent itself (Archiver, one per replica), driven through a small Env-shaped interface
//   (ArchiveIo) so that tests can drive it from a bare sim::Simulation;
// - the partition snapshot (snap/<table>/<group>/<through>), its policy and its uploader;
// - the checker ArchiveAudit and the reference replica, both offline: they read the store with
//   ObjectStore::peek and never change it;
// - ReferenceBuilder: the same reference replica built during a run, through ArchiveIo (list and
//   get with the store's latency, retries with backoff), for a storage node's scrub.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/item.h"
#include "model/paxos.h"
#include "model/storage_protocol.h"
#include "sim/ids.h"
#include "sim/inplace_function.h"
#include "sim/object_store.h"
#include "sim/random.h"
#include "sim/time.h"

namespace dynasim::model {

using TableId = sim::Id<struct TableTag>;

// What an archive belongs to: one replication group of one table and the hash range it owns.
struct ArchiveScope {
  TableId table;
  GroupId group;
  uint64_t hash_begin = 0;  // the group owns partition_hash values in [hash_begin, hash_end]
  uint64_t hash_end = UINT64_MAX;
  // Write commands carry no table id in this layer, so what ties an entry to its table is its key:
  // when the schema is known, a key whose partition key type, or sort key presence or type, does
  // not match it is not the table's.
  std::optional<KeySchema> key_schema;

  static ArchiveScope of(TableId table, const GroupPlacement& placement,
                         std::optional<KeySchema> key_schema = std::nullopt);
  // Empty when the key belongs to the table and to the group's range; otherwise the failing
  // field ("partition_key_type", "sort_key", "sort_key_type", "partition_hash").
  std::string ownership_failure(const PrimaryKey& key) const;
};

// ---------------------------------------------------------------------------------------------
// Check results.

enum class ArchiveCheck : uint8_t {
  kNone,
  kOwnership,       // an entry or item is not the table's, or not in the group's hash range
  kEntryChecksum,   // an entry's bytes do not match the checksum recorded for it
  kSequence,        // a hole, a repeat, or a segment not right after the one before it
  kEncoding,        // bytes that do not parse: an object, a command, an item
  kObjectChecksum,  // the whole-object checksum does not match, or the store refused our bytes
  kManifest,        // a manifest field disagrees with the contents, the key or the scope
  kDivergence,      // another replica's archived segment differs from this replica's entries
  kIncomplete,      // the archive does not reach the index asked for
  kStore,           // a store call failed for good: unavailable every attempt, or a listed key gone
};
const char* to_string(ArchiveCheck check);

// Which check failed, and where. `index` 0 means the object as a whole.
struct ArchiveError {
  ArchiveCheck check = ArchiveCheck::kNone;
  LogIndex index;
  std::string field;   // e.g. "index", "command", "partition_hash", "entry_count"
  std::string detail;  // one line for a person
  std::string key;     // the object concerned, if any

  bool ok() const { return check == ArchiveCheck::kNone; }
};
// "sequence at index 5 (index) in wal/...: expected index 5, found 7"; "ok" when ok().
std::string to_string(const ArchiveError& error);

// ---------------------------------------------------------------------------------------------
// Segments.

// The checksum of a committed entry as archived: over its index, command id and command bytes.
// The ballot is left out: it is the ballot in which each replica accepted the entry, and differs
// between replicas that hold the same committed entry.
// A configuration entry (Command::configuration) is archived too; the flag is part of the sum.
uint64_t archive_entry_checksum(LogIndex index, uint64_t command_id, const SharedBytes& bytes,
                                bool configuration = false);
inline uint64_t archive_entry_checksum(const LogEntry& entry) {
  return archive_entry_checksum(entry.index, entry.command.id, entry.command.bytes,
                                entry.command.configuration);
}

// A committed entry as a segment holds it.
struct ArchivedEntry {
  LogIndex index;
  uint64_t command_id = 0;
  SharedBytes command_bytes;
  bool configuration = false;  // a membership change (model/paxos.h), not a write

  static ArchivedEntry of(const LogEntry& entry) {
    return ArchivedEntry{entry.index, entry.command.id, entry.command.bytes,
                         entry.command.configuration};
  }
  Command command() const { return Command{command_id, command_bytes, configuration}; }
  uint64_t checksum() const {
    return archive_entry_checksum(index, command_id, command_bytes, configuration);
  }
  bool operator==(const ArchivedEntry&) const = default;
};

// P22 section 5.2's manifest: table, partition (group and hash range), start and end markers
// (the segment's fixed bounds), plus a checksum per entry and one of the whole object.
struct SegmentManifest {
  TableId table;
  GroupId group;
  uint64_t hash_begin = 0;
  uint64_t hash_end = UINT64_MAX;
  LogIndex first_index;  // (k-1)N + 1
  LogIndex last_index;   // kN
  uint64_t entry_count = 0;
  std::vector<uint64_t> entry_checksums;  // one per entry, in entry order
  uint64_t object_checksum = 0;           // over every byte of the object before it
};

struct WalSegment {
  SegmentManifest manifest;
  std::vector<ArchivedEntry> entries;
};

// "wal/<table>/<group>/" and "wal/<table>/<group>/<first>-<last>", numbers zero-padded (10 digits
// for ids, 20 for indexes) so that byte order is index order.
std::string segment_prefix(TableId table, GroupId group);
std::string segment_key(TableId table, GroupId group, LogIndex first, LogIndex last);
// The bounds a segment key names; nullopt for a key of another shape.
std::optional<std::pair<LogIndex, LogIndex>> parse_segment_key(const std::string& key,
                                                               const std::string& prefix);
// The fixed segment (first, last) that holds `index`. REQUIRES: index >= 1, entries_per_segment>0.
std::pair<LogIndex, LogIndex> segment_bounds(LogIndex index, uint64_t entries_per_segment);

// The object for `entries` (in index order, inside [first, last]) of `scope`'s segment
// [first, last]. The manifest's entry count and per-entry checksums are computed from the entries
// (after the checks, they equal the checksums recorded when the entries were read from the WAL).
std::vector<uint8_t> encode_segment(const ArchiveScope& scope, LogIndex first, LogIndex last,
                                    const std::vector<ArchivedEntry>& entries);
// Parses and verifies an object: its format, every bound, the whole-object checksum, each entry's
// checksum against the manifest, entry indexes strictly increasing inside [first, last], and the
// entry count. It does not require the entries to be contiguous (ArchiveAudit and the checks
// below do): a segment with a hole still decodes, so the hole can be reported as one.
ArchiveError decode_segment(const std::vector<uint8_t>& bytes, WalSegment* out);

// The archiver's checks on the entries of the segment [first, last] before an upload (P22 5.2),
// entry by entry in order, reporting the first failure:
// - sequence: entry i has index first + i, the last is `last` (no hole, no repeat, nothing
//   missing at the end). Skipped when `check_sequence` is false (the planted bug);
// - entry checksum: recorded_checksums[i] (taken when the entry was read) equals a recomputation
//   over the bytes held now;
// - ownership: an entry that is not a write (is_non_write_command: a no-op, a configuration
//   entry, a scrub digest marker) belongs to any group; a write must decode as a WriteCommand
//   whose key belongs to the table and whose partition hash lies in the group's range.
enum class SequenceCheck : uint8_t { kEnforce, kSkip };
// An entry that changes no item: a no-op, a configuration entry (model/paxos.h), or a scrub digest
// marker (DigestMarker, model/storage_protocol.h). The checks, the reference replica and its
// builder pass over it alike.
bool is_non_write_command(const Command& command);
ArchiveError check_segment_entries(const ArchiveScope& scope, LogIndex first, LogIndex last,
                                   const std::vector<ArchivedEntry>& entries,
                                   const std::vector<uint64_t>& recorded_checksums,
                                   SequenceCheck sequence_check);

// ---------------------------------------------------------------------------------------------
// The agent.

// What the Archiver needs from its host, shaped like sim::Env so a storage node can forward to its
// Env (routing the timer cookie back to on_timer) and a test to a bare Simulation and ObjectStore.
// REQUIRES: callbacks run later, from the event loop, never inside the call that passed them, and
// never after the Archiver or SnapshotUploader that passed them is destroyed (the Env drops a dead
// process's callbacks). ReferenceBuilder needs only the first: it guards its own lifetime.
class ArchiveIo {
 public:
  using PutDone = sim::InplaceFunction<void(sim::ObjectStatus), 48>;
  using GetDone = sim::InplaceFunction<void(sim::ObjectResult), 48>;
  using ListDone = sim::InplaceFunction<void(sim::ObjectStatus, std::vector<std::string>), 48>;

  // Calls on_timer(cookie) on the component that set it, after `delay` of local time.
  virtual void set_timer(sim::Duration delay, uint64_t cookie) = 0;
  // sim::ObjectStore::put_with_checksum.
  virtual void put(std::string key, sim::ObjectBytes data, uint64_t content_checksum,
                   PutDone done) = 0;
  virtual void get(std::string key, GetDone done) = 0;
  // sim::ObjectStore::list: the keys that start with `prefix`, in byte order.
  virtual void list(std::string prefix, ListDone done) = 0;
  // A check failed or a divergence was found: archival of this replica has stopped. A storage
  // node raises it as an alarm (metrics, health); a test records it.
  virtual void report_failure(const ArchiveError& error) = 0;

 protected:
  ~ArchiveIo() = default;
};

// Exponential backoff with jitter: the n-th wait is drawn uniformly from [d/2, d) with
// d = min(initial * 2^n, max). Our assumption, in the spirit of the AWS SDKs' retry policy.
struct RetryOptions {
  sim::Duration initial = sim::milliseconds(100);
  sim::Duration max = sim::seconds(10);
};

class RetryBackoff {
 public:
  explicit RetryBackoff(RetryOptions options) : options_(options), next_(options.initial) {}
  sim::Duration next(sim::Random& random);
  void reset() { next_ = options_.initial; }

 private:
  RetryOptions options_;
  sim::Duration next_;
};

struct ArchiverOptions {
  ArchiveScope scope;
  // N, the entries per segment. Our assumption: P22 gives no figure, only that the unarchived
  // tail is "typically a few hundred megabytes" (5.1); 1,024 entries of ~1 KB is a 1 MB object.
  uint64_t entries_per_segment = 1024;
  // The bound on entries held (offered and not yet in an acknowledged segment). At the bound an
  // offer is refused with kBackPressure. REQUIRES: >= entries_per_segment.
  uint64_t max_pending_entries = 4096;
  RetryOptions retry;
  // A put refused with kChecksumMismatch this many times in a row stops the agent: its bytes
  // keep arriving damaged, which retrying will not fix.
  uint32_t max_checksum_refusals = 5;

  // Planted bug, for the test that proves ArchiveAudit sees it. Default off; never set it outside
  // tests. The sequence check is skipped: a segment with a hole, or one that does not start right
  // after the previous one, is uploaded, and archived_through() then passes over the missing
  // entries (the truncation contract below no longer holds).
  bool plant_accept_sequence_gap = false;
  // Planted bug for scrub's reference check (docs/scrub.md). Default 0, off; never set it outside
  // tests. Every entry whose index is a multiple of this that holds a put is archived with an
  // attribute the command does not carry, checksummed as if it had been read so from the WAL.
  // Every replica's agent alters the same entries, so their segments still agree byte for byte
  // and every check and the audit pass; only rebuilding the content from the archive shows it.
  uint64_t plant_alter_entry_every = 0;
};

enum class OfferStatus : uint8_t {
  kAccepted,
  kBelowStart,      // at or below start_after(): not this replica's to archive; ignored
  kAlreadyOffered,  // at or below offered_through(); ignored
  kBackPressure,    // max_pending_entries held: not taken; offer it again later
  kHalted,          // a check failed or a divergence was found (failure()); not taken
};
const char* to_string(OfferStatus status);

struct ArchiverStats {
  uint64_t segments_uploaded = 0;         // put by this agent
  uint64_t segments_matched = 0;          // found archived by another replica, compared equal
  uint64_t partial_segments_matched = 0;  // held only in part (after start_after), matched
  uint64_t get_retries = 0;
  uint64_t put_retries = 0;
  uint64_t checksum_refusals = 0;
  uint64_t waits_for_peer_segment = 0;  // a partly held segment not archived yet by a peer
  uint64_t back_pressure_refusals = 0;
};

// The archival agent of one replica (P22 5.2: it runs on all three).
//
// Input: the replica's committed entries, in index order, through offer(). Each is held until the
// segment that contains it is acknowledged. When the fixed segment after archived_through() is
// complete (offered_through() reaches its last index) the agent runs the checks, then gets the
// segment's key: if another replica archived it, it compares the object with its own bytes (equal:
// acknowledged; different: a divergence, reported with the first differing index, and the agent
// halts); if not, it puts the object with its content checksum. One segment is in flight at a
// time; a store that is unavailable is retried with backoff (RetryOptions), the same step again.
//
// THE CONTRACT WITH THE STORAGE NODE: the node may truncate its local WAL (and compact its log)
// only at or behind archived_through(). Invariant: every entry this replica holds at an index
// <= archived_through() is in a segment the store has acknowledged (this agent's put, or its
// comparison with a peer's object). archived_through() never decreases.
//
// Start after a snapshot install: entries at or below start_after(T) were never held by this
// replica (it received them as a B-tree snapshot), so they are not its to archive. Segments that
// lie wholly at or below T are left to the replicas that hold them: archived_through() starts at
// the last segment boundary at or below T, which covers nothing this replica holds. The segment
// that holds T + 1, when T is not a boundary, is held only in part: the agent does not upload it
// (it cannot build it); it waits for a peer's upload (retrying its get with backoff) and then
// compares the entries it holds with the object. If no replica holds that segment whole, it is
// never archived and this agent stays behind it: back-pressure follows (docs/archival.md).
//
// Back-pressure: at max_pending_entries offer() refuses with kBackPressure and takes nothing. The
// node keeps those entries in its WAL and offers again from offered_through() + 1 later; its WAL
// then grows until archival catches up (the store is back), and a full WAL limits writes.
//
// Halted: a failed check or a divergence stops the agent for good (failure() says which check and
// where, and ArchiveIo::report_failure was called once). Nothing is uploaded for the segment, and
// archived_through() stays where it is, so the WAL behind the problem is kept for an operator.
//
// Memory: held entries share their command bytes with the replica's log (SharedBytes); the
// segment in flight adds one encoded copy of itself.
//
// Known window: between a get that finds nothing and the put that follows, another replica may
// put the same key. Equal segments make that harmless; unequal ones mean the later put replaces
// the earlier unseen. Closing it needs a conditional put (If-None-Match), which the simulated
// store does not offer; scrub's replica comparison still sees such a divergence.
class Archiver {
 public:
  // REQUIRES: options as documented; `io` outlives the archiver.
  Archiver(ArchiverOptions options, ArchiveIo& io, sim::Random random);
  Archiver(const Archiver&) = delete;
  Archiver& operator=(const Archiver&) = delete;

  // Offers the next committed entry. REQUIRES: a committed entry (not a hole). An index above
  // offered_through() + 1 is accepted: the hole is the sequence check's to find.
  OfferStatus offer(const LogEntry& entry);
  // The same with the checksum taken when the entry was read from the WAL (whose record checksum
  // the WAL verified); the checks compare it with a recomputation over the bytes held.
  OfferStatus offer(const LogEntry& entry, uint64_t recorded_checksum);

  // This replica installed a snapshot covering (0, through]: see the class comment. Held entries
  // at or below `through` are dropped, and work in flight on their segments is abandoned (its
  // replies are ignored). REQUIRES: not below an earlier start.
  void start_after(LogIndex through);

  void on_timer(uint64_t cookie);

  LogIndex archived_through() const { return archived_through_; }
  LogIndex offered_through() const { return offered_through_; }
  LogIndex start() const { return start_after_; }
  size_t pending_entries() const { return pending_.size(); }
  bool halted() const { return !failure_.ok(); }
  const ArchiveError& failure() const { return failure_; }
  const ArchiverStats& stats() const { return stats_; }
  const ArchiverOptions& options() const { return options_; }

 private:
  struct Held {
    ArchivedEntry entry;
    uint64_t recorded_checksum = 0;
  };
  enum class Phase : uint8_t { kIdle, kGetting, kPutting, kWaiting };
  enum class Retry : uint8_t { kGet, kPut };
  struct InFlight {
    LogIndex first;
    LogIndex last;
    bool held_whole = true;  // false: held only from start_after_ + 1 (compare, never put)
    size_t entry_count = 0;  // pending_ entries that belong to it
    std::string key;
    sim::ObjectBytes bytes;  // held_whole only
    uint64_t content_checksum = 0;
  };

  void pump();
  bool next_segment(LogIndex* first, LogIndex* last) const;
  void start_segment(LogIndex first, LogIndex last);
  void issue_get();
  void issue_put();
  void on_get(uint64_t generation, sim::ObjectResult result);
  void on_put(uint64_t generation, sim::ObjectStatus status);
  void compare_with_stored(const sim::ObjectBytes& stored);
  void acknowledge();
  void retry_later(Retry what);
  void halt(ArchiveError error);

  ArchiverOptions options_;
  ArchiveIo& io_;
  sim::Random random_;
  RetryBackoff backoff_;

  LogIndex start_after_;
  LogIndex archived_through_;
  LogIndex offered_through_;
  std::deque<Held> pending_;  // offered, index order, all above archived_through_

  Phase phase_ = Phase::kIdle;
  Retry retry_ = Retry::kGet;
  std::optional<InFlight> in_flight_;
  uint64_t generation_ = 0;  // replies and timers of abandoned work carry an older one
  uint32_t checksum_refusals_in_a_row_ = 0;

  ArchiveError failure_;
  ArchiverStats stats_;
};

// ---------------------------------------------------------------------------------------------
// Partition snapshots (P22 5.5).

// The multiset digest of a set of items: the sum (mod 2^64) of each item's content hash,
// sim::hash_bytes(0, Item::encode()), which is Item::checksum() and exactly the per-item hash
// BTree::content_digest() sums (model/btree.cc, content_hash). Equal content, equal digest.
uint64_t item_content_hash(const Item& item);

struct SnapshotManifest {
  TableId table;
  GroupId group;
  uint64_t hash_begin = 0;
  uint64_t hash_end = UINT64_MAX;
  LogIndex through;  // the items are the partition's content after applying (0, through]
  uint64_t item_count = 0;
  uint64_t content_digest = 0;  // multiset digest, as BTree::content_digest()
  uint64_t object_checksum = 0;
};

struct PartitionSnapshot {
  SnapshotManifest manifest;
  std::vector<Item> items;  // in key order
};

std::string snapshot_prefix(TableId table, GroupId group);
std::string snapshot_key(TableId table, GroupId group, LogIndex through);
std::optional<LogIndex> parse_snapshot_key(const std::string& key, const std::string& prefix);

// The object for `items` of `scope` as of `through`. Fails (and encodes nothing) if the items are
// not in strictly increasing key order or one is not the scope's.
ArchiveError encode_snapshot(const ArchiveScope& scope, LogIndex through,
                             const std::vector<Item>& items, std::vector<uint8_t>* out);
// Parses and verifies: format, bounds, the whole-object checksum, every item decodes, keys in
// strictly increasing order and in the manifest's hash range, item count and content digest.
ArchiveError decode_snapshot(const std::vector<uint8_t>& bytes, PartitionSnapshot* out);

// When to take a snapshot: "decided based on the amount of write-ahead logs accumulated" (P22
// 5.5). Our rule: once at least `every_archived_entries` (M) entries were archived since the last
// snapshot's `through`. M is our assumption: 16 segments of the default size. 0 turns it off.
struct SnapshotPolicy {
  uint64_t every_archived_entries = 16 * 1024;
  bool due(LogIndex archived_through, LogIndex last_snapshot_through) const {
    return every_archived_entries > 0 && archived_through > last_snapshot_through &&
           archived_through - last_snapshot_through >= every_archived_entries;
  }
};

// Uploads one snapshot at a time with its content checksum, retrying with backoff while the store
// is unavailable. It writes under the snapshot's own key and never compares: one replica of a
// group (the integration's choice, e.g. the leader) takes snapshots, and replicas are compared
// with each other by scrub. The items are held until the put is acknowledged.
class SnapshotUploader {
 public:
  SnapshotUploader(ArchiveScope scope, ArchiveIo& io, sim::Random random, RetryOptions retry = {});
  SnapshotUploader(const SnapshotUploader&) = delete;
  SnapshotUploader& operator=(const SnapshotUploader&) = delete;

  enum class Start : uint8_t {
    kStarted,
    kBusy,     // an upload is in flight; nothing done
    kRefused,  // the items fail encode_snapshot's checks (*refusal says which); nothing uploaded
  };
  // Starts uploading the items (in key order) as the content of (0, through].
  Start upload(LogIndex through, const std::vector<Item>& items, ArchiveError* refusal = nullptr);
  void on_timer(uint64_t cookie);

  bool busy() const { return in_flight_.has_value(); }
  // The newest `through` whose snapshot the store acknowledged (0: none).
  LogIndex uploaded_through() const { return uploaded_through_; }
  uint64_t retries() const { return retries_; }

 private:
  struct InFlight {
    LogIndex through;
    std::string key;
    sim::ObjectBytes bytes;
    uint64_t content_checksum = 0;
  };
  void issue_put();

  ArchiveScope scope_;
  ArchiveIo& io_;
  sim::Random random_;
  RetryBackoff backoff_;
  std::optional<InFlight> in_flight_;
  uint64_t generation_ = 0;
  LogIndex uploaded_through_;
  uint64_t retries_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Offline readers: the reference replica and the audit. Both read the store through peek (no
// latency, no effect on the run) and are meant for checkers and scrub, never for the data path.

// A group's content rebuilt from the archive (P22 5.3): the newest snapshot with through <= T,
// then the archived entries (through, T] applied in index order with a replica's semantics (a put
// replaces the item, a delete removes it, a condition is judged by Condition::holds against the
// state the entry lands on and a failed one changes nothing; entries that are not writes,
// is_non_write_command, change nothing).
struct ReferenceReplica {
  ArchiveError error;         // ok(): the content at `through` is below; otherwise why not
  LogIndex through;           // T
  LogIndex snapshot_through;  // the snapshot it started from (0: none, from index 1)
  std::map<PrimaryKey, Item> items;
  uint64_t content_digest = 0;  // as BTree::content_digest()
  uint64_t item_count = 0;
  uint64_t entries_applied = 0;  // no-ops, configuration entries and digest markers included
  uint64_t conditions_failed = 0;

  bool ok() const { return error.ok(); }
};

// Rebuilds `scope`'s content at `through`. Fails with kIncomplete when the archive ends before
// `through`, kSequence at the first missing index when it has a gap, and with the decoding error
// of any snapshot or segment it needs that fails its checks.
ReferenceReplica rebuild_reference_replica(const sim::ObjectStore& store, const ArchiveScope& scope,
                                           LogIndex through);

// One entry applied to an in-memory replica with the semantics above. An entry that is not a
// write (is_non_write_command) changes nothing and returns true. Returns false (and changes
// nothing) if any other command does not decode; *condition_failed says whether a condition
// refused it.
bool apply_archived_command(const Command& command, std::map<PrimaryKey, Item>& items,
                            bool* condition_failed);

// An archived segment's key and the bounds it names.
struct SegmentRef {
  LogIndex first;
  LogIndex last;
  std::string key;
};

// The reference replica built during a run (P22 5.3), for a storage node's scrub: the same steps
// and checks as rebuild_reference_replica, and the same result for the same archive, but through
// ArchiveIo with the store's latency. One call at a time: list the snapshot prefix; get the newest
// snapshot with through <= T (if any); list the segment prefix; get the segments that hold
// (through, T], in index order, checking and applying each before the next get.
//
// Retries: a call answered kUnavailable (or, for a get, kChecksumMismatch) is made again after a
// backoff (RetryOptions); after max_attempts answers like that in a row the build fails with
// kStore. Any other failure is the offline path's: kIncomplete, kSequence, a decoding or manifest
// error with the object's key, kEncoding for a command that does not decode.
//
// Timers: the builder sets timers through ArchiveIo::set_timer and expects them back at
// on_timer(cookie). Its cookies carry kCookieTag (bit 33) above a 33-bit generation; Archiver and
// SnapshotUploader use bare generations far below it, so on_timer ignores theirs. The storage
// node gives each component an ArchiveIo of its own and routes timers by component, so the tag
// is a second guard, not the routing.
//
// Lifetime: replies and timers that arrive after cancel(), after the build finished, or after a
// new start() are ignored; replies that arrive after the builder is destroyed are dropped without
// touching it (each holds a weak reference). The owner must not call on_timer on a destroyed
// builder. `done` runs from a reply (never inside start) as the builder's last act on the build,
// so it may destroy the builder.
//
// Memory: the items map of the replica being built, and one segment or snapshot object at a time.
struct ReferenceBuilderOptions {
  ArchiveScope scope;
  RetryOptions retry;
  // Answers of kUnavailable in a row, for one call, before the build fails with kStore.
  // Our assumption: 8 attempts span about 7 to 14 s with the default backoff (7 waits of
  // 50-100 ms doubling). REQUIRES: >= 1.
  uint32_t max_attempts = 8;
};

class ReferenceBuilder {
 public:
  using Done = sim::InplaceFunction<void(ReferenceReplica), 48>;
  static constexpr uint64_t kCookieTag = uint64_t{1} << 33;

  // REQUIRES: `io` outlives the builder.
  ReferenceBuilder(ReferenceBuilderOptions options, ArchiveIo& io, sim::Random random);
  ReferenceBuilder(const ReferenceBuilder&) = delete;
  ReferenceBuilder& operator=(const ReferenceBuilder&) = delete;

  enum class Start : uint8_t {
    kStarted,
    kBusy,  // a build is running; nothing done
  };
  // Starts building the scope's content at `through`; `done` gets the result once.
  Start start(LogIndex through, Done done);
  // Abandons the running build, if any: `done` is not called, late replies are ignored.
  void cancel();
  void on_timer(uint64_t cookie);

  bool running() const { return step_ != Step::kIdle; }
  uint64_t retries() const { return retries_; }  // over every build so far
  uint64_t calls() const { return calls_; }      // lists and gets issued, retries included

 private:
  enum class Step : uint8_t { kIdle, kListSnapshots, kGetSnapshot, kListSegments, kGetSegment };

  void issue();
  const std::string& target() const;  // the key or prefix of the current call
  void on_list(sim::ObjectStatus status, std::vector<std::string> keys);
  void on_get(sim::ObjectResult result);
  bool take_answer(sim::ObjectStatus status);
  void on_snapshot(const std::vector<uint8_t>& bytes);
  void on_segment(const std::vector<uint8_t>& bytes);
  void list_segments_or_finish();
  void next_segment();
  void finish(ArchiveError error);

  ReferenceBuilderOptions options_;
  ArchiveIo& io_;
  sim::Random random_;
  RetryBackoff backoff_;
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);

  Step step_ = Step::kIdle;
  bool waiting_ = false;     // a retry timer is set for the current step
  uint64_t generation_ = 0;  // replies and timers of an older call carry an older one
  uint32_t attempts_ = 0;    // answers of kUnavailable in a row for the current call
  Done done_;
  ReferenceReplica replica_;
  LogIndex next_;  // the next index to apply
  std::string snapshot_prefix_;
  std::string segment_prefix_;
  std::optional<std::pair<LogIndex, std::string>> snapshot_;  // the one chosen
  std::vector<SegmentRef> segments_;                          // listed, in index order
  size_t segment_at_ = 0;
  uint64_t retries_ = 0;
  uint64_t calls_ = 0;
};

struct ArchiveAuditReport {
  std::vector<ArchiveError> findings;  // empty: the archive holds
  LogIndex begins_after;      // the oldest snapshot's through, if segments start above index 1
  LogIndex archived_through;  // the highest index archived contiguously from the beginning
  LogIndex highest_index;     // the highest index in any segment
  uint64_t segments = 0;
  uint64_t snapshots = 0;
  uint64_t entries = 0;

  bool ok() const { return findings.empty(); }
};

// The checker for a group's archive (inspection only, for game-day checkers and tests). Verifies:
// - every segment and snapshot decodes and its checksums hold (decode_segment, decode_snapshot);
// - every manifest agrees with its key (bounds, through) and with the scope (table, group, range);
// - every segment's entries are exactly first..last (no hole inside), and each entry is the
//   group's (ownership, as the archiver checks it);
// - segments are contiguous from index 1, or from just after the oldest snapshot, up to the
//   highest archived index: no gap between them, no overlap.
class ArchiveAudit {
 public:
  ArchiveAudit(const sim::ObjectStore& store, ArchiveScope scope)
      : store_(store), scope_(std::move(scope)) {}
  ArchiveAuditReport run() const;

 private:
  const sim::ObjectStore& store_;
  ArchiveScope scope_;
};

}  // namespace dynasim::model
