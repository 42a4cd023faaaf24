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

/// The lowest level whose modulus carries a refresh of `bits`.
std::size_t refresh_floor(const ckks::CKKSContext& ctx, int bits) {
  for (std::size_t l = 0; l <= ctx.max_level(); ++l) {
    if (ckks::refresh_fits(ctx, l, bits)) return l;
  }
  throw std::invalid_argument("private_relu: no level of the parameters carries a refresh mask of " +
                              std::to_string(bits) + " bits");
}

}  // namespace

std::vector<ckks::Ciphertext> private_relu(std::span<const ckks::Ciphertext* const> x,
                                           const plan::ReluApproximation& r, const PrivateReluContext& c,
                                           PrivateReluStats* stats) {
  if (!c.evaluator || !c.relin_keys || !c.public_key_encryptor || !c.client) {
    throw std::invalid_argument("private_relu: the evaluator, keys and client are all needed");
  }
  const ckks::Evaluator& ev = *c.evaluator;
  const ckks::CKKSContext& ctx = ev.context();
  const std::size_t floor = refresh_floor(ctx, c.mask_bits);
  if (ctx.max_level() < floor + 5) {
    throw std::invalid_argument("private_relu: " + std::to_string(ctx.max_level() + 1) +
                                " levels leave no room for the normalization, a composition (3 levels) and the final "
                                "product above the refresh level " + std::to_string(floor));
  }
  const std::size_t n = x.size();
  if (n == 0) return {};
  for (const ckks::Ciphertext* v : x) {  // one level, scale and shape: the loops below assume it
    if (!v || v->size() != 2 || v->level() != x.front()->level() || v->scale() != x.front()->scale()) {
      throw std::invalid_argument("private_relu: the inputs must be ciphertexts of size 2 at one level and scale");
    }
  }
  if (x.front()->level() < floor) {
    throw std::invalid_argument("private_relu: the input is at level " + std::to_string(x.front()->level()) +
                                ", below the lowest level a refresh can carry (" + std::to_string(floor) + ")");
  }
  // An exception must not leave an OpenMP region (std::terminate): each element's error
  // is kept and the first is thrown after the loop.
  std::vector<std::string> errors(n);
  auto for_each = [&](auto&& body) {
#pragma omp parallel for schedule(dynamic, 1)
    for (std::size_t i = 0; i < n; ++i) {
      try {
        body(i);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    for (const std::string& e : errors) {
      if (!e.empty()) throw std::runtime_error("layer '" + c.layer + "': " + e);
    }
  };
  // u: the working ciphertexts refreshed together (z: the sign's iterate; u = x/B).
  std::vector<ckks::Ciphertext> u(n), z;
  for (std::size_t i = 0; i < n; ++i) u[i] = *x[i];
  // One round for every ciphertext of the given tensors, all taken down to the floor
  // first: the fewest limbs on the wire and one level per round, as a schedule announces.
  auto refresh = [&](std::initializer_list<std::vector<ckks::Ciphertext>*> tensors) {
    std::vector<const ckks::Ciphertext*> ptrs;
    for (auto* t : tensors) {
      for (auto& v : *t) {
        ev.mod_switch_to_inplace(v, floor);
        ptrs.push_back(&v);
      }
    }
    std::vector<ckks::Ciphertext> fresh =
        blind_refresh_round(*c.client, ptrs, c.mask_bits, *c.public_key_encryptor, ctx, c.node, c.layer);
    std::size_t k = 0;
    for (auto* t : tensors) {
      for (auto& v : *t) v = std::move(fresh[k++]);
    }
    if (stats) {
      ++stats->refresh_rounds;
      stats->refreshed_ciphertexts += static_cast<std::int64_t>(ptrs.size());
    }
  };
  // u = x/B in one level, at x's scale: the composite then works on [-1, 1] with its own
  // coefficients (folding 1/B into them instead loses the small terms' precision against
  // powers of B: measured 0.8 of error at B = 8).
  bool u_fresh = false;  // u refreshed to the top: at or above z's level from then on
  if (u.front().level() < floor + 1) {
    refresh({&u});
    u_fresh = true;
  }
  for_each([&](std::size_t i) {
    ckks::Ciphertext v;
    ckks::multiply_scalar_to_scale(ev, u[i], 1.0 / r.bound, u[i].scale(), v);
    u[i] = std::move(v);
  });
  z = u;
  const int total = r.sign.compositions();
  for (int k = 0; k < total; ++k) {
    const plan::OddSeptic& p = k < r.sign.g_count ? plan::kSignG3 : plan::kSignF3;
    // The last composition also leaves a level for u·p above the floor.
    const std::size_t need = floor + 3 + (k + 1 == total ? 1 : 0);
    if (z.front().level() < need) {
      // u rides along the first time: the final product needs it at z's level.
      if (u_fresh) {
        refresh({&z});
      } else {
        refresh({&z, &u});
        u_fresh = true;
      }
    }
    for_each([&](std::size_t i) {
      ckks::Ciphertext out;
      ckks::evaluate_odd_septic(ev, z[i], p.c, *c.relin_keys, out);
      z[i] = std::move(out);
    });
    if (stats) stats->products += 5 * static_cast<std::int64_t>(n);
  }
  // y = (B/2)·u·p + (B/2)·u, one level below p. The factor B/2 of the product goes into
  // its scale (free: the integer is unchanged, the value it denotes is B/2 times larger);
  // (B/2)·u is encoded to land on that scale.
  std::vector<ckks::Ciphertext> y(n);
  for_each([&](std::size_t i) {
    ckks::Ciphertext ul = u[i];
    ev.mod_switch_to_inplace(ul, z[i].level());
    ckks::Ciphertext prod, half;
    ckks::multiply_rescale(ev, ul, z[i], *c.relin_keys, prod);
    prod.set_scale(prod.scale() * 2.0 / r.bound);
    ckks::multiply_scalar_to_scale(ev, ul, r.bound / 2.0, prod.scale(), half);
    ev.add(prod, half, y[i]);
  });
  if (stats) stats->products += static_cast<std::int64_t>(n);
  return y;
}

}  // namespace heinfer::runtime
