// `mira_hpc train`: federated multi-task LoRA fine-tuning. Builds data, model, graph and exchange
// from the Config (every user error agreed across ranks before work starts), prints the plan
// (--dry-run stops there), runs the rounds (fed/federated_run.h) and prints a per-client summary.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "app/base_precision.h"
#include "app/commands.h"
#include "app/config_schema.h"
#include "app/resume_config.h"
#include "app/run_setup.h"
#include "data/federated_dataset.h"
#include "data/ni.h"
#include "fed/assignment.h"
#include "fed/federated_run.h"
#include "fed/graph.h"
#include "fed/run_checkpoint.h"
#include "fed/sampler.h"
#include "io/checkpoint_dir.h"
#include "io/fs_atomic.h"
#include "io/sha256.h"
#include "model/gpt2_model.h"
#include "runtime/agree.h"
#include "runtime/log.h"
#include "runtime/provenance.h"
#include "runtime/signals.h"

namespace mira {
namespace {

// eta of eq. (8) when mira.eta is not given: the authors' lr * R (R local epochs); in steps mode R
// counts optimiser steps, so eta = lr * local_steps.
double derived_eta(const Config& c) {
  if (c.mira.eta >= 0) return c.mira.eta;
  return c.optim.lr * (c.train.mode == LocalMode::STEPS ? c.train.local_steps : c.train.local_epochs);
}

// Rough memory of one rank: frozen weights, adapters held (owned + visiting) with gradient and Adam
// moments, and activations of one step (per layer about 16 C + 2 H T floats per token).
double memory_estimate(const Gpt2Config& m, int64_t P, int owned, int max_batch, int max_len) {
  const double w = 4.0 * static_cast<double>(gpt2_param_count(m));
  const double adapters = 4.0 * static_cast<double>(P) * (owned + 4);
  const double tokens = static_cast<double>(max_batch) * max_len;
  const double acts = 4.0 * tokens * m.n_layer * (16.0 * m.n_embd + 2.0 * m.n_head * max_len);
  return w + adapters + acts;
}

void print_plan(const Config& c, const MpiEnv& env, const FederatedDataset& data, const Graph& graph,
                const GraphNumerics& num, const FederatedRunOptions& o, const Gpt2HostModel& host, int64_t P,
                int max_length) {
  if (env.rank != 0) return;
  std::printf("clients K: %d (%s)\n", o.clients,
              c.run.clients > 0 ? "run.clients" : "the dataset's natural count");
  std::printf("sampled per round m: %d of %d (federation.sample_fraction = %g)\n", o.sampled_per_round, o.clients,
              c.federation.sample_fraction);
  int min_c = o.clients, max_c = 0;
  for (int r = 0; r < env.size; ++r) {
    int n = assignment_first_client(o.clients, env.size, r + 1) - assignment_first_client(o.clients, env.size, r);
    min_c = std::min(min_c, n), max_c = std::max(max_c, n);
  }
  std::printf("clients per rank: %d to %d owned; up to %d trained per round\n", min_c, max_c,
              (o.sampled_per_round + env.size - 1) / env.size);
  std::printf("model: %s (%lld layers, %lld heads, width %lld, vocab %lld, %lld parameters)\n",
              host.config.source.c_str(), (long long)host.config.n_layer, (long long)host.config.n_head,
              (long long)host.config.n_embd, (long long)host.config.vocab_size,
              (long long)gpt2_param_count(host.config));
  std::printf("adapter: %lld floats per client (%s; r = %d, alpha = %g)\n", (long long)P,
              format_bytes(4.0 * P).c_str(), c.lora.rank, c.lora.alpha);
  std::printf("memory per rank (estimate): %s\n",
              format_bytes(memory_estimate(host.config, P, max_c, c.train.batch_size, max_length)).c_str());
  std::printf("graph: %s, %lld edges\n", graph.description.c_str(), (long long)graph.edge_count());
  if (o.algorithm == Algorithm::MIRA) std::printf("eq. (8): %s\n", num.explanation.c_str());
  std::printf("data: %s\n", data_source_name(c.data.source));
  std::printf("%-6s %-28s %-22s %8s %8s\n", "client", "task", "family", "train", "test");
  for (int k = 0; k < data.num_clients(); ++k) {
    const ClientInfo& ci = data.client(k);
    std::printf("%-6d %-28s %-22s %8lld %8lld\n", k, ci.task.c_str(), data.family_name(ci.family).c_str(),
                (long long)ci.counts.train, (long long)ci.counts.test);
  }
  std::fflush(stdout);
}

// seconds: wall time of the rounds run by this process (a resumed run's earlier rounds excluded).
void print_summary(const FederatedDataset& data, const std::vector<RoundRecord>& recs, int64_t first_round,
                   double seconds, int64_t P, int64_t base_params) {
  const RoundRecord* last_eval = nullptr;
  int64_t tokens = 0, bytes = 0, tokens_here = 0;
  for (const auto& r : recs) {
    tokens += r.tokens;
    bytes += r.comm_bytes;
    if (r.round >= first_round) tokens_here += r.tokens;
    if (r.evaluated) last_eval = &r;
  }
  std::printf("\n%-6s %-28s %-22s %8s %8s %10s\n", "client", "task", "family", "train", "test", "test loss");
  for (int k = 0; k < data.num_clients(); ++k) {
    const ClientInfo& ci = data.client(k);
    double loss = last_eval ? last_eval->client_test_loss[k] : NAN;
    std::printf("%-6d %-28s %-22s %8lld %8lld %10.4f\n", k, ci.task.c_str(), data.family_name(ci.family).c_str(),
                (long long)ci.counts.train, (long long)ci.counts.test, loss);
  }
  std::printf("run: %zu rounds (%lld in this job), %lld loss tokens trained, %.1f s, %.0f loss tokens/s, "
              "exchange %s in all (%s per round)\n",
              recs.size(), (long long)(recs.size() - first_round), (long long)tokens, seconds,
              seconds > 0 ? tokens_here / seconds : 0.0,
              format_bytes(static_cast<double>(bytes)).c_str(),
              format_bytes(recs.empty() ? 0.0 : static_cast<double>(bytes) / recs.size()).c_str());
  if (last_eval) std::printf("mean test loss over clients (own adapters): %.4f\n", last_eval->test_loss);
  if (last_eval && !last_eval->client_global_loss.empty())
    std::printf("mean global loss (each adapter on every client's test split, eval.global_matrix): %.4f\n",
                last_eval->global_loss);
  // The paper's accounting (fp32): a sampled client uploads and downloads its adapter each round;
  // a client holds the frozen model, its trainable adapter and Adam's two moments.
  std::printf("paper accounting per client: communication %s per round (adapter up + down), memory %s "
              "(frozen model %s + adapter %s + Adam moments %s)\n",
              format_bytes(8.0 * P).c_str(), format_bytes(4.0 * base_params + 12.0 * P).c_str(),
              format_bytes(4.0 * base_params).c_str(), format_bytes(4.0 * P).c_str(), format_bytes(8.0 * P).c_str());
  std::fflush(stdout);
}

nlohmann::json metrics_header(const Config& c, const AppContext& ctx, const FederatedRunOptions& o,
                              const FederatedDataset& data, const Graph& graph) {
  nlohmann::json h;
  h["type"] = "header";
  h["command"] = "train";
  h["algorithm"] = fed_algorithm_name(o.algorithm);
  h["clients"] = o.clients;
  h["sampled_per_round"] = o.sampled_per_round;
  h["rounds"] = o.rounds;
  h["eta"] = o.eta;
  h["lambda"] = o.lambda;
  h["graph"] = graph.description;
  std::vector<std::string> tasks, families;
  for (int k = 0; k < o.clients; ++k) {
    tasks.push_back(data.client(k).task);
    families.push_back(data.family_name(data.client(k).family));
  }
  h["tasks"] = tasks;
  h["families"] = families;
  h["config"] = config_to_ini(c, false);
  h["provenance"] = provenance_text(provenance_run(ctx.env, ctx.threads));
  return h;
}

// Rank 0: a fresh run starts metrics.jsonl with its header; a resumed run keeps the header and the
// records of the rounds the checkpoint holds (later ones were abandoned) and notes the resume.
void metrics_prepare(const std::string& path, int64_t rounds_done, const std::string& resumed_from,
                     const std::function<nlohmann::json()>& header) {
  std::vector<std::string> keep;
  if (!resumed_from.empty()) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;  // a line cut short by a kill
      if (j.value("type", "") != "round" || j.value("round", int64_t(0)) <= rounds_done) keep.push_back(line);
    }
  }
  if (keep.empty()) keep.push_back(header().dump());
  if (!resumed_from.empty()) {
    nlohmann::json r;
    r["type"] = "resume";
    r["rounds_done"] = rounds_done;
    r["checkpoint"] = resumed_from;
    keep.push_back(r.dump());
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : keep) out << l << "\n";
    if (!out) throw InternalError("cannot write metrics file '" + tmp + "'");
  }
  fs_rename_durable(tmp, path);
}

// `path` made absolute and normalised ("models/x/" -> "/work/models/x").
std::string absolute_path(const std::string& path) {
  std::filesystem::path p = std::filesystem::absolute(path).lexically_normal();
  if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();  // a trailing '/'
  return p.string();
}

// Resume: the checkpoint's configuration against this run's (app/resume_config.h). Data paths that
// differ are warned about (rank 0); keys that change the results refuse the checkpoint.
std::string resume_config_check(const std::string& stored, const std::string& current) {
  ResumeConfigComparison cmp;
  try {
    cmp = resume_config_compare(stored, current);
  } catch (const UserError& e) {
    return std::string("its stored configuration does not parse: ") + e.what();
  }
  for (const auto& d : cmp.warned)
    log_warn("resume: %s = '%s' in the checkpoint, '%s' now: taken to be the same data moved (its content is not "
             "checked; other data would make the rounds after the resume differ from an uninterrupted run)",
             d.key.c_str(), d.stored.c_str(), d.now.c_str());
  return cmp.refused.empty() ? "" : resume_config_refusal(cmp.refused);
}

}  // namespace

int command_train(const AppContext& ctx) {
  const Config& c = ctx.config;
  const MpiEnv& env = ctx.env;
  DataOptions dopt = setup_data_options(c);
  std::unique_ptr<Tokenizer> tok = setup_tokenizer(dopt);
  // The data's ids (pre-tokenised: the file's own vocabulary and EOS) checked against the model here,
  // before any work (also --dry-run), not when a batch first reaches the model.
  const DataVocab ids = setup_data_vocab(dopt, *tok);
  Gpt2HostModel host = setup_base_model(c, *tok, ids);
  dopt.max_length = setup_max_length(c, host.config);
  NiManifest manifest;
  if (dopt.source == DataSource::NI) manifest = ni_manifest_broadcast(dopt, MPI_COMM_WORLD);
  const NiManifest* mp = dopt.source == DataSource::NI ? &manifest : nullptr;

  // Client count from the metadata (no examples loaded), then the run's shape.
  int K = 0;
  mpi_agree(MPI_COMM_WORLD, [&] { K = FederatedDataset(dopt, *tok, {}, mp).num_clients(); });
  FederatedRunOptions o;
  o.algorithm = c.run.algorithm;
  o.rounds = c.run.rounds;
  o.seed = c.run.seed;
  o.clients = K;
  mpi_agree(MPI_COMM_WORLD, [&] { o.sampled_per_round = sampler_count(K, c.federation.sample_fraction); });
  o.neighbours = c.mira.neighbours;
  o.eta = derived_eta(c);
  o.lambda = c.mira.lambda;
  o.steps_mode = c.train.mode == LocalMode::STEPS;
  o.local_epochs = c.train.local_epochs;
  o.local_steps = c.train.local_steps;
  o.batch_size = c.train.batch_size;
  o.keep_optimizer = c.optim.keep_state;
  o.eval_every = c.eval.every;
  o.global_matrix = c.eval.global_matrix;
  o.reproducible = c.federation.reproducible;

  std::unique_ptr<FederatedDataset> data;
  const std::vector<int> needed = FederatedRun::clients_needed(o, env.size, env.rank);
  mpi_agree(MPI_COMM_WORLD, [&] {
    data = std::make_unique<FederatedDataset>(dopt, *tok, needed, mp);
    for (int k : needed)
      if (data->client(k).counts.train < 1)
        throw UserError("data: client " + std::to_string(k) + " (" + data->client(k).task +
                        ") has no training examples after filtering");
  });
  data->log_counts(MPI_COMM_WORLD);  // collective: every rank calls it

  Graph graph;
  GraphNumerics num;
  mpi_agree(MPI_COMM_WORLD, [&] {
    GraphInputs in;
    in.K = K;
    in.seed = c.federation.graph_seed;
    for (int k = 0; k < K; ++k) in.family.push_back(data->client(k).family);
    std::vector<float> sim = data->family_similarity();
    in.similarity.assign(sim.begin(), sim.end());
    graph = graph_build(c.federation.graph, in, "federation.graph");
    num = graph_check_numerics(graph, o.eta * o.lambda, o.sampled_per_round);
    if (o.algorithm == Algorithm::MIRA && num.may_diverge) {
      char step[128];  // %g: std::to_string's %f would print mira.lambda = 1e300 with 300 digits
      std::snprintf(step, sizeof step, "eta * lambda = %g times the largest Laplacian eigenvalue %g", o.eta * o.lambda,
                    num.laplacian_max);
      throw UserError(std::string("mira: ") + step + " exceeds 2, so eq. (8) can diverge; lower mira.lambda or " +
                      "mira.eta (" + num.explanation + ")");
    }
  });
  if (o.algorithm == Algorithm::MIRA) {
    log_info("eq. (8): eta = %g%s, lambda = %g: %s", o.eta, c.mira.eta < 0 ? " (lr * R)" : "", o.lambda,
             num.explanation.c_str());
    if (num.overshoots)
      log_warn("eq. (8) overshoots for client %d: eta * lambda * d_k = %.3f > 1 (it moves past its neighbours' mean)",
               num.max_degree_client, num.max_pull);
  }

  std::unique_ptr<Backend> backend = setup_backend(c, host.config, &o.placement);  // GPU: device-resident adapters
  Gpt2Model model(*backend, host, setup_lora_config(c), setup_optim_config(c), c.run.seed);
  const WeightPrecision base_precision = setup_base_precision(c, backend->name(), /*full_finetune=*/false);
  model.set_base_precision(base_precision);
  log_info("model.base_precision: %s (frozen base weights%s)", weight_precision_name(base_precision),
           base_precision == WeightPrecision::BF16 ? " in bf16, base GEMMs with bf16 operands and fp32 accumulation"
                                                   : " in fp32");
  // What computed the numbers: part of the provenance (checkpoints, metrics header) so a resume on
  // another backend or precision is noticed (run_checkpoint_restore warns).
  const std::string compute_line = std::string(kProvenanceComputeKey) + backend->name() + ", base weights " +
                                   weight_precision_name(base_precision) + "\n";
  if (c.dry_run) {
    print_plan(c, env, *data, graph, num, o, host, model.adapter_size(), dopt.max_length);
    return 0;
  }

  const std::string resume_from = setup_run_directory(c, "metrics.jsonl");
  o.metrics_path = c.run.output + "/metrics.jsonl";
  o.csv_path = c.run.output + "/metrics.csv";
  for (int k = 0; k < K; ++k) {
    o.client_task.push_back(data->client(k).task);
    o.client_family.push_back(data->family_name(data->client(k).family));
  }
  o.wait_for_signal_after_round = c.run.wait_for_signal_after_round;
  const std::string ckdir = c.run.output + "/checkpoints";
  // Every rank checks that it can create files in ckdir (MPI-IO opens them from every rank): an
  // unwritable directory is refused now, not found by HDF5 after the first round's work.
  std::unique_ptr<CheckpointWriter> writer_ptr;
  mpi_agree(MPI_COMM_WORLD, [&] {
    writer_ptr = std::make_unique<CheckpointWriter>(MPI_COMM_WORLD, ckdir,
                                                    run_checkpoint_layout(model.adapter_layout(), K, o.keep_optimizer));
  });
  CheckpointWriter& writer = *writer_ptr;
  const int stale = writer.clean_stale();
  if (stale > 0) log_warn("checkpoint: removed %d unfinished checkpoint file(s) (*.h5.tmp) in %s", stale, ckdir.c_str());

  CheckpointMeta meta;
  meta.algorithm = fed_algorithm_name(o.algorithm);
  meta.seed = static_cast<int64_t>(o.seed);
  meta.config_text = config_to_ini(c, false);
  // Absolute and normalised, so that `inspect` and an exported adapter's base_model_name_or_path name
  // the folder from any working directory (a resume compares base models by their SHA-256, so
  // checkpoints that store a relative path still resume).
  meta.base_model_path = c.model.path.empty() ? "preset:" + c.model.preset : absolute_path(c.model.path);
  if (!c.model.path.empty())  // rank 0 hashes the weights file once; every rank gets the digest
    meta.base_model_sha256 = mpi_root_produce(MPI_COMM_WORLD, 0, [&] {
      return sha256_file_hex(c.model.path + "/model.safetensors");
    });
  meta.provenance = provenance_text(provenance_run(env, ctx.threads)) + compute_line;

  FederatedRun run(o, MPI_COMM_WORLD, model, *data, graph, ids.pad_id);
  if (!resume_from.empty()) {
    int64_t done = 0;
    mpi_agree(MPI_COMM_WORLD, [&] {
      done = run_checkpoint_restore(MPI_COMM_WORLD, resume_from, run, model.adapter_layout(), graph,
                                    fed_algorithm_name(o.algorithm), o.seed, meta, [&](const std::string& stored) {
                                      return resume_config_check(stored, meta.config_text);
                                    });
    });
    log_info("resume: %s holds %lld completed round(s); continuing at round %lld", resume_from.c_str(),
             (long long)done, (long long)done + 1);
  }
  if (env.rank == 0) metrics_prepare(o.metrics_path, run.rounds_done(), resume_from, [&] {
      nlohmann::json h = metrics_header(c, ctx, o, *data, graph);
      h["provenance"] = h["provenance"].get<std::string>() + compute_line;
      return h;
    });
  log_info("train: %s, K = %d clients on %d rank(s), m = %d per round, rounds %lld..%d, metrics in %s",
           fed_algorithm_name(o.algorithm), K, env.size, o.sampled_per_round, (long long)run.rounds_done() + 1,
           o.rounds, o.metrics_path.c_str());

  // The checkpoint file that holds the state after `last_written` rounds: the one resumed from, then
  // each one written here.
  int64_t last_written = run.rounds_done();
  std::string last_path = resume_from;
  auto save = [&](int64_t done) {
    const std::string path = run_checkpoint_write(writer, run, model.adapter_layout(), graph, meta);
    writer.keep_last(c.checkpoint.keep);
    last_written = done;
    last_path = path;
    log_debug("checkpoint: %s", path.c_str());
    return path;
  };
  const int64_t first_round = run.rounds_done();
  const double start = MPI_Wtime();
  RunResult result = run.run([&](int64_t done) {
    if (done % c.checkpoint.every == 0 || done == o.rounds) save(done);
  });
  const double seconds = MPI_Wtime() - start;
  if (result.stopped) {
    if (result.rounds_done == 0) {  // a fresh run stopped in round 1: nothing to save
      log_warn("stopped by %s before round 1 completed; no checkpoint written (nothing to save); resubmit with "
               "--resume auto, which starts afresh (exit code 3)", signals_name(result.signal));
      return 3;
    }
    // `--resume auto` continues from ckdir/latest: the stopped state's file is reused only when
    // `latest` is that very file. After `--resume PATH` from another directory (or an older file of
    // this one) it is not, and the state is written here. Rank 0 looks; save() is collective, so every
    // rank follows its answer.
    std::string path = mpi_root_produce(MPI_COMM_WORLD, 0, [&]() -> std::string {
      std::error_code ec;
      const bool reuse = last_written == result.rounds_done && !last_path.empty() &&
                         std::filesystem::equivalent(last_path, ckdir + "/" + CHECKPOINT_LATEST, ec);
      return reuse ? ckdir + "/" + checkpoint_file_name(result.rounds_done) : "";
    });
    if (path.empty()) path = save(result.rounds_done);
    log_warn("stopped by %s after %lld completed round(s); checkpoint %s; resubmit with --resume auto (exit code 3)",
             signals_name(result.signal), (long long)result.rounds_done, path.c_str());
    return 3;
  }
  if (env.rank == 0) print_summary(*data, run.records(), first_round, seconds, model.adapter_size(),
                                   gpt2_param_count(host.config));
  return 0;
}

}  // namespace mira
