// Conversion of ONNX TensorProto values (initializers, Constant nodes, test data) to doubles.
#pragma once

#include <string>
#include <vector>

#include "model/graph.h"
#include "model/shape.h"

namespace onnx {
class TensorProto;
}

namespace heinfer::model {

/// A dense tensor read from a TensorProto.
struct TensorValue {
  Shape dims;
  DataType dtype = DataType::Float32;
  std::vector<double> data;  ///< row-major, numel(dims) entries
  /// Dependence on the batch size N (see Tensor::batch_coeff); empty when none.
  std::vector<double> batch_coeff;
};

/// Converts a TensorProto of type FLOAT, DOUBLE, INT64, INT32 (read as Int64) or BOOL stored in raw_data (little-endian)
/// or in the typed field (float_data / double_data / int64_data). Validates dims (>= 0,
/// at most kMaxElements elements) and that the data length matches them exactly.
/// Throws ModelError prefixed by `context` on any other type, external or segmented data,
/// or a length mismatch.
TensorValue tensor_from_proto(const onnx::TensorProto& proto, const std::string& context);

/// "FLOAT", "INT64", ... for a TensorProto::DataType value (for messages).
std::string onnx_dtype_name(int data_type);

}  // namespace heinfer::model
