// The float4 paths of the element-wise CUDA kernels (GELU): taken only when every pointer is 16-byte
// aligned, with an element-wise tail when n is not a multiple of 4. Slices at every offset 0..3 and
// lengths around multiples of 4 run both paths and the tail; each must stay bitwise equal to the CPU.
#include "gpu_test_util.h"

using namespace mira;
using namespace mira_gpu_test;

TEST_F(CudaVsCpu, GeluVectorAndScalarPathsAreBitwiseEqualToCpu) {
  const int64_t total = 4200;
  Twin x = f32(random_vec(total, 60, -12, 12)), dy = f32(random_vec(total, 61));
  for (int64_t off = 0; off < 4; ++off)
    for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{4093}, int64_t{4094}, int64_t{4096}}) {
      Twin y = zeros(total), dx = zeros(total);
      cpu_->gelu_forward(y.c.slice(off, n), x.c.slice(off, n), n);
      gpu_->gelu_forward(y.g.slice(off, n), x.g.slice(off, n), n);
      expect_equal(y, "gelu forward, offset " + std::to_string(off) + ", n " + std::to_string(n));
      cpu_->gelu_backward(dx.c.slice(off, n), dy.c.slice(off, n), x.c.slice(off, n), n);
      gpu_->gelu_backward(dx.g.slice(off, n), dy.g.slice(off, n), x.g.slice(off, n), n);
      expect_equal(dx, "gelu backward, offset " + std::to_string(off) + ", n " + std::to_string(n));
    }
}
