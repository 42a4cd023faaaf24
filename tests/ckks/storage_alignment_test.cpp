// Limb storage starts on a cache line: ciphertexts (fresh, copied, resized), plaintexts,
// keys and the scratch buffers, so that the vector kernels' loads never straddle two lines.
#include <gtest/gtest.h>

#include <cstdint>

#include "ckks/ciphertext.h"
#include "ckks/keys.h"
#include "ckks/plaintext.h"
#include "ring/aligned_memory.h"
#include "ring/scratch.h"

namespace heinfer {
namespace {

bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % ring::kLimbAlignment == 0; }

enum class TestSlot : int { A, Count };

TEST(StorageAlignment, LimbsStartOnACacheLine) {
  for (std::size_t n : {64u, 8192u}) {
    ckks::Ciphertext ct;
    ct.resize(n, 2, 4);
    EXPECT_TRUE(aligned(ct.data().data())) << n;
    EXPECT_TRUE(aligned(ct.limb(1, 3))) << n;
    const ckks::Ciphertext copy = ct;
    EXPECT_TRUE(aligned(copy.data().data())) << n;
    ckks::Ciphertext on_heap(std::pmr::new_delete_resource());
    on_heap.resize(n, 2, 4);
    const ckks::Ciphertext copied_from_unaligned = on_heap;  // copies land in aligned memory
    EXPECT_TRUE(aligned(copied_from_unaligned.data().data())) << n;
    ckks::Plaintext pt;
    pt.resize(n, 3);
    EXPECT_TRUE(aligned(pt.limb(2))) << n;
    ckks::KeySwitchingKey k;
    k.data.resize(3 * n + 1);
    EXPECT_TRUE(aligned(k.data.data())) << n;
  }
  EXPECT_TRUE(aligned(ring::detail::scratch(TestSlot::A, 8192 * 5)));
  void* block = ring::aligned_resource()->allocate(24, 8);
  EXPECT_TRUE(aligned(block));
  ring::aligned_resource()->deallocate(block, 24, 8);
}

}  // namespace
}  // namespace heinfer
