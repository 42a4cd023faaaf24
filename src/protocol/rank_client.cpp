#include "protocol/rank_client.h"

#include <algorithm>
#include <span>
#include <stdexcept>

#include "ckks/serialization.h"
#include "protocol/wire.h"
#include "runtime/run_stats.h"

namespace heinfer::protocol {

std::vector<ckks::Ciphertext> RankClient::placeholders(std::int64_t n) const {
  std::vector<ckks::Ciphertext> out(static_cast<std::size_t>(n));
  for (ckks::Ciphertext& ct : out) {
    ct.resize(m_.context->n(), 2, m_.context->max_level());
    std::fill(ct.data().begin(), ct.data().end(), 0);
    ct.set_scale(m_.plan.scale());
    ct.set_ntt_form(true);
  }
  return out;
}

void RankClient::send(const RankCall& c) {
  std::string bytes;
  if (!c.SerializeToString(&bytes)) throw std::logic_error("RankClient: a call of more than 2 GiB");
  job_.send(0, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
}

std::vector<ckks::Ciphertext> RankClient::call(const RankCall& c, std::int64_t expected) {
  if (!error_.empty()) return placeholders(expected);
  send(c);
  std::vector<ckks::Ciphertext> out;
  std::string failed;
  for (;;) {
    int from = 0;
    const std::vector<std::uint8_t> b = job_.receive(from);
    RankReply reply;
    if (!reply.ParseFromArray(b.data(), static_cast<int>(b.size()))) {
      throw std::runtime_error("serve --distributed: a malformed reply from rank 0");
    }
    if (!reply.error().empty()) failed = reply.error();
    if (failed.empty()) {
      if (static_cast<std::int64_t>(out.size() + static_cast<std::size_t>(reply.ciphertexts_size())) > expected) {
        throw std::runtime_error("serve --distributed: rank 0 replied with more ciphertexts than the call asked for");
      }
      for (const std::string& ct : reply.ciphertexts()) {
        const auto* p = reinterpret_cast<const std::uint8_t*>(ct.data());
        out.push_back(ckks::load_ciphertext(std::span<const std::uint8_t>(p, ct.size()), *m_.context));
      }
    }
    if (reply.last()) break;
  }
  if (failed.empty() && static_cast<std::int64_t>(out.size()) != expected) {
    throw std::runtime_error("serve --distributed: rank 0 replied with " + std::to_string(out.size()) + " of " +
                             std::to_string(expected) + " ciphertexts");
  }
  if (failed.empty()) return out;
  error_ = failed;
  cancel_.store(true);  // every compute rank stops at the next step
  return placeholders(expected);
}

std::vector<ckks::Ciphertext> RankClient::encrypt(const runtime::EncryptRequest& r) {
  RankCall c;
  EncryptRequest* e = c.mutable_encrypt();
  e->set_input(static_cast<int>(r.input));
  add_ranges(*e, r.elements);
  return call(c, static_cast<std::int64_t>(r.elements.size()));
}

std::vector<ckks::Ciphertext> RankClient::round(const runtime::RoundRequest& r) {
  RankCall c;
  RoundRequest* rr = c.mutable_round();
  rr->set_layer(r.layer);
  rr->set_function(static_cast<int>(r.function));
  rr->set_bound(r.bound);
  rr->set_node(static_cast<int>(r.node));
  for (const auto& w : r.windows) {
    Window* pw = rr->add_windows();
    for (const ckks::Ciphertext* ct : w) pw->add_ciphertexts(ct_bytes(*ct, *m_.context));
  }
  rr->set_last(true);
  return call(c, static_cast<std::int64_t>(r.windows.size() * runtime::replies_per_window(r.function)));
}

runtime::PlainTensor RankClient::decrypt(const std::vector<const ckks::Ciphertext*>& cts,
                                         const std::vector<double>& factors, const model::Shape& shape,
                                         std::int64_t batch, const std::string& layer, double bound) {
  RankCall c;
  OutputChunk* o = c.mutable_output();
  for (const ckks::Ciphertext* ct : cts) o->add_ciphertexts(ct ? ct_bytes(*ct, *m_.context) : std::string());
  for (double f : factors) o->add_factors(f);
  for (auto d : shape) o->add_shape(d);
  o->set_batch(batch);
  o->set_layer(layer);
  o->set_bound(bound);
  o->set_last(true);
  call(c, 0);
  runtime::PlainTensor y;  // the server never sees the outputs
  y.shape = shape;
  y.batch = batch;
  y.data.assign(static_cast<std::size_t>(model::numel(shape) * batch), 0.0);
  return y;
}

void RankClient::layer_done(std::size_t node, const runtime::LayerStats& l) {
  if (!leader_ || !error_.empty()) return;
  RankCall c;
  fill_progress(*c.mutable_progress(), node, l);
  send(c);
}

}  // namespace heinfer::protocol
