#include "session/distributed_run.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>

#include "ckks/context.h"
#include "ckks/keygen.h"
#include "ckks/secret_key_io.h"

namespace heinfer::session {
namespace {

/// Samples of chunk c: [c·chunk, min(count, (c + 1)·chunk)).
std::int64_t chunk_samples(std::int64_t c, std::int64_t count, std::int64_t chunk) {
  return std::min(count, (c + 1) * chunk) - c * chunk;
}

std::int64_t chunks(std::int64_t count, std::int64_t chunk) { return (count + chunk - 1) / chunk; }

template <class T>
void append(std::vector<std::uint8_t>& b, T v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  b.insert(b.end(), p, p + sizeof v);
}

}  // namespace

void check_same_run(runtime::Peers& job, const std::string& what) {
  std::vector<std::uint8_t> mine(what.begin(), what.end()), root = mine;
  job.broadcast(root);
  const std::vector<std::int64_t> differs = job.all_gather(root == mine ? 0 : 1);
  std::string ranks;
  for (std::size_t r = 0; r < differs.size(); ++r) {
    if (differs[r]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!ranks.empty()) {
    throw std::runtime_error("--distributed: rank(s) " + ranks +
                             " run another model file, input or planning options than rank 0 (every rank must be started "
                             "with the same arguments)");
  }
}

runtime::ResumePoint common_resume_point(runtime::Peers& job, const runtime::ResumePoint& mine) {
  const std::vector<std::int64_t> steps = job.all_gather(static_cast<std::int64_t>(mine.steps_done));
  const auto common = static_cast<std::size_t>(*std::min_element(steps.begin(), steps.end()));
  std::optional<runtime::ResumePoint> point;
  std::string why;
  if (mine.steps_done == common) {
    point = mine;
  } else if (mine.previous && mine.previous->steps_done == common) {
    try {
      point = mine.at_previous();
    } catch (const std::runtime_error& e) {
      why = e.what();
    }
  }
  const std::vector<std::int64_t> ok = job.all_gather(point ? 1 : 0);
  if (std::find(ok.begin(), ok.end(), 0) != ok.end()) {
    std::string all;
    for (std::size_t r = 0; r < steps.size(); ++r) {
      all += (r ? ", " : "") + std::string("rank ") + std::to_string(r) + " after step " + std::to_string(steps[r]) +
             (ok[r] ? "" : " (no state of step " + std::to_string(common) + ")");
    }
    throw std::runtime_error("--resume: the ranks' checkpoints have no step in common: " + all +
                             (why.empty() ? "" : "; " + why));
  }
  return *point;
}

void check_same_secret_key(runtime::Peers& job, const ckks::SecretKey& secret, const ckks::CKKSContext& context) {
  std::vector<std::uint8_t> bytes = ckks::secret_key_to_bytes(secret, context);
  unsigned char h[crypto_generichash_BYTES_MIN];  // 16 bytes; the first 8 are compared
  crypto_generichash(h, sizeof h, bytes.data(), bytes.size(), nullptr, 0);
  sodium_memzero(bytes.data(), bytes.size());
  std::int64_t digest = 0;
  std::memcpy(&digest, h, sizeof digest);
  const std::vector<std::int64_t> all = job.all_gather(digest);
  if (std::any_of(all.begin(), all.end(), [&](std::int64_t d) { return d != all[0]; })) {
    throw std::runtime_error("--resume: the ranks' checkpoints hold different secret keys (directories of different runs)");
  }
}

void broadcast_ranges(runtime::Peers& job, std::vector<double>& ranges) {
  std::vector<std::uint8_t> bytes(ranges.size() * sizeof(double));
  std::memcpy(bytes.data(), ranges.data(), bytes.size());
  job.broadcast(bytes);
  if (bytes.size() % sizeof(double) != 0) throw std::runtime_error("--distributed: rank 0 sent a malformed calibration");
  ranges.resize(bytes.size() / sizeof(double));
  std::memcpy(ranges.data(), bytes.data(), bytes.size());
}

ckks::SecretKey shared_secret_key(runtime::Peers& job, const ckks::EncryptionParameters& params) {
  const ckks::ContextPtr ctx = ckks::CKKSContext::create(params);
  std::optional<ckks::SecretKey> secret;
  std::vector<std::uint8_t> bytes;
  if (job.rank() == 0) {
    ckks::KeyGenerator keygen(ctx);
    secret.emplace(keygen.secret_key());
    bytes = ckks::secret_key_to_bytes(*secret, *ctx);
  }
  job.broadcast(bytes);
  if (job.rank() != 0) secret.emplace(ckks::load_secret_key(std::span<const std::uint8_t>(bytes), *ctx));
  sodium_memzero(bytes.data(), bytes.size());
  return std::move(*secret);
}

std::vector<double> group_samples(const std::vector<double>& values, std::int64_t count, std::int64_t per_sample,
                                  std::int64_t chunk, int groups, int group, std::int64_t& share_count) {
  if (chunk < 1 || groups < 1 || group < 0 || group >= groups || per_sample < 1 ||
      values.size() != static_cast<std::size_t>(count * per_sample)) {
    throw std::invalid_argument("group_samples: inconsistent arguments");
  }
  std::vector<double> out;
  share_count = 0;
  for (std::int64_t c = group; c < chunks(count, chunk); c += groups) {
    const std::int64_t n = chunk_samples(c, count, chunk);
    const auto begin = values.begin() + static_cast<std::ptrdiff_t>(c * chunk * per_sample);
    out.insert(out.end(), begin, begin + static_cast<std::ptrdiff_t>(n * per_sample));
    share_count += n;
  }
  return out;
}

std::vector<double> gather_group_outputs(runtime::Peers& job, bool leader, int groups, int group,
                                         const std::vector<double>& mine, std::int64_t count, std::int64_t per_output,
                                         std::int64_t chunk) {
  const auto P = static_cast<std::size_t>(job.size());
  std::vector<std::vector<std::uint8_t>> out(P);
  if (leader && job.rank() != 0) {
    auto& b = out[0];
    append<std::uint64_t>(b, static_cast<std::uint64_t>(group));
    append<std::uint64_t>(b, mine.size());
    const auto* p = reinterpret_cast<const std::uint8_t*>(mine.data());
    b.insert(b.end(), p, p + mine.size() * sizeof(double));
  }
  const auto in = job.exchange(std::move(out));
  if (job.rank() != 0) return {};
  // Every group's values, by group (rank 0 leads group 0).
  std::vector<std::optional<std::vector<double>>> by_group(static_cast<std::size_t>(groups));
  by_group[0] = mine;
  if (group != 0 || !leader) throw std::logic_error("rank 0 must lead group 0");
  auto expected = [&](int g) {
    std::int64_t n = 0;
    for (std::int64_t c = g; c < chunks(count, chunk); c += groups) n += chunk_samples(c, count, chunk);
    return n * per_output;
  };
  for (std::size_t q = 1; q < P; ++q) {
    const auto& b = in[q];
    if (b.empty()) continue;  // not a group's leader
    auto fail = [&](const std::string& what) {
      throw std::runtime_error("--distributed: the outputs from rank " + std::to_string(q) + ": " + what);
    };
    if (b.size() < 16) fail("truncated");
    std::uint64_t g = 0, n = 0;
    std::memcpy(&g, b.data(), 8);
    std::memcpy(&n, b.data() + 8, 8);
    if (g >= static_cast<std::uint64_t>(groups) || g == 0) fail("a group index out of range");
    if (by_group[g]) fail("a second message for group " + std::to_string(g));
    if (n != static_cast<std::uint64_t>(expected(static_cast<int>(g))) || b.size() != 16 + n * sizeof(double)) {
      fail("not the outputs of group " + std::to_string(g) + "'s samples");
    }
    std::vector<double> v(n);
    std::memcpy(v.data(), b.data() + 16, n * sizeof(double));
    by_group[g] = std::move(v);
  }
  if (by_group[0]->size() != static_cast<std::size_t>(expected(0))) throw std::logic_error("group 0's outputs");
  std::vector<double> all(static_cast<std::size_t>(count * per_output));
  std::vector<std::size_t> pos(static_cast<std::size_t>(groups), 0);
  for (std::int64_t c = 0; c < chunks(count, chunk); ++c) {
    const auto g = static_cast<std::size_t>(c % groups);
    if (!by_group[g]) throw std::runtime_error("--distributed: no outputs arrived from group " + std::to_string(g));
    const auto n = static_cast<std::size_t>(chunk_samples(c, count, chunk) * per_output);
    std::memcpy(all.data() + static_cast<std::size_t>(c * chunk * per_output), by_group[g]->data() + pos[g],
                n * sizeof(double));
    pos[g] += n;
  }
  return all;
}

}  // namespace heinfer::session
