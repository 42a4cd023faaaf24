// Internal to `mpirun -np P heinfer serve --distributed`: the executor's runtime::Client
// on a compute rank (ranks 1 … P − 1 run the batch in column slabs, plan/partition.h).
// Each call goes to rank 0 of the job as a RankCall (heinfer.proto) and waits for its
// RankReply; rank 0 makes the call on the data owner's Infer stream, which checks what
// the data owner returns (protocol/rank_gateway.h). The replies are loaded with the
// validating loader (ckks/serialization.h) and counted against the call.
//
// Failure: once a call fails (the data owner broke the contract or left), this rank
// makes no more calls in the batch: it sets `cancel`, the executor's flag, on which every
// compute rank stops at the next step (runtime/encrypted_executor.h), and answers the
// calls left in the current step itself with placeholder ciphertexts (zeros at the top
// level) that nothing decrypts. error() then says why.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/heinfer.pb.h"
#include "protocol/served_model.h"
#include "runtime/client.h"
#include "runtime/peers.h"

namespace heinfer::protocol {

class RankClient : public runtime::Client {
 public:
  /// `job`: every rank of the job (rank 0 relays); `batch`: the samples of the batch;
  /// `leader`: this rank reports the layers' progress (the compute group's first rank).
  RankClient(runtime::Peers& job, const Model& m, std::int64_t batch, bool leader, std::atomic<bool>& cancel)
      : job_(job), m_(m), batch_(batch), leader_(leader), cancel_(cancel) {}

  std::int64_t capacity() const override { return m_.plan.capacity(); }
  std::int64_t batch() const override { return batch_; }
  bool encrypts_parts() const override { return true; }

  std::vector<ckks::Ciphertext> encrypt(const runtime::EncryptRequest& r) override;
  std::vector<ckks::Ciphertext> round(const runtime::RoundRequest& r) override;
  /// Sends the outputs to the data owner; returns zeros (the server never sees outputs).
  runtime::PlainTensor decrypt(const std::vector<const ckks::Ciphertext*>& cts, const std::vector<double>& factors,
                               const model::Shape& shape, std::int64_t batch, const std::string& layer,
                               double bound) override;
  void layer_done(std::size_t node, const runtime::LayerStats& stats) override;

  /// Why the batch failed ("" : no call failed).
  const std::string& error() const { return error_; }

 private:
  void send(const RankCall& call);
  /// Sends `call` and receives exactly `expected` ciphertexts (placeholders after a failure).
  std::vector<ckks::Ciphertext> call(const RankCall& call, std::int64_t expected);
  std::vector<ckks::Ciphertext> placeholders(std::int64_t n) const;

  runtime::Peers& job_;
  const Model& m_;
  std::int64_t batch_;
  bool leader_;
  std::atomic<bool>& cancel_;
  std::string error_;
};

}  // namespace heinfer::protocol
