// Storage-side admission (model/admission.h): token bucket invariants under clock steps and
// allocation changes, the admitted-throughput bound of a partition over any window, burst
// accrual, the decision names, and the peer check of burst writes. Each property has a planted
// bug that a test shows it catches.
#include "model/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <vector>

#include "sim/random.h"

namespace dynasim::model {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

sim::SimTime at_seconds(int64_t s) {
  return sim::SimTime(s * kNanosPerSecond);
}

sim::Address node_address(uint32_t host) {
  return sim::Address{sim::HostId(host), 8000};
}

// ---------------------------------------------------------------------------------------------
// TokenBucket

// One random walk of operations; the bucket's own assertions check 0 <= tokens <= depth after
// each, and the walk checks it again from outside.
void random_bucket_walk(uint64_t seed, TokenBucketOptions options) {
  sim::Random random(seed);
  sim::SimTime now = sim::SimTime(static_cast<int64_t>(random.uniform_u64(1'000'000)));
  TokenBucket bucket(random.uniform_int(0, 5'000'000), random.uniform_int(0, 50'000'000), now,
                     options);
  for (int step = 0; step < 2000; ++step) {
    const uint64_t op = random.uniform_u64(8);
    if (op == 0) {
      now += sim::Duration(random.uniform_int(0, 20 * kNanosPerSecond));
    } else if (op == 1) {
      // The host clock steps backwards, by up to a minute.
      now = now - sim::Duration(random.uniform_int(0, 60 * kNanosPerSecond));
    } else if (op == 2) {
      const int64_t overflow = bucket.refill(now);
      EXPECT_GE(overflow, 0);
    } else if (op == 3) {
      bucket.refill(now);
      bucket.take_up_to(random.uniform_int(0, 2 * bucket.depth_milli_units() + 1));
    } else if (op == 4) {
      bucket.refill(now);
      if (bucket.tokens_milli_units() > 0) {
        bucket.take(random.uniform_int(0, bucket.tokens_milli_units()));
      }
    } else if (op == 5) {
      bucket.add(random.uniform_int(0, 10'000'000));
    } else if (op == 6) {
      bucket.set_refill_rate(random.uniform_int(0, 5'000'000), now);
    } else {
      bucket.set_depth(random.uniform_int(0, 50'000'000), now);
    }
    ASSERT_GE(bucket.tokens_milli_units(), 0);
    ASSERT_LE(bucket.tokens_milli_units(), bucket.depth_milli_units());
  }
}

TEST(TokenBucketProperty, StaysWithinZeroAndDepthUnderClockStepsAndChanges) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE(seed);
    random_bucket_walk(seed, {});
  }
}

TEST(TokenBucketProperty, RefillIsExactOverManySmallSteps) {
  sim::Random random(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t rate = random.uniform_int(1, 3'000'000);
    TokenBucket bucket(rate, INT64_MAX / 8, sim::SimTime(0));
    bucket.take(bucket.tokens_milli_units());
    sim::SimTime now(0);
    const sim::SimTime end = at_seconds(random.uniform_int(1, 100));
    while (now < end) {
      now = std::min(end, now + sim::Duration(random.uniform_int(1, 50'000'000)));
      bucket.refill(now);
    }
    // No drift from integer division: exactly rate * seconds.
    EXPECT_EQ(bucket.tokens_milli_units(), rate * (end.ns / kNanosPerSecond));
  }
}

TEST(TokenBucketProperty, ClockStepBackRefillsNothingAndCreditsNoSpanTwice) {
  TokenBucket bucket(1000, 1'000'000, at_seconds(0));
  bucket.take(bucket.tokens_milli_units());
  bucket.refill(at_seconds(10));
  EXPECT_EQ(bucket.tokens_milli_units(), 10'000);
  // The clock steps back five seconds: nothing added, nothing taken.
  EXPECT_EQ(bucket.refill(at_seconds(5)), 0);
  EXPECT_EQ(bucket.tokens_milli_units(), 10'000);
  // One more second passes on the stepped clock: exactly one second is credited.
  bucket.refill(at_seconds(6));
  EXPECT_EQ(bucket.tokens_milli_units(), 11'000);
}

TEST(TokenBucketProperty, OverflowIsWhatTheDepthCouldNotHold) {
  TokenBucket bucket(1000, 5000, at_seconds(0));
  bucket.take(2000);
  EXPECT_EQ(bucket.refill(at_seconds(10)), 10'000 - 2000);
  EXPECT_EQ(bucket.tokens_milli_units(), 5000);
}

TEST(TokenBucketDeathTest, PlantedRefillIgnoringDepthIsCaught) {
  TokenBucketOptions planted;
  planted.plant_refill_ignores_depth = true;
  EXPECT_DEATH(random_bucket_walk(3, planted), "token bucket outside");
}

// ---------------------------------------------------------------------------------------------
// Partition admission: the throughput bound

AdmissionOptions roomy_node() {
  AdmissionOptions options;
  options.node_read_units_per_second = 10'000'000;  // the node never limits here
  options.node_write_units_per_second = 10'000'000;
  return options;
}

struct Admitted {
  int64_t time_ns = 0;
  int64_t cost_milli = 0;
};

// The largest excess, over every window [t_i, t_j] between admissions, of admitted milli units
// over rate * (t_j - t_i) + bound_milli; <= 0 means the bound held over every window. Windows
// whose ends are not admissions admit no more than the tightest such window, so these suffice.
// O(n): for fixed j the excess is (S_j*1e9 - rate*t_j) + max_{i<=j}(rate*t_i - S_{i-1}*1e9).
__int128 worst_excess(const std::vector<Admitted>& admitted, int64_t rate_milli_per_s,
                      int64_t bound_milli) {
  __int128 best_start = INT64_MIN;
  __int128 prefix = 0;  // S_{i-1}, milli units
  __int128 worst = INT64_MIN;
  for (const Admitted& a : admitted) {
    best_start = std::max(
        best_start, static_cast<__int128>(rate_milli_per_s) * a.time_ns - prefix * kNanosPerSecond);
    prefix += a.cost_milli;
    const __int128 end_term =
        prefix * kNanosPerSecond - static_cast<__int128>(rate_milli_per_s) * a.time_ns;
    worst = std::max(worst,
                     end_term + best_start - static_cast<__int128>(bound_milli) * kNanosPerSecond);
  }
  return worst;
}

// A random stream of reads and writes on one partition: idle gaps (some longer than the burst
// window), then runs of requests faster than the allocation. Returns the worst excess over the
// stated bound (allocated depth + burst depth + rate * window), for reads and writes.
struct BoundResult {
  __int128 read_excess = 0;
  __int128 write_excess = 0;
  uint64_t burst_admissions = 0;
};

BoundResult run_bound_case(uint64_t seed, AdmissionOptions options) {
  sim::Random random(seed);
  const sim::Address self = node_address(0);
  const std::array<sim::Address, 2> others = {node_address(1), node_address(2)};
  sim::SimTime now = at_seconds(1);
  NodeAdmission admission(options, self, 1, now);
  const GroupId group(7);
  PartitionAllocation allocation;
  allocation.read_milli_units_per_second = random.uniform_int(1, 3000) * kMilliUnitsPerUnit;
  allocation.write_milli_units_per_second = random.uniform_int(1, 1000) * kMilliUnitsPerUnit;
  EXPECT_TRUE(admission.set_allocation(group, allocation, now));

  std::vector<Admitted> reads;
  std::vector<Admitted> writes;
  BoundResult result;
  uint32_t report_sequence = 0;
  for (int phase = 0; phase < 12; ++phase) {
    // Idle: short, or long enough to fill burst (and more, to show the cap).
    const bool long_idle = random.bernoulli(0.4);
    now += sim::Duration(long_idle ? random.uniform_int(200, 1500) * kNanosPerSecond
                                   : random.uniform_int(0, 5 * kNanosPerSecond));
    // Peers report plenty of room so writes are limited by the partition only.
    for (const sim::Address& peer : others) {
      NodeCapacityReport report;
      report.reporter = peer;
      report.incarnation = 1;
      report.sequence = ++report_sequence;
      report.write_available_milli_units = INT64_MAX / 4;
      admission.on_capacity_report(report, now);
    }
    // A run of requests, on average several times the allocation, for up to two seconds.
    const int requests = static_cast<int>(random.uniform_int(1, 4000));
    const int64_t run_ns = random.uniform_int(1, 2 * kNanosPerSecond);
    for (int r = 0; r < requests; ++r) {
      now += sim::Duration(run_ns / requests);
      const uint64_t size_bytes = random.uniform_u64(40'000);
      if (random.bernoulli(0.5)) {
        const CapacityUnits cost =
            read_capacity(size_bytes, random.bernoulli(0.5) ? ReadConsistency::kStrong
                                                            : ReadConsistency::kEventual);
        const AdmissionDecision decision = admission.admit_read(group, cost, now);
        if (admitted(decision)) reads.push_back({now.ns, to_milli_units(cost)});
        if (decision == AdmissionDecision::kAdmittedUsingBurst) ++result.burst_admissions;
      } else {
        const CapacityUnits cost = write_capacity(size_bytes / 8);
        const AdmissionDecision decision = admission.admit_write(group, cost, others, now);
        if (admitted(decision)) writes.push_back({now.ns, to_milli_units(cost)});
        if (decision == AdmissionDecision::kAdmittedUsingBurst) ++result.burst_admissions;
      }
    }
  }
  auto bound = [&](int64_t rate) {
    // allocated depth (allocated_depth_seconds of rate) + burst depth (300 s of rate).
    return rate * options.allocated_depth_seconds + rate * (kBurstWindow.ns / kNanosPerSecond);
  };
  result.read_excess = worst_excess(reads, allocation.read_milli_units_per_second,
                                    bound(allocation.read_milli_units_per_second));
  result.write_excess = worst_excess(writes, allocation.write_milli_units_per_second,
                                     bound(allocation.write_milli_units_per_second));
  return result;
}

TEST(PartitionThroughputBound, AdmittedStaysWithinRateTimesWindowPlusBothDepths) {
  uint64_t burst_admissions = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(seed);
    const BoundResult result = run_bound_case(seed, roomy_node());
    EXPECT_LE(result.read_excess, 0);
    EXPECT_LE(result.write_excess, 0);
    burst_admissions += result.burst_admissions;
  }
  EXPECT_GT(burst_admissions, 0u);  // the streams do exercise burst
}

TEST(PartitionThroughputBound, PlantedUnboundedBurstBreaksTheBound) {
  AdmissionOptions planted = roomy_node();
  planted.plant_burst_ignores_depth = true;
  int broken = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    const BoundResult result = run_bound_case(seed, planted);
    if (result.read_excess > 0 || result.write_excess > 0) ++broken;
  }
  EXPECT_GT(broken, 0) << "the bound check cannot see an unbounded burst bucket";
}

// ---------------------------------------------------------------------------------------------
// Partition admission: accrual, decisions, ceiling

TEST(PartitionAdmission, BurstAccruesUnusedCapacityUpTo300Seconds) {
  NodeAdmission admission(roomy_node(), node_address(0), 1, at_seconds(0));
  const GroupId group(1);
  admission.set_allocation(group, PartitionAllocation{100'000, 50'000}, at_seconds(0));
  // A new partition: full allocated bucket (one second), empty burst.
  NodeAdmission::BucketLevels levels = admission.read_levels(group, at_seconds(0));
  EXPECT_EQ(levels.allocated_milli_units, 100'000);
  EXPECT_EQ(levels.burst_milli_units, 0);
  EXPECT_EQ(levels.burst_depth_milli_units, 300 * 100'000);
  // 100 idle seconds: 100 s of unused capacity is burst.
  levels = admission.read_levels(group, at_seconds(100));
  EXPECT_EQ(levels.burst_milli_units, 100 * 100'000);
  // Long idle: burst holds 300 s, no more.
  levels = admission.read_levels(group, at_seconds(5000));
  EXPECT_EQ(levels.burst_milli_units, 300 * 100'000);
  levels = admission.write_levels(group, at_seconds(5000));
  EXPECT_EQ(levels.burst_milli_units, 300 * 50'000);
}

TEST(PartitionAdmission, DecisionsNameWhy) {
  AdmissionOptions options;
  options.node_read_units_per_second = 150;  // node depth: 150 units
  NodeAdmission admission(options, node_address(0), 1, at_seconds(0));
  const GroupId group(1);
  admission.set_allocation(group, PartitionAllocation{100'000, 10'000}, at_seconds(0));
  const CapacityUnits ten{20};  // ten RCU
  const sim::SimTime t0 = at_seconds(0);
  // Allocated bucket: 100 units = ten reads.
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(admission.admit_read(group, ten, t0), AdmissionDecision::kAdmitted);
  // No burst yet.
  EXPECT_EQ(admission.admit_read(group, ten, t0), AdmissionDecision::kThrottledByPartition);
  EXPECT_EQ(admission.admit_read(GroupId(9), ten, t0), AdmissionDecision::kUnknownPartition);
  // After 200 s: 200 s of burst, and the node bucket full again (150 units).
  const sim::SimTime t1 = at_seconds(200);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(admission.admit_read(group, ten, t1), AdmissionDecision::kAdmitted);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(admission.admit_read(group, ten, t1), AdmissionDecision::kAdmittedUsingBurst);
  }
  // The node bucket (150 units) is spent; burst still has tokens.
  EXPECT_EQ(admission.admit_read(group, ten, t1), AdmissionDecision::kThrottledByNode);
  const AdmissionStats& stats = admission.stats();
  EXPECT_EQ(stats.read_admitted, 20u);
  EXPECT_EQ(stats.read_admitted_using_burst, 5u);
  EXPECT_EQ(stats.throttled_by_partition, 1u);
  EXPECT_EQ(stats.throttled_by_node, 1u);
  EXPECT_EQ(stats.unknown_partition, 1u);
  EXPECT_EQ(stats.read_admitted_milli_units, 25 * 10'000);
}

TEST(PartitionAdmission, AllocationIsCappedAtThePartitionCeiling) {
  NodeAdmission admission(roomy_node(), node_address(0), 1, at_seconds(0));
  admission.set_allocation(GroupId(1), PartitionAllocation{5'000'000, 2'000'000}, at_seconds(0));
  EXPECT_EQ(admission.allocation(GroupId(1)).read_milli_units_per_second,
            3000 * kMilliUnitsPerUnit);
  EXPECT_EQ(admission.allocation(GroupId(1)).write_milli_units_per_second,
            1000 * kMilliUnitsPerUnit);
}

TEST(PartitionAdmission, AllocationChangesKeepTokensWithinNewDepths) {
  NodeAdmission admission(roomy_node(), node_address(0), 1, at_seconds(0));
  const GroupId group(1);
  admission.set_allocation(group, PartitionAllocation{1'000'000, 1'000'000}, at_seconds(0));
  EXPECT_EQ(admission.read_levels(group, at_seconds(400)).burst_milli_units, 300 * 1'000'000);
  admission.set_allocation(group, PartitionAllocation{10'000, 10'000}, at_seconds(400));
  const NodeAdmission::BucketLevels levels = admission.read_levels(group, at_seconds(400));
  EXPECT_EQ(levels.allocated_milli_units, 10'000);
  EXPECT_EQ(levels.burst_milli_units, 300 * 10'000);
}

// ---------------------------------------------------------------------------------------------
// Peer check of burst writes

TEST(PeerCheck, QuorumRule) {
  EXPECT_EQ(peers_needed_for_burst_write(2), 1u);  // three replicas: quorum two, one other
  EXPECT_EQ(peers_needed_for_burst_write(1), 1u);  // two replicas: both
  EXPECT_EQ(peers_needed_for_burst_write(0), 0u);
  EXPECT_EQ(peers_needed_for_burst_write(4), 2u);  // five replicas: quorum three
}

TEST(PeerCheck, ReportMessageCarriesItsBody) {
  NodeCapacityReport report;
  report.reporter = node_address(4);
  report.incarnation = 3;
  report.sequence = 17;
  report.write_available_milli_units = 123;
  const sim::Message message = make_capacity_report_message(report);
  EXPECT_EQ(message.type, 120u);
  const auto* body = dynamic_cast<const NodeCapacityReport*>(message.body.get());
  ASSERT_NE(body, nullptr);
  EXPECT_EQ(body->sequence, 17u);
  EXPECT_EQ(body->write_available_milli_units, 123);
  report.sequence = 18;
  EXPECT_NE(make_capacity_report_message(report).digest, message.digest);
}

TEST(PeerCheck, ViewKeepsNewestReportAndDebits) {
  PeerCapacityView view(PeerCapacityView::Options{sim::seconds(3), 16, false});
  NodeCapacityReport report;
  report.reporter = node_address(1);
  report.incarnation = 2;
  report.sequence = 5;
  report.write_available_milli_units = 10'000;
  EXPECT_TRUE(view.on_report(report, at_seconds(10)));
  // A delayed older report, and an older incarnation, do not replace it.
  report.sequence = 4;
  report.write_available_milli_units = 99'000;
  EXPECT_FALSE(view.on_report(report, at_seconds(10)));
  report.incarnation = 1;
  report.sequence = 50;
  EXPECT_FALSE(view.on_report(report, at_seconds(10)));
  EXPECT_EQ(view.write_room_milli_units(node_address(1), at_seconds(11)), 10'000);
  view.charge_write(node_address(1), 4000);
  EXPECT_EQ(view.write_room_milli_units(node_address(1), at_seconds(11)), 6000);
  // Stale after three seconds, and untrusted if the clock stepped back past its arrival.
  EXPECT_EQ(view.write_room_milli_units(node_address(1), at_seconds(13)), 6000);
  EXPECT_EQ(view.write_room_milli_units(node_address(1), sim::SimTime(at_seconds(13).ns + 1)), 0);
  EXPECT_EQ(view.write_room_milli_units(node_address(1), at_seconds(9)), 0);
  // A restarted node (new incarnation) is accepted with a small sequence number.
  report.incarnation = 3;
  report.sequence = 1;
  report.write_available_milli_units = 2000;
  EXPECT_TRUE(view.on_report(report, at_seconds(20)));
  EXPECT_EQ(view.write_room_milli_units(node_address(1), at_seconds(20)), 2000);
  EXPECT_EQ(view.write_room_milli_units(node_address(2), at_seconds(20)), 0);  // never heard
}

// What a peer has told the leader in one case of the property.
enum class PeerState { kSilent, kFresh, kStale };

struct PeerCase {
  PeerState state = PeerState::kSilent;
  int64_t room_milli = 0;
  sim::SimTime received;
};

// One random case: a leader whose write allocation is spent but whose burst is full, two peers
// that reported (or not) random room at random ages, maybe a clock step back, then one burst-sized
// write. Returns whether the decision matched the rule (burst admitted exactly when at least
// peers_needed_for_burst_write(2) peers have a fresh report with room for the write).
bool peer_case_matches(uint64_t seed, const AdmissionOptions& options) {
  sim::Random random(seed);
  NodeAdmission leader(options, node_address(0), 1, at_seconds(0));
  const GroupId group(3);
  leader.set_allocation(group, PartitionAllocation{0, 100'000}, at_seconds(0));
  const sim::SimTime now = at_seconds(1000);  // burst is full
  const std::array<sim::Address, 2> others = {node_address(1), node_address(2)};
  const CapacityUnits cost = write_capacity(random.uniform_u64(8 * 1024));
  const int64_t cost_milli = to_milli_units(cost);
  std::array<PeerCase, 2> peers;
  uint64_t sequence = 0;
  const sim::SimTime decide_at = now + sim::seconds(10);
  for (size_t i = 0; i < others.size(); ++i) {
    peers[i].state = static_cast<PeerState>(random.uniform_u64(3));
    peers[i].room_milli = random.uniform_int(0, 2 * cost_milli);
    if (peers[i].state == PeerState::kSilent) continue;
    NodeCapacityReport report;
    report.reporter = others[i];
    report.incarnation = 1;
    report.sequence = ++sequence;
    report.write_available_milli_units = peers[i].room_milli;
    const int64_t age_ns =
        peers[i].state == PeerState::kFresh
            ? random.uniform_int(0, options.staleness_bound.ns)
            : options.staleness_bound.ns + random.uniform_int(1, 60 * kNanosPerSecond);
    peers[i].received = decide_at - sim::Duration(age_ns);
    leader.on_capacity_report(report, peers[i].received);
  }
  // Sometimes the leader's clock has stepped back before the decision: a report that then seems
  // to come from the future is not trusted, and the others are judged by their age on the
  // stepped clock.
  const bool stepped_back = random.bernoulli(0.1);
  const sim::SimTime local_now = stepped_back ? decide_at - sim::seconds(30) : decide_at;
  auto fresh_at_decision = [&](const PeerCase& peer) {
    const sim::Duration age = local_now - peer.received;
    return age >= sim::Duration(0) && age <= options.staleness_bound;
  };
  // Spend the (full) allocated bucket in one write so the next one must burst.
  const int64_t allocated = leader.write_levels(group, local_now).allocated_milli_units;
  EXPECT_EQ(leader.admit_write(group, CapacityUnits{static_cast<uint64_t>(allocated / 500)}, others,
                               local_now),
            AdmissionDecision::kAdmitted);
  uint32_t with_room = 0;
  for (const PeerCase& peer : peers) {
    if (peer.state != PeerState::kSilent && fresh_at_decision(peer) &&
        peer.room_milli >= cost_milli) {
      ++with_room;
    }
  }
  const bool expect_burst = with_room >= peers_needed_for_burst_write(2);
  const AdmissionDecision decision = leader.admit_write(group, cost, others, local_now);
  if (decision != AdmissionDecision::kAdmittedUsingBurst &&
      decision != AdmissionDecision::kThrottledByPeers) {
    ADD_FAILURE() << "unexpected decision " << to_string(decision);
    return false;
  }
  return expect_burst == (decision == AdmissionDecision::kAdmittedUsingBurst);
}

TEST(PeerCheckProperty, BurstWritesNeedFreshRoomOnAQuorumOfPeers) {
  int refused = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    SCOPED_TRACE(seed);
    EXPECT_TRUE(peer_case_matches(seed, roomy_node()));
  }
  // Reads never ask the peers.
  NodeAdmission leader(roomy_node(), node_address(0), 1, at_seconds(0));
  leader.set_allocation(GroupId(1), PartitionAllocation{10'000, 10'000}, at_seconds(0));
  const sim::SimTime later = at_seconds(100);
  for (int i = 0; i < 20; ++i) {
    if (leader.admit_read(GroupId(1), CapacityUnits{2}, later) ==
        AdmissionDecision::kThrottledByPeers) {
      ++refused;
    }
  }
  EXPECT_EQ(refused, 0);
  EXPECT_EQ(leader.stats().read_admitted_using_burst, 10u);
}

TEST(PeerCheckProperty, PlantedSkippedPeerCheckIsCaught) {
  AdmissionOptions planted = roomy_node();
  planted.plant_burst_write_skips_peer_check = true;
  int mismatches = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed)
    mismatches += peer_case_matches(seed, planted) ? 0 : 1;
  EXPECT_GT(mismatches, 0);
}

TEST(PeerCheckProperty, PlantedIgnoredStalenessIsCaught) {
  AdmissionOptions planted = roomy_node();
  planted.plant_ignore_staleness = true;
  int mismatches = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed)
    mismatches += peer_case_matches(seed, planted) ? 0 : 1;
  EXPECT_GT(mismatches, 0);
}

TEST(PeerCheck, ReplicatedWritesShowInTheFollowersReport) {
  AdmissionOptions options;
  options.node_write_units_per_second = 100;  // one second deep: 100 units
  NodeAdmission follower(options, node_address(1), 4, at_seconds(0));
  EXPECT_EQ(follower.make_report(at_seconds(0)).write_available_milli_units, 100'000);
  for (int i = 0; i < 30; ++i) follower.on_replicated_write(write_capacity(3000), at_seconds(0));
  const NodeCapacityReport report = follower.make_report(at_seconds(0));
  EXPECT_EQ(report.write_available_milli_units, 10'000);  // 90 units of work done
  EXPECT_EQ(report.incarnation, 4u);
  for (int i = 0; i < 30; ++i) follower.on_replicated_write(write_capacity(3000), at_seconds(0));
  EXPECT_EQ(follower.make_report(at_seconds(0)).write_available_milli_units, 0);
  // Half a second later, half the bucket is back.
  EXPECT_EQ(follower.make_report(sim::SimTime(at_seconds(0).ns + 500'000'000))
                .write_available_milli_units,
            50'000);
}

TEST(PeerCheck, OneReportPaysForOneWriteUntilTheNext) {
  NodeAdmission leader(roomy_node(), node_address(0), 1, at_seconds(0));
  NodeAdmission follower(roomy_node(), node_address(1), 1, at_seconds(0));
  const GroupId group(1);
  leader.set_allocation(group, PartitionAllocation{0, 1000}, at_seconds(0));
  const std::array<sim::Address, 2> others = {node_address(1), node_address(2)};
  const sim::SimTime now = at_seconds(400);
  // The follower's report, through the wire form, with room for exactly two 1-WCU writes.
  NodeCapacityReport report = follower.make_report(now);
  EXPECT_EQ(report.reporter, node_address(1));
  report.write_available_milli_units = 2000;
  const sim::Message message = make_capacity_report_message(report);
  leader.on_capacity_report(*dynamic_cast<const NodeCapacityReport*>(message.body.get()), now);
  const CapacityUnits one_wcu = write_capacity(100);
  // Allocated bucket: one WCU (1 s at 1 WCU/s).
  EXPECT_EQ(leader.admit_write(group, one_wcu, others, now), AdmissionDecision::kAdmitted);
  EXPECT_EQ(leader.admit_write(group, one_wcu, others, now),
            AdmissionDecision::kAdmittedUsingBurst);
  EXPECT_EQ(leader.admit_write(group, one_wcu, others, now),
            AdmissionDecision::kAdmittedUsingBurst);
  EXPECT_EQ(leader.admit_write(group, one_wcu, others, now), AdmissionDecision::kThrottledByPeers);
  // The next report restores the room.
  NodeCapacityReport next = follower.make_report(now + sim::seconds(1));
  EXPECT_GT(next.sequence, report.sequence);
  leader.on_capacity_report(next, now + sim::seconds(1));
  EXPECT_EQ(leader.admit_write(group, one_wcu, others, now + sim::seconds(1)),
            AdmissionDecision::kAdmitted);
  EXPECT_EQ(leader.admit_write(group, one_wcu, others, now + sim::seconds(1)),
            AdmissionDecision::kAdmittedUsingBurst);
  EXPECT_EQ(leader.stats().throttled_by_peers, 1u);
  EXPECT_EQ(leader.stats().reports_accepted, 2u);
}

}  // namespace
}  // namespace dynasim::model
