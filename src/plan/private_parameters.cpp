#include "plan/private_parameters.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ckks/security.h"
#include "plan/private_approximation.h"

namespace heinfer::plan {
namespace {

int sum(const std::vector<int>& a) {
  int s = 0;
  for (int b : a) s += b;
  return s;
}

}  // namespace

int private_coefficient_bits(const model::Graph& g, const Parameters& plan) {
  double largest = 2.0;
  for (const auto& [k, a] : model_private_approximations(g, plan.bounds, {plan.relative_error, 1.0})) {
    if (a.max) largest = std::max(largest, a.max->bound);
    if (a.relu) largest = std::max(largest, a.relu->bound);
  }
  return static_cast<int>(std::ceil(std::log2(plan.scale() * largest * 4.0)));
}

int refresh_floor_level(const std::vector<int>& coeff_bits, int mask_bits) {
  int certain = 0;
  for (std::size_t l = 0; l < coeff_bits.size(); ++l) {
    certain += coeff_bits[l] - 1;
    if (certain > mask_bits + 3) return static_cast<int>(l);
  }
  return -1;
}

void plan_private_chain(Parameters& plan, const std::vector<int>& base, int coefficient_bits, int hiding_bits) {
  plan.key_switching = true;
  int needed = 0;
  for (std::size_t n = 2048; n <= 65536; n *= 2) {
    const int mask_bits = coefficient_bits + hiding_bits + static_cast<int>(std::log2(static_cast<double>(n)));
    std::vector<int> coeff = base;
    // The floor, then floor + max(L, 5) levels above level 0.
    int floor = refresh_floor_level(coeff, mask_bits);
    while (floor < 0) {
      coeff.push_back(plan.scale_bits);
      floor = refresh_floor_level(coeff, mask_bits);
    }
    floor = std::max(floor, static_cast<int>(base.size()) - 1);
    const int top = floor + std::max(plan.needs.levels, 5);
    while (static_cast<int>(coeff.size()) < top + 1) coeff.push_back(plan.scale_bits);
    const int special_bits = *std::max_element(coeff.begin(), coeff.end());
    const int bound = ckks::max_log_qp_128(n);
    needed = sum(coeff) + special_bits;
    if (needed > bound) continue;
    // As many special primes as the bound admits (at most one per limb): a key switch
    // then cuts a ciphertext into ceil(limbs / K) digits, not one per limb.
    const int k = std::min(static_cast<int>(coeff.size()), (bound - sum(coeff)) / special_bits);
    plan.params = ckks::EncryptionParameters(n, coeff, std::vector<int>(static_cast<std::size_t>(k), special_bits));
    plan.refresh_mask_bits = mask_bits;
    return;
  }
  throw std::invalid_argument("parameter selection (model-private mode): the chain needs " + std::to_string(needed) +
                              " bits with the special prime at N = 65536, beyond its 128-bit bound");
}

int output_flood_bits(double scale, double bound, double max_factor, std::size_t n, double log2_q) {
  constexpr int kOutputPrecisionBits = 16;  // flooding error below 2^-16 of the output range
  const double room = std::log2(scale * bound / (max_factor * std::sqrt(static_cast<double>(n))));
  int f = std::isfinite(room) ? static_cast<int>(std::floor(room)) - kOutputPrecisionBits : 1;
  f = std::min(f, static_cast<int>(std::floor(log2_q)) - 4);
  return std::max(f, 1);
}

}  // namespace heinfer::plan
