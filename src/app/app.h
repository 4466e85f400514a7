// The application around the subcommands: configuration under MPI, threads, banner, dispatch, and
// the mapping of failures to exit codes (0 done, 1 internal fault, 2 user error, 3 stopped on a
// signal after a checkpoint). main() only starts MPI and calls app_main.
#pragma once
#include <string>
#include <vector>

#include "runtime/mpi_env.h"

namespace mira {

enum ExitCode { EXIT_DONE = 0, EXIT_INTERNAL = 1, EXIT_USER = 2, EXIT_STOPPED = 3 };

// args = argv[1..]. Returns the exit code for a clean exit (0, 2 after an agreed user error, 3);
// internal faults and one-rank user errors end every rank through MPI_Abort.
int app_main(const MpiEnv& env, const std::vector<std::string>& args);

}  // namespace mira
