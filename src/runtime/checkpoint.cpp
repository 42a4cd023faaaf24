#include "runtime/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ckks/secret_key_io.h"
#include "memory/ciphertext_store.h"
#include "memory/file_tier.h"
#include "memory/memory_monitor.h"
#include "runtime/atomic_file.h"
#include "runtime/npy.h"
#include "runtime/steps/activations.h"

namespace heinfer::runtime {
namespace {

namespace fs = std::filesystem;
constexpr const char* kManifest = "checkpoint.json";
constexpr const char* kSecretKey = "secret.key";
constexpr const char* kRanges = "ranges.npy";
constexpr const char* kReference = "reference.npy";
constexpr std::uintmax_t kMaxManifestBytes = 1 << 20;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string hex_digits(const unsigned char* p, std::size_t n) {
  std::string s(2 * n + 1, '\0');
  sodium_bin2hex(s.data(), s.size(), p, n);
  s.pop_back();  // the terminating NUL
  return s;
}

namespace {

void fsync_path(const fs::path& p, int flags) {
  const int fd = ::open(p.c_str(), flags);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("checkpoint: cannot flush '" + p.string() + "': " + why);
  }
  ::close(fd);
}

}  // namespace

std::string file_sha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path.string() + "' to hash it");
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(buf.data()),
                              static_cast<unsigned long long>(in.gcount()));
  }
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, out);
  return hex_digits(out, sizeof out);
}

std::string schedule_sha256(const std::vector<plan::StreamStep>& steps) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  for (const plan::StreamStep& s : steps) {
    const std::int64_t fields[5] = {s.node, s.row_begin, s.row_end, s.segment, s.streamed ? 1 : 0};
    crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(fields), sizeof fields);
  }
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, out);
  return hex_digits(out, sizeof out);
}

nlohmann::json CheckpointIdentity::to_json() const {
  return {{"model_sha256", model_sha256}, {"input_sha256", input_sha256}, {"n", n},
          {"coeff_bits", coeff_bits},     {"special_bits", special_bits}, {"scale_bits", scale_bits},
          {"batch", batch},               {"schedule_sha256", schedule_sha256}};
}

nlohmann::json RunProgress::to_json() const {
  return {{"seconds", seconds},         {"rss_anon_peak", rss_anon_peak}, {"dram_peak", dram_peak},
          {"pmem_peak", pmem_peak},     {"tier_file_peak", tier_file_peak}, {"pmem_written", pmem_written},
          {"pmem_read", pmem_read}};
}

RunProgress RunProgress::from_json(const nlohmann::json& j) {
  RunProgress p;
  p.seconds = j.at("seconds").get<double>();
  p.rss_anon_peak = j.at("rss_anon_peak").get<std::int64_t>();
  p.dram_peak = j.at("dram_peak").get<std::int64_t>();
  p.pmem_peak = j.at("pmem_peak").get<std::int64_t>();
  p.tier_file_peak = j.at("tier_file_peak").get<std::int64_t>();
  p.pmem_written = j.at("pmem_written").get<std::int64_t>();
  p.pmem_read = j.at("pmem_read").get<std::int64_t>();
  if (!std::isfinite(p.seconds) || p.seconds < 0 || p.rss_anon_peak < 0 || p.dram_peak < 0 || p.pmem_peak < 0 ||
      p.tier_file_peak < 0 || p.pmem_written < 0 || p.pmem_read < 0) {
    throw std::runtime_error("negative or non-finite progress");
  }
  return p;
}

ResumePoint read_checkpoint(const fs::path& dir) {
  const fs::path m = dir / kManifest;
  std::error_code ec;
  const auto size = fs::file_size(m, ec);
  if (ec) throw std::runtime_error("--resume: no checkpoint in '" + dir.string() + "' (" + ec.message() + ")");
  if (size > kMaxManifestBytes) throw std::runtime_error("--resume: '" + m.string() + "' is too large for a manifest");
  std::ifstream in(m);
  ResumePoint r;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    if (j.at("format").get<std::string>() != "heinfer-checkpoint" || j.at("version").get<int>() != 2) {
      throw std::runtime_error("unknown format or version");
    }
    const auto& id = j.at("identity");
    r.identity.model_sha256 = id.at("model_sha256").get<std::string>();
    r.identity.input_sha256 = id.at("input_sha256").get<std::string>();
    r.identity.n = id.at("n").get<std::size_t>();
    r.identity.coeff_bits = id.at("coeff_bits").get<std::vector<int>>();
    r.identity.special_bits = id.at("special_bits").get<std::vector<int>>();
    r.identity.scale_bits = id.at("scale_bits").get<int>();
    r.identity.batch = id.at("batch").get<std::int64_t>();
    if (id.contains("schedule_sha256")) r.identity.schedule_sha256 = id.at("schedule_sha256").get<std::string>();
    r.fingerprint_hex = j.at("fingerprint").get<std::string>();
    r.steps_done = j.at("steps_done").get<std::size_t>();
    r.last_node = j.at("last_node").get<std::int64_t>();
    const std::string state = j.at("state").get<std::string>();
    if (state.empty() || state.find('/') != std::string::npos || state == "." || state == "..") {
      throw std::runtime_error("invalid state file name");
    }
    r.state = dir / state;
    r.progress = RunProgress::from_json(j.at("progress"));
    if (j.contains("previous")) {
      const auto& pj = j["previous"];
      PreviousCheckpoint prev;
      prev.steps_done = pj.at("steps_done").get<std::size_t>();
      prev.last_node = pj.at("last_node").get<std::int64_t>();
      const std::string ps = pj.at("state").get<std::string>();
      if (ps.empty() || ps.find('/') != std::string::npos || ps == "." || ps == "..") {
        throw std::runtime_error("invalid previous state file name");
      }
      if (prev.steps_done >= r.steps_done) throw std::runtime_error("a previous checkpoint that is not earlier");
      prev.state = dir / ps;
      prev.progress = RunProgress::from_json(pj.at("progress"));
      r.previous = prev;
    }
    if (j.contains("tier")) {
      r.tier_file = j["tier"].at("file").get<std::string>();
      r.tier_id = j["tier"].at("id").get<std::string>();
      if (r.tier_file.empty() || !r.tier_file.is_absolute() || r.tier_id.size() != 32) {
        throw std::runtime_error("invalid tier file entry");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("--resume: malformed '" + m.string() + "': " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("--resume: '" + m.string() + "': " + e.what());
  }
  if (!fs::is_regular_file(r.state)) throw std::runtime_error("--resume: the state file '" + r.state.string() + "' is missing");
  return r;
}

ResumePoint ResumePoint::at_previous() const {
  if (!previous) throw std::runtime_error("--resume: the checkpoint keeps no earlier state");
  if (!fs::is_regular_file(previous->state)) {
    throw std::runtime_error("--resume: the earlier state file '" + previous->state.string() + "' is missing");
  }
  ResumePoint r = *this;
  r.steps_done = previous->steps_done;
  r.last_node = previous->last_node;
  r.state = previous->state;
  r.progress = previous->progress;
  r.previous.reset();
  return r;
}

ckks::SecretKey read_checkpoint_secret_key(const fs::path& dir, const ckks::CKKSContext& context) {
  const fs::path p = dir / kSecretKey;
  struct stat s {};
  if (::stat(p.c_str(), &s) != 0) throw std::runtime_error("--resume: no secret key in '" + dir.string() + "'");
  if ((s.st_mode & 077) != 0 || s.st_uid != ::geteuid()) {
    throw std::runtime_error("--resume: '" + p.string() + "' must belong to this user with mode 0600");
  }
  std::ifstream in(p, std::ios::binary);
  return ckks::load_secret_key(in, context);
}

namespace {

/// A float64 vector of `count` finite values (>= 0 when `nonnegative`) from DIR/name.
std::vector<double> read_values(const fs::path& p, std::size_t count, bool nonnegative) {
  // An .npy header is at most a few hundred bytes (format 1.0 caps it at 64 KiB).
  const std::uintmax_t limit = count * sizeof(double) + 65536 + 16;
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(p, ec);
  if (ec || size > limit) {
    throw std::runtime_error("--resume: '" + p.string() + "' is not the calibration of this run (" +
                             (ec ? ec.message() : std::to_string(size) + " bytes") + ")");
  }
  const NpyArray a = read_npy(p);
  if (a.dtype != NpyDType::Float64 || a.shape != std::vector<std::int64_t>{static_cast<std::int64_t>(count)}) {
    throw std::runtime_error("--resume: '" + p.string() + "' must hold " + std::to_string(count) + " float64 values");
  }
  std::vector<double> v = a.to_double();
  for (double x : v) {
    if (!std::isfinite(x) || (nonnegative && x < 0)) {
      throw std::runtime_error("--resume: '" + p.string() + "' holds a value out of range");
    }
  }
  return v;
}

void write_values(const fs::path& p, const std::vector<double>& v) {
  const auto bytes = serialize_npy(make_npy(NpyDType::Float64, {static_cast<std::int64_t>(v.size())}, v));
  write_file_atomic(p, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 0600);
}

}  // namespace

void write_checkpoint_calibration(const fs::path& dir, const CheckpointCalibration& c) {
  if (!c.reference.empty()) write_values(dir / kReference, c.reference);
  write_values(dir / kRanges, c.ranges);  // last: its presence means both are complete
}

std::optional<CheckpointCalibration> read_checkpoint_calibration(const fs::path& dir, std::size_t tensors,
                                                                 std::size_t reference_values) {
  std::error_code ec;
  if (!fs::exists(dir / kRanges, ec)) return std::nullopt;
  if (reference_values > 0 && !fs::exists(dir / kReference, ec)) return std::nullopt;
  CheckpointCalibration c;
  c.ranges = read_values(dir / kRanges, tensors, true);
  if (reference_values > 0) c.reference = read_values(dir / kReference, reference_values, false);
  return c;
}

CheckpointWriter::CheckpointWriter(fs::path dir, double interval_seconds, CheckpointIdentity identity,
                                   ckks::ContextPtr context, const ckks::SecretKey& secret,
                                   memory::CiphertextStore* store, const memory::MemoryMonitor* monitor)
    : dir_(std::move(dir)), interval_(interval_seconds), identity_(std::move(identity)), context_(std::move(context)),
      store_(store), monitor_(monitor), start_(now_seconds()), last_(start_) {
  if (!(interval_ >= 0)) throw std::invalid_argument("checkpoint interval must be >= 0 seconds");
  std::error_code ec;
  const bool created = fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("--checkpoint: cannot create '" + dir_.string() + "': " + ec.message());
  if (created) ::chmod(dir_.c_str(), 0700);  // an existing directory keeps its mode
  auto key = ckks::secret_key_to_bytes(secret, *context_);
  write_file_atomic(dir_ / kSecretKey, std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), 0600);
  sodium_memzero(key.data(), key.size());
}

void CheckpointWriter::after_step(std::size_t steps_done, std::size_t steps_total, std::int64_t last_node,
                                  const steps::Activations& acts) {
  if (steps_done >= steps_total) return;
  const memory::FileTier* file = store_ ? store_->tier_file() : nullptr;
  // Also due when the tier file holds more freed-but-referenced bytes than the DRAM
  // budget: a checkpoint writes at most about that much and releases them.
  const bool tier_due = file && file->quarantined_bytes() > store_->options().dram_budget;
  bool due = tier_due || now_seconds() - last_ >= interval_;
  if (peers_) due = any_rank(*peers_, due);  // every rank checkpoints the same steps
  if (!due) return;
  const double t0 = now_seconds();
  const fs::path state = dir_ / ("state-" + std::to_string(steps_done) + ".bin");
  const fs::path tmp = dir_ / ("state-" + std::to_string(steps_done) + ".bin.tmp");
  {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) throw std::runtime_error("--checkpoint: cannot create '" + tmp.string() + "': " + std::strerror(errno));
    ::close(fd);
    try {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      acts.save_state(out);
      out.close();
      if (!out) throw std::runtime_error("--checkpoint: cannot write '" + tmp.string() + "' (disk full?)");
    } catch (...) {
      std::error_code ec;
      fs::remove(tmp, ec);  // the previous checkpoint stays the valid one
      throw;
    }
  }
  fsync_path(tmp, O_RDONLY);
  fs::rename(tmp, state);
  fsync_path(dir_, O_RDONLY | O_DIRECTORY);
  if (kill_in_ > 0 && written_ + 1 == kill_in_) ::kill(::getpid(), SIGKILL);
  const memory::FileTier* tier = store_ ? store_->tier_file() : nullptr;
  if (store_) store_->sync_tier();  // the extents the state references, durable first
  const auto& fp = context_->fingerprint();
  nlohmann::json j = {{"format", "heinfer-checkpoint"},
                      {"version", 2},
                      {"identity", identity_.to_json()},
                      {"fingerprint", hex_digits(fp.data(), fp.size())},
                      {"steps_done", steps_done},
                      {"last_node", last_node},
                      {"state", state.filename().string()}};
  if (tier) j["tier"] = {{"file", fs::absolute(tier->path()).string()}, {"id", tier->id()}};
  RunProgress p = earlier_;
  p.seconds += now_seconds() - start_;
  if (monitor_) p.rss_anon_peak = std::max(p.rss_anon_peak, monitor_->peak_rss_anon());
  if (store_) {
    const memory::TierUsage d = store_->dram(), m = store_->pmem();
    p.dram_peak = std::max(p.dram_peak, d.peak_bytes);
    p.pmem_peak = std::max(p.pmem_peak, m.peak_bytes);
    p.pmem_written += m.bytes_written;
    p.pmem_read += m.bytes_read;
  }
  if (tier) p.tier_file_peak = std::max(p.tier_file_peak, tier->file_bytes());
  j["progress"] = p.to_json();
  const bool keep_previous = peers_ && !state_.empty() && state_ != state;
  if (keep_previous) {
    j["previous"] = {{"steps_done", last_written_.steps_done},
                     {"last_node", last_written_.last_node},
                     {"state", state_.filename().string()},
                     {"progress", last_written_.progress.to_json()}};
  }
  write_file_atomic(dir_ / kManifest, j.dump(1), 0600);
  if (peers_) peers_->all_gather(0);  // every rank committed this checkpoint: the previous is not needed
  if (store_) store_->commit_tier();
  if (!state_.empty() && state_ != state) fs::remove(state_);
  state_ = state;
  last_written_ = {steps_done, last_node, state, p};
  ++written_;
  last_ = now_seconds();
  bytes_ += static_cast<std::int64_t>(fs::file_size(state));
  seconds_ += last_ - t0;
  if (interval_ > 0) {  // (after every step: tests)
    std::fprintf(stderr, "checkpoint after step %zu of %zu: %.1f MB in %.1f s", steps_done, steps_total,
                 static_cast<double>(fs::file_size(state)) / 1e6, last_ - t0);
    if (tier) std::fprintf(stderr, " (tier file %.1f GB)", static_cast<double>(tier->file_bytes()) / 1e9);
    std::fprintf(stderr, "\n");
  }
}

void CheckpointWriter::continue_from(const ResumePoint& r) {
  state_ = r.state;
  earlier_ = r.progress;
  last_written_ = {r.steps_done, r.last_node, r.state, r.progress};
}

void CheckpointWriter::remove() {
  std::error_code ec;
  for (const char* f : {kManifest, kSecretKey, kRanges, kReference}) fs::remove(dir_ / f, ec);
  if (!state_.empty()) fs::remove(state_, ec);
  if (store_ && store_->tier_file()) fs::remove(store_->tier_file()->path(), ec);  // freed when unmapped
  // Files of an earlier, interrupted writer of this directory (a resumed run's own).
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("state-", 0) == 0) fs::remove(e.path(), ec);
  }
  fs::remove(dir_, ec);  // only if empty
}

}  // namespace heinfer::runtime
