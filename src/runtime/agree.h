// Collective verdicts on user errors, so that a bad input found on one rank ends every rank the
// same way (exit code 2, message printed once) instead of leaving the others waiting in a
// collective. Wrap each start-up step that can find a user error in mpi_agree().
#pragma once
#include <mpi.h>

#include <functional>
#include <string>

#include "runtime/error.h"

namespace mira {

// A UserError every rank of the communicator knows about (thrown on all of them, same message).
class CollectiveUserError : public UserError {
 public:
  using UserError::UserError;
};

// Runs `step` on every rank; if it throws UserError on any rank, every rank throws
// CollectiveUserError with the message of the lowest failing rank. Other exceptions propagate
// (main aborts on them). A collective: every rank must call it.
void mpi_agree(MPI_Comm comm, const std::function<void()>& step);

// Rank `root` runs `produce` (which may throw UserError) and broadcasts its string result or its
// error; the other ranks receive the same result or throw the same CollectiveUserError.
std::string mpi_root_produce(MPI_Comm comm, int root, const std::function<std::string()>& produce);

}  // namespace mira
