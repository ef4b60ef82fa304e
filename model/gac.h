// Global admission control (GAC): the table-level token service of P22 section 4.2, with its
// server (GacServer), the request-router side (GacClient) and the hash ring that places buckets on
// servers (GacRing). docs/gac.md gives the design, the share rule and the vending bound.
//
// What the paper says (P22 section 4.2) and what we build from it:
// - "The GAC service centrally tracks the total consumption of the table capacity in terms of
//   tokens." A bucket here is one table's read or write capacity (GacBucketId).
// - Each request router keeps a local token bucket, replenished from GAC "at regular intervals
//   (in the order of few seconds)". It holds "several time-limited tokens", deducts per request,
//   and asks for more when tokens run out "because of consumption or expiry". Here: GacClient
//   holds a list of grants (amount, expiry), spends earliest-expiring first, refreshes every
//   refresh_interval and early when its tokens run low or expire.
// - GAC "estimates global consumption" from client-provided information and "vends tokens
//   available for the next time unit to the client's share of overall tokens". Here: each request
//   reports what the router admitted and refused since its previous report; the server keeps each
//   router's demand rate, divides the bucket's capacity max-min fairly over the demands (unused
//   capacity spread evenly), and vends the router's share of the next slots of its time line.
// - State is ephemeral, "computed on the fly from client requests": a restarted server starts
//   empty and rebuilds from the next requests. Each server tracks several independently
//   configured buckets; the servers form an independent hash ring (GacRing).
// - Partition-level token buckets stay as a cap (P22 section 4.2, "defense-in-depth"); they are
//   not part of this file.
// - In game days, GacServerProcess runs a GacServer on its own host and learns the table's
//   capacity from the capacity controller's AllocationUpdates (model/capacity_controller.h);
//   request routers (model/router.h) hold a GacClient.
//
// The paper gives no token lifetime, time unit, share formula or ring size; every such number
// below says "our assumption" and why.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "model/admission.h"
#include "sim/env.h"
#include "sim/ids.h"
#include "sim/message.h"
#include "sim/time.h"

namespace dynasim::model {

using TableId = sim::Id<struct TableTag>;
// A GAC server's position in the configured server list (the ring is built from that list).
using GacServerId = sim::Id<struct GacServerTag>;
// A request router, as GAC knows it. Unique per router process over the run.
using GacRouterId = sim::Id<struct GacRouterTag>;

enum class CapacityKind : uint8_t { kRead = 0, kWrite = 1 };

// One table's read or write capacity: what a GAC bucket meters.
struct GacBucketId {
  TableId table;
  CapacityKind kind = CapacityKind::kRead;
  auto operator<=>(const GacBucketId&) const = default;
  uint64_t stable_key() const {
    return (static_cast<uint64_t>(table.value) << 1) | static_cast<uint64_t>(kind);
  }
};

// Token amounts are milli capacity units, integers (model/admission.h's kMilliUnitsPerUnit): an
// eventually consistent 4 KB read costs 500 (half an RCU, Developer Guide "Read/write capacity
// mode"), and g++ and clang++ agree bit for bit.

inline constexpr uint32_t kGacPort = 7300;  // our assumption: any port no other process uses

// Message types on the wire (sim::Message::type), range 130-139.
enum class GacMessageType : uint32_t {
  kTokenRequest = 130,  // GacTokenRequest, router to server
  kTokenGrant = 131,    // GacTokenGrant, server to router
};

// kTokenRequest: router `router` asks for tokens of `bucket` and reports its demand since its
// previous report. `request_id` is unique per router (every attempt gets a fresh one).
struct GacTokenRequest final : sim::MessageBody {
  GacBucketId bucket;
  GacRouterId router;
  uint64_t request_id = 0;
  uint64_t admitted_milli_units = 0;   // admitted since the previous report
  uint64_t throttled_milli_units = 0;  // refused since the previous report
  sim::Duration report_interval{0};    // the span both counts cover (0: nothing to report yet)
  uint64_t held_milli_units = 0;       // unexpired tokens the router holds at sending
};

enum class GacGrantStatus : uint8_t {
  kOk = 0,
  kUnknownBucket = 1,  // the server has no capacity configured for the bucket
  kOverloaded = 2,     // the server tracks max_buckets or max_routers_per_bucket already
};

// kTokenGrant: the answer to one request. `amount_milli_units` tokens (possibly 0), valid for
// `lifetime` from the moment the router sent the request. `server_nonce` names the server
// incarnation (drawn at start), `grant_id` counts that incarnation's grants; the pair names a
// grant uniquely over the run. `share_milli_units_per_second` is the router's share of the bucket
// at vending time (the rate the router may fall back to while GAC is unreachable).
struct GacTokenGrant final : sim::MessageBody {
  GacBucketId bucket;
  GacRouterId router;
  uint64_t request_id = 0;
  GacGrantStatus status = GacGrantStatus::kOk;
  uint64_t server_nonce = 0;
  uint64_t grant_id = 0;
  uint64_t amount_milli_units = 0;
  sim::Duration lifetime{0};
  uint64_t share_milli_units_per_second = 0;
};

uint64_t gac_request_digest(const GacTokenRequest& request);
uint64_t gac_grant_digest(const GacTokenGrant& grant);

// ---------------------------------------------------------------------------------------------
// The hash ring of GAC servers (P22 section 4.2: "an independent hash ring").
//
// Every server owns `virtual_nodes_per_server` points on a 64-bit ring (splitmix64 of its index
// and the virtual node number: stable across machines and compilers). A bucket hashes to a point;
// its preference list is the distinct servers met walking clockwise from there. The first server
// of the list that is not known to be down owns the bucket, so when a server goes down each of
// its buckets moves to its own next server, spread over the survivors.
class GacRing {
 public:
  // Our assumption: 64 virtual nodes keep each server's share of buckets within a few tens of
  // percent of even for rings of a handful of servers (tested in GacRing.SpreadsBuckets).
  static constexpr uint32_t kDefaultVirtualNodes = 64;
  static constexpr size_t kMaxServers = 1024;

  // REQUIRES: 1 <= servers.size() <= kMaxServers, distinct addresses, virtual_nodes >= 1.
  explicit GacRing(std::vector<sim::Address> servers,
                   uint32_t virtual_nodes_per_server = kDefaultVirtualNodes);

  size_t server_count() const { return servers_.size(); }
  sim::Address address(GacServerId server) const { return servers_.at(server.value); }
  std::optional<GacServerId> server_of(sim::Address address) const;
  // Every server once, in ring order from the bucket's point. The first is the bucket's home.
  std::vector<GacServerId> preference_list(GacBucketId bucket) const;
  // The first server of the preference list for which `is_down` is false; invalid if all are.
  GacServerId owner(GacBucketId bucket, const std::function<bool(GacServerId)>& is_down) const;

  static uint64_t bucket_point(GacBucketId bucket);
  static uint64_t virtual_node_point(GacServerId server, uint32_t virtual_node);

 private:
  std::vector<sim::Address> servers_;
  std::vector<std::pair<uint64_t, uint32_t>> points_;  // (point, server index), sorted
};

// ---------------------------------------------------------------------------------------------
// The configured capacity of each bucket (the control plane's table settings). Not GAC state: a
// server reads it at every request, so a change takes effect at once and survives restarts.
struct GacCapacityTable {
  std::map<GacBucketId, uint64_t> capacity_units_per_second;
  std::optional<uint64_t> capacity(GacBucketId bucket) const {
    auto found = capacity_units_per_second.find(bucket);
    if (found == capacity_units_per_second.end()) return std::nullopt;
    return found->second;
  }
};

struct GacServerOptions {
  // The server's time line is cut into slots of slot_length; a slot holds capacity x slot_length
  // tokens to vend. Our assumption: 500 ms, a quarter of the refresh interval, so a grant's
  // horizon is a few slots and a slot's rounding is small.
  sim::Duration slot_length = sim::milliseconds(500);
  // A grant pays for the slots up to horizon_slots from the current one: "tokens available for the
  // next time unit" (P22 section 4.2). Our assumption: 4 slots = 2 s, one refresh interval.
  uint32_t horizon_slots = 4;
  // Tokens expire this long after the router asked (P22: "time-limited tokens"; no number given).
  // Our assumption: 4 s, twice the horizon, so a router whose refresh is late or lost keeps
  // spending through one more refresh interval.
  sim::Duration token_lifetime = sim::seconds(4);
  // A router not heard from for this long no longer takes a share. Our assumption: 3 refresh
  // intervals and a bit, so one or two lost refreshes do not drop a router.
  sim::Duration router_idle_forget = sim::seconds(7);
  // Housekeeping period: forgets idle routers and buckets, drops past slots.
  sim::Duration housekeeping_interval = sim::seconds(1);
  uint32_t max_buckets = 4096;             // bound on tracked buckets
  uint32_t max_routers_per_bucket = 1024;  // bound on tracked routers per bucket

  // Planted bug for GacProperty.PlantedIgnoreOutstandingGrantsBreaksTheVendingBound: vend the
  // router's full share for the whole horizon on every request, ignoring what the slots already
  // gave out. Never set outside tests.
  bool plant_ignore_outstanding_grants = false;
};

// One grant as the server vended it, for checkers.
struct GacVendRecord {
  sim::Address server;
  uint64_t server_nonce = 0;
  GacBucketId bucket;
  GacRouterId router;
  uint64_t request_id = 0;
  uint64_t grant_id = 0;
  uint64_t amount_milli_units = 0;
  int64_t first_slot = 0;  // the slots of the server's time line the grant drew from
  int64_t last_slot = 0;   // (first_slot > last_slot: none)
  sim::Duration lifetime{0};
  uint64_t capacity_units_per_second = 0;
};

class GacServerObserver {
 public:
  virtual void on_vend(const GacVendRecord& record) = 0;

 protected:
  ~GacServerObserver() = default;
};

// The GAC server component. A process hosting it forwards its messages and timers and calls
// start() from on_start(). Its state is volatile by design: nothing is written to disk.
class GacServer {
 public:
  static constexpr uint64_t kTimerCookieBase = uint64_t{0x3B} << 56;
  static constexpr uint64_t kTimerCookieEnd = uint64_t{0x3C} << 56;

  // REQUIRES: capacities outlives the server. `observer` may be null.
  GacServer(GacServerOptions options, const GacCapacityTable* capacities,
            GacServerObserver* observer);

  // Draws the incarnation nonce and starts housekeeping.
  void start(sim::Env& env);
  // True if the message was a GAC request (consumed).
  bool on_message(sim::Env& env, sim::Address from, const sim::Message& message);
  // True if the cookie was the server's (consumed).
  bool on_timer(sim::Env& env, uint64_t cookie);

  uint64_t nonce() const { return nonce_; }
  size_t tracked_buckets() const { return buckets_.size(); }
  size_t tracked_routers(GacBucketId bucket) const;

  struct Stats {
    uint64_t requests = 0;
    uint64_t grants = 0;
    uint64_t duplicate_requests = 0;  // answered again with the same grant
    uint64_t stale_requests = 0;      // older than one already answered: dropped
    uint64_t unknown_bucket = 0;
    uint64_t overloaded = 0;
    uint64_t vended_milli_units = 0;
  };
  const Stats& stats() const { return stats_; }

  // Max-min fair shares (water-filling) of `capacity` over `demands`, then what is left spread
  // evenly: share_i = min(demand_i, level) + spare / n (the first spare % n get one more).
  // All in milli-units per second. Exposed for tests.
  static std::vector<uint64_t> fair_shares(uint64_t capacity, const std::vector<uint64_t>& demands);

 private:
  struct RouterState {
    uint64_t demand_milli_units_per_second = 0;
    sim::SimTime last_seen;
    int64_t next_slot = INT64_MIN;  // the first slot this router has not been paid for
    uint64_t last_request_id = 0;
    std::optional<GacTokenGrant> last_grant;  // for a duplicated request
  };
  struct BucketState {
    std::map<uint64_t, RouterState> routers;  // by router id
    std::map<int64_t, uint64_t> slots;        // slot -> milli-units left to vend
  };
  int64_t slot_of(sim::SimTime local_now) const;
  void handle_request(sim::Env& env, sim::Address from, const GacTokenRequest& request);
  void send_grant(sim::Env& env, sim::Address to, const GacTokenGrant& grant);
  void housekeeping(sim::SimTime local_now);

  GacServerOptions options_;
  const GacCapacityTable* capacities_;
  GacServerObserver* observer_;
  uint64_t nonce_ = 0;
  uint64_t next_grant_id_ = 1;
  std::map<GacBucketId, BucketState> buckets_;
  Stats stats_;
};

// ---------------------------------------------------------------------------------------------
// The GAC server as a process of the world (game days): a GacServer on kGacPort metering one
// table's read and write buckets.
//
// Capacity changes: the server subscribes to the table's capacity controller
// (model/capacity_controller.h) the way a storage node does. At start, and every
// allocation_request_retry until an update arrives, it sends an AllocationRequest; every
// AllocationUpdate (message 122) whose version is newer than the one held sets the read and write
// buckets to the update's table capacity (TableCapacity), and every update is acknowledged with
// the newest version held (AllocationAck, 123), so the controller's resends stop. The controller
// lists the GAC servers among the nodes it updates. Until the first update (and with no
// controller at all) the server meters the capacity it was configured with. It sends no
// consumption reports: storage nodes measure consumption, GAC only vends.

struct GacServerProcessOptions {
  GacServerOptions server;
  TableId table{0};
  // The table's capacity before any update: read and write capacity units per second.
  uint64_t read_capacity_units = 0;
  uint64_t write_capacity_units = 0;
  // The capacity controller to subscribe to (none: the configured capacity all run long).
  std::optional<sim::Address> capacity_controller;
  // Our assumption, like CapacityAgent::Options::request_retry: ask again every second.
  sim::Duration allocation_request_retry = sim::seconds(1);
  GacServerObserver* observer = nullptr;  // may be null
};

class GacServerProcess final : public sim::Process, private GacServerObserver {
 public:
  // The subscription's retry timer; outside GacServer's cookie range.
  static constexpr uint64_t kRequestRetryCookie = uint64_t{0x3D} << 56;

  explicit GacServerProcess(GacServerProcessOptions options);

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  const GacServer& server() const { return server_; }
  const GacCapacityTable& capacities() const { return capacities_; }

 private:
  void send_allocation_request(sim::Env& env);
  // Counts the vend per kind, then hands it to options_.observer.
  void on_vend(const GacVendRecord& record) override;
  // Every statistic of the server is also a world counter ("gac.<name>"), which outlives a
  // restart; this adds what grew since the last call.
  void report_counters(sim::Env& env);

  GacServerProcessOptions options_;
  GacCapacityTable capacities_;
  GacServer server_;
  uint64_t incarnation_ = 0;
  bool awaiting_update_ = false;
  uint64_t version_epoch_ = 0;  // the newest AllocationVersion applied ({0, 0}: none)
  uint64_t version_number_ = 0;
  GacServer::Stats reported_;  // what report_counters added to the world counters so far
  uint64_t vended_read_milli_units_ = 0;
  uint64_t vended_write_milli_units_ = 0;
  uint64_t reported_read_milli_units_ = 0;
  uint64_t reported_write_milli_units_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The router side.

enum class GacAdmission : uint8_t {
  kAdmitted = 0,          // paid from tokens GAC granted
  kAdmittedFallback = 1,  // paid from the static-stability fallback (GAC unreachable)
  kThrottled = 2,
};

struct GacClientOptions {
  // P22 section 4.2: "at regular intervals (in the order of few seconds)". Our assumption: 2 s.
  sim::Duration refresh_interval = sim::seconds(2);
  // Each refresh is moved by up to this share of the interval, drawn from the Env's stream, so
  // routers started together do not ask together. Our assumption.
  uint32_t refresh_jitter_percent = 10;
  // Ask early when the unexpired tokens held fall below this share of the last grant. Our
  // assumption: a quarter leaves about one slot's worth to spend while the answer travels.
  uint32_t low_water_percent = 25;
  // No two early refreshes of one bucket within this span (bounds the request rate a hot router
  // sends GAC). Our assumption.
  sim::Duration min_early_refresh_gap = sim::milliseconds(250);
  // One attempt waits this long for its answer, then the next server of the ring is asked. Our
  // assumption: GAC is in-region (cross-AZ round trips are about 1 ms), so 250 ms is a dead server.
  sim::Duration attempt_timeout = sim::milliseconds(250);
  // One refresh tries every server of the ring once, and at least this many times in all (a ring
  // of one server is asked again), before the router takes GAC for unreachable. Our assumption.
  uint32_t min_attempts_per_refresh = 2;
  // A server that timed out is skipped for this long, then tried again first. Our assumption.
  sim::Duration down_probation = sim::seconds(10);
  // A bucket not used for this long stops refreshing (and reporting). Our assumption.
  sim::Duration idle_stop = sim::seconds(30);
  // Static stability (P22 section 6.5 for IAM and KMS: cached results are used "for
  // pre-determined extended period" when the dependency is down): while GAC is unreachable and the
  // granted tokens are spent or expired, the router keeps admitting at its last granted share for
  // at most this long, then throttles. Our assumption: 60 s; 0 disables the fallback.
  sim::Duration static_stability_period = sim::seconds(60);
  uint32_t max_buckets = 1024;                       // bound on buckets one router tracks
  uint32_t max_grants_per_bucket = 16;               // bound on held grants (oldest dropped beyond)
  uint32_t max_remembered_requests_per_bucket = 16;  // for late answers

  // Planted bug for GacProperty.PlantedSpendExpiredTokensBreaksGrantedVersusAdmitted: spend
  // tokens after their expiry. Never set outside tests.
  bool plant_spend_expired_tokens = false;
  // Planted bug for GacProperty.PlantedCreditDuplicateAnswersBreaksGrantedVersusAdmitted: credit
  // an answer whose attempt was already answered (a duplicate). Never set outside tests.
  bool plant_credit_duplicate_answers = false;
};

class GacClientObserver {
 public:
  virtual void on_admission(GacRouterId router, GacBucketId bucket, uint64_t cost_milli_units,
                            GacAdmission admission) = 0;
  // A grant was credited (once per grant).
  virtual void on_grant_credited(GacRouterId router, GacBucketId bucket, uint64_t server_nonce,
                                 uint64_t grant_id, uint64_t amount_milli_units) {
    (void)router;
    (void)bucket;
    (void)server_nonce;
    (void)grant_id;
    (void)amount_milli_units;
  }

 protected:
  ~GacClientObserver() = default;
};

class GacClient {
 public:
  static constexpr uint64_t kTimerCookieBase = uint64_t{0x3A} << 56;
  static constexpr uint64_t kTimerCookieEnd = uint64_t{0x3B} << 56;

  // REQUIRES: ring outlives the client. `observer` may be null.
  GacClient(GacClientOptions options, const GacRing* ring, GacRouterId router,
            GacClientObserver* observer);
  GacClient(const GacClient&) = delete;
  GacClient& operator=(const GacClient&) = delete;

  // Decides one request's admission at `local_now` without sending anything: admitted from held
  // tokens (earliest expiry first), from the fallback while GAC is unreachable, or throttled.
  // A bucket seen for the first time starts tracking here; flush() then asks GAC for it.
  GacAdmission try_consume(GacBucketId bucket, uint64_t cost_milli_units, sim::SimTime local_now);
  // try_consume at env.local_now(), then flush(env).
  GacAdmission try_consume(sim::Env& env, GacBucketId bucket, uint64_t cost_milli_units);
  // Sends the refreshes that are due early (new buckets, tokens low or expired).
  void flush(sim::Env& env);

  // True if the message was a GAC grant (consumed), including a late or duplicated one dropped.
  bool on_message(sim::Env& env, sim::Address from, const sim::Message& message);
  // True if the cookie was the client's (consumed).
  bool on_timer(sim::Env& env, uint64_t cookie);

  GacRouterId router() const { return router_; }
  // Unexpired tokens held for the bucket at local_now.
  uint64_t held_milli_units(GacBucketId bucket, sim::SimTime local_now) const;
  // True while the bucket's last refresh got no answer from any server.
  bool unreachable(GacBucketId bucket) const;

  struct Stats {
    uint64_t admitted = 0;
    uint64_t admitted_fallback = 0;
    uint64_t throttled = 0;
    uint64_t requests_sent = 0;
    uint64_t attempt_timeouts = 0;
    uint64_t failovers = 0;  // attempts sent to a server other than the bucket's home
    uint64_t grants_credited = 0;
    uint64_t duplicate_or_unknown_answers = 0;
    uint64_t expired_answers = 0;  // arrived after their lifetime: dropped
    uint64_t expired_milli_units = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct HeldGrant {
    uint64_t remaining_milli_units = 0;
    sim::SimTime expiry;  // local
  };
  struct SentRequest {
    uint64_t request_id = 0;
    sim::SimTime sent_local;
    uint32_t server = 0;
  };
  struct BucketState {
    uint32_t index = 0;  // names the bucket's refresh timer
    std::vector<HeldGrant> grants;
    uint64_t last_grant_milli_units = 0;
    uint64_t share_milli_units_per_second = 0;
    uint64_t admitted_since_report = 0;
    uint64_t throttled_since_report = 0;
    sim::SimTime report_started;
    bool reported_before = false;
    sim::SimTime last_used;
    sim::SimTime last_refresh_sent;
    bool refresh_wanted = false;
    bool queued_for_flush = false;
    bool refresh_scheduled = false;
    sim::TimerHandle refresh_timer;
    // The attempt in flight (request_id 0: none) and how many servers this refresh has tried.
    uint64_t in_flight_request = 0;
    uint32_t attempts_this_refresh = 0;
    std::vector<SentRequest> sent;  // recent attempts, for late answers
    // Static stability.
    bool unreachable = false;
    sim::SimTime unreachable_since;
    uint64_t fallback_milli_units = 0;
    sim::SimTime fallback_refilled;
  };

  BucketState& bucket_state(GacBucketId bucket, sim::SimTime local_now);
  void want_refresh(BucketState& state);
  void drop_expired(BucketState& state, sim::SimTime local_now);
  bool spend_fallback(BucketState& state, uint64_t cost, sim::SimTime local_now);
  void start_refresh(sim::Env& env, GacBucketId bucket, BucketState& state);
  void send_attempt(sim::Env& env, GacBucketId bucket, BucketState& state);
  void schedule_refresh(sim::Env& env, BucketState& state, sim::Duration delay);
  uint32_t pick_server(GacBucketId bucket, sim::SimTime local_now) const;
  void credit(GacBucketId bucket, BucketState& state, const GacTokenGrant& grant,
              sim::SimTime expiry);

  GacClientOptions options_;
  const GacRing* ring_;
  GacRouterId router_;
  GacClientObserver* observer_;
  uint64_t next_request_id_ = 1;
  std::map<GacBucketId, BucketState> buckets_;
  std::vector<GacBucketId> bucket_by_index_;
  std::vector<uint32_t> flush_queue_;          // indices of buckets that want a refresh, each once
  std::map<uint64_t, GacBucketId> in_flight_;  // request id -> bucket (attempt timeouts)
  std::map<uint32_t, sim::SimTime> down_until_;  // server index -> local time
  Stats stats_;
};

}  // namespace dynasim::model
