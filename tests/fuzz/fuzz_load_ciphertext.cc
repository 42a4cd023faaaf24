// libFuzzer target: load_ciphertext (ckks/serialization.h), full and seeded (compact)
// ciphertexts, against the fuzzing context. Contract: SerializationError, or a
// ciphertext that re-serializes to the same bytes and, when compact, expands to a full
// ciphertext that round-trips too.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  const ckks::CKKSContext& ctx = fuzz::context();
  try {
    ckks::Ciphertext ct = ckks::load_ciphertext(fuzz::bytes(data, size), ctx, fuzz::kMaxBytes);
    fuzz::require_same(ckks::to_bytes(ct, ctx), data, size);
    if (ct.is_compact()) {
      ct.expand(ctx);
      const std::vector<uint8_t> full = ckks::to_bytes(ct, ctx);
      const ckks::Ciphertext again = ckks::load_ciphertext(full, ctx, fuzz::kMaxBytes);
      fuzz::require_same(ckks::to_bytes(again, ctx), full.data(), full.size());
    }
  } catch (const ckks::SerializationError&) {
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  return 0;
}
