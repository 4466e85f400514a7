// Prompt templates, verbatim from the authors' code (MIRA.md, Experiments). The target is the
// response followed by EOS; these strings end where the response begins.
#pragma once
#include <string>

namespace mira {

// Dolly: the "with input" form when context is non-empty, else the "no input" form.
std::string template_dolly(const std::string& instruction, const std::string& context);
// Natural Instructions (always has an input).
std::string template_ni(const std::string& definition, const std::string& input);

}  // namespace mira
