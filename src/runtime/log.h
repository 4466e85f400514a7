// Logging: levels, rank-0 by default (log_*), any rank on request (log_rank_*, prefixed with the
// rank). Messages go to stderr with a level tag; the progress line (progress.h) goes to stdout.
#pragma once
#include <string>

namespace mira {

enum class LogLevel { ERROR = 0, WARN = 1, INFO = 2, DEBUG = 3 };

void log_set_level(LogLevel level);
LogLevel log_level();
// Parses "error|warn|info|debug"; throws UserError naming `key` otherwise.
LogLevel log_parse_level(const std::string& text, const std::string& key);

// Rank 0 only (or every rank before MPI is initialised).
void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Any rank, prefixed "[rank R]".
void log_rank(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace mira
