#pragma once
// Deterministic random numbers that are identical on every platform and
// compiler: std::*_distribution is implementation-defined, so we never use it
// where results must reproduce (genomes, data order, initialisation).
#include <cmath>
#include <cstdint>
#include <string_view>

namespace livs {

// SplitMix64 finaliser: a good 64-bit mixer, used to derive seeds.
constexpr uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A child seed from a parent seed and a tag: derive_seed(run_seed, "init"),
// derive_seed(derive_seed(run_seed, generation), candidate), ...
constexpr uint64_t derive_seed(uint64_t parent, uint64_t tag) {
  return mix64(parent ^ mix64(tag + 0x632be59bd9b4e019ULL));
}
constexpr uint64_t derive_seed(uint64_t parent, std::string_view tag) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a of the tag
  for (char c : tag) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return derive_seed(parent, h);
}

// xoshiro256** seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) {
    uint64_t x = seed;
    for (auto& s : state_) {
      x += 0x9e3779b97f4a7c15ULL;
      s = mix64(x);
    }
  }

  uint64_t next() {
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
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform integer in [lo, hi] (inclusive), unbiased (Lemire's method).
  int64_t integer(int64_t lo, int64_t hi) {
    const uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
    if (range == 0) return static_cast<int64_t>(next());  // full 64-bit range
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * range;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < range) {
      const uint64_t threshold = (0 - range) % range;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * range;
        low = static_cast<uint64_t>(m);
      }
    }
    return lo + static_cast<int64_t>(m >> 64);
  }

  bool bernoulli(double p) { return uniform() < p; }

  // Standard normal by Box-Muller (no cached second value, so the stream
  // position depends only on the number of calls): the two uniforms a normal
  // draws, then the transform, split so that a caller may draw the uniforms in
  // stream order and transform them in parallel with the same bits.
  struct NormalUniforms {
    double u1, u2;
  };
  NormalUniforms normal_uniforms() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    return {u1, uniform()};
  }
  static double box_muller(NormalUniforms u) {
    return std::sqrt(-2.0 * std::log(u.u1)) * std::cos(6.283185307179586 * u.u2);
  }
  double normal() { return box_muller(normal_uniforms()); }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

 private:
  static constexpr uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace livs
