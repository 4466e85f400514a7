// What train and pretrain build from the Config before any work: tokenizer, data options, the
// base model (preset or Hugging Face folder), the backend, and the run directory. Every step that
// can find a user error runs under mpi_agree, so all ranks stop together with one message.
#pragma once
#include <memory>
#include <string>

#include "app/config.h"
#include "backend/backend.h"
#include "data/federated_dataset.h"
#include "data/tokenizer.h"
#include "fed/client_state_store.h"
#include "model/gpt2_config.h"
#include "model/gpt2_weights.h"
#include "model/lora.h"
#include "model/optim.h"
#include "runtime/mpi_env.h"

namespace mira {

// c.data with the run-wide seed and client count filled in.
DataOptions setup_data_options(const Config& c);
std::unique_ptr<Tokenizer> setup_tokenizer(const DataOptions& d);
// The token ids of the data (data_vocab, collective): the tokenizer's, or for data.source =
// pretokenized the file's own vocab_size and eos_id (the pad id).
DataVocab setup_data_vocab(const DataOptions& d, const Tokenizer& tok);
// The base model: model.path (a Hugging Face GPT-2 folder) or model.preset sized for the tokenizer.
// Refuses data whose ids do not fit the model's vocabulary, naming where they come from: the
// tokenizer, or a pre-tokenised data.path (`ids`). The second form checks the tokenizer's ids
// (pretrain: it tokenises its own corpus, whatever data.source says).
Gpt2HostModel setup_base_model(const Config& c, const Tokenizer& tok, const DataVocab& ids);
Gpt2HostModel setup_base_model(const Config& c, const Tokenizer& tok);
// data.max_length fitted to the model's n_positions: a default longer than the model's context is
// lowered to it (logged); a value the user set is refused when it does not fit.
int setup_max_length(const Config& c, const Gpt2Config& model);
// The model module's LoRA and optimiser settings from [lora] and [optim].
LoraConfig setup_lora_config(const Config& c);
OptimConfig setup_optim_config(const Config& c);
// The compute backend named by run.backend, the same on every rank (collective). cuda: each rank
// binds a GPU (device_binding_gather: one per rank unless run.share_devices), creates the CUDA backend
// and runs the start-up check against the CPU backend at `model`'s sizes (backend/backend_check.h);
// any failure on any rank stops every rank with one message naming the rank, host and GPU. auto: the
// same, but a failure falls back to cpu on every rank with a log line saying why.
// placement (optional): where the federated loop keeps the client adapters: on the cuda backend
// this rank's device, whether ranks share GPUs, and the backend's stream (fed/client_state_store.h);
// device = -1 (host memory, MPI exchange) on the cpu backend.
std::unique_ptr<Backend> setup_backend(const Config& c, const Gpt2Config& model, AdapterPlacement* placement = nullptr);
// Prepares run.output (rank 0 creates it) and decides, from run.resume, whether this run starts
// fresh ("" returned) or resumes from a checkpoint (its path returned, same on every rank):
//   none   - fresh; a directory that already holds a run (marker file or checkpoints) is refused;
//   auto   - <run.output>/checkpoints/latest when it exists, else fresh (an earlier run's marker file
//            without any checkpoint is kept as <marker>.prev);
//   latest - <run.output>/checkpoints/latest, which must exist;
//   PATH   - that checkpoint file, or that directory's `latest`.
// Collective; a user error is agreed on every rank.
std::string setup_run_directory(const Config& c, const std::string& marker);
// Bytes as "12.3 MiB".
std::string format_bytes(double bytes);

}  // namespace mira
