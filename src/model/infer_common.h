// Internal helpers shared by the per-operator shape-inference files.
#pragma once

#include <string>
#include <vector>

#include "model/error.h"
#include "model/graph.h"
#include "model/onnx_tensor.h"

namespace heinfer::model::detail {

/// State of one infer_shapes run.
struct InferContext {
  Graph& g;
  std::vector<int> use_count;  ///< per tensor: readers (nodes and graph outputs)
};

bool has_input(const Node& n, std::size_t i);
const Tensor& input(const Graph& g, const Node& n, std::size_t i);
/// Input i, which must be a constant (`what` names it in the message).
const Tensor& constant_input(const Graph& g, const Node& n, std::size_t i, const char* what);
/// Input i, which must be an activation.
const Tensor& activation_input(const Graph& g, const Node& n, std::size_t i, const char* what);
/// Keeps only the first output; a used extra output (mask, indices, statistics) is an error.
void keep_first_output(InferContext& c, Node& n);
Tensor& output(Graph& g, const Node& n);
/// Ends the inference of a node that keeps its first `inputs` inputs (the others were
/// constants it has consumed) and its first output, of per-sample `shape`, with `params`.
void set_output(InferContext& c, Node& n, std::size_t inputs, Shape shape, OpParams params);
/// Normalizes an axis of a tensor of full rank `rank` into [0, rank) (or [0, rank] with
/// allow_rank); throws when out of range.
std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank, const std::string& context,
                            bool allow_rank = false);
/// Throws the standard "touches the batch axis" error.
[[noreturn]] void throw_batch_axis(const Node& n, const std::string& what);

// One function per operator family (infer_*.cpp).
void infer_conv(InferContext& c, Node& n);
void infer_pool(InferContext& c, Node& n);
void infer_gemm(InferContext& c, Node& n);
void infer_matmul(InferContext& c, Node& n);
void infer_binary(InferContext& c, Node& n);
void infer_pow(InferContext& c, Node& n);
void infer_batchnorm(InferContext& c, Node& n);
void infer_activation(InferContext& c, Node& n);
void infer_softmax(InferContext& c, Node& n);
void infer_flatten(InferContext& c, Node& n);
void infer_reshape(InferContext& c, Node& n);
void infer_transpose(InferContext& c, Node& n);
void infer_concat(InferContext& c, Node& n);
void infer_pad(InferContext& c, Node& n);
void infer_identity(InferContext& c, Node& n);
void infer_gather(InferContext& c, Node& n);
void infer_slice(InferContext& c, Node& n);
void infer_squeeze(InferContext& c, Node& n);
void infer_expand(InferContext& c, Node& n);
void infer_cast(InferContext& c, Node& n);
void infer_reduce_mean(InferContext& c, Node& n);
void infer_resize(InferContext& c, Node& n);
/// Replaces the Split node g.nodes[k] by one Slice node per output (the first at k, the
/// others right after it, not yet inferred); returns the number of nodes inserted.
std::size_t expand_split(InferContext& c, std::size_t k);
/// Replaces HardSigmoid(x) (g.nodes[k]) by Clip(alpha * x + beta, 0, 1) and HardSwish(x)
/// by x * Clip(x / 6 + 1 / 2, 0, 1): exact, and encrypted through the masked Clip round
/// and a ciphertext product. Returns the number of nodes inserted after k.
std::size_t expand_hard_activation(InferContext& c, std::size_t k);
/// Replaces g.nodes[k] by `nodes` (the first at k, the others right after it, not yet
/// inferred), keeping the readers' counts; returns the number of nodes inserted.
std::size_t replace_node(InferContext& c, std::size_t k, std::vector<Node> nodes);
/// Pow(x, e) of an activation by a uniform constant exponent: e = 1 becomes Identity,
/// e = 0.5 Sqrt, an integer 3 <= e <= 64 a chain of ciphertext products by binary
/// exponentiation (depth ceil(log2 e)); e = 2 and anything else are left to infer_pow (a
/// square, or the error). Returns the number of nodes inserted after k.
std::size_t expand_power(InferContext& c, std::size_t k);
/// Gemm(A, B, C) with C an activation (a residual sum): Gemm(A, B) + beta * C. Returns the
/// number of nodes inserted after k (0 when C is absent or constant).
std::size_t expand_gemm_activation_bias(InferContext& c, std::size_t k);
/// Rewrites Neg(x) as Mul(x, -1) (a new scalar constant).
void negate_as_mul(InferContext& c, Node& n);
/// Shape inference of one node (dispatch on its op).
void infer_node(InferContext& c, Node& n);
/// The node's inputs as operand values: constants copied into `storage` (which must
/// outlive the result), nullptr for activations and omitted inputs.
std::vector<const TensorValue*> known_inputs(const Graph& g, const Node& n,
                                             std::vector<TensorValue>& storage);

}  // namespace heinfer::model::detail
