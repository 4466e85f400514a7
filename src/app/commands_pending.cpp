// Subcommands whose machinery has not landed yet refuse clearly (exit code 2) instead of
// pretending to work. Each moves to its own file when it is implemented.
#include "app/commands.h"
#include "runtime/agree.h"

namespace mira {

static int refuse(const char* what, const char* needs) {
  throw CollectiveUserError(std::string("'") + what + "' is not available in this build yet: it needs " + needs +
                            " (see README, Status)");
}

int command_train(const AppContext&) { return refuse("train", "the model core, data and federation modules"); }
int command_pretrain(const AppContext&) { return refuse("pretrain", "full fine-tuning in the model core"); }
int command_inspect(const AppContext&) { return refuse("inspect", "HDF5 checkpoints"); }
int command_export(const AppContext&) { return refuse("export", "HDF5 checkpoints and PEFT export"); }

}  // namespace mira
