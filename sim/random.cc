#include "sim/random.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "sim/check.h"
#include "sim/detmath.h"

namespace dynasim::sim {

namespace {

// The word at p read as little-endian, so the value is the same whatever the machine's byte order.
// One load (memcpy) plus a swap on big-endian machines: byte-at-a-time assembly is not merged
// into a load by g++ at -O2, and it made hashing the largest cost of the write path.
inline uint64_t load_le64(const uint8_t* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);
  if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
  return word;
}

inline uint64_t absorb(uint64_t hash, uint64_t word) {
  hash = (hash ^ word) * 0x9e3779b97f4a7c15ULL;
  return hash ^ (hash >> 32);
}

}  // namespace

uint64_t hash_bytes(uint64_t seed, const uint8_t* bytes, size_t length) {
  // Four independent lanes over 32-byte blocks keep the multiplier busy (pages and sectors are
  // hashed on every write and read); each step is a bijection of its lane for a fixed word, and
  // the lanes are folded one at a time through splitmix64, so a change to any byte reaches the
  // result.
  uint64_t lane0 = splitmix64(seed);
  uint64_t lane1 = lane0 ^ 0x243f6a8885a308d3ULL;
  uint64_t lane2 = lane0 ^ 0x13198a2e03707344ULL;
  uint64_t lane3 = lane0 ^ 0xa4093822299f31d0ULL;
  size_t i = 0;
  for (; i + 32 <= length; i += 32) {
    lane0 = absorb(lane0, load_le64(bytes + i));
    lane1 = absorb(lane1, load_le64(bytes + i + 8));
    lane2 = absorb(lane2, load_le64(bytes + i + 16));
    lane3 = absorb(lane3, load_le64(bytes + i + 24));
  }
  uint64_t hash = splitmix64(lane0 ^ splitmix64(lane1 ^ splitmix64(lane2 ^ splitmix64(lane3))));
  for (; i + 8 <= length; i += 8) hash = absorb(hash, load_le64(bytes + i));
  for (; i < length; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ULL;
  return splitmix64(hash ^ length);
}

Random::Random(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& word : state_) {
    x = splitmix64(x);
    word = x;
  }
  // xoshiro's state must not be all zero; SplitMix64 output never is for four consecutive draws,
  // but say so where it would matter.
  DYN_ASSERT((state_[0] | state_[1] | state_[2] | state_[3]) != 0);
}

Random Random::derive(uint64_t root_seed, std::string_view stable_name) {
  return Random(splitmix64(root_seed) ^ splitmix64(stable_hash(stable_name)));
}

uint64_t Random::uniform_u64(uint64_t bound) {
  DYN_ASSERT(bound > 0);
  // Lemire, "Fast Random Integer Generation in an Interval" (2019): multiply, reject the biased
  // low part.
  unsigned __int128 product = static_cast<unsigned __int128>(next_u64()) * bound;
  auto low = static_cast<uint64_t>(product);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(next_u64()) * bound;
      low = static_cast<uint64_t>(product);
    }
  }
  return static_cast<uint64_t>(product >> 64);
}

int64_t Random::uniform_int(int64_t low, int64_t high) {
  DYN_ASSERT(low <= high);
  const uint64_t span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  if (span == UINT64_MAX) return static_cast<int64_t>(next_u64());
  return static_cast<int64_t>(static_cast<uint64_t>(low) + uniform_u64(span + 1));
}

double Random::uniform_real(double low, double high) {
  DYN_ASSERT(low < high);
  return low + (high - low) * next_double();
}

bool Random::bernoulli(double probability) {
  if (probability <= 0.0) return false;
  if (probability >= 1.0) return true;
  return next_double() < probability;
}

namespace {
// Tables of the ziggurat method for the unit exponential (Marsaglia and Tsang, "The Ziggurat
// Method for Generating Random Variables", 2000): 256 strips of equal area v under e^-x, the
// first of which holds the tail beyond r. x[i] is the right edge of strip i, f[i] = e^-x[i].
// The constants r and v are the paper's for 256 strips. The tables are built once, with our own
// det_exp and det_log, so they are the same bits on every machine; after that they never change.
struct ExponentialZiggurat {
  static constexpr double kTailStart = 7.69711747013104972;
  static constexpr double kStripArea = 0.0039496598225815571993;
  double x[257];
  double f[257];

  ExponentialZiggurat() {
    const double f_tail = det_exp(-kTailStart);
    x[0] = kStripArea / f_tail;  // the base strip's width: its area v includes the tail
    f[0] = 0.0;
    x[1] = kTailStart;
    f[1] = f_tail;
    for (int i = 1; i < 255; ++i) {
      x[i + 1] = -det_log(kStripArea / x[i] + f[i]);
      f[i + 1] = det_exp(-x[i + 1]);
    }
    x[256] = 0.0;  // the top strip reaches the axis
    f[256] = 1.0;
  }
};

const ExponentialZiggurat& exponential_ziggurat() {
  static const ExponentialZiggurat tables;
  return tables;
}
}  // namespace

double Random::exponential(double mean) {
  DYN_ASSERT(mean > 0.0);
  const ExponentialZiggurat& z = exponential_ziggurat();
  for (;;) {
    // Low 8 bits pick the strip, the high 53 bits place the point across it.
    const uint64_t bits = next_u64();
    const unsigned strip = static_cast<unsigned>(bits & 0xff);
    const double candidate = static_cast<double>(bits >> 11) * 0x1.0p-53 * z.x[strip];
    if (candidate < z.x[strip + 1]) return candidate * mean;  // inside the strip's core: ~99%
    if (strip == 0) {
      // The tail beyond r is exponential again (memorylessness); 1 - u lies in (0, 1].
      return (ExponentialZiggurat::kTailStart - det_log(1.0 - next_double())) * mean;
    }
    // The wedge between the core and the curve: accept under e^-x.
    const double height = z.f[strip] + next_double() * (z.f[strip + 1] - z.f[strip]);
    if (height < det_exp(-candidate)) return candidate * mean;
  }
}

Duration Random::exponential_duration(Duration mean) {
  return Duration(static_cast<int64_t>(exponential(static_cast<double>(mean.ns)) + 0.5));
}

double Random::normal(double mean, double stddev) {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return mean + stddev * spare_normal_;
  }
  // Marsaglia's polar method: needs only log and sqrt (sqrt is correctly rounded by IEEE 754).
  double u, v, s;
  do {
    u = 2.0 * next_double() - 1.0;
    v = 2.0 * next_double() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double factor = std::sqrt(-2.0 * det_log(s) / s);
  spare_normal_ = v * factor;
  has_spare_normal_ = true;
  return mean + stddev * (u * factor);
}

double Random::lognormal(double mu, double sigma) {
  return det_exp(normal(mu, sigma));
}

double Random::pareto(double scale, double shape) {
  DYN_ASSERT(scale > 0.0 && shape > 0.0);
  // Inverse CDF: x = x_m / U^(1/alpha), with U in (0, 1].
  return scale / det_pow(1.0 - next_double(), 1.0 / shape);
}

}  // namespace dynasim::sim
