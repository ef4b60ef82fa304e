#include "model/expression.h"

#include <algorithm>
#include <set>
#include <string_view>

#include "model/codec.h"

namespace dynasim::model {

namespace {

using codec::put_u32;
using codec::put_u64;
using codec::put_u8;
using codec::Reader;

// Strings, binaries and names on the wire: a u32 length, then the bytes. Our bound on one such
// field: an item is at most 400 KB, so no value is longer.
constexpr uint32_t kMaxFieldBytes = 512 * 1024;

void put_text(std::vector<uint8_t>& out, std::string_view text) {
  put_u32(out, static_cast<uint32_t>(text.size()));
  out.insert(out.end(), text.begin(), text.end());
}

bool get_text(Reader& in, std::string* text) {
  const uint32_t length = in.u32();
  if (!in.ok || length > kMaxFieldBytes || in.bytes.size() - in.at < length) {
    in.ok = false;
    return false;
  }
  text->assign(reinterpret_cast<const char*>(in.bytes.data() + in.at), length);
  in.at += length;
  return true;
}

enum ValueTag : uint8_t { kTagNull, kTagBool, kTagString, kTagNumber, kTagBinary, kTagPayload };

bool get_value(Reader& in, AttributeValue* value) {
  const uint8_t tag = in.u8();
  if (!in.ok) return false;
  switch (tag) {
    case kTagNull:
      *value = Null{};
      return true;
    case kTagBool: {
      const uint8_t flag = in.u8();
      if (!in.ok || flag > 1) return false;
      *value = flag == 1;
      return true;
    }
    case kTagString: {
      std::string text;
      if (!get_text(in, &text)) return false;
      *value = std::move(text);
      return true;
    }
    case kTagNumber: {
      std::string text;
      Decimal number;
      if (!get_text(in, &text) || !Decimal::parse(text, &number)) return false;
      // Canonical: the text must be the number's own.
      if (number.to_string() != text) return false;
      *value = number;
      return true;
    }
    case kTagBinary: {
      std::string raw;
      if (!get_text(in, &raw)) return false;
      *value = std::vector<uint8_t>(raw.begin(), raw.end());
      return true;
    }
    case kTagPayload: {
      Payload payload;
      payload.size_bytes = in.u64();
      payload.version = in.u64();
      payload.checksum = in.u64();
      if (!in.ok) return false;
      *value = payload;
      return true;
    }
    default:
      return false;
  }
}

bool get_key_value(Reader& in, KeyValue* value) {
  const uint8_t type = in.u8();
  if (!in.ok || type > static_cast<uint8_t>(ScalarType::kBinary)) return false;
  std::string text;
  if (!get_text(in, &text)) return false;
  value->type = static_cast<ScalarType>(type);
  value->bytes.clear();
  value->number = Decimal();
  if (value->type == ScalarType::kNumber) {
    if (!Decimal::parse(text, &value->number) || value->number.to_string() != text) return false;
  } else {
    value->bytes = std::move(text);
  }
  return true;
}

void put_operand(std::vector<uint8_t>& out, const Operand& operand) {
  put_u8(out, static_cast<uint8_t>(operand.kind));
  switch (operand.kind) {
    case Operand::Kind::kValue:
      expression_codec::put_value(out, operand.value);
      break;
    case Operand::Kind::kAttribute:
      put_text(out, operand.attribute);
      break;
    case Operand::Kind::kIfNotExists:
      put_text(out, operand.attribute);
      expression_codec::put_value(out, operand.value);
      break;
  }
}

bool get_operand(Reader& in, Operand* operand) {
  const uint8_t kind = in.u8();
  if (!in.ok || kind > static_cast<uint8_t>(Operand::Kind::kIfNotExists)) return false;
  *operand = Operand{};
  operand->kind = static_cast<Operand::Kind>(kind);
  switch (operand->kind) {
    case Operand::Kind::kValue:
      return get_value(in, &operand->value);
    case Operand::Kind::kAttribute:
      return get_text(in, &operand->attribute);
    case Operand::Kind::kIfNotExists:
      return get_text(in, &operand->attribute) && get_value(in, &operand->value);
  }
  return false;
}

uint64_t value_stand_in_bytes(const AttributeValue& value) {
  if (const Payload* payload = std::get_if<Payload>(&value)) {
    return payload->size_bytes > 24 ? payload->size_bytes - 24 : 0;
  }
  return 0;
}

uint64_t operand_stand_in_bytes(const Operand& operand) {
  return operand.kind == Operand::Kind::kAttribute ? 0 : value_stand_in_bytes(operand.value);
}

// The order of two values of one orderable type (S, N, B); nullopt when the types differ or a
// value cannot be ordered (Null, BOOL, a Payload).
std::optional<std::strong_ordering> order_of(const AttributeValue& a, const AttributeValue& b) {
  if (a.index() != b.index()) return std::nullopt;
  if (const auto* x = std::get_if<std::string>(&a)) {
    const auto& y = std::get<std::string>(b);
    const int order = std::string_view(*x).compare(y);  // char_traits<char> compares unsigned
    return order <=> 0;
  }
  if (const auto* x = std::get_if<Decimal>(&a)) return *x <=> std::get<Decimal>(b);
  if (const auto* x = std::get_if<std::vector<uint8_t>>(&a)) {
    return *x <=> std::get<std::vector<uint8_t>>(b);
  }
  return std::nullopt;
}

bool orderable_literal(const Operand& operand) {
  if (operand.kind == Operand::Kind::kIfNotExists) return false;
  if (operand.kind == Operand::Kind::kAttribute) return !operand.attribute.empty();
  const AttributeValue& v = operand.value;
  return std::holds_alternative<std::string>(v) || std::holds_alternative<Decimal>(v) ||
         std::holds_alternative<std::vector<uint8_t>>(v);
}

bool valid_condition_operand(const Operand& operand) {
  if (operand.kind == Operand::Kind::kIfNotExists) return false;  // SET only
  return operand.kind == Operand::Kind::kValue || !operand.attribute.empty();
}

bool compare_holds(Comparator comparator, const std::optional<AttributeValue>& left,
                   const std::optional<AttributeValue>& right) {
  if (comparator == Comparator::kEqual || comparator == Comparator::kNotEqual) {
    const bool equal = left.has_value() && right.has_value() && *left == *right;
    return comparator == Comparator::kEqual ? equal : !equal;
  }
  if (!left || !right) return false;
  const std::optional<std::strong_ordering> order = order_of(*left, *right);
  if (!order) return false;
  switch (comparator) {
    case Comparator::kLess:
      return *order < 0;
    case Comparator::kLessOrEqual:
      return *order <= 0;
    case Comparator::kGreater:
      return *order > 0;
    case Comparator::kGreaterOrEqual:
      return *order >= 0;
    default:
      return false;
  }
}

bool has_prefix(const AttributeValue& value, const AttributeValue& prefix) {
  if (const auto* text = std::get_if<std::string>(&value)) {
    const auto* start = std::get_if<std::string>(&prefix);
    return start != nullptr && text->compare(0, start->size(), *start) == 0 &&
           text->size() >= start->size();
  }
  if (const auto* raw = std::get_if<std::vector<uint8_t>>(&value)) {
    const auto* start = std::get_if<std::vector<uint8_t>>(&prefix);
    return start != nullptr && raw->size() >= start->size() &&
           std::equal(start->begin(), start->end(), raw->begin());
  }
  return false;
}

void put_condition(std::vector<uint8_t>& out, const ConditionExpression& c) {
  using Kind = ConditionExpression::Kind;
  put_u8(out, static_cast<uint8_t>(c.kind));
  switch (c.kind) {
    case Kind::kTrue:
    case Kind::kItemExists:
      break;
    case Kind::kAttributeExists:
    case Kind::kAttributeNotExists:
      put_text(out, c.attribute);
      break;
    case Kind::kAttributeType:
      put_text(out, c.attribute);
      put_u8(out, static_cast<uint8_t>(c.type));
      break;
    case Kind::kBeginsWith:
      put_text(out, c.attribute);
      put_operand(out, c.operands.at(0));
      break;
    case Kind::kCompare:
      put_u8(out, static_cast<uint8_t>(c.comparator));
      put_operand(out, c.operands.at(0));
      put_operand(out, c.operands.at(1));
      break;
    case Kind::kBetween:
      for (size_t i = 0; i < 3; ++i) put_operand(out, c.operands.at(i));
      break;
    case Kind::kAnd:
    case Kind::kOr:
      put_condition(out, c.children.at(0));
      put_condition(out, c.children.at(1));
      break;
    case Kind::kNot:
      put_condition(out, c.children.at(0));
      break;
  }
}

// `budget` counts nodes decoded, so a hostile encoding cannot recurse deeper than the limit.
bool get_condition(Reader& in, ConditionExpression* c, uint32_t* budget) {
  using Kind = ConditionExpression::Kind;
  if (*budget == 0) return false;
  --*budget;
  const uint8_t kind = in.u8();
  if (!in.ok || kind > static_cast<uint8_t>(Kind::kNot)) return false;
  *c = ConditionExpression{};
  c->kind = static_cast<Kind>(kind);
  switch (c->kind) {
    case Kind::kTrue:
    case Kind::kItemExists:
      return true;
    case Kind::kAttributeExists:
    case Kind::kAttributeNotExists:
      return get_text(in, &c->attribute);
    case Kind::kAttributeType: {
      if (!get_text(in, &c->attribute)) return false;
      const uint8_t type = in.u8();
      if (!in.ok || type > static_cast<uint8_t>(AttributeType::kBinary)) return false;
      c->type = static_cast<AttributeType>(type);
      return true;
    }
    case Kind::kBeginsWith:
      c->operands.resize(1);
      return get_text(in, &c->attribute) && get_operand(in, &c->operands[0]);
    case Kind::kCompare: {
      const uint8_t comparator = in.u8();
      if (!in.ok || comparator > static_cast<uint8_t>(Comparator::kGreaterOrEqual)) return false;
      c->comparator = static_cast<Comparator>(comparator);
      c->operands.resize(2);
      return get_operand(in, &c->operands[0]) && get_operand(in, &c->operands[1]);
    }
    case Kind::kBetween:
      c->operands.resize(3);
      return get_operand(in, &c->operands[0]) && get_operand(in, &c->operands[1]) &&
             get_operand(in, &c->operands[2]);
    case Kind::kAnd:
    case Kind::kOr:
      c->children.resize(2);
      return get_condition(in, &c->children[0], budget) &&
             get_condition(in, &c->children[1], budget);
    case Kind::kNot:
      c->children.resize(1);
      return get_condition(in, &c->children[0], budget);
  }
  return false;
}

bool add_or_subtract(const Decimal& a, const Decimal& b, bool subtract, Decimal* out) {
  return Decimal::add(a, subtract ? b.negated() : b, out);
}

}  // namespace

namespace expression_codec {

void put_value(std::vector<uint8_t>& out, const AttributeValue& value) {
  put_u8(out, static_cast<uint8_t>(value.index()));
  switch (value.index()) {
    case kTagNull:
      break;
    case kTagBool:
      put_u8(out, std::get<bool>(value) ? 1 : 0);
      break;
    case kTagString:
      put_text(out, std::get<std::string>(value));
      break;
    case kTagNumber:
      put_text(out, std::get<Decimal>(value).to_string());
      break;
    case kTagBinary: {
      const auto& raw = std::get<std::vector<uint8_t>>(value);
      put_u32(out, static_cast<uint32_t>(raw.size()));
      out.insert(out.end(), raw.begin(), raw.end());
      break;
    }
    case kTagPayload: {
      const Payload& payload = std::get<Payload>(value);
      put_u64(out, payload.size_bytes);
      put_u64(out, payload.version);
      put_u64(out, payload.checksum);
      break;
    }
  }
}

void put_key_value(std::vector<uint8_t>& out, const KeyValue& value) {
  put_u8(out, static_cast<uint8_t>(value.type));
  put_text(out, value.type == ScalarType::kNumber ? value.number.to_string() : value.bytes);
}

void put_primary_key(std::vector<uint8_t>& out, const PrimaryKey& key) {
  put_key_value(out, key.partition);
  put_u8(out, key.sort.has_value() ? 1 : 0);
  if (key.sort) put_key_value(out, *key.sort);
}

}  // namespace expression_codec

const char* to_string(ExpressionStatus status) {
  switch (status) {
    case ExpressionStatus::kOk:
      return "ok";
    case ExpressionStatus::kTooComplex:
      return "too many operators";
    case ExpressionStatus::kInvalidOperand:
      return "invalid operand";
    case ExpressionStatus::kOverlappingPaths:
      return "two actions on one attribute";
    case ExpressionStatus::kAttributeMissing:
      return "an operand attribute does not exist";
    case ExpressionStatus::kNotANumber:
      return "an operand is not a number";
    case ExpressionStatus::kNumberOutOfRange:
      return "number out of range";
  }
  return "?";
}

AttributeType type_of(const AttributeValue& value) {
  switch (value.index()) {
    case kTagNull:
      return AttributeType::kNull;
    case kTagBool:
      return AttributeType::kBool;
    case kTagString:
      return AttributeType::kString;
    case kTagNumber:
      return AttributeType::kNumber;
    default:
      return AttributeType::kBinary;  // binaries and the Payloads standing for them
  }
}

// --- Operands ----------------------------------------------------------------------------------

Operand Operand::literal(AttributeValue value) {
  Operand operand;
  operand.kind = Kind::kValue;
  operand.value = std::move(value);
  return operand;
}

Operand Operand::attribute_named(std::string name) {
  Operand operand;
  operand.kind = Kind::kAttribute;
  operand.attribute = std::move(name);
  return operand;
}

Operand Operand::if_not_exists(std::string name, AttributeValue fallback) {
  Operand operand;
  operand.kind = Kind::kIfNotExists;
  operand.attribute = std::move(name);
  operand.value = std::move(fallback);
  return operand;
}

std::optional<AttributeValue> Operand::resolve(const Item* item) const {
  if (kind == Kind::kValue) return value;
  const AttributeValue* found = item == nullptr ? nullptr : item->find(attribute);
  if (found != nullptr) return *found;
  if (kind == Kind::kIfNotExists) return value;
  return std::nullopt;
}

// --- Conditions --------------------------------------------------------------------------------

ConditionExpression ConditionExpression::always() {
  return ConditionExpression{};
}

ConditionExpression ConditionExpression::item_exists() {
  ConditionExpression c;
  c.kind = Kind::kItemExists;
  return c;
}

ConditionExpression ConditionExpression::exists(std::string attribute) {
  ConditionExpression c;
  c.kind = Kind::kAttributeExists;
  c.attribute = std::move(attribute);
  return c;
}

ConditionExpression ConditionExpression::not_exists(std::string attribute) {
  ConditionExpression c;
  c.kind = Kind::kAttributeNotExists;
  c.attribute = std::move(attribute);
  return c;
}

ConditionExpression ConditionExpression::type_is(std::string attribute, AttributeType type) {
  ConditionExpression c;
  c.kind = Kind::kAttributeType;
  c.attribute = std::move(attribute);
  c.type = type;
  return c;
}

ConditionExpression ConditionExpression::begins_with(std::string attribute, AttributeValue prefix) {
  ConditionExpression c;
  c.kind = Kind::kBeginsWith;
  c.attribute = std::move(attribute);
  c.operands.push_back(Operand::literal(std::move(prefix)));
  return c;
}

ConditionExpression ConditionExpression::compare(Operand left, Comparator comparator,
                                                 Operand right) {
  ConditionExpression c;
  c.kind = Kind::kCompare;
  c.comparator = comparator;
  c.operands.push_back(std::move(left));
  c.operands.push_back(std::move(right));
  return c;
}

ConditionExpression ConditionExpression::between(Operand value, Operand low, Operand high) {
  ConditionExpression c;
  c.kind = Kind::kBetween;
  c.operands.push_back(std::move(value));
  c.operands.push_back(std::move(low));
  c.operands.push_back(std::move(high));
  return c;
}

ConditionExpression ConditionExpression::both(ConditionExpression a, ConditionExpression b) {
  ConditionExpression c;
  c.kind = Kind::kAnd;
  c.children.push_back(std::move(a));
  c.children.push_back(std::move(b));
  return c;
}

ConditionExpression ConditionExpression::either(ConditionExpression a, ConditionExpression b) {
  ConditionExpression c;
  c.kind = Kind::kOr;
  c.children.push_back(std::move(a));
  c.children.push_back(std::move(b));
  return c;
}

ConditionExpression ConditionExpression::negate(ConditionExpression a) {
  ConditionExpression c;
  c.kind = Kind::kNot;
  c.children.push_back(std::move(a));
  return c;
}

uint32_t ConditionExpression::node_count() const {
  if (kind == Kind::kTrue) return 0;
  uint32_t count = 1;
  for (const ConditionExpression& child : children) count += child.node_count();
  return count;
}

ExpressionStatus ConditionExpression::validate() const {
  if (node_count() > kMaxExpressionOperators) return ExpressionStatus::kTooComplex;
  auto invalid = ExpressionStatus::kInvalidOperand;
  switch (kind) {
    case Kind::kTrue:
    case Kind::kItemExists:
      return ExpressionStatus::kOk;
    case Kind::kAttributeExists:
    case Kind::kAttributeNotExists:
    case Kind::kAttributeType:
      return attribute.empty() ? invalid : ExpressionStatus::kOk;
    case Kind::kBeginsWith: {
      if (attribute.empty() || operands.size() != 1) return invalid;
      const Operand& prefix = operands[0];
      const bool text_or_binary = std::holds_alternative<std::string>(prefix.value) ||
                                  std::holds_alternative<std::vector<uint8_t>>(prefix.value);
      return prefix.kind == Operand::Kind::kValue && text_or_binary ? ExpressionStatus::kOk
                                                                    : invalid;
    }
    case Kind::kCompare: {
      if (operands.size() != 2) return invalid;
      const bool equality = comparator == Comparator::kEqual || comparator == Comparator::kNotEqual;
      for (const Operand& operand : operands) {
        if (!valid_condition_operand(operand)) return invalid;
        if (!equality && !orderable_literal(operand)) return invalid;
      }
      return ExpressionStatus::kOk;
    }
    case Kind::kBetween: {
      if (operands.size() != 3) return invalid;
      for (const Operand& operand : operands) {
        if (!valid_condition_operand(operand) || !orderable_literal(operand)) return invalid;
      }
      const Operand& low = operands[1];
      const Operand& high = operands[2];
      if (low.kind == Operand::Kind::kValue && high.kind == Operand::Kind::kValue) {
        const auto order = order_of(low.value, high.value);
        if (!order || *order > 0) return invalid;  // DynamoDB refuses reversed or mixed bounds
      }
      return ExpressionStatus::kOk;
    }
    case Kind::kAnd:
    case Kind::kOr:
    case Kind::kNot: {
      const size_t expected = kind == Kind::kNot ? 1 : 2;
      if (children.size() != expected) return invalid;
      for (const ConditionExpression& child : children) {
        if (child.is_true()) return invalid;  // an operator needs conditions on both sides
        const ExpressionStatus status = child.validate();
        if (status != ExpressionStatus::kOk) return status;
      }
      return ExpressionStatus::kOk;
    }
  }
  return invalid;
}

bool ConditionExpression::evaluate(const Item* item) const {
  switch (kind) {
    case Kind::kTrue:
      return true;
    case Kind::kItemExists:
      return item != nullptr;
    case Kind::kAttributeExists:
      return item != nullptr && item->find(attribute) != nullptr;
    case Kind::kAttributeNotExists:
      return item == nullptr || item->find(attribute) == nullptr;
    case Kind::kAttributeType: {
      const AttributeValue* found = item == nullptr ? nullptr : item->find(attribute);
      return found != nullptr && type_of(*found) == type;
    }
    case Kind::kBeginsWith: {
      const AttributeValue* found = item == nullptr ? nullptr : item->find(attribute);
      return found != nullptr && has_prefix(*found, operands.at(0).value);
    }
    case Kind::kCompare:
      return compare_holds(comparator, operands.at(0).resolve(item), operands.at(1).resolve(item));
    case Kind::kBetween: {
      const auto value = operands.at(0).resolve(item);
      return compare_holds(Comparator::kGreaterOrEqual, value, operands.at(1).resolve(item)) &&
             compare_holds(Comparator::kLessOrEqual, value, operands.at(2).resolve(item));
    }
    case Kind::kAnd:
      return children.at(0).evaluate(item) && children.at(1).evaluate(item);
    case Kind::kOr:
      return children.at(0).evaluate(item) || children.at(1).evaluate(item);
    case Kind::kNot:
      return !children.at(0).evaluate(item);
  }
  return false;
}

uint64_t ConditionExpression::stand_in_bytes() const {
  uint64_t bytes = 0;
  for (const Operand& operand : operands) bytes += operand_stand_in_bytes(operand);
  for (const ConditionExpression& child : children) bytes += child.stand_in_bytes();
  return bytes;
}

void ConditionExpression::encode_to(std::vector<uint8_t>& out) const {
  put_condition(out, *this);
}

std::vector<uint8_t> ConditionExpression::encode() const {
  std::vector<uint8_t> out;
  encode_to(out);
  return out;
}

bool ConditionExpression::decode(const std::vector<uint8_t>& bytes, ConditionExpression* out) {
  Reader in{bytes};
  ConditionExpression decoded;
  // kTrue counts no operator but takes a node: one more than the limit keeps a full tree.
  uint32_t budget = 2 * kMaxExpressionOperators + 1;
  if (!get_condition(in, &decoded, &budget) || !in.ok || in.at != bytes.size()) return false;
  *out = std::move(decoded);
  return true;
}

// --- Updates -----------------------------------------------------------------------------------

UpdateAction UpdateAction::set(std::string attribute, Operand value) {
  UpdateAction action;
  action.kind = Kind::kSet;
  action.attribute = std::move(attribute);
  action.value = std::move(value);
  return action;
}

UpdateAction UpdateAction::set_plus(std::string attribute, Operand left, Operand right) {
  UpdateAction action = set(std::move(attribute), std::move(left));
  action.arithmetic = Arithmetic::kPlus;
  action.right = std::move(right);
  return action;
}

UpdateAction UpdateAction::set_minus(std::string attribute, Operand left, Operand right) {
  UpdateAction action = set_plus(std::move(attribute), std::move(left), std::move(right));
  action.arithmetic = Arithmetic::kMinus;
  return action;
}

UpdateAction UpdateAction::add(std::string attribute, Decimal number) {
  UpdateAction action;
  action.kind = Kind::kAdd;
  action.attribute = std::move(attribute);
  action.value = Operand::literal(number);
  return action;
}

UpdateAction UpdateAction::remove(std::string attribute) {
  UpdateAction action;
  action.kind = Kind::kRemove;
  action.attribute = std::move(attribute);
  return action;
}

ExpressionStatus UpdateExpression::validate() const {
  if (actions.size() > kMaxExpressionOperators) return ExpressionStatus::kTooComplex;
  std::set<std::string_view> targets;
  for (const UpdateAction& action : actions) {
    if (action.attribute.empty()) return ExpressionStatus::kInvalidOperand;
    if (!targets.insert(action.attribute).second) return ExpressionStatus::kOverlappingPaths;
    switch (action.kind) {
      case UpdateAction::Kind::kSet: {
        if (action.value.kind != Operand::Kind::kValue && action.value.attribute.empty()) {
          return ExpressionStatus::kInvalidOperand;
        }
        if (action.arithmetic == UpdateAction::Arithmetic::kNone) break;
        for (const Operand* operand : {&action.value, &action.right}) {
          if (operand->kind != Operand::Kind::kAttribute &&
              !std::holds_alternative<Decimal>(operand->value)) {
            return ExpressionStatus::kInvalidOperand;  // "+" and "-" take numbers
          }
          if (operand->kind != Operand::Kind::kValue && operand->attribute.empty()) {
            return ExpressionStatus::kInvalidOperand;
          }
        }
        break;
      }
      case UpdateAction::Kind::kAdd:
        if (action.value.kind != Operand::Kind::kValue ||
            !std::holds_alternative<Decimal>(action.value.value)) {
          return ExpressionStatus::kInvalidOperand;  // ADD takes a number (no sets here)
        }
        break;
      case UpdateAction::Kind::kRemove:
        break;
    }
  }
  return ExpressionStatus::kOk;
}

ExpressionStatus UpdateExpression::apply(const Item* current, const PrimaryKey& key,
                                         Item* out) const {
  Item updated = current != nullptr ? *current : Item(key);
  for (const UpdateAction& action : actions) {
    switch (action.kind) {
      case UpdateAction::Kind::kSet: {
        std::optional<AttributeValue> left = action.value.resolve(current);
        if (!left) return ExpressionStatus::kAttributeMissing;
        if (action.arithmetic == UpdateAction::Arithmetic::kNone) {
          updated.set(action.attribute, std::move(*left));
          break;
        }
        const std::optional<AttributeValue> right = action.right.resolve(current);
        if (!right) return ExpressionStatus::kAttributeMissing;
        const auto* a = std::get_if<Decimal>(&*left);
        const auto* b = std::get_if<Decimal>(&*right);
        if (a == nullptr || b == nullptr) return ExpressionStatus::kNotANumber;
        Decimal result;
        if (!add_or_subtract(*a, *b, action.arithmetic == UpdateAction::Arithmetic::kMinus,
                             &result)) {
          return ExpressionStatus::kNumberOutOfRange;
        }
        updated.set(action.attribute, result);
        break;
      }
      case UpdateAction::Kind::kAdd: {
        const auto* increment = std::get_if<Decimal>(&action.value.value);
        if (increment == nullptr) return ExpressionStatus::kNotANumber;
        const AttributeValue* existing =
            current == nullptr ? nullptr : current->find(action.attribute);
        if (existing == nullptr) {
          updated.set(action.attribute, *increment);  // from 0, as DynamoDB does
          break;
        }
        const auto* number = std::get_if<Decimal>(existing);
        if (number == nullptr) return ExpressionStatus::kNotANumber;
        Decimal result;
        if (!Decimal::add(*number, *increment, &result)) {
          return ExpressionStatus::kNumberOutOfRange;
        }
        updated.set(action.attribute, result);
        break;
      }
      case UpdateAction::Kind::kRemove:
        updated.remove(action.attribute);
        break;
    }
  }
  *out = std::move(updated);
  return ExpressionStatus::kOk;
}

uint64_t UpdateExpression::stand_in_bytes() const {
  uint64_t bytes = 0;
  for (const UpdateAction& action : actions) {
    if (action.kind == UpdateAction::Kind::kRemove) continue;
    bytes += operand_stand_in_bytes(action.value);
    if (action.arithmetic != UpdateAction::Arithmetic::kNone) {
      bytes += operand_stand_in_bytes(action.right);
    }
  }
  return bytes;
}

void UpdateExpression::encode_to(std::vector<uint8_t>& out) const {
  put_u32(out, static_cast<uint32_t>(actions.size()));
  for (const UpdateAction& action : actions) {
    put_u8(out, static_cast<uint8_t>(action.kind));
    put_text(out, action.attribute);
    switch (action.kind) {
      case UpdateAction::Kind::kSet:
        put_operand(out, action.value);
        put_u8(out, static_cast<uint8_t>(action.arithmetic));
        if (action.arithmetic != UpdateAction::Arithmetic::kNone) put_operand(out, action.right);
        break;
      case UpdateAction::Kind::kAdd:
        put_operand(out, action.value);
        break;
      case UpdateAction::Kind::kRemove:
        break;
    }
  }
}

std::vector<uint8_t> UpdateExpression::encode() const {
  std::vector<uint8_t> out;
  encode_to(out);
  return out;
}

bool UpdateExpression::decode(const std::vector<uint8_t>& bytes, UpdateExpression* out) {
  Reader in{bytes};
  const uint32_t count = in.u32();
  if (!in.ok || count > kMaxExpressionOperators) return false;
  UpdateExpression decoded;
  decoded.actions.resize(count);
  for (UpdateAction& action : decoded.actions) {
    const uint8_t kind = in.u8();
    if (!in.ok || kind > static_cast<uint8_t>(UpdateAction::Kind::kRemove)) return false;
    action.kind = static_cast<UpdateAction::Kind>(kind);
    if (!get_text(in, &action.attribute)) return false;
    if (action.kind == UpdateAction::Kind::kSet) {
      if (!get_operand(in, &action.value)) return false;
      const uint8_t arithmetic = in.u8();
      if (!in.ok || arithmetic > static_cast<uint8_t>(UpdateAction::Arithmetic::kMinus)) {
        return false;
      }
      action.arithmetic = static_cast<UpdateAction::Arithmetic>(arithmetic);
      if (action.arithmetic != UpdateAction::Arithmetic::kNone && !get_operand(in, &action.right)) {
        return false;
      }
    } else if (action.kind == UpdateAction::Kind::kAdd) {
      if (!get_operand(in, &action.value)) return false;
    }
  }
  if (!in.ok || in.at != bytes.size()) return false;
  *out = std::move(decoded);
  return true;
}

// --- Key conditions ----------------------------------------------------------------------------

ExpressionStatus KeyCondition::validate() const {
  if (partition.size_bytes() == 0) return ExpressionStatus::kInvalidOperand;
  switch (sort_op) {
    case SortOp::kNone:
      return ExpressionStatus::kOk;
    case SortOp::kBeginsWith:
      return sort_value.type == ScalarType::kNumber ? ExpressionStatus::kInvalidOperand
                                                    : ExpressionStatus::kOk;
    case SortOp::kBetween:
      if (sort_value.type != sort_upper.type || sort_upper < sort_value) {
        return ExpressionStatus::kInvalidOperand;
      }
      return ExpressionStatus::kOk;
    default:
      return ExpressionStatus::kOk;
  }
}

bool KeyCondition::matches(const PrimaryKey& key) const {
  if (!(key.partition == partition)) return false;
  if (sort_op == SortOp::kNone) return true;
  if (!key.sort || key.sort->type != sort_value.type) return false;
  const KeyValue& sort = *key.sort;
  switch (sort_op) {
    case SortOp::kNone:
      return true;
    case SortOp::kEqual:
      return sort == sort_value;
    case SortOp::kLess:
      return sort < sort_value;
    case SortOp::kLessOrEqual:
      return sort <= sort_value;
    case SortOp::kGreater:
      return sort > sort_value;
    case SortOp::kGreaterOrEqual:
      return sort >= sort_value;
    case SortOp::kBetween:
      return sort >= sort_value && sort <= sort_upper;
    case SortOp::kBeginsWith:
      return sort.bytes.size() >= sort_value.bytes.size() &&
             sort.bytes.compare(0, sort_value.bytes.size(), sort_value.bytes) == 0;
  }
  return false;
}

PrimaryKey KeyCondition::lower_bound() const {
  switch (sort_op) {
    case SortOp::kNone:
    case SortOp::kLess:
    case SortOp::kLessOrEqual:
      return PrimaryKey{partition, std::nullopt};  // before every sort key of the partition
    default:
      return PrimaryKey{partition, sort_value};
  }
}

bool KeyCondition::past_end(const PrimaryKey& key) const {
  if (!(key.partition == partition)) return true;  // read in key order: a later partition
  if (!key.sort) return false;
  const KeyValue& sort = *key.sort;
  switch (sort_op) {
    case SortOp::kNone:
    case SortOp::kGreater:
    case SortOp::kGreaterOrEqual:
      return false;
    case SortOp::kEqual:
    case SortOp::kLessOrEqual:
      return sort > sort_value;
    case SortOp::kLess:
      return sort >= sort_value;
    case SortOp::kBetween:
      return sort > sort_upper;
    case SortOp::kBeginsWith:
      // Keys with the prefix are contiguous from the prefix itself: the first key at or after
      // it without the prefix ends them.
      return sort > sort_value && !matches(key);
  }
  return true;
}

void KeyCondition::encode_to(std::vector<uint8_t>& out) const {
  expression_codec::put_key_value(out, partition);
  put_u8(out, static_cast<uint8_t>(sort_op));
  if (sort_op != SortOp::kNone) expression_codec::put_key_value(out, sort_value);
  if (sort_op == SortOp::kBetween) expression_codec::put_key_value(out, sort_upper);
}

bool KeyCondition::decode(const std::vector<uint8_t>& bytes, KeyCondition* out) {
  Reader in{bytes};
  KeyCondition decoded;
  if (!get_key_value(in, &decoded.partition)) return false;
  const uint8_t op = in.u8();
  if (!in.ok || op > static_cast<uint8_t>(SortOp::kBeginsWith)) return false;
  decoded.sort_op = static_cast<SortOp>(op);
  if (decoded.sort_op != SortOp::kNone && !get_key_value(in, &decoded.sort_value)) return false;
  if (decoded.sort_op == SortOp::kBetween && !get_key_value(in, &decoded.sort_upper)) {
    return false;
  }
  if (!in.ok || in.at != bytes.size()) return false;
  *out = std::move(decoded);
  return true;
}

}  // namespace dynasim::model
