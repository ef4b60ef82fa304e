// BM_FullPath: the whole request path of a region, as scenarios/full-path.json builds it: 30
// storage nodes in 3 AZs hosting 1,000 partitions (Multi-Paxos groups, one replica per AZ),
// request routers fed by MemDS in every AZ, and clients in every AZ sending a mixed workload
// (puts, strong and eventual gets) over a million keys through the routers. No faults.
//
// The run first steps through `warm_up` simulated seconds (every group elects its leader and the
// routers' caches fill), then through `measured` more; the figures cover the measured span only:
//   requests_per_second   client attempts that ended, per wall second (the target is
//                         100,000: "at least 100,000 simulated requests per wall second")
//   events_per_second     simulator events per wall second
//   sim_seconds_per_wall_second
//   heap_mb               bytes the allocator holds for the whole region at the end (mallinfo2:
//                         world, storage nodes with their B-trees and WALs, routers, MemDS, the
//                         clients' history kept for the checkers)
//   items                 distinct keys in the clients' register histories (written or strongly
//                         read so far)
// The offered load is the scenario's (12,000 operations per simulated second); the simulator's
// cost per request, not the load, is what the figure measures.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <chrono>
#include <string>

#include "gameday/run.h"
#include "gameday/scenario.h"
#include "gameday/service.h"

namespace dynasim::gameday {
namespace {

size_t heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

void step_until(ScenarioRun& run, sim::SimTime until) {
  while (run.simulation().next_event_time() <= until && run.step()) {
  }
}

void BM_FullPath(benchmark::State& state) {
  const sim::Duration warm_up = sim::seconds(state.range(0));
  const sim::Duration measured = sim::seconds(state.range(1));
  const ScenarioSpec spec =
      load_scenario(std::string(DYNASIM_SOURCE_DIR) + "/scenarios/full-path.json",
                    {"duration=" + std::to_string(state.range(0) + state.range(1)) + "s"});
  for (auto _ : state) {
    ScenarioRun run(spec, 1);
    step_until(run, sim::SimTime::zero() + warm_up);
    const uint64_t attempts_before = run.service()->history().counts().attempts_ended;
    const uint64_t events_before = run.simulation().events_executed();
    const auto wall_start = std::chrono::steady_clock::now();
    step_until(run, sim::SimTime::zero() + warm_up + measured);
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    const uint64_t attempts = run.service()->history().counts().attempts_ended - attempts_before;
    const uint64_t events = run.simulation().events_executed() - events_before;
    state.counters["requests_per_second"] = static_cast<double>(attempts) / wall;
    state.counters["events_per_second"] = static_cast<double>(events) / wall;
    state.counters["sim_seconds_per_wall_second"] = static_cast<double>(measured.ns) / 1e9 / wall;
    state.counters["requests"] = static_cast<double>(attempts);
    state.counters["heap_mb"] = static_cast<double>(heap_in_use()) / (1 << 20);
    state.counters["items"] = static_cast<double>(run.service()->history().by_key().size());
  }
}
BENCHMARK(BM_FullPath)->Args({10, 10})->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace
}  // namespace dynasim::gameday
