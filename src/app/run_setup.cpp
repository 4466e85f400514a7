// Start-up steps shared by train and pretrain (see run_setup.h).
#include "app/run_setup.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>

#include "backend/backend_check.h"
#include "backend/backend_cuda.h"
#include "io/checkpoint_dir.h"
#include "io/fs_atomic.h"
#include "model/gpt2_config.h"
#include "runtime/agree.h"
#include "runtime/device_binding.h"
#include "runtime/devices.h"
#include "runtime/log.h"

namespace mira {

DataOptions setup_data_options(const Config& c) {
  DataOptions d = c.data;
  d.seed = c.run.seed;
  d.num_clients = c.run.clients;
  return d;
}

std::unique_ptr<Tokenizer> setup_tokenizer(const DataOptions& d) {
  std::unique_ptr<Tokenizer> tok;
  mpi_agree(MPI_COMM_WORLD, [&] { tok = tokenizer_create(d); });
  return tok;
}

DataVocab setup_data_vocab(const DataOptions& d, const Tokenizer& tok) {
  DataVocab v;
  mpi_agree(MPI_COMM_WORLD, [&] { v = data_vocab(d, tok); });
  return v;
}

Gpt2HostModel setup_base_model(const Config& c, const Tokenizer& tok) {
  DataVocab ids;
  ids.vocab_size = tok.vocab_size();
  ids.pad_id = tok.pad_id();
  return setup_base_model(c, tok, ids);
}

Gpt2HostModel setup_base_model(const Config& c, const Tokenizer& tok, const DataVocab& ids) {
  Gpt2HostModel host;
  mpi_agree(MPI_COMM_WORLD, [&] {
    if (c.model.path.empty()) {
      host = gpt2_init_preset(gpt2_config_preset(c.model.preset, tok.vocab_size()), c.run.seed);
    } else {
      host = gpt2_load_hf(c.model.path);
    }
    if (ids.vocab_size <= host.config.vocab_size) return;
    const std::string model_has =
        (c.model.path.empty() ? "model.preset " + c.model.preset : "model.path '" + c.model.path + "'") +
        " has vocab_size " + std::to_string(host.config.vocab_size);
    if (!ids.pretokenized)  // only a model.path gets here: a preset is sized for the tokenizer
      throw UserError(model_has + " but the tokenizer (" + tok.name() + ") has " + std::to_string(tok.vocab_size()) +
                      " ids: use the model's own tokenizer (data.tokenizer = hf, data.tokenizer_path)");
    // Pre-tokenised ids: unchecked, they would stop the run when a batch holding one reaches the model.
    const std::string data_has =
        " but data.path = " + c.data.path + " (pre-tokenised) has vocab_size " + std::to_string(ids.vocab_size);
    if (c.model.path.empty())
      throw UserError(model_has + " (the tokenizer's, " + tok.name() + ")" + data_has +
                      ": size the preset with the data's tokenizer (data.tokenizer = hf, data.tokenizer_path) "
                      "or use model.path");
    throw UserError(model_has + data_has +
                    ": tokenise the data with the model's own tokenizer (scripts/prepare_data.py --tokenizer hf "
                    "--tokenizer-path FOLDER)");
  });
  return host;
}

LoraConfig setup_lora_config(const Config& c) {
  LoraConfig l;
  l.r = c.lora.rank;
  l.alpha = c.lora.alpha;
  l.dropout = c.lora.dropout;
  l.target_modules = c.lora.targets;
  return l;
}

OptimConfig setup_optim_config(const Config& c) {
  OptimConfig o;
  o.kind = c.optim.kind;
  o.lr = c.optim.lr;
  o.beta1 = c.optim.beta1;
  o.beta2 = c.optim.beta2;
  o.eps = c.optim.eps;
  o.weight_decay = c.optim.weight_decay;
  o.clip = c.optim.grad_clip;
  return o;
}

int setup_max_length(const Config& c, const Gpt2Config& model) {
  const int n = c.data.max_length;
  if (n <= model.n_positions) return n;
  if (c.origin.at("data.max_length") != "default")
    throw CollectiveUserError(c.origin.at("data.max_length") + ": data.max_length = " + std::to_string(n) +
                              " exceeds the model's n_positions = " + std::to_string(model.n_positions) + " (" +
                              model.source + "); allowed: at most " + std::to_string(model.n_positions));
  log_info("data.max_length: the default %d exceeds the model's n_positions %lld; examples are fitted to %lld tokens",
           n, (long long)model.n_positions, (long long)model.n_positions);
  return static_cast<int>(model.n_positions);
}

namespace {

// Runs `step` on every rank (mpi_agree); "" when it passed everywhere, else the agreed message of the
// lowest failing rank.
std::string agreed_failure(const std::function<void()>& step) {
  try {
    mpi_agree(MPI_COMM_WORLD, step);
    return "";
  } catch (const CollectiveUserError& e) {
    return e.what();
  }
}

std::string where_am_i() { return "rank " + std::to_string(runtime_rank()) + " on " + runtime_host(); }

#ifdef MIRA_HAVE_CUDA
// The CUDA backend on every rank, or "" with `why` set to the agreed reason it cannot be used. Each
// step is agreed, so every rank takes the same backend and no rank waits in a collective alone.
std::unique_ptr<Backend> try_cuda_backend(const Config& c, const Gpt2Config& model, std::string& why,
                                          AdapterPlacement* placement) {
  const DeviceReport dev = devices_query();
  why = agreed_failure([&] {
    if (dev.devices.empty()) throw UserError(where_am_i() + " sees no usable GPU: " + dev.unavailable);
  });
  if (!why.empty()) return nullptr;

  DeviceBindingPolicy policy;
  policy.allow_shared = c.run.share_devices;
  policy.allow_hint = "run.share_devices = true";
  const DeviceBinding bind =
      device_binding_gather(MPI_COMM_WORLD, device_binding_uuids(dev), device_binding_visible_env(), policy);
  why = agreed_failure([&] {
    if (!bind.refusal.empty()) throw UserError(bind.refusal);
  });
  if (!why.empty()) return nullptr;

  std::unique_ptr<Backend> be;
  BackendCheckReport rep;
  const GpuDevice& gpu = dev.devices.at(static_cast<size_t>(bind.device));
  why = agreed_failure([&] {
    try {
      be = backend_create_cuda(bind.device);
      BackendCheckShape shape;
      shape.c = model.n_embd;
      shape.nh = model.n_head;
      shape.vocab = model.vocab_size;
      std::unique_ptr<Backend> reference = backend_create_cpu();
      rep = backend_check(*be, *reference, shape);
    } catch (const InternalError& e) {
      throw UserError(where_am_i() + ", GPU " + std::to_string(bind.device) + " (" + gpu.name + "): " + e.what());
    }
    if (!rep.ok()) {
      // Every failing op a bf16 one (bf16 base weights, tensor-core attention): the fp32 mode avoids them.
      bool only_bf16 = true;
      for (const BackendCheckOp& o : rep.ops) only_bf16 = only_bf16 && (o.ok || o.op.find("bf16") != std::string::npos);
      throw UserError(where_am_i() + ", GPU " + std::to_string(bind.device) + " (" + gpu.name +
                      "): the CUDA backend failed its start-up check against the CPU backend: " + rep.failures() +
                      (only_bf16 ? " (only bf16-mode ops failed: model.base_precision = fp32 runs without them)" : "") +
                      " (please report this with `mira_hpc --version`)");
    }
  });
  if (!why.empty()) return nullptr;
  log_info("backend: cuda; rank 0 on GPU %d %s (%s; %s%s); start-up check: %d ops within %.0e of the CPU backend "
           "in %.2f s",
           bind.device, gpu.name.c_str(), bind.uuid.c_str(), bind.reason.c_str(), bind.any_shared ? "; GPUs shared" : "",
           rep.count_ok(), rep.tolerance, rep.seconds);
  if (placement) {
    placement->device = bind.device;
    placement->shared = bind.any_shared;
    placement->stream = backend_cuda_stream(*be);
  }
  return be;
}
#endif

}  // namespace

std::unique_ptr<Backend> setup_backend(const Config& c, const Gpt2Config& model, AdapterPlacement* placement) {
  if (placement) *placement = AdapterPlacement{};
  if (c.run.backend == BackendKind::CPU) return backend_create_cpu();
  const char* kind = c.run.backend == BackendKind::CUDA ? "cuda" : "auto";
  std::string why;
#ifdef MIRA_HAVE_CUDA
  if (std::unique_ptr<Backend> be = try_cuda_backend(c, model, why, placement)) return be;
#else
  (void)model;
  why = "this binary was built without the CUDA backend (nvcc not found or -DMIRA_CUDA=OFF)";
#endif
  if (c.run.backend == BackendKind::CUDA)
    throw CollectiveUserError("run.backend = cuda: " + why + "; use run.backend = cpu (or auto to fall back)");
  log_info("backend: cpu (run.backend = %s; %s)", kind, why.c_str());
  return backend_create_cpu();
}

static void make_dirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        throw UserError("run.output: cannot create directory '" + cur + "': " + std::strerror(errno));
    }
    if (i < path.size()) cur += path[i];
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw UserError("run.output: '" + path + "' is not a directory");
}

std::string setup_run_directory(const Config& c, const std::string& marker) {
  return mpi_root_produce(MPI_COMM_WORLD, 0, [&]() -> std::string {
    make_dirs(c.run.output);
    const std::string m = c.run.output + "/" + marker;
    const std::string ckdir = c.run.output + "/checkpoints";
    const bool has_marker = fs_exists(m);
    const bool has_latest = fs_exists(ckdir + "/" + CHECKPOINT_LATEST);
    const std::string& r = c.run.resume;
    if (r == "none") {
      if (has_marker || has_latest)
        throw UserError("run.output: '" + c.run.output + "' already holds a run (" +
                        (has_latest ? "checkpoints/latest" : marker) +
                        "); continue it with --resume auto, or choose another run.output (nothing was changed)");
      return "";
    }
    if (r == "auto") {
      if (has_latest) return checkpoint_resolve(ckdir);
      if (has_marker) {
        fs_rename_durable(m, m + ".prev");
        log_warn("run.resume = auto: no checkpoint in %s, starting fresh; the earlier %s is kept as %s.prev",
                 ckdir.c_str(), marker.c_str(), marker.c_str());
      }
      return "";
    }
    if (r == "latest") {
      if (!has_latest)
        throw UserError("run.resume = latest: no checkpoint in '" + ckdir + "' (use auto to start fresh when none)");
      return checkpoint_resolve(ckdir);
    }
    return checkpoint_resolve(r);
  });
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) bytes /= 1024.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

}  // namespace mira
