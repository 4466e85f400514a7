// A small INI reader that keeps line numbers (Boost.ProgramOptions' INI parser gives none), so
// every configuration error can name file:line. Syntax: `[section]`, `key = value`, whole-line
// comments starting with # or ;, inline comments after whitespace + # (after a value or a section
// header; `key =   # note` is an empty value), optional "double quotes" around a value (to keep a
// leading #). A UTF-8 byte order mark at the start is skipped. Keys are reported as section.key.
#pragma once
#include <string>
#include <vector>

namespace mira {

struct IniEntry {
  std::string section;
  std::string key;    // without the section
  std::string value;
  int line = 0;
  int section_line = 0;  // line of the [section] header above it
  std::string full() const { return section + "." + key; }
};

// Parses `text` (the contents of `path`; path is used only in messages). Throws UserError
// "path:line: ..." for a malformed line, a key outside any section or a duplicate key.
std::vector<IniEntry> ini_parse(const std::string& text, const std::string& path);

}  // namespace mira
