#pragma once
// A tiny test harness: TEST(name) registers a function; CHECK* record failures; main runs all and reports
// "N passed, N failed".
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace harness {

struct Registry {
  std::vector<std::pair<std::string, std::function<void()>>> tests;
  int failures_in_current = 0;
  static Registry& get() {
    static Registry r;
    return r;
  }
};

struct Register {
  Register(const char* name, std::function<void()> fn) { Registry::get().tests.emplace_back(name, std::move(fn)); }
};

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, what.c_str());
  ++Registry::get().failures_in_current;
}

inline int run_all() {
  int passed = 0, failed = 0;
  for (auto& [name, fn] : Registry::get().tests) {
    Registry::get().failures_in_current = 0;
    try {
      fn();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
    }
    if (Registry::get().failures_in_current == 0) {
      ++passed;
    } else {
      ++failed;
      std::fprintf(stderr, "FAILED %s\n", name.c_str());
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace harness

#define HARNESS_CAT2(a, b) a##b
#define HARNESS_CAT(a, b) HARNESS_CAT2(a, b)
#define TEST(name)                                                          \
  static void name();                                                       \
  static harness::Register HARNESS_CAT(register_, name)(#name, name);       \
  static void name()

#define CHECK(cond) \
  do { if (!(cond)) harness::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); } while (0)

#define CHECK_EQ(a, b)                                                                        \
  do {                                                                                        \
    const auto& va_ = (a);                                                                    \
    const auto& vb_ = (b);                                                                    \
    if (!(va_ == vb_)) {                                                                      \
      std::ostringstream os_;                                                                 \
      os_ << "CHECK_EQ(" #a ", " #b "): " << va_ << " != " << vb_;                            \
      harness::fail(__FILE__, __LINE__, os_.str());                                           \
    }                                                                                         \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                 \
  do {                                                                                        \
    const double va_ = (a), vb_ = (b);                                                        \
    if (!(std::fabs(va_ - vb_) <= (tol))) {                                                   \
      std::ostringstream os_;                                                                 \
      os_ << "CHECK_NEAR(" #a ", " #b "): " << va_ << " vs " << vb_ << " (tol " << (tol) << ")"; \
      harness::fail(__FILE__, __LINE__, os_.str());                                           \
    }                                                                                         \
  } while (0)

// Checks that `stmt` throws `type` whose what() contains `fragment`.
#define CHECK_THROWS(stmt, type, fragment)                                                    \
  do {                                                                                        \
    bool thrown_ = false;                                                                     \
    try {                                                                                     \
      stmt;                                                                                   \
    } catch (const type& e_) {                                                                \
      thrown_ = true;                                                                         \
      if (std::string(e_.what()).find(fragment) == std::string::npos)                         \
        harness::fail(__FILE__, __LINE__, std::string("message lacks '") + (fragment) + "': " + e_.what()); \
    } catch (const std::exception& e_) {                                                      \
      thrown_ = true;                                                                         \
      harness::fail(__FILE__, __LINE__, std::string("wrong exception type: ") + e_.what());  \
    }                                                                                         \
    if (!thrown_) harness::fail(__FILE__, __LINE__, "no exception from " #stmt);              \
  } while (0)

#define HARNESS_MAIN() \
  int main() { return harness::run_all(); }
