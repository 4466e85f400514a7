// UTF-8 helpers for input validation: datasets refuse invalid UTF-8 with file:line, and the NI
// length filter counts code points as Python's len() does.
#pragma once
#include <cstddef>
#include <string>

namespace mira {

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool utf8_valid(const std::string& s);
// Number of code points of a valid UTF-8 string.
size_t utf8_length(const std::string& s);

}  // namespace mira
