// The level rules exist once: the executor runs the plan and every node's output comes out
// exactly where the plan says: its level (the stored level, for nodes that produce
// ciphertexts), its ciphertext count, its client rounds and the bytes the store holds for
// it (the footprint's output bytes). Model: the committed Fashion-MNIST CNN, whole nodes and streamed; the
// large models at 32x32 are replayed against the plan by `heinfer run --profile` in
// tests/memory/large_models_encrypted_test.cpp. Ring degree 64 (insecure, tests only)
// keeps it fast; the levels and counts do not depend on N. A small tile makes the rounds
// and tiles many.
#include <gtest/gtest.h>
#include <filesystem>
#include <span>

#include "ckks/encryption_params.h"
#include "model/load.h"
#include "memory/ciphertext_store.h"
#include "plan/encrypted_plan.h"
#include "plan/footprint.h"
#include "plan/parameters.h"
#include "runtime/calibration.h"
#include "runtime/encrypted_executor.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";

/// Runs x through the executor with the plan of its calibrated parameters and compares
/// every node with the plan. Returns the number of nodes compared.
std::size_t replay(const model::Graph& g, const runtime::PlainTensor& x, bool streaming, int scale_bits = 30) {
  plan::ParameterOptions po;
  po.scale_bits = scale_bits;
  plan::Parameters p = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), po);
  p.params = ckks::EncryptionParameters(64, p.params.coeff_bits(), p.params.special_bits(), ckks::SecurityLevel::None);
  memory::StoreOptions so;
  so.dram_budget = 64 << 20;  // tiles of 16 MiB: several rounds per Relu and MaxPool
  memory::CiphertextStore store(so);
  runtime::EncryptedRunOptions ro;
  ro.streaming = streaming;
  ro.store = &store;
  runtime::EncryptedSession s(g, p, ro);
  const plan::EncryptedPlan& plan = s.executor->plan();
  const plan::FootprintEstimate f = plan::predict_footprint(g, plan);
  runtime::EncryptedRunStats st;
  s.executor->run(*s.client, {x}, st);
  EXPECT_EQ(st.layers.size(), g.nodes.size());
  std::size_t compared = 0;
  std::int64_t rounds = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const plan::NodePlan& np = plan.nodes[k];
    if (np.kind == plan::NodeKind::FinalSoftmax) continue;
    const bool shares = np.kind == plan::NodeKind::DataMovement || np.kind == plan::NodeKind::FusedRelu;
    EXPECT_EQ(st.layers[k].level, np.output_stored_level) << g.nodes[k].name;
    EXPECT_EQ(st.layers[k].ciphertexts, np.output_ciphertexts) << g.nodes[k].name;
    EXPECT_EQ(st.layers[k].rounds, np.rounds) << g.nodes[k].name;
    rounds += st.layers[k].rounds;
    // Whole nodes: the output is complete in the store when the node ends (streamed
    // segments release rows before).
    if (!streaming && !shares && !np.identity) {
      EXPECT_EQ(st.layers[k].stored_bytes, f.nodes[k].output_bytes) << g.nodes[k].name;
    }
    ++compared;
  }
  EXPECT_GT(rounds, 4) << "expected several rounds per round node";
  return compared;
}

runtime::PlainTensor fmnist_images(std::int64_t count) {
  const auto images = runtime::read_npy(kModels / "fmnist_test64_images.npy").to_double();
  return runtime::from_batch_major(std::span<const double>(images).first(static_cast<std::size_t>(count * 784)), count,
                                   {1, 28, 28});
}

TEST(PlanReplay, FashionMnistCnnWholeAndStreamed) {
  if (!fs::exists(kModels / "fmnist_cnn.onnx")) GTEST_SKIP() << "models/ not present";
  const model::Graph g = model::load_model(kModels / "fmnist_cnn.onnx");
  const auto x = fmnist_images(16);
  EXPECT_GT(replay(g, x, false), 5u);
  EXPECT_GT(replay(g, x, true), 5u);
}

}  // namespace
}  // namespace heinfer
