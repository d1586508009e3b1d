#include "crash_fixture.h"

#include "fixture.h"

namespace togo::test {

std::vector<std::string> make_busybox_tars(const std::string& dir, const std::vector<std::string>& names) {
  std::string base = R"(
file('bin/busybox', open('/bin/busybox', 'rb').read(), mode=0o755)
for a in ('sh', 'cat', 'true', 'echo', 'mv'): sym('bin/' + a, 'busybox')
for d in ('etc', 'root', 'tmp', 'proc', 'dev', 'sys'): dir(d)
file('etc/passwd', b'root:x:0:0:root:/root:/bin/sh\n')
file('etc/group', b'root:x:0:\n')
)";
  std::vector<std::string> paths;
  for (size_t i = 0; i < names.size(); i++) {
    std::string path = dir + "/" + names[i] + ".tar";
    make_tar(path, i == 0 ? base : base + "file('etc/" + names[i] + "', b'" + names[i] + "\\n')\n");
    run({"chmod", "644", path});
    paths.push_back(path);
  }
  return paths;
}

std::string fake_mmdebstrap(const std::string& dir, const std::string& tar) {
  std::string bin = dir + "/bin";
  run({"mkdir", "-p", bin});
  write_file(bin + "/mmdebstrap", "#!/bin/sh\nexec /bin/cat " + tar + "\n");
  run({"chmod", "-R", "755", bin});
  return "PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin";
}

std::string push_image(const std::string& dir, const std::string& tar, const std::string& ref,
                       const RunOptions& o) {
  std::string scratch = dir + "/push-store";
  for (std::vector<std::string> step : std::vector<std::vector<std::string>>{
           {"image", "import", tar, "--name", "pushed"}, {"image", "push", "pushed", ref}}) {
    RunResult r = togo(scratch, step, o);
    if (r.status != 0) return step[1] + ": " + describe(r);
  }
  return "";
}

bool fsck_whole(const RunResult& fsck, bool pull_interrupted) {
  if (fsck.status != 0) return false;
  if (contains(fsck.out, ": clean")) return true;
  if (!pull_interrupted) return false;
  bool any = false;
  for (const std::string& line : lines_of(fsck.out)) {
    if (line.starts_with("fsck: ")) continue;
    if (!line.starts_with("leftover  partial download ")) return false;
    any = true;
  }
  return any && contains(fsck.out, " 0 damaged") && contains(fsck.out, "the store is whole");
}

}  // namespace togo::test
