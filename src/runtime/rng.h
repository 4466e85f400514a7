// Counter-based random numbers: every stream is keyed by (seed, purpose, a, b) - typically
// a = client id and b = round or epoch - and element i of a stream is a pure function of the key and
// i. So results never depend on the rank count, the thread count or the order of work, a GPU kernel
// can draw element i directly (functions are host+device), and resuming needs no RNG state beyond
// the counters the caller keeps (DESIGN.md, Determinism).
#pragma once
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#if defined(__CUDACC__)
#define MIRA_HD __host__ __device__
#else
#define MIRA_HD
#endif

namespace mira {

// Purposes separate streams that share (seed, a, b). Values are part of the reproducibility
// contract: never renumber, only append.
enum class RngPurpose : uint64_t {
  MODEL_INIT = 1,       // preset base-model weights (a = tensor index)
  LORA_INIT = 2,        // LoRA A initialisation (a = layer, b = module); same for every client
  LORA_DROPOUT = 3,     // LoRA dropout masks (a = client, b = step)
  BASE_DROPOUT = 4,     // base-model dropout masks (a = client, b = step)
  DATA_SYNTH = 5,       // synthetic dataset generation (a = task/client, b = example)
  DATA_SPLIT = 6,       // train/test split and subsampling (a = client)
  DATA_SHUFFLE = 7,     // per-epoch shuffling (a = client, b = epoch)
  CLIENT_SAMPLING = 8,  // S(t) (a = round)
  GRAPH = 9,            // random graph weights
  GENERATION = 10,      // sampling during text generation (a = client, b = example)
  DATA_ASSIGN = 11,     // assignment of dataset examples to clients (a = category)
  BACKEND_CHECK = 12,   // inputs of the start-up backend self-check (backend/backend_check.h)
};

// SplitMix64 finaliser: a bijective 64-bit mixer with good avalanche.
MIRA_HD inline uint64_t rng_mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The key of one stream.
MIRA_HD inline uint64_t rng_stream(uint64_t seed, RngPurpose purpose, uint64_t a = 0, uint64_t b = 0) {
  uint64_t h = rng_mix64(seed);
  h = rng_mix64(h ^ static_cast<uint64_t>(purpose));
  h = rng_mix64(h ^ a);
  return rng_mix64(h ^ (b * 0xD1B54A32D192ED03ull));
}

// Element `index` of stream `stream`: 64 random bits.
MIRA_HD inline uint64_t rng_at(uint64_t stream, uint64_t index) { return rng_mix64(stream ^ rng_mix64(index)); }

// Uniform in [0, 1) with 24 random bits (exactly representable as float).
MIRA_HD inline float rng_uniform_float(uint64_t bits) { return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f); }
// Uniform in [0, 1) with 53 random bits.
MIRA_HD inline double rng_uniform_double(uint64_t bits) {
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// A sequential view of one stream: draws element counter, counter+1, ...
class Rng {
 public:
  Rng(uint64_t seed, RngPurpose purpose, uint64_t a = 0, uint64_t b = 0)
      : stream_(rng_stream(seed, purpose, a, b)) {}

  uint64_t next_u64() { return rng_at(stream_, counter_++); }
  float uniform() { return rng_uniform_float(next_u64()); }
  double uniform_double() { return rng_uniform_double(next_u64()); }
  // Uniform integer in [0, n), unbiased (rejection on the 64-bit range).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do { x = next_u64(); } while (x >= limit);
    return x % n;
  }
  // Standard normal (Box-Muller on two draws; one value per call, the second is discarded so that
  // each value depends only on the counter).
  double normal() {
    double u1 = uniform_double(), u2 = uniform_double();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  template <typename T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
  uint64_t counter() const { return counter_; }
  void set_counter(uint64_t c) { counter_ = c; }

 private:
  uint64_t stream_;
  uint64_t counter_ = 0;
};

}  // namespace mira
