// Auto-admin's placement (docs/healing.md, "Who does what"): storage nodes that report to it, and
// a group's leader asking where a new replica goes. Nine nodes, three per AZ, as in the power-off
// game day. The cases are the ones that decide whether a group keeps one voter per AZ after
// healing: the replaced replica's AZ; a log replica that had to be placed outside its AZ, whose
// full replacement must go back to the missing AZ; and a rebuild that may not share an AZ, which
// waits while the missing AZ is down.
#include "model/auto_admin.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sim/world.h"

namespace dynasim::model {
namespace {

constexpr uint32_t kNodePort = 8000;
constexpr uint32_t kLeaderPort = 8001;
constexpr uint64_t kHeartbeatCookie = 1;

// A storage node as auto-admin sees it: a heartbeat every second while it is up.
class FakeNode final : public sim::Process {
 public:
  FakeNode(sim::Address auto_admin, uint32_t replicas)
      : auto_admin_(auto_admin), replicas_(replicas) {}
  void on_start(sim::Env& env) override { beat(env); }
  void on_message(sim::Env&, sim::Address, const sim::Message&) override {}
  void on_timer(sim::Env& env, uint64_t cookie) override {
    if (cookie == kHeartbeatCookie) beat(env);
  }

 private:
  void beat(sim::Env& env) {
    auto body = std::make_shared<NodeHeartbeatBody>();
    body->az = env.az();
    body->replicas = replicas_;
    env.send(auto_admin_, sim::Message{static_cast<uint32_t>(StorageMessageType::kNodeHeartbeat),
                                       64, replicas_, std::move(body)});
    env.set_timer(sim::seconds(1), kHeartbeatCookie);
  }
  sim::Address auto_admin_;
  uint32_t replicas_;
};

// A group's leader: sends the place requests it is given and keeps the answers.
class FakeLeader final : public sim::Process {
 public:
  explicit FakeLeader(sim::Address auto_admin) : auto_admin_(auto_admin) {}
  void on_start(sim::Env& env) override { env_ = &env; }
  void on_message(sim::Env&, sim::Address, const sim::Message& message) override {
    ASSERT_EQ(message.type, static_cast<uint32_t>(StorageMessageType::kPlaceReply));
    const auto& reply = dynamic_cast<const PlaceReplyBody&>(*message.body);
    replies[reply.request_id] = reply.node;
  }
  void on_timer(sim::Env&, uint64_t) override {}
  void ask(PlaceRequestBody request) {
    const uint64_t id = request.request_id;
    env_->send(auto_admin_,
               sim::Message{static_cast<uint32_t>(StorageMessageType::kPlaceRequest), 64, id,
                            std::make_shared<PlaceRequestBody>(std::move(request))});
  }
  std::map<uint64_t, std::optional<sim::Address>> replies;

 private:
  sim::Address auto_admin_;
  sim::Env* env_ = nullptr;
};

constexpr uint32_t kExecutorPort = 8002;

// A split executor, or a node offering move candidates: sends what it is given, keeps answers.
class FakeExecutor final : public sim::Process {
 public:
  explicit FakeExecutor(sim::Address auto_admin) : auto_admin_(auto_admin) {}
  void on_start(sim::Env& env) override { env_ = &env; }
  void on_message(sim::Env&, sim::Address, const sim::Message& message) override {
    if (message.type == static_cast<uint32_t>(PlacementMessageType::kPlaceGroupReply)) {
      const auto& reply = dynamic_cast<const PlaceGroupReplyBody&>(*message.body);
      groups[reply.request_id] = reply.nodes;
    } else if (message.type == static_cast<uint32_t>(PlacementMessageType::kMoveDecision)) {
      const auto& reply = dynamic_cast<const MoveDecisionBody&>(*message.body);
      moves[reply.report_id] = reply.moves;
    }
  }
  void on_timer(sim::Env&, uint64_t) override {}
  void send(PlacementMessageType type, std::shared_ptr<const sim::MessageBody> body) {
    env_->send(auto_admin_, sim::Message{static_cast<uint32_t>(type), 64, 0, std::move(body)});
  }
  std::map<uint64_t, std::vector<sim::Address>> groups;
  std::map<uint64_t, std::vector<MoveDestination>> moves;

 private:
  sim::Address auto_admin_;
  sim::Env* env_ = nullptr;
};

struct Harness {
  Harness() : simulation(1), world(simulation, sim::WorldOptions{}) {
    const sim::AzId control_az = world.add_az("control");
    const sim::HostId control =
        world.add_host(world.add_rack(control_az, "control/r0"), "control/h0", {});
    auto_admin = sim::Address{control, kAutoAdminPort};
    world.add_process(control, kAutoAdminPort,
                      [] { return std::make_unique<AutoAdmin>(AutoAdminOptions{}); });
    world.add_process(control, kLeaderPort,
                      [this] { return std::make_unique<FakeLeader>(auto_admin); });
    world.add_process(control, kExecutorPort,
                      [this] { return std::make_unique<FakeExecutor>(auto_admin); });
    for (uint32_t a = 0; a < 3; ++a) {
      const std::string az_name = std::string("az-") + static_cast<char>('a' + a);
      const sim::RackId rack = world.add_rack(world.add_az(az_name), az_name + "/r0");
      for (uint32_t h = 0; h < 3; ++h) {
        const sim::HostId host = world.add_host(rack, az_name + "/h" + std::to_string(h), {});
        nodes[a][h] = sim::Address{host, kNodePort};
        // The first node of each AZ is the most loaded, so the least loaded pick is not it.
        const uint32_t replicas = h == 0 ? 50 : 40 + h;
        world.add_process(host, kNodePort, [this, replicas] {
          return std::make_unique<FakeNode>(auto_admin, replicas);
        });
      }
    }
    world.start();
    run_for(sim::milliseconds(1500));
  }
  FakeLeader& leader() {
    auto* process =
        dynamic_cast<FakeLeader*>(world.process_at(sim::Address{auto_admin.host, kLeaderPort}));
    DYN_ASSERT(process != nullptr);
    return *process;
  }
  void run_for(sim::Duration span) { simulation.run_until(simulation.now() + span); }
  // Asks where a new replica goes and waits for the answer.
  std::optional<sim::Address> place(std::vector<sim::Address> members,
                                    std::optional<sim::Address> replacing, bool may_share_az) {
    PlaceRequestBody request;
    request.request_id = next_request++;
    request.group = GroupId(7);
    request.exclude = std::move(members);
    request.replacing = replacing;
    request.may_share_az = may_share_az;
    const uint64_t id = request.request_id;
    leader().ask(std::move(request));
    run_for(sim::milliseconds(100));
    auto reply = leader().replies.find(id);
    DYN_ASSERT(reply != leader().replies.end());
    return reply->second;
  }
  std::string az_of(sim::Address node) const { return world.az_name(world.az_of(node.host)); }

  sim::Simulation simulation;
  sim::World world;
  sim::Address auto_admin;
  std::array<std::array<sim::Address, 3>, 3> nodes;  // [az][host]
  uint64_t next_request = 1;
};

TEST(AutoAdminTest, AReplacementGoesToTheReplacedReplicasAzOnItsLeastLoadedNode) {
  Harness h;
  // Group {a0, b0, c0} lost b0: its replacement goes to az-b, on b1 (fewer replicas than b2).
  const auto placed = h.place({h.nodes[0][0], h.nodes[1][0], h.nodes[2][0]}, h.nodes[1][0], true);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ(*placed, h.nodes[1][1]);
}

// az-b was down when the group lost b0, so its log replica went to a2, beside a0. The full
// replica that replaces the log replica must go back to az-b, not to the log replica's AZ (which
// left the group with two voters in az-a for good).
TEST(AutoAdminTest, AFullReplicaReplacingALogReplicaOutsideItsAzGoesToTheMissingAz) {
  Harness h;
  const std::vector<sim::Address> members = {h.nodes[0][0], h.nodes[2][0], h.nodes[0][2]};
  const auto placed = h.place(members, /*replacing=*/h.nodes[0][2], true);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ(h.az_of(*placed), "az-b");
}

// While az-b is down, a rebuild that may not share an AZ gets no node (the log replica keeps the
// quorum meanwhile); one that may share gets a node beside another member. When az-b is back,
// the rebuild goes there.
TEST(AutoAdminTest, ARebuildThatMayNotShareAnAzWaitsForTheMissingAz) {
  Harness h;
  for (const sim::Address& node : h.nodes[1]) h.world.power_off(node.host);
  h.run_for(sim::seconds(4));  // auto-admin stops placing on nodes it has not heard for 3 s
  const std::vector<sim::Address> members = {h.nodes[0][0], h.nodes[2][0], h.nodes[0][2]};
  EXPECT_FALSE(h.place(members, h.nodes[0][2], /*may_share_az=*/false).has_value());
  const auto anywhere = h.place(members, h.nodes[0][2], /*may_share_az=*/true);
  ASSERT_TRUE(anywhere.has_value());
  EXPECT_NE(h.az_of(*anywhere), "az-b");
  for (const sim::Address& node : h.nodes[1]) h.world.power_on(node.host);
  h.run_for(sim::seconds(2));
  const auto back = h.place(members, h.nodes[0][2], /*may_share_az=*/false);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(h.az_of(*back), "az-b");
}

}  // namespace
}  // namespace dynasim::model

namespace dynasim::model {
namespace {

// ---------------------------------------------------------------------------------------------
// Placement by space and throughput, through messages: a split executor asks for a new
// partition's replicas, and a node past its threshold offers candidates to move.

TEST(AutoAdminTest, ASplitChildGetsOneLeastLoadedNodeInEachAz) {
  Harness h;
  auto* executor = dynamic_cast<FakeExecutor*>(
      h.world.process_at(sim::Address{h.auto_admin.host, kExecutorPort}));
  ASSERT_NE(executor, nullptr);
  auto request = std::make_shared<PlaceGroupRequestBody>();
  request->request_id = 1;
  request->group = GroupId(40);
  executor->send(PlacementMessageType::kPlaceGroupRequest, request);
  h.run_for(sim::milliseconds(100));
  ASSERT_EQ(executor->groups.count(1), 1u);
  // Heartbeats carry no capacity here, so the fewest replicas decide: h1 (41) in every AZ.
  EXPECT_EQ(executor->groups[1],
            (std::vector<sim::Address>{h.nodes[0][1], h.nodes[1][1], h.nodes[2][1]}));

  // A candidate from the executor's address (standing in for a node in no AZ of the group),
  // whose group has members in az-b and az-c: it goes to az-a, the one AZ without a member.
  auto candidates = std::make_shared<MoveCandidatesBody>();
  candidates->report_id = 9;
  MoveCandidate candidate;
  candidate.replica = ReplicaLoad{GroupId(7), 1, 1000, 1000};
  candidate.other_members = {h.nodes[1][0], h.nodes[2][0]};
  candidates->candidates.push_back(candidate);
  executor->send(PlacementMessageType::kMoveCandidates, candidates);
  h.run_for(sim::milliseconds(100));
  ASSERT_EQ(executor->moves.count(9), 1u);
  ASSERT_EQ(executor->moves[9].size(), 1u);
  ASSERT_TRUE(executor->moves[9][0].node.has_value());
  EXPECT_EQ(h.az_of(*executor->moves[9][0].node), "az-a");
}

// ---------------------------------------------------------------------------------------------
// The planner's properties over random placement sequences: a partition never has two replicas
// in one AZ (split children, rebuilds that may not share, moves), and load spreads.

struct SimCluster {
  struct Node {
    sim::Address address;
    sim::AzId az;
    std::map<GroupId, ReplicaLoad> replicas;
    bool reporting = true;
  };
  std::vector<Node> nodes;
  NodeCapacity capacity{600 * kBytesPerGigabyte, 40 * kPartitionMaxLoadPerSecond};
  std::map<GroupId, std::vector<size_t>> members;  // group -> node indexes

  size_t index_of(sim::Address address) const {
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].address == address) return i;
    }
    ADD_FAILURE() << "unknown node";
    return 0;
  }
  void report(PlacementPlanner& planner, sim::SimTime now) const {
    for (const Node& node : nodes) {
      if (!node.reporting) continue;
      NodeLoadReportBody body;
      body.az = node.az;
      body.capacity = capacity;
      for (const auto& [group, load] : node.replicas) body.replicas.push_back(load);
      planner.on_load_report(node.address, body, now);
    }
  }
  uint64_t fill_per_million(const Node& node) const {
    uint64_t size = 0;
    uint64_t load = 0;
    for (const auto& [group, replica] : node.replicas) {
      size += replica.size_bytes;
      load += replica.load_per_second;
    }
    return std::max(size * 1'000'000 / capacity.size_bytes,
                    load * 1'000'000 / capacity.load_per_second);
  }
  // Groups with two replicas in one AZ.
  int same_az_groups() const {
    int count = 0;
    for (const auto& [group, indexes] : members) {
      std::vector<sim::AzId> azs;
      for (size_t i : indexes) azs.push_back(nodes[i].az);
      std::sort(azs.begin(), azs.end());
      if (std::adjacent_find(azs.begin(), azs.end()) != azs.end()) ++count;
    }
    return count;
  }
  std::vector<sim::Address> addresses_of(GroupId group) const {
    std::vector<sim::Address> out;
    for (size_t i : members.at(group)) out.push_back(nodes[i].address);
    return out;
  }
};

struct PlacementRun {
  int same_az_groups = 0;
  double worst_spread = 0;  // the largest max/min fill ratio within one AZ
  int placed_groups = 0;
  int moves = 0;
};

PlacementRun run_placement(uint64_t seed, const AutoAdminOptions& options) {
  sim::Random random(seed);
  SimCluster cluster;
  uint32_t host = 0;
  for (uint32_t az = 0; az < 3; ++az) {
    const uint64_t count = 3 + random.uniform_u64(4);
    for (uint64_t n = 0; n < count; ++n) {
      cluster.nodes.push_back({sim::Address{sim::HostId(host++), 8000}, sim::AzId(az), {}, true});
    }
  }
  PlacementPlanner planner(options);
  sim::SimTime now(0);
  PlacementRun run;
  uint32_t next_group = 0;
  for (int step = 0; step < 400; ++step) {
    now += sim::seconds(1);
    // Now and then a node stops reporting for a while (it is down, as far as placement knows).
    if (random.uniform_u64(40) == 0) {
      cluster.nodes[random.uniform_u64(cluster.nodes.size())].reporting = false;
    } else if (random.uniform_u64(10) == 0) {
      for (auto& node : cluster.nodes) node.reporting = true;
    }
    cluster.report(planner, now);
    const uint64_t op = random.uniform_u64(100);
    if (op < 70 || cluster.members.empty()) {
      // A split child.
      PlaceGroupRequestBody request;
      request.group = GroupId(next_group++);
      request.size_bytes = kBytesPerGigabyte * (1 + random.uniform_u64(10));
      request.load_per_second = kPartitionMaxLoadPerSecond / 100 * (1 + random.uniform_u64(80));
      const std::vector<sim::Address> chosen = planner.place_group(request, now);
      if (chosen.empty()) continue;
      ++run.placed_groups;
      for (const sim::Address& node : chosen) {
        const size_t i = cluster.index_of(node);
        cluster.nodes[i].replicas[request.group] =
            ReplicaLoad{request.group, 0, request.size_bytes, request.load_per_second};
        cluster.members[request.group].push_back(i);
      }
    } else if (op < 78) {
      // A partition heats up: its replicas' load grows (up to the partition's maximum).
      auto group_it = cluster.members.begin();
      std::advance(group_it,
                   static_cast<std::ptrdiff_t>(random.uniform_u64(cluster.members.size())));
      const uint64_t factor = 2 + random.uniform_u64(3);
      for (size_t i : group_it->second) {
        ReplicaLoad& load = cluster.nodes[i].replicas.at(group_it->first);
        load.load_per_second = std::min(load.load_per_second * factor, kPartitionMaxLoadPerSecond);
      }
    } else if (op < 88) {
      // A rebuild that may not share an AZ: a random member of a random group is lost.
      auto group_it = cluster.members.begin();
      std::advance(group_it,
                   static_cast<std::ptrdiff_t>(random.uniform_u64(cluster.members.size())));
      const GroupId group = group_it->first;
      std::vector<size_t>& indexes = group_it->second;
      const size_t lost_slot = random.uniform_u64(indexes.size());
      const size_t lost = indexes[lost_slot];
      PlaceRequestBody request;
      request.group = group;
      request.exclude = cluster.addresses_of(group);
      request.replacing = cluster.nodes[lost].address;
      request.may_share_az = false;
      const auto placed = planner.place_replica(request, now);
      if (!placed) continue;
      const ReplicaLoad load = cluster.nodes[lost].replicas.at(group);
      cluster.nodes[lost].replicas.erase(group);
      const size_t i = cluster.index_of(*placed);
      cluster.nodes[i].replicas[group] = load;
      indexes[lost_slot] = i;
    } else {
      // A balancing round: every node past its threshold offers candidates.
      for (size_t source = 0; source < cluster.nodes.size(); ++source) {
        std::vector<ReplicaLoad> hosted;
        for (const auto& [group, load] : cluster.nodes[source].replicas) hosted.push_back(load);
        for (const ReplicaLoad& offered : choose_move_candidates(cluster.capacity, hosted)) {
          MoveCandidate candidate;
          candidate.replica = offered;
          for (size_t i : cluster.members[offered.group]) {
            if (i != source) candidate.other_members.push_back(cluster.nodes[i].address);
          }
          const auto destination =
              planner.place_move(cluster.nodes[source].address, candidate, now);
          if (!destination) continue;
          ++run.moves;
          const size_t d = cluster.index_of(*destination);
          cluster.nodes[source].replicas.erase(offered.group);
          cluster.nodes[d].replicas[offered.group] = offered;
          for (size_t& i : cluster.members[offered.group]) {
            if (i == source) i = d;
          }
        }
      }
    }
    run.same_az_groups = std::max(run.same_az_groups, cluster.same_az_groups());
  }
  for (uint32_t az = 0; az < 3; ++az) {
    uint64_t most = 0;
    uint64_t least = UINT64_MAX;
    for (const auto& node : cluster.nodes) {
      if (node.az != sim::AzId(az)) continue;
      most = std::max(most, cluster.fill_per_million(node));
      least = std::min(least, cluster.fill_per_million(node));
    }
    const double spread = least == 0 ? 1e9 : static_cast<double>(most) / static_cast<double>(least);
    run.worst_spread = std::max(run.worst_spread, spread);
  }
  return run;
}

// The spread bound: within an AZ, the fullest node holds at most 1.5 times what the emptiest
// holds, after a few hundred placements of replicas of 1-10 GB (each a sizeable share of a node).
constexpr double kMaxSpread = 1.5;

TEST(PlacementPropertyTest, NoPartitionHasTwoReplicasInOneAzAndLoadSpreads) {
  int moves = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const PlacementRun run = run_placement(seed, {});
    EXPECT_EQ(run.same_az_groups, 0) << "seed " << seed;
    EXPECT_LE(run.worst_spread, kMaxSpread) << "seed " << seed;
    EXPECT_GT(run.placed_groups, 200) << "seed " << seed;
    moves += run.moves;
  }
  EXPECT_GT(moves, 0);  // nodes past their threshold did shed replicas
}

TEST(PlacementPropertyTest, PlantedSameAzIsCaught) {
  AutoAdminOptions options;
  options.plant_allow_same_az = true;
  int violating = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed)
    violating += run_placement(seed, options).same_az_groups > 0;
  EXPECT_GT(violating, 0);
}

TEST(PlacementPropertyTest, PlantedIgnoreLoadIsCaught) {
  AutoAdminOptions options;
  options.plant_ignore_load = true;
  int spread_out = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    spread_out += run_placement(seed, options).worst_spread <= kMaxSpread;
  }
  EXPECT_LT(spread_out, 10);
}

// A node past its threshold sheds its largest contributors until it is under the target, and
// auto-admin finds each a node in an AZ without another replica of it, that stays under the
// threshold.
TEST(PlacementPropertyTest, AnOverfullNodeShedsDownToItsTarget) {
  const NodeCapacity capacity{90 * kBytesPerGigabyte, 10 * kPartitionMaxLoadPerSecond};
  std::vector<ReplicaLoad> hosted;
  for (uint32_t g = 0; g < 20; ++g) {
    hosted.push_back(ReplicaLoad{GroupId(g), 1, kBytesPerGigabyte * (1 + g % 7), 1000});
  }
  uint64_t size = 0;
  for (const auto& r : hosted) size += r.size_bytes;
  ASSERT_GT(size * 10, capacity.size_bytes * 8);  // past 80%
  const std::vector<ReplicaLoad> offered = choose_move_candidates(capacity, hosted);
  ASSERT_FALSE(offered.empty());
  uint64_t left = size;
  for (const auto& r : offered) left -= r.size_bytes;
  EXPECT_LE(left * 10, capacity.size_bytes * 7);
  EXPECT_EQ(offered.front().size_bytes, 7 * kBytesPerGigabyte);  // the largest first
  // Under the threshold: nothing offered.
  hosted.resize(5);
  EXPECT_TRUE(choose_move_candidates(capacity, hosted).empty());
}

}  // namespace
}  // namespace dynasim::model
