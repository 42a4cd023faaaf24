#include "session/inspect.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <regex>
#include <stdexcept>

#include "memory/bytes.h"
#include "memory/ciphertext_store.h"
#include "memory/process_memory.h"
#include "model/analysis.h"
#include "model/error.h"
#include "model/load.h"
#include "plan/cost_model.h"
#include "plan/encrypted_plan.h"
#include "plan/footprint.h"
#include "plan/refresh_rounds.h"
#include "plan/segment_cuts.h"
#include "ring/random.h"
#include "runtime/calibration.h"
#include "runtime/cost_calibration.h"
#include "runtime/plain_tensor.h"
#include "session/inspect_ranks.h"
#include "session/say.h"

namespace heinfer::session {
namespace {

using memory::format_bytes;

/// Above this many multiply-accumulates (per sample × samples) the plaintext calibration
/// of the ranges runs at a reduced resolution or falls back to a fixed bound (the
/// plaintext executor runs roughly 1 GMAC/s on two cores: keeps it to a few seconds).
constexpr double kMaxCalibrationMacs = 4e9;

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* kind_name(plan::NodeKind k) {
  using K = plan::NodeKind;
  switch (k) {
    case K::DataMovement: return "data-movement";
    case K::Linear: return "linear";
    case K::Square: return "square";
    case K::FusedRelu: return "fused-relu";
    case K::Relu: return "relu-round";
    case K::MaxPool: return "maxpool-round";
    case K::Clip: return "clip-round";
    case K::LeakyRelu: return "leaky-round";
    case K::FunctionRound: return "unmasked-round";
    case K::FinalSoftmax: return "client-softmax";
  }
  return "?";
}

}  // namespace

std::string tail_text(const std::string& s, std::size_t width) {
  return s.size() <= width ? s : "..." + s.substr(s.size() - (width - 3));
}

std::string seconds_text(double s) {
  char buf[64];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%.2f h", s / 3600);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.3f s", s);
  return buf;
}

std::pair<std::int64_t, std::int64_t> parse_resolution(const std::string& s) {
  std::smatch m;
  static const std::regex re(R"((\d{1,6})(?:x(\d{1,6}))?)");
  if (!std::regex_match(s, m, re)) throw std::invalid_argument("--resolution '" + s + "': use H or HxW, e.g. 224 or 96x96");
  const std::int64_t h = std::stoll(m[1].str());
  const std::int64_t w = m[2].matched ? std::stoll(m[2].str()) : h;
  if (h <= 0 || w <= 0) throw std::invalid_argument("--resolution '" + s + "': dimensions must be positive");
  return {h, w};
}

namespace {

/// Per-tensor largest |value| of the plaintext executor on 2 seeded uniform [0, 1] inputs
/// (the project's ChaCha20 stream, ring::Prng, with the public seed 2024: reproducible).
std::vector<double> calibrate_on_random(const model::Graph& g) {
  ring::Seed seed{};
  seed[0] = 2024 & 0xff;
  seed[1] = 2024 >> 8;
  ring::Prng prng(seed, ring::StreamPurpose::SampleInputs);
  std::vector<runtime::PlainTensor> inputs;
  for (model::TensorId t : g.inputs) {
    auto x = runtime::make_plain_tensor(g.tensors[static_cast<std::size_t>(t)].shape, 2);
    for (double& v : x.data) v = static_cast<double>(prng.next_u64() >> 11) * 0x1p-53;  // [0, 1)
    inputs.push_back(std::move(x));
  }
  return runtime::calibrate_ranges(g, inputs);
}

std::int64_t total_macs(const model::Graph& g) {
  std::int64_t macs = 0;
  for (const auto& n : g.nodes) macs += model::macs(g, n);
  return macs;
}

/// Per-tensor ranges without data: the plaintext executor on 2 seeded uniform [0, 1]
/// inputs when that is cheap (<= kMaxCalibrationMacs); for a larger image model, the same
/// at a reduced resolution (a multiple of 32, >= 32) with the same graph structure, whose
/// per-tensor ranges stand in for the full resolution (convolutions see the same
/// per-pixel statistics); else (or with --range) a fixed bound (default 16).
std::vector<double> plan_ranges(const model::Graph& g, const model::LoadOptions& lo, const InspectOptions& o,
                                nlohmann::json& info) {
  const auto t0 = std::chrono::steady_clock::now();
  const double macs = static_cast<double>(total_macs(g));
  if (o.range <= 0 && macs * 2 <= kMaxCalibrationMacs) {
    std::vector<double> r = calibrate_on_random(g);
    info = {{"mode", "calibrated"}, {"samples", 2}, {"distribution", "uniform [0,1), ChaCha20 seed 2024"},
            {"seconds", since(t0)}};
    say(o.out, "ranges: calibrated by the plaintext executor on 2 seeded uniform [0,1] inputs (%.1f s)\n",
                since(t0));
    return r;
  }
  const model::Shape& in = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  if (o.range <= 0 && g.inputs.size() == 1 && in.size() == 3) {
    const double f = std::sqrt(kMaxCalibrationMacs / (2 * macs));
    auto reduce = [&](std::int64_t d) { return std::max<std::int64_t>(32, (static_cast<std::int64_t>(d * f) / 32) * 32); };
    model::LoadOptions small = lo;
    small.input_shape = model::Shape{in[0], reduce(in[1]), reduce(in[2])};
    try {
      model::Graph gs = model::load_model(o.model, small);
      plan::insert_refresh_rounds(gs, plan::parse_round_masks(o.round_masks));  // as g
      bool same = gs.tensors.size() == g.tensors.size() && gs.nodes.size() == g.nodes.size();
      for (std::size_t i = 0; same && i < g.tensors.size(); ++i) same = gs.tensors[i].name == g.tensors[i].name;
      if (same && static_cast<double>(total_macs(gs)) * 2 <= 1.5 * kMaxCalibrationMacs) {
        std::vector<double> r = calibrate_on_random(gs);
        const std::string res = std::to_string((*small.input_shape)[1]) + "x" + std::to_string((*small.input_shape)[2]);
        info = {{"mode", "calibrated-reduced"}, {"samples", 2}, {"resolution", res},
                {"distribution", "uniform [0,1), ChaCha20 seed 2024"}, {"seconds", since(t0)}};
        say(o.out, "ranges: calibrated by the plaintext executor on 2 seeded uniform [0,1] inputs at %s "
                    "(full resolution too large to calibrate quickly; %.1f s)\n",
                    res.c_str(), since(t0));
        return r;
      }
    } catch (const model::ModelError&) {
      // the reduced resolution does not fit the graph: fixed bound below
    }
  }
  const double fixed = o.range > 0 ? o.range : 16.0;
  std::vector<double> r(g.tensors.size(), 0.0);
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (!g.tensors[i].is_constant) r[i] = fixed;
  }
  info = {{"mode", "fixed"}, {"value", fixed}};
  say(o.out, "ranges: fixed |value| <= %g for every activation (%s)\n", fixed,
              o.range > 0 ? "--range" : "model too large to calibrate quickly; use --range to set");
  return r;
}

/// plan::plan_parameters, lowering the scale (down to 2^20) while q_0 would exceed
/// two 60-bit primes (models with huge activations). Throws
/// std::invalid_argument from plan_parameters otherwise.
plan::Parameters plan_for_prediction(model::Graph& g, const std::vector<double>& ranges,
                                     plan::ParameterOptions po, int limb_words, std::FILE* out) {
  const int requested = po.scale_bits;
  for (;; --po.scale_bits) {
    try {
      int refreshes = 0;
      plan::Parameters plan = plan::plan_with_refreshes(g, ranges, po, limb_words, &refreshes);
      if (refreshes > 0) {
        plan::RefreshPoints points;
        points.nonnegative = refreshes;
        say(out, "note: %s\n", points.describe().c_str());
      }
      if (po.scale_bits != requested) {
        say(out, "note: scale lowered from 2^%d to 2^%d so that q_0 fits in two 60-bit primes\n", requested, po.scale_bits);
      }
      return plan;
    } catch (const std::invalid_argument& e) {
      if (po.scale_bits <= 20 || std::string(e.what()).find("q_0 would need") == std::string::npos) throw;
    }
  }
}

}  // namespace

nlohmann::json predict_run(model::Graph& g, const model::LoadOptions& lo, const InspectOptions& o,
                           const std::function<void(const model::Graph&)>& on_planned) {
  if (o.threads > 0) omp_set_num_threads(o.threads);
  // As `heinfer run` (apps/run_encrypted.cpp): freed ciphertexts stay in the heap, so the
  // calibration times the executor's steady state, not mmap + first-touch page faults.
  memory::configure_allocator_for_ciphertexts();
  nlohmann::json ranges_info;
  const std::vector<double> ranges = plan_ranges(g, lo, o, ranges_info);
  plan::ParameterOptions po;
  po.masks = plan::parse_round_masks(o.round_masks);
  po.unmasked_functions = o.allow_unmasked_rounds;
  po.packing = o.packing == "real" || (o.packing == "auto" && po.masks == plan::RoundMasks::PerSample)
                   ? ckks::Packing::Real
                   : ckks::Packing::Complex;
  po.scale_bits = o.scale_bits;
  po.max_prime_bits = o.max_prime_bits;
  const plan::Parameters plan = plan_for_prediction(g, ranges, po, o.limb_words, o.out);
  if (on_planned) on_planned(g);
  say(o.out, "\n== encrypted run prediction (batch %lld) ==\n", static_cast<long long>(o.batch));
  say(o.out, "parameters: %s\n", plan.describe().c_str());
  const plan::EncryptedPlan ep = plan::make_plan(g, plan);
  plan::FootprintOptions fo;
  fo.limb_words = o.limb_words;
  const plan::FootprintEstimate f = plan::predict_footprint(g, ep, fo);
  plan::ScheduleOptions streaming;
  streaming.streaming = true;
  plan::SegmentCuts cuts;
  if (o.dram_budget > 0) {  // as a tiered `run --dram-budget` plans
    streaming.tile_bytes = memory::tile_bytes_for_budget(o.dram_budget);
    cuts = plan::choose_segment_cuts(g, plan, streaming, o.dram_budget, fo);
    streaming.segment_starts = cuts.segment_starts;
  }
  const plan::FootprintEstimate fs = plan::predict_footprint(g, plan::make_plan(g, plan, streaming), fo);
  plan::CostCalibration c;  // --no-time: all unit costs 0
  c.threads = omp_get_max_threads();
  if (!o.no_time) c = runtime::calibrate_costs(plan);
  const plan::TimeEstimate t = plan::predict_time(g, ep, f, c, o.batch, plan.capacity());
  if (!o.no_time) {
    say(o.out, "calibration: %.2f s at %d threads (per limb: MAC %.3g/%.3g ns shared/single, output %.3g us; "
                "round %.3g ms sent + %.3g ms reply per ciphertext)\n",
                c.seconds, c.threads, c.mac_shared * 1e9, c.mac_single * 1e9, c.output_limb * 1e6,
                c.round_send * 1e3, c.round_reply * 1e3);
  }

  say(o.out, "\n%4s  %-28s %-14s %10s %5s %12s %12s %11s\n", "#", "node", "kind", "ciphertexts", "level",
              "output", "live", "1st batch");
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const plan::NodeFootprint& nf = f.nodes[k];
    const plan::NodePlan& np = ep.nodes[k];
    say(o.out, "%4zu  %-28s %-14s %10lld %5d %12s %12s %11s\n", k, tail_text(n.name, 28).c_str(), kind_name(np.kind),
                static_cast<long long>(np.output_ciphertexts), np.output_level,
                format_bytes(nf.output_bytes).c_str(), format_bytes(nf.live_bytes).c_str(),
                seconds_text(t.node_seconds[k] + t.first_touch_node_seconds[k]).c_str());
    layers.push_back({{"index", k},
                      {"name", n.name},
                      {"op", std::string(model::op_name(n.op))},
                      {"kind", kind_name(np.kind)},
                      {"ciphertexts", np.output_ciphertexts},
                      {"level", np.output_level},
                      {"input_level", np.input_level},
                      {"output_bytes", nf.output_bytes},
                      {"live_bytes", nf.live_bytes},
                      {"live_streamed_bytes", fs.nodes[k].live_bytes},
                      {"mac_terms", nf.mac_terms},
                      {"round_ciphertexts", np.round_ciphertexts},
                      {"rounds", np.rounds},
                      {"seconds", t.node_seconds[k]},
                      {"first_batch_seconds", t.node_seconds[k] + t.first_touch_node_seconds[k]}});
  }
  const std::string peak_name =
      f.peak_node >= 0 ? g.nodes[static_cast<std::size_t>(f.peak_node)].name : std::string("-");
  say(o.out, "\npredicted peak memory without a budget (all DRAM; pmem tier 0):\n");
  say(o.out, "  ciphertexts %s at node %lld (%s)\n", format_bytes(f.peak_bytes).c_str(),
              static_cast<long long>(f.peak_node), peak_name.c_str());
  const std::string streamed_peak_name =
      fs.peak_node >= 0 ? g.nodes[static_cast<std::size_t>(fs.peak_node)].name : std::string("-");
  say(o.out, "  streamed    %s at node %lld (%s) with streaming across layers (run --streaming on)\n",
              format_bytes(fs.peak_bytes).c_str(), static_cast<long long>(fs.peak_node),
              streamed_peak_name.c_str());
  for (std::size_t i = 0; i < fs.peak_parts.size() && i < 8; ++i) {  // what the streamed peak holds
    const auto& part = fs.peak_parts[i];
    const std::string what = part.tensor < 0 ? "the band's working set"
                                             : g.tensors[static_cast<std::size_t>(part.tensor)].name;
    const std::string rows = part.row_end > part.row_begin ? " rows [" + std::to_string(part.row_begin) + ", " +
                                                                 std::to_string(part.row_end) + ")"
                                                           : std::string(part.tensor < 0 ? "" : " whole");
    say(o.out, "    %10s  %s%s\n", format_bytes(part.bytes).c_str(), what.c_str(), rows.c_str());
  }
  if (o.dram_budget > 0) {
    say(o.out, "  DRAM budget %s (tiles of <= %s): needed in DRAM at once %s (the hot peak; %s without cuts), "
                "%zu segment cuts, %s of crossing tensors written to the tier once; predicted tier writes %s (%s "
                "without cuts)\n",
                format_bytes(o.dram_budget).c_str(), format_bytes(streaming.tile_bytes).c_str(),
                format_bytes(fs.hot_peak_bytes).c_str(), format_bytes(cuts.uncut_hot_peak_bytes).c_str(),
                cuts.segment_starts.size(), format_bytes(cuts.crossing_bytes).c_str(),
                format_bytes(cuts.tier_writes).c_str(), format_bytes(cuts.uncut_tier_writes).c_str());
    for (std::int64_t c : cuts.segment_starts) {
      say(o.out, "    segment from node %lld (%s)\n", static_cast<long long>(c),
                  g.nodes[static_cast<std::size_t>(c)].name.c_str());
    }
  }
  say(o.out, "  keys        %s, weights %s\n", format_bytes(f.key_bytes).c_str(),
              format_bytes(f.weight_bytes).c_str());
  say(o.out, "  total       %s (%lld bytes)\n", format_bytes(f.total_bytes()).c_str(),
              static_cast<long long>(f.total_bytes()));
  if (o.no_time) {
    say(o.out, "time not predicted (--no-time)\n");
  } else {
    say(o.out, "predicted time for batch %lld: %lld batch(es) of <= %lld samples, %s per batch "
                "(encrypt %s, decrypt %s) + %s of first-touch page faults, total %s at %d threads\n",
                static_cast<long long>(o.batch), static_cast<long long>(t.batches),
                static_cast<long long>(plan.capacity()), seconds_text(t.batch_seconds).c_str(),
                seconds_text(t.encrypt_seconds).c_str(), seconds_text(t.decrypt_seconds).c_str(),
                seconds_text(t.first_touch_seconds).c_str(), seconds_text(t.total_seconds).c_str(), c.threads);
  }
  nlohmann::json ranks_info;
  if (o.ranks > 0) {
    plan::LinkModel link;
    link.bytes_per_second = o.link_bytes_per_second;
    link.latency_seconds = o.link_latency_seconds;
    ranks_info = predict_ranks(g, plan, fo, o.no_time ? nullptr : &t, o.ranks, link, o.out);
  }
  const auto& model_input = g.tensors[static_cast<std::size_t>(g.inputs[0])];
  nlohmann::json j = {
      {"format", "heinfer-inspect"},
      {"version", 1},
      {"model", o.model},
      {"batch", o.batch},
      {"input_shape", model_input.shape},
      {"threads", c.threads},
      {"params",
       {{"n", plan.params.poly_modulus_degree()},
        {"levels", plan.needs.levels},
        {"coeff_bits", plan.params.coeff_bits()},
        {"special_bits", plan.params.special_bits()},
        {"scale_bits", plan.scale_bits},
        {"packing", std::string(ckks::packing_name(plan.packing))},
        {"capacity", plan.capacity()}}},
      {"ranges", ranges_info},
      {"memory",
       {{"limb_words", o.limb_words},
        {"peak_bytes", f.peak_bytes},
        {"peak_node", f.peak_node},
        {"key_bytes", f.key_bytes},
        {"weight_bytes", f.weight_bytes},
        {"total_bytes", f.total_bytes()},
        {"peak_streamed_bytes", fs.peak_bytes},
        {"peak_streamed_node", fs.peak_node},
        {"total_streamed_bytes", fs.total_bytes()},
        {"hot_streamed_bytes", fs.hot_peak_bytes},
        {"dram_budget", o.dram_budget},
        {"segment_starts", cuts.segment_starts},
        {"crossing_bytes", cuts.crossing_bytes},
        {"predicted_tier_writes", cuts.tier_writes},
        {"tiers", {{"dram", f.total_bytes()}, {"pmem", 0}}}}},
      {"layers", layers}};
  auto parts = nlohmann::json::array();  // what the streamed peak holds, largest first
  for (const auto& part : fs.peak_parts) {
    parts.push_back({{"tensor", part.tensor < 0 ? nullptr : nlohmann::json(g.tensors[static_cast<std::size_t>(part.tensor)].name)},
                     {"row_begin", part.row_begin},
                     {"row_end", part.row_end},
                     {"bytes", part.bytes}});
  }
  j["memory"]["peak_streamed_parts"] = std::move(parts);
  if (o.ranks > 0) j["ranks"] = ranks_info;
  if (o.no_time) {
    j["time"] = nullptr;
  } else {
    j["time"] = {{"batches", t.batches},
                 {"batch_seconds", t.batch_seconds},
                 {"total_seconds", t.total_seconds},
                 {"encrypt_seconds", t.encrypt_seconds},
                 {"decrypt_seconds", t.decrypt_seconds},
                 {"first_touch_seconds", t.first_touch_seconds},
                 {"calibration",
                  {{"seconds", c.seconds},
                   {"mac_shared", c.mac_shared},
                   {"mac_single", c.mac_single},
                   {"output_limb", c.output_limb},
                   {"add_limb", c.add_limb},
                   {"copy_limb", c.copy_limb},
                   {"expand_limb", c.expand_limb},
                   {"square_limb", c.square_limb},
                   {"round_send", c.round_send},
                   {"round_reply", c.round_reply},
                   {"encrypt", c.encrypt},
                   {"decrypt", c.decrypt},
                   {"first_touch", c.first_touch}}}};
  }
  return j;
}

model::Graph load_for_inspect(const InspectOptions& o, model::LoadOptions* used) {
  model::LoadOptions lo;
  if (!o.resolution.empty()) {
    const auto [h, w] = parse_resolution(o.resolution);
    // The input's per-sample shape with its last two (spatial) dims replaced.
    const model::Graph declared = model::load_model(o.model);
    if (declared.inputs.size() != 1) throw std::invalid_argument("--resolution needs a model with one input");
    model::Shape s = declared.tensors[static_cast<std::size_t>(declared.inputs[0])].shape;
    if (s.size() < 3) {
      throw std::invalid_argument("--resolution: input per-sample shape " + model::to_string(s) +
                                  " has no two spatial dims (expected [C, H, W])");
    }
    s[s.size() - 2] = h;
    s[s.size() - 1] = w;
    lo.input_shape = s;
  }
  model::Graph g = model::load_model(o.model, lo);
  if (o.batch > 0) {
    if (const auto refreshes = plan::insert_refresh_rounds(g, plan::parse_round_masks(o.round_masks)); refreshes.total()) {
      say(o.out, "note: %s\n", refreshes.describe().c_str());
    }
  }
  if (used) *used = lo;
  return g;
}

nlohmann::json inspect_model(const InspectOptions& o) {
  if (o.batch <= 0) throw std::invalid_argument("the prediction needs a batch size >= 1");
  model::LoadOptions lo;
  model::Graph g = load_for_inspect(o, &lo);
  return predict_run(g, lo, o);
}

}  // namespace heinfer::session
