// What an embedded run spread over the ranks of an MPI job does across them
// (`mpirun -np P heinfer run ... --distributed [--rank-groups G]`), beside the spatial
// partition the executor applies inside a group (plan/partition.h): the ranks agree on
// what they run, share rank 0's calibration and secret key, and, with several groups,
// split the encrypted batches among the groups and gather the outputs on rank 0.
// Every function is collective over `job` (every rank calls it, in the same order).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckks/encryption_params.h"
#include "ckks/keys.h"
#include "runtime/checkpoint.h"
#include "runtime/peers.h"

namespace heinfer::session {

/// Throws std::runtime_error naming the ranks whose `what` (a digest of the model file,
/// the inputs and the planning options) differs from rank 0's, on every rank.
void check_same_run(runtime::Peers& job, const std::string& what);

/// Rank 0's calibrated ranges (float64 per tensor) on every rank. Throws
/// std::runtime_error on a malformed message.
void broadcast_ranges(runtime::Peers& job, std::vector<double>& ranges);

/// The secret key of the run: generated on rank 0 from the CSPRNG, sent to the other
/// ranks of the same job (every rank is the data owner's process: docs/security.md),
/// the serialized bytes wiped after use on every rank.
ckks::SecretKey shared_secret_key(runtime::Peers& job, const ckks::EncryptionParameters& params);

/// Resuming a distributed run: the last step every rank's checkpoint directory holds
/// (runtime/checkpoint.h): `mine` itself, or its previous checkpoint where another rank
/// did not commit the last one. Throws std::runtime_error on every rank, with every
/// rank's steps, when some rank holds neither (directories of different runs, or one
/// restored from elsewhere).
runtime::ResumePoint common_resume_point(runtime::Peers& job, const runtime::ResumePoint& mine);

/// Throws std::runtime_error on every rank when the ranks' secret keys differ (the
/// checkpoint directories of different runs), comparing the first 64 bits of BLAKE2b digests.
void check_same_secret_key(runtime::Peers& job, const ckks::SecretKey& secret, const ckks::CKKSContext& context);

/// The samples group `group` of `groups` runs: the encrypted batches (chunks of `chunk`
/// samples, the last one shorter) whose index is `group` modulo `groups`, in order.
/// `values`: count × per_sample, batch-major. Sets `share_count` to its samples.
std::vector<double> group_samples(const std::vector<double>& values, std::int64_t count, std::int64_t per_sample,
                                  std::int64_t chunk, int groups, int group, std::int64_t& share_count);

/// The outputs of all groups, on rank 0 of `job` in sample order (count × per_output);
/// empty elsewhere. `leader`: this rank holds its group's outputs (`mine`, of the
/// samples group_samples gave the group) and sends them. Rank 0 checks every message
/// (group index, sizes) and throws std::runtime_error naming the sender otherwise.
std::vector<double> gather_group_outputs(runtime::Peers& job, bool leader, int groups, int group,
                                         const std::vector<double>& mine, std::int64_t count, std::int64_t per_output,
                                         std::int64_t chunk);

}  // namespace heinfer::session
