//===- CudaDriver.h - The CUDA driver, loaded at run time -------*- C++ -*-===//
//
// halo never links libcuda: binaries must start (and run with --device cpu) on
// machines without an NVIDIA driver. CudaDriver dlopens libcuda.so.1, resolves
// every entry point listed in DriverSymbols.def through cuGetProcAddress_v2
// at a pinned ABI version, and calls cuInit. Call the driver through the
// members, and check results with HALO_CU_RETURN_IF_ERROR:
//
//   HALO_CU_RETURN_IF_ERROR(drv, cuMemAlloc(&ptr, bytes));
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_CUDADRIVER_H
#define HALO_RUNTIME_CUDA_CUDADRIVER_H

#include "halo/runtime/Status.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <memory>
#include <string>

namespace halo::cuda {

class CudaDriver {
public:
  /// Loads libcuda.so.1 and initializes it once per process; later calls
  /// return the same driver (or the same error). The driver is never unloaded.
  static StatusOr<const CudaDriver *> load();
  /// Loads and initializes the driver library at `path` (tests point this at
  /// the toolkit's stub). Owned by the caller; unloaded on destruction.
  static StatusOr<std::unique_ptr<CudaDriver>>
  loadLibrary(const std::string &path);

  CudaDriver(const CudaDriver &) = delete;
  CudaDriver &operator=(const CudaDriver &) = delete;
  ~CudaDriver();

  /// The library that was loaded, as given to dlopen.
  const std::string &libraryPath() const { return libraryPath_; }
  /// cuDriverGetVersion: 1000 * major + 10 * minor, e.g. 13000.
  int version() const { return version_; }

  /// "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory".
  std::string describe(CUresult result) const;
  /// The error for a failed call: the call text, describe(result),
  /// file:line and, for well-known causes, a hint. Success for CUDA_SUCCESS.
  Status check(CUresult result, const char *call, const char *file,
               int line) const;

#define HALO_CU_SYMBOL(Name, AbiVersion)                                       \
  PFN_##Name##_v##AbiVersion Name = nullptr;
#include "runtime/cuda/DriverSymbols.def"
#undef HALO_CU_SYMBOL

private:
  CudaDriver() = default;
  static StatusOr<std::unique_ptr<CudaDriver>> open(const std::string &path);

  void *handle_ = nullptr;
  std::string libraryPath_;
  int version_ = 0;
};

} // namespace halo::cuda

/// Calls driver.expr (e.g. `drv, cuMemFree(ptr)`) and returns the Status
/// naming the call, the CUDA error and the source line if it fails.
#define HALO_CU_RETURN_IF_ERROR(driver, expr)                                  \
  do {                                                                         \
    ::CUresult halo_cu_result_ = (driver).expr;                                \
    if (halo_cu_result_ != ::CUDA_SUCCESS)                                     \
      return (driver).check(halo_cu_result_, #expr, __FILE__, __LINE__);       \
  } while (0)

#endif // HALO_RUNTIME_CUDA_CUDADRIVER_H
