// A table's specification and how many partitions it starts with (docs/partitions.md).
//
// P22 section 3: a table is cut into partitions, each holding "a disjoint and contiguous part of
// the table's key-range". How many a new table gets follows from two per-partition limits:
// - throughput: a partition serves at most 3,000 RCU or 1,000 WCU (Developer Guide, 2017
//   GuidelinesForTables, "DG-2017"; the current guide's bp-partition-key-design says every
//   partition "will strive to deliver the full capacity of 3,000 RCU and 1,000 WCU");
// - size: a partition holds about 10 GB (DG-2017; Developer Guide ServiceQuotas, LSI section).
//   All DynamoDB size figures are binary (Developer Guide, Constraints: "1 GB = 1024 MB"), so
//   10 GB here is 10 * 2^30 bytes.
//
// The rule (initial_partition_count):
//   by_throughput = ceil(RCU / 3000 + WCU / 1000)   DG-2017's legacy formula, computed exactly
//                                                   in integers: ceil((RCU + 3 * WCU) / 3000)
//   by_size       = ceil(expected_size_bytes / 10 GB)   DG-2017's size rule
//   count         = max(by_throughput, by_size, 1)
// DG-2017 stated both rules for the scheme of 2017 and the paper (P22 section 4) describes that
// scheme as the old one; today's allocation is not published. Using it for a new table is our
// assumption: it is the only published rule, and later growth comes from splits
// (model/split_policy.h) whatever the starting count.
//
// On-demand tables: a new one "sustains 4,000 writes/s and 12,000 reads/s" (Developer Guide,
// HowItWorks.ReadWriteCapacityMode; docs warm-throughput pages). Feeding those figures into the
// same formula (ceil(12000/3000 + 4000/1000) = 8 partitions) is our assumption.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/archive.h"
#include "model/capacity_mode.h"
#include "model/item.h"
#include "model/partition_map.h"

namespace dynasim::model {

// Per-partition limits (sources in the header comment).
// The throughput ceilings are admission's (model/admission.h), so one figure serves both.
inline constexpr uint64_t kPartitionMaxReadCapacityUnits = kPartitionMaxReadUnitsPerSecond;
inline constexpr uint64_t kPartitionMaxWriteCapacityUnits = kPartitionMaxWriteUnitsPerSecond;
inline constexpr uint64_t kBytesPerGigabyte = uint64_t{1} << 30;  // Developer Guide, Constraints
inline constexpr uint64_t kPartitionMaxSizeBytes = 10 * kBytesPerGigabyte;  // DG-2017

// Load: consumption in read-equivalent milli units. A read capacity unit is 1,000 and a write
// capacity unit 3,000, because a partition's 3,000 RCU and 1,000 WCU (DG-2017) are the same share
// of it; a partition's combined share of its maximum is then reads / 3000 + writes / 1000, the
// form of DG-2017's formula below. Split decisions (model/split_policy.h) and auto-admin's
// placement by throughput (model/auto_admin.h) both count in it.
inline constexpr uint64_t kLoadPerReadUnit = 1'000;
inline constexpr uint64_t kLoadPerWriteUnit = 3'000;
inline constexpr uint64_t kPartitionMaxLoadPerSecond =
    kPartitionMaxReadCapacityUnits * kLoadPerReadUnit;
static_assert(kPartitionMaxLoadPerSecond == kPartitionMaxWriteCapacityUnits * kLoadPerWriteUnit);

// A new on-demand table's starting throughput (Developer Guide, HowItWorks.ReadWriteCapacityMode).
inline constexpr uint64_t kOnDemandInitialReadUnits = 12'000;
inline constexpr uint64_t kOnDemandInitialWriteUnits = 4'000;

// Default per-table quotas for provisioned capacity and the minimum of 1 unit (Developer Guide,
// ServiceQuotas). The quota can be raised on request in the service; a TableLimits can too.
struct TableLimits {
  uint64_t max_read_capacity_units = 40'000;
  uint64_t max_write_capacity_units = 40'000;
};

// The table's capacity mode is model/capacity_mode.h's CapacityMode; the field keeps the name
// DynamoDB's CreateTable API gives it (BillingMode: PROVISIONED or PAY_PER_REQUEST, i.e.
// on-demand). billing_mode_name() gives those API names.
const char* billing_mode_name(CapacityMode mode);

struct TableSpec {
  std::string name;
  TableId id;
  KeySchema key_schema;
  CapacityMode billing_mode = CapacityMode::kProvisioned;
  // Provisioned mode only (on-demand starts from kOnDemandInitial*).
  uint64_t read_capacity_units = 1;
  uint64_t write_capacity_units = 1;
  // What the table is expected to hold when it is created (e.g. a bulk import); 0 for a new empty
  // table.
  uint64_t expected_size_bytes = 0;
};

enum class TableSpecStatus : uint8_t {
  kOk,
  kBadTableName,          // not 3-255 characters of a-z A-Z 0-9 _ - . (Developer Guide, naming)
  kBadKeyAttributeName,   // a key attribute name empty or over 255 bytes (API AttributeDefinition)
  kCapacityBelowMinimum,  // provisioned RCU or WCU below 1 (Developer Guide, ServiceQuotas)
  kCapacityAboveQuota,    // provisioned RCU or WCU above the per-table quota
  kInvalidId,             // the TableId is not set
};
const char* to_string(TableSpecStatus status);

TableSpecStatus validate(const TableSpec& spec, const TableLimits& limits = {});

// The initial partition count and the figures it came from.
struct InitialPartitionPlan {
  uint64_t read_units = 0;   // the throughput the count was computed for
  uint64_t write_units = 0;  // (the provisioned figures, or on-demand's initial ones)
  uint32_t by_throughput = 0;
  uint32_t by_size = 0;
  uint32_t count = 0;  // max(by_throughput, by_size, 1)
};

// REQUIRES: the spec is valid (validate() gives kOk under some TableLimits: a raised quota is
// fine).
InitialPartitionPlan initial_partition_count(const TableSpec& spec);

// A table: its specification and its partition map, cut into the initial count of equal ranges.
struct Table {
  TableSpec spec;
  InitialPartitionPlan initial_plan;
  PartitionMap partitions;

  // REQUIRES: validate(spec) == kOk. New partition ids come from `ids`.
  static Table create(TableSpec spec, PartitionIdSource& ids);
};

}  // namespace dynasim::model
