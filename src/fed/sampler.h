// Client sampling S(t) (MIRA Algorithm 1, step 1): m = max(1, round(f * K)) clients per round,
// uniformly without replacement, keyed by (seed, RngPurpose::CLIENT_SAMPLING, round) so every rank
// computes the same set without communication and the set never depends on the rank count.
#pragma once
#include <cstdint>
#include <vector>

namespace mira {

// m = max(1, round(fraction * K)), rounding halves away from zero (std::lround; Python's round()
// would round halves to even: 0.1 * 25 = 2.5 gives 3 here). Throws UserError unless
// 0 < fraction <= 1 and K >= 1.
int sampler_count(int K, double fraction);

// The sampled clients of `round`, ascending: a partial Fisher-Yates shuffle of 0..K-1 drawn from
// Rng(seed, CLIENT_SAMPLING, round), its first m entries, sorted. m == K returns every client.
std::vector<int> sampler_sample(uint64_t seed, int64_t round, int K, int m);

}  // namespace mira
