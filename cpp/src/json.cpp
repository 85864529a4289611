#include "json.hpp"

#include <cstdlib>
#include <stdexcept>

namespace fastsam::json {
namespace {

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  Value parse_document() {
    Value v = parse_value(0);
    skip_ws();
    if (p_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON parse error at byte " + std::to_string(p_) + ": " + what);
  }
  void skip_ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\t')) ++p_;
  }
  char peek() {
    skip_ws();
    if (p_ >= s_.size()) fail("unexpected end of input");
    return s_[p_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++p_;
  }
  bool consume_literal(const char* lit) {
    const std::string l(lit);
    if (s_.compare(p_, l.size(), l) == 0) {
      p_ += l.size();
      return true;
    }
    return false;
  }

  Value parse_value(int depth) {
    if (depth > 64) fail("nesting too deep");
    Value v;
    const char c = peek();
    if (c == '{') {
      v.type = Value::Type::kObject;
      ++p_;
      if (peek() == '}') {
        ++p_;
        return v;
      }
      while (true) {
        if (peek() != '"') fail("expected a string key");
        std::string key = parse_string();
        expect(':');
        v.object[key] = parse_value(depth + 1);
        const char d = peek();
        ++p_;
        if (d == '}') break;
        if (d != ',') fail("expected ',' or '}'");
      }
    } else if (c == '[') {
      v.type = Value::Type::kArray;
      ++p_;
      if (peek() == ']') {
        ++p_;
        return v;
      }
      while (true) {
        v.array.push_back(parse_value(depth + 1));
        const char d = peek();
        ++p_;
        if (d == ']') break;
        if (d != ',') fail("expected ',' or ']'");
      }
    } else if (c == '"') {
      v.type = Value::Type::kString;
      v.string = parse_string();
    } else if (consume_literal("true")) {
      v.type = Value::Type::kBool;
      v.boolean = true;
    } else if (consume_literal("false")) {
      v.type = Value::Type::kBool;
    } else if (consume_literal("null")) {
      v.type = Value::Type::kNull;
    } else if (consume_literal("NaN")) {
      v.type = Value::Type::kNumber;
      v.number = std::strtod("nan", nullptr);
    } else {
      const char* begin = s_.c_str() + p_;
      char* end = nullptr;
      v.number = std::strtod(begin, &end);
      if (end == begin) fail("unexpected character");
      v.type = Value::Type::kNumber;
      p_ += static_cast<size_t>(end - begin);
    }
    return v;
  }

  std::string parse_string() {
    ++p_;  // opening quote
    std::string out;
    while (true) {
      if (p_ >= s_.size()) fail("unterminated string");
      const char c = s_[p_++];
      if (c == '"') break;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (p_ >= s_.size()) fail("unterminated escape");
      const char e = s_[p_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (p_ + 4 > s_.size()) fail("short \\u escape");
          // Exactly four hex digits (std::stoul alone would also take a sign or spaces).
          unsigned code = 0;
          for (int i = 0; i < 4; ++i) {
            const char h = s_[p_++];
            const int digit = (h >= '0' && h <= '9') ? h - '0'
                              : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                              : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (digit < 0) fail("invalid \\u escape");
            code = code * 16 + static_cast<unsigned>(digit);
          }
          // Manifest strings are ASCII; other code points are kept as UTF-8 (surrogates unsupported).
          if (code < 0x80) {
            out.push_back(static_cast<char>(code));
          } else if (code < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (code >> 6)));
            out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
          } else {
            out.push_back(static_cast<char>(0xE0 | (code >> 12)));
            out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
          }
          break;
        }
        default: fail("invalid escape");
      }
    }
    return out;
  }

  const std::string& s_;
  size_t p_ = 0;
};

}  // namespace

const Value* Value::find(const std::string& key) const {
  if (type != Type::kObject) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

Value parse(const std::string& text) { return Parser(text).parse_document(); }

}  // namespace fastsam::json
