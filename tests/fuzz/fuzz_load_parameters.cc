// libFuzzer target: load_parameters (ckks/serialization.h). Contract: SerializationError,
// or parameters that re-serialize to the same bytes.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  fuzz::check_canonical(
      data, size, [](std::span<const uint8_t> b) { return ckks::load_parameters(b, fuzz::kMaxBytes); },
      [](const ckks::EncryptionParameters& p) { return ckks::to_bytes(p); });
  return 0;
}
