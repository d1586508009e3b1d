// `togo image pull` and `togo image push` against Debian's distribution
// registry (filled by skopeo) and against a registry that misbehaves on
// purpose (fake_registry.py beside this file): by tag and digest, multi-arch
// indexes, stored layers reused, an interrupted pull resumed, basic auth,
// pushes that skopeo reads back, and bad input that changes nothing.
// Layers stored packed and unpacked on first use: lazy_pull_test.cc.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/fs.h"
#include "base/sha256.h"
#include "pull_fixture.h"

namespace togo::test {
namespace {

TOGO_AS_ROOT_AND_ROOTLESS(PullTest);

TEST_P(PullTest, PullsByTagAndRuns) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  std::string ref = reg() + "/test/busy:v1";
  RunResult r = tgx({"image", "pull", ref});
  ASSERT_EQ(r.status, 0) << describe(r);
  auto out = lines_of(r.out);
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(out.back().starts_with(ref + " ")) << "named by the reference's short form\n" << r.out;
  EXPECT_NE(r.out.find("layer 1/2 sha256:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer 2/2 sha256:"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(partials(), std::vector<std::string>{}) << "downloads are removed once committed";
  ASSERT_NO_FATAL_FAILURE(create_env("pulled", ref));
  RunResult in = sh("pulled", ". /etc/os-release; echo $ID; cat /etc/pulled");
  EXPECT_EQ(in.out, "togotest\npulled\n") << describe(in);
  EXPECT_NE(images_json().find("\"source\":\"" + ref + "@sha256:"), std::string::npos) << images_json();
}

TEST_P(PullTest, PullsByDigestToTheSameImage) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  std::string digest = Sha256::digest_of(raw_manifest("test/busy:v1"));
  RunResult tag = tgx({"image", "pull", reg() + "/test/busy:v1", "--name", "bytag"});
  ASSERT_EQ(tag.status, 0) << describe(tag);
  RunResult by = tgx({"image", "pull", reg() + "/test/busy@" + digest});
  ASSERT_EQ(by.status, 0) << describe(by);
  std::string id = lines_of(tag.out).back().substr(6);
  EXPECT_EQ(lines_of(by.out).back(), reg() + "/test/busy:sha256-" + digest.substr(7, 12) + " " + id) << by.out;
  EXPECT_NE(by.out.find("already stored"), std::string::npos) << by.out;

  RunResult missing = tgx({"image", "pull", reg() + "/test/busy@" + Sha256::digest_of("no such manifest")});
  EXPECT_TRUE(error_line(missing, 3, {"pulling " + reg() + "/test/busy: manifest sha256:", "404 manifest unknown"}));
  RunResult bad_ref = tgx({"image", "pull", "Not a Reference!"});
  EXPECT_TRUE(error_line(bad_ref, 2, {"invalid image reference"}));
}

TEST_P(PullTest, ASecondPullDownloadsNoLayer) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  std::string log = sub("proxy.log");
  FakeServer proxy({"proxy", std::to_string(registry_->port()), "0", log});
  ASSERT_FALSE(proxy.port.empty()) << proxy.proc.err();
  std::string ref = proxy.host() + "/test/busy:v1";
  RunResult first = tgx({"image", "pull", ref, "--name", "busy"});
  ASSERT_EQ(first.status, 0) << describe(first);
  auto layers = manifest_layers(raw_manifest("test/busy:v1"));
  ASSERT_EQ(layers.size(), 2u);
  for (auto& [digest, size] : layers) EXPECT_EQ(blob_gets(log, digest).size(), 1u) << digest;
  auto store_before = list_dir(store() + "/blobs/sha256");

  ASSERT_TRUE(write_text(log, ""));
  RunResult again = tgx({"image", "pull", ref, "--name", "busy"});
  ASSERT_EQ(again.status, 0) << describe(again);
  for (auto& [digest, size] : layers) EXPECT_EQ(blob_gets(log, digest), std::vector<std::string>{}) << digest;
  EXPECT_NE(again.out.find("layer 1/2 " + layers[0].first.substr(0, 19) + " already stored"), std::string::npos)
      << again.out;
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), store_before);
  EXPECT_EQ(lines_of(tgx({"image", "ls"}).out).size(), 2u);
}

TEST_P(PullTest, AMultiArchIndexGivesTheHostsOrTheChosenPlatform) {
  ASSERT_NO_FATAL_FAILURE(publish("multi", [&](Layout& l) {
    make_tar(sub("amd64.tar"), "file('arch', b'amd64\\n')");
    make_tar(sub("arm64.tar"), "file('arch', b'arm64\\n')");
    auto amd = l.image({l.put(read_file(sub("amd64.tar")).value_or(""), Layout::kLayer)}, "amd64");
    auto arm = l.image({l.put(read_file(sub("arm64.tar")).value_or(""), Layout::kLayer)}, "arm64", "v8");
    return l.tag(l.index({{amd, "linux/amd64"}, {arm, "linux/arm64/v8"}}), "v1");
  }, true));
  std::string ref = reg() + "/test/multi:v1";
  if (!host_arch().empty()) {
    RunResult host = tgx({"image", "pull", ref, "--name", "m-host"});
    ASSERT_EQ(host.status, 0) << describe(host);
    EXPECT_EQ(image_file("m-host", "arch"), host_arch() + "\n");
  }
  RunResult arm = tgx({"image", "pull", ref, "--arch", "arm64", "--name", "m-arm"});
  ASSERT_EQ(arm.status, 0) << describe(arm);
  EXPECT_EQ(image_file("m-arm", "arch"), "arm64\n");
  RunResult amd = tgx({"image", "pull", ref, "--platform", "linux/amd64", "--name", "m-amd"});
  ASSERT_EQ(amd.status, 0) << describe(amd);
  EXPECT_EQ(image_file("m-amd", "arch"), "amd64\n");

  std::string before = store_state();
  RunResult none = tgx({"image", "pull", ref, "--arch", "s390x"});
  EXPECT_TRUE(error_line(none, 5, {"pulling " + reg() + "/test/multi: manifest v1: no linux/s390x image in the index "
                                   "(it has linux/amd64, linux/arm64/v8)"}));
  RunResult both = tgx({"image", "pull", ref, "--arch", "arm64", "--platform", "linux/arm64"});
  EXPECT_TRUE(error_line(both, 2, {"--arch and --platform"}));
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  RunResult single = tgx({"image", "pull", reg() + "/test/busy:v1", "--arch", "arm64"});
  EXPECT_TRUE(error_line(single, 3, {"the image is for linux/amd64 only, not linux/arm64"}));
  EXPECT_EQ(store_state(), before);
}

TEST_P(PullTest, AnInterruptedPullResumesWithoutFetchingFinishedLayersAgain) {
  ASSERT_NO_FATAL_FAILURE(publish_big());
  auto layers = manifest_layers(raw_manifest("test/big:v1"));
  ASSERT_EQ(layers.size(), 2u);
  auto [small, small_size] = layers[0];
  auto [big, big_size] = layers[1];
  ASSERT_GT(big_size, 40u << 20);

  // 10 MB/s: the big layer takes about 5 s; the pull is killed 1 s in.
  std::string slow_log = sub("slow.log");
  FakeServer slow({"proxy", std::to_string(registry_->port()), "10000000", slow_log});
  ASSERT_FALSE(slow.port.empty()) << slow.proc.err();
  std::string big_partial = store() + "/tmp/downloads/" + big.substr(7) + ".partial";
  std::string small_partial = store() + "/tmp/downloads/" + small.substr(7) + ".partial";
  {
    Background pull({"/usr/bin/env", "DOCKER_CONFIG=" + sub("no-docker-config"), togo_bin(), "--store", store(),
                     "image", "pull", slow.host() + "/test/big:v1", "--name", "big"},
                    as_uid());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (file_size(big_partial) < (10 << 20) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_GE(file_size(big_partial), 10 << 20) << "the download did not get going";
    ::kill(-pull.pid(), SIGKILL);
    EXPECT_EQ(pull.wait(10), 128 + SIGKILL);
  }
  off_t got = file_size(big_partial);
  ASSERT_LT(got, static_cast<off_t>(big_size)) << "the pull finished before it was killed";
  EXPECT_EQ(file_size(small_partial), static_cast<off_t>(small_size)) << "the small layer was complete";
  EXPECT_EQ(images_json(), "[]\n");

  std::string log = sub("fast.log");
  FakeServer fast({"proxy", std::to_string(registry_->port()), "0", log});
  ASSERT_FALSE(fast.port.empty()) << fast.proc.err();
  RunResult again = tgx({"image", "pull", fast.host() + "/test/big:v1", "--name", "big"});
  ASSERT_EQ(again.status, 0) << describe(again);
  EXPECT_NE(again.out.find("layer 2/2 " + big.substr(0, 19) + " resuming at "), std::string::npos) << again.out;
  EXPECT_EQ(blob_gets(log, small), std::vector<std::string>{}) << "the finished layer was fetched again";
  auto gets = blob_gets(log, big);
  ASSERT_EQ(gets.size(), 1u) << read_file(log).value_or("");
  EXPECT_NE(gets[0].find("range=bytes=" + std::to_string(got) + "- status=206 bytes=" +
                         std::to_string(big_size - static_cast<uint64_t>(got))),
            std::string::npos)
      << gets[0];
  EXPECT_EQ(image_file("big", "etc/pulled"), "pulled\n");
  EXPECT_EQ(partials(), std::vector<std::string>{});
}

TEST_P(PullTest, LayersDownloadInParallel) {
  ASSERT_NO_FATAL_FAILURE(publish("pair", [&](Layout& l) {
    make_tar(sub("a.tar"), "import os\nfile('a.bin', os.urandom(5 << 20))");
    make_tar(sub("b.tar"), "import os\nfile('b.bin', os.urandom(5 << 20))");
    auto a = l.put(read_file(sub("a.tar")).value_or(""), Layout::kLayer);
    auto b = l.put(read_file(sub("b.tar")).value_or(""), Layout::kLayer);
    return l.tag(l.image({a, b}, "amd64"), "v1");
  }));
  auto layers = manifest_layers(raw_manifest("test/pair:v1"));
  ASSERT_EQ(layers.size(), 2u);
  // 5 MB/s per connection: each layer takes about a second.
  std::string log = sub("proxy.log");
  FakeServer proxy({"proxy", std::to_string(registry_->port()), "5000000", log});
  ASSERT_FALSE(proxy.port.empty()) << proxy.proc.err();
  RunResult r = tgx({"image", "pull", proxy.host() + "/test/pair:v1", "--name", "pair"});
  ASSERT_EQ(r.status, 0) << describe(r);
  // When each layer's download began and ended, from the proxy's log.
  std::vector<std::pair<double, double>> spans;
  for (auto& [digest, size] : layers) {
    auto gets = blob_gets(log, digest);
    ASSERT_EQ(gets.size(), 1u) << read_file(log).value_or("");
    auto start = gets[0].find(" start="), end = gets[0].find(" end=");
    ASSERT_NE(end, std::string::npos) << gets[0];
    spans.emplace_back(std::stod(gets[0].substr(start + 7)), std::stod(gets[0].substr(end + 5)));
  }
  EXPECT_LT(std::max(spans[0].first, spans[1].first), std::min(spans[0].second, spans[1].second))
      << "the layers were downloaded one after the other\n" << read_file(log).value_or("");
}

TEST_P(PullTest, TwoPullsOfOneImageDownloadItOnce) {
  ASSERT_NO_FATAL_FAILURE(publish_big());
  auto layers = manifest_layers(raw_manifest("test/big:v1"));
  ASSERT_EQ(layers.size(), 2u);
  std::string log = sub("proxy.log");
  FakeServer proxy({"proxy", std::to_string(registry_->port()), "25000000", log});
  ASSERT_FALSE(proxy.port.empty()) << proxy.proc.err();
  auto pull = [&](const std::string& name) {
    return std::make_unique<Background>(
        std::vector<std::string>{"/usr/bin/env", "DOCKER_CONFIG=" + sub("no-docker-config"), togo_bin(), "--store",
                                 store(), "image", "pull", proxy.host() + "/test/big:v1", "--name", name},
        as_uid());
  };
  auto first = pull("first");
  std::string partial = store() + "/tmp/downloads/" + layers[1].first.substr(7) + ".partial";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (file_size(partial) < (1 << 20) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto second = pull("second");
  EXPECT_EQ(first->wait(120), 0) << first->err();
  EXPECT_EQ(second->wait(120), 0) << second->err();
  EXPECT_NE(second->err().find("togo: waiting for another togo that downloads " + layers[1].first.substr(0, 19)),
            std::string::npos)
      << second->err();
  EXPECT_EQ(blob_gets(log, layers[1].first).size(), 1u) << read_file(log).value_or("");
  EXPECT_EQ(image_file("first", "etc/pulled"), "pulled\n");
  EXPECT_EQ(image_file("second", "etc/pulled"), "pulled\n");
  EXPECT_EQ(list_dir(store() + "/blobs/sha256").size(), 2u);
  EXPECT_EQ(partials(), std::vector<std::string>{});
}

TEST_P(PullTest, BasicAuthWithCredsOrADockerConfig) {
  LocalRegistry locked(LocalRegistry::Options{.basic_auth = true});
  ASSERT_TRUE(locked.ok()) << locked.why();
  auto img = make_oci_layout(sub("auth-layout"), "v1", {{{"etc/secret", "behind a password\n"}}});
  ASSERT_FALSE(img.layout.empty());
  std::string creds = std::string(kRegistryUser) + ":" + kRegistryPassword;
  ToolResult copied = skopeo_copy("oci:" + img.layout + ":v1", "docker://" + locked.host() + "/auth/img:v1", creds);
  ASSERT_EQ(copied.status, 0) << copied.err;
  std::string ref = locked.host() + "/auth/img:v1";
  std::string before = store_state();

  RunResult anonymous = tgx({"image", "pull", ref});
  EXPECT_TRUE(error_line(anonymous, 1, {"pulling " + locked.host() + "/auth/img: manifest v1: 401 "}));
  EXPECT_NE(anonymous.err.find("togo: hint: this registry wants credentials: pass --creds"), std::string::npos);
  RunResult wrong = tgx({"image", "pull", ref, "--creds", std::string(kRegistryUser) + ":nope"});
  EXPECT_TRUE(error_line(wrong, 1, {"401"}));
  RunResult malformed = tgx({"image", "pull", ref, "--creds", "nocolon"});
  EXPECT_TRUE(error_line(malformed, 2, {"USER:PASSWORD"}));
  EXPECT_EQ(store_state(), before);

  RunResult with = tgx({"image", "pull", ref, "--creds", creds, "--name", "by-flag"});
  ASSERT_EQ(with.status, 0) << describe(with);
  EXPECT_EQ(image_file("by-flag", "etc/secret"), "behind a password\n");

  std::string config_dir = sub("docker-config");
  ASSERT_EQ(run({"mkdir", "-p", config_dir}).status, 0);
  RunResult b64 = run({"sh", "-c", "printf %s \"$0\" | base64 -w0", creds});
  write_file(config_dir + "/config.json",
             "{\"auths\":{\"" + locked.host() + "\":{\"auth\":\"" + b64.out + "\"}}}");
  RunResult from_config = tgx({"image", "pull", ref, "--name", "by-config"}, {"DOCKER_CONFIG=" + config_dir});
  ASSERT_EQ(from_config.status, 0) << describe(from_config);
  EXPECT_EQ(image_file("by-config", "etc/secret"), "behind a password\n");

  // Pushing asks for the same credentials.
  RunResult push_anonymous = tgx({"image", "push", "by-flag", locked.host() + "/auth/back:v1"});
  EXPECT_TRUE(error_line(push_anonymous, 1, {"pushing " + locked.host() + "/auth/back: ", "401 "}));
  RunResult pushed = tgx({"image", "push", "by-flag", locked.host() + "/auth/back:v1"}, {"DOCKER_CONFIG=" + config_dir});
  EXPECT_EQ(pushed.status, 0) << describe(pushed);
}

TEST_P(PullTest, PushedImagesReadBackWithSkopeoAndPullIntoAnotherStore) {
  ASSERT_NO_FATAL_FAILURE(import_image(test_rootfs_tar(), "local"));
  std::string ref = reg() + "/test/pushed-" + std::string(rootless() ? "rootless" : "root") + ":v1";
  RunResult pushed = tgx({"image", "push", "local", ref});
  ASSERT_EQ(pushed.status, 0) << describe(pushed);
  std::string digest = lines_of(pushed.out).back().substr(ref.size() + 1);
  EXPECT_EQ(lines_of(pushed.out).back(), ref + "@" + digest) << pushed.out;
  std::string manifest = raw_manifest(ref.substr(reg().size() + 1));
  EXPECT_EQ(Sha256::digest_of(manifest), digest);
  std::string json = images_json();
  auto id_at = json.find("\"id\":\"sha256:");
  ASSERT_NE(id_at, std::string::npos) << json;
  EXPECT_NE(manifest.find("\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" +
                          json.substr(id_at + 6, 71) + "\""),
            std::string::npos)
      << "the config is sent as stored, so its digest is the image id\n" << manifest << "\n" << json;

  ToolResult back = run_tool({"skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                              "docker://" + ref, "oci:" + sub("copied") + ":v1"});
  ASSERT_EQ(back.status, 0) << back.err;
  for (auto& [layer, size] : manifest_layers(manifest)) {
    EXPECT_EQ(read_file(sub("copied") + "/blobs/sha256/" + layer.substr(7)),
              read_file(store() + "/blobs/sha256/" + layer.substr(7)))
        << "layers go up byte for byte as stored";
  }

  RunResult again = tgx({"image", "push", "local", ref});
  ASSERT_EQ(again.status, 0) << describe(again);
  EXPECT_NE(again.out.find("layer 1/1 sha256:"), std::string::npos);
  EXPECT_NE(again.out.find("already in the registry"), std::string::npos) << again.out;

  // Into a second store, and run there.
  std::string other = sub("store2");
  RunResult pulled = tgx({"image", "pull", ref, "--name", "copy"}, {}, 120, other);
  ASSERT_EQ(pulled.status, 0) << describe(pulled);
  EXPECT_EQ(lines_of(pulled.out).back().substr(5), json.substr(id_at + 13, 12));
  RunResult created = togo(other, {"create", "e2", "--image", "copy"}, opts());
  ASSERT_EQ(created.status, 0) << describe(created);
  RunResult in = togo(other, {"run", "e2", "--", "sh", "-c", ". /etc/os-release; echo $ID"}, opts());
  EXPECT_EQ(in.out, "togotest\n") << describe(in);

  RunResult nothing = tgx({"image", "push", "no-such-image", ref});
  EXPECT_TRUE(error_line(nothing, 3, {"image no-such-image: no such image"}));

  // A stored blob that rotted is caught while it is read to be sent, and
  // no manifest names it.
  auto blobs = list_dir(store() + "/blobs/sha256");
  ASSERT_EQ(blobs.size(), 1u);
  std::string blob = store() + "/blobs/sha256/" + blobs[0];
  std::string bytes = read_file(blob).value_or("");
  ASSERT_GT(bytes.size(), 100u);
  bytes[100] ^= 1;
  ::chmod(blob.c_str(), 0644);
  write_file(blob, bytes);
  RunResult rotten = tgx({"image", "push", "local", reg() + "/test/rotten:v1"});
  EXPECT_TRUE(error_line(rotten, 5, {"image push: layer 1/1 of local: the stored blob is damaged"}));
  EXPECT_NE(rotten.err.find("togo: hint: run `togo fsck`"), std::string::npos) << rotten.err;
  EXPECT_NE(inspect_raw("test/rotten:v1").status, 0) << "a manifest names the rotten blob";
  // Cut short, it is caught before anything is sent.
  bytes.resize(bytes.size() / 2);
  write_file(blob, bytes);
  RunResult cut = tgx({"image", "push", "local", reg() + "/test/rotten:v1"});
  EXPECT_TRUE(error_line(cut, 5, {"image push: layer 1/1 of local: the stored blob is damaged (" +
                                  std::to_string(bytes.size()) + " bytes, expected "}));
}

TEST_P(PullTest, AnXzLayerIsPushedUncompressed) {
  RunResult xz = run({"sh", "-c", "gzip -dc \"$0\" | xz -0 -T1 > \"$1\"", test_rootfs_tar(), sub("rootfs.tar.xz")});
  ASSERT_EQ(xz.status, 0) << describe(xz);
  ::chmod(sub("rootfs.tar.xz").c_str(), 0644);
  ASSERT_NO_FATAL_FAILURE(import_image(sub("rootfs.tar.xz"), "xzimg"));
  std::string ref = reg() + "/test/xz-" + std::string(rootless() ? "rootless" : "root") + ":v1";
  RunResult pushed = tgx({"image", "push", "xzimg", ref});
  ASSERT_EQ(pushed.status, 0) << describe(pushed);
  EXPECT_NE(pushed.err.find("sending it uncompressed"), std::string::npos) << pushed.err;
  std::string manifest = raw_manifest(ref.substr(reg().size() + 1));
  EXPECT_NE(manifest.find("\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\""), std::string::npos) << manifest;
  std::string other = sub("store2");
  RunResult pulled = tgx({"image", "pull", ref, "--name", "fromxz"}, {}, 120, other);
  ASSERT_EQ(pulled.status, 0) << describe(pulled);
  EXPECT_EQ(image_file("fromxz", "etc/os-release", other), read_file(test_rootfs_dir() + "/etc/os-release"));
}

TEST_P(PullTest, BadInputIsOneErrorAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(import_image(test_rootfs_tar(), "base"));
  std::string before = store_state();
  struct Case {
    std::string scenario;
    int status;
    std::vector<std::string> needles;
    std::vector<std::string> flags = {};
  };
  const Case cases[] = {
      {"digest-mismatch", 5, {"layer 1/1", "digest mismatch (the data hashes to sha256:"}},
      {"truncated", 1, {"layer 1/1", "blob sha256:"}},
      {"wrong-media-type", 5, {"manifest v1: unsupported media type \"application/vnd.oci.image.config.v1+json\""}},
      {"no-platform", 5, {"manifest v1: no linux/", "image in the index (it has linux/arm64/v8, linux/s390x)"}},
      {"garbage", 5, {"answer from 127.0.0.1:"}},
      {"stall", 1, {"layer 1/1", "timed out after 2 s"}},
      {"bad-diff-id", 5, {"layer 1/1", "uncompressed content hashes to sha256:"}, {"--unpack"}},
      {"wrong-content-digest", 5, {"manifest v1: digest mismatch (the registry names it sha256:"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.scenario);
    FakeServer fake({"serve", c.scenario});
    ASSERT_FALSE(fake.port.empty()) << fake.proc.err();
    std::vector<std::string> needles = c.needles;
    needles.push_back("pulling " + fake.host() + "/test/img: ");
    auto start = std::chrono::steady_clock::now();
    std::vector<std::string> args = {"image", "pull", fake.host() + "/test/img:v1"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    RunResult r = tgx(args, {"TOGO_HTTP_TIMEOUT=2"}, 60);
    EXPECT_TRUE(error_line(r, c.status, needles));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
    EXPECT_EQ(store_state(), before);
  }
  // The same server, behaving, is pulled: the failures above are the spoilage's.
  FakeServer good({"serve", "good"});
  RunResult ok = tgx({"image", "pull", good.host() + "/test/img:v1", "--name", "fake"});
  ASSERT_EQ(ok.status, 0) << describe(ok);
  EXPECT_EQ(image_file("fake", "hello").value_or("").substr(0, 29), "hello from the fake registry\n");
  RunResult timeout = tgx({"image", "pull", good.host() + "/test/img:v1"}, {"TOGO_HTTP_TIMEOUT=soon"});
  EXPECT_TRUE(error_line(timeout, 2, {"TOGO_HTTP_TIMEOUT=soon"}));
}

TEST_P(PullTest, BearerTokensAndARepeatedLayerAreFine) {
  FakeServer bearer({"serve", "bearer"});
  ASSERT_FALSE(bearer.port.empty()) << bearer.proc.err();
  RunResult r = tgx({"image", "pull", bearer.host() + "/test/img:v1", "--name", "token"});
  ASSERT_EQ(r.status, 0) << describe(r) << bearer.proc.err();
  EXPECT_EQ(image_file("token", "hello").value_or("").substr(0, 29), "hello from the fake registry\n");

  FakeServer dup({"serve", "dup-layers"});
  ASSERT_FALSE(dup.port.empty()) << dup.proc.err();
  r = tgx({"image", "pull", dup.host() + "/test/img:v1", "--name", "dup"});
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(lines_of(r.out).size(), 2u) << "one download for both\n" << r.out;
  EXPECT_EQ(list_dir(store() + "/blobs/sha256").size(), 1u);
  std::string json = images_json();
  std::string layer = "\"sha256:" + list_dir(store() + "/blobs/sha256")[0] + "\"";
  EXPECT_NE(json.find("\"layers\":[" + layer + "," + layer + "]"), std::string::npos) << json;
}

TEST_P(PullTest, GcRemovesAbandonedPartialDownloadsOnly) {
  ASSERT_NO_FATAL_FAILURE(publish_busy());
  RunResult r = tgx({"image", "pull", reg() + "/test/busy:v1", "--name", "busy"});
  ASSERT_EQ(r.status, 0) << describe(r);
  std::string dir = store() + "/tmp/downloads/";
  write_file(dir + "abandoned.partial", "half a blob");
  write_file(dir + "held.partial", "being written");
  Background holder({"/usr/bin/flock", dir + "held.partial", "sleep", "30"}, std::nullopt);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (run({"flock", "-n", dir + "held.partial", "true"}).status == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  RunResult gc = tgx({"gc"});
  ASSERT_EQ(gc.status, 0) << describe(gc);
  EXPECT_NE(gc.out.find("removed partial download abandoned (of an interrupted pull)"), std::string::npos)
      << gc.out;
  EXPECT_EQ(partials(), std::vector<std::string>{"held.partial"});
}

}  // namespace
}  // namespace togo::test
