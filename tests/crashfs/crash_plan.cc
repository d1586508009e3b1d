// Planning a replay: a model of the namespace (which names lead to which
// objects) follows the operations a crash state applies, checks that each
// still makes sense where an earlier one was lost, and says where on disk
// each one acts.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>

#include "crash_state.h"

namespace togo::crashfs {
namespace {

class Namespace {
 public:
  explicit Namespace(const Log& log) : root_(log.root_id) {
    objs_[root_].type = S_IFDIR;
    for (const Op& e : log.initial) add(e.dir, e.name, e.id, e.mode & S_IFMT);
  }

  bool live(uint64_t id) const {
    if (id == root_) return true;
    auto it = objs_.find(id);
    return it != objs_.end() && !it->second.links.empty();
  }
  mode_t type(uint64_t id) const {
    auto it = objs_.find(id);
    return it == objs_.end() ? 0 : it->second.type;
  }
  bool live_dir(uint64_t id) const { return live(id) && S_ISDIR(type(id)) && path(id); }
  size_t children(uint64_t id) const {
    auto it = objs_.find(id);
    return it == objs_.end() ? 0 : it->second.children;
  }
  /// The object `dir`/`name` names, 0 if none.
  uint64_t at(uint64_t dir, const std::string& name) const {
    auto it = entries_.find({dir, name});
    return it == entries_.end() ? 0 : it->second;
  }
  void add(uint64_t dir, const std::string& name, uint64_t id, mode_t type) {
    entries_[{dir, name}] = id;
    Obj& o = objs_[id];
    if (type) o.type = type;
    o.links.push_back({dir, name});
    objs_[dir].children++;
  }
  void remove(uint64_t dir, const std::string& name) {
    auto it = entries_.find({dir, name});
    if (it == entries_.end()) return;
    auto& links = objs_[it->second].links;
    std::erase(links, std::make_pair(dir, name));
    objs_[dir].children--;
    entries_.erase(it);
  }
  /// The components leading to directory `id`, or nullopt if it is not
  /// reachable from the root.
  std::optional<std::vector<std::string>> path(uint64_t id) const {
    std::vector<std::string> out;
    for (size_t depth = 0; id != root_; depth++) {
      auto it = objs_.find(id);
      if (depth > 4096 || it == objs_.end() || it->second.links.empty()) return std::nullopt;
      out.push_back(it->second.links.front().second);
      id = it->second.links.front().first;
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  /// Where object `id` can be reached: its directory's path and its name
  /// (the root: an empty path and name).
  bool locate(uint64_t id, std::vector<std::string>& dir, std::string& name) const {
    if (id == root_) {
      dir.clear();
      name.clear();
      return true;
    }
    auto it = objs_.find(id);
    if (it == objs_.end()) return false;
    for (const auto& [d, n] : it->second.links) {
      if (auto p = path(d)) {
        dir = std::move(*p);
        name = n;
        return true;
      }
    }
    return false;
  }
  /// True if directory `a` is `b` or one of its ancestors.
  bool contains(uint64_t a, uint64_t b) const {
    for (size_t depth = 0; depth < 4096; depth++) {
      if (a == b) return true;
      if (b == root_) return false;
      auto it = objs_.find(b);
      if (it == objs_.end() || it->second.links.empty()) return false;
      b = it->second.links.front().first;
    }
    return true;
  }

 private:
  struct Obj {
    mode_t type = 0;
    std::vector<std::pair<uint64_t, std::string>> links;
    size_t children = 0;
  };
  uint64_t root_;
  std::unordered_map<uint64_t, Obj> objs_;
  std::map<std::pair<uint64_t, std::string>, uint64_t> entries_;
};

mode_t type_made_by(const Op& op) {
  switch (op.kind) {
    case OpKind::kCreate:
      return S_IFREG;
    case OpKind::kMkdir:
      return S_IFDIR;
    case OpKind::kSymlink:
      return S_IFLNK;
    default:
      return op.mode & S_IFMT;
  }
}

// Why `op` cannot be applied to `ns` now; empty if it can. Fills the step.
std::string check(const Namespace& ns, const Op& op, ReplayStep& step) {
  switch (op.kind) {
    case OpKind::kCreate:
    case OpKind::kMknod:
    case OpKind::kMkdir:
    case OpKind::kSymlink:
    case OpKind::kLink: {
      if (!ns.live_dir(op.dir)) return "its directory is not there";
      if (ns.at(op.dir, op.name)) return "the name is taken";
      if (op.kind == OpKind::kLink) {
        if (!ns.live(op.id) || S_ISDIR(ns.type(op.id)) || !ns.locate(op.id, step.dir2, step.name2))
          return "the object to link is not there";
      } else if (ns.live(op.id)) {
        return "the object already exists";
      }
      step.dir = *ns.path(op.dir);
      step.name = op.name;
      return {};
    }
    case OpKind::kUnlink:
    case OpKind::kRmdir: {
      if (ns.at(op.dir, op.name) != op.id || !ns.live_dir(op.dir)) return "the name is not there";
      bool dir = S_ISDIR(ns.type(op.id));
      if (dir != (op.kind == OpKind::kRmdir)) return "the name is of another type";
      if (dir && ns.children(op.id)) return "the directory is not empty";
      step.dir = *ns.path(op.dir);
      step.name = op.name;
      return {};
    }
    case OpKind::kRename: {
      if (ns.at(op.dir, op.name) != op.id || !ns.live_dir(op.dir)) return "the source is not there";
      if (!ns.live_dir(op.new_dir)) return "the target directory is not there";
      uint64_t there = ns.at(op.new_dir, op.new_name);
      if (there != op.other)
        return there ? "the target is another object" : "the target is not there";
      if (S_ISDIR(ns.type(op.id)) && ns.contains(op.id, op.new_dir))
        return "the target is inside the source";
      if (op.flags & RENAME_EXCHANGE) {
        if (S_ISDIR(ns.type(op.other)) && ns.contains(op.other, op.dir))
          return "the source is inside the target";
      } else if (there && there != op.id) {
        if (S_ISDIR(ns.type(there)) != S_ISDIR(ns.type(op.id)))
          return "the target is of another type";
        if (S_ISDIR(ns.type(there)) && ns.children(there)) return "the target is not empty";
      }
      step.dir = *ns.path(op.dir);
      step.name = op.name;
      step.dir2 = *ns.path(op.new_dir);
      step.name2 = op.new_name;
      return {};
    }
    default:
      if (!ns.locate(op.id, step.dir, step.name)) return "the object is not there";
      if ((op.kind == OpKind::kWrite || op.kind == OpKind::kFallocate ||
           (op.kind == OpKind::kSetattr && (op.set & kSetSize))) &&
          !S_ISREG(ns.type(op.id)))
        return "the object is not a regular file";
      return {};
  }
}

void apply(Namespace& ns, const Op& op) {
  switch (op.kind) {
    case OpKind::kCreate:
    case OpKind::kMknod:
    case OpKind::kMkdir:
    case OpKind::kSymlink:
      ns.add(op.dir, op.name, op.id, type_made_by(op));
      break;
    case OpKind::kLink:
      ns.add(op.dir, op.name, op.id, 0);
      break;
    case OpKind::kUnlink:
    case OpKind::kRmdir:
      ns.remove(op.dir, op.name);
      break;
    case OpKind::kRename:
      // Onto itself, or onto another name of the same object: nothing changes.
      if (op.other == op.id && !(op.flags & RENAME_EXCHANGE)) break;
      ns.remove(op.dir, op.name);
      ns.remove(op.new_dir, op.new_name);
      ns.add(op.new_dir, op.new_name, op.id, 0);
      if (op.flags & RENAME_EXCHANGE)
        ns.add(op.dir, op.name, op.other, 0);
      else if (op.whiteout)
        ns.add(op.dir, op.name, op.whiteout, S_IFCHR);
      break;
    default:
      break;
  }
}

}  // namespace

ReplayPlan plan_replay(const Log& log, const CrashState& state) {
  std::vector<size_t> order = state.applied;
  if (state.torn_op)
    order.insert(std::upper_bound(order.begin(), order.end(), *state.torn_op), *state.torn_op);
  Namespace ns(log);
  ReplayPlan plan;
  for (size_t i : order) {
    if (i >= log.ops.size()) continue;
    const Op& op = log.ops[i];
    if (!is_namespace_op(op.kind) && !is_object_op(op.kind)) continue;
    ReplayStep step{.op = i};
    if (std::string why = check(ns, op, step); !why.empty()) {
      plan.dropped.push_back(log.describe(i) + ": " + why);
      continue;
    }
    if (state.torn_op == i) step.keep = std::min(state.torn_keep, op.length);
    apply(ns, op);
    plan.steps.push_back(std::move(step));
  }
  return plan;
}

}  // namespace togo::crashfs
