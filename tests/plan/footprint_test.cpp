// plan::predict_footprint against hand counts on small graphs, against the key sizes
// ckks::KeyGenerator really produces, and against a measured encrypted run of the
// Fashion-MNIST CNN (per-node ciphertexts and levels exactly; live heap bytes loosely).
#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "../common/onnx_builder.h"
#include "predict.h"
#include "plan/footprint.h"
#include "model/error.h"
#include "model/load.h"
#include "runtime/encrypted_executor.h"
#include "runtime/local_client.h"
#include "runtime/npy.h"
#include "plan/parameters.h"
#include "runtime/calibration.h"

namespace heinfer {
namespace {

using plan::NodeKind;
using test::Options;
using test::predict;

constexpr std::size_t kN = 4096;
const std::filesystem::path kModels = std::filesystem::path(HEINFER_SOURCE_DIR) / "models";

/// A plan with N = 4096 and chain {40, 30, 30} (L = 2), complex packing, bounds 1.
plan::Parameters small_plan(const model::Graph& g) {
  plan::Parameters plan;
  plan.params = ckks::EncryptionParameters(kN, {40, 30, 30}, {40}, ckks::SecurityLevel::None);
  plan.bounds.assign(g.tensors.size(), 1.0);
  return plan;
}

/// Bytes of `count` ciphertexts at level l (independent restatement of the size rule).
std::int64_t cts(std::int64_t count, int level, bool compact = false) {
  return count * (compact ? 1 : 2) * (level + 1) * static_cast<std::int64_t>(kN) * 8;
}

std::vector<float> values(std::size_t n, float v) { return std::vector<float>(n, v); }

void attr_pads(onnx::NodeProto& n) { test::attr(n, "pads", std::vector<std::int64_t>{1, 1, 1, 1}); }

// x[1,4,4] -> Conv(2x1x3x3, pad 1) -> Relu -> Flatten -> Gemm(3x32).
model::Graph conv_relu_gemm() {
  test::ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y");
  b.initializer("w", {2, 1, 3, 3}, values(18, 0.5f));
  b.initializer("fw", {3, 32}, values(96, 0.25f));
  auto& c = b.node("Conv", {"x", "w"}, {"c"});
  test::attr(c, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  b.node("Flatten", {"r"}, {"f"});
  auto& gm = b.node("Gemm", {"f", "fw"}, {"y"});
  test::attr(gm, "transB", std::int64_t{1});
  return b.load();
}

TEST(Footprint, HandCountConvReluGemm) {
  const model::Graph g = conv_relu_gemm();
  ASSERT_EQ(g.nodes.size(), 4u);
  const auto plan = small_plan(g);
  Options o;
  o.lowest_level_storage = false;
  const auto f = predict(g, plan, o);
  ASSERT_EQ(f.nodes.size(), 4u);
  // Levels: conv rescales (2 -> 1), the Relu round returns fresh top-level ciphertexts,
  // Flatten shares them, the Gemm folds the pending factors (2 -> 1).
  EXPECT_EQ(f.plan.nodes[0].output_level, 1);
  EXPECT_EQ(f.plan.nodes[1].output_level, 2);
  EXPECT_EQ(f.plan.nodes[2].output_level, 2);
  EXPECT_EQ(f.plan.nodes[3].output_level, 1);
  EXPECT_EQ(f.plan.nodes[1].kind, plan::NodeKind::Relu);
  EXPECT_EQ(f.plan.nodes[0].output_ciphertexts, 32);
  EXPECT_EQ(f.plan.nodes[3].output_ciphertexts, 3);
  EXPECT_EQ(f.nodes[0].mac_terms, 32 * 9);  // model::macs counts every tap (padding included)
  EXPECT_EQ(f.nodes[3].mac_terms, 96);
  EXPECT_EQ(f.plan.nodes[1].round_ciphertexts, 32);
  // Live bytes, by hand (transient accumulators: per term 8·(l+1) + 16 bytes).
  const std::int64_t x = cts(16, 2, true);
  const std::int64_t live0 = x + x /*expanded copy*/ + cts(32, 2) /*pre-rescale outputs*/ + 288 * (8 * 3 + 16);
  const std::int64_t c = cts(32, 1);
  const std::int64_t live1 = c + cts(32, 1) /*masked*/ + cts(32, 2, true) /*replies*/;
  const std::int64_t r = cts(32, 2, true);
  const std::int64_t live2 = r;
  const std::int64_t live3 = r + r /*expanded copy*/ + cts(3, 2) + 96 * (8 * 3 + 16);
  EXPECT_EQ(f.nodes[0].live_bytes, live0);
  EXPECT_EQ(f.nodes[1].live_bytes, live1);
  EXPECT_EQ(f.nodes[2].live_bytes, live2);
  EXPECT_EQ(f.nodes[3].live_bytes, live3);
  EXPECT_EQ(f.nodes[0].output_bytes, c);
  EXPECT_EQ(f.nodes[1].output_bytes, r);
  EXPECT_EQ(f.nodes[2].output_bytes, 0);  // data movement shares the Relu's ciphertexts
  EXPECT_EQ(f.peak_bytes, std::max({live0, live1, live2, live3}));
  EXPECT_EQ(f.peak_node, 1);  // 352 vs 288 ciphertext-limb units at node 0
  EXPECT_GT(live1, live0);
  EXPECT_EQ(f.weight_bytes, (18 + 96) * 8);
  EXPECT_EQ(f.total_bytes(), f.peak_bytes + f.key_bytes + f.weight_bytes);
  // Tiled execution: the working set beyond the final outputs is capped at tile_bytes;
  // a tiled linear node expands its compact inputs once for all tiles (not capped).
  Options tiled = o;
  tiled.tile_bytes = cts(8, 1);
  const auto t = predict(g, plan, tiled);
  EXPECT_EQ(t.nodes[0].live_bytes, x + c /*final outputs*/ + x /*expanded once*/ + tiled.tile_bytes);
  EXPECT_EQ(t.nodes[1].live_bytes, c + r /*replies*/ + tiled.tile_bytes /*masked copies, in chunks*/);
  EXPECT_EQ(t.nodes[2].live_bytes, live2);
  // Without compact fresh ciphertexts the input and the Relu output count expanded.
  o.compact_fresh = false;
  const auto e = predict(g, plan, o);
  EXPECT_EQ(e.nodes[0].live_bytes, cts(16, 2) + cts(32, 2) + 288 * 40);
  EXPECT_EQ(e.nodes[1].output_bytes, cts(32, 2));
}

// y = x + x (level 2); q = (x·3)·3 (level 0); r = q + y: y is only read at level 0.
TEST(Footprint, LowestLevelStorageAndAlignmentCopies) {
  test::ModelBuilder b;
  b.input("x", {4}).output("r");
  b.initializer("three", {1}, {3.0f});
  b.node("Add", {"x", "x"}, {"y"});
  b.node("Mul", {"x", "three"}, {"p"});
  b.node("Mul", {"p", "three"}, {"q"});
  b.node("Add", {"q", "y"}, {"r"});
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 4u);
  const auto plan = small_plan(g);
  Options o;
  o.compact_fresh = false;
  o.lowest_level_storage = false;
  const auto hi = predict(g, plan, o);
  o.lowest_level_storage = true;
  const auto lo = predict(g, plan, o);
  EXPECT_EQ(hi.plan.nodes[0].output_level, 2);
  EXPECT_EQ(hi.nodes[0].additions, 8);
  EXPECT_FALSE(hi.plan.nodes[0].rescale);
  EXPECT_EQ(hi.plan.nodes[2].output_level, 0);
  EXPECT_EQ(hi.plan.nodes[3].output_level, 0);
  EXPECT_EQ(hi.nodes[3].aligned, 4);
  EXPECT_EQ(hi.nodes[0].output_bytes, cts(4, 2));
  EXPECT_EQ(lo.nodes[0].output_bytes, cts(4, 0));
  // Node 3 holds q and y plus (stored high) a level-0 copy of y, and its output.
  // (+ 16 bytes of (pointer, weight) per addition term).
  EXPECT_EQ(hi.nodes[3].live_bytes, cts(4, 0) + cts(4, 2) + cts(4, 0) + cts(4, 0) + 8 * 16);
  EXPECT_EQ(lo.nodes[3].live_bytes, cts(4, 0) + cts(4, 0) + cts(4, 0) + 8 * 16);
}

TEST(Footprint, KeyBytesMatchTheKeyGenerator) {
  for (auto packing : {ckks::Packing::Complex, ckks::Packing::Real}) {
    plan::Parameters plan;
    plan.packing = packing;
    plan.params = ckks::EncryptionParameters(4096, {40, 30, 30, 30}, {40}, ckks::SecurityLevel::None);
    auto ctx = ckks::CKKSContext::create(plan.params);
    runtime::LocalClient client(ctx, packing, plan.scale());
    const auto& k = client.evaluation_keys();
    std::int64_t real = static_cast<std::int64_t>(k.relin.key.data.size()) * 8;
    for (const auto& [elt, key] : k.galois.keys) real += static_cast<std::int64_t>(key.data.size()) * 8;
    EXPECT_EQ(plan::evaluation_key_bytes(plan), real) << ckks::packing_name(packing);
  }
}

TEST(Footprint, UnsupportedNodeIsAModelError) {
  test::ModelBuilder b;
  b.input("x", {4}).output("s");
  b.node("Softmax", {"x"}, {"t"});
  b.node("Relu", {"t"}, {"s"});
  const model::Graph g = b.load();
  EXPECT_THROW(predict(g, small_plan(g)), model::ModelError);
}

// A MobileNetV2-like block (ReLU6 = Clip(0, 6), depthwise convolution, residual Add) run
// by the real executor (N = 2048, insecure): every node's ciphertexts and level as predicted.
TEST(Footprint, ClipBlockLevelsMatchTheExecutor) {
  test::ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y");
  std::vector<float> w1(8), wd(36), w2(8);
  for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = i % 3 == 0 ? -0.4f : 0.3f;
  for (std::size_t i = 0; i < wd.size(); ++i) wd[i] = i % 4 == 0 ? -0.2f : 0.15f;
  for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = i % 2 == 0 ? 0.5f : -0.25f;
  b.initializer("w1", {4, 2, 1, 1}, w1).initializer("wd", {4, 1, 3, 3}, wd).initializer("w2", {2, 4, 1, 1}, w2);
  b.initializer("lo", {}, {0.0f}).initializer("hi", {}, {6.0f});
  b.node("Conv", {"x", "w1"}, {"e"});
  b.node("Clip", {"e", "lo", "hi"}, {"e6"});
  auto& d = b.node("Conv", {"e6", "wd"}, {"d"});
  test::attr(d, "group", std::int64_t{4});
  test::attr(d, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Clip", {"d", "lo", "hi"}, {"d6"});
  b.node("Conv", {"d6", "w2"}, {"p"});
  b.node("Add", {"p", "x"}, {"y"});
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 6u);
  std::vector<float> xs(2 * 16 * 8);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>((i * 37) % 17) / 8.0f - 1.0f;
  const runtime::PlainTensor x = runtime::from_batch_major(std::span<const float>(xs), 8, {2, 4, 4});
  plan::Parameters plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}));
  plan.params = ckks::EncryptionParameters(2048, plan.params.coeff_bits(), plan.params.special_bits(),
                                           ckks::SecurityLevel::None);
  const auto f = predict(g, plan);
  EXPECT_EQ(f.plan.nodes[1].kind, plan::NodeKind::Clip);
  EXPECT_EQ(f.plan.nodes[1].output_level, f.max_level - 1);  // recombined at the top level
  EXPECT_EQ(f.plan.nodes[1].round_ciphertexts, 2 * 4 * 16);  // one window per finite bound
  runtime::EncryptedSession s(g, plan);
  runtime::EncryptedRunStats st;
  s.executor->run(*s.client, {x}, st);
  ASSERT_EQ(st.layers.size(), g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    EXPECT_EQ(f.plan.nodes[k].output_ciphertexts, st.layers[k].ciphertexts) << g.nodes[k].name;
    EXPECT_EQ(f.plan.nodes[k].output_level, st.layers[k].level) << g.nodes[k].name;
  }
}

/// Samples the heap in use (glibc mallinfo2: all arenas + mmapped chunks) every ~0.5 ms.
class HeapSampler {
 public:
  HeapSampler() : base_(in_use()), peak_(base_) {
    thread_ = std::thread([this] {
      while (!stop_) {
        const std::int64_t v = in_use();
        std::int64_t p = peak_.load();
        while (v > p && !peak_.compare_exchange_weak(p, v)) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    });
  }
  ~HeapSampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::int64_t growth() const { return peak_.load() - base_; }
  static std::int64_t in_use() {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
  }

 private:
  std::int64_t base_;
  std::atomic<std::int64_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The real executor on the CNN (N = 2048, insecure, to stay fast): every node's output
// ciphertext count and level as predicted; the peak heap growth during the run within
// [0.6, 1.6] × the predicted peak (ciphertexts and working sets; the heap also holds
// allocator slack, e.g. rescaled outputs keeping the capacity of their input level).
TEST(Footprint, FashionMnistCnnAgainstTheExecutor) {
  if (!std::filesystem::exists(kModels / "fmnist_cnn.onnx")) GTEST_SKIP() << "models/ not present";
  const model::Graph g = model::load_model(kModels / "fmnist_cnn.onnx");
  const auto images = runtime::read_npy(kModels / "fmnist_test64_images.npy").to_double();
  const runtime::PlainTensor x = runtime::from_batch_major(std::span<const double>(images), 64, {1, 28, 28});
  plan::Parameters plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}));
  plan.params = ckks::EncryptionParameters(2048, plan.params.coeff_bits(), plan.params.special_bits(),
                                           ckks::SecurityLevel::None);
  const auto f = predict(g, plan);
  Options expanded;  // fresh ciphertexts expanded, stored at their production level
  expanded.compact_fresh = false;
  expanded.lowest_level_storage = false;
  const auto fe = predict(g, plan, expanded);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // as `heinfer run`: freed ciphertexts stay in the heap
  runtime::EncryptedSession s(g, plan);
  runtime::EncryptedRunStats st;
  std::int64_t growth = 0;
  {
    HeapSampler sampler;
    s.executor->run(*s.client, {x}, st);
    sampler.stop();
    growth = sampler.growth();
  }
  ASSERT_EQ(st.layers.size(), g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    if (f.plan.nodes[k].kind == plan::NodeKind::FinalSoftmax) continue;
    EXPECT_EQ(f.plan.nodes[k].output_ciphertexts, st.layers[k].ciphertexts) << g.nodes[k].name;
    EXPECT_EQ(f.plan.nodes[k].output_level, st.layers[k].level) << g.nodes[k].name;
  }
  const double ratio = static_cast<double>(growth) / static_cast<double>(f.peak_bytes);
  std::printf("CNN N=2048 L=%d: predicted peak %.1f MiB (all expanded %.1f MiB, node %lld), measured heap "
              "growth %.1f MiB (ratio %.2f)\n",
              f.max_level, static_cast<double>(f.peak_bytes) / 1048576.0,
              static_cast<double>(fe.peak_bytes) / 1048576.0, static_cast<long long>(f.peak_node),
              static_cast<double>(growth) / 1048576.0, ratio);
  EXPECT_GT(ratio, 0.6);
  EXPECT_LT(ratio, 1.6);
  EXPECT_LE(f.peak_bytes, fe.peak_bytes);  // compact fresh ciphertexts only ever save memory
}

// ---- streaming across layers (Options::streaming) ----

/// x [1, H, H] -> (Conv 3x3 pad 1 -> Relu) with channels 1 -> 8 -> 8 -> 8 -> 1 ->
/// GlobalAveragePool -> Flatten -> Gemm: the wide tensors are internal to the segment.
model::Graph conv_chain(std::int64_t h) {
  test::ModelBuilder b;
  b.input("x", {1, h, h}).output("y");
  const std::vector<std::int64_t> channels{1, 8, 8, 8, 1};
  std::string in = "x";
  for (std::size_t i = 0; i + 1 < channels.size(); ++i) {
    const std::string index = std::to_string(i);
    const std::string c = std::string("c").append(index), r = std::string("r").append(index);
    const std::int64_t ci = channels[i], co = channels[i + 1];
    b.initializer(c + "w", {co, ci, 3, 3}, values(static_cast<std::size_t>(co * ci * 9), 0.25f));
    attr_pads(b.node("Conv", {in, c + "w"}, {c}));
    b.node("Relu", {c}, {r});
    in = r;
  }
  b.node("GlobalAveragePool", {in}, {"gap"});
  b.node("Flatten", {"gap"}, {"f"});
  b.initializer("fw", {3, 1}, values(3, 0.5f));
  test::attr(b.node("Gemm", {"f", "fw"}, {"y"}), "transB", std::int64_t{1});
  return b.load();
}

TEST(Footprint, StreamingLowersThePeakOfAConvChain) {
  const model::Graph g = conv_chain(32);
  const auto plan = small_plan(g);
  Options o;
  o.tile_bytes = cts(8, 2);  // bands of max(1, 8 / 8) = 1 ciphertext: one row per band
  const auto whole = predict(g, plan, o);
  o.streaming = true;
  const auto streamed = predict(g, plan, o);
  EXPECT_EQ(streamed.unstreamed_peak_bytes, whole.peak_bytes);
  EXPECT_EQ(whole.unstreamed_peak_bytes, whole.peak_bytes);
  ASSERT_EQ(streamed.nodes.size(), whole.nodes.size());
  for (std::size_t k = 0; k < whole.nodes.size(); ++k) {  // the counts do not change
    EXPECT_EQ(streamed.nodes[k].output_bytes, whole.nodes[k].output_bytes);
    EXPECT_EQ(streamed.plan.nodes[k].output_level, whole.plan.nodes[k].output_level);
    EXPECT_GT(streamed.nodes[k].live_bytes, 0);
    EXPECT_LE(streamed.nodes[k].live_bytes, streamed.peak_bytes);
  }
  // The encrypted input [1, 32, 32] (compact) stays whole until the first conv is done
  // (the last step of the segment), and so does the segment output r3 (read by the
  // GlobalAveragePool after it); the 8-channel tensors hold a few rows each.
  const std::int64_t ends = cts(32 * 32, 2, true) * 2;
  EXPECT_GE(streamed.peak_bytes, ends);
  EXPECT_LT(streamed.peak_bytes, ends + 4 * cts(3 * 8 * 32, 2));
  EXPECT_LT(streamed.peak_bytes, whole.peak_bytes);
  std::printf("conv chain 32x32: peak %lld bytes unstreamed, %lld streamed (%.3f)\n",
              static_cast<long long>(whole.peak_bytes), static_cast<long long>(streamed.peak_bytes),
              static_cast<double>(streamed.peak_bytes) / static_cast<double>(whole.peak_bytes));
  EXPECT_LT(streamed.peak_bytes, whole.peak_bytes / 2);
  // What the peak holds adds up to it, largest first; the input and r3 are whole, and
  // every part names a tensor of the graph (or is the band's working set).
  ASSERT_FALSE(streamed.peak_parts.empty());
  EXPECT_TRUE(whole.peak_parts.empty());  // unstreamed: not broken down
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < streamed.peak_parts.size(); ++i) {
    const auto& part = streamed.peak_parts[i];
    sum += part.bytes;
    if (i > 0) {
      EXPECT_GE(streamed.peak_parts[i - 1].bytes, part.bytes);
    }
    EXPECT_GE(part.tensor, -1);
    EXPECT_LT(part.tensor, static_cast<model::TensorId>(g.tensors.size()));
    if (part.tensor >= 0 && part.row_end > part.row_begin) {  // rows of a [C, H, W] tensor
      EXPECT_GE(part.row_begin, 0);
      EXPECT_LE(part.row_end, g.tensors[static_cast<std::size_t>(part.tensor)].shape[1]);
    }
  }
  EXPECT_EQ(sum, streamed.peak_bytes);
  EXPECT_EQ(std::count_if(streamed.peak_parts.begin(), streamed.peak_parts.end(),
                          [](const auto& part) { return part.tensor == -1; }),
            1);  // one working set: the band's

  // Bands as large as the tensors: one band per node, in graph order: the same peak.
  o.tile_bytes = std::int64_t{1} << 50;
  const auto one_band = predict(g, plan, o);
  o.streaming = false;
  EXPECT_EQ(one_band.peak_bytes, predict(g, plan, o).peak_bytes);
}

// What a tiered run needs in DRAM (hot_peak_bytes): all of the peak without streaming;
// with streaming, at most the peak; with a cut, not the tensor crossing it (computed
// whole, read only by the next segment), which the peak of live bytes still holds.
TEST(Footprint, HotPeakLeavesTheTensorCrossingACutOut) {
  const model::Graph g = conv_chain(32);
  const auto plan = small_plan(g);
  Options o;
  o.tile_bytes = cts(8, 2);
  const auto whole = predict(g, plan, o);
  EXPECT_EQ(whole.hot_peak_bytes, whole.peak_bytes);
  for (const auto& nf : whole.nodes) EXPECT_EQ(nf.hot_bytes, nf.live_bytes);
  o.streaming = true;
  const auto uncut = predict(g, plan, o);
  EXPECT_GT(uncut.hot_peak_bytes, 0);
  EXPECT_LE(uncut.hot_peak_bytes, uncut.peak_bytes);
  // Nodes: c0 r0 c1 r1 c2 r2 c3 r3 gap flatten gemm; cut before c2: r1 crosses.
  ASSERT_EQ(g.nodes[4].op, model::OpType::Conv);
  ASSERT_EQ(g.nodes[3].op, model::OpType::Relu);
  const std::int64_t crossing = uncut.nodes[3].output_bytes;
  ASSERT_GT(crossing, 0);
  o.segment_starts = {4};
  const auto cut = predict(g, plan, o);
  EXPECT_GE(cut.peak_bytes, crossing) << "the crossing tensor exists whole";
  EXPECT_LT(cut.hot_peak_bytes, crossing) << "and is not counted as hot";
  EXPECT_LE(cut.hot_peak_bytes, cut.peak_bytes);
  std::int64_t hot_max = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    EXPECT_LE(cut.nodes[k].hot_bytes, cut.nodes[k].live_bytes) << g.nodes[k].name;
    hot_max = std::max(hot_max, cut.nodes[k].hot_bytes);
  }
  EXPECT_EQ(hot_max, cut.hot_peak_bytes);
  std::printf("conv chain 32x32 streamed: peak %lld / hot %lld bytes uncut; cut before c2: peak %lld / hot %lld "
              "(crossing tensor %lld)\n",
              static_cast<long long>(uncut.peak_bytes), static_cast<long long>(uncut.hot_peak_bytes),
              static_cast<long long>(cut.peak_bytes), static_cast<long long>(cut.hot_peak_bytes),
              static_cast<long long>(crossing));
}

TEST(Footprint, StreamingChangesNothingWithoutStreamableNodes) {
  test::ModelBuilder b;  // x [32] -> Gemm -> Relu -> Gemm: no [C, H, W] activation
  b.input("x", {32}).output("y");
  b.initializer("w1", {16, 32}, values(512, 0.25f));
  b.initializer("w2", {4, 16}, values(64, 0.5f));
  test::attr(b.node("Gemm", {"x", "w1"}, {"g"}), "transB", std::int64_t{1});
  b.node("Relu", {"g"}, {"r"});
  test::attr(b.node("Gemm", {"r", "w2"}, {"y"}), "transB", std::int64_t{1});
  const model::Graph g = b.load();
  for (const bool streamable : plan::streamable_nodes(g)) EXPECT_FALSE(streamable);
  const auto plan = small_plan(g);
  for (const std::int64_t tile : {std::int64_t{0}, cts(4, 1), std::int64_t{1} << 30}) {
    Options o;
    o.tile_bytes = tile;
    const auto whole = predict(g, plan, o);
    o.streaming = true;
    const auto streamed = predict(g, plan, o);
    EXPECT_EQ(streamed.peak_bytes, whole.peak_bytes) << "tile " << tile;
    EXPECT_EQ(streamed.peak_node, whole.peak_node);
    EXPECT_EQ(streamed.unstreamed_peak_bytes, whole.peak_bytes);
    for (std::size_t k = 0; k < g.nodes.size(); ++k) EXPECT_EQ(streamed.nodes[k].live_bytes, whole.nodes[k].live_bytes);
  }
}

TEST(Footprint, StreamingMobileNetV2At96) {
  const auto tool = std::filesystem::path(HEINFER_SOURCE_DIR) / "tools" / "export_torchvision.py";
  if (!std::filesystem::exists("/usr/bin/python3") || !std::filesystem::exists(tool) ||
      std::system("/usr/bin/python3 -c 'import torch, torchvision, onnx' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with torch, torchvision, onnx and " << tool;
  }
  const auto dir = std::filesystem::temp_directory_path() / ("heinfer_fp_stream_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto onnx = dir / "m.onnx";
  const std::string cmd = "/usr/bin/python3 '" + tool.string() +
                          "' --arch mobilenet_v2 --width 0.35 --resolution 96 --threads 2 --calib-batch 2 --out '" +
                          onnx.string() + "' --count 1 > '" + (dir / "export.log").string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const model::Graph g = model::load_model(onnx);
  std::filesystem::remove_all(dir);
  std::vector<double> ranges(g.tensors.size(), 0.0);
  for (std::size_t i = 0; i < ranges.size(); ++i) ranges[i] = g.tensors[i].is_constant ? 0.0 : 16.0;
  plan::ParameterOptions po;
  po.scale_bits = 25;
  const auto plan = plan::plan_parameters(g, ranges, po);
  Options o;  // 1 GiB tiles: the executor without a DRAM budget
  const auto whole = predict(g, plan, o);
  o.streaming = true;
  const auto streamed = predict(g, plan, o);
  std::printf("MobileNetV2 0.35 96x96 (N %zu, L %d): peak %.1f MiB unstreamed, %.1f MiB streamed (%.3f)\n",
              whole.n, whole.max_level, static_cast<double>(whole.peak_bytes) / 1048576.0,
              static_cast<double>(streamed.peak_bytes) / 1048576.0,
              static_cast<double>(streamed.peak_bytes) / static_cast<double>(whole.peak_bytes));
  RecordProperty("unstreamed_peak_bytes", std::to_string(whole.peak_bytes));
  RecordProperty("streamed_peak_bytes", std::to_string(streamed.peak_bytes));
  EXPECT_EQ(streamed.unstreamed_peak_bytes, whole.peak_bytes);
  EXPECT_LT(streamed.peak_bytes, whole.peak_bytes);
}

}  // namespace
}  // namespace heinfer
