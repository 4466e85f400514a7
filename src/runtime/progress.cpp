// Rate-limited, terminal-aware progress line (see progress.h).
#include "runtime/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

namespace mira {

// Launchers give ranks a pseudo-terminal even when their own output goes to a file (Open MPI's
// mpirun does), so under a launcher we cannot tell: print plain lines there. MIRA_PROGRESS=tty or
// =lines overrides.
bool progress_stdout_is_terminal() {
  if (const char* v = std::getenv("MIRA_PROGRESS")) return std::string(v) == "tty";
  for (const char* launcher : {"OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK", "SLURM_STEP_ID"})
    if (std::getenv(launcher)) return false;
  return isatty(STDOUT_FILENO) == 1;
}

Progress::Progress(std::string label, long total, double interval_s)
    : label_(std::move(label)),
      total_(total),
      interval_s_(interval_s),
      tty_(progress_stdout_is_terminal()),
      active_(runtime_rank() <= 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_ - std::chrono::hours(1)) {}

std::string Progress::format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--:--";
  long t = static_cast<long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

std::string Progress::render(long done, const std::string& detail) const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total_ - done) : -1;
  std::string s = label_ + " " + std::to_string(done) + "/" + std::to_string(total_);
  if (!detail.empty()) s += " | " + detail;
  s += " | elapsed " + format_duration(elapsed) + " | ETA " + format_duration(eta);
  return s;
}

void Progress::update(long done, const std::string& detail, bool force) {
  if (!active_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  if (tty_) {
    if (!force && since < 0.2) return;  // 5 redraws/s is plenty for a terminal
    std::printf("\r\033[K%s", render(done, detail).c_str());
    open_line_ = true;
  } else {
    if (!force && since < interval_s_) return;
    std::printf("%s\n", render(done, detail).c_str());
  }
  std::fflush(stdout);
  last_print_ = now;
}

void Progress::finish(const std::string& detail) {
  if (!active_) return;
  if (tty_ && open_line_) std::printf("\r\033[K");
  std::printf("%s\n", render(total_, detail).c_str());
  std::fflush(stdout);
  open_line_ = false;
}

}  // namespace mira
