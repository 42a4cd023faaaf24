#include "ring/aligned_memory.h"

#include <algorithm>

namespace heinfer::ring {
namespace {

class AlignedHeap final : public std::pmr::memory_resource {
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    return ::operator new(bytes, std::align_val_t{std::max(alignment, kLimbAlignment)});
  }
  void do_deallocate(void* p, std::size_t, std::size_t alignment) override {
    ::operator delete(p, std::align_val_t{std::max(alignment, kLimbAlignment)});
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

}  // namespace

std::pmr::memory_resource* aligned_resource() {
  static AlignedHeap heap;
  return &heap;
}

}  // namespace heinfer::ring
