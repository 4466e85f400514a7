// What GPUs this process sees and which CUDA/cuBLAS/NCCL it was built with. Every query checks its
// return code: on a machine without a driver cudaGetDeviceCount fails (error 35, "driver version is
// insufficient", or 100, "no device") and we report that instead of failing.
#pragma once
#include <string>
#include <vector>

namespace mira {

struct GpuDevice {
  int index = 0;
  std::string name;
  std::string uuid;          // "GPU-xxxxxxxx-..." as nvidia-smi prints it
  double memory_gib = 0.0;
  int cc_major = 0, cc_minor = 0;
};

struct DeviceReport {
  bool cuda_built = false;      // this binary has the CUDA backend
  int runtime_version = 0;      // e.g. 13000
  int driver_version = 0;       // 0 when no driver is installed
  std::string cublas_version;   // e.g. "13.0.2"
  std::string nccl_version;     // e.g. "2.27.7"
  std::vector<GpuDevice> devices;
  std::string unavailable;      // why no device is usable ("" when devices were found)
};

DeviceReport devices_query();
// One line for the banner: "2 x NVIDIA H100 80GB HBM3 (CUDA 13.0, driver 580.x)" or
// "none (cudaGetDeviceCount: cudaErrorInsufficientDriver (35))" or "none (built without CUDA)".
std::string devices_summary(const DeviceReport& r);

}  // namespace mira
