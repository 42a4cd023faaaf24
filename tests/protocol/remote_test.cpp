// `heinfer serve` / `heinfer client` over gRPC with TLS: server and client run as
// separate processes (the built heinfer binary) on loopback; a self-signed CA and
// server certificate are generated with the openssl CLI. Every wait is bounded.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ckks/keygen.h"
#include "ckks/serialization.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"
#include "protocol/wire.h"
#include "runtime/local_client.h"
#include "runtime/npy.h"
#include "runtime/plain_executor.h"
#include "../common/onnx_builder.h"
#include "process.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
namespace proto = heinfer::protocol;

namespace {

using heinfer::test::Process;
using heinfer::test::slurp;

const fs::path kTool = fs::path(HEINFER_BINARY_DIR) / "heinfer";
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";

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
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other" +
        // Client certificates for mutual TLS: one from the CA, one from the unrelated CA.
        " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client" +
        " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2" +
        " && openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr -subj /CN=rogue" +
        " && openssl x509 -req -in rogue.csr -CA other.pem -CAkey other.key -CAcreateserial -out rogue.pem -days 2";
    ASSERT_EQ(sh("(" + cmd + ") >/dev/null 2>&1"), 0) << "openssl failed";
    server = start_server("server.log", {});
    ASSERT_TRUE(server);
  }
  static void TearDownTestSuite() {
    server.reset();
    fs::remove_all(dir);
  }

  /// Starts `heinfer serve` (both Fashion-MNIST models unless `models` says otherwise:
  /// NAME=PATH.onnx pairs calibrated on the 64 test images) with TLS unless --insecure.
  static std::unique_ptr<Process> start_server(const std::string& log, std::vector<std::string> extra,
                                               std::string* port_out = nullptr,
                                               std::vector<std::string> models = {},
                                               const std::string& listen = "127.0.0.1:0") {
    if (models.empty()) {
      models = {"fmnist=" + (kModels / "fmnist_cnn.onnx").string(),
                "cryptonets=" + (kModels / "fmnist_cryptonets.onnx").string()};
    }
    std::vector<std::string> args = {kTool.string(), "serve", "--listen", listen};
    for (const std::string& m : models) {
      const std::string name = m.substr(0, m.find('='));
      const std::string cal = name == "fmnist" || name == "cryptonets" ? (kModels / "fmnist_test64_images.npy").string()
                                                                       : (dir / (name + "_cal.npy")).string();
      args.insert(args.end(), {"--model", m, "--calibration", name + "=" + cal});
    }
    if (std::find(extra.begin(), extra.end(), "--insecure") == extra.end()) {
      args.insert(args.end(), {"--tls-cert", (dir / "server.pem").string(), "--tls-key", (dir / "server.key").string()});
    }
    // Per-window masks unless a test asks otherwise: the tests below check traffic and
    // timing figures of that mode (PerSampleMasksMatchEmbeddedRun covers the default).
    if (std::find(extra.begin(), extra.end(), "--round-masks") == extra.end()) {
      args.insert(args.end(), {"--round-masks", "per-window"});
    }
    // Client-aided unless a test asks for the model-private default.
    if (std::find(extra.begin(), extra.end(), "--privacy") == extra.end()) {
      args.insert(args.end(), {"--privacy", "activations"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string socket = (dir / (log + ".sock")).string();
    args.insert(args.end(), {"--admin-socket", socket});
    auto p = std::make_unique<Process>(args, dir / log);
    const std::string got = p->wait_for(R"(listening on 127\.0\.0\.1:(\d+))", 60s);
    EXPECT_FALSE(got.empty()) << p->output();
    if (got.empty()) return nullptr;
    admin_socket()[got] = socket;
    if (port_out) *port_out = got;
    else port = got;
    return p;
  }

  static std::vector<std::string> client_args(const std::string& port_, const std::string& out,
                                              const std::string& ca = "ca.pem", const std::string& model = "fmnist",
                                              const std::string& input = "") {
    return {kTool.string(), "client", "--server", "localhost:" + port_, "--model", model,
            "--input", input.empty() ? (kModels / "fmnist_test64_images.npy").string() : input,
            "--output", (dir / out).string(), "--tls-ca", (dir / ca).string(), "--connect-timeout", "10"};
  }

  /// A channel to `port_` (default: the suite's server); TLS with `ca` (and a client
  /// certificate `cert`.pem/.key if given), or plaintext when `ca` is empty.
  static std::shared_ptr<grpc::Channel> channel(const std::string& port_ = "", const std::string& ca = "ca.pem",
                                                const std::string& cert = "", int max_mib = 64) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(max_mib << 20);
    args.SetMaxSendMessageSize(max_mib << 20);
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (!ca.empty()) {
      grpc::SslCredentialsOptions so;
      so.pem_root_certs = slurp(dir / ca);
      if (!cert.empty()) {
        so.pem_cert_chain = slurp(dir / (cert + ".pem"));
        so.pem_private_key = slurp(dir / (cert + ".key"));
      }
      creds = grpc::SslCredentials(so);
    }
    return grpc::CreateCustomChannel((ca.empty() ? "127.0.0.1:" : "localhost:") + (port_.empty() ? port : port_),
                                     creds, args);
  }

  static std::unique_ptr<proto::Inference::Stub> stub() { return proto::Inference::NewStub(channel()); }

  static std::unique_ptr<grpc::ClientContext> ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 30s);
    return c;
  }

  static proto::ModelInfo model_info(const std::string& model = "fmnist") { return model_info(*stub(), model); }

  /// GetModelInfo on another server's stub (a failure is a test failure).
  static proto::ModelInfo model_info(proto::Inference::Stub& st, const std::string& model) {
    proto::ModelInfoRequest req;
    req.set_model(model);
    proto::ModelInfo info;
    auto c = ctx();
    const grpc::Status s = st.GetModelInfo(c.get(), req, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return info;
  }

  /// Per server port: its admin socket (start_server).
  static std::map<std::string, std::string>& admin_socket() {
    static std::map<std::string, std::string> m;
    return m;
  }

  /// GetStats of the server on `port_` ("" : the suite's), through its admin socket.
  static proto::ServerStats stats(const std::string& port_ = "") {
    auto st = proto::Inference::NewStub(
        grpc::CreateChannel("unix:" + admin_socket()[port_.empty() ? port : port_], grpc::InsecureChannelCredentials()));
    proto::StatsRequest req;
    proto::ServerStats out;
    auto c = ctx();
    const grpc::Status s = st->GetStats(c.get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
};

/// A client's keys for a model (fresh secret key) and its serialized evaluation keys.
struct Keys {
  heinfer::ckks::ContextPtr context;
  std::unique_ptr<heinfer::runtime::LocalClient> client;
  std::string relin, galois;

  explicit Keys(const proto::ModelInfo& info) {
    context = heinfer::ckks::CKKSContext::create(heinfer::ckks::load_parameters(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(info.parameters().data()), info.parameters().size())));
    const auto packing = info.complex_packing() ? heinfer::ckks::Packing::Complex : heinfer::ckks::Packing::Real;
    client = std::make_unique<heinfer::runtime::LocalClient>(context, packing, std::ldexp(1.0, info.scale_bits()));
    if (context->special_count() == 0) return;  // the model switches no keys: none are sent
    const auto rk = heinfer::ckks::to_bytes(client->evaluation_keys().relin, *context);
    relin.assign(rk.begin(), rk.end());
    if (info.complex_packing()) {
      const auto gk = heinfer::ckks::to_bytes(client->evaluation_keys().galois, *context);
      galois.assign(gk.begin(), gk.end());
    }
  }
};

grpc::Status open(proto::Inference::Stub& st, const std::string& model, const proto::ModelInfo& info, const Keys& k,
                  std::string* id, std::size_t chunk = proto::kKeyChunkBytes) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + 60s);
  return proto::open_session(st, c, model, info.fingerprint(), k.relin, k.galois, chunk, id);
}

grpc::Status close(proto::Inference::Stub& st, const std::string& id) {
  proto::CloseSessionRequest req;
  req.set_session_id(id);
  proto::CloseSessionReply reply;
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + 30s);
  return st.CloseSession(&c, req, &reply);
}

std::string str(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

std::vector<std::int64_t> top1(const std::vector<double>& y, std::size_t classes = 10) {
  std::vector<std::int64_t> out;
  for (std::size_t r = 0; r + classes <= y.size(); r += classes) {
    const auto b = y.begin() + static_cast<std::ptrdiff_t>(r);
    out.push_back(std::max_element(b, b + static_cast<std::ptrdiff_t>(classes)) - b);
  }
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double e = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) e = std::max(e, std::fabs(a[i] - b[i]));
  return e;
}

// --memory-limit is parsed by CLI11 (apps/size_option.h): units in powers of 1024; a bad
// size is refused before anything loads, with an error naming the option.
TEST(RemoteOptions, MemoryLimitSizes) {
  const fs::path d = fs::temp_directory_path() / ("heinfer_remote_options_" + std::to_string(getpid()));
  fs::create_directories(d);
  const std::string missing = "m=" + (d / "missing.onnx").string();
  auto serve = [&](const std::string& limit) {
    Process p({kTool.string(), "serve", "--insecure", "--model", missing, "--memory-limit", limit}, d / "serve.log");
    const int code = p.wait(60s);
    return std::make_pair(code, p.output());
  };
  for (const char* bad : {"", "abc", "5X", "-1", "0", "0.5", "1.5G", "1e30", "4 K B", "99999999999999999999"}) {
    const auto [code, out] = serve(bad);
    EXPECT_NE(code, 0) << bad;
    EXPECT_NE(out.find("--memory-limit:"), std::string::npos) << bad << ": " << out;
  }
  for (const char* good : {"512", "4K", "3mb", "12GiB", "1 GB", "2T"}) {
    const auto [code, out] = serve(good);
    EXPECT_NE(code, 0) << good;  // accepted; then the model is missing
    EXPECT_EQ(out.find("--memory-limit"), std::string::npos) << good << ": " << out;
    EXPECT_NE(out.find("missing.onnx"), std::string::npos) << good << ": " << out;
  }
  fs::remove_all(d);
  EXPECT_GT(proto::default_memory_limit(), 0);
}

// Without TLS the traffic can be read and rewritten on the path: --insecure is refused on
// any address but loopback, before anything loads.
TEST(RemoteOptions, InsecureListensOnLoopbackOnly) {
  const fs::path d = fs::temp_directory_path() / ("heinfer_remote_insecure_" + std::to_string(getpid()));
  fs::create_directories(d);
  const std::string missing = "m=" + (d / "missing.onnx").string();
  auto serve = [&](const std::string& listen) {
    Process p({kTool.string(), "serve", "--insecure", "--listen", listen, "--model", missing}, d / "serve.log");
    const int code = p.wait(60s);
    return std::make_pair(code, p.output());
  };
  for (const char* open : {"0.0.0.0:0", "[::]:0", "192.0.2.7:0"}) {
    const auto [code, out] = serve(open);
    EXPECT_NE(code, 0) << open;
    EXPECT_NE(out.find("--insecure listens on loopback addresses only"), std::string::npos) << open << ": " << out;
  }
  for (const char* loopback : {"127.0.0.1:0", "localhost:0"}) {
    const auto [code, out] = serve(loopback);
    EXPECT_NE(code, 0) << loopback;  // accepted; then the model is missing
    EXPECT_EQ(out.find("loopback addresses only"), std::string::npos) << loopback << ": " << out;
    EXPECT_NE(out.find("missing.onnx"), std::string::npos) << loopback << ": " << out;
  }
  fs::remove_all(d);
}

TEST_F(RemoteTest, TlsClientMatchesEmbeddedRun) {
  // One after the other: each holds a round of ciphertexts (GBs) in memory.
  Process client(client_args(port, "remote.npy"), dir / "client.log");
  ASSERT_EQ(client.wait(300s), 0) << client.output();
  Process run({kTool.string(), "run", (kModels / "fmnist_cnn.onnx").string(), "--input",
               (kModels / "fmnist_test64_images.npy").string(), "--output", (dir / "local.npy").string(), "--quiet"},
              dir / "run.log");
  ASSERT_EQ(run.wait(300s), 0) << run.output();
  const std::string out = client.output();
  // Progress per round (the executor may split a client-aided layer into several rounds)
  // and the per-layer table: the rounds' traffic sums to the totals.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(round trips +(\d+) \((\d+) client-aided rounds\))"))) << out;
  const int trips = std::stoi(m[1].str()), rounds = std::stoi(m[2].str());
  EXPECT_EQ(trips, rounds + 1);
  EXPECT_GE(rounds, 2);
  EXPECT_NE(out.find("round 1 /relu1/Relu -> /pool1/MaxPool"), std::string::npos) << out;
  EXPECT_NE(out.find(" /conv2/Conv -> /relu2/Relu: "), std::string::npos) << out;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(/pool1/MaxPool +MaxPool .* 490\.38 MiB +85\.89 MiB +(\d+)\n)"))) << out;
  const int pool_trips = std::stoi(m[1].str());
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(/relu2/Relu +Relu .* 245\.19 MiB +171\.79 MiB +(\d+)\n)"))) << out;
  EXPECT_EQ(pool_trips + std::stoi(m[1].str()), rounds);
  const auto a = heinfer::runtime::read_npy(dir / "remote.npy").to_double();
  const auto b = heinfer::runtime::read_npy(dir / "local.npy").to_double();
  ASSERT_EQ(a.size(), 640u);
  EXPECT_EQ(top1(a), top1(b));
  EXPECT_LT(max_abs_diff(a, b), 1e-2);
}

TEST_F(RemoteTest, PerSampleMasksMatchEmbeddedRun) {
  // serve's default masks: per-sample, real packing (docs/security.md, claim 7).
  Process help({kTool.string(), "serve", "--help"}, dir / "serve_help.log");
  ASSERT_EQ(help.wait(30s), 0);
  EXPECT_TRUE(std::regex_search(help.output(), std::regex(R"(--round-masks[^\n]*=per-sample)"))) << help.output();
  std::string p2;
  auto srv = start_server("per_sample_server.log", {"--round-masks", "per-sample"}, &p2,
                          {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  Process client(client_args(p2, "per_sample.npy"), dir / "per_sample_client.log");
  ASSERT_EQ(client.wait(600s), 0) << client.output();
  const std::string out = client.output();
  EXPECT_NE(out.find("packing=real"), std::string::npos) << out;
  const auto a = heinfer::runtime::read_npy(dir / "per_sample.npy").to_double();
  const auto b = heinfer::runtime::read_npy(kModels / "fmnist_cnn_test64_logits.npy").to_double();
  ASSERT_EQ(a.size(), 640u);
  EXPECT_EQ(top1(a), top1(b));
  EXPECT_LT(max_abs_diff(a, b), 1e-2);
}

TEST_F(RemoteTest, EightConcurrentClientsTwoModelsUnderMemoryLimit) {
  // 8 client processes, each with its own keys and its own 8 of the 64 images: 2 on the
  // CNN (client-aided rounds), 6 on CryptoNets. The memory limit admits two sessions at
  // a time, so most sessions wait in OpenSession. Every client's outputs must match the
  // plaintext logits of *its* images (cross-talk would give another slice's logits).
  const std::int64_t res_cnn = model_info("fmnist").session_reservation();
  const std::int64_t res_cn = model_info("cryptonets").session_reservation();
  ASSERT_GT(res_cnn, 0);
  ASSERT_GT(res_cn, 0);
  const std::int64_t limit = std::max(res_cnn, res_cn) + std::min(res_cnn, res_cn);
  std::string p2;
  auto srv = start_server("eight_server.log", {"--memory-limit", std::to_string(limit), "--admission-timeout", "600"},
                          &p2);
  ASSERT_TRUE(srv);
  const auto images = heinfer::runtime::read_npy(kModels / "fmnist_test64_images.npy");
  const auto pixels = images.to_double();
  const std::vector<std::int64_t> per_sample(images.shape.begin() + 1, images.shape.end());
  const std::size_t n = static_cast<std::size_t>(heinfer::model::numel(per_sample));
  std::vector<std::unique_ptr<Process>> clients;
  std::vector<std::string> models;
  for (int i = 0; i < 8; ++i) {
    const std::string in = (dir / ("eight_in" + std::to_string(i) + ".npy")).string();
    std::vector<std::int64_t> shape = {8};
    shape.insert(shape.end(), per_sample.begin(), per_sample.end());
    heinfer::runtime::write_npy(in, heinfer::runtime::make_npy(heinfer::runtime::NpyDType::Float32, shape,
                                                               std::span<const double>(pixels).subspan(8 * n * i, 8 * n)));
    models.push_back(i < 2 ? "fmnist" : "cryptonets");
    clients.push_back(std::make_unique<Process>(
        client_args(p2, "eight_out" + std::to_string(i) + ".npy", "ca.pem", models.back(), in),
        dir / ("eight_client" + std::to_string(i) + ".log")));
  }
  const auto ref_cnn = heinfer::runtime::read_npy(kModels / "fmnist_cnn_test64_logits.npy").to_double();
  const auto ref_cn = heinfer::runtime::read_npy(kModels / "fmnist_cryptonets_test64_logits.npy").to_double();
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(clients[static_cast<std::size_t>(i)]->wait(900s), 0) << clients[static_cast<std::size_t>(i)]->output();
    const auto y = heinfer::runtime::read_npy(dir / ("eight_out" + std::to_string(i) + ".npy")).to_double();
    const auto& ref = models[static_cast<std::size_t>(i)] == "fmnist" ? ref_cnn : ref_cn;
    const std::vector<double> want(ref.begin() + 80 * i, ref.begin() + 80 * (i + 1));
    EXPECT_EQ(top1(y), top1(want)) << "client " << i;
    EXPECT_LT(max_abs_diff(y, want), 1e-2) << "client " << i;
  }
  port.swap(p2);
  auto st = stub();
  port.swap(p2);
  const proto::ServerStats s = stats(p2);
  EXPECT_EQ(s.sessions_opened(), 8);
  EXPECT_GE(s.sessions_waited(), 1) << srv->output();
  EXPECT_EQ(s.sessions_refused(), 0);
  EXPECT_LE(s.peak_reserved_bytes(), limit);
  // The reservations are upper bounds: the server's peak resident memory stays below
  // the limit (models, gRPC and the idle process included).
  EXPECT_GT(s.peak_rss_bytes(), std::int64_t{1} << 30);
  EXPECT_LE(s.peak_rss_bytes(), limit) << "peak RSS " << s.peak_rss_bytes();
  EXPECT_EQ(s.memory_limit(), limit);
  EXPECT_EQ(s.open_sessions(), 0);
  EXPECT_EQ(s.reserved_bytes(), 0);
  EXPECT_NE(srv->output().find("waiting for memory"), std::string::npos) << srv->output();
}

TEST_F(RemoteTest, MemoryLimitRefusesOrTimesOut) {
  const proto::ModelInfo info = model_info("fmnist");
  const Keys k(info);
  {
    // A session that alone exceeds the limit: refused at once.
    std::string p2;
    auto srv = start_server("tiny_limit.log", {"--memory-limit", "1M"}, &p2, {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
    ASSERT_TRUE(srv);
    auto st = proto::Inference::NewStub(channel(p2));
    std::string id;
    const auto t0 = std::chrono::steady_clock::now();
    const grpc::Status s = open(*st, "fmnist", info, k, &id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("more than the server's memory limit of 1.00 MiB (--memory-limit)"),
              std::string::npos) << s.error_message();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    EXPECT_EQ(stats(p2).sessions_refused(), 1);
  }
  // Room for one session: the second waits --admission-timeout seconds, then is refused;
  // after the first closes, a new one is admitted.
  std::string p2;
  auto srv = start_server("one_limit.log",
                          {"--memory-limit", std::to_string(info.session_reservation() + 1000), "--admission-timeout", "2"},
                          &p2, {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  auto st = proto::Inference::NewStub(channel(p2));
  std::string id1, id2, id3;
  ASSERT_TRUE(open(*st, "fmnist", info, k, &id1).ok());
  const auto t0 = std::chrono::steady_clock::now();
  const grpc::Status s = open(*st, "fmnist", info, k, &id2);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("after waiting 2 s"), std::string::npos) << s.error_message();
  EXPECT_GE(waited, 2s);
  EXPECT_LT(waited, 10s);
  EXPECT_EQ(stats(p2).open_sessions(), 1);
  // A waiting session is admitted as soon as the first one closes.
  std::thread closer([&] {
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(close(*st, id1).ok());
  });
  EXPECT_TRUE(open(*st, "fmnist", info, k, &id3).ok());
  closer.join();
  const proto::ServerStats after = stats(p2);
  EXPECT_EQ(after.sessions_waited(), 1);
  EXPECT_EQ(after.reserved_bytes(), info.session_reservation());
  EXPECT_TRUE(srv->running());
}

TEST_F(RemoteTest, KeyDirHoldsSecretKeyWithMode0600) {
  // The key is written after GetModelInfo: kill the client once it exists.
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
  ASSERT_EQ(stat((dir / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);  // created private
  // No temporary is left behind: only the key and the parameters (written in that order,
  // so params.bin may not be there yet when the client was killed).
  for (const auto& e : fs::directory_iterator(dir / "keys")) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name == "secret.key" || name == "params.bin") << name;
  }
}

TEST_F(RemoteTest, KeyDirWritableByOthersIsRefused) {
  // A reused key directory that another user could write to (swap the key files, or
  // plant a symlink): refused before any key is written, nothing left behind.
  const fs::path keys = dir / "open_keys";
  fs::create_directories(keys);
  fs::permissions(keys, fs::perms::all);  // 0777, whatever the umask
  std::vector<std::string> args = client_args(port, "unused.npy");
  args.push_back("--key-dir");
  args.push_back(keys.string());
  Process client(args, dir / "open_keys.log");
  ASSERT_EQ(client.wait(60s), 1) << client.output();
  EXPECT_NE(client.output().find("must belong to this user and be writable by no one else"), std::string::npos)
      << client.output();
  EXPECT_TRUE(fs::is_empty(keys));
}

TEST_F(RemoteTest, StatsOnlyForTheAdminSocketAndMutualTls) {
  // Over TLS without a client certificate: the server's load is not anyone's business.
  {
    auto st = stub();
    proto::StatsRequest req;
    proto::ServerStats out;
    auto c = ctx();
    const grpc::Status s = st->GetStats(c.get(), req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_NE(s.error_message().find("admin socket"), std::string::npos) << s.error_message();
  }
  // The admin socket is its owner's only, and answers.
  struct stat st {};
  ASSERT_EQ(::stat(admin_socket()[port].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_GE(stats().memory_limit(), 1);
}

TEST_F(RemoteTest, WrongCaFailsClearlyAndServerStaysUp) {
  Process client(client_args(port, "wrongca.npy", "other.pem"), dir / "wrongca.log");
  ASSERT_EQ(client.wait(60s), 1) << client.output();
  EXPECT_NE(client.output().find("GetModelInfo on localhost:" + port + " failed"), std::string::npos)
      << client.output();
  EXPECT_NE(client.output().find("TLS"), std::string::npos) << client.output();
  EXPECT_TRUE(server->running());
  EXPECT_EQ(model_info().capacity(), 4096);  // N = 4096: the CNN switches no keys (no special prime)
}

TEST_F(RemoteTest, MutualTlsRequiresAClientCertificateFromTheCa) {
  std::string p2;
  auto srv = start_server("mtls_server.log", {"--client-ca", (dir / "ca.pem").string()}, &p2,
                          {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  EXPECT_NE(srv->output().find("(mutual TLS)"), std::string::npos);
  auto info_via = [&](const std::string& cert, proto::ModelInfo* info) {
    proto::ModelInfoRequest req;
    req.set_model("fmnist");
    auto c = ctx();
    c->set_deadline(std::chrono::system_clock::now() + 10s);
    return proto::Inference::NewStub(channel(p2, "ca.pem", cert))->GetModelInfo(c.get(), req, info);
  };
  proto::ModelInfo info;
  EXPECT_EQ(info_via("", &info).error_code(), grpc::StatusCode::UNAVAILABLE);       // no certificate
  EXPECT_EQ(info_via("rogue", &info).error_code(), grpc::StatusCode::UNAVAILABLE);  // another CA's
  ASSERT_TRUE(info_via("client", &info).ok());
  EXPECT_EQ(info.capacity(), 4096);
  // The CLI client without a certificate fails clearly; a full session works with one.
  Process bare(client_args(p2, "mtls.npy"), dir / "mtls_bare.log");
  ASSERT_EQ(bare.wait(60s), 1) << bare.output();
  EXPECT_NE(bare.output().find("GetModelInfo on localhost:" + p2 + " failed: UNAVAILABLE"), std::string::npos)
      << bare.output();
  auto st = proto::Inference::NewStub(channel(p2, "ca.pem", "client"));
  const Keys k(info);
  std::string id;
  ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
  EXPECT_TRUE(close(*st, id).ok());
  // A client the server authenticated may read its load.
  proto::ServerStats stats_out;
  auto c = ctx();
  EXPECT_TRUE(st->GetStats(c.get(), proto::StatsRequest(), &stats_out).ok());
  EXPECT_EQ(stats_out.sessions_opened(), 1);
  EXPECT_TRUE(srv->running());
}

TEST_F(RemoteTest, InsecureWorksAndWarns) {
  std::string p2;
  auto srv = start_server("insecure_server.log", {"--insecure"}, &p2,
                          {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  EXPECT_NE(srv->output().find("WARNING: --insecure: serving without TLS"), std::string::npos) << srv->output();
  EXPECT_NE(srv->output().find("(INSECURE)"), std::string::npos) << srv->output();
  auto st = proto::Inference::NewStub(channel(p2, ""));
  const proto::ModelInfo info = model_info(*st, "fmnist");
  const Keys k(info);
  std::string id;
  ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
  EXPECT_TRUE(close(*st, id).ok());
  // The CLI client warns too (and reaches the server: the unknown model is NOT_FOUND).
  Process cli({kTool.string(), "client", "--server", "127.0.0.1:" + p2, "--model", "nope", "--input",
               (kModels / "fmnist_test64_images.npy").string(), "--output", (dir / "insecure.npy").string(),
               "--insecure"},
              dir / "insecure_client.log");
  ASSERT_EQ(cli.wait(60s), 1) << cli.output();
  EXPECT_NE(cli.output().find("WARNING: --insecure: connecting without TLS"), std::string::npos) << cli.output();
  EXPECT_NE(cli.output().find("NOT_FOUND: unknown model 'nope' (served: fmnist)"), std::string::npos) << cli.output();
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

TEST_F(RemoteTest, KeysForAModelWithoutKeySwitchingAreRefused) {
  // The CNN never multiplies two ciphertexts: its parameters have no special prime, the
  // client sends no evaluation key, and keys sent anyway are refused.
  const proto::ModelInfo info = model_info("fmnist");
  EXPECT_EQ(info.galois_elements_size(), 0);
  const Keys none(info);
  EXPECT_EQ(none.context->special_count(), 0u);
  EXPECT_TRUE(none.relin.empty());
  EXPECT_TRUE(none.galois.empty());
  const proto::ModelInfo cn = model_info("cryptonets");
  const Keys cn_keys(cn);
  ASSERT_FALSE(cn_keys.relin.empty());
  auto st = stub();
  std::string id;
  {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 60s);
    const grpc::Status s = proto::open_session(*st, c, "fmnist", info.fingerprint(), cn_keys.relin, "",
                                               proto::kKeyChunkBytes, &id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("switches no keys"), std::string::npos) << s.error_message();
  }
  ASSERT_TRUE(open(*st, "fmnist", info, none, &id).ok());
  EXPECT_TRUE(close(*st, id).ok());
}

TEST_F(RemoteTest, WrongFingerprintKeysAndCiphertextsAreRejected) {
  // CryptoNets squares: its sessions carry a relinearization and a conjugation key.
  const proto::ModelInfo info = model_info("cryptonets");
  const Keys good(info);
  // Keys of other parameters (N = 4096, 3 primes).
  auto other_parms = heinfer::ckks::EncryptionParameters(4096, {40, 30}, {30});
  const auto other = heinfer::ckks::CKKSContext::create(other_parms);
  heinfer::runtime::LocalClient bad(other, heinfer::ckks::Packing::Complex, std::ldexp(1.0, 30));
  auto st = stub();
  std::string id;
  {
    grpc::ClientContext c;
    const grpc::Status s = proto::open_session(*st, c, "cryptonets", std::string(32, 'x'), good.relin, good.galois,
                                               proto::kKeyChunkBytes, &id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("parameter fingerprint 7878"), std::string::npos) << s.error_message();
  }
  {
    grpc::ClientContext c;
    const grpc::Status s = proto::open_session(*st, c, "cryptonets", info.fingerprint(),
                                               str(heinfer::ckks::to_bytes(bad.evaluation_keys().relin, *other)),
                                               good.galois, proto::kKeyChunkBytes, &id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("relinearization keys rejected"), std::string::npos) << s.error_message();
  }
  // A good session (keys in 64 KiB chunks), then an input ciphertext of other parameters.
  ASSERT_GT(good.relin.size(), std::size_t{64 << 10});
  ASSERT_TRUE(open(*st, "cryptonets", info, good, &id, 64 << 10).ok());
  auto c = ctx();
  auto stream = st->Infer(c.get());
  proto::ClientMessage m;
  m.mutable_start()->set_session_id(id);
  m.mutable_start()->set_batch(1);
  ASSERT_TRUE(stream->Write(m));
  proto::ServerMessage sm;
  ASSERT_TRUE(stream->Read(&sm));  // the server asks for the input's elements
  ASSERT_TRUE(sm.has_encrypt()) << sm.DebugString();
  heinfer::runtime::PlainTensor x;
  x.shape = {1};
  x.batch = 1;
  x.data = {0.5};
  const auto cts = bad.encrypt_tensor(x, "x", 1.0);
  m.Clear();
  m.mutable_input()->add_ciphertexts(str(heinfer::ckks::to_bytes(cts[0], *other)));
  m.mutable_input()->set_last(true);
  stream->Write(m);
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&sm));
  const grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("ciphertext rejected"), std::string::npos) << s.error_message();
  // The failed stream freed the session.
  EXPECT_EQ(close(*st, id).error_code(), grpc::StatusCode::NOT_FOUND);
}

/// Runs one Infer call with the given client messages; returns the final status.
grpc::Status infer_with(proto::Inference::Stub& st, const std::vector<proto::ClientMessage>& msgs) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + 60s);
  auto stream = st.Infer(&c);
  for (const auto& m : msgs) {
    if (!stream->Write(m)) break;
  }
  stream->WritesDone();
  proto::ServerMessage sm;
  while (stream->Read(&sm)) {
  }
  return stream->Finish();
}

/// A field of /proc/PID/status in bytes (VmRSS, VmHWM); -1 if absent.
std::int64_t proc_status_bytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  return -1;
}

TEST_F(RemoteTest, MaliciousClientCannotGrowTheServer) {
  // A fresh server: its peak RSS then measures only this client. The client streams
  // input chunks without `last` far beyond the 784 ciphertexts asked for, sends a message
  // over the limit and asks for the statistics without authentication; the server
  // refuses each and its peak stays within a few messages of its idle size.
  const proto::ModelInfo info = model_info("fmnist");
  const Keys k(info);
  std::string p2;
  auto srv = start_server("malicious_client.log", {}, &p2, {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  const std::int64_t idle = proc_status_bytes(srv->pid, "VmRSS");
  ASSERT_GT(idle, 0);
  auto st = proto::Inference::NewStub(channel(p2, "ca.pem", "", 128));
  std::string id;
  ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
  heinfer::runtime::PlainTensor x;
  x.shape = {1};
  x.batch = 1;
  x.data = {0.25};
  const std::string ct = str(heinfer::ckks::to_bytes(k.client->encrypt_tensor(x, "x", 1.0)[0], *k.context));
  proto::ClientMessage start;
  start.mutable_start()->set_session_id(id);
  start.mutable_start()->set_batch(1);
  proto::ClientMessage chunk;  // 300 ciphertexts without `last`, sent 20 times: 6000 for 784
  for (int i = 0; i < 300; ++i) chunk.mutable_input()->add_ciphertexts(ct);
  std::vector<proto::ClientMessage> flood = {start};
  for (int i = 0; i < 20; ++i) flood.push_back(chunk);
  const grpc::Status s = infer_with(*st, flood);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("more than the 784 ciphertexts asked for"), std::string::npos) << s.error_message();
  close(*st, id);
  {
    proto::ModelInfoRequest req;  // over --max-message-mib
    req.set_model(std::string((65u << 20), 'a'));
    proto::ModelInfo out;
    auto c = ctx();
    EXPECT_EQ(st->GetModelInfo(c.get(), req, &out).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    proto::ServerStats out;  // not on the admin socket, no client certificate
    auto c = ctx();
    EXPECT_EQ(st->GetStats(c.get(), proto::StatsRequest(), &out).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  const std::int64_t peak = proc_status_bytes(srv->pid, "VmHWM");
  const double flood_bytes = 20.0 * 300.0 * static_cast<double>(ct.size());
  std::printf("server idle %.1f MiB, peak %.1f MiB after a %.1f MiB flood\n", idle / 1048576.0, peak / 1048576.0,
              flood_bytes / 1048576.0);
  // Two chunks in flight and the 65 MiB message, at most: far below the flood.
  EXPECT_LT(peak - idle, std::int64_t{320} << 20);
  EXPECT_LT(static_cast<double>(peak - idle), 0.5 * flood_bytes);
}

TEST_F(RemoteTest, MalformedOversizedAndTruncatedMessagesGetClearErrors) {
  const proto::ModelInfo info = model_info();
  const Keys k(info);
  auto st = proto::Inference::NewStub(channel("", "ca.pem", "", 128));
  // Raw bytes that are not a protobuf message, through a generic stub.
  {
    grpc::GenericStub generic(channel());
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 30s);
    const std::string garbage = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01garbage";
    grpc::Slice slice(garbage);
    grpc::ByteBuffer req(&slice, 1), resp;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status s;
    generic.UnaryCall(&c, "/heinfer.protocol.Inference/GetModelInfo", grpc::StubOptions(), &req, &resp,
                      [&](grpc::Status status) {
                        std::lock_guard lock(mu);
                        s = status;
                        done = true;
                        cv.notify_all();
                      });
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return done; }));
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  // Oversized: a message beyond --max-message-mib (64 MiB).
  {
    proto::ModelInfoRequest req;
    req.set_model(std::string((65u << 20), 'a'));
    proto::ModelInfo out;
    auto c = ctx();
    const grpc::Status s = st->GetModelInfo(c.get(), req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  }
  // OpenSession: no header; declared key sizes out of range; truncated keys; garbage keys
  // (CryptoNets: a model whose sessions carry keys).
  const proto::ModelInfo cn_info = model_info("cryptonets");
  const Keys cn(cn_info);
  {
    grpc::ClientContext c;
    proto::OpenSessionReply reply;
    auto w = st->OpenSession(&c, &reply);
    proto::OpenSessionChunk chunk;
    chunk.set_keys("abc");
    w->Write(chunk);
    w->WritesDone();
    const grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("must begin with a header"), std::string::npos) << s.error_message();
  }
  std::string id;
  {
    grpc::ClientContext c;
    const std::string huge(static_cast<std::size_t>(cn_info.max_key_bytes()) + 1, '\0');
    proto::OpenSessionReply reply;
    auto w = st->OpenSession(&c, &reply);
    proto::OpenSessionChunk chunk;
    chunk.mutable_header()->set_model("cryptonets");
    chunk.mutable_header()->set_fingerprint(cn_info.fingerprint());
    chunk.mutable_header()->set_relin_bytes(cn_info.max_key_bytes() + 1);
    chunk.mutable_header()->set_galois_bytes(1000);
    w->Write(chunk);
    w->WritesDone();
    const grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("declared key sizes"), std::string::npos) << s.error_message();
  }
  {
    grpc::ClientContext c;
    const grpc::Status s = proto::open_session(*st, c, "cryptonets", cn_info.fingerprint(), cn.relin.substr(0, cn.relin.size() - 100),
                                               cn.galois, proto::kKeyChunkBytes, &id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("relinearization keys rejected"), std::string::npos) << s.error_message();
  }
  {
    // The header declares the full size; the stream ends early.
    grpc::ClientContext c;
    proto::OpenSessionReply reply;
    auto w = st->OpenSession(&c, &reply);
    proto::OpenSessionChunk chunk;
    chunk.mutable_header()->set_model("cryptonets");
    chunk.mutable_header()->set_fingerprint(cn_info.fingerprint());
    chunk.mutable_header()->set_relin_bytes(static_cast<std::int64_t>(cn.relin.size()));
    chunk.mutable_header()->set_galois_bytes(static_cast<std::int64_t>(cn.galois.size()));
    w->Write(chunk);
    chunk.set_keys(cn.relin.substr(0, 1000));
    w->Write(chunk);
    w->WritesDone();
    const grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("ended after 1000 of"), std::string::npos) << s.error_message();
  }
  {
    grpc::ClientContext c;
    std::string garbage = cn.relin;
    for (std::size_t i = 48; i < garbage.size(); i += 7) garbage[i] = static_cast<char>(0xA5);
    const grpc::Status s = proto::open_session(*st, c, "cryptonets", cn_info.fingerprint(), garbage, cn.galois,
                                               proto::kKeyChunkBytes, &id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("relinearization keys rejected"), std::string::npos) << s.error_message();
  }
  {
    // Galois keys without the conjugation key (a rotation instead): refused before use.
    heinfer::ckks::KeyGenerator kg(cn.context);
    const std::string rot = str(heinfer::ckks::to_bytes(kg.create_galois_keys({1}, false), *cn.context));
    grpc::ClientContext c;
    const grpc::Status s =
        proto::open_session(*st, c, "cryptonets", cn_info.fingerprint(), cn.relin, rot, proto::kKeyChunkBytes, &id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("Galois keys rejected: the key for element " +
                                     std::to_string(2 * cn.context->n() - 1) + " is missing"),
              std::string::npos)
        << s.error_message();
    // With the conjugation key but an extra rotation key: only the keys the model needs.
    const std::string extra = str(heinfer::ckks::to_bytes(kg.create_galois_keys({1}, true), *cn.context));
    grpc::ClientContext c2;
    const grpc::Status s2 =
        proto::open_session(*st, c2, "cryptonets", cn_info.fingerprint(), cn.relin, extra, proto::kKeyChunkBytes, &id);
    EXPECT_EQ(s2.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s2.error_message();
    EXPECT_NE(s2.error_message().find("is not needed by model 'cryptonets'"), std::string::npos) << s2.error_message();
  }
  // Infer: no Start; bad batch; garbage, truncated ciphertexts; too few ciphertexts.
  proto::ClientMessage input;
  input.mutable_input()->add_ciphertexts("not a ciphertext");
  input.mutable_input()->set_last(true);
  {
    const grpc::Status s = infer_with(*st, {input});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("must begin with Start"), std::string::npos) << s.error_message();
  }
  heinfer::runtime::PlainTensor x;
  x.shape = {1};
  x.batch = 1;
  x.data = {0.25};
  const std::string ct = str(heinfer::ckks::to_bytes(k.client->encrypt_tensor(x, "x", 1.0)[0], *k.context));
  struct Case {
    std::string what, ct;
    std::int64_t batch;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"bad batch", ct, 0, "batch 0 outside [1, 4096]"},
      {"garbage", "not a ciphertext", 1, "input: ciphertext rejected"},
      {"truncated", ct.substr(0, ct.size() / 2), 1, "input: ciphertext rejected"},
      {"too few", ct, 1, "input: expected 784 ciphertexts, got 1"},
  };
  for (const Case& cs : cases) {
    ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok()) << cs.what;
    proto::ClientMessage start;
    start.mutable_start()->set_session_id(id);
    start.mutable_start()->set_batch(cs.batch);
    input.mutable_input()->set_ciphertexts(0, cs.ct);
    const grpc::Status s = infer_with(*st, {start, input});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << cs.what;
    EXPECT_NE(s.error_message().find(cs.expect), std::string::npos) << cs.what << ": " << s.error_message();
    close(*st, id);
  }
  // More ciphertexts than the server asked for: refused as the chunk arrives, before the
  // server holds them (a client cannot grow the server's memory past its request).
  {
    ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
    proto::ClientMessage start;
    start.mutable_start()->set_session_id(id);
    start.mutable_start()->set_batch(1);
    proto::ClientMessage many;  // two chunks of 400 (each within the message limit)
    for (int i = 0; i < 400; ++i) many.mutable_input()->add_ciphertexts(ct);
    const grpc::Status s = infer_with(*st, {start, many, many});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("input: more than the 784 ciphertexts asked for"), std::string::npos)
        << s.error_message();
    close(*st, id);
  }
  // A stream that ends in the middle of the inputs.
  {
    ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
    proto::ClientMessage start;
    start.mutable_start()->set_session_id(id);
    start.mutable_start()->set_batch(1);
    input.mutable_input()->set_ciphertexts(0, ct);
    input.mutable_input()->set_last(false);
    const grpc::Status s = infer_with(*st, {start, input});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
    EXPECT_NE(s.error_message().find("client disconnected during input"), std::string::npos) << s.error_message();
    EXPECT_EQ(close(*st, id).error_code(), grpc::StatusCode::NOT_FOUND);  // freed
  }
  EXPECT_TRUE(server->running());
  EXPECT_EQ(model_info().capacity(), 4096);
  EXPECT_EQ(stats().open_sessions(), 0);
}

TEST_F(RemoteTest, ClientKilledMidInferenceFreesTheSession) {
  std::string p2;
  auto srv = start_server("killed_client_server.log", {"--max-sessions", "1"}, &p2,
                          {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  Process client(client_args(p2, "killed_mid.npy"), dir / "killed_mid_client.log");
  ASSERT_FALSE(client.wait_for(R"(round 1 /relu1/Relu)", 180s).empty()) << client.output();
  client.kill_now();
  ASSERT_FALSE(srv->wait_for("session [0-9a-f]+ dropped", 120s).empty()) << srv->output();
  auto st = proto::Inference::NewStub(channel(p2));
  EXPECT_EQ(stats(p2).open_sessions(), 0);
  EXPECT_EQ(stats(p2).reserved_bytes(), 0);
  // --max-sessions 1: a new session is admitted, so the old one is really gone.
  const proto::ModelInfo info = model_info(*st, "fmnist");
  const Keys k(info);
  std::string id;
  EXPECT_TRUE(open(*st, "fmnist", info, k, &id).ok());
  EXPECT_TRUE(srv->running());
  EXPECT_FALSE(fs::exists(dir / "killed_mid.npy"));
}

TEST_F(RemoteTest, ServerKilledGivesClearClientError) {
  std::string p2;
  auto srv = start_server("killed_server.log", {}, &p2, {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  Process client(client_args(p2, "killed.npy"), dir / "killed_client.log");
  ASSERT_FALSE(srv->wait_for("session [0-9a-f]+ opened", 120s).empty()) << srv->output() << client.output();
  srv->kill_now();
  ASSERT_EQ(client.wait(120s), 1) << client.output();
  EXPECT_NE(client.output().find("heinfer: error: "), std::string::npos) << client.output();
  EXPECT_NE(client.output().find("on localhost:" + p2 + " failed"), std::string::npos) << client.output();
  EXPECT_FALSE(fs::exists(dir / "killed.npy"));
}

TEST_F(RemoteTest, ServerRestartedSessionIsUnknown) {
  std::string p2;
  const std::vector<std::string> cnn = {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()};
  auto srv = start_server("restart_a.log", {}, &p2, cnn);
  ASSERT_TRUE(srv);
  auto st = proto::Inference::NewStub(channel(p2));
  const proto::ModelInfo info = model_info(*st, "fmnist");
  const Keys k(info);
  std::string id;
  ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
  srv->kill_now();
  std::string p3;
  auto again = start_server("restart_b.log", {}, &p3, cnn, "127.0.0.1:" + p2);
  ASSERT_TRUE(again);
  ASSERT_EQ(p3, p2);
  st = proto::Inference::NewStub(channel(p2));  // a client reconnecting
  proto::ClientMessage start;
  start.mutable_start()->set_session_id(id);
  start.mutable_start()->set_batch(1);
  const grpc::Status s = infer_with(*st, {start});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  EXPECT_NE(s.error_message().find("the server restarted): open a new session"), std::string::npos)
      << s.error_message();
  // Same parameters after a restart (same calibration): the client's keys still fit.
  EXPECT_TRUE(open(*st, "fmnist", info, k, &id).ok());
}

TEST_F(RemoteTest, MaxSessionsIsEnforced) {
  std::string p2;
  auto srv = start_server("max_server.log", {"--max-sessions", "1"}, &p2,
                          {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  const proto::ModelInfo info = model_info();
  const Keys k(info);
  auto st = proto::Inference::NewStub(channel(p2));
  std::string r1, r2, r3;
  EXPECT_TRUE(open(*st, "fmnist", info, k, &r1).ok());
  const grpc::Status s = open(*st, "fmnist", info, k, &r2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("--max-sessions"), std::string::npos) << s.error_message();
  EXPECT_TRUE(close(*st, r1).ok());
  EXPECT_TRUE(open(*st, "fmnist", info, k, &r3).ok());  // freed on close
}

TEST_F(RemoteTest, IdleSessionExpires) {
  std::string p2;
  auto srv = start_server("timeout_server.log", {"--session-timeout", "1"}, &p2,
                          {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  const proto::ModelInfo info = model_info();
  const Keys k(info);
  auto st = proto::Inference::NewStub(channel(p2));
  std::string id;
  ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
  EXPECT_FALSE(srv->wait_for("session [0-9a-f]+ expired", 10s).empty()) << srv->output();
  proto::ClientMessage start;
  start.mutable_start()->set_session_id(id);
  start.mutable_start()->set_batch(1);
  const grpc::Status s = infer_with(*st, {start});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("unknown or expired session"), std::string::npos) << s.error_message();
  EXPECT_EQ(close(*st, id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(stats(p2).reserved_bytes(), 0);
}

TEST_F(RemoteTest, SigtermShutsDownCleanly) {
  std::string p2;
  auto srv = start_server("sigterm_server.log", {}, &p2, {"fmnist=" + (kModels / "fmnist_cnn.onnx").string()});
  ASSERT_TRUE(srv);
  const proto::ModelInfo info = model_info();
  const Keys k(info);
  auto st = proto::Inference::NewStub(channel(p2));
  std::string id;
  ASSERT_TRUE(open(*st, "fmnist", info, k, &id).ok());
  // An Infer call in flight, blocked waiting for the inputs it asked for.
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + 60s);
  auto stream = st->Infer(&c);
  proto::ClientMessage m;
  m.mutable_start()->set_session_id(id);
  m.mutable_start()->set_batch(1);
  ASSERT_TRUE(stream->Write(m));
  proto::ServerMessage sm;
  ASSERT_TRUE(stream->Read(&sm));
  ASSERT_TRUE(sm.has_encrypt()) << sm.DebugString();
  ASSERT_EQ(::kill(srv->pid, SIGTERM), 0);
  EXPECT_EQ(srv->wait(30s), 0) << srv->output();
  EXPECT_NE(srv->output().find("received SIGTERM: shutting down"), std::string::npos) << srv->output();
  EXPECT_NE(srv->output().find("server stopped"), std::string::npos) << srv->output();
  EXPECT_FALSE(stream->Read(&sm));
  EXPECT_FALSE(stream->Finish().ok());
}

TEST_F(RemoteTest, FinalSoftmaxAndLogSoftmaxAreAppliedByTheClient) {
  // Tiny models [1,4,4] -> Flatten -> Gemm(16->8) -> Relu -> Gemm(8->5) -> (Log)Softmax,
  // served remotely; outputs must match the plaintext executor (`heinfer run --plain`).
  std::vector<float> w1(16 * 8), w2(8 * 5), b1(8), b2(5);
  for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = static_cast<float>(std::sin(1.3 * static_cast<double>(i)) * 0.4);
  for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<float>(std::cos(0.7 * static_cast<double>(i)) * 0.6);
  for (std::size_t i = 0; i < b1.size(); ++i) b1[i] = 0.05f * static_cast<float>(i) - 0.2f;
  for (std::size_t i = 0; i < b2.size(); ++i) b2[i] = 0.1f * static_cast<float>(i);
  for (const std::string op : {"Softmax", "LogSoftmax"}) {
    heinfer::test::ModelBuilder b;
    b.input("x", {1, 4, 4}).output("y");
    b.initializer("w1", {8, 16}, w1).initializer("b1", {8}, b1).initializer("w2", {5, 8}, w2).initializer("b2", {5}, b2);
    b.node("Flatten", {"x"}, {"f"});
    heinfer::test::attr(b.node("Gemm", {"f", "w1", "b1"}, {"h"}), "transB", std::int64_t{1});
    b.node("Relu", {"h"}, {"r"});
    heinfer::test::attr(b.node("Gemm", {"r", "w2", "b2"}, {"z"}), "transB", std::int64_t{1});
    heinfer::test::attr(b.node(op, {"z"}, {"y"}), "axis", std::int64_t{-1});
    std::ofstream(dir / (op + ".onnx"), std::ios::binary) << b.bytes();
  }
  std::vector<double> xs(32 * 16);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37 * static_cast<double>(i));
  heinfer::runtime::write_npy(dir / "sm_cal.npy", heinfer::runtime::make_npy(heinfer::runtime::NpyDType::Float32, {32, 1, 4, 4}, xs));
  heinfer::runtime::write_npy(dir / "lsm_cal.npy", heinfer::runtime::make_npy(heinfer::runtime::NpyDType::Float32, {32, 1, 4, 4}, xs));
  std::string p2;
  auto srv = start_server("softmax_server.log", {}, &p2,
                          {"sm=" + (dir / "Softmax.onnx").string(), "lsm=" + (dir / "LogSoftmax.onnx").string()});
  ASSERT_TRUE(srv);
  for (const auto& [name, op] : std::vector<std::pair<std::string, std::string>>{{"sm", "Softmax"}, {"lsm", "LogSoftmax"}}) {
    Process cli(client_args(p2, name + "_remote.npy", "ca.pem", name, (dir / "sm_cal.npy").string()),
                dir / (name + "_client.log"));
    ASSERT_EQ(cli.wait(120s), 0) << cli.output();
    Process ref({kTool.string(), "run", (dir / (op + ".onnx")).string(), "--plain", "--input", (dir / "sm_cal.npy").string(),
                 "--output", (dir / (name + "_plain.npy")).string()},
                dir / (name + "_plain.log"));
    ASSERT_EQ(ref.wait(60s), 0) << ref.output();
    const auto y = heinfer::runtime::read_npy(dir / (name + "_remote.npy")).to_double();
    const auto want = heinfer::runtime::read_npy(dir / (name + "_plain.npy")).to_double();
    ASSERT_EQ(y.size(), 32u * 5u);
    EXPECT_LT(max_abs_diff(y, want), 1e-3) << op;
    EXPECT_EQ(top1(y, 5), top1(want, 5)) << op;
    for (std::size_t r = 0; r < 32; ++r) {  // rows are (log-)probabilities: not the raw logits
      double sum = 0;
      for (std::size_t j = 0; j < 5; ++j) sum += op == "Softmax" ? y[r * 5 + j] : std::exp(y[r * 5 + j]);
      EXPECT_NEAR(sum, 1.0, 1e-4) << op << " row " << r;
    }
  }
}

TEST_F(RemoteTest, ModelWithTwoOutputsIsRefusedAtStartup) {
  heinfer::test::ModelBuilder b;
  b.input("x", {4}).output("y").output("z");
  b.initializer("w", {3, 4}, std::vector<float>(12, 0.5f));
  heinfer::test::attr(b.node("Gemm", {"x", "w"}, {"y"}), "transB", std::int64_t{1});
  b.node("Relu", {"y"}, {"z"});
  std::ofstream(dir / "two_outputs.onnx", std::ios::binary) << b.bytes();
  std::vector<double> xs(8 * 4, 0.25);
  heinfer::runtime::write_npy(dir / "two_cal.npy", heinfer::runtime::make_npy(heinfer::runtime::NpyDType::Float32, {8, 4}, xs));
  Process srv({kTool.string(), "serve", "--model", "two=" + (dir / "two_outputs.onnx").string(), "--calibration",
               "two=" + (dir / "two_cal.npy").string(), "--listen", "127.0.0.1:0", "--insecure"},
              dir / "two_server.log");
  ASSERT_EQ(srv.wait(60s), 1) << srv.output();
  EXPECT_NE(srv.output().find("model 'two' has 1 inputs and 2 outputs: serve supports one input and one output"),
            std::string::npos)
      << srv.output();
}

TEST_F(RemoteTest, ModelPrivateIsTheServersDefault) {
  // `heinfer serve` without --privacy: Relu and MaxPool evaluated on the server, the
  // client answering only the announced blind refreshes (its ScheduleCheck refuses
  // anything else) and sending its public key; the outputs match the plaintext model
  // within the approximations' error (η = 2^-8 of each bound).
  heinfer::test::ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y");
  b.initializer("w", {2, 1, 3, 3}, heinfer::test::random_floats(18, 51));
  heinfer::test::attr(b.node("Conv", {"x", "w"}, {"c"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  auto& pool = b.node("MaxPool", {"r"}, {"p"});
  heinfer::test::attr(pool, "kernel_shape", std::vector<std::int64_t>{2, 2});
  heinfer::test::attr(pool, "strides", std::vector<std::int64_t>{2, 2});
  b.node("Flatten", {"p"}, {"f"});
  b.initializer("g", {3, 8}, heinfer::test::random_floats(24, 52));
  heinfer::test::attr(b.node("Gemm", {"f", "g"}, {"y"}), "transB", std::int64_t{1});
  std::ofstream(dir / "private.onnx", std::ios::binary) << b.bytes();
  std::vector<double> x(8 * 16);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.61 * static_cast<double>(i));
  heinfer::runtime::write_npy(dir / "private_cal.npy",
                              heinfer::runtime::make_npy(heinfer::runtime::NpyDType::Float32, {8, 1, 4, 4}, x));
  std::string p2;
  auto srv = start_server("private_server.log", {"--privacy", "model"}, &p2,
                          {"private=" + (dir / "private.onnx").string()});
  ASSERT_TRUE(srv);
  EXPECT_NE(srv->output().find("privacy=model"), std::string::npos) << srv->output();
  Process client(client_args(p2, "private.npy", "ca.pem", "private", (dir / "private_cal.npy").string()),
                 dir / "private_client.log");
  ASSERT_EQ(client.wait(600s), 0) << client.output();
  EXPECT_NE(client.output().find("model-private: blind refreshes only"), std::string::npos) << client.output();
  EXPECT_NE(client.output().find("and public key"), std::string::npos) << client.output();
  const auto y = heinfer::runtime::read_npy(dir / "private.npy").to_double();
  const auto g = b.load();
  const auto ref = heinfer::runtime::to_batch_major(heinfer::runtime::run_plain(
      g, {heinfer::runtime::from_batch_major(std::span<const double>(x), 8, {1, 4, 4})})[0]);
  ASSERT_EQ(y.size(), ref.size());
  double largest = 0;
  for (double v : ref) largest = std::max(largest, std::fabs(v));
  EXPECT_LT(max_abs_diff(y, ref), 3e-2 * (1 + largest));
  std::printf("model-private over TLS: max |error| %.2e (largest |y| %.2f)\n%s\n", max_abs_diff(y, ref), largest,
              client.output().c_str());
}

TEST_F(RemoteTest, UnmaskedRoundsOnlyWhenTheOperatorAllowsThem) {
  // A Sigmoid gate (docs/security.md, claim 8): refused at load time by default, served
  // with --allow-unmasked-rounds, and the client's outputs match the plaintext run.
  heinfer::test::ModelBuilder b;
  b.input("x", {6}).output("y");
  b.initializer("w", {4, 6}, heinfer::test::random_floats(24, 7));
  heinfer::test::attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
  b.node("Sigmoid", {"h"}, {"y"});
  {
    std::ofstream f(dir / "gate.onnx", std::ios::binary);
    f << b.bytes();
  }
  std::vector<double> x(16 * 6);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * static_cast<double>(i));
  const auto npy = heinfer::runtime::make_npy(heinfer::runtime::NpyDType::Float32, {16, 6}, x);
  heinfer::runtime::write_npy(dir / "gate_cal.npy", npy);
  const std::string model = "gate=" + (dir / "gate.onnx").string();
  {
    Process refused({kTool.string(), "serve", "--insecure", "--listen", "127.0.0.1:0", "--model", model,
                     "--calibration", "gate=" + (dir / "gate_cal.npy").string(), "--privacy", "activations"},
                    dir / "gate_refused.log");
    EXPECT_NE(refused.wait(120s), 0);
    EXPECT_NE(refused.output().find("--allow-unmasked-rounds"), std::string::npos) << refused.output();
  }
  std::string p2;
  auto srv = start_server("gate_server.log", {"--allow-unmasked-rounds"}, &p2, {model});
  ASSERT_TRUE(srv);
  Process client(client_args(p2, "gate.npy", "ca.pem", "gate", (dir / "gate_cal.npy").string()), dir / "gate_client.log");
  ASSERT_EQ(client.wait(300s), 0) << client.output();
  const auto y = heinfer::runtime::read_npy(dir / "gate.npy").to_double();
  ASSERT_EQ(y.size(), 16u * 4u);
  const auto g = b.load();
  const auto ref = heinfer::runtime::run_plain(g, {heinfer::runtime::from_batch_major(std::span<const double>(
                                                      heinfer::runtime::read_npy(dir / "gate_cal.npy").to_double()),
                                                  16, {6})});
  const auto r = heinfer::runtime::to_batch_major(ref[0]);
  EXPECT_LT(max_abs_diff(y, r), 1e-3);
}

}  // namespace
