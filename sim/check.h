// Always-on assertions (DYN_ASSERT) that stay in release builds.
//
// A broken invariant is a crash, never a value (CONVENTIONS.md rule 8). The failure message names
// the file, the line, the simulated time and the seed of the run, and the command that replays it,
// so any assertion hit in a swarm run can be reproduced at once.
//
// The simulation that is currently executing on this thread registers itself through
// ScopedCheckContext. That thread-local pointer is read only to print a failing assertion; it never
// influences behaviour, so it does not break the "no global mutable state" rule in spirit.
#pragma once

#include <cstdint>
#include <string>

#include "sim/time.h"

namespace dynasim::sim {

struct CheckContext {
  const SimTime* now = nullptr;  // the simulation's clock, read at failure time
  uint64_t seed = 0;
  const char* scenario = nullptr;  // path or name, for the reproduce line
};

class ScopedCheckContext {
 public:
  explicit ScopedCheckContext(const CheckContext* context);
  ~ScopedCheckContext();
  ScopedCheckContext(const ScopedCheckContext&) = delete;
  ScopedCheckContext& operator=(const ScopedCheckContext&) = delete;

 private:
  const CheckContext* previous_;
};

const CheckContext* current_check_context();

[[noreturn]] void assertion_failed(const char* condition, const char* file, int line,
                                   const std::string& message);

}  // namespace dynasim::sim

#define DYN_ASSERT(condition)                                                          \
  do {                                                                                 \
    if (!(condition)) [[unlikely]]                                                     \
      ::dynasim::sim::assertion_failed(#condition, __FILE__, __LINE__, std::string()); \
  } while (0)

#define DYN_ASSERT_MSG(condition, message)                                         \
  do {                                                                             \
    if (!(condition)) [[unlikely]]                                                 \
      ::dynasim::sim::assertion_failed(#condition, __FILE__, __LINE__, (message)); \
  } while (0)
