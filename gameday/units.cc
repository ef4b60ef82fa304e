#include "gameday/units.h"

#include <cstdio>
#include <iterator>
#include <numeric>
#include <span>

namespace dynasim::gameday {

namespace {

// A unit a parser accepts, with its size in the parser's base unit (ns, bytes or seconds).
struct Unit {
  std::string_view name;
  uint64_t scale;
};

// A spelling people write that is not accepted but clearly means `unit` ("minutes" for "m").
// Spellings are lower case; lookups fold the written unit to lower case first.
struct Alias {
  std::string_view spelling;
  std::string_view unit;
};

constexpr uint64_t kNanosecondsPerSecond = 1'000'000'000;
constexpr uint64_t kKibi = uint64_t{1} << 10;

constexpr Unit kDurationUnits[] = {
    {"ns", 1},
    {"us", 1'000},
    {"ms", 1'000'000},
    {"s", kNanosecondsPerSecond},
    {"m", 60 * kNanosecondsPerSecond},
    {"h", 3'600 * kNanosecondsPerSecond},
    {"d", 86'400 * kNanosecondsPerSecond},
};
constexpr Alias kDurationAliases[] = {
    {"nsec", "ns"},      {"nanosecond", "ns"},  {"nanoseconds", "ns"},  {"usec", "us"},
    {"\xC2\xB5s", "us"}, {"\xCE\xBCs", "us"},   {"microsecond", "us"},  {"microseconds", "us"},
    {"msec", "ms"},      {"millisecond", "ms"}, {"milliseconds", "ms"}, {"sec", "s"},
    {"secs", "s"},       {"second", "s"},       {"seconds", "s"},       {"min", "m"},
    {"mins", "m"},       {"minute", "m"},       {"minutes", "m"},       {"hr", "h"},
    {"hrs", "h"},        {"hour", "h"},         {"hours", "h"},         {"day", "d"},
    {"days", "d"},
};

constexpr Unit kByteUnits[] = {
    {"B", 1},
    {"KB", kKibi},
    {"KiB", kKibi},
    {"MB", kKibi* kKibi},
    {"MiB", kKibi* kKibi},
    {"GB", kKibi* kKibi* kKibi},
    {"GiB", kKibi* kKibi* kKibi},
    {"TB", kKibi* kKibi* kKibi* kKibi},
    {"TiB", kKibi* kKibi* kKibi* kKibi},
    {"PB", kKibi* kKibi* kKibi* kKibi* kKibi},
    {"PiB", kKibi* kKibi* kKibi* kKibi* kKibi},
};
constexpr Alias kByteAliases[] = {
    {"byte", "B"},       {"bytes", "B"},      {"k", "KB"},         {"kilobyte", "KB"},
    {"kilobytes", "KB"}, {"m", "MB"},         {"megabyte", "MB"},  {"megabytes", "MB"},
    {"g", "GB"},         {"gigabyte", "GB"},  {"gigabytes", "GB"}, {"t", "TB"},
    {"terabyte", "TB"},  {"terabytes", "TB"}, {"p", "PB"},
};

constexpr Unit kRateUnits[] = {{"s", 1}, {"m", 60}, {"h", 3'600}, {"d", 86'400}};
constexpr Alias kRateAliases[] = {
    {"sec", "s"}, {"second", "s"}, {"min", "m"}, {"minute", "m"},
    {"hr", "h"},  {"hour", "h"},   {"day", "d"},
};

// Everything the messages need to know about one kind of value.
struct Kind {
  std::string_view expected;
  std::string_view plural;  // "durations"
  std::span<const Unit> units;
  std::span<const Alias> aliases;
  std::string_view unit_list;         // ends "the units are ..."
  std::string_view example_units[2];  // for "<kind> need a unit, such as ..."
  std::string_view not_whole;
  std::string_view too_many_decimals;
  std::string_view too_large;
};

constexpr Kind kDuration = {
    kExpectedDuration,
    "durations",
    kDurationUnits,
    kDurationAliases,
    "the units are ns, us, ms, s, m (minutes), h and d",
    {"s", "ms"},
    "durations are whole nanoseconds, and this one has a fraction of a nanosecond",
    // A duration with more than 19 significant decimals can never be whole nanoseconds.
    "durations are whole nanoseconds, and this one has a fraction of a nanosecond",
    "longer than the longest duration, 106751d (about 292 years)",
};

constexpr Kind kBytes = {
    kExpectedBytes,
    "sizes",
    kByteUnits,
    kByteAliases,
    "the units are B, KB, MB, GB, TB and PB, with 1KB = 1024B (KiB, MiB, ... also work)",
    {"B", "KB"},
    "sizes are whole bytes, and this one has a fraction of a byte",
    "too many digits after the decimal point; write the size in a smaller unit",
    "larger than the largest size, 18446744073709551615B",
};

constexpr Kind kRate = {
    kExpectedRate,
    "rates",
    kRateUnits,
    kRateAliases,
    "rates are a count per s, m, h or d, written like \"100/s\"",
    {"/s", "/m"},
    "",
    "",
    "",
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Locale-independent on purpose: std::isspace depends on the C locale.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim_spaces(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::string ascii_lower(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lowered;
}

[[noreturn]] void fail(const Kind& kind, std::string_view text, std::string hint) {
  std::string found = text.empty() ? std::string("an empty string") : quote_for_message(text);
  throw UnitError(std::string(kind.expected), std::move(found), std::move(hint));
}

// Length of the well-formed UTF-8 sequence (RFC 3629) starting at text[index], or 0 if there is
// none there.
std::size_t utf8_sequence_length(std::string_view text, std::size_t index) {
  const auto byte = [&](std::size_t offset) -> unsigned {
    return index + offset < text.size() ? static_cast<unsigned char>(text[index + offset]) : 0;
  };
  const auto continuation = [&](std::size_t offset, unsigned low, unsigned high) {
    const unsigned b = byte(offset);
    return b >= low && b <= high;
  };
  const unsigned lead = byte(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1, 0x80, 0xBF) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    const unsigned low = lead == 0xE0 ? 0xA0 : 0x80;   // no overlong forms
    const unsigned high = lead == 0xED ? 0x9F : 0xBF;  // no UTF-16 surrogates
    return continuation(1, low, high) && continuation(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    const unsigned low = lead == 0xF0 ? 0x90 : 0x80;
    const unsigned high = lead == 0xF4 ? 0x8F : 0xBF;  // nothing past U+10FFFF
    return continuation(1, low, high) && continuation(2, 0x80, 0xBF) && continuation(3, 0x80, 0xBF)
               ? 4
               : 0;
  }
  return 0;
}

void append_escaped_ascii(std::string& out, unsigned char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\t':
      out += "\\t";
      return;
    case '\r':
      out += "\\r";
      return;
    default:
      break;
  }
  if (c < 0x20 || c == 0x7F) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "\\u%04X", static_cast<unsigned>(c));
    out += buffer;
  } else {
    out += static_cast<char>(c);
  }
}

// A number written at the start of a value, split into its parts. The fraction has its trailing
// zeros removed, so "1.50s" and "1.5s" scale the same way.
struct Decimal {
  std::string_view written;  // the number as written, e.g. "1.50"
  std::string_view integer_digits;
  std::string_view fraction_digits;
  std::string_view rest;  // whatever follows the number: the unit
};

Decimal split_decimal(const Kind& kind, std::string_view text) {
  if (text.empty()) fail(kind, text, "");
  const char first = text.front();
  if (is_space(first)) fail(kind, text, "remove the spaces around the value");
  if (first == '-') fail(kind, text, std::string(kind.plural) + " cannot be negative");
  if (first == '+') fail(kind, text, "remove the \"+\" sign");
  if (first == '.') {
    fail(kind, text,
         "write a digit before the decimal point, as in " +
             quote_for_message("0" + std::string(text)));
  }
  if (!is_digit(first)) fail(kind, text, "");

  std::size_t position = 0;
  while (position < text.size() && is_digit(text[position])) ++position;
  Decimal number;
  number.integer_digits = text.substr(0, position);
  if (position < text.size() && text[position] == '.') {
    const std::size_t fraction_start = ++position;
    while (position < text.size() && is_digit(text[position])) ++position;
    if (position == fraction_start) {
      fail(kind, text, "write at least one digit after the decimal point");
    }
    std::string_view fraction = text.substr(fraction_start, position - fraction_start);
    while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
    number.fraction_digits = fraction;
  }
  number.written = text.substr(0, position);
  number.rest = text.substr(position);
  return number;
}

enum class Scaling { kExact, kTooLarge, kNotWhole, kTooManyDecimals };

// Computes number * unit_scale exactly in integers, refusing results above `limit` and results
// with a fractional part. For a fraction f with k digits the exact value is f * scale / 10^k;
// dividing scale and 10^k by their gcd first keeps every intermediate below `scale`.
Scaling scale_exactly(const Decimal& number, uint64_t unit_scale, uint64_t limit,
                      uint64_t& result) {
  uint64_t whole = 0;
  for (const char digit : number.integer_digits) {
    const uint64_t value = static_cast<uint64_t>(digit - '0');
    if (whole > (UINT64_MAX - value) / 10) return Scaling::kTooLarge;
    whole = whole * 10 + value;
  }
  if (whole > limit / unit_scale) return Scaling::kTooLarge;
  whole *= unit_scale;

  uint64_t fraction_part = 0;
  if (!number.fraction_digits.empty()) {
    // 10^19 is the largest power of ten in a uint64_t.
    if (number.fraction_digits.size() > 19) return Scaling::kTooManyDecimals;
    uint64_t fraction = 0;
    uint64_t denominator = 1;
    for (const char digit : number.fraction_digits) {
      fraction = fraction * 10 + static_cast<uint64_t>(digit - '0');
      denominator *= 10;
    }
    const uint64_t common = std::gcd(unit_scale, denominator);
    const uint64_t reduced_denominator = denominator / common;
    if (fraction % reduced_denominator != 0) return Scaling::kNotWhole;
    fraction_part = (fraction / reduced_denominator) * (unit_scale / common);
  }
  if (whole > limit - fraction_part) return Scaling::kTooLarge;
  result = whole + fraction_part;
  return Scaling::kExact;
}

const Unit* find_unit(const Kind& kind, std::string_view name) {
  for (const Unit& unit : kind.units) {
    if (unit.name == name) return &unit;
  }
  return nullptr;
}

// The accepted unit someone most likely meant by `written` ("minutes" -> "m", "kb" -> "KB"), or
// empty when there is no obvious one.
std::string_view guess_unit(const Kind& kind, std::string_view written) {
  const std::string lowered = ascii_lower(trim_spaces(written));
  if (lowered.empty()) return {};
  for (const Unit& unit : kind.units) {
    if (ascii_lower(unit.name) == lowered) return unit.name;
  }
  for (const Alias& alias : kind.aliases) {
    if (alias.spelling == lowered) return alias.unit;
  }
  return {};
}

// Hint for a number followed by `unit_text`, which is not an accepted unit. `separator` goes
// between the number and the unit in the suggestion ("/" for rates).
std::string unknown_unit_hint(const Kind& kind, const Decimal& number, std::string_view unit_text,
                              std::string_view separator) {
  const std::string number_text(number.written);
  if (trim_spaces(unit_text).empty()) {
    return std::string(kind.plural) + " need a unit, such as \"" + number_text +
           std::string(kind.example_units[0]) + "\" or \"" + number_text +
           std::string(kind.example_units[1]) + "\"";
  }
  const std::string_view guess = guess_unit(kind, unit_text);
  if (guess.empty()) return std::string(kind.unit_list);
  const std::string suggestion = number_text + std::string(separator) + std::string(guess);
  if (trim_spaces(unit_text) == guess) return "remove the space, as in \"" + suggestion + "\"";
  return "did you mean \"" + suggestion + "\"?";
}

// Parses "<decimal><unit>" for durations and sizes.
uint64_t parse_with_unit(const Kind& kind, std::string_view text, uint64_t limit) {
  if (text == "0") return 0;
  const Decimal number = split_decimal(kind, text);
  const Unit* unit = find_unit(kind, number.rest);
  if (unit == nullptr) fail(kind, text, unknown_unit_hint(kind, number, number.rest, ""));
  uint64_t result = 0;
  switch (scale_exactly(number, unit->scale, limit, result)) {
    case Scaling::kExact:
      return result;
    case Scaling::kTooLarge:
      fail(kind, text, std::string(kind.too_large));
    case Scaling::kNotWhole:
      fail(kind, text, std::string(kind.not_whole));
    case Scaling::kTooManyDecimals:
      fail(kind, text, std::string(kind.too_many_decimals));
  }
  fail(kind, text, "");
}

// The unit part of a rate written without a slash, such as "100 per second" or "100rps", turned
// into an accepted unit when the meaning is clear.
std::string_view guess_rate_unit_without_slash(std::string_view rest) {
  const std::string lowered = ascii_lower(trim_spaces(rest));
  if (lowered == "rps" || lowered == "qps" || lowered == "tps" || lowered == "ops") return "s";
  std::string_view words = lowered;
  if (words.substr(0, 4) == "per ") words.remove_prefix(4);
  for (const Unit& unit : kRateUnits) {
    if (unit.name == words) return unit.name;
  }
  for (const Alias& alias : kRateAliases) {
    if (alias.spelling == words) return alias.unit;
  }
  return {};
}

std::string rate_unit_hint(const Decimal& number) {
  const std::string_view rest = number.rest;
  if (rest.empty()) {
    return "rates need a time unit, such as \"" + std::string(number.written) + "/s\"";
  }
  if (rest.front() == '/') return unknown_unit_hint(kRate, number, rest.substr(1), "/");
  const std::string_view guess = guess_rate_unit_without_slash(rest);
  if (guess.empty()) return std::string(kRate.unit_list);
  return "did you mean \"" + std::string(number.written) + "/" + std::string(guess) + "\"?";
}

// Appends `remainder / scale` (scale a power of ten, remainder < scale) as ".ddd" without
// trailing zeros, or nothing when remainder is zero.
void append_decimals(std::string& out, uint64_t remainder, uint64_t scale) {
  if (remainder == 0) return;
  std::string digits;
  for (uint64_t place = scale / 10; place > 0; place /= 10) {
    digits += static_cast<char>('0' + (remainder / place) % 10);
  }
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  out += '.';
  out += digits;
}

}  // namespace

UnitError::UnitError(std::string expected_text, std::string found_text, std::string hint_text)
    : std::runtime_error("expected " + expected_text + ", found " + found_text +
                         (hint_text.empty() ? std::string() : " (" + hint_text + ")")),
      expected(std::move(expected_text)),
      found(std::move(found_text)),
      hint(std::move(hint_text)) {}

sim::Duration parse_duration(std::string_view text) {
  const uint64_t nanoseconds = parse_with_unit(kDuration, text, INT64_MAX);
  return sim::Duration(static_cast<int64_t>(nanoseconds));
}

uint64_t parse_bytes(std::string_view text) {
  return parse_with_unit(kBytes, text, UINT64_MAX);
}

double parse_rate_per_second(std::string_view text) {
  if (text == "0") return 0;
  const Decimal number = split_decimal(kRate, text);
  const std::string_view rest = number.rest;
  const Unit* unit = nullptr;
  if (!rest.empty() && rest.front() == '/') unit = find_unit(kRate, rest.substr(1));
  if (unit == nullptr) fail(kRate, text, rate_unit_hint(number));

  // count = mantissa / 10^decimals. Both the mantissa and 10^decimals * seconds stay at or below
  // 2^53, so both convert to double exactly and the one division rounds once, the same way on
  // every machine.
  constexpr uint64_t kExactInDouble = uint64_t{1} << 53;
  const std::string too_precise = "use at most 15 significant digits";
  uint64_t mantissa = 0;
  const auto append_digits = [&](std::string_view digits) {
    for (const char digit : digits) {
      mantissa = mantissa * 10 + static_cast<uint64_t>(digit - '0');
      if (mantissa > kExactInDouble) fail(kRate, text, too_precise);
    }
  };
  append_digits(number.integer_digits);
  append_digits(number.fraction_digits);
  uint64_t denominator = unit->scale;
  for (std::size_t i = 0; i < number.fraction_digits.size(); ++i) {
    denominator *= 10;
    if (denominator > kExactInDouble) fail(kRate, text, too_precise);
  }
  return static_cast<double>(mantissa) / static_cast<double>(denominator);
}

std::string format_duration_short(sim::Duration duration) {
  if (duration.ns == 0) return "0";
  const bool negative = duration.ns < 0;
  // Unsigned negation keeps INT64_MIN well defined.
  const uint64_t magnitude =
      negative ? 0 - static_cast<uint64_t>(duration.ns) : static_cast<uint64_t>(duration.ns);
  std::string text = negative ? "-" : "";
  // Largest unit first. Days, hours and minutes only when whole: "90s" reads better than "1.5m",
  // and their decimals would not terminate ("1m20s" is 1.333...m).
  for (auto unit = std::rbegin(kDurationUnits); unit != std::rend(kDurationUnits); ++unit) {
    const bool above_seconds = unit->scale > kNanosecondsPerSecond;
    if (above_seconds ? magnitude % unit->scale != 0 : magnitude < unit->scale) continue;
    text += std::to_string(magnitude / unit->scale);
    append_decimals(text, magnitude % unit->scale, unit->scale);
    return text + std::string(unit->name);
  }
  return text + std::to_string(magnitude) + "ns";  // not reached: every magnitude >= 1ns
}

std::string format_bytes(uint64_t bytes) {
  // Largest unit first, skipping "B" and the KiB-style synonyms (the two-letter names are KB, MB,
  // ...). At most three decimals: "1.125MB" is readable, "1.0009765625KB" is not.
  for (auto unit = std::rbegin(kByteUnits); unit != std::rend(kByteUnits); ++unit) {
    if (unit->name.size() != 2 || bytes < unit->scale) continue;
    const uint64_t remainder = bytes % unit->scale;  // < 2^50, so * 1000 cannot overflow
    if ((remainder * 1000) % unit->scale != 0) continue;
    std::string text = std::to_string(bytes / unit->scale);
    append_decimals(text, remainder * 1000 / unit->scale, 1000);
    return text + std::string(unit->name);
  }
  return std::to_string(bytes) + "B";
}

std::string quote_for_message(std::string_view text, std::size_t max_bytes) {
  std::string out = "\"";
  std::size_t index = 0;
  while (index < text.size()) {
    const std::size_t length = utf8_sequence_length(text, index);
    if (index + (length == 0 ? 1 : length) > max_bytes) break;
    if (length == 0) {
      // Not UTF-8: shown as \xNN so the message itself stays valid UTF-8 (it may end up in JSON).
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\x%02X",
                    static_cast<unsigned>(static_cast<unsigned char>(text[index])));
      out += buffer;
      index += 1;
    } else if (length == 1) {
      append_escaped_ascii(out, static_cast<unsigned char>(text[index]));
      index += 1;
    } else {
      out.append(text.substr(index, length));
      index += length;
    }
  }
  if (index < text.size()) {
    return out + "...\" (" + std::to_string(text.size()) + " bytes)";
  }
  return out + "\"";
}

}  // namespace dynasim::gameday
