// libFuzzer target: load_ciphertext.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer::ckks;
  const CKKSContext& ctx = fuzz::context();
  try {
    Ciphertext ct = load_ciphertext(fuzz::bytes(data, size), ctx, fuzz::kMaxBytes);
    fuzz::require_same(to_bytes(ct, ctx), data, size);
    ct.expand(ctx);  // seeded ciphertexts must expand cleanly
  } catch (const SerializationError&) {
  }
  return 0;
}
