// Ring-layer benchmarks: one RNS limb (a 49-bit NTT prime), N = 4096, 8192, 16384.
//   NTTForward/N, NTTInverse/N               dispatching path (AVX-512 IFMA when available)
//   NTTForwardScalar/N, NTTInverseScalar/N   portable path
//   AddPoly/N, MultiplyPoly/N                element-wise kernels (dispatching)
//   DotScalarPoly/N                          64 inputs: out = Σ_k in_k · s_k (linear layers)
// Run single-threaded:
//   OMP_NUM_THREADS=1 ckks_bench --benchmark_filter='NTT|Poly'
//     --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "ring/modulus.h"
#include "ring/ntt.h"
#include "ring/poly_arith.h"
#include "ring/primes.h"

namespace {

using namespace heinfer::ring;

constexpr int kPrimeBits = 49;
constexpr size_t kDotInputs = 64;

std::vector<uint64_t> random_limb(size_t n, uint64_t q, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> v(n);
  for (auto& x : v) x = rng() % q;
  return v;
}

struct Limb {
  explicit Limb(size_t n)
      : q(generate_ntt_primes({kPrimeBits}, n)[0]), tables(n, q),
        a(random_limb(n, q.value, 1)), b(random_limb(n, q.value, 2)), out(n) {}
  Modulus q;
  NTTTables tables;
  std::vector<uint64_t> a, b, out;
};

void NTTForward(benchmark::State& state) {
  Limb l(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    l.tables.forward(l.a.data());
    benchmark::ClobberMemory();
  }
  state.counters["ifma"] = l.tables.uses_ifma();
}

void NTTInverse(benchmark::State& state) {
  Limb l(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    l.tables.inverse(l.a.data());
    benchmark::ClobberMemory();
  }
  state.counters["ifma"] = l.tables.uses_ifma();
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
}

void MultiplyPoly(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Limb l(n);
  for (auto _ : state) {
    multiply_poly(l.a.data(), l.b.data(), l.out.data(), n, l.q);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

void DotScalarPoly(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Limb l(n);
  std::vector<std::vector<uint64_t>> inputs;
  std::vector<const uint64_t*> ptrs;
  for (size_t k = 0; k < kDotInputs; ++k) {
    inputs.push_back(random_limb(n, l.q.value, 100 + k));
    ptrs.push_back(inputs.back().data());
  }
  const std::vector<uint64_t> scalars = random_limb(kDotInputs, l.q.value, 3);
  for (auto _ : state) {
    dot_scalar_poly(ptrs.data(), scalars.data(), kDotInputs, l.out.data(), n, l.q);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n * kDotInputs));
}

}  // namespace

BENCHMARK(NTTForward)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(NTTInverse)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(NTTForwardScalar)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(NTTInverseScalar)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(AddPoly)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(MultiplyPoly)->Arg(4096)->Arg(8192)->Arg(16384);
BENCHMARK(DotScalarPoly)->Arg(4096)->Arg(8192)->Arg(16384);
