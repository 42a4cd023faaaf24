#include "runtime/profile.h"

#include <nlohmann/json.hpp>

#include "ring/cpu_features.h"
#include "runtime/atomic_file.h"

namespace heinfer::runtime {
namespace {

nlohmann::json tier_json(const memory::TierUsage& u) {
  return {{"peak_bytes", u.peak_bytes}, {"bytes_written", u.bytes_written}, {"bytes_read", u.bytes_read}};
}

}  // namespace

void write_profile(const std::filesystem::path& path, const ProfileInfo& info, const EncryptedRunStats& stats) {
  nlohmann::json j;
  j["format"] = "heinfer-profile";
  j["version"] = 1;
  j["model"] = info.model;
  j["batch"] = info.batch;
  j["threads"] = info.threads;
  j["kernels"] = std::string(ring::simd_path_name(ring::simd_path()));
  if (info.plan) {
    const plan::Parameters& pp = info.plan->parameters;
    int bits = 0;
    for (int b : pp.params.coeff_bits()) bits += b;
    for (int b : pp.params.special_bits()) bits += b;
    j["params"] = {{"n", pp.params.poly_modulus_degree()},
                   {"levels", static_cast<int>(pp.params.coeff_bits().size()) - 1},
                   {"log2_qp", bits},
                   {"packing", std::string(ckks::packing_name(pp.packing))}};
  }
  if (info.memory) {
    j["memory"] = {{"policy", info.memory->policy == memory::Placement::Tiered ? "tiered" : "dram-only"},
                   {"dram_budget", info.memory->dram_budget},
                   {"limb_words", info.limb_words},
                   {"pmem_dir", info.memory->pmem_dir.empty() ? nlohmann::json(nullptr)
                                                              : nlohmann::json(info.memory->pmem_dir.string())}};
  }
  j["seconds"] = stats.seconds;
  j["rounds"] = stats.rounds;
  j["bytes_to_client"] = stats.bytes_to_client;
  j["bytes_to_server"] = stats.bytes_to_server;
  j["peak_rss_anon_bytes"] = info.peak_rss_anon_bytes;
  j["tiers"] = {{"dram", tier_json(info.dram)}, {"pmem", tier_json(info.pmem)}};
  if (info.earlier) j["earlier_attempts"] = info.earlier->to_json();
  if (!info.rank_dram_peak.empty()) {
    nlohmann::json ranks = nlohmann::json::array();
    for (std::size_t r = 0; r < info.rank_dram_peak.size(); ++r) {
      ranks.push_back({{"rank", r},
                       {"rss_anon_peak_bytes", info.rank_rss_anon_peak.at(r)},
                       {"dram_peak_bytes", info.rank_dram_peak[r]},
                       {"bytes_sent", info.rank_bytes_sent.at(r)}});
    }
    j["ranks"] = ranks;
    j["exchange_seconds"] = stats.exchange_seconds;
    j["bytes_exchanged"] = stats.halo_bytes_sent + stats.halo_bytes_received;
  }
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t k = 0; k < stats.layers.size(); ++k) {
    const auto& l = stats.layers[k];
    layers.push_back({{"index", k},
                      {"name", l.name},
                      {"op", l.op},
                      {"start", l.start},
                      {"seconds", l.seconds},
                      {"ciphertexts", l.ciphertexts},
                      {"level", l.level},
                      {"dram_bytes", l.dram_bytes},
                      {"pmem_bytes", l.pmem_bytes},
                      {"dram_peak_bytes", l.dram_peak_bytes},
                      {"pmem_peak_bytes", l.pmem_peak_bytes},
                      {"rss_anon_peak_bytes", l.rss_anon_peak_bytes},
                      {"bytes_to_client", l.bytes_to_client},
                      {"bytes_to_server", l.bytes_to_server},
                      {"rounds", l.rounds},
                      {"stored_bytes", l.stored_bytes}});
    if (info.plan && k < info.plan->nodes.size()) {
      const plan::NodePlan& np = info.plan->nodes[k];
      layers.back()["plan"] = {
          {"level", np.output_stored_level},
          {"ciphertexts", np.output_ciphertexts},
          {"rounds", np.rounds},
          {"stored_bytes", info.footprint ? info.footprint->nodes.at(k).output_bytes : 0},
          {"streamed", info.plan->options.streaming && np.streamable}};
    }
  }
  j["layers"] = std::move(layers);
  nlohmann::json timeline = nlohmann::json::array();
  for (const auto& s : info.timeline) {
    timeline.push_back({{"t", s.t}, {"dram_bytes", s.dram_bytes}, {"pmem_bytes", s.pmem_bytes},
                        {"rss_anon_bytes", s.rss_anon_bytes}});
  }
  j["timeline"] = std::move(timeline);
  write_file_atomic(path, j.dump(1) + "\n");
}

}  // namespace heinfer::runtime
