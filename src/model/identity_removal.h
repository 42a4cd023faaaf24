// Passes: Identity/Dropout removal and dead-node elimination.
#pragma once

#include "model/graph.h"

namespace heinfer::model {

/// Removes Identity and (inference-mode) Dropout nodes, rewiring their readers - and graph
/// outputs - to the node's input. Returns the number of nodes removed.
int remove_identities(Graph& g);

/// Removes nodes none of whose outputs is read by another node or is a graph output
/// (repeatedly, so dead chains disappear). Returns the number of nodes removed.
int remove_dead_nodes(Graph& g);

}  // namespace heinfer::model
