// libFuzzer target: the OpenSession stream a server accepts (protocol/server_checks.h):
// a header for a served model of fuzz_protocol.h, then the relinearization and Galois
// keys in chunks of at most the declared sizes, as the server's OpenSession reads them.
// Input: frames (fuzz_common.h) of serialized OpenSessionChunk. Contract: a refusal
// (StatusError, or the call's own protocol errors); accepted keys are exactly the ones
// the model needs and re-serialize to the bytes sent.
#include "fuzz_common.h"
#include "fuzz_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  const std::vector<std::string_view> in = fuzz::frames(data, size);
  protocol::OpenSessionChunk chunk;  // anything but a header is refused by the call
  if (!fuzz::parse_first(in, chunk) || chunk.kind_case() != protocol::OpenSessionChunk::kHeader) return 0;
  const protocol::OpenSessionHeader h = chunk.header();
  const auto need = fuzz::served_model(h.model());
  if (!need) return 0;  // NOT_FOUND
  try {
    protocol::check_session_header(h, *need);
    if (h.relin_bytes() <= 0 || h.galois_bytes() < 0) fuzz::violation("bad key sizes accepted");
    const auto total = static_cast<std::size_t>(h.relin_bytes() + h.galois_bytes());
    std::string keys;
    for (std::size_t i = 1; keys.size() < total; ++i) {
      if (i == in.size()) return 0;  // truncated: refused by the call
      if (!fuzz::parse(in[i], chunk)) return 0;
      if (chunk.kind_case() != protocol::OpenSessionChunk::kKeys || keys.size() + chunk.keys().size() > total) return 0;
      keys += chunk.keys();
    }
    const runtime::EvaluationKeys k = protocol::load_session_keys(keys, h.relin_bytes(), *need);
    const auto relin_n = static_cast<std::size_t>(h.relin_bytes());
    fuzz::require_same(ckks::to_bytes(k.relin, fuzz::context()), reinterpret_cast<const uint8_t*>(keys.data()),
                       relin_n);
    if (k.galois.keys.size() != need->galois_elements.size()) fuzz::violation("Galois keys not exactly the needed");
    if (!k.galois.keys.empty()) {
      fuzz::require_same(ckks::to_bytes(k.galois, fuzz::context()),
                         reinterpret_cast<const uint8_t*>(keys.data()) + relin_n, keys.size() - relin_n);
    }
  } catch (const protocol::StatusError& e) {
    if (e.status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) fuzz::violation("status code");
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  return 0;
}
