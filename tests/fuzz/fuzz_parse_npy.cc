// libFuzzer target: parse_npy (runtime/npy.h). Contract: NpyError, or an array that
// serializes (serialize_npy) to bytes that parse to the same array; its element
// conversions either succeed or throw NpyError.
#include "fuzz_common.h"
#include "runtime/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  try {
    const runtime::NpyArray a = runtime::parse_npy(std::span<const unsigned char>(data, size), "fuzz");
    const std::vector<unsigned char> again = runtime::serialize_npy(a);
    const runtime::NpyArray b = runtime::parse_npy(again, "re-serialized");
    if (b.dtype != a.dtype || b.shape != a.shape || b.bytes != a.bytes) fuzz::violation("npy round trip differs");
    if (a.size() <= (std::int64_t{1} << 16)) {
      if (a.to_double().size() != static_cast<std::size_t>(a.size())) fuzz::violation("to_double size");
      try {
        if (a.to_int64().size() != static_cast<std::size_t>(a.size())) fuzz::violation("to_int64 size");
      } catch (const runtime::NpyError&) {  // non-integral floats
      }
    }
  } catch (const runtime::NpyError&) {
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  return 0;
}
