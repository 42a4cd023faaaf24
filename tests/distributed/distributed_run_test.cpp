// Distributed runs through the real CLI under Open MPI (`mpirun --oversubscribe -np P
// heinfer run ... --distributed`, loopback on this machine):
//  - the Fashion-MNIST CNN on 2 ranks and, streamed under a DRAM budget, on 4 ranks gives
//    the single-process run's predictions (top-1 identical, logits within the CKKS
//    error); every rank exchanges halo bytes and each rank's DRAM peak falls with P;
//  - MobileNetV2 0.35 on 4 ranks and ResNet-50 on 2, at 32x32 (seeded weights,
//    BN-calibrated; residual Adds, strided and depthwise convolutions, global pooling
//    and the classifier reduced across ranks) give the single-process run's predictions;
//  - a rank killed mid-run (SIGKILL) ends the run on every rank with a clear error and
//    leaves the previous output file intact, with no temporary file;
//  - ranks started with other inputs than rank 0 are refused with a clear error before
//    any ciphertext is exchanged, and --distributed outside mpirun is refused.
//  - a run whose ranks were killed at different checkpoints resumes from the last step
//    all of them completed, with the uninterrupted run's predictions, and ranks given
//    the checkpoints of different runs are refused.
// Ring degrees below 8192 (--insecure-ring-degree, tests only) keep the CI time low; the
// partition and the exchanges do not depend on N.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "../common/shell.h"
#include "model/load.h"
#include "runtime/batch_runner.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kExe = fs::path(HEINFER_BINARY_DIR) / "heinfer";
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";
const fs::path kExport = fs::path(HEINFER_SOURCE_DIR) / "tools" / "export_torchvision.py";
// Open MPI refuses to start as root without these; harmless otherwise.
const std::string kMpirun =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout 900 mpirun --oversubscribe";

using Result = test::ShellResult;
Result sh(const std::string& cmd) { return test::run_shell(cmd); }
std::string q(const fs::path& p) { return test::shell_quote(p); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Top-1 identical and max |a - b| within `relative` × max |b| (`rows` samples).
void expect_same_predictions(const std::vector<double>& a, const std::vector<double>& b, std::int64_t rows,
                             const std::string& what, double relative) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_EQ(a.size() % static_cast<std::size_t>(rows), 0u);
  const auto classes = static_cast<std::int64_t>(a.size()) / rows;
  double scale = 0, err = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::fabs(b[i]));
    err = std::max(err, std::fabs(a[i] - b[i]));
  }
  EXPECT_LE(err, relative * std::max(scale, 1e-3)) << what << ": max |logit difference| " << err << ", max |logit| " << scale;
  const std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end());
  EXPECT_EQ(runtime::argmax_rows(af, rows, classes), runtime::argmax_rows(bf, rows, classes)) << what;
}

class DistributedRun : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kExe)) << "build the `heinfer` target first";
    // scripts/setup.sh installs openmpi-bin: a missing mpirun is a failure, not a skip.
    ASSERT_EQ(std::system("command -v mpirun >/dev/null 2>&1"), 0) << "mpirun not found (apt-get install openmpi-bin)";
    dir_ = fs::temp_directory_path() / ("heinfer_distributed_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// `heinfer run MODEL --input X --output OUT ...` (one process).
  Result single(const fs::path& model, const fs::path& x, const std::string& out, const std::string& extra) {
    return sh("OMP_NUM_THREADS=2 " + q(kExe) + " run " + q(model) + " --input " + q(x) + " --output " + q(dir_ / out) +
              " --threads 2 --quiet " + extra);
  }
  /// The same under `mpirun -np P ... --distributed`.
  Result ranks(int p, const fs::path& model, const fs::path& x, const std::string& out, const std::string& extra) {
    return sh(kMpirun + " -np " + std::to_string(p) + " " + q(kExe) + " run " + q(model) + " --input " + q(x) +
              " --output " + q(dir_ / out) + " --threads 1 --quiet --distributed " + extra);
  }
  std::vector<double> logits(const std::string& out) { return runtime::read_npy(dir_ / out).to_double(); }
  nlohmann::json profile(const std::string& name) { return nlohmann::json::parse(slurp(dir_ / name)); }
  void expect_no_temporaries() {
    for (const auto& e : fs::directory_iterator(dir_)) {
      EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "left behind: " << e.path();
    }
  }

  fs::path dir_;
};

const fs::path kCnn = kModels / "fmnist_cnn.onnx";
const fs::path kImages = kModels / "fmnist_test64_images.npy";

TEST_F(DistributedRun, CnnOnTwoAndFourRanksMatchesOneProcess) {
  const std::string n = " --insecure-ring-degree 2048";
  const Result one = single(kCnn, kImages, "one.npy", n + " --profile " + q(dir_ / "one.json"));
  ASSERT_EQ(one.status, 0) << one.output;
  const Result two = ranks(2, kCnn, kImages, "two.npy", n + " --check --profile " + q(dir_ / "two.json"));
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_NE(two.output.find("ranks            2"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("top-1 agreement with plaintext 100.000% (64/64)"), std::string::npos) << two.output;
  // Streamed band by band under a DRAM budget per rank with a file tier (each rank its
  // own unlinked file in the same directory) and 32-bit limb words, on 4 ranks.
  fs::create_directories(dir_ / "tier");
  const Result four = ranks(4, kCnn, kImages, "four.npy",
                            n + " --dram-budget 3M --pmem-dir " + q(dir_ / "tier") + " --streaming on --profile " +
                                q(dir_ / "four.json"));
  ASSERT_EQ(four.status, 0) << four.output;

  const std::vector<double> base = logits("one.npy");
  // Two encryptions with independent keys and noise, each within ~1e-3 of the plaintext
  // relative to the largest logit (N = 2048, Δ = 2^30): within 2e-3 of each other.
  expect_same_predictions(logits("two.npy"), base, 64, "2 ranks against 1 process", 2e-3);
  expect_same_predictions(logits("four.npy"), base, 64, "4 ranks (streamed, tiered) against 1 process", 2e-3);

  // Memory per rank falls with P; every rank exchanged its halos and partial sums.
  const auto p1 = profile("one.json"), p2 = profile("two.json"), p4 = profile("four.json");
  EXPECT_FALSE(p1.contains("ranks"));
  const std::int64_t dram1 = p1["tiers"]["dram"]["peak_bytes"];
  ASSERT_EQ(p2["ranks"].size(), 2u) << p2["ranks"].dump();
  ASSERT_EQ(p4["ranks"].size(), 4u) << p4["ranks"].dump();
  for (const auto& r : p2["ranks"]) {
    EXPECT_LE(r["dram_peak_bytes"].get<std::int64_t>(), dram1 * 6 / 10) << "2 ranks: " << r.dump() << " vs " << dram1;
    EXPECT_GT(r["bytes_sent"].get<std::int64_t>(), 0) << r.dump();
    EXPECT_GT(r["rss_anon_peak_bytes"].get<std::int64_t>(), 0) << r.dump();
  }
  EXPECT_TRUE(fs::is_empty(dir_ / "tier")) << "a rank left its tier file behind";
  EXPECT_GT(p4["tiers"]["pmem"]["peak_bytes"].get<std::int64_t>(), 0) << "rank 0 did not use its tier";
  for (const auto& r : p4["ranks"]) {
    EXPECT_LE(r["dram_peak_bytes"].get<std::int64_t>(), 3 << 20) << "4 ranks under a 3 MiB budget: " << r.dump();
    EXPECT_GT(r["bytes_sent"].get<std::int64_t>(), 0) << r.dump();
  }
  EXPECT_GT(p2["bytes_exchanged"].get<std::int64_t>(), 0);
  expect_no_temporaries();
}

TEST_F(DistributedRun, RankGroupsRunSeveralBatchesInFlight) {
  // 40 images in 3 batches of 16, 16 and 8: 2 groups of 2 ranks (batches 0, 2 and 1,
  // each in column slabs over its 2 ranks) and 2 groups of 1 rank (chosen by the plan),
  // against one process.
  const runtime::NpyArray all = runtime::read_npy(kImages);
  const std::vector<double> v = all.to_double();
  const fs::path x = dir_ / "x40.npy";
  runtime::write_npy(x, runtime::make_npy(runtime::NpyDType::Float32, {40, 1, 28, 28},
                                          std::span<const double>(v.data(), 40 * 28 * 28)));
  const std::string n = " --insecure-ring-degree 2048 --batch 16";
  const Result one = single(kCnn, x, "one.npy", n);
  ASSERT_EQ(one.status, 0) << one.output;
  const Result g22 = ranks(4, kCnn, x, "g22.npy", n + " --rank-groups 2 --check --profile " + q(dir_ / "g22.json"));
  ASSERT_EQ(g22.status, 0) << g22.output;
  EXPECT_NE(g22.output.find("ranks            4 in 2 group(s) of 2"), std::string::npos) << g22.output;
  EXPECT_NE(g22.output.find("top-1 agreement with plaintext 100.000% (40/40)"), std::string::npos) << g22.output;
  // On 2 ranks without a budget, --rank-groups auto (the default) runs 2 groups of 1.
  const Result g21 = ranks(2, kCnn, x, "g21.npy", n);
  ASSERT_EQ(g21.status, 0) << g21.output;
  EXPECT_NE(g21.output.find("ranks            2 in 2 group(s) of 1"), std::string::npos) << g21.output;
  expect_same_predictions(logits("g22.npy"), logits("one.npy"), 40, "2 groups of 2 ranks against 1 process", 2e-3);
  expect_same_predictions(logits("g21.npy"), logits("one.npy"), 40, "2 groups of 1 rank against 1 process", 2e-3);
  // Ranks 1 and 3 compute in slabs beside their group's rank 0; every rank holds one
  // group's share of the batches only.
  const auto p = profile("g22.json");
  ASSERT_EQ(p["ranks"].size(), 4u);
  for (int r : {1, 3}) EXPECT_GT(p["ranks"][r]["bytes_sent"].get<std::int64_t>(), 0) << p["ranks"].dump();

  const Result bad = ranks(4, kCnn, x, "bad.npy", n + " --rank-groups 3");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--rank-groups 3 does not divide the 4 ranks"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir_ / "bad.npy"));
}

TEST_F(DistributedRun, InspectPredictsTheBytesExchanged) {
  // The prediction of `inspect --ranks 2` against a run at the same (secure) parameters.
  const Result inspect = sh(q(kExe) + " inspect " + q(kCnn) + " --batch 64 --ranks 2 --no-time --json " + q(dir_ / "inspect.json"));
  ASSERT_EQ(inspect.status, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("link model:"), std::string::npos) << inspect.output;
  const Result two = ranks(2, kCnn, kImages, "two.npy", "--profile " + q(dir_ / "two.json"));
  ASSERT_EQ(two.status, 0) << two.output;
  const auto predicted = profile("inspect.json")["ranks"], measured = profile("two.json");
  ASSERT_EQ(predicted["scaling"].size(), 2u) << predicted.dump();
  EXPECT_EQ(predicted["scaling"][0]["bytes_exchanged"], 0);
  const double bytes = predicted["scaling"][1]["bytes_exchanged"].get<double>();
  // Measured on 2 ranks: rank 0's sent + received = all ciphertexts exchanged plus the
  // requests (16 bytes per element) and framing, a few per cent.
  const double got = measured["bytes_exchanged"].get<double>();
  EXPECT_GT(bytes, 0);
  EXPECT_NEAR(got / bytes, 1.0, 0.05) << "predicted " << bytes << " bytes, measured " << got;
  for (int r = 0; r < 2; ++r) {
    const double sent = predicted["per_rank"][r]["bytes_sent"].get<double>();
    EXPECT_NEAR(measured["ranks"][r]["bytes_sent"].get<double>() / sent, 1.0, 0.05) << "rank " << r;
  }
}

/// A torchvision model at 32x32 on `ranks` ranks.
struct LargeCase {
  const char* arch;
  int ranks;
};

void PrintTo(const LargeCase& c, std::ostream* os) { *os << c.arch << " on " << c.ranks << " ranks"; }

class DistributedLargeModel : public DistributedRun, public ::testing::WithParamInterface<LargeCase> {};

TEST_P(DistributedLargeModel, RanksMatchOneProcess) {
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import torch, torchvision, onnx' >/dev/null 2>&1"), 0)
      << "needs /usr/bin/python3 with torch, torchvision and onnx (scripts/setup.sh)";
  const std::string arch = GetParam().arch;
  const int p = GetParam().ranks;
  const std::string width = arch == "mobilenet_v2" ? "0.35" : "1.0";
  const fs::path onnx = dir_ / "m.onnx", x = dir_ / "x.npy";
  const std::string export_cmd = "/usr/bin/python3 " + q(kExport) + " --arch " + arch + " --width " + width +
                                 " --resolution 32 --threads 1 --out " + q(onnx) + " --input-npy " + q(x) + " --count 4";
  const Result exported = sh(export_cmd);
  ASSERT_EQ(exported.status, 0) << exported.output;

  const std::string opts = " --insecure-ring-degree 64 --scale-bits 28";
  const Result one = single(onnx, x, "one.npy", opts);
  ASSERT_EQ(one.status, 0) << one.output;
  const Result many = ranks(p, onnx, x, "many.npy", opts + " --profile " + q(dir_ / "many.json"));
  ASSERT_EQ(many.status, 0) << many.output;
  // N = 64, Δ = 2^28: each encryption within 1e-2 of the plaintext relative to the
  // largest logit (as tests/memory/), so within 2e-2 of each other.
  expect_same_predictions(logits("many.npy"), logits("one.npy"), 4, arch + " on ranks against 1 process", 2e-2);

  // Against the plaintext executor too.
  const model::Graph g = model::load_model(onnx);
  const std::vector<float> ref = runtime::run_plain_batched(g, runtime::read_npy(x).to_double(), 4, 4);
  expect_same_predictions(logits("many.npy"), std::vector<double>(ref.begin(), ref.end()), 4, arch + " against plaintext",
                          1e-2);
  const auto pm = profile("many.json");
  ASSERT_EQ(pm["ranks"].size(), static_cast<std::size_t>(p));
  for (const auto& r : pm["ranks"]) EXPECT_GT(r["bytes_sent"].get<std::int64_t>(), 0) << r.dump();
}

// MobileNetV2 (depthwise convolutions down to 1 column: ranks that own nothing of a
// layer) on 4 ranks, ResNet-50 (residual Adds, MaxPool) on 2.
INSTANTIATE_TEST_SUITE_P(LargeModels, DistributedLargeModel,
                         ::testing::Values(LargeCase{"mobilenet_v2", 4}, LargeCase{"resnet50", 2}));

TEST_F(DistributedRun, AKilledRankEndsTheRunAndWritesNothing) {
  const std::string before = "the previous output";
  { std::ofstream(dir_ / "y.npy") << before; }
  const std::string args = " run " + q(kCnn) + " --input " + q(kImages) + " --output " + q(dir_ / "y.npy") +
                           " --insecure-ring-degree 2048 --threads 1 --quiet --distributed";
  // Rank 1 kills itself (SIGKILL) after node 3; rank 0 is then in an exchange with it.
  const Result r = sh(kMpirun + " -np 1 " + q(kExe) + args + " : -np 1 env HEINFER_KILL_AFTER_NODE=3 " + q(kExe) + args);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(WEXITSTATUS(r.status), 124) << "the run hung until the timeout:\n" << r.output;
  EXPECT_NE(r.output.find("fault injection"), std::string::npos) << r.output;
  // mpirun names the rank that died and ends the others.
  EXPECT_NE(r.output.find("process rank 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("signal 9"), std::string::npos) << r.output;
  EXPECT_EQ(slurp(dir_ / "y.npy"), before) << "the output file changed";
  expect_no_temporaries();
}

TEST_F(DistributedRun, RanksWithOtherArgumentsAreRefused) {
  // Rank 1 reads other images than rank 0.
  const runtime::NpyArray all = runtime::read_npy(kImages);
  std::vector<double> v = all.to_double();
  std::reverse(v.begin(), v.end());
  runtime::write_npy(dir_ / "other.npy", runtime::make_npy(runtime::NpyDType::Float32, all.shape, v));
  const std::string common = " --output " + q(dir_ / "y.npy") + " --insecure-ring-degree 2048 --threads 1 --quiet --distributed";
  const Result r = sh(kMpirun + " -np 1 " + q(kExe) + " run " + q(kCnn) + " --input " + q(kImages) + common + " : -np 1 " +
                      q(kExe) + " run " + q(kCnn) + " --input " + q(dir_ / "other.npy") + common);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank(s) 1 run another model file, input or planning options than rank 0"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));
  expect_no_temporaries();

  // Outside mpirun, and checkpoints of rank groups (not supported yet): refused.
  const Result alone = single(kCnn, kImages, "y.npy", "--insecure-ring-degree 2048 --distributed");
  EXPECT_NE(alone.status, 0);
  EXPECT_NE(alone.output.find("start heinfer with mpirun -np P"), std::string::npos) << alone.output;
  const Result ck =
      ranks(2, kCnn, kImages, "y.npy", "--insecure-ring-degree 2048 --rank-groups 2 --checkpoint " + q(dir_ / "ck"));
  EXPECT_NE(ck.status, 0);
  EXPECT_NE(ck.output.find("not with --rank-groups yet"), std::string::npos) << ck.output;
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));
}

// Resumable distributed runs: each rank checkpoints its share into DIR/rank-R-of-P at the
// same steps (here under a DRAM budget, each with its named tier file). Rank 1 is killed
// inside its 9th checkpoint (its state written, its manifest not yet replaced) while
// rank 0 commits it: the ranks hold steps 9 and 8, and --resume continues both from
// step 8, the last one both completed (rank 0 from the state it kept),
// with the uninterrupted run's predictions, and removes DIR. Ranks given the directories
// of two different runs are refused (their secret keys differ).
TEST_F(DistributedRun, KilledRanksResumeFromTheirLastCommonCheckpoint) {
  const std::string n = " --insecure-ring-degree 2048 --streaming on";
  const Result whole = ranks(2, kCnn, kImages, "whole.npy", n);
  // Under a DRAM budget per rank, with each rank's named tier file (the checkpoints
  // reference its extents; rank 0 resumes from the state it kept, in its own tier file).
  fs::create_directories(dir_ / "tier");
  const std::string budget = " --dram-budget 3M --pmem-dir " + q(dir_ / "tier");
  ASSERT_EQ(whole.status, 0) << whole.output;
  // A wrapper that arms the hook on rank 1 only.
  const fs::path wrap = dir_ / "rank1_dies.sh";
  std::ofstream(wrap) << "#!/bin/sh\nif [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then export HEINFER_KILL_IN_CHECKPOINT=9; fi\n"
                         "exec \"$@\"\n";
  fs::permissions(wrap, fs::perms::owner_all);
  const auto killed = [&](const std::string& dir) {
    return sh(kMpirun + " -np 2 " + q(wrap) + " " + q(kExe) + " run " + q(kCnn) + " --input " + q(kImages) +
              " --output " + q(dir_ / "y.npy") + " --threads 1 --quiet --distributed" + n + budget + " --checkpoint " +
              q(dir_ / dir) + " --checkpoint-interval 0");
  };
  const Result first = killed("ck");
  ASSERT_NE(first.status, 0) << first.output;
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));
  const std::string manifest0 = slurp(dir_ / "ck" / "rank-0-of-2" / "checkpoint.json");
  const std::string manifest1 = slurp(dir_ / "ck" / "rank-1-of-2" / "checkpoint.json");
  EXPECT_EQ(nlohmann::json::parse(manifest0)["steps_done"], 9) << manifest0;
  EXPECT_EQ(nlohmann::json::parse(manifest0)["previous"]["steps_done"], 8) << manifest0;
  EXPECT_EQ(nlohmann::json::parse(manifest1)["steps_done"], 8) << manifest1;
  ASSERT_TRUE(nlohmann::json::parse(manifest0).contains("tier")) << manifest0;
  ASSERT_TRUE(nlohmann::json::parse(manifest1).contains("tier")) << manifest1;

  // Another run's directory for rank 1: refused before anything runs.
  ASSERT_NE(killed("other").status, 0);
  fs::rename(dir_ / "ck" / "rank-1-of-2", dir_ / "kept");
  fs::rename(dir_ / "other" / "rank-1-of-2", dir_ / "ck" / "rank-1-of-2");
  const std::string resume = " --resume " + q(dir_ / "ck") + " --checkpoint-interval 0";
  const Result mixed = ranks(2, kCnn, kImages, "y.npy", n + budget + resume);
  EXPECT_NE(mixed.status, 0);
  EXPECT_NE(mixed.output.find("different secret keys"), std::string::npos) << mixed.output;
  fs::remove_all(dir_ / "ck" / "rank-1-of-2");
  fs::rename(dir_ / "kept", dir_ / "ck" / "rank-1-of-2");

  const Result resumed = sh(kMpirun + " -np 2 " + q(kExe) + " run " + q(kCnn) + " --input " + q(kImages) + " --output " +
                            q(dir_ / "y.npy") + " --threads 1 --distributed" + n + budget + resume);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming after step 8 "), std::string::npos) << resumed.output;
  expect_same_predictions(logits("y.npy"), logits("whole.npy"), 64, "resumed against uninterrupted", 2e-3);
  EXPECT_FALSE(fs::exists(dir_ / "ck")) << "the checkpoint directory is removed after the run";
  for (const std::string& m : {manifest0, manifest1}) {
    const fs::path tier = nlohmann::json::parse(m)["tier"]["file"].get<std::string>();
    EXPECT_FALSE(fs::exists(tier)) << "the resumed run's tier file " << tier << " is removed";
  }
  expect_no_temporaries();
}

}  // namespace
}  // namespace heinfer
