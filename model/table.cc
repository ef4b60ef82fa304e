#include "model/table.h"

#include <algorithm>

#include "sim/check.h"

namespace dynasim::model {

namespace {

constexpr size_t kMinTableNameChars = 3;           // Developer Guide, naming rules
constexpr size_t kMaxTableNameChars = 255;         // Developer Guide, naming rules
constexpr size_t kMaxKeyAttributeNameBytes = 255;  // API reference, AttributeDefinition

bool table_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

bool key_attribute_name_ok(const std::string& name) {
  return !name.empty() && name.size() <= kMaxKeyAttributeNameBytes;
}

uint64_t ceil_div(uint64_t numerator, uint64_t denominator) {
  return numerator / denominator + (numerator % denominator != 0 ? 1 : 0);
}

uint32_t to_count(uint64_t value) {
  DYN_ASSERT_MSG(value <= UINT32_MAX, "partition count out of range");
  return static_cast<uint32_t>(value);
}

}  // namespace

const char* billing_mode_name(CapacityMode mode) {
  switch (mode) {
    case CapacityMode::kProvisioned:
      return "PROVISIONED";
    case CapacityMode::kOnDemand:
      return "PAY_PER_REQUEST";
  }
  return "?";
}

const char* to_string(TableSpecStatus status) {
  switch (status) {
    case TableSpecStatus::kOk:
      return "ok";
    case TableSpecStatus::kBadTableName:
      return "bad_table_name";
    case TableSpecStatus::kBadKeyAttributeName:
      return "bad_key_attribute_name";
    case TableSpecStatus::kCapacityBelowMinimum:
      return "capacity_below_minimum";
    case TableSpecStatus::kCapacityAboveQuota:
      return "capacity_above_quota";
    case TableSpecStatus::kInvalidId:
      return "invalid_id";
  }
  return "?";
}

TableSpecStatus validate(const TableSpec& spec, const TableLimits& limits) {
  if (!spec.id.valid()) return TableSpecStatus::kInvalidId;
  if (spec.name.size() < kMinTableNameChars || spec.name.size() > kMaxTableNameChars ||
      !std::all_of(spec.name.begin(), spec.name.end(), table_name_char)) {
    return TableSpecStatus::kBadTableName;
  }
  if (!key_attribute_name_ok(spec.key_schema.partition_key_name) ||
      (spec.key_schema.sort_key_name && !key_attribute_name_ok(*spec.key_schema.sort_key_name))) {
    return TableSpecStatus::kBadKeyAttributeName;
  }
  if (spec.billing_mode == CapacityMode::kProvisioned) {
    if (spec.read_capacity_units < 1 || spec.write_capacity_units < 1) {
      return TableSpecStatus::kCapacityBelowMinimum;
    }
    if (spec.read_capacity_units > limits.max_read_capacity_units ||
        spec.write_capacity_units > limits.max_write_capacity_units) {
      return TableSpecStatus::kCapacityAboveQuota;
    }
  }
  return TableSpecStatus::kOk;
}

InitialPartitionPlan initial_partition_count(const TableSpec& spec) {
  DYN_ASSERT_MSG(validate(spec, TableLimits{UINT32_MAX, UINT32_MAX}) == TableSpecStatus::kOk,
                 "initial_partition_count of an invalid table spec");
  InitialPartitionPlan plan;
  if (spec.billing_mode == CapacityMode::kOnDemand) {
    plan.read_units = kOnDemandInitialReadUnits;
    plan.write_units = kOnDemandInitialWriteUnits;
  } else {
    plan.read_units = spec.read_capacity_units;
    plan.write_units = spec.write_capacity_units;
  }
  // ceil(R / 3000 + W / 1000) == ceil((R + 3W) / 3000), exactly, in integers.
  static_assert(kPartitionMaxReadCapacityUnits == 3 * kPartitionMaxWriteCapacityUnits);
  plan.by_throughput =
      to_count(ceil_div(plan.read_units + 3 * plan.write_units, kPartitionMaxReadCapacityUnits));
  plan.by_size = to_count(ceil_div(spec.expected_size_bytes, kPartitionMaxSizeBytes));
  plan.count = std::max({plan.by_throughput, plan.by_size, uint32_t{1}});
  return plan;
}

Table Table::create(TableSpec spec, PartitionIdSource& ids) {
  const InitialPartitionPlan plan = initial_partition_count(spec);
  PartitionMap map = PartitionMap::uniform(spec.id, plan.count, ids);
  return Table{std::move(spec), plan, std::move(map)};
}

}  // namespace dynasim::model
