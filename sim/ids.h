// Strong ids for the simulated world. Each is an index into the World's tables, assigned in the
// order the topology is built, so the same scenario gives the same ids on every run.
#pragma once

#include <compare>
#include <cstdint>

namespace dynasim::sim {

template <typename Tag>
struct Id {
  uint32_t value = UINT32_MAX;
  constexpr Id() = default;
  constexpr explicit Id(uint32_t v) : value(v) {}
  constexpr bool valid() const { return value != UINT32_MAX; }
  constexpr auto operator<=>(const Id&) const = default;
};

using AzId = Id<struct AzTag>;
using RackId = Id<struct RackTag>;
using HostId = Id<struct HostTag>;
using DiskId = Id<struct DiskTag>;

// Where a process listens: a host and a port. Messages are addressed to it; a restarted process on
// the same host and port receives what is sent to it after the restart.
struct Address {
  HostId host;
  uint32_t port = 0;
  constexpr auto operator<=>(const Address&) const = default;
};

}  // namespace dynasim::sim
