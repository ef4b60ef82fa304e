// Split decisions (model/split_policy.h): the sampler's bounded summary, the split point against
// the true traffic, and each verdict on the traffic it exists for. Every property is a seeded
// loop; every check is shown to fail with its planted bug.
#include "model/split_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "sim/random.h"

namespace dynasim::model {
namespace {

using u128 = unsigned __int128;

constexpr sim::Duration kPeriod = sim::seconds(10);  // KeyTrafficSamplerOptions' default

// ---------------------------------------------------------------------------------------------
// AdaptiveHistogram

TEST(SplitPolicyTest, HistogramKeepsItsTotalAndBucketBoundUnderRandomWeight) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    sim::Random random(seed);
    const uint64_t begin = random.next_u64() >> 1;
    const uint64_t end = begin + (random.next_u64() >> (1 + random.uniform_u64(60)));
    AdaptiveHistogram histogram(begin, end, 16, 2);
    uint64_t added = 0;
    for (int i = 0; i < 5000; ++i) {
      // Skewed: most weight near the start of the range.
      const uint64_t offset = (end - begin) >> random.uniform_u64(40);
      const uint64_t hash = begin + random.uniform_u64(offset + (offset < UINT64_MAX ? 1 : 0));
      const uint64_t weight = 1 + random.uniform_u64(1000);
      histogram.add(hash, weight);
      added += weight;
      ASSERT_LE(histogram.bucket_count(), 16u);
    }
    EXPECT_EQ(histogram.total(), added);
    uint64_t sum = 0;
    for (size_t i = 0; i < histogram.bucket_count(); ++i) {
      sum += histogram.bucket_weight(i);
      if (i > 0) {
        EXPECT_EQ(histogram.bucket_begin(i), histogram.bucket_end(i - 1) + 1);
      }
    }
    EXPECT_EQ(sum, added);
    EXPECT_EQ(histogram.bucket_begin(0), begin);
    EXPECT_EQ(histogram.bucket_end(histogram.bucket_count() - 1), end);
    EXPECT_EQ(histogram.weight_below(begin), 0u);
    const uint64_t last = histogram.bucket_weight(histogram.bucket_count() - 1);
    EXPECT_LE(histogram.weight_below(end), added);
    EXPECT_GE(histogram.weight_below(end), added - last);
  }
}

TEST(SplitPolicyTest, HistogramDecaysToZero) {
  AdaptiveHistogram histogram(0, 999, 8, 2);
  histogram.add(10, 1'000'000);
  histogram.add(900, 7);
  for (int i = 0; i < 400; ++i) histogram.decay(3);
  EXPECT_EQ(histogram.total(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Traffic generation

// A stream of requests on a partition: which key each touches, and where it lies.
struct Key {
  uint64_t hash;
  uint64_t identity;
};

enum class Shape {
  kZipf,     // Zipf over keys at random positions
  kHotSet,   // 80% of the load on 20 keys packed in the low third of the range
  kHotKey,   // 70% of the load on one key, the rest uniform
  kUniform,  // uniform over many keys
};

struct Traffic {
  uint64_t begin = 0;
  uint64_t end = UINT64_MAX;
  Shape shape = Shape::kZipf;
  // Share of the partition's maximum, in thousandths, offered every period.
  uint64_t share_per_mille = 900;
  int periods = 10;
};

uint64_t position_in(uint64_t begin, uint64_t end, uint64_t draw) {
  const u128 width = static_cast<u128>(end - begin) + 1;
  return begin + static_cast<uint64_t>(static_cast<u128>(draw) % width);
}

// Feeds `traffic` to the sampler, and returns the true decayed load per key position (the same
// 7/8 per closed period as the sampler), for comparing split points.
std::map<uint64_t, double> feed(KeyTrafficSampler& sampler, const Traffic& traffic, uint64_t seed,
                                sim::SimTime& now) {
  sim::Random random(seed);
  const uint64_t key_count = 1000 + random.uniform_u64(4000);
  const sim::ZipfDistribution zipf(key_count, 0.8 + 0.4 * random.next_double());
  const uint64_t salt = random.next_u64();
  const uint64_t width_third = (traffic.end - traffic.begin) / 3;
  auto key_at = [&](uint64_t rank) {
    return position_in(traffic.begin, traffic.end, sim::splitmix64(salt ^ rank));
  };
  // Each request is a 10 RCU read or a 3 WCU write (9,000 load either way, give or take).
  const uint64_t load_per_request = 10 * kLoadPerReadUnit;
  const uint64_t load_per_period =
      kPartitionMaxLoadPerSecond * traffic.share_per_mille / 1000 * (kPeriod.ns / 1'000'000'000);
  const uint64_t requests = load_per_period / load_per_request;
  std::map<uint64_t, double> truth;
  for (int p = 0; p < traffic.periods; ++p) {
    for (auto& [hash, load] : truth) load *= 7.0 / 8.0;
    for (uint64_t r = 0; r < requests; ++r) {
      uint64_t hash = 0;
      switch (traffic.shape) {
        case Shape::kZipf:
          hash = key_at(zipf.sample(random));
          break;
        case Shape::kHotSet:
          hash = random.uniform_u64(10) < 8
                     ? traffic.begin + width_third / 20 * random.uniform_u64(20) + 1
                     : key_at(random.uniform_u64(key_count));
          break;
        case Shape::kHotKey:
          hash = random.uniform_u64(10) < 7 ? key_at(0) : key_at(1 + random.uniform_u64(key_count));
          break;
        case Shape::kUniform:
          hash = key_at(random.uniform_u64(1'000'000));
          break;
      }
      TrafficObservation observation;
      observation.partition_hash = hash;
      observation.key_identity = hash;
      if (random.uniform_u64(2) == 0) {
        observation.read_milli_units = 10'000;
      } else {
        observation.write_milli_units = 3'333;  // a 3.3 WCU write: 9,999 load
      }
      const uint64_t load = observation.read_milli_units + 3 * observation.write_milli_units;
      sampler.observe(
          observation,
          now + kPeriod * p + kPeriod * static_cast<int64_t>(r) / static_cast<int64_t>(requests));
      truth[hash] += static_cast<double>(load);
    }
  }
  now = now + kPeriod * traffic.periods;
  return truth;
}

// The true share of the load below `split_hash`.
double true_low_share(const std::map<uint64_t, double>& truth, uint64_t split_hash) {
  double low = 0;
  double total = 0;
  for (const auto& [hash, load] : truth) {
    total += load;
    if (hash < split_hash) low += load;
  }
  return total > 0 ? low / total : 0.5;
}

// The best any split point could do: the least |share - 1/2| over all cuts between keys.
double best_imbalance(const std::map<uint64_t, double>& truth) {
  double total = 0;
  for (const auto& [hash, load] : truth) total += load;
  double below = 0;
  double best = 0.5;
  for (const auto& [hash, load] : truth) {
    best = std::min(best, std::fabs(below / total - 0.5));
    below += load;
  }
  return best;
}

PartitionStatus status_of(uint64_t begin, uint64_t end) {
  PartitionStatus status;
  status.id = PartitionId(1);
  status.hash_begin = begin;
  status.hash_end = end;
  return status;
}

// A random partition range: the whole space, or a random slice of it.
std::pair<uint64_t, uint64_t> random_range(sim::Random& random) {
  if (random.uniform_u64(3) == 0) return {0, UINT64_MAX};
  const uint64_t a = random.next_u64();
  const uint64_t b = random.next_u64();
  const uint64_t begin = std::min(a, b);
  const uint64_t end = std::max(a, b);
  if (end - begin < 1'000'000) return {0, UINT64_MAX};
  return {begin, end};
}

// ---------------------------------------------------------------------------------------------
// The split point

struct BalanceResult {
  int cases = 0;
  int split_verdicts = 0;
  int within_tolerance = 0;  // split verdicts within the tolerance
  double worst_excess = 0;   // the largest imbalance past the best possible
  double ours_total_imbalance = 0;
  double middle_total_imbalance = 0;
};

// Skewed traffic above the threshold on random ranges: the chosen split hash must split the true
// load within 5 percentage points of the best possible cut (the tolerance), and on the whole do
// better than the middle of the range.
constexpr double kBalanceTolerance = 0.05;

BalanceResult run_balance_cases(const SplitPolicyOptions& options) {
  BalanceResult result;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    sim::Random random(seed * 1'000'003);
    const auto [begin, end] = random_range(random);
    Traffic traffic;
    traffic.begin = begin;
    traffic.end = end;
    traffic.shape = seed % 2 == 0 ? Shape::kZipf : Shape::kHotSet;
    sim::SimTime now(0);
    KeyTrafficSampler sampler(begin, end, now);
    const auto truth = feed(sampler, traffic, seed, now);
    const SplitDecision decision = SplitPolicy(options).decide(status_of(begin, end), sampler, now);
    ++result.cases;
    if (decision.verdict != SplitVerdict::kSplitForConsumption) continue;
    ++result.split_verdicts;
    const double ours = std::fabs(true_low_share(truth, decision.split_hash) - 0.5);
    const double middle = std::fabs(true_low_share(truth, begin + (end - begin) / 2 + 1) - 0.5);
    result.worst_excess = std::max(result.worst_excess, ours - best_imbalance(truth));
    if (ours <= best_imbalance(truth) + kBalanceTolerance) {
      ++result.within_tolerance;
    }
    result.ours_total_imbalance += ours;
    result.middle_total_imbalance += middle;
    // The predicted share is the sampler's view of the same cut.
    EXPECT_NEAR(static_cast<double>(decision.low_share_per_mille) / 1000.0,
                true_low_share(truth, decision.split_hash), 0.05)
        << "seed " << seed;
  }
  return result;
}

TEST(SplitPolicyTest, SkewedTrafficSplitsAtTheWeightedMedianNotTheMiddle) {
  const BalanceResult result = run_balance_cases({});
  EXPECT_EQ(result.cases, 24);
  EXPECT_EQ(result.split_verdicts, result.cases);
  EXPECT_EQ(result.within_tolerance, result.cases);
  EXPECT_LE(result.worst_excess, kBalanceTolerance);
  EXPECT_LT(result.ours_total_imbalance, result.middle_total_imbalance / 4);
}

TEST(SplitPolicyTest, PlantedMiddleSplitIsCaughtByTheBalanceCheck) {
  SplitPolicyOptions options;
  options.plant_split_at_range_middle = true;
  const BalanceResult result = run_balance_cases(options);
  EXPECT_LT(result.within_tolerance, result.cases);
}

// ---------------------------------------------------------------------------------------------
// The verdicts

SplitVerdict run_shape(Shape shape, uint64_t seed, const SplitPolicyOptions& options,
                       uint64_t share_per_mille = 900) {
  sim::Random random(seed * 7919);
  const auto [begin, end] = random_range(random);
  Traffic traffic;
  traffic.begin = begin;
  traffic.end = end;
  traffic.shape = shape;
  traffic.share_per_mille = share_per_mille;
  sim::SimTime now(0);
  KeyTrafficSampler sampler(begin, end, now);
  feed(sampler, traffic, seed, now);
  return SplitPolicy(options).decide(status_of(begin, end), sampler, now).verdict;
}

TEST(SplitPolicyTest, ASingleHotKeyIsNotSplit) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    EXPECT_EQ(run_shape(Shape::kHotKey, seed, {}), SplitVerdict::kNoSplitSingleHotKey)
        << "seed " << seed;
  }
}

TEST(SplitPolicyTest, PlantedIgnoreHotKeyIsCaught) {
  SplitPolicyOptions options;
  options.plant_ignore_hot_key = true;
  int hot_key_verdicts = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    hot_key_verdicts +=
        run_shape(Shape::kHotKey, seed, options) == SplitVerdict::kNoSplitSingleHotKey;
  }
  EXPECT_LT(hot_key_verdicts, 12);
}

TEST(SplitPolicyTest, UniformTrafficBelowTheThresholdIsNotSplit) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    EXPECT_EQ(run_shape(Shape::kUniform, seed, {}, 500), SplitVerdict::kNoSplitBelowThreshold);
    // Above it, the same shape splits.
    EXPECT_EQ(run_shape(Shape::kUniform, seed, {}, 900), SplitVerdict::kSplitForConsumption);
  }
}

// A burst: two periods far past the threshold, then quiet. Not sustained, so no split.
SplitVerdict run_burst(const SplitPolicyOptions& options) {
  sim::SimTime now(0);
  KeyTrafficSampler sampler(0, UINT64_MAX, now);
  Traffic traffic;
  traffic.shape = Shape::kUniform;
  traffic.share_per_mille = 1500;
  traffic.periods = 2;
  feed(sampler, traffic, 3, now);
  traffic.share_per_mille = 100;
  traffic.periods = 5;
  feed(sampler, traffic, 4, now);
  return SplitPolicy(options).decide(status_of(0, UINT64_MAX), sampler, now).verdict;
}

TEST(SplitPolicyTest, ABurstIsNotSustainedConsumption) {
  EXPECT_EQ(run_burst({}), SplitVerdict::kNoSplitBelowThreshold);
}

TEST(SplitPolicyTest, PlantedIgnoreThresholdIsCaught) {
  SplitPolicyOptions options;
  options.plant_ignore_threshold = true;
  EXPECT_NE(run_burst(options), SplitVerdict::kNoSplitBelowThreshold);
  EXPECT_NE(run_shape(Shape::kUniform, 1, options, 500), SplitVerdict::kNoSplitBelowThreshold);
}

// A time series written in order: each request lands just past the one before it, walking up (or
// down) through the range.
SplitVerdict run_sequential(uint64_t seed, const SplitPolicyOptions& options) {
  sim::Random random(seed);
  const auto [begin, end] = random_range(random);
  const bool descending = seed % 2 == 0;
  sim::SimTime now(0);
  KeyTrafficSampler sampler(begin, end, now);
  const uint64_t requests_per_period = 2700;  // 90% of the maximum at 10 RCU each
  const int periods = 10;
  const uint64_t total = requests_per_period * periods;
  const uint64_t step = (end - begin) / (total + 1);
  for (uint64_t i = 0; i < total; ++i) {
    // Mostly in order, with an occasional reread of an older key.
    uint64_t index = random.uniform_u64(50) == 0 ? random.uniform_u64(i + 1) : i;
    const uint64_t offset = step * index;
    TrafficObservation observation;
    observation.partition_hash = descending ? end - offset : begin + offset;
    observation.key_identity = observation.partition_hash;
    observation.read_milli_units = 10'000;
    sampler.observe(observation, now + kPeriod * static_cast<int64_t>(i) /
                                           static_cast<int64_t>(requests_per_period));
  }
  now = now + kPeriod * periods;
  return SplitPolicy(options).decide(status_of(begin, end), sampler, now).verdict;
}

TEST(SplitPolicyTest, SequentialAccessIsNotSplit) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    EXPECT_EQ(run_sequential(seed, {}), SplitVerdict::kNoSplitSequential) << "seed " << seed;
  }
}

TEST(SplitPolicyTest, PlantedIgnoreSequentialIsCaught) {
  SplitPolicyOptions options;
  options.plant_ignore_sequential = true;
  int sequential_verdicts = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    sequential_verdicts += run_sequential(seed, options) == SplitVerdict::kNoSplitSequential;
  }
  EXPECT_LT(sequential_verdicts, 10);
}

// ---------------------------------------------------------------------------------------------
// Split for size

struct SizeCase {
  SplitDecision decision;
  double true_low_share = 0;
};

// Items written at random positions (half of them packed in the top fifth of the range), until
// the partition holds `total_bytes`; some are overwritten with a new size, some deleted.
SizeCase run_size_case(uint64_t seed, uint64_t total_bytes, const SplitPolicyOptions& options) {
  sim::Random random(seed);
  const auto [begin, end] = random_range(random);
  sim::SimTime now(0);
  KeyTrafficSampler sampler(begin, end, now);
  std::map<uint64_t, uint64_t> items;  // position -> bytes
  uint64_t stored = 0;
  const uint64_t fifth = (end - begin) / 5;
  while (stored < total_bytes) {
    const uint64_t position = random.uniform_u64(2) == 0
                                  ? position_in(begin, end, random.next_u64())
                                  : end - random.uniform_u64(fifth + 1);
    const uint64_t size = 1 + random.uniform_u64(400 * 1024);
    uint64_t& item = items[position];
    sampler.observe_stored_bytes(position, static_cast<int64_t>(size) - static_cast<int64_t>(item));
    stored = stored - item + size;
    item = size;
    if (random.uniform_u64(20) == 0) {  // a delete
      sampler.observe_stored_bytes(position, -static_cast<int64_t>(item));
      stored -= item;
      items.erase(position);
    }
  }
  PartitionStatus status = status_of(begin, end);
  status.size_bytes = stored;
  SizeCase result;
  result.decision = SplitPolicy(options).decide(status, sampler, now);
  uint64_t low = 0;
  for (const auto& [position, bytes] : items) {
    if (position < result.decision.split_hash) low += bytes;
  }
  result.true_low_share = static_cast<double>(low) / static_cast<double>(stored);
  EXPECT_EQ(sampler.stored_bytes(), stored);
  return result;
}

TEST(SplitPolicyTest, SizeNearTenGigabytesSplitsAtTheBytesMedian) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    // Scaled down: a 9 MB threshold with the same item sizes keeps the test fast.
    SplitPolicyOptions options;
    options.split_for_size_at_bytes = 9 << 20;
    const SizeCase below = run_size_case(seed, 8 << 20, options);
    EXPECT_EQ(below.decision.verdict, SplitVerdict::kNoSplitBelowThreshold);
    const SizeCase above = run_size_case(seed, 9 << 20, options);
    ASSERT_EQ(above.decision.verdict, SplitVerdict::kSplitForSize) << "seed " << seed;
    EXPECT_NEAR(above.true_low_share, 0.5, 0.05) << "seed " << seed;
  }
}

TEST(SplitPolicyTest, PlantedIgnoreSizeIsCaught) {
  SplitPolicyOptions options;
  options.split_for_size_at_bytes = 9 << 20;
  options.plant_ignore_size = true;
  EXPECT_NE(run_size_case(1, 9 << 20, options).decision.verdict, SplitVerdict::kSplitForSize);
}

TEST(SplitPolicyTest, DefaultSizeThresholdIsNinetyPercentOfTenGigabytes) {
  EXPECT_EQ(SplitPolicyOptions{}.split_for_size_at_bytes, 9 * kBytesPerGigabyte);
  // Without size samples the split for size cuts the range's middle (partition_hash spreads keys).
  sim::SimTime now(0);
  KeyTrafficSampler sampler(0, 99, now);
  PartitionStatus status = status_of(0, 99);
  status.size_bytes = 9 * kBytesPerGigabyte;
  const SplitDecision decision = SplitPolicy().decide(status, sampler, now);
  EXPECT_EQ(decision.verdict, SplitVerdict::kSplitForSize);
  EXPECT_EQ(decision.split_hash, 50u);
}

// ---------------------------------------------------------------------------------------------
// The rest

TEST(SplitPolicyTest, ASplitUnderWayAndAOneHashRangeAreNotSplit) {
  sim::SimTime now(0);
  KeyTrafficSampler sampler(0, UINT64_MAX, now);
  Traffic traffic;
  traffic.shape = Shape::kUniform;
  feed(sampler, traffic, 1, now);
  PartitionStatus status = status_of(0, UINT64_MAX);
  status.split_in_progress = true;
  EXPECT_EQ(SplitPolicy().decide(status, sampler, now).verdict,
            SplitVerdict::kNoSplitAlreadySplitting);

  KeyTrafficSampler single(42, 42, now);
  for (int i = 0; i < 30000; ++i) {
    TrafficObservation observation{42, static_cast<uint64_t>(i), 10'000,
                                   0};  // many items, one hash
    single.observe(observation, now + kPeriod * i / 3000);
  }
  now = now + kPeriod * 10;
  EXPECT_EQ(SplitPolicy().decide(status_of(42, 42), single, now).verdict,
            SplitVerdict::kNoSplitNoBenefit);
}

// A hot item collection: many items under one partition key. No single item is hot, but all of
// them share one position, and the key space cannot be cut inside a position: no benefit.
TEST(SplitPolicyTest, ManyItemsUnderOneHotPartitionKeyAreNotSplit) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    sim::Random random(seed);
    const uint64_t hot_position = random.next_u64();
    sim::SimTime now(0);
    KeyTrafficSampler sampler(0, UINT64_MAX, now);
    for (int i = 0; i < 27'000; ++i) {
      TrafficObservation observation;
      const bool hot = random.uniform_u64(10) < 9;
      observation.partition_hash = hot ? hot_position : random.next_u64();
      observation.key_identity = random.next_u64();  // the item, not the partition key
      observation.read_milli_units = 10'000;
      sampler.observe(observation, now + kPeriod * i / 2700);
    }
    now = now + kPeriod * 10;
    const SplitDecision decision = SplitPolicy().decide(status_of(0, UINT64_MAX), sampler, now);
    EXPECT_EQ(decision.verdict, SplitVerdict::kNoSplitNoBenefit) << "seed " << seed;
    EXPECT_LT(decision.hottest_key_share_per_mille, 50u);
  }
}

TEST(SplitPolicyTest, TheSummaryIsBoundedAndForgetsAQuietPast) {
  sim::SimTime now(0);
  KeyTrafficSampler sampler(0, UINT64_MAX, now);
  sim::Random random(5);
  for (int i = 0; i < 100'000; ++i) {
    TrafficObservation observation;
    observation.partition_hash = random.next_u64();
    observation.key_identity = observation.partition_hash;
    observation.write_milli_units = 1000;
    sampler.observe(observation, now + sim::milliseconds(i * 10));
  }
  EXPECT_LE(sampler.heavy_keys().size(), 16u);
  EXPECT_LE(sampler.traffic_histogram().bucket_count(), 64u);
  EXPECT_LE(sampler.rate_history().size(), 32u);
  EXPECT_GT(sampler.traffic_load(), 0u);
  // An hour later: nothing is left of the traffic, and the history shows quiet periods.
  sampler.advance(now + sim::hours(1));
  EXPECT_EQ(sampler.traffic_load(), 0u);
  EXPECT_TRUE(sampler.heavy_keys().empty());
  EXPECT_EQ(sampler.rate_history().size(), 32u);
  EXPECT_EQ(sampler.rate_history().back().read_milli_units_per_second +
                sampler.rate_history().back().write_milli_units_per_second,
            0u);
  EXPECT_FALSE(sampler.traffic_cut().has_value());
}

// Space-Saving's guarantee, within one period (no decay): every key whose load exceeds
// total / slots holds a counter, and each counter brackets its key's true load.
TEST(SplitPolicyTest, HeavyKeysFindEveryKeyAboveTheirShare) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    sim::Random random(seed);
    const sim::ZipfDistribution zipf(500, 1.0 + random.next_double());
    sim::SimTime now(0);
    KeyTrafficSampler sampler(0, UINT64_MAX, now);
    std::map<uint64_t, uint64_t> truth;
    uint64_t total = 0;
    for (int i = 0; i < 5000; ++i) {
      const uint64_t hash = sim::splitmix64(zipf.sample(random) + seed);
      TrafficObservation observation{hash, hash, 1000 * (1 + random.uniform_u64(4)), 0};
      sampler.observe(observation, now);
      truth[hash] += observation.read_milli_units;
      total += observation.read_milli_units;
    }
    for (const auto& [hash, load] : truth) {
      const auto& heavy = sampler.heavy_keys();
      const uint64_t identity = hash;
      auto found = std::find_if(heavy.begin(), heavy.end(),
                                [&](const HeavyKey& key) { return key.key_identity == identity; });
      if (load * 16 > total) {
        ASSERT_NE(found, heavy.end()) << "seed " << seed;
      }
      if (found != heavy.end()) {
        EXPECT_LE(found->guaranteed_load(), load);
        EXPECT_GE(found->load, load);
      }
    }
  }
}

// The leader's clock may step back: observations then count in the open period, and periods
// close only once the clock passes the open period's end again.
TEST(SplitPolicyTest, AClockSteppedBackCountsInTheOpenPeriod) {
  sim::SimTime now(sim::seconds(100).ns);
  KeyTrafficSampler sampler(0, UINT64_MAX, now);
  TrafficObservation observation{12345, 12345, 1000, 0};
  sampler.observe(observation, now + sim::seconds(5));
  sampler.observe(observation, now - sim::seconds(30));  // stepped back
  EXPECT_TRUE(sampler.rate_history().empty());
  sampler.advance(now + kPeriod);
  ASSERT_EQ(sampler.rate_history().size(), 1u);
  EXPECT_EQ(sampler.rate_history()[0].observations, 2u);
  EXPECT_EQ(sampler.rate_history()[0].read_milli_units_per_second, 200u);  // 2000 over 10 s
}

TEST(SplitPolicyTest, TheSameStreamGivesTheSameDecision) {
  auto run = [] {
    sim::SimTime now(0);
    KeyTrafficSampler sampler(0, UINT64_MAX, now);
    Traffic traffic;
    traffic.shape = Shape::kZipf;
    feed(sampler, traffic, 11, now);
    return SplitPolicy().decide(status_of(0, UINT64_MAX), sampler, now);
  };
  const SplitDecision first = run();
  const SplitDecision second = run();
  EXPECT_EQ(first.verdict, second.verdict);
  EXPECT_EQ(first.split_hash, second.split_hash);
  EXPECT_EQ(first.low_share_per_mille, second.low_share_per_mille);
}

}  // namespace
}  // namespace dynasim::model
