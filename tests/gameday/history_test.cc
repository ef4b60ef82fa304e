// The history recorder (attempts to register operations, outcomes, availability, the JSON-lines
// dump) and the workload process driving a direct client against an in-test fake group: the
// history it records is complete, linearizable and durable when the fake is a perfect register,
// and the checkers catch the fake's planted lost writes.
#include "gameday/history.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "gameday/storage_checkers.h"
#include "gameday/workload.h"
#include "sim/world.h"

namespace dynasim::gameday {
namespace {

using Kind = RegisterOperation::Kind;
using Outcome = RegisterOperation::Outcome;
using model::StorageStatus;

// ---------------------------------------------------------------------------------------------
// The recorder, fed attempts by hand.

model::PrimaryKey key(const std::string& name) {
  return model::PrimaryKey{model::KeyValue::string(name), std::nullopt};
}

model::Item item_with_version(const std::string& name, uint64_t version) {
  model::Item item(key(name));
  item.set("data", model::Payload{100, 1, 2});
  item.set(kVersionAttribute, model::Decimal::from_int(static_cast<int64_t>(version)));
  return item;
}

model::ClientRequest put(const std::string& name, uint64_t version) {
  model::ClientRequest request;
  request.op = model::StorageOp::kPut;
  request.key = key(name);
  request.item = item_with_version(name, version);
  return request;
}

model::ClientRequest put_if_version(const std::string& name, uint64_t version, uint64_t expected) {
  model::ClientRequest request = put(name, version);
  request.condition.kind = model::Condition::Kind::kAttributeEquals;
  request.condition.attribute = kVersionAttribute;
  request.condition.value = model::Decimal::from_int(static_cast<int64_t>(expected));
  return request;
}

model::ClientRequest get(const std::string& name, model::ReadConsistency consistency) {
  model::ClientRequest request;
  request.op = model::StorageOp::kGet;
  request.consistency = consistency;
  request.key = key(name);
  return request;
}

struct RecorderHarness {
  RecorderHarness() : simulation(1), recorder(&simulation) {}
  void at(int64_t true_ns) { simulation.run_until(sim::SimTime(true_ns)); }
  // One attempt from start to end at the given true times.
  void attempt(uint64_t request_id, const model::ClientRequest& request, int64_t start_ns,
               int64_t end_ns, StorageStatus status, bool timed_out = false,
               std::optional<model::Item> item = std::nullopt) {
    at(start_ns);
    recorder.on_attempt_start(7, request_id, request_id, request, sim::Address{});
    at(end_ns);
    recorder.on_attempt_end(7, request_id, status, timed_out, item);
  }
  sim::Simulation simulation;
  HistoryRecorder recorder;
};

TEST(HistoryRecorderTest, WritesAndReadsBecomeRegisterOperations) {
  RecorderHarness h;
  h.attempt(1, put("a", 100), 10, 20, StorageStatus::kOk);
  h.attempt(2, get("a", model::ReadConsistency::kStrong), 30, 40, StorageStatus::kOk, false,
            item_with_version("a", 100));
  h.attempt(3, get("a", model::ReadConsistency::kStrong), 50, 60, StorageStatus::kNotFound);
  model::ClientRequest erase;
  erase.op = model::StorageOp::kDelete;
  erase.key = key("a");
  h.attempt(4, erase, 70, 80, StorageStatus::kOk);
  const auto& operations = h.recorder.by_key().at("a");
  ASSERT_EQ(operations.size(), 4u);
  EXPECT_EQ(operations[0].kind, Kind::kWrite);
  EXPECT_EQ(operations[0].value, 100u);
  EXPECT_EQ(operations[0].invoke_ns, 10);
  EXPECT_EQ(operations[0].complete_ns, 20);
  EXPECT_EQ(operations[0].client, 7u);
  EXPECT_EQ(operations[1].kind, Kind::kRead);
  EXPECT_EQ(operations[1].read_value, std::optional<uint64_t>(100));
  EXPECT_EQ(operations[2].read_value, std::nullopt);
  EXPECT_EQ(operations[3].kind, Kind::kDelete);
  ASSERT_EQ(h.recorder.acknowledged_writes().size(), 2u);
  EXPECT_EQ(h.recorder.acknowledged_writes()[1].kind, Kind::kDelete);
  // This history is not linearizable (the read at 50 should still see 100): the recorder keeps
  // what happened, and the checker judges it.
  EXPECT_FALSE(check_history(h.recorder.by_key()).passed());
}

TEST(HistoryRecorderTest, ConditionsMapToExpectedValueOrExistence) {
  RecorderHarness h;
  h.attempt(1, put_if_version("a", 200, 100), 10, 20, StorageStatus::kOk);
  h.attempt(2, put_if_version("a", 201, 150), 30, 40, StorageStatus::kConditionFailed);
  model::ClientRequest absent = put("a", 202);
  absent.condition.kind = model::Condition::Kind::kAttributeNotExists;
  absent.condition.attribute = kVersionAttribute;
  h.attempt(3, absent, 50, 60, StorageStatus::kConditionFailed);
  const auto& operations = h.recorder.by_key().at("a");
  ASSERT_EQ(operations.size(), 3u);
  EXPECT_EQ(operations[0].kind, Kind::kConditionalWrite);
  EXPECT_EQ(operations[0].expected_value, std::optional<uint64_t>(100));
  EXPECT_EQ(operations[0].expected_version, std::nullopt);
  EXPECT_EQ(operations[0].outcome, Outcome::kOk);
  EXPECT_EQ(operations[1].outcome, Outcome::kConditionFailed);
  EXPECT_EQ(operations[2].expected_exists, std::optional<bool>(false));
  EXPECT_EQ(h.recorder.acknowledged_writes().size(), 1u);
}

TEST(HistoryRecorderTest, TimeoutsAreUnknownAndSurelyFailedAttemptsAreDropped) {
  RecorderHarness h;
  h.attempt(1, put("a", 1), 10, 20, StorageStatus::kBusy, /*timed_out=*/true);
  for (StorageStatus status :
       {StorageStatus::kNotLeader, StorageStatus::kNotServing, StorageStatus::kBusy,
        StorageStatus::kRecovering, StorageStatus::kUnhealthy, StorageStatus::kValidation,
        StorageStatus::kNoSuchGroup}) {
    h.attempt(10 + static_cast<uint64_t>(status), put("a", 2), 30, 40, status);
  }
  h.attempt(30, get("a", model::ReadConsistency::kStrong), 50, 60, StorageStatus::kBusy, true);
  h.attempt(31, get("a", model::ReadConsistency::kStrong), 50, 60, StorageStatus::kNotLeader);
  h.attempt(32, get("a", model::ReadConsistency::kEventual), 50, 60, StorageStatus::kOk, false,
            item_with_version("a", 1));
  const auto& operations = h.recorder.by_key().at("a");
  ASSERT_EQ(operations.size(), 1u);
  EXPECT_EQ(operations[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(operations[0].complete_ns, INT64_MAX);
  const HistoryCounts& counts = h.recorder.counts();
  EXPECT_EQ(counts.writes_dropped, 7u);
  EXPECT_EQ(counts.reads_dropped, 2u);
  EXPECT_EQ(counts.eventual_reads, 1u);
  EXPECT_EQ(counts.unknown_outcomes, 1u);
  EXPECT_EQ(counts.attempts_timed_out, 2u);
  EXPECT_EQ(counts.attempts_started, counts.attempts_ended);
  EXPECT_EQ(counts.impossible_answers, 0u);
  EXPECT_TRUE(h.recorder.acknowledged_writes().empty());
}

TEST(HistoryRecorderTest, ImpossibleAnswersAreCountedAndNamed) {
  RecorderHarness h;
  h.attempt(1, put("a", 1), 10, 20, StorageStatus::kConditionFailed);  // no condition was set
  h.recorder.on_attempt_end(7, 99, StorageStatus::kOk, false, std::nullopt);  // never started
  EXPECT_EQ(h.recorder.counts().impossible_answers, 2u);
  EXPECT_NE(h.recorder.first_impossible_answer().find("condition-failed"), std::string::npos)
      << h.recorder.first_impossible_answer();
  // An item without "ver" reads as a value no write puts.
  h.attempt(2, get("b", model::ReadConsistency::kStrong), 30, 40, StorageStatus::kOk, false,
            model::Item(key("b")));
  EXPECT_EQ(h.recorder.by_key().at("b")[0].read_value, std::optional<uint64_t>(kForeignValue));
}

TEST(HistoryRecorderTest, AvailabilityIsCountedPerWindow) {
  RecorderHarness h;
  const int64_t second = 1'000'000'000;
  for (int i = 0; i < 10; ++i) {
    h.recorder.record_operation_end(sim::SimTime(i * second / 10), OperationEnd::kSucceeded);
  }
  for (int i = 0; i < 4; ++i) {
    h.recorder.record_operation_end(sim::SimTime(2 * second + i), OperationEnd::kFailed);
    h.recorder.record_operation_end(sim::SimTime(2 * second + i), OperationEnd::kSucceeded);
  }
  const nlohmann::json windows = h.recorder.availability(sim::seconds(1));
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_EQ(windows[0]["operations"], 10);
  EXPECT_EQ(windows[0]["fraction"], 1.0);
  EXPECT_EQ(windows[1]["operations"], 0);
  EXPECT_TRUE(windows[1]["fraction"].is_null());
  EXPECT_EQ(windows[2]["start_ns"], 2 * second);
  EXPECT_EQ(windows[2]["end_ns"], 3 * second);
  EXPECT_EQ(windows[2]["succeeded"], 4);
  EXPECT_EQ(windows[2]["fraction"], 0.5);
  const nlohmann::json wide = h.recorder.availability(sim::seconds(5));
  ASSERT_EQ(wide.size(), 1u);
  EXPECT_EQ(wide[0]["operations"], 18);
  EXPECT_EQ(wide[0]["succeeded"], 14);
}

// ---------------------------------------------------------------------------------------------
// Latency: nearest-rank percentiles over integer nanoseconds, by kind, from answered attempts and
// from whole operations.

constexpr int64_t kMillisecond = 1'000'000;

TEST(LatencyPercentileTest, NearestRankOnOneToOneHundred) {
  // 1 .. 100 ms in a scrambled order: p50 is the 50th smallest, p99 the 99th (not the largest),
  // p999 the 100th. An index of floor(p * n) would give 51 and 100; one of ceil(p * n) without
  // the -1, 51 and 100 too.
  std::vector<int64_t> samples;
  for (int64_t i = 0; i < 100; ++i) samples.push_back(((i * 37) % 100 + 1) * kMillisecond);
  const LatencySummary summary = summarize_latency(samples);
  EXPECT_EQ(summary.count, 100u);
  EXPECT_EQ(summary.p50_ns, 50 * kMillisecond);
  EXPECT_EQ(summary.p99_ns, 99 * kMillisecond);
  EXPECT_EQ(summary.p999_ns, 100 * kMillisecond);
  EXPECT_EQ(summary.max_ns, 100 * kMillisecond);
  EXPECT_TRUE(std::is_sorted(samples.begin(), samples.end()));
}

TEST(LatencyPercentileTest, NearestRankOnOneToOneThousandAndSmallSets) {
  std::vector<int64_t> thousand;
  for (int64_t i = 1000; i >= 1; --i) thousand.push_back(i);
  const LatencySummary summary = summarize_latency(thousand);
  EXPECT_EQ(summary.p50_ns, 500);
  EXPECT_EQ(summary.p99_ns, 990);
  EXPECT_EQ(summary.p999_ns, 999);
  EXPECT_EQ(summary.max_ns, 1000);
  // 101 samples: rank ceil(0.99 * 101) = 100, ceil(0.5 * 101) = 51.
  std::vector<int64_t> odd;
  for (int64_t i = 1; i <= 101; ++i) odd.push_back(i);
  EXPECT_EQ(summarize_latency(odd).p99_ns, 100);
  EXPECT_EQ(summarize_latency(odd).p50_ns, 51);
  std::vector<int64_t> three = {30, 10, 20};
  const LatencySummary small = summarize_latency(three);
  EXPECT_EQ(small.p50_ns, 20);
  EXPECT_EQ(small.p99_ns, 30);
  std::vector<int64_t> one = {7};
  EXPECT_EQ(summarize_latency(one).p50_ns, 7);
  EXPECT_EQ(summarize_latency(one).p999_ns, 7);
  std::vector<int64_t> none;
  EXPECT_EQ(summarize_latency(none).count, 0u);
  const nlohmann::json empty = latency_summary_json(summarize_latency(none));
  EXPECT_EQ(empty["count"], 0);
  EXPECT_TRUE(empty["p99"].is_null());
  const nlohmann::json json = latency_summary_json(summary);
  EXPECT_EQ(json["p99"], 990 / 1e6);
  EXPECT_EQ(json["max"], 1000 / 1e6);
}

TEST(HistoryRecorderTest, AttemptLatencyIsByKindOverAnsweredAttempts) {
  RecorderHarness h;
  const int64_t second = 1'000'000'000;
  int64_t t = second;
  uint64_t request = 1;
  // 100 strong reads of 1 .. 100 ms, answered kOk or kNotFound.
  for (int64_t i = 1; i <= 100; ++i, t += second) {
    if (i % 2 == 0) {
      h.attempt(request++, get("a", model::ReadConsistency::kStrong), t, t + i * kMillisecond,
                StorageStatus::kNotFound);
    } else {
      h.attempt(request++, get("a", model::ReadConsistency::kStrong), t, t + i * kMillisecond,
                StorageStatus::kOk, false, item_with_version("a", 1));
    }
  }
  // Not answered: a timeout and an error; neither counts, however slow.
  h.attempt(request++, get("a", model::ReadConsistency::kStrong), t, t + 500 * kMillisecond,
            StorageStatus::kBusy, /*timed_out=*/true);
  t += second;
  h.attempt(request++, put("a", 2), t, t + 400 * kMillisecond, StorageStatus::kNotLeader);
  t += second;
  h.attempt(request++, put("a", 3), t, t + 300 * kMillisecond, StorageStatus::kBusy, true);
  t += second;
  // One of each other kind; a failed condition is an answer.
  h.attempt(request++, put("a", 4), t, t + 4 * kMillisecond, StorageStatus::kOk);
  t += second;
  h.attempt(request++, put_if_version("a", 5, 4), t, t + 5 * kMillisecond,
            StorageStatus::kConditionFailed);
  t += second;
  model::ClientRequest absent = put("a", 6);
  absent.condition.kind = model::Condition::Kind::kAttributeNotExists;
  absent.condition.attribute = kVersionAttribute;
  h.attempt(request++, absent, t, t + 6 * kMillisecond, StorageStatus::kConditionFailed);
  t += second;
  model::ClientRequest erase;
  erase.op = model::StorageOp::kDelete;
  erase.key = key("a");
  h.attempt(request++, erase, t, t + 7 * kMillisecond, StorageStatus::kOk);
  t += second;
  h.attempt(request++, get("a", model::ReadConsistency::kEventual), t, t + 8 * kMillisecond,
            StorageStatus::kNotFound);
  t += second;
  h.attempt(request++, get("a", model::ReadConsistency::kEventual), t, t + 900 * kMillisecond,
            StorageStatus::kBusy, true);
  t += second;
  // After the measured window: neither counts.
  h.recorder.measure_latency_until(sim::SimTime(t));
  h.attempt(request++, get("a", model::ReadConsistency::kStrong), t, t + 700 * kMillisecond,
            StorageStatus::kNotFound);
  t += second;
  h.attempt(request++, get("a", model::ReadConsistency::kEventual), t, t + 700 * kMillisecond,
            StorageStatus::kNotFound);

  const nlohmann::json latency = h.recorder.attempt_latency_json();
  EXPECT_EQ(latency["get_strong"]["count"], 100);
  EXPECT_EQ(latency["get_strong"]["p50"], 50.0);
  EXPECT_EQ(latency["get_strong"]["p99"], 99.0);
  EXPECT_EQ(latency["get_strong"]["p999"], 100.0);
  EXPECT_EQ(latency["get_strong"]["max"], 100.0);
  const std::pair<const char*, double> singles[] = {{"put", 4.0},
                                                    {"put_if_version", 5.0},
                                                    {"put_if_absent", 6.0},
                                                    {"delete", 7.0},
                                                    {"get_eventual", 8.0}};
  for (const auto& [kind, milliseconds] : singles) {
    EXPECT_EQ(latency[kind]["count"], 1) << kind;
    EXPECT_EQ(latency[kind]["p50"], milliseconds) << kind;
    EXPECT_EQ(latency[kind]["max"], milliseconds) << kind;
  }
  // all: 1 .. 100 and 4 .. 8 (105 samples, five of them at or below 8): rank ceil(52.5) = 53
  // is 48, rank ceil(103.95) = 104 is 99.
  EXPECT_EQ(latency["all"]["count"], 105);
  EXPECT_EQ(latency["all"]["p50"], 48.0);
  EXPECT_EQ(latency["all"]["p99"], 99.0);
  EXPECT_EQ(latency["all"]["max"], 100.0);
}

TEST(HistoryRecorderTest, OperationLatencyRunsFromTheFirstAttemptToTheEnd) {
  RecorderHarness h;
  const int64_t ms = kMillisecond;
  // Operation 1: a timed-out attempt, a backoff, then an answer.
  h.at(10 * ms);
  h.recorder.on_attempt_start(7, 1, 1, put("a", 1), sim::Address{});
  h.at(510 * ms);
  h.recorder.on_attempt_end(7, 1, StorageStatus::kBusy, true, std::nullopt);
  h.at(530 * ms);
  h.recorder.on_attempt_start(7, 1, 2, put("a", 1), sim::Address{});
  h.at(540 * ms);
  h.recorder.on_attempt_end(7, 2, StorageStatus::kOk, false, std::nullopt);
  model::ClientResult ok;
  ok.attempts = 2;
  h.recorder.on_operation_end(7, 1, ok);
  // Operation 2: fails after one attempt; not counted.
  h.at(600 * ms);
  h.recorder.on_attempt_start(7, 2, 3, get("a", model::ReadConsistency::kStrong), sim::Address{});
  h.at(620 * ms);
  h.recorder.on_attempt_end(7, 3, StorageStatus::kUnhealthy, false, std::nullopt);
  model::ClientResult failed;
  failed.status = StorageStatus::kUnhealthy;
  h.recorder.on_operation_end(7, 2, failed);
  // Operation 3: a strong read answered kNotFound at once.
  h.at(700 * ms);
  h.recorder.on_attempt_start(7, 3, 4, get("a", model::ReadConsistency::kStrong), sim::Address{});
  h.at(703 * ms);
  h.recorder.on_attempt_end(7, 4, StorageStatus::kNotFound, false, std::nullopt);
  model::ClientResult not_found;
  not_found.status = StorageStatus::kNotFound;
  h.recorder.on_operation_end(7, 3, not_found);

  const nlohmann::json operations = h.recorder.operation_latency_json();
  EXPECT_EQ(operations["put"]["count"], 1);
  EXPECT_EQ(operations["put"]["max"], 530.0);
  EXPECT_EQ(operations["get_strong"]["count"], 1);
  EXPECT_EQ(operations["get_strong"]["p50"], 3.0);
  EXPECT_EQ(operations["all"]["count"], 2);
  const nlohmann::json attempts = h.recorder.attempt_latency_json();
  EXPECT_EQ(attempts["put"]["count"], 1);
  EXPECT_EQ(attempts["put"]["max"], 10.0);  // the answered attempt alone
  EXPECT_EQ(h.recorder.counts().impossible_answers, 0u);
  h.recorder.on_operation_end(7, 3, not_found);  // ended twice
  EXPECT_EQ(h.recorder.counts().impossible_answers, 1u);
}

TEST(HistoryRecorderTest, KeyStringsAreReadableAndDistinct) {
  EXPECT_EQ(key_string(key("key-3")), "key-3");
  model::PrimaryKey composite{model::KeyValue::string("user"),
                              model::KeyValue::number_value(model::Decimal::from_int(42))};
  EXPECT_EQ(key_string(composite), "user|42");
  EXPECT_EQ(key_string(model::PrimaryKey{model::KeyValue::binary(std::string("\x01\xff", 2)),
                                         std::nullopt}),
            "0x01ff");
  EXPECT_EQ(integer_value(model::Decimal::from_int(int64_t{1} << 45)),
            std::optional<uint64_t>(uint64_t{1} << 45));
  EXPECT_EQ(integer_value(model::Decimal::from_int(-3)), std::nullopt);
  EXPECT_EQ(integer_value(std::string("12")), std::nullopt);
}

TEST(HistoryRecorderTest, TheDumpHasOneLinePerInvocationAndCompletion) {
  RecorderHarness h;
  std::ostringstream out;
  h.recorder.set_dump(&out);
  h.attempt(1, put("a", 5), 10, 20, StorageStatus::kOk);
  h.attempt(2, put_if_version("a", 6, 5), 30, 40, StorageStatus::kConditionFailed);
  h.attempt(3, get("a", model::ReadConsistency::kStrong), 50, 60, StorageStatus::kOk, false,
            item_with_version("a", 5));
  h.attempt(4, put("a", 7), 70, 80, StorageStatus::kBusy, true);
  std::istringstream in(out.str());
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[0]["type"], "invoke");
  EXPECT_EQ(lines[0]["f"], "write");
  EXPECT_EQ(lines[0]["value"], 5);
  EXPECT_EQ(lines[0]["key"], "a");
  EXPECT_EQ(lines[0]["time_ns"], 10);
  EXPECT_EQ(lines[1]["type"], "ok");
  EXPECT_EQ(lines[1]["time_ns"], 20);
  EXPECT_EQ(lines[2]["f"], "cas");
  EXPECT_EQ(lines[2]["value"], nlohmann::json::array({5, 6}));
  EXPECT_EQ(lines[3]["type"], "fail");
  EXPECT_EQ(lines[5]["f"], "read");
  EXPECT_EQ(lines[5]["value"], 5);
  EXPECT_EQ(lines[5]["consistency"], "strong");
  EXPECT_EQ(lines[7]["type"], "info");
  EXPECT_EQ(lines[7]["status"], "timeout");
  for (const nlohmann::json& line : lines) {
    EXPECT_EQ(line["client"], 7);
    EXPECT_TRUE(line.contains("op"));
  }
}

// ---------------------------------------------------------------------------------------------
// UpdateItem, Query and Scan (the on_api_* hooks) and the counter keys.

// One api attempt from start to end; no response: it timed out.
void api_attempt(RecorderHarness& h, uint64_t request_id, const model::ClientRequest& request,
                 int64_t start_ns, int64_t end_ns, const model::StorageResponse* response) {
  h.at(start_ns);
  h.recorder.on_api_attempt_start(7, request_id, request_id, request, sim::Address{});
  h.at(end_ns);
  h.recorder.on_api_attempt_end(7, request_id, response);
}

model::ClientRequest query(const std::string& name, model::ReadConsistency consistency) {
  model::ClientRequest request;
  request.op = model::StorageOp::kQuery;
  request.consistency = consistency;
  request.key = key(name);
  request.query.key_condition.partition = request.key.partition;
  request.page.limit = 1;
  return request;
}

model::StorageResponse page(std::vector<model::Item> items) {
  model::StorageResponse response;
  response.status = StorageStatus::kOk;
  response.items = std::move(items);
  return response;
}

// A strong Query's first page is a strong read of its key: of the item's "ver", or of no item.
// Its later pages, an eventual Query, and the pages' latency as GetItems are not.
TEST(HistoryRecorderTest, AStrongQuerysFirstPageIsAStrongReadOfItsKey) {
  RecorderHarness h;
  h.attempt(1, put("a", 100), 10, 20, StorageStatus::kOk);
  const model::StorageResponse found = page({item_with_version("a", 100)});
  api_attempt(h, 2, query("a", model::ReadConsistency::kStrong), 30, 40, &found);
  model::ClientRequest second = query("a", model::ReadConsistency::kStrong);
  second.page.exclusive_start_key = key("a");
  const model::StorageResponse empty = page({});
  api_attempt(h, 3, second, 40, 50, &empty);  // past the item: no read of "no item"
  api_attempt(h, 4, query("a", model::ReadConsistency::kEventual), 60, 70, &empty);
  api_attempt(h, 5, query("b", model::ReadConsistency::kStrong), 80, 90, &empty);
  api_attempt(h, 6, query("b", model::ReadConsistency::kStrong), 100, 110, nullptr);
  const auto& a = h.recorder.by_key().at("a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].kind, Kind::kRead);
  EXPECT_EQ(a[1].read_value, std::optional<uint64_t>(100));
  EXPECT_EQ(a[1].invoke_ns, 30);
  const auto& b = h.recorder.by_key().at("b");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].read_value, std::nullopt);
  EXPECT_TRUE(check_history(h.recorder.by_key()).passed());
  const HistoryCounts& counts = h.recorder.counts();
  EXPECT_EQ(counts.query_reads_recorded, 2u);
  EXPECT_EQ(counts.reads_recorded, 2u);
  EXPECT_EQ(counts.reads_dropped, 1u);               // the timed-out first page
  EXPECT_EQ(counts.attempts_outside_registers, 2u);  // the second page, the eventual query
  EXPECT_EQ(counts.attempts_started, counts.attempts_ended);
  const nlohmann::json latency = h.recorder.attempt_latency_json();
  EXPECT_EQ(latency["query"]["count"], 4);  // answered pages, strong or not
  EXPECT_EQ(latency["get_strong"]["count"], 0);
  EXPECT_EQ(latency["all"]["count"], 5);
}

// A Query of a key with no sort key that returns two items is an impossible answer.
TEST(HistoryRecorderTest, AQueryOfOneKeyReturningTwoItemsIsImpossible) {
  RecorderHarness h;
  const model::StorageResponse two = page({item_with_version("a", 1), item_with_version("a", 2)});
  api_attempt(h, 1, query("a", model::ReadConsistency::kStrong), 10, 20, &two);
  EXPECT_EQ(h.recorder.counts().impossible_answers, 1u);
  EXPECT_NE(h.recorder.first_impossible_answer().find("returned 2 items"), std::string::npos);
}

// UpdateItems, Scans and the counters' reads stay out of the register histories but count as
// requests, with their latency; a GetItem of a counter key is not a register read.
TEST(HistoryRecorderTest, UpdatesScansAndCounterReadsStayOutOfTheRegisters) {
  RecorderHarness h;
  model::ClientRequest update;
  update.op = model::StorageOp::kUpdate;
  update.key = key("counter-0");
  update.update.actions.push_back(
      model::UpdateAction::add(kCounterAttribute, model::Decimal::from_int(1)));
  model::StorageResponse ok;
  ok.status = StorageStatus::kOk;
  api_attempt(h, 1, update, 10, 20, &ok);
  model::StorageResponse throttled;
  throttled.status = StorageStatus::kThrottled;
  api_attempt(h, 2, update, 30, 40, &throttled);
  model::ClientRequest scan;
  scan.op = model::StorageOp::kScan;
  scan.page.limit = 10;
  const model::StorageResponse items = page({item_with_version("a", 1), item_with_version("b", 2)});
  api_attempt(h, 3, scan, 50, 60, &items);
  model::Item counter(key("counter-0"));
  counter.set(kCounterAttribute, model::Decimal::from_int(1));
  h.attempt(4, get("counter-0", model::ReadConsistency::kStrong), 70, 80, StorageStatus::kOk, false,
            counter);
  EXPECT_TRUE(h.recorder.by_key().empty());
  const HistoryCounts& counts = h.recorder.counts();
  EXPECT_EQ(counts.attempts_outside_registers, 4u);
  EXPECT_EQ(counts.impossible_answers, 0u);
  const nlohmann::json requests = h.recorder.requests_json();
  EXPECT_EQ(requests["total"], 4);
  EXPECT_EQ(requests["ok"], 3);
  EXPECT_EQ(requests["throttled"], 1);
  const nlohmann::json latency = h.recorder.attempt_latency_json();
  EXPECT_EQ(latency["update"]["count"], 1);
  EXPECT_EQ(latency["scan"]["count"], 1);
  EXPECT_EQ(latency["get_strong"]["count"], 1);
  // An unconditional update cannot fail its condition.
  model::StorageResponse failed;
  failed.status = StorageStatus::kConditionFailed;
  api_attempt(h, 5, update, 90, 100, &failed);
  EXPECT_EQ(h.recorder.counts().impossible_answers, 1u);
}

// ---------------------------------------------------------------------------------------------
// The workload against a fake group: replica 1 leads and applies each request atomically when it
// arrives (a perfect register), answering after a random delay; some answers are lost, so the
// client sees timeouts of writes that did apply. Followers redirect strong requests to the leader
// and serve eventual reads from the same register.

struct FakeGroupState {
  std::map<model::PrimaryKey, model::Item> items;
  sim::Address leader;
  double answer_loss_probability = 0.02;
  // Planted bug: acknowledge every tenth put without applying it (a lost acknowledged write).
  bool plant_lose_acknowledged_writes = false;
  uint64_t puts_seen = 0;
  uint64_t requests = 0;
};

class FakeGroupReplica final : public sim::Process {
 public:
  explicit FakeGroupReplica(FakeGroupState* state) : state_(state) {}
  void on_start(sim::Env&) override {}
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    const auto& request = dynamic_cast<const model::StorageRequest&>(*message.body);
    ++state_->requests;
    auto response = std::make_shared<model::StorageResponse>();
    response->group = request.group;
    response->request_id = request.request_id;
    const bool strong = !(request.op == model::StorageOp::kGet &&
                          request.consistency == model::ReadConsistency::kEventual);
    if (strong && env.self() != state_->leader) {
      response->status = StorageStatus::kNotLeader;
      response->leader_hint = state_->leader;
    } else {
      apply(request, response.get());
    }
    if (env.random().bernoulli(state_->answer_loss_probability)) return;
    sim::Message answer{static_cast<uint32_t>(model::StorageMessageType::kResponse), 100,
                        request.request_id, std::move(response)};
    pending_.emplace(next_cookie_, std::make_pair(from, std::move(answer)));
    env.set_timer(sim::microseconds(env.random().uniform_int(0, 3000)), next_cookie_++);
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    auto it = pending_.find(cookie);
    env.send(it->second.first, std::move(it->second.second));
    pending_.erase(it);
  }

 private:
  void apply(const model::StorageRequest& request, model::StorageResponse* response) {
    auto found = state_->items.find(request.key);
    const model::Item* current = found == state_->items.end() ? nullptr : &found->second;
    if (request.op == model::StorageOp::kGet) {
      response->status = current == nullptr ? StorageStatus::kNotFound : StorageStatus::kOk;
      if (current != nullptr) response->item = *current;
      return;
    }
    if (!request.condition.holds(current)) {
      response->status = StorageStatus::kConditionFailed;
      return;
    }
    response->status = StorageStatus::kOk;
    if (request.op == model::StorageOp::kDelete) {
      state_->items.erase(request.key);
      return;
    }
    if (state_->plant_lose_acknowledged_writes && ++state_->puts_seen % 10 == 0) return;
    state_->items[request.key] = request.item;
  }

  FakeGroupState* state_;
  std::map<uint64_t, std::pair<sim::Address, sim::Message>> pending_;
  uint64_t next_cookie_ = 1;
};

struct WorkloadRun {
  bool linearizable = false;
  bool durable = false;
  nlohmann::json durability;
  HistoryCounts counts;
  std::vector<WorkloadProcess::Stats> stats;
  nlohmann::json availability;
  size_t dump_lines = 0;
  nlohmann::json attempt_latency;
  nlohmann::json operation_latency;
  uint64_t operations_checked = 0;
  uint64_t compare_and_sets_succeeded = 0;  // put_if_version that found its value
  bool verification_done = false;
};

WorkloadRun run_workload(bool plant_lost_writes) {
  sim::Simulation simulation(5);
  sim::World world(simulation, sim::WorldOptions{});
  FakeGroupState state;
  state.plant_lose_acknowledged_writes = plant_lost_writes;
  std::array<sim::Address, model::kReplicasPerGroup> replicas;
  std::vector<sim::HostId> client_hosts;
  for (uint32_t r = 0; r < model::kReplicasPerGroup; ++r) {
    const std::string name = std::string("az-") + static_cast<char>('a' + r);
    const sim::RackId rack = world.add_rack(world.add_az(name), name + "/r0");
    const sim::HostId host = world.add_host(rack, name + "/storage", sim::HostOptions{});
    replicas[r] = sim::Address{host, model::kStoragePort};
    world.add_process(host, model::kStoragePort,
                      [&state] { return std::make_unique<FakeGroupReplica>(&state); });
    if (r < 2) client_hosts.push_back(world.add_host(rack, name + "/client", sim::HostOptions{}));
  }
  state.leader = replicas[0];
  const model::Placement placement = model::Placement::uniform(1, {replicas});
  HistoryRecorder recorder(&simulation);
  recorder.measure_latency_until(sim::SimTime(0) + sim::seconds(20));
  std::ostringstream dump;
  recorder.set_dump(&dump);
  WorkloadOptions options;
  options.operations_per_second = 200;
  options.key_count = 25;
  options.item_size_bytes = 2048;
  options.client.attempt_timeout = sim::milliseconds(50);
  for (size_t c = 0; c < client_hosts.size(); ++c) {
    world.add_process(client_hosts[c], model::kClientPort, [&, c] {
      return std::make_unique<WorkloadProcess>(options, &placement, c + 1, &recorder);
    });
  }
  world.start();
  simulation.run_until(sim::SimTime(0) + sim::seconds(20));
  std::vector<WorkloadProcess*> workloads;
  for (sim::HostId host : client_hosts) {
    workloads.push_back(
        dynamic_cast<WorkloadProcess*>(world.process_at(sim::Address{host, model::kClientPort})));
    workloads.back()->stop();
  }
  simulation.run_until(simulation.now() + sim::seconds(2));
  const sim::SimTime verification_start = simulation.now();
  state.answer_loss_probability = 0;  // the heal phase: the fake answers every request
  for (WorkloadProcess* workload : workloads) workload->verify_all();
  simulation.run_until(simulation.now() + sim::seconds(5));

  WorkloadRun run;
  run.verification_done = true;
  for (WorkloadProcess* workload : workloads) {
    run.stats.push_back(workload->stats());
    run.verification_done = run.verification_done && workload->verification_done();
  }
  const LinearizabilityReport linearizability = check_history(recorder.by_key());
  run.linearizable = linearizability.passed() && linearizability.keys_unknown == 0;
  run.operations_checked = linearizability.operations_checked;
  DurabilityOfWritesChecker durability(verification_start);
  durability.check(recorder.by_key());
  run.durable = durability.passed();
  run.durability = durability.report();
  run.counts = recorder.counts();
  for (const auto& [key_name, operations] : recorder.by_key()) {
    for (const RegisterOperation& operation : operations) {
      if (operation.expected_value.has_value() && operation.outcome == Outcome::kOk) {
        ++run.compare_and_sets_succeeded;
      }
    }
  }
  EXPECT_EQ(recorder.pending_attempts(), 0u);
  run.availability = recorder.availability(sim::seconds(1));
  run.attempt_latency = recorder.attempt_latency_json();
  run.operation_latency = recorder.operation_latency_json();
  std::istringstream lines(dump.str());
  for (std::string line; std::getline(lines, line);) ++run.dump_lines;
  return run;
}

TEST(WorkloadTest, APerfectRegisterGivesACompleteLinearizableDurableHistory) {
  const WorkloadRun run = run_workload(false);
  EXPECT_TRUE(run.linearizable);
  EXPECT_TRUE(run.durable) << run.durability.dump();
  EXPECT_TRUE(run.verification_done);
  EXPECT_GT(run.durability["acknowledged_writes"].get<uint64_t>(), 1000u);
  const HistoryCounts& counts = run.counts;
  EXPECT_EQ(counts.attempts_started, counts.attempts_ended);
  EXPECT_EQ(counts.impossible_answers, 0u);
  EXPECT_GT(counts.unknown_outcomes, 20u);  // lost answers of writes that applied
  EXPECT_GT(counts.eventual_reads, 500u);
  EXPECT_GT(counts.writes_dropped, 50u);  // first attempts that met a follower
  EXPECT_EQ(run.dump_lines, 2 * counts.attempts_started);
  EXPECT_GT(run.compare_and_sets_succeeded, 50u);
  // Poisson arrivals at 200 per second for 20 s, in each of two processes: 4000 +- 5 sigma.
  for (const WorkloadProcess::Stats& stats : run.stats) {
    EXPECT_NEAR(static_cast<double>(stats.arrivals), 4000.0, 320.0);
    EXPECT_EQ(stats.refused, 0u);
    // An operation fails only when lost answers exhaust its five attempts (a timeout at the
    // leader sends the next attempt to a follower, which redirects back): rare at 2% loss.
    EXPECT_LE(stats.failed, stats.submitted / 1000);
    EXPECT_EQ(stats.submitted, stats.succeeded + stats.failed);
    // The mix: weights 25/30/20/10/5/10 of 100.
    const double weights[] = {25, 30, 20, 10, 5, 10};
    for (int kind = 0; kind < 6; ++kind) {
      EXPECT_NEAR(static_cast<double>(stats.by_kind[kind]) / static_cast<double>(stats.submitted),
                  weights[kind] / 100.0, 0.03)
          << "kind " << kind;
    }
    EXPECT_EQ(stats.keys_verified, stats.keys_written);
    EXPECT_EQ(stats.keys_written, 25u);
  }
  // Latency: the verification reads come after the measured window, so the operations measured
  // are exactly the workload's successes; every eventual read was answered or timed out.
  uint64_t succeeded = 0;
  for (const WorkloadProcess::Stats& stats : run.stats) succeeded += stats.succeeded;
  EXPECT_EQ(run.operation_latency["all"]["count"].get<uint64_t>(), succeeded);
  uint64_t attempts_by_kind = 0;
  for (const char* kind :
       {"put", "get_strong", "get_eventual", "put_if_version", "put_if_absent", "delete"}) {
    attempts_by_kind += run.attempt_latency[kind]["count"].get<uint64_t>();
    EXPECT_GT(run.attempt_latency[kind]["count"].get<uint64_t>(), 0u) << kind;
  }
  EXPECT_EQ(run.attempt_latency["all"]["count"].get<uint64_t>(), attempts_by_kind);
  EXPECT_EQ(run.attempt_latency["get_eventual"]["count"].get<uint64_t>(), counts.eventual_reads);
  // An answered attempt beat its 50 ms timeout; some operations succeeded only after a timeout.
  EXPECT_LT(run.attempt_latency["all"]["max"].get<double>(), 50.0);
  EXPECT_GT(run.operation_latency["all"]["max"].get<double>(), 50.0);
  EXPECT_LE(run.attempt_latency["all"]["p50"].get<double>(),
            run.operation_latency["all"]["p50"].get<double>());
  // Availability: every one-second window of the workload saw about 400 operations, nearly all
  // good.
  ASSERT_GE(run.availability.size(), 20u);
  for (size_t w = 1; w + 1 < 20; ++w) {
    EXPECT_GE(run.availability[w]["fraction"].get<double>(), 0.99) << w;
    EXPECT_NEAR(run.availability[w]["operations"].get<double>(), 400.0, 120.0) << w;
  }
}

TEST(WorkloadTest, ThePlantedLostWritesAreCaughtByTheCheckers) {
  const WorkloadRun run = run_workload(true);
  EXPECT_FALSE(run.durable);
  EXPECT_GT(run.durability["lost_writes"].get<uint64_t>(), 0u);
  EXPECT_FALSE(run.linearizable);
}

}  // namespace
}  // namespace dynasim::gameday
