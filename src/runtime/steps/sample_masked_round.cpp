// Client rounds under per-sample masks (plan::RoundMasks::PerSample; runtime/client.h
// states what the client sees). Every window is multiplied by its own signed per-slot
// mask μ (ckks/slot_mask.h: an integer polynomial, no level), so each sample of each
// window is scaled by its own secret factor. Functions are written with |·| so that the
// client never needs a sign it cannot see (x = v/μ, |x| = |v|/|μ|):
//   Relu(x)      = (x + |x|)/2                 LeakyRelu(x) = ((1+α)x + (1-α)|x|)/2
//   Clip(x, l, h) = (l + h)/2 + (|x - l| - |x - h|)/2
//   Clip(x, l, ∞) = l + ((x - l) + |x - l|)/2   Clip(x, -∞, h) = h + ((x - h) - |x - h|)/2
// MaxPool windows get one positive mask (max commutes with a positive factor). The
// client returns v and |v| (AbsWithValue) or |v| (Abs) or the max, fresh at the top
// level; the server multiplies each reply by the plaintext of its coefficients divided
// by μ (or |μ|) per slot, sums, and rescales once: one level per round. The result is
// kept at decoded = kMaskMax · true / f (pending factor f / kMaskMax, f the input's
// factor), which keeps the unmasking plaintexts in [2^-5, 2^4] for their precision.
#include <algorithm>
#include <array>
#include <cmath>

#include "ckks/slot_mask.h"
#include "model/error.h"
#include "model/window_indexer.h"
#include "runtime/round_function.h"
#include "runtime/steps/run_state.h"

namespace heinfer::runtime::steps {
namespace {

constexpr double kGain = plan::kMaskMax;  // decoded output = kGain · true output / f

/// One masked window: the values x - shift of its taps (null tap: the exact constant 0).
/// coeff[0] multiplies the signed reply (v / μ), coeff[1] the |·| or max reply (/|μ|).
struct Window {
  std::vector<const ckks::Ciphertext*> taps;
  double shift = 0;
  std::array<double, 2> coeff{0, 0};
};

/// One output element: its windows and the constant added after the rescale.
struct Item {
  std::int64_t element = 0;
  std::vector<Window> windows;
  double constant = 0;
  double factor = 1;  ///< pending factor of the output element
};

/// Runs the items' rounds, in chunks of the plan's round_items, in one CSPRNG order; the
/// windows of a chunk (at the plan's round level; taps of x at `scale`) are shuffled
/// before they go to the client. y.cts[item.element] and y.factor receive the unmasked
/// results (level L - 1, scale Δ), stored in `group`.
void masked_rounds(RunState& run, std::vector<Item>& items, RoundFunction f, double scale, EncryptedTensor& y,
                   const std::string& layer, GroupId group) {
  const plan::NodePlan& np = run.plan.nodes[static_cast<std::size_t>(run.node)];
  const auto level = static_cast<std::size_t>(np.round_level);
  EncryptedBackend be = run.be;
  be.in_level = level;
  if (np.round_items <= 0) throw std::logic_error(layer + ": the plan has no client round here");
  if (!run.encoder || !run.fft) throw std::logic_error(layer + ": per-sample rounds need an encoder");
  const std::size_t top = run.ctx.max_level();
  if (top == 0) throw std::logic_error(layer + ": per-sample rounds need a level to unmask");
  const double q_top = static_cast<double>(run.ctx.modulus(top).value);
  const bool signed_mask = f == RoundFunction::Abs || f == RoundFunction::AbsWithValue;
  const std::size_t replies = replies_per_window(f);
  const auto order = random_permutation(items.size());
  CiphertextPtr zero;
  for (std::size_t c0 = 0; c0 < items.size(); c0 += static_cast<std::size_t>(np.round_items)) {
    const std::size_t k = std::min(static_cast<std::size_t>(np.round_items), items.size() - c0);
    std::vector<std::pair<std::size_t, std::size_t>> owner;  // (item, window of the item)
    for (std::size_t i = 0; i < k; ++i) {
      const Item& it = items[order[c0 + i]];
      for (std::size_t w = 0; w < it.windows.size(); ++w) {
        owner.emplace_back(order[c0 + i], w);
        for (const auto* t : it.windows[w].taps) {
          if (!t && !zero) zero = run.zero_ct(level, scale);
        }
      }
    }
    const std::size_t count = owner.size();
    std::vector<std::vector<double>> mu(count);
    std::vector<std::vector<ckks::Ciphertext>> masked(count);
#pragma omp parallel for schedule(dynamic, 4)
    for (std::size_t w = 0; w < count; ++w) {
      const Window& win = items[owner[w].first].windows[owner[w].second];
      ckks::SlotMask m = ckks::draw_slot_mask(run.ctx, *run.fft, level, plan::kSlotMaskMinBits,
                                              plan::kSlotMaskMaxBits, signed_mask);
      masked[w].resize(win.taps.size());
      ckks::Ciphertext tmp;
      for (std::size_t j = 0; j < win.taps.size(); ++j) {
        const ckks::Ciphertext& in = be.prepared(win.taps[j] ? *win.taps[j] : *zero, tmp);
        if (win.shift != 0.0) {
          ckks::Ciphertext shifted = in;
          run.be.add_constant(shifted, -win.shift);
          run.eval.multiply_plain(shifted, m.poly, masked[w][j]);
        } else {
          run.eval.multiply_plain(in, m.poly, masked[w][j]);
        }
      }
      mu[w] = std::move(m.factors);
    }
    const auto perm = random_permutation(count);
    auto reply = exchange_round(run, layer, f, masked, perm);
    // fresh[w] = the replies of window w (in owner order).
    std::vector<std::vector<ckks::Ciphertext*>> fresh(count, std::vector<ckks::Ciphertext*>(replies));
    for (std::size_t i = 0; i < count; ++i) {
      for (std::size_t r = 0; r < replies; ++r) fresh[perm[i]][r] = &reply[i * replies + r];
    }
    // Unmask: Σ_windows Σ_replies (coefficient / μ per slot) ⊙ reply, one rescale.
    std::vector<std::size_t> first(k + 1, 0);  // windows of chunk item i: [first[i], first[i+1])
    for (std::size_t w = 0, i = 0; w < count; ++w) {
      if (w > 0 && owner[w].first != owner[w - 1].first) first[++i] = w;
    }
    first[k] = count;
    std::vector<std::int64_t> positions(k);
#pragma omp parallel for schedule(dynamic, 2)
    for (std::size_t i = 0; i < k; ++i) {
      const Item& it = items[owner[first[i]].first];
      ckks::Ciphertext acc, term, tmp;
      ckks::Plaintext pt;
      std::vector<double> v(run.ctx.n() / 2);
      for (std::size_t w = first[i]; w < first[i + 1]; ++w) {
        const Window& win = it.windows[owner[w].second];
        for (std::size_t r = 0; r < replies; ++r) {
          // AbsWithValue replies v then |v|; Abs and Max reply one magnitude.
          const bool is_signed = replies == 2 && r == 0;
          const double c = win.coeff[is_signed ? 0 : 1];
          if (c == 0.0) continue;
          for (std::size_t s = 0; s < v.size(); ++s) v[s] = c / (is_signed ? mu[w][s] : std::fabs(mu[w][s]));
          run.encoder->encode(v, q_top, top, pt);
          const ckks::Ciphertext& in = run.be.expanded(*fresh[w][r], tmp);
          if (acc.n() == 0) {
            run.eval.multiply_plain(in, pt, acc);
          } else {
            run.eval.multiply_plain(in, pt, term);
            run.eval.add_inplace(acc, term);
          }
        }
      }
      run.eval.rescale_inplace(acc);
      acc.set_scale(run.scale());  // Δ · q_top / q_top, exactly
      run.be.add_constant(acc, it.constant);
      y.cts[static_cast<std::size_t>(it.element)] = std::make_shared<const ckks::Ciphertext>(std::move(acc));
      y.factor[static_cast<std::size_t>(it.element)] = it.factor;
      positions[i] = it.element;
    }
    run.store.adopt(y.cts, positions, group);
  }
}

/// The output tensor of a round at level L - 1 (filled by masked_rounds).
void prepare_output(const RunState& run, const model::Shape& shape, EncryptedTensor& y) {
  y.shape = shape;
  y.level = run.ctx.max_level() - 1;
  y.scale = run.scale();
  const auto total = static_cast<std::size_t>(model::numel(shape));
  y.cts.assign(total, nullptr);
  y.factor.assign(total, 1.0);
}

/// Relu, LeakyRelu and Clip: one or two windows per element (see the file comment).
std::vector<Item> elementwise_items(const EncryptedTensor& x, const model::Node& n, std::span<const std::int64_t> elements) {
  double lo = -INFINITY, hi = INFINITY, alpha = 0;
  if (n.op == model::OpType::LeakyRelu) alpha = std::get<model::LeakyReluParams>(n.params).alpha;
  if (n.op == model::OpType::Clip) {
    lo = std::get<model::ClipParams>(n.params).min;
    hi = std::get<model::ClipParams>(n.params).max;
  }
  if (n.op == model::OpType::Relu) lo = 0;  // Relu = Clip(x, 0, ∞)
  const bool leaky = n.op == model::OpType::LeakyRelu;
  std::vector<Item> items;
  items.reserve(elements.size());
  for (std::int64_t e : elements) {
    const ckks::Ciphertext* c = x.cts[static_cast<std::size_t>(e)].get();
    if (!c && n.op == model::OpType::Relu) continue;  // relu(0) = 0: stays the exact 0
    const double f = x.factor_at(e);  // true x = f · decoded
    Item it;
    it.element = e;
    it.factor = f / kGain;
    const double g = kGain / 2;  // decoded output = kGain · true / f
    if (leaky) {
      it.windows.push_back({{c}, 0.0, {g * (1 + alpha), g * (1 - alpha)}});
    } else if (std::isfinite(lo) && std::isfinite(hi)) {
      it.windows.push_back({{c}, lo / f, {0.0, g}});
      it.windows.push_back({{c}, hi / f, {0.0, -g}});
      it.constant = kGain * (lo + hi) / 2 / f;
    } else if (std::isfinite(lo)) {
      it.windows.push_back({{c}, lo / f, {g, g}});
      it.constant = kGain * lo / f;
    } else {
      it.windows.push_back({{c}, hi / f, {g, -g}});
      it.constant = kGain * hi / f;
    }
    items.push_back(std::move(it));
  }
  return items;
}

/// MaxPool: one window of taps per output element, one positive mask.
std::vector<Item> max_pool_items(const EncryptedTensor& x, const model::Shape& y_shape, const model::Node& n,
                                 std::span<const std::int64_t> outputs) {
  const auto& p = std::get<model::PoolParams>(n.params);
  const model::WindowIndexer win(x.shape, y_shape, p.kernel, p.strides, p.dilations, p.pads_begin, p.pads_end);
  std::vector<Item> items;
  items.reserve(outputs.size());
  for (std::int64_t idx : outputs) {
    const std::int64_t c = idx / win.out_size, os = idx % win.out_size;
    std::array<std::int64_t, model::kMaxSpatialDims> base;
    win.origin(os, base);
    Window w;
    w.coeff = {0.0, kGain};
    for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
      const std::int64_t off = win.input_offset(base, kp);
      if (off >= 0) w.taps.push_back(x.cts[static_cast<std::size_t>(c * win.in_size + off)].get());
    }
    if (w.taps.empty()) throw model::ModelError(model::node_label(n) + ": a pooling window covers only padding");
    Item it;
    it.element = idx;
    it.factor = 1 / kGain;
    it.windows.push_back(std::move(w));
    items.push_back(std::move(it));
  }
  return items;
}

}  // namespace

void run_sample_masked_round_step(RunState& run, StepIO& s) {
  const EncryptedTensor& x_in = *first_input(s);
  const model::Node& n = s.n;
  const plan::NodePlan& np = s.np;
  if (np.identity) {  // Clip(-inf, inf)
    EncryptedTensor m;
    const bool materialize = std::any_of(np.materialized.begin(), np.materialized.end(), [](bool b) { return b; });
    const EncryptedTensor& x = materialized(run, x_in, materialize,
                                            !s.st.streamed, n, m, s.group);
    share_elements(x, s.y, s.st.first, s.elements);
    return;
  }
  check_input_levels(s, static_cast<std::size_t>(np.input_level));
  const RoundFunction f = round_function(np, n.op, run.plan.parameters.masks);
  if (s.st.first) prepare_output(run, s.y_shape, s.y);
  if (np.kind == plan::NodeKind::MaxPool) {
    EncryptedTensor m;
    const bool materialize = std::any_of(np.materialized.begin(), np.materialized.end(), [](bool b) { return b; });
    const EncryptedTensor& x = materialized(run, x_in, materialize,
                                            !s.st.streamed, n, m, s.group);
    auto items = max_pool_items(x, s.y_shape, n, s.elements);
    masked_rounds(run, items, f, x.scale, s.y, s.round_layer, s.group);
    return;
  }
  auto items = elementwise_items(x_in, n, s.elements);
  masked_rounds(run, items, f, x_in.scale, s.y, s.round_layer, s.group);
}

}  // namespace heinfer::runtime::steps
