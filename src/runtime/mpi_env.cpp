// MPI start-up: thread level, error handler, identity for messages, node-local layout.
#include "runtime/mpi_env.h"

#include <unistd.h>

#include <algorithm>
#include <set>

#include "runtime/check_mpi.h"
#include "runtime/error.h"

namespace mira {

MpiEnv mpi_env_init(int* argc, char*** argv) {
  int provided = 0;
  MIRA_CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  MIRA_CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MpiEnv env;
  MIRA_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &env.rank));
  MIRA_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &env.size));
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int len = 0;
  MIRA_CHECK_MPI(MPI_Get_processor_name(name, &len));
  env.host.assign(name, static_cast<size_t>(len));
  runtime_set_identity(env.rank, env.host);

  MPI_Comm local;
  MIRA_CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, env.rank, MPI_INFO_NULL, &local));
  MIRA_CHECK_MPI(MPI_Comm_rank(local, &env.local_rank));
  MIRA_CHECK_MPI(MPI_Comm_size(local, &env.local_size));
  MIRA_CHECK_MPI(MPI_Comm_free(&local));

  std::vector<char> all(static_cast<size_t>(env.size) * MPI_MAX_PROCESSOR_NAME, 0);
  MIRA_CHECK_MPI(MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                               MPI_COMM_WORLD));
  std::set<std::string> distinct;
  for (int r = 0; r < env.size; ++r) {
    env.hosts.emplace_back(&all[static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME]);
    distinct.insert(env.hosts.back());
  }
  env.num_hosts = static_cast<int>(distinct.size());
  return env;
}

void mpi_env_finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

bool mpi_any(bool flag, MPI_Comm comm) {
  int local = flag ? 1 : 0, global = 0;
  MIRA_CHECK_MPI(MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, comm));
  return global != 0;
}

}  // namespace mira
