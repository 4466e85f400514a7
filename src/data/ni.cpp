// Natural Instructions reader, manifest and its broadcast (see ni.h).
#include "data/ni.h"

#include <algorithm>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "data/jsonl_reader.h"
#include "data/templates.h"
#include "data/utf8.h"
#include "runtime/agree.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace mira {
namespace {

struct NiTask {
  std::string definition, category;
  std::vector<std::pair<std::string, std::string>> instances;  // (input, output[0]) after the filter
  int64_t total = 0;
};

std::string first_string(const nlohmann::json& obj, const char* key, const std::string& file) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array() || it->empty() || !(*it)[0].is_string())
    throw UserError(file + ": '" + key + "' must be a non-empty list of strings");
  return (*it)[0].get<std::string>();
}

NiTask ni_read_task(const DataOptions& opts, const std::string& name) {
  const std::string file = opts.path + "/" + name + ".json";
  const std::string text = jsonl_read_file(file, "data.path");
  if (!utf8_valid(text)) throw UserError(file + ": invalid UTF-8");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(file + ": malformed JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw UserError(file + ": expected a JSON object");
  NiTask t;
  t.definition = first_string(j, "Definition", file);
  t.category = first_string(j, "Categories", file);
  auto it = j.find("Instances");
  if (it == j.end() || !it->is_array()) throw UserError(file + ": 'Instances' must be a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const nlohmann::json& inst = (*it)[i];
    const std::string where = file + ": Instances[" + std::to_string(i) + "]";
    if (!inst.is_object() || !inst.contains("input") || !inst["input"].is_string())
      throw UserError(where + ": missing string field 'input'");
    const std::string input = inst["input"].get<std::string>();
    const std::string output = first_string(inst, "output", where);
    ++t.total;
    if (static_cast<int64_t>(utf8_length(input)) >= opts.ni_max_input_chars) continue;
    if (output.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    t.instances.emplace_back(input, output);
  }
  return t;
}

// Task names, one per line: a UTF-8 BOM, trailing blanks and CR are dropped, `#` lines and blank
// lines skipped. A task listed twice (two clients on the same instances) and an empty list are
// refused.
std::vector<std::string> ni_read_list(const DataOptions& opts) {
  std::ifstream in(opts.task_list);
  if (!in) throw UserError("data.task_list = " + opts.task_list + ": cannot open file");
  std::vector<std::string> names;
  std::map<std::string, int> first_line;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM (Windows editors)
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto [it, fresh] = first_line.emplace(line, line_no);
    if (!fresh)
      throw UserError("data.task_list = " + opts.task_list + ":" + std::to_string(line_no) + ": task " + line +
                      " is listed twice (first at line " + std::to_string(it->second) +
                      "; each task is one client, list it once)");
    names.push_back(line);
  }
  if (names.empty())
    throw UserError("data.task_list = " + opts.task_list + ": lists no task (expected task names, one per line)");
  return names;
}

}  // namespace

NiManifest ni_build_manifest(const DataOptions& opts) {
  NiManifest m;
  for (const std::string& name : ni_read_list(opts)) {
    if (opts.num_clients > 0 && static_cast<int>(m.tasks.size()) == opts.num_clients) break;
    const NiTask t = ni_read_task(opts, name);
    const int64_t n = static_cast<int64_t>(t.instances.size());
    if (n < opts.ni_min_instances) {
      m.skipped.push_back(name);
      continue;
    }
    NiManifestTask mt;
    mt.name = name;
    mt.category = t.category;
    mt.total = t.total;
    mt.filtered = n;
    mt.kept = static_cast<int64_t>(opts.ni_keep_fraction * static_cast<double>(n));  // Python int()
    m.tasks.push_back(mt);
  }
  if (m.tasks.empty())
    throw UserError("data.task_list = " + opts.task_list + ": no task has >= " +
                    std::to_string(opts.ni_min_instances) + " instances after the filter (data.ni.min_instances)");
  if (opts.num_clients > 0 && static_cast<int>(m.tasks.size()) < opts.num_clients)
    throw UserError("run.clients = " + std::to_string(opts.num_clients) + " but " + opts.task_list +
                    " gives only " + std::to_string(m.tasks.size()) + " usable tasks");
  std::set<std::string> cats;
  for (const auto& t : m.tasks) cats.insert(t.category);
  m.categories.assign(cats.begin(), cats.end());
  return m;
}

std::string ni_manifest_to_json(const NiManifest& m) {
  nlohmann::json j;
  j["tasks"] = nlohmann::json::array();
  for (const auto& t : m.tasks)
    j["tasks"].push_back({{"name", t.name}, {"category", t.category}, {"total", t.total},
                          {"filtered", t.filtered}, {"kept", t.kept}});
  j["skipped"] = m.skipped;
  j["categories"] = m.categories;
  return j.dump();
}

NiManifest ni_manifest_from_json(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  NiManifest m;
  for (const auto& t : j.at("tasks"))
    m.tasks.push_back({t.at("name").get<std::string>(), t.at("category").get<std::string>(),
                       t.at("total").get<int64_t>(), t.at("filtered").get<int64_t>(), t.at("kept").get<int64_t>()});
  m.skipped = j.at("skipped").get<std::vector<std::string>>();
  m.categories = j.at("categories").get<std::vector<std::string>>();
  return m;
}

NiManifest ni_manifest_broadcast(const DataOptions& opts, MPI_Comm comm) {
  int rank = 0;
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  std::string text;
  int is_error = 0;
  if (rank == 0) {
    try {
      text = ni_manifest_to_json(ni_build_manifest(opts));
    } catch (const UserError& e) {
      text = e.what();
      is_error = 1;
    }
  }
  long long len = static_cast<long long>(text.size());
  MIRA_CHECK_MPI(MPI_Bcast(&is_error, 1, MPI_INT, 0, comm));
  MIRA_CHECK_MPI(MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, comm));
  text.resize(static_cast<size_t>(len));
  // Manifests are small (a few hundred bytes per task), far below INT_MAX.
  MIRA_CHECK(len < (1LL << 30), "manifest of " + std::to_string(len) + " bytes");
  MIRA_CHECK_MPI(MPI_Bcast(text.data(), static_cast<int>(len), MPI_CHAR, 0, comm));
  if (is_error) throw CollectiveUserError(text);  // every rank has it: printed once, no MPI_Abort
  return ni_manifest_from_json(text);
}

SourceData source_load_ni(const DataOptions& opts, const std::set<int>& needed, const NiManifest& m) {
  SourceData d;
  d.family_names = m.categories;
  d.clients.resize(m.tasks.size());
  int64_t skipped_instances = 0;
  for (size_t k = 0; k < m.tasks.size(); ++k) {
    const NiManifestTask& mt = m.tasks[k];
    SourceClient& c = d.clients[k];
    c.task = mt.name;
    c.family = static_cast<int>(std::lower_bound(m.categories.begin(), m.categories.end(), mt.category) -
                                m.categories.begin());
    c.dropped = mt.total - mt.filtered;
    skipped_instances += c.dropped;
    c.n_train = source_train_count(mt.kept, opts.train_fraction);
    c.n_test = mt.kept - c.n_train;
    if (!needed.count(static_cast<int>(k))) continue;
    NiTask t = ni_read_task(opts, mt.name);
    if (static_cast<int64_t>(t.instances.size()) != mt.filtered)
      throw UserError(opts.path + "/" + mt.name + ".json changed since the manifest was built");
    std::vector<int64_t> order(t.instances.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    Rng rng(opts.seed, RngPurpose::DATA_SPLIT, k, 1);
    rng.shuffle(order);
    std::vector<TextExample> kept;
    for (int64_t i = 0; i < mt.kept; ++i) {
      const auto& inst = t.instances[order[i]];
      kept.push_back({template_ni(t.definition, inst.first), inst.second,
                      opts.path + "/" + mt.name + ".json#" + std::to_string(order[i])});
    }
    source_split(std::move(kept), opts.seed, static_cast<int>(k), opts.train_fraction, &c.train_text, &c.test_text);
    c.loaded = true;
  }
  if (!m.skipped.empty())
    log_warn("data.task_list = %s: skipped %zu tasks with fewer than %d instances after the filter (first: %s)",
             opts.task_list.c_str(), m.skipped.size(), opts.ni_min_instances, m.skipped[0].c_str());
  if (skipped_instances > 0)
    log_info("data: NI filter dropped %lld instances (input >= %d chars or empty output)",
             (long long)skipped_instances, opts.ni_max_input_chars);
  return d;
}

}  // namespace mira
