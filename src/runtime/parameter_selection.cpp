#include "runtime/parameter_selection.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ckks/security.h"
#include "model/analysis.h"
#include "model/error.h"
#include "model/liveness.h"
#include "runtime/encrypted_executor.h"
#include "runtime/plain_executor.h"

namespace heinfer::runtime {
namespace {

using model::OpType;

struct State {
  int depth = 0;
  bool factor = false;
  bool delta = true;  ///< scale is exactly Δ (false after a square)
};

int sum_bits(const std::vector<int>& a) {
  int s = 0;
  for (int b : a) s += b;
  return s;
}

/// Samples [b0, b1) of t.
PlainTensor sub_batch(const PlainTensor& t, std::int64_t b0, std::int64_t b1) {
  PlainTensor s;
  s.shape = t.shape;
  s.batch = b1 - b0;
  s.data.reserve(static_cast<std::size_t>(t.elements() * s.batch));
  for (std::int64_t e = 0; e < t.elements(); ++e) {
    const auto v = t.element(e);
    s.data.insert(s.data.end(), v.begin() + b0, v.begin() + b1);
  }
  return s;
}

/// Per-tensor largest |value| of a plaintext run of `inputs` (all of one batch), folded
/// into `range` by max.
void calibrate_into(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                    const std::vector<std::vector<model::TensorId>>& free_after, std::vector<double>& range) {
  std::vector<std::optional<PlainTensor>> values(g.tensors.size());
  auto record = [&](model::TensorId t, const PlainTensor& v) {
    double m = 0;
    for (double x : v.data) m = std::max(m, std::fabs(x));
    auto& r = range[static_cast<std::size_t>(t)];
    r = std::max(r, m);
  };
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    record(g.inputs[i], inputs[i]);
    values[static_cast<std::size_t>(g.inputs[i])] = inputs[i];
  }
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    std::vector<const PlainTensor*> in;
    for (model::TensorId t : n.inputs) {
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) in.push_back(nullptr);
      else in.push_back(&*values[static_cast<std::size_t>(t)]);
    }
    const model::TensorId out = n.outputs[0];
    PlainTensor y = make_plain_tensor(g.tensors[static_cast<std::size_t>(out)].shape, batch);
    run_node_plain(g, n, in, y);
    record(out, y);
    values[static_cast<std::size_t>(out)] = std::move(y);
    for (model::TensorId t : free_after[k]) values[static_cast<std::size_t>(t)].reset();
  }
}

}  // namespace

std::int64_t calibration_samples(const model::Graph& g) {
  std::int64_t largest = 1;
  for (const auto& t : g.tensors) {
    if (!t.is_constant) largest = std::max(largest, model::numel(t.shape));
  }
  return std::max<std::int64_t>(1, kCalibrationTensorBytes / (largest * static_cast<std::int64_t>(sizeof(double))));
}

std::vector<double> calibrate_ranges(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                                     std::int64_t samples_per_part) {
  if (inputs.size() != g.inputs.size()) throw model::ModelError("calibration: wrong number of inputs");
  std::vector<double> range(g.tensors.size(), 0.0);
  const auto free_after = model::activations_to_free(g);
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  for (const PlainTensor& x : inputs) {
    if (x.batch != batch) throw model::ModelError("calibration: the inputs differ in batch size");
  }
  const std::int64_t part = samples_per_part > 0 ? samples_per_part : calibration_samples(g);
  if (batch <= part) {
    calibrate_into(g, inputs, free_after, range);
    return range;
  }
  for (std::int64_t b0 = 0; b0 < batch; b0 += part) {
    std::vector<PlainTensor> sub;
    for (const PlainTensor& x : inputs) sub.push_back(sub_batch(x, b0, std::min(batch, b0 + part)));
    calibrate_into(g, sub, free_after, range);
  }
  return range;
}

LevelRequirements simulate_levels(const model::Graph& g, const std::vector<double>& bounds) {
  std::vector<State> st(g.tensors.size());
  const auto users = model::consumers(g);
  // (depth, magnitude) of every point where a ciphertext is decrypted or masked.
  std::vector<std::pair<int, double>> points;
  int max_depth = 0;
  auto bound = [&](model::TensorId t) { return bounds.at(static_cast<std::size_t>(t)); };
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const model::TensorId out = n.outputs[0];
    State in{};
    bool any_factor = false, mixed = false;
    int data_inputs = 0;
    model::TensorId x = model::kNoTensor;
    for (model::TensorId t : n.inputs) {
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
      if (x == model::kNoTensor) x = t;
      ++data_inputs;
      mixed = mixed || !st[static_cast<std::size_t>(t)].delta;
    }
    mixed = mixed && data_inputs > 1;  // the executor brings non-Δ inputs to Δ (+1 level)
    for (model::TensorId t : n.inputs) {
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
      State s = st[static_cast<std::size_t>(t)];
      if (mixed && !s.delta) {
        points.emplace_back(++s.depth, bound(t));
        s.factor = false;
      }
      in.depth = std::max(in.depth, s.depth);
      any_factor = any_factor || s.factor;
    }
    in.factor = any_factor;
    in.delta = true;
    if (!mixed) {
      for (model::TensorId t : n.inputs) {
        if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
        in.delta = in.delta && st[static_cast<std::size_t>(t)].delta;
      }
    }
    State o{};
    const double bx = x == model::kNoTensor ? 0.0 : bound(x);
    const double fmag = in.factor ? kMaskMax : 1.0;  // |ciphertext value| / |true value|
    switch (encrypted_node_kind(g, n)) {
      case EncryptedNodeKind::DataMovement: o = in; break;
      case EncryptedNodeKind::Linear: {
        const bool rescale = model::levels(g, n) > 0 || in.factor;
        o.depth = in.depth + (rescale ? 1 : 0);
        o.delta = rescale || in.delta;
        break;
      }
      case EncryptedNodeKind::Square: o = {in.depth + 1, in.factor, false}; break;
      case EncryptedNodeKind::FusedRelu: o = in; break;
      case EncryptedNodeKind::Relu:
        points.emplace_back(in.depth, bx * fmag * kMaskMax);
        o = {0, true};
        break;
      case EncryptedNodeKind::MaxPool: {
        int d = in.depth;
        if (in.factor) points.emplace_back(++d, bx);
        points.emplace_back(d, bx * kMaskMax);
        o = {0, true};
        break;
      }
      case EncryptedNodeKind::Clip:
      case EncryptedNodeKind::LeakyRelu: {
        // Pending factors are folded into the shifts and the combining weights; the
        // combination runs at x's level when it reads x (LeakyRelu, Clip without a
        // lower bound), else at the top level on the fresh round results.
        int d = in.depth;
        if (!in.delta) points.emplace_back(++d, bx);  // brought to scale Δ first
        double shift = 0;  // the round masks x - lo and x - hi
        bool uses_x = true;
        if (const auto* c = std::get_if<model::ClipParams>(&n.params)) {
          if (std::isfinite(c->min)) shift = std::max(shift, std::fabs(c->min));
          if (std::isfinite(c->max)) shift = std::max(shift, std::fabs(c->max));
          uses_x = !std::isfinite(c->min);
        }
        points.emplace_back(d, (bx + shift) * fmag * kMaskMax);
        o = {uses_x ? d + 1 : 1, false};
        break;
      }
      case EncryptedNodeKind::FinalSoftmax: points.emplace_back(in.depth, bx * fmag); break;
    }
    st[static_cast<std::size_t>(out)] = o;
    max_depth = std::max(max_depth, o.depth);
    points.emplace_back(o.depth, bound(out) * (o.factor ? kMaskMax : 1.0));
  }
  for (model::TensorId t : g.outputs) {
    points.emplace_back(st[static_cast<std::size_t>(t)].depth,
                        bound(t) * (st[static_cast<std::size_t>(t)].factor ? kMaskMax : 1.0));
  }
  LevelRequirements r;
  for (const auto& [d, m] : points) max_depth = std::max(max_depth, d);
  r.levels = max_depth;
  double mag = 1.0;
  for (const auto& [d, m] : points) {
    if (d == max_depth) mag = std::max(mag, m);
  }
  r.log2_level0_magnitude = std::log2(mag);
  return r;
}

double EncryptionPlan::scale() const { return std::ldexp(1.0, scale_bits); }

std::int64_t EncryptionPlan::capacity() const {
  return samples_per_ciphertext(packing, params.poly_modulus_degree());
}

std::string EncryptionPlan::describe() const {
  std::ostringstream s;
  s << "N=" << params.poly_modulus_degree() << " chain bits [";
  const auto& q = params.coeff_bits();
  for (std::size_t i = 0; i < q.size(); ++i) s << (i ? "," : "") << q[i];
  s << "] special bits [";
  const auto& p = params.special_bits();
  for (std::size_t i = 0; i < p.size(); ++i) s << (i ? "," : "") << p[i];
  s << "] log2(QP)=" << sum_bits(q) + sum_bits(p) << " (128-bit bound "
    << ckks::max_log_qp_128(params.poly_modulus_degree()) << ") levels=" << needs.levels
    << " scale=2^" << scale_bits << " packing=" << packing_name(packing)
    << " samples/ciphertext=" << capacity();
  return s.str();
}

namespace {

constexpr int kMaxBasePrimeBits = 60;

int required_q0_bits(const EncryptionPlan& plan, int noise_bits) {
  return static_cast<int>(std::ceil(plan.needs.log2_level0_magnitude)) + 1 + plan.scale_bits + noise_bits;
}

}  // namespace

EncryptionPlan plan_parameters(const model::Graph& g, const std::vector<double>& ranges,
                               const PlanOptions& o) {
  if (o.scale_bits < 20 || o.scale_bits > 50) {
    throw std::invalid_argument("scale bits must be in [20, 50], got " + std::to_string(o.scale_bits));
  }
  EncryptionPlan plan;
  plan.packing = o.packing;
  plan.scale_bits = o.scale_bits;
  plan.margin = o.margin;
  plan.bounds.resize(ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) plan.bounds[i] = std::max(ranges[i] * o.margin, 1e-3);
  plan.needs = simulate_levels(g, plan.bounds);
  const int q0 = std::max(required_q0_bits(plan, o.noise_bits), o.scale_bits + 10);
  if (q0 > 2 * kMaxBasePrimeBits) {
    throw std::invalid_argument("parameter selection: q_0 would need " + std::to_string(q0) +
                                " bits (> " + std::to_string(2 * kMaxBasePrimeBits) + ", as two primes) for values up to 2^" +
                                std::to_string(plan.needs.log2_level0_magnitude) +
                                " at scale 2^" + std::to_string(o.scale_bits) + "; lower --scale-bits");
  }
  // The modulus left at the deepest level: one prime of up to 60 bits, else two primes
  // that the executor never rescales away. (Limbs of 50 bits and more leave the AVX-512
  // IFMA kernels for the portable ones; splitting every such q_0 would keep them on
  // IFMA but costs one more limb in every ciphertext, 25-50 % more memory for the large
  // models, for a ~20 % faster run: memory is the scarcer resource.)
  std::vector<int> coeff;
  if (q0 <= kMaxBasePrimeBits) {
    coeff = {q0};
  } else {
    coeff = {(q0 + 1) / 2, q0 / 2};
  }
  for (int l = 0; l < plan.needs.levels; ++l) coeff.push_back(o.scale_bits);
  const int special = *std::max_element(coeff.begin(), coeff.end());
  const int total = sum_bits(coeff) + special;
  for (std::size_t n = 2048; n <= 65536; n *= 2) {
    if (total <= ckks::max_log_qp_128(n)) {
      plan.params = ckks::EncryptionParameters(n, coeff, {special});
      return plan;
    }
  }
  throw std::invalid_argument("parameter selection: log2(QP) = " + std::to_string(total) +
                              " bits exceeds the 128-bit bound for every N <= 65536");
}

void apply_parameter_override(EncryptionPlan& plan, std::size_t n, std::vector<int> coeff_bits,
                              std::vector<int> special_bits, int scale_bits) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("--params: " + m); };
  if (n < 2048 || n > 65536 || (n & (n - 1)) != 0) fail("n must be a power of two in [2048, 65536]");
  if (coeff_bits.empty() || special_bits.empty()) fail("coeff_bits and special_bits must be non-empty");
  if (scale_bits < 20 || scale_bits > 50) fail("scale_bits must be in [20, 50]");
  const int needed_levels = plan.needs.levels;
  if (static_cast<int>(coeff_bits.size()) < needed_levels + 1) {
    fail("insufficient modulus: the model needs " + std::to_string(needed_levels) + " levels (" +
         std::to_string(needed_levels + 1) + " chain primes), got " +
         std::to_string(coeff_bits.size()) + " chain primes");
  }
  EncryptionPlan tmp = plan;
  tmp.scale_bits = scale_bits;
  const int q0_needed = required_q0_bits(tmp, 0);
  // The primes the deepest level keeps (the chain minus one prime per level).
  const std::size_t base = coeff_bits.size() - static_cast<std::size_t>(needed_levels);
  int base_bits = 0;
  for (std::size_t i = 0; i < base; ++i) base_bits += coeff_bits[i];
  if (base_bits < q0_needed) {
    fail("insufficient modulus: q_0 (with the other primes the deepest level keeps) has " +
         std::to_string(base_bits) + " bits but values up to 2^" +
         std::to_string(static_cast<int>(std::ceil(plan.needs.log2_level0_magnitude))) +
         " at scale 2^" + std::to_string(scale_bits) + " need at least " + std::to_string(q0_needed));
  }
  for (std::size_t i = base; i < coeff_bits.size(); ++i) {
    if (std::abs(coeff_bits[i] - scale_bits) > 10) {
      fail("chain prime " + std::to_string(i) + " has " + std::to_string(coeff_bits[i]) +
           " bits; rescaling primes must be within 10 bits of scale_bits (" + std::to_string(scale_bits) + ")");
    }
  }
  const int max_chain = *std::max_element(coeff_bits.begin(), coeff_bits.end());
  if (*std::max_element(special_bits.begin(), special_bits.end()) < max_chain) {
    fail("the special prime must be at least as large as the largest chain prime (" +
         std::to_string(max_chain) + " bits)");
  }
  const int total = sum_bits(coeff_bits) + sum_bits(special_bits);
  if (total > ckks::max_log_qp_128(n)) {
    fail("insecure: log2(QP) = " + std::to_string(total) + " exceeds the 128-bit bound " +
         std::to_string(ckks::max_log_qp_128(n)) + " for N = " + std::to_string(n));
  }
  plan.scale_bits = scale_bits;
  plan.params = ckks::EncryptionParameters(n, std::move(coeff_bits), std::move(special_bits));
}

void apply_parameter_override(EncryptionPlan& plan, const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::invalid_argument("--params: cannot read '" + file.string() + "'");
  nlohmann::json j;
  try {
    in >> j;
    apply_parameter_override(plan, j.at("n").get<std::size_t>(), j.at("coeff_bits").get<std::vector<int>>(),
                             j.at("special_bits").get<std::vector<int>>(),
                             j.value("scale_bits", plan.scale_bits));
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("--params: malformed JSON in '" + file.string() + "': " + e.what() +
                                " (expected {\"n\":..., \"coeff_bits\":[...], \"special_bits\":[...], "
                                "\"scale_bits\":...})");
  }
}

}  // namespace heinfer::runtime
