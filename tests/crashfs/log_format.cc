#include "log_format.h"

#include <charconv>
#include <cstring>
#include <utility>

namespace togo::crashfs {
namespace {

constexpr std::pair<OpKind, const char*> kNames[] = {
    {OpKind::kRoot, "root"},
    {OpKind::kEntry, "entry"},
    {OpKind::kCreate, "create"},
    {OpKind::kMknod, "mknod"},
    {OpKind::kMkdir, "mkdir"},
    {OpKind::kSymlink, "symlink"},
    {OpKind::kLink, "link"},
    {OpKind::kUnlink, "unlink"},
    {OpKind::kRmdir, "rmdir"},
    {OpKind::kRename, "rename"},
    {OpKind::kSetattr, "setattr"},
    {OpKind::kSetxattr, "setxattr"},
    {OpKind::kRemovexattr, "removexattr"},
    {OpKind::kWrite, "write"},
    {OpKind::kFallocate, "fallocate"},
    {OpKind::kFsync, "fsync"},
    {OpKind::kFsyncdir, "fsyncdir"},
    {OpKind::kSyncfs, "syncfs"},
    {OpKind::kSync, "sync"},
    {OpKind::kMark, "mark"},
};

bool plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::strchr("._/+:,-", c) != nullptr;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <typename T>
Result<T> number(std::string_view key, std::string_view v, int base = 10) {
  T out{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out, base);
  if (ec != std::errc() || p != v.data() + v.size())
    return error(ErrorKind::kBadInput, "bad number in " + std::string(key) + "=" + std::string(v));
  return out;
}

// "sec:nsec".
Result<void> parse_time(std::string_view key, std::string_view v, int64_t& sec, int64_t& nsec) {
  size_t colon = v.find(':');
  if (colon == std::string_view::npos)
    return error(ErrorKind::kBadInput, "bad time in " + std::string(key));
  sec = TRY(number<int64_t>(key, v.substr(0, colon)));
  nsec = TRY(number<int64_t>(key, v.substr(colon + 1)));
  return {};
}

class LineWriter {
 public:
  explicit LineWriter(const char* name) : line_(name) {}
  void num(const char* key, uint64_t v) {
    if (v) line_ += std::string(" ") + key + "=" + std::to_string(v);
  }
  void oct(const char* key, uint64_t v) {
    char buf[32];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, 8);
    (void)ec;
    if (v) line_ += std::string(" ") + key + "=" + std::string(buf, p);
  }
  void str(const char* key, const std::string& v) {
    if (!v.empty()) line_ += std::string(" ") + key + "=" + escape(v);
  }
  void time(const char* key, int64_t sec, int64_t nsec) {
    if (sec || nsec)
      line_ += std::string(" ") + key + "=" + std::to_string(sec) + ":" + std::to_string(nsec);
  }
  std::string done() { return std::move(line_) + "\n"; }

 private:
  std::string line_;
};

}  // namespace

const char* op_name(OpKind k) {
  for (auto& [kind, name] : kNames)
    if (kind == k) return name;
  return "?";
}

bool is_namespace_op(OpKind k) { return k >= OpKind::kCreate && k <= OpKind::kRename; }
bool is_object_op(OpKind k) { return k >= OpKind::kSetattr && k <= OpKind::kFallocate; }
bool is_barrier(OpKind k) { return k >= OpKind::kFsync && k <= OpKind::kSync; }

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::string escape(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (plain(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return error(ErrorKind::kBadInput, "bad %-escape in " + std::string(s));
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string format_op(const Op& op) {
  LineWriter w(op_name(op.kind));
  w.num("id", op.id);
  w.num("dir", op.dir);
  w.str("name", op.name);
  w.num("new_dir", op.new_dir);
  w.str("new_name", op.new_name);
  w.num("other", op.other);
  w.num("whiteout", op.whiteout);
  w.num("flags", op.flags);
  w.oct("mode", op.mode);
  w.num("uid", op.uid);
  w.num("gid", op.gid);
  w.num("rdev", op.rdev);
  w.num("set", op.set);
  w.num("size", op.size);
  w.time("atime", op.atime_sec, op.atime_nsec);
  w.time("mtime", op.mtime_sec, op.mtime_nsec);
  w.num("off", op.offset);
  w.num("len", op.length);
  w.num("data", op.data);
  w.str("target", op.target);
  w.str("value", op.value);
  w.str("path", op.path);
  w.num("ino", op.ino);
  return w.done();
}

Result<Op> parse_op(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  Op op;
  size_t sp = line.find(' ');
  std::string_view name = line.substr(0, sp);
  bool known = false;
  for (auto& [kind, n] : kNames)
    if (name == n) op.kind = kind, known = true;
  if (!known) return error(ErrorKind::kBadInput, "unknown record \"" + std::string(name) + "\"");
  std::string_view rest = sp == std::string_view::npos ? "" : line.substr(sp + 1);
  while (!rest.empty()) {
    size_t end = rest.find(' ');
    std::string_view field = rest.substr(0, end);
    rest = end == std::string_view::npos ? "" : rest.substr(end + 1);
    size_t eq = field.find('=');
    if (eq == std::string_view::npos)
      return error(ErrorKind::kBadInput, "field without '=': " + std::string(field));
    std::string_view k = field.substr(0, eq), v = field.substr(eq + 1);
    if (k == "id")
      op.id = TRY(number<uint64_t>(k, v));
    else if (k == "dir")
      op.dir = TRY(number<uint64_t>(k, v));
    else if (k == "name")
      op.name = TRY(unescape(v));
    else if (k == "new_dir")
      op.new_dir = TRY(number<uint64_t>(k, v));
    else if (k == "new_name")
      op.new_name = TRY(unescape(v));
    else if (k == "other")
      op.other = TRY(number<uint64_t>(k, v));
    else if (k == "whiteout")
      op.whiteout = TRY(number<uint64_t>(k, v));
    else if (k == "flags")
      op.flags = TRY(number<uint32_t>(k, v));
    else if (k == "mode")
      op.mode = TRY(number<uint32_t>(k, v, 8));
    else if (k == "uid")
      op.uid = TRY(number<uint32_t>(k, v));
    else if (k == "gid")
      op.gid = TRY(number<uint32_t>(k, v));
    else if (k == "rdev")
      op.rdev = TRY(number<uint64_t>(k, v));
    else if (k == "set")
      op.set = TRY(number<uint32_t>(k, v));
    else if (k == "size")
      op.size = TRY(number<uint64_t>(k, v));
    else if (k == "atime")
      TRY(parse_time(k, v, op.atime_sec, op.atime_nsec));
    else if (k == "mtime")
      TRY(parse_time(k, v, op.mtime_sec, op.mtime_nsec));
    else if (k == "off")
      op.offset = TRY(number<uint64_t>(k, v));
    else if (k == "len")
      op.length = TRY(number<uint64_t>(k, v));
    else if (k == "data")
      op.data = TRY(number<uint64_t>(k, v));
    else if (k == "target")
      op.target = TRY(unescape(v));
    else if (k == "value")
      op.value = TRY(unescape(v));
    else if (k == "path")
      op.path = TRY(unescape(v));
    else if (k == "ino")
      op.ino = TRY(number<uint64_t>(k, v));
    else
      return error(ErrorKind::kBadInput, "unknown field \"" + std::string(k) + "\"");
  }
  // SECURITY: names become path components at replay; they must be single ones.
  if (is_namespace_op(op.kind) || op.kind == OpKind::kEntry) {
    if (!valid_name(op.name))
      return error(ErrorKind::kBadInput,
                   "bad name \"" + escape(op.name) + "\" in " + std::string(name));
    if (op.kind == OpKind::kRename && !valid_name(op.new_name))
      return error(ErrorKind::kBadInput, "bad new_name \"" + escape(op.new_name) + "\"");
    if (op.dir == 0 || op.id == 0 || (op.kind == OpKind::kRename && op.new_dir == 0))
      return error(ErrorKind::kBadInput, std::string(op_name(op.kind)) + " without ids");
  }
  if ((is_object_op(op.kind) || op.kind == OpKind::kRoot || op.kind == OpKind::kFsync ||
       op.kind == OpKind::kFsyncdir) &&
      op.id == 0)
    return error(ErrorKind::kBadInput, std::string(op_name(op.kind)) + " without id");
  return op;
}

}  // namespace togo::crashfs
