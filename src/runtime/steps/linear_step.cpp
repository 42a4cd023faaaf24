// The linear step (Conv, Gemm, MatMul, BatchNormalization, pools with averaging,
// elementwise with constants, Add/Sub of activations): per output one multiply-accumulate
// of ciphertexts by plaintext scalars and, when the plan says so, one rescale (lazy
// rescaling with the weight-scale trick, nGraph-HE2 §3); pending unmasking factors are
// folded into the weights. The polynomial step (a square: ciphertext × ciphertext with
// relinearization, or multiply_packed under complex packing) runs through the same tiles;
// a deferred square leaves its size-3 products unrescaled for its linear readers, which
// relinearize and rescale twice per output (lazy relinearization).
// Outputs are produced in tiles of the plan's tile bytes of working set (NodePlan::tile_element_bytes per output).
#include <cmath>
#include <cstdint>

#include "model/error.h"
#include "runtime/kernels/dispatch.h"
#include "runtime/steps/run_state.h"

namespace heinfer::runtime::steps {

void materialize_inputs(RunState& run, StepIO& s, std::vector<EncryptedTensor>& scratch) {
  std::size_t count = 0;
  for (bool m : s.np.materialized) count += m ? 1 : 0;
  if (count == 0) return;
  if (s.st.streamed) throw std::logic_error(s.n.name + ": streamed node with inputs to bring to scale Δ");
  scratch.reserve(count);  // pointers into scratch stay valid
  // The copies at Δ live in a group of their own, read by this node only: the output's
  // group would cap them at the output's stored level (one below a product's inputs).
  const GroupId group = run.store.open_group(plan::step_position(run.plan, s.st));
  for (std::size_t i = 0; i < s.in.size(); ++i) {
    if (!s.np.materialized[i] || !s.in[i]) continue;
    scratch.push_back(*s.in[i]);
    run.materialize(scratch.back(), s.n.name, group);
    s.in[i] = &scratch.back();
  }
}

void run_linear_step(RunState& run, StepIO& s) {
  const model::Graph& g = run.g;
  const model::Node& n = s.n;
  std::vector<EncryptedTensor> scratch;
  materialize_inputs(run, s, scratch);
  const EncryptedTensor& x = *first_input(s);
  const auto level = static_cast<std::size_t>(s.np.input_level);
  check_input_levels(s, level);
  for (const auto* p : s.in) {
    if (!p) continue;
    if (std::fabs(p->scale / x.scale - 1.0) > 1e-9) {
      throw model::ModelError(model::node_label(n) + ": encrypted inputs have different scales (" +
                              std::to_string(p->scale) + " vs " + std::to_string(x.scale) +
                              "); unsupported under encryption");
    }
  }
  EncryptedBackend be = run.be;
  be.in_level = level;
  be.in_scale = x.scale;
  EncryptedTensor& y = s.y;
  if (s.st.first) {
    y.shape = s.y_shape;
    y.cts.resize(static_cast<std::size_t>(model::numel(s.y_shape)));
  }
  const bool square = s.np.kind == plan::NodeKind::Square;
  if (square) {
    // A deferred product stays at the input level, size 3 and unrescaled (lazy
    // relinearization: its readers relinearize and rescale twice).
    be.defer_product = s.np.deferred_product;
    y.level = be.defer_product ? level : level - 1;
    if (run.plan.tensors[static_cast<std::size_t>(n.outputs[0])].factors) y.factor.assign(y.cts.size(), 1.0);
    const double q = be.defer_product ? 1.0 : static_cast<double>(run.ctx.modulus(level).value);
    y.scale = x.scale * x.scale * (run.plan.parameters.packing == ckks::Packing::Complex ? 4.0 : 1.0) / q;
  } else {
    be.constants = s.constants;
    be.rescale = s.np.rescale;
    be.rescale_twice = s.np.rescale_twice;
    y.level = be.rescale ? level - (be.rescale_twice ? 2 : 1) : level;
    y.scale = be.rescale ? run.scale() : x.scale;
  }
  const std::int64_t element_bytes = s.np.tile_element_bytes;  // the plan's tile unit
  std::vector<EncryptedBackend::Acc> deferred;
  // Expansions of compact inputs are kept across the tiles of one step.
  EncryptedBackend::ExpansionCache expansions;
  be.expansions = &expansions;
  const auto tiles = run.step_tiles(s, element_bytes);
  // Several tiles, or the bands of a node whose windows overlap (a 3x3 conv reads each
  // input row in three bands), would each expand the compact inputs they read into
  // temporaries: expand them once, in the store (accounted, within the budget or in the
  // tier), instead. Not for bands under a DRAM budget: a depth-first segment holds the
  // windows of every layer at once, and expanded (c1 regenerated, 32-bit words unpacked:
  // up to 4 times their stored bytes) they would overflow the budget and cycle through
  // the tier; the band expands the rows it reads (ExpansionCache: once for all its tiles,
  // an input row once per band that reads it) instead.
  const bool band_under_budget = s.st.streamed && run.store.options().dram_budget > 0;
  bool overlap = false;
  if (s.st.streamed) {
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (!s.in[i]) continue;
      const auto m = plan::row_map(g, n, i);
      overlap = overlap || (m && !m->all && m->extent > m->stride);
    }
  }
  if ((tiles.size() > 1 || overlap) && !band_under_budget) run.store.expand(s.in_groups, run.ctx);
  for (const auto& tile : tiles) {
    be.tile = &tile;
    if (!square && be.rescale) {
      deferred.assign(static_cast<std::size_t>(tile.size()), {});
      be.deferred = &deferred;
    }
    if (!kernels::run_backend_node(be, g, n, s.in, y, &tile)) {
      throw model::ModelError(model::node_label(n) + ": not supported by the encrypted executor");
    }
    if (be.deferred) be.flush(y, deferred);
    run.adopt_tile(y, tile, s.group);
  }
  if (square) {
    for (const auto& c : y.cts) {
      if (c) {
        y.scale = c->scale();
        break;
      }
    }
  }
}

}  // namespace heinfer::runtime::steps
