// Thread-count policy for one rank (see threads.h).
#include "runtime/threads.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>

namespace mira {

static int host_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

ThreadPlan threads_plan(int requested, int local_ranks) {
  ThreadPlan plan;
  plan.cores = host_cores();
  if (requested > 0) {
    plan.threads = requested;
    plan.source = "run.threads";
    return plan;
  }
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK")) {
    int n = std::atoi(slurm);
    if (n > 0) {
      plan.threads = n;
      plan.source = "SLURM_CPUS_PER_TASK";
      return plan;
    }
  }
  // Affinity masks of co-located ranks may each show all cores: divide by the ranks on the host.
  long total = sysconf(_SC_NPROCESSORS_ONLN);
  int cores = total > 0 ? static_cast<int>(total) : plan.cores;
  plan.threads = cores / (local_ranks > 0 ? local_ranks : 1);
  if (plan.threads < 1) plan.threads = 1;
  plan.source = "cores/ranks-per-host";
  return plan;
}

void threads_apply(const ThreadPlan& plan) {
  omp_set_num_threads(plan.threads);
  openblas_set_num_threads(plan.threads);
}

std::string threads_blas_config() {
  const char* c = openblas_get_config();
  std::string s = c ? c : "OpenBLAS (unknown config)";
  const int parallel = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  s += parallel == 2 ? " (OpenMP build)" : parallel == 1 ? " (pthreads build)" : " (sequential build)";
  return s;
}

}  // namespace mira
