// libFuzzer target: load_public_key.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer::ckks;
  const CKKSContext& ctx = fuzz::context();
  try {
    const PublicKey pk = load_public_key(fuzz::bytes(data, size), ctx, fuzz::kMaxBytes);
    fuzz::require_same(to_bytes(pk, ctx), data, size);
  } catch (const SerializationError&) {
  }
  return 0;
}
