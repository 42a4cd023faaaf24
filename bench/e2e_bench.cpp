// End-to-end encrypted inference benchmark: a model at full batch (every slot used),
// one JSON line per batch on stdout.
//
//   e2e_bench MODEL.onnx IMAGES.npy [--threads T] [--batches K] [--packing complex|real] [--round-masks per-window|per-sample] [--max-prime-bits B]
//
// The images are repeated to fill the batch (N samples per ciphertext with complex
// packing, N/2 with real). Parameters: depth-aware selection (128-bit secure) calibrated
// on the given images. The first batch includes first-touch page faults of the process's
// ciphertext memory; later batches reuse it (a long-running server's steady state).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "memory/process_memory.h"
#include "model/load.h"
#include "ring/cpu_features.h"
#include "runtime/encrypted_executor.h"
#include "runtime/npy.h"
#include "plan/parameters.h"
#include "runtime/calibration.h"

int main(int argc, char** argv) {
  using namespace heinfer;
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.onnx IMAGES.npy [--threads T] [--batches K] [--packing complex|real] [--round-masks per-window|per-sample] [--max-prime-bits B]\n", argv[0]);
    return 2;
  }
  int threads = 0, batches = 2;
  std::string packing = "complex", masks = "per-window";
  int max_prime_bits = 49;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batches")) batches = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--packing")) packing = argv[i + 1];
    else if (!std::strcmp(argv[i], "--round-masks")) masks = argv[i + 1];
    else if (!std::strcmp(argv[i], "--max-prime-bits")) max_prime_bits = std::atoi(argv[i + 1]);
  }
  heinfer::memory::configure_allocator_for_ciphertexts();  // as `heinfer run`
  if (threads > 0) omp_set_num_threads(threads);
  try {
    const model::Graph g = model::load_model(argv[1]);
    const model::Shape& in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
    const auto images = runtime::read_npy(argv[2]).to_double();
    const std::int64_t per = model::numel(in_shape);
    const std::int64_t have = static_cast<std::int64_t>(images.size()) / per;
    const runtime::PlainTensor calib = runtime::from_batch_major(std::span<const double>(images), have, in_shape);
    plan::ParameterOptions po;
    po.packing = packing == "real" ? ckks::Packing::Real : ckks::Packing::Complex;
    po.masks = plan::parse_round_masks(masks);
    po.max_prime_bits = max_prime_bits;
    const auto plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {calib}), po);
    const std::int64_t batch = plan.capacity();
    std::vector<double> x(static_cast<std::size_t>(batch * per));
    for (std::int64_t b = 0; b < batch; ++b) {
      std::memcpy(x.data() + b * per, images.data() + (b % have) * per, static_cast<std::size_t>(per) * sizeof(double));
    }
    const auto t0 = std::chrono::steady_clock::now();
    runtime::EncryptedRunOptions ro;
    ro.threads = threads;
    runtime::EncryptedSession s(g, plan, ro);
    const double setup = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const runtime::PlainTensor xt = runtime::from_batch_major(std::span<const double>(x), batch, in_shape);
    for (int k = 0; k < batches; ++k) {
      runtime::EncryptedRunStats st;
      s.executor->run(*s.client, {xt}, st);
      std::printf("{\"model\":\"%s\",\"packing\":\"%s\",\"round_masks\":\"%s\",\"n\":%zu,\"levels\":%d,\"threads\":%d,\"batch_index\":%d,"
                  "\"batch\":%lld,\"latency_s\":%.3f,\"images_per_s\":%.1f,\"client_share\":%.3f,\"rounds\":%lld,"
                  "\"mb_to_server\":%.1f,\"mb_to_client\":%.1f,\"setup_s\":%.2f,\"kernels\":\"%s\",\"chain\":\"%s\"",
                  argv[1], packing.c_str(), masks.c_str(), plan.params.poly_modulus_degree(), plan.needs.levels,
                  threads > 0 ? threads : omp_get_max_threads(), k, static_cast<long long>(batch), st.seconds,
                  static_cast<double>(batch) / st.seconds, st.client_seconds / st.seconds,
                  static_cast<long long>(st.rounds), static_cast<double>(st.bytes_to_server) / 1e6,
                  static_cast<double>(st.bytes_to_client) / 1e6, setup,
                  std::string(ring::simd_path_name(ring::simd_path())).c_str(), plan.describe().c_str());
      std::printf(",\"layers\":{");
      for (std::size_t i = 0; i < st.layers.size(); ++i) {
        std::printf("%s\"%s\":%.3f", i ? "," : "", st.layers[i].name.c_str(), st.layers[i].seconds);
      }
      std::printf("}}\n");
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "e2e_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
