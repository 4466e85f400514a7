// GoogleTest main for MPI tests: initialises MPI, prints results from rank 0 only, and makes the
// process exit non-zero on EVERY rank when a test failed on ANY rank (so mpiexec reports failure
// and no rank is left waiting in a collective the failed rank skipped).
#include <gtest/gtest.h>
#include <mpi.h>

namespace {
// Removes the default printer on ranks > 0, so the log shows one copy of each result.
void silence_non_root(int rank) {
  if (rank == 0) return;
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  delete listeners.Release(listeners.default_result_printer());
}
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  ::testing::InitGoogleTest(&argc, argv);
  silence_non_root(rank);
  int local_failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&local_failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (local_failed && rank != 0) {
    fprintf(stderr, "[rank %d] some tests FAILED on this rank (rank 0 prints only its own results)\n", rank);
  }
  MPI_Finalize();
  return any_failed;
}
