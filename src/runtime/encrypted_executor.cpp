#include "runtime/encrypted_executor.h"

#include <omp.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "model/analysis.h"
#include "model/error.h"
#include "model/liveness.h"
#include "runtime/encrypted_backend.h"
#include "runtime/kernels/client_aided.h"
#include "runtime/kernels/dispatch.h"
#include "runtime/kernels/window.h"

namespace heinfer::runtime {
namespace {

using model::ModelError;
using model::OpType;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// The linear / polynomial / data-movement ops on ciphertexts: the dispatch shared with
/// the plaintext executor (kernels/dispatch.h).
void run_linear(const EncryptedBackend& be, const model::Graph& g, const model::Node& n,
                const std::vector<const EncryptedTensor*>& in, EncryptedTensor& y) {
  if (!kernels::run_backend_node(be, g, n, in, y)) {
    throw ModelError(model::node_label(n) + ": not supported by the encrypted executor");
  }
}

/// A uniform integer mask in [kMaskMin, kMaskMax) from the libsodium CSPRNG.
double random_mask() {
  return kMaskMin + static_cast<double>(randombytes_uniform(static_cast<uint32_t>(kMaskMax - kMaskMin)));
}

/// A uniformly random permutation of 0..n-1 (Fisher-Yates, libsodium CSPRNG).
std::vector<std::size_t> random_permutation(std::size_t n) {
  std::vector<std::size_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = i;
  for (std::size_t i = n; i > 1; --i) {
    const std::size_t j = randombytes_uniform(static_cast<uint32_t>(i));
    std::swap(p[i - 1], p[j]);
  }
  return p;
}

bool is_data_movement(OpType op) {
  switch (op) {
    case OpType::Flatten:
    case OpType::Reshape:
    case OpType::Identity:
    case OpType::Dropout:
    case OpType::Transpose:
    case OpType::Concat:
    case OpType::Pad: return true;
    default: return false;
  }
}

/// Server-side state of one run.
class Run {
 public:
  Run(const model::Graph& g, const EncryptionPlan& plan, const ckks::CKKSContext& ctx,
      const ckks::Evaluator& eval, const EvaluationKeys& keys, Client& client, EncryptedRunStats& stats)
      : g_(g), plan_(plan), ctx_(ctx), eval_(eval), client_(client), stats_(stats) {
    be_.eval = &eval;
    be_.relin = &keys.relin;
    be_.galois = &keys.galois;
    be_.packing = plan.packing;
    be_.target_scale = plan.scale();
  }

  EncryptedBackend be_;

  /// Encrypts a graph input on the client.
  EncryptedTensor encrypt(const PlainTensor& x, const std::string& name, double bound) {
    const auto t0 = Clock::now();
    auto cts = client_.encrypt(x, name, bound);
    stats_.client_seconds += since(t0);
    EncryptedTensor t;
    t.shape = x.shape;
    t.level = ctx_.max_level();
    t.scale = plan_.scale();
    t.cts.resize(cts.size());
    for (const auto& c : cts) stats_.bytes_to_server += wire_bytes(c, ctx_);
#pragma omp parallel for schedule(dynamic, 8)
    for (std::size_t i = 0; i < cts.size(); ++i) {
      cts[i].expand(ctx_);
      t.cts[i] = std::make_shared<const ckks::Ciphertext>(std::move(cts[i]));
    }
    return t;
  }

  /// Brings every ciphertext of t to `level` (mod switch; shares nothing it changes).
  void to_level(EncryptedTensor& t, std::size_t level) const {
    if (t.level == level) return;
    if (t.level < level) throw std::logic_error("to_level: cannot raise a level");
    const auto n = static_cast<std::int64_t>(t.cts.size());
#pragma omp parallel for schedule(dynamic, 8)
    for (std::int64_t e = 0; e < n; ++e) {
      auto& c = t.cts[static_cast<std::size_t>(e)];
      if (!c) continue;
      auto d = std::make_shared<ckks::Ciphertext>(*c);
      eval_.mod_switch_to_inplace(*d, level);
      c = std::move(d);
    }
    t.level = level;
  }

  /// Applies pending factors (and brings the scale to Δ): one multiply-accumulate of
  /// weight f_e and one rescale per element.
  void materialize(EncryptedTensor& t, const std::string& layer) {
    if (t.level == 0) throw std::invalid_argument(layer + ": out of levels while unmasking");
    EncryptedBackend be = be_;
    be.rescale = true;
    be.in_level = t.level;
    be.in_scale = t.scale;
    EncryptedTensor y;
    y.shape = t.shape;
    y.level = t.level - 1;
    y.scale = plan_.scale();
    y.cts.resize(t.cts.size());
    const auto n = t.elements();
#pragma omp parallel for schedule(dynamic, 4)
    for (std::int64_t e = 0; e < n; ++e) {
      auto acc = be.start(y, e);
      be.mac(acc, t, e, 1.0);
      be.finish(y, e, acc);
    }
    t = std::move(y);
  }

  /// Masks each window with its own R, shuffles, runs the round, un-shuffles. Returns
  /// one fresh ciphertext per window and the masks.
  std::vector<CiphertextPtr> masked_round(const std::string& layer, RoundFunction f,
                                          const std::vector<std::vector<const ckks::Ciphertext*>>& windows,
                                          double bound, std::vector<double>& masks) {
    const std::size_t count = windows.size();
    masks.resize(count);
    for (auto& r : masks) r = random_mask();
    std::vector<std::vector<ckks::Ciphertext>> masked(count);
#pragma omp parallel for schedule(dynamic, 4)
    for (std::size_t w = 0; w < count; ++w) {
      masked[w].resize(windows[w].size());
      for (std::size_t k = 0; k < windows[w].size(); ++k) {
        eval_.multiply_scalar(*windows[w][k], masks[w], 1.0, masked[w][k]);
      }
    }
    const auto perm = random_permutation(count);
    RoundRequest req;
    req.layer = layer;
    req.function = f;
    req.bound = bound;
    req.windows.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      for (const auto& c : masked[perm[i]]) {
        req.windows[i].push_back(&c);
        stats_.bytes_to_client += wire_bytes(c, ctx_);
      }
    }
    const auto t0 = Clock::now();
    auto reply = client_.round(req);
    stats_.client_seconds += since(t0);
    ++stats_.rounds;
    if (reply.size() != count) throw std::runtime_error(layer + ": the client returned a wrong number of ciphertexts");
    for (const auto& c : reply) stats_.bytes_to_server += wire_bytes(c, ctx_);
    std::vector<CiphertextPtr> out(count);
#pragma omp parallel for schedule(dynamic, 8)
    for (std::size_t i = 0; i < count; ++i) {
      reply[i].expand(ctx_);
      out[perm[i]] = std::make_shared<const ckks::Ciphertext>(std::move(reply[i]));
    }
    return out;
  }

  /// Round bound: the largest |decoded masked value| allowed.
  double round_bound(const EncryptedTensor& x, double true_bound) const {
    double inv = 1.0;
    for (double f : x.factor) inv = std::max(inv, 1.0 / f);
    return true_bound * inv * kMaskMax;
  }

  CiphertextPtr zero_ct(std::size_t level, double scale) const {
    return std::make_shared<const ckks::Ciphertext>(be_.constant(0.0, level, scale));
  }

  /// Relu round: y_e = fresh R_e·relu(x_e) with factor f_e / R_e.
  EncryptedTensor relu(const EncryptedTensor& x, const std::string& layer, double bound) {
    std::vector<std::vector<const ckks::Ciphertext*>> windows;
    std::vector<std::int64_t> idx;
    for (std::int64_t e = 0; e < x.elements(); ++e) {
      if (!x.cts[static_cast<std::size_t>(e)]) continue;
      windows.push_back({x.cts[static_cast<std::size_t>(e)].get()});
      idx.push_back(e);
    }
    std::vector<double> masks;
    auto res = masked_round(layer, RoundFunction::Relu, windows, round_bound(x, bound), masks);
    EncryptedTensor y;
    y.shape = x.shape;
    y.cts.resize(x.cts.size());
    y.factor.assign(x.cts.size(), 1.0);
    y.level = ctx_.max_level();
    y.scale = plan_.scale();
    for (std::size_t i = 0; i < idx.size(); ++i) {
      const auto e = static_cast<std::size_t>(idx[i]);
      y.cts[e] = res[i];
      y.factor[e] = x.factor_at(idx[i]) / masks[i];
    }
    return y;
  }

  EncryptedTensor max_pool(EncryptedTensor x, const model::Node& n, const model::Shape& y_shape,
                           bool fused_relu, double bound, const std::string& layer) {
    const auto& p = std::get<model::PoolParams>(n.params);
    if (x.has_factors()) materialize(x, n.name);
    const kernels::WindowIndexer win(x.shape, y_shape, p.kernel, p.strides, p.dilations, p.pads_begin,
                                     p.pads_end);
    const std::int64_t total = y_shape[0] * win.out_size;
    CiphertextPtr zero;
    std::vector<std::vector<const ckks::Ciphertext*>> windows(static_cast<std::size_t>(total));
    for (std::int64_t idx = 0; idx < total; ++idx) {
      const std::int64_t c = idx / win.out_size, os = idx % win.out_size;
      std::array<std::int64_t, kernels::kMaxSpatial> base;
      win.origin(os, base);
      for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
        const std::int64_t off = win.input_offset(base, kp);
        if (off < 0) continue;
        const auto& ct = x.cts[static_cast<std::size_t>(c * win.in_size + off)];
        if (ct) {
          windows[static_cast<std::size_t>(idx)].push_back(ct.get());
        } else {
          if (!zero) zero = zero_ct(x.level, x.scale);
          windows[static_cast<std::size_t>(idx)].push_back(zero.get());
        }
      }
      if (windows[static_cast<std::size_t>(idx)].empty()) {
        throw ModelError(model::node_label(n) + ": a pooling window covers only padding");
      }
    }
    std::vector<double> masks;
    auto res = masked_round(layer, fused_relu ? RoundFunction::ReluMax : RoundFunction::Max, windows,
                            round_bound(x, bound), masks);
    EncryptedTensor y;
    y.shape = y_shape;
    y.level = ctx_.max_level();
    y.scale = plan_.scale();
    y.cts = std::move(res);
    y.factor.resize(masks.size());
    for (std::size_t i = 0; i < masks.size(); ++i) y.factor[i] = 1.0 / masks[i];
    return y;
  }

  /// Clip = lo + relu(x - lo) - relu(x - hi); LeakyRelu = α·x + (1 - α)·relu(x).
  EncryptedTensor clip_or_leaky(EncryptedTensor x, const model::Node& n, double bound,
                                const std::string& layer) {
    if (x.has_factors() || std::fabs(x.scale / plan_.scale() - 1.0) > 1e-9) materialize(x, n.name);
    const bool leaky = n.op == OpType::LeakyRelu;
    double lo = -INFINITY, hi = INFINITY, alpha = 0;
    if (leaky) {
      alpha = std::get<model::LeakyReluParams>(n.params).alpha;
    } else {
      lo = std::get<model::ClipParams>(n.params).min;
      hi = std::get<model::ClipParams>(n.params).max;
    }
    const std::int64_t elements = x.elements();
    if (!leaky && std::isinf(lo) && std::isinf(hi)) return x;
    // Shifted inputs x - s for each finite bound s (leaky: s = 0).
    std::vector<double> shifts;
    if (leaky) shifts.push_back(0.0);
    if (std::isfinite(lo)) shifts.push_back(lo);
    if (std::isfinite(hi)) shifts.push_back(hi);
    std::vector<ckks::Ciphertext> shifted(shifts.size() * static_cast<std::size_t>(elements));
#pragma omp parallel for schedule(dynamic, 8)
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(shifted.size()); ++i) {
      const auto s = static_cast<std::size_t>(i / elements);
      const auto& c = x.cts[static_cast<std::size_t>(i % elements)];
      auto& out = shifted[static_cast<std::size_t>(i)];
      out = c ? *c : be_.constant(0.0, x.level, x.scale);
      be_.add_constant(out, -shifts[s]);
    }
    std::vector<std::vector<const ckks::Ciphertext*>> windows;
    for (auto& c : shifted) windows.push_back({&c});
    double max_shift = 0;
    for (double s : shifts) max_shift = std::max(max_shift, std::fabs(s));
    std::vector<double> masks;
    auto res = masked_round(layer, RoundFunction::Relu, windows, round_bound(x, bound + max_shift), masks);
    // Combine: y = bias + Σ w_k · c_k at x's level (fresh results are mod-switched down).
    EncryptedBackend be = be_;
    be.rescale = true;
    const bool uses_x = leaky || std::isinf(lo);
    const std::size_t level = uses_x ? x.level : ctx_.max_level();
    if (level == 0) throw std::invalid_argument(n.name + ": out of levels");
    be.in_level = level;
    be.in_scale = plan_.scale();
    EncryptedTensor y;
    y.shape = x.shape;
    y.level = level - 1;
    y.scale = plan_.scale();
    y.cts.resize(static_cast<std::size_t>(elements));
    std::vector<std::shared_ptr<ckks::Ciphertext>> lowered(res.size());
#pragma omp parallel for schedule(dynamic, 8)
    for (std::size_t i = 0; i < res.size(); ++i) {
      auto d = std::make_shared<ckks::Ciphertext>(*res[i]);
      if (d->level() > level) eval_.mod_switch_to_inplace(*d, level);
      lowered[i] = std::move(d);
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (std::int64_t e = 0; e < elements; ++e) {
      EncryptedBackend::Acc acc;
      auto term = [&](std::size_t s, double w) {
        const std::size_t i = s * static_cast<std::size_t>(elements) + static_cast<std::size_t>(e);
        acc.cts.push_back(lowered[i].get());
        acc.weights.push_back(w / masks[i]);
      };
      const auto& xe = x.cts[static_cast<std::size_t>(e)];
      if (leaky) {
        if (xe && alpha != 0.0) {
          acc.cts.push_back(xe.get());
          acc.weights.push_back(alpha);
        }
        term(0, 1.0 - alpha);
      } else {
        std::size_t s = 0;
        if (std::isfinite(lo)) {
          acc.bias = lo;
          term(s++, 1.0);
        } else if (xe) {
          acc.cts.push_back(xe.get());
          acc.weights.push_back(1.0);
        }
        if (std::isfinite(hi)) term(s, -1.0);
      }
      be.finish(y, e, acc);
    }
    return y;
  }

 private:
  const model::Graph& g_;
  const EncryptionPlan& plan_;
  const ckks::CKKSContext& ctx_;
  const ckks::Evaluator& eval_;
  Client& client_;
  EncryptedRunStats& stats_;
};

}  // namespace

std::int64_t wire_bytes(const ckks::Ciphertext& ct, const ckks::CKKSContext& context) {
  std::int64_t limb_bytes = 0;
  for (std::size_t i = 0; i <= ct.level(); ++i) {
    const int bits = static_cast<int>(std::floor(std::log2(static_cast<double>(context.modulus(i).value)))) + 1;
    limb_bytes += static_cast<std::int64_t>((bits + 7) / 8) * static_cast<std::int64_t>(context.n());
  }
  const std::int64_t polys = ct.is_seeded() && ct.is_compact() ? 1 : static_cast<std::int64_t>(ct.size());
  return 48 + 16 + (ct.is_compact() ? 32 : 0) + polys * limb_bytes;
}

EncryptedNodeKind encrypted_node_kind(const model::Graph& g, const model::Node& n) {
  if (std::holds_alternative<model::SquareParams>(n.params)) return EncryptedNodeKind::Square;
  switch (n.op) {
    case OpType::Relu: {
      const auto users = model::consumers(g)[static_cast<std::size_t>(n.outputs[0])];
      if (users.size() == 1 && g.nodes[static_cast<std::size_t>(users[0])].op == OpType::MaxPool &&
          !model::is_graph_output(g, n.outputs[0])) {
        return EncryptedNodeKind::FusedRelu;
      }
      return EncryptedNodeKind::Relu;
    }
    case OpType::MaxPool: return EncryptedNodeKind::MaxPool;
    case OpType::Clip: return EncryptedNodeKind::Clip;
    case OpType::LeakyRelu: return EncryptedNodeKind::LeakyRelu;
    case OpType::Softmax:
    case OpType::LogSoftmax: {
      const auto users = model::consumers(g)[static_cast<std::size_t>(n.outputs[0])];
      if (!users.empty() || !model::is_graph_output(g, n.outputs[0])) {
        throw ModelError(model::node_label(n) +
                         ": under encryption Softmax/LogSoftmax is only supported as a final layer "
                         "(the client applies it after decryption)");
      }
      return EncryptedNodeKind::FinalSoftmax;
    }
    case OpType::Pow:
    case OpType::Constant:
      throw ModelError(model::node_label(n) + ": not prepared for execution (run prepare_graph)");
    default: return is_data_movement(n.op) ? EncryptedNodeKind::DataMovement : EncryptedNodeKind::Linear;
  }
}

EncryptedExecutor::EncryptedExecutor(const model::Graph& g, EncryptionPlan plan, ckks::ContextPtr context,
                                     const EvaluationKeys& keys, EncryptedRunOptions options)
    : g_(g), plan_(std::move(plan)), context_(std::move(context)), keys_(keys), eval_(context_),
      options_(options) {
  for (const auto& n : g.nodes) kinds_.push_back(encrypted_node_kind(g, n));
  if (plan_.bounds.size() != g.tensors.size()) throw ModelError("encryption plan does not match the graph");
}

std::vector<PlainTensor> EncryptedExecutor::run(Client& client, const std::vector<PlainTensor>& inputs,
                                                EncryptedRunStats& stats) const {
  if (options_.threads > 0) omp_set_num_threads(options_.threads);
  const auto t_start = Clock::now();
  const model::Graph& g = g_;
  if (inputs.size() != g.inputs.size()) {
    throw ModelError("the model has " + std::to_string(g.inputs.size()) + " inputs, got " +
                     std::to_string(inputs.size()));
  }
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  if (batch <= 0 || batch > plan_.capacity()) {
    throw ModelError("batch " + std::to_string(batch) + " must be in [1, " + std::to_string(plan_.capacity()) +
                     "] (samples per ciphertext)");
  }
  Run run(g, plan_, *context_, eval_, keys_, client, stats);
  std::vector<std::optional<EncryptedTensor>> values(g.tensors.size());
  std::map<model::TensorId, PlainTensor> plain_outputs;
  std::vector<bool> fused(g.tensors.size(), false);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const model::TensorId id = g.inputs[i];
    const model::Tensor& t = g.tensors[static_cast<std::size_t>(id)];
    if (inputs[i].shape != t.shape || inputs[i].batch != batch ||
        static_cast<std::int64_t>(inputs[i].data.size()) != batch * model::numel(t.shape)) {
      throw ModelError("input '" + t.name + "': expected per-sample shape " + model::to_string(t.shape) +
                       " with batch " + std::to_string(batch) + ", got " + model::to_string(inputs[i].shape));
    }
    values[static_cast<std::size_t>(id)] = run.encrypt(inputs[i], t.name, plan_.bounds[static_cast<std::size_t>(id)]);
  }
  if (stats.layers.size() != g.nodes.size()) {
    stats.layers.assign(g.nodes.size(), {});
  }
  const auto free_after = model::activations_to_free(g);
  std::vector<std::string> producer(g.tensors.size());
  for (const auto& n : g.nodes) producer[static_cast<std::size_t>(n.outputs[0])] = n.name;
  for (std::size_t i = 0; i < g.tensors.size(); ++i) {
    if (producer[i].empty()) producer[i] = "input " + g.tensors[i].name;
  }
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const auto t0 = Clock::now();
    const model::Node& n = g.nodes[k];
    const model::TensorId out = n.outputs[0];
    const model::Shape& y_shape = g.tensors[static_cast<std::size_t>(out)].shape;
    std::vector<const EncryptedTensor*> in;
    std::vector<EncryptedTensor*> data;
    for (model::TensorId t : n.inputs) {
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) {
        in.push_back(nullptr);
        continue;
      }
      auto& v = values[static_cast<std::size_t>(t)];
      if (!v) throw ModelError(model::node_label(n) + ": input has not been computed");
      in.push_back(&*v);
      data.push_back(&*v);
    }
    if (data.empty()) throw ModelError(model::node_label(n) + ": no encrypted input");
    const model::TensorId x_id = [&] {
      for (model::TensorId t : n.inputs) {
        if (t != model::kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant) return t;
      }
      return model::kNoTensor;
    }();
    const double x_bound = plan_.bounds[static_cast<std::size_t>(x_id)];
    // Names the layer whose output a client round checks: "<producer> -> <this node>".
    const std::string round_layer = producer[static_cast<std::size_t>(x_id)] + " -> " + n.name;
    EncryptedTensor y;
    const EncryptedNodeKind kind = kinds_[k];
    switch (kind) {
      case EncryptedNodeKind::DataMovement:
      case EncryptedNodeKind::Linear:
      case EncryptedNodeKind::Square: {
        // Inputs read here may be read later by other nodes: align copies, not originals.
        std::vector<EncryptedTensor> aligned;
        aligned.reserve(2 * data.size());
        // Several encrypted inputs must share a scale: one whose scale is not Δ (a square's
        // output) is first brought to Δ (one multiply-accumulate + rescale, one level).
        if (data.size() > 1) {
          bool mixed = false;
          for (auto* d : data) mixed = mixed || std::fabs(d->scale / plan_.scale() - 1.0) > 1e-9;
          if (mixed) {
            for (auto& p : in) {
              if (!p || std::fabs(p->scale / plan_.scale() - 1.0) <= 1e-9) continue;
              aligned.push_back(*p);
              run.materialize(aligned.back(), n.name);
              p = &aligned.back();
            }
            data.clear();
            for (auto* p : in) {
              if (p) data.push_back(const_cast<EncryptedTensor*>(p));
            }
          }
        }
        std::size_t level = data[0]->level;
        bool factors = false;
        for (auto* d : data) {
          level = std::min(level, d->level);
          factors = factors || d->has_factors();
        }
        bool need_copy = false;
        for (auto* d : data) need_copy = need_copy || d->level != level;
        if (need_copy) {
          for (auto& p : in) {
            if (!p) continue;
            aligned.push_back(*p);  // shares the ciphertexts; to_level replaces changed ones
            run.to_level(aligned.back(), level);
            p = &aligned.back();
          }
        }
        const EncryptedTensor& x = *[&] {
          for (auto* p : in) if (p) return p;
          return static_cast<const EncryptedTensor*>(nullptr);
        }();
        for (auto* p : in) {
          if (p && std::fabs(p->scale / x.scale - 1.0) > 1e-9) {
            throw ModelError(model::node_label(n) + ": encrypted inputs have different scales (" +
                             std::to_string(p->scale) + " vs " + std::to_string(x.scale) +
                             "); unsupported under encryption");
          }
        }
        EncryptedBackend be = run.be_;
        be.in_level = level;
        be.in_scale = x.scale;
        y.shape = y_shape;
        y.cts.resize(static_cast<std::size_t>(model::numel(y_shape)));
        if (kind == EncryptedNodeKind::DataMovement) {
          y.level = level;
          y.scale = x.scale;
          if (factors) y.factor.assign(y.cts.size(), 1.0);
        } else if (kind == EncryptedNodeKind::Square) {
          if (level == 0) throw std::invalid_argument(model::node_label(n) + ": out of levels (parameters too small)");
          y.level = level - 1;
          if (factors) y.factor.assign(y.cts.size(), 1.0);
          const double q = static_cast<double>(context_->modulus(level).value);
          y.scale = x.scale * x.scale * (plan_.packing == Packing::Complex ? 4.0 : 1.0) / q;
        } else {
          be.rescale = model::levels(g, n) > 0 || factors;
          if (be.rescale && level == 0) {
            throw std::invalid_argument(model::node_label(n) + ": out of levels (parameters too small)");
          }
          y.level = be.rescale ? level - 1 : level;
          y.scale = be.rescale ? plan_.scale() : x.scale;
        }
        std::vector<EncryptedBackend::Acc> deferred;
        if (kind == EncryptedNodeKind::Linear && be.rescale) {
          deferred.resize(y.cts.size());
          be.deferred = &deferred;
        }
        run_linear(be, g, n, in, y);
        if (be.deferred) be.flush(y, deferred);
        if (kind == EncryptedNodeKind::Square) {
          for (const auto& c : y.cts) {
            if (c) {
              y.scale = c->scale();
              break;
            }
          }
        }
        break;
      }
      case EncryptedNodeKind::FusedRelu:
        y = *data[0];
        fused[static_cast<std::size_t>(out)] = true;
        break;
      case EncryptedNodeKind::Relu: y = run.relu(*data[0], round_layer, x_bound); break;
      case EncryptedNodeKind::MaxPool: {
        const bool f = fused[static_cast<std::size_t>(x_id)];
        y = run.max_pool(*data[0], n, y_shape, f, x_bound, round_layer);
        break;
      }
      case EncryptedNodeKind::Clip:
      case EncryptedNodeKind::LeakyRelu: y = run.clip_or_leaky(*data[0], n, x_bound, round_layer); break;
      case EncryptedNodeKind::FinalSoftmax: {
        const EncryptedTensor& x = *data[0];
        std::vector<const ckks::Ciphertext*> cts;
        for (const auto& c : x.cts) {
          cts.push_back(c.get());
          if (c) stats.bytes_to_client += wire_bytes(*c, *context_);
        }
        const auto tc = Clock::now();
        PlainTensor px = client.decrypt(cts, x.factor, x.shape, batch, producer[static_cast<std::size_t>(x_id)], x_bound);
        PlainTensor py = make_plain_tensor(y_shape, batch);
        const auto& sp = std::get<model::SoftmaxParams>(n.params);
        if (n.op == OpType::Softmax) kernels::softmax(sp, px, py);
        else kernels::log_softmax(sp, px, py);
        stats.client_seconds += since(tc);
        plain_outputs[out] = std::move(py);
        break;
      }
    }
    auto& ls = stats.layers[k];
    ls.name = n.name;
    ls.op = std::string(model::op_name(n.op));
    ls.seconds += since(t0);
    if (kind != EncryptedNodeKind::FinalSoftmax) {
      ls.ciphertexts = y.elements();
      ls.level = static_cast<int>(y.level);
      values[static_cast<std::size_t>(out)] = std::move(y);
    }
    if (options_.progress) {
      std::fprintf(stderr, "  [%zu/%zu] %-24s %-18s %6lld ct  level %2d  %8.3f s\n", k + 1, g.nodes.size(),
                   n.name.c_str(), ls.op.c_str(), static_cast<long long>(ls.ciphertexts), ls.level, since(t0));
    }
    for (model::TensorId t : free_after[k]) values[static_cast<std::size_t>(t)].reset();
  }
  std::vector<PlainTensor> outputs;
  for (model::TensorId t : g.outputs) {
    if (auto it = plain_outputs.find(t); it != plain_outputs.end()) {
      outputs.push_back(it->second);
      continue;
    }
    const auto& v = values[static_cast<std::size_t>(t)];
    if (!v) throw ModelError("graph output '" + g.tensors[static_cast<std::size_t>(t)].name + "' was not computed");
    std::vector<const ckks::Ciphertext*> cts;
    for (const auto& c : v->cts) {
      cts.push_back(c.get());
      if (c) stats.bytes_to_client += wire_bytes(*c, *context_);
    }
    const auto tc = Clock::now();
    outputs.push_back(client.decrypt(cts, v->factor, v->shape, batch,
                                     producer[static_cast<std::size_t>(t)] + " (output " +
                                         g.tensors[static_cast<std::size_t>(t)].name + ")",
                                     plan_.bounds[static_cast<std::size_t>(t)]));
    stats.client_seconds += since(tc);
  }
  stats.seconds += since(t_start);
  return outputs;
}

EncryptedSession::EncryptedSession(const model::Graph& g, const EncryptionPlan& plan, EncryptedRunOptions options) {
  context = ckks::CKKSContext::create(plan.params);
  client = std::make_unique<LocalClient>(context, plan.packing, plan.scale());
  executor = std::make_unique<EncryptedExecutor>(g, plan, context, client->evaluation_keys(), options);
}

std::vector<double> EncryptedSession::run_batched(std::span<const double> inputs, std::int64_t count,
                                                  std::int64_t chunk, EncryptedRunStats& stats,
                                                  std::vector<double>* batch_seconds) {
  const model::Graph& g = executor->graph();
  if (g.inputs.size() != 1 || g.outputs.size() != 1) {
    throw ModelError("encrypted batched runs support one input and one output");
  }
  const model::Shape& in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const model::Shape& out_shape = g.tensors[static_cast<std::size_t>(g.outputs[0])].shape;
  const std::int64_t in_e = model::numel(in_shape), out_e = model::numel(out_shape);
  if (static_cast<std::int64_t>(inputs.size()) != count * in_e) throw ModelError("input size mismatch");
  chunk = std::min(chunk, executor->plan().capacity());
  std::vector<double> out(static_cast<std::size_t>(count * out_e));
  for (std::int64_t s = 0; s < count; s += chunk) {
    const std::int64_t b = std::min(chunk, count - s);
    const auto t0 = Clock::now();
    PlainTensor x = from_batch_major(inputs.subspan(static_cast<std::size_t>(s * in_e), static_cast<std::size_t>(b * in_e)),
                                     b, in_shape);
    auto y = executor->run(*client, {x}, stats);
    const auto bm = to_batch_major(y[0]);
    std::copy(bm.begin(), bm.end(), out.begin() + s * out_e);
    if (batch_seconds) batch_seconds->push_back(since(t0));
  }
  return out;
}

}  // namespace heinfer::runtime
