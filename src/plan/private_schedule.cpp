#include "plan/private_schedule.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ckks/blind_refresh.h"
#include "ckks/sizes.h"
#include "plan/private_approximation.h"

namespace heinfer::plan {

int PrivateLevelWalk::rounds() const {
  return (refresh_input ? 1 : 0) + static_cast<int>(std::count(refresh_before.begin(), refresh_before.end(), true));
}

std::int64_t PrivateLevelWalk::windows(int inputs, int riders) const {
  std::int64_t w = refresh_input ? inputs : 0;
  bool first = true;
  for (bool r : refresh_before) {
    if (!r) continue;
    w += first ? 1 + riders : 1;
    first = false;
  }
  return w;
}

PrivateLevelWalk private_level_walk(int input_level, int floor, int top, int compositions) {
  if (top < floor + 5) {
    throw std::invalid_argument("private Relu: " + std::to_string(top + 1) +
                                " levels leave no room for the normalization, a composition (3 levels) and the "
                                "final product above the refresh level " + std::to_string(floor));
  }
  if (input_level < floor || input_level > top) {
    throw std::invalid_argument("private Relu: the input is at level " + std::to_string(input_level) +
                                ", outside the levels a refresh can carry [" + std::to_string(floor) + ", " +
                                std::to_string(top) + "]");
  }
  PrivateLevelWalk w;
  w.refresh_input = input_level < floor + 1;
  int z = (w.refresh_input ? top : input_level) - 1;  // u
  for (int k = 0; k < compositions; ++k) {
    const int need = floor + 3 + (k + 1 == compositions ? 1 : 0);
    w.refresh_before.push_back(z < need);
    if (z < need) z = top;
    z -= 3;
  }
  w.output_level = z - 1;
  return w;
}

void plan_private_rounds(const model::Graph& g, EncryptedPlan& p) {
  const int top = p.max_level, floor = p.refresh_floor;
  const std::int64_t ct_top = ckks::ciphertext_bytes(p.parameters.params.poly_modulus_degree(), top);
  for (const auto& [k, a] : p.private_approximations) {
    NodePlan& np = p.nodes[k];
    if (!a.max && !a.relu) continue;  // a deferred Relu: its MaxPool applies it
    std::int64_t taps = 1, windows = 0;
    int rounds = 0, level = np.input_level;
    if (np.kind == NodeKind::MaxPool) {
      if (!a.max) throw std::logic_error(model::node_label(g.nodes[k]) + ": no max approximation planned");
      for (std::int64_t kk : std::get<model::PoolParams>(g.nodes[k].params).kernel) taps *= kk;
      // Tree levels while a window has more than one value: pairs ceil(m / 2) each.
      for (std::int64_t m = taps; m > 1; m = (m + 1) / 2) {
        const PrivateLevelWalk w = private_level_walk(level, floor, top, a.max->sign.compositions());
        windows += (m + 1) / 2 * w.windows(2, 2);
        rounds += w.rounds();
        level = w.output_level;
      }
    }
    if (a.relu) {  // one evaluation per term of a Clip or LeakyRelu, in the same rounds
      const PrivateLevelWalk w = private_level_walk(level, floor, top, a.relu->sign.compositions());
      const auto terms = static_cast<std::int64_t>(
          np.kind == NodeKind::MaxPool ? 1 : relu_combination(g.nodes[k]).terms.size());
      windows += terms * w.windows(1, 1);
      rounds += w.rounds();
    }
    np.round_level = floor;
    np.round_window_size = 1;
    np.round_bound = ckks::refresh_coefficient_limit(p.parameters.refresh_mask_bits);
    np.round_ciphertexts = np.round_replies = (windows + 1) * np.output_ciphertexts;  // + the output's refresh
    np.round_signed_value = false;
    np.round_fused_relu = false;
    np.round_items = std::max<std::int64_t>(1, p.options.tile_bytes / (8 * taps * ct_top));
    np.rounds_per_chunk = rounds + 1;
  }
}

}  // namespace heinfer::plan
