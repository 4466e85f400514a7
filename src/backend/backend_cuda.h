// The CUDA backend (kernels/cuda, cuBLAS) and the choice of a rank's device. The device choice is a
// pure function, available in every build so it is tested everywhere; backend_create_cuda exists
// only in builds with the CUDA backend (MIRA_HAVE_CUDA).
// STATUS: compiles and links; NOT yet run on a GPU (docs/cuda.md). run.backend = cuda | auto takes it
// only after the start-up check against the CPU backend passes (src/app/run_setup.cpp).
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"
#include "runtime/device_binding.h"

namespace mira {

struct CudaDeviceChoice {
  int device = -1;            // CUDA device index for this rank, -1 when none is visible
  bool shared = false;        // known to share its device with other local ranks (more ranks than devices)
  std::string reason;         // how it was chosen, for the start-up banner
};

// Which visible device a rank uses: none when device_count <= 0; the only one when the rank sees
// exactly one (e.g. Slurm --gpus-per-task or CUDA_VISIBLE_DEVICES set per rank); otherwise bound by
// node-local rank, local_rank % device_count (shared when local_size > device_count). The index rule
// is device_binding_index (runtime/device_binding.h); ranks that see one device each but actually
// share it (same UUID) are found by device_binding_decide / device_binding_gather, not here.
inline CudaDeviceChoice cuda_select_device(int device_count, int local_rank, int local_size) {
  CudaDeviceChoice ch;
  if (device_count <= 0) {
    ch.reason = "no CUDA device visible";
  } else if (device_count == 1) {
    ch.device = device_binding_index(device_count, local_rank);
    ch.reason = "the only visible device";
  } else {
    ch.device = device_binding_index(device_count, local_rank);
    ch.shared = local_size > device_count;
    ch.reason = "node-local rank " + std::to_string(local_rank) + " of " + std::to_string(local_size) + " on " +
                std::to_string(device_count) + " devices" + (ch.shared ? " (devices shared by several ranks)" : "");
  }
  return ch;
}

#ifdef MIRA_HAVE_CUDA
// The fp32 parity backend on device `device`: cudaMalloc'd zero-filled memory, one non-blocking
// stream, a cuBLAS handle in CUBLAS_PEDANTIC_MATH (no TF32). Throws InternalError (with the CUDA
// error, e.g. cudaErrorInsufficientDriver) when the device cannot be used.
std::unique_ptr<Backend> backend_create_cuda(int device);
// The stream every op of a backend made by backend_create_cuda runs on (a cudaStream_t), for code
// that orders its own device work with the backend's (src/fed/device_store.h: the adapter exchange
// and the aggregation kernels). InternalError for any other backend.
void* backend_cuda_stream(Backend& be);
#endif

}  // namespace mira
