// A storage replica's B+tree of items, persisted as checksummed pages on the simulated disk.
//
// P22 section 3: every storage replica holds a B-tree of its partition's items next to its WAL.
// This tree is what a replica's state machine applies committed writes to, and what its
// checkpoints make durable, so that the WAL can be truncated behind them.
//
// Design (shadow paging, as LMDB and the ZFS block pointer tree do it):
// - A page is one disk sector. Leaves hold items in key order; inner pages hold separator keys and
//   child pointers. A child pointer carries the child's page number AND the checksum of the
//   child's bytes, so a page that is torn, rotten, stale or misdirected fails verification when it
//   is read, even if it is internally consistent. Every page also carries its own checksum and its
//   page number. Items too large for a leaf slot go to a chain of overflow pages.
// - Changes are made in memory. checkpoint() writes every page changed since the last checkpoint
//   to FREE page slots (never over a page the last durable checkpoint references), fsyncs, then
//   writes a superblock (generation, root pointer with its checksum, the caller's metadata) to the
//   older of two superblock slots and fsyncs again. Only then are the page slots the previous
//   checkpoint used, and this one no longer uses, free for reuse. A power-off at any point leaves
//   the previous checkpoint intact.
// - Memory is bounded: pages written by a durable checkpoint may be evicted (clean pages only,
//   least recently used first, beyond cache_pages) and are read back from the disk, and verified,
//   when next needed.
// - recover() reads both superblocks, takes the newest valid one, and reads the inner pages of its
//   tree from the disk (leaves are read lazily, when needed). A page that fails verification is
//   never served: every later operation touching its key range answers kCorrupt, and the range is
//   listed in unhealthy_ranges() so the replica can report itself unhealthy for it. Every page that
//   fails verification is also reported to the disk (Disk::report_verification_failure, labelled
//   "read" for an operation's read and "scrub" for the scrubber's), which keeps the ground truth
//   that game-day checkers compare against.
// - Scrub and repair (P22 section 5.3, continuous verification of data at rest): scrub_pages()
//   re-reads, a few pages at a time, every page the last durable checkpoint references and
//   verifies it as a read would; range_digest() lets a repairer compare a key range with a peer's;
//   repair_range() replaces a range's content with items from a peer, dropping pages that cannot
//   be read. See each operation below.
//
// Operations run in FIFO order (a get issued after a put sees the put). An operation whose pages
// are all resident, issued when nothing is queued ahead of it, completes before the call returns
// (its callback runs inside the call); otherwise it waits for disk reads and completes later
// through the disk's events. Every queue is bounded by max_queued_operations.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "model/item.h"
#include "sim/disk.h"

namespace dynasim::model {

struct BTreeOptions {
  uint64_t region_offset_bytes = 0;   // sector-aligned start of the page region on the disk
  uint64_t region_sectors = 1 << 18;  // pages available, superblocks included (1 GB at 4 KB)
  // Clean pages kept in memory beyond the dirty ones; least recently used are evicted first.
  uint64_t cache_pages = 4096;
  uint32_t max_queued_operations = 4096;
  uint32_t max_pages_per_checkpoint_write = 256;  // pages per disk write request

  // Planted bugs for the tests that guard against them; never set outside tests.
  // Serves a page read from the disk without checking its checksums, page number or kind.
  bool plant_skip_page_verification = false;
  // A checkpoint rewrites a changed page in its current slot, which the durable checkpoint still
  // references, instead of a free slot: a power-off mid-checkpoint then loses data.
  bool plant_overwrite_live_pages = false;
  // Scrub trusts a clean page resident in memory instead of re-reading its image from the disk,
  // so rot on the media under a cached page goes unseen.
  bool plant_scrub_trusts_resident_pages = false;
};

enum class BTreeStatus : uint8_t {
  kOk,
  kNotFound,   // get/erase: no item with the key
  kCorrupt,    // a page needed for this key failed verification; the range is unhealthy
  kIoError,    // the disk reported an error (latent sector error, powered off)
  kNoSpace,    // no free page slot, or the disk is full
  kQueueFull,  // max_queued_operations pending
};
const char* to_string(BTreeStatus status);

// What a checkpoint records besides the tree: chosen by the replica (its applied log index, where
// its WAL must be replayed from, its Paxos hard state...). Opaque here; at most 1 KB.
struct CheckpointMetadata {
  uint64_t generation = 0;  // set by the tree: increases with each checkpoint
  std::vector<uint8_t> bytes;
};

// A key range [begin, end) of the tree; nullopt bounds are open.
struct KeyRangeBounds {
  std::optional<PrimaryKey> begin;
  std::optional<PrimaryKey> end;
};

// Where a scrub pass stands. A default-constructed cursor starts a pass; each step's result carries
// the cursor to continue from. Only the tree interprets its fields: a pass visits the durable
// superblock, then the space map pages, then the tree in key order (each page before the pages
// below it, a leaf's overflow chains after the leaf), so a cursor stays meaningful while the tree
// changes between steps. A page that moved (rewritten by a checkpoint) behind the cursor is picked
// up by the next pass.
class ScrubCursor {
 public:
  ScrubCursor() = default;
  bool at_start() const { return stage_ == 0 && index_ == 0; }

 private:
  friend class BTree;
  uint8_t stage_ = 0;         // 0 superblock, 1 space map pages, 2 tree, 3 end of the pass
  uint32_t index_ = 0;        // space map page
  std::vector<uint8_t> key_;  // tree: the position's encoded key (empty: before every key)
  int32_t rank_ = INT32_MIN;  // tree: -level for a page (a leaf is 0), 1 for an overflow chain
};

// The outcome of one scrub_pages() step.
struct ScrubStep {
  // kOk, kIoError (the disk was powered off: nothing was concluded about the page the cursor is
  // at, retry from `next`), or kQueueFull.
  BTreeStatus status = BTreeStatus::kOk;
  ScrubCursor next;
  bool pass_complete = false;  // `next` is at the end: start the next pass from a new cursor
  uint64_t pages_examined = 0;
  uint64_t pages_read = 0;     // page images read from the disk and verified (chains count pages)
  uint64_t pages_skipped = 0;  // dirty (not on the media yet) or already known to be corrupt
  uint64_t failures = 0;       // pages whose image at rest failed verification or was unreadable
};

struct BTreeRecovery {
  BTreeStatus status = BTreeStatus::kOk;  // kCorrupt: no valid superblock, or a bad inner page
  bool found_checkpoint = false;          // false: nothing was ever checkpointed (a new replica)
  CheckpointMetadata metadata;
  uint64_t item_count = 0;
};

struct BTreeStats {
  uint64_t items = 0;
  uint64_t pages_in_tree = 0;  // leaves, inner pages and overflow pages reachable from the root
  // Page slots neither in use nor waiting for the next checkpoint to free them. Right after a
  // checkpoint with nothing changed since, it is the region minus the two superblocks, the space
  // map pages and pages_in_tree.
  uint64_t free_page_slots = 0;
  uint64_t resident_pages = 0;
  uint64_t dirty_pages = 0;
  uint64_t page_reads = 0;  // from the disk
  uint64_t page_writes = 0;
  uint64_t checkpoints = 0;
  uint64_t verification_failures = 0;
  uint64_t memory_bytes = 0;  // an estimate of the heap held by resident pages and the index
};

class BTree {
 public:
  using StatusDone = std::function<void(BTreeStatus)>;
  using GetDone = std::function<void(BTreeStatus, std::optional<Item>)>;
  // A scan returns up to `max_items` items from `from` (inclusive) in key order, and the key to
  // continue from (nullopt at the end).
  using ScanDone =
      std::function<void(BTreeStatus, std::vector<Item>, std::optional<PrimaryKey> next)>;
  using RecoverDone = std::function<void(BTreeRecovery)>;
  using DigestDone = std::function<void(BTreeStatus, uint64_t digest, uint64_t item_count)>;
  using ScrubDone = std::function<void(ScrubStep)>;

  // REQUIRES: the disk outlives the tree; the region lies inside the disk and holds at least
  // 16 sectors. A new tree is empty and has no checkpoint until checkpoint() completes.
  BTree(sim::Disk& disk, BTreeOptions options);
  ~BTree();
  BTree(const BTree&) = delete;
  BTree& operator=(const BTree&) = delete;

  // After a restart, before any other operation: loads the newest valid checkpoint from the disk.
  void recover(RecoverDone done);

  void get(const PrimaryKey& key, GetDone done);
  // Inserts or replaces the item with the same key.
  void put(Item item, StatusDone done);
  // The same, from the item's canonical encoding (Item::encode()), as a replication log carries
  // it: the tree builds its record and content hash from the bytes without building the Item.
  // REQUIRES: `canonical` is a valid Item encoding (asserted). The bytes are copied only when the
  // operation must wait in the queue or the item is stored in an overflow chain.
  void put_encoded(std::span<const uint8_t> canonical, StatusDone done);
  void erase(const PrimaryKey& key, StatusDone done);
  void scan(std::optional<PrimaryKey> from, uint32_t max_items, ScanDone done);
  // Replaces the whole content with nothing (before installing a snapshot from a peer).
  void clear(StatusDone done);
  // Makes the current content durable with `metadata`; see the design above. At most one
  // checkpoint runs at a time; a second call while one runs waits for it.
  void checkpoint(CheckpointMetadata metadata, StatusDone done);
  // A digest over every item in key order (each item's key and encoding), reading evicted pages.
  void digest(DigestDone done);

  // Scrub: verifies the tree's data at rest. Examines up to `max_pages` pages from `cursor` (an
  // overflow chain counts its pages and may overrun the budget once; a step that resumes among the
  // chains of an evicted leaf reads that leaf again first, uncharged; 0 examines nothing) and
  // reports where to continue. Every page the last durable checkpoint references is re-read from
  // the disk, even when a clean copy is resident (the copy in memory is not what is on the media),
  // and verified exactly as a read verifies it: page checksum, page number, kind, the checksum the
  // parent (or the superblock) recorded for it, and a well-formed body; a chain's pages and its
  // content hash likewise. Skipped: dirty pages and anything the running checkpoint is writing
  // (not on the media yet; the next checkpoint writes them elsewhere and frees the old slot), and
  // pages already known to be corrupt. A page that fails is reported to the disk
  // (report_verification_failure(sector, 1, "scrub")) and:
  // - a leaf or inner page not resident: marked corrupt and its key range unhealthy, exactly as a
  //   failed read does (later operations in the range answer kCorrupt);
  // - a resident clean page: the copy in memory is still good (it was verified when read, or
  //   written from memory), so the tree keeps serving it, but its key range is listed in
  //   unhealthy_ranges() (the durable state of the range is damaged: a power-off now would lose
  //   it) and the page is marked dirty, so the next checkpoint rewrites it from memory to a fresh
  //   slot. The range stays listed until repair_range() covers it: a repairer that finds the
  //   range equal to a peer's (range_digest) repairs it with the same items at little cost;
  // - an overflow chain: treated as lost (its key's range is unhealthy, reads of the item answer
  //   kCorrupt), since the tree keeps no verified copy of chains beyond a small read cache;
  // - the superblock or a space map page: the tree is reported unhealthy (healthy() is false);
  //   the next checkpoints rewrite them (every checkpoint writes a new space map; the superblock
  //   slot is rewritten by the second checkpoint from now), which clears it.
  // A latent sector error counts as a failure too (the page is as lost as a rotten one) but is
  // not reported as a verification failure. The step runs in the FIFO order of operations and
  // holds the operations behind it for its reads, so a scrubber paces itself with max_pages.
  void scrub_pages(ScrubCursor cursor, uint32_t max_pages, ScrubDone done);

  // The multiset digest of the items in [range.begin, range.end): the sum of the same per-item
  // hash content_digest() sums (sim::hash_bytes of the item's canonical encoding), and how many
  // items. The range digests of a partition of the key space add up to content_digest(). Reads
  // evicted leaves; overflow chains are not read (their leaf record carries the item's hash).
  // kCorrupt if a page in the range is known corrupt or fails verification.
  void range_digest(KeyRangeBounds range, DigestDone done);

  // Makes the content of [range.begin, range.end) exactly `items`, in any order (the tree sorts
  // them). REQUIRES: every item's key lies in the range, keys are distinct, and the range is not
  // empty. Pages whose key range lies inside the range are dropped without being read, whether
  // they can be read or not (a lost leaf or a lost inner page with its whole subtree); leaves that
  // straddle a bound keep their items outside the range. Dropped slots are vacated, not freed: the
  // durable checkpoint may still reference them, so they become free when the next checkpoint is
  // durable (slots of a lost subtree, whose descendants cannot be read, are found by a sweep of
  // the slots nothing in the tree references). Unhealthy ranges inside the range are removed.
  // content_digest(), item_count() and the page count stay exact: they are recomputed over every
  // item of the tree (see the implementation for why), which reads each evicted leaf outside the
  // range once. Answers kCorrupt (changing nothing but a discovery) if a page outside the range,
  // or one straddling a bound, cannot be read: its items would be lost and the digest could not
  // be made exact; repair a range that covers it instead. kCorrupt also if recovery found no
  // valid superblock or space map. kIoError on a disk error, kNoSpace if the region cannot hold
  // the items (the items inserted so far stay, and the range stays unhealthy). After the next
  // checkpoint the repaired content is durable like any other.
  void repair_range(KeyRangeBounds range, std::vector<Item> items, StatusDone done);

  // A multiset digest of the content: the sum (mod 2^64) of sim::hash_bytes over each item's
  // encoding, kept up to date by put/erase/clear and stored in every checkpoint, so replicas of
  // one group can be compared without reading their pages. Equal content gives equal digests.
  uint64_t content_digest() const;
  uint64_t item_count() const;

  // Key ranges with a page that failed verification. Empty while the tree is healthy.
  const std::vector<KeyRangeBounds>& unhealthy_ranges() const { return unhealthy_; }
  // Lists `range` as unhealthy although no page failed: the replica found, by comparing digests
  // with its peers, that its content there differs from a majority's (docs/scrub.md). Reads of it
  // are refused and repair_range() clears it, as for a range whose page failed verification.
  void mark_range_unhealthy(KeyRangeBounds range);
  bool healthy() const { return unhealthy_.empty() && !superblock_corrupt_; }
  // The metadata of the last durable checkpoint (generation 0: none yet).
  const CheckpointMetadata& durable_metadata() const { return durable_metadata_; }
  BTreeStats stats() const;

  // Inspection for tests: the disk sector of the durable page of the leaf that holds `key`, if
  // that leaf is resident and has been written by a checkpoint.
  std::optional<uint64_t> leaf_sector_for(const PrimaryKey& key) const;
  // Inspection for checkers: whether the disk sector holds a page the tree still uses (the
  // durable superblock, or a slot the space map counts as in use and not waiting to be freed).
  // Rot elsewhere in the region is on free space: nothing will read it again.
  bool sector_referenced(uint64_t disk_sector) const;
  // Evicts every clean page that a durable checkpoint holds (tests use it to force re-reads).
  void drop_clean_pages();
  // The page layout, for tests and sizing: bytes of a page, and the largest leaf record kept
  // inline (larger items go to overflow pages).
  static constexpr uint32_t kPageBytes = 4096;
  static constexpr uint32_t kMaxInlineRecordBytes = 1024;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<KeyRangeBounds> unhealthy_;
  bool superblock_corrupt_ = false;
  CheckpointMetadata durable_metadata_;
};

}  // namespace dynasim::model
