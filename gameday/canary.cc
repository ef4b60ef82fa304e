#include "gameday/canary.h"

#include <algorithm>

#include "gameday/history.h"
#include "sim/check.h"

namespace dynasim::gameday {

namespace {
constexpr int64_t kNanosecondsPerSecond = 1'000'000'000;
constexpr const char* kSequenceAttribute = "seq";
}  // namespace

void CanaryRecorder::record(const std::string& az, sim::SimTime started, bool succeeded) {
  auto& [probes, ok] = by_az_[az][started.ns / kNanosecondsPerSecond];
  ++probes;
  if (succeeded) ++ok;
}

nlohmann::json CanaryRecorder::report(sim::Duration window, sim::SimTime until) const {
  DYN_ASSERT_MSG(window.ns > 0 && window.ns % kNanosecondsPerSecond == 0,
                 "canary windows are whole seconds");
  const int64_t seconds_per_window = window.ns / kNanosecondsPerSecond;
  nlohmann::json azs = nlohmann::json::object();
  std::optional<double> worst;
  for (const auto& [az, by_second] : by_az_) {
    std::map<int64_t, std::pair<uint64_t, uint64_t>> windows;  // by window index
    uint64_t probes = 0, succeeded = 0;
    for (const auto& [second, counts] : by_second) {
      if (second * kNanosecondsPerSecond >= until.ns) break;
      auto& [window_probes, window_ok] = windows[second / seconds_per_window];
      window_probes += counts.first;
      window_ok += counts.second;
      probes += counts.first;
      succeeded += counts.second;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [index, counts] : windows) {
      const double fraction =
          static_cast<double>(counts.second) / static_cast<double>(counts.first);
      worst = worst ? std::min(*worst, fraction) : fraction;
      list.push_back({{"start_ns", index * window.ns},
                      {"end_ns", (index + 1) * window.ns},
                      {"probes", counts.first},
                      {"succeeded", counts.second},
                      {"fraction", fraction}});
    }
    azs[az] = {{"probes", probes}, {"succeeded", succeeded}, {"windows", list}};
  }
  return {{"window", std::to_string(seconds_per_window) + "s"},
          {"azs", azs},
          {"worst_window_fraction", worst ? nlohmann::json(*worst) : nlohmann::json(nullptr)}};
}

CanaryProcess::CanaryProcess(CanaryOptions options, const model::Placement* placement,
                             uint64_t client_id, CanaryRecorder* recorder)
    : options_(std::move(options)),
      recorder_(recorder),
      client_(options_.client, placement, client_id, nullptr) {
  DYN_ASSERT(recorder_ != nullptr);
  DYN_ASSERT(options_.probe_interval.ns > 0 && options_.items > 0);
}

void CanaryProcess::on_start(sim::Env& env) {
  env.set_timer(options_.probe_interval, kProbeCookie);
}

void CanaryProcess::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  client_.on_message(env, from, message);
}

void CanaryProcess::on_timer(sim::Env& env, uint64_t cookie) {
  if (client_.on_timer(env, cookie)) return;
  DYN_ASSERT(cookie == kProbeCookie);
  probe(env);
  env.set_timer(options_.probe_interval, kProbeCookie);
}

void CanaryProcess::probe(sim::Env& env) {
  const sim::SimTime started = recorder_->simulation().now();
  const uint64_t number = next_probe_++;
  ++stats_.probes;
  // Probes walk over the AZ's canary items, so that they reach many partitions.
  const model::PrimaryKey key{model::KeyValue::string("canary-" + options_.az + "-" +
                                                      std::to_string(number % options_.items)),
                              std::nullopt};
  model::ClientRequest put;
  put.op = model::StorageOp::kPut;
  put.key = key;
  put.item = model::Item(key);
  put.item.set(kSequenceAttribute, model::Decimal::from_int(static_cast<int64_t>(number)));
  const uint64_t submitted =
      client_.submit(env, put, [this, &env, key, number, started](const model::ClientResult& r) {
        if (!r.succeeded()) {
          finish(started, false);
          return;
        }
        model::ClientRequest get;
        get.op = model::StorageOp::kGet;
        get.consistency = model::ReadConsistency::kStrong;
        get.key = key;
        const uint64_t read =
            client_.submit(env, get, [this, number, started](const model::ClientResult& answer) {
              bool fresh = false;
              if (answer.succeeded() && answer.item.has_value()) {
                const model::AttributeValue* seq = answer.item->find(kSequenceAttribute);
                const std::optional<uint64_t> value =
                    seq == nullptr ? std::nullopt : integer_value(*seq);
                fresh = value.has_value() && *value >= number;
              }
              finish(started, fresh);
            });
        if (read == 0) finish(started, false);
      });
  if (submitted == 0) finish(started, false);
}

void CanaryProcess::finish(sim::SimTime started, bool succeeded) {
  if (succeeded) ++stats_.succeeded;
  recorder_->record(options_.az, started, succeeded);
}

}  // namespace dynasim::gameday
