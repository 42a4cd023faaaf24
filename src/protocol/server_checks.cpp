#include "protocol/server_checks.h"

#include <algorithm>
#include <span>

#include "ckks/serialization.h"
#include "protocol/wire.h"

namespace heinfer::protocol {

void check_session_header(const OpenSessionHeader& h, const SessionRequirements& req) {
  const auto& fp = req.context->fingerprint();
  if (h.fingerprint() != std::string(fp.begin(), fp.end())) {
    fail(grpc::StatusCode::INVALID_ARGUMENT, "parameter fingerprint " + hex(h.fingerprint()) +
                                                 " does not match model '" + req.model + "' (" +
                                                 hex(std::string(fp.begin(), fp.end())) +
                                                 "); call GetModelInfo again");
  }
  if (req.public_key ? h.public_key_bytes() <= 0 || h.public_key_bytes() > req.max_key_bytes
                     : h.public_key_bytes() != 0) {
    fail(grpc::StatusCode::INVALID_ARGUMENT,
         "declared public key size " + std::to_string(h.public_key_bytes()) + " bytes: model '" + req.model + "' " +
             (req.public_key ? "is served model-private and needs the public key (at most " +
                                   std::to_string(req.max_key_bytes) + " bytes)"
                             : "takes no public key"));
  }
  if (!req.key_switching) {
    if (h.relin_bytes() != 0 || h.galois_bytes() != 0) {
      fail(grpc::StatusCode::INVALID_ARGUMENT,
           "declared key sizes (relinearization " + std::to_string(h.relin_bytes()) + ", Galois " +
               std::to_string(h.galois_bytes()) + " bytes): model '" + req.model +
               "' switches no keys (its parameters have no special prime); send no evaluation keys");
    }
    return;
  }
  if (h.relin_bytes() <= 0 || h.relin_bytes() > req.max_key_bytes || h.galois_bytes() < 0 ||
      h.galois_bytes() > req.max_key_bytes || (req.complex && h.galois_bytes() == 0)) {
    fail(grpc::StatusCode::INVALID_ARGUMENT,
         "declared key sizes (relinearization " + std::to_string(h.relin_bytes()) + ", Galois " +
             std::to_string(h.galois_bytes()) + " bytes) outside (0, " + std::to_string(req.max_key_bytes) + "]" +
             (req.complex ? "; this model needs the conjugation key" : ""));
  }
}

runtime::EvaluationKeys load_session_keys(const std::string& all_keys, std::int64_t relin_bytes,
                                          const SessionRequirements& req, std::int64_t public_key_bytes) {
  if ((public_key_bytes > 0) != req.public_key || public_key_bytes < 0 ||
      static_cast<std::size_t>(public_key_bytes) > all_keys.size()) {
    fail(grpc::StatusCode::INVALID_ARGUMENT, "public key rejected: " + std::to_string(public_key_bytes) +
                                                 " declared bytes for model '" + req.model + "'");
  }
  const std::size_t eval_n = all_keys.size() - static_cast<std::size_t>(public_key_bytes);
  ckks::PublicKey public_key;
  if (req.public_key) {
    try {
      public_key = ckks::load_public_key(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(all_keys.data()) + eval_n,
                                   static_cast<std::size_t>(public_key_bytes)),
          *req.context);
    } catch (const ckks::SerializationError& e) {
      fail(grpc::StatusCode::INVALID_ARGUMENT, std::string("public key rejected: ") + e.what());
    }
  }
  const std::string_view keys(all_keys.data(), eval_n);
  if (!req.key_switching) {
    if (relin_bytes != 0 || !keys.empty()) {
      fail(grpc::StatusCode::INVALID_ARGUMENT, "evaluation keys rejected: model '" + req.model + "' switches no keys");
    }
    runtime::EvaluationKeys out;
    out.public_key = std::move(public_key);
    return out;
  }
  if (relin_bytes <= 0 || static_cast<std::size_t>(relin_bytes) > keys.size()) {
    fail(grpc::StatusCode::INVALID_ARGUMENT, "relinearization keys rejected: " + std::to_string(relin_bytes) +
                                                 " declared bytes of " + std::to_string(keys.size()));
  }
  runtime::EvaluationKeys out;
  out.public_key = std::move(public_key);
  const std::span<const uint8_t> all(reinterpret_cast<const uint8_t*>(keys.data()), keys.size());
  const auto relin_n = static_cast<std::size_t>(relin_bytes);
  try {
    out.relin = ckks::load_relin_keys(all.first(relin_n), *req.context);
  } catch (const ckks::SerializationError& e) {
    fail(grpc::StatusCode::INVALID_ARGUMENT, std::string("relinearization keys rejected: ") + e.what());
  }
  if (relin_n < all.size()) {
    try {
      out.galois = ckks::load_galois_keys(all.subspan(relin_n), *req.context);
    } catch (const ckks::SerializationError& e) {
      fail(grpc::StatusCode::INVALID_ARGUMENT, std::string("Galois keys rejected: ") + e.what());
    }
  }
  // Exactly the Galois keys the model needs (GetModelInfo lists them): no more, no fewer.
  for (uint32_t g : req.galois_elements) {
    if (!out.galois.has(g)) {
      fail(grpc::StatusCode::INVALID_ARGUMENT,
           "Galois keys rejected: the key for element " + std::to_string(g) + " is missing (see GetModelInfo)");
    }
  }
  for (const auto& [g, k] : out.galois.keys) {
    if (std::find(req.galois_elements.begin(), req.galois_elements.end(), g) == req.galois_elements.end()) {
      fail(grpc::StatusCode::INVALID_ARGUMENT,
           "Galois keys rejected: element " + std::to_string(g) + " is not needed by model '" + req.model + "'");
    }
  }
  return out;
}

void check_batch(std::int64_t batch, std::int64_t capacity) {
  if (batch < 1 || batch > capacity) {
    fail(grpc::StatusCode::INVALID_ARGUMENT,
         "batch " + std::to_string(batch) + " outside [1, " + std::to_string(capacity) + "]");
  }
}

bool CiphertextReply::add(const ClientMessage& msg) {
  if (msg.kind_case() != kind_) fail(grpc::StatusCode::INVALID_ARGUMENT, "protocol: unexpected message during " + what_);
  const CiphertextChunk& c = kind_ == ClientMessage::kInput ? msg.input() : msg.round_reply();
  if (static_cast<std::int64_t>(out_.size()) + c.ciphertexts_size() > expected_) {
    fail(grpc::StatusCode::INVALID_ARGUMENT,
         what_ + ": more than the " + std::to_string(expected_) + " ciphertexts asked for");
  }
  for (const std::string& b : c.ciphertexts()) {
    bytes_ += static_cast<std::int64_t>(b.size());
    try {
      out_.push_back(ckks::load_ciphertext(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()), context_));
    } catch (const ckks::SerializationError& e) {
      fail(grpc::StatusCode::INVALID_ARGUMENT, what_ + ": ciphertext rejected: " + e.what());
    }
  }
  if (!c.last()) return false;
  if (static_cast<std::int64_t>(out_.size()) != expected_) {
    fail(grpc::StatusCode::INVALID_ARGUMENT,
         what_ + ": expected " + std::to_string(expected_) + " ciphertexts, got " + std::to_string(out_.size()));
  }
  return true;
}

}  // namespace heinfer::protocol
