// Seeded randomness: our own engine and our own distributions.
//
// One root seed decides every draw in a run. Each component asks for its own stream by a stable
// name ("net", "disk/host-3/0", "faults/power"), so adding a component or a draw in one place does
// not shift the draws of any other. The engine is xoshiro256** seeded through SplitMix64. Every
// distribution is written here, with our own log/exp (sim/detmath.h), because std::*_distribution
// and libm differ between standard libraries and machines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sim/time.h"

namespace dynasim::sim {

// SplitMix64 step: a bijective 64-bit mixer. Also used to spread seeds and hash ids.
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a over the bytes of a name. Stable across compilers and machines.
constexpr uint64_t stable_hash(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : text) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// A 64-bit hash of a byte range, word at a time (explicitly little-endian, so every machine gives
// the same value), seeded so that callers can bind it to an address or a sequence number. Used for
// on-disk checksums and content digests; not cryptographic.
uint64_t hash_bytes(uint64_t seed, const uint8_t* bytes, size_t length);

class Random {
 public:
  explicit Random(uint64_t seed);

  // The stream of the component named `stable_name` in a run with root seed `root_seed`.
  static Random derive(uint64_t root_seed, std::string_view stable_name);

  uint64_t next_u64() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  // Uniform in [0, bound), unbiased (Lemire's multiply-and-reject). REQUIRES: bound > 0.
  uint64_t uniform_u64(uint64_t bound);
  // Uniform in [low, high], both ends included. REQUIRES: low <= high.
  int64_t uniform_int(int64_t low, int64_t high);
  // Uniform in [low, high). REQUIRES: low < high.
  double uniform_real(double low, double high);
  // True with probability p (p outside [0, 1] is clamped).
  bool bernoulli(double probability);
  // Exponential with the given mean. REQUIRES: mean > 0.
  double exponential(double mean);
  // Exponential span, rounded to whole nanoseconds.
  Duration exponential_duration(Duration mean);
  // Normal (Gaussian) by Marsaglia's polar method.
  double normal(double mean, double stddev);
  // exp(N(mu, sigma)).
  double lognormal(double mu, double sigma);
  // Pareto type I: scale x_m > 0, shape alpha > 0; values >= x_m.
  double pareto(double scale, double shape);

 private:
  static constexpr uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
  // The polar method yields two normals per round; the second waits here.
  double spare_normal_ = 0.0;
  bool has_spare_normal_ = false;
};

// Zipf over ranks 1..n with P(k) proportional to 1 / k^exponent, by rejection-inversion
// (Hoermann and Derflinger, 1996): O(1) set-up and O(1) expected draws, so n may be 10^8 or more.
// REQUIRES: n >= 1, exponent > 0 (exponent == 1 is allowed).
class ZipfDistribution {
 public:
  ZipfDistribution(uint64_t n, double exponent);
  uint64_t sample(Random& random) const;  // in [1, n]
  uint64_t n() const { return n_; }
  double exponent() const { return exponent_; }

 private:
  double h(double x) const;          // integral of the hat function
  double h_inverse(double x) const;  // its inverse
  uint64_t n_;
  double exponent_;
  double h_integral_x1_;
  double h_integral_n_;
  double s_;
};

}  // namespace dynasim::sim
