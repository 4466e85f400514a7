// The table of every configuration key: section, name, type, default, allowed values, help, and
// how to set/get it on a Config. The INI reader, the command line (Boost.ProgramOptions), --help
// and the resolved-config dump are all driven by this one table.
#pragma once
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "app/config.h"

namespace mira {

// Thrown by a key's setter: what() says what is allowed ("an integer in [1, 4096]").
class ConfigValueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ConfigKey {
  std::string section;
  std::string name;
  std::string allowed;        // human text: "integer >= 1", "mira | fedit | local"
  std::string default_value;  // as it would be written in the INI file
  std::string help;
  std::function<void(Config&, const std::string&)> set;  // throws ConfigValueError
  std::function<std::string(const Config&)> get;        // value as INI text
  std::string full() const { return section + "." + name; }
};

const std::vector<ConfigKey>& config_keys();
const ConfigKey* config_find_key(const std::string& full_name);
// Sections in table order, and a one-line description of each.
const std::vector<std::pair<std::string, std::string>>& config_sections();
// Sets every key to its default (origin "default").
void config_apply_defaults(Config& c);
// The fully resolved configuration as INI text (every key, with its origin as a comment).
std::string config_to_ini(const Config& c, bool with_origins);

// Strict scalar parsers used by the setters (exposed for tests).
long long config_parse_int(const std::string& text, long long lo, long long hi);
double config_parse_double(const std::string& text, double lo, double hi);
bool config_parse_bool(const std::string& text);

}  // namespace mira
