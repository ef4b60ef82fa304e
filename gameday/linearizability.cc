#include "gameday/linearizability.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <unordered_set>

namespace dynasim::gameday {

namespace {

struct RegisterState {
  bool exists = false;
  uint64_t value = 0;
  uint64_t version = 0;
};

// Applies `operation` to `state` if its observed result is possible there. False if not.
bool apply(const RegisterOperation& operation, RegisterState* state) {
  using Kind = RegisterOperation::Kind;
  using Outcome = RegisterOperation::Outcome;
  switch (operation.kind) {
    case Kind::kRead:
      if (operation.outcome == Outcome::kUnknown) return true;  // a lost read observes nothing
      if (operation.read_value.has_value() != state->exists) return false;
      return !state->exists || *operation.read_value == state->value;
    case Kind::kWrite:
      state->exists = true;
      state->value = operation.value;
      ++state->version;
      return true;
    case Kind::kDelete:
      state->exists = false;
      state->value = 0;
      ++state->version;
      return true;
    case Kind::kConditionalWrite: {
      bool holds = true;
      if (operation.expected_version.has_value()) {
        holds = holds && state->version == *operation.expected_version;
      }
      if (operation.expected_exists.has_value()) {
        holds = holds && state->exists == *operation.expected_exists;
      }
      if (operation.expected_value.has_value()) {
        holds = holds && state->exists && state->value == *operation.expected_value;
      }
      if (operation.outcome == Outcome::kConditionFailed) return !holds;
      if (operation.outcome == Outcome::kOk && !holds) return false;
      // kUnknown: the write happened only if the condition held; either way it is explained.
      if (holds) {
        state->exists = true;
        state->value = operation.value;
        ++state->version;
      }
      return true;
    }
  }
  return false;
}

// Lowe's cache key: which operations are linearized, and the register they produced.
struct CacheKey {
  std::vector<uint64_t> linearized;
  RegisterState state;
  bool operator==(const CacheKey& other) const {
    return linearized == other.linearized && state.exists == other.state.exists &&
           state.value == other.state.value && state.version == other.state.version;
  }
};
struct CacheKeyHash {
  size_t operator()(const CacheKey& key) const {
    uint64_t hash = key.state.value * 31 + key.state.version * 7 + (key.state.exists ? 1 : 0);
    for (uint64_t word : key.linearized) hash = (hash ^ word) * 0x9e3779b97f4a7c15ULL;
    return static_cast<size_t>(hash);
  }
};

// Removes operations with an unknown outcome that no other operation's result can depend on.
// Such an operation may be linearized after everything else (it never completes), where it
// changes nothing anyone observed. And in any linearization of the whole history it can be taken
// out: the state it produced lasted until the next write, and no operation whose result depends
// on the state looked at it. The observers are reads that returned something and conditional
// writes whose outcome is known; an observer linearized in that interval would have to complete
// after the operation's invocation, and either return its value (each written value is unique to
// its write; "no item" for a delete) or be a conditional write. An unknown operation with no such
// observer goes; unknown conditional writes are not observers (their condition's outcome is
// unconstrained), and reads with an unknown outcome observed nothing and go too. A key whose
// history uses expected versions keeps everything, since every write moves the version.
// Removing them leaves the verdict unchanged, and the search no longer tries every place to put
// each, which is what makes histories with many timeouts explode.
size_t prune_unobserved_unknowns(std::vector<RegisterOperation>* history) {
  using Kind = RegisterOperation::Kind;
  using Outcome = RegisterOperation::Outcome;
  std::vector<RegisterOperation>& ops = *history;
  int64_t latest_conditional = INT64_MIN;    // the latest completion of a known conditional write
  int64_t latest_absent_read = INT64_MIN;    // the latest completion of a read that found nothing
  std::unordered_set<uint64_t> values_read;  // membership only
  for (const RegisterOperation& op : ops) {
    if (op.expected_version.has_value()) return 0;
    if (op.kind == Kind::kConditionalWrite && op.outcome != Outcome::kUnknown) {
      latest_conditional = std::max(latest_conditional, op.complete_ns);
    }
    if (op.kind == Kind::kRead && op.outcome == Outcome::kOk) {
      if (op.read_value.has_value()) {
        values_read.insert(*op.read_value);
      } else {
        latest_absent_read = std::max(latest_absent_read, op.complete_ns);
      }
    }
  }
  std::vector<RegisterOperation> kept;
  kept.reserve(ops.size());
  size_t pruned = 0;
  for (const RegisterOperation& op : ops) {
    bool removable = false;
    if (op.outcome == Outcome::kUnknown) {
      if (op.kind == Kind::kRead) {
        removable = true;
      } else {
        const bool observed = op.kind == Kind::kDelete ? latest_absent_read > op.invoke_ns
                                                       : values_read.count(op.value) > 0;
        removable = !observed && latest_conditional <= op.invoke_ns;
      }
    }
    if (removable) {
      ++pruned;
    } else {
      kept.push_back(op);
    }
  }
  ops.swap(kept);
  return pruned;
}

}  // namespace

const char* to_string(LinearizabilityVerdict verdict) {
  switch (verdict) {
    case LinearizabilityVerdict::kLinearizable:
      return "linearizable";
    case LinearizabilityVerdict::kNotLinearizable:
      return "not linearizable";
    case LinearizabilityVerdict::kUnknown:
      return "unknown";
  }
  return "?";
}

KeyCheckResult check_register_history(std::vector<RegisterOperation> history,
                                      const LinearizabilityOptions& options) {
  KeyCheckResult result;
  result.operations_pruned = prune_unobserved_unknowns(&history);
  const size_t count = history.size();
  if (count == 0) return result;
  // Failed conditional writes and lost reads change nothing, but they still constrain order only
  // through their results; they stay in the search like any other operation.
  std::sort(history.begin(), history.end(), [](const auto& a, const auto& b) {
    return a.invoke_ns < b.invoke_ns || (a.invoke_ns == b.invoke_ns && a.id < b.id);
  });
  std::vector<uint64_t> linearized((count + 63) / 64, 0);
  auto is_done = [&](size_t i) { return (linearized[i / 64] >> (i % 64)) & 1; };
  auto set_done = [&](size_t i, bool done) {
    if (done) {
      linearized[i / 64] |= uint64_t{1} << (i % 64);
    } else {
      linearized[i / 64] &= ~(uint64_t{1} << (i % 64));
    }
  };

  // The search, with an explicit stack: each frame is the operation linearized at that depth
  // and the state before it.
  struct Frame {
    size_t operation;
    RegisterState before;
  };
  std::vector<Frame> stack;
  std::unordered_set<CacheKey, CacheKeyHash> seen;  // membership only; never iterated
  RegisterState state;
  size_t deepest = 0;
  std::vector<uint64_t> deepest_linearized = linearized;  // the longest explained prefix
  size_t next_candidate = 0;  // where to resume trying candidates at this depth
  size_t first_undone = 0;    // every operation before it is linearized

  for (;;) {
    if (stack.size() == count) return result;  // every operation explained
    // The earliest completion among operations not yet linearized bounds which can go next: an
    // operation invoked after some other pending one completed cannot precede it.
    while (first_undone < count && is_done(first_undone)) ++first_undone;
    int64_t earliest_completion = INT64_MAX;
    for (size_t i = first_undone; i < count; ++i) {
      if (history[i].invoke_ns > earliest_completion) break;  // sorted: none later completes sooner
      if (!is_done(i)) earliest_completion = std::min(earliest_completion, history[i].complete_ns);
    }
    bool advanced = false;
    for (size_t i = std::max(next_candidate, first_undone); i < count; ++i) {
      if (is_done(i)) continue;
      if (history[i].invoke_ns > earliest_completion) break;  // sorted by invocation
      RegisterState after = state;
      if (!apply(history[i], &after)) continue;
      set_done(i, true);
      CacheKey key{linearized, after};
      if (!seen.insert(std::move(key)).second) {
        set_done(i, false);
        continue;
      }
      if (++result.states_explored > options.max_states_per_key) {
        result.verdict = LinearizabilityVerdict::kUnknown;
        return result;
      }
      stack.push_back(Frame{i, state});
      state = after;
      next_candidate = 0;
      advanced = true;
      if (stack.size() > deepest) {
        deepest = stack.size();
        deepest_linearized = linearized;
      }
      break;
    }
    if (advanced) continue;
    if (stack.empty()) {
      result.verdict = LinearizabilityVerdict::kNotLinearizable;
      // Report the earliest-invoked operation outside the longest prefix any order explained.
      for (size_t i = 0; i < count; ++i) {
        if (((deepest_linearized[i / 64] >> (i % 64)) & 1) == 0) {
          result.first_unexplained = history[i];
          break;
        }
      }
      return result;
    }
    // Backtrack: undo the last choice and try the next candidate at that depth.
    const Frame frame = stack.back();
    stack.pop_back();
    set_done(frame.operation, false);
    first_undone = std::min(first_undone, frame.operation);
    state = frame.before;
    next_candidate = frame.operation + 1;
  }
}

LinearizabilityReport check_history(
    const std::map<std::string, std::vector<RegisterOperation>>& by_key,
    const LinearizabilityOptions& options) {
  LinearizabilityReport report;
  for (const auto& [key, operations] : by_key) {
    ++report.keys_checked;
    report.operations_checked += operations.size();
    const KeyCheckResult result = check_register_history(operations, options);
    if (result.verdict == LinearizabilityVerdict::kUnknown) ++report.keys_unknown;
    if (result.verdict != LinearizabilityVerdict::kNotLinearizable) continue;
    ++report.keys_violated;
    if (report.first_violation.empty() && result.first_unexplained.has_value()) {
      report.first_violation_history = operations;
      std::sort(report.first_violation_history.begin(), report.first_violation_history.end(),
                [](const RegisterOperation& a, const RegisterOperation& b) {
                  return a.invoke_ns < b.invoke_ns;
                });
      char buffer[256];
      const RegisterOperation& op = *result.first_unexplained;
      std::snprintf(buffer, sizeof buffer,
                    "key %s: no order explains operation %" PRIu64 " of client %" PRIu64
                    " (invoked at %" PRId64 " ns)",
                    key.c_str(), op.id, op.client, op.invoke_ns);
      report.first_violation = buffer;
    }
  }
  return report;
}

}  // namespace dynasim::gameday
