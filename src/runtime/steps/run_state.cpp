#include "runtime/steps/run_state.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "ckks/sizes.h"
#include "model/error.h"

namespace heinfer::runtime::steps {

std::vector<std::size_t> random_permutation(std::size_t n) {
  std::vector<std::size_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = i;
  for (std::size_t i = n; i > 1; --i) {
    const std::size_t j = randombytes_uniform(static_cast<uint32_t>(i));
    std::swap(p[i - 1], p[j]);
  }
  return p;
}

std::vector<ckks::Ciphertext> exchange_round(RunState& run, const std::string& layer, RoundFunction f,
                                             const std::vector<std::vector<ckks::Ciphertext>>& masked,
                                             const std::vector<std::size_t>& perm) {
  const std::size_t count = masked.size();
  RoundRequest req;
  req.node = run.node;
  req.layer = layer;
  req.function = f;
  req.bound = run.plan.nodes[static_cast<std::size_t>(run.node)].round_bound;
  req.windows.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    for (const auto& c : masked[perm[i]]) {
      req.windows[i].push_back(&c);
      run.stats.bytes_to_client += ckks::serialized_size(c, run.ctx);
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto reply = run.client.round(req);
  run.stats.client_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++run.stats.rounds;
  if (reply.size() != count * replies_per_window(f)) {
    throw std::runtime_error(layer + ": the client returned a wrong number of ciphertexts");
  }
  for (const ckks::Ciphertext& c : reply) {
    run.stats.bytes_to_server += ckks::serialized_size(c, run.ctx);
    if (c.n() != run.ctx.n() || c.level() != run.ctx.max_level() || std::fabs(c.scale() / run.scale() - 1) > 1e-9) {
      throw std::runtime_error(layer + ": the client returned a ciphertext with wrong parameters");
    }
  }
  if (run.observers) {
    for (RunObserver* o : *run.observers) o->round_replied(static_cast<std::size_t>(run.node), run.stats.rounds);
  }
  return reply;
}

const EncryptedTensor& materialized(RunState& run, const EncryptedTensor& x, bool needed, bool whole,
                                    const model::Node& n, EncryptedTensor& scratch, GroupId group) {
  if (!needed) return x;
  if (!whole) throw std::logic_error(n.name + ": a streamed input needs its pending factors or scale applied first");
  scratch = x;
  run.materialize(scratch, n.name, group);
  return scratch;
}
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

RunState::RunState(const model::Graph& g_, const plan::EncryptedPlan& plan_, const ckks::CKKSContext& ctx_,
                   const ckks::Evaluator& eval_, const EvaluationKeys& keys, Client& client_,
                   EncryptedRunStats& stats_, memory::CiphertextStore& store_)
    : g(g_), plan(plan_), ctx(ctx_), eval(eval_), client(client_), stats(stats_), store(store_),
      tile_bytes(plan_.options.tile_bytes) {
  be.eval = &eval;
  be.relin = &keys.relin;
  be.galois = &keys.galois;
  be.packing = plan.parameters.packing;
  be.target_scale = plan.parameters.scale();
}

std::int64_t RunState::ct_bytes(std::size_t level, bool compact) const {
  return ckks::ciphertext_bytes(ctx.n(), static_cast<int>(level), compact);
}

EncryptedTensor RunState::input_tensor(const model::Shape& shape) const {
  EncryptedTensor t;
  t.shape = shape;
  t.level = ctx.max_level();
  t.scale = scale();
  t.cts.resize(static_cast<std::size_t>(model::numel(shape)));
  return t;
}

void RunState::encrypt_elements(std::size_t input, EncryptedTensor& t, std::span<const std::int64_t> elements,
                                const std::string& name, double bound, GroupId group) {
  const auto total = static_cast<std::int64_t>(elements.size());
  const std::int64_t part =
      client.encrypts_parts() ? std::max<std::int64_t>(1, tile_bytes / ct_bytes(ctx.max_level(), true)) : total;
  for (std::int64_t p0 = 0; p0 < total; p0 += part) {
    const std::int64_t k = std::min(part, total - p0);
    EncryptRequest req;
    req.input = input;
    req.elements = elements.subspan(static_cast<std::size_t>(p0), static_cast<std::size_t>(k));
    req.name = name;
    req.bound = bound;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<ckks::Ciphertext> cts = client.encrypt(req);
    stats.client_seconds += since(t0);
    if (static_cast<std::int64_t>(cts.size()) != k) {
      throw std::runtime_error(name + ": the client encrypted " + std::to_string(cts.size()) + " elements, " +
                               std::to_string(k) + " were asked for");
    }
    for (std::int64_t i = 0; i < k; ++i) {
      auto& c = cts[static_cast<std::size_t>(i)];
      if (c.n() != ctx.n() || c.level() != ctx.max_level()) {
        throw std::runtime_error(name + ": the client sent a ciphertext with wrong parameters");
      }
      stats.bytes_to_server += ckks::serialized_size(c, ctx);
      t.cts[static_cast<std::size_t>(req.elements[static_cast<std::size_t>(i)])] =
          std::make_shared<const ckks::Ciphertext>(std::move(c));
    }
    store.adopt(t.cts, req.elements, group);
  }
}

std::vector<kernels::OutputTile> RunState::tiles(const model::Shape& y_shape, std::int64_t element_bytes,
                                                 std::int64_t row_begin, std::int64_t row_end) const {
  const std::int64_t total = model::numel(y_shape);
  const std::int64_t per = std::max<std::int64_t>(1, tile_bytes / std::max<std::int64_t>(1, element_bytes));
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

std::vector<kernels::OutputTile> RunState::step_tiles(const StepIO& s, std::int64_t element_bytes) const {
  const bool band = s.st.streamed;
  if (s.col_end < 0 || s.y_shape.size() != 3) {
    return band ? tiles(s.y_shape, element_bytes, s.st.row_begin, s.st.row_end) : tiles(s.y_shape, element_bytes);
  }
  const std::int64_t c = s.y_shape[0], h = s.y_shape[1], w = s.y_shape[2];
  const std::int64_t h0 = band ? s.st.row_begin : 0, h1 = band ? s.st.row_end : h;
  const std::int64_t width = s.col_end - s.col_begin;
  std::vector<kernels::OutputTile> out;
  if (width <= 0) return out;
  const std::int64_t per = std::max<std::int64_t>(1, tile_bytes / std::max<std::int64_t>(1, element_bytes));
  const std::int64_t rows = std::max<std::int64_t>(1, per / width);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    for (std::int64_t r0 = h0; r0 < h1; r0 += rows) {
      out.push_back({std::min(rows, h1 - r0), w, s.col_begin, s.col_end, ch * h + r0});
    }
  }
  return out;
}

std::vector<std::int64_t> RunState::owned(model::TensorId t, std::vector<std::int64_t> elements) const {
  if (!partition) return elements;
  const plan::TensorSplit& s = partition->tensors[static_cast<std::size_t>(t)];
  std::erase_if(elements, [&](std::int64_t e) { return s.owner(e) != rank; });
  return elements;
}

void RunState::adopt_tile(EncryptedTensor& y, const kernels::OutputTile& tile, GroupId group) {
  std::vector<std::int64_t> positions;
  positions.reserve(static_cast<std::size_t>(tile.size()));
  for (std::int64_t t = 0; t < tile.size(); ++t) {
    const std::int64_t e = tile.at(t);
    if (y.cts[static_cast<std::size_t>(e)]) positions.push_back(e);
  }
  store.adopt(y.cts, positions, group);
}

void RunState::materialize(EncryptedTensor& t, const std::string& layer, GroupId group) {
  if (t.level == 0) throw std::invalid_argument(layer + ": out of levels while unmasking");
  EncryptedBackend b = be;
  b.rescale = true;
  b.in_level = t.level;
  b.in_scale = t.scale;
  EncryptedTensor y;
  y.shape = t.shape;
  y.level = t.level - 1;
  y.scale = scale();
  y.cts.resize(t.cts.size());
  for (const auto& tile : tiles(t.shape, 2 * ct_bytes(t.level))) {
#pragma omp parallel for schedule(dynamic, 4)
    for (std::int64_t i = 0; i < tile.size(); ++i) {
      const std::int64_t e = tile.at(i);
      auto acc = b.start(y, e);
      b.mac(acc, t, e, 1.0);
      b.finish(y, e, acc);
    }
    adopt_tile(y, tile, group);
  }
  t = std::move(y);
}

EncryptedTensor fresh_output(const RunState& run, const model::Shape& shape) {
  EncryptedTensor y;
  y.shape = shape;
  y.level = run.ctx.max_level();
  y.scale = run.scale();
  y.cts.resize(static_cast<std::size_t>(model::numel(shape)));
  y.factor.assign(y.cts.size(), 1.0);
  return y;
}

CiphertextPtr RunState::zero_ct(std::size_t level, double s) const {
  return std::make_shared<const ckks::Ciphertext>(be.constant(0.0, level, s));
}

std::vector<std::int64_t> band_elements(const model::Shape& shape, std::int64_t row_begin, std::int64_t row_end) {
  std::vector<std::int64_t> out;
  const std::int64_t width = shape[2], plane = shape[1] * shape[2];
  out.reserve(static_cast<std::size_t>(shape[0] * (row_end - row_begin) * width));
  for (std::int64_t c = 0; c < shape[0]; ++c) {
    for (std::int64_t e = c * plane + row_begin * width; e < c * plane + row_end * width; ++e) out.push_back(e);
  }
  return out;
}

std::vector<const CiphertextPtr*> band_inputs(const model::Graph& g, const model::Node& n, const plan::StreamStep& st,
                                              const std::vector<const EncryptedTensor*>& in) {
  std::vector<const CiphertextPtr*> out;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const EncryptedTensor* v = in[i];
    if (!v) continue;
    const auto m = plan::row_map(g, n, i);
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

const EncryptedTensor* first_input(const StepIO& s) {
  for (const EncryptedTensor* x : s.in) {
    if (x) return x;
  }
  throw std::logic_error(model::node_label(s.n) + ": no encrypted input");
}

void check_input_levels(const StepIO& s, std::size_t level) {
  for (const EncryptedTensor* x : s.in) {
    if (x && x->level < level) {
      throw std::logic_error(model::node_label(s.n) + ": an input is at level " + std::to_string(x->level) +
                             ", below the level " + std::to_string(level) + " the plan reads it at");
    }
  }
}

}  // namespace heinfer::runtime::steps
