// The one validated configuration of a run. Filled only by config_load (INI file + command line,
// src/app/config_load.cpp) from the key table in config_schema.cpp; no other code parses strings.
// Every field's default, range and help text live in that table (`mira_hpc --help` prints it).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/options.h"
#include "fed/aggregate.h"
#include "fed/graph.h"
#include "model/optim.h"
#include "runtime/log.h"

namespace mira {

// Algorithm, NeighbourMode (fed/aggregate.h), GraphSpec (fed/graph.h), OptimKind (model/optim.h)
// and DataOptions (data/options.h) are the modules' own types; Config holds them directly.
enum class Command { TRAIN, PRETRAIN, INSPECT, EXPORT };
enum class BackendKind { AUTO, CPU, CUDA };
enum class LocalMode { EPOCHS, STEPS };
// model.base_precision: storage of the frozen base weights (app/base_precision.h resolves AUTO).
enum class BasePrecision { AUTO, FP32, BF16 };

struct Config {
  Command command = Command::TRAIN;
  bool dry_run = false;
  std::string config_path;   // "" when no --config was given
  std::string config_text;   // the INI file's text as read (for provenance)

  struct Run {
    Algorithm algorithm;
    int rounds;
    uint64_t seed;
    int clients;             // 0 = the dataset's natural count, else the rank count
    std::string output;      // run directory (metrics, checkpoints)
    BackendKind backend;
    bool share_devices;      // cuda: several ranks of a host may use one GPU
    int threads;             // per rank; 0 = automatic (threads.h)
    LogLevel log_level;
    int fail_on_rank;        // test-only: this rank throws an internal error at start (-1 = off)
    std::string resume;      // none | auto | latest | PATH (a checkpoint file or directory)
    int wait_for_signal_after_round;  // test-only: wait for a stop signal after this round (-1 = off)
  } run;
  struct Model {
    std::string preset;      // used when path is empty
    std::string path;        // Hugging Face model folder (config.json + model.safetensors)
    BasePrecision base_precision;  // frozen base weights: auto | fp32 | bf16
  } model;
  struct Lora {
    int rank;
    double alpha;
    double dropout;
    std::vector<std::string> targets;  // PEFT-style suffixes: c_attn, c_proj, attn.c_proj, mlp.c_fc, mlp.c_proj
  } lora;
  struct Optim {
    OptimKind kind;
    double lr;
    double weight_decay;
    double grad_clip;        // max global grad norm; 0 = off
    double beta1, beta2, eps;
    bool keep_state;         // Adam moments persist per client across rounds (false: authors' code)
  } optim;
  struct Train {
    LocalMode mode;
    int local_epochs;        // R in epochs mode
    int local_steps;         // R in steps mode
    int batch_size;
  } train;
  DataOptions data;          // data.* keys (seed and num_clients come from run.seed / run.clients)
  struct Federation {
    double sample_fraction;  // f: m = max(1, round(f*K)) clients per round
    GraphSpec graph;
    uint64_t graph_seed;
    bool reproducible;       // FedIT: gather + ordered sum (true) or ncclAllReduce (false, cuda + NCCL only)
  } federation;
  struct Mira {
    double lambda;
    double eta;              // -1: derived (lr * R in epochs mode, lr * steps in steps mode), else >= 0
    NeighbourMode neighbours;
  } mira;
  struct Pretrain {
    int steps;               // optimiser steps of full fine-tuning
    double lr;
    std::string out;         // HF folder to write; "" = <run.output>/base
  } pretrain;
  struct Checkpoint {
    int every;               // write a checkpoint every N rounds (and after the last, and on a stop)
    int keep;                // keep the newest N checkpoint files
  } checkpoint;
  struct Eval {
    int every;               // evaluate every N rounds (and after the last)
    bool global_matrix;      // also every adapter on every client's test split (K x K evaluations)
  } eval;

  // inspect / export (command-line only): the checkpoint (file, or directory with `latest`), the
  // client to export and the output folder.
  struct Tool {
    std::string checkpoint;
    int client = -1;
    std::string out;
  } tool;

  // Where each key's value came from: "file.ini:12", "command line" or "default".
  std::map<std::string, std::string> origin;
};

// Names used in messages and the resolved-config dump.
const char* command_name(Command c);
std::string graph_spec_text(const GraphSpec& g);

}  // namespace mira
