// `heinfer serve` / `heinfer client`: client-aided encrypted inference over gRPC
// (protocol in src/protocol/heinfer.proto; roles and leakage in runtime/client.h).
//
// Server: loads each model, calibrates ranges on a server-side calibration set
// (--calibration NAME=X.npy) and chooses parameters with plan::plan_parameters.
// GetModelInfo (and ListModels, for every served model with its name) reveals to
// anyone who can connect: the parameters (N, primes; hence the
// model's multiplicative depth), packing, scale, input/output shapes, the input bound
// and the Galois elements needed. Per-tensor bounds stay on the server; the bound of
// each client-aided round is sent with that round (the client checks decoded values).
// OpenSession takes the public evaluation keys only (relinearization + the Galois keys
// listed by GetModelInfo); they and every ciphertext are loaded with the validating
// loaders of ckks/serialization.h against the model's context, so an object with
// another fingerprint is rejected (INVALID_ARGUMENT naming the object). Secret keys are
// never accepted (the loaders refuse the SecretKey object type).
//
// Memory admission: each session reserves an upper bound of its resident memory
// (ModelInfo.session_reservation: plan::predict_footprint of the model times a
// calibrated factor plus a fixed per-session overhead; docs/remote_inference.md). The sum
// of reservations never exceeds memory_limit: a new session waits in OpenSession (before
// its keys are read) up to admission_timeout_s for running sessions to finish, then is
// refused with RESOURCE_EXHAUSTED; a session that alone exceeds the limit is refused at
// once. Limits: at most max_sessions open sessions (RESOURCE_EXHAUSTED beyond); every gRPC
// message <= max_message_mib (ciphertext batches are split into chunks of about a
// quarter of that); a session is freed on CloseSession, when its Infer stream fails or
// is cancelled (client disconnect), and after session_timeout_s without activity.
// A model ending in Softmax/LogSoftmax is served: the client applies it after decryption
// (ModelInfo.output_function). Models with several inputs or outputs are refused at
// start-up. Keys arrive in an OpenSession client stream of 1 MiB chunks.
// Errors: NOT_FOUND (unknown model/session), INVALID_ARGUMENT (bad keys/ciphertexts,
// protocol violations), RESOURCE_EXHAUSTED, CANCELLED/UNAVAILABLE (peer gone, shutdown).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "plan/parameters.h"
#include "runtime/peers.h"

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
  bool insecure = false;                   ///< plaintext (prints a warning; loopback only)
  /// Unix socket path for local administration ("" : none): GetStats answers calls on it,
  /// and over the network only mutually authenticated clients (client_ca set).
  std::string admin_socket;
  int max_sessions = 8;
  std::int64_t memory_limit = 0;  ///< bytes for all sessions; 0: 80% of MemAvailable at start-up
  int admission_timeout_s = 120;  ///< longest wait of a new session for memory (0: refuse at once)
  int max_message_mib = 64;
  int session_timeout_s = 600;
  int threads = 0;  ///< OpenMP threads for the executor (0: default)
  /// Masks of the client rounds (plan/parameters.h). Per-sample (the default) uses real
  /// packing; per-window lets a client that chooses its batch read weight ratios.
  plan::RoundMasks round_masks = plan::RoundMasks::PerSample;
  /// Whether models may contain unmasked rounds (plan::Parameters::unmasked_functions):
  /// their clients see the inputs of those layers in the clear.
  bool unmasked_functions = false;
  /// Model: Relu and MaxPool evaluated on the server, the client only refreshing blindly
  /// masked ciphertexts and receiving flooded outputs (docs/security.md, claims 9 and
  /// 10); its sessions carry the client's public key. Activations: client-aided rounds
  /// on masked activations (`round_masks`), far faster, with their documented leakage.
  plan::Privacy privacy = plan::Privacy::Model;
  /// `mpirun -np P heinfer serve --distributed` (P >= 2): every rank of the job. Rank 0
  /// speaks gRPC and relays; ranks 1 … P − 1 (`compute_ranks`, their own group) run every
  /// batch in column slabs (protocol/rank_gateway.h). Null: one process does everything.
  runtime::Peers* ranks = nullptr;
  runtime::Peers* compute_ranks = nullptr;
};

/// Runs the server until SIGTERM or SIGINT, then stops accepting calls, cancels the open
/// sessions and returns (the process exits 0). Prints "listening on HOST:PORT" (the bound
/// port) on stdout once ready. Throws std::runtime_error on bad options/models.
/// Distributed (options.ranks): every rank prepares the models and checks that rank 0's
/// are the same (std::runtime_error otherwise); a compute rank serves rank 0's batches
/// and returns when rank 0 stops; one batch runs on the ranks at a time (other Infer
/// calls wait for it).
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
  /// Called with one line per event (session opened, each client-aided round, outputs).
  std::function<void(const std::string&)> progress;
  /// Set from another thread to stop the call: the RPC in flight is cancelled within
  /// about 50 ms (the server frees the session of a cancelled Infer stream) and the
  /// call throws ClientCancelled. nullptr: not cancellable.
  const std::atomic<bool>* cancel = nullptr;
};

/// Thrown by run_client and list_models when ClientOptions::cancel was set.
struct ClientCancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A model a server serves, as ListModels announced it. The parameters were checked by
/// the client as run_client checks them (128-bit security from N and the primes).
struct ServedModelInfo {
  std::string name;
  std::string input_name;
  std::vector<std::int64_t> input_shape, output_shape;  ///< per sample
  std::int64_t capacity = 0;       ///< samples per ciphertext (one batch)
  std::int64_t poly_modulus_degree = 0;
  int modulus_bits = 0;            ///< log2 Q of the chain (plus the special primes)
  bool complex_packing = false;
  int rounds = 0;                  ///< client-aided rounds per batch
  std::string description;         ///< the server's plan, one line
  std::string refused;             ///< why run_client would refuse it ("" : usable)
};

/// The models `options.server` serves (options.model is ignored), sorted by name.
/// Throws std::runtime_error with the gRPC status when the call fails, and when the reply
/// is malformed (an empty or repeated name, a shape that is not a list of 1..2^31
/// extents, more than 4,096 models); a model whose parameters the client would refuse is
/// listed with the reason in `refused`.
std::vector<ServedModelInfo> list_models(const ClientOptions& options);

/// One row of the per-layer summary (summed over the batches). Bytes are serialized
/// ciphertext bytes; seconds are the server's wall time (rounds include the client).
struct LayerRow {
  std::string name, op;
  double seconds = 0;
  std::int64_t ciphertexts = 0;
  int level = -1;
  std::int64_t bytes_to_client = 0, bytes_to_server = 0;
  std::int64_t round_trips = 0;
};

struct ClientResult {
  std::vector<double> outputs;      ///< batch-major
  std::vector<std::int64_t> output_shape;  ///< per sample
  std::int64_t bytes_sent = 0, bytes_received = 0;  ///< protobuf message bytes
  std::int64_t rounds = 0;          ///< client-aided rounds (all batches)
  std::int64_t round_trips = 0;     ///< rounds + input requests per batch
  std::int64_t batches = 0;
  std::string description;          ///< the server's plan
  double seconds = 0;
  double server_seconds = 0;        ///< the server's time inside its executor
  std::vector<LayerRow> layers;     ///< per node, plus "input" and "output" rows
};

/// A session with one model (ClientOptions::model) of a `heinfer serve`, held open across
/// runs: the server's announcement checked (accepted_parameters, the round schedule),
/// the keys made in this process (the secret key never leaves it; with key_dir it is
/// also saved there, mode 0600), the evaluation keys sent once. The server holds its
/// memory reservation until close(). Not thread-safe: one call at a time.
class RemoteSession {
 public:
  /// GetModelInfo, the checks, key generation, OpenSession. Throws std::runtime_error
  /// with the gRPC status (unreachable server, TLS failure, unknown model, no memory) or
  /// naming the refused parameters; ClientCancelled if options.cancel is set.
  explicit RemoteSession(const ClientOptions& options);
  /// Closes the session if open (best effort, 2 s; errors ignored).
  ~RemoteSession();
  RemoteSession(const RemoteSession&) = delete;
  RemoteSession& operator=(const RemoteSession&) = delete;

  /// Runs `count` samples (batch-major `inputs`; `per_sample_shape` must be the model's
  /// input shape) in batches of the ciphertext capacity and decrypts. The result's bytes
  /// and seconds are this call's. Throws std::runtime_error on a bad shape or an input
  /// outside the announced range (before anything is sent), with the gRPC status when the
  /// server fails the call, naming the violation when a message breaks the announced
  /// schedule, ClientCancelled when options.cancel is set; after any of these but the
  /// first two the session is closed. Throws std::logic_error on a closed session.
  ClientResult infer(const std::vector<double>& inputs, const std::vector<std::int64_t>& per_sample_shape,
                     std::int64_t count);
  /// CloseSession (the server frees the session's memory). Idempotent. Throws
  /// std::runtime_error with the gRPC status when the server does not answer.
  void close();
  bool is_open() const;

  const std::vector<std::int64_t>& input_shape() const;   ///< per sample
  const std::vector<std::int64_t>& output_shape() const;  ///< per sample
  std::int64_t capacity() const;                          ///< samples per batch
  const std::string& description() const;                ///< the server's plan
  /// Protobuf bytes of GetModelInfo and OpenSession (keys included), sent / received.
  std::int64_t open_bytes_sent() const;
  std::int64_t open_bytes_received() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

/// RemoteSession(options).infer(...), then close(): one session for one set of inputs.
/// The result's bytes and seconds include opening and closing the session. Throws as
/// RemoteSession and infer do.
ClientResult run_client(const ClientOptions& options, const std::vector<double>& inputs,
                        const std::vector<std::int64_t>& per_sample_shape, std::int64_t count);

/// 80% of MemAvailable (memory::mem_available_bytes()) in bytes; throws std::runtime_error
/// if it cannot be read.
std::int64_t default_memory_limit();

}  // namespace heinfer::protocol
