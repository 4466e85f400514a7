// The subcommands. Each runs on every rank with the validated Config and returns an exit code.
#pragma once
#include "app/config.h"
#include "runtime/mpi_env.h"
#include "runtime/threads.h"

namespace mira {

struct AppContext {
  const Config& config;
  const MpiEnv& env;
  const ThreadPlan& threads;
};

int command_train(const AppContext& ctx);
int command_pretrain(const AppContext& ctx);
int command_inspect(const AppContext& ctx);
int command_export(const AppContext& ctx);

}  // namespace mira
