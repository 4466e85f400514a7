// Resume: the checkpoint's stored configuration (its `config` attribute, config_to_ini text) against
// this run's. A resume continues the same run, bitwise (README, Checkpoints): every key that changes
// the results must be equal, and a resume with another value is refused with one line that lists
// every such key with both values. Keys that may differ: how long, where and how the run executes and
// what it writes (run.rounds, run.output, run.backend, run.threads, logging, checkpoint.*, eval.*,
// testing keys), keys checked by their effect elsewhere (run.clients through the shapes, the base
// model through its SHA-256, federation.graph / graph_seed through the graph weights,
// federation.sample_fraction through m and the sampling history), model.base_precision and
// federation.reproducible (a compute change, warned about), and what only `pretrain` reads. File
// paths of the data (data.path, data.task_list, data.tokenizer_path) may differ with a warning: a
// moved file is the same data, and the file's content is not checked.
#pragma once
#include <string>
#include <vector>

namespace mira {

struct ResumeConfigDiff {
  std::string key;     // section.key
  std::string stored;  // the checkpoint's value
  std::string now;     // this run's value
};

struct ResumeConfigComparison {
  std::vector<ResumeConfigDiff> refused;  // keys that change the results (in config_to_ini order)
  std::vector<ResumeConfigDiff> warned;   // data file paths that differ
};

// Compares two config texts as config_to_ini writes them. Values are compared after parsing them as
// the key's type (so "1e-3" equals "0.001"); a key present on one side only (written by another
// version) or unknown to this binary is skipped. Throws UserError when a text does not parse as INI.
ResumeConfigComparison resume_config_compare(const std::string& stored_text, const std::string& current_text);

// true when a resume may change `key` (section.key) freely.
bool resume_config_may_change(const std::string& key);

// The refusal text for `refused` (non-empty): "its configuration differs in N key(s) that change the
// results: a.b = 'x' there, 'y' here; ...; resume with the checkpoint's values, or start a new run in
// another run.output".
std::string resume_config_refusal(const std::vector<ResumeConfigDiff>& refused);

}  // namespace mira
