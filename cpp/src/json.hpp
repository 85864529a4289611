#pragma once
// Minimal JSON reader for manifest.json (private to the library).
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fastsam::json {

class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Type type = Type::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::map<std::string, Value> object;

  bool is_object() const { return type == Type::kObject; }
  bool is_array() const { return type == Type::kArray; }
  bool is_string() const { return type == Type::kString; }
  bool is_number() const { return type == Type::kNumber; }
  // nullptr when absent or not an object.
  const Value* find(const std::string& key) const;
};

// Throws std::runtime_error with the byte offset on malformed input.
Value parse(const std::string& text);

}  // namespace fastsam::json
