// The request router's partition-map cache: resolves (table, partition hash) to the partition
// entry (group, range, replicas, leader hint) it asks MemDS (model/memds.h) for.
//
// P22 section 6.6 tells two designs apart, and both are here behind one interface, chosen by
// PartitionCacheOptions::mode:
//
// - kConstantWork (the current design). "A cache hit also results in an asynchronous call to
//   MemDS to refresh the cache": a hit answers at once from the cache and sends one MemDS lookup
//   whose answer refreshes the entry; a miss sends one lookup and waits for it (timeout, then the
//   next MemDS node). Every request therefore costs MemDS exactly one lookup, hit or miss, so
//   MemDS serves a constant volume whatever the hit ratio, and a router restart (an empty cache)
//   adds latency to the router's requests but no extra load on MemDS.
//
// - kBimodal (the original design, kept only to reproduce the paper's lesson). On the first
//   request for a table the router downloads the table's whole partition map (paged range reads
//   through MemDS; the download's size is its number of entries) and then serves hits locally
//   with no MemDS traffic at all (P22: a hit rate of about 99.75 percent). Until the download
//   lands, and for any hash whose entry is missing, every request becomes its own metadata lookup.
//   Entries expire after entry_ttl (our assumption: the paper gives no figure) or when an error
//   invalidates them. The mode is bimodal: near zero MemDS load in steady state, and a spike of
//   one lookup per request plus whole-table downloads on a cold start (P22: metadata traffic
//   "would spike up to 75 percent" when router capacity was added).
//
// Stale data (P22 section 6.6: storage nodes are the authoritative source of membership): a
// storage node reached through a stale entry either returns the group's latest members
// (learn_members, kept if its epoch is newer) or an error after which the router calls
// invalidate() so that the next request looks MemDS up again.
//
// Answers from MemDS replace a cached entry only with a higher version, and never lower the
// members' epoch the router learned from storage. Both modes cap the entries held (least recently
// used first out), the lookups outstanding and the requests waiting; a request beyond the caps
// is answered kBusy at once.
//
// A MemDS node that answers kNoEntry may simply not have the entry yet (it restarted empty and is
// still filling through anti-entropy): a waiting request then asks the next node, like after a
// timeout, and a refresh leaves the cached entry alone.
//
// The cache is a component: the router process forwards its messages and timer cookies.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <vector>

#include "model/memds.h"
#include "model/perkle.h"
#include "sim/env.h"

namespace dynasim::model {

enum class PartitionCacheMode : uint8_t { kConstantWork, kBimodal };

struct PartitionCacheOptions {
  PartitionCacheMode mode = PartitionCacheMode::kConstantWork;
  // Our assumptions for a router host: partition maps are small (64 bytes an entry, model/memds.h)
  // so 100k entries is a few MB; outstanding lookups bounded like the client's operations.
  uint32_t max_entries = 100'000;
  uint32_t max_outstanding_lookups = 4096;
  uint32_t max_waiting_requests = 4096;
  // Our assumption: MemDS answers from memory within the region in about a millisecond; 50 ms
  // is many round trips. Attempts go to different MemDS nodes.
  sim::Duration lookup_timeout = sim::milliseconds(50);
  uint32_t max_lookup_attempts = 3;
  // kBimodal only. The TTL is our assumption (the paper gives none): long next to a request's
  // time, short enough that a forgotten table is downloaded again.
  sim::Duration entry_ttl = sim::minutes(10);
  uint32_t download_page_entries = 1024;
};

enum class CacheStatus : uint8_t {
  kOk,
  kNoEntry,  // no MemDS node asked knows a partition of the table holding the hash
  kTimeout,  // every attempt timed out
  kBusy,     // a cap was reached; nothing was sent
};
const char* to_string(CacheStatus status);

struct CacheResult {
  CacheStatus status = CacheStatus::kOk;
  PartitionEntry entry;  // kOk
  bool hit = false;      // answered from the cache without waiting
};

class PartitionCache {
 public:
  using Done = std::function<void(const CacheResult&)>;
  // Timer cookies with this top byte belong to the cache; the owner forwards them.
  static constexpr uint64_t kTimerCookieBase = uint64_t{0x52} << 56;

  // REQUIRES: memds_nodes is not empty.
  PartitionCache(PartitionCacheOptions options, std::vector<sim::Address> memds_nodes);
  virtual ~PartitionCache();
  PartitionCache(const PartitionCache&) = delete;
  PartitionCache& operator=(const PartitionCache&) = delete;

  // Resolves the partition holding `partition_hash` in `table`. `done` runs exactly once: before
  // resolve() returns on a hit or a refusal (kBusy), later on a miss.
  virtual void resolve(sim::Env& env, TableId table, uint64_t partition_hash, Done done) = 0;
  // True if the message was a MemDS answer (consumed), including a late one that is dropped.
  bool on_message(sim::Env& env, sim::Address from, const sim::Message& message);
  // True if the cookie was the cache's (consumed).
  bool on_timer(sim::Env& env, uint64_t cookie);

  // A storage node reached through the entry answered that it is the wrong place (no such group,
  // not the leader and no hint): forget the entry so the next request looks MemDS up.
  void invalidate(TableId table, uint64_t partition_hash);
  // A storage answer carried the group's members (StorageResponse::members): kept if newer.
  void learn_members(TableId table, uint64_t partition_hash, const GroupMembers& members);
  // A storage answer named the group's leader.
  void learn_leader(TableId table, uint64_t partition_hash, sim::Address leader);
  // Forgets every entry (a router restart that keeps the process); lookups in flight go on.
  void clear();

  // The cached entry holding the hash, without any traffic or statistics (for tests and checks).
  const PartitionEntry* peek(TableId table, uint64_t partition_hash) const;
  size_t size() const { return entries_.size(); }
  size_t outstanding_lookups() const { return lookups_.size(); }
  PartitionCacheMode mode() const { return options_.mode; }

  struct Stats {
    uint64_t requests = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t busy_refusals = 0;
    uint64_t memds_lookups_sent = 0;  // every MemdsLookup sent, retries and refreshes included
    uint64_t refreshes_sent = 0;      // kConstantWork: lookups sent for hits
    uint64_t refreshes_skipped = 0;   // a hit found max_outstanding_lookups in flight
    uint64_t lookup_retries = 0;
    uint64_t lookups_failed = 0;    // a waiting request got kTimeout
    uint64_t no_entry_answers = 0;  // MemDS answered kNoEntry (a miss then asks the next node)
    uint64_t range_reads_sent = 0;
    uint64_t downloads_started = 0;
    uint64_t entries_downloaded = 0;  // the legacy download's size
    uint64_t entries_installed = 0;
    uint64_t stale_answers_ignored = 0;  // an answer older than the cached entry
    uint64_t invalidations = 0;
    uint64_t members_learned = 0;
    uint64_t expirations = 0;
    uint64_t evictions = 0;
  };
  const Stats& stats() const { return stats_; }

 protected:
  enum class LookupKind : uint8_t { kRefresh, kMiss, kPage };
  struct Lookup {
    LookupKind kind = LookupKind::kMiss;
    TableId table{0};
    uint64_t partition_hash = 0;  // kPage: the page's hash_from
    uint32_t attempts = 0;
    size_t node_index = 0;
    sim::TimerHandle timer;
    Done waiter;  // kMiss only
  };
  struct Cached {
    PartitionEntry entry;
    sim::SimTime fetched_at;  // on the router's clock, when MemDS last confirmed it
    std::list<PerkleKey>::iterator lru_position;  // in lru_, once touched
    bool in_lru = false;
  };

  // Sends a point lookup (kMiss with its waiter, or kRefresh) or a download page. False when
  // max_outstanding_lookups are in flight (nothing sent).
  bool start_lookup(sim::Env& env, LookupKind kind, TableId table, uint64_t partition_hash,
                    Done waiter);
  bool can_wait() const;
  // A miss waits for its own lookup, or is refused kBusy when too many lookups are in flight.
  void wait_for_lookup(sim::Env& env, TableId table, uint64_t partition_hash, Done done);
  // The cached entry holding the hash, or entries_.end().
  std::map<PerkleKey, Cached>::iterator find_covering(TableId table, uint64_t partition_hash);
  std::map<PerkleKey, Cached>::const_iterator find_covering(TableId table,
                                                            uint64_t partition_hash) const;
  void touch(Cached& cached);
  void erase(std::map<PerkleKey, Cached>::iterator it);
  // Installs an entry MemDS sent (version rules above); returns false if it was older.
  bool install(const PartitionEntry& entry, sim::SimTime local_now);

  // Mode hooks, called when a lookup ends.
  virtual void on_page(sim::Env& env, const Lookup& lookup, const MemdsRangeReply* reply) = 0;

  PartitionCacheOptions options_;
  std::vector<sim::Address> memds_nodes_;
  std::map<PerkleKey, Cached> entries_;
  // Entries by last use, least recent first: a touch moves an entry to the back in O(1).
  std::list<PerkleKey> lru_;
  std::map<uint64_t, Lookup> lookups_;  // by request id
  uint64_t next_request_id_ = 1;
  size_t waiting_ = 0;
  Stats stats_;

 private:
  void send_attempt(sim::Env& env, uint64_t request_id, Lookup& lookup);
  void on_lookup_reply(sim::Env& env, const MemdsLookupReply& reply);
  void on_range_reply(sim::Env& env, const MemdsRangeReply& reply);
};

// P22's current design: every request, hit or miss, costs MemDS one lookup.
class ConstantWorkCache final : public PartitionCache {
 public:
  ConstantWorkCache(PartitionCacheOptions options, std::vector<sim::Address> memds_nodes);
  void resolve(sim::Env& env, TableId table, uint64_t partition_hash, Done done) override;

 private:
  void on_page(sim::Env& env, const Lookup& lookup, const MemdsRangeReply* reply) override;
};

// P22's original design: whole-table downloads, local hits, a spike on a cold start.
class BimodalCache final : public PartitionCache {
 public:
  BimodalCache(PartitionCacheOptions options, std::vector<sim::Address> memds_nodes);
  void resolve(sim::Env& env, TableId table, uint64_t partition_hash, Done done) override;

  bool downloaded(TableId table) const;

 private:
  struct TableState {
    bool downloading = false;
    bool loaded = false;
    sim::SimTime loaded_at;
  };
  void on_page(sim::Env& env, const Lookup& lookup, const MemdsRangeReply* reply) override;

  std::map<uint32_t, TableState> tables_;  // by table id
};

// The cache options.mode names.
std::unique_ptr<PartitionCache> make_partition_cache(PartitionCacheOptions options,
                                                     std::vector<sim::Address> memds_nodes);

}  // namespace dynasim::model
