//===- LinkageTest.cpp - The GEMM layer keeps binaries driver-free --------===//
//
// halo-blas-tests links libcublasLt (through halo_blas). Neither this binary
// nor the libcublasLt it loaded may list libcuda in DT_NEEDED, and the
// binary must reach main() here on machines without a driver (it does, or
// this test would not run). GemmEngine::create reports the missing driver as
// a Status instead of crashing.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/blas/GemmEngine.h"

#include <gtest/gtest.h>

#include <elf.h>
#include <link.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

/// Reads a T at `offset` of the file (zeros past its end). libcublasLt is
/// ~500 MiB, so only the ELF headers and the dynamic section are read.
template <typename T> T readAt(std::ifstream &in, uint64_t offset) {
  T value{};
  in.clear();
  in.seekg(std::streamoff(offset));
  in.read(reinterpret_cast<char *>(&value), sizeof(T));
  return value;
}

std::string readString(std::ifstream &in, uint64_t offset) {
  std::string text;
  in.clear();
  in.seekg(std::streamoff(offset));
  for (char c; in.get(c) && c != '\0' && text.size() < 4096;)
    text.push_back(c);
  return text;
}

/// DT_NEEDED entries of a 64-bit ELF file (from its section headers).
std::vector<std::string> neededLibraries(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  auto header = readAt<Elf64_Ehdr>(in, 0);
  EXPECT_EQ(std::memcmp(header.e_ident, ELFMAG, SELFMAG), 0) << path;
  EXPECT_EQ(header.e_ident[EI_CLASS], ELFCLASS64) << path;
  std::vector<std::string> needed;
  for (size_t i = 0; i < header.e_shnum; ++i) {
    auto section =
        readAt<Elf64_Shdr>(in, header.e_shoff + i * header.e_shentsize);
    if (section.sh_type != SHT_DYNAMIC)
      continue;
    auto strings = readAt<Elf64_Shdr>(
        in, header.e_shoff + section.sh_link * header.e_shentsize);
    for (uint64_t at = 0; at + sizeof(Elf64_Dyn) <= section.sh_size;
         at += sizeof(Elf64_Dyn)) {
      auto entry = readAt<Elf64_Dyn>(in, section.sh_offset + at);
      if (entry.d_tag == DT_NULL)
        break;
      if (entry.d_tag == DT_NEEDED)
        needed.push_back(readString(in, strings.sh_offset + entry.d_un.d_val));
    }
  }
  return needed;
}

std::string loadedLibrary(const char *part) {
  std::pair<const char *, std::string> search{part, ""};
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t, void *data) {
        auto *search =
            static_cast<std::pair<const char *, std::string> *>(data);
        std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.find(search->first) == std::string::npos)
          return 0;
        search->second = name;
        return 1;
      },
      &search);
  return search.second;
}

void expectNoLibcuda(const std::string &path) {
  std::vector<std::string> needed = neededLibraries(path);
  EXPECT_FALSE(needed.empty()) << path;
  for (const std::string &library : needed)
    EXPECT_EQ(library.find("libcuda.so"), std::string::npos)
        << path << " needs " << library;
}

TEST(BlasLinkage, TestBinaryNeedsCublasLtButNotLibcuda) {
  std::vector<std::string> needed = neededLibraries("/proc/self/exe");
  bool cublasLt = false;
  for (const std::string &library : needed)
    cublasLt |= library.find("libcublasLt.so") != std::string::npos;
  EXPECT_TRUE(cublasLt) << "halo_blas is expected to link libcublasLt";
  expectNoLibcuda("/proc/self/exe");
}

TEST(BlasLinkage, CublasLtDoesNotNeedLibcuda) {
  std::string library = loadedLibrary("/libcublasLt.so");
  ASSERT_FALSE(library.empty()) << "libcublasLt is not loaded";
  expectNoLibcuda(library);
}

TEST(BlasLinkage, NoDriverIsAStatusNotACrash) {
  halo::StatusOr<const halo::cuda::CudaDriver *> driver =
      halo::cuda::CudaDriver::load();
  if (driver.ok())
    GTEST_SKIP() << "a CUDA driver is present; the device tests cover it";
  EXPECT_NE(driver.status().message().find("CUDA driver"), std::string::npos)
      << driver.status().message();
}

} // namespace
