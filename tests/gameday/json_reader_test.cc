#include "gameday/json_reader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace dynasim::gameday {
namespace {

using nlohmann::json;

constexpr int64_t kSecond = 1'000'000'000;

// The ScenarioError `function` throws, or nullopt when it throws none.
std::optional<ScenarioError> caught(const std::function<void()>& function) {
  try {
    function();
  } catch (const ScenarioError& error) {
    return error;
  }
  return std::nullopt;
}

// The message of the ScenarioError `function` throws, or a marker when it throws none.
std::string message_of(const std::function<void()>& function) {
  const std::optional<ScenarioError> error = caught(function);
  return error ? std::string(error->what()) : std::string("<no error>");
}

// Writes `text` to a fresh file under the test temporary directory and returns its path.
std::string write_file(const std::string& name, const std::string& text) {
  const std::filesystem::path directory =
      std::filesystem::path(::testing::TempDir()) / "dynasim_json_reader_test";
  std::filesystem::create_directories(directory);
  const std::filesystem::path path = directory / name;
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

// ---- ScenarioError ------------------------------------------------------------------------

TEST(ScenarioError, MessageNamesPathExpectedFoundAndHint) {
  const ScenarioError error("$.faults.timeline[2].at", "a duration such as \"5m\"",
                            "the number 300", "durations need a unit");
  EXPECT_STREQ(error.what(),
               "$.faults.timeline[2].at: expected a duration such as \"5m\", found the number 300 "
               "(durations need a unit)");
  EXPECT_EQ(error.path, "$.faults.timeline[2].at");
  EXPECT_EQ(error.expected, "a duration such as \"5m\"");
  EXPECT_EQ(error.found, "the number 300");
  EXPECT_EQ(error.hint, "durations need a unit");
  EXPECT_EQ(error.file, "");
  EXPECT_EQ(error.line, 0u);

  const ScenarioError no_hint("$.a", "a string", "null");
  EXPECT_STREQ(no_hint.what(), "$.a: expected a string, found null");
}

TEST(ScenarioError, FileLocationPrefixesTheMessage) {
  const ScenarioError located("$", "valid JSON", "a syntax error", "", {"a.json", 3, 7});
  EXPECT_STREQ(located.what(), "a.json:3:7: expected valid JSON, found a syntax error");
  const ScenarioError with_path("$.x", "a string", "null", "", {"a.json"});
  EXPECT_STREQ(with_path.what(), "a.json: $.x: expected a string, found null");

  const ScenarioError moved = ScenarioError("$.rate", "a rate", "null").with_file("s.json");
  EXPECT_STREQ(moved.what(), "s.json: $.rate: expected a rate, found null");
  EXPECT_EQ(moved.file, "s.json");
  EXPECT_EQ(moved.path, "$.rate");
}

// ---- ObjectReader: each kind of field -----------------------------------------------------

TEST(ObjectReader, ConstructorRequiresAnObject) {
  const json array = json::array({1, 2});
  EXPECT_EQ(message_of([&] { ObjectReader reader(array, "$.topology"); }),
            "$.topology: expected an object, found an array of 2 elements");
  const json text = "hello";
  EXPECT_EQ(message_of([&] { ObjectReader reader(text, "$"); }),
            "$: expected an object, found \"hello\"");
}

TEST(ObjectReader, StringFields) {
  const json document = {{"name", "smoke"}, {"count", 5}};
  ObjectReader reader(document, "$");
  EXPECT_EQ(reader.required_string("name"), "smoke");
  EXPECT_EQ(reader.optional_string("description", "none"), "none");
  EXPECT_EQ(message_of([&] { reader.required_string("title"); }),
            "$.title: expected a string, found nothing (a required field is missing)");
  EXPECT_EQ(message_of([&] { reader.required_string("count"); }),
            "$.count: expected a string, found the number 5 (put the value in double quotes: "
            "\"5\")");
  EXPECT_EQ(message_of([&] { reader.optional_string("count", "x"); }),
            "$.count: expected a string, found the number 5 (put the value in double quotes: "
            "\"5\")");
}

TEST(ObjectReader, MissingFieldPointsAtALikelyTypo) {
  const json document = {{"rtae", "100/s"}};
  ObjectReader reader(document, "$.workload");
  EXPECT_EQ(message_of([&] { reader.required_rate("rate"); }),
            "$.workload.rate: expected a rate such as \"100/s\", \"6000/m\" or \"2.5/h\", found "
            "nothing (a required field is missing; is \"rtae\" a typo for \"rate\"?)");
}

TEST(ObjectReader, EnumFields) {
  const json document = {{"shape", "diurnl"}, {"mode", "spike"}, {"level", 3}, {"far", "zzz"}};
  ObjectReader reader(document, "$.workload");
  EXPECT_EQ(reader.required_enum("mode", {"constant", "diurnal", "spike"}), "spike");
  EXPECT_EQ(reader.optional_enum("absent", {"a", "b"}, "b"), "b");
  EXPECT_EQ(message_of([&] {
              reader.required_enum("shape", {"constant", "diurnal", "spike"});
            }),
            "$.workload.shape: expected one of \"constant\", \"diurnal\" or \"spike\", found "
            "\"diurnl\" (did you mean \"diurnal\"?)");
  EXPECT_EQ(message_of([&] {
              reader.optional_enum("far", {"constant", "diurnal"}, "constant");
            }),
            "$.workload.far: expected one of \"constant\" or \"diurnal\", found \"zzz\"");
  EXPECT_EQ(message_of([&] {
              reader.required_enum("level", {"low", "high"});
            }),
            "$.workload.level: expected one of \"low\" or \"high\", found the number 3");
  EXPECT_EQ(message_of([&] { reader.required_enum("missing", {"low"}); }),
            "$.workload.missing: expected one of \"low\", found nothing (a required field is "
            "missing)");
}

TEST(ObjectReader, IntegerFields) {
  const json document = json::parse(R"({
    "count": 7, "thousand": 1e3, "negative": -5, "too_big": 100, "half": 1.5, "quoted": "3",
    "huge": 1e30, "max_unsigned": 18446744073709551615, "lowest": -9223372036854775808,
    "flag": true})");
  ObjectReader reader(document, "$");
  EXPECT_EQ(reader.required_int("count", 1, 64), 7);
  EXPECT_EQ(reader.required_int("thousand"), 1000);
  EXPECT_EQ(reader.required_int("negative", -10, 10), -5);
  EXPECT_EQ(reader.required_int("lowest"), INT64_MIN);
  EXPECT_EQ(reader.optional_int("absent", 42, 0, 100), 42);
  EXPECT_EQ(message_of([&] { reader.required_int("too_big", 1, 64); }),
            "$.too_big: expected an integer from 1 to 64, found the number 100");
  EXPECT_EQ(message_of([&] { reader.required_int("negative", 0); }),
            "$.negative: expected an integer of at least 0, found the number -5");
  EXPECT_EQ(message_of([&] { reader.optional_int("too_big", 0, ObjectReader::kIntMin, 10); }),
            "$.too_big: expected an integer of at most 10, found the number 100");
  EXPECT_EQ(message_of([&] { reader.required_int("half"); }),
            "$.half: expected an integer, found the number 1.5");
  EXPECT_EQ(message_of([&] { reader.required_int("quoted"); }),
            "$.quoted: expected an integer, found \"3\" (write the number without quotes)");
  EXPECT_EQ(message_of([&] { reader.required_int("huge"); }),
            "$.huge: expected an integer, found the number 1e+30");
  EXPECT_EQ(message_of([&] { reader.required_int("max_unsigned"); }),
            "$.max_unsigned: expected an integer, found the number 18446744073709551615");
  EXPECT_EQ(message_of([&] { reader.required_int("flag"); }),
            "$.flag: expected an integer, found true");
  EXPECT_EQ(message_of([&] { reader.required_int("absent_required", 1, 2); }),
            "$.absent_required: expected an integer from 1 to 2, found nothing (a required field "
            "is missing)");
}

TEST(ObjectReader, UnsignedFields) {
  const json document = json::parse(R"({
    "max": 18446744073709551615, "minus_one": -1, "two_to_64": 18446744073709551616.0,
    "ten": 10, "float_whole": 4.0})");
  ObjectReader reader(document, "$.disk");
  EXPECT_EQ(reader.required_uint("max"), UINT64_MAX);
  EXPECT_EQ(reader.required_uint("ten", 1, 10), 10u);
  EXPECT_EQ(reader.required_uint("float_whole"), 4u);
  EXPECT_EQ(reader.optional_uint("absent", 3, 1, 5), 3u);
  EXPECT_EQ(message_of([&] { reader.required_uint("minus_one"); }),
            "$.disk.minus_one: expected an integer of at least 0, found the number -1");
  EXPECT_EQ(message_of([&] { reader.required_uint("two_to_64"); }),
            "$.disk.two_to_64: expected an integer of at least 0, found the number "
            "1.8446744073709552e+19");
  EXPECT_EQ(message_of([&] { reader.optional_uint("ten", 0, 1, 9); }),
            "$.disk.ten: expected an integer from 1 to 9, found the number 10");
}

TEST(ObjectReader, NumberFields) {
  const json document = {{"probability", 0.25}, {"whole", 3}, {"big", 1.5}, {"text", "0.5"}};
  ObjectReader reader(document, "$.network");
  EXPECT_EQ(reader.required_number("probability", 0, 1), 0.25);
  EXPECT_EQ(reader.required_number("whole"), 3.0);
  EXPECT_EQ(reader.optional_number("absent", 0.5, 0, 1), 0.5);
  EXPECT_EQ(message_of([&] { reader.required_number("big", 0, 1); }),
            "$.network.big: expected a number from 0 to 1, found the number 1.5");
  EXPECT_EQ(message_of([&] { reader.optional_number("big", 0, 2.5); }),
            "$.network.big: expected a number of at least 2.5, found the number 1.5");
  EXPECT_EQ(message_of([&] { reader.required_number("text"); }),
            "$.network.text: expected a number, found \"0.5\" (write the number without quotes)");
  const json not_a_number = {{"nan", std::nan("")}, {"infinite", INFINITY}};
  ObjectReader odd(not_a_number, "$");
  EXPECT_EQ(message_of([&] { odd.required_number("nan"); }),
            "$.nan: expected a number, found the number NaN");
  EXPECT_EQ(message_of([&] { odd.required_number("infinite"); }),
            "$.infinite: expected a number, found the number infinity");
}

TEST(ObjectReader, BoolFields) {
  const json document = {{"on", true}, {"quoted", "false"}, {"one", 1}};
  ObjectReader reader(document, "$.probe");
  EXPECT_TRUE(reader.required_bool("on"));
  EXPECT_FALSE(reader.optional_bool("absent", false));
  EXPECT_TRUE(reader.optional_bool("absent_too", true));
  EXPECT_EQ(message_of([&] { reader.required_bool("quoted"); }),
            "$.probe.quoted: expected true or false, found \"false\" (write true or false "
            "without quotes)");
  EXPECT_EQ(message_of([&] { reader.optional_bool("one", false); }),
            "$.probe.one: expected true or false, found the number 1");
}

TEST(ObjectReader, DurationFields) {
  const json document = json::parse(R"({
    "faults": {"timeline": [{"at": "1m"}, {"at": "2m"}, {"at": 300}]},
    "duration": "5m", "zero": 0, "zero_text": "0", "words": "5 minutes", "long": "2d",
    "negative": -1, "flag": true})");
  ObjectReader root(document, "$");
  EXPECT_EQ(root.required_duration("duration").ns, 300 * kSecond);
  EXPECT_EQ(root.required_duration("zero").ns, 0);
  EXPECT_EQ(root.optional_duration("zero_text", sim::seconds(9)).ns, 0);
  EXPECT_EQ(root.optional_duration("absent", sim::seconds(9)).ns, 9 * kSecond);

  ArrayReader timeline = root.object("faults").array("timeline");
  EXPECT_EQ(timeline.object(1).required_duration("at").ns, 120 * kSecond);
  EXPECT_EQ(message_of([&] { timeline.object(2).required_duration("at"); }),
            "$.faults.timeline[2].at: expected a duration such as \"250us\", \"1.5s\" or \"5m\", "
            "found the number 300 (durations need a unit, such as \"300s\" or \"300ms\")");
  EXPECT_EQ(message_of([&] { root.required_duration("words"); }),
            "$.words: expected a duration such as \"250us\", \"1.5s\" or \"5m\", found \"5 "
            "minutes\" (did you mean \"5m\"?)");
  EXPECT_EQ(message_of([&] { root.required_duration("long", sim::seconds(1), sim::hours(24)); }),
            "$.long: expected a duration from 1s to 1d, found \"2d\"");
  EXPECT_EQ(message_of([&] { root.required_duration("duration", sim::hours(1)); }),
            "$.duration: expected a duration of at least 1h, found \"5m\"");
  EXPECT_EQ(message_of([&] { root.required_duration("negative"); }),
            "$.negative: expected a duration such as \"250us\", \"1.5s\" or \"5m\", found the "
            "number -1 (durations need a unit, such as \"-1s\" or \"-1ms\")");
  EXPECT_EQ(message_of([&] { root.required_duration("flag"); }),
            "$.flag: expected a duration such as \"250us\", \"1.5s\" or \"5m\", found true");
}

TEST(ObjectReader, ByteFields) {
  const json document = {{"item", "1.5KB"}, {"number", 1024}, {"big", "1MB"}, {"odd", "1.1KB"}};
  ObjectReader reader(document, "$.table");
  EXPECT_EQ(reader.required_bytes("item"), 1536u);
  EXPECT_EQ(reader.optional_bytes("absent", 4096), 4096u);
  EXPECT_EQ(message_of([&] { reader.required_bytes("number"); }),
            "$.table.number: expected a size such as \"512B\", \"1KB\" or \"1.5MB\", found the "
            "number 1024 (sizes need a unit, such as \"1024B\" or \"1024KB\")");
  EXPECT_EQ(message_of([&] { reader.optional_bytes("big", 0, 1024, 400 * 1024); }),
            "$.table.big: expected a size from 1KB to 400KB, found \"1MB\"");
  EXPECT_EQ(message_of([&] { reader.required_bytes("odd"); }),
            "$.table.odd: expected a size such as \"512B\", \"1KB\" or \"1.5MB\", found \"1.1KB\" "
            "(sizes are whole bytes, and this one has a fraction of a byte)");
}

TEST(ObjectReader, RateFields) {
  const json document = {{"rate", "100/s"}, {"number", 100}, {"fast", "2000/s"}};
  ObjectReader reader(document, "$.workload");
  EXPECT_EQ(reader.required_rate("rate"), 100.0);
  EXPECT_EQ(reader.optional_rate("absent", 2.5), 2.5);
  EXPECT_EQ(message_of([&] { reader.optional_rate("number", 1); }),
            "$.workload.number: expected a rate such as \"100/s\", \"6000/m\" or \"2.5/h\", found "
            "the number 100 (rates need a time unit, such as \"100/s\")");
  EXPECT_EQ(message_of([&] { reader.optional_rate("fast", 1, 0, 1000); }),
            "$.workload.fast: expected a rate of at most 1000/s, found \"2000/s\"");
}

TEST(ObjectReader, NullIsAWrongTypeNotAnAbsentField) {
  const json document = {{"rate", nullptr}};
  ObjectReader reader(document, "$");
  EXPECT_EQ(message_of([&] { reader.optional_rate("rate", 1); }),
            "$.rate: expected a rate such as \"100/s\", \"6000/m\" or \"2.5/h\", found null");
}

// ---- Nesting and paths --------------------------------------------------------------------

TEST(ObjectReader, NestedObjectsAndArraysCarryTheirPaths) {
  const json document = json::parse(R"({
    "topology": {"azs": ["a", 5]},
    "matrix": [[1, 2], [3, "x"]],
    "faults": {"timeline": [{"kind": "power_off"}, "oops"]},
    "empty": []})");
  ObjectReader root(document, "$");
  ArrayReader azs = root.object("topology").array("azs");
  EXPECT_EQ(azs.path(), "$.topology.azs");
  EXPECT_EQ(azs.size(), 2u);
  EXPECT_EQ(azs.string(0), "a");
  EXPECT_EQ(message_of([&] { azs.string(1); }),
            "$.topology.azs[1]: expected a string, found the number 5 (put the value in double "
            "quotes: \"5\")");

  ArrayReader matrix = root.array("matrix");
  EXPECT_EQ(matrix.array(0).integer(1), 2);
  EXPECT_EQ(message_of([&] { matrix.array(1).integer(1); }),
            "$.matrix[1][1]: expected an integer, found \"x\"");

  ArrayReader timeline = root.object("faults").array("timeline");
  EXPECT_EQ(timeline.object(0).path(), "$.faults.timeline[0]");
  EXPECT_EQ(message_of([&] { timeline.object(1); }),
            "$.faults.timeline[1]: expected an object, found \"oops\"");
  EXPECT_THROW(timeline.object(2), std::out_of_range);

  EXPECT_EQ(message_of([&] { root.array("empty").require_size(1, 10); }),
            "$.empty: expected an array of 1 to 10 elements, found an empty array");
  EXPECT_EQ(message_of([&] { matrix.require_size(3, SIZE_MAX); }),
            "$.matrix: expected an array of at least 3 elements, found an array of 2 elements");
  EXPECT_EQ(message_of([&] { matrix.require_size(1, 1); }),
            "$.matrix: expected an array of exactly 1 element, found an array of 2 elements");
  EXPECT_EQ(&matrix.require_size(2, 2), &matrix);

  EXPECT_FALSE(root.optional_object("absent").has_value());
  EXPECT_FALSE(root.optional_array("absent_array").has_value());
  EXPECT_EQ(message_of([&] { root.optional_array("topology"); }),
            "$.topology: expected an array, found an object with the field \"azs\"");
  EXPECT_EQ(message_of([&] { root.object("nothing_here"); }),
            "$.nothing_here: expected an object, found nothing (a required field is missing)");
}

TEST(ArrayReader, ElementAccessorsCheckTypes) {
  const json document = json::parse(R"(["5m", "1KB", 0.5, "spike", "splke", {"a": 1}])");
  ArrayReader array(document, "$.values");
  EXPECT_EQ(array.duration(0).ns, 300 * kSecond);
  EXPECT_EQ(array.bytes(1), 1024u);
  EXPECT_EQ(array.number(2, 0, 1), 0.5);
  EXPECT_EQ(array.enumeration(3, {"spike", "constant"}), "spike");
  EXPECT_EQ(message_of([&] {
              array.enumeration(4, {"spike", "constant"});
            }),
            "$.values[4]: expected one of \"spike\" or \"constant\", found \"splke\" (did you "
            "mean \"spike\"?)");
  EXPECT_EQ(array.raw(5).at("a"), 1);
  EXPECT_EQ(array.element_path(5), "$.values[5]");
  EXPECT_EQ(message_of([&] { ArrayReader not_array(document[5], "$.values[5]"); }),
            "$.values[5]: expected an array, found an object with the field \"a\"");
}

TEST(ObjectReader, ChildPathQuotesKeysThatAreNotPlainWords) {
  const json document = json::object();
  ObjectReader reader(document, "$.tables");
  EXPECT_EQ(reader.child_path("orders"), "$.tables.orders");
  EXPECT_EQ(reader.child_path("us-east-1a"), "$.tables.us-east-1a");
  EXPECT_EQ(reader.child_path("my table"), "$.tables[\"my table\"]");
  EXPECT_EQ(reader.child_path("a.b"), "$.tables[\"a.b\"]");
  EXPECT_EQ(reader.child_path(""), "$.tables[\"\"]");
  EXPECT_EQ(reader.child_path("say \"hi\""), "$.tables[\"say \\\"hi\\\"\"]");
}

// ---- finish() and unknown fields ----------------------------------------------------------

TEST(ObjectReader, FinishCatchesATypoInAnOptionalField) {
  const json document = {{"durration", "5m"}, {"rate", "1/s"}};
  ObjectReader reader(document, "$.workload");
  EXPECT_EQ(reader.optional_duration("duration", sim::seconds(1)).ns, kSecond);  // the typo hides
  EXPECT_EQ(reader.required_rate("rate"), 1.0);
  EXPECT_EQ(message_of([&] { reader.finish(); }),
            "$.workload.durration: expected one of the fields \"duration\" or \"rate\", found the "
            "unknown field \"durration\" (did you mean \"duration\"?)");
}

TEST(ObjectReader, FinishAcceptsAllowedKeysAndSuggestsThem) {
  const json good = {{"comment", "x"}, {"rate", "1/s"}};
  ObjectReader accepted(good, "$");
  accepted.allow({"comment"});
  accepted.required_rate("rate");
  EXPECT_NO_THROW(accepted.finish());

  const json typo = {{"coment", "x"}};
  ObjectReader suggested(typo, "$");
  suggested.allow({"comment", "notes"});
  EXPECT_EQ(message_of([&] { suggested.finish(); }),
            "$.coment: expected one of the fields \"comment\" or \"notes\", found the unknown "
            "field \"coment\" (did you mean \"comment\"?)");
}

TEST(ObjectReader, FinishWithoutACloseMatchSaysWhatToDo) {
  const json document = {{"zebra", 1}};
  ObjectReader reader(document, "$");
  reader.optional_int("rate", 0);
  EXPECT_EQ(message_of([&] { reader.finish(); }),
            "$.zebra: expected one of the fields \"rate\", found the unknown field \"zebra\" "
            "(check the spelling, or remove the field)");
  ObjectReader nothing_read(document, "$");
  EXPECT_EQ(message_of([&] { nothing_read.finish(); }),
            "$.zebra: expected no fields here, found the unknown field \"zebra\" (check the "
            "spelling, or remove the field)");
}

TEST(ObjectReader, FinishReportsTheFirstUnknownFieldInKeyOrder) {
  const json document = {{"zzz", 1}, {"aaa", 2}, {"known", 3}};
  ObjectReader reader(document, "$");
  reader.required_int("known");
  const std::optional<ScenarioError> error = caught([&] { reader.finish(); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->path, "$.aaa");
}

TEST(ObjectReader, HasDoesNotCountAsReadingButRawDoes) {
  const json document = {{"extra", {{"anything", true}}}};
  ObjectReader reader(document, "$");
  EXPECT_TRUE(reader.has("extra"));
  EXPECT_FALSE(reader.has("missing"));
  EXPECT_THROW(reader.finish(), ScenarioError);
  EXPECT_EQ(reader.raw("extra").at("anything"), true);
  EXPECT_NO_THROW(reader.finish());
  EXPECT_EQ(message_of([&] { reader.raw("missing"); }),
            "$.missing: expected a value, found nothing (a required field is missing)");
}

// ---- Odd JSON -----------------------------------------------------------------------------

// Deeper than parse_json_file() allows, to show the readers themselves do not recurse. (Copying
// a json value does recurse inside nlohmann/json, hence a depth far below a stack overflow.)
json deeply_nested_arrays(int depth) {
  json value = json::array();
  for (int i = 0; i < depth; ++i) {
    json outer = json::array();
    outer.push_back(std::move(value));
    value = std::move(outer);
  }
  return value;
}

std::vector<json> odd_values() {
  return {nullptr,
          true,
          0,
          -1,
          1e308,
          -1e308,
          json(UINT64_MAX),
          json(INT64_MIN),
          1.5,
          std::nan(""),
          INFINITY,
          "",
          "caf\xC3\xA9 \xF0\x9F\x98\x80",
          std::string("nul\0byte", 8),
          "\xFF\xFE not utf-8",
          std::string(10'000, 'x'),
          json::object(),
          json::array(),
          json::parse(R"({"a": {"b": [1, {"c": null}]}})"),
          json::parse(R"([[[]], {}, "\u00e9"])"),
          deeply_nested_arrays(500),
          json::binary({1, 2, 3})};
}

// Runs `function`; anything other than success or a ScenarioError is a test failure.
void expect_success_or_scenario_error(const std::function<void()>& function,
                                      const std::string& label) {
  try {
    function();
  } catch (const ScenarioError& error) {
    EXPECT_GT(std::string(error.what()).size(), 0u) << label;
  } catch (const std::exception& error) {
    ADD_FAILURE() << label << " threw a non-ScenarioError: " << error.what();
  }
}

TEST(ObjectReader, OddJsonNeverCrashesAnyAccessor) {
  const std::vector<json> values = odd_values();
  for (std::size_t index = 0; index < values.size(); ++index) {
    const json document = {{"v", values[index]}};
    const std::string label = "odd value #" + std::to_string(index);
    ObjectReader reader(document, "$");
    const std::vector<std::function<void()>> accessors = {
        [&] { reader.required_string("v"); },
        [&] {
          reader.required_enum("v", {"a", "b"});
        },
        [&] { reader.required_int("v", -5, 5); },
        [&] { reader.required_int("v"); },
        [&] { reader.required_uint("v"); },
        [&] { reader.required_number("v", 0, 1); },
        [&] { reader.required_number("v"); },
        [&] { reader.required_bool("v"); },
        [&] { reader.required_duration("v"); },
        [&] { reader.required_bytes("v"); },
        [&] { reader.required_rate("v"); },
        [&] { reader.object("v").finish(); },
        [&] { reader.array("v").require_size(0, 1); },
        [&] { ObjectReader direct(values[index], "$"); },
        [&] { ArrayReader direct(values[index], "$"); },
        [&] { reader.finish(); },
    };
    for (const auto& accessor : accessors) expect_success_or_scenario_error(accessor, label);
    const std::string description = describe_json_value(values[index]);
    EXPECT_FALSE(description.empty()) << label;
    EXPECT_LT(description.size(), 200u) << label << ": " << description;
  }
}

TEST(DescribeJsonValue, DescribesEachKindBriefly) {
  EXPECT_EQ(describe_json_value(nullptr), "null");
  EXPECT_EQ(describe_json_value(false), "false");
  EXPECT_EQ(describe_json_value(300), "the number 300");
  EXPECT_EQ(describe_json_value(-2), "the number -2");
  EXPECT_EQ(describe_json_value(2.5), "the number 2.5");
  EXPECT_EQ(describe_json_value(""), "an empty string");
  EXPECT_EQ(describe_json_value("5 minutes"), "\"5 minutes\"");
  EXPECT_EQ(describe_json_value(std::string(100, 'a')),
            "\"" + std::string(48, 'a') + "...\" (100 bytes)");
  EXPECT_EQ(describe_json_value(json::object()), "an empty object");
  EXPECT_EQ(describe_json_value(json::parse(R"({"b": 1, "a": 2, "c": 3, "d": 4, "e": 5})")),
            "an object with fields \"a\", \"b\", \"c\" and 2 more");
  EXPECT_EQ(describe_json_value(json::array()), "an empty array");
  EXPECT_EQ(describe_json_value(json::array({1})), "an array of 1 element");
  EXPECT_EQ(describe_json_value(json::binary({1})), "binary data");
}

// ---- did_you_mean -------------------------------------------------------------------------

TEST(DidYouMean, SuggestsOnlyCloseCandidates) {
  const std::vector<std::string> fields = {"duration", "rate", "shape", "item_size"};
  EXPECT_EQ(did_you_mean("durration", fields), "duration");
  EXPECT_EQ(did_you_mean("rtae", fields), "rate");  // one transposition
  EXPECT_EQ(did_you_mean("Rate", fields), "rate");  // case only
  EXPECT_EQ(did_you_mean("item-size", fields), "item_size");
  EXPECT_EQ(did_you_mean("itemsize", fields), "item_size");
  EXPECT_EQ(did_you_mean("zebra", fields), "");
  EXPECT_EQ(did_you_mean("rate", fields), "");  // an exact match needs no suggestion
  EXPECT_EQ(did_you_mean("x", {"y"}), "");      // one letter is no evidence
  EXPECT_EQ(did_you_mean("at", {"id"}), "");    // replacing everything is not a typo
  EXPECT_EQ(did_you_mean("id", {"kind"}), "");  // nor is keeping nothing but the letters typed
  EXPECT_EQ(did_you_mean("druatoin", fields), "duration");  // two transpositions count as two
  EXPECT_EQ(did_you_mean("", fields), "");
  EXPECT_EQ(did_you_mean("anything", {}), "");
  EXPECT_EQ(did_you_mean(std::string(100, 'a'), {std::string(99, 'a')}), "");
}

TEST(DidYouMean, TiesGoToTheEarlierCandidate) {
  EXPECT_EQ(did_you_mean("cat", {"bat", "hat"}), "bat");
  EXPECT_EQ(did_you_mean("cat", {"hat", "bat"}), "hat");
  EXPECT_EQ(did_you_mean("cat", {"hat", "cart"}), "hat");
  // A transposition is one edit, so "rate" (1) beats "rtbc" (2) although plain Levenshtein
  // distance would tie them at 2.
  EXPECT_EQ(did_you_mean("rtae", {"rtbc", "rate"}), "rate");
}

// ---- parse_json_file ----------------------------------------------------------------------

TEST(ParseJsonFile, ReadsAValidFileWithUnicode) {
  const std::string path =
      write_file("valid.json", "\xEF\xBB\xBF{\"name\": \"caf\xC3\xA9\", \"\xE2\x9C\x93\": [1, 2]}");
  const json document = parse_json_file(path);
  EXPECT_EQ(document.at("name"), "caf\xC3\xA9");
  EXPECT_EQ(document.at("\xE2\x9C\x93").size(), 2u);
}

TEST(ParseJsonFile, SyntaxErrorReportsLineAndColumn) {
  const std::string path = write_file("syntax.json", "{\n  \"a\": 1,\n  \"b\" 2\n}\n");
  const std::optional<ScenarioError> error = caught([&] { parse_json_file(path); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->path, "$");
  EXPECT_EQ(error->file, path);
  EXPECT_EQ(error->line, 3u);
  EXPECT_EQ(error->column, 7u);
  EXPECT_EQ(std::string(error->what()),
            path +
                ":3:7: expected valid JSON, found a syntax error while parsing object separator - "
                "unexpected number literal; expected ':' (near \"  \\\"b\\\" 2\")");

  const std::string first_line = write_file("first_line.json", "{\"a\": 1,}");
  const std::optional<ScenarioError> comma = caught([&] { parse_json_file(first_line); });
  ASSERT_TRUE(comma.has_value());
  EXPECT_EQ(comma->line, 1u);
  EXPECT_EQ(comma->column, 9u);  // the "}" after the trailing comma
}

TEST(ParseJsonFile, SyntaxErrorHintsForCommonSlips) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"a\": 1, // note\n}", "(JSON does not allow comments)"},
      {"{\"a\": 1 # note\n}", "(JSON does not allow comments)"},
      {"{\"a\": [1, 2,\n ]}", "(JSON does not allow a comma after the last element)"},
      {"{\"a\": 1,}", "(JSON does not allow a comma after the last element)"},
      {"{'a': 1}", "(JSON strings need double quotes)"},
      {"{\"a\": [1, 2",
       "(the file ends too early; look for a missing \"}\", \"]\" or closing quote)"},
      {"", "(the file ends too early; look for a missing \"}\", \"]\" or closing quote)"},
  };
  for (const auto& [text, hint] : cases) {
    const std::string path = write_file("slip.json", text);
    const std::string message = message_of([&] { parse_json_file(path); });
    EXPECT_NE(message.find(hint), std::string::npos) << text << "\n" << message;
    EXPECT_EQ(message.rfind(path + ":", 0), 0u) << message;
  }
}

TEST(ParseJsonFile, OddContentGivesScenarioErrorsNotCrashes) {
  const std::string invalid_utf8 = write_file("utf8.json", "{\"a\": \"\xFF\"}");
  const std::string utf8_message = message_of([&] { parse_json_file(invalid_utf8); });
  EXPECT_NE(utf8_message.find("ill-formed UTF-8"), std::string::npos) << utf8_message;
  EXPECT_NE(utf8_message.find("\\xFF"), std::string::npos) << utf8_message;

  const std::string overflow = write_file("overflow.json", "{\"a\": 1e400}");
  EXPECT_EQ(message_of([&] { parse_json_file(overflow); }),
            overflow +
                ": expected valid JSON, found number overflow parsing '1e400' (numbers must fit in "
                "a 64-bit floating-point value)");

  const std::string huge = write_file("huge.json", "{\"a\": 123456789012345678901234567890}");
  const json document = parse_json_file(huge);
  ObjectReader reader(document, "$");
  EXPECT_EQ(message_of([&] { reader.required_int("a"); }),
            "$.a: expected an integer, found the number 1.2345678901234568e+29");
}

TEST(ParseJsonFile, RefusesDuplicateKeysWithTheirPath) {
  const std::string top = write_file("dup_top.json", R"({"rate": "1/s", "rate": "2/s"})");
  EXPECT_EQ(message_of([&] { parse_json_file(top); }),
            top +
                ": $.rate: expected each field once per object, found the field \"rate\" a second "
                "time (remove one of them; JSON readers silently keep only the last)");
  const std::string nested = write_file(
      "dup_nested.json",
      R"({"faults": {"timeline": [{"at": "1m"}, [], {"kind": "x", "at": "1m", "at": "2m"}]}})");
  const std::optional<ScenarioError> error = caught([&] { parse_json_file(nested); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->path, "$.faults.timeline[2].at");
  // The same key in different objects is fine.
  const std::string separate = write_file("dup_separate.json", R"([{"a": 1}, {"a": 2}])");
  EXPECT_EQ(parse_json_file(separate).size(), 2u);
}

TEST(ParseJsonFile, RefusesDeepNesting) {
  std::string deep = "{\"a\": ";
  for (int i = 0; i < 100'000; ++i) deep += "[";
  const std::string path = write_file("deep.json", deep);
  const std::optional<ScenarioError> error = caught([&] { parse_json_file(path); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->expected, "at most 64 levels of nested objects and arrays");
  EXPECT_EQ(error->path.rfind("$.a[0][0]", 0), 0u) << error->path;

  std::string fine = "";
  for (int i = 0; i < 64; ++i) fine += "[";
  for (int i = 0; i < 64; ++i) fine += "]";
  EXPECT_NO_THROW(parse_json_file(write_file("fine.json", fine)));
}

TEST(ParseJsonFile, MissingFileOrDirectoryIsAClearError) {
  const std::string missing = write_file("present.json", "{}") + ".absent";
  const std::optional<ScenarioError> error = caught([&] { parse_json_file(missing); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->found, "no file at that path");
  EXPECT_EQ(std::string(error->what())
                .rfind(missing + ": expected a readable JSON file, found no "
                                 "file at that path (relative paths start from",
                       0),
            0u)
      << error->what();
  const std::string directory = std::filesystem::path(missing).parent_path().string();
  EXPECT_EQ(message_of([&] { parse_json_file(directory); }),
            directory + ": expected a readable JSON file, found a directory");
}

// ---- apply_override -----------------------------------------------------------------------

TEST(ApplyOverride, ParsesValuesAsJsonOrElseAsStrings) {
  json document = json::parse(R"({"workload": {"rate": "1/s", "count": 1}})");
  apply_override(document, "workload.rate=100/s");
  apply_override(document, "workload.count=5");
  apply_override(document, "workload.on=true");
  apply_override(document, "workload.label=\"quoted\"");
  apply_override(document, "workload.shape={\"kind\": \"spike\"}");
  apply_override(document, "workload.empty=");
  apply_override(document, "workload.nothing=null");
  apply_override(document, "workload.equation=a=b");
  EXPECT_EQ(document.at("workload"),
            json::parse(R"({"rate": "100/s", "count": 5, "on": true, "label": "quoted",
                            "shape": {"kind": "spike"}, "empty": "", "nothing": null,
                            "equation": "a=b"})"));
}

TEST(ApplyOverride, CreatesMissingObjectsAndIndexesArrays) {
  json document = json::parse(R"({"faults": {"timeline": [{"at": "1m"}, {"at": "2m"}]}})");
  apply_override(document, "faults.timeline[1].at=90s");
  apply_override(document, "$.network.loss.probability=0.5");
  EXPECT_EQ(document.at("faults").at("timeline").at(1).at("at"), "90s");
  EXPECT_EQ(document.at("network"), json::parse(R"({"loss": {"probability": 0.5}})"));

  json null_document;
  apply_override(null_document, "name=x");
  EXPECT_EQ(null_document, json::parse(R"({"name": "x"})"));

  json matrix = json::parse(R"({"m": [[1, 2], [3, 4]]})");
  apply_override(matrix, "m[1][0]=9");
  EXPECT_EQ(matrix.at("m"), json::parse("[[1, 2], [9, 4]]"));
}

TEST(ApplyOverride, BadIndexOrShapeIsAScenarioErrorAndChangesNothing) {
  const json original = json::parse(R"({"faults": {"timeline": [{"at": "1m"}]}, "rate": 5,
                                        "empty": []})");
  json document = original;
  EXPECT_EQ(message_of([&] { apply_override(document, "faults.timeline[3].at=1s"); }),
            "$.faults.timeline[3]: expected an index from 0 to 0, found index 3, past the end of "
            "an array of 1 elements (--set changes existing elements; it does not add new ones)");
  EXPECT_EQ(message_of([&] { apply_override(document, "empty[0]=1"); }),
            "$.empty[0]: expected an index into a non-empty array, found index 0, past the end of "
            "an array of 0 elements (--set changes existing elements; it does not add new ones)");
  EXPECT_EQ(message_of([&] { apply_override(document, "rate.value=1"); }),
            "$.rate: expected an object, so that \"value\" can be set in it, found the number 5");
  EXPECT_EQ(message_of([&] { apply_override(document, "faults[0]=1"); }),
            "$.faults: expected an array, so that element [0] can be set, found an object with "
            "the field \"timeline\"");
  EXPECT_EQ(message_of([&] { apply_override(document, "brand.new[0]=1"); }),
            "$.brand.new: expected an array, so that element [0] can be set, found null (--set "
            "does not create arrays)");
  EXPECT_EQ(message_of([&] { apply_override(document, "rate={\"a\": 1, \"a\": 2}"); }),
            "$.rate.a: expected each field once per object, found the field \"a\" a second time "
            "(remove one of them; JSON readers silently keep only the last)");
  EXPECT_EQ(document, original);
}

TEST(ApplyOverride, MalformedAssignmentsAreRefused) {
  json document = json::object();
  const std::string path_expected =
      "--set: expected a path such as \"workload.rate\" or \"faults.timeline[1].at\", found ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"workload.rate",
       "--set: expected an assignment such as \"workload.rate=100/s\", found \"workload.rate\" "
       "(write --set <path>=<value>)"},
      {"=5",
       "--set: expected an assignment such as \"workload.rate=100/s\", found \"=5\" (write --set "
       "<path>=<value>)"},
      {"",
       "--set: expected an assignment such as \"workload.rate=100/s\", found an empty string "
       "(write --set <path>=<value>)"},
      {"a..b=1", path_expected + "\"a..b\" (a field name is empty)"},
      {"a.=1", path_expected + "\"a.\" (a field name is empty)"},
      {"a[x]=1", path_expected + "\"a[x]\" (an index is a number in brackets, as in [1])"},
      {"a[1=1", path_expected + "\"a[1\" (an index is a number in brackets, as in [1])"},
      {"a[]=1", path_expected + "\"a[]\" (an index is a number in brackets, as in [1])"},
      {"a[1]b=1", path_expected + "\"a[1]b\" (separate field names with \".\")"},
      {"[0]=1", path_expected + "\"[0]\" (a field name is empty)"},
      {"$=1", path_expected + "\"$\" (name a field inside the document)"},
  };
  for (const auto& [assignment, message] : cases) {
    const std::string& text = assignment;  // clang 14 cannot capture a structured binding
    EXPECT_EQ(message_of([&] { apply_override(document, text); }), message) << assignment;
  }
  EXPECT_EQ(document, json::object());
}

}  // namespace
}  // namespace dynasim::gameday
