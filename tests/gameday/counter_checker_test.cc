// The counter check (gameday/counter_checker.h), fed ADD attempts and counter reads by hand: the
// value must lie between the ADDs acknowledged before the final read began and the ADD attempts
// sent before it ended; an unknown outcome, a failed attempt and a retry may each have applied.
#include "gameday/counter_checker.h"

#include <gtest/gtest.h>

#include <string>

#include "gameday/history.h"

namespace dynasim::gameday {
namespace {

using model::StorageStatus;

model::PrimaryKey key(const std::string& name) {
  return model::PrimaryKey{model::KeyValue::string(name), std::nullopt};
}

struct CounterHarness {
  CounterHarness() : simulation(1), checker(&simulation) {}
  void at(int64_t true_ns) { simulation.run_until(sim::SimTime(true_ns)); }
  // One ADD attempt on `name`; no status: it timed out.
  void add(const std::string& name, int64_t start_ns, int64_t end_ns,
           std::optional<StorageStatus> status) {
    model::ClientRequest request;
    request.op = model::StorageOp::kUpdate;
    request.key = key(name);
    request.update.actions.push_back(
        model::UpdateAction::add(kCounterAttribute, model::Decimal::from_int(1)));
    const uint64_t id = next_request_id++;
    at(start_ns);
    checker.on_api_attempt_start(7, id, id, request, sim::Address{});
    at(end_ns);
    model::StorageResponse response;
    response.request_id = id;
    if (status) response.status = *status;
    checker.on_api_attempt_end(7, id, status ? &response : nullptr);
  }
  // One strong read of `name` answered with its count (nullopt: no item).
  void read(const std::string& name, int64_t start_ns, int64_t end_ns,
            std::optional<int64_t> count) {
    model::ClientRequest request;
    request.op = model::StorageOp::kGet;
    request.consistency = model::ReadConsistency::kStrong;
    request.key = key(name);
    const uint64_t id = next_request_id++;
    at(start_ns);
    checker.on_attempt_start(7, id, id, request, sim::Address{});
    at(end_ns);
    std::optional<model::Item> item;
    if (count) {
      item.emplace(key(name));
      item->set(kCounterAttribute, model::Decimal::from_int(*count));
    }
    checker.on_attempt_end(7, id, count ? StorageStatus::kOk : StorageStatus::kNotFound, false,
                           item);
  }
  bool judge(int64_t verification_start_ns) {
    checker.finish(sim::SimTime(verification_start_ns));
    return checker.passed();
  }
  sim::Simulation simulation;
  CounterChecker checker;
  uint64_t next_request_id = 1;
};

// Three acknowledged ADDs, then the final read: exactly 3 passes, 2 lost one.
TEST(CounterCheckerTest, AcknowledgedAddsBoundTheValueFromBelow) {
  for (const int64_t value : {3, 2}) {
    CounterHarness h;
    h.add("counter-0", 10, 20, StorageStatus::kOk);
    h.add("counter-0", 30, 40, StorageStatus::kOk);
    h.add("counter-0", 50, 60, StorageStatus::kOk);
    h.read("counter-0", 1000, 1010, value);
    EXPECT_EQ(h.judge(1000), value == 3) << value;
    EXPECT_EQ(h.checker.adds_acknowledged(), 3u);
    if (value == 2) {
      EXPECT_NE(h.checker.first_violation().find("acknowledged ADDs were lost"), std::string::npos)
          << h.checker.first_violation();
    }
  }
}

// A timeout and an error answer may or may not have applied: 2 acknowledged and 2 unknown allow
// 2, 3 and 4, not 1 or 5.
TEST(CounterCheckerTest, UnknownOutcomesAndErrorsMayOrMayNotHaveApplied) {
  for (const int64_t value : {1, 2, 3, 4, 5}) {
    CounterHarness h;
    h.add("counter-1", 10, 20, StorageStatus::kOk);
    h.add("counter-1", 30, 40, std::nullopt);  // timed out
    h.add("counter-1", 50, 60, StorageStatus::kUnhealthy);
    h.add("counter-1", 70, 80, StorageStatus::kOk);
    h.read("counter-1", 1000, 1010, value);
    EXPECT_EQ(h.judge(1000), value >= 2 && value <= 4) << value;
    const nlohmann::json report = h.checker.report();
    EXPECT_EQ(report["adds_attempted"], 4);
    EXPECT_EQ(report["adds_timed_out"], 1);
    EXPECT_EQ(report["adds_failed"], 1);
  }
}

// A client retries an ADD whose first attempt timed out; both attempts applied: 2 from one
// operation is what DynamoDB can do too, and passes. The bound is attempts, not operations.
TEST(CounterCheckerTest, ARetryThatAppliedTwiceIsWithinTheBound) {
  CounterHarness h;
  h.add("counter-2", 10, 500, std::nullopt);
  h.add("counter-2", 600, 610, StorageStatus::kOk);
  h.read("counter-2", 1000, 1010, 2);
  EXPECT_TRUE(h.judge(1000)) << h.checker.first_violation();
}

// More than every attempt sent: an ADD applied twice per attempt (or a value from nowhere).
TEST(CounterCheckerTest, AValueAboveTheAttemptsSentFails) {
  CounterHarness h;
  h.add("counter-3", 10, 20, StorageStatus::kOk);
  h.add("counter-3", 30, 40, StorageStatus::kOk);
  h.read("counter-3", 1000, 1010, 4);
  EXPECT_FALSE(h.judge(1000));
  EXPECT_NE(h.checker.first_violation().find("more than once"), std::string::npos)
      << h.checker.first_violation();
}

// ADDs concurrent with the final read: one acknowledged after the read began need not show, one
// sent before the read ended may; one sent after it ended may not.
TEST(CounterCheckerTest, AddsConcurrentWithTheFinalReadMayOrMayNotShow) {
  for (const int64_t value : {1, 2, 3}) {
    CounterHarness h;
    h.add("counter-4", 10, 20, StorageStatus::kOk);
    h.add("counter-4", 990, 1005, StorageStatus::kOk);  // acknowledged inside the read
    h.read("counter-4", 1000, 1010, value);
    h.add("counter-4", 1020, 1030, StorageStatus::kOk);  // after the read ended
    EXPECT_EQ(h.judge(1000), value <= 2) << value;
  }
}

// The final read is the last to complete from the verification start on; earlier reads and a
// missing item (count 0) are judged alike.
TEST(CounterCheckerTest, TheLastVerificationReadDecidesAndNoItemIsZero) {
  CounterHarness h;
  h.read("counter-5", 5, 8, std::nullopt);  // before any ADD and before verification: ignored
  h.add("counter-5", 10, 20, StorageStatus::kOk);
  h.read("counter-5", 1000, 1010, std::nullopt);  // not the last: not the final read
  h.read("counter-5", 1020, 1030, 1);
  EXPECT_TRUE(h.judge(1000)) << h.checker.first_violation();
  CounterHarness lost;
  lost.add("counter-5", 10, 20, StorageStatus::kOk);
  lost.read("counter-5", 1000, 1010, std::nullopt);
  EXPECT_FALSE(lost.judge(1000));
}

// A counter sent ADDs and never read back fails; a value that is not a count fails.
TEST(CounterCheckerTest, AnUnreadCounterAndABadValueFail) {
  CounterHarness h;
  h.add("counter-6", 10, 20, StorageStatus::kOk);
  h.add("counter-7", 10, 20, StorageStatus::kOk);
  h.read("counter-7", 1000, 1010, -1);
  EXPECT_FALSE(h.judge(1000));
  const nlohmann::json report = h.checker.report();
  EXPECT_EQ(report["counters_checked"], 2);
  EXPECT_EQ(report["counters_unverified"], 1);
  EXPECT_EQ(report["violations"], 2);
  EXPECT_NE(h.checker.first_violation().find("never read back"), std::string::npos);
}

// Operations on keys that are not counters are not the checker's.
TEST(CounterCheckerTest, OtherKeysAreIgnored) {
  CounterHarness h;
  h.add("key-1", 10, 20, StorageStatus::kOk);
  h.read("key-1", 1000, 1010, 7);
  EXPECT_TRUE(h.judge(1000));
  EXPECT_EQ(h.checker.report()["counters_checked"], 0);
  EXPECT_EQ(h.checker.adds_attempted(), 0u);
}

}  // namespace
}  // namespace dynasim::gameday
