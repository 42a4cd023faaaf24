// Internal to the encrypted executor: one rank's side of a distributed run
// (plan/partition.h). Every rank runs every step of the plan in lockstep; around each
// step this class
//  - before: fetches the input ciphertexts the rank's share reads and does not hold
//    (halo columns of spatial nodes, every input of a node that runs on rank 0) from
//    their owners: one all-to-all of requests, one of replies (serialized ciphertexts
//    with their pending factors, loaded with the checked loader), adopted into the
//    reader's store group and released with the rows the plan releases;
//  - narrows the step to the rank's share: its output columns (spatial), its own
//    elements (inherited splits), its own input elements without the constant terms off
//    rank 0 (reduced nodes), nothing off rank 0 (root nodes);
//  - after: adds the partial outputs of a reduced node on rank 0 (ciphertext additions,
//    same level and scale).
// Before the outputs are decrypted they are gathered on rank 0, which alone decrypts.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "plan/partition.h"
#include "runtime/peers.h"
#include "runtime/steps/activations.h"

namespace heinfer::runtime::steps {

class Distribution {
 public:
  /// `run.partition` must be set (and outlive this), its ranks equal to peers.size().
  Distribution(RunState& run, Activations& acts, Peers& peers);

  /// Before step io runs: fetches its missing inputs and narrows io (file comment);
  /// `elements` is the vector io.elements views. Returns false when this rank computes
  /// nothing of the step (its output is then prepared empty). Throws std::runtime_error
  /// when a peer's message does not match the plan (counts, indices, ownership,
  /// parameters, levels).
  bool before_step(StepIO& io, std::vector<std::int64_t>& elements);
  /// After step io ran (or was skipped): the reduction of a reduced node.
  void after_step(StepIO& io);
  /// Gathers the graph outputs on rank 0 (collective).
  void gather_outputs();

  int rank() const { return peers_.rank(); }

 private:
  using Needs = std::map<model::TensorId, std::vector<std::int64_t>>;
  /// Requests `needs` (elements this rank lacks) from their owners and serves the other
  /// ranks' requests; the replies land in the tensors' ciphertexts.
  void fetch(const Needs& needs);
  /// io's encrypted inputs restricted to the elements this rank owns (reduced nodes).
  void own_elements_only(StepIO& io);

  RunState& run_;
  Activations& acts_;
  Peers& peers_;
  const plan::Partition& p_;
  std::vector<EncryptedTensor> views_;  ///< the restricted inputs of the running step
};

}  // namespace heinfer::runtime::steps
