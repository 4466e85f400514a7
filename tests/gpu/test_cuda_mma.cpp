// The tensor-core primitives the bf16 attention is built on (kernels/cuda/mma_bf16.cuh: mma.sync
// m16n8k16, ldmatrix x4 plain and .trans), checked directly on a (16, 32) x (32, 16) product
// (kernels/cuda/mma_check.h) against a double-precision product of the same bf16-rounded inputs.
// On the emulator this checks the kernels' fragment addressing against the emulated PTX layouts;
// on a GPU it checks that the hardware's layouts are the ones the emulator (and the attention
// kernels) assume: if this fails there, the attention tests fail for that reason.
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#if defined(MIRA_HAVE_CUDA) || defined(MIRA_CUDA_EMU)
#include <cuda_bf16.h>

#include "backend/backend_cuda.h"
#include "kernels/cuda/mma_check.h"

using namespace mira;
using namespace mira_gpu_test;

TEST_F(CudaVsCpu, TensorCorePrimitivesMatchAPlainProduct) {
  // Distinct values (a row/column-mixing bug moves them) that bf16 represents exactly.
  std::vector<float> a(16 * 32), b(32 * 16);
  for (int i = 0; i < 16 * 32; ++i) a[(size_t)i] = (float)((i * 7) % 23 - 11) / 8.0f;
  for (int i = 0; i < 32 * 16; ++i) b[(size_t)i] = (float)((i * 5) % 19 - 9) / 4.0f;
  for (float v : a) ASSERT_EQ(__bfloat162float(__float2bfloat16_rn(v)), v);
  for (float v : b) ASSERT_EQ(__bfloat162float(__float2bfloat16_rn(v)), v);
  std::vector<double> ref(16 * 16, 0.0);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      for (int k = 0; k < 32; ++k)
        ref[(size_t)(r * 16 + c)] += (double)a[(size_t)(r * 32 + k)] * b[(size_t)(k * 16 + c)];
  DFloat da = gpu_->alloc_f32(16 * 32), db = gpu_->alloc_f32(32 * 16), dp = gpu_->alloc_f32(256),
         dt = gpu_->alloc_f32(256);
  gpu_->upload(da, a.data());
  gpu_->upload(db, b.data());
  const CudaStatus st = cuda_mma_selfcheck(static_cast<cudaStream_t>(backend_cuda_stream(*gpu_)),
                                           BackendAccess::ptr(dp), BackendAccess::ptr(dt), BackendAccess::ptr(da),
                                           BackendAccess::ptr(db));
  ASSERT_TRUE(st.ok()) << st.step;
  std::vector<float> plain(256), trans(256);
  gpu_->download(plain.data(), dp);
  gpu_->download(trans.data(), dt);
  // Products of these values are multiples of 2^-5 below 2^5 and their sums stay below 2^10, so
  // every fp32 partial sum is exact whatever the order: the results must be exact.
  for (int e = 0; e < 256; ++e) {
    const std::string at = "element (" + std::to_string(e / 16) + ", " + std::to_string(e % 16) + ")";
    EXPECT_EQ((double)plain[(size_t)e], ref[(size_t)e]) << "B^T by ldmatrix, " << at;
    EXPECT_EQ((double)trans[(size_t)e], ref[(size_t)e]) << "B by ldmatrix.trans, " << at;
  }
  for (DFloat x : {da, db, dp, dt}) gpu_->release(x);
}
#endif
