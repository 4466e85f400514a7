// Threads per rank: SLURM_CPUS_PER_TASK when Slurm set it, else the host's cores divided by the
// ranks on the host (at least 1), unless the user asked for a number. OpenMP and OpenBLAS get the
// same count; OpenBLAS is the OpenMP build, so BLAS calls inside our parallel regions run on one
// thread and nothing is oversubscribed.
#pragma once
#include <string>

namespace mira {

struct ThreadPlan {
  int threads = 1;
  std::string source;  // "run.threads", "SLURM_CPUS_PER_TASK", "cores/ranks-per-host"
  int cores = 1;       // online cores of the host (or of this process's affinity mask)
};

// requested: 0 = automatic. local_ranks: ranks on this host.
ThreadPlan threads_plan(int requested, int local_ranks);
// Applies the plan to OpenMP and OpenBLAS.
void threads_apply(const ThreadPlan& plan);
// OpenBLAS build configuration string (e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell MAX_THREADS=64").
std::string threads_blas_config();

}  // namespace mira
