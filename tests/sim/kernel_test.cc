// The kernel: event order, cancellation, the clock, closures, the fingerprint and assertions.
#include <gtest/gtest.h>

#include <vector>

#include "sim/clock.h"
#include "sim/simulation.h"

namespace dynasim::sim {
namespace {

constexpr EventKind kTestEvent = event_kind("test.event");
constexpr EventKind kOtherEvent = event_kind("test.other");

struct Recorder final : EventSink {
  explicit Recorder(Simulation& s) : simulation(s) {}
  void on_event(const Event& event) override {
    order.push_back(event.payload);
    times.push_back(simulation.now());
  }
  Simulation& simulation;
  std::vector<uint64_t> order;
  std::vector<SimTime> times;
};

TEST(EventQueueTest, RunsByTimeThenBySchedulingOrder) {
  Simulation simulation(1);
  Recorder recorder(simulation);
  simulation.schedule_at(SimTime(300), &recorder, kTestEvent, 0, 3);
  simulation.schedule_at(SimTime(100), &recorder, kTestEvent, 0, 1);
  simulation.schedule_at(SimTime(300), &recorder, kTestEvent, 0, 4);  // same time: after 3
  simulation.schedule_at(SimTime(200), &recorder, kTestEvent, 0, 2);
  simulation.run();
  EXPECT_EQ(recorder.order, (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(simulation.now(), SimTime(300));
}

TEST(EventQueueTest, MatchesAReferenceOrderAcrossBucketsHorizonAndTies) {
  // Random times from 0 to 10 s (near buckets, the overflow heap, equal times), scheduled both
  // up front and from inside handlers; the order must be exactly (time, scheduling order).
  Simulation simulation(2);
  Random random(99);
  struct Item {
    int64_t time;
    uint64_t seq;
  };
  std::vector<Item> expected;
  uint64_t next_seq = 0;
  struct Chain final : EventSink {
    Simulation* simulation;
    Random* random;
    std::vector<Item>* expected;
    uint64_t* next_seq;
    std::vector<uint64_t> seen;
    int remaining = 20000;
    void on_event(const Event& event) override {
      seen.push_back(event.payload);
      if (remaining-- <= 0) return;
      const int64_t delay = random->bernoulli(0.2) ? 0 : random->uniform_int(0, 2'000'000'000);
      const SimTime when = simulation->now() + Duration(delay);
      expected->push_back(Item{when.ns, *next_seq});
      simulation->schedule_at(when, this, kTestEvent, 0, (*next_seq)++);
    }
  } chain;
  chain.simulation = &simulation;
  chain.random = &random;
  chain.expected = &expected;
  chain.next_seq = &next_seq;
  for (int i = 0; i < 5000; ++i) {
    const int64_t time = random.uniform_int(0, 100) * 100'000'000;  // many ties
    expected.push_back(Item{time, next_seq});
    simulation.schedule_at(SimTime(time), &chain, kTestEvent, 0, next_seq++);
  }
  simulation.run();
  std::stable_sort(expected.begin(), expected.end(),
                   [](const Item& a, const Item& b) { return a.time < b.time; });
  ASSERT_EQ(chain.seen.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(chain.seen[i], expected[i].seq) << "at position " << i;
  }
}

TEST(EventQueueTest, CancelledEventsNeverRunAndHandlesGoStale) {
  Simulation simulation(1);
  Recorder recorder(simulation);
  const EventHandle first = simulation.schedule_at(SimTime(10), &recorder, kTestEvent, 0, 1);
  const EventHandle second = simulation.schedule_at(SimTime(20), &recorder, kTestEvent, 0, 2);
  const EventHandle far =
      simulation.schedule_at(SimTime(0) + seconds(60), &recorder, kTestEvent, 0, 3);
  EXPECT_TRUE(simulation.cancel(second));
  EXPECT_FALSE(simulation.cancel(second));  // twice
  EXPECT_TRUE(simulation.cancel(far));
  EXPECT_EQ(simulation.pending_events(), 1u);
  simulation.run();
  EXPECT_EQ(recorder.order, (std::vector<uint64_t>{1}));
  EXPECT_FALSE(simulation.cancel(first));  // already ran
  // The node of `first` is reused by a new event: the old handle must not cancel it.
  simulation.schedule_at(SimTime(30), &recorder, kTestEvent, 0, 4);
  EXPECT_FALSE(simulation.cancel(first));
  simulation.run();
  EXPECT_EQ(recorder.order, (std::vector<uint64_t>{1, 4}));
}

TEST(EventQueueTest, ClosuresRunAndCancelledClosuresReleaseTheirSlot) {
  Simulation simulation(1);
  std::vector<int> ran;
  simulation.call_at(SimTime(5), kTestEvent, 0, [&ran] { ran.push_back(5); });
  const EventHandle dropped =
      simulation.call_at(SimTime(6), kTestEvent, 0, [&ran] { ran.push_back(6); });
  simulation.call_at(SimTime(7), kTestEvent, 0, [&ran, &simulation] {
    ran.push_back(7);
    simulation.call_after(Duration(1), kOtherEvent, 0, [&ran] { ran.push_back(8); });
  });
  EXPECT_TRUE(simulation.cancel(dropped));
  simulation.run();
  EXPECT_EQ(ran, (std::vector<int>{5, 7, 8}));
}

TEST(EventQueueTest, RunUntilStopsAtTheLimitAndLaterEventsStillRunInOrder) {
  Simulation simulation(1);
  Recorder recorder(simulation);
  simulation.schedule_at(SimTime(0) + seconds(5), &recorder, kTestEvent, 0, 1);
  simulation.run_until(SimTime(0) + seconds(2));
  EXPECT_TRUE(recorder.order.empty());
  EXPECT_EQ(simulation.now(), SimTime(0) + seconds(2));
  // peek_time() turned the wheel to 5 s; an event at 3 s must still run first.
  simulation.schedule_at(SimTime(0) + seconds(3), &recorder, kTestEvent, 0, 2);
  simulation.run();
  EXPECT_EQ(recorder.order, (std::vector<uint64_t>{2, 1}));
}

TEST(FingerprintTest, SameSeedSameHashDifferentContentDifferentHash) {
  auto run = [](uint64_t seed, uint64_t payload_offset) {
    Simulation simulation(seed);
    Recorder recorder(simulation);
    for (uint64_t i = 0; i < 100; ++i) {
      simulation.schedule_at(SimTime(static_cast<int64_t>(i * 7 % 13)), &recorder, kTestEvent,
                             static_cast<uint32_t>(i), i + payload_offset);
    }
    simulation.run();
    return simulation.trace_hash();
  };
  EXPECT_EQ(run(1, 0), run(1, 0));
  EXPECT_NE(run(1, 0), run(2, 0));
  EXPECT_NE(run(1, 0), run(1, 1));
}

TEST(CheckDeathTest, AssertionPrintsFileLineTimeAndSeed) {
  EXPECT_DEATH(
      {
        Simulation simulation(4242, "scenarios/example.json");
        simulation.call_at(SimTime(0) + milliseconds(1500), kTestEvent, 0,
                           [] { DYN_ASSERT_MSG(1 + 1 == 3, "arithmetic broke"); });
        simulation.run();
      },
      "assertion failed: 1 \\+ 1 == 3(.|\n)*kernel_test.cc:[0-9]+(.|\n)*arithmetic broke(.|\n)*"
      "simulated time 1.500000000s, seed 4242(.|\n)*dynasim run scenarios/example.json --seed "
      "4242");
}

TEST(CheckDeathTest, SchedulingIntoThePastIsCaught) {
  EXPECT_DEATH(
      {
        Simulation simulation(1);
        Recorder recorder(simulation);
        simulation.run_until(SimTime(100));
        simulation.schedule_at(SimTime(50), &recorder, kTestEvent, 0, 0);
      },
      "scheduled in the past");
}

TEST(HostClockTest, DriftMovesTheReadingAndTimersByTheRate) {
  HostClock clock;
  clock.set_drift_ppm(100, SimTime(0));  // 100 ppm fast
  EXPECT_EQ(clock.local_now(SimTime(0) + seconds(10)), SimTime(0) + seconds(10) + milliseconds(1));
  // A 1 s local timer takes slightly less than 1 s of true time on a fast clock.
  const Duration true_delay = clock.true_delay_for(seconds(1));
  EXPECT_LT(true_delay, seconds(1));
  EXPECT_GE(clock.local_now(SimTime(0) + true_delay), SimTime(0) + seconds(1));
  clock.step(seconds(-2), SimTime(0) + seconds(10));
  EXPECT_EQ(clock.local_now(SimTime(0) + seconds(10)), SimTime(0) + seconds(8) + milliseconds(1));
  clock.set_drift_ppm(0, SimTime(0) + seconds(10));
  EXPECT_EQ(clock.offset(SimTime(0) + seconds(20)), -seconds(2) + milliseconds(1));
}

}  // namespace
}  // namespace dynasim::sim
