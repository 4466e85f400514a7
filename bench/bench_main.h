// The main() of an MPI benchmark program: MPI up, run, MPI down; a user error (bad option) ends
// every rank with exit code 2, anything else with 1, each with one line naming the program.
#pragma once
#include <mpi.h>

#include <cstdio>
#include <exception>

#include "runtime/error.h"

namespace mira {

template <typename Run>
int bench_main(int argc, char** argv, const char* name, Run run) {
  MPI_Init(&argc, &argv);
  int code = 0;
  try {
    code = run(argc, argv);
  } catch (const UserError& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}

}  // namespace mira
