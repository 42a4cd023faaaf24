// The `heinfer run` / `heinfer inspect` commands, run as a subprocess (skipped when the
// tool has not been built next to the tests).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include "../common/shell.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kTool = fs::path(HEINFER_BINARY_DIR) / "heinfer";
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";

using Result = test::ShellResult;

/// Runs `heinfer ARGS`, stdout + stderr captured.
Result sh(const std::string& args) { return test::run_shell(test::shell_quote(kTool) + " " + args); }

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kTool)) GTEST_SKIP() << kTool << " not built";
    if (!fs::exists(kModels / "fmnist_cryptonets.onnx")) GTEST_SKIP() << "models/ not present";
    dir_ = fs::temp_directory_path() / ("heinfer_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(Cli, RunPlainWritesOutputsAndPrintsAccuracy) {
  const fs::path out = dir_ / "y.npy";
  const Result r = sh("run '" + (kModels / "fmnist_cryptonets.onnx").string() + "' --input '" +
                      (kModels / "fmnist_test64_images.npy").string() + "' --labels '" +
                      (kModels / "fmnist_test64_labels.npy").string() + "' --output '" +
                      out.string() + "' --plain --batch 10 --threads 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("top-1 accuracy: 89.06% (57/64)"), std::string::npos) << r.output;
  const runtime::NpyArray y = runtime::read_npy(out);
  EXPECT_EQ(y.dtype, runtime::NpyDType::Float32);
  EXPECT_EQ(y.shape, (std::vector<std::int64_t>{64, 10}));
}

TEST_F(Cli, InputShapeIsValidated) {
  const fs::path x = dir_ / "x.npy";
  runtime::write_npy(x, runtime::make_npy(runtime::NpyDType::Float32, {2, 1, 27, 28},
                                          std::vector<double>(2 * 27 * 28, 0.5)));
  const Result r = sh("run '" + (kModels / "fmnist_cryptonets.onnx").string() + "' --input '" +
                      x.string() + "' --output '" + (dir_ / "y.npy").string() + "' --plain");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("expects [N, 1, 28, 28]"), std::string::npos) << r.output;
}

TEST_F(Cli, InspectPrintsClassesAndSegmentDepth) {
  const Result r = sh("inspect '" + (kModels / "fmnist_cryptonets.onnx").string() + "' --batch 8 --no-time");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("polynomial"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("segment 0: nodes 0..5 (6 nodes), depth 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[8, 845]"), std::string::npos) << r.output;
}

// Byte counts are parsed by CLI11 (apps/size_option.h): units in powers of 1024; a bad
// size is refused before anything runs, with an error naming the option.
TEST_F(Cli, SizeOptionsUseBinaryUnitsAndRefuseBadSizes) {
  const std::string run = "run '" + (kModels / "fmnist_cryptonets.onnx").string() + "' --input '" +
                          (kModels / "fmnist_test64_images.npy").string() + "' --output '" +
                          (dir_ / "y.npy").string() + "' --quiet --threads 1 --insecure-ring-degree 2048";
  for (const std::string option : {"--dram-budget", "--pmem-max"}) {
    for (const char* bad : {"12X", "1.5G", "0", "-1", "abc", "''", "99999999999999999999", "16E"}) {
      const Result r = sh(run + " " + option + " " + bad);
      EXPECT_NE(r.status, 0) << option << " " << bad;
      EXPECT_NE(r.output.find(option + ":"), std::string::npos) << option << " " << bad << ": " << r.output;
      EXPECT_EQ(r.output.find("parameters:"), std::string::npos) << option << " " << bad << ": " << r.output;
    }
  }
  // A good size reaches the store: a budget below one input tensor of ciphertexts stops
  // the run with the store's error, which prints the budget back.
  const std::pair<const char*, const char*> sizes[] = {
      {"1536", "1.50 KiB"}, {"1K", "1.00 KiB"}, {"3m", "3.00 MiB"}, {"'2 MiB'", "2.00 MiB"}, {"1kb", "1.00 KiB"}};
  for (const auto& [arg, shown] : sizes) {
    const Result r = sh(run + " --dram-budget " + arg);
    EXPECT_NE(r.status, 0) << arg;
    EXPECT_NE(r.output.find(std::string("the DRAM budget of ") + shown + " is exceeded"), std::string::npos)
        << arg << ": " << r.output;
  }
}

TEST_F(Cli, MalformedModelIsAClearError) {
  const fs::path bad = dir_ / "bad.onnx";
  { std::FILE* f = std::fopen(bad.c_str(), "wb"); std::fputs("\x08\x07\x12\xff garbage", f); std::fclose(f); }
  const Result r = sh("inspect '" + bad.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("not a valid ONNX model"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace heinfer
