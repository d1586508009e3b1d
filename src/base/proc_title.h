// The command line `ps` shows for this process, rewritten in place.
#pragma once

namespace togo::proc_title {

/// Remembers where the kernel laid out the arguments; main calls it first.
void remember(int argc, char** argv);

/// Makes `name` the process's name and its whole command line (as far as
/// the arguments' space reaches). Allocation-free and without system calls
/// but one; only the name changes if remember() was not called.
void set(const char* name);

}  // namespace togo::proc_title
