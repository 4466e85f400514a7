// Kernel lab (bench/kernels.sh, `bench/run.sh kernels`): every CUDA kernel family of kernels/cuda at
// GPT-2 124M training shapes (B*T = 8*1024 rows, C 768, 12 heads, vocab 50257, LoRA r 16 on the
// paper targets), each first VALIDATED against the CPU kernel of the same op (kernels/cpu, the
// oracle) with a stated tolerance, then TIMED: warm-up launches, then --reps launches each between
// two cudaEvents on one stream; the median (and the minimum) is reported. One JSON line per kernel
// on stdout ({"bench":"kernels","metric","value","unit","peer","peer_value","ratio","config",...}):
// the value is the achieved GB/s (memory-bound ops: bytes read + written once, the minimum traffic)
// or TFLOP/s (GEMM-like ops: 2mnk per product as executed), the "peer" is the device's datasheet
// peak from bench/device_peaks.h and ratio = the fraction of it (null when the device is unknown).
// GEMMs run as the CUDA backend runs them, CUBLAS_PEDANTIC_MATH (fp32, no TF32), so TFLOP/s are
// compared with the fp32 non-tensor peak. Human-readable details (every comparison) go to stderr.
//
// Without a usable device it prints one line {"bench":"kernels","skipped":"no CUDA device: <why>"}
// and exits 0. A failed validation prints "check":"FAIL" in that kernel's line and the program
// exits 1 after the last kernel (timing figures of a wrong kernel mean nothing); a CUDA error
// exits 1 at once with the failing call.
//   bench_kernels [--batch 8] [--seq 1024] [--reps 20] [--warmup 3] [--check-rows 2048]
//                 [--only name,prefix,...] [--list] [--peaks "DEVICE NAME"]
// --check-rows: rows of the row-independent ops (GEMMs, LM head) the CPU recomputes (the GPU still
// runs all rows); --peaks prints the peak-table entry for a device name and exits (no CUDA call).
// Built only with the CUDA backend (bench/CMakeLists.txt); run on an H200 (docs/results.md).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/device_peaks.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/lm_head_ce.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/adam.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gelu.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/lm_head_ce.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/skinny_gemm.h"
#include "runtime/devices.h"
#include "runtime/rng.h"

namespace {

using namespace mira;

// ------------------------------------------------------------------------------------------------
// Errors: any failing CUDA / cuBLAS call ends the program (exit 1) naming the call.

void cuda_ok(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess)
    throw std::runtime_error(std::string(call) + ": " + cudaGetErrorName(rc) + " (" + std::to_string((int)rc) +
                             "): " + cudaGetErrorString(rc));
}
void status_ok(const CudaStatus& st, const char* call) {
  if (st.cuda != cudaSuccess)
    throw std::runtime_error(std::string(call) + " [" + st.step + "]: " + cudaGetErrorName(st.cuda) + ": " +
                             cudaGetErrorString(st.cuda));
  if (st.cublas != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(call) + " [" + st.step + "]: " + cublasGetStatusString(st.cublas));
}
#define CU(call) cuda_ok((call), #call)
#define OK(call) status_ok((call), #call)

// Device array of n elements, freed on scope exit. The kernels run on the lab's stream, which is
// non-blocking: the legacy default stream of cudaMemcpy / cudaMemset is NOT ordered with it (a
// download could read before the kernel wrote, a zeroing land after the kernel's +=, a pageable
// upload's DMA still run when the kernel reads). So every transfer here waits for the whole device.
template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { CU(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(1, n) * sizeof(T))); }
  Dev(const std::vector<T>& h) : Dev(h.size()) { up(h); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  void up(const std::vector<T>& h) {
    CU(cudaDeviceSynchronize());  // no kernel still reads the old contents
    CU(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    CU(cudaDeviceSynchronize());  // the copy has landed before any kernel on the lab's stream
  }
  void zero() {
    CU(cudaDeviceSynchronize());
    CU(cudaMemset(p, 0, n * sizeof(T)));
    CU(cudaDeviceSynchronize());
  }
  std::vector<T> down() const {
    CU(cudaDeviceSynchronize());  // the kernels queued on the lab's stream have finished
    std::vector<T> h(n);
    CU(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

// Uniform floats in [lo, hi) from a counter-based stream (deterministic inputs).
std::vector<float> rnd(size_t n, uint64_t key, float lo, float hi) {
  std::vector<float> v(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < (int64_t)n; ++i) {
    const uint64_t z = rng_mix64(key * 0x9E3779B97F4A7C15ull + (uint64_t)i);
    v[(size_t)i] = lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
  }
  return v;
}
std::vector<int32_t> rnd_ids(size_t n, uint64_t key, int32_t below) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (int32_t)(rng_mix64(key * 0x9E3779B97F4A7C15ull + i) % (uint64_t)below);
  return v;
}

// ------------------------------------------------------------------------------------------------
// Validation: element i passes when |gpu - cpu| <= bound_i, with bound_i = atol + rtol * |cpu_i|
// (atol given as a fraction of max|cpu| where the error scales with the whole array), or a
// per-element bound computed from the inputs (GEMMs). "worst" = max |d| / bound over the elements.

struct Check {
  bool pass = true;
  double worst = 0;
  std::string tol;  // the tolerances used, for the JSON line
  void note(const std::string& t) { tol += (tol.empty() ? "" : "; ") + t; }
};

void compare(Check& ck, const std::string& what, const float* ref, const float* got, size_t n, double atol,
             double rtol, const std::vector<double>* bound = nullptr) {
  int64_t bad = 0, differ = 0, worst_i = -1;
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs((double)got[i] - (double)ref[i]);
    const double lim = bound ? (*bound)[i] : atol + rtol * std::fabs((double)ref[i]);
    if (!(d <= lim)) ++bad;  // NaN fails too
    if (got[i] != ref[i] || std::signbit(got[i]) != std::signbit(ref[i])) ++differ;
    const double r = lim > 0 ? d / lim : (d > 0 ? INFINITY : 0.0);
    if (!(r <= worst)) worst = r, worst_i = (int64_t)i;
  }
  std::fprintf(stderr, "  check %-34s %10zu elements, %9lld differ in some bit, %lld out of tolerance, worst |d|/tol %.3g",
               what.c_str(), n, (long long)differ, (long long)bad, worst);
  if (bad) std::fprintf(stderr, " (element %lld: cpu %.9g gpu %.9g)", (long long)worst_i, ref[worst_i], got[worst_i]);
  std::fprintf(stderr, "\n");
  ck.pass = ck.pass && bad == 0;
  ck.worst = std::max(ck.worst, worst);
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

// ------------------------------------------------------------------------------------------------

struct Options {
  int64_t B = 8, T = 1024, reps = 20, warmup = 3, check_rows = 2048;
  std::vector<std::string> only;
  bool list = false;
};

struct Lab {
  Options o;
  int64_t N = 0, C = 768, H = 12, V = 50257, R = 16;
  int64_t P_lora = 0, N_params = 0;
  cudaStream_t s = nullptr;
  cublasHandle_t h = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  std::string device, config;
  const DevicePeak* peak = nullptr;
  int failures = 0;
};

struct Timing {
  double med_ms = 0, min_ms = 0;
};

// Warm-up, then reps launches each bracketed by events on the lab's stream; median and minimum.
Timing time_it(Lab& L, const std::function<void()>& launch) {
  for (int64_t w = 0; w < L.o.warmup; ++w) launch();
  CU(cudaStreamSynchronize(L.s));
  std::vector<float> ms;
  for (int64_t r = 0; r < L.o.reps; ++r) {
    CU(cudaEventRecord(L.e0, L.s));
    launch();
    CU(cudaEventRecord(L.e1, L.s));
    CU(cudaEventSynchronize(L.e1));
    float t = 0;
    CU(cudaEventElapsedTime(&t, L.e0, L.e1));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  Timing tm;
  tm.med_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  tm.min_ms = ms[0];
  return tm;
}

std::string num(double v, const char* fmt = "%.6g") {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

// One JSON line. flops > 0: TFLOP/s against the fp32 peak; else GB/s against the HBM peak.
// tensor: the kernel's products run on tensor cores (bf16 operands): TFLOP/s against the bf16 dense peak.
void emit(Lab& L, const std::string& kernel, const std::string& shape, const Timing& tm, double bytes, double flops,
          const Check& ck, bool tensor = false) {
  const double s = tm.med_ms * 1e-3;
  const double gbps = bytes / s / 1e9, tflops = flops > 0 ? flops / s / 1e12 : NAN;
  const bool fl = flops > 0;
  const double value = fl ? tflops : gbps;
  std::string peer = "null", peer_value = "null", ratio = "null";
  if (L.peak) {
    const double pv = !fl ? L.peak->hbm_GBps : tensor ? L.peak->bf16_dense_TFLOPs : L.peak->fp32_TFLOPs;
    peer = std::string("\"") + L.peak->key +
           (!fl ? " HBM peak" : tensor ? " bf16 dense tensor peak" : " fp32 non-tensor peak") + "\"";
    peer_value = num(pv);
    ratio = num(value / pv, "%.4f");
  }
  std::printf("{\"bench\":\"kernels\",\"kernel\":\"%s\",\"metric\":\"%s\",\"value\":%s,\"unit\":\"%s\",\"peer\":%s,"
              "\"peer_value\":%s,\"ratio\":%s,\"ms\":%s,\"ms_min\":%s,\"reps\":%lld,\"GBps\":%s,\"TFLOPs\":%s,"
              "\"bytes\":%.0f,\"flops\":%.0f,\"check\":\"%s\",\"check_worst\":%s,\"tol\":\"%s\",\"device\":\"%s\","
              "\"config\":\"%s %s\"}\n",
              kernel.c_str(), fl ? "achieved_TFLOPs" : "achieved_GBps", num(value).c_str(), fl ? "TFLOP/s" : "GB/s",
              peer.c_str(), peer_value.c_str(), ratio.c_str(), num(tm.med_ms).c_str(), num(tm.min_ms).c_str(),
              (long long)L.o.reps, num(gbps).c_str(), num(tflops).c_str(), bytes, flops, ck.pass ? "pass" : "FAIL",
              num(ck.worst, "%.3g").c_str(), bench_json_escape(ck.tol).c_str(), bench_json_escape(L.device).c_str(),
              bench_json_escape(L.config).c_str(), shape.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "%-22s %9.4f ms (min %.4f)  %9.1f GB/s  %s TFLOP/s  check %s\n", kernel.c_str(), tm.med_ms,
               tm.min_ms, gbps, fl ? num(tflops, "%.2f").c_str() : "-", ck.pass ? "pass" : "FAIL");
  if (!ck.pass) ++L.failures;
}

bool selected(const Lab& L, const std::string& name) {
  if (L.o.only.empty()) return true;
  for (const auto& p : L.o.only)
    if (name.compare(0, p.size(), p) == 0) return true;
  return false;
}

// Whether any kernel of a family (names starting with `group`) is selected.
bool group_selected(const Lab& L, const std::string& group) {
  if (L.o.only.empty()) return true;
  for (const auto& p : L.o.only)
    if (group.compare(0, p.size(), p) == 0 || p.compare(0, group.size(), group) == 0) return true;
  return false;
}

// ------------------------------------------------------------------------------------------------
// GEMM: row-major C (m, n) = alpha op(A) op(B) + beta C as the backend's linear layers call it.
// HF Conv1D weights are (in, out): forward y = x W (m = rows, n = out, k = in); input gradient
// dx = dy W^T (trans_b); LoRA A (r, in): t = x A^T (trans_b, n = r); LoRA B (out, r): y += t B^T.
// Check: the first --check-rows rows against cpu_gemm with the per-element bound
// 2 (k + 2) u (|alpha| sum_k |a||b| + |beta||c|), u = 2^-24: both sides are within (k + 2) u of the
// exact value by the standard dot-product error bound, whatever their summation order.

struct GemmCase {
  const char* name;
  int64_t n, k;
  bool trans_b;
  float beta;
  bool bandwidth;  // thin products: report GB/s (memory-bound) instead of TFLOP/s
};

void bench_gemm(Lab& L, const GemmCase& g) {
  const int64_t m = L.N, n = g.n, k = g.k, ldb = g.trans_b ? k : n;
  const std::vector<float> ha = rnd((size_t)(m * k), 11, -1, 1), hb = rnd((size_t)(k * n), 12, -0.1f, 0.1f),
                           hc = rnd((size_t)(m * n), 13, -1, 1);
  Dev<float> a(ha), b(hb), c(hc);
  CU(cudaStreamSynchronize(L.s));
  OK(cuda_gemm(L.h, false, g.trans_b, m, n, k, 1.0f, a.p, k, b.p, ldb, g.beta, c.p, n));
  const std::vector<float> got = c.down();
  const int64_t rows = std::min(m, L.o.check_rows);
  std::vector<float> ref(hc.begin(), hc.begin() + rows * n), sabs((size_t)(rows * n), 0.0f);
  cpu_gemm<float>(false, g.trans_b, rows, n, k, 1.0f, ha.data(), k, hb.data(), ldb, g.beta, ref.data(), n);
  std::vector<float> aa(ha.begin(), ha.begin() + rows * k), ba(hb);
  for (auto& x : aa) x = std::fabs(x);
  for (auto& x : ba) x = std::fabs(x);
  cpu_gemm<float>(false, g.trans_b, rows, n, k, 1.0f, aa.data(), k, ba.data(), ldb, 0.0f, sabs.data(), n);
  std::vector<double> bound((size_t)(rows * n));
  const double u = std::ldexp(1.0, -24);
  for (size_t i = 0; i < bound.size(); ++i)
    bound[i] = 2.0 * (double)(k + 2) * u * ((double)sabs[i] * 1.0001 + std::fabs(g.beta) * std::fabs(hc[i]));
  Check ck;
  ck.note("per element 2(k+2)u(sum|a||b|+|beta||c|), first " + std::to_string(rows) + " rows");
  compare(ck, std::string(g.name) + " C", ref.data(), got.data(), ref.size(), 0, 0, &bound);
  const Timing tm = time_it(L, [&] { OK(cuda_gemm(L.h, false, g.trans_b, m, n, k, 1.0f, a.p, k, b.p, ldb, g.beta, c.p, n)); });
  const double bytes = 4.0 * (double)(m * k + k * n + m * n + (g.beta != 0.0f ? m * n : 0));
  emit(L, g.name, "m" + std::to_string(m) + " n" + std::to_string(n) + " k" + std::to_string(k) + (g.trans_b ? " B^T" : "") +
                      (g.beta != 0.0f ? " beta1" : ""),
       tm, bytes, g.bandwidth ? 0.0 : 2.0 * (double)m * (double)n * (double)k, ck);
}

// ------------------------------------------------------------------------------------------------
// LayerNorm (N, C). Row sums of C = 768 terms: the GPU's butterfly order and the CPU's sequential
// order differ by at most ~C u relative in mean and variance (4.6e-5 worst case, ~1e-6 typical),
// so y, dx get rtol 1e-4 plus an absolute floor of 1e-4 x max|ref| for values near zero. dw, db
// (full fine-tuning) are column sums over N = 8192 rows: per-column bound 2 (N + 2) u sum|terms|.

void bench_layernorm(Lab& L) {
  const int64_t n = L.N, c = L.C;
  const std::vector<float> hx = rnd((size_t)(n * c), 21, -2, 2), hw = rnd((size_t)c, 22, 0.5f, 1.5f),
                           hb = rnd((size_t)c, 23, -0.5f, 0.5f), hdy = rnd((size_t)(n * c), 24, -1, 1);
  Dev<float> x(hx), w(hw), b(hb), y((size_t)(n * c)), mean((size_t)n), rstd((size_t)n), dy(hdy), dx((size_t)(n * c));
  std::vector<float> ry((size_t)(n * c)), rmean((size_t)n), rrstd((size_t)n);
  cpu_layernorm_forward<float>(ry.data(), rmean.data(), rrstd.data(), hx.data(), hw.data(), hb.data(), n, c, 1e-5);
  if (selected(L, "layernorm_fwd")) {
    OK(cuda_layernorm_forward(L.s, y.p, mean.p, rstd.p, x.p, w.p, b.p, n, c, 1e-5));
    Check ck;
    ck.note("mean,rstd,y: |d| <= 1e-4 max|ref| + 1e-4 |ref| (768-term row sums in another order)");
    compare(ck, "layernorm mean", rmean.data(), mean.down().data(), (size_t)n, 1e-4 * max_abs(rmean), 1e-4);
    compare(ck, "layernorm rstd", rrstd.data(), rstd.down().data(), (size_t)n, 0, 1e-4);
    compare(ck, "layernorm y", ry.data(), y.down().data(), ry.size(), 1e-4 * max_abs(ry), 1e-4);
    const Timing tm = time_it(L, [&] { OK(cuda_layernorm_forward(L.s, y.p, mean.p, rstd.p, x.p, w.p, b.p, n, c, 1e-5)); });
    // x read, y written, w b read, mean rstd written (x is read three times from L1/L2, counted once).
    emit(L, "layernorm_fwd", "N" + std::to_string(n) + " C" + std::to_string(c), tm,
         4.0 * (double)(2 * n * c + 2 * c + 2 * n), 0, ck);
  }
  // bf16 activations: y stored in bf16 (rounded fp32 values): against the CPU's y rounded, one bf16
  // ulp (2^-8 relative) allowed where the two fp32 values straddle a rounding midpoint.
  if (selected(L, "layernorm_fwd_bf16")) {
    Dev<__nv_bfloat16> y16((size_t)(n * c));
    OK(cuda_layernorm_forward(L.s, y16.p, mean.p, rstd.p, x.p, w.p, b.p, n, c, 1e-5));
    const std::vector<__nv_bfloat16> got16 = y16.down();
    std::vector<float> got(got16.size()), ref(ry.size());
    for (size_t i = 0; i < got.size(); ++i)
      got[i] = __bfloat162float(got16[i]), ref[i] = __bfloat162float(__float2bfloat16_rn(ry[i]));
    Check ck;
    ck.note("y: |d| <= 1e-4 max|ref| + 2^-7 |ref| (one bf16 ulp where the fp32 values straddle a midpoint)");
    compare(ck, "layernorm bf16 y", ref.data(), got.data(), ref.size(), 1e-4 * max_abs(ry), std::ldexp(1.0, -7));
    const Timing tm = time_it(L, [&] { OK(cuda_layernorm_forward(L.s, y16.p, mean.p, rstd.p, x.p, w.p, b.p, n, c, 1e-5)); });
    emit(L, "layernorm_fwd_bf16", "N" + std::to_string(n) + " C" + std::to_string(c) + " bf16 y", tm,
         4.0 * (double)(n * c + 2 * c + 2 * n) + 2.0 * (double)(n * c), 0, ck);
  }
  // The GPU backward uses the CPU's mean/rstd too, so both start from the same statistics.
  Dev<float> cmean(rmean), crstd(rrstd);
  if (selected(L, "layernorm_bwd")) {
    std::vector<float> rdx((size_t)(n * c), 0.0f);
    cpu_layernorm_backward<float>(rdx.data(), nullptr, nullptr, hdy.data(), hx.data(), hw.data(), rmean.data(),
                                  rrstd.data(), n, c);
    dx.zero();
    OK(cuda_layernorm_backward(L.s, dx.p, nullptr, nullptr, dy.p, x.p, w.p, cmean.p, crstd.p, n, c, nullptr));
    Check ck;
    ck.note("dx: |d| <= 1e-4 max|ref| + 1e-4 |ref| (two 768-term row sums)");
    compare(ck, "layernorm dx", rdx.data(), dx.down().data(), rdx.size(), 1e-4 * max_abs(rdx), 1e-4);
    const Timing tm = time_it(L, [&] {
      OK(cuda_layernorm_backward(L.s, dx.p, nullptr, nullptr, dy.p, x.p, w.p, cmean.p, crstd.p, n, c, nullptr));
    });
    // dy, x read; dx read and written (+=); w, mean, rstd read.
    emit(L, "layernorm_bwd", "N" + std::to_string(n) + " C" + std::to_string(c) + " dx only (LoRA)", tm,
         4.0 * (double)(4 * n * c + c + 2 * n), 0, ck);
  }
  if (selected(L, "layernorm_bwd_params")) {
    std::vector<float> rdx((size_t)(n * c), 0.0f), rdw((size_t)c, 0.0f), rdb((size_t)c, 0.0f);
    cpu_layernorm_backward<float>(rdx.data(), rdw.data(), rdb.data(), hdy.data(), hx.data(), hw.data(), rmean.data(),
                                  rrstd.data(), n, c);
    Dev<float> dw((size_t)c), db((size_t)c), ws((size_t)std::max<int64_t>(1, cuda_layernorm_backward_scratch(n, c)));
    dx.zero();
    dw.zero();
    db.zero();
    OK(cuda_layernorm_backward(L.s, dx.p, dw.p, db.p, dy.p, x.p, w.p, cmean.p, crstd.p, n, c, ws.p));
    std::vector<double> bw((size_t)c, 0.0), bb((size_t)c, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < c; ++j) {
        const double xh = ((double)hx[(size_t)(i * c + j)] - rmean[(size_t)i]) * rrstd[(size_t)i];
        bw[(size_t)j] += std::fabs(hdy[(size_t)(i * c + j)] * xh);
        bb[(size_t)j] += std::fabs(hdy[(size_t)(i * c + j)]);
      }
    const double u = std::ldexp(1.0, -24);
    for (int64_t j = 0; j < c; ++j) bw[(size_t)j] *= 2.0 * (double)(n + 2) * u * 1.01, bb[(size_t)j] *= 2.0 * (double)(n + 2) * u;
    Check ck;
    ck.note("dx as layernorm_bwd; dw, db per column 2(N+2)u sum|terms|");
    compare(ck, "layernorm dx", rdx.data(), dx.down().data(), rdx.size(), 1e-4 * max_abs(rdx), 1e-4);
    compare(ck, "layernorm dw", rdw.data(), dw.down().data(), (size_t)c, 0, 0, &bw);
    compare(ck, "layernorm db", rdb.data(), db.down().data(), (size_t)c, 0, 0, &bb);
    const Timing tm = time_it(L, [&] {
      OK(cuda_layernorm_backward(L.s, dx.p, dw.p, db.p, dy.p, x.p, w.p, cmean.p, crstd.p, n, c, ws.p));
    });
    // As layernorm_bwd plus a second read of dy and x for the column partials.
    emit(L, "layernorm_bwd_params", "N" + std::to_string(n) + " C" + std::to_string(c) + " dx+dw+db (full FT)", tm,
         4.0 * (double)(6 * n * c + 3 * c + 2 * n), 0, ck);
  }
}

// ------------------------------------------------------------------------------------------------
// GELU (tanh) on the MLP activation (N, 4C): the CPU's tanh_f32 ported operation by operation,
// bitwise equal expected; 2 ulp (2.4e-7 relative) of slack as in tests/gpu until seen on a device.

void bench_gelu(Lab& L) {
  const int64_t n = L.N * 4 * L.C;
  const std::vector<float> hx = rnd((size_t)n, 31, -6, 6), hdy = rnd((size_t)n, 32, -1, 1);
  Dev<float> x(hx), y((size_t)n), dy(hdy), dx((size_t)n);
  const double ulp2 = 2.4e-7;
  if (selected(L, "gelu_fwd")) {
    std::vector<float> ry((size_t)n);
    cpu_gelu_forward<float>(ry.data(), hx.data(), n);
    OK(cuda_gelu_forward(L.s, y.p, x.p, n));
    Check ck;
    ck.note("2 ulp relative (bitwise expected)");
    compare(ck, "gelu y", ry.data(), y.down().data(), ry.size(), 1e-30, ulp2);
    const Timing tm = time_it(L, [&] { OK(cuda_gelu_forward(L.s, y.p, x.p, n)); });
    emit(L, "gelu_fwd", "n" + std::to_string(n), tm, 4.0 * 2 * (double)n, 0, ck);
  }
  if (selected(L, "gelu_bwd")) {
    std::vector<float> rdx((size_t)n);
    cpu_gelu_backward<float>(rdx.data(), hdy.data(), hx.data(), n);
    OK(cuda_gelu_backward(L.s, dx.p, dy.p, x.p, n));
    Check ck;
    ck.note("2 ulp relative (bitwise expected)");
    compare(ck, "gelu dx", rdx.data(), dx.down().data(), rdx.size(), 1e-30, ulp2);
    const Timing tm = time_it(L, [&] { OK(cuda_gelu_backward(L.s, dx.p, dy.p, x.p, n)); });
    emit(L, "gelu_bwd", "n" + std::to_string(n), tm, 4.0 * 3 * (double)n, 0, ck);
  }
  // bf16 activations (the model's mode with bf16 base weights): x and y stored in bf16, the fp32
  // arithmetic unchanged, so y is the CPU's fp32 GELU of the same values, rounded (bitwise expected).
  if (selected(L, "gelu_fwd_bf16")) {
    std::vector<__nv_bfloat16> hx16((size_t)n);
    std::vector<float> xr((size_t)n), ry((size_t)n);
    for (size_t i = 0; i < hx16.size(); ++i) hx16[i] = __float2bfloat16_rn(hx[i]), xr[i] = __bfloat162float(hx16[i]);
    cpu_gelu_forward<float>(ry.data(), xr.data(), n);
    for (auto& v : ry) v = __bfloat162float(__float2bfloat16_rn(v));
    Dev<__nv_bfloat16> x16(hx16), y16((size_t)n);
    OK(cuda_gelu_forward(L.s, y16.p, x16.p, n));
    const std::vector<__nv_bfloat16> got16 = y16.down();
    std::vector<float> got((size_t)n);
    for (size_t i = 0; i < got.size(); ++i) got[i] = __bfloat162float(got16[i]);
    Check ck;
    ck.note("bf16 y = the CPU's rounded fp32 GELU (bitwise expected)");
    compare(ck, "gelu bf16 y", ry.data(), got.data(), ry.size(), 1e-30, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_gelu_forward(L.s, y16.p, x16.p, n)); });
    emit(L, "gelu_fwd_bf16", "n" + std::to_string(n) + " bf16 in/out", tm, 2.0 * 2 * (double)n, 0, ck);
  }
}

// ------------------------------------------------------------------------------------------------
// Attention: the flash-style kernels (kernels/cuda/attention.cu; no (B, H, T, T) matrix), no dropout
// (the bench's training config has base dropout off). FLOPs: the causal half of each (T, T, hd)
// head product, B H T^2 hd each (the diagonal tiles' masked part is not counted): forward q k^T and
// P v = 2 of them; backward 7 (dK/dV kernel: q k^T, dO v^T, dV, dK; dQ kernel: q k^T, dO v^T, dQ;
// the recomputation included).
// Check against the CPU (which materialises P): out: sums of up to 1024 probabilities times
// |v| <= 1, |d| <= 3e-4 max|ref|; dqkv: chains of two such sums and the softmax backward,
// |d| <= 1e-3 max|ref| + 1e-3 |ref|. A wrong mask, tile edge, row or head offset gives errors of
// the size of the values.

void bench_attention(Lab& L) {
  const int64_t b = L.o.B, t = L.o.T, c = L.C, nh = L.H, hd = c / nh, natt = b * nh * t * t;
  const std::vector<float> hqkv = rnd((size_t)(b * t * 3 * c), 41, -1, 1), hdout = rnd((size_t)(b * t * c), 42, -1, 1);
  std::vector<float> rout((size_t)(b * t * c)), ratt((size_t)natt), rscr((size_t)natt), rdqkv(hqkv.size());
  const DropoutKey nodrop{};
  cpu_attention_forward<float>(rout.data(), ratt.data(), hqkv.data(), b, t, c, nh, rscr.data(), nodrop);
  Dev<float> qkv(hqkv), out(rout.size()), att((size_t)cuda_attention_saved_floats(b, t, c, nh)),
      scr((size_t)cuda_attention_scratch_floats(b, t, c, nh)), dout(hdout), dqkv(hqkv.size());
  const CudaDropout drop{};
  OK(cuda_attention_forward(L.s, out.p, att.p, qkv.p, b, t, c, nh, drop));
  const std::string shape = "B" + std::to_string(b) + " T" + std::to_string(t) + " C" + std::to_string(c) + " H" +
                            std::to_string(nh);
  const double fl = (double)b * nh * t * t * hd;  // one causal (T, T, hd) product over all heads: T^2/2 * hd * 2
  if (selected(L, "attention_fwd")) {
    Check ck;
    ck.note("out |d| <= 3e-4 max|ref|");
    compare(ck, "attention out", rout.data(), out.down().data(), rout.size(), 3e-4 * max_abs(rout), 0);
    const Timing tm = time_it(L, [&] { OK(cuda_attention_forward(L.s, out.p, att.p, qkv.p, b, t, c, nh, drop)); });
    // qkv read, out and the logsumexp written.
    emit(L, "attention_fwd", shape, tm, 4.0 * (double)(b * t * 3 * c + b * t * c + b * nh * t), 2 * fl, ck);
  }
  if (selected(L, "attention_bwd")) {
    cpu_attention_backward<float>(rdqkv.data(), rscr.data(), hdout.data(), hqkv.data(), ratt.data(), b, t, c, nh, nodrop);
    OK(cuda_attention_backward(L.s, dqkv.p, scr.p, dout.p, qkv.p, out.p, att.p, b, t, c, nh, drop));
    Check ck;
    ck.note("dqkv |d| <= 1e-3 max|ref| + 1e-3 |ref|");
    compare(ck, "attention dqkv", rdqkv.data(), dqkv.down().data(), rdqkv.size(), 1e-3 * max_abs(rdqkv), 1e-3);
    const Timing tm = time_it(L, [&] {
      OK(cuda_attention_backward(L.s, dqkv.p, scr.p, dout.p, qkv.p, out.p, att.p, b, t, c, nh, drop));
    });
    // dout, qkv and the saved out read (each tile once per block: counted once), dqkv written.
    emit(L, "attention_bwd", shape, tm, 4.0 * (double)(2 * b * t * c + 2 * b * t * 3 * c + 2 * b * nh * t), 7 * fl, ck);
  }
  // The bf16 operand mode (attention_bf16.cu, the model's mode with bf16 base weights) against the
  // CPU's bf16 oracle (the same roundings): the sides differ by fp32 summation order and the rare
  // bf16 rounding flip of a probability or score gradient (2^-8 of one term), so the bounds are
  // those of the fp32 check; an indexing or mask bug gives errors of the size of the values. FLOPs:
  // 3 products forward (S twice: the oracle rounds the normalised P, so the row max and sum come
  // first), 7 backward, on tensor cores.
  if (!group_selected(L, "attention_bf16")) return;
  Dev<__nv_bfloat16> ws16((size_t)cuda_attention_bf16_workspace(b, t, c, nh));
  Dev<float> att16((size_t)cuda_attention_saved_floats(b, t, c, nh, true));  // + the packed q, k, v
  cpu_attention_forward<float>(rout.data(), ratt.data(), hqkv.data(), b, t, c, nh, rscr.data(), nodrop, true);
  OK(cuda_attention_forward(L.s, out.p, att16.p, qkv.p, b, t, c, nh, drop, true));
  if (selected(L, "attention_bf16_fwd")) {
    Check ck;
    ck.note("out |d| <= 3e-4 max|ref| vs the CPU bf16 oracle");
    compare(ck, "attention bf16 out", rout.data(), out.down().data(), rout.size(), 3e-4 * max_abs(rout), 0);
    const Timing tm =
        time_it(L, [&] { OK(cuda_attention_forward(L.s, out.p, att16.p, qkv.p, b, t, c, nh, drop, true)); });
    // qkv read and packed to bf16 into the saved state (written, read once more), out and the logsumexp written.
    emit(L, "attention_bf16_fwd", shape, tm,
         4.0 * (double)(b * t * 3 * c + b * t * c + b * nh * t) + 2.0 * 2 * (double)(b * t * 3 * c), 3 * fl, ck, true);
  }
  if (selected(L, "attention_bf16_bwd")) {
    cpu_attention_backward<float>(rdqkv.data(), rscr.data(), hdout.data(), hqkv.data(), ratt.data(), b, t, c, nh, nodrop,
                                  true);
    OK(cuda_attention_backward(L.s, dqkv.p, scr.p, dout.p, qkv.p, out.p, att16.p, b, t, c, nh, drop, true, ws16.p));
    Check ck;
    ck.note("dqkv |d| <= 1e-3 max|ref| + 1e-3 |ref| vs the CPU bf16 oracle");
    compare(ck, "attention bf16 dqkv", rdqkv.data(), dqkv.down().data(), rdqkv.size(), 1e-3 * max_abs(rdqkv), 1e-3);
    const Timing tm = time_it(L, [&] {
      OK(cuda_attention_backward(L.s, dqkv.p, scr.p, dout.p, qkv.p, out.p, att16.p, b, t, c, nh, drop, true, ws16.p));
    });
    // dout read twice (row-dot, packing), out read, dqkv written, L and D; the packed q, k, v read, the
    // packed dout written and read (bf16).
    emit(L, "attention_bf16_bwd", shape, tm,
         4.0 * (double)(3 * b * t * c + b * t * 3 * c + 2 * b * nh * t) + 2.0 * (double)(b * t * 3 * c + 2 * b * t * c),
         7 * fl, ck, true);
  }
}

// ------------------------------------------------------------------------------------------------
// The LoRA products as the CUDA backend runs them (skinny_gemm.h) with the LoRA-input dropout (p 0.05)
// fused as a packed keep mask (SkinnyMask), next to the composition the model ran before session 5
// (cuda_dropout into a buffer, then the plain skinny kernel; for the input gradient the product into
// a buffer, then a dropout-accumulate pass), at r 16 and both LoRA input widths of the default
// targets (C: c_attn, attn.c_proj; 4C: mlp.c_proj). Check: fused == composed bitwise (the same
// kernel reads the same values in the same order); the composition is the CPU-checked path
// (tests/gpu). GB/s from the fused kernel's minimum traffic (the mask is 1/32 of its input).

void bench_lora(Lab& L) {
  if (!group_selected(L, "lora_")) return;
  const int64_t n = L.N, r = L.R;
  const float p = 0.05f, ks = 1.0f / (1.0f - p);
  const uint32_t thr = dropout_threshold(p);
  const uint64_t stream = 99, base = 1ull << 40;
  for (const int64_t in : {L.C, 4 * L.C}) {
    const std::string shape = "N" + std::to_string(n) + " in" + std::to_string(in) + " r" + std::to_string(r);
    const std::string tag = in == L.C ? "_c" : "_4c";
    Dev<float> x(rnd((size_t)(n * in), 61, -1, 1)), a(rnd((size_t)(r * in), 62, -0.1f, 0.1f)),
        du(rnd((size_t)(n * r), 63, -1, 1)), u((size_t)(n * r)), ga((size_t)(r * in)), dx((size_t)(n * in)),
        xd((size_t)(n * in)), ref_u((size_t)(n * r)), ref_ga((size_t)(r * in)), ref_dx((size_t)(n * in));
    Dev<uint32_t> bits((size_t)((n * in + 31) / 32));
    Dev<float> part((size_t)std::max<int64_t>(1, cuda_skinny_gemm_scratch(true, false, r, in, n)));
    OK(cuda_dropout_mask(L.s, bits.p, n * in, thr, stream, base));
    const SkinnyMask ma{bits.p, ks, SkinnyMask::A}, mb{bits.p, ks, SkinnyMask::B},
        macc{bits.p, ks, SkinnyMask::ACCUMULATE};
    auto fused_down = [&] { OK(cuda_skinny_gemm(L.s, false, true, n, r, in, 1, x.p, in, a.p, in, 0, u.p, r, nullptr, ma)); };
    auto composed_down = [&] {
      OK(cuda_dropout(L.s, xd.p, x.p, n * in, p, thr, stream, base, false));
      OK(cuda_skinny_gemm(L.s, false, true, n, r, in, 1, xd.p, in, a.p, in, 0, ref_u.p, r, nullptr));
    };
    auto fused_grad = [&] {
      OK(cuda_skinny_gemm(L.s, true, false, r, in, n, 1, du.p, r, x.p, in, 0, ga.p, in, part.p, mb));
    };
    auto composed_grad = [&] {
      OK(cuda_dropout(L.s, xd.p, x.p, n * in, p, thr, stream, base, false));
      OK(cuda_skinny_gemm(L.s, true, false, r, in, n, 1, du.p, r, xd.p, in, 0, ref_ga.p, in, part.p));
    };
    auto fused_input = [&] {
      OK(cuda_skinny_gemm(L.s, false, false, n, in, r, 1, du.p, r, a.p, in, 1, dx.p, in, nullptr, macc));
    };
    auto composed_input = [&] {  // xd as the product buffer
      OK(cuda_skinny_gemm(L.s, false, false, n, in, r, 1, du.p, r, a.p, in, 0, xd.p, in, nullptr));
      OK(cuda_dropout(L.s, ref_dx.p, xd.p, n * in, p, thr, stream, base, true));
    };
    struct Op {
      std::string name;
      std::function<void()> fused, composed;
      Dev<float>*got, *ref;
      double bytes;  // the fused kernel's minimum traffic
    };
    const double mask_b = (double)(n * in) / 8;
    const Op ops[] = {
        {"lora_down_masked" + tag, fused_down, composed_down, &u, &ref_u, 4.0 * (n * in + r * in + n * r) + mask_b},
        {"lora_down_grad_masked" + tag, fused_grad, composed_grad, &ga, &ref_ga,
         4.0 * (n * in + n * r + r * in) + mask_b},
        {"lora_input_grad_masked" + tag, fused_input, composed_input, &dx, &ref_dx,
         4.0 * (2 * n * in + n * r + r * in) + mask_b},
    };
    for (const Op& op : ops) {
      if (!selected(L, op.name)) continue;
      op.got->up(std::vector<float>((size_t)op.got->n, 0.5f));  // dx starts equal on both sides
      op.ref->up(std::vector<float>((size_t)op.ref->n, 0.5f));
      op.fused();
      op.composed();
      const std::vector<float> got = op.got->down(), ref = op.ref->down();
      Check ck;
      ck.note("fused == dropout then the plain skinny kernel, bitwise");
      compare(ck, op.name, ref.data(), got.data(), ref.size(), 0, 0);
      const Timing tf = time_it(L, op.fused), tc = time_it(L, op.composed);
      std::fprintf(stderr, "  %s: fused %.4f ms, dropout + plain kernel %.4f ms (%.2fx)\n", op.name.c_str(), tf.med_ms,
                   tc.med_ms, tc.med_ms / tf.med_ms);
      emit(L, op.name, shape + " p0.05 (composed: " + num(tc.med_ms, "%.4f") + " ms)", tf, op.bytes, 0, ck);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Embeddings and element-wise ops: the same float operations in the same order as the CPU
// (kernels/cuda/elementwise.h), so every one is checked for bitwise equality (tolerance 0).

void bench_elementwise(Lab& L) {
  bool any = false;
  for (const char* k : {"embedding", "bias_broadcast", "add", "scale", "dropout", "colsum"}) any = any || group_selected(L, k);
  if (!any) return;
  const int64_t b = L.o.B, t = L.o.T, n = L.N, c = L.C, v = L.V;
  const std::string nc = "N" + std::to_string(n) + " C" + std::to_string(c);
  const std::vector<int32_t> hids = rnd_ids((size_t)n, 51, (int32_t)v);
  const std::vector<float> hwte = rnd((size_t)(v * c), 52, -0.1f, 0.1f), hwpe = rnd((size_t)(1024 * c), 53, -0.1f, 0.1f);
  Dev<int32_t> ids(hids);
  if (selected(L, "embedding_fwd")) {
    Dev<float> wte(hwte), wpe(hwpe), out((size_t)(n * c));
    std::vector<float> ref((size_t)(n * c));
    cpu_embedding_forward<float>(ref.data(), hids.data(), hwte.data(), hwpe.data(), b, t, c);
    OK(cuda_embedding_forward(L.s, out.p, ids.p, wte.p, wpe.p, b, t, c));
    Check ck;
    ck.note("bitwise (tolerance 0)");
    compare(ck, "embedding out", ref.data(), out.down().data(), ref.size(), 0, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_embedding_forward(L.s, out.p, ids.p, wte.p, wpe.p, b, t, c)); });
    emit(L, "embedding_fwd", nc + " V" + std::to_string(v), tm, 4.0 * (double)(n + 3 * n * c), 0, ck);
  }
  if (selected(L, "embedding_bwd")) {  // full fine-tuning only (pretrain)
    const std::vector<float> hdout = rnd((size_t)(n * c), 54, -1, 1);
    Dev<float> dout(hdout), dwte((size_t)(v * c)), dwpe((size_t)(t * c));
    dwte.zero();
    dwpe.zero();
    std::vector<float> rwte((size_t)(v * c), 0.0f), rwpe((size_t)(t * c), 0.0f);
    cpu_embedding_backward<float>(rwte.data(), rwpe.data(), hdout.data(), hids.data(), b, t, c);
    OK(cuda_embedding_backward(L.s, dwte.p, dwpe.p, dout.p, ids.p, b, t, c));
    Check ck;
    ck.note("bitwise (tolerance 0): same additions in token order");
    compare(ck, "embedding dwte", rwte.data(), dwte.down().data(), rwte.size(), 0, 0);
    compare(ck, "embedding dwpe", rwpe.data(), dwpe.down().data(), rwpe.size(), 0, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_embedding_backward(L.s, dwte.p, dwpe.p, dout.p, ids.p, b, t, c)); });
    // dout read; the touched dwte rows and dwpe read and written: at least n*c + 2*2*n*c floats.
    emit(L, "embedding_bwd", nc + " (full FT scatter-add, one thread per column)", tm,
         4.0 * (double)(n + 5 * n * c), 0, ck);
  }
  const int64_t m3 = 3 * c;  // bias rows of c_attn: (N, 3C)
  const std::vector<float> hy = rnd((size_t)(n * m3), 55, -1, 1), hz = rnd((size_t)(n * m3), 56, -1, 1),
                           hbias = rnd((size_t)m3, 57, -1, 1);
  const std::string n3 = "N" + std::to_string(n) + " M" + std::to_string(m3);
  if (selected(L, "bias_broadcast")) {
    Dev<float> y((size_t)(n * m3)), bias(hbias);
    std::vector<float> ref((size_t)(n * m3));
    cpu_bias_broadcast<float>(ref.data(), hbias.data(), n, m3);
    OK(cuda_bias_broadcast(L.s, y.p, bias.p, n, m3));
    Check ck;
    ck.note("bitwise (tolerance 0)");
    compare(ck, "bias_broadcast y", ref.data(), y.down().data(), ref.size(), 0, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_bias_broadcast(L.s, y.p, bias.p, n, m3)); });
    emit(L, "bias_broadcast", n3, tm, 4.0 * (double)(n * m3 + m3), 0, ck);
  }
  if (selected(L, "add")) {
    Dev<float> a(hy), bb(hz), y((size_t)(n * m3));
    std::vector<float> ref((size_t)(n * m3));
    cpu_add<float>(ref.data(), hy.data(), hz.data(), n * m3);
    OK(cuda_add(L.s, y.p, a.p, bb.p, n * m3));
    Check ck;
    ck.note("bitwise (tolerance 0)");
    compare(ck, "add y", ref.data(), y.down().data(), ref.size(), 0, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_add(L.s, y.p, a.p, bb.p, n * m3)); });
    emit(L, "add", "n" + std::to_string(n * m3), tm, 4.0 * 3 * (double)(n * m3), 0, ck);
  }
  if (selected(L, "scale")) {
    Dev<float> y(hy);
    std::vector<float> ref(hy);
    cpu_scale<float>(ref.data(), n * m3, 0.5f);  // a power of two: repeated timing launches stay exact
    OK(cuda_scale(L.s, y.p, n * m3, 0.5f));
    Check ck;
    ck.note("bitwise (tolerance 0)");
    compare(ck, "scale y", ref.data(), y.down().data(), ref.size(), 0, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_scale(L.s, y.p, n * m3, 1.0f)); });
    emit(L, "scale", "n" + std::to_string(n * m3), tm, 4.0 * 2 * (double)(n * m3), 0, ck);
  }
  if (selected(L, "dropout")) {  // LoRA dropout p = 0.05 on the (N, C) LoRA input
    const float p = 0.05f;
    const uint64_t stream = rng_stream(7, RngPurpose::LORA_DROPOUT, 1, 2);
    Dev<float> x(hz), y((size_t)(n * c));
    std::vector<float> ref((size_t)(n * c));
    cpu_dropout<float>(ref.data(), hz.data(), n * c, p, stream, 5, false);
    OK(cuda_dropout(L.s, y.p, x.p, n * c, p, dropout_threshold(p), stream, 5, false));
    Check ck;
    ck.note("bitwise (tolerance 0): same counter-based mask");
    compare(ck, "dropout y", ref.data(), y.down().data(), ref.size(), 0, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_dropout(L.s, y.p, x.p, n * c, p, dropout_threshold(p), stream, 5, false)); });
    emit(L, "dropout", nc + " p0.05", tm, 4.0 * 2 * (double)(n * c), 0, ck);
  }
  if (selected(L, "colsum")) {  // bias gradients (full fine-tuning)
    Dev<float> dy(hy), db((size_t)m3);
    db.zero();
    std::vector<float> ref((size_t)m3, 0.0f);
    cpu_colsum_accumulate<float>(ref.data(), hy.data(), n, m3);
    OK(cuda_colsum_accumulate(L.s, db.p, dy.p, n, m3));
    Check ck;
    ck.note("bitwise (tolerance 0): same order of additions");
    compare(ck, "colsum db", ref.data(), db.down().data(), ref.size(), 0, 0);
    const Timing tm = time_it(L, [&] { OK(cuda_colsum_accumulate(L.s, db.p, dy.p, n, m3)); });
    emit(L, "colsum", n3, tm, 4.0 * (double)(n * m3 + 2 * m3), 0, ck);
  }
}

// ------------------------------------------------------------------------------------------------
// LM head + softmax + cross-entropy with the hidden-state gradient (the LoRA training path; no
// dwte), every row active. FLOPs: logits GEMM + dh GEMM = 4 N V C. The launcher only: the backend
// also lists the active rows on the host (one (N) download per step), not timed here.
// Check on the first --check-rows rows (rows are independent): logits are 768-term dot products
// (|error| <= 770 u sum|h||w| ~ 1e-3 worst case, 1e-6 typical), which the loss inherits additively:
// loss |d| <= 1e-3 + 1e-5 |ref|; dh |d| <= 1e-3 max|ref| + 1e-3 |ref|.

void bench_lm_head(Lab& L) {
  const int64_t n = L.N, c = L.C, v = L.V;
  const std::vector<float> hh = rnd((size_t)(n * c), 61, -1, 1), hwte = rnd((size_t)(v * c), 62, -0.1f, 0.1f);
  const std::vector<int32_t> htgt = rnd_ids((size_t)n, 63, (int32_t)v);
  std::vector<int32_t> hrows((size_t)n);
  for (int64_t i = 0; i < n; ++i) hrows[(size_t)i] = (int32_t)i;
  const std::vector<float> hwt((size_t)n, 1.0f / (float)n);  // mean over the batch, as the model weighs rows
  Dev<float> h(hh), wte(hwte), wt(hwt), loss((size_t)n), dh((size_t)(n * c)),
      scratch((size_t)cuda_lm_head_ce_scratch(c, v));
  Dev<int32_t> tgt(htgt), rows(hrows);
  OK(cuda_lm_head_ce(L.h, L.s, loss.p, dh.p, nullptr, h.p, wte.p, tgt.p, wt.p, rows.p, n, n, c, v, scratch.p));
  const int64_t r = std::min(n, L.o.check_rows);
  std::vector<float> rloss((size_t)r), rdh((size_t)(r * c)), cscr((size_t)cpu_lm_head_ce_scratch(c, v));
  cpu_lm_head_ce<float>(rloss.data(), rdh.data(), nullptr, hh.data(), hwte.data(), htgt.data(), hwt.data(), r, c, v,
                        cscr.data());
  Check ck;
  ck.note("first " + std::to_string(r) + " rows: loss |d| <= 1e-3 + 1e-5|ref|; dh |d| <= 1e-3 max|ref| + 1e-3|ref|");
  compare(ck, "lm_head_ce loss rows", rloss.data(), loss.down().data(), (size_t)r, 1e-3, 1e-5);
  compare(ck, "lm_head_ce dh", rdh.data(), dh.down().data(), rdh.size(), 1e-3 * max_abs(rdh), 1e-3);
  const Timing tm = time_it(L, [&] {
    OK(cuda_lm_head_ce(L.h, L.s, loss.p, dh.p, nullptr, h.p, wte.p, tgt.p, wt.p, rows.p, n, n, c, v, scratch.p));
  });
  // h read, wte read twice (logits and dh GEMMs) per chunk of CUDA_CE_CHUNK rows, dh and loss
  // written; the chunk's logits (CUDA_CE_CHUNK x V) written and read by the fused row kernel.
  const double chunks = std::ceil((double)n / (double)CUDA_CE_CHUNK);
  emit(L, "lm_head_ce", "N" + std::to_string(n) + " C" + std::to_string(c) + " V" + std::to_string(v) + " loss+dh",
       tm, 4.0 * (2 * (double)(n * c) + 2 * chunks * (double)(v * c) + 3 * (double)(n * v) + n), 4.0 * n * v * c, ck);
}

// ------------------------------------------------------------------------------------------------
// AdamW (4 reads, 3 writes per element) and the fixed-order sum of squares (clipping), at the
// LoRA adapter size of GPT-2 124M r16 on the paper targets (P) and at the full model size (N,
// pretraining). Both are bitwise equal to the CPU by construction: Adam with 2-ulp slack as in
// tests/gpu, the reduction with tolerance 0.

void bench_optim(Lab& L) {
  for (int which = 0; which < 2; ++which) {
    const int64_t n = which == 0 ? L.P_lora : L.N_params;
    const std::string tag = which == 0 ? "lora" : "full";
    if (selected(L, "adam_" + tag)) {
      const std::vector<float> hp = rnd((size_t)n, 71, -1, 1), hg = rnd((size_t)n, 72, -1, 1),
                               hm = rnd((size_t)n, 73, -0.1f, 0.1f), hv = rnd((size_t)n, 74, 0, 0.01f);
      Dev<float> p(hp), g(hg), m(hm), v(hv);
      std::vector<float> rp(hp), rm(hm), rv(hv);
      const double lr = 3e-4, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 1e-2, bc1 = 1 - 0.9 * 0.9, bc2 = 1 - 0.999 * 0.999;
      cpu_adam_step<float>(rp.data(), hg.data(), rm.data(), rv.data(), n, lr, b1, b2, eps, wd, true, bc1, bc2);
      OK(cuda_adam_step(L.s, p.p, g.p, m.p, v.p, n, lr, b1, b2, eps, wd, true, bc1, bc2));
      Check ck;
      ck.note("2 ulp relative (bitwise expected)");
      compare(ck, "adamw param", rp.data(), p.down().data(), rp.size(), 1e-30, 2.4e-7);
      compare(ck, "adamw m", rm.data(), m.down().data(), rm.size(), 1e-30, 2.4e-7);
      compare(ck, "adamw v", rv.data(), v.down().data(), rv.size(), 1e-30, 2.4e-7);
      const Timing tm = time_it(L, [&] { OK(cuda_adam_step(L.s, p.p, g.p, m.p, v.p, n, lr, b1, b2, eps, wd, true, bc1, bc2)); });
      emit(L, "adam_" + tag, "n" + std::to_string(n) + (which == 0 ? " (LoRA adapter)" : " (all GPT-2 weights)"), tm,
           4.0 * 7 * (double)n, 0, ck);
    }
    if (selected(L, "sum_squares_" + tag)) {
      const std::vector<float> hx = rnd((size_t)n, 75, -3, 5);
      Dev<float> x(hx);
      Dev<double> out(1), partials((size_t)cuda_reduce_partials(n));
      const double ref = cpu_sum_squares<float>(hx.data(), n);
      OK(cuda_sum(L.s, out.p, partials.p, x.p, n, true));
      const double got = out.down()[0];
      Check ck;
      ck.note("bitwise (tolerance 0): the CPU's block order in double");
      ck.pass = got == ref;
      ck.worst = got == ref ? 0.0 : INFINITY;
      std::fprintf(stderr, "  check %-34s cpu %.17g gpu %.17g (%s)\n", ("sum_squares_" + tag).c_str(), ref, got,
                   got == ref ? "equal" : "DIFFER");
      const Timing tm = time_it(L, [&] { OK(cuda_sum(L.s, out.p, partials.p, x.p, n, true)); });
      emit(L, "sum_squares_" + tag, "n" + std::to_string(n), tm, 4.0 * (double)n + 16.0 * (double)partials.n, 0, ck);
    }
  }
}

// ------------------------------------------------------------------------------------------------

Options parse(int argc, char** argv, std::string* peaks_for, bool* peaks_only) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--batch") o.B = std::stoll(val());
    else if (a == "--seq") o.T = std::stoll(val());
    else if (a == "--reps") o.reps = std::stoll(val());
    else if (a == "--warmup") o.warmup = std::stoll(val());
    else if (a == "--check-rows") o.check_rows = std::stoll(val());
    else if (a == "--list") o.list = true;
    else if (a == "--peaks") *peaks_for = val(), *peaks_only = true;
    else if (a == "--only") {
      const std::string s = val();
      size_t p = 0;
      while (p <= s.size()) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        if (q > p) o.only.push_back(s.substr(p, q - p));
        p = q + 1;
      }
    } else {
      throw std::invalid_argument("unknown option " + a +
                                  " (allowed: --batch --seq --reps --warmup --check-rows --only --list --peaks)");
    }
  }
  if (o.B < 1 || o.T < 1 || o.T > 1024 || o.reps < 1 || o.warmup < 0 || o.check_rows < 1)
    throw std::invalid_argument("need --batch >= 1, 1 <= --seq <= 1024, --reps >= 1, --warmup >= 0, --check-rows >= 1");
  return o;
}

const GemmCase GEMMS[] = {
    // name                n      k     B^T    beta  GB/s
    {"gemm_c_attn_fwd", 3 * 768, 768, false, 0.0f, false},      // qkv = x W_attn
    {"gemm_attn_proj_fwd", 768, 768, false, 0.0f, false},       // attention output projection
    {"gemm_c_fc_fwd", 4 * 768, 768, false, 0.0f, false},        // MLP up
    {"gemm_mlp_proj_fwd", 768, 4 * 768, false, 0.0f, false},    // MLP down
    {"gemm_c_attn_bwd_dx", 768, 3 * 768, true, 0.0f, false},    // dx = dqkv W_attn^T
    {"gemm_mlp_proj_bwd_dx", 4 * 768, 768, true, 0.0f, false},  // dh = dy W_proj^T
    {"gemm_lora_a_fwd", 16, 768, true, 0.0f, true},             // t = x A^T, r = 16 (thin)
    {"gemm_lora_b_fwd", 3 * 768, 16, true, 1.0f, true},         // y += t B^T (k = r = 16)
};

const char* const KERNELS[] = {"gemm_c_attn_fwd", "gemm_attn_proj_fwd", "gemm_c_fc_fwd", "gemm_mlp_proj_fwd",
                               "gemm_c_attn_bwd_dx", "gemm_mlp_proj_bwd_dx", "gemm_lora_a_fwd", "gemm_lora_b_fwd",
                               "layernorm_fwd", "layernorm_fwd_bf16", "layernorm_bwd", "layernorm_bwd_params",
                               "gelu_fwd", "gelu_bwd", "gelu_fwd_bf16", "attention_fwd", "attention_bwd",
                               "attention_bf16_fwd", "attention_bf16_bwd", "lora_down_masked_c",
                               "lora_down_grad_masked_c", "lora_input_grad_masked_c", "lora_down_masked_4c",
                               "lora_down_grad_masked_4c", "lora_input_grad_masked_4c", "embedding_fwd",
                               "embedding_bwd", "bias_broadcast", "add", "scale", "dropout", "colsum", "lm_head_ce",
                               "adam_lora", "sum_squares_lora", "adam_full", "sum_squares_full"};

int run(int argc, char** argv) {
  std::string peaks_for;
  bool peaks_only = false;
  Lab L;
  L.o = parse(argc, argv, &peaks_for, &peaks_only);
  if (peaks_only) {
    std::printf("%s\n", device_peak_json(peaks_for).c_str());
    return 0;
  }
  if (L.o.list) {
    for (const char* k : KERNELS) std::printf("%s\n", k);
    return 0;
  }
  const DeviceReport rep = devices_query();
  if (rep.devices.empty()) {
    std::printf("{\"bench\":\"kernels\",\"skipped\":\"no CUDA device: %s\"}\n", bench_json_escape(rep.unavailable).c_str());
    return 0;
  }
  L.device = rep.devices[0].name;
  L.peak = device_peak_lookup(L.device);
  L.N = L.o.B * L.o.T;
  // GPT-2 124M: P = L r (C + 3C + C + C + 4C + C) = 12 * 16 * 11 * 768 (c_attn, attn.c_proj,
  // mlp.c_proj); all weights: wte + wpe + 12 blocks of 12 C^2 + 13 C + final LayerNorm.
  L.P_lora = 12 * L.R * 11 * L.C;
  L.N_params = L.V * L.C + 1024 * L.C + 12 * (12 * L.C * L.C + 13 * L.C) + 2 * L.C;
  L.config = "gpt2-124m-shape B" + std::to_string(L.o.B) + " T" + std::to_string(L.o.T) +
             " fp32 parity kernels (cuBLAS PEDANTIC, no TF32); median of " + std::to_string(L.o.reps) + " after " +
             std::to_string(L.o.warmup) + " warm-up;";
  CU(cudaSetDevice(0));
  CU(cudaStreamCreateWithFlags(&L.s, cudaStreamNonBlocking));
  if (cublasCreate(&L.h) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate failed");
  if (cublasSetStream(L.h, L.s) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasSetStream failed");
  if (cublasSetMathMode(L.h, CUBLAS_PEDANTIC_MATH) != CUBLAS_STATUS_SUCCESS)  // as the CUDA backend
    throw std::runtime_error("cublasSetMathMode failed");
  CU(cudaEventCreate(&L.e0));
  CU(cudaEventCreate(&L.e1));
  std::fprintf(stderr, "kernel lab on %s (%s), %d CPU threads for the reference; peak: %s\n", L.device.c_str(),
               devices_summary(rep).c_str(), omp_get_max_threads(), device_peak_json(L.device).c_str());
  for (const GemmCase& g : GEMMS)
    if (selected(L, g.name)) bench_gemm(L, g);
  if (group_selected(L, "layernorm")) bench_layernorm(L);
  if (group_selected(L, "gelu")) bench_gelu(L);
  if (group_selected(L, "attention")) bench_attention(L);
  bench_lora(L);
  bench_elementwise(L);
  if (selected(L, "lm_head_ce")) bench_lm_head(L);
  bench_optim(L);
  cublasDestroy(L.h);
  cudaStreamDestroy(L.s);
  if (L.failures) {
    std::fprintf(stderr, "bench_kernels: %d kernel(s) failed validation (\"check\":\"FAIL\"): their timings mean nothing\n",
                 L.failures);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
}
