// Internal: header and field codecs shared by serialization.cpp and secret_key_io.cpp.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <span>
#include <streambuf>
#include <string>
#include <vector>

#include "ckks/context.h"
#include "ckks/serialization.h"

namespace heinfer::ckks::detail {

inline constexpr size_t kHeaderBytes = 48;

const char* object_type_name(uint16_t type);

/// Bytes per stored coefficient modulo q.
inline size_t coeff_width(const ring::Modulus& q) {
  return static_cast<size_t>((q.bit_count + 7) / 8);
}

class Writer {
 public:
  explicit Writer(std::ostream& os) : os_(os) {}
  void u8(uint8_t v) { put(&v, 1); }
  void u16(uint16_t v) { le(v, 2); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void f64(double v);
  void bytes(const uint8_t* p, size_t len) { put(p, len); }
  /// n coefficients of limb modulo q, ceil(bits/8) bytes each.
  void coeffs(const uint64_t* p, size_t n, const ring::Modulus& q);
  void header(ObjectType type, const Fingerprint& fp, uint64_t body_size);

 private:
  void le(uint64_t v, int len);
  void put(const void* p, size_t len);
  std::ostream& os_;
};

struct Header {
  uint16_t version = 0, type = 0;
  Fingerprint fingerprint{};
  uint64_t body_size = 0;
};

class Reader {
 public:
  explicit Reader(std::istream& is) : is_(is) {}
  /// Reads and validates the header: magic, version, type == expected (a secret key is
  /// refused by every other loader), body size <= max_bytes. Starts the body budget.
  Header header(ObjectType expected, uint64_t max_bytes);
  uint8_t u8() { uint8_t v; get(&v, 1); return v; }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  double f64();
  void bytes(uint8_t* p, size_t len) { get(p, len); }
  /// n coefficients modulo q; throws if one is >= q. `what` names the object.
  void coeffs(uint64_t* out, size_t n, const ring::Modulus& q, const char* what);
  /// Throws unless exactly `bytes` body bytes remain (the size implied by the declared
  /// shape; checked before allocating).
  void require(uint64_t bytes, const char* what) const;
  uint64_t remaining() const { return remaining_; }
  /// Throws unless the body was consumed exactly.
  void finish(const char* what) const;

 private:
  uint64_t le(int len);
  void get(void* p, size_t len);
  std::istream& is_;
  bool in_body_ = false;
  uint64_t remaining_ = 0;
  std::vector<uint8_t> buf_;
};

/// Throws SerializationError if the header fingerprint is not the context's.
void check_fingerprint(const Header& h, const CKKSContext& ctx);

/// A read-only streambuf over a byte span (no copy).
class SpanBuf : public std::streambuf {
 public:
  explicit SpanBuf(std::span<const uint8_t> bytes);
};

/// An output streambuf appending to a byte vector.
class VectorBuf : public std::streambuf {
 public:
  explicit VectorBuf(std::vector<uint8_t>& out) : out_(out) {}

 protected:
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;

 private:
  std::vector<uint8_t>& out_;
};

/// Runs load(stream) over a span and rejects trailing bytes.
template <class F>
auto load_from_span(std::span<const uint8_t> bytes, F&& load) {
  SpanBuf buf(bytes);
  std::istream is(&buf);
  auto result = load(is);
  if (is.peek() != std::char_traits<char>::eof()) {
    throw SerializationError("trailing bytes after the serialized object");
  }
  return result;
}

/// Runs save(stream) into a byte vector.
template <class F>
std::vector<uint8_t> save_to_vector(F&& save) {
  std::vector<uint8_t> out;
  VectorBuf buf(out);
  std::ostream os(&buf);
  save(os);
  return out;
}

}  // namespace heinfer::ckks::detail
