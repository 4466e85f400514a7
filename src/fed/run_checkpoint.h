// Checkpoints of a federated run: maps the run's state (owned adapters as flat buffers, sampling
// history, per-round records, graph) onto the HDF5 checkpoint format (io/checkpoint.h) and back.
// What is stored and why (docs/checkpoint-format.md):
//   - adapters: every client's LoRA A and B per module type, /adapters/<module>/lora_A [K, L, r, in];
//   - optimiser moments only with optim.keep_state (the authors' Adam is re-created every round, so
//     a round boundary then holds none); the Adam step count is stored too (it is derived anyway);
//   - no data cursors: a client's cursor and dropout step are functions of how often it was sampled
//     before (the sampling history is stored and checked on resume);
//   - metrics: [rounds, K] train and test losses, [rounds, 1] tokens, seconds, comm_bytes, active
//     edges (the eval.global_matrix losses are not stored: metrics.jsonl has them).
#pragma once
#include <mpi.h>

#include <functional>
#include <string>

#include "fed/federated_run.h"
#include "io/checkpoint.h"
#include "model/lora.h"

namespace mira {

CheckpointLayout run_checkpoint_layout(const AdapterLayout& adapter, int64_t K, bool optimizer);

// Collective. Writes the state after run.rounds_done() rounds through `writer`; returns the path.
std::string run_checkpoint_write(CheckpointWriter& writer, const FederatedRun& run, const AdapterLayout& adapter,
                                 const Graph& graph, CheckpointMeta meta);

// The provenance line that names the backend and base-weight precision ("compute: cuda, base
// weights bf16"): appended by the train command to the checkpoint and metrics provenance.
inline constexpr const char* kProvenanceComputeKey = "compute: ";

// Collective. Loads `path` (a checkpoint or a directory with `latest`) into `run`: checks that the
// run's shape (K, modules, algorithm, seed, base model, graph, sampling history) matches, then
// restores the owned adapters and the records. `base` holds this run's base_model_path and
// base_model_sha256 (as the writer stores them) and its provenance: when both provenances have a
// compute line and they differ (e.g. written on cuda in bf16, resumed on the CPU), a warning says the
// continuation is not bitwise an uninterrupted run. `config_check`, when given, gets the stored
// configuration text after those checks and returns "" when it fits, else why not (the caller knows
// which keys may change: app/resume_config.h); it must decide alike on every rank. Returns the rounds
// done. UserError on every rank otherwise.
using ResumeConfigCheck = std::function<std::string(const std::string& stored_config)>;
int64_t run_checkpoint_restore(MPI_Comm comm, const std::string& path, FederatedRun& run,
                               const AdapterLayout& adapter, const Graph& graph, const std::string& algorithm,
                               uint64_t seed, const CheckpointMeta& base, const ResumeConfigCheck& config_check = {});

}  // namespace mira
