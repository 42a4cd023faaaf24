// The client-round step: Relu, MaxPool, Clip and LeakyRelu evaluated by the client on
// masked, shuffled windows (runtime/client.h: the model and what the client learns).
// Each window is multiplied by its own CSPRNG integer mask R; the server keeps 1/R as a
// pending factor (Relu, MaxPool) or folds it into a recombination (Clip, LeakyRelu).
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "model/error.h"
#include "model/window_indexer.h"
#include "runtime/steps/run_state.h"

namespace heinfer::runtime::steps {
namespace {

using model::ModelError;
using model::OpType;
using plan::kMaskMax;
using plan::kMaskMin;

/// A uniform integer mask in [kMaskMin, kMaskMax) from the libsodium CSPRNG.
double random_mask() {
  return kMaskMin + static_cast<double>(randombytes_uniform(static_cast<uint32_t>(kMaskMax - kMaskMin)));
}

/// One element of a masked window: the value x - shift (ct null: the exact constant 0).
struct WindowRef {
  const ckks::Ciphertext* ct = nullptr;
  double shift = 0.0;
};

/// One client-aided layer: `items` elements, each with one or more masked windows
/// (windows_of(item, out) appends them). The items are processed in one CSPRNG order
/// for the whole layer, in rounds of the plan's NodePlan::round_items; each window
/// is multiplied by its own CSPRNG integer mask R (shift s: R·x - R·s) and the windows
/// of a chunk are shuffled before they go to the client. consume(items, fresh, masks)
/// receives, per item of the chunk, the fresh compact ciphertexts and masks of its
/// windows (in windows_of order).
template <class WindowsOf, class Consume>
void round(RunState& run, const std::string& layer, RoundFunction f, std::int64_t items, std::size_t zero_level,
           double zero_scale, WindowsOf windows_of, Consume consume) {
  const auto order = random_permutation(static_cast<std::size_t>(items));
  const plan::NodePlan& np = run.plan.nodes[static_cast<std::size_t>(run.node)];
  const std::int64_t chunk = np.round_items;
  if (chunk <= 0) throw std::logic_error(layer + ": the plan has no client round here");
  CiphertextPtr zero;
  for (std::int64_t c0 = 0; c0 < items; c0 += chunk) {
    const std::int64_t k = std::min(chunk, items - c0);
    const std::span<const std::size_t> its(order.data() + c0, static_cast<std::size_t>(k));
    std::vector<std::vector<WindowRef>> wins;
    std::vector<std::pair<std::size_t, std::size_t>> owner;  // (item slot, window of the item)
    for (std::size_t i = 0; i < its.size(); ++i) {
      const std::size_t before = wins.size();
      windows_of(its[i], wins);
      for (std::size_t w = before; w < wins.size(); ++w) owner.emplace_back(i, w - before);
    }
    for (const auto& w : wins) {
      for (const auto& r : w) {
        if (!r.ct && !zero) zero = run.zero_ct(zero_level, zero_scale);
      }
    }
    const std::size_t count = wins.size();
    std::vector<double> masks(count);
    for (auto& r : masks) r = random_mask();
    std::vector<std::vector<ckks::Ciphertext>> masked(count);
#pragma omp parallel for schedule(dynamic, 4)
    for (std::size_t w = 0; w < count; ++w) {
      masked[w].resize(wins[w].size());
      ckks::Ciphertext tmp;
      for (std::size_t j = 0; j < wins[w].size(); ++j) {
        const WindowRef& r = wins[w][j];
        const ckks::Ciphertext& in = run.be.expanded(r.ct ? *r.ct : *zero, tmp);
        run.eval.multiply_scalar(in, masks[w], 1.0, masked[w][j]);
        if (r.shift != 0.0) run.be.add_constant(masked[w][j], -masks[w] * r.shift);
      }
    }
    const auto perm = random_permutation(count);
    auto reply = exchange_round(run, layer, f, masked, perm);
    std::vector<std::vector<CiphertextPtr>> fresh(its.size());
    std::vector<std::vector<double>> item_masks(its.size());
    for (std::size_t w = 0; w < count; ++w) {
      fresh[owner[w].first].resize(std::max(fresh[owner[w].first].size(), owner[w].second + 1));
      item_masks[owner[w].first].resize(fresh[owner[w].first].size());
    }
    for (std::size_t i = 0; i < count; ++i) {
      auto& c = reply[i];
      const auto [slot, j] = owner[perm[i]];
      fresh[slot][j] = std::make_shared<const ckks::Ciphertext>(std::move(c));
      item_masks[slot][j] = masks[perm[i]];
    }
    consume(its, fresh, item_masks);
  }
}

/// The output of a Relu round on x (filled by relu()).
EncryptedTensor relu_output(const RunState& run, const EncryptedTensor& x) {
  EncryptedTensor y;
  y.shape = x.shape;
  y.cts.resize(x.cts.size());
  y.factor.assign(x.cts.size(), 1.0);
  y.level = run.ctx.max_level();
  y.scale = run.scale();
  return y;
}

/// Relu round over `elements` of x (a whole node, or one streamed band): y_e = fresh
/// R_e·relu(x_e) with factor f_e / R_e (kept compact).
void relu(RunState& run, const EncryptedTensor& x, EncryptedTensor& y, std::span<const std::int64_t> elements,
          const std::string& layer, GroupId group) {
  std::vector<std::int64_t> idx;
  idx.reserve(elements.size());
  for (std::int64_t e : elements) {
    if (x.cts[static_cast<std::size_t>(e)]) idx.push_back(e);
  }
  round(run, layer, RoundFunction::Relu, static_cast<std::int64_t>(idx.size()), x.level, x.scale,
        [&](std::size_t item, std::vector<std::vector<WindowRef>>& out) {
          out.push_back({WindowRef{x.cts[static_cast<std::size_t>(idx[item])].get(), 0.0}});
        },
        [&](std::span<const std::size_t> items, std::vector<std::vector<CiphertextPtr>>& fresh,
            const std::vector<std::vector<double>>& masks) {
          std::vector<std::int64_t> positions;
          for (std::size_t i = 0; i < items.size(); ++i) {
            const auto e = static_cast<std::size_t>(idx[items[i]]);
            y.cts[e] = std::move(fresh[i][0]);
            y.factor[e] = x.factor_at(static_cast<std::int64_t>(e)) / masks[i][0];
            positions.push_back(static_cast<std::int64_t>(e));
          }
          run.store.adopt(y.cts, positions, group);
        });
}

/// MaxPool round for the output elements `outputs` of y (a whole node, or a band). When
/// the plan says so (`materialize`: x may carry pending factors), x is first
/// materialized, which only a whole node may need.
void max_pool(RunState& run, const EncryptedTensor& x_in, bool materialize, EncryptedTensor& y,
              std::span<const std::int64_t> outputs, bool whole, const model::Node& n, bool fused_relu,
              const std::string& layer, GroupId group) {
  const auto& p = std::get<model::PoolParams>(n.params);
  EncryptedTensor m;
  const EncryptedTensor& x = materialized(run, x_in, materialize, whole, n, m, group);
  const model::WindowIndexer win(x.shape, y.shape, p.kernel, p.strides, p.dilations, p.pads_begin,
                                   p.pads_end);
  round(run, layer, fused_relu ? RoundFunction::ReluMax : RoundFunction::Max, static_cast<std::int64_t>(outputs.size()),
        x.level, x.scale,
        [&](std::size_t item, std::vector<std::vector<WindowRef>>& out) {
          const std::int64_t idx = outputs[item];
          const std::int64_t c = idx / win.out_size, os = idx % win.out_size;
          std::array<std::int64_t, model::kMaxSpatialDims> base;
          win.origin(os, base);
          std::vector<WindowRef> w;
          for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
            const std::int64_t off = win.input_offset(base, kp);
            if (off < 0) continue;
            w.push_back({x.cts[static_cast<std::size_t>(c * win.in_size + off)].get(), 0.0});
          }
          if (w.empty()) throw ModelError(model::node_label(n) + ": a pooling window covers only padding");
          out.push_back(std::move(w));
        },
        [&](std::span<const std::size_t> items, std::vector<std::vector<CiphertextPtr>>& fresh,
            const std::vector<std::vector<double>>& masks) {
          std::vector<std::int64_t> positions;
          for (std::size_t i = 0; i < items.size(); ++i) {
            const auto e = static_cast<std::size_t>(outputs[items[i]]);
            y.cts[e] = std::move(fresh[i][0]);
            y.factor[e] = 1.0 / masks[i][0];
            positions.push_back(static_cast<std::int64_t>(e));
          }
          run.store.adopt(y.cts, positions, group);
        });
}

/// Clip = lo + relu(x - lo) - relu(x - hi); LeakyRelu = α·x + (1 - α)·relu(x). One
/// round with one window per finite bound per element, then one multiply-accumulate
/// and rescale per element combining the fresh results (and x). A pending factor f of
/// x (true value f·d for decoded d, f > 0) costs no level: relu(f·d - s) =
/// f·relu(d - s/f), so the window is d - s/f and f joins the combining weight.
/// Runs over `elements` of x (a whole node, or one streamed band; y is prepared on the
/// first call, `first`). An x whose scale is not Δ (a square's output) is first brought
/// to Δ, which only a whole node may need.
void clip_or_leaky(RunState& run, const EncryptedTensor& x_in, const plan::NodePlan& np, EncryptedTensor& y,
                   bool first, std::span<const std::int64_t> elements, bool whole, const model::Node& n,
                   const std::string& layer, GroupId group) {
  EncryptedTensor m;
  const bool materialize = std::any_of(np.materialized.begin(), np.materialized.end(), [](bool b) { return b; });
  const EncryptedTensor& x = materialized(run, x_in, materialize, whole, n, m, group);
  const bool leaky = n.op == OpType::LeakyRelu;
  double lo = -INFINITY, hi = INFINITY, alpha = 0;
  if (leaky) {
    alpha = std::get<model::LeakyReluParams>(n.params).alpha;
  } else {
    lo = std::get<model::ClipParams>(n.params).min;
    hi = std::get<model::ClipParams>(n.params).max;
  }
  if (!leaky && std::isinf(lo) && std::isinf(hi)) {  // the identity: share x's ciphertexts
    share_elements(x, y, first, elements);
    return;
  }
  std::vector<double> shifts;  // one window per shift s: relu(x - s)
  if (leaky) shifts.push_back(0.0);
  if (std::isfinite(lo)) shifts.push_back(lo);
  if (std::isfinite(hi)) shifts.push_back(hi);
  const bool uses_x = np.combines_input;
  const auto level = static_cast<std::size_t>(np.combine_level);
  if (x.level < static_cast<std::size_t>(np.input_level) || (uses_x && x.level != level)) {
    throw std::logic_error(model::node_label(n) + ": input at level " + std::to_string(x.level) +
                           ", the plan combines at level " + std::to_string(level));
  }
  EncryptedBackend be = run.be;
  be.rescale = true;
  be.in_level = level;
  be.in_scale = run.scale();
  if (first) {
    y.shape = x.shape;
    y.level = level - 1;
    y.scale = run.scale();
    y.cts.resize(x.cts.size());
  }
  round(run, layer, RoundFunction::Relu, static_cast<std::int64_t>(elements.size()), x.level, x.scale,
        [&](std::size_t item, std::vector<std::vector<WindowRef>>& out) {
          const std::int64_t e = elements[item];
          const ckks::Ciphertext* c = x.cts[static_cast<std::size_t>(e)].get();
          const double f = x.factor_at(e);
          for (double s : shifts) out.push_back({WindowRef{c, s / f}});
        },
        [&](std::span<const std::size_t> items, std::vector<std::vector<CiphertextPtr>>& fresh,
            const std::vector<std::vector<double>>& masks) {
          // y = bias + Σ w_k · c_k at `level` (finish() expands and lowers the fresh results).
#pragma omp parallel for schedule(dynamic, 4)
          for (std::size_t i = 0; i < items.size(); ++i) {
            const std::int64_t e = elements[items[i]];
            const double f = x.factor_at(e);
            EncryptedBackend::Acc acc;
            auto term = [&](std::size_t s, double w) {
              acc.cts.push_back(fresh[i][s].get());
              acc.weights.push_back(w * f / masks[i][s]);
            };
            const auto& xe = x.cts[static_cast<std::size_t>(e)];
            if (leaky) {
              if (xe && alpha != 0.0) {
                acc.cts.push_back(xe.get());
                acc.weights.push_back(alpha * f);
              }
              term(0, 1.0 - alpha);
            } else {
              std::size_t s = 0;
              if (std::isfinite(lo)) {
                acc.bias = lo;
                term(s++, 1.0);
              } else if (xe) {
                acc.cts.push_back(xe.get());
                acc.weights.push_back(f);
              }
              if (std::isfinite(hi)) term(s, -1.0);
            }
            be.finish(y, e, acc);
          }
          std::vector<std::int64_t> positions;
          for (std::size_t item : items) {
            const std::int64_t e = elements[item];
            if (y.cts[static_cast<std::size_t>(e)]) positions.push_back(e);
          }
          run.store.adopt(y.cts, positions, group);
        });
}

}  // namespace

void run_round_step(RunState& run, StepIO& s) {
  if (s.np.kind == plan::NodeKind::FunctionRound) {
    run_function_round_step(run, s);
    return;
  }
  if (run.plan.parameters.masks == plan::RoundMasks::PerSample) {
    run_sample_masked_round_step(run, s);
    return;
  }
  const EncryptedTensor& x = *first_input(s);
  const model::Node& n = s.n;
  switch (s.np.kind) {
    case plan::NodeKind::Relu:
      check_input_levels(s, static_cast<std::size_t>(s.np.input_level));
      if (s.st.first) s.y = relu_output(run, x);
      relu(run, x, s.y, s.elements, s.round_layer, s.group);
      break;
    case plan::NodeKind::MaxPool: {
      bool materialize = false;
      for (bool b : s.np.materialized) materialize = materialize || b;
      if (s.st.first) s.y = fresh_output(run, s.y_shape);
      max_pool(run, x, materialize, s.y, s.elements, !s.st.streamed, n, s.np.round_fused_relu, s.round_layer, s.group);
      break;
    }
    case plan::NodeKind::Clip:
    case plan::NodeKind::LeakyRelu:
      clip_or_leaky(run, x, s.np, s.y, s.st.first, s.elements, !s.st.streamed, n, s.round_layer, s.group);
      break;
    default: throw std::logic_error(model::node_label(n) + ": not a client round");
  }
}

}  // namespace heinfer::runtime::steps
