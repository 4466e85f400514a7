// Collects version strings of everything a result depends on (see provenance.h).
#include "runtime/provenance.h"

#include <hdf5.h>
#include <mpi.h>

#include "runtime/devices.h"
#include "runtime/mpi_env.h"
#include "runtime/threads.h"

#ifndef MIRA_GIT_REVISION
#define MIRA_GIT_REVISION "unknown"
#endif
#ifndef MIRA_VERSION
#define MIRA_VERSION "0.0.0"
#endif

namespace mira {

std::string provenance_code_version() { return std::string(MIRA_VERSION) + " (git " + MIRA_GIT_REVISION + ")"; }

std::string provenance_compiler() {
#if defined(__clang__)
  return std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown compiler";
#endif
}

static std::string mpi_library() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string s(text, static_cast<size_t>(len));
  auto cut = s.find_first_of(",\n");  // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
  if (cut != std::string::npos) s.resize(cut);
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);
  return s + " (MPI " + std::to_string(major) + "." + std::to_string(minor) + ")";
}

static std::string hdf5_library() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  std::string s = "HDF5 " + std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
#ifdef H5_HAVE_PARALLEL
  s += " (parallel)";
#else
  s += " (serial)";
#endif
  return s;
}

std::vector<std::pair<std::string, std::string>> provenance_libraries() {
  std::vector<std::pair<std::string, std::string>> items = {
      {"code", provenance_code_version()},
      {"compiler", provenance_compiler()},
      {"mpi", mpi_library()},
      {"hdf5", hdf5_library()},
      {"blas", threads_blas_config()},
  };
  DeviceReport dev = devices_query();
  if (dev.cuda_built) {
    items.push_back({"cuda", "runtime " + std::to_string(dev.runtime_version / 1000) + "." +
                                 std::to_string((dev.runtime_version % 1000) / 10) + ", cuBLAS " +
                                 dev.cublas_version + ", NCCL " + dev.nccl_version});
  } else {
    items.push_back({"cuda", "not built"});
  }
  items.push_back({"devices", devices_summary(dev)});
  return items;
}

std::vector<std::pair<std::string, std::string>> provenance_run(const MpiEnv& env, const ThreadPlan& threads) {
  auto items = provenance_libraries();
  items.push_back({"ranks", std::to_string(env.size) + " on " + std::to_string(env.num_hosts) + " host(s), " +
                                std::to_string(env.local_size) + " on " + env.host});
  std::string hosts;
  for (size_t i = 0; i < env.hosts.size(); ++i) {
    if (i == 0 || env.hosts[i] != env.hosts[i - 1]) hosts += (hosts.empty() ? "" : ",") + env.hosts[i];
  }
  items.push_back({"hosts", hosts});
  items.push_back({"threads", std::to_string(threads.threads) + " per rank (from " + threads.source + "; " +
                                  std::to_string(threads.cores) + " cores visible)"});
  return items;
}

std::string provenance_text(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string s;
  for (const auto& [k, v] : items) s += k + ": " + v + "\n";
  return s;
}

}  // namespace mira
