// Element-wise kernels (see elementwise.h).
// fp-contract is off: the AVX-512 clone below enables FMA, and GCC would then fuse y + x * scale in
// some loops (the scalar tail) but not others, so the same element would round differently
// depending on where it falls; the CUDA kernels (and the portable build) round the product first.
#pragma GCC optimize("fp-contract=off")
#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace mira {

template <typename T>
void cpu_embedding_forward(T* out, const int32_t* ids, const T* wte, const T* wpe, int64_t b, int64_t t, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < b * t; ++i) {
    const T* e = wte + (int64_t)ids[i] * c;
    const T* p = wpe + (i % t) * c;
    T* o = out + i * c;
    for (int64_t j = 0; j < c; ++j) o[j] = e[j] + p[j];
  }
}

namespace {
constexpr int64_t COL_BLOCK = 64;  // columns per thread work item: one cache line of doubles x 8
}

template <typename T>
void cpu_embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* ids, int64_t b, int64_t t, int64_t c) {
  const int64_t nblk = (c + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const int64_t j0 = blk * COL_BLOCK, j1 = std::min(c, j0 + COL_BLOCK);
    for (int64_t i = 0; i < b * t; ++i) {
      const T* d = dout + i * c;
      T* e = dwte + (int64_t)ids[i] * c;
      T* p = dwpe + (i % t) * c;
      for (int64_t j = j0; j < j1; ++j) {
        e[j] += d[j];
        p[j] += d[j];
      }
    }
  }
}

template <typename T>
void cpu_colsum_accumulate(T* db, const T* dy, int64_t n, int64_t m) {
  const int64_t nblk = (m + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const int64_t j0 = blk * COL_BLOCK, j1 = std::min(m, j0 + COL_BLOCK);
    T acc[COL_BLOCK] = {};
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dy[i * m + j];
    for (int64_t j = j0; j < j1; ++j) db[j] += acc[j - j0];
  }
}

template <typename T>
void cpu_bias_broadcast(T* y, const T* bias, int64_t n, int64_t m) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) y[i * m + j] = bias[j];
}

template <typename T>
void cpu_add(T* y, const T* a, const T* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <typename T>
void cpu_scale(T* y, int64_t n, T s) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

namespace {

// Whole draws [g0, g1) (every lane inside the range): y[4g - base + lane] (+)= kept x * keep_scale.
// In blocks of 16 draws: the 16 RNG values first (pure 64-bit arithmetic, vectorisable), then the
// 64 elements branch-free; the same float operations as the edge loop in cpu_dropout.
template <typename T, bool ACC>
__attribute__((always_inline)) inline void dropout_draws(T* y, const T* x, uint64_t g0, uint64_t g1, uint64_t base,
                                                         uint64_t stream, uint32_t threshold, T keep_scale) {
  constexpr int D = 16;
  uint64_t g = g0;
  for (; g + D <= g1; g += D) {
    uint16_t r[4 * D];  // lane l of draw d: bits 16 l.. of rng_at(stream, g + d)
    for (int d = 0; d < D; ++d) {
      const uint64_t bits = rng_at(stream, g + (uint64_t)d);
      for (int l = 0; l < 4; ++l) r[4 * d + l] = (uint16_t)(bits >> (16 * l));
    }
    T* yy = y + (int64_t)(4 * g - base);
    const T* xx = x + (int64_t)(4 * g - base);
    for (int e = 0; e < 4 * D; ++e) {
      const T val = (uint32_t)r[e] >= threshold ? xx[e] * keep_scale : T(0);
      yy[e] = ACC ? yy[e] + val : val;
    }
  }
  for (; g < g1; ++g) {
    const uint64_t bits = rng_at(stream, g);
    const int64_t i0 = (int64_t)(4 * g - base);
    for (int lane = 0; lane < 4; ++lane) {
      const bool keep = ((bits >> (16 * lane)) & 0xFFFFu) >= threshold;  // = dropout_keep(stream, 4g + lane, ...)
      const T val = keep ? x[i0 + lane] * keep_scale : T(0);
      y[i0 + lane] = ACC ? y[i0 + lane] + val : val;
    }
  }
}

// The float version compiled for AVX-512 (the element loop runs 16 floats per instruction; GCC 12
// leaves the RNG loop scalar even with AVX512DQ),
// chosen at run time; other CPUs run the baseline build of the same loop.
template <bool ACC>
__attribute__((target("avx512f,avx512dq"))) void dropout_draws_avx512(float* y, const float* x, uint64_t g0, uint64_t g1,
                                                                     uint64_t base, uint64_t stream, uint32_t threshold,
                                                                     float keep_scale) {
  dropout_draws<float, ACC>(y, x, g0, g1, base, stream, threshold, keep_scale);
}

template <typename T, bool ACC>
void dropout_interior(T* y, const T* x, uint64_t g0, uint64_t g1, uint64_t base, uint64_t stream, uint32_t threshold,
                      T keep_scale) {
  if constexpr (std::is_same_v<T, float>) {
    static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    if (avx512) return dropout_draws_avx512<ACC>(y, x, g0, g1, base, stream, threshold, keep_scale);
  }
  dropout_draws<T, ACC>(y, x, g0, g1, base, stream, threshold, keep_scale);
}

}  // namespace

template <typename T>
void cpu_dropout(T* y, const T* x, int64_t n, float p, uint64_t stream, uint64_t base, bool accumulate) {
  const T keep_scale = (T)1 / ((T)1 - (T)p);
  const uint32_t threshold = dropout_threshold(p);
  // One 64-bit draw serves 4 consecutive indices (16-bit lanes): the RNG was ~4% of a step at 1 draw
  // per element. Work is split by draw, so each element's value is independent of the thread count.
  const uint64_t end = base + (uint64_t)n;
  const uint64_t g0 = base >> 2, g1 = (end + 3) >> 2;
  // Draws whose 4 lanes all lie in [base, end): the branch-free loop; the (at most 2) others here.
  const uint64_t in0 = (base + 3) >> 2, in1 = std::max(in0, end >> 2);
  auto edge = [&](uint64_t g) {
    const uint64_t bits = rng_at(stream, g);
    for (uint64_t lane = 0; lane < 4; ++lane) {
      const uint64_t idx = 4 * g + lane;
      if (idx < base || idx >= end) continue;
      const int64_t i = (int64_t)(idx - base);
      const bool keep = ((bits >> (16 * lane)) & 0xFFFFu) >= threshold;
      const T val = keep ? x[i] * keep_scale : T(0);
      y[i] = accumulate ? y[i] + val : val;
    }
  };
  for (uint64_t g = g0; g < std::min(in0, g1); ++g) edge(g);
  for (uint64_t g = std::max(in1, in0); g < g1; ++g) edge(g);
  if (in1 <= in0) return;
  // Fixed chunks of draws (a function of n only) shared out among the threads.
  constexpr uint64_t CHUNK = 4096;
  const int64_t chunks = (int64_t)((in1 - in0 + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static)
  for (int64_t ci = 0; ci < chunks; ++ci) {
    const uint64_t a = in0 + (uint64_t)ci * CHUNK, b = std::min(in1, a + CHUNK);
    if (accumulate)
      dropout_interior<T, true>(y, x, a, b, base, stream, threshold, keep_scale);
    else
      dropout_interior<T, false>(y, x, a, b, base, stream, threshold, keep_scale);
  }
}

void cpu_dropout_mask(uint32_t* bits, int64_t n, float p, uint64_t stream, uint64_t base) {
  const uint32_t threshold = dropout_threshold(p);
  const int64_t words = (n + 31) / 32;
#pragma omp parallel for schedule(static)
  for (int64_t w = 0; w < words; ++w) {  // 8 draws per word (4 when base is not a multiple of 4: 9)
    uint32_t m = 0;
    uint64_t group = ~0ull, draw = 0;
    for (int64_t e = 32 * w; e < std::min(n, 32 * w + 32); ++e) {
      const uint64_t j = base + (uint64_t)e;
      if ((j >> 2) != group) group = j >> 2, draw = rng_at(stream, group);
      m |= (uint32_t)(((draw >> (16 * (j & 3))) & 0xFFFFu) >= threshold) << (e - 32 * w);
    }
    bits[w] = m;
  }
}

template <typename T>
void cpu_dropout_apply_mask(T* y, const T* x, const uint32_t* bits, int64_t n, float p, bool accumulate) {
  const T keep_scale = (T)1 / ((T)1 - (T)p);  // as cpu_dropout
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T val = (bits[i >> 5] >> (i & 31)) & 1u ? x[i] * keep_scale : T(0);
    y[i] = accumulate ? y[i] + val : val;
  }
}

template <typename T>
void cpu_adam_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                   double weight_decay, bool decoupled, double bc1, double bc2) {
  const T step_size = (T)(lr / bc1);
  const T bc2_sqrt = (T)std::sqrt(bc2);
  const T decay = (T)(1.0 - lr * weight_decay);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decoupled) {
      param[i] *= decay;
    } else if (weight_decay != 0.0) {
      g += (T)weight_decay * param[i];
    }
    m[i] += (g - m[i]) * (T)(1.0 - beta1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
    v[i] = v[i] * (T)beta2 + (T)(1.0 - beta2) * g * g;
    const T denom = std::sqrt(v[i]) / bc2_sqrt + (T)eps;
    param[i] -= step_size * m[i] / denom;
  }
}

#define MIRA_INSTANTIATE(T)                                                                                        \
  template void cpu_embedding_forward<T>(T*, const int32_t*, const T*, const T*, int64_t, int64_t, int64_t);      \
  template void cpu_bias_broadcast<T>(T*, const T*, int64_t, int64_t);                                            \
  template void cpu_embedding_backward<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t, int64_t);           \
  template void cpu_colsum_accumulate<T>(T*, const T*, int64_t, int64_t);                                         \
  template void cpu_add<T>(T*, const T*, const T*, int64_t);                                                      \
  template void cpu_scale<T>(T*, int64_t, T);                                                                     \
  template void cpu_dropout<T>(T*, const T*, int64_t, float, uint64_t, uint64_t, bool);                           \
  template void cpu_dropout_apply_mask<T>(T*, const T*, const uint32_t*, int64_t, float, bool);                   \
  template void cpu_adam_step<T>(T*, const T*, T*, T*, int64_t, double, double, double, double, double, bool, double, \
                                 double);
MIRA_INSTANTIATE(float)
MIRA_INSTANTIATE(double)
#undef MIRA_INSTANTIATE

}  // namespace mira
