// Checkpoint writer/reader under MPI (run with 1..4 ranks): bitwise round trip with K not divisible
// by the rank count, resume with another client-to-rank assignment and on a smaller communicator,
// ranks that own nothing, collective-mode assertion, refusal of corrupted / truncated / mismatched
// files on every rank, atomic publish, keep-last-N, stale temporaries, and the committed fixture.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/checkpoint_dir.h"
#include "io/fs_atomic.h"
#include "io/h5.h"
#include "runtime/error.h"

namespace {

using mira::CheckpointGlobals;
using mira::CheckpointLayout;
using mira::CheckpointMeta;
using mira::ClientSlices;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// A fresh directory made by rank 0 and known to every rank; removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char buf[256] = {0};
    if (world_rank() == 0) {
      const char* base = std::getenv("TMPDIR");
      std::string tmpl = std::string(base && *base ? base : "/tmp") + "/mira_ckpt_XXXXXX";
      std::strncpy(buf, tmpl.c_str(), sizeof(buf) - 1);
      if (!mkdtemp(buf)) buf[0] = 0;
    }
    MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
    path = buf;
  }
  ~TempDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0 && !path.empty()) std::system(("rm -rf '" + path + "'").c_str());
  }
  std::string path;
};

CheckpointLayout test_layout(int64_t K) {
  CheckpointLayout l;
  l.clients = K;
  l.modules = {{"attn.c_attn", "attn.c_attn", 2, 4, 8, 24}, {"mlp.c_proj", "mlp.c_proj", 2, 4, 32, 8}};
  l.optimizer = true;
  l.cursor_width = 3;
  return l;
}

// Deterministic bit patterns, distinct per (client, tensor, element); a few specials (-0, NaN with a
// payload, denormal, inf) make "bitwise" mean bitwise.
float value_at(int64_t client, int tensor, size_t i) {
  uint32_t h = (uint32_t)(client * 0x9E3779B1u) ^ (uint32_t)(tensor * 0x85EBCA77u) ^ (uint32_t)(i * 0xC2B2AE3Du);
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  h ^= h >> 12;
  switch (i % 97) {
    case 1: return -0.0f;
    case 2: { uint32_t nan = 0x7FC01234u; float f; std::memcpy(&f, &nan, 4); return f; }
    case 3: return std::numeric_limits<float>::denorm_min();
    case 4: return -std::numeric_limits<float>::infinity();
    default: return (float)((int32_t)(h % 2001) - 1000) / 1024.0f;
  }
}

ClientSlices make_client(const CheckpointLayout& l, int64_t k) {
  ClientSlices c;
  c.client = k;
  int tensor = 0;
  auto fill = [&](std::vector<std::vector<float>>& dst, int64_t a, int64_t b, int64_t d) {
    std::vector<float> v((size_t)(a * b * d));
    for (size_t i = 0; i < v.size(); ++i) v[i] = value_at(k, tensor, i);
    ++tensor;
    dst.push_back(std::move(v));
  };
  for (const auto& m : l.modules) {
    fill(c.lora_A, m.layers, m.rank, m.in_features);
    fill(c.lora_B, m.layers, m.out_features, m.rank);
    if (l.optimizer) {
      fill(c.lora_A_exp_avg, m.layers, m.rank, m.in_features);
      fill(c.lora_A_exp_avg_sq, m.layers, m.rank, m.in_features);
      fill(c.lora_B_exp_avg, m.layers, m.out_features, m.rank);
      fill(c.lora_B_exp_avg_sq, m.layers, m.out_features, m.rank);
    }
  }
  c.optimizer_step = 100 + k;
  for (int64_t j = 0; j < l.cursor_width; ++j) c.cursor.push_back(k * 10 + j);
  return c;
}

CheckpointMeta make_meta(int64_t round) {
  CheckpointMeta m;
  m.round = round;
  m.algorithm = "mira";
  m.seed = 42;
  m.config_text = "[run]\nalgorithm = mira\nseed = 42\n[lora]\nr = 4\n";
  m.base_model_path = "/models/tiny-gpt2/model.safetensors";
  m.base_model_sha256 = std::string(64, 'a');
  m.provenance = "mira_hpc test; HDF5 " + mira::h5_library_version();
  return m;
}

CheckpointGlobals make_globals(int64_t K, int64_t rounds) {
  CheckpointGlobals g;
  for (int64_t i = 0; i < K * K; ++i) g.graph_weights.push_back((i / K == i % K) ? 0.0 : 0.25 + 0.01 * (double)i);
  g.sampled_per_round = 2;
  for (int64_t t = 0; t < rounds; ++t) {
    g.sampling.push_back(t % K);
    g.sampling.push_back((t + 1) % K);
  }
  g.rng_counters = {1, 2, 0xFFFFFFFFFFFFFFFFull};
  mira::MetricTable loss{"train_loss", rounds, K, {}};
  for (int64_t i = 0; i < rounds * K; ++i) loss.values.push_back(3.0 - 0.001 * (double)i);
  mira::MetricTable glob{"global_loss", K, K, {}};
  for (int64_t i = 0; i < K * K; ++i) glob.values.push_back(1.0 + (double)i);
  g.metrics = {loss, glob};
  return g;
}

// The clients rank r of n owns in a round-robin assignment.
std::vector<int64_t> owned_by(int64_t K, int rank, int n, bool reversed = false) {
  std::vector<int64_t> out;
  for (int64_t k = 0; k < K; ++k)
    if ((reversed ? (K - 1 - k) : k) % n == rank) out.push_back(k);
  return out;
}

std::string write_checkpoint(const std::string& dir, const CheckpointLayout& l, int64_t round) {
  mira::CheckpointWriter writer(MPI_COMM_WORLD, dir, l);
  std::vector<ClientSlices> mine;
  for (auto k : owned_by(l.clients, world_rank(), world_size())) mine.push_back(make_client(l, k));
  // Only rank 0's meta and globals count; the other ranks pass empty ones on purpose.
  bool root = world_rank() == 0;
  return writer.write(root ? make_meta(round) : CheckpointMeta{}, root ? make_globals(l.clients, round) : CheckpointGlobals{},
                      mine);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_client_equal(const ClientSlices& got, const ClientSlices& want) {
  ASSERT_EQ(got.client, want.client);
  ASSERT_EQ(got.lora_A.size(), want.lora_A.size());
  for (size_t m = 0; m < want.lora_A.size(); ++m) {
    EXPECT_TRUE(same_bits(got.lora_A[m], want.lora_A[m])) << "client " << want.client << " module " << m;
    EXPECT_TRUE(same_bits(got.lora_B[m], want.lora_B[m])) << "client " << want.client << " module " << m;
    EXPECT_TRUE(same_bits(got.lora_A_exp_avg[m], want.lora_A_exp_avg[m]));
    EXPECT_TRUE(same_bits(got.lora_A_exp_avg_sq[m], want.lora_A_exp_avg_sq[m]));
    EXPECT_TRUE(same_bits(got.lora_B_exp_avg[m], want.lora_B_exp_avg[m]));
    EXPECT_TRUE(same_bits(got.lora_B_exp_avg_sq[m], want.lora_B_exp_avg_sq[m]));
  }
  EXPECT_EQ(got.optimizer_step, want.optimizer_step);
  EXPECT_EQ(got.cursor, want.cursor);
}

// Calls f, which must throw UserError on this rank; returns its message.
template <typename F>
std::string expect_user_error(F&& f) {
  try {
    f();
  } catch (const mira::UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected UserError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected UserError, nothing thrown";
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Rank 0 XORs `mask` into the byte at `offset` of `path`.
void flip_byte(const std::string& path, long long offset, unsigned char mask = 0x5A) {
  if (world_rank() == 0) {
    int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    unsigned char b = 0;
    ASSERT_EQ(pread(fd, &b, 1, offset), 1);
    b ^= mask;
    ASSERT_EQ(pwrite(fd, &b, 1, offset), 1);
    fsync(fd);
    close(fd);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Serial look-ups on rank 0 (broadcast): where a dataset's data and object header start.
long long dataset_data_offset(const std::string& path, const std::string& dset) {
  long long off = -1;
  if (world_rank() == 0) {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, dset.c_str(), H5P_DEFAULT);
    off = (long long)H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
  }
  MPI_Bcast(&off, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  return off;
}

long long object_header_offset(const std::string& path, const std::string& obj) {
  long long off = -1;
  if (world_rank() == 0) {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    H5O_info_t info;
    if (H5Oget_info_by_name2(f, obj.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0) off = (long long)info.addr;
    H5Fclose(f);
  }
  MPI_Bcast(&off, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  return off;
}

TEST(Checkpoint, RoundTripIsBitwiseWithAnotherClientAssignment) {
  TempDir tmp;
  const auto layout = test_layout(7);  // 7 clients: not divisible by 2, 3 or 4 ranks
  std::string path = write_checkpoint(tmp.path, layout, 5);
  EXPECT_EQ(path, tmp.path + "/ckpt-5.h5");

  mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path, layout);  // the directory: via `latest`
  EXPECT_EQ(reader.path(), path);
  const CheckpointMeta want_meta = make_meta(5);
  EXPECT_EQ(reader.meta().round, 5);
  EXPECT_EQ(reader.meta().algorithm, want_meta.algorithm);
  EXPECT_EQ(reader.meta().seed, 42);
  EXPECT_EQ(reader.meta().config_text, want_meta.config_text);
  EXPECT_EQ(reader.meta().base_model_path, want_meta.base_model_path);
  EXPECT_EQ(reader.meta().base_model_sha256, want_meta.base_model_sha256);
  EXPECT_EQ(reader.meta().provenance, want_meta.provenance);

  CheckpointGlobals g = reader.read_globals();
  CheckpointGlobals want = make_globals(7, 5);
  EXPECT_EQ(g.graph_weights, want.graph_weights);
  EXPECT_EQ(g.sampled_per_round, 2);
  EXPECT_EQ(g.sampling, want.sampling);
  EXPECT_EQ(g.rng_counters, want.rng_counters);
  ASSERT_EQ(g.metrics.size(), 2u);  // stored in name order
  EXPECT_EQ(g.metrics[0].name, "global_loss");
  EXPECT_EQ(g.metrics[0].values, want.metrics[1].values);
  EXPECT_EQ(g.metrics[1].name, "train_loss");
  EXPECT_EQ(g.metrics[1].rows, 5);
  EXPECT_EQ(g.metrics[1].cols, 7);
  EXPECT_EQ(g.metrics[1].values, want.metrics[0].values);

  // Read with the reversed assignment, asked for in descending order.
  auto ids = owned_by(7, world_rank(), world_size(), true);
  std::vector<int64_t> desc(ids.rbegin(), ids.rend());
  auto clients = reader.read_clients(desc);
  ASSERT_EQ(clients.size(), desc.size());
  for (size_t i = 0; i < desc.size(); ++i) expect_client_equal(clients[i], make_client(layout, desc[i]));
  reader.close();  // collective, before MPI_Finalize; reading afterwards is a programming error
  EXPECT_THROW(reader.read_globals(), mira::InternalError);
}

TEST(Checkpoint, BatchedTransfersWithUnevenLoads) {
  TempDir tmp;
  const auto layout = test_layout(7);
  // 700 bytes per call: client slices of 768 B and 1 KiB move one per call, 256 B slices two per
  // call, CRCs/steps/cursors all at once; rank 0 (four clients) makes more calls than the other
  // ranks, which select none in the extra calls.
  const size_t saved = mira::h5_max_transfer_bytes();
  mira::h5_set_max_transfer_bytes(700);
  // Write with an uneven assignment: rank 0 owns clients 0..3, the rest share 4..6.
  mira::CheckpointWriter writer(MPI_COMM_WORLD, tmp.path, layout);
  const int n = world_size(), r = world_rank();
  std::vector<ClientSlices> mine;
  for (int64_t k = 0; k < 7; ++k) {
    int owner = (n == 1 || k < 4) ? 0 : 1 + (int)(k % (n - 1));
    if (owner == r) mine.push_back(make_client(layout, k));
  }
  writer.write(make_meta(1), make_globals(7, 1), mine);
  mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path, layout);
  auto ids = owned_by(7, r, n, true);
  auto clients = reader.read_clients(ids);
  mira::h5_set_max_transfer_bytes(saved);
  for (size_t i = 0; i < ids.size(); ++i) expect_client_equal(clients[i], make_client(layout, ids[i]));
}

TEST(Checkpoint, SameStateGivesIdenticalBytesOnAnyRankCount) {
  TempDir tmp;
  const auto layout = test_layout(5);
  write_checkpoint(tmp.path + "/world", layout, 2);
  // Rank 0 alone writes the same state (owning every client) through MPI_COMM_SELF.
  if (world_rank() == 0) {
    mira::CheckpointWriter self(MPI_COMM_SELF, tmp.path + "/self", layout);
    std::vector<ClientSlices> all;
    for (int64_t k = 0; k < 5; ++k) all.push_back(make_client(layout, k));
    self.write(make_meta(2), make_globals(5, 2), all);
    auto slurp = [](const std::string& p) {
      std::ifstream in(p, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    std::string a = slurp(tmp.path + "/world/ckpt-2.h5"), b = slurp(tmp.path + "/self/ckpt-2.h5");
    EXPECT_FALSE(a.empty());
    EXPECT_TRUE(a == b) << "files differ: " << a.size() << " vs " << b.size() << " bytes";
  }
}

TEST(Checkpoint, MinimalLayoutAtRoundZero) {
  TempDir tmp;
  CheckpointLayout layout;  // no optimiser state, no data cursor, nothing sampled yet
  layout.clients = 3;
  layout.modules = {{"attn.c_attn", "", 1, 2, 4, 12}};
  mira::CheckpointWriter writer(MPI_COMM_WORLD, tmp.path, layout);
  std::vector<ClientSlices> mine;
  for (auto k : owned_by(3, world_rank(), world_size())) mine.push_back(make_client(layout, k));
  CheckpointGlobals g;
  g.graph_weights.assign(9, 0.5);
  g.sampled_per_round = 1;
  g.metrics = {{"train_loss", 0, 3, {}}};
  writer.write(make_meta(0), g, mine);
  mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path, layout);
  EXPECT_EQ(reader.meta().round, 0);
  auto got = reader.read_globals();
  EXPECT_EQ(got.graph_weights, g.graph_weights);
  EXPECT_TRUE(got.sampling.empty());
  EXPECT_EQ(got.sampled_per_round, 1);
  EXPECT_TRUE(got.rng_counters.empty());
  ASSERT_EQ(got.metrics.size(), 1u);
  EXPECT_EQ(got.metrics[0].rows, 0);
  EXPECT_EQ(got.metrics[0].cols, 3);
  auto ids = owned_by(3, world_rank(), world_size(), true);
  auto clients = reader.read_clients(ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    ClientSlices want = make_client(layout, ids[i]);
    EXPECT_TRUE(same_bits(clients[i].lora_A[0], want.lora_A[0]));
    EXPECT_TRUE(same_bits(clients[i].lora_B[0], want.lora_B[0]));
    EXPECT_TRUE(clients[i].cursor.empty());
  }
}

TEST(Checkpoint, RanksWithNothingToReadSelectNone) {
  TempDir tmp;
  const auto layout = test_layout(5);
  write_checkpoint(tmp.path, layout, 1);
  mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path + "/ckpt-1.h5", layout);
  // Rank 0 reads every client, the others nothing: still one collective read per dataset.
  std::vector<int64_t> ids;
  if (world_rank() == 0) ids = {4, 0, 2, 1, 3};
  auto clients = reader.read_clients(ids);
  ASSERT_EQ(clients.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) expect_client_equal(clients[i], make_client(layout, ids[i]));
}

TEST(Checkpoint, ResumesOnASmallerCommunicator) {
  TempDir tmp;
  const auto layout = test_layout(7);
  write_checkpoint(tmp.path, layout, 2);
  // Read on ranks [0, n-1) (one rank when n <= 2): a different rank count, same K.
  const int n = world_size(), readers = n > 1 ? n - 1 : 1;
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < readers ? 0 : MPI_UNDEFINED, world_rank(), &sub);
  if (sub != MPI_COMM_NULL) {
    int r = 0;
    MPI_Comm_rank(sub, &r);
    mira::CheckpointReader reader(sub, tmp.path, layout);
    auto ids = owned_by(7, r, readers);
    auto clients = reader.read_clients(ids);
    for (size_t i = 0; i < ids.size(); ++i) expect_client_equal(clients[i], make_client(layout, ids[i]));
    EXPECT_EQ(reader.read_globals().graph_weights, make_globals(7, 2).graph_weights);
    MPI_Comm_free(&sub);
  }
}

TEST(Checkpoint, PublishesAtomicallyAndKeepsTheLastN) {
  TempDir tmp;
  const auto layout = test_layout(3);
  for (int64_t round : {1, 2, 3, 4}) write_checkpoint(tmp.path, layout, round);
  if (world_rank() == 0) {
    auto list = mira::checkpoint_list(tmp.path);
    ASSERT_EQ(list.size(), 4u);
    for (int64_t round : {1, 2, 3, 4}) EXPECT_FALSE(mira::fs_exists(tmp.path + "/" + mira::checkpoint_tmp_name(round)));
    char target[64] = {0};
    ASSERT_GT(readlink((tmp.path + "/latest").c_str(), target, sizeof(target) - 1), 0);
    EXPECT_STREQ(target, "ckpt-4.h5");
  }
  mira::CheckpointWriter writer(MPI_COMM_WORLD, tmp.path, layout);
  EXPECT_EQ(writer.keep_last(2), 2);
  if (world_rank() == 0) {
    auto list = mira::checkpoint_list(tmp.path);
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].round, 3);
    EXPECT_EQ(list[1].round, 4);
  }
  mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path, layout);
  EXPECT_EQ(reader.meta().round, 4);
}

TEST(Checkpoint, CleansStaleTemporaries) {
  TempDir tmp;
  if (world_rank() == 0) {
    std::ofstream(tmp.path + "/ckpt-8.h5.tmp") << "half-written";
    std::ofstream(tmp.path + "/.latest.tmp.4242") << "";
  }
  mira::CheckpointWriter writer(MPI_COMM_WORLD, tmp.path, test_layout(2));
  EXPECT_EQ(writer.clean_stale(), 2);  // the count reaches every rank
  if (world_rank() == 0) {
    EXPECT_FALSE(mira::fs_exists(tmp.path + "/ckpt-8.h5.tmp"));
  }
  EXPECT_EQ(writer.clean_stale(), 0);
}

TEST(Checkpoint, CorruptedClientSliceIsRefusedOnEveryRank) {
  TempDir tmp;
  const auto layout = test_layout(6);
  std::string path = write_checkpoint(tmp.path, layout, 1);
  // Flip one byte inside client 4's slice of the second module's lora_B: (L, out, r) = 2*8*4 floats.
  const std::string dset = "/adapters/mlp.c_proj/lora_B";
  long long base = dataset_data_offset(path, dset);
  ASSERT_GT(base, 0);
  flip_byte(path, base + 4 * (2 * 8 * 4) * 4 + 37);

  mira::CheckpointReader reader(MPI_COMM_WORLD, path, layout);  // metadata is intact
  reader.read_globals();
  auto ids = owned_by(6, world_rank(), world_size());
  std::string msg = expect_user_error([&] { reader.read_clients(ids); });
  EXPECT_TRUE(contains(msg, "refused, not loaded")) << msg;
  EXPECT_TRUE(contains(msg, dset + " client 4 CRC32C mismatch")) << msg;
  // Clients whose slices are intact still read when asked for alone.
  std::vector<int64_t> good;
  if (world_rank() == 0) good = {0, 5};
  EXPECT_EQ(reader.read_clients(good).size(), good.size());
}

TEST(Checkpoint, CorruptedGlobalDatasetIsRefused) {
  TempDir tmp;
  const auto layout = test_layout(4);
  std::string path = write_checkpoint(tmp.path, layout, 1);
  flip_byte(path, dataset_data_offset(path, "/graph/weights") + 8 * 5 + 2);
  mira::CheckpointReader reader(MPI_COMM_WORLD, path, layout);
  std::string msg = expect_user_error([&] { reader.read_globals(); });
  EXPECT_TRUE(contains(msg, "/graph/weights CRC32C mismatch")) << msg;
}

TEST(Checkpoint, CorruptedMetadataIsRefusedByHdf5) {
  TempDir tmp;
  const auto layout = test_layout(4);
  std::string path = write_checkpoint(tmp.path, layout, 1);
  // A byte inside the object header of a dataset: the v2 header checksum no longer matches.
  long long header = object_header_offset(path, "/adapters/attn.c_attn/lora_A");
  ASSERT_GT(header, 0);
  flip_byte(path, header + 20);
  std::string msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, path, layout); });
  EXPECT_TRUE(contains(msg, "refused, not loaded")) << msg;
  EXPECT_TRUE(contains(msg, "HDF5")) << msg;
  if (world_rank() == 0) std::printf("metadata corruption message: %s\n", msg.c_str());
}

TEST(Checkpoint, CorruptedSuperblockIsRefused) {
  TempDir tmp;
  const auto layout = test_layout(2);
  std::string path = write_checkpoint(tmp.path, layout, 1);
  flip_byte(path, 20);  // inside superblock v2/v3 (48 bytes, checksummed), after the signature
  std::string msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, path, layout); });
  EXPECT_TRUE(contains(msg, "HDF5")) << msg;
}

TEST(Checkpoint, TruncatedFileIsRefused) {
  TempDir tmp;
  const auto layout = test_layout(4);
  std::string path = write_checkpoint(tmp.path, layout, 1);
  if (world_rank() == 0) {
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    ASSERT_EQ(truncate(path.c_str(), st.st_size / 2), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  std::string msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, path, layout); });
  EXPECT_TRUE(contains(msg, "refused, not loaded")) << msg;
  if (world_rank() == 0) std::printf("truncation message: %s\n", msg.c_str());
  // Not an HDF5 file at all.
  if (world_rank() == 0) std::ofstream(tmp.path + "/ckpt-9.h5") << "not hdf5";
  MPI_Barrier(MPI_COMM_WORLD);
  expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path + "/ckpt-9.h5", layout); });
  expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path + "/ckpt-404.h5", layout); });
}

TEST(Checkpoint, ShapeMismatchNamesDatasetAndBothShapes) {
  TempDir tmp;
  const auto layout = test_layout(4);
  std::string path = write_checkpoint(tmp.path, layout, 1);
  auto other = layout;
  other.modules[1].rank = 8;
  std::string msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, path, other); });
  EXPECT_TRUE(contains(msg, "dataset /adapters/mlp.c_proj/lora_A has shape [4, 2, 8, 32], the config expects [4, 2, 4, 32]") ||
              contains(msg, "dataset /adapters/mlp.c_proj/lora_A has shape [4, 2, 4, 32], the config expects [4, 2, 8, 32]"))
      << msg;
  auto more_clients = layout;
  more_clients.clients = 5;
  msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, path, more_clients); });
  EXPECT_TRUE(contains(msg, "holds 4 clients, the config has 5")) << msg;
  auto extra_module = layout;
  extra_module.modules.push_back({"mlp.c_fc", "mlp.c_fc", 2, 4, 8, 32});
  msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, path, extra_module); });
  EXPECT_TRUE(contains(msg, "/adapters/mlp.c_fc/lora_A is missing")) << msg;
  // A file without optimiser state reads with a layout that does not ask for it, and the reverse fails.
  auto no_opt = layout;
  no_opt.optimizer = false;
  mira::CheckpointReader ok(MPI_COMM_WORLD, path, no_opt);
  auto ids = owned_by(4, world_rank(), world_size());
  auto c = ok.read_clients(ids);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_TRUE(same_bits(c[i].lora_A[0], make_client(layout, ids[i]).lora_A[0]));
}

TEST(Checkpoint, NewerFormatVersionAndForeignFilesAreRefused) {
  TempDir tmp;
  const auto layout = test_layout(2);
  std::string path = write_checkpoint(tmp.path, layout, 1);
  if (world_rank() == 0) {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen_by_name(f, "/", "format_version", H5P_DEFAULT, H5P_DEFAULT);
    int64_t v = 2;
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Fclose(f);
    // An HDF5 file that is not ours.
    hid_t g = H5Fcreate((tmp.path + "/foreign.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(g);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  std::string msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, path, layout); });
  EXPECT_TRUE(contains(msg, "format version 2; this build reads version 1")) << msg;
  msg = expect_user_error([&] { mira::CheckpointReader reader(MPI_COMM_WORLD, tmp.path + "/foreign.h5", layout); });
  EXPECT_TRUE(contains(msg, "not a mira-hpc-checkpoint file")) << msg;
}

TEST(Checkpoint, WriterRefusesInconsistentOwnershipOnEveryRank) {
  TempDir tmp;
  const auto layout = test_layout(3);
  mira::CheckpointWriter writer(MPI_COMM_WORLD, tmp.path, layout);
  // Every rank claims client 0 (owned n times) and nobody owns clients 1 and 2.
  std::vector<ClientSlices> mine{make_client(layout, 0)};
  EXPECT_THROW(writer.write(make_meta(1), make_globals(3, 1), mine), mira::InternalError);
  // A slice of the wrong size is refused before any HDF5 call.
  std::vector<ClientSlices> bad;
  for (auto k : owned_by(3, world_rank(), world_size())) bad.push_back(make_client(layout, k));
  if (world_rank() == 0 && !bad.empty()) bad[0].lora_B[1].pop_back();
  EXPECT_THROW(writer.write(make_meta(1), make_globals(3, 1), bad), mira::InternalError);
  if (world_rank() == 0) {
    EXPECT_TRUE(mira::checkpoint_list(tmp.path).empty());
  }
}

TEST(Checkpoint, IndependentTransferFailsTheCollectiveAssertion) {
  TempDir tmp;
  const int n = world_size(), r = world_rank();
  mira::PropList fapl = mira::PropList::file_access_mpio(MPI_COMM_WORLD);
  mira::File f = mira::File::create(tmp.path + "/x.h5", fapl);
  mira::Dataset d = mira::Dataset::create(f.id(), "v", H5T_NATIVE_DOUBLE, {(hsize_t)n, 4});
  std::vector<double> row(4, (double)r);
  // The collective path passes the check (it runs inside h5_write_rows).
  EXPECT_NO_THROW(mira::h5_write_rows(MPI_COMM_WORLD, d, H5T_NATIVE_DOUBLE, {(hsize_t)r}, row.data(), "v"));
  // An independent transfer must be caught.
  mira::PropList dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_INDEPENDENT);
  mira::Dataspace fs = d.space();
  fs.select_rows({(hsize_t)r});
  mira::Dataspace ms = mira::Dataspace::simple({4});
  ASSERT_GE(H5Dwrite(d.id(), H5T_NATIVE_DOUBLE, ms.id(), fs.id(), dxpl.id(), row.data()), 0);
  try {
    mira::h5_check_collective(dxpl, "v (independent)");
    ADD_FAILURE() << "independent transfer not detected";
  } catch (const mira::InternalError& e) {
    EXPECT_TRUE(contains(e.what(), "did not go collective")) << e.what();
    EXPECT_TRUE(contains(e.what(), "independent transfer requested")) << e.what();
  }
  d.close();
  f.close();
}

// The committed fixture (written by this C++ writer, see WritesFixtureWhenAsked) still reads with
// the current reader: catches accidental format changes. Regenerate only with a version bump.
TEST(Checkpoint, ReadsTheCommittedFixture) {
  const auto layout = test_layout(3);
  mira::CheckpointReader reader(MPI_COMM_WORLD, std::string(MIRA_FIXTURES_DIR) + "/io", layout);
  EXPECT_EQ(reader.meta().round, 3);
  EXPECT_EQ(reader.meta().algorithm, "mira");
  auto g = reader.read_globals();
  EXPECT_EQ(g.sampling, make_globals(3, 3).sampling);
  EXPECT_EQ(g.metrics.back().values, make_globals(3, 3).metrics[0].values);
  auto ids = owned_by(3, world_rank(), world_size());
  auto clients = reader.read_clients(ids);
  for (size_t i = 0; i < ids.size(); ++i) expect_client_equal(clients[i], make_client(layout, ids[i]));
}

// MIRA_WRITE_IO_FIXTURE=<dir> ./test_mpi_checkpoint --gtest_filter=*Fixture*  writes <dir>/ckpt-3.h5
// and <dir>/latest (commit them to tests/fixtures/io). Skipped otherwise.
TEST(Checkpoint, WritesFixtureWhenAsked) {
  const char* dir = std::getenv("MIRA_WRITE_IO_FIXTURE");
  if (!dir || !*dir) GTEST_SKIP() << "set MIRA_WRITE_IO_FIXTURE=<dir> to regenerate the fixture";
  write_checkpoint(dir, test_layout(3), 3);
}

}  // namespace
