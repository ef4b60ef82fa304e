#include "model/partition_cache.h"

#include <algorithm>
#include <utility>

#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {
namespace {

constexpr uint64_t kCookieTagMask = uint64_t{0xff} << 56;
constexpr uint64_t kRequestIdMask = ~kCookieTagMask;

// An entry that `incoming` overlaps (same table, intersecting ranges).
bool overlaps(const PartitionEntry& a, const PartitionEntry& b) {
  return a.table == b.table && a.hash_begin <= b.hash_end && b.hash_begin <= a.hash_end;
}

}  // namespace

const char* to_string(CacheStatus status) {
  switch (status) {
    case CacheStatus::kOk:
      return "kOk";
    case CacheStatus::kNoEntry:
      return "kNoEntry";
    case CacheStatus::kTimeout:
      return "kTimeout";
    case CacheStatus::kBusy:
      return "kBusy";
  }
  return "?";
}

PartitionCache::PartitionCache(PartitionCacheOptions options, std::vector<sim::Address> memds_nodes)
    : options_(options), memds_nodes_(std::move(memds_nodes)) {
  DYN_ASSERT(!memds_nodes_.empty());
  DYN_ASSERT(options_.max_entries > 0);
  DYN_ASSERT(options_.max_lookup_attempts >= 1);
  DYN_ASSERT(options_.download_page_entries > 0);
}

PartitionCache::~PartitionCache() = default;

// --- entries ----------------------------------------------------------------------------------

std::map<PerkleKey, PartitionCache::Cached>::iterator PartitionCache::find_covering(
    TableId table, uint64_t partition_hash) {
  auto it = entries_.upper_bound(PerkleKey{table.value, partition_hash});
  if (it == entries_.begin()) return entries_.end();
  --it;
  return it->second.entry.table == table && it->second.entry.covers(partition_hash)
             ? it
             : entries_.end();
}

std::map<PerkleKey, PartitionCache::Cached>::const_iterator PartitionCache::find_covering(
    TableId table, uint64_t partition_hash) const {
  auto it = entries_.upper_bound(PerkleKey{table.value, partition_hash});
  if (it == entries_.begin()) return entries_.end();
  --it;
  return it->second.entry.table == table && it->second.entry.covers(partition_hash)
             ? it
             : entries_.end();
}

const PartitionEntry* PartitionCache::peek(TableId table, uint64_t partition_hash) const {
  auto it = find_covering(table, partition_hash);
  return it == entries_.end() ? nullptr : &it->second.entry;
}

void PartitionCache::touch(Cached& cached) {
  if (cached.in_lru) {
    lru_.splice(lru_.end(), lru_, cached.lru_position);
  } else {
    cached.lru_position = lru_.insert(lru_.end(), cached.entry.key());
    cached.in_lru = true;
  }
}

void PartitionCache::erase(std::map<PerkleKey, Cached>::iterator it) {
  if (it->second.in_lru) lru_.erase(it->second.lru_position);
  entries_.erase(it);
}

bool PartitionCache::install(const PartitionEntry& entry, sim::SimTime local_now) {
  PartitionEntry incoming = entry;
  auto same = entries_.find(incoming.key());
  if (same != entries_.end()) {
    const PartitionEntry& held = same->second.entry;
    if (incoming.version < held.version) {
      ++stats_.stale_answers_ignored;
      return false;
    }
    // Never go back on members a storage node told us about.
    if (held.members.epoch > incoming.members.epoch) {
      incoming.members = held.members;
      incoming.leader_hint = held.leader_hint;
    }
  }
  // Entries of the same table whose ranges the incoming one overlaps are from another map
  // version (a split or a merge): the newer side wins. The scan starts at the floor of the
  // range's start and stops past its end, so it visits only the overlapping entries.
  auto it = entries_.upper_bound(PerkleKey{incoming.table.value, incoming.hash_begin});
  if (it != entries_.begin()) --it;
  std::vector<PerkleKey> older;
  for (; it != entries_.end() && it->first.table == incoming.table.value &&
         it->first.hash <= incoming.hash_end;
       ++it) {
    if (it->first == incoming.key() || !overlaps(it->second.entry, incoming)) continue;
    if (it->second.entry.version > incoming.version) {
      ++stats_.stale_answers_ignored;
      return false;
    }
    older.push_back(it->first);
  }
  for (const PerkleKey& key : older) erase(entries_.find(key));
  if (incoming.retired) {
    if (same != entries_.end()) erase(entries_.find(incoming.key()));
    return true;
  }
  Cached& cached = entries_[incoming.key()];
  cached.entry = std::move(incoming);
  cached.fetched_at = local_now;
  touch(cached);
  ++stats_.entries_installed;
  while (entries_.size() > options_.max_entries) {
    erase(entries_.find(lru_.front()));
    ++stats_.evictions;
  }
  return true;
}

void PartitionCache::invalidate(TableId table, uint64_t partition_hash) {
  auto it = find_covering(table, partition_hash);
  if (it == entries_.end()) return;
  erase(it);
  ++stats_.invalidations;
}

void PartitionCache::learn_members(TableId table, uint64_t partition_hash,
                                   const GroupMembers& members) {
  auto it = find_covering(table, partition_hash);
  if (it == entries_.end() || members.epoch <= it->second.entry.members.epoch) return;
  PartitionEntry& entry = it->second.entry;
  entry.members = members;
  if (entry.leader_hint.has_value() && std::find(members.replicas.begin(), members.replicas.end(),
                                                 *entry.leader_hint) == members.replicas.end()) {
    entry.leader_hint.reset();
  }
  ++stats_.members_learned;
}

void PartitionCache::learn_leader(TableId table, uint64_t partition_hash, sim::Address leader) {
  auto it = find_covering(table, partition_hash);
  if (it != entries_.end()) it->second.entry.leader_hint = leader;
}

void PartitionCache::clear() {
  entries_.clear();
  lru_.clear();
}

// --- lookups ----------------------------------------------------------------------------------

bool PartitionCache::can_wait() const {
  return lookups_.size() < options_.max_outstanding_lookups &&
         waiting_ < options_.max_waiting_requests;
}

bool PartitionCache::start_lookup(sim::Env& env, LookupKind kind, TableId table,
                                  uint64_t partition_hash, Done waiter) {
  if (lookups_.size() >= options_.max_outstanding_lookups) return false;
  DYN_ASSERT((kind == LookupKind::kMiss) == static_cast<bool>(waiter));
  const uint64_t request_id = next_request_id_++;
  DYN_ASSERT(request_id <= kRequestIdMask);
  Lookup& lookup = lookups_[request_id];
  lookup.kind = kind;
  lookup.table = table;
  lookup.partition_hash = partition_hash;
  lookup.node_index = env.random().uniform_u64(memds_nodes_.size());
  lookup.waiter = std::move(waiter);
  if (kind == LookupKind::kMiss) ++waiting_;
  send_attempt(env, request_id, lookup);
  return true;
}

void PartitionCache::send_attempt(sim::Env& env, uint64_t request_id, Lookup& lookup) {
  ++lookup.attempts;
  const sim::Address to = memds_nodes_[lookup.node_index % memds_nodes_.size()];
  if (lookup.kind == LookupKind::kPage) {
    auto read = std::make_shared<MemdsRangeRead>();
    read->request_id = request_id;
    read->table = lookup.table;
    read->hash_from = lookup.partition_hash;
    read->max_entries = options_.download_page_entries;
    ++stats_.range_reads_sent;
    env.send(to,
             sim::Message{static_cast<uint32_t>(MemdsMessageType::kRangeRead), kMemdsHeaderBytes,
                          sim::splitmix64(request_id ^ lookup.partition_hash), std::move(read)});
  } else {
    auto body = std::make_shared<MemdsLookup>();
    body->request_id = request_id;
    body->table = lookup.table;
    body->partition_hash = lookup.partition_hash;
    ++stats_.memds_lookups_sent;
    env.send(to,
             sim::Message{static_cast<uint32_t>(MemdsMessageType::kLookup), kMemdsHeaderBytes,
                          sim::splitmix64(request_id ^ lookup.partition_hash), std::move(body)});
  }
  lookup.timer = env.set_timer(options_.lookup_timeout, kTimerCookieBase | request_id);
}

bool PartitionCache::on_timer(sim::Env& env, uint64_t cookie) {
  if ((cookie & kCookieTagMask) != kTimerCookieBase) return false;
  const uint64_t request_id = cookie & kRequestIdMask;
  auto it = lookups_.find(request_id);
  if (it == lookups_.end()) return true;  // answered and cancelled in the same instant
  Lookup& lookup = it->second;
  // A refresh is not retried: the next request sends another.
  if (lookup.kind != LookupKind::kRefresh && lookup.attempts < options_.max_lookup_attempts) {
    ++stats_.lookup_retries;
    ++lookup.node_index;  // the next MemDS node
    send_attempt(env, request_id, lookup);
    return true;
  }
  Lookup ended = std::move(lookup);
  lookups_.erase(it);
  if (ended.kind == LookupKind::kMiss) {
    --waiting_;
    ++stats_.lookups_failed;
    CacheResult result;
    result.status = CacheStatus::kTimeout;
    ended.waiter(result);
  } else if (ended.kind == LookupKind::kPage) {
    on_page(env, ended, nullptr);
  }
  return true;
}

bool PartitionCache::on_message(sim::Env& env, sim::Address, const sim::Message& message) {
  switch (static_cast<MemdsMessageType>(message.type)) {
    case MemdsMessageType::kLookupReply:
      on_lookup_reply(env, dynamic_cast<const MemdsLookupReply&>(*message.body));
      return true;
    case MemdsMessageType::kRangeReply:
      on_range_reply(env, dynamic_cast<const MemdsRangeReply&>(*message.body));
      return true;
    default:
      return false;
  }
}

void PartitionCache::on_lookup_reply(sim::Env& env, const MemdsLookupReply& reply) {
  auto it = lookups_.find(reply.request_id);
  if (it == lookups_.end() || it->second.kind == LookupKind::kPage) return;  // late or duplicate
  if (reply.status == MemdsStatus::kNoEntry) {
    ++stats_.no_entry_answers;
    // One MemDS node may not know the partition yet (restarted empty, still filling through
    // anti-entropy): a waiting request asks the next node; a refresh keeps the entry, which a
    // storage node's error removes if it is wrong.
    Lookup& lookup = it->second;
    if (lookup.kind == LookupKind::kMiss && lookup.attempts < options_.max_lookup_attempts) {
      env.cancel_timer(lookup.timer);
      ++stats_.lookup_retries;
      ++lookup.node_index;
      send_attempt(env, reply.request_id, lookup);
      return;
    }
  }
  Lookup ended = std::move(it->second);
  lookups_.erase(it);
  env.cancel_timer(ended.timer);
  CacheResult result;
  if (reply.status == MemdsStatus::kOk) {
    install(reply.entry, env.local_now());
    result.entry = reply.entry;
    // What the cache now holds may be newer than the answer (members learned from storage).
    if (const PartitionEntry* held = peek(ended.table, ended.partition_hash)) result.entry = *held;
  } else {
    result.status = CacheStatus::kNoEntry;
  }
  if (ended.kind == LookupKind::kMiss) {
    --waiting_;
    ended.waiter(result);
  }
}

void PartitionCache::on_range_reply(sim::Env& env, const MemdsRangeReply& reply) {
  auto it = lookups_.find(reply.request_id);
  if (it == lookups_.end() || it->second.kind != LookupKind::kPage) return;
  Lookup ended = std::move(it->second);
  lookups_.erase(it);
  env.cancel_timer(ended.timer);
  on_page(env, ended, &reply);
}

// --- kConstantWork ----------------------------------------------------------------------------

ConstantWorkCache::ConstantWorkCache(PartitionCacheOptions options,
                                     std::vector<sim::Address> memds_nodes)
    : PartitionCache(options, std::move(memds_nodes)) {
  DYN_ASSERT(options_.mode == PartitionCacheMode::kConstantWork);
}

void ConstantWorkCache::resolve(sim::Env& env, TableId table, uint64_t partition_hash, Done done) {
  ++stats_.requests;
  auto it = find_covering(table, partition_hash);
  if (it != entries_.end()) {
    ++stats_.hits;
    touch(it->second);
    CacheResult result;
    result.entry = it->second.entry;
    result.hit = true;
    // The hit's asynchronous refresh: the same lookup a miss would send, so MemDS sees one
    // lookup per request whatever the hit ratio (P22 section 6.6).
    if (start_lookup(env, LookupKind::kRefresh, table, partition_hash, nullptr)) {
      ++stats_.refreshes_sent;
    } else {
      ++stats_.refreshes_skipped;
    }
    done(result);
    return;
  }
  ++stats_.misses;
  wait_for_lookup(env, table, partition_hash, std::move(done));
}

void ConstantWorkCache::on_page(sim::Env&, const Lookup&, const MemdsRangeReply*) {
  DYN_ASSERT_MSG(false, "the constant-work cache never downloads pages");
}

void PartitionCache::wait_for_lookup(sim::Env& env, TableId table, uint64_t partition_hash,
                                     Done done) {
  if (!can_wait()) {
    ++stats_.busy_refusals;
    CacheResult result;
    result.status = CacheStatus::kBusy;
    done(result);
    return;
  }
  start_lookup(env, LookupKind::kMiss, table, partition_hash, std::move(done));
}

// --- kBimodal ---------------------------------------------------------------------------------

BimodalCache::BimodalCache(PartitionCacheOptions options, std::vector<sim::Address> memds_nodes)
    : PartitionCache(options, std::move(memds_nodes)) {
  DYN_ASSERT(options_.mode == PartitionCacheMode::kBimodal);
}

bool BimodalCache::downloaded(TableId table) const {
  auto it = tables_.find(table.value);
  return it != tables_.end() && it->second.loaded;
}

void BimodalCache::resolve(sim::Env& env, TableId table, uint64_t partition_hash, Done done) {
  ++stats_.requests;
  const sim::SimTime now = env.local_now();
  auto it = find_covering(table, partition_hash);
  if (it != entries_.end() && now - it->second.fetched_at >= options_.entry_ttl) {
    erase(it);
    ++stats_.expirations;
    it = entries_.end();
  }
  if (it != entries_.end()) {
    ++stats_.hits;
    touch(it->second);
    CacheResult result;
    result.entry = it->second.entry;
    result.hit = true;
    done(result);
    return;
  }
  ++stats_.misses;
  // The first request for a table (or the first after its download aged out) fetches the whole
  // map; meanwhile this request, like every other miss, becomes its own metadata lookup.
  TableState& state = tables_[table.value];
  const bool stale = !state.loaded || now - state.loaded_at >= options_.entry_ttl;
  if (!state.downloading && stale &&
      start_lookup(env, LookupKind::kPage, table, /*hash_from=*/0, nullptr)) {
    state.downloading = true;
    ++stats_.downloads_started;
  }
  wait_for_lookup(env, table, partition_hash, std::move(done));
}

void BimodalCache::on_page(sim::Env& env, const Lookup& lookup, const MemdsRangeReply* reply) {
  TableState& state = tables_[lookup.table.value];
  if (reply == nullptr) {
    // Every attempt timed out: the download is abandoned; the next miss starts it again.
    state.downloading = false;
    return;
  }
  for (const PartitionEntry& entry : reply->entries) {
    if (entry.table != lookup.table) continue;
    install(entry, env.local_now());
    ++stats_.entries_downloaded;
  }
  const bool more = reply->more && reply->next_hash_from > lookup.partition_hash;
  if (more && start_lookup(env, LookupKind::kPage, lookup.table, reply->next_hash_from, nullptr)) {
    return;
  }
  state.downloading = false;
  if (!more) {
    state.loaded = true;
    state.loaded_at = env.local_now();
  }
}

std::unique_ptr<PartitionCache> make_partition_cache(PartitionCacheOptions options,
                                                     std::vector<sim::Address> memds_nodes) {
  if (options.mode == PartitionCacheMode::kBimodal) {
    return std::make_unique<BimodalCache>(options, std::move(memds_nodes));
  }
  return std::make_unique<ConstantWorkCache>(options, std::move(memds_nodes));
}

}  // namespace dynasim::model
