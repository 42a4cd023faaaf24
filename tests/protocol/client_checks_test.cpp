// The client's checks of what the server sends, played by a malicious server:
//  - parameters below 128-bit security are refused whatever security flag they carry
//    (a server that flags N = 2048 with a 320-bit modulus, or N = 16, as "none");
//  - input requests that break the contract (another input, malformed ranges, elements
//    outside the input, out of order, asked twice) are refused before anything is
//    encrypted.
#include <gtest/gtest.h>

#include <limits>
#include <stdexcept>

#include "ckks/serialization.h"
#include "protocol/client_checks.h"
#include "runtime/client.h"

namespace heinfer::protocol {
namespace {

EncryptRequest request(std::initializer_list<std::int64_t> ranges, int input = 0) {
  EncryptRequest r;
  r.set_input(input);
  for (std::int64_t v : ranges) r.add_ranges(v);
  return r;
}

std::string refusal(const EncryptRequest& r, std::vector<bool>& encrypted) {
  try {
    requested_elements(r, encrypted);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

/// Serialized parameters and their fingerprint, as a server would send them.
std::pair<std::string, std::string> sent(std::size_t n, std::vector<int> coeff_bits, std::vector<int> special_bits,
                                         ckks::SecurityLevel flag) {
  const auto ctx = ckks::CKKSContext::create(ckks::EncryptionParameters(n, coeff_bits, special_bits, flag));
  ckks::EncryptionParameters p = ctx->parameters();
  p.set_security_level(flag);
  const auto b = ckks::to_bytes(p);
  const auto& fp = ctx->fingerprint();
  return {std::string(b.begin(), b.end()), std::string(fp.begin(), fp.end())};
}

std::string refusal(const std::pair<std::string, std::string>& p) {
  try {
    accepted_parameters(p.first, p.second);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(ClientChecks, TheClientDecidesItsOwnSecurity) {
  // Secure parameters are accepted (and keep their fingerprint).
  const auto good = sent(8192, {50, 40, 40}, {50}, ckks::SecurityLevel::TC128);
  EXPECT_EQ(accepted_parameters(good.first, good.second)->n(), 8192u);
  // The same primes flagged "none" are still secure: the flag does not matter.
  const auto flagged = sent(8192, {50, 40, 40}, {50}, ckks::SecurityLevel::None);
  EXPECT_EQ(accepted_parameters(flagged.first, flagged.second)->n(), 8192u);
  // Weak parameters flagged "none" by the server are refused.
  EXPECT_NE(refusal(sent(2048, {60, 50, 50, 50, 50}, {60}, ckks::SecurityLevel::None)).find("exceeds the 128-bit"),
            std::string::npos);
  EXPECT_NE(refusal(sent(16, {40, 30}, {40}, ckks::SecurityLevel::None)).find("not a power of two in [2048, 65536]"),
            std::string::npos);
  // Parameters that are not the fingerprinted ones, and garbage.
  EXPECT_NE(refusal({good.first, flagged.second.substr(1) + "x"}).find("fingerprint does not match"), std::string::npos);
  EXPECT_NE(refusal({"garbage", good.second}).find("refusing the server's parameters"), std::string::npos);
}

TEST(InputRequest, BandsInOrderEachElementOnce) {
  std::vector<bool> encrypted(10, false);
  EXPECT_EQ(requested_elements(request({0, 2, 5, 7}), encrypted), (std::vector<std::int64_t>{0, 1, 5, 6}));
  EXPECT_EQ(requested_elements(request({2, 5, 7, 10}), encrypted), (std::vector<std::int64_t>{2, 3, 4, 7, 8, 9}));
  for (bool b : encrypted) EXPECT_TRUE(b);
}

TEST(InputRequest, MaliciousRequestsAreRefused) {
  struct Case {
    EncryptRequest r;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {request({0, 4}, 1), "asked for input 1"},
      {request({}), "malformed input request"},
      {request({0, 4, 6}), "malformed input request"},
      {request({0, 11}), "outside the input's 10 elements"},
      {request({-1, 3}), "outside the input's 10 elements"},
      {request({4, 4}), "empty, out of order"},
      {request({5, 8, 2, 4}), "empty, out of order"},
      {request({0, 4, 3, 6}), "empty, out of order"},  // overlapping
  };
  for (const Case& c : cases) {
    std::vector<bool> encrypted(10, false);
    const std::string e = refusal(c.r, encrypted);
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.r.DebugString() << " -> '" << e << "'";
    for (bool b : encrypted) EXPECT_FALSE(b) << "marked before the whole request was checked";
  }
  // The same element twice in one batch (a server probing with repeated encryptions).
  std::vector<bool> encrypted(10, false);
  requested_elements(request({0, 5}), encrypted);
  EXPECT_NE(refusal(request({4, 6}), encrypted).find("input element 4 a second time"), std::string::npos);
  EXPECT_FALSE(encrypted[5]);
}

}  // namespace
}  // namespace heinfer::protocol

namespace heinfer::protocol {
namespace {

ModelInfo announced() {
  ModelInfo info;
  info.set_nodes(5);
  info.add_output_shape(10);
  info.set_output_ciphertexts(10);
  RoundSpec* r = info.add_schedule();
  r->set_node(1);
  r->set_function(0);
  r->set_windows(100);
  r->set_max_windows(40);
  r->set_window_size(1);
  r->set_rounds(3);
  r->set_level(2);
  r->set_bound(10);
  return info;
}

const std::string kCiphertext = "c";  // contents never read: the checks count

RoundRequest round_of(int node, int windows, int size = 1, int function = 0) {
  RoundRequest r;
  r.set_node(node);
  r.set_function(function);
  for (int w = 0; w < windows; ++w) {
    Window* win = r.add_windows();
    for (int i = 0; i < size; ++i) *win->add_ciphertexts() = kCiphertext;
  }
  return r;
}

template <class F>
std::string refusal_of(F f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(ScheduleCheck, RoundsWithinTheAnnouncementPass) {
  const ModelInfo info = announced();
  ScheduleCheck c(info);
  EXPECT_EQ(c.round_chunk(round_of(1, 30), 0).bound(), 10.0);
  c.round_chunk(round_of(1, 10), 30);  // a second chunk of the same round
  c.round_done(1);
  c.round_chunk(round_of(1, 40), 0);
  c.round_done(1);
  c.round_chunk(round_of(1, 20), 0);
  c.round_done(1);
  OutputChunk out;
  out.add_shape(10);
  out.set_batch(4);
  for (int i = 0; i < 10; ++i) out.add_factors(0.5);
  for (int i = 0; i < 6; ++i) *out.add_ciphertexts() = kCiphertext;
  c.output_chunk(out, 0, 4);
}

TEST(ScheduleCheck, AMaliciousServerIsRefused) {
  const ModelInfo info = announced();
  auto fresh = [&] { return ScheduleCheck(info); };
  EXPECT_NE(refusal_of([&] { fresh().round_chunk(round_of(2, 1), 0); }).find("node 2, which has none"),
            std::string::npos);
  EXPECT_NE(refusal_of([&] { fresh().round_chunk(round_of(1, 1, 1, 1), 0); }).find("another function"),
            std::string::npos);
  EXPECT_NE(refusal_of([&] { fresh().round_chunk(round_of(1, 41), 0); }).find("40 windows per round"),
            std::string::npos);
  EXPECT_NE(refusal_of([&] { fresh().round_chunk(round_of(1, 20), 30); }).find("40 windows per round"),
            std::string::npos);
  EXPECT_NE(refusal_of([&] { fresh().round_chunk(round_of(1, 2, 2), 0); }).find("a window of 2 ciphertexts"),
            std::string::npos);
  // More windows over the node than announced, in rounds that are each small enough.
  EXPECT_NE(refusal_of([&] {
              ScheduleCheck c(info);
              for (int i = 0; i < 3; ++i) c.round_chunk(round_of(1, 40), 0);
            }).find("100 windows announced for the node"),
            std::string::npos);
  // An extra round (a server probing the client's abort point with more rounds).
  EXPECT_NE(refusal_of([&] {
              ScheduleCheck c(info);
              for (int i = 0; i < 4; ++i) {
                c.round_chunk(round_of(1, 1), 0);
                c.round_done(1);
              }
            }).find("more than the 3 rounds announced"),
            std::string::npos);
  // Outputs: too many ciphertexts (heap corruption at 3b09610), wrong factor count, shape.
  OutputChunk out;
  out.add_shape(10);
  out.set_batch(4);
  for (int i = 0; i < 403; ++i) *out.add_ciphertexts() = kCiphertext;
  EXPECT_NE(refusal_of([&] { fresh().output_chunk(out, 0, 4); }).find("more output ciphertexts than the 10"),
            std::string::npos);
  out.clear_ciphertexts();
  out.add_factors(1.0);
  EXPECT_NE(refusal_of([&] { fresh().output_chunk(out, 0, 4); }).find("1 output factors for 10"), std::string::npos);
  out.clear_factors();
  out.set_shape(0, 11);
  EXPECT_NE(refusal_of([&] { fresh().output_chunk(out, 0, 4); }).find("output shape or batch"), std::string::npos);
  out.set_shape(0, 10);
  EXPECT_NE(refusal_of([&] { fresh().output_chunk(out, 0, 3); }).find("output shape or batch"), std::string::npos);
}

// The node count is the server's word: nothing is sized from it (an announced
// 2^31 - 1 nodes made the client allocate 8 GiB; found by fuzz_client_model_info).
TEST(ScheduleCheck, AHugeNodeCountAllocatesNothing) {
  ModelInfo info = announced();
  info.set_nodes(std::numeric_limits<std::int32_t>::max());
  info.mutable_schedule(0)->set_node(std::numeric_limits<std::int32_t>::max() - 1);
  ScheduleCheck c(info);
  EXPECT_NE(refusal_of([&] { c.round_chunk(round_of(1, 1), 0); }).find("node 1, which has none"), std::string::npos);
  EXPECT_NE(refusal_of([&] { c.round_done(7); }).find("node 7, which has none"), std::string::npos);
}

TEST(ScheduleCheck, AMalformedAnnouncementIsRefused) {
  for (int bad = 0; bad < 4; ++bad) {
    ModelInfo info = announced();
    RoundSpec* r = info.mutable_schedule(0);
    if (bad == 0) r->set_node(5);
    if (bad == 1) *info.add_schedule() = *r;  // node 1 twice
    if (bad == 2) r->set_bound(std::numeric_limits<double>::infinity());
    if (bad == 3) r->set_rounds(0);
    EXPECT_NE(refusal_of([&] { ScheduleCheck c(info); }).find("malformed round schedule"), std::string::npos) << bad;
  }
  // Blind refreshes only in a model-private announcement, and nothing else there: a
  // refresh in a client-aided schedule (or a client-aided round in a model-private one)
  // is refused, as is a refresh window of two.
  ModelInfo info = announced();
  info.mutable_schedule(0)->set_function(static_cast<int>(runtime::RoundFunction::BlindRefresh));
  EXPECT_NE(refusal_of([&] { ScheduleCheck c(info); }).find("blind refresh round in a client-aided"),
            std::string::npos);
  info.set_privacy(MODEL);
  EXPECT_EQ(refusal_of([&] { ScheduleCheck c(info); }), "");
  info.mutable_schedule(0)->set_window_size(2);
  EXPECT_NE(refusal_of([&] { ScheduleCheck c(info); }).find("malformed round schedule"), std::string::npos);
  ModelInfo relu = announced();
  relu.set_privacy(MODEL);
  EXPECT_NE(refusal_of([&] { ScheduleCheck c(relu); }).find("client-aided round in a model-private"),
            std::string::npos);
}

}  // namespace
}  // namespace heinfer::protocol
