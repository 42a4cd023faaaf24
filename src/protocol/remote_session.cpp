// RemoteSession (remote.h): the data owner's side of a session with a `heinfer serve`:
// keys, encryption, the client-aided rounds, decryption.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "ckks/secret_key_io.h"
#include "ckks/serialization.h"
#include "memory/bytes.h"
#include "protocol/client_call.h"
#include "protocol/client_checks.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"
#include "protocol/wire.h"
#include "runtime/atomic_file.h"
#include "runtime/kernels/client_aided.h"
#include "runtime/local_client.h"

namespace heinfer::protocol {
namespace {

using memory::format_bytes;

/// Writes `bytes` to p with `mode` atomically (runtime/atomic_file.h: the temporary is
/// created with `mode` and removed on every error); `bytes` is wiped before returning or
/// throwing (it may hold a secret key).
void write_private(const std::filesystem::path& p, std::vector<uint8_t> bytes, mode_t mode) {
  struct Wipe {
    std::vector<uint8_t>& b;
    ~Wipe() { sodium_memzero(b.data(), b.size()); }
  } wipe{bytes};
  runtime::write_file_atomic(p, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), mode);
}

/// The directory of the client's keys: created with mode 0700; a directory that exists
/// must be ours and writable by no one else (another user could replace the key files).
void prepare_key_dir(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    std::filesystem::create_directories(dir.parent_path());
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      throw std::runtime_error("cannot create the key directory '" + dir.string() + "': " + std::strerror(errno));
    }
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw std::runtime_error("the key directory '" + dir.string() + "' is not a directory");
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("the key directory '" + dir.string() + "' (mode " + mode +
                             ") must belong to this user and be writable by no one else: chmod go-w it");
  }
}

std::unique_ptr<grpc::ClientContext> deadline(int seconds) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

}  // namespace

struct RemoteSession::State {
  ClientOptions o;
  std::unique_ptr<Inference::Stub> stub;
  ModelInfo info;
  ckks::ContextPtr context;
  std::unique_ptr<runtime::LocalClient> local;  // the keys (the secret key stays here)
  std::vector<std::int64_t> in_shape, out_shape;
  std::string session_id;
  bool open = false;
  std::int64_t open_sent = 0, open_received = 0;

  void say(const std::string& line) const {
    if (o.progress) o.progress(line);
  }
  /// Closes the session without waiting long or reporting errors (after a failed call,
  /// or from the destructor; the server also drops a session whose stream failed).
  void abandon() {
    if (!open) return;
    open = false;
    auto ctx = deadline(2);
    CloseSessionRequest req;
    req.set_session_id(session_id);
    CloseSessionReply reply;
    (void)stub->CloseSession(ctx.get(), req, &reply);
  }
};

RemoteSession::RemoteSession(const ClientOptions& options) : s_(std::make_unique<State>()) {
  State& st = *s_;
  st.o = options;
  const ClientOptions& o = st.o;
  CancelWatch watch(o.cancel);
  st.stub = make_stub(o);
  ModelInfo& info = st.info;
  {
    ModelInfoRequest req;
    req.set_model(o.model);
    auto ctx = deadline(o.connect_timeout_s);
    grpc::Status s;
    {
      const CancelWatch::Scope in_flight(watch, ctx.get());
      s = st.stub->GetModelInfo(ctx.get(), req, &info);
    }
    st.open_sent += static_cast<std::int64_t>(req.ByteSizeLong());
    if (!s.ok()) watch.fail("GetModelInfo", o.server, s);
    st.open_received += static_cast<std::int64_t>(info.ByteSizeLong());
  }
  st.in_shape.assign(info.input_shape().begin(), info.input_shape().end());
  st.out_shape.assign(info.output_shape().begin(), info.output_shape().end());
  st.context = accepted_parameters(info.parameters(), info.fingerprint());
  const ckks::CKKSContext& context = *st.context;
  const ckks::EncryptionParameters& parms = context.parameters();
  const ckks::Packing packing = info.complex_packing() ? ckks::Packing::Complex : ckks::Packing::Real;
  st.local = std::make_unique<runtime::LocalClient>(st.context, packing, std::ldexp(1.0, info.scale_bits()));
  if (!o.key_dir.empty()) {
    prepare_key_dir(o.key_dir);
    write_private(std::filesystem::path(o.key_dir) / "secret.key",
                  ckks::secret_key_to_bytes(st.local->secret_key(), context), 0600);
    write_private(std::filesystem::path(o.key_dir) / "params.bin", ckks::to_bytes(parms), 0644);
  }
  {
    bool per_sample = false;  // Abs rounds: the server masks every sample on its own
    for (const RoundSpec& r : info.schedule()) {
      const auto f = static_cast<runtime::RoundFunction>(r.function());
      per_sample = per_sample || f == runtime::RoundFunction::Abs || f == runtime::RoundFunction::AbsWithValue;
    }
    st.say("parameters N=" + std::to_string(parms.poly_modulus_degree()) + " packing=" +
           std::string(ckks::packing_name(packing)) + "; " + std::to_string(info.schedule_size()) +
           " client-aided layers" +
           (info.privacy() == MODEL        ? " (model-private: blind refreshes only)"
            : info.schedule_size() == 0 ? ""
            : per_sample                ? " (per-sample masks)"
                                        : " (per-window masks)"));
  }
  const runtime::EvaluationKeys& keys = st.local->evaluation_keys();
  std::vector<uint8_t> rk, gk;  // none when the parameters switch no keys
  if (context.special_count() > 0) {
    rk = ckks::to_bytes(keys.relin, context);
    if (packing == ckks::Packing::Complex) gk = ckks::to_bytes(keys.galois, context);
  }
  std::vector<uint8_t> pk;  // model-private: the server re-randomizes with it
  if (info.privacy() == MODEL) pk = ckks::to_bytes(keys.public_key, context);
  st.say("opening a session (" + format_bytes(static_cast<std::int64_t>(rk.size() + gk.size() + pk.size())) +
         " of evaluation keys" + (pk.empty() ? "" : " and public key") + "; the server reserves " +
         format_bytes(info.session_reservation()) + ")");
  // Deadline: the server bounds its wait for memory (--admission-timeout) itself.
  auto ctx = deadline(3600);
  grpc::Status s;
  {
    const CancelWatch::Scope in_flight(watch, ctx.get());
    s = open_session(*st.stub, *ctx, o.model, info.fingerprint(), std::string(rk.begin(), rk.end()),
                     std::string(gk.begin(), gk.end()), kKeyChunkBytes, &st.session_id, &st.open_sent,
                     std::string(pk.begin(), pk.end()));
  }
  if (!s.ok()) watch.fail("OpenSession", o.server, s);
  st.open = true;
  try {
    st.say("session open");
  } catch (...) {  // a throwing progress callback: the server's session is not left open
    st.abandon();
    throw;
  }
}

RemoteSession::~RemoteSession() {
  try {
    s_->abandon();
  } catch (...) {  // a destructor does not throw
  }
}

bool RemoteSession::is_open() const { return s_->open; }
const std::vector<std::int64_t>& RemoteSession::input_shape() const { return s_->in_shape; }
const std::vector<std::int64_t>& RemoteSession::output_shape() const { return s_->out_shape; }
std::int64_t RemoteSession::capacity() const { return s_->info.capacity(); }
const std::string& RemoteSession::description() const { return s_->info.description(); }
std::int64_t RemoteSession::open_bytes_sent() const { return s_->open_sent; }
std::int64_t RemoteSession::open_bytes_received() const { return s_->open_received; }

void RemoteSession::close() {
  State& st = *s_;
  if (!st.open) return;
  st.open = false;
  CancelWatch watch(st.o.cancel);
  CloseSessionRequest req;
  req.set_session_id(st.session_id);
  CloseSessionReply reply;
  auto ctx = deadline(st.o.connect_timeout_s);
  grpc::Status s;
  {
    const CancelWatch::Scope in_flight(watch, ctx.get());
    s = st.stub->CloseSession(ctx.get(), req, &reply);
  }
  if (!s.ok()) watch.fail("CloseSession", st.o.server, s);
}

ClientResult RemoteSession::infer(const std::vector<double>& inputs, const std::vector<std::int64_t>& per_sample_shape,
                                  std::int64_t count) {
  State& st = *s_;
  if (!st.open) throw std::logic_error("the session with model '" + st.o.model + "' is closed");
  const ClientOptions& o = st.o;
  const std::vector<std::int64_t>& in_shape = st.in_shape;
  if (in_shape != per_sample_shape) {
    throw std::runtime_error("input has per-sample shape " + model::to_string(per_sample_shape) + " but model '" +
                             o.model + "' expects " + model::to_string(in_shape));
  }
  if (count < 0 || inputs.size() != static_cast<std::size_t>(count * model::numel(in_shape))) {
    throw std::invalid_argument("RemoteSession::infer: inputs do not hold count samples");
  }
  const ModelInfo& info = st.info;
  // Every value of every batch is checked against the input range before anything is
  // sent: a refusal half-way through would tell the server where the input left it.
  for (double v : inputs) {
    if (!std::isfinite(v) || std::fabs(v) > info.input_bound()) {
      throw runtime::InputError("input '" + info.input_name() + "': a value is not finite or exceeds the planned "
                                "input range " + std::to_string(info.input_bound()) + "; nothing was sent");
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ckks::ContextPtr& context = st.context;
  runtime::LocalClient& local = *st.local;
  const std::size_t budget = chunk_budget(o.max_message_mib);
  auto say = [&](const std::string& line) { st.say(line); };
  CancelWatch watch(o.cancel);
  ClientResult res;
  res.description = info.description();
  res.output_shape = st.out_shape;
  try {
    const std::int64_t in_e = model::numel(in_shape), out_e = model::numel(res.output_shape);
    const std::int64_t cap = info.capacity();
    res.outputs.assign(static_cast<std::size_t>(count * out_e), 0.0);
    for (std::int64_t start = 0; start < count; start += cap) {
      const std::int64_t b = std::min(cap, count - start);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
      const CancelWatch::Scope in_flight(watch, &ctx);  // detached before ctx dies, even on a throw
      auto stream = s_->stub->Infer(&ctx);
      auto write = [&](const ClientMessage& m) {
        res.bytes_sent += static_cast<std::int64_t>(m.ByteSizeLong());
        if (!stream->Write(m)) {
          grpc::Status s = stream->Finish();
          watch.fail("Infer", o.server, s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream closed") : s);
        }
      };
      auto send_cts = [&](const std::vector<ckks::Ciphertext>& cts, bool reply) {
        ClientMessage m;
        CiphertextChunk* c = reply ? m.mutable_round_reply() : m.mutable_input();
        std::size_t bytes = 0;
        for (const auto& ct : cts) {
          c->add_ciphertexts(ct_bytes(ct, *context));
          bytes += c->ciphertexts().rbegin()->size();
          if (bytes >= budget) {
            write(m);
            m.Clear();
            c = reply ? m.mutable_round_reply() : m.mutable_input();
            bytes = 0;
          }
        }
        c->set_last(true);
        write(m);
      };
      const runtime::PlainTensor x = runtime::from_batch_major(
          std::span<const double>(inputs).subspan(static_cast<std::size_t>(start * in_e), static_cast<std::size_t>(b * in_e)),
          b, in_shape);
      {
        ClientMessage m;
        m.mutable_start()->set_session_id(st.session_id);
        m.mutable_start()->set_batch(b);
        write(m);
      }
      ++res.batches;
      std::vector<bool> encrypted(static_cast<std::size_t>(in_e), false);  // each element at most once
      std::int64_t input_bytes = 0, input_sent = 0;
      std::int64_t round_in = 0;
      const auto batch_t0 = std::chrono::steady_clock::now();
      RunSummary summary;
      // Rounds until the output arrives.
      std::vector<ckks::Ciphertext> round_cts;
      std::vector<std::size_t> window_sizes;
      std::vector<ckks::Ciphertext> out_cts;
      std::vector<bool> out_zero;
      OutputChunk out_head;
      bool have_head = false;
      ScheduleCheck schedule(info);  // rounds and outputs against the announcement
      ServerMessage msg;
      for (;;) {
        watch.check("Infer");  // the client's own work between messages
        if (!stream->Read(&msg)) {
          grpc::Status s = stream->Finish();
          watch.fail("Infer", o.server, s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended before the outputs") : s);
        }
        res.bytes_received += static_cast<std::int64_t>(msg.ByteSizeLong());
        round_in += static_cast<std::int64_t>(msg.ByteSizeLong());
        if (msg.has_encrypt()) {
          // The server asks for elements of the input (checked: protocol/client_checks.h).
          runtime::PlainTensor part;
          part.batch = b;
          for (std::int64_t e : requested_elements(msg.encrypt(), encrypted)) {
            const auto v = x.element(e);
            part.data.insert(part.data.end(), v.begin(), v.end());
          }
          part.shape = {static_cast<std::int64_t>(part.data.size()) / b};
          const std::int64_t before = res.bytes_sent;
          send_cts(local.encrypt_tensor(part, info.input_name(), info.input_bound()), false);
          ++res.round_trips;
          input_bytes += res.bytes_sent - before;
          input_sent += part.shape[0];
          if (input_sent == in_e) {
            say("batch " + std::to_string(res.batches) + " (" + std::to_string(b) + " samples): inputs sent, " +
                format_bytes(input_bytes));
          }
          round_in = 0;
        } else if (msg.has_round()) {
          const RoundRequest& r = msg.round();
          const RoundSpec& spec = schedule.round_chunk(r, static_cast<std::int64_t>(window_sizes.size()));
          load_round_chunk(r, spec, *context, round_cts, window_sizes);
          if (!r.last()) continue;
          schedule.round_done(r.node());
          runtime::RoundRequest req;
          req.layer = r.layer();
          req.function = static_cast<runtime::RoundFunction>(spec.function());
          req.bound = spec.bound();  // the announced bound, never the request's
          std::size_t k = 0;
          for (std::size_t ws : window_sizes) {
            std::vector<const ckks::Ciphertext*> w;
            for (std::size_t i = 0; i < ws; ++i) w.push_back(&round_cts[k++]);
            req.windows.push_back(std::move(w));
          }
          const std::int64_t before = res.bytes_sent;
          send_cts(local.round(req), true);
          ++res.rounds;
          ++res.round_trips;
          char line[512];
          // The executor may split one client-aided layer into several rounds (memory tiles).
          std::snprintf(line, sizeof line, "  [node %d/%d] round %lld %s: %zu windows, %s down, %s up (%.2f s)",
                        r.node() + 1, info.nodes(), static_cast<long long>(r.round()), r.layer().c_str(),
                        window_sizes.size(), format_bytes(round_in).c_str(),
                        format_bytes(res.bytes_sent - before).c_str(),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - batch_t0).count());
          say(line);
          round_in = 0;
          round_cts.clear();
          window_sizes.clear();
        } else if (msg.has_output()) {
          const OutputChunk& c = msg.output();
          schedule.output_chunk(c, static_cast<std::int64_t>(out_cts.size()), b);
          if (!have_head) {
            out_head = c;
            have_head = true;
          }
          load_output_chunk(c, *context, out_cts, out_zero);
          if (c.last()) {
            say("  outputs received: " + std::to_string(out_cts.size()) + " ciphertexts, " + format_bytes(round_in));
            // The run summary follows (absent if the server ended the stream), after the
            // progress of a final layer the client applies (Softmax) if there is one.
            while (stream->Read(&msg)) {
              res.bytes_received += static_cast<std::int64_t>(msg.ByteSizeLong());
              if (msg.has_progress()) continue;
              if (!msg.has_summary()) throw std::runtime_error("protocol: unexpected message after the outputs");
              summary = msg.summary();
              break;
            }
            break;
          }
        } else if (msg.has_progress()) {
          const LayerProgress& p = msg.progress();
          char line[512];
          std::snprintf(line, sizeof line, "  [%d/%d] %-32s %-12s %7lld ct  level %2d  %8.3f s  (%.2f s)",
                        p.node() + 1, info.nodes(), p.name().c_str(), p.op().c_str(),
                        static_cast<long long>(p.ciphertexts()), p.level(), p.seconds(), p.elapsed());
          say(line);
          round_in = 0;
        } else {
          throw std::runtime_error("protocol: unexpected message from the server");
        }
      }
      res.server_seconds += summary.seconds();
      for (const LayerSummary& l : summary.layers()) {
        auto it = std::find_if(res.layers.begin(), res.layers.end(), [&](const LayerRow& r) { return r.name == l.name(); });
        if (it == res.layers.end()) {
          res.layers.push_back({l.name(), l.op()});
          it = res.layers.end() - 1;
        }
        it->seconds += l.seconds();
        it->ciphertexts = l.ciphertexts();
        it->level = l.level();
        it->bytes_to_client += l.bytes_to_client();
        it->bytes_to_server += l.bytes_to_server();
        it->round_trips += l.round_trips();
      }
      stream->WritesDone();
      grpc::Status s = stream->Finish();
      if (!s.ok()) watch.fail("Infer", o.server, s);
      std::vector<const ckks::Ciphertext*> ptrs;
      for (std::size_t i = 0; i < out_cts.size(); ++i) ptrs.push_back(out_zero[i] ? nullptr : &out_cts[i]);
      const std::vector<double> factors(out_head.factors().begin(), out_head.factors().end());
      const model::Shape shape(out_head.shape().begin(), out_head.shape().end());
      if (shape != res.output_shape || out_head.batch() != b) throw std::runtime_error("protocol: output shape mismatch");
      runtime::PlainTensor y = local.decrypt(ptrs, factors, shape, b, out_head.layer(), out_head.bound());
      if (info.output_function() != NONE) {
        // A final Softmax/LogSoftmax: applied here, after decryption (as the embedded client does).
        if (info.softmax_dims_size() != 3 ||
            info.softmax_dims(0) * info.softmax_dims(1) * info.softmax_dims(2) != model::numel(shape)) {
          throw std::runtime_error("protocol: bad Softmax dimensions from the server");
        }
        const model::SoftmaxParams sp{info.softmax_dims(0), info.softmax_dims(1), info.softmax_dims(2)};
        runtime::PlainTensor z = runtime::make_plain_tensor(shape, b);
        if (info.output_function() == SOFTMAX) runtime::kernels::softmax(sp, y, z);
        else runtime::kernels::log_softmax(sp, y, z);
        y = std::move(z);
      }
      const std::vector<double> bm = runtime::to_batch_major(y);
      std::copy(bm.begin(), bm.end(), res.outputs.begin() + start * out_e);
    }
  } catch (const runtime::InputError&) {
    throw;  // refused before anything of the batch was sent: the session stays usable
  } catch (...) {
    st.abandon();
    throw;
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace heinfer::protocol
