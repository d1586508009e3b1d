#include "base/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace togo::json {
namespace {

using namespace std::string_literals;

Value must_parse(std::string_view text) {
  auto v = parse(text);
  EXPECT_TRUE(v.has_value()) << text << ": " << (v ? "" : v.error().message);
  return v ? *v : Value();
}

void expect_invalid(std::string_view text, std::string_view why_part) {
  auto v = parse(text);
  ASSERT_FALSE(v.has_value()) << "accepted: " << text;
  EXPECT_EQ(v.error().kind, ErrorKind::kBadInput);
  EXPECT_TRUE(v.error().message.starts_with("invalid JSON at byte ")) << v.error().message;
  EXPECT_NE(v.error().message.find(why_part), std::string::npos)
      << text << " -> " << v.error().message;
}

TEST(JsonParse, Scalars) {
  EXPECT_TRUE(must_parse("null").is_null());
  EXPECT_TRUE(must_parse(" true ").as_bool());
  EXPECT_FALSE(must_parse("false").as_bool());
  EXPECT_TRUE(must_parse("false").is_bool());
  EXPECT_EQ(must_parse("\"hi\"").as_string(), "hi");
  EXPECT_EQ(must_parse("42").as_int(), 42);
  EXPECT_TRUE(must_parse("42").is_integer());
  EXPECT_EQ(must_parse("-7").as_int(), -7);
  EXPECT_TRUE(must_parse("-0").is_integer());
  EXPECT_DOUBLE_EQ(must_parse("1.5").as_double(), 1.5);
  EXPECT_FALSE(must_parse("1.0").is_integer());
  EXPECT_FALSE(must_parse("1e3").is_integer());
  EXPECT_DOUBLE_EQ(must_parse("1e3").as_double(), 1000);
  EXPECT_DOUBLE_EQ(must_parse("-2.5E-2").as_double(), -0.025);
}

TEST(JsonParse, IntegersExactToInt64) {
  auto v = must_parse("9223372036854775807");
  EXPECT_TRUE(v.is_integer());
  EXPECT_EQ(v.as_int(), std::numeric_limits<int64_t>::max());
  v = must_parse("-9223372036854775808");
  EXPECT_TRUE(v.is_integer());
  EXPECT_EQ(v.as_int(), std::numeric_limits<int64_t>::min());
  // Beyond int64: a number, but not an integer; as_int clamps.
  v = must_parse("9223372036854775808");
  EXPECT_TRUE(v.is_number());
  EXPECT_FALSE(v.is_integer());
  EXPECT_EQ(v.as_int(), std::numeric_limits<int64_t>::max());
  v = must_parse("123456789012345678901234567890");
  EXPECT_FALSE(v.is_integer());
  EXPECT_DOUBLE_EQ(v.as_double(), 1.2345678901234568e29);
}

TEST(JsonParse, HugeAndTinyNumbers) {
  expect_invalid("1e400", "number out of range");
  expect_invalid("-1e99999999999999999999", "number out of range");
  expect_invalid("[" + std::string(400, '9') + "]", "number out of range");
  EXPECT_EQ(must_parse("1e-400").as_double(), 0.0);
  EXPECT_EQ(must_parse("0." + std::string(400, '0') + "1").as_double(), 0.0);
  EXPECT_EQ(must_parse("1e-99999999999999999999").as_double(), 0.0);
  EXPECT_DOUBLE_EQ(must_parse("1.7976931348623157e308").as_double(),
                   std::numeric_limits<double>::max());
}

TEST(JsonParse, BadNumbers) {
  for (std::string t : {"01", "-", "+1", ".5", "1.", "1e", "1e+", "0x10", "- 1", "1.e3", "NaN",
                        "Infinity", "-Infinity"})
    EXPECT_FALSE(parse(t).has_value()) << t;
}

TEST(JsonParse, ArraysAndObjects) {
  auto v = must_parse(R"( { "a" : [1, "two", null, {"x": true}], "b": {} , "c": [] } )");
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.members().size(), 3u);
  EXPECT_EQ(v.members()[0].first, "a");
  const Value* a = v.find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items().size(), 4u);
  EXPECT_EQ(a->items()[1].as_string(), "two");
  EXPECT_TRUE(a->items()[3].find("x")->as_bool());
  EXPECT_TRUE(v.find("b")->is_object());
  EXPECT_TRUE(v.find("c")->is_array());
  EXPECT_EQ(v.find("nope"), nullptr);
}

TEST(JsonParse, DuplicateKeysLastWins) {
  auto v = must_parse(R"({"a":1,"b":2,"a":3})");
  ASSERT_EQ(v.members().size(), 2u);
  EXPECT_EQ(v.members()[0].first, "a");
  EXPECT_EQ(v.find("a")->as_int(), 3);
  // Many keys: the indexed path, same rule.
  std::string big = "{";
  for (int i = 0; i < 100; i++) big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  big += "\"k5\":500,\"k50\":5000}";
  v = must_parse(big);
  EXPECT_EQ(v.members().size(), 100u);
  EXPECT_EQ(v.find("k5")->as_int(), 500);
  EXPECT_EQ(v.find("k50")->as_int(), 5000);
  EXPECT_EQ(v.members()[50].first, "k50");
}

TEST(JsonParse, ManyKeysIsFast) {
  // 200k distinct keys: quadratic duplicate checks would take minutes.
  std::string big = "{";
  for (int i = 0; i < 200000; i++) big += "\"" + std::to_string(i) + "\":0,";
  big += "\"0\":1}";
  auto v = parse(big);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->size(), 200000u);
  EXPECT_EQ(v->find("0")->as_int(), 1);
}

TEST(JsonParse, StringEscapes) {
  EXPECT_EQ(must_parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string(), "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(must_parse(R"("\u0041\u00e9\u20AC")").as_string(), "A\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(must_parse(R"("\ud83d\ude00")").as_string(), "\xf0\x9f\x98\x80");
  EXPECT_EQ(must_parse(R"("\u0000")").as_string(), "\0"s);
  // Raw UTF-8 passes through.
  EXPECT_EQ(must_parse("\"\xc3\xa9\xf0\x9f\x98\x80\"").as_string(), "\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(JsonParse, BadStrings) {
  expect_invalid(R"("\x")", "bad escape");
  expect_invalid(R"("\u12")", "\\u escape");
  expect_invalid(R"("\u12g4")", "bad \\u escape");
  expect_invalid(R"("\ud83d")", "lone high surrogate");
  expect_invalid(R"("\ud83dx")", "lone high surrogate");
  expect_invalid(R"("\ud83d\u0041")", "not followed by a low one");
  expect_invalid(R"("\ude00")", "lone low surrogate");
  expect_invalid("\"a\nb\"", "control character");
  expect_invalid("\"a\tb\"", "control character");
  expect_invalid("\"a\0b\""s, "control character");
  expect_invalid("\"abc", "unterminated string");
  expect_invalid("\"abc\\", "unterminated escape");
  expect_invalid("'abc'", "unexpected");
}

TEST(JsonParse, BadUtf8) {
  expect_invalid("\"\xff\"", "invalid UTF-8");
  expect_invalid("\"\xc3\"", "invalid UTF-8");            // truncated
  expect_invalid("\"\xc0\xaf\"", "invalid UTF-8");        // overlong '/'
  expect_invalid("\"\xe0\x80\xaf\"", "invalid UTF-8");    // overlong
  expect_invalid("\"\xed\xa0\x80\"", "invalid UTF-8");    // encoded surrogate
  expect_invalid("\"\xf4\x90\x80\x80\"", "invalid UTF-8");  // above U+10FFFF
  expect_invalid("\"\x80\"", "invalid UTF-8");            // stray continuation
  expect_invalid("\xef\xbb\xbf{}", "unexpected");          // BOM
}

TEST(JsonParse, Structure) {
  expect_invalid("", "unexpected end");
  expect_invalid("   ", "unexpected end");
  expect_invalid("{} {}", "unexpected data after the value");
  expect_invalid("[1,]", "expected a value");
  expect_invalid("[1 2]", "expected ',' or ']'");
  expect_invalid("{\"a\":1,}", "expected a string key");
  expect_invalid("{\"a\" 1}", "expected ':'");
  expect_invalid("{a:1}", "expected a string key");
  expect_invalid("[", "unexpected end");
  expect_invalid("tru", "expected a value");
  expect_invalid("nul", "expected a value");
  expect_invalid("[1]x", "unexpected data after the value");
  expect_invalid("[1]\v", "unexpected data");
}

TEST(JsonParse, ErrorsNameTheByte) {
  auto v = parse("[1, 2, x]");
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().message, "invalid JSON at byte 7: unexpected 'x', expected a value");
}

TEST(JsonParse, TruncatedDocuments) {
  std::string doc = R"({"schemaVersion":2,"layers":[{"digest":"sha256:ab","size":12,"x":"\u00e9"}]})";
  ASSERT_TRUE(parse(doc).has_value());
  for (size_t n = 0; n < doc.size(); n++) {
    auto v = parse(doc.substr(0, n));
    // "2" alone would be a number; no prefix here is a whole document.
    EXPECT_FALSE(v.has_value()) << n;
  }
}

TEST(JsonParse, DepthLimit) {
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(parse(ok).has_value());
  std::string deep = std::string(65, '[') + std::string(65, ']');
  expect_invalid(deep, "nested deeper than 64 levels");
  // Hostile: a million open brackets must not overflow the stack.
  expect_invalid(std::string(1'000'000, '['), "nested deeper");
  std::string objs;
  for (int i = 0; i < 100000; i++) objs += "{\"a\":";
  expect_invalid(objs, "nested deeper");
  EXPECT_TRUE(parse("[[[1]]]", {.max_depth = 3}).has_value());
  EXPECT_FALSE(parse("[[[1]]]", {.max_depth = 2}).has_value());
}

TEST(JsonParse, SizeLimit) {
  auto v = parse("[1,2,3]", {.max_size = 6});
  ASSERT_FALSE(v.has_value());
  EXPECT_NE(v.error().message.find("larger than the limit of 6 bytes"), std::string::npos);
  EXPECT_TRUE(parse("[1,2,3]", {.max_size = 7}).has_value());
}

TEST(JsonParse, SurvivesMutations) {
  // Deterministic byte flips, insertions and cuts of a real-shaped document:
  // every result is either a value that dumps and parses again, or an error.
  const std::string doc =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
      R"({"digest":"sha256:abc","size":1017,"platform":{"architecture":"arm","variant":"v7"},)"
      R"("annotations":{"k":"\u00e9\ud83d\ude00"}},[1.5e3,-0,true,false,null]]})";
  const std::string alphabet = "{}[]\",:\\u0123456789eE.-+ tfnul\x80\xc3\xed\xf4\0"s;
  uint64_t seed = 42;
  auto next = [&] {
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    return seed >> 33;
  };
  for (int i = 0; i < 20000; i++) {
    std::string t = doc;
    for (int n = next() % 4 + 1; n > 0; n--) {
      size_t at = next() % t.size();
      char c = alphabet[next() % alphabet.size()];
      switch (next() % 3) {
        case 0: t[at] = c; break;
        case 1: t.insert(t.begin() + at, c); break;
        case 2: t.resize(at + 1); break;
      }
    }
    auto v = parse(t);
    if (v) {
      EXPECT_TRUE(parse(dump(*v)).has_value()) << t;
    }
  }
}

TEST(JsonDump, Compact) {
  auto v = must_parse(R"( { "b" : [ 1 , -2, 1.5, true, null ], "a": { "x": "y" } } )");
  EXPECT_EQ(dump(v), R"({"b":[1,-2,1.5,true,null],"a":{"x":"y"}})");
  EXPECT_EQ(dump(Value()), "null");
  EXPECT_EQ(dump(Value::array()), "[]");
  EXPECT_EQ(dump(Value::object()), "{}");
}

TEST(JsonDump, EscapesStrings) {
  EXPECT_EQ(dump(Value("a\"b\\c\n\t\x01\x1f\x7f/")), R"("a\"b\\c\n\t\u0001\u001f)" "\x7f/\"");
  EXPECT_EQ(dump(Value("\xc3\xa9\xf0\x9f\x98\x80")), "\"\xc3\xa9\xf0\x9f\x98\x80\"");
  EXPECT_EQ(dump(Value("\0"s)), R"("\u0000")");
  // Invalid UTF-8 never makes invalid JSON.
  EXPECT_EQ(dump(Value("a\xff" "b")), "\"a\xef\xbf\xbd" "b\"");
  EXPECT_TRUE(parse(dump(Value("\xc3\x28\xed\xa0\x80"))).has_value());
}

TEST(JsonDump, Numbers) {
  EXPECT_EQ(dump(Value(int64_t{9223372036854775807})), "9223372036854775807");
  EXPECT_EQ(dump(Value(uint64_t{18446744073709551615u})), "18446744073709551616");
  EXPECT_EQ(dump(Value(0.1)), "0.1");
  EXPECT_EQ(dump(Value(3.0)), "3");
  EXPECT_EQ(dump(Value(std::numeric_limits<double>::infinity())), "null");
  EXPECT_EQ(dump(Value(std::nan(""))), "null");
  EXPECT_EQ(dump(Value(7u)), "7");
  EXPECT_EQ(dump(Value(static_cast<long long>(-3))), "-3");
  EXPECT_EQ(dump(Value(size_t{12})), "12");
}

TEST(JsonDump, RoundTrips) {
  std::string doc =
      R"({"a":[1,2.5,-3e-7,"x\u0001\"",{"k":null}],"b":true,"c":"\u00e9\ud83d\ude00","d":1e+300})";
  auto v = must_parse(doc);
  auto again = must_parse(dump(v));
  EXPECT_EQ(v, again);
  EXPECT_EQ(dump(v), dump(again));
}

TEST(JsonValue, BuildAndMutate) {
  Value o = Value::object();
  o.set("name", "x").set("size", 12).set("ok", true).set("list", Value::array());
  o.find("list")->push(1).push("two");
  o.set("size", int64_t{13});
  EXPECT_EQ(dump(o), R"({"name":"x","size":13,"ok":true,"list":[1,"two"]})");
  EXPECT_TRUE(o.remove("ok"));
  EXPECT_FALSE(o.remove("ok"));
  EXPECT_EQ(dump(o), R"({"name":"x","size":13,"list":[1,"two"]})");
  Value s(std::string_view("sv"));
  EXPECT_EQ(s.as_string(), "sv");
  EXPECT_EQ(Value(std::string("s")).as_string(), "s");
}

TEST(JsonValue, WrongTypeAccessorsDoNotCrash) {
  Value n(5);
  EXPECT_EQ(n.as_string(), "");
  EXPECT_FALSE(n.as_bool());

  const Value& cn = n;
  EXPECT_TRUE(cn.items().empty());
  EXPECT_TRUE(cn.members().empty());
  EXPECT_EQ(cn.find("a"), nullptr);
  EXPECT_EQ(Value("x").as_int(), 0);
  EXPECT_EQ(Value("x").as_double(), 0.0);
  EXPECT_FALSE(Value().is_integer());
  EXPECT_EQ(Value(2.9).as_int(), 2);
  EXPECT_EQ(Value(-1e300).as_int(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(Value(std::nan("")).as_int(), 0);
  // Mutators turn the value into the right kind.
  Value m("str");
  m.push(1);
  EXPECT_EQ(dump(m), "[1]");
  m.set("k", "v");
  EXPECT_EQ(dump(m), R"({"k":"v"})");
}

TEST(JsonValue, Equality) {
  EXPECT_EQ(must_parse("1"), must_parse("1.0"));
  EXPECT_NE(must_parse("[1]"), must_parse("[2]"));
  EXPECT_NE(must_parse(R"({"a":1,"b":2})"), must_parse(R"({"b":2,"a":1})"));
  EXPECT_NE(Value("1"), Value(1));
}

TEST(JsonGet, Strings) {
  auto o = must_parse(R"({"s":"x","n":1,"z":null,"arr":["a","b"],"bad":["a",2],"m":{"k":"v"}})");
  EXPECT_EQ(*get_string(o, "s"), "x");
  auto e = get_string(o, "n");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(e.error().message, "n: expected a string, got a number");
  EXPECT_EQ(get_string(o, "nope").error().message, "nope: missing");
  EXPECT_EQ(get_string(o, "z").error().message, "z: expected a string, got null");
  EXPECT_EQ(*get_optional_string(o, "z"), std::nullopt);
  EXPECT_EQ(*get_optional_string(o, "nope"), std::nullopt);
  EXPECT_EQ(**get_optional_string(o, "s"), "x");
  EXPECT_FALSE(get_optional_string(o, "n").has_value());
  EXPECT_EQ(*get_string_or_empty(o, "nope"), "");
  EXPECT_EQ(*get_string_array(o, "arr"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(get_string_array(o, "bad").error().message, "bad[1]: expected a string, got a number");
  EXPECT_EQ(get_string_array(o, "s").error().message, "s: expected an array, got a string");
  EXPECT_EQ(*get_optional_string_array(o, "z"), std::nullopt);
  EXPECT_EQ(get_string_map(o, "m")->at("k"), "v");
  EXPECT_TRUE(get_string_map(o, "z")->empty());
  EXPECT_EQ(get_string_map(o, "s").error().message, "s: expected an object, got a string");
  // Not an object: every key is absent.
  EXPECT_EQ(get_string(Value(1), "s").error().message, "s: missing");
}

TEST(JsonGet, NumbersAndContainers) {
  auto o = must_parse(R"({"i":12,"f":1.5,"big":1e30,"neg":-4,"b":true,"o":{},"a":[],"z":null})");
  EXPECT_EQ(*get_int(o, "i"), 12);
  EXPECT_EQ(*get_int(o, "neg"), -4);
  EXPECT_EQ(get_int(o, "f").error().message, "f: expected an integer, got a number");
  EXPECT_FALSE(get_int(o, "big").has_value());
  EXPECT_EQ(*get_optional_int(o, "z"), std::nullopt);
  EXPECT_EQ(**get_optional_bool(o, "b"), true);
  EXPECT_FALSE(get_optional_bool(o, "i").has_value());
  EXPECT_TRUE((*get_object(o, "o"))->is_object());
  EXPECT_FALSE(get_object(o, "a").has_value());
  EXPECT_EQ(*get_optional_object(o, "z"), nullptr);
  EXPECT_TRUE((*get_array(o, "a"))->is_array());
  EXPECT_EQ(get_array(o, "o").error().message, "o: expected an array, got an object");
  EXPECT_EQ(*get_optional_array(o, "nope"), nullptr);
  EXPECT_TRUE(expect_object(o, "doc").has_value());
  EXPECT_EQ(expect_object(Value::array(), "doc").error().message,
            "doc: expected an object, got an array");
}

TEST(JsonGet, Builders) {
  EXPECT_EQ(dump(string_array({"a", "b"})), R"(["a","b"])");
  EXPECT_EQ(dump(string_map({{"z", "1"}, {"a", "2"}})), R"({"a":"2","z":"1"})");
}

}  // namespace
}  // namespace togo::json
