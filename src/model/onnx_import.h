// Reading .onnx files (protobuf) into the raw graph IR.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "model/graph.h"

namespace onnx {
class ModelProto;
}

namespace heinfer::model {

/// Lowest and highest default-domain opset accepted.
inline constexpr std::int64_t kMinOpset = 6;
inline constexpr std::int64_t kMaxOpset = 17;

/// Parses serialized ModelProto bytes (protobuf limits: 2 GiB total, nesting depth 100;
/// the whole input must be consumed). `source` names the input in messages. Throws
/// ModelError for malformed or truncated data.
onnx::ModelProto parse_onnx(std::string_view bytes, const std::string& source);

/// Reads and parses an .onnx file. Throws ModelError if it cannot be read, is larger than
/// 2 GiB, or is not a valid ModelProto.
onnx::ModelProto read_onnx_file(const std::filesystem::path& path);

/// Converts a ModelProto into the raw graph: initializers and Constant nodes become
/// constant tensors, graph inputs that are not initializers become activation inputs
/// (float32/float64, dim 0 = batch and may be symbolic, other dims static), nodes are
/// sorted topologically with their raw attributes. No shape inference is done here.
/// Throws ModelError for an opset outside [kMinOpset, kMaxOpset], an operator outside
/// op_type.h, a non-default domain, undefined or duplicate tensor names, cycles, or
/// invalid tensor data.
Graph import_onnx(const onnx::ModelProto& model);

}  // namespace heinfer::model
