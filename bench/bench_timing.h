// Interleaved timing for the MPI benchmarks (bench/exchange_main.cpp, bench/exchange_device_main.cpp):
// methods run in turn (0, 1, ..., then again), so a burst of load from other processes on a shared
// machine hits all of them alike. Each sample is the slowest rank's time of one call; the result
// is the median per method. Two warm-up rounds first (first touch of buffers, connection set-up).
// The loop count depends only on allreduced times, so it is the same on every rank.
#pragma once
#include <mpi.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "runtime/check_mpi.h"

namespace mira {

// At least min_iters samples per method, then more while the measured time stays under
// budget seconds per method, up to max_iters.
inline std::vector<double> time_interleaved(MPI_Comm comm, int min_iters, int max_iters, double budget,
                                            const std::vector<std::function<void()>>& methods) {
  for (int w = 0; w < 2; ++w)
    for (const auto& m : methods) m();
  std::vector<std::vector<double>> ts(methods.size());
  double spent = 0.0;
  while ((int)ts[0].size() < min_iters || (spent < budget * double(methods.size()) && (int)ts[0].size() < max_iters)) {
    for (size_t i = 0; i < methods.size(); ++i) {
      MIRA_CHECK_MPI(MPI_Barrier(comm));
      const double t0 = MPI_Wtime();
      methods[i]();
      double t = MPI_Wtime() - t0, tmax = 0.0;
      MIRA_CHECK_MPI(MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, comm));
      ts[i].push_back(tmax);
      spent += tmax;
    }
  }
  std::vector<double> med;
  for (auto& v : ts) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    med.push_back(n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
  }
  return med;
}

}  // namespace mira
