// The client side of client-aided encrypted inference.
//
// Model (nGraph-HE2, Boemer et al., WAHC 2019, section 4 "client-aided model"; masking
// in the spirit of Gazelle, Juvekar et al., USENIX Security 2018, and Delphi, Mishra et
// al., USENIX Security 2020): the client owns the secret key, encrypts the inputs,
// evaluates the non-polynomial layers on decrypted values and decrypts the outputs. The
// server holds only public evaluation keys (relinearization, conjugation) and the model.
//
// One round (Client::round): the server sends a batch of ciphertexts grouped into
// "windows" plus the function to apply, masked (below) and shuffled (CSPRNG
// permutation). The client decrypts, applies the function and returns fresh symmetric
// (seeded, compact: half size on the wire) ciphertexts, encrypted at the top level.
//
// Masks (plan::RoundMasks; docs/security.md states each claim with its test):
//  - per-window (`heinfer run`'s default): one secret integer R in [2^7, 2^12) per window,
//    the same for every slot (scalar at scale 1, no level). The client sees R_e·x_e: the
//    sign of every pre-activation, and, since R_e cancels between samples, exact ratios
//    between the samples of its batch: a client that chooses its batch (x0, x0 + t·e_k,
//    0) reads the first layer's weight-to-bias ratios exactly.
//  - per-sample (`heinfer serve`'s default, real packing): a fresh integer polynomial per
//    window multiplies sample s by its own factor μ_s, |μ_s| log-uniform in [2^9, 2^15)
//    with a uniform sign (ckks/slot_mask.h, no level). Functions are evaluated through
//    |·| (Relu(x) = (x + |x|)/2, Clip and LeakyRelu alike), so Relu, Clip and LeakyRelu
//    rounds are Abs / AbsWithValue: the client sees μ_s·x_s, whose sign is a fair coin,
//    and returns |μ_s·x_s| (and μ_s·x_s re-encrypted); the server unmasks with one
//    plaintext product and rescale (one level per round). One copy of a sample gives no
//    ratio: the masks of two samples differ by a factor of up to 2^6 and a random sign.
//    What remains: magnitudes up to the known distribution of log|μ|, so a client that
//    repeats a sample M times (or a convolution that shares weights over M positions)
//    estimates log|x| to σ·sqrt(1/M), σ = 1.7 bits; and MaxPool windows share one
//    positive mask (ratios within a window and its argmax, per sample).
//  - none, for the element-wise functions that are not positively homogeneous (Sigmoid,
//    Tanh, Softplus, Erf, Exp, Log, Sqrt): only when the server's operator
//    allows it (`--allow-unmasked-rounds`), the client sees those layers' inputs in the
//    clear (shuffled: their positions are hidden, their values are not).
// The client also learns the model's architecture (layer sizes, which layers are
// client-aided) and the outputs, which are its own.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

/// A non-polynomial function the client evaluates on decrypted (masked) values.
enum class RoundFunction {
  Relu,          ///< per window of 1: max(v, 0)
  Max,           ///< per window: max over its elements
  ReluMax,       ///< per window: max(0, max over its elements) (fused Relu -> MaxPool)
  Abs,           ///< per window of 1: |v|
  AbsWithValue,  ///< per window of 1: two replies, v (re-encrypted) then |v|
  // Unmasked rounds, per window of 1: f(v) of a function no multiplicative mask can hide
  // (not positively homogeneous). The client sees v itself; a server runs them only when
  // its operator allowed it (plan::Parameters::unmasked_functions).
  Sigmoid,
  Tanh,
  Softplus,
  Erf,
  Exp,
  Log,
  Sqrt,
  // The model-private mode's refresh, per window of 1 (ckks/blind_refresh.h): the client
  // decrypts the integer coefficients of a ciphertext the server masked uniformly,
  // checks them against the announced bound (RoundRequest::bound =
  // ckks::refresh_coefficient_limit of the mask's bits) and returns them encrypted at
  // the top level. It sees the mask, not the value.
  BlindRefresh,
};
inline constexpr int kRoundFunctions = 13;

/// Fresh ciphertexts the client returns per window: 2 for AbsWithValue, else 1.
inline std::size_t replies_per_window(RoundFunction f) { return f == RoundFunction::AbsWithValue ? 2 : 1; }

/// Thrown when a decrypted value exceeds the planned range (a CKKS overflow would make
/// the result meaningless). what() names the layer.
class OverflowError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown on bad client inputs (NaN/Inf, beyond the planned range).
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RoundRequest {
  std::int64_t node = -1;                                ///< index of the node the round evaluates
  std::string layer;                                     ///< "<producer> -> <node name>" (for errors)
  RoundFunction function = RoundFunction::Relu;
  std::vector<std::vector<const ckks::Ciphertext*>> windows;  ///< already masked, shuffled
  double bound = 0;  ///< largest |decoded value| the plan allows in this round
};

/// What the server asks the client to encrypt: some elements of one of the model's
/// inputs, for all the samples of the client's batch.
struct EncryptRequest {
  std::size_t input = 0;                    ///< index into the model's inputs
  std::span<const std::int64_t> elements;   ///< per-sample element indices (row-major), ascending
  std::string name;                         ///< the input's name (for errors)
  double bound = 0;                         ///< largest |value| the plan allows
};

struct LayerStats;  // runtime/encrypted_executor.h

/// The client. Implementations hold the secret key; the server never sees it.
class Client {
 public:
  virtual ~Client() = default;

  /// Samples per ciphertext (the batch capacity).
  virtual std::int64_t capacity() const = 0;

  /// Samples in the client's inputs, in [1, capacity()].
  virtual std::int64_t batch() const = 0;

  /// Encrypts the requested elements of the client's own input at the top level and
  /// scale Δ; one seeded ciphertext per element (compact: half size), in request order.
  /// Throws InputError if a value is NaN/Inf or |value| > bound (message names the
  /// input), std::out_of_range for an unknown input or element.
  virtual std::vector<ckks::Ciphertext> encrypt(const EncryptRequest& request) = 0;

  /// Whether encrypt() may be asked for parts of an input, so that the executor bounds
  /// the memory of the input. Default false: all of an input at once.
  virtual bool encrypts_parts() const { return false; }

  /// One round; returns replies_per_window(function) compact fresh ciphertexts per
  /// window (window order, then reply order), encrypted at the top level and scale Δ.
  /// Throws OverflowError if a decoded value is not finite or exceeds request.bound.
  virtual std::vector<ckks::Ciphertext> round(const RoundRequest& request) = 0;

  /// Decrypts output ciphertexts (nullptr: zeros) times factors into a PlainTensor of
  /// `batch` samples. Throws OverflowError naming `layer` if |value| > bound, and
  /// std::invalid_argument when the counts do not fit (not one ciphertext per element
  /// of `shape`, factors neither empty nor one per ciphertext, batch not in [1, capacity]).
  virtual PlainTensor decrypt(const std::vector<const ckks::Ciphertext*>& cts,
                              const std::vector<double>& factors, const model::Shape& shape,
                              std::int64_t batch, const std::string& layer, double bound) = 0;

  /// Every element of graph input `input` has been encrypted for this run: the client
  /// may release the values (an in-process client frees them; at 224x224 a batch of
  /// ResNet-50 inputs is 4.9 GB). Default: nothing.
  virtual void input_encrypted(std::size_t input) { (void)input; }

  /// Progress: node `node` has run (its name, op, time, output ciphertexts and level are
  /// in `stats`). Default: nothing. A remote client forwards it to the data owner.
  virtual void layer_done(std::size_t node, const LayerStats& stats) {
    (void)node;
    (void)stats;
  }
};

}  // namespace heinfer::runtime
