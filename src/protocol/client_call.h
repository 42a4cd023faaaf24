// Internal to the client: the channel to a server, errors of a call, and cancelling the
// call in flight (remote.h: ClientOptions::cancel).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"

namespace heinfer::protocol {

/// A stub on a channel to o.server: TLS with o.tls_ca (or the system's roots) and the
/// client certificate if given, or plaintext if o.insecure; messages up to
/// o.max_message_mib. Throws std::runtime_error when a PEM file cannot be read.
std::unique_ptr<Inference::Stub> make_stub(const ClientOptions& o);

/// Throws std::runtime_error "`what` on `server` failed: CODE: message" (with a hint for
/// UNAVAILABLE: unreachable server or failed TLS handshake).
[[noreturn]] void rpc_error(const std::string& what, const std::string& server, const grpc::Status& s);

/// Cancels the RPC in flight when the flag is set (polled every 20 ms by a thread of its
/// own: a blocking Read cannot poll). With a null flag: no thread, never cancelled.
class CancelWatch {
 public:
  explicit CancelWatch(const std::atomic<bool>* flag);
  /// The RPC of `ctx` is in flight until the next attach or detach.
  void attach(grpc::ClientContext* ctx);
  void detach() { attach(nullptr); }
  /// attach(ctx) for the guard's lifetime: declared right after the context, it detaches
  /// before the context is destroyed, whichever way the scope is left (an exception
  /// between attach and detach would leave the watcher a dangling context).
  class Scope {
   public:
    Scope(CancelWatch& watch, grpc::ClientContext* ctx) : watch_(watch) { watch_.attach(ctx); }
    ~Scope() { watch_.detach(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CancelWatch& watch_;
  };
  bool cancelled() const { return flag_ && flag_->load(); }
  /// Throws ClientCancelled ("cancelled during `during`") if the flag is set.
  void check(const std::string& during) const;
  /// A failed call: ClientCancelled if the flag is set, else rpc_error.
  [[noreturn]] void fail(const std::string& what, const std::string& server, const grpc::Status& s) const;

 private:
  const std::atomic<bool>* flag_;
  std::mutex mu_;
  grpc::ClientContext* ctx_ = nullptr;
  std::jthread thread_;  // last: stopped and joined first
};

}  // namespace heinfer::protocol
