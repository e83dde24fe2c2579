//===- CudaDriver.cpp - dlopen libcuda and resolve its entry points -------===//
//
// Bootstrapping uses the only symbols whose ABI never changed (dlsym of
// cuGetProcAddress_v2, cuInit, cuDriverGetVersion); everything else comes
// from cuGetProcAddress_v2 at the ABI version pinned in DriverSymbols.def.
// Errors name the CUDA result even when the driver cannot (the stub library).
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaDriver.h"

#include <fmt/format.h>

#include <dlfcn.h>

#include <utility>

namespace halo::cuda {
namespace {

using GetProcAddressFn = PFN_cuGetProcAddress_v12000;

// The results cuInit can return before the driver is able to name them
// itself; the toolkit's stub library answers 34 to everything, even
// cuGetErrorName.
std::pair<const char *, const char *> fallbackDescription(CUresult result) {
#define HALO_CU_CASE(Code, Text)                                               \
  case Code:                                                                   \
    return {#Code, Text};
  switch (result) {
    HALO_CU_CASE(CUDA_ERROR_NOT_INITIALIZED, "initialization error")
    HALO_CU_CASE(CUDA_ERROR_STUB_LIBRARY, "CUDA driver is a stub library")
    HALO_CU_CASE(CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER,
                 "API call requires a newer CUDA driver")
    HALO_CU_CASE(CUDA_ERROR_DEVICE_UNAVAILABLE,
                 "CUDA-capable device(s) is/are busy or unavailable")
    HALO_CU_CASE(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected")
    HALO_CU_CASE(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal")
    HALO_CU_CASE(CUDA_ERROR_OPERATING_SYSTEM, "OS call failed")
    HALO_CU_CASE(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH,
                 "system has unsupported display driver / cuda driver "
                 "combination")
    HALO_CU_CASE(CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE,
                 "forward compatibility was attempted on non supported HW")
    HALO_CU_CASE(CUDA_ERROR_UNKNOWN, "unknown error")
  default:
    return {"CUresult", nullptr};
  }
#undef HALO_CU_CASE
}

const char *hintFor(CUresult result) {
  switch (result) {
  case CUDA_ERROR_NO_DEVICE:
    return "the driver sees no GPU (check nvidia-smi and "
           "CUDA_VISIBLE_DEVICES), or run with --device cpu";
  case CUDA_ERROR_STUB_LIBRARY:
    return "this libcuda is the CUDA toolkit's stub; remove .../stubs from "
           "LD_LIBRARY_PATH, install the NVIDIA driver, or run with "
           "--device cpu";
  case CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER:
  case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
  case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE:
    return "the NVIDIA driver is too old for this build or does not match "
           "its kernel module; install a current driver (reboot if "
           "nvidia-smi reports a mismatch)";
  case CUDA_ERROR_DEVICE_UNAVAILABLE:
    return "the GPU is busy in exclusive-process mode or disabled; check "
           "nvidia-smi";
  case CUDA_ERROR_OUT_OF_MEMORY:
    return "the GPU is out of memory; check nvidia-smi for other processes, "
           "or reduce the batch size or sequence length";
  case CUDA_ERROR_NOT_INITIALIZED:
  case CUDA_ERROR_INVALID_CONTEXT:
    return "no CUDA context is current on this thread; create a CudaContext "
           "or call makeCurrent() first";
  case CUDA_ERROR_INVALID_IMAGE:
  case CUDA_ERROR_INVALID_PTX:
  case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
  case CUDA_ERROR_NO_BINARY_FOR_GPU:
    return "the kernel image does not fit this GPU or driver; compile a "
           "cubin for the device's arch (halo-cuda-info prints it) or update "
           "the driver";
  case CUDA_ERROR_NOT_FOUND:
    return "the kernel is not in the module; declare it extern \"C\" so its "
           "name is not mangled";
  case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES:
    return "the block needs more registers or shared memory than the SM "
           "has; use a smaller block, or raise the shared-memory limit with "
           "cuFuncSetAttribute";
  case CUDA_ERROR_ILLEGAL_ADDRESS:
  case CUDA_ERROR_MISALIGNED_ADDRESS:
  case CUDA_ERROR_ILLEGAL_INSTRUCTION:
  case CUDA_ERROR_HARDWARE_STACK_ERROR:
  case CUDA_ERROR_LAUNCH_FAILED:
    return "a kernel faulted and the context is unusable; rerun under "
           "compute-sanitizer to find it";
  default:
    return nullptr;
  }
}

std::string versionText(int version) {
  return fmt::format("{}.{}", version / 1000, version % 1000 / 10);
}

Status resolveSymbol(const CudaDriver &driver, GetProcAddressFn getProc,
                     const char *name, int abiVersion, void **slot) {
  CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  // Legacy default-stream semantics for stream 0; halo passes explicit
  // streams everywhere that matters.
  CUresult result = getProc(name, slot, abiVersion,
                            CU_GET_PROC_ADDRESS_LEGACY_STREAM, &found);
  if (result == CUDA_SUCCESS && found == CU_GET_PROC_ADDRESS_SUCCESS && *slot)
    return Status::success();
  *slot = nullptr;
  std::string why = result != CUDA_SUCCESS ? driver.describe(result)
                    : found == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                        ? "the driver predates this ABI version"
                        : "symbol not found";
  return Status::error(fmt::format(
      "cuGetProcAddress(\"{}\", {}) failed: {} (driver {} supports CUDA "
      "{}); hint: install an NVIDIA driver for CUDA {} or newer",
      name, abiVersion, why, driver.libraryPath(),
      versionText(driver.version()), versionText(CUDA_VERSION)));
}

} // namespace

CudaDriver::~CudaDriver() {
  if (handle_)
    dlclose(handle_);
}

std::string CudaDriver::describe(CUresult result) const {
  const char *name = nullptr;
  const char *text = nullptr;
  if (!cuGetErrorName || cuGetErrorName(result, &name) != CUDA_SUCCESS ||
      !name) {
    std::tie(name, text) = fallbackDescription(result);
  } else if (cuGetErrorString) {
    cuGetErrorString(result, &text);
  }
  if (!text)
    return fmt::format("{} ({})", name, int(result));
  return fmt::format("{} ({}): {}", name, int(result), text);
}

Status CudaDriver::check(CUresult result, const char *call, const char *file,
                         int line) const {
  if (result == CUDA_SUCCESS)
    return Status::success();
  std::string message =
      fmt::format("{} failed: {} [{}:{}]", call, describe(result), file, line);
  if (const char *hint = hintFor(result))
    message += fmt::format("; hint: {}", hint);
  return Status::error(std::move(message));
}

StatusOr<std::unique_ptr<CudaDriver>>
CudaDriver::open(const std::string &path) {
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    std::string why = dlerror();
    if (why.find(path) == std::string::npos)
      why = path + ": " + why;
    return Status::error(fmt::format(
        "no CUDA driver found ({}); hint: run with --device cpu, or install "
        "the NVIDIA driver",
        why));
  }
  std::unique_ptr<CudaDriver> driver(new CudaDriver());
  driver->handle_ = handle;
  driver->libraryPath_ = path;

  auto getProc =
      reinterpret_cast<GetProcAddressFn>(dlsym(handle, "cuGetProcAddress_v2"));
  auto init = reinterpret_cast<PFN_cuInit_v2000>(dlsym(handle, "cuInit"));
  auto getVersion = reinterpret_cast<PFN_cuDriverGetVersion_v2020>(
      dlsym(handle, "cuDriverGetVersion"));
  if (!getProc || !init || !getVersion)
    return Status::error(fmt::format(
        "the CUDA driver {} is too old: it has no cuGetProcAddress_v2 (CUDA "
        "12.0); hint: install an NVIDIA driver for CUDA {} or newer, or run "
        "with --device cpu",
        path, versionText(CUDA_VERSION)));

  // Error names first, so that a failing cuInit can be described; a stub
  // library resolves nothing and describe() falls back to its own table.
  for (auto [name, slot] :
       {std::pair{"cuGetErrorName",
                  reinterpret_cast<void **>(&driver->cuGetErrorName)},
        std::pair{"cuGetErrorString",
                  reinterpret_cast<void **>(&driver->cuGetErrorString)}}) {
    if (getProc(name, slot, 6000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, nullptr) !=
        CUDA_SUCCESS)
      *slot = nullptr;
  }

  if (CUresult result = init(0); result != CUDA_SUCCESS)
    return Status::error(fmt::format(
        "cannot initialize the CUDA driver ({}): {}", path,
        driver->check(result, "cuInit(0)", __FILE__, __LINE__).message()));
  if (CUresult result = getVersion(&driver->version_); result != CUDA_SUCCESS)
    return driver->check(result, "cuDriverGetVersion(&version)", __FILE__,
                         __LINE__);

#define HALO_CU_SYMBOL(Name, AbiVersion)                                       \
  HALO_RETURN_IF_ERROR(                                                        \
      resolveSymbol(*driver, getProc, #Name, AbiVersion,                       \
                    reinterpret_cast<void **>(&driver->Name)));
#include "runtime/cuda/DriverSymbols.def"
#undef HALO_CU_SYMBOL
  return driver;
}

StatusOr<const CudaDriver *> CudaDriver::load() {
  static const StatusOr<const CudaDriver *> loaded =
      []() -> StatusOr<const CudaDriver *> {
    StatusOr<std::unique_ptr<CudaDriver>> driver = open("libcuda.so.1");
    if (!driver.ok())
      return driver.status();
    // Deliberately leaked: unloading libcuda while static destructors (or
    // driver threads) may still run is unsafe.
    return static_cast<const CudaDriver *>(driver->release());
  }();
  return loaded;
}

StatusOr<std::unique_ptr<CudaDriver>>
CudaDriver::loadLibrary(const std::string &path) {
  return open(path);
}

} // namespace halo::cuda
