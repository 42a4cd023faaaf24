// The blind refreshes of the model-private mode, known before the run: where one private
// Relu or max (runtime/private_relu.h) refreshes as its levels run out (the level walk
// the executor follows), and the rounds and windows each Relu and MaxPool node asks of
// the client (the round schedule a server announces, which a remote client enforces).
#pragma once

#include <cstdint>
#include <vector>

#include "model/graph.h"
#include "plan/encrypted_plan.h"

namespace heinfer::plan {

/// The levels of one private Relu or max over ciphertexts at `input_level`, with a
/// composite sign of `compositions` septic stages (3 levels each) and blind refreshes at
/// level `floor` that return at `top`:
///  - an input below floor + 1 is refreshed first;
///  - u = x/B (or (a - b)/B) costs one level;
///  - before composition k, a refresh of the iterate when it is below floor + 3 (+ 1 for
///    the last composition, whose result is multiplied by u once more); the first such
///    refresh also carries u (and a max's half-sum), which the final product needs at
///    the iterate's level;
///  - the result is one level below the last composition.
struct PrivateLevelWalk {
  bool refresh_input = false;
  std::vector<bool> refresh_before;  ///< per composition
  int output_level = 0;
  int rounds() const;  ///< refresh rounds of the walk
  /// Windows (refreshed ciphertexts) per evaluated Relu or max: `inputs` per input
  /// refresh (1 for a Relu, 2 for a max), then 1 + riders for the first refresh of the
  /// iterate (riders: 1 for a Relu, 2 for a max), 1 for each later one.
  std::int64_t windows(int inputs, int riders) const;
};

/// Throws std::invalid_argument when top < floor + 5 (no room for the normalization, a
/// composition and the final product above the floor) or input_level is outside
/// [floor, top].
PrivateLevelWalk private_level_walk(int input_level, int floor, int top, int compositions);

/// Sets, for every Relu, Clip, LeakyRelu and MaxPool node of a model-private plan (p.private_approximations
/// and p.refresh_floor set), the round fields of NodePlan from the walks: the level
/// (the floor), window size 1, the bound (ckks::refresh_coefficient_limit of the mask),
/// the windows of the node over all its rounds (a MaxPool: a tree of ceil(log2 taps)
/// levels of maxes, then the Relu it took over; a Clip or LeakyRelu: one Relu per term
/// of plan::relu_combination; then one refresh of each output), the
/// items per chunk (about eight top-level ciphertexts per window tap within the tile
/// bytes) and the refresh rounds per chunk.
void plan_private_rounds(const model::Graph& g, EncryptedPlan& p);

}  // namespace heinfer::plan
