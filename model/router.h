// The request router: the front door between clients and the storage nodes.
//
// P22 section 2 and 6.6: a request router authenticates a request, finds the storage nodes that
// serve its key by asking the metadata service (MemDS, model/memds.h, through a partition cache,
// model/partition_cache.h) and forwards the request to the right replica: the partition's leader
// for writes and strongly consistent reads, any replica for eventually consistent reads. Routers
// hold no durable state: a restarted router starts with an empty cache.
//
// A client sends a RouterRequest (the StorageRequest's content, without the group: the router
// finds it). The router
// 1. hashes the key to its partition hash the way Placement does (partition_hash of the partition
//    key; a Scan by the start of its hash range),
// 2. resolves the partition through its PartitionCache (constant-work by default, bimodal as an
//    option),
// 3. forwards a StorageRequest, with its own client id and a fresh request id per forward, to the
//    entry's leader hint (writes, strong reads; without a hint, the entry's replicas in turn) or
//    to a replica drawn at random (eventual reads),
// 4. and answers the client with the storage answer (status, item, items, consumed capacity,
//    members...) in a RouterResponse.
//
// What each storage answer does (every forward is one StorageRequest with its own timeout):
// - kNotLeader with a hint: learn_leader, and the next forward goes to the hint at once.
// - kNotLeader without a hint, kNoSuchGroup, kRecovering, kUnhealthy: the entry may be stale
//   (the group moved, or this replica cannot serve): invalidate, resolve again, forward again.
// - Any answer carrying the group's members (a stale epoch): learn_members first.
// - Everything else (kOk, kConditionFailed, kNotFound, kValidation, kBusy, kNotServing,
//   kThrottled): the answer goes back to the client, whose SDK retries after its backoff.
// Definite rejections are retried inside the router at most max_forwards_per_request times; the
// client then gets the last rejection. A forward that gets no answer within forward_timeout has
// an unknown outcome (a write may still commit): the router never sends it again. It answers the
// client with outcome_unknown set, which the client takes like its own attempt's timeout, and
// forgets the request; a late storage answer is dropped. Linearizability rests on this: only the
// client may decide to re-send a request whose outcome it does not know, and it records that as a
// new attempt.
//
// Bounds: at most max_pending_requests requests in flight (beyond: kBusy at once), at most
// max_forwards_per_request forwards each. The cache bounds its own lookups.
//
// Global admission control (P22 section 4.2; model/gac.h, docs/gac.md), when GAC servers are
// listed: the router holds a GacClient with the table's read and write buckets. Each client
// request is charged its capacity estimate (gac_cost_milli_units) once, before it is resolved and
// forwarded; without tokens the router answers kThrottled at once and forwards nothing (the
// client maps it to the capacity mode's throttling error, model/capacity_mode.h). The partition
// buckets at the storage nodes stay as a cap (P22 section 4.2, "defense-in-depth").
//
// The router is a process listening on kRouterPort. Its statistics are also world counters
// ("router.forwards", "router.hits", ..., "router.memds_lookups_sent"), which survive a restart.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "model/gac.h"
#include "model/partition_cache.h"
#include "model/storage_protocol.h"
#include "sim/env.h"

namespace dynasim::model {

inline constexpr uint32_t kRouterPort = 8500;

// Message types on the wire (sim::Message::type): routers own 150-159.
enum class RouterMessageType : uint32_t {
  kRequest = 150,   // RouterRequest: client to router
  kResponse = 151,  // RouterResponse: router to client
};

struct RouterRequest final : sim::MessageBody {
  TableId table{0};
  // Everything but `group` and `known_epoch`, which the router fills per forward. client_id and
  // request_id are the client's: the answer echoes request_id.
  StorageRequest request;
};

struct RouterResponse final : sim::MessageBody {
  // The storage answer, as the storage node gave it (request_id is the client's). When the router
  // answers by itself (kBusy: pending requests full or no partition entry found), it says so here.
  StorageResponse response;
  // The forward got no answer in time: the outcome is unknown, `response.status` means nothing.
  bool outcome_unknown = false;
};

// Checkers watch the router through this hook; it must not change anything.
class RouterObserver {
 public:
  // The router at `router` sent a request for `partition_hash` of `table` to `destination` as a
  // request for `group`.
  virtual void on_forward(sim::Address router, TableId table, uint64_t partition_hash,
                          GroupId group, sim::Address destination) = 0;

 protected:
  ~RouterObserver() = default;
};

struct RouterOptions {
  PartitionCacheOptions cache;
  std::vector<sim::Address> memds_nodes;  // not empty
  // Our assumption: a storage node answers within milliseconds; a forward unanswered for 200 ms
  // is lost, and that is below the SDK's attempt timeout (ClientOptions, 500 ms) so the client
  // hears "unknown" from the router before it gives up on its own.
  sim::Duration forward_timeout = sim::milliseconds(200);
  // Our assumption: one hint and one re-resolution, with room for a second hop during a leader
  // change; more would only delay the client's own backoff.
  uint32_t max_forwards_per_request = 4;
  // Our assumption, like the client's max_outstanding: bounded memory per router.
  uint32_t max_pending_requests = 8192;
  // The client id of the router's forwards (storage nodes build command ids from it).
  uint64_t router_client_id = uint64_t{1} << 40;
  RouterObserver* observer = nullptr;  // may be null

  // Global admission control: the GAC servers, in the order the ring is built from (the same list
  // at every router). Empty: GAC off.
  std::vector<sim::Address> gac_servers;
  GacClientOptions gac_client;
  GacClientObserver* gac_observer = nullptr;  // may be null

  // Planted bug for the router_groups check and the router property test: a forward goes to the
  // replica of the cached entry of the neighbouring partition (the entry after it in hash order,
  // when cached) instead of the partition's own. Never set outside tests.
  bool plant_forward_to_neighbour = false;
};

class RouterProcess final : public sim::Process {
 public:
  // Timer cookies: kTimerCookieBase | forward id (the cache's cookies have their own top byte).
  static constexpr uint64_t kTimerCookieBase = uint64_t{0x53} << 56;

  explicit RouterProcess(RouterOptions options);
  ~RouterProcess() override;

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  const PartitionCache& cache() const { return *cache_; }
  size_t pending_requests() const { return pending_.size(); }

  struct Stats {
    uint64_t requests = 0;            // RouterRequests received
    uint64_t busy_refusals = 0;       // answered kBusy at once (pending full)
    uint64_t forwards = 0;            // StorageRequests sent
    uint64_t resolutions = 0;         // cache resolutions asked
    uint64_t hits = 0;                // of which answered from the cache
    uint64_t misses = 0;              // of which waited for MemDS
    uint64_t resolve_failures = 0;    // the cache found no entry, timed out or was busy
    uint64_t not_leader_retries = 0;  // forwards that followed a kNotLeader hint
    uint64_t re_resolutions = 0;    // an answer invalidated the entry and the router resolved again
    uint64_t forward_timeouts = 0;  // forwards unanswered: answered outcome_unknown
    uint64_t late_answers_dropped = 0;
    uint64_t answers = 0;  // RouterResponses sent
    // GAC (only with gac_servers): requests paid from granted tokens, from the static-stability
    // fallback, and refused for lack of tokens (answered kThrottled without a forward).
    uint64_t gac_admitted = 0;
    uint64_t gac_admitted_fallback = 0;
    uint64_t gac_throttled = 0;
  };
  const Stats& stats() const { return stats_; }
  // MemDS lookups the cache sent (point lookups and download pages).
  uint64_t memds_lookups_sent() const;

  // The capacity GAC charges for a request, in milli units, before the item is known. Writes: a
  // put pays for its new item (1 WCU per KB), a delete or an update the minimum, as the storage
  // leader charges before proposing (the old item is known only at apply). Reads: the router
  // does not know the item's size, so it charges the minimum, an item of up to 4 KB: 1 RCU
  // strong, half eventual (Developer Guide, "Read/write capacity mode"); a query or scan page is
  // charged the same minimum. Our estimate: reads of larger items consume more at the storage
  // node than GAC charged, and the partition buckets cap that.
  static uint64_t gac_cost_milli_units(const StorageRequest& request);

  // The partition hash a request is routed by.
  static uint64_t routing_hash(const StorageRequest& request);

 private:
  struct Pending {
    sim::Address client;
    TableId table{0};
    StorageRequest request;  // the client's
    uint64_t partition_hash = 0;
    uint32_t forwards = 0;
    std::optional<sim::Address> hinted;  // the next forward's destination (a leader hint)
    uint64_t forward_id = 0;             // the forward in flight (0: resolving)
    GroupId group;
    sim::TimerHandle timer;
  };

  void handle_message(sim::Env& env, sim::Address from, const sim::Message& message);
  void handle_timer(sim::Env& env, uint64_t cookie);
  // Every statistic is also a world counter ("router.<name>"), which outlives a restart.
  void count(sim::Env& env, std::string_view counter, uint64_t& stat);
  void report_memds_lookups(sim::Env& env);
  void resolve(sim::Env& env, uint64_t pending_id);
  void on_resolved(sim::Env& env, uint64_t pending_id, const CacheResult& result);
  void forward(sim::Env& env, uint64_t pending_id, const PartitionEntry& entry);
  sim::Address pick_destination(sim::Env& env, Pending& pending, const PartitionEntry& entry);
  void on_storage_response(sim::Env& env, const StorageResponse& response);
  // Ends a request: answers the client and forgets it.
  void answer(sim::Env& env, uint64_t pending_id, const StorageResponse& response,
              bool outcome_unknown);
  void answer_now(sim::Env& env, sim::Address client, uint64_t request_id, StorageStatus status);

  // GAC: true if the request may go on; false if it was answered kThrottled.
  bool admit_by_gac(sim::Env& env, sim::Address client, const RouterRequest& request);

  RouterOptions options_;
  std::unique_ptr<PartitionCache> cache_;
  // GAC (with gac_servers): the ring, and the client made at each start with a router id drawn
  // from the process's stream (a restarted router is a new router to GAC: its request ids start
  // over).
  std::unique_ptr<GacRing> gac_ring_;
  std::unique_ptr<GacClient> gac_;
  sim::Address self_;
  uint64_t next_pending_id_ = 1;
  uint64_t next_forward_id_ = 0;              // drawn at start, so incarnations differ
  std::map<uint64_t, Pending> pending_;       // by pending id
  std::map<uint64_t, uint64_t> forwards_;     // forward id -> pending id
  std::map<uint32_t, uint32_t> round_robin_;  // by group id: next replica index
  uint64_t memds_lookups_reported_ = 0;
  Stats stats_;
};

}  // namespace dynasim::model
