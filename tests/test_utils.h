#pragma once
// Helpers shared by the test suites: temporary directories, running the msmedcap binary, and
// the paths of committed test data.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "msmedcap/core/check.h"
#include "msmedcap/core/components.h"

/// Skips the current test when the build lacks `component` (a core::Component enumerator, e.g.
/// kOpenCv): what needs it is tested in the builds that have it.
#define MSMEDCAP_SKIP_WITHOUT(component)                                                                            \
  do {                                                                                                              \
    if (!::msmedcap::core::built_with(::msmedcap::core::Component::component))                                      \
      GTEST_SKIP() << "built without " << ::msmedcap::core::component_name(::msmedcap::core::Component::component); \
  } while (false)

namespace msmedcap::testing {

/// The message of the msmedcap::Error that `f` throws, "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

/// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "msmedcap-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The JSON objects of a JSONL file, one per non-empty line.
inline std::vector<nlohmann::ordered_json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::ordered_json> out;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::ordered_json::parse(line));
  return out;
}

/// Exit code, stdout and stderr of a shell command.
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs `command` through /bin/sh, capturing stdout and stderr separately.
inline RunResult run_command(const std::string& command) {
  TempDir dir;
  const std::string out_path = dir.file("out");
  const std::string err_path = dir.file("err");
  const int status = std::system((command + " >" + out_path + " 2>" + err_path + " </dev/null").c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

#ifdef MSMEDCAP_BINARY
/// Runs the msmedcap binary under test with `args` (the integration suite alone has it).
inline RunResult run_msmedcap(const std::string& args) {
  return run_command(std::string(MSMEDCAP_BINARY) + " " + args);
}
#endif

/// Committed test data (tests/data).
inline std::string data_path(const std::string& relative) {
  return std::string(MSMEDCAP_TEST_DATA_DIR) + "/" + relative;
}

/// HuggingFace reference fixtures (tests/data/fixtures, copied from shared/fixtures).
inline std::string fixture_path(const std::string& relative) {
  return std::string(MSMEDCAP_FIXTURES_DIR) + "/" + relative;
}

/// Counts lines of text (a trailing newline does not start a new one).
inline size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' || i + 1 == text.size()) ++n;
  }
  return n;
}

}  // namespace msmedcap::testing
