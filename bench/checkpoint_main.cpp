// Benchmark driver (not a test): write and read time and MB/s of our parallel-HDF5 checkpoint
// (io/checkpoint.h: CheckpointWriter::write, CheckpointReader open + read_globals + read_clients)
// beside a plain MPI-IO peer moving the same per-client bytes into one shared file
// (MPI_File_write_at_all / MPI_File_read_at_all, each rank one contiguous block, as the block
// distribution of clients gives). Both sides pay the same fsync: our writer's publish step fsyncs
// the file on rank 0 after the collective close; the peer closes collectively and rank 0 fsyncs.
// Before each read the file's clean pages are dropped from the page cache (posix_fadvise
// DONTNEED after the fsync), so reads come from the disk, not from memory.
// Run under mpirun by bench/checkpoint.sh; rank 0 prints one JSON line per figure on stdout
// (ratio = ours / peer, higher is better for us) and human text on stderr.
//   bench_checkpoint --dir D [--K 16] [--layers 36] [--width 1280] [--r 16] [--optimizer 0|1]
//                    [--repeat 1] [--shape-name gpt2-large-shape]
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fed/assignment.h"
#include "io/checkpoint.h"
#include "io/crc32c.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"
#include "bench/bench_main.h"

namespace {

using namespace mira;

struct Options {
  std::string dir;
  int64_t K = 16;
  int64_t layers = 36;   // GPT-2 large
  int64_t width = 1280;  // GPT-2 large
  int64_t r = 16;
  bool optimizer = false;
  int repeat = 1;
  std::string shape_name = "gpt2-large-shape";
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw UserError("bench_checkpoint: " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--dir") o.dir = val();
    else if (a == "--K") o.K = std::stoll(val());
    else if (a == "--layers") o.layers = std::stoll(val());
    else if (a == "--width") o.width = std::stoll(val());
    else if (a == "--r") o.r = std::stoll(val());
    else if (a == "--optimizer") o.optimizer = std::stoi(val()) != 0;
    else if (a == "--repeat") o.repeat = std::stoi(val());
    else if (a == "--shape-name") o.shape_name = val();
    else throw UserError("bench_checkpoint: unknown option " + a +
                         " (allowed: --dir --K --layers --width --r --optimizer --repeat --shape-name)");
  }
  if (o.dir.empty()) throw UserError("bench_checkpoint: --dir is required");
  if (o.K < 1 || o.layers < 1 || o.width < 1 || o.r < 1 || o.repeat < 1)
    throw UserError("bench_checkpoint: --K, --layers, --width, --r and --repeat must be >= 1");
  return o;
}

// The paper's LoRA targets on a GPT-2 block of width C: PEFT target_modules ["c_attn", "c_proj"]
// matches attn.c_attn (C -> 3C), attn.c_proj (C -> C) and mlp.c_proj (4C -> C).
CheckpointLayout make_layout(const Options& o) {
  CheckpointLayout l;
  l.clients = o.K;
  l.optimizer = o.optimizer;
  l.cursor_width = 2;  // a data cursor like the round loop's (epoch, position): a few bytes per client
  l.modules = {{"attn.c_attn", "attn.c_attn", o.layers, o.r, o.width, 3 * o.width},
               {"attn.c_proj", "attn.c_proj", o.layers, o.r, o.width, o.width},
               {"mlp.c_proj", "mlp.c_proj", o.layers, o.r, 4 * o.width, o.width}};
  return l;
}

// Deterministic, non-constant contents (the CRC32C of every slice is part of our cost).
std::vector<float> fill(size_t n, int64_t client, int salt) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>((client * 7919 + salt * 104729 + int64_t(i % 65521)) % 2048) * 1e-3f;
  return v;
}

ClientSlices make_client(const CheckpointLayout& l, int64_t k) {
  ClientSlices c;
  c.client = k;
  int salt = 0;
  for (const auto& m : l.modules) {
    const size_t na = size_t(m.layers * m.rank * m.in_features), nb = size_t(m.layers * m.out_features * m.rank);
    c.lora_A.push_back(fill(na, k, salt++));
    c.lora_B.push_back(fill(nb, k, salt++));
    if (l.optimizer) {
      c.lora_A_exp_avg.push_back(fill(na, k, salt++));
      c.lora_A_exp_avg_sq.push_back(fill(na, k, salt++));
      c.lora_B_exp_avg.push_back(fill(nb, k, salt++));
      c.lora_B_exp_avg_sq.push_back(fill(nb, k, salt++));
    }
  }
  c.optimizer_step = 10;
  c.cursor.assign(size_t(l.cursor_width), k);
  return c;
}

// Payload bytes of one client: every per-client dataset (floats, step, cursor), CRCs excluded.
int64_t client_bytes(const CheckpointLayout& l) {
  int64_t floats = 0;
  for (const auto& m : l.modules) floats += m.layers * m.rank * (m.in_features + m.out_features);
  int64_t b = floats * int64_t(sizeof(float)) * (l.optimizer ? 3 : 1);
  if (l.optimizer) b += int64_t(sizeof(int64_t));
  return b + l.cursor_width * int64_t(sizeof(int64_t));
}

// Drops the file's (clean, fsynced) pages from the page cache so the next read hits the disk.
void drop_cache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  MIRA_CHECK_ERRNO(fd >= 0, path);
  ::fdatasync(fd);
  MIRA_CHECK(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "posix_fadvise " + path);
  ::close(fd);
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  MIRA_CHECK_ERRNO(fd >= 0, path);
  MIRA_CHECK_ERRNO(::fsync(fd) == 0, path);
  ::close(fd);
}

// Collective MPI-IO transfer of `bytes` at `offset`, in pieces of at most 1 GiB (MPI counts are
// int); every rank makes the same number of collective calls (zero-length ones when done).
void mpiio_transfer(MPI_File fh, MPI_Comm comm, int64_t offset, char* buf, int64_t bytes, bool write) {
  const int64_t piece = int64_t(1) << 30;
  int64_t mine = (bytes + piece - 1) / piece, calls = 0;
  MIRA_CHECK_MPI(MPI_Allreduce(&mine, &calls, 1, MPI_INT64_T, MPI_MAX, comm));
  for (int64_t i = 0; i < calls; ++i) {
    const int64_t start = std::min(bytes, i * piece), n = std::min(piece, bytes - start);
    if (write)
      MIRA_CHECK_MPI(MPI_File_write_at_all(fh, offset + start, buf + start, int(n), MPI_BYTE, MPI_STATUS_IGNORE));
    else
      MIRA_CHECK_MPI(MPI_File_read_at_all(fh, offset + start, buf + start, int(n), MPI_BYTE, MPI_STATUS_IGNORE));
  }
}

double now() { return MPI_Wtime(); }

void json(const char* metric, double ours, double peer, const char* peer_name, const std::string& config) {
  std::printf(
      "{\"bench\":\"checkpoint\",\"metric\":\"%s\",\"value\":%.1f,\"unit\":\"MB/s\",\"peer\":\"%s\","
      "\"peer_value\":%.1f,\"ratio\":%.3f,\"config\":\"%s\"}\n",
      metric, ours, peer_name, peer, ours / peer, config.c_str());
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const Options o = parse(argc, argv);
  const CheckpointLayout layout = make_layout(o);
  const int64_t K = o.K;

  // Block distribution of clients (fed/assignment.h), as the round loop owns them.
  const int64_t first = assignment_first_client(int(K), size, rank);
  const int64_t end = assignment_first_client(int(K), size, rank + 1);  // owned block [first, end)
  std::vector<ClientSlices> owned;
  for (int64_t k = first; k < end; ++k) owned.push_back(make_client(layout, k));
  const int64_t per_client = client_bytes(layout);
  const int64_t total = per_client * K;
  const int64_t my_bytes = per_client * int64_t(owned.size());

  // The peer's bytes: this rank's clients as one contiguous block at first * per_client.
  std::vector<char> peer_buf(static_cast<size_t>(my_bytes));
  for (size_t i = 0; i < peer_buf.size(); ++i) peer_buf[i] = char(i * 131 + rank);

  CheckpointMeta meta;
  meta.algorithm = "mira";
  meta.seed = 1;
  meta.config_text = "[bench]\nname = checkpoint\n";
  meta.provenance = "bench_checkpoint";
  CheckpointGlobals globals;
  if (rank == 0) {
    globals.graph_weights.assign(size_t(K * K), 0.5);
    globals.sampled_per_round = std::min<int64_t>(8, K);
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t j = 0; j < globals.sampled_per_round; ++j) globals.sampling.push_back(j);
    globals.rng_counters = {1, 2, 3};
  }

  std::string sub = o.dir + "/np" + std::to_string(size);
  if (rank == 0) std::filesystem::create_directories(sub);
  MPI_Barrier(comm);
  CheckpointWriter writer(comm, sub, layout);

  double best_w = 1e300, best_r = 1e300, best_pw = 1e300, best_pr = 1e300;
  std::vector<int64_t> want;
  for (int64_t k = first; k < end; ++k) want.push_back(k);
  for (int it = 0; it < o.repeat; ++it) {
    // Ours and the peer alternate which goes first (a shared machine's page cache and load should
    // not favour one side); the best time of each over the repeats is reported.
    auto run_ours = [&] {
      // ---- ours: write
      meta.round = it + 1;
      MPI_Barrier(comm);
      double t0 = now();
      std::string path = writer.write(meta, globals, owned);
      MPI_Barrier(comm);
      best_w = std::min(best_w, now() - t0);
      if (rank == 0) drop_cache(path);
      // ---- ours: read (what a resume does: open + validate, globals, own clients)
      MPI_Barrier(comm);
      t0 = now();
      {
        CheckpointReader reader(comm, path, layout);
        CheckpointGlobals g = reader.read_globals();
        std::vector<ClientSlices> back = reader.read_clients(want);
        MIRA_CHECK(back.size() == want.size() && (back.empty() || back[0].lora_A[0] == owned[0].lora_A[0]),
                   "read back differs");
        reader.close();
      }
      MPI_Barrier(comm);
      best_r = std::min(best_r, now() - t0);
      if (rank == 0) {
        std::filesystem::remove(sub + "/latest");
        std::filesystem::remove(path);
      }
    };
    auto run_peer = [&] {
      // ---- peer: MPI_File_write_at_all of the same bytes into one shared file + the same fsync
      const std::string ppath = sub + "/peer.bin";
      MPI_Barrier(comm);
      double t0 = now();
      {
        MPI_File fh;
        MIRA_CHECK_MPI(MPI_File_open(comm, ppath.c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh));
        mpiio_transfer(fh, comm, first * per_client, peer_buf.data(), my_bytes, true);
        MIRA_CHECK_MPI(MPI_File_close(&fh));
        MPI_Barrier(comm);
        if (rank == 0) fsync_path(ppath);
      }
      MPI_Barrier(comm);
      best_pw = std::min(best_pw, now() - t0);
      if (rank == 0) drop_cache(ppath);
      // ---- peer: MPI_File_read_at_all, into freshly allocated memory inside the timed region (as a
      // resume reads into fresh memory, and as our reader's time includes its result vectors)
      MPI_Barrier(comm);
      t0 = now();
      std::vector<char> back(static_cast<size_t>(my_bytes));
      {
        MPI_File fh;
        MIRA_CHECK_MPI(MPI_File_open(comm, ppath.c_str(), MPI_MODE_RDONLY, MPI_INFO_NULL, &fh));
        mpiio_transfer(fh, comm, first * per_client, back.data(), my_bytes, false);
        MIRA_CHECK_MPI(MPI_File_close(&fh));
      }
      MPI_Barrier(comm);
      best_pr = std::min(best_pr, now() - t0);
      MIRA_CHECK(back == peer_buf, "peer read back differs");
      if (rank == 0) std::filesystem::remove(ppath);
    };
    if (it % 2 == 0) run_ours(), run_peer();
    else run_peer(), run_ours();
    if (rank == 0)
      std::fprintf(stderr, "  np%d after rep %d, best so far: ours write %.2fs read %.2fs; MPI-IO write %.2fs read %.2fs\n", size, it + 1,
                   best_w, best_r, best_pw, best_pr);
  }

  if (rank == 0) {
    const double mb = double(total) / 1e6;
    char cfg[512];
    std::snprintf(cfg, sizeof cfg, "np%d K%lld %s L%lld C%lld r%lld c_attn+attn.c_proj+mlp.c_proj %s %.1fMB/client %.0fMB%s",
                  size, (long long)K, o.shape_name.c_str(), (long long)o.layers, (long long)o.width, (long long)o.r,
                  o.optimizer ? "adapters+adam" : "adapters", double(per_client) / 1e6, mb,
                  o.repeat > 1 ? (" best-of-" + std::to_string(o.repeat)).c_str() : "");
    std::fprintf(stderr, "checkpoint %s: ours write %.2fs (%.1f MB/s) read %.2fs (%.1f MB/s); MPI-IO write %.2fs (%.1f MB/s) read %.2fs (%.1f MB/s)\n",
                 cfg, best_w, mb / best_w, best_r, mb / best_r, best_pw, mb / best_pw, best_pr, mb / best_pr);
    json("write_MBps", mb / best_w, mb / best_pw, "MPI_File_write_at_all", cfg);
    json("read_MBps", mb / best_r, mb / best_pr, "MPI_File_read_at_all", cfg);
    std::error_code ec;
    std::filesystem::remove_all(sub, ec);
  }
  // Where our extra time goes (rank 0, its own clients, one pass each): the CRC32C of every slice
  // and the copy of the slices into a freshly allocated buffer (first-touch page faults included),
  // which the writer does per dataset before H5Dwrite (the reader does the reverse after H5Dread).
  if (rank == 0 && !owned.empty()) {
    double t0 = now();
    uint32_t acc = 0;
    int64_t n = 0;
    for (const auto& c : owned)
      for (const auto* set : {&c.lora_A, &c.lora_B, &c.lora_A_exp_avg, &c.lora_A_exp_avg_sq, &c.lora_B_exp_avg,
                              &c.lora_B_exp_avg_sq})
        for (const auto& v : *set) acc ^= crc32c(v.data(), v.size() * sizeof(float)), n += int64_t(v.size() * sizeof(float));
    const double t_crc = now() - t0;
    t0 = now();
    {
      std::unique_ptr<char[]> fresh(new char[size_t(n)]);
      size_t at = 0;
      for (const auto& c : owned)
        for (const auto* set : {&c.lora_A, &c.lora_B, &c.lora_A_exp_avg, &c.lora_A_exp_avg_sq, &c.lora_B_exp_avg,
                                &c.lora_B_exp_avg_sq})
          for (const auto& v : *set) std::memcpy(fresh.get() + at, v.data(), v.size() * sizeof(float)), at += v.size() * sizeof(float);
      acc ^= uint32_t(fresh[size_t(n) / 2]);
    }
    const double t_pack = now() - t0;
    std::fprintf(stderr,
                 "  components (rank 0, %.0f MB of its clients' floats): crc32c %.0f MB/s, copy into a fresh buffer "
                 "%.0f MB/s (checksum %08x)\n",
                 double(n) / 1e6, double(n) / 1e6 / t_crc, double(n) / 1e6 / t_pack, acc);
    const std::string cfg = "np" + std::to_string(size) + " rank0 " + std::to_string(owned.size()) + " clients " +
                            o.shape_name + (o.optimizer ? " adapters+adam" : " adapters") + " component";
    std::printf("{\"bench\":\"checkpoint\",\"metric\":\"crc32c_MBps\",\"value\":%.1f,\"unit\":\"MB/s\",\"peer\":null,"
                "\"peer_value\":null,\"ratio\":null,\"config\":\"%s\"}\n",
                double(n) / 1e6 / t_crc, cfg.c_str());
    std::printf("{\"bench\":\"checkpoint\",\"metric\":\"fresh_copy_MBps\",\"value\":%.1f,\"unit\":\"MB/s\",\"peer\":null,"
                "\"peer_value\":null,\"ratio\":null,\"config\":\"%s\"}\n",
                double(n) / 1e6 / t_pack, cfg.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mira::bench_main(argc, argv, "bench_checkpoint", run); }
