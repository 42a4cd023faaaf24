// The client's checks of what the server sends, before it acts on it (the client trusts
// nothing the server says):
//  - the encryption parameters: the client decides their security itself, from N and the
//    primes against the HomomorphicEncryption.org table (ckks/security.h), never from the
//    level flag the server serialized with them;
//  - requests for input elements (EncryptRequest in heinfer.proto): only elements of the
//    one served input, in ascending disjoint [begin, end) ranges, each at most once per
//    batch;
//  - round requests and outputs against the schedule announced in ModelInfo (RoundSpec):
//    the node, function, windows, window sizes, rounds and ciphertext levels of each
//    round, the bound the client checks decrypted values against (the announced one,
//    never a bound sent with a request), the output's shape, ciphertext count and factors.
//    Counts are checked as chunks arrive, before their ciphertexts are loaded, then each
//    ciphertext is loaded with the validating loader (ckks/serialization.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "protocol/heinfer.pb.h"

namespace heinfer::protocol {

/// The CKKS context of the serialized parameters `bytes` the server sent with
/// `fingerprint`, at 128-bit security (HE Standard Table 1, ternary secret) whatever
/// security flag they carry. Throws std::runtime_error, before any key exists, when they
/// do not load, are not 128-bit secure or do not match the fingerprint.
ckks::ContextPtr accepted_parameters(const std::string& bytes, const std::string& fingerprint);

/// The per-sample element indices `r` asks for, in order. `encrypted` (one flag per
/// input element, this batch) marks them. Throws std::runtime_error naming the violation
/// when r asks for another input, has an odd or empty range list, a range that is empty,
/// out of order or outside [0, encrypted.size()), or an element already encrypted.
std::vector<std::int64_t> requested_elements(const EncryptRequest& r, std::vector<bool>& encrypted);

/// Loads the ciphertexts of a round request chunk that round_chunk accepted against
/// `spec`, appending them to `cts` and each window's size to `window_sizes`. Throws
/// std::runtime_error for an invalid ciphertext or one at another level than announced.
void load_round_chunk(const RoundRequest& chunk, const RoundSpec& spec, const ckks::CKKSContext& context,
                      std::vector<ckks::Ciphertext>& cts, std::vector<std::size_t>& window_sizes);

/// Loads the ciphertexts of an output chunk that output_chunk accepted, appending them
/// to `cts` and to `zero` whether each is a zero element (empty bytes). Throws
/// std::runtime_error for an invalid ciphertext.
void load_output_chunk(const OutputChunk& chunk, const ckks::CKKSContext& context, std::vector<ckks::Ciphertext>& cts,
                       std::vector<bool>& zero);

/// One batch's checks of round requests and outputs against the announced schedule.
class ScheduleCheck {
 public:
  /// Throws std::runtime_error when the announcement itself is malformed (a node out of
  /// range or announced twice, a non-positive count, a bound that is not finite).
  explicit ScheduleCheck(const ModelInfo& info);

  /// A chunk of a round request; `windows_before`: windows of the same round in earlier
  /// chunks. Returns the node's announced rounds. Throws std::runtime_error on a node or
  /// function not announced, more windows per round or per node, or larger windows than
  /// announced.
  const RoundSpec& round_chunk(const RoundRequest& chunk, std::int64_t windows_before);
  /// The last chunk of a round of `node` arrived: throws when the node has no announced
  /// rounds or asks for more rounds than announced.
  void round_done(int node);
  /// A chunk of the output; `ciphertexts_before`: ciphertexts in earlier chunks. Throws
  /// on more ciphertexts than announced, or a first chunk whose shape, batch or factor
  /// count is not the announced one.
  void output_chunk(const OutputChunk& chunk, std::int64_t ciphertexts_before, std::int64_t batch);

 private:
  /// The schedule entry of `node`; throws std::runtime_error when it has none.
  int spec_index(int node) const;

  const ModelInfo& info_;
  /// Per announced node: its index into info_.schedule() (a map: the node count is the
  /// server's word, so nothing is sized from it).
  std::map<int, int> spec_of_;
  std::vector<std::int64_t> windows_, rounds_;  ///< per schedule entry, this batch
};

}  // namespace heinfer::protocol
