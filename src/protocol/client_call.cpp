#include "protocol/client_call.h"

#include <chrono>
#include <stdexcept>

#include "protocol/wire.h"

namespace heinfer::protocol {
namespace {

const char* code_name(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    default: return "ERROR";
  }
}

}  // namespace

std::unique_ptr<Inference::Stub> make_stub(const ClientOptions& o) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (o.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions so;
    if (!o.tls_ca.empty()) so.pem_root_certs = read_text_file(o.tls_ca);
    if (!o.tls_cert.empty()) {
      so.pem_cert_chain = read_text_file(o.tls_cert);
      so.pem_private_key = read_text_file(o.tls_key);
    }
    creds = grpc::SslCredentials(so);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(o.max_message_mib << 20);
  args.SetMaxSendMessageSize(o.max_message_mib << 20);
  return Inference::NewStub(grpc::CreateCustomChannel(o.server, creds, args));
}

void rpc_error(const std::string& what, const std::string& server, const grpc::Status& s) {
  std::string hint;
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    hint = " (server unreachable, stopped, or TLS handshake failed: check --server, --tls-ca, --insecure)";
  }
  throw std::runtime_error(what + " on " + server + " failed: " + code_name(s.error_code()) + ": " +
                           s.error_message() + hint);
}

CancelWatch::CancelWatch(const std::atomic<bool>* flag) : flag_(flag) {
  if (!flag_) return;
  thread_ = std::jthread([this](std::stop_token stop) {
    while (!stop.stop_requested()) {
      if (flag_->load()) {
        std::lock_guard lock(mu_);
        if (ctx_) ctx_->TryCancel();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
}

void CancelWatch::attach(grpc::ClientContext* ctx) {
  std::lock_guard lock(mu_);
  ctx_ = ctx;
}

void CancelWatch::check(const std::string& during) const {
  if (cancelled()) throw ClientCancelled("cancelled during " + during);
}

void CancelWatch::fail(const std::string& what, const std::string& server, const grpc::Status& s) const {
  check(what);
  rpc_error(what, server, s);
}

}  // namespace heinfer::protocol
