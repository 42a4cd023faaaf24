// libFuzzer target: load_secret_key (secret_key_io.h).
#include "ckks/secret_key_io.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer::ckks;
  const CKKSContext& ctx = fuzz::context();
  try {
    const SecretKey sk = load_secret_key(fuzz::bytes(data, size), ctx);
    fuzz::require_same(secret_key_to_bytes(sk, ctx), data, size);
  } catch (const SerializationError&) {
  }
  return 0;
}
