// The object store: the simulated S3 that WAL archives and partition snapshots go to.
//
// Durable by construction (nothing here loses an acknowledged put), with latency on every call.
// Default latency follows Amazon's S3 performance guidance, which puts first-byte latency of small
// requests at roughly 100-200 ms ("Best Practices Design Patterns: Optimizing Amazon S3
// Performance", section "Timeouts and Retries for Latency-Sensitive Applications"); the
// log-normal shape is our assumption. A put becomes visible to get and list when it completes.
// The store can be made unavailable (calls fail with kUnavailable) to test what depends on it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sim/distribution.h"
#include "sim/inplace_function.h"
#include "sim/simulation.h"

namespace dynasim::sim {

enum class ObjectStatus { kOk, kNotFound, kUnavailable };

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
  void get(std::string key, GetDone done);
  // Keys that start with `prefix`, in byte order.
  void list(std::string prefix, ListDone done);

  void set_available(bool available) { available_ = available; }
  bool available() const { return available_; }

  // For checkers and tests, never for model code: the stored object, or null.
  ObjectBytes peek(const std::string& key) const;
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
  };
  void submit(Pending pending, Duration latency);

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
