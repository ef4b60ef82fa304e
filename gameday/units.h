// Units in scenario values: durations ("250us", "1.5s", "5m"), sizes ("512B", "1KB") and rates
// ("100/s"), as CONVENTIONS.md rule 11 asks ("a scenario is data; units in values").
//
// Parsing is exact. The decimal digits are read as integers and scaled with integer arithmetic, so
// "1.5s" is exactly 1'500'000'000 ns and "1.5KB" exactly 1536 bytes; nothing passes through a
// double on the way. A value that cannot be represented exactly (a fraction of a nanosecond or of
// a byte) is rejected rather than rounded, because a silently rounded scenario is a different
// scenario. Sizes use binary multiples (1KB = 1024 bytes), the way DynamoDB's documentation counts
// item sizes for capacity units; "KiB" style is accepted as a synonym.
//
// Every parser throws UnitError on bad input. Its message says what was expected, with examples,
// what was found, and a hint when one is obvious, e.g.
//   expected a duration such as "250us", "1.5s" or "5m", found "5 minutes" (did you mean "5m"?)
// The parts are also available separately so the JSON reader (gameday/json_reader.h) can put the
// field path in front of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "sim/time.h"

namespace dynasim::gameday {

// What each parser expects, as it appears in error messages.
inline constexpr std::string_view kExpectedDuration =
    R"(a duration such as "250us", "1.5s" or "5m")";
inline constexpr std::string_view kExpectedBytes = R"(a size such as "512B", "1KB" or "1.5MB")";
inline constexpr std::string_view kExpectedRate = R"(a rate such as "100/s", "6000/m" or "2.5/h")";

// Thrown by the parsers below. what() is the full message:
//   expected <expected>, found <found>[ (<hint>)]
struct UnitError : std::runtime_error {
  UnitError(std::string expected_text, std::string found_text, std::string hint_text);

  std::string expected;  // e.g. a duration such as "250us", "1.5s" or "5m"
  std::string found;     // the input, quoted and abbreviated: "5 minutes"
  std::string hint;      // e.g. did you mean "5m"?  (may be empty)
};

// Parses a non-negative duration: a decimal number immediately followed by one of the units
// ns, us, ms, s, m (minutes), h, d. The plain text "0" is also accepted. Decimals are exact and
// must come out to a whole number of nanoseconds ("1.5ns" is rejected). No sign, no spaces, no
// exponent. Throws UnitError, including when the value exceeds INT64_MAX nanoseconds (~292 years).
sim::Duration parse_duration(std::string_view text);

// Parses a size in bytes: a decimal number immediately followed by B, KB, MB, GB, TB or PB
// (powers of 1024) or their KiB, MiB, GiB, TiB, PiB synonyms. "0" is also accepted. A decimal
// must come out to a whole number of bytes ("1.5KB" = 1536 is fine, "1.1KB" is not). Unit names
// are case-sensitive: lower-case "kb" is refused with a did-you-mean hint, since "b" usually
// means bits. Throws UnitError, including on overflow past UINT64_MAX.
uint64_t parse_bytes(std::string_view text);

// Parses a rate "<count>/<unit>" with unit s, m, h or d, e.g. "100/s", "6000/m", "2.5/h", and
// returns events per second. "0" is also accepted. The count is a non-negative decimal with at most
// 15 significant digits; the result is that count divided by the unit's seconds in one correctly
// rounded division, so "0.1/s" is the double nearest 0.1 and "6000/m" is exactly 100.
double parse_rate_per_second(std::string_view text);

// Shortest exact spelling in the parser's syntax: whole days, hours or minutes when the duration
// is a multiple of one ("2d", "5m"), otherwise the largest of s, ms, us, ns that keeps the number
// at least 1, with as many decimals as needed ("1.5s", "250us", "90s", "1.000000001s"). Zero is
// "0". For every non-negative d, parse_duration(format_duration_short(d)) == d. A negative d
// gets a leading "-" (for messages; the parser refuses negatives).
std::string format_duration_short(sim::Duration duration);

// Largest binary unit in which the size has at most three decimals ("1.5KB", "10GB", "1.125MB"),
// otherwise whole bytes ("1025B"). For every n, parse_bytes(format_bytes(n)) == n.
std::string format_bytes(uint64_t bytes);

// `text` in double quotes for an error message: quotes, backslashes and control characters are
// escaped JSON-style; text longer than max_bytes is cut (never inside a UTF-8 sequence) and
// followed by its length, e.g. "aaaa..." (300 bytes).
std::string quote_for_message(std::string_view text, std::size_t max_bytes = 48);

}  // namespace dynasim::gameday
