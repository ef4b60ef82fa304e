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
