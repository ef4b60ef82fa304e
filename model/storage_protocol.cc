#include "model/storage_protocol.h"

#include <algorithm>

#include "model/codec.h"
#include "model/scrub_protocol.h"
#include "sim/check.h"

namespace dynasim::model {

namespace {

using codec::put_u64;

bool get_u64(const std::vector<uint8_t>& in, size_t* at, uint64_t* value) {
  if (*at > in.size() || in.size() - *at < 8) return false;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in[*at + i]) << (8 * i);
  *at += 8;
  *value = v;
  return true;
}

// A blob holding an item's encoding (none: an empty blob), written in place: the u64 length is
// filled in once the item is appended.
void put_item_blob(std::vector<uint8_t>& out, const Item* item) {
  const size_t at = out.size();
  put_u64(out, 0);
  if (item == nullptr) return;
  item->encode_to(out);
  const uint64_t length = out.size() - at - 8;
  for (size_t i = 0; i < 8; ++i) out[at + i] = static_cast<uint8_t>(length >> (8 * i));
}

bool get_blob(const std::vector<uint8_t>& in, size_t* at, const uint8_t** data, size_t* length) {
  uint64_t size = 0;
  if (!get_u64(in, at, &size)) return false;
  if (size > in.size() - *at) return false;
  *data = in.data() + *at;
  *length = static_cast<size_t>(size);
  *at += size;
  return true;
}

// Format 2: client id, request id, op, condition kind, stand-in bytes (u64), then the blobs and
// the extension (WriteCommand in the header).
constexpr uint8_t kCommandFormat = 2;
constexpr size_t kStandInOffset = 1 + 8 + 8 + 1 + 1;

// decode() refuses any first byte but kCommandFormat, so a marker never decodes as a write.
static_assert((kDigestMarkerMagic & 0xff) != kCommandFormat,
              "a digest marker's first byte must not be a write command's format byte");

}  // namespace

const char* to_string(ReferenceOutcome outcome) {
  switch (outcome) {
    case ReferenceOutcome::kMatch:
      return "matches";
    case ReferenceOutcome::kMismatch:
      return "mismatches";
    case ReferenceOutcome::kError:
      return "errors";
    case ReferenceOutcome::kUnavailable:
      return "unavailable";
  }
  return "?";
}

bool Condition::holds(const Item* current) const {
  switch (kind) {
    case Kind::kNone:
      return true;
    case Kind::kAttributeExists:
      return current != nullptr && current->find(attribute) != nullptr;
    case Kind::kAttributeNotExists:
      return current == nullptr || current->find(attribute) == nullptr;
    case Kind::kAttributeEquals: {
      if (current == nullptr) return false;
      const AttributeValue* found = current->find(attribute);
      return found != nullptr && *found == value;
    }
  }
  return false;
}

const char* to_string(StorageOp op) {
  switch (op) {
    case StorageOp::kGet:
      return "get";
    case StorageOp::kPut:
      return "put";
    case StorageOp::kDelete:
      return "delete";
    case StorageOp::kUpdate:
      return "update";
    case StorageOp::kQuery:
      return "query";
    case StorageOp::kScan:
      return "scan";
  }
  return "?";
}

const char* to_string(StorageStatus status) {
  switch (status) {
    case StorageStatus::kOk:
      return "ok";
    case StorageStatus::kConditionFailed:
      return "condition-failed";
    case StorageStatus::kNotFound:
      return "not-found";
    case StorageStatus::kNotLeader:
      return "not-leader";
    case StorageStatus::kNotServing:
      return "not-serving";
    case StorageStatus::kBusy:
      return "busy";
    case StorageStatus::kUnhealthy:
      return "unhealthy";
    case StorageStatus::kNoSuchGroup:
      return "no-such-group";
    case StorageStatus::kValidation:
      return "validation";
    case StorageStatus::kRecovering:
      return "recovering";
    case StorageStatus::kThrottled:
      return "throttled";
  }
  return "?";
}

const GroupPlacement& Placement::group_for(const PrimaryKey& key) const {
  DYN_ASSERT(!groups.empty());
  const uint64_t hash = partition_hash(key.partition);
  // The last group whose range begins at or below the hash.
  auto it = std::upper_bound(
      groups.begin(), groups.end(), hash,
      [](uint64_t value, const GroupPlacement& group) { return value < group.hash_begin; });
  DYN_ASSERT(it != groups.begin());
  --it;
  DYN_ASSERT(hash >= it->hash_begin && hash <= it->hash_end);
  return *it;
}

Placement Placement::uniform(
    uint32_t group_count, const std::vector<std::array<sim::Address, kReplicasPerGroup>>& hosts) {
  DYN_ASSERT(group_count > 0 && hosts.size() == group_count);
  Placement placement;
  placement.groups.reserve(group_count);
  // Equal shares of [0, 2^64): group g begins at floor(g * 2^64 / n).
  for (uint32_t g = 0; g < group_count; ++g) {
    GroupPlacement group;
    group.group = GroupId(g);
    const unsigned __int128 span = static_cast<unsigned __int128>(1) << 64;
    group.hash_begin = static_cast<uint64_t>(span * g / group_count);
    const unsigned __int128 next = span * (g + 1) / group_count;
    group.hash_end = static_cast<uint64_t>(next - 1);
    group.replicas = hosts[g];
    placement.groups.push_back(group);
  }
  return placement;
}

std::vector<uint8_t> WriteCommand::encode() const {
  return encode(client_id, request_id, op, key, item, condition, condition_expression, update);
}

namespace {

constexpr uint8_t kExtensionExpression = 1;
constexpr uint8_t kExtensionUpdate = 2;

void put_bytes_blob(std::vector<uint8_t>& out, const std::vector<uint8_t>& blob) {
  put_u64(out, blob.size());
  out.insert(out.end(), blob.begin(), blob.end());
}

uint64_t parts_stand_in_bytes(StorageOp op, const Item& item,
                              const ConditionExpression& condition_expression,
                              const UpdateExpression& update) {
  uint64_t bytes = condition_expression.stand_in_bytes();
  if (op == StorageOp::kPut) bytes += WriteCommand::stand_in_bytes(item);
  if (op == StorageOp::kUpdate) bytes += update.stand_in_bytes();
  return bytes;
}

}  // namespace

std::vector<uint8_t> WriteCommand::encode(uint64_t client_id, uint64_t request_id, StorageOp op,
                                          const PrimaryKey& key, const Item& item,
                                          const Condition& condition,
                                          const ConditionExpression& condition_expression,
                                          const UpdateExpression& update) {
  DYN_ASSERT(is_write(op));
  // The key travels as an item with no attributes; the condition's attribute and value as an
  // item with that one attribute, so both reuse the item's canonical encoding. Each is written
  // in place behind its length, which is filled in after it.
  const Item key_holder(key);
  std::optional<Item> condition_holder;
  if (condition.kind != Condition::Kind::kNone) {
    condition_holder.emplace(key);
    condition_holder->set(condition.attribute, condition.value);
  }
  std::vector<uint8_t> out;
  out.reserve(kStandInOffset + 8 + 3 * 8 + key_holder.encoded_size_hint() +
              (op == StorageOp::kPut ? item.encoded_size_hint() : 0) +
              (condition_holder ? condition_holder->encoded_size_hint() : 0));
  out.push_back(kCommandFormat);
  put_u64(out, client_id);
  put_u64(out, request_id);
  out.push_back(static_cast<uint8_t>(op));
  out.push_back(static_cast<uint8_t>(condition.kind));
  put_u64(out, parts_stand_in_bytes(op, item, condition_expression, update));
  put_item_blob(out, &key_holder);
  put_item_blob(out, op == StorageOp::kPut ? &item : nullptr);
  if (condition_holder) put_item_blob(out, &*condition_holder);
  const bool has_expression = !condition_expression.is_true();
  if (has_expression || op == StorageOp::kUpdate) {
    out.push_back(static_cast<uint8_t>((has_expression ? kExtensionExpression : 0) |
                                       (op == StorageOp::kUpdate ? kExtensionUpdate : 0)));
    if (has_expression) put_bytes_blob(out, condition_expression.encode());
    if (op == StorageOp::kUpdate) put_bytes_blob(out, update.encode());
  }
  return out;
}

bool WriteCommand::decode(const std::vector<uint8_t>& bytes, WriteCommand* out) {
  size_t at = 0;
  if (bytes.size() < 1 || bytes[0] != kCommandFormat) return false;
  at = 1;
  WriteCommand command;
  if (!get_u64(bytes, &at, &command.client_id)) return false;
  if (!get_u64(bytes, &at, &command.request_id)) return false;
  if (bytes.size() - at < 2) return false;
  const uint8_t op = bytes[at++];
  const uint8_t kind = bytes[at++];
  if (op != static_cast<uint8_t>(StorageOp::kPut) &&
      op != static_cast<uint8_t>(StorageOp::kDelete) &&
      op != static_cast<uint8_t>(StorageOp::kUpdate)) {
    return false;
  }
  if (kind > static_cast<uint8_t>(Condition::Kind::kAttributeEquals)) return false;
  command.op = static_cast<StorageOp>(op);
  command.condition.kind = static_cast<Condition::Kind>(kind);
  uint64_t stand_in = 0;
  if (!get_u64(bytes, &at, &stand_in)) return false;
  const uint8_t* data = nullptr;
  size_t length = 0;
  Item key_holder;
  if (!get_blob(bytes, &at, &data, &length) || !Item::decode(data, length, &key_holder)) {
    return false;
  }
  command.key = key_holder.key();
  if (!get_blob(bytes, &at, &data, &length)) return false;
  if (command.op == StorageOp::kPut) {
    if (!Item::decode(data, length, &command.item)) return false;
    if (!(command.item.key() == command.key)) return false;
  } else if (length != 0) {
    return false;
  }
  if (command.condition.kind != Condition::Kind::kNone) {
    Item holder;
    if (!get_blob(bytes, &at, &data, &length) || !Item::decode(data, length, &holder)) {
      return false;
    }
    if (holder.attributes().size() != 1) return false;
    command.condition.attribute = holder.attributes()[0].first;
    command.condition.value = holder.attributes()[0].second;
  }
  if (at != bytes.size()) {
    const uint8_t flags = bytes[at++];
    const bool has_expression = (flags & kExtensionExpression) != 0;
    const bool has_update = (flags & kExtensionUpdate) != 0;
    if ((flags & ~(kExtensionExpression | kExtensionUpdate)) != 0) return false;
    if (has_update != (command.op == StorageOp::kUpdate)) return false;
    if (has_expression) {
      if (!get_blob(bytes, &at, &data, &length)) return false;
      const std::vector<uint8_t> blob(data, data + length);
      if (!ConditionExpression::decode(blob, &command.condition_expression) ||
          command.condition_expression.is_true()) {
        return false;
      }
    }
    if (has_update) {
      if (!get_blob(bytes, &at, &data, &length)) return false;
      const std::vector<uint8_t> blob(data, data + length);
      if (!UpdateExpression::decode(blob, &command.update)) return false;
    }
  } else if (command.op == StorageOp::kUpdate) {
    return false;  // an update always carries its actions
  }
  if (at != bytes.size()) return false;
  if (stand_in != command.command_stand_in_bytes()) return false;
  *out = std::move(command);
  return true;
}

uint64_t WriteCommand::command_stand_in_bytes() const {
  return parts_stand_in_bytes(op, item, condition_expression, update);
}

uint64_t stored_item_size_bytes(const Item& item, uint64_t key_name_bytes) {
  const PrimaryKey& key = item.key();
  uint64_t size = key_name_bytes + key.partition.size_bytes() +
                  (key.sort.has_value() ? key.sort->size_bytes() : 0);
  for (const auto& [name, value] : item.attributes()) size += name.size() + value_size_bytes(value);
  return size;
}

WriteEffect WriteCommand::apply_to(const Item* current) {
  WriteEffect effect;
  if (!condition.holds(current) || !condition_expression.evaluate(current)) {
    effect.status = StorageStatus::kConditionFailed;
    return effect;
  }
  switch (op) {
    case StorageOp::kPut:
      effect.change = WriteEffect::Change::kPut;
      effect.item = std::move(item);
      return effect;
    case StorageOp::kDelete:
      effect.change = current != nullptr ? WriteEffect::Change::kErase : WriteEffect::Change::kNone;
      return effect;
    case StorageOp::kUpdate: {
      Item updated;
      if (update.apply(current, key, &updated) != ExpressionStatus::kOk ||
          stored_item_size_bytes(updated, 0) > kMaxItemSizeBytes) {
        // Refused as a whole (DynamoDB: ValidationException), on every replica alike.
        effect.status = StorageStatus::kValidation;
        return effect;
      }
      effect.change = WriteEffect::Change::kPut;
      effect.item = std::move(updated);
      return effect;
    }
    default:
      DYN_ASSERT_MSG(false, "a write command that is not a put, delete or update");
  }
  return effect;
}

uint64_t WriteCommand::stand_in_bytes(const Item& item) {
  uint64_t extra = 0;
  for (const auto& [name, value] : item.attributes()) {
    if (const Payload* payload = std::get_if<Payload>(&value)) {
      extra += payload->size_bytes > 24 ? payload->size_bytes - 24 : 0;
    }
  }
  return extra;
}

std::optional<uint64_t> WriteCommand::peek_stand_in_bytes(const std::vector<uint8_t>& bytes) {
  if (bytes.empty() || bytes[0] != kCommandFormat) return std::nullopt;
  size_t at = kStandInOffset;
  uint64_t stand_in = 0;
  if (!get_u64(bytes, &at, &stand_in)) return std::nullopt;
  return stand_in;
}

std::optional<std::span<const uint8_t>> WriteCommand::unconditional_put_item(
    const std::vector<uint8_t>& bytes) {
  if (bytes.size() < kStandInOffset + 8 || bytes[0] != kCommandFormat) return std::nullopt;
  if (bytes[kStandInOffset - 2] != static_cast<uint8_t>(StorageOp::kPut) ||
      bytes[kStandInOffset - 1] != static_cast<uint8_t>(Condition::Kind::kNone)) {
    return std::nullopt;
  }
  size_t at = kStandInOffset + 8;
  const uint8_t* data = nullptr;
  size_t length = 0;
  if (!get_blob(bytes, &at, &data, &length)) return std::nullopt;  // the key
  if (!get_blob(bytes, &at, &data, &length) || at != bytes.size()) return std::nullopt;
  return std::span<const uint8_t>(data, length);
}

}  // namespace dynasim::model
