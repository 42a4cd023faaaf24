// `heinfer inspect MODEL.onnx [--batch B] [--resolution HxW] [--json OUT]`: the graph after
// passes, with per-node class, output shape, multiply-accumulates and multiplicative depth
// per client-aided segment; with --batch, the predicted encrypted run: CKKS
// parameters planned without data, per-layer ciphertexts / bytes, peak memory without a
// budget (plan/footprint.h) and time from a quick calibration (plan/cost_model.h, runtime/cost_calibration.h).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "size_option.h"
#include "memory/bytes.h"
#include "model/analysis.h"
#include "model/liveness.h"
#include "model/load.h"
#include "plan/level_rules.h"
#include "runtime/atomic_file.h"
#include "session/inspect.h"

namespace heinfer::apps {
namespace {

using memory::format_bytes;

using session::InspectOptions;

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

void print_graph(const model::Graph& g, const InspectOptions& o) {
  const model::GraphAnalysis a = model::analyze(g);
  const plan::LevelRules rules = plan::level_rules(g);  // depths as the encrypted runtime runs them
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
  int max_depth = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    const model::Node& n = g.nodes[i];
    const model::NodeAnalysis& na = a.nodes[i];
    const plan::NodeLevels& nl = rules.nodes[i];
    total_macs += na.macs;
    max_depth = std::max({max_depth, nl.input_depth, nl.output_depth});
    const auto& out = g.tensors[static_cast<std::size_t>(n.outputs[0])];
    const std::string seg = na.segment >= 0 ? std::to_string(na.segment) : "-";
    const std::string depth = na.op_class == model::OpClass::ClientAided ? "in " + std::to_string(nl.input_depth)
                                                                          : std::to_string(nl.output_depth);
    std::printf("%4zu  %-28s %-18s %-22s %-12s %14lld %6d %5s %7s\n", i, session::tail_text(n.name, 28).c_str(),
                std::string(model::op_name(n.op)).c_str(), batched(out.shape, o.batch).c_str(),
                std::string(model::op_class_name(na.op_class)).c_str(),
                static_cast<long long>(na.macs), na.levels, depth.c_str(), seg.c_str());
  }
  std::printf("\nsegments between client-aided layers (depth = levels a fresh ciphertext needs, "
              "pending unmasking factors included):\n");
  for (std::size_t s = 0; s < a.segments.size(); ++s) {
    const auto& seg = a.segments[s];
    int depth = 0;
    for (int k : seg.nodes) depth = std::max(depth, rules.nodes[static_cast<std::size_t>(k)].output_depth);
    std::printf("  segment %zu: %s, depth %d\n", s, node_list(seg.nodes).c_str(), depth);
  }
  int client = 0;
  for (const auto& na : a.nodes) client += na.op_class == model::OpClass::ClientAided;
  const std::int64_t peak = model::peak_live_elements(g);
  std::printf("\nnodes: %zu (%d client-aided), MACs/sample: %lld, max segment depth: %d\n",
              g.nodes.size(), client, static_cast<long long>(total_macs), max_depth);
  std::printf("peak live activation elements (ciphertexts under batch-axis packing): %lld\n",
              static_cast<long long>(peak));
  if (o.batch > 0) {
    std::printf("plaintext executor activation memory at batch %lld: %s\n", static_cast<long long>(o.batch),
                format_bytes(peak * o.batch * static_cast<std::int64_t>(sizeof(double))).c_str());
  }
}

struct CliInspectOptions {
  InspectOptions prediction;
  std::string json;  ///< --json: where the prediction goes
};

void inspect(const CliInspectOptions& c) {
  const InspectOptions& o = c.prediction;
  if (o.batch <= 0 && !c.json.empty()) throw std::invalid_argument("--json needs --batch (the prediction is per batch size)");
  model::LoadOptions lo;
  model::Graph g = session::load_for_inspect(o, &lo);
  if (o.batch <= 0) {
    print_graph(g, o);
    return;
  }
  const nlohmann::json j = session::predict_run(g, lo, o, [&](const model::Graph& planned) { print_graph(planned, o); });
  if (c.json.empty()) return;
  runtime::write_file_atomic(c.json, j.dump(1) + "\n");
  std::printf("wrote %s\n", c.json.c_str());
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto c = std::make_shared<CliInspectOptions>();
  InspectOptions* o = &c->prediction;
  CLI::App* sub = app.add_subcommand(
      "inspect", "Print the graph after passes (op classes, MACs, depth); with --batch, predict the encrypted run");
  sub->add_option("model", o->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  sub->add_option("--batch", o->batch,
                  "batch size: shown in shapes; predicts parameters, memory and time of an encrypted run")
      ->check(CLI::PositiveNumber);
  sub->add_option("--resolution", o->resolution, "override the input's spatial dims: H or HxW");
  sub->add_option("--json", c->json, "write the prediction as JSON (atomically; needs --batch)");
  sub->add_option("--packing", o->packing, "batch packing for the prediction (auto: real with per-sample masks)")
      ->check(CLI::IsMember({"auto", "complex", "real"}))
      ->capture_default_str();
  sub->add_flag("--allow-unmasked-rounds", o->allow_unmasked_rounds,
                "predict with Sigmoid, Tanh, ... as unmasked client rounds (as run/serve --allow-unmasked-rounds)");
  sub->add_option("--round-masks", o->round_masks, "masks of the client rounds for the prediction")
      ->check(CLI::IsMember({"per-window", "per-sample"}))
      ->capture_default_str();
  sub->add_option("--scale-bits", o->scale_bits, "log2 of the CKKS scale for the prediction")->capture_default_str();
  sub->add_option("--range", o->range,
                  "fixed |value| bound for every activation instead of calibrating on random inputs")
      ->check(CLI::PositiveNumber);
  sub->add_option("--threads", o->threads, "OpenMP threads for the calibration (0: default)");
  sub->add_option("--limb-words", o->limb_words,
                  "stored limbs for the prediction: 32 (limbs of primes below 2^32 in 32-bit words, as `run "
                  "--limb-words 32`) or 64")
      ->check(CLI::IsMember({32, 64}))
      ->capture_default_str();
  sub->add_option("--max-prime-bits", o->max_prime_bits,
                  "largest prime of the chain for the prediction (31: every limb fits a 32-bit word)")
      ->check(CLI::Range(30, 60))
      ->capture_default_str();
  add_size_option(sub, "--dram-budget", o->dram_budget,
                  "predict the streamed run of `run --dram-budget` with this budget (e.g. 8G): its tiles, where it "
                  "cuts its segments, what it needs in DRAM and writes to the tier");
  sub->add_flag("--no-time", o->no_time, "predict memory only (skip the few-second time calibration)");
  sub->add_option("--ranks", o->ranks,
                  "also predict `mpirun -np P heinfer run --distributed` for 1, 2, 4, ..., P ranks: per-rank peak, "
                  "bytes exchanged, time (needs --batch)")
      ->check(CLI::Range(1, 1 << 16));
  sub->add_option("--link-bandwidth", o->link_bytes_per_second,
                  "bytes/s between ranks for --ranks (default 1.25e9: 10 Gb/s Ethernet)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--link-latency", o->link_latency_seconds, "seconds per message between ranks for --ranks")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->callback([c] { inspect(*c); });
}

}  // namespace heinfer::apps
