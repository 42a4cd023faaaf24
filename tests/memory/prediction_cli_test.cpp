// The prediction tooling end to end: model::LoadOptions::input_shape, `heinfer inspect
// --batch --resolution --json` (checked against independent counts) and `heinfer profile
// plot` on a synthetic profile laid out as documented in runtime/profile.h.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../common/onnx_builder.h"
#include "../common/shell.h"
#include "model/error.h"
#include "model/load.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kTool = fs::path(HEINFER_BINARY_DIR) / "heinfer";

using Result = test::ShellResult;

/// Runs `heinfer ARGS` (with an optional environment prefix), stdout + stderr captured.
Result sh(const std::string& args, const std::string& env = "") {
  return test::run_shell(env + (env.empty() ? "" : " ") + test::shell_quote(kTool) + " " + args);
}

// x[3,4,4] -> Conv(4x3x3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(2x4).
test::ModelBuilder resolution_free_model() {
  test::ModelBuilder b;
  b.input("x", {3, 4, 4}).output("y");
  std::vector<float> w(108);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = (i % 5 == 0 ? -0.1f : 0.05f);
  b.initializer("w", {4, 3, 3, 3}, w);
  b.initializer("fw", {2, 4}, {0.5f, -0.25f, 0.125f, 1.0f, -0.5f, 0.25f, 0.75f, -1.0f});
  auto& c = b.node("Conv", {"x", "w"}, {"c"});
  test::attr(c, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  b.node("GlobalAveragePool", {"r"}, {"p"});
  b.node("Flatten", {"p"}, {"f"});
  auto& gm = b.node("Gemm", {"f", "fw"}, {"y"});
  test::attr(gm, "transB", std::int64_t{1});
  return b;
}

// x[1,4,4] -> Flatten -> Gemm(2x16): K is tied to the resolution.
test::ModelBuilder fixed_model() {
  test::ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y");
  b.initializer("fw", {2, 16}, std::vector<float>(32, 0.25f));
  b.node("Flatten", {"x"}, {"f"});
  auto& gm = b.node("Gemm", {"f", "fw"}, {"y"});
  test::attr(gm, "transB", std::int64_t{1});
  return b;
}

TEST(LoadInputShape, OverrideReachesEveryShape) {
  model::LoadOptions o;
  o.input_shape = std::vector<std::int64_t>{3, 8, 6};
  const model::Graph g = resolution_free_model().load(o);
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.inputs[0])].shape, (model::Shape{3, 8, 6}));
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.nodes[0].outputs[0])].shape, (model::Shape{4, 8, 6}));
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.outputs[0])].shape, (model::Shape{2}));
}

TEST(LoadInputShape, ClearErrors) {
  model::LoadOptions o;
  o.input_shape = std::vector<std::int64_t>{3, 8};
  try {
    resolution_free_model().load(o);
    FAIL() << "rank mismatch accepted";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("same rank"), std::string::npos) << e.what();
  }
  o.input_shape = std::vector<std::int64_t>{1, 8, 8};
  try {
    fixed_model().load(o);
    FAIL() << "a Gemm with K = 16 accepted 64 inputs";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot take the input shape [1, 8, 8]"), std::string::npos) << e.what();
  }
  o.input_shape = std::vector<std::int64_t>{1, 0, 8};
  EXPECT_THROW(fixed_model().load(o), model::ModelError);
}

class PredictionCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kTool)) GTEST_SKIP() << kTool << " not built";
    dir_ = fs::temp_directory_path() / ("heinfer_prediction_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path write_model(const test::ModelBuilder& b, const std::string& name) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << b.bytes();
    return p;
  }
  fs::path dir_;
};

TEST_F(PredictionCli, InspectPredictsAtAnotherResolution) {
  const fs::path model = write_model(resolution_free_model(), "free.onnx");
  const fs::path json = dir_ / "pred.json";
  const Result r = sh("inspect '" + model.string() + "' --batch 10000 --resolution 8x8 --threads 2 --json '" +
                      json.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("[10000, 4, 8, 8]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("predicted peak memory without a budget"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("predicted time for batch 10000"), std::string::npos) << r.output;
  std::ifstream in(json);
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("format"), "heinfer-inspect");
  EXPECT_EQ(j.at("input_shape"), (std::vector<std::int64_t>{3, 8, 8}));
  const auto& layers = j.at("layers");
  ASSERT_EQ(layers.size(), 5u);
  const std::int64_t n = j.at("params").at("n");
  const int L = static_cast<int>(j.at("params").at("coeff_bits").size()) - 1;
  const std::int64_t capacity = j.at("params").at("capacity");
  EXPECT_EQ(capacity, n);  // complex packing
  // Independent counts: Conv output 4·8·8 at level L-1; Relu round: fresh at L; pooled 4; logits 2.
  EXPECT_EQ(layers[0].at("ciphertexts"), 256);
  EXPECT_EQ(layers[0].at("level"), L - 1);
  EXPECT_EQ(layers[1].at("ciphertexts"), 256);
  EXPECT_EQ(layers[1].at("level"), L);
  EXPECT_EQ(layers[2].at("ciphertexts"), 4);
  EXPECT_EQ(layers[4].at("ciphertexts"), 2);
  // Conv live bytes: the 192 compact inputs (+ their expanded copies), 256 outputs before
  // the rescale, and per term (256 outputs × 27 taps) 8·(L+1) + 16 bytes of accumulators.
  const std::int64_t limb = n * 8;
  const std::int64_t conv_live = 192 * (L + 1) * limb * 2 + 256 * 2 * (L + 1) * limb + 256 * 27 * (8 * (L + 1) + 16);
  EXPECT_EQ(layers[0].at("live_bytes"), conv_live);
  const auto& m = j.at("memory");
  EXPECT_EQ(m.at("total_bytes").get<std::int64_t>(),
            m.at("peak_bytes").get<std::int64_t>() + m.at("key_bytes").get<std::int64_t>() +
                m.at("weight_bytes").get<std::int64_t>());
  EXPECT_TRUE(j.at("params").at("special_bits").empty());  // Conv, Relu, pools: no key switching
  EXPECT_EQ(m.at("key_bytes").get<std::int64_t>(), 0);     // so no relinearization or conjugation key
  EXPECT_EQ(m.at("weight_bytes").get<std::int64_t>(), (108 + 8) * 8);
  EXPECT_EQ(m.at("tiers").at("dram"), m.at("total_bytes"));
  EXPECT_EQ(m.at("tiers").at("pmem"), 0);
  const auto& t = j.at("time");
  EXPECT_EQ(t.at("batches").get<std::int64_t>(), (10000 + capacity - 1) / capacity);
  EXPECT_NEAR(t.at("total_seconds").get<double>(),
              t.at("batches").get<double>() * t.at("batch_seconds").get<double>() +
                  t.at("first_touch_seconds").get<double>(),
              1e-9);
  EXPECT_GT(t.at("batch_seconds").get<double>(), 0.0);
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "leftover " << e.path();
  }
}

// A fixed range (10^6, doubled by the margin: 2^21 at level 0) too large for q_0 <= 60 bits
// at 2^30 (21 + 1 + 30 + 10 noise bits): the scale is lowered until it fits.
TEST_F(PredictionCli, InspectLowersTheScaleForLargeRanges) {
  const fs::path model = write_model(resolution_free_model(), "free.onnx");
  const fs::path json = dir_ / "pred.json";
  const Result r = sh("inspect '" + model.string() + "' --batch 16 --range 1e26 --no-time --json '" + json.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ranges: fixed |value| <= 1e+26"), std::string::npos) << r.output;
  std::ifstream in(json);
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("ranges").at("mode"), "fixed");
  const int scale = j.at("params").at("scale_bits");
  EXPECT_LT(scale, 30);
  EXPECT_NE(r.output.find("note: scale lowered from 2^30 to 2^" + std::to_string(scale) + " "), std::string::npos)
      << r.output;
  EXPECT_LE(j.at("params").at("coeff_bits")[0].get<int>(), 60);
  EXPECT_TRUE(j.at("time").is_null());  // --no-time: memory only
  EXPECT_NE(r.output.find("time not predicted (--no-time)"), std::string::npos) << r.output;
}

// --limb-words 32: stored ciphertexts take 4 bytes per coefficient in the limbs of primes
// below 2^32; the Relu round's 256 fresh outputs are stored compact (c0 only).
TEST_F(PredictionCli, InspectPredicts32BitLimbWords) {
  const fs::path model = write_model(resolution_free_model(), "free.onnx");
  nlohmann::json j[2];
  const int words[2] = {64, 32};
  for (int k = 0; k < 2; ++k) {
    const fs::path json = dir_ / ("pred" + std::to_string(words[k]) + ".json");
    const Result r = sh("inspect '" + model.string() + "' --batch 16 --resolution 8x8 --no-time --limb-words " +
                        std::to_string(words[k]) + " --json '" + json.string() + "'");
    ASSERT_EQ(r.status, 0) << r.output;
    std::ifstream in(json);
    j[k] = nlohmann::json::parse(in);
    EXPECT_EQ(j[k].at("memory").at("limb_words"), words[k]);
  }
  // The chains may differ: with 32-bit words the pooled features' refresh pays ({27, 27,
  // 30}: three words, against {41, 30, 30}: four; plan::plan_with_refreshes).
  std::int64_t bytes[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    const std::int64_t n = j[k].at("params").at("n");
    for (int b : j[k].at("params").at("coeff_bits").get<std::vector<int>>()) {
      bytes[k] += (words[k] == 32 && b <= 32 ? 4 : 8) * n;
    }
    EXPECT_EQ(j[k].at("layers")[1].at("output_bytes"), 256 * bytes[k]) << words[k];
  }
  EXPECT_LT(bytes[1], bytes[0]);
  EXPECT_EQ(j[0].at("params").at("levels"), 2);
  EXPECT_EQ(j[1].at("params").at("levels"), 1);
  // (The peak itself is the Conv's outputs and working set here, expanded either way.)
  EXPECT_LE(j[1].at("memory").at("peak_streamed_bytes").get<std::int64_t>(),
            j[0].at("memory").at("peak_streamed_bytes").get<std::int64_t>());
  const Result bad = sh("inspect '" + model.string() + "' --batch 16 --no-time --limb-words 16");
  EXPECT_NE(bad.status, 0);
}

TEST_F(PredictionCli, InspectRefusesAResolutionTheGraphCannotTake) {
  const fs::path model = write_model(fixed_model(), "fixed.onnx");
  const Result r = sh("inspect '" + model.string() + "' --resolution 8x8");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("cannot take the input shape [1, 8, 8]"), std::string::npos) << r.output;
  const Result bad = sh("inspect '" + model.string() + "' --resolution 8by8");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("use H or HxW"), std::string::npos) << bad.output;
}

/// A profile exactly in the layout of runtime/profile.h.
std::string synthetic_profile() {
  nlohmann::json layers = nlohmann::json::array(), timeline = nlohmann::json::array();
  const char* ops[] = {"Conv", "Relu", "MaxPool", "Gemm"};
  for (int k = 0; k < 4; ++k) {
    layers.push_back({{"index", k}, {"name", std::string("layer") + std::to_string(k)}, {"op", ops[k]},
                      {"start", 0.5 * k}, {"seconds", 0.4 + 0.1 * k}, {"ciphertexts", 100 * (k + 1)},
                      {"level", k == 3 ? -1 : 1}, {"dram_bytes", 1000000 * (k + 1)}, {"pmem_bytes", 500000 * k},
                      {"dram_peak_bytes", 1200000 * (k + 1)}, {"pmem_peak_bytes", 600000 * k},
                      {"rss_anon_peak_bytes", 3000000}, {"bytes_to_client", 1000}, {"bytes_to_server", 2000},
                      {"rounds", k % 2}});
  }
  for (int i = 0; i <= 20; ++i) {
    timeline.push_back({{"t", 0.1 * i}, {"dram_bytes", 100000 * i}, {"pmem_bytes", 50000 * (20 - i)},
                        {"rss_anon_bytes", 2000000 + 1000 * i}});
  }
  const nlohmann::json tier = {{"peak_bytes", 4000000}, {"bytes_written", 100}, {"bytes_read", 200}};
  const nlohmann::json p = {
      {"format", "heinfer-profile"}, {"version", 1}, {"model", "m.onnx"}, {"batch", 2048}, {"threads", 2},
      {"params", {{"n", 4096}, {"levels", 2}, {"log2_qp", 109}, {"packing", "complex"}}},
      {"memory", {{"policy", "tiered"}, {"dram_budget", 2000000}, {"pmem_dir", "/tmp/tier"}}},
      {"seconds", 2.0}, {"rounds", 2}, {"bytes_to_client", 4000}, {"bytes_to_server", 8000},
      {"peak_rss_anon_bytes", 3000000}, {"tiers", {{"dram", tier}, {"pmem", tier}}},
      {"layers", layers}, {"timeline", timeline}};
  return p.dump(1);
}

class ProfilePlot : public PredictionCli {
 protected:
  void SetUp() override {
    PredictionCli::SetUp();
    if (IsSkipped()) return;
    if (std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "Debian's python3-matplotlib is not installed";
    }
  }
  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }
};

TEST_F(ProfilePlot, DrawsTheDocumentedLayout) {
  const fs::path in = write("p.json", synthetic_profile());
  const fs::path out = dir_ / "p.png";
  const Result r = sh("profile plot '" + in.string() + "' '" + out.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("4 layers, 21 samples"), std::string::npos) << r.output;
  std::ifstream f(out, std::ios::binary);
  std::string magic(8, '\0');
  f.read(magic.data(), 8);
  EXPECT_EQ(magic, std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(fs::file_size(out), 10000u);  // two panels with curves and bars, not an empty canvas
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".plot_profile.", 0), std::string::npos) << "leftover " << e.path();
  }
}

TEST_F(ProfilePlot, ClearErrors) {
  const std::string out = "'" + (dir_ / "x.png").string() + "'";
  Result r = sh("profile plot '" + (dir_ / "missing.json").string() + "' " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no such file"), std::string::npos) << r.output;
  r = sh("profile plot '" + write("bad.json", "{not json").string() + "' " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("not valid JSON"), std::string::npos) << r.output;
  r = sh("profile plot '" + write("other.json", R"({"format": "something-else", "version": 1})").string() + "' " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("not a heinfer profile"), std::string::npos) << r.output;
  nlohmann::json p = nlohmann::json::parse(synthetic_profile());
  p["layers"][2].erase("seconds");
  r = sh("profile plot '" + write("nofield.json", p.dump()).string() + "' " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("layers[2]: missing field 'seconds'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.png"));
  r = sh("profile plot '" + write("ok.json", synthetic_profile()).string() + "' " + out,
         "HEINFER_TOOLS_DIR='" + dir_.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("HEINFER_TOOLS_DIR"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace heinfer
