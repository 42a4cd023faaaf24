// The encrypted kernel backend (runtime/backend.h concept) over EncryptedTensor, so the
// conv/gemm/pool/element-wise/data-movement kernels run on ciphertexts unchanged.
//
// Lazy rescaling (nGraph-HE2, Boemer et al., WAHC 2019): an accumulator collects
// (ciphertext, weight · pending factor) pairs and a bias; finish() does ONE
// Evaluator::multiply_scalar_accumulate (one modular reduction per coefficient), adds the
// bias at the product scale and does ONE rescale. Scale trick: weights are encoded at
//   weight_scale = Δ · q_l / s_in   (q_l: the prime the rescale drops, s_in: input scale)
// so every rescaled linear output has scale exactly Δ, whatever the input scale: tensors
// meeting in an Add always match. Nodes whose weights are all in {-1, 1} and whose inputs
// carry no pending factors (additions, Sub, Add of a constant) use ciphertext additions
// and consume no level.
//
// Inputs may be compact seeded ciphertexts (client-refreshed values kept at half size
// until used): every operation expands them into temporaries first (flush: once per
// distinct input of the tile).
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ckks/evaluator.h"
#include "ckks/keys.h"
#include "runtime/backend.h"
#include "runtime/encrypted_tensor.h"
#include "runtime/kernels/output_tile.h"

namespace heinfer::runtime {

struct EncryptedBackend {
  using Tensor = EncryptedTensor;
  struct Acc {
    std::vector<const ckks::Ciphertext*> cts;
    std::vector<double> weights;
    double bias = 0.0;
  };

  const ckks::Evaluator* eval = nullptr;
  const ckks::RelinKeys* relin = nullptr;
  const ckks::GaloisKeys* galois = nullptr;  ///< conjugation key (complex packing)
  ckks::Packing packing = ckks::Packing::Complex;
  /// Per node (set by the executor): whether finish() rescales, the input level and
  /// scale (all inputs of a node are brought to one level), and Δ.
  bool rescale = false;
  /// Whether add_const adds (false: a distributed rank's partial sum, whose constant
  /// terms rank 0 adds once).
  bool constants = true;
  /// Lazy relinearization (plan::NodePlan): multiply() leaves size-3 products without
  /// rescale; finish()/flush() relinearize size-3 sums and rescale twice.
  bool defer_product = false;
  bool rescale_twice = false;
  std::size_t in_level = 0;
  double in_scale = 1.0;
  double target_scale = 1.0;
  /// When set (rescaling nodes), finish() only records the accumulator here (index e)
  /// and flush() evaluates all outputs of the node at once (see flush).
  std::vector<Acc>* deferred = nullptr;
  /// When set, the node is produced for these output elements only, and `deferred` is
  /// indexed by tile position (kernels/output_tile.h).
  const kernels::OutputTile* tile = nullptr;
  /// Expansions of compact inputs kept from one flush() to the next (the tiles of one
  /// node share inputs: a band's channel blocks, overlapping windows); flush() keeps
  /// only the entries its own tile needs. Null: expansions live for one flush().
  using ExpansionCache = std::unordered_map<const ckks::Ciphertext*, std::shared_ptr<const ckks::Ciphertext>>;
  ExpansionCache* expansions = nullptr;

  Acc start(Tensor& y, std::int64_t e) const;
  void mac(Acc& a, const Tensor& x, std::int64_t e, double w) const;
  void add(Acc& a, const Tensor& x, std::int64_t e) const { mac(a, x, e, 1.0); }
  void sub(Acc& a, const Tensor& x, std::int64_t e) const { mac(a, x, e, -1.0); }
  void add_const(Acc& a, double c) const {
    if (constants) a.bias += c;
  }
  /// Stores y.cts[e] (at y.level, scale y.scale). Throws std::invalid_argument when a
  /// rescale is needed at level 0 or (no-rescale mode) a weight is not ±1.
  void finish(Tensor& y, std::int64_t e, Acc& a) const;
  void copy(Tensor& y, std::int64_t eo, const Tensor& x, std::int64_t ei) const;
  /// 0 -> nullptr; otherwise a trivial ciphertext (c1 = 0) of the public constant.
  void fill(Tensor& y, std::int64_t e, double c) const;
  /// y[eo] = a[ea] * b[eb]: real packing multiply_relinearize + rescale, complex
  /// multiply_packed + rescale (both operands brought to in_level first; the caller
  /// ensures equal scales); with defer_product, the size-3 product at in_level. Pending
  /// factors multiply and stay pending; a zero operand (nullptr) gives nullptr.
  void multiply(Tensor& y, std::int64_t eo, const Tensor& a, std::int64_t ea, const Tensor& b,
                std::int64_t eb) const;
  /// Every element operation is a polynomial operation: parallelize from 2 on.
  bool parallel(std::int64_t element_ops) const { return element_ops >= 2; }

  /// Evaluates the deferred accumulators of a rescaling node into y. For every
  /// (polynomial, limb, tile of 64 coefficients) task, all outputs are accumulated from
  /// the inputs' tiles while those stay in L2, and outputs reading the same input list
  /// (all outputs of a dense Gemm, the channels of a convolution at one position; with a
  /// fused residual, all but each output's last term) share each loaded input vector
  /// (detail::multi_dot, register-blocked over 4 outputs). The
  /// arithmetic is that of Evaluator::multiply_scalar_accumulate (one reduction per
  /// coefficient), with inputs read from memory once per node instead of once per
  /// output. Then the bias at the product scale and one rescale per output. Parallel
  /// over tasks, then over outputs. Throws std::invalid_argument at level 0. With a
  /// tile, accs[t] belongs to element tile->at(t).
  void flush(Tensor& y, std::vector<Acc>& accs) const;

  /// `c` itself, or (compact seeded) its expansion into `tmp`.
  const ckks::Ciphertext& expanded(const ckks::Ciphertext& c, ckks::Ciphertext& tmp) const;
  /// `c` expanded and at in_level (higher levels are mod-switched down), in `tmp` when
  /// it must change. Throws std::logic_error if c is below in_level.
  const ckks::Ciphertext& prepared(const ckks::Ciphertext& c, ckks::Ciphertext& tmp) const;

  /// The weights' encoding scale Δ·q_l/s_in (Δ·q_l·q_{l-1}/s_in with rescale_twice), so
  /// that the rescaled outputs have scale exactly Δ. Throws std::invalid_argument when
  /// the rescales would pass level 0.
  double weight_scale() const;
  /// sum (relinearized first if size 3) rescaled once or twice into out.
  void rescale_output(ckks::Ciphertext& sum, ckks::Ciphertext& out) const;

  /// A trivial ciphertext of constant c in every sample at `level` and `scale`.
  ckks::Ciphertext constant(double c, std::size_t level, double scale) const;
  /// Adds c to every sample of ct (at ct's scale).
  void add_constant(ckks::Ciphertext& ct, double c) const;
};

static_assert(KernelBackend<EncryptedBackend>);

}  // namespace heinfer::runtime
