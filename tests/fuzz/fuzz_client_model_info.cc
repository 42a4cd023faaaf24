// libFuzzer target: the ModelInfo a client accepts (GetModelInfo reply): the parameters
// and fingerprint (protocol::accepted_parameters) and the announced round schedule
// (protocol::ScheduleCheck). Contract: a malformed message, or std::runtime_error from
// the checks; accepted parameters are 128-bit secure and match the fingerprint.
#include "ckks/security.h"
#include "fuzz_common.h"
#include "fuzz_protocol.h"
#include "protocol/client_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  protocol::ModelInfo info;
  if (!fuzz::parse(std::string_view(reinterpret_cast<const char*>(data), size), info)) return 0;  // gRPC fails the call
  try {
    const ckks::ContextPtr ctx = protocol::accepted_parameters(info.parameters(), info.fingerprint());
    const auto& fp = ctx->fingerprint();
    if (info.fingerprint() != std::string(fp.begin(), fp.end())) fuzz::violation("fingerprint not checked");
    if (ctx->parameters().security_level() != ckks::SecurityLevel::TC128) fuzz::violation("not 128-bit");
    const protocol::ScheduleCheck schedule(info);
  } catch (const std::runtime_error&) {
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  return 0;
}
