// Prompt templates (see templates.h); the text is the authors' code's, character for character.
#include "data/templates.h"

namespace mira {

std::string template_dolly(const std::string& instruction, const std::string& context) {
  if (!context.empty())
    return "Below is an instruction that describes a task, paired with an input that provides further context. "
           "Write a response for the task request.\n\n### Instruction:\n" +
           instruction + "\n\n### Input:\n" + context + "\n\n### Response:";
  return "Below is an instruction that describes a task. Write a response for the task request.\n\n"
         "### Instruction:\n" +
         instruction + "\n\n### Response:";
}

std::string template_ni(const std::string& definition, const std::string& input) {
  return "Below is an instruction that describes a task, paired with an input that provides further context. "
         "Write a response that appropriately completes the request.\n\n### Instruction:\n" +
         definition + "\n\n### Input:\n" + input + "\n\n### Response:";
}

}  // namespace mira
