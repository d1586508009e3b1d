// The fixture of the pull and push tests: Debian's distribution registry
// (filled by skopeo) for the suite, OCI layouts written blob by blob, a
// registry that misbehaves on purpose (fake_registry.py beside this file),
// and what a pull left in the store.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/fs.h"
#include "base/sha256.h"
#include "fixture.h"
#include "registry_fixture.h"

namespace togo::test {

/// fake_registry.py beside this file.
std::string fake_registry_script();

/// The python3 to run helper scripts with.
std::string python();

/// The architecture togo picks by default here, or "" on other machines.
std::string host_arch();

/// The size of a file, or -1.
off_t file_size(const std::string& path);

/// An OCI image layout written blob by blob.
class Layout {
 public:
  struct Blob {
    std::string media_type, digest;
    size_t size = 0;
    std::string json() const {
      return "{\"mediaType\":\"" + media_type + "\",\"digest\":\"" + digest + "\",\"size\":" +
             std::to_string(size) + "}";
    }
  };
  static constexpr const char* kLayer = "application/vnd.oci.image.layer.v1.tar";
  static constexpr const char* kLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";

  explicit Layout(std::string dir) : dir_(std::move(dir)) { EXPECT_TRUE(fs::make_dirs(dir_ + "/blobs/sha256")); }

  Blob put(const std::string& data, const std::string& media_type) {
    Blob b{media_type, Sha256::digest_of(data), data.size()};
    EXPECT_TRUE(write_text(dir_ + "/blobs/sha256/" + b.digest.substr(7), data));
    return b;
  }
  /// A manifest with its config; `diff_ids` default to the layers' digests
  /// (right for uncompressed layers).
  Blob image(const std::vector<Blob>& layers, const std::string& arch, const std::string& variant = "",
             std::vector<std::string> diff_ids = {}) {
    std::string ids, descs;
    for (size_t i = 0; i < layers.size(); i++) {
      ids += std::string(i ? "," : "") + "\"" + (diff_ids.empty() ? layers[i].digest : diff_ids[i]) + "\"";
      descs += std::string(i ? "," : "") + layers[i].json();
    }
    std::string config = "{\"architecture\":\"" + arch + "\"," +
                         (variant.empty() ? "" : "\"variant\":\"" + variant + "\",") +
                         "\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/bin:/bin\"]},"
                         "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[" + ids + "]}}";
    Blob c = put(config, "application/vnd.oci.image.config.v1+json");
    return put("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":" +
                   c.json() + ",\"layers\":[" + descs + "]}",
               "application/vnd.oci.image.manifest.v1+json");
  }
  /// An index of manifests, each with "os/arch[/variant]".
  Blob index(const std::vector<std::pair<Blob, std::string>>& manifests) {
    std::string entries;
    for (auto& [m, platform] : manifests) {
      std::string os = platform.substr(0, platform.find('/'));
      std::string rest = platform.substr(platform.find('/') + 1);
      std::string arch = rest.substr(0, rest.find('/'));
      std::string variant = rest.find('/') == std::string::npos ? "" : rest.substr(rest.find('/') + 1);
      std::string j = m.json();
      j.pop_back();
      entries += std::string(entries.empty() ? "" : ",") + j + ",\"platform\":{\"os\":\"" + os +
                 "\",\"architecture\":\"" + arch + "\"" +
                 (variant.empty() ? "" : ",\"variant\":\"" + variant + "\"") + "}}";
    }
    return put("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[" +
                   entries + "]}",
               "application/vnd.oci.image.index.v1+json");
  }
  /// index.json naming `top` as `tag`; returns "oci:<dir>:<tag>" for skopeo.
  std::string tag(const Blob& top, const std::string& tag) {
    std::string j = top.json();
    j.pop_back();
    EXPECT_TRUE(write_text(dir_ + "/index.json", "{\"schemaVersion\":2,\"manifests\":[" + j +
                                                     ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"" +
                                                     tag + "\"}}]}"));
    EXPECT_TRUE(write_text(dir_ + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"));
    return "oci:" + dir_ + ":" + tag;
  }

 private:
  std::string dir_;
};

/// A process from fake_registry.py, and the port it listens on.
struct FakeServer {
  FakeServer(const std::vector<std::string>& args) : proc([&] {
    std::vector<std::string> argv = {python(), fake_registry_script()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }(), std::nullopt) {
    if (!proc.wait_for_line("ready", 20)) return;
    for (auto& l : lines_of(proc.out()))
      if (l.starts_with("port ")) port = l.substr(5);
  }
  std::string host() const { return "127.0.0.1:" + port; }
  Background proc;
  std::string port;
};

/// Lines of a proxy log that fetched a blob.
std::vector<std::string> blob_gets(const std::string& log_path, const std::string& digest = "");

/// (digest, size) of each layer in a manifest, read by python.
std::vector<std::pair<std::string, uint64_t>> manifest_layers(const std::string& manifest);

/// stderr is one line "togo: ..." (+ a hint) holding every needle, and the
/// exit status is `status`. Progress lines on stdout are allowed.
::testing::AssertionResult error_line(const RunResult& r, int status, const std::vector<std::string>& needles);

class PullTest : public TogoTest {
 protected:
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    delete work_;
    work_ = nullptr;
    published_.clear();  // a later suite starts another registry
  }
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::string why = registry_missing_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    if (!registry_) {
      registry_ = new LocalRegistry();
      work_ = new TempDir();
    }
    ASSERT_TRUE(registry_->ok()) << registry_->why();
  }

  std::string reg() const { return registry_->host(); }

  /// togo with a Docker config directory of its own (empty unless a test
  /// writes one), so the host's ~/.docker never counts.
  RunResult tgx(const std::vector<std::string>& args, std::vector<std::string> env = {}, int timeout_s = 120,
                const std::string& store_path = "") const {
    RunOptions o = opts("", timeout_s);
    bool has_config = false;
    for (auto& e : env) has_config = has_config || e.starts_with("DOCKER_CONFIG=");
    if (!has_config) env.push_back("DOCKER_CONFIG=" + sub("no-docker-config"));
    o.env = env;
    return togo(store_path.empty() ? store() : store_path, args, o);
  }

  /// Copies an image into the suite's registry, as test/<name>:v1, once per
  /// process.
  void publish(const std::string& name, const std::function<std::string(Layout&)>& make, bool all = false) {
    if (published_.count(name)) return;
    Layout layout(work_->sub(name));
    ToolResult r = skopeo_copy(make(layout), "docker://" + reg() + "/test/" + name + ":v1", "", all);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    published_.insert(name);
  }

  /// test/busy:v1: the test root filesystem (gzip) and a layer with /etc/pulled.
  void publish_busy() {
    publish("busy", [&](Layout& l) {
      std::string gz = read_file(test_rootfs_tar()).value_or("");
      RunResult tar = run({"gzip", "-dc", test_rootfs_tar()});
      EXPECT_EQ(tar.status, 0);
      make_tar(sub("pulled.tar"), "file('etc/pulled', b'pulled\\n')");
      std::string extra = read_file(sub("pulled.tar")).value_or("");
      auto base = l.put(gz, Layout::kLayerGzip);
      auto top = l.put(extra, Layout::kLayer);
      return l.tag(l.image({base, top}, "amd64", "", {Sha256::digest_of(tar.out), top.digest}), "v1");
    });
  }

  /// test/big:v1: a small layer with /etc/pulled, then 50 MB of random data.
  void publish_big() {
    publish("big", [&](Layout& l) {
      make_tar(sub("small.tar"), "file('etc/pulled', b'pulled\\n')");
      make_tar(sub("big.tar"), "import os\nfile('big.bin', os.urandom(50 << 20))");
      auto small = l.put(read_file(sub("small.tar")).value_or(""), Layout::kLayer);
      auto big = l.put(read_file(sub("big.tar")).value_or(""), Layout::kLayer);
      return l.tag(l.image({small, big}, "amd64"), "v1");
    });
  }

  /// The manifest the registry holds for `repo_tag`.
  std::string raw_manifest(const std::string& repo_tag) {
    ToolResult r = inspect_raw(repo_tag);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }
  /// `skopeo inspect --raw` of `repo_tag` in the suite's registry.
  ToolResult inspect_raw(const std::string& repo_tag) {
    return run_tool({"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + reg() + "/" + repo_tag});
  }

  /// A file of an image in the store, looked up layer by layer from the
  /// top, in each layer's tree or, while it is packed, its blob.
  std::optional<std::string> image_file(const std::string& image, const std::string& path,
                                        const std::string& store_path = "") const;

  /// What a failed pull must leave as it was: blobs, layers, images, and
  /// staging (partial downloads aside).
  std::string store_state() const {
    std::string out;
    for (const char* d : {"/blobs/sha256", "/layers", "/tmp"})
      for (auto& n : list_dir(store() + d))
        if (n != "downloads") out += std::string(d) + "/" + n + "\n";
    return out + images_json();
  }

  std::vector<std::string> partials() const { return list_dir(store() + "/tmp/downloads"); }

  static LocalRegistry* registry_;
  static TempDir* work_;
  static std::set<std::string> published_;
};
}  // namespace togo::test
