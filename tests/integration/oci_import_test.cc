// `togo image import` of OCI images: layouts (directories and tars, plain or
// compressed, from a file or stdin), docker archives written by skopeo,
// multi-layer images with whiteouts, several images or platforms in one
// layout, the image config at `togo run`, hostile or damaged input, and
// removing images (`image rm --force`, `togo gc`).
//
// The images are written once per process by make_oci.py (TOGO_MAKE_OCI)
// from the busybox test image, and converted by skopeo where a real peer
// writes the format.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <tuple>

#include "fixture.h"

#ifndef TOGO_MAKE_OCI
#error "TOGO_MAKE_OCI must be defined to the path of tests/integration/make_oci.py"
#endif

namespace togo::test {
namespace {

// 320 MiB of zeros: past the 256 MiB a layer may expand to freely, and
// gzip's ~1030:1 on zeros is past the 1000:1 allowed after that.
constexpr const char* kBombBytes = "335544320";

/// A hostile or damaged input and what its error must name.
struct BadInput {
  std::string name;
  std::string path;
  std::string needle;
};

/// Every input the tests import, built once per process.
struct Fixtures {
  std::string dir;
  std::string layers;      // layout: "layers:v1", three layers with whiteouts
  std::string oci_tar;     // skopeo oci-archive of it
  std::string oci_tgz;     // that, gzip'd
  std::string docker_tar;  // skopeo docker-archive of it, tagged layers:v1
  std::string dot_tar;     // `tar -C layout .` of it
  std::string configs;     // layout: ep, envwd, u1000, nobody, app (one base layer)
  std::string multi;       // layout: "multi", an index of linux/amd64 and linux/arm64
  std::string outside;     // what escapes aim at; stays empty
  std::vector<BadInput> bad;
  std::string error;  // why they could not all be built
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool have_skopeo() { return ::access("/usr/bin/skopeo", X_OK) == 0; }

// The layout descriptions for make_oci.py. @DIR@, @BASE@ and @OUT@ stand for
// the fixture directory, the test image's tarball and the escape target.
const char* const kLayouts = R"JSON([
{"layout": "@DIR@/layers", "images": [{"ref": "layers:v1", "layers": [
  {"compression": "gzip", "base": "@BASE@", "entries": [
    ["file", "etc/keep", "keep\n"], ["file", "etc/gone", "gone\n"],
    ["dir", "data"], ["dir", "data/dir"], ["file", "data/dir/a", "a\n"],
    ["dir", "data/dir/sub"], ["file", "data/dir/sub/b", "b\n"],
    ["dir", "opq"], ["file", "opq/old", "old\n"], ["dir", "opq/sub"],
    ["file", "opq/sub/deep", "deep\n"],
    ["dir", "srv"], ["file", "srv/over", "one\n"]]},
  {"compression": "gzip", "entries": [
    ["wh", "etc/gone"], ["wh", "data/dir"],
    ["opq", "opq"], ["file", "opq/new", "new\n"],
    ["file", "srv/over", "two\n"], ["file", "srv/added", "added\n"]]},
  {"compression": "gzip", "entries": [
    ["dir", "data/dir"], ["file", "data/dir/c", "c\n"],
    ["wh", "srv/added"], ["file", "opq/newer", "newer\n"], ["file", "etc/keep", "kept\n"]]}]}]},

{"layout": "@DIR@/configs", "images": [
  {"ref": "ep", "layers": [{"base": "@BASE@"}],
   "config": {"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["default", "cmd"]}},
  {"ref": "envwd", "layers": [{"base": "@BASE@"}],
   "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FOO=from-image", "BAR=image-bar"],
              "WorkingDir": "/srv/wd", "ExposedPorts": {"8080/tcp": {}},
              "Cmd": ["sh", "-c", "echo $FOO $BAR; pwd; echo $PATH"]}},
  {"ref": "u1000", "layers": [{"base": "@BASE@"}], "config": {"User": "1000"}},
  {"ref": "nobody", "layers": [{"base": "@BASE@"}], "config": {"User": "nobody"}},
  {"ref": "app", "layers": [{"base": "@BASE@"}, {"compression": "zstd", "entries": [
     ["file", "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\n"],
     ["file", "etc/group", "root:x:0:\napp:x:1234:\nstaff:x:50:\n"],
     ["dir", "home"], ["dir", "home/app"]]}],
   "config": {"User": "app:staff"}}]},

{"layout": "@DIR@/multi", "images": [{"ref": "multi", "index": [
  {"platform": "linux/amd64", "layers": [{"base": "@BASE@"},
     {"compression": "zstd", "entries": [["file", "etc/arch", "amd64\n"]]}]},
  {"platform": "linux/arm64/v8", "layers": [{"base": "@BASE@"},
     {"compression": "zstd", "entries": [["file", "etc/arch", "arm64\n"]]}]},
  {"platform": "linux/arm/v7", "layers": [{"base": "@BASE@"},
     {"compression": "none", "entries": [["file", "etc/arch", "arm\n"]]}]}]}]},

{"layout": "@DIR@/bad-layer-digest", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"compression": "none", "entries": [["file", "etc/x", "good"]],
   "stored_entries": [["file", "etc/x", "evil"]]}]}]},
{"layout": "@DIR@/bad-config-digest", "images": [{"ref": "bad", "layers": [@GOOD@],
  "config_replace": ["2023-11-14", "2023-11-15"]}]},
{"layout": "@DIR@/bad-truncated", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"compression": "none", "entries": [["file", "etc/x", "x"]], "truncate": 512}]}]},
{"layout": "@DIR@/bad-truncated-gzip", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"compression": "gzip", "entries": [["file", "etc/x", "some text for gzip to keep"]],
   "truncate": 12}]}]},
{"layout": "@DIR@/bad-index-as-manifest", "images": [{"ref": "bad", "layers": [@GOOD@],
  "manifest_media_type": "application/vnd.oci.image.index.v1+json"}]},
{"layout": "@DIR@/bad-diff-ids", "images": [{"ref": "bad", "layers": [@GOOD@],
  "diff_ids": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}]},
{"layout": "@DIR@/bad-absolute", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"entries": [["file", "@OUT@/absolute", "pwned"]]}]}]},
{"layout": "@DIR@/bad-dotdot", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"entries": [["file", "../dotdot-escape", "pwned"]]}]}]},
{"layout": "@DIR@/bad-symlink", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"entries": [["sym", "link", "@OUT@"], ["file", "link/pwned", "pwned"]]}]}]},
{"layout": "@DIR@/bad-hardlink", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"entries": [["hard", "hardlink-out", "../../../../../../../../../../etc/passwd"]]}]}]},
{"layout": "@DIR@/bad-wh-bare", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"entries": [["file", "etc/.wh.", ""]]}]}]},
{"layout": "@DIR@/bad-wh-wh", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"entries": [["file", "etc/.wh..wh.foo", ""]]}]}]},
{"layout": "@DIR@/bad-bomb", "images": [{"ref": "bad", "layers": [@GOOD@,
  {"compression": "gzip", "entries": [["zeros", "zeros", @BOMB@]]}]}]},
{"layout": "@DIR@/bad-schema1", "images": [{"ref": "bad", "layers": [@GOOD@],
  "descriptor_media_type": "application/vnd.docker.distribution.manifest.v1+prettyjws",
  "manifest_raw": {"schemaVersion": 1, "name": "library/bad", "tag": "latest",
                   "architecture": "amd64", "fsLayers": [], "history": [], "signatures": []}}]},
{"layout": "@DIR@/bad-schema1-as-oci", "images": [{"ref": "bad", "layers": [@GOOD@],
  "manifest_raw": {"schemaVersion": 1, "name": "library/bad", "tag": "latest",
                   "architecture": "amd64", "fsLayers": [], "history": []}}]}
])JSON";

// A harmless first layer, so a bad second one comes after something staged.
const char* const kGoodLayer =
    R"JSON({"compression": "none", "entries": [["file", "etc/good", "good\n"]]})JSON";

void build(Fixtures& f) {
  static TempDir dir;
  f.dir = dir.path();
  f.outside = dir.sub("outside");
  ::mkdir(f.outside.c_str(), 0777);
  ::chmod(f.outside.c_str(), 0777);  // writable by the rootless user too
  std::string base = test_rootfs_tar();
  if (base.empty()) {
    f.error = "no test image";
    return;
  }
  std::string desc = replace_all(kLayouts, "@GOOD@", kGoodLayer);
  desc = replace_all(desc, "@DIR@", f.dir);
  desc = replace_all(desc, "@BASE@", base);
  desc = replace_all(desc, "@OUT@", f.outside);
  desc = replace_all(desc, "@BOMB@", kBombBytes);
  RunResult made = run({"python3", TOGO_MAKE_OCI, "-"}, {.input = desc});
  if (made.status != 0) {
    f.error = "make_oci.py failed\n" + describe(made);
    return;
  }
  f.layers = dir.sub("layers");
  f.configs = dir.sub("configs");
  f.multi = dir.sub("multi");

  // Tarred by hand, the way people do it.
  f.dot_tar = dir.sub("dot.tar");
  RunResult t = run({"tar", "-cf", f.dot_tar, "-C", f.layers, "."});
  if (t.status != 0) f.error += "tar -C layers .: " + describe(t);

  if (have_skopeo()) {
    f.oci_tar = dir.sub("layers-oci.tar");
    f.docker_tar = dir.sub("layers-docker.tar");
    for (auto [src, dest] :
         {std::pair{"oci:" + f.layers + ":layers:v1", "oci-archive:" + f.oci_tar + ":layers:v1"},
          std::pair{"oci:" + f.layers + ":layers:v1",
                    "docker-archive:" + f.docker_tar + ":layers:v1"}}) {
      RunResult s = run({"skopeo", "copy", "-q", src, dest});
      if (s.status != 0) f.error += "skopeo copy " + src + " " + dest + ": " + describe(s);
    }
    f.oci_tgz = dir.sub("layers-oci.tar.gz");
    RunResult z = run({"sh", "-c", "gzip -c \"$0\" > \"$1\"", f.oci_tar, f.oci_tgz});
    if (z.status != 0) f.error += "gzip: " + describe(z);
  }

  for (const auto& [name, needle] : std::vector<std::pair<std::string, std::string>>{
           {"bad-layer-digest", "digest mismatch"},
           {"bad-config-digest", "does not match its digest"},
           {"bad-truncated", "truncated"},
           {"bad-truncated-gzip", "truncated"},
           {"bad-index-as-manifest", "index, not a manifest"},
           {"bad-diff-ids", "the image config says"},
           {"bad-absolute", f.outside + "/absolute"},
           {"bad-dotdot", "../dotdot-escape"},
           {"bad-symlink", "link/pwned"},
           {"bad-hardlink", "hardlink-out"},
           {"bad-wh-bare", "whiteout"},
           {"bad-wh-wh", "whiteout"},
           {"bad-bomb", "decompression bomb"},
           {"bad-schema1", "schema 1"},
           {"bad-schema1-as-oci", "schema 1"}})
    f.bad.push_back({name, dir.sub(name), needle});

  // The same damage inside a tar.
  std::string tarred = dir.sub("bad-layer-digest.tar");
  RunResult bt = run({"tar", "-cf", tarred, "-C", dir.sub("bad-layer-digest"), "oci-layout",
                      "index.json", "blobs"});
  if (bt.status != 0) f.error += "tar bad-layer-digest: " + describe(bt);
  f.bad.push_back({"bad-layer-digest.tar", tarred, "digest mismatch"});

  // docker archives whose manifest.json points outside the archive.
  const std::tuple<const char*, const char*, const char*> docker_bad[] = {
      {"bad-docker-dotdot.tar", "Config",
       R"(file('manifest.json', b'[{"Config":"../config.json","RepoTags":["evil:1"],)"
       R"("Layers":["../layer.tar"]}]'); file('config.json', b'{}'); file('layer.tar'))"},
      {"bad-docker-dotdot-layer.tar", "Layers[0]",
       R"(file('manifest.json', b'[{"Config":"config.json","RepoTags":["evil:1"],)"
       R"("Layers":["sub/../../layer.tar"]}]'); file('config.json', b'{}'); )"
       R"(dir('sub'); file('layer.tar'))"},
  };
  for (auto [name, needle, body] : docker_bad) {
    make_tar(dir.sub(name), body);
    f.bad.push_back({name, dir.sub(name), needle});
  }
}

const Fixtures& fixtures() {
  static Fixtures f;
  static bool built = false;
  if (!built) {
    built = true;
    build(f);
  }
  return f;
}

// What the tests compare to say "the store is unchanged".
struct StoreState {
  std::string images;
  std::vector<std::string> layers, blobs;
  bool operator==(const StoreState&) const = default;
};

void PrintTo(const StoreState& s, std::ostream* os) {
  *os << s.images << " layers:";
  for (auto& l : s.layers) *os << " " << l;
  *os << " blobs:";
  for (auto& b : s.blobs) *os << " " << b;
}

class OciImportTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_EQ(fixtures().error, "");
  }

  const Fixtures& fx() const { return fixtures(); }

  StoreState state() const {
    return {images_json(), list_dir(store() + "/layers"), list_dir(store() + "/blobs/sha256")};
  }

  /// `togo image import args...`; fails the test unless it prints "NAME ID".
  void import_as(const std::vector<std::string>& args, const std::string& name,
                 const std::string& input = {}) const {
    std::vector<std::string> a = {"image", "import"};
    a.insert(a.end(), args.begin(), args.end());
    RunResult r = tg(a, input);
    ASSERT_EQ(r.status, 0) << describe(r);
    std::string id = r.out.starts_with(name + " ") ? r.out.substr(name.size() + 1) : "";
    EXPECT_TRUE(id.size() == 13 && id.back() == '\n' &&
                id.find_first_not_of("0123456789abcdef") == 12)
        << "expected \"" << name << " <id>\"\n"
        << describe(r);
  }

  /// Without the once-per-store rootless warning about subordinate ids.
  static RunResult without_id_warning(RunResult r) {
    std::string err;
    for (const auto& l : lines_of(r.err))
      if (l.find("no subordinate ids") == std::string::npos) err += l + "\n";
    r.err = err;
    return r;
  }

  /// How many ids exist inside `env` (its uid_map's counts added up).
  long ids_inside(const std::string& env) const {
    RunResult r = in_env(env, {"cat", "/proc/self/uid_map"});
    EXPECT_EQ(r.status, 0) << describe(r);
    long n = 0;
    for (const auto& l : lines_of(r.out)) {
      long inside, outside, count;
      if (std::sscanf(l.c_str(), "%ld %ld %ld", &inside, &outside, &count) == 3) n += count;
    }
    return n;
  }

  /// What an env of the "layers:v1" image shows of the merged layers.
  RunResult merged_view(const std::string& env) const {
    return sh(env,
              "cat /etc/keep /srv/over /data/dir/c; "
              "for p in /etc/gone /data/dir/a /data/dir/sub /opq/old /opq/sub /srv/added; do "
              "  test -e $p && echo still there: $p; done; "
              "echo --; ls -A /data/dir; echo --; ls -A /opq; echo --; ls -A /srv; echo --; "
              "find /etc /data /opq /srv -name '.wh.*'");
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(OciImportTest);

const char* const kMergedView =
    "kept\ntwo\nc\n"
    "--\nc\n"
    "--\nnew\nnewer\n"
    "--\nover\n"
    "--\n";

TEST_P(OciImportTest, ThreeLayersWithWhiteoutsMergeAsTheyShould) {
  ASSERT_NO_FATAL_FAILURE(import_as({fx().layers}, "layers:v1"));
  EXPECT_EQ(list_dir(store() + "/layers").size(), 3u);
  EXPECT_EQ(list_dir(store() + "/blobs/sha256").size(), 3u);
  ASSERT_NO_FATAL_FAILURE(create_env("ov", "layers:v1"));
  ASSERT_NO_FATAL_FAILURE(create_env("cp", "layers:v1", {"--rootfs", "copy"}));
  for (const char* env : {"ov", "cp"}) {
    SCOPED_TRACE(env);
    RunResult r = merged_view(env);
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, kMergedView) << describe(r);
    // Deleting in the env what a lower layer has, and making it again.
    RunResult w =
        sh(env, "rm -r /opq/new && echo again > /etc/gone && cat /etc/gone && ls -A /opq");
    EXPECT_EQ(w.out, "again\nnewer\n") << describe(w);
  }
  EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
}

TEST_P(OciImportTest, EveryArchiveOfTheImageImportsUnderItsOwnName) {
  if (!have_skopeo()) GTEST_SKIP() << "needs skopeo (scripts/setup installs it)";
  ASSERT_NO_FATAL_FAILURE(import_as({fx().layers}, "layers:v1"));
  const auto layers = list_dir(store() + "/layers");
  const auto blobs = list_dir(store() + "/blobs/sha256");
  ASSERT_EQ(layers.size(), 3u);
  auto same_layers = [&](const char* what) {
    EXPECT_EQ(list_dir(store() + "/layers").size(), 3u) << what << " added a layer";
    EXPECT_EQ(list_dir(store() + "/blobs/sha256").size(), 3u) << what << " added a blob";
    EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{}) << what;
  };

  // The same again, and the same blobs in an OCI tar (skopeo's).
  ASSERT_NO_FATAL_FAILURE(import_as({fx().layers}, "layers:v1"));
  EXPECT_EQ(list_dir(store() + "/layers"), layers);
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), blobs);
  ASSERT_NO_FATAL_FAILURE(import_as({fx().oci_tar}, "layers:v1"));
  EXPECT_EQ(list_dir(store() + "/layers"), layers) << "the OCI tar holds the same blobs";
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), blobs);

  // gzip'd, through stdin, under another name.
  std::string tgz = read_file(fx().oci_tgz).value_or("");
  ASSERT_FALSE(tgz.empty());
  ASSERT_NO_FATAL_FAILURE(import_as({"-"}, "layers:v1", tgz));
  ASSERT_NO_FATAL_FAILURE(import_as({"-", "--name", "from-stdin"}, "from-stdin", tgz));
  EXPECT_EQ(list_dir(store() + "/layers"), layers);
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), blobs);

  // skopeo's docker archive, from the file and from stdin: RepoTags names it.
  const std::string docker_name = "docker.io/library/layers:v1";
  ASSERT_NO_FATAL_FAILURE(import_as({fx().docker_tar}, docker_name));
  same_layers("the docker archive of the same image");
  const auto after_docker = state();
  std::string docker = read_file(fx().docker_tar).value_or("");
  ASSERT_FALSE(docker.empty());
  ASSERT_NO_FATAL_FAILURE(import_as({"-"}, docker_name, docker));
  ASSERT_NO_FATAL_FAILURE(import_as({"-", "--name", "dock"}, "dock", docker));
  EXPECT_EQ(list_dir(store() + "/layers"), after_docker.layers);
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), after_docker.blobs);

  // Every name runs the image.
  RunResult ls = tg({"image", "ls"});
  for (const auto& [name, env] : std::vector<std::pair<std::string, std::string>>{
           {"layers:v1", "a"}, {"from-stdin", "b"}, {docker_name, "c"}, {"dock", "d"}}) {
    SCOPED_TRACE(name);
    EXPECT_NE(ls.out.find(name + " "), std::string::npos) << ls.out;
    ASSERT_NO_FATAL_FAILURE(create_env(env, name));
    EXPECT_EQ(merged_view(env).out, kMergedView);
  }
  EXPECT_EQ(lines_of(ls.out).size(), 5u) << ls.out;
}

TEST_P(OciImportTest, LayoutTarredByHandIsAnImageNotARootFilesystem) {
  // `tar -cf x.tar -C layout .` names the entries "./", "./oci-layout",
  // "./blobs/...": the same image as the directory.
  ASSERT_NO_FATAL_FAILURE(import_as({fx().layers}, "layers:v1"));
  const StoreState before = state();
  ASSERT_NO_FATAL_FAILURE(import_as({fx().dot_tar}, "layers:v1"));
  EXPECT_EQ(list_dir(store() + "/layers"), before.layers);
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), before.blobs);
  EXPECT_EQ(lines_of(tg({"image", "ls"}).out).size(), 2u);
  std::string bytes = read_file(fx().dot_tar).value_or("");
  ASSERT_NO_FATAL_FAILURE(import_as({"-", "--name", "dot-stdin"}, "dot-stdin", bytes));
  ASSERT_NO_FATAL_FAILURE(create_env("dot", "dot-stdin"));
  EXPECT_EQ(merged_view("dot").out, kMergedView);
}

TEST_P(OciImportTest, ImagesSharingABaseLayerShowItAsShared) {
  ASSERT_NO_FATAL_FAILURE(import_as({fx().configs, "--ref", "ep"}, "ep"));
  ASSERT_NO_FATAL_FAILURE(import_as({fx().configs, "--ref", "app"}, "app"));
  ASSERT_NO_FATAL_FAILURE(import_as({fx().layers}, "layers:v1"));
  EXPECT_EQ(list_dir(store() + "/layers").size(), 5u) << "ep and app share their base layer";
  RunResult json = tg({"image", "ls", "--json"});
  ASSERT_EQ(json.status, 0) << describe(json);
  RunResult shared =
      run({"python3", "-c",
           "import json, sys\n"
           "for i in sorted(json.load(sys.stdin), key=lambda i: i['name']):\n"
           "    print(i['name'], i['shared_size'] > 0, i['shared_size'] == i['size'],"
           " len(i['layers']))\n"},
          {.input = json.out});
  ASSERT_EQ(shared.status, 0) << json.out << describe(shared);
  EXPECT_EQ(shared.out,
            "app True False 2\n"
            "ep True True 1\n"
            "layers:v1 False False 3\n")
      << json.out;
  RunResult human = tg({"image", "ls"});
  auto lines = lines_of(human.out);
  ASSERT_EQ(lines.size(), 4u) << human.out;
  EXPECT_NE(lines[0].find(" SHARED "), std::string::npos) << lines[0];
}

TEST_P(OciImportTest, RunFollowsTheImageConfig) {
  ASSERT_NO_FATAL_FAILURE(import_as({fx().configs, "--ref", "ep"}, "ep"));
  ASSERT_NO_FATAL_FAILURE(import_as({fx().configs, "--ref", "envwd"}, "envwd"));
  ASSERT_NO_FATAL_FAILURE(create_env("ep", "ep"));
  ASSERT_NO_FATAL_FAILURE(create_env("wd", "envwd"));
  ASSERT_NO_FATAL_FAILURE(
      create_env("mine", "envwd", {"--env", "FOO=from-env", "--workdir", "/tmp"}));

  // Entrypoint + Cmd; a command replaces Cmd, the entrypoint stays (podman).
  RunResult r = tg({"run", "ep"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "ep default cmd\n") << describe(r);
  r = tg({"run", "ep", "--", "given", "args"});
  EXPECT_EQ(r.out, "ep given args\n") << describe(r);

  // Env, WorkingDir (made, as engines do: the image lacks /srv/wd).
  r = tg({"run", "wd"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "from-image image-bar\n/srv/wd\n/usr/sbin:/usr/bin:/sbin:/bin\n") << describe(r);
  r = in_env("wd", {"sh", "-c", "echo $FOO; pwd"});
  EXPECT_EQ(r.out, "from-image\n/srv/wd\n") << describe(r);

  // The env's own settings win over the image's.
  r = tg({"run", "mine"});
  EXPECT_EQ(r.out, "from-env image-bar\n/tmp\n/usr/sbin:/usr/bin:/sbin:/bin\n") << describe(r);
}

TEST_P(OciImportTest, RunAsTheImagesUser) {
  ASSERT_NO_FATAL_FAILURE(import_as({fx().configs, "--ref", "envwd"}, "envwd"));
  ASSERT_NO_FATAL_FAILURE(create_env("plain", "envwd"));
  // Rootless without subordinate ids, one id exists inside: no other user
  // can be switched to.
  const bool one_id = ids_inside("plain") == 1;

  struct Case {
    const char* ref;
    const char* env;   // named unlike the user, so an error naming it names the env
    const char* user;  // what the error names when there is no such id
    const char* ids;   // `id -u; id -g`
  };
  for (const Case& c : {Case{"u1000", "first", "1000", "1000\n0\n"},
                        Case{"nobody", "second", "nobody", "65534\n65534\n"},
                        Case{"app", "third", "app", "1234\n50\n"}}) {
    SCOPED_TRACE(c.ref);
    ASSERT_NO_FATAL_FAILURE(import_as({fx().configs, "--ref", c.ref}, c.ref));
    ASSERT_NO_FATAL_FAILURE(create_env(c.env, c.ref));
    RunResult r = sh(c.env, "id -u; id -g");
    if (one_id) {
      // togo's own failure to start the command (125), saying which user.
      EXPECT_EQ(r.status, 125) << describe(r);
      EXPECT_TRUE(one_line_error(without_id_warning(r), c.user));
    } else {
      EXPECT_EQ(r.status, 0) << describe(r);
      EXPECT_EQ(r.out, c.ids) << describe(r);
    }
  }
}

TEST_P(OciImportTest, RefChoosesAmongTheImagesOfALayout) {
  const StoreState before = state();
  RunResult r = tg({"image", "import", fx().configs});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(one_line_error(r, "ep"));
  for (const char* ref : {"ep", "envwd", "u1000", "nobody", "app"})
    EXPECT_NE(first_line(r.err).find(ref), std::string::npos) << "names " << ref << ": " << r.err;
  EXPECT_NE(r.err.find("--ref"), std::string::npos) << r.err;

  r = tg({"image", "import", fx().configs, "--ref", "nosuch"});
  EXPECT_EQ(r.status, 3) << describe(r);
  EXPECT_TRUE(one_line_error(r, "nosuch"));
  EXPECT_EQ(state(), before);

  ASSERT_NO_FATAL_FAILURE(
      import_as({fx().configs, "--ref", "envwd", "--name", "chosen"}, "chosen"));
  ASSERT_NO_FATAL_FAILURE(create_env("c", "chosen"));
  EXPECT_EQ(sh("c", "echo $FOO").out, "from-image\n");
}

TEST_P(OciImportTest, PlatformChoosesFromAMultiArchIndex) {
  RunResult m = run({"uname", "-m"});
  std::string host = m.out == "x86_64\n" ? "amd64" : m.out == "aarch64\n" ? "arm64" : "";
  if (host.empty()) GTEST_SKIP() << "the index has no image for this host (" << m.out << ")";

  ASSERT_NO_FATAL_FAILURE(import_as({fx().multi}, "multi"));
  ASSERT_NO_FATAL_FAILURE(
      import_as({fx().multi, "--platform", "linux/arm64", "--name", "arm"}, "arm"));
  ASSERT_NO_FATAL_FAILURE(
      import_as({fx().multi, "--platform", "linux/arm/v7", "--name", "v7"}, "v7"));
  ASSERT_NO_FATAL_FAILURE(create_env("native", "multi"));
  ASSERT_NO_FATAL_FAILURE(create_env("arm", "arm"));
  ASSERT_NO_FATAL_FAILURE(create_env("v7", "v7"));
  // (The busybox inside is the host's: only the files differ.)
  EXPECT_EQ(in_env("native", {"cat", "/etc/arch"}).out, host + "\n");
  EXPECT_EQ(in_env("arm", {"cat", "/etc/arch"}).out, "arm64\n");
  EXPECT_EQ(in_env("v7", {"cat", "/etc/arch"}).out, "arm\n");

  const StoreState before = state();
  RunResult r = tg({"image", "import", fx().multi, "--platform", "linux/riscv64"});
  EXPECT_EQ(r.status, 5) << describe(r);
  EXPECT_TRUE(one_line_error(r, "linux/riscv64"));
  for (const char* p : {"linux/amd64", "linux/arm64", "linux/arm/v7"})
    EXPECT_NE(r.err.find(p), std::string::npos) << "names " << p << ": " << r.err;
  EXPECT_EQ(state(), before);

  r = tg({"image", "import", fx().multi, "--platform", "not a platform"});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(one_line_error(r, "not a platform"));
}

TEST_P(OciImportTest, BadInputIsRefusedAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(import_as({fx().configs, "--ref", "ep"}, "ep"));
  const StoreState before = state();
  for (const auto& bad : fx().bad) {
    SCOPED_TRACE(bad.name);
    RunResult r = tg({"image", "import", bad.path});
    EXPECT_EQ(r.status, 5) << describe(r);
    EXPECT_TRUE(one_line_error(r, bad.needle));
    EXPECT_EQ(state(), before);
    EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
    EXPECT_EQ(list_dir(fx().outside), std::vector<std::string>{});
  }
  // From stdin too.
  std::string tar = read_file(fx().dir + "/bad-layer-digest.tar").value_or("");
  ASSERT_FALSE(tar.empty());
  RunResult r = tg({"image", "import", "-"}, tar);
  EXPECT_EQ(r.status, 5) << describe(r);
  EXPECT_TRUE(one_line_error(r, "digest mismatch"));
  EXPECT_EQ(state(), before);
  EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
  EXPECT_FALSE(exists(fx().dir + "/dotdot-escape"));
  EXPECT_FALSE(exists(store() + "/dotdot-escape"));
}

TEST_P(OciImportTest, ReimportingFromAnotherFormatKeepsARunningEnvsFiles) {
  if (!have_skopeo()) GTEST_SKIP() << "needs skopeo (scripts/setup installs it)";
  ASSERT_NO_FATAL_FAILURE(import_as({fx().layers}, "layers:v1"));
  ASSERT_NO_FATAL_FAILURE(create_env("busy", "layers:v1"));
  RunResult s = tg({"start", "busy"});
  ASSERT_EQ(s.status, 0) << describe(s);
  const std::string check = "ls /bin | wc -l; cat /etc/keep /srv/over";
  RunResult before = tg({"exec", "busy", "--", "sh", "-c", check});
  ASSERT_EQ(before.status, 0) << describe(before);
  // The same image (same config, so same id) with its layers stored
  // differently: a docker archive holds them uncompressed.
  ASSERT_NO_FATAL_FAILURE(import_as({fx().docker_tar}, "docker.io/library/layers:v1"));
  RunResult after = tg({"exec", "busy", "--", "sh", "-c", check});
  EXPECT_EQ(after.out, before.out) << "the running env lost files of its image\n"
                                   << describe(after);
  EXPECT_EQ(tg({"stop", "busy"}).status, 0);
  EXPECT_EQ(merged_view("busy").out, kMergedView);
}

TEST_P(OciImportTest, ImageRmForceAndGc) {
  ASSERT_NO_FATAL_FAILURE(import_as({fx().layers}, "layers:v1"));
  ASSERT_NO_FATAL_FAILURE(create_env("e", "layers:v1"));
  const StoreState before = state();

  RunResult r = tg({"image", "rm", "layers:v1"});
  EXPECT_EQ(r.status, 4) << describe(r);
  EXPECT_TRUE(one_line_error(r, "in use"));
  EXPECT_NE(first_line(r.err).find("environment e"), std::string::npos)
      << "names the env: " << r.err;
  EXPECT_EQ(state(), before);

  r = tg({"image", "rm", "--force", "layers:v1"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "layers:v1\n");
  auto warn = lines_of(r.err);
  ASSERT_EQ(warn.size(), 1u) << r.err;
  EXPECT_TRUE(warn[0].starts_with("togo: warning: ")) << warn[0];
  EXPECT_NE(warn[0].find("environment e"), std::string::npos) << warn[0];
  RunResult ls = tg({"image", "ls"});
  ASSERT_EQ(lines_of(ls.out).size(), 2u) << ls.out;
  EXPECT_TRUE(lines_of(ls.out)[1].starts_with("<none> ")) << ls.out;
  EXPECT_EQ(list_dir(store() + "/layers"), before.layers) << "the env still uses them";
  RunResult in = in_env("e", {"cat", "/etc/keep"});
  EXPECT_EQ(in.status, 0) << describe(in);
  EXPECT_EQ(in.out, "kept\n");
  // The name is free again.
  r = tg({"image", "rm", "layers:v1"});
  EXPECT_EQ(r.status, 3) << describe(r);

  ASSERT_EQ(tg({"rm", "e"}).status, 0);
  // Garbage: a staging leftover (as a crash leaves it) and a directory
  // under layers/ that no layer names; made as the togo user.
  RunResult junk = run({"sh", "-c",
                        "mkdir -p \"$0/tmp/leftover/deep\" \"$0/layers/stray\" && "
                        "echo x > \"$0/tmp/leftover/deep/f\" && echo y > \"$0/layers/stray/g\"",
                        store()},
                       opts());
  ASSERT_EQ(junk.status, 0) << describe(junk);

  RunResult gc = tg({"gc"});
  EXPECT_EQ(gc.status, 0) << describe(gc);
  EXPECT_EQ(gc.err, "");
  auto out = lines_of(gc.out);
  ASSERT_FALSE(out.empty()) << describe(gc);
  std::smatch m;
  EXPECT_TRUE(std::regex_match(out.back(), m, std::regex(R"((\d+) removed, (.+) freed)")))
      << out.back();
  EXPECT_NE(m.size() > 2 ? m[2].str() : "", "0 B") << gc.out;
  auto mentions = [&](const std::string& what) {
    for (const auto& l : out)
      if (l.starts_with("removed ") && l.find(what) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(mentions("image")) << gc.out;
  for (const auto& l : before.layers)
    EXPECT_TRUE(mentions("layer " + l.substr(0, 12))) << l << "\n" << gc.out;
  EXPECT_TRUE(mentions("staging directory")) << gc.out;
  EXPECT_TRUE(mentions("stray")) << gc.out;
  EXPECT_EQ(list_dir(store() + "/layers"), std::vector<std::string>{});
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), std::vector<std::string>{});
  EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
  EXPECT_EQ(images_json(), "[]\n");

  RunResult again = tg({"gc"});
  EXPECT_EQ(again.status, 0) << describe(again);
  EXPECT_EQ(again.out, "0 removed, 0 B freed\n");
}

}  // namespace
}  // namespace togo::test
