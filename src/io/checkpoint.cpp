// Checkpoint writer and reader (checkpoint.h) on top of the HDF5 RAII layer (h5.h).
// Pattern of every collective step: do the local work inside run_agreed(), which catches the
// error of any rank and rethrows the same error on every rank, so no rank is left waiting in a
// collective that another rank skipped. Between collective HDF5 transfers nothing throws:
// CRC mismatches are collected and agreed on after the last transfer.
#include "io/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "io/checkpoint_dir.h"
#include "io/crc32c.h"
#include "io/fs_atomic.h"
#include "io/h5.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"

namespace mira {
namespace {

// Inside a catch block of a validation step: re-throws what it caught as the one refusal message
// ("checkpoint X refused, not loaded: ..."); HDF5 failures carry HDF5's own text.
[[noreturn]] void rethrow_as_refusal(const std::string& why) {
  try {
    throw;
  } catch (const UserError& e) {
    std::string msg = e.what();
    if (msg.rfind("checkpoint ", 0) != 0) msg = why + msg;  // attribute readers name only the attribute
    throw UserError(msg);
  } catch (const InternalError& e) {
    std::string h5 = h5_last_error();
    throw UserError(why + "HDF5 cannot read it" + (h5.empty() ? std::string(" (") + e.what() + ")" : ": " + h5));
  }
}

// ---------------------------------------------------------------- agreement across ranks

int comm_rank(MPI_Comm comm) {
  int r = 0;
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &r));
  return r;
}

void bcast_bytes(MPI_Comm comm, std::vector<char>& buf, int root) {
  uint64_t n = buf.size();
  MIRA_CHECK_MPI(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm));
  buf.resize(n);
  const uint64_t piece = 1u << 30;  // MPI counts are int: broadcast in 1 GiB pieces
  for (uint64_t off = 0; off < n; off += piece)
    MIRA_CHECK_MPI(MPI_Bcast(buf.data() + off, (int)std::min(piece, n - off), MPI_CHAR, root, comm));
}

// Every rank calls this; if any rank has an error, every rank throws the error of the lowest such
// rank (UserError or InternalError, as it was raised).
void agree(MPI_Comm comm, const std::string& local_error, bool user_error) {
  int rank = comm_rank(comm);
  int mine = local_error.empty() ? INT_MAX : rank, first = INT_MAX;
  MIRA_CHECK_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == INT_MAX) return;
  std::vector<char> buf;
  if (rank == first) {
    buf.push_back(user_error ? 1 : 0);
    buf.insert(buf.end(), local_error.begin(), local_error.end());
  }
  bcast_bytes(comm, buf, first);
  std::string message(buf.begin() + 1, buf.end());
  if (rank != first) message += " (reported by rank " + std::to_string(first) + ")";
  if (buf[0]) throw UserError(message);
  throw InternalError(message);
}

template <typename F>
void run_agreed(MPI_Comm comm, F&& body) {
  std::string error;
  bool user = false, failed = false;
  try {
    body();
  } catch (const UserError& e) {
    error = e.what();
    user = failed = true;
  } catch (const std::exception& e) {
    error = e.what();
    failed = true;
  }
  if (failed && error.empty()) error = "(error without a message)";
  agree(comm, error, user);
}

// ---------------------------------------------------------------- byte packing for broadcasts

class Packer {
 public:
  template <typename T> void put(const T& v) {
    const char* p = reinterpret_cast<const char*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
  }
  void put_str(const std::string& s) {
    put<uint64_t>(s.size());
    buf.insert(buf.end(), s.begin(), s.end());
  }
  template <typename T> void put_vec(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    const char* p = reinterpret_cast<const char*>(v.data());
    buf.insert(buf.end(), p, p + v.size() * sizeof(T));
  }
  std::vector<char> buf;
};

class Unpacker {
 public:
  explicit Unpacker(const std::vector<char>& b) : buf_(b) {}
  template <typename T> T get() {
    T v;
    take(&v, sizeof(T));
    return v;
  }
  std::string get_str() {
    std::string s(get<uint64_t>(), '\0');
    take(s.data(), s.size());
    return s;
  }
  template <typename T> std::vector<T> get_vec() {
    std::vector<T> v(get<uint64_t>());
    take(v.data(), v.size() * sizeof(T));
    return v;
  }

 private:
  void take(void* dst, size_t n) {
    MIRA_CHECK(pos_ + n <= buf_.size(), "broadcast buffer too short");
    if (n) std::memcpy(dst, buf_.data() + pos_, n);
    pos_ += n;
  }
  const std::vector<char>& buf_;
  size_t pos_ = 0;
};

void pack_meta(Packer& p, const CheckpointMeta& m) {
  p.put(m.round);
  p.put_str(m.algorithm);
  p.put(m.seed);
  p.put_str(m.config_text);
  p.put_str(m.base_model_path);
  p.put_str(m.base_model_sha256);
  p.put_str(m.provenance);
}

CheckpointMeta unpack_meta(Unpacker& u) {
  CheckpointMeta m;
  m.round = u.get<int64_t>();
  m.algorithm = u.get_str();
  m.seed = u.get<int64_t>();
  m.config_text = u.get_str();
  m.base_model_path = u.get_str();
  m.base_model_sha256 = u.get_str();
  m.provenance = u.get_str();
  return m;
}

void pack_metric_shapes(Packer& p, const std::vector<MetricTable>& tables, bool with_values) {
  p.put<uint64_t>(tables.size());
  for (const auto& t : tables) {
    p.put_str(t.name);
    p.put(t.rows);
    p.put(t.cols);
    if (with_values) p.put_vec(t.values);
  }
}

std::vector<MetricTable> unpack_metric_shapes(Unpacker& u, bool with_values) {
  std::vector<MetricTable> tables(u.get<uint64_t>());
  for (auto& t : tables) {
    t.name = u.get_str();
    t.rows = u.get<int64_t>();
    t.cols = u.get<int64_t>();
    if (with_values) t.values = u.get_vec<double>();
  }
  return tables;
}

// ---------------------------------------------------------------- layout: per-client fields

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
  s << ']';
  return s.str();
}

hsize_t product(const std::vector<hsize_t>& dims) {
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

// A per-client dataset [K, item...] and how to reach its slice in ClientSlices.
struct ClientField {
  std::string path;                // "/adapters/attn.c_attn/lora_A"
  std::vector<hsize_t> item_dims;  // per-client shape
  hid_t type;
  const char* type_name;
  size_t elem_bytes;
  std::function<const void*(const ClientSlices&, size_t& count)> view;
  std::function<void*(ClientSlices&, size_t count)> prepare;  // sizes the slice for reading
  std::string crc_path() const { return path + "_crc32c"; }
  size_t item_count() const { return (size_t)product(item_dims); }
};

using ModuleTensors = std::vector<std::vector<float>> ClientSlices::*;

ClientField float_field(const std::string& path, std::vector<hsize_t> dims, ModuleTensors member, size_t module) {
  return ClientField{
      path, std::move(dims), H5T_NATIVE_FLOAT, "float32", sizeof(float),
      [member, module](const ClientSlices& c, size_t& n) -> const void* {
        const auto& v = c.*member;
        n = module < v.size() ? v[module].size() : 0;
        return module < v.size() ? v[module].data() : nullptr;
      },
      [member, module](ClientSlices& c, size_t n) -> void* {
        auto& v = c.*member;
        if (v.size() <= module) v.resize(module + 1);
        v[module].resize(n);
        return v[module].data();
      }};
}

std::vector<ClientField> client_fields(const CheckpointLayout& layout) {
  std::vector<ClientField> f;
  for (size_t i = 0; i < layout.modules.size(); ++i) {
    const auto& m = layout.modules[i];
    std::vector<hsize_t> a{(hsize_t)m.layers, (hsize_t)m.rank, (hsize_t)m.in_features};   // (L, r, in)
    std::vector<hsize_t> b{(hsize_t)m.layers, (hsize_t)m.out_features, (hsize_t)m.rank};  // (L, out, r)
    std::string g = "/adapters/" + m.name + "/";
    f.push_back(float_field(g + "lora_A", a, &ClientSlices::lora_A, i));
    f.push_back(float_field(g + "lora_B", b, &ClientSlices::lora_B, i));
  }
  if (layout.optimizer) {
    for (size_t i = 0; i < layout.modules.size(); ++i) {
      const auto& m = layout.modules[i];
      std::vector<hsize_t> a{(hsize_t)m.layers, (hsize_t)m.rank, (hsize_t)m.in_features};
      std::vector<hsize_t> b{(hsize_t)m.layers, (hsize_t)m.out_features, (hsize_t)m.rank};
      std::string g = "/optimizer/" + m.name + "/";
      f.push_back(float_field(g + "lora_A_exp_avg", a, &ClientSlices::lora_A_exp_avg, i));
      f.push_back(float_field(g + "lora_A_exp_avg_sq", a, &ClientSlices::lora_A_exp_avg_sq, i));
      f.push_back(float_field(g + "lora_B_exp_avg", b, &ClientSlices::lora_B_exp_avg, i));
      f.push_back(float_field(g + "lora_B_exp_avg_sq", b, &ClientSlices::lora_B_exp_avg_sq, i));
    }
    f.push_back(ClientField{"/optimizer/step", {}, H5T_NATIVE_INT64, "int64", sizeof(int64_t),
                            [](const ClientSlices& c, size_t& n) -> const void* {
                              n = 1;
                              return &c.optimizer_step;
                            },
                            [](ClientSlices& c, size_t) -> void* { return &c.optimizer_step; }});
  }
  if (layout.cursor_width > 0)
    f.push_back(ClientField{"/data/cursor", {(hsize_t)layout.cursor_width}, H5T_NATIVE_INT64, "int64", sizeof(int64_t),
                            [](const ClientSlices& c, size_t& n) -> const void* {
                              n = c.cursor.size();
                              return c.cursor.data();
                            },
                            [](ClientSlices& c, size_t n) -> void* {
                              c.cursor.resize(n);
                              return c.cursor.data();
                            }});
  return f;
}

// The groups the layout needs, parents first.
std::vector<std::string> layout_groups(const CheckpointLayout& layout) {
  std::vector<std::string> g{"/adapters"};
  for (const auto& m : layout.modules) g.push_back("/adapters/" + m.name);
  if (layout.optimizer) {
    g.push_back("/optimizer");
    for (const auto& m : layout.modules) g.push_back("/optimizer/" + m.name);
  }
  if (layout.cursor_width > 0) g.push_back("/data");
  g.push_back("/graph");
  g.push_back("/rng");
  g.push_back("/metrics");
  return g;
}

void check_layout(const CheckpointLayout& layout) {
  MIRA_CHECK(layout.clients > 0, "clients=" + std::to_string(layout.clients));
  MIRA_CHECK(layout.cursor_width >= 0, "cursor_width=" + std::to_string(layout.cursor_width));
  std::set<std::string> names;
  for (const auto& m : layout.modules) {
    MIRA_CHECK(!m.name.empty() && m.name.find('/') == std::string::npos && m.name != "." && names.insert(m.name).second,
               "module name '" + m.name + "' must be unique, non-empty and contain no '/'");
    MIRA_CHECK(m.layers > 0 && m.rank > 0 && m.in_features > 0 && m.out_features > 0,
               "module " + m.name + " has a non-positive dimension");
  }
}

// ---------------------------------------------------------------- global datasets

void write_global(MPI_Comm comm, const File& file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims,
                  const void* data, size_t bytes, bool writes) {
  Dataset d = Dataset::create(file.id(), path, type, dims);
  h5_write_whole(comm, d, type, writes, data, path);
  h5_attr_write_uint32(d.id(), "crc32c", crc32c(data, bytes));
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

std::string refused(const std::string& path) { return "checkpoint " + path + " refused, not loaded: "; }

// Per-client datasets of at most this many bytes on a rank are packed into one buffer and moved in
// one collective call; larger ones move slice by slice from/to the slices' own storage. Copying
// 1 MiB takes well under a millisecond, less than the extra collective calls it saves (K per
// dataset for the step and cursor datasets, a few bytes per client). Packing stops at one
// transfer's size (h5_max_transfer_bytes), so tests that lower it also exercise the direct path.
size_t pack_max_bytes() { return std::min(size_t(1) << 20, h5_max_transfer_bytes()); }

}  // namespace

// ================================================================ writer

CheckpointWriter::CheckpointWriter(MPI_Comm comm, std::string dir, CheckpointLayout layout)
    : comm_(comm), dir_(std::move(dir)), layout_(std::move(layout)) {
  run_agreed(comm_, [&] {
    check_layout(layout_);
    if (comm_rank(comm_) == 0) fs_make_dirs(dir_);
  });
  // Every rank opens the checkpoint files (MPI-IO): each checks now that it may create files here,
  // so an unwritable directory is a start-up refusal naming it, not an HDF5 failure in H5Fcreate
  // after the first round's work.
  run_agreed(comm_, [&] {
    if (::access(dir_.c_str(), W_OK | X_OK) != 0) {  // another rank's failure says "(reported by rank N)"
      const int err = errno;
      throw UserError("checkpoint directory " + dir_ + " is not writable: " + std::strerror(err) +
                      " (the checkpoints go to <run.output>/checkpoints; make it writable or choose another "
                      "run.output)");
    }
  });
}

int CheckpointWriter::clean_stale() {
  int removed = 0;
  run_agreed(comm_, [&] {
    if (comm_rank(comm_) == 0) removed = checkpoint_clean_stale(dir_);
  });
  MIRA_CHECK_MPI(MPI_Bcast(&removed, 1, MPI_INT, 0, comm_));
  return removed;
}

int CheckpointWriter::keep_last(int keep) {
  int removed = 0;
  run_agreed(comm_, [&] {
    if (comm_rank(comm_) == 0) removed = checkpoint_keep_last(dir_, keep);
  });
  MIRA_CHECK_MPI(MPI_Bcast(&removed, 1, MPI_INT, 0, comm_));
  return removed;
}

std::string CheckpointWriter::write(const CheckpointMeta& meta_in, const CheckpointGlobals& globals_in,
                                    const std::vector<ClientSlices>& owned) {
  const int rank = comm_rank(comm_);
  const int64_t K = layout_.clients;

  // Run-wide values come from rank 0, so attributes (metadata, written by all ranks) are identical.
  CheckpointMeta meta;
  CheckpointGlobals g;
  {
    Packer p;
    if (rank == 0) {
      pack_meta(p, meta_in);
      p.put_vec(globals_in.graph_weights);
      p.put(globals_in.sampled_per_round);
      p.put_vec(globals_in.sampling);
      p.put_vec(globals_in.rng_counters);
      pack_metric_shapes(p, globals_in.metrics, true);
    }
    bcast_bytes(comm_, p.buf, 0);
    Unpacker u(p.buf);
    meta = unpack_meta(u);
    g.graph_weights = u.get_vec<double>();
    g.sampled_per_round = u.get<int64_t>();
    g.sampling = u.get_vec<int64_t>();
    g.rng_counters = u.get_vec<uint64_t>();
    g.metrics = unpack_metric_shapes(u, true);
  }

  const auto fields = client_fields(layout_);
  std::vector<const ClientSlices*> mine;  // owned, sorted by client id
  run_agreed(comm_, [&] {
    MIRA_CHECK(meta.round >= 0, "round=" + std::to_string(meta.round));
    MIRA_CHECK(g.graph_weights.size() == (size_t)(K * K),
               "graph_weights has " + std::to_string(g.graph_weights.size()) + " values, K*K=" + std::to_string(K * K));
    MIRA_CHECK(g.sampled_per_round >= 0 && (g.sampled_per_round > 0 ? g.sampling.size() % g.sampled_per_round == 0
                                                                  : g.sampling.empty()),
               "sampling has " + std::to_string(g.sampling.size()) + " ids, not a multiple of m=" +
                   std::to_string(g.sampled_per_round));
    std::set<std::string> metric_names;
    for (const auto& t : g.metrics)
      MIRA_CHECK(!t.name.empty() && t.name.find('/') == std::string::npos && metric_names.insert(t.name).second &&
                     t.rows >= 0 && t.cols >= 0 && t.values.size() == (size_t)(t.rows * t.cols),
                 "metric table '" + t.name + "' needs a unique name without '/' and rows*cols values");
    for (const auto& c : owned) {
      MIRA_CHECK(c.client >= 0 && c.client < K, "client id " + std::to_string(c.client) + " outside [0, K)");
      for (const auto& f : fields) {
        size_t n = 0;
        f.view(c, n);
        MIRA_CHECK(n == f.item_count(), "client " + std::to_string(c.client) + " " + f.path + " has " +
                                            std::to_string(n) + " values, the layout needs " +
                                            std::to_string(f.item_count()) + " " + shape_text(f.item_dims));
      }
      mine.push_back(&c);
    }
    std::sort(mine.begin(), mine.end(), [](auto a, auto b) { return a->client < b->client; });
  });
  // Every client is written by exactly one rank.
  {
    std::vector<int> count((size_t)K, 0), total((size_t)K, 0);
    for (auto* c : mine) count[(size_t)c->client] += 1;
    MIRA_CHECK_MPI(MPI_Allreduce(count.data(), total.data(), (int)K, MPI_INT, MPI_SUM, comm_));
    for (int64_t k = 0; k < K; ++k)
      if (total[(size_t)k] != 1)
        throw InternalError("checkpoint write: client " + std::to_string(k) + " is owned by " +
                            std::to_string(total[(size_t)k]) + " ranks (must be exactly 1) " +
                            error_where(__FILE__, __LINE__));
  }

  const std::string tmp_path = dir_ + "/" + checkpoint_tmp_name(meta.round);
  std::vector<hsize_t> rows;
  for (auto* c : mine) rows.push_back((hsize_t)c->client);
  {
    PropList fapl = PropList::file_access_mpio(comm_);
    File file = File::create(tmp_path, fapl);
    Group root = file.root();
    h5_attr_write_string(root.id(), "format", CHECKPOINT_FORMAT_NAME);
    h5_attr_write_int64(root.id(), "format_version", CHECKPOINT_FORMAT_VERSION);
    h5_attr_write_int64(root.id(), "round", meta.round);
    h5_attr_write_string(root.id(), "algorithm", meta.algorithm);
    h5_attr_write_int64(root.id(), "clients", K);
    h5_attr_write_int64(root.id(), "seed", meta.seed);
    h5_attr_write_string(root.id(), "config", meta.config_text);
    h5_attr_write_string(root.id(), "base_model_path", meta.base_model_path);
    h5_attr_write_string(root.id(), "base_model_sha256", meta.base_model_sha256);
    h5_attr_write_string(root.id(), "provenance", meta.provenance);

    for (const auto& name : layout_groups(layout_)) Group::create(file.id(), name);
    for (const auto& m : layout_.modules) {
      Group mg = Group::open(file.id(), "/adapters/" + m.name);
      h5_attr_write_string(mg.id(), "module_path", m.module_path.empty() ? m.name : m.module_path);
    }

    // Per-client datasets: each owner writes its rows straight from the slices' own storage (one
    // collective call per client, no staging copy); small datasets are packed into one buffer and
    // moved in one call. The CRC32C of each slice goes to the companion [K] dataset in the same
    // collective pattern.
    std::vector<char> small;  // packed rows of small datasets, reused
    for (const auto& f : fields) {
      std::vector<hsize_t> dims{(hsize_t)K};
      dims.insert(dims.end(), f.item_dims.begin(), f.item_dims.end());
      const size_t slice_bytes = f.item_count() * f.elem_bytes;
      const bool pack = mine.size() * slice_bytes <= pack_max_bytes();
      if (pack) small.resize(mine.size() * slice_bytes);
      std::vector<const void*> bufs(mine.size());
      std::vector<uint32_t> crcs(mine.size());
      for (size_t i = 0; i < mine.size(); ++i) {
        size_t n = 0;
        const void* src = f.view(*mine[i], n);
        crcs[i] = crc32c(src, slice_bytes);
        if (pack) {
          if (slice_bytes) std::memcpy(small.data() + i * slice_bytes, src, slice_bytes);
          bufs[i] = small.data() + i * slice_bytes;
        } else {
          bufs[i] = src;
        }
      }
      Dataset d = Dataset::create(file.id(), f.path, f.type, dims);
      h5_write_row_buffers(comm_, d, f.type, rows, bufs, f.path);
      Dataset dc = Dataset::create(file.id(), f.crc_path(), H5T_NATIVE_UINT32, {(hsize_t)K});
      h5_write_rows(comm_, dc, H5T_NATIVE_UINT32, rows, crcs.data(), f.crc_path());
    }

    // Run-wide datasets: rank 0 writes, the others select none.
    const bool w = rank == 0;
    write_global(comm_, file, "/graph/weights", H5T_NATIVE_DOUBLE, {(hsize_t)K, (hsize_t)K}, g.graph_weights.data(),
                 g.graph_weights.size() * sizeof(double), w);
    const hsize_t m = (hsize_t)g.sampled_per_round;
    write_global(comm_, file, "/sampling", H5T_NATIVE_INT64, {m ? g.sampling.size() / m : 0, m}, g.sampling.data(),
                 g.sampling.size() * sizeof(int64_t), w);
    write_global(comm_, file, "/rng/counters", H5T_NATIVE_UINT64, {g.rng_counters.size()}, g.rng_counters.data(),
                 g.rng_counters.size() * sizeof(uint64_t), w);
    for (const auto& t : g.metrics)
      write_global(comm_, file, "/metrics/" + t.name, H5T_NATIVE_DOUBLE, {(hsize_t)t.rows, (hsize_t)t.cols},
                   t.values.data(), t.values.size() * sizeof(double), w);
    root.close();
    file.close();  // collective: every rank has flushed its part
  }
  MIRA_CHECK_MPI(MPI_Barrier(comm_));
  run_agreed(comm_, [&] {
    if (rank == 0) checkpoint_publish(dir_, meta.round);
  });
  return dir_ + "/" + checkpoint_file_name(meta.round);
}

// ================================================================ layout from the file

CheckpointLayout checkpoint_read_layout(MPI_Comm comm, const std::string& path) {
  Packer packed;
  run_agreed(comm, [&] {
    if (comm_rank(comm) != 0) return;
    const std::string resolved = checkpoint_resolve(path);
    const std::string why = refused(resolved);
    CheckpointLayout layout;
    H5ErrorCapture capture;
    try {
      PropList fapl = PropList::file_access_serial();
      File file = File::open_read(resolved, fapl);
      Group root = file.root();
      std::string format;
      try {
        format = h5_attr_exists(root.id(), "format") ? h5_attr_read_string(root.id(), "format") : "";
      } catch (const UserError& e) {  // e.g. another program's variable-length string
        throw UserError(why + "not a " + CHECKPOINT_FORMAT_NAME + " file (" + e.what() + ")");
      }
      if (format != CHECKPOINT_FORMAT_NAME)
        throw UserError(why + "not a " + CHECKPOINT_FORMAT_NAME + " file (root attribute 'format' is '" + format + "')");
      int64_t version = h5_attr_read_int64(root.id(), "format_version");
      if (version != CHECKPOINT_FORMAT_VERSION)
        throw UserError(why + "format version " + std::to_string(version) + "; this build reads version " +
                        std::to_string(CHECKPOINT_FORMAT_VERSION));
      layout.clients = h5_attr_read_int64(root.id(), "clients");
      if (layout.clients <= 0) throw UserError(why + "root attribute 'clients' is " + std::to_string(layout.clients));
      const auto K = (hsize_t)layout.clients;
      if (!h5_link_exists(root.id(), "adapters")) throw UserError(why + "group /adapters is missing");
      Group adapters = Group::open(file.id(), "/adapters");
      for (const auto& name : h5_list_links(adapters.id())) {
        const std::string g = "/adapters/" + name;
        Group mg = Group::open(file.id(), g);
        for (const char* part : {"lora_A", "lora_B"})
          if (!h5_link_exists(mg.id(), part)) throw UserError(why + "dataset " + g + "/" + part + " is missing");
        std::vector<hsize_t> a = Dataset::open(file.id(), g + "/lora_A").dims();  // (K, L, r, in)
        std::vector<hsize_t> b = Dataset::open(file.id(), g + "/lora_B").dims();  // (K, L, out, r)
        if (a.size() != 4 || b.size() != 4 || a[0] != K || b[0] != K || a[1] != b[1] || a[2] != b[3] || a[1] == 0 ||
            a[2] == 0 || a[3] == 0 || b[2] == 0)
          throw UserError(why + "datasets " + g + "/lora_A " + shape_text(a) + " and lora_B " + shape_text(b) +
                          " are not [K, L, r, in] and [K, L, out, r] with K = " + std::to_string(K));
        LoraModuleShape m;
        m.name = name;
        m.module_path = h5_attr_exists(mg.id(), "module_path") ? h5_attr_read_string(mg.id(), "module_path") : name;
        m.layers = (int64_t)a[1];
        m.rank = (int64_t)a[2];
        m.in_features = (int64_t)a[3];
        m.out_features = (int64_t)b[2];
        layout.modules.push_back(m);
      }
      layout.optimizer = h5_link_exists(root.id(), "optimizer");
      if (h5_link_exists(root.id(), "data")) {
        Group data = Group::open(file.id(), "/data");
        if (h5_link_exists(data.id(), "cursor")) {
          std::vector<hsize_t> c = Dataset::open(file.id(), "/data/cursor").dims();  // (K, W)
          if (c.size() != 2 || c[0] != K || c[1] == 0)
            throw UserError(why + "dataset /data/cursor has shape " + shape_text(c) + ", expected [" +
                            std::to_string(K) + ", W > 0]");
          layout.cursor_width = (int64_t)c[1];
        }
      }
      adapters.close();
      root.close();
      file.close();
    } catch (const std::exception&) {
      rethrow_as_refusal(why);
    }
    packed.put(layout.clients);
    packed.put<uint64_t>(layout.modules.size());
    for (const auto& m : layout.modules) {
      packed.put_str(m.name);
      packed.put_str(m.module_path);
      packed.put(m.layers);
      packed.put(m.rank);
      packed.put(m.in_features);
      packed.put(m.out_features);
    }
    packed.put<uint8_t>(layout.optimizer ? 1 : 0);
    packed.put(layout.cursor_width);
  });
  bcast_bytes(comm, packed.buf, 0);
  Unpacker u(packed.buf);
  CheckpointLayout layout;
  layout.clients = u.get<int64_t>();
  layout.modules.resize(u.get<uint64_t>());
  for (auto& m : layout.modules) {
    m.name = u.get_str();
    m.module_path = u.get_str();
    m.layers = u.get<int64_t>();
    m.rank = u.get<int64_t>();
    m.in_features = u.get<int64_t>();
    m.out_features = u.get<int64_t>();
  }
  layout.optimizer = u.get<uint8_t>() != 0;
  layout.cursor_width = u.get<int64_t>();
  return layout;
}

// ================================================================ reader

namespace {

// Sizes every (dataset, client) slice for reading - ClientField::prepare, i.e. allocation and the
// first touch of fresh pages - on its own thread, dataset by dataset in the reader's order, so
// that the reader's HDF5 transfers overlap it. The thread makes no MPI or HDF5 call. Each slice
// vector is touched by this thread only until wait() for its dataset returns; the caller touches
// the containers holding them (ClientSlices' per-module vectors, sized beforehand) only after the
// preparer is destroyed.
class SlicePreparer {
 public:
  SlicePreparer(const std::vector<ClientField>& fields, const std::vector<ClientSlices*>& slots)
      : fields_(fields), slots_(slots), slices_(fields.size(), std::vector<void*>(slots.size())) {
    thread_ = std::thread([this] { run(); });
  }
  ~SlicePreparer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    thread_.join();
  }
  SlicePreparer(const SlicePreparer&) = delete;
  SlicePreparer& operator=(const SlicePreparer&) = delete;

  // Blocks until dataset `field`'s slices are sized; rethrows the thread's error (e.g. bad_alloc).
  void wait(size_t field) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_cv_.wait(lock, [&] { return ready_ > field || error_; });
    if (ready_ <= field) std::rethrow_exception(error_);
  }
  // The data pointers of dataset `field`, one per slot (valid after wait(field)).
  const std::vector<void*>& slices(size_t field) const { return slices_[field]; }

 private:
  void run() {
    try {
      for (size_t fi = 0; fi < fields_.size(); ++fi) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          if (stop_) return;
        }
        const size_t n = fields_[fi].item_count();
        for (size_t i = 0; i < slots_.size(); ++i) slices_[fi][i] = fields_[fi].prepare(*slots_[i], n);
        std::lock_guard<std::mutex> lock(mutex_);
        ready_ = fi + 1;
        ready_cv_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      ready_cv_.notify_all();
    }
  }

  const std::vector<ClientField>& fields_;
  const std::vector<ClientSlices*>& slots_;
  std::vector<std::vector<void*>> slices_;  // [field][slot]
  std::mutex mutex_;
  std::condition_variable ready_cv_;
  size_t ready_ = 0;  // datasets sized so far
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace

struct CheckpointReader::Impl {
  File file;
};

CheckpointReader::~CheckpointReader() = default;

void CheckpointReader::close() {
  if (impl_) impl_->file.close();
  impl_.reset();
}

CheckpointReader::CheckpointReader(MPI_Comm comm, const std::string& path, const CheckpointLayout& expected)
    : comm_(comm), layout_(expected) {
  const int rank = comm_rank(comm_);
  run_agreed(comm_, [&] { check_layout(layout_); });
  const int64_t K = layout_.clients;

  // Phase 1: rank 0 validates the whole file serially, so that a bad file is refused before any
  // collective HDF5 call could fail on some ranks only.
  Packer summary;
  run_agreed(comm_, [&] {
    if (rank != 0) return;
    path_ = checkpoint_resolve(path);
    const std::string why = refused(path_);
    H5ErrorCapture capture;
    try {
      PropList fapl = PropList::file_access_serial();
      File file = File::open_read(path_, fapl);
      Group root = file.root();
      std::string format = h5_attr_exists(root.id(), "format") ? h5_attr_read_string(root.id(), "format") : "";
      if (format != CHECKPOINT_FORMAT_NAME)
        throw UserError(why + "not a " + CHECKPOINT_FORMAT_NAME + " file (root attribute 'format' is '" + format + "')");
      int64_t version = h5_attr_read_int64(root.id(), "format_version");
      if (version != CHECKPOINT_FORMAT_VERSION)
        throw UserError(why + "format version " + std::to_string(version) + "; this build reads version " +
                        std::to_string(CHECKPOINT_FORMAT_VERSION));
      int64_t file_k = h5_attr_read_int64(root.id(), "clients");
      if (file_k != K)
        throw UserError(why + "it holds " + std::to_string(file_k) + " clients, the config has " + std::to_string(K));
      meta_.round = h5_attr_read_int64(root.id(), "round");
      meta_.algorithm = h5_attr_read_string(root.id(), "algorithm");
      meta_.seed = h5_attr_read_int64(root.id(), "seed");
      meta_.config_text = h5_attr_read_string(root.id(), "config");
      meta_.base_model_path = h5_attr_read_string(root.id(), "base_model_path");
      meta_.base_model_sha256 = h5_attr_read_string(root.id(), "base_model_sha256");
      meta_.provenance = h5_attr_read_string(root.id(), "provenance");

      // Opens `name` and checks its type and shape; `dims` entries of -1 accept any extent.
      auto expect = [&](const std::string& name, hid_t type, const char* type_name,
                        const std::vector<long long>& want) -> std::vector<hsize_t> {
        // H5Lexists on a path needs every parent to exist: walk it component by component.
        std::string prefix;
        size_t pos = 1;
        while (true) {
          size_t next = name.find('/', pos);
          std::string part = name.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
          std::string parent = prefix.empty() ? "/" : prefix;
          Group pg = Group::open(file.id(), parent);
          if (!h5_link_exists(pg.id(), part)) throw UserError(why + "dataset " + name + " is missing");
          prefix += "/" + part;
          if (next == std::string::npos) break;
          pos = next + 1;
        }
        Dataset d = Dataset::open(file.id(), name);
        if (!d.has_type(type)) throw UserError(why + "dataset " + name + " is not " + type_name);
        std::vector<hsize_t> dims = d.dims();
        bool ok = dims.size() == want.size();
        for (size_t i = 0; ok && i < dims.size(); ++i) ok = want[i] < 0 || (long long)dims[i] == want[i];
        if (!ok) {
          std::ostringstream w;
          w << '[';
          for (size_t i = 0; i < want.size(); ++i) w << (i ? ", " : "") << (want[i] < 0 ? std::string("*") : std::to_string(want[i]));
          w << ']';
          throw UserError(why + "dataset " + name + " has shape " + shape_text(dims) + ", the config expects " + w.str());
        }
        if (d.space().npoints() > 0 && d.file_offset() == HADDR_UNDEF)
          throw UserError(why + "dataset " + name + " has no data stored");
        return dims;
      };

      for (const auto& f : client_fields(layout_)) {
        std::vector<long long> want{(long long)K};
        for (auto d : f.item_dims) want.push_back((long long)d);
        expect(f.path, f.type, f.type_name, want);
        expect(f.crc_path(), H5T_NATIVE_UINT32, "uint32", {(long long)K});
      }
      expect("/graph/weights", H5T_NATIVE_DOUBLE, "float64", {(long long)K, (long long)K});
      auto sdims = expect("/sampling", H5T_NATIVE_INT64, "int64", {-1, -1});
      sampling_rounds_ = (int64_t)sdims[0];
      sampled_per_round_ = (int64_t)sdims[1];
      rng_count_ = (int64_t)expect("/rng/counters", H5T_NATIVE_UINT64, "uint64", {-1})[0];
      Group metrics = Group::open(file.id(), "/metrics");
      for (const auto& name : h5_list_links(metrics.id())) {
        auto mdims = expect("/metrics/" + name, H5T_NATIVE_DOUBLE, "float64", {-1, -1});
        metric_shapes_.push_back({name, (int64_t)mdims[0], (int64_t)mdims[1], {}});
      }
      for (std::string g : {"/graph/weights", "/sampling", "/rng/counters"}) {
        Dataset d = Dataset::open(file.id(), g);
        h5_attr_read_uint32(d.id(), "crc32c");
      }
      for (const auto& t : metric_shapes_) {
        Dataset d = Dataset::open(file.id(), "/metrics/" + t.name);
        h5_attr_read_uint32(d.id(), "crc32c");
      }
      root.close();
      file.close();
    } catch (const std::exception&) {
      rethrow_as_refusal(why);
    }
    summary.put_str(path_);
    pack_meta(summary, meta_);
    summary.put(sampling_rounds_);
    summary.put(sampled_per_round_);
    summary.put(rng_count_);
    pack_metric_shapes(summary, metric_shapes_, false);
  });
  bcast_bytes(comm_, summary.buf, 0);
  Unpacker u(summary.buf);
  path_ = u.get_str();
  meta_ = unpack_meta(u);
  sampling_rounds_ = u.get<int64_t>();
  sampled_per_round_ = u.get<int64_t>();
  rng_count_ = u.get<int64_t>();
  metric_shapes_ = unpack_metric_shapes(u, false);

  // Phase 2: the validated file, opened collectively.
  impl_ = std::make_unique<Impl>();
  run_agreed(comm_, [&] {
    H5ErrorCapture capture;
    try {
      PropList fapl = PropList::file_access_mpio(comm_);
      impl_->file = File::open_read(path_, fapl);
    } catch (const InternalError& e) {
      throw UserError(refused(path_) + "HDF5 cannot open it in parallel: " + h5_last_error());
    }
  });
}

CheckpointGlobals CheckpointReader::read_globals() {
  MIRA_CHECK(impl_ != nullptr, "read_globals after close()");
  const int64_t K = layout_.clients;
  const File& file = impl_->file;
  CheckpointGlobals g;
  g.graph_weights.resize((size_t)(K * K));
  g.sampled_per_round = sampled_per_round_;
  g.sampling.resize((size_t)(sampling_rounds_ * sampled_per_round_));
  g.rng_counters.resize((size_t)rng_count_);
  g.metrics = metric_shapes_;
  for (auto& t : g.metrics) t.values.resize((size_t)(t.rows * t.cols));

  std::string crc_error;  // collected, agreed on after the last collective transfer
  auto read = [&](const std::string& name, hid_t type, void* buf, size_t bytes) {
    Dataset d = Dataset::open(file.id(), name);
    h5_read_whole(comm_, d, type, buf, name);
    uint32_t stored = h5_attr_read_uint32(d.id(), "crc32c"), computed = crc32c(buf, bytes);
    if (stored != computed && crc_error.empty())
      crc_error = refused(path_) + "dataset " + name + " CRC32C mismatch (stored " + hex32(stored) + ", computed " +
                  hex32(computed) + ")";
  };
  read("/graph/weights", H5T_NATIVE_DOUBLE, g.graph_weights.data(), g.graph_weights.size() * sizeof(double));
  read("/sampling", H5T_NATIVE_INT64, g.sampling.data(), g.sampling.size() * sizeof(int64_t));
  read("/rng/counters", H5T_NATIVE_UINT64, g.rng_counters.data(), g.rng_counters.size() * sizeof(uint64_t));
  for (auto& t : g.metrics)
    read("/metrics/" + t.name, H5T_NATIVE_DOUBLE, t.values.data(), t.values.size() * sizeof(double));
  agree(comm_, crc_error, true);
  return g;
}

std::vector<ClientSlices> CheckpointReader::read_clients(const std::vector<int64_t>& clients) {
  MIRA_CHECK(impl_ != nullptr, "read_clients after close()");
  const int64_t K = layout_.clients;
  std::vector<int64_t> sorted = clients;
  std::sort(sorted.begin(), sorted.end());
  run_agreed(comm_, [&] {
    for (size_t i = 0; i < sorted.size(); ++i)
      MIRA_CHECK(sorted[i] >= 0 && sorted[i] < K && (i == 0 || sorted[i] != sorted[i - 1]),
                 "read_clients: client ids must be distinct and in [0, " + std::to_string(K) + ")");
  });
  std::vector<hsize_t> rows(sorted.begin(), sorted.end());
  std::map<int64_t, ClientSlices> got;
  for (auto k : sorted) {
    ClientSlices& c = got[k];
    c.client = k;
  }

  // Each slice is read straight into its own storage (one collective call per client); small
  // datasets come in one call through a packed buffer. Every slice's CRC is checked after.
  // Sizing the slices (allocation and first touch of fresh memory: page faults and zeroing, as
  // costly as the read itself) runs on a helper thread one dataset ahead of the reads.
  const auto fields = client_fields(layout_);
  std::vector<ClientSlices*> slots;
  for (auto k : sorted) slots.push_back(&got[k]);
  for (const auto& f : fields)  // per-module outer vectors sized here: the helper touches only slices
    for (auto* c : slots) f.prepare(*c, 0);
  std::string crc_error;
  {
    SlicePreparer preparer(fields, slots);  // joined at the end of this block
    const File& file = impl_->file;
    std::vector<char> small;  // packed rows of small datasets, reused
    for (size_t fi = 0; fi < fields.size(); ++fi) {
      const auto& f = fields[fi];
      const size_t slice_bytes = f.item_count() * f.elem_bytes;
      run_agreed(comm_, [&] { preparer.wait(fi); });  // a failed allocation stops every rank here
      const std::vector<void*>& dst = preparer.slices(fi);
      const bool pack = sorted.size() * slice_bytes <= pack_max_bytes();
      if (pack) small.resize(sorted.size() * slice_bytes);
      std::vector<void*> bufs(sorted.size());
      for (size_t i = 0; i < sorted.size(); ++i) bufs[i] = pack ? small.data() + i * slice_bytes : dst[i];
      std::vector<uint32_t> stored(sorted.size());
      {
        Dataset d = Dataset::open(file.id(), f.path);
        h5_read_row_buffers(comm_, d, f.type, rows, bufs, f.path);
        Dataset dc = Dataset::open(file.id(), f.crc_path());
        h5_read_rows(comm_, dc, H5T_NATIVE_UINT32, rows, stored.data(), f.crc_path());
      }
      for (size_t i = 0; i < sorted.size(); ++i) {
        if (pack && slice_bytes) std::memcpy(dst[i], bufs[i], slice_bytes);
        uint32_t computed = crc32c(dst[i], slice_bytes);
        if (computed != stored[i] && crc_error.empty())
          crc_error = refused(path_) + "dataset " + f.path + " client " + std::to_string(sorted[i]) +
                      " CRC32C mismatch (stored " + hex32(stored[i]) + ", computed " + hex32(computed) + ")";
      }
    }
  }
  agree(comm_, crc_error, true);
  std::vector<ClientSlices> out;
  out.reserve(clients.size());
  for (auto k : clients) out.push_back(std::move(got[k]));
  return out;
}

}  // namespace mira
