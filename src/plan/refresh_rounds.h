// Refresh points for models whose chain of levels between client rounds is too long for
// any secure ring (products on the main path: SiLU, HardSwish and squeeze-and-excitation
// gates in EfficientNet and MobileNetV3). Where a node would compute deeper than a budget,
// the planner refreshes its deepest input with an exact identity built from the masked
// ReLU round, x = Relu(x) - Relu(-x): both rounds return fresh top-level ciphertexts, and
// the subtraction folds their pending unmasking factors (one level). The client sees what
// a ReLU round shows (docs/security.md, claims 1 and 7: the values up to the window's mask),
// twice per refreshed tensor; the model stays as the server's operator wrote it.
#pragma once

#include <string>
#include <vector>

#include "model/graph.h"
#include "plan/parameters.h"

namespace heinfer::plan {

/// Depth budget when refresh points are needed: 10 levels of 30 bits with a 60-bit q_0
/// and special prime fit N = 16384 at 128-bit security (420 of 438 bits).
inline constexpr int kRefreshDepth = 10;

/// Levels above which a model gets refresh points: the chain would no longer fit N =
/// 32768 (881 bits) with 30-bit rescaling primes.
inline constexpr int kMaxDepthWithoutRefresh = 26;

/// The refresh points inserted into a graph.
struct RefreshPoints {
  int two_round = 0;    ///< x = Relu(x) - Relu(-x): two masked rounds each
  int nonnegative = 0;  ///< Relu on a non-negative tensor: one masked round each
  int total() const { return two_round + nonnegative; }
  /// One line for the user ("" when none): what was inserted and why.
  std::string describe() const;
};

/// When the level rules (plan/level_rules.h) give `g` more than kMaxDepthWithoutRefresh
/// levels, inserts refresh points (file comment) until no node computes deeper than
/// kRefreshDepth; otherwise leaves g unchanged. Run on a prepared graph before
/// calibration (the new tensors need ranges). Throws model::ModelError when a single
/// node needs more than the budget on fresh inputs.
RefreshPoints insert_refresh_rounds(model::Graph& g, RoundMasks masks);

/// Whether every element of t is >= 0 for every input, by construction: the output of a
/// Relu, of a Clip with min >= 0, or of data movement, MaxPool, AveragePool or
/// GlobalAveragePool (non-negative weights) of such a tensor. Graph inputs: no.
std::vector<bool> nonnegative_tensors(const model::Graph& g);

/// Lowers the deepest depth of `g` one level at a time while every node that computes
/// at that depth is a linear node whose deepest encrypted input t (deeper than a
/// round's output: round_output_depth) is
/// non-negative: a Relu inserted on t is then the identity, and its masked round returns
/// t fresh at the top level (depth 0, pending factors folded by the node). One round per
/// refreshed tensor, where Relu(x) - Relu(-x) needs two and a level. ResNet's
/// GlobalAveragePool -> Flatten -> Gemm is the case: one round of C ciphertexts instead
/// of a second level for every ciphertext of the run. Returns the number inserted.
int insert_nonnegative_refreshes(model::Graph& g, RoundMasks masks);

/// plan_parameters for `g` with the non-negative refreshes where they pay, given the
/// calibrated `ranges` of g (a refresh's output has its input's range). One level less
/// moves masked values to level 0 (q_0 grows by the mask's bits), so the refreshes are
/// kept only when the chosen parameters are cheaper: fewer ring elements per batch
/// (N times the limbs at the top level), or as many but fewer stored words per ciphertext
/// with `limb_words` = 32 (limbs of primes below 2^32 in one word, others in two).
/// Replaces g by the refreshed graph when it keeps them and sets `*inserted` to their
/// count. Throws as plan_parameters when neither graph has parameters.
Parameters plan_with_refreshes(model::Graph& g, const std::vector<double>& ranges, const ParameterOptions& o,
                               int limb_words = 64, int* inserted = nullptr);

}  // namespace heinfer::plan
