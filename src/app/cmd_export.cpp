// `mira_hpc export --checkpoint FILE --client K --out DIR`: one client's adapter from a checkpoint as
// a Hugging Face PEFT LoRA folder (io/peft_export.h): adapter_model.safetensors with PEFT's tensor
// names and shapes, adapter_config.json from the run's resolved config (the checkpoint's `config`
// attribute: lora.rank, lora.alpha, lora.dropout, lora.targets) and its base_model_path.
// Refused with exit code 2 and one line, before anything is written: a missing, corrupt or foreign
// checkpoint, a client outside [0, K), an --out that exists and is not an empty folder, a config
// that does not match the stored adapters. Runs on any number of ranks: all open the checkpoint
// collectively, rank 0 reads the client's slice and writes the folder, every rank agrees on errors.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "app/config_load.h"
#include "app/ini.h"
#include "io/checkpoint.h"
#include "io/peft_export.h"
#include "model/lora.h"
#include "runtime/agree.h"
#include "runtime/error.h"

namespace mira {
namespace {

// The run's lora.* settings from the checkpoint's resolved config text. Only the [lora] section is
// taken (other sections may hold keys of another version of this program) and validated by the same
// parser as a config file, so a value out of range is reported as such, naming the key.
Config checkpoint_lora_config(const std::string& checkpoint, const std::string& text) {
  const std::string name = checkpoint + " (attribute config)";
  try {
    std::string lora = "[lora]\n";
    for (const IniEntry& e : ini_parse(text, name))
      if (e.section == "lora") lora += e.key + " = " + e.value + "\n";
    return config_parse({"--config", name}, [&](const std::string&) { return lora; }).config;
  } catch (const UserError& e) {
    throw UserError("export: checkpoint " + checkpoint + ": its stored [lora] config does not parse: " + e.what());
  }
}

// Checks that the config's lora.targets/lora.rank describe the stored adapters (same module set and
// r), so adapter_config.json matches adapter_model.safetensors.
void check_config_matches(const std::string& checkpoint, const Config& c, const CheckpointLayout& layout) {
  LoraConfig lc;
  lc.r = c.lora.rank;
  lc.alpha = c.lora.alpha;
  lc.dropout = c.lora.dropout;
  lc.target_modules = c.lora.targets;
  std::vector<std::string> want;
  for (LoraModule m : lora_resolve_targets(lc)) want.push_back(lora_module_name(m));
  std::vector<std::string> have;
  for (const auto& m : layout.modules) {
    have.push_back(m.module_path);
    if (m.rank != c.lora.rank)
      throw UserError("export: checkpoint " + checkpoint + ": adapters of " + m.name + " have rank " +
                      std::to_string(m.rank) + " but its config says lora.rank = " + std::to_string(c.lora.rank));
  }
  std::sort(want.begin(), want.end());
  std::sort(have.begin(), have.end());
  if (want != have) {
    std::string w, h;
    for (const auto& s : want) w += (w.empty() ? "" : ", ") + s;
    for (const auto& s : have) h += (h.empty() ? "" : ", ") + s;
    throw UserError("export: checkpoint " + checkpoint + ": its config's lora.targets select {" + w +
                    "} but it stores adapters for {" + h + "}");
  }
}

}  // namespace

int command_export(const AppContext& ctx) {
  const Config& c = ctx.config;
  const int rank = ctx.env.rank;
  const std::string& out = c.tool.out;
  const int client = c.tool.client;

  // Cheap refusals first: the output folder (rank 0 looks), then the checkpoint's layout and K.
  mpi_agree(MPI_COMM_WORLD, [&] {
    if (rank == 0) peft_export_check_target(out);
  });
  CheckpointLayout layout;
  mpi_agree(MPI_COMM_WORLD, [&] { layout = checkpoint_read_layout(MPI_COMM_WORLD, c.tool.checkpoint); });
  if (client < 0 || client >= layout.clients)
    throw CollectiveUserError("export: --client " + std::to_string(client) + " is out of range: checkpoint " +
                              c.tool.checkpoint + " holds clients 0.." + std::to_string(layout.clients - 1));
  if (layout.modules.empty())
    throw CollectiveUserError("export: checkpoint " + c.tool.checkpoint +
                              " holds no LoRA adapters (lora.targets was empty), nothing to export");

  // Validated open (checksums of the metadata, every shape), then the client's slice (CRC32C).
  std::unique_ptr<CheckpointReader> reader;
  mpi_agree(MPI_COMM_WORLD, [&] { reader = std::make_unique<CheckpointReader>(MPI_COMM_WORLD, c.tool.checkpoint, layout); });
  const CheckpointMeta meta = reader->meta();
  const std::string path = reader->path();
  std::vector<ClientSlices> slices;
  mpi_agree(MPI_COMM_WORLD, [&] { slices = reader->read_clients(rank == 0 ? std::vector<int64_t>{client} : std::vector<int64_t>{}); });
  reader->close();

  Config run;
  mpi_agree(MPI_COMM_WORLD, [&] {
    run = checkpoint_lora_config(path, meta.config_text);
    check_config_matches(path, run, layout);
  });

  size_t tensor_count = 0;
  mpi_agree(MPI_COMM_WORLD, [&] {
    if (rank != 0) return;
    const ClientSlices& s = slices.at(0);
    std::vector<SafetensorsTensorOut> tensors;
    for (size_t i = 0; i < layout.modules.size(); ++i) {
      const LoraModuleShape& m = layout.modules[i];
      const int64_t a_size = m.rank * m.in_features, b_size = m.out_features * m.rank;
      for (int64_t l = 0; l < m.layers; ++l) {
        // lora_A[l] (r, in) and lora_B[l] (out, r): PEFT's shapes for GPT-2's Conv1D (fan_in_fan_out).
        tensors.push_back({peft_tensor_name(l, m.module_path, false), {m.rank, m.in_features},
                           s.lora_A[i].data() + l * a_size, nullptr});
        tensors.push_back({peft_tensor_name(l, m.module_path, true), {m.out_features, m.rank},
                           s.lora_B[i].data() + l * b_size, nullptr});
      }
    }
    PeftLoraConfig pc;
    pc.r = run.lora.rank;
    pc.lora_alpha = run.lora.alpha;
    pc.lora_dropout = run.lora.dropout;
    pc.target_modules = run.lora.targets;
    pc.fan_in_fan_out = true;  // GPT-2: Conv1D weights are (in, out)
    pc.base_model_name_or_path = meta.base_model_path;
    peft_export_write(out, pc, tensors);
    tensor_count = tensors.size();
  });
  if (rank == 0) {
    std::printf("exported client %d of %s (round %lld, %s) to %s: %zu tensors, r = %d, lora_alpha = %g, base model %s\n",
                client, path.c_str(), (long long)meta.round, meta.algorithm.c_str(), out.c_str(), tensor_count,
                run.lora.rank, run.lora.alpha, meta.base_model_path.c_str());
    if (meta.base_model_path.rfind("preset:", 0) == 0)
      std::fprintf(stderr, "mira_hpc: note: the base model was %s (initialised from the seed, not a Hugging Face "
                   "model): to use this adapter elsewhere, load it on the same base weights\n",
                   meta.base_model_path.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace mira
