// The gRPC client of `heinfer client` (remote.h): discovery, one-shot runs, and the
// OpenSession stream (the session itself: remote_session.cpp).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <set>
#include <stdexcept>

#include "protocol/client_call.h"
#include "protocol/client_checks.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"
#include "protocol/wire.h"

namespace heinfer::protocol {

grpc::Status open_session(Inference::Stub& stub, grpc::ClientContext& ctx, const std::string& model,
                          const std::string& fingerprint, const std::string& relin, const std::string& galois,
                          std::size_t budget, std::string* id, std::int64_t* bytes_sent,
                          const std::string& public_key) {
  OpenSessionReply reply;
  auto writer = stub.OpenSession(&ctx, &reply);
  std::int64_t sent = 0;
  OpenSessionChunk c;
  OpenSessionHeader* h = c.mutable_header();
  h->set_model(model);
  h->set_fingerprint(fingerprint);
  h->set_relin_bytes(static_cast<std::int64_t>(relin.size()));
  h->set_galois_bytes(static_cast<std::int64_t>(galois.size()));
  h->set_public_key_bytes(static_cast<std::int64_t>(public_key.size()));
  bool ok = writer->Write(c);
  sent += static_cast<std::int64_t>(c.ByteSizeLong());
  for (const std::string* part : {&relin, &galois, &public_key}) {
    for (std::size_t off = 0; ok && off < part->size(); off += budget) {
      c.set_keys(part->substr(off, budget));
      ok = writer->Write(c);
      sent += static_cast<std::int64_t>(c.ByteSizeLong());
    }
  }
  if (ok) writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (bytes_sent) *bytes_sent += sent + static_cast<std::int64_t>(reply.ByteSizeLong());
  if (s.ok()) *id = reply.session_id();
  return s;
}

std::vector<ServedModelInfo> list_models(const ClientOptions& o) {
  CancelWatch watch(o.cancel);
  auto stub = make_stub(o);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o.connect_timeout_s));
  ModelList reply;
  grpc::Status s;
  {
    const CancelWatch::Scope in_flight(watch, &ctx);
    s = stub->ListModels(&ctx, ListModelsRequest(), &reply);
  }
  if (!s.ok()) watch.fail("ListModels", o.server, s);
  if (reply.models_size() > 4096) throw std::runtime_error("protocol: ListModels announced more than 4,096 models");
  std::vector<ServedModelInfo> out;
  std::set<std::string> names;
  auto shape = [](const auto& dims, const std::string& what) {
    if (dims.empty() || dims.size() > 8) throw std::runtime_error("protocol: " + what + " has " + std::to_string(dims.size()) + " dimensions");
    for (std::int64_t d : dims) {
      if (d < 1 || d > (std::int64_t{1} << 31)) throw std::runtime_error("protocol: " + what + " has an extent " + std::to_string(d));
    }
    return std::vector<std::int64_t>(dims.begin(), dims.end());
  };
  for (const ListedModel& m : reply.models()) {
    if (m.name().empty() || m.name().size() > 256 || !names.insert(m.name()).second) {
      throw std::runtime_error("protocol: ListModels gave an empty, overlong or repeated model name");
    }
    const ModelInfo& info = m.info();
    ServedModelInfo l;
    l.name = m.name();
    l.input_name = info.input_name();
    l.input_shape = shape(info.input_shape(), "the input shape of '" + m.name() + "'");
    l.output_shape = shape(info.output_shape(), "the output shape of '" + m.name() + "'");
    l.capacity = info.capacity();
    l.complex_packing = info.complex_packing();
    l.rounds = info.rounds();
    l.description = info.description();
    try {
      const ckks::ContextPtr context = accepted_parameters(info.parameters(), info.fingerprint());
      l.poly_modulus_degree = static_cast<std::int64_t>(context->parameters().poly_modulus_degree());
      l.modulus_bits = static_cast<int>(std::lround(context->log2_qp()));
    } catch (const std::exception& e) {
      l.refused = e.what();
    }
    out.push_back(std::move(l));
  }
  return out;
}

ClientResult run_client(const ClientOptions& o, const std::vector<double>& inputs,
                        const std::vector<std::int64_t>& per_sample_shape, std::int64_t count) {
  const auto t0 = std::chrono::steady_clock::now();
  RemoteSession session(o);
  ClientResult res = session.infer(inputs, per_sample_shape, count);
  session.close();
  res.bytes_sent += session.open_bytes_sent();
  res.bytes_received += session.open_bytes_received();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace heinfer::protocol
