//===- Backend.h - Where a training step runs: CPU oracle or GPU -*- C++ -*-===//
//
// The Trainer (Trainer.h) owns the loop, the data, the parameters on the
// host for checkpoints, and the logs; a Backend owns the device state and
// runs the program's functions. The CPU backend is the interpreter (the
// oracle); the CUDA backend is runtime/cuda/exec's graph-replayed step.
//
// States ("state vectors") follow train_step's inputs: one Tensor per input,
// parameters and AdamW moments filled, data inputs ignored.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_TRAIN_BACKEND_H
#define HALO_RUNTIME_TRAIN_BACKEND_H

#include "runtime/cpu/Interpreter.h"
#include "runtime/cpu/Program.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace halo::train {

using Tensor = cpu::Tensor<float>;

struct StepMetrics {
  float loss = 0, lr = 0, gradNorm = 0;
};

/// Steps whose update the overflow guard skipped (non-finite loss or
/// gradient norm) since the previous report.
struct GuardStatus {
  int skippedSteps = 0;
  int firstBadStep = 0;
  int lastBadStep = 0;
  /// HF name of the first non-finite gradient, when the backend knows it.
  std::string tensor;
};

class Backend {
public:
  virtual ~Backend() = default;
  /// "cpu, 16 threads" / "cuda: NVIDIA H100 80GB HBM3 (sm_90)".
  virtual std::string describe() const = 0;
  /// Copies the parameter states of `state` to the backend.
  virtual Status upload(const std::vector<Tensor> &state) = 0;
  /// Copies the backend's parameter states into `state` (waits for it).
  virtual Status download(std::vector<Tensor> &state) = 0;
  /// Starts train step `step` (1-based) on one batch; may return before the
  /// step finishes.
  virtual Status step(int64_t step, const std::vector<int32_t> &tokens,
                      const std::vector<int32_t> &targets) = 0;
  /// The last step's loss, learning rate and gradient norm (waits for it).
  virtual StatusOr<StepMetrics> metrics() = 0;
  /// The last step's function outputs as floats, in train_step's output
  /// order (f32 and bf16 outputs; others left empty). Waits.
  virtual StatusOr<std::vector<Tensor>> outputs() = 0;
  /// The overflow guard's verdicts since the last call (waits).
  virtual StatusOr<GuardStatus> guard() = 0;
  /// `forward`'s loss on one batch with the current parameters.
  virtual StatusOr<double> evalLoss(const std::vector<int32_t> &tokens,
                                    const std::vector<int32_t> &targets) = 0;
};

struct BackendOptions {
  bool exact = false;  ///< CPU only: no bf16 rounding.
  bool evaluate = false; ///< Prepare `forward` too.
};

std::unique_ptr<Backend> makeCpuBackend(const cpu::Program &program, BackendOptions options);
/// Fails with a clear message when no CUDA driver or device is usable.
StatusOr<std::unique_ptr<Backend>> makeCudaBackend(const cpu::Program &program,
                                                   BackendOptions options);

} // namespace halo::train

#endif // HALO_RUNTIME_TRAIN_BACKEND_H
