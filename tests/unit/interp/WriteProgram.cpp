//===- WriteProgram.cpp - Wrap a manifest JSON file into a .halo file -----===//
//
// halo-interp-write-program <manifest.json> <out.halo>: the CLI tests ship
// their programs as readable JSON and build the binary file with the same
// writeProgram the compiler uses. The manifest is validated on the way.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Program.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <manifest.json> <out.halo>\n", argv[0]);
    return 1;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 1;
  }
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  halo::StatusOr<halo::cpu::Program> program =
      halo::cpu::parseProgramManifest(text, argv[1]);
  halo::Status status =
      program.ok() ? halo::cpu::writeProgram(argv[2], text) : program.status();
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
