#include "ckks/packing.h"

namespace heinfer::ckks {

std::string_view packing_name(Packing p) { return p == Packing::Complex ? "complex" : "real"; }

std::int64_t samples_per_ciphertext(Packing p, std::size_t n) {
  return static_cast<std::int64_t>(p == Packing::Complex ? n : n / 2);
}

}  // namespace heinfer::ckks
