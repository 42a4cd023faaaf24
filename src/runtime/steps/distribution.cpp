#include "runtime/steps/distribution.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ckks/serialization.h"
#include "model/error.h"
#include "plan/stream_schedule.h"

namespace heinfer::runtime::steps {
namespace {

using plan::NodeSplit;
using Clock = std::chrono::steady_clock;

/// Little-endian framing of the messages between ranks.
class Writer {
 public:
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof v);
  }
  void put_bytes(const std::vector<std::uint8_t>& b) {
    put<std::uint64_t>(b.size());
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
  std::vector<std::uint8_t> bytes;
};

class Reader {
 public:
  Reader(const std::vector<std::uint8_t>& b, int from) : b_(b), from_(from) {}
  template <class T>
  T get() {
    if (b_.size() - pos_ < sizeof(T)) fail("truncated");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::span<const std::uint8_t> get_bytes() {
    const auto n = get<std::uint64_t>();
    if (n > b_.size() - pos_) fail("truncated in a ciphertext");
    std::span<const std::uint8_t> s(b_.data() + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  /// A count of entries of at least `min_entry_bytes` each, bounded by what is left; an
  /// empty message (no message was sent) is a count of 0.
  std::uint64_t count(std::size_t min_entry_bytes) {
    if (b_.empty()) return 0;
    const auto n = get<std::uint64_t>();
    if (n > (b_.size() - pos_) / min_entry_bytes) fail("a count larger than the message");
    return n;
  }
  void done() const {
    if (pos_ != b_.size()) fail("trailing bytes");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("distributed run: a message from rank " + std::to_string(from_) + ": " + what);
  }

 private:
  const std::vector<std::uint8_t>& b_;
  int from_;
  std::size_t pos_ = 0;
};

/// Elements of a [C, H, W] tensor in rows [h0, h1) and columns [w0, w1).
template <class F>
void for_box(const model::Shape& s, std::int64_t h0, std::int64_t h1, std::int64_t w0, std::int64_t w1, F&& f) {
  for (std::int64_t c = 0; c < s[0]; ++c) {
    for (std::int64_t h = h0; h < h1; ++h) {
      for (std::int64_t w = w0; w < w1; ++w) f((c * s[1] + h) * s[2] + w);
    }
  }
}

}  // namespace

Distribution::Distribution(RunState& run, Activations& acts, Peers& peers)
    : run_(run), acts_(acts), peers_(peers), p_(*run.partition) {
  if (p_.ranks != peers.size() || run.rank != peers.rank()) {
    throw std::invalid_argument("the partition is of " + std::to_string(p_.ranks) + " ranks, the run has " +
                                std::to_string(peers.size()));
  }
}

bool Distribution::before_step(StepIO& io, std::vector<std::int64_t>& elements) {
  const auto k = static_cast<std::size_t>(io.st.node);
  const NodeSplit ns = p_.nodes[k];
  const int me = rank();
  const model::Graph& g = run_.g;
  Needs needs;
  auto need_missing = [&](model::TensorId t, std::int64_t e) {
    const EncryptedTensor* v = acts_.value(t);
    if (p_.tensors[static_cast<std::size_t>(t)].owner(e) != me && v && !v->cts[static_cast<std::size_t>(e)]) {
      needs[t].push_back(e);
    }
  };
  const plan::TensorSplit& ys = p_.tensors[static_cast<std::size_t>(io.n.outputs[0])];
  const auto [w0, w1] = ys.columns(me);
  if (ns == NodeSplit::Spatial && w0 < w1) {
    for (std::size_t i = 0; i < io.n.inputs.size(); ++i) {
      const model::TensorId t = io.n.inputs[i];
      if (!io.in[i]) continue;
      const auto rm = plan::row_map(g, io.n, i), cm = plan::column_map(g, io.n, i);
      const model::Shape& xs = io.in[i]->shape;
      const std::int64_t y_rows = io.y_shape[1];
      const std::int64_t r0 = io.st.streamed ? io.st.row_begin : 0, r1 = io.st.streamed ? io.st.row_end : y_rows;
      for_box(xs, rm->begin(r0), rm->end(r1), cm->begin(w0), cm->end(w1), [&](std::int64_t e) { need_missing(t, e); });
    }
  } else if (ns == NodeSplit::Root && me == 0) {
    for (std::size_t i = 0; i < io.n.inputs.size(); ++i) {
      if (!io.in[i]) continue;
      for (std::int64_t e = 0; e < io.in[i]->elements(); ++e) need_missing(io.n.inputs[i], e);
    }
  }
  for (auto& [t, es] : needs) {  // an input read twice is asked for once
    std::sort(es.begin(), es.end());
    es.erase(std::unique(es.begin(), es.end()), es.end());
  }
  fetch(needs);
  // The rank's share of the step.
  io.constants = true;
  switch (ns) {
    case NodeSplit::Spatial: {
      std::erase_if(elements, [&](std::int64_t e) { return ys.owner(e) != me; });
      io.elements = elements;
      io.col_begin = w0;
      io.col_end = w1;
      return true;
    }
    case NodeSplit::Inherit:
      std::erase_if(elements, [&](std::int64_t e) { return ys.owner(e) != me; });
      io.elements = elements;
      return true;
    case NodeSplit::Reduce:
      own_elements_only(io);
      io.constants = me == 0;
      return true;
    case NodeSplit::Root: break;
  }
  if (me == 0) return true;
  // Off rank 0 a root node's output exists empty, at the plan's level and scale, so that
  // the bookkeeping (levels, frees) and the readers' checks stay those of rank 0.
  if (io.np.kind != plan::NodeKind::FinalSoftmax) {
    EncryptedTensor& y = io.y;
    y.shape = io.y_shape;
    y.cts.assign(static_cast<std::size_t>(model::numel(io.y_shape)), nullptr);
    y.level = static_cast<std::size_t>(io.np.output_level);
    y.scale = io.np.rescale || plan::is_round(io.np.kind) ? run_.scale() : first_input(io)->scale;
    if (run_.plan.tensors[static_cast<std::size_t>(io.n.outputs[0])].factors) y.factor.assign(y.cts.size(), 1.0);
  }
  return false;
}

void Distribution::own_elements_only(StepIO& io) {
  views_.clear();
  views_.reserve(io.in.size());  // pointers into views_ stay valid
  for (std::size_t i = 0; i < io.in.size(); ++i) {
    if (!io.in[i]) continue;
    const plan::TensorSplit& s = p_.tensors[static_cast<std::size_t>(io.n.inputs[i])];
    views_.push_back(*io.in[i]);
    EncryptedTensor& v = views_.back();
    for (std::int64_t e = 0; e < v.elements(); ++e) {
      if (s.owner(e) != rank()) v.cts[static_cast<std::size_t>(e)].reset();
    }
    io.in[i] = &v;
  }
}

void Distribution::fetch(const Needs& needs) {
  const auto t0 = Clock::now();
  const int ranks = peers_.size(), me = rank();
  // Requests, grouped by owner: (tensor, element) pairs.
  std::vector<Writer> req(static_cast<std::size_t>(ranks));
  std::vector<std::vector<std::pair<model::TensorId, std::int64_t>>> asked(static_cast<std::size_t>(ranks));
  for (const auto& [t, es] : needs) {
    for (std::int64_t e : es) asked[static_cast<std::size_t>(p_.tensors[static_cast<std::size_t>(t)].owner(e))].push_back({t, e});
  }
  std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(ranks));
  for (int q = 0; q < ranks; ++q) {
    if (q == me || asked[static_cast<std::size_t>(q)].empty()) continue;  // nothing asked: no message
    Writer w;
    w.put<std::uint64_t>(asked[static_cast<std::size_t>(q)].size());
    for (const auto& [t, e] : asked[static_cast<std::size_t>(q)]) {
      w.put<std::int64_t>(t);
      w.put<std::int64_t>(e);
    }
    out[static_cast<std::size_t>(q)] = std::move(w.bytes);
  }
  const auto requests = peers_.exchange(std::move(out));
  // Serve: every requested element must be ours and live.
  std::vector<std::vector<std::uint8_t>> replies(static_cast<std::size_t>(ranks));
  for (int q = 0; q < ranks; ++q) {
    if (q == me) continue;
    Reader r(requests[static_cast<std::size_t>(q)], q);
    const auto n = r.count(16);
    std::vector<std::pair<model::TensorId, std::int64_t>> items;
    std::vector<const CiphertextPtr*> members;
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto t = r.get<std::int64_t>();
      const auto e = r.get<std::int64_t>();
      if (t < 0 || static_cast<std::size_t>(t) >= run_.g.tensors.size()) r.fail("a tensor index out of range");
      const EncryptedTensor* v = acts_.value(t);
      if (!v) r.fail("asked for tensor '" + run_.g.tensors[static_cast<std::size_t>(t)].name + "', which is not live here");
      if (e < 0 || e >= v->elements()) r.fail("an element index out of range");
      if (p_.tensors[static_cast<std::size_t>(t)].owner(e) != me) r.fail("asked for an element this rank does not own");
      items.push_back({t, e});
      members.push_back(&v->cts[static_cast<std::size_t>(e)]);
    }
    r.done();
    run_.store.prefetch_members(members);
    Writer w;
    for (const auto& [t, e] : items) {
      const EncryptedTensor& v = *acts_.value(t);
      const CiphertextPtr& c = v.cts[static_cast<std::size_t>(e)];
      w.put<std::uint8_t>(c ? 1 : 0);
      if (!c) continue;
      w.put<double>(v.factor_at(e));
      w.put_bytes(ckks::to_bytes(*c, run_.ctx));
    }
    run_.stats.halo_bytes_sent += static_cast<std::int64_t>(w.bytes.size());
    replies[static_cast<std::size_t>(q)] = std::move(w.bytes);
  }
  const auto answers = peers_.exchange(std::move(replies));
  for (int q = 0; q < ranks; ++q) {
    if (q == me) continue;
    const auto& mine = asked[static_cast<std::size_t>(q)];
    Reader r(answers[static_cast<std::size_t>(q)], q);
    std::map<model::TensorId, std::vector<std::int64_t>> adopted;
    for (const auto& [t, e] : mine) {
      if (r.get<std::uint8_t>() == 0) continue;  // the exact zero
      const double f = r.get<double>();
      EncryptedTensor& v = *acts_.value(t);
      auto ct = ckks::load_ciphertext(r.get_bytes(), run_.ctx);
      if (ct.level() < v.level) r.fail("a ciphertext below its tensor's level");
      if (!std::isfinite(f) || f == 0) r.fail("an invalid pending factor");
      v.cts[static_cast<std::size_t>(e)] = std::make_shared<const ckks::Ciphertext>(std::move(ct));
      if (!v.factor.empty()) v.factor[static_cast<std::size_t>(e)] = f;
      else if (f != 1.0) r.fail("a pending factor for a tensor without factors");
      adopted[t].push_back(e);
    }
    r.done();
    run_.stats.halo_bytes_received += static_cast<std::int64_t>(answers[static_cast<std::size_t>(q)].size());
    for (auto& [t, es] : adopted) run_.store.adopt(acts_.value(t)->cts, es, acts_.group_holding(t));
  }
  run_.stats.exchange_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
}

void Distribution::after_step(StepIO& io) {
  views_.clear();
  if (p_.nodes[static_cast<std::size_t>(io.st.node)] != NodeSplit::Reduce || !io.st.last) return;
  const auto t0 = Clock::now();
  const int ranks = peers_.size(), me = rank();
  EncryptedTensor& y = io.y;
  std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(ranks));
  if (me != 0) {
    Writer w;
    std::vector<std::int64_t> present;
    for (std::int64_t e = 0; e < y.elements(); ++e) {
      if (y.cts[static_cast<std::size_t>(e)]) present.push_back(e);
    }
    if (!present.empty()) w.put<std::uint64_t>(present.size());  // none: no message
    for (std::int64_t e : present) {
      w.put<std::int64_t>(e);
      w.put_bytes(ckks::to_bytes(*y.cts[static_cast<std::size_t>(e)], run_.ctx));
      y.cts[static_cast<std::size_t>(e)].reset();  // a partial sum, not a value
    }
    run_.stats.halo_bytes_sent += static_cast<std::int64_t>(w.bytes.size());
    out[0] = std::move(w.bytes);
  }
  const auto in = peers_.exchange(std::move(out));
  if (me == 0) {
    std::vector<std::optional<ckks::Ciphertext>> sums(static_cast<std::size_t>(y.elements()));
    for (int q = 1; q < ranks; ++q) {
      Reader r(in[static_cast<std::size_t>(q)], q);
      const auto n = r.count(16);
      for (std::uint64_t i = 0; i < n; ++i) {
        const auto e = r.get<std::int64_t>();
        if (e < 0 || e >= y.elements()) r.fail("a partial output index out of range");
        auto part = ckks::load_ciphertext(r.get_bytes(), run_.ctx);
        if (part.level() != y.level) r.fail("a partial output at another level");
        auto& sum = sums[static_cast<std::size_t>(e)];
        if (!sum) {
          if (const auto& own = y.cts[static_cast<std::size_t>(e)]) {
            sum.emplace(*own);
            sum->expand(run_.ctx);
          }
        }
        if (sum) run_.eval.add_inplace(*sum, part);
        else sum.emplace(std::move(part));
      }
      r.done();
      run_.stats.halo_bytes_received += static_cast<std::int64_t>(in[static_cast<std::size_t>(q)].size());
    }
    std::vector<std::int64_t> changed;
    for (std::int64_t e = 0; e < y.elements(); ++e) {
      auto& sum = sums[static_cast<std::size_t>(e)];
      if (!sum) continue;
      y.cts[static_cast<std::size_t>(e)] = std::make_shared<const ckks::Ciphertext>(std::move(*sum));
      changed.push_back(e);
    }
    run_.store.adopt(y.cts, changed, io.group);
  }
  run_.stats.exchange_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
}

void Distribution::gather_outputs() {
  Needs needs;
  if (rank() == 0) {
    for (model::TensorId t : run_.g.outputs) {
      const EncryptedTensor* v = acts_.value(t);
      if (!v) continue;
      for (std::int64_t e = 0; e < v->elements(); ++e) {
        if (p_.tensors[static_cast<std::size_t>(t)].owner(e) != 0 && !v->cts[static_cast<std::size_t>(e)]) needs[t].push_back(e);
      }
    }
  }
  fetch(needs);
}

}  // namespace heinfer::runtime::steps
