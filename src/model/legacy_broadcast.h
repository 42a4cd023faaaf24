// Opset-6 ("legacy") broadcasting of Add/Sub/Mul/Div/Pow, converted to numpy form.
#pragma once

#include <cstddef>
#include <string>

#include "model/attribute.h"

namespace heinfer::model {

/// ONNX Add-6 etc.: with attribute broadcast=1, B's dims match a contiguous run of A's dims
/// starting at `axis` (default: B's dims are A's trailing dims). Returns how many trailing
/// size-1 dims must be appended to B's shape for numpy broadcasting to give the same
/// result (0 without broadcast=1, where the shapes must be equal). Ranks are full ranks
/// (activation rank + 1). Throws ModelError (prefixed by `context`) for a bad axis.
std::size_t legacy_broadcast_padding(std::size_t a_rank, std::size_t b_rank,
                                     const AttributeMap& attrs, const std::string& context);

}  // namespace heinfer::model
