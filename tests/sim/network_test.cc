// Tests of the simulated network: partitions cut exactly what they name, latency and bandwidth
// follow their configuration, links keep order unless the reorder fault fires, random faults hit
// at their configured rates, clogs delay without dropping, and runs are deterministic.
#include "sim/network.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include "sim/simulation.h"

namespace dynasim::sim {
namespace {

constexpr EventKind kTestSend = event_kind("test.send");
constexpr EventKind kTestFault = event_kind("test.fault");

struct Delivery {
  SimTime at;
  Address from;
  Address to;
  uint32_t type;
  uint32_t size_bytes;
};

class Recorder final : public NetworkReceiver {
 public:
  explicit Recorder(const Simulation& simulation) : simulation_(simulation) {}
  void deliver(Address from, Address to, const Message& message) override {
    deliveries.push_back(Delivery{simulation_.now(), from, to, message.type, message.size_bytes});
  }
  std::vector<Delivery> deliveries;

 private:
  const Simulation& simulation_;
};

Address at_host(uint32_t host) {
  return Address{HostId(host), 7};
}

Message message_of(uint32_t type, uint32_t size_bytes = 0) {
  Message message;
  message.type = type;
  message.size_bytes = size_bytes;
  message.digest = splitmix64(type);
  return message;
}

// Options with fixed latencies and no bandwidth limit, so a test can predict times exactly.
constexpr double kUnlimitedBandwidth = std::numeric_limits<double>::infinity();

NetworkOptions exact_options(int64_t intra_latency_ns = 100'000,
                             int64_t cross_latency_ns = 300'000) {
  NetworkOptions options;
  options.intra_az.one_way_latency_ns = DistributionSpec::constant(intra_latency_ns);
  options.intra_az.bandwidth_bytes_per_second = kUnlimitedBandwidth;
  options.cross_az.one_way_latency_ns = DistributionSpec::constant(cross_latency_ns);
  options.cross_az.bandwidth_bytes_per_second = kUnlimitedBandwidth;
  return options;
}

// Six hosts in three AZs: hosts 0 and 1 in AZ 0, 2 and 3 in AZ 1, 4 and 5 in AZ 2.
struct Harness {
  explicit Harness(uint64_t seed = 1, NetworkOptions options = NetworkOptions())
      : simulation(seed), recorder(simulation), network(simulation, std::move(options), &recorder) {
    for (uint32_t host = 0; host < 6; ++host) network.add_host(HostId(host), AzId(host / 2));
  }

  // Sends at a future time, from inside an event, as model code would.
  void send_at(SimTime when, uint32_t from, uint32_t to, uint32_t type, uint32_t size_bytes = 0) {
    Network* target = &network;
    simulation.call_at(when, kTestSend, from, [target, from, to, type, size_bytes] {
      target->send(at_host(from), at_host(to), message_of(type, size_bytes));
    });
  }

  Simulation simulation;
  Recorder recorder;
  Network network;
};

using Link = std::pair<uint32_t, uint32_t>;

std::set<Link> all_links() {
  std::set<Link> links;
  for (uint32_t from = 0; from < 6; ++from) {
    for (uint32_t to = 0; to < 6; ++to) {
      if (from != to) links.insert({from, to});
    }
  }
  return links;
}

std::set<Link> links_where(bool (*cut)(uint32_t, uint32_t)) {
  std::set<Link> links;
  for (const Link& link : all_links()) {
    if (cut(link.first, link.second)) links.insert(link);
  }
  return links;
}

std::set<Link> unreachable_links(const Network& network) {
  std::set<Link> links;
  for (const Link& link : all_links()) {
    if (!network.can_reach(HostId(link.first), HostId(link.second))) links.insert(link);
  }
  return links;
}

// Sends one message on every directed link and returns the links whose message did not arrive.
std::set<Link> links_that_lose_traffic(Harness& harness) {
  harness.recorder.deliveries.clear();
  for (const Link& link : all_links()) {
    harness.network.send(at_host(link.first), at_host(link.second), message_of(0));
  }
  harness.simulation.run();
  std::set<Link> lost = all_links();
  for (const Delivery& delivery : harness.recorder.deliveries) {
    lost.erase({delivery.from.host.value, delivery.to.host.value});
  }
  return lost;
}

bool in(uint32_t host, std::initializer_list<uint32_t> hosts) {
  return std::find(hosts.begin(), hosts.end(), host) != hosts.end();
}

// ---- Partitions -------------------------------------------------------------------------------

TEST(NetworkPartitionTest, SymmetricPartitionCutsExactlyTheNamedLinks) {
  Harness harness;
  harness.network.partition({HostId(0), HostId(1)}, {HostId(2), HostId(3)}, true);
  const std::set<Link> expected = links_where([](uint32_t from, uint32_t to) {
    return (in(from, {0, 1}) && in(to, {2, 3})) || (in(from, {2, 3}) && in(to, {0, 1}));
  });
  ASSERT_EQ(expected.size(), 8u);
  EXPECT_EQ(unreachable_links(harness.network), expected);
  EXPECT_EQ(links_that_lose_traffic(harness), expected);
  EXPECT_EQ(harness.network.stats().dropped_partition, 8u);
}

TEST(NetworkPartitionTest, AsymmetricPartitionCutsOnlyOneDirection) {
  Harness harness;
  harness.network.partition({HostId(0), HostId(1)}, {HostId(2), HostId(3)}, false);
  const std::set<Link> expected = links_where([](uint32_t from, uint32_t to) {
    return in(from, {0, 1}) && in(to, {2, 3});
  });
  ASSERT_EQ(expected.size(), 4u);
  EXPECT_EQ(unreachable_links(harness.network), expected);
  EXPECT_EQ(links_that_lose_traffic(harness), expected);
}

TEST(NetworkPartitionTest, IsolateHostCutsEveryLinkOfThatHostAndNoOther) {
  Harness harness;
  harness.network.isolate_host(HostId(3));
  const std::set<Link> expected =
      links_where([](uint32_t from, uint32_t to) { return (from == 3) != (to == 3); });
  ASSERT_EQ(expected.size(), 10u);
  EXPECT_EQ(unreachable_links(harness.network), expected);
  EXPECT_EQ(links_that_lose_traffic(harness), expected);
}

TEST(NetworkPartitionTest, IsolateAzCutsOnlyLinksCrossingItsBoundary) {
  Harness harness;
  harness.network.isolate_az(AzId(1));  // hosts 2 and 3
  const std::set<Link> expected = links_where([](uint32_t from, uint32_t to) {
    return in(from, {2, 3}) != in(to, {2, 3});
  });
  ASSERT_EQ(expected.size(), 16u);
  EXPECT_EQ(unreachable_links(harness.network), expected);
  EXPECT_EQ(links_that_lose_traffic(harness), expected);
  EXPECT_TRUE(harness.network.can_reach(HostId(2), HostId(3)));
  EXPECT_TRUE(harness.network.can_reach(HostId(3), HostId(2)));
}

TEST(NetworkPartitionTest, HealRestoresOnlyThatPartition) {
  Harness harness;
  Network& network = harness.network;
  const PartitionId zero_one = network.partition({HostId(0)}, {HostId(1)}, true);
  const PartitionId five = network.isolate_host(HostId(5));
  const PartitionId zero_to_two = network.partition({HostId(0)}, {HostId(2)}, false);
  const PartitionId zero_two_again = network.partition({HostId(0)}, {HostId(2)}, true);
  EXPECT_EQ(network.active_partitions(), 4u);

  EXPECT_TRUE(network.heal(zero_one));
  EXPECT_FALSE(network.heal(zero_one));  // already healed
  EXPECT_TRUE(network.can_reach(HostId(0), HostId(1)));
  EXPECT_TRUE(network.can_reach(HostId(1), HostId(0)));
  EXPECT_FALSE(network.can_reach(HostId(5), HostId(0)));
  EXPECT_FALSE(network.can_reach(HostId(0), HostId(2)));

  // Two rules cut 0 -> 2; healing one leaves the other in force.
  EXPECT_TRUE(network.heal(zero_to_two));
  EXPECT_FALSE(network.can_reach(HostId(0), HostId(2)));
  EXPECT_FALSE(network.can_reach(HostId(2), HostId(0)));
  EXPECT_TRUE(network.heal(zero_two_again));
  EXPECT_TRUE(network.can_reach(HostId(0), HostId(2)));

  const std::set<Link> expected =
      links_where([](uint32_t from, uint32_t to) { return (from == 5) != (to == 5); });
  EXPECT_EQ(unreachable_links(network), expected);
  EXPECT_EQ(links_that_lose_traffic(harness), expected);

  network.isolate_az(AzId(0));
  network.heal_all();
  EXPECT_EQ(network.active_partitions(), 0u);
  EXPECT_TRUE(unreachable_links(network).empty());
  EXPECT_TRUE(links_that_lose_traffic(harness).empty());
  EXPECT_FALSE(network.heal(five));
}

TEST(NetworkPartitionTest, InFlightMessageIsDroppedWhenAPartitionIsRaisedBeforeDelivery) {
  Harness harness(1, exact_options());
  harness.network.send(at_host(0), at_host(2), message_of(1));
  harness.simulation.run_until(SimTime(100'000));  // in flight: it arrives at 300 us
  harness.network.partition({HostId(0)}, {HostId(2)}, false);
  harness.simulation.run();
  EXPECT_TRUE(harness.recorder.deliveries.empty());
  EXPECT_EQ(harness.network.stats().dropped_partition, 1u);
  EXPECT_EQ(harness.network.messages_held(), 0u);
}

TEST(NetworkPartitionTest, InFlightMessageSurvivesAPartitionHealedBeforeDelivery) {
  Harness harness(1, exact_options());
  harness.network.send(at_host(0), at_host(2), message_of(1));
  harness.simulation.run_until(SimTime(100'000));
  const PartitionId cut = harness.network.partition({HostId(0)}, {HostId(2)}, false);
  harness.simulation.run_until(SimTime(200'000));
  harness.network.heal(cut);
  harness.simulation.run();
  ASSERT_EQ(harness.recorder.deliveries.size(), 1u);
  EXPECT_EQ(harness.recorder.deliveries[0].at.ns, 300'000);
  EXPECT_EQ(harness.network.stats().dropped_partition, 0u);
}

// ---- Latency and bandwidth --------------------------------------------------------------------

struct LatencySample {
  double mean_ns = 0;
  double median_ns = 0;
  int64_t minimum_ns = 0;
};

// One message at a time, so neither bandwidth nor link order shapes the figures.
LatencySample measure_latency(Harness& harness, uint32_t from, uint32_t to, int count) {
  std::vector<int64_t> latencies_ns;
  for (int i = 0; i < count; ++i) {
    harness.recorder.deliveries.clear();
    const SimTime sent = harness.simulation.now();
    harness.network.send(at_host(from), at_host(to), message_of(static_cast<uint32_t>(i)));
    harness.simulation.run_until(sent + milliseconds(30));
    EXPECT_EQ(harness.recorder.deliveries.size(), 1u);
    if (harness.recorder.deliveries.size() != 1) break;
    latencies_ns.push_back((harness.recorder.deliveries[0].at - sent).ns);
  }
  LatencySample sample;
  if (latencies_ns.empty()) return sample;
  double total = 0;
  for (int64_t latency : latencies_ns) total += static_cast<double>(latency);
  sample.mean_ns = total / static_cast<double>(latencies_ns.size());
  std::sort(latencies_ns.begin(), latencies_ns.end());
  sample.median_ns = static_cast<double>(latencies_ns[latencies_ns.size() / 2]);
  sample.minimum_ns = latencies_ns.front();
  return sample;
}

TEST(NetworkLatencyTest, DefaultIntraAzIsFasterThanCrossAzAndFollowsItsDistribution) {
  Harness harness(11);
  const NetworkOptions defaults;
  const LatencySample intra = measure_latency(harness, 0, 1, 4000);
  const LatencySample cross = measure_latency(harness, 0, 2, 4000);

  EXPECT_LT(intra.mean_ns, cross.mean_ns);
  EXPECT_NEAR(intra.mean_ns, defaults.intra_az.one_way_latency_ns.expected_mean(),
              0.03 * defaults.intra_az.one_way_latency_ns.expected_mean());
  EXPECT_NEAR(cross.mean_ns, defaults.cross_az.one_way_latency_ns.expected_mean(),
              0.03 * defaults.cross_az.one_way_latency_ns.expected_mean());
  EXPECT_NEAR(intra.median_ns, defaults.intra_az.one_way_latency_ns.median,
              0.03 * defaults.intra_az.one_way_latency_ns.median);
  EXPECT_NEAR(cross.median_ns, defaults.cross_az.one_way_latency_ns.median,
              0.03 * defaults.cross_az.one_way_latency_ns.median);
  EXPECT_GE(intra.minimum_ns, static_cast<int64_t>(defaults.intra_az.one_way_latency_ns.minimum));
  EXPECT_GE(cross.minimum_ns, static_cast<int64_t>(defaults.cross_az.one_way_latency_ns.minimum));
  // Sanity against the cited figures: cross-AZ round trips "usually <1ms", intra-AZ well below.
  EXPECT_LT(2 * cross.median_ns, 1e6);
  EXPECT_LT(2 * intra.median_ns, 0.5e6);
}

TEST(NetworkLatencyTest, ConfiguredDistributionAndLinkOverrideAreUsed) {
  NetworkOptions options = exact_options(777'000, 300'000);
  Harness harness(1, options);
  harness.network.send(at_host(0), at_host(1), message_of(1));
  harness.simulation.run();
  ASSERT_EQ(harness.recorder.deliveries.size(), 1u);
  EXPECT_EQ(harness.recorder.deliveries[0].at.ns, 777'000);

  LinkOptions slow;
  slow.one_way_latency_ns = DistributionSpec::constant(2'000'000);
  slow.bandwidth_bytes_per_second = 1e6;  // 1000 bytes take 1 ms
  harness.network.set_link_override(HostId(0), HostId(1), slow);
  const SimTime sent = harness.simulation.now();
  harness.network.send(at_host(0), at_host(1), message_of(2, 1000));
  harness.network.send(at_host(1), at_host(0), message_of(3, 1000));  // other direction: default
  harness.simulation.run();
  ASSERT_EQ(harness.recorder.deliveries.size(), 3u);
  EXPECT_EQ(harness.recorder.deliveries[1].type, 3u);
  EXPECT_EQ((harness.recorder.deliveries[1].at - sent).ns, 777'000);
  EXPECT_EQ(harness.recorder.deliveries[2].type, 2u);
  EXPECT_EQ((harness.recorder.deliveries[2].at - sent).ns, 3'000'000);

  harness.network.clear_link_override(HostId(0), HostId(1));
  const SimTime sent_again = harness.simulation.now();
  harness.network.send(at_host(0), at_host(1), message_of(4, 1000));
  harness.simulation.run();
  ASSERT_EQ(harness.recorder.deliveries.size(), 4u);
  EXPECT_EQ((harness.recorder.deliveries[3].at - sent_again).ns, 777'000);
}

TEST(NetworkBandwidthTest, BackToBackMessagesAreSpacedBySizeOverBandwidth) {
  NetworkOptions options = exact_options(100'000, 300'000);
  options.intra_az.bandwidth_bytes_per_second = 1e9;  // 20,000 bytes take 20 us
  options.cross_az.bandwidth_bytes_per_second = 5e8;  // ... and 40 us across AZs
  Harness harness(1, options);
  constexpr uint32_t kCount = 10;
  constexpr uint32_t kSizeBytes = 20'000;
  for (uint32_t i = 0; i < kCount; ++i) {
    harness.network.send(at_host(0), at_host(1), message_of(i, kSizeBytes));
  }
  // Queued behind the burst on host 0's serialiser, though it goes elsewhere.
  harness.network.send(at_host(0), at_host(2), message_of(100, kSizeBytes));
  // Another host's serialiser is independent.
  harness.network.send(at_host(2), at_host(3), message_of(200, kSizeBytes));
  harness.simulation.run();

  std::vector<SimTime> burst;
  for (const Delivery& delivery : harness.recorder.deliveries) {
    if (delivery.type < kCount) {
      EXPECT_EQ(delivery.type, burst.size());
      burst.push_back(delivery.at);
    } else if (delivery.type == 100) {
      EXPECT_EQ(delivery.at.ns, kCount * 20'000 + 40'000 + 300'000);
    } else {
      EXPECT_EQ(delivery.at.ns, 20'000 + 100'000);
    }
  }
  ASSERT_EQ(burst.size(), kCount);
  EXPECT_EQ(burst[0].ns, 20'000 + 100'000);
  for (uint32_t i = 1; i < kCount; ++i) EXPECT_EQ((burst[i] - burst[i - 1]).ns, 20'000);
  EXPECT_EQ(harness.recorder.deliveries.size(), kCount + 2);
  EXPECT_EQ(harness.network.stats().bytes_sent, uint64_t{kCount + 2} * kSizeBytes);
}

// ---- Ordering ---------------------------------------------------------------------------------

// Sends `count` messages 0 -> 1, 10 us apart, over a link whose latency varies far more than that,
// and returns how many deliveries arrived after a message sent later.
uint32_t count_inversions(Harness& harness, uint32_t count) {
  for (uint32_t i = 0; i < count; ++i) harness.send_at(SimTime(i * 10'000), 0, 1, i);
  harness.simulation.run();
  EXPECT_EQ(harness.recorder.deliveries.size(), count);
  uint32_t inversions = 0;
  uint32_t highest = 0;
  for (size_t i = 0; i < harness.recorder.deliveries.size(); ++i) {
    const uint32_t type = harness.recorder.deliveries[i].type;
    if (i > 0 && type < highest) ++inversions;
    highest = std::max(highest, type);
  }
  return inversions;
}

NetworkOptions jittery_options() {
  NetworkOptions options;
  options.intra_az.one_way_latency_ns = DistributionSpec::exponential(500'000);
  options.intra_az.bandwidth_bytes_per_second = kUnlimitedBandwidth;
  return options;
}

TEST(NetworkOrderingTest, FifoLinksDeliverInSendOrderWithoutTheReorderFault) {
  Harness harness(5, jittery_options());
  EXPECT_EQ(count_inversions(harness, 2000), 0u);
  EXPECT_EQ(harness.network.stats().reordered, 0u);
}

TEST(NetworkOrderingTest, WithoutFifoLinksLatencyJitterReorders) {
  // The control for the test above: the same traffic does reorder when links are not FIFO.
  NetworkOptions options = jittery_options();
  options.fifo_links = false;
  Harness harness(5, options);
  EXPECT_GT(count_inversions(harness, 2000), 100u);
}

TEST(NetworkOrderingTest, ReorderFaultSometimesBreaksFifo) {
  NetworkOptions options = jittery_options();
  options.intra_az.one_way_latency_ns = DistributionSpec::constant(100'000);
  options.reorder_probability = 0.05;
  options.reorder_window = milliseconds(2);
  Harness harness(5, options);
  const uint32_t inversions = count_inversions(harness, 2000);
  const uint64_t reordered = harness.network.stats().reordered;
  EXPECT_GT(inversions, 0u);
  EXPECT_GE(reordered, 60u);  // expected 100
  EXPECT_LE(reordered, 140u);
  EXPECT_LT(inversions, 2000u / 2);  // "sometimes": most messages keep their order
}

// ---- Random faults ----------------------------------------------------------------------------

TEST(NetworkFaultRateTest, LossRateMatchesItsProbability) {
  NetworkOptions options = exact_options();
  options.loss_probability = 0.2;
  Harness harness(3, options);
  constexpr uint32_t kCount = 20'000;
  for (uint32_t i = 0; i < kCount; ++i) harness.network.send(at_host(0), at_host(2), message_of(i));
  harness.simulation.run();
  const Network::Stats& stats = harness.network.stats();
  EXPECT_EQ(stats.delivered + stats.dropped_loss, kCount);
  EXPECT_EQ(stats.delivered, harness.recorder.deliveries.size());
  EXPECT_NEAR(static_cast<double>(stats.dropped_loss) / kCount, 0.2, 0.015);

  harness.network.set_loss_probability(1.0);
  harness.network.send(at_host(0), at_host(2), message_of(0));
  harness.network.set_loss_probability(0.0);
  harness.network.send(at_host(0), at_host(2), message_of(1));
  harness.simulation.run();
  EXPECT_EQ(harness.network.stats().dropped_loss, stats.dropped_loss);
  EXPECT_EQ(harness.recorder.deliveries.back().type, 1u);
}

TEST(NetworkFaultRateTest, DuplicationRateMatchesItsProbability) {
  NetworkOptions options = exact_options();
  options.duplicate_probability = 0.1;
  Harness harness(3, options);
  constexpr uint32_t kCount = 20'000;
  for (uint32_t i = 0; i < kCount; ++i) harness.network.send(at_host(0), at_host(2), message_of(i));
  harness.simulation.run();
  const Network::Stats& stats = harness.network.stats();
  EXPECT_EQ(stats.delivered, kCount + stats.duplicated);
  EXPECT_NEAR(static_cast<double>(stats.duplicated) / kCount, 0.1, 0.01);
  std::vector<uint32_t> copies(kCount, 0);
  for (const Delivery& delivery : harness.recorder.deliveries) ++copies[delivery.type];
  for (uint32_t count : copies) {
    EXPECT_GE(count, 1u);
    EXPECT_LE(count, 2u);
  }
}

TEST(NetworkFaultRateTest, FullSlotTableDropsAndRecovers) {
  NetworkOptions options = exact_options();
  options.max_in_flight = 4;
  Harness harness(1, options);
  for (uint32_t i = 0; i < 6; ++i) harness.network.send(at_host(0), at_host(1), message_of(i));
  EXPECT_EQ(harness.network.messages_held(), 4u);
  harness.simulation.run();
  EXPECT_EQ(harness.recorder.deliveries.size(), 4u);
  EXPECT_EQ(harness.network.stats().dropped_overflow, 2u);
  harness.network.send(at_host(0), at_host(1), message_of(9));
  harness.simulation.run();
  EXPECT_EQ(harness.recorder.deliveries.size(), 5u);
}

// ---- Clogging ---------------------------------------------------------------------------------

TEST(NetworkClogTest, ClogHostDelaysWithoutDroppingUntilTheClogEnds) {
  Harness harness(1, exact_options(100'000, 300'000));
  harness.network.clog_host(HostId(0), milliseconds(50));
  for (uint32_t i = 0; i < 3; ++i) harness.send_at(SimTime(1'000'000), 0, 1, i);
  harness.send_at(SimTime(2'000'000), 1, 0, 10);
  harness.send_at(SimTime(2'000'000), 2, 3, 20);
  harness.simulation.run();

  const auto& deliveries = harness.recorder.deliveries;
  ASSERT_EQ(deliveries.size(), 5u);
  EXPECT_EQ(deliveries[0].type, 20u);  // not involved: on time
  EXPECT_EQ(deliveries[0].at.ns, 2'100'000);
  std::vector<uint32_t> from_zero;
  for (const Delivery& delivery : deliveries) {
    if (delivery.type == 20) continue;
    // Departure waits for the clog to end at 50 ms, then the usual 100 us.
    EXPECT_EQ(delivery.at.ns, 50'100'000);
    if (delivery.from.host == HostId(0)) from_zero.push_back(delivery.type);
  }
  EXPECT_EQ(from_zero, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(harness.network.stats().clog_delayed, 4u);
  EXPECT_EQ(harness.network.stats().dropped_loss + harness.network.stats().dropped_partition, 0u);
}

TEST(NetworkClogTest, LaterClogExtendsButNeverShortensALinkClogInOneDirectionOnly) {
  Harness harness(1, exact_options(100'000, 300'000));
  harness.network.clog_link(HostId(0), HostId(1), milliseconds(10));
  harness.send_at(SimTime(1'000'000), 0, 1, 1);
  harness.send_at(SimTime(1'000'000), 1, 0, 2);
  Network* network = &harness.network;
  harness.simulation.call_at(SimTime(5'000'000), kTestFault, 0, [network] {
    network->clog_link(HostId(0), HostId(1), milliseconds(20));  // now ends at 25 ms
  });
  harness.simulation.call_at(SimTime(6'000'000), kTestFault, 0, [network] {
    network->clog_link(HostId(0), HostId(1), milliseconds(1));  // does not shorten it
  });
  harness.simulation.run();
  const auto& deliveries = harness.recorder.deliveries;
  ASSERT_EQ(deliveries.size(), 2u);
  EXPECT_EQ(deliveries[0].type, 2u);
  EXPECT_EQ(deliveries[0].at.ns, 1'100'000);
  EXPECT_EQ(deliveries[1].type, 1u);
  EXPECT_EQ(deliveries[1].at.ns, 25'100'000);
}

TEST(NetworkClogTest, MessageArrivingAtAClogWaitsInOrderUntilItEnds) {
  Harness harness(1, exact_options(100'000, 300'000));
  for (uint32_t i = 0; i < 4; ++i) harness.send_at(SimTime(i * 10'000), 0, 2, i);
  Network* network = &harness.network;
  harness.simulation.call_at(SimTime(100'000), kTestFault, 2,
                             [network] { network->clog_host(HostId(2), milliseconds(5)); });
  harness.send_at(SimTime(1'000'000), 0, 2, 4);  // sent during the clog, after the others
  harness.simulation.run();
  const auto& deliveries = harness.recorder.deliveries;
  ASSERT_EQ(deliveries.size(), 5u);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(deliveries[i].type, i);
    EXPECT_EQ(deliveries[i].at.ns, 5'100'000);  // held on arrival until the clog ends
  }
  EXPECT_EQ(deliveries[4].type, 4u);
  EXPECT_EQ(deliveries[4].at.ns, 5'100'000 + 300'000);  // departed when the clog ended
  EXPECT_EQ(harness.network.stats().clog_delayed, 5u);
  EXPECT_EQ(harness.network.messages_held(), 0u);
}

// ---- Loopback ---------------------------------------------------------------------------------

TEST(NetworkLoopbackTest, LoopbackIsFastAndNoNetworkFaultTouchesIt) {
  NetworkOptions options;
  options.loss_probability = 1.0;
  Harness harness(1, options);
  harness.network.isolate_host(HostId(4));
  harness.network.clog_host(HostId(4), seconds(1));
  harness.network.send(at_host(4), Address{HostId(4), 9}, message_of(1));
  harness.network.send(at_host(4), at_host(5), message_of(2));  // lost to the partition
  harness.simulation.run_until(SimTime(100'000));
  ASSERT_EQ(harness.recorder.deliveries.size(), 1u);
  EXPECT_EQ(harness.recorder.deliveries[0].at.ns, Network::kLoopbackLatency.ns);
  EXPECT_EQ(harness.recorder.deliveries[0].to.port, 9u);
  EXPECT_TRUE(harness.network.can_reach(HostId(4), HostId(4)));
  EXPECT_EQ(harness.network.stats().dropped_partition, 1u);
}

// ---- Determinism ------------------------------------------------------------------------------

struct RunResult {
  std::vector<std::pair<int64_t, uint32_t>> deliveries;
  uint64_t trace_hash;
};

RunResult run_mixed_traffic(uint64_t seed) {
  NetworkOptions options;
  options.loss_probability = 0.05;
  options.duplicate_probability = 0.05;
  options.reorder_probability = 0.05;
  Harness harness(seed, options);
  for (uint32_t i = 0; i < 600; ++i) {
    const uint32_t from = i % 6;
    const uint32_t to = (i * 7 + 3) % 6;
    harness.send_at(SimTime(int64_t{i} * 20'000), from, to, i, 100 + i);
  }
  Network* network = &harness.network;
  harness.simulation.call_at(SimTime(2'000'000), kTestFault, 0, [network] {
    network->partition({HostId(0), HostId(1)}, {HostId(4)}, true);
    network->clog_host(HostId(3), milliseconds(3));
  });
  harness.simulation.call_at(SimTime(6'000'000), kTestFault, 0, [network] { network->heal_all(); });
  harness.simulation.run();
  RunResult result;
  for (const Delivery& delivery : harness.recorder.deliveries) {
    result.deliveries.push_back({delivery.at.ns, delivery.type});
  }
  result.trace_hash = harness.simulation.trace_hash();
  return result;
}

TEST(NetworkDeterminismTest, SameSeedSameRunDifferentSeedDifferentRun) {
  const RunResult first = run_mixed_traffic(42);
  const RunResult again = run_mixed_traffic(42);
  const RunResult other = run_mixed_traffic(43);
  EXPECT_GT(first.deliveries.size(), 500u);
  EXPECT_EQ(first.deliveries, again.deliveries);
  EXPECT_EQ(first.trace_hash, again.trace_hash);
  EXPECT_NE(first.deliveries, other.deliveries);
  EXPECT_NE(first.trace_hash, other.trace_hash);
}

TEST(NetworkDeterminismTest, DeliveredContentReachesTheTraceHash) {
  // Same seed, same times; only the content digest of one message differs.
  const auto run = [](uint64_t digest) {
    Harness harness(9, exact_options());
    Message message = message_of(1);
    message.digest = digest;
    harness.network.send(at_host(0), at_host(1), message);
    harness.simulation.run();
    EXPECT_EQ(harness.recorder.deliveries.size(), 1u);
    return harness.simulation.trace_hash();
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

}  // namespace
}  // namespace dynasim::sim
