// mira_hpc entry point: start MPI, run the application, finalise, exit with its code.
#include <cstdio>
#include <string>
#include <vector>

#include "app/app.h"
#include "runtime/mpi_env.h"

int main(int argc, char** argv) {
  mira::MpiEnv env;
  try {
    env = mira::mpi_env_init(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mira_hpc: error: MPI start-up failed: %s\n", e.what());
    return mira::EXIT_INTERNAL;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  int code = mira::app_main(env, args);
  mira::mpi_env_finalize();
  return code;
}
