// NumPy .npy files (format versions 1.0, 2.0 and 3.0; little-endian, C order).
// Reference: numpy.lib.format ("A Simple File Format for NumPy Arrays", NEP 1).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace heinfer::runtime {

/// Malformed, unsupported or unreadable .npy data; the message names the file and problem.
class NpyError : public std::runtime_error {
 public:
  explicit NpyError(const std::string& what) : std::runtime_error(what) {}
};

/// Element types accepted: '<f4', '<f8', '<i8', '<i4', '|u1' (and '<u1').
enum class NpyDType { Float32, Float64, Int64, Int32, UInt8 };

std::size_t npy_item_size(NpyDType t);
std::string npy_descr(NpyDType t);  ///< "<f4", ...

/// An array: raw little-endian element bytes in C (row-major) order.
struct NpyArray {
  NpyDType dtype = NpyDType::Float32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;

  std::int64_t size() const;  ///< element count (product of shape; 1 for a 0-d array)
  /// The elements converted to double / to int64 (floats must then be integral).
  std::vector<double> to_double() const;
  std::vector<std::int64_t> to_int64() const;
};

/// Parses .npy bytes. Validates the magic string, version, header length and padding, the
/// header dict (keys descr/fortran_order/shape, nothing else), dtype (little-endian only),
/// fortran_order == False, non-negative dims and that the data length equals
/// size * itemsize exactly. `source` names the data in NpyError messages.
NpyArray parse_npy(std::span<const unsigned char> bytes, const std::string& source = "<memory>");

/// Reads and parses a file (NpyError if it cannot be read).
NpyArray read_npy(const std::filesystem::path& path);

/// A batch of model inputs read from an .npy file: `count` samples of the per-sample
/// shape, batch-major float64 values.
struct InputBatch {
  std::int64_t count = 0;
  std::vector<double> values;
};

/// Reads a batch of inputs of per-sample shape `per_sample` from `path`: float32 or
/// float64, shape [N, per_sample...] with N >= 1, every value finite. Throws NpyError
/// naming the file and the problem (the dtype, the shape, or the first sample holding
/// NaN/Inf).
InputBatch read_input_batch(const std::filesystem::path& path, const std::vector<std::int64_t>& per_sample);

/// The checks and conversion of read_input_batch for an array already in memory (a numpy
/// array of the Python package): `name` names it in messages ("input 'x.npy'"), `descr`
/// is its numpy type string ("<f4", "<f8"; anything else is refused), `shape` its shape
/// and `data` its C-order elements. Throws NpyError as read_input_batch.
InputBatch make_input_batch(const std::string& name, const std::string& descr, const std::vector<std::int64_t>& shape,
                            const void* data, const std::vector<std::int64_t>& per_sample);

/// Serializes as format 1.0 (2.0 when the header needs it).
std::vector<unsigned char> serialize_npy(const NpyArray& a);

/// Writes atomically: a temporary file in the same directory, then rename(2).
void write_npy(const std::filesystem::path& path, const NpyArray& a);

/// Builds a float32 / float64 / int64 array from values (cast) and a shape.
NpyArray make_npy(NpyDType dtype, std::vector<std::int64_t> shape, std::span<const double> values);

}  // namespace heinfer::runtime
