#include "sim/time.h"

#include <cinttypes>
#include <cstdio>

namespace dynasim::sim {

std::string format_duration(Duration d) {
  const bool negative = d.ns < 0;
  const uint64_t magnitude =
      negative ? 0 - static_cast<uint64_t>(d.ns) : static_cast<uint64_t>(d.ns);
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%s%" PRIu64 ".%09" PRIu64 "s", negative ? "-" : "",
                magnitude / 1'000'000'000, magnitude % 1'000'000'000);
  return buffer;
}

std::string format_time(SimTime t) {
  return format_duration(Duration(t.ns));
}

}  // namespace dynasim::sim
