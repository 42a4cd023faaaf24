#include "protocol/client_checks.h"

#include "runtime/round_function.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ckks/serialization.h"
#include "runtime/client.h"

namespace heinfer::protocol {

ckks::ContextPtr accepted_parameters(const std::string& bytes, const std::string& fingerprint) {
  ckks::EncryptionParameters parms;
  try {
    parms = ckks::load_parameters(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("refusing the server's parameters: ") + e.what());
  }
  // The client's own decision: 128-bit security, whatever level the server flagged.
  parms.set_security_level(ckks::SecurityLevel::TC128);
  ckks::ContextPtr context;
  try {
    context = ckks::CKKSContext::create(parms);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("refusing the server's parameters: ") + e.what());
  }
  const auto& fp = context->fingerprint();
  if (fingerprint != std::string(fp.begin(), fp.end())) {
    throw std::runtime_error("refusing the server's parameters: their fingerprint does not match");
  }
  return context;
}

std::vector<std::int64_t> requested_elements(const EncryptRequest& r, std::vector<bool>& encrypted) {
  if (r.input() != 0) throw std::runtime_error("protocol: the server asked for input " + std::to_string(r.input()));
  if (r.ranges_size() == 0 || r.ranges_size() % 2 != 0) {
    throw std::runtime_error("protocol: malformed input request from the server (" + std::to_string(r.ranges_size()) +
                             " range bounds)");
  }
  const auto size = static_cast<std::int64_t>(encrypted.size());
  std::int64_t prev_end = 0;
  for (int i = 0; i < r.ranges_size(); i += 2) {  // everything is checked before anything is marked
    const std::int64_t lo = r.ranges(i), hi = r.ranges(i + 1);
    if (lo < prev_end || hi <= lo || hi > size) {
      throw std::runtime_error("protocol: the server asked for input elements [" + std::to_string(lo) + ", " +
                               std::to_string(hi) + "): empty, out of order or outside the input's " +
                               std::to_string(size) + " elements");
    }
    prev_end = hi;
    for (std::int64_t e = lo; e < hi; ++e) {
      if (encrypted[static_cast<std::size_t>(e)]) {
        throw std::runtime_error("protocol: the server asked for input element " + std::to_string(e) +
                                 " a second time in this batch");
      }
    }
  }
  std::vector<std::int64_t> out;
  for (int i = 0; i < r.ranges_size(); i += 2) {
    for (std::int64_t e = r.ranges(i); e < r.ranges(i + 1); ++e) {
      encrypted[static_cast<std::size_t>(e)] = true;
      out.push_back(e);
    }
  }
  return out;
}

namespace {

ckks::Ciphertext load_sent(const std::string& b, const ckks::CKKSContext& context) {
  try {
    return ckks::load_ciphertext(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()),
                                 context);
  } catch (const ckks::SerializationError& e) {
    throw std::runtime_error(std::string("server sent an invalid ciphertext: ") + e.what());
  }
}

}  // namespace

void load_round_chunk(const RoundRequest& chunk, const RoundSpec& spec, const ckks::CKKSContext& context,
                      std::vector<ckks::Ciphertext>& cts, std::vector<std::size_t>& window_sizes) {
  for (const Window& w : chunk.windows()) {
    window_sizes.push_back(static_cast<std::size_t>(w.ciphertexts_size()));
    for (const std::string& c : w.ciphertexts()) {
      cts.push_back(load_sent(c, context));
      if (static_cast<std::int64_t>(cts.back().level()) != spec.level()) {
        throw std::runtime_error("protocol: round of node " + std::to_string(chunk.node()) + ": a ciphertext at level " +
                                 std::to_string(cts.back().level()) + ", announced " + std::to_string(spec.level()));
      }
    }
  }
}

void load_output_chunk(const OutputChunk& chunk, const ckks::CKKSContext& context, std::vector<ckks::Ciphertext>& cts,
                       std::vector<bool>& zero) {
  for (const std::string& s : chunk.ciphertexts()) {
    zero.push_back(s.empty());
    cts.push_back(s.empty() ? ckks::Ciphertext() : load_sent(s, context));
  }
}

namespace {

/// Functions of one element per window (Relu, Abs, AbsWithValue, the unmasked ones).
bool one_element(int f) {
  const auto rf = static_cast<runtime::RoundFunction>(f);
  return rf == runtime::RoundFunction::Relu || rf == runtime::RoundFunction::Abs ||
         rf == runtime::RoundFunction::AbsWithValue || rf == runtime::RoundFunction::BlindRefresh ||
         runtime::unmasked_function_op(rf).has_value();
}

}  // namespace

ScheduleCheck::ScheduleCheck(const ModelInfo& info)
    : info_(info), windows_(static_cast<std::size_t>(info.schedule_size()), 0), rounds_(windows_.size(), 0) {
  for (int i = 0; i < info.schedule_size(); ++i) {
    const RoundSpec& r = info.schedule(i);
    if (r.node() < 0 || r.node() >= info.nodes() || spec_of_.count(r.node()) != 0 ||
        r.windows() <= 0 || r.max_windows() <= 0 || r.window_size() <= 0 || r.rounds() <= 0 || r.level() < 0 ||
        !std::isfinite(r.bound()) || r.bound() <= 0 || r.function() < 0 || r.function() >= runtime::kRoundFunctions ||
        (one_element(r.function()) && r.window_size() != 1)) {
      throw std::runtime_error("protocol: the server announced a malformed round schedule (entry " +
                               std::to_string(i) + ")");
    }
    if ((r.function() == static_cast<int>(runtime::RoundFunction::BlindRefresh)) != (info.privacy() == MODEL)) {
      // Refreshes belong to the model-private mode and only to it: a client-aided
      // announcement with a refresh would give a malicious server a re-encryption and a
      // reaction bit (the refusal of an out-of-range coefficient) for nothing.
      throw std::runtime_error("protocol: the server announced a " +
                               std::string(info.privacy() == MODEL ? "client-aided round in a model-private"
                                                                   : "blind refresh round in a client-aided") +
                               " schedule (entry " + std::to_string(i) + ")");
    }
    spec_of_[r.node()] = i;
  }
}

int ScheduleCheck::spec_index(int node) const {
  const auto found = spec_of_.find(node);
  if (found == spec_of_.end()) {
    throw std::runtime_error("protocol: a round for node " + std::to_string(node) + ", which has none");
  }
  return found->second;
}

const RoundSpec& ScheduleCheck::round_chunk(const RoundRequest& chunk, std::int64_t windows_before) {
  const int node = chunk.node();
  const int i = spec_index(node);
  const RoundSpec& r = info_.schedule(i);
  const std::string at = "protocol: round of node " + std::to_string(node) + ": ";
  if (chunk.function() != r.function()) throw std::runtime_error(at + "another function than announced");
  const std::int64_t windows = chunk.windows_size();
  if (windows_before + windows > r.max_windows()) {
    throw std::runtime_error(at + "more than the " + std::to_string(r.max_windows()) + " windows per round announced");
  }
  auto& total = windows_[static_cast<std::size_t>(i)];
  if (total + windows > r.windows()) {
    throw std::runtime_error(at + "more than the " + std::to_string(r.windows()) + " windows announced for the node");
  }
  for (const Window& w : chunk.windows()) {
    if (w.ciphertexts_size() == 0 || w.ciphertexts_size() > r.window_size()) {
      throw std::runtime_error(at + "a window of " + std::to_string(w.ciphertexts_size()) + " ciphertexts (announced: " +
                               std::to_string(r.window_size()) + " at most)");
    }
  }
  total += windows;
  return r;
}

void ScheduleCheck::round_done(int node) {
  const int i = spec_index(node);
  if (++rounds_[static_cast<std::size_t>(i)] > info_.schedule(i).rounds()) {
    throw std::runtime_error("protocol: round of node " + std::to_string(node) + ": more than the " +
                             std::to_string(info_.schedule(i).rounds()) + " rounds announced");
  }
}

void ScheduleCheck::output_chunk(const OutputChunk& chunk, std::int64_t ciphertexts_before, std::int64_t batch) {
  const std::int64_t expected = info_.output_ciphertexts();
  if (ciphertexts_before + chunk.ciphertexts_size() > expected) {
    throw std::runtime_error("protocol: more output ciphertexts than the " + std::to_string(expected) + " announced");
  }
  if (ciphertexts_before > 0) return;
  if (!std::equal(chunk.shape().begin(), chunk.shape().end(), info_.output_shape().begin(), info_.output_shape().end()) ||
      chunk.batch() != batch) {
    throw std::runtime_error("protocol: output shape or batch is not the announced one");
  }
  if (chunk.factors_size() != 0 && chunk.factors_size() != expected) {
    throw std::runtime_error("protocol: " + std::to_string(chunk.factors_size()) + " output factors for " +
                             std::to_string(expected) + " output ciphertexts");
  }
  for (double f : chunk.factors()) {
    if (!std::isfinite(f)) throw std::runtime_error("protocol: an output factor is not finite");
  }
}

}  // namespace heinfer::protocol
