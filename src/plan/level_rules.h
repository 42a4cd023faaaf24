// The level rules of encrypted execution, in one place: which level every node reads its
// inputs at and produces its output at, where it rescales, and which inputs it first
// brings to scale Δ. Parameter selection (how many levels the chain needs), the plan
// (the levels the executor runs at and stores tensors at) and the footprint read these;
// nothing else decides a level.
//
// Levels are counted here as depth: levels consumed since the last (re-)encryption, so
// that the rules hold before the modulus chain is chosen; a ciphertext at depth d sits at
// level L - d of a chain with L rescaling primes.
//
// The rules (lazy rescaling and depth-aware encoding, nGraph-HE2, Boemer et al., WAHC
// 2019, §3; client-aided layers restart at the top level, ibid. §4):
//  - graph inputs are fresh: depth 0, scale Δ, no pending factors;
//  - a node reads all its encrypted inputs at their deepest depth (modulus switching in
//    the NTT domain drops limbs); with several inputs, one whose scale is not Δ (a
//    square's output) is first brought to Δ (one multiply-accumulate and rescale: +1),
//    which also applies its pending factors;
//  - data movement keeps depth, factors and scale;
//  - a linear node rescales (+1) when some weight is outside {-1, 0, 1} or an input
//    carries pending unmasking factors (they are folded into the weights); its output is
//    at scale Δ when it rescales, else at its input's scale;
//  - a square adds one depth and leaves a scale other than Δ; factors pass through;
//  - lazy relinearization with the rescale (nGraph-HE2 §3): a square whose output is read
//    only by linear nodes with one encrypted input (directly or through relayouts:
//    Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Identity, Dropout)
//    that rescale anyway and produce at most half as many outputs (a dense layer after
//    a square activation) keeps its products as three unrescaled polynomials (depth +0);
//    those readers relinearize their outputs and rescale twice (+2), so the depth is
//    that of the eager rule and relinearizations fall to the readers' output count;
//  - Relu and MaxPool rounds return fresh top-level ciphertexts (depth 0) with pending
//    factors; a MaxPool input with pending factors is materialized first (+1); a Relu
//    whose only reader is a MaxPool is fused into its round (no step of its own);
//  - Clip / LeakyRelu fold pending factors into their windows and only bring a scale
//    other than Δ to Δ first (+1); they recombine the fresh round results with one
//    rescale, at the input depth when they read x (LeakyRelu, Clip without a lower
//    bound), else at the top level; Clip(-inf, inf) is the identity;
//  - a final Softmax is applied by the client after decryption;
//  - with per-sample masks (plan/parameters.h) every round (Relu, MaxPool, Clip,
//    LeakyRelu) returns fresh ciphertexts that are unmasked with one plaintext product
//    and rescale: depth 1 with pending factors; Clip / LeakyRelu then read only the
//    fresh results (x is returned by the client, masked), so x needs no scale Δ.
#pragma once

#include <vector>

#include "model/graph.h"
#include "plan/node_kind.h"
#include "plan/parameters.h"

namespace heinfer::plan {

/// The state of one encrypted tensor.
struct TensorState {
  int depth = 0;          ///< levels consumed since the last (re-)encryption
  bool factors = false;   ///< may carry pending unmasking factors (true value = decoded · f)
  bool at_delta = true;   ///< its scale is exactly Δ (false after a square)
  bool product = false;   ///< a deferred square: three polynomials, not rescaled
};

/// The level decisions of one node.
struct NodeLevels {
  NodeKind kind = NodeKind::Linear;
  int input_depth = 0;    ///< depth the node computes on (after the +1 of materialized inputs)
  int output_depth = 0;   ///< depth of its output; -1 for a final Softmax (plaintext)
  bool rescale = false;   ///< one rescale per output (linear, Clip/LeakyRelu recombination)
  /// Square: the products stay three polynomials, not rescaled (the rules above).
  bool deferred_product = false;
  /// Linear reading a deferred product: relinearizes its outputs, rescales them twice.
  bool rescale_twice = false;
  /// Per entry of Node::inputs: this encrypted input has its pending factors applied and
  /// its scale brought to Δ first (one level, into a copy).
  std::vector<bool> materialized;
  /// Clip/LeakyRelu: whether the recombination reads x (LeakyRelu, Clip without a lower
  /// bound), and its depth (the input depth, or 0: the top level).
  bool combines_input = false;
  int combine_depth = 0;
  bool identity = false;  ///< Clip(-inf, inf): shares its input
};

struct LevelRules {
  std::vector<NodeLevels> nodes;     ///< parallel to Graph::nodes
  std::vector<TensorState> tensors;  ///< parallel to Graph::tensors (constants: defaults)
};

/// Depth of a client round's output: 0 with per-window masks (the unmasking factors fold
/// into the next scalar weights), 1 with per-sample masks (a plaintext multiply by the
/// per-slot factors).
inline int round_output_depth(RoundMasks masks) { return masks == RoundMasks::PerSample ? 1 : 0; }

/// Applies the rules (file comment) to a prepared graph. In the model-private mode
/// (`privacy`), Clip and LeakyRelu are evaluated on the server like Relu: read at their
/// input's depth with its pending factors, their output refreshed to a fresh depth with
/// pending factors. Throws model::ModelError for unsupported nodes (node_kind) and for a
/// node without an encrypted input.
LevelRules level_rules(const model::Graph& g, RoundMasks masks = RoundMasks::PerWindow,
                       Privacy privacy = Privacy::Activations);

}  // namespace heinfer::plan
