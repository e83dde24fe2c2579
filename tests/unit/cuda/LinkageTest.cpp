//===- LinkageTest.cpp - No binary depends on libcuda ---------------------===//
//
// halo binaries must start without an NVIDIA driver, so neither they nor
// libnvrtc may list libcuda in their ELF DT_NEEDED entries. The smoke tool
// must also report exactly what CudaDriver::load() reports: the clean
// no-driver error (exit 1) here, a passing smoke test on a GPU machine.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaDriver.h"

#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

#include <elf.h>
#include <link.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

using halo::cuda::CudaDriver;
using halo::cuda::testing::ScopedEnv;
using halo::cuda::testing::TempDir;

namespace {

template <typename T> T readAt(const std::string &file, size_t offset) {
  T value{};
  if (offset + sizeof(T) <= file.size())
    std::memcpy(&value, file.data() + offset, sizeof(T));
  return value;
}

/// DT_NEEDED entries of a 64-bit ELF file, read from its section headers.
std::vector<std::string> neededLibraries(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::string file((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_EQ(file.compare(0, SELFMAG, ELFMAG), 0) << path;
  auto header = readAt<Elf64_Ehdr>(file, 0);
  EXPECT_EQ(header.e_ident[EI_CLASS], ELFCLASS64) << path;
  std::vector<std::string> needed;
  for (size_t i = 0; i < header.e_shnum; ++i) {
    auto section =
        readAt<Elf64_Shdr>(file, header.e_shoff + i * header.e_shentsize);
    if (section.sh_type != SHT_DYNAMIC)
      continue;
    auto strings = readAt<Elf64_Shdr>(
        file, header.e_shoff + section.sh_link * header.e_shentsize);
    for (size_t at = 0; at + sizeof(Elf64_Dyn) <= section.sh_size;
         at += sizeof(Elf64_Dyn)) {
      auto entry = readAt<Elf64_Dyn>(file, section.sh_offset + at);
      if (entry.d_tag == DT_NULL)
        break;
      size_t name = strings.sh_offset + entry.d_un.d_val;
      if (entry.d_tag == DT_NEEDED && name < file.size())
        needed.emplace_back(file.c_str() + name);
    }
  }
  return needed;
}

std::string loadedLibrary(const char *prefix) {
  std::pair<const char *, std::string> search{prefix, ""};
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

TEST(Linkage, TestBinaryDoesNotNeedLibcuda) {
  expectNoLibcuda("/proc/self/exe");
}

TEST(Linkage, ToolDoesNotNeedLibcuda) { expectNoLibcuda(HALO_CUDA_INFO_PATH); }

TEST(Linkage, NvrtcDoesNotNeedLibcuda) {
  std::string nvrtc = loadedLibrary("/libnvrtc.so");
  ASSERT_FALSE(nvrtc.empty()) << "libnvrtc is not loaded";
  expectNoLibcuda(nvrtc);
}

TEST(Linkage, ToolReportsWhatLoadReports) {
  TempDir cacheDir;
  ScopedEnv cacheEnv("HALO_CACHE_DIR", cacheDir.path());
  std::FILE *pipe = popen(HALO_CUDA_INFO_PATH " 2>&1", "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t read = std::fread(buffer, 1, sizeof(buffer), pipe))
    output.append(buffer, read);
  int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << output;

  halo::StatusOr<const CudaDriver *> driver = CudaDriver::load();
  if (driver.ok()) {
    EXPECT_EQ(WEXITSTATUS(status), 0) << output;
    EXPECT_NE(output.find("smoke test passed"), std::string::npos) << output;
  } else {
    EXPECT_EQ(WEXITSTATUS(status), 1) << output;
    EXPECT_EQ(output,
              "halo-cuda-info: error: " + driver.status().message() + "\n");
  }
}

} // namespace
