// The direct client: sends PutItem, GetItem (strong or eventual), DeleteItem, UpdateItem,
// conditional writes, Query (one partition key, one page or several following LastEvaluatedKey)
// and Scan (one group's range of partition hashes) straight to a partition's replication group,
// with retries and timeouts the way an AWS SDK does them (a bounded number of attempts, exponential
// backoff with full jitter, a timeout per attempt).
//
// It is a component, not a process: a process that owns one forwards its messages and timers.
// Strong reads and writes go to the replica last known to lead the group (a kNotLeader answer
// with a hint moves there at once); eventual reads to any replica. The routers of a later layer
// replace how the group and its leader are found, not these semantics.
//
// Where a group's replicas are: the client keeps a view of each group, first the static
// placement (configuration epoch 0). Every request carries the view's epoch, and a replica of a
// group that has committed a later configuration answers with its full voters
// (StorageResponse::members); the client then takes those as the group's replicas. Healing
// moves replicas to other nodes, and without this a client would keep asking nodes that no
// longer host the group, led only by their one-hop hints (docs/healing.md, "Clients").
//
// What each answer does (an attempt is one request with a fresh request id and its own timeout):
// - kOk, kConditionFailed, kNotFound, kValidation: the operation ends. A strong success also
//   records the replica as the group's leader.
// - kNotLeader with a hint: the hint becomes the group's leader and the next attempt goes there
//   at once (an eventual read too: the replica asked holds no items of the group, being a log
//   replica or a node the group left). Without a hint: the next replica in the view, after a
//   backoff.
// - kNotServing, kBusy, kThrottled: the same replica after a backoff (it believes it leads, or
//   its partition is over its throughput; the others would only send us back). kRecovering,
//   kUnhealthy, kNoSuchGroup: the next replica after a backoff.
// - no answer within attempt_timeout: the next replica after a backoff, and the replica is no
//   longer taken for the leader.
// Backoff is full jitter: uniform in [0, min(backoff_cap, backoff_base * 2^n)] before the n-th
// backed-off retry (n from 0), drawn from the Env's random stream. After max_attempts the
// operation ends with the last attempt's status. Eventual reads draw a replica of the view at
// random for every attempt that follows no hint.
//
// Every attempt is reported to the observer (invocation, then its outcome or its timeout), so a
// history checker sees exactly what a real client could see: an attempt that timed out has an
// unknown outcome and may still take effect later. The end of each whole operation is reported
// too, for latency measured over all of its attempts.
//
// Register-shaped operations (GetItem, PutItem and DeleteItem with at most the simple Condition
// and no ReturnValues) go to on_attempt_start / on_attempt_end / on_operation_end, which the
// history checkers (gameday/history.h, gameday/linearizability.h) read as operations on a
// register per key named by its "ver" value. Everything else (UpdateItem, Query, Scan, writes
// with a condition expression or ReturnValues) goes to the on_api_* hooks instead, which those
// checkers do not read as register operations: an UpdateItem's effect depends on the item it
// lands on (ADD, SET a = a + 1), and a Query or Scan reads many keys at once, neither of which the
// register model expresses. A workload that checks linearizability must not send them to the keys
// it checks (the game day's sends its UpdateItems to counter keys of their own).
//
// Query and Scan with max_pages > 1 read page after page as one operation, each page starting
// after the last one's LastEvaluatedKey, with max_attempts per page.
//
// Through routers (ClientOptions::routers not empty; model/router.h, P22 section 2: clients reach
// DynamoDB through request routers, never the storage nodes): every attempt is a RouterRequest to
// one router, which finds the group and its leader, follows not-leader hints and answers with the
// storage answer. The client starts at the first router in its own AZ (the first listed if none
// is), keeps it while it answers, and moves to the next router in the list after an attempt
// timeout. A router answer marked outcome_unknown (its forward got no answer) ends the attempt
// like the client's own timeout (outcome unknown, reported timed out) but keeps the router. The
// other statuses are handled as above, except that every retry goes to the current router. The
// observer's `replica` is then the router's address.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "model/storage_protocol.h"
#include "sim/env.h"

namespace dynasim::model {

using TableId = sim::Id<struct TableTag>;

// A router the client may send to, and its AZ (a client prefers its own AZ's routers).
struct RouterEndpoint {
  sim::Address address;
  sim::AzId az{0};
};

struct ClientOptions {
  // AWS SDK standard retry mode: 3 attempts by default; DynamoDB clients commonly raise it (the
  // SDK for Java 1.x used 10 for DynamoDB). Base delay and cap are our assumptions close to the
  // SDKs' (25 ms base for DynamoDB in SDK 1.x; 20 s cap in the standard mode).
  uint32_t max_attempts = 5;
  sim::Duration attempt_timeout = sim::milliseconds(500);
  sim::Duration backoff_base = sim::milliseconds(25);
  sim::Duration backoff_cap = sim::seconds(2);
  uint32_t max_outstanding = 4096;  // operations in flight; beyond, submit() refuses
  // Empty: attempts go straight to the replicas. Otherwise every attempt goes to a router.
  std::vector<RouterEndpoint> routers;
  TableId table{0};  // the table routers look the key up in

  // Planted bug for the client's tests: accept an answer that arrives after its attempt timed
  // out (a second end of one attempt, which would corrupt any history). Never set outside tests.
  bool plant_accept_late_answers = false;
};

struct ClientRequest {
  StorageOp op = StorageOp::kGet;
  ReadConsistency consistency = ReadConsistency::kStrong;  // kGet, kQuery, kScan
  PrimaryKey key;       // kQuery: the partition key (no sort key); kScan: unused
  Item item;            // kPut
  Condition condition;  // kPut, kDelete, kUpdate
  // The data-plane fields (StorageRequest's of the same names).
  ConditionExpression condition_expression;          // kPut, kDelete, kUpdate
  UpdateExpression update;                           // kUpdate
  ReturnValues return_values = ReturnValues::kNone;  // kPut, kDelete, kUpdate
  uint32_t key_name_bytes = 0;
  QuerySpec query;         // kQuery
  ScanSpec scan;           // kScan
  PageSpec page;           // kQuery, kScan
  GroupId scan_group;      // kScan: the group whose items are scanned
  uint32_t max_pages = 1;  // kQuery, kScan: pages read, each after the last's LastEvaluatedKey

  // A GetItem, PutItem or DeleteItem with at most the simple condition and no ReturnValues.
  bool register_shaped() const {
    return (op == StorageOp::kGet || op == StorageOp::kPut || op == StorageOp::kDelete) &&
           condition_expression.is_true() && return_values == ReturnValues::kNone;
  }
};

struct ClientResult {
  // The last attempt's answer. kOk, kConditionFailed and kNotFound are successes; anything else
  // is an error the caller sees. `timed_out` means the last attempt got no answer at all.
  StorageStatus status = StorageStatus::kOk;
  bool timed_out = false;
  std::optional<Item> item;
  uint32_t attempts = 0;
  // Summed over the pages read (kQuery, kScan) or the one answer.
  CapacityUnits consumed;
  std::vector<Item> items;  // kQuery, kScan: every page's items, in order
  uint32_t scanned_count = 0;
  uint32_t pages = 0;
  // kQuery, kScan: the last page's LastEvaluatedKey (none: the read is complete).
  std::optional<PrimaryKey> last_evaluated_key;

  // When `timed_out`, `status` carries no answer: it is kBusy (retryable, the service's fault),
  // the nearest status to "no answer" the protocol has.
  bool succeeded() const {
    return !timed_out &&
           (status == StorageStatus::kOk || status == StorageStatus::kConditionFailed ||
            status == StorageStatus::kNotFound);
  }
};

// Hooks for history checkers; times are the observer's to take (it can see true time).
class ClientObserver {
 public:
  // An attempt was sent. `operation_id` is the same for every attempt of one operation.
  virtual void on_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                                const ClientRequest& request, sim::Address replica) = 0;
  // The attempt got an answer (`timed_out` false) or gave up waiting (`timed_out` true: its
  // outcome is unknown; `status` is then kBusy and means nothing). `item` is the item a
  // successful get returned. Every started attempt ends exactly once; an answer that arrives
  // after its attempt timed out is dropped without a call.
  virtual void on_attempt_end(uint64_t client_id, uint64_t request_id, StorageStatus status,
                              bool timed_out, const std::optional<Item>& item) = 0;
  // The operation ended with `result` (its last attempt already ended), just before the
  // caller's `done` runs. Optional: a checker that only needs attempts ignores it.
  virtual void on_operation_end(uint64_t client_id, uint64_t operation_id,
                                const ClientResult& result) {
    (void)client_id;
    (void)operation_id;
    (void)result;
  }

  // The same three for operations that are not register_shaped() (see the header). `response`
  // is null when the attempt timed out. Default: ignored.
  virtual void on_api_attempt_start(uint64_t client_id, uint64_t operation_id, uint64_t request_id,
                                    const ClientRequest& request, sim::Address replica) {
    (void)client_id, (void)operation_id, (void)request_id, (void)request, (void)replica;
  }
  virtual void on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                                  const StorageResponse* response) {
    (void)client_id, (void)request_id, (void)response;
  }
  virtual void on_api_operation_end(uint64_t client_id, uint64_t operation_id,
                                    const ClientResult& result) {
    (void)client_id, (void)operation_id, (void)result;
  }

 protected:
  ~ClientObserver() = default;
};

class DirectClient {
 public:
  using Done = std::function<void(const ClientResult&)>;
  // Timer cookies at or above this value belong to the client; the owner forwards them.
  static constexpr uint64_t kTimerCookieBase = uint64_t{1} << 62;

  // REQUIRES: placement outlives the client. `observer` may be null.
  DirectClient(ClientOptions options, const Placement* placement, uint64_t client_id,
               ClientObserver* observer);
  ~DirectClient();
  DirectClient(const DirectClient&) = delete;
  DirectClient& operator=(const DirectClient&) = delete;

  // Starts an operation; `done` runs once, when it ends. Returns the operation id, or 0 when
  // max_outstanding operations are in flight (nothing was sent).
  uint64_t submit(sim::Env& env, ClientRequest request, Done done);
  // True if the message was a StorageResponse (consumed), including a late or duplicated one
  // that is dropped. Request ids are unique only per client, so a process owns one client.
  bool on_message(sim::Env& env, sim::Address from, const sim::Message& message);
  // True if the cookie was the client's (consumed).
  bool on_timer(sim::Env& env, uint64_t cookie);

  size_t outstanding() const { return operations_.size(); }
  uint64_t client_id() const { return client_id_; }

  struct Stats {
    uint64_t operations = 0;
    uint64_t attempts = 0;
    uint64_t attempt_timeouts = 0;
    uint64_t retries_after_backoff = 0;
    uint64_t hints_followed = 0;
    uint64_t late_answers_dropped = 0;
    uint64_t refused_outstanding = 0;     // submit() calls refused at max_outstanding
    uint64_t views_learned = 0;           // answers whose members replaced a group's view
    uint64_t router_switches = 0;         // moves to the next router after a timeout
    uint64_t router_unknown_answers = 0;  // router answers with an unknown outcome
  };
  const Stats& stats() const { return stats_; }

  // The on-the-wire size of a request (our assumption: a 64-byte header, like an HTTP/2 frame
  // with the SDK's signed headers compressed, plus the key, the item and the condition).
  static uint32_t request_size_bytes(const StorageRequest& request);
  // A digest of a request's content for the trace fingerprint.
  static uint64_t request_digest(const StorageRequest& request);

  // Where the client believes a group's replicas are: the static placement (epoch 0) until an
  // answer carried a later configuration's members.
  struct GroupView {
    uint64_t epoch = 0;
    std::vector<sim::Address> replicas;  // not empty
  };
  GroupView view(GroupId group) const;

 private:
  struct Operation;
  // Where the next attempt of an operation goes after the previous one ended at `replica`:
  // there again, there because a replica named it (kHinted: eventual reads follow it too), or
  // the next replica of the view.
  enum class NextReplica { kSame, kHinted, kOther };
  // A configuration names at most 4 voters (3, and one joining); more is a broken answer.
  static constexpr size_t kMaxViewReplicas = 8;

  GroupView& mutable_view(GroupId group);
  void learn_members(GroupId group, const GroupMembers& members);

  void send_attempt(sim::Env& env, uint64_t operation_id);
  // The attempt in flight ended (answer or timeout): reports it and forgets its request id.
  void end_attempt(Operation& operation, StorageStatus status, bool timed_out,
                   const std::optional<Item>& item, const StorageResponse* response);
  // After a retryable end: retry (at once or after backoff) or give up.
  void retry_or_finish(sim::Env& env, Operation& operation, ClientResult last, NextReplica next,
                       bool immediately);
  sim::Address pick_replica(sim::Env& env, Operation& operation);
  void move_off(Operation& operation, sim::Address replica);
  sim::Duration backoff_delay(sim::Env& env, uint32_t retry_number) const;
  void take_page(sim::Env& env, Operation& operation, const StorageResponse& response);
  void finish(uint64_t operation_id, ClientResult result);
  void on_response(sim::Env& env, const StorageResponse& response);
  // An attempt ended without a known outcome (its timeout, or a router's unknown answer).
  void on_no_answer(sim::Env& env, uint64_t request_id, bool move_to_next_router);

  ClientOptions options_;
  const Placement* placement_;
  uint64_t client_id_;
  ClientObserver* observer_;
  // Through routers: the index in options_.routers of the router attempts go to (chosen at the
  // first attempt: the first in the client's AZ).
  std::optional<size_t> router_index_;
  sim::Address current_router(sim::Env& env);
  void send_routed(sim::Env& env, Operation& operation, std::shared_ptr<StorageRequest> body);
  void launch(sim::Env& env, Operation& operation, sim::Message message);
  uint64_t next_operation_id_ = 1;
  uint64_t next_request_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Operation>> operations_;  // by operation id
  // By group id. Looked up by key only, never iterated, so the unordered containers cannot leak
  // their order into the run.
  std::unordered_map<uint32_t, sim::Address> leader_hints_;
  std::unordered_map<uint32_t, GroupView> views_;  // made when first used
  std::map<uint32_t, uint32_t> round_robin_;                   // by group id: next replica index
  std::map<uint64_t, uint64_t> attempts_in_flight_;            // request id -> operation id
  Stats stats_;
};

}  // namespace dynasim::model
