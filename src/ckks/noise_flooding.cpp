#include "ckks/noise_flooding.h"

#include <stdexcept>

#include "ckks/blind_refresh.h"

namespace heinfer::ckks {

void flood_noise(Ciphertext& ct, const Encryptor& public_key_encryptor, int flood_bits, const CKKSContext& context) {
  if (flood_bits < 1) throw std::invalid_argument("flood_noise: at least one bit of flooding noise");
  // A refresh mask the server keeps is exactly flooding noise it never subtracts.
  (void)mask_for_refresh(ct, public_key_encryptor, flood_bits, context);
}

}  // namespace heinfer::ckks
