#include "ckks/serialization_format.h"

#include <algorithm>
#include <cstring>

namespace heinfer::ckks::detail {

namespace {
constexpr uint8_t kMagic[4] = {'H', 'E', 'C', 'K'};
}  // namespace

const char* object_type_name(uint16_t type) {
  switch (static_cast<ObjectType>(type)) {
    case ObjectType::Parameters: return "Parameters";
    case ObjectType::Ciphertext: return "Ciphertext";
    case ObjectType::PublicKey: return "PublicKey";
    case ObjectType::RelinKeys: return "RelinKeys";
    case ObjectType::GaloisKeys: return "GaloisKeys";
    case ObjectType::SecretKey: return "SecretKey";
  }
  return "unknown";
}

// ------------------------------------------------------------------ Writer

void Writer::put(const void* p, size_t len) {
  os_.write(static_cast<const char*>(p), static_cast<std::streamsize>(len));
  if (!os_) throw SerializationError("write failed (output stream error)");
}

void Writer::le(uint64_t v, int len) {
  uint8_t b[8];
  for (int i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  put(b, static_cast<size_t>(len));
}

void Writer::f64(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  u64(bits);
}

void Writer::coeffs(const uint64_t* p, size_t n, const ring::Modulus& q) {
  const size_t w = coeff_width(q);
  std::vector<uint8_t> buf(n * w);
  for (size_t k = 0; k < n; ++k) {
    for (size_t b = 0; b < w; ++b) buf[k * w + b] = static_cast<uint8_t>(p[k] >> (8 * b));
  }
  put(buf.data(), buf.size());
}

void Writer::header(ObjectType type, const Fingerprint& fp, uint64_t body_size) {
  put(kMagic, 4);
  u16(kFormatVersion);
  u16(static_cast<uint16_t>(type));
  put(fp.data(), fp.size());
  u64(body_size);
}

// ------------------------------------------------------------------ Reader

void Reader::get(void* p, size_t len) {
  if (in_body_) {
    if (len > remaining_) {
      throw SerializationError("body shorter than its content (declared size too small)");
    }
    remaining_ -= len;
  }
  is_.read(static_cast<char*>(p), static_cast<std::streamsize>(len));
  if (static_cast<size_t>(is_.gcount()) != len) {
    throw SerializationError("truncated input: expected " + std::to_string(len) +
                             " more bytes");
  }
}

uint64_t Reader::le(int len) {
  uint8_t b[8];
  get(b, static_cast<size_t>(len));
  uint64_t v = 0;
  for (int i = 0; i < len; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
  return v;
}

double Reader::f64() {
  const uint64_t bits = u64();
  double v;
  std::memcpy(&v, &bits, 8);
  return v;
}

Header Reader::header(ObjectType expected, uint64_t max_bytes) {
  uint8_t magic[4];
  get(magic, 4);
  if (std::memcmp(magic, kMagic, 4) != 0) {
    throw SerializationError("bad magic: not a heinfer CKKS object");
  }
  Header h;
  h.version = u16();
  if (h.version != kFormatVersion) {
    throw SerializationError("unsupported format version " + std::to_string(h.version) +
                             " (this build reads version " + std::to_string(kFormatVersion) + ")");
  }
  h.type = u16();
  if (h.type != static_cast<uint16_t>(expected)) {
    if (h.type == static_cast<uint16_t>(ObjectType::SecretKey)) {
      throw SerializationError(std::string("refusing to load a SecretKey through the ") +
                               object_type_name(static_cast<uint16_t>(expected)) +
                               " loader (secret keys load only via secret_key_io.h)");
    }
    throw SerializationError(std::string("wrong object type: expected ") +
                             object_type_name(static_cast<uint16_t>(expected)) + ", found " +
                             object_type_name(h.type) + " (" + std::to_string(h.type) + ")");
  }
  get(h.fingerprint.data(), h.fingerprint.size());
  h.body_size = u64();
  if (h.body_size > max_bytes) {
    throw SerializationError("declared body size " + std::to_string(h.body_size) +
                             " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  in_body_ = true;
  remaining_ = h.body_size;
  return h;
}

void Reader::coeffs(uint64_t* out, size_t n, const ring::Modulus& q, const char* what) {
  const size_t w = coeff_width(q);
  buf_.resize(n * w);
  get(buf_.data(), buf_.size());
  const uint64_t qv = q.value;
  bool bad = false;
  for (size_t k = 0; k < n; ++k) {
    uint64_t v = 0;
    for (size_t b = 0; b < w; ++b) v |= static_cast<uint64_t>(buf_[k * w + b]) << (8 * b);
    out[k] = v;
    bad |= v >= qv;
  }
  if (bad) {
    throw SerializationError(std::string(what) + ": coefficient >= its modulus " +
                             std::to_string(qv));
  }
}

void Reader::require(uint64_t bytes, const char* what) const {
  if (bytes != remaining_) {
    throw SerializationError(std::string(what) + ": body size mismatch (shape needs " +
                             std::to_string(bytes) + " more bytes, header declares " +
                             std::to_string(remaining_) + ")");
  }
}

void Reader::finish(const char* what) const {
  if (remaining_ != 0) {
    throw SerializationError(std::string(what) + ": " + std::to_string(remaining_) +
                             " unused bytes in the body");
  }
}

void check_fingerprint(const Header& h, const CKKSContext& ctx) {
  if (h.fingerprint != ctx.fingerprint()) {
    throw SerializationError(std::string(object_type_name(h.type)) +
                             ": parameter fingerprint does not match the context "
                             "(object made with other parameters)");
  }
}

// ------------------------------------------------------------------ stream buffers

SpanBuf::SpanBuf(std::span<const uint8_t> bytes) {
  char* p = const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));
  setg(p, p, p + bytes.size());
}

VectorBuf::int_type VectorBuf::overflow(int_type c) {
  if (c != traits_type::eof()) out_.push_back(static_cast<uint8_t>(c));
  return traits_type::not_eof(c);
}

std::streamsize VectorBuf::xsputn(const char* s, std::streamsize n) {
  out_.insert(out_.end(), reinterpret_cast<const uint8_t*>(s),
              reinterpret_cast<const uint8_t*>(s) + n);
  return n;
}

}  // namespace heinfer::ckks::detail
