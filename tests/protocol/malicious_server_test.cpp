// The real `heinfer client` against a deliberately malicious server: a small gRPC stand-in
// built here serves a real model's announcement (prepare_served_model) and then breaks
// the contract one way per test. The client must refuse with a clear error, send
// nothing more after the offending message, and write no output.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../common/onnx_builder.h"
#include "ckks/evaluator.h"
#include "ckks/serialization.h"
#include "process.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"
#include "protocol/served_model.h"
#include "protocol/wire.h"
#include "runtime/npy.h"

namespace heinfer::protocol {
namespace {

namespace fs = std::filesystem;

/// Expects `call` to throw std::runtime_error whose message contains `text`.
template <class Call>
void expect_refused(Call call, const std::string& text) {
  try {
    (void)call();
    ADD_FAILURE() << "no exception (expected '" << text << "')";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}
using namespace std::chrono_literals;
using test::Process;

const fs::path kTool = fs::path(HEINFER_BINARY_DIR) / "heinfer";

enum class Attack {
  WeakParameters,   ///< N = 2048 with a 320-bit modulus, flagged "none"
  UnannouncedNode,  ///< a round for a node that has none
  ExtraRound,       ///< one round more than announced for the Relu
  TooManyOutputs,   ///< 403 output ciphertexts for a 5-element output
  WrongFactors,     ///< 3 unmasking factors for 5 output ciphertexts
  WrongLevel,       ///< round windows at another level than announced
};

/// Serves `m`'s announcement, then attacks. Counts the client's messages after the attack.
class StandIn final : public Inference::Service {
 public:
  StandIn(const Model& m, Attack a) : m_(m), attack_(a) {}

  std::atomic<int> sessions{0}, after_attack{0};

  grpc::Status GetModelInfo(grpc::ServerContext*, const ModelInfoRequest*, ModelInfo* out) override {
    *out = m_.info;
    if (attack_ == Attack::WeakParameters) {
      const auto weak = ckks::CKKSContext::create(
          ckks::EncryptionParameters(2048, {60, 50, 50, 50, 50}, {60}, ckks::SecurityLevel::None));
      ckks::EncryptionParameters p = weak->parameters();
      p.set_security_level(ckks::SecurityLevel::None);
      const auto b = ckks::to_bytes(p);
      out->set_parameters(std::string(b.begin(), b.end()));
      const auto& fp = weak->fingerprint();
      out->set_fingerprint(std::string(fp.begin(), fp.end()));
    }
    return grpc::Status::OK;
  }

  /// ListModels: the model twice under one name, with a negative extent, or (weak
  /// parameters) once with the WeakParameters announcement.
  enum class Listing { RepeatedName, NegativeExtent, Weak } listing = Listing::Weak;
  grpc::Status ListModels(grpc::ServerContext* ctx, const ListModelsRequest*, ModelList* out) override {
    ListedModel* l = out->add_models();
    l->set_name("tiny");
    GetModelInfo(ctx, nullptr, l->mutable_info());
    if (listing == Listing::RepeatedName) *out->add_models() = *l;
    if (listing == Listing::NegativeExtent) l->mutable_info()->set_input_shape(0, -4);
    return grpc::Status::OK;
  }

  grpc::Status OpenSession(grpc::ServerContext*, grpc::ServerReader<OpenSessionChunk>* reader,
                           OpenSessionReply* reply) override {
    ++sessions;
    OpenSessionChunk c;
    while (reader->Read(&c)) {
    }
    reply->set_session_id("s");
    return grpc::Status::OK;
  }

  grpc::Status CloseSession(grpc::ServerContext*, const CloseSessionRequest*, CloseSessionReply*) override {
    return grpc::Status::OK;
  }

  grpc::Status Infer(grpc::ServerContext*, grpc::ServerReaderWriter<ServerMessage, ClientMessage>* s) override {
    ClientMessage in;
    if (!s->Read(&in) || !in.has_start()) return {grpc::StatusCode::INVALID_ARGUMENT, "no start"};
    const std::int64_t batch = in.start().batch();
    const std::int64_t elements = 16;  // the model's input: [1, 4, 4]
    ServerMessage msg;
    msg.mutable_encrypt()->set_input(0);
    msg.mutable_encrypt()->add_ranges(0);
    msg.mutable_encrypt()->add_ranges(elements);
    s->Write(msg);
    std::vector<ckks::Ciphertext> inputs;
    while (s->Read(&in) && in.has_input()) {
      for (const std::string& b : in.input().ciphertexts()) {
        inputs.push_back(ckks::load_ciphertext(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()), *m_.context));
      }
      if (in.input().last()) break;
    }
    const RoundSpec& spec = m_.info.schedule(0);
    const ckks::Evaluator eval(m_.context);
    auto window_at = [&](int level) {  // a valid ciphertext of the model's parameters
      ckks::Ciphertext c = inputs.at(0);
      c.expand(*m_.context);
      if (static_cast<std::size_t>(level) < c.level()) eval.mod_switch_to_inplace(c, static_cast<std::size_t>(level));
      return ct_bytes(c, *m_.context);
    };
    auto round = [&](int node, int level) {
      ServerMessage r;
      RoundRequest* rr = r.mutable_round();
      rr->set_node(node);
      rr->set_function(spec.function());
      rr->set_bound(spec.bound());
      rr->set_last(true);
      *rr->add_windows()->add_ciphertexts() = window_at(level);
      s->Write(r);
    };
    auto attack_then_listen = [&] {  // the client must not answer the offending message
      ClientMessage any;
      while (s->Read(&any)) ++after_attack;
      return grpc::Status::OK;
    };
    switch (attack_) {
      case Attack::WeakParameters: break;
      case Attack::UnannouncedNode:
        round(spec.node() + 1, spec.level());
        return attack_then_listen();
      case Attack::WrongLevel:  // a valid ciphertext, one level off
        round(spec.node(), spec.level() < static_cast<int>(m_.context->max_level()) ? spec.level() + 1 : spec.level() - 1);
        return attack_then_listen();
      case Attack::ExtraRound:
        for (int i = 0; i < spec.rounds(); ++i) {  // the announced rounds, answered
          round(spec.node(), spec.level());
          if (!s->Read(&in)) return grpc::Status::OK;
        }
        round(spec.node(), spec.level());
        return attack_then_listen();
      case Attack::TooManyOutputs:
      case Attack::WrongFactors: {
        ServerMessage out;
        OutputChunk* o = out.mutable_output();
        for (auto d : m_.info.output_shape()) o->add_shape(d);
        o->set_batch(batch);
        o->set_bound(1e6);
        o->set_last(true);
        const int count = attack_ == Attack::TooManyOutputs ? 403 : static_cast<int>(m_.info.output_ciphertexts());
        for (int i = 0; i < count; ++i) o->add_ciphertexts(std::string());  // zero elements
        if (attack_ == Attack::WrongFactors) {
          for (int i = 0; i < 3; ++i) o->add_factors(1.0);
        }
        s->Write(out);
        return attack_then_listen();
      }
    }
    return grpc::Status::OK;
  }

 private:
  const Model& m_;
  Attack attack_;
};

class MaliciousServer : public ::testing::TestWithParam<std::pair<Attack, const char*>> {
 protected:
  static inline fs::path dir;
  static inline std::unique_ptr<Model> model;

  static void SetUpTestSuite() {
    dir = fs::temp_directory_path() / ("heinfer_malicious_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    // [1, 4, 4] -> Flatten -> Gemm(16 -> 8) -> Relu -> Gemm(8 -> 5): one client round.
    std::vector<float> w1(16 * 8), w2(8 * 5);
    for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = static_cast<float>(std::sin(1.3 * static_cast<double>(i)) * 0.4);
    for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<float>(std::cos(0.7 * static_cast<double>(i)) * 0.6);
    test::ModelBuilder b;
    b.input("x", {1, 4, 4}).output("y");
    b.initializer("w1", {8, 16}, w1).initializer("w2", {5, 8}, w2);
    b.node("Flatten", {"x"}, {"f"});
    test::attr(b.node("Gemm", {"f", "w1"}, {"h"}), "transB", std::int64_t{1});
    b.node("Relu", {"h"}, {"r"});
    test::attr(b.node("Gemm", {"r", "w2"}, {"y"}), "transB", std::int64_t{1});
    std::ofstream(dir / "tiny.onnx", std::ios::binary) << b.bytes();
    std::vector<double> xs(8 * 16);
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37 * static_cast<double>(i));
    runtime::write_npy(dir / "x.npy", runtime::make_npy(runtime::NpyDType::Float32, {8, 1, 4, 4}, xs));
    model = prepare_served_model({"tiny", (dir / "tiny.onnx").string(), (dir / "x.npy").string()}, 64);
  }
  static void TearDownTestSuite() {
    model.reset();
    if (!std::getenv("HEINFER_KEEP_TEST_DIR")) fs::remove_all(dir);
  }
};

std::string attack_name(const ::testing::TestParamInfo<std::pair<Attack, const char*>>& info) {
  static const char* const names[] = {"WeakParameters", "UnannouncedNode", "ExtraRound",
                                      "TooManyOutputs", "WrongFactors",    "WrongLevel"};
  return names[static_cast<int>(info.param.first)];
}

TEST_P(MaliciousServer, TheClientRefusesAndSendsNothingMore) {
  if (!fs::exists(kTool)) GTEST_SKIP() << "build the `heinfer` target first";
  ASSERT_EQ(model->info.schedule_size(), 1);
  const auto [attack, expect] = GetParam();
  StandIn service(*model, attack);
  grpc::ServerBuilder sb;
  int port = 0;
  sb.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  sb.RegisterService(&service);
  sb.SetMaxReceiveMessageSize(64 << 20);
  auto server = sb.BuildAndStart();
  ASSERT_TRUE(server && port > 0);
  const std::string tag = attack_name({GetParam(), 0});
  const fs::path out = dir / (tag + ".npy");
  std::string address = "127.0.0.1:";
  address += std::to_string(port);
  Process client({kTool.string(), "client", "--insecure", "--server", address, "--model", "tiny", "--input",
                  (dir / "x.npy").string(), "--output", out.string()},
                 dir / (tag + ".log"));
  EXPECT_EQ(client.wait(120s), 1) << client.output();
  EXPECT_NE(client.output().find(expect), std::string::npos) << client.output();
  EXPECT_EQ(service.after_attack.load(), 0) << "the client answered the offending message";
  EXPECT_FALSE(fs::exists(out));
  if (attack == Attack::WeakParameters) {
    EXPECT_EQ(service.sessions.load(), 0) << "keys were sent";
  }
  server->Shutdown();
}

TEST_F(MaliciousServer, ListModelsIsCheckedLikeModelInfo) {
  for (auto listing : {StandIn::Listing::RepeatedName, StandIn::Listing::NegativeExtent, StandIn::Listing::Weak}) {
    StandIn service(*model, listing == StandIn::Listing::Weak ? Attack::WeakParameters : Attack::UnannouncedNode);
    service.listing = listing;
    grpc::ServerBuilder sb;
    int port = 0;
    sb.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    sb.RegisterService(&service);
    auto server = sb.BuildAndStart();
    ASSERT_TRUE(server && port > 0);
    ClientOptions o;
    o.server = "127.0.0.1:" + std::to_string(port);
    o.insecure = true;
    switch (listing) {
      case StandIn::Listing::RepeatedName:
        expect_refused([&] { return list_models(o); }, "repeated model name");
        break;
      case StandIn::Listing::NegativeExtent:
        expect_refused([&] { return list_models(o); }, "has an extent -4");
        break;
      case StandIn::Listing::Weak: {
        const auto models = list_models(o);
        ASSERT_EQ(models.size(), 1u);
        EXPECT_EQ(models[0].name, "tiny");
        EXPECT_NE(models[0].refused.find("exceeds the 128-bit security limit"), std::string::npos) << models[0].refused;
        EXPECT_EQ(models[0].poly_modulus_degree, 0);
        break;
      }
    }
    server->Shutdown();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Attacks, MaliciousServer,
    ::testing::Values(std::make_pair(Attack::WeakParameters, "exceeds the 128-bit security limit"),
                      std::make_pair(Attack::UnannouncedNode, "which has none"),
                      std::make_pair(Attack::ExtraRound, "rounds announced"),
                      std::make_pair(Attack::TooManyOutputs, "more output ciphertexts than the 5 announced"),
                      std::make_pair(Attack::WrongFactors, "3 output factors for 5"),
                      std::make_pair(Attack::WrongLevel, "a ciphertext at level")),
    attack_name);

}  // namespace
}  // namespace heinfer::protocol
