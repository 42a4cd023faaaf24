// The unmasked client round: an element-wise function that no multiplicative mask can
// hide (Sigmoid, Tanh, Softplus, Erf, Exp, Log, Sqrt; plan::NodeKind::
// FunctionRound). The server sends x itself, in a CSPRNG order (positions hidden, values
// not), and the client returns fresh encryptions of f(x) at the top level and scale Δ.
// The plan only contains such rounds when the server's operator allowed them
// (plan::Parameters::unmasked_functions).
#include <algorithm>

#include "runtime/round_function.h"
#include "runtime/steps/run_state.h"

namespace heinfer::runtime::steps {

void run_function_round_step(RunState& run, StepIO& s) {
  const plan::NodePlan& np = s.np;
  const EncryptedTensor& x_in = *first_input(s);
  const bool materialize = std::any_of(np.materialized.begin(), np.materialized.end(), [](bool b) { return b; });
  EncryptedTensor scratch;
  const EncryptedTensor& x =
      materialized(run, x_in, materialize, !s.st.streamed, s.n, scratch, s.group);
  if (!materialize) check_input_levels(s, static_cast<std::size_t>(np.input_level));
  const RoundFunction f = round_function(np, s.n.op, run.plan.parameters.masks);
  if (s.st.first) {
    s.y.shape = s.y_shape;
    s.y.cts.resize(static_cast<std::size_t>(model::numel(s.y_shape)));
    s.y.factor.clear();
    s.y.level = run.ctx.max_level();
    s.y.scale = run.scale();
  }
  const std::int64_t chunk = np.round_items;
  if (chunk <= 0) throw std::logic_error(s.n.name + ": the plan has no client round here");
  const auto order = random_permutation(s.elements.size());
  CiphertextPtr zero;  // f(0) is not 0 in general: zeros are sent too
  for (std::size_t c0 = 0; c0 < order.size(); c0 += static_cast<std::size_t>(chunk)) {
    const std::size_t count = std::min(static_cast<std::size_t>(chunk), order.size() - c0);
    std::vector<std::vector<ckks::Ciphertext>> windows(count);
    std::vector<std::int64_t> positions(count);
    for (std::size_t i = 0; i < count; ++i) {
      positions[i] = s.elements[order[c0 + i]];
      const auto& ct = x.cts[static_cast<std::size_t>(positions[i])];
      if (!ct && !zero) zero = run.zero_ct(x.level, x.scale);
      ckks::Ciphertext tmp;
      windows[i].push_back(run.be.expanded(ct ? *ct : *zero, tmp));
    }
    const auto perm = random_permutation(count);
    auto reply = exchange_round(run, s.round_layer, f, windows, perm);
    for (std::size_t i = 0; i < count; ++i) {
      s.y.cts[static_cast<std::size_t>(positions[perm[i]])] = std::make_shared<const ckks::Ciphertext>(std::move(reply[i]));
    }
    run.store.adopt(s.y.cts, positions, s.group);
  }
}

}  // namespace heinfer::runtime::steps
