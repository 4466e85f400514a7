// Unit tests of client sampling (src/fed/sampler.h): m, determinism, range, uniformity.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "fed/sampler.h"
#include "runtime/error.h"

namespace mira {
namespace {

TEST(FedSampler, Count) {
  EXPECT_EQ(sampler_count(80, 0.1), 8);  // the paper: 10% of 80
  EXPECT_EQ(sampler_count(10, 0.01), 1);  // never 0
  EXPECT_EQ(sampler_count(25, 0.1), 3);   // 2.5 rounds half away from zero
  EXPECT_EQ(sampler_count(5, 1.0), 5);
  EXPECT_EQ(sampler_count(7, 0.5), 4);    // 3.5 -> 4
  EXPECT_THROW(sampler_count(5, 0.0), UserError);
  EXPECT_THROW(sampler_count(5, 1.5), UserError);
  EXPECT_THROW(sampler_count(5, std::nan("")), UserError);
  EXPECT_THROW(sampler_count(0, 0.5), UserError);
}

TEST(FedSampler, SortedUniqueDeterministic) {
  for (int64_t round = 0; round < 50; ++round) {
    const std::vector<int> s = sampler_sample(42, round, 80, 8);
    ASSERT_EQ(s.size(), 8u);
    for (size_t i = 0; i < s.size(); ++i) {
      EXPECT_GE(s[i], 0);
      EXPECT_LT(s[i], 80);
      if (i > 0) {
        EXPECT_LT(s[i - 1], s[i]);
      }
    }
    EXPECT_EQ(s, sampler_sample(42, round, 80, 8));
  }
  EXPECT_NE(sampler_sample(42, 0, 80, 8), sampler_sample(42, 1, 80, 8));
  EXPECT_NE(sampler_sample(42, 0, 80, 8), sampler_sample(43, 0, 80, 8));
  const std::vector<int> all = sampler_sample(42, 3, 5, 5);
  EXPECT_EQ(all, (std::vector<int>{0, 1, 2, 3, 4}));
}

// Pinned values: the sample is part of the reproducibility contract (a change here changes runs).
TEST(FedSampler, PinnedRoundZero) {
  EXPECT_EQ(sampler_sample(42, 0, 80, 8), (std::vector<int>{14, 15, 24, 43, 59, 72, 73, 76}));
}

TEST(FedSampler, Uniform) {
  // K = 10, m = 3 over N = 20000 rounds: each client expected 6000 times, binomial sd
  // sqrt(N p (1-p)) = 64.8; 5 sd = 324. Pairs: p = m(m-1)/(K(K-1)) = 1/15, 1333 expected, sd 35; 5 sd.
  const int K = 10, m = 3, N = 20000;
  std::vector<int> count(K, 0);
  std::vector<int> pair(K * K, 0);
  for (int r = 0; r < N; ++r) {
    const std::vector<int> s = sampler_sample(7, r, K, m);
    for (int k : s) ++count[k];
    for (int a : s)
      for (int b : s)
        if (a < b) ++pair[a * K + b];
  }
  for (int k = 0; k < K; ++k) EXPECT_NEAR(count[k], 6000, 324) << "client " << k;
  for (int a = 0; a < K; ++a)
    for (int b = a + 1; b < K; ++b) EXPECT_NEAR(pair[a * K + b], 1333.3, 176) << a << "," << b;
}

// Huge and tiny fractions are printed with %g (std::to_string's %f printed 1e300 with 300 digits).
TEST(FedSampler, BadFractionIsPrintedShort) {
  for (const auto& [fraction, text] : {std::pair<double, const char*>{1e300, "got 1e+300"}, {-1e-9, "got -1e-09"}}) {
    try {
      sampler_count(10, fraction);
      ADD_FAILURE() << "no error for " << fraction;
    } catch (const UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(text), std::string::npos) << msg;
      EXPECT_LT(msg.size(), 100u) << msg;
    }
  }
}

}  // namespace
}  // namespace mira
