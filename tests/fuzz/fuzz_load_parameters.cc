// libFuzzer target: load_parameters.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer::ckks;
  try {
    const EncryptionParameters p = load_parameters(fuzz::bytes(data, size), fuzz::kMaxBytes);
    fuzz::require_same(to_bytes(p), data, size);
  } catch (const SerializationError&) {
  }
  return 0;
}
