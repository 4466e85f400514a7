// The aggregation step of a round on flat adapters (one contiguous buffer of P floats per client):
// MIRA eq. (8) (graph-regularised consensus step of the sampled clients), FedIT (data-size weighted
// average of the sampled clients into one global adapter) and local (no-op). Serial references and
// the distributed versions that run over an AdapterExchange; both give bitwise-identical results
// whatever the rank count (fixed summation order: client-id order, double accumulation).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/exchange.h"
#include "fed/graph.h"

namespace mira {

enum class Algorithm { MIRA, FEDIT, LOCAL };
// Which neighbours enter eq. (8): the sampled ones (authors' code) or every neighbour's latest
// adapter, unsampled ones included (`all-latest`, an extension).
enum class NeighbourMode { SAMPLED, ALL_LATEST };

// Parse "mira|fedit|local" and "sampled|all-latest"; UserError naming `key` otherwise.
Algorithm fed_parse_algorithm(const std::string& text, const std::string& key);
NeighbourMode fed_parse_neighbour_mode(const std::string& text, const std::string& key);
const char* fed_algorithm_name(Algorithm a);
const char* fed_neighbour_mode_name(NeighbourMode m);

// MIRA eq. (8) for one client, element-wise over P floats:
//   out[i] = self[i] - eta_lambda * sum_j weight[j] * (self[i] - nbr[j][i])
// the sum over j in the order given (callers pass ascending client ids), accumulated in double and
// rounded to float once. out may alias self (element i reads only element i) but no nbr[j].
void mira_update_client(float* out, const float* self, const float* const* nbr, const double* weight, int n, size_t P,
                        double eta_lambda);

// The (K) mask of the sampled clients (1 = sampled); a client id outside [0, K) is an internal error.
std::vector<char> sample_mask(int K, const std::vector<int>& sampled);

// The exchange half of a MIRA round (collective): the neighbour exchange of rule 3 (comm/exchange.h)
// for this sample; returns this rank's owned sampled clients (the eq. (8) targets, in `sampled`'s
// order) and sets *is_sampled to the (K) sample mask. mira_step and mira_step_device then update
// the targets from ex.neighbour().
std::vector<int> mira_exchange(AdapterExchange& ex, const Graph& g, const std::vector<int>& sampled,
                               NeighbourMode mode, const AdapterLookup& owned, std::vector<char>* is_sampled);

// The eq. (8) neighbours of client k this round: linked clients l != k (ascending id), restricted
// to sampled ones in SAMPLED mode. `is_sampled` is a (K) mask.
std::vector<int> mira_neighbours(const Graph& g, int k, const std::vector<char>& is_sampled, NeighbourMode mode);

// Serial reference: applies eq. (8) to every sampled client of `adapters` (K pointers), all from the
// pre-update states; unsampled clients are unchanged (MIRA eq. (9)).
void mira_step_serial(const Graph& g, const std::vector<int>& sampled, NeighbourMode mode, double eta_lambda,
                      const std::vector<float*>& adapters, size_t P);

// Distributed eq. (8): exchanges neighbour adapters over `ex` (collective over its communicator) and
// updates the sampled clients this rank owns, in place, from the pre-update states. Adapters must be
// back on their owners (Assignment::to_owners done). Same numbers as mira_step_serial.
void mira_step(AdapterExchange& ex, const Graph& g, const std::vector<int>& sampled, NeighbourMode mode,
               double eta_lambda, const AdapterLookup& owned);

// FedIT: out = sum_j (size[j] / sum size) * adapters[j], in the order given, double accumulation.
// Sizes must be > 0 in total.
void fedit_average(float* out, const float* const* adapters, const double* size, int n, size_t P);

// Distributed FedIT: every rank gathers the sampled clients' adapters (ascending id) and computes
// the same weighted average into `global` (P floats), bitwise equal to fedit_average on them.
// data_size: (K) examples per client (the weights).
void fedit_step(AdapterExchange& ex, const std::vector<int>& sampled, const std::vector<int64_t>& data_size,
                const AdapterLookup& owned, float* global);

}  // namespace mira
