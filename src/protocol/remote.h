// `heinfer serve` / `heinfer client`: client-aided encrypted inference over gRPC
// (protocol in src/protocol/heinfer.proto; roles and leakage in runtime/client.h).
//
// Server: loads each model, calibrates ranges on a server-side calibration set
// (--calibration NAME=X.npy) and chooses parameters with runtime::plan_parameters.
// GetModelInfo reveals to anyone who can connect: the parameters (N, primes; hence the
// model's multiplicative depth), packing, scale, input/output shapes, the input bound
// and the Galois elements needed. Per-tensor bounds stay on the server; the bound of
// each client-aided round is sent with that round (the client checks decoded values).
// OpenSession takes the public evaluation keys only (relinearization + the Galois keys
// listed by GetModelInfo); they and every ciphertext are loaded with the validating
// loaders of ckks/serialization.h against the model's context, so an object with
// another fingerprint is rejected (INVALID_ARGUMENT naming the object). Secret keys are
// never accepted (the loaders refuse the SecretKey object type).
//
// Limits: at most max_sessions open sessions (RESOURCE_EXHAUSTED beyond); every gRPC
// message <= max_message_mib (ciphertext batches are split into chunks of about a
// quarter of that); a session is freed on CloseSession, when its Infer stream fails or
// is cancelled (client disconnect), and after session_timeout_s without activity.
// Errors: NOT_FOUND (unknown model/session), INVALID_ARGUMENT (bad keys/ciphertexts,
// protocol violations), RESOURCE_EXHAUSTED, CANCELLED/UNAVAILABLE (peer gone).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace heinfer::protocol {

struct ServedModel {
  std::string name;         ///< the name clients ask for
  std::string path;         ///< ONNX file
  std::string calibration;  ///< .npy calibration inputs (server side)
};

struct ServerOptions {
  std::vector<ServedModel> models;
  std::string listen = "127.0.0.1:50051";  ///< port 0: any free port (printed)
  std::string tls_cert, tls_key;           ///< PEM files (required unless insecure)
  std::string client_ca;                   ///< PEM: require and verify client certificates
  bool insecure = false;                   ///< plaintext (prints a warning)
  int max_sessions = 8;
  int max_message_mib = 64;
  int session_timeout_s = 600;
  int threads = 0;  ///< OpenMP threads for the executor (0: default)
};

/// Runs the server until the process is killed. Prints "listening on HOST:PORT" (the
/// bound port) on stdout once ready. Throws std::runtime_error on bad options/models.
void serve(const ServerOptions& options);

struct ClientOptions {
  std::string server;       ///< HOST:PORT
  std::string model;
  std::string tls_ca;       ///< PEM roots to verify the server ("" : system roots)
  std::string tls_cert, tls_key;  ///< client certificate for mutual TLS (optional)
  std::string key_dir;      ///< if set: secret key saved there (mode 0600) + params
  bool insecure = false;
  int max_message_mib = 64;
  int connect_timeout_s = 20;
};

struct ClientResult {
  std::vector<double> outputs;      ///< batch-major
  std::vector<std::int64_t> output_shape;  ///< per sample
  std::int64_t bytes_sent = 0, bytes_received = 0;  ///< protobuf message bytes
  std::int64_t rounds = 0;          ///< client-aided rounds (all batches)
  std::int64_t round_trips = 0;     ///< rounds + one input->output exchange per batch
  std::int64_t batches = 0;
  std::string description;          ///< the server's plan
  double seconds = 0;
};

/// Connects, runs `count` samples (batch-major `inputs`, per-sample shape checked against
/// the model) in batches of the ciphertext capacity, decrypts. Throws std::runtime_error
/// with the gRPC status on failure (unreachable server, TLS failure, rejection).
ClientResult run_client(const ClientOptions& options, const std::vector<double>& inputs,
                        const std::vector<std::int64_t>& per_sample_shape, std::int64_t count);

}  // namespace heinfer::protocol
