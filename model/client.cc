#include "model/client.h"

#include <algorithm>
#include <utility>

#include "model/codec.h"
#include "model/router.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {

// Timer cookies: kTimerCookieBase | kind | id, where id is a request id (attempt timeout) or an
// operation id (backoff). Ids stay far below 2^61.
constexpr uint64_t kBackoffCookieBit = uint64_t{1} << 61;
constexpr uint64_t kCookieIdMask = kBackoffCookieBit - 1;

// Our assumption: a request's fixed part on the wire (framing, ids, signed headers compressed).
constexpr uint32_t kRequestHeaderBytes = 64;

// The status a timed-out attempt carries: no answer came, so nothing was said; kBusy is the
// retryable, service-side status closest to that.
constexpr StorageStatus kNoAnswerStatus = StorageStatus::kBusy;

uint64_t attribute_bytes(const std::string& name, const AttributeValue& value) {
  return name.size() + value_size_bytes(value);
}

uint64_t key_bytes(const PrimaryKey& key) {
  return key.partition.size_bytes() + (key.sort.has_value() ? key.sort->size_bytes() : 0);
}

bool is_final(StorageStatus status) {
  switch (status) {
    case StorageStatus::kOk:
    case StorageStatus::kConditionFailed:
    case StorageStatus::kNotFound:
    case StorageStatus::kValidation:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct DirectClient::Operation {
  uint64_t id = 0;
  ClientRequest request;
  Done done;
  GroupId group;
  uint32_t attempts = 0;
  uint32_t backoffs = 0;  // retries after a backoff so far: the exponent of the next ceiling
  // The attempt in flight (0: none, the operation is waiting out a backoff).
  uint64_t request_id = 0;
  sim::Address replica;
  sim::TimerHandle timer;
  // Set when the previous attempt decided where the next goes; used once.
  std::optional<sim::Address> preferred;
  // `preferred` is a replica's hint: followed by eventual reads too.
  bool preferred_is_hint = false;
  // kQuery, kScan: the pages read so far, gathered into the result.
  ClientResult gathered;
};

namespace {

bool eventual_read(const ClientRequest& request) {
  return !is_write(request.op) && request.consistency == ReadConsistency::kEventual;
}

}  // namespace

DirectClient::DirectClient(ClientOptions options, const Placement* placement, uint64_t client_id,
                           ClientObserver* observer)
    : options_(options), placement_(placement), client_id_(client_id), observer_(observer) {
  DYN_ASSERT(placement_ != nullptr);
  DYN_ASSERT(options_.max_attempts >= 1);
  DYN_ASSERT(options_.attempt_timeout.ns > 0);
  DYN_ASSERT(options_.backoff_base.ns >= 0 && options_.backoff_cap >= options_.backoff_base);
}

DirectClient::~DirectClient() = default;

uint32_t DirectClient::request_size_bytes(const StorageRequest& request) {
  uint64_t bytes = kRequestHeaderBytes + key_bytes(request.key);
  if (request.op == StorageOp::kPut) {
    bytes += key_bytes(request.item.key());
    for (const auto& [name, value] : request.item.attributes()) {
      bytes += attribute_bytes(name, value);
    }
  }
  if (request.condition.kind != Condition::Kind::kNone) {
    bytes += attribute_bytes(request.condition.attribute, request.condition.value);
  }
  // Expressions travel as their encodings (our stand-in for their text and placeholders).
  if (!request.condition_expression.is_true()) {
    bytes += request.condition_expression.encode().size();
  }
  if (request.op == StorageOp::kUpdate) bytes += request.update.encode().size();
  if (request.op == StorageOp::kQuery || request.op == StorageOp::kScan) {
    bytes += 16 + (request.page.filter.is_true() ? 0 : request.page.filter.encode().size());
    if (request.page.exclusive_start_key) bytes += key_bytes(*request.page.exclusive_start_key);
  }
  return static_cast<uint32_t>(std::min<uint64_t>(bytes, UINT32_MAX));
}

uint64_t DirectClient::request_digest(const StorageRequest& request) {
  uint64_t digest = sim::splitmix64(request.client_id);
  digest = sim::splitmix64(digest ^ request.request_id);
  digest = sim::splitmix64(digest ^ request.group.value);
  digest = sim::splitmix64(digest ^ (static_cast<uint64_t>(request.op) << 8 |
                                     static_cast<uint64_t>(request.consistency)));
  digest = sim::splitmix64(digest ^ Item(request.key).checksum());
  if (request.op == StorageOp::kPut) digest = sim::splitmix64(digest ^ request.item.checksum());
  if (request.condition.kind != Condition::Kind::kNone) {
    Item holder(request.key);
    holder.set(request.condition.attribute, request.condition.value);
    digest =
        sim::splitmix64(digest ^ holder.checksum() ^ static_cast<uint64_t>(request.condition.kind));
  }
  // Epoch 0 (the static placement) leaves the digest as it was before views existed.
  if (request.known_epoch != 0) digest = sim::splitmix64(digest ^ request.known_epoch);
  // The data-plane fields, folded in when set, so the register operations digest as before.
  const auto fold_bytes = [&digest](const std::vector<uint8_t>& bytes) {
    digest = sim::splitmix64(digest ^ sim::hash_bytes(0, bytes.data(), bytes.size()));
  };
  if (!request.condition_expression.is_true()) fold_bytes(request.condition_expression.encode());
  if (request.op == StorageOp::kUpdate) fold_bytes(request.update.encode());
  if (request.return_values != ReturnValues::kNone || request.key_name_bytes != 0) {
    digest = sim::splitmix64(
        digest ^ (static_cast<uint64_t>(request.return_values) << 32 | request.key_name_bytes));
  }
  if (request.op == StorageOp::kQuery) {
    std::vector<uint8_t> bytes;
    request.query.key_condition.encode_to(bytes);
    bytes.push_back(request.query.scan_forward ? 1 : 0);
    fold_bytes(bytes);
  }
  if (request.op == StorageOp::kScan) {
    digest = sim::splitmix64(digest ^ request.scan.hash_begin);
    digest = sim::splitmix64(digest ^ request.scan.hash_end);
  }
  if (request.op == StorageOp::kQuery || request.op == StorageOp::kScan) {
    std::vector<uint8_t> bytes = request.page.filter.encode();
    codec::put_u32(bytes, request.page.limit);
    if (request.page.exclusive_start_key) {
      expression_codec::put_primary_key(bytes, *request.page.exclusive_start_key);
    }
    fold_bytes(bytes);
  }
  return digest;
}

DirectClient::GroupView DirectClient::view(GroupId group) const {
  auto found = views_.find(group.value);
  if (found != views_.end()) return found->second;
  const GroupPlacement& placed = placement_->group(group);
  return GroupView{0, std::vector<sim::Address>(placed.replicas.begin(), placed.replicas.end())};
}

DirectClient::GroupView& DirectClient::mutable_view(GroupId group) {
  auto found = views_.find(group.value);
  if (found != views_.end()) return found->second;
  const GroupPlacement& placed = placement_->group(group);
  GroupView& fresh = views_[group.value];
  fresh.replicas.assign(placed.replicas.begin(), placed.replicas.end());
  return fresh;
}

// A replica told us where the group's full voters are as of a committed configuration: take it
// if it is newer than what we know (answers arrive out of order, and a lagging replica may still
// report an older one).
void DirectClient::learn_members(GroupId group, const GroupMembers& members) {
  DYN_ASSERT_MSG(members.replicas.size() <= kMaxViewReplicas,
                 "a group's members name more replicas than a configuration can hold");
  GroupView& known = mutable_view(group);
  if (members.epoch <= known.epoch || members.replicas.empty()) return;
  known.epoch = members.epoch;
  known.replicas = members.replicas;
  ++stats_.views_learned;
  // A leader that is no longer a full voter cannot lead: stop sending strong requests there.
  auto hint = leader_hints_.find(group.value);
  if (hint != leader_hints_.end() && std::find(known.replicas.begin(), known.replicas.end(),
                                               hint->second) == known.replicas.end()) {
    leader_hints_.erase(hint);
  }
}

uint64_t DirectClient::submit(sim::Env& env, ClientRequest request, Done done) {
  if (operations_.size() >= options_.max_outstanding) {
    ++stats_.refused_outstanding;
    return 0;
  }
  DYN_ASSERT(next_operation_id_ < kBackoffCookieBit);
  auto operation = std::make_unique<Operation>();
  operation->id = next_operation_id_++;
  operation->group = request.op == StorageOp::kScan ? request.scan_group
                                                    : placement_->group_for(request.key).group;
  operation->request = std::move(request);
  operation->done = std::move(done);
  const uint64_t id = operation->id;
  operations_.emplace(id, std::move(operation));
  ++stats_.operations;
  send_attempt(env, id);
  return id;
}

sim::Address DirectClient::current_router(sim::Env& env) {
  if (!router_index_) {
    router_index_ = 0;
    for (size_t i = 0; i < options_.routers.size(); ++i) {
      if (options_.routers[i].az == env.az()) {
        router_index_ = i;
        break;
      }
    }
  }
  return options_.routers[*router_index_].address;
}

sim::Address DirectClient::pick_replica(sim::Env& env, Operation& operation) {
  if (!options_.routers.empty()) {
    operation.preferred.reset();
    operation.preferred_is_hint = false;
    return current_router(env);
  }
  const GroupView& group = mutable_view(operation.group);
  const std::optional<sim::Address> preferred = std::exchange(operation.preferred, std::nullopt);
  const bool preferred_is_hint = std::exchange(operation.preferred_is_hint, false);
  const uint64_t replicas = group.replicas.size();
  if (eventual_read(operation.request)) {
    // A replica that holds no items of the group named one that does.
    if (preferred.has_value() && preferred_is_hint) return *preferred;
    // Any replica may serve an eventual read; spreading them is what the SDK's endpoint does.
    return group.replicas[env.random().uniform_u64(replicas)];
  }
  if (preferred.has_value()) return *preferred;
  auto hint = leader_hints_.find(operation.group.value);
  if (hint != leader_hints_.end()) return hint->second;
  uint32_t& next = round_robin_[operation.group.value];
  const sim::Address chosen = group.replicas[next % replicas];
  next = static_cast<uint32_t>((next + 1) % replicas);
  return chosen;
}

// The replica stopped looking like the leader: forget it as a hint and send the next attempt of
// this operation to the replica after it in the group.
void DirectClient::move_off(Operation& operation, sim::Address replica) {
  auto hint = leader_hints_.find(operation.group.value);
  if (hint != leader_hints_.end() && hint->second == replica) leader_hints_.erase(hint);
  const GroupView& group = mutable_view(operation.group);
  operation.preferred_is_hint = false;
  for (size_t r = 0; r < group.replicas.size(); ++r) {
    if (group.replicas[r] == replica) {
      operation.preferred = group.replicas[(r + 1) % group.replicas.size()];
      return;
    }
  }
  operation.preferred.reset();  // a hinted address outside the view: start over
}

void DirectClient::send_attempt(sim::Env& env, uint64_t operation_id) {
  Operation& operation = *operations_.at(operation_id);
  DYN_ASSERT(operation.request_id == 0);
  DYN_ASSERT(operation.attempts < options_.max_attempts);
  DYN_ASSERT(next_request_id_ < kBackoffCookieBit);
  ++operation.attempts;
  ++stats_.attempts;
  operation.request_id = next_request_id_++;
  operation.replica = pick_replica(env, operation);

  auto body = std::make_shared<StorageRequest>();
  body->group = operation.group;
  body->client_id = client_id_;
  body->request_id = operation.request_id;
  body->op = operation.request.op;
  body->consistency = operation.request.consistency;
  body->key = operation.request.key;
  body->item = operation.request.item;
  body->condition = operation.request.condition;
  body->condition_expression = operation.request.condition_expression;
  body->update = operation.request.update;
  body->return_values = operation.request.return_values;
  body->key_name_bytes = operation.request.key_name_bytes;
  body->query = operation.request.query;
  body->scan = operation.request.scan;
  body->page = operation.request.page;
  body->known_epoch = mutable_view(operation.group).epoch;
  if (!options_.routers.empty()) {
    send_routed(env, operation, std::move(body));
    return;
  }
  sim::Message message;
  message.type = static_cast<uint32_t>(StorageMessageType::kRequest);
  message.size_bytes = request_size_bytes(*body);
  message.digest = request_digest(*body);
  message.body = std::move(body);

  launch(env, operation, std::move(message));
}

// Records the attempt, tells the observer, arms its timeout and sends it.
void DirectClient::launch(sim::Env& env, Operation& operation, sim::Message message) {
  attempts_in_flight_.emplace(operation.request_id, operation.id);
  if (observer_ != nullptr && operation.request.register_shaped()) {
    observer_->on_attempt_start(client_id_, operation.id, operation.request_id, operation.request,
                                operation.replica);
  } else if (observer_ != nullptr) {
    observer_->on_api_attempt_start(client_id_, operation.id, operation.request_id,
                                    operation.request, operation.replica);
  }
  operation.timer =
      env.set_timer(options_.attempt_timeout, kTimerCookieBase | operation.request_id);
  env.send(operation.replica, std::move(message));
}

void DirectClient::send_routed(sim::Env& env, Operation& operation,
                               std::shared_ptr<StorageRequest> request) {
  // The router finds the group and its epoch: the request carries neither.
  request->group = GroupId();
  request->known_epoch = 0;
  auto body = std::make_shared<RouterRequest>();
  body->table = options_.table;
  body->request = std::move(*request);
  sim::Message message;
  message.type = static_cast<uint32_t>(RouterMessageType::kRequest);
  // The table id rides in the header next to the storage request's fields (8 bytes).
  message.size_bytes = request_size_bytes(body->request) + 8;
  message.digest = sim::splitmix64(request_digest(body->request) ^ options_.table.value);
  message.body = std::move(body);
  launch(env, operation, std::move(message));
}

void DirectClient::end_attempt(Operation& operation, StorageStatus status, bool timed_out,
                               const std::optional<Item>& item, const StorageResponse* response) {
  DYN_ASSERT(operation.request_id != 0);
  attempts_in_flight_.erase(operation.request_id);
  const uint64_t request_id = operation.request_id;
  operation.request_id = 0;
  if (observer_ != nullptr && operation.request.register_shaped()) {
    observer_->on_attempt_end(client_id_, request_id, status, timed_out, item);
  } else if (observer_ != nullptr) {
    observer_->on_api_attempt_end(client_id_, request_id, timed_out ? nullptr : response);
  }
}

sim::Duration DirectClient::backoff_delay(sim::Env& env, uint32_t retry_number) const {
  // Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015): uniform in
  // [0, min(cap, base * 2^n)]. Doubling stops at the cap, so no shift overflows.
  sim::Duration ceiling = options_.backoff_base;
  for (uint32_t i = 0; i < retry_number && ceiling < options_.backoff_cap; ++i) {
    ceiling = ceiling * 2;
  }
  ceiling = std::min(ceiling, options_.backoff_cap);
  return sim::Duration(env.random().uniform_int(0, ceiling.ns));
}

void DirectClient::retry_or_finish(sim::Env& env, Operation& operation, ClientResult last,
                                   NextReplica next, bool immediately) {
  if (next == NextReplica::kOther) {
    move_off(operation, operation.replica);
  } else {
    operation.preferred = operation.replica;
    operation.preferred_is_hint = next == NextReplica::kHinted;
  }
  if (operation.attempts >= options_.max_attempts) {
    finish(operation.id, std::move(last));
    return;
  }
  if (immediately) {
    send_attempt(env, operation.id);
    return;
  }
  ++stats_.retries_after_backoff;
  const sim::Duration delay = backoff_delay(env, operation.backoffs++);
  env.set_timer(delay, kTimerCookieBase | kBackoffCookieBit | operation.id);
}

bool DirectClient::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  (void)from;
  if (message.type == static_cast<uint32_t>(RouterMessageType::kResponse)) {
    const auto* routed = dynamic_cast<const RouterResponse*>(message.body.get());
    DYN_ASSERT_MSG(routed != nullptr, "a router kResponse message without a RouterResponse body");
    if (!routed->outcome_unknown) {
      on_response(env, routed->response);
      return true;
    }
    ++stats_.router_unknown_answers;
    if (attempts_in_flight_.count(routed->response.request_id) == 0) {
      ++stats_.late_answers_dropped;
      return true;
    }
    // The router works; only the outcome is unknown: stay with it.
    on_no_answer(env, routed->response.request_id, /*move_to_next_router=*/false);
    return true;
  }
  if (message.type != static_cast<uint32_t>(StorageMessageType::kResponse)) return false;
  const auto* response = dynamic_cast<const StorageResponse*>(message.body.get());
  DYN_ASSERT_MSG(response != nullptr, "a kResponse message without a StorageResponse body");
  on_response(env, *response);
  return true;
}

void DirectClient::on_response(sim::Env& env, const StorageResponse& response_ref) {
  const StorageResponse* response = &response_ref;
  // Where the group is now holds whether or not the attempt is still waiting for this answer.
  if (response->members.has_value()) learn_members(response->group, *response->members);
  auto in_flight = attempts_in_flight_.find(response->request_id);
  if (in_flight == attempts_in_flight_.end()) {
    // A late answer (its attempt timed out) or a duplicate: its attempt already ended.
    ++stats_.late_answers_dropped;
    if (!options_.plant_accept_late_answers || observer_ == nullptr) return;
    // The planted bug: report a second end for an attempt that already ended.
    observer_->on_attempt_end(client_id_, response->request_id, response->status, false,
                              response->item);
    return;
  }
  Operation& operation = *operations_.at(in_flight->second);
  env.cancel_timer(operation.timer);
  const StorageStatus status = response->status;
  const bool strong = !eventual_read(operation.request);
  end_attempt(operation, status, /*timed_out=*/false, response->item, response);

  ClientResult result;
  result.status = status;
  result.item = response->item;
  result.attempts = operation.attempts;
  result.consumed = response->consumed;
  if (is_final(status)) {
    if (strong && (status == StorageStatus::kOk || status == StorageStatus::kConditionFailed ||
                   status == StorageStatus::kNotFound)) {
      // Only a leader inside its lease answers these to a strong request: remember it.
      leader_hints_[operation.group.value] = operation.replica;
    }
    if (status == StorageStatus::kOk &&
        (operation.request.op == StorageOp::kQuery || operation.request.op == StorageOp::kScan)) {
      take_page(env, operation, *response);
      return;
    }
    finish(operation.id, std::move(result));
    return;
  }
  switch (status) {
    case StorageStatus::kNotLeader:
      if (response->leader_hint.has_value()) {
        // Follow the hint at once: the replica named the leader it knows.
        ++stats_.hints_followed;
        leader_hints_[operation.group.value] = *response->leader_hint;
        const sim::Address hinted = *response->leader_hint;
        operation.replica = hinted;  // so retry_or_finish keeps it as the preferred replica
        retry_or_finish(env, operation, std::move(result), NextReplica::kHinted,
                        /*immediately=*/true);
      } else {
        retry_or_finish(env, operation, std::move(result), NextReplica::kOther,
                        /*immediately=*/false);
      }
      break;
    case StorageStatus::kNotServing:
    case StorageStatus::kBusy:
    case StorageStatus::kThrottled:
      // The replica believes it leads (it is waiting out an old lease, or its queue is full),
      // or its partition is over its throughput (kThrottled: the backoff lets its buckets
      // refill); the others would only send us back to it. Eventual reads draw afresh anyway.
      retry_or_finish(env, operation, std::move(result), NextReplica::kSame,
                      /*immediately=*/false);
      break;
    case StorageStatus::kRecovering:
    case StorageStatus::kUnhealthy:
    case StorageStatus::kNoSuchGroup:
      // This replica cannot serve the key for a while (or no longer hosts the group, or its
      // node is still reading its directory after a restart): another one may.
      retry_or_finish(env, operation, std::move(result), NextReplica::kOther,
                      /*immediately=*/false);
      break;
    default:
      DYN_ASSERT_MSG(false, "a status that is neither final nor retryable");
  }
}

bool DirectClient::on_timer(sim::Env& env, uint64_t cookie) {
  if (cookie < kTimerCookieBase) return false;
  const uint64_t id = cookie & kCookieIdMask;
  if ((cookie & kBackoffCookieBit) != 0) {
    // A backoff ended: the operation exists (only finish() removes it, and it is waiting).
    auto operation = operations_.find(id);
    DYN_ASSERT(operation != operations_.end() && operation->second->request_id == 0);
    send_attempt(env, id);
    return true;
  }
  if (attempts_in_flight_.count(id) == 0) return true;  // answered; cancel raced the fire
  on_no_answer(env, id, /*move_to_next_router=*/true);
  return true;
}

void DirectClient::on_no_answer(sim::Env& env, uint64_t request_id, bool move_to_next_router) {
  auto in_flight = attempts_in_flight_.find(request_id);
  DYN_ASSERT(in_flight != attempts_in_flight_.end());
  Operation& operation = *operations_.at(in_flight->second);
  if (move_to_next_router) {
    ++stats_.attempt_timeouts;
  } else {
    env.cancel_timer(operation.timer);
  }
  if (move_to_next_router && !options_.routers.empty() && options_.routers.size() > 1) {
    // The router may be down or cut off: the next one in the list.
    ++stats_.router_switches;
    router_index_ = (router_index_.value_or(0) + 1) % options_.routers.size();
  }
  end_attempt(operation, kNoAnswerStatus, /*timed_out=*/true, std::nullopt, nullptr);
  ClientResult result;
  result.status = kNoAnswerStatus;
  result.timed_out = true;
  result.attempts = operation.attempts;
  // No answer: the replica may be down or cut off; try the next one.
  retry_or_finish(env, operation, std::move(result), NextReplica::kOther, /*immediately=*/false);
}

// A page came back: gather it, then read the next one after its LastEvaluatedKey or finish.
void DirectClient::take_page(sim::Env& env, Operation& operation, const StorageResponse& response) {
  ClientResult& gathered = operation.gathered;
  gathered.status = StorageStatus::kOk;
  gathered.attempts = operation.attempts;
  gathered.consumed.half_units += response.consumed.half_units;
  gathered.items.insert(gathered.items.end(), response.items.begin(), response.items.end());
  gathered.scanned_count += response.scanned_count;
  gathered.last_evaluated_key = response.last_evaluated_key;
  ++gathered.pages;
  if (!response.last_evaluated_key || gathered.pages >= operation.request.max_pages) {
    finish(operation.id, gathered);
    return;
  }
  // The next page is a new request with its own attempts, at the replica that answered.
  operation.request.page.exclusive_start_key = response.last_evaluated_key;
  operation.attempts = 0;
  operation.backoffs = 0;
  operation.preferred = operation.replica;
  operation.preferred_is_hint = false;
  send_attempt(env, operation.id);
}

void DirectClient::finish(uint64_t operation_id, ClientResult result) {
  auto it = operations_.find(operation_id);
  DYN_ASSERT(it != operations_.end());
  DYN_ASSERT(it->second->request_id == 0);
  // A read of several pages that failed part-way still reports the pages it read.
  const ClientResult& gathered = it->second->gathered;
  if (gathered.pages > 0 && result.pages == 0) {
    result.items = gathered.items;
    result.scanned_count = gathered.scanned_count;
    result.pages = gathered.pages;
    result.last_evaluated_key = gathered.last_evaluated_key;
    result.consumed.half_units += gathered.consumed.half_units;
  }
  const bool register_shaped = it->second->request.register_shaped();
  // Out of the table before `done` runs: it may submit the next operation.
  Done done = std::move(it->second->done);
  operations_.erase(it);
  if (observer_ != nullptr && register_shaped) {
    observer_->on_operation_end(client_id_, operation_id, result);
  } else if (observer_ != nullptr) {
    observer_->on_api_operation_end(client_id_, operation_id, result);
  }
  if (done) done(result);
}

}  // namespace dynasim::model
