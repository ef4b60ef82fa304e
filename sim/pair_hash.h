// A hash for std::pair keys of unsigned integers, for unordered containers on hot paths.
//
// Determinism (docs/determinism.md): an unordered container's iteration order depends on the
// hash and on the standard library, so containers keyed with this hash must only ever be looked up
// by key, never iterated. The hash itself is fixed (splitmix64), so it is the same on every
// machine and with every compiler.
#pragma once

#include <cstdint>
#include <utility>

#include "sim/random.h"

namespace dynasim::sim {

struct PairHash {
  template <typename A, typename B>
  size_t operator()(const std::pair<A, B>& key) const {
    return static_cast<size_t>(
        splitmix64(splitmix64(static_cast<uint64_t>(key.first)) ^ static_cast<uint64_t>(key.second)));
  }
};

}  // namespace dynasim::sim
