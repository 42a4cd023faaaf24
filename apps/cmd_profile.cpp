// `heinfer profile plot PROFILE.json OUT.png`: draws a profile written by `heinfer run
// --profile` (layout in runtime/profile.h): memory over time per tier and time per layer.
// The drawing is tools/plot_profile.py run by Debian's /usr/bin/python3 (matplotlib);
// the script is found through $HEINFER_TOOLS_DIR, else next to the executable
// (<exe dir>/tools, <exe dir>/../tools, <exe dir>/../../tools, <exe dir>/../share/heinfer/tools).
#include <CLI/CLI.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.h"

namespace heinfer::apps {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kScript = "plot_profile.py";

struct PlotOptions {
  std::string profile, out;
};

/// The directory holding plot_profile.py. Throws std::runtime_error naming the places tried.
fs::path tools_dir() {
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("HEINFER_TOOLS_DIR"); env && *env) {
    const fs::path d(env);
    if (fs::exists(d / kScript)) return d;
    throw std::runtime_error(std::string("HEINFER_TOOLS_DIR=") + env + " has no " + kScript);
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path dir = exe.parent_path();
    for (const fs::path& d : {dir / "tools", dir / ".." / "tools", dir / ".." / ".." / "tools",
                              dir / ".." / "share" / "heinfer" / "tools"}) {
      if (fs::exists(d / kScript)) return fs::weakly_canonical(d);
      tried.push_back(d);
    }
  }
  std::string msg = "cannot find tools/";
  msg.append(kScript).append(" (tried");
  for (const auto& d : tried) msg.append(" ").append(d.string());
  msg.append("); set HEINFER_TOOLS_DIR to the source tree's tools/ directory");
  throw std::runtime_error(msg);
}

/// Runs argv (no shell), returning its exit status and its stdout + stderr.
int run_captured(const std::vector<std::string>& argv, std::string& output) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t got;
  while ((got = read(fds[0], buf, sizeof buf)) > 0 || (got < 0 && errno == EINTR)) {
    if (got > 0) output.append(buf, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void plot(const PlotOptions& o) {
  if (!fs::exists(o.profile)) throw std::runtime_error("profile '" + o.profile + "': no such file");
  if (!fs::exists(kPython)) {
    throw std::runtime_error(std::string(kPython) + " not found (install Debian's python3-matplotlib)");
  }
  const fs::path script = tools_dir() / kScript;
  std::string output;
  const int status = run_captured({kPython, script.string(), o.profile, o.out}, output);
  while (!output.empty() && output.back() == '\n') output.pop_back();
  if (status == 127) throw std::runtime_error(std::string("cannot run ") + kPython);
  if (status != 0) {
    // The script prints "error: <file>: <what>"; pass it on without the prefix.
    const std::string msg = output.rfind("error: ", 0) == 0 ? output.substr(7) : output;
    throw std::runtime_error("profile plot: " + msg);
  }
  std::printf("%s\n", output.c_str());
}

}  // namespace

void register_profile(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("profile", "Work with profiles of encrypted runs (run --profile)");
  sub->require_subcommand(1);
  auto o = std::make_shared<PlotOptions>();
  CLI::App* p = sub->add_subcommand("plot", "Draw memory over time per tier and time per layer into a PNG");
  p->add_option("profile", o->profile, "profile JSON written by `heinfer run --profile`")->required();
  p->add_option("out", o->out, "PNG to write (atomically)")->required();
  p->callback([o] { plot(*o); });
}

}  // namespace heinfer::apps
