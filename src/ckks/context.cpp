#include "ckks/context.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <stdexcept>

#include "ring/multiprecision.h"
#include "ring/primes.h"

namespace heinfer::ckks {

namespace {

void put_u64(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace

Fingerprint parameter_fingerprint(size_t n, const std::vector<uint64_t>& q,
                                  const std::vector<uint64_t>& p) {
  static const char kTag[] = "heinfer-ckks-params-v1";
  std::vector<uint8_t> buf(kTag, kTag + sizeof(kTag) - 1);
  put_u64(buf, n, 8);
  put_u64(buf, q.size(), 4);
  for (uint64_t v : q) put_u64(buf, v, 8);
  put_u64(buf, p.size(), 4);
  for (uint64_t v : p) put_u64(buf, v, 8);
  if (sodium_init() < 0) throw std::runtime_error("libsodium initialisation failed");
  Fingerprint fp;
  crypto_hash_sha256(fp.data(), buf.data(), buf.size());
  return fp;
}

namespace {

// Product of moduli values except `skip`, reduced mod m.
uint64_t product_mod(const std::vector<uint64_t>& values, size_t skip, const ring::Modulus& m) {
  uint64_t r = 1 % m.value;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i != skip) r = ring::mul_mod(r, ring::reduce_64(values[i], m), m);
  }
  return r;
}

}  // namespace

std::shared_ptr<const CKKSContext> CKKSContext::create(const EncryptionParameters& parms) {
  return std::shared_ptr<const CKKSContext>(new CKKSContext(parms));
}

CKKSContext::CKKSContext(const EncryptionParameters& parms) : security_(parms.security_level()) {
  n_ = parms.poly_modulus_degree();
  if (!valid_ring_degree(n_, security_)) {
    throw std::invalid_argument("CKKSContext: N = " + std::to_string(n_) + " is not " + ring_degree_rule(security_));
  }
  log_n_ = __builtin_ctzll(n_);
  std::vector<uint64_t> q, p;
  parms.resolve_primes(q, p);
  if (q.empty()) throw std::invalid_argument("CKKSContext: no ciphertext primes");
  if (q.size() > 256 || p.size() > 64) {
    throw std::invalid_argument("CKKSContext: too many primes (" + std::to_string(q.size()) +
                                " chain, " + std::to_string(p.size()) +
                                " special; limits 256 and 64)");
  }
  std::vector<uint64_t> all(q);
  all.insert(all.end(), p.begin(), p.end());
  std::set<uint64_t> seen;
  for (uint64_t v : all) {
    if (v >= (uint64_t{1} << 60) || !ring::is_prime(v) || v % (2 * n_) != 1) {
      throw std::invalid_argument("CKKSContext: " + std::to_string(v) +
                                  " is not a prime < 2^60 congruent to 1 mod 2N = " +
                                  std::to_string(2 * n_));
    }
    if (!seen.insert(v).second) {
      throw std::invalid_argument("CKKSContext: prime " + std::to_string(v) + " is repeated");
    }
    log2_qp_ += std::log2(static_cast<double>(v));
  }
  check_security(n_, log2_qp_, security_);

  coeff_count_ = q.size();
  special_count_ = p.size();
  parms_ = parms;
  parms_.set_coeff_modulus(q, p);
  moduli_.reserve(all.size());
  ntt_.reserve(all.size());
  for (uint64_t v : all) {
    moduli_.emplace_back(v);
    ntt_.emplace_back(n_, moduli_.back());
    imag_unit_.push_back(ring::pow_mod(ntt_.back().root(), n_ / 2, moduli_.back()));
  }
  fingerprint_ = parameter_fingerprint(n_, q, p);
  build_levels();
  build_mod_down();
}

void CKKSContext::build_levels() {
  const size_t alpha = special_count_;
  levels_.resize(coeff_count_);
  std::vector<uint64_t> qv;
  for (size_t l = 0; l < coeff_count_; ++l) {
    LevelData& d = levels_[l];
    d.level = l;
    qv.push_back(moduli_[l].value);
    for (uint64_t v : qv) d.log2_q += std::log2(static_cast<double>(v));
    // Rescale by q_l.
    for (size_t i = 0; i < l; ++i) {
      const ring::Modulus& m = moduli_[i];
      const uint64_t inv = ring::inv_mod(ring::reduce_64(moduli_[l].value, m), m);
      d.inv_q_last.push_back(inv);
      d.inv_q_last_shoup.push_back(ring::shoup_precompute(inv, m.value));
      d.half_q_last_mod.push_back(ring::reduce_64(moduli_[l].value >> 1, m));
    }
    // Key-switching digits at this level; targets: q_0..q_l, p_0..p_{K-1} (none without
    // special primes: no key switching).
    const size_t targets = l + 1 + special_count_;
    for (size_t first = 0; alpha > 0 && first <= l; first += alpha) {
      DigitData g;
      g.first = first;
      g.count = std::min(alpha, l + 1 - first);
      if (g.count > 1) {
        std::vector<uint64_t> dq(qv.begin() + static_cast<long>(first),
                                 qv.begin() + static_cast<long>(first + g.count));
        g.punctured_mod_target.resize(g.count * targets);
        for (size_t i = 0; i < g.count; ++i) g.inv_q.push_back(1.0 / static_cast<double>(dq[i]));
        for (size_t t = 0; t < targets; ++t) {
          const size_t gi = t <= l ? t : coeff_count_ + (t - l - 1);
          const uint64_t qd = product_mod(dq, dq.size(), moduli_[gi]);
          g.neg_qd_mod_target.push_back(qd == 0 ? 0 : moduli_[gi].value - qd);
        }
        for (size_t i = 0; i < g.count; ++i) {
          const ring::Modulus& mi = moduli_[first + i];
          const uint64_t inv = ring::inv_mod(product_mod(dq, i, mi), mi);
          g.inv_punctured.push_back(inv);
          g.inv_punctured_shoup.push_back(ring::shoup_precompute(inv, mi.value));
          for (size_t t = 0; t < targets; ++t) {
            const size_t gi = t <= l ? t : coeff_count_ + (t - l - 1);
            g.punctured_mod_target[i * targets + t] = product_mod(dq, i, moduli_[gi]);
          }
        }
      }
      d.digits.push_back(std::move(g));
    }
    // Exact CRT.
    d.crt_words = l + 2;
    d.q_product = ring::mp::product(qv);
    d.q_product.resize(d.crt_words, 0);
    d.half_q = d.q_product;
    ring::mp::shift_right_one(d.half_q.data(), d.crt_words);
    d.punctured.assign((l + 1) * d.crt_words, 0);
    for (size_t i = 0; i <= l; ++i) {
      std::vector<uint64_t> others;
      for (size_t k = 0; k <= l; ++k) {
        if (k != i) others.push_back(qv[k]);
      }
      std::vector<uint64_t> prod = ring::mp::product(others);
      prod.resize(d.crt_words, 0);
      std::copy(prod.begin(), prod.end(), d.punctured.begin() + static_cast<long>(i * d.crt_words));
      const uint64_t inv =
          ring::inv_mod(ring::mp::mod_word(prod.data(), d.crt_words, moduli_[i]), moduli_[i]);
      d.inv_punctured.push_back(inv);
      d.inv_punctured_shoup.push_back(ring::shoup_precompute(inv, qv[i]));
    }
  }
}

void CKKSContext::build_mod_down() {
  std::vector<uint64_t> pv;
  for (size_t k = 0; k < special_count_; ++k) pv.push_back(moduli_[coeff_count_ + k].value);
  std::vector<uint64_t> big_p = ring::mp::product(pv);
  std::vector<uint64_t> half_p = big_p;
  ring::mp::shift_right_one(half_p.data(), half_p.size());
  ModDownData& md = mod_down_;
  for (size_t i = 0; i < coeff_count_; ++i) {
    const ring::Modulus& m = moduli_[i];
    const uint64_t p_mod = ring::mp::mod_word(big_p.data(), big_p.size(), m);
    md.p_mod_q.push_back(p_mod);
    const uint64_t inv = ring::inv_mod(p_mod, m);
    md.inv_p_mod_q.push_back(inv);
    md.inv_p_mod_q_shoup.push_back(ring::shoup_precompute(inv, m.value));
    md.half_p_mod_q.push_back(ring::mp::mod_word(half_p.data(), half_p.size(), m));
  }
  md.p_hat_mod_q.resize(special_count_ * coeff_count_);
  for (size_t k = 0; k < special_count_; ++k) {
    const ring::Modulus& pk = moduli_[coeff_count_ + k];
    md.half_p_mod_p.push_back(ring::mp::mod_word(half_p.data(), half_p.size(), pk));
    md.inv_p.push_back(1.0 / static_cast<double>(pk.value));
    const uint64_t inv = ring::inv_mod(product_mod(pv, k, pk), pk);
    md.inv_p_hat.push_back(inv);
    md.inv_p_hat_shoup.push_back(ring::shoup_precompute(inv, pk.value));
    for (size_t i = 0; i < coeff_count_; ++i) {
      md.p_hat_mod_q[k * coeff_count_ + i] = product_mod(pv, k, moduli_[i]);
    }
  }
}

const std::vector<uint32_t>& CKKSContext::galois_permutation(uint32_t elt) const {
  const uint64_t two_n = 2 * n_;
  if ((elt & 1) == 0 || elt >= two_n) {
    throw std::invalid_argument("galois_permutation: element " + std::to_string(elt) +
                                " is not odd in [1, 2N = " + std::to_string(two_n) + ")");
  }
  std::lock_guard<std::mutex> lock(galois_mutex_);
  auto it = galois_cache_.find(elt);
  if (it != galois_cache_.end()) return *it->second;
  // Slot j holds a(ψ^e_j), e_j = 2·bitrev(j) + 1; σ(a)(ψ^e_j) = a(ψ^(e_j·elt)).
  auto perm = std::make_unique<std::vector<uint32_t>>(n_);
  std::vector<uint32_t> rev(n_);
  for (size_t j = 0; j < n_; ++j) rev[j] = ring::bit_reverse(static_cast<uint32_t>(j), log_n_);
  for (size_t j = 0; j < n_; ++j) {
    const uint64_t e = (2 * static_cast<uint64_t>(rev[j]) + 1) * elt % two_n;
    (*perm)[j] = rev[(e - 1) / 2];
  }
  const auto& ref = *perm;
  galois_cache_.emplace(elt, std::move(perm));
  return ref;
}

std::string CKKSContext::describe() const {
  std::ostringstream s;
  s << "N = " << n_ << ", " << coeff_count_ << " chain primes (bits";
  for (size_t i = 0; i < coeff_count_; ++i) s << " " << moduli_[i].bit_count;
  s << "), " << special_count_ << " special (bits";
  for (size_t k = 0; k < special_count_; ++k) s << " " << moduli_[coeff_count_ + k].bit_count;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << "), log2(QP) = " << log2_qp_ << ", security "
    << (security_ == SecurityLevel::TC128 ? "128-bit" : "NONE (insecure)");
  return s.str();
}

}  // namespace heinfer::ckks
