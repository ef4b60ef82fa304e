// The router-facing API helpers: DynamoDB's error names and which are retried, StorageStatus to
// API error, the ValidationException rules for keys, items, updates and batches, the rewrite of
// key attributes in conditions, parallel Scan segments (they partition the hash space exactly),
// and the batch helpers (split by group, throttled elements become unprocessed, an all-throttled
// batch fails with the throttling error).
#include "model/api.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sim/random.h"

namespace dynasim::model {
namespace {

KeySchema schema() {
  KeySchema s;
  s.partition_key_name = "pk";
  s.partition_key_type = ScalarType::kString;
  s.sort_key_name = "sk";
  s.sort_key_type = ScalarType::kNumber;
  return s;
}

PrimaryKey key(const std::string& p, int64_t s) {
  return PrimaryKey{KeyValue::string(p), KeyValue::number_value(Decimal::from_int(s))};
}

TEST(ApiTest, ErrorNamesAndRetryability) {
  EXPECT_STREQ(error_name(ApiError::kProvisionedThroughputExceeded),
               "ProvisionedThroughputExceededException");
  EXPECT_STREQ(error_name(ApiError::kThrottling), "ThrottlingException");
  EXPECT_STREQ(error_name(ApiError::kConditionalCheckFailed), "ConditionalCheckFailedException");
  EXPECT_STREQ(error_name(ApiError::kValidation), "ValidationException");
  EXPECT_STREQ(error_name(ApiError::kInternalServerError), "InternalServerError");
  EXPECT_STREQ(error_name(ApiError::kRequestLimitExceeded), "RequestLimitExceeded");
  EXPECT_STREQ(error_name(ApiError::kResourceNotFound), "ResourceNotFoundException");
  EXPECT_TRUE(is_retryable(ApiError::kProvisionedThroughputExceeded));
  EXPECT_TRUE(is_retryable(ApiError::kThrottling));
  EXPECT_TRUE(is_retryable(ApiError::kRequestLimitExceeded));
  EXPECT_TRUE(is_retryable(ApiError::kInternalServerError));
  EXPECT_FALSE(is_retryable(ApiError::kConditionalCheckFailed));
  EXPECT_FALSE(is_retryable(ApiError::kValidation));
  EXPECT_FALSE(is_retryable(ApiError::kResourceNotFound));
  EXPECT_EQ(http_status(ApiError::kInternalServerError), 500u);
  EXPECT_EQ(http_status(ApiError::kValidation), 400u);
  EXPECT_STREQ(to_string(ApiOperation::kBatchWriteItem), "BatchWriteItem");
}

TEST(ApiTest, StorageStatusesMapToWhatAClientSees) {
  EXPECT_EQ(api_error_for(StorageStatus::kOk), ApiError::kNone);
  EXPECT_EQ(api_error_for(StorageStatus::kNotFound), ApiError::kNone);
  EXPECT_EQ(api_error_for(StorageStatus::kConditionFailed), ApiError::kConditionalCheckFailed);
  EXPECT_EQ(api_error_for(StorageStatus::kValidation), ApiError::kValidation);
  for (StorageStatus status :
       {StorageStatus::kNotLeader, StorageStatus::kNotServing, StorageStatus::kBusy,
        StorageStatus::kUnhealthy, StorageStatus::kNoSuchGroup, StorageStatus::kRecovering}) {
    EXPECT_EQ(api_error_for(status), ApiError::kInternalServerError) << to_string(status);
    EXPECT_TRUE(router_retries(status));
  }
  EXPECT_FALSE(router_retries(StorageStatus::kConditionFailed));
  // Throttling is named by the table's capacity mode (Developer Guide, Programming.Errors).
  EXPECT_EQ(api_error_for(StorageStatus::kThrottled), ApiError::kProvisionedThroughputExceeded);
  EXPECT_STREQ(error_name(api_error_for(StorageStatus::kThrottled, CapacityMode::kOnDemand)),
               "ThrottlingException");
  EXPECT_STREQ(error_name(api_error_for(StorageStatus::kThrottled, CapacityMode::kProvisioned)),
               "ProvisionedThroughputExceededException");
  EXPECT_STREQ(error_name(api_error_for(StorageStatus::kThrottled, CapacityMode::kOnDemand)),
               throttling_error_name(CapacityMode::kOnDemand));
  EXPECT_FALSE(router_retries(StorageStatus::kThrottled));
}

TEST(ApiTest, KeyItemAndUpdateValidation) {
  const KeySchema s = schema();
  EXPECT_EQ(validate_key(s, key("a", 1)), ValidationFailure::kNone);
  EXPECT_EQ(validate_key(s, PrimaryKey{KeyValue::string("a"), std::nullopt}),
            ValidationFailure::kKeyMissing);
  EXPECT_EQ(validate_key(s, PrimaryKey{KeyValue::string("a"), KeyValue::string("x")}),
            ValidationFailure::kKeyTypeMismatch);
  EXPECT_EQ(validate_key(s, key("", 1)), ValidationFailure::kKeyEmpty);
  EXPECT_EQ(validate_key(s, key(std::string(2049, 'x'), 1)),
            ValidationFailure::kPartitionKeyTooLarge);
  Item big(key("a", 1));
  big.set("blob", Payload{400 * 1024, 1, 1});
  EXPECT_EQ(validate_item(s, big), ValidationFailure::kItemTooLarge);
  Item shadow(key("a", 1));
  shadow.set("pk", std::string("other"));
  EXPECT_EQ(validate_item(s, shadow), ValidationFailure::kKeyMissing);
  UpdateExpression update;
  update.actions = {UpdateAction::add("sk", Decimal::from_int(1))};
  EXPECT_EQ(validate_update(s, update), ValidationFailure::kKeyAttributeUpdated);
  update.actions = {UpdateAction::add("n", Decimal::from_int(1)), UpdateAction::remove("n")};
  EXPECT_EQ(validate_update(s, update), ValidationFailure::kInvalidExpression);
}

TEST(ApiTest, BatchValidation) {
  const KeySchema s = schema();
  std::vector<PrimaryKey> keys;
  for (int i = 0; i < 100; ++i) keys.push_back(key("a", i));
  EXPECT_EQ(validate_batch_get(s, keys), ValidationFailure::kNone);
  keys.push_back(key("a", 100));
  EXPECT_EQ(validate_batch_get(s, keys), ValidationFailure::kTooManyRequests);
  EXPECT_EQ(validate_batch_get(s, {key("a", 1), key("b", 1), key("a", 1)}),
            ValidationFailure::kDuplicateKeys);
  EXPECT_EQ(validate_batch_get(s, {}), ValidationFailure::kEmptyBatch);

  std::vector<BatchWriteRequest> writes;
  for (int i = 0; i < 25; ++i) {
    BatchWriteRequest put;
    put.item = Item(key("w", i));
    writes.push_back(put);
  }
  EXPECT_EQ(validate_batch_write(s, writes), ValidationFailure::kNone);
  BatchWriteRequest erase;
  erase.kind = BatchWriteRequest::Kind::kDelete;
  erase.key = key("w", 3);  // the same item as a put: duplicates
  std::vector<BatchWriteRequest> duplicate(writes.begin(), writes.begin() + 5);
  duplicate.push_back(erase);
  EXPECT_EQ(validate_batch_write(s, duplicate), ValidationFailure::kDuplicateKeys);
  writes.push_back(erase);
  EXPECT_EQ(validate_batch_write(s, writes), ValidationFailure::kTooManyRequests);
  // 16 MB: 25 items of 390 KB pass (9.5 MB); the size of each item is its own limit first.
  std::vector<BatchWriteRequest> large;
  for (int i = 0; i < 25; ++i) {
    BatchWriteRequest put;
    put.item = Item(key("l", i));
    put.item.set("blob", Payload{390 * 1024, 1, 1});
    large.push_back(put);
  }
  EXPECT_EQ(validate_batch_write(s, large), ValidationFailure::kNone);
}

TEST(ApiTest, KeyAttributesInConditionsAreResolvedAgainstTheKey) {
  const KeySchema s = schema();
  const PrimaryKey k = key("a", 7);
  Item stored(k);
  stored.set("x", Decimal::from_int(1));
  using C = ConditionExpression;
  // attribute_not_exists(pk): put-if-absent.
  const C absent = resolve_key_attributes(C::not_exists("pk"), s, k);
  EXPECT_EQ(absent.validate(), ExpressionStatus::kOk);
  EXPECT_TRUE(absent.evaluate(nullptr));
  EXPECT_FALSE(absent.evaluate(&stored));
  const C present = resolve_key_attributes(C::exists("sk"), s, k);
  EXPECT_FALSE(present.evaluate(nullptr));
  EXPECT_TRUE(present.evaluate(&stored));
  // sk = 7 holds on the stored item only; sk <> 8 also on a missing one.
  const C equal =
      resolve_key_attributes(C::compare(Operand::attribute_named("sk"), Comparator::kEqual,
                                        Operand::literal(Decimal::from_int(7))),
                             s, k);
  EXPECT_TRUE(equal.evaluate(&stored));
  EXPECT_FALSE(equal.evaluate(nullptr));
  const C differs =
      resolve_key_attributes(C::compare(Operand::attribute_named("sk"), Comparator::kNotEqual,
                                        Operand::literal(Decimal::from_int(8))),
                             s, k);
  EXPECT_TRUE(differs.evaluate(&stored));
  EXPECT_TRUE(differs.evaluate(nullptr));
  const C prefix = resolve_key_attributes(C::begins_with("pk", std::string("b")), s, k);
  EXPECT_EQ(prefix.validate(), ExpressionStatus::kOk);
  EXPECT_FALSE(prefix.evaluate(&stored));
  // Other attributes are left alone, also under AND.
  const C mixed = resolve_key_attributes(C::both(C::exists("pk"), C::exists("x")), s, k);
  EXPECT_TRUE(mixed.evaluate(&stored));
  EXPECT_FALSE(mixed.evaluate(nullptr));
}

TEST(ApiTest, ScanSegmentsPartitionTheHashSpaceExactly) {
  for (uint32_t total : {1u, 2u, 3u, 7u, 1000u, kMaxScanTotalSegments}) {
    uint64_t expected_begin = 0;
    const uint32_t step = total > 1000 ? 997 : 1;  // every segment of the small splits
    for (uint32_t segment = 0; segment < total; segment += step) {
      const HashRange range = segment_hash_range(segment, total);
      if (step == 1) {
        EXPECT_EQ(range.begin, expected_begin) << segment << "/" << total;
      }
      EXPECT_LE(range.begin, range.end);
      expected_begin = range.end + 1;
    }
    EXPECT_EQ(segment_hash_range(total - 1, total).end, UINT64_MAX);
    EXPECT_EQ(validate_segment(total - 1, total), ValidationFailure::kNone);
    EXPECT_EQ(validate_segment(total, total), ValidationFailure::kInvalidSegment);
  }
  EXPECT_EQ(validate_segment(0, kMaxScanTotalSegments + 1), ValidationFailure::kInvalidSegment);
  EXPECT_EQ(intersect({0, 10}, {5, 20}), (HashRange{5, 10}));
  EXPECT_EQ(intersect({0, 4}, {5, 20}), std::nullopt);
  // Every hash lands in exactly one segment.
  sim::Random random(5);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t hash = random.next_u64();
    int found = 0;
    for (uint32_t segment = 0; segment < 7; ++segment) {
      const HashRange range = segment_hash_range(segment, 7);
      if (hash >= range.begin && hash <= range.end) ++found;
    }
    EXPECT_EQ(found, 1);
  }
}

TEST(ApiTest, BatchesSplitByGroupAndThrottledElementsBecomeUnprocessed) {
  std::vector<PrimaryKey> keys;
  for (int i = 0; i < 10; ++i) keys.push_back(key("k" + std::to_string(i), i));
  const auto groups = split_by_group(keys, [](const PrimaryKey& k) {
    return static_cast<uint64_t>(partition_hash(k.partition) % 3);
  });
  size_t total = 0;
  for (const auto& [group, positions] : groups) {
    for (size_t i = 1; i < positions.size(); ++i) EXPECT_LT(positions[i - 1], positions[i]);
    for (size_t position : positions) {
      EXPECT_EQ(partition_hash(keys[position].partition) % 3, group);
    }
    total += positions.size();
  }
  EXPECT_EQ(total, keys.size());

  std::vector<BatchElementOutcome> outcomes(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    outcomes[i].consumed.half_units = 2;
    if (i % 2 == 0) outcomes[i].item = Item(keys[i]);
  }
  outcomes[3].error = ApiError::kProvisionedThroughputExceeded;
  outcomes[4].error = ApiError::kInternalServerError;
  BatchGetResult got = assemble_batch_get(keys, outcomes, 4);
  EXPECT_EQ(got.error, ApiError::kNone);
  EXPECT_EQ(got.unprocessed_keys, (std::vector<PrimaryKey>{keys[3], keys[4]}));
  EXPECT_EQ(got.responses.size(), 4u);  // keys 0, 2, 6, 8 exist (4 was not processed)
  EXPECT_EQ(got.consumed.half_units, 16u);

  // Every element throttled: the call fails with the throttling error.
  for (BatchElementOutcome& outcome : outcomes) outcome.error = ApiError::kThrottling;
  EXPECT_EQ(assemble_batch_get(keys, outcomes, 4).error, ApiError::kThrottling);
  // A validation error on any element fails the call.
  outcomes[0].error = ApiError::kNone;
  outcomes[1].error = ApiError::kValidation;
  EXPECT_EQ(assemble_batch_get(keys, outcomes, 4).error, ApiError::kValidation);

  // Past 16 MB of response, items become unprocessed.
  std::vector<PrimaryKey> big_keys;
  std::vector<BatchElementOutcome> big(60);
  for (int i = 0; i < 60; ++i) {
    big_keys.push_back(key("b", i));
    Item item(big_keys.back());
    item.set("blob", Payload{390 * 1024, 1, 1});
    big[i].item = item;
  }
  const BatchGetResult partial = assemble_batch_get(big_keys, big, 0);
  EXPECT_EQ(partial.error, ApiError::kNone);
  EXPECT_EQ(partial.responses.size(), 42u);  // 42 * 390 KB < 16 MB < 43 * 390 KB
  EXPECT_EQ(partial.unprocessed_keys.size(), 18u);

  std::vector<BatchWriteRequest> writes(3);
  for (int i = 0; i < 3; ++i) writes[i].item = Item(key("w", i));
  std::vector<BatchElementOutcome> write_outcomes(3);
  write_outcomes[1].error = ApiError::kProvisionedThroughputExceeded;
  write_outcomes[0].consumed.half_units = 2;
  const BatchWriteResult written = assemble_batch_write(writes, write_outcomes);
  EXPECT_EQ(written.error, ApiError::kNone);
  ASSERT_EQ(written.unprocessed_items.size(), 1u);
  EXPECT_EQ(written.unprocessed_items[0].target(), key("w", 1));
  EXPECT_EQ(written.consumed.half_units, 2u);
}

}  // namespace
}  // namespace dynasim::model
