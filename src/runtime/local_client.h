// In-process Client implementation: holds the secret key, encoder, encryptor and
// decryptor (runtime/client.h describes the protocol and what the client learns).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "ckks/context.h"
#include "ckks/decryptor.h"
#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "ckks/keygen.h"
#include "runtime/client.h"
#include "runtime/encrypted_tensor.h"

namespace heinfer::runtime {

/// The public evaluation keys the client hands to the server.
struct EvaluationKeys {
  ckks::RelinKeys relin;
  ckks::GaloisKeys galois;  ///< conjugation (complex packing squares)
  /// The public key: the server's re-randomization before a blind refresh
  /// (ckks::mask_for_refresh).
  ckks::PublicKey public_key;
};

class LocalClient : public Client {
 public:
  /// Generates a fresh secret key (libsodium CSPRNG). `scale` = Δ of fresh ciphertexts.
  LocalClient(ckks::ContextPtr context, ckks::Packing packing, double scale);
  /// The same with a given secret key (a resumed run: runtime/checkpoint.h). Throws
  /// std::invalid_argument when it does not match the context.
  LocalClient(ckks::ContextPtr context, ckks::Packing packing, double scale, const ckks::SecretKey& secret);

  /// Relinearization key and (complex packing) the conjugation key; generated on first
  /// call; both empty for parameters without a special prime (no key switching). Never
  /// contains the secret key.
  const EvaluationKeys& evaluation_keys();

  std::int64_t capacity() const override;
  /// The inputs encrypt() reads (one per model input, one batch; nullptr: none). They
  /// must outlive the run. encrypt() returns the memory of the elements it has encrypted
  /// to the kernel (memory::release_pages: a streamed run encrypts the input band by
  /// band, and at 224x224 a batch of ResNet-50 inputs is 4.9 GB), so each element is
  /// encrypted at most once per set_inputs(); input_encrypted() frees the rest.
  void set_inputs(std::vector<PlainTensor>* inputs);
  void input_encrypted(std::size_t input) override;
  std::int64_t batch() const override;
  /// Client::encrypt; also throws std::logic_error for an element encrypted before
  /// (its values are released).
  std::vector<ckks::Ciphertext> encrypt(const EncryptRequest& request) override;
  bool encrypts_parts() const override { return true; }
  /// Encrypts all of x (x.batch <= capacity()), one ciphertext per element in order;
  /// unused slots repeat the batch. Throws InputError as encrypt() does.
  std::vector<ckks::Ciphertext> encrypt_tensor(const PlainTensor& x, const std::string& name, double bound) const;
  std::vector<ckks::Ciphertext> round(const RoundRequest& request) override;
  PlainTensor decrypt(const std::vector<const ckks::Ciphertext*>& cts,
                      const std::vector<double>& factors, const model::Shape& shape,
                      std::int64_t batch, const std::string& layer, double bound) override;

  /// The secret key (for saving it on the client, e.g. `heinfer client --key-dir`).
  const ckks::SecretKey& secret_key() const { return keygen_.secret_key(); }

  /// Testing aid (a curious client): when enabled, every round appends the decoded values
  /// of slots [0, slots) of each received ciphertext (the first 8 of a window), in the
  /// order received, to observed().
  void set_recording(bool on, std::size_t slots = 1) {
    recording_ = on;
    record_slots_ = slots;
  }
  const std::vector<double>& observed() const { return observed_; }

 private:
  void decode(const ckks::Ciphertext& ct, std::vector<double>& out) const;
  /// A BlindRefresh window's reply (RoundFunction::BlindRefresh); "" or an error.
  std::string refresh(const RoundRequest& r, const ckks::Ciphertext& masked, ckks::Ciphertext& out,
                      double* recorded) const;
  void encrypt_values(std::span<const double> values, ckks::Ciphertext& out) const;

  ckks::ContextPtr context_;
  ckks::Packing packing_;
  double scale_;
  ckks::KeyGenerator keygen_;
  ckks::CKKSEncoder encoder_;
  ckks::Encryptor encryptor_;
  ckks::Decryptor decryptor_;
  std::unique_ptr<EvaluationKeys> keys_;
  std::vector<PlainTensor>* inputs_ = nullptr;
  std::vector<std::vector<bool>> encrypted_;  ///< per input and element: values released
  bool recording_ = false;
  std::size_t record_slots_ = 1;
  std::vector<double> observed_;
};

}  // namespace heinfer::runtime
