// `heinfer inspect MODEL.onnx [--batch B]`: the graph after passes, with per-node class,
// output shape, multiply-accumulates and multiplicative depth per client-aided segment.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "model/analysis.h"
#include "model/liveness.h"
#include "model/load.h"

namespace heinfer::apps {
namespace {

struct InspectOptions {
  std::string model;
  std::int64_t batch = 0;
};

/// The last `width` characters (ONNX exporters put the distinctive part of names last).
std::string tail(const std::string& s, std::size_t width) {
  return s.size() <= width ? s : "..." + s.substr(s.size() - (width - 3));
}

/// "a..b (n nodes)" for a contiguous run, else "n nodes: i, j, ..." (first 12).
std::string node_list(const std::vector<int>& nodes) {
  const std::string count = std::to_string(nodes.size()) + (nodes.size() == 1 ? " node" : " nodes");
  if (nodes.back() - nodes.front() + 1 == static_cast<int>(nodes.size())) {
    return "nodes " + std::to_string(nodes.front()) + ".." + std::to_string(nodes.back()) + " (" + count + ")";
  }
  std::string s = count + ":";
  for (std::size_t i = 0; i < nodes.size() && i < 12; ++i) s += " " + std::to_string(nodes[i]);
  return nodes.size() > 12 ? s + " ..." : s;
}

std::string batched(const model::Shape& s, std::int64_t batch) {
  std::string r = "[" + (batch > 0 ? std::to_string(batch) : std::string("N"));
  for (std::int64_t d : s) r += ", " + std::to_string(d);
  return r + "]";
}

void inspect(const InspectOptions& o) {
  const model::Graph g = model::load_model(o.model);
  const model::GraphAnalysis a = model::analyze(g);
  std::printf("model: %s (opset %lld)\n", o.model.c_str(), static_cast<long long>(g.opset));
  for (model::TensorId t : g.inputs) {
    const auto& x = g.tensors[static_cast<std::size_t>(t)];
    std::printf("input  '%s' %s\n", x.name.c_str(), batched(x.shape, o.batch).c_str());
  }
  for (model::TensorId t : g.outputs) {
    const auto& x = g.tensors[static_cast<std::size_t>(t)];
    std::printf("output '%s' %s\n", x.name.c_str(), batched(x.shape, o.batch).c_str());
  }
  std::printf("\n%4s  %-28s %-18s %-22s %-12s %14s %6s %5s %7s\n", "#", "node", "op", "output shape",
              "class", "MACs/sample", "levels", "depth", "segment");
  std::int64_t total_macs = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    const model::Node& n = g.nodes[i];
    const model::NodeAnalysis& na = a.nodes[i];
    total_macs += na.macs;
    const auto& out = g.tensors[static_cast<std::size_t>(n.outputs[0])];
    const std::string seg = na.segment >= 0 ? std::to_string(na.segment) : "-";
    const std::string depth = na.op_class == model::OpClass::ClientAided
                                  ? "in " + std::to_string(na.input_depth)
                                  : std::to_string(na.depth);
    std::printf("%4zu  %-28s %-18s %-22s %-12s %14lld %6d %5s %7s\n", i, tail(n.name, 28).c_str(),
                std::string(model::op_name(n.op)).c_str(), batched(out.shape, o.batch).c_str(),
                std::string(model::op_class_name(na.op_class)).c_str(),
                static_cast<long long>(na.macs), na.levels, depth.c_str(), seg.c_str());
  }
  std::printf("\nsegments between client-aided layers (multiplicative depth = levels a fresh "
              "ciphertext needs):\n");
  for (std::size_t s = 0; s < a.segments.size(); ++s) {
    const auto& seg = a.segments[s];
    std::printf("  segment %zu: %s, depth %d\n", s, node_list(seg.nodes).c_str(), seg.depth);
  }
  int client = 0;
  for (const auto& na : a.nodes) client += na.op_class == model::OpClass::ClientAided;
  const std::int64_t peak = model::peak_live_elements(g);
  std::printf("\nnodes: %zu (%d client-aided), MACs/sample: %lld, max segment depth: %d\n",
              g.nodes.size(), client, static_cast<long long>(total_macs), a.max_depth);
  std::printf("peak live activation elements (ciphertexts under batch-axis packing): %lld\n",
              static_cast<long long>(peak));
  if (o.batch > 0) {
    std::printf("plaintext executor activation memory at batch %lld: %.1f MiB\n",
                static_cast<long long>(o.batch),
                static_cast<double>(peak) * static_cast<double>(o.batch) * 8.0 / (1024.0 * 1024.0));
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* sub = app.add_subcommand("inspect", "Print the graph after passes: op classes, MACs, depth");
  sub->add_option("model", o->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  sub->add_option("--batch", o->batch, "batch size to show in shapes and memory estimates")
      ->check(CLI::PositiveNumber);
  sub->callback([o] { inspect(*o); });
}

}  // namespace heinfer::apps
