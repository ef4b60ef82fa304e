// DynamoDB's expressions as the storage layer evaluates them: condition expressions (on
// PutItem, UpdateItem and DeleteItem, and as Query and Scan filters), update expressions (the
// actions of an UpdateItem) and key conditions (which items of a partition a Query reads).
//
// Follows the Developer Guide, "Comparison operator and function reference"
// (Expressions.OperatorsAndFunctions), "Update expressions" (Expressions.UpdateExpressions) and
// "Key condition expressions for the Query operation" (Query.KeyConditionExpressions). An
// expression here is its syntax tree after the request router has substituted the
// ExpressionAttributeNames and ExpressionAttributeValues placeholders: attributes are named by
// their top-level names (items here have no maps or lists, so there are no document paths) and
// values are literal AttributeValues.
//
// Evaluation rules (Developer Guide, as above, and the API reference's Condition page):
// - `a = b` holds only when both sides exist and are of one type and equal; a value of another
//   type "does not match" ({"S":"6"} is not {"N":"6"}). `a <> b` is its negation, so it holds
//   across types and when `a` is missing.
// - `<`, `<=`, `>`, `>=`, BETWEEN and begins_with are false, not errors, when an operand is
//   missing or the operands' types differ. Numbers compare by value; strings and binaries by
//   unsigned bytes. Requests whose literal operands these comparators cannot order (a Boolean or
//   a null) are refused by validate() with a ValidationException, as DynamoDB refuses them when
//   it parses the expression.
// - A Payload (the stand-in for large binary data, model/item.h) is of type B; it equals only an
//   identical Payload and orders against nothing.
// - Update actions read the item as it was before the update (DynamoDB evaluates every operand
//   of one UpdateExpression against the original item) and write a copy. ADD on a missing
//   attribute creates it with the number (DynamoDB starts from 0); ADD to a value that is not a
//   number, or `SET a = b + c` whose operands are not numbers or do not exist, is a
//   ValidationException found when the update is applied.
//
// Limits: at most 300 operators and functions per expression (Developer Guide, Constraints,
// "Expression parameters"); one attribute may be the target of at most one action (DynamoDB:
// "Two document paths overlap").
//
// Encodings (for the replication log and the wire) use model/codec.h's little-endian fields and
// are canonical: decode(encode(x)) == x and only bytes encode() writes decode.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/item.h"

namespace dynasim::model {

// Developer Guide, Constraints, "Expression parameters": 300 operators or functions.
inline constexpr uint32_t kMaxExpressionOperators = 300;

enum class ExpressionStatus : uint8_t {
  kOk,
  kTooComplex,        // more than kMaxExpressionOperators nodes
  kInvalidOperand,    // an operand a comparator or function cannot take (validate())
  kOverlappingPaths,  // one attribute targeted by two update actions
  kAttributeMissing,  // SET a = b + c, with b or c missing (at apply)
  kNotANumber,        // ADD or +/- on a value that is not a number (at apply)
  kNumberOutOfRange,  // the sum needs more than 38 digits or leaves DynamoDB's range
};
const char* to_string(ExpressionStatus status);

// The data types attribute_type() names: "NULL", "BOOL", "S", "N", "B".
enum class AttributeType : uint8_t { kNull, kBool, kString, kNumber, kBinary };
AttributeType type_of(const AttributeValue& value);

// One side of a comparison, or the value of a SET action.
struct Operand {
  enum class Kind : uint8_t {
    kValue,        // a literal (an ExpressionAttributeValue)
    kAttribute,    // the item's attribute of this name
    kIfNotExists,  // SET only: the attribute if the item has it, else the literal
  };
  Kind kind = Kind::kValue;
  std::string attribute;
  AttributeValue value;

  static Operand literal(AttributeValue value);
  static Operand attribute_named(std::string name);
  static Operand if_not_exists(std::string name, AttributeValue fallback);
  // The operand's value on `item` (nullptr: no item); nullopt for a missing attribute.
  std::optional<AttributeValue> resolve(const Item* item) const;
  bool operator==(const Operand&) const = default;
};

enum class Comparator : uint8_t {
  kEqual,
  kNotEqual,
  kLess,
  kLessOrEqual,
  kGreater,
  kGreaterOrEqual
};

// A condition expression's syntax tree. A default-constructed one is kTrue: no condition.
struct ConditionExpression {
  enum class Kind : uint8_t {
    kTrue,                // no condition (holds on anything)
    kItemExists,          // an item with the key exists: what a router makes of
                          // attribute_exists(<key attribute>) (api.h, resolve_key_attributes)
    kAttributeExists,     // attribute_exists(attribute)
    kAttributeNotExists,  // attribute_not_exists(attribute)
    kAttributeType,       // attribute_type(attribute, type)
    kBeginsWith,          // begins_with(attribute, operands[0]): S or B prefixes
    kCompare,             // operands[0] comparator operands[1]
    kBetween,             // operands[0] BETWEEN operands[1] AND operands[2]
    kAnd,                 // children[0] AND children[1]
    kOr,                  // children[0] OR children[1]
    kNot,                 // NOT children[0]
  };
  Kind kind = Kind::kTrue;
  std::string attribute;
  AttributeType type = AttributeType::kNull;
  Comparator comparator = Comparator::kEqual;
  std::vector<Operand> operands;
  std::vector<ConditionExpression> children;

  static ConditionExpression always();
  static ConditionExpression item_exists();
  static ConditionExpression exists(std::string attribute);
  static ConditionExpression not_exists(std::string attribute);
  static ConditionExpression type_is(std::string attribute, AttributeType type);
  static ConditionExpression begins_with(std::string attribute, AttributeValue prefix);
  static ConditionExpression compare(Operand left, Comparator comparator, Operand right);
  static ConditionExpression between(Operand value, Operand low, Operand high);
  static ConditionExpression both(ConditionExpression a, ConditionExpression b);
  static ConditionExpression either(ConditionExpression a, ConditionExpression b);
  static ConditionExpression negate(ConditionExpression a);

  bool is_true() const { return kind == Kind::kTrue; }
  // Nodes in the tree (the operators and functions DynamoDB counts, kTrue counting none).
  uint32_t node_count() const;
  // Shape and operand checks a request is refused for (kTooComplex, kInvalidOperand).
  ExpressionStatus validate() const;
  // Whether the condition holds on `item` (nullptr: no item with the key).
  bool evaluate(const Item* item) const;
  // The bytes that Payload literals stand for beyond their encoding (as WriteCommand counts).
  uint64_t stand_in_bytes() const;

  void encode_to(std::vector<uint8_t>& out) const;
  std::vector<uint8_t> encode() const;
  static bool decode(const std::vector<uint8_t>& bytes, ConditionExpression* out);

  bool operator==(const ConditionExpression&) const = default;
};

// One action of an update expression.
struct UpdateAction {
  enum class Kind : uint8_t {
    kSet,     // SET attribute = value [+|- right]
    kAdd,     // ADD attribute number
    kRemove,  // REMOVE attribute
  };
  enum class Arithmetic : uint8_t { kNone, kPlus, kMinus };
  Kind kind = Kind::kSet;
  std::string attribute;
  Operand value;  // kSet: the value or the left of the arithmetic; kAdd: a number literal
  Arithmetic arithmetic = Arithmetic::kNone;
  Operand right;  // kSet with arithmetic

  static UpdateAction set(std::string attribute, Operand value);
  static UpdateAction set_plus(std::string attribute, Operand left, Operand right);
  static UpdateAction set_minus(std::string attribute, Operand left, Operand right);
  static UpdateAction add(std::string attribute, Decimal number);
  static UpdateAction remove(std::string attribute);
  bool operator==(const UpdateAction&) const = default;
};

struct UpdateExpression {
  std::vector<UpdateAction> actions;

  bool empty() const { return actions.empty(); }
  ExpressionStatus validate() const;
  // Applies the actions to `current` (nullptr: no item, UpdateItem then creates one with
  // `key`) and writes the updated item to *out. Anything but kOk leaves *out untouched: the
  // update is refused as a whole.
  ExpressionStatus apply(const Item* current, const PrimaryKey& key, Item* out) const;
  uint64_t stand_in_bytes() const;

  void encode_to(std::vector<uint8_t>& out) const;
  std::vector<uint8_t> encode() const;
  static bool decode(const std::vector<uint8_t>& bytes, UpdateExpression* out);

  bool operator==(const UpdateExpression&) const = default;
};

// A Query's KeyConditionExpression: equality on the partition key and at most one condition on
// the sort key (Developer Guide, Query.KeyConditionExpressions: =, <, <=, >, >=, BETWEEN,
// begins_with; no <>, OR or NOT).
struct KeyCondition {
  enum class SortOp : uint8_t {
    kNone,
    kEqual,
    kLess,
    kLessOrEqual,
    kGreater,
    kGreaterOrEqual,
    kBetween,     // sort_value <= sort <= sort_upper
    kBeginsWith,  // S or B sort keys
  };
  KeyValue partition;
  SortOp sort_op = SortOp::kNone;
  KeyValue sort_value;
  KeyValue sort_upper;  // kBetween

  // kInvalidOperand: begins_with on a number, or BETWEEN with its bounds reversed (DynamoDB:
  // "the BETWEEN operator requires upper bound to be greater than or equal to lower bound").
  ExpressionStatus validate() const;
  bool matches(const PrimaryKey& key) const;
  // The smallest key a forward read starts at: every matching key is at or after it.
  PrimaryKey lower_bound() const;
  // True when `key` (in key order, at or after lower_bound()) is past every matching key, so a
  // forward read can stop.
  bool past_end(const PrimaryKey& key) const;

  void encode_to(std::vector<uint8_t>& out) const;
  static bool decode(const std::vector<uint8_t>& bytes, KeyCondition* out);
  bool operator==(const KeyCondition&) const = default;
};

// Shared codec pieces for the formats built on these (model/storage_protocol.cc).
namespace expression_codec {
void put_value(std::vector<uint8_t>& out, const AttributeValue& value);
void put_key_value(std::vector<uint8_t>& out, const KeyValue& value);
void put_primary_key(std::vector<uint8_t>& out, const PrimaryKey& key);
}  // namespace expression_codec

}  // namespace dynasim::model
