// The committed Fashion-MNIST models on the 64-image slice, encrypted with the selected
// (128-bit secure) parameters, against the plaintext executor; and the CLI's input checks.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "encrypted_test_util.h"
#include "model/load.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

const std::filesystem::path kModels = std::filesystem::path(HEINFER_SOURCE_DIR) / "models";

void check_model(const std::string& file, double max_logit_error) {
  const model::Graph g = model::load_model(kModels / file);
  const auto images = runtime::read_npy(kModels / "fmnist_test64_images.npy").to_double();
  const runtime::PlainTensor x = runtime::from_batch_major(std::span<const double>(images), 64, {1, 28, 28});
  plan::ParameterOptions o;
  const auto plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o);
  EXPECT_EQ(plan.params.security_level(), ckks::SecurityLevel::TC128);
  runtime::EncryptedSession s(g, plan);
  runtime::EncryptedRunStats st;
  const auto enc = runtime::to_batch_major(s.executor->run(*s.client, {x}, st)[0]);
  const auto ref = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  ASSERT_EQ(enc.size(), 640u);
  const std::vector<float> ef(enc.begin(), enc.end()), rf(ref.begin(), ref.end());
  EXPECT_EQ(runtime::argmax_rows(ef, 64, 10), runtime::argmax_rows(rf, 64, 10));
  double err = 0;
  for (std::size_t i = 0; i < enc.size(); ++i) err = std::max(err, std::fabs(enc[i] - ref[i]));
  EXPECT_LE(err, max_logit_error);
  std::printf("%s: %s, max |logit error| %.3g, %lld rounds, %.1f MB up, %.1f MB down, %.1f s\n", file.c_str(),
              plan.describe().c_str(), err, static_cast<long long>(st.rounds),
              static_cast<double>(st.bytes_to_server) / 1e6, static_cast<double>(st.bytes_to_client) / 1e6, st.seconds);
}

TEST(EncryptedModels, CryptoNetsSliceMatchesPlaintext) { check_model("fmnist_cryptonets.onnx", 0.05); }

TEST(EncryptedModels, CnnSliceMatchesPlaintext) { check_model("fmnist_cnn.onnx", 0.01); }

/// `heinfer run` (encrypted, and --plain) rejects a wrong dtype, a wrong shape, NaN and an
/// output path it cannot write before encrypting (or running) anything.
TEST(EncryptedCli, RejectsBadInputFiles) {
  const std::filesystem::path exe = std::filesystem::path(HEINFER_BINARY_DIR) / "heinfer";
  if (!std::filesystem::exists(exe)) GTEST_SKIP() << "build the `heinfer` target first";
  const auto dir = std::filesystem::temp_directory_path() / "heinfer_cli_test";
  std::filesystem::create_directories(dir);
  auto run = [&](const runtime::NpyArray& a, const std::string& expect, const std::string& extra = "",
                 const std::string& output = "y.npy") {
    runtime::write_npy(dir / "x.npy", a);
    const std::string cmd = exe.string() + " run " + (kModels / "fmnist_cryptonets.onnx").string() + " --input " +
                            (dir / "x.npy").string() + " --output " + (dir / output).string() + " " + extra + " > " +
                            (dir / "log.txt").string() + " 2>&1";
    EXPECT_NE(std::system(cmd.c_str()), 0);
    std::ifstream in(dir / "log.txt");
    const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(log.find(expect), std::string::npos) << log;
    EXPECT_EQ(log.find("parameters:"), std::string::npos) << "got as far as planning: " << log;
  };
  std::vector<double> v(2 * 784, 0.5);
  run(runtime::make_npy(runtime::NpyDType::Int64, {2, 1, 28, 28}, v), "expected float32");
  run(runtime::make_npy(runtime::NpyDType::Float32, {2, 28, 28}, std::span<const double>(v).first(2 * 784)),
      "but the model expects");
  run(runtime::make_npy(runtime::NpyDType::Float32, {2, 1, 28, 28}, v), "directory", "", "missing/y.npy");
  run(runtime::make_npy(runtime::NpyDType::Float32, {2, 1, 28, 28}, v), "directory", "--plain", "missing/y.npy");
  v[784 + 7] = std::nan("");
  run(runtime::make_npy(runtime::NpyDType::Float32, {2, 1, 28, 28}, v), "sample 1 contains NaN or Inf");
  run(runtime::make_npy(runtime::NpyDType::Float32, {2, 1, 28, 28}, v), "sample 1 contains NaN or Inf", "--plain");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace heinfer
