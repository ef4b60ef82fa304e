// The storage checkers, fed synthetic observations: each must pass a clean run and catch the bug
// it exists for (two commands in one slot, overlapping leases, a strong read outside a lease, a
// lost acknowledged write, diverged or lagging replicas).
#include "gameday/storage_checkers.h"

#include <gtest/gtest.h>

namespace dynasim::gameday {
namespace {

using Kind = RegisterOperation::Kind;
using Outcome = RegisterOperation::Outcome;
using model::GroupId;
using model::LogIndex;

// ---------------------------------------------------------------------------------------------
// Paxos safety

// Three storage hosts in three AZs, one group placed on them; no processes are needed.
struct PaxosWorld {
  PaxosWorld() : simulation(1), world(simulation, sim::WorldOptions{}) {
    std::array<sim::Address, model::kReplicasPerGroup> replicas;
    for (uint32_t r = 0; r < model::kReplicasPerGroup; ++r) {
      const std::string name = std::string("az-") + static_cast<char>('a' + r);
      const sim::RackId rack = world.add_rack(world.add_az(name), name + "/r0");
      hosts[r] = world.add_host(rack, name + "/h0", sim::HostOptions{});
      replicas[r] = sim::Address{hosts[r], model::kStoragePort};
    }
    placement = model::Placement::uniform(1, {replicas});
    world.start();
  }
  void at(sim::Duration true_time) { simulation.run_until(sim::SimTime(0) + true_time); }
  sim::SimTime local(uint32_t replica) const { return world.local_now(hosts[replica - 1]); }
  // Replica takes or extends a lease for `length` on its own clock, now.
  void lease(PaxosSafetyChecker& checker, uint32_t replica, sim::Duration length) {
    checker.on_lease(GroupId(0), replica, local(replica), local(replica) + length);
  }
  void give_up(PaxosSafetyChecker& checker, uint32_t replica) {
    checker.on_lease(GroupId(0), replica, local(replica), local(replica));
  }

  sim::Simulation simulation;
  sim::World world;
  std::array<sim::HostId, model::kReplicasPerGroup> hosts;
  model::Placement placement;
};

TEST(PaxosSafetyCheckerTest, ReplicasApplyingTheSameCommandsPass) {
  PaxosWorld w;
  PaxosSafetyChecker checker(w.world, w.placement);
  for (uint32_t replica = 1; replica <= 3; ++replica) {
    for (uint64_t index = 1; index <= 10; ++index) {
      checker.on_applied(GroupId(0), replica, LogIndex(index), 1000 + index);
    }
  }
  // A replica re-applying after a restart, with the same commands, is fine.
  checker.on_applied(GroupId(0), 2, LogIndex(5), 1005);
  EXPECT_TRUE(checker.passed()) << checker.first_violation();
  EXPECT_EQ(checker.slots_checked(), 10u);
  EXPECT_EQ(checker.report()["slots_checked"], 10);
}

TEST(PaxosSafetyCheckerTest, TwoCommandsInOneSlotFail) {
  PaxosWorld w;
  PaxosSafetyChecker checker(w.world, w.placement);
  checker.on_applied(GroupId(0), 1, LogIndex(7), 0xaaaa);
  checker.on_applied(GroupId(0), 2, LogIndex(7), 0xaaaa);
  checker.on_applied(GroupId(0), 3, LogIndex(7), 0xbbbb);
  EXPECT_FALSE(checker.passed());
  EXPECT_EQ(checker.violations(), 1u);
  EXPECT_NE(checker.first_violation().find("slot 7"), std::string::npos)
      << checker.first_violation();
  EXPECT_EQ(checker.report()["passed"], false);
}

TEST(PaxosSafetyCheckerTest, LeasesThatFollowEachOtherPassAndReadsInsideThemToo) {
  PaxosWorld w;
  PaxosSafetyChecker checker(w.world, w.placement);
  w.at(sim::seconds(1));
  w.lease(checker, 1, sim::seconds(10));  // [1 s, 11 s)
  w.at(sim::seconds(5));
  checker.on_strong_read(GroupId(0), 1, w.local(1));
  w.lease(checker, 1, sim::seconds(10));  // extended to 15 s
  w.at(sim::seconds(15));
  w.lease(checker, 2, sim::seconds(10));  // [15 s, 25 s): the old one just ended
  w.at(sim::seconds(20));
  checker.on_strong_read(GroupId(0), 2, w.local(2));
  EXPECT_TRUE(checker.passed()) << checker.first_violation();
  const nlohmann::json report = checker.report();
  EXPECT_EQ(report["lease_windows"], 2);
  EXPECT_EQ(report["strong_reads"], 2);
}

TEST(PaxosSafetyCheckerTest, OverlappingLeasesFromTwoReplicasFail) {
  PaxosWorld w;
  PaxosSafetyChecker checker(w.world, w.placement);
  w.at(sim::seconds(1));
  w.lease(checker, 1, sim::seconds(10));  // [1 s, 11 s)
  w.at(sim::seconds(8));
  w.lease(checker, 3, sim::seconds(10));  // a new leader that did not wait out the old lease
  EXPECT_FALSE(checker.passed());
  EXPECT_NE(checker.first_violation().find("overlaps replica 1"), std::string::npos)
      << checker.first_violation();
}

TEST(PaxosSafetyCheckerTest, AnExtendedLeaseCountsUntilItsNewEnd) {
  PaxosWorld w;
  PaxosSafetyChecker checker(w.world, w.placement);
  w.lease(checker, 1, sim::seconds(10));  // [0, 10 s)
  w.at(sim::seconds(8));
  w.lease(checker, 1, sim::seconds(10));  // now [0, 18 s)
  w.at(sim::seconds(12));
  w.lease(checker, 2, sim::seconds(10));
  EXPECT_FALSE(checker.passed());
}

TEST(PaxosSafetyCheckerTest, LeaseEndsAreMappedThroughTheHoldersDriftingClock) {
  // Replica 1's clock runs 1% slow: its 10 s lease lasts about 10.1 s of true time. A successor
  // starting at 10.05 s true time overlaps it, though 10 s of local time had "passed".
  {
    PaxosWorld w;
    w.world.set_clock_drift_ppm(w.hosts[0], -10'000);
    PaxosSafetyChecker checker(w.world, w.placement);
    w.lease(checker, 1, sim::seconds(10));
    w.at(sim::milliseconds(10'050));
    w.lease(checker, 2, sim::seconds(10));
    EXPECT_FALSE(checker.passed());
  }
  // The same with a clock 1% fast: its lease ends at about 9.9 s, so 10.05 s is clear.
  {
    PaxosWorld w;
    w.world.set_clock_drift_ppm(w.hosts[0], 10'000);
    PaxosSafetyChecker checker(w.world, w.placement);
    w.lease(checker, 1, sim::seconds(10));
    w.at(sim::milliseconds(10'050));
    w.lease(checker, 2, sim::seconds(10));
    EXPECT_TRUE(checker.passed()) << checker.first_violation();
  }
}

TEST(PaxosSafetyCheckerTest, AGivenUpLeaseEndsAndReadsAfterItFail) {
  PaxosWorld w;
  PaxosSafetyChecker checker(w.world, w.placement);
  w.lease(checker, 1, sim::seconds(10));
  w.at(sim::seconds(3));
  w.give_up(checker, 1);
  w.at(sim::seconds(4));
  w.lease(checker, 2, sim::seconds(10));  // fine: replica 1 no longer serves
  EXPECT_TRUE(checker.passed()) << checker.first_violation();
  w.at(sim::seconds(5));
  checker.on_strong_read(GroupId(0), 1, w.local(1));  // the bug: serving without a lease
  EXPECT_FALSE(checker.passed());
  EXPECT_NE(checker.first_violation().find("outside any lease"), std::string::npos)
      << checker.first_violation();
}

TEST(PaxosSafetyCheckerTest, AStrongReadWithNoLeaseAtAllFails) {
  PaxosWorld w;
  PaxosSafetyChecker checker(w.world, w.placement);
  checker.on_strong_read(GroupId(0), 2, w.local(2));
  EXPECT_FALSE(checker.passed());
  EXPECT_EQ(checker.report()["strong_reads"], 1);
}

// ---------------------------------------------------------------------------------------------
// Durability of acknowledged writes

RegisterOperation put(uint64_t id, int64_t invoke, int64_t complete, uint64_t value,
                      Outcome outcome = Outcome::kOk) {
  RegisterOperation op;
  op.kind = Kind::kWrite;
  op.id = id;
  op.client = 1;
  op.invoke_ns = invoke;
  op.complete_ns = outcome == Outcome::kUnknown ? INT64_MAX : complete;
  op.value = value;
  op.outcome = outcome;
  return op;
}
RegisterOperation erase(uint64_t id, int64_t invoke, int64_t complete) {
  RegisterOperation op = put(id, invoke, complete, 0);
  op.kind = Kind::kDelete;
  return op;
}
RegisterOperation read(uint64_t id, int64_t invoke, int64_t complete,
                       std::optional<uint64_t> value) {
  RegisterOperation op;
  op.kind = Kind::kRead;
  op.id = id;
  op.invoke_ns = invoke;
  op.complete_ns = complete;
  op.read_value = value;
  return op;
}

constexpr int64_t kVerify = 1'000'000;  // the verification pass starts here

DurabilityOfWritesChecker check(std::vector<RegisterOperation> operations) {
  DurabilityOfWritesChecker checker{sim::SimTime(kVerify)};
  checker.check({{"key-1", std::move(operations)}});
  return checker;
}

TEST(DurabilityOfWritesCheckerTest, TheLastAcknowledgedWriteSurvivingPasses) {
  const DurabilityOfWritesChecker checker =
      check({put(1, 0, 10, 1), put(2, 20, 30, 2), read(3, 40, 50, 1),  // before verification
             read(4, kVerify, kVerify + 10, 2)});
  EXPECT_TRUE(checker.passed()) << checker.first_violation();
  EXPECT_EQ(checker.acknowledged_writes(), 2u);
  EXPECT_EQ(checker.lost_writes(), 0u);
  EXPECT_EQ(checker.report()["acknowledged_writes"], 2);
}

TEST(DurabilityOfWritesCheckerTest, AVanishedAcknowledgedWriteIsLost) {
  const DurabilityOfWritesChecker checker =
      check({put(1, 0, 10, 7), read(2, kVerify, kVerify + 10, std::nullopt)});
  EXPECT_FALSE(checker.passed());
  EXPECT_EQ(checker.lost_writes(), 1u);
  EXPECT_NE(checker.first_violation().find("lost: the acknowledged put of 7"), std::string::npos)
      << checker.first_violation();
}

TEST(DurabilityOfWritesCheckerTest, AnOlderValueComingBackIsALostWrite) {
  const DurabilityOfWritesChecker checker =
      check({put(1, 0, 10, 1), put(2, 20, 30, 2), read(3, kVerify, kVerify + 10, 1)});
  EXPECT_FALSE(checker.passed());
  EXPECT_EQ(checker.lost_writes(), 1u);
}

TEST(DurabilityOfWritesCheckerTest, ConcurrentWritesMayEitherSurvive) {
  for (uint64_t survivor : {1u, 2u}) {
    const DurabilityOfWritesChecker checker =
        check({put(1, 0, 100, 1), put(2, 50, 150, 2), read(3, kVerify, kVerify + 10, survivor)});
    EXPECT_TRUE(checker.passed()) << checker.first_violation();
  }
}

TEST(DurabilityOfWritesCheckerTest, AWriteWithAnUnknownOutcomeMayOrMayNotHaveApplied) {
  for (uint64_t survivor : {1u, 2u}) {
    const DurabilityOfWritesChecker checker =
        check({put(1, 0, 10, 1), put(2, 20, 0, 2, Outcome::kUnknown),
               read(3, kVerify, kVerify + 10, survivor)});
    EXPECT_TRUE(checker.passed()) << checker.first_violation();
    EXPECT_EQ(checker.acknowledged_writes(), 1u);
  }
}

TEST(DurabilityOfWritesCheckerTest, DeletesAndFailedConditionsAreAccountedFor) {
  EXPECT_TRUE(
      check({put(1, 0, 10, 1), erase(2, 20, 30), read(3, kVerify, kVerify + 10, std::nullopt)})
          .passed());
  // The item came back after an acknowledged delete.
  EXPECT_FALSE(
      check({put(1, 0, 10, 1), erase(2, 20, 30), read(3, kVerify, kVerify + 10, 1)}).passed());
  // A conditional write whose condition failed explains nothing.
  RegisterOperation failed = put(2, 20, 30, 2, Outcome::kConditionFailed);
  failed.kind = Kind::kConditionalWrite;
  failed.expected_value = 99;
  EXPECT_FALSE(check({put(1, 0, 10, 1), failed, read(3, kVerify, kVerify + 10, 2)}).passed());
  EXPECT_TRUE(check({put(1, 0, 10, 1), failed, read(3, kVerify, kVerify + 10, 1)}).passed());
}

TEST(DurabilityOfWritesCheckerTest, AValueNoWritePutFails) {
  EXPECT_FALSE(check({put(1, 0, 10, 1), read(2, kVerify, kVerify + 10, 12345)}).passed());
  // Even on a key with no acknowledged write.
  EXPECT_FALSE(check({read(2, kVerify, kVerify + 10, 12345)}).passed());
  EXPECT_TRUE(check({read(2, kVerify, kVerify + 10, std::nullopt)}).passed());
}

TEST(DurabilityOfWritesCheckerTest, AKeyWithNoFinalReadIsUnverifiedAndFails) {
  const DurabilityOfWritesChecker checker = check({put(1, 0, 10, 1), read(2, 20, 30, 1)});
  EXPECT_FALSE(checker.passed());
  EXPECT_EQ(checker.keys_unverified(), 1u);
  EXPECT_EQ(checker.lost_writes(), 0u);
}

// Many keys never read back: the message counts them and says what to lengthen; one alone, or
// a lost write found first, gets no such hint.
TEST(DurabilityOfWritesCheckerTest, ManyUnreadKeysAreCountedWithAHint) {
  DurabilityOfWritesChecker many{sim::SimTime(kVerify)};
  many.check({{"key-1", {put(1, 0, 10, 1)}}, {"key-2", {put(2, 0, 10, 2)}},
              {"key-3", {put(3, 0, 10, 3)}}});
  EXPECT_EQ(many.keys_unverified(), 3u);
  EXPECT_NE(many.first_violation().find("3 keys in all were never read back"), std::string::npos)
      << many.first_violation();
  EXPECT_NE(many.first_violation().find("workload.verify_after"), std::string::npos);

  const DurabilityOfWritesChecker one = check({put(1, 0, 10, 1)});
  EXPECT_EQ(one.first_violation().find("in all"), std::string::npos) << one.first_violation();

  DurabilityOfWritesChecker lost_first{sim::SimTime(kVerify)};
  lost_first.check({{"key-1", {put(1, 0, 10, 7), read(2, kVerify, kVerify + 10, std::nullopt)}},
                    {"key-2", {put(2, 0, 10, 2)}},
                    {"key-3", {put(3, 0, 10, 3)}}});
  EXPECT_NE(lost_first.first_violation().find("lost:"), std::string::npos);
  EXPECT_EQ(lost_first.first_violation().find("in all"), std::string::npos)
      << lost_first.first_violation();
}

TEST(DurabilityOfWritesCheckerTest, TheLastFinalReadDecides) {
  // Two verification reads; the one that completed last is the final state.
  EXPECT_TRUE(check({put(1, 0, 10, 1), put(2, 20, 30, 2), read(3, kVerify, kVerify + 10, 1),
                     read(4, kVerify + 20, kVerify + 30, 2)})
                  .passed());
  EXPECT_FALSE(check({put(1, 0, 10, 1), put(2, 20, 30, 2), read(3, kVerify, kVerify + 10, 2),
                      read(4, kVerify + 20, kVerify + 30, 1)})
                   .passed());
}

// ---------------------------------------------------------------------------------------------
// Replica convergence

// `last_write`: the last entry that changed items (0: the applied entry itself).
model::ReplicaSnapshot snapshot(uint32_t replica, uint64_t applied, uint64_t digest,
                                uint64_t items = 10, uint64_t last_write = 0) {
  model::ReplicaSnapshot s;
  s.group = GroupId(4);
  s.replica = replica;
  s.recovered = true;
  s.healthy = true;
  s.applied = LogIndex(applied);
  s.last_write = LogIndex(last_write == 0 ? applied : last_write);
  s.commit = LogIndex(applied);
  s.content_known = true;
  s.content_digest = digest;
  s.item_count = items;
  return s;
}

ReplicaConvergence compare(std::vector<std::optional<model::ReplicaSnapshot>> replicas) {
  ReplicaConvergence result;
  compare_group_replicas(GroupId(4), replicas, &result);
  return result;
}

TEST(ReplicaConvergenceTest, EqualReplicasPass) {
  const ReplicaConvergence result =
      compare({snapshot(1, 100, 0xabc), snapshot(2, 100, 0xabc), snapshot(3, 100, 0xabc)});
  EXPECT_TRUE(result.passed()) << result.first_violation;
  EXPECT_EQ(result.groups_checked, 1u);
  EXPECT_EQ(result.report()["groups_diverged"], 0);
}

TEST(ReplicaConvergenceTest, DivergedDigestsAtOneAppliedIndexFail) {
  const ReplicaConvergence result =
      compare({snapshot(1, 100, 0xabc), snapshot(2, 100, 0xabd), snapshot(3, 100, 0xabc)});
  EXPECT_FALSE(result.passed());
  EXPECT_EQ(result.groups_diverged, 1u);
  EXPECT_NE(result.first_violation.find("replicas 1 and 2"), std::string::npos)
      << result.first_violation;
  // Same digest, different item count: diverged too.
  EXPECT_FALSE(compare({snapshot(1, 100, 0xabc, 10), snapshot(2, 100, 0xabc, 11)}).passed());
}

TEST(ReplicaConvergenceTest, AReplicaBehindTheGroupLags) {
  const ReplicaConvergence result =
      compare({snapshot(1, 100, 0xabc), snapshot(2, 90, 0x123), snapshot(3, 100, 0xabc)});
  EXPECT_FALSE(result.passed());
  EXPECT_EQ(result.replicas_lagging, 1u);
  EXPECT_EQ(result.groups_diverged, 0u);  // different indexes are not compared
}

// Entries that change no item (a scrub marker committed in the run's last instant, a no-op)
// after the last write do not make a replica lag; its content is still compared. A write among
// them does.
TEST(ReplicaConvergenceTest, OnlyEntriesThatChangeItemsCountAsLag) {
  const auto leader = snapshot(3, 101, 0xabc, 10, /*last_write=*/100);
  EXPECT_TRUE(compare({snapshot(1, 100, 0xabc), snapshot(2, 100, 0xabc), leader}).passed());
  const ReplicaConvergence diverged =
      compare({snapshot(1, 100, 0xabc), snapshot(2, 100, 0x123), leader});
  EXPECT_FALSE(diverged.passed());
  EXPECT_EQ(diverged.groups_diverged, 1u);
  EXPECT_EQ(diverged.replicas_lagging, 0u);
  const ReplicaConvergence behind =
      compare({snapshot(1, 99, 0xabc), snapshot(2, 100, 0xabc), leader});
  EXPECT_FALSE(behind.passed());
  EXPECT_EQ(behind.replicas_lagging, 1u);
}

TEST(ReplicaConvergenceTest, UnavailableRecoveringAndUnhealthyReplicasAreCountedNotFailed) {
  model::ReplicaSnapshot recovering = snapshot(2, 10, 0x1);
  recovering.recovered = false;
  model::ReplicaSnapshot unhealthy = snapshot(3, 100, 0xbad);
  unhealthy.healthy = false;
  ReplicaConvergence result = compare({snapshot(1, 100, 0xabc), recovering, unhealthy});
  EXPECT_TRUE(result.passed()) << result.first_violation;
  EXPECT_EQ(result.replicas_recovering, 1u);
  EXPECT_EQ(result.replicas_unhealthy, 1u);
  result = compare({std::nullopt, snapshot(2, 100, 0xabc), snapshot(3, 100, 0xabc)});
  EXPECT_TRUE(result.passed());
  EXPECT_EQ(result.replicas_unavailable, 1u);
  // Unknown content is not compared, but counted.
  model::ReplicaSnapshot unknown = snapshot(3, 100, 0x999);
  unknown.content_known = false;
  result = compare({snapshot(1, 100, 0xabc), snapshot(2, 100, 0xabc), unknown});
  EXPECT_TRUE(result.passed());
  EXPECT_EQ(result.replicas_content_unknown, 1u);
}

}  // namespace
}  // namespace dynasim::gameday
