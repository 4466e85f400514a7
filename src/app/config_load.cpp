// Command line (Boost.ProgramOptions) + INI file (ini.h) -> Config (see config_load.h).
#include "app/config_load.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "app/config_schema.h"
#include "app/ini.h"
#include "runtime/error.h"

namespace po = boost::program_options;

namespace mira {
namespace {

const char* kUsage =
    "usage: mira_hpc [train|pretrain] [--config FILE.ini] [--section.key VALUE ...]\n"
    "       mira_hpc inspect FILE.h5 | RUN/checkpoints\n"
    "       mira_hpc export --checkpoint FILE.h5 --client K --out DIR\n"
    "       mira_hpc --help | --version\n"
    "\n"
    "Subcommands:\n"
    "  train      federated multi-task LoRA fine-tuning (default)\n"
    "  pretrain   full fine-tuning of the base model on a generic corpus\n"
    "  inspect    summarise a checkpoint\n"
    "  export     write one client's adapter as a Hugging Face PEFT folder\n"
    "\n"
    "Every key can be set in the INI file ([section] then key = value) or on the command line as\n"
    "--section.key VALUE; the command line wins.\n";

// Short options that set a key: (option, key). Giving both forms is refused.
const std::pair<const char*, const char*> kOptionAliases[] = {
    {"log-level", "run.log_level"}, {"resume", "run.resume"}, {"backend", "run.backend"}};

po::options_description general_options() {
  po::options_description general("General options");
  general.add_options()
      ("config,c", po::value<std::string>()->value_name("FILE"), "INI configuration file")
      ("dry-run", "print the resolved configuration and the plan, then exit")
      ("log-level", po::value<std::string>()->value_name("LEVEL"), "same as --run.log_level")
      ("resume", po::value<std::string>()->value_name("WHAT"), "same as --run.resume (auto | latest | PATH)")
      ("backend", po::value<std::string>()->value_name("KIND"), "same as --run.backend (auto | cpu | cuda)")
      ("help,h", "print this help")
      ("version", "print version, compiler and library versions")
      ("help-keys", "print every configuration key as a Markdown table (docs/configuration.md)");
  return general;
}

po::options_description tool_options() {
  po::options_description tool("inspect / export options");
  tool.add_options()
      ("checkpoint", po::value<std::string>()->value_name("PATH"),
       "checkpoint file, or a directory whose `latest` is used (inspect also takes it as its argument)")
      ("client", po::value<int>()->value_name("K"), "export: the client whose adapter is written")
      ("out", po::value<std::string>()->value_name("DIR"), "export: the PEFT folder to create");
  return tool;
}

std::vector<po::options_description> section_options() {
  std::vector<po::options_description> out;
  for (const auto& [sec, desc] : config_sections()) {
    po::options_description d("[" + sec + "] " + desc);
    for (const auto& k : config_keys()) {
      if (k.section != sec) continue;
      std::string text = k.help + " {" + k.allowed + "}";
      d.add_options()(k.full().c_str(),
                      po::value<std::string>()->value_name("V")->default_value(k.default_value), text.c_str());
    }
    out.push_back(d);
  }
  return out;
}

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggestion(const std::string& name) {
  std::string best;
  size_t best_d = 3;  // suggest only close matches (at most 2 edits)
  for (const auto& k : config_keys()) {
    size_t d = edit_distance(name, k.full());
    if (d < best_d) best_d = d, best = k.full();
  }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

std::string keys_of_section(const std::string& sec) {
  std::string s;
  for (const auto& k : config_keys())
    if (k.section == sec) s += (s.empty() ? "" : ", ") + k.name;
  return s;
}

void set_value(Config& c, const ConfigKey& key, const std::string& value, const std::string& origin) {
  try {
    key.set(c, value);
  } catch (const ConfigValueError& e) {
    throw UserError(origin + ": " + key.full() + " = '" + value + "': expected " + e.what());
  }
  c.origin[key.full()] = origin;
}

}  // namespace

std::string config_read_file(const std::string& path) {
  std::error_code ec;  // a directory opens as an empty stream on Linux: it would run with every default
  if (std::filesystem::is_directory(path, ec))
    throw UserError("cannot read config file '" + path + "': it is a directory (expected an INI file)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot read config file '" + path + "': no such file or not readable");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw UserError("cannot read config file '" + path + "': read error");
  return ss.str();
}

std::string config_keys_markdown() {
  std::ostringstream os;
  for (const auto& [sec, desc] : config_sections()) {
    os << "\n### [" << sec << "]: " << desc << "\n\n| key | default | allowed | meaning |\n|---|---|---|---|\n";
    for (const auto& k : config_keys()) {
      if (k.section != sec) continue;
      std::string allowed = k.allowed;
      for (size_t p = 0; (p = allowed.find('|', p)) != std::string::npos; p += 2) allowed.replace(p, 1, "\\|");
      os << "| `" << k.full() << "` | `" << k.default_value << "` | " << allowed << " | " << k.help << " |\n";
    }
  }
  return os.str();
}

std::string config_help_text() {
  std::ostringstream os;
  os << kUsage << "\n" << general_options() << "\n" << tool_options() << "\n";
  for (const auto& d : section_options()) os << d << "\n";
  os << "Exit codes: 0 done, 1 internal fault, 2 user error (bad configuration or input),\n"
        "            3 stopped on a signal after writing a checkpoint (resubmit with --resume auto).\n";
  return os.str();
}

CliOutcome config_parse(const std::vector<std::string>& args_in, const FileReader& read_file) {
  CliOutcome out;
  Config& c = out.config;
  config_apply_defaults(c);

  // Subcommand: the first argument when it does not start with '-'.
  std::vector<std::string> args = args_in;
  if (!args.empty() && !args[0].empty() && args[0][0] != '-') {
    const std::string& cmd = args[0];
    if (cmd == "train") c.command = Command::TRAIN;
    else if (cmd == "pretrain") c.command = Command::PRETRAIN;
    else if (cmd == "inspect") c.command = Command::INSPECT;
    else if (cmd == "export") c.command = Command::EXPORT;
    else throw UserError("command line: unknown subcommand '" + cmd + "' (allowed: train, pretrain, inspect, export)");
    args.erase(args.begin());
  }

  po::options_description all;
  all.add(general_options());
  all.add(tool_options());
  all.add_options()("positional", po::value<std::vector<std::string>>(), "positional arguments");
  po::positional_options_description positional;
  positional.add("positional", -1);
  for (const auto& d : section_options()) all.add(d);

  po::variables_map vm;
  try {
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::parsed_options parsed = po::command_line_parser(args).options(all).positional(positional).style(style).run();
    po::store(parsed, vm);
  } catch (const po::unknown_option& e) {
    std::string name = e.get_option_name();
    std::string bare = name.rfind("--", 0) == 0 ? name.substr(2) : name;
    throw UserError("command line: unknown option '" + name + "'" + suggestion(bare) + "; mira_hpc --help lists all");
  } catch (const po::multiple_occurrences& e) {
    throw UserError("command line: option '" + e.get_option_name() + "' is given more than once");
  } catch (const po::invalid_command_line_syntax& e) {
    throw UserError("command line: option '" + e.get_option_name() + "' needs a value");
  } catch (const po::error& e) {
    throw UserError(std::string("command line: ") + e.what());
  }
  // inspect FILE takes its checkpoint as the one positional argument; nothing else takes any.
  if (vm.count("positional")) {
    const auto& pos = vm["positional"].as<std::vector<std::string>>();
    if (c.command == Command::INSPECT && pos.size() == 1 && !vm.count("checkpoint")) {
      c.tool.checkpoint = pos[0];
    } else {
      throw UserError("command line: unexpected argument '" + pos[c.command == Command::INSPECT && pos.size() > 1 ? 1 : 0] +
                      "' (options are --section.key VALUE; mira_hpc --help lists them)");
    }
  }
  if (vm.count("checkpoint")) c.tool.checkpoint = vm["checkpoint"].as<std::string>();
  if (vm.count("client")) c.tool.client = vm["client"].as<int>();
  if (vm.count("out")) c.tool.out = vm["out"].as<std::string>();
  const bool is_tool = c.command == Command::INSPECT || c.command == Command::EXPORT;
  if (!is_tool && (vm.count("checkpoint") || vm.count("client") || vm.count("out")))
    throw UserError("command line: --checkpoint, --client and --out belong to the inspect and export subcommands");
  if (c.command == Command::INSPECT && c.tool.checkpoint.empty())
    throw UserError("command line: inspect needs a checkpoint: mira_hpc inspect FILE.h5 (or a run's checkpoints/ directory)");
  if (c.command == Command::EXPORT && (c.tool.checkpoint.empty() || c.tool.client < 0 || c.tool.out.empty()))
    throw UserError("command line: export needs --checkpoint FILE --client K (>= 0) --out DIR");
  out.help = vm.count("help") > 0;
  out.help_keys = vm.count("help-keys") > 0;
  if (out.help_keys) return out;
  out.version = vm.count("version") > 0;
  if (out.help || out.version) return out;
  c.dry_run = vm.count("dry-run") > 0;

  // INI file: unknown sections and keys are refused with their line.
  if (vm.count("config")) {
    c.config_path = vm["config"].as<std::string>();
    c.config_text = read_file(c.config_path);
    std::set<std::string> sections;
    for (const auto& [s, d] : config_sections()) sections.insert(s);
    for (const IniEntry& e : ini_parse(c.config_text, c.config_path)) {
      const std::string where = c.config_path + ":" + std::to_string(e.line);
      if (!sections.count(e.section)) {
        std::string allowed;
        for (const auto& s : sections) allowed += (allowed.empty() ? "" : ", ") + s;
        throw UserError(c.config_path + ":" + std::to_string(e.section_line) + ": unknown section [" + e.section +
                        "] (allowed sections: " + allowed + ")");
      }
      const ConfigKey* key = config_find_key(e.full());
      if (!key)
        throw UserError(where + ": unknown key '" + e.key + "' in section [" + e.section + "]" +
                        suggestion(e.full()) + " (allowed: " + keys_of_section(e.section) + ")");
      set_value(c, *key, e.value, where);
    }
  }

  // Command line last: it wins over the file. Only values given explicitly (not Boost's defaults).
  for (const auto& [alias, key] : kOptionAliases) {
    if (!vm.count(alias)) continue;
    if (!vm[key].defaulted())
      throw UserError(std::string("command line: --") + alias + " and --" + key + " are the same key; give one");
    set_value(c, *config_find_key(key), vm[alias].as<std::string>(), "command line");
  }
  for (const auto& k : config_keys()) {
    auto it = vm.find(k.full());
    if (it == vm.end() || it->second.defaulted()) continue;
    set_value(c, k, it->second.as<std::string>(), "command line");
  }
  config_validate(c);
  return out;
}

void config_validate(const Config& c) {
  try {
    c.data.validate();
  } catch (const UserError& e) {  // name where the offending value came from
    std::string msg = e.what();
    for (const auto& [key, origin] : c.origin)
      if (origin != "default" && msg.rfind(key, 0) == 0) throw UserError(origin + ": " + msg);
    throw;
  }
  auto where = [&](const std::string& key) {
    auto it = c.origin.find(key);
    return it == c.origin.end() ? std::string("config") : it->second;
  };
  // LoRA targets: no module named twice (c_proj already covers attn.c_proj and mlp.c_proj).
  std::set<std::string> covered;
  for (const auto& t : c.lora.targets) {
    std::vector<std::string> modules;
    if (t == "c_proj") modules = {"attn.c_proj", "mlp.c_proj"};
    else if (t == "c_fc") modules = {"mlp.c_fc"};
    else modules = {t};
    for (const auto& m : modules)
      if (!covered.insert(m).second)
        throw UserError(where("lora.targets") + ": lora.targets names module " + m + " twice ('" + t +
                        "' overlaps an earlier entry; c_proj means attn.c_proj + mlp.c_proj)");
  }
  if (c.model.path.empty() && c.model.preset != "tiny" && c.model.preset != "gpt2-124m-shape")
    throw UserError(where("model.preset") + ": model.preset = '" + c.model.preset +
                    "': expected one of tiny | gpt2-124m-shape (or set model.path to a Hugging Face folder)");
  // Compared with the default value, not with "was it given", so that a resolved dump (every key
  // written out) reads back.
  if (!c.model.path.empty() && c.model.preset != config_find_key("model.preset")->default_value)
    throw UserError(where("model.preset") + ": model.preset and model.path (" + where("model.path") +
                    ") are both set; give one: a preset is built from the seed, a path is loaded");
  if (c.data.source == DataSource::SYNTHETIC && !c.data.path.empty())
    throw UserError(where("data.path") + ": data.path is set but data.source = synthetic reads no file; set "
                    "data.source (dolly | ni | jsonl | pretokenized) or remove data.path");
}

}  // namespace mira
