// Error types and the check-macro family every module uses.
//   UserError     - the user's mistake (bad config key/value, missing or malformed input file,
//                   checkpoint that does not fit the config): exit code 2, one clear line that names
//                   the key or file:line and what is allowed.
//   InternalError - an unexpected fault (a library call failed, an invariant broke): exit code 1,
//                   main prints one line and calls MPI_Abort so no rank hangs.
// Library-specific checks (MPI, HDF5, CUDA, cuBLAS, NCCL) live in check_*.h next to this file so
// that including this header pulls in no third-party header.
#pragma once
#include <stdexcept>
#include <string>

namespace mira {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "file.cpp:42 on rank 3 (host)": where a failed check happened. Rank and host are those set by
// runtime_set_identity (rank -1 and "?" before MPI is up).
std::string error_where(const char* file, int line);

// Called once after MPI_Init; used by error_where and the logger.
void runtime_set_identity(int rank, const std::string& host);
int runtime_rank();
const std::string& runtime_host();

// Builds the message of a failed check and throws InternalError.
[[noreturn]] void throw_check_failure(const char* kind, const char* statement, const std::string& detail,
                                      const char* file, int line);

}  // namespace mira

// Invariant check: MIRA_CHECK(n > 0, "n=" + std::to_string(n)).
#define MIRA_CHECK(cond, detail)                                                   \
  do {                                                                             \
    if (!(cond)) ::mira::throw_check_failure("check", #cond, (detail), __FILE__, __LINE__); \
  } while (0)

// File/OS call check; the detail names the path, errno's text is appended.
#define MIRA_CHECK_ERRNO(cond, path)                                               \
  do {                                                                             \
    if (!(cond)) ::mira::throw_errno_failure(#cond, (path), __FILE__, __LINE__);   \
  } while (0)

namespace mira {
[[noreturn]] void throw_errno_failure(const char* statement, const std::string& path, const char* file, int line);
}
