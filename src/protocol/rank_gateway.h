// Internal to `mpirun -np P heinfer serve --distributed`: rank 0's side. Rank 0 speaks
// gRPC to the data owner and computes nothing; ranks 1 … P − 1 run each batch in column
// slabs (plan/partition.h) and send their client calls to rank 0 (protocol/rank_client.h),
// which makes them on the Infer stream of the batch, one at a time in arrival order.
// The data owner sees every compute rank's rounds of a node as separate rounds (the
// schedule ModelInfo announces counts them: plan::round_requests), each over that
// rank's elements, shuffled; the inputs are asked for in the ranks' slabs.
// MPI is called from gRPC's threads here: the job must run at MPI_THREAD_SERIALIZED and
// the caller holds one lock around every call of this file.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "protocol/heinfer.pb.h"
#include "protocol/remote_client.h"
#include "protocol/served_model.h"
#include "runtime/peers.h"
#include "runtime/run_stats.h"

namespace heinfer::protocol {

/// One batch on the compute ranks: sends them `command` (model, batch, the session's
/// keys), makes their calls on `remote` and returns once every compute rank reported the
/// batch's end; `stats` gets the wall time and the layers the first compute rank
/// reported. After the first failed call (a StatusError of `remote`: the data owner broke
/// the contract or left), every later call is answered with its message (the ranks stop
/// at the next step) and, once all ranks are done, the error is rethrown.
void run_batch_on_ranks(runtime::Peers& job, const Model& m, const RankCommand& command, RemoteClient& remote,
                        runtime::EncryptedRunStats& stats);

/// Tells every compute rank to stop serving (they return from serve_as_compute_rank).
void stop_compute_ranks(runtime::Peers& job);

/// A compute rank's loop (ranks 1 … P − 1 of `job`; `group`: those ranks): runs every
/// batch rank 0 sends with the executor of its model over the group, until the stop
/// command. Throws std::runtime_error on a malformed command, an unknown model or
/// invalid keys from rank 0, and what the executor throws other than a cancellation;
/// the caller then ends the job.
void serve_as_compute_rank(runtime::Peers& job, runtime::Peers& group,
                           const std::map<std::string, std::unique_ptr<Model>>& models, int threads);

}  // namespace heinfer::protocol
