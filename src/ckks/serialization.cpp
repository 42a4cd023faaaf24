#include "ckks/serialization.h"

#include <cmath>
#include <string>

#include "ckks/serialization_format.h"
#include "ckks/sizes.h"
#include "ring/primes.h"

namespace heinfer::ckks {

using detail::coeff_width;
using detail::Reader;
using detail::Writer;

namespace {

// Bytes of one polynomial over limbs [0, limbs) (global prime indices map(i)).
template <class Map>
uint64_t poly_bytes(const CKKSContext& ctx, size_t limbs, Map map) {
  uint64_t total = 0;
  for (size_t i = 0; i < limbs; ++i) total += ctx.n() * coeff_width(ctx.modulus(map(i)));
  return total;
}

uint64_t key_poly_bytes(const CKKSContext& ctx) {
  return poly_bytes(ctx, ctx.key_limb_count(), [](size_t i) { return i; });
}

void write_key_poly(Writer& w, const CKKSContext& ctx, const uint64_t* p) {
  for (size_t i = 0; i < ctx.key_limb_count(); ++i) w.coeffs(p + i * ctx.n(), ctx.n(), ctx.modulus(i));
}

void read_key_poly(Reader& r, const CKKSContext& ctx, uint64_t* p, const char* what) {
  for (size_t i = 0; i < ctx.key_limb_count(); ++i) {
    r.coeffs(p + i * ctx.n(), ctx.n(), ctx.modulus(i), what);
  }
}

// ---- key-switching key body ----

uint64_t ksk_body_bytes(const CKKSContext& ctx, const KeySwitchingKey& k) {
  return 12 + (k.seeded ? 32 : 0) + k.digits * (k.seeded ? 1 : 2) * key_poly_bytes(ctx);
}

void check_ksk_shape(const CKKSContext& ctx, const KeySwitchingKey& k) {
  if (k.digits != ctx.digit_count(ctx.max_level()) ||
      k.data.size() != k.digits * 2 * ctx.key_limb_count() * ctx.n()) {
    throw SerializationError("save: key-switching key does not match the context");
  }
}

void write_ksk(Writer& w, const CKKSContext& ctx, const KeySwitchingKey& k) {
  const size_t limbs = ctx.key_limb_count(), n = ctx.n();
  w.u8(k.seeded ? 1 : 0);
  w.u8(0);
  w.u16(0);
  w.u32(static_cast<uint32_t>(k.digits));
  w.u32(static_cast<uint32_t>(limbs));
  if (k.seeded) w.bytes(k.seed.data(), k.seed.size());
  for (size_t j = 0; j < k.digits; ++j) {
    write_key_poly(w, ctx, k.data.data() + (2 * j) * limbs * n);
    if (!k.seeded) write_key_poly(w, ctx, k.data.data() + (2 * j + 1) * limbs * n);
  }
}

// Reads one key-switching key. whole_body: it is the rest of the body (RelinKeys), so the
// remaining size must match exactly; otherwise (GaloisKeys entries) at least its size
// must remain. Both are checked before allocating.
KeySwitchingKey read_ksk(Reader& r, const CKKSContext& ctx, const char* what, bool whole_body) {
  const size_t limbs = ctx.key_limb_count(), n = ctx.n();
  KeySwitchingKey k;
  const uint8_t seeded = r.u8();
  const uint8_t r1 = r.u8();
  const uint16_t r2 = r.u16();
  if (seeded > 1 || r1 != 0 || r2 != 0) {
    throw SerializationError(std::string(what) + ": invalid flags");
  }
  k.seeded = seeded == 1;
  const uint32_t digits = r.u32(), lim = r.u32();
  if (digits != ctx.digit_count(ctx.max_level()) || lim != limbs) {
    throw SerializationError(std::string(what) + ": shape (" + std::to_string(digits) +
                             " digits, " + std::to_string(lim) + " limbs) does not match the "
                             "context (" + std::to_string(ctx.digit_count(ctx.max_level())) +
                             ", " + std::to_string(limbs) + ")");
  }
  k.digits = digits;
  const uint64_t need = ksk_body_bytes(ctx, k) - 12;
  if (whole_body) {
    r.require(need, what);
  } else if (r.remaining() < need) {
    throw SerializationError(std::string(what) + ": body too short for the declared keys");
  }
  if (k.seeded) r.bytes(k.seed.data(), k.seed.size());
  k.data.resize(k.digits * 2 * limbs * n);
  for (size_t j = 0; j < k.digits; ++j) {
    read_key_poly(r, ctx, k.data.data() + (2 * j) * limbs * n, what);
    if (!k.seeded) read_key_poly(r, ctx, k.data.data() + (2 * j + 1) * limbs * n, what);
  }
  if (k.seeded) expand_key_switching_mask(ctx, k);
  return k;
}

}  // namespace

// ------------------------------------------------------------------ parameters

void save(const EncryptionParameters& parms, std::ostream& out) {
  std::vector<uint64_t> q, p;
  try {
    parms.resolve_primes(q, p);
  } catch (const std::exception& e) {
    throw SerializationError(std::string("save(Parameters): ") + e.what());
  }
  Writer w(out);
  w.header(ObjectType::Parameters, parameter_fingerprint(parms.poly_modulus_degree(), q, p),
           20 + 8 * (q.size() + p.size()));
  w.u64(parms.poly_modulus_degree());
  w.u32(static_cast<uint32_t>(q.size()));
  w.u32(static_cast<uint32_t>(p.size()));
  w.u8(static_cast<uint8_t>(parms.security_level()));
  w.u8(0);
  w.u16(0);
  for (uint64_t v : q) w.u64(v);
  for (uint64_t v : p) w.u64(v);
}

EncryptionParameters load_parameters(std::istream& in, uint64_t max_bytes) {
  const char* what = "Parameters";
  Reader r(in);
  const detail::Header h = r.header(ObjectType::Parameters, max_bytes);
  const uint64_t n = r.u64();
  const uint32_t nq = r.u32(), np = r.u32();
  const uint8_t sec = r.u8(), r1 = r.u8();
  const uint16_t r2 = r.u16();
  if ((sec != 0 && sec != 128) || r1 != 0 || r2 != 0) {
    throw SerializationError("Parameters: invalid security level or flags");
  }
  const auto level = static_cast<SecurityLevel>(sec);
  if (!valid_ring_degree(n, level)) {
    throw SerializationError("Parameters: N = " + std::to_string(n) + " is not " + ring_degree_rule(level));
  }
  if (nq == 0 || nq > 256 || np > 64) {  // np = 0: no key switching
    throw SerializationError("Parameters: prime counts out of range (" + std::to_string(nq) +
                             " chain, " + std::to_string(np) + " special)");
  }
  r.require(8ull * (nq + np), what);
  std::vector<uint64_t> q(nq), p(np);
  for (auto& v : q) v = r.u64();
  for (auto& v : p) v = r.u64();
  for (const auto* list : {&q, &p}) {
    for (uint64_t v : *list) {
      if (v >= (uint64_t{1} << 60) || v % (2 * n) != 1 || !ring::is_prime(v)) {
        throw SerializationError("Parameters: " + std::to_string(v) +
                                 " is not a prime < 2^60 congruent to 1 mod 2N");
      }
    }
  }
  r.finish(what);
  if (parameter_fingerprint(n, q, p) != h.fingerprint) {
    throw SerializationError("Parameters: fingerprint does not match the primes");
  }
  EncryptionParameters parms;
  parms.set_poly_modulus_degree(n);
  parms.set_coeff_modulus(std::move(q), std::move(p));
  parms.set_security_level(sec == 0 ? SecurityLevel::None : SecurityLevel::TC128);
  return parms;
}

// ------------------------------------------------------------------ ciphertext

void save(const Ciphertext& ct, const CKKSContext& ctx, std::ostream& out) {
  if (ct.is_packed()) {  // the wire has its own widths: write from one word per coefficient
    Ciphertext unpacked = ct;
    unpacked.unpack_words(ctx);
    save(unpacked, ctx, out);
    return;
  }
  const size_t n = ctx.n(), lq = ct.limb_count();
  const size_t stored = ct.c1_dropped() ? 1 : ct.size();
  if (ct.n() != n || ct.level() > ctx.max_level() || ct.size() < 2 || ct.size() > 3 ||
      ct.data().size() != stored * lq * n) {
    throw SerializationError("save(Ciphertext): ciphertext does not match the context");
  }
  const auto body = static_cast<uint64_t>(serialized_size(ct, ctx)) - detail::kHeaderBytes;
  Writer w(out);
  w.header(ObjectType::Ciphertext, ctx.fingerprint(), body);
  w.u8(static_cast<uint8_t>(ct.size()));
  w.u8(ct.is_ntt_form() ? 1 : 0);
  w.u8(ct.c1_dropped() ? 1 : 0);
  w.u8(0);
  w.u32(static_cast<uint32_t>(ct.level()));
  w.f64(ct.scale());
  if (ct.c1_dropped()) w.bytes(ct.seed().data(), ct.seed().size());
  for (size_t p = 0; p < stored; ++p) {
    for (size_t i = 0; i < lq; ++i) w.coeffs(ct.limb(p, i), n, ctx.modulus(i));
  }
}

Ciphertext load_ciphertext(std::istream& in, const CKKSContext& ctx, uint64_t max_bytes) {
  const char* what = "Ciphertext";
  Reader r(in);
  const detail::Header h = r.header(ObjectType::Ciphertext, max_bytes);
  detail::check_fingerprint(h, ctx);
  const uint8_t size = r.u8(), ntt = r.u8(), compact = r.u8(), reserved = r.u8();
  const uint32_t level = r.u32();
  const double scale = r.f64();
  if (size < 2 || size > 3) {
    throw SerializationError("Ciphertext: invalid size " + std::to_string(size) + " (2 or 3)");
  }
  if (ntt > 1 || compact > 1 || reserved != 0) throw SerializationError("Ciphertext: invalid flags");
  if (compact && (size != 2 || !ntt)) {
    throw SerializationError("Ciphertext: a seeded (compact) ciphertext must have size 2 and be "
                             "in NTT form");
  }
  if (level > ctx.max_level()) {
    throw SerializationError("Ciphertext: level " + std::to_string(level) +
                             " exceeds the top level " + std::to_string(ctx.max_level()));
  }
  if (!std::isfinite(scale) || scale <= 0) {
    throw SerializationError("Ciphertext: scale is not finite and positive");
  }
  const size_t n = ctx.n(), lq = level + 1, stored = compact ? 1 : size;
  r.require((compact ? 32 : 0) + stored * poly_bytes(ctx, lq, [](size_t i) { return i; }), what);
  ring::Seed seed{};
  if (compact) r.bytes(seed.data(), seed.size());
  Ciphertext ct;
  ct.resize(n, size, level);
  ct.data().resize(stored * lq * n);
  for (size_t p = 0; p < stored; ++p) {
    for (size_t i = 0; i < lq; ++i) {
      r.coeffs(ct.data().data() + (p * lq + i) * n, n, ctx.modulus(i), what);
    }
  }
  r.finish(what);
  ct.set_scale(scale);
  ct.set_ntt_form(ntt == 1);
  if (compact) {
    ct.set_seed(seed);
    ct.compact();  // data already holds c0 only
  }
  return ct;
}

// ------------------------------------------------------------------ public key

void save(const PublicKey& pk, const CKKSContext& ctx, std::ostream& out) {
  const size_t limbs = ctx.key_limb_count(), n = ctx.n();
  if (pk.data.size() != 2 * limbs * n) {
    throw SerializationError("save(PublicKey): key does not match the context");
  }
  Writer w(out);
  w.header(ObjectType::PublicKey, ctx.fingerprint(),
           8 + (pk.seeded ? 32 : 0) + (pk.seeded ? 1 : 2) * key_poly_bytes(ctx));
  w.u8(pk.seeded ? 1 : 0);
  w.u8(0);
  w.u16(0);
  w.u32(static_cast<uint32_t>(limbs));
  if (pk.seeded) w.bytes(pk.seed.data(), pk.seed.size());
  write_key_poly(w, ctx, pk.data.data());
  if (!pk.seeded) write_key_poly(w, ctx, pk.data.data() + limbs * n);
}

PublicKey load_public_key(std::istream& in, const CKKSContext& ctx, uint64_t max_bytes) {
  const char* what = "PublicKey";
  Reader r(in);
  const detail::Header h = r.header(ObjectType::PublicKey, max_bytes);
  detail::check_fingerprint(h, ctx);
  const uint8_t seeded = r.u8(), r1 = r.u8();
  const uint16_t r2 = r.u16();
  const uint32_t limbs = r.u32();
  if (seeded > 1 || r1 != 0 || r2 != 0) throw SerializationError("PublicKey: invalid flags");
  if (limbs != ctx.key_limb_count()) {
    throw SerializationError("PublicKey: " + std::to_string(limbs) + " limbs, context has " +
                             std::to_string(ctx.key_limb_count()));
  }
  r.require((seeded ? 32 : 0) + (seeded ? 1 : 2) * key_poly_bytes(ctx), what);
  PublicKey pk;
  pk.seeded = seeded == 1;
  if (pk.seeded) r.bytes(pk.seed.data(), pk.seed.size());
  pk.data.resize(2 * limbs * ctx.n());
  read_key_poly(r, ctx, pk.data.data(), what);
  if (!pk.seeded) read_key_poly(r, ctx, pk.data.data() + limbs * ctx.n(), what);
  r.finish(what);
  if (pk.seeded) expand_public_key_mask(ctx, pk);
  return pk;
}

// ------------------------------------------------------------------ relin / Galois keys

void save(const RelinKeys& rk, const CKKSContext& ctx, std::ostream& out) {
  check_ksk_shape(ctx, rk.key);
  Writer w(out);
  w.header(ObjectType::RelinKeys, ctx.fingerprint(), ksk_body_bytes(ctx, rk.key));
  write_ksk(w, ctx, rk.key);
}

RelinKeys load_relin_keys(std::istream& in, const CKKSContext& ctx, uint64_t max_bytes) {
  Reader r(in);
  const detail::Header h = r.header(ObjectType::RelinKeys, max_bytes);
  detail::check_fingerprint(h, ctx);
  RelinKeys rk;
  rk.key = read_ksk(r, ctx, "RelinKeys", true);
  r.finish("RelinKeys");
  return rk;
}

void save(const GaloisKeys& gk, const CKKSContext& ctx, std::ostream& out) {
  uint64_t body = 4;
  for (const auto& [elt, key] : gk.keys) {
    check_ksk_shape(ctx, key);
    if ((elt & 1) == 0 || elt < 3 || elt >= 2 * ctx.n()) {
      throw SerializationError("save(GaloisKeys): invalid element " + std::to_string(elt));
    }
    body += 4 + ksk_body_bytes(ctx, key);
  }
  Writer w(out);
  w.header(ObjectType::GaloisKeys, ctx.fingerprint(), body);
  w.u32(static_cast<uint32_t>(gk.keys.size()));
  for (const auto& [elt, key] : gk.keys) {  // std::map: increasing order
    w.u32(elt);
    write_ksk(w, ctx, key);
  }
}

GaloisKeys load_galois_keys(std::istream& in, const CKKSContext& ctx, uint64_t max_bytes) {
  const char* what = "GaloisKeys";
  Reader r(in);
  const detail::Header h = r.header(ObjectType::GaloisKeys, max_bytes);
  detail::check_fingerprint(h, ctx);
  const uint32_t count = r.u32();
  if (count > ctx.n()) {
    throw SerializationError("GaloisKeys: " + std::to_string(count) +
                             " keys exceed the number of Galois elements");
  }
  GaloisKeys gk;
  uint32_t previous = 0;
  for (uint32_t c = 0; c < count; ++c) {
    const uint32_t elt = r.u32();
    if ((elt & 1) == 0 || elt < 3 || elt >= 2 * ctx.n() || elt <= previous) {
      throw SerializationError("GaloisKeys: invalid or unordered element " + std::to_string(elt));
    }
    previous = elt;
    gk.keys.emplace(elt, read_ksk(r, ctx, what, false));
  }
  r.finish(what);
  return gk;
}

// ------------------------------------------------------------------ byte vectors

std::vector<uint8_t> to_bytes(const EncryptionParameters& parms) {
  return detail::save_to_vector([&](std::ostream& os) { save(parms, os); });
}
std::vector<uint8_t> to_bytes(const Ciphertext& ct, const CKKSContext& ctx) {
  return detail::save_to_vector([&](std::ostream& os) { save(ct, ctx, os); });
}
std::vector<uint8_t> to_bytes(const PublicKey& pk, const CKKSContext& ctx) {
  return detail::save_to_vector([&](std::ostream& os) { save(pk, ctx, os); });
}
std::vector<uint8_t> to_bytes(const RelinKeys& rk, const CKKSContext& ctx) {
  return detail::save_to_vector([&](std::ostream& os) { save(rk, ctx, os); });
}
std::vector<uint8_t> to_bytes(const GaloisKeys& gk, const CKKSContext& ctx) {
  return detail::save_to_vector([&](std::ostream& os) { save(gk, ctx, os); });
}

EncryptionParameters load_parameters(std::span<const uint8_t> bytes, uint64_t max_bytes) {
  return detail::load_from_span(bytes, [&](std::istream& is) { return load_parameters(is, max_bytes); });
}
Ciphertext load_ciphertext(std::span<const uint8_t> bytes, const CKKSContext& ctx,
                           uint64_t max_bytes) {
  return detail::load_from_span(bytes,
                                [&](std::istream& is) { return load_ciphertext(is, ctx, max_bytes); });
}
PublicKey load_public_key(std::span<const uint8_t> bytes, const CKKSContext& ctx,
                          uint64_t max_bytes) {
  return detail::load_from_span(bytes,
                                [&](std::istream& is) { return load_public_key(is, ctx, max_bytes); });
}
RelinKeys load_relin_keys(std::span<const uint8_t> bytes, const CKKSContext& ctx,
                          uint64_t max_bytes) {
  return detail::load_from_span(bytes,
                                [&](std::istream& is) { return load_relin_keys(is, ctx, max_bytes); });
}
GaloisKeys load_galois_keys(std::span<const uint8_t> bytes, const CKKSContext& ctx,
                            uint64_t max_bytes) {
  return detail::load_from_span(
      bytes, [&](std::istream& is) { return load_galois_keys(is, ctx, max_bytes); });
}

}  // namespace heinfer::ckks
