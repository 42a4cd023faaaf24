#include "ckks/security.h"

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace heinfer::ckks {

bool valid_ring_degree(size_t n, SecurityLevel level) {
  const size_t lowest = level == SecurityLevel::None ? size_t{1} << 4 : size_t{1} << 11;
  return n >= lowest && n <= (size_t{1} << 16) && (n & (n - 1)) == 0;
}

std::string ring_degree_rule(SecurityLevel level) {
  return level == SecurityLevel::None ? "a power of two in [16, 65536] (insecure, tests only)"
                                      : "a power of two in [2048, 65536]";
}

int max_log_qp_128(size_t n) {
  // HE Standard (Albrecht et al.), Table 1, 128-bit security, ternary secret.
  switch (n) {
    case size_t{1} << 10: return 27;
    case size_t{1} << 11: return 54;
    case size_t{1} << 12: return 109;
    case size_t{1} << 13: return 218;
    case size_t{1} << 14: return 438;
    case size_t{1} << 15: return 881;
    case size_t{1} << 16: return 1761;
    default: return 0;
  }
}

void check_security(size_t n, double log2_qp, SecurityLevel level) {
  const int limit = max_log_qp_128(n);
  if (level == SecurityLevel::None) {
    std::fprintf(stderr,
                 "heinfer: WARNING: CKKS context created with SecurityLevel::None "
                 "(N = %zu, log2(QP) = %.2f bits, 128-bit limit %d): NOT SECURE, tests only\n",
                 n, log2_qp, limit);
    return;
  }
  if (limit == 0 || log2_qp > static_cast<double>(limit)) {
    std::ostringstream msg;
    msg.setf(std::ios::fixed);
    msg.precision(2);
    msg << "insecure CKKS parameters: N = " << n << ", log2(QP) = " << log2_qp
        << " bits exceeds the 128-bit security limit of " << limit
        << " bits (HE Standard, Table 1, ternary secret); use fewer or smaller primes or a "
           "larger N";
    throw std::invalid_argument(msg.str());
  }
}

}  // namespace heinfer::ckks
