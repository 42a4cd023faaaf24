// Helpers shared by the protocol server and client (internal).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/serialization.h"
#include "protocol/heinfer.grpc.pb.h"
#include "runtime/run_stats.h"

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

/// Appends ascending element indices to `r` as [begin, end) ranges of consecutive ones.
void add_ranges(EncryptRequest& r, std::span<const std::int64_t> elements);

/// A layer's progress message (node index and its statistics; no elapsed time).
void fill_progress(LayerProgress& p, std::size_t node, const runtime::LayerStats& l);

/// Lower-case hexadecimal of `bytes`.
std::string hex(const std::string& bytes);

/// The whole file at `path` (PEM certificates and keys). Throws std::runtime_error
/// "cannot read 'path'".
std::string read_text_file(const std::string& path);

/// Key bytes per OpenSession chunk: fits every server (--max-message-mib >= 4).
inline constexpr std::size_t kKeyChunkBytes = std::size_t{1} << 20;

/// OpenSession as a client stream: the header, then `relin` + `galois` + `public_key`
/// (serialized keys; the public key only for a model-private model) in chunks of at most
/// `budget` bytes. Returns the call's status; on success sets *id. Adds the protobuf
/// bytes written to *bytes_sent (may be null).
grpc::Status open_session(Inference::Stub& stub, grpc::ClientContext& ctx, const std::string& model,
                          const std::string& fingerprint, const std::string& relin, const std::string& galois,
                          std::size_t budget, std::string* id, std::int64_t* bytes_sent = nullptr,
                          const std::string& public_key = {});

}  // namespace heinfer::protocol
