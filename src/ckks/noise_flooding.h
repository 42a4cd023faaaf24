// Circuit privacy of a ciphertext the secret-key holder will decrypt: re-randomization
// with a public-key encryption of zero, plus noise flooding.
//
// A ciphertext the server computed from the client's fresh ciphertexts carries the
// server's secrets in two places the client can read after decrypting it:
//  - c_1 is the same linear combination of the client's c_1 (which it knows: it made
//    them) as the message is of its inputs, with the weights as coefficients; adding
//    Enc_pk(0) makes c_1 an RLWE sample (Gentry's thesis 2009, §21);
//  - the noise e of Δ·m + e depends on the weights (Li and Micciancio, EUROCRYPT 2021, §3);
//    adding an integer polynomial with coefficients uniform in [-2^F, 2^F) hides any
//    |e| <= B within statistical distance B / 2^(F+1) per coefficient (smudging lemma,
//    Asharov et al., EUROCRYPT 2012, Lemma 2.1), at the price of a slot error of about
//    2^F·sqrt(N/3) / Δ.
#pragma once

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encryptor.h"

namespace heinfer::ckks {

/// Adds Enc_pk(0) (`public_key_encryptor`, at ct's level) and a fresh polynomial with
/// integer coefficients uniform in [-2^flood_bits, 2^flood_bits) (libsodium CSPRNG) to
/// `ct` (expanded, size 2, NTT form); its scale is unchanged. Throws
/// std::invalid_argument for another shape, flood_bits < 1, or a level whose modulus
/// does not exceed 2^(flood_bits + 3).
void flood_noise(Ciphertext& ct, const Encryptor& public_key_encryptor, int flood_bits, const CKKSContext& context);

}  // namespace heinfer::ckks
