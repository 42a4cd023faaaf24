#include "distributed/mpi_peers.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

namespace heinfer::distributed {
namespace {

constexpr std::size_t kMaxMessage = std::size_t{1} << 30;
// Point-to-point messages: a size, then the bytes (the exchanges' tags count chunks from 0).
constexpr int kSizeTag = 30000, kBytesTag = 30001;
// Largest point-to-point message accepted (a rank's client call or its reply).
constexpr std::int64_t kMaxPointBytes = std::int64_t{64} << 30;

/// Waits for `reqs` by polling with a growing pause (50 us to 1 ms) instead of MPI's
/// busy wait: a rank that waits (for its neighbours' halos, a slower rank, a client's
/// reply) leaves its core to the ranks that compute, which matters whenever ranks share
/// cores; the pause costs at most about 1 ms per exchange.
template <class Done>
void poll_politely(Done done) {
  for (auto pause = std::chrono::microseconds(50); !done();
       pause = std::min(pause * 2, std::chrono::microseconds(1000))) {
    std::this_thread::sleep_for(pause);
  }
}

void wait_politely(std::vector<MPI_Request>& reqs) {
  poll_politely([&] {
    int done = 0;
    MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
    return done != 0;
  });
}

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

MpiPeers::MpiPeers(bool serialized) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  const int level = serialized ? MPI_THREAD_SERIALIZED : MPI_THREAD_FUNNELED;
  int provided = 0;
  if (!initialized) {
    if (MPI_Init_thread(nullptr, nullptr, level, &provided) != MPI_SUCCESS) {
      throw std::runtime_error("--distributed: MPI_Init_thread failed");
    }
    finalize_ = true;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < level) {
    throw std::runtime_error(std::string("--distributed: the MPI library does not support ") +
                             (serialized ? "MPI_THREAD_SERIALIZED" : "MPI_THREAD_FUNNELED"));
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
  std::vector<MPI_Request> sizes(1);
  MPI_Ialltoall(send_sizes.data(), 1, MPI_INT64_T, recv_sizes.data(), 1, MPI_INT64_T, comm_, &sizes[0]);
  wait_politely(sizes);
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
  wait_politely(reqs);
  return in;
}

void MpiPeers::broadcast(std::vector<std::uint8_t>& bytes) {
  std::int64_t n = static_cast<std::int64_t>(bytes.size());
  std::vector<MPI_Request> reqs(1);
  MPI_Ibcast(&n, 1, MPI_INT64_T, 0, comm_, &reqs[0]);
  wait_politely(reqs);
  bytes.resize(static_cast<std::size_t>(n));
  reqs.clear();
  for (std::size_t off = 0; off < bytes.size(); off += kMaxMessage) {
    MPI_Request r;
    MPI_Ibcast(bytes.data() + off, static_cast<int>(std::min(kMaxMessage, bytes.size() - off)), MPI_BYTE, 0, comm_, &r);
    reqs.push_back(r);
  }
  wait_politely(reqs);
}

std::vector<std::int64_t> MpiPeers::all_gather(std::int64_t value) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(size_));
  std::vector<MPI_Request> reqs(1);
  MPI_Iallgather(&value, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, comm_, &reqs[0]);
  wait_politely(reqs);
  return out;
}

void MpiPeers::send(int to, const std::vector<std::uint8_t>& bytes) {
  if (to < 0 || to >= size_ || to == rank_) {
    throw std::invalid_argument("MpiPeers::send: no rank " + std::to_string(to) + " to send to");
  }
  std::int64_t n = static_cast<std::int64_t>(bytes.size());
  std::vector<MPI_Request> reqs(1);
  MPI_Isend(&n, 1, MPI_INT64_T, to, kSizeTag, comm_, &reqs[0]);
  for (std::size_t off = 0; off < bytes.size(); off += kMaxMessage) {
    MPI_Request r;
    MPI_Isend(bytes.data() + off, static_cast<int>(std::min(kMaxMessage, bytes.size() - off)), MPI_BYTE, to,
              kBytesTag, comm_, &r);
    reqs.push_back(r);
  }
  wait_politely(reqs);
}

std::vector<std::uint8_t> MpiPeers::receive(int& from) {
  if (from < -1 || from >= size_ || from == rank_) {
    throw std::invalid_argument("MpiPeers::receive: no rank " + std::to_string(from) + " to receive from");
  }
  MPI_Status st;
  poll_politely([&] {
    int flag = 0;
    MPI_Iprobe(from < 0 ? MPI_ANY_SOURCE : from, kSizeTag, comm_, &flag, &st);
    return flag != 0;
  });
  from = st.MPI_SOURCE;
  std::int64_t n = 0;
  MPI_Recv(&n, 1, MPI_INT64_T, from, kSizeTag, comm_, MPI_STATUS_IGNORE);
  if (n < 0 || n > kMaxPointBytes) {
    throw std::runtime_error("rank " + std::to_string(from) + " announced a message of " + std::to_string(n) + " bytes");
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(n));
  std::vector<MPI_Request> reqs;
  for (std::size_t off = 0; off < bytes.size(); off += kMaxMessage) {
    MPI_Request r;
    MPI_Irecv(bytes.data() + off, static_cast<int>(std::min(kMaxMessage, bytes.size() - off)), MPI_BYTE, from,
              kBytesTag, comm_, &r);
    reqs.push_back(r);
  }
  wait_politely(reqs);
  return bytes;
}

int MpiPeers::ranks_on_this_node() const {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

void MpiPeers::abort(const std::string& what, int code) const {
  std::fprintf(stderr, "heinfer: rank %d: %s\n", rank_, what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

}  // namespace heinfer::distributed
