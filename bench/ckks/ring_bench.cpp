// Ring-layer benchmarks: one RNS limb (a 49-bit NTT prime), N = 4096, 8192, 16384.
//   NTTForward/N, NTTInverse/N               dispatching path (label: ifma, avx2 or portable;
//                                            HEINFER_SIMD=portable|avx2 caps it)
//   NTTForwardScalar/N, NTTInverseScalar/N   portable path
//   AddPoly/N, MultiplyPoly/N                element-wise kernels (dispatching, labelled)
//   DotScalarPoly/N                          64 inputs: out = Σ_k in_k · s_k (linear layers)
//   MultiDot/N/bits/M/small                  845 inputs × M outputs in 64-coefficient tiles
//                                            (M = 100: a dense layer's scalars pass L2);
//                                            small = 1: centred scalars below 2^28 (weights)
// Run single-threaded:
//   OMP_NUM_THREADS=1 ckks_bench --benchmark_filter='NTT|Poly'
//     --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ring/aligned_memory.h"
#include "ring/cpu_features.h"
#include "ring/modulus.h"
#include "ring/multi_dot.h"
#include "ring/ntt.h"
#include "ring/poly_arith.h"
#include "ring/primes.h"

namespace {

using namespace heinfer::ring;

constexpr int kPrimeBits = 49;
constexpr size_t kDotInputs = 64;

LimbVector random_limb(size_t n, uint64_t q, uint64_t seed) {
  std::mt19937_64 rng(seed);
  LimbVector v(n);
  for (auto& x : v) x = rng() % q;
  return v;
}

struct Limb {
  explicit Limb(size_t n, int bits = kPrimeBits)
      : q(generate_ntt_primes({bits}, n)[0]), tables(n, q),
        a(random_limb(n, q.value, 1)), b(random_limb(n, q.value, 2)), out(n) {}
  Modulus q;
  NTTTables tables;
  LimbVector a, b, out;
};

void NTTForward(benchmark::State& state) {
  Limb l(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    l.tables.forward(l.a.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(simd_path_name(l.tables.path())));
}

void NTTInverse(benchmark::State& state) {
  Limb l(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    l.tables.inverse(l.a.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(simd_path_name(l.tables.path())));
}

void NTTForwardScalar(benchmark::State& state) {
  Limb l(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    l.tables.forward_scalar(l.a.data());
    benchmark::ClobberMemory();
  }
}

void NTTInverseScalar(benchmark::State& state) {
  Limb l(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    l.tables.inverse_scalar(l.a.data());
    benchmark::ClobberMemory();
  }
}

void AddPoly(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Limb l(n);
  for (auto _ : state) {
    add_poly(l.a.data(), l.b.data(), l.out.data(), n, l.q);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetLabel(std::string(simd_path_name(simd_path())));
}

void MultiplyPoly(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Limb l(n);
  for (auto _ : state) {
    multiply_poly(l.a.data(), l.b.data(), l.out.data(), n, l.q);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetLabel(std::string(simd_path_name(simd_path())));
}

void DotScalarPoly(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Limb l(n);
  std::vector<LimbVector> inputs;
  std::vector<const uint64_t*> ptrs;
  for (size_t k = 0; k < kDotInputs; ++k) {
    inputs.push_back(random_limb(n, l.q.value, 100 + k));
    ptrs.push_back(inputs.back().data());
  }
  const LimbVector scalars = random_limb(kDotInputs, l.q.value, 3);
  for (auto _ : state) {
    dot_scalar_poly(ptrs.data(), scalars.data(), kDotInputs, l.out.data(), n, l.q);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n * kDotInputs));
  state.SetLabel(std::string(simd_path_name(simd_path())));
}

// A dense layer's inner kernel as the encrypted backend calls it: 845 inputs, 8 outputs
// (two register blocks), tiles of 64 coefficients over one limb of n coefficients, for a
// prime of the given bits (range(1)).
void MultiDot(benchmark::State& state) {
  constexpr size_t kInputs = 845, kTile = 64;
  const size_t n = static_cast<size_t>(state.range(0));
  const auto kOutputs = static_cast<size_t>(state.range(2));
  Limb l(n, static_cast<int>(state.range(1)));
  std::vector<LimbVector> inputs, scalars, outs(kOutputs, LimbVector(n));
  for (size_t k = 0; k < kInputs; ++k) inputs.push_back(random_limb(n, l.q.value, 100 + k));
  for (size_t m = 0; m < kOutputs; ++m) scalars.push_back(random_limb(kInputs, l.q.value, 7 + m));
  if (state.range(3)) {  // weights times a weight scale: |s| < 2^28, either sign
    for (auto& v : scalars) {
      for (auto& x : v) x = x & 1 ? (x >> 36) : l.q.value - (x >> 36);
    }
  }
  std::vector<const uint64_t*> ptrs(kInputs), sptr(kOutputs);
  std::vector<uint64_t*> optr(kOutputs);
  for (size_t m = 0; m < kOutputs; ++m) sptr[m] = scalars[m].data();
  for (auto _ : state) {
    for (size_t base = 0; base < n; base += kTile) {
      for (size_t k = 0; k < kInputs; ++k) ptrs[k] = inputs[k].data() + base;
      for (size_t m = 0; m < kOutputs; ++m) optr[m] = outs[m].data() + base;
      detail::multi_dot(ptrs.data(), kInputs, sptr.data(), kOutputs, optr.data(), kTile, l.q);
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n * kInputs * kOutputs));
  state.SetLabel(std::string(simd_path_name(simd_path())));
}

}  // namespace

BENCHMARK(MultiDot)
    ->Args({64, 49, 8, 0})->Args({64, 30, 8, 0})->Args({8192, 49, 8, 0})->Args({8192, 30, 8, 0})
    ->Args({8192, 49, 100, 0})->Args({8192, 30, 100, 0})->Args({8192, 49, 100, 1})->Args({8192, 49, 8, 1});
BENCHMARK(NTTForward)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(NTTInverse)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(NTTForwardScalar)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(NTTInverseScalar)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(AddPoly)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(MultiplyPoly)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(DotScalarPoly)->Arg(4096)->Arg(8192)->Arg(16384);
