// Run state <-> checkpoint (see run_checkpoint.h).
#include "fed/run_checkpoint.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "runtime/agree.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace mira {
namespace {

const char* kPerClient[] = {"train_loss", "test_loss"};                              // [rounds, K]
const char* kPerRound[] = {"tokens", "seconds", "comm_bytes", "active_edges"};     // [rounds, 1]

double nan() { return std::numeric_limits<double>::quiet_NaN(); }

// The value of the provenance's compute line ("cuda, base weights bf16"), "" when it has none
// (checkpoints written before the line existed).
std::string provenance_compute(const std::string& provenance) {
  const std::string key = kProvenanceComputeKey;
  std::istringstream in(provenance);
  std::string line, value;
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) value = line.substr(key.size());
  return value;
}

// The flat adapter's blocks for module i: A then B (model/lora.h layout).
const AdapterBlock& block(const AdapterLayout& a, size_t module, bool is_b) {
  const AdapterBlock* b = a.find(a.modules[module], is_b);
  MIRA_CHECK(b != nullptr, "adapter block");
  return *b;
}

}  // namespace

CheckpointLayout run_checkpoint_layout(const AdapterLayout& adapter, int64_t K, bool optimizer) {
  CheckpointLayout l;
  l.clients = K;
  for (size_t i = 0; i < adapter.modules.size(); ++i) {
    const AdapterBlock& a = block(adapter, i, false);
    const AdapterBlock& b = block(adapter, i, true);
    LoraModuleShape s;
    s.name = a.module_name;
    s.module_path = a.module_name;
    s.layers = a.layers;
    s.rank = a.rows;
    s.in_features = a.cols;
    s.out_features = b.rows;
    l.modules.push_back(s);
  }
  l.optimizer = optimizer;
  l.cursor_width = 0;
  return l;
}

std::string run_checkpoint_write(CheckpointWriter& writer, const FederatedRun& run, const AdapterLayout& adapter,
                                 const Graph& graph, CheckpointMeta meta) {
  const int64_t rounds = run.rounds_done();
  const FederatedRunOptions& o = run.options();
  meta.round = rounds;
  std::vector<ClientSlices> owned;
  const bool moments = o.keep_optimizer;
  const int64_t P = adapter.total;
  for (const auto& [k, flat] : run.owned_states()) {  // a host copy (downloaded when on a GPU)
    ClientSlices s;
    s.client = k;
    for (size_t i = 0; i < adapter.modules.size(); ++i) {
      for (bool is_b : {false, true}) {
        const AdapterBlock& b = block(adapter, i, is_b);
        const int64_t n = b.layers * b.rows * b.cols;
        auto part = [&](int64_t base) { return std::vector<float>(flat.begin() + base + b.offset, flat.begin() + base + b.offset + n); };
        (is_b ? s.lora_B : s.lora_A).push_back(part(0));
        if (moments) {  // the state buffer is adapter | exp_avg | exp_avg_sq, each in the adapter layout
          (is_b ? s.lora_B_exp_avg : s.lora_A_exp_avg).push_back(part(P));
          (is_b ? s.lora_B_exp_avg_sq : s.lora_A_exp_avg_sq).push_back(part(2 * P));
        }
      }
    }
    s.optimizer_step = run.optimizer_step(k, rounds);
    owned.push_back(std::move(s));
  }
  CheckpointGlobals g;
  g.graph_weights = graph.weights;
  g.sampled_per_round = o.sampled_per_round;
  for (int64_t t = 0; t < rounds; ++t)
    for (int k : run.sample_history()[t]) g.sampling.push_back(k);
  // Metrics: rank 0 holds the per-client vectors; the writer uses rank 0's globals.
  const auto& recs = run.records();
  for (const char* name : kPerClient) {
    MetricTable m{name, rounds, o.clients, std::vector<double>(static_cast<size_t>(rounds * o.clients), nan())};
    for (int64_t t = 0; t < rounds && t < (int64_t)recs.size(); ++t) {
      const auto& v = std::string(name) == "train_loss" ? recs[t].client_train_loss : recs[t].client_test_loss;
      for (size_t k = 0; k < v.size(); ++k) m.values[t * o.clients + k] = v[k];
    }
    g.metrics.push_back(std::move(m));
  }
  for (const char* name : kPerRound) {
    MetricTable m{name, rounds, 1, std::vector<double>(static_cast<size_t>(rounds), nan())};
    for (int64_t t = 0; t < rounds && t < (int64_t)recs.size(); ++t) {
      const RoundRecord& r = recs[t];
      const std::string n = name;
      m.values[t] = n == "tokens" ? r.tokens : n == "seconds" ? r.seconds : n == "comm_bytes" ? r.comm_bytes
                                                                                               : r.active_edges;
    }
    g.metrics.push_back(std::move(m));
  }
  return writer.write(meta, g, owned);
}

int64_t run_checkpoint_restore(MPI_Comm comm, const std::string& path, FederatedRun& run,
                               const AdapterLayout& adapter, const Graph& graph, const std::string& algorithm,
                               uint64_t seed, const CheckpointMeta& base, const ResumeConfigCheck& config_check) {
  const FederatedRunOptions& o = run.options();
  CheckpointReader reader(comm, path, run_checkpoint_layout(adapter, o.clients, o.keep_optimizer));
  const CheckpointMeta& meta = reader.meta();
  const std::string where = "checkpoint " + reader.path() + " does not fit this run: ";
  // Identical on every rank (the reader broadcasts the metadata), so these throws agree.
  if (meta.algorithm != algorithm)
    throw CollectiveUserError(where + "it was written by run.algorithm = " + meta.algorithm + ", this run is " +
                              algorithm);
  if (static_cast<uint64_t>(meta.seed) != seed)
    throw CollectiveUserError(where + "it was written with run.seed = " + std::to_string(meta.seed) +
                              ", this run has " + std::to_string(seed));
  // The base model: by content hash when both sides have one (a moved folder is fine), else by name
  // (presets are rebuilt from the seed, so their name identifies them).
  const bool hashes = !meta.base_model_sha256.empty() && !base.base_model_sha256.empty();
  if (hashes ? meta.base_model_sha256 != base.base_model_sha256 : meta.base_model_path != base.base_model_path)
    throw CollectiveUserError(where + "it was trained on base model " + meta.base_model_path +
                              (meta.base_model_sha256.empty() ? "" : " (sha256 " + meta.base_model_sha256 + ")") +
                              ", this run uses " + base.base_model_path +
                              (base.base_model_sha256.empty() ? "" : " (sha256 " + base.base_model_sha256 + ")"));
  const std::string then = provenance_compute(meta.provenance), now = provenance_compute(base.provenance);
  if (!then.empty() && !now.empty() && then != now)
    log_warn("resume: %s was computed with %s, this run uses %s; the run continues from its adapters, but the "
             "rounds after the resume are not bitwise those of an uninterrupted run",
             reader.path().c_str(), then.c_str(), now.c_str());
  if (meta.round > o.rounds)
    throw CollectiveUserError(where + "it holds " + std::to_string(meta.round) + " rounds but run.rounds = " +
                              std::to_string(o.rounds));
  CheckpointGlobals g = reader.read_globals();
  if (g.graph_weights != graph.weights)
    throw CollectiveUserError(where + "its graph weights differ from this run's federation.graph");
  const int64_t rounds = meta.round;
  if (g.sampled_per_round != o.sampled_per_round ||
      static_cast<int64_t>(g.sampling.size()) != rounds * o.sampled_per_round)
    throw CollectiveUserError(where + "it samples " + std::to_string(g.sampled_per_round) +
                              " clients per round, this run " + std::to_string(o.sampled_per_round));
  for (int64_t t = 0; t < rounds; ++t)
    for (int i = 0; i < o.sampled_per_round; ++i)
      if (g.sampling[t * o.sampled_per_round + i] != run.sample_history()[t][i])
        throw CollectiveUserError(where + "its sampling history differs from this run's (round " +
                                  std::to_string(t + 1) + ")");
  // The rest of the configuration (the keys checked above by their effect are free there). The
  // metadata is the same on every rank, so the verdict is too.
  if (config_check) {
    const std::string why = config_check(meta.config_text);
    if (!why.empty()) throw CollectiveUserError(where + why);
  }

  // Adapters: every rank reads the clients it owns (FedIT: also client 0, which holds the global).
  std::vector<int64_t> want;
  for (int k : run.owned_clients()) want.push_back(k);
  const bool fedit = algorithm == "fedit";
  const bool extra = fedit && (want.empty() || want.front() != 0);
  if (extra) want.insert(want.begin(), 0);
  std::vector<ClientSlices> slices = reader.read_clients(want);
  reader.close();
  const size_t P = static_cast<size_t>(adapter.total);
  std::map<int, std::vector<float>> owned;
  std::vector<float> global;
  for (size_t j = 0; j < slices.size(); ++j) {
    std::vector<float> flat(run.state_floats());
    const ClientSlices& sl = slices[j];
    for (size_t i = 0; i < adapter.modules.size(); ++i)
      for (bool is_b : {false, true}) {
        const AdapterBlock& b = block(adapter, i, is_b);
        auto put = [&](const std::vector<std::vector<float>>& parts, size_t base) {
          const auto& v = parts.at(i);
          MIRA_CHECK(static_cast<int64_t>(v.size()) == b.layers * b.rows * b.cols, "slice size");
          std::copy(v.begin(), v.end(), flat.begin() + base + b.offset);
        };
        put(is_b ? sl.lora_B : sl.lora_A, 0);
        if (o.keep_optimizer) {
          put(is_b ? sl.lora_B_exp_avg : sl.lora_A_exp_avg, P);
          put(is_b ? sl.lora_B_exp_avg_sq : sl.lora_A_exp_avg_sq, 2 * P);
        }
      }
    const int k = static_cast<int>(slices[j].client);
    if (fedit && k == 0) global.assign(flat.begin(), flat.begin() + P);
    if (!(extra && j == 0)) owned[k] = std::move(flat);
  }
  // Records from the metric tables.
  std::vector<RoundRecord> recs(static_cast<size_t>(rounds));
  for (int64_t t = 0; t < rounds; ++t) {
    recs[t].round = t;
    recs[t].sampled = run.sample_history()[t];
  }
  for (const MetricTable& m : g.metrics) {
    for (int64_t t = 0; t < rounds && t < m.rows; ++t) {
      RoundRecord& r = recs[t];
      if (m.name == "train_loss" || m.name == "test_loss") {
        std::vector<double> v(m.values.begin() + t * m.cols, m.values.begin() + (t + 1) * m.cols);
        bool any = false;
        for (double x : v) any = any || std::isfinite(x);
        if (m.name == "train_loss") r.client_train_loss = v;
        else if (any) r.client_test_loss = v, r.evaluated = true;
      } else if (m.name == "tokens") r.tokens = static_cast<int64_t>(m.values[t]);
      else if (m.name == "seconds") r.seconds = m.values[t];
      else if (m.name == "comm_bytes") r.comm_bytes = static_cast<int64_t>(m.values[t]);
      else if (m.name == "active_edges") r.active_edges = static_cast<int64_t>(m.values[t]);
    }
  }
  run.restore(rounds, std::move(owned), std::move(global), std::move(recs));
  return rounds;
}

}  // namespace mira
