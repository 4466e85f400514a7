// MIRA eq. (8), FedIT averaging and their distributed forms on flat adapters (aggregate.h).
#include "fed/aggregate.h"

#include <algorithm>
#include <cstring>

#include "runtime/error.h"

namespace mira {

Algorithm fed_parse_algorithm(const std::string& text, const std::string& key) {
  if (text == "mira") return Algorithm::MIRA;
  if (text == "fedit") return Algorithm::FEDIT;
  if (text == "local") return Algorithm::LOCAL;
  throw UserError(key + " = '" + text + "': allowed values are mira, fedit, local");
}

NeighbourMode fed_parse_neighbour_mode(const std::string& text, const std::string& key) {
  if (text == "sampled") return NeighbourMode::SAMPLED;
  if (text == "all-latest") return NeighbourMode::ALL_LATEST;
  throw UserError(key + " = '" + text + "': allowed values are sampled (authors' code), all-latest (extension)");
}

const char* fed_algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::MIRA: return "mira";
    case Algorithm::FEDIT: return "fedit";
    case Algorithm::LOCAL: return "local";
  }
  return "?";
}

const char* fed_neighbour_mode_name(NeighbourMode m) { return m == NeighbourMode::SAMPLED ? "sampled" : "all-latest"; }

void mira_update_client(float* out, const float* self, const float* const* nbr, const double* weight, int n, size_t P,
                        double eta_lambda) {
  // Element-wise, so splitting i across threads never changes a result.
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < static_cast<long long>(P); ++i) {
    const double x = self[i];
    double acc = 0.0;
    for (int j = 0; j < n; ++j) acc += weight[j] * (x - static_cast<double>(nbr[j][i]));
    out[i] = static_cast<float>(x - eta_lambda * acc);
  }
}

std::vector<int> mira_neighbours(const Graph& g, int k, const std::vector<char>& is_sampled, NeighbourMode mode) {
  std::vector<int> out;
  for (int l : g.neighbours[k])  // ascending
    if (mode == NeighbourMode::ALL_LATEST || is_sampled[l]) out.push_back(l);
  return out;
}

std::vector<char> sample_mask(int K, const std::vector<int>& sampled) {
  std::vector<char> mask(K, 0);
  for (int k : sampled) {
    MIRA_CHECK(k >= 0 && k < K, "sampled client " + std::to_string(k) + " of K=" + std::to_string(K));
    mask[k] = 1;
  }
  return mask;
}

namespace {

// Updates each of `targets` from the neighbours `get` returns; results are staged in a scratch
// buffer and copied back only after every target is computed (pre-update states throughout).
template <typename Get, typename Self>
void mira_update_set(const Graph& g, const std::vector<int>& targets, const std::vector<char>& is_sampled,
                     NeighbourMode mode, double eta_lambda, size_t P, Get get, Self self_of) {
  std::vector<float> scratch(targets.size() * P);
  std::vector<const float*> nbr;
  std::vector<double> w;
  for (size_t t = 0; t < targets.size(); ++t) {
    const int k = targets[t];
    nbr.clear();
    w.clear();
    for (int l : mira_neighbours(g, k, is_sampled, mode)) {
      const float* p = get(l);
      MIRA_CHECK(p != nullptr, "adapter of neighbour " + std::to_string(l) + " of client " + std::to_string(k) + " missing");
      nbr.push_back(p);
      w.push_back(g.weight(k, l));
    }
    mira_update_client(&scratch[t * P], self_of(k), nbr.data(), w.data(), static_cast<int>(nbr.size()), P,
                       eta_lambda);
  }
  for (size_t t = 0; t < targets.size(); ++t)
    std::memcpy(self_of(targets[t]), &scratch[t * P], P * sizeof(float));
}
}  // namespace

void mira_step_serial(const Graph& g, const std::vector<int>& sampled, NeighbourMode mode, double eta_lambda,
                      const std::vector<float*>& adapters, size_t P) {
  MIRA_CHECK(static_cast<int>(adapters.size()) == g.K, "need K adapters");
  const std::vector<char> is_sampled = sample_mask(g.K, sampled);
  mira_update_set(g, sampled, is_sampled, mode, eta_lambda, P, [&](int l) -> const float* { return adapters[l]; },
                  [&](int k) { return adapters[k]; });
}

std::vector<int> mira_exchange(AdapterExchange& ex, const Graph& g, const std::vector<int>& sampled,
                               NeighbourMode mode, const AdapterLookup& owned, std::vector<char>* is_sampled) {
  MIRA_CHECK(ex.clients() == g.K, "exchange has K=" + std::to_string(ex.clients()) + ", graph K=" + std::to_string(g.K));
  *is_sampled = sample_mask(g.K, sampled);
  const std::vector<char> provider = mode == NeighbourMode::ALL_LATEST ? std::vector<char>(g.K, 1) : *is_sampled;
  ex.exchange(*is_sampled, provider, owned);
  std::vector<int> targets;
  for (int k : sampled)
    if (ex.owns(k)) targets.push_back(k);
  return targets;
}

void mira_step(AdapterExchange& ex, const Graph& g, const std::vector<int>& sampled, NeighbourMode mode,
               double eta_lambda, const AdapterLookup& owned) {
  std::vector<char> is_sampled;
  const std::vector<int> targets = mira_exchange(ex, g, sampled, mode, owned, &is_sampled);
  mira_update_set(g, targets, is_sampled, mode, eta_lambda, ex.adapter_floats(),
                  [&](int l) { return ex.neighbour(l); }, [&](int k) { return owned(k); });
}

void fedit_average(float* out, const float* const* adapters, const double* size, int n, size_t P) {
  double total = 0.0;
  for (int j = 0; j < n; ++j) {
    MIRA_CHECK(size[j] >= 0.0, "client data size " + std::to_string(size[j]));
    total += size[j];
  }
  MIRA_CHECK(n >= 1 && total > 0.0, "FedIT needs clients with data (n=" + std::to_string(n) + ")");
  std::vector<double> coef(n);
  for (int j = 0; j < n; ++j) coef[j] = size[j] / total;
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < static_cast<long long>(P); ++i) {
    double acc = 0.0;
    for (int j = 0; j < n; ++j) acc += coef[j] * static_cast<double>(adapters[j][i]);
    out[i] = static_cast<float>(acc);
  }
}

void fedit_step(AdapterExchange& ex, const std::vector<int>& sampled, const std::vector<int64_t>& data_size,
                const AdapterLookup& owned, float* global) {
  MIRA_CHECK(static_cast<int>(data_size.size()) == ex.clients(), "data_size needs K entries");
  const size_t P = ex.adapter_floats();
  std::vector<int> ids = sampled;
  std::sort(ids.begin(), ids.end());  // client-id order
  std::vector<float> all(ids.size() * P);
  ex.gather(ids, owned, all.data());
  std::vector<const float*> ptr(ids.size());
  std::vector<double> size(ids.size());
  for (size_t j = 0; j < ids.size(); ++j) {
    ptr[j] = &all[j * P];
    size[j] = static_cast<double>(data_size[ids[j]]);
  }
  fedit_average(global, ptr.data(), size.data(), static_cast<int>(ids.size()), P);
}

}  // namespace mira
