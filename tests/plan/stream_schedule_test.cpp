// plan::row_map and plan::stream_schedule (streaming across layers):
//  - row maps against a brute-force enumeration of the input rows each output row's
//    window touches;
//  - every schedule (synthetic graphs: residual Add, stride-2 and dilated convs, pools,
//    a segment broken by a non-streamable node; the Fashion-MNIST CNN; MobileNetV2 0.35
//    and ResNet-50 exported by tools/export_torchvision.py) replayed by an independent
//    checker: reads only produced, unreleased, unfreed rows; every node completed once in
//    contiguous bands; releases only produced rows; internal tensors end fully released;
//    whole nodes in graph order after their inputs; with cuts (segment_starts), segments
//    one after the other and crossing tensors whole before their readers;
//  - the replay's peak of live elements against model::peak_live_elements;
//  - the plaintext model executed band by band following the schedule, released and
//    unproduced rows poisoned, against runtime::run_plain.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "../common/onnx_builder.h"
#include "model/liveness.h"
#include "model/load.h"
#include "runtime/backend.h"
#include "runtime/encrypted_executor.h"
#include "runtime/kernels/dispatch.h"
#include "runtime/plain_executor.h"
#include "plan/stream_schedule.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
using model::Graph;
using model::TensorId;
using plan::RowMap;
using plan::StreamStep;
using test::attr;
using test::ModelBuilder;

const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";
const fs::path kTool = fs::path(HEINFER_SOURCE_DIR) / "tools" / "export_torchvision.py";

using test::random_floats;

const model::Shape& shape_of(const Graph& g, TensorId t) { return g.tensors[static_cast<std::size_t>(t)].shape; }
bool chw(const Graph& g, TensorId t) { return shape_of(g, t).size() == 3; }
bool is_data(const Graph& g, TensorId t) {
  return t != model::kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant;
}
std::int64_t rows(const Graph& g, TensorId t) { return chw(g, t) ? shape_of(g, t)[1] : 0; }
std::int64_t row_elements(const Graph& g, TensorId t) {
  const auto& s = shape_of(g, t);
  return chw(g, t) ? s[0] * s[2] : model::numel(s);
}
const model::Node* node_named(const Graph& g, const std::string& name) {
  for (const auto& n : g.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------
// row_map against a brute-force enumeration
// ---------------------------------------------------------------------------------

/// The input rows output row o reads, from the op's definition: window taps
/// o·stride − pad + k·dilation (k < kernel) inside [0, in_rows); same row for
/// elementwise nodes; row 0 for an H = 1 broadcast input.
std::set<std::int64_t> touched_rows(const Graph& g, const model::Node& n, std::size_t input, std::int64_t o) {
  const std::int64_t in_rows = rows(g, n.inputs[input]);
  std::set<std::int64_t> r;
  auto window = [&](const model::Shape& kernel, const model::Shape& strides, const model::Shape& dil,
                    const model::Shape& pads) {
    const std::int64_t s = strides.empty() ? 1 : strides[0], d = dil.empty() ? 1 : dil[0];
    const std::int64_t p = pads.empty() ? 0 : pads[0];
    for (std::int64_t k = 0; k < kernel[0]; ++k) {
      const std::int64_t i = o * s - p + k * d;
      if (i >= 0 && i < in_rows) r.insert(i);
    }
  };
  if (const auto* c = std::get_if<model::ConvParams>(&n.params)) {
    window(c->kernel, c->strides, c->dilations, c->pads_begin);
  } else if (const auto* q = std::get_if<model::PoolParams>(&n.params)) {
    window(q->kernel, q->strides, q->dilations, q->pads_begin);
  } else if (in_rows == 1) {
    r.insert(0);
  } else {
    r.insert(o);
  }
  return r;
}

/// Checks m against touched_rows for every band [a, b) of output rows: the band reads
/// inside [begin(a), end(b)); rows before begin(a) are read by no row >= a (so they may
/// be released once rows [0, a) are done); and [begin(a), end(b)) is the hull of the
/// touched rows when `tight` (no dilation holes at the borders).
::testing::AssertionResult check_row_map(const Graph& g, const model::Node& n, std::size_t input, bool tight) {
  const auto m = plan::row_map(g, n, input);
  if (!m) return ::testing::AssertionFailure() << n.name << ": no row map";
  const std::int64_t out_rows = rows(g, n.outputs[0]);
  if (m->in_rows != rows(g, n.inputs[input])) return ::testing::AssertionFailure() << n.name << ": in_rows";
  for (std::int64_t a = 0; a < out_rows; ++a) {
    std::int64_t later_min = std::numeric_limits<std::int64_t>::max();
    for (std::int64_t o = a; o < out_rows; ++o) {
      for (std::int64_t i : touched_rows(g, n, input, o)) later_min = std::min(later_min, i);
    }
    if (later_min != std::numeric_limits<std::int64_t>::max() && m->begin(a) > later_min) {
      return ::testing::AssertionFailure() << n.name << ": begin(" << a << ") = " << m->begin(a)
                                           << " but row " << later_min << " is read later";
    }
    for (std::int64_t b = a + 1; b <= out_rows; ++b) {
      std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = -1;
      for (std::int64_t o = a; o < b; ++o) {
        for (std::int64_t i : touched_rows(g, n, input, o)) {
          lo = std::min(lo, i);
          hi = std::max(hi, i);
        }
      }
      if (hi < 0) continue;  // the band reads padding only
      if (m->begin(a) > lo || m->end(b) < hi + 1) {
        return ::testing::AssertionFailure() << n.name << ": rows [" << a << ", " << b << ") read [" << lo << ", "
                                             << hi + 1 << ") but the map gives [" << m->begin(a) << ", "
                                             << m->end(b) << ")";
      }
      if (tight && (m->begin(a) != lo || m->end(b) != hi + 1)) {
        return ::testing::AssertionFailure() << n.name << ": rows [" << a << ", " << b << ") read exactly [" << lo
                                             << ", " << hi + 1 << ") but the map gives [" << m->begin(a) << ", "
                                             << m->end(b) << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(StreamRowMap, ConvPoolsAndElementwiseAgainstBruteForce) {
  ModelBuilder b;
  b.input("x", {2, 13, 9}).input("z", {3, 1, 4}).output("q");
  struct ConvCase {
    std::string name;
    std::int64_t k, stride, pad, dil;
    bool tight;
  };
  // Input x [2, 13, 9]: 3x3 stride 1 / stride 2 / dilation 2, 1x1 stride 2, 5x5 pad 2,
  // asymmetric 4x1 kernels.
  const std::vector<ConvCase> convs{{"c_k3", 3, 1, 1, 1, true},      {"c_k3s2", 3, 2, 1, 1, true},
                                    {"c_k3d2", 3, 1, 2, 2, false},   {"c_k1s2", 1, 2, 0, 1, true},
                                    {"c_k5", 5, 1, 2, 1, true},      {"c_k3s2d2", 3, 2, 1, 2, false},
                                    {"c_k3p0", 3, 1, 0, 1, true}};
  std::vector<std::string> outs;
  std::uint32_t seed = 1;
  for (const auto& c : convs) {
    b.initializer(c.name + "_w", {3, 2, c.k, 1}, random_floats(static_cast<std::size_t>(6 * c.k), seed++));
    auto& n = b.node("Conv", {"x", c.name + "_w"}, {c.name}, c.name);
    attr(n, "strides", std::vector<std::int64_t>{c.stride, 1});
    attr(n, "pads", std::vector<std::int64_t>{c.pad, 0, c.pad, 0});
    attr(n, "dilations", std::vector<std::int64_t>{c.dil, 1});
    outs.push_back(c.name);
  }
  auto& mp = b.node("MaxPool", {"x"}, {"mp"}, "mp");
  attr(mp, "kernel_shape", std::vector<std::int64_t>{3, 3});
  attr(mp, "strides", std::vector<std::int64_t>{2, 2});
  attr(mp, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  auto& ap = b.node("AveragePool", {"x"}, {"ap"}, "ap");
  attr(ap, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(ap, "strides", std::vector<std::int64_t>{2, 2});
  // Add with the same rows, and with an H = 1 broadcast input z [3, 1, 4].
  auto& c4 = b.node("Conv", {"x", "c4_w"}, {"c4"}, "c4");  // [3, 13, 4]
  b.initializer("c4_w", {3, 2, 1, 6}, random_floats(36, 99));
  attr(c4, "pads", std::vector<std::int64_t>{0, 0, 0, 0});
  b.node("Relu", {"c4"}, {"r4"}, "relu");
  b.node("Add", {"r4", "c4"}, {"add_same"}, "add_same");
  b.node("Add", {"add_same", "z"}, {"add_bc"}, "add_bc");
  b.node("Sub", {"z", "add_bc"}, {"mul_bc"}, "mul_bc");
  // Not row-streamable: Flatten, Gemm, rank-2 Relu.
  b.node("Flatten", {"mul_bc"}, {"f"}, "flatten");
  b.initializer("gw", {5, 156}, random_floats(780, 7));
  attr(b.node("Gemm", {"f", "gw"}, {"gm"}, "gemm"), "transB", std::int64_t{1});
  b.node("Relu", {"gm"}, {"q"}, "relu2d");
  // Every branch is a graph output (nothing pruned).
  outs.insert(outs.end(), {"mp", "ap"});
  for (const auto& o : outs) b.output(o);
  const Graph g = b.load();

  for (const auto& c : convs) {
    const model::Node* n = node_named(g, c.name);
    ASSERT_NE(n, nullptr) << c.name;
    EXPECT_TRUE(check_row_map(g, *n, 0, c.tight));
    const auto m = plan::row_map(g, *n, 0);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->stride, c.stride) << c.name;
    EXPECT_EQ(m->extent, (c.k - 1) * c.dil + 1) << c.name;
    EXPECT_FALSE(plan::row_map(g, *n, 1)) << c.name << ": the weights are not streamed";
  }
  for (const std::string name : {"mp", "ap", "relu", "add_same"}) {
    const model::Node* n = node_named(g, name);
    ASSERT_NE(n, nullptr) << name;
    for (std::size_t i = 0; i < n->inputs.size(); ++i) EXPECT_TRUE(check_row_map(g, *n, i, true)) << name;
  }
  {  // broadcast: all rows of z for any band; same rows of the other input
    const model::Node* n = node_named(g, "add_bc");
    ASSERT_NE(n, nullptr);
    const auto mz = plan::row_map(g, *n, 1);
    ASSERT_TRUE(mz);
    EXPECT_TRUE(mz->all);
    EXPECT_EQ(mz->begin(5), 0);
    EXPECT_EQ(mz->end(6), 1);
    EXPECT_TRUE(check_row_map(g, *n, 0, true));
    EXPECT_TRUE(check_row_map(g, *n, 1, true));
    const model::Node* mul = node_named(g, "mul_bc");
    ASSERT_NE(mul, nullptr);
    EXPECT_TRUE(check_row_map(g, *mul, 0, true));
    EXPECT_TRUE(plan::row_map(g, *mul, 0)->all);
  }
  for (const std::string name : {"flatten", "gemm", "relu2d"}) {
    const model::Node* n = node_named(g, name);
    ASSERT_NE(n, nullptr) << name;
    EXPECT_FALSE(plan::row_map(g, *n, 0)) << name;
  }
}

// ---------------------------------------------------------------------------------
// The schedule checker
// ---------------------------------------------------------------------------------

struct Replay {
  std::int64_t peak_elements = 0;  ///< max over steps of live elements (rows, whole tensors)
  std::int64_t streamed_steps = 0;
};

/// Segments restated from the spec: maximal runs of >= 2 consecutive streamable nodes.
std::vector<std::int64_t> segments_of(const std::vector<bool>& streamable, const std::vector<std::int64_t>& cuts) {
  std::vector<std::int64_t> seg(streamable.size(), -1);
  auto is_cut = [&](std::size_t e) { return std::find(cuts.begin(), cuts.end(), static_cast<std::int64_t>(e)) != cuts.end(); };
  std::size_t k = 0;
  while (k < streamable.size()) {
    std::size_t e = k;
    while (e < streamable.size() && streamable[e] && (e == k || !is_cut(e))) ++e;
    if (e - k >= 2) {
      for (std::size_t j = k; j < e; ++j) seg[j] = static_cast<std::int64_t>(k);
    }
    k = e == k ? k + 1 : e;
  }
  return seg;
}

/// Replays `steps` and checks them (see the file comment). Live elements: rows produced
/// and not released of every tensor (whole tensors for non-[C, H, W] ones), from their
/// production to their release or to model::activations_to_free after the last reader;
/// measured after each step's output band exists and before its releases.
::testing::AssertionResult check_schedule(const Graph& g, const std::vector<bool>& streamable,
                                          const std::vector<StreamStep>& steps, std::int64_t band_elements,
                                          Replay* replay = nullptr, const std::vector<std::int64_t>& cuts = {}) {
  auto fail = [](std::size_t i) { return ::testing::AssertionFailure() << "step " << i << ": "; };
  const std::size_t nodes = g.nodes.size();
  const auto seg = segments_of(streamable, cuts);
  std::vector<std::int64_t> producer(g.tensors.size(), -1);
  for (std::size_t k = 0; k < nodes; ++k) producer[static_cast<std::size_t>(g.nodes[k].outputs[0])] = static_cast<std::int64_t>(k);
  const auto readers = model::consumers(g);
  // Released row by row: all readers in one segment, no graph output (produced in that
  // segment, or whole before it: a graph input, an earlier node's or segment's output).
  auto internal = [&](TensorId t) {
    const auto& rs = readers[static_cast<std::size_t>(t)];
    if (rs.empty() || !is_data(g, t) || !chw(g, t) || model::is_graph_output(g, t)) return false;
    const std::int64_t s0 = seg[static_cast<std::size_t>(rs[0])];
    if (s0 < 0) return false;
    for (int c : rs) {
      if (seg[static_cast<std::size_t>(c)] != s0) return false;
    }
    return true;
  };
  std::vector<std::int64_t> produced(g.tensors.size(), 0), released(g.tensors.size(), 0);
  std::vector<bool> complete(g.tensors.size(), false), alive(g.tensors.size(), false), freed(g.tensors.size(), false);
  std::vector<int> firsts(nodes, 0), lasts(nodes, 0);
  std::vector<bool> started(nodes, false);
  const auto free_after = model::activations_to_free(g);
  std::int64_t live = 0, peak = 0, streamed_steps = 0;
  auto live_of = [&](TensorId t) {
    if (!alive[static_cast<std::size_t>(t)]) return std::int64_t{0};
    if (!chw(g, t)) return model::numel(shape_of(g, t));
    return (produced[static_cast<std::size_t>(t)] - released[static_cast<std::size_t>(t)]) * row_elements(g, t);
  };
  for (TensorId t : g.inputs) {
    const auto ti = static_cast<std::size_t>(t);
    produced[ti] = rows(g, t);
    complete[ti] = alive[ti] = true;
    live += live_of(t);
  }
  peak = live;
  std::int64_t last_whole = -1;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const StreamStep& s = steps[i];
    if (s.node < 0 || static_cast<std::size_t>(s.node) >= nodes) return fail(i) << "node index " << s.node;
    const auto k = static_cast<std::size_t>(s.node);
    const model::Node& n = g.nodes[k];
    const TensorId out = n.outputs[0];
    const auto oi = static_cast<std::size_t>(out);
    const std::int64_t h = rows(g, out);
    if (lasts[k] > 0) return fail(i) << n.name << " runs after its last step";
    if (freed[oi]) return fail(i) << n.name << " computes rows of its output after it was freed";
    if (s.streamed != (seg[k] >= 0)) return fail(i) << n.name << " streamed = " << s.streamed << ", segment " << seg[k];
    if (s.segment != seg[k]) return fail(i) << n.name << " in segment " << s.segment << ", expected " << seg[k];
    // Segments run one after the other: none resumes once another step ran after it.
    if (i > 0 && s.segment >= 0 && steps[i - 1].segment != s.segment && started[static_cast<std::size_t>(s.segment)]) {
      return fail(i) << n.name << ": segment " << s.segment << " resumes after other steps";
    }
    if (s.segment >= 0) started[static_cast<std::size_t>(s.segment)] = true;
    // Inputs: which rows the step reads, and whether they are there.
    for (std::size_t j = 0; j < n.inputs.size(); ++j) {
      const TensorId t = n.inputs[j];
      if (!is_data(g, t)) continue;
      const auto ti = static_cast<std::size_t>(t);
      if (freed[ti]) return fail(i) << n.name << " reads a freed tensor " << g.tensors[ti].name;
      const std::int64_t p = producer[ti];
      const bool same_segment = s.streamed && p >= 0 && seg[static_cast<std::size_t>(p)] == seg[k];
      if (!same_segment) {
        // A whole input: complete, and (streamed steps) the rows read not released.
        const auto m = s.streamed ? plan::row_map(g, n, j) : std::nullopt;
        const std::int64_t lo = m ? m->begin(s.row_begin) : 0, hi = m ? m->end(s.row_end) : 1;
        if (!complete[ti] || (hi > lo && lo < released[ti])) {
          return fail(i) << n.name << " reads " << g.tensors[ti].name << " before it is whole or after rows went (produced "
                         << produced[ti] << ", released " << released[ti] << ")";
        }
        continue;
      }
      const auto m = plan::row_map(g, n, j);
      if (!m) return fail(i) << n.name << ": streamed without a row map for input " << j;
      const std::int64_t lo = m->begin(s.row_begin), hi = m->end(s.row_end);
      if (hi > lo && (lo < released[ti] || hi > produced[ti])) {
        return fail(i) << n.name << " rows [" << s.row_begin << ", " << s.row_end << ") read rows [" << lo << ", "
                       << hi << ") of " << g.tensors[ti].name << " (produced [" << released[ti] << ", "
                       << produced[ti] << "))";
      }
    }
    // The output band.
    if (!s.streamed) {
      if (!s.first || !s.last || s.row_begin != 0 || s.row_end != h) {
        return fail(i) << n.name << " whole step with rows [" << s.row_begin << ", " << s.row_end << ")";
      }
      if (static_cast<std::int64_t>(k) <= last_whole) return fail(i) << n.name << " out of graph order";
      last_whole = static_cast<std::int64_t>(k);
      if (!s.release.empty()) return fail(i) << n.name << " whole step releases rows";
    } else {
      ++streamed_steps;
      const std::int64_t row = row_elements(g, out);
      const std::int64_t band = std::max<std::int64_t>(1, (band_elements + row - 1) / row);
      if (s.row_begin != produced[oi] || s.row_end <= s.row_begin || s.row_end > h) {
        return fail(i) << n.name << " band [" << s.row_begin << ", " << s.row_end << ") after " << produced[oi]
                       << " of " << h << " rows";
      }
      if (s.row_end - s.row_begin != std::min(band, h - s.row_begin)) {
        return fail(i) << n.name << " band of " << s.row_end - s.row_begin << " rows, expected " << band;
      }
      if (s.first != (s.row_begin == 0) || s.last != (s.row_end == h)) return fail(i) << n.name << " first/last";
    }
    firsts[k] += s.first;
    lasts[k] += s.last;
    live -= live_of(out);
    alive[oi] = true;
    produced[oi] = s.row_end;
    complete[oi] = s.last;
    live += live_of(out);
    peak = std::max(peak, live);
    for (const auto& [t, r] : s.release) {
      const auto ti = static_cast<std::size_t>(t);
      if (t < 0 || ti >= g.tensors.size() || !internal(t)) return fail(i) << "releases a tensor that is no internal one";
      if (r <= released[ti] || r > rows(g, t)) {
        return fail(i) << "releases rows [0, " << r << ") of " << g.tensors[ti].name << " after " << released[ti];
      }
      if (r > produced[ti]) {
        return fail(i) << n.name << " releases rows [0, " << r << ") of " << g.tensors[ti].name << " of which only "
                       << produced[ti] << " exist";
      }
      live -= live_of(t);
      released[ti] = r;
      live += live_of(t);
    }
    if (s.last) {
      for (TensorId t : free_after[k]) {
        live -= live_of(t);
        alive[static_cast<std::size_t>(t)] = false;
        freed[static_cast<std::size_t>(t)] = true;
      }
    }
  }
  for (std::size_t k = 0; k < nodes; ++k) {
    if (firsts[k] != 1 || lasts[k] != 1) {
      return ::testing::AssertionFailure() << g.nodes[k].name << ": " << firsts[k] << " first and " << lasts[k]
                                           << " last steps";
    }
  }
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    if (producer[t] >= 0 && internal(static_cast<TensorId>(t)) && released[t] != rows(g, static_cast<TensorId>(t))) {
      return ::testing::AssertionFailure() << "internal tensor " << g.tensors[t].name << " ends with rows ["
                                           << released[t] << ", " << rows(g, static_cast<TensorId>(t))
                                           << ") unreleased";
    }
  }
  if (replay) {
    replay->peak_elements = peak;
    replay->streamed_steps = streamed_steps;
  }
  return ::testing::AssertionSuccess();
}

/// Every node whose non-constant inputs all have row maps (a superset of what the
/// encrypted executor streams: longer segments, MaxPool after Relu included).
std::vector<bool> all_mappable(const Graph& g) {
  std::vector<bool> s(g.nodes.size(), false);
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    bool ok = true, any = false;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (!is_data(g, n.inputs[i])) continue;
      any = true;
      ok = ok && plan::row_map(g, n, i).has_value();
    }
    s[k] = ok && any;
  }
  return s;
}

std::int64_t count(const std::vector<bool>& v) { return std::count(v.begin(), v.end(), true); }

// ---------------------------------------------------------------------------------
// The plaintext model, band by band
// ---------------------------------------------------------------------------------

/// Sets rows [r0, r1) of every channel of a [C, H, W] tensor to `v`.
void fill_rows(runtime::PlainTensor& x, std::int64_t r0, std::int64_t r1, double v) {
  const std::int64_t w = x.shape[2], plane = x.shape[1] * w;
  for (std::int64_t c = 0; c < x.shape[0]; ++c) {
    for (std::int64_t e = c * plane + r0 * w; e < c * plane + r1 * w; ++e) {
      for (double& d : x.element(e)) d = v;
    }
  }
}

/// Runs g on `inputs` following `steps`: streamed nodes compute their bands with the
/// kernels' output tiles (client-aided ones whole into a scratch tensor, band copied);
/// unproduced and released rows hold `poison`. Fails when a band holds a non-finite
/// value (it read poison); returns the graph outputs.
std::vector<runtime::PlainTensor> run_streamed(const Graph& g, const std::vector<StreamStep>& steps,
                                               std::vector<runtime::PlainTensor> inputs, double poison) {
  std::vector<std::optional<runtime::PlainTensor>> values(g.tensors.size());
  const std::int64_t batch = inputs[0].batch;
  for (std::size_t i = 0; i < inputs.size(); ++i) values[static_cast<std::size_t>(g.inputs[i])] = std::move(inputs[i]);
  std::vector<std::int64_t> released(g.tensors.size(), 0);
  const auto free_after = model::activations_to_free(g);
  const runtime::PlainBackend be{batch};
  for (const StreamStep& s : steps) {
    const auto k = static_cast<std::size_t>(s.node);
    const model::Node& n = g.nodes[k];
    std::vector<const runtime::PlainTensor*> in;
    for (TensorId t : n.inputs) {
      if (!is_data(g, t)) {
        in.push_back(nullptr);
        continue;
      }
      const auto& v = values[static_cast<std::size_t>(t)];
      if (!v) {
        ADD_FAILURE() << n.name << " reads " << g.tensors[static_cast<std::size_t>(t)].name << " which is gone";
        return {};
      }
      in.push_back(&*v);
    }
    const TensorId out = n.outputs[0];
    auto& y = values[static_cast<std::size_t>(out)];
    if (s.first) {
      y = runtime::make_plain_tensor(shape_of(g, out), batch);
      if (s.streamed) std::fill(y->data.begin(), y->data.end(), poison);
    }
    if (!y) {
      ADD_FAILURE() << n.name << ": its output is gone before its step";
      return {};
    }
    if (!s.streamed) {
      runtime::run_node_plain(g, n, in, *y);
    } else {
      const std::int64_t w = y->shape[2], plane = y->shape[1] * w;
      const runtime::kernels::OutputTile tile{y->shape[0], plane, s.row_begin * w, s.row_end * w, 0};
      if (!runtime::kernels::run_backend_node(be, g, n, in, *y, &tile)) {
        runtime::PlainTensor scratch = runtime::make_plain_tensor(y->shape, batch);
        runtime::run_node_plain(g, n, in, scratch);
        for (std::int64_t t = 0; t < tile.size(); ++t) {
          const std::int64_t e = tile.at(t);
          std::copy_n(scratch.element(e).begin(), batch, y->element(e).begin());
        }
      }
      for (std::int64_t t = 0; t < tile.size(); ++t) {
        for (double d : y->element(tile.at(t))) {
          if (!std::isfinite(d)) {
            ADD_FAILURE() << n.name << " rows [" << s.row_begin << ", " << s.row_end << "): element " << tile.at(t)
                          << " = " << d << " (read a released or unproduced row)";
            return {};
          }
        }
      }
    }
    for (const auto& [t, r] : s.release) {
      auto& v = values[static_cast<std::size_t>(t)];
      auto& done = released[static_cast<std::size_t>(t)];
      if (v && r > done) fill_rows(*v, done, r, poison);
      done = std::max(done, r);
    }
    if (s.last) {
      for (TensorId t : free_after[k]) values[static_cast<std::size_t>(t)].reset();
    }
  }
  std::vector<runtime::PlainTensor> outputs;
  for (TensorId t : g.outputs) outputs.push_back(*values[static_cast<std::size_t>(t)]);
  return outputs;
}

std::vector<runtime::PlainTensor> random_inputs(const Graph& g, std::int64_t batch, std::uint32_t seed) {
  std::vector<runtime::PlainTensor> in;
  for (TensorId t : g.inputs) {
    const auto& s = shape_of(g, t);
    const auto v = random_floats(static_cast<std::size_t>(batch * model::numel(s)), seed++);
    in.push_back(runtime::from_batch_major(std::span<const float>(v), batch, s));
  }
  return in;
}

/// The streamed plaintext run (poisoned with +inf, then NaN: Relu/MaxPool drop NaN,
/// Clip drops +inf) equals run_plain.
void expect_streamed_run_matches(const Graph& g, const std::vector<bool>& streamable, std::int64_t band_elements,
                                 std::int64_t batch, const std::vector<std::int64_t>& cuts = {}) {
  plan::StreamOptions o;
  o.band_elements = band_elements;
  o.segment_starts = cuts;
  const auto steps = plan::stream_schedule(g, streamable, o);
  const auto inputs = random_inputs(g, batch, 17);
  const auto ref = runtime::run_plain(g, inputs);
  for (const double poison : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    const auto got = run_streamed(g, steps, inputs, poison);
    ASSERT_EQ(got.size(), ref.size()) << "poison " << poison;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(got[i].data.size(), ref[i].data.size());
      double worst = 0;
      for (std::size_t e = 0; e < ref[i].data.size(); ++e) {
        const double d = std::fabs(got[i].data[e] - ref[i].data[e]) / std::max(1.0, std::fabs(ref[i].data[e]));
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
      }
      EXPECT_LE(worst, 1e-9) << "output " << i << ", poison " << poison << ", band_elements " << band_elements;
    }
  }
}

// ---------------------------------------------------------------------------------
// Synthetic graphs
// ---------------------------------------------------------------------------------

/// x [2, 12, 10] -> 3x3 conv chain -> stride-2 conv -> residual block (1x1 conv, Add)
/// -> MaxPool -> dilated conv -> Flatten -> Gemm.
Graph residual_net() {
  ModelBuilder b;
  b.input("x", {2, 12, 10}).output("y");
  std::uint32_t seed = 3;
  auto conv = [&](const std::string& in, const std::string& out, std::int64_t cin, std::int64_t cout,
                  std::int64_t k, std::int64_t stride, std::int64_t pad, std::int64_t dil = 1) {
    b.initializer(out + "_w", {cout, cin, k, k}, random_floats(static_cast<std::size_t>(cout * cin * k * k), seed++));
    b.initializer(out + "_b", {cout}, random_floats(static_cast<std::size_t>(cout), seed++));
    auto& n = b.node("Conv", {in, out + "_w", out + "_b"}, {out});
    attr(n, "strides", std::vector<std::int64_t>{stride, stride});
    attr(n, "pads", std::vector<std::int64_t>{pad, pad, pad, pad});
    attr(n, "dilations", std::vector<std::int64_t>{dil, dil});
  };
  conv("x", "c1", 2, 4, 3, 1, 1);
  b.node("Relu", {"c1"}, {"r1"});
  conv("r1", "c2", 4, 4, 3, 1, 1);
  b.node("Relu", {"c2"}, {"r2"});
  conv("r2", "c3", 4, 6, 3, 2, 1);  // [6, 6, 5]
  b.node("Relu", {"c3"}, {"r3"});
  conv("r3", "c4", 6, 6, 1, 1, 0);
  b.node("Add", {"c4", "r3"}, {"a4"});  // residual
  b.node("Relu", {"a4"}, {"r4"});
  auto& mp = b.node("MaxPool", {"r4"}, {"p4"});
  attr(mp, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(mp, "strides", std::vector<std::int64_t>{1, 1});  // [6, 5, 4]
  conv("p4", "c5", 6, 3, 3, 1, 2, 2);                  // dilated, [3, 5, 4]
  b.node("Flatten", {"c5"}, {"f"});
  b.initializer("gw", {4, 60}, random_floats(240, seed++));
  attr(b.node("Gemm", {"f", "gw"}, {"y"}), "transB", std::int64_t{1});
  return b.load();
}

/// A segment broken by a non-streamable node, and a stride-2 1x1 conv that skips rows:
/// x [3, 9, 7] -> conv 3x3 -> conv 1x1 stride 2 (reads even rows only) -> Relu ->
/// GlobalAveragePool (breaks the segment) -> Add(r2, gap) (H = 1 broadcast) -> conv 3x3
/// -> Relu -> AveragePool 2x2 stride 2 -> Flatten -> Gemm.
Graph broken_net() {
  ModelBuilder b;
  b.input("x", {3, 9, 7}).output("y");
  std::uint32_t seed = 50;
  auto conv = [&](const std::string& in, const std::string& out, std::int64_t cin, std::int64_t cout,
                  std::int64_t k, std::int64_t stride, std::int64_t pad) {
    b.initializer(out + "_w", {cout, cin, k, k}, random_floats(static_cast<std::size_t>(cout * cin * k * k), seed++));
    auto& n = b.node("Conv", {in, out + "_w"}, {out});
    attr(n, "strides", std::vector<std::int64_t>{stride, stride});
    attr(n, "pads", std::vector<std::int64_t>{pad, pad, pad, pad});
  };
  conv("x", "c1", 3, 4, 3, 1, 1);   // [4, 9, 7]
  conv("c1", "c2", 4, 4, 1, 2, 0);  // [4, 5, 4]
  b.node("Relu", {"c2"}, {"r2"});
  b.node("GlobalAveragePool", {"r2"}, {"gap"});  // [4, 1, 1]
  b.node("Add", {"r2", "gap"}, {"a"});
  conv("a", "c3", 4, 4, 3, 1, 1);
  b.node("Relu", {"c3"}, {"r3"});
  auto& ap = b.node("AveragePool", {"r3"}, {"p"});
  attr(ap, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(ap, "strides", std::vector<std::int64_t>{2, 2});  // [4, 2, 2]
  b.node("Flatten", {"p"}, {"f"});
  b.initializer("gw", {3, 16}, random_floats(48, seed++));
  attr(b.node("Gemm", {"f", "gw"}, {"y"}), "transB", std::int64_t{1});
  return b.load();
}

/// x [1, 16, 6] -> conv 3x3 -> conv 1x1 stride 2 -> conv 3x3 stride 2 -> Relu: the
/// tensor between the first two is read by a window (1 row) narrower than its stride.
Graph strided_chain() {
  ModelBuilder b;
  b.input("x", {1, 16, 6}).output("y");
  b.initializer("w1", {2, 1, 3, 3}, random_floats(18, 70));
  b.initializer("w2", {3, 2, 1, 1}, random_floats(6, 71));
  b.initializer("w3", {2, 3, 3, 3}, random_floats(54, 72));
  attr(b.node("Conv", {"x", "w1"}, {"c1"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  attr(b.node("Conv", {"c1", "w2"}, {"c2"}), "strides", std::vector<std::int64_t>{2, 2});
  auto& c3 = b.node("Conv", {"c2", "w3"}, {"c3"});
  attr(c3, "strides", std::vector<std::int64_t>{2, 2});
  attr(c3, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c3"}, {"y"});
  return b.load();
}

const std::vector<std::int64_t> kBands{1, 5, 16, 64, std::int64_t{1} << 40};

TEST(StreamSchedule, SyntheticGraphsAreValid) {
  const std::vector<std::pair<std::string, Graph>> graphs{
      {"residual", residual_net()}, {"broken", broken_net()}, {"strided", strided_chain()}};
  for (const auto& [name, g] : graphs) {
    for (const auto& streamable : {plan::streamable_nodes(g), all_mappable(g)}) {
      for (std::int64_t band : kBands) {
        plan::StreamOptions o;
        o.band_elements = band;
        const auto steps = plan::stream_schedule(g, streamable, o);
        Replay r;
        EXPECT_TRUE(check_schedule(g, streamable, steps, band, &r))
            << name << ", " << count(streamable) << " streamable nodes, band_elements " << band;
      }
    }
  }
  // Structure: in the broken net, the GlobalAveragePool splits the streamable nodes into
  // two segments; its input is a segment output (whole, never released).
  const Graph g = broken_net();
  const auto s = all_mappable(g);
  ASSERT_EQ(g.nodes.size(), 10u);
  EXPECT_EQ(s, (std::vector<bool>{true, true, true, false, true, true, true, true, false, false}));
  const auto steps = plan::stream_schedule(g, s);
  const TensorId r2 = g.nodes[2].outputs[0];
  for (const auto& st : steps) {
    for (const auto& [t, r] : st.release) EXPECT_NE(t, r2) << "the segment output was released";
    if (st.node == 3) {
      EXPECT_FALSE(st.streamed);
    }
  }
  EXPECT_THROW(plan::stream_schedule(g, std::vector<bool>(3, true)), std::invalid_argument);
  // Nothing streamable: one whole step per node, in graph order, no releases.
  const auto whole = plan::stream_schedule(g, std::vector<bool>(g.nodes.size(), false));
  ASSERT_EQ(whole.size(), g.nodes.size());
  for (std::size_t k = 0; k < whole.size(); ++k) {
    EXPECT_EQ(whole[k].node, static_cast<std::int64_t>(k));
    EXPECT_FALSE(whole[k].streamed);
    EXPECT_TRUE(whole[k].release.empty());
  }
  // The input is read only by the first (streamed) conv: its rows may be produced on
  // demand; not when that conv runs whole.
  const TensorId x = g.inputs[0];
  EXPECT_TRUE(plan::inputs_on_demand(g, steps)[static_cast<std::size_t>(x)]);
  EXPECT_FALSE(plan::inputs_on_demand(g, whole)[static_cast<std::size_t>(x)]);
  std::vector<bool> first_whole = s;
  first_whole[0] = false;
  EXPECT_FALSE(plan::inputs_on_demand(g, plan::stream_schedule(g, first_whole))[static_cast<std::size_t>(x)]);
}

TEST(StreamSchedule, SyntheticGraphsRunBandByBand) {
  for (const auto& g : {residual_net(), broken_net(), strided_chain()}) {
    for (std::int64_t band : {std::int64_t{1}, std::int64_t{13}}) {
      expect_streamed_run_matches(g, all_mappable(g), band, 3);
      expect_streamed_run_matches(g, plan::streamable_nodes(g), band, 3);
    }
  }
}

/// Node indices c with c and c - 1 in one segment of `streamable` (where a cut splits one).
std::vector<std::int64_t> inner_nodes(const std::vector<bool>& streamable) {
  const auto seg = segments_of(streamable, {});
  std::vector<std::int64_t> out;
  for (std::size_t c = 1; c < seg.size(); ++c) {
    if (seg[c] >= 0 && seg[c] == seg[c - 1]) out.push_back(static_cast<std::int64_t>(c));
  }
  return out;
}

/// Cut schedules (StreamOptions::segment_starts): every single cut, every other inner
/// node and all of them, valid and equal to the plaintext run; a tensor crossing a cut is
/// computed whole before the next segment reads it and released there row by row.
void expect_cut_schedules_valid(const std::string& name, const Graph& g, const std::vector<bool>& streamable,
                                bool run) {
  const auto inner = inner_nodes(streamable);
  ASSERT_FALSE(inner.empty()) << name;
  std::vector<std::vector<std::int64_t>> cut_sets;
  for (std::int64_t c : inner) cut_sets.push_back({c});
  std::vector<std::int64_t> every_other;
  for (std::size_t i = 0; i < inner.size(); i += 2) every_other.push_back(inner[i]);
  cut_sets.push_back(every_other);
  cut_sets.push_back(inner);
  for (const auto& cuts : cut_sets) {
    std::string text;
    for (std::int64_t c : cuts) text.append(" ").append(std::to_string(c));
    for (std::int64_t band : {std::int64_t{1}, std::int64_t{16}}) {
      plan::StreamOptions o;
      o.band_elements = band;
      o.segment_starts = cuts;
      const auto steps = plan::stream_schedule(g, streamable, o);
      EXPECT_TRUE(check_schedule(g, streamable, steps, band, nullptr, cuts)) << name << ", cuts" << text;
      // The tensor crossing a single cut whose readers all follow it goes row by row.
      if (cuts.size() == 1 && band == 1) {
        const auto c = static_cast<std::size_t>(cuts[0]);
        const TensorId t = g.nodes[c - 1].outputs[0];
        const auto readers = model::consumers(g)[static_cast<std::size_t>(t)];
        const auto seg = segments_of(streamable, cuts);
        const bool after = seg[c] >= 0 && !readers.empty() && std::all_of(readers.begin(), readers.end(), [&](int r) {
          return seg[static_cast<std::size_t>(r)] == seg[c];
        });
        if (after && chw(g, t) && !model::is_graph_output(g, t)) {
          std::size_t releases = 0;
          for (const auto& st : steps) {
            for (const auto& [rt, r] : st.release) {
              if (rt != t) continue;
              ++releases;
              EXPECT_EQ(st.segment, seg[c]) << name << ": " << g.tensors[static_cast<std::size_t>(t)].name
                                            << " released before the cut";
            }
          }
          // Row by row where the reader's window moves on before the last band.
          EXPECT_GE(releases, rows(g, t) >= 8 ? 2u : 1u) << name << ": " << g.tensors[static_cast<std::size_t>(t)].name
                                                         << " crossing cut " << c << " is not released row by row";
        }
      }
    }
    if (run) expect_streamed_run_matches(g, streamable, 5, 2, cuts);
  }
  plan::StreamOptions bad;
  bad.segment_starts = {static_cast<std::int64_t>(g.nodes.size())};
  EXPECT_THROW(plan::stream_schedule(g, streamable, bad), std::invalid_argument);
}

TEST(StreamSchedule, CutsSplitSegments) {
  for (const auto& [name, g] : std::vector<std::pair<std::string, Graph>>{
           {"residual", residual_net()}, {"broken", broken_net()}, {"strided", strided_chain()}}) {
    expect_cut_schedules_valid(name, g, all_mappable(g), true);
    expect_cut_schedules_valid(name, g, plan::streamable_nodes(g), true);
  }
}

// ---------------------------------------------------------------------------------
// Real models
// ---------------------------------------------------------------------------------

TEST(StreamSchedule, FmnistCnnIsValidAndRunsBandByBand) {
  const Graph g = model::load_model(kModels / "fmnist_cnn.onnx");
  const auto enc = plan::streamable_nodes(g);
  const auto all = all_mappable(g);
  std::printf("fmnist_cnn: %zu nodes, %lld streamable by the encrypted executor, %lld row-mappable\n",
              g.nodes.size(), static_cast<long long>(count(enc)), static_cast<long long>(count(all)));
  ASSERT_GE(count(all), 2);
  for (const auto& s : {enc, all}) {
    for (std::int64_t band : kBands) {
      plan::StreamOptions o;
      o.band_elements = band;
      EXPECT_TRUE(check_schedule(g, s, plan::stream_schedule(g, s, o), band)) << "band_elements " << band;
    }
    expect_streamed_run_matches(g, s, 1, 2);
    expect_streamed_run_matches(g, s, 100, 2);
  }
}

/// Exports torchvision models once per test binary (tools/export_torchvision.py, seeded
/// random weights) into a temporary directory; skipped without python3 + torch.
class StreamLargeModels : public ::testing::Test {
 protected:
  static fs::path dir_;
  static bool available_;

  static void SetUpTestSuite() {
    available_ = fs::exists("/usr/bin/python3") && fs::exists(kTool) &&
                 std::system("/usr/bin/python3 -c 'import torch, torchvision, onnx' >/dev/null 2>&1") == 0;
    dir_ = fs::temp_directory_path() / ("heinfer_stream_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  /// The prepared graph of arch/width at res x res (exported on first use).
  static Graph load(const std::string& arch, const std::string& width, int res) {
    const fs::path onnx = dir_ / (arch + "_" + width + "_" + std::to_string(res) + ".onnx");
    if (!fs::exists(onnx)) {
      const std::string cmd = "/usr/bin/python3 '" + kTool.string() + "' --arch " + arch + " --width " + width +
                              " --resolution " + std::to_string(res) + " --threads 2 --calib-batch 2 --out '" +
                              onnx.string() + "' --count 1 > '" + (dir_ / "export.log").string() + "' 2>&1";
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("export failed: " + cmd);
    }
    return model::load_model(onnx);
  }

  void SetUp() override {
    if (!available_) GTEST_SKIP() << "needs /usr/bin/python3 with torch, torchvision, onnx and " << kTool;
  }
};
fs::path StreamLargeModels::dir_;
bool StreamLargeModels::available_ = false;

/// Live elements of the streamed schedule (band_elements 45: about the executor's band
/// for 1 GiB tiles and N = 2^14, L = 10: 1 GiB / 2.9 MB / 8) against the unstreamed peak.
struct PeakCase {
  std::string arch, width;
  int res;
  double max_ratio;  ///< streamed / unstreamed peak, measured + margin
};

TEST_F(StreamLargeModels, SchedulesAreValidAndBoundMemory) {
  // Measured (band_elements 45): MobileNetV2 0.35: 9536 / 24576 = 0.388 at 32x32,
  // 55824 / 221184 = 0.252 at 96x96; ResNet-50: 24576 / 49152 = 0.500 at 32x32,
  // 141312 / 442368 = 0.319 at 96x96.
  const std::vector<PeakCase> cases{{"mobilenet_v2", "0.35", 32, 0.45},
                                    {"mobilenet_v2", "0.35", 96, 0.30},
                                    {"resnet50", "1.0", 32, 0.55},
                                    {"resnet50", "1.0", 96, 0.37}};
  for (const auto& c : cases) {
    const Graph g = load(c.arch, c.width, c.res);
    const auto enc = plan::streamable_nodes(g);
    const std::int64_t unstreamed = model::peak_live_elements(g);
    std::int64_t streamed = 0;
    for (std::int64_t band : {std::int64_t{1}, std::int64_t{45}, std::int64_t{4096}}) {
      plan::StreamOptions o;
      o.band_elements = band;
      Replay r;
      EXPECT_TRUE(check_schedule(g, enc, plan::stream_schedule(g, enc, o), band, &r))
          << c.arch << " " << c.res << " band_elements " << band;
      if (band == 45) streamed = r.peak_elements;
      if (c.res == 32 && band == 45) {
        const auto all = all_mappable(g);
        EXPECT_TRUE(check_schedule(g, all, plan::stream_schedule(g, all, o), band))
            << c.arch << " all mappable nodes";
      }
    }
    // Without streaming the replay is the graph-order liveness.
    Replay whole;
    const std::vector<bool> none(g.nodes.size(), false);
    ASSERT_TRUE(check_schedule(g, none, plan::stream_schedule(g, none), 1, &whole));
    EXPECT_EQ(whole.peak_elements, unstreamed) << c.arch << " " << c.res;
    const double ratio = static_cast<double>(streamed) / static_cast<double>(unstreamed);
    std::printf("%s %s %dx%d: %zu nodes, %lld streamable; peak live elements %lld unstreamed, %lld streamed "
                "(band 45): ratio %.3f\n",
                c.arch.c_str(), c.width.c_str(), c.res, c.res, g.nodes.size(), static_cast<long long>(count(enc)),
                static_cast<long long>(unstreamed), static_cast<long long>(streamed), ratio);
    RecordProperty(c.arch + "_" + std::to_string(c.res) + "_unstreamed", std::to_string(unstreamed));
    RecordProperty(c.arch + "_" + std::to_string(c.res) + "_streamed", std::to_string(streamed));
    EXPECT_LE(ratio, c.max_ratio) << c.arch << " " << c.res;
  }
}

TEST_F(StreamLargeModels, CutSchedulesOfResNet50AreValid) {
  const Graph g = load("resnet50", "1.0", 32);
  const auto enc = plan::streamable_nodes(g);
  // Every block's first conv starts a segment (the cuts plan/segment_cuts.h chooses
  // under a tight budget), and every single cut is valid too.
  std::vector<std::int64_t> blocks;
  for (std::size_t k = 1; k < g.nodes.size(); ++k) {
    if (g.nodes[k].name.find("conv1/Conv") != std::string::npos && g.nodes[k].name.find("layer") != std::string::npos) {
      blocks.push_back(static_cast<std::int64_t>(k));
    }
  }
  ASSERT_EQ(blocks.size(), 16u);
  plan::StreamOptions o;
  o.band_elements = 45;
  o.segment_starts = blocks;
  EXPECT_TRUE(check_schedule(g, enc, plan::stream_schedule(g, enc, o), 45, nullptr, blocks));
  expect_cut_schedules_valid("resnet50", g, enc, false);
}

TEST_F(StreamLargeModels, MobileNetV2RunsBandByBand) {
  const Graph g = load("mobilenet_v2", "0.35", 32);
  expect_streamed_run_matches(g, plan::streamable_nodes(g), 1, 2);
  expect_streamed_run_matches(g, plan::streamable_nodes(g), 45, 2);
}

}  // namespace
}  // namespace heinfer
