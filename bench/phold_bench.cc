// BM_PHOLD/<N>: the classic PHOLD kernel benchmark (Fujimoto, 1990), as issue 2 defines it.
//
// N logical processes each hold one pending event. Handling an event at process i and time t bumps
// i's counter and schedules one event at a uniformly random process at t + 100 us + Exp(mean 1 ms).
// items_per_second is events handled per wall second. The counter kernel_bytes_per_pending_event
// is the event queue's own memory divided by the pending events, payload aside.
#include <benchmark/benchmark.h>

#include <vector>

#include "sim/simulation.h"

namespace dynasim::sim {
namespace {

constexpr EventKind kPholdEvent = event_kind("bench.phold");

class PholdModel final : public EventSink {
 public:
  PholdModel(Simulation& simulation, uint32_t process_count)
      : simulation_(simulation),
        random_(simulation.random_stream("bench/phold")),
        counters_(process_count, 0) {
    for (uint32_t i = 0; i < process_count; ++i) schedule_next();
  }

  void on_event(const Event& event) override {
    ++counters_[event.target];
    schedule_next();
  }

 private:
  void schedule_next() {
    const auto destination = static_cast<uint32_t>(random_.uniform_u64(counters_.size()));
    const Duration delay = microseconds(100) + random_.exponential_duration(milliseconds(1));
    simulation_.schedule_after(delay, this, kPholdEvent, destination, 0);
  }

  Simulation& simulation_;
  Random random_;
  std::vector<uint64_t> counters_;
};

void BM_PHOLD(benchmark::State& state) {
  const auto process_count = static_cast<uint32_t>(state.range(0));
  Simulation simulation(1);
  PholdModel model(simulation, process_count);
  // Warm up so the wheel, pool and sort buffers reach their steady size.
  for (uint32_t i = 0; i < process_count * 4; ++i) simulation.step();
  const uint64_t before = simulation.events_executed();
  for (auto _ : state) {
    for (int i = 0; i < 1024; ++i) simulation.step();
  }
  state.SetItemsProcessed(static_cast<int64_t>(simulation.events_executed() - before));
  state.counters["kernel_bytes_per_pending_event"] =
      static_cast<double>(simulation.queue().memory_bytes()) /
      static_cast<double>(simulation.pending_events());
  benchmark::DoNotOptimize(simulation.trace_hash());
}
BENCHMARK(BM_PHOLD)->Arg(1024)->Arg(65536);

}  // namespace
}  // namespace dynasim::sim
