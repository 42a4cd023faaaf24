// libFuzzer target: load_galois_keys.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer::ckks;
  const CKKSContext& ctx = fuzz::context();
  try {
    const GaloisKeys gk = load_galois_keys(fuzz::bytes(data, size), ctx, fuzz::kMaxBytes);
    fuzz::require_same(to_bytes(gk, ctx), data, size);
  } catch (const SerializationError&) {
  }
  return 0;
}
