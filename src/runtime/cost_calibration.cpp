#include "runtime/cost_calibration.h"

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model/load.h"
#include "plan/footprint.h"
#include "runtime/calibration.h"
#include "runtime/encrypted_executor.h"

namespace heinfer::runtime {
namespace {

using Clock = std::chrono::steady_clock;

/// The calibration network (C channels, S×S, S even), chosen so that every timed unit
/// appears in the executor's own per-layer times:
///   x → A: Conv 1×1 (dense, C terms) → a → Relu round → r → B: depthwise Conv 3×3 (single
///   rate, folds the round's factors) → d → E: Add(a, d) (additions) → MaxPool 2×2 round →
///   p → D: Conv 3×3 (dense, ≤ 9C terms) → y [→ Mul(y, y) square when L >= 2].
/// Weights keep every value in [-2, 2].
model::Graph calibration_graph(std::int64_t c, std::int64_t s, bool square) {
  using model::Attribute;
  model::Graph g;
  g.opset = 13;
  const model::TensorId x = model::add_activation(g, "x", {c, s, s});
  g.inputs = {x};
  auto ints = [](std::vector<std::int64_t> v) {
    Attribute a;
    a.kind = Attribute::Kind::Ints;
    a.ints = std::move(v);
    a.onnx_type = "INTS";
    return a;
  };
  auto one = [](std::int64_t v) {
    Attribute a;
    a.kind = Attribute::Kind::Int;
    a.i = v;
    a.onnx_type = "INT";
    return a;
  };
  auto node = [&](const std::string& name, model::OpType op, std::vector<model::TensorId> in,
                  model::AttributeMap attrs) {
    const model::TensorId y = model::add_activation(g, name + "_out");
    model::Node n;
    n.name = name;
    n.op = op;
    n.inputs = std::move(in);
    n.outputs = {y};
    n.attributes = std::move(attrs);
    g.nodes.push_back(std::move(n));
    return y;
  };
  auto weights = [&](const std::string& name, model::Shape shape, double magnitude) {
    std::vector<double> w(static_cast<std::size_t>(model::numel(shape)));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = magnitude * (i % 3 == 0 ? -0.75 : 1.0 - 0.05 * static_cast<double>(i % 5));
    return model::add_constant(g, name, std::move(shape), std::move(w));
  };
  const auto wa = weights("wa", {c, c, 1, 1}, 1.0 / static_cast<double>(c));
  const auto wb = weights("wb", {c, 1, 3, 3}, 1.0 / 9.0);
  const auto wd = weights("wd", {c, c, 3, 3}, 1.0 / (9.0 * static_cast<double>(c)));
  const model::AttributeMap pad1{{"pads", ints({1, 1, 1, 1})}};
  const auto a = node("A", model::OpType::Conv, {x, wa}, {});
  const auto r = node("R", model::OpType::Relu, {a}, {});
  const auto d = node("B", model::OpType::Conv, {r, wb}, {{"pads", ints({1, 1, 1, 1})}, {"group", one(c)}});
  const auto e = node("E", model::OpType::Add, {a, d}, {});
  const auto p = node("M", model::OpType::MaxPool, {e}, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
  model::TensorId y = node("D", model::OpType::Conv, {p, wd}, pad1);
  if (square) y = node("S", model::OpType::Mul, {y, y}, {});
  g.outputs = {y};
  model::prepare_graph(g);
  return g;
}

}  // namespace

plan::CostCalibration calibrate_costs(const plan::Parameters& plan) {
  const auto t_start = Clock::now();
  plan::CostCalibration c;
  const std::size_t N = plan.params.poly_modulus_degree();
  const std::size_t L = plan.params.coeff_bits().size() - 1;
  c.n = N;
  c.max_level = static_cast<int>(L);
  c.threads = omp_get_max_threads();

  // Size: about 2^23 / (N·(L+1)) ciphertexts per tensor, 64..1024 (enough to amortize
  // the parallel regions on a shared machine; 2-3 s in all at N = 2^13, L = 2 on two
  // loaded cores; half the size doubled the run-to-run spread).
  constexpr std::int64_t kChannels = 8;
  const double target = std::clamp(std::ldexp(1.0, 23) / static_cast<double>(N * (L + 1)), 64.0, 1024.0);
  const std::int64_t side = std::max<std::int64_t>(
      2, 2 * std::llround(std::sqrt(target / static_cast<double>(kChannels)) / 2.0));
  // A square only where the parameters can relinearize (a special prime) and have the level.
  const bool square = L >= 2 && !plan.params.special_bits().empty();
  const model::Graph g = calibration_graph(kChannels, side, square);
  const std::int64_t batch = std::min<std::int64_t>(plan.capacity(), 8);
  PlainTensor x = make_plain_tensor({kChannels, side, side}, batch);
  // Timing inputs only (no secret): a fixed pattern in [-1, 1].
  for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = std::sin(0.7 * static_cast<double>(i) + 0.3);
  plan::Parameters cp = plan;
  cp.bounds = calibrate_ranges(g, {x});
  for (double& b : cp.bounds) b = std::max(2.0 * b, 1e-3);
  const plan::EncryptedPlan ep = plan::make_plan(g, cp);
  const plan::FootprintEstimate f = plan::predict_footprint(g, ep);

  // Two runs (the first pays first-touch page faults); per layer the faster.
  EncryptedSession session(g, cp);
  std::vector<double> layer(g.nodes.size(), INFINITY);
  double enc = INFINITY;
  for (int rep = 0; rep < 2; ++rep) {
    EncryptedRunStats st;
    const auto t0 = Clock::now();
    session.executor->run(*session.client, {x}, st);
    double in_layers = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      layer[k] = std::min(layer[k], st.layers[k].seconds);
      in_layers += st.layers[k].seconds;
    }
    // Encryption of the input + decryption of the output: the rest of the run.
    enc = std::min(enc, std::max(0.0, std::chrono::duration<double>(Clock::now() - t0).count() - in_layers));
  }
  // Expanding compact fresh ciphertexts (c1 regenerated from the seed), as the backend
  // does once per node for every compact input it reads.
  {
    const auto fresh = session.client->encrypt_tensor(x, "calibration", 2.0);
    std::vector<ckks::Ciphertext> copies(fresh.size());
    double best = INFINITY;
    for (int rep = 0; rep < 2; ++rep) {
      for (std::size_t i = 0; i < fresh.size(); ++i) copies[i] = fresh[i];
      const auto t0 = Clock::now();
#pragma omp parallel for schedule(dynamic, 4)
      for (std::size_t i = 0; i < copies.size(); ++i) copies[i].expand(*session.context);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    c.expand_limb = best / (static_cast<double>(fresh.size()) * static_cast<double>(L + 1));
  }
  // First touch: writing a fresh anonymous mapping of 64 MiB once (the page faults a
  // growing heap pays).
  {
    constexpr std::size_t kBytes = std::size_t{64} << 20;
    double best = INFINITY;
    for (int rep = 0; rep < 2; ++rep) {
      void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) break;
      const auto t0 = Clock::now();
      std::memset(p, 1, kBytes);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
      munmap(p, kBytes);
    }
    c.first_touch = std::isfinite(best) ? best / static_cast<double>(kBytes) : 0.0;
  }
  auto index = [&](const std::string& name) {
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      if (g.nodes[k].name == name) return k;
    }
    throw std::logic_error("calibration graph: no node " + name);
  };
  const std::size_t A = index("A"), R = index("R"), B = index("B"), E = index("E"), M = index("M"), D = index("D");
  auto limbs = [&](std::size_t k) { return static_cast<double>(ep.nodes[k].input_level + 1); };
  auto outs = [&](std::size_t k) { return static_cast<double>(ep.nodes[k].output_ciphertexts); };
  auto terms = [&](std::size_t k) { return static_cast<double>(f.nodes[k].mac_terms); };
  // Layer time without the expansion of its compact inputs.
  auto computing = [&](std::size_t k) {
    return std::max(0.0, layer[k] - static_cast<double>(f.nodes[k].fresh_inputs) * limbs(k) * c.expand_limb);
  };
  // Dense layers A (few terms) and D (many): t = limbs·(terms·mac + outputs·out).
  const double ya = computing(A) / limbs(A), yd = computing(D) / limbs(D);
  const double det = terms(D) * outs(A) - terms(A) * outs(D);
  c.mac_shared = det != 0 ? (yd * outs(A) - ya * outs(D)) / det : 0;
  c.output_limb = (ya - terms(A) * c.mac_shared) / outs(A);
  if (c.mac_shared <= 0 || c.output_limb <= 0) {  // noise: attribute D's time to its terms
    c.output_limb = std::max(0.0, 0.5 * ya / outs(A));
    c.mac_shared = std::max(0.0, (yd - outs(D) * c.output_limb) / terms(D));
  }
  // A per-output term list is never cheaper per term than a shared one.
  c.mac_single = std::max(c.mac_shared, (computing(B) / limbs(B) - outs(B) * c.output_limb) / terms(B));
  c.add_limb = layer[E] / (limbs(E) * std::max(1.0, static_cast<double>(f.nodes[E].additions)));
  c.copy_limb = c.add_limb;
  // Rounds: Relu sends n and gets n back; MaxPool sends taps and gets outputs back.
  const double n_r = static_cast<double>(ep.nodes[R].round_ciphertexts);
  const double s_m = static_cast<double>(ep.nodes[M].round_ciphertexts), o_m = static_cast<double>(ep.nodes[M].round_replies);
  const double det_r = n_r * o_m - s_m * n_r;  // [n n; s o] · [send reply] = [t_R t_M]
  c.round_send = det_r != 0 ? (layer[R] * o_m - layer[M] * n_r) / det_r : 0;
  c.round_reply = n_r > 0 ? layer[R] / n_r - c.round_send : 0;
  if (c.round_send <= 0 || c.round_reply <= 0) {  // noise: split the Relu's time evenly
    c.round_send = c.round_reply = n_r > 0 ? 0.5 * layer[R] / n_r : 0;
  }
  if (square) {
    const std::size_t S = index("S");
    c.square_limb = layer[S] / (limbs(S) * static_cast<double>(f.nodes[S].squares));
  }
  // Client encryption (input) and decryption (output), split by the unit counts.
  const double io = static_cast<double>(f.input_ciphertexts) + 0.5 * static_cast<double>(f.output_ciphertexts);
  c.encrypt = enc / io;
  c.decrypt = 0.5 * c.encrypt;
  c.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return c;
}

}  // namespace heinfer::runtime
