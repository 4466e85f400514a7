// Device discovery of mira_hpc_emu (the application on the CUDA emulator; tests/emu/CMakeLists.txt,
// docs/cuda.md "The CUDA backend on a CPU emulator"): replaces src/runtime/devices.cu /
// devices_none.cpp in that test binary only. It reports the one emulated device (emu_runtime.cpp
// knows only device 0) with a fixed UUID, so every rank of a run on one host "sees the same GPU" and
// the real device binding (runtime/device_binding.h) applies its sharing rules to it.
//   MIRA_EMU_DEVICES=0   report no device instead (the no-GPU paths of run.backend = cuda | auto).
//   MIRA_EMU_DEVICES=rank each process sees one emulated device of its own (a UUID made from its
//                        process id), as with Slurm --gpus-per-task: ranks get distinct devices, so
//                        the run takes the NCCL exchange (emulated over MPI, nccl_emu.cpp).
// Both functions of runtime/devices.h are defined here, so the linker takes neither archive member of
// mira_runtime that defines them.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/devices.h"

namespace mira {

DeviceReport devices_query() {
  DeviceReport r;
  r.cuda_built = true;
  r.runtime_version = CUDART_VERSION;  // the CUDA headers the emulator was compiled against
  r.driver_version = 0;
  r.cublas_version = "emulated (tests/emu)";
  r.nccl_version = "emulated over MPI (tests/emu/nccl_emu.cpp)";
  const char* env = std::getenv("MIRA_EMU_DEVICES");
  if (env && std::string(env) == "0") {
    r.unavailable = "the CUDA emulator reports no device (MIRA_EMU_DEVICES=0)";
    return r;
  }
  GpuDevice d;
  d.index = 0;
  d.name = "CPU emulator (tests/emu)";
  d.uuid = "GPU-00000000-0000-0000-0000-00000000e400";
  if (env && std::string(env) == "rank") {  // one device per process
    char buf[64];
    std::snprintf(buf, sizeof buf, "GPU-00000000-0000-0000-0001-%012lx", (unsigned long)getpid());
    d.uuid = buf;
  }
  d.memory_gib = 0.0;
  d.cc_major = 9;  // the launch limits emu_runtime.cpp checks are sm_90's
  d.cc_minor = 0;
  r.devices.push_back(d);
  return r;
}

std::string devices_summary(const DeviceReport& r) {
  const std::string libs = "CUDA " + std::to_string(r.runtime_version / 1000) + "." +
                           std::to_string((r.runtime_version % 1000) / 10) +
                           " headers; emulated runtime and cuBLAS, no driver";
  if (r.devices.empty()) return "none (" + r.unavailable + "; " + libs + ")";
  return std::to_string(r.devices.size()) + " x " + r.devices[0].name + " (" + libs + ")";
}

}  // namespace mira
