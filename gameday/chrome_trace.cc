#include "gameday/chrome_trace.h"

#include <string_view>

#include "gameday/history.h"
#include "sim/check.h"

namespace dynasim::gameday {

namespace {

constexpr int64_t kDiskPidBase = 1'000'000;

// Microseconds with nanosecond resolution, from integers.
void write_us(std::ostream& out, int64_t ns) {
  out << ns / 1000 << '.';
  const int64_t fraction = ns % 1000;
  if (fraction < 100) out << '0';
  if (fraction < 10) out << '0';
  out << fraction;
}

// A JSON string: quotes, backslashes and control characters escaped.
void write_string(std::ostream& out, std::string_view text) {
  out << '"';
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out << '\\' << c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out << "\\u00" << kHex[(c >> 4) & 0xf] << kHex[c & 0xf];
    } else {
      out << c;
    }
  }
  out << '"';
}

const char* operation_name(const model::ClientRequest& request) {
  switch (request.op) {
    case model::StorageOp::kGet:
      return request.consistency == model::ReadConsistency::kStrong ? "get (strong)"
                                                                    : "get (eventual)";
    case model::StorageOp::kPut:
      return request.condition.kind == model::Condition::Kind::kNone ? "put" : "conditional put";
    case model::StorageOp::kDelete:
      return "delete";
    case model::StorageOp::kUpdate:
      return "update";
    case model::StorageOp::kQuery:
      return "query";
    case model::StorageOp::kScan:
      return "scan";
  }
  return "operation";
}

}  // namespace

ChromeTraceWriter::ChromeTraceWriter(sim::World* world, std::ostream* out, sim::SimTime from,
                                     sim::SimTime to)
    : world_(world), out_(out), from_(from), to_(to) {
  DYN_ASSERT(world_ != nullptr && out_ != nullptr);
  DYN_ASSERT(from_ <= to_);
  *out_ << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[";
}

sim::SimTime ChromeTraceWriter::now() const {
  return world_->simulation().now();
}

void ChromeTraceWriter::begin_event() {
  if (!names_written_) write_process_names();
  if (events_written_ > 0) *out_ << ",\n";
  ++events_written_;
}

void ChromeTraceWriter::write_process_names() {
  names_written_ = true;
  auto name = [this](int64_t pid, const std::string& text) {
    if (events_written_ > 0) *out_ << ",\n";
    ++events_written_;
    *out_ << "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" << pid << ",\"args\":{\"name\":";
    write_string(*out_, text);
    *out_ << "}}";
  };
  name(0, "clients");
  for (uint32_t h = 0; h < world_->host_count(); ++h) {
    const sim::HostId host(h);
    name(int64_t{h} + 1, world_->host_name(host));
    for (uint32_t d = 0; d < world_->disk_count(host); ++d) {
      name(kDiskPidBase + world_->disk(host, d).id().value,
           world_->host_name(host) + "/disk" + std::to_string(d));
    }
  }
}

void ChromeTraceWriter::on_executed(const sim::Event& event, uint64_t trace_hash_after) {
  (void)trace_hash_after;
  if (finished_ || !in_window(event.time)) return;
  const std::string_view kind = event.kind->name;
  const bool disk = kind.starts_with("disk.");
  const int64_t pid = disk ? kDiskPidBase + event.target : int64_t{event.target} + 1;
  begin_event();
  *out_ << "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"kernel\",\"name\":";
  write_string(*out_, kind);
  *out_ << ",\"pid\":" << pid << ",\"tid\":" << event.kind->id << ",\"ts\":";
  write_us(*out_, event.time.ns);
  *out_ << ",\"args\":{\"payload\":" << event.payload << "}}";
}

void ChromeTraceWriter::on_attempt_start(uint64_t client_id, uint64_t operation_id,
                                         uint64_t request_id, const model::ClientRequest& request,
                                         sim::Address replica) {
  if (finished_ || !in_window(now())) return;
  OpenAttempt attempt;
  attempt.id = next_slice_id_++;
  attempt.name =
      std::string(operation_name(request)) + " " +
      (request.op == model::StorageOp::kScan ? "group " + std::to_string(request.scan_group.value)
                                             : key_string(request.key));
  begin_event();
  *out_ << "{\"ph\":\"b\",\"cat\":\"client\",\"name\":";
  write_string(*out_, attempt.name);
  *out_ << ",\"id\":" << attempt.id << ",\"pid\":0,\"tid\":" << client_id << ",\"ts\":";
  write_us(*out_, now().ns);
  *out_ << ",\"args\":{\"client\":" << client_id << ",\"operation\":" << operation_id
        << ",\"request\":" << request_id << ",\"replica\":";
  write_string(*out_, world_->host_name(replica.host));
  *out_ << "}}";
  open_.emplace(std::make_pair(client_id, request_id), std::move(attempt));
}

void ChromeTraceWriter::on_attempt_end(uint64_t client_id, uint64_t request_id,
                                       model::StorageStatus status, bool timed_out,
                                       const std::optional<model::Item>& item) {
  (void)item;
  auto found = open_.find(std::make_pair(client_id, request_id));
  if (found == open_.end() || finished_) return;  // started outside the window
  const sim::SimTime end = now() < to_ ? now() : to_;
  begin_event();
  *out_ << "{\"ph\":\"e\",\"cat\":\"client\",\"name\":";
  write_string(*out_, found->second.name);
  *out_ << ",\"id\":" << found->second.id << ",\"pid\":0,\"tid\":" << client_id << ",\"ts\":";
  write_us(*out_, end.ns);
  *out_ << ",\"args\":{\"status\":";
  write_string(*out_, timed_out ? "timed out" : model::to_string(status));
  *out_ << "}}";
  open_.erase(found);
}

void ChromeTraceWriter::on_api_attempt_start(uint64_t client_id, uint64_t operation_id,
                                             uint64_t request_id,
                                             const model::ClientRequest& request,
                                             sim::Address replica) {
  on_attempt_start(client_id, operation_id, request_id, request, replica);
}

void ChromeTraceWriter::on_api_attempt_end(uint64_t client_id, uint64_t request_id,
                                           const model::StorageResponse* response) {
  on_attempt_end(client_id, request_id,
                 response == nullptr ? model::StorageStatus::kBusy : response->status,
                 response == nullptr, std::nullopt);
}

void ChromeTraceWriter::fault(sim::SimTime at, const std::string& description) {
  if (finished_ || !in_window(at)) return;
  begin_event();
  *out_ << "{\"ph\":\"i\",\"s\":\"g\",\"cat\":\"fault\",\"name\":";
  write_string(*out_, description);
  *out_ << ",\"pid\":0,\"tid\":0,\"ts\":";
  write_us(*out_, at.ns);
  *out_ << "}";
}

void ChromeTraceWriter::finish() {
  if (finished_) return;
  for (const auto& [key, attempt] : open_) {
    begin_event();
    *out_ << "{\"ph\":\"e\",\"cat\":\"client\",\"name\":";
    write_string(*out_, attempt.name);
    *out_ << ",\"id\":" << attempt.id << ",\"pid\":0,\"tid\":" << key.first << ",\"ts\":";
    write_us(*out_, to_.ns);
    *out_ << ",\"args\":{\"status\":\"open at the window's end\"}}";
  }
  open_.clear();
  finished_ = true;
  if (!names_written_) write_process_names();
  *out_ << "]}\n";
}

}  // namespace dynasim::gameday
