// CKKS scheme-layer benchmarks: one per operation, named "Op/N", at the largest
// 128-bit-secure modulus for N = 4096, 8192, 16384, mirroring SEAL's BFVDefault chains
// so limb counts match SEAL's CKKS benchmarks:
//   N =  4096: q = {36, 36}, special {37}                       scale 2^30
//   N =  8192: q = {43, 43, 44, 44}, special {44}               scale 2^40
//   N = 16384: q = {48, 48, 48, 49, 49, 49, 49, 49}, special {49} scale 2^40
// Ciphertexts are at the top level (all L limbs). MultiplyRelinearize includes the
// rescale, like SEAL's "multiply + relinearize + rescale" figure. Each line's label is the
// kernel path (ifma, avx2, portable; HEINFER_SIMD=portable|avx2 caps it). Run with
//   OMP_NUM_THREADS=1 ckks_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <array>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ckks/blind_refresh.h"
#include "ckks/odd_polynomial.h"
#include "ckks/decryptor.h"
#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "ckks/evaluator.h"
#include "ckks/keygen.h"
#include "ring/cpu_features.h"

namespace {

using namespace heinfer::ckks;

struct Setup {
  ContextPtr ctx;
  double scale = 0;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  std::unique_ptr<CKKSEncoder> encoder;
  std::unique_ptr<Encryptor> encryptor;
  std::unique_ptr<Decryptor> decryptor;
  std::unique_ptr<Evaluator> eval;
  std::vector<double> values;
  Plaintext plain;
  Ciphertext a, b;

  explicit Setup(size_t n) {
    EncryptionParameters parms;
    if (n == 4096) {
      parms = EncryptionParameters(n, {36, 36}, {37});
      scale = std::ldexp(1.0, 30);
    } else if (n == 8192) {
      parms = EncryptionParameters(n, {43, 43, 44, 44}, {44});
      scale = std::ldexp(1.0, 40);
    } else {
      parms = EncryptionParameters(n, {48, 48, 48, 49, 49, 49, 49, 49}, {49});
      scale = std::ldexp(1.0, 40);
    }
    ctx = CKKSContext::create(parms);
    keygen = std::make_unique<KeyGenerator>(ctx);
    pk = keygen->create_public_key();
    rk = keygen->create_relin_keys();
    gk = keygen->create_galois_keys({1});
    encoder = std::make_unique<CKKSEncoder>(ctx);
    encryptor = std::make_unique<Encryptor>(ctx, pk, keygen->secret_key());
    decryptor = std::make_unique<Decryptor>(ctx, keygen->secret_key());
    eval = std::make_unique<Evaluator>(ctx);
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> d(-1.0, 1.0);
    values.resize(n / 2);
    for (auto& v : values) v = d(rng);
    encoder->encode(values, scale, ctx->max_level(), plain);
    encryptor->encrypt(plain, a);
    encryptor->encrypt(plain, b);
  }
};

Setup& setup(size_t n) {
  static std::map<size_t, std::unique_ptr<Setup>> cache;
  auto& s = cache[n];
  if (!s) s = std::make_unique<Setup>(n);
  return *s;
}

void reg(const std::string& op, void (*fn)(benchmark::State&, size_t)) {
  for (size_t n : {4096, 8192, 16384}) {
    benchmark::RegisterBenchmark((op + "/" + std::to_string(n)).c_str(),
                                 [fn, n](benchmark::State& st) {
                                   fn(st, n);
                                   // Every prime of these chains is below 2^49: one path for all.
                                   st.SetLabel(std::string(heinfer::ring::simd_path_name(heinfer::ring::simd_path())));
                                 })
        ->Unit(benchmark::kMicrosecond);
  }
}

void Encode(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Plaintext p;
  for (auto _ : st) s.encoder->encode(s.values, s.scale, s.ctx->max_level(), p);
}

void Decode(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  std::vector<double> out;
  for (auto _ : st) s.encoder->decode(s.plain, out);
}

void EncryptPublic(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.encryptor->encrypt(s.plain, c);
}

void EncryptSymmetric(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.encryptor->encrypt_symmetric(s.plain, c);
}

void Decrypt(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Plaintext p;
  for (auto _ : st) s.decryptor->decrypt(s.a, p);
}

void Add(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.eval->add(s.a, s.b, c);
}

void MultiplyPlain(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.eval->multiply_plain(s.a, s.plain, c);
}

void MultiplyScalar(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.eval->multiply_scalar(s.a, 0.7371, s.scale, c);
}

void Multiply(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.eval->multiply(s.a, s.b, c);
}

void Relinearize(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c3, c;
  s.eval->multiply(s.a, s.b, c3);
  for (auto _ : st) s.eval->relinearize(c3, s.rk, c);
}

void MultiplyRelinearize(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) {
    s.eval->multiply_relinearize(s.a, s.b, s.rk, c);
    s.eval->rescale_inplace(c);
  }
}

void Rescale(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.eval->rescale(s.a, c);
}

void Rotate(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c;
  for (auto _ : st) s.eval->rotate(s.a, 1, s.gk, c);
}

void MultiplyScalarAccumulate(benchmark::State& st, size_t n) {
  constexpr size_t kInputs = 64;
  Setup& s = setup(n);
  std::vector<Ciphertext> inputs(kInputs, s.a);
  std::vector<double> weights(kInputs);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  for (auto& w : weights) w = d(rng);
  Ciphertext c;
  for (auto _ : st) s.eval->multiply_scalar_accumulate(inputs, weights, s.scale, c);
  // Seconds per input ciphertext (shown with an SI prefix, e.g. "17.1u" = 17.1 µs).
  st.counters["per_input"] = benchmark::Counter(
      static_cast<double>(kInputs),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void NTTForwardCiphertext(benchmark::State& st, size_t n) {
  Setup& s = setup(n);
  Ciphertext c = s.a;  // 2 polys × L limbs
  for (auto _ : st) {
    c.set_ntt_form(false);
    s.eval->transform_to_ntt_inplace(c);
  }
}

/// Mask bits of the blind-refresh benchmarks: 87 (a 2^34 bound, 53 hiding bits), or what
/// the top level of the small chain carries.
int refresh_bits(const Setup& s) {
  return std::min(87, static_cast<int>(s.ctx->level_data(s.ctx->max_level()).log2_q) - 4);
}

void BlindRefreshMask(benchmark::State& st, size_t n) {  // server: + Enc_pk(0) + r
  Setup& s = setup(n);
  for (auto _ : st) {
    Ciphertext c = s.a;
    benchmark::DoNotOptimize(mask_for_refresh(c, *s.encryptor, refresh_bits(s), *s.ctx));
  }
}

void BlindRefreshClient(benchmark::State& st, size_t n) {  // client: decrypt, check, extend, encrypt
  Setup& s = setup(n);
  Ciphertext c = s.a;
  mask_for_refresh(c, *s.encryptor, refresh_bits(s), *s.ctx);
  for (auto _ : st) benchmark::DoNotOptimize(refresh_at_top_level(c, refresh_bits(s), *s.decryptor, *s.encryptor, *s.ctx));
}

void BlindRefreshUnmask(benchmark::State& st, size_t n) {  // server: - r
  Setup& s = setup(n);
  Ciphertext c = s.a;
  const RefreshMask mask = mask_for_refresh(c, *s.encryptor, refresh_bits(s), *s.ctx);
  for (auto _ : st) unmask_refreshed(c, mask, *s.ctx);
}

void OddSeptic(benchmark::State& st, size_t n) {  // f_3 of the sign composites: depth 3, 5 products
  Setup& s = setup(n);
  const std::array<double, 4> f3{35.0 / 16, -35.0 / 16, 21.0 / 16, -5.0 / 16};
  Ciphertext out;
  for (auto _ : st) evaluate_odd_septic(*s.eval, s.a, f3, s.rk, out);
}

const bool registered = [] {
  reg("Encode", Encode);
  reg("Decode", Decode);
  reg("EncryptPublic", EncryptPublic);
  reg("EncryptSymmetric", EncryptSymmetric);
  reg("Decrypt", Decrypt);
  reg("Add", Add);
  reg("MultiplyPlain", MultiplyPlain);
  reg("MultiplyScalar", MultiplyScalar);
  reg("Multiply", Multiply);
  reg("Relinearize", Relinearize);
  reg("MultiplyRelinearize", MultiplyRelinearize);
  reg("Rescale", Rescale);
  reg("Rotate", Rotate);
  reg("MultiplyScalarAccumulate", MultiplyScalarAccumulate);
  reg("NTTForwardCiphertext", NTTForwardCiphertext);
  reg("BlindRefreshMask", BlindRefreshMask);
  reg("BlindRefreshClient", BlindRefreshClient);
  reg("BlindRefreshUnmask", BlindRefreshUnmask);
  for (size_t n : {8192, 16384}) {  // depth 3: not the 2-level chain of 4096
    benchmark::RegisterBenchmark(("OddSeptic/" + std::to_string(n)).c_str(), [n](benchmark::State& st) {
      OddSeptic(st, n);
      st.SetLabel(std::string(heinfer::ring::simd_path_name(heinfer::ring::simd_path())));
    })->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
