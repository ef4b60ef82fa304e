// Per-key linearizability checking of a client history against a register with versions.
//
// The checker stands outside the system (CONVENTIONS.md rule 10): it reads the history clients
// observed (invocation and completion times in true simulated time, arguments, results) and asks
// whether some order of the operations, each taking effect at one instant between its invocation
// and its completion, explains every result. It is the search of Wing and Gong (1993) with the
// memoization Lowe added (2017): a state of the search is (set of operations linearized, register
// state), and a state seen before is not explored again. Keys are independent, so each key's
// history is checked on its own (P-compositionality).
//
// An operation whose outcome the client never learned (a timeout) may have taken effect at any
// moment after its invocation, or never: it gets an infinite completion time, so the search may
// place it anywhere after its call, including after everything else (which is "never" as far as
// any observed result can tell).
//
// The search is bounded. When a key's search exceeds its budget the result is kUnknown, counted
// and reported, never a silent pass.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dynasim::gameday {

// One operation on one key's register. Values are opaque 64-bit digests; the register holds an
// optional value and a version that every successful write or delete increments.
struct RegisterOperation {
  enum class Kind { kRead, kWrite, kDelete, kConditionalWrite };
  enum class Outcome { kOk, kConditionFailed, kUnknown };
  Kind kind = Kind::kRead;
  int64_t invoke_ns = 0;
  int64_t complete_ns = INT64_MAX;  // INT64_MAX when the outcome is unknown
  Outcome outcome = Outcome::kOk;
  uint64_t value = 0;                  // kWrite, kConditionalWrite: the value written
  std::optional<uint64_t> read_value;  // kRead: what was returned (nullopt: no item)
  // kConditionalWrite: the condition, the conjunction of those set: an expected version, an
  // existence, or an expected value (holds iff the register exists and holds exactly that value:
  // DynamoDB's optimistic locking, "ver = :expected", on a version attribute the writer chose).
  std::optional<uint64_t> expected_version;
  std::optional<bool> expected_exists;
  std::optional<uint64_t> expected_value;
  uint64_t client = 0;  // for reports
  uint64_t id = 0;      // for reports
};

enum class LinearizabilityVerdict { kLinearizable, kNotLinearizable, kUnknown };
const char* to_string(LinearizabilityVerdict verdict);

struct KeyCheckResult {
  LinearizabilityVerdict verdict = LinearizabilityVerdict::kLinearizable;
  uint64_t states_explored = 0;
  // Operations with an unknown outcome that nothing observed: taken out before the search, which
  // does not change the verdict (see prune_unobserved_unknowns in linearizability.cc).
  uint64_t operations_pruned = 0;
  // When not linearizable: the operation at which the longest explained prefix got stuck.
  std::optional<RegisterOperation> first_unexplained;
};

struct LinearizabilityOptions {
  uint64_t max_states_per_key = 2'000'000;
};

KeyCheckResult check_register_history(std::vector<RegisterOperation> history,
                                      const LinearizabilityOptions& options = {});

// A whole history, by key.
struct LinearizabilityReport {
  uint64_t keys_checked = 0;
  uint64_t operations_checked = 0;
  uint64_t keys_unknown = 0;
  uint64_t keys_violated = 0;
  std::string first_violation;  // the key and the operation, for the summary
  // Every operation on the first violating key, in invocation order: what a person needs to see
  // why no order explains it.
  std::vector<RegisterOperation> first_violation_history;
  bool passed() const { return keys_violated == 0; }
};

LinearizabilityReport check_history(
    const std::map<std::string, std::vector<RegisterOperation>>& by_key,
    const LinearizabilityOptions& options = {});

}  // namespace dynasim::gameday
