// Internal to the server: its checks of what a client sends, apart from the gRPC calls
// that carry it, so that tests and fuzzers reach them without a network:
//  - the OpenSession header (fingerprint, declared key sizes) and the keys that follow
//    (validating loaders of ckks/serialization.h, exactly the Galois keys the model
//    needs);
//  - the batch of Infer's Start;
//  - every chunk of ciphertexts the client sends (inputs, round replies): its kind, no
//    more ciphertexts than asked for, each one loaded against the model's context.
// Each check throws StatusError (status_error.h) with the status the call returns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "protocol/heinfer.pb.h"
#include "protocol/status_error.h"
#include "runtime/local_client.h"

namespace heinfer::protocol {

/// What the server requires of a session of one served model.
struct SessionRequirements {
  std::string model;                           ///< the model's name (messages)
  const ckks::CKKSContext* context = nullptr;  ///< the model's context (fingerprint)
  bool complex = false;                        ///< complex packing: the conjugation key is needed
  /// The model switches keys (its context has a special prime): a relinearization key
  /// is needed; otherwise the session carries no key at all.
  bool key_switching = true;
  std::int64_t max_key_bytes = 0;              ///< bound on each serialized key object
  std::vector<std::uint32_t> galois_elements;  ///< exactly the Galois keys needed
  /// Model-private mode: the client's public key is needed (the server re-randomizes
  /// what it refreshes and what it outputs); otherwise none is accepted.
  bool public_key = false;
};

/// Checks an OpenSession header of the model: fingerprint, key sizes in (0, max_key_bytes]
/// (Galois: [0, ...], and > 0 for complex packing), or both 0 for a model that switches
/// no keys; a public key in (0, max_key_bytes] when req.public_key, else none. Throws
/// StatusError INVALID_ARGUMENT.
void check_session_header(const OpenSessionHeader& h, const SessionRequirements& req);

/// The evaluation keys of the concatenated key bytes (`relin_bytes` of relinearization
/// key, then the Galois keys, then `public_key_bytes` of public key), loaded with the
/// validating loaders; exactly the Galois elements `req` lists, and a public key exactly
/// when req.public_key. Throws StatusError INVALID_ARGUMENT naming the rejected object.
runtime::EvaluationKeys load_session_keys(const std::string& keys, std::int64_t relin_bytes,
                                          const SessionRequirements& req, std::int64_t public_key_bytes = 0);

/// Checks the batch of Infer's Start: in [1, capacity]. Throws StatusError INVALID_ARGUMENT.
void check_batch(std::int64_t batch, std::int64_t capacity);

/// One chunked reply of ciphertexts (`kind`: input or round_reply) of exactly `expected`
/// ciphertexts, received message by message.
class CiphertextReply {
 public:
  CiphertextReply(const ckks::CKKSContext& context, ClientMessage::KindCase kind, std::string what,
                  std::int64_t expected)
      : context_(context), kind_(kind), what_(std::move(what)), expected_(expected) {}

  /// Takes one message of the reply; returns true once the last chunk arrived. Throws
  /// StatusError INVALID_ARGUMENT for another kind of message, more ciphertexts than
  /// expected (before loading them), an invalid ciphertext, or a last chunk with fewer.
  bool add(const ClientMessage& msg);

  std::vector<ckks::Ciphertext>& ciphertexts() { return out_; }
  std::int64_t bytes() const { return bytes_; }  ///< serialized ciphertext bytes so far

 private:
  const ckks::CKKSContext& context_;
  ClientMessage::KindCase kind_;
  std::string what_;
  std::int64_t expected_;
  std::int64_t bytes_ = 0;
  std::vector<ckks::Ciphertext> out_;
};

}  // namespace heinfer::protocol
