// `mpirun -np 3 heinfer serve --distributed` through the real CLI (loopback): rank 0
// speaks gRPC, ranks 1 and 2 run every batch in column slabs and send their client calls
// through rank 0.
//  - a data owner's `heinfer client` gets the plaintext model's predictions (top-1
//    identical, logits within the CKKS error), with the rounds the server announced for
//    two compute ranks (the client refuses a round beyond the announced schedule);
//  - a client killed in the middle of a batch cancels that batch on every rank (they
//    stop at the same step) and the next client is served correctly;
//  - SIGTERM to rank 0 stops the compute ranks and the job exits 0;
//  - with serve's defaults (model-private mode: Relu evaluated on the compute ranks,
//    the client only refreshing blindly masked ciphertexts) a small convolutional model
//    gives the plaintext model's predictions;
//  - ranks whose models differ from rank 0's (other options) are refused at start-up
//    with a clear error; fewer than 2 ranks and a start outside mpirun are refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../common/onnx_builder.h"
#include "../common/shell.h"
#include "../protocol/process.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::Process;

const fs::path kExe = fs::path(HEINFER_BINARY_DIR) / "heinfer";
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";
const fs::path kCnn = kModels / "fmnist_cnn.onnx";
const fs::path kImages = kModels / "fmnist_test64_images.npy";
const fs::path kLogits = kModels / "fmnist_cnn_test64_logits.npy";

/// The pid of the child of `mpirun_pid` that is rank 0 (its OMPI_COMM_WORLD_RANK), or -1.
pid_t rank0_of(pid_t mpirun_pid) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string pid, comm, state;
    pid_t ppid = 0;
    if (!(stat >> pid >> comm >> state >> ppid) || ppid != mpirun_pid) continue;
    std::ifstream env(e.path() / "environ", std::ios::binary);
    for (std::string var; std::getline(env, var, '\0');) {
      if (var == "OMPI_COMM_WORLD_RANK=0") return static_cast<pid_t>(std::stoi(name));
    }
  }
  return -1;
}

class DistributedServe : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kExe)) << "build the `heinfer` target first";
    ASSERT_EQ(std::system("command -v mpirun >/dev/null 2>&1"), 0) << "mpirun not found (apt-get install openmpi-bin)";
    dir_ = fs::temp_directory_path() / ("heinfer_distributed_serve_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);  // Open MPI refuses root without these
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// `heinfer serve --distributed` arguments of one rank (the CNN, client-aided rounds).
  std::vector<std::string> serve_args(const std::string& masks) const {
    return {kExe.string(), "serve", "--distributed", "--insecure", "--listen", "127.0.0.1:0", "--model",
            "fmnist=" + kCnn.string(), "--calibration", "fmnist=" + kImages.string(), "--privacy", "activations",
            "--round-masks", masks, "--threads", "1"};
  }
  std::vector<std::string> mpirun(int ranks) const {
    return {"/usr/bin/mpirun", "--oversubscribe", "-np", std::to_string(ranks), "-x", "OMP_NUM_THREADS=1"};
  }
  std::vector<std::string> client(const std::string& port, const std::string& out) const {
    return {kExe.string(), "client", "--server", "localhost:" + port, "--model", "fmnist", "--input",
            kImages.string(), "--output", (dir_ / out).string(), "--insecure", "--connect-timeout", "20"};
  }

  fs::path dir_;
};

TEST_F(DistributedServe, ThreeRanksServeTheCnnSurviveAClientThatLeavesAndStopOnSigterm) {
  std::vector<std::string> args = mpirun(3);
  const auto serve = serve_args("per-window");
  args.insert(args.end(), serve.begin(), serve.end());
  Process job(args, dir_ / "serve.log");
  const std::string port = job.wait_for(R"(listening on 127\.0\.0\.1:(\d+))", 180s);
  ASSERT_FALSE(port.empty()) << job.output();

  // A client that leaves in the middle of the batch (after the second round).
  {
    Process leaving(client(port, "left.npy"), dir_ / "left.log");
    ASSERT_FALSE(leaving.wait_for(R"(round 2 )", 300s).empty()) << leaving.output() << job.output();
    leaving.kill_now();
  }
  // The next client is served, by ranks that all left the cancelled batch.
  Process served(client(port, "out.npy"), dir_ / "client.log");
  ASSERT_EQ(served.wait(600s), 0) << served.output() << job.output();
  EXPECT_FALSE(fs::exists(dir_ / "left.npy"));
  const std::string log = served.output();
  EXPECT_NE(log.find("client-aided rounds"), std::string::npos) << log;
  const std::vector<double> y = runtime::read_npy(dir_ / "out.npy").to_double();
  const std::vector<double> ref = runtime::read_npy(kLogits).to_double();
  ASSERT_EQ(y.size(), ref.size());
  double scale = 0, err = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    scale = std::max(scale, std::fabs(ref[i]));
    err = std::max(err, std::fabs(y[i] - ref[i]));
  }
  EXPECT_LE(err, 1e-3 * scale) << "max |logit error| " << err;
  const std::vector<float> yf(y.begin(), y.end()), rf(ref.begin(), ref.end());
  EXPECT_EQ(runtime::argmax_rows(yf, 64, 10), runtime::argmax_rows(rf, 64, 10));
  EXPECT_NE(job.output().find("dropped"), std::string::npos) << "the first session ends with its stream\n"
                                                               << job.output();

  // SIGTERM to rank 0: it stops serving, tells the compute ranks, and the job exits 0.
  const pid_t r0 = rank0_of(job.pid);
  ASSERT_GT(r0, 0) << "rank 0 of mpirun " << job.pid << " not found";
  ASSERT_EQ(::kill(r0, SIGTERM), 0);
  EXPECT_EQ(job.wait(120s), 0) << job.output();
  EXPECT_NE(job.output().find("server stopped"), std::string::npos) << job.output();
}

TEST_F(DistributedServe, ModelPrivateModeByDefault) {
  // [1, 6, 6] -> Conv 3x3 pad 1 (2 channels) -> Relu -> Flatten -> Gemm (72 -> 3).
  test::ModelBuilder b;
  b.input("x", {1, 6, 6}).output("y");
  b.initializer("w", {2, 1, 3, 3}, test::random_floats(18, 7, -0.5f, 0.5f));
  b.initializer("f", {3, 72}, test::random_floats(216, 8, -0.3f, 0.3f));
  b.initializer("fb", {3}, test::random_floats(3, 9));
  auto& c = b.node("Conv", {"x", "w"}, {"c"});
  test::attr(c, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  b.node("Flatten", {"r"}, {"fl"});
  auto& gm = b.node("Gemm", {"fl", "f", "fb"}, {"y"});
  test::attr(gm, "transB", std::int64_t{1});
  const fs::path model = dir_ / "tiny.onnx";
  std::ofstream(model, std::ios::binary) << b.bytes();
  const std::vector<float> x = test::random_floats(16 * 36, 10, -2, 2);
  const std::vector<double> xd(x.begin(), x.end());
  runtime::write_npy(dir_ / "x.npy", runtime::make_npy(runtime::NpyDType::Float32, {16, 1, 6, 6}, xd));
  ASSERT_EQ(test::run_shell(test::shell_quote(kExe) + " run " + test::shell_quote(model) + " --input " +
                            test::shell_quote(dir_ / "x.npy") + " --output " + test::shell_quote(dir_ / "ref.npy") +
                            " --plain --quiet")
                .status,
            0);

  std::vector<std::string> args = mpirun(3);
  args.insert(args.end(), {kExe.string(), "serve", "--distributed", "--insecure", "--listen", "127.0.0.1:0", "--model",
                           "tiny=" + model.string(), "--calibration", "tiny=" + (dir_ / "x.npy").string(),
                           "--threads", "1"});
  Process job(args, dir_ / "serve.log");
  const std::string port = job.wait_for(R"(listening on 127\.0\.0\.1:(\d+))", 180s);
  ASSERT_FALSE(port.empty()) << job.output();
  Process client({kExe.string(), "client", "--server", "localhost:" + port, "--model", "tiny", "--input",
                  (dir_ / "x.npy").string(), "--output", (dir_ / "y.npy").string(), "--insecure"},
                 dir_ / "client.log");
  ASSERT_EQ(client.wait(600s), 0) << client.output() << job.output();
  EXPECT_NE(client.output().find("model-private: blind refreshes only"), std::string::npos) << client.output();
  const std::vector<double> y = runtime::read_npy(dir_ / "y.npy").to_double();
  const std::vector<double> ref = runtime::read_npy(dir_ / "ref.npy").to_double();
  ASSERT_EQ(y.size(), ref.size());
  double scale = 0, err = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    scale = std::max(scale, std::fabs(ref[i]));
    err = std::max(err, std::fabs(y[i] - ref[i]));
  }
  EXPECT_LE(err, 0.01 * scale) << "max |logit error| " << err << " of " << scale;
  const std::vector<float> yf(y.begin(), y.end()), rf(ref.begin(), ref.end());
  EXPECT_EQ(runtime::argmax_rows(yf, 16, 3), runtime::argmax_rows(rf, 16, 3));
}

TEST_F(DistributedServe, RanksWithOtherModelsThanRankZerosAreRefused) {
  // MPMD: rank 0 with per-window masks, rank 1 with per-sample masks (another plan).
  std::vector<std::string> args = mpirun(1);
  const auto a = serve_args("per-window"), b = serve_args("per-sample");
  args.insert(args.end(), a.begin(), a.end());
  args.insert(args.end(), {":", "-np", "1"});
  args.insert(args.end(), b.begin(), b.end());
  Process job(args, dir_ / "serve.log");
  EXPECT_NE(job.wait(180s), 0) << job.output();
  EXPECT_NE(job.output().find("the models of rank(s) 1 differ from rank 0's"), std::string::npos) << job.output();
  EXPECT_EQ(job.output().find("listening on"), std::string::npos) << job.output();
}

TEST_F(DistributedServe, FewerThanTwoRanksAndNoMpirunAreRefused) {
  std::vector<std::string> args = mpirun(1);
  const auto a = serve_args("per-window");
  args.insert(args.end(), a.begin(), a.end());
  Process one(args, dir_ / "one.log");
  EXPECT_NE(one.wait(120s), 0);
  EXPECT_NE(one.output().find("needs at least 2 ranks"), std::string::npos) << one.output();
  Process alone(a, dir_ / "alone.log");
  EXPECT_NE(alone.wait(60s), 0);
  EXPECT_NE(alone.output().find("start heinfer with mpirun"), std::string::npos) << alone.output();
}

}  // namespace
}  // namespace heinfer
