// Resumable runs (runtime/checkpoint.h) through the real CLI: a run killed with SIGKILL
// mid-band and after several nodes (streamed, with a file tier and 32-bit limb words)
// and resumed (once killed again) gives the uninterrupted run's predictions; the tier is
// a named file the checkpoint references; the checkpoint holds the secret
// key at mode 0600 and is removed when the run completes; a checkpoint of other inputs,
// another model, a tampered state or tier file is refused with a clear error.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "../common/shell.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kTool = fs::path(HEINFER_BINARY_DIR) / "heinfer";
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";

using Result = test::ShellResult;
Result sh(const std::string& cmd) { return test::run_shell(cmd); }

class ResumableRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kTool)) GTEST_SKIP() << kTool << " not built";
    dir_ = fs::temp_directory_path() / ("heinfer_resume_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tier");
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// `heinfer run` of the CNN on 64 images (N = 2048, tests only), streamed under a
  /// 30 MiB budget with a file tier; `extra` appended, `env` prefixed.
  Result run(const std::string& out, const std::string& extra, const std::string& env = "",
             const std::string& input = (kModels / "fmnist_test64_images.npy").string()) {
    return sh(env + " OMP_NUM_THREADS=2 '" + kTool.string() + "' run '" + (kModels / "fmnist_cnn.onnx").string() +
              "' --input '" + input + "' --output '" + (dir_ / out).string() +
              "' --insecure-ring-degree 2048 --dram-budget 30M --pmem-dir '" + (dir_ / "tier").string() +
              "' --streaming on --quiet " + extra);
  }
  std::vector<double> logits(const std::string& out) { return runtime::read_npy(dir_ / out).to_double(); }
  static std::vector<fs::path> files_in(const fs::path& d) {
    std::vector<fs::path> f;
    for (const auto& e : fs::directory_iterator(d)) f.push_back(e.path());
    std::sort(f.begin(), f.end());
    return f;
  }
  static std::string manifest_text(const fs::path& ck) {
    std::ifstream in(ck / "checkpoint.json");
    return {std::istreambuf_iterator<char>(in), {}};
  }
  fs::path dir_;
};

TEST_F(ResumableRun, KilledAtSeveralPointsAndResumedGivesTheSameOutputs) {
  const Result full = run("full.npy", "--limb-words 32");
  ASSERT_EQ(full.status, 0) << full.output;
  const auto ref = logits("full.npy");
  const std::vector<float> ref_f(ref.begin(), ref.end());
  // Kill points: mid-band (a streamed step, killed before its own checkpoint: the resumed
  // run recomputes that band), after conv1's last band (the rest of its segment partial),
  // before the classifier, mid-round (the client's reply received, not yet used) and in
  // a write to the tier file (half an extent written).
  const std::vector<std::string> kills = {"HEINFER_KILL_AFTER_STEP=40", "HEINFER_KILL_AFTER_NODE=1",
                                          "HEINFER_KILL_AFTER_NODE=6", "HEINFER_KILL_IN_ROUND=12",
                                          "HEINFER_KILL_IN_TIER_WRITE=400"};
  for (std::size_t point = 0; point < kills.size(); ++point) {
    const std::string& kill = kills[point];
    const fs::path ck = dir_ / ("ck" + std::to_string(point));
    const Result killed = run("out.npy", "--limb-words 32 --checkpoint '" + ck.string() + "' --checkpoint-interval 0",
                              kill);
    ASSERT_NE(killed.output.find("fault injection"), std::string::npos) << kill << "\n" << killed.output;
    ASSERT_NE(killed.status, 0) << kill << ": the run was not killed\n" << killed.output;
    ASSERT_TRUE(fs::exists(ck / "checkpoint.json")) << killed.output;
    ASSERT_FALSE(fs::exists(dir_ / "out.npy")) << "a killed run wrote its output";
    struct stat s {};
    ASSERT_EQ(::stat((ck / "secret.key").c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((ck / "ranges.npy").c_str(), &s), 0) << "the calibration is kept for the resumed run";
    EXPECT_EQ(s.st_mode & 0777, 0600u);
    for (const auto& e : fs::directory_iterator(ck)) {
      EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "leftover " << e.path();
    }
    // The tier is one named file (mode 0600) that the checkpoint references.
    const auto tier_files = files_in(dir_ / "tier");
    ASSERT_EQ(tier_files.size(), 1u);
    EXPECT_EQ(fs::status(tier_files[0]).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_NE(manifest_text(ck).find(tier_files[0].filename().string()), std::string::npos);
    // The first resume is killed twice more: after its first step, before that step's
    // checkpoint (the extents the checkpoint references must not have been reused by
    // then), and further on (after checkpoints of its own over the same tier file).
    if (point == 0) {
      const std::string text = manifest_text(ck);
      const auto at = text.find("\"steps_done\": ");
      ASSERT_NE(at, std::string::npos) << text;
      const long first = std::stol(text.substr(at + 14));
      for (const std::string& kill2 :
           {"HEINFER_KILL_AFTER_STEP=" + std::to_string(first + 1), std::string("HEINFER_KILL_AFTER_NODE=5")}) {
        const Result again =
            run("out.npy", "--limb-words 32 --checkpoint-interval 0 --resume '" + ck.string() + "'", kill2);
        ASSERT_NE(again.output.find("fault injection"), std::string::npos) << kill2 << "\n" << again.output;
        ASSERT_NE(again.status, 0) << again.output;
        EXPECT_EQ(files_in(dir_ / "tier"), tier_files) << "a resumed run keeps the checkpoint's tier file";
      }
    }
    EXPECT_NE(manifest_text(ck).find("\"progress\""), std::string::npos);
    const fs::path profile = dir_ / "profile.json";
    const Result resumed =
        run("out.npy", "--limb-words 32 --resume '" + ck.string() + "' --profile '" + profile.string() + "'");
    ASSERT_EQ(resumed.status, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resuming after step"), std::string::npos) << resumed.output;
    EXPECT_NE(resumed.output.find("done by earlier attempts"), std::string::npos) << resumed.output;
    EXPECT_NE(resumed.output.find("calibration comes from the checkpoint"), std::string::npos) << resumed.output;
    {
      const auto j = nlohmann::json::parse(std::ifstream(profile));
      ASSERT_TRUE(j.contains("earlier_attempts")) << "the profile of a resumed run carries the earlier attempts";
      EXPECT_GT(j["earlier_attempts"]["seconds"].get<double>(), 0);
      EXPECT_GT(j["earlier_attempts"]["tier_file_peak"].get<std::int64_t>(), 0);
    }
    EXPECT_TRUE(fs::is_empty(dir_ / "tier")) << "the tier file outlived the completed run";
    const auto y = logits("out.npy");
    ASSERT_EQ(y.size(), ref.size());
    const std::vector<float> y_f(y.begin(), y.end());
    EXPECT_EQ(runtime::argmax_rows(y_f, 64, 10), runtime::argmax_rows(ref_f, 64, 10)) << kill;
    double err = 0, top = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      err = std::max(err, std::fabs(y[i] - ref[i]));
      top = std::max(top, std::fabs(ref[i]));
    }
    EXPECT_LT(err, 1e-3 * top) << kill;
    EXPECT_FALSE(fs::exists(ck)) << "the checkpoint (and its secret key) outlived the completed run";
    fs::remove(dir_ / "out.npy");
  }
}

TEST_F(ResumableRun, AMismatchedOrTamperedCheckpointIsRefused) {
  const fs::path ck = dir_ / "ck";
  const Result killed = run("out.npy", "--checkpoint '" + ck.string() + "' --checkpoint-interval 0",
                            "HEINFER_KILL_AFTER_NODE=4");
  ASSERT_NE(killed.status, 0) << killed.output;
  // Other inputs: the first 32 images only.
  const auto all = runtime::read_npy(kModels / "fmnist_test64_images.npy");
  std::vector<double> half(all.to_double());
  half.resize(32 * 784);
  runtime::write_npy(dir_ / "half.npy", runtime::make_npy(runtime::NpyDType::Float32, {32, 1, 28, 28}, half));
  Result r = run("out.npy", "--resume '" + ck.string() + "'", "", (dir_ / "half.npy").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("the checkpoint is of another input file"), std::string::npos) << r.output;
  // A manifest whose position is not a step of this plan.
  const fs::path manifest = ck / "checkpoint.json";
  std::string text;
  {
    std::ifstream in(manifest);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto at = text.find("\"last_node\": ");
  ASSERT_NE(at, std::string::npos) << text;
  std::string tampered = text;
  tampered.insert(at + 13, "1");  // node 4 -> 14: not the node of that step
  std::ofstream(manifest, std::ios::trunc) << tampered;
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("does not match this plan"), std::string::npos) << r.output;
  // A checkpoint of another schedule (as another budget would cut and band it).
  const auto digest = text.find("\"schedule_sha256\": \"");
  ASSERT_NE(digest, std::string::npos) << text;
  tampered = text;
  char& d = tampered[digest + 20];
  d = d == '0' ? '1' : '0';
  std::ofstream(manifest, std::ios::trunc) << tampered;
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("follows another schedule"), std::string::npos) << r.output;
  std::ofstream(manifest, std::ios::trunc) << text;
  // A state file cut short.
  std::string state;
  for (const auto& e : fs::directory_iterator(ck)) {
    if (e.path().filename().string().rfind("state-", 0) == 0) state = e.path().string();
  }
  ASSERT_FALSE(state.empty());
  fs::copy_file(state, dir_ / "state.bak");
  fs::resize_file(state, fs::file_size(state) / 2);
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("run state: "), std::string::npos) << r.output;
  fs::copy_file(dir_ / "state.bak", state, fs::copy_options::overwrite_existing);
  // A secret key readable by others.
  fs::permissions(ck / "secret.key", fs::perms::others_read, fs::perm_options::add);
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("mode 0600"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out.npy"));
  fs::permissions(ck / "secret.key", fs::perms::others_read, fs::perm_options::remove);
  // The kept calibration: of another graph (a value too many), negative, or absent (a
  // checkpoint of an earlier version: the run calibrates again and keeps it).
  const auto ranges = runtime::read_npy(ck / "ranges.npy").to_double();
  std::vector<double> longer = ranges;
  longer.push_back(1.0);
  runtime::write_npy(ck / "ranges.npy", runtime::make_npy(runtime::NpyDType::Float64, {static_cast<std::int64_t>(longer.size())}, longer));
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("ranges.npy' must hold " + std::to_string(ranges.size())), std::string::npos) << r.output;
  std::vector<double> negative = ranges;
  negative.back() = -1.0;
  runtime::write_npy(ck / "ranges.npy", runtime::make_npy(runtime::NpyDType::Float64, {static_cast<std::int64_t>(negative.size())}, negative));
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("holds a value out of range"), std::string::npos) << r.output;
  fs::remove(ck / "ranges.npy");
  r = run("out.npy", "--resume '" + ck.string() + "'", "HEINFER_KILL_AFTER_NODE=5");
  EXPECT_NE(r.output.find("fault injection"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("calibration comes from the checkpoint"), std::string::npos) << r.output;
  const auto again = runtime::read_npy(ck / "ranges.npy").to_double();  // the recalibrated run keeps it
  ASSERT_EQ(again.size(), ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) EXPECT_NEAR(again[i], ranges[i], 1e-9 * (1 + ranges[i])) << i;
  // The tier file: cut short (the state references extents beyond its end), of another
  // run (its identifier), or missing.
  const auto tier_files = files_in(dir_ / "tier");
  ASSERT_EQ(tier_files.size(), 1u);
  const fs::path tier = tier_files[0];
  const auto tier_bytes = fs::file_size(tier);
  fs::resize_file(tier, 4096);
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("is not inside the file"), std::string::npos) << r.output;
  fs::resize_file(tier, tier_bytes);
  {
    // The identifier's first byte, inverted (a fixed value would equal the random
    // identifier's byte once in 256 runs, and the run would go on with the zeroed extents).
    std::fstream f(tier, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(16);
    const int byte = f.get();
    ASSERT_NE(byte, EOF);
    f.seekp(16);
    f.put(static_cast<char>(~byte));
  }
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("another run's tier file"), std::string::npos) << r.output;
  fs::remove(tier);
  r = run("out.npy", "--resume '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("cannot open it"), std::string::npos) << r.output;
  // A fresh run does not overwrite a checkpoint.
  r = run("out.npy", "--checkpoint '" + ck.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("holds a checkpoint"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out.npy"));
  // No checkpoint at all.
  r = run("out.npy", "--resume '" + dir_.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no checkpoint in"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace heinfer
