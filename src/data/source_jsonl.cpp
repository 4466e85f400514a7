// Dolly-15k and generic JSONL as a dataset source. Lines are grouped by category (Dolly: its 8
// categories, an unknown one is an error; generic: the distinct values of data.jsonl.client_field,
// sorted), each category's lines are shuffled with Rng(seed, DATA_ASSIGN, category) and dealt
// round-robin to data.clients_per_category clients (client id = category * N + j); each client
// drops its lines with an empty response (counted, warned) and splits the rest 80/20.
#include <algorithm>
#include <map>

#include "data/jsonl_reader.h"
#include "data/source.h"
#include "data/templates.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace mira {
namespace {

// Dolly-15k's categories; their order fixes the client ids (category index * N + j).
const std::vector<std::string> kDollyCategories = {"brainstorming", "classification", "closed_qa",
                                                   "creative_writing", "general_qa", "information_extraction",
                                                   "open_qa", "summarization"};

struct Line {
  TextExample ex;
  bool empty_response = false;
};

}  // namespace

SourceData source_load_jsonl(const DataOptions& opts, const std::set<int>& needed) {
  const bool dolly = opts.source == DataSource::DOLLY;
  const std::string f_prompt = dolly ? "instruction" : opts.prompt_field;
  const std::string f_input = dolly ? "context" : opts.input_field;
  const std::string f_resp = dolly ? "response" : opts.response_field;
  const std::string f_cat = dolly ? "category" : opts.client_field;
  const bool alpaca = dolly || opts.prompt_template == PromptTemplate::ALPACA;

  std::map<std::string, std::vector<Line>> by_cat;
  jsonl_for_each(opts.path, [&](const nlohmann::json& obj, long lineno) {
    const std::string cat = jsonl_string_field(obj, f_cat, opts.path, lineno);
    if (dolly && std::find(kDollyCategories.begin(), kDollyCategories.end(), cat) == kDollyCategories.end())
      throw UserError(opts.path + ":" + std::to_string(lineno) + ": unknown Dolly category '" + cat +
                      "' (allowed: brainstorming, classification, closed_qa, creative_writing, general_qa, "
                      "information_extraction, open_qa, summarization)");
    const std::string instr = jsonl_string_field(obj, f_prompt, opts.path, lineno);
    const std::string input = f_input.empty() ? "" : jsonl_string_field(obj, f_input, opts.path, lineno);
    Line l;
    l.ex.response = jsonl_string_field(obj, f_resp, opts.path, lineno);
    l.empty_response = l.ex.response.find_first_not_of(" \t\r\n") == std::string::npos;
    if (alpaca)
      l.ex.prompt = template_dolly(instr, input);
    else
      l.ex.prompt = input.empty() ? instr : instr + "\n" + input;
    l.ex.source = opts.path + ":" + std::to_string(lineno);
    by_cat[cat].push_back(std::move(l));
  });

  SourceData d;
  if (dolly) {
    d.family_names = kDollyCategories;
  } else {
    for (const auto& kv : by_cat) d.family_names.push_back(kv.first);  // std::map: sorted
    if (d.family_names.empty()) throw UserError("data.path = " + opts.path + ": no examples");
  }
  const int per = opts.clients_per_category;
  const int natural = static_cast<int>(d.family_names.size()) * per;
  if (opts.num_clients > 0 && opts.num_clients != natural)
    throw UserError("run.clients = " + std::to_string(opts.num_clients) + " but " + opts.path + " has " +
                    std::to_string(d.family_names.size()) + " categories x data.clients_per_category " +
                    std::to_string(per) + " = " + std::to_string(natural) + " clients (set 0 or " +
                    std::to_string(natural) + ")");
  d.clients.resize(natural);
  int64_t dropped_total = 0;
  for (int c = 0; c < static_cast<int>(d.family_names.size()); ++c) {
    std::vector<Line>& lines = by_cat[d.family_names[c]];
    std::vector<int64_t> order(lines.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    Rng rng(opts.seed, RngPurpose::DATA_ASSIGN, static_cast<uint64_t>(c));
    rng.shuffle(order);
    std::vector<std::vector<TextExample>> dealt(per);
    std::vector<int64_t> dropped(per, 0);
    for (size_t i = 0; i < order.size(); ++i) {
      Line& l = lines[order[i]];
      const int j = static_cast<int>(i % per);
      if (l.empty_response)
        ++dropped[j];
      else
        dealt[j].push_back(std::move(l.ex));
    }
    for (int j = 0; j < per; ++j) {
      const int k = c * per + j;
      SourceClient& sc = d.clients[k];
      sc.task = d.family_names[c] + "/" + std::to_string(j);
      sc.family = c;
      sc.dropped = dropped[j];
      dropped_total += dropped[j];
      const int64_t n = static_cast<int64_t>(dealt[j].size());
      sc.n_train = source_train_count(n, opts.train_fraction);
      sc.n_test = n - sc.n_train;
      if (needed.count(k)) {
        source_split(std::move(dealt[j]), opts.seed, k, opts.train_fraction, &sc.train_text, &sc.test_text);
        sc.loaded = true;
      }
    }
  }
  if (dropped_total > 0)
    log_warn("data.path = %s: skipped %lld lines with an empty response (counted per client as dropped)",
             opts.path.c_str(), (long long)dropped_total);
  return d;
}

}  // namespace mira
