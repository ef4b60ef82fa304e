// The kernel of one simulation: the clock, the event queue, the seed and the trace fingerprint.
//
// A simulation is single-threaded and owns everything it touches; two simulations can run side by
// side in one process (the determinism check does exactly that, in lockstep). Handlers run to
// completion. Time never goes backwards: scheduling into the past is an assertion failure.
//
// Every executed event folds (time, kind, target, payload) into a running 64-bit fingerprint, the
// run's trace_hash; handlers fold the digest of the content a payload stands for (a message, a
// block) with fold_digest(). Cancelled events are never executed and never folded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sim/check.h"
#include "sim/event_queue.h"
#include "sim/inplace_function.h"
#include "sim/random.h"
#include "sim/time.h"

namespace dynasim::sim {

using Closure = InplaceFunction<void(), 48>;

// Sees every executed event, after it is folded into the fingerprint and before its handler runs.
// Used for the determinism check, traces and progress. Must not change the run.
class EventObserver {
 public:
  virtual void on_executed(const Event& event, uint64_t trace_hash_after) = 0;

 protected:
  ~EventObserver() = default;
};

class Simulation {
 public:
  explicit Simulation(uint64_t seed, std::string scenario_name = std::string());
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;
  ~Simulation();

  SimTime now() const { return now_; }
  uint64_t seed() const { return seed_; }
  const std::string& scenario_name() const { return scenario_name_; }

  // The random stream of the component with this stable name; see sim/random.h.
  Random random_stream(std::string_view stable_name) const {
    return Random::derive(seed_, stable_name);
  }

  // Schedules `sink->on_event` at `time`. REQUIRES: time >= now().
  EventHandle schedule_at(SimTime time, EventSink* sink, const EventKind& kind, uint32_t target,
                          uint64_t payload) {
    DYN_ASSERT_MSG(time >= now_, "an event was scheduled in the past");
    return queue_.push(time, sink, &kind, target, payload);
  }
  EventHandle schedule_after(Duration delay, EventSink* sink, const EventKind& kind,
                             uint32_t target, uint64_t payload) {
    return schedule_at(now_ + delay, sink, kind, target, payload);
  }

  // Schedules a closure. Its captures must fit in Closure's inline buffer.
  EventHandle call_at(SimTime time, const EventKind& kind, uint32_t target, Closure closure);
  EventHandle call_after(Duration delay, const EventKind& kind, uint32_t target, Closure closure) {
    return call_at(now_ + delay, kind, target, std::move(closure));
  }

  // Folds the digest of what the executing event carries (a message's content, a disk block's
  // checksum) into the fingerprint. Call only from inside an event handler.
  void fold_digest(uint64_t digest) { trace_hash_ = fold_word(trace_hash_, digest); }

  // Cancels a pending event. False if it already ran or was cancelled before.
  bool cancel(EventHandle handle);

  // Runs the earliest event. False when nothing is pending or stop() was called.
  bool step();
  // Runs every event with time <= limit, then moves the clock to `limit`.
  void run_until(SimTime limit);
  // Runs until no event is pending or stop() is called.
  void run();
  // Makes run()/run_until() return after the current event.
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  SimTime next_event_time() { return queue_.peek_time(); }
  uint64_t pending_events() const { return queue_.live_events(); }
  uint64_t events_executed() const { return events_executed_; }
  uint64_t trace_hash() const { return trace_hash_; }
  const EventQueue& queue() const { return queue_; }

  void set_observer(EventObserver* observer) { observer_ = observer; }

  // The context printed by a failing DYN_ASSERT while this simulation runs.
  const CheckContext* check_context() const { return &check_context_; }

  static uint64_t fold(uint64_t hash, const Event& event);
  static uint64_t fold_word(uint64_t hash, uint64_t word) {
    hash ^= word;
    hash *= 0x9e3779b97f4a7c15ULL;
    return hash ^ (hash >> 29);
  }

 private:
  class ClosureSink final : public EventSink {
   public:
    explicit ClosureSink(Simulation* simulation) : simulation_(simulation) {}
    void on_event(const Event& event) override;

   private:
    Simulation* simulation_;
  };

  SimTime now_ = SimTime::zero();
  uint64_t seed_;
  std::string scenario_name_;
  EventQueue queue_;
  uint64_t trace_hash_;
  uint64_t events_executed_ = 0;
  bool stopped_ = false;
  EventObserver* observer_ = nullptr;
  CheckContext check_context_;

  ClosureSink closure_sink_{this};
  std::vector<Closure> closures_;
  std::vector<uint32_t> free_closures_;
};

}  // namespace dynasim::sim
