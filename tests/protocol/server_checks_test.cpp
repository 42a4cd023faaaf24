// The server's checks of an OpenSession (protocol/server_checks.h) for the public key
// of the model-private mode: required exactly there, refused everywhere else, and loaded
// with the public-object loader (a secret key in its place is refused).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ckks/secret_key_io.h"
#include "ckks/serialization.h"
#include "protocol/server_checks.h"
#include "runtime/local_client.h"

namespace heinfer::protocol {
namespace {

struct Keys {
  ckks::ContextPtr ctx = ckks::CKKSContext::create(
      ckks::EncryptionParameters(2048, {40, 30, 30}, {40}, ckks::SecurityLevel::None));
  runtime::LocalClient client{ctx, ckks::Packing::Real, 0x1p30};
  std::string relin, public_key, secret_key;
  Keys() {
    const auto& k = client.evaluation_keys();
    const auto r = ckks::to_bytes(k.relin, *ctx);
    const auto p = ckks::to_bytes(k.public_key, *ctx);
    const auto s = ckks::secret_key_to_bytes(client.secret_key(), *ctx);
    relin.assign(r.begin(), r.end());
    public_key.assign(p.begin(), p.end());
    secret_key.assign(s.begin(), s.end());
  }
  SessionRequirements need(bool model_private) const {
    return {"m", ctx.get(), false, true, std::int64_t{1} << 26, {}, model_private};
  }
  OpenSessionHeader header(std::int64_t public_key_bytes) const {
    OpenSessionHeader h;
    h.set_model("m");
    const auto& fp = ctx->fingerprint();
    h.set_fingerprint(std::string(fp.begin(), fp.end()));
    h.set_relin_bytes(static_cast<std::int64_t>(relin.size()));
    h.set_public_key_bytes(public_key_bytes);
    return h;
  }
};

const Keys& keys() {
  static const Keys k;
  return k;
}

TEST(SessionChecks, TheModelPrivateModeNeedsThePublicKeyAndNoOtherModeTakesOne) {
  const Keys& k = keys();
  const auto pk_n = static_cast<std::int64_t>(k.public_key.size());
  // Model-private: the header must declare it, and it is loaded with the evaluation keys.
  EXPECT_NO_THROW(check_session_header(k.header(pk_n), k.need(true)));
  EXPECT_THROW(check_session_header(k.header(0), k.need(true)), StatusError);
  const runtime::EvaluationKeys got = load_session_keys(k.relin + k.public_key, static_cast<std::int64_t>(k.relin.size()),
                                                        k.need(true), pk_n);
  const auto back = ckks::to_bytes(got.public_key, *k.ctx);
  EXPECT_EQ(std::string(back.begin(), back.end()), k.public_key);
  EXPECT_THROW(load_session_keys(k.relin, static_cast<std::int64_t>(k.relin.size()), k.need(true), 0), StatusError);
  // Client-aided: no public key is accepted.
  EXPECT_THROW(check_session_header(k.header(pk_n), k.need(false)), StatusError);
  EXPECT_THROW(load_session_keys(k.relin + k.public_key, static_cast<std::int64_t>(k.relin.size()), k.need(false), pk_n),
               StatusError);
  EXPECT_NO_THROW(load_session_keys(k.relin, static_cast<std::int64_t>(k.relin.size()), k.need(false), 0));
}

TEST(SessionChecks, ASecretKeyInThePlaceOfThePublicKeyIsRefused) {
  const Keys& k = keys();
  try {
    (void)load_session_keys(k.relin + k.secret_key, static_cast<std::int64_t>(k.relin.size()), k.need(true),
                            static_cast<std::int64_t>(k.secret_key.size()));
    ADD_FAILURE() << "accepted";
  } catch (const StatusError& e) {
    EXPECT_EQ(e.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(e.status.error_message().find("public key rejected"), std::string::npos) << e.status.error_message();
  }
}

}  // namespace
}  // namespace heinfer::protocol
