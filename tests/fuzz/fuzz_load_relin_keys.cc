// libFuzzer target: load_relin_keys.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer::ckks;
  const CKKSContext& ctx = fuzz::context();
  try {
    const RelinKeys rk = load_relin_keys(fuzz::bytes(data, size), ctx, fuzz::kMaxBytes);
    fuzz::require_same(to_bytes(rk, ctx), data, size);
  } catch (const SerializationError&) {
  }
  return 0;
}
