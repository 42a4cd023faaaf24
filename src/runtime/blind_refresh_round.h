// The server's side of a blind refresh round (model-private mode): ciphertexts whose
// levels ran out go to the client masked and come back at the top level
// (ckks/blind_refresh.h for the scheme, RoundFunction::BlindRefresh for the client).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encryptor.h"
#include "runtime/client.h"

namespace heinfer::runtime {

/// Refreshes `cts` (expanded, size 2, NTT form, each at a level that carries
/// `log2_range` mask bits: ckks::refresh_fits) in one round of `client`: each is
/// re-randomized with `public_key_encryptor` and masked with fresh CSPRNG randomness, sent
/// as a window of one (in input order: the client sees uniform masks, so the order tells
/// it nothing), and the replies are unmasked. Returns the refreshed ciphertexts at the
/// top level, in input order, at their input scales. Throws std::invalid_argument for a
/// ciphertext the mask does not fit, OverflowError when the client refuses (it names the
/// layer), std::runtime_error when the client returns a reply count or a ciphertext
/// that is not at the top level.
std::vector<ckks::Ciphertext> blind_refresh_round(Client& client, std::span<const ckks::Ciphertext* const> cts,
                                                  int log2_range, const ckks::Encryptor& public_key_encryptor,
                                                  const ckks::CKKSContext& context, std::int64_t node,
                                                  const std::string& layer);

}  // namespace heinfer::runtime
