// The encrypted convolution of one streamed band (runtime/kernels/conv.h over
// EncryptedBackend, then flush: the multiply-accumulates and the rescales) at the shapes
// of ResNet-50 at 224×224 and the parameters its plan chooses: N = 4096, chain {30, 29,
// 30}, complex packing, inputs at level 2 (3 RNS limbs), one output row of 56 positions.
// Arguments: input channels C, output channels M, kernel size K (K×K, padding K/2 in width;
// the band reads K input rows), whether the inputs are shuffled in memory (1: allocation
// order unrelated to reading order), whether a residual input is added (ResNet's fused
// Add: one more term per output, its own). Counters:
//   ct_macs/s    ciphertext multiply-accumulates (one input ciphertext × one scalar into
//                one output) per second;
//   word_macs/s  coefficient-word multiply-accumulates per second (2 polynomials × 3
//                limbs × N words per ciphertext multiply-accumulate);
//   of_ifma      word_macs/s over the IFMA bound: IfmaPeak's lane multiplies per second,
//                halved (a word product takes two, its low and high halves), times the
//                threads. The kernel for primes below 2^31 takes exact 64-bit products
//                (one vpmuludq per 8 words) and may pass 1.0.
// IfmaPeak: the machine's vpmadd52luq rate, 12 independent accumulators on one core.
// Run with
//   OMP_NUM_THREADS=1 runtime_bench --benchmark_filter='Conv|IfmaPeak' --benchmark_min_time=4
#include <benchmark/benchmark.h>

#include <immintrin.h>
#include <omp.h>

#include <cmath>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "ckks/evaluator.h"
#include "memory/process_memory.h"
#include "ring/cpu_features.h"
#include "runtime/encrypted_backend.h"
#include "runtime/kernels/conv.h"

namespace {

using namespace heinfer;

/// 12 independent chains of vpmadd52luq on zmm registers (8 lanes each), `iters` rounds.
__attribute__((target("avx512f,avx512ifma"))) std::int64_t ifma_chains(std::int64_t iters) {
  __m512i acc[12];
  __m512i x = _mm512_set1_epi64(12345), y = _mm512_set1_epi64(678910);
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi64(i);
  for (std::int64_t k = 0; k < iters; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_madd52lo_epu64(acc[i], x, y);
    __asm__ volatile("" : "+v"(x));  // keeps the loop from being folded
  }
  __m512i sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm512_add_epi64(sum, acc[i]);
  alignas(64) std::int64_t lanes[8];
  _mm512_store_si512(lanes, sum);
  return lanes[0];
}

/// Lane multiplies per second of one core (0 without IFMA), measured once.
double ifma_peak_per_core() {
  static const double peak = [] {
    if (!ring::cpu_has_avx512_ifma()) return 0.0;
    constexpr std::int64_t kIters = 20'000'000;
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(ifma_chains(kIters));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, kIters * 12.0 * 8.0 / s);
    }
    return best;
  }();
  return peak;
}

void IfmaPeak(benchmark::State& st) {
  if (!ring::cpu_has_avx512_ifma()) {
    st.SkipWithError("no AVX-512 IFMA");
    return;
  }
  constexpr std::int64_t kIters = 10'000'000;
  for (auto _ : st) benchmark::DoNotOptimize(ifma_chains(kIters));
  st.counters["lane_muls/s"] = benchmark::Counter(kIters * 12.0 * 8.0, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(IfmaPeak)->Unit(benchmark::kMillisecond);

struct ConvSetup {
  ckks::ContextPtr ctx = ckks::CKKSContext::create(ckks::EncryptionParameters(4096, {30, 29, 30}, {}));
  ckks::Evaluator eval{ctx};
};

ConvSetup& conv_setup() {
  static ConvSetup s;
  memory::configure_allocator_for_ciphertexts();  // as heinfer run: outputs reuse freed heap
  return s;
}

/// A ciphertext at `level` with uniform residues (the kernel's work does not depend on them).
std::shared_ptr<const ckks::Ciphertext> random_ciphertext(const ckks::CKKSContext& ctx, std::size_t level,
                                                          std::mt19937_64& rng) {
  auto ct = std::make_shared<ckks::Ciphertext>();
  ct->resize(ctx.n(), 2, level);
  ct->set_scale(0x1p30);
  ct->set_ntt_form(true);
  for (std::size_t p = 0; p < 2; ++p) {
    for (std::size_t i = 0; i <= level; ++i) {
      const std::uint64_t q = ctx.modulus(i).value;
      std::uint64_t* limb = ct->limb(p, i);
      for (std::size_t c = 0; c < ctx.n(); ++c) limb[c] = rng() % q;
    }
  }
  return ct;
}

void EncryptedConvBand(benchmark::State& st) {
  ConvSetup& s = conv_setup();
  const std::int64_t c_in = st.range(0), m_out = st.range(1), k = st.range(2), width = 56;
  constexpr std::size_t kLevel = 2;
  std::mt19937_64 rng(7);
  runtime::EncryptedTensor x;
  x.shape = {c_in, k, width};
  x.level = kLevel;
  x.scale = 0x1p30;
  for (std::int64_t e = 0; e < model::numel(x.shape); ++e) x.cts.push_back(random_ciphertext(*s.ctx, kLevel, rng));
  if (st.range(3)) std::shuffle(x.cts.begin(), x.cts.end(), rng);
  std::uniform_real_distribution<double> d(-0.5, 0.5);
  std::vector<double> w(static_cast<std::size_t>(m_out * c_in * k * k));
  for (auto& v : w) v = d(rng);
  model::ConvParams p;
  p.kernel = {k, k};
  p.strides = {1, 1};
  p.dilations = {1, 1};
  p.pads_begin = {0, k / 2};
  p.pads_end = {0, k / 2};
  const model::Shape y_shape{m_out, 1, width};
  // ResNet's fused residual Add (ConvParams::residual): one more term per output, its own.
  runtime::EncryptedTensor z;
  if (st.range(4)) {
    p.residual = true;
    z.shape = y_shape;
    z.level = kLevel;
    z.scale = x.scale;
    for (std::int64_t e = 0; e < model::numel(y_shape); ++e) z.cts.push_back(random_ciphertext(*s.ctx, kLevel, rng));
  }
  runtime::EncryptedBackend be;
  be.eval = &s.eval;
  be.rescale = true;
  be.in_level = kLevel;
  be.in_scale = x.scale;
  be.target_scale = 0x1p30;
  const auto tile = runtime::kernels::OutputTile::all(model::numel(y_shape));
  be.tile = &tile;
  std::vector<runtime::EncryptedBackend::Acc> deferred;
  be.deferred = &deferred;
  runtime::EncryptedTensor y;
  y.shape = y_shape;
  y.level = kLevel - 1;
  y.scale = 0x1p30;
  for (auto _ : st) {
    y.cts.assign(static_cast<std::size_t>(model::numel(y_shape)), nullptr);
    deferred.assign(static_cast<std::size_t>(tile.size()), {});
    runtime::kernels::conv(be, p, x.shape, y_shape, w, {}, x, y, &tile, st.range(4) ? &z : nullptr);
    be.flush(y, deferred);
    benchmark::DoNotOptimize(y.cts.back().get());
  }
  // Multiply-accumulates actually done: the window's in-bounds positions per output.
  std::int64_t macs = 0;
  for (std::int64_t o = 0; o < width; ++o) {
    std::int64_t in = 0;
    for (std::int64_t kw = 0; kw < k; ++kw) in += (o + kw - k / 2 >= 0 && o + kw - k / 2 < width) ? 1 : 0;
    macs += (in * k * c_in + st.range(4)) * m_out;
  }
  const double words = static_cast<double>(macs) * 2.0 * (kLevel + 1) * static_cast<double>(s.ctx->n());
  const double threads = omp_get_max_threads();
  st.counters["ct_macs/s"] = benchmark::Counter(static_cast<double>(macs), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["word_macs/s"] = benchmark::Counter(words, benchmark::Counter::kIsIterationInvariantRate);
  if (ifma_peak_per_core() > 0) {
    st.counters["of_ifma"] =
        benchmark::Counter(2.0 * words / (ifma_peak_per_core() * threads), benchmark::Counter::kIsIterationInvariantRate);
  }
  st.SetLabel(ring::use_ifma(s.ctx->modulus(0).value) ? "ifma" : "portable/avx2");
}

// ResNet-50's bottleneck shapes at 224: layer1's 3×3 (64 → 64) and 1×1 (64 → 256,
// 256 → 64); layer4's 3×3 at a 56-wide band is not a real shape, so the 3×3 stands for all.
BENCHMARK(EncryptedConvBand)
    ->Args({64, 64, 3, 0, 0})
    ->Args({64, 256, 1, 0, 0})
    ->Args({256, 64, 1, 0, 0})
    ->Args({64, 64, 3, 1, 0})
    ->Args({64, 256, 1, 0, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
