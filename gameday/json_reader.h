// A validating reader over nlohmann::json, the one layer every scenario loader goes through
// (ARCHITECTURE.md, "The driver": bad input stops with an error that names the field path and
// what was expected; CONVENTIONS.md rule 11: units in values, validated with a clear error).
//
// A loader wraps each JSON object in an ObjectReader, asks for every field it knows with the
// expected type and range, and calls finish() at the end. Every problem becomes a ScenarioError
// whose message names the JSON path, what was expected, what was found and, where obvious, what
// to do:
//   $.faults.timeline[2].at: expected a duration such as "250us", "1.5s" or "5m", found the
//   number 300 (durations need a unit, such as "300s" or "300ms")
//   $.workload.durration: expected one of the fields "duration" or "rate", found the unknown
//   field "durration" (did you mean "duration"?)
//
// Readers hold a pointer into the document: REQUIRES the nlohmann::json they read to outlive
// them. A reader records every key it was asked about (present or not) and every key declared
// with allow(); finish() refuses any other key, which is how typos in optional fields are caught.
// Values are strict: JSON null is not "absent", a quoted number is not a number, a bare number is
// not a duration (except 0). Object keys are visited in std::map order, so the first unknown
// field reported is the same on every run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sim/time.h"

namespace dynasim::gameday {

// Where in a file a problem is; line and column are 1-based, 0 when unknown.
struct FileLocation {
  std::string file;
  std::size_t line = 0;
  std::size_t column = 0;
};

// A problem with a scenario document or a --set override. what() is the full message:
//   [<file>[:<line>:<column>]: ][<path>: ]expected <expected>, found <found>[ (<hint>)]
// The path is left out when a file location is given and the path is just "$". A missing field
// reads "found nothing (a required field is missing)".
struct ScenarioError : std::runtime_error {
  ScenarioError(std::string path_text, std::string expected_text, std::string found_text,
                std::string hint_text = {}, FileLocation location = {});

  // A copy whose message starts with `file_path`, for loaders that know which file they read:
  //   catch (const ScenarioError& e) { throw e.with_file(file); }
  ScenarioError with_file(std::string file_path) const;

  std::string path;      // "$.faults.timeline[2].at"; "--set" for a malformed override
  std::string expected;  // "a duration such as \"250us\", \"1.5s\" or \"5m\""
  std::string found;     // "the number 300", "\"5 minutes\"", "nothing"
  std::string hint;      // "did you mean \"duration\"?" or empty
  std::string file;      // set by parse_json_file and with_file(); otherwise empty
  std::size_t line = 0;  // 1-based, for JSON syntax errors only; 0 when unknown
  std::size_t column = 0;
  // For an unknown field (ObjectReader::finish): every field known at that level, sorted; the
  // message lists at most 24 of them. Empty for other errors.
  std::vector<std::string> known_fields;
};

class ArrayReader;

// Reads one JSON object. Every accessor takes the key; required_* throw when the key is absent
// ("found nothing (a required field is missing)"), optional_* return the fallback when it is
// absent, and both throw when the value has the wrong type or is out of [min, max].
class ObjectReader {
 public:
  static constexpr int64_t kIntMin = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kIntMax = std::numeric_limits<int64_t>::max();
  static constexpr uint64_t kUintMax = std::numeric_limits<uint64_t>::max();
  static constexpr double kNumberMax = std::numeric_limits<double>::infinity();
  static constexpr sim::Duration kDurationMax = sim::Duration(kIntMax);

  // Throws ScenarioError if `value` is not an object. `path` names it in messages, e.g. "$".
  ObjectReader(const nlohmann::json& value, std::string path);
  ObjectReader(nlohmann::json&& value, std::string path) = delete;  // would dangle

  std::string required_string(std::string_view key);
  std::string optional_string(std::string_view key, std::string fallback);

  // A string from `allowed`; the error lists the allowed values and suggests the closest.
  std::string required_enum(std::string_view key, std::initializer_list<std::string_view> allowed);
  std::string optional_enum(std::string_view key, std::initializer_list<std::string_view> allowed,
                            std::string fallback);

  // Whole numbers. 1e3 counts as the integer 1000; 1.5 and "3" are refused.
  int64_t required_int(std::string_view key, int64_t min = kIntMin, int64_t max = kIntMax);
  int64_t optional_int(std::string_view key, int64_t fallback, int64_t min = kIntMin,
                       int64_t max = kIntMax);
  uint64_t required_uint(std::string_view key, uint64_t min = 0, uint64_t max = kUintMax);
  uint64_t optional_uint(std::string_view key, uint64_t fallback, uint64_t min = 0,
                         uint64_t max = kUintMax);

  // Any finite JSON number. Pass -kNumberMax or kNumberMax for an open end of the range.
  double required_number(std::string_view key, double min = -kNumberMax, double max = kNumberMax);
  double optional_number(std::string_view key, double fallback, double min = -kNumberMax,
                         double max = kNumberMax);

  bool required_bool(std::string_view key);
  bool optional_bool(std::string_view key, bool fallback);

  // Values with units, see gameday/units.h. The JSON number 0 is also accepted, as is "0"; any
  // other number is refused with a hint to add a unit. A range error names the range in units.
  sim::Duration required_duration(std::string_view key, sim::Duration min = sim::Duration(0),
                                  sim::Duration max = kDurationMax);
  sim::Duration optional_duration(std::string_view key, sim::Duration fallback,
                                  sim::Duration min = sim::Duration(0),
                                  sim::Duration max = kDurationMax);

  uint64_t required_bytes(std::string_view key, uint64_t min = 0, uint64_t max = kUintMax);
  uint64_t optional_bytes(std::string_view key, uint64_t fallback, uint64_t min = 0,
                          uint64_t max = kUintMax);

  // Events per second from a string such as "100/s".
  double required_rate(std::string_view key, double min = 0, double max = kNumberMax);
  double optional_rate(std::string_view key, double fallback, double min = 0,
                       double max = kNumberMax);

  ObjectReader object(std::string_view key);
  std::optional<ObjectReader> optional_object(std::string_view key);
  ArrayReader array(std::string_view key);
  std::optional<ArrayReader> optional_array(std::string_view key);

  // Whether the key is present. Does not count as reading it.
  bool has(std::string_view key) const;
  // The value itself, for shapes this reader does not cover. Counts as reading the key; throws
  // ScenarioError when it is absent.
  const nlohmann::json& raw(std::string_view key);

  const std::string& path() const { return path_; }
  // "$.workload" + "rate" -> "$.workload.rate"; keys that are not plain words are quoted:
  // "$.tables[\"my table\"]".
  std::string child_path(std::string_view key) const;

  // Declares keys that are known but intentionally not read here (read elsewhere, reserved or
  // deprecated), so finish() accepts them and hints can suggest them.
  void allow(std::initializer_list<std::string_view> keys);

  // Throws ScenarioError for the first key (in key order) that was neither asked about nor
  // allowed: "found the unknown field ...", listing the known fields and the closest one.
  void finish() const;

 private:
  // The value for `key`, or nullptr when absent. Either way the key becomes known.
  const nlohmann::json* find(std::string_view key);
  // The value for `key`; throws "a required field is missing" when absent.
  const nlohmann::json& require(std::string_view key, const std::string& expected);

  const nlohmann::json* object_;
  std::string path_;
  std::set<std::string, std::less<>> known_keys_;
};

// Reads one JSON array. Element paths look like "$.faults.timeline[3]".
class ArrayReader {
 public:
  // Throws ScenarioError if `value` is not an array.
  ArrayReader(const nlohmann::json& value, std::string path);
  ArrayReader(nlohmann::json&& value, std::string path) = delete;  // would dangle

  std::size_t size() const { return array_->size(); }
  bool empty() const { return array_->empty(); }
  // Throws ScenarioError unless min_size <= size() <= max_size; returns *this for chaining.
  const ArrayReader& require_size(std::size_t min_size, std::size_t max_size) const;

  // Element accessors. REQUIRES index < size(); a larger index is a bug in the loader and throws
  // std::out_of_range. A wrong element type throws ScenarioError.
  ObjectReader object(std::size_t index) const;
  ArrayReader array(std::size_t index) const;
  std::string string(std::size_t index) const;
  std::string enumeration(std::size_t index, std::initializer_list<std::string_view> allowed) const;
  int64_t integer(std::size_t index, int64_t min = ObjectReader::kIntMin,
                  int64_t max = ObjectReader::kIntMax) const;
  double number(std::size_t index, double min = -ObjectReader::kNumberMax,
                double max = ObjectReader::kNumberMax) const;
  sim::Duration duration(std::size_t index, sim::Duration min = sim::Duration(0),
                         sim::Duration max = ObjectReader::kDurationMax) const;
  uint64_t bytes(std::size_t index, uint64_t min = 0, uint64_t max = ObjectReader::kUintMax) const;
  const nlohmann::json& raw(std::size_t index) const;

  const std::string& path() const { return path_; }
  std::string element_path(std::size_t index) const;

 private:
  const nlohmann::json& element(std::size_t index) const;

  const nlohmann::json* array_;
  std::string path_;
};

// Reads and parses a JSON file. Throws ScenarioError with file set and path "$" when the file
// cannot be read, is not valid JSON (line and column set, with a hint for comments, trailing
// commas and single quotes), repeats a key in one object (nlohmann/json would silently keep the
// last one), or nests deeper than kMaxJsonDepth.
inline constexpr std::size_t kMaxJsonDepth = 64;
nlohmann::json parse_json_file(const std::string& file_path);
// The same checks on text already read; `file_path` only names it in errors.
nlohmann::json parse_json_text(const std::string& text, const std::string& file_path);

// Applies one "--set path=value" override. The path uses the reader's syntax without "$."
// (which is also accepted): "workload.rate", "faults.timeline[1].at". The value is parsed as JSON
// if it parses ("5" is a number, "true" a bool, "{}" an object), otherwise taken as a string
// ("5m"). Missing objects along the path are created; arrays are not, and an index must be
// within the existing array. Keys containing ".", "[" or "]" cannot be addressed. The override
// is applied to a copy first, so on a ScenarioError (path "--set" for a malformed assignment, the
// JSON path of the problem otherwise) the document is unchanged.
void apply_override(nlohmann::json& document, std::string_view assignment);

// The candidate closest to `found` by optimal-string-alignment distance (Damerau-Levenshtein
// where no substring is edited twice), ignoring ASCII case, if it is close enough to be a likely
// typo: distance <= max(2, longer length / 3) and smaller than both lengths. Returns "" when
// nothing qualifies, when `found` equals a candidate exactly, or for strings over 64 bytes. Ties
// go to the earlier candidate.
std::string did_you_mean(std::string_view found, const std::vector<std::string>& candidates);

// A short description of a JSON value for "found ..." in messages: null, true, the number 300,
// "5 minutes", an empty string, an object with fields "a", "b", an array of 3 elements. Long
// strings are abbreviated. Never recurses, so any nesting depth is safe.
std::string describe_json_value(const nlohmann::json& value);

}  // namespace dynasim::gameday
