// MIRA_CHECK_MPI(call): throws InternalError naming the statement, MPI's error string, file:line,
// rank and host when an MPI call does not return MPI_SUCCESS.
#pragma once
#include <mpi.h>
#include <string>

#include "runtime/error.h"

namespace mira {
inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(len));
}
}  // namespace mira

#define MIRA_CHECK_MPI(call)                                                                  \
  do {                                                                                        \
    int mira_mpi_rc_ = (call);                                                                \
    if (mira_mpi_rc_ != MPI_SUCCESS)                                                          \
      ::mira::throw_check_failure("MPI", #call, ::mira::mpi_error_string(mira_mpi_rc_), __FILE__, __LINE__); \
  } while (0)
