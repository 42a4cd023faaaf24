// The ranks of a distributed run as the executor sees them: collective exchanges of byte
// buffers between processes that run the same plan in lockstep, and point-to-point
// messages (a server's rank 0 and the ranks that compute for it: protocol/rank_gateway.h).
// The MPI implementation lives above the runtime (distributed/mpi_peers.h); the runtime
// knows only this.
#pragma once

#include <cstdint>
#include <vector>

namespace heinfer::runtime {

class Peers {
 public:
  virtual ~Peers() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// All-to-all: `out[q]` goes to rank q (out.size() == size(); out[rank()] is ignored);
  /// returns what every rank sent to this one (entry rank() empty). Collective: every
  /// rank calls it, in the same order; an empty buffer costs no message. Throws
  /// std::runtime_error on a transport failure.
  virtual std::vector<std::vector<std::uint8_t>> exchange(std::vector<std::vector<std::uint8_t>> out) = 0;
  /// Rank 0's `bytes` on every rank (collective).
  virtual void broadcast(std::vector<std::uint8_t>& bytes) = 0;
  /// Every rank's `value`, in rank order, on every rank (collective).
  virtual std::vector<std::int64_t> all_gather(std::int64_t value) = 0;
  /// Point-to-point, outside the collectives: `bytes` to rank `to` (returns once sent).
  /// Messages between two ranks arrive in the order they were sent. Throws
  /// std::invalid_argument for `to` out of range or this rank.
  virtual void send(int to, const std::vector<std::uint8_t>& bytes) = 0;
  /// The next point-to-point message from rank `from`, or from any rank when from is -1
  /// (then set to the sender). Waits without spinning a core (polls about every
  /// millisecond). Throws std::invalid_argument for `from` out of range.
  virtual std::vector<std::uint8_t> receive(int& from) = 0;
};

/// Whether `mine` is true on any rank of `peers` (collective: one all-gather).
inline bool any_rank(Peers& peers, bool mine) {
  for (const std::int64_t v : peers.all_gather(mine ? 1 : 0)) {
    if (v != 0) return true;
  }
  return false;
}

}  // namespace heinfer::runtime
