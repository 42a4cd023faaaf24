// libFuzzer target: load_secret_key (ckks/secret_key_io.h; client side only)
// against the fuzzing context. Contract: SerializationError, or an object that
// re-serializes to the same bytes.
#include "ckks/secret_key_io.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  const ckks::CKKSContext& ctx = fuzz::context();
  fuzz::check_canonical(
      data, size, [&](std::span<const uint8_t> b) { return ckks::load_secret_key(b, ctx); },
      [&](const ckks::SecretKey& o) { return ckks::secret_key_to_bytes(o, ctx); });
  return 0;
}
