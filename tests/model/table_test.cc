// A table's initial partition count (model/table.h): DG-2017's formula for throughput and size,
// the larger of the two, on-demand's starting figures, and the spec's validation.
#include "model/table.h"

#include <gtest/gtest.h>

#include "sim/random.h"

namespace dynasim::model {
namespace {

TableSpec provisioned(uint64_t rcu, uint64_t wcu, uint64_t size_bytes = 0) {
  TableSpec spec;
  spec.name = "Orders";
  spec.id = TableId(1);
  spec.key_schema.partition_key_name = "pk";
  spec.read_capacity_units = rcu;
  spec.write_capacity_units = wcu;
  spec.expected_size_bytes = size_bytes;
  return spec;
}

TEST(TableTest, ThroughputCountFollowsTheLegacyFormula) {
  // ceil(R/3000 + W/1000), exactly.
  EXPECT_EQ(initial_partition_count(provisioned(1, 1)).count, 1u);
  EXPECT_EQ(initial_partition_count(provisioned(1000, 500)).count, 1u);      // 0.33 + 0.5
  EXPECT_EQ(initial_partition_count(provisioned(1000, 1000)).count, 2u);     // 1.33
  EXPECT_EQ(initial_partition_count(provisioned(6000, 1000)).count, 3u);     // exactly 3
  EXPECT_EQ(initial_partition_count(provisioned(6001, 1000)).count, 4u);     // just over 3
  EXPECT_EQ(initial_partition_count(provisioned(1, 3200)).count, 4u);        // P22 section 4's 3200
  EXPECT_EQ(initial_partition_count(provisioned(40000, 40000)).count, 54u);  // 13.33 + 40
}

TEST(TableTest, SizeCountIsTenBinaryGigabytesPerPartition) {
  const uint64_t gb = kBytesPerGigabyte;
  EXPECT_EQ(initial_partition_count(provisioned(1, 1, 10 * gb)).count, 1u);
  EXPECT_EQ(initial_partition_count(provisioned(1, 1, 10 * gb + 1)).count, 2u);
  const InitialPartitionPlan plan = initial_partition_count(provisioned(1000, 1000, 25 * gb));
  EXPECT_EQ(plan.by_throughput, 2u);
  EXPECT_EQ(plan.by_size, 3u);
  EXPECT_EQ(plan.count, 3u);  // the larger
}

TEST(TableTest, OnDemandStartsFromFourThousandWritesAndTwelveThousandReads) {
  TableSpec spec = provisioned(1, 1);
  spec.billing_mode = CapacityMode::kOnDemand;
  spec.read_capacity_units = 0;  // ignored on demand
  spec.write_capacity_units = 0;
  ASSERT_EQ(validate(spec), TableSpecStatus::kOk);
  const InitialPartitionPlan plan = initial_partition_count(spec);
  EXPECT_EQ(plan.read_units, 12'000u);
  EXPECT_EQ(plan.write_units, 4'000u);
  EXPECT_EQ(plan.count, 8u);  // ceil(12000/3000 + 4000/1000)
}

// The formula against a reference in plain integers: the smallest n with n * 3000 >= R + 3W,
// the smallest m with m * 10 GB >= size, and the larger of the two (at least one).
TEST(TableTest, RandomSpecsAgreeWithTheReference) {
  sim::Random random(7);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t rcu = 1 + random.uniform_u64(40'000);
    const uint64_t wcu = 1 + random.uniform_u64(40'000);
    const uint64_t size = random.uniform_u64(2) == 0 ? 0 : random.uniform_u64(uint64_t{1} << 42);
    const InitialPartitionPlan plan = initial_partition_count(provisioned(rcu, wcu, size));
    uint64_t by_throughput = 0;
    while (by_throughput * 3000 < rcu + 3 * wcu) ++by_throughput;
    uint64_t by_size = 0;
    while (by_size * kPartitionMaxSizeBytes < size) ++by_size;
    EXPECT_EQ(plan.by_throughput, by_throughput);
    EXPECT_EQ(plan.by_size, by_size);
    EXPECT_EQ(plan.count, std::max<uint64_t>({by_throughput, by_size, 1}));
  }
}

TEST(TableTest, ValidationFollowsTheNamingRulesAndQuotas) {
  EXPECT_EQ(validate(provisioned(1, 1)), TableSpecStatus::kOk);
  TableSpec spec = provisioned(1, 1);
  spec.name = "ab";
  EXPECT_EQ(validate(spec), TableSpecStatus::kBadTableName);
  spec.name = "has space";
  EXPECT_EQ(validate(spec), TableSpecStatus::kBadTableName);
  spec.name = std::string(255, 'x');
  EXPECT_EQ(validate(spec), TableSpecStatus::kOk);
  spec.name = std::string(256, 'x');
  EXPECT_EQ(validate(spec), TableSpecStatus::kBadTableName);
  spec.name = "a_b-c.d9";
  EXPECT_EQ(validate(spec), TableSpecStatus::kOk);
  spec.key_schema.partition_key_name = "";
  EXPECT_EQ(validate(spec), TableSpecStatus::kBadKeyAttributeName);
  spec.key_schema.partition_key_name = "pk";
  spec.key_schema.sort_key_name = std::string(256, 's');
  EXPECT_EQ(validate(spec), TableSpecStatus::kBadKeyAttributeName);
  spec.key_schema.sort_key_name = "sk";
  spec.read_capacity_units = 0;
  EXPECT_EQ(validate(spec), TableSpecStatus::kCapacityBelowMinimum);
  spec.read_capacity_units = 40'001;
  EXPECT_EQ(validate(spec), TableSpecStatus::kCapacityAboveQuota);
  EXPECT_EQ(validate(spec, TableLimits{80'000, 80'000}), TableSpecStatus::kOk);
  spec.id = TableId();
  EXPECT_EQ(validate(spec), TableSpecStatus::kInvalidId);
}

TEST(TableTest, CreateCutsTheMapIntoTheInitialCount) {
  PartitionIdSource ids(100);
  const Table table = Table::create(provisioned(9000, 2000, 0), ids);  // ceil(3 + 2) = 5
  EXPECT_EQ(table.initial_plan.count, 5u);
  EXPECT_EQ(table.partitions.size(), 5u);
  EXPECT_EQ(table.partitions.table(), TableId(1));
  EXPECT_EQ(table.partitions.ranges().front().id, PartitionId(100));
  EXPECT_EQ(ids.peek(), 105u);
}

}  // namespace
}  // namespace dynasim::model
