#include "model/legacy_broadcast.h"

#include "model/error.h"

namespace heinfer::model {

std::size_t legacy_broadcast_padding(std::size_t a_rank, std::size_t b_rank,
                                     const AttributeMap& attrs, const std::string& context) {
  const bool broadcast = get_int(attrs, "broadcast", 0, context) != 0;
  if (!broadcast) {
    if (attrs.count("axis")) throw ModelError(context + ": attribute 'axis' needs broadcast=1");
    return 0;  // equal shapes required; checked by the (more permissive) numpy rule
  }
  const auto rank = static_cast<std::int64_t>(a_rank);
  const auto rank_b = static_cast<std::int64_t>(b_rank);
  std::int64_t axis = get_int(attrs, "axis", rank - rank_b, context);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis + rank_b > rank) {
    throw ModelError(context + ": legacy broadcast axis " + std::to_string(axis) +
                     " does not fit B of rank " + std::to_string(rank_b) + " into A of rank " +
                     std::to_string(rank));
  }
  return static_cast<std::size_t>(rank - axis - rank_b);
}

}  // namespace heinfer::model
