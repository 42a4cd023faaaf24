#include "distributed/mpi_peers.h"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace heinfer::distributed {
namespace {

constexpr std::size_t kMaxMessage = std::size_t{1} << 30;

/// Posts the receives or sends of `buf` to/from `peer` in messages of at most 1 GiB.
void post(std::vector<std::uint8_t>& buf, int peer, bool send, MPI_Comm comm, std::vector<MPI_Request>& reqs) {
  int tag = 0;
  for (std::size_t off = 0; off < buf.size(); off += kMaxMessage, ++tag) {
    const int n = static_cast<int>(std::min(kMaxMessage, buf.size() - off));
    MPI_Request r;
    if (send) MPI_Isend(buf.data() + off, n, MPI_BYTE, peer, tag, comm, &r);
    else MPI_Irecv(buf.data() + off, n, MPI_BYTE, peer, tag, comm, &r);
    reqs.push_back(r);
  }
}

}  // namespace

bool MpiPeers::launched() { return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE"); }

MpiPeers::MpiPeers() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      throw std::runtime_error("--distributed: MPI_Init_thread failed");
    }
    finalize_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      throw std::runtime_error("--distributed: the MPI library does not support MPI_THREAD_FUNNELED");
    }
  }
  comm_ = MPI_COMM_WORLD;
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiPeers::MpiPeers(const MpiPeers& parent, int color) {
  if (color < 0) throw std::invalid_argument("MpiPeers: a group's color must be non-negative");
  if (MPI_Comm_split(parent.comm_, color, parent.rank_, &comm_) != MPI_SUCCESS) {
    throw std::runtime_error("--distributed: MPI_Comm_split failed");
  }
  owned_comm_ = true;
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiPeers::~MpiPeers() {
  if (owned_comm_) MPI_Comm_free(&comm_);
  if (finalize_) MPI_Finalize();
}

std::vector<std::vector<std::uint8_t>> MpiPeers::exchange(std::vector<std::vector<std::uint8_t>> out) {
  const auto p = static_cast<std::size_t>(size_);
  if (out.size() != p) throw std::invalid_argument("MpiPeers::exchange: one buffer per rank expected");
  out[static_cast<std::size_t>(rank_)].clear();
  std::vector<std::int64_t> send_sizes(p), recv_sizes(p);
  for (std::size_t q = 0; q < p; ++q) send_sizes[q] = static_cast<std::int64_t>(out[q].size());
  MPI_Alltoall(send_sizes.data(), 1, MPI_INT64_T, recv_sizes.data(), 1, MPI_INT64_T, comm_);
  std::vector<std::vector<std::uint8_t>> in(p);
  std::vector<MPI_Request> reqs;
  for (std::size_t q = 0; q < p; ++q) {
    if (static_cast<int>(q) == rank_) continue;
    if (recv_sizes[q] < 0) throw std::runtime_error("rank " + std::to_string(q) + " announced a negative message size");
    in[q].resize(static_cast<std::size_t>(recv_sizes[q]));
    if (!in[q].empty()) post(in[q], static_cast<int>(q), false, comm_, reqs);
  }
  for (std::size_t q = 0; q < p; ++q) {  // only to the ranks this one has bytes for (neighbours)
    if (static_cast<int>(q) != rank_ && !out[q].empty()) post(out[q], static_cast<int>(q), true, comm_, reqs);
  }
  MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
  return in;
}

void MpiPeers::broadcast(std::vector<std::uint8_t>& bytes) {
  std::int64_t n = static_cast<std::int64_t>(bytes.size());
  MPI_Bcast(&n, 1, MPI_INT64_T, 0, comm_);
  bytes.resize(static_cast<std::size_t>(n));
  for (std::size_t off = 0; off < bytes.size(); off += kMaxMessage) {
    MPI_Bcast(bytes.data() + off, static_cast<int>(std::min(kMaxMessage, bytes.size() - off)), MPI_BYTE, 0, comm_);
  }
}

std::vector<std::int64_t> MpiPeers::all_gather(std::int64_t value) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(size_));
  MPI_Allgather(&value, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, comm_);
  return out;
}

void MpiPeers::abort(const std::string& what, int code) const {
  std::fprintf(stderr, "heinfer: rank %d: %s\n", rank_, what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

}  // namespace heinfer::distributed
