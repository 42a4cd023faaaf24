// The model-private mode's non-linear step: Relu and MaxPool evaluated on the server as
// polynomials (runtime/private_relu.h, with the plan's approximations), the client only
// refreshing blindly masked ciphertexts. Every output is refreshed to the top level, as
// a client round's replies are, so the plan's levels are those of the client-aided mode.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "ckks/sizes.h"
#include "model/error.h"
#include "model/window_indexer.h"
#include "runtime/blind_refresh_round.h"
#include "runtime/private_relu.h"
#include "runtime/steps/run_state.h"

namespace heinfer::runtime::steps {
namespace {

/// The run's client with the traffic, time and rounds of every refresh accounted in
/// run.stats, and the observers told of every reply, as exchange_round does.
class MeteredClient final : public Client {
 public:
  explicit MeteredClient(RunState& run) : run_(run) {}
  std::int64_t capacity() const override { return run_.client.capacity(); }
  std::int64_t batch() const override { return run_.client.batch(); }
  std::vector<ckks::Ciphertext> encrypt(const EncryptRequest& r) override { return run_.client.encrypt(r); }
  PlainTensor decrypt(const std::vector<const ckks::Ciphertext*>& cts, const std::vector<double>& factors,
                      const model::Shape& shape, std::int64_t batch, const std::string& layer, double bound) override {
    return run_.client.decrypt(cts, factors, shape, batch, layer, bound);
  }
  std::vector<ckks::Ciphertext> round(const RoundRequest& request) override {
    for (const auto& w : request.windows) {
      for (const ckks::Ciphertext* c : w) run_.stats.bytes_to_client += ckks::serialized_size(*c, run_.ctx);
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto reply = run_.client.round(request);
    run_.stats.client_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++run_.stats.rounds;
    for (const ckks::Ciphertext& c : reply) run_.stats.bytes_to_server += ckks::serialized_size(c, run_.ctx);
    if (run_.observers) {
      for (RunObserver* o : *run_.observers) o->round_replied(static_cast<std::size_t>(run_.node), run_.stats.rounds);
    }
    return reply;
  }

 private:
  RunState& run_;
};

/// Refreshes `y` (at or above the floor) to the top level and stores it as elements
/// `positions` of out: at scale Δ with the pending factor f·Δ/s, s its scale and f its
/// entry of `factors` (empty: 1).
void refresh_into(RunState& run, Client& client, const PrivateReluContext& c, std::vector<ckks::Ciphertext>& y,
                  std::span<const std::int64_t> positions, EncryptedTensor& out, GroupId group,
                  std::span<const double> factors = {}) {
  const std::size_t floor = static_cast<std::size_t>(c.floor);
  std::vector<const ckks::Ciphertext*> ptrs;
  for (auto& v : y) {
    run.eval.mod_switch_to_inplace(v, floor);
    ptrs.push_back(&v);
  }
  auto fresh = blind_refresh_round(client, ptrs, c.mask_bits, *c.public_key_encryptor, run.ctx, run.node, c.layer);
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    ckks::Ciphertext& f = fresh[i];
    const auto e = static_cast<std::size_t>(positions[i]);
    out.factor[e] = (factors.empty() ? 1.0 : factors[i]) * run.scale() / f.scale();
    f.set_scale(run.scale());
    if (f.is_seeded()) f.compact();  // c1 is still the client's seed: half the memory
    out.cts[e] = std::make_shared<const ckks::Ciphertext>(std::move(f));
  }
  run.store.adopt(out.cts, positions, group);
}

/// Relu, Clip or LeakyRelu over `elements` of x: y_e = comb(f_e·x_e) with comb the node's
/// plan::relu_combination, one private Relu per term, all in the same rounds (null x_e:
/// exact zero, stays null when comb(0) = 0).
void relu(RunState& run, Client& client, const PrivateReluContext& c, const plan::ReluApproximation& r,
          const plan::ReluCombination& comb, const EncryptedTensor& x, std::size_t level, EncryptedTensor& y,
          std::span<const std::int64_t> elements, std::size_t chunk, GroupId group, const std::string& label) {
  std::vector<std::int64_t> idx;
  bool zeros = false;
  for (std::int64_t e : elements) {
    if (x.cts[static_cast<std::size_t>(e)]) idx.push_back(e);
    else zeros = true;
  }
  double at_zero = comb.constant;
  for (const plan::ReluTerm& t : comb.terms) at_zero += t.sign * std::max(t.shift, 0.0);
  if (zeros && at_zero != 0) {
    throw model::ModelError(label + ": an exactly zero element maps to " + std::to_string(at_zero) +
                            ", which the model-private step does not produce");
  }
  const std::size_t terms = comb.terms.size();
  for (std::size_t c0 = 0; c0 < idx.size(); c0 += chunk) {
    const std::span<const std::int64_t> part(idx.data() + c0, std::min(chunk, idx.size() - c0));
    const std::size_t n = part.size();
    std::vector<ckks::Ciphertext> in(n);
    std::vector<const ckks::Ciphertext*> ptrs(n * terms);
    std::vector<double> f(n * terms), shift(n * terms);
#pragma omp parallel for schedule(dynamic, 4)
    for (std::size_t i = 0; i < n; ++i) {
      ckks::Ciphertext tmp;
      in[i] = run.be.expanded(*x.cts[static_cast<std::size_t>(part[i])], tmp);
      if (in[i].level() > level) run.eval.mod_switch_to_inplace(in[i], level);
    }
    for (std::size_t j = 0; j < terms; ++j) {
      for (std::size_t i = 0; i < n; ++i) {
        ptrs[j * n + i] = &in[i];
        f[j * n + i] = x.factor_at(part[i]) * comb.terms[j].scale;
        shift[j * n + i] = comb.terms[j].shift;
      }
    }
    auto out = private_relu(ptrs, r, c, nullptr, f, shift);
    in.clear();
    // y = constant + Σ_j sign_j·R_j: the terms share a level and a scale.
    std::vector<ckks::Ciphertext> sum(n);
#pragma omp parallel for schedule(dynamic, 4)
    for (std::size_t i = 0; i < n; ++i) {
      sum[i] = std::move(out[i]);
      if (comb.terms[0].sign < 0) run.eval.negate_inplace(sum[i]);
      for (std::size_t j = 1; j < terms; ++j) {
        if (comb.terms[j].sign > 0) run.eval.add_inplace(sum[i], out[j * n + i]);
        else run.eval.sub_inplace(sum[i], out[j * n + i]);
      }
      if (comb.constant != 0) run.eval.add_scalar_inplace(sum[i], comb.constant);
    }
    refresh_into(run, client, c, sum, part, y, group);
  }
}

/// MaxPool over the output elements `outputs` of y: a balanced tree of private maxes per
/// window (in-bounds taps; a window's odd tap is paired with itself, so every tree level
/// runs on one level and scale), then the Relu it took over (`relu`), then a refresh.
void max_pool(RunState& run, Client& client, const PrivateReluContext& c, const plan::NodeApproximation& a,
              const EncryptedTensor& x, std::size_t level, const model::Node& n, EncryptedTensor& y,
              std::span<const std::int64_t> outputs, std::size_t chunk, GroupId group) {
  const auto& p = std::get<model::PoolParams>(n.params);
  const model::WindowIndexer win(x.shape, y.shape, p.kernel, p.strides, p.dilations, p.pads_begin, p.pads_end);
  auto zero = run.zero_ct(level, x.scale);
  for (std::size_t c0 = 0; c0 < outputs.size(); c0 += chunk) {
    const std::span<const std::int64_t> part(outputs.data() + c0, std::min(chunk, outputs.size() - c0));
    // Per output: its taps' input elements (a null ciphertext is the exact zero).
    std::vector<std::vector<std::int64_t>> taps(part.size());
    for (std::size_t i = 0; i < part.size(); ++i) {
      const std::int64_t ch = part[i] / win.out_size, os = part[i] % win.out_size;
      std::array<std::int64_t, model::kMaxSpatialDims> base;
      win.origin(os, base);
      for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
        const std::int64_t off = win.input_offset(base, kp);
        if (off >= 0) taps[i].push_back(ch * win.in_size + off);
      }
      if (taps[i].empty()) throw model::ModelError(model::node_label(n) + ": a pooling window covers only padding");
    }
    // The first tree level reads the inputs (with their factors); later ones the maxes.
    std::vector<std::vector<ckks::Ciphertext>> cur(part.size());
    std::vector<std::vector<double>> fac(part.size());
    for (std::size_t i = 0; i < part.size(); ++i) {
      for (std::int64_t e : taps[i]) {
        ckks::Ciphertext tmp;
        const auto& src = x.cts[static_cast<std::size_t>(e)];
        ckks::Ciphertext v = run.be.expanded(src ? *src : *zero, tmp);
        if (v.level() > level) run.eval.mod_switch_to_inplace(v, level);
        cur[i].push_back(std::move(v));
        fac[i].push_back(src ? x.factor_at(e) : 1.0);
      }
    }
    for (;;) {
      std::size_t widest = 0;
      for (const auto& w : cur) widest = std::max(widest, w.size());
      if (widest <= 1) break;
      std::vector<const ckks::Ciphertext*> pa, pb;
      std::vector<double> fa, fb;
      std::vector<std::size_t> pairs(part.size());  // pairs of window i
      for (std::size_t i = 0; i < part.size(); ++i) {
        const std::size_t m = cur[i].size();
        pairs[i] = (m + 1) / 2;
        for (std::size_t j = 0; j < pairs[i]; ++j) {
          const std::size_t u = 2 * j, v = std::min(2 * j + 1, m - 1);  // an odd last tap: max(t, t)
          pa.push_back(&cur[i][u]);
          pb.push_back(&cur[i][v]);
          fa.push_back(fac[i][u]);
          fb.push_back(fac[i][v]);
        }
      }
      auto maxes = private_max(pa, pb, *a.max, c, nullptr, fa, fb);
      std::size_t k = 0;
      for (std::size_t i = 0; i < part.size(); ++i) {
        std::vector<ckks::Ciphertext> next;
        for (std::size_t j = 0; j < pairs[i]; ++j) next.push_back(std::move(maxes[k++]));
        cur[i] = std::move(next);
        fac[i].assign(cur[i].size(), 1.0);
      }
    }
    std::vector<ckks::Ciphertext> out(part.size());
    for (std::size_t i = 0; i < part.size(); ++i) out[i] = std::move(cur[i][0]);
    std::vector<double> f(part.size());
    for (std::size_t i = 0; i < part.size(); ++i) f[i] = fac[i][0];
    if (a.relu) {
      std::vector<const ckks::Ciphertext*> ptrs;
      for (const auto& v : out) ptrs.push_back(&v);
      out = private_relu(ptrs, *a.relu, c, nullptr, f);
      std::fill(f.begin(), f.end(), 1.0);
    }
    refresh_into(run, client, c, out, part, y, group, f);  // a one-tap window keeps its input's factor
  }
}

}  // namespace

void run_private_step(RunState& run, StepIO& s) {
  const auto it = run.plan.private_approximations.find(static_cast<std::size_t>(run.node));
  if (it == run.plan.private_approximations.end() || !run.public_key_encryptor) {
    throw std::logic_error(model::node_label(s.n) + ": the model-private plan has no approximation for this node");
  }
  const plan::NodeApproximation& a = it->second;
  const EncryptedTensor& x = *first_input(s);
  const auto level = static_cast<std::size_t>(s.np.input_level);
  check_input_levels(s, level);
  MeteredClient client(run);
  const PrivateReluContext c{&run.eval, run.be.relin, run.public_key_encryptor, &client,
                             run.plan.parameters.refresh_mask_bits, run.node, s.round_layer, run.scale(),
                             run.plan.refresh_floor};
  // Chunks of the plan's items: the rounds and windows the schedule announces.
  const auto chunk = static_cast<std::size_t>(std::max<std::int64_t>(1, s.np.round_items));
  if (s.st.first) s.y = fresh_output(run, s.y_shape);
  switch (s.np.kind) {
    case plan::NodeKind::Relu:
    case plan::NodeKind::Clip:
    case plan::NodeKind::LeakyRelu:
      if (!a.relu) throw std::logic_error(model::node_label(s.n) + ": no Relu approximation planned");
      relu(run, client, c, *a.relu, plan::relu_combination(s.n), x, level, s.y, s.elements, chunk, s.group,
           model::node_label(s.n));
      break;
    case plan::NodeKind::MaxPool:
      if (!a.max) throw std::logic_error(model::node_label(s.n) + ": no max approximation planned");
      max_pool(run, client, c, a, x, level, s.n, s.y, s.elements, chunk, s.group);
      break;
    default: throw std::logic_error(model::node_label(s.n) + ": not evaluated in the model-private mode");
  }
}

}  // namespace heinfer::runtime::steps
