// The data-plane API as a request router presents it to clients: DynamoDB's operation names, its
// error names and which of them a client retries, the ValidationException rules a router checks
// before it sends anything to storage, how a storage node's StorageStatus becomes the error a
// client sees, parallel Scan's segments as ranges of partition-hash values, and the batch
// helpers (split a batch by partition, assemble UnprocessedKeys / UnprocessedItems).
//
// Sources: Developer Guide, "Error handling with DynamoDB" (Programming.Errors: the error names,
// HTTP 400 versus 5xx, which are retried), API reference BatchGetItem / BatchWriteItem (100 keys
// and 16 MB; 25 requests and 16 MB; duplicates refused; unprocessed items; "If none of the items
// can be processed due to insufficient provisioned throughput ... returns a
// ProvisionedThroughputExceededException"), API reference Scan (Segment, TotalSegments up to
// 1,000,000), Developer Guide, Constraints (item and key sizes), and
// ../reference/dynamodb-facts.md section 4. docs/api.md describes the whole.
//
// Not modelled: transactions, secondary indexes, streams, projections (ProjectionExpression only
// shapes what is returned, not what is read or charged, per CapacityUnitCalculations), Select =
// COUNT, sets, lists and maps.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "model/capacity_mode.h"
#include "model/expression.h"
#include "model/item.h"
#include "model/storage_protocol.h"

namespace dynasim::model {

enum class ApiOperation : uint8_t {
  kGetItem,
  kPutItem,
  kUpdateItem,
  kDeleteItem,
  kQuery,
  kScan,
  kBatchGetItem,
  kBatchWriteItem,
};
const char* to_string(ApiOperation operation);  // "GetItem", "PutItem", ...

// The errors a client sees (Developer Guide, Programming.Errors). kNone: the call succeeded.
enum class ApiError : uint8_t {
  kNone,
  kProvisionedThroughputExceeded,  // 400, retryable: over a provisioned table's throughput
  kThrottling,                     // 400, retryable: on-demand rate too high, control plane
  kRequestLimitExceeded,           // 400, retryable: over the account's throughput limit
  kConditionalCheckFailed,         // 400, not retryable: the condition did not hold
  kValidation,                     // 400, not retryable: the request is malformed
  kResourceNotFound,               // 400, not retryable: no such table (or not ACTIVE)
  kInternalServerError,            // 500, retryable; a write may or may not have been applied
  kServiceUnavailable,             // 503, retryable
};
// DynamoDB's exact names: "ProvisionedThroughputExceededException", "ThrottlingException",
// "RequestLimitExceeded", "ConditionalCheckFailedException", "ValidationException",
// "ResourceNotFoundException", "InternalServerError", "ServiceUnavailable"; "" for kNone.
const char* error_name(ApiError error);
bool is_retryable(ApiError error);     // facts section 4: every throttling error and every 5xx
uint32_t http_status(ApiError error);  // 200 for kNone
// A throttling error: an item of a batch that gets one becomes unprocessed.
bool is_throttling(ApiError error);

// The error a client sees for a storage node's final answer. kOk and kNotFound (GetItem of a
// missing item is a success with no item) are kNone; kConditionFailed and kValidation are what
// they say. kThrottled (storage-side admission, P22 section 4.1.1) is
// ProvisionedThroughputExceeded on a provisioned table and Throttling on an on-demand one
// (Developer Guide, Programming.Errors; throttling_error_name), which the caller retries with
// backoff. Every other status is the
// service's own trouble (a replica that does not lead, has no lease yet, is recovering, unhealthy,
// busy, or no longer hosts the group): a router retries those itself (router_retries) and, when it
// runs out, answers InternalServerError, the 500 that DynamoDB documents as retryable and, for a
// write, of unknown outcome.
ApiError api_error_for(StorageStatus status, CapacityMode mode = CapacityMode::kProvisioned);
bool router_retries(StorageStatus status);

// --- Validation (ValidationException before anything reaches storage) -------------------------

inline constexpr size_t kMaxBatchGetKeys = 100;                  // API reference, BatchGetItem
inline constexpr size_t kMaxBatchWriteRequests = 25;             // API reference, BatchWriteItem
inline constexpr uint64_t kMaxBatchBytes = 16ull * 1024 * 1024;  // both: 16 MB
inline constexpr uint32_t kMaxScanTotalSegments = 1'000'000;     // API reference, Scan

enum class ValidationFailure : uint8_t {
  kNone,
  kKeyMissing,            // the key lacks an attribute of the schema, or has one it lacks
  kKeyTypeMismatch,       // a key attribute of another type than the schema's
  kKeyEmpty,              // an empty key attribute
  kPartitionKeyTooLarge,  // over 2048 bytes
  kSortKeyTooLarge,       // over 1024 bytes
  kItemTooLarge,          // over 400 KB
  kEmptyBatch,
  kTooManyRequests,      // over 100 keys (BatchGetItem) or 25 requests (BatchWriteItem)
  kBatchTooLarge,        // a BatchWriteItem request over 16 MB
  kDuplicateKeys,        // "Provided list of item keys contains duplicates"
  kInvalidExpression,    // ExpressionStatus other than kOk
  kKeyAttributeUpdated,  // an update action on a key attribute ("part of the key")
  kInvalidSegment,       // Segment >= TotalSegments, or TotalSegments outside 1..1,000,000
  kInvalidReturnValues,  // ALL_NEW on PutItem or DeleteItem
};
const char* to_string(ValidationFailure failure);

ValidationFailure validate_key(const KeySchema& schema, const PrimaryKey& key);
ValidationFailure validate_item(const KeySchema& schema, const Item& item);
// Key attribute names must not be update targets; the update's own rules (expression.h).
ValidationFailure validate_update(const KeySchema& schema, const UpdateExpression& update);

// One request of a BatchWriteItem.
struct BatchWriteRequest {
  enum class Kind : uint8_t { kPut, kDelete };
  Kind kind = Kind::kPut;
  Item item;       // kPut
  PrimaryKey key;  // kDelete
  const PrimaryKey& target() const { return kind == Kind::kPut ? item.key() : key; }
};

ValidationFailure validate_batch_get(const KeySchema& schema, const std::vector<PrimaryKey>& keys);
ValidationFailure validate_batch_write(const KeySchema& schema,
                                       const std::vector<BatchWriteRequest>& requests);

// Condition expressions name attributes; items here keep their key apart from their attributes,
// so a router rewrites references to the key attributes before sending (the key is the
// request's own): attribute_exists(pk) becomes "the item exists", attribute_not_exists(pk) its
// negation, and an operand naming a key attribute becomes the key's value, guarded by "the item
// exists" as a missing item has no attributes. Filters need no rewrite: DynamoDB refuses key
// attributes in a filter.
ConditionExpression resolve_key_attributes(const ConditionExpression& condition,
                                           const KeySchema& schema, const PrimaryKey& key);
AttributeValue to_attribute_value(const KeyValue& value);

// --- Parallel Scan ------------------------------------------------------------------------------

// An inclusive range of partition_hash values.
struct HashRange {
  uint64_t begin = 0;
  uint64_t end = UINT64_MAX;
  bool operator==(const HashRange&) const = default;
};
// Segment s of n covers [floor(s * 2^64 / n), floor((s + 1) * 2^64 / n) - 1]: the segments
// partition the hash space exactly, and a router scans each group whose range meets the
// segment, over the intersection (ScanSpec). Our mapping: DynamoDB does not document its own.
// REQUIRES: 1 <= total_segments <= kMaxScanTotalSegments, segment < total_segments.
HashRange segment_hash_range(uint32_t segment, uint32_t total_segments);
ValidationFailure validate_segment(uint32_t segment, uint32_t total_segments);
std::optional<HashRange> intersect(const HashRange& a, const HashRange& b);

// --- Batches ------------------------------------------------------------------------------------

// The positions of a batch's keys grouped by what `group_of` maps them to (a partition or a
// replication group), groups in ascending order and positions in batch order within each.
std::map<uint64_t, std::vector<size_t>> split_by_group(
    const std::vector<PrimaryKey>& keys,
    const std::function<uint64_t(const PrimaryKey&)>& group_of);

// What became of one element of a batch, as its GetItem, PutItem or DeleteItem came back.
struct BatchElementOutcome {
  ApiError error = ApiError::kNone;  // kNone: processed
  std::optional<Item> item;          // BatchGetItem: the item, when it exists
  CapacityUnits consumed;
};

struct BatchGetResult {
  ApiError error = ApiError::kNone;  // the whole call's error (then nothing else is meaningful)
  std::vector<Item> responses;
  std::vector<PrimaryKey> unprocessed_keys;
  CapacityUnits
      consumed;  // each element rounded on its own, then summed (CapacityUnitCalculations)
};
// outcomes[i] is keys[i]'s. Throttled or retryable elements become unprocessed; so do items
// past 16 MB of response (stored_item_size_bytes with key_name_bytes). If no element was
// processed and some was throttled, the call fails with that throttling error, as DynamoDB's
// does; a non-retryable element error (a validation) fails the call with it.
BatchGetResult assemble_batch_get(const std::vector<PrimaryKey>& keys,
                                  const std::vector<BatchElementOutcome>& outcomes,
                                  uint32_t key_name_bytes);

struct BatchWriteResult {
  ApiError error = ApiError::kNone;
  std::vector<BatchWriteRequest> unprocessed_items;
  CapacityUnits consumed;
};
BatchWriteResult assemble_batch_write(const std::vector<BatchWriteRequest>& requests,
                                      const std::vector<BatchElementOutcome>& outcomes);

}  // namespace dynasim::model
