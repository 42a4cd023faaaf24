// libFuzzer target: ONNX bytes -> graph -> plan, as `heinfer run` and `heinfer serve` do
// it: parse_onnx, import_onnx, prepare_graph (model/load.h), then parameters for unit
// ranges (plan_parameters) and the encrypted plan (make_plan). Contract: ModelError, or
// std::invalid_argument from parameter selection and planning; an accepted model has
// per-sample shapes on every activation and a plan entry for every node and tensor.
#include <onnx/onnx_pb.h>

#include "fuzz_common.h"
#include "model/error.h"
#include "model/load.h"
#include "model/onnx_import.h"
#include "plan/encrypted_plan.h"
#include "plan/parameters.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  try {
    const onnx::ModelProto proto =
        model::parse_onnx(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    model::Graph g = model::import_onnx(proto);
    model::prepare_graph(g);
    for (const model::TensorId t : g.inputs) {
      if (g.tensors[static_cast<std::size_t>(t)].shape.empty()) fuzz::violation("an input without a shape");
    }
    const std::vector<double> ranges(g.tensors.size(), 1.0);
    plan::ParameterOptions po;
    po.packing = ckks::Packing::Real;
    const plan::Parameters params = plan::plan_parameters(g, ranges, po);
    const plan::EncryptedPlan p = plan::make_plan(g, params);
    if (p.nodes.size() != g.nodes.size() || p.tensors.size() != g.tensors.size()) {
      fuzz::violation("plan does not cover the graph");
    }
  } catch (const model::ModelError&) {
  } catch (const std::invalid_argument&) {
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  return 0;
}
