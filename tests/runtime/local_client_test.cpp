// The in-process client's input memory: the values of elements it has encrypted go back
// to the kernel (a streamed run encrypts its input band by band), the ciphertexts still
// decrypt to the values, and an element cannot be encrypted twice from released memory.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "runtime/local_client.h"

namespace heinfer::runtime {
namespace {

/// Resident pages of the whole pages inside [p, p + bytes) (mincore).
std::size_t resident_pages(const void* p, std::size_t bytes) {
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = (begin + page - 1) / page * page, last = (begin + bytes) / page * page;
  std::vector<unsigned char> v((last - first) / page);
  if (mincore(reinterpret_cast<void*>(first), last - first, v.data()) != 0) return SIZE_MAX;
  std::size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

/// Elements of rows [a, b) of every channel of a per-sample [C, H, W] input, ascending.
std::vector<std::int64_t> rows(std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t a, std::int64_t b) {
  std::vector<std::int64_t> e;
  for (std::int64_t ch = 0; ch < c; ++ch) {
    for (std::int64_t r = a; r < b; ++r) {
      for (std::int64_t x = 0; x < w; ++x) e.push_back((ch * h + r) * w + x);
    }
  }
  return e;
}

TEST(LocalClient, EncryptedInputValuesAreReleasedAndNotEncryptedTwice) {
  // N = 4096, {40, 30}: 128-bit secure without a special prime; 4,096 samples per ciphertext.
  auto ctx = ckks::CKKSContext::create(ckks::EncryptionParameters(4096, {40, 30}, {}));
  LocalClient client(ctx, ckks::Packing::Complex, 0x1p30);
  constexpr std::int64_t C = 2, H = 8, W = 8, batch = 4096;
  std::vector<PlainTensor> inputs(1);
  PlainTensor& x = inputs[0];
  x.shape = {C, H, W};
  x.batch = batch;
  x.data.resize(static_cast<std::size_t>(C * H * W * batch));
  for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = std::sin(0.001 * static_cast<double>(i));
  const std::vector<double> original = x.data;
  const std::size_t bytes = x.data.size() * sizeof(double);  // 4 MiB: 1,024 pages
  const std::size_t pages = resident_pages(x.data.data(), bytes);
  ASSERT_GE(pages, 1000u);
  client.set_inputs(&inputs);

  // Rows [0, 3), then [3, 8): as a streamed run asks for them.
  const auto first = rows(C, H, W, 0, 3), second = rows(C, H, W, 3, H);
  EncryptRequest req;
  req.name = "x";
  req.bound = 1.0;
  req.elements = first;
  std::vector<ckks::Ciphertext> a = client.encrypt(req);
  // Each channel's rows [0, 3) are 24 elements of 32 KiB: all but the partial end pages go.
  const std::size_t after_first = resident_pages(x.data.data(), bytes);
  EXPECT_LE(after_first, pages - static_cast<std::size_t>(first.size()) * 8 + 2 * C);
  req.elements = second;
  std::vector<ckks::Ciphertext> b = client.encrypt(req);
  EXPECT_LE(resident_pages(x.data.data(), bytes), 2u);  // at most the buffer's two partial end pages

  // The ciphertexts hold the values the released memory held.
  std::vector<const ckks::Ciphertext*> cts;
  for (const auto& c : a) cts.push_back(&c);
  for (const auto& c : b) cts.push_back(&c);
  std::vector<std::int64_t> order = first;
  order.insert(order.end(), second.begin(), second.end());
  const PlainTensor y = client.decrypt(cts, {}, {static_cast<std::int64_t>(cts.size())}, batch, "x", 2.0);
  double worst = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    for (std::int64_t s = 0; s < batch; ++s) {
      worst = std::max(worst, std::abs(y.element(static_cast<std::int64_t>(k))[static_cast<std::size_t>(s)] -
                                       original[static_cast<std::size_t>(order[k] * batch + s)]));
    }
  }
  EXPECT_LT(worst, 1e-5);

  // Asking again for an element whose values are gone is refused, not encrypted as zeros.
  const std::vector<std::int64_t> again = {5};
  req.elements = again;
  EXPECT_THROW(client.encrypt(req), std::logic_error);
  // A new input set starts afresh.
  std::vector<PlainTensor> fresh(1);
  fresh[0].shape = {C, H, W};
  fresh[0].batch = batch;
  fresh[0].data.assign(static_cast<std::size_t>(C * H * W * batch), 0.5);
  client.set_inputs(&fresh);
  EXPECT_EQ(client.encrypt(req).size(), 1u);
  client.set_inputs(nullptr);
}

}  // namespace
}  // namespace heinfer::runtime
