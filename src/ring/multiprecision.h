// Small unsigned multiprecision helpers for exact CRT composition (decoding) and
// RNS constants. Numbers are little-endian arrays of 64-bit words of a fixed length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ring/modulus.h"

namespace heinfer::ring::mp {

/// Product of the given word-sized factors; the result has factors.size() + 1 words.
std::vector<uint64_t> product(const std::vector<uint64_t>& factors);

/// acc[0..words) += a[0..words) * b; returns the carry-out word.
uint64_t multiply_add_word(uint64_t* acc, const uint64_t* a, uint64_t b, size_t words);

/// a -= b over `words` words; returns the borrow (1 if a < b before the call).
uint64_t sub(uint64_t* a, const uint64_t* b, size_t words);

/// out = a - b (requires a >= b).
void sub(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t words);

/// -1, 0, 1 for a < b, a == b, a > b.
int compare(const uint64_t* a, const uint64_t* b, size_t words);

/// a mod m.
uint64_t mod_word(const uint64_t* a, size_t words, const Modulus& m);

/// Nearest double (the top 128 significant bits are used; exact to double rounding).
double to_double(const uint64_t* a, size_t words);

/// log2(a) for a > 0 (approximate to double precision); -infinity for a = 0.
double log2(const uint64_t* a, size_t words);

/// a >>= 1.
void shift_right_one(uint64_t* a, size_t words);

}  // namespace heinfer::ring::mp
