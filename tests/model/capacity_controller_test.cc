// The table capacity controller and its node-side agent (model/capacity_controller.h): auto
// scaling raises the partitions' allocations after sustained high use and the nodes' buckets
// follow; on-demand doubles the previous peak; the nodes keep their allocations while the
// controller is down; a restarted node gets the current allocation; lost messages only delay
// convergence; a stale update never lowers a newer one. Planted bugs (an agent that accepts older
// versions, a controller that feeds a period's data again) are each caught.
//
// The nodes here are small test processes that host a few partitions' leaders: each has a real
// NodeAdmission and CapacityAgent and offers its partitions a steady write demand every 100 ms,
// admitting what the buckets allow, as a storage node's leaders do.
#include "model/capacity_controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sim/random.h"
#include "sim/world.h"

namespace dynasim::model {
namespace {

constexpr uint32_t kNodePort = 8000;
constexpr uint64_t kCookieDemand = 1;
constexpr uint64_t kCookieReport = 2;
constexpr uint64_t kCookieRequest = 3;
constexpr sim::Duration kDemandTick = sim::milliseconds(100);

// Demand shared by the test and every node: write milli units per second, per partition.
struct Demand {
  int64_t write_milli_units_per_second_per_partition = 0;
};

class FakeLeaderNode final : public sim::Process {
 public:
  FakeLeaderNode(sim::Address controller, std::vector<GroupId> groups, PartitionAllocation initial,
                 const Demand* demand, CapacityAgent::Options agent_options)
      : controller_(controller),
        groups_(std::move(groups)),
        initial_(initial),
        demand_(demand),
        agent_options_(agent_options) {}

  void on_start(sim::Env& env) override {
    env_ = &env;
    const sim::SimTime now = env.local_now();
    const uint64_t incarnation = static_cast<uint64_t>(std::max<int64_t>(now.ns, 0)) + 1;
    admission_.emplace(AdmissionOptions{}, env.self(), incarnation, now);
    for (GroupId group : groups_) admission_->set_allocation(group, initial_, now);
    agent_options_.controller = controller_;
    agent_.emplace(agent_options_, env.self(), incarnation, initial_);
    env.send(controller_, make_message(agent_->make_request()));
    env.set_timer(kDemandTick, kCookieDemand);
    env.set_timer(agent_options_.report_interval, kCookieReport);
    env.set_timer(agent_options_.request_retry, kCookieRequest);
  }

  void on_message(sim::Env& env, sim::Address, const sim::Message& message) override {
    if (message.type != static_cast<uint32_t>(CapacityMessageType::kAllocationUpdate)) return;
    const auto& update = dynamic_cast<const AllocationUpdate&>(*message.body);
    const CapacityAgent::UpdateResult result = agent_->on_update(update);
    if (result.apply) {
      for (GroupId group : groups_) {
        admission_->set_allocation(group, *result.apply, env.local_now());
      }
      ++updates_applied;
    }
    versions_seen.push_back(agent_->version());
    env.send(controller_, make_message(result.ack));
  }

  void on_timer(sim::Env& env, uint64_t cookie) override {
    if (cookie == kCookieDemand) {
      offer_demand();
      env.set_timer(kDemandTick, kCookieDemand);
    } else if (cookie == kCookieReport) {
      env.send(controller_, make_message(agent_->make_report(groups_)));
      env.set_timer(agent_options_.report_interval, kCookieReport);
    } else if (cookie == kCookieRequest && agent_->awaiting()) {
      env.send(controller_, make_message(agent_->make_request()));
      env.set_timer(agent_options_.request_retry, kCookieRequest);
    }
  }

  PartitionAllocation allocation(GroupId group) const { return admission_->allocation(group); }
  // A split's child starts serving here: it takes the allocation the node holds now.
  void add_group(GroupId group) {
    admission_->set_allocation(group, agent_->allocation(), env_->local_now());
    groups_.push_back(group);
    std::sort(groups_.begin(), groups_.end());
  }
  NodeAdmission& admission() { return *admission_; }
  const CapacityAgent& agent() const { return *agent_; }
  std::vector<AllocationVersion> versions_seen;
  uint64_t updates_applied = 0;
  int64_t admitted_milli_units = 0;

 private:
  // Each partition is offered a tick's worth of its demand, in requests of one WCU.
  void offer_demand() {
    const int64_t per_tick =
        demand_->write_milli_units_per_second_per_partition * kDemandTick.ns / 1'000'000'000;
    for (GroupId group : groups_) {
      owed_[group] += per_tick;
      while (owed_[group] >= kMilliUnitsPerUnit) {
        owed_[group] -= kMilliUnitsPerUnit;
        const AdmissionDecision decision =
            admission_->admit_write(group, CapacityUnits{2}, {}, env_->local_now());
        if (!admitted(decision)) continue;
        agent_->on_admitted(group, kMilliUnitsPerUnit, /*write=*/true);
        admitted_milli_units += kMilliUnitsPerUnit;
      }
    }
  }

  sim::Address controller_;
  std::vector<GroupId> groups_;
  PartitionAllocation initial_;
  const Demand* demand_;
  CapacityAgent::Options agent_options_;
  sim::Env* env_ = nullptr;
  std::optional<NodeAdmission> admission_;
  std::optional<CapacityAgent> agent_;
  std::map<GroupId, int64_t> owed_;
};

struct RunSetup {
  CapacityControllerOptions controller;
  uint32_t nodes = 2;
  uint32_t partitions_per_node = 2;
  CapacityAgent::Options agent;
  double loss_probability = 0;
  uint64_t seed = 1;
};

struct Harness {
  explicit Harness(RunSetup setup)
      : simulation(setup.seed), world(simulation, sim::WorldOptions{}) {
    const sim::AzId az = world.add_az("az-a");
    const sim::RackId rack = world.add_rack(az, "az-a/r0");
    control = world.add_host(rack, "control", {});
    controller_address = sim::Address{control, kCapacityControllerPort};
    const uint32_t partitions = setup.nodes * setup.partitions_per_node;
    setup.controller.partitions = partitions;
    const TableCapacity initial{setup.controller.read_provisioned.initial_units,
                                setup.controller.write_provisioned.initial_units};
    setup_mode = setup.controller.mode;
    const PartitionAllocation initial_allocation =
        partition_allocation(setup_mode, initial, partitions);
    uint32_t next_group = 0;
    for (uint32_t n = 0; n < setup.nodes; ++n) {
      const sim::HostId host = world.add_host(rack, "node" + std::to_string(n), {});
      const sim::Address address{host, kNodePort};
      nodes.push_back(address);
      setup.controller.storage_nodes.push_back(address);
      std::vector<GroupId> groups;
      for (uint32_t p = 0; p < setup.partitions_per_node; ++p)
        groups.push_back(GroupId(next_group++));
      world.add_process(host, kNodePort, [this, groups, initial_allocation, setup] {
        return std::make_unique<FakeLeaderNode>(controller_address, groups, initial_allocation,
                                                &demand, setup.agent);
      });
    }
    const CapacityControllerOptions controller_options = setup.controller;
    world.add_process(control, kCapacityControllerPort, [controller_options] {
      return std::make_unique<CapacityController>(controller_options);
    });
    if (setup.loss_probability > 0) world.network().set_loss_probability(setup.loss_probability);
    world.start();
  }

  void run_for(sim::Duration span) { simulation.run_until(simulation.now() + span); }
  FakeLeaderNode& node(uint32_t index) {
    auto* process = dynamic_cast<FakeLeaderNode*>(world.process_at(nodes.at(index)));
    DYN_ASSERT(process != nullptr);
    return *process;
  }
  CapacityController* controller() {
    return dynamic_cast<CapacityController*>(world.process_at(controller_address));
  }
  // Every node holds the controller's version and its allocation on every partition.
  bool converged() {
    CapacityController* c = controller();
    if (c == nullptr) return false;
    const PartitionAllocation expected =
        partition_allocation(setup_mode, c->capacity(), static_cast<uint32_t>(partitions()));
    for (uint32_t n = 0; n < nodes.size(); ++n) {
      if (node(n).agent().version() != c->version()) return false;
      if (node(n).agent().allocation() != expected) return false;
    }
    return true;
  }
  size_t partitions() const { return nodes.size() * 2 + added_partitions; }
  size_t added_partitions = 0;
  CapacityMode setup_mode = CapacityMode::kProvisioned;

  Demand demand;
  sim::Simulation simulation;
  sim::World world;
  sim::HostId control;
  sim::Address controller_address;
  std::vector<sim::Address> nodes;
};

// A provisioned table of 100 WCU over 4 partitions (25 WCU each), auto scaling at 70 percent.
RunSetup auto_scaled_writes() {
  RunSetup setup;
  setup.controller.mode = CapacityMode::kProvisioned;
  setup.controller.read_provisioned.initial_units = 400;
  setup.controller.write_provisioned.initial_units = 100;
  AutoScalingPolicy policy;
  setup.controller.write_provisioned.auto_scaling = policy;
  return setup;
}

// ---------------------------------------------------------------------------------------------
// Auto scaling

TEST(CapacityControllerTest, AutoScalingRaisesAllocationsAfterSustainedHighUseAndBucketsFollow) {
  Harness h(auto_scaled_writes());
  h.demand.write_milli_units_per_second_per_partition = 23'000;  // 92 WCU: 92 percent
  h.run_for(sim::seconds(30));
  ASSERT_TRUE(h.converged());
  EXPECT_EQ(h.controller()->capacity().write_units_per_second, 100);
  EXPECT_EQ(h.node(0).allocation(GroupId(0)).write_milli_units_per_second, 25'000);
  // Two high data points (minutes 1 and 2) trigger UpdateTable; it takes effect 3 minutes later.
  h.run_for(sim::minutes(4));
  EXPECT_EQ(h.controller()->capacity().write_units_per_second, 100);
  h.run_for(sim::minutes(2));
  // Target tracking: ceil(92 / 0.7) = 132 WCU, 33 per partition.
  const int64_t scaled = h.controller()->capacity().write_units_per_second;
  EXPECT_GE(scaled, 130);
  EXPECT_LE(scaled, 133);
  ASSERT_TRUE(h.converged());
  for (uint32_t n = 0; n < 2; ++n) {
    for (uint32_t g = 2 * n; g < 2 * n + 2; ++g) {
      EXPECT_EQ(h.node(n).allocation(GroupId(g)).write_milli_units_per_second, scaled * 1000 / 4);
      // The buckets follow: burst depth is 300 s of the new rate.
      EXPECT_EQ(h.node(n)
                    .admission()
                    .write_levels(GroupId(g), h.simulation.now())
                    .burst_depth_milli_units,
                300 * scaled * 1000 / 4);
    }
  }
  // Reads were idle: their capacity did not move (no policy).
  EXPECT_EQ(h.controller()->capacity().read_units_per_second, 400);
}

// A steady 40 percent never scales out. The planted bug feeds each period's consumption again
// with the next ones, so the controller sees 40, 80, 120... percent and scales out.
TEST(CapacityControllerTest, PlantedReuseOfThePreviousPeriodScalesOutWrongly) {
  for (const bool plant : {false, true}) {
    RunSetup setup = auto_scaled_writes();
    setup.controller.plant_reuse_previous_period = plant;
    Harness h(setup);
    h.demand.write_milli_units_per_second_per_partition = 10'000;  // 40 WCU: 40 percent
    h.run_for(sim::minutes(10));
    if (plant) {
      EXPECT_GT(h.controller()->capacity().write_units_per_second, 100) << "the plant went unseen";
    } else {
      EXPECT_EQ(h.controller()->capacity().write_units_per_second, 100);
      EXPECT_EQ(h.node(0).allocation(GroupId(0)).write_milli_units_per_second, 25'000);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// On-demand

TEST(CapacityControllerTest, OnDemandStartsAtTheNewTableFloorAndDoublesThePreviousPeak) {
  RunSetup setup;
  setup.controller.mode = CapacityMode::kOnDemand;
  setup.nodes = 8;  // 16 partitions, each allowed its 1,000 WCU maximum
  Harness h(setup);
  // 3,000 WCU for a few minutes, then 1,000.
  h.demand.write_milli_units_per_second_per_partition = 187'500;
  h.run_for(sim::seconds(30));
  ASSERT_TRUE(h.converged());
  EXPECT_EQ(h.controller()->capacity().write_units_per_second, 4000);
  EXPECT_EQ(h.controller()->capacity().read_units_per_second, 12'000);
  EXPECT_EQ(h.node(0).allocation(GroupId(0)).write_milli_units_per_second, 1'000'000);
  h.run_for(sim::minutes(4));
  h.demand.write_milli_units_per_second_per_partition = 62'500;
  // The peak counts once 30 minutes have passed since its period ended.
  h.run_for(sim::minutes(20));
  EXPECT_EQ(h.controller()->capacity().write_units_per_second, 4000);
  h.run_for(sim::minutes(12));
  EXPECT_EQ(h.controller()->capacity().write_units_per_second, 6000);
  ASSERT_TRUE(h.converged());
  // The table's capacity grew; each partition's allowance is still its maximum.
  EXPECT_EQ(h.node(3).allocation(GroupId(7)).write_milli_units_per_second, 1'000'000);
}

// ---------------------------------------------------------------------------------------------
// Splits: the table's capacity divided over the partitions that serve

// P22 section 4: a split for throughput takes its allocation from the table's provisioned
// throughput (6,000 WCU over 8 partitions is 750 each). Two partitions' children start serving on
// two nodes; the controller learns them from the reports and divides the same 100 WCU over six.
// The planted controller ignores the reports' partitions, so the children add capacity the table
// does not have: the allocations of the serving partitions sum to more than the table's.
TEST(CapacityControllerTest, SplitChildrenShareTheTableCapacity) {
  for (const bool plant : {false, true}) {
    RunSetup setup = auto_scaled_writes();
    setup.controller.write_provisioned.auto_scaling.reset();
    setup.controller.plant_ignore_serving_partitions = plant;
    Harness h(setup);
    h.run_for(sim::seconds(30));
    ASSERT_TRUE(h.converged());
    EXPECT_EQ(h.node(0).allocation(GroupId(0)).write_milli_units_per_second, 25'000);
    h.node(0).add_group(GroupId(4));
    h.node(1).add_group(GroupId(5));
    h.added_partitions = 2;
    h.run_for(sim::seconds(30));
    int64_t sum = 0;
    for (uint32_t n = 0; n < 2; ++n) {
      for (const uint32_t g : {2 * n, 2 * n + 1, 4 + n}) {
        sum += h.node(n).allocation(GroupId(g)).write_milli_units_per_second;
      }
    }
    if (plant) {
      EXPECT_GT(sum, 100'000) << "the plant went unseen";
      continue;
    }
    EXPECT_EQ(h.controller()->partition_count(), 6u);
    ASSERT_TRUE(h.converged());
    EXPECT_EQ(h.node(1).allocation(GroupId(5)).write_milli_units_per_second, 16'666);
    EXPECT_EQ(h.node(0).allocation(GroupId(1)).write_milli_units_per_second, 16'666);
    EXPECT_LE(sum, 100'000);
    // The table's capacity did not change: one announcement at start only.
    EXPECT_EQ(h.controller()->capacity().write_units_per_second, 100);
  }
}

// An on-demand table of 4,000 WCU on four partitions: each partition may take its maximum, 1,000
// WCU. Split to eight, each still may: the table's capacity is metered at the table (GAC), and a
// child held at 500 could never cross the split threshold of a partition's maximum.
TEST(CapacityControllerTest, OnDemandPartitionsKeepThePartitionMaximumAcrossSplits) {
  RunSetup setup;
  setup.controller.mode = CapacityMode::kOnDemand;
  Harness h(setup);
  h.run_for(sim::seconds(30));
  ASSERT_TRUE(h.converged());
  EXPECT_EQ(h.node(0).allocation(GroupId(0)).write_milli_units_per_second, 1'000'000);
  for (uint32_t g = 4; g < 8; ++g) h.node(g % 2).add_group(GroupId(g));
  h.added_partitions = 4;
  h.run_for(sim::seconds(30));
  EXPECT_EQ(h.controller()->partition_count(), 8u);
  ASSERT_TRUE(h.converged());
  EXPECT_EQ(h.node(1).allocation(GroupId(7)).write_milli_units_per_second, 1'000'000);
  EXPECT_EQ(h.node(0).allocation(GroupId(0)).write_milli_units_per_second, 1'000'000);
  EXPECT_EQ(h.node(0).allocation(GroupId(0)).read_milli_units_per_second, 3'000'000);
}

// ---------------------------------------------------------------------------------------------
// Failure paths

TEST(CapacityControllerTest, ControllerDownNodesKeepTheirAllocations) {
  Harness h(auto_scaled_writes());
  h.demand.write_milli_units_per_second_per_partition = 23'000;
  h.run_for(sim::minutes(7));
  ASSERT_TRUE(h.converged());
  const PartitionAllocation scaled = h.node(0).allocation(GroupId(0));
  ASSERT_GT(scaled.write_milli_units_per_second, 25'000);
  h.world.power_off(h.control);
  h.demand.write_milli_units_per_second_per_partition = 0;
  h.run_for(sim::minutes(30));
  for (uint32_t n = 0; n < 2; ++n) {
    EXPECT_EQ(h.node(n).allocation(GroupId(2 * n)), scaled);
    EXPECT_EQ(h.node(n).allocation(GroupId(2 * n + 1)), scaled);
  }
  // The controller comes back: it listens to the nodes' reports first, recovers the scaled
  // capacity from the allocation they hold, and announces it again in a new epoch.
  const AllocationVersion before = h.node(0).agent().version();
  h.world.power_on(h.control);
  h.run_for(sim::seconds(20));
  ASSERT_TRUE(h.controller()->recovered());
  EXPECT_TRUE(h.converged());
  EXPECT_GT(h.node(0).agent().version().epoch, before.epoch);
  EXPECT_EQ(h.node(0).allocation(GroupId(0)), scaled);
}

TEST(CapacityControllerTest, ARestartedNodeAsksForTheCurrentAllocation) {
  Harness h(auto_scaled_writes());
  h.demand.write_milli_units_per_second_per_partition = 23'000;
  h.run_for(sim::minutes(7));
  ASSERT_TRUE(h.converged());
  const PartitionAllocation scaled = h.node(1).allocation(GroupId(2));
  h.world.crash(h.nodes[1].host);
  h.run_for(sim::seconds(5));
  h.world.restart(h.nodes[1].host);
  h.run_for(sim::seconds(2));
  // It booted with the static allocation, asked, and applied the controller's current one.
  EXPECT_EQ(h.node(1).updates_applied, 1u);
  EXPECT_TRUE(h.converged());
  EXPECT_EQ(h.node(1).allocation(GroupId(2)), scaled);
}

// Seeded: random demand and message loss. Whatever is lost, the nodes converge on the
// controller's allocation, and no node's version ever goes back.
TEST(CapacityControllerTest, LostMessagesOnlyDelayConvergence) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    sim::Random random(seed);
    RunSetup setup = auto_scaled_writes();
    setup.seed = seed;
    setup.loss_probability = 0.05 + 0.05 * static_cast<double>(random.uniform_u64(6));
    Harness h(setup);
    h.demand.write_milli_units_per_second_per_partition =
        20'000 + static_cast<int64_t>(random.uniform_u64(20)) * 1000;
    h.run_for(sim::minutes(8));
    // No demand: nothing new to scale to; 30 s past a data point, every update has settled.
    h.demand.write_milli_units_per_second_per_partition = 0;
    h.run_for(sim::seconds(90));
    EXPECT_GT(h.controller()->capacity().write_units_per_second, 100) << "seed " << seed;
    EXPECT_TRUE(h.converged()) << "seed " << seed << " controller "
                               << h.controller()->version().number << " node0 "
                               << h.node(0).agent().version().number << " node1 "
                               << h.node(1).agent().version().number << " behind "
                               << h.controller()->nodes_behind() << " cap "
                               << h.controller()->capacity().write_units_per_second;
    for (uint32_t n = 0; n < 2; ++n) {
      const std::vector<AllocationVersion>& seen = h.node(n).versions_seen;
      for (size_t i = 1; i < seen.size(); ++i) {
        EXPECT_LE(seen[i - 1], seen[i]) << "seed " << seed;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Versions

AllocationUpdate update(uint64_t epoch, uint64_t number, int64_t write_milli_units) {
  AllocationUpdate u;
  u.version = AllocationVersion{epoch, number};
  u.allocation.write_milli_units_per_second = write_milli_units;
  return u;
}

// Seeded property: updates delivered in any order, with duplicates, leave the agent holding the
// allocation of the newest version it received. The planted agent that accepts any differing
// version is caught on some seed.
bool newest_wins(uint64_t seed, bool plant) {
  sim::Random random(seed);
  CapacityAgent::Options options;
  options.plant_accept_older_version = plant;
  CapacityAgent agent(options, sim::Address{sim::HostId(1), kNodePort}, 1,
                      PartitionAllocation{0, 1000});
  std::vector<AllocationUpdate> updates;
  for (uint64_t epoch = 1; epoch <= 2; ++epoch) {
    for (uint64_t number = 1; number <= 4; ++number) {
      updates.push_back(update(epoch, number, static_cast<int64_t>(epoch * 100 + number) * 1000));
    }
  }
  AllocationVersion newest;
  PartitionAllocation newest_allocation{0, 1000};
  for (int i = 0; i < 20; ++i) {
    const AllocationUpdate& u = updates[random.uniform_u64(updates.size())];
    const CapacityAgent::UpdateResult result = agent.on_update(u);
    if (u.version > newest) {
      newest = u.version;
      newest_allocation = u.allocation;
    }
    if (result.ack.version != newest) return false;
    if (agent.allocation() != newest_allocation) return false;
  }
  return true;
}

TEST(CapacityControllerTest, StaleUpdateNeverLowersANewerOne) {
  // The plain case: version 5 raised the allocation; a delayed version 4 arrives after it.
  CapacityAgent agent(CapacityAgent::Options{}, sim::Address{sim::HostId(1), kNodePort}, 1,
                      PartitionAllocation{0, 25'000});
  EXPECT_TRUE(agent.on_update(update(7, 5, 33'000)).apply.has_value());
  const CapacityAgent::UpdateResult stale = agent.on_update(update(7, 4, 25'000));
  EXPECT_FALSE(stale.apply.has_value());
  EXPECT_EQ(stale.ack.version, (AllocationVersion{7, 5}));
  EXPECT_EQ(agent.allocation().write_milli_units_per_second, 33'000);
  // A restarted controller's epoch wins over the old one's numbers.
  EXPECT_TRUE(agent.on_update(update(9, 1, 25'000)).apply.has_value());

  uint32_t planted_caught = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    EXPECT_TRUE(newest_wins(seed, false)) << "seed " << seed;
    planted_caught += newest_wins(seed, true) ? 0 : 1;
  }
  EXPECT_GT(planted_caught, 0u) << "the planted older-version acceptance went unseen";
}

// The report's cumulative counters: a lost report's consumption arrives with the next one, and a
// duplicated or reordered one adds nothing.
TEST(CapacityControllerTest, ConsumptionReportsAreCumulative) {
  CapacityAgent agent(CapacityAgent::Options{}, sim::Address{sim::HostId(1), kNodePort}, 3,
                      PartitionAllocation{});
  agent.on_admitted(GroupId(4), 1500, /*write=*/true);
  const ConsumedCapacityReport first = agent.make_report({GroupId(4), GroupId(5)});
  agent.on_admitted(GroupId(4), 500, /*write=*/false);
  agent.on_admitted(GroupId(5), 2000, /*write=*/true);
  const ConsumedCapacityReport second = agent.make_report({GroupId(4), GroupId(5)});
  EXPECT_EQ(first.sequence + 1, second.sequence);
  ASSERT_EQ(second.groups.size(), 2u);
  EXPECT_EQ(second.groups[0].group, GroupId(4));
  EXPECT_EQ(second.groups[0].write_milli_units, 1500);
  EXPECT_EQ(second.groups[0].read_milli_units, 500);
  EXPECT_EQ(second.groups[1].write_milli_units, 2000);
}

}  // namespace
}  // namespace dynasim::model
