// Test helper: running a command line through the shell, as a user would (header-only).
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>

namespace heinfer::test {

struct ShellResult {
  int status;          ///< pclose's wait status (0: exit code 0)
  std::string output;  ///< stdout and stderr, interleaved
};

/// Runs `cmd` with /bin/sh, stdout and stderr captured together.
inline ShellResult run_shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  const int status = p ? pclose(p) : -1;
  return {status, out};
}

/// `p` in single quotes for the shell (built by appending: GCC 12 warns falsely on
/// "'" + s).
inline std::string shell_quote(const std::filesystem::path& p) {
  std::string s(1, '\'');
  s += p.string();
  s += '\'';
  return s;
}

}  // namespace heinfer::test
