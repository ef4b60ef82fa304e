#include "sim/check.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

namespace dynasim::sim {
namespace {
thread_local const CheckContext* g_check_context = nullptr;
}  // namespace

ScopedCheckContext::ScopedCheckContext(const CheckContext* context) : previous_(g_check_context) {
  g_check_context = context;
}

ScopedCheckContext::~ScopedCheckContext() {
  g_check_context = previous_;
}

const CheckContext* current_check_context() {
  return g_check_context;
}

void assertion_failed(const char* condition, const char* file, int line,
                      const std::string& message) {
  const CheckContext* context = g_check_context;
  std::fprintf(stderr, "dynasim: assertion failed: %s\n  at %s:%d\n", condition, file, line);
  if (!message.empty()) std::fprintf(stderr, "  %s\n", message.c_str());
  if (context != nullptr) {
    const std::string when = context->now ? format_time(*context->now) : std::string("?");
    std::fprintf(stderr, "  simulated time %s, seed %" PRIu64 "\n", when.c_str(), context->seed);
    if (context->scenario != nullptr) {
      std::fprintf(stderr, "  reproduce: dynasim run %s --seed %" PRIu64 "\n", context->scenario,
                   context->seed);
    }
  }
  std::fflush(stderr);
  std::abort();
}

}  // namespace dynasim::sim
