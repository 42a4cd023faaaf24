#include "runtime/encrypted_executor.h"

#include <omp.h>
#include <sodium.h>

#include <malloc.h>

#include <csignal>
#include <limits>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "memory/footprint.h"
#include "model/analysis.h"
#include "model/error.h"
#include "model/liveness.h"
#include "runtime/encrypted_backend.h"
#include "runtime/kernels/client_aided.h"
#include "runtime/kernels/dispatch.h"
#include "runtime/kernels/window.h"
#include "runtime/stream_schedule.h"

namespace heinfer::runtime {
namespace {

using model::ModelError;
using model::OpType;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// The linear / polynomial / data-movement ops on ciphertexts: the dispatch shared with
/// the plaintext executor (kernels/dispatch.h).
void run_linear(const EncryptedBackend& be, const model::Graph& g, const model::Node& n,
                const std::vector<const EncryptedTensor*>& in, EncryptedTensor& y,
                const kernels::OutputTile* tile = nullptr) {
  if (!kernels::run_backend_node(be, g, n, in, y, tile)) {
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

/// Element indices of rows [row_begin, row_end) of a per-sample [C, H, W] tensor.
std::vector<std::int64_t> band_elements(const model::Shape& shape, std::int64_t row_begin, std::int64_t row_end) {
  std::vector<std::int64_t> out;
  const std::int64_t width = shape[2], plane = shape[1] * shape[2];
  out.reserve(static_cast<std::size_t>(shape[0] * (row_end - row_begin) * width));
  for (std::int64_t c = 0; c < shape[0]; ++c) {
    for (std::int64_t e = c * plane + row_begin * width; e < c * plane + row_end * width; ++e) out.push_back(e);
  }
  return out;
}

/// The ciphertexts a streamed band of node n reads: its input rows (row_map) of every
/// non-constant input, all of an input without a row map or read whole.
std::vector<const CiphertextPtr*> band_inputs(const model::Graph& g, const model::Node& n, const StreamStep& st,
                                              const std::vector<std::optional<EncryptedTensor>>& values) {
  std::vector<const CiphertextPtr*> out;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const model::TensorId t = n.inputs[i];
    if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
    const auto& v = values[static_cast<std::size_t>(t)];
    if (!v) continue;
    const auto m = row_map(g, n, i);
    if (m && !m->all && v->shape.size() == 3) {
      for (std::int64_t e : band_elements(v->shape, m->begin(st.row_begin), m->end(st.row_end))) {
        out.push_back(&v->cts[static_cast<std::size_t>(e)]);
      }
    } else {
      for (const auto& c : v->cts) out.push_back(&c);
    }
  }
  return out;
}

/// y shares x's ciphertexts and pending factors at `elements` (an identity node, band by
/// band); on the first call y takes x's shape, level and scale.
void share_elements(const EncryptedTensor& x, EncryptedTensor& y, bool first, std::span<const std::int64_t> elements) {
  if (first) {
    y.shape = x.shape;
    y.level = x.level;
    y.scale = x.scale;
    y.cts.resize(x.cts.size());
    if (!x.factor.empty()) y.factor.assign(x.cts.size(), 1.0);
  }
  for (std::int64_t e : elements) {
    y.cts[static_cast<std::size_t>(e)] = x.cts[static_cast<std::size_t>(e)];
    if (!y.factor.empty()) y.factor[static_cast<std::size_t>(e)] = x.factor_at(e);
  }
}

/// One element of a masked window: the value x - shift (ct null: the exact constant 0).
struct WindowRef {
  const ckks::Ciphertext* ct = nullptr;
  double shift = 0.0;
};

/// Server-side state of one run.
class Run {
 public:
  Run(const model::Graph& g, const EncryptionPlan& plan, const ckks::CKKSContext& ctx,
      const ckks::Evaluator& eval, const EvaluationKeys& keys, Client& client, EncryptedRunStats& stats,
      memory::CiphertextStore& store)
      : g_(g), plan_(plan), ctx_(ctx), eval_(eval), client_(client), stats_(stats), store_(store),
        tile_bytes_(store.tile_bytes()) {
    be_.eval = &eval;
    be_.relin = &keys.relin;
    be_.galois = &keys.galois;
    be_.packing = plan.packing;
    be_.target_scale = plan.scale();
  }

  EncryptedBackend be_;

  /// Bytes of one ciphertext at `level` (compact: c0 only).
  std::int64_t ct_bytes(std::size_t level, bool compact = false) const {
    return (compact ? 1 : 2) * static_cast<std::int64_t>((level + 1) * ctx_.n() * sizeof(std::uint64_t));
  }

  /// The encrypted tensor of graph input x, without ciphertexts yet (encrypt_elements
  /// fills it).
  EncryptedTensor input_tensor(const PlainTensor& x) const {
    EncryptedTensor t;
    t.shape = x.shape;
    t.level = ctx_.max_level();
    t.scale = plan_.scale();
    t.cts.resize(static_cast<std::size_t>(model::numel(x.shape)));
    return t;
  }

  /// Encrypts `elements` of graph input x on the client (in parts when the client allows
  /// it) into t, kept compact in the store.
  void encrypt_elements(const PlainTensor& x, EncryptedTensor& t, std::span<const std::int64_t> elements,
                        const std::string& name, double bound, memory::CiphertextStore::GroupId group) {
    const auto total = static_cast<std::int64_t>(elements.size());
    const std::int64_t part = client_.encrypts_parts()
                                  ? std::max<std::int64_t>(1, tile_bytes_ / ct_bytes(ctx_.max_level(), true))
                                  : total;
    for (std::int64_t p0 = 0; p0 < total; p0 += part) {
      const std::int64_t k = std::min(part, total - p0);
      const std::span<const std::int64_t> these = elements.subspan(static_cast<std::size_t>(p0), static_cast<std::size_t>(k));
      const auto t0 = Clock::now();
      std::vector<ckks::Ciphertext> cts;
      if (k == t.elements()) {
        cts = client_.encrypt(x, name, bound);  // all of it, in order
      } else {
        PlainTensor slice;
        slice.shape = {k};
        slice.batch = x.batch;
        slice.data.reserve(static_cast<std::size_t>(k * x.batch));
        for (std::int64_t e : these) {
          slice.data.insert(slice.data.end(), x.data.begin() + e * x.batch, x.data.begin() + (e + 1) * x.batch);
        }
        cts = client_.encrypt(slice, name, bound);
      }
      stats_.client_seconds += since(t0);
      if (static_cast<std::int64_t>(cts.size()) != k) throw std::runtime_error(name + ": the client encrypted a wrong number of elements");
      for (std::int64_t i = 0; i < k; ++i) {
        auto& c = cts[static_cast<std::size_t>(i)];
        stats_.bytes_to_server += wire_bytes(c, ctx_);
        if (c.n() != ctx_.n() || c.level() != ctx_.max_level()) throw std::runtime_error(name + ": the client sent a ciphertext with wrong parameters");
        t.cts[static_cast<std::size_t>(these[static_cast<std::size_t>(i)])] = std::make_shared<const ckks::Ciphertext>(std::move(c));
      }
      store_.adopt(t.cts, these, group);
    }
  }

  /// Output tiles of a node with output `y_shape` whose elements each need
  /// `element_bytes` of working set, within output rows [row_begin, row_end) of a
  /// [C, H, W] output (a streamed band; row_end < 0: all): whole, or row bands over all
  /// channels, or one row in channel blocks, or element ranges.
  std::vector<kernels::OutputTile> tiles(const model::Shape& y_shape, std::int64_t element_bytes,
                                         std::int64_t row_begin = 0, std::int64_t row_end = -1) const {
    const std::int64_t total = model::numel(y_shape);
    const std::int64_t per = std::max<std::int64_t>(1, tile_bytes_ / std::max<std::int64_t>(1, element_bytes));
    std::vector<kernels::OutputTile> out;
    const bool band = row_end >= 0 && y_shape.size() == 3;
    if (!band && per >= total) {
      out.push_back(kernels::OutputTile::all(total));
      return out;
    }
    if (y_shape.size() >= 2) {
      const std::int64_t c = y_shape[0], spatial = total / c, width = y_shape.back();
      const std::int64_t s_begin = band ? row_begin * width : 0, s_end = band ? row_end * width : spatial;
      const std::int64_t rows = (per / c) / width * width;
      if (rows >= width) {  // bands of whole rows over all channels
        for (std::int64_t s0 = s_begin; s0 < s_end; s0 += rows) out.push_back({c, spatial, s0, std::min(s0 + rows, s_end), 0});
        return out;
      }
      if (per >= width) {  // one row at a time, in channel blocks (band-major: inputs are reused)
        const std::int64_t block = per / width;
        for (std::int64_t s0 = s_begin; s0 < s_end; s0 += width) {
          for (std::int64_t c0 = 0; c0 < c; c0 += block) out.push_back({std::min(block, c - c0), spatial, s0, s0 + width, c0});
        }
        return out;
      }
      if (band) {  // parts of one row of one channel
        for (std::int64_t c0 = 0; c0 < c; ++c0) {
          for (std::int64_t s0 = s_begin; s0 < s_end; s0 += per) out.push_back({1, spatial, s0, std::min(s0 + per, s_end), c0});
        }
        return out;
      }
    }
    for (std::int64_t s0 = 0; s0 < total; s0 += per) out.push_back({1, total, s0, std::min(s0 + per, total), 0});
    return out;
  }

  /// Stores the tile's new ciphertexts of y in `group`.
  void adopt_tile(EncryptedTensor& y, const kernels::OutputTile& tile, memory::CiphertextStore::GroupId group) {
    std::vector<std::int64_t> positions;
    positions.reserve(static_cast<std::size_t>(tile.size()));
    for (std::int64_t t = 0; t < tile.size(); ++t) {
      const std::int64_t e = tile.at(t);
      if (y.cts[static_cast<std::size_t>(e)]) positions.push_back(e);
    }
    store_.adopt(y.cts, positions, group);
  }

  /// Applies pending factors (and brings the scale to Δ): one multiply-accumulate of
  /// weight f_e and one rescale per element, tile by tile into `group`.
  void materialize(EncryptedTensor& t, const std::string& layer, memory::CiphertextStore::GroupId group) {
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
    for (const auto& tile : tiles(t.shape, 2 * ct_bytes(t.level))) {
#pragma omp parallel for schedule(dynamic, 4)
      for (std::int64_t i = 0; i < tile.size(); ++i) {
        const std::int64_t e = tile.at(i);
        auto acc = be.start(y, e);
        be.mac(acc, t, e, 1.0);
        be.finish(y, e, acc);
      }
      adopt_tile(y, tile, group);
    }
    t = std::move(y);
  }

  /// x itself, or, when `needed`, a copy in `scratch` with its pending factors applied
  /// and its scale brought to Δ (materialize). Only a node that runs whole (`whole`) may
  /// need the copy: streamable_nodes() keeps the others out of segments.
  const EncryptedTensor& materialized(const EncryptedTensor& x, bool needed, bool whole, const model::Node& n,
                                      EncryptedTensor& scratch, memory::CiphertextStore::GroupId group) {
    if (!needed) return x;
    if (!whole) throw std::logic_error(n.name + ": a streamed input needs its pending factors or scale applied first");
    scratch = x;
    materialize(scratch, n.name, group);
    return scratch;
  }

  /// One client-aided layer: `items` elements, each with one or more masked windows
  /// (windows_of(item, out) appends them). The items are processed in one CSPRNG order
  /// for the whole layer, in chunks of about tile_bytes_ (item_bytes each); each window
  /// is multiplied by its own CSPRNG integer mask R (shift s: R·x - R·s) and the windows
  /// of a chunk are shuffled before they go to the client. consume(items, fresh, masks)
  /// receives, per item of the chunk, the fresh compact ciphertexts and masks of its
  /// windows (in windows_of order).
  template <class WindowsOf, class Consume>
  void round(const std::string& layer, RoundFunction f, std::int64_t items, double bound,
             std::int64_t item_bytes, std::size_t zero_level, double zero_scale, WindowsOf windows_of,
             Consume consume) {
    const auto order = random_permutation(static_cast<std::size_t>(items));
    // Half a tile: an in-process client holds its own copies of the chunk (decoded
    // values, fresh ciphertexts) beside the server's.
    const std::int64_t chunk = std::max<std::int64_t>(1, tile_bytes_ / 2 / std::max<std::int64_t>(1, item_bytes));
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
          if (!r.ct && !zero) zero = zero_ct(zero_level, zero_scale);
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
          const ckks::Ciphertext& in = be_.expanded(r.ct ? *r.ct : *zero, tmp);
          eval_.multiply_scalar(in, masks[w], 1.0, masked[w][j]);
          if (r.shift != 0.0) be_.add_constant(masked[w][j], -masks[w] * r.shift);
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
      std::vector<std::vector<CiphertextPtr>> fresh(its.size());
      std::vector<std::vector<double>> item_masks(its.size());
      for (std::size_t w = 0; w < count; ++w) {
        fresh[owner[w].first].resize(std::max(fresh[owner[w].first].size(), owner[w].second + 1));
        item_masks[owner[w].first].resize(fresh[owner[w].first].size());
      }
      for (std::size_t i = 0; i < count; ++i) {
        auto& c = reply[i];
        stats_.bytes_to_server += wire_bytes(c, ctx_);
        if (c.n() != ctx_.n() || c.level() != ctx_.max_level()) {
          throw std::runtime_error(layer + ": the client returned a ciphertext with wrong parameters");
        }
        const auto [slot, j] = owner[perm[i]];
        fresh[slot][j] = std::make_shared<const ckks::Ciphertext>(std::move(c));
        item_masks[slot][j] = masks[perm[i]];
      }
      consume(its, fresh, item_masks);
    }
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

  /// The output of a Relu round on x (filled by relu()).
  EncryptedTensor relu_output(const EncryptedTensor& x) const {
    EncryptedTensor y;
    y.shape = x.shape;
    y.cts.resize(x.cts.size());
    y.factor.assign(x.cts.size(), 1.0);
    y.level = ctx_.max_level();
    y.scale = plan_.scale();
    return y;
  }

  /// Relu round over `elements` of x (a whole node, or one streamed band): y_e = fresh
  /// R_e·relu(x_e) with factor f_e / R_e (kept compact).
  void relu(const EncryptedTensor& x, EncryptedTensor& y, std::span<const std::int64_t> elements,
            const std::string& layer, double bound, memory::CiphertextStore::GroupId group) {
    std::vector<std::int64_t> idx;
    idx.reserve(elements.size());
    for (std::int64_t e : elements) {
      if (x.cts[static_cast<std::size_t>(e)]) idx.push_back(e);
    }
    const std::int64_t item_bytes = 2 * ct_bytes(x.level) + ct_bytes(y.level, true);
    round(layer, RoundFunction::Relu, static_cast<std::int64_t>(idx.size()), round_bound(x, bound), item_bytes,
          x.level, x.scale,
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
            store_.adopt(y.cts, positions, group);
          });
  }

  /// The output of a MaxPool round (filled by max_pool()).
  EncryptedTensor max_pool_output(const model::Shape& y_shape) const {
    EncryptedTensor y;
    y.shape = y_shape;
    y.level = ctx_.max_level();
    y.scale = plan_.scale();
    const std::int64_t total = model::numel(y_shape);
    y.cts.resize(static_cast<std::size_t>(total));
    y.factor.assign(static_cast<std::size_t>(total), 1.0);
    return y;
  }

  /// MaxPool round for the output elements `outputs` of y (a whole node, or a band). x
  /// must carry no pending factors unless the node runs whole (they are applied first).
  void max_pool(const EncryptedTensor& x_in, EncryptedTensor& y, std::span<const std::int64_t> outputs,
                const model::Node& n, bool fused_relu, double bound, const std::string& layer,
                memory::CiphertextStore::GroupId group) {
    const auto& p = std::get<model::PoolParams>(n.params);
    EncryptedTensor m;
    const EncryptedTensor& x = materialized(x_in, x_in.has_factors(),
                                            static_cast<std::int64_t>(outputs.size()) == y.elements(), n, m, group);
    const kernels::WindowIndexer win(x.shape, y.shape, p.kernel, p.strides, p.dilations, p.pads_begin,
                                     p.pads_end);
    const std::int64_t item_bytes = win.kernel_size * 2 * ct_bytes(x.level) + ct_bytes(y.level, true);
    round(layer, fused_relu ? RoundFunction::ReluMax : RoundFunction::Max, static_cast<std::int64_t>(outputs.size()),
          round_bound(x, bound), item_bytes, x.level, x.scale,
          [&](std::size_t item, std::vector<std::vector<WindowRef>>& out) {
            const std::int64_t idx = outputs[item];
            const std::int64_t c = idx / win.out_size, os = idx % win.out_size;
            std::array<std::int64_t, kernels::kMaxSpatial> base;
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
            store_.adopt(y.cts, positions, group);
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
  void clip_or_leaky(const EncryptedTensor& x_in, EncryptedTensor& y, bool first,
                     std::span<const std::int64_t> elements, const model::Node& n, double bound,
                     const std::string& layer, memory::CiphertextStore::GroupId group) {
    EncryptedTensor m;
    const EncryptedTensor& x = materialized(x_in, std::fabs(x_in.scale / plan_.scale() - 1.0) > 1e-9,
                                            static_cast<std::int64_t>(elements.size()) == x_in.elements(), n, m, group);
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
    double max_shift = 0;
    for (double s : shifts) max_shift = std::max(max_shift, std::fabs(s));
    const bool uses_x = leaky || std::isinf(lo);
    const std::size_t level = uses_x ? x.level : ctx_.max_level();
    if (level == 0) throw std::invalid_argument(n.name + ": out of levels");
    EncryptedBackend be = be_;
    be.rescale = true;
    be.in_level = level;
    be.in_scale = plan_.scale();
    if (first) {
      y.shape = x.shape;
      y.level = level - 1;
      y.scale = plan_.scale();
      y.cts.resize(x.cts.size());
    }
    const auto windows = static_cast<std::int64_t>(shifts.size());
    const std::int64_t item_bytes =
        windows * (2 * ct_bytes(x.level) + 3 * ct_bytes(ctx_.max_level())) + 2 * ct_bytes(level);
    round(layer, RoundFunction::Relu, static_cast<std::int64_t>(elements.size()), round_bound(x, bound + max_shift),
          item_bytes, x.level, x.scale,
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
            store_.adopt(y.cts, positions, group);
          });
  }

 private:
  const model::Graph& g_;
  const EncryptionPlan& plan_;
  const ckks::CKKSContext& ctx_;
  const ckks::Evaluator& eval_;
  Client& client_;
  EncryptedRunStats& stats_;
  memory::CiphertextStore& store_;
  std::int64_t tile_bytes_;
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

namespace {

/// Per tensor, from the graph alone: may carry pending factors (Relu / MaxPool round
/// outputs and what shares their ciphertexts); may have a scale other than Δ (squares,
/// and what passes them on without a rescale).
struct TensorFlags {
  std::vector<bool> factors, off_scale;
};

TensorFlags tensor_flags(const model::Graph& g, const std::vector<EncryptedNodeKind>& kinds) {
  TensorFlags f{std::vector<bool>(g.tensors.size(), false), std::vector<bool>(g.tensors.size(), false)};
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const auto y = static_cast<std::size_t>(n.outputs[0]);
    bool in_factors = false, in_off = false;
    for (model::TensorId t : n.inputs) {
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
      in_factors = in_factors || f.factors[static_cast<std::size_t>(t)];
      in_off = in_off || f.off_scale[static_cast<std::size_t>(t)];
    }
    switch (kinds[k]) {
      case EncryptedNodeKind::Relu:
      case EncryptedNodeKind::MaxPool: f.factors[y] = true; break;
      case EncryptedNodeKind::DataMovement:
      case EncryptedNodeKind::FusedRelu:
        f.factors[y] = in_factors;
        f.off_scale[y] = in_off;
        break;
      case EncryptedNodeKind::Square: f.off_scale[y] = true; break;
      case EncryptedNodeKind::Linear: f.off_scale[y] = in_off; break;
      default: break;
    }
  }
  return f;
}

/// Whether some encrypted input of node n is flagged.
bool any_input(const model::Graph& g, const model::Node& n, const std::vector<bool>& flag) {
  for (model::TensorId t : n.inputs) {
    if (t != model::kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant && flag[static_cast<std::size_t>(t)]) return true;
  }
  return false;
}

}  // namespace

std::vector<bool> streamable_nodes(const model::Graph& g) {
  std::vector<EncryptedNodeKind> kinds;
  for (const auto& n : g.nodes) kinds.push_back(encrypted_node_kind(g, n));
  const TensorFlags flags = tensor_flags(g, kinds);
  std::vector<bool> out(g.nodes.size(), false);
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    bool maps = true;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const model::TensorId t = n.inputs[i];
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
      maps = maps && row_map(g, n, i).has_value();
    }
    const bool in_off = any_input(g, n, flags.off_scale), in_factors = any_input(g, n, flags.factors);
    switch (kinds[k]) {
      case EncryptedNodeKind::Linear:
      case EncryptedNodeKind::Clip:
      case EncryptedNodeKind::LeakyRelu:
      case EncryptedNodeKind::Relu:
      case EncryptedNodeKind::FusedRelu: out[k] = maps && !in_off; break;
      case EncryptedNodeKind::MaxPool: out[k] = maps && !in_off && !in_factors; break;
      default: break;
    }
  }
  return out;
}

EncryptedExecutor::EncryptedExecutor(const model::Graph& g, EncryptionPlan plan, ckks::ContextPtr context,
                                     const EvaluationKeys& keys, EncryptedRunOptions options)
    : g_(g), plan_(std::move(plan)), context_(std::move(context)), keys_(keys), eval_(context_),
      options_(options) {
  for (const auto& n : g.nodes) kinds_.push_back(encrypted_node_kind(g, n));
  streamable_ = streamable_nodes(g);
  // Lowest needed level of every tensor: the highest level a reader consumes it at,
  // where every reader is a linear / square node, a Relu round or the final Softmax
  // (they read at their predicted input level, memory/footprint.h); tensors read
  // otherwise, shared by data movement, or graph outputs keep their level.
  level_cap_.assign(g.tensors.size(), SIZE_MAX);
  const auto fp = memory::predict_footprint(g, plan_, memory::FootprintOptions{});
  const auto readers = model::consumers(g);
  const TensorFlags flags = tensor_flags(g, kinds_);
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    if (readers[t].empty() || model::is_graph_output(g, static_cast<model::TensorId>(t))) continue;
    int needed = -1;
    bool ok = true;
    for (int k : readers[t]) {
      const auto kind = kinds_[static_cast<std::size_t>(k)];
      // (A linear node with an input at a scale other than Δ first materializes it,
      // reading it one level above its predicted input level.)
      const bool aligned = !any_input(g, g.nodes[static_cast<std::size_t>(k)], flags.off_scale);
      ok = ok && (((kind == EncryptedNodeKind::Linear || kind == EncryptedNodeKind::Square) && aligned) ||
                  kind == EncryptedNodeKind::Relu || kind == EncryptedNodeKind::FinalSoftmax);
      needed = std::max(needed, fp.nodes[static_cast<std::size_t>(k)].input_level);
    }
    if (ok && needed >= 0) level_cap_[t] = static_cast<std::size_t>(needed);
  }
  if (plan_.bounds.size() != g.tensors.size()) throw ModelError("encryption plan does not match the graph");
}

namespace {

/// Store groups and next uses: a tensor produced by a data-movement node shares the
/// ciphertexts (and groups) of its inputs, so the readers of a group are the readers of
/// every tensor aliasing it.
struct Schedule {
  std::vector<std::vector<model::TensorId>> roots;  ///< per tensor: the produced tensors it aliases
  std::vector<std::vector<std::int64_t>> uses;      ///< per produced tensor: reader node indices

  Schedule(const model::Graph& g, const std::vector<EncryptedNodeKind>& kinds) {
    roots.resize(g.tensors.size());
    uses.resize(g.tensors.size());
    for (model::TensorId t : g.inputs) roots[static_cast<std::size_t>(t)] = {t};
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      const model::Node& n = g.nodes[k];
      const auto out = static_cast<std::size_t>(n.outputs[0]);
      for (model::TensorId t : n.inputs) {
        if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
        for (model::TensorId r : roots[static_cast<std::size_t>(t)]) {
          uses[static_cast<std::size_t>(r)].push_back(static_cast<std::int64_t>(k));
          if (kinds[k] == EncryptedNodeKind::DataMovement || kinds[k] == EncryptedNodeKind::FusedRelu) {
            if (std::find(roots[out].begin(), roots[out].end(), r) == roots[out].end()) roots[out].push_back(r);
          }
        }
      }
      if (kinds[k] != EncryptedNodeKind::DataMovement && kinds[k] != EncryptedNodeKind::FusedRelu) roots[out] = {n.outputs[0]};
      else roots[out].push_back(n.outputs[0]);  // its own group (constants it creates)
    }
  }

  /// The first reader of produced tensor r after position `after` (INT64_MAX: none).
  std::int64_t next_use(model::TensorId r, std::int64_t after) const {
    for (std::int64_t k : uses[static_cast<std::size_t>(r)]) {
      if (k > after) return k;
    }
    return std::numeric_limits<std::int64_t>::max();
  }
};

}  // namespace

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
  std::unique_ptr<memory::CiphertextStore> own_store;
  memory::CiphertextStore* store = options_.store;
  if (!store) {
    own_store = std::make_unique<memory::CiphertextStore>(memory::StoreOptions{});
    store = own_store.get();
  }
  const Schedule schedule(g, kinds_);
  std::vector<memory::CiphertextStore::GroupId> group_of(g.tensors.size(), -1);
  auto open_group = [&](model::TensorId t, std::int64_t now) {
    const auto id = store->open_group(schedule.next_use(t, now), level_cap_[static_cast<std::size_t>(t)]);
    group_of[static_cast<std::size_t>(t)] = id;
    return id;
  };
  Run run(g, plan_, *context_, eval_, keys_, client, stats, *store);
  // Declared after the store's users above, destroyed before the store.
  std::vector<std::optional<EncryptedTensor>> values(g.tensors.size());
  std::map<model::TensorId, PlainTensor> plain_outputs;
  std::vector<bool> fused(g.tensors.size(), false);
  // Streaming across layers: bands of rows of consecutive streamable nodes
  // (runtime/stream_schedule.h); without it every node runs whole, in graph order.
  StreamOptions stream_options;
  stream_options.band_elements =
      std::max<std::int64_t>(1, store->tile_bytes() / run.ct_bytes(context_->max_level()) / 8);
  const auto steps = stream_schedule(
      g, options_.streaming ? streamable_ : std::vector<bool>(g.nodes.size(), false), stream_options);
  // Graph inputs read only by streamed bands are encrypted band by band, as they are read
  // (by a client that encrypts in parts), so they never exist whole either.
  const auto on_demand = inputs_on_demand(g, steps);
  std::vector<const PlainTensor*> pending_input(g.tensors.size(), nullptr);
  std::vector<std::int64_t> encrypted_rows(g.tensors.size(), 0);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const model::TensorId id = g.inputs[i];
    const model::Tensor& t = g.tensors[static_cast<std::size_t>(id)];
    if (inputs[i].shape != t.shape || inputs[i].batch != batch ||
        static_cast<std::int64_t>(inputs[i].data.size()) != batch * model::numel(t.shape)) {
      throw ModelError("input '" + t.name + "': expected per-sample shape " + model::to_string(t.shape) +
                       " with batch " + std::to_string(batch) + ", got " + model::to_string(inputs[i].shape));
    }
    values[static_cast<std::size_t>(id)] = run.input_tensor(inputs[i]);
    auto& v = *values[static_cast<std::size_t>(id)];
    const auto group = open_group(id, -1);
    if (on_demand[static_cast<std::size_t>(id)] && client.encrypts_parts()) {
      pending_input[static_cast<std::size_t>(id)] = &inputs[i];  // rows encrypted as streamed bands read them
    } else {
      std::vector<std::int64_t> all(static_cast<std::size_t>(v.elements()));
      for (std::size_t e = 0; e < all.size(); ++e) all[e] = static_cast<std::int64_t>(e);
      run.encrypt_elements(inputs[i], v, all, t.name, plan_.bounds[static_cast<std::size_t>(id)], group);
    }
    v.level = std::min(v.level, level_cap_[static_cast<std::size_t>(id)]);  // stored at the lowest needed level
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
  std::vector<std::int64_t> released(g.tensors.size(), 0);  // rows [0, released) dropped
  std::vector<double> node_start(g.nodes.size(), 0.0);
  std::int64_t step_index = 0;
  auto last_report = Clock::now();
  for (const StreamStep& st : steps) {
    ++step_index;
    const auto t0 = Clock::now();
    const auto k = static_cast<std::size_t>(st.node);
    const auto pos = static_cast<std::int64_t>(k);
    const model::Node& n = g.nodes[k];
    const model::TensorId out = n.outputs[0];
    const model::Shape& y_shape = g.tensors[static_cast<std::size_t>(out)].shape;
    const std::int64_t rounds0 = stats.rounds, to_client0 = stats.bytes_to_client, to_server0 = stats.bytes_to_server;
    if (st.first) node_start[k] = options_.monitor ? options_.monitor->seconds() : since(t_start);
    store->reset_window_peaks();
    if (options_.monitor) options_.monitor->mark();
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const model::TensorId t = n.inputs[i];
      if (t == model::kNoTensor || !pending_input[static_cast<std::size_t>(t)]) continue;
      const auto ti = static_cast<std::size_t>(t);
      const model::Shape& s = g.tensors[ti].shape;
      const auto m = row_map(g, n, i);
      const std::int64_t need = st.streamed && m ? m->end(st.row_end) : s[1];
      if (need > encrypted_rows[ti]) {
        run.encrypt_elements(*pending_input[ti], *values[ti], band_elements(s, encrypted_rows[ti], need),
                             g.tensors[ti].name, plan_.bounds[ti], group_of[ti]);
        encrypted_rows[ti] = need;
        if (need == s[1]) pending_input[ti] = nullptr;
      }
    }
    std::vector<const EncryptedTensor*> in;
    std::vector<EncryptedTensor*> data;
    std::vector<memory::CiphertextStore::GroupId> in_groups;
    for (model::TensorId t : n.inputs) {
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) {
        in.push_back(nullptr);
        continue;
      }
      auto& v = values[static_cast<std::size_t>(t)];
      if (!v) throw ModelError(model::node_label(n) + ": input has not been computed");
      in.push_back(&*v);
      data.push_back(&*v);
      for (model::TensorId r : schedule.roots[static_cast<std::size_t>(t)]) {
        if (group_of[static_cast<std::size_t>(r)] >= 0) in_groups.push_back(group_of[static_cast<std::size_t>(r)]);
      }
    }
    if (data.empty()) throw ModelError(model::node_label(n) + ": no encrypted input");
    const EncryptedNodeKind kind = kinds_[k];
    if (kind != EncryptedNodeKind::DataMovement && kind != EncryptedNodeKind::FusedRelu) {
      if (st.streamed) store->prefetch_members(band_inputs(g, n, st, values));
      else store->prefetch(in_groups);
    }
    const model::TensorId x_id = [&] {
      for (model::TensorId t : n.inputs) {
        if (t != model::kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant) return t;
      }
      return model::kNoTensor;
    }();
    const double x_bound = plan_.bounds[static_cast<std::size_t>(x_id)];
    // Names the layer whose output a client round checks: "<producer> -> <this node>".
    const std::string round_layer = producer[static_cast<std::size_t>(x_id)] + " -> " + n.name;
    const auto group = st.first ? open_group(out, pos) : group_of[static_cast<std::size_t>(out)];
    // The output lives in values[out] from the first step on (a streamed node fills it
    // band by band); a final Softmax produces a plaintext instead.
    if (st.first && kind != EncryptedNodeKind::FinalSoftmax) values[static_cast<std::size_t>(out)].emplace();
    EncryptedTensor scratch;
    EncryptedTensor& y = kind == EncryptedNodeKind::FinalSoftmax ? scratch : *values[static_cast<std::size_t>(out)];
    // The output elements of this step: a band of rows, or all.
    const std::vector<std::int64_t> band =
        st.streamed ? band_elements(y_shape, st.row_begin, st.row_end) : std::vector<std::int64_t>{};
    std::vector<std::int64_t> all_elements;
    auto elements = [&]() -> std::span<const std::int64_t> {
      if (st.streamed) return band;
      if (all_elements.empty()) {
        all_elements.resize(static_cast<std::size_t>(model::numel(y_shape)));
        for (std::size_t e = 0; e < all_elements.size(); ++e) all_elements[e] = static_cast<std::int64_t>(e);
      }
      return all_elements;
    };
    switch (kind) {
      case EncryptedNodeKind::DataMovement:
      case EncryptedNodeKind::Linear:
      case EncryptedNodeKind::Square: {
        // Inputs read here may be read later by other nodes: align copies, not originals.
        std::vector<EncryptedTensor> aligned;
        aligned.reserve(data.size());
        // Several encrypted inputs must share a scale: one whose scale is not Δ (a square's
        // output) is first brought to Δ (one multiply-accumulate + rescale, one level).
        // Never for streamed nodes (streamable_nodes() excludes them).
        if (data.size() > 1) {
          bool mixed = false;
          for (auto* d : data) mixed = mixed || std::fabs(d->scale / plan_.scale() - 1.0) > 1e-9;
          if (mixed) {
            if (st.streamed) throw std::logic_error(n.name + ": streamed node with inputs at different scales");
            for (auto& p : in) {
              if (!p || std::fabs(p->scale / plan_.scale() - 1.0) <= 1e-9) continue;
              aligned.push_back(*p);
              run.materialize(aligned.back(), n.name, group);
              p = &aligned.back();
            }
            data.clear();
            for (auto* p : in) {
              if (p) data.push_back(const_cast<EncryptedTensor*>(p));
            }
          }
        }
        // Inputs at different levels are read at the lowest one (first limbs).
        std::size_t level = data[0]->level;
        bool factors = false;
        for (auto* d : data) {
          level = std::min(level, d->level);
          factors = factors || d->has_factors();
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
        if (st.first) {
          y.shape = y_shape;
          y.cts.resize(static_cast<std::size_t>(model::numel(y_shape)));
        }
        if (kind == EncryptedNodeKind::DataMovement) {
          y.level = level;
          y.scale = x.scale;
          if (factors) y.factor.assign(y.cts.size(), 1.0);
          run_linear(be, g, n, in, y);
          store->adopt_all(y.cts, group);  // constants it created (Pad values)
          break;
        }
        if (kind == EncryptedNodeKind::Square) {
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
        // Working set per output element: the output, the expanded inputs it reads and,
        // for deferred multiply-accumulates, its term list and encoded weights.
        const std::int64_t out_elements = std::max<std::int64_t>(1, model::numel(y_shape));
        std::int64_t in_elements = 0;
        for (auto* d : data) in_elements += d->elements();
        const std::int64_t terms = std::max<std::int64_t>(1, model::macs(g, n) / out_elements);
        const std::int64_t element_bytes =
            run.ct_bytes(level) * (1 + (in_elements + out_elements - 1) / out_elements) +
            terms * static_cast<std::int64_t>(16 + 8 * (level + 1)) + 256;
        std::vector<EncryptedBackend::Acc> deferred;
        // Expansions of compact inputs are kept across the tiles of one step.
        EncryptedBackend::ExpansionCache expansions;
        be.expansions = &expansions;
        const auto tiles = st.streamed ? run.tiles(y_shape, element_bytes, st.row_begin, st.row_end)
                                       : run.tiles(y_shape, element_bytes);
        // Several tiles, or the bands of a node whose windows overlap (a 3x3 conv reads
        // each input row in three bands), would each expand the compact inputs they read
        // into temporaries: expand them once, in the store (accounted, within the budget
        // or in the tier), instead.
        bool overlap = false;
        if (st.streamed) {
          for (std::size_t i = 0; i < n.inputs.size(); ++i) {
            if (!in[i]) continue;
            const auto m = row_map(g, n, i);
            overlap = overlap || (m && !m->all && m->extent > m->stride);
          }
        }
        if (tiles.size() > 1 || overlap) store->expand(in_groups, *context_);
        for (const auto& tile : tiles) {
          be.tile = &tile;
          if (kind == EncryptedNodeKind::Linear && be.rescale) {
            deferred.assign(static_cast<std::size_t>(tile.size()), {});
            be.deferred = &deferred;
          }
          run_linear(be, g, n, in, y, &tile);
          if (be.deferred) be.flush(y, deferred);
          run.adopt_tile(y, tile, group);
        }
        deferred.clear();
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
      case EncryptedNodeKind::FusedRelu: {
        const EncryptedTensor& x = *data[0];
        if (!st.streamed) y = x;
        else share_elements(x, y, st.first, band);
        fused[static_cast<std::size_t>(out)] = true;
        break;
      }
      case EncryptedNodeKind::Relu:
        if (st.first) y = run.relu_output(*data[0]);
        run.relu(*data[0], y, elements(), round_layer, x_bound, group);
        break;
      case EncryptedNodeKind::MaxPool: {
        const bool f = fused[static_cast<std::size_t>(x_id)];
        if (st.first) y = run.max_pool_output(y_shape);
        run.max_pool(*data[0], y, elements(), n, f, x_bound, round_layer, group);
        break;
      }
      case EncryptedNodeKind::Clip:
      case EncryptedNodeKind::LeakyRelu:
        run.clip_or_leaky(*data[0], y, st.first, elements(), n, x_bound, round_layer, group);
        break;
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
    // The store keeps the output at its lowest needed level (open_group's cap).
    if (kind != EncryptedNodeKind::FinalSoftmax && kind != EncryptedNodeKind::DataMovement &&
        kind != EncryptedNodeKind::FusedRelu) {
      y.level = std::min(y.level, level_cap_[static_cast<std::size_t>(out)]);
    }
    // Rows no reader needs any more (streamed segments).
    for (const auto& [t, r] : st.release) {
      auto& v = values[static_cast<std::size_t>(t)];
      auto& done_rows = released[static_cast<std::size_t>(t)];
      if (v && r > done_rows) {
        for (std::int64_t e : band_elements(v->shape, done_rows, r)) v->cts[static_cast<std::size_t>(e)].reset();
      }
      done_rows = std::max(done_rows, r);
    }
    auto& ls = stats.layers[k];
    ls.seconds += since(t0);
    ls.rounds += stats.rounds - rounds0;
    ls.bytes_to_client += stats.bytes_to_client - to_client0;
    ls.bytes_to_server += stats.bytes_to_server - to_server0;
    const auto dram = store->dram(), pmem = store->pmem();
    ls.dram_peak_bytes = std::max(ls.dram_peak_bytes, dram.window_peak_bytes);
    ls.pmem_peak_bytes = std::max(ls.pmem_peak_bytes, pmem.window_peak_bytes);
    if (options_.monitor) ls.rss_anon_peak_bytes = std::max(ls.rss_anon_peak_bytes, options_.monitor->mark());
    if (options_.progress && st.streamed && since(last_report) > 10.0) {
      // Streamed nodes complete together at the end of their segment: report the bands.
      last_report = Clock::now();
      std::fprintf(stderr, "  streaming: band %lld of %zu steps: %s rows [%lld, %lld) of %lld\n",
                   static_cast<long long>(step_index), steps.size(), n.name.c_str(),
                   static_cast<long long>(st.row_begin), static_cast<long long>(st.row_end),
                   static_cast<long long>(y_shape.size() == 3 ? y_shape[1] : 0));
    }
    if (st.last) {
      ls.name = n.name;
      ls.op = std::string(model::op_name(n.op));
      if (kind != EncryptedNodeKind::FinalSoftmax) {
        ls.ciphertexts = y.elements();
        ls.level = static_cast<int>(y.level);
      }
      for (model::TensorId t : free_after[k]) values[static_cast<std::size_t>(t)].reset();
    }
#ifdef __GLIBC__
    // Under a DRAM budget, hand the heap pages freed by this step (released rows, dead
    // inputs, the working set) back to the kernel, so that resident memory follows the
    // budget.
    if (store->options().dram_budget > 0 && (st.last || step_index % 16 == 0)) malloc_trim(0);
#endif
    if (!st.last) continue;
    // The inputs' groups are next read later (or never: freed with their tensors).
    for (model::TensorId t : n.inputs) {
      if (t == model::kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
      for (model::TensorId r : schedule.roots[static_cast<std::size_t>(t)]) {
        if (group_of[static_cast<std::size_t>(r)] >= 0) {
          store->set_next_use(group_of[static_cast<std::size_t>(r)], schedule.next_use(r, pos));
        }
      }
    }
    ls.start = node_start[k];
    ls.dram_bytes = dram.bytes;
    ls.pmem_bytes = pmem.bytes;
    client.layer_done(k, ls);
    if (options_.progress) {
      std::fprintf(stderr, "  [%zu/%zu] %-24s %-18s %7lld ct  level %2d  %8.3f s  dram %7.1f MiB  tier %7.1f MiB\n",
                   k + 1, g.nodes.size(), n.name.c_str(), ls.op.c_str(), static_cast<long long>(ls.ciphertexts),
                   ls.level, ls.seconds, static_cast<double>(dram.bytes) / 1048576.0,
                   static_cast<double>(pmem.bytes) / 1048576.0);
    }
    if (options_.kill_after_node == static_cast<int>(k)) {
      std::fprintf(stderr, "heinfer: fault injection: killing the process after node %zu (%s)\n", k, n.name.c_str());
      std::fflush(stderr);
      std::raise(SIGKILL);
    }
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

std::vector<double> EncryptedSession::run_batched(std::vector<double> inputs, std::int64_t count,
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
  // The batch is held once: in the executor's layout, a tensor per chunk, each freed
  // when its chunk has run.
  std::vector<PlainTensor> xs;
  for (std::int64_t s = 0; s < count; s += chunk) {
    const std::int64_t b = std::min(chunk, count - s);
    xs.push_back(from_batch_major(std::span<const double>(inputs).subspan(static_cast<std::size_t>(s * in_e),
                                                                         static_cast<std::size_t>(b * in_e)),
                                  b, in_shape));
  }
  std::vector<double>().swap(inputs);
  std::vector<double> out(static_cast<std::size_t>(count * out_e));
  std::int64_t s = 0;
  for (PlainTensor& x : xs) {
    const auto t0 = Clock::now();
    std::vector<PlainTensor> in;
    in.push_back(std::move(x));
    auto y = executor->run(*client, in, stats);
    const auto bm = to_batch_major(y[0]);
    std::copy(bm.begin(), bm.end(), out.begin() + s * out_e);
    s += in[0].batch;
    if (batch_seconds) batch_seconds->push_back(since(t0));
  }
  return out;
}

}  // namespace heinfer::runtime
