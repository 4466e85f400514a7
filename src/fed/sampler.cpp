// Client sampling (sampler.h).
#include "fed/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace mira {

int sampler_count(int K, double fraction) {
  if (K < 1) throw UserError("client sampling: the client count must be >= 1, got " + std::to_string(K));
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", fraction);
    throw UserError(std::string("client sampling: the fraction must be in (0, 1], got ") + got);
  }
  const long m = std::lround(fraction * K);
  return static_cast<int>(std::min<long>(K, std::max<long>(1, m)));
}

std::vector<int> sampler_sample(uint64_t seed, int64_t round, int K, int m) {
  MIRA_CHECK(K >= 1 && m >= 1 && m <= K, "K=" + std::to_string(K) + " m=" + std::to_string(m));
  std::vector<int> ids(K);
  std::iota(ids.begin(), ids.end(), 0);
  if (m == K) return ids;
  Rng rng(seed, RngPurpose::CLIENT_SAMPLING, static_cast<uint64_t>(round));
  for (int i = 0; i < m; ++i) {
    const int j = i + static_cast<int>(rng.below(static_cast<uint64_t>(K - i)));
    std::swap(ids[i], ids[j]);
  }
  ids.resize(m);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace mira
