#include "runtime/encrypted_backend.h"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <stdexcept>
#include <string>

#include "ring/poly_arith.h"
#include "ckks/scalar_encoding.h"
#include "ring/multi_dot.h"

namespace heinfer::runtime {

bool EncryptedTensor::has_factors() const {
  return std::any_of(factor.begin(), factor.end(), [](double f) { return f != 1.0; });
}


EncryptedBackend::Acc EncryptedBackend::start(Tensor& /*y*/, std::int64_t /*e*/) const { return {}; }

void EncryptedBackend::mac(Acc& a, const Tensor& x, std::int64_t e, double w) const {
  const auto& ct = x.cts[static_cast<std::size_t>(e)];
  if (!ct) return;  // exact zero
  a.cts.push_back(ct.get());
  a.weights.push_back(w * x.factor_at(e));
}

ckks::Ciphertext EncryptedBackend::constant(double c, std::size_t level, double scale) const {
  ckks::Ciphertext ct;
  ct.resize(eval->context().n(), 2, level);
  std::fill(ct.data().begin(), ct.data().end(), 0);
  ct.set_scale(scale);
  ct.set_ntt_form(true);
  add_constant(ct, c);
  return ct;
}

void EncryptedBackend::add_constant(ckks::Ciphertext& ct, double c) const {
  if (c == 0.0) return;
  if (packing == ckks::Packing::Complex) eval->add_scalar_packed_inplace(ct, c);
  else eval->add_scalar_inplace(ct, c);
}

const ckks::Ciphertext& EncryptedBackend::expanded(const ckks::Ciphertext& c, ckks::Ciphertext& tmp) const {
  if (!c.is_compact()) return c;
  tmp = c;
  tmp.expand(eval->context());
  return tmp;
}

const ckks::Ciphertext& EncryptedBackend::prepared(const ckks::Ciphertext& c, ckks::Ciphertext& tmp) const {
  if (c.level() < in_level) {
    throw std::logic_error("encrypted backend: an input at level " + std::to_string(c.level()) +
                           " is below the node's level " + std::to_string(in_level));
  }
  if (!c.is_compact() && c.level() == in_level) return c;
  tmp = c;
  tmp.expand(eval->context());
  if (tmp.level() > in_level) eval->mod_switch_to_inplace(tmp, in_level);
  return tmp;
}

double EncryptedBackend::weight_scale() const {
  const std::size_t drops = rescale_twice ? 2 : 1;
  if (in_level < drops) throw std::invalid_argument("out of levels: a rescale is needed at level 0");
  double w = target_scale / in_scale;
  for (std::size_t d = 0; d < drops; ++d) w *= static_cast<double>(eval->context().modulus(in_level - d).value);
  return w;
}

void EncryptedBackend::rescale_output(ckks::Ciphertext& sum, ckks::Ciphertext& out) const {
  if (sum.size() == 3) eval->relinearize_inplace(sum, *relin);
  // Out of place: the stored result holds exactly its limbs (an in-place rescale would
  // keep the dropped limb's memory, unaccounted by the store).
  if (!rescale_twice) return eval->rescale(sum, out);
  ckks::Ciphertext once;
  eval->rescale(sum, once);
  eval->rescale(once, out);
}

void EncryptedBackend::finish(Tensor& y, std::int64_t e, Acc& a) const {
  auto& out = y.cts[static_cast<std::size_t>(e)];
  if (rescale && deferred) {
    (*deferred)[static_cast<std::size_t>(tile ? tile->position(e) : e)] = std::move(a);
    return;
  }
  if (a.cts.empty()) {
    out = a.bias == 0.0 ? nullptr : std::make_shared<const ckks::Ciphertext>(constant(a.bias, y.level, y.scale));
    return;
  }
  std::vector<ckks::Ciphertext> tmp(a.cts.size());
  for (std::size_t k = 0; k < a.cts.size(); ++k) a.cts[k] = &prepared(*a.cts[k], tmp[k]);
  auto ct = std::make_shared<ckks::Ciphertext>();
  if (!rescale) {
    for (std::size_t k = 0; k < a.cts.size(); ++k) {
      const double w = a.weights[k];
      if (w != 1.0 && w != -1.0) throw std::logic_error("encrypted backend: weight outside {-1, 1} without rescale");
      if (k == 0) {
        if (w == 1.0) *ct = *a.cts[0];
        else eval->negate(*a.cts[0], *ct);
      } else if (w == 1.0) {
        eval->add_inplace(*ct, *a.cts[k]);
      } else {
        eval->sub_inplace(*ct, *a.cts[k]);
      }
    }
    add_constant(*ct, a.bias);
  } else {
    ckks::Ciphertext sum;
    eval->multiply_scalar_accumulate(std::span<const ckks::Ciphertext* const>(a.cts), a.weights,
                                     weight_scale(), sum);
    add_constant(sum, a.bias);
    rescale_output(sum, *ct);
  }
  out = std::move(ct);
}

void EncryptedBackend::flush(Tensor& y, std::vector<Acc>& accs) const {
  const ckks::CKKSContext& ctx = eval->context();
  const double weight_scale = this->weight_scale();
  const std::size_t n = ctx.n(), lq = in_level + 1;
  const auto outputs = static_cast<std::int64_t>(accs.size());
  // Compact (seeded or packed) inputs: expanded once per tile into temporaries, or taken from the
  // previous tile's expansions.
  ExpansionCache local;
  ExpansionCache& cache = expansions ? *expansions : local;
  {
    ExpansionCache needed;
    std::vector<const ckks::Ciphertext*> missing;
    for (const auto& a : accs) {
      for (const auto* c : a.cts) {
        if (!c->is_compact() || needed.count(c)) continue;
        // An entry is only valid for the same ciphertext: a streamed node keeps the
        // cache across bands while rows are freed, so an address may be reused by a
        // new ciphertext (its storage id differs).
        auto it = cache.find(c);
        const bool hit = it != cache.end() && it->second && it->second->storage_id() == c->storage_id() &&
                         it->second->level() == c->level();
        needed.emplace(c, hit ? it->second : nullptr);
        if (!hit) missing.push_back(c);
      }
    }
    std::vector<std::shared_ptr<const ckks::Ciphertext>> made(missing.size());
#pragma omp parallel for schedule(dynamic, 4)
    for (std::size_t i = 0; i < missing.size(); ++i) {
      auto e = std::make_shared<ckks::Ciphertext>(*missing[i]);
      e->expand(ctx);
      made[i] = std::move(e);
    }
    for (std::size_t i = 0; i < missing.size(); ++i) needed[missing[i]] = std::move(made[i]);
    cache = std::move(needed);
    if (!cache.empty()) {
      for (auto& a : accs) {
        for (auto& c : a.cts) {
          if (c->is_compact()) c = cache.at(c).get();
        }
      }
    }
  }
  // Encoded weights per output: residues[j][i * count + k]; skip outputs without terms.
  std::vector<std::vector<std::uint64_t>> residues(accs.size());
  std::vector<std::shared_ptr<ckks::Ciphertext>> out(accs.size());
  std::size_t size = 2;
  // Inputs of one output must agree (the plan guarantees it; checked before the parallel
  // loop, which must not throw).
  for (const auto& a : accs) {
    for (const ckks::Ciphertext* c : a.cts) {
      if (c->level() < in_level || c->scale() != a.cts[0]->scale() || c->size() != a.cts[0]->size()) {
        throw std::logic_error("encrypted backend: inputs of one output differ in level, scale or size");
      }
    }
  }
#pragma omp parallel for schedule(dynamic, 8)
  for (std::int64_t j = 0; j < outputs; ++j) {
    const Acc& a = accs[static_cast<std::size_t>(j)];
    if (a.cts.empty()) continue;
    const std::size_t count = a.cts.size();
    auto& r = residues[static_cast<std::size_t>(j)];
    r.resize(lq * count);
    std::vector<std::uint64_t> tmp(lq);
    for (std::size_t k = 0; k < count; ++k) {
      ckks::encode_scalar(ctx, a.weights[k], weight_scale, in_level, tmp.data());
      for (std::size_t i = 0; i < lq; ++i) r[i * count + k] = tmp[i];
    }
    auto ct = std::make_shared<ckks::Ciphertext>();
    ct->resize(n, a.cts[0]->size(), in_level);
    ct->set_scale(a.cts[0]->scale() * weight_scale);
    ct->set_ntt_form(true);
    out[static_cast<std::size_t>(j)] = std::move(ct);
  }
  for (const auto& a : accs) {
    if (!a.cts.empty()) size = std::max(size, a.cts[0]->size());
  }
  // Outputs reading the same input list (all outputs of a dense Gemm, the channels of a
  // convolution at one position) are evaluated together (ring::detail::multi_dot). A
  // residual-fused convolution adds one term of its own to each output (ResNet's Add, the
  // kernel's last term): outputs whose lists differ only there are grouped by the rest,
  // and each member's own term joins its sums in the same kernel (multi_dot's `own`).
  struct Group {
    std::vector<std::size_t> members;
    std::size_t shared = 0;  ///< leading terms read by every member
  };
  std::vector<Group> groups;
  {
    std::map<std::vector<const ckks::Ciphertext*>, std::size_t> index, prefixes;
    std::vector<std::vector<std::size_t>> whole;
    for (std::size_t j = 0; j < accs.size(); ++j) {
      if (accs[j].cts.empty()) continue;
      auto [it, fresh] = index.try_emplace(accs[j].cts, whole.size());
      if (fresh) whole.emplace_back();
      whole[it->second].push_back(j);
    }
    for (auto& members : whole) {
      const auto& cts = accs[members[0]].cts;
      if (members.size() > 1 || cts.size() < 2) {
        groups.push_back({std::move(members), cts.size()});
        continue;
      }
      auto [it, fresh] = prefixes.try_emplace(std::vector(cts.begin(), cts.end() - 1), groups.size());
      if (fresh) groups.push_back({{}, cts.size() - 1});
      groups[it->second].members.push_back(members[0]);
    }
    for (auto& g : groups) {
      if (g.members.size() == 1) g.shared = accs[g.members[0]].cts.size();
    }
  }
  constexpr std::size_t kTile = 64;
  const std::size_t tiles = (n + kTile - 1) / kTile;
  const auto tasks = static_cast<std::int64_t>(size * lq * tiles);
#pragma omp parallel
  {
    std::vector<const std::uint64_t*> ptrs, scal, own;
    std::vector<std::uint64_t*> outp;
    std::vector<std::uint64_t> own_scal;
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t t = 0; t < tasks; ++t) {
      const std::size_t tile = static_cast<std::size_t>(t) % tiles;
      const std::size_t pl = static_cast<std::size_t>(t) / tiles;  // p * lq + i
      const std::size_t i = pl % lq;
      const std::size_t offset = pl * n + tile * kTile;
      const std::size_t len = std::min(kTile, n - tile * kTile);
      const ring::Modulus& q = ctx.modulus(i);
      for (std::size_t g = 0; g < groups.size(); ++g) {
        const auto& members = groups[g].members;
        const std::size_t shared = groups[g].shared;
        const Acc& a = accs[members[0]];
        if (pl / lq >= a.cts[0]->size()) continue;
        // The next group's input lines are fetched while this one computes: a
        // convolution's groups (25 inputs of 8 lines) are too short for the hardware
        // prefetchers and the kernel's own pass prefetch (conv of CryptoNets on Zen 3:
        // median 2.03 -> 1.82 s).
        if (g + 1 < groups.size()) {
          const Group& next = groups[g + 1];
          for (const ckks::Ciphertext* c : accs[next.members[0]].cts) {
            if (pl / lq < c->size()) ring::detail::prefetch(c->limb(pl / lq, i) + tile * kTile, len);
          }
          for (std::size_t m = 1; m < next.members.size(); ++m) {
            const Acc& b = accs[next.members[m]];
            if (b.cts.size() > next.shared && pl / lq < b.cts[next.shared]->size()) {
              ring::detail::prefetch(b.cts[next.shared]->limb(pl / lq, i) + tile * kTile, len);
            }
          }
        }
        ptrs.resize(shared);
        // Inputs above the node's level are read through their first limbs.
        for (std::size_t k = 0; k < shared; ++k) ptrs[k] = a.cts[k]->limb(pl / lq, i) + tile * kTile;
        scal.resize(members.size());
        outp.resize(members.size());
        for (std::size_t m = 0; m < members.size(); ++m) {
          scal[m] = residues[members[m]].data() + i * accs[members[m]].cts.size();
          outp[m] = out[members[m]]->data().data() + offset;
        }
        if (a.cts.size() == shared) {  // no member has a term of its own
          ring::detail::multi_dot(ptrs.data(), shared, scal.data(), members.size(), outp.data(), len, q);
          continue;
        }
        own.resize(members.size());
        own_scal.resize(members.size());
        for (std::size_t m = 0; m < members.size(); ++m) {
          const Acc& b = accs[members[m]];
          own[m] = b.cts[shared]->limb(pl / lq, i) + tile * kTile;  // every member has one
          own_scal[m] = scal[m][shared];
        }
        ring::detail::multi_dot(ptrs.data(), shared, scal.data(), members.size(), outp.data(), len, q, own.data(),
                                own_scal.data());
      }
    }
  }
#pragma omp parallel for schedule(dynamic, 4)
  for (std::int64_t j = 0; j < outputs; ++j) {
    const Acc& a = accs[static_cast<std::size_t>(j)];
    auto& dst = y.cts[static_cast<std::size_t>(tile ? tile->at(j) : j)];
    if (a.cts.empty()) {
      dst = a.bias == 0.0 ? nullptr : std::make_shared<const ckks::Ciphertext>(constant(a.bias, y.level, y.scale));
      continue;
    }
    auto& sum = out[static_cast<std::size_t>(j)];
    add_constant(*sum, a.bias);
    auto ct = std::make_shared<ckks::Ciphertext>();
    rescale_output(*sum, *ct);
    sum.reset();
    dst = std::move(ct);
  }
}

void EncryptedBackend::copy(Tensor& y, std::int64_t eo, const Tensor& x, std::int64_t ei) const {
  y.cts[static_cast<std::size_t>(eo)] = x.cts[static_cast<std::size_t>(ei)];
  if (!y.factor.empty()) y.factor[static_cast<std::size_t>(eo)] = x.factor_at(ei);
}

void EncryptedBackend::fill(Tensor& y, std::int64_t e, double c) const {
  y.cts[static_cast<std::size_t>(e)] =
      c == 0.0 ? nullptr : std::make_shared<const ckks::Ciphertext>(constant(c, y.level, y.scale));
  if (!y.factor.empty()) y.factor[static_cast<std::size_t>(e)] = 1.0;
}

void EncryptedBackend::multiply(Tensor& y, std::int64_t eo, const Tensor& a, std::int64_t ea, const Tensor& b,
                                std::int64_t eb) const {
  const auto& in_a = a.cts[static_cast<std::size_t>(ea)];
  const auto& in_b = b.cts[static_cast<std::size_t>(eb)];
  if (!y.factor.empty()) y.factor[static_cast<std::size_t>(eo)] = a.factor_at(ea) * b.factor_at(eb);
  if (!in_a || !in_b) {
    y.cts[static_cast<std::size_t>(eo)] = nullptr;
    return;
  }
  if (in_level == 0) throw std::invalid_argument("out of levels: a ciphertext product is needed at level 0");
  ckks::Ciphertext tmp_a, tmp_b;
  const ckks::Ciphertext& a_full = prepared(*in_a, tmp_a);
  const ckks::Ciphertext& b_full = in_a == in_b ? a_full : prepared(*in_b, tmp_b);
  auto ct = std::make_shared<ckks::Ciphertext>();
  if (defer_product) {
    if (packing == ckks::Packing::Complex) eval->multiply_packed(a_full, b_full, *galois, *ct);
    else eval->multiply(a_full, b_full, *ct);
    y.cts[static_cast<std::size_t>(eo)] = std::move(ct);
    return;
  }
  if (packing == ckks::Packing::Complex) eval->multiply_packed(a_full, b_full, *relin, *galois, *ct);
  else eval->multiply_relinearize(a_full, b_full, *relin, *ct);
  eval->rescale_inplace(*ct);
  y.cts[static_cast<std::size_t>(eo)] = std::move(ct);
}

}  // namespace heinfer::runtime
