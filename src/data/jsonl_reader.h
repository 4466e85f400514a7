// Line-by-line JSONL reading with errors that name file:line: invalid UTF-8, malformed JSON, a
// line that is not an object, a missing or non-string field all throw UserError.
#pragma once
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace mira {

// Calls fn(object, line_number) for every non-blank line of `path` (blank lines are skipped).
void jsonl_for_each(const std::string& path, const std::function<void(const nlohmann::json&, long)>& fn);
// obj[field] as a string; UserError "path:line: missing field 'x'" / "field 'x' is not a string".
std::string jsonl_string_field(const nlohmann::json& obj, const std::string& field, const std::string& path,
                               long line);
// The whole file as one string; UserError if it cannot be read.
std::string jsonl_read_file(const std::string& path, const std::string& key);

}  // namespace mira
