// Every configuration key of mira_hpc (see config_schema.h). Defaults marked "authors' code" come
// from the MIRA authors' code (../shared/MIRA.md), not from the paper, which gives no values.
#include "app/config_schema.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "runtime/error.h"

namespace mira {

long long config_parse_int(const std::string& text, long long lo, long long hi) {
  const std::string range = lo == hi ? std::to_string(lo)
                            : hi == std::numeric_limits<long long>::max()
                                ? ">= " + std::to_string(lo)
                                : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) throw ConfigValueError("an integer " + range);
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno == ERANGE || end == text.c_str() || *end != '\0') throw ConfigValueError("an integer " + range);
  if (v < lo || v > hi) throw ConfigValueError("an integer " + range);
  return v;
}

static uint64_t parse_u64(const std::string& text) {
  if (text.empty() || text[0] == '-') throw ConfigValueError("a non-negative integer below 2^64");
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno == ERANGE || end == text.c_str() || *end != '\0') throw ConfigValueError("a non-negative integer below 2^64");
  return v;
}

static std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::ostringstream os;
  os.precision(17);
  os << v;
  std::string s = os.str();
  // Shortest text that reads back to the same double.
  for (int p = 1; p <= 17; ++p) {
    std::ostringstream t;
    t.precision(p);
    t << v;
    if (std::strtod(t.str().c_str(), nullptr) == v) return t.str();
  }
  return s;
}

double config_parse_double(const std::string& text, double lo, double hi) {
  std::string range = "a number in [" + number_text(lo) + ", " + number_text(hi) + "]";
  if (hi == std::numeric_limits<double>::max()) range = "a number >= " + number_text(lo);
  if (text.empty()) throw ConfigValueError(range);
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (errno == ERANGE || end == text.c_str() || *end != '\0' || !std::isfinite(v)) throw ConfigValueError(range);
  if (v < lo || v > hi) throw ConfigValueError(range);
  return v;
}

bool config_parse_bool(const std::string& text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  throw ConfigValueError("true or false");
}

namespace {


ConfigKey key_int(const char* sec, const char* name, long long def, long long lo, long long hi, const char* help,
                  std::function<int&(Config&)> ref) {
  ConfigKey k{sec, name, "", std::to_string(def), help, nullptr, nullptr};
  try {
    config_parse_int("", lo, hi);
  } catch (const ConfigValueError& e) {
    k.allowed = e.what();
  }
  k.set = [=](Config& c, const std::string& v) { ref(c) = static_cast<int>(config_parse_int(v, lo, hi)); };
  k.get = [=](const Config& c) { return std::to_string(ref(const_cast<Config&>(c))); };
  return k;
}

ConfigKey key_u64(const char* sec, const char* name, uint64_t def, const char* help,
                  std::function<uint64_t&(Config&)> ref) {
  ConfigKey k{sec, name, "a non-negative integer below 2^64", std::to_string(def), help, nullptr, nullptr};
  k.set = [=](Config& c, const std::string& v) { ref(c) = parse_u64(v); };
  k.get = [=](const Config& c) { return std::to_string(ref(const_cast<Config&>(c))); };
  return k;
}

ConfigKey key_double(const char* sec, const char* name, double def, double lo, double hi, const char* help,
                     std::function<double&(Config&)> ref) {
  ConfigKey k{sec, name, "", number_text(def), help, nullptr, nullptr};
  try {
    config_parse_double("", lo, hi);
  } catch (const ConfigValueError& e) {
    k.allowed = e.what();
  }
  k.set = [=](Config& c, const std::string& v) { ref(c) = config_parse_double(v, lo, hi); };
  k.get = [=](const Config& c) { return number_text(ref(const_cast<Config&>(c))); };
  return k;
}

ConfigKey key_string(const char* sec, const char* name, const char* def, const char* allowed, const char* help,
                     std::function<std::string&(Config&)> ref, bool may_be_empty = true) {
  ConfigKey k{sec, name, allowed, def, help, nullptr, nullptr};
  k.set = [=](Config& c, const std::string& v) {
    if (!may_be_empty && v.empty()) throw ConfigValueError(allowed);
    ref(c) = v;
  };
  k.get = [=](const Config& c) { return ref(const_cast<Config&>(c)); };
  return k;
}

ConfigKey key_bool(const char* sec, const char* name, bool def, const char* help, std::function<bool&(Config&)> ref) {
  ConfigKey k{sec, name, "true | false", def ? "true" : "false", help, nullptr, nullptr};
  k.set = [=](Config& c, const std::string& v) { ref(c) = config_parse_bool(v); };
  k.get = [=](const Config& c) { return std::string(ref(const_cast<Config&>(c)) ? "true" : "false"); };
  return k;
}

template <typename E>
ConfigKey key_enum(const char* sec, const char* name, const char* def,
                   std::vector<std::pair<std::string, E>> values, const char* help, std::function<E&(Config&)> ref) {
  std::string allowed;
  for (const auto& [n, e] : values) allowed += (allowed.empty() ? "" : " | ") + n;
  ConfigKey k{sec, name, "one of " + allowed, def, help, nullptr, nullptr};
  k.set = [=](Config& c, const std::string& v) {
    for (const auto& [n, e] : values)
      if (n == v) {
        ref(c) = e;
        return;
      }
    throw ConfigValueError("one of " + allowed);
  };
  k.get = [=](const Config& c) {
    for (const auto& [n, e] : values)
      if (e == ref(const_cast<Config&>(c))) return n;
    return std::string("?");
  };
  return k;
}

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : v + ",") {
    if (ch == ',') {
      size_t b = cur.find_first_not_of(" \t"), e = cur.find_last_not_of(" \t");
      out.push_back(b == std::string::npos ? "" : cur.substr(b, e - b + 1));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  return out;
}

// Keys whose values a module parses itself (it throws UserError naming the key): re-thrown as
// ConfigValueError with the key's allowed text, so every message has the same shape.
template <typename F>
auto module_parse(F&& parse, const std::string& allowed) {
  try {
    return parse();
  } catch (const UserError&) {
    throw ConfigValueError(allowed);
  }
}

std::vector<ConfigKey> build_keys() {
  constexpr double HUGE_D = std::numeric_limits<double>::max();
  std::vector<ConfigKey> keys;
  // [run]
  keys.push_back(key_enum<Algorithm>("run", "algorithm", "mira",
      {{"mira", Algorithm::MIRA}, {"fedit", Algorithm::FEDIT}, {"local", Algorithm::LOCAL}},
      "mira: graph-regularised personal adapters (MIRA eq. 8); fedit: FedAvg of LoRA A and B; local: no exchange",
      [](Config& c) -> Algorithm& { return c.run.algorithm; }));
  keys.push_back(key_int("run", "rounds", 10, 1, 1000000, "federated rounds T",
                         [](Config& c) -> int& { return c.run.rounds; }));
  keys.push_back(key_u64("run", "seed", 1234, "seed of every random stream (data, sampling, LoRA init, dropout)",
                         [](Config& c) -> uint64_t& { return c.run.seed; }));
  keys.push_back(key_int("run", "clients", 0, 0, 1000000,
                         "number of clients K; 0 = the dataset's natural count, else the rank count",
                         [](Config& c) -> int& { return c.run.clients; }));
  keys.push_back(key_string("run", "output", "runs/mira", "a directory path",
                            "run directory: metrics, checkpoints, logs",
                            [](Config& c) -> std::string& { return c.run.output; }, false));
  keys.push_back(key_enum<BackendKind>("run", "backend", "auto",
      {{"auto", BackendKind::AUTO}, {"cpu", BackendKind::CPU}, {"cuda", BackendKind::CUDA}},
      "compute backend (also --backend); auto = cuda when every rank has a usable GPU that passes the start-up "
      "check, else cpu with a log line saying why",
      [](Config& c) -> BackendKind& { return c.run.backend; }));
  keys.push_back(key_bool("run", "share_devices", false,
                          "cuda: allow several ranks of a host to use one GPU (slower: they take turns); false refuses "
                          "such a binding, naming the ranks, the GPU and their CUDA_VISIBLE_DEVICES",
                          [](Config& c) -> bool& { return c.run.share_devices; }));
  keys.push_back(key_int("run", "threads", 0, 0, 4096,
                         "threads per rank; 0 = SLURM_CPUS_PER_TASK, else cores / ranks per host",
                         [](Config& c) -> int& { return c.run.threads; }));
  keys.push_back(key_enum<LogLevel>("run", "log_level", "info",
      {{"error", LogLevel::ERROR}, {"warn", LogLevel::WARN}, {"info", LogLevel::INFO}, {"debug", LogLevel::DEBUG}},
      "rank-0 log verbosity (also --log-level)", [](Config& c) -> LogLevel& { return c.run.log_level; }));
  keys.push_back(key_int("run", "fail_on_rank", -1, -1, 1 << 20,
                         "testing only: this rank raises an internal fault at start-up (-1 = off)",
                         [](Config& c) -> int& { return c.run.fail_on_rank; }));
  keys.push_back(key_string("run", "resume", "none", "none | auto | latest | PATH",
                            "resume from a checkpoint: auto = <run.output>/checkpoints/latest if it exists, "
                            "else start fresh; latest = it must exist; PATH = a checkpoint file or directory "
                            "(also --resume)",
                            [](Config& c) -> std::string& { return c.run.resume; }, false));
  keys.push_back(key_int("run", "wait_for_signal_after_round", -1, -1, 1000000,
                         "testing only: after this round (and its checkpoint) wait for SIGUSR1/SIGTERM (-1 = off)",
                         [](Config& c) -> int& { return c.run.wait_for_signal_after_round; }));
  // [model]
  keys.push_back(key_string("model", "preset", "tiny", "tiny | gpt2-124m-shape",
                            "base model initialised from the seed, used when model.path is empty",
                            [](Config& c) -> std::string& { return c.model.preset; }, false));
  keys.push_back(key_string("model", "path", "", "a Hugging Face GPT-2 folder (config.json + model.safetensors)",
                            "pre-trained base model; empty = model.preset",
                            [](Config& c) -> std::string& { return c.model.path; }));
  keys.push_back(key_enum<BasePrecision>("model", "base_precision", "auto",
      {{"auto", BasePrecision::AUTO}, {"fp32", BasePrecision::FP32}, {"bf16", BasePrecision::BF16}},
      "storage of the frozen base weights in LoRA training: bf16 = GEMM weights and embeddings rounded to "
      "bfloat16, their GEMMs with bf16 inputs and fp32 accumulation (tensor cores on cuda), the attention "
      "matmuls on bf16 operands and the big activations (LayerNorm, attention, c_fc and GELU outputs) stored "
      "in bf16; LoRA adapters, gradients, Adam state, LayerNorm parameters, biases, the residual stream and "
      "every sum stay fp32; fp32 = full precision (parity); auto = bf16 "
      "on the cuda backend, fp32 on cpu. pretrain trains the base weights: auto means fp32 there, bf16 is "
      "refused",
      [](Config& c) -> BasePrecision& { return c.model.base_precision; }));
  // [lora]
  keys.push_back(key_int("lora", "rank", 16, 1, 4096, "LoRA rank r (paper: 16)",
                         [](Config& c) -> int& { return c.lora.rank; }));
  keys.push_back(key_double("lora", "alpha", 8, 1e-12, HUGE_D, "LoRA alpha; scale = alpha / r (authors' code: 8)",
                            [](Config& c) -> double& { return c.lora.alpha; }));
  keys.push_back(key_double("lora", "dropout", 0.05, 0, 0.999, "dropout on the LoRA input (authors' code: 0.05)",
                            [](Config& c) -> double& { return c.lora.dropout; }));
  {
    ConfigKey k{"lora", "targets", "comma list of c_attn, c_proj, attn.c_proj, mlp.c_fc, mlp.c_proj",
                "c_attn,c_proj",
                "LoRA target modules, PEFT suffix matching: c_proj = attn.c_proj + mlp.c_proj (authors' code)",
                nullptr, nullptr};
    k.set = [](Config& c, const std::string& v) {
      static const std::vector<std::string> ok = {"c_attn", "c_proj", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "c_fc"};
      auto items = split_list(v);
      for (const auto& t : items) {
        if (t.empty()) throw ConfigValueError("a comma list of module names without empty entries");
        bool found = false;
        for (const auto& o : ok) found = found || o == t;
        if (!found) throw ConfigValueError("a comma list of c_attn, c_proj, attn.c_proj, mlp.c_fc (or c_fc), mlp.c_proj");
      }
      c.lora.targets = items;
    };
    k.get = [](const Config& c) {
      std::string s;
      for (const auto& t : c.lora.targets) s += (s.empty() ? "" : ",") + t;
      return s;
    };
    keys.push_back(k);
  }
  // [optim]
  keys.push_back(key_enum<OptimKind>("optim", "name", "adam",
      {{"adam", OptimKind::ADAM}, {"adamw", OptimKind::ADAMW}},
      "local optimiser, as torch defines it (authors' code: Adam, re-created every round)",
      [](Config& c) -> OptimKind& { return c.optim.kind; }));
  keys.push_back(key_double("optim", "lr", 3e-4, 0, 10, "learning rate (authors' code: 3e-4; GPT-2-large 3e-5)",
                            [](Config& c) -> double& { return c.optim.lr; }));
  keys.push_back(key_double("optim", "weight_decay", 0.01, 0, 10, "weight decay (authors' code: 1e-2)",
                            [](Config& c) -> double& { return c.optim.weight_decay; }));
  keys.push_back(key_double("optim", "grad_clip", 5.0, 0, HUGE_D, "max global gradient norm; 0 = off (authors' code: 5)",
                            [](Config& c) -> double& { return c.optim.grad_clip; }));
  keys.push_back(key_double("optim", "beta1", 0.9, 0, 0.999999, "Adam beta1",
                            [](Config& c) -> double& { return c.optim.beta1; }));
  keys.push_back(key_double("optim", "beta2", 0.999, 0, 0.999999, "Adam beta2",
                            [](Config& c) -> double& { return c.optim.beta2; }));
  keys.push_back(key_double("optim", "eps", 1e-8, 1e-30, 1, "Adam epsilon",
                            [](Config& c) -> double& { return c.optim.eps; }));
  keys.push_back(key_bool("optim", "keep_state", false,
                          "false: Adam is re-created every round (authors' code); true: each client's Adam moments "
                          "persist across rounds, travel with its adapter and are checkpointed",
                          [](Config& c) -> bool& { return c.optim.keep_state; }));
  // [train]
  keys.push_back(key_enum<LocalMode>("train", "mode", "epochs",
      {{"epochs", LocalMode::EPOCHS}, {"steps", LocalMode::STEPS}},
      "local work per round: R epochs over the client's train split, or R optimiser steps",
      [](Config& c) -> LocalMode& { return c.train.mode; }));
  keys.push_back(key_int("train", "local_epochs", 5, 1, 100000, "R in epochs mode (authors' code: 5)",
                         [](Config& c) -> int& { return c.train.local_epochs; }));
  keys.push_back(key_int("train", "local_steps", 10, 1, 100000000, "R in steps mode",
                         [](Config& c) -> int& { return c.train.local_steps; }));
  keys.push_back(key_int("train", "batch_size", 8, 1, 65536, "examples per step (authors' code: 8)",
                         [](Config& c) -> int& { return c.train.batch_size; }));
  // [data] (DataOptions; docs/data.md describes each source)
  keys.push_back(key_enum<DataSource>("data", "source", "synthetic",
      {{"synthetic", DataSource::SYNTHETIC}, {"dolly", DataSource::DOLLY}, {"ni", DataSource::NI},
       {"jsonl", DataSource::JSONL}, {"pretokenized", DataSource::PRETOKENIZED}},
      "where the clients' data comes from; synthetic is embedded (no download)",
      [](Config& c) -> DataSource& { return c.data.source; }));
  keys.push_back(key_string("data", "path", "", "a file or folder path",
                            "Dolly/JSONL file, Natural Instructions tasks folder, or pre-tokenised .h5",
                            [](Config& c) -> std::string& { return c.data.path; }));
  keys.push_back(key_string("data", "task_list", "", "a file path",
                            "Natural Instructions: task names, one per line (client k = line k)",
                            [](Config& c) -> std::string& { return c.data.task_list; }));
  keys.push_back(key_int("data", "clients_per_category", 10, 1, 1000000,
                         "dolly/jsonl: clients per category (paper: 8 x 10 = 80 clients)",
                         [](Config& c) -> int& { return c.data.clients_per_category; }));
  keys.push_back(key_int("data", "examples_per_client", 40, 2, 100000000, "synthetic: examples per client",
                         [](Config& c) -> int& { return c.data.examples_per_client; }));
  keys.push_back(key_int("data", "max_length", 1024, 2, 1 << 20,
                         "tokens per example; longer prompts are cut from the left (authors' code: 1024)",
                         [](Config& c) -> int& { return c.data.max_length; }));
  keys.push_back(key_double("data", "train_fraction", 0.8, 0.01, 0.99, "local train share of each client (paper: 0.8)",
                            [](Config& c) -> double& { return c.data.train_fraction; }));
  keys.push_back(key_enum<TokenizerKind>("data", "tokenizer", "byte",
      {{"byte", TokenizerKind::BYTE}, {"hf", TokenizerKind::HF}},
      "byte: 256 byte ids + <|endoftext|> (tiny models); hf: GPT-2 byte-level BPE from data.tokenizer_path",
      [](Config& c) -> TokenizerKind& { return c.data.tokenizer; }));
  keys.push_back(key_string("data", "tokenizer_path", "", "a Hugging Face folder",
                            "folder with tokenizer.json, or vocab.json + merges.txt (data.tokenizer = hf)",
                            [](Config& c) -> std::string& { return c.data.tokenizer_path; }));
  keys.push_back(key_string("data", "jsonl.prompt_field", "instruction", "a JSON field name",
                            "jsonl: field holding the instruction",
                            [](Config& c) -> std::string& { return c.data.prompt_field; }, false));
  keys.push_back(key_string("data", "jsonl.input_field", "context", "a JSON field name, or empty for none",
                            "jsonl: field holding the optional input/context",
                            [](Config& c) -> std::string& { return c.data.input_field; }));
  keys.push_back(key_string("data", "jsonl.response_field", "response", "a JSON field name",
                            "jsonl: field holding the response",
                            [](Config& c) -> std::string& { return c.data.response_field; }, false));
  keys.push_back(key_string("data", "jsonl.client_field", "category", "a JSON field name",
                            "jsonl: field that groups lines into tasks (one task per group of clients)",
                            [](Config& c) -> std::string& { return c.data.client_field; }, false));
  keys.push_back(key_enum<PromptTemplate>("data", "jsonl.template", "alpaca",
      {{"alpaca", PromptTemplate::ALPACA}, {"raw", PromptTemplate::RAW}},
      "jsonl: prompt template (alpaca = the Dolly templates; raw = prompt, then input on the next line)",
      [](Config& c) -> PromptTemplate& { return c.data.prompt_template; }));
  keys.push_back(key_int("data", "ni.max_input_chars", 1024, 1, 1 << 30,
                         "Natural Instructions: drop instances whose input has >= this many characters (paper: 1024)",
                         [](Config& c) -> int& { return c.data.ni_max_input_chars; }));
  keys.push_back(key_int("data", "ni.min_instances", 20, 1, 1 << 30,
                         "Natural Instructions: skip a task with fewer instances left (paper: 20)",
                         [](Config& c) -> int& { return c.data.ni_min_instances; }));
  keys.push_back(key_double("data", "ni.keep_fraction", 0.2, 1e-6, 1,
                            "Natural Instructions: share of a task's instances kept (paper: 0.2)",
                            [](Config& c) -> double& { return c.data.ni_keep_fraction; }));
  keys.push_back(key_int("data", "pretrain_documents", 4000, 1, 100000000,
                         "pretrain: documents in the generated generic corpus",
                         [](Config& c) -> int& { return c.data.pretrain_documents; }));
  // [federation]
  keys.push_back(key_double("federation", "sample_fraction", 0.1, 1e-9, 1,
                            "fraction f of clients sampled per round, m = max(1, round(f*K)) (paper: 10%)",
                            [](Config& c) -> double& { return c.federation.sample_fraction; }));
  {
    ConfigKey k{"federation", "graph", "random | task | ring | complete | knn:K | file:PATH", "random",
                "task-similarity graph: random is the paper's recipe; the others are extensions (docs/federation.md)",
                nullptr, nullptr};
    k.set = [allowed = k.allowed](Config& c, const std::string& v) {
      c.federation.graph = module_parse([&] { return graph_parse_spec(v, "federation.graph"); }, allowed);
    };
    k.get = [](const Config& c) { return graph_spec_text(c.federation.graph); };
    keys.push_back(k);
  }
  keys.push_back(key_u64("federation", "graph_seed", 42, "seed of the random graph (authors' code: 42)",
                         [](Config& c) -> uint64_t& { return c.federation.graph_seed; }));
  keys.push_back(key_bool("federation", "reproducible", true,
                          "true: FedIT averages by gather + sum in client order (bitwise equal for any rank count); "
                          "false: cuda with one GPU per rank sums with ncclAllReduce instead (faster, not bitwise "
                          "reproducible across rank counts); ignored, with a log line, on cpu and with "
                          "run.share_devices",
                          [](Config& c) -> bool& { return c.federation.reproducible; }));
  // [mira]
  keys.push_back(key_double("mira", "lambda", 0.5, 0, HUGE_D, "graph regulariser strength (authors' code: 0.5 for NI)",
                            [](Config& c) -> double& { return c.mira.lambda; }));
  {
    // -1 is the "derived" sentinel; any other negative value (a typo'd -0.5) is refused rather than
    // silently taken as -1.
    static const char* const kEtaAllowed = "-1 (derived: lr * R) or a number >= 0";
    ConfigKey k = key_double("mira", "eta", -1, -1, HUGE_D,
                             "server step size of eq. (8); -1 = derived: lr * R (authors' code)",
                             [](Config& c) -> double& { return c.mira.eta; });
    k.allowed = kEtaAllowed;
    k.set = [](Config& c, const std::string& v) {
      double eta = 0;
      try {
        eta = config_parse_double(v, -1, HUGE_D);
      } catch (const ConfigValueError&) {
        throw ConfigValueError(kEtaAllowed);
      }
      if (eta < 0 && eta != -1) throw ConfigValueError(kEtaAllowed);
      c.mira.eta = eta;
    };
    keys.push_back(k);
  }
  keys.push_back(key_enum<NeighbourMode>("mira", "neighbours", "sampled",
      {{"sampled", NeighbourMode::SAMPLED}, {"all-latest", NeighbourMode::ALL_LATEST}},
      "neighbours in eq. (8): the sampled ones (authors' code) or every neighbour's latest adapter",
      [](Config& c) -> NeighbourMode& { return c.mira.neighbours; }));
  // [pretrain]
  keys.push_back(key_int("pretrain", "steps", 3000, 1, 100000000,
                         "pretrain: optimiser steps of full fine-tuning on the generic corpus",
                         [](Config& c) -> int& { return c.pretrain.steps; }));
  keys.push_back(key_double("pretrain", "lr", 1e-3, 0, 10, "pretrain: learning rate (AdamW)",
                            [](Config& c) -> double& { return c.pretrain.lr; }));
  keys.push_back(key_string("pretrain", "out", "", "a directory path",
                            "pretrain: Hugging Face folder to write (config.json + model.safetensors); "
                            "empty = <run.output>/base",
                            [](Config& c) -> std::string& { return c.pretrain.out; }));
  // [checkpoint]
  keys.push_back(key_int("checkpoint", "every", 1, 1, 1000000,
                         "write a checkpoint every N rounds (also after the last round and on a stop signal)",
                         [](Config& c) -> int& { return c.checkpoint.every; }));
  keys.push_back(key_int("checkpoint", "keep", 3, 1, 1000000, "keep the newest N checkpoints in <run.output>/checkpoints",
                         [](Config& c) -> int& { return c.checkpoint.keep; }));
  // [eval]
  keys.push_back(key_int("eval", "every", 1, 1, 1000000, "evaluate every N rounds (and after the last)",
                         [](Config& c) -> int& { return c.eval.every; }));
  keys.push_back(key_bool("eval", "global_matrix", false,
                          "also evaluate every client's adapter on every client's test split (K x K losses and each "
                          "adapter's global loss in the metrics; K times the evaluation work)",
                          [](Config& c) -> bool& { return c.eval.global_matrix; }));
  return keys;
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = build_keys();
  return keys;
}

const ConfigKey* config_find_key(const std::string& full_name) {
  for (const auto& k : config_keys())
    if (k.full() == full_name) return &k;
  return nullptr;
}

const std::vector<std::pair<std::string, std::string>>& config_sections() {
  static const std::vector<std::pair<std::string, std::string>> s = {
      {"run", "the run as a whole"},
      {"model", "the frozen base model"},
      {"lora", "the personal LoRA adapter of every client"},
      {"optim", "the local optimiser"},
      {"train", "local training of a sampled client"},
      {"data", "datasets, tokenizer and splits"},
      {"federation", "clients, sampling and the task graph"},
      {"mira", "MIRA's graph step, eq. (8)"},
      {"pretrain", "making a small base model (mira_hpc pretrain)"},
      {"checkpoint", "HDF5 checkpoints (docs/checkpoint-format.md)"},
      {"eval", "evaluation"},
  };
  return s;
}

void config_apply_defaults(Config& c) {
  for (const auto& k : config_keys()) {
    k.set(c, k.default_value);
    c.origin[k.full()] = "default";
  }
}

std::string config_to_ini(const Config& c, bool with_origins) {
  std::string out;
  std::string section;
  for (const auto& k : config_keys()) {
    if (k.section != section) {
      out += (out.empty() ? "" : "\n") + std::string("[") + k.section + "]\n";
      section = k.section;
    }
    out += k.name + " = " + k.get(c);
    if (with_origins) {
      auto it = c.origin.find(k.full());
      if (it != c.origin.end() && it->second != "default") out += "    # " + it->second;
    }
    out += "\n";
  }
  return out;
}

const char* command_name(Command c) {
  switch (c) {
    case Command::TRAIN: return "train";
    case Command::PRETRAIN: return "pretrain";
    case Command::INSPECT: return "inspect";
    case Command::EXPORT: return "export";
  }
  return "?";
}

std::string graph_spec_text(const GraphSpec& g) {
  switch (g.kind) {
    case GraphKind::RANDOM: return "random";
    case GraphKind::TASK: return "task";
    case GraphKind::RING: return "ring";
    case GraphKind::COMPLETE: return "complete";
    case GraphKind::KNN: return "knn:" + std::to_string(g.knn_k);
    case GraphKind::FILE: return "file:" + g.path;
  }
  return "?";
}

}  // namespace mira
