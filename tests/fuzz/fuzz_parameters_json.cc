// libFuzzer target: the parameters JSON of `heinfer run --params FILE`
// (plan::apply_parameter_override) over the plan of a small Gemm-Relu-Gemm model.
// Contract: std::invalid_argument, or parameters that round-trip through the binary
// serialization (ckks/serialization.h) and give a context.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ckks/context.h"
#include "fuzz_common.h"
#include "fuzz_models.h"
#include "model/load.h"
#include "model/onnx_import.h"
#include "plan/parameters.h"

namespace {

const heinfer::plan::Parameters& base_plan() {
  using namespace heinfer;
  static const plan::Parameters p = [] {
    model::Graph g = model::import_onnx(model::parse_onnx(fuzz::mlp_model(), "mlp"));
    model::prepare_graph(g);
    plan::ParameterOptions po;
    po.packing = ckks::Packing::Real;
    return plan::plan_parameters(g, std::vector<double>(g.tensors.size(), 1.0), po);
  }();
  return p;
}

/// The override reads a file: one per process, in the temporary directory.
const std::filesystem::path& json_path() {
  static const std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("heinfer-fuzz-params-" + std::to_string(::getpid()) + ".json");
  static const bool removed_at_exit = [] { return std::atexit([] { std::filesystem::remove(p); }) == 0; }();
  (void)removed_at_exit;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heinfer;
  plan::Parameters p = base_plan();
  {
    std::ofstream out(json_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) fuzz::violation("cannot write the JSON file");
  }
  try {
    plan::apply_parameter_override(p, json_path());
  } catch (const std::invalid_argument&) {
    return 0;
  } catch (const std::exception& e) {
    fuzz::unexpected(e);
  }
  try {  // accepted: the parameters must give a context and round-trip
    const ckks::ContextPtr ctx = ckks::CKKSContext::create(p.params);
    const std::vector<uint8_t> b = ckks::to_bytes(ctx->parameters());
    const ckks::EncryptionParameters again = ckks::load_parameters(b);
    fuzz::require_same(ckks::to_bytes(again), b.data(), b.size());
  } catch (const std::exception& e) {
    fuzz::violation("accepted parameters are unusable:", e.what());
  }
  return 0;
}
