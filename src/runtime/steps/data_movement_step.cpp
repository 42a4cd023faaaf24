// The data-movement step: Flatten, Reshape, Identity, Dropout, Transpose, Concat and Pad
// share their inputs' ciphertexts (pointers, with their pending factors); Pad adds
// trivial ciphertexts of its constant. A Relu fused into the next MaxPool round shares its
// input unchanged (the round applies it).
#include <cmath>

#include "model/error.h"
#include "runtime/kernels/dispatch.h"
#include "runtime/steps/run_state.h"

namespace heinfer::runtime::steps {

void run_data_movement_step(RunState& run, StepIO& s) {
  const EncryptedTensor* x = first_input(s);
  if (s.np.kind == plan::NodeKind::FusedRelu) {
    if (!s.st.streamed) s.y = *x;
    else share_elements(*x, s.y, s.st.first, s.elements);
    return;
  }
  std::vector<EncryptedTensor> scratch;
  materialize_inputs(run, s, scratch);
  x = first_input(s);
  const auto level = static_cast<std::size_t>(s.np.input_level);
  check_input_levels(s, level);
  for (const auto* p : s.in) {
    if (p && std::fabs(p->scale / x->scale - 1.0) > 1e-9) {
      throw model::ModelError(model::node_label(s.n) + ": encrypted inputs have different scales; unsupported under encryption");
    }
  }
  EncryptedBackend be = run.be;
  be.in_level = level;
  be.in_scale = x->scale;
  s.y.shape = s.y_shape;
  s.y.cts.resize(static_cast<std::size_t>(model::numel(s.y_shape)));
  s.y.level = level;
  s.y.scale = x->scale;
  if (run.plan.tensors[static_cast<std::size_t>(s.n.outputs[0])].factors) s.y.factor.assign(s.y.cts.size(), 1.0);
  if (!kernels::run_backend_node(be, run.g, s.n, s.in, s.y, nullptr)) {
    throw model::ModelError(model::node_label(s.n) + ": not supported by the encrypted executor");
  }
  run.store.adopt_all(s.y.cts, s.group);  // constants it created (Pad values)
}

}  // namespace heinfer::runtime::steps
