// The gRPC server of `heinfer serve` (remote.h describes the protocol and its limits).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ckks/serialization.h"
#include "model/load.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"
#include "protocol/wire.h"
#include "runtime/encrypted_executor.h"
#include "runtime/npy.h"
#include "runtime/parameter_selection.h"
#include <sodium.h>

namespace heinfer::protocol {

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

namespace {

using Clock = std::chrono::steady_clock;

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
  runtime::EncryptionPlan plan;
  ckks::ContextPtr context;
  ModelInfo info;
};

struct Session {
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
  RemoteClient(grpc::ServerReaderWriter<ServerMessage, ClientMessage>* stream, const Model& m, int max_mib)
      : stream_(stream), m_(m), budget_(chunk_budget(max_mib)) {}

  std::int64_t capacity() const override { return m_.plan.capacity(); }

  std::vector<ckks::Ciphertext> encrypt(const runtime::PlainTensor& x, const std::string&, double) override {
    auto cts = receive(ClientMessage::kInput, "input");
    if (static_cast<std::int64_t>(cts.size()) != model::numel(x.shape)) {
      fail(grpc::StatusCode::INVALID_ARGUMENT, "input: expected " + std::to_string(model::numel(x.shape)) +
                                                   " ciphertexts, got " + std::to_string(cts.size()));
    }
    return cts;
  }

  std::vector<ckks::Ciphertext> round(const runtime::RoundRequest& r) override {
    ++rounds_;
    ServerMessage msg;
    std::size_t bytes = 0;
    auto* rr = msg.mutable_round();
    auto reset = [&] {
      rr->set_round(rounds_);
      rr->set_layer(r.layer);
      rr->set_function(static_cast<int>(r.function));
      rr->set_bound(r.bound);
    };
    reset();
    for (const auto& w : r.windows) {
      auto* pw = rr->add_windows();
      for (const ckks::Ciphertext* ct : w) {
        pw->add_ciphertexts(ct_bytes(*ct, *m_.context));
        bytes += pw->ciphertexts().rbegin()->size();
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
    auto reply = receive(ClientMessage::kRoundReply, "round reply of " + r.layer);
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

  std::vector<ckks::Ciphertext> receive(ClientMessage::KindCase kind, const std::string& what) {
    std::vector<ckks::Ciphertext> out;
    ClientMessage msg;
    for (;;) {
      if (!stream_->Read(&msg)) fail(grpc::StatusCode::CANCELLED, "client disconnected during " + what);
      if (msg.kind_case() != kind) fail(grpc::StatusCode::INVALID_ARGUMENT, "protocol: unexpected message during " + what);
      const CiphertextChunk& c = kind == ClientMessage::kInput ? msg.input() : msg.round_reply();
      for (const std::string& b : c.ciphertexts()) {
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
};

class Service final : public Inference::Service {
 public:
  explicit Service(const ServerOptions& o) : o_(o) {
    for (const ServedModel& sm : o.models) load(sm);
    reaper_ = std::thread([this] { reap(); });
  }
  ~Service() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    reaper_.join();
  }

  grpc::Status GetModelInfo(grpc::ServerContext*, const ModelInfoRequest* req, ModelInfo* reply) override {
    auto it = models_.find(req->model());
    if (it == models_.end()) return unknown_model(req->model());
    *reply = it->second->info;
    return grpc::Status::OK;
  }

  grpc::Status OpenSession(grpc::ServerContext*, const OpenSessionRequest* req, OpenSessionReply* reply) override {
    auto it = models_.find(req->model());
    if (it == models_.end()) return unknown_model(req->model());
    const Model& m = *it->second;
    const auto& fp = m.context->fingerprint();
    if (req->fingerprint() != std::string(fp.begin(), fp.end())) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "parameter fingerprint " + hex(req->fingerprint()) + " does not match model '" + m.name + "' (" +
                  hex(std::string(fp.begin(), fp.end())) + "); call GetModelInfo again"};
    }
    auto s = std::make_shared<Session>();
    s->model = &m;
    auto span = [](const std::string& b) {
      return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size());
    };
    try {
      s->keys.relin = ckks::load_relin_keys(span(req->relin_keys()), *m.context);
    } catch (const ckks::SerializationError& e) {
      return {grpc::StatusCode::INVALID_ARGUMENT, std::string("relinearization keys rejected: ") + e.what()};
    }
    if (m.plan.packing == runtime::Packing::Complex || !req->galois_keys().empty()) {
      try {
        s->keys.galois = ckks::load_galois_keys(span(req->galois_keys()), *m.context);
      } catch (const ckks::SerializationError& e) {
        return {grpc::StatusCode::INVALID_ARGUMENT, std::string("Galois keys rejected: ") + e.what()};
      }
    }
    runtime::EncryptedRunOptions ro;
    ro.threads = o_.threads;
    s->executor = std::make_unique<runtime::EncryptedExecutor>(m.g, m.plan, m.context, s->keys, ro);
    std::array<uint8_t, 16> id{};
    randombytes_buf(id.data(), id.size());
    s->id = hex(std::string(id.begin(), id.end()));
    {
      std::lock_guard lock(mu_);
      if (static_cast<int>(sessions_.size()) >= o_.max_sessions) {
        return {grpc::StatusCode::RESOURCE_EXHAUSTED,
                "server busy: " + std::to_string(o_.max_sessions) + " sessions open (--max-sessions)"};
      }
      sessions_[s->id] = s;
    }
    std::printf("session %s opened (model %s)\n", s->id.c_str(), m.name.c_str());
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
      if (it == sessions_.end()) return {grpc::StatusCode::NOT_FOUND, "unknown or expired session"};
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
    try {
      runtime::EncryptedRunStats stats;
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
    touch(*s);
    return grpc::Status::OK;
  }

 private:
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
    std::lock_guard lock(mu_);
    if (!sessions_.erase(id)) return false;
    std::printf("session %s %s\n", id.c_str(), why.c_str());
    std::fflush(stdout);
    return true;
  }

  void reap() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      const auto now = Clock::now();
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        Session& s = *it->second;
        std::unique_lock busy(s.run_mutex, std::try_to_lock);
        if (busy.owns_lock() && now - s.last_used > std::chrono::seconds(o_.session_timeout_s)) {
          std::printf("session %s expired\n", it->first.c_str());
          std::fflush(stdout);
          busy.unlock();
          it = sessions_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  void load(const ServedModel& sm) {
    auto m = std::make_unique<Model>();
    m->name = sm.name;
    m->g = model::load_model(sm.path);
    if (m->g.inputs.size() != 1 || m->g.outputs.size() != 1) {
      throw std::runtime_error("model '" + sm.name + "': serve supports one input and one output");
    }
    for (const auto& n : m->g.nodes) {
      if (runtime::encrypted_node_kind(m->g, n) == runtime::EncryptedNodeKind::FinalSoftmax) {
        throw std::runtime_error("model '" + sm.name + "': a final Softmax is not supported by serve yet");
      }
    }
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
    m->plan = runtime::plan_parameters(m->g, ranges, runtime::PlanOptions{});
    m->context = ckks::CKKSContext::create(m->plan.params);
    ModelInfo& info = m->info;
    const auto pb = ckks::to_bytes(m->context->parameters());
    info.set_parameters(std::string(pb.begin(), pb.end()));
    const auto& fp = m->context->fingerprint();
    info.set_fingerprint(std::string(fp.begin(), fp.end()));
    info.set_complex_packing(m->plan.packing == runtime::Packing::Complex);
    info.set_scale_bits(m->plan.scale_bits);
    for (auto d : in_shape) info.add_input_shape(d);
    for (auto d : out_shape) info.add_output_shape(d);
    info.set_input_bound(m->plan.bounds[static_cast<std::size_t>(m->g.inputs[0])]);
    info.set_capacity(m->plan.capacity());
    if (m->plan.packing == runtime::Packing::Complex) {
      info.add_galois_elements(static_cast<uint32_t>(2 * m->context->n() - 1));  // conjugation
    }
    info.set_input_name(m->g.tensors[static_cast<std::size_t>(m->g.inputs[0])].name);
    info.set_description(m->plan.describe());
    std::printf("model %s: %s\n", sm.name.c_str(), m->plan.describe().c_str());
    if (models_.count(sm.name)) throw std::runtime_error("model name '" + sm.name + "' given twice");
    models_[sm.name] = std::move(m);
  }

  ServerOptions o_;
  std::map<std::string, std::unique_ptr<Model>> models_;  // immutable after construction
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::thread reaper_;
};

}  // namespace

void serve(const ServerOptions& o) {
  if (o.models.empty()) throw std::runtime_error("serve: no --model given");
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
  server->Wait();
}

}  // namespace heinfer::protocol
