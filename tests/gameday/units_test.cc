#include "gameday/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dynasim::gameday {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr uint64_t kKiB = 1024;

// The full message of the UnitError `parse` throws for `text`, or a marker when it throws none.
template <typename Parse>
std::string error_message(Parse parse, std::string_view text) {
  try {
    parse(text);
  } catch (const UnitError& error) {
    return error.what();
  }
  return "<no error for \"" + std::string(text) + "\">";
}

const std::string kDurationPrefix =
    R"(expected a duration such as "250us", "1.5s" or "5m", found )";
const std::string kBytesPrefix = R"(expected a size such as "512B", "1KB" or "1.5MB", found )";
const std::string kRatePrefix = R"(expected a rate such as "100/s", "6000/m" or "2.5/h", found )";

// A small deterministic generator, so the "random" inputs are the same on every run.
class TextGenerator {
 public:
  std::string next(std::string_view alphabet, std::size_t max_length) {
    std::string text;
    const std::size_t length = draw() % (max_length + 1);
    for (std::size_t i = 0; i < length; ++i) text += alphabet[draw() % alphabet.size()];
    return text;
  }
  uint64_t draw() {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return state_ >> 33;
  }

 private:
  uint64_t state_ = 42;
};

TEST(ParseDuration, AcceptsEveryUnitWithExactValues) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"250ns", 250},
      {"250us", 250'000},
      {"1.5ms", 1'500'000},
      {"5s", 5 * kSecond},
      {"5m", 300 * kSecond},
      {"2h", 7'200 * kSecond},
      {"1d", 86'400 * kSecond},
      {"0", 0},
      {"0s", 0},
      {"0.0ms", 0},
      {"1.5s", 1'500'000'000},
      {"1.50s", 1'500'000'000},
      {"0.1s", 100'000'000},
      {"0.000000001s", 1},
      {"1.000000001s", 1'000'000'001},
      {"1.500000000000000000000000000s", 1'500'000'000},  // trailing zeros are not precision
      {"2.5m", 150 * kSecond},
      {"0.5d", 43'200 * kSecond},
      {"007s", 7 * kSecond},
      {"9223372036854775807ns", INT64_MAX},
      {"9223372036.854775807s", INT64_MAX},
      {"106751d", int64_t{106'751} * 86'400 * kSecond},
  };
  for (const auto& [text, nanoseconds] : cases) {
    EXPECT_EQ(parse_duration(text).ns, nanoseconds) << text;
  }
}

TEST(ParseDuration, RejectsBadFormsWithMessages) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"5 minutes", R"("5 minutes" (did you mean "5m"?))"},
      {"5min", R"("5min" (did you mean "5m"?))"},
      {"5S", R"("5S" (did you mean "5s"?))"},
      {"5\xC2\xB5s", "\"5\xC2\xB5s\" (did you mean \"5us\"?)"},
      {"5 s", R"("5 s" (remove the space, as in "5s"))"},
      {"5s ", R"("5s " (remove the space, as in "5s"))"},
      {" 5s", R"(" 5s" (remove the spaces around the value))"},
      {"300", R"("300" (durations need a unit, such as "300s" or "300ms"))"},
      {"1.5", R"("1.5" (durations need a unit, such as "1.5s" or "1.5ms"))"},
      {"-5s", R"("-5s" (durations cannot be negative))"},
      {"+5s", R"("+5s" (remove the "+" sign))"},
      {".5s", R"(".5s" (write a digit before the decimal point, as in "0.5s"))"},
      {"5.s", R"("5.s" (write at least one digit after the decimal point))"},
      {"5x", R"("5x" (the units are ns, us, ms, s, m (minutes), h and d))"},
      {"1e3s", R"("1e3s" (the units are ns, us, ms, s, m (minutes), h and d))"},
      {"1.5ns",
       R"("1.5ns" (durations are whole nanoseconds, and this one has a fraction of a nanosecond))"},
      {"0.0000000001s",
       R"("0.0000000001s" (durations are whole nanoseconds, and this one has a fraction of a nanosecond))"},
      {"0.00000000000000000000001d",
       R"("0.00000000000000000000001d" (durations are whole nanoseconds, and this one has a fraction of a nanosecond))"},
      {"106752d", R"("106752d" (longer than the longest duration, 106751d (about 292 years)))"},
      // The whole seconds fit; only the fraction pushes it one nanosecond past INT64_MAX.
      {"9223372036.854775808s",
       R"("9223372036.854775808s" (longer than the longest duration, 106751d (about 292 years)))"},
      {"9223372036854775808ns",
       R"("9223372036854775808ns" (longer than the longest duration, 106751d (about 292 years)))"},
      {"99999999999999999999999s",
       R"("99999999999999999999999s" (longer than the longest duration, 106751d (about 292 years)))"},
      {"", "an empty string"},
      {"five minutes", R"("five minutes")"},
      {"00", R"("00" (durations need a unit, such as "00s" or "00ms"))"},
  };
  for (const auto& [text, found_and_hint] : cases) {
    EXPECT_EQ(error_message(parse_duration, text), kDurationPrefix + found_and_hint) << text;
  }
}

TEST(ParseDuration, ErrorPartsAreSeparate) {
  try {
    parse_duration("5 minutes");
    FAIL() << "no error";
  } catch (const UnitError& error) {
    EXPECT_EQ(error.expected, R"(a duration such as "250us", "1.5s" or "5m")");
    EXPECT_EQ(error.found, R"("5 minutes")");
    EXPECT_EQ(error.hint, R"(did you mean "5m"?)");
    const std::runtime_error& as_runtime_error = error;
    EXPECT_STREQ(as_runtime_error.what(),
                 R"(expected a duration such as "250us", "1.5s" or "5m", found "5 minutes" )"
                 R"((did you mean "5m"?))");
  }
}

TEST(ParseDuration, ArbitraryTextEitherParsesOrThrowsUnitError) {
  TextGenerator generator;
  int parsed = 0;
  for (int i = 0; i < 20'000; ++i) {
    const std::string text = generator.next("0123456789.smhdnu -+e\xC2\xB5/", 12);
    try {
      const sim::Duration duration = parse_duration(text);
      ++parsed;
      EXPECT_GE(duration.ns, 0) << text;
      EXPECT_EQ(parse_duration(format_duration_short(duration)), duration) << text;
    } catch (const UnitError& error) {
      EXPECT_NE(std::string(error.what()).find("expected a duration"), std::string::npos);
    }
  }
  EXPECT_GT(parsed, 100);  // the alphabet does produce valid durations, so both paths ran
}

TEST(FormatDurationShort, UsesTheShortestExactForm) {
  const std::vector<std::pair<int64_t, std::string>> cases = {
      {0, "0"},
      {1, "1ns"},
      {999, "999ns"},
      {1'000, "1us"},
      {250'000, "250us"},
      {1'500'000, "1.5ms"},
      {1'500'000'000, "1.5s"},
      {1'000'000'001, "1.000000001s"},
      {90 * kSecond, "90s"},
      {300 * kSecond, "5m"},
      {7'200 * kSecond, "2h"},
      {25 * 3'600 * kSecond, "25h"},
      {2 * 86'400 * kSecond, "2d"},
      {-1'500'000'000, "-1.5s"},
      {INT64_MAX, "9223372036.854775807s"},
      {INT64_MIN, "-9223372036.854775808s"},
  };
  for (const auto& [nanoseconds, text] : cases) {
    EXPECT_EQ(format_duration_short(sim::Duration(nanoseconds)), text) << nanoseconds;
  }
}

TEST(FormatDurationShort, RoundTripsThroughTheParser) {
  std::vector<int64_t> values = {0,
                                 1,
                                 999,
                                 1'000,
                                 1'001,
                                 kSecond,
                                 kSecond - 1,
                                 60 * kSecond,
                                 3'600 * kSecond,
                                 86'400 * kSecond,
                                 INT64_MAX,
                                 INT64_MAX - 1};
  TextGenerator generator;
  for (int i = 0; i < 5'000; ++i) {
    // Spread over all magnitudes: a random value shifted right by a random amount.
    const uint64_t bits = (generator.draw() << 31) ^ generator.draw();
    values.push_back(static_cast<int64_t>((bits >> (generator.draw() % 63)) & INT64_MAX));
    values.push_back(static_cast<int64_t>(generator.draw() % 100'000) * kSecond);
  }
  for (const int64_t nanoseconds : values) {
    const std::string text = format_duration_short(sim::Duration(nanoseconds));
    EXPECT_EQ(parse_duration(text).ns, nanoseconds) << text;
  }
}

TEST(ParseBytes, AcceptsBinaryUnitsWithExactValues) {
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"512B", 512},
      {"1KB", kKiB},
      {"1KiB", kKiB},
      {"1MB", kKiB * kKiB},
      {"1MiB", kKiB * kKiB},
      {"10GB", 10 * kKiB * kKiB * kKiB},
      {"2TB", 2 * kKiB * kKiB * kKiB * kKiB},
      {"1PiB", kKiB * kKiB * kKiB * kKiB * kKiB},
      {"1.5KB", 1'536},
      {"0.5MB", 524'288},
      {"0.0009765625KB", 1},
      {"400KB", 409'600},
      {"0", 0},
      {"0B", 0},
      {"18446744073709551615B", UINT64_MAX},
  };
  for (const auto& [text, bytes] : cases) EXPECT_EQ(parse_bytes(text), bytes) << text;
}

TEST(ParseBytes, RejectsBadFormsWithMessages) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1.1KB", R"("1.1KB" (sizes are whole bytes, and this one has a fraction of a byte))"},
      {"0.5B", R"("0.5B" (sizes are whole bytes, and this one has a fraction of a byte))"},
      {"1kb", R"("1kb" (did you mean "1KB"?))"},
      {"1 KB", R"("1 KB" (remove the space, as in "1KB"))"},
      {"1 kilobyte", R"("1 kilobyte" (did you mean "1KB"?))"},
      {"4k", R"("4k" (did you mean "4KB"?))"},
      {"1024", R"("1024" (sizes need a unit, such as "1024B" or "1024KB"))"},
      {"-1KB", R"("-1KB" (sizes cannot be negative))"},
      {"1XB",
       R"("1XB" (the units are B, KB, MB, GB, TB and PB, with 1KB = 1024B (KiB, MiB, ... also work)))"},
      {"16384PB", R"("16384PB" (larger than the largest size, 18446744073709551615B))"},
      {"18446744073709551616B",
       R"("18446744073709551616B" (larger than the largest size, 18446744073709551615B))"},
      {"1.00000000000000000001KB",
       R"("1.00000000000000000001KB" (too many digits after the decimal point; write the size in a smaller unit))"},
      {"", "an empty string"},
  };
  for (const auto& [text, found_and_hint] : cases) {
    EXPECT_EQ(error_message(parse_bytes, text), kBytesPrefix + found_and_hint) << text;
  }
}

TEST(FormatBytes, UsesTheLargestUnitWithFewDecimals) {
  const std::vector<std::pair<uint64_t, std::string>> cases = {
      {0, "0B"},
      {512, "512B"},
      {1'023, "1023B"},
      {kKiB, "1KB"},
      {1'536, "1.5KB"},
      {1'025, "1025B"},
      {1'152 * kKiB, "1.125MB"},
      {10 * kKiB * kKiB * kKiB, "10GB"},
      {kKiB * kKiB * kKiB * kKiB * kKiB * kKiB, "1024PB"},
      {UINT64_MAX, "18446744073709551615B"},
  };
  for (const auto& [bytes, text] : cases) EXPECT_EQ(format_bytes(bytes), text) << bytes;
}

TEST(FormatBytes, RoundTripsThroughTheParser) {
  std::vector<uint64_t> values = {0, 1, 1'023, 1'024, 1'025, 1'536, UINT64_MAX, uint64_t{1} << 63};
  TextGenerator generator;
  for (int i = 0; i < 5'000; ++i) {
    const uint64_t bits = (generator.draw() << 32) ^ generator.draw();
    values.push_back(bits >> (generator.draw() % 64));
    values.push_back((generator.draw() % 4'096) << (10 * (generator.draw() % 6)));
  }
  for (const uint64_t bytes : values) {
    const std::string text = format_bytes(bytes);
    EXPECT_EQ(parse_bytes(text), bytes) << text;
  }
}

TEST(ParseRatePerSecond, AcceptsRatesPerEachUnit) {
  EXPECT_EQ(parse_rate_per_second("100/s"), 100.0);
  EXPECT_EQ(parse_rate_per_second("6000/m"), 100.0);
  EXPECT_EQ(parse_rate_per_second("2.5/h"), 25.0 / 36'000.0);
  EXPECT_EQ(parse_rate_per_second("0.1/s"), 0.1);
  EXPECT_EQ(parse_rate_per_second("1/d"), 1.0 / 86'400.0);
  EXPECT_EQ(parse_rate_per_second("3600/h"), 1.0);
  EXPECT_EQ(parse_rate_per_second("0"), 0.0);
  EXPECT_EQ(parse_rate_per_second("0/s"), 0.0);
  EXPECT_EQ(parse_rate_per_second("1.10/s"), 1.1);
  EXPECT_EQ(parse_rate_per_second("2.500000000000000000000/s"), 2.5);
  EXPECT_EQ(parse_rate_per_second("123456789012345/s"), 123456789012345.0);
}

TEST(ParseRatePerSecond, RejectsBadFormsWithMessages) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"100", R"("100" (rates need a time unit, such as "100/s"))"},
      {"100 per second", R"("100 per second" (did you mean "100/s"?))"},
      {"100/sec", R"("100/sec" (did you mean "100/s"?))"},
      {"100rps", R"("100rps" (did you mean "100/s"?))"},
      {"100/ s", R"("100/ s" (remove the space, as in "100/s"))"},
      {"100/ms", R"("100/ms" (rates are a count per s, m, h or d, written like "100/s"))"},
      {"100/", R"("100/" (rates need a unit, such as "100/s" or "100/m"))"},
      {"-1/s", R"("-1/s" (rates cannot be negative))"},
      {"12345678901234567/s", R"("12345678901234567/s" (use at most 15 significant digits))"},
      {"0.0000000000000001/s", R"("0.0000000000000001/s" (use at most 15 significant digits))"},
      {"fast", R"("fast")"},
  };
  for (const auto& [text, found_and_hint] : cases) {
    EXPECT_EQ(error_message(parse_rate_per_second, text), kRatePrefix + found_and_hint) << text;
  }
}

TEST(QuoteForMessage, EscapesAndAbbreviates) {
  EXPECT_EQ(quote_for_message("plain"), "\"plain\"");
  EXPECT_EQ(quote_for_message("a\"b\\c\nd\te"), R"("a\"b\\c\nd\te")");
  EXPECT_EQ(quote_for_message(std::string("nul\0x", 5)), R"("nul\u0000x")");
  EXPECT_EQ(quote_for_message("bad \xFF byte"), R"("bad \xFF byte")");
  EXPECT_EQ(quote_for_message("caf\xC3\xA9"), "\"caf\xC3\xA9\"");
  EXPECT_EQ(quote_for_message(std::string(100, 'a')),
            "\"" + std::string(48, 'a') + "...\" (100 bytes)");
  // A two-byte character straddling the cut is left out whole, never split.
  const std::string straddling = std::string(47, 'a') + "\xC3\xA9" + std::string(10, 'b');
  EXPECT_EQ(quote_for_message(straddling), "\"" + std::string(47, 'a') + "...\" (59 bytes)");
}

}  // namespace
}  // namespace dynasim::gameday
