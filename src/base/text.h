// Small text helpers: aligned tables for people, JSON for programs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace togo::text {

/// Rows of cells printed as columns separated by two spaces; the first row is
/// the header. The last column is not padded.
std::string table(const std::vector<std::vector<std::string>>& rows);

/// A JSON string literal, quotes included.
std::string json_quote(std::string_view s);

/// Builds one JSON object, members in the order added.
class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  JsonObject& add(std::string_view key, int64_t value);
  JsonObject& add(std::string_view key, uint64_t value) { return add(key, static_cast<int64_t>(value)); }
  /// A member whose value is already JSON text.
  JsonObject& add_raw(std::string_view key, std::string_view json);
  std::string str() const { return body_ + "}"; }

 private:
  std::string body_ = "{";
};

/// "[a,b]" from items that are already JSON text.
std::string json_array(const std::vector<std::string>& items);
/// "[\"a\",\"b\"]" from plain strings.
std::string json_string_array(const std::vector<std::string>& items);

/// Sizes for people: "512 B", "1.5 KiB", "23.0 MiB".
std::string human_size(uint64_t bytes);

/// "3 seconds ago", "2 days ago" for a Unix time in the past.
std::string ago(int64_t when, int64_t now);

/// `s` as one word for a POSIX shell: as it is when it holds only safe
/// characters, else in single quotes ("/media/my stick" -> "'/media/my stick'").
std::string shell_quote(std::string_view s);
/// Two lowercase hex digits per byte of `bytes`.
std::string hex(std::string_view bytes);
/// Splits on a single character; empty fields are kept.
std::vector<std::string> split(std::string_view s, char sep);

bool starts_with(std::string_view s, std::string_view prefix);

}  // namespace togo::text
