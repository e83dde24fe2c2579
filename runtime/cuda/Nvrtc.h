//===- Nvrtc.h - Compile CUDA C++ kernels with NVRTC, cached ----*- C++ -*-===//
//
// compileKernel turns generated CUDA C++ into a cubin (-arch=sm_XX) or PTX
// (-arch=compute_XX) with -std=c++17 -default-device, the CUDA headers on the
// include path (<cuda_fp8.h>, <cuda_bf16.h>) and fast math off unless asked.
// NVRTC needs no driver, so this works on GPU-less build machines.
//
// Results are cached on disk (KernelCache.h). The key is a SHA-256 over the
// source, in-memory headers, kernel name, output kind, NVRTC version and the
// full option list (arch, flags, include directory paths); a collision
// (~2^-128) would serve a wrong image. Headers found through include
// directories are keyed by path only, not contents: pass headers that change
// between runs in KernelSource::headers, and clear the cache after editing
// files in those directories.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_NVRTC_H
#define HALO_RUNTIME_CUDA_NVRTC_H

#include "halo/runtime/Status.h"

#include <string>
#include <utility>
#include <vector>

namespace halo::cuda {

enum class OutputKind { Cubin, Ptx };

/// "cubin" or "ptx".
const char *outputKindName(OutputKind kind);

struct KernelSource {
  /// The extern "C" __global__ function; also names the program in errors.
  std::string name;
  std::string source;
  /// (include name, contents) pairs the source may #include.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct CompileOptions {
  /// "sm_<major><minor>" with an optional "a" or "f" suffix: sm_90, sm_90a.
  std::string arch = "sm_90";
  /// Cubin runs only on `arch`; PTX is JIT-compiled by the driver for it or
  /// any newer GPU (and needs a driver at least as new as NVRTC).
  OutputKind output = OutputKind::Cubin;
  /// Passed to NVRTC verbatim, after halo's own options.
  std::vector<std::string> flags;
  /// Searched after the CUDA include directory.
  std::vector<std::string> includeDirs;
  bool fastMath = false;
  bool useCache = true;
};

struct CompiledKernel {
  std::string name;
  std::string arch;
  OutputKind kind = OutputKind::Cubin;
  /// Cubin bytes, or PTX text; either loads with CudaModule::load.
  std::string image;
  bool fromCache = false;
};

StatusOr<CompiledKernel> compileKernel(const KernelSource &kernel,
                                       const CompileOptions &options);

/// The linked NVRTC's version, e.g. "13.0".
std::string nvrtcVersionString();

/// The directory holding cuda_fp8.h: $CUDA_HOME/include, $CUDA_PATH/include,
/// the include directory next to the loaded libnvrtc, /usr/local/cuda/include,
/// then the toolkit halo was built with; the first that has it wins.
StatusOr<std::string> cudaIncludeDir();

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_NVRTC_H
