// DataOptions: the plain options struct of the data module (datasets, tokenizer, splits, lengths).
// The lead's validated Config maps its data.* keys onto it; validate() checks ranges and throws
// UserError naming the dotted key (data.path, data.max_length, ...). docs/data.md lists every key.
#pragma once
#include <cstdint>
#include <string>

namespace mira {

enum class DataSource { SYNTHETIC, DOLLY, NI, JSONL, PRETOKENIZED };
enum class TokenizerKind { BYTE, HF };
// Prompt template for generic JSONL: ALPACA = the Dolly templates (with / without input), RAW = the
// prompt field verbatim followed by the input field (if any) on the next line.
enum class PromptTemplate { ALPACA, RAW };

struct DataOptions {
  DataSource source = DataSource::SYNTHETIC;  // data.source: synthetic | dolly | ni | jsonl | pretokenized
  std::string path;                  // data.path: Dolly/JSONL file, NI tasks folder, pretokenised .h5
  std::string task_list;             // data.task_list: NI task names, one per line
  int num_clients = 0;               // run.clients: 0 = the dataset's natural count
  int clients_per_category = 10;     // data.clients_per_category (dolly, jsonl)
  int examples_per_client = 40;      // data.examples_per_client (synthetic)
  int max_length = 1024;             // data.max_length: tokens per example (prompt + response + EOS)
  double train_fraction = 0.8;       // data.train_fraction: local train share of each client
  uint64_t seed = 42;                // run.seed: splits, assignment, shuffling, synthetic content
  TokenizerKind tokenizer = TokenizerKind::BYTE;  // data.tokenizer: byte | hf
  std::string tokenizer_path;        // data.tokenizer_path: HF folder (tokenizer.json or vocab+merges)
  // Generic JSONL field names (data.jsonl.*).
  std::string prompt_field = "instruction";  // data.jsonl.prompt_field
  std::string input_field = "context";       // data.jsonl.input_field ("" = none)
  std::string response_field = "response";   // data.jsonl.response_field
  std::string client_field = "category";     // data.jsonl.client_field (groups lines into tasks)
  PromptTemplate prompt_template = PromptTemplate::ALPACA;  // data.jsonl.template: alpaca | raw
  // Natural Instructions filters (MIRA.md, Experiments), data.ni.*.
  int ni_max_input_chars = 1024;     // data.ni.max_input_chars: drop inputs with >= this many chars
  int ni_min_instances = 20;         // data.ni.min_instances: skip tasks with fewer left
  double ni_keep_fraction = 0.2;     // data.ni.keep_fraction: share of instances kept per task
  int pretrain_documents = 4000;     // data.pretrain_documents: synthetic pretraining corpus size

  // Throws UserError naming the first bad key and what is allowed.
  void validate() const;
};

// Parse / print the enum values as written in configs; parse throws UserError naming `key`.
DataSource data_parse_source(const std::string& text, const std::string& key = "data.source");
TokenizerKind data_parse_tokenizer(const std::string& text, const std::string& key = "data.tokenizer");
PromptTemplate data_parse_template(const std::string& text, const std::string& key = "data.jsonl.template");
const char* data_source_name(DataSource s);
const char* data_tokenizer_name(TokenizerKind t);

}  // namespace mira
