// Placeholder registration; replaced by the owning work item.
#include <CLI/CLI.hpp>

#include "commands.h"

namespace heinfer::apps {
void register_run(CLI::App& /*app*/) {}
}  // namespace heinfer::apps
