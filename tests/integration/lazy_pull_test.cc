// Pulled layers stay packed (their verified blobs only) until a command
// needs their files: `image ls`, `image inspect`, fsck and gc say so and
// keep them; the first create unpacks them, checking each against the
// config's diff_id, and refuses a layer that is not what the config says
// without changing the store; push, image export and env import work on
// packed images; `pull --unpack` unpacks at once.
#include <unistd.h>

#include "pull_fixture.h"

namespace togo::test {
namespace {

/// The layer trees the store holds.
std::vector<std::string> trees(const std::string& store) { return list_dir(store + "/layers"); }

/// `togo fsck` exited 0 and found the store clean.
::testing::AssertionResult fsck_clean(const RunResult& r) {
  if (r.status == 0 && contains(r.out, ": clean\n")) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << describe(r);
}

TEST_P(PullTest, PulledLayersStayPackedUntilTheFirstCreate) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  std::string ref = reg() + "/test/busy:v1";
  RunResult r = tgx({"image", "pull", ref, "--name", "busy"});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(trees(store()), std::vector<std::string>{}) << "pull unpacked a layer";
  EXPECT_EQ(list_dir(store() + "/blobs/sha256").size(), 2u);
  RunResult ls = tg({"image", "ls"});
  EXPECT_TRUE(contains(ls.out, " packed ")) << ls.out;
  std::string json = images_json();
  EXPECT_TRUE(contains(json, "\"size\":0,\"packed_size\":")) << json;
  RunResult inspect = tg({"image", "inspect", "busy"});
  EXPECT_TRUE(contains(inspect.out, "\"unpacked\":false")) << inspect.out;
  EXPECT_FALSE(contains(inspect.out, "unpacked_size")) << inspect.out;

  // Packed layers are whole, not damage; fsck and gc keep their blobs.
  RunResult fsck = tg({"fsck"});
  EXPECT_TRUE(fsck_clean(fsck));
  EXPECT_TRUE(contains(fsck.out, "2 layers (2 packed)")) << fsck.out;
  RunResult repair = tg({"fsck", "--repair"});
  EXPECT_TRUE(fsck_clean(repair));
  EXPECT_EQ(trees(store()), std::vector<std::string>{}) << "fsck --repair unpacked a packed layer";
  RunResult gc = tg({"gc"});
  ASSERT_EQ(gc.status, 0) << describe(gc);
  EXPECT_TRUE(contains(gc.out, "0 removed")) << gc.out;
  EXPECT_EQ(list_dir(store() + "/blobs/sha256").size(), 2u);

  ASSERT_NO_FATAL_FAILURE(create_env("e1", "busy"));
  EXPECT_EQ(trees(store()).size(), 2u);
  RunResult in = sh("e1", ". /etc/os-release; echo $ID; cat /etc/pulled");
  EXPECT_EQ(in.out, "togotest\npulled\n") << describe(in);
  EXPECT_FALSE(probe("e1").empty());
  EXPECT_FALSE(contains(tg({"image", "ls"}).out, "packed"));
  RunResult after = tg({"fsck"});
  EXPECT_TRUE(fsck_clean(after));
  EXPECT_FALSE(contains(after.out, "packed")) << after.out;
}

// What `togo fsck --repair` marks damaged and cannot rebuild, the fsck hint
// says to pull again: that replaces the blob, and the tree an env stands on.
TEST_P(PullTest, PullingAgainReplacesALayerFsckMarkedDamaged) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  std::string ref = reg() + "/test/busy:v1";
  ASSERT_EQ(tgx({"image", "pull", ref, "--name", "busy"}).status, 0);
  ASSERT_NO_FATAL_FAILURE(create_env("e1", "busy"));
  for (const std::string& blob : list_dir(store() + "/blobs/sha256")) {
    std::string path = store() + "/blobs/sha256/" + blob;
    ASSERT_EQ(run({"sh", "-c", "printf X | dd of=\"$0\" bs=1 seek=100 conv=notrunc 2>/dev/null", path}).status, 0);
  }
  RunResult repair = tg({"fsck", "--repair"});
  EXPECT_EQ(repair.status, 6) << describe(repair);
  EXPECT_TRUE(contains(repair.out, "-> marked damaged: pull or import image busy again")) << repair.out;
  RunResult again = tgx({"image", "pull", ref, "--name", "busy"});
  ASSERT_EQ(again.status, 0) << describe(again);
  EXPECT_TRUE(fsck_clean(tg({"fsck"})));
  EXPECT_EQ(sh("e1", "cat /etc/pulled").out, "pulled\n");
}

TEST_P(PullTest, ALayerThatIsNotWhatTheConfigSaysFailsTheCreateChangingNothing) {
  FakeServer bad({"serve", "bad-diff-id"});
  ASSERT_FALSE(bad.port.empty()) << bad.proc.err();
  RunResult pulled = tgx({"image", "pull", bad.host() + "/test/img:v1", "--name", "bad"});
  ASSERT_EQ(pulled.status, 0) << describe(pulled);
  std::string before = store_state() + tg({"ls"}).out;
  for (std::string rootfs : {"overlay", "copy"}) {
    SCOPED_TRACE(rootfs);
    RunResult c = tg({"create", "e1", "--image", "bad", "--rootfs", rootfs});
    EXPECT_TRUE(error_line(c, 5, {"create e1: image bad: layer 1/1 (sha256:",
                                  "uncompressed content hashes to sha256:", "the image config says sha256:"}));
    EXPECT_EQ(store_state() + tg({"ls"}).out, before);
    EXPECT_TRUE(fsck_clean(tg({"fsck"})));
  }
  // The same blob from an image whose config is right: its content decides,
  // and the image that claimed otherwise is refused for that.
  FakeServer good({"serve", "good"});
  RunResult right = tgx({"image", "pull", good.host() + "/test/img:v1", "--name", "good"});
  ASSERT_EQ(right.status, 0) << describe(right);
  ASSERT_NO_FATAL_FAILURE(create_env("e2", "good"));  // an image of one file: nothing to run
  EXPECT_EQ(trees(store()).size(), 1u);
  EXPECT_EQ(image_file("good", "hello").value_or("").substr(0, 29), "hello from the fake registry\n");
  RunResult c = tg({"create", "e3", "--image", "bad"});
  EXPECT_TRUE(error_line(c, 5, {"create e3: image bad: layer 1/1 (sha256:", "the image config gives diff_id"}));
  EXPECT_TRUE(fsck_clean(tg({"fsck"})));
  // Removed, a packed image takes its blob along with its last name.
  for (auto args : std::vector<std::vector<std::string>>{{"rm", "e2"}, {"image", "rm", "good"}, {"image", "rm", "bad"}})
    EXPECT_EQ(tg(args).status, 0) << args[args.size() - 1];
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), std::vector<std::string>{});
  EXPECT_EQ(trees(store()), std::vector<std::string>{});
  EXPECT_TRUE(fsck_clean(tg({"fsck"})));
}

TEST_P(PullTest, PullUnpackUnpacksAtOnce) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  std::string ref = reg() + "/test/busy:v1";
  RunResult r = tgx({"image", "pull", ref, "--name", "busy", "--unpack"});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(trees(store()).size(), 2u);
  EXPECT_FALSE(contains(tg({"image", "ls"}).out, "packed"));
  EXPECT_TRUE(contains(tg({"image", "inspect", "busy"}).out, "\"unpacked\":true"));
  EXPECT_EQ(partials(), std::vector<std::string>{});
  EXPECT_TRUE(fsck_clean(tg({"fsck"})));

  // A packed image pulled again with --unpack is unpacked then.
  std::string other = sub("store2");
  ASSERT_EQ(tgx({"image", "pull", ref, "--name", "busy"}, {}, 120, other).status, 0);
  EXPECT_EQ(trees(other), std::vector<std::string>{});
  RunResult again = tgx({"image", "pull", ref, "--name", "busy", "--unpack"}, {}, 120, other);
  ASSERT_EQ(again.status, 0) << describe(again);
  EXPECT_EQ(trees(other).size(), 2u);
  EXPECT_TRUE(contains(tgx({"image", "inspect", "busy"}, {}, 60, other).out, "\"unpacked\":true"));
}

TEST_P(PullTest, APackedImageIsPushedExportedAndImportedUnderAnEnv) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  std::string ref = reg() + "/test/busy:v1";
  ASSERT_EQ(tgx({"image", "pull", ref, "--name", "busy"}).status, 0);
  std::string back = reg() + "/test/busy-back-" + std::string(rootless() ? "rootless" : "root") + ":v1";
  RunResult pushed = tgx({"image", "push", "busy", back});
  ASSERT_EQ(pushed.status, 0) << describe(pushed);
  EXPECT_EQ(inspect_raw(back.substr(reg().size() + 1)).status, 0);
  for (std::string format : {"oci", "docker"}) {
    RunResult exported = tg({"image", "export", "busy", sub(format + ".tar"), "--format", format});
    ASSERT_EQ(exported.status, 0) << describe(exported);
    std::string other = sub("store-" + format);
    RunResult imported = togo(other, {"image", "import", sub(format + ".tar"), "--name", "busy"}, opts());
    ASSERT_EQ(imported.status, 0) << describe(imported);
    ASSERT_EQ(togo(other, {"create", "e1", "--image", "busy"}, opts()).status, 0);
    EXPECT_EQ(togo(other, {"run", "e1", "--", "/bin/cat", "/etc/pulled"}, opts()).out, "pulled\n");
  }
  EXPECT_EQ(trees(store()), std::vector<std::string>{}) << "push or export unpacked a layer";

  // An env exported elsewhere and imported here, over the packed image.
  std::string elsewhere = sub("store-elsewhere");
  ASSERT_EQ(tgx({"image", "pull", ref, "--name", "busy"}, {}, 120, elsewhere).status, 0);
  ASSERT_EQ(togo(elsewhere, {"create", "e1", "--image", "busy"}, opts()).status, 0);
  ASSERT_EQ(togo(elsewhere, {"run", "e1", "--", "/bin/sh", "-c", "echo mine > /root/f"}, opts()).status, 0);
  for (std::string image : {"with", "without"}) {
    std::vector<std::string> args = {"export", "e1", sub(image + ".togo")};
    if (image == "without") args.push_back("--no-image");
    ASSERT_EQ(togo(elsewhere, args, opts()).status, 0);
    RunResult imported = tg({"import", sub(image + ".togo"), "e-" + image});
    ASSERT_EQ(imported.status, 0) << describe(imported);
    EXPECT_EQ(in_env("e-" + image, {"/bin/cat", "/root/f", "/etc/pulled"}).out, "mine\npulled\n");
  }
  EXPECT_TRUE(fsck_clean(tg({"fsck"})));
}

TEST_P(PullTest, TwoCreatesFromAPackedImageBothSucceed) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  ASSERT_EQ(tgx({"image", "pull", reg() + "/test/busy:v1", "--name", "busy"}).status, 0);
  auto create = [&](const std::string& name) {
    return std::make_unique<Background>(
        std::vector<std::string>{togo_bin(), "--store", store(), "create", name, "--image", "busy"}, as_uid());
  };
  auto a = create("a");
  auto b = create("b");
  EXPECT_EQ(a->wait(120), 0) << a->err();
  EXPECT_EQ(b->wait(120), 0) << b->err();
  EXPECT_EQ(trees(store()).size(), 2u);
  for (const char* env : {"a", "b"}) EXPECT_EQ(in_env(env, {"/bin/cat", "/etc/pulled"}).out, "pulled\n") << env;
  EXPECT_TRUE(fsck_clean(tg({"fsck"})));
}

TEST_P(PullTest, AnUnpackingThatDidNotFinishIsALeftover) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  ASSERT_EQ(tgx({"image", "pull", reg() + "/test/busy:v1", "--name", "busy"}).status, 0);
  // What a crash between placing a tree and recording it leaves.
  std::string blob = list_dir(store() + "/blobs/sha256")[0];
  RunResult made = run({"mkdir", "-p", store() + "/layers/" + blob + "/root/etc"}, opts());
  ASSERT_EQ(made.status, 0) << describe(made);
  RunResult fsck = tg({"fsck"});
  EXPECT_TRUE(contains(fsck.out, "leftover  unpacked layer " + blob.substr(0, 12) +
                                     ": its unpacking did not finish"))
      << describe(fsck);
  RunResult repair = tg({"fsck", "--repair"});
  EXPECT_EQ(repair.status, 0) << describe(repair);
  EXPECT_EQ(trees(store()), std::vector<std::string>{});
  EXPECT_TRUE(fsck_clean(tg({"fsck"})));
  ASSERT_NO_FATAL_FAILURE(create_env("e1", "busy"));
  EXPECT_EQ(in_env("e1", {"/bin/cat", "/etc/pulled"}).out, "pulled\n");
}

}  // namespace
}  // namespace togo::test
