// togo's entry point: parse, dispatch, and print any error once, as one line.
#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "base/proc_title.h"
#include "base/text.h"
#include "cli/commands.h"

#ifdef TOGO_LAZY_CPU_PROBE
// OpenSSL probes the CPU's features (a dozen cpuid instructions) from the
// .init of every program that links it statically, before main. Under a
// hypervisor each cpuid traps, about 3 us: 35 us of every togo start, for
// code that only hashing and TLS use. The static build is linked with
// --wrap=OPENSSL_cpuid_setup: the call from .init, which runs before any
// constructor, does nothing; OpenSSL's own initialisation, which
// Sha256 and TLS go through (OPENSSL_init_crypto), makes the probe.
extern "C" void __real_OPENSSL_cpuid_setup();
namespace {
bool constructors_ran = false;
// The earliest priority: before any library's constructor could initialise OpenSSL.
__attribute__((constructor(101))) void note_constructors() { constructors_ran = true; }
}  // namespace
extern "C" void __wrap_OPENSSL_cpuid_setup() {
  if (constructors_ran) __real_OPENSSL_cpuid_setup();
}
#endif

int main(int argc, char** argv) {
  using namespace togo;
  proc_title::remember(argc, argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto inv = cli::parse(args, cli::verbs());
  auto report = [](const Error& e) {
    std::fprintf(stderr, "togo: %s\n", e.message.c_str());
    std::string hint = e.hint;
    // A full drive is the common cause a person can act on.
    if (hint.empty() && e.err == ENOSPC)
      hint = "the drive is full: free space (`togo gc` removes what nothing uses) and try again; "
             "the store was left as it was";
    if (hint.empty() && e.err == EIO)
      hint = "the drive returns I/O errors: it may have been unplugged or be failing; plug it "
             "back in and run `togo fsck`";
    if (!hint.empty()) std::fprintf(stderr, "togo: hint: %s\n", hint.c_str());
    return cli::exit_code_for(e);
  };
  if (!inv) return report(inv.error());
  cli::Invocation help_inv;
  if (!inv->verb || inv->help) {
    // `togo`, `togo --help`, `togo VERB --help`: the help for it.
    help_inv.verb = cli::find_verb(cli::verbs(), "help");
    if (inv->verb && inv->verb->name != "help") {
      for (auto& w : text::split(inv->verb->name, ' ')) help_inv.args.push_back(w);
    }
    cli::Context c(help_inv);
    auto r = cli::cmd_help(c);
    return r ? (inv->verb ? *r : (inv->help ? 0 : cli::kExitUsage)) : report(r.error());
  }
  cli::Context c(*inv);
  auto r = cli::handler_for(*inv->verb)(c);
  if (!r) return report(r.error());
  return *r;
}
