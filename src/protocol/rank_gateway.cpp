#include "protocol/rank_gateway.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckks/serialization.h"
#include "protocol/rank_client.h"
#include "protocol/server_checks.h"
#include "protocol/wire.h"
#include "runtime/encrypted_executor.h"

namespace heinfer::protocol {
namespace {

// Ciphertext bytes per RankReply message (the MPI transport splits larger messages too).
constexpr std::size_t kReplyChunkBytes = std::size_t{256} << 20;

void send_message(runtime::Peers& job, int to, const google::protobuf::Message& msg) {
  std::string bytes;
  if (!msg.SerializeToString(&bytes)) throw std::logic_error("serve --distributed: a message of more than 2 GiB");
  job.send(to, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
}

void reply_error(runtime::Peers& job, int to, const std::string& error) {
  RankReply r;
  r.set_error(error.empty() ? "the batch failed" : error);
  r.set_last(true);
  send_message(job, to, r);
}

void reply_ciphertexts(runtime::Peers& job, int to, const std::vector<ckks::Ciphertext>& cts,
                       const ckks::CKKSContext& context) {
  RankReply r;
  std::size_t bytes = 0;
  for (const ckks::Ciphertext& ct : cts) {
    r.add_ciphertexts(ct_bytes(ct, context));
    bytes += r.ciphertexts().rbegin()->size();
    if (bytes >= kReplyChunkBytes) {
      send_message(job, to, r);
      r.Clear();
      bytes = 0;
    }
  }
  r.set_last(true);
  send_message(job, to, r);
}

std::vector<ckks::Ciphertext> load_all(const google::protobuf::RepeatedPtrField<std::string>& in,
                                       const ckks::CKKSContext& context) {
  std::vector<ckks::Ciphertext> out;
  out.reserve(static_cast<std::size_t>(in.size()));
  for (const std::string& b : in) {
    out.push_back(ckks::load_ciphertext(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()), context));
  }
  return out;
}

/// Makes a compute rank's call on the data owner's stream; returns the ciphertexts of
/// the reply (none for the outputs).
std::vector<ckks::Ciphertext> make_call(const RankCall& c, const Model& m, RemoteClient& remote) {
  const ckks::CKKSContext& ctx = *m.context;
  switch (c.kind_case()) {
    case RankCall::kEncrypt: {
      std::vector<std::int64_t> elements;
      const auto& rg = c.encrypt().ranges();
      const std::int64_t total = model::numel(m.g.tensors[static_cast<std::size_t>(m.g.inputs[0])].shape);
      if (rg.size() % 2 != 0) throw std::runtime_error("an input request with an odd range list");
      for (int i = 0; i < rg.size(); i += 2) {
        if (rg[i] < 0 || rg[i] >= rg[i + 1] || rg[i + 1] > total) throw std::runtime_error("an input range out of bounds");
        for (std::int64_t e = rg[i]; e < rg[i + 1]; ++e) elements.push_back(e);
      }
      runtime::EncryptRequest r;
      r.input = static_cast<std::size_t>(c.encrypt().input());
      r.elements = elements;
      r.name = m.g.tensors[static_cast<std::size_t>(m.g.inputs[0])].name;
      return remote.encrypt(r);
    }
    case RankCall::kRound: {
      const RoundRequest& rr = c.round();
      std::vector<ckks::Ciphertext> cts;
      std::vector<std::size_t> sizes;
      for (const Window& w : rr.windows()) {
        for (ckks::Ciphertext& ct : load_all(w.ciphertexts(), ctx)) cts.push_back(std::move(ct));
        sizes.push_back(static_cast<std::size_t>(w.ciphertexts_size()));
      }
      runtime::RoundRequest r;
      r.node = rr.node();
      r.layer = rr.layer();
      r.function = static_cast<runtime::RoundFunction>(rr.function());
      r.bound = rr.bound();
      std::size_t at = 0;
      for (std::size_t s : sizes) {
        auto& w = r.windows.emplace_back();
        for (std::size_t i = 0; i < s; ++i) w.push_back(&cts[at++]);
      }
      return remote.round(r);
    }
    case RankCall::kOutput: {
      const OutputChunk& o = c.output();
      std::vector<ckks::Ciphertext> cts;
      std::vector<const ckks::Ciphertext*> ptrs;
      cts.reserve(static_cast<std::size_t>(o.ciphertexts_size()));
      for (const std::string& b : o.ciphertexts()) {
        if (b.empty()) {
          ptrs.push_back(nullptr);
          continue;
        }
        cts.push_back(ckks::load_ciphertext(
            std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()), ctx));
        ptrs.push_back(&cts.back());
      }
      remote.decrypt(ptrs, {o.factors().begin(), o.factors().end()}, {o.shape().begin(), o.shape().end()}, o.batch(),
                     o.layer(), o.bound());
      return {};
    }
    default: throw std::runtime_error("a call of an unknown kind");
  }
}

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const StatusError& s) {
    return s.status.error_message();
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

void run_batch_on_ranks(runtime::Peers& job, const Model& m, const RankCommand& command, RemoteClient& remote,
                        runtime::EncryptedRunStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 1; r < job.size(); ++r) send_message(job, r, command);
  stats.layers.assign(m.g.nodes.size(), {});
  std::exception_ptr failure;
  for (int done = 0; done < job.size() - 1;) {
    int from = -1;
    const std::vector<std::uint8_t> bytes = job.receive(from);
    RankCall c;
    if (!c.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      throw std::runtime_error("serve --distributed: a malformed message from rank " + std::to_string(from));
    }
    if (c.kind_case() == RankCall::kDone) {
      ++done;
      if (!c.done().error().empty() && !failure) {
        failure = std::make_exception_ptr(std::runtime_error("rank " + std::to_string(from) + ": " + c.done().error()));
      }
      continue;
    }
    if (c.kind_case() == RankCall::kProgress) {
      const LayerProgress& p = c.progress();
      if (failure || p.node() < 0 || p.node() >= static_cast<int>(m.g.nodes.size())) continue;
      runtime::LayerStats& l = stats.layers[static_cast<std::size_t>(p.node())];
      l.name = p.name();
      l.op = p.op();
      l.seconds = p.seconds();
      l.ciphertexts = p.ciphertexts();
      l.level = p.level();
      try {
        remote.layer_done(static_cast<std::size_t>(p.node()), l);
      } catch (...) {
        failure = std::current_exception();
      }
      continue;
    }
    if (failure) {
      reply_error(job, from, message_of(failure));
      continue;
    }
    try {
      const std::vector<ckks::Ciphertext> cts = make_call(c, m, remote);
      reply_ciphertexts(job, from, cts, *m.context);
    } catch (...) {
      failure = std::current_exception();
      reply_error(job, from, message_of(failure));
    }
  }
  stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (failure) std::rethrow_exception(failure);
}

void stop_compute_ranks(runtime::Peers& job) {
  const RankCommand stop;  // no model
  for (int r = 1; r < job.size(); ++r) send_message(job, r, stop);
}

void serve_as_compute_rank(runtime::Peers& job, runtime::Peers& group,
                           const std::map<std::string, std::unique_ptr<Model>>& models, int threads) {
  for (;;) {
    int from = 0;
    const std::vector<std::uint8_t> bytes = job.receive(from);
    RankCommand cmd;
    if (!cmd.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      throw std::runtime_error("serve --distributed: a malformed command from rank 0");
    }
    if (cmd.model().empty()) return;
    const auto it = models.find(cmd.model());
    if (it == models.end()) throw std::runtime_error("serve --distributed: rank 0 asked for unknown model '" + cmd.model() + "'");
    const Model& m = *it->second;
    runtime::EvaluationKeys keys;
    try {
      keys = load_session_keys(cmd.keys(), cmd.relin_bytes(), session_requirements(m), cmd.public_key_bytes());
    } catch (const StatusError& e) {
      throw std::runtime_error("serve --distributed: the keys from rank 0: " + e.status.error_message());
    }
    std::atomic<bool> cancel{false};
    runtime::EncryptedRunOptions ro;
    ro.threads = threads;
    ro.peers = &group;
    ro.cancel = &cancel;
    const runtime::EncryptedExecutor executor(m.g, m.encrypted, m.context, keys, ro);
    RankClient client(job, m, cmd.batch(), group.rank() == 0, cancel);
    RankCall done;
    try {
      runtime::EncryptedRunStats stats;
      executor.run(client, stats);
    } catch (const runtime::RunCancelled&) {
      if (client.error().empty()) done.mutable_done()->set_error("cancelled");
    }
    done.mutable_done()->set_error(client.error().empty() ? done.done().error() : client.error());
    send_message(job, 0, done);
  }
}

}  // namespace heinfer::protocol
