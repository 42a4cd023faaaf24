// The error type of the model importer, the graph passes and the executors.
#pragma once

#include <stdexcept>
#include <string>

namespace heinfer::model {

/// A model that cannot be loaded or run: malformed or truncated file, an unsupported
/// operator / attribute value / data type, inconsistent shapes. The message names the
/// node (name and op), the attribute or tensor concerned and what is supported.
class ModelError : public std::runtime_error {
 public:
  explicit ModelError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace heinfer::model
