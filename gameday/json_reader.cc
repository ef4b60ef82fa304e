#include "gameday/json_reader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <type_traits>

#include "gameday/units.h"

namespace dynasim::gameday {

namespace {

using nlohmann::json;

// 2^64 as a double: the first value past the uint64_t range.
constexpr double kTwoToThe64 = 18446744073709551616.0;
// Scenario files are small; the limit keeps a wrong path (a disk image, a log) from being read.
constexpr std::uintmax_t kMaxFileBytes = 64 * 1024 * 1024;
// did_you_mean() compares keys and enum values, never long text; the limit bounds its cost.
constexpr std::size_t kMaxSuggestionBytes = 64;
// Lists in messages beyond this many items end in "and N more".
constexpr std::size_t kMaxListedItems = 24;

constexpr std::string_view kExpectedAssignment = R"(an assignment such as "workload.rate=100/s")";
constexpr std::string_view kExpectedOverridePath =
    R"(a path such as "workload.rate" or "faults.timeline[1].at")";

std::string compose_message(const FileLocation& location, const std::string& path,
                            const std::string& expected, const std::string& found,
                            const std::string& hint) {
  std::string message;
  if (!location.file.empty()) {
    message = location.file;
    if (location.line > 0) {
      message += ":" + std::to_string(location.line) + ":" + std::to_string(location.column);
    }
    message += ": ";
  }
  if (!path.empty() && (location.file.empty() || path != "$")) message += path + ": ";
  message += "expected " + expected + ", found " + found;
  if (!hint.empty()) message += " (" + hint + ")";
  return message;
}

std::string ascii_lower(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lowered;
}

// Keys made of letters, digits, "_" and "-" print as ".key"; anything else as ["key"], so a path
// in a message stays unambiguous whatever the key holds (dots, spaces, quotes).
bool is_plain_key(std::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

std::string append_key(const std::string& path, std::string_view key) {
  if (is_plain_key(key)) return path + "." + std::string(key);
  return path + "[" + quote_for_message(key, 200) + "]";
}

std::string append_index(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

// "\"a\"", "\"a\" or \"b\"", "\"a\", \"b\" or \"c\"", long lists cut with "and N more".
std::string quote_list(std::span<const std::string> items, std::string_view conjunction) {
  std::string text;
  const std::size_t shown = std::min(items.size(), kMaxListedItems);
  for (std::size_t i = 0; i < shown; ++i) {
    if (i > 0)
      text +=
          (i + 1 == shown && shown == items.size()) ? " " + std::string(conjunction) + " " : ", ";
    text += quote_for_message(items[i]);
  }
  if (shown < items.size()) text += " and " + std::to_string(items.size() - shown) + " more";
  return text;
}

std::vector<std::string> to_strings(std::initializer_list<std::string_view> items) {
  return std::vector<std::string>(items.begin(), items.end());
}

// A double for a message: whole values without ".0", others in nlohmann/json's shortest form.
std::string format_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "infinity" : "-infinity";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  return json(value).dump();
}

std::string did_you_mean_hint(std::string_view found, const std::vector<std::string>& candidates) {
  const std::string suggestion = did_you_mean(found, candidates);
  return suggestion.empty() ? std::string() : "did you mean " + quote_for_message(suggestion) + "?";
}

// ---- Phrases for "expected ..." -----------------------------------------------------------

template <typename Integer>
std::string integer_phrase(Integer min, Integer max) {
  // For unsigned types the lowest value, 0, is still worth saying: -1 is refused.
  const bool open_below = std::is_signed_v<Integer> && min == std::numeric_limits<Integer>::min();
  const bool open_above = max == std::numeric_limits<Integer>::max();
  if (open_below && open_above) return "an integer";
  if (open_below) return "an integer of at most " + std::to_string(max);
  if (open_above) return "an integer of at least " + std::to_string(min);
  return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
}

std::string number_phrase(double min, double max) {
  const bool open_below = min == -ObjectReader::kNumberMax;
  const bool open_above = max == ObjectReader::kNumberMax;
  if (open_below && open_above) return "a number";
  if (open_below) return "a number of at most " + format_number(max);
  if (open_above) return "a number of at least " + format_number(min);
  return "a number from " + format_number(min) + " to " + format_number(max);
}

// "a duration from 1ms to 1h", "a size of at most 400KB", ...; `open_above` is the type's
// largest value, which is not worth printing.
template <typename Value, typename Format>
std::string unit_range_phrase(std::string_view noun, Value min, Value max, Value lowest,
                              Value open_above, Format format) {
  const std::string article_noun = std::string(noun);
  if (min <= lowest && max >= open_above) return article_noun;
  if (min <= lowest) return article_noun + " of at most " + format(max);
  if (max >= open_above) return article_noun + " of at least " + format(min);
  return article_noun + " from " + format(min) + " to " + format(max);
}

std::string duration_phrase(sim::Duration min, sim::Duration max) {
  return unit_range_phrase("a duration", min, max, sim::Duration(0), ObjectReader::kDurationMax,
                           format_duration_short);
}

std::string bytes_phrase(uint64_t min, uint64_t max) {
  return unit_range_phrase("a size", min, max, uint64_t{0}, ObjectReader::kUintMax, format_bytes);
}

std::string rate_phrase(double min, double max) {
  return unit_range_phrase("a rate", min, max, 0.0, ObjectReader::kNumberMax,
                           [](double value) { return format_number(value) + "/s"; });
}

// ---- Reading one value --------------------------------------------------------------------

// What a reader wanted when it met a value of the wrong JSON type; picks the hint.
enum class Wanted { kString, kEnum, kNumber, kBool, kDuration, kBytes, kRate, kObject, kArray };

// What to do when a value has the wrong JSON type, for the common slips: quotes around a number
// or a bool, no quotes around a string, a bare number where a unit is needed.
std::string wrong_type_hint(const json& value, Wanted wanted) {
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (wanted == Wanted::kNumber) {
      const json reparsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (reparsed.is_number()) return "write the number without quotes";
    }
    if (wanted == Wanted::kBool && (text == "true" || text == "false")) {
      return "write true or false without quotes";
    }
    return {};
  }
  if (wanted == Wanted::kString && (value.is_number() || value.is_boolean())) {
    return "put the value in double quotes: \"" + value.dump() + "\"";
  }
  if (!value.is_number()) return {};
  const std::string number = value.dump();
  switch (wanted) {
    case Wanted::kDuration:
      return "durations need a unit, such as \"" + number + "s\" or \"" + number + "ms\"";
    case Wanted::kBytes:
      return "sizes need a unit, such as \"" + number + "B\" or \"" + number + "KB\"";
    case Wanted::kRate:
      return "rates need a time unit, such as \"" + number + "/s\"";
    default:
      return {};
  }
}

[[noreturn]] void wrong_type(const json& value, const std::string& path, std::string expected,
                             Wanted wanted) {
  throw ScenarioError(path, std::move(expected), describe_json_value(value),
                      wrong_type_hint(value, wanted));
}

std::string read_string(const json& value, const std::string& path) {
  if (!value.is_string()) wrong_type(value, path, "a string", Wanted::kString);
  return value.get<std::string>();
}

std::string enum_phrase(const std::vector<std::string>& allowed) {
  return "one of " + quote_list(allowed, "or");
}

std::string read_enum(const json& value, const std::string& path,
                      const std::vector<std::string>& allowed) {
  if (!value.is_string()) wrong_type(value, path, enum_phrase(allowed), Wanted::kEnum);
  const std::string& text = value.get_ref<const std::string&>();
  if (std::find(allowed.begin(), allowed.end(), text) != allowed.end()) return text;
  throw ScenarioError(path, enum_phrase(allowed), describe_json_value(value),
                      did_you_mean_hint(text, allowed));
}

// A JSON number as an exact 64-bit integer, if it is one: 1e3 (stored as a double) counts; 1.5
// and 1e30 do not. `magnitude` holds |value|, so the whole int64_t and uint64_t ranges fit.
struct WholeNumber {
  bool negative = false;
  uint64_t magnitude = 0;
};

std::optional<WholeNumber> whole_number(const json& value) {
  switch (value.type()) {
    case json::value_t::number_unsigned:
      return WholeNumber{false, value.get<uint64_t>()};
    case json::value_t::number_integer: {
      const int64_t integer = value.get<int64_t>();
      // Unsigned negation keeps INT64_MIN well defined.
      const uint64_t magnitude =
          integer < 0 ? 0 - static_cast<uint64_t>(integer) : static_cast<uint64_t>(integer);
      return WholeNumber{integer < 0, magnitude};
    }
    case json::value_t::number_float: {
      const double number = value.get<double>();
      const double magnitude = std::fabs(number);
      if (!std::isfinite(number) || number != std::trunc(number) || magnitude >= kTwoToThe64) {
        return std::nullopt;
      }
      return WholeNumber{number < 0, static_cast<uint64_t>(magnitude)};
    }
    default:
      return std::nullopt;
  }
}

// Not a whole number, or outside [min, max]: the message is the same, the range says it all.
[[noreturn]] void out_of_range(const json& value, const std::string& path, std::string expected) {
  throw ScenarioError(path, std::move(expected), describe_json_value(value));
}

int64_t read_int(const json& value, const std::string& path, int64_t min, int64_t max) {
  const std::string expected = integer_phrase(min, max);
  if (!value.is_number()) wrong_type(value, path, expected, Wanted::kNumber);
  const std::optional<WholeNumber> whole = whole_number(value);
  const uint64_t limit = whole && whole->negative ? uint64_t{1} << 63 : uint64_t{INT64_MAX};
  if (!whole || whole->magnitude > limit) out_of_range(value, path, expected);
  // Conversion to int64_t is modular in C++20, so 0 - 2^63 becomes INT64_MIN.
  const int64_t integer = whole->negative ? static_cast<int64_t>(0 - whole->magnitude)
                                          : static_cast<int64_t>(whole->magnitude);
  if (integer < min || integer > max) out_of_range(value, path, expected);
  return integer;
}

uint64_t read_uint(const json& value, const std::string& path, uint64_t min, uint64_t max) {
  const std::string expected = integer_phrase(min, max);
  if (!value.is_number()) wrong_type(value, path, expected, Wanted::kNumber);
  const std::optional<WholeNumber> whole = whole_number(value);
  if (!whole || (whole->negative && whole->magnitude != 0) || whole->magnitude < min ||
      whole->magnitude > max) {
    out_of_range(value, path, expected);
  }
  return whole->magnitude;
}

double read_number(const json& value, const std::string& path, double min, double max) {
  const std::string expected = number_phrase(min, max);
  if (!value.is_number()) wrong_type(value, path, expected, Wanted::kNumber);
  const double number = value.get<double>();
  if (!std::isfinite(number) || number < min || number > max) out_of_range(value, path, expected);
  return number;
}

bool read_bool(const json& value, const std::string& path) {
  if (!value.is_boolean()) wrong_type(value, path, "true or false", Wanted::kBool);
  return value.get<bool>();
}

bool is_zero_number(const json& value) {
  const std::optional<WholeNumber> whole = whole_number(value);
  return value.is_number() && whole && whole->magnitude == 0;
}

// The string of a value with a unit, or "0" for the number 0; throws for anything else.
std::string unit_text(const json& value, const std::string& path, std::string_view expected,
                      Wanted wanted) {
  if (is_zero_number(value)) return "0";
  if (!value.is_string()) wrong_type(value, path, std::string(expected), wanted);
  return value.get<std::string>();
}

template <typename Parse>
auto parse_unit_value(const json& value, const std::string& path, std::string_view expected,
                      Wanted wanted, Parse parse) {
  const std::string text = unit_text(value, path, expected, wanted);
  try {
    return parse(text);
  } catch (const UnitError& error) {
    throw ScenarioError(path, error.expected, error.found, error.hint);
  }
}

sim::Duration read_duration(const json& value, const std::string& path, sim::Duration min,
                            sim::Duration max) {
  const sim::Duration duration =
      parse_unit_value(value, path, kExpectedDuration, Wanted::kDuration, parse_duration);
  if (duration < min || duration > max) {
    throw ScenarioError(path, duration_phrase(min, max), describe_json_value(value));
  }
  return duration;
}

uint64_t read_bytes(const json& value, const std::string& path, uint64_t min, uint64_t max) {
  const uint64_t bytes = parse_unit_value(value, path, kExpectedBytes, Wanted::kBytes, parse_bytes);
  if (bytes < min || bytes > max) {
    throw ScenarioError(path, bytes_phrase(min, max), describe_json_value(value));
  }
  return bytes;
}

double read_rate(const json& value, const std::string& path, double min, double max) {
  const double rate =
      parse_unit_value(value, path, kExpectedRate, Wanted::kRate, parse_rate_per_second);
  if (rate < min || rate > max) {
    throw ScenarioError(path, rate_phrase(min, max), describe_json_value(value));
  }
  return rate;
}

std::string array_size_phrase(std::size_t min_size, std::size_t max_size) {
  const auto elements = [](std::size_t count) {
    return std::to_string(count) + (count == 1 ? " element" : " elements");
  };
  if (min_size == max_size) return "an array of exactly " + elements(min_size);
  if (max_size == SIZE_MAX) return "an array of at least " + elements(min_size);
  if (min_size == 0) return "an array of at most " + elements(max_size);
  return "an array of " + std::to_string(min_size) + " to " + elements(max_size);
}

// ---- Parsing files --------------------------------------------------------------------------

// Watches nlohmann/json's parse events to refuse what its DOM would hide: a key repeated in one
// object (the DOM keeps only the last) and nesting deep enough to exhaust the stack in recursive
// code that walks the document later.
class StructureChecker {
 public:
  StructureChecker(std::string file, std::string root_path)
      : file_(std::move(file)), root_path_(std::move(root_path)) {}

  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (frames_.size() >= kMaxJsonDepth) {
          throw ScenarioError(
              path(),
              "at most " + std::to_string(kMaxJsonDepth) + " levels of nested objects and arrays",
              "deeper nesting", "", {file_});
        }
        frames_.push_back(Frame{event == json::parse_event_t::array_start, 0, {}, {}});
        break;
      case json::parse_event_t::key: {
        Frame& frame = frames_.back();
        frame.key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.key).second) {
          throw ScenarioError(path(), "each field once per object",
                              "the field " + quote_for_message(frame.key) + " a second time",
                              "remove one of them; JSON readers silently keep only the last",
                              {file_});
        }
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        element_done();
        break;
      case json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool is_array = false;
    std::size_t index = 0;  // arrays: the element being parsed
    std::string key;        // objects: the member being parsed
    std::set<std::string> keys;
  };

  void element_done() {
    if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
  }

  std::string path() const {
    std::string text = root_path_;
    for (const Frame& frame : frames_) {
      text = frame.is_array ? append_index(text, frame.index) : append_key(text, frame.key);
    }
    return text;
  }

  std::string file_;
  std::string root_path_;
  std::vector<Frame> frames_;
};

// Parses `text`, refusing duplicate keys and deep nesting; parse errors propagate as
// json::parse_error, or with allow_exceptions false the result is discarded.
json parse_checked(std::string_view text, const std::string& file, const std::string& root_path,
                   bool allow_exceptions) {
  StructureChecker checker(file, root_path);
  return json::parse(
      text.begin(), text.end(),
      [&checker](int /*depth*/, json::parse_event_t event, json& parsed) {
        return checker.on_event(event, parsed);
      },
      allow_exceptions);
}

// "the file ends too early", "JSON does not allow comments", ... from the text around the error.
std::string syntax_hint(std::string_view text, std::size_t offset) {
  if (offset >= text.size()) {
    return "the file ends too early; look for a missing \"}\", \"]\" or closing quote";
  }
  const char at = text[offset];
  if (at == '/' || at == '#') return "JSON does not allow comments";
  if (at == '\'') return "JSON strings need double quotes";
  if (at == '}' || at == ']') {
    std::size_t before = offset;
    while (before > 0 && (text[before - 1] == ' ' || text[before - 1] == '\t' ||
                          text[before - 1] == '\n' || text[before - 1] == '\r')) {
      --before;
    }
    if (before > 0 && text[before - 1] == ',') {
      return "JSON does not allow a comma after the last element";
    }
  }
  const std::size_t newline = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  const std::size_t line_start = newline == std::string_view::npos ? 0 : newline + 1;
  const std::size_t excerpt_start = std::max(line_start, offset >= 30 ? offset - 30 : 0);
  std::string_view excerpt = text.substr(excerpt_start, offset - excerpt_start + 10);
  excerpt = excerpt.substr(0, excerpt.find('\n'));
  return "near " + quote_for_message(excerpt, 60);
}

// The parser's explanation can quote raw bytes from the file; escape them (as
// quote_for_message() does) so the message stays printable and valid UTF-8, without the quotes.
std::string printable(const std::string& detail) {
  // The parser echoes the token it choked on, which can be a whole long string; 300 bytes of it
  // are enough. A UTF-8 sequence cut here prints as \xNN, which is harmless.
  const std::string_view shown = std::string_view(detail).substr(0, 300);
  const std::string quoted = quote_for_message(shown, shown.size());
  return quoted.substr(1, quoted.size() - 2) + (shown.size() < detail.size() ? "..." : "");
}

ScenarioError syntax_error(const json::parse_error& error, std::string_view text,
                           const std::string& file) {
  // nlohmann/json counts error.byte from 1 and points just past the offending token.
  const std::size_t offset =
      std::min<std::size_t>(error.byte > 0 ? error.byte - 1 : 0, text.size());
  const std::size_t line =
      1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  const std::size_t newline = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  const std::size_t column = newline == std::string_view::npos ? offset + 1 : offset - newline;
  // Keep the parser's own explanation ("syntax error while parsing object - unexpected ...").
  std::string detail = error.what();
  const std::size_t column_word = detail.find(", column ");
  const std::size_t colon =
      column_word == std::string::npos ? std::string::npos : detail.find(": ", column_word);
  if (colon != std::string::npos) detail = detail.substr(colon + 2);
  if (detail.rfind("syntax error", 0) == 0) detail = "a " + detail;
  return ScenarioError("$", "valid JSON", printable(detail), syntax_hint(text, offset),
                       {file, line, column});
}

// ---- Overrides ------------------------------------------------------------------------------

struct PathStep {
  bool is_index = false;
  std::string key;
  std::size_t index = 0;
};

[[noreturn]] void bad_override_path(std::string_view path_text, std::string hint) {
  throw ScenarioError("--set", std::string(kExpectedOverridePath),
                      path_text.empty() ? "an empty path" : quote_for_message(path_text),
                      std::move(hint));
}

std::vector<PathStep> parse_override_path(std::string_view path_text) {
  std::string_view rest = path_text;
  if (rest == "$") bad_override_path(path_text, "name a field inside the document");
  if (rest.substr(0, 2) == "$.") rest.remove_prefix(2);
  std::vector<PathStep> steps;
  // Bounded by the text: every iteration consumes at least one character.
  while (true) {
    const std::size_t name_end = rest.find_first_of(".[]");
    const std::string_view name = rest.substr(0, name_end);
    if (name.empty()) bad_override_path(path_text, "a field name is empty");
    steps.push_back(PathStep{false, std::string(name), 0});
    rest.remove_prefix(name.size());
    while (!rest.empty() && rest.front() == '[') {
      const std::size_t close = rest.find(']');
      const std::string_view digits =
          rest.substr(1, close == std::string_view::npos ? 0 : close - 1);
      if (close == std::string_view::npos || digits.empty() || digits.size() > 9 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        bad_override_path(path_text, "an index is a number in brackets, as in [1]");
      }
      steps.push_back(
          PathStep{true, {}, static_cast<std::size_t>(std::stoul(std::string(digits)))});
      rest.remove_prefix(close + 1);
    }
    if (rest.empty()) return steps;
    if (rest.front() != '.') bad_override_path(path_text, "separate field names with \".\"");
    rest.remove_prefix(1);
  }
}

json parse_override_value(std::string_view value_text, const std::string& path) {
  const json parsed = parse_checked(value_text, "", path, /*allow_exceptions=*/false);
  // Text that is not JSON is a string, so --set workload.rate=100/s needs no inner quotes.
  return parsed.is_discarded() ? json(std::string(value_text)) : parsed;
}

}  // namespace

// ---- ScenarioError --------------------------------------------------------------------------

ScenarioError::ScenarioError(std::string path_text, std::string expected_text,
                             std::string found_text, std::string hint_text, FileLocation location)
    : std::runtime_error(
          compose_message(location, path_text, expected_text, found_text, hint_text)),
      path(std::move(path_text)),
      expected(std::move(expected_text)),
      found(std::move(found_text)),
      hint(std::move(hint_text)),
      file(std::move(location.file)),
      line(location.line),
      column(location.column) {}

ScenarioError ScenarioError::with_file(std::string file_path) const {
  ScenarioError copy(path, expected, found, hint, {std::move(file_path), line, column});
  copy.known_fields = known_fields;
  return copy;
}

// ---- ObjectReader ---------------------------------------------------------------------------

ObjectReader::ObjectReader(const json& value, std::string path)
    : object_(&value), path_(std::move(path)) {
  if (!value.is_object()) wrong_type(value, path_, "an object", Wanted::kObject);
}

const json* ObjectReader::find(std::string_view key) {
  known_keys_.emplace(key);
  const auto found = object_->find(std::string(key));
  return found == object_->end() ? nullptr : &*found;
}

const json& ObjectReader::require(std::string_view key, const std::string& expected) {
  if (const json* value = find(key)) return *value;
  // A present key nobody asked about yet, close to the missing one, is probably a typo for it.
  std::vector<std::string> unread;
  for (const auto& item : object_->items()) {
    if (!known_keys_.contains(item.key())) unread.push_back(item.key());
  }
  std::string hint = "a required field is missing";
  const std::string typo = did_you_mean(key, unread);
  if (!typo.empty()) {
    hint += "; is " + quote_for_message(typo) + " a typo for " + quote_for_message(key) + "?";
  }
  throw ScenarioError(child_path(key), expected, "nothing", hint);
}

std::string ObjectReader::required_string(std::string_view key) {
  return read_string(require(key, "a string"), child_path(key));
}

std::string ObjectReader::optional_string(std::string_view key, std::string fallback) {
  const json* value = find(key);
  return value ? read_string(*value, child_path(key)) : fallback;
}

std::string ObjectReader::required_enum(std::string_view key,
                                        std::initializer_list<std::string_view> allowed) {
  const std::vector<std::string> names = to_strings(allowed);
  return read_enum(require(key, enum_phrase(names)), child_path(key), names);
}

std::string ObjectReader::optional_enum(std::string_view key,
                                        std::initializer_list<std::string_view> allowed,
                                        std::string fallback) {
  const json* value = find(key);
  return value ? read_enum(*value, child_path(key), to_strings(allowed)) : fallback;
}

int64_t ObjectReader::required_int(std::string_view key, int64_t min, int64_t max) {
  return read_int(require(key, integer_phrase(min, max)), child_path(key), min, max);
}

int64_t ObjectReader::optional_int(std::string_view key, int64_t fallback, int64_t min,
                                   int64_t max) {
  const json* value = find(key);
  return value ? read_int(*value, child_path(key), min, max) : fallback;
}

uint64_t ObjectReader::required_uint(std::string_view key, uint64_t min, uint64_t max) {
  return read_uint(require(key, integer_phrase(min, max)), child_path(key), min, max);
}

uint64_t ObjectReader::optional_uint(std::string_view key, uint64_t fallback, uint64_t min,
                                     uint64_t max) {
  const json* value = find(key);
  return value ? read_uint(*value, child_path(key), min, max) : fallback;
}

double ObjectReader::required_number(std::string_view key, double min, double max) {
  return read_number(require(key, number_phrase(min, max)), child_path(key), min, max);
}

double ObjectReader::optional_number(std::string_view key, double fallback, double min,
                                     double max) {
  const json* value = find(key);
  return value ? read_number(*value, child_path(key), min, max) : fallback;
}

bool ObjectReader::required_bool(std::string_view key) {
  return read_bool(require(key, "true or false"), child_path(key));
}

bool ObjectReader::optional_bool(std::string_view key, bool fallback) {
  const json* value = find(key);
  return value ? read_bool(*value, child_path(key)) : fallback;
}

sim::Duration ObjectReader::required_duration(std::string_view key, sim::Duration min,
                                              sim::Duration max) {
  return read_duration(require(key, std::string(kExpectedDuration)), child_path(key), min, max);
}

sim::Duration ObjectReader::optional_duration(std::string_view key, sim::Duration fallback,
                                              sim::Duration min, sim::Duration max) {
  const json* value = find(key);
  return value ? read_duration(*value, child_path(key), min, max) : fallback;
}

uint64_t ObjectReader::required_bytes(std::string_view key, uint64_t min, uint64_t max) {
  return read_bytes(require(key, std::string(kExpectedBytes)), child_path(key), min, max);
}

uint64_t ObjectReader::optional_bytes(std::string_view key, uint64_t fallback, uint64_t min,
                                      uint64_t max) {
  const json* value = find(key);
  return value ? read_bytes(*value, child_path(key), min, max) : fallback;
}

double ObjectReader::required_rate(std::string_view key, double min, double max) {
  return read_rate(require(key, std::string(kExpectedRate)), child_path(key), min, max);
}

double ObjectReader::optional_rate(std::string_view key, double fallback, double min, double max) {
  const json* value = find(key);
  return value ? read_rate(*value, child_path(key), min, max) : fallback;
}

ObjectReader ObjectReader::object(std::string_view key) {
  return ObjectReader(require(key, "an object"), child_path(key));
}

std::optional<ObjectReader> ObjectReader::optional_object(std::string_view key) {
  const json* value = find(key);
  if (!value) return std::nullopt;
  return ObjectReader(*value, child_path(key));
}

ArrayReader ObjectReader::array(std::string_view key) {
  return ArrayReader(require(key, "an array"), child_path(key));
}

std::optional<ArrayReader> ObjectReader::optional_array(std::string_view key) {
  const json* value = find(key);
  if (!value) return std::nullopt;
  return ArrayReader(*value, child_path(key));
}

bool ObjectReader::has(std::string_view key) const {
  return object_->contains(std::string(key));
}

const json& ObjectReader::raw(std::string_view key) {
  return require(key, "a value");
}

std::string ObjectReader::child_path(std::string_view key) const {
  return append_key(path_, key);
}

void ObjectReader::allow(std::initializer_list<std::string_view> keys) {
  for (const std::string_view key : keys) known_keys_.emplace(key);
}

void ObjectReader::finish() const {
  for (const auto& item : object_->items()) {
    if (known_keys_.contains(item.key())) continue;
    const std::vector<std::string> known(known_keys_.begin(), known_keys_.end());
    const std::string expected = known.empty() ? std::string("no fields here")
                                               : "one of the fields " + quote_list(known, "or");
    std::string hint = did_you_mean_hint(item.key(), known);
    if (hint.empty()) hint = "check the spelling, or remove the field";
    ScenarioError error(child_path(item.key()), expected,
                        "the unknown field " + quote_for_message(item.key()), hint);
    error.known_fields = known;
    throw error;
  }
}

// ---- ArrayReader ----------------------------------------------------------------------------

ArrayReader::ArrayReader(const json& value, std::string path)
    : array_(&value), path_(std::move(path)) {
  if (!value.is_array()) wrong_type(value, path_, "an array", Wanted::kArray);
}

const ArrayReader& ArrayReader::require_size(std::size_t min_size, std::size_t max_size) const {
  if (size() < min_size || size() > max_size) {
    throw ScenarioError(path_, array_size_phrase(min_size, max_size), describe_json_value(*array_));
  }
  return *this;
}

const json& ArrayReader::element(std::size_t index) const {
  if (index >= size()) {
    throw std::out_of_range(element_path(index) + ": index past the end of an array of " +
                            std::to_string(size()) + " elements");
  }
  return (*array_)[index];
}

ObjectReader ArrayReader::object(std::size_t index) const {
  return ObjectReader(element(index), element_path(index));
}

ArrayReader ArrayReader::array(std::size_t index) const {
  return ArrayReader(element(index), element_path(index));
}

std::string ArrayReader::string(std::size_t index) const {
  return read_string(element(index), element_path(index));
}

std::string ArrayReader::enumeration(std::size_t index,
                                     std::initializer_list<std::string_view> allowed) const {
  return read_enum(element(index), element_path(index), to_strings(allowed));
}

int64_t ArrayReader::integer(std::size_t index, int64_t min, int64_t max) const {
  return read_int(element(index), element_path(index), min, max);
}

double ArrayReader::number(std::size_t index, double min, double max) const {
  return read_number(element(index), element_path(index), min, max);
}

sim::Duration ArrayReader::duration(std::size_t index, sim::Duration min, sim::Duration max) const {
  return read_duration(element(index), element_path(index), min, max);
}

uint64_t ArrayReader::bytes(std::size_t index, uint64_t min, uint64_t max) const {
  return read_bytes(element(index), element_path(index), min, max);
}

const json& ArrayReader::raw(std::size_t index) const {
  return element(index);
}

std::string ArrayReader::element_path(std::size_t index) const {
  return append_index(path_, index);
}

// ---- Free functions -------------------------------------------------------------------------

json parse_json_text(const std::string& text, const std::string& file_path) {
  try {
    return parse_checked(text, file_path, "$", /*allow_exceptions=*/true);
  } catch (const json::parse_error& error) {
    throw syntax_error(error, text, file_path);
  } catch (const json::exception& error) {
    // Not a syntax error but still unreadable, e.g. out_of_range.406 for the number 1e400. No
    // position is known; drop the "[json.exception.out_of_range.406] " prefix.
    std::string detail = error.what();
    const std::size_t prefix_end = detail.find("] ");
    if (prefix_end != std::string::npos) detail = detail.substr(prefix_end + 2);
    throw ScenarioError("$", "valid JSON", printable(detail),
                        error.id == 406 ? "numbers must fit in a 64-bit floating-point value" : "",
                        {file_path});
  }
}

json parse_json_file(const std::string& file_path) {
  namespace fs = std::filesystem;
  // Every problem here is about the file as a whole, so the JSON path is just "$".
  const auto file_error = [&file_path](std::string expected, std::string found,
                                       std::string hint = {}) {
    return ScenarioError("$", std::move(expected), std::move(found), std::move(hint), {file_path});
  };
  const std::string readable = "a readable JSON file";
  std::error_code error_code;
  const fs::file_status status = fs::status(file_path, error_code);
  if (!fs::exists(status)) {
    throw file_error(readable, "no file at that path",
                     "relative paths start from the current directory, " +
                         fs::current_path(error_code).string());
  }
  if (fs::is_directory(status)) throw file_error(readable, "a directory");
  if (fs::is_regular_file(status)) {
    const std::uintmax_t size = fs::file_size(file_path, error_code);
    if (!error_code && size > kMaxFileBytes) {
      throw file_error("a JSON file of at most 64MB",
                       "a file of " + std::to_string(size) + " bytes");
    }
  }
  std::ifstream input(file_path, std::ios::binary);
  if (!input) throw file_error(readable, "a file that cannot be opened", "check its permissions");
  const std::string text((std::istreambuf_iterator<char>(input)), std::istreambuf_iterator<char>());
  if (input.bad()) throw file_error(readable, "a read error");
  return parse_json_text(text, file_path);
}

void apply_override(json& document, std::string_view assignment) {
  const std::size_t equals = assignment.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    throw ScenarioError("--set", std::string(kExpectedAssignment),
                        assignment.empty() ? "an empty string" : quote_for_message(assignment),
                        "write --set <path>=<value>");
  }
  const std::vector<PathStep> steps = parse_override_path(assignment.substr(0, equals));

  // Work on a copy so a failing override leaves the document as it was.
  json updated = document;
  json* current = &updated;
  std::string path = "$";
  for (const PathStep& step : steps) {
    if (!step.is_index) {
      if (current->is_null()) *current = json::object();
      if (!current->is_object()) {
        throw ScenarioError(
            path, "an object, so that " + quote_for_message(step.key) + " can be set in it",
            describe_json_value(*current));
      }
      current = &(*current)[step.key];
      path = append_key(path, step.key);
      continue;
    }
    if (!current->is_array()) {
      throw ScenarioError(
          path, "an array, so that element [" + std::to_string(step.index) + "] can be set",
          describe_json_value(*current), current->is_null() ? "--set does not create arrays" : "");
    }
    if (step.index >= current->size()) {
      const std::string expected =
          current->empty() ? std::string("an index into a non-empty array")
                           : "an index from 0 to " + std::to_string(current->size() - 1);
      throw ScenarioError(append_index(path, step.index), expected,
                          "index " + std::to_string(step.index) + ", past the end of an array of " +
                              std::to_string(current->size()) + " elements",
                          "--set changes existing elements; it does not add new ones");
    }
    current = &(*current)[step.index];
    path = append_index(path, step.index);
  }
  *current = parse_override_value(assignment.substr(equals + 1), path);
  document = std::move(updated);
}

namespace {

std::size_t optimal_string_alignment_distance(std::string_view a, std::string_view b) {
  // Three rows of the dynamic-programming table: the transposition step looks two rows back.
  std::vector<std::size_t> two_back(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], two_back[j - 2] + 1);
      }
    }
    std::swap(two_back, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

}  // namespace

std::string did_you_mean(std::string_view found, const std::vector<std::string>& candidates) {
  if (found.size() > kMaxSuggestionBytes) return {};
  if (std::find(candidates.begin(), candidates.end(), found) != candidates.end()) return {};
  const std::string lowered_found = ascii_lower(found);
  const std::string* best = nullptr;
  std::size_t best_distance = SIZE_MAX;
  for (const std::string& candidate : candidates) {
    if (candidate.size() > kMaxSuggestionBytes) continue;
    const std::size_t distance =
        optimal_string_alignment_distance(lowered_found, ascii_lower(candidate));
    const std::size_t longer = std::max(found.size(), candidate.size());
    const bool close = distance <= std::max<std::size_t>(2, longer / 3) &&
                       distance < found.size() && distance < candidate.size();
    if (close && distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best ? *best : std::string();
}

std::string describe_json_value(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "the number " + value.dump();
    case json::value_t::number_float: {
      const double number = value.get<double>();
      return "the number " + (std::isfinite(number) ? value.dump() : format_number(number));
    }
    case json::value_t::string: {
      const std::string& text = value.get_ref<const std::string&>();
      return text.empty() ? "an empty string" : quote_for_message(text);
    }
    case json::value_t::object: {
      if (value.empty()) return "an empty object";
      std::vector<std::string> keys;
      for (const auto& item : value.items()) {
        if (keys.size() == 3) break;
        keys.push_back(item.key());
      }
      std::string text = value.size() == 1 ? "an object with the field " : "an object with fields ";
      for (std::size_t i = 0; i < keys.size(); ++i) {
        text += (i > 0 ? ", " : "") + quote_for_message(keys[i], 24);
      }
      if (value.size() > keys.size()) {
        text += " and " + std::to_string(value.size() - keys.size()) + " more";
      }
      return text;
    }
    case json::value_t::array:
      if (value.empty()) return "an empty array";
      return "an array of " + std::to_string(value.size()) +
             (value.size() == 1 ? " element" : " elements");
    case json::value_t::binary:
      return "binary data";
    case json::value_t::discarded:
      return "nothing";
  }
  return "an unknown value";
}

}  // namespace dynasim::gameday
