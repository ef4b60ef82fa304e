#include "model/gac.h"

#include <algorithm>
#include <iterator>
#include <numeric>
#include <utility>

#include "model/capacity_controller.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

// Our assumption: a GAC message's size on the wire (framing and ids, a few counters).
constexpr uint32_t kRequestSizeBytes = 96;
constexpr uint32_t kGrantSizeBytes = 96;

// milli-units per second over `span` -> milli-units, rounded down. 128-bit so large capacities
// over long spans cannot overflow.
uint64_t amount_over(uint64_t milli_units_per_second, sim::Duration span) {
  if (span.ns <= 0) return 0;
  const unsigned __int128 product =
      static_cast<unsigned __int128>(milli_units_per_second) * static_cast<uint64_t>(span.ns);
  const unsigned __int128 amount = product / kNanosPerSecond;
  return amount > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(amount);
}

// milli-units over `span` -> milli-units per second, rounded down. REQUIRES: span > 0.
uint64_t rate_over(uint64_t milli_units, sim::Duration span) {
  const unsigned __int128 product = static_cast<unsigned __int128>(milli_units) * kNanosPerSecond;
  const unsigned __int128 rate = product / static_cast<uint64_t>(span.ns);
  return rate > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(rate);
}

int64_t floor_div(int64_t value, int64_t divisor) {
  int64_t quotient = value / divisor;
  if ((value % divisor != 0) && ((value < 0) != (divisor < 0))) --quotient;
  return quotient;
}

uint64_t digest_bucket(uint64_t digest, GacBucketId bucket) {
  return sim::splitmix64(digest ^ bucket.stable_key());
}

}  // namespace

uint64_t gac_request_digest(const GacTokenRequest& request) {
  uint64_t digest = digest_bucket(sim::splitmix64(request.router.value), request.bucket);
  digest = sim::splitmix64(digest ^ request.request_id);
  digest = sim::splitmix64(digest ^ request.admitted_milli_units);
  digest = sim::splitmix64(digest ^ request.throttled_milli_units);
  digest = sim::splitmix64(digest ^ static_cast<uint64_t>(request.report_interval.ns));
  return sim::splitmix64(digest ^ request.held_milli_units);
}

uint64_t gac_grant_digest(const GacTokenGrant& grant) {
  uint64_t digest = digest_bucket(sim::splitmix64(grant.router.value), grant.bucket);
  digest = sim::splitmix64(digest ^ grant.request_id);
  digest = sim::splitmix64(digest ^ static_cast<uint64_t>(grant.status));
  digest = sim::splitmix64(digest ^ grant.server_nonce);
  digest = sim::splitmix64(digest ^ grant.grant_id);
  digest = sim::splitmix64(digest ^ grant.amount_milli_units);
  digest = sim::splitmix64(digest ^ static_cast<uint64_t>(grant.lifetime.ns));
  return sim::splitmix64(digest ^ grant.share_milli_units_per_second);
}

// ---------------------------------------------------------------------------------------------
// GacRing

GacRing::GacRing(std::vector<sim::Address> servers, uint32_t virtual_nodes_per_server)
    : servers_(std::move(servers)) {
  DYN_ASSERT(!servers_.empty() && servers_.size() <= kMaxServers);
  DYN_ASSERT(virtual_nodes_per_server >= 1);
  for (size_t i = 0; i < servers_.size(); ++i) {
    for (size_t j = i + 1; j < servers_.size(); ++j) {
      DYN_ASSERT_MSG(servers_[i] != servers_[j], "a GAC server is listed twice");
    }
  }
  points_.reserve(servers_.size() * virtual_nodes_per_server);
  for (uint32_t server = 0; server < servers_.size(); ++server) {
    for (uint32_t node = 0; node < virtual_nodes_per_server; ++node) {
      points_.emplace_back(virtual_node_point(GacServerId(server), node), server);
    }
  }
  // Ties (vanishingly rare) break by server index, so the order is total and deterministic.
  std::sort(points_.begin(), points_.end());
}

uint64_t GacRing::bucket_point(GacBucketId bucket) {
  return sim::splitmix64(sim::stable_hash("gac/bucket") ^ sim::splitmix64(bucket.stable_key()));
}

uint64_t GacRing::virtual_node_point(GacServerId server, uint32_t virtual_node) {
  const uint64_t seed = sim::splitmix64(sim::stable_hash("gac/server") ^ server.value);
  return sim::splitmix64(seed ^ (static_cast<uint64_t>(virtual_node) << 20));
}

std::optional<GacServerId> GacRing::server_of(sim::Address address) const {
  for (uint32_t server = 0; server < servers_.size(); ++server) {
    if (servers_[server] == address) return GacServerId(server);
  }
  return std::nullopt;
}

std::vector<GacServerId> GacRing::preference_list(GacBucketId bucket) const {
  const uint64_t point = bucket_point(bucket);
  auto start = std::lower_bound(points_.begin(), points_.end(), std::make_pair(point, uint32_t{0}));
  std::vector<GacServerId> list;
  std::vector<bool> seen(servers_.size(), false);
  const size_t offset = static_cast<size_t>(start - points_.begin());
  for (size_t step = 0; step < points_.size() && list.size() < servers_.size(); ++step) {
    const uint32_t server = points_[(offset + step) % points_.size()].second;
    if (seen[server]) continue;
    seen[server] = true;
    list.push_back(GacServerId(server));
  }
  DYN_ASSERT(list.size() == servers_.size());
  return list;
}

GacServerId GacRing::owner(GacBucketId bucket,
                           const std::function<bool(GacServerId)>& is_down) const {
  for (GacServerId server : preference_list(bucket)) {
    if (!is_down(server)) return server;
  }
  return GacServerId();
}

// ---------------------------------------------------------------------------------------------
// GacServer

GacServer::GacServer(GacServerOptions options, const GacCapacityTable* capacities,
                     GacServerObserver* observer)
    : options_(options), capacities_(capacities), observer_(observer) {
  DYN_ASSERT(capacities_ != nullptr);
  DYN_ASSERT(options_.slot_length.ns > 0);
  DYN_ASSERT(options_.horizon_slots >= 1 && options_.horizon_slots <= 64);
  DYN_ASSERT(options_.token_lifetime.ns > 0);
  DYN_ASSERT(options_.housekeeping_interval.ns > 0);
  DYN_ASSERT(options_.max_buckets >= 1 && options_.max_routers_per_bucket >= 1);
}

void GacServer::start(sim::Env& env) {
  // Zero is reserved for "no grant": draw until it is not.
  do {
    nonce_ = env.random().next_u64();
  } while (nonce_ == 0);
  env.set_timer(options_.housekeeping_interval, kTimerCookieBase);
}

size_t GacServer::tracked_routers(GacBucketId bucket) const {
  auto found = buckets_.find(bucket);
  return found == buckets_.end() ? 0 : found->second.routers.size();
}

int64_t GacServer::slot_of(sim::SimTime local_now) const {
  return floor_div(local_now.ns, options_.slot_length.ns);
}

std::vector<uint64_t> GacServer::fair_shares(uint64_t capacity,
                                             const std::vector<uint64_t>& demands) {
  const size_t count = demands.size();
  std::vector<uint64_t> shares(count, 0);
  if (count == 0) return shares;
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), size_t{0});
  // Ascending demand; equal demands by position, so the result does not depend on sort internals.
  std::sort(order.begin(), order.end(), [&demands](size_t a, size_t b) {
    return demands[a] != demands[b] ? demands[a] < demands[b] : a < b;
  });
  uint64_t remaining = capacity;
  for (size_t rank = 0; rank < count; ++rank) {
    const uint64_t level = remaining / (count - rank);
    const uint64_t given = std::min(demands[order[rank]], level);
    shares[order[rank]] = given;
    remaining -= given;
  }
  // What no demand asked for is spread evenly, so a router whose demand grows finds room at once
  // and the whole capacity is always out.
  const uint64_t each = remaining / count;
  const uint64_t extra = remaining % count;
  for (size_t i = 0; i < count; ++i) shares[i] += each + (i < extra ? 1 : 0);
  DYN_ASSERT(std::accumulate(shares.begin(), shares.end(), uint64_t{0}) == capacity);
  return shares;
}

bool GacServer::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  if (message.type != static_cast<uint32_t>(GacMessageType::kTokenRequest)) return false;
  const auto* request = dynamic_cast<const GacTokenRequest*>(message.body.get());
  DYN_ASSERT_MSG(request != nullptr, "a GAC token request without its body");
  handle_request(env, from, *request);
  return true;
}

bool GacServer::on_timer(sim::Env& env, uint64_t cookie) {
  if (cookie < kTimerCookieBase || cookie >= kTimerCookieEnd) return false;
  housekeeping(env.local_now());
  env.set_timer(options_.housekeeping_interval, kTimerCookieBase);
  return true;
}

void GacServer::housekeeping(sim::SimTime local_now) {
  const int64_t current = slot_of(local_now);
  for (auto bucket = buckets_.begin(); bucket != buckets_.end();) {
    auto& routers = bucket->second.routers;
    for (auto router = routers.begin(); router != routers.end();) {
      if (local_now - router->second.last_seen > options_.router_idle_forget) {
        router = routers.erase(router);
      } else {
        ++router;
      }
    }
    auto& slots = bucket->second.slots;
    slots.erase(slots.begin(), slots.lower_bound(current));
    // A bucket with no router left is forgotten only once none of its future slots hold grants,
    // so a router that comes back within the horizon cannot be paid for those slots twice.
    if (routers.empty() && slots.empty()) {
      bucket = buckets_.erase(bucket);
    } else {
      ++bucket;
    }
  }
}

void GacServer::send_grant(sim::Env& env, sim::Address to, const GacTokenGrant& grant) {
  auto body = std::make_shared<GacTokenGrant>(grant);
  const uint64_t digest = gac_grant_digest(*body);
  env.send(to, sim::Message{static_cast<uint32_t>(GacMessageType::kTokenGrant), kGrantSizeBytes,
                            digest, std::move(body)});
}

void GacServer::handle_request(sim::Env& env, sim::Address from, const GacTokenRequest& request) {
  ++stats_.requests;
  const sim::SimTime now = env.local_now();
  GacTokenGrant reply;
  reply.bucket = request.bucket;
  reply.router = request.router;
  reply.request_id = request.request_id;
  reply.server_nonce = nonce_;
  reply.lifetime = options_.token_lifetime;

  const std::optional<uint64_t> capacity_units = capacities_->capacity(request.bucket);
  if (!capacity_units.has_value()) {
    ++stats_.unknown_bucket;
    reply.status = GacGrantStatus::kUnknownBucket;
    send_grant(env, from, reply);
    return;
  }
  auto bucket_it = buckets_.find(request.bucket);
  if (bucket_it == buckets_.end()) {
    if (buckets_.size() >= options_.max_buckets) {
      ++stats_.overloaded;
      reply.status = GacGrantStatus::kOverloaded;
      send_grant(env, from, reply);
      return;
    }
    bucket_it = buckets_.emplace(request.bucket, BucketState{}).first;
  }
  BucketState& bucket = bucket_it->second;
  auto router_it = bucket.routers.find(request.router.value);
  if (router_it == bucket.routers.end()) {
    if (bucket.routers.size() >= options_.max_routers_per_bucket) {
      ++stats_.overloaded;
      reply.status = GacGrantStatus::kOverloaded;
      send_grant(env, from, reply);
      return;
    }
    router_it = bucket.routers.emplace(request.router.value, RouterState{}).first;
  }
  RouterState& router = router_it->second;

  // A duplicated request gets the same grant again (the router credits a grant once); an older
  // request than one already answered is stale and gets nothing.
  if (request.request_id == router.last_request_id && router.last_grant.has_value()) {
    ++stats_.duplicate_requests;
    send_grant(env, from, *router.last_grant);
    return;
  }
  if (request.request_id < router.last_request_id) {
    ++stats_.stale_requests;
    return;
  }
  router.last_seen = now;
  router.last_request_id = request.request_id;
  if (request.report_interval.ns > 0) {
    router.demand_milli_units_per_second = rate_over(
        request.admitted_milli_units + request.throttled_milli_units, request.report_interval);
  }

  // The router's share: max-min fair over the demands of the routers heard from lately.
  std::vector<uint64_t> demands;
  demands.reserve(bucket.routers.size());
  size_t own_index = 0;
  for (auto it = bucket.routers.begin(); it != bucket.routers.end();) {
    if (it != router_it && now - it->second.last_seen > options_.router_idle_forget) {
      it = bucket.routers.erase(it);
      continue;
    }
    if (it == router_it) own_index = demands.size();
    demands.push_back(it->second.demand_milli_units_per_second);
    ++it;
  }
  const uint64_t capacity_milli = *capacity_units * kMilliUnitsPerUnit;
  const uint64_t share = fair_shares(capacity_milli, demands)[own_index];

  // Vend the share for the slots from the first one this router has not been paid for up to the
  // horizon, never more than a slot has left. Each slot holds capacity x slot_length once, so
  // whatever the requests, this server never vends a slot twice (docs/gac.md, "The bound").
  const int64_t current = slot_of(now);
  const int64_t last = current + options_.horizon_slots - 1;
  int64_t first = std::max(router.next_slot, current);
  if (options_.plant_ignore_outstanding_grants) first = current;
  const uint64_t slot_budget = amount_over(capacity_milli, options_.slot_length);
  const uint64_t want_per_slot = amount_over(share, options_.slot_length);
  bucket.slots.erase(bucket.slots.begin(), bucket.slots.lower_bound(current));
  uint64_t amount = 0;
  for (int64_t slot = first; slot <= last; ++slot) {
    auto [slot_it, inserted] = bucket.slots.emplace(slot, slot_budget);
    (void)inserted;
    uint64_t take = std::min(want_per_slot, slot_it->second);
    if (options_.plant_ignore_outstanding_grants) take = want_per_slot;
    if (!options_.plant_ignore_outstanding_grants) slot_it->second -= take;
    amount += take;
  }
  // Without clock faults the table holds at most horizon_slots slots. A clock stepped back leaves
  // slots sold for a future now further away; beyond twice the horizon the farthest are
  // forgotten, which bounds the table (and is the one case the vending bound does not cover).
  while (bucket.slots.size() > 2 * static_cast<size_t>(options_.horizon_slots)) {
    bucket.slots.erase(std::prev(bucket.slots.end()));
  }
  if (first <= last) router.next_slot = last + 1;

  reply.status = GacGrantStatus::kOk;
  reply.grant_id = next_grant_id_++;
  reply.amount_milli_units = amount;
  reply.share_milli_units_per_second = share;
  router.last_grant = reply;
  ++stats_.grants;
  stats_.vended_milli_units += amount;
  if (observer_ != nullptr) {
    observer_->on_vend(GacVendRecord{env.self(), nonce_, request.bucket, request.router,
                                     request.request_id, reply.grant_id, amount, first, last,
                                     options_.token_lifetime, *capacity_units});
  }
  send_grant(env, from, reply);
}

// ---------------------------------------------------------------------------------------------
// GacClient

namespace {
// Cookie layout: kTimerCookieBase | kind | id. Refresh timers carry the bucket's index, attempt
// timeouts the request id; both stay below 2^55.
constexpr uint64_t kTimeoutCookieBit = uint64_t{1} << 55;
constexpr uint64_t kCookieIdMask = kTimeoutCookieBit - 1;
}  // namespace

GacClient::GacClient(GacClientOptions options, const GacRing* ring, GacRouterId router,
                     GacClientObserver* observer)
    : options_(options), ring_(ring), router_(router), observer_(observer) {
  DYN_ASSERT(ring_ != nullptr);
  DYN_ASSERT(options_.refresh_interval.ns > 0);
  DYN_ASSERT(options_.refresh_jitter_percent < 50);
  DYN_ASSERT(options_.low_water_percent <= 100);
  DYN_ASSERT(options_.attempt_timeout.ns > 0);
  DYN_ASSERT(options_.max_buckets >= 1 && options_.max_grants_per_bucket >= 1);
  DYN_ASSERT(options_.max_remembered_requests_per_bucket >= 1);
}

GacClient::BucketState& GacClient::bucket_state(GacBucketId bucket, sim::SimTime local_now) {
  auto found = buckets_.find(bucket);
  if (found != buckets_.end()) return found->second;
  BucketState& state = buckets_[bucket];
  state.index = static_cast<uint32_t>(bucket_by_index_.size());
  bucket_by_index_.push_back(bucket);
  state.report_started = local_now;
  state.last_used = local_now;
  want_refresh(state);
  return state;
}

void GacClient::want_refresh(BucketState& state) {
  state.refresh_wanted = true;
  if (state.queued_for_flush) return;
  state.queued_for_flush = true;
  flush_queue_.push_back(state.index);
}

void GacClient::drop_expired(BucketState& state, sim::SimTime local_now) {
  if (options_.plant_spend_expired_tokens) return;
  for (auto it = state.grants.begin(); it != state.grants.end();) {
    if (it->expiry <= local_now) {
      stats_.expired_milli_units += it->remaining_milli_units;
      it = state.grants.erase(it);
    } else {
      ++it;
    }
  }
}

uint64_t GacClient::held_milli_units(GacBucketId bucket, sim::SimTime local_now) const {
  auto found = buckets_.find(bucket);
  if (found == buckets_.end()) return 0;
  uint64_t held = 0;
  for (const HeldGrant& grant : found->second.grants) {
    if (grant.expiry > local_now) held += grant.remaining_milli_units;
  }
  return held;
}

bool GacClient::unreachable(GacBucketId bucket) const {
  auto found = buckets_.find(bucket);
  return found != buckets_.end() && found->second.unreachable;
}

bool GacClient::spend_fallback(BucketState& state, uint64_t cost, sim::SimTime local_now) {
  if (!state.unreachable || options_.static_stability_period.ns == 0) return false;
  if (local_now - state.unreachable_since > options_.static_stability_period) return false;
  // A local bucket at the last granted share, at most one second of it held (our assumption: the
  // same burst a router has with a grant of one slot or two).
  const uint64_t cap = state.share_milli_units_per_second;
  state.fallback_milli_units =
      std::min(cap, state.fallback_milli_units + amount_over(state.share_milli_units_per_second,
                                                             local_now - state.fallback_refilled));
  state.fallback_refilled = local_now;
  if (state.fallback_milli_units < cost) return false;
  state.fallback_milli_units -= cost;
  return true;
}

GacAdmission GacClient::try_consume(GacBucketId bucket, uint64_t cost_milli_units,
                                    sim::SimTime local_now) {
  if (buckets_.find(bucket) == buckets_.end() && buckets_.size() >= options_.max_buckets) {
    ++stats_.throttled;
    if (observer_ != nullptr) {
      observer_->on_admission(router_, bucket, cost_milli_units, GacAdmission::kThrottled);
    }
    return GacAdmission::kThrottled;
  }
  BucketState& state = bucket_state(bucket, local_now);
  state.last_used = local_now;
  drop_expired(state, local_now);
  uint64_t held = 0;
  for (const HeldGrant& grant : state.grants) held += grant.remaining_milli_units;

  GacAdmission admission = GacAdmission::kThrottled;
  if (held >= cost_milli_units) {
    // Earliest expiry first: what expires soonest is worth least.
    std::sort(state.grants.begin(), state.grants.end(),
              [](const HeldGrant& a, const HeldGrant& b) { return a.expiry < b.expiry; });
    uint64_t left = cost_milli_units;
    for (HeldGrant& grant : state.grants) {
      const uint64_t take = std::min(left, grant.remaining_milli_units);
      grant.remaining_milli_units -= take;
      left -= take;
      if (left == 0) break;
    }
    std::erase_if(state.grants,
                  [](const HeldGrant& grant) { return grant.remaining_milli_units == 0; });
    held -= cost_milli_units;
    admission = GacAdmission::kAdmitted;
    ++stats_.admitted;
  } else if (spend_fallback(state, cost_milli_units, local_now)) {
    admission = GacAdmission::kAdmittedFallback;
    ++stats_.admitted_fallback;
  } else {
    ++stats_.throttled;
  }
  if (admission == GacAdmission::kThrottled) {
    state.throttled_since_report += cost_milli_units;
  } else {
    state.admitted_since_report += cost_milli_units;
  }
  // Tokens run out "because of consumption or expiry" (P22 section 4.2): ask early. Not while GAC
  // is unreachable: the regular refresh keeps probing, and early ones would only add timeouts.
  const uint64_t low_water = state.last_grant_milli_units * options_.low_water_percent / 100;
  if (!state.unreachable && (held <= low_water || admission == GacAdmission::kThrottled)) {
    want_refresh(state);
  }
  if (observer_ != nullptr) observer_->on_admission(router_, bucket, cost_milli_units, admission);
  return admission;
}

GacAdmission GacClient::try_consume(sim::Env& env, GacBucketId bucket, uint64_t cost_milli_units) {
  const GacAdmission admission = try_consume(bucket, cost_milli_units, env.local_now());
  flush(env);
  return admission;
}

void GacClient::flush(sim::Env& env) {
  const sim::SimTime now = env.local_now();
  // Only buckets that want a refresh are visited; one that must wait (an attempt in flight, or
  // its last request too recent) stays queued for a later flush. The queue holds each bucket at
  // most once, so it is bounded by max_buckets.
  size_t kept = 0;
  for (size_t i = 0; i < flush_queue_.size(); ++i) {
    const GacBucketId bucket = bucket_by_index_[flush_queue_[i]];
    BucketState& state = buckets_.at(bucket);
    if (!state.refresh_wanted) {
      state.queued_for_flush = false;
      continue;
    }
    const bool too_soon =
        state.reported_before && now - state.last_refresh_sent < options_.min_early_refresh_gap;
    if (state.in_flight_request != 0 || too_soon) {
      flush_queue_[kept++] = flush_queue_[i];
      continue;
    }
    state.queued_for_flush = false;
    start_refresh(env, bucket, state);
    if (!state.refresh_scheduled) schedule_refresh(env, state, options_.refresh_interval);
  }
  flush_queue_.resize(kept);
}

void GacClient::schedule_refresh(sim::Env& env, BucketState& state, sim::Duration delay) {
  if (state.refresh_scheduled) env.cancel_timer(state.refresh_timer);
  const int64_t spread = delay.ns * options_.refresh_jitter_percent / 100;
  const int64_t jitter = spread == 0 ? 0 : env.random().uniform_int(-spread, spread);
  state.refresh_timer =
      env.set_timer(sim::Duration(delay.ns + jitter), kTimerCookieBase | state.index);
  state.refresh_scheduled = true;
}

uint32_t GacClient::pick_server(GacBucketId bucket, sim::SimTime local_now) const {
  const std::vector<GacServerId> list = ring_->preference_list(bucket);
  const GacServerId owner = ring_->owner(bucket, [&](GacServerId server) {
    auto down = down_until_.find(server.value);
    return down != down_until_.end() && down->second > local_now;
  });
  if (owner.valid()) return owner.value;
  // Every server is believed down: probe the one whose probation ends first.
  uint32_t best = list.front().value;
  for (GacServerId server : list) {
    if (down_until_.at(server.value) < down_until_.at(best)) best = server.value;
  }
  return best;
}

void GacClient::start_refresh(sim::Env& env, GacBucketId bucket, BucketState& state) {
  if (state.in_flight_request != 0) return;
  state.attempts_this_refresh = 0;
  send_attempt(env, bucket, state);
}

void GacClient::send_attempt(sim::Env& env, GacBucketId bucket, BucketState& state) {
  const sim::SimTime now = env.local_now();
  const uint32_t server = pick_server(bucket, now);
  auto request = std::make_shared<GacTokenRequest>();
  request->bucket = bucket;
  request->router = router_;
  request->request_id = next_request_id_++;
  DYN_ASSERT(request->request_id < kTimeoutCookieBit);
  request->admitted_milli_units = state.admitted_since_report;
  request->throttled_milli_units = state.throttled_since_report;
  request->report_interval = now - state.report_started;
  request->held_milli_units = held_milli_units(bucket, now);
  // The counts travel with this attempt; a lost one leaves the server with the older estimate.
  state.admitted_since_report = 0;
  state.throttled_since_report = 0;
  state.report_started = now;
  state.reported_before = true;
  state.refresh_wanted = false;
  state.last_refresh_sent = now;
  state.in_flight_request = request->request_id;
  ++state.attempts_this_refresh;
  state.sent.push_back(SentRequest{request->request_id, now, server});
  if (state.sent.size() > options_.max_remembered_requests_per_bucket) {
    state.sent.erase(state.sent.begin());
  }
  in_flight_[request->request_id] = bucket;
  ++stats_.requests_sent;
  if (server != ring_->preference_list(bucket).front().value) ++stats_.failovers;
  env.set_timer(options_.attempt_timeout,
                kTimerCookieBase | kTimeoutCookieBit | request->request_id);
  const uint64_t digest = gac_request_digest(*request);
  env.send(ring_->address(GacServerId(server)),
           sim::Message{static_cast<uint32_t>(GacMessageType::kTokenRequest), kRequestSizeBytes,
                        digest, std::move(request)});
}

void GacClient::credit(GacBucketId bucket, BucketState& state, const GacTokenGrant& grant,
                       sim::SimTime expiry) {
  state.share_milli_units_per_second = grant.share_milli_units_per_second;
  state.last_grant_milli_units = grant.amount_milli_units;
  ++stats_.grants_credited;
  if (grant.amount_milli_units > 0) {
    state.grants.push_back(HeldGrant{grant.amount_milli_units, expiry});
    if (state.grants.size() > options_.max_grants_per_bucket) {
      // The oldest grant expires first; dropping it only ever loses tokens.
      auto oldest = std::min_element(
          state.grants.begin(), state.grants.end(),
          [](const HeldGrant& a, const HeldGrant& b) { return a.expiry < b.expiry; });
      state.grants.erase(oldest);
    }
  }
  if (observer_ != nullptr) {
    observer_->on_grant_credited(router_, bucket, grant.server_nonce, grant.grant_id,
                                 grant.amount_milli_units);
  }
}

bool GacClient::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  (void)from;
  if (message.type != static_cast<uint32_t>(GacMessageType::kTokenGrant)) return false;
  const auto* grant = dynamic_cast<const GacTokenGrant*>(message.body.get());
  DYN_ASSERT_MSG(grant != nullptr, "a GAC grant without its body");
  auto found = buckets_.find(grant->bucket);
  if (grant->router != router_ || found == buckets_.end()) {
    ++stats_.duplicate_or_unknown_answers;
    return true;
  }
  BucketState& state = found->second;
  // Each attempt is credited at most once: its record leaves `sent` with its first answer, so a
  // duplicate, or a second answer to one attempt, finds nothing.
  auto sent = std::find_if(state.sent.begin(), state.sent.end(), [&](const SentRequest& record) {
    return record.request_id == grant->request_id;
  });
  if (sent == state.sent.end()) {
    ++stats_.duplicate_or_unknown_answers;
    if (options_.plant_credit_duplicate_answers && grant->status == GacGrantStatus::kOk) {
      credit(grant->bucket, state, *grant, env.local_now() + grant->lifetime);
    }
    return true;
  }
  const sim::SimTime sent_local = sent->sent_local;
  state.sent.erase(sent);
  const sim::SimTime now = env.local_now();
  if (state.in_flight_request == grant->request_id) {
    state.in_flight_request = 0;
    in_flight_.erase(grant->request_id);
    // Any answer, even one without tokens, shows GAC reachable.
    state.unreachable = false;
  }
  if (grant->status != GacGrantStatus::kOk) return true;
  // Tokens live `lifetime` from when we asked: never longer than the server meant, whatever the
  // answer's delay. A late answer (its attempt timed out) still carries tokens the server
  // counted, so it is credited while they live.
  const sim::SimTime expiry = sent_local + grant->lifetime;
  if (expiry <= now) {
    ++stats_.expired_answers;
    return true;
  }
  credit(grant->bucket, state, *grant, expiry);
  return true;
}

bool GacClient::on_timer(sim::Env& env, uint64_t cookie) {
  if (cookie < kTimerCookieBase || cookie >= kTimerCookieEnd) return false;
  const uint64_t id = cookie & kCookieIdMask;
  const sim::SimTime now = env.local_now();
  if ((cookie & kTimeoutCookieBit) != 0) {
    auto found = in_flight_.find(id);
    if (found == in_flight_.end()) return true;  // answered in time
    const GacBucketId bucket = found->second;
    in_flight_.erase(found);
    BucketState& state = buckets_.at(bucket);
    if (state.in_flight_request != id) return true;
    ++stats_.attempt_timeouts;
    state.in_flight_request = 0;
    auto sent = std::find_if(state.sent.begin(), state.sent.end(),
                             [&](const SentRequest& record) { return record.request_id == id; });
    if (sent != state.sent.end()) down_until_[sent->server] = now + options_.down_probation;
    const size_t attempts =
        std::max<size_t>(ring_->server_count(), options_.min_attempts_per_refresh);
    if (state.attempts_this_refresh < attempts) {
      send_attempt(env, bucket, state);
      return true;
    }
    // No server answered this refresh: static stability until one does.
    if (!state.unreachable) {
      state.unreachable = true;
      state.unreachable_since = now;
      state.fallback_milli_units = 0;
      state.fallback_refilled = now;
    }
    return true;
  }
  DYN_ASSERT(id < bucket_by_index_.size());
  const GacBucketId bucket = bucket_by_index_[id];
  BucketState& state = buckets_.at(bucket);
  state.refresh_scheduled = false;
  if (now - state.last_used > options_.idle_stop) {
    // Idle: stop asking. The next use asks at once (flush) and restarts the cycle.
    want_refresh(state);
    return true;
  }
  start_refresh(env, bucket, state);
  schedule_refresh(env, state, options_.refresh_interval);
  return true;
}

// ---------------------------------------------------------------------------------------------
// GacServerProcess

GacServerProcess::GacServerProcess(GacServerProcessOptions options)
    : options_(std::move(options)), server_(options_.server, &capacities_, this) {
  DYN_ASSERT(options_.read_capacity_units >= 1 && options_.write_capacity_units >= 1);
  DYN_ASSERT(options_.allocation_request_retry.ns > 0);
  capacities_.capacity_units_per_second[GacBucketId{options_.table, CapacityKind::kRead}] =
      options_.read_capacity_units;
  capacities_.capacity_units_per_second[GacBucketId{options_.table, CapacityKind::kWrite}] =
      options_.write_capacity_units;
}

void GacServerProcess::on_start(sim::Env& env) {
  server_.start(env);
  incarnation_ = env.random().next_u64();
  if (options_.capacity_controller.has_value()) {
    awaiting_update_ = true;
    send_allocation_request(env);
  }
}

void GacServerProcess::send_allocation_request(sim::Env& env) {
  AllocationRequest request;
  request.node = env.self();
  request.incarnation = incarnation_;
  env.send(*options_.capacity_controller, make_message(request));
  env.set_timer(options_.allocation_request_retry, kRequestRetryCookie);
}

void GacServerProcess::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  if (server_.on_message(env, from, message)) {
    report_counters(env);
    return;
  }
  if (message.type != static_cast<uint32_t>(CapacityMessageType::kAllocationUpdate)) return;
  if (!options_.capacity_controller.has_value() || from != *options_.capacity_controller) return;
  const auto* update = dynamic_cast<const AllocationUpdate*>(message.body.get());
  DYN_ASSERT_MSG(update != nullptr, "an AllocationUpdate message without its body");
  awaiting_update_ = false;
  const AllocationVersion held{version_epoch_, version_number_};
  if (update->version > held) {
    version_epoch_ = update->version.epoch;
    version_number_ = update->version.number;
    // A capacity of zero would refuse every request as an unknown bucket: at least one unit.
    capacities_.capacity_units_per_second[GacBucketId{options_.table, CapacityKind::kRead}] =
        static_cast<uint64_t>(std::max<int64_t>(1, update->capacity.read_units_per_second));
    capacities_.capacity_units_per_second[GacBucketId{options_.table, CapacityKind::kWrite}] =
        static_cast<uint64_t>(std::max<int64_t>(1, update->capacity.write_units_per_second));
    env.metrics().add("gac.capacity_updates", 1);
  }
  AllocationAck ack;
  ack.node = env.self();
  ack.version = AllocationVersion{version_epoch_, version_number_};
  env.send(from, make_message(ack));
}

void GacServerProcess::on_timer(sim::Env& env, uint64_t cookie) {
  if (server_.on_timer(env, cookie)) return;
  DYN_ASSERT(cookie == kRequestRetryCookie);
  if (awaiting_update_) send_allocation_request(env);
}

void GacServerProcess::on_vend(const GacVendRecord& record) {
  if (record.bucket.kind == CapacityKind::kRead) {
    vended_read_milli_units_ += record.amount_milli_units;
  } else {
    vended_write_milli_units_ += record.amount_milli_units;
  }
  if (options_.observer != nullptr) options_.observer->on_vend(record);
}

void GacServerProcess::report_counters(sim::Env& env) {
  const GacServer::Stats& stats = server_.stats();
  const auto add = [&env](std::string_view name, uint64_t now, uint64_t& reported) {
    if (now == reported) return;
    env.metrics().add(name, static_cast<int64_t>(now - reported));
    reported = now;
  };
  add("gac.token_requests", stats.requests, reported_.requests);
  add("gac.grants", stats.grants, reported_.grants);
  add("gac.duplicate_requests", stats.duplicate_requests, reported_.duplicate_requests);
  add("gac.stale_requests", stats.stale_requests, reported_.stale_requests);
  add("gac.unknown_bucket", stats.unknown_bucket, reported_.unknown_bucket);
  add("gac.overloaded", stats.overloaded, reported_.overloaded);
  add("gac.granted_milli_units.read", vended_read_milli_units_, reported_read_milli_units_);
  add("gac.granted_milli_units.write", vended_write_milli_units_, reported_write_milli_units_);
}

}  // namespace dynasim::model
