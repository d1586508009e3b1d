#include "pull_fixture.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace togo::test {

namespace {

// Prints one member of a layer blob (tar, gzip, xz or bzip2): ARGV 1 the
// blob, 2 the path; exits 1 if the blob has no such member.
constexpr const char* kReadMember = R"(import sys, tarfile
want = sys.argv[2].strip("/")
with tarfile.open(sys.argv[1], "r:*") as t:
    for m in t:
        if m.isfile() and (m.name[2:] if m.name.startswith("./") else m.name) == want:
            sys.stdout.write(t.extractfile(m).read().decode())
            sys.exit(0)
sys.exit(1)
)";

}  // namespace

std::string fake_registry_script() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind('/')) + "/fake_registry.py";
}

std::string python() { return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

/// The architecture togo picks by default here, or "" on other machines.
std::string host_arch() {
  struct utsname u;
  ::uname(&u);
  std::string m = u.machine;
  return m == "x86_64" ? "amd64" : m == "aarch64" ? "arm64" : "";
}

off_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

/// Lines of a proxy log that fetched a blob.
std::vector<std::string> blob_gets(const std::string& log_path, const std::string& digest) {
  std::vector<std::string> out;
  for (auto& l : lines_of(read_file(log_path).value_or("")))
    if (l.starts_with("GET ") && l.find("/blobs/" + digest) != std::string::npos) out.push_back(l);
  return out;
}

/// (digest, size) of each layer in a manifest, read by python.
std::vector<std::pair<std::string, uint64_t>> manifest_layers(const std::string& manifest) {
  RunResult r = run({python(), "-c",
                     "import json,sys\nfor l in json.load(sys.stdin)['layers']: print(l['digest'], l['size'])"},
                    {.input = manifest});
  std::vector<std::pair<std::string, uint64_t>> out;
  for (auto& l : lines_of(r.out)) out.emplace_back(l.substr(0, l.find(' ')), std::stoull(l.substr(l.find(' ') + 1)));
  return out;
}

/// stderr is one line "togo: ..." (+ a hint) holding every needle, and the
/// exit status is `status`. Progress lines on stdout are allowed.
::testing::AssertionResult error_line(const RunResult& r, int status, const std::vector<std::string>& needles) {
  auto fail = [&](const std::string& why) { return ::testing::AssertionFailure() << why << "\n" << describe(r); };
  if (r.status != status) return fail("exit status " + std::to_string(r.status) + ", expected " + std::to_string(status));
  auto lines = lines_of(r.err);
  if (lines.empty() || lines.size() > 2 || !lines[0].starts_with("togo: ") ||
      (lines.size() == 2 && !lines[1].starts_with("togo: hint: ")))
    return fail("stderr is not one error line (and a hint)");
  for (auto& n : needles)
    if (lines[0].find(n) == std::string::npos) return fail("the error does not mention \"" + n + "\"");
  return ::testing::AssertionSuccess();
}

std::optional<std::string> PullTest::image_file(const std::string& image, const std::string& path,
                                             const std::string& store_path) const {
  std::string s = store_path.empty() ? store() : store_path;
  RunResult ls = tgx({"image", "ls", "--json"}, {}, 60, s);
  auto at = ls.out.find("\"name\":\"" + image + "\"");
  if (at == std::string::npos) return std::nullopt;
  auto open = ls.out.find("\"layers\":[", at);
  auto close = ls.out.find(']', open);
  std::vector<std::string> layers;
  for (size_t p = ls.out.find("sha256:", open); p < close; p = ls.out.find("sha256:", p + 1))
    layers.push_back(ls.out.substr(p + 7, 64));
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    if (auto f = read_file(s + "/layers/" + *it + "/root/" + path)) return f;
    if (exists(s + "/layers/" + *it)) continue;
    RunResult r = run({python(), "-c", kReadMember, s + "/blobs/sha256/" + *it, path});
    if (r.status == 0) return r.out;
  }
  return std::nullopt;
}

LocalRegistry* PullTest::registry_ = nullptr;
TempDir* PullTest::work_ = nullptr;
std::set<std::string> PullTest::published_;

}  // namespace togo::test
