// Auto-admin: the control-plane process that decides where replicas go (P22 section 3: it
// "replaces unhealthy replicas"). Storage nodes report to it every second; a group's leader asks
// it where a new replica should be placed, and it answers with a live node that holds no member
// of the group, preferring an AZ that holds no other member (the replaced replica's first) so
// that each AZ keeps one copy, and the least loaded node there (docs/healing.md).
//
// One process on a control-plane host that faults spare: a replicated auto-admin is not modelled
// (our assumption; its own availability is outside what the game days test).
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "model/healing_protocol.h"
#include "sim/env.h"

namespace dynasim::model {

struct AutoAdminOptions {
  // A node not heard from for this long is not placed on. Our assumption: a few heartbeats.
  sim::Duration node_dead_after = sim::seconds(3);
  // Each placement counts against its node's load for this long, until its heartbeats include
  // the new replica.
  sim::Duration placement_counts_for = sim::seconds(5);
};

class AutoAdmin final : public sim::Process {
 public:
  explicit AutoAdmin(AutoAdminOptions options) : options_(options) {}

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  uint64_t placements() const { return placements_; }
  uint64_t refusals() const { return refusals_; }

 private:
  struct NodeRecord {
    sim::AzId az;
    uint32_t replicas = 0;
    sim::SimTime last_heard;
    std::map<sim::SimTime, uint32_t> recent_placements;  // by when they stop counting
  };
  std::optional<sim::Address> place(const PlaceRequestBody& request, sim::SimTime now);

  AutoAdminOptions options_;
  std::map<sim::Address, NodeRecord> nodes_;
  uint64_t placements_ = 0;
  uint64_t refusals_ = 0;
};

}  // namespace dynasim::model
