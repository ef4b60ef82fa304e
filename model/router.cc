#include "model/router.h"

#include <algorithm>
#include <utility>

#include "model/client.h"
#include "model/item.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {

// Forward ids stay below the timer cookie's top byte.
constexpr uint64_t kForwardIdMask = (uint64_t{1} << 56) - 1;
// Our assumption: a router's own answer (kBusy, unknown) is a header like a storage answer's.
constexpr uint32_t kRouterAnswerBytes = 64;

bool eventual_read(const StorageRequest& request) {
  return !is_write(request.op) && request.consistency == ReadConsistency::kEventual;
}

uint64_t response_digest(const StorageResponse& response, bool outcome_unknown) {
  uint64_t digest = sim::splitmix64(response.request_id ^ 0x526f75746572ull);
  digest = sim::splitmix64(digest ^ static_cast<uint64_t>(response.status) ^
                           (outcome_unknown ? 0x100 : 0));
  digest = sim::splitmix64(digest ^ response.group.value);
  if (response.item) digest = sim::splitmix64(digest ^ response.item->checksum());
  for (const Item& item : response.items) digest = sim::splitmix64(digest ^ item.checksum());
  return digest;
}

}  // namespace

RouterProcess::RouterProcess(RouterOptions options)
    : options_(std::move(options)),
      cache_(make_partition_cache(options_.cache, options_.memds_nodes)) {
  if (!options_.gac_servers.empty()) gac_ring_ = std::make_unique<GacRing>(options_.gac_servers);
  DYN_ASSERT(!options_.memds_nodes.empty());
  DYN_ASSERT(options_.max_forwards_per_request >= 1);
  DYN_ASSERT(options_.max_pending_requests >= 1);
  DYN_ASSERT(options_.forward_timeout.ns > 0);
}

RouterProcess::~RouterProcess() = default;

uint64_t RouterProcess::memds_lookups_sent() const {
  return cache_->stats().memds_lookups_sent + cache_->stats().range_reads_sent;
}

uint64_t RouterProcess::routing_hash(const StorageRequest& request) {
  if (request.op == StorageOp::kScan) return request.scan.hash_begin;
  return partition_hash(request.key.partition);
}

void RouterProcess::on_start(sim::Env& env) {
  self_ = env.self();
  // A restarted router must not reuse its last incarnation's request ids: storage nodes build
  // command ids from (client id, request id).
  next_forward_id_ = (env.random().next_u64() & (kForwardIdMask >> 2)) + 1;
  if (gac_ring_ != nullptr) {
    gac_ = std::make_unique<GacClient>(options_.gac_client, gac_ring_.get(),
                                       GacRouterId((env.random().next_u64() >> 1) + 1),
                                       options_.gac_observer);
  }
}

uint64_t RouterProcess::gac_cost_milli_units(const StorageRequest& request) {
  const CapacityUnits units =
      is_write(request.op)
          ? write_capacity(request.op == StorageOp::kPut
                               ? stored_item_size_bytes(request.item, request.key_name_bytes)
                               : 0)
          : read_capacity(0, request.consistency);
  return static_cast<uint64_t>(to_milli_units(units));
}

bool RouterProcess::admit_by_gac(sim::Env& env, sim::Address client, const RouterRequest& request) {
  if (gac_ == nullptr) return true;
  const GacBucketId bucket{
      request.table, is_write(request.request.op) ? CapacityKind::kWrite : CapacityKind::kRead};
  switch (gac_->try_consume(env, bucket, gac_cost_milli_units(request.request))) {
    case GacAdmission::kAdmitted:
      count(env, "router.gac_admitted", stats_.gac_admitted);
      return true;
    case GacAdmission::kAdmittedFallback:
      count(env, "router.gac_admitted_fallback", stats_.gac_admitted_fallback);
      return true;
    case GacAdmission::kThrottled:
      break;
  }
  count(env, "router.gac_throttled", stats_.gac_throttled);
  answer_now(env, client, request.request.request_id, StorageStatus::kThrottled);
  return false;
}

void RouterProcess::count(sim::Env& env, std::string_view counter, uint64_t& stat) {
  ++stat;
  env.metrics().add(counter, 1);
}

void RouterProcess::report_memds_lookups(sim::Env& env) {
  const uint64_t sent = memds_lookups_sent();
  if (sent == memds_lookups_reported_) return;
  env.metrics().add("router.memds_lookups_sent",
                    static_cast<int64_t>(sent - memds_lookups_reported_));
  memds_lookups_reported_ = sent;
}

void RouterProcess::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  handle_message(env, from, message);
  report_memds_lookups(env);
}

void RouterProcess::on_timer(sim::Env& env, uint64_t cookie) {
  handle_timer(env, cookie);
  report_memds_lookups(env);
}

void RouterProcess::handle_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  if (cache_->on_message(env, from, message)) return;
  if (gac_ != nullptr && gac_->on_message(env, from, message)) return;
  if (message.type == static_cast<uint32_t>(StorageMessageType::kResponse)) {
    const auto* response = dynamic_cast<const StorageResponse*>(message.body.get());
    DYN_ASSERT_MSG(response != nullptr, "a kResponse message without a StorageResponse body");
    on_storage_response(env, *response);
    return;
  }
  if (message.type != static_cast<uint32_t>(RouterMessageType::kRequest)) return;
  const auto* request = dynamic_cast<const RouterRequest*>(message.body.get());
  DYN_ASSERT_MSG(request != nullptr, "a router kRequest message without a RouterRequest body");
  count(env, "router.requests", stats_.requests);
  if (pending_.size() >= options_.max_pending_requests) {
    count(env, "router.busy_refusals", stats_.busy_refusals);
    answer_now(env, from, request->request.request_id, StorageStatus::kBusy);
    return;
  }
  if (!admit_by_gac(env, from, *request)) return;
  const uint64_t id = next_pending_id_++;
  Pending& pending = pending_[id];
  pending.client = from;
  pending.table = request->table;
  pending.request = request->request;
  pending.partition_hash = routing_hash(request->request);
  resolve(env, id);
}

void RouterProcess::resolve(sim::Env& env, uint64_t pending_id) {
  Pending& pending = pending_.at(pending_id);
  count(env, "router.resolutions", stats_.resolutions);
  pending.forward_id = 0;
  // The callback may run before resolve() returns (a hit, a refusal) or later (a miss); the
  // pending request stays until it runs, since only an answer or a forward timeout removes it
  // and neither happens while resolving.
  cache_->resolve(env, pending.table, pending.partition_hash,
                  [this, &env, pending_id](const CacheResult& result) {
                    on_resolved(env, pending_id, result);
                  });
}

void RouterProcess::on_resolved(sim::Env& env, uint64_t pending_id, const CacheResult& result) {
  auto it = pending_.find(pending_id);
  DYN_ASSERT(it != pending_.end());
  if (result.status != CacheStatus::kOk) {
    // Nothing was sent to storage: a definite refusal. kBusy is retryable at the client.
    count(env, "router.resolve_failures", stats_.resolve_failures);
    env.metrics().add(std::string("router.resolve_failures.") + to_string(result.status), 1);
    StorageResponse busy;
    busy.request_id = it->second.request.request_id;
    busy.status = StorageStatus::kBusy;
    answer(env, pending_id, busy, /*outcome_unknown=*/false);
    return;
  }
  if (result.hit) {
    count(env, "router.hits", stats_.hits);
  } else {
    count(env, "router.misses", stats_.misses);
  }
  forward(env, pending_id, result.entry);
}

sim::Address RouterProcess::pick_destination(sim::Env& env, Pending& pending,
                                             const PartitionEntry& entry) {
  const PartitionEntry* chosen = &entry;
  if (options_.plant_forward_to_neighbour && entry.hash_end != UINT64_MAX) {
    // The planted bug: the next partition's cached entry stands in for this one.
    if (const PartitionEntry* next = cache_->peek(entry.table, entry.hash_end + 1)) chosen = next;
  }
  const std::vector<sim::Address>& replicas = chosen->members.replicas;
  DYN_ASSERT_MSG(!replicas.empty(), "a partition entry without replicas");
  if (chosen == &entry) {
    if (pending.hinted) return *std::exchange(pending.hinted, std::nullopt);
  }
  if (eventual_read(pending.request)) return replicas[env.random().uniform_u64(replicas.size())];
  if (chosen->leader_hint) return *chosen->leader_hint;
  uint32_t& next = round_robin_[chosen->group.value];
  const sim::Address destination = replicas[next % replicas.size()];
  next = static_cast<uint32_t>((next + 1) % replicas.size());
  return destination;
}

void RouterProcess::forward(sim::Env& env, uint64_t pending_id, const PartitionEntry& entry) {
  Pending& pending = pending_.at(pending_id);
  DYN_ASSERT(pending.forwards < options_.max_forwards_per_request);
  DYN_ASSERT(next_forward_id_ <= kForwardIdMask);
  ++pending.forwards;
  count(env, "router.forwards", stats_.forwards);
  const sim::Address destination = pick_destination(env, pending, entry);
  pending.group = entry.group;
  pending.forward_id = next_forward_id_++;
  forwards_.emplace(pending.forward_id, pending_id);

  auto body = std::make_shared<StorageRequest>(pending.request);
  body->group = entry.group;
  body->client_id = options_.router_client_id;
  body->request_id = pending.forward_id;
  body->known_epoch = entry.members.epoch;
  sim::Message message;
  message.type = static_cast<uint32_t>(StorageMessageType::kRequest);
  message.size_bytes = DirectClient::request_size_bytes(*body);
  message.digest = DirectClient::request_digest(*body);
  message.body = std::move(body);
  if (options_.observer != nullptr) {
    options_.observer->on_forward(self_, pending.table, pending.partition_hash, entry.group,
                                  destination);
  }
  pending.timer = env.set_timer(options_.forward_timeout, kTimerCookieBase | pending.forward_id);
  env.send(destination, std::move(message));
}

void RouterProcess::on_storage_response(sim::Env& env, const StorageResponse& response) {
  auto in_flight = forwards_.find(response.request_id);
  if (in_flight == forwards_.end()) {
    // Its forward timed out (the client heard "unknown") or it is a duplicate.
    count(env, "router.late_answers_dropped", stats_.late_answers_dropped);
    return;
  }
  const uint64_t pending_id = in_flight->second;
  forwards_.erase(in_flight);
  Pending& pending = pending_.at(pending_id);
  env.cancel_timer(pending.timer);
  pending.forward_id = 0;
  // Storage nodes are the authoritative source of membership (P22 section 6.6).
  if (response.members.has_value()) {
    cache_->learn_members(pending.table, pending.partition_hash, *response.members);
  }
  const bool can_forward = pending.forwards < options_.max_forwards_per_request;
  switch (response.status) {
    case StorageStatus::kNotLeader:
      if (response.leader_hint.has_value()) {
        cache_->learn_leader(pending.table, pending.partition_hash, *response.leader_hint);
        if (!can_forward) break;
        count(env, "router.not_leader_retries", stats_.not_leader_retries);
        pending.hinted = *response.leader_hint;
        // Forward at once through the cache entry (now naming the hint as leader).
        if (const PartitionEntry* entry = cache_->peek(pending.table, pending.partition_hash)) {
          const PartitionEntry copy = *entry;
          forward(env, pending_id, copy);
          return;
        }
        count(env, "router.re_resolutions", stats_.re_resolutions);
        resolve(env, pending_id);
        return;
      }
      [[fallthrough]];
    case StorageStatus::kNoSuchGroup:
    case StorageStatus::kRecovering:
    case StorageStatus::kUnhealthy:
      // The entry may be stale, or this replica cannot serve: ask again where the partition is.
      if (!can_forward) break;
      if (!response.members.has_value()) {
        cache_->invalidate(pending.table, pending.partition_hash);
      }
      count(env, "router.re_resolutions", stats_.re_resolutions);
      resolve(env, pending_id);
      return;
    default:
      break;
  }
  answer(env, pending_id, response, /*outcome_unknown=*/false);
}

void RouterProcess::handle_timer(sim::Env& env, uint64_t cookie) {
  if (cache_->on_timer(env, cookie)) return;
  if (gac_ != nullptr && gac_->on_timer(env, cookie)) return;
  DYN_ASSERT((cookie >> 56) == (kTimerCookieBase >> 56));
  const uint64_t forward_id = cookie & kForwardIdMask;
  auto in_flight = forwards_.find(forward_id);
  if (in_flight == forwards_.end()) return;  // answered; the cancel raced the fire
  const uint64_t pending_id = in_flight->second;
  forwards_.erase(in_flight);
  count(env, "router.forward_timeouts", stats_.forward_timeouts);
  // Unknown outcome: never re-sent by the router. The client decides.
  StorageResponse unknown;
  unknown.request_id = pending_.at(pending_id).request.request_id;
  unknown.status = StorageStatus::kBusy;
  answer(env, pending_id, unknown, /*outcome_unknown=*/true);
}

void RouterProcess::answer(sim::Env& env, uint64_t pending_id, const StorageResponse& response,
                           bool outcome_unknown) {
  auto it = pending_.find(pending_id);
  DYN_ASSERT(it != pending_.end());
  const Pending& pending = it->second;
  auto body = std::make_shared<RouterResponse>();
  body->response = response;
  body->response.request_id = pending.request.request_id;
  body->outcome_unknown = outcome_unknown;
  uint64_t bytes = kRouterAnswerBytes;
  if (body->response.item) bytes += body->response.item->encode().size();
  for (const Item& item : body->response.items) bytes += item.encode().size();
  sim::Message message;
  message.type = static_cast<uint32_t>(RouterMessageType::kResponse);
  message.size_bytes = static_cast<uint32_t>(std::min<uint64_t>(bytes, UINT32_MAX));
  message.digest = response_digest(body->response, outcome_unknown);
  message.body = std::move(body);
  const sim::Address client = pending.client;
  pending_.erase(it);
  count(env, "router.answers", stats_.answers);
  env.send(client, std::move(message));
}

void RouterProcess::answer_now(sim::Env& env, sim::Address client, uint64_t request_id,
                               StorageStatus status) {
  auto body = std::make_shared<RouterResponse>();
  body->response.request_id = request_id;
  body->response.status = status;
  sim::Message message;
  message.type = static_cast<uint32_t>(RouterMessageType::kResponse);
  message.size_bytes = kRouterAnswerBytes;
  message.digest = response_digest(body->response, false);
  message.body = std::move(body);
  count(env, "router.answers", stats_.answers);
  env.send(client, std::move(message));
}

}  // namespace dynasim::model
