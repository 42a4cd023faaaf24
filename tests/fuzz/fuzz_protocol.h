// The two parties the protocol targets stand in for, shared with the seed generator
// (tools/fuzz_corpus.cpp):
//  - a server serving models "real" (relinearization key only) and "complex" (plus the
//    conjugation key) on the fuzzing context, batches of at most kCapacity samples, an
//    Infer stream that asks for kInputCiphertexts inputs, then one round of
//    kReplyCiphertexts replies;
//  - a client that accepted the ModelInfo client_model_info(): 128-bit secure
//    parameters (N = 2048, the smallest the client accepts), four input elements, a Relu
//    node and a Max node with client rounds, two output ciphertexts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "ckks/context.h"
#include "ckks/keys.h"
#include "ckks/serialization.h"
#include "fuzz_common.h"
#include "protocol/heinfer.pb.h"
#include "protocol/server_checks.h"
#include "runtime/client.h"

namespace heinfer::fuzz {

/// Silences protobuf's parse warnings (invalid UTF-8 in string fields), a log line per
/// malformed input otherwise.
inline const bool kQuietProtobuf = (google::protobuf::SetLogHandler(nullptr), true);

/// Parses one frame as a protobuf message; false when malformed (gRPC fails the call).
template <class Message>
bool parse(std::string_view frame, Message& m) {
  return m.ParseFromArray(frame.data(), static_cast<int>(frame.size()));
}

/// Parses the first frame, the call's opening message; false when absent or malformed.
template <class Message>
bool parse_first(const std::vector<std::string_view>& frames, Message& m) {
  return !frames.empty() && parse(frames[0], m);
}

inline constexpr std::int64_t kCapacity = 4;
inline constexpr std::int64_t kInputCiphertexts = 2;
inline constexpr std::int64_t kReplyCiphertexts = 2;

/// The session requirements of served model `name` (std::nullopt: no such model).
inline std::optional<protocol::SessionRequirements> served_model(const std::string& name) {
  if (name != "real" && name != "complex") return std::nullopt;
  protocol::SessionRequirements r;
  r.model = name;
  r.context = &context();
  r.complex = name == "complex";
  r.max_key_bytes = std::int64_t{1} << 16;
  if (r.complex) r.galois_elements = {ckks::galois_element_conjugate(context().n())};
  return r;
}

/// The client's context: N = 2048, chain {27}, special {27} (54 bits: 128-bit secure).
inline const ckks::ContextPtr& client_context() {
  static const ckks::ContextPtr ctx =
      ckks::CKKSContext::create(ckks::EncryptionParameters(2048, {27}, {27}, ckks::SecurityLevel::TC128));
  return ctx;
}

inline constexpr std::int64_t kClientInputElements = 4;

/// What the client's server announced (GetModelInfo).
inline const protocol::ModelInfo& client_model_info() {
  static const protocol::ModelInfo info = [] {
    protocol::ModelInfo m;
    const ckks::CKKSContext& ctx = *client_context();
    const std::vector<uint8_t> p = ckks::to_bytes(ctx.parameters());
    m.set_parameters(std::string(p.begin(), p.end()));
    m.set_fingerprint(std::string(ctx.fingerprint().begin(), ctx.fingerprint().end()));
    m.set_complex_packing(false);
    m.set_scale_bits(20);
    m.add_input_shape(kClientInputElements);
    m.add_output_shape(2);
    m.set_input_bound(4.0);
    m.set_capacity(static_cast<std::int64_t>(ctx.n()));
    m.set_input_name("x");
    m.set_nodes(4);
    m.set_rounds(3);
    m.set_output_ciphertexts(2);
    auto spec = [&](int node, runtime::RoundFunction f, int windows, int window_size, int rounds) {
      protocol::RoundSpec* r = m.add_schedule();
      r->set_node(node);
      r->set_function(static_cast<int>(f));
      r->set_windows(windows);
      r->set_max_windows(windows);
      r->set_window_size(window_size);
      r->set_rounds(rounds);
      r->set_level(0);
      r->set_bound(1000.0);
    };
    spec(1, runtime::RoundFunction::Relu, 2, 1, 1);
    spec(2, runtime::RoundFunction::Max, 1, 2, 2);
    return m;
  }();
  return info;
}

}  // namespace heinfer::fuzz
