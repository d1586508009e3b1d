// Parsing a recording, and the persistence model: which operations a crash
// at a cut keeps, and the crash states built from that.
#include <fcntl.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include "base/fs.h"
#include "base/sys.h"
#include "crash_state.h"

namespace togo::crashfs {

// ---- the log ----

Result<Log> parse_log(std::string_view text, std::string data_path) {
  Log log;
  log.data_path = std::move(data_path);
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? "" : text.substr(nl + 1);
    line_no++;
    if (line.empty()) continue;
    auto op = parse_op(line);
    if (!op)
      return std::unexpected(std::move(op.error()).context("line " + std::to_string(line_no)));
    switch (op->kind) {
      case OpKind::kRoot:
        log.root_id = op->id;
        break;
      case OpKind::kEntry:
        log.initial.push_back(std::move(*op));
        break;
      case OpKind::kMark:
        log.marks.push_back({op->value, log.ops.size()});
        break;
      default:
        log.ops.push_back(std::move(*op));
        break;
    }
  }
  if (log.root_id == 0) return error(ErrorKind::kBadInput, "the log has no root record");
  return log;
}

Result<Log> load_log(const std::string& path) {
  Fd fd = TRY(sys::open_at(AT_FDCWD, path, O_RDONLY));
  std::string text = TRY(sys::read_all(fd.get(), path));
  return TRY_CTX(parse_log(text, path + ".data"), path);
}

std::optional<size_t> Log::mark(std::string_view label) const {
  for (const Mark& m : marks)
    if (m.label == label) return m.at;
  return std::nullopt;
}

std::string Log::describe(size_t i) const {
  if (i >= ops.size()) return "#" + std::to_string(i) + " (past the end)";
  const Op& op = ops[i];
  std::string s = "#" + std::to_string(i) + " " + op_name(op.kind);
  if (!op.path.empty())
    s += " " + op.path;
  else if (op.id)
    s += " object " + std::to_string(op.id);
  if (op.kind == OpKind::kWrite || op.kind == OpKind::kFallocate)
    s += " off=" + std::to_string(op.offset) + " len=" + std::to_string(op.length);
  if (op.kind == OpKind::kSetattr && (op.set & kSetSize)) s += " size=" + std::to_string(op.size);
  if ((op.kind == OpKind::kFsync || op.kind == OpKind::kFsyncdir) && op.flags) s += " (data)";
  return s;
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kAllApplied:
      return "all-applied";
    case Mode::kDropUnsynced:
      return "drop-unsynced";
    case Mode::kTornLastWrite:
      return "torn-last-write";
    case Mode::kReorder:
      return "reorder";
  }
  return "?";
}

// ---- cut points ----

std::vector<size_t> cut_points(const Log& log, size_t max_cuts) {
  const size_t n = log.ops.size();
  std::vector<size_t> all(n + 1);
  for (size_t i = 0; i <= n; i++) all[i] = i;
  if (max_cuts == 0 || all.size() <= max_cuts) return all;
  max_cuts = std::max<size_t>(max_cuts, 2);
  // The ends and the marks are always cut (a mark is where acknowledged
  // state begins); the budget left goes to barriers, then to the rest.
  std::set<size_t> pinned = {0, n};
  for (const auto& m : log.marks) pinned.insert(m.at);
  std::set<size_t> important = pinned;
  for (size_t i = 0; i < n; i++)
    if (is_barrier(log.ops[i].kind)) important.insert({i, i + 1});
  auto evenly = [](const std::vector<size_t>& from, size_t k) {
    std::set<size_t> out;
    if (k == 1) out.insert(from[from.size() / 2]);
    for (size_t j = 0; k > 1 && j < k; j++) out.insert(from[j * (from.size() - 1) / (k - 1)]);
    return out;
  };
  std::set<size_t> chosen;
  if (important.size() >= max_cuts) {
    chosen = pinned;
    std::vector<size_t> barriers;
    for (size_t c : important)
      if (!pinned.contains(c)) barriers.push_back(c);
    if (max_cuts > chosen.size() && !barriers.empty())
      chosen.merge(evenly(barriers, std::min(max_cuts - chosen.size(), barriers.size())));
  } else {
    chosen = important;
    std::vector<size_t> rest;
    for (size_t c : all)
      if (!important.contains(c)) rest.push_back(c);
    size_t want = std::min(max_cuts - chosen.size(), rest.size());
    if (want == 1)
      chosen.insert(rest[rest.size() / 2]);
    else if (want > 1)
      chosen.merge(evenly(rest, want));
  }
  return {chosen.begin(), chosen.end()};
}

// ---- the model ----

std::vector<bool> persisted(const Log& log, size_t cut, const ModelOptions& options) {
  cut = std::min(cut, log.ops.size());
  std::vector<bool> out(cut, false);
  bool global = false;
  std::unordered_set<uint64_t> full, data, dirs;
  auto synced = [&](uint64_t id) {
    return full.contains(id) || data.contains(id) || dirs.contains(id);
  };
  for (size_t i = cut; i-- > 0;) {
    const Op& op = log.ops[i];
    switch (op.kind) {
      case OpKind::kSync:
      case OpKind::kSyncfs:
        global = true;
        continue;
      case OpKind::kFsync:
        (op.flags ? data : full).insert(op.id);
        continue;
      case OpKind::kFsyncdir:
        dirs.insert(op.id);
        continue;
      default:
        break;
    }
    if (global) {
      out[i] = true;
    } else if (is_namespace_op(op.kind)) {
      bool ok = dirs.contains(op.dir) && (op.kind != OpKind::kRename || dirs.contains(op.new_dir));
      bool makes_entry = op.kind != OpKind::kUnlink && op.kind != OpKind::kRmdir;
      if (!ok && options.fsync_persists_entry && makes_entry) ok = synced(op.id);
      out[i] = ok;
    } else if (is_object_op(op.kind)) {
      bool data_only = op.kind == OpKind::kWrite || op.kind == OpKind::kFallocate ||
                       (op.kind == OpKind::kSetattr && op.set == kSetSize);
      out[i] = full.contains(op.id) || dirs.contains(op.id) || (data_only && data.contains(op.id));
    }
  }
  return out;
}

namespace {

bool replayable(const Op& op) { return is_namespace_op(op.kind) || is_object_op(op.kind); }

// Up to `k` of `from`, evenly spread, the last one always among them.
std::vector<size_t> sample(const std::vector<size_t>& from, size_t k) {
  if (from.size() <= k) return from;
  if (k <= 1) return {from.back()};
  std::vector<size_t> out;
  for (size_t j = 0; j < k; j++)
    out.push_back(from[from.size() - 1 - j * (from.size() - 1) / (k - 1)]);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<size_t> merged(const std::vector<size_t>& a, const std::vector<size_t>& b) {
  std::vector<size_t> out;
  std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

std::vector<CrashState> crash_states(const Log& log, size_t cut, Mode mode,
                                     const ModelOptions& options) {
  cut = std::min(cut, log.ops.size());
  std::vector<bool> kept = persisted(log, cut, options);
  std::vector<size_t> all, kept_ops, lost;
  for (size_t i = 0; i < cut; i++) {
    if (!replayable(log.ops[i])) continue;
    all.push_back(i);
    (kept[i] ? kept_ops : lost).push_back(i);
  }
  auto state = [&](std::vector<size_t> applied, std::string variant) {
    return CrashState{
        .cut = cut, .mode = mode, .applied = std::move(applied), .variant = std::move(variant)};
  };
  std::vector<CrashState> out;
  switch (mode) {
    case Mode::kAllApplied:
      out.push_back(state(all, ""));
      break;
    case Mode::kDropUnsynced:
      out.push_back(state(kept_ops, ""));
      break;
    case Mode::kTornLastWrite: {
      auto last = std::find_if(lost.rbegin(), lost.rend(),
                               [&](size_t i) { return log.ops[i].kind == OpKind::kWrite; });
      if (last == lost.rend() || log.ops[*last].length < 2) break;
      uint64_t len = log.ops[*last].length, s = std::max<uint64_t>(options.sector, 1);
      std::set<uint64_t> keeps = {len / 2 >= s ? len / 2 / s * s : len / 2};
      if (len > s) keeps.insert(s);
      for (uint64_t keep : keeps) {
        CrashState st =
            state(kept_ops, "first " + std::to_string(keep) + " of " + std::to_string(len) +
                                " bytes of #" + std::to_string(*last));
        st.torn_op = *last;
        st.torn_keep = keep;
        out.push_back(std::move(st));
      }
      break;
    }
    case Mode::kReorder: {
      if (lost.empty() || options.max_reorder_states == 0) break;
      std::vector<size_t> names, data;
      for (size_t i : lost) (is_namespace_op(log.ops[i].kind) ? names : data).push_back(i);
      if (!names.empty() && !data.empty())
        out.push_back(
            state(merged(kept_ops, names), "lost namespace operations without lost data"));
      size_t room = options.max_reorder_states - out.size();
      for (size_t u : sample(lost, std::max<size_t>(room / 2, 1))) {
        if (out.size() < options.max_reorder_states)
          out.push_back(
              state(merged(kept_ops, {u}), "only #" + std::to_string(u) + " of the lost"));
        if (out.size() < options.max_reorder_states && lost.size() > 1) {
          std::vector<size_t> rest;
          for (size_t i : lost)
            if (i != u) rest.push_back(i);
          out.push_back(state(merged(kept_ops, rest), "all lost but #" + std::to_string(u)));
        }
      }
      break;
    }
  }
  return out;
}

std::vector<CrashState> all_crash_states(const Log& log, std::span<const Mode> modes,
                                         const ModelOptions& options, size_t max_cuts) {
  std::vector<size_t> cuts = cut_points(log, max_cuts);
  // Keyed by a 64-bit digest of what the state applies, not a copy of it:
  // long logs have many states of many operations.
  auto digest = [](const CrashState& s) {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) {
      h = (h ^ v) * 1099511628211ull;
      h ^= h >> 29;
    };
    for (size_t i : s.applied) mix(i);
    mix(s.torn_op.value_or(SIZE_MAX));
    mix(s.torn_keep);
    return std::make_pair(h, s.applied.size());
  };
  std::set<std::pair<uint64_t, size_t>> seen;
  std::vector<CrashState> out;
  // Latest cut first, so each distinct state keeps its latest cut.
  for (auto c = cuts.rbegin(); c != cuts.rend(); ++c) {
    for (Mode m : modes) {
      for (CrashState& s : crash_states(log, *c, m, options)) {
        if (seen.insert(digest(s)).second) out.push_back(std::move(s));
      }
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const CrashState& a, const CrashState& b) { return a.cut < b.cut; });
  return out;
}

std::string CrashState::describe(const Log& log) const {
  std::string s = "cut " + std::to_string(cut) + " of " + std::to_string(log.ops.size());
  if (cut > 0) s += " (after " + log.describe(cut - 1) + ")";
  s += ", ";
  s += mode_name(mode);
  if (!variant.empty()) s += " (" + variant + ")";
  s += ": " + std::to_string(applied.size()) + " operations applied";
  return s;
}

}  // namespace togo::crashfs
