// DataOptions validation and enum parsing (see options.h; keys documented in docs/data.md).
#include "data/options.h"

#include <cstdio>

#include "runtime/error.h"

namespace mira {
namespace {
[[noreturn]] void bad(const std::string& key, const std::string& what) {
  throw UserError("config key " + key + ": " + what);
}
// %g, not std::to_string's %f (which prints 1e300 with 300 digits and 1e-9 as 0.000000).
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

DataSource data_parse_source(const std::string& text, const std::string& key) {
  if (text == "synthetic") return DataSource::SYNTHETIC;
  if (text == "dolly") return DataSource::DOLLY;
  if (text == "ni") return DataSource::NI;
  if (text == "jsonl") return DataSource::JSONL;
  if (text == "pretokenized") return DataSource::PRETOKENIZED;
  bad(key, "'" + text + "' is not one of synthetic, dolly, ni, jsonl, pretokenized");
}

TokenizerKind data_parse_tokenizer(const std::string& text, const std::string& key) {
  if (text == "byte") return TokenizerKind::BYTE;
  if (text == "hf") return TokenizerKind::HF;
  bad(key, "'" + text + "' is not one of byte, hf");
}

PromptTemplate data_parse_template(const std::string& text, const std::string& key) {
  if (text == "alpaca") return PromptTemplate::ALPACA;
  if (text == "raw") return PromptTemplate::RAW;
  bad(key, "'" + text + "' is not one of alpaca, raw");
}

const char* data_source_name(DataSource s) {
  switch (s) {
    case DataSource::SYNTHETIC: return "synthetic";
    case DataSource::DOLLY: return "dolly";
    case DataSource::NI: return "ni";
    case DataSource::JSONL: return "jsonl";
    case DataSource::PRETOKENIZED: return "pretokenized";
  }
  return "?";
}

const char* data_tokenizer_name(TokenizerKind t) { return t == TokenizerKind::BYTE ? "byte" : "hf"; }

void DataOptions::validate() const {
  if (source != DataSource::SYNTHETIC && path.empty())
    bad("data.path", std::string("required for data.source = ") + data_source_name(source));
  if (source == DataSource::NI && task_list.empty()) bad("data.task_list", "required for data.source = ni");
  if (num_clients < 0)
    bad("run.clients", "must be >= 0 (0 = the dataset's natural count), got " + std::to_string(num_clients));
  if (clients_per_category < 1)
    bad("data.clients_per_category", "must be >= 1, got " + std::to_string(clients_per_category));
  // Two examples is the least that gives both a train and a test example.
  if (examples_per_client < 2)
    bad("data.examples_per_client", "must be >= 2, got " + std::to_string(examples_per_client));
  // Two tokens: one prompt token and one response token, the shortest example that trains anything.
  if (max_length < 2) bad("data.max_length", "must be >= 2, got " + std::to_string(max_length));
  if (!(train_fraction > 0.0 && train_fraction < 1.0))
    bad("data.train_fraction", "must be in (0, 1), got " + num(train_fraction));
  if (tokenizer == TokenizerKind::HF && tokenizer_path.empty())
    bad("data.tokenizer_path", "required for data.tokenizer = hf (a Hugging Face model folder)");
  if (source == DataSource::JSONL) {
    if (prompt_field.empty()) bad("data.jsonl.prompt_field", "must not be empty");
    if (response_field.empty()) bad("data.jsonl.response_field", "must not be empty");
    if (client_field.empty()) bad("data.jsonl.client_field", "must not be empty");
  }
  if (ni_max_input_chars < 1)
    bad("data.ni.max_input_chars", "must be >= 1, got " + std::to_string(ni_max_input_chars));
  if (ni_min_instances < 1) bad("data.ni.min_instances", "must be >= 1, got " + std::to_string(ni_min_instances));
  if (!(ni_keep_fraction > 0.0 && ni_keep_fraction <= 1.0))
    bad("data.ni.keep_fraction", "must be in (0, 1], got " + num(ni_keep_fraction));
  if (pretrain_documents < 1)
    bad("data.pretrain_documents", "must be >= 1, got " + std::to_string(pretrain_documents));
}

}  // namespace mira
