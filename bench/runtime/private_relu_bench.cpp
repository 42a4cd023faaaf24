// The model-private mode's Relu on the server (runtime/private_relu.h) with its blind
// refresh rounds answered by the in-process client, at the parameters the plan chooses
// for the Fashion-MNIST CNN: N = 16384, real packing (8,192 samples per ciphertext),
// chain {47, 30 x 11} + special {47} (424 bits; every prime below 2^50, so on the SIMD
// paths), 91-bit refresh masks. Arguments: the precision target's bits (η = 2^-b)
// and the ciphertexts of the tensor. Reports time per ciphertext and the counters.
#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <utility>
#include <memory>
#include <vector>

#include "ckks/encoder.h"
#include "ckks/evaluator.h"
#include "ring/cpu_features.h"
#include "runtime/local_client.h"
#include "runtime/private_relu.h"

namespace {

using namespace heinfer;

struct Setup {
  /// {47, 30 x (limbs - 1)} + `special` primes of 47 bits.
  Setup(int limbs, int special)
      : ctx(ckks::CKKSContext::create(ckks::EncryptionParameters(
            16384, chain(limbs), std::vector<int>(static_cast<std::size_t>(special), 47)))) {}
  static std::vector<int> chain(int limbs) {
    std::vector<int> c(static_cast<std::size_t>(limbs), 30);
    c[0] = 47;
    return c;
  }
  ckks::ContextPtr ctx;
  runtime::LocalClient client{ctx, ckks::Packing::Real, 0x1p30};
  ckks::Encryptor pk{ctx, client.evaluation_keys().public_key};
  ckks::Evaluator ev{ctx};
  ckks::CKKSEncoder enc{ctx};
};

Setup& setup(int limbs, int special) {
  static std::map<std::pair<int, int>, std::unique_ptr<Setup>> all;
  auto& s = all[{limbs, special}];
  if (!s) s = std::make_unique<Setup>(limbs, special);
  return *s;
}

void PrivateRelu(benchmark::State& st) {
  Setup& s = setup(st.range(2) > 0 ? static_cast<int>(st.range(2)) : 12, st.range(3) > 0 ? static_cast<int>(st.range(3)) : 1);
  const int bits = static_cast<int>(st.range(0));
  const auto count = static_cast<std::size_t>(st.range(1));
  const plan::ReluApproximation r = plan::choose_relu_approximation(8.0, std::ldexp(1.0, -bits));
  std::vector<ckks::Ciphertext> cts(count);
  std::vector<double> x(8192);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 8.0 * std::sin(0.37 * static_cast<double>(i));
  ckks::Plaintext p;
  s.enc.encode(x, 0x1p30, s.ctx->max_level() - 1, p);  // as a linear layer leaves it
  for (auto& c : cts) s.pk.encrypt(p, c);
  std::vector<const ckks::Ciphertext*> ptrs;
  for (const auto& c : cts) ptrs.push_back(&c);
  const runtime::PrivateReluContext c{&s.ev, &s.client.evaluation_keys().relin, &s.pk, &s.client, 91, 0, "relu"};
  runtime::PrivateReluStats stats;
  for (auto _ : st) {
    stats = {};
    benchmark::DoNotOptimize(runtime::private_relu(ptrs, r, c, &stats));
  }
  st.counters["compositions"] = r.sign.compositions();
  st.counters["refresh_rounds"] = stats.refresh_rounds;
  st.counters["refreshed_cts"] = static_cast<double>(stats.refreshed_ciphertexts);
  st.counters["products"] = static_cast<double>(stats.products);
  st.counters["s_per_ct"] = benchmark::Counter(static_cast<double>(count), benchmark::Counter::kIsIterationInvariantRate |
                                                                            benchmark::Counter::kInvert);
  st.SetLabel(std::string(ring::simd_path_name(ring::simd_path())));
}

// Arguments: η bits, ciphertexts, chain limbs, special primes. The plan's chain fills
// N = 16384's 128-bit bound with one special prime (12 limbs); fewer limbs with more
// special primes trade refresh rounds for cheaper key switching (fewer digits).
BENCHMARK(PrivateRelu)
    ->Args({7, 4, 12, 1})
    ->Args({5, 4, 12, 1})
    ->Args({7, 4, 10, 2})
    ->Args({7, 4, 9, 3})
    ->Args({7, 4, 8, 3})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
