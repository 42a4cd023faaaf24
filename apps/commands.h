// Subcommands of the `heinfer` command-line tool. Each register_* adds one
// subcommand (with its options and callback) to the top-level CLI11 app.
#pragma once

namespace CLI {
class App;
}

namespace heinfer::apps {

/// `heinfer inspect MODEL.onnx`: the graph after passes, per-node class, MACs, depth.
void register_inspect(CLI::App& app);

/// `heinfer profile plot PROFILE.json OUT.png`: memory per tier over time, time per layer.
void register_profile(CLI::App& app);

/// `heinfer run MODEL.onnx --input X.npy --output Y.npy [...]`: inference.
void register_run(CLI::App& app);

/// `heinfer ckks-demo`: encrypt, compute, decrypt a vector, printing the error.
void register_ckks_demo(CLI::App& app);

/// `heinfer serve --model NAME=PATH.onnx --calibration NAME=X.npy --listen HOST:PORT [...]`:
/// the gRPC server of encrypted inference (protocol/remote.h).
void register_serve(CLI::App& app);

/// `heinfer client --server HOST:PORT --model NAME --input X.npy --output Y.npy [...]`.
void register_client(CLI::App& app);

}  // namespace heinfer::apps
