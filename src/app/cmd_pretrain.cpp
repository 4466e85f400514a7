// `mira_hpc pretrain`: full fine-tuning of a small base model on the generated generic corpus
// (data/synthetic.h: English-like documents, disjoint from the instruction tasks), saved as a
// Hugging Face GPT-2 folder that `train` then uses as its frozen base (model.path). This is how the
// demo gets a base model that knows text but not the tasks. It trains on rank 0 (a tiny model does
// not need more); other ranks wait. 5% of the documents are held out for a validation loss.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>

#include "app/base_precision.h"
#include "app/commands.h"
#include "app/run_setup.h"
#include "data/batch.h"
#include "data/synthetic.h"
#include "fed/federated_run.h"
#include "io/fs_atomic.h"
#include "model/gpt2_model.h"
#include "runtime/agree.h"
#include "runtime/check_mpi.h"
#include "runtime/log.h"
#include "runtime/progress.h"
#include "runtime/signals.h"

namespace mira {
namespace {

double validation_loss(Gpt2Model& model, const std::vector<TokenizedExample>& val, int batch, int32_t pad) {
  double sum = 0, n = 0;
  for (int64_t i = 0; i < batch_count(static_cast<int64_t>(val.size()), batch); ++i) {
    LossSum ls = model.eval_loss(batch_view(batch_fixed(val, i, batch, 0, pad)));
    sum += ls.sum;
    n += ls.tokens;
  }
  return n > 0 ? sum / n : NAN;
}

}  // namespace

int command_pretrain(const AppContext& ctx) {
  const Config& c = ctx.config;
  const DataOptions dopt = setup_data_options(c);
  std::unique_ptr<Tokenizer> tok = setup_tokenizer(dopt);
  const std::string out = c.pretrain.out.empty() ? c.run.output + "/base" : c.pretrain.out;
  mpi_root_produce(MPI_COMM_WORLD, 0, [&] {
    if (fs_exists(out + "/model.safetensors"))
      throw UserError("pretrain.out: '" + out + "' already holds a model (model.safetensors); choose another "
                      "pretrain.out or remove it (nothing was changed)");
    return std::string();
  });
  Gpt2HostModel host = setup_base_model(c, *tok);
  const int max_length = setup_max_length(c, host.config);
  if (c.dry_run) return 0;
  if (ctx.env.rank != 0) {
    log_rank(LogLevel::DEBUG, "pretrain runs on rank 0; waiting");
    MIRA_CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
    return 0;
  }
  if (ctx.env.size > 1) log_info("pretrain: runs on rank 0 only (a small model); the other ranks wait");

  ClientCounts counts;
  std::vector<TokenizedExample> all =
      synth_pretrain_examples(c.run.seed, c.data.pretrain_documents, *tok, max_length, &counts);
  const size_t n_val = std::max<size_t>(1, all.size() / 20);
  std::vector<TokenizedExample> val(all.end() - static_cast<long>(n_val), all.end());
  all.resize(all.size() - n_val);
  log_info("pretrain: %zu training and %zu validation documents, %lld truncated; %d steps of batch %d, lr %g",
           all.size(), val.size(), (long long)counts.truncated, c.pretrain.steps, c.train.batch_size, c.pretrain.lr);

  std::unique_ptr<Backend> backend = setup_backend(c, host.config);
  setup_base_precision(c, backend->name(), /*full_finetune=*/true);  // fp32: the base weights are trained
  LoraConfig no_lora;
  no_lora.target_modules.clear();  // full fine-tuning: no adapter
  OptimConfig opt = setup_optim_config(c);  // [optim] betas, eps, decay, clip; AdamW at pretrain.lr
  opt.kind = OptimKind::ADAMW;
  opt.lr = c.pretrain.lr;
  Gpt2Model model(*backend, host, no_lora, opt, c.run.seed);
  log_info("pretrain: validation loss before: %.4f", validation_loss(model, val, c.train.batch_size, tok->pad_id()));

  ClientBatcher batcher(&all, c.run.seed, 0, tok->pad_id());
  Progress progress("step", c.pretrain.steps);
  double recent = 0;
  int recent_n = 0;
  for (int step = 0; step < c.pretrain.steps; ++step) {
    if (signals_pending()) {
      log_warn("pretrain: stopped by %s at step %d; nothing was saved", signals_name(signals_pending()), step);
      MIRA_CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
      return 3;
    }
    Batch b = batcher.next_batch_full(c.train.batch_size, 0);
    recent += model.full_train_step(batch_view(b), StepContext{0, step});
    ++recent_n;
    if ((step + 1) % 50 == 0 || step + 1 == c.pretrain.steps) {
      char detail[64];
      std::snprintf(detail, sizeof detail, "train loss %.4f", recent / recent_n);
      progress.update(step + 1, detail);
      recent = 0, recent_n = 0;
    }
  }
  const double vloss = validation_loss(model, val, c.train.batch_size, tok->pad_id());
  progress.finish("validation loss " + std::to_string(vloss));

  // Written to a temporary folder and renamed: an interrupted save leaves no half-written model.
  const std::string tmp = out + ".tmp";
  fs_make_dirs(tmp);
  gpt2_save_hf(tmp, model.base_model_host());
  fs_rename_durable(tmp, out);
  log_info("pretrain: saved %s (validation loss %.4f); use it with --model.path %s", out.c_str(), vloss, out.c_str());
  MIRA_CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
  return 0;
}

}  // namespace mira
