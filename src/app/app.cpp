// app_main: configuration, threads, banner, dispatch, exit codes (see app.h).
#include "app/app.h"

#include <hdf5.h>
#include <mpi.h>

#include <cstdio>

#include "app/commands.h"
#include "app/config_load.h"
#include "app/config_schema.h"
#include "runtime/agree.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/provenance.h"
#include "runtime/signals.h"
#include "runtime/threads.h"

namespace mira {
namespace {

void print_banner(const Config& c, const MpiEnv& env, const ThreadPlan& threads) {
  if (env.rank != 0 || log_level() < LogLevel::INFO) return;
  if (c.command != Command::TRAIN && c.command != Command::PRETRAIN) return;  // tools stay quiet
  std::fprintf(stderr, "mira_hpc %s: %s\n", provenance_code_version().c_str(), command_name(c.command));
  for (const auto& [k, v] : provenance_run(env, threads)) {
    if (k == "code") continue;
    std::fprintf(stderr, "  %-9s %s\n", (k + ":").c_str(), v.c_str());
  }
  std::fflush(stderr);
}

// --dry-run: the fully resolved configuration (with where each non-default value came from) and
// what the run will use, on stdout.
void print_dry_run(const Config& c, const MpiEnv& env, const ThreadPlan& threads) {
  if (env.rank != 0) return;
  std::printf("# mira_hpc %s --dry-run: resolved configuration\n", command_name(c.command));
  if (!c.config_path.empty()) std::printf("# config file: %s\n", c.config_path.c_str());
  std::printf("%s\n", config_to_ini(c, true).c_str());
  std::printf("# plan\n");
  std::printf("ranks: %d on %d host(s)\n", env.size, env.num_hosts);
  std::printf("threads per rank: %d (from %s)\n", threads.threads, threads.source.c_str());
  std::fflush(stdout);
}

int dispatch(const Config& c, const MpiEnv& env, const ThreadPlan& threads) {
  AppContext ctx{c, env, threads};
  switch (c.command) {
    case Command::TRAIN: return command_train(ctx);
    case Command::PRETRAIN: return command_pretrain(ctx);
    case Command::INSPECT: return command_inspect(ctx);
    case Command::EXPORT: return command_export(ctx);
  }
  return EXIT_INTERNAL;
}

}  // namespace

int app_main(const MpiEnv& env, const std::vector<std::string>& args) {
  // HDF5's automatic error printer: off. Our checks carry HDF5's message instead, and with the
  // printer on, HDF5 1.10.8 loops at exit after a refused (corrupt) file.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  try {
    CliOutcome cli;
    // Rank 0 reads the INI file and broadcasts its text: every rank parses the same bytes and
    // reaches the same verdict, so a user error is printed once and no rank is left waiting.
    mpi_agree(MPI_COMM_WORLD, [&] {
      cli = config_parse(args, [](const std::string& path) {
        return mpi_root_produce(MPI_COMM_WORLD, 0, [&] { return config_read_file(path); });
      });
    });
    if (cli.help) {
      if (env.rank == 0) std::printf("%s", config_help_text().c_str());
      return EXIT_DONE;
    }
    if (cli.help_keys) {
      if (env.rank == 0) std::printf("%s", config_keys_markdown().c_str());
      return EXIT_DONE;
    }
    if (cli.version) {
      if (env.rank == 0) {
        std::printf("mira_hpc %s\n", provenance_code_version().c_str());
        for (const auto& [k, v] : provenance_libraries())
          if (k != "code") std::printf("  %-9s %s\n", (k + ":").c_str(), v.c_str());
      }
      return EXIT_DONE;
    }
    const Config& c = cli.config;
    log_set_level(c.run.log_level);
    ThreadPlan threads = threads_plan(c.run.threads, env.local_size);
    threads_apply(threads);
    print_banner(c, env, threads);
    if (c.dry_run) {
      print_dry_run(c, env, threads);
      if (c.command != Command::TRAIN) return EXIT_DONE;  // train adds its plan (data, model, graph)
    }
    if (c.run.fail_on_rank == env.rank)
      throw InternalError("forced failure for testing (run.fail_on_rank = " + std::to_string(env.rank) + ")");
    signals_install();
    return dispatch(c, env, threads);
  } catch (const CollectiveUserError& e) {
    if (env.rank == 0) std::fprintf(stderr, "mira_hpc: error: %s\n", e.what());
    return EXIT_USER;
  } catch (const UserError& e) {
    std::fprintf(stderr, "mira_hpc [rank %d]: error: %s\n", env.rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, EXIT_USER);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mira_hpc [rank %d on %s]: internal error: %s\n", env.rank, env.host.c_str(), e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, EXIT_INTERNAL);
  }
  return EXIT_INTERNAL;
}

}  // namespace mira
