// The Python extension module `heinfer._heinfer` (pybind11): loading a model and running
// it encrypted in this process, numpy in and numpy out. The pure-Python package
// `heinfer` (python/heinfer/__init__.py) wraps it with progress bars and keyword
// defaults; the operations themselves are session/embedded_run.h's, as the CLI's.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <future>
#include <thread>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/error.h"
#include "model/graph.h"
#include "model/load.h"
#include "protocol/remote.h"
#include "runtime/batch_runner.h"
#include "runtime/encrypted_executor.h"
#include "runtime/npy.h"
#include "session/embedded_run.h"
#include "session/inspect.h"

namespace py = pybind11;

namespace heinfer::python {
namespace {

/// A loaded model: its file and the shapes of its one input and one output.
struct Model {
  std::string path;
  std::vector<std::int64_t> input_shape, output_shape;  // per sample
  std::size_t nodes = 0;
};

Model load(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    PyErr_SetString(PyExc_FileNotFoundError, ("model '" + path + "' does not exist").c_str());
    throw py::error_already_set();
  }
  const model::Graph g = model::load_model(path);
  if (g.inputs.size() != 1 || g.outputs.size() != 1) {
    throw std::invalid_argument("model '" + path + "': heinfer runs models with one input and one output");
  }
  Model m;
  m.path = path;
  m.input_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  m.output_shape = g.tensors[static_cast<std::size_t>(g.outputs[0])].shape;
  m.nodes = g.nodes.size();
  return m;
}

/// The inputs as the CLI's --input would give them: float32/float64, C order, shape
/// [N, per-sample shape], finite (runtime::make_input_batch: the same messages).
runtime::InputBatch input_batch(const Model& m, const py::array& x) {
  if (!(x.flags() & py::array::c_style)) {
    throw std::invalid_argument("input array is not C-contiguous; pass numpy.ascontiguousarray(x)");
  }
  const std::string descr = py::str(x.dtype().attr("str"));
  std::vector<std::int64_t> shape(x.shape(), x.shape() + x.ndim());
  return runtime::make_input_batch("input array", descr, shape, x.data(), m.input_shape);
}

/// Calls the Python callback per layer and checks for Ctrl-C between steps (the run
/// holds no GIL; each call takes it).
class PythonObserver : public runtime::RunObserver {
 public:
  PythonObserver(std::function<void(py::dict)> callback, std::atomic<bool>& cancel)
      : callback_(std::move(callback)), cancel_(cancel) {}
  void band_done(std::size_t, const plan::StreamStep&, std::size_t, std::size_t) override { poll(); }
  void node_done(std::size_t node, std::size_t nodes, const runtime::LayerStats& s) override {
    py::gil_scoped_acquire gil;
    if (callback_ && !failed_) {
      try {
        py::dict e;
        e["index"] = node;
        e["nodes"] = nodes;
        e["name"] = s.name;
        e["op"] = s.op;
        e["seconds"] = s.seconds;
        e["ciphertexts"] = s.ciphertexts;
        e["level"] = s.level;
        e["dram_bytes"] = s.dram_bytes;
        e["tier_bytes"] = s.pmem_bytes;
        callback_(e);
      } catch (py::error_already_set& err) {  // the callback raised: stop the run, re-raise after
        error_ = std::move(err);
        failed_ = true;
        cancel_ = true;
      }
    }
    check_signals();
  }
  /// The callback's exception, if it raised one.
  std::optional<py::error_already_set>& error() { return error_; }

 private:
  void poll() {
    py::gil_scoped_acquire gil;
    check_signals();
  }
  void check_signals() {
    if (PyErr_CheckSignals() != 0) {
      PyErr_Clear();
      interrupted_ = true;
      cancel_ = true;
    }
  }
  std::function<void(py::dict)> callback_;
  std::atomic<bool>& cancel_;
  bool failed_ = false;
  std::optional<py::error_already_set> error_;

 public:
  bool interrupted_ = false;
};

py::dict summary(const session::EmbeddedRunResult& r) {
  py::dict s;
  s["samples"] = r.count;
  s["parameters"] = r.parameters.describe();
  s["n"] = r.parameters.params.poly_modulus_degree();
  s["coeff_bits"] = r.parameters.params.coeff_bits();
  s["kernels"] = r.kernels;
  s["limb_words"] = r.limb_words;
  s["batch"] = r.chunk;
  s["batches"] = r.batch_seconds.size();
  s["setup_seconds"] = r.setup_seconds;
  s["seconds"] = r.stats.seconds;
  s["batch_seconds"] = r.batch_seconds;
  s["rounds"] = r.stats.rounds;
  s["client_seconds"] = r.stats.client_seconds;
  s["bytes_to_server"] = r.stats.bytes_to_server;
  s["bytes_to_client"] = r.stats.bytes_to_client;
  s["peak_rss_bytes"] = r.peak_rss_bytes;
  s["peak_rss_anon_bytes"] = r.peak_rss_anon_bytes;
  s["dram"] = py::dict(py::arg("peak_bytes") = r.dram.peak_bytes, py::arg("bytes_written") = r.dram.bytes_written);
  s["tier"] = py::dict(py::arg("peak_bytes") = r.pmem.peak_bytes, py::arg("bytes_written") = r.pmem.bytes_written,
                       py::arg("bytes_read") = r.pmem.bytes_read);
  py::list layers;
  for (const auto& l : r.stats.layers) {
    layers.append(py::dict(py::arg("name") = l.name, py::arg("op") = l.op, py::arg("seconds") = l.seconds,
                           py::arg("ciphertexts") = l.ciphertexts, py::arg("level") = l.level,
                           py::arg("rounds") = l.rounds, py::arg("dram_peak_bytes") = l.dram_peak_bytes,
                           py::arg("tier_peak_bytes") = l.pmem_peak_bytes));
  }
  s["layers"] = layers;
  if (!r.reference.empty()) {
    const auto [agreement, max_err] = session::check_against_reference(r);
    s["check"] = py::dict(py::arg("top1_agreement") = agreement, py::arg("max_abs_error") = max_err);
  }
  return s;
}

py::array_t<float> to_array(const std::vector<double>& v, const std::vector<std::int64_t>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  py::array_t<float> a(dims);
  float* p = a.mutable_data();
  for (std::size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
  return a;
}

/// Model.run: returns (outputs, summary).
py::tuple run(const Model& m, const py::array& x, bool encrypted, const std::string& privacy,
              std::int64_t dram_budget, const std::string& pmem_dir, int threads, bool progress_lines,
              bool check, const std::string& limb_words, const std::string& round_masks, std::int64_t batch,
              std::function<void(py::dict)> callback) {
  if (privacy != "activations" && privacy != "model") {
    throw std::invalid_argument("privacy='" + privacy +
                                "': 'activations' (client-aided rounds on masked activations) or 'model' (Relu, "
                                "Clip, LeakyRelu and MaxPool evaluated homomorphically; docs/security.md)");
  }
  if (dram_budget < 0) throw std::invalid_argument("dram_budget must be >= 0 bytes");
  if (threads < 0) throw std::invalid_argument("threads must be >= 0");
  if (!pmem_dir.empty() && dram_budget == 0) throw std::invalid_argument("pmem_dir needs dram_budget");
  runtime::InputBatch in = input_batch(m, x);
  std::vector<std::int64_t> out_shape{in.count};
  out_shape.insert(out_shape.end(), m.output_shape.begin(), m.output_shape.end());
  if (!encrypted) {
    std::vector<float> y;
    {
      py::gil_scoped_release nogil;
      const model::Graph g = model::load_model(m.path);
      y = runtime::run_plain_batched(g, in.values, in.count, batch > 0 ? batch : 256, runtime::PlainRunOptions{.threads = threads, .replace = {}});
    }
    return py::make_tuple(to_array(std::vector<double>(y.begin(), y.end()), out_shape), py::dict());
  }
  session::EmbeddedRunOptions o;
  o.round_masks = round_masks;
  o.privacy = privacy;
  o.check = check;
  o.progress = progress_lines;
  o.threads = threads;
  o.batch = batch;
  o.dram_budget = dram_budget;
  o.pmem_dir = pmem_dir;
  o.limb_words = limb_words;
  o.log = nullptr;
  std::atomic<bool> cancel{false};
  PythonObserver observer(std::move(callback), cancel);
  o.observers.push_back(&observer);
  o.cancel = &cancel;
  session::EmbeddedRunResult r;
  try {
    py::gil_scoped_release nogil;
    r = session::run_embedded(m.path, std::move(in.values), in.count, o);
  } catch (const runtime::RunCancelled&) {
    if (observer.error()) throw std::move(*observer.error());
    if (observer.interrupted_) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
      throw py::error_already_set();
    }
    throw;
  }
  return py::make_tuple(to_array(r.outputs, r.output_shape), summary(r));
}

/// Model.inspect: the prediction's JSON text (session::inspect_model).
std::string inspect(const Model& m, std::int64_t batch, const std::string& resolution, int threads, bool time,
                    int limb_words, const std::string& round_masks) {
  if (batch < 1) throw std::invalid_argument("batch must be >= 1");
  if (threads < 0) throw std::invalid_argument("threads must be >= 0");
  if (limb_words != 32 && limb_words != 64) throw std::invalid_argument("limb_words must be 32 or 64");
  session::InspectOptions o;
  o.model = m.path;
  o.batch = batch;
  o.resolution = resolution;
  o.threads = threads;
  o.no_time = !time;
  o.limb_words = limb_words;
  o.round_masks = round_masks;
  o.out = nullptr;
  py::gil_scoped_release nogil;
  return session::inspect_model(o).dump();
}

/// Runs `work` on a thread of its own while this (the main) thread, without the GIL,
/// looks for signals every 50 ms: Ctrl-C sets `cancel`, and once `work` has returned or
/// thrown, KeyboardInterrupt is raised. A blocking RPC cannot poll signals itself, and
/// Python runs signal handlers on the main thread only.
template <class Work>
void run_interruptible(Work work, std::atomic<bool>& cancel) {
  std::exception_ptr failure;
  std::promise<void> finished;
  std::future<void> done = finished.get_future();
  bool interrupted = false;
  {
    py::gil_scoped_release nogil;
    std::thread worker([&] {
      try {
        work();
      } catch (...) {
        failure = std::current_exception();
      }
      finished.set_value();
    });
    while (done.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
      py::gil_scoped_acquire gil;
      if (!interrupted && PyErr_CheckSignals() != 0) {
        PyErr_Clear();
        interrupted = true;
        cancel = true;
      }
    }
    worker.join();
  }
  if (interrupted) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
  if (failure) std::rethrow_exception(failure);
}

/// Client.models: the served models as dicts (protocol::list_models).
py::list list_models(const protocol::ClientOptions& base) {
  std::atomic<bool> cancel{false};
  protocol::ClientOptions o = base;
  o.cancel = &cancel;
  std::vector<protocol::ServedModelInfo> models;
  run_interruptible([&] { models = protocol::list_models(o); }, cancel);
  py::list out;
  for (const auto& m : models) {
    out.append(py::dict(py::arg("name") = m.name, py::arg("input_name") = m.input_name,
                        py::arg("input_shape") = py::tuple(py::cast(m.input_shape)),
                        py::arg("output_shape") = py::tuple(py::cast(m.output_shape)),
                        py::arg("capacity") = m.capacity, py::arg("poly_modulus_degree") = m.poly_modulus_degree,
                        py::arg("modulus_bits") = m.modulus_bits, py::arg("complex_packing") = m.complex_packing,
                        py::arg("rounds") = m.rounds, py::arg("description") = m.description,
                        py::arg("refused") = m.refused.empty() ? py::object(py::none()) : py::object(py::str(m.refused))));
  }
  return out;
}

/// The summary dict of a remote run.
py::dict remote_summary(const protocol::ClientResult& r, std::int64_t samples) {
  py::dict s;
  s["samples"] = samples;
  s["parameters"] = r.description;
  s["seconds"] = r.seconds;
  s["server_seconds"] = r.server_seconds;
  s["batches"] = r.batches;
  s["rounds"] = r.rounds;
  s["round_trips"] = r.round_trips;
  s["bytes_sent"] = r.bytes_sent;
  s["bytes_received"] = r.bytes_received;
  py::list layers;
  for (const auto& l : r.layers) {
    layers.append(py::dict(py::arg("name") = l.name, py::arg("op") = l.op, py::arg("seconds") = l.seconds,
                           py::arg("ciphertexts") = l.ciphertexts, py::arg("level") = l.level,
                           py::arg("bytes_to_client") = l.bytes_to_client,
                           py::arg("bytes_to_server") = l.bytes_to_server, py::arg("round_trips") = l.round_trips));
  }
  s["layers"] = layers;
  return s;
}

/// Client.session: a protocol::RemoteSession held by Python (heinfer.Session wraps it as
/// a context manager). Progress goes to the callable of the call in flight.
class Session {
 public:
  Session(const protocol::ClientOptions& base, const std::string& model, std::function<void(std::string)> progress)
      : progress_(std::move(progress)) {
    protocol::ClientOptions o = base;
    o.model = model;
    o.progress = [this](const std::string& line) {
      py::gil_scoped_acquire gil;
      if (progress_) progress_(line);
    };
    o.cancel = &cancel_;
    run_interruptible([&] { session_ = std::make_unique<protocol::RemoteSession>(o); }, cancel_);
    progress_ = nullptr;
  }
  ~Session() {
    py::gil_scoped_release nogil;  // closing waits for the server (at most 2 s)
    session_.reset();
  }

  /// (outputs, summary) of RemoteSession::infer.
  py::tuple infer(const py::array& x, std::function<void(std::string)> progress) {
    if (!(x.flags() & py::array::c_style)) {
      throw std::invalid_argument("input array is not C-contiguous; pass numpy.ascontiguousarray(x)");
    }
    if (x.ndim() < 1) throw std::invalid_argument("input array has no batch dimension");
    const std::vector<std::int64_t> shape(x.shape(), x.shape() + x.ndim());
    const std::vector<std::int64_t> per_sample(shape.begin() + 1, shape.end());
    runtime::InputBatch in =
        runtime::make_input_batch("input array", py::str(x.dtype().attr("str")), shape, x.data(), per_sample);
    std::unique_lock busy(busy_, std::try_to_lock);  // taken under the GIL: no wait
    if (!busy) throw std::runtime_error("the session is busy with another call (one call at a time)");
    if (!session_->is_open()) throw std::logic_error("the session is closed");
    progress_ = std::move(progress);
    cancel_ = false;
    protocol::ClientResult r;
    run_interruptible([&] { r = session_->infer(in.values, per_sample, in.count); }, cancel_);
    progress_ = nullptr;
    std::vector<std::int64_t> out_shape{in.count};
    out_shape.insert(out_shape.end(), r.output_shape.begin(), r.output_shape.end());
    return py::make_tuple(to_array(r.outputs, out_shape), remote_summary(r, in.count));
  }
  void close() {
    std::unique_lock busy(busy_, std::try_to_lock);
    if (!busy) throw std::runtime_error("the session is busy with another call (one call at a time)");
    cancel_ = false;
    run_interruptible([&] { session_->close(); }, cancel_);
  }
  bool is_open() const { return session_->is_open(); }
  const protocol::RemoteSession& session() const { return *session_; }

 private:
  std::mutex busy_;  // one call at a time (RemoteSession is not thread-safe)
  std::atomic<bool> cancel_{false};
  std::function<void(std::string)> progress_;
  std::unique_ptr<protocol::RemoteSession> session_;
};

}  // namespace
}  // namespace heinfer::python

PYBIND11_MODULE(_heinfer, mod) {
  using namespace heinfer::python;
  mod.doc() = "heinfer: encrypted inference of ONNX models with RNS-CKKS (the extension; use the heinfer package)";
  // One Python InputError (a ValueError) for a bad array and for values outside the
  // planned input range.
  static py::exception<heinfer::runtime::NpyError>& input_error =
      py::register_exception<heinfer::runtime::NpyError>(mod, "InputError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const heinfer::model::ModelError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const heinfer::runtime::InputError& e) {
      PyErr_SetString(input_error.ptr(), e.what());
    }
  });
  py::class_<Model>(mod, "Model")
      .def_readonly("path", &Model::path)
      .def_property_readonly("input_shape", [](const Model& m) { return py::tuple(py::cast(m.input_shape)); })
      .def_property_readonly("output_shape", [](const Model& m) { return py::tuple(py::cast(m.output_shape)); })
      .def_readonly("nodes", &Model::nodes)
      .def("_run", &run, py::arg("x"), py::arg("encrypted"), py::arg("privacy"), py::arg("dram_budget"),
           py::arg("pmem_dir"), py::arg("threads"), py::arg("progress_lines"), py::arg("check"),
           py::arg("limb_words"), py::arg("round_masks"), py::arg("batch"), py::arg("callback"));
  py::class_<heinfer::protocol::ClientOptions>(mod, "ClientOptions")
      .def(py::init<>())
      .def_readwrite("server", &heinfer::protocol::ClientOptions::server)
      .def_readwrite("tls_ca", &heinfer::protocol::ClientOptions::tls_ca)
      .def_readwrite("tls_cert", &heinfer::protocol::ClientOptions::tls_cert)
      .def_readwrite("tls_key", &heinfer::protocol::ClientOptions::tls_key)
      .def_readwrite("key_dir", &heinfer::protocol::ClientOptions::key_dir)
      .def_readwrite("insecure", &heinfer::protocol::ClientOptions::insecure)
      .def_readwrite("connect_timeout_s", &heinfer::protocol::ClientOptions::connect_timeout_s);
  mod.def("_list_models", &list_models, py::arg("options"));
  py::class_<Session>(mod, "Session")
      .def(py::init<const heinfer::protocol::ClientOptions&, const std::string&, std::function<void(std::string)>>(),
           py::arg("options"), py::arg("model"), py::arg("progress"))
      .def("infer", &Session::infer, py::arg("x"), py::arg("progress"))
      .def("close", &Session::close)
      .def_property_readonly("is_open", &Session::is_open)
      .def_property_readonly("input_shape",
                             [](const Session& s) { return py::tuple(py::cast(s.session().input_shape())); })
      .def_property_readonly("output_shape",
                             [](const Session& s) { return py::tuple(py::cast(s.session().output_shape())); })
      .def_property_readonly("capacity", [](const Session& s) { return s.session().capacity(); })
      .def_property_readonly("description", [](const Session& s) { return s.session().description(); })
      .def_property_readonly("_open_bytes", [](const Session& s) {
        return py::make_tuple(s.session().open_bytes_sent(), s.session().open_bytes_received());
      });
  mod.def("_load", &load, py::arg("path"));
  mod.def("_inspect", &inspect, py::arg("model"), py::arg("batch"), py::arg("resolution"), py::arg("threads"),
          py::arg("time"), py::arg("limb_words"), py::arg("round_masks"));
}
