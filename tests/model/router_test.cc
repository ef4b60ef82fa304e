// The request router (model/router.h) against real MemDS nodes and scripted storage nodes.
//
// The storage nodes here follow a ground truth per group (its members now, the members it had,
// its leader) and answer as real ones do: kNoSuchGroup from a node the group left, kNotLeader
// (with or without a hint) from a member that does not lead, the members when the request's
// epoch is older, and sometimes nothing at all (a lost request). MemDS starts with stale entries
// for some groups. The seeded property test checks, over many random cases:
// - every forward goes, as a request for the group whose range holds the key, to a node that
//   hosts or hosted that group (the router_groups property, gameday/router_checker.h);
// - a forward that got no answer is never followed by another forward of the same client request
//   (an unknown outcome is never re-sent), and the client hears "unknown" for it;
// - every client request is answered exactly once, after at most max_forwards_per_request
//   forwards.
// With plant_forward_to_neighbour the first property fails.
#include "model/router.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/item.h"
#include "model/memds.h"
#include "sim/random.h"
#include "sim/world.h"

namespace dynasim::model {
namespace {

struct GroupTruth {
  uint64_t hash_begin = 0;
  uint64_t hash_end = 0;
  uint64_t epoch = 0;
  std::vector<sim::Address> members;  // full voters now
  std::set<sim::Address> ever;        // every node that hosted the group
  sim::Address leader;
};

struct Truth {
  std::vector<GroupTruth> groups;
  uint32_t drop_per_mille = 0;          // requests a storage node loses
  std::set<uint64_t> dropped_forwards;  // router request ids never answered
};

class ScriptedStorage final : public sim::Process {
 public:
  explicit ScriptedStorage(Truth* truth) : truth_(truth) {}
  void on_start(sim::Env& env) override { (void)env; }
  void on_timer(sim::Env& env, uint64_t cookie) override { (void)env, (void)cookie; }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    if (message.type != static_cast<uint32_t>(StorageMessageType::kRequest)) return;
    const auto& request = dynamic_cast<const StorageRequest&>(*message.body);
    if (env.random().uniform_u64(1000) < truth_->drop_per_mille) {
      truth_->dropped_forwards.insert(request.request_id);
      return;
    }
    auto body = std::make_shared<StorageResponse>();
    body->group = request.group;
    body->request_id = request.request_id;
    const GroupTruth& group = truth_->groups.at(request.group.value);
    const sim::Address self = env.self();
    const bool member =
        std::find(group.members.begin(), group.members.end(), self) != group.members.end();
    if (member && request.known_epoch < group.epoch) {
      body->members = GroupMembers{group.epoch, group.members};
    }
    const bool eventual =
        !is_write(request.op) && request.consistency == ReadConsistency::kEventual;
    if (!member) {
      body->status = StorageStatus::kNoSuchGroup;
    } else if (!eventual && self != group.leader) {
      body->status = StorageStatus::kNotLeader;
      if (env.random().uniform_u64(2) == 0) body->leader_hint = group.leader;
    } else {
      body->status = request.op == StorageOp::kGet ? StorageStatus::kNotFound : StorageStatus::kOk;
    }
    sim::Message reply;
    reply.type = static_cast<uint32_t>(StorageMessageType::kResponse);
    reply.size_bytes = 64;
    reply.digest = request.request_id;
    reply.body = std::move(body);
    env.send(from, std::move(reply));
  }

 private:
  Truth* truth_;
};

// Sends RouterRequests and keeps the answers.
class TestClient final : public sim::Process {
 public:
  void on_start(sim::Env& env) override { env_ = &env; }
  void on_timer(sim::Env& env, uint64_t cookie) override { (void)env, (void)cookie; }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    (void)env, (void)from;
    ASSERT_EQ(message.type, static_cast<uint32_t>(RouterMessageType::kResponse));
    const auto& response = dynamic_cast<const RouterResponse&>(*message.body);
    answers[response.response.request_id].push_back(response);
  }
  void send(sim::Address router, uint64_t request_id, StorageOp op, ReadConsistency consistency,
            const PrimaryKey& key) {
    auto body = std::make_shared<RouterRequest>();
    body->table = TableId(7);
    body->request.client_id = 1;
    body->request.request_id = request_id;
    body->request.op = op;
    body->request.consistency = consistency;
    body->request.key = key;
    if (op == StorageOp::kPut) body->request.item = Item(key);
    sim::Message message;
    message.type = static_cast<uint32_t>(RouterMessageType::kRequest);
    message.size_bytes = 128;
    message.digest = request_id;
    message.body = std::move(body);
    env_->send(router, std::move(message));
  }
  std::map<uint64_t, std::vector<RouterResponse>> answers;

 private:
  sim::Env* env_ = nullptr;
};

struct Forward {
  uint64_t partition_hash = 0;
  GroupId group;
  sim::Address destination;
};

class ForwardLog final : public RouterObserver {
 public:
  void on_forward(sim::Address router, TableId table, uint64_t partition_hash, GroupId group,
                  sim::Address destination) override {
    (void)router, (void)table;
    forwards.push_back(Forward{partition_hash, group, destination});
  }
  std::vector<Forward> forwards;
};

struct CaseResult {
  uint64_t forwards = 0;
  uint64_t bad_forwards = 0;    // outside the group, or the wrong group for the hash
  uint64_t resent_unknown = 0;  // forwards of a request after one of its forwards was lost
  uint64_t unanswered = 0;
  uint64_t answered_twice = 0;
  uint64_t unknown_answers = 0;
  uint64_t too_many_forwards = 0;
  std::string first_problem;
};

// One random case: a table of random partitions with random histories, a router with a random
// cache mode, requests of random shapes; returns what the properties saw.
CaseResult run_case(uint64_t seed, bool plant) {
  sim::Random random(seed);
  sim::Simulation simulation(seed);
  sim::World world(simulation, sim::WorldOptions{});
  std::vector<sim::RackId> racks;
  for (uint32_t az = 0; az < 3; ++az) {
    const std::string name = std::string("az-") + static_cast<char>('a' + az);
    racks.push_back(world.add_rack(world.add_az(name), name + "/r0"));
  }
  Truth truth;
  truth.drop_per_mille = static_cast<uint32_t>(random.uniform_u64(60));
  const uint32_t partitions = 2 + static_cast<uint32_t>(random.uniform_u64(6));
  std::vector<PartitionEntry> memds_map;
  uint32_t host_number = 0;
  auto new_storage_host = [&] {
    const sim::HostId host = world.add_host(
        racks[host_number % 3], "storage-" + std::to_string(host_number), sim::HostOptions{});
    ++host_number;
    world.add_process(host, kStoragePort,
                      [&truth] { return std::make_unique<ScriptedStorage>(&truth); });
    return sim::Address{host, kStoragePort};
  };
  const uint64_t width = UINT64_MAX / partitions;
  for (uint32_t p = 0; p < partitions; ++p) {
    GroupTruth group;
    group.hash_begin = width * p;
    group.hash_end = p + 1 == partitions ? UINT64_MAX : width * (p + 1) - 1;
    std::vector<sim::Address> first;
    for (int r = 0; r < 3; ++r) first.push_back(new_storage_host());
    group.members = first;
    group.ever.insert(first.begin(), first.end());
    // Healing moved some groups: one or two members replaced, a higher epoch.
    const uint64_t moves = random.uniform_u64(3);
    for (uint64_t m = 0; m < moves; ++m) {
      group.members[random.uniform_u64(3)] = new_storage_host();
      group.ever.insert(group.members.begin(), group.members.end());
      ++group.epoch;
    }
    group.leader = group.members[random.uniform_u64(3)];
    // MemDS holds the current entry, or the first configuration with a stale or no leader.
    PartitionEntry entry;
    entry.table = TableId(7);
    entry.hash_begin = group.hash_begin;
    entry.hash_end = group.hash_end;
    entry.group = GroupId(p);
    entry.version = 1;
    if (random.uniform_u64(2) == 0) {
      entry.members = GroupMembers{group.epoch, group.members};
      entry.leader_hint = group.leader;
    } else {
      entry.members = GroupMembers{0, first};
      if (random.uniform_u64(2) == 0) entry.leader_hint = first[random.uniform_u64(3)];
    }
    memds_map.push_back(entry);
    truth.groups.push_back(group);
  }

  std::vector<sim::Address> memds;
  for (uint32_t i = 0; i < 3; ++i) {
    const sim::HostId host = world.add_host(racks[i], "memds-" + std::to_string(i), {});
    memds.push_back(sim::Address{host, kMemdsPort});
  }
  for (const sim::Address& address : memds) {
    world.add_process(address.host, kMemdsPort, [&memds, &memds_map] {
      auto process = std::make_unique<MemdsProcess>(MemdsOptions{}, memds);
      for (const PartitionEntry& entry : memds_map) process->node().apply(entry);
      return process;
    });
  }
  ForwardLog log;
  RouterOptions options;
  options.memds_nodes = memds;
  options.cache.mode =
      random.uniform_u64(2) == 0 ? PartitionCacheMode::kConstantWork : PartitionCacheMode::kBimodal;
  options.max_forwards_per_request = 1 + static_cast<uint32_t>(random.uniform_u64(5));
  options.observer = &log;
  options.plant_forward_to_neighbour = plant;
  const sim::HostId router_host = world.add_host(racks[0], "router", {});
  const sim::Address router{router_host, kRouterPort};
  world.add_process(router_host, kRouterPort,
                    [options] { return std::make_unique<RouterProcess>(options); });
  const sim::HostId client_host = world.add_host(racks[1], "client", {});
  world.add_process(client_host, kClientPort, [] { return std::make_unique<TestClient>(); });
  world.start();
  simulation.run_until(simulation.now() + sim::milliseconds(1));
  auto& client = dynamic_cast<TestClient&>(*world.process_at({client_host, kClientPort}));

  // Requests in waves, so later ones find a warm (and corrected) cache.
  const uint64_t requests = 20 + random.uniform_u64(40);
  std::map<uint64_t, uint64_t> hash_of_request;
  for (uint64_t id = 1; id <= requests; ++id) {
    const PrimaryKey key{KeyValue::string("k" + std::to_string(random.uniform_u64(1000))),
                         std::nullopt};
    static constexpr StorageOp kOps[] = {StorageOp::kGet, StorageOp::kPut, StorageOp::kDelete};
    const StorageOp op = kOps[random.uniform_u64(3)];
    const ReadConsistency consistency =
        random.uniform_u64(2) == 0 ? ReadConsistency::kStrong : ReadConsistency::kEventual;
    client.send(router, id, op, consistency, key);
    hash_of_request[id] = partition_hash(key.partition);
    if (id % 5 == 0) simulation.run_until(simulation.now() + sim::milliseconds(300));
  }
  simulation.run_until(simulation.now() + sim::seconds(2));

  CaseResult result;
  auto problem = [&](const std::string& what) {
    if (result.first_problem.empty()) result.first_problem = what;
  };
  result.forwards = log.forwards.size();
  for (const Forward& forward : log.forwards) {
    const GroupTruth& group = truth.groups.at(forward.group.value);
    if (forward.partition_hash < group.hash_begin || forward.partition_hash > group.hash_end ||
        group.ever.count(forward.destination) == 0) {
      ++result.bad_forwards;
      problem("a forward for group " + std::to_string(forward.group.value) +
              " went outside the group");
    }
  }
  // Forwards by client request: the router's forward ids are consecutive per request in the
  // order sent, so the log's order with the answers tells which forward belonged to which
  // request only through the stats; the unknown-outcome property is checked on the answers:
  // a request whose forward was lost must be answered "unknown", never by a later forward.
  const auto& process = dynamic_cast<RouterProcess&>(*world.process_at(router));
  for (uint64_t id = 1; id <= requests; ++id) {
    auto it = client.answers.find(id);
    if (it == client.answers.end()) {
      ++result.unanswered;
      problem("request " + std::to_string(id) + " was never answered");
      continue;
    }
    if (it->second.size() > 1) ++result.answered_twice;
    if (it->second.front().outcome_unknown) ++result.unknown_answers;
  }
  // Every lost forward ended its request with an unknown outcome (the router's forward timeouts
  // equal the forwards storage dropped), and no request was forwarded again after one: the
  // answers that were not "unknown" number the requests minus the lost ones.
  if (process.stats().forward_timeouts != truth.dropped_forwards.size()) {
    ++result.resent_unknown;
    problem("forward timeouts differ from the forwards storage lost");
  }
  if (result.unknown_answers != truth.dropped_forwards.size()) {
    ++result.resent_unknown;
    problem("a request whose forward was lost was not answered unknown");
  }
  if (process.stats().forwards > requests * options.max_forwards_per_request) {
    ++result.too_many_forwards;
    problem("more forwards than the bound allows");
  }
  return result;
}

TEST(RouterPropertyTest, ForwardsStayInTheGroupAndLostForwardsAreNeverResent) {
  uint64_t forwards = 0, unknown = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const CaseResult result = run_case(seed, /*plant=*/false);
    forwards += result.forwards;
    unknown += result.unknown_answers;
    EXPECT_EQ(result.bad_forwards, 0u) << "seed " << seed << ": " << result.first_problem;
    EXPECT_EQ(result.resent_unknown, 0u) << "seed " << seed << ": " << result.first_problem;
    EXPECT_EQ(result.unanswered, 0u) << "seed " << seed << ": " << result.first_problem;
    EXPECT_EQ(result.answered_twice, 0u) << "seed " << seed;
    EXPECT_EQ(result.too_many_forwards, 0u) << "seed " << seed;
  }
  // The cases exercised what they are about.
  EXPECT_GT(forwards, 1000u);
  EXPECT_GT(unknown, 10u);
}

TEST(RouterPropertyTest, PlantedNeighbourForwardIsCaught) {
  uint64_t bad = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) bad += run_case(seed, /*plant=*/true).bad_forwards;
  EXPECT_GT(bad, 0u);
}

}  // namespace
}  // namespace dynasim::model
