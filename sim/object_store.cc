#include "sim/object_store.h"

namespace dynasim::sim {

namespace {
constexpr EventKind kObjectStoreDone = event_kind("objectstore.done");
constexpr size_t kMaxPendingRequests = size_t{1} << 20;
constexpr uint64_t kObjectChecksumSeed = 0x6f626a2d63686b73;  // "obj-chks"
}  // namespace

const char* to_string(ObjectStatus status) {
  switch (status) {
    case ObjectStatus::kOk:
      return "ok";
    case ObjectStatus::kNotFound:
      return "not-found";
    case ObjectStatus::kUnavailable:
      return "unavailable";
    case ObjectStatus::kChecksumMismatch:
      return "checksum-mismatch";
  }
  return "?";
}

uint64_t object_checksum(const uint8_t* bytes, size_t length) {
  return hash_bytes(kObjectChecksumSeed, bytes, length);
}

ObjectStore::ObjectStore(Simulation& simulation, ObjectStoreOptions options)
    : simulation_(simulation),
      options_(std::move(options)),
      random_(simulation.random_stream("objectstore")) {}

void ObjectStore::submit(Pending pending, Duration latency) {
  DYN_ASSERT_MSG(pending_.size() < kMaxPendingRequests, "object store request queue is full");
  const uint64_t id = next_request_id_++;
  pending_.emplace(id, std::move(pending));
  simulation_.schedule_after(latency, this, kObjectStoreDone, 0, id);
}

void ObjectStore::put(std::string key, ObjectBytes data, PutDone done) {
  submit_put(std::move(key), std::move(data), std::move(done), std::nullopt);
}

void ObjectStore::put_with_checksum(std::string key, ObjectBytes data, uint64_t content_checksum,
                                    PutDone done) {
  submit_put(std::move(key), std::move(data), std::move(done), content_checksum);
}

void ObjectStore::submit_put(std::string key, ObjectBytes data, PutDone done,
                             std::optional<uint64_t> content_checksum) {
  DYN_ASSERT(data != nullptr);
  Duration latency = options_.put_latency_ns.sample_duration(random_);
  latency += Duration(static_cast<int64_t>(static_cast<double>(data->size()) * 1e9 /
                                           options_.bandwidth_bytes_per_second));
  Pending pending{Pending::Kind::kPut, std::move(key), std::move(data), std::move(done), {}, {},
                  content_checksum};
  submit(std::move(pending), latency);
}

void ObjectStore::get(std::string key, GetDone done) {
  Duration latency = options_.get_latency_ns.sample_duration(random_);
  auto found = objects_.find(key);
  if (found != objects_.end()) {
    latency += Duration(static_cast<int64_t>(static_cast<double>(found->second->size()) * 1e9 /
                                             options_.bandwidth_bytes_per_second));
  }
  Pending pending{Pending::Kind::kGet, std::move(key), nullptr, {}, std::move(done), {}, {}};
  submit(std::move(pending), latency);
}

void ObjectStore::list(std::string prefix, ListDone done) {
  Pending pending{Pending::Kind::kList, std::move(prefix), nullptr, {}, {}, std::move(done), {}};
  submit(std::move(pending), options_.list_latency_ns.sample_duration(random_));
}

ObjectBytes ObjectStore::peek(const std::string& key) const {
  auto found = objects_.find(key);
  return found == objects_.end() ? nullptr : found->second;
}

std::vector<std::string> ObjectStore::peek_keys(const std::string& prefix) const {
  std::vector<std::string> keys;
  for (auto it = objects_.lower_bound(prefix);
       it != objects_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    keys.push_back(it->first);
  }
  return keys;
}

void ObjectStore::on_event(const Event& event) {
  auto found = pending_.find(event.payload);
  DYN_ASSERT(found != pending_.end());
  Pending pending = std::move(found->second);
  pending_.erase(found);
  simulation_.fold_digest(stable_hash(pending.key));
  // Availability is judged when the request completes, as a client would see a failed response.
  switch (pending.kind) {
    case Pending::Kind::kPut:
      if (!available_) {
        pending.put_done(ObjectStatus::kUnavailable);
        return;
      }
      if (pending.content_checksum && object_checksum(*pending.data) != *pending.content_checksum) {
        pending.put_done(ObjectStatus::kChecksumMismatch);
        return;
      }
      {
        auto existing = objects_.find(pending.key);
        if (existing != objects_.end()) stored_bytes_ -= existing->second->size();
        stored_bytes_ += pending.data->size();
        objects_[pending.key] = pending.data;
      }
      pending.put_done(ObjectStatus::kOk);
      return;
    case Pending::Kind::kGet: {
      if (!available_) {
        pending.get_done(ObjectResult{ObjectStatus::kUnavailable, nullptr});
        return;
      }
      auto object = objects_.find(pending.key);
      if (object == objects_.end()) {
        pending.get_done(ObjectResult{ObjectStatus::kNotFound, nullptr});
      } else {
        pending.get_done(ObjectResult{ObjectStatus::kOk, object->second});
      }
      return;
    }
    case Pending::Kind::kList: {
      if (!available_) {
        pending.list_done(ObjectStatus::kUnavailable, {});
        return;
      }
      pending.list_done(ObjectStatus::kOk, peek_keys(pending.key));
      return;
    }
  }
}

}  // namespace dynasim::sim
