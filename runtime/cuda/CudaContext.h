//===- CudaContext.h - Contexts, modules, device memory ---------*- C++ -*-===//
//
// Small RAII owners over the driver API for halo-run and the tools:
// CudaContext retains a device's primary context (the one the CUDA runtime
// and cuBLASLt share), CudaModule owns a loaded cubin/PTX image and
// DeviceBuffer one cuMemAlloc allocation. All are move-only; they keep a
// pointer to the CudaDriver, which must outlive them.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_CUDACONTEXT_H
#define HALO_RUNTIME_CUDA_CUDACONTEXT_H

#include "runtime/cuda/CudaDriver.h"

#include <cstddef>
#include <string>

namespace halo::cuda {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int ccMajor = 0;
  int ccMinor = 0;
  int smCount = 0;
  size_t totalMemory = 0;
  /// Largest dynamic shared memory a block may opt into (cuFuncSetAttribute).
  int maxSharedMemoryPerBlockOptin = 0;

  /// The arch of this device, e.g. "sm_90".
  std::string arch() const;
  /// The arch generated kernels are compiled for: arch(), with the
  /// arch-specific features on sm_90 ("sm_90a": wgmma, which does not run on
  /// later GPUs, so the JIT asks for it only on the device that has it).
  std::string kernelArch() const;
};

StatusOr<int> deviceCount(const CudaDriver &driver);
StatusOr<DeviceInfo> queryDevice(const CudaDriver &driver, int ordinal);

struct MemoryInfo {
  size_t freeBytes = 0;
  size_t totalBytes = 0;
};

class CudaContext {
public:
  /// Retains the primary context of device `ordinal` and makes it current on
  /// the calling thread.
  static StatusOr<CudaContext> create(const CudaDriver &driver, int ordinal);

  CudaContext(CudaContext &&other) noexcept;
  CudaContext &operator=(CudaContext &&other) noexcept;
  ~CudaContext();

  /// Binds the context to the calling thread (contexts are per thread).
  Status makeCurrent() const;
  Status synchronize() const;
  /// Free and total device memory, as cuMemGetInfo reports them.
  StatusOr<MemoryInfo> memoryInfo() const;

  const CudaDriver &driver() const { return *driver_; }
  const DeviceInfo &info() const { return info_; }
  CUdevice device() const { return device_; }
  CUcontext handle() const { return context_; }

private:
  CudaContext(const CudaDriver &driver, DeviceInfo info, CUdevice device,
              CUcontext context);

  const CudaDriver *driver_;
  DeviceInfo info_;
  CUdevice device_;
  CUcontext context_;
};

class CudaModule {
public:
  /// Loads a cubin or NUL-terminated PTX image into the current context.
  static StatusOr<CudaModule> load(const CudaDriver &driver,
                                   const std::string &image);

  CudaModule(CudaModule &&other) noexcept;
  CudaModule &operator=(CudaModule &&other) noexcept;
  ~CudaModule();

  /// An extern "C" __global__ function of the module.
  StatusOr<CUfunction> function(const std::string &name) const;

private:
  CudaModule(const CudaDriver &driver, CUmodule module);

  const CudaDriver *driver_;
  CUmodule module_;
};

class DeviceBuffer {
public:
  /// cuMemAlloc in the current context.
  static StatusOr<DeviceBuffer> allocate(const CudaDriver &driver,
                                         size_t bytes);

  DeviceBuffer(DeviceBuffer &&other) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  ~DeviceBuffer();

  /// Synchronous copies of the first `bytes` bytes.
  Status copyFromHost(const void *source, size_t bytes);
  Status copyToHost(void *destination, size_t bytes) const;

  CUdeviceptr pointer() const { return pointer_; }
  size_t size() const { return size_; }

private:
  DeviceBuffer(const CudaDriver &driver, CUdeviceptr pointer, size_t size);
  Status checkSize(const char *what, size_t bytes) const;

  const CudaDriver *driver_;
  CUdeviceptr pointer_;
  size_t size_;
};

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_CUDACONTEXT_H
