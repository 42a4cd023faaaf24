// libFuzzer target: the Infer stream of server messages a client accepts, after the
// ModelInfo of fuzz_protocol.h, through the client's checks (protocol/client_checks.h)
// in the order `heinfer client` applies them: input requests, round request chunks and
// their ciphertexts (level as announced), output chunks, progress, then the summary.
// Input: frames (fuzz_common.h) of serialized ServerMessage. Contract: std::runtime_error
// (what the client throws at a violation); accepted ciphertexts re-serialize to the
// bytes sent. Decryption (the client's bound check) is not reached.
#include "fuzz_common.h"
#include "fuzz_protocol.h"
#include "protocol/client_checks.h"

namespace {

void check_round_trip(const std::vector<heinfer::ckks::Ciphertext>& cts, std::size_t from,
                      const std::vector<const std::string*>& sent) {
  using namespace heinfer;
  for (std::size_t i = from; i < cts.size(); ++i) {
    const std::vector<uint8_t> b = ckks::to_bytes(cts[i], *fuzz::client_context());
    const std::string& s = *sent[i - from];
    fuzz::require_same(b, reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  const protocol::ModelInfo& info = fuzz::client_model_info();
  const ckks::CKKSContext& ctx = *fuzz::client_context();
  try {
    std::vector<bool> encrypted(static_cast<std::size_t>(fuzz::kClientInputElements), false);
    protocol::ScheduleCheck schedule(info);
    std::vector<ckks::Ciphertext> round_cts, out_cts;
    std::vector<std::size_t> window_sizes;
    std::vector<bool> out_zero;
    bool outputs_done = false;
    const std::int64_t batch = 1;
    for (std::string_view f : fuzz::frames(data, size)) {
      protocol::ServerMessage msg;
      if (!fuzz::parse(f, msg)) return 0;  // gRPC ends the stream
      if (outputs_done) {
        if (msg.has_progress()) continue;
        if (!msg.has_summary()) throw std::runtime_error("protocol: unexpected message after the outputs");
        return 0;
      }
      if (msg.has_encrypt()) {
        const std::vector<std::int64_t> e = protocol::requested_elements(msg.encrypt(), encrypted);
        if (e.empty()) fuzz::violation("an accepted input request for no element");
      } else if (msg.has_round()) {
        const protocol::RoundRequest& r = msg.round();
        const protocol::RoundSpec& spec =
            schedule.round_chunk(r, static_cast<std::int64_t>(window_sizes.size()));
        const std::size_t before = round_cts.size();
        protocol::load_round_chunk(r, spec, ctx, round_cts, window_sizes);
        std::vector<const std::string*> sent;
        for (const protocol::Window& w : r.windows()) {
          for (const std::string& c : w.ciphertexts()) sent.push_back(&c);
        }
        check_round_trip(round_cts, before, sent);
        if (!r.last()) continue;
        schedule.round_done(r.node());
        round_cts.clear();
        window_sizes.clear();
      } else if (msg.has_output()) {
        const protocol::OutputChunk& c = msg.output();
        schedule.output_chunk(c, static_cast<std::int64_t>(out_cts.size()), batch);
        protocol::load_output_chunk(c, ctx, out_cts, out_zero);
        if (out_cts.size() != out_zero.size()) fuzz::violation("output bookkeeping");
        outputs_done = c.last();
      } else if (!msg.has_progress()) {
        throw std::runtime_error("protocol: unexpected message from the server");
      }
    }
  } catch (const std::runtime_error&) {
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  return 0;
}
