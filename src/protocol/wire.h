// Helpers shared by the protocol server and client (internal).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/serialization.h"

namespace heinfer::protocol {

/// Payload budget of one chunk: a quarter of the message limit (>= 1 MiB).
inline std::size_t chunk_budget(int max_message_mib) {
  const std::size_t b = static_cast<std::size_t>(max_message_mib) << 18;
  return b < (std::size_t{1} << 20) ? std::size_t{1} << 20 : b;
}

inline std::string ct_bytes(const ckks::Ciphertext& ct, const ckks::CKKSContext& ctx) {
  const std::vector<uint8_t> b = ckks::to_bytes(ct, ctx);
  return std::string(b.begin(), b.end());
}

std::string hex(const std::string& bytes);

}  // namespace heinfer::protocol
