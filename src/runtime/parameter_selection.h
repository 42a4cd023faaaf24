// CKKS parameter selection for encrypted inference (depth-aware, nGraph-HE2 style).
//
// Inputs: the prepared graph, the packing, calibrated per-tensor ranges and a precision
// target (scale bits). The multiplicative depth is simulated exactly as the encrypted
// executor will run (lazy rescaling: one rescale per linear output whose weights are
// outside {-1, 0, 1} or that folds pending unmasking factors; one per square; +1 where a
// pending factor must be materialized before a non-linear consumer; client-aided layers
// restart at the top level). The chain is then
//   q_0: enough bits for max|value| · (R_max where the value is masked) · Δ + margin
//        (two primes of half the size when one would exceed 60 bits: the deepest level
//        then keeps both),
//   q_1..q_L: scale_bits each (≈ Δ, one per level),
//   special: one prime >= the largest chain prime,
// with the smallest N in [2^11, 2^16] whose 128-bit bound (ckks/security.h) admits
// log2(QP).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ckks/encryption_params.h"
#include "model/graph.h"
#include "runtime/encrypted_tensor.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

/// Masks are uniform integers in [kMaskMin, kMaskMax).
inline constexpr double kMaskMin = 128.0;
inline constexpr double kMaskMax = 4096.0;

/// Bytes of one activation tensor of a calibration run: larger batches run in parts.
inline constexpr std::int64_t kCalibrationTensorBytes = std::int64_t{128} << 20;

/// Samples per part of a calibration run of g: the largest activation of a part holds
/// at most kCalibrationTensorBytes (at least one sample).
std::int64_t calibration_samples(const model::Graph& g);

/// Per-tensor largest |value| of a plaintext run (index = TensorId; 0 for constants).
/// `inputs` holds the graph inputs (one per graph input, all of one batch). The batch
/// runs in parts of `samples_per_part` samples (0: calibration_samples(g)) and the
/// maxima are folded, so the result is exactly that of one run while memory stays at a
/// few activations of kCalibrationTensorBytes (ResNet-50 at 224x224 with batch 2048
/// would otherwise hold about 13 GB per activation). Throws model::ModelError, also
/// when the inputs differ in batch size.
std::vector<double> calibrate_ranges(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                                     std::int64_t samples_per_part = 0);

/// What the encrypted execution needs from the modulus chain (from simulate_levels).
struct LevelRequirements {
  int levels = 0;  ///< L: rescales on the longest path between (re-)encryptions
  /// log2 of the largest |value| that is ever decrypted or masked at level 0 (mask
  /// included); drives the size of q_0.
  double log2_level0_magnitude = 0;
};

/// Simulates the executor's level consumption on `g` given per-tensor bounds.
LevelRequirements simulate_levels(const model::Graph& g, const std::vector<double>& bounds);

/// The complete plan of an encrypted run.
struct EncryptionPlan {
  Packing packing = Packing::Complex;
  int scale_bits = 30;                 ///< Δ = 2^scale_bits
  ckks::EncryptionParameters params;   ///< N, chain bit sizes, special bit sizes
  LevelRequirements needs;
  std::vector<double> bounds;          ///< per tensor: allowed max |value|
  double margin = 2.0;                 ///< safety factor applied to calibrated ranges

  double scale() const;
  std::int64_t capacity() const;       ///< samples per ciphertext
  std::string describe() const;        ///< one line: N, bits, levels, log2 QP, packing
};

struct PlanOptions {
  Packing packing = Packing::Complex;
  int scale_bits = 30;
  double margin = 2.0;  ///< calibrated max |value| is multiplied by this
  int noise_bits = 10;  ///< extra bits in q_0 above max|value|·Δ
};

/// Chooses parameters (see the file comment). Throws std::invalid_argument if no N up
/// to 2^16 is secure for the required chain or scale_bits is outside [20, 50].
EncryptionPlan plan_parameters(const model::Graph& g, const std::vector<double>& ranges,
                               const PlanOptions& options = {});

/// Replaces the plan's parameters with a JSON file
/// {"n": N, "coeff_bits": [q_0, ..., q_L], "special_bits": [...], "scale_bits": s}
/// after checking them against the plan's requirements. Throws std::invalid_argument with
/// a clear message for a malformed file, too few levels, a too-small q_0 or middle prime,
/// a special prime smaller than the chain primes, or insecure parameters.
void apply_parameter_override(EncryptionPlan& plan, const std::filesystem::path& file);
/// Same from explicit values (used by the file form and by tests).
void apply_parameter_override(EncryptionPlan& plan, std::size_t n, std::vector<int> coeff_bits,
                              std::vector<int> special_bits, int scale_bits);

}  // namespace heinfer::runtime
