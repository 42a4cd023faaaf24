#include "protocol/wire.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace heinfer::protocol {

void add_ranges(EncryptRequest& r, std::span<const std::int64_t> elements) {
  for (std::size_t i = 0; i < elements.size();) {
    std::size_t j = i + 1;
    while (j < elements.size() && elements[j] == elements[j - 1] + 1) ++j;
    r.add_ranges(elements[i]);
    r.add_ranges(elements[j - 1] + 1);
    i = j;
  }
}

void fill_progress(LayerProgress& p, std::size_t node, const runtime::LayerStats& l) {
  p.set_node(static_cast<int>(node));
  p.set_name(l.name);
  p.set_op(l.op);
  p.set_seconds(l.seconds);
  p.set_ciphertexts(l.ciphertexts);
  p.set_level(l.level);
}

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace heinfer::protocol
