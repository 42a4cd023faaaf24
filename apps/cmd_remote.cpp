// `heinfer serve` and `heinfer client`: encrypted inference over gRPC (protocol/remote.h).
#include <CLI/CLI.hpp>
#include <pthread.h>
#include <signal.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>

#include "commands.h"
#include "distributed/mpi_peers.h"
#include "memory/bytes.h"
#include "protocol/remote.h"
#include "model/shape.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"
#include "size_option.h"

namespace heinfer::apps {
namespace {

using memory::format_bytes;

struct ServeCli {
  std::vector<std::string> models, calibrations;
  std::string round_masks = "per-sample";
  std::string privacy = "model";
  bool distributed = false;
  protocol::ServerOptions o;
};

std::pair<std::string, std::string> split_eq(const std::string& s, const char* what) {
  const auto p = s.find('=');
  if (p == std::string::npos || p == 0 || p + 1 == s.size()) {
    throw std::runtime_error(std::string(what) + " '" + s + "': expected NAME=PATH");
  }
  return {s.substr(0, p), s.substr(p + 1)};
}

void serve(ServeCli& c) {
  for (const auto& m : c.models) {
    auto [name, path] = split_eq(m, "--model");
    c.o.models.push_back({name, path, ""});
  }
  for (const auto& s : c.calibrations) {
    auto [name, path] = split_eq(s, "--calibration");
    bool found = false;
    for (auto& m : c.o.models) {
      if (m.name == name) {
        m.calibration = path;
        found = true;
      }
    }
    if (!found) throw std::runtime_error("--calibration " + s + ": no --model named '" + name + "'");
  }
  c.o.round_masks = plan::parse_round_masks(c.round_masks);
  c.o.privacy = plan::parse_privacy(c.privacy);
  if (!c.distributed) return protocol::serve(c.o);
  // Rank 0 speaks gRPC from its handler threads (one at a time): MPI_THREAD_SERIALIZED.
  if (!distributed::MpiPeers::launched()) throw std::runtime_error("--distributed: start heinfer with mpirun -np P");
  // SIGTERM/SIGINT blocked before MPI starts its threads, so that none of them takes the
  // signal: rank 0's server thread waits for it and stops the compute ranks (serve()).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::optional<distributed::MpiPeers> job, compute;  // compute destroyed first
  job.emplace(true);
  if (job->size() < 2) throw std::runtime_error("serve --distributed: needs at least 2 ranks (rank 0 serves, the others compute)");
  compute.emplace(*job, job->rank() == 0 ? 0 : 1);
  c.o.ranks = &*job;
  c.o.compute_ranks = job->rank() == 0 ? nullptr : &*compute;
  try {
    protocol::serve(c.o);
  } catch (const std::exception& e) {
    job->abort(e.what(), 1);  // the other ranks wait for this one: end them all, with the message
  }
}

struct ClientCli {
  protocol::ClientOptions o;
  std::string input, output, labels;
  bool quiet = false;
  bool json = false;
  bool list = false;
};

/// `heinfer client --list`: the served models, one line each (or JSON lines).
void list_models(const ClientCli& c) {
  for (const protocol::ServedModelInfo& m : protocol::list_models(c.o)) {
    if (c.json) {
      nlohmann::json j = {{"model", m.name}, {"input", m.input_name}, {"input_shape", m.input_shape},
                          {"output_shape", m.output_shape}, {"capacity", m.capacity},
                          {"poly_modulus_degree", m.poly_modulus_degree}, {"modulus_bits", m.modulus_bits},
                          {"complex_packing", m.complex_packing}, {"rounds", m.rounds},
                          {"description", m.description}, {"refused", m.refused}};
      std::printf("%s\n", j.dump().c_str());
      continue;
    }
    std::printf("%-20s input %s %s -> %s, %lld samples per batch, %d client-aided rounds\n  %s\n", m.name.c_str(),
                m.input_name.c_str(), model::to_string(m.input_shape).c_str(), model::to_string(m.output_shape).c_str(),
                static_cast<long long>(m.capacity), m.rounds, m.description.c_str());
    if (!m.refused.empty()) std::printf("  refused by this client: %s\n", m.refused.c_str());
  }
}

void client(ClientCli& c) {
  if (c.list) {
    list_models(c);
    return;
  }
  for (const auto& [value, name] : {std::pair{&c.o.model, "--model"}, {&c.input, "--input"}, {&c.output, "--output"}}) {
    if (value->empty()) throw CLI::RequiredError(name);
  }
  const runtime::NpyArray x = runtime::read_npy(c.input);
  if (x.dtype != runtime::NpyDType::Float32 && x.dtype != runtime::NpyDType::Float64) {
    throw std::runtime_error("input '" + c.input + "' must be float32 or float64");
  }
  if (x.shape.empty() || x.shape[0] == 0) throw std::runtime_error("input '" + c.input + "' is empty");
  const std::int64_t count = x.shape[0];
  const std::vector<std::int64_t> per_sample(x.shape.begin() + 1, x.shape.end());
  std::vector<std::int64_t> labels;
  if (!c.labels.empty()) {
    const runtime::NpyArray l = runtime::read_npy(c.labels);
    if (l.shape != std::vector<std::int64_t>{count}) throw std::runtime_error("labels '" + c.labels + "' must be [N]");
    labels = l.to_int64();
  }
  if (c.o.insecure) std::fprintf(stderr, "WARNING: --insecure: connecting without TLS\n");
  if (!c.quiet) {
    c.o.progress = [](const std::string& line) {
      std::fprintf(stderr, "%s\n", line.c_str());
      std::fflush(stderr);
    };
  }
  const protocol::ClientResult r = protocol::run_client(c.o, x.to_double(), per_sample, count);
  if (c.json) {  // machine-readable: one JSON object per layer, then the totals
    for (const auto& l : r.layers) {
      nlohmann::json j = {{"model", c.o.model}, {"layer", l.name}, {"op", l.op}, {"seconds", l.seconds},
                          {"ciphertexts", l.ciphertexts}, {"level", l.level}, {"bytes_to_client", l.bytes_to_client},
                          {"bytes_to_server", l.bytes_to_server}, {"round_trips", l.round_trips}};
      std::printf("%s\n", j.dump().c_str());
    }
    nlohmann::json t = {{"model", c.o.model}, {"layer", "total"}, {"samples", count}, {"seconds", r.seconds},
                        {"server_seconds", r.server_seconds}, {"bytes_sent", r.bytes_sent},
                        {"bytes_received", r.bytes_received}, {"round_trips", r.round_trips}, {"rounds", r.rounds}};
    std::printf("%s\n", t.dump().c_str());
  }
  std::vector<std::int64_t> y_shape{count};
  y_shape.insert(y_shape.end(), r.output_shape.begin(), r.output_shape.end());
  runtime::write_npy(c.output, runtime::make_npy(runtime::NpyDType::Float32, y_shape, r.outputs));
  if (c.json) return;
  std::printf("== remote encrypted inference summary ==\n");
  std::printf("server           %s model %s -> %s\n", c.o.server.c_str(), c.o.model.c_str(), c.output.c_str());
  std::printf("parameters       %s\n", r.description.c_str());
  std::printf("samples          %lld in %lld batch(es)\n", static_cast<long long>(count), static_cast<long long>(r.batches));
  std::printf("total            %.2f s\n", r.seconds);
  std::printf("round trips      %lld (%lld client-aided rounds)\n", static_cast<long long>(r.round_trips),
              static_cast<long long>(r.rounds));
  std::printf("traffic          sent %s, received %s\n", format_bytes(r.bytes_sent).c_str(),
              format_bytes(r.bytes_received).c_str());
  if (!r.layers.empty()) {
    std::printf("per layer (server time %.2f s; bytes = ciphertexts on the wire)\n", r.server_seconds);
    std::printf("  %-28s %-12s %9s %8s %5s %12s %12s %6s\n", "layer", "op", "seconds", "cts", "level", "to client",
                "to server", "trips");
    for (const auto& l : r.layers) {
      std::printf("  %-28s %-12s %9.3f %8lld %5d %12s %12s %6lld\n", l.name.c_str(), l.op.c_str(), l.seconds,
                  static_cast<long long>(l.ciphertexts), l.level, format_bytes(l.bytes_to_client).c_str(),
                  format_bytes(l.bytes_to_server).c_str(), static_cast<long long>(l.round_trips));
    }
  }
  if (!labels.empty()) {
    const std::vector<float> yf(r.outputs.begin(), r.outputs.end());
    const auto pred = runtime::argmax_rows(yf, count, model::numel(r.output_shape));
    const std::int64_t correct = runtime::count_correct(pred, labels);
    std::printf("top-1 accuracy   %.2f%% (%lld/%lld)\n", 100.0 * static_cast<double>(correct) / static_cast<double>(count),
                static_cast<long long>(correct), static_cast<long long>(count));
  }
}

}  // namespace

void register_serve(CLI::App& app) {
  auto c = std::make_shared<ServeCli>();
  CLI::App* sub = app.add_subcommand("serve", "Serve models for encrypted inference over gRPC (TLS)");
  sub->add_option("--model", c->models, "NAME=PATH.onnx (repeatable)")->required();
  sub->add_option("--calibration", c->calibrations,
                  "NAME=X.npy: server-side calibration inputs used to choose the parameters (required per model)");
  sub->add_option("--listen", c->o.listen, "HOST:PORT (port 0: any free port)")->capture_default_str();
  sub->add_option("--tls-cert", c->o.tls_cert, "PEM server certificate chain")->check(CLI::ExistingFile);
  sub->add_option("--tls-key", c->o.tls_key, "PEM server private key")->check(CLI::ExistingFile);
  sub->add_option("--admin-socket", c->o.admin_socket,
                  "Unix socket (created mode 0600) where local administrators reach GetStats; over the network "
                  "GetStats answers mutually authenticated clients only");
  sub->add_option("--client-ca", c->o.client_ca, "PEM CA: require client certificates (mutual TLS)")
      ->check(CLI::ExistingFile);
  sub->add_option("--max-sessions", c->o.max_sessions, "open sessions at most")->check(CLI::PositiveNumber)->capture_default_str();
  add_size_option(sub, "--memory-limit", c->o.memory_limit,
                  "bytes for all sessions together (e.g. 12G, 512MiB; K = 1024); a new session waits or is "
                  "refused beyond it (default: 80% of MemAvailable at start-up)");
  sub->add_option("--admission-timeout", c->o.admission_timeout_s,
                  "seconds a new session may wait for memory before RESOURCE_EXHAUSTED")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--max-message-mib", c->o.max_message_mib, "gRPC message size limit (MiB)")
      ->check(CLI::Range(4, 1024))
      ->capture_default_str();
  sub->add_option("--session-timeout", c->o.session_timeout_s, "seconds of inactivity before a session is freed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--threads", c->o.threads, "OpenMP threads (0: default)")->check(CLI::NonNegativeNumber);
  sub->add_option("--privacy", c->privacy,
                  "what clients may learn: model (Relu and MaxPool evaluated on the server as polynomials; "
                  "clients only refresh uniformly masked ciphertexts and receive flooded outputs; slow) or "
                  "activations (client-aided rounds on masked activations, --round-masks; fast, and a client "
                  "learns about the weights what docs/security.md states)")
      ->check(CLI::IsMember({"model", "activations"}))
      ->capture_default_str();
  sub->add_option("--round-masks", c->round_masks,
                  "--privacy activations: masks of the client rounds: per-sample (a signed factor per sample, real packing) or "
                  "per-window (faster; a client that chooses its batch reads weight ratios); docs/security.md")
      ->check(CLI::IsMember({"per-window", "per-sample"}))
      ->capture_default_str();
  sub->add_flag("--allow-unmasked-rounds", c->o.unmasked_functions,
                "serve models with Sigmoid, Tanh, Softplus, Erf, Exp, Log or Sqrt as client rounds "
                "without masks: their clients see those layers' inputs in the clear (docs/security.md)");
  sub->add_flag("--insecure", c->o.insecure, "serve without TLS (prints a warning)");
  sub->add_flag("--distributed", c->distributed,
                "under `mpirun -np P` (P >= 2): rank 0 serves gRPC, ranks 1..P-1 run every batch in column slabs "
                "of every activation (one batch at a time)");
  sub->callback([c] { serve(*c); });
}

void register_client(CLI::App& app) {
  auto c = std::make_shared<ClientCli>();
  CLI::App* sub = app.add_subcommand("client", "Encrypted inference on a remote `heinfer serve`");
  sub->add_option("--server", c->o.server, "HOST:PORT")->required();
  sub->add_option("--model", c->o.model, "model name on the server (required unless --list)");
  sub->add_option("--input", c->input, "float32 .npy input [N, ...] (required unless --list)")->check(CLI::ExistingFile);
  sub->add_option("--output", c->output, "float32 .npy output, written atomically (required unless --list)");
  sub->add_flag("--list", c->list, "list the models the server serves and exit")->excludes("--model", "--input", "--output");
  sub->add_option("--labels", c->labels, ".npy labels [N]: print top-1 accuracy")->check(CLI::ExistingFile);
  sub->add_option("--tls-ca", c->o.tls_ca, "PEM CA to verify the server (default: system roots)")->check(CLI::ExistingFile);
  sub->add_option("--tls-cert", c->o.tls_cert, "PEM client certificate (mutual TLS)")->check(CLI::ExistingFile);
  sub->add_option("--tls-key", c->o.tls_key, "PEM client key (mutual TLS)")->check(CLI::ExistingFile);
  sub->add_option("--key-dir", c->o.key_dir, "save the secret key (mode 0600) and parameters here");
  sub->add_option("--max-message-mib", c->o.max_message_mib, "gRPC message size limit (MiB)")
      ->check(CLI::Range(4, 1024))
      ->capture_default_str();
  sub->add_option("--connect-timeout", c->o.connect_timeout_s, "seconds")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_flag("--insecure", c->o.insecure, "connect without TLS");
  sub->add_flag("--quiet", c->quiet, "no per-round progress on stderr");
  sub->add_flag("--json", c->json, "print the per-layer summary as JSON lines instead of the table");
  sub->callback([c] { client(*c); });
}

}  // namespace heinfer::apps
