// JSONL reading with file:line errors (see jsonl_reader.h).
#include "data/jsonl_reader.h"

#include <fstream>
#include <sstream>

#include "data/utf8.h"
#include "runtime/error.h"

namespace mira {

std::string jsonl_read_file(const std::string& path, const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(key + " = " + path + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void jsonl_for_each(const std::string& path, const std::function<void(const nlohmann::json&, long)>& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("data.path = " + path + ": cannot open file");
  std::string line;
  long lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (!utf8_valid(line)) throw UserError(path + ":" + std::to_string(lineno) + ": invalid UTF-8");
    nlohmann::json obj;
    try {
      obj = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw UserError(path + ":" + std::to_string(lineno) + ": malformed JSON (" + e.what() + ")");
    }
    if (!obj.is_object()) throw UserError(path + ":" + std::to_string(lineno) + ": expected a JSON object");
    fn(obj, lineno);
  }
}

std::string jsonl_string_field(const nlohmann::json& obj, const std::string& field, const std::string& path,
                               long line) {
  auto it = obj.find(field);
  if (it == obj.end())
    throw UserError(path + ":" + std::to_string(line) + ": missing field '" + field + "'");
  if (!it->is_string())
    throw UserError(path + ":" + std::to_string(line) + ": field '" + field + "' is not a string");
  return it->get<std::string>();
}

}  // namespace mira
