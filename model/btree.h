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
//   "read"), which keeps the ground truth that game-day checkers compare against.
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

struct BTreeRecovery {
  BTreeStatus status = BTreeStatus::kOk;  // kCorrupt: no valid superblock, or a bad inner page
  bool found_checkpoint = false;          // false: nothing was ever checkpointed (a new replica)
  CheckpointMetadata metadata;
  uint64_t item_count = 0;
};

struct BTreeStats {
  uint64_t items = 0;
  uint64_t pages_in_tree = 0;  // leaves, inner pages and overflow pages reachable from the root
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

  // A multiset digest of the content: the sum (mod 2^64) of sim::hash_bytes over each item's
  // encoding, kept up to date by put/erase/clear and stored in every checkpoint, so replicas of
  // one group can be compared without reading their pages. Equal content gives equal digests.
  uint64_t content_digest() const;
  uint64_t item_count() const;

  // Key ranges with a page that failed verification. Empty while the tree is healthy.
  const std::vector<KeyRangeBounds>& unhealthy_ranges() const { return unhealthy_; }
  bool healthy() const { return unhealthy_.empty() && !superblock_corrupt_; }
  // The metadata of the last durable checkpoint (generation 0: none yet).
  const CheckpointMetadata& durable_metadata() const { return durable_metadata_; }
  BTreeStats stats() const;

  // Inspection for tests: the disk sector of the durable page of the leaf that holds `key`, if
  // that leaf is resident and has been written by a checkpoint.
  std::optional<uint64_t> leaf_sector_for(const PrimaryKey& key) const;
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
