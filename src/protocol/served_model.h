// Internal to the server: a served model, prepared once at start-up (load, calibrate on
// the model owner's calibration set, plan) with the ModelInfo clients fetch and the
// memory a session reserves.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ckks/context.h"
#include "model/graph.h"
#include "plan/encrypted_plan.h"
#include "plan/parameters.h"
#include "protocol/heinfer.grpc.pb.h"
#include "protocol/remote.h"
#include "protocol/server_checks.h"

namespace heinfer::protocol {

/// A model as the server serves it: prepared once at start-up, immutable afterwards.
struct Model {
  std::string name;
  model::Graph g;
  plan::Parameters plan;
  plan::EncryptedPlan encrypted;  // levels, stored levels, schedule (the executor runs it)
  ckks::ContextPtr context;
  ModelInfo info;
  std::int64_t reservation = 0;           // bytes one session reserves
  std::int64_t max_key_bytes = 0;         // bound on one serialized key object
};

/// Loads, calibrates (runtime::calibrated_parameters, as `heinfer run`) and plans `sm`
/// in the `privacy` mode (model: real packing, Relu and MaxPool announced as BlindRefresh
/// rounds; `masks` then applies to nothing), and fills its ModelInfo. A session reserves kFootprintFactor × the predicted footprint
/// + the keys + four messages of `max_message_mib` + a fixed overhead. With
/// `compute_ranks` > 1 (`serve --distributed`) the announced rounds per node are those
/// of that many ranks, each running its share of the node (plan::round_requests), and
/// the reservation is rank 0's (no activations: one compute rank's call). Throws
/// std::runtime_error (with the model's name) for a model with other than one input and
/// one output, a missing or mis-shaped calibration set; model::ModelError and
/// std::invalid_argument as loading and planning do.
std::unique_ptr<Model> prepare_served_model(const ServedModel& sm, int max_message_mib,
                                            plan::RoundMasks masks = plan::RoundMasks::PerSample,
                                            bool unmasked_functions = false,
                                            plan::Privacy privacy = plan::Privacy::Activations,
                                            int compute_ranks = 1);

/// What a session of `m` must carry (the keys its plan needs).
SessionRequirements session_requirements(const Model& m);

}  // namespace heinfer::protocol
