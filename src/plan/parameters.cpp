#include "plan/parameters.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ckks/security.h"
#include "ring/primes.h"
#include "ckks/slot_mask.h"
#include "plan/level_rules.h"
#include "plan/node_kind.h"
#include "plan/private_parameters.h"

namespace heinfer::plan {
namespace {

int sum_bits(const std::vector<int>& a) {
  int s = 0;
  for (int b : a) s += b;
  return s;
}

}  // namespace

bool needs_key_switching(const model::Graph& g) {
  const std::vector<NodeKind> kinds = node_kinds(g);
  return std::find(kinds.begin(), kinds.end(), NodeKind::Square) != kinds.end();
}

std::string_view round_masks_name(RoundMasks m) {
  return m == RoundMasks::PerSample ? "per-sample" : "per-window";
}

RoundMasks parse_round_masks(std::string_view s) {
  if (s == "per-sample") return RoundMasks::PerSample;
  if (s == "per-window") return RoundMasks::PerWindow;
  throw std::invalid_argument("round masks must be per-sample or per-window, got '" + std::string(s) + "'");
}

std::string_view privacy_name(Privacy p) { return p == Privacy::Model ? "model" : "activations"; }

Privacy parse_privacy(std::string_view s) {
  if (s == "model") return Privacy::Model;
  if (s == "activations") return Privacy::Activations;
  throw std::invalid_argument("privacy must be model or activations, got '" + std::string(s) + "'");
}

double mask_max(RoundMasks m) {
  return m == RoundMasks::PerSample ? std::exp2(kSlotMaskMaxBits) * ckks::kSlotMaskSlack : kMaskMax;
}

LevelRequirements level_requirements(const model::Graph& g, const std::vector<double>& bounds, RoundMasks masks,
                                     Privacy privacy) {
  const LevelRules rules = level_rules(g, masks, privacy);
  // The model-private mode masks nothing multiplicatively, and its pending factors
  // (Δ/s of a refreshed result, s <= Δ) only shrink the decoded values.
  const bool masked = privacy == Privacy::Activations;
  const double seen = masked ? mask_max(masks) : 1.0;  // |masked value| / |value| at most
  const double factor_max = masked ? kMaskMax : 1.0;
  // (depth, magnitude) of every point where a ciphertext is decrypted or masked.
  std::vector<std::pair<int, double>> points;
  auto bound = [&](model::TensorId t) { return bounds.at(static_cast<std::size_t>(t)); };
  auto state = [&](model::TensorId t) { return rules.tensors[static_cast<std::size_t>(t)]; };
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const NodeLevels& nl = rules.nodes[k];
    model::TensorId x = model::kNoTensor;
    bool factors = false;  // of the inputs as the node computes on them
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const model::TensorId t = n.inputs[i];
      if (!model::is_activation(g, t)) continue;
      if (x == model::kNoTensor) x = t;
      if (nl.materialized[i]) points.emplace_back(state(t).depth + 1, bound(t));  // unmasked, brought to Δ
      else factors = factors || state(t).factors;
    }
    const double bx = bound(x);
    const double fmag = factors ? factor_max : 1.0;  // |ciphertext value| / |true value|
    const int d = nl.input_depth;
    switch (nl.kind) {
      case NodeKind::Relu: points.emplace_back(d, bx * fmag * seen); break;
      case NodeKind::FunctionRound: points.emplace_back(d, bx); break;  // unmasked, factors applied
      case NodeKind::MaxPool: points.emplace_back(d, bx * fmag * seen); break;
      case NodeKind::Clip:
      case NodeKind::LeakyRelu: {
        if (nl.identity) break;
        double shift = 0;  // the round masks x - lo and x - hi
        if (const auto* c = std::get_if<model::ClipParams>(&n.params)) {
          if (std::isfinite(c->min)) shift = std::max(shift, std::fabs(c->min));
          if (std::isfinite(c->max)) shift = std::max(shift, std::fabs(c->max));
        }
        points.emplace_back(d, (bx + shift) * fmag * seen);
        break;
      }
      case NodeKind::FinalSoftmax: points.emplace_back(d, bx * fmag); break;
      default: break;
    }
    const TensorState& y = state(n.outputs[0]);
    if (y.depth >= 0) points.emplace_back(y.depth, bound(n.outputs[0]) * (y.factors ? factor_max : 1.0));
  }
  for (model::TensorId t : g.outputs) {
    if (state(t).depth >= 0) points.emplace_back(state(t).depth, bound(t) * (state(t).factors ? factor_max : 1.0));
  }
  LevelRequirements r;
  for (const auto& [d, m] : points) r.levels = std::max(r.levels, d);
  double mag = 1.0;
  for (const auto& [d, m] : points) {
    if (d == r.levels) mag = std::max(mag, m);
  }
  r.log2_level0_magnitude = std::log2(mag);
  return r;
}

double Parameters::scale() const { return std::ldexp(1.0, scale_bits); }

std::int64_t Parameters::capacity() const {
  return ckks::samples_per_ciphertext(packing, params.poly_modulus_degree());
}

std::string Parameters::describe() const {
  std::ostringstream s;
  s << "N=" << params.poly_modulus_degree() << " chain bits [";
  const auto& q = params.coeff_bits();
  for (std::size_t i = 0; i < q.size(); ++i) s << (i ? "," : "") << q[i];
  s << "] special bits [";
  const auto& p = params.special_bits();
  for (std::size_t i = 0; i < p.size(); ++i) s << (i ? "," : "") << p[i];
  s << "] log2(QP)=" << sum_bits(q) + sum_bits(p) << " (128-bit bound "
    << ckks::max_log_qp_128(params.poly_modulus_degree()) << ") levels=" << needs.levels
    << " scale=2^" << scale_bits << " packing=" << ckks::packing_name(packing) << " masks=" << round_masks_name(masks)
    << " samples/ciphertext=" << capacity();
  if (privacy == Privacy::Model) s << " privacy=model refresh-mask-bits=" << refresh_mask_bits << " eta=2^" << std::log2(relative_error);
  return s.str();
}

namespace {

constexpr int kMaxBasePrimeBits = 60;
/// The deepest level's modulus: at most two 60-bit primes' worth (then in as many primes
/// of max_prime_bits as it takes).
constexpr int kMaxBaseBits = 2 * kMaxBasePrimeBits;
/// Below this, primes = 1 mod 2N get scarce at N = 2^16 (2^(bits - 17) candidates).
constexpr int kMinBasePrimeBits = 24;

int required_q0_bits(const Parameters& plan, int noise_bits) {
  return static_cast<int>(std::ceil(plan.needs.log2_level0_magnitude)) + 1 + plan.scale_bits + noise_bits;
}

}  // namespace

Parameters plan_parameters(const model::Graph& g, const std::vector<double>& ranges,
                               const ParameterOptions& o) {
  if (o.scale_bits < 20 || o.scale_bits > 50) {
    throw std::invalid_argument("scale bits must be in [20, 50], got " + std::to_string(o.scale_bits));
  }
  if (o.masks == RoundMasks::PerSample && o.packing != ckks::Packing::Real) {
    throw std::invalid_argument("per-sample round masks need real packing (complex packing puts two samples in one "
                                "slot, and one slot factor would scale both)");
  }
  if (o.privacy == Privacy::Model &&
      (o.packing != ckks::Packing::Real || o.masks != RoundMasks::PerWindow || o.unmasked_functions)) {
    throw std::invalid_argument("the model-private mode needs real packing (its polynomials act on each slot's real "
                                "value), and has no client rounds to mask or leave unmasked");
  }
  Parameters plan;
  plan.packing = o.packing;
  plan.privacy = o.privacy;
  plan.masks = o.masks;
  plan.unmasked_functions = o.unmasked_functions;
  plan.scale_bits = o.scale_bits;
  plan.margin = o.margin;
  plan.bounds.resize(ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) plan.bounds[i] = std::max(ranges[i] * o.margin, 1e-3);
  plan.needs = level_requirements(g, plan.bounds, o.masks, o.privacy);
  if (o.max_prime_bits < o.scale_bits || o.max_prime_bits > kMaxBasePrimeBits) {
    throw std::invalid_argument("max prime bits must be in [scale bits (" + std::to_string(o.scale_bits) + "), " +
                                std::to_string(kMaxBasePrimeBits) + "], got " + std::to_string(o.max_prime_bits));
  }
  const int q0 = std::max(required_q0_bits(plan, o.noise_bits), o.scale_bits + 10);
  // The modulus left at the deepest level: as few primes of at most max_prime_bits as
  // hold q_0 (at least kMinBasePrimeBits each), which the executor never rescales away.
  // (Limbs of 50 bits and more leave the AVX-512 IFMA and AVX2 FMA kernels for the
  // portable ones, ~5x slower per limb, hence max_prime_bits = 49 by default; a bound of
  // 31 would split a q_0 of 32-49 bits too, which costs more than it saves.)
  if (q0 > kMaxBaseBits) {
    throw std::invalid_argument("parameter selection: q_0 would need " + std::to_string(q0) + " bits (> " +
                                std::to_string(kMaxBaseBits) + ") for values up to 2^" +
                                std::to_string(plan.needs.log2_level0_magnitude) + " at scale 2^" +
                                std::to_string(o.scale_bits) + "; lower --scale-bits");
  }
  const int base = (q0 + o.max_prime_bits - 1) / o.max_prime_bits;
  std::vector<int> coeff;
  for (int i = 0; i < base; ++i) {
    coeff.push_back(std::max(kMinBasePrimeBits, (q0 + base - 1 - i) / base));  // sizes differ by at most one
  }
  if (o.privacy == Privacy::Model) {
    plan.relative_error = o.relative_error;
    plan_private_chain(plan, coeff, private_coefficient_bits(g, plan), o.hiding_bits);
    return plan;
  }
  for (int l = 0; l < plan.needs.levels; ++l) coeff.push_back(o.scale_bits);
  plan.key_switching = needs_key_switching(g);
  std::vector<int> special;
  if (plan.key_switching) special.push_back(*std::max_element(coeff.begin(), coeff.end()));
  const int total = sum_bits(coeff) + sum_bits(special);
  for (std::size_t n = 2048; n <= 65536; n *= 2) {
    if (total <= ckks::max_log_qp_128(n)) {
      plan.params = ckks::EncryptionParameters(n, coeff, special);
      return plan;
    }
  }
  throw std::invalid_argument("parameter selection: log2(QP) = " + std::to_string(total) +
                              " bits exceeds the 128-bit bound for every N <= 65536");
}

void apply_parameter_override(Parameters& plan, std::size_t n, std::vector<int> coeff_bits,
                              std::vector<int> special_bits, int scale_bits) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("--params: " + m); };
  if (!ckks::valid_ring_degree(n, ckks::SecurityLevel::TC128)) fail("n must be " + ckks::ring_degree_rule(ckks::SecurityLevel::TC128));
  if (coeff_bits.empty()) fail("coeff_bits must be non-empty");
  if (special_bits.empty() && plan.key_switching) {
    fail("special_bits must be non-empty: this model multiplies ciphertexts (relinearization needs a special prime)");
  }
  if (scale_bits < 20 || scale_bits > 50) fail("scale_bits must be in [20, 50]");
  const int needed_levels = plan.needs.levels;
  if (static_cast<int>(coeff_bits.size()) < needed_levels + 1) {
    fail("insufficient modulus: the model needs " + std::to_string(needed_levels) + " levels (" +
         std::to_string(needed_levels + 1) + " chain primes), got " +
         std::to_string(coeff_bits.size()) + " chain primes");
  }
  Parameters tmp = plan;
  tmp.scale_bits = scale_bits;
  const int q0_needed = required_q0_bits(tmp, 0);
  // The primes the deepest level keeps (the chain minus one prime per level).
  const std::size_t base = coeff_bits.size() - static_cast<std::size_t>(needed_levels);
  int base_bits = 0;
  for (std::size_t i = 0; i < base; ++i) base_bits += coeff_bits[i];
  if (base_bits < q0_needed) {
    fail("insufficient modulus: q_0 (with the other primes the deepest level keeps) has " +
         std::to_string(base_bits) + " bits but values up to 2^" +
         std::to_string(static_cast<int>(std::ceil(plan.needs.log2_level0_magnitude))) +
         " at scale 2^" + std::to_string(scale_bits) + " need at least " + std::to_string(q0_needed));
  }
  for (std::size_t i = base; i < coeff_bits.size(); ++i) {
    if (std::abs(coeff_bits[i] - scale_bits) > 10) {
      fail("chain prime " + std::to_string(i) + " has " + std::to_string(coeff_bits[i]) +
           " bits; rescaling primes must be within 10 bits of scale_bits (" + std::to_string(scale_bits) + ")");
    }
  }
  const int max_chain = *std::max_element(coeff_bits.begin(), coeff_bits.end());
  if (!special_bits.empty() && *std::max_element(special_bits.begin(), special_bits.end()) < max_chain) {
    fail("the special prime must be at least as large as the largest chain prime (" +
         std::to_string(max_chain) + " bits)");
  }
  const int total = sum_bits(coeff_bits) + sum_bits(special_bits);
  if (total > ckks::max_log_qp_128(n)) {
    fail("insecure: log2(QP) = " + std::to_string(total) + " exceeds the 128-bit bound " +
         std::to_string(ckks::max_log_qp_128(n)) + " for N = " + std::to_string(n));
  }
  // The primes must exist: sizes in the generator's range, enough of each size for N.
  std::vector<int> sizes = coeff_bits;
  sizes.insert(sizes.end(), special_bits.begin(), special_bits.end());
  try {
    ring::generate_ntt_primes(sizes, n);
  } catch (const std::invalid_argument& e) {
    fail(std::string("no such primes: ") + e.what());
  }
  plan.scale_bits = scale_bits;
  plan.params = ckks::EncryptionParameters(n, std::move(coeff_bits), std::move(special_bits));
}

void apply_parameter_override(Parameters& plan, const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::invalid_argument("--params: cannot read '" + file.string() + "'");
  nlohmann::json j;
  try {
    in >> j;
    // Integers only, within range, before converting (a float or a huge integer does not
    // convert to int / size_t safely).
    auto integer = [&](const nlohmann::json& v, const char* what, std::int64_t lo, std::int64_t hi) {
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) ||
          (!v.is_number_unsigned() && (v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi))) {
        throw std::invalid_argument(std::string("--params: ") + what + " must be an integer in [" + std::to_string(lo) +
                                    ", " + std::to_string(hi) + "], got " + v.dump());
      }
      return v.get<std::int64_t>();
    };
    auto bits = [&](const char* key) {
      const nlohmann::json& a = j.at(key);
      if (!a.is_array() || a.size() > 64) throw std::invalid_argument(std::string("--params: ") + key + " must be a list of at most 64 bit sizes");
      std::vector<int> v;
      for (const auto& e : a) v.push_back(static_cast<int>(integer(e, key, 1, 64)));
      return v;
    };
    const auto n = static_cast<std::size_t>(integer(j.at("n"), "n", 1, std::int64_t{1} << 20));
    const int scale = j.contains("scale_bits") ? static_cast<int>(integer(j.at("scale_bits"), "scale_bits", 1, 64))
                                               : plan.scale_bits;
    apply_parameter_override(plan, n, bits("coeff_bits"), bits("special_bits"), scale);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("--params: malformed JSON in '" + file.string() + "': " + e.what() +
                                " (expected {\"n\":..., \"coeff_bits\":[...], \"special_bits\":[...], "
                                "\"scale_bits\":...})");
  }
}

}  // namespace heinfer::plan
