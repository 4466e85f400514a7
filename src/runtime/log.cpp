// Rank-aware leveled logging to stderr.
#include "runtime/log.h"

#include <cstdarg>
#include <cstdio>

#include "runtime/error.h"

namespace mira {
namespace {
LogLevel g_level = LogLevel::INFO;
const char* tag(LogLevel l) {
  switch (l) {
    case LogLevel::ERROR: return "error";
    case LogLevel::WARN: return "warning";
    case LogLevel::INFO: return "info";
    case LogLevel::DEBUG: return "debug";
  }
  return "?";
}
void emit(LogLevel level, bool any_rank, const char* fmt, va_list ap) {
  if (level > g_level) return;
  const int rank = runtime_rank();
  if (!any_rank && rank > 0) return;
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt, ap);
  if (any_rank && rank >= 0)
    std::fprintf(stderr, "mira_hpc [rank %d] %s: %s\n", rank, tag(level), buf);
  else
    std::fprintf(stderr, "mira_hpc %s: %s\n", tag(level), buf);
  std::fflush(stderr);
}
}  // namespace

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

LogLevel log_parse_level(const std::string& text, const std::string& key) {
  if (text == "error") return LogLevel::ERROR;
  if (text == "warn" || text == "warning") return LogLevel::WARN;
  if (text == "info") return LogLevel::INFO;
  if (text == "debug") return LogLevel::DEBUG;
  throw UserError(key + " = '" + text + "': allowed values are error, warn, info, debug");
}

#define MIRA_LOG_FN(name, level)              \
  void name(const char* fmt, ...) {           \
    va_list ap;                               \
    va_start(ap, fmt);                        \
    emit(level, false, fmt, ap);              \
    va_end(ap);                               \
  }
MIRA_LOG_FN(log_error, LogLevel::ERROR)
MIRA_LOG_FN(log_warn, LogLevel::WARN)
MIRA_LOG_FN(log_info, LogLevel::INFO)
MIRA_LOG_FN(log_debug, LogLevel::DEBUG)
#undef MIRA_LOG_FN

void log_rank(LogLevel level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit(level, true, fmt, ap);
  va_end(ap);
}
}  // namespace mira
