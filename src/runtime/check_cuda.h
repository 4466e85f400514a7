// MIRA_CHECK_CUDA / MIRA_CHECK_CUBLAS / MIRA_CHECK_NCCL: throw InternalError naming the statement,
// the library's error text, file:line, rank and host. Only for translation units built with CUDA.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <string>

#include "runtime/error.h"

#define MIRA_CHECK_CUDA(call)                                                                 \
  do {                                                                                        \
    cudaError_t mira_cuda_rc_ = (call);                                                       \
    if (mira_cuda_rc_ != cudaSuccess)                                                         \
      ::mira::throw_check_failure("CUDA", #call,                                              \
          std::string(cudaGetErrorName(mira_cuda_rc_)) + " (" + std::to_string((int)mira_cuda_rc_) + "): " + \
          cudaGetErrorString(mira_cuda_rc_), __FILE__, __LINE__);                             \
  } while (0)

#define MIRA_CHECK_CUBLAS(call)                                                               \
  do {                                                                                        \
    cublasStatus_t mira_cublas_rc_ = (call);                                                  \
    if (mira_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                             \
      ::mira::throw_check_failure("cuBLAS", #call, cublasGetStatusString(mira_cublas_rc_), __FILE__, __LINE__); \
  } while (0)

#define MIRA_CHECK_NCCL(call)                                                                 \
  do {                                                                                        \
    ncclResult_t mira_nccl_rc_ = (call);                                                      \
    if (mira_nccl_rc_ != ncclSuccess)                                                         \
      ::mira::throw_check_failure("NCCL", #call, ncclGetErrorString(mira_nccl_rc_), __FILE__, __LINE__); \
  } while (0)
