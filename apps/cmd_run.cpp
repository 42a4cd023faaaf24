// `heinfer run MODEL.onnx --input X.npy --output Y.npy --plain [--labels L.npy]
//  [--batch B] [--threads T]`: inference over an .npy batch (plaintext reference executor).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "commands.h"
#include "run_encrypted.h"
#include "model/load.h"
#include "runtime/batch_runner.h"
#include "runtime/metrics.h"
#include "runtime/atomic_file.h"
#include "runtime/npy.h"

namespace heinfer::apps {
namespace {

struct RunOptions {
  std::string model, input, output, labels;
  bool plain = false;
  std::int64_t batch = 256;
  int threads = 0;
  EncryptedOptions encrypted;  // options of the encrypted path (run_encrypted.h)
};

void run(const RunOptions& o) {
  if (!o.plain) {
    run_encrypted(o.model, o.input, o.output, o.labels, o.batch, o.threads, o.encrypted);
    return;
  }
  const model::Graph g = model::load_model(o.model);
  if (g.inputs.size() != 1 || g.outputs.size() != 1) {
    throw std::runtime_error("`run` supports models with one input and one output");
  }
  const model::Shape& in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const model::Shape& out_shape = g.tensors[static_cast<std::size_t>(g.outputs[0])].shape;

  runtime::check_output_path(o.output);  // before the run, not after it
  runtime::InputBatch x = runtime::read_input_batch(o.input, in_shape);
  const std::int64_t count = x.count;
  std::vector<std::int64_t> labels;
  if (!o.labels.empty()) {
    const runtime::NpyArray l = runtime::read_npy(o.labels);
    if (l.dtype != runtime::NpyDType::Int64 && l.dtype != runtime::NpyDType::Int32 &&
        l.dtype != runtime::NpyDType::UInt8) {
      throw std::runtime_error("labels '" + o.labels + "' must be int64, int32 or uint8, not " +
                               runtime::npy_descr(l.dtype));
    }
    if (l.shape != std::vector<std::int64_t>{count}) {
      throw std::runtime_error("labels '" + o.labels + "' have shape " + model::to_string(l.shape) +
                               "; expected [" + std::to_string(count) + "]");
    }
    labels = l.to_int64();
  }

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> y =
      runtime::run_plain_batched(g, x.values, count, o.batch, runtime::PlainRunOptions{.threads = o.threads, .replace = {}});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::vector<std::int64_t> y_shape{count};
  y_shape.insert(y_shape.end(), out_shape.begin(), out_shape.end());
  runtime::NpyArray out;
  out.dtype = runtime::NpyDType::Float32;
  out.shape = y_shape;
  out.bytes.resize(y.size() * sizeof(float));
  std::memcpy(out.bytes.data(), y.data(), out.bytes.size());
  runtime::write_npy(o.output, out);
  std::printf("ran %lld samples through %s (plaintext, float64) in %.3f s; output %s -> %s\n",
              static_cast<long long>(count), o.model.c_str(), seconds,
              model::to_string(y_shape).c_str(), o.output.c_str());
  if (!labels.empty()) {
    const std::int64_t classes = model::numel(out_shape);
    const auto pred = runtime::argmax_rows(y, count, classes);
    const std::int64_t correct = runtime::count_correct(pred, labels);
    std::printf("top-1 accuracy: %.2f%% (%lld/%lld)\n", 100.0 * static_cast<double>(correct) / static_cast<double>(count),
                static_cast<long long>(correct), static_cast<long long>(count));
  }
}

}  // namespace

void register_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Run a model on a batch of inputs (.npy)");
  sub->add_option("model", o->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  sub->add_option("--input", o->input, "float32 .npy input, NCHW [N, per-sample shape...]")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--output", o->output, "float32 .npy output [N, output shape...] (written atomically)")
      ->required();
  sub->add_flag("--plain", o->plain, "plaintext float64 reference executor (no encryption)");
  sub->add_option("--labels", o->labels, "int64/int32/uint8 .npy labels [N]: print top-1 accuracy")
      ->check(CLI::ExistingFile);
  sub->add_option("--batch", o->batch, "samples per executor call")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--threads", o->threads, "OpenMP threads (0: default)")->check(CLI::NonNegativeNumber);
  add_encrypted_options(sub, o->encrypted);
  sub->callback([o] { run(*o); });
}

}  // namespace heinfer::apps
