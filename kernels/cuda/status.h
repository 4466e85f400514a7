// The result of a CUDA kernel launcher (kernels/cuda): the first failing CUDA or cuBLAS call and the
// step it belongs to. Kernels never throw (this library does not link the runtime module); the
// backend (src/backend/backend_cuda.cpp) turns a failure into an InternalError naming the op.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace mira {

struct CudaStatus {
  cudaError_t cuda = cudaSuccess;
  cublasStatus_t cublas = CUBLAS_STATUS_SUCCESS;
  const char* step = "";  // e.g. "softmax kernel", "P v gemm"
  bool ok() const { return cuda == cudaSuccess && cublas == CUBLAS_STATUS_SUCCESS; }
};

// After a kernel launch: the launch error (bad configuration, no device), tagged with the step.
inline CudaStatus cuda_status_launch(const char* step) {
  CudaStatus s;
  s.cuda = cudaGetLastError();
  s.step = step;
  return s;
}

inline CudaStatus cuda_status_blas(cublasStatus_t rc, const char* step) {
  CudaStatus s;
  s.cublas = rc;
  s.step = step;
  return s;
}

}  // namespace mira
