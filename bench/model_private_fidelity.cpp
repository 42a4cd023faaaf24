// Fidelity of the model-private mode's approximations, before any encryption: the
// plaintext executor with Relu and MaxPool replaced by their polynomial approximations
// (runtime/model_private_simulation.h) against the exact executor, one JSON line per
// precision target η.
//
//   model_private_fidelity MODEL.onnx CALIBRATION.npy TEST.npy [LABELS.npy] [--eta-bits 4,5,6,8] [--margin M]
//
// Ranges come from CALIBRATION (as `heinfer serve --calibration`); agreement, accuracy
// and the largest |logit error| are over TEST. Each line also gives the ciphertext
// products and levels the approximations need per sample element (the cost model of the
// mode: 3 levels and 5 products per composition, ckks/odd_polynomial.h).
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "model/load.h"
#include "runtime/calibration.h"
#include "runtime/metrics.h"
#include "runtime/model_private_simulation.h"
#include "runtime/npy.h"

int main(int argc, char** argv) {
  using namespace heinfer;
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.onnx CALIBRATION.npy TEST.npy [LABELS.npy] [--eta-bits 4,5,6,8] [--margin M]\n",
                 argv[0]);
    return 2;
  }
  std::string labels_path, eta_list = "4,5,6,8";
  double margin = 1.5;
  for (int i = 4; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--eta-bits" && i + 1 < argc) eta_list = argv[++i];
    else if (a == "--margin" && i + 1 < argc) margin = std::atof(argv[++i]);
    else labels_path = a;
  }
  try {
    const model::Graph g = model::load_model(argv[1]);
    const model::Shape in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
    const runtime::InputBatch cal = runtime::read_input_batch(argv[2], in_shape);
    const std::vector<double> ranges =
        runtime::calibrate_ranges(g, {runtime::from_batch_major(std::span<const double>(cal.values), cal.count, in_shape)});
    const runtime::InputBatch test = runtime::read_input_batch(argv[3], in_shape);
    auto input = [&] { return runtime::from_batch_major(std::span<const double>(test.values), test.count, in_shape); };
    const std::vector<double> exact = runtime::to_batch_major(runtime::run_plain(g, {input()})[0]);
    const std::int64_t classes = static_cast<std::int64_t>(exact.size()) / test.count;
    const std::vector<float> exact_f(exact.begin(), exact.end());
    const auto exact_top = runtime::argmax_rows(exact_f, test.count, classes);
    std::vector<std::int64_t> labels;
    if (!labels_path.empty()) labels = runtime::read_npy(labels_path).to_int64();
    std::stringstream list(eta_list);
    for (std::string item; std::getline(list, item, ',');) {
      const int bits = std::stoi(item);
      plan::ApproximationOptions o;
      o.relative_error = std::ldexp(1.0, -bits);
      o.margin = margin;
      const auto approx = plan::model_private_approximations(g, ranges, o);
      nlohmann::json line = {{"model", argv[1]}, {"samples", test.count}, {"eta_bits", bits}, {"margin", margin}};
      std::int64_t products = 0;
      int depth = 0;
      nlohmann::json layers = nlohmann::json::array();
      for (const auto& [k, a] : approx) {
        if (a.deferred) continue;  // evaluated by the MaxPool it feeds
        const model::Node& n = g.nodes[k];
        const std::int64_t outputs = model::numel(g.tensors[static_cast<std::size_t>(n.outputs[0])].shape);
        nlohmann::json layer = {{"node", n.name}, {"op", model::op_name(n.op)}};
        if (a.max) {  // K - 1 maxima per output, a tree of ceil(log2 K) levels of them
          std::int64_t window = 1;
          for (auto d : std::get<model::PoolParams>(n.params).kernel) window *= d;
          int tree = 0;
          for (std::int64_t w = 1; w < window; w *= 2) ++tree;
          depth += tree * a.max->depth();
          products += outputs * (window - 1) * a.max->multiplications();
          layer["max_bound"] = a.max->bound;
          layer["max_compositions"] = a.max->sign.compositions();
          layer["maxima"] = outputs * (window - 1);
        }
        if (a.relu) {  // one per output (after the max for a pool that took over a Relu)
          depth += a.relu->depth();
          products += outputs * a.relu->multiplications();
          layer["relu_bound"] = a.relu->bound;
          layer["relu_compositions"] = a.relu->sign.compositions();
          layer["relus"] = outputs;
        }
        layers.push_back(layer);
      }
      line["products_per_sample_element"] = products;
      line["levels"] = depth;
      line["layers"] = layers;
      try {
        const std::vector<double> y = runtime::to_batch_major(runtime::run_plain_approximated(g, {input()}, approx)[0]);
        double max_err = 0, max_logit = 0;
        for (std::size_t i = 0; i < y.size(); ++i) {
          max_err = std::max(max_err, std::fabs(y[i] - exact[i]));
          max_logit = std::max(max_logit, std::fabs(exact[i]));
        }
        const std::vector<float> yf(y.begin(), y.end());
        const auto top = runtime::argmax_rows(yf, test.count, classes);
        std::int64_t agree = 0;
        for (std::int64_t i = 0; i < test.count; ++i) agree += top[i] == exact_top[i];
        line["top1_agreement"] = static_cast<double>(agree) / static_cast<double>(test.count);
        line["max_abs_logit_error"] = max_err;
        line["max_abs_logit"] = max_logit;
        if (!labels.empty()) {
          line["accuracy_exact"] = static_cast<double>(runtime::count_correct(exact_top, labels)) / test.count;
          line["accuracy_approximated"] = static_cast<double>(runtime::count_correct(top, labels)) / test.count;
        }
      } catch (const std::runtime_error& e) {
        line["error"] = e.what();
      }
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_private_fidelity: %s\n", e.what());
    return 1;
  }
  return 0;
}
