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
