// The gRPC server of `heinfer serve` (remote.h describes the protocol and its limits).
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <string>
#include <vector>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "ckks/serialization.h"
#include "memory/bytes.h"
#include "memory/process_memory.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/rank_gateway.h"
#include "protocol/remote.h"
#include "protocol/remote_client.h"
#include "protocol/served_model.h"
#include "protocol/server_checks.h"
#include "protocol/status_error.h"
#include "protocol/wire.h"
#include "runtime/encrypted_executor.h"
#include <sodium.h>

namespace heinfer::protocol {

using memory::format_bytes;

std::int64_t default_memory_limit() {
  try {
    return static_cast<std::int64_t>(static_cast<double>(memory::mem_available_bytes()) * 0.8);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + ": give --memory-limit");
  }
}

namespace {

using Clock = std::chrono::steady_clock;



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
  // serve --distributed: the checked keys as received, for the compute ranks (no executor here).
  std::string rank_keys;
  std::int64_t relin_bytes = 0, public_key_bytes = 0;
  Clock::time_point last_used = Clock::now();
  std::mutex run_mutex;  // one Infer at a time per session
};

class Service final : public Inference::Service {
 public:
  Service(const ServerOptions& o, std::map<std::string, std::unique_ptr<Model>> models)
      : o_(o), models_(std::move(models)), limit_(o.memory_limit > 0 ? o.memory_limit : default_memory_limit()) {
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

  grpc::Status ListModels(grpc::ServerContext*, const ListModelsRequest*, ModelList* reply) override {
    for (const auto& [name, m] : models_) {  // std::map: sorted by name
      ListedModel* l = reply->add_models();
      l->set_name(name);
      *l->mutable_info() = m->info;
    }
    return grpc::Status::OK;
  }

  grpc::Status GetModelInfo(grpc::ServerContext*, const ModelInfoRequest* req, ModelInfo* reply) override {
    auto it = models_.find(req->model());
    if (it == models_.end()) return unknown_model(req->model());
    *reply = it->second->info;
    return grpc::Status::OK;
  }

  grpc::Status GetStats(grpc::ServerContext* ctx, const StatsRequest*, ServerStats* reply) override {
    // The server's load is for its administrators: the local admin socket, or a client
    // whose certificate the server verified (mutual TLS).
    const bool local = ctx->peer().rfind("unix:", 0) == 0;
    const auto auth = ctx->auth_context();
    if (!local && !(auth && auth->IsPeerAuthenticated())) {
      return {grpc::StatusCode::PERMISSION_DENIED,
              "GetStats answers the admin socket (--admin-socket) and mutually authenticated clients (--client-ca) "
              "only"};
    }
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
    const SessionRequirements need = session_requirements(m);
    try {
      check_session_header(h, need);
    } catch (const StatusError& e) {
      return e.status;
    }
    std::unique_ptr<Reservation> reservation;
    if (grpc::Status st = admit(ctx, m, &reservation); !st.ok()) return st;
    // The keys, in chunks (bounded by the declared sizes).
    const auto total = static_cast<std::size_t>(h.relin_bytes() + h.galois_bytes() + h.public_key_bytes());
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
    try {
      s->keys = load_session_keys(keys, h.relin_bytes(), need, h.public_key_bytes());
    } catch (const StatusError& e) {
      return e.status;
    }
    if (o_.ranks) {  // the compute ranks load them again for every batch
      s->keys = {};
      s->rank_keys = std::move(keys);
      s->relin_bytes = h.relin_bytes();
      s->public_key_bytes = h.public_key_bytes();
    } else {
      keys.clear();
      keys.shrink_to_fit();
      runtime::EncryptedRunOptions ro;
      ro.threads = o_.threads;
      s->executor = std::make_unique<runtime::EncryptedExecutor>(m.g, m.encrypted, m.context, s->keys, ro);
    }
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
    try {
      check_batch(batch, m.plan.capacity());
    } catch (const StatusError& e) {
      return e.status;
    }
    RemoteClient remote(stream, m, o_.max_message_mib, batch);
    runtime::EncryptedRunStats stats;
    try {
      if (o_.ranks) {
        RankCommand cmd;
        cmd.set_model(m.name);
        cmd.set_batch(batch);
        cmd.set_keys(s->rank_keys);
        cmd.set_relin_bytes(s->relin_bytes);
        cmd.set_public_key_bytes(s->public_key_bytes);
        std::lock_guard ranks_lock(ranks_mu_);  // one batch on the ranks at a time
        run_batch_on_ranks(*o_.ranks, m, cmd, remote, stats);
      } else {
        s->executor->run(remote, stats);
      }
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



  ServerOptions o_;
  std::map<std::string, std::unique_ptr<Model>> models_;  // immutable after construction
  std::int64_t limit_;
  std::mutex mu_;
  std::condition_variable cv_, admit_cv_;
  bool stop_ = false;
  int admitted_ = 0, waiting_ = 0;  // sessions holding / waiting for a reservation
  std::int64_t reserved_ = 0, peak_reserved_ = 0, opened_ = 0, waited_ = 0, refused_ = 0;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::mutex ranks_mu_;  // serve --distributed: MPI is called by one thread at a time
  std::thread reaper_;
};

Reservation::~Reservation() { service->release(bytes); }

/// Every served model, prepared (with the compute ranks' round schedule when distributed).
std::map<std::string, std::unique_ptr<Model>> prepare_models(const ServerOptions& o) {
  std::map<std::string, std::unique_ptr<Model>> models;
  const int compute = o.ranks ? o.ranks->size() - 1 : 1;
  for (const ServedModel& sm : o.models) {
    if (models.count(sm.name)) throw std::runtime_error("model name '" + sm.name + "' given twice");
    models[sm.name] = prepare_served_model(sm, o.max_message_mib, o.round_masks, o.unmasked_functions, o.privacy, compute);
  }
  return models;
}

/// serve --distributed: every rank must have prepared rank 0's models (the same files,
/// calibration and options give the same plans); throws std::runtime_error on every
/// rank otherwise.
void check_same_models(runtime::Peers& ranks, const std::map<std::string, std::unique_ptr<Model>>& models) {
  std::string mine;
  for (const auto& [name, m] : models) mine += name + '\0' + m->info.SerializeAsString();
  std::vector<std::uint8_t> rank0(mine.begin(), mine.end());
  ranks.broadcast(rank0);
  const auto same = ranks.all_gather(std::string(rank0.begin(), rank0.end()) == mine ? 1 : 0);
  std::string differ;
  for (std::size_t r = 0; r < same.size(); ++r) {
    if (!same[r]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!differ.empty()) {  // on every rank: none starts serving
    throw std::runtime_error("serve --distributed: the models of rank(s) " + differ +
                             " differ from rank 0's (other files, calibration sets or options)");
  }
}

}  // namespace

void serve(const ServerOptions& o) {
  if (o.models.empty()) throw std::runtime_error("serve: no --model given");
  if (o.ranks && (o.ranks->size() < 2 || (o.ranks->rank() != 0 && !o.compute_ranks))) {
    throw std::invalid_argument("serve: distributed serving needs at least 2 ranks and the compute ranks' group");
  }
  // SIGTERM/SIGINT are taken by a dedicated thread (sigwait); every other thread,
  // including gRPC's, inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::shared_ptr<grpc::ServerCredentials> creds;  // rank 0's (options checked before the models load)
  const bool compute_rank = o.ranks && o.ranks->rank() != 0;
  if (!compute_rank && o.insecure) {
    // Without TLS anyone on the path reads and rewrites the traffic: loopback only.
    const std::string host = o.listen.substr(0, o.listen.rfind(':'));
    if (host != "127.0.0.1" && host != "localhost" && host != "[::1]" && host != "::1") {
      throw std::runtime_error("serve: --insecure listens on loopback addresses only (127.0.0.1, [::1], localhost), "
                               "not on '" + host + "'; use TLS (--tls-cert, --tls-key) to serve other hosts");
    }
    std::fprintf(stderr, "WARNING: --insecure: serving without TLS; ciphertexts and keys travel in the clear\n");
    creds = grpc::InsecureServerCredentials();
  } else if (!compute_rank) {
    if (o.tls_cert.empty() || o.tls_key.empty()) {
      throw std::runtime_error("serve: --tls-cert and --tls-key are required (or --insecure)");
    }
    grpc::SslServerCredentialsOptions so(o.client_ca.empty()
                                             ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                             : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    so.pem_key_cert_pairs.push_back({read_text_file(o.tls_key), read_text_file(o.tls_cert)});
    if (!o.client_ca.empty()) so.pem_root_certs = read_text_file(o.client_ca);
    creds = grpc::SslServerCredentials(so);
  }
  // Distributed: a compute rank leaves SIGTERM/SIGINT (mpirun forwards them to every
  // rank) blocked and stops when rank 0, which takes them, tells it to.
  auto models = prepare_models(o);
  if (o.ranks) check_same_models(*o.ranks, models);
  if (compute_rank) {
    serve_as_compute_rank(*o.ranks, *o.compute_ranks, models, o.threads);
    return;
  }
  Service service(o, std::move(models));
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(o.listen, creds, &port);
  if (!o.admin_socket.empty()) {
    ::unlink(o.admin_socket.c_str());  // a stale socket of an earlier run
    b.AddListeningPort("unix:" + o.admin_socket, grpc::InsecureServerCredentials());
  }
  b.RegisterService(&service);
  b.SetMaxReceiveMessageSize(o.max_message_mib << 20);
  b.SetMaxSendMessageSize(o.max_message_mib << 20);
  // The admin socket is created owner-only from the start (no window before the chmod).
  const mode_t old_mask = ::umask(077);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  ::umask(old_mask);
  if (!server || port == 0) throw std::runtime_error("serve: cannot listen on " + o.listen);
  if (!o.admin_socket.empty() && ::chmod(o.admin_socket.c_str(), 0600) != 0) {
    throw std::runtime_error("serve: cannot restrict the admin socket '" + o.admin_socket + "' to its owner");
  }
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
  if (o.ranks) stop_compute_ranks(*o.ranks);  // no batch runs: every handler has returned
  std::printf("server stopped\n");
  std::fflush(stdout);
}

}  // namespace heinfer::protocol
