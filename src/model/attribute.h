// Node attributes as read from ONNX (AttributeProto), with typed getters that throw a
// ModelError naming the node, the attribute and the expected type.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace heinfer::model {

/// One attribute value. A TENSOR attribute of at most kMaxTensorAttributeElements
/// elements is kept as kind Tensor: dims in `ints`, values in `floats`, the ONNX
/// TensorProto data type in `i`. Graph/sparse attributes are kept only as kind Other
/// (the Constant node's tensor is converted to a constant tensor at import).
struct Attribute {
  enum class Kind { Int, Float, String, Ints, Floats, Tensor, Other };
  Kind kind = Kind::Other;
  std::int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::vector<std::int64_t> ints;
  std::vector<double> floats;
  std::string onnx_type;  ///< AttributeProto type name, e.g. "INTS" (for messages)
};

/// Largest TENSOR attribute kept (ConstantOfShape's value is one element).
inline constexpr std::int64_t kMaxTensorAttributeElements = 1024;

using AttributeMap = std::map<std::string, Attribute, std::less<>>;

/// Typed getters. `context` prefixes error messages (e.g. "node 'conv1' (Conv)").
/// Absent attribute -> `fallback` (or nullopt); present with another type -> ModelError.
std::int64_t get_int(const AttributeMap& attrs, std::string_view name, std::int64_t fallback,
                     const std::string& context);
double get_float(const AttributeMap& attrs, std::string_view name, double fallback,
                 const std::string& context);
std::string get_string(const AttributeMap& attrs, std::string_view name,
                       const std::string& fallback, const std::string& context);
std::optional<std::vector<std::int64_t>> get_ints(const AttributeMap& attrs, std::string_view name,
                                                  const std::string& context);
std::optional<std::vector<double>> get_floats(const AttributeMap& attrs, std::string_view name,
                                              const std::string& context);

/// Throws ModelError for the first attribute whose name is not in `known`, listing the
/// supported attribute names. An attribute we do not know could change the semantics.
void check_known_attributes(const AttributeMap& attrs, std::initializer_list<std::string_view> known,
                            const std::string& context);

}  // namespace heinfer::model
