// FederatedDataset::log_counts on several ranks: each rank loads only some clients (client 0 on
// every rank, the others spread), yet rank 0's lines carry every client's truncation counts, equal
// to a single process that loads all, and the totals count each client once. Other ranks print
// nothing. Pre-tokenised fixture (tests/fixtures/data) with data.max_length = 12: every example is
// cut.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "runtime/error.h"

namespace mira {

TEST(DataLogCountsMpi, RankZeroLogsEveryClientsTruncation) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  runtime_set_identity(rank, "test");  // log_* print on rank 0 only
  DataOptions o;
  o.source = DataSource::PRETOKENIZED;
  o.path = std::string(MIRA_FIXTURES_DIR) + "/data/pretokenized_small.h5";
  o.max_length = 12;
  ByteTokenizer tok;
  std::vector<int> mine = {0};
  for (int k = 1; k < 3; ++k)
    if (k % size == rank) mine.push_back(k);
  FederatedDataset part(o, tok, mine);
  FederatedDataset all(o, tok, {0, 1, 2});

  testing::internal::CaptureStderr();
  part.log_counts(MPI_COMM_WORLD);
  const std::string text = testing::internal::GetCapturedStderr();
  runtime_set_identity(-1, "?");
  if (rank != 0) {
    EXPECT_EQ(text, "");
    return;
  }
  long long truncated = 0, response = 0;
  for (int k = 0; k < 3; ++k) {
    const ClientCounts& c = all.client(k).counts;
    ASSERT_GT(c.truncated, 0);
    char line[256];
    std::snprintf(line, sizeof line, "data: client %d task %s family family%d: train %lld test %lld truncated %lld "
                  "(response cut %lld, %lld tokens) dropped 0\n", k, all.client(k).task.c_str(),
                  all.client(k).family, (long long)c.train, (long long)c.test, (long long)c.truncated,
                  (long long)c.response_truncated, (long long)c.tokens_cut);
    EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "in:\n" << text;
    truncated += c.truncated;
    response += c.response_truncated;
  }
  const std::string total = "data: " + std::to_string(truncated) + " examples had their prompt truncated, " +
                            std::to_string(response) + " their response";
  EXPECT_NE(text.find(total), std::string::npos) << text;
  EXPECT_EQ(text.find("not loaded"), std::string::npos) << text;
}

}  // namespace mira
