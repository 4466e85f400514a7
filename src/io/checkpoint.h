// Checkpoint writer and reader: one parallel-HDF5 file per checkpoint, written and read
// collectively by all ranks of a communicator. Layout, dtypes and version rules are in
// docs/checkpoint-format.md; the HDF5 rules live in io/h5.h.
//
// Who passes what:
//   - CheckpointLayout: the shapes the config implies. Identical on every rank.
//   - CheckpointMeta and CheckpointGlobals: run-wide state; only rank 0's values are used (they are
//     broadcast), other ranks may pass empty structs.
//   - ClientSlices: per-client state, passed by the rank that owns the client. Every client
//     0..K-1 is owned by exactly one rank when writing; on reading, any rank may ask for any
//     clients (slices are addressed by client id, so the rank count may differ from the writer's).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mira {

inline constexpr const char* CHECKPOINT_FORMAT_NAME = "mira-hpc-checkpoint";
inline constexpr int64_t CHECKPOINT_FORMAT_VERSION = 1;

// One LoRA target module type; every transformer layer has one.
struct LoraModuleShape {
  std::string name;          // HDF5 group name under /adapters, e.g. "attn.c_attn" (no '/')
  std::string module_path;   // path inside a block for PEFT names, e.g. "attn.c_attn"; "" -> name
  int64_t layers = 0;        // L
  int64_t rank = 0;          // r
  int64_t in_features = 0;   // in
  int64_t out_features = 0;  // out
};

struct CheckpointLayout {
  int64_t clients = 0;                  // K
  std::vector<LoraModuleShape> modules;
  bool optimizer = false;               // Adam moments (+ step) per client are stored
  int64_t cursor_width = 0;             // int64 values per client in /data/cursor; 0 -> no /data/cursor
};

// Root attributes (besides format, format_version and clients, which the writer sets).
struct CheckpointMeta {
  int64_t round = 0;               // rounds completed: resume starts round `round`
  std::string algorithm;           // "mira" | "fedit" | "local"
  int64_t seed = 0;
  std::string config_text;         // full resolved config (INI text)
  std::string base_model_path;
  std::string base_model_sha256;   // 64 hex chars (io/sha256.h), or "" when not hashed
  std::string provenance;          // code version, compiler, MPI/HDF5/BLAS versions, ranks, threads, hosts
};

// A named [rows, cols] float64 table under /metrics (e.g. train_loss [rounds, K]).
struct MetricTable {
  std::string name;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> values;  // (rows, cols)
};

struct CheckpointGlobals {
  std::vector<double> graph_weights;   // (K, K)
  int64_t sampled_per_round = 0;       // m
  std::vector<int64_t> sampling;       // (rounds, m): client ids sampled in each completed round
  std::vector<uint64_t> rng_counters;  // (n)
  std::vector<MetricTable> metrics;
};

// One client's state. Vectors indexed [module] follow CheckpointLayout::modules.
struct ClientSlices {
  int64_t client = -1;
  std::vector<std::vector<float>> lora_A;        // [module] (L, r, in)
  std::vector<std::vector<float>> lora_B;        // [module] (L, out, r)
  // Only with layout.optimizer:
  std::vector<std::vector<float>> lora_A_exp_avg, lora_A_exp_avg_sq;  // [module] (L, r, in)
  std::vector<std::vector<float>> lora_B_exp_avg, lora_B_exp_avg_sq;  // [module] (L, out, r)
  int64_t optimizer_step = 0;
  std::vector<int64_t> cursor;                   // (cursor_width)
};

// Collective. The layout a checkpoint was written with, read from the file itself (for tools that
// open a checkpoint without a config: inspect, export): K from the root attribute `clients`, one
// module per /adapters/<name> group (in name order) with its `module_path` attribute and the shapes
// of lora_A [K, L, r, in] and lora_B [K, L, out, r], optimiser state when /optimizer exists, the
// cursor width from /data/cursor [K, W]. Rank 0 reads, every rank gets the same result. Only the
// structure is read here; pass the result to CheckpointReader, which validates everything else.
// Throws UserError on EVERY rank ("checkpoint <path> refused, not loaded: <why>") for a missing,
// non-HDF5, foreign, newer-version or inconsistent file.
CheckpointLayout checkpoint_read_layout(MPI_Comm comm, const std::string& path);

class CheckpointWriter {
 public:
  // Collective. Rank 0 creates `dir` if needed; then every rank checks that it may create files
  // there (UserError on every rank naming `dir` and the OS reason otherwise).
  CheckpointWriter(MPI_Comm comm, std::string dir, CheckpointLayout layout);
  // Collective. Writes <dir>/ckpt-<meta.round>.h5.tmp, closes it on all ranks, then rank 0 fsyncs,
  // renames it to ckpt-<round>.h5, fsyncs the directory and points `latest` at it. Returns the
  // final path on every rank. `owned`: this rank's clients (any order). Throws the same error on
  // every rank when the input is inconsistent (InternalError) or a file step fails.
  std::string write(const CheckpointMeta& meta, const CheckpointGlobals& globals,
                    const std::vector<ClientSlices>& owned);
  // Collective: rank 0 removes stale ckpt-*.h5.tmp files; returns the count on every rank.
  int clean_stale();
  // Collective: rank 0 keeps the newest `keep` checkpoints; returns the count deleted.
  int keep_last(int keep);
  const std::string& dir() const { return dir_; }

 private:
  MPI_Comm comm_;
  std::string dir_;
  CheckpointLayout layout_;
};

class CheckpointReader {
 public:
  // Collective. `path`: a checkpoint file, or a directory whose `latest` is used. Rank 0 validates
  // the file first (HDF5 metadata checksums, format name and version, every expected dataset's
  // shape and type against `expected`), then all ranks open it. Throws UserError on EVERY rank
  // when refused ("checkpoint <path> refused, not loaded: <why>").
  CheckpointReader(MPI_Comm comm, const std::string& path, const CheckpointLayout& expected);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const std::string& path() const { return path_; }
  const CheckpointMeta& meta() const { return meta_; }
  const CheckpointLayout& layout() const { return layout_; }
  // Collective: every rank gets all globals; CRC32C verified.
  CheckpointGlobals read_globals();
  // Collective: each rank passes the clients it wants (distinct ids in [0, K); may be empty) and
  // gets them back in that order; every slice's CRC32C is verified, a mismatch anywhere refuses
  // the checkpoint on all ranks.
  std::vector<ClientSlices> read_clients(const std::vector<int64_t>& clients);
  // Collective: closes the file now. The destructor does the same; either must run before
  // MPI_Finalize (parallel HDF5 shuts down inside it and a later close fails).
  void close();

 private:
  struct Impl;
  MPI_Comm comm_;
  std::string path_;
  CheckpointLayout layout_;
  CheckpointMeta meta_;
  std::vector<MetricTable> metric_shapes_;  // names and shapes found by validation
  int64_t sampling_rounds_ = 0;
  int64_t sampled_per_round_ = 0;
  int64_t rng_count_ = 0;
  std::unique_ptr<Impl> impl_;  // the collectively opened file
};

}  // namespace mira
