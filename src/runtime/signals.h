// Stop requests by signal: SIGUSR1 (the checkpoint signal: Slurm's --signal, or mpirun forwarding
// it to every rank) and SIGTERM (best effort: schedulers follow it with SIGKILL). The handler only
// records the signal; the round loop polls signals_pending() at step boundaries, the ranks agree at
// the end of the round, write the last completed round's checkpoint and exit with code 3.
#pragma once

namespace mira {

void signals_install();
// The first stop signal received (SIGUSR1 or SIGTERM), or 0.
int signals_pending();
const char* signals_name(int signum);
// Testing: behave as if `signum` had arrived.
void signals_raise_for_test(int signum);

}  // namespace mira
