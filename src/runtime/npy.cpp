#include "runtime/npy.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "runtime/atomic_file.h"

namespace heinfer::runtime {
namespace {

static_assert(std::endian::native == std::endian::little, "little-endian host required");

constexpr unsigned char kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/// A tiny parser for the header's Python dict literal.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  void expect(char c) {
    skip_ws();
    if (pos_ >= s_.size() || s_[pos_] != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool accept(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  std::string string_literal() {
    skip_ws();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) fail("expected a string");
    const char q = s_[pos_++];
    const std::size_t end = s_.find(q, pos_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string v(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return v;
  }
  bool boolean() {
    skip_ws();
    if (s_.substr(pos_, 4) == "True") { pos_ += 4; return true; }
    if (s_.substr(pos_, 5) == "False") { pos_ += 5; return false; }
    fail("expected True or False");
  }
  std::vector<std::int64_t> tuple() {
    expect('(');
    std::vector<std::int64_t> dims;
    while (!accept(')')) {
      skip_ws();
      std::size_t start = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (start == pos_ || pos_ - start > 15) fail("expected a non-negative dimension");
      dims.push_back(std::stoll(std::string(s_.substr(start, pos_ - start))));
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }
  void finish() {
    skip_ws();
    if (pos_ != s_.size()) fail("trailing characters after the header dict");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw NpyError(source_ + ": malformed .npy header (" + what + ") in: " + std::string(s_));
  }

 private:
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  std::string_view s_;
  std::size_t pos_ = 0;
  const std::string& source_;
};

NpyDType parse_descr(const std::string& d, const std::string& source) {
  if (d == "<f4") return NpyDType::Float32;
  if (d == "<f8") return NpyDType::Float64;
  if (d == "<i8") return NpyDType::Int64;
  if (d == "<i4") return NpyDType::Int32;
  if (d == "|u1" || d == "<u1") return NpyDType::UInt8;
  throw NpyError(source + ": unsupported dtype '" + d +
                 "'; supported: '<f4' (float32), '<f8' (float64), '<i8' (int64), '<i4' (int32), "
                 "'|u1' (uint8), little-endian");
}

template <class T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

double element(const NpyArray& a, std::size_t i) {
  const unsigned char* p = a.bytes.data() + i * npy_item_size(a.dtype);
  switch (a.dtype) {
    case NpyDType::Float32: return load<float>(p);
    case NpyDType::Float64: return load<double>(p);
    case NpyDType::Int64: return static_cast<double>(load<std::int64_t>(p));
    case NpyDType::Int32: return load<std::int32_t>(p);
    case NpyDType::UInt8: return *p;
  }
  return 0.0;
}

}  // namespace

std::size_t npy_item_size(NpyDType t) {
  switch (t) {
    case NpyDType::Float32: case NpyDType::Int32: return 4;
    case NpyDType::Float64: case NpyDType::Int64: return 8;
    case NpyDType::UInt8: return 1;
  }
  return 0;
}

std::string npy_descr(NpyDType t) {
  switch (t) {
    case NpyDType::Float32: return "<f4";
    case NpyDType::Float64: return "<f8";
    case NpyDType::Int64: return "<i8";
    case NpyDType::Int32: return "<i4";
    case NpyDType::UInt8: return "|u1";
  }
  return "?";
}

std::int64_t NpyArray::size() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::vector<double> NpyArray::to_double() const {
  std::vector<double> v(static_cast<std::size_t>(size()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = element(*this, i);
  return v;
}

std::vector<std::int64_t> NpyArray::to_int64() const {
  std::vector<std::int64_t> v(static_cast<std::size_t>(size()));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (dtype == NpyDType::Int64) {
      v[i] = load<std::int64_t>(bytes.data() + i * 8);
      continue;
    }
    const double d = element(*this, i);
    // Range first: converting NaN, Inf or a value outside int64 is undefined behaviour.
    if (!(d >= -0x1p63 && d < 0x1p63) || d != std::trunc(d)) {
      throw NpyError("to_int64: element " + std::to_string(i) + " is not an integer in the int64 range");
    }
    v[i] = static_cast<std::int64_t>(d);
  }
  return v;
}

NpyArray parse_npy(std::span<const unsigned char> bytes, const std::string& source) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    throw NpyError(source + ": not a .npy file (bad magic string)");
  }
  const unsigned major = bytes[6], minor = bytes[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    throw NpyError(source + ": unsupported .npy format version " + std::to_string(major) + "." +
                   std::to_string(minor) + "; supported: 1.0, 2.0, 3.0");
  }
  std::size_t header_len = 0, prefix = 0;
  if (major == 1) {
    header_len = bytes[8] | (static_cast<std::size_t>(bytes[9]) << 8);
    prefix = 10;
  } else {
    if (bytes.size() < 12) throw NpyError(source + ": truncated .npy header");
    header_len = load<std::uint32_t>(bytes.data() + 8);
    prefix = 12;
  }
  if (header_len > bytes.size() - prefix) {
    throw NpyError(source + ": truncated .npy header (header length " + std::to_string(header_len) +
                   " exceeds the file)");
  }
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + prefix), header_len);
  if (header.empty() || header.back() != '\n') {
    throw NpyError(source + ": malformed .npy header (must end with a newline)");
  }
  HeaderParser p(header.substr(0, header.size() - 1), source);
  NpyArray a;
  bool has_descr = false, has_order = false, has_shape = false, fortran = false;
  p.expect('{');
  while (!p.accept('}')) {
    const std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr" && !has_descr) {
      a.dtype = parse_descr(p.string_literal(), source);
      has_descr = true;
    } else if (key == "fortran_order" && !has_order) {
      fortran = p.boolean();
      has_order = true;
    } else if (key == "shape" && !has_shape) {
      a.shape = p.tuple();
      has_shape = true;
    } else {
      p.fail("unexpected or duplicate key '" + key + "'");
    }
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  p.finish();
  if (!has_descr || !has_order || !has_shape) p.fail("missing descr, fortran_order or shape");
  if (fortran) throw NpyError(source + ": fortran_order=True is not supported; save C-ordered arrays");
  const std::size_t item = npy_item_size(a.dtype);
  std::size_t count = 1;
  for (std::int64_t d : a.shape) {
    if (d != 0 && count > (std::size_t{1} << 40) / static_cast<std::size_t>(d)) {
      throw NpyError(source + ": array shape too large");
    }
    count *= static_cast<std::size_t>(d);
  }
  const std::size_t data_len = bytes.size() - prefix - header_len;
  if (data_len != count * item) {
    throw NpyError(source + ": data has " + std::to_string(data_len) + " bytes but shape and dtype " +
                   npy_descr(a.dtype) + " need " + std::to_string(count * item) +
                   (data_len < count * item ? " (truncated file)" : " (trailing bytes)"));
  }
  a.bytes.assign(bytes.begin() + static_cast<std::ptrdiff_t>(prefix + header_len), bytes.end());
  return a;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw NpyError("cannot open '" + path.string() + "'");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw NpyError("error reading '" + path.string() + "'");
  std::string source = path.string();
  source.insert(0, 1, '\'');
  source.push_back('\'');
  return parse_npy(bytes, source);
}

std::vector<unsigned char> serialize_npy(const NpyArray& a) {
  std::string header = "{'descr': '" + npy_descr(a.dtype) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < a.shape.size(); ++i) {
    header += std::to_string(a.shape[i]) + (a.shape.size() == 1 || i + 1 < a.shape.size() ? "," : "");
    if (i + 1 < a.shape.size()) header += " ";
  }
  header += "), }";
  const bool v2 = header.size() + 11 > 65535;
  const std::size_t prefix = v2 ? 12 : 10;
  const std::size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  std::vector<unsigned char> out(kMagic, kMagic + sizeof kMagic);
  out.push_back(v2 ? 2 : 1);
  out.push_back(0);
  const std::size_t len = header.size();
  out.push_back(static_cast<unsigned char>(len & 0xff));
  out.push_back(static_cast<unsigned char>((len >> 8) & 0xff));
  if (v2) {
    out.push_back(static_cast<unsigned char>((len >> 16) & 0xff));
    out.push_back(static_cast<unsigned char>((len >> 24) & 0xff));
  }
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), a.bytes.begin(), a.bytes.end());
  return out;
}

void write_npy(const std::filesystem::path& path, const NpyArray& a) {
  if (a.bytes.size() != static_cast<std::size_t>(a.size()) * npy_item_size(a.dtype)) {
    throw NpyError("write_npy: data length does not match the shape");
  }
  const std::vector<unsigned char> bytes = serialize_npy(a);
  try {
    write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  } catch (const std::runtime_error& e) {
    throw NpyError(e.what());
  }
}

NpyArray make_npy(NpyDType dtype, std::vector<std::int64_t> shape, std::span<const double> values) {
  NpyArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  if (values.size() != static_cast<std::size_t>(a.size())) {
    throw NpyError("make_npy: " + std::to_string(values.size()) + " values for the shape");
  }
  const std::size_t item = npy_item_size(dtype);
  a.bytes.resize(values.size() * item);
  for (std::size_t i = 0; i < values.size(); ++i) {
    unsigned char* p = a.bytes.data() + i * item;
    switch (dtype) {
      case NpyDType::Float32: { const auto v = static_cast<float>(values[i]); std::memcpy(p, &v, 4); break; }
      case NpyDType::Float64: std::memcpy(p, &values[i], 8); break;
      case NpyDType::Int64: { const auto v = static_cast<std::int64_t>(values[i]); std::memcpy(p, &v, 8); break; }
      case NpyDType::Int32: { const auto v = static_cast<std::int32_t>(values[i]); std::memcpy(p, &v, 4); break; }
      case NpyDType::UInt8: *p = static_cast<unsigned char>(values[i]); break;
    }
  }
  return a;
}

InputBatch make_input_batch(const std::string& name, const std::string& descr, const std::vector<std::int64_t>& shape,
                            const void* data, const std::vector<std::int64_t>& per_sample) {
  if (descr != "<f4" && descr != "<f8") {
    throw NpyError(name + " has dtype " + descr + "; expected float32 ('<f4') or float64");
  }
  const std::vector<std::int64_t> got(shape.begin() + (shape.empty() ? 0 : 1), shape.end());
  if (shape.empty() || got != per_sample || shape[0] == 0) {
    auto text = [](const std::vector<std::int64_t>& s) {
      std::string t;
      for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
      return t;
    };
    throw NpyError(name + " has shape [" + text(shape) + "] but the model expects [N, " + text(per_sample) +
                   "] with N >= 1");
  }
  InputBatch b;
  b.count = shape[0];
  std::size_t n = static_cast<std::size_t>(b.count);
  for (std::int64_t d : per_sample) n *= static_cast<std::size_t>(d);
  b.values.resize(n);
  if (descr == "<f4") {
    const auto* f = static_cast<const float*>(data);
    std::copy(f, f + n, b.values.begin());
  } else {
    std::memcpy(b.values.data(), data, n * sizeof(double));
  }
  const std::size_t per = n / static_cast<std::size_t>(b.count);
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(b.values[i])) {
      throw NpyError(name + ": sample " + std::to_string(i / per) + " contains NaN or Inf");
    }
  }
  return b;
}

InputBatch read_input_batch(const std::filesystem::path& path, const std::vector<std::int64_t>& per_sample) {
  const NpyArray x = read_npy(path);
  return make_input_batch("input '" + path.string() + "'", npy_descr(x.dtype), x.shape, x.bytes.data(), per_sample);
}

}  // namespace heinfer::runtime
