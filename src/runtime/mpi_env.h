// The MPI environment of one process: world rank/size, node-local rank/size (ranks sharing a
// host, from MPI_Comm_split_type SHARED), host names. Created once by main; read everywhere.
#pragma once
#include <mpi.h>

#include <string>
#include <vector>

namespace mira {

struct MpiEnv {
  int rank = 0;
  int size = 1;
  int local_rank = 0;        // rank among the ranks on this host
  int local_size = 1;        // ranks on this host
  int num_hosts = 1;
  std::string host;
  std::vector<std::string> hosts;  // host of every world rank (rank order)
};

// MPI_Init_thread (FUNNELED), sets error handler MPI_ERRORS_RETURN so MIRA_CHECK_MPI sees codes,
// records rank/host for error messages and logging. Call once.
MpiEnv mpi_env_init(int* argc, char*** argv);
void mpi_env_finalize();
// Same answer on every rank: 1 if any rank passes 1 (a collective; every rank must call it).
bool mpi_any(bool flag, MPI_Comm comm = MPI_COMM_WORLD);

}  // namespace mira
