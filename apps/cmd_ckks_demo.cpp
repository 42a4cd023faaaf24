// `heinfer ckks-demo [--n N] [--rotate R] [--seed S]`: generate keys, encrypt two
// vectors of N reals each with complex packing, compute rot_R(x·0.5 + y)^2 homomorphically
// (scalar product, rescale, addition, rotation, packed elementwise square, rescale),
// decrypt and print the maximum absolute error against double arithmetic, the
// parameters, object sizes and timings.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckks/decryptor.h"
#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "ckks/evaluator.h"
#include "ckks/keygen.h"
#include "ckks/serialization.h"
#include "commands.h"

namespace heinfer::apps {
namespace {

using namespace heinfer::ckks;

struct DemoOptions {
  size_t n = 8192;
  int rotate = 1;
  uint64_t seed = 1;
};

// The largest 128-bit-secure chain for N: q_0 and the special prime of 49 bits (the
// special prime must not be smaller than a digit, else key switching is noisy), the rest
// 40-bit primes, scale 2^40. N = 4096 (109 bits) cannot hold this depth-2 computation.
EncryptionParameters demo_parameters(size_t n, double& scale) {
  const int limit = max_log_qp_128(n);
  if (limit == 0 || n < 8192) {
    throw std::invalid_argument("ckks-demo: --n must be a power of two in [8192, 65536] "
                                "(N = 4096 allows only 109 bits of modulus at 128-bit security)");
  }
  scale = std::ldexp(1.0, 40);
  std::vector<int> q = {49};
  for (int used = 98; used + 40 <= limit; used += 40) q.push_back(40);
  return EncryptionParameters(n, q, {49});
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void run_demo(const DemoOptions& opt) {
  using clock = std::chrono::steady_clock;
  double scale = 0;
  auto t0 = clock::now();
  const ContextPtr ctx = CKKSContext::create(demo_parameters(opt.n, scale));
  const double t_ctx = ms_since(t0);
  const size_t n = ctx->n(), half = n / 2, top = ctx->max_level();
  std::printf("parameters: %s\n", ctx->describe().c_str());
  std::printf("scale 2^%.0f, fingerprint %02x%02x%02x%02x...\n", std::log2(scale),
              ctx->fingerprint()[0], ctx->fingerprint()[1], ctx->fingerprint()[2],
              ctx->fingerprint()[3]);

  t0 = clock::now();
  KeyGenerator keygen(ctx);
  const PublicKey pk = keygen.create_public_key();
  const RelinKeys rk = keygen.create_relin_keys();
  const GaloisKeys gk = keygen.create_galois_keys({opt.rotate}, /*conjugation=*/true);
  const double t_keys = ms_since(t0);

  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> x(n), y(n);
  for (auto& v : x) v = dist(rng);
  for (auto& v : y) v = dist(rng);

  CKKSEncoder encoder(ctx);
  Encryptor encryptor(ctx, pk, keygen.secret_key());
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator eval(ctx);

  t0 = clock::now();
  Plaintext px, py;
  encoder.encode_packed(x, scale, top, px);
  encoder.encode_packed(y, scale, top, py);
  Ciphertext cx, cy;
  encryptor.encrypt(px, cx);
  encryptor.encrypt(py, cy);
  const double t_enc = ms_since(t0);

  t0 = clock::now();
  // 0.5·x at weight scale q_top, so that the rescale returns exactly to `scale`.
  Ciphertext u;
  eval.multiply_scalar(cx, 0.5, static_cast<double>(ctx->modulus(top).value), u);
  eval.rescale_inplace(u);
  eval.mod_switch_to_inplace(cy, u.level());
  eval.add_inplace(u, cy);
  eval.rotate_inplace(u, opt.rotate, gk);
  Ciphertext r;
  eval.multiply_packed(u, u, rk, gk, r);  // elementwise square of all N packed reals
  eval.rescale_inplace(r);
  const double t_eval = ms_since(t0);

  t0 = clock::now();
  Plaintext pr;
  decryptor.decrypt(r, pr);
  std::vector<double> out;
  encoder.decode_packed(pr, out);
  const double t_dec = ms_since(t0);

  const long slots = static_cast<long>(half);
  const long shift = ((opt.rotate % slots) + slots) % slots;
  double max_err = 0, max_val = 0;
  for (size_t j = 0; j < n; ++j) {
    const size_t base = j < half ? 0 : half;
    const size_t src = base + static_cast<size_t>((static_cast<long>(j - base) + shift) % slots);
    const double v = 0.5 * x[src] + y[src];
    max_err = std::max(max_err, std::fabs(out[j] - v * v));
    max_val = std::max(max_val, v * v);
  }

  Ciphertext seeded;
  encryptor.encrypt_symmetric(px, seeded);
  const size_t full_bytes = to_bytes(seeded, *ctx).size();
  seeded.compact();
  const size_t seeded_bytes = to_bytes(seeded, *ctx).size();

  std::printf("computed rot_%d(0.5*x + y)^2 on %zu packed reals (inputs uniform in [-1, 1])\n",
              opt.rotate, n);
  std::printf("result level %zu, scale 2^%.3f\n", r.level(), std::log2(r.scale()));
  std::printf("max |error| = %.3e (%.1f bits below the max value %.3f)\n", max_err,
              std::log2(max_val / max_err), max_val);
  std::printf("sizes: public key %zu B, relin key %zu B, Galois keys (%zu) %zu B, "
              "ciphertext %zu B (seeded %zu B)\n",
              to_bytes(pk, *ctx).size(), to_bytes(rk, *ctx).size(), gk.keys.size(),
              to_bytes(gk, *ctx).size(), full_bytes, seeded_bytes);
  std::printf("timings: context %.1f ms, keys %.1f ms, encode+encrypt 2 %.1f ms, "
              "evaluate %.1f ms, decrypt+decode %.1f ms\n",
              t_ctx, t_keys, t_enc, t_eval, t_dec);
  if (!(max_err < 1e-3)) throw std::runtime_error("ckks-demo: error above 1e-3");
}

}  // namespace

void register_ckks_demo(CLI::App& app) {
  auto opt = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "ckks-demo", "CKKS round trip: encrypt, compute rot(0.5x + y)^2, decrypt, print the error");
  cmd->add_option("--n", opt->n, "ring degree N (8192 ... 65536)")->capture_default_str();
  cmd->add_option("--rotate", opt->rotate, "slot rotation step")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "seed of the random test vectors")->capture_default_str();
  cmd->callback([opt] { run_demo(*opt); });
}

}  // namespace heinfer::apps
