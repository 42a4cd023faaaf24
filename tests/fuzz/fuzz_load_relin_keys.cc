// libFuzzer target: load_relin_keys (ckks/serialization.h)
// against the fuzzing context. Contract: SerializationError, or an object that
// re-serializes to the same bytes.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  const ckks::CKKSContext& ctx = fuzz::context();
  fuzz::check_canonical(
      data, size, [&](std::span<const uint8_t> b) { return ckks::load_relin_keys(b, ctx, fuzz::kMaxBytes); },
      [&](const ckks::RelinKeys& o) { return ckks::to_bytes(o, ctx); });
  return 0;
}
