#include "model/split_policy.h"

#include <algorithm>

#include "sim/check.h"

namespace dynasim::model {

namespace {

using u128 = unsigned __int128;

// Decays never leave a stray unit behind: a positive weight loses at least one, so a quiet
// partition's summary reaches zero (within about 360 periods for 64-bit weights at shift 3).
uint64_t decayed(uint64_t weight, uint32_t shift) {
  if (weight == 0) return 0;
  return weight - std::max<uint64_t>(weight >> shift, 1);
}

uint64_t per_mille(uint64_t part, uint64_t whole) {
  if (whole == 0) return 0;
  return static_cast<uint64_t>(static_cast<u128>(part) * 1000 / whole);
}

// The split hash in (begin, end] that best halves `total` by `below` (the weight at positions
// < x, non-decreasing in x): the smallest x with 2 * below(x) >= total, or the one before it if
// that is closer. Ties go to the lower hash. 64 steps of bisection at most.
template <typename Below>
std::optional<HashCut> median_cut(uint64_t begin, uint64_t end, uint64_t total,
                                  const Below& below) {
  if (total == 0 || begin == end) return std::nullopt;
  uint64_t low = begin + 1;
  uint64_t high = end;
  while (low < high) {
    const uint64_t middle = low + (high - low) / 2;
    if (static_cast<u128>(below(middle)) * 2 >= total) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  auto distance = [&](uint64_t weight) {
    const u128 twice = static_cast<u128>(weight) * 2;
    return twice >= total ? twice - total : total - twice;
  };
  HashCut cut{low, below(low), total};
  if (low > begin + 1) {
    const uint64_t before = below(low - 1);
    if (distance(before) <= distance(cut.low_weight)) cut = HashCut{low - 1, before, total};
  }
  return cut;
}

uint64_t range_middle_split(uint64_t begin, uint64_t end) {
  return begin + (end - begin) / 2 + 1;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// AdaptiveHistogram

AdaptiveHistogram::AdaptiveHistogram(uint64_t begin, uint64_t end, uint32_t bucket_count,
                                     uint32_t refine_at_times_average)
    : begin_(begin),
      end_(end),
      capacity_(bucket_count),
      refine_at_times_average_(refine_at_times_average) {
  DYN_ASSERT(begin <= end);
  DYN_ASSERT(bucket_count >= 2 && refine_at_times_average >= 1);
  const u128 width = static_cast<u128>(end - begin) + 1;
  const uint64_t count = static_cast<uint64_t>(std::min<u128>(width, bucket_count));
  buckets_.reserve(bucket_count);
  for (uint64_t i = 0; i < count; ++i) {
    buckets_.push_back(Bucket{begin + static_cast<uint64_t>(width * i / count), 0});
  }
}

uint64_t AdaptiveHistogram::bucket_end(size_t i) const {
  return i + 1 < buckets_.size() ? buckets_[i + 1].begin - 1 : end_;
}

size_t AdaptiveHistogram::bucket_index(uint64_t hash) const {
  DYN_ASSERT_MSG(begin_ <= hash && hash <= end_, "hash outside the histogram's range");
  auto after =
      std::upper_bound(buckets_.begin(), buckets_.end(), hash,
                       [](uint64_t value, const Bucket& bucket) { return value < bucket.begin; });
  return static_cast<size_t>(after - buckets_.begin()) - 1;
}

void AdaptiveHistogram::add(uint64_t hash, uint64_t weight) {
  if (weight == 0) return;
  const size_t index = bucket_index(hash);
  buckets_[index].weight += weight;
  total_ += weight;
  maybe_refine(index);
}

// A bucket may hold less than what is taken away at a hash in it: a refinement gave half of its
// weight to the other half. The rest is taken from the nearest buckets, so the total stays exact.
void AdaptiveHistogram::subtract(uint64_t hash, uint64_t weight) {
  const size_t index = bucket_index(hash);
  uint64_t left = weight;
  auto take = [&](size_t i) {
    const uint64_t taken = std::min(left, buckets_[i].weight);
    buckets_[i].weight -= taken;
    total_ -= taken;
    left -= taken;
  };
  take(index);
  for (size_t distance = 1; left > 0 && distance < buckets_.size(); ++distance) {
    if (index >= distance) take(index - distance);
    if (left > 0 && index + distance < buckets_.size()) take(index + distance);
  }
}

void AdaptiveHistogram::decay(uint32_t shift) {
  DYN_ASSERT(shift >= 1 && shift < 64);
  total_ = 0;
  for (Bucket& bucket : buckets_) {
    bucket.weight = decayed(bucket.weight, shift);
    total_ += bucket.weight;
  }
}

void AdaptiveHistogram::clear() {
  for (Bucket& bucket : buckets_) bucket.weight = 0;
  total_ = 0;
}

uint64_t AdaptiveHistogram::weight_below(uint64_t x) const {
  uint64_t sum = 0;
  for (size_t i = 0; i < buckets_.size() && buckets_[i].begin < x; ++i) {
    const uint64_t low = buckets_[i].begin;
    const uint64_t high = bucket_end(i);
    if (high < x) {
      sum += buckets_[i].weight;
    } else {
      const u128 width = static_cast<u128>(high - low) + 1;
      sum += static_cast<uint64_t>(static_cast<u128>(buckets_[i].weight) * (x - low) / width);
    }
  }
  return sum;
}

// One refinement step at most per call, so an add costs O(log n) and, rarely, O(n).
void AdaptiveHistogram::maybe_refine(size_t index) {
  if (bucket_end(index) == buckets_[index].begin) return;  // one hash wide: cannot be cut
  const uint64_t heavy = buckets_[index].weight;
  if (static_cast<u128>(heavy) * buckets_.size() <=
      static_cast<u128>(refine_at_times_average_) * total_) {
    return;
  }
  if (buckets_.size() >= capacity_) {
    // Merge the lightest adjacent pair that does not include the heavy bucket.
    std::optional<size_t> pair;
    u128 pair_weight = 0;
    for (size_t j = 0; j + 1 < buckets_.size(); ++j) {
      if (j == index || j + 1 == index) continue;
      const u128 weight = static_cast<u128>(buckets_[j].weight) + buckets_[j + 1].weight;
      if (!pair || weight < pair_weight) {
        pair = j;
        pair_weight = weight;
      }
    }
    if (!pair || pair_weight * 2 >= heavy) return;
    buckets_[*pair].weight += buckets_[*pair + 1].weight;
    buckets_.erase(buckets_.begin() + static_cast<std::ptrdiff_t>(*pair) + 1);
    if (*pair + 1 < index) --index;
  }
  const uint64_t low = buckets_[index].begin;
  const uint64_t high = bucket_end(index);
  const uint64_t middle = low + (high - low) / 2 + 1;  // halves [low, middle-1], [middle, high]
  const uint64_t low_half = heavy / 2;
  buckets_[index].weight = low_half;
  buckets_.insert(buckets_.begin() + static_cast<std::ptrdiff_t>(index) + 1,
                  Bucket{middle, heavy - low_half});
  DYN_ASSERT(buckets_.size() <= capacity_);
}

// ---------------------------------------------------------------------------------------------
// Readings

uint64_t PeriodRate::share_of_partition_max_per_mille() const {
  const u128 load_per_second = static_cast<u128>(read_milli_units_per_second) * kLoadPerReadUnit +
                               static_cast<u128>(write_milli_units_per_second) * kLoadPerWriteUnit;
  // milli units * load per unit / 1000 = load; per mille of the maximum load per second.
  return static_cast<uint64_t>(load_per_second / kPartitionMaxLoadPerSecond);
}

uint64_t SequentialReading::ordered_per_mille() const {
  return per_mille(std::max(ascending, descending), transitions);
}

uint64_t HashCut::low_share_per_mille() const {
  return per_mille(low_weight, total_weight);
}

// ---------------------------------------------------------------------------------------------
// KeyTrafficSampler

KeyTrafficSampler::KeyTrafficSampler(uint64_t hash_begin, uint64_t hash_end, sim::SimTime local_now,
                                     KeyTrafficSamplerOptions options)
    : options_(options),
      traffic_(hash_begin, hash_end, options.bucket_count, options.refine_at_times_average),
      stored_(hash_begin, hash_end, options.bucket_count, options.refine_at_times_average),
      period_start_(local_now) {
  DYN_ASSERT(options.period > sim::Duration(0));
  DYN_ASSERT(options.heavy_key_slots >= 1 && options.rate_history_periods >= 1);
  DYN_ASSERT(options.decay_shift >= 1 && options.decay_shift < 64);
  heavy_.reserve(options.heavy_key_slots);
}

void KeyTrafficSampler::observe(const TrafficObservation& observation, sim::SimTime local_now) {
  advance(local_now);
  // Load in read-equivalent milli units: milli RCU * 1 + milli WCU * 3.
  const uint64_t load = observation.read_milli_units * (kLoadPerReadUnit / 1000) +
                        observation.write_milli_units * (kLoadPerWriteUnit / 1000);
  traffic_.add(observation.partition_hash, load);
  if (load > 0) count_heavy(observation.key_identity, observation.partition_hash, load);
  count_sequence(observation.partition_hash);
  period_read_milli_units_ += observation.read_milli_units;
  period_write_milli_units_ += observation.write_milli_units;
  ++period_observations_;
}

void KeyTrafficSampler::observe_stored_bytes(uint64_t partition_hash, int64_t delta_bytes) {
  if (delta_bytes >= 0) {
    stored_.add(partition_hash, static_cast<uint64_t>(delta_bytes));
  } else {
    stored_.subtract(partition_hash, static_cast<uint64_t>(-(delta_bytes + 1)) + 1);
  }
}

void KeyTrafficSampler::advance(sim::SimTime local_now) {
  if (local_now < period_start_ + options_.period) return;
  int64_t elapsed = (local_now - period_start_) / options_.period;
  close_period();  // the open period, which holds whatever was observed
  --elapsed;
  // The periods after it saw nothing. Only the last rate_history_periods of them can still be in
  // the history; the ones before only decay the summary, and past kDecaysToZero decays every
  // 64-bit weight is zero (see decayed()), so those are skipped at once.
  constexpr int64_t kDecaysToZero = 512;
  int64_t unrecorded = std::max<int64_t>(elapsed - options_.rate_history_periods, 0);
  if (unrecorded > kDecaysToZero) {
    traffic_.clear();
    heavy_.clear();
    period_start_ += options_.period * unrecorded;
    unrecorded = 0;
  }
  for (int64_t i = 0; i < unrecorded; ++i) {
    decay_traffic();
    period_start_ += options_.period;
  }
  const int64_t recorded = std::min<int64_t>(elapsed, options_.rate_history_periods);
  for (int64_t i = 0; i < recorded; ++i) close_period();
}

void KeyTrafficSampler::decay_traffic() {
  traffic_.decay(options_.decay_shift);
  for (HeavyKey& key : heavy_) {
    key.load = decayed(key.load, options_.decay_shift);
    key.overestimate = decayed(key.overestimate, options_.decay_shift);
  }
  std::erase_if(heavy_, [](const HeavyKey& key) { return key.load == 0; });
}

void KeyTrafficSampler::close_period() {
  const sim::SimTime end = period_start_ + options_.period;
  PeriodRate rate;
  rate.local_end = end;
  const u128 ns_per_second = 1'000'000'000;
  const u128 period_ns = static_cast<u128>(options_.period.ns);
  rate.read_milli_units_per_second =
      static_cast<uint64_t>(period_read_milli_units_ * ns_per_second / period_ns);
  rate.write_milli_units_per_second =
      static_cast<uint64_t>(period_write_milli_units_ * ns_per_second / period_ns);
  rate.observations = period_observations_;
  rates_.push_back(rate);
  while (rates_.size() > options_.rate_history_periods) rates_.pop_front();

  if (period_observations_ >= options_.sequential_min_observations) {
    period_sequence_.local_period_end = end;
    sequential_ = period_sequence_;
  }
  period_sequence_ = SequentialReading{};

  decay_traffic();

  period_read_milli_units_ = 0;
  period_write_milli_units_ = 0;
  period_observations_ = 0;
  period_start_ = end;
}

// Space-Saving (Metwally, Agrawal, El Abbadi, 2005), weighted: a key already counted adds to its
// counter; a new key takes a free counter, or else replaces the smallest one, inheriting its load
// as the overestimate. Any key whose true load exceeds total / slots holds a counter.
void KeyTrafficSampler::count_heavy(uint64_t key_identity, uint64_t partition_hash, uint64_t load) {
  for (HeavyKey& key : heavy_) {
    if (key.key_identity == key_identity && key.partition_hash == partition_hash) {
      key.load += load;
      return;
    }
  }
  if (heavy_.size() < options_.heavy_key_slots) {
    heavy_.push_back(HeavyKey{key_identity, partition_hash, load, 0});
    return;
  }
  size_t smallest = 0;
  for (size_t i = 1; i < heavy_.size(); ++i) {
    if (heavy_[i].load < heavy_[smallest].load) smallest = i;
  }
  const uint64_t inherited = heavy_[smallest].load;
  heavy_[smallest] = HeavyKey{key_identity, partition_hash, inherited + load, inherited};
}

void KeyTrafficSampler::count_sequence(uint64_t partition_hash) {
  if (last_position_ && *last_position_ != partition_hash) {
    ++period_sequence_.transitions;
    if (partition_hash > *last_position_) {
      ++period_sequence_.ascending;
    } else {
      ++period_sequence_.descending;
    }
  }
  last_position_ = partition_hash;
}

namespace {

// The traffic as the split point sees it: the buckets' load less the heavy keys' guaranteed load,
// spread evenly within each bucket, plus each heavy key's guaranteed load at its exact position.
struct TrafficDistribution {
  struct Span {
    uint64_t low = 0;
    uint64_t high = 0;
    uint64_t load = 0;
  };
  struct Point {
    uint64_t position = 0;
    uint64_t load = 0;
  };
  std::vector<Span> spans;
  std::vector<Point> points;  // sorted by position
  uint64_t total = 0;

  TrafficDistribution(const AdaptiveHistogram& histogram, const std::vector<HeavyKey>& heavy) {
    for (const HeavyKey& key : heavy) {
      if (key.guaranteed_load() > 0)
        points.push_back(Point{key.partition_hash, key.guaranteed_load()});
    }
    std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
      return a.position != b.position ? a.position < b.position : a.load < b.load;
    });
    // Each point's load comes out of its bucket and, for what that bucket lacks, out of the
    // nearest ones: refinements gave halves of a hot key's past weight to its neighbours (the
    // same rule as AdaptiveHistogram::subtract).
    std::vector<uint64_t> residual(histogram.bucket_count());
    for (size_t i = 0; i < residual.size(); ++i) residual[i] = histogram.bucket_weight(i);
    for (const Point& point : points) {
      const size_t index = histogram.bucket_index(point.position);
      uint64_t left = point.load;
      auto take = [&](size_t i) {
        const uint64_t taken = std::min(left, residual[i]);
        residual[i] -= taken;
        left -= taken;
      };
      take(index);
      for (size_t distance = 1; left > 0 && distance < residual.size(); ++distance) {
        if (index >= distance) take(index - distance);
        if (left > 0 && index + distance < residual.size()) take(index + distance);
      }
    }
    for (size_t i = 0; i < residual.size(); ++i) {
      spans.push_back(Span{histogram.bucket_begin(i), histogram.bucket_end(i), residual[i]});
      total += residual[i];
    }
    for (const Point& point : points) total += point.load;
  }

  uint64_t below(uint64_t x) const {
    uint64_t sum = 0;
    for (const Span& span : spans) {
      if (span.low >= x) break;
      if (span.high < x) {
        sum += span.load;
      } else {
        const u128 width = static_cast<u128>(span.high - span.low) + 1;
        sum += static_cast<uint64_t>(static_cast<u128>(span.load) * (x - span.low) / width);
      }
    }
    for (const Point& point : points) {
      if (point.position >= x) break;
      sum += point.load;
    }
    return sum;
  }
};

}  // namespace

uint64_t KeyTrafficSampler::traffic_load() const {
  return TrafficDistribution(traffic_, heavy_).total;
}

uint64_t KeyTrafficSampler::traffic_load_below(uint64_t x) const {
  return TrafficDistribution(traffic_, heavy_).below(x);
}

std::optional<HeavyKey> KeyTrafficSampler::hottest_key() const {
  std::optional<HeavyKey> best;
  for (const HeavyKey& key : heavy_) {
    if (!best || key.guaranteed_load() > best->guaranteed_load()) best = key;
  }
  return best;
}

std::optional<HashCut> KeyTrafficSampler::traffic_cut() const {
  const TrafficDistribution distribution(traffic_, heavy_);
  return median_cut(hash_begin(), hash_end(), distribution.total,
                    [&](uint64_t x) { return distribution.below(x); });
}

HashCut KeyTrafficSampler::traffic_cut_at(uint64_t split_hash) const {
  const TrafficDistribution distribution(traffic_, heavy_);
  return HashCut{split_hash, distribution.below(split_hash), distribution.total};
}

std::optional<HashCut> KeyTrafficSampler::stored_bytes_cut() const {
  return median_cut(hash_begin(), hash_end(), stored_.total(),
                    [&](uint64_t x) { return stored_.weight_below(x); });
}

// ---------------------------------------------------------------------------------------------
// SplitPolicy

const char* to_string(SplitVerdict verdict) {
  switch (verdict) {
    case SplitVerdict::kSplitForSize:
      return "split_for_size";
    case SplitVerdict::kSplitForConsumption:
      return "split_for_consumption";
    case SplitVerdict::kNoSplitBelowThreshold:
      return "no_split_below_threshold";
    case SplitVerdict::kNoSplitSingleHotKey:
      return "no_split_single_hot_key";
    case SplitVerdict::kNoSplitSequential:
      return "no_split_sequential";
    case SplitVerdict::kNoSplitAlreadySplitting:
      return "no_split_already_splitting";
    case SplitVerdict::kNoSplitNoBenefit:
      return "no_split_no_benefit";
  }
  return "?";
}

SplitDecision SplitPolicy::decide(const PartitionStatus& partition, KeyTrafficSampler& sampler,
                                  sim::SimTime local_now) const {
  DYN_ASSERT_MSG(
      sampler.hash_begin() == partition.hash_begin && sampler.hash_end() == partition.hash_end,
      "the sampler does not watch the partition's range");
  sampler.advance(local_now);
  SplitDecision decision;

  // The figures, whatever the verdict.
  const uint64_t load = sampler.traffic_load();
  if (auto hottest = sampler.hottest_key()) {
    decision.hottest_key_share_per_mille = per_mille(hottest->guaranteed_load(), load);
  }
  if (auto sequential = sampler.sequential()) {
    decision.ordered_per_mille = sequential->ordered_per_mille();
  }
  const auto& rates = sampler.rate_history();
  const bool enough_periods = rates.size() >= options_.sustained_periods;
  if (enough_periods && options_.sustained_periods > 0) {
    uint64_t least = UINT64_MAX;
    for (size_t i = rates.size() - options_.sustained_periods; i < rates.size(); ++i) {
      least = std::min(least, rates[i].share_of_partition_max_per_mille());
    }
    decision.sustained_share_per_mille = least;
  }
  const bool one_hash_wide = partition.hash_begin == partition.hash_end;

  if (partition.split_in_progress) {
    decision.verdict = SplitVerdict::kNoSplitAlreadySplitting;
    return decision;
  }

  if (!options_.plant_ignore_size && partition.size_bytes >= options_.split_for_size_at_bytes) {
    if (one_hash_wide) {
      decision.verdict = SplitVerdict::kNoSplitNoBenefit;
      return decision;
    }
    decision.verdict = SplitVerdict::kSplitForSize;
    if (auto cut = sampler.stored_bytes_cut()) {
      decision.split_hash = cut->split_hash;
      decision.low_share_per_mille = cut->low_share_per_mille();
    } else {
      decision.split_hash = range_middle_split(partition.hash_begin, partition.hash_end);
      decision.low_share_per_mille = 500;
    }
    return decision;
  }

  if (!options_.plant_ignore_threshold &&
      (!enough_periods ||
       decision.sustained_share_per_mille < options_.consumption_threshold_per_mille)) {
    decision.verdict = SplitVerdict::kNoSplitBelowThreshold;
    return decision;
  }
  if (!options_.plant_ignore_sequential &&
      decision.ordered_per_mille >= options_.sequential_ordered_per_mille) {
    decision.verdict = SplitVerdict::kNoSplitSequential;
    return decision;
  }
  if (!options_.plant_ignore_hot_key &&
      decision.hottest_key_share_per_mille >= options_.single_hot_key_share_per_mille) {
    decision.verdict = SplitVerdict::kNoSplitSingleHotKey;
    return decision;
  }

  std::optional<HashCut> cut;
  if (!one_hash_wide) {
    cut = options_.plant_split_at_range_middle
              ? std::optional<HashCut>(sampler.traffic_cut_at(
                    range_middle_split(partition.hash_begin, partition.hash_end)))
              : sampler.traffic_cut();
  }
  if (!cut) {
    decision.verdict = SplitVerdict::kNoSplitNoBenefit;
    return decision;
  }
  decision.split_hash = cut->split_hash;
  decision.low_share_per_mille = cut->low_share_per_mille();
  const uint64_t larger_child =
      std::max(decision.low_share_per_mille, 1000 - decision.low_share_per_mille);
  decision.verdict = larger_child > options_.max_child_share_per_mille
                         ? SplitVerdict::kNoSplitNoBenefit
                         : SplitVerdict::kSplitForConsumption;
  return decision;
}

}  // namespace dynasim::model
