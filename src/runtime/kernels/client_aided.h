// Non-polynomial ("client-aided") kernels on plaintext batch vectors. Under encryption
// the client runs these on decrypted values and re-encrypts the result.
#pragma once

#include "model/op_params.h"
#include "model/op_type.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime::kernels {

/// Relu: y = max(x, 0).
void relu(const PlainTensor& x, PlainTensor& y);
/// Clip-13: y = min(max(x, p.min), p.max).
void clip(const model::ClipParams& p, const PlainTensor& x, PlainTensor& y);
/// LeakyRelu-16: y = x < 0 ? alpha * x : x.
void leaky_relu(const model::LeakyReluParams& p, const PlainTensor& x, PlainTensor& y);
/// The smooth activations (Sigmoid, Tanh, HardSigmoid, HardSwish, Softplus, Erf, Exp, Log):
/// y = model::activation_value(op, p, x) element by element.
void elementwise_function(model::OpType op, const model::ActivationParams& p, const PlainTensor& x,
                       PlainTensor& y);
/// MaxPool-12: maximum over the in-bounds window positions (padding never wins);
/// x = [C, in...], y = [C, out...] per sample.
void max_pool(const model::PoolParams& p, const PlainTensor& x, PlainTensor& y);
/// Softmax-13 over the middle axis of [outer, n, inner] (max-subtracted, in float64).
void softmax(const model::SoftmaxParams& p, const PlainTensor& x, PlainTensor& y);
/// LogSoftmax-13: x - max - log(sum(exp(x - max))) over the middle axis.
void log_softmax(const model::SoftmaxParams& p, const PlainTensor& x, PlainTensor& y);

}  // namespace heinfer::runtime::kernels
