// Memory-bounded execution of the large models (MobileNetV2, ResNet-50), shared by the
// suite (tests/memory/, 32x32) and the long tests (tests/long/, 224x224): a model is
// exported, then encrypted end to end by `heinfer run` under a DRAM budget well below its
// unbounded footprint, with a file tier (--pmem-dir):
//  - outputs agree with the plaintext executor;
//  - the store keeps at most the budget in DRAM, the tier is used, and the sampled peak
//    anonymous memory (RssAnon: the heap, not the tier's file-backed pages) stays within
//    budget + 1 GiB (+ 2 GiB at 224x224: the bookkeeping of 10^6-ciphertext tensors);
//  - every layer's output level, ciphertext count, client rounds and (for layers run
//    whole) stored bytes equal the plan's (the profile carries both);
//  - a run killed (SIGKILL) mid-model leaves the previous output file intact, no
//    temporary files and nothing in the tier directory.
// Models: torchvision architectures with seeded random weights exported at test time by
// tools/export_torchvision.py (skipped without /usr/bin/python3 + torch). Ring degree
// 64 (--insecure-ring-degree, tests only) keeps the CI time low: ciphertexts are 128
// times smaller than at N = 8192 and so are the budgets; the memory behaviour is the same
// at secure N with larger ciphertexts (bench/large_models.sh).
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/load.h"
#include "runtime/batch_runner.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"

namespace heinfer::test {

namespace fs = std::filesystem;
const fs::path kTool = fs::path(HEINFER_SOURCE_DIR) / "tools" / "export_torchvision.py";
const fs::path kExe = fs::path(HEINFER_BINARY_DIR) / "heinfer";

struct Case {
  std::string arch, width, budget;
  std::int64_t budget_bytes;
  int kill_after;     ///< node index for the crash run
  std::string extra;  ///< more `heinfer run` options
  std::string ring_degree;
  std::string resolution = "32";
  /// Peak anonymous memory allowed above the budget: the weights, the working set and the
  /// in-memory bookkeeping of every live ciphertext (object, shared pointer, store
  /// record), which the budget (ciphertext bytes) does not count.
  std::int64_t rss_allowance = std::int64_t{1} << 30;
};

inline void PrintTo(const Case& c, std::ostream* os) {
  *os << c.arch << " " << c.width << " at " << c.resolution << " budget " << c.budget;
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Exports the model, runs it encrypted under the budget with a file tier and checks the
/// outputs, the memory, the plan replay and a crash mid-model (file comment).
inline void run_large_model_under_budget(const Case& c) {
  if (!fs::exists("/usr/bin/python3") || !fs::exists(kTool) ||
      std::system("/usr/bin/python3 -c 'import torch, torchvision, onnx' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with torch, torchvision, onnx and " << kTool;
  }
  if (!fs::exists(kExe)) GTEST_SKIP() << "build the `heinfer` target first";
  const fs::path dir = fs::temp_directory_path() / ("heinfer_large_enc_" + c.arch + "_" + c.resolution + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "tier");
  const fs::path onnx = dir / "m.onnx", x = dir / "x.npy", y = dir / "y.npy", prof = dir / "profile.json";
  const std::string export_cmd = "/usr/bin/python3 '" + kTool.string() + "' --arch " + c.arch + " --width " + c.width +
                                 " --resolution " + c.resolution + " --threads 1 --out '" + onnx.string() + "' --input-npy '" +
                                 x.string() + "' --count 4 > '" + (dir / "export.log").string() + "' 2>&1";
  ASSERT_EQ(std::system(export_cmd.c_str()), 0) << export_cmd;

  const std::string run_cmd = kExe.string() + " run '" + onnx.string() + "' --input '" + x.string() + "' --output '" +
                              y.string() + "' --insecure-ring-degree " + c.ring_degree + " --threads 2 --quiet " + c.extra +
                              " --dram-budget " + c.budget + " --pmem-dir '" + (dir / "tier").string() + "' --profile '" + prof.string() +
                              "'";
  ASSERT_EQ(std::system((run_cmd + " > '" + (dir / "run.log").string() + "' 2>&1").c_str()), 0)
      << slurp(dir / "run.log");

  // Outputs against the plaintext executor.
  const model::Graph g = model::load_model(onnx);
  const auto xs = runtime::read_npy(x).to_double();
  const std::vector<float> ref = runtime::run_plain_batched(g, xs, 4, 4);
  const std::vector<double> enc = runtime::read_npy(y).to_double();
  ASSERT_EQ(enc.size(), ref.size());
  double scale = 0, err = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(ref[i])));
    err = std::max(err, std::fabs(enc[i] - static_cast<double>(ref[i])));
  }
  // CKKS at a 28-30 bit scale with the masks folded into the weights: ~1e-3 relative.
  EXPECT_LE(err, 1e-2 * std::max(scale, 1e-3)) << "max |encrypted - plaintext| relative to max |logit|";
  const std::vector<float> encf(enc.begin(), enc.end());
  const auto classes = static_cast<std::int64_t>(ref.size() / 4);
  EXPECT_EQ(runtime::argmax_rows(encf, 4, classes), runtime::argmax_rows(ref, 4, classes));

  // Memory, from the profile.
  const auto p = nlohmann::json::parse(slurp(prof));
  const std::int64_t dram_peak = p["tiers"]["dram"]["peak_bytes"], pmem_peak = p["tiers"]["pmem"]["peak_bytes"];
  const std::int64_t rss_anon = p["peak_rss_anon_bytes"];
  std::int64_t footprint = 0;  // a lower bound of the unbounded footprint: stored bytes after a layer
  for (const auto& l : p["layers"]) {
    footprint = std::max(footprint, l["dram_bytes"].get<std::int64_t>() + l["pmem_bytes"].get<std::int64_t>());
  }
  EXPECT_LE(dram_peak, c.budget_bytes);
  EXPECT_GT(pmem_peak, 0) << "the tier was not used";
  EXPECT_GE(footprint, 3 * c.budget_bytes) << "the budget is not well below the footprint";
  EXPECT_GT(rss_anon, 0);
  EXPECT_LE(rss_anon, c.budget_bytes + c.rss_allowance)
      << "peak anonymous memory above budget + " << (c.rss_allowance >> 20) << " MiB";
  EXPECT_TRUE(fs::is_empty(dir / "tier"));
  // The executor ran the plan: every layer's output level, ciphertext count and rounds are the
  // plan's, and the bytes stored for the output of every layer the plan runs whole are
  // its footprint's.
  int compared_bytes = 0;
  for (const auto& l : p["layers"]) {
    ASSERT_TRUE(l.contains("plan")) << l.dump();
    if (l["op"] == "Softmax" || l["op"] == "LogSoftmax") continue;
    EXPECT_EQ(l["level"], l["plan"]["level"]) << l["name"];
    EXPECT_EQ(l["ciphertexts"], l["plan"]["ciphertexts"]) << l["name"];
    EXPECT_EQ(l["rounds"], l["plan"]["rounds"]) << l["name"];
    if (!l["plan"]["streamed"].get<bool>() && l["plan"]["stored_bytes"].get<std::int64_t>() > 0) {
      EXPECT_EQ(l["stored_bytes"], l["plan"]["stored_bytes"]) << l["name"];
      ++compared_bytes;
    }
  }
  EXPECT_GT(compared_bytes, 0);
  std::printf("%s %s: max |logit error| %.3g (max |logit| %.3g), %.1f s; budget %s: DRAM peak %.0f MiB, tier peak "
              "%.0f MiB, stored after a layer up to %.0f MiB, RssAnon peak %.0f MiB\n",
              c.arch.c_str(), c.width.c_str(), err, scale, p["seconds"].get<double>(), c.budget.c_str(),
              static_cast<double>(dram_peak) / 1048576.0, static_cast<double>(pmem_peak) / 1048576.0,
              static_cast<double>(footprint) / 1048576.0, static_cast<double>(rss_anon) / 1048576.0);

  // Crash mid-model: the previous output survives intact, nothing is left behind.
  const std::string before = slurp(y);
  const std::string crash = "HEINFER_KILL_AFTER_NODE=" + std::to_string(c.kill_after) + " " + run_cmd + " > '" +
                            (dir / "crash.log").string() + "' 2>&1";
  const int status = std::system(crash.c_str());
  EXPECT_NE(status, 0) << slurp(dir / "crash.log");
  EXPECT_NE(slurp(dir / "crash.log").find("fault injection"), std::string::npos) << slurp(dir / "crash.log");
  EXPECT_EQ(slurp(y), before) << "the output file changed after a crash";
  EXPECT_TRUE(fs::is_empty(dir / "tier"));
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << e.path();
  }
  fs::remove_all(dir);
}

}  // namespace heinfer::test
