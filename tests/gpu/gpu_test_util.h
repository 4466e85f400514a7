// Shared helpers for the GPU tests: whether a CUDA device is usable (else the test skips with the
// reason), the CUDA backend for it, twin buffers holding the same data on the CPU and the CUDA
// backend, and element-wise comparisons with a stated tolerance.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "runtime/devices.h"
#include "runtime/rng.h"

namespace mira_gpu_test {

// "" when a CUDA device is usable, else why not (the build has no CUDA backend, no driver, ...).
inline std::string cuda_unavailable_reason() {
#if defined(MIRA_CUDA_EMU)  // tests/emu: the CUDA backend on the CPU emulator is always "the device"
  return std::string();
#elif !defined(MIRA_HAVE_CUDA)
  return "this build has no CUDA backend (configure with -DMIRA_CUDA=ON on a machine with nvcc)";
#else
  const mira::DeviceReport r = mira::devices_query();
  return r.devices.empty() ? r.unavailable : std::string();
#endif
}

#define MIRA_REQUIRE_CUDA()                                                              \
  do {                                                                                   \
    const std::string mira_why_ = ::mira_gpu_test::cuda_unavailable_reason();           \
    if (!mira_why_.empty()) GTEST_SKIP() << "no CUDA device: " << mira_why_;            \
  } while (0)

// The CUDA backend on the device this (single) process would choose; only after MIRA_REQUIRE_CUDA.
inline std::unique_ptr<mira::Backend> make_cuda_backend() {
#if defined(MIRA_CUDA_EMU)  // tests/emu: backend_cuda.cpp linked against the emulator's CUDA shims
  return mira::backend_create_cuda(0);
#elif defined(MIRA_HAVE_CUDA)
  const mira::DeviceReport r = mira::devices_query();
  const mira::CudaDeviceChoice ch = mira::cuda_select_device((int)r.devices.size(), 0, 1);
  return mira::backend_create_cuda(ch.device);
#else
  return nullptr;
#endif
}

// Uniform values in [lo, hi) from a fixed stream (tests are deterministic).
inline std::vector<float> random_vec(int64_t n, uint64_t key, float lo = -1.0f, float hi = 1.0f) {
  mira::Rng r(12345, mira::RngPurpose::DATA_SYNTH, 900, key);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = lo + (hi - lo) * r.uniform();
  return v;
}

// The same float data on both backends.
struct Twin {
  mira::DFloat c, g;
  int64_t size() const { return c.size(); }
};
struct TwinI {
  mira::DInt c, g;
};

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    MIRA_REQUIRE_CUDA();
    cpu_ = mira::backend_create_cpu();
    gpu_ = make_cuda_backend();
  }
  Twin f32(const std::vector<float>& h) {
    Twin t{cpu_->alloc_f32((int64_t)h.size()), gpu_->alloc_f32((int64_t)h.size())};
    cpu_->upload(t.c, h.data());
    gpu_->upload(t.g, h.data());
    return t;
  }
  Twin zeros(int64_t n) { return Twin{cpu_->alloc_f32(n), gpu_->alloc_f32(n)}; }
  Twin empty() { return Twin{}; }
  TwinI i32(const std::vector<int32_t>& h) {
    TwinI t{cpu_->alloc_i32((int64_t)h.size()), gpu_->alloc_i32((int64_t)h.size())};
    cpu_->upload(t.c, h.data());
    gpu_->upload(t.g, h.data());
    return t;
  }
  std::vector<float> host_cpu(const Twin& t) {
    std::vector<float> h((size_t)t.size());
    cpu_->download(h.data(), t.c);
    return h;
  }
  std::vector<float> host_gpu(const Twin& t) {
    std::vector<float> h((size_t)t.size());
    gpu_->download(h.data(), t.g);
    return h;
  }
  // Every element: |gpu - cpu| <= atol + rtol * |cpu|. Reports the worst element and how many
  // elements differ in any bit (useful to see whether a kernel is bitwise-equal on a device).
  void expect_close(const Twin& t, double atol, double rtol, const std::string& what) {
    const std::vector<float> a = host_cpu(t), b = host_gpu(t);
    int64_t bad = 0, differ = 0, worst = -1;
    double worst_ratio = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::fabs((double)b[i] - (double)a[i]), lim = atol + rtol * std::fabs((double)a[i]);
      if (!(d <= lim)) ++bad;  // also catches NaN
      if (a[i] != b[i] || std::signbit(a[i]) != std::signbit(b[i])) ++differ;
      const double ratio = lim > 0 ? d / lim : (d > 0 ? INFINITY : 0.0);
      if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = (int64_t)i;
    }
    std::printf("[ compare  ] %s: %zu elements, %lld differ in some bit, worst |d|/tol %.3g\n", what.c_str(), a.size(),
                (long long)differ, worst_ratio);
    EXPECT_EQ(bad, 0) << what << ": worst element " << worst << " cpu " << (worst >= 0 ? a[(size_t)worst] : 0.0f)
                      << " cuda " << (worst >= 0 ? b[(size_t)worst] : 0.0f) << " (atol " << atol << ", rtol "
                      << rtol << ")";
  }
  void expect_equal(const Twin& t, const std::string& what) { expect_close(t, 0.0, 0.0, what); }

  std::unique_ptr<mira::Backend> cpu_, gpu_;
};

}  // namespace mira_gpu_test
