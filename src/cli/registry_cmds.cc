// togo image pull | push
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/progress.h"
#include "image/oci.h"
#include "image/pull.h"
#include "image/push.h"
#include "image/reference.h"

namespace togo::cli {

namespace {

/// A reference given on the command line; a bad one is a usage error.
Result<image::Reference> reference_arg(const std::string& s) {
  auto ref = image::parse_reference(s);
  if (!ref) ref.error().kind = ErrorKind::kUsage;
  return ref;
}

/// Connection timeouts: TOGO_HTTP_TIMEOUT=SECONDS sets both the connect
/// timeout and the longest wait for a registry that stops answering.
Result<image::http::ClientOptions> http_options() {
  image::http::ClientOptions h;
  const char* t = std::getenv("TOGO_HTTP_TIMEOUT");
  if (!t || !*t) return h;
  char* end = nullptr;
  long n = std::strtol(t, &end, 10);
  if (*end != '\0' || n < 1 || n > 86400)
    return error(ErrorKind::kUsage, std::string("TOGO_HTTP_TIMEOUT=") + t + ": not a number of seconds (1-86400)");
  h.connect_timeout_s = h.idle_timeout_s = static_cast<int>(n);
  return h;
}

Result<void> transfer_options(Context& c, image::TransferOptions& o, TransferDisplay& display) {
  if (auto creds = c.inv.value("--creds")) o.creds = TRY_CTX(image::parse_creds(*creds), "--creds");
  o.insecure = c.inv.flag("--insecure");
  o.http = TRY(http_options());
  o.notice = [&display](const std::string& s) { display.notice(s); };
  o.progress = display.callback();
  return {};
}

Result<image::oci::Platform> platform_arg(const std::string& option, const std::string& value) {
  auto p = image::oci::parse_platform(value);
  if (!p) return error(ErrorKind::kUsage, option + " " + value + ": " + p.error().message);
  return p;
}

}  // namespace

Result<int> cmd_image_pull(Context& c) {
  image::Reference ref = TRY_CTX(reference_arg(c.inv.args[0]), "image pull");
  image::PullOptions o;
  o.name = c.inv.value("--name").value_or("");
  o.unpack = c.inv.flag("--unpack");
  auto arch = c.inv.value("--arch");
  auto platform = c.inv.value("--platform");
  if (arch && platform)
    return error(ErrorKind::kUsage, "image pull: --arch and --platform cannot be used together");
  if (arch) o.platform = TRY_CTX(platform_arg("--arch", *arch), "image pull");
  if (platform) o.platform = TRY_CTX(platform_arg("--platform", *platform), "image pull");
  TransferDisplay display(stdout, live_terminal(STDOUT_FILENO));
  TRY_CTX(transfer_options(c, o, display), "image pull");
  auto st = TRY(c.open_store(store::Store::Access::kWrite));
  auto img = image::pull(st, ref, o);
  display.finish();
  if (!img) return std::unexpected(std::move(img.error()).context("image pull"));
  std::printf("%s %s\n", img->name.c_str(), img->id.substr(7, 12).c_str());
  return 0;
}

Result<int> cmd_image_push(Context& c) {
  const std::string& name = c.inv.args[0];
  image::Reference ref = TRY_CTX(reference_arg(c.inv.args[1]), "image push");
  image::PushOptions o;
  TransferDisplay display(stdout, live_terminal(STDOUT_FILENO));
  TRY_CTX(transfer_options(c, o, display), "image push");
  auto st = TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kRead));
  if (!st) return error(ErrorKind::kNotFound, "image push: image " + name + ": no such image (the store is empty)");
  auto digest = image::push(*st, name, ref, o);
  display.finish();
  if (!digest) return std::unexpected(std::move(digest.error()).context("image push"));
  std::printf("%s/%s%s@%s\n", ref.registry.c_str(), ref.repository.c_str(),
              ref.tag.empty() ? "" : (":" + ref.tag).c_str(), digest->c_str());
  return 0;
}

}  // namespace togo::cli
