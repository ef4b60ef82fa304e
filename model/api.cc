#include "model/api.h"

#include <algorithm>
#include <set>

#include "sim/check.h"

namespace dynasim::model {

const char* to_string(ApiOperation operation) {
  switch (operation) {
    case ApiOperation::kGetItem:
      return "GetItem";
    case ApiOperation::kPutItem:
      return "PutItem";
    case ApiOperation::kUpdateItem:
      return "UpdateItem";
    case ApiOperation::kDeleteItem:
      return "DeleteItem";
    case ApiOperation::kQuery:
      return "Query";
    case ApiOperation::kScan:
      return "Scan";
    case ApiOperation::kBatchGetItem:
      return "BatchGetItem";
    case ApiOperation::kBatchWriteItem:
      return "BatchWriteItem";
  }
  return "?";
}

const char* error_name(ApiError error) {
  switch (error) {
    case ApiError::kNone:
      return "";
    case ApiError::kProvisionedThroughputExceeded:
      return "ProvisionedThroughputExceededException";
    case ApiError::kThrottling:
      return "ThrottlingException";
    case ApiError::kRequestLimitExceeded:
      return "RequestLimitExceeded";
    case ApiError::kConditionalCheckFailed:
      return "ConditionalCheckFailedException";
    case ApiError::kValidation:
      return "ValidationException";
    case ApiError::kResourceNotFound:
      return "ResourceNotFoundException";
    case ApiError::kInternalServerError:
      return "InternalServerError";
    case ApiError::kServiceUnavailable:
      return "ServiceUnavailable";
  }
  return "?";
}

bool is_retryable(ApiError error) {
  switch (error) {
    case ApiError::kProvisionedThroughputExceeded:
    case ApiError::kThrottling:
    case ApiError::kRequestLimitExceeded:
    case ApiError::kInternalServerError:
    case ApiError::kServiceUnavailable:
      return true;
    default:
      return false;
  }
}

bool is_throttling(ApiError error) {
  return error == ApiError::kProvisionedThroughputExceeded || error == ApiError::kThrottling ||
         error == ApiError::kRequestLimitExceeded;
}

uint32_t http_status(ApiError error) {
  switch (error) {
    case ApiError::kNone:
      return 200;
    case ApiError::kInternalServerError:
      return 500;
    case ApiError::kServiceUnavailable:
      return 503;
    default:
      return 400;
  }
}

ApiError api_error_for(StorageStatus status, CapacityMode mode) {
  switch (status) {
    case StorageStatus::kOk:
    case StorageStatus::kNotFound:
      return ApiError::kNone;
    case StorageStatus::kConditionFailed:
      return ApiError::kConditionalCheckFailed;
    case StorageStatus::kValidation:
      return ApiError::kValidation;
    case StorageStatus::kNotLeader:
    case StorageStatus::kNotServing:
    case StorageStatus::kBusy:
    case StorageStatus::kUnhealthy:
    case StorageStatus::kNoSuchGroup:
    case StorageStatus::kRecovering:
      return ApiError::kInternalServerError;
    case StorageStatus::kThrottled:
      // Storage-side admission (P22 section 4.1.1): over the table's provisioned throughput, or
      // over what an on-demand table accommodates at the moment.
      return mode == CapacityMode::kOnDemand ? ApiError::kThrottling
                                             : ApiError::kProvisionedThroughputExceeded;
  }
  return ApiError::kInternalServerError;
}

bool router_retries(StorageStatus status) {
  return api_error_for(status) == ApiError::kInternalServerError;
}

const char* to_string(ValidationFailure failure) {
  switch (failure) {
    case ValidationFailure::kNone:
      return "ok";
    case ValidationFailure::kKeyMissing:
      return "the provided key element does not match the schema";
    case ValidationFailure::kKeyTypeMismatch:
      return "a key attribute's type does not match the schema";
    case ValidationFailure::kKeyEmpty:
      return "an empty key attribute";
    case ValidationFailure::kPartitionKeyTooLarge:
      return "partition key larger than 2048 bytes";
    case ValidationFailure::kSortKeyTooLarge:
      return "sort key larger than 1024 bytes";
    case ValidationFailure::kItemTooLarge:
      return "item larger than 400 KB";
    case ValidationFailure::kEmptyBatch:
      return "an empty batch";
    case ValidationFailure::kTooManyRequests:
      return "too many requests in the batch";
    case ValidationFailure::kBatchTooLarge:
      return "the batch is larger than 16 MB";
    case ValidationFailure::kDuplicateKeys:
      return "provided list of item keys contains duplicates";
    case ValidationFailure::kInvalidExpression:
      return "invalid expression";
    case ValidationFailure::kKeyAttributeUpdated:
      return "cannot update an attribute that is part of the key";
    case ValidationFailure::kInvalidSegment:
      return "invalid Segment or TotalSegments";
    case ValidationFailure::kInvalidReturnValues:
      return "ReturnValues not supported for this operation";
  }
  return "?";
}

ValidationFailure validate_key(const KeySchema& schema, const PrimaryKey& key) {
  if (key.sort.has_value() != schema.sort_key_name.has_value()) {
    return ValidationFailure::kKeyMissing;
  }
  if (key.partition.type != schema.partition_key_type) return ValidationFailure::kKeyTypeMismatch;
  if (key.sort && key.sort->type != schema.sort_key_type) {
    return ValidationFailure::kKeyTypeMismatch;
  }
  if (key.partition.size_bytes() == 0 || (key.sort && key.sort->size_bytes() == 0)) {
    return ValidationFailure::kKeyEmpty;
  }
  if (key.partition.size_bytes() > kMaxPartitionKeyBytes) {
    return ValidationFailure::kPartitionKeyTooLarge;
  }
  if (key.sort && key.sort->size_bytes() > kMaxSortKeyBytes) {
    return ValidationFailure::kSortKeyTooLarge;
  }
  return ValidationFailure::kNone;
}

ValidationFailure validate_item(const KeySchema& schema, const Item& item) {
  const ValidationFailure key = validate_key(schema, item.key());
  if (key != ValidationFailure::kNone) return key;
  // An attribute of a key attribute's name would be a second value for the key.
  for (const auto& [name, value] : item.attributes()) {
    (void)value;
    if (name == schema.partition_key_name ||
        (schema.sort_key_name && name == *schema.sort_key_name)) {
      return ValidationFailure::kKeyMissing;
    }
  }
  if (item.size_bytes(schema) > kMaxItemSizeBytes) return ValidationFailure::kItemTooLarge;
  return ValidationFailure::kNone;
}

ValidationFailure validate_update(const KeySchema& schema, const UpdateExpression& update) {
  if (update.validate() != ExpressionStatus::kOk) return ValidationFailure::kInvalidExpression;
  for (const UpdateAction& action : update.actions) {
    if (action.attribute == schema.partition_key_name ||
        (schema.sort_key_name && action.attribute == *schema.sort_key_name)) {
      return ValidationFailure::kKeyAttributeUpdated;
    }
  }
  return ValidationFailure::kNone;
}

ValidationFailure validate_batch_get(const KeySchema& schema, const std::vector<PrimaryKey>& keys) {
  if (keys.empty()) return ValidationFailure::kEmptyBatch;
  if (keys.size() > kMaxBatchGetKeys) return ValidationFailure::kTooManyRequests;
  std::set<PrimaryKey> seen;
  for (const PrimaryKey& key : keys) {
    const ValidationFailure failure = validate_key(schema, key);
    if (failure != ValidationFailure::kNone) return failure;
    if (!seen.insert(key).second) return ValidationFailure::kDuplicateKeys;
  }
  return ValidationFailure::kNone;
}

ValidationFailure validate_batch_write(const KeySchema& schema,
                                       const std::vector<BatchWriteRequest>& requests) {
  if (requests.empty()) return ValidationFailure::kEmptyBatch;
  if (requests.size() > kMaxBatchWriteRequests) return ValidationFailure::kTooManyRequests;
  std::set<PrimaryKey> seen;
  uint64_t total_bytes = 0;
  for (const BatchWriteRequest& request : requests) {
    const ValidationFailure failure = request.kind == BatchWriteRequest::Kind::kPut
                                          ? validate_item(schema, request.item)
                                          : validate_key(schema, request.key);
    if (failure != ValidationFailure::kNone) return failure;
    if (!seen.insert(request.target()).second) return ValidationFailure::kDuplicateKeys;
    total_bytes += request.kind == BatchWriteRequest::Kind::kPut
                       ? request.item.size_bytes(schema)
                       : Item(request.key).size_bytes(schema);
  }
  if (total_bytes > kMaxBatchBytes) return ValidationFailure::kBatchTooLarge;
  return ValidationFailure::kNone;
}

AttributeValue to_attribute_value(const KeyValue& value) {
  switch (value.type) {
    case ScalarType::kString:
      return value.bytes;
    case ScalarType::kNumber:
      return value.number;
    case ScalarType::kBinary:
      return std::vector<uint8_t>(value.bytes.begin(), value.bytes.end());
  }
  return Null{};
}

namespace {

std::optional<KeyValue> key_attribute(const KeySchema& schema, const PrimaryKey& key,
                                      const std::string& name) {
  if (name == schema.partition_key_name) return key.partition;
  if (schema.sort_key_name && name == *schema.sort_key_name) return key.sort;
  return std::nullopt;
}

ConditionExpression never() {
  return ConditionExpression::both(ConditionExpression::item_exists(),
                                   ConditionExpression::negate(ConditionExpression::item_exists()));
}

}  // namespace

ConditionExpression resolve_key_attributes(const ConditionExpression& condition,
                                           const KeySchema& schema, const PrimaryKey& key) {
  using Kind = ConditionExpression::Kind;
  ConditionExpression resolved = condition;
  for (ConditionExpression& child : resolved.children) {
    child = resolve_key_attributes(child, schema, key);
  }
  const std::optional<KeyValue> named = key_attribute(schema, key, condition.attribute);
  switch (condition.kind) {
    case Kind::kAttributeExists:
      return named ? ConditionExpression::item_exists() : resolved;
    case Kind::kAttributeNotExists:
      return named ? ConditionExpression::negate(ConditionExpression::item_exists()) : resolved;
    case Kind::kAttributeType:
    case Kind::kBeginsWith: {
      if (!named) return resolved;
      // Judge the function on the key's value now; it can hold only if the item exists.
      Item holder(key);
      holder.set(condition.attribute, to_attribute_value(*named));
      return condition.evaluate(&holder) ? ConditionExpression::item_exists() : never();
    }
    case Kind::kCompare:
    case Kind::kBetween: {
      bool replaced = false;
      for (Operand& operand : resolved.operands) {
        if (operand.kind != Operand::Kind::kAttribute) continue;
        const std::optional<KeyValue> value = key_attribute(schema, key, operand.attribute);
        if (!value) continue;
        operand = Operand::literal(to_attribute_value(*value));
        replaced = true;
      }
      if (!replaced) return resolved;
      // A missing item has no attributes: `<>` then holds, everything else fails.
      if (condition.kind == Kind::kCompare && condition.comparator == Comparator::kNotEqual) {
        return ConditionExpression::either(
            ConditionExpression::negate(ConditionExpression::item_exists()), resolved);
      }
      return ConditionExpression::both(ConditionExpression::item_exists(), resolved);
    }
    default:
      return resolved;
  }
}

HashRange segment_hash_range(uint32_t segment, uint32_t total_segments) {
  DYN_ASSERT(total_segments >= 1 && total_segments <= kMaxScanTotalSegments);
  DYN_ASSERT(segment < total_segments);
  const unsigned __int128 span = static_cast<unsigned __int128>(1) << 64;
  HashRange range;
  range.begin = static_cast<uint64_t>(span * segment / total_segments);
  range.end = static_cast<uint64_t>(span * (segment + 1) / total_segments - 1);
  return range;
}

ValidationFailure validate_segment(uint32_t segment, uint32_t total_segments) {
  if (total_segments < 1 || total_segments > kMaxScanTotalSegments || segment >= total_segments) {
    return ValidationFailure::kInvalidSegment;
  }
  return ValidationFailure::kNone;
}

std::optional<HashRange> intersect(const HashRange& a, const HashRange& b) {
  const uint64_t begin = std::max(a.begin, b.begin);
  const uint64_t end = std::min(a.end, b.end);
  if (begin > end) return std::nullopt;
  return HashRange{begin, end};
}

std::map<uint64_t, std::vector<size_t>> split_by_group(
    const std::vector<PrimaryKey>& keys,
    const std::function<uint64_t(const PrimaryKey&)>& group_of) {
  std::map<uint64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < keys.size(); ++i) groups[group_of(keys[i])].push_back(i);
  return groups;
}

namespace {

// The error that fails a whole batch call, if any: a non-retryable element error, or, when no
// element was processed, the throttling error the elements got.
ApiError batch_error(const std::vector<BatchElementOutcome>& outcomes) {
  bool processed = false;
  ApiError throttled = ApiError::kNone;
  for (const BatchElementOutcome& outcome : outcomes) {
    if (outcome.error == ApiError::kNone) processed = true;
    if (outcome.error != ApiError::kNone && !is_retryable(outcome.error)) return outcome.error;
    if (is_throttling(outcome.error) && throttled == ApiError::kNone) throttled = outcome.error;
  }
  if (!processed && throttled != ApiError::kNone) return throttled;
  return ApiError::kNone;
}

}  // namespace

BatchGetResult assemble_batch_get(const std::vector<PrimaryKey>& keys,
                                  const std::vector<BatchElementOutcome>& outcomes,
                                  uint32_t key_name_bytes) {
  DYN_ASSERT(keys.size() == outcomes.size());
  BatchGetResult result;
  result.error = batch_error(outcomes);
  if (result.error != ApiError::kNone) return result;
  uint64_t response_bytes = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const BatchElementOutcome& outcome = outcomes[i];
    if (outcome.error != ApiError::kNone) {
      result.unprocessed_keys.push_back(keys[i]);
      continue;
    }
    if (outcome.item) {
      const uint64_t size = stored_item_size_bytes(*outcome.item, key_name_bytes);
      if (response_bytes + size > kMaxBatchBytes) {
        // Past the 16 MB response: returned as unprocessed, read again by the client.
        result.unprocessed_keys.push_back(keys[i]);
        continue;
      }
      response_bytes += size;
      result.responses.push_back(*outcome.item);
    }
    result.consumed.half_units += outcome.consumed.half_units;
  }
  return result;
}

BatchWriteResult assemble_batch_write(const std::vector<BatchWriteRequest>& requests,
                                      const std::vector<BatchElementOutcome>& outcomes) {
  DYN_ASSERT(requests.size() == outcomes.size());
  BatchWriteResult result;
  result.error = batch_error(outcomes);
  if (result.error != ApiError::kNone) return result;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (outcomes[i].error != ApiError::kNone) {
      result.unprocessed_items.push_back(requests[i]);
      continue;
    }
    result.consumed.half_units += outcomes[i].consumed.half_units;
  }
  return result;
}

}  // namespace dynasim::model
