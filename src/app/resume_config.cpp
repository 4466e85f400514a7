// The checkpoint's configuration against this run's on a resume (see resume_config.h).
#include "app/resume_config.h"

#include <map>
#include <set>

#include "app/config_schema.h"
#include "app/ini.h"

namespace mira {
namespace {

// Keys a resume may change, and why (resume_config.h; docs/checkpoint-format.md, Resume).
const std::set<std::string>& free_keys() {
  static const std::set<std::string> keys = {
      // how long, where and how the run executes (a backend or precision change is warned about)
      "run.rounds", "run.output", "run.resume", "run.backend", "run.share_devices", "run.threads", "run.log_level",
      "run.fail_on_rank", "run.wait_for_signal_after_round", "model.base_precision", "federation.reproducible",
      // checked by their effect: K (the shapes), the base model (SHA-256 or preset name, and the shapes),
      // the graph weights, m and the sampling history
      "run.clients", "model.path", "model.preset", "federation.graph", "federation.graph_seed",
      "federation.sample_fraction",
      // read by `pretrain` only
      "data.pretrain_documents"};
  return keys;
}

// Data file paths: a different text may name the same (moved) file; the content is not checked.
const std::set<std::string>& path_keys() {
  static const std::set<std::string> keys = {"data.path", "data.task_list", "data.tokenizer_path"};
  return keys;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::map<std::string, std::string> values(const std::string& text, const char* what) {
  std::map<std::string, std::string> out;
  for (const IniEntry& e : ini_parse(text, what)) out[e.full()] = e.value;
  return out;
}

// The value as this binary writes it for the key's type ("1e-3" -> "0.001"); the text itself when
// it is not a valid value (any more).
std::string canonical(const ConfigKey& k, const std::string& v) {
  try {
    Config c;
    k.set(c, v);
    return k.get(c);
  } catch (const std::exception&) {
    return v;
  }
}

}  // namespace

bool resume_config_may_change(const std::string& key) {
  return free_keys().count(key) > 0 || starts_with(key, "checkpoint.") || starts_with(key, "eval.") ||
         starts_with(key, "pretrain.");
}

ResumeConfigComparison resume_config_compare(const std::string& stored_text, const std::string& current_text) {
  const auto stored = values(stored_text, "the checkpoint's config"), now = values(current_text, "this run's config");
  ResumeConfigComparison out;
  for (const ConfigKey& k : config_keys()) {
    const std::string key = k.full();
    auto s = stored.find(key), n = now.find(key);
    if (s == stored.end() || n == now.end() || resume_config_may_change(key)) continue;
    if (path_keys().count(key)) {
      if (s->second != n->second) out.warned.push_back({key, s->second, n->second});
      continue;
    }
    if (canonical(k, s->second) != canonical(k, n->second)) out.refused.push_back({key, s->second, n->second});
  }
  return out;
}

std::string resume_config_refusal(const std::vector<ResumeConfigDiff>& refused) {
  std::string list;
  for (const auto& d : refused)
    list += (list.empty() ? "" : "; ") + d.key + " = '" + d.stored + "' there, '" + d.now + "' here";
  return "its configuration differs in " + std::to_string(refused.size()) + " key(s) that change the results: " +
         list + "; resume with the checkpoint's values (a resume continues the same run, bitwise), or start a new "
         "run in another run.output";
}

}  // namespace mira
