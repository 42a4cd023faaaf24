// 128-bit security check (HE Standard Table 1, ternary secret).
#include <gtest/gtest.h>

#include <cmath>

#include "ckks/security.h"
#include "test_util.h"

namespace heinfer::ckks::test {

TEST(Security, TableValues) {
  EXPECT_EQ(max_log_qp_128(1024), 27);
  EXPECT_EQ(max_log_qp_128(2048), 54);
  EXPECT_EQ(max_log_qp_128(4096), 109);
  EXPECT_EQ(max_log_qp_128(8192), 218);
  EXPECT_EQ(max_log_qp_128(16384), 438);
  EXPECT_EQ(max_log_qp_128(32768), 881);
  EXPECT_EQ(max_log_qp_128(65536), 1761);
  EXPECT_EQ(max_log_qp_128(3000), 0);
}

TEST(Security, AcceptsExactlyTheLimit) {
  for (size_t n = 1024; n <= 65536; n *= 2) {
    EXPECT_NO_THROW(check_security(n, max_log_qp_128(n), SecurityLevel::TC128)) << n;
  }
}

TEST(Security, RefusesBeyondTheLimitWithMessage) {
  try {
    check_security(8192, 218.5, SecurityLevel::TC128);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("N = 8192"), std::string::npos) << m;
    EXPECT_NE(m.find("218.50"), std::string::npos) << m;
    EXPECT_NE(m.find("limit of 218"), std::string::npos) << m;
  }
  EXPECT_THROW(check_security(3000, 10, SecurityLevel::TC128), std::invalid_argument);
}

TEST(Security, ContextsAtTheBenchmarkLimitsAreAccepted) {
  // The SEAL BFVDefault-like chains: exactly at the table limits in nominal bits.
  EXPECT_NO_THROW(make_context(4096, {36, 36}, {37}));
  EXPECT_NO_THROW(make_context(8192, {43, 43, 44, 44}, {44}));
  EXPECT_NO_THROW(make_context(16384, {48, 48, 48, 49, 49, 49, 49, 49}, {49}));
}

TEST(Security, ContextBeyondTheLimitIsRefused) {
  // 5 × 44-bit primes: log2 QP ≈ 220 > 218. Special primes count towards QP.
  try {
    make_context(8192, {44, 44, 44, 44}, {44});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("N = 8192"), std::string::npos) << m;
    EXPECT_NE(m.find("limit of 218"), std::string::npos) << m;
  }
  EXPECT_THROW(make_context(8192, {43, 43, 44, 44}, {44, 20}), std::invalid_argument);
}

TEST(Security, InsecureSwitchWarns) {
  testing::internal::CaptureStderr();
  ContextPtr ctx;
  EXPECT_NO_THROW(ctx = make_context(2048, {50, 50}, {50}, SecurityLevel::None));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("WARNING"), std::string::npos) << err;
  EXPECT_NE(err.find("NOT SECURE"), std::string::npos) << err;
  EXPECT_EQ(ctx->security_level(), SecurityLevel::None);
}

}  // namespace heinfer::ckks::test
