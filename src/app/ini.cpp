// INI parsing with line numbers (see ini.h).
#include "app/ini.h"

#include <map>

#include "runtime/error.h"

namespace mira {

static std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::vector<IniEntry> ini_parse(const std::string& text, const std::string& path) {
  std::vector<IniEntry> entries;
  std::map<std::string, int> first_line;
  std::string section;
  int section_line = 0;
  int line_no = 0;
  size_t pos = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) pos = 3;  // a UTF-8 byte order mark (Windows editors write one)
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string raw = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      // "[run]   # comment": an inline comment after the header, as after a value.
      const size_t close = line.find(']');
      if (close != std::string::npos && close + 1 < line.size()) {
        const size_t rest = line.find_first_not_of(" \t", close + 1);
        if (rest > close + 1 && line[rest] == '#') line = trim(line.substr(0, close + 1));
      }
      if (line.back() != ']' || line.size() < 3)
        throw UserError(where + "malformed section header '" + line + "' (expected [name])");
      section = trim(line.substr(1, line.size() - 2));
      section_line = line_no;
      if (section.empty() || section.find_first_of(" \t[]=") != std::string::npos)
        throw UserError(where + "malformed section header '" + line + "' (expected [name])");
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos)
      throw UserError(where + "expected 'key = value' or '[section]', got '" + line + "'");
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (key.empty() || key.find_first_of(" \t") != std::string::npos)
      throw UserError(where + "malformed key in '" + line + "' (expected 'key = value')");
    // Inline comment: whitespace followed by # (a # inside a word, e.g. a path, is kept). A value
    // that starts with # is empty: "key =   # none" is "", not "# none".
    for (size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '#' && (i == 0 || value[i - 1] == ' ' || value[i - 1] == '\t')) {
        value = trim(value.substr(0, i));
        break;
      }
    }
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (section.empty())
      throw UserError(where + "key '" + key + "' appears before any [section] (write e.g. [lora] above it)");
    IniEntry e{section, key, value, line_no, section_line};
    auto [it, inserted] = first_line.emplace(e.full(), line_no);
    if (!inserted)
      throw UserError(where + "duplicate key '" + e.full() + "' (first set at line " + std::to_string(it->second) +
                      ")");
    entries.push_back(e);
  }
  return entries;
}

}  // namespace mira
