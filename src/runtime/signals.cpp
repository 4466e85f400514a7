// Async-signal-safe recording of stop signals (see signals.h).
#include "runtime/signals.h"

#include <csignal>
#include <cstring>

#include "runtime/error.h"

namespace mira {
namespace {
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int signum) {
  if (g_signal == 0) g_signal = signum;
}
}  // namespace

void signals_install() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  MIRA_CHECK(sigaction(SIGUSR1, &sa, nullptr) == 0, "sigaction(SIGUSR1)");
  MIRA_CHECK(sigaction(SIGTERM, &sa, nullptr) == 0, "sigaction(SIGTERM)");
}

int signals_pending() { return static_cast<int>(g_signal); }

const char* signals_name(int signum) {
  switch (signum) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case 0: return "none";
  }
  return "signal";
}

void signals_raise_for_test(int signum) { g_signal = signum; }

}  // namespace mira
