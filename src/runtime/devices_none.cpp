// Device discovery for builds without the CUDA backend (MIRA_CUDA=OFF or no nvcc): no devices.
#ifndef MIRA_HAVE_CUDA
#include "runtime/devices.h"

namespace mira {
DeviceReport devices_query() {
  DeviceReport r;
  r.unavailable = "built without CUDA (MIRA_CUDA=OFF or nvcc not found at configure time)";
  return r;
}
std::string devices_summary(const DeviceReport& r) { return "none (" + r.unavailable + ")"; }
}  // namespace mira
#endif
