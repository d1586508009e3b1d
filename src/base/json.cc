#include "base/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_map>

namespace togo::json {

namespace {

const std::string kEmptyString;
const Value::Array kEmptyArray;
const Value::Object kEmptyObject;

}  // namespace

// ---- Value ----

Value::Value(uint64_t n) {
  if (n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    data_ = Number{static_cast<int64_t>(n), static_cast<double>(n), true};
  else
    data_ = Number{0, static_cast<double>(n), false};
}

Value Value::array() {
  Value v;
  v.data_ = Array{};
  return v;
}

Value Value::object() {
  Value v;
  v.data_ = Object{};
  return v;
}

bool Value::as_bool() const {
  auto* b = std::get_if<bool>(&data_);
  return b && *b;
}

int64_t Value::as_int() const {
  auto* n = std::get_if<Number>(&data_);
  if (!n) return 0;
  if (n->integer) return n->i;
  if (std::isnan(n->d)) return 0;
  // 2^63 is exactly representable; anything at or above it is clamped.
  if (n->d >= 9223372036854775808.0) return std::numeric_limits<int64_t>::max();
  if (n->d <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(n->d);
}

bool Value::is_integer() const {
  auto* n = std::get_if<Number>(&data_);
  return n && n->integer;
}

double Value::as_double() const {
  auto* n = std::get_if<Number>(&data_);
  return n ? n->d : 0.0;
}

const std::string& Value::as_string() const {
  auto* s = std::get_if<std::string>(&data_);
  return s ? *s : kEmptyString;
}

const Value::Array& Value::items() const {
  auto* a = std::get_if<Array>(&data_);
  return a ? *a : kEmptyArray;
}

Value::Array& Value::items() {
  if (!is_array()) data_ = Array{};
  return std::get<Array>(data_);
}

const Value::Object& Value::members() const {
  auto* o = std::get_if<Object>(&data_);
  return o ? *o : kEmptyObject;
}

size_t Value::size() const {
  if (auto* a = std::get_if<Array>(&data_)) return a->size();
  if (auto* o = std::get_if<Object>(&data_)) return o->size();
  return 0;
}

const Value* Value::find(std::string_view key) const {
  auto* o = std::get_if<Object>(&data_);
  if (!o) return nullptr;
  for (auto& [k, v] : *o)
    if (k == key) return &v;
  return nullptr;
}

Value* Value::find(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

Value& Value::set(std::string key, Value v) {
  if (!is_object()) data_ = Object{};
  auto& o = std::get<Object>(data_);
  for (auto& [k, old] : o)
    if (k == key) {
      old = std::move(v);
      return *this;
    }
  o.emplace_back(std::move(key), std::move(v));
  return *this;
}

bool Value::remove(std::string_view key) {
  auto* o = std::get_if<Object>(&data_);
  if (!o) return false;
  for (auto it = o->begin(); it != o->end(); ++it)
    if (it->first == key) {
      o->erase(it);
      return true;
    }
  return false;
}

Value& Value::push(Value v) {
  items().push_back(std::move(v));
  return *this;
}

bool Value::operator==(const Value& other) const {
  if (is_number() && other.is_number()) {
    if (is_integer() && other.is_integer()) return as_int() == other.as_int();
    return as_double() == other.as_double();
  }
  return data_ == other.data_;
}

std::string_view type_name(Value::Type t) {
  switch (t) {
    case Value::Type::kNull: return "null";
    case Value::Type::kBool: return "a boolean";
    case Value::Type::kNumber: return "a number";
    case Value::Type::kString: return "a string";
    case Value::Type::kArray: return "an array";
    case Value::Type::kObject: return "an object";
  }
  return "?";
}

// ---- Parser ----

// A recursive descent parser over the whole text; recursion depth is bounded
// by ParseLimits::max_depth.
class Parser {
 public:
  Parser(std::string_view text, ParseLimits limits) : s_(text), limits_(limits) {}

  Result<Value> run() {
    if (s_.size() > limits_.max_size)
      return fail(limits_.max_size,
                  "document larger than the limit of " + std::to_string(limits_.max_size) +
                      " bytes");
    skip_space();
    Value v = TRY(value(0));
    skip_space();
    if (pos_ != s_.size()) return fail(pos_, "unexpected data after the value");
    return v;
  }

 private:
  std::unexpected<Error> fail(size_t at, const std::string& why) {
    return error(ErrorKind::kBadInput, "invalid JSON at byte " + std::to_string(at) + ": " + why);
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_space() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                         s_[pos_] == '\r'))
      pos_++;
  }

  std::unexpected<Error> unexpected_here(std::string_view wanted) {
    if (at_end()) return fail(pos_, "unexpected end of text, expected " + std::string(wanted));
    unsigned char c = s_[pos_];
    std::string seen;
    if (c >= 0x20 && c < 0x7f) {
      seen = std::string("'") + static_cast<char>(c) + "'";
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", c);
      seen = std::string("byte ") + buf;
    }
    return fail(pos_, "unexpected " + seen + ", expected " + std::string(wanted));
  }

  Result<Value> value(size_t depth) {
    switch (peek()) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': {
        std::string str = TRY(string());
        return Value(std::move(str));
      }
      case 't': return literal("true", Value(true));
      case 'f': return literal("false", Value(false));
      case 'n': return literal("null", Value());
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number();
        return unexpected_here("a value");
    }
  }

  Result<Value> literal(std::string_view word, Value v) {
    if (s_.substr(pos_, word.size()) != word) return unexpected_here("a value");
    pos_ += word.size();
    return v;
  }

  Result<void> enter(size_t depth) {
    if (depth > limits_.max_depth)
      return fail(pos_, "nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    return {};
  }

  Result<Value> array(size_t depth) {
    TRY(enter(depth));
    pos_++;  // '['
    Value out = Value::array();
    auto& items = std::get<Value::Array>(out.data_);
    skip_space();
    if (peek() == ']') {
      pos_++;
      return out;
    }
    for (;;) {
      skip_space();
      items.push_back(TRY(value(depth)));
      skip_space();
      if (peek() == ',') {
        pos_++;
        continue;
      }
      if (peek() == ']') {
        pos_++;
        return out;
      }
      return unexpected_here("',' or ']'");
    }
  }

  Result<Value> object(size_t depth) {
    TRY(enter(depth));
    pos_++;  // '{'
    Value out = Value::object();
    auto& members = std::get<Value::Object>(out.data_);
    // Duplicate keys are found through an index once an object grows, so a
    // hostile object with many keys costs linear time, not quadratic.
    std::unordered_map<std::string, size_t> index;
    skip_space();
    if (peek() == '}') {
      pos_++;
      return out;
    }
    for (;;) {
      skip_space();
      if (peek() != '"') return unexpected_here("a string key");
      std::string key = TRY(string());
      skip_space();
      if (peek() != ':') return unexpected_here("':'");
      pos_++;
      skip_space();
      Value v = TRY(value(depth));
      add_member(members, index, std::move(key), std::move(v));
      skip_space();
      if (peek() == ',') {
        pos_++;
        continue;
      }
      if (peek() == '}') {
        pos_++;
        return out;
      }
      return unexpected_here("',' or '}'");
    }
  }

  static void add_member(Value::Object& members, std::unordered_map<std::string, size_t>& index,
                         std::string key, Value v) {
    constexpr size_t kIndexFrom = 16;
    if (members.size() < kIndexFrom) {
      for (auto& [k, old] : members)
        if (k == key) {
          old = std::move(v);
          return;
        }
    } else {
      if (index.empty())
        for (size_t i = 0; i < members.size(); i++) index.emplace(members[i].first, i);
      auto [it, added] = index.emplace(key, members.size());
      if (!added) {
        members[it->second].second = std::move(v);
        return;
      }
    }
    members.emplace_back(std::move(key), std::move(v));
  }

  Result<Value> number() {
    size_t start = pos_;
    bool integral = true;
    if (peek() == '-') pos_++;
    if (peek() == '0') {
      pos_++;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') pos_++;
    } else {
      return unexpected_here("a digit");
    }
    if (peek() == '.') {
      integral = false;
      pos_++;
      if (!(peek() >= '0' && peek() <= '9')) return unexpected_here("a digit after '.'");
      while (peek() >= '0' && peek() <= '9') pos_++;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      pos_++;
      if (peek() == '+' || peek() == '-') pos_++;
      if (!(peek() >= '0' && peek() <= '9')) return unexpected_here("a digit in the exponent");
      while (peek() >= '0' && peek() <= '9') pos_++;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (integral) {
      int64_t i = 0;
      auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) return Value(i);
      // Too big for int64: kept as a double.
    }
    double d = 0;
    auto r = std::from_chars(first, last, d);
    if (r.ec == std::errc::result_out_of_range) {
      // Underflow reads as zero; overflow has no JSON representation.
      if (!is_underflow(std::string_view(first, last - first)))
        return fail(start, "number out of range");
      return Value(*first == '-' ? -0.0 : 0.0);
    }
    if (r.ec != std::errc() || r.ptr != last) return fail(start, "bad number");
    return Value(d);
  }

  // True if a number that from_chars found out of range is tiny, not huge:
  // its decimal exponent (position of the first significant digit plus the
  // written exponent) is negative.
  static bool is_underflow(std::string_view num) {
    if (!num.empty() && num[0] == '-') num.remove_prefix(1);
    size_t e = num.find_first_of("eE");
    std::string_view mant = num.substr(0, e);
    int64_t exp = 0;
    if (e != std::string_view::npos) {
      std::string_view ex = num.substr(e + 1);
      bool neg = !ex.empty() && ex[0] == '-';
      if (!ex.empty() && (ex[0] == '-' || ex[0] == '+')) ex.remove_prefix(1);
      // Saturate: an exponent with many digits is huge either way.
      for (char c : ex) {
        exp = exp * 10 + (c - '0');
        if (exp > 1000000) break;
      }
      if (neg) exp = -exp;
    }
    size_t dot = mant.find('.');
    std::string_view int_part = mant.substr(0, dot);
    size_t first_sig = mant.find_first_of("123456789");
    if (first_sig == std::string_view::npos) return true;
    int64_t mag;
    if (first_sig < int_part.size())
      mag = static_cast<int64_t>(int_part.size() - first_sig);
    else
      mag = -static_cast<int64_t>(first_sig - dot - 1);
    return mag + exp < 0;
  }

  Result<std::string> string() {
    size_t start = pos_;
    pos_++;  // '"'
    std::string out;
    for (;;) {
      if (at_end()) return fail(start, "unterminated string");
      unsigned char c = s_[pos_];
      if (c == '"') {
        pos_++;
        return out;
      }
      if (c < 0x20) return fail(pos_, "control character in a string");
      if (c == '\\') {
        TRY(escape(out));
        continue;
      }
      if (c < 0x80) {
        out += static_cast<char>(c);
        pos_++;
        continue;
      }
      size_t n = utf8_length(s_.substr(pos_));
      if (n == 0) return fail(pos_, "invalid UTF-8");
      out.append(s_.substr(pos_, n));
      pos_ += n;
    }
  }

  Result<void> escape(std::string& out) {
    size_t at = pos_;
    pos_++;  // '\\'
    if (at_end()) return fail(at, "unterminated escape");
    char c = s_[pos_++];
    switch (c) {
      case '"': out += '"'; return {};
      case '\\': out += '\\'; return {};
      case '/': out += '/'; return {};
      case 'b': out += '\b'; return {};
      case 'f': out += '\f'; return {};
      case 'n': out += '\n'; return {};
      case 'r': out += '\r'; return {};
      case 't': out += '\t'; return {};
      case 'u': break;
      default: return fail(at, "bad escape");
    }
    uint32_t cp = TRY(hex4(at));
    if (cp >= 0xdc00 && cp <= 0xdfff) return fail(at, "lone low surrogate");
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (s_.substr(pos_, 2) != "\\u") return fail(at, "lone high surrogate");
      size_t at2 = pos_;
      pos_ += 2;
      uint32_t lo = TRY(hex4(at2));
      if (lo < 0xdc00 || lo > 0xdfff) return fail(at2, "high surrogate not followed by a low one");
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    append_utf8(out, cp);
    return {};
  }

  Result<uint32_t> hex4(size_t at) {
    if (s_.size() - pos_ < 4) return fail(at, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return fail(at, "bad \\u escape");
    }
    return v;
  }

 public:
  /// The length of the valid UTF-8 sequence at the start of `s` (which starts
  /// with a byte >= 0x80), or 0: no overlong forms, surrogates or code points
  /// above U+10FFFF.
  static size_t utf8_length(std::string_view s) {
    auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xc0) == 0x80; };
    unsigned char c = b(0);
    if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
      if (!cont(1) || !cont(2)) return 0;
      if (c == 0xe0 && b(1) < 0xa0) return 0;   // overlong
      if (c == 0xed && b(1) >= 0xa0) return 0;  // surrogate
      return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
      if (!cont(1) || !cont(2) || !cont(3)) return 0;
      if (c == 0xf0 && b(1) < 0x90) return 0;   // overlong
      if (c == 0xf4 && b(1) >= 0x90) return 0;  // above U+10FFFF
      return 4;
    }
    return 0;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

 private:
  std::string_view s_;
  ParseLimits limits_;
  size_t pos_ = 0;
};

Result<Value> parse(std::string_view text, ParseLimits limits) {
  return Parser(text, limits).run();
}

// ---- Writer ----

namespace {

void dump_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    if (c >= 0x80) {
      size_t n = Parser::utf8_length(s.substr(i));
      if (n == 0) {
        out += "\xef\xbf\xbd";  // U+FFFD for a byte that is not UTF-8
        i++;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    i++;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void dump_number(std::string& out, const Value& v) {
  char buf[32];
  std::to_chars_result r;
  if (v.is_integer()) {
    r = std::to_chars(buf, buf + sizeof buf, v.as_int());
  } else {
    double d = v.as_double();
    if (!std::isfinite(d)) {
      out += "null";
      return;
    }
    r = std::to_chars(buf, buf + sizeof buf, d);  // shortest form that reads back the same
  }
  out.append(buf, r.ptr);
}

void dump_to(std::string& out, const Value& v) {
  switch (v.type()) {
    case Value::Type::kNull: out += "null"; break;
    case Value::Type::kBool: out += v.as_bool() ? "true" : "false"; break;
    case Value::Type::kNumber: dump_number(out, v); break;
    case Value::Type::kString: dump_string(out, v.as_string()); break;
    case Value::Type::kArray: {
      out += '[';
      bool first = true;
      for (auto& item : v.items()) {
        if (!first) out += ',';
        first = false;
        dump_to(out, item);
      }
      out += ']';
      break;
    }
    case Value::Type::kObject: {
      out += '{';
      bool first = true;
      for (auto& [k, item] : v.members()) {
        if (!first) out += ',';
        first = false;
        dump_string(out, k);
        out += ':';
        dump_to(out, item);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string dump(const Value& v) {
  std::string out;
  dump_to(out, v);
  return out;
}

// ---- Typed getters ----

namespace {

std::unexpected<Error> missing(std::string_view key) {
  return error(ErrorKind::kBadInput, std::string(key) + ": missing");
}

std::unexpected<Error> wrong_type(std::string_view what, std::string_view want, const Value& got) {
  return error(ErrorKind::kBadInput, std::string(what) + ": expected " + std::string(want) +
                                         ", got " + std::string(type_name(got.type())));
}

// The member, or nullptr when absent or null.
const Value* present(const Value& obj, std::string_view key) {
  const Value* v = obj.find(key);
  return v && !v->is_null() ? v : nullptr;
}

Result<std::vector<std::string>> strings_of(const Value& arr, std::string_view key) {
  if (!arr.is_array()) return wrong_type(key, "an array", arr);
  std::vector<std::string> out;
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.items().size(); i++) {
    const Value& item = arr.items()[i];
    if (!item.is_string())
      return wrong_type(std::string(key) + "[" + std::to_string(i) + "]", "a string", item);
    out.push_back(item.as_string());
  }
  return out;
}

}  // namespace

Result<std::string> get_string(const Value& obj, std::string_view key) {
  const Value* v = obj.find(key);
  if (!v) return missing(key);
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  return v->as_string();
}

Result<std::optional<std::string>> get_optional_string(const Value& obj, std::string_view key) {
  const Value* v = present(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  return v->as_string();
}

Result<std::string> get_string_or_empty(const Value& obj, std::string_view key) {
  auto s = TRY(get_optional_string(obj, key));
  return s ? std::move(*s) : std::string();
}

Result<int64_t> get_int(const Value& obj, std::string_view key) {
  const Value* v = obj.find(key);
  if (!v) return missing(key);
  if (!v->is_integer()) return wrong_type(key, "an integer", *v);
  return v->as_int();
}

Result<std::optional<int64_t>> get_optional_int(const Value& obj, std::string_view key) {
  const Value* v = present(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_integer()) return wrong_type(key, "an integer", *v);
  return v->as_int();
}

Result<std::optional<bool>> get_optional_bool(const Value& obj, std::string_view key) {
  const Value* v = present(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) return wrong_type(key, "a boolean", *v);
  return v->as_bool();
}

Result<std::vector<std::string>> get_string_array(const Value& obj, std::string_view key) {
  const Value* v = obj.find(key);
  if (!v) return missing(key);
  return strings_of(*v, key);
}

Result<std::optional<std::vector<std::string>>> get_optional_string_array(const Value& obj,
                                                                         std::string_view key) {
  const Value* v = present(obj, key);
  if (!v) return std::nullopt;
  return TRY(strings_of(*v, key));
}

Result<std::map<std::string, std::string>> get_string_map(const Value& obj, std::string_view key) {
  std::map<std::string, std::string> out;
  const Value* v = present(obj, key);
  if (!v) return out;
  if (!v->is_object()) return wrong_type(key, "an object", *v);
  for (auto& [k, item] : v->members()) {
    if (!item.is_string()) return wrong_type(std::string(key) + "." + k, "a string", item);
    out[k] = item.as_string();
  }
  return out;
}

Result<const Value*> get_object(const Value& obj, std::string_view key) {
  const Value* v = obj.find(key);
  if (!v) return missing(key);
  if (!v->is_object()) return wrong_type(key, "an object", *v);
  return v;
}

Result<const Value*> get_optional_object(const Value& obj, std::string_view key) {
  const Value* v = present(obj, key);
  if (v && !v->is_object()) return wrong_type(key, "an object", *v);
  return v;
}

Result<const Value*> get_array(const Value& obj, std::string_view key) {
  const Value* v = obj.find(key);
  if (!v) return missing(key);
  if (!v->is_array()) return wrong_type(key, "an array", *v);
  return v;
}

Result<const Value*> get_optional_array(const Value& obj, std::string_view key) {
  const Value* v = present(obj, key);
  if (v && !v->is_array()) return wrong_type(key, "an array", *v);
  return v;
}

Result<void> expect_object(const Value& v, std::string_view what) {
  if (!v.is_object()) return wrong_type(what, "an object", v);
  return {};
}

Value string_array(const std::vector<std::string>& items) {
  Value out = Value::array();
  for (auto& s : items) out.push(s);
  return out;
}

Value string_map(const std::map<std::string, std::string>& members) {
  Value out = Value::object();
  auto& o = std::get<Value::Object>(out.data_);  // keys are unique: no need to look
  o.reserve(members.size());
  for (auto& [k, v] : members) o.emplace_back(k, Value(v));
  return out;
}

}  // namespace togo::json
