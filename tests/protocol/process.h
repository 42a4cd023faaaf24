// Test helper of tests/protocol/: a child process (the built `heinfer` binary) with its
// output in a log file, waited for with bounds and killed on destruction.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace heinfer::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A child process with stdout+stderr in a log file; killed (SIGKILL) on destruction.
struct Process {
  pid_t pid = -1;
  fs::path log;
  int status = -1;

  Process(const std::vector<std::string>& args, fs::path log_file) : log(std::move(log_file)) {
    std::vector<char*> argv;  // built before fork: the child only calls async-signal-safe functions
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::string log_path = log.string();
    pid = fork();
    if (pid == 0) {
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Process() { kill_now(); }
  void kill_now() {
    if (pid > 0 && status == -1) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  /// Waits up to `limit`; returns the exit code, or -1 on timeout (then kills).
  int wait(std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
      std::this_thread::sleep_for(50ms);
    }
    kill_now();
    return -1;
  }
  bool running() { return status == -1 && waitpid(pid, &status, WNOHANG) == 0; }
  std::string output() const { return slurp(log); }
  /// Waits until the log matches `re`; returns the first group ("" on timeout/exit).
  std::string wait_for(const std::string& re, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    const std::regex r(re);
    while (std::chrono::steady_clock::now() < end) {
      std::smatch m;
      const std::string out = output();
      if (std::regex_search(out, m, r)) return m.size() > 1 ? m[1].str() : m[0].str();
      if (!running()) return "";
      std::this_thread::sleep_for(50ms);
    }
    return "";
  }
};

}  // namespace heinfer::test
