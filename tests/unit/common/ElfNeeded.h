//===- ElfNeeded.h - What a binary links, for linkage tests ------*- C++ -*-===//
//
// halo binaries must start without an NVIDIA driver, so tests read the ELF
// DT_NEEDED entries of binaries and libraries and look up what the running
// process has loaded.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_TESTS_UNIT_COMMON_ELFNEEDED_H
#define HALO_TESTS_UNIT_COMMON_ELFNEEDED_H

#include <gtest/gtest.h>

#include <elf.h>
#include <link.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace halo::testing {

/// Reads a T at `offset` of the file (zeros past its end). libcublasLt is
/// ~500 MiB, so only the ELF headers and the dynamic section are read.
template <typename T> inline T readAt(std::ifstream &in, uint64_t offset) {
  T value{};
  in.clear();
  in.seekg(std::streamoff(offset));
  in.read(reinterpret_cast<char *>(&value), sizeof(T));
  return value;
}

inline std::string readString(std::ifstream &in, uint64_t offset) {
  std::string text;
  in.clear();
  in.seekg(std::streamoff(offset));
  for (char c; in.get(c) && c != '\0' && text.size() < 4096;)
    text.push_back(c);
  return text;
}

/// DT_NEEDED entries of a 64-bit ELF file (from its section headers).
inline std::vector<std::string> neededLibraries(const std::string &path) {
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

/// The path of the loaded shared object whose name contains `part`, or "".
inline std::string loadedLibrary(const char *part) {
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

} // namespace halo::testing

#endif // HALO_TESTS_UNIT_COMMON_ELFNEEDED_H
