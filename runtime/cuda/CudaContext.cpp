//===- CudaContext.cpp - Devices, contexts, modules, device memory --------===//
//
// Destructors cannot report errors; they release what they own and ignore
// the result (after a kernel fault every call fails, and the first failure
// has already been reported).
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaContext.h"

#include <fmt/format.h>

#include <utility>

namespace halo::cuda {

std::string DeviceInfo::arch() const {
  return fmt::format("sm_{}{}", ccMajor, ccMinor);
}

std::string DeviceInfo::kernelArch() const {
  return ccMajor == 9 && ccMinor == 0 ? arch() + "a" : arch();
}

StatusOr<int> deviceCount(const CudaDriver &driver) {
  int count = 0;
  HALO_CU_RETURN_IF_ERROR(driver, cuDeviceGetCount(&count));
  return count;
}

StatusOr<DeviceInfo> queryDevice(const CudaDriver &driver, int ordinal) {
  StatusOr<int> count = deviceCount(driver);
  if (!count.ok())
    return count.status();
  if (ordinal < 0 || ordinal >= *count)
    return Status::error(fmt::format(
        "CUDA device {} does not exist: the driver sees {} device(s); hint: "
        "check CUDA_VISIBLE_DEVICES",
        ordinal, *count));

  CUdevice device;
  HALO_CU_RETURN_IF_ERROR(driver, cuDeviceGet(&device, ordinal));
  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  HALO_CU_RETURN_IF_ERROR(driver,
                          cuDeviceGetName(name, sizeof(name) - 1, device));
  info.name = name;
  for (auto [attribute, field] :
       {std::pair{CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &info.ccMajor},
        std::pair{CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &info.ccMinor},
        std::pair{CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &info.smCount},
        std::pair{CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                  &info.maxSharedMemoryPerBlockOptin}})
    HALO_CU_RETURN_IF_ERROR(driver,
                            cuDeviceGetAttribute(field, attribute, device));
  HALO_CU_RETURN_IF_ERROR(driver, cuDeviceTotalMem(&info.totalMemory, device));
  return info;
}

CudaContext::CudaContext(const CudaDriver &driver, DeviceInfo info,
                         CUdevice device, CUcontext context)
    : driver_(&driver), info_(std::move(info)), device_(device),
      context_(context) {}

CudaContext::CudaContext(CudaContext &&other) noexcept
    : driver_(other.driver_), info_(std::move(other.info_)),
      device_(other.device_), context_(std::exchange(other.context_, nullptr)) {
}

CudaContext &CudaContext::operator=(CudaContext &&other) noexcept {
  std::swap(driver_, other.driver_);
  std::swap(info_, other.info_);
  std::swap(device_, other.device_);
  std::swap(context_, other.context_);
  return *this;
}

CudaContext::~CudaContext() {
  if (context_)
    (void)driver_->cuDevicePrimaryCtxRelease(device_);
}

StatusOr<CudaContext> CudaContext::create(const CudaDriver &driver,
                                          int ordinal) {
  StatusOr<DeviceInfo> info = queryDevice(driver, ordinal);
  if (!info.ok())
    return info.status();
  CUdevice device;
  HALO_CU_RETURN_IF_ERROR(driver, cuDeviceGet(&device, ordinal));
  CUcontext context;
  HALO_CU_RETURN_IF_ERROR(driver, cuDevicePrimaryCtxRetain(&context, device));
  // Owned from here on, so that a failure below releases the retain.
  CudaContext result(driver, std::move(*info), device, context);
  HALO_RETURN_IF_ERROR(result.makeCurrent());
  return result;
}

Status CudaContext::makeCurrent() const {
  HALO_CU_RETURN_IF_ERROR(*driver_, cuCtxSetCurrent(context_));
  return Status::success();
}

Status CudaContext::synchronize() const {
  HALO_RETURN_IF_ERROR(makeCurrent());
  HALO_CU_RETURN_IF_ERROR(*driver_, cuCtxSynchronize());
  return Status::success();
}

StatusOr<MemoryInfo> CudaContext::memoryInfo() const {
  HALO_RETURN_IF_ERROR(makeCurrent());
  MemoryInfo memory;
  HALO_CU_RETURN_IF_ERROR(*driver_,
                          cuMemGetInfo(&memory.freeBytes, &memory.totalBytes));
  return memory;
}

CudaModule::CudaModule(const CudaDriver &driver, CUmodule module)
    : driver_(&driver), module_(module) {}

CudaModule::CudaModule(CudaModule &&other) noexcept
    : driver_(other.driver_), module_(std::exchange(other.module_, nullptr)) {}

CudaModule &CudaModule::operator=(CudaModule &&other) noexcept {
  std::swap(driver_, other.driver_);
  std::swap(module_, other.module_);
  return *this;
}

CudaModule::~CudaModule() {
  if (module_)
    (void)driver_->cuModuleUnload(module_);
}

StatusOr<CudaModule> CudaModule::load(const CudaDriver &driver,
                                      const std::string &image) {
  CUmodule module;
  HALO_CU_RETURN_IF_ERROR(driver, cuModuleLoadData(&module, image.c_str()));
  return CudaModule(driver, module);
}

StatusOr<CUfunction> CudaModule::function(const std::string &name) const {
  CUfunction function;
  CUresult result =
      driver_->cuModuleGetFunction(&function, module_, name.c_str());
  if (result != CUDA_SUCCESS)
    return Status::error(fmt::format(
        "kernel '{}': {}", name,
        driver_
            ->check(result, "cuModuleGetFunction(&function, module, name)",
                    __FILE__, __LINE__)
            .message()));
  return function;
}

DeviceBuffer::DeviceBuffer(const CudaDriver &driver, CUdeviceptr pointer,
                           size_t size)
    : driver_(&driver), pointer_(pointer), size_(size) {}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : driver_(other.driver_), pointer_(std::exchange(other.pointer_, 0)),
      size_(std::exchange(other.size_, 0)) {}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  std::swap(driver_, other.driver_);
  std::swap(pointer_, other.pointer_);
  std::swap(size_, other.size_);
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (pointer_)
    (void)driver_->cuMemFree(pointer_);
}

StatusOr<DeviceBuffer> DeviceBuffer::allocate(const CudaDriver &driver,
                                              size_t bytes) {
  CUdeviceptr pointer = 0;
  CUresult result = driver.cuMemAlloc(&pointer, bytes);
  if (result != CUDA_SUCCESS)
    return Status::error(fmt::format(
        "allocating {} bytes of device memory: {}", bytes,
        driver.check(result, "cuMemAlloc(&pointer, bytes)", __FILE__, __LINE__)
            .message()));
  return DeviceBuffer(driver, pointer, bytes);
}

Status DeviceBuffer::checkSize(const char *what, size_t bytes) const {
  if (bytes <= size_)
    return Status::success();
  return Status::error(fmt::format(
      "DeviceBuffer::{}: {} bytes requested but the buffer holds {}", what,
      bytes, size_));
}

Status DeviceBuffer::copyFromHost(const void *source, size_t bytes) {
  HALO_RETURN_IF_ERROR(checkSize("copyFromHost", bytes));
  HALO_CU_RETURN_IF_ERROR(*driver_, cuMemcpyHtoD(pointer_, source, bytes));
  return Status::success();
}

Status DeviceBuffer::copyToHost(void *destination, size_t bytes) const {
  HALO_RETURN_IF_ERROR(checkSize("copyToHost", bytes));
  HALO_CU_RETURN_IF_ERROR(*driver_, cuMemcpyDtoH(destination, pointer_, bytes));
  return Status::success();
}

} // namespace halo::cuda
