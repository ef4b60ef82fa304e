#include "gameday/determinism.h"

#include <cinttypes>
#include <cstdio>

namespace dynasim::gameday {

namespace {
class LastEvent final : public sim::EventObserver {
 public:
  void on_executed(const sim::Event& event, uint64_t trace_hash_after) override {
    record.present = true;
    record.time = event.time;
    record.kind = event.kind->name;
    record.target = event.target;
    record.payload = event.payload;
    record.trace_hash = trace_hash_after;
  }
  EventRecord record;
};

bool same(const EventRecord& a, const EventRecord& b) {
  return a.present == b.present && a.time == b.time && a.kind == b.kind && a.target == b.target &&
         a.payload == b.payload;
}
}  // namespace

std::string EventRecord::describe() const {
  if (!present) return "no further event (the run ended)";
  char buffer[256];
  std::snprintf(buffer, sizeof buffer,
                "time %s kind %s target %u payload %" PRIu64
                " (trace hash before this event's handler folded its content: %016" PRIx64 ")",
                sim::format_time(time).c_str(), kind.c_str(), target, payload, trace_hash);
  return buffer;
}

DeterminismReport check_determinism(const ScenarioSpec& spec, uint64_t seed,
                                    const std::function<void(ScenarioRun&)>& perturb_second_run) {
  ScenarioRun first(spec, seed);
  ScenarioRun second(spec, seed);
  if (perturb_second_run) perturb_second_run(second);
  LastEvent first_last;
  LastEvent second_last;
  first.simulation().set_observer(&first_last);
  second.simulation().set_observer(&second_last);

  DeterminismReport report;
  // The hash folded inside a handler (message and block digests) shows one event later, so a
  // difference found only by the hash is reported at the event after the one that caused it.
  for (;;) {
    first_last.record.present = false;
    second_last.record.present = false;
    const bool first_ran = first.step();
    const bool second_ran = second.step();
    if (!first_ran && !second_ran) break;
    if (!same(first_last.record, second_last.record) ||
        first_last.record.trace_hash != second_last.record.trace_hash) {
      report.identical = false;
      report.first_run = first_last.record;
      report.second_run = second_last.record;
      break;
    }
    ++report.events_compared;
  }
  if (report.identical && first.simulation().trace_hash() != second.simulation().trace_hash()) {
    report.identical = false;  // the last handler folded different content
  }
  first.simulation().set_observer(nullptr);
  second.simulation().set_observer(nullptr);
  first.finish();
  second.finish();
  report.trace_hash = first.simulation().trace_hash();
  return report;
}

}  // namespace dynasim::gameday
