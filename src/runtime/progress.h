// A progress line for long phases (rank 0 only). On a terminal the line is rewritten in place
// (carriage return); when stdout is a file (a Slurm log) a full line is printed at most every
// `interval_s` seconds and at the end, so logs stay readable and short.
#pragma once
#include <chrono>
#include <string>

namespace mira {

// True when the progress line may redraw in place (see progress.cpp for the launcher rule).
bool progress_stdout_is_terminal();

class Progress {
 public:
  // total: units of work (e.g. rounds); label: what a unit is called ("round").
  Progress(std::string label, long total, double interval_s = 10.0);
  // done: units finished; detail: extra fields ("loss 2.31 | 1234 tok/s"). Prints when due.
  void update(long done, const std::string& detail, bool force = false);
  // Ends the line (terminal mode) and prints the final state.
  void finish(const std::string& detail);
  // "01:02:03" from seconds; "--:--:--" when unknown.
  static std::string format_duration(double seconds);

 private:
  std::string label_;
  long total_;
  double interval_s_;
  bool tty_;
  bool active_;  // rank 0
  bool open_line_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
  std::string render(long done, const std::string& detail) const;
};

}  // namespace mira
