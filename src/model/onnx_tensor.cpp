#include "model/onnx_tensor.h"

#include <onnx/onnx_pb.h>

#include <bit>
#include <cstdint>
#include <cstring>

#include "model/error.h"

namespace heinfer::model {
namespace {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; big-endian hosts are not supported");

template <class T>
std::vector<double> from_raw(const std::string& raw, std::int64_t count) {
  std::vector<double> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * static_cast<std::int64_t>(sizeof(T)), sizeof(T));
    out[static_cast<std::size_t>(i)] = static_cast<double>(v);
  }
  return out;
}

template <class Field>
std::vector<double> from_field(const Field& field) {
  return std::vector<double>(field.begin(), field.end());
}

}  // namespace

std::string onnx_dtype_name(int data_type) {
  if (onnx::TensorProto_DataType_IsValid(data_type)) {
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(data_type));
  }
  return "unknown(" + std::to_string(data_type) + ")";
}

TensorValue tensor_from_proto(const onnx::TensorProto& proto, const std::string& context) {
  TensorValue t;
  t.dims.assign(proto.dims().begin(), proto.dims().end());
  for (std::int64_t d : t.dims) {
    if (d < 0) throw ModelError(context + ": negative dimension in dims " + to_string(t.dims));
  }
  std::int64_t count = 0;
  try {
    count = numel(t.dims);
  } catch (const ModelError& e) {
    throw ModelError(context + ": " + e.what());
  }
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    throw ModelError(context + ": tensor data stored in an external file is not supported; "
                     "save the model with all tensors inside the .onnx file");
  }
  if (proto.has_segment()) throw ModelError(context + ": segmented tensors are not supported");

  std::size_t item = 0;
  const int type = proto.data_type();
  int typed_count = 0;
  switch (type) {
    case onnx::TensorProto::FLOAT: t.dtype = DataType::Float32; item = 4; typed_count = proto.float_data_size(); break;
    case onnx::TensorProto::DOUBLE: t.dtype = DataType::Float64; item = 8; typed_count = proto.double_data_size(); break;
    case onnx::TensorProto::INT64: t.dtype = DataType::Int64; item = 8; typed_count = proto.int64_data_size(); break;
    case onnx::TensorProto::INT32: t.dtype = DataType::Int64; item = 4; typed_count = proto.int32_data_size(); break;
    case onnx::TensorProto::BOOL: t.dtype = DataType::Bool; item = 1; typed_count = proto.int32_data_size(); break;
    default:
      throw ModelError(context + ": unsupported data type " + onnx_dtype_name(type) +
                       "; supported: FLOAT (float32), DOUBLE (float64), INT64, INT32, BOOL");
  }
  if (proto.has_raw_data()) {
    if (typed_count != 0) {
      throw ModelError(context + ": tensor has both raw_data and typed data fields");
    }
    const std::string& raw = proto.raw_data();
    if (raw.size() != static_cast<std::size_t>(count) * item) {
      throw ModelError(context + ": raw_data has " + std::to_string(raw.size()) +
                       " bytes but dims " + to_string(t.dims) + " of " +
                       onnx_dtype_name(type) + " need " +
                       std::to_string(static_cast<std::size_t>(count) * item));
    }
    switch (type) {
      case onnx::TensorProto::FLOAT: t.data = from_raw<float>(raw, count); break;
      case onnx::TensorProto::DOUBLE: t.data = from_raw<double>(raw, count); break;
      case onnx::TensorProto::INT64: t.data = from_raw<std::int64_t>(raw, count); break;
      case onnx::TensorProto::INT32: t.data = from_raw<std::int32_t>(raw, count); break;
      default: t.data = from_raw<std::uint8_t>(raw, count); break;
    }
  } else {
    if (typed_count != count) {
      throw ModelError(context + ": tensor has " + std::to_string(typed_count) +
                       " values but dims " + to_string(t.dims) + " need " + std::to_string(count));
    }
    switch (type) {
      case onnx::TensorProto::FLOAT: t.data = from_field(proto.float_data()); break;
      case onnx::TensorProto::DOUBLE: t.data = from_field(proto.double_data()); break;
      case onnx::TensorProto::INT64: t.data = from_field(proto.int64_data()); break;
      default: t.data = from_field(proto.int32_data()); break;
    }
  }
  if (t.dtype == DataType::Bool) {
    for (double& v : t.data) v = v != 0 ? 1.0 : 0.0;
  }
  return t;
}

}  // namespace heinfer::model
