// What `togo run` needs of an env (its record and its image's), kept
// beside the catalog so that a run need not open it: SQLite's connect,
// first transaction and schema load are most of a cold run's own time.
//
// The catalog stays the one source of truth. A copy is used only while the
// catalog is settled at the generation the copy was read at: no write
// transaction since (each counts itself in the SQLite header, see
// Catalog::generation) and nothing in its log. Anything else (a newer or
// unsettled catalog, a copy that is damaged, torn or of another format)
// sends the run to the catalog, which writes a new copy. The copies are
// never synced: losing one costs a lookup.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "store/catalog.h"

namespace togo::store {

struct RunRecord {
  EnvRecord env;
  ImageRecord image;
};

/// The catalog's generation as its file says, if it is settled: its log
/// (-wal) is empty, so the database file holds every commit. nullopt if
/// not, or if it cannot be read.
std::optional<uint32_t> settled_generation(int store_fd);

/// The copy for env `name`, if it is whole and of the catalog's settled
/// generation.
std::optional<RunRecord> read_run_record(int store_fd, const std::string& name);

/// Writes the copy for `r.env.name`, read from the catalog at `generation`
/// (in the same read transaction). Failures are ignored: the next run looks
/// in the catalog again.
void write_run_record(int store_fd, uint32_t generation, const RunRecord& r);

}  // namespace togo::store
