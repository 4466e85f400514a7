// GPU and CUDA-library discovery for the banner and provenance (built when the CUDA backend is on).
// Compiled by nvcc so that every build with MIRA_CUDA checks that CUDA sources compile and link.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>

#include "runtime/devices.h"

namespace mira {

static std::string version_text(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

DeviceReport devices_query() {
  DeviceReport r;
  r.cuda_built = true;
  cudaRuntimeGetVersion(&r.runtime_version);
  if (cudaDriverGetVersion(&r.driver_version) != cudaSuccess) r.driver_version = 0;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    r.cublas_version = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess)  // NCCL >= 2.9 encodes X*10000 + Y*100 + Z
    r.nccl_version = std::to_string(nccl / 10000) + "." + std::to_string((nccl % 10000) / 100) + "." +
                     std::to_string(nccl % 100);
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    r.unavailable = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(rc) + " (" + std::to_string((int)rc) +
                    "): " + cudaGetErrorString(rc);
    cudaGetLastError();  // clear the sticky error so later queries are not confused
    return r;
  }
  if (count == 0) r.unavailable = "cudaGetDeviceCount found 0 devices";
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      cudaGetLastError();  // clear it: the next kernel launch's cudaGetLastError would report it as its own
      continue;
    }
    GpuDevice d;
    d.index = i;
    d.name = p.name;
    char uuid[64];
    const unsigned char* u = reinterpret_cast<const unsigned char*>(p.uuid.bytes);
    std::snprintf(uuid, sizeof uuid,
                  "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
                  u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    d.uuid = uuid;
    d.memory_gib = static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    r.devices.push_back(d);
  }
  (void)version_text;
  return r;
}

std::string devices_summary(const DeviceReport& r) {
  std::string libs = "CUDA runtime " + version_text(r.runtime_version) +
                     (r.driver_version ? ", driver API " + version_text(r.driver_version) : ", no driver");
  if (r.devices.empty()) return "none (" + r.unavailable + "; " + libs + ")";
  std::string s = std::to_string(r.devices.size()) + " x " + r.devices[0].name;
  char mem[32];
  std::snprintf(mem, sizeof mem, " %.0f GiB", r.devices[0].memory_gib);
  return s + mem + " (" + libs + ")";
}

}  // namespace mira
