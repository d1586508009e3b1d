// `togo commit` and `togo image export`: an env's files become an image, and
// the image leaves as an OCI layout or a docker archive that togo, skopeo
// and podman read back.
#include <unistd.h>

#include "fixture.h"

namespace togo::test {
namespace {

// What the env changes in the base image: a file added, one changed, one
// deleted (a whiteout) and a directory replaced (an opaque directory).
constexpr const char* kChange =
    "echo new > /etc/added && echo changed > /etc/keep && rm /etc/gone && rm -r /opt/old && "
    "mkdir /opt/old && echo fresh > /opt/old/z";
// Shows those changes.
constexpr const char* kShow =
    "cat /etc/added /etc/keep; test -e /etc/gone && echo gone-present || echo gone-absent; "
    "ls /opt/old; cat /opt/old/z";
constexpr const char* kChanged = "new\nchanged\ngone-absent\nz\nfresh\n";

// Python that checks an exported archive on its own terms (argv: the file,
// the format, the expected name, the expected commit message) and prints
// "ok" and the number of layers.
constexpr const char* kCheckArchive = R"PY(
import hashlib, json, sys, tarfile
path, fmt, name, message = sys.argv[1:5]
t = tarfile.open(path)
def read(n): return t.extractfile(n).read()
def sha(b): return 'sha256:' + hashlib.sha256(b).hexdigest()
if fmt == 'oci':
    assert json.loads(read('oci-layout')) == {'imageLayoutVersion': '1.0.0'}
    index = json.loads(read('index.json'))
    [m] = index['manifests']
    assert m['annotations']['org.opencontainers.image.ref.name'] == name, m
    def blob(d):
        b = read('blobs/sha256/' + d['digest'][7:])
        assert sha(b) == d['digest'] and len(b) == d['size'], d
        return b
    manifest = json.loads(blob(m))
    assert manifest['mediaType'] == 'application/vnd.oci.image.manifest.v1+json'
    config = json.loads(blob(manifest['config']))
    layers = [blob(l) for l in manifest['layers']]
else:
    [m] = json.loads(read('manifest.json'))
    assert m['RepoTags'] == ['localhost/' + name + ':latest'], m
    cb = read(m['Config'])
    assert m['Config'] == hashlib.sha256(cb).hexdigest() + '.json'
    config = json.loads(cb)
    layers = [read(l) for l in m['Layers']]
    for l, d in zip(layers, config['rootfs']['diff_ids']):
        assert sha(l) == d, 'a layer is not its diff_id'
assert len(config['rootfs']['diff_ids']) == len(layers)
last = config['history'][-1]
assert last['created_by'] == 'togo commit' and last.get('comment', '') == message, last
assert len([h for h in config['history'] if not h.get('empty_layer')]) == len(layers)
print('ok', len(layers))
)PY";

class CommitExportTest : public TogoTest {
 protected:
  /// Imports "base": the test image plus the files kChange changes.
  void make_base() {
    std::string tar = sub("base.tar");
    ASSERT_NO_FATAL_FAILURE(make_tar(tar,
                                     "base(); file('etc/keep', b'old\\n'); "
                                     "file('etc/gone', b'bye\\n'); dir('opt'); dir('opt/old'); "
                                     "file('opt/old/x', b'x'); file('opt/old/y', b'y')"));
    ASSERT_NO_FATAL_FAILURE(import_image(tar, "base"));
  }

  /// An env from base with kChange applied, committed as `image`; returns
  /// the 12 hex digits of the image's id.
  std::string changed_image(const std::string& env, const std::string& image,
                            const std::vector<std::string>& create_extra = {},
                            const std::vector<std::string>& commit_extra = {}) {
    if (!exists(store() + "/togo-store") || images_json().find("\"base\"") == std::string::npos)
      make_base();
    create_env(env, "base", create_extra);
    RunResult r = sh(env, kChange);
    EXPECT_EQ(r.status, 0) << describe(r);
    std::vector<std::string> args = {"commit", env, image};
    args.insert(args.end(), commit_extra.begin(), commit_extra.end());
    RunResult c = tg(args);
    EXPECT_EQ(c.status, 0) << describe(c);
    EXPECT_TRUE(c.out.starts_with(image + " ")) << describe(c);
    return id_of(c);
  }

  static std::string id_of(const RunResult& r) {
    auto lines = lines_of(r.out);
    if (lines.size() != 1 || lines[0].find(' ') == std::string::npos) return "";
    return lines[0].substr(lines[0].find(' ') + 1);
  }

  /// The number of layers `image ls --json` gives `image`.
  int layers_of(const std::string& image) {
    RunResult r = run({"python3", "-c",
                       "import json,sys\n"
                       "print([len(i['layers']) for i in json.load(sys.stdin) if i['name'] == "
                       "sys.argv[1]][0])",
                       image},
                      {.input = images_json()});
    EXPECT_EQ(r.status, 0) << describe(r);
    return std::atoi(r.out.c_str());
  }

  /// Exports `image` to a file in this test's directory.
  std::string export_to(const std::string& image, const std::string& format) {
    std::string file = sub(image + "-" + format + ".tar");
    RunResult r = tg({"image", "export", image, file, "--format", format});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "");
    return file;
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(CommitExportTest);

TEST_P(CommitExportTest, AnOverlayEnvCommitsItsChangesAsOneLayer) {
  std::string id = changed_image("dev", "snap", {}, {"--message", "my change"});
  ASSERT_EQ(id.size(), 12u);
  EXPECT_EQ(layers_of("snap"), layers_of("base") + 1);
  ASSERT_NO_FATAL_FAILURE(create_env("again", "snap"));
  RunResult r = sh("again", kShow);
  EXPECT_EQ(r.out, kChanged) << describe(r);
  // The base image and the env are as they were.
  ASSERT_NO_FATAL_FAILURE(create_env("fresh", "base"));
  EXPECT_EQ(sh("fresh", "cat /etc/gone; ls /opt/old").out, "bye\nx\ny\n");
  EXPECT_EQ(sh("dev", kShow).out, kChanged);
  // Owners are those the env saw: root wrote these.
  EXPECT_EQ(in_env("again", {"stat", "-c", "%u:%g", "/etc/added", "/opt/old/z"}).out, "0:0\n0:0\n");
}

TEST_P(CommitExportTest, OwnersAreThoseTheEnvSaw) {
  if (rootless()) GTEST_SKIP() << "a rootless env without subordinate ids has one owner";
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  ASSERT_EQ(sh("dev",
               "echo x > /root/owned && chown 1234:5678 /root/owned && chmod 4750 "
               "/root/owned && chown 42 /root")
                .status,
            0);
  ASSERT_EQ(tg({"commit", "dev", "owned"}).status, 0);
  ASSERT_NO_FATAL_FAILURE(create_env("later", "owned"));
  EXPECT_EQ(in_env("later", {"stat", "-c", "%u:%g %a", "/root/owned", "/root"}).out,
            "1234:5678 4750\n42:0 700\n");
}

// An xz layer has no OCI media type: it leaves as a plain tar, its digest its
// diff_id, and comes back as the same image.
TEST_P(CommitExportTest, AnXzLayerLeavesAsAPlainTar) {
  ASSERT_NO_FATAL_FAILURE(make_base());
  std::string tar = sub("base.tar");
  ASSERT_EQ(run({"xz", "-k", tar}).status, 0);
  ASSERT_NO_FATAL_FAILURE(import_image(tar + ".xz", "xzbase"));
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "xzbase"));
  ASSERT_EQ(sh("dev", kChange).status, 0);
  RunResult c = tg({"commit", "dev", "snap"});
  ASSERT_EQ(c.status, 0) << describe(c);
  std::string file = export_to("snap", "oci");
  RunResult check = run({"python3", "-c", kCheckArchive, file, "oci", "snap", ""});
  EXPECT_EQ(check.out, "ok 2\n") << describe(check);
  RunResult types = run({"python3", "-c",
                         "import json, tarfile, sys\n"
                         "t = tarfile.open(sys.argv[1])\n"
                         "d = json.load(t.extractfile('index.json'))['manifests'][0]['digest']\n"
                         "m = json.load(t.extractfile('blobs/sha256/' + d[7:]))\n"
                         "print(' '.join(l['mediaType'].split('.')[-1] for l in m['layers']))\n",
                         file});
  EXPECT_EQ(types.out, "tar tar+zstd\n") << describe(types);
  std::string other = sub("store-2");
  RunResult imp = togo(other, {"image", "import", file}, opts());
  ASSERT_EQ(imp.status, 0) << describe(imp);
  EXPECT_EQ(imp.out, c.out) << "the same name and id";
}

TEST_P(CommitExportTest, ACopyEnvCommitsItsWholeTree) {
  std::string id = changed_image("dev", "snap", {"--rootfs", "copy"});
  ASSERT_EQ(id.size(), 12u);
  EXPECT_EQ(layers_of("snap"), 1);
  ASSERT_NO_FATAL_FAILURE(create_env("again", "snap"));
  EXPECT_EQ(sh("again", kShow).out, kChanged);
  ASSERT_NO_FATAL_FAILURE(create_env("again-copy", "snap", {"--rootfs", "copy"}));
  EXPECT_EQ(sh("again-copy", kShow).out, kChanged);
}

TEST_P(CommitExportTest, AnUntouchedEnvCommitsAndChangesSetTheConfig) {
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  RunResult c =
      tg({"commit", "dev", "same", "--compression", "gzip", "--change", "ENV=GREETING=hello",
          "--change", "CMD=[\"/bin/echo\", \"from-cmd\"]", "--change", "WORKDIR /etc"});
  ASSERT_EQ(c.status, 0) << describe(c);
  ASSERT_NO_FATAL_FAILURE(create_env("copy", "same"));
  EXPECT_EQ(sh("copy", "echo $GREETING; pwd").out, "hello\n/etc\n");
  EXPECT_EQ(tg({"run", "copy"}).out, "from-cmd\n");

  RunResult bad = tg({"commit", "dev", "other", "--change", "FROM=scratch"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(one_line_error(bad, "--change FROM=scratch"));
  RunResult none = tg({"commit", "nosuch", "other"});
  EXPECT_EQ(none.status, 3);
  EXPECT_TRUE(one_line_error(none, "nosuch"));
  EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
}

TEST_P(CommitExportTest, ARunningEnvCommitsWithAWarning) {
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  ASSERT_EQ(tg({"start", "dev"}).status, 0);
  ASSERT_EQ(sh("dev", "echo live > /root/note").status, 0);
  RunResult c = tg({"commit", "dev", "live"});
  ASSERT_EQ(c.status, 0) << describe(c);
  EXPECT_NE(c.err.find("warning: dev is running"), std::string::npos) << c.err;
  EXPECT_EQ(tg({"stop", "dev"}).status, 0);
  ASSERT_NO_FATAL_FAILURE(create_env("later", "live"));
  EXPECT_EQ(in_env("later", {"cat", "/root/note"}).out, "live\n");
}

TEST_P(CommitExportTest, ExportsReadBackAsTheSameImage) {
  std::string id = changed_image("dev", "snap", {}, {"--message", "my change"});
  ASSERT_EQ(id.size(), 12u);
  for (const char* format : {"oci", "docker"}) {
    SCOPED_TRACE(format);
    std::string file = export_to("snap", format);
    RunResult check = run({"python3", "-c", kCheckArchive, file, format, "snap", "my change"});
    EXPECT_EQ(check.out, "ok " + std::to_string(layers_of("snap")) + "\n") << describe(check);

    // The same bytes to stdout: the archive depends only on the image.
    RunResult piped = tg({"image", "export", "snap", "-", "--format", format});
    EXPECT_EQ(piped.status, 0) << piped.err;
    EXPECT_TRUE(piped.out == read_file(file).value_or("")) << "stdout differs from the file";

    // Into a store of its own: same config, same id, same files.
    std::string other = sub(std::string("store-") + format);
    RunResult imp = togo(other, {"image", "import", file, "--name", "back"}, opts());
    ASSERT_EQ(imp.status, 0) << describe(imp);
    EXPECT_EQ(id_of(imp), id) << describe(imp);
    RunResult created = togo(other, {"create", "e", "--image", "back"}, opts());
    ASSERT_EQ(created.status, 0) << describe(created);
    RunResult shown = togo(other, {"run", "e", "--", "sh", "-c", kShow}, opts());
    EXPECT_EQ(shown.out, kChanged) << describe(shown);

    if (::access("/usr/bin/skopeo", X_OK) == 0) {
      std::string transport =
          std::string(format == std::string("oci") ? "oci" : "docker") + "-archive:" + file;
      RunResult sk = run({"skopeo", "inspect", "--raw", transport});
      EXPECT_EQ(sk.status, 0) << describe(sk);
      RunResult cfg = run({"skopeo", "inspect", "--config", transport});
      EXPECT_EQ(cfg.status, 0) << describe(cfg);
      EXPECT_NE(cfg.out.find("togo commit"), std::string::npos) << cfg.out;
    }
  }
  RunResult missing = tg({"image", "export", "nosuch", sub("x.tar")});
  EXPECT_EQ(missing.status, 3);
  EXPECT_TRUE(one_line_error(missing, "nosuch"));
  EXPECT_FALSE(exists(sub("x.tar")));
  RunResult format = tg({"image", "export", "snap", sub("x.tar"), "--format", "zip"});
  EXPECT_EQ(format.status, 2);
  EXPECT_TRUE(one_line_error(format, "--format zip"));
}

// Podman on this host, as root: a throwaway storage, no cgroups or network,
// and (on a cgroup v1+v2 hybrid) /sys/fs/cgroup/unified hidden from crun in
// a private mount namespace, as bench/startup.sh does.
RunResult podman(const std::string& dir, const std::string& commands) {
  std::string script =
      "set -e\n"
      "if [ \"$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)\" = cgroup2fs ]; then\n"
      "  mount -t tmpfs -o size=4k,mode=0555 none /sys/fs/cgroup/unified\n"
      "fi\n"
      "p() { podman --root '" +
      dir + "/root' --runroot '" + dir + "/run' --tmpdir '" + dir +
      "/tmp' --events-backend=none \"$@\"; }\n"
      "prun() { p run --rm --cgroups=disabled --network=none --ulimit nofile=1024:1024 "
      "--ulimit nproc=1024:1024 \"$@\"; }\n" +
      commands;
  return run({"unshare", "-m", "--propagation", "private", "sh", "-c", script}, {.timeout_s = 300});
}

TEST_P(CommitExportTest, PodmanLoadsAndRunsBothFormats) {
  if (rootless()) GTEST_SKIP() << "podman runs as root here; the root variant covers it";
  if (::access("/usr/bin/podman", X_OK) != 0) GTEST_SKIP() << "podman is not installed";
  std::string id = changed_image("dev", "snap");
  ASSERT_EQ(id.size(), 12u);
  for (const char* format : {"oci", "docker"}) {
    SCOPED_TRACE(format);
    std::string file = export_to("snap", format);
    std::string dir = sub(std::string("podman-") + format);
    RunResult r = podman(dir, "p load -q -i '" + file +
                                  "' >/dev/null\n"
                                  "p images --format '{{.Repository}}:{{.Tag}} {{.ID}}'\n"
                                  "prun localhost/snap:latest sh -c '" +
                                  kShow + "'\n");
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "localhost/snap:latest " + id + "\n" + kChanged) << describe(r);
  }
}

}  // namespace
}  // namespace togo::test
