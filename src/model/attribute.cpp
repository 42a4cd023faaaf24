#include "model/attribute.h"

#include "model/error.h"

namespace heinfer::model {
namespace {

const Attribute* find_typed(const AttributeMap& attrs, std::string_view name, Attribute::Kind kind,
                            const char* expected, const std::string& context) {
  auto it = attrs.find(name);
  if (it == attrs.end()) return nullptr;
  if (it->second.kind != kind) {
    throw ModelError(context + ": attribute '" + std::string(name) + "' has type " +
                     it->second.onnx_type + ", expected " + expected);
  }
  return &it->second;
}

}  // namespace

std::int64_t get_int(const AttributeMap& attrs, std::string_view name, std::int64_t fallback,
                     const std::string& context) {
  const Attribute* a = find_typed(attrs, name, Attribute::Kind::Int, "INT", context);
  return a ? a->i : fallback;
}

double get_float(const AttributeMap& attrs, std::string_view name, double fallback,
                 const std::string& context) {
  const Attribute* a = find_typed(attrs, name, Attribute::Kind::Float, "FLOAT", context);
  return a ? a->f : fallback;
}

std::string get_string(const AttributeMap& attrs, std::string_view name,
                       const std::string& fallback, const std::string& context) {
  const Attribute* a = find_typed(attrs, name, Attribute::Kind::String, "STRING", context);
  return a ? a->s : fallback;
}

std::optional<std::vector<std::int64_t>> get_ints(const AttributeMap& attrs, std::string_view name,
                                                  const std::string& context) {
  const Attribute* a = find_typed(attrs, name, Attribute::Kind::Ints, "INTS", context);
  if (!a) return std::nullopt;
  return a->ints;
}

std::optional<std::vector<double>> get_floats(const AttributeMap& attrs, std::string_view name,
                                              const std::string& context) {
  const Attribute* a = find_typed(attrs, name, Attribute::Kind::Floats, "FLOATS", context);
  if (!a) return std::nullopt;
  return a->floats;
}

void check_known_attributes(const AttributeMap& attrs, std::initializer_list<std::string_view> known,
                            const std::string& context) {
  for (const auto& [name, value] : attrs) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || k == name;
    if (ok) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    throw ModelError(context + ": unsupported attribute '" + name + "'; supported attributes: " +
                     (list.empty() ? "none" : list));
  }
}

}  // namespace heinfer::model
