// Failed-check messages: statement, detail, file:line, rank and host in one line.
#include "runtime/error.h"

#include <cerrno>
#include <cstring>

namespace mira {
namespace {
int g_rank = -1;
std::string g_host = "?";
}  // namespace

void runtime_set_identity(int rank, const std::string& host) {
  g_rank = rank;
  g_host = host;
}
int runtime_rank() { return g_rank; }
const std::string& runtime_host() { return g_host; }

std::string error_where(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  std::string where = std::string(base ? base + 1 : file) + ":" + std::to_string(line);
  if (g_rank >= 0) where += " on rank " + std::to_string(g_rank) + " (" + g_host + ")";
  return where;
}

void throw_check_failure(const char* kind, const char* statement, const std::string& detail, const char* file,
                         int line) {
  std::string msg = std::string(kind) + " call failed: " + statement;
  if (!detail.empty()) msg += ": " + detail;
  msg += " [" + error_where(file, line) + "]";
  throw InternalError(msg);
}

void throw_errno_failure(const char* statement, const std::string& path, const char* file, int line) {
  int err = errno;
  std::string msg = "file operation failed on '" + path + "': " + std::strerror(err) + " (" + statement + ") [" +
                    error_where(file, line) + "]";
  throw InternalError(msg);
}
}  // namespace mira
