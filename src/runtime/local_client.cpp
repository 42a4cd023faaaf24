#include "runtime/local_client.h"

#include "ckks/blind_refresh.h"
#include "memory/process_memory.h"
#include "model/activation_fn.h"
#include "runtime/round_function.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace heinfer::runtime {
namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

LocalClient::LocalClient(ckks::ContextPtr context, ckks::Packing packing, double scale)
    : context_(context),
      packing_(packing),
      scale_(scale),
      keygen_(context),
      encoder_(context),
      encryptor_(context, keygen_.secret_key()),
      decryptor_(context, keygen_.secret_key()) {}

LocalClient::LocalClient(ckks::ContextPtr context, ckks::Packing packing, double scale, const ckks::SecretKey& secret)
    : context_(context),
      packing_(packing),
      scale_(scale),
      keygen_(context, secret),
      encoder_(context),
      encryptor_(context, keygen_.secret_key()),
      decryptor_(context, keygen_.secret_key()) {}

const EvaluationKeys& LocalClient::evaluation_keys() {
  if (!keys_) {
    keys_ = std::make_unique<EvaluationKeys>();
    keys_->public_key = keygen_.create_public_key();
    if (context_->special_count() > 0) {  // else the parameters have no key switching
      keys_->relin = keygen_.create_relin_keys();
      if (packing_ == ckks::Packing::Complex) keys_->galois = keygen_.create_galois_keys({}, true);
    }
  }
  return *keys_;
}

std::int64_t LocalClient::capacity() const { return ckks::samples_per_ciphertext(packing_, context_->n()); }

void LocalClient::decode(const ckks::Ciphertext& ct, std::vector<double>& out) const {
  ckks::Plaintext p;
  if (ct.is_compact()) {
    ckks::Ciphertext c = ct;
    c.expand(*context_);
    decryptor_.decrypt(c, p);
  } else {
    decryptor_.decrypt(ct, p);
  }
  if (packing_ == ckks::Packing::Complex) encoder_.decode_packed(p, out);
  else encoder_.decode(p, out);
}

std::string LocalClient::refresh(const RoundRequest& r, const ckks::Ciphertext& masked, ckks::Ciphertext& out,
                                 double* recorded) const {
  // The announced bound is 2R = 2^(bits + 1): anything else is not a refresh this client
  // agreed to.
  const double bits = std::log2(r.bound) - 1.0;
  if (!(bits >= 1 && bits <= 123 && bits == std::floor(bits))) {
    return "layer '" + r.layer + "': a refresh bound " + fmt(r.bound) + " that is not 2^(mask bits + 1)";
  }
  const int log2_range = static_cast<int>(bits);
  try {
    ckks::Ciphertext c = masked;
    if (c.is_compact()) c.expand(*context_);
    out = ckks::refresh_at_top_level(c, log2_range, decryptor_, encryptor_, *context_);
    out.compact();
    if (recorded) {  // a curious client's record: the first coefficients, in units of R
      ckks::Plaintext p;
      decryptor_.decrypt(c, p);
      std::vector<double> v;
      encoder_.decode_coefficients(p, v);
      for (std::size_t i = 0; i < record_slots_ && i < v.size(); ++i) {
        recorded[i] = std::ldexp(v[i] * c.scale(), -log2_range);
      }
    }
  } catch (const std::exception& e) {
    return "layer '" + r.layer + "': " + e.what();
  }
  return "";
}

void LocalClient::encrypt_values(std::span<const double> values, ckks::Ciphertext& out) const {
  ckks::Plaintext p;
  if (packing_ == ckks::Packing::Complex) encoder_.encode_packed(values, scale_, context_->max_level(), p);
  else encoder_.encode(values, scale_, context_->max_level(), p);
  encryptor_.encrypt_symmetric(p, out);
  out.compact();
}

std::int64_t LocalClient::batch() const { return inputs_ && !inputs_->empty() ? (*inputs_)[0].batch : 0; }

void LocalClient::set_inputs(std::vector<PlainTensor>* inputs) {
  inputs_ = inputs;
  encrypted_.clear();
  if (inputs_) {
    for (const PlainTensor& x : *inputs_) encrypted_.emplace_back(static_cast<std::size_t>(x.elements()), false);
  }
}

void LocalClient::input_encrypted(std::size_t input) {
  if (inputs_ && input < inputs_->size()) std::vector<double>().swap((*inputs_)[input].data);
}

std::vector<ckks::Ciphertext> LocalClient::encrypt(const EncryptRequest& r) {
  if (!inputs_ || r.input >= inputs_->size()) {
    throw std::out_of_range("input '" + r.name + "': the client has no input " + std::to_string(r.input));
  }
  PlainTensor& x = (*inputs_)[r.input];
  const std::int64_t elements = x.elements();
  PlainTensor part;
  part.shape = {static_cast<std::int64_t>(r.elements.size())};
  part.batch = x.batch;
  part.data.reserve(r.elements.size() * static_cast<std::size_t>(x.batch));
  for (std::int64_t e : r.elements) {
    if (e < 0 || e >= elements) {
      throw std::out_of_range("input '" + r.name + "': element " + std::to_string(e) + " outside [0, " +
                              std::to_string(elements) + ")");
    }
    if (encrypted_[r.input][static_cast<std::size_t>(e)]) {
      throw std::logic_error("input '" + r.name + "': element " + std::to_string(e) +
                             " was encrypted before and its values released");
    }
    part.data.insert(part.data.end(), x.data.begin() + e * x.batch, x.data.begin() + (e + 1) * x.batch);
  }
  std::vector<ckks::Ciphertext> cts = encrypt_tensor(part, r.name, r.bound);
  // The values encrypted are not read again: their pages go back to the kernel, per run
  // of consecutive elements (a band's rows of one channel).
  std::vector<std::int64_t> sorted(r.elements.begin(), r.elements.end());
  std::sort(sorted.begin(), sorted.end());
  auto& done = encrypted_[r.input];
  const auto values = static_cast<std::size_t>(x.batch) * sizeof(double);
  const auto reach = static_cast<std::int64_t>(4096 / values + 1);  // elements per page, rounded up
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i + 1;
    while (j < sorted.size() && sorted[j] <= sorted[j - 1] + 1) ++j;
    // Extended over neighbours encrypted before (as far as one page reaches), so that the
    // pages straddling two bands go too.
    std::int64_t lo = sorted[i], hi = sorted[j - 1] + 1;
    for (std::int64_t k = 0; k < reach && lo > 0 && done[static_cast<std::size_t>(lo - 1)]; ++k) --lo;
    for (std::int64_t k = 0; k < reach && hi < elements && done[static_cast<std::size_t>(hi)]; ++k) ++hi;
    memory::release_pages(x.data.data() + lo * x.batch, static_cast<std::size_t>(hi - lo) * values);
    for (std::size_t k = i; k < j; ++k) done[static_cast<std::size_t>(sorted[k])] = true;
    i = j;
  }
  return cts;
}

std::vector<ckks::Ciphertext> LocalClient::encrypt_tensor(const PlainTensor& x, const std::string& name,
                                                          double bound) const {
  if (x.batch <= 0 || x.batch > capacity()) {
    throw InputError("input '" + name + "': batch " + std::to_string(x.batch) +
                     " does not fit in one ciphertext (capacity " + std::to_string(capacity()) + ")");
  }
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    const double v = x.data[i];
    if (!std::isfinite(v)) {
      throw InputError("input '" + name + "': value " + fmt(v) + " (sample " +
                       std::to_string(static_cast<std::int64_t>(i) % x.batch) +
                       ") is not finite; refusing to encrypt");
    }
    if (std::fabs(v) > bound) {
      throw InputError("input '" + name + "': |value| " + fmt(std::fabs(v)) + " (sample " +
                       std::to_string(static_cast<std::int64_t>(i) % x.batch) +
                       ") exceeds the planned input range " + fmt(bound) +
                       "; refusing to encrypt (re-plan with this input)");
    }
  }
  // Unused slots repeat the batch (slot b holds sample b mod batch): every slot then
  // carries an in-distribution value, inside the calibrated ranges. Zeros would instead
  // carry the network's response to an all-zero input, which the ranges do not cover,
  // and a CKKS overflow in any slot corrupts all of them.
  const std::int64_t elements = x.elements();
  const auto slots = static_cast<std::size_t>(capacity());
  std::vector<ckks::Ciphertext> out(static_cast<std::size_t>(elements));
#pragma omp parallel for schedule(dynamic, 4)
  for (std::int64_t e = 0; e < elements; ++e) {
    const auto v = x.element(e);
    std::vector<double> filled(slots);
    for (std::size_t b = 0; b < slots; ++b) filled[b] = v[b % v.size()];
    encrypt_values(filled, out[static_cast<std::size_t>(e)]);
  }
  return out;
}

std::vector<ckks::Ciphertext> LocalClient::round(const RoundRequest& r) {
  const std::size_t count = r.windows.size(), replies = replies_per_window(r.function);
  const bool abs = r.function == RoundFunction::Abs || r.function == RoundFunction::AbsWithValue;
  const std::optional<model::OpType> function_op = unmasked_function_op(r.function);
  std::vector<ckks::Ciphertext> out(count * replies);
  const std::size_t rs = record_slots_;
  std::vector<double> first(recording_ ? count * 8 * rs : 0, 0.0);
  std::vector<std::string> errors(count);
  const auto batch = static_cast<std::size_t>(capacity());
#pragma omp parallel for schedule(dynamic, 4)
  for (std::size_t w = 0; w < count; ++w) {
    const auto& win = r.windows[w];
    if (r.function == RoundFunction::BlindRefresh) {
      errors[w] = win.size() != 1 ? "layer '" + r.layer + "': a refresh window of " + std::to_string(win.size()) +
                                        " ciphertexts"
                                  : refresh(r, *win[0], out[w], recording_ ? first.data() + w * 8 * rs : nullptr);
      continue;
    }
    std::vector<double> acc, v;
    for (std::size_t k = 0; k < win.size(); ++k) {
      decode(*win[k], v);
      if (recording_ && k < 8) std::copy_n(v.begin(), std::min(rs, v.size()), first.begin() + static_cast<std::ptrdiff_t>((w * 8 + k) * rs));
      for (std::size_t b = 0; b < batch; ++b) {
        if (!std::isfinite(v[b]) || std::fabs(v[b]) > r.bound) {
          errors[w] = "layer '" + r.layer + "': overflow: decrypted |value| " + fmt(std::fabs(v[b])) +
                      " exceeds the planned bound " + fmt(r.bound) +
                      " (CKKS modulus too small for this input; re-plan)";
          break;
        }
      }
      if (k == 0) acc = v;
      else for (std::size_t b = 0; b < batch; ++b) acc[b] = std::max(acc[b], v[b]);
    }
    if ((abs || function_op) && win.size() != 1) {
      errors[w] = "layer '" + r.layer + "': a window of " + std::to_string(win.size()) +
                  " ciphertexts for a function of one value";
      continue;
    }
    if (r.function == RoundFunction::AbsWithValue) encrypt_values(acc, out[w * replies]);
    if (function_op) {
      for (double& a : acc) {
        a = model::activation_value(*function_op, {}, a);
        if (!std::isfinite(a)) {
          errors[w] = "layer '" + r.layer + "': " + std::string(model::op_name(*function_op)) +
                      " of a decrypted value is not finite";
          break;
        }
      }
      if (!errors[w].empty()) continue;
    } else if (abs) {
      for (double& a : acc) a = std::fabs(a);
    } else if (r.function != RoundFunction::Max) {
      for (double& a : acc) a = std::max(a, 0.0);
    }
    encrypt_values(acc, out[w * replies + replies - 1]);
  }
  for (const auto& e : errors) {
    if (!e.empty()) throw OverflowError(e);
  }
  if (recording_) {
    for (std::size_t w = 0; w < count; ++w) {
      for (std::size_t k = 0; k < r.windows[w].size() && k < 8; ++k) {
        observed_.insert(observed_.end(), first.begin() + static_cast<std::ptrdiff_t>((w * 8 + k) * rs),
                         first.begin() + static_cast<std::ptrdiff_t>((w * 8 + k + 1) * rs));
      }
    }
  }
  return out;
}

PlainTensor LocalClient::decrypt(const std::vector<const ckks::Ciphertext*>& cts,
                                 const std::vector<double>& factors, const model::Shape& shape,
                                 std::int64_t batch, const std::string& layer, double bound) {
  // What the server sends is checked before it is used: one ciphertext per element, one
  // factor per ciphertext (or none), a batch the ciphertexts hold.
  if (static_cast<std::int64_t>(cts.size()) != model::numel(shape)) {
    throw std::invalid_argument("layer '" + layer + "': " + std::to_string(cts.size()) + " output ciphertexts for " +
                                std::to_string(model::numel(shape)) + " elements");
  }
  if (!factors.empty() && factors.size() != cts.size()) {
    throw std::invalid_argument("layer '" + layer + "': " + std::to_string(factors.size()) + " unmasking factors for " +
                                std::to_string(cts.size()) + " ciphertexts");
  }
  if (batch <= 0 || batch > capacity()) {
    throw std::invalid_argument("layer '" + layer + "': batch " + std::to_string(batch) + " outside [1, " +
                                std::to_string(capacity()) + "]");
  }
  PlainTensor y = make_plain_tensor(shape, batch);
  const auto elements = static_cast<std::int64_t>(cts.size());
  std::vector<std::string> errors(cts.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (std::int64_t e = 0; e < elements; ++e) {
    const auto* ct = cts[static_cast<std::size_t>(e)];
    if (!ct) continue;
    std::vector<double> v;
    decode(*ct, v);
    const double f = factors.empty() ? 1.0 : factors[static_cast<std::size_t>(e)];
    auto dst = y.element(e);
    for (std::int64_t b = 0; b < batch; ++b) {
      const double val = v[static_cast<std::size_t>(b)] * f;
      if (!std::isfinite(val) || std::fabs(val) > bound) {
        errors[static_cast<std::size_t>(e)] =
            "layer '" + layer + "': overflow: decrypted output |value| " + fmt(std::fabs(val)) +
            " exceeds the planned bound " + fmt(bound) + " (sample " + std::to_string(b) + ")";
        break;
      }
      dst[static_cast<std::size_t>(b)] = val;
    }
  }
  for (const auto& e : errors) {
    if (!e.empty()) throw OverflowError(e);
  }
  return y;
}

}  // namespace heinfer::runtime
