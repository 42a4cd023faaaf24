// What an encrypted run measured, per layer and in total (read by progress lines,
// profiles, the server's replies and the tests that replay the plan).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace heinfer::runtime {

struct LayerStats {
  std::string name, op;
  double seconds = 0;             ///< wall time (server + client for rounds)
  std::int64_t ciphertexts = 0;   ///< output ciphertexts
  int level = -1;                 ///< output level (-1: plaintext on the client)
  double start = 0;  ///< start of the last batch's layer: seconds since the monitor (else the batch) started
  std::int64_t rounds = 0;        ///< client round trips of this layer
  std::int64_t bytes_to_client = 0, bytes_to_server = 0;  ///< round traffic of this layer
  /// Store bytes after the layer and peaks during it (memory::CiphertextStore), and
  /// the sampled peak of RssAnon during it (0 without a monitor).
  std::int64_t dram_bytes = 0, pmem_bytes = 0, dram_peak_bytes = 0, pmem_peak_bytes = 0;
  std::int64_t rss_anon_peak_bytes = 0;
  /// Bytes the store holds for the node's output right after it (its own ciphertexts at
  /// their stored level; shared ones are counted where they were created), last batch.
  std::int64_t stored_bytes = 0;
};

struct EncryptedRunStats {
  std::int64_t rounds = 0;        ///< client rounds (input encryption and output not counted)
  std::int64_t bytes_to_client = 0, bytes_to_server = 0;  ///< serialized sizes, all traffic
  double client_seconds = 0;      ///< time inside client calls (encrypt, rounds, decrypt)
  double seconds = 0;             ///< total wall time
  /// A distributed run: bytes of ciphertexts this rank sent to / received from the other
  /// ranks (halos, gathers, partial sums) and the seconds spent exchanging them.
  std::int64_t halo_bytes_sent = 0, halo_bytes_received = 0;
  double exchange_seconds = 0;
  std::vector<LayerStats> layers; ///< per node (summed over the batches run with these stats)
};

}  // namespace heinfer::runtime
