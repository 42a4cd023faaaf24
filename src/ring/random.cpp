#include "ring/random.h"

#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace heinfer::ring {

namespace {

void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium initialisation failed");
}

const uint8_t kZeros[4096] = {};

// Cumulative table for the discrete Gaussian over [-B, B]: T[k] = round(2^63 · P(X <= -B + k))
// for k = 0 .. 2B - 1. X = -B + #{k : r >= T[k]} for r uniform in [0, 2^63).
struct GaussianTable {
  static constexpr int kSize = 2 * kErrorBound;
  uint64_t t[kSize];
  GaussianTable() {
    long double w[2 * kErrorBound + 1];
    long double total = 0;
    for (int x = -kErrorBound; x <= kErrorBound; ++x) {
      const long double v =
          std::exp(-static_cast<long double>(x) * x / (2.0L * kErrorSigma * kErrorSigma));
      w[x + kErrorBound] = v;
      total += v;
    }
    long double cdf = 0;
    for (int k = 0; k < kSize; ++k) {
      cdf += w[k] / total;
      t[k] = static_cast<uint64_t>(std::llround(std::ldexp(cdf, 63)));
    }
  }
};

const GaussianTable& gaussian_table() {
  static const GaussianTable table;
  return table;
}

}  // namespace

Seed random_seed() {
  ensure_sodium();
  Seed s;
  randombytes_buf(s.data(), s.size());
  return s;
}

Prng::Prng(const Seed& seed, StreamPurpose purpose, uint32_t a, uint32_t b) : key_(seed) {
  ensure_sodium();
  const uint32_t words[3] = {static_cast<uint32_t>(purpose), a, b};
  for (int w = 0; w < 3; ++w) {
    for (int i = 0; i < 4; ++i) nonce_[4 * w + i] = static_cast<uint8_t>(words[w] >> (8 * i));
  }
}

Prng::~Prng() {
  sodium_memzero(key_.data(), key_.size());
  sodium_memzero(buffer_, sizeof(buffer_));
}

void Prng::refill() {
  crypto_stream_chacha20_ietf_xor_ic(buffer_, kZeros, sizeof(buffer_), nonce_.data(), counter_,
                                     key_.data());
  counter_ += sizeof(buffer_) / 64;
  if (counter_ == 0) throw std::runtime_error("Prng: ChaCha20 stream exhausted");
  pos_ = 0;
  filled_ = sizeof(buffer_);
}

void Prng::fill(uint8_t* out, size_t len) {
  while (len > 0) {
    if (pos_ == filled_) refill();
    const size_t take = std::min(len, filled_ - pos_);
    std::memcpy(out, buffer_ + pos_, take);
    pos_ += take;
    out += take;
    len -= take;
  }
}

uint64_t Prng::next_u64() {
  uint8_t b[8];
  fill(b, 8);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
  return v;
}

void sample_ternary(Prng& prng, int8_t* out, size_t n) {
  static constexpr int8_t kMap[3] = {0, 1, -1};
  uint8_t buf[256];
  size_t i = 0;
  while (i < n) {
    prng.fill(buf, sizeof(buf));
    for (size_t k = 0; k < sizeof(buf) && i < n; ++k) {
      if (buf[k] < 255) out[i++] = kMap[buf[k] % 3];  // reject 255: 255 = 3 · 85
    }
  }
}

void sample_gaussian(Prng& prng, int8_t* out, size_t n) {
  const GaussianTable& tab = gaussian_table();
  constexpr size_t kBatch = 64;
  uint64_t r[kBatch];
  for (size_t base = 0; base < n; base += kBatch) {
    const size_t len = std::min(kBatch, n - base);
    prng.fill(reinterpret_cast<uint8_t*>(r), len * 8);
    for (size_t i = 0; i < len; ++i) {
      const uint64_t v = r[i] >> 1;  // uniform in [0, 2^63)
      int below = 0;  // #{k : v < T[k]}, branch-free full scan
      for (int k = 0; k < GaussianTable::kSize; ++k) below += static_cast<int>((v - tab.t[k]) >> 63);
      out[base + i] = static_cast<int8_t>(kErrorBound - below);
    }
  }
}

void sample_uniform(Prng& prng, const Modulus& q, uint64_t* out, size_t n) {
  const int bits = q.bit_count;
  const size_t bytes = static_cast<size_t>((bits + 7) / 8);
  const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  const uint64_t qv = q.value;
  // Each candidate is the next `bytes` bytes of the stream, little-endian, masked. An
  // 8-byte load (the buffer has 8 bytes of slack) masked to `bits` is that value: one load
  // instead of a memcpy of variable length per candidate.
  uint8_t buf[4096 + 8] = {};
  const size_t per_fill = 4096 / bytes;
  size_t i = 0;
  while (i < n) {
    prng.fill(buf, per_fill * bytes);
    const uint8_t* p = buf;
    for (size_t k = 0; k < per_fill && i < n; ++k, p += bytes) {
      uint64_t v = 0;
      static_assert(std::endian::native == std::endian::little);
      std::memcpy(&v, p, sizeof v);
      v &= mask;
      if (v < qv) out[i++] = v;
    }
  }
}

void small_to_limb(const int8_t* x, size_t n, const Modulus& q, uint64_t* out) {
  const uint64_t qv = q.value;
  for (size_t i = 0; i < n; ++i) {
    const int64_t v = x[i];
    out[i] = v < 0 ? qv - static_cast<uint64_t>(-v) : static_cast<uint64_t>(v);
  }
}

}  // namespace heinfer::ring
