//===- IoTestUtil.h - Temp dirs and raw files for io tests ------*- C++ -*-===//
//
// Each test gets a fresh directory under temp_directory_path(), named after
// the test and the pid so parallel ctest runs never share one, and removed in
// TearDown. Error-path tests craft files byte by byte with writeBytes().
// runPython() runs the python3 on PATH; callers GTEST_SKIP when it fails.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_TESTS_UNIT_IO_IOTESTUTIL_H
#define HALO_TESTS_UNIT_IO_IOTESTUTIL_H

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

namespace halo::io::test {

class IoTest : public ::testing::Test {
protected:
  void SetUp() override {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           (std::string("halo-io-") + info->test_suite_name() + "-" +
            info->name() + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string &name) const {
    return (dir_ / name).string();
  }

  std::filesystem::path dir_;
};

inline void writeBytes(const std::string &path,
                       const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Runs `python3 <args>` with output discarded; true on exit status 0.
inline bool runPython(const std::string &args) {
  return std::system(("python3 " + args + " >/dev/null 2>&1").c_str()) == 0;
}

/// Quotes `s` for /bin/sh.
inline std::string shellQuote(const std::string &s) {
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

} // namespace halo::io::test

#endif // HALO_TESTS_UNIT_IO_IOTESTUTIL_H
