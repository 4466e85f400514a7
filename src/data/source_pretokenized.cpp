// Pre-tokenised data in HDF5 (written by scripts/prepare_data.py) as a dataset source.
// Layout (format "mira-pretokenized", version 1; docs/data.md):
//   /tokens     int32 (total_tokens)   all examples' ids, concatenated
//   /labels     uint8 (total_tokens)   1 = target token (trained), 0 = prompt
//   /offsets    int64 (N + 1)          example i = tokens[offsets[i] .. offsets[i+1])
//   /client     int32 (N)              client id of each example, 0 .. num_clients-1
//   /split      uint8 (N), optional    0 = train, 1 = test; absent: split by the seed, 80/20
//   /client_family int32 (num_clients), optional: task-family id per client (absent: 0), each in
//                  [0, max(num_clients, N)): prepare_data.py numbers the distinct family values
//   attributes on /: format, version, num_clients, vocab_size, eos_id (0 <= eos_id < vocab_size);
//   optional client_names (JSON list of num_clients task names) and tokenizer (informational)
// The file's ids are its own vocabulary: train checks vocab_size against the model and pads with
// eos_id (source_pretokenized_vocab); the data.tokenizer is not used for this source.
// What a rank reads: the attributes and the per-example index arrays (/offsets, /client, /split:
// 13 bytes per example, needed for every client's counts) whole; from /tokens and /labels only the
// rows of the clients it loads, one hyperslab per run of consecutive needed examples. A rank that
// loads no client reads no token.
#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/source.h"
#include "io/h5.h"
#include "runtime/check_hdf5.h"
#include "runtime/error.h"

namespace mira {
namespace {

bool h5_has(hid_t file, const char* name) { return H5Lexists(file, name, H5P_DEFAULT) > 0; }

// A 1-D dataset, opened: its handle and length. UserError when missing or not 1-D.
struct Dataset1D {
  H5Handle ds;
  hsize_t n = 0;
};

Dataset1D h5_open_1d(hid_t file, const char* name, const std::string& path) {
  if (!h5_has(file, name)) throw UserError(path + ": missing dataset " + name + " (see docs/data.md)");
  Dataset1D d;
  d.ds = H5Handle(MIRA_CHECK_HDF5(H5Dopen2(file, name, H5P_DEFAULT)), H5Dclose);
  H5Handle sp{MIRA_CHECK_HDF5(H5Dget_space(d.ds.id())), H5Sclose};
  if (H5Sget_simple_extent_ndims(sp.id()) != 1) throw UserError(path + ": dataset " + std::string(name) + " is not 1-D");
  MIRA_CHECK_HDF5(H5Sget_simple_extent_dims(sp.id(), &d.n, nullptr));
  return d;
}

// Elements [start, start + count) of a 1-D dataset into dst (converted to mem_type). A failed read
// (a corrupt chunk, a file cut short) is a UserError with HDF5's own reason.
void h5_read_range(const Dataset1D& d, const std::string& name, hid_t mem_type, hsize_t start, hsize_t count, void* dst,
                   const std::string& path) {
  if (count == 0) return;
  H5ErrorCapture quiet;
  H5Handle fsp{MIRA_H5(H5Dget_space(d.ds.id())), H5Sclose};
  MIRA_H5(H5Sselect_hyperslab(fsp.id(), H5S_SELECT_SET, &start, nullptr, &count, nullptr));
  H5Handle msp{MIRA_H5(H5Screate_simple(1, &count, nullptr)), H5Sclose};
  if (h5_note_failure(H5Dread(d.ds.id(), mem_type, msp.id(), fsp.id(), H5P_DEFAULT, dst)) < 0)
    throw UserError(path + ": cannot read " + name + "[" + std::to_string(start) + ", " +
                    std::to_string(start + count) + "): " + h5_last_error());
}

template <typename T>
std::vector<T> h5_read(hid_t file, const char* name, hid_t mem_type, const std::string& path) {
  const Dataset1D d = h5_open_1d(file, name, path);
  std::vector<T> v(static_cast<size_t>(d.n));
  h5_read_range(d, "/" + std::string(name), mem_type, 0, d.n, v.data(), path);
  return v;
}

int64_t h5_attr_int(hid_t file, const char* name, const std::string& path) {
  if (H5Aexists(file, name) <= 0) throw UserError(path + ": missing attribute " + std::string(name));
  H5Handle a{MIRA_CHECK_HDF5(H5Aopen(file, name, H5P_DEFAULT)), H5Aclose};
  long long v = 0;
  MIRA_CHECK_HDF5(H5Aread(a.id(), H5T_NATIVE_LLONG, &v));
  return v;
}

std::string h5_attr_string(hid_t file, const char* name, const std::string& path) {
  if (H5Aexists(file, name) <= 0) throw UserError(path + ": missing attribute " + std::string(name));
  H5Handle a{MIRA_CHECK_HDF5(H5Aopen(file, name, H5P_DEFAULT)), H5Aclose};
  H5Handle t{MIRA_CHECK_HDF5(H5Aget_type(a.id())), H5Tclose};
  if (H5Tget_class(t.id()) != H5T_STRING) throw UserError(path + ": attribute " + std::string(name) + " is not a string");
  if (H5Tis_variable_str(t.id()) > 0) {
    H5Handle mt{MIRA_CHECK_HDF5(H5Tcopy(H5T_C_S1)), H5Tclose};
    MIRA_CHECK_HDF5(H5Tset_size(mt.id(), H5T_VARIABLE));
    MIRA_CHECK_HDF5(H5Tset_cset(mt.id(), H5Tget_cset(t.id())));
    char* s = nullptr;
    MIRA_CHECK_HDF5(H5Aread(a.id(), mt.id(), &s));
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  const size_t n = H5Tget_size(t.id());
  std::string out(n, '\0');
  MIRA_CHECK_HDF5(H5Aread(a.id(), t.id(), out.data()));
  out.resize(std::strlen(out.c_str()));
  return out;
}

// The file opened, its format and version checked (UserError naming the file).
H5Handle open_pretokenized(const std::string& path) {
  if (!std::ifstream(path).good()) throw UserError("data.path = " + path + ": cannot open file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw UserError("data.path = " + path + ": not an HDF5 file");
  H5Handle f{MIRA_CHECK_HDF5(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)), H5Fclose};
  if (h5_attr_string(f.id(), "format", path) != "mira-pretokenized")
    throw UserError(path + ": attribute format is not 'mira-pretokenized'");
  const int64_t version = h5_attr_int(f.id(), "version", path);
  if (version != 1) throw UserError(path + ": format version " + std::to_string(version) + " (this build reads 1)");
  return f;
}

PretokenizedVocab read_vocab(hid_t file, const std::string& path) {
  const int64_t vocab = h5_attr_int(file, "vocab_size", path);
  const int64_t eos = h5_attr_int(file, "eos_id", path);
  if (vocab < 1 || vocab > (int64_t(1) << 31))  // ids are int32
    throw UserError(path + ": attribute vocab_size = " + std::to_string(vocab) +
                    " outside [1, 2^31] (token ids are int32)");
  if (eos < 0 || eos >= vocab)
    throw UserError(path + ": attribute eos_id = " + std::to_string(eos) + " outside [0, vocab_size = " +
                    std::to_string(vocab) + ")");
  return {vocab, static_cast<int32_t>(eos)};
}

}  // namespace

PretokenizedVocab source_pretokenized_vocab(const std::string& path) {
  const H5Handle f = open_pretokenized(path);
  return read_vocab(f.id(), path);
}

SourceData source_load_pretokenized(const DataOptions& opts, const std::set<int>& needed) {
  const std::string& path = opts.path;
  const H5Handle f = open_pretokenized(path);
  const int64_t k_total = h5_attr_int(f.id(), "num_clients", path);
  const int64_t vocab = read_vocab(f.id(), path).vocab_size;
  if (k_total < 1) throw UserError(path + ": num_clients must be >= 1");
  // Index arrays whole; /tokens and /labels only opened here (their rows are read below).
  const Dataset1D tokens = h5_open_1d(f.id(), "tokens", path);
  const Dataset1D labels = h5_open_1d(f.id(), "labels", path);
  const auto offsets = h5_read<int64_t>(f.id(), "offsets", H5T_NATIVE_INT64, path);
  const auto client = h5_read<int32_t>(f.id(), "client", H5T_NATIVE_INT32, path);
  const bool has_split = h5_has(f.id(), "split");
  const auto split = has_split ? h5_read<uint8_t>(f.id(), "split", H5T_NATIVE_UINT8, path) : std::vector<uint8_t>();
  const auto family = h5_has(f.id(), "client_family")
                          ? h5_read<int32_t>(f.id(), "client_family", H5T_NATIVE_INT32, path)
                          : std::vector<int32_t>(static_cast<size_t>(k_total), 0);
  const size_t n = client.size();
  if (labels.n != tokens.n) throw UserError(path + ": /labels and /tokens differ in length");
  if (offsets.size() != n + 1 || offsets.front() != 0 || offsets.back() != static_cast<int64_t>(tokens.n))
    throw UserError(path + ": /offsets must have N+1 entries from 0 to the token count");
  if (has_split && split.size() != n) throw UserError(path + ": /split and /client differ in length");
  if (static_cast<int64_t>(family.size()) != k_total) throw UserError(path + ": /client_family needs num_clients entries");
  // Family ids index a table of names (one per id up to the largest): a negative id must not reach
  // it, and a huge one would allocate that many names (1e8: 6 GB for a 3-client file).
  const int64_t family_bound = std::max<int64_t>(k_total, static_cast<int64_t>(n));
  for (size_t k = 0; k < family.size(); ++k)
    if (family[k] < 0 || family[k] >= family_bound)
      throw UserError(path + ": /client_family[" + std::to_string(k) + "] = " + std::to_string(family[k]) +
                      " outside [0, " + std::to_string(family_bound) +
                      ") (family ids number the task families: below max(num_clients, examples))");
  if (opts.num_clients > 0 && opts.num_clients != k_total)
    throw UserError("run.clients = " + std::to_string(opts.num_clients) + " but " + path + " holds " +
                    std::to_string(k_total) + " clients (set 0 or " + std::to_string(k_total) + ")");

  // Optional attribute client_names: a JSON list of task names (prepare_data.py writes it).
  std::vector<std::string> names;
  if (H5Aexists(f.id(), "client_names") > 0) {
    try {
      names = nlohmann::json::parse(h5_attr_string(f.id(), "client_names", path)).get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception&) {
      throw UserError(path + ": attribute client_names is not a JSON list of strings");
    }
    if (static_cast<int64_t>(names.size()) != k_total)
      throw UserError(path + ": attribute client_names lists " + std::to_string(names.size()) +
                      " names but num_clients = " + std::to_string(k_total) + " (one name per client)");
  }
  SourceData d;
  const int32_t n_fam = family.empty() ? 1 : *std::max_element(family.begin(), family.end()) + 1;
  for (int32_t f2 = 0; f2 < n_fam; ++f2) d.family_names.push_back("family" + std::to_string(f2));
  d.clients.resize(static_cast<size_t>(k_total));
  // Every example's client and length are checked (offsets strictly increasing, so every row lies
  // inside /tokens); the needed ones are listed in file order.
  std::vector<size_t> rows;
  for (size_t i = 0; i < n; ++i) {
    const int32_t k = client[i];
    if (k < 0 || k >= k_total)
      throw UserError(path + ": /client[" + std::to_string(i) + "] = " + std::to_string(k) + " outside [0, num_clients)");
    if (offsets[i + 1] <= offsets[i]) throw UserError(path + ": example " + std::to_string(i) + " is empty");
    SourceClient& c = d.clients[k];
    const bool is_test = has_split && split[i];
    (is_test ? c.n_test : c.n_train) += 1;
    if (needed.count(k)) rows.push_back(i);
  }

  // Runs of consecutive needed rows are contiguous in /tokens and /labels: one read each (a run
  // stops growing at kRunTokens, so the staging buffer stays bounded).
  constexpr int64_t kRunTokens = int64_t(1) << 24;
  std::vector<std::vector<TokenizedExample>> all(static_cast<size_t>(k_total)), tr(all.size()), te(all.size());
  std::vector<int32_t> run_ids;
  std::vector<uint8_t> run_labels;
  for (size_t r0 = 0; r0 < rows.size();) {
    size_t r1 = r0 + 1;
    while (r1 < rows.size() && rows[r1] == rows[r1 - 1] + 1 && offsets[rows[r1] + 1] - offsets[rows[r0]] <= kRunTokens)
      ++r1;
    const int64_t t0 = offsets[rows[r0]], t1 = offsets[rows[r1 - 1] + 1];
    run_ids.resize(static_cast<size_t>(t1 - t0));
    run_labels.resize(run_ids.size());
    h5_read_range(tokens, "/tokens", H5T_NATIVE_INT32, static_cast<hsize_t>(t0), run_ids.size(), run_ids.data(), path);
    h5_read_range(labels, "/labels", H5T_NATIVE_UINT8, static_cast<hsize_t>(t0), run_ids.size(), run_labels.data(),
                  path);
    d.tokens_read += t1 - t0;
    for (size_t r = r0; r < r1; ++r) {
      const size_t i = rows[r];
      const int32_t k = client[i];
      const size_t a = static_cast<size_t>(offsets[i] - t0), b = static_cast<size_t>(offsets[i + 1] - t0);
      TokenizedExample ex;
      ex.ids.assign(run_ids.begin() + a, run_ids.begin() + b);
      ex.labels.assign(run_labels.begin() + a, run_labels.begin() + b);
      for (int32_t id : ex.ids)
        if (id < 0 || id >= vocab)
          throw UserError(path + ": example " + std::to_string(i) + " has token id " + std::to_string(id) +
                          " outside [0, vocab_size)");
      if (std::find(ex.labels.begin(), ex.labels.end(), 1) == ex.labels.end())
        throw UserError(path + ": example " + std::to_string(i) + " has no label-1 token (nothing to train on)");
      const bool is_test = has_split && split[i];
      (has_split ? (is_test ? te[k] : tr[k]) : all[k]).push_back(std::move(ex));
    }
    r0 = r1;
  }
  for (int64_t k = 0; k < k_total; ++k) {
    SourceClient& c = d.clients[k];
    c.task = k < static_cast<int64_t>(names.size()) ? names[k] : "client" + std::to_string(k);
    c.family = family[k];
    c.pretokenized = true;
    if (!has_split) {
      const int64_t nk = c.n_train;
      c.n_train = source_train_count(nk, opts.train_fraction);
      c.n_test = nk - c.n_train;
    }
    if (!needed.count(static_cast<int>(k))) continue;
    if (has_split) {
      c.train_tok = std::move(tr[k]);
      c.test_tok = std::move(te[k]);
    } else {
      source_split(std::move(all[k]), opts.seed, static_cast<int>(k), opts.train_fraction, &c.train_tok, &c.test_tok);
    }
    c.loaded = true;
  }
  return d;
}

}  // namespace mira
