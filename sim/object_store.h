// The object store: the simulated S3 that WAL archives and partition snapshots go to.
//
// Durable by construction (nothing here loses an acknowledged put), with latency on every call.
// Default latency follows Amazon's S3 performance guidance, which puts first-byte latency of small
// requests at roughly 100-200 ms ("Best Practices Design Patterns: Optimizing Amazon S3
// Performance", section "Timeouts and Retries for Latency-Sensitive Applications"); the
// log-normal shape is our assumption. A put becomes visible to get and list when it completes.
// The store can be made unavailable (calls fail with kUnavailable) to test what depends on it.
//
// A put may carry a content checksum of its bytes, as an S3 PutObject carries Content-MD5 or an
// x-amz-checksum header; the store recomputes it over the bytes it received and refuses the put
// (kChecksumMismatch, nothing stored) if they differ. P22 section 5.2: archived logs are uploaded
// with a checksum the store verifies. object_checksum() is the function both sides use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sim/distribution.h"
#include "sim/inplace_function.h"
#include "sim/simulation.h"

namespace dynasim::sim {

enum class ObjectStatus { kOk, kNotFound, kUnavailable, kChecksumMismatch };
const char* to_string(ObjectStatus status);

// The content checksum a checked put carries: a seeded 64-bit hash of the bytes (our stand-in for
// MD5 or CRC32C; not cryptographic).
uint64_t object_checksum(const uint8_t* bytes, size_t length);
inline uint64_t object_checksum(const std::vector<uint8_t>& bytes) {
  return object_checksum(bytes.data(), bytes.size());
}

struct ObjectStoreOptions {
  DistributionSpec put_latency_ns = with_floor(DistributionSpec::lognormal(120e6, 0.35), 20e6);
  DistributionSpec get_latency_ns = with_floor(DistributionSpec::lognormal(100e6, 0.35), 15e6);
  DistributionSpec list_latency_ns = with_floor(DistributionSpec::lognormal(100e6, 0.35), 15e6);
  double bandwidth_bytes_per_second = 100e6;  // per request; our assumption for one stream

  static DistributionSpec with_floor(DistributionSpec spec, double minimum) {
    spec.minimum = minimum;
    return spec;
  }
};

using ObjectBytes = std::shared_ptr<const std::vector<uint8_t>>;

struct ObjectResult {
  ObjectStatus status = ObjectStatus::kOk;
  ObjectBytes data;
};

class ObjectStore final : public EventSink {
 public:
  using PutDone = InplaceFunction<void(ObjectStatus), 96>;
  using GetDone = InplaceFunction<void(ObjectResult), 96>;
  using ListDone = InplaceFunction<void(ObjectStatus, std::vector<std::string>), 96>;

  ObjectStore(Simulation& simulation, ObjectStoreOptions options);

  void put(std::string key, ObjectBytes data, PutDone done);
  // A put that the store completes only if object_checksum(*data), as received, equals
  // `content_checksum`; otherwise it answers kChecksumMismatch and stores nothing. Same latency
  // and the same random draws as put(). Availability is judged first (kUnavailable wins).
  void put_with_checksum(std::string key, ObjectBytes data, uint64_t content_checksum,
                         PutDone done);
  void get(std::string key, GetDone done);
  // Keys that start with `prefix`, in byte order.
  void list(std::string prefix, ListDone done);

  void set_available(bool available) { available_ = available; }
  bool available() const { return available_; }

  // For checkers and tests, never for model code: the stored object, or null.
  ObjectBytes peek(const std::string& key) const;
  // For checkers and tests: the stored keys that start with `prefix`, in byte order, at once.
  std::vector<std::string> peek_keys(const std::string& prefix) const;
  uint64_t object_count() const { return objects_.size(); }
  uint64_t stored_bytes() const { return stored_bytes_; }

  void on_event(const Event& event) override;

 private:
  struct Pending {
    enum class Kind { kPut, kGet, kList } kind;
    std::string key;
    ObjectBytes data;
    PutDone put_done;
    GetDone get_done;
    ListDone list_done;
    std::optional<uint64_t> content_checksum;  // kPut from put_with_checksum
  };
  void submit(Pending pending, Duration latency);
  void submit_put(std::string key, ObjectBytes data, PutDone done,
                  std::optional<uint64_t> content_checksum);

  Simulation& simulation_;
  ObjectStoreOptions options_;
  Random random_;
  bool available_ = true;
  std::map<std::string, ObjectBytes> objects_;
  uint64_t stored_bytes_ = 0;
  std::map<uint64_t, Pending> pending_;  // by request id, which is the event payload
  uint64_t next_request_id_ = 0;
};

}  // namespace dynasim::sim
