// libFuzzer target: the Infer stream of client messages a server accepts
// (protocol/server_checks.h): Start (batch within the capacity), then the input
// ciphertexts the server asked for and one round's replies, each a chunked
// CiphertextReply as the server's remote client receives them. Input: frames
// (fuzz_common.h) of serialized ClientMessage. Contract: StatusError INVALID_ARGUMENT;
// accepted replies hold exactly the ciphertexts asked for, each re-serializing to the
// bytes sent.
#include "fuzz_common.h"
#include "fuzz_protocol.h"

namespace {

/// Feeds frames from `at` into one reply; returns false when the frames end first.
bool receive(const std::vector<std::string_view>& in, std::size_t& at, heinfer::protocol::CiphertextReply& reply,
             std::vector<std::string>& sent) {
  using namespace heinfer;
  protocol::ClientMessage msg;
  for (; at < in.size(); ++at) {
    if (!fuzz::parse(in[at], msg)) return false;
    const protocol::CiphertextChunk& c = msg.has_input() ? msg.input() : msg.round_reply();
    const bool last = reply.add(msg);
    sent.insert(sent.end(), c.ciphertexts().begin(), c.ciphertexts().end());
    if (last) {
      ++at;
      return true;
    }
  }
  return false;
}

void check_reply(heinfer::protocol::CiphertextReply& reply, const std::vector<std::string>& sent,
                 std::int64_t expected) {
  using namespace heinfer;
  if (static_cast<std::int64_t>(reply.ciphertexts().size()) != expected || sent.size() != reply.ciphertexts().size()) {
    fuzz::violation("a reply with another count than asked for");
  }
  for (std::size_t i = 0; i < sent.size(); ++i) {
    fuzz::require_same(ckks::to_bytes(reply.ciphertexts()[i], fuzz::context()),
                       reinterpret_cast<const uint8_t*>(sent[i].data()), sent[i].size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  const std::vector<std::string_view> in = fuzz::frames(data, size);
  protocol::ClientMessage first;  // anything but a Start is refused by the call
  if (!fuzz::parse_first(in, first) || first.kind_case() != protocol::ClientMessage::kStart) return 0;
  try {
    protocol::check_batch(first.start().batch(), fuzz::kCapacity);
    if (first.start().batch() < 1 || first.start().batch() > fuzz::kCapacity) fuzz::violation("batch accepted");
    std::size_t at = 1;
    protocol::CiphertextReply input(fuzz::context(), protocol::ClientMessage::kInput, "input", fuzz::kInputCiphertexts);
    std::vector<std::string> sent;
    if (!receive(in, at, input, sent)) return 0;
    check_reply(input, sent, fuzz::kInputCiphertexts);
    protocol::CiphertextReply round(fuzz::context(), protocol::ClientMessage::kRoundReply, "round reply",
                                    fuzz::kReplyCiphertexts);
    sent.clear();
    if (!receive(in, at, round, sent)) return 0;
    check_reply(round, sent, fuzz::kReplyCiphertexts);
  } catch (const protocol::StatusError& e) {
    if (e.status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) fuzz::violation("status code");
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  return 0;
}
