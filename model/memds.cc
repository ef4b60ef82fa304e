#include "model/memds.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {
namespace {

constexpr uint64_t kAntiEntropyCookie = MemdsNode::kTimerCookieBase + 1;
constexpr uint64_t kRetryCookie = MemdsPublisher::kTimerCookieBase + 1;

uint32_t entries_size_bytes(size_t count) {
  return kMemdsHeaderBytes + static_cast<uint32_t>(count) * kMemdsEntryBytes;
}

template <typename Body>
sim::Message message_of(MemdsMessageType type, uint32_t size_bytes, uint64_t digest,
                        std::shared_ptr<Body> body) {
  return sim::Message{static_cast<uint32_t>(type), size_bytes, digest, std::move(body)};
}

uint64_t key_digest(const PerkleKey& key, uint32_t bits) {
  return sim::splitmix64(sim::splitmix64(key.table ^ bits) ^ key.hash);
}

}  // namespace

const char* to_string(MemdsStatus status) {
  switch (status) {
    case MemdsStatus::kOk:
      return "kOk";
    case MemdsStatus::kNoEntry:
      return "kNoEntry";
  }
  return "?";
}

uint64_t digest_of(const std::vector<PartitionEntry>& entries) {
  uint64_t h = sim::splitmix64(entries.size());
  for (const PartitionEntry& entry : entries) h = sim::splitmix64(h ^ entry.digest());
  return h;
}

// ---------------------------------------------------------------------------------------------
// MemdsNode

MemdsNode::MemdsNode(MemdsOptions options, std::vector<sim::Address> peers)
    : options_(options), peers_(std::move(peers)), tree_(options.perkle) {
  DYN_ASSERT(options_.max_entries_per_sync_message > 0);
  DYN_ASSERT(options_.max_range_entries > 0);
}

void MemdsNode::start(sim::Env& env) {
  DYN_ASSERT(!started_);
  started_ = true;
  std::erase(peers_, env.self());
  std::sort(peers_.begin(), peers_.end());
  peers_.erase(std::unique(peers_.begin(), peers_.end()), peers_.end());
  arm_timer(env);
}

void MemdsNode::arm_timer(sim::Env& env) {
  if (!peers_.empty()) env.set_timer(options_.anti_entropy_interval, kAntiEntropyCookie);
}

bool MemdsNode::on_timer(sim::Env& env, uint64_t cookie) {
  if (cookie != kAntiEntropyCookie) return false;
  start_round(env);
  arm_timer(env);
  return true;
}

MemdsNode::ApplyOutcome MemdsNode::apply(const PartitionEntry& entry) {
  const PartitionEntry* held = tree_.find(entry.key());
  if (held != nullptr) {
    bool replace = entry.version > held->version;
    if (options_.plant_accept_older_version) replace = entry.version != held->version;
    if (entry.version == held->version) {
      // One authoritative publisher never sends two contents under one version; if it ever
      // happens, a fixed rule keeps the replicas from disagreeing forever.
      if (entry.digest() <= held->digest()) {
        ++stats_.entries_duplicate;
        return ApplyOutcome::kDuplicate;
      }
      replace = true;
    }
    if (!replace) {
      ++stats_.entries_stale;
      return ApplyOutcome::kStale;
    }
  }
  tree_.insert(entry);
  ++stats_.entries_applied;
  return ApplyOutcome::kApplied;
}

std::optional<PartitionEntry> MemdsNode::lookup(TableId table, uint64_t partition_hash) const {
  // A retired range (a tombstone) hides nothing: the live entry to its left, extended over it by
  // the merge, holds the hash. Bounded: a chain of tombstones is cut after this many steps.
  constexpr int kMaxTombstonesSkipped = 64;
  PerkleKey key{table.value, partition_hash};
  for (int step = 0; step <= kMaxTombstonesSkipped; ++step) {
    const PartitionEntry* found = tree_.floor(key);
    if (found == nullptr || found->table != table) return std::nullopt;
    if (!found->retired) {
      if (found->covers(partition_hash)) return *found;
      return std::nullopt;
    }
    if (found->hash_begin == 0) return std::nullopt;
    key.hash = found->hash_begin - 1;
  }
  return std::nullopt;
}

bool MemdsNode::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  switch (static_cast<MemdsMessageType>(message.type)) {
    case MemdsMessageType::kMapUpdate:
      on_update(env, from, dynamic_cast<const PartitionMapUpdate&>(*message.body));
      return true;
    case MemdsMessageType::kLookup:
      on_lookup(env, from, dynamic_cast<const MemdsLookup&>(*message.body));
      return true;
    case MemdsMessageType::kRangeRead:
      on_range_read(env, from, dynamic_cast<const MemdsRangeRead&>(*message.body));
      return true;
    case MemdsMessageType::kSyncProbe:
      on_probe(env, from, dynamic_cast<const MemdsSyncProbe&>(*message.body));
      return true;
    case MemdsMessageType::kSyncChildren:
      on_children(env, from, dynamic_cast<const MemdsSyncChildren&>(*message.body));
      return true;
    case MemdsMessageType::kSyncEntries:
      on_sync_entries(env, from, dynamic_cast<const MemdsSyncEntries&>(*message.body));
      return true;
    case MemdsMessageType::kMapUpdateAck:
    case MemdsMessageType::kLookupReply:
    case MemdsMessageType::kRangeReply:
      return false;
  }
  return false;
}

void MemdsNode::on_update(sim::Env& env, sim::Address from, const PartitionMapUpdate& update) {
  ++stats_.updates_received;
  for (const PartitionEntry& entry : update.entries) apply(entry);
  auto ack = std::make_shared<PartitionMapUpdateAck>();
  ack->update_id = update.update_id;
  env.send(from, message_of(MemdsMessageType::kMapUpdateAck, kMemdsHeaderBytes,
                            sim::splitmix64(update.update_id), std::move(ack)));
}

void MemdsNode::on_lookup(sim::Env& env, sim::Address from, const MemdsLookup& lookup) {
  ++stats_.lookups;
  env.metrics().add("memds.lookups", 1);
  // Every request MemDS serves, lookups and range pages: the metadata load (metrics.csv).
  env.metrics().add("memds_lookups", 1);
  if (options_.observer != nullptr) options_.observer->on_request_served(env.self(), false);
  auto reply = std::make_shared<MemdsLookupReply>();
  reply->request_id = lookup.request_id;
  if (auto entry = this->lookup(lookup.table, lookup.partition_hash)) {
    reply->entry = std::move(*entry);
  } else {
    reply->status = MemdsStatus::kNoEntry;
    ++stats_.lookups_no_entry;
  }
  const uint64_t digest = sim::splitmix64(lookup.request_id ^ reply->entry.digest());
  env.send(from, message_of(MemdsMessageType::kLookupReply, entries_size_bytes(1), digest,
                            std::move(reply)));
}

void MemdsNode::on_range_read(sim::Env& env, sim::Address from, const MemdsRangeRead& read) {
  ++stats_.range_reads;
  env.metrics().add("memds_lookups", 1);
  if (options_.observer != nullptr) options_.observer->on_request_served(env.self(), true);
  const uint32_t limit = std::clamp<uint32_t>(read.max_entries, 1, options_.max_range_entries);
  auto reply = std::make_shared<MemdsRangeReply>();
  reply->request_id = read.request_id;
  // Start at the partition holding hash_from (its floor), so a page boundary never drops one.
  PerkleKey from_key{read.table.value, read.hash_from};
  if (const PartitionEntry* floor = tree_.floor(from_key)) {
    if (floor->table == read.table) from_key.hash = floor->hash_begin;
  }
  const PerkleKey to_key{read.table.value, UINT64_MAX};
  // One more than the page, to know whether another follows; tombstones are filtered out, and
  // the scan is bounded by a fixed multiple of the page.
  const std::vector<PartitionEntry> scanned = tree_.range(from_key, to_key, size_t{limit} * 4 + 1);
  for (const PartitionEntry& entry : scanned) {
    if (reply->entries.size() == limit) {
      reply->more = true;
      reply->next_hash_from = entry.hash_begin;
      break;
    }
    if (!entry.retired) reply->entries.push_back(entry);
  }
  if (!reply->more && scanned.size() == size_t{limit} * 4 + 1) {
    reply->more = true;
    reply->next_hash_from = scanned.back().hash_begin;
  }
  stats_.range_entries_sent += reply->entries.size();
  env.metrics().add("memds.range_entries", static_cast<int64_t>(reply->entries.size()));
  const uint32_t size = entries_size_bytes(reply->entries.size());
  const uint64_t digest = sim::splitmix64(read.request_id ^ digest_of(reply->entries));
  env.send(from, message_of(MemdsMessageType::kRangeReply, size, digest, std::move(reply)));
}

// --- anti-entropy -----------------------------------------------------------------------------

void MemdsNode::start_round(sim::Env& env) {
  DYN_ASSERT(!peers_.empty());
  ++round_;
  ++stats_.sync_rounds;
  probes_this_round_ = 0;
  round_peer_ = peers_[next_peer_ % peers_.size()];
  next_peer_ = (next_peer_ + 1) % peers_.size();
  send_probe(env, *round_peer_, round_, PerkleKey{0, 0}, 0);
}

void MemdsNode::send_probe(sim::Env& env, sim::Address to, uint64_t round, const PerkleKey& prefix,
                           uint32_t prefix_bits) {
  ++probes_this_round_;
  ++stats_.sync_probes_sent;
  auto probe = std::make_shared<MemdsSyncProbe>();
  probe->round = round;
  probe->prefix = prefix;
  probe->prefix_bits = prefix_bits;
  probe->prefix_hash = tree_.prefix_hash(prefix, prefix_bits);
  const uint64_t digest = sim::splitmix64(key_digest(prefix, prefix_bits) ^ probe->prefix_hash);
  env.send(to,
           message_of(MemdsMessageType::kSyncProbe, kMemdsHeaderBytes, digest, std::move(probe)));
}

void MemdsNode::send_entries(sim::Env& env, sim::Address to, uint64_t round,
                             const PerkleKey& prefix, uint32_t prefix_bits,
                             std::vector<PartitionEntry> entries, bool reply_wanted) {
  DYN_ASSERT(entries.size() <= options_.max_entries_per_sync_message);
  stats_.sync_entries_sent += entries.size();
  auto body = std::make_shared<MemdsSyncEntries>();
  body->round = round;
  body->prefix = prefix;
  body->prefix_bits = prefix_bits;
  body->reply_wanted = reply_wanted;
  const uint64_t digest = sim::splitmix64(key_digest(prefix, prefix_bits) ^ digest_of(entries) ^
                                          (reply_wanted ? 1 : 0));
  const uint32_t size = entries_size_bytes(entries.size());
  body->entries = std::move(entries);
  env.send(to, message_of(MemdsMessageType::kSyncEntries, size, digest, std::move(body)));
}

void MemdsNode::on_probe(sim::Env& env, sim::Address from, const MemdsSyncProbe& probe) {
  if (probe.prefix_bits > PerkleKey::kBits) return;  // malformed
  if (tree_.prefix_hash(probe.prefix, probe.prefix_bits) == probe.prefix_hash) {
    ++stats_.sync_probes_equal;
    return;
  }
  const size_t held = tree_.count_with_prefix(probe.prefix, probe.prefix_bits);
  if (held <= options_.max_entries_per_sync_message) {
    send_entries(env, from, probe.round, probe.prefix, probe.prefix_bits,
                 tree_.with_prefix(probe.prefix, probe.prefix_bits, held), /*reply_wanted=*/true);
    return;
  }
  auto children = std::make_shared<MemdsSyncChildren>();
  children->round = probe.round;
  children->prefix = probe.prefix;
  children->prefix_bits = probe.prefix_bits;
  children->split = *tree_.split_of(probe.prefix, probe.prefix_bits);  // held >= 2
  const uint64_t digest =
      sim::splitmix64(key_digest(probe.prefix, probe.prefix_bits) ^ children->split.child_hash[0] ^
                      sim::splitmix64(children->split.child_hash[1]));
  env.send(from, message_of(MemdsMessageType::kSyncChildren, kMemdsHeaderBytes + 32, digest,
                            std::move(children)));
}

void MemdsNode::on_children(sim::Env& env, sim::Address from, const MemdsSyncChildren& children) {
  // Only the round in progress, with its peer, goes deeper; a late answer of an old round is
  // dropped (the next round starts from the root again).
  if (children.round != round_ || !round_peer_.has_value() || from != *round_peer_) return;
  const PerkleTree::Split& split = children.split;
  if (split.branch_bit < children.prefix_bits || split.branch_bit >= PerkleKey::kBits) return;
  if (PerkleKey::common_prefix_bits(split.key, children.prefix) < children.prefix_bits) return;
  // The peer's entries under the prefix all share split.key's first branch_bit bits. Ours that do
  // not are missing at the peer: send them.
  const size_t ours_under_prefix = tree_.count_with_prefix(children.prefix, children.prefix_bits);
  const size_t ours_in_subtree = tree_.count_with_prefix(split.key, split.branch_bit);
  if (ours_under_prefix != ours_in_subtree) {
    std::vector<PartitionEntry> outside;
    for (const PartitionEntry& entry :
         tree_.with_prefix(children.prefix, children.prefix_bits, ours_under_prefix)) {
      if (PerkleKey::common_prefix_bits(entry.key(), split.key) >= split.branch_bit) continue;
      outside.push_back(entry);
      if (outside.size() == options_.max_entries_per_sync_message) break;
    }
    send_entries(env, from, children.round, children.prefix, children.prefix_bits,
                 std::move(outside), /*reply_wanted=*/false);
  }
  for (int side = 0; side < 2; ++side) {
    const PerkleKey half = split.key.filled_from(
        split.branch_bit, side == 0 ? PerkleKey::Fill::kZeros : PerkleKey::Fill::kOnes);
    if (tree_.prefix_hash(half, split.branch_bit + 1) == split.child_hash[side]) continue;
    if (probes_this_round_ >= options_.max_probes_per_round) return;
    send_probe(env, from, children.round, half, split.branch_bit + 1);
  }
}

void MemdsNode::on_sync_entries(sim::Env& env, sim::Address from, const MemdsSyncEntries& message) {
  if (message.prefix_bits > PerkleKey::kBits) return;
  for (const PartitionEntry& entry : message.entries) {
    // Only entries under the named prefix: anything else is a broken message.
    if (PerkleKey::common_prefix_bits(entry.key(), message.prefix) < message.prefix_bits) continue;
    if (apply(entry) == ApplyOutcome::kApplied) ++stats_.sync_entries_applied;
  }
  if (!message.reply_wanted) return;
  // The sender listed all it holds under the prefix: send back what it lacks or holds older.
  std::map<PerkleKey, const PartitionEntry*> theirs;
  for (const PartitionEntry& entry : message.entries) theirs[entry.key()] = &entry;
  const size_t held = tree_.count_with_prefix(message.prefix, message.prefix_bits);
  std::vector<PartitionEntry> back;
  for (const PartitionEntry& entry : tree_.with_prefix(message.prefix, message.prefix_bits, held)) {
    auto it = theirs.find(entry.key());
    if (it != theirs.end() && *it->second == entry) continue;
    back.push_back(entry);
    if (back.size() == options_.max_entries_per_sync_message) break;
  }
  if (!back.empty()) {
    send_entries(env, from, message.round, message.prefix, message.prefix_bits, std::move(back),
                 /*reply_wanted=*/false);
  }
}

void MemdsProcess::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  // Anything else sent to a MemDS port is not for it; a real server would drop it too.
  node_.on_message(env, from, message);
}

void MemdsProcess::on_timer(sim::Env& env, uint64_t cookie) {
  const bool consumed = node_.on_timer(env, cookie);
  DYN_ASSERT(consumed);
}

std::vector<PartitionEntry> partition_map_of(TableId table, const Placement& placement,
                                             uint64_t version) {
  std::vector<PartitionEntry> entries;
  entries.reserve(placement.groups.size());
  for (const GroupPlacement& group : placement.groups) {
    PartitionEntry entry;
    entry.table = table;
    entry.hash_begin = group.hash_begin;
    entry.hash_end = group.hash_end;
    entry.group = group.group;
    entry.members.epoch = 0;
    entry.members.replicas.assign(group.replicas.begin(), group.replicas.end());
    entry.version = version;
    entries.push_back(std::move(entry));
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// MemdsPublisher

MemdsPublisher::MemdsPublisher(MemdsPublisherOptions options, std::vector<sim::Address> memds_nodes)
    : options_(options), memds_nodes_(std::move(memds_nodes)) {
  DYN_ASSERT(!memds_nodes_.empty());
  DYN_ASSERT(options_.max_attempts >= 1);
  std::sort(memds_nodes_.begin(), memds_nodes_.end());
  memds_nodes_.erase(std::unique(memds_nodes_.begin(), memds_nodes_.end()), memds_nodes_.end());
}

MemdsPublisher::PublishStatus MemdsPublisher::publish(sim::Env& env,
                                                      std::vector<PartitionEntry> entries) {
  if (pending_.size() >= options_.max_pending_updates) {
    ++stats_.updates_refused;
    return PublishStatus::kQueueFull;
  }
  // Ids start at a random point per incarnation, so an ack meant for an update of an earlier
  // incarnation (same address, after a restart) does not match a new one.
  if (next_update_id_ == 0) next_update_id_ = (env.random().next_u64() >> 16) + 1;
  auto body = std::make_shared<PartitionMapUpdate>();
  body->update_id = next_update_id_++;
  body->entries = std::move(entries);
  ++stats_.updates_published;
  Pending pending;
  pending.update = body;
  for (const sim::Address& node : memds_nodes_) {
    pending.unacked.insert(node);
    send(env, node, body);
  }
  pending_.emplace(body->update_id, std::move(pending));
  if (!timer_armed_) {
    env.set_timer(options_.retry_interval, kRetryCookie);
    timer_armed_ = true;
  }
  return PublishStatus::kQueued;
}

void MemdsPublisher::send(sim::Env& env, sim::Address to,
                          const std::shared_ptr<const PartitionMapUpdate>& body) {
  ++stats_.sends;
  env.send(to, sim::Message{static_cast<uint32_t>(MemdsMessageType::kMapUpdate),
                            entries_size_bytes(body->entries.size()),
                            sim::splitmix64(body->update_id ^ digest_of(body->entries)), body});
}

bool MemdsPublisher::on_message(sim::Env&, sim::Address from, const sim::Message& message) {
  if (message.type != static_cast<uint32_t>(MemdsMessageType::kMapUpdateAck)) return false;
  const auto& ack = dynamic_cast<const PartitionMapUpdateAck&>(*message.body);
  auto it = pending_.find(ack.update_id);
  if (it == pending_.end()) return true;  // a duplicate, or an update already given up
  if (it->second.unacked.erase(from) != 0) ++stats_.acks;
  if (it->second.unacked.empty()) pending_.erase(it);
  return true;
}

bool MemdsPublisher::on_timer(sim::Env& env, uint64_t cookie) {
  if (cookie != kRetryCookie) return false;
  timer_armed_ = false;
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& pending = it->second;
    if (pending.attempts >= options_.max_attempts) {
      stats_.nodes_given_up += pending.unacked.size();
      it = pending_.erase(it);
      continue;
    }
    ++pending.attempts;
    for (const sim::Address& node : pending.unacked) {
      ++stats_.resends;
      send(env, node, pending.update);
    }
    ++it;
  }
  if (!pending_.empty()) {
    env.set_timer(options_.retry_interval, kRetryCookie);
    timer_armed_ = true;
  }
  return true;
}

}  // namespace dynasim::model
