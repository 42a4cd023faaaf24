#include "ckks/scratch.h"

#include <array>
#include <vector>

namespace heinfer::ckks::detail {

uint64_t* scratch(Scratch slot, size_t words) {
  thread_local std::array<std::vector<uint64_t>, static_cast<size_t>(Scratch::Count)> buffers;
  std::vector<uint64_t>& b = buffers[static_cast<size_t>(slot)];
  if (b.size() < words) b.resize(words);
  return b.data();
}

}  // namespace heinfer::ckks::detail
