//===- Nvrtc.cpp - Compile CUDA C++ kernels with NVRTC, cached ------------===//
//
// One NVRTC program per compileKernel call; the option list is built once and
// both drives the compilation and feeds the cache key, so any option that can
// change the image also changes the key.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/Nvrtc.h"

#include "runtime/cuda/KernelCache.h"
#include "runtime/cuda/Sha256.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nvrtc.h>

#include <link.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#define HALO_NVRTC_RETURN_IF_ERROR(expr)                                       \
  do {                                                                         \
    nvrtcResult halo_nvrtc_result_ = (expr);                                   \
    if (halo_nvrtc_result_ != NVRTC_SUCCESS)                                   \
      return ::halo::Status::error(fmt::format(                                \
          "{} failed: {} [{}:{}]", #expr,                                      \
          nvrtcGetErrorString(halo_nvrtc_result_), __FILE__, __LINE__));       \
  } while (0)

namespace halo::cuda {
namespace {

struct ProgramDeleter {
  void operator()(nvrtcProgram program) const { nvrtcDestroyProgram(&program); }
};
using Program = std::unique_ptr<_nvrtcProgram, ProgramDeleter>;

/// "sm_90a" -> "90a"; empty when `arch` is not sm_<digits>[a|f].
std::string archSuffix(const std::string &arch) {
  if (arch.rfind("sm_", 0) != 0)
    return {};
  std::string suffix = arch.substr(3);
  size_t digits = 0;
  while (digits < suffix.size() && std::isdigit(uint8_t(suffix[digits])))
    ++digits;
  bool validTail = digits == suffix.size() ||
                   (digits + 1 == suffix.size() &&
                    (suffix[digits] == 'a' || suffix[digits] == 'f'));
  return digits >= 2 && validTail ? suffix : std::string();
}

// The directory libnvrtc was loaded from: its headers match it exactly.
std::string loadedNvrtcDir() {
  std::string dir;
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t, void *out) {
        std::filesystem::path path(info->dlpi_name ? info->dlpi_name : "");
        if (path.filename().string().rfind("libnvrtc.so", 0) != 0)
          return 0;
        std::error_code error;
        auto real = std::filesystem::canonical(path, error);
        if (!error)
          *static_cast<std::string *>(out) = real.parent_path().string();
        return 1;
      },
      &dir);
  return dir;
}

StatusOr<std::string> compileProgram(const KernelSource &kernel,
                                     const CompileOptions &options,
                                     const std::vector<std::string> &args) {
  std::vector<const char *> headerSources, headerNames;
  for (const auto &[name, contents] : kernel.headers) {
    headerNames.push_back(name.c_str());
    headerSources.push_back(contents.c_str());
  }
  nvrtcProgram raw = nullptr;
  std::string programName = kernel.name + ".cu";
  HALO_NVRTC_RETURN_IF_ERROR(nvrtcCreateProgram(
      &raw, kernel.source.c_str(), programName.c_str(),
      int(headerSources.size()), headerSources.data(), headerNames.data()));
  Program program(raw);

  std::vector<const char *> argv;
  for (const std::string &arg : args)
    argv.push_back(arg.c_str());
  nvrtcResult result =
      nvrtcCompileProgram(program.get(), int(argv.size()), argv.data());
  if (result != NVRTC_SUCCESS) {
    size_t logSize = 0;
    std::string log;
    if (nvrtcGetProgramLogSize(program.get(), &logSize) == NVRTC_SUCCESS &&
        logSize > 1) {
      log.resize(logSize);
      if (nvrtcGetProgramLog(program.get(), log.data()) == NVRTC_SUCCESS)
        log.resize(logSize - 1);
      else
        log.clear();
    }
    return Status::error(fmt::format(
        "NVRTC failed to compile kernel '{}' for {} ({}): {}\noptions: {}\n{}",
        kernel.name, options.arch, outputKindName(options.output),
        nvrtcGetErrorString(result), fmt::join(args, " "),
        log.empty() ? "(empty NVRTC log)" : log));
  }

  std::string image;
  size_t size = 0;
  if (options.output == OutputKind::Cubin) {
    HALO_NVRTC_RETURN_IF_ERROR(nvrtcGetCUBINSize(program.get(), &size));
    image.resize(size);
    HALO_NVRTC_RETURN_IF_ERROR(nvrtcGetCUBIN(program.get(), image.data()));
  } else {
    HALO_NVRTC_RETURN_IF_ERROR(nvrtcGetPTXSize(program.get(), &size));
    image.resize(size);
    HALO_NVRTC_RETURN_IF_ERROR(nvrtcGetPTX(program.get(), image.data()));
    // The size counts the terminating NUL; std::string keeps its own.
    if (!image.empty() && image.back() == '\0')
      image.pop_back();
  }
  if (image.empty())
    return Status::error(
        fmt::format("NVRTC produced an empty {} for kernel '{}' ({})",
                    outputKindName(options.output), kernel.name, options.arch));
  return image;
}

} // namespace

const char *outputKindName(OutputKind kind) {
  return kind == OutputKind::Cubin ? "cubin" : "ptx";
}

std::string nvrtcVersionString() {
  int major = 0, minor = 0;
  if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS)
    return "unknown";
  return fmt::format("{}.{}", major, minor);
}

StatusOr<std::string> cudaIncludeDir() {
  std::vector<std::string> candidates;
  for (const char *variable : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *root = std::getenv(variable); root && *root)
      candidates.push_back(std::string(root) + "/include");
  if (std::string nvrtcDir = loadedNvrtcDir(); !nvrtcDir.empty())
    candidates.push_back(nvrtcDir + "/../include");
  candidates.push_back("/usr/local/cuda/include");
  candidates.push_back(HALO_CUDA_INCLUDE_DIR);

  for (const std::string &dir : candidates) {
    std::error_code error;
    if (std::filesystem::is_regular_file(dir + "/cuda_fp8.h", error))
      return std::filesystem::weakly_canonical(dir, error).string();
  }
  return Status::error(fmt::format(
      "cannot find the CUDA headers (cuda_fp8.h) for NVRTC; looked in {}; "
      "hint: set CUDA_HOME to the CUDA {} toolkit",
      fmt::join(candidates, ", "), nvrtcVersionString()));
}

StatusOr<CompiledKernel> compileKernel(const KernelSource &kernel,
                                       const CompileOptions &options) {
  if (kernel.name.empty())
    return Status::error("compileKernel: the kernel has no name");
  std::string suffix = archSuffix(options.arch);
  if (suffix.empty())
    return Status::error(fmt::format(
        "kernel '{}': invalid arch '{}'; expected sm_<major><minor> with an "
        "optional a/f suffix, e.g. sm_90 or sm_90a",
        kernel.name, options.arch));
  StatusOr<std::string> cudaInclude = cudaIncludeDir();
  if (!cudaInclude.ok())
    return cudaInclude.status();

  std::vector<std::string> args = {
      fmt::format("-arch={}_{}",
                  options.output == OutputKind::Cubin ? "sm" : "compute",
                  suffix),
      "-std=c++17", "-default-device"};
  if (options.fastMath)
    args.push_back("--use_fast_math");
  args.push_back("-I" + *cudaInclude);
  for (const std::string &dir : options.includeDirs)
    args.push_back("-I" + dir);
  args.insert(args.end(), options.flags.begin(), options.flags.end());

  CompiledKernel compiled;
  compiled.name = kernel.name;
  compiled.arch = options.arch;
  compiled.kind = options.output;

  // No usable cache directory only costs a recompilation.
  std::optional<KernelCache> cache;
  if (options.useCache)
    if (StatusOr<std::string> dir = defaultKernelCacheDir(); dir.ok())
      cache.emplace(*dir);
  Sha256Digest key{};
  if (cache) {
    Sha256 hasher;
    hasher.updateField("halo-nvrtc-cache-v1");
    hasher.updateField(nvrtcVersionString());
    hasher.updateField(outputKindName(options.output));
    hasher.updateField(kernel.name);
    hasher.updateField(kernel.source);
    hasher.updateField(std::to_string(kernel.headers.size()));
    for (const auto &[name, contents] : kernel.headers) {
      hasher.updateField(name);
      hasher.updateField(contents);
    }
    hasher.updateField(std::to_string(args.size()));
    for (const std::string &arg : args)
      hasher.updateField(arg);
    key = hasher.digest();
    if (std::optional<std::string> image = cache->lookup(key)) {
      compiled.image = std::move(*image);
      compiled.fromCache = true;
      return compiled;
    }
  }

  StatusOr<std::string> image = compileProgram(kernel, options, args);
  if (!image.ok())
    return image.status();
  compiled.image = std::move(*image);
  // A failed write (read-only or full disk) is counted in the cache stats;
  // the compiled kernel is still good.
  if (cache)
    (void)cache->store(key, compiled.image);
  return compiled;
}

} // namespace halo::cuda
