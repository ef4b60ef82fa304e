#include "sim/simulation.h"

namespace dynasim::sim {

Simulation::Simulation(uint64_t seed, std::string scenario_name)
    : seed_(seed), scenario_name_(std::move(scenario_name)), trace_hash_(splitmix64(seed)) {
  check_context_.now = &now_;
  check_context_.seed = seed_;
  check_context_.scenario = scenario_name_.empty() ? nullptr : scenario_name_.c_str();
}

Simulation::~Simulation() = default;

uint64_t Simulation::fold(uint64_t hash, const Event& event) {
  hash = fold_word(hash, static_cast<uint64_t>(event.time.ns));
  hash = fold_word(hash, (uint64_t{event.kind->id} << 32) | event.target);
  return fold_word(hash, event.payload);
}

EventHandle Simulation::call_at(SimTime time, const EventKind& kind, uint32_t target,
                                Closure closure) {
  uint32_t slot;
  if (!free_closures_.empty()) {
    slot = free_closures_.back();
    free_closures_.pop_back();
    closures_[slot] = std::move(closure);
  } else {
    slot = static_cast<uint32_t>(closures_.size());
    closures_.push_back(std::move(closure));
  }
  return schedule_at(time, &closure_sink_, kind, target, slot);
}

void Simulation::ClosureSink::on_event(const Event& event) {
  const auto slot = static_cast<uint32_t>(event.payload);
  // Move the closure out first: it may schedule further closures, which can grow closures_.
  Closure closure = std::move(simulation_->closures_[slot]);
  simulation_->free_closures_.push_back(slot);
  closure();
}

bool Simulation::cancel(EventHandle handle) {
  EventSink* sink = nullptr;
  uint64_t payload = 0;
  if (!queue_.cancel(handle, &sink, &payload)) return false;
  if (sink == &closure_sink_) {
    const auto slot = static_cast<uint32_t>(payload);
    closures_[slot].reset();
    free_closures_.push_back(slot);
  }
  return true;
}

bool Simulation::step() {
  if (stopped_) return false;
  Event event;
  EventSink* sink;
  if (!queue_.pop(&event, &sink)) return false;
  DYN_ASSERT_MSG(event.time >= now_, "time went backwards");
  now_ = event.time;
  ++events_executed_;
  trace_hash_ = fold(trace_hash_, event);
  if (observer_ != nullptr) observer_->on_executed(event, trace_hash_);
  sink->on_event(event);
  return true;
}

void Simulation::run_until(SimTime limit) {
  ScopedCheckContext context(&check_context_);
  while (!stopped_ && queue_.peek_time() <= limit) step();
  if (!stopped_ && limit > now_) now_ = limit;
}

void Simulation::run() {
  ScopedCheckContext context(&check_context_);
  while (step()) {
  }
}

}  // namespace dynasim::sim
