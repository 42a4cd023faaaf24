// Writes the seed corpora of the libFuzzer targets (tests/fuzz/): valid objects made by
// heinfer's own serializers with the small contexts of tests/fuzz/fuzz_common.h and
// fuzz_protocol.h, the ONNX models of fuzz_models.h, and the parameter JSON files a user
// passes to --params. Built with the fuzzers (HEINFER_BUILD_FUZZERS=ON):
//   build-fuzz/fuzz_corpus tests/fuzz/corpus
// replaces every <dir>/<target>/seed_* file (regression inputs, named otherwise, stay).
// Keys and ciphertexts are random (fresh secret key): seeds differ between runs, their
// structure does not.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "ckks/evaluator.h"
#include "ckks/keygen.h"
#include "ckks/secret_key_io.h"
#include "ckks/serialization.h"
#include "fuzz_common.h"
#include "fuzz_models.h"
#include "fuzz_protocol.h"
#include "runtime/npy.h"

namespace {

using namespace heinfer;
namespace fs = std::filesystem;

fs::path g_root;

std::string str(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / ("seed_" + name), std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

void clear_seeds(const fs::path& root) {
  if (!fs::exists(root)) return;
  for (const auto& d : fs::directory_iterator(root)) {
    if (!d.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(d.path())) {
      if (f.path().filename().string().rfind("seed_", 0) == 0) fs::remove(f.path());
    }
  }
}

/// Ciphertexts of `ctx` (values in [-1, 1]) at `level`.
struct Objects {
  ckks::ContextPtr ctx;
  ckks::KeyGenerator keygen;
  ckks::CKKSEncoder encoder;
  ckks::Encryptor encryptor;
  explicit Objects(ckks::ContextPtr c)
      : ctx(c), keygen(c), encoder(c), encryptor(c, keygen.create_public_key(), keygen.secret_key()) {}

  ckks::Ciphertext encrypt(std::size_t level, bool seeded) {
    std::vector<double> v(encoder.slot_count());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i % 7) / 7.0 - 0.5;
    ckks::Plaintext p;
    encoder.encode(v, std::ldexp(1.0, 20), level, p);
    ckks::Ciphertext ct;
    if (seeded) {
      encryptor.encrypt_symmetric(p, ct);
      ct.compact();
    } else {
      encryptor.encrypt(p, ct);
    }
    return ct;
  }
};

void ckks_objects() {
  const ckks::CKKSContext& ctx = fuzz::context();
  Objects o(fuzz::context_ptr());
  write("fuzz_load_parameters", "fuzz_context", str(ckks::to_bytes(ctx.parameters())));
  write("fuzz_load_parameters", "client_context", str(ckks::to_bytes(fuzz::client_context()->parameters())));
  write("fuzz_load_parameters", "n16_one_prime",
        str(ckks::to_bytes(ckks::CKKSContext::create(ckks::EncryptionParameters(16, {40}, {41},
                                                                                 ckks::SecurityLevel::None))
                               ->parameters())));
  write("fuzz_load_public_key", "seeded", str(ckks::to_bytes(o.keygen.create_public_key(), ctx)));
  write("fuzz_load_relin_keys", "seeded", str(ckks::to_bytes(o.keygen.create_relin_keys(), ctx)));
  write("fuzz_load_galois_keys", "conjugation",
        str(ckks::to_bytes(o.keygen.create_galois_keys_for_elements({ckks::galois_element_conjugate(ctx.n())}), ctx)));
  write("fuzz_load_galois_keys", "rotations", str(ckks::to_bytes(o.keygen.create_galois_keys({1, -2}), ctx)));
  write("fuzz_load_secret_key", "ternary", str(ckks::secret_key_to_bytes(o.keygen.secret_key(), ctx)));
  write("fuzz_load_ciphertext", "full_level1", str(ckks::to_bytes(o.encrypt(1, false), ctx)));
  write("fuzz_load_ciphertext", "full_level0", str(ckks::to_bytes(o.encrypt(0, false), ctx)));
  write("fuzz_load_ciphertext", "seeded_level1", str(ckks::to_bytes(o.encrypt(1, true), ctx)));
  {  // a product before relinearization: three polynomials
    ckks::Evaluator ev(fuzz::context_ptr());
    ckks::Ciphertext a = o.encrypt(1, false), c;
    ev.multiply(a, a, c);
    write("fuzz_load_ciphertext", "size3", str(ckks::to_bytes(c, ctx)));
  }
}

void npy_files() {
  using runtime::NpyDType;
  const std::vector<double> v = {0.5, -1.25, 3.0, 4.0, -7.0, 1e-3};
  auto put = [](const std::string& name, const runtime::NpyArray& a) {
    const std::vector<unsigned char> b = runtime::serialize_npy(a);
    write("fuzz_parse_npy", name, std::string(b.begin(), b.end()));
  };
  put("f4_2x3", runtime::make_npy(NpyDType::Float32, {2, 3}, v));
  put("f8_6", runtime::make_npy(NpyDType::Float64, {6}, v));
  put("i8_3x1x2", runtime::make_npy(NpyDType::Int64, {3, 1, 2}, std::vector<double>{1, -2, 3, 4, 5, -6}));
  put("f4_scalar", runtime::make_npy(NpyDType::Float32, {}, std::vector<double>{2.5}));
  put("f8_empty", runtime::make_npy(NpyDType::Float64, {0, 4}, std::vector<double>{}));
  runtime::NpyArray i4;
  i4.dtype = NpyDType::Int32;
  i4.shape = {2};
  i4.bytes = {1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff};
  put("i4_2", i4);
  runtime::NpyArray u1;
  u1.dtype = NpyDType::UInt8;
  u1.shape = {1, 3};
  u1.bytes = {0, 7, 255};
  put("u1_1x3", u1);
}

void onnx_models() {
  for (const auto& [name, bytes] : fuzz::seed_models()) write("fuzz_load_onnx", name, bytes);
}

void parameter_json() {
  auto put = [](const std::string& name, const nlohmann::json& j) { write("fuzz_parameters_json", name, j.dump()); };
  put("n4096", {{"n", 4096}, {"coeff_bits", {40, 30, 30}}, {"special_bits", {40}}, {"scale_bits", 30}});
  put("n8192_no_scale", {{"n", 8192}, {"coeff_bits", {50, 30, 30, 30}}, {"special_bits", {50}}});
  put("n2048_too_small", {{"n", 2048}, {"coeff_bits", {27}}, {"special_bits", {27}}, {"scale_bits", 20}});
  put("n16384_two_special", {{"n", 16384}, {"coeff_bits", {60, 40, 40}}, {"special_bits", {60, 60}}, {"scale_bits", 40}});
}

void server_streams() {
  const ckks::CKKSContext& ctx = fuzz::context();
  Objects o(fuzz::context_ptr());
  const std::string relin = str(ckks::to_bytes(o.keygen.create_relin_keys(), ctx));
  const std::string conj =
      str(ckks::to_bytes(o.keygen.create_galois_keys_for_elements({ckks::galois_element_conjugate(ctx.n())}), ctx));
  auto session = [&](const std::string& model, const std::vector<std::string>& parts, std::size_t chunk) {
    std::string out, keys;
    protocol::OpenSessionChunk c;
    protocol::OpenSessionHeader* h = c.mutable_header();
    h->set_model(model);
    h->set_fingerprint(std::string(ctx.fingerprint().begin(), ctx.fingerprint().end()));
    h->set_relin_bytes(static_cast<std::int64_t>(parts[0].size()));
    h->set_galois_bytes(parts.size() > 1 ? static_cast<std::int64_t>(parts[1].size()) : 0);
    fuzz::append_frame(out, c.SerializeAsString());
    for (const std::string& p : parts) keys += p;
    for (std::size_t at = 0; at < keys.size(); at += chunk) {
      c.set_keys(keys.substr(at, chunk));
      fuzz::append_frame(out, c.SerializeAsString());
    }
    return out;
  };
  write("fuzz_server_open_session", "real", session("real", {relin}, std::size_t{1} << 20));
  write("fuzz_server_open_session", "complex_chunked", session("complex", {relin, conj}, 1000));

  auto message = [](auto fill) {
    protocol::ClientMessage m;
    fill(m);
    return m.SerializeAsString();
  };
  auto cts = [&](protocol::CiphertextChunk* c, int n, bool seeded, bool last) {
    for (int i = 0; i < n; ++i) c->add_ciphertexts(str(ckks::to_bytes(o.encrypt(i % 2, seeded), ctx)));
    c->set_last(last);
  };
  std::string s;
  fuzz::append_frame(s, message([](protocol::ClientMessage& m) {
    m.mutable_start()->set_session_id("00");
    m.mutable_start()->set_batch(2);
  }));
  fuzz::append_frame(s, message([&](protocol::ClientMessage& m) { cts(m.mutable_input(), 1, true, false); }));
  fuzz::append_frame(s, message([&](protocol::ClientMessage& m) { cts(m.mutable_input(), 1, true, true); }));
  fuzz::append_frame(s, message([&](protocol::ClientMessage& m) { cts(m.mutable_round_reply(), 2, false, true); }));
  write("fuzz_server_infer", "start_inputs_reply", s);
}

void client_streams() {
  const ckks::CKKSContext& ctx = *fuzz::client_context();
  Objects o(fuzz::client_context());
  write("fuzz_client_model_info", "relu_max", fuzz::client_model_info().SerializeAsString());
  auto ct = [&] { return str(ckks::to_bytes(o.encrypt(0, true), ctx)); };
  auto message = [](auto fill) {
    protocol::ServerMessage m;
    fill(m);
    return m.SerializeAsString();
  };
  std::string s;
  fuzz::append_frame(s, message([](protocol::ServerMessage& m) {
    m.mutable_encrypt()->set_input(0);
    for (std::int64_t r : {0, 1, 2, 4}) m.mutable_encrypt()->add_ranges(r);
  }));
  fuzz::append_frame(s, message([](protocol::ServerMessage& m) {
    m.mutable_encrypt()->add_ranges(1);
    m.mutable_encrypt()->add_ranges(2);
  }));
  fuzz::append_frame(s, message([&](protocol::ServerMessage& m) {
    protocol::RoundRequest* r = m.mutable_round();
    r->set_node(1);
    r->set_function(static_cast<int>(runtime::RoundFunction::Relu));
    r->set_layer("relu");
    r->add_windows()->add_ciphertexts(ct());
    r->set_last(true);
  }));
  fuzz::append_frame(s, message([](protocol::ServerMessage& m) {
    m.mutable_progress()->set_node(1);
    m.mutable_progress()->set_name("relu");
  }));
  fuzz::append_frame(s, message([&](protocol::ServerMessage& m) {
    protocol::RoundRequest* r = m.mutable_round();
    r->set_node(2);
    r->set_function(static_cast<int>(runtime::RoundFunction::Max));
    protocol::Window* w = r->add_windows();
    w->add_ciphertexts(ct());
    w->add_ciphertexts(ct());
    r->set_last(true);
  }));
  fuzz::append_frame(s, message([&](protocol::ServerMessage& m) {
    protocol::OutputChunk* c = m.mutable_output();
    c->add_ciphertexts(ct());
    c->add_ciphertexts("");  // a zero element
    c->add_factors(0.5);
    c->add_factors(2.0);
    c->add_shape(2);
    c->set_batch(1);
    c->set_last(true);
  }));
  fuzz::append_frame(s, message([](protocol::ServerMessage& m) { m.mutable_summary()->set_seconds(1.0); }));
  write("fuzz_client_messages", "full_batch", s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR   (writes CORPUS_DIR/<target>/seed_*)\n", argv[0]);
    return 2;
  }
  try {
    g_root = argv[1];
    clear_seeds(g_root);
    ckks_objects();
    npy_files();
    onnx_models();
    parameter_json();
    server_streams();
    client_streams();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
