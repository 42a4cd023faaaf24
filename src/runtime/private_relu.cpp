#include "runtime/private_relu.h"

#include <array>
#include <cmath>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "ckks/blind_refresh.h"
#include "ckks/odd_polynomial.h"
#include "runtime/blind_refresh_round.h"

namespace heinfer::runtime {
namespace {

using Cts = std::vector<ckks::Ciphertext>;

/// The working state of one private Relu or max over a list of ciphertexts: refresh
/// rounds at the floor and per-element loops that keep exceptions out of OpenMP.
class Evaluation {
 public:
  Evaluation(const PrivateReluContext& c, PrivateReluStats* stats) : c_(c), stats_(stats) {
    if (!c.evaluator || !c.relin_keys || !c.public_key_encryptor || !c.client) {
      throw std::invalid_argument("private Relu: the evaluator, keys and client are all needed");
    }
    floor_ = c.floor >= 0 ? static_cast<std::size_t>(c.floor) : refresh_floor(ctx(), c.mask_bits);
    if (!ckks::refresh_fits(ctx(), floor_, c.mask_bits)) {
      throw std::invalid_argument("private Relu: level " + std::to_string(floor_) + " cannot carry a refresh mask of " +
                                  std::to_string(c.mask_bits) + " bits");
    }
    (void)plan::private_level_walk(static_cast<int>(floor_), static_cast<int>(floor_), top(), 1);  // room above the floor
  }

  int top() const { return static_cast<int>(ctx().max_level()); }

  /// The walk of a Relu or max whose inputs are at `level` (plan/private_schedule.h).
  plan::PrivateLevelWalk walk(std::size_t level, int compositions) const {
    return plan::private_level_walk(static_cast<int>(level), static_cast<int>(floor_), top(), compositions);
  }

  const ckks::Evaluator& ev() const { return *c_.evaluator; }
  const ckks::CKKSContext& ctx() const { return c_.evaluator->context(); }
  std::size_t floor() const { return floor_; }

  /// Checks that the inputs are ciphertexts of size 2 at one level and scale, at or
  /// above the floor.
  void check_inputs(std::span<const ckks::Ciphertext* const> x) const {
    for (const ckks::Ciphertext* v : x) {
      if (!v || v->size() != 2 || v->level() != x.front()->level() || v->scale() != x.front()->scale()) {
        throw std::invalid_argument("private Relu: the inputs must be ciphertexts of size 2 at one level and scale");
      }
    }
    if (!x.empty() && x.front()->level() < floor_) {
      throw std::invalid_argument("private Relu: the input is at level " + std::to_string(x.front()->level()) +
                                  ", below the lowest level a refresh can carry (" + std::to_string(floor_) + ")");
    }
  }

  /// body(i) for i < n in parallel; the first error is thrown after the loop (an
  /// exception must not leave an OpenMP region).
  template <class Body>
  void for_each(std::size_t n, Body&& body) const {
    std::vector<std::string> errors(n);
#pragma omp parallel for schedule(dynamic, 1)
    for (std::size_t i = 0; i < n; ++i) {
      try {
        body(i);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    for (const std::string& e : errors) {
      if (!e.empty()) throw std::runtime_error("layer '" + c_.layer + "': " + e);
    }
  }

  /// One round for every ciphertext of the given lists, all taken down to the floor
  /// first: the fewest limbs on the wire and one level per round, as a schedule announces.
  void refresh(std::initializer_list<Cts*> lists) {
    std::vector<const ckks::Ciphertext*> ptrs;
    for (Cts* t : lists) {
      for (auto& v : *t) {
        ev().mod_switch_to_inplace(v, floor_);
        ptrs.push_back(&v);
      }
    }
    Cts fresh = blind_refresh_round(*c_.client, ptrs, c_.mask_bits, *c_.public_key_encryptor, ctx(), c_.node, c_.layer);
    std::size_t k = 0;
    for (Cts* t : lists) {
      for (auto& v : *t) v = std::move(fresh[k++]);
    }
    if (stats_) {
      ++stats_->refresh_rounds;
      stats_->refreshed_ciphertexts += static_cast<std::int64_t>(ptrs.size());
    }
  }

  /// y = w + (B/2)·u·p(u) (w empty: (B/2)·u), u and w at one level, at least the floor:
  /// the sign's compositions, with refreshes where levels run out.
  Cts blend(Cts u, Cts w, const plan::ReluApproximation& r, const plan::PrivateLevelWalk& walk) {
    const std::size_t n = u.size();
    const bool has_w = !w.empty();
    bool riders_fresh = false;  // u (and w) refreshed to the top: at or above z's level from then on
    Cts z = u;
    const int total = r.sign.compositions();
    for (int k = 0; k < total; ++k) {
      const plan::OddSeptic& p = k < r.sign.g_count ? plan::kSignG3 : plan::kSignF3;
      if (walk.refresh_before[static_cast<std::size_t>(k)]) {
        // u (and w) ride along the first time: the final product needs them at z's level.
        if (riders_fresh) refresh({&z});
        else if (has_w) refresh({&z, &u, &w});
        else refresh({&z, &u});
        riders_fresh = true;
      }
      if (z.front().level() < floor_ + 3) throw std::logic_error("private Relu: the level walk left no room");
      for_each(n, [&](std::size_t i) {
        ckks::Ciphertext out;
        ckks::evaluate_odd_septic(ev(), z[i], p.c, *c_.relin_keys, out);
        z[i] = std::move(out);
      });
      if (stats_) stats_->products += 5 * static_cast<std::int64_t>(n);
    }
    // y = (B/2)·u·p + w, one level below p. The factor B/2 of the product goes into its
    // scale (free: the integer is unchanged, the value it denotes is B/2 times larger);
    // w (or (B/2)·u) is encoded to land on that scale.
    Cts y(n);
    for_each(n, [&](std::size_t i) {
      ckks::Ciphertext ul = u[i];
      ev().mod_switch_to_inplace(ul, z[i].level());
      ckks::Ciphertext prod, lin;
      ckks::multiply_rescale(ev(), ul, z[i], *c_.relin_keys, prod);
      prod.set_scale(prod.scale() * 2.0 / r.bound);
      if (has_w) {
        ckks::Ciphertext wl = w[i];
        ev().mod_switch_to_inplace(wl, z[i].level());
        ckks::multiply_scalar_to_scale(ev(), wl, 1.0, prod.scale(), lin);
      } else {
        ckks::multiply_scalar_to_scale(ev(), ul, r.bound / 2.0, prod.scale(), lin);
      }
      ev().add(prod, lin, y[i]);
    });
    if (stats_) stats_->products += static_cast<std::int64_t>(n);
    return y;
  }

 private:
  const PrivateReluContext& c_;
  PrivateReluStats* stats_;
  std::size_t floor_ = 0;
};

double factor(std::span<const double> f, std::size_t i) { return f.empty() ? 1.0 : f[i]; }

void check_factors(std::span<const double> f, std::size_t n) {
  if (!f.empty() && f.size() != n) throw std::invalid_argument("private Relu: one pending factor (offset) per ciphertext");
}

}  // namespace

std::size_t refresh_floor(const ckks::CKKSContext& ctx, int bits) {
  for (std::size_t l = 0; l <= ctx.max_level(); ++l) {
    if (ckks::refresh_fits(ctx, l, bits)) return l;
  }
  throw std::invalid_argument("private Relu: no level of the parameters carries a refresh mask of " +
                              std::to_string(bits) + " bits");
}

std::vector<ckks::Ciphertext> private_relu(std::span<const ckks::Ciphertext* const> x,
                                           const plan::ReluApproximation& r, const PrivateReluContext& c,
                                           PrivateReluStats* stats, std::span<const double> factors,
                                           std::span<const double> offsets) {
  Evaluation e(c, stats);
  const std::size_t n = x.size();
  if (n == 0) return {};
  e.check_inputs(x);
  check_factors(factors, n);
  check_factors(offsets, n);
  Cts u(n);
  for (std::size_t i = 0; i < n; ++i) u[i] = *x[i];
  const plan::PrivateLevelWalk walk = e.walk(u.front().level(), r.sign.compositions());
  if (walk.refresh_input) e.refresh({&u});
  // u = f·x/B in one level, at x's scale: the composite then works on [-1, 1] with its
  // own coefficients (folding 1/B into them instead loses the small terms' precision
  // against powers of B: measured 0.8 of error at B = 8).
  e.for_each(n, [&](std::size_t i) {
    ckks::Ciphertext v;
    ckks::multiply_scalar_to_scale(e.ev(), u[i], factor(factors, i) / r.bound, c.scale > 0 ? c.scale : u[i].scale(), v);
    if (!offsets.empty() && offsets[i] != 0) e.ev().add_scalar_inplace(v, offsets[i] / r.bound);
    u[i] = std::move(v);
  });
  return e.blend(std::move(u), {}, r, walk);
}

std::vector<ckks::Ciphertext> private_max(std::span<const ckks::Ciphertext* const> a,
                                          std::span<const ckks::Ciphertext* const> b,
                                          const plan::ReluApproximation& r, const PrivateReluContext& c,
                                          PrivateReluStats* stats, std::span<const double> fa,
                                          std::span<const double> fb) {
  Evaluation e(c, stats);
  const std::size_t n = a.size();
  if (b.size() != n) throw std::invalid_argument("private max: two lists of different lengths");
  if (n == 0) return {};
  std::vector<const ckks::Ciphertext*> all(a.begin(), a.end());
  all.insert(all.end(), b.begin(), b.end());
  e.check_inputs(all);
  check_factors(fa, n);
  check_factors(fb, n);
  Cts xa(n), xb(n);
  for (std::size_t i = 0; i < n; ++i) {
    xa[i] = *a[i];
    xb[i] = *b[i];
  }
  const plan::PrivateLevelWalk walk = e.walk(xa.front().level(), r.sign.compositions());
  if (walk.refresh_input) e.refresh({&xa, &xb});
  // u = (f·a - g·b)/B and w = (f·a + g·b)/2, each two scalar products landing on a's
  // scale one level down.
  Cts u(n), w(n);
  e.for_each(n, [&](std::size_t i) {
    const double f = factor(fa, i), g = factor(fb, i), s = c.scale > 0 ? c.scale : xa[i].scale();
    ckks::Ciphertext p, q;
    ckks::multiply_scalar_to_scale(e.ev(), xa[i], f / r.bound, s, p);
    ckks::multiply_scalar_to_scale(e.ev(), xb[i], -g / r.bound, s, q);
    e.ev().add(p, q, u[i]);
    ckks::multiply_scalar_to_scale(e.ev(), xa[i], f / 2.0, s, p);
    ckks::multiply_scalar_to_scale(e.ev(), xb[i], g / 2.0, s, q);
    e.ev().add(p, q, w[i]);
  });
  return e.blend(std::move(u), std::move(w), r, walk);
}

}  // namespace heinfer::runtime
