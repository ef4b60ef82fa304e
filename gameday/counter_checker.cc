#include "gameday/counter_checker.h"

#include "gameday/history.h"
#include "sim/check.h"
#include "sim/time.h"

namespace dynasim::gameday {

CounterChecker::CounterChecker(const sim::Simulation* simulation) : simulation_(simulation) {
  DYN_ASSERT(simulation_ != nullptr);
}

void CounterChecker::on_attempt_start(uint64_t client_id, uint64_t operation_id,
                                      uint64_t request_id, const model::ClientRequest& request,
                                      sim::Address replica) {
  (void)operation_id, (void)replica;
  if (request.op != model::StorageOp::kGet ||
      request.consistency != model::ReadConsistency::kStrong) {
    return;
  }
  std::string key = key_string(request.key);
  if (!is_counter_key(key)) return;
  open_[std::make_pair(client_id, request_id)] = Open{std::move(key), false, 0, now_ns()};
}

void CounterChecker::on_attempt_end(uint64_t client_id, uint64_t request_id,
                                    model::StorageStatus status, bool timed_out,
                                    const std::optional<model::Item>& item) {
  auto found = open_.find(std::make_pair(client_id, request_id));
  if (found == open_.end()) return;  // not a counter's read
  const Open open = std::move(found->second);
  open_.erase(found);
  const bool answered = !timed_out && (status == model::StorageStatus::kOk ||
                                       status == model::StorageStatus::kNotFound);
  if (!answered) return;  // a failed read observed nothing
  Read read{open.invoke_ns, now_ns(), 0};
  // No item, or an item without the attribute: nothing was added yet (ADD starts from 0).
  if (status == model::StorageStatus::kOk && item.has_value()) {
    const model::AttributeValue* count = item->find(kCounterAttribute);
    if (count != nullptr) read.value = integer_value(*count);
  }
  counters_[open.key].reads.push_back(read);
}

void CounterChecker::on_api_attempt_start(uint64_t client_id, uint64_t operation_id,
                                          uint64_t request_id, const model::ClientRequest& request,
                                          sim::Address replica) {
  (void)operation_id, (void)replica;
  if (request.op != model::StorageOp::kUpdate) return;
  std::string key = key_string(request.key);
  if (!is_counter_key(key)) return;
  std::vector<Add>& adds = counters_[key].adds;
  adds.push_back(Add{now_ns(), INT64_MAX, false});
  ++adds_attempted_;
  open_[std::make_pair(client_id, request_id)] =
      Open{std::move(key), true, adds.size() - 1, now_ns()};
}

void CounterChecker::on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                                        const model::StorageResponse* response) {
  auto found = open_.find(std::make_pair(client_id, request_id));
  if (found == open_.end() || !found->second.add) return;
  Add& add = counters_[found->second.key].adds[found->second.add_index];
  open_.erase(found);
  if (response == nullptr) {
    ++adds_timed_out_;  // unknown: it may still be applied; its complete_ns stays open
    return;
  }
  add.complete_ns = now_ns();
  if (response->status == model::StorageStatus::kOk) {
    add.acknowledged = true;
    ++adds_acknowledged_;
  } else {
    ++adds_failed_;
  }
}

void CounterChecker::finish(sim::SimTime verification_start) {
  DYN_ASSERT_MSG(!finished_, "the counter check ran twice");
  finished_ = true;
  for (const auto& [key, counter] : counters_) check_counter(key, counter, verification_start);
  if (counters_unverified_ > 1 && first_violation_.find("never read") != std::string::npos) {
    first_violation_ += "; " + std::to_string(counters_unverified_) +
                        " counters in all were never read back (if the verification pass had "
                        "no time to read them all, lengthen heal or workload.verify_after)";
  }
}

void CounterChecker::check_counter(const std::string& key, const Counter& counter,
                                   sim::SimTime verification_start) {
  // The final read: the last to complete among the verification pass's reads.
  const Read* final_read = nullptr;
  for (const Read& read : counter.reads) {
    if (read.invoke_ns < verification_start.ns) continue;
    if (final_read == nullptr || read.complete_ns > final_read->complete_ns ||
        (read.complete_ns == final_read->complete_ns && read.invoke_ns > final_read->invoke_ns)) {
      final_read = &read;
    }
  }
  if (counter.adds.empty() && final_read == nullptr) return;
  ++counters_checked_;
  if (final_read == nullptr) {
    ++counters_unverified_;
    violation(key + ": " + std::to_string(counter.adds.size()) +
              " ADD attempts and the counter was never read back in the verification pass");
    return;
  }
  uint64_t acknowledged_before = 0;  // surely applied before the read began
  uint64_t sent_before = 0;          // possibly applied before the read ended
  for (const Add& add : counter.adds) {
    if (add.acknowledged && add.complete_ns < final_read->invoke_ns) ++acknowledged_before;
    if (add.invoke_ns < final_read->complete_ns) ++sent_before;
  }
  const std::string when = sim::format_time(sim::SimTime(final_read->invoke_ns));
  if (!final_read->value.has_value()) {
    violation(key + ": the final read (at " + when +
              ") found an \"n\" that is not a non-negative integer");
    return;
  }
  const uint64_t value = *final_read->value;
  if (value < acknowledged_before) {
    violation(key + ": the final read (at " + when + ") found " + std::to_string(value) + ", but " +
              std::to_string(acknowledged_before) +
              " ADDs of 1 were acknowledged before it began: acknowledged ADDs were lost");
  } else if (value > sent_before) {
    violation(key + ": the final read (at " + when + ") found " + std::to_string(value) +
              ", but only " + std::to_string(sent_before) +
              " ADD attempts of 1 were sent before it ended: an ADD was applied more than once "
              "per attempt, or a value appeared that no ADD made");
  }
}

void CounterChecker::violation(std::string what) {
  ++violations_;
  if (first_violation_.empty()) first_violation_ = std::move(what);
}

nlohmann::json CounterChecker::report() const {
  return {{"passed", passed()},
          {"counters_checked", counters_checked_},
          {"counters_unverified", counters_unverified_},
          {"adds_attempted", adds_attempted_},
          {"adds_acknowledged", adds_acknowledged_},
          {"adds_timed_out", adds_timed_out_},
          {"adds_failed", adds_failed_},
          {"violations", violations_},
          {"first_violation", first_violation_}};
}

}  // namespace dynasim::gameday
