// The model-private mode's Relu on the server (runtime/private_relu.h) with its blind
// refresh rounds answered by the in-process client, at 128-bit parameters: N = 16384,
// real packing (8,192 samples per ciphertext), chain {58, 30 x 11} + special {50}
// (438 bits), 77-bit refresh masks. Arguments: the precision target's bits (η = 2^-b)
// and the ciphertexts of the tensor. Reports time per ciphertext and the counters.
#include <benchmark/benchmark.h>

#include <cmath>
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
  ckks::ContextPtr ctx = ckks::CKKSContext::create(ckks::EncryptionParameters(
      16384, {58, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30}, {50}));
  runtime::LocalClient client{ctx, ckks::Packing::Real, 0x1p30};
  ckks::Encryptor pk{ctx, client.evaluation_keys().public_key};
  ckks::Evaluator ev{ctx};
  ckks::CKKSEncoder enc{ctx};
};

Setup& setup() {
  static Setup s;
  return s;
}

void PrivateRelu(benchmark::State& st) {
  Setup& s = setup();
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
  const runtime::PrivateReluContext c{&s.ev, &s.client.evaluation_keys().relin, &s.pk, &s.client, 77, 0, "relu"};
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

BENCHMARK(PrivateRelu)->Args({7, 4})->Args({5, 4})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
