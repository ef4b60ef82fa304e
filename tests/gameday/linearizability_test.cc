// The per-key linearizability checker: histories it must accept, histories it must reject (the
// bugs it exists for: a stale read after a write completed, a lost acknowledged write, two
// conditional writes that both succeeded on one version), timeouts, and its bound.
#include "gameday/linearizability.h"

#include <gtest/gtest.h>

#include "sim/random.h"

namespace dynasim::gameday {
namespace {

using Kind = RegisterOperation::Kind;
using Outcome = RegisterOperation::Outcome;

RegisterOperation write(uint64_t id, int64_t invoke, int64_t complete, uint64_t value) {
  RegisterOperation op;
  op.kind = Kind::kWrite;
  op.id = id;
  op.invoke_ns = invoke;
  op.complete_ns = complete;
  op.value = value;
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
RegisterOperation conditional(uint64_t id, int64_t invoke, int64_t complete, uint64_t value,
                              uint64_t expected_version, Outcome outcome) {
  RegisterOperation op;
  op.kind = Kind::kConditionalWrite;
  op.id = id;
  op.invoke_ns = invoke;
  op.complete_ns = complete;
  op.value = value;
  op.expected_version = expected_version;
  op.outcome = outcome;
  return op;
}

LinearizabilityVerdict verdict(std::vector<RegisterOperation> history) {
  return check_register_history(std::move(history)).verdict;
}

TEST(LinearizabilityTest, SequentialAndOverlappingHistoriesThatAreLinearizable) {
  EXPECT_EQ(verdict({write(1, 0, 10, 7), read(2, 20, 30, 7)}),
            LinearizabilityVerdict::kLinearizable);
  // A read overlapping a write may see either the old or the new value.
  EXPECT_EQ(verdict({write(1, 0, 100, 7), read(2, 10, 20, std::nullopt)}),
            LinearizabilityVerdict::kLinearizable);
  EXPECT_EQ(verdict({write(1, 0, 100, 7), read(2, 10, 20, 7)}),
            LinearizabilityVerdict::kLinearizable);
  // Two overlapping writes, then reads that agree on one order.
  EXPECT_EQ(
      verdict({write(1, 0, 50, 1), write(2, 10, 60, 2), read(3, 70, 80, 1), read(4, 90, 95, 1)}),
      LinearizabilityVerdict::kLinearizable);
}

TEST(LinearizabilityTest, AStaleReadAfterAWriteCompletedIsRejected) {
  // The bug a follower answering a strong read produces: the write finished, the read that
  // started later still sees the old value.
  const KeyCheckResult result =
      check_register_history({write(1, 0, 10, 7), write(2, 20, 30, 8), read(3, 40, 50, 7)});
  EXPECT_EQ(result.verdict, LinearizabilityVerdict::kNotLinearizable);
  ASSERT_TRUE(result.first_unexplained.has_value());
  EXPECT_EQ(result.first_unexplained->id, 3u);
}

TEST(LinearizabilityTest, AnAcknowledgedWriteThatVanishedIsRejected) {
  EXPECT_EQ(verdict({write(1, 0, 10, 7), read(2, 20, 30, std::nullopt)}),
            LinearizabilityVerdict::kNotLinearizable);
}

TEST(LinearizabilityTest, TwoConditionalWritesOnOneVersionCannotBothSucceed) {
  // Both expect version 1 after the first write; with a real leader only one can win.
  std::vector<RegisterOperation> history = {write(1, 0, 10, 1),
                                            conditional(2, 20, 40, 2, 1, Outcome::kOk),
                                            conditional(3, 25, 45, 3, 1, Outcome::kOk)};
  EXPECT_EQ(verdict(history), LinearizabilityVerdict::kNotLinearizable);
  history[2].outcome = Outcome::kConditionFailed;
  EXPECT_EQ(verdict(history), LinearizabilityVerdict::kLinearizable);
}

RegisterOperation compare_and_set(uint64_t id, int64_t invoke, int64_t complete, uint64_t value,
                                  uint64_t expected_value, Outcome outcome) {
  RegisterOperation op = conditional(id, invoke, complete, value, 0, outcome);
  op.expected_version.reset();
  op.expected_value = expected_value;
  return op;
}

TEST(LinearizabilityTest, AnExpectedValueConditionHoldsOnlyOnThatValue) {
  // Optimistic locking on a value: succeeds on the value it read, fails on any other.
  EXPECT_EQ(verdict({write(1, 0, 10, 5), compare_and_set(2, 20, 30, 6, 5, Outcome::kOk),
                     read(3, 40, 50, 6)}),
            LinearizabilityVerdict::kLinearizable);
  EXPECT_EQ(verdict({write(1, 0, 10, 5), compare_and_set(2, 20, 30, 6, 4, Outcome::kOk)}),
            LinearizabilityVerdict::kNotLinearizable);
  EXPECT_EQ(
      verdict({write(1, 0, 10, 5), compare_and_set(2, 20, 30, 6, 4, Outcome::kConditionFailed),
               read(3, 40, 50, 5)}),
      LinearizabilityVerdict::kLinearizable);
  // A failure on the value that is there is a lie.
  EXPECT_EQ(
      verdict({write(1, 0, 10, 5), compare_and_set(2, 20, 30, 6, 5, Outcome::kConditionFailed)}),
      LinearizabilityVerdict::kNotLinearizable);
  // On no item the condition fails, whatever value it expects (0 included: the register's empty
  // value must not match).
  EXPECT_EQ(verdict({compare_and_set(1, 0, 10, 6, 0, Outcome::kOk)}),
            LinearizabilityVerdict::kNotLinearizable);
  EXPECT_EQ(verdict({compare_and_set(1, 0, 10, 6, 0, Outcome::kConditionFailed)}),
            LinearizabilityVerdict::kLinearizable);
  // After a delete too.
  RegisterOperation erase;
  erase.kind = Kind::kDelete;
  erase.id = 2;
  erase.invoke_ns = 20;
  erase.complete_ns = 30;
  EXPECT_EQ(verdict({write(1, 0, 10, 5), erase, compare_and_set(3, 40, 50, 6, 5, Outcome::kOk)}),
            LinearizabilityVerdict::kNotLinearizable);
}

TEST(LinearizabilityTest, TwoCompareAndSetsOnOneValueCannotBothSucceed) {
  std::vector<RegisterOperation> history = {write(1, 0, 10, 5),
                                            compare_and_set(2, 20, 40, 6, 5, Outcome::kOk),
                                            compare_and_set(3, 25, 45, 7, 5, Outcome::kOk)};
  EXPECT_EQ(verdict(history), LinearizabilityVerdict::kNotLinearizable);
  history[2].outcome = Outcome::kConditionFailed;
  EXPECT_EQ(verdict(history), LinearizabilityVerdict::kLinearizable);
  // A timed-out one may have applied: then a later read of its value is explained.
  history[2].outcome = Outcome::kUnknown;
  history[2].complete_ns = INT64_MAX;
  history.push_back(read(4, 100, 110, 6));
  EXPECT_EQ(verdict(history), LinearizabilityVerdict::kLinearizable);
}

TEST(LinearizabilityTest, ATimedOutWriteMayHaveHappenedOrNot) {
  RegisterOperation lost = write(1, 0, INT64_MAX, 9);
  lost.outcome = Outcome::kUnknown;
  EXPECT_EQ(verdict({lost, read(2, 100, 110, 9)}), LinearizabilityVerdict::kLinearizable);
  EXPECT_EQ(verdict({lost, read(2, 100, 110, std::nullopt)}),
            LinearizabilityVerdict::kLinearizable);
  // But once seen it cannot be unseen.
  EXPECT_EQ(verdict({lost, read(2, 100, 110, 9), read(3, 120, 130, std::nullopt)}),
            LinearizabilityVerdict::kNotLinearizable);
}

TEST(LinearizabilityTest, RandomHistoriesFromARealRegisterAreAcceptedAndCorruptedOnesMostlyNot) {
  // Simulate clients on an atomic register: each operation takes effect at a random instant
  // inside its interval. Every such history is linearizable. Changing one read's value to one
  // never written must be rejected.
  sim::Random random(77);
  int rejected = 0;
  for (int round = 0; round < 200; ++round) {
    struct Pending {
      RegisterOperation op;
      int64_t effect_ns;
    };
    std::vector<Pending> ops;
    for (uint64_t id = 0; id < 12; ++id) {
      const int64_t invoke = random.uniform_int(0, 1000);
      const int64_t complete = invoke + random.uniform_int(1, 200);
      RegisterOperation op = random.bernoulli(0.5) ? write(id, invoke, complete, 100 + id)
                                                   : read(id, invoke, complete, std::nullopt);
      ops.push_back(Pending{op, random.uniform_int(invoke, complete)});
    }
    std::sort(ops.begin(), ops.end(),
              [](const Pending& a, const Pending& b) { return a.effect_ns < b.effect_ns; });
    std::optional<uint64_t> value;
    std::vector<RegisterOperation> history;
    for (Pending& pending : ops) {
      if (pending.op.kind == Kind::kWrite) {
        value = pending.op.value;
      } else {
        pending.op.read_value = value;
      }
      history.push_back(pending.op);
    }
    ASSERT_EQ(verdict(history), LinearizabilityVerdict::kLinearizable) << "round " << round;
    for (RegisterOperation& op : history) {
      if (op.kind == Kind::kRead) {
        op.read_value = 999;  // never written
        ++rejected;
        EXPECT_EQ(verdict(history), LinearizabilityVerdict::kNotLinearizable);
        break;
      }
    }
  }
  EXPECT_GT(rejected, 100);
}

TEST(LinearizabilityTest, TheSearchIsBoundedAndSaysUnknown) {
  // Many fully concurrent writes and a read of none of them: the search space is large.
  std::vector<RegisterOperation> history;
  for (uint64_t id = 0; id < 40; ++id) history.push_back(write(id, 0, 1000, id));
  history.push_back(read(99, 0, 1000, 12345));
  LinearizabilityOptions options;
  options.max_states_per_key = 1000;
  EXPECT_EQ(check_register_history(history, options).verdict, LinearizabilityVerdict::kUnknown);
}

TEST(LinearizabilityTest, ReportCountsKeysAndNamesTheFirstViolation) {
  std::map<std::string, std::vector<RegisterOperation>> by_key;
  by_key["a"] = {write(1, 0, 10, 7), read(2, 20, 30, 7)};
  by_key["b"] = {write(3, 0, 10, 7), read(4, 20, 30, std::nullopt)};
  const LinearizabilityReport report = check_history(by_key);
  EXPECT_EQ(report.keys_checked, 2u);
  EXPECT_EQ(report.operations_checked, 4u);
  EXPECT_EQ(report.keys_violated, 1u);
  EXPECT_FALSE(report.passed());
  EXPECT_NE(report.first_violation.find("key b"), std::string::npos) << report.first_violation;
}

}  // namespace
}  // namespace dynasim::gameday

namespace dynasim::gameday {
namespace {

RegisterOperation unknown_write(uint64_t id, int64_t invoke, uint64_t value) {
  RegisterOperation op = write(id, invoke, INT64_MAX, value);
  op.outcome = Outcome::kUnknown;
  return op;
}

// Many timed-out writes that nobody observed would make the search try every place for each;
// they are taken out first, and the verdict is found with a handful of states.
TEST(LinearizabilityPruning, UnobservedTimeoutsDoNotExplodeTheSearch) {
  std::vector<RegisterOperation> history;
  uint64_t id = 1;
  for (int64_t t = 0; t < 60; ++t) {
    history.push_back(write(id++, t * 100, t * 100 + 10, 1000 + t));
    history.push_back(unknown_write(id++, t * 100 + 20, 5000 + t));
    history.push_back(read(id++, t * 100 + 30, t * 100 + 40, 1000 + t));
  }
  LinearizabilityOptions options;
  options.max_states_per_key = 10'000;
  const KeyCheckResult result = check_register_history(history, options);
  EXPECT_EQ(result.verdict, LinearizabilityVerdict::kLinearizable);
  EXPECT_EQ(result.operations_pruned, 60u);
  EXPECT_LE(result.states_explored, 200u);
}

// A timed-out write that a later read observed stays, and explains that read.
TEST(LinearizabilityPruning, AnObservedTimeoutIsKept) {
  const KeyCheckResult result = check_register_history(
      {write(1, 0, 10, 7), unknown_write(2, 20, 9), read(3, 100, 110, 9), read(4, 120, 130, 9)});
  EXPECT_EQ(result.verdict, LinearizabilityVerdict::kLinearizable);
  EXPECT_EQ(result.operations_pruned, 0u);
}

// A failed put-if-absent after a timed-out write needs that write to have happened: the write is
// kept because a conditional operation completes after it was invoked.
TEST(LinearizabilityPruning, ATimeoutAConditionMayDependOnIsKept) {
  RegisterOperation if_absent;
  if_absent.kind = Kind::kConditionalWrite;
  if_absent.id = 3;
  if_absent.invoke_ns = 100;
  if_absent.complete_ns = 110;
  if_absent.value = 11;
  if_absent.expected_exists = false;
  if_absent.outcome = Outcome::kConditionFailed;
  const KeyCheckResult result = check_register_history({unknown_write(2, 20, 9), if_absent});
  EXPECT_EQ(result.verdict, LinearizabilityVerdict::kLinearizable);
  EXPECT_EQ(result.operations_pruned, 0u);
}

// Pruning never hides a violation: a stale read after a completed write is still caught with
// unobserved timeouts around it.
TEST(LinearizabilityPruning, AViolationAmongPrunedTimeoutsIsStillCaught) {
  const KeyCheckResult result =
      check_register_history({write(1, 0, 10, 7), unknown_write(2, 5, 8), write(3, 20, 30, 9),
                              unknown_write(4, 35, 10), read(5, 40, 50, 7)});
  EXPECT_EQ(result.verdict, LinearizabilityVerdict::kNotLinearizable);
  EXPECT_EQ(result.operations_pruned, 2u);
}

}  // namespace
}  // namespace dynasim::gameday

namespace dynasim::gameday {
namespace {

// Unknown conditional writes are not observers: a timed-out blind write before a timed-out
// put-if-version still goes, and so does the put-if-version itself when nobody read its value.
TEST(LinearizabilityPruning, UnknownConditionalWritesDoNotPinEarlierTimeouts) {
  RegisterOperation cas = write(3, 40, INT64_MAX, 12);
  cas.kind = Kind::kConditionalWrite;
  cas.expected_value = 7;
  cas.outcome = Outcome::kUnknown;
  RegisterOperation blind = write(2, 20, INT64_MAX, 9);
  blind.outcome = Outcome::kUnknown;
  const KeyCheckResult result =
      check_register_history({write(1, 0, 10, 7), blind, cas, read(4, 100, 110, 7)});
  EXPECT_EQ(result.verdict, LinearizabilityVerdict::kLinearizable);
  EXPECT_EQ(result.operations_pruned, 2u);
}

}  // namespace
}  // namespace dynasim::gameday
