//===- TestUtil.h - Temporary directories, files, environment ---*- C++ -*-===//
//
// The kernel cache and the driver loader read the environment; tests set it
// for their own scope only and use a fresh cache directory each.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_TESTS_UNIT_CUDA_TESTUTIL_H
#define HALO_TESTS_UNIT_CUDA_TESTUTIL_H

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>

namespace halo::cuda::testing {

/// A fresh directory under the system temporary directory, removed on exit.
class TempDir {
public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "halo-cuda-test-XXXXXX")
            .string();
    if (!mkdtemp(pattern.data()))
      throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }

private:
  std::string path_;
};

/// A whole file's bytes ("" when it cannot be read).
inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Replaces a file's bytes (for corrupting cache entries).
inline void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

/// Sets (or, with nullopt, unsets) an environment variable until destroyed.
class ScopedEnv {
public:
  ScopedEnv(std::string name, const std::optional<std::string> &value)
      : name_(std::move(name)) {
    if (const char *old = std::getenv(name_.c_str()))
      old_ = old;
    if (value)
      setenv(name_.c_str(), value->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  std::string name_;
  std::optional<std::string> old_;
};

} // namespace halo::cuda::testing

#endif // HALO_TESTS_UNIT_CUDA_TESTUTIL_H
