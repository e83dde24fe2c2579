//===- GpuCheck.h - Kernel checks against the CPU oracle on a GPU -*- C++ -*-===//
//
// runGpuChecks compiles the generated kernels with NVRTC for the device, runs
// them on random data (with outlier channels for the quantizers) and compares
// with runtime/cpu and runtime/numerics: FP8/INT8 codes, scales and plain
// Hadamard outputs bit-exact, everything else within BF16-rounding
// tolerances. With `timing` it also times the Hadamard+quantize kernels at
// Llama-3-8B shapes against a device-to-device copy in the same run.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_TESTS_UNIT_KERNELS_GPUCHECK_H
#define HALO_TESTS_UNIT_KERNELS_GPUCHECK_H

#include <ostream>
#include <string>

namespace halo::cuda::kernels::testing {

struct GpuCheckOptions {
  /// Also check the Llama-3-8B shapes (8192 x 4096 / 14336, ...).
  bool large = true;
  /// Time the Hadamard+quantize kernels against a copy (large shapes).
  bool timing = true;
  /// Run only checks whose name contains this.
  std::string filter;
  /// Write a JSON summary here (empty: none).
  std::string jsonPath;
};

struct GpuCheckResult {
  bool skipped = false;
  std::string skipReason;
  int checks = 0;
  int failures = 0;
};

GpuCheckResult runGpuChecks(const GpuCheckOptions &options, std::ostream &log);

} // namespace halo::cuda::kernels::testing

#endif // HALO_TESTS_UNIT_KERNELS_GPUCHECK_H
