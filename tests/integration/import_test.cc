// `togo image import`: compressed and plain tarballs, stdin, listings, layer
// sharing, and what an archive's entries become inside an environment.
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

namespace togo::test {
namespace {

class ImportTest : public TogoTest {
 protected:
  /// A tarball of the test image plus etc/format containing `tag`, made by
  /// the host's tar with `compress` (e.g. "-z"; "" for none).
  std::string host_tar(const std::string& file, const std::string& compress,
                       const std::string& tag) {
    std::string extra = sub("extra-" + tag);
    EXPECT_EQ(run({"mkdir", "-p", extra + "/etc"}).status, 0);
    write_file(extra + "/etc/format", tag + "\n");
    std::vector<std::string> argv = {"tar", "--numeric-owner", "--owner=0", "--group=0", "-c"};
    if (!compress.empty()) argv.push_back(compress);
    argv.insert(argv.end(), {"-f", sub(file), "-C", test_rootfs_dir()});
    for (const auto& name : list_dir(test_rootfs_dir())) argv.push_back(name);
    argv.insert(argv.end(), {"-C", extra, "etc/format"});
    RunResult r = run(argv);
    EXPECT_EQ(r.status, 0) << describe(r);
    return sub(file);
  }

  /// The layer directories in the store.
  size_t layers() { return list_dir(store() + "/layers").size(); }
};
TOGO_AS_ROOT_AND_ROOTLESS(ImportTest);

TEST_P(ImportTest, EveryCompressionImportsAndRuns) {
  struct Format {
    const char* tag;
    const char* file;
    const char* flag;
  };
  const Format formats[] = {{"plain", "fmt-plain.tar", ""},
                            {"gz", "fmt-gz.tar.gz", "-z"},
                            {"xz", "fmt-xz.tar.xz", "-J"},
                            {"zst", "fmt-zst.tar.zst", "--zstd"},
                            {"bz2", "fmt-bz2.tar.bz2", "-j"}};
  for (const auto& f : formats) {
    SCOPED_TRACE(f.file);
    std::string tar = host_tar(f.file, f.flag, f.tag);
    std::string name = std::string("fmt-") + f.tag;
    RunResult r = tg({"image", "import", tar});
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_TRUE(r.out.starts_with(name + " ")) << "the name comes from the file: " << r.out;
    ASSERT_NO_FATAL_FAILURE(create_env(f.tag, name));
    RunResult in = sh(f.tag, "cat /etc/format; hostname");
    EXPECT_EQ(in.out, std::string(f.tag) + "\n" + f.tag + "\n") << describe(in);
  }
  RunResult ls = tg({"image", "ls"});
  for (const auto& f : formats)
    EXPECT_NE(ls.out.find(std::string("fmt-") + f.tag + " "), std::string::npos) << ls.out;
  EXPECT_EQ(lines_of(ls.out).size(), 1 + std::size(formats)) << ls.out;
}

TEST_P(ImportTest, StdinNeedsAName) {
  std::string tar = host_tar("in.tar.zst", "--zstd", "stdin");
  std::string bytes = read_file(tar).value_or("");
  ASSERT_FALSE(bytes.empty());
  RunResult r = tg({"image", "import", "-", "--name", "fromstdin"}, bytes);
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(r.out.starts_with("fromstdin ")) << r.out;
  ASSERT_NO_FATAL_FAILURE(create_env("s", "fromstdin"));
  EXPECT_EQ(in_env("s", {"cat", "/etc/format"}).out, "stdin\n");

  RunResult unnamed = tg({"image", "import", "-"}, bytes);
  EXPECT_EQ(unnamed.status, 2);
  EXPECT_TRUE(one_line_error(unnamed, "--name"));
}

TEST_P(ImportTest, ListingsAreValidJson) {
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  const char* check =
      "import json, sys\n"
      "v = json.load(sys.stdin)\n"
      "print(' '.join(sorted(x['name'] for x in v)))\n";
  RunResult images = tg({"image", "ls", "--json"});
  ASSERT_EQ(images.status, 0) << describe(images);
  RunResult parsed = run({"python3", "-c", check}, {.input = images.out});
  EXPECT_EQ(parsed.status, 0) << images.out << "\n" << describe(parsed);
  EXPECT_EQ(parsed.out, "test\n");
  RunResult envs = tg({"ls", "--json"});
  ASSERT_EQ(envs.status, 0) << describe(envs);
  parsed = run({"python3", "-c", check}, {.input = envs.out});
  EXPECT_EQ(parsed.status, 0) << envs.out << "\n" << describe(parsed);
  EXPECT_EQ(parsed.out, "dev\n");
  RunResult human = tg({"image", "ls"});
  auto lines = lines_of(human.out);
  ASSERT_EQ(lines.size(), 2u) << human.out;
  EXPECT_TRUE(lines[0].starts_with("NAME ")) << lines[0];
  EXPECT_TRUE(lines[1].starts_with("test ")) << lines[1];
}

TEST_P(ImportTest, IdenticalContentKeepsOneLayer) {
  std::string tar = test_rootfs_tar();
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "test"));
  auto before = list_dir(store() + "/blobs/sha256");
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "test"));
  EXPECT_EQ(layers(), 1u);
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), before);
  EXPECT_EQ(lines_of(tg({"image", "ls"}).out).size(), 2u);
  EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
}

TEST_P(ImportTest, IdenticalContentUnderTwoNamesKeepsBothNames) {
  std::string tar = test_rootfs_tar();
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "first"));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "second"));
  EXPECT_EQ(layers(), 1u);
  RunResult ls = tg({"image", "ls"});
  EXPECT_NE(ls.out.find("first "), std::string::npos) << "an acknowledged import lost its name\n"
                                                      << ls.out;
  EXPECT_NE(ls.out.find("second "), std::string::npos) << ls.out;
  // Two names of one content: the same size, and nothing shared with
  // another image.
  RunResult json = tg({"image", "ls", "--json"});
  RunResult sizes = run({"python3", "-c",
                         "import json, sys\n"
                         "for i in json.load(sys.stdin):\n"
                         "    print(i['name'], i['size'] > 0, i['shared_size'])\n"},
                        {.input = json.out});
  EXPECT_EQ(sizes.out, "first True 0\nsecond True 0\n") << json.out << describe(sizes);
  RunResult c = tg({"create", "a", "--image", "first"});
  EXPECT_EQ(c.status, 0) << describe(c);
}

TEST_P(ImportTest, OwnersAndModesAreKept) {
  std::string tar = sub("owners.tar");
  ASSERT_NO_FATAL_FAILURE(
      make_tar(tar,
               "base(); file('etc/owned', b'mine', uid=1234, gid=5678); "
               "file('etc/suid', b'x', mode=0o4755); file('etc/private', b'p', mode=0o600)"));
  RunResult imp = tg({"image", "import", tar, "--name", "owners"});
  ASSERT_EQ(imp.status, 0) << describe(imp);
  ASSERT_NO_FATAL_FAILURE(create_env("o", "owners"));
  RunResult r =
      in_env("o", {"stat", "-c", "%n %u:%g %a", "/etc/owned", "/etc/suid", "/etc/private"});
  ASSERT_EQ(r.status, 0) << describe(r);
  if (rootless()) {
    // Rootless, every file belongs to the user, who is root inside; a
    // warning says so.
    EXPECT_EQ(r.out, "/etc/owned 0:0 644\n/etc/suid 0:0 4755\n/etc/private 0:0 600\n");
    EXPECT_TRUE(imp.err.starts_with("togo: ")) << imp.err;
    EXPECT_EQ(lines_of(imp.err).size(), 1u) << imp.err;
  } else {
    EXPECT_EQ(r.out, "/etc/owned 1234:5678 644\n/etc/suid 0:0 4755\n/etc/private 0:0 600\n");
    EXPECT_EQ(imp.err, "");
  }
  EXPECT_EQ(in_env("o", {"cat", "/etc/owned"}).out, "mine");
}

TEST_P(ImportTest, SymlinksAreKeptAsWritten) {
  std::string tar = sub("links.tar");
  ASSERT_NO_FATAL_FAILURE(
      make_tar(tar,
               "base(); sym('etc/abs', '/etc/os-release'); sym('etc/rel', '../etc/os-release'); "
               "sym('etc/dangling', '/no/such/file'); sym('etc/up', '../../../../..')"));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "links"));
  ASSERT_NO_FATAL_FAILURE(create_env("l", "links"));
  RunResult r = sh("l",
                   "for l in abs rel dangling up; do readlink /etc/$l; done; "
                   "cat /etc/abs /etc/rel; ls /etc/up/usr/bin");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out,
            "/etc/os-release\n../etc/os-release\n/no/such/file\n../../../../..\n"
            "ID=togotest\nNAME=\"togo test image\"\nPRETTY_NAME=\"togo test image\"\n"
            "ID=togotest\nNAME=\"togo test image\"\nPRETTY_NAME=\"togo test image\"\n"
            "togo-probe\n")
      << "symlinks resolve inside the env";
  // On disk the layer keeps them as they are.
  auto l = list_dir(store() + "/layers");
  ASSERT_EQ(l.size(), 1u);
  char buf[256] = {};
  ASSERT_GT(
      ::readlink((store() + "/layers/" + l[0] + "/root/etc/abs").c_str(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "/etc/os-release");
}

TEST_P(ImportTest, HardlinksAreKept) {
  std::string tar = sub("hard.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tar,
                                   "base(); file('etc/a', b'shared'); hard('etc/b', 'etc/a'); "
                                   "hard('root/c', 'etc/a')"));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "hard"));
  ASSERT_NO_FATAL_FAILURE(create_env("h", "hard", {"--rootfs", "copy"}));
  ASSERT_NO_FATAL_FAILURE(create_env("ho", "hard"));
  for (const char* env : {"h", "ho"}) {
    SCOPED_TRACE(env);
    RunResult r = in_env(env, {"stat", "-c", "%i %h", "/etc/a", "/etc/b", "/root/c"});
    ASSERT_EQ(r.status, 0) << describe(r);
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 3u) << r.out;
    EXPECT_EQ(lines[0], lines[1]) << "same inode";
    EXPECT_EQ(lines[0], lines[2]) << "same inode";
    EXPECT_TRUE(lines[0].ends_with(" 3")) << "three links: " << lines[0];
    EXPECT_EQ(in_env(env, {"cat", "/root/c"}).out, "shared");
  }
}

TEST_P(ImportTest, DotSlashNamesAndImplicitParentsWork) {
  // `tar -C dir .` names entries "./bin/sh"; other archives name a file
  // before (or without) its parent directories.
  std::string tar = sub("dot.tar.gz");
  RunResult t = run({"tar", "--numeric-owner", "--owner=0", "--group=0", "-czf", tar, "-C",
                     test_rootfs_dir(), "."});
  ASSERT_EQ(t.status, 0) << describe(t);
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "dot"));
  ASSERT_NO_FATAL_FAILURE(create_env("dot", "dot"));
  EXPECT_EQ(probe_value(probe("dot"), "os_id"), "togotest");

  std::string implicit = sub("implicit.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(implicit, "base(); file('srv/deep/er/file', b'deep\\n')"));
  ASSERT_NO_FATAL_FAILURE(import_image(implicit, "implicit"));
  ASSERT_NO_FATAL_FAILURE(create_env("imp", "implicit"));
  RunResult r = sh("imp", "cat /srv/deep/er/file; stat -c %F /srv/deep");
  EXPECT_EQ(r.out, "deep\ndirectory\n") << describe(r);
}

TEST_P(ImportTest, ReadOnlyDirectoriesGetTheirChildren) {
  std::string tar = sub("ro.tar");
  ASSERT_NO_FATAL_FAILURE(
      make_tar(tar,
               "base(); dir('srv/ro', mode=0o555); file('srv/ro/f', b'x', mode=0o400); "
               "dir('srv/none', mode=0); file('srv/none/g', b'y', mode=0)"));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "ro"));
  ASSERT_NO_FATAL_FAILURE(create_env("ro", "ro"));
  RunResult r =
      in_env("ro", {"stat", "-c", "%n %a", "/srv/ro", "/srv/ro/f", "/srv/none", "/srv/none/g"});
  EXPECT_EQ(r.out, "/srv/ro 555\n/srv/ro/f 400\n/srv/none 0\n/srv/none/g 0\n") << describe(r);
  EXPECT_EQ(in_env("ro", {"cat", "/srv/ro/f", "/srv/none/g"}).out, "xy");
  // And it can be removed again.
  ASSERT_EQ(tg({"rm", "ro"}).status, 0);
  RunResult rm = tg({"image", "rm", "ro"});
  EXPECT_EQ(rm.status, 0) << describe(rm);
  EXPECT_EQ(list_dir(store() + "/layers"), std::vector<std::string>{});
}

TEST_P(ImportTest, XattrsAreKept) {
  std::string tar = sub("xattr.tar");
  ASSERT_NO_FATAL_FAILURE(
      make_tar(tar,
               "ti = tarfile.TarInfo('etc/tagged'); ti.size = 1; "
               "ti.pax_headers = {'SCHILY.xattr.user.togo': 'kept'}; "
               "out.format = tarfile.PAX_FORMAT; out.addfile(ti, io.BytesIO(b'x'))"));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "xattr"));
  auto l = list_dir(store() + "/layers");
  ASSERT_EQ(l.size(), 1u);
  std::string file = store() + "/layers/" + l[0] + "/root/etc/tagged";
  RunResult r = run({"python3", "-c",
                     "import os, sys; print(os.getxattr(sys.argv[1], "
                     "'user.togo').decode())",
                     file});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "kept\n");
}

TEST_P(ImportTest, DeviceNodesNeedRoot) {
  std::string tar = sub("dev.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tar, "base(); dev('etc/mynull', 1, 3)"));
  RunResult imp = tg({"image", "import", tar, "--name", "devs"});
  ASSERT_EQ(imp.status, 0) << describe(imp);
  ASSERT_NO_FATAL_FAILURE(create_env("d", "devs"));
  RunResult r = in_env("d", {"stat", "-c", "%F %t,%T", "/etc/mynull"});
  if (rootless()) {
    auto lines = lines_of(imp.err);
    ASSERT_EQ(lines.size(), 1u) << "one warning line: " << imp.err;
    EXPECT_TRUE(lines[0].starts_with("togo: ")) << lines[0];
    EXPECT_NE(lines[0].find("device"), std::string::npos) << lines[0];
    EXPECT_NE(r.status, 0) << "the node was skipped: " << describe(r);
  } else {
    EXPECT_EQ(imp.err, "");
    EXPECT_EQ(r.out, "character special file 1,3\n") << describe(r);
  }
}

TEST_P(ImportTest, NotATarballIsBadInput) {
  ASSERT_NO_FATAL_FAILURE(import_image(test_rootfs_tar(), "test"));
  std::string before = images_json();
  auto layers_before = list_dir(store() + "/layers");
  auto blobs_before = list_dir(store() + "/blobs/sha256");

  std::string junk = sub("junk.tar");
  write_file(junk, std::string("this is not a tarball\n") + std::string(2000, 'x'));
  std::string bytes = read_file(test_rootfs_tar()).value_or("");
  std::string cut = sub("cut.tar.gz");
  write_file(cut, bytes.substr(0, bytes.size() / 2));
  std::string bad_gz = sub("bad.tar.gz");
  write_file(bad_gz, "\x1f\x8b\x08\x00garbage that is not deflate data at all");
  for (const auto& f : {junk, cut, bad_gz}) {
    SCOPED_TRACE(f);
    RunResult r = tg({"image", "import", f, "--name", "bad"});
    EXPECT_EQ(r.status, 5);
    EXPECT_TRUE(one_line_error(r));
  }
  RunResult from_stdin = tg({"image", "import", "-", "--name", "bad"}, "garbage\n");
  EXPECT_EQ(from_stdin.status, 5);
  EXPECT_TRUE(one_line_error(from_stdin));

  EXPECT_EQ(images_json(), before);
  EXPECT_EQ(list_dir(store() + "/layers"), layers_before);
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), blobs_before);
  EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
}

TEST_P(ImportTest, StoredLayersAreReadAgainWithoutTheBombLimits) {
  // A committed layer of zeros compresses far past the 1000:1 an imported
  // layer may expand to; a private copy of its image must still unpack it.
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  RunResult w = sh("dev", "head -c 300000000 /dev/zero > /zeros");
  ASSERT_EQ(w.status, 0) << describe(w);
  RunResult c = tg({"commit", "dev", "zeros"});
  ASSERT_EQ(c.status, 0) << describe(c);
  ASSERT_NO_FATAL_FAILURE(create_env("copy", "zeros", {"--rootfs", "copy"}));
  RunResult size = in_env("copy", {"stat", "-c", "%s", "/zeros"});
  EXPECT_EQ(size.out, "300000000\n") << describe(size);
}

TEST_P(ImportTest, MissingFileIsAnError) {
  RunResult r = tg({"image", "import", sub("no-such.tar.gz")});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(one_line_error(r, "no-such.tar.gz"));
}

}  // namespace
}  // namespace togo::test
