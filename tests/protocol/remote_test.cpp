// `heinfer serve` / `heinfer client` over gRPC with TLS: server and client run as
// separate processes (the built heinfer binary) on loopback; a self-signed CA and
// server certificate are generated with the openssl CLI. Every wait is bounded.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ckks/serialization.h"
#include "protocol/heinfer.grpc.pb.h"
#include "runtime/local_client.h"
#include "runtime/npy.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
namespace proto = heinfer::protocol;

namespace {

const fs::path kTool = fs::path(HEINFER_BINARY_DIR) / "heinfer";
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A child process with stdout+stderr in a log file; killed (SIGKILL) on destruction.
struct Process {
  pid_t pid = -1;
  fs::path log;
  int status = -1;

  Process(const std::vector<std::string>& args, fs::path log_file) : log(std::move(log_file)) {
    std::vector<char*> argv;  // built before fork: the child only calls async-signal-safe functions
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::string log_path = log.string();
    pid = fork();
    if (pid == 0) {
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Process() { kill_now(); }
  void kill_now() {
    if (pid > 0 && status == -1) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  /// Waits up to `limit`; returns the exit code, or -1 on timeout (then kills).
  int wait(std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
      std::this_thread::sleep_for(50ms);
    }
    kill_now();
    return -1;
  }
  bool running() { return status == -1 && waitpid(pid, &status, WNOHANG) == 0; }
  std::string output() const { return slurp(log); }
  /// Waits until the log matches `re`; returns the first group ("" on timeout/exit).
  std::string wait_for(const std::string& re, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    const std::regex r(re);
    while (std::chrono::steady_clock::now() < end) {
      std::smatch m;
      const std::string out = output();
      if (std::regex_search(out, m, r)) return m.size() > 1 ? m[1].str() : m[0].str();
      if (!running()) return "";
      std::this_thread::sleep_for(50ms);
    }
    return "";
  }
};

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

class RemoteTest : public ::testing::Test {
 protected:
  static inline fs::path dir;
  static inline std::unique_ptr<Process> server;
  static inline std::string port;

  static void SetUpTestSuite() {
    dir = fs::temp_directory_path() / ("heinfer_remote_test_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string d = dir.string();
    // CA, server certificate for localhost/127.0.0.1, and an unrelated second CA.
    const std::string cmd =
        "cd " + d + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca" +
        " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost" +
        " && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf" +
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2"
        " -extfile ext.cnf" +
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other";
    ASSERT_EQ(sh("(" + cmd + ") >/dev/null 2>&1"), 0) << "openssl failed";
    server = start_server("server.log", {});
    ASSERT_TRUE(server);
  }
  static void TearDownTestSuite() {
    server.reset();
    fs::remove_all(dir);
  }

  static std::unique_ptr<Process> start_server(const std::string& log, std::vector<std::string> extra,
                                               std::string* port_out = nullptr) {
    std::vector<std::string> args = {kTool.string(), "serve",
                                     "--model", "fmnist=" + (kModels / "fmnist_cnn.onnx").string(),
                                     "--calibration", "fmnist=" + (kModels / "fmnist_test64_images.npy").string(),
                                     "--model", "cryptonets=" + (kModels / "fmnist_cryptonets.onnx").string(),
                                     "--calibration", "cryptonets=" + (kModels / "fmnist_test64_images.npy").string(),
                                     "--listen", "127.0.0.1:0",
                                     "--tls-cert", (dir / "server.pem").string(),
                                     "--tls-key", (dir / "server.key").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<Process>(args, dir / log);
    const std::string got = p->wait_for(R"(listening on 127\.0\.0\.1:(\d+))", 60s);
    EXPECT_FALSE(got.empty()) << p->output();
    if (got.empty()) return nullptr;
    if (port_out) *port_out = got;
    else port = got;
    return p;
  }

  static std::vector<std::string> client_args(const std::string& port_, const std::string& out,
                                              const std::string& ca = "ca.pem", const std::string& model = "fmnist") {
    return {kTool.string(), "client", "--server", "localhost:" + port_, "--model", model,
            "--input", (kModels / "fmnist_test64_images.npy").string(), "--output", (dir / out).string(),
            "--tls-ca", (dir / ca).string(), "--connect-timeout", "10"};
  }

  static std::unique_ptr<proto::Inference::Stub> stub() {
    grpc::SslCredentialsOptions so;
    so.pem_root_certs = slurp(dir / "ca.pem");
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    return proto::Inference::NewStub(grpc::CreateCustomChannel("localhost:" + port, grpc::SslCredentials(so), args));
  }

  static std::unique_ptr<grpc::ClientContext> ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 30s);
    return c;
  }

  static proto::ModelInfo model_info() {
    proto::ModelInfoRequest req;
    req.set_model("fmnist");
    proto::ModelInfo info;
    auto c = ctx();
    const grpc::Status s = stub()->GetModelInfo(c.get(), req, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return info;
  }
};

std::span<const uint8_t> span_of(const std::string& b) { return {reinterpret_cast<const uint8_t*>(b.data()), b.size()}; }
std::string str(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

TEST_F(RemoteTest, TlsClientMatchesEmbeddedRun) {
  // One after the other: each holds a round of ciphertexts (GBs) in memory.
  Process client(client_args(port, "remote.npy"), dir / "client.log");
  ASSERT_EQ(client.wait(300s), 0) << client.output();
  Process run({kTool.string(), "run", (kModels / "fmnist_cnn.onnx").string(), "--input",
               (kModels / "fmnist_test64_images.npy").string(), "--output", (dir / "local.npy").string(), "--quiet"},
              dir / "run.log");
  ASSERT_EQ(run.wait(300s), 0) << run.output();
  EXPECT_NE(client.output().find("round trips"), std::string::npos) << client.output();
  const auto a = heinfer::runtime::read_npy(dir / "remote.npy").to_double();
  const auto b = heinfer::runtime::read_npy(dir / "local.npy").to_double();
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), 640u);
  double err = 0;
  int agree = 0;
  for (std::size_t i = 0; i < a.size(); ++i) err = std::max(err, std::fabs(a[i] - b[i]));
  for (std::size_t r = 0; r < 64; ++r) {
    const auto ra = std::max_element(a.begin() + r * 10, a.begin() + r * 10 + 10) - (a.begin() + r * 10);
    const auto rb = std::max_element(b.begin() + r * 10, b.begin() + r * 10 + 10) - (b.begin() + r * 10);
    agree += ra == rb;
  }
  EXPECT_EQ(agree, 64);
  EXPECT_LT(err, 1e-2);
}

std::vector<std::int64_t> top1(const std::vector<double>& y) {
  std::vector<std::int64_t> out;
  for (std::size_t r = 0; r + 10 <= y.size(); r += 10) {
    out.push_back(std::max_element(y.begin() + static_cast<std::ptrdiff_t>(r), y.begin() + static_cast<std::ptrdiff_t>(r + 10)) -
                  (y.begin() + static_cast<std::ptrdiff_t>(r)));
  }
  return out;
}

TEST_F(RemoteTest, ConcurrentClientsOnTwoModels) {
  // Two clients at once, one per model: the CNN (client-aided rounds) and CryptoNets
  // (square activations). More concurrent CNN sessions need more than the ~20 GB of the
  // test machine (server + clients hold rounds of ciphertexts in memory).
  Process a(client_args(port, "c_a.npy"), dir / "c_a.log");
  Process c(client_args(port, "c_c.npy", "ca.pem", "cryptonets"), dir / "c_c.log");
  ASSERT_EQ(a.wait(400s), 0) << a.output();
  ASSERT_EQ(c.wait(400s), 0) << c.output();
  const auto ref_cnn = top1(heinfer::runtime::read_npy(kModels / "fmnist_cnn_test64_logits.npy").to_double());
  const auto ref_cn = top1(heinfer::runtime::read_npy(kModels / "fmnist_cryptonets_test64_logits.npy").to_double());
  auto agree = [](const std::vector<std::int64_t>& x, const std::vector<std::int64_t>& y) {
    int n = 0;
    for (std::size_t i = 0; i < std::min(x.size(), y.size()); ++i) n += x[i] == y[i];
    return n;
  };
  EXPECT_GE(agree(top1(heinfer::runtime::read_npy(dir / "c_a.npy").to_double()), ref_cnn), 63);
  EXPECT_GE(agree(top1(heinfer::runtime::read_npy(dir / "c_c.npy").to_double()), ref_cn), 63);
}

TEST_F(RemoteTest, KeyDirHoldsSecretKeyWithMode0600) {
  // A small run is not needed: the key is written before OpenSession; use an unknown
  // model after writing? The key is written after GetModelInfo, so run against the
  // real model but kill the client once the session is open.
  std::vector<std::string> args = client_args(port, "unused.npy");
  args.push_back("--key-dir");
  args.push_back((dir / "keys").string());
  Process client(args, dir / "keydir.log");
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (!fs::exists(dir / "keys" / "secret.key") && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(50ms);
  }
  client.kill_now();
  ASSERT_TRUE(fs::exists(dir / "keys" / "secret.key")) << client.output();
  struct stat st{};
  ASSERT_EQ(stat((dir / "keys" / "secret.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(RemoteTest, WrongCaFailsClearlyAndServerStaysUp) {
  Process client(client_args(port, "wrongca.npy", "other.pem"), dir / "wrongca.log");
  ASSERT_EQ(client.wait(60s), 1) << client.output();
  EXPECT_NE(client.output().find("GetModelInfo on localhost:" + port + " failed"), std::string::npos)
      << client.output();
  EXPECT_NE(client.output().find("TLS"), std::string::npos) << client.output();
  EXPECT_TRUE(server->running());
  EXPECT_EQ(model_info().capacity(), 8192);
}

TEST_F(RemoteTest, UnknownModelIsNotFound) {
  proto::ModelInfoRequest req;
  req.set_model("nope");
  proto::ModelInfo info;
  auto c = ctx();
  const grpc::Status s = stub()->GetModelInfo(c.get(), req, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("served: cryptonets, fmnist"), std::string::npos) << s.error_message();
}

TEST_F(RemoteTest, WrongFingerprintKeysAndCiphertextsAreRejected) {
  const proto::ModelInfo info = model_info();
  const auto parms = heinfer::ckks::load_parameters(span_of(info.parameters()));
  const auto context = heinfer::ckks::CKKSContext::create(parms);
  heinfer::runtime::LocalClient good(context, heinfer::runtime::Packing::Complex, std::ldexp(1.0, 30));
  // Keys of other parameters (N = 4096, 3 primes).
  auto other_parms = heinfer::ckks::EncryptionParameters(4096, {40, 30}, {30});
  const auto other = heinfer::ckks::CKKSContext::create(other_parms);
  heinfer::runtime::LocalClient bad(other, heinfer::runtime::Packing::Complex, std::ldexp(1.0, 30));

  proto::OpenSessionRequest req;
  req.set_model("fmnist");
  req.set_fingerprint(std::string(32, 'x'));
  req.set_relin_keys(str(heinfer::ckks::to_bytes(good.evaluation_keys().relin, *context)));
  req.set_galois_keys(str(heinfer::ckks::to_bytes(good.evaluation_keys().galois, *context)));
  proto::OpenSessionReply reply;
  {
    auto c = ctx();
    const grpc::Status s = stub()->OpenSession(c.get(), req, &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("fingerprint"), std::string::npos) << s.error_message();
  }
  req.set_fingerprint(info.fingerprint());
  req.set_relin_keys(str(heinfer::ckks::to_bytes(bad.evaluation_keys().relin, *other)));
  {
    auto c = ctx();
    const grpc::Status s = stub()->OpenSession(c.get(), req, &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("relinearization keys rejected"), std::string::npos) << s.error_message();
  }
  // A good session, then an input ciphertext of other parameters.
  req.set_relin_keys(str(heinfer::ckks::to_bytes(good.evaluation_keys().relin, *context)));
  {
    auto c = ctx();
    const grpc::Status s = stub()->OpenSession(c.get(), req, &reply);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  auto c = ctx();
  auto st = stub();
  auto stream = st->Infer(c.get());
  proto::ClientMessage m;
  m.mutable_start()->set_session_id(reply.session_id());
  m.mutable_start()->set_batch(1);
  ASSERT_TRUE(stream->Write(m));
  heinfer::runtime::PlainTensor x;
  x.shape = {1};
  x.batch = 1;
  x.data = {0.5};
  const auto cts = bad.encrypt(x, "x", 1.0);
  m.Clear();
  m.mutable_input()->add_ciphertexts(str(heinfer::ckks::to_bytes(cts[0], *other)));
  m.mutable_input()->set_last(true);
  stream->Write(m);
  stream->WritesDone();
  proto::ServerMessage sm;
  EXPECT_FALSE(stream->Read(&sm));
  const grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("ciphertext rejected"), std::string::npos) << s.error_message();
  // The failed stream freed the session.
  proto::CloseSessionRequest close;
  close.set_session_id(reply.session_id());
  proto::CloseSessionReply cr;
  auto c2 = ctx();
  EXPECT_EQ(stub()->CloseSession(c2.get(), close, &cr).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(RemoteTest, ServerKilledGivesClearClientError) {
  std::string p2;
  auto srv = start_server("killed_server.log", {}, &p2);
  ASSERT_TRUE(srv);
  Process client(client_args(p2, "killed.npy"), dir / "killed_client.log");
  ASSERT_FALSE(srv->wait_for("session [0-9a-f]+ opened", 120s).empty()) << srv->output() << client.output();
  srv->kill_now();
  ASSERT_EQ(client.wait(120s), 1) << client.output();
  EXPECT_NE(client.output().find("heinfer: error: "), std::string::npos) << client.output();
  EXPECT_NE(client.output().find("on localhost:" + p2 + " failed"), std::string::npos) << client.output();
  EXPECT_FALSE(fs::exists(dir / "killed.npy"));
}

TEST_F(RemoteTest, MaxSessionsIsEnforced) {
  std::string p2;
  auto srv = start_server("max_server.log", {"--max-sessions", "1"}, &p2);
  ASSERT_TRUE(srv);
  const std::string saved = port;
  port = p2;
  const proto::ModelInfo info = model_info();
  const auto context = heinfer::ckks::CKKSContext::create(heinfer::ckks::load_parameters(span_of(info.parameters())));
  heinfer::runtime::LocalClient cl(context, heinfer::runtime::Packing::Complex, std::ldexp(1.0, 30));
  proto::OpenSessionRequest req;
  req.set_model("fmnist");
  req.set_fingerprint(info.fingerprint());
  req.set_relin_keys(str(heinfer::ckks::to_bytes(cl.evaluation_keys().relin, *context)));
  req.set_galois_keys(str(heinfer::ckks::to_bytes(cl.evaluation_keys().galois, *context)));
  proto::OpenSessionReply r1, r2, r3;
  auto c1 = ctx(), c2 = ctx(), c3 = ctx();
  EXPECT_TRUE(stub()->OpenSession(c1.get(), req, &r1).ok());
  const grpc::Status s = stub()->OpenSession(c2.get(), req, &r2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("--max-sessions"), std::string::npos) << s.error_message();
  proto::CloseSessionRequest close;
  close.set_session_id(r1.session_id());
  proto::CloseSessionReply cr;
  auto c4 = ctx();
  EXPECT_TRUE(stub()->CloseSession(c4.get(), close, &cr).ok());
  EXPECT_TRUE(stub()->OpenSession(c3.get(), req, &r3).ok());  // freed on close
  port = saved;
}

TEST_F(RemoteTest, IdleSessionExpires) {
  std::string p2;
  auto srv = start_server("timeout_server.log", {"--session-timeout", "1"}, &p2);
  ASSERT_TRUE(srv);
  const std::string saved = port;
  port = p2;
  const proto::ModelInfo info = model_info();
  const auto context = heinfer::ckks::CKKSContext::create(heinfer::ckks::load_parameters(span_of(info.parameters())));
  heinfer::runtime::LocalClient cl(context, heinfer::runtime::Packing::Complex, std::ldexp(1.0, 30));
  proto::OpenSessionRequest req;
  req.set_model("fmnist");
  req.set_fingerprint(info.fingerprint());
  req.set_relin_keys(str(heinfer::ckks::to_bytes(cl.evaluation_keys().relin, *context)));
  req.set_galois_keys(str(heinfer::ckks::to_bytes(cl.evaluation_keys().galois, *context)));
  proto::OpenSessionReply r;
  auto c1 = ctx();
  ASSERT_TRUE(stub()->OpenSession(c1.get(), req, &r).ok());
  EXPECT_FALSE(srv->wait_for("session [0-9a-f]+ expired", 10s).empty()) << srv->output();
  proto::CloseSessionRequest close;
  close.set_session_id(r.session_id());
  proto::CloseSessionReply cr;
  auto c2 = ctx();
  EXPECT_EQ(stub()->CloseSession(c2.get(), close, &cr).error_code(), grpc::StatusCode::NOT_FOUND);
  port = saved;
}

}  // namespace
