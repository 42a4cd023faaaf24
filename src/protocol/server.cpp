// The gRPC server of `heinfer serve` (remote.h describes the protocol and its limits).
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ckks/serialization.h"
#include "memory/bytes.h"
#include "memory/process_memory.h"
#include "plan/encrypted_plan.h"
#include "plan/footprint.h"
#include "model/load.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"
#include "protocol/wire.h"
#include "runtime/encrypted_executor.h"
#include "runtime/npy.h"
#include "plan/parameters.h"
#include "runtime/calibration.h"
#include <sodium.h>

namespace heinfer::protocol {

using memory::format_bytes;

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

std::int64_t default_memory_limit() {
  try {
    return static_cast<std::int64_t>(static_cast<double>(memory::mem_available_bytes()) * 0.8);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + ": give --memory-limit");
  }
}

namespace {

using Clock = std::chrono::steady_clock;

// Session memory reservation = kFootprintFactor x plan::predict_footprint(...).total_bytes()
// + the serialized keys (held while they are loaded) + four messages of gRPC buffers
// + kSessionOverhead. Calibrated against the measured peak RSS of CNN and CryptoNets
// sessions (docs/remote_inference.md, "Memory admission").
constexpr double kFootprintFactor = 1.5;
constexpr std::int64_t kSessionOverhead = std::int64_t{256} << 20;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct StatusError {
  grpc::Status status;
};

[[noreturn]] void fail(grpc::StatusCode code, const std::string& msg) { throw StatusError{grpc::Status(code, msg)}; }

struct Model {
  std::string name;
  model::Graph g;
  plan::Parameters plan;
  plan::EncryptedPlan encrypted;  // levels, stored levels, schedule (the executor runs it)
  ckks::ContextPtr context;
  ModelInfo info;
  std::map<std::string, int> node_index;  // node name -> index (progress, per-layer bytes)
  std::int64_t reservation = 0;           // bytes one session reserves
  std::int64_t max_key_bytes = 0;         // bound on one serialized key object
};

class Service;

/// A session's share of the memory limit; released (and waiters woken) on destruction.
struct Reservation {
  Service* service;
  std::int64_t bytes;
  ~Reservation();
};

struct Session {
  std::unique_ptr<Reservation> reservation;  // declared first: released after keys and executor
  std::string id;
  const Model* model = nullptr;
  runtime::EvaluationKeys keys;
  std::unique_ptr<runtime::EncryptedExecutor> executor;
  Clock::time_point last_used = Clock::now();
  std::mutex run_mutex;  // one Infer at a time per session
};

/// Forwards the executor's client calls over an open Infer stream.
class RemoteClient : public runtime::Client {
 public:
  struct Traffic {
    std::int64_t to_client = 0, to_server = 0, round_trips = 0;
  };

  RemoteClient(grpc::ServerReaderWriter<ServerMessage, ClientMessage>* stream, const Model& m, int max_mib)
      : stream_(stream), m_(m), budget_(chunk_budget(max_mib)) {}

  /// Ciphertext bytes per node name, plus "input" and "output".
  const std::map<std::string, Traffic>& traffic() const { return traffic_; }

  std::int64_t capacity() const override { return m_.plan.capacity(); }

  std::vector<ckks::Ciphertext> encrypt(const runtime::PlainTensor& x, const std::string&, double) override {
    auto cts = receive(ClientMessage::kInput, "input", &traffic_["input"].to_server);
    traffic_["input"].round_trips = 1;  // the input -> output exchange
    if (static_cast<std::int64_t>(cts.size()) != model::numel(x.shape)) {
      fail(grpc::StatusCode::INVALID_ARGUMENT, "input: expected " + std::to_string(model::numel(x.shape)) +
                                                   " ciphertexts, got " + std::to_string(cts.size()));
    }
    return cts;
  }

  /// Progress per layer to the data owner (best effort: a failed write ends the stream,
  /// which the next round or the outputs report).
  void layer_done(std::size_t node, const runtime::LayerStats& l) override {
    ServerMessage msg;
    auto* p = msg.mutable_progress();
    p->set_node(static_cast<int>(node));
    p->set_name(l.name);
    p->set_op(l.op);
    p->set_seconds(l.seconds);
    p->set_ciphertexts(l.ciphertexts);
    p->set_level(l.level);
    p->set_elapsed(std::chrono::duration<double>(Clock::now() - start_).count());
    stream_->Write(msg);
  }

  std::vector<ckks::Ciphertext> round(const runtime::RoundRequest& r) override {
    ++rounds_;
    // r.layer is "<producer> -> <node>": the round belongs to <node>.
    const std::size_t arrow = r.layer.rfind(" -> ");
    const std::string node = arrow == std::string::npos ? r.layer : r.layer.substr(arrow + 4);
    Traffic& t = traffic_[node];
    ++t.round_trips;
    const auto it = m_.node_index.find(node);
    const int node_index = it == m_.node_index.end() ? -1 : it->second;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    ServerMessage msg;
    std::size_t bytes = 0;
    auto* rr = msg.mutable_round();
    auto reset = [&] {
      rr->set_round(rounds_);
      rr->set_layer(r.layer);
      rr->set_function(static_cast<int>(r.function));
      rr->set_bound(r.bound);
      rr->set_node(node_index);
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
    auto reply = receive(ClientMessage::kRoundReply, "round reply of " + r.layer, &t.to_server);
    if (reply.size() != r.windows.size()) {
      fail(grpc::StatusCode::INVALID_ARGUMENT, "round reply of " + r.layer + ": expected " +
                                                   std::to_string(r.windows.size()) + " ciphertexts, got " +
                                                   std::to_string(reply.size()));
    }
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

  std::vector<ckks::Ciphertext> receive(ClientMessage::KindCase kind, const std::string& what, std::int64_t* bytes) {
    std::vector<ckks::Ciphertext> out;
    ClientMessage msg;
    for (;;) {
      if (!stream_->Read(&msg)) fail(grpc::StatusCode::CANCELLED, "client disconnected during " + what);
      if (msg.kind_case() != kind) fail(grpc::StatusCode::INVALID_ARGUMENT, "protocol: unexpected message during " + what);
      const CiphertextChunk& c = kind == ClientMessage::kInput ? msg.input() : msg.round_reply();
      for (const std::string& b : c.ciphertexts()) {
        *bytes += static_cast<std::int64_t>(b.size());
        try {
          out.push_back(ckks::load_ciphertext(
              std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()), *m_.context));
        } catch (const ckks::SerializationError& e) {
          fail(grpc::StatusCode::INVALID_ARGUMENT, what + ": ciphertext rejected: " + e.what());
        }
      }
      if (c.last()) return out;
    }
  }

  grpc::ServerReaderWriter<ServerMessage, ClientMessage>* stream_;
  const Model& m_;
  std::size_t budget_;
  std::int64_t rounds_ = 0;
  Clock::time_point start_ = Clock::now();
  std::map<std::string, Traffic> traffic_;
};

class Service final : public Inference::Service {
 public:
  explicit Service(const ServerOptions& o) : o_(o), limit_(o.memory_limit > 0 ? o.memory_limit : default_memory_limit()) {
    for (const ServedModel& sm : o.models) load(sm);
    std::printf("memory limit %s (%s)\n", format_bytes(limit_).c_str(),
                o.memory_limit > 0 ? "--memory-limit" : "80% of MemAvailable");
    std::fflush(stdout);
    reaper_ = std::thread([this] { reap(); });
  }
  ~Service() override {
    shutdown();
    reaper_.join();
    std::map<std::string, std::shared_ptr<Session>> sessions;
    {
      std::lock_guard lock(mu_);
      sessions.swap(sessions_);
    }
    sessions.clear();  // releases reservations (needs mu_ and admit_cv_ alive)
  }

  /// Refuses new sessions and wakes the ones waiting for memory (SIGTERM).
  void shutdown() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    admit_cv_.notify_all();
  }

  void release(std::int64_t bytes) {
    {
      std::lock_guard lock(mu_);
      reserved_ -= bytes;
      --admitted_;
    }
    malloc_trim(0);  // hand the session's freed heap back to the system
    admit_cv_.notify_all();
  }

  grpc::Status GetModelInfo(grpc::ServerContext*, const ModelInfoRequest* req, ModelInfo* reply) override {
    auto it = models_.find(req->model());
    if (it == models_.end()) return unknown_model(req->model());
    *reply = it->second->info;
    return grpc::Status::OK;
  }

  grpc::Status GetStats(grpc::ServerContext*, const StatsRequest*, ServerStats* reply) override {
    std::lock_guard lock(mu_);
    reply->set_open_sessions(admitted_);
    reply->set_waiting_sessions(waiting_);
    reply->set_reserved_bytes(reserved_);
    reply->set_memory_limit(limit_);
    reply->set_peak_reserved_bytes(peak_reserved_);
    reply->set_sessions_opened(opened_);
    reply->set_sessions_waited(waited_);
    reply->set_sessions_refused(refused_);
    reply->set_rss_bytes(memory::proc_status_bytes("VmRSS"));
    reply->set_peak_rss_bytes(memory::proc_status_bytes("VmHWM"));
    return grpc::Status::OK;
  }

  grpc::Status OpenSession(grpc::ServerContext* ctx, grpc::ServerReader<OpenSessionChunk>* reader,
                           OpenSessionReply* reply) override {
    OpenSessionChunk chunk;
    if (!reader->Read(&chunk)) return {grpc::StatusCode::CANCELLED, "client disconnected"};
    if (chunk.kind_case() != OpenSessionChunk::kHeader) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "protocol: OpenSession must begin with a header"};
    }
    const OpenSessionHeader h = chunk.header();
    auto it = models_.find(h.model());
    if (it == models_.end()) return unknown_model(h.model());
    const Model& m = *it->second;
    const auto& fp = m.context->fingerprint();
    if (h.fingerprint() != std::string(fp.begin(), fp.end())) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "parameter fingerprint " + hex(h.fingerprint()) + " does not match model '" + m.name + "' (" +
                  hex(std::string(fp.begin(), fp.end())) + "); call GetModelInfo again"};
    }
    const bool complex = m.plan.packing == ckks::Packing::Complex;
    if (h.relin_bytes() <= 0 || h.relin_bytes() > m.max_key_bytes || h.galois_bytes() < 0 ||
        h.galois_bytes() > m.max_key_bytes || (complex && h.galois_bytes() == 0)) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "declared key sizes (relinearization " + std::to_string(h.relin_bytes()) + ", Galois " +
                  std::to_string(h.galois_bytes()) + " bytes) outside (0, " + std::to_string(m.max_key_bytes) +
                  "]" + (complex ? "; this model needs the conjugation key" : "")};
    }
    std::unique_ptr<Reservation> reservation;
    if (grpc::Status st = admit(ctx, m, &reservation); !st.ok()) return st;
    // The keys, in chunks (bounded by the declared sizes).
    const auto total = static_cast<std::size_t>(h.relin_bytes() + h.galois_bytes());
    std::string keys;
    keys.reserve(total);
    while (keys.size() < total) {
      if (!reader->Read(&chunk)) {
        if (ctx->IsCancelled()) return {grpc::StatusCode::CANCELLED, "OpenSession cancelled while receiving keys"};
        return {grpc::StatusCode::INVALID_ARGUMENT, "OpenSession ended after " + std::to_string(keys.size()) + " of " +
                                                        std::to_string(total) + " declared key bytes (truncated)"};
      }
      if (chunk.kind_case() != OpenSessionChunk::kKeys || keys.size() + chunk.keys().size() > total) {
        return {grpc::StatusCode::INVALID_ARGUMENT, "protocol: more key data than the header declared"};
      }
      keys += chunk.keys();
    }
    auto s = std::make_shared<Session>();
    s->model = &m;
    const auto* data = reinterpret_cast<const uint8_t*>(keys.data());
    const auto relin_n = static_cast<std::size_t>(h.relin_bytes());
    try {
      s->keys.relin = ckks::load_relin_keys(std::span<const uint8_t>(data, relin_n), *m.context);
    } catch (const ckks::SerializationError& e) {
      return {grpc::StatusCode::INVALID_ARGUMENT, std::string("relinearization keys rejected: ") + e.what()};
    }
    if (h.galois_bytes() > 0) {
      try {
        s->keys.galois = ckks::load_galois_keys(std::span<const uint8_t>(data + relin_n, total - relin_n), *m.context);
      } catch (const ckks::SerializationError& e) {
        return {grpc::StatusCode::INVALID_ARGUMENT, std::string("Galois keys rejected: ") + e.what()};
      }
    }
    keys.clear();
    keys.shrink_to_fit();
    // Exactly the Galois keys the model needs (GetModelInfo lists them): no more, no fewer.
    for (uint32_t g : m.info.galois_elements()) {
      if (!s->keys.galois.has(g)) {
        return {grpc::StatusCode::INVALID_ARGUMENT,
                "Galois keys rejected: the key for element " + std::to_string(g) + " is missing (see GetModelInfo)"};
      }
    }
    for (const auto& [g, k] : s->keys.galois.keys) {
      const auto& need = m.info.galois_elements();
      if (std::find(need.begin(), need.end(), g) == need.end()) {
        return {grpc::StatusCode::INVALID_ARGUMENT,
                "Galois keys rejected: element " + std::to_string(g) + " is not needed by model '" + m.name + "'"};
      }
    }
    runtime::EncryptedRunOptions ro;
    ro.threads = o_.threads;
    s->executor = std::make_unique<runtime::EncryptedExecutor>(m.g, m.encrypted, m.context, s->keys, ro);
    std::array<uint8_t, 16> id{};
    randombytes_buf(id.data(), id.size());
    s->id = hex(std::string(id.begin(), id.end()));
    s->reservation = std::move(reservation);
    {
      std::lock_guard lock(mu_);
      if (stop_) return {grpc::StatusCode::UNAVAILABLE, "server shutting down"};
      sessions_[s->id] = s;
      ++opened_;
    }
    std::printf("session %s opened (model %s, reserved %s)\n", s->id.c_str(), m.name.c_str(),
                format_bytes(m.reservation).c_str());
    std::fflush(stdout);
    reply->set_session_id(s->id);
    return grpc::Status::OK;
  }

  grpc::Status CloseSession(grpc::ServerContext*, const CloseSessionRequest* req, CloseSessionReply*) override {
    if (!drop(req->session_id(), "closed")) return {grpc::StatusCode::NOT_FOUND, "unknown session"};
    return grpc::Status::OK;
  }

  grpc::Status Infer(grpc::ServerContext*, grpc::ServerReaderWriter<ServerMessage, ClientMessage>* stream) override {
    ClientMessage first;
    if (!stream->Read(&first)) return {grpc::StatusCode::CANCELLED, "client disconnected"};
    if (first.kind_case() != ClientMessage::kStart) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "protocol: Infer must begin with Start"};
    }
    std::shared_ptr<Session> s;
    {
      std::lock_guard lock(mu_);
      auto it = sessions_.find(first.start().session_id());
      if (it == sessions_.end()) {
        return {grpc::StatusCode::NOT_FOUND,
                "unknown or expired session (closed, timed out, or the server restarted): open a new session"};
      }
      s = it->second;
    }
    std::unique_lock run_lock(s->run_mutex, std::try_to_lock);
    if (!run_lock.owns_lock()) return {grpc::StatusCode::FAILED_PRECONDITION, "session busy in another Infer"};
    touch(*s);
    const Model& m = *s->model;
    const std::int64_t batch = first.start().batch();
    if (batch < 1 || batch > m.plan.capacity()) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "batch " + std::to_string(batch) + " outside [1, " + std::to_string(m.plan.capacity()) + "]"};
    }
    runtime::PlainTensor x;  // placeholder: the inputs arrive encrypted
    x.shape = m.g.tensors[static_cast<std::size_t>(m.g.inputs[0])].shape;
    x.batch = batch;
    x.data.assign(static_cast<std::size_t>(model::numel(x.shape) * batch), 0.0);
    RemoteClient remote(stream, m, o_.max_message_mib);
    runtime::EncryptedRunStats stats;
    try {
      s->executor->run(remote, {x}, stats);
    } catch (const StatusError& e) {
      run_lock.unlock();
      drop(s->id, "dropped (" + e.status.error_message() + ")");
      return e.status;
    } catch (const std::exception& e) {
      run_lock.unlock();
      drop(s->id, std::string("dropped (") + e.what() + ")");
      return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    }
    ServerMessage summary;
    RunSummary* rs = summary.mutable_summary();
    rs->set_seconds(stats.seconds);
    const auto& traffic = remote.traffic();
    auto row = [&](const std::string& name, const std::string& op) {
      LayerSummary* l = rs->add_layers();
      l->set_name(name);
      l->set_op(op);
      if (auto t = traffic.find(name); t != traffic.end()) {
        l->set_bytes_to_client(t->second.to_client);
        l->set_bytes_to_server(t->second.to_server);
        l->set_round_trips(static_cast<int>(t->second.round_trips));
      }
      return l;
    };
    row("input", "Input");
    for (const runtime::LayerStats& ls : stats.layers) {
      LayerSummary* l = row(ls.name, ls.op);
      l->set_seconds(ls.seconds);
      l->set_ciphertexts(ls.ciphertexts);
      l->set_level(ls.level);
    }
    row("output", "Output");
    stream->Write(summary);  // best effort: the outputs are already delivered
    touch(*s);
    return grpc::Status::OK;
  }

 private:
  friend struct Reservation;

  /// Reserves m.reservation bytes of the memory limit, waiting up to admission_timeout_s.
  grpc::Status admit(grpc::ServerContext* ctx, const Model& m, std::unique_ptr<Reservation>* out) {
    const std::int64_t r = m.reservation;
    std::unique_lock lock(mu_);
    if (stop_) return {grpc::StatusCode::UNAVAILABLE, "server shutting down"};
    if (r > limit_) {
      ++refused_;
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "model '" + m.name + "' needs " + format_bytes(r) +
                                                        " per session, more than the server's memory limit of " +
                                                        format_bytes(limit_) + " (--memory-limit)"};
    }
    auto busy = [&] {
      ++refused_;
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "server busy: " + std::to_string(o_.max_sessions) +
                                                                    " sessions open (--max-sessions)");
    };
    if (admitted_ >= o_.max_sessions) return busy();
    bool waited = false;
    if (reserved_ + r > limit_) {
      if (waiting_ >= o_.max_sessions) {
        ++refused_;
        return {grpc::StatusCode::RESOURCE_EXHAUSTED,
                "server busy: " + std::to_string(waiting_) + " sessions already waiting for memory"};
      }
      waited = true;
      ++waiting_;
      std::printf("session for model %s waiting for memory (%s reserved of %s, needs %s)\n", m.name.c_str(),
                  format_bytes(reserved_).c_str(), format_bytes(limit_).c_str(), format_bytes(r).c_str());
      std::fflush(stdout);
      const auto end = Clock::now() + std::chrono::seconds(o_.admission_timeout_s);
      while ((reserved_ + r > limit_ || admitted_ >= o_.max_sessions) && !stop_ && !ctx->IsCancelled() &&
             Clock::now() < end) {
        admit_cv_.wait_until(lock, std::min(end, Clock::now() + std::chrono::milliseconds(200)));
      }
      --waiting_;
      if (stop_) return {grpc::StatusCode::UNAVAILABLE, "server shutting down"};
      if (ctx->IsCancelled()) return {grpc::StatusCode::CANCELLED, "client gave up waiting for memory"};
      if (reserved_ + r > limit_) {
        ++refused_;
        return {grpc::StatusCode::RESOURCE_EXHAUSTED,
                "server out of memory for a new session after waiting " + std::to_string(o_.admission_timeout_s) +
                    " s: " + format_bytes(reserved_) + " of the " + format_bytes(limit_) + " limit reserved by " +
                    std::to_string(admitted_) + " sessions, this one needs " + format_bytes(r) + "; retry later"};
      }
      if (admitted_ >= o_.max_sessions) return busy();
    }
    reserved_ += r;
    ++admitted_;
    peak_reserved_ = std::max(peak_reserved_, reserved_);
    if (waited) ++waited_;
    *out = std::unique_ptr<Reservation>(new Reservation{this, r});
    return grpc::Status::OK;
  }

  grpc::Status unknown_model(const std::string& name) const {
    std::string names;
    for (const auto& [n, m] : models_) names += (names.empty() ? "" : ", ") + n;
    return {grpc::StatusCode::NOT_FOUND, "unknown model '" + name + "' (served: " + names + ")"};
  }

  void touch(Session& s) {
    std::lock_guard lock(mu_);
    s.last_used = Clock::now();
  }

  bool drop(const std::string& id, const std::string& why) {
    std::shared_ptr<Session> s;  // destroyed outside the lock (its reservation locks mu_)
    {
      std::lock_guard lock(mu_);
      auto it = sessions_.find(id);
      if (it == sessions_.end()) return false;
      s = std::move(it->second);
      sessions_.erase(it);
      std::printf("session %s %s\n", id.c_str(), why.c_str());
      std::fflush(stdout);
    }
    return true;
  }

  void reap() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      const auto now = Clock::now();
      std::vector<std::shared_ptr<Session>> expired;
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        Session& s = *it->second;
        std::unique_lock busy(s.run_mutex, std::try_to_lock);
        if (busy.owns_lock() && now - s.last_used > std::chrono::seconds(o_.session_timeout_s)) {
          std::printf("session %s expired\n", it->first.c_str());
          std::fflush(stdout);
          busy.unlock();
          expired.push_back(std::move(it->second));
          it = sessions_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      expired.clear();  // releases reservations without holding mu_
      lock.lock();
    }
  }

  void load(const ServedModel& sm) {
    auto m = std::make_unique<Model>();
    m->name = sm.name;
    m->g = model::load_model(sm.path);
    if (m->g.inputs.size() != 1 || m->g.outputs.size() != 1) {
      throw std::runtime_error("model '" + sm.name + "' has " + std::to_string(m->g.inputs.size()) + " inputs and " +
                               std::to_string(m->g.outputs.size()) +
                               " outputs: serve supports one input and one output (the protocol carries one "
                               "input and one output tensor per batch)");
    }
    ModelInfo& info = m->info;
    int rounds = 0;
    for (std::size_t k = 0; k < m->g.nodes.size(); ++k) {
      const model::Node& n = m->g.nodes[k];
      m->node_index[n.name] = static_cast<int>(k);
      switch (plan::node_kind(m->g, n)) {
        case plan::NodeKind::Relu:
        case plan::NodeKind::MaxPool:
        case plan::NodeKind::Clip:
        case plan::NodeKind::LeakyRelu: ++rounds; break;
        case plan::NodeKind::FinalSoftmax: {
          // Applied by the client after decryption, like the embedded executor's client.
          const auto& sp = std::get<model::SoftmaxParams>(n.params);
          info.set_output_function(n.op == model::OpType::Softmax ? SOFTMAX : LOG_SOFTMAX);
          info.add_softmax_dims(sp.outer);
          info.add_softmax_dims(sp.n);
          info.add_softmax_dims(sp.inner);
          break;
        }
        default: break;
      }
    }
    info.set_rounds(rounds);
    info.set_nodes(static_cast<int>(m->g.nodes.size()));
    if (sm.calibration.empty()) {
      throw std::runtime_error("model '" + sm.name + "': needs --calibration " + sm.name + "=X.npy");
    }
    const model::Shape& in_shape = m->g.tensors[static_cast<std::size_t>(m->g.inputs[0])].shape;
    const model::Shape& out_shape = m->g.tensors[static_cast<std::size_t>(m->g.outputs[0])].shape;
    const runtime::NpyArray cal = runtime::read_npy(sm.calibration);
    const model::Shape per_sample(cal.shape.begin() + (cal.shape.empty() ? 0 : 1), cal.shape.end());
    if (cal.shape.empty() || per_sample != in_shape || cal.shape[0] == 0) {
      throw std::runtime_error("calibration '" + sm.calibration + "' has shape " + model::to_string(cal.shape));
    }
    const std::vector<double> v = cal.to_double();
    const auto all = runtime::from_batch_major(std::span<const double>(v), cal.shape[0], in_shape);
    const std::vector<double> ranges = runtime::calibrate_ranges(m->g, {all});
    m->plan = plan::plan_parameters(m->g, ranges, plan::ParameterOptions{});
    m->context = ckks::CKKSContext::create(m->plan.params);
    // A key-switching key has at most key_limb_count() components of 2 polynomials over
    // key_limb_count() limbs of N 8-byte words (+ headers).
    const auto limbs = static_cast<std::int64_t>(m->context->key_limb_count());
    m->max_key_bytes = limbs * limbs * 2 * static_cast<std::int64_t>(m->context->n()) * 8 + (1 << 20);
    m->encrypted = plan::make_plan(m->g, m->plan);
    const plan::FootprintEstimate fe = plan::predict_footprint(m->g, m->encrypted);
    m->reservation = static_cast<std::int64_t>(kFootprintFactor * static_cast<double>(fe.total_bytes())) +
                     fe.key_bytes + 4 * (std::int64_t{o_.max_message_mib} << 20) + kSessionOverhead;
    const auto pb = ckks::to_bytes(m->context->parameters());
    info.set_parameters(std::string(pb.begin(), pb.end()));
    const auto& fp = m->context->fingerprint();
    info.set_fingerprint(std::string(fp.begin(), fp.end()));
    info.set_complex_packing(m->plan.packing == ckks::Packing::Complex);
    info.set_scale_bits(m->plan.scale_bits);
    for (auto d : in_shape) info.add_input_shape(d);
    for (auto d : out_shape) info.add_output_shape(d);
    info.set_input_bound(m->plan.bounds[static_cast<std::size_t>(m->g.inputs[0])]);
    info.set_capacity(m->plan.capacity());
    if (m->plan.packing == ckks::Packing::Complex) {
      info.add_galois_elements(static_cast<uint32_t>(2 * m->context->n() - 1));  // conjugation
    }
    info.set_input_name(m->g.tensors[static_cast<std::size_t>(m->g.inputs[0])].name);
    info.set_description(m->plan.describe());
    info.set_session_reservation(m->reservation);
    info.set_max_key_bytes(m->max_key_bytes);
    std::printf("model %s: %s; predicted footprint %s, session reservation %s\n", sm.name.c_str(),
                m->plan.describe().c_str(), format_bytes(fe.total_bytes()).c_str(),
                format_bytes(m->reservation).c_str());
    if (models_.count(sm.name)) throw std::runtime_error("model name '" + sm.name + "' given twice");
    models_[sm.name] = std::move(m);
  }

  ServerOptions o_;
  std::map<std::string, std::unique_ptr<Model>> models_;  // immutable after construction
  std::int64_t limit_;
  std::mutex mu_;
  std::condition_variable cv_, admit_cv_;
  bool stop_ = false;
  int admitted_ = 0, waiting_ = 0;  // sessions holding / waiting for a reservation
  std::int64_t reserved_ = 0, peak_reserved_ = 0, opened_ = 0, waited_ = 0, refused_ = 0;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::thread reaper_;
};

Reservation::~Reservation() { service->release(bytes); }

}  // namespace

void serve(const ServerOptions& o) {
  if (o.models.empty()) throw std::runtime_error("serve: no --model given");
  // SIGTERM/SIGINT are taken by a dedicated thread (sigwait); every other thread,
  // including gRPC's, inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (o.insecure) {
    std::fprintf(stderr, "WARNING: --insecure: serving without TLS; ciphertexts and keys travel in the clear\n");
    creds = grpc::InsecureServerCredentials();
  } else {
    if (o.tls_cert.empty() || o.tls_key.empty()) {
      throw std::runtime_error("serve: --tls-cert and --tls-key are required (or --insecure)");
    }
    grpc::SslServerCredentialsOptions so(o.client_ca.empty()
                                             ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                             : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    so.pem_key_cert_pairs.push_back({read_file(o.tls_key), read_file(o.tls_cert)});
    if (!o.client_ca.empty()) so.pem_root_certs = read_file(o.client_ca);
    creds = grpc::SslServerCredentials(so);
  }
  Service service(o);
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(o.listen, creds, &port);
  b.RegisterService(&service);
  b.SetMaxReceiveMessageSize(o.max_message_mib << 20);
  b.SetMaxSendMessageSize(o.max_message_mib << 20);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server || port == 0) throw std::runtime_error("serve: cannot listen on " + o.listen);
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  std::printf("listening on %s:%d (%s)\n", host.c_str(), port,
              o.insecure ? "INSECURE" : (o.client_ca.empty() ? "TLS" : "mutual TLS"));
  std::fflush(stdout);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::printf("received %s: shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    std::fflush(stdout);
    service.shutdown();
    // Stops accepting and cancels the calls in flight (their streams fail; sessions drop).
    server->Shutdown(std::chrono::system_clock::now());
  });
  server->Wait();
  waiter.join();
  std::printf("server stopped\n");
  std::fflush(stdout);
}

}  // namespace heinfer::protocol
