// Internal to the server: the executor's runtime::Client for a data owner at the other
// end of an Infer stream. Encryption, rounds and decryption are forwarded as messages;
// what comes back is checked against the request (counts, parameters) and refused with a
// StatusError. The server never sees the outputs (decrypt returns zeros).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "protocol/served_model.h"
#include "protocol/server_checks.h"
#include "protocol/status_error.h"
#include "protocol/wire.h"
#include "runtime/client.h"
#include "runtime/run_stats.h"

namespace heinfer::protocol {

/// Forwards the executor's client calls over an open Infer stream.
class RemoteClient : public runtime::Client {
  using Clock = std::chrono::steady_clock;


 public:
  struct Traffic {
    std::int64_t to_client = 0, to_server = 0, round_trips = 0;
  };

  /// `batch`: the samples the client announced in Start (checked by the caller).
  RemoteClient(grpc::ServerReaderWriter<ServerMessage, ClientMessage>* stream, const Model& m, int max_mib,
               std::int64_t batch)
      : stream_(stream), m_(m), budget_(chunk_budget(max_mib)), batch_(batch) {}

  /// Ciphertext bytes per node name, plus "input" and "output".
  const std::map<std::string, Traffic>& traffic() const { return traffic_; }

  std::int64_t capacity() const override { return m_.plan.capacity(); }

  std::int64_t batch() const override { return batch_; }
  bool encrypts_parts() const override { return true; }

  /// Asks the data owner for elements of its input (EncryptRequest, as ranges) and
  /// receives exactly that many ciphertexts.
  std::vector<ckks::Ciphertext> encrypt(const runtime::EncryptRequest& r) override {
    ServerMessage msg;
    auto* e = msg.mutable_encrypt();
    e->set_input(static_cast<int>(r.input));
    add_ranges(*e, r.elements);
    send(msg);
    ++traffic_["input"].round_trips;
    return receive(ClientMessage::kInput, "input", &traffic_["input"].to_server,
                   static_cast<std::int64_t>(r.elements.size()));
  }

  /// Progress per layer to the data owner (best effort: a failed write ends the stream,
  /// which the next round or the outputs report).
  void layer_done(std::size_t node, const runtime::LayerStats& l) override {
    ServerMessage msg;
    auto* p = msg.mutable_progress();
    fill_progress(*p, node, l);
    p->set_elapsed(std::chrono::duration<double>(Clock::now() - start_).count());
    stream_->Write(msg);
  }

  std::vector<ckks::Ciphertext> round(const runtime::RoundRequest& r) override {
    ++rounds_;
    if (r.node < 0 || r.node >= static_cast<std::int64_t>(m_.g.nodes.size())) {
      throw std::logic_error("a round without a node of model '" + m_.name + "'");
    }
    Traffic& t = traffic_[m_.g.nodes[static_cast<std::size_t>(r.node)].name];
    ++t.round_trips;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    ServerMessage msg;
    std::size_t bytes = 0;
    auto* rr = msg.mutable_round();
    auto reset = [&] {
      rr->set_round(rounds_);
      rr->set_layer(r.layer);
      rr->set_function(static_cast<int>(r.function));
      rr->set_bound(r.bound);
      rr->set_node(static_cast<int>(r.node));
      rr->set_elapsed(elapsed);
    };
    reset();
    for (const auto& w : r.windows) {
      auto* pw = rr->add_windows();
      for (const ckks::Ciphertext* ct : w) {
        pw->add_ciphertexts(ct_bytes(*ct, *m_.context));
        bytes += pw->ciphertexts().rbegin()->size();
        t.to_client += static_cast<std::int64_t>(pw->ciphertexts().rbegin()->size());
      }
      if (bytes >= budget_) {
        send(msg);
        msg.Clear();
        rr = msg.mutable_round();
        reset();
        bytes = 0;
      }
    }
    rr->set_last(true);
    send(msg);
    auto reply = receive(ClientMessage::kRoundReply, "round reply of " + r.layer, &t.to_server,
                         static_cast<std::int64_t>(r.windows.size() * runtime::replies_per_window(r.function)));
    return reply;
  }

  runtime::PlainTensor decrypt(const std::vector<const ckks::Ciphertext*>& cts, const std::vector<double>& factors,
                               const model::Shape& shape, std::int64_t batch, const std::string& layer,
                               double bound) override {
    ServerMessage msg;
    auto* o = msg.mutable_output();
    for (double f : factors) o->add_factors(f);
    for (auto d : shape) o->add_shape(d);
    std::size_t bytes = 0;
    auto fill = [&] {
      o->set_batch(batch);
      o->set_layer(layer);
      o->set_bound(bound);
    };
    fill();
    for (const ckks::Ciphertext* ct : cts) {
      o->add_ciphertexts(ct ? ct_bytes(*ct, *m_.context) : std::string());
      bytes += o->ciphertexts().rbegin()->size();
      traffic_["output"].to_client += static_cast<std::int64_t>(o->ciphertexts().rbegin()->size());
      if (bytes >= budget_) {
        send(msg);
        msg.Clear();
        o = msg.mutable_output();
        fill();
        bytes = 0;
      }
    }
    o->set_last(true);
    send(msg);
    runtime::PlainTensor y;  // the server never sees the outputs
    y.shape = shape;
    y.batch = batch;
    y.data.assign(static_cast<std::size_t>(model::numel(shape) * batch), 0.0);
    return y;
  }

 private:
  void send(const ServerMessage& m) {
    if (!stream_->Write(m)) fail(grpc::StatusCode::CANCELLED, "client disconnected");
  }

  /// Ciphertexts of one chunked reply of `kind`; more than `expected` is refused as soon
  /// as it arrives (the reply cannot grow the server's memory past the request).
  std::vector<ckks::Ciphertext> receive(ClientMessage::KindCase kind, const std::string& what, std::int64_t* bytes,
                                        std::int64_t expected) {
    CiphertextReply reply(*m_.context, kind, what, expected);
    ClientMessage msg;
    for (;;) {
      if (!stream_->Read(&msg)) fail(grpc::StatusCode::CANCELLED, "client disconnected during " + what);
      const std::int64_t before = reply.bytes();
      const bool last = reply.add(msg);
      *bytes += reply.bytes() - before;
      if (last) return std::move(reply.ciphertexts());
    }
  }

  grpc::ServerReaderWriter<ServerMessage, ClientMessage>* stream_;
  const Model& m_;
  std::size_t budget_;
  std::int64_t batch_;
  std::int64_t rounds_ = 0;
  Clock::time_point start_ = Clock::now();
  std::map<std::string, Traffic> traffic_;
};

}  // namespace heinfer::protocol
