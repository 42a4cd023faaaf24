// Internal to the server: a gRPC status thrown from deep inside a request (the remote
// client's checks of what the data owner sends) and returned by the request handler.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

namespace heinfer::protocol {

struct StatusError {
  grpc::Status status;
};

/// Throws StatusError{code, msg}.
[[noreturn]] inline void fail(grpc::StatusCode code, const std::string& msg) {
  throw StatusError{grpc::Status(code, msg)};
}

}  // namespace heinfer::protocol
