#include "runtime/blind_refresh_round.h"

#include <stdexcept>

#include "ckks/blind_refresh.h"

namespace heinfer::runtime {

std::vector<ckks::Ciphertext> blind_refresh_round(Client& client, std::span<const ckks::Ciphertext* const> cts,
                                                  int log2_range, const ckks::Encryptor& public_key_encryptor,
                                                  const ckks::CKKSContext& context, std::int64_t node,
                                                  const std::string& layer) {
  std::vector<ckks::Ciphertext> masked(cts.size());
  std::vector<ckks::RefreshMask> masks(cts.size());
  std::vector<std::string> errors(cts.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (std::size_t i = 0; i < cts.size(); ++i) {
    try {
      masked[i] = *cts[i];
      masks[i] = ckks::mask_for_refresh(masked[i], public_key_encryptor, log2_range, context);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const std::string& e : errors) {
    if (!e.empty()) throw std::invalid_argument("layer '" + layer + "': " + e);
  }
  RoundRequest request;
  request.node = node;
  request.layer = layer;
  request.function = RoundFunction::BlindRefresh;
  request.bound = ckks::refresh_coefficient_limit(log2_range);
  for (const ckks::Ciphertext& c : masked) request.windows.push_back({&c});
  std::vector<ckks::Ciphertext> fresh = client.round(request);
  if (fresh.size() != cts.size()) {
    throw std::runtime_error("layer '" + layer + "': " + std::to_string(fresh.size()) + " refresh replies for " +
                             std::to_string(cts.size()) + " ciphertexts");
  }
#pragma omp parallel for schedule(dynamic, 4)
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    try {
      if (fresh[i].is_compact()) fresh[i].expand(context);
      ckks::unmask_refreshed(fresh[i], masks[i], context);
      fresh[i].set_scale(cts[i]->scale());  // the server's record, not the reply's word
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const std::string& e : errors) {
    if (!e.empty()) throw std::runtime_error("layer '" + layer + "': a refresh reply: " + e);
  }
  return fresh;
}

}  // namespace heinfer::runtime
