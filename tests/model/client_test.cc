// The direct client against fake replicas that answer scripted statuses: retries and where they
// go, full-jitter backoff bounds, leader hints, timeouts, max_attempts, dropping late answers, and
// what the observer is told. The planted bug (accepting late answers) shows the once-only test
// can fail.
#include "model/client.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>
#include <span>
#include <vector>

#include "sim/world.h"

namespace dynasim::model {
namespace {

// What a fake replica does with the next request. Without a scripted action it answers kOk.
struct Action {
  StorageStatus status = StorageStatus::kOk;
  std::optional<sim::Address> hint;
  sim::Duration delay{0};               // answer after this long (on the replica's clock)
  bool drop = false;                    // never answer
  std::optional<GroupMembers> members;  // where the group is now, sent with the answer
};

Action answer(StorageStatus status) {
  Action action;
  action.status = status;
  return action;
}
Action hint_to(sim::Address leader) {
  Action action = answer(StorageStatus::kNotLeader);
  action.hint = leader;
  return action;
}
Action delayed(sim::Duration delay) {
  Action action;
  action.delay = delay;
  return action;
}
Action dropped() {
  Action action;
  action.drop = true;
  return action;
}
Action with_members(Action action, uint64_t epoch, std::vector<sim::Address> replicas) {
  action.members = GroupMembers{epoch, std::move(replicas)};
  return action;
}

struct ReceivedRequest {
  uint64_t request_id = 0;
  StorageOp op = StorageOp::kGet;
  ReadConsistency consistency = ReadConsistency::kStrong;
  uint32_t size_bytes = 0;
  uint64_t digest = 0;
  sim::SimTime true_time;
  uint64_t known_epoch = 0;
};

// A replica's script and journal; lives in the test, outside the process (which a power-off
// would destroy).
struct ReplicaScript {
  std::deque<Action> actions;
  std::optional<Action> always;  // when set, every request gets this
  std::vector<ReceivedRequest> received;
  std::map<PrimaryKey, Item>* items = nullptr;  // shared by the group: a perfect register
};

class FakeReplica final : public sim::Process {
 public:
  FakeReplica(ReplicaScript* script, const sim::Simulation* simulation)
      : script_(script), simulation_(simulation) {}
  void on_start(sim::Env&) override {}
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    ASSERT_EQ(message.type, static_cast<uint32_t>(StorageMessageType::kRequest));
    const auto& request = dynamic_cast<const StorageRequest&>(*message.body);
    script_->received.push_back(ReceivedRequest{request.request_id, request.op, request.consistency,
                                                message.size_bytes, message.digest,
                                                simulation_->now(), request.known_epoch});
    Action action;
    if (script_->always.has_value()) {
      action = *script_->always;
    } else if (!script_->actions.empty()) {
      action = script_->actions.front();
      script_->actions.pop_front();
    }
    if (action.drop) return;
    auto response = std::make_shared<StorageResponse>();
    response->group = request.group;
    response->request_id = request.request_id;
    response->status = action.status;
    response->leader_hint = action.hint;
    response->members = action.members;
    if (action.status == StorageStatus::kOk) {
      if (request.op == StorageOp::kPut) (*script_->items)[request.key] = request.item;
      if (request.op == StorageOp::kDelete) script_->items->erase(request.key);
      if (request.op == StorageOp::kGet) {
        auto found = script_->items->find(request.key);
        if (found == script_->items->end()) {
          response->status = StorageStatus::kNotFound;
        } else {
          response->item = found->second;
        }
      }
    }
    sim::Message answer{static_cast<uint32_t>(StorageMessageType::kResponse), 100,
                        request.request_id, std::move(response)};
    if (action.delay.ns == 0) {
      env.send(from, std::move(answer));
      return;
    }
    delayed_.emplace(next_cookie_, std::make_pair(from, std::move(answer)));
    env.set_timer(action.delay, next_cookie_++);
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    auto it = delayed_.find(cookie);
    ASSERT_NE(it, delayed_.end());
    env.send(it->second.first, std::move(it->second.second));
    delayed_.erase(it);
  }

 private:
  ReplicaScript* script_;
  const sim::Simulation* simulation_;
  std::map<uint64_t, std::pair<sim::Address, sim::Message>> delayed_;
  uint64_t next_cookie_ = 1;
};

// What the observer saw, stamped with true time.
struct ObservedEvent {
  bool start = true;
  uint64_t operation_id = 0;  // starts only
  uint64_t request_id = 0;
  sim::Address replica;  // starts only
  StorageStatus status = StorageStatus::kOk;
  bool timed_out = false;
  sim::SimTime true_time;
};

class RecordingObserver final : public ClientObserver {
 public:
  explicit RecordingObserver(const sim::Simulation* simulation) : simulation_(simulation) {}
  void on_attempt_start(uint64_t, uint64_t operation_id, uint64_t request_id, const ClientRequest&,
                        sim::Address replica) override {
    events.push_back(ObservedEvent{true, operation_id, request_id, replica, StorageStatus::kOk,
                                   false, simulation_->now()});
  }
  void on_attempt_end(uint64_t, uint64_t request_id, StorageStatus status, bool timed_out,
                      const std::optional<Item>&) override {
    events.push_back(
        ObservedEvent{false, 0, request_id, {}, status, timed_out, simulation_->now()});
  }
  std::vector<ObservedEvent> starts() const {
    std::vector<ObservedEvent> out;
    for (const ObservedEvent& event : events) {
      if (event.start) out.push_back(event);
    }
    return out;
  }
  std::vector<ObservedEvent> ends() const {
    std::vector<ObservedEvent> out;
    for (const ObservedEvent& event : events) {
      if (!event.start) out.push_back(event);
    }
    return out;
  }
  // Every started attempt ended exactly once, and nothing ended that did not start.
  bool every_attempt_ended_once() const {
    std::map<uint64_t, int> ends_by_request;
    for (const ObservedEvent& event : events) {
      if (event.start) {
        if (ends_by_request.count(event.request_id) != 0) return false;
        ends_by_request[event.request_id] = 0;
      } else {
        auto it = ends_by_request.find(event.request_id);
        if (it == ends_by_request.end() || ++it->second > 1) return false;
      }
    }
    for (const auto& [request, count] : ends_by_request) {
      if (count != 1) return false;
    }
    return true;
  }
  std::vector<ObservedEvent> events;

 private:
  const sim::Simulation* simulation_;
};

class ClientProcess final : public sim::Process {
 public:
  ClientProcess(ClientOptions options, const Placement* placement, ClientObserver* observer)
      : client_(options, placement, 42, observer) {}
  void on_start(sim::Env& env) override { env_ = &env; }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    EXPECT_TRUE(client_.on_message(env, from, message));
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    EXPECT_TRUE(client_.on_timer(env, cookie));
  }
  uint64_t submit(ClientRequest request) {
    return client_.submit(*env_, std::move(request),
                          [this](const ClientResult& result) { results.push_back(result); });
  }
  uint64_t submit_with(ClientRequest request, DirectClient::Done done) {
    return client_.submit(*env_, std::move(request), std::move(done));
  }
  DirectClient& client() { return client_; }
  const DirectClient::Stats& stats() const { return client_.stats(); }
  size_t outstanding() const { return client_.outstanding(); }
  std::vector<ClientResult> results;

 private:
  DirectClient client_;
  sim::Env* env_ = nullptr;
};

PrimaryKey key(const std::string& name) {
  return PrimaryKey{KeyValue::string(name), std::nullopt};
}

ClientRequest put_request(const std::string& name, uint64_t payload_bytes = 100) {
  ClientRequest request;
  request.op = StorageOp::kPut;
  request.key = key(name);
  request.item = Item(request.key);
  request.item.set("data", Payload{payload_bytes, 1, 77});
  return request;
}

ClientRequest get_request(const std::string& name, ReadConsistency consistency) {
  ClientRequest request;
  request.op = StorageOp::kGet;
  request.consistency = consistency;
  request.key = key(name);
  return request;
}

// Three replica hosts in three AZs and a client host beside replica 1, no clock drift. One
// group owns the whole key space. Spare replicas (4 and 5, in az-b and az-c) are outside the
// placement: healing could move the group there.
constexpr uint32_t kSpareReplicas = 2;
struct Harness {
  explicit Harness(ClientOptions options = {}, uint64_t seed = 1, bool spares = false)
      : simulation(seed), world(simulation, sim::WorldOptions{}), observer(&simulation) {
    std::array<sim::Address, kReplicasPerGroup> replicas;
    for (uint32_t r = 0; r < kReplicasPerGroup; ++r) {
      const std::string az_name = std::string("az-") + static_cast<char>('a' + r);
      const sim::AzId az = world.add_az(az_name);
      const sim::RackId rack = world.add_rack(az, az_name + "/r0");
      const sim::HostId host = world.add_host(rack, az_name + "/storage", sim::HostOptions{});
      replicas[r] = sim::Address{host, kStoragePort};
      scripts[r].items = &items;
      ReplicaScript* script = &scripts[r];
      const sim::Simulation* sim = &simulation;
      world.add_process(host, kStoragePort,
                        [script, sim] { return std::make_unique<FakeReplica>(script, sim); });
    }
    placement = Placement::uniform(1, {replicas});
    for (uint32_t spare = 0; spares && spare < kSpareReplicas; ++spare) {
      const std::string az_name = std::string("az-") + static_cast<char>('b' + spare);
      const sim::HostId host =
          world.add_host(world.find_rack(az_name + "/r0"), az_name + "/spare", sim::HostOptions{});
      spare_addresses[spare] = sim::Address{host, kStoragePort};
      ReplicaScript* script = &scripts[kReplicasPerGroup + spare];
      script->items = &items;
      const sim::Simulation* sim = &simulation;
      world.add_process(host, kStoragePort,
                        [script, sim] { return std::make_unique<FakeReplica>(script, sim); });
    }
    const sim::HostId client_host =
        world.add_host(world.find_rack("az-a/r0"), "az-a/client", sim::HostOptions{});
    client_address = sim::Address{client_host, kClientPort};
    world.add_process(client_host, kClientPort, [this, options] {
      return std::make_unique<ClientProcess>(options, &placement, &observer);
    });
    world.start();
    run_for(sim::milliseconds(1));
  }
  ClientProcess& client() {
    auto* process = dynamic_cast<ClientProcess*>(world.process_at(client_address));
    DYN_ASSERT(process != nullptr);
    return *process;
  }
  // Replicas 1..3 are the placement's; 4 and 5 the spares.
  sim::Address replica(uint32_t number) const {
    return number <= kReplicasPerGroup ? placement.groups[0].replicas[number - 1]
                                       : spare_addresses.at(number - kReplicasPerGroup - 1);
  }
  void run_for(sim::Duration span) { simulation.run_until(simulation.now() + span); }
  // The scripts of the placement's replicas 1..3.
  std::span<ReplicaScript> placed_scripts() { return {scripts.data(), kReplicasPerGroup}; }

  sim::Simulation simulation;
  sim::World world;
  RecordingObserver observer;
  std::map<PrimaryKey, Item> items;
  std::array<ReplicaScript, kReplicasPerGroup + kSpareReplicas> scripts;
  std::array<sim::Address, kSpareReplicas> spare_addresses;
  Placement placement;
  sim::Address client_address;
};

TEST(ClientTest, AnOkAnswerEndsTheOperationAndTheLeaderIsRemembered) {
  Harness h;
  ASSERT_NE(h.client().submit(put_request("k")), 0u);
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kOk);
  EXPECT_EQ(h.client().results[0].attempts, 1u);
  EXPECT_TRUE(h.client().results[0].succeeded());
  // With no leader known, the first strong operation goes round-robin: replica 1 first.
  ASSERT_EQ(h.scripts[0].received.size(), 1u);
  // A strong read goes to the replica that answered, and sees the write.
  h.client().submit(get_request("k", ReadConsistency::kStrong));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 2u);
  EXPECT_EQ(h.client().results[1].status, StorageStatus::kOk);
  ASSERT_TRUE(h.client().results[1].item.has_value());
  EXPECT_EQ(*h.client().results[1].item, h.items.at(key("k")));
  EXPECT_EQ(h.scripts[0].received.size(), 2u);
  // The observer saw start, end, start, end, with the operation ids the client returned.
  ASSERT_EQ(h.observer.events.size(), 4u);
  EXPECT_TRUE(h.observer.every_attempt_ended_once());
  EXPECT_EQ(h.observer.starts()[0].operation_id, 1u);
  EXPECT_EQ(h.observer.starts()[1].operation_id, 2u);
  EXPECT_EQ(h.observer.starts()[0].replica, h.replica(1));
  EXPECT_EQ(h.client().outstanding(), 0u);
}

TEST(ClientTest, RequestsCarryRealisticSizesAndContentDigests) {
  Harness h;
  h.client().submit(put_request("k", 10'000));
  h.client().submit(put_request("k", 20'000));
  h.client().submit(get_request("k", ReadConsistency::kStrong));
  h.run_for(sim::seconds(1));
  // Sent together with no leader known, they went round-robin: one to each replica.
  std::vector<ReceivedRequest> received;
  for (const ReplicaScript& script : h.placed_scripts()) {
    ASSERT_EQ(script.received.size(), 1u);
    received.push_back(script.received[0]);
  }
  EXPECT_GE(received[0].size_bytes, 10'000u);
  EXPECT_LT(received[0].size_bytes, 10'300u);
  EXPECT_GE(received[1].size_bytes, 20'000u);
  EXPECT_LT(received[2].size_bytes, 200u);  // a get carries only the key
  EXPECT_NE(received[0].digest, received[1].digest);
  EXPECT_NE(received[0].digest, 0u);
  EXPECT_NE(received[0].request_id, received[1].request_id);
}

TEST(ClientTest, RetryableStatusesRetryOnAnotherReplicaUntilOneServes) {
  Harness h;
  h.scripts[0].actions = {answer(StorageStatus::kRecovering)};
  h.scripts[1].actions = {answer(StorageStatus::kUnhealthy)};
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(5));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kOk);
  EXPECT_EQ(h.client().results[0].attempts, 3u);
  const auto starts = h.observer.starts();
  ASSERT_EQ(starts.size(), 3u);
  EXPECT_EQ(starts[0].replica, h.replica(1));
  EXPECT_EQ(starts[1].replica, h.replica(2));
  EXPECT_EQ(starts[2].replica, h.replica(3));
  const auto ends = h.observer.ends();
  EXPECT_EQ(ends[0].status, StorageStatus::kRecovering);
  EXPECT_EQ(ends[1].status, StorageStatus::kUnhealthy);
  EXPECT_EQ(ends[2].status, StorageStatus::kOk);
  EXPECT_EQ(h.client().stats().retries_after_backoff, 2u);
}

TEST(ClientTest, BusyAndNotServingRetryTheSameReplicaAfterABackoff) {
  Harness h;
  h.scripts[0].actions = {answer(StorageStatus::kBusy), answer(StorageStatus::kNotServing)};
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(5));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kOk);
  EXPECT_EQ(h.scripts[0].received.size(), 3u);
  EXPECT_TRUE(h.scripts[1].received.empty());
}

TEST(ClientTest, BackoffIsFullJitterBetweenZeroAndTheCappedExponentialCeiling) {
  ClientOptions options;
  options.max_attempts = 8;
  options.backoff_base = sim::milliseconds(10);
  options.backoff_cap = sim::milliseconds(45);
  Harness h(options);
  for (ReplicaScript& script : h.placed_scripts()) {
    script.always = answer(StorageStatus::kBusy);
  }
  constexpr int kOperations = 300;
  for (int i = 0; i < kOperations; ++i) h.client().submit(put_request("k" + std::to_string(i)));
  h.run_for(sim::seconds(60));
  ASSERT_EQ(h.client().results.size(), static_cast<size_t>(kOperations));
  for (const ClientResult& result : h.client().results) {
    EXPECT_EQ(result.status, StorageStatus::kBusy);
    EXPECT_FALSE(result.timed_out);
    EXPECT_EQ(result.attempts, 8u);
  }
  // The gap between an attempt's end and the next attempt's start is the backoff: within
  // [0, min(cap, base * 2^n)] for the n-th retry of the operation.
  std::map<uint64_t, uint64_t> operation_of_request;
  std::map<uint64_t, std::vector<sim::SimTime>> starts_by_operation, ends_by_operation;
  for (const ObservedEvent& event : h.observer.events) {
    if (event.start) {
      operation_of_request[event.request_id] = event.operation_id;
      starts_by_operation[event.operation_id].push_back(event.true_time);
    } else {
      ends_by_operation[operation_of_request.at(event.request_id)].push_back(event.true_time);
    }
  }
  std::vector<int64_t> sum_by_retry(7, 0);
  for (const auto& [operation, starts] : starts_by_operation) {
    const auto& ends = ends_by_operation.at(operation);
    ASSERT_EQ(starts.size(), 8u);
    ASSERT_EQ(ends.size(), 8u);
    for (size_t n = 0; n + 1 < starts.size(); ++n) {
      const int64_t gap_ns = (starts[n + 1] - ends[n]).ns;
      const int64_t ceiling_ns = std::min<int64_t>(45'000'000, 10'000'000LL << n);
      EXPECT_GE(gap_ns, 0);
      EXPECT_LE(gap_ns, ceiling_ns) << "retry " << n;
      sum_by_retry[n] += gap_ns;
    }
  }
  // Full jitter: the mean is half the ceiling (10 ms -> 5 ms; capped 45 ms -> 22.5 ms), give or
  // take sampling error of 300 draws (standard error about 3% of the ceiling).
  for (size_t n = 0; n < sum_by_retry.size(); ++n) {
    const double mean_ns = static_cast<double>(sum_by_retry[n]) / kOperations;
    const double ceiling_ns = static_cast<double>(std::min<int64_t>(45'000'000, 10'000'000LL << n));
    EXPECT_NEAR(mean_ns / ceiling_ns, 0.5, 0.1) << "retry " << n;
  }
}

TEST(ClientTest, ALeaderHintIsFollowedAtOnceAndRemembered) {
  Harness h;
  h.scripts[0].actions = {hint_to(h.replica(3))};
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kOk);
  EXPECT_EQ(h.client().results[0].attempts, 2u);
  const auto starts = h.observer.starts();
  const auto ends = h.observer.ends();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1].replica, h.replica(3));
  EXPECT_EQ(starts[1].true_time, ends[0].true_time);  // no backoff
  EXPECT_EQ(h.client().stats().hints_followed, 1u);
  // The next strong operation goes straight to the hinted leader.
  h.client().submit(put_request("k2"));
  h.run_for(sim::seconds(1));
  EXPECT_EQ(h.scripts[2].received.size(), 2u);
  EXPECT_EQ(h.scripts[0].received.size(), 1u);
}

TEST(ClientTest, NotLeaderWithoutAHintMovesToTheNextReplicaAfterABackoff) {
  ClientOptions options;
  options.backoff_base = sim::milliseconds(100);
  options.backoff_cap = sim::milliseconds(100);
  // With a 100 ms ceiling a zero draw is unlikely; the seed is fixed, so this is deterministic.
  Harness h(options);
  h.scripts[0].actions = {answer(StorageStatus::kNotLeader)};
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].attempts, 2u);
  const auto starts = h.observer.starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1].replica, h.replica(2));
  EXPECT_GT(starts[1].true_time, h.observer.ends()[0].true_time);
}

TEST(ClientTest, ATimeoutRetriesAtTheNextReplicaAndReportsAnUnknownOutcome) {
  ClientOptions options;
  options.attempt_timeout = sim::milliseconds(200);
  Harness h(options);
  h.scripts[0].always = dropped();
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(2));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kOk);
  EXPECT_EQ(h.client().results[0].attempts, 2u);
  const auto starts = h.observer.starts();
  const auto ends = h.observer.ends();
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_TRUE(ends[0].timed_out);
  EXPECT_EQ(ends[0].true_time - starts[0].true_time, sim::milliseconds(200));
  EXPECT_EQ(starts[1].replica, h.replica(2));
  EXPECT_FALSE(ends[1].timed_out);
  EXPECT_EQ(h.client().stats().attempt_timeouts, 1u);
}

TEST(ClientTest, MaxAttemptsStopsWithTheLastStatusOrTimeout) {
  ClientOptions options;
  options.max_attempts = 3;
  options.attempt_timeout = sim::milliseconds(100);
  Harness h(options);
  for (ReplicaScript& script : h.placed_scripts()) {
    script.always = answer(StorageStatus::kRecovering);
  }
  h.client().submit(put_request("a"));
  h.run_for(sim::seconds(5));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kRecovering);
  EXPECT_EQ(h.client().results[0].attempts, 3u);
  EXPECT_FALSE(h.client().results[0].succeeded());
  // Every replica silent: the operation ends timed out after three attempts, one per replica.
  for (ReplicaScript& script : h.placed_scripts()) {
    script.always = dropped();
  }
  h.client().submit(put_request("b"));
  h.run_for(sim::seconds(5));
  ASSERT_EQ(h.client().results.size(), 2u);
  EXPECT_TRUE(h.client().results[1].timed_out);
  EXPECT_EQ(h.client().results[1].attempts, 3u);
  EXPECT_FALSE(h.client().results[1].succeeded());
  EXPECT_EQ(h.observer.starts().size(), 6u);
  EXPECT_TRUE(h.observer.every_attempt_ended_once());
}

TEST(ClientTest, FinalErrorsAreNotRetried) {
  Harness h;
  // Sent together with no leader known, they go round-robin: one to each replica.
  h.scripts[0].actions = {answer(StorageStatus::kValidation)};
  h.scripts[1].actions = {answer(StorageStatus::kConditionFailed)};
  h.scripts[2].actions = {answer(StorageStatus::kValidation)};
  h.client().submit(put_request("a"));
  h.client().submit(put_request("b"));
  h.client().submit(put_request("c"));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 3u);
  // Answers arrive in the order of the links' latencies, not of submission.
  std::multiset<StorageStatus> statuses;
  for (const ClientResult& result : h.client().results) {
    statuses.insert(result.status);
    EXPECT_EQ(result.attempts, 1u);
    EXPECT_EQ(result.succeeded(), result.status == StorageStatus::kConditionFailed);
  }
  EXPECT_EQ(statuses,
            (std::multiset<StorageStatus>{StorageStatus::kValidation, StorageStatus::kValidation,
                                          StorageStatus::kConditionFailed}));
}

// Healing moves replicas: a node that no longer hosts the group (or has not read its directory
// yet after a restart) answers kNoSuchGroup, and the client asks another replica.
TEST(ClientTest, AReplicaWithoutTheGroupSendsTheClientElsewhere) {
  Harness h;
  h.scripts[0].actions = {answer(StorageStatus::kNoSuchGroup)};
  h.client().submit(put_request("a"));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].attempts, 2u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kOk);
}

// Healing moved the group off two of its placed nodes (docs/healing.md, "Clients"). The leader's
// answer names the members of the committed configuration; from then on the client asks those,
// not the placement: eventual reads spread over them, and when the leader goes silent the next
// attempt goes to the next member, not to a node the group left. Without this, a client whose
// placed nodes all lost the group kept asking them (the power-off game day with healing on).
TEST(ClientTest, AnswersThatNameTheGroupsMembersMoveTheClientOffThePlacement) {
  Harness h({}, 1, /*spares=*/true);
  const std::vector<sim::Address> moved = {h.replica(1), h.replica(4), h.replica(5)};
  h.scripts[0].actions = {with_members(answer(StorageStatus::kOk), 3, moved)};
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kOk);
  EXPECT_EQ(h.client().stats().views_learned, 1u);
  EXPECT_EQ(h.client().client().view(GroupId(0)).epoch, 3u);
  EXPECT_EQ(h.client().client().view(GroupId(0)).replicas, moved);
  EXPECT_EQ(h.scripts[0].received[0].known_epoch, 0u);  // the placement is epoch 0

  // Replicas 2 and 3 no longer host the group.
  h.scripts[1].always = answer(StorageStatus::kNoSuchGroup);
  h.scripts[2].always = answer(StorageStatus::kNoSuchGroup);
  for (int i = 0; i < 60; ++i) h.client().submit(get_request("k", ReadConsistency::kEventual));
  h.run_for(sim::seconds(2));
  ASSERT_EQ(h.client().results.size(), 61u);
  for (size_t i = 1; i < h.client().results.size(); ++i) {
    EXPECT_EQ(h.client().results[i].status, StorageStatus::kOk);
    EXPECT_EQ(h.client().results[i].attempts, 1u);
  }
  EXPECT_TRUE(h.scripts[1].received.empty());
  EXPECT_TRUE(h.scripts[2].received.empty());
  ASSERT_GT(h.scripts[3].received.size(), 10u);
  EXPECT_GT(h.scripts[4].received.size(), 10u);
  EXPECT_EQ(h.scripts[3].received.back().known_epoch, 3u);

  // The leader goes silent: after the timeout the write goes to the next member, replica 4.
  h.scripts[0].always = dropped();
  h.client().submit(put_request("k2"));
  h.run_for(sim::seconds(2));
  ASSERT_EQ(h.client().results.size(), 62u);
  EXPECT_EQ(h.client().results.back().status, StorageStatus::kOk);
  EXPECT_EQ(h.client().results.back().attempts, 2u);
  EXPECT_EQ(h.observer.starts().back().replica, h.replica(4));
  EXPECT_TRUE(h.scripts[1].received.empty());
}

// Answers arrive out of order and a lagging replica may report an older configuration: a view
// only moves forward. A newer view that leaves out the remembered leader forgets it as leader.
TEST(ClientTest, AViewOnlyMovesToANewerConfigurationAndDropsALeaderItLeftOut) {
  Harness h({}, 1, /*spares=*/true);
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 1u);
  ASSERT_EQ(h.scripts[0].received.size(), 1u);  // replica 1 answered kOk: the leader
  // Replica 1's next answer says the group moved to 2, 4 and 5 (epoch 5): 1 left it.
  const std::vector<sim::Address> newer = {h.replica(2), h.replica(4), h.replica(5)};
  h.scripts[0].actions = {with_members(answer(StorageStatus::kNotLeader), 5, newer)};
  // Whichever member answers next reports an older configuration (epoch 4).
  for (uint32_t r = 1; r < kReplicasPerGroup + kSpareReplicas; ++r) {
    h.scripts[r].always =
        with_members(answer(StorageStatus::kOk), 4, {h.replica(1), h.replica(2), h.replica(3)});
  }
  h.client().submit(put_request("k2"));
  h.run_for(sim::seconds(2));
  ASSERT_EQ(h.client().results.size(), 2u);
  EXPECT_EQ(h.client().results[1].status, StorageStatus::kOk);
  EXPECT_EQ(h.client().stats().views_learned, 1u);
  EXPECT_EQ(h.client().client().view(GroupId(0)).epoch, 5u);
  EXPECT_EQ(h.client().client().view(GroupId(0)).replicas, newer);
  // Replica 1 was asked once more (it was the leader) and never again: the retry went to a
  // member of the new view.
  EXPECT_EQ(h.scripts[0].received.size(), 2u);
  const auto starts = h.observer.starts();
  EXPECT_NE(std::find(newer.begin(), newer.end(), starts.back().replica), newer.end());
}

// A log replica, or a node the group left, answers an eventual read with kNotLeader and where
// to go: the read follows the hint at once instead of drawing another replica.
TEST(ClientTest, AnEventualReadFollowsAHint) {
  Harness h({}, 1, /*spares=*/true);
  for (ReplicaScript& script : h.placed_scripts()) script.always = hint_to(h.replica(4));
  h.client().submit(get_request("k", ReadConsistency::kEventual));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 1u);
  EXPECT_EQ(h.client().results[0].status, StorageStatus::kNotFound);
  EXPECT_EQ(h.client().results[0].attempts, 2u);
  const auto starts = h.observer.starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1].replica, h.replica(4));
  EXPECT_EQ(starts[1].true_time, h.observer.ends()[0].true_time);  // no backoff
}

// A late answer: replica 1 answers after the attempt timed out. Returns the observer's verdict
// on "every attempt ended exactly once" and the client's result.
struct LateAnswerOutcome {
  bool ended_once = false;
  std::vector<ClientResult> results;
  uint64_t late_dropped = 0;
};
LateAnswerOutcome run_late_answer(bool plant) {
  ClientOptions options;
  options.attempt_timeout = sim::milliseconds(200);
  options.plant_accept_late_answers = plant;
  Harness h(options);
  h.scripts[0].actions = {delayed(sim::milliseconds(300))};
  h.scripts[1].actions = {delayed(sim::milliseconds(400))};
  h.client().submit(put_request("k"));
  h.run_for(sim::seconds(2));
  return LateAnswerOutcome{h.observer.every_attempt_ended_once(), h.client().results,
                           h.client().stats().late_answers_dropped};
}

TEST(ClientTest, ALateAnswerIsDroppedAndEveryAttemptEndsOnce) {
  const LateAnswerOutcome outcome = run_late_answer(false);
  EXPECT_TRUE(outcome.ended_once);
  ASSERT_EQ(outcome.results.size(), 1u);
  // Replica 1's answer came after its timeout; replica 2's too; replica 3 answered in time.
  EXPECT_EQ(outcome.results[0].attempts, 3u);
  EXPECT_EQ(outcome.results[0].status, StorageStatus::kOk);
  EXPECT_EQ(outcome.late_dropped, 2u);
}

TEST(ClientTest, ThePlantedLateAnswerBugIsCaughtByTheOnceOnlyCheck) {
  const LateAnswerOutcome outcome = run_late_answer(true);
  EXPECT_FALSE(outcome.ended_once);
}

TEST(ClientTest, EventualReadsSpreadOverEveryReplica) {
  Harness h;
  for (int i = 0; i < 90; ++i) h.client().submit(get_request("k", ReadConsistency::kEventual));
  h.run_for(sim::seconds(1));
  ASSERT_EQ(h.client().results.size(), 90u);
  for (const ReplicaScript& script : h.placed_scripts()) {
    EXPECT_GT(script.received.size(), 15u);
    for (const ReceivedRequest& request : script.received) {
      EXPECT_EQ(request.consistency, ReadConsistency::kEventual);
    }
  }
  for (const ClientResult& result : h.client().results) {
    EXPECT_EQ(result.status, StorageStatus::kNotFound);
  }
}

TEST(ClientTest, SubmitRefusesBeyondMaxOutstanding) {
  ClientOptions options;
  options.max_outstanding = 2;
  Harness h(options);
  EXPECT_NE(h.client().submit(put_request("a")), 0u);
  EXPECT_NE(h.client().submit(put_request("b")), 0u);
  EXPECT_EQ(h.client().submit(put_request("c")), 0u);
  EXPECT_EQ(h.client().outstanding(), 2u);
  h.run_for(sim::seconds(1));
  EXPECT_EQ(h.client().outstanding(), 0u);
  EXPECT_EQ(h.client().stats().refused_outstanding, 1u);
  EXPECT_NE(h.client().submit(put_request("c")), 0u);
}

TEST(ClientTest, DoneMaySubmitTheNextOperation) {
  Harness h;
  ClientProcess& process = h.client();
  int finished = 0;
  std::function<void(const ClientResult&)> chain = [&](const ClientResult& result) {
    EXPECT_EQ(result.status, StorageStatus::kOk);
    // The finished operation is already out of the table when `done` runs.
    EXPECT_EQ(process.client().outstanding(), 0u);
    if (++finished < 5) {
      EXPECT_NE(process.submit_with(put_request("k"), chain), 0u);
    }
  };
  process.submit_with(put_request("k"), chain);
  h.run_for(sim::seconds(1));
  EXPECT_EQ(finished, 5);
  EXPECT_EQ(h.scripts[0].received.size(), 5u);
}

}  // namespace
}  // namespace dynasim::model
