// The state of an encrypted run at a step boundary, written for a resumed run
// (runtime/checkpoint.h) and read back with every field checked before use.
//
// Layout (little-endian): "HEINFER-RUNSTATE-1" | u64 tensors | per tensor: u8 has_value,
// u8 has_group, i64 pending_input, i64 encrypted_rows, i64 released, and with a value:
// u64 rank, rank × i64 dims, u64 level, f64 scale, u64 factors, factors × f64,
// u64 ciphertexts, ciphertexts × i64 (index into the table, -1: the exact zero) |
// u64 table size | the table, per distinct ciphertext: u8 where, its stored form (u64 n,
// size, level, f64 scale, u8 ntt_form, seeded, c1_dropped, packed, 32-byte seed), then
// where = 0 (here): i64 words, the words as stored (c1 dropped, 32-bit words: as in
// DRAM); where = 1 (in the run's named tier file): i64 offset, i64 words. Ciphertexts on
// the tier file are referenced, not copied: the file keeps them (memory/file_tier.h).
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "ckks/ciphertext.h"
#include "ring/aligned_memory.h"
#include "model/error.h"
#include "runtime/steps/activations.h"

namespace heinfer::runtime::steps {
namespace {

constexpr char kMagic[] = "HEINFER-RUNSTATE-2";

template <class T>
void put(std::ostream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}

template <class T>
T get(std::istream& in, const char* what) {
  T v{};
  in.read(reinterpret_cast<char*>(&v), sizeof v);
  if (!in) throw std::runtime_error(std::string("run state: truncated at ") + what);
  return v;
}

void fail(const std::string& what) { throw std::runtime_error("run state: " + what); }

}  // namespace

void Activations::save_state(std::ostream& out) const {
  out.write(kMagic, sizeof kMagic);
  put<std::uint64_t>(out, values_.size());
  std::map<const ckks::Ciphertext*, std::int64_t> index;
  std::vector<const ckks::Ciphertext*> table;
  for (std::size_t t = 0; t < values_.size(); ++t) {
    const auto& v = values_[t];
    put<std::uint8_t>(out, v ? 1 : 0);
    put<std::uint8_t>(out, group_of_[t] >= 0 ? 1 : 0);
    put<std::int64_t>(out, pending_input_[t]);
    put<std::int64_t>(out, encrypted_rows_[t]);
    put<std::int64_t>(out, released_[t]);
    if (!v) continue;
    put<std::uint64_t>(out, v->shape.size());
    for (std::int64_t d : v->shape) put<std::int64_t>(out, d);
    put<std::uint64_t>(out, v->level);
    put<double>(out, v->scale);
    put<std::uint64_t>(out, v->factor.size());
    for (double f : v->factor) put<double>(out, f);
    put<std::uint64_t>(out, v->cts.size());
    for (const auto& c : v->cts) {
      if (!c) {
        put<std::int64_t>(out, -1);
        continue;
      }
      auto [it, fresh] = index.emplace(c.get(), static_cast<std::int64_t>(table.size()));
      if (fresh) table.push_back(c.get());
      put<std::int64_t>(out, it->second);
    }
  }
  put<std::uint64_t>(out, table.size());
  for (const ckks::Ciphertext* c : table) {
    const std::int64_t offset = run_.store.tier_offset(*c);
    put<std::uint8_t>(out, offset >= 0 ? 1 : 0);
    ckks::Ciphertext::Form f = c->form();
    std::size_t words = c->data().size();
    // A seeded ciphertext in DRAM with its c1: written without it (c0 comes first).
    if (offset < 0 && f.seeded && !f.c1_dropped) {
      f.c1_dropped = true;
      words /= f.size;
    }
    put<std::uint64_t>(out, f.n);
    put<std::uint64_t>(out, f.size);
    put<std::uint64_t>(out, f.level);
    put<double>(out, f.scale);
    for (bool b : {f.ntt_form, f.seeded, f.c1_dropped, f.packed}) put<std::uint8_t>(out, b ? 1 : 0);
    out.write(reinterpret_cast<const char*>(f.seed.data()), static_cast<std::streamsize>(f.seed.size()));
    if (offset >= 0) put<std::int64_t>(out, offset);
    put<std::int64_t>(out, static_cast<std::int64_t>(words));
    if (offset < 0) {
      out.write(reinterpret_cast<const char*>(c->data().data()), static_cast<std::streamsize>(words * sizeof(std::uint64_t)));
    }
  }
  if (!out) throw std::runtime_error("run state: write failed");
}

CiphertextPtr Activations::restore_ciphertext(std::istream& in) const {
  const auto where = get<std::uint8_t>(in, "ciphertext table");
  if (where > 1) fail("a ciphertext has an unknown location");
  ckks::Ciphertext::Form f;
  f.n = get<std::uint64_t>(in, "ciphertext form");
  f.size = get<std::uint64_t>(in, "ciphertext form");
  f.level = get<std::uint64_t>(in, "ciphertext form");
  f.scale = get<double>(in, "ciphertext form");
  for (bool* b : {&f.ntt_form, &f.seeded, &f.c1_dropped, &f.packed}) {
    const auto v = get<std::uint8_t>(in, "ciphertext form");
    if (v > 1) fail("invalid flags of a ciphertext");
    *b = v == 1;
  }
  in.read(reinterpret_cast<char*>(f.seed.data()), static_cast<std::streamsize>(f.seed.size()));
  if (!in) fail("truncated at a ciphertext form");
  if (where == 1) {
    const auto offset = get<std::int64_t>(in, "tier offset");
    const auto words = get<std::int64_t>(in, "tier offset");
    return run_.store.restore_from_tier(f, offset, words, run_.ctx);
  }
  const auto words = get<std::int64_t>(in, "ciphertext words");
  // The form bounds the count by the context before anything is allocated.
  if (words < 0 || static_cast<std::uint64_t>(words) != ckks::Ciphertext::words_of(f, run_.ctx)) {
    fail("a ciphertext's word count does not match its form");
  }
  std::vector<std::uint64_t> w(static_cast<std::size_t>(words));
  in.read(reinterpret_cast<char*>(w.data()), static_cast<std::streamsize>(w.size() * sizeof(std::uint64_t)));
  if (!in) fail("truncated in a ciphertext's words");
  return std::make_shared<const ckks::Ciphertext>(ckks::Ciphertext::from_form(f, w, run_.ctx, ring::aligned_resource()));
}

std::int64_t Activations::restore_state(std::istream& in, std::int64_t steps_done) {
  char magic[sizeof kMagic];
  in.read(magic, sizeof magic);
  if (!in || std::memcmp(magic, kMagic, sizeof kMagic) != 0) fail("not a heinfer run state (bad magic)");
  const auto tensors = get<std::uint64_t>(in, "tensor count");
  if (tensors != values_.size()) {
    fail("written for " + std::to_string(tensors) + " tensors, the model has " + std::to_string(values_.size()));
  }
  const std::int64_t max_level = static_cast<std::int64_t>(run_.ctx.max_level());
  std::vector<bool> had_group(tensors, false);
  std::vector<std::vector<std::int64_t>> refs(tensors);
  for (std::size_t t = 0; t < tensors; ++t) {
    const model::Tensor& gt = g_.tensors[t];
    const auto has_value = get<std::uint8_t>(in, "tensor flags");
    const auto has_group = get<std::uint8_t>(in, "tensor flags");
    if (has_value > 1 || has_group > 1) fail("invalid flags of tensor '" + gt.name + "'");
    had_group[t] = has_group == 1;
    const auto pending = get<std::int64_t>(in, "band progress");
    const auto rows = get<std::int64_t>(in, "band progress");
    const auto released = get<std::int64_t>(in, "band progress");
    const std::int64_t height = gt.shape.size() >= 2 ? gt.shape[1] : 1;
    if (pending < -1 || pending >= static_cast<std::int64_t>(g_.inputs.size()) || rows < 0 || rows > height ||
        released < 0 || released > height) {
      fail("band progress of tensor '" + gt.name + "' out of range");
    }
    pending_input_[t] = static_cast<int>(pending);
    encrypted_rows_[t] = rows;
    released_[t] = released;
    if (!has_value) continue;
    if (!model::is_activation(g_, static_cast<model::TensorId>(t))) fail("a value for constant '" + gt.name + "'");
    const auto rank = get<std::uint64_t>(in, "shape");
    if (rank != gt.shape.size()) fail("tensor '" + gt.name + "' has another rank than the model's");
    model::Shape shape(rank);
    for (auto& d : shape) d = get<std::int64_t>(in, "shape");
    if (shape != gt.shape) fail("tensor '" + gt.name + "' has shape " + model::to_string(shape) + ", the model " +
                                model::to_string(gt.shape));
    const auto level = get<std::uint64_t>(in, "level");
    const double scale = get<double>(in, "scale");
    if (static_cast<std::int64_t>(level) > max_level || !std::isfinite(scale) || scale <= 0) {
      fail("tensor '" + gt.name + "' has an invalid level or scale");
    }
    const std::int64_t numel = model::numel(shape);
    const auto factors = get<std::uint64_t>(in, "factors");
    if (factors != 0 && factors != static_cast<std::uint64_t>(numel)) fail("factor count of '" + gt.name + "'");
    EncryptedTensor v;
    v.shape = shape;
    v.level = level;
    v.scale = scale;
    v.factor.resize(factors);
    for (double& f : v.factor) {
      f = get<double>(in, "factors");
      if (!std::isfinite(f) || f == 0) fail("a pending factor of '" + gt.name + "' is not finite and non-zero");
    }
    const auto count = get<std::uint64_t>(in, "ciphertext count");
    if (count != static_cast<std::uint64_t>(numel)) fail("ciphertext count of '" + gt.name + "'");
    refs[t].resize(count);
    for (auto& r : refs[t]) r = get<std::int64_t>(in, "ciphertext index");
    v.cts.resize(count);
    values_[t].emplace(std::move(v));
  }
  const auto table_size = get<std::uint64_t>(in, "ciphertext table");
  std::uint64_t referenced = 0;
  for (const auto& r : refs) referenced += r.size();
  if (table_size > referenced) fail("more ciphertexts than references");
  for (const auto& r : refs) {
    for (std::int64_t i : r) {
      if (i < -1 || i >= static_cast<std::int64_t>(table_size)) fail("ciphertext index out of range");
    }
  }
  std::vector<CiphertextPtr> table(table_size);
  for (std::size_t i = 0; i < table.size(); ++i) {
    try {
      table[i] = restore_ciphertext(in);
    } catch (const std::invalid_argument& e) {
      fail("ciphertext " + std::to_string(i) + " of " + std::to_string(table.size()) + ": " + e.what());
    }
  }
  // Store groups as after `steps_done` steps; each ciphertext is adopted once, into the group of
  // the first tensor that holds it.
  std::vector<GroupId> owner(table_size, -1);
  std::map<GroupId, std::vector<std::int64_t>> members;
  for (std::size_t t = 0; t < tensors; ++t) {
    if (!had_group[t] || !values_[t]) continue;
    const GroupId gid = open_group(static_cast<model::TensorId>(t), steps_done - 1);
    for (std::int64_t i : refs[t]) {
      if (i >= 0 && owner[static_cast<std::size_t>(i)] < 0) {
        owner[static_cast<std::size_t>(i)] = gid;
        members[gid].push_back(i);
      }
    }
  }
  for (auto& [gid, pos] : members) run_.store.adopt(table, pos, gid);
  for (std::size_t t = 0; t < tensors; ++t) {
    if (!values_[t]) continue;
    for (std::size_t e = 0; e < refs[t].size(); ++e) {
      if (refs[t][e] >= 0) values_[t]->cts[e] = table[static_cast<std::size_t>(refs[t][e])];
    }
  }
  const std::int64_t batch = run_.client.batch();
  if (batch <= 0 || batch > plan_.parameters.capacity()) {
    throw model::ModelError("batch " + std::to_string(batch) + " must be in [1, " +
                            std::to_string(plan_.parameters.capacity()) + "] (samples per ciphertext)");
  }
  // Inputs the checkpoint holds encrypted whole are not needed in the clear again.
  for (std::size_t i = 0; i < g_.inputs.size(); ++i) {
    if (pending_input_[static_cast<std::size_t>(g_.inputs[i])] < 0) run_.client.input_encrypted(i);
  }
  return batch;
}

}  // namespace heinfer::runtime::steps
