//===- halo-cuda-info.cpp - GPU smoke test: driver, devices, NVRTC --------===//
//
// Prints the CUDA driver and its devices, NVRTC and the kernel cache, then on
// every device compiles (through the cache) and launches a kernel that writes
// a known pattern, and checks the pattern on the host. Exits 1 with the error
// on the first failure; without a driver that is the "no CUDA driver found"
// error, which is the expected outcome on GPU-less machines.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/KernelCache.h"
#include "runtime/cuda/Nvrtc.h"

#include <fmt/format.h>

#include <chrono>
#include <vector>

using namespace halo;
using namespace halo::cuda;

namespace {

constexpr const char *kPatternKernel = R"(
extern "C" __global__ void halo_pattern(unsigned *out, unsigned n,
                                        unsigned seed) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    out[i] = i * 2654435761u ^ seed;
}
)";

double gib(size_t bytes) { return double(bytes) / (1ull << 30); }

Status smokeTest(const CudaDriver &driver, int ordinal) {
  StatusOr<CudaContext> context = CudaContext::create(driver, ordinal);
  if (!context.ok())
    return context.status();

  KernelSource kernel;
  kernel.name = "halo_pattern";
  kernel.source = kPatternKernel;
  CompileOptions options;
  options.arch = context->info().arch();
  auto start = std::chrono::steady_clock::now();
  StatusOr<CompiledKernel> compiled = compileKernel(kernel, options);
  if (!compiled.ok())
    return compiled.status();
  double compileMs = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start)
                         .count();

  StatusOr<CudaModule> module = CudaModule::load(driver, compiled->image);
  if (!module.ok())
    return module.status();
  StatusOr<CUfunction> function = module->function(kernel.name);
  if (!function.ok())
    return function.status();

  unsigned n = 1u << 20, seed = 0x5eed1234u + unsigned(ordinal);
  StatusOr<DeviceBuffer> buffer =
      DeviceBuffer::allocate(driver, n * sizeof(unsigned));
  if (!buffer.ok())
    return buffer.status();
  // Poison first, so that elements the kernel skipped cannot pass.
  HALO_CU_RETURN_IF_ERROR(driver,
                          cuMemsetD8(buffer->pointer(), 0xff, buffer->size()));
  CUdeviceptr pointer = buffer->pointer();
  void *params[] = {&pointer, &n, &seed};
  unsigned block = 256;
  HALO_CU_RETURN_IF_ERROR(
      driver, cuLaunchKernel(*function, (n + block - 1) / block, 1, 1, block, 1,
                             1, 0, nullptr, params, nullptr));
  HALO_RETURN_IF_ERROR(context->synchronize());

  std::vector<unsigned> host(n);
  HALO_RETURN_IF_ERROR(buffer->copyToHost(host.data(), buffer->size()));
  for (unsigned i = 0; i < n; ++i) {
    unsigned expected = i * 2654435761u ^ seed;
    if (host[i] != expected)
      return Status::error(fmt::format(
          "device {}: pattern mismatch at element {}: got {:#010x}, "
          "expected {:#010x}",
          ordinal, i, host[i], expected));
  }
  fmt::print("  [{}] smoke test passed: {} ({}, {} bytes, {:.1f} ms, {}), "
             "{} elements checked\n",
             ordinal, kernel.name, options.arch, compiled->image.size(),
             compileMs, compiled->fromCache ? "cache hit" : "compiled", n);
  return Status::success();
}

Status run() {
  StatusOr<const CudaDriver *> loaded = CudaDriver::load();
  if (!loaded.ok())
    return loaded.status();
  const CudaDriver &driver = **loaded;
  StatusOr<int> count = deviceCount(driver);
  if (!count.ok())
    return count.status();
  fmt::print("CUDA driver {}.{} ({}), {} device(s)\n", driver.version() / 1000,
             driver.version() % 1000 / 10, driver.libraryPath(), *count);
  if (*count == 0)
    return Status::error("the CUDA driver sees no devices; hint: check "
                         "nvidia-smi and CUDA_VISIBLE_DEVICES");
  for (int ordinal = 0; ordinal < *count; ++ordinal) {
    StatusOr<DeviceInfo> info = queryDevice(driver, ordinal);
    if (!info.ok())
      return info.status();
    fmt::print("  [{}] {}: {}, {} SMs, {:.1f} GiB, {} KiB shared/block\n",
               ordinal, info->name, info->arch(), info->smCount,
               gib(info->totalMemory),
               info->maxSharedMemoryPerBlockOptin / 1024);
  }

  StatusOr<std::string> include = cudaIncludeDir();
  if (!include.ok())
    return include.status();
  StatusOr<std::string> cacheDir = defaultKernelCacheDir();
  fmt::print("NVRTC {} (headers {}), kernel cache {}\n", nvrtcVersionString(),
             *include,
             cacheDir.ok() ? *cacheDir
                           : "disabled (" + cacheDir.status().message() + ")");
  for (int ordinal = 0; ordinal < *count; ++ordinal)
    HALO_RETURN_IF_ERROR(smokeTest(driver, ordinal));
  return Status::success();
}

} // namespace

int main() {
  Status status = run();
  if (!status.ok()) {
    fmt::print(stderr, "halo-cuda-info: error: {}\n", status.message());
    return 1;
  }
  return 0;
}
