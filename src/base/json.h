// A small strict JSON (RFC 8259) value, parser and writer, plus typed
// getters that turn a missing or mistyped field into a one-line error.
// Made for documents from outside (registries, archives, image configs):
// parsing is bounded in depth and size and never crashes on hostile input.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "base/error.h"

namespace togo::json {

/// One JSON value. Objects keep their members in order (a key appears once:
/// set() replaces in place). Accessors never crash on the wrong type: the
/// const ones return false, 0, "" or an empty list; the mutating ones (items(),
/// set(), push()) first turn a value of another type into an empty array or
/// object.
class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Array = std::vector<Value>;
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;

  Value() = default;  // null
  Value(bool b) : data_(b) {}
  Value(int64_t n) : data_(Number{n, static_cast<double>(n), true}) {}
  Value(int n) : Value(static_cast<int64_t>(n)) {}
  Value(uint64_t n);
  /// Any other integer type (unsigned, long long, ...).
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  Value(T n) {
    if constexpr (std::is_signed_v<T>)
      *this = Value(static_cast<int64_t>(n));
    else
      *this = Value(static_cast<uint64_t>(n));
  }
  Value(double d) : data_(Number{0, d, false}) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(const char* s) : data_(std::string(s ? s : "")) {}
  Value(std::string_view s) : data_(std::string(s)) {}

  static Value array();
  static Value object();

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_number() const { return type() == Type::kNumber; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  bool as_bool() const;
  /// An integral number exactly; other numbers truncated toward zero and
  /// clamped to the int64 range; 0 for anything else.
  int64_t as_int() const;
  /// A number written without fraction or exponent that fits int64.
  bool is_integer() const;
  double as_double() const;
  const std::string& as_string() const;

  const Array& items() const;
  Array& items();
  const Object& members() const;
  /// Elements of an array or members of an object; 0 otherwise.
  size_t size() const;

  /// The member called `key`; nullptr if absent or not an object.
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  /// Object: replaces the member in place, or appends it. Returns *this.
  Value& set(std::string key, Value v);
  /// Removes the member called `key`; false if there was none.
  bool remove(std::string_view key);
  /// Array append. Returns *this.
  Value& push(Value v);

  /// Deep equality; numbers compare by value, members in order.
  bool operator==(const Value& other) const;

 private:
  struct Number {
    int64_t i = 0;
    double d = 0;
    bool integer = false;
    bool operator==(const Number&) const = default;
  };

  // The order matches Type.
  std::variant<std::monostate, bool, Number, std::string, Array, Object> data_;

  friend class Parser;
  friend Value string_map(const std::map<std::string, std::string>& members);
};

/// Bounds for parsing untrusted text.
struct ParseLimits {
  size_t max_depth = 64;          // nested arrays and objects
  size_t max_size = 16u << 20;    // bytes of text
};

/// Parses one JSON text (any value, surrounded by optional whitespace).
/// Errors are kBadInput "invalid JSON at byte N: <why>": trailing garbage, bad
/// escapes, lone surrogates, invalid UTF-8, control characters in strings,
/// numbers out of the double range, depth or size over the limits.
/// Duplicate keys are allowed; the last one wins.
Result<Value> parse(std::string_view text, ParseLimits limits = {});

/// Compact text with no spaces, members in their order. Strings are escaped
/// per RFC 8259 (\n, \t, ... and \u00XX for other controls; UTF-8 is passed
/// through, invalid UTF-8 becomes U+FFFD). Non-finite numbers become null.
std::string dump(const Value& v);

/// "a string", "a number", ... for error messages.
std::string_view type_name(Value::Type t);

// Typed getters for reading documents. `obj` must be an object (otherwise
// every key counts as absent). Errors are kBadInput "<key>: missing" or
// "<key>: expected a string, got a number"; callers add where `obj` was.
// The optional variants treat an absent key and a null value alike.

Result<std::string> get_string(const Value& obj, std::string_view key);
Result<std::optional<std::string>> get_optional_string(const Value& obj, std::string_view key);
/// The string, or "" when absent or null.
Result<std::string> get_string_or_empty(const Value& obj, std::string_view key);
/// An integer (is_integer()); fractions, exponents and huge numbers refused.
Result<int64_t> get_int(const Value& obj, std::string_view key);
Result<std::optional<int64_t>> get_optional_int(const Value& obj, std::string_view key);
Result<std::optional<bool>> get_optional_bool(const Value& obj, std::string_view key);
/// An array of strings; an element of another type is "<key>[i]: expected a string ...".
Result<std::vector<std::string>> get_string_array(const Value& obj, std::string_view key);
Result<std::optional<std::vector<std::string>>> get_optional_string_array(
    const Value& obj, std::string_view key);
/// An object whose members are all strings, e.g. labels; empty when absent or null.
Result<std::map<std::string, std::string>> get_string_map(const Value& obj, std::string_view key);
/// A member that must be an object / array; nullptr from the optional ones
/// when absent or null.
Result<const Value*> get_object(const Value& obj, std::string_view key);
Result<const Value*> get_optional_object(const Value& obj, std::string_view key);
Result<const Value*> get_array(const Value& obj, std::string_view key);
Result<const Value*> get_optional_array(const Value& obj, std::string_view key);

/// kBadInput "<what>: expected an object, got ..." unless `v` is an object.
Result<void> expect_object(const Value& v, std::string_view what);

/// A JSON array of strings.
Value string_array(const std::vector<std::string>& items);
/// A JSON object of string members, in the map's (sorted) order.
Value string_map(const std::map<std::string, std::string>& members);

}  // namespace togo::json
