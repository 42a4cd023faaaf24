// CKKS parameter selection for encrypted inference (depth-aware, nGraph-HE2 style).
//
// Inputs: the prepared graph, the packing, calibrated per-tensor ranges (runtime/
// calibration.h) and a precision target (scale bits). The depth of every tensor comes
// from the level rules (plan/level_rules.h), the magnitudes from the ranges. The chain
// is then
//   q_0: enough bits for max|value| · (R_max where the value is masked) · Δ + margin,
//        as few primes of at most max_prime_bits as hold it (the deepest level then
//        keeps them all),
//   q_1..q_L: scale_bits each (≈ Δ, one per level),
//   special: one prime >= the largest chain prime, or none when nothing switches keys
//            (no ciphertext × ciphertext product: needs_key_switching),
// with the smallest N in [2^11, 2^16] whose 128-bit bound (ckks/security.h) admits
// log2(QP).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ckks/encryption_params.h"
#include "ckks/packing.h"
#include "model/graph.h"

namespace heinfer::plan {

/// How a client-aided round masks the values the client decrypts (runtime/client.h).
enum class RoundMasks {
  /// One integer R per window, the same for every sample: no level, real or complex
  /// packing; a client that chooses its batch reads ratios between samples.
  PerWindow,
  /// A signed per-slot mask per window (ckks/slot_mask.h) and functions written with
  /// |·| so that signs stay hidden; real packing only (one sample per slot); the replies
  /// are unmasked with one plaintext product and rescale: one level per round.
  PerSample,
};
std::string_view round_masks_name(RoundMasks m);  ///< "per-window" / "per-sample"
/// Parses "per-window" / "per-sample"; throws std::invalid_argument otherwise.
RoundMasks parse_round_masks(std::string_view s);

/// Per-window masks are uniform integers in [kMaskMin, kMaskMax).
inline constexpr double kMaskMin = 128.0;
inline constexpr double kMaskMax = 4096.0;
/// Per-sample masks: |μ| log-uniform in [2^kSlotMaskMinBits, 2^kSlotMaskMaxBits).
inline constexpr double kSlotMaskMinBits = 9;
inline constexpr double kSlotMaskMaxBits = 15;
/// Largest |masked value| / |value| a client sees (2^15 with the rounding margin of
/// ckks/slot_mask.h for per-sample masks).
double mask_max(RoundMasks m);
/// After a round, decoded value = gain × true value, gain <= kMaskMax (the pending
/// factor is at least 1 / kMaskMax), for both kinds of masks.

/// What the client may learn of the model (docs/security.md).
enum class Privacy {
  /// Client-aided rounds: the client evaluates Relu, MaxPool, ... on masked activations
  /// (one multiplicative mask per window; it sees ratios of values).
  Activations,
  /// Model-private: Relu, Clip, LeakyRelu and MaxPool are evaluated on the server as
  /// polynomials (plan/private_approximation.h); the client only refreshes ciphertexts
  /// under a uniform additive mask (ckks/blind_refresh.h) and decrypts flooded outputs
  /// (ckks/noise_flooding.h). Real packing; unmasked functions are refused.
  Model,
};
std::string_view privacy_name(Privacy p);  ///< "activations" / "model"
/// Parses "activations" / "model"; throws std::invalid_argument otherwise.
Privacy parse_privacy(std::string_view s);

/// What the encrypted execution needs from the modulus chain (level_requirements).
struct LevelRequirements {
  int levels = 0;  ///< L: rescales on the longest path between (re-)encryptions
  /// log2 of the largest |value| that is ever decrypted or masked at level 0 (mask
  /// included); drives the size of q_0.
  double log2_level0_magnitude = 0;
};

/// The deepest depth of the level rules (plan/level_rules.h) on `g` and the magnitudes
/// decrypted or masked there, given per-tensor bounds (index = TensorId). The
/// model-private mode masks nothing multiplicatively (its refreshes are sized apart:
/// plan/private_parameters.h).
LevelRequirements level_requirements(const model::Graph& g, const std::vector<double>& bounds,
                                     RoundMasks masks = RoundMasks::PerWindow,
                                     Privacy privacy = Privacy::Activations);

/// The chosen CKKS parameters of an encrypted run, with the bounds they were chosen for.
struct Parameters {
  ckks::Packing packing = ckks::Packing::Complex;
  RoundMasks masks = RoundMasks::PerWindow;
  int scale_bits = 30;                 ///< Δ = 2^scale_bits
  ckks::EncryptionParameters params;   ///< N, chain bit sizes, special bit sizes
  LevelRequirements needs;
  std::vector<double> bounds;          ///< per tensor: allowed max |value|
  double margin = 2.0;                 ///< safety factor applied to calibrated ranges
  /// Whether the run switches keys (needs_key_switching): then params has a special
  /// prime and the client makes relinearization (and, complex, conjugation) keys.
  bool key_switching = true;
  /// Whether the server's operator allows unmasked rounds (NodeKind::FunctionRound):
  /// the client then sees the inputs of Sigmoid, Tanh, ... layers in the clear.
  bool unmasked_functions = false;
  Privacy privacy = Privacy::Activations;
  /// Model-private mode: η of every Relu and max approximation (relative to its bound),
  /// and log2 R of every refresh mask (plan/private_parameters.h); 0 otherwise.
  double relative_error = 0;
  int refresh_mask_bits = 0;

  double scale() const;
  std::int64_t capacity() const;       ///< samples per ciphertext
  std::string describe() const;        ///< one line: N, bits, levels, log2 QP, packing
};

struct ParameterOptions {
  ckks::Packing packing = ckks::Packing::Complex;
  RoundMasks masks = RoundMasks::PerWindow;  ///< PerSample needs Packing::Real
  int scale_bits = 30;
  double margin = 2.0;  ///< calibrated max |value| is multiplied by this
  int noise_bits = 10;  ///< extra bits in q_0 above max|value|·Δ
  bool unmasked_functions = false;  ///< Parameters::unmasked_functions
  /// Largest prime of the chain, in bits (scale_bits to 60): q_0 is split into primes of
  /// at most this size. 49 (default): every limb stays on the fast kernels (AVX-512 IFMA:
  /// q < 2^50, AVX2 double-precision FMA: q < 2^49); a wider limb runs on the portable
  /// kernels at ~5x the time of a fast one, more than the extra limb costs
  /// (docs/performance.md, "Prime sizes"). 31: every limb fits a 32-bit word.
  int max_prime_bits = 49;
  Privacy privacy = Privacy::Activations;  ///< Model needs Packing::Real
  /// Model-private mode: η of the approximations. 2^-7 keeps the Fashion-MNIST CNN's
  /// top-1 agreement at 99.8 % on its 10,000 test images (docs/performance.md).
  double relative_error = 0x1p-7;
  /// Model-private mode: statistical hiding of one refresh, in bits (the masks get
  /// log2 N more: plan/private_parameters.h).
  int hiding_bits = 40;
};

/// Whether evaluating `g` switches keys: only a ciphertext × ciphertext product does
/// under batch-axis packing (relinearization; with complex packing also the conjugation
/// of multiply_packed). Linear layers and client rounds never do. Without key switching
/// no special prime is needed, and no evaluation key is published: the ciphertexts are
/// the only RLWE samples, so the 128-bit bound applies to log2(Q) alone.
bool needs_key_switching(const model::Graph& g);

/// Chooses parameters (see the file comment; the model-private mode's chain:
/// plan/private_parameters.h). Throws std::invalid_argument if no N up to 2^16 is secure
/// for the required chain, scale_bits is outside [20, 50], per-sample masks are asked
/// for with complex packing, or the model-private mode with complex packing, per-sample
/// masks or unmasked functions.
Parameters plan_parameters(const model::Graph& g, const std::vector<double>& ranges,
                           const ParameterOptions& options = {});

/// Replaces the plan's parameters with a JSON file
/// {"n": N, "coeff_bits": [q_0, ..., q_L], "special_bits": [...], "scale_bits": s}
/// after checking them against the plan's requirements. Throws std::invalid_argument with
/// a clear message for a malformed file, too few levels, a too-small q_0 or middle prime,
/// a special prime smaller than the chain primes, no special prime for a model that
/// switches keys, insecure parameters, or primes that do not exist (a size outside
/// [20, 60] bits, too few primes = 1 mod 2N of a size).
void apply_parameter_override(Parameters& plan, const std::filesystem::path& file);
/// Same from explicit values (used by the file form and by tests).
void apply_parameter_override(Parameters& plan, std::size_t n, std::vector<int> coeff_bits,
                              std::vector<int> special_bits, int scale_bits);

}  // namespace heinfer::plan
