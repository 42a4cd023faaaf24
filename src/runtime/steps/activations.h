// Internal to the encrypted executor: the encrypted tensors of one run and their store
// groups, as the plan's steps produce, read, release and free them.
//  - graph inputs are encrypted on the client whole before the first step, or band by
//    band as streamed steps read their rows (EncryptedPlan::inputs_on_demand);
//  - each step is handed its inputs, its output and their groups (StepIO);
//  - after a step: the output level is checked against the plan and capped at its stored
//    level, rows no later band reads are dropped, and after a node's last step the
//    tensors whose last reader it is are freed and its inputs' groups learn their next
//    reader (for the tier's eviction order).
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <ostream>
#include <optional>
#include <string>
#include <vector>

#include "runtime/steps/run_state.h"

namespace heinfer::runtime::steps {

class Activations {
 public:
  explicit Activations(RunState& run);

  /// Has the client encrypt the graph inputs whole, except those the plan encrypts band
  /// by band when the client encrypts in parts. Returns the client's batch. Throws
  /// model::ModelError when the batch is not in [1, capacity].
  std::int64_t encrypt_inputs();

  /// Encrypts the rows of on-demand inputs that step `st` reads and that are not
  /// encrypted yet.
  void encrypt_rows_for(const plan::StreamStep& st);

  /// The inputs, output and groups of step `st` (opens the output's group on the node's
  /// first step). `elements` must outlive the returned StepIO.
  StepIO step_io(const plan::StreamStep& st, std::vector<std::int64_t>& elements, EncryptedTensor& scratch);

  /// After step `st` ran: checks the output level on the node's last step (std::logic_error
  /// when it is not the plan's), caps it at the stored level, tells the store at which
  /// step the step's inputs' groups are read next and releases the rows no later band
  /// reads.
  void after_step(const plan::StreamStep& st, StepIO& io);
  /// After a node's last step: frees the tensors whose last reader it is.
  void finish_node(const StepIO& io);

  /// A plaintext output computed on the client (a final Softmax).
  void set_plain_output(model::TensorId t, PlainTensor y) { plain_outputs_[t] = std::move(y); }

  /// The graph outputs, decrypted on the client (or the plaintext ones). Throws
  /// model::ModelError when one was not computed.
  std::vector<PlainTensor> outputs(std::int64_t batch);

  /// Writes the run's state at a step boundary for a resumed run (activations_state.cpp):
  /// every live tensor (shape, level, scale, pending factors, its ciphertexts, each
  /// shared one once: those on the store's named tier file by reference), whether it has
  /// a store group, and the band progress of streamed inputs. Throws std::runtime_error
  /// on a stream failure.
  void save_state(std::ostream& out) const;
  /// Reads save_state's bytes into a fresh Activations (no step run yet): every count,
  /// shape, level and index is checked against the graph and the plan before anything is
  /// allocated by it; the store groups are opened as after the first `steps_done` steps
  /// of the plan and the ciphertexts adopted. Returns the batch (the client's). Throws
  /// std::runtime_error naming what does not match.
  std::int64_t restore_state(std::istream& in, std::int64_t steps_done);

  /// The value of tensor t on this rank, or null when it is not live.
  EncryptedTensor* value(model::TensorId t) {
    auto& v = values_[static_cast<std::size_t>(t)];
    return v ? &*v : nullptr;
  }
  /// The store group that holds t's ciphertexts (its own, else the first of its aliases'
  /// with one), or -1.
  GroupId group_holding(model::TensorId t) const;

  /// The tensor that produced t's values, for round and decryption names.
  const std::string& producer(model::TensorId t) const { return producer_[static_cast<std::size_t>(t)]; }

 private:
  /// One entry of the state's ciphertext table: its words inline, or referenced in the
  /// store's named tier file (rebuilt in place).
  CiphertextPtr restore_ciphertext(std::istream& in) const;

  /// A store group for produced tensor t, next used at its first reading step after
  /// position `now` of the plan's steps (-1: before the first).
  GroupId open_group(model::TensorId t, std::int64_t now);

  RunState& run_;
  const model::Graph& g_;
  const plan::EncryptedPlan& plan_;
  std::vector<GroupId> group_of_;
  std::vector<std::string> producer_;
  std::vector<int> pending_input_;                 ///< per tensor: graph input index encrypted band by band, or -1
  std::vector<std::int64_t> encrypted_rows_;       ///< rows [0, r) of a pending input encrypted
  std::vector<std::int64_t> released_;             ///< rows [0, r) dropped
  std::map<model::TensorId, PlainTensor> plain_outputs_;
  // Last: destroyed first, before the store their ciphertexts are accounted in.
  std::vector<std::optional<EncryptedTensor>> values_;
};

/// Decrypts x on the client into a plaintext tensor of `batch` samples (accounting the
/// bytes sent to the client and the client's time). In the model-private mode (a
/// public-key encryptor in `run`) each ciphertext is re-randomized and flooded first
/// (ckks/noise_flooding.h, plan::output_flood_bits of x's bound): the client learns the
/// output, not the weights through c_1 or the noise.
PlainTensor decrypt_on_client(RunState& run, const EncryptedTensor& x, std::int64_t batch, const std::string& layer,
                              double bound);

/// Runs one step of the plan: prefetches its inputs from the tier and calls the step
/// function of the node's kind; a final Softmax is decrypted and applied on the client
/// into `acts` (plaintext output).
void run_step(RunState& run, StepIO& io, Activations& acts, std::int64_t batch);

}  // namespace heinfer::runtime::steps
