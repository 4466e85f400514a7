// Agreement on user errors across ranks (see agree.h).
#include "runtime/agree.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "runtime/check_mpi.h"

namespace mira {

static std::string bcast_string(MPI_Comm comm, int root, const std::string& s) {
  int rank = 0;
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  long long n = static_cast<long long>(s.size());
  MIRA_CHECK_MPI(MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm));
  std::string out = rank == root ? s : std::string(static_cast<size_t>(n), '\0');
  // Large texts (config files, manifests) go in chunks below INT_MAX.
  for (long long off = 0; off < n; off += INT_MAX / 2) {
    int len = static_cast<int>(std::min<long long>(n - off, INT_MAX / 2));
    MIRA_CHECK_MPI(MPI_Bcast(&out[static_cast<size_t>(off)], len, MPI_CHAR, root, comm));
  }
  return out;
}

void mpi_agree(MPI_Comm comm, const std::function<void()>& step) {
  int rank = 0;
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  std::string message;
  int failed_rank = INT_MAX;
  try {
    step();
  } catch (const CollectiveUserError&) {
    throw;  // already agreed inside
  } catch (const UserError& e) {
    message = e.what();
    failed_rank = rank;
  }
  int first = INT_MAX;
  MIRA_CHECK_MPI(MPI_Allreduce(&failed_rank, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == INT_MAX) return;
  throw CollectiveUserError(bcast_string(comm, first, message));
}

std::string mpi_root_produce(MPI_Comm comm, int root, const std::function<std::string()>& produce) {
  int rank = 0;
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  std::string result, error;
  int failed = 0;
  if (rank == root) {
    try {
      result = produce();
    } catch (const UserError& e) {
      error = e.what();
      failed = 1;
    }
  }
  MIRA_CHECK_MPI(MPI_Bcast(&failed, 1, MPI_INT, root, comm));
  if (failed) throw CollectiveUserError(bcast_string(comm, root, error));
  return bcast_string(comm, root, result);
}

}  // namespace mira
