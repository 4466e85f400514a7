// Turns the command line and the INI file into a validated Config. Precedence: command line >
// INI file > default. Every mistake is a UserError naming the key, its origin (file:line or
// "command line") and what is allowed.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "app/config.h"

namespace mira {

struct CliOutcome {
  Config config;
  bool help = false;
  bool version = false;
  bool help_keys = false;
};

// Reads a file's whole text; throws UserError when it cannot. Injected so that under MPI one rank
// reads and broadcasts (every rank then parses the same text and reaches the same verdict).
using FileReader = std::function<std::string(const std::string& path)>;
std::string config_read_file(const std::string& path);

// args: argv[1..]. Parses, applies the INI file and the command line, validates.
CliOutcome config_parse(const std::vector<std::string>& args, const FileReader& read_file);
// Cross-key checks (ranges are checked per key while parsing).
void config_validate(const Config& c);
// `mira_hpc --help`: usage, subcommands, every key grouped by section.
std::string config_help_text();
// Every key as Markdown tables, one per section (docs/configuration.md is generated from it).
std::string config_keys_markdown();

}  // namespace mira
