// Byte-count options of the command-line tool, parsed by CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace heinfer::apps {

/// Adds option `name` to `sub`, storing a byte count in `bytes`: an integer with an
/// optional unit in powers of 1024 (CLI::AsSizeValue(false): "4096", "64K", "16G",
/// "512MiB", "1 GB"), from 1 B to 4 EiB. CLI11 refuses anything else (a fraction, an
/// unknown unit, zero, a negative or too large count) with an error naming the option.
inline CLI::Option* add_size_option(CLI::App* sub, const std::string& name, std::int64_t& bytes,
                                    const std::string& description) {
  // The upper bound is below INT64_MAX: CLI11 2.1 clamps out-of-range integers to it.
  return sub->add_option(name, bytes, description)
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 62));
}

}  // namespace heinfer::apps
