// NI manifest: rank 0 builds it, every rank receives the same one; each rank then loads only its
// own clients and gets the same examples as a single rank that loads all (tests/fixtures/data/ni).
// A bad task list fails on every rank with the same CollectiveUserError (printed once, no MPI_Abort).
#include <gtest/gtest.h>
#include <mpi.h>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "data/ni.h"
#include "runtime/agree.h"
#include "runtime/error.h"

namespace mira {

TEST(NiManifestMpi, BroadcastAndRankLocalLoading) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  DataOptions o;
  o.source = DataSource::NI;
  o.path = std::string(MIRA_FIXTURES_DIR) + "/data/ni/tasks";
  o.task_list = std::string(MIRA_FIXTURES_DIR) + "/data/ni/train_tasks.txt";
  const NiManifest m = ni_manifest_broadcast(o, MPI_COMM_WORLD);
  const std::string mine = ni_manifest_to_json(m);
  EXPECT_EQ(mine, ni_manifest_to_json(ni_build_manifest(o)));
  ASSERT_EQ(m.tasks.size(), 3u);
  std::vector<int> clients;
  for (int k = rank; k < 3; k += size) clients.push_back(k);
  ByteTokenizer tok;
  FederatedDataset part(o, tok, clients, &m);
  FederatedDataset all(o, tok, {0, 1, 2}, &m);
  for (int k : clients) {
    ASSERT_EQ(part.train(k).size(), all.train(k).size());
    for (size_t i = 0; i < part.train(k).size(); ++i) EXPECT_EQ(part.train(k)[i].ids, all.train(k)[i].ids);
  }
  DataOptions bad = o;
  bad.task_list = "/nonexistent/list.txt";
  try {
    ni_manifest_broadcast(bad, MPI_COMM_WORLD);
    ADD_FAILURE() << "no error";
  } catch (const CollectiveUserError& e) {
    EXPECT_NE(std::string(e.what()).find("data.task_list"), std::string::npos);
  }
}

}  // namespace mira
