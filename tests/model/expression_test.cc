// Condition, update and key-condition expressions: evaluation tables with DynamoDB's rules
// (cross-type comparisons are false, `<>` is their negation, a missing attribute fails every
// comparison but `<>`), UpdateItem's actions (ADD on a missing attribute starts from 0, ADD to a
// string is refused, operands read the item before the update), decimal addition, validation,
// and encode/decode round trips over random expressions (with a check that damaged encodings
// are refused).
#include "model/expression.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sim/random.h"

namespace dynasim::model {
namespace {

Decimal number(const std::string& text) {
  Decimal value;
  EXPECT_TRUE(Decimal::parse(text, &value)) << text;
  return value;
}

Item sample_item() {
  Item item(PrimaryKey{KeyValue::string("k"), std::nullopt});
  item.set("n", number("10"));
  item.set("s", std::string("hello"));
  item.set("b", std::vector<uint8_t>{1, 2, 3});
  item.set("flag", true);
  item.set("nothing", Null{});
  return item;
}

using C = ConditionExpression;

Operand attr(const std::string& name) {
  return Operand::attribute_named(name);
}
Operand lit(AttributeValue value) {
  return Operand::literal(std::move(value));
}

TEST(ExpressionTest, ComparisonTable) {
  const Item item = sample_item();
  struct Row {
    C condition;
    bool expected;
  };
  const std::vector<Row> rows = {
      {C::compare(attr("n"), Comparator::kEqual, lit(number("10"))), true},
      {C::compare(attr("n"), Comparator::kEqual, lit(number("10.0"))), true},
      {C::compare(attr("n"), Comparator::kLess, lit(number("9.5"))), false},
      {C::compare(attr("n"), Comparator::kGreaterOrEqual, lit(number("-3"))), true},
      {C::compare(attr("s"), Comparator::kLess, lit(std::string("help"))), true},
      {C::compare(attr("s"), Comparator::kGreater, lit(std::string("hello"))), false},
      {C::compare(attr("b"), Comparator::kLess, lit(std::vector<uint8_t>{1, 2, 4})), true},
      // Across types: "=" and the orderings are false, "<>" true.
      {C::compare(attr("n"), Comparator::kEqual, lit(std::string("10"))), false},
      {C::compare(attr("n"), Comparator::kNotEqual, lit(std::string("10"))), true},
      {C::compare(attr("n"), Comparator::kLess, lit(std::string("99"))), false},
      {C::compare(attr("n"), Comparator::kGreaterOrEqual, lit(std::string("0"))), false},
      {C::compare(attr("s"), Comparator::kGreater, lit(number("1"))), false},
      {C::compare(attr("flag"), Comparator::kEqual, lit(true)), true},
      {C::compare(attr("nothing"), Comparator::kEqual, lit(Null{})), true},
      // A missing attribute: every comparison false but "<>".
      {C::compare(attr("missing"), Comparator::kEqual, lit(number("1"))), false},
      {C::compare(attr("missing"), Comparator::kNotEqual, lit(number("1"))), true},
      {C::compare(attr("missing"), Comparator::kLess, lit(number("1"))), false},
      // Attribute against attribute.
      {C::compare(attr("n"), Comparator::kEqual, attr("n")), true},
      {C::compare(attr("n"), Comparator::kLess, attr("s")), false},
      {C::between(attr("n"), lit(number("1")), lit(number("10"))), true},
      {C::between(attr("n"), lit(number("11")), lit(number("20"))), false},
      {C::between(attr("s"), lit(number("1")), lit(number("20"))), false},
      {C::begins_with("s", std::string("he")), true},
      {C::begins_with("s", std::string("hello!")), false},
      {C::begins_with("b", std::vector<uint8_t>{1, 2}), true},
      {C::begins_with("n", std::string("1")), false},
      {C::exists("n"), true},
      {C::exists("missing"), false},
      {C::not_exists("missing"), true},
      {C::type_is("n", AttributeType::kNumber), true},
      {C::type_is("s", AttributeType::kNumber), false},
      {C::type_is("nothing", AttributeType::kNull), true},
      {C::item_exists(), true},
      {C::both(C::exists("n"), C::exists("missing")), false},
      {C::either(C::exists("n"), C::exists("missing")), true},
      {C::negate(C::exists("missing")), true},
      {C::always(), true},
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].condition.validate(), ExpressionStatus::kOk) << "row " << i;
    EXPECT_EQ(rows[i].condition.evaluate(&item), rows[i].expected) << "row " << i;
  }
}

TEST(ExpressionTest, AMissingItemHasNoAttributes) {
  EXPECT_FALSE(C::exists("a").evaluate(nullptr));
  EXPECT_TRUE(C::not_exists("a").evaluate(nullptr));
  EXPECT_FALSE(C::item_exists().evaluate(nullptr));
  EXPECT_FALSE(C::compare(attr("a"), Comparator::kEqual, lit(number("1"))).evaluate(nullptr));
  EXPECT_TRUE(C::compare(attr("a"), Comparator::kNotEqual, lit(number("1"))).evaluate(nullptr));
  EXPECT_TRUE(C::always().evaluate(nullptr));
}

TEST(ExpressionTest, ValidationRefusesWhatDynamoDbRefuses) {
  // Orderings take S, N or B; BETWEEN needs its bounds in order; begins_with a string or binary.
  EXPECT_EQ(C::compare(attr("a"), Comparator::kLess, lit(true)).validate(),
            ExpressionStatus::kInvalidOperand);
  EXPECT_EQ(C::compare(attr("a"), Comparator::kEqual, lit(true)).validate(), ExpressionStatus::kOk);
  EXPECT_EQ(C::between(attr("a"), lit(number("5")), lit(number("1"))).validate(),
            ExpressionStatus::kInvalidOperand);
  EXPECT_EQ(C::begins_with("a", number("1")).validate(), ExpressionStatus::kInvalidOperand);
  EXPECT_EQ(C::exists("").validate(), ExpressionStatus::kInvalidOperand);
  EXPECT_EQ(C::negate(C::always()).validate(), ExpressionStatus::kInvalidOperand);
  // 300 operators at most.
  C chain = C::exists("a");
  for (int i = 0; i < 149; ++i) chain = C::both(chain, C::exists("a"));
  EXPECT_EQ(chain.node_count(), 299u);
  EXPECT_EQ(chain.validate(), ExpressionStatus::kOk);
  chain = C::both(chain, C::exists("a"));
  EXPECT_EQ(chain.validate(), ExpressionStatus::kTooComplex);
  // Updates: ADD takes a number, "+" numbers, one action per attribute.
  UpdateExpression update;
  update.actions = {UpdateAction::add("x", number("1")), UpdateAction::remove("x")};
  EXPECT_EQ(update.validate(), ExpressionStatus::kOverlappingPaths);
  update.actions = {UpdateAction::set_plus("x", attr("x"), lit(std::string("1")))};
  EXPECT_EQ(update.validate(), ExpressionStatus::kInvalidOperand);
  UpdateAction add_string = UpdateAction::add("x", number("1"));
  add_string.value = lit(std::string("1"));
  update.actions = {add_string};
  EXPECT_EQ(update.validate(), ExpressionStatus::kInvalidOperand);
}

TEST(ExpressionTest, UpdateActionsFollowUpdateItem) {
  const PrimaryKey key{KeyValue::string("k"), std::nullopt};
  const Item item = sample_item();
  UpdateExpression update;
  Item out;

  // ADD on a missing attribute starts from 0; on a number adds; negative subtracts.
  update.actions = {UpdateAction::add("count", number("5")), UpdateAction::add("n", number("-3"))};
  ASSERT_EQ(update.apply(&item, key, &out), ExpressionStatus::kOk);
  EXPECT_EQ(*out.find("count"), AttributeValue(number("5")));
  EXPECT_EQ(*out.find("n"), AttributeValue(number("7")));

  // ADD on a missing item creates the item.
  ASSERT_EQ(update.apply(nullptr, key, &out), ExpressionStatus::kOk);
  EXPECT_EQ(out.key(), key);
  EXPECT_EQ(*out.find("n"), AttributeValue(number("-3")));

  // ADD to a string is refused, and nothing changes.
  out = item;
  update.actions = {UpdateAction::add("s", number("1"))};
  EXPECT_EQ(update.apply(&item, key, &out), ExpressionStatus::kNotANumber);
  EXPECT_EQ(out, item);

  // SET a = a + n, SET a = b - n; a missing operand is refused.
  update.actions = {UpdateAction::set_plus("n", attr("n"), lit(number("0.5"))),
                    UpdateAction::set_minus("m", attr("n"), lit(number("11")))};
  ASSERT_EQ(update.apply(&item, key, &out), ExpressionStatus::kOk);
  EXPECT_EQ(*out.find("n"), AttributeValue(number("10.5")));
  EXPECT_EQ(*out.find("m"), AttributeValue(number("-1")));  // reads n before the update
  update.actions = {UpdateAction::set_plus("n", attr("missing"), lit(number("1")))};
  EXPECT_EQ(update.apply(&item, key, &out), ExpressionStatus::kAttributeMissing);
  update.actions = {UpdateAction::set_plus("n", attr("s"), lit(number("1")))};
  EXPECT_EQ(update.apply(&item, key, &out), ExpressionStatus::kNotANumber);
  // if_not_exists gives the counter idiom without ADD.
  update.actions = {
      UpdateAction::set_plus("c", Operand::if_not_exists("c", number("0")), lit(number("1")))};
  ASSERT_EQ(update.apply(&item, key, &out), ExpressionStatus::kOk);
  EXPECT_EQ(*out.find("c"), AttributeValue(number("1")));

  // SET and REMOVE read the original item: a swap works.
  update.actions = {UpdateAction::set("s", attr("n")), UpdateAction::set("n", attr("s")),
                    UpdateAction::remove("flag")};
  ASSERT_EQ(update.apply(&item, key, &out), ExpressionStatus::kOk);
  EXPECT_EQ(*out.find("s"), AttributeValue(number("10")));
  EXPECT_EQ(*out.find("n"), AttributeValue(std::string("hello")));
  EXPECT_EQ(out.find("flag"), nullptr);
}

TEST(ExpressionTest, DecimalAdditionIsExactWithin38Digits) {
  struct Row {
    const char* a;
    const char* b;
    const char* sum;
  };
  const std::vector<Row> rows = {
      {"1", "2", "3"},
      {"0.1", "0.2", "0.3"},
      {"-5", "3", "-2"},
      {"5", "-5", "0"},
      {"99999999999999999999", "1", "100000000000000000000"},
      {"1e10", "1e-10", "10000000000.0000000001"},
      {"-0.001", "-0.009", "-0.01"},
      {"12.5", "-0.5", "12"},
  };
  for (const Row& row : rows) {
    Decimal sum;
    ASSERT_TRUE(Decimal::add(number(row.a), number(row.b), &sum)) << row.a << " + " << row.b;
    EXPECT_EQ(sum, number(row.sum)) << row.a << " + " << row.b << " = " << sum.to_string();
  }
  // 38 digits of 9 plus 1 is 1e38: one digit, fine; 1e37 + 1e-1 needs 39 digits: refused.
  Decimal sum;
  EXPECT_TRUE(Decimal::add(number(std::string(38, '9')), number("1"), &sum));
  EXPECT_FALSE(Decimal::add(number("1e37"), number("0.1"), &sum));
  EXPECT_FALSE(Decimal::add(number("9e125"), number("9e125"), &sum));
}

TEST(ExpressionTest, KeyConditionsSelectAndBoundTheirRange) {
  using Op = KeyCondition::SortOp;
  const auto key = [](const std::string& p, const std::string& s) {
    return PrimaryKey{KeyValue::string(p), KeyValue::string(s)};
  };
  KeyCondition condition;
  condition.partition = KeyValue::string("p");
  condition.sort_op = Op::kBeginsWith;
  condition.sort_value = KeyValue::string("ab");
  EXPECT_EQ(condition.validate(), ExpressionStatus::kOk);
  EXPECT_TRUE(condition.matches(key("p", "abc")));
  EXPECT_FALSE(condition.matches(key("p", "ac")));
  EXPECT_FALSE(condition.matches(key("q", "abc")));
  EXPECT_EQ(condition.lower_bound(), key("p", "ab"));
  EXPECT_FALSE(condition.past_end(key("p", "abz")));
  EXPECT_TRUE(condition.past_end(key("p", "ac")));
  EXPECT_TRUE(condition.past_end(key("q", "a")));
  condition.sort_op = Op::kBetween;
  condition.sort_value = KeyValue::string("b");
  condition.sort_upper = KeyValue::string("d");
  EXPECT_TRUE(condition.matches(key("p", "c")));
  EXPECT_TRUE(condition.matches(key("p", "d")));
  EXPECT_FALSE(condition.matches(key("p", "da")));
  EXPECT_TRUE(condition.past_end(key("p", "da")));
  condition.sort_upper = KeyValue::string("a");
  EXPECT_EQ(condition.validate(), ExpressionStatus::kInvalidOperand);
  condition.sort_op = Op::kLess;
  EXPECT_EQ(condition.lower_bound(), (PrimaryKey{KeyValue::string("p"), std::nullopt}));
  EXPECT_TRUE(condition.past_end(key("p", "b")));
  EXPECT_FALSE(condition.matches(key("p", "b")));
  condition.sort_op = Op::kBeginsWith;
  condition.sort_value = KeyValue::number_value(number("1"));
  EXPECT_EQ(condition.validate(), ExpressionStatus::kInvalidOperand);
}

// --- Random expressions for the round trips ----------------------------------------------------

AttributeValue random_value(sim::Random& random) {
  switch (random.uniform_u64(6)) {
    case 0:
      return Null{};
    case 1:
      return random.uniform_u64(2) == 1;
    case 2:
      return std::string(random.uniform_u64(6), static_cast<char>('a' + random.uniform_u64(26)));
    case 3:
      return Decimal::from_int(random.uniform_int(-1000, 1000));
    case 4:
      return std::vector<uint8_t>(random.uniform_u64(5),
                                  static_cast<uint8_t>(random.uniform_u64(256)));
    default:
      return Payload{random.uniform_u64(100'000), random.uniform_u64(9), random.next_u64()};
  }
}

std::string random_name(sim::Random& random) {
  return std::string(1 + random.uniform_u64(3), static_cast<char>('a' + random.uniform_u64(4)));
}

Operand random_operand(sim::Random& random, bool allow_if_not_exists) {
  const uint64_t kind = random.uniform_u64(allow_if_not_exists ? 3 : 2);
  if (kind == 0) return Operand::literal(random_value(random));
  if (kind == 1) return Operand::attribute_named(random_name(random));
  return Operand::if_not_exists(random_name(random), random_value(random));
}

C random_condition(sim::Random& random, int depth) {
  const uint64_t pick = random.uniform_u64(depth > 0 ? 11 : 8);
  switch (pick) {
    case 0:
      return C::item_exists();
    case 1:
      return C::exists(random_name(random));
    case 2:
      return C::not_exists(random_name(random));
    case 3:
      return C::type_is(random_name(random), static_cast<AttributeType>(random.uniform_u64(5)));
    case 4:
      return C::begins_with(random_name(random), random_value(random));
    case 5:
    case 6:
      return C::compare(random_operand(random, false),
                        static_cast<Comparator>(random.uniform_u64(6)),
                        random_operand(random, false));
    case 7:
      return C::between(random_operand(random, false), random_operand(random, false),
                        random_operand(random, false));
    case 8:
      return C::both(random_condition(random, depth - 1), random_condition(random, depth - 1));
    case 9:
      return C::either(random_condition(random, depth - 1), random_condition(random, depth - 1));
    default:
      return C::negate(random_condition(random, depth - 1));
  }
}

UpdateExpression random_update(sim::Random& random) {
  UpdateExpression update;
  const uint64_t count = random.uniform_u64(6);
  for (uint64_t i = 0; i < count; ++i) {
    switch (random.uniform_u64(5)) {
      case 0:
        update.actions.push_back(
            UpdateAction::set(random_name(random), random_operand(random, true)));
        break;
      case 1:
        update.actions.push_back(UpdateAction::set_plus(
            random_name(random), random_operand(random, true), random_operand(random, true)));
        break;
      case 2:
        update.actions.push_back(UpdateAction::set_minus(
            random_name(random), random_operand(random, true), random_operand(random, true)));
        break;
      case 3:
        update.actions.push_back(
            UpdateAction::add(random_name(random), Decimal::from_int(random.uniform_int(-50, 50))));
        break;
      default:
        update.actions.push_back(UpdateAction::remove(random_name(random)));
        break;
    }
  }
  return update;
}

TEST(ExpressionTest, RandomExpressionsRoundTripAndDamageIsRefused) {
  sim::Random random(20261124);
  uint64_t damaged_refused = 0;
  for (int round = 0; round < 2000; ++round) {
    const C condition = random_condition(random, 4);
    const std::vector<uint8_t> bytes = condition.encode();
    C decoded;
    ASSERT_TRUE(C::decode(bytes, &decoded)) << "round " << round;
    EXPECT_EQ(decoded, condition) << "round " << round;
    EXPECT_EQ(decoded.encode(), bytes);
    // Truncation is always refused.
    std::vector<uint8_t> truncated(bytes.begin(), bytes.end() - 1);
    EXPECT_FALSE(C::decode(truncated, &decoded));
    // Extra bytes are refused.
    std::vector<uint8_t> longer = bytes;
    longer.push_back(0);
    EXPECT_FALSE(C::decode(longer, &decoded));
    // A flipped byte either is refused or decodes to something that re-encodes to it exactly
    // (the encoding is canonical).
    std::vector<uint8_t> flipped = bytes;
    flipped[random.uniform_u64(flipped.size())] ^=
        static_cast<uint8_t>(1 + random.uniform_u64(255));
    if (C::decode(flipped, &decoded)) {
      EXPECT_EQ(decoded.encode(), flipped);
    } else {
      ++damaged_refused;
    }

    const UpdateExpression update = random_update(random);
    const std::vector<uint8_t> update_bytes = update.encode();
    UpdateExpression decoded_update;
    ASSERT_TRUE(UpdateExpression::decode(update_bytes, &decoded_update));
    EXPECT_EQ(decoded_update, update);
    std::vector<uint8_t> short_update(update_bytes.begin(), update_bytes.end() - 1);
    EXPECT_FALSE(UpdateExpression::decode(short_update, &decoded_update));

    KeyCondition key_condition;
    key_condition.partition = KeyValue::string(random_name(random));
    key_condition.sort_op = static_cast<KeyCondition::SortOp>(random.uniform_u64(8));
    key_condition.sort_value = KeyValue::number_value(Decimal::from_int(random.uniform_int(0, 9)));
    if (key_condition.sort_op == KeyCondition::SortOp::kNone) key_condition.sort_value = KeyValue{};
    if (key_condition.sort_op == KeyCondition::SortOp::kBetween) {
      key_condition.sort_upper = KeyValue::number_value(Decimal::from_int(10));
    }
    std::vector<uint8_t> key_bytes;
    key_condition.encode_to(key_bytes);
    KeyCondition decoded_key;
    ASSERT_TRUE(KeyCondition::decode(key_bytes, &decoded_key));
    EXPECT_EQ(decoded_key, key_condition);
  }
  EXPECT_GT(damaged_refused, 100u);
}

// The round-trip check can fail: an encoder that dropped a field would be caught. Here a
// decoded expression with one operand changed is not equal to the original, and its bytes
// differ, so the equality the property test asserts is not vacuous.
TEST(ExpressionTest, TheRoundTripCheckSeesAChangedOperand) {
  const C condition = C::compare(attr("a"), Comparator::kLess, lit(number("5")));
  C changed;
  ASSERT_TRUE(C::decode(condition.encode(), &changed));
  changed.operands[1] = lit(number("6"));
  EXPECT_NE(changed, condition);
  EXPECT_NE(changed.encode(), condition.encode());
}

}  // namespace
}  // namespace dynasim::model
