#include "gameday/history.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>

#include "sim/check.h"

namespace dynasim::gameday {

namespace {

using model::Condition;
using model::StorageOp;
using model::StorageStatus;
using Kind = RegisterOperation::Kind;
using Outcome = RegisterOperation::Outcome;

constexpr int64_t kNanosecondsPerSecond = 1'000'000'000;

std::string key_value_string(const model::KeyValue& value) {
  switch (value.type) {
    case model::ScalarType::kString:
      return value.bytes;
    case model::ScalarType::kNumber:
      return value.number.to_string();
    case model::ScalarType::kBinary: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string text = "0x";
      for (char c : value.bytes) {
        const auto byte = static_cast<uint8_t>(c);
        text += kHex[byte >> 4];
        text += kHex[byte & 15];
      }
      return text;
    }
  }
  return "?";
}

// A write the service surely did not apply: the replica answered without proposing it.
bool surely_not_applied(StorageStatus status) {
  switch (status) {
    case StorageStatus::kNotLeader:
    case StorageStatus::kNotServing:
    case StorageStatus::kBusy:
    case StorageStatus::kThrottled:
    case StorageStatus::kRecovering:
    case StorageStatus::kUnhealthy:
    case StorageStatus::kValidation:
    case StorageStatus::kNoSuchGroup:
      return true;
    default:
      return false;
  }
}

bool is_strong_read(const model::ClientRequest& request) {
  return request.op == StorageOp::kGet && request.consistency == model::ReadConsistency::kStrong;
}

// The kind of a register operation; only strong reads are in the register histories.
std::optional<LatencyKind> register_latency_kind(const RegisterOperation& operation) {
  switch (operation.kind) {
    case Kind::kRead:
      return LatencyKind::kGetStrong;
    case Kind::kWrite:
      return LatencyKind::kPut;
    case Kind::kDelete:
      return LatencyKind::kDelete;
    case Kind::kConditionalWrite:
      if (operation.expected_value.has_value()) return LatencyKind::kPutIfVersion;
      if (operation.expected_exists.has_value() && !*operation.expected_exists) {
        return LatencyKind::kPutIfAbsent;
      }
      return std::nullopt;
  }
  return std::nullopt;
}

const char* function_name(const model::ClientRequest& request) {
  if (request.op == StorageOp::kGet) return "read";
  if (request.op == StorageOp::kPut && request.condition.kind != Condition::Kind::kNone) {
    return "cas";
  }
  return "write";  // puts, and deletes as a write of null
}

}  // namespace

const char* to_string(LatencyKind kind) {
  switch (kind) {
    case LatencyKind::kPut:
      return "put";
    case LatencyKind::kGetStrong:
      return "get_strong";
    case LatencyKind::kGetEventual:
      return "get_eventual";
    case LatencyKind::kPutIfVersion:
      return "put_if_version";
    case LatencyKind::kPutIfAbsent:
      return "put_if_absent";
    case LatencyKind::kDelete:
      return "delete";
    case LatencyKind::kUpdate:
      return "update";
    case LatencyKind::kQuery:
      return "query";
    case LatencyKind::kScan:
      return "scan";
  }
  return "?";
}

bool is_counter_key(const std::string& key) {
  return key.starts_with(kCounterKeyPrefix);
}

std::optional<LatencyKind> latency_kind(const model::ClientRequest& request) {
  switch (request.op) {
    case StorageOp::kGet:
      return request.consistency == model::ReadConsistency::kStrong ? LatencyKind::kGetStrong
                                                                    : LatencyKind::kGetEventual;
    case StorageOp::kDelete:
      return LatencyKind::kDelete;
    case StorageOp::kPut:
      switch (request.condition.kind) {
        case Condition::Kind::kNone:
          return LatencyKind::kPut;
        case Condition::Kind::kAttributeEquals:
          return LatencyKind::kPutIfVersion;
        case Condition::Kind::kAttributeNotExists:
          return LatencyKind::kPutIfAbsent;
        case Condition::Kind::kAttributeExists:
          return std::nullopt;
      }
      return std::nullopt;
    case StorageOp::kUpdate:
      return LatencyKind::kUpdate;
    case StorageOp::kQuery:
      return LatencyKind::kQuery;
    case StorageOp::kScan:
      return LatencyKind::kScan;
  }
  return std::nullopt;
}

size_t nearest_rank_index(size_t count, uint32_t per_ten_thousand) {
  DYN_ASSERT(count > 0);
  DYN_ASSERT(per_ten_thousand > 0 && per_ten_thousand <= 10'000);
  // rank = ceil(count * p), in integers so that no rounding of p moves a rank (count stays far
  // below 2^64 / 10^4).
  const uint64_t rank = (uint64_t{count} * per_ten_thousand + 9'999) / 10'000;
  return static_cast<size_t>(std::max<uint64_t>(rank, 1) - 1);
}

int64_t nearest_rank(const std::vector<int64_t>& sorted_ns, uint32_t per_ten_thousand) {
  return sorted_ns[nearest_rank_index(sorted_ns.size(), per_ten_thousand)];
}

LatencySummary summarize_latency(std::vector<int64_t>& samples_ns) {
  LatencySummary summary;
  if (samples_ns.empty()) return summary;
  std::sort(samples_ns.begin(), samples_ns.end());
  summary.count = samples_ns.size();
  summary.p50_ns = nearest_rank(samples_ns, 5'000);
  summary.p99_ns = nearest_rank(samples_ns, 9'900);
  summary.p999_ns = nearest_rank(samples_ns, 9'990);
  summary.max_ns = samples_ns.back();
  return summary;
}

nlohmann::json latency_summary_json(const LatencySummary& summary) {
  auto milliseconds = [&](int64_t ns) {
    return summary.count == 0 ? nlohmann::json(nullptr)
                              : nlohmann::json(static_cast<double>(ns) / 1e6);
  };
  return {{"count", summary.count},
          {"p50", milliseconds(summary.p50_ns)},
          {"p99", milliseconds(summary.p99_ns)},
          {"p999", milliseconds(summary.p999_ns)},
          {"max", milliseconds(summary.max_ns)}};
}

nlohmann::json HistoryRecorder::written_value_json(const Pending& pending) {
  const model::ClientRequest& request = pending.request;
  if (request.op != StorageOp::kPut) return nullptr;  // reads, and deletes (a write of null)
  if (request.condition.kind == Condition::Kind::kNone) return pending.value;
  nlohmann::json expected = nullptr;
  if (request.condition.kind == Condition::Kind::kAttributeEquals) {
    expected = *integer_value(request.condition.value);
  } else if (request.condition.kind == Condition::Kind::kAttributeExists) {
    expected = "*";
  }
  return nlohmann::json::array({expected, pending.value});
}

std::string key_string(const model::PrimaryKey& key) {
  std::string text = key_value_string(key.partition);
  if (key.sort.has_value()) text += "|" + key_value_string(*key.sort);
  return text;
}

std::optional<uint64_t> integer_value(const model::AttributeValue& value) {
  const auto* number = std::get_if<model::Decimal>(&value);
  if (number == nullptr || number->negative()) return std::nullopt;
  const std::string text = number->to_string();
  uint64_t parsed = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return parsed;
}

HistoryRecorder::HistoryRecorder(const sim::Simulation* simulation) : simulation_(simulation) {
  DYN_ASSERT(simulation_ != nullptr);
}

void HistoryRecorder::on_attempt_start(uint64_t client_id, uint64_t operation_id,
                                       uint64_t request_id, const model::ClientRequest& request,
                                       sim::Address replica) {
  for (model::ClientObserver* tap : taps_) {
    tap->on_attempt_start(client_id, operation_id, request_id, request, replica);
  }
  ++counts_.attempts_started;
  Pending pending;
  pending.operation_id = operation_id;
  pending.key = key_string(request.key);
  pending.request.op = request.op;
  pending.request.consistency = request.consistency;
  pending.request.key = request.key;
  pending.request.condition = request.condition;
  pending.invoke_ns = now_ns();
  open_operations_.try_emplace(std::make_pair(client_id, operation_id),
                               OpenOperation{pending.invoke_ns, latency_kind(request)});
  if (is_counter_key(pending.key)) {
    // The counters' final reads: no register operation (see the header).
    pending.outside_registers = true;
    pending.kind = latency_kind(request);
    ++counts_.attempts_outside_registers;
    if (!pending_.emplace(std::make_pair(client_id, request_id), pending).second) {
      impossible("attempt " + std::to_string(request_id) + " of client " +
                 std::to_string(client_id) + " started twice");
    }
    return;
  }
  if (request.op == StorageOp::kPut) {
    const model::AttributeValue* version = request.item.find(kVersionAttribute);
    const std::optional<uint64_t> value =
        version == nullptr ? std::nullopt : integer_value(*version);
    DYN_ASSERT_MSG(value.has_value() && *value != kForeignValue,
                   "a put without a usable \"ver\" attribute: the history cannot name its value");
    pending.value = *value;
  }
  if (request.condition.kind != Condition::Kind::kNone) {
    // The register models conditions on "ver" only, and on puts only (the workload's shapes).
    DYN_ASSERT_MSG(request.op == StorageOp::kPut, "a conditional delete is not modelled");
    DYN_ASSERT_MSG(request.condition.attribute == kVersionAttribute,
                   "a condition on an attribute other than \"ver\" is not modelled");
    if (request.condition.kind == Condition::Kind::kAttributeEquals) {
      DYN_ASSERT_MSG(integer_value(request.condition.value).has_value(),
                     "a \"ver\" condition on a value that is not an integer");
    }
  }
  const auto [it, inserted] = pending_.emplace(std::make_pair(client_id, request_id), pending);
  if (!inserted) {
    impossible("attempt " + std::to_string(request_id) + " of client " + std::to_string(client_id) +
               " started twice");
    return;
  }
  dump_invoke(client_id, request_id, it->second);
}

RegisterOperation HistoryRecorder::make_operation(uint64_t client_id, uint64_t request_id,
                                                  const Pending& pending) const {
  RegisterOperation operation;
  operation.invoke_ns = pending.invoke_ns;
  operation.complete_ns = now_ns();
  operation.client = client_id;
  operation.id = request_id;
  const model::ClientRequest& request = pending.request;
  if (request.op == StorageOp::kGet) {
    operation.kind = Kind::kRead;
  } else if (request.op == StorageOp::kDelete) {
    operation.kind = Kind::kDelete;
  } else if (request.condition.kind == Condition::Kind::kNone) {
    operation.kind = Kind::kWrite;
    operation.value = pending.value;
  } else {
    operation.kind = Kind::kConditionalWrite;
    operation.value = pending.value;
    switch (request.condition.kind) {
      case Condition::Kind::kAttributeEquals:
        operation.expected_value = integer_value(request.condition.value);
        break;
      case Condition::Kind::kAttributeNotExists:
        // Every item the workload writes has "ver": no "ver" means no item.
        operation.expected_exists = false;
        break;
      case Condition::Kind::kAttributeExists:
        operation.expected_exists = true;
        break;
      case Condition::Kind::kNone:
        break;
    }
  }
  return operation;
}

bool HistoryRecorder::count_attempt_end(uint64_t client_id, uint64_t request_id,
                                        StorageStatus status, bool timed_out) {
  if (pending_.count(std::make_pair(client_id, request_id)) == 0) {
    impossible("attempt " + std::to_string(request_id) + " of client " + std::to_string(client_id) +
               " ended without a start, or twice");
    return false;
  }
  ++counts_.attempts_ended;
  if (timed_out) ++counts_.attempts_timed_out;
  if (timed_out) {
    ++errors_by_name_["ClientTimeout"];
  } else if (const model::ApiError error = model::api_error_for(status, capacity_mode_);
             error != model::ApiError::kNone) {
    ++errors_by_name_[model::error_name(error)];
  }
  if (!timed_out && (status == StorageStatus::kOk || status == StorageStatus::kNotFound ||
                     status == StorageStatus::kConditionFailed)) {
    ++counts_.attempts_answered;
  } else if (!timed_out && status == StorageStatus::kThrottled) {
    ++counts_.attempts_throttled;
  } else {
    ++counts_.attempts_failed;
  }
  return true;
}

void HistoryRecorder::on_attempt_end(uint64_t client_id, uint64_t request_id, StorageStatus status,
                                     bool timed_out, const std::optional<model::Item>& item) {
  for (model::ClientObserver* tap : taps_)
    tap->on_attempt_end(client_id, request_id, status, timed_out, item);
  if (!count_attempt_end(client_id, request_id, status, timed_out)) return;
  auto it = pending_.find(std::make_pair(client_id, request_id));
  const Pending pending = std::move(it->second);
  pending_.erase(it);
  if (pending.outside_registers) {
    record_outside(pending, status, timed_out);
  } else if (pending.request.op == StorageOp::kGet) {
    record_read(client_id, request_id, pending, status, timed_out, item);
  } else {
    record_write(client_id, request_id, pending, status, timed_out);
  }
}

void HistoryRecorder::on_api_attempt_start(uint64_t client_id, uint64_t operation_id,
                                           uint64_t request_id, const model::ClientRequest& request,
                                           sim::Address replica) {
  for (model::ClientObserver* tap : taps_) {
    tap->on_api_attempt_start(client_id, operation_id, request_id, request, replica);
  }
  ++counts_.attempts_started;
  Pending pending;
  pending.operation_id = operation_id;
  pending.key = request.op == StorageOp::kScan ? std::string() : key_string(request.key);
  pending.request.op = request.op;
  pending.request.consistency = request.consistency;
  pending.request.key = request.key;
  pending.invoke_ns = now_ns();
  pending.kind = latency_kind(request);
  open_operations_.try_emplace(std::make_pair(client_id, operation_id),
                               OpenOperation{pending.invoke_ns, pending.kind});
  // A strong Query's first page of a register key is a strong read of it (see the header).
  pending.query_read = request.op == StorageOp::kQuery &&
                       request.consistency == model::ReadConsistency::kStrong &&
                       !request.page.exclusive_start_key && request.page.filter.is_true() &&
                       !request.key.sort.has_value() && !is_counter_key(pending.key);
  if (pending.query_read) {
    pending.request.op = StorageOp::kGet;
  } else {
    pending.outside_registers = true;
    ++counts_.attempts_outside_registers;
  }
  const auto [it, inserted] = pending_.emplace(std::make_pair(client_id, request_id), pending);
  if (!inserted) {
    impossible("attempt " + std::to_string(request_id) + " of client " + std::to_string(client_id) +
               " started twice");
    return;
  }
  if (pending.query_read) dump_invoke(client_id, request_id, it->second);
}

void HistoryRecorder::on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                                         const model::StorageResponse* response) {
  for (model::ClientObserver* tap : taps_) tap->on_api_attempt_end(client_id, request_id, response);
  const bool timed_out = response == nullptr;
  // A timed-out attempt carries kBusy, as on_attempt_end's do (model/client.h).
  const StorageStatus status = timed_out ? StorageStatus::kBusy : response->status;
  if (!count_attempt_end(client_id, request_id, status, timed_out)) return;
  auto it = pending_.find(std::make_pair(client_id, request_id));
  const Pending pending = std::move(it->second);
  pending_.erase(it);
  if (pending.outside_registers) {
    if (!timed_out && status == StorageStatus::kConditionFailed &&
        pending.request.op != StorageOp::kQuery && pending.request.op != StorageOp::kScan) {
      // The workload's UpdateItem has no condition: nothing could fail.
      impossible("an unconditional " + std::string(model::to_string(pending.request.op)) +
                 " on key " + pending.key + " answered " + model::to_string(status));
    }
    record_outside(pending, status, timed_out);
    return;
  }
  // The Query's first page as the strong read it stands for: its one item or none.
  std::optional<model::Item> item;
  StorageStatus read_status = status;
  if (!timed_out && status == StorageStatus::kOk) {
    if (response->items.size() > 1) {
      impossible("a query of key " + pending.key + " (no sort key) returned " +
                 std::to_string(response->items.size()) + " items");
      return;
    }
    if (response->items.empty()) {
      read_status = StorageStatus::kNotFound;
    } else {
      item = response->items.front();
    }
  }
  // Its latency is the query's, not a GetItem's (attempt_latency_json skips it in the histories).
  record_outside(pending, status, timed_out);
  const bool recorded =
      !timed_out && (read_status == StorageStatus::kOk || read_status == StorageStatus::kNotFound);
  if (recorded) {
    query_reads_.insert(std::make_pair(client_id, request_id));
    ++counts_.query_reads_recorded;
  }
  record_read(client_id, request_id, pending, read_status, timed_out, item);
}

void HistoryRecorder::record_outside(const Pending& pending, StorageStatus status, bool timed_out) {
  const bool answered =
      !timed_out && (status == StorageStatus::kOk || status == StorageStatus::kNotFound ||
                     status == StorageStatus::kConditionFailed);
  if (!answered || !pending.kind.has_value() || pending.invoke_ns >= latency_until_ns_) return;
  latency_outside_histories_ns_[static_cast<size_t>(*pending.kind)].push_back(now_ns() -
                                                                              pending.invoke_ns);
}

void HistoryRecorder::record_read(uint64_t client_id, uint64_t request_id, const Pending& pending,
                                  StorageStatus status, bool timed_out,
                                  const std::optional<model::Item>& item) {
  const bool answered =
      !timed_out && (status == StorageStatus::kOk || status == StorageStatus::kNotFound);
  std::optional<uint64_t> read_value;
  if (answered && status == StorageStatus::kOk) {
    read_value = kForeignValue;
    if (item.has_value()) {
      const model::AttributeValue* version = item->find(kVersionAttribute);
      if (version != nullptr) read_value = integer_value(*version).value_or(kForeignValue);
    }
  }
  dump_completion(client_id, request_id, pending, status, timed_out, read_value);
  if (!answered) {
    ++counts_.reads_dropped;
    return;
  }
  if (!is_strong_read(pending.request)) {
    ++counts_.eventual_reads;
    if (pending.invoke_ns < latency_until_ns_) {
      latency_outside_histories_ns_[static_cast<size_t>(LatencyKind::kGetEventual)].push_back(
          now_ns() - pending.invoke_ns);
    }
    return;
  }
  RegisterOperation operation = make_operation(client_id, request_id, pending);
  operation.read_value = read_value;
  by_key_[pending.key].push_back(operation);
  ++counts_.reads_recorded;
}

void HistoryRecorder::record_write(uint64_t client_id, uint64_t request_id, const Pending& pending,
                                   StorageStatus status, bool timed_out) {
  dump_completion(client_id, request_id, pending, status, timed_out, std::nullopt);
  if (!timed_out && surely_not_applied(status)) {
    ++counts_.writes_dropped;
    return;
  }
  RegisterOperation operation = make_operation(client_id, request_id, pending);
  if (timed_out) {
    operation.outcome = Outcome::kUnknown;
    operation.complete_ns = INT64_MAX;
    ++counts_.unknown_outcomes;
  } else if (status == StorageStatus::kOk) {
    operation.outcome = Outcome::kOk;
    acknowledged_.push_back(AcknowledgedWrite{pending.key, operation.kind, operation.value,
                                              operation.invoke_ns, operation.complete_ns, client_id,
                                              request_id});
  } else if (status == StorageStatus::kConditionFailed &&
             operation.kind == Kind::kConditionalWrite) {
    operation.outcome = Outcome::kConditionFailed;
  } else {
    impossible(std::string("a ") + function_name(pending.request) + " on key " + pending.key +
               " answered " + model::to_string(status));
    return;
  }
  by_key_[pending.key].push_back(operation);
  ++counts_.writes_recorded;
}

void HistoryRecorder::on_operation_end(uint64_t client_id, uint64_t operation_id,
                                       const model::ClientResult& result) {
  for (model::ClientObserver* tap : taps_) tap->on_operation_end(client_id, operation_id, result);
  end_operation(client_id, operation_id, result);
}

void HistoryRecorder::on_api_operation_end(uint64_t client_id, uint64_t operation_id,
                                           const model::ClientResult& result) {
  for (model::ClientObserver* tap : taps_) {
    tap->on_api_operation_end(client_id, operation_id, result);
  }
  end_operation(client_id, operation_id, result);
}

void HistoryRecorder::end_operation(uint64_t client_id, uint64_t operation_id,
                                    const model::ClientResult& result) {
  auto it = open_operations_.find(std::make_pair(client_id, operation_id));
  if (it == open_operations_.end()) {
    impossible("operation " + std::to_string(operation_id) + " of client " +
               std::to_string(client_id) + " ended without an attempt, or twice");
    return;
  }
  const OpenOperation operation = it->second;
  open_operations_.erase(it);
  if (!result.succeeded()) return;  // kOk, kNotFound, kConditionFailed
  if (!operation.kind.has_value() || operation.invoke_ns >= latency_until_ns_) return;
  const int64_t latency_ns = now_ns() - operation.invoke_ns;
  operation_latency_ns_[static_cast<size_t>(*operation.kind)].push_back(latency_ns);
}

nlohmann::json HistoryRecorder::latency_section(LatencySamples samples_by_kind) {
  nlohmann::json section = nlohmann::json::object();
  std::vector<int64_t> all;
  for (size_t k = 0; k < kLatencyKindCount; ++k) {
    std::vector<int64_t>& samples = samples_by_kind[k];
    all.insert(all.end(), samples.begin(), samples.end());
    section[to_string(static_cast<LatencyKind>(k))] =
        latency_summary_json(summarize_latency(samples));
    samples = std::vector<int64_t>();  // give the memory back before the next kind
  }
  section["all"] = latency_summary_json(summarize_latency(all));
  return section;
}

nlohmann::json HistoryRecorder::attempt_latency_json() const {
  // Strong reads and writes from the register histories (an unknown outcome is a timed-out
  // attempt; every other entry was answered), eventual reads from their own samples.
  LatencySamples samples = latency_outside_histories_ns_;
  for (const auto& [key, operations] : by_key_) {
    for (const RegisterOperation& operation : operations) {
      if (operation.outcome == Outcome::kUnknown) continue;
      if (operation.invoke_ns >= latency_until_ns_) continue;
      if (operation.kind == Kind::kRead &&
          query_reads_.count(std::make_pair(operation.client, operation.id)) > 0) {
        continue;  // a Query's first page: timed as a query already
      }
      const std::optional<LatencyKind> kind = register_latency_kind(operation);
      if (!kind.has_value()) continue;
      samples[static_cast<size_t>(*kind)].push_back(operation.complete_ns - operation.invoke_ns);
    }
  }
  return latency_section(std::move(samples));
}

nlohmann::json HistoryRecorder::operation_latency_json() const {
  return latency_section(operation_latency_ns_);
}

void HistoryRecorder::impossible(std::string what) {
  ++counts_.impossible_answers;
  if (first_impossible_.empty()) first_impossible_ = std::move(what);
}

void HistoryRecorder::record_operation_end(sim::SimTime true_time, OperationEnd end) {
  DYN_ASSERT(true_time.ns >= 0);
  auto& bucket = availability_by_second_[true_time.ns / kNanosecondsPerSecond];
  ++bucket.first;
  if (end == OperationEnd::kSucceeded) {
    ++bucket.second;
    ++counts_.operations_succeeded;
  } else {
    ++counts_.operations_failed;
  }
}

nlohmann::json HistoryRecorder::availability(sim::Duration window) const {
  DYN_ASSERT_MSG(window.ns > 0 && window.ns % kNanosecondsPerSecond == 0,
                 "availability windows are whole seconds");
  const int64_t seconds_per_window = window.ns / kNanosecondsPerSecond;
  nlohmann::json windows = nlohmann::json::array();
  if (availability_by_second_.empty()) return windows;
  const int64_t first = availability_by_second_.begin()->first / seconds_per_window;
  const int64_t last = availability_by_second_.rbegin()->first / seconds_per_window;
  auto bucket = availability_by_second_.begin();
  for (int64_t w = first; w <= last; ++w) {
    uint64_t operations = 0;
    uint64_t succeeded = 0;
    const int64_t end_second = (w + 1) * seconds_per_window;
    for (; bucket != availability_by_second_.end() && bucket->first < end_second; ++bucket) {
      operations += bucket->second.first;
      succeeded += bucket->second.second;
    }
    nlohmann::json entry = {{"start_ns", w * window.ns},
                            {"end_ns", (w + 1) * window.ns},
                            {"operations", operations},
                            {"succeeded", succeeded}};
    entry["fraction"] =
        operations == 0
            ? nlohmann::json(nullptr)
            : nlohmann::json(static_cast<double>(succeeded) / static_cast<double>(operations));
    windows.push_back(std::move(entry));
  }
  return windows;
}

nlohmann::json HistoryRecorder::counts_json() const {
  return {{"attempts_started", counts_.attempts_started},
          {"attempts_ended", counts_.attempts_ended},
          {"attempts_timed_out", counts_.attempts_timed_out},
          {"attempts_pending", pending_.size()},
          {"reads_recorded", counts_.reads_recorded},
          {"writes_recorded", counts_.writes_recorded},
          {"unknown_outcomes", counts_.unknown_outcomes},
          {"eventual_reads", counts_.eventual_reads},
          {"writes_dropped", counts_.writes_dropped},
          {"reads_dropped", counts_.reads_dropped},
          {"acknowledged_writes", acknowledged_.size()},
          {"impossible_answers", counts_.impossible_answers},
          {"first_impossible_answer", first_impossible_},
          {"operations_succeeded", counts_.operations_succeeded},
          {"operations_failed", counts_.operations_failed},
          {"attempts_outside_registers", counts_.attempts_outside_registers},
          {"query_reads_recorded", counts_.query_reads_recorded},
          {"keys", by_key_.size()}};
}

nlohmann::json HistoryRecorder::requests_json() const {
  return {{"total", counts_.attempts_ended},
          {"ok", counts_.attempts_answered},
          {"throttled", counts_.attempts_throttled},
          {"errors", counts_.attempts_failed},
          {"by_error", errors_by_name_}};
}

void HistoryRecorder::dump_invoke(uint64_t client_id, uint64_t request_id,
                                  const Pending& pending) const {
  if (dump_ == nullptr) return;
  const model::ClientRequest& request = pending.request;
  nlohmann::json line = {{"client", client_id},
                         {"op", request_id},
                         {"operation", pending.operation_id},
                         {"type", "invoke"},
                         {"f", function_name(request)},
                         {"key", pending.key},
                         {"time_ns", pending.invoke_ns}};
  line["value"] = written_value_json(pending);
  if (request.op == StorageOp::kGet) {
    line["consistency"] = is_strong_read(request) ? "strong" : "eventual";
  }
  if (pending.query_read) line["api"] = "Query";
  *dump_ << line.dump() << '\n';
}

void HistoryRecorder::dump_completion(uint64_t client_id, uint64_t request_id,
                                      const Pending& pending, StorageStatus status, bool timed_out,
                                      std::optional<uint64_t> read_value) const {
  if (dump_ == nullptr) return;
  const model::ClientRequest& request = pending.request;
  const char* type = "fail";
  if (timed_out) {
    type = "info";
  } else if (status == StorageStatus::kOk || status == StorageStatus::kNotFound) {
    type = "ok";
  }
  nlohmann::json line = {{"client", client_id},
                         {"op", request_id},
                         {"operation", pending.operation_id},
                         {"type", type},
                         {"f", function_name(request)},
                         {"key", pending.key},
                         {"time_ns", now_ns()},
                         {"status", timed_out ? "timeout" : model::to_string(status)}};
  if (request.op == StorageOp::kGet) {
    line["value"] = read_value.has_value() ? nlohmann::json(*read_value) : nlohmann::json(nullptr);
    line["consistency"] = is_strong_read(request) ? "strong" : "eventual";
  } else {
    line["value"] = written_value_json(pending);
  }
  if (pending.query_read) line["api"] = "Query";
  *dump_ << line.dump() << '\n';
}

}  // namespace dynasim::gameday
