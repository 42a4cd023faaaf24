// The ranks of a distributed run over MPI (Open MPI from Debian's packages): the
// runtime's Peers (runtime/peers.h) as MPI collectives and point-to-point messages.
// One object per process, created before the run and destroyed after it; it initializes
// MPI unless the process did already (thread level "funneled": only the executor's
// thread calls MPI, OpenMP threads never do; or "serialized" for a server whose gRPC
// threads call it one at a time), and finalizes what it initialized.
//
// Errors: MPI's default handler (MPI_ERRORS_ARE_FATAL) stays: a rank that dies or a
// broken link ends every rank, and mpirun names the rank. abort() ends the run from one
// rank with a message, for errors the other ranks cannot see (a bad input on rank 0).
#pragma once

#include <mpi.h>

#include <string>

#include "runtime/peers.h"

namespace heinfer::distributed {

class MpiPeers : public runtime::Peers {
 public:
  /// `serialized`: MPI may be called from several threads, one at a time (the caller
  /// serializes). Throws std::runtime_error when MPI cannot be initialized with the
  /// thread level needed.
  explicit MpiPeers(bool serialized = false);
  /// The ranks of `parent` with the same `color` (>= 0), in parent rank order (a group
  /// of a run with several batches in flight: MPI_Comm_split). Collective over parent.
  /// Destroy it before its parent. Throws std::invalid_argument for a negative color,
  /// std::runtime_error when the split fails.
  MpiPeers(const MpiPeers& parent, int color);
  ~MpiPeers() override;
  MpiPeers(const MpiPeers&) = delete;
  MpiPeers& operator=(const MpiPeers&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  /// Sizes by MPI_Ialltoall, then the non-empty buffers by non-blocking sends and
  /// receives in messages of at most 1 GiB (MPI counts are int): a rank exchanges
  /// messages only with the ranks it has bytes for or from (its slab's neighbours).
  /// Every wait of this class polls with short sleeps rather than spinning.
  std::vector<std::vector<std::uint8_t>> exchange(std::vector<std::vector<std::uint8_t>> out) override;
  void broadcast(std::vector<std::uint8_t>& bytes) override;
  std::vector<std::int64_t> all_gather(std::int64_t value) override;
  /// A size message, then the bytes in messages of at most 1 GiB (non-blocking, waited
  /// for by polling: a waiting rank leaves its core to the ranks that compute).
  void send(int to, const std::vector<std::uint8_t>& bytes) override;
  std::vector<std::uint8_t> receive(int& from) override;

  /// The ranks of this communicator on this node (shared memory), this one included.
  /// Collective.
  int ranks_on_this_node() const;

  /// Prints "heinfer: rank R: <what>" on stderr (R in this communicator) and ends every
  /// rank of the job (MPI_Abort on MPI_COMM_WORLD with `code`).
  [[noreturn]] void abort(const std::string& what, int code) const;

  /// Whether this process was started by an MPI launcher (mpirun / mpiexec sets
  /// OMPI_COMM_WORLD_SIZE or PMI_SIZE).
  static bool launched();

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool finalize_ = false, owned_comm_ = false;
};

}  // namespace heinfer::distributed
