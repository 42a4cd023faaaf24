// .npy reading and writing: round trips and every class of malformed file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "runtime/npy.h"

namespace heinfer {
namespace {

using runtime::NpyArray;
using runtime::NpyDType;
using runtime::NpyError;

std::vector<unsigned char> bytes_of(const std::string& header, std::size_t data_len,
                                    unsigned char major = 1) {
  std::vector<unsigned char> b = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
  const std::size_t len = header.size();
  b.push_back(static_cast<unsigned char>(len & 0xff));
  b.push_back(static_cast<unsigned char>(len >> 8));
  if (major >= 2) {
    b.push_back(0);
    b.push_back(0);
  }
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data_len, 0);
  return b;
}

void expect_npy_error(const std::vector<unsigned char>& b, const std::string& fragment) {
  try {
    runtime::parse_npy(b, "t.npy");
    ADD_FAILURE() << "accepted; expected error containing '" << fragment << "'";
  } catch (const NpyError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.npy"), std::string::npos) << e.what();
  }
}

TEST(Npy, RoundTripsEveryDtype) {
  const std::vector<double> values{0, 1, 2, 3, 4, 250};
  for (NpyDType t : {NpyDType::Float32, NpyDType::Float64, NpyDType::Int64, NpyDType::Int32, NpyDType::UInt8}) {
    const NpyArray a = runtime::make_npy(t, {2, 3}, values);
    const auto bytes = runtime::serialize_npy(a);
    EXPECT_EQ((bytes.size() - a.bytes.size()) % 64, 0u) << "header must be 64-byte aligned";
    const NpyArray b = runtime::parse_npy(bytes);
    EXPECT_EQ(b.dtype, t);
    EXPECT_EQ(b.shape, (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(b.to_double(), values);
    EXPECT_EQ(b.to_int64(), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 250}));
  }
}

TEST(Npy, RoundTripsScalarsEmptyAndOneDimensional) {
  for (const std::vector<std::int64_t>& shape :
       {std::vector<std::int64_t>{}, std::vector<std::int64_t>{0, 5}, std::vector<std::int64_t>{1}}) {
    const std::vector<double> v(static_cast<std::size_t>(shape.empty() ? 1 : shape[0] * (shape.size() > 1 ? shape[1] : 1)), 1.5);
    const NpyArray b = runtime::parse_npy(runtime::serialize_npy(runtime::make_npy(NpyDType::Float64, shape, v)));
    EXPECT_EQ(b.shape, shape);
    EXPECT_EQ(b.to_double(), v);
  }
}

TEST(Npy, ParsesNumpyStyleHeadersAndVersion2) {
  // As numpy writes them: trailing comma in the dict, 1-tuple with a comma, padding.
  auto b = bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }        \n", 12);
  std::memcpy(b.data() + b.size() - 12, "\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40", 12);
  EXPECT_EQ(runtime::parse_npy(b).to_double(), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(runtime::parse_npy(bytes_of("{\"descr\":\"|u1\",\"shape\":(2,2),\"fortran_order\":False}\n", 4, 2)).size(), 4);
}

TEST(Npy, RejectsBadMagic) {
  auto b = bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 4);
  b[1] = 'X';
  expect_npy_error(b, "bad magic");
  expect_npy_error({0x93, 'N'}, "bad magic");
}

TEST(Npy, RejectsUnsupportedVersion) {
  expect_npy_error(bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 4, 4), "version 4.0");
}

TEST(Npy, RejectsTruncatedHeader) {
  auto b = bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 0);
  b.resize(b.size() - 10);
  expect_npy_error(b, "truncated .npy header");
}

TEST(Npy, RejectsMalformedHeaders) {
  expect_npy_error(bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4), "newline");
  expect_npy_error(bytes_of("{'descr': '<f4', 'shape': (1,), }\n", 4), "missing");
  expect_npy_error(bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", 4), "unexpected or duplicate key 'x'");
  expect_npy_error(bytes_of("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}\n", 4), "True or False");
  expect_npy_error(bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}\n", 4), "non-negative dimension");
  expect_npy_error(bytes_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk\n", 4), "trailing characters");
}

TEST(Npy, RejectsUnsupportedDtypes) {
  expect_npy_error(bytes_of("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n", 4), "unsupported dtype '>f4'");
  expect_npy_error(bytes_of("{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }\n", 2), "unsupported dtype '<f2'");
  expect_npy_error(bytes_of("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n", 8), "unsupported dtype");
}

TEST(Npy, RejectsFortranOrder) {
  expect_npy_error(bytes_of("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", 16), "fortran_order=True");
}

TEST(Npy, RejectsWrongDataLength) {
  const std::string h = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n";
  expect_npy_error(bytes_of(h, 47), "truncated file");
  expect_npy_error(bytes_of(h, 49), "trailing bytes");
  expect_npy_error(bytes_of("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000, 100000000, 100000000), }\n", 8), "too large");
}

TEST(Npy, ToInt64RejectsNonIntegralFloats) {
  const NpyArray a = runtime::make_npy(NpyDType::Float32, {1}, std::vector<double>{1.5});
  EXPECT_THROW(a.to_int64(), NpyError);
  // Outside int64, NaN and Inf are refused before any conversion (which would be
  // undefined; found by fuzz_parse_npy under UBSan); the int64 limits themselves pass.
  for (double bad : {0x1p63, -0x1p64, 3.5e64, std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(runtime::make_npy(NpyDType::Float64, {1}, std::vector<double>{bad}).to_int64(), NpyError) << bad;
  }
  EXPECT_EQ(runtime::make_npy(NpyDType::Float64, {1}, std::vector<double>{-0x1p63}).to_int64(),
            (std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min()}));
}

TEST(Npy, WritesAtomicallyAndReplacesExistingFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "heinfer_npy_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto path = dir / "a.npy";
  runtime::write_npy(path, runtime::make_npy(NpyDType::Float32, {2}, std::vector<double>{1, 2}));
  runtime::write_npy(path, runtime::make_npy(NpyDType::Int64, {3}, std::vector<double>{4, 5, 6}));
  const NpyArray r = runtime::read_npy(path);
  EXPECT_EQ(r.dtype, NpyDType::Int64);
  EXPECT_EQ(r.to_int64(), (std::vector<std::int64_t>{4, 5, 6}));
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u) << "no temporary file may remain";
  EXPECT_THROW(runtime::write_npy(dir / "missing" / "b.npy",
                                  runtime::make_npy(NpyDType::Float32, {1}, std::vector<double>{1})),
               NpyError);
  EXPECT_THROW(runtime::read_npy(dir / "nope.npy"), NpyError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace heinfer
