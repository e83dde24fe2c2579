//===- Trainer.h - The training loop of halo-run ------------------*- C++ -*-===//
//
// Data, parameter initialisation, checkpoints (runtime/io/Checkpoint.h),
// the loop, logging and evaluation; the steps themselves run on a Backend.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_TRAIN_TRAINER_H
#define HALO_RUNTIME_TRAIN_TRAINER_H

#include "frontend/config/ModelConfig.h"
#include "runtime/cpu/Program.h"

#include <cstdint>
#include <optional>
#include <string>

namespace halo::train {

struct TrainOptions {
  std::string program;
  std::string data;
  std::string device; ///< "cpu", "cuda", or empty: cuda when a GPU is usable.
  std::optional<int64_t> steps;
  int64_t logEvery = 10;
  std::string metrics;
  std::optional<uint64_t> seed;
  int64_t evalEvery = 0;
  int64_t evalBatches = 4;
  std::string init;   ///< safetensors file or HF checkpoint folder
  std::string resume; ///< halo checkpoint folder
  std::string save;   ///< checkpoint folder written at the end
  int64_t saveEvery = 0;
  std::string dumpStep;
  bool exact = false;
  /// What a non-finite loss or gradient norm does: the step's update is
  /// always skipped on the device; "stop" also ends the run.
  bool stopOnNonFinite = false;
  /// The run ends after this many consecutive skipped steps.
  int64_t maxSkippedSteps = 20;
  /// Peak dense TFLOP/s for MFU; 0: from the device (H100: 989 BF16).
  double peakTflops = 0;
};

/// Model FLOPs of one training step (forward + backward): 6 per matmul
/// weight per token, plus causal attention's 6 * B * S^2 * qDim per layer.
double trainingFlopsPerStep(const frontend::ModelConfig &cfg);

Status train(const TrainOptions &options, const cpu::Program &program,
             const frontend::ModelConfig &cfg);

/// The parameter's N(0, stddev) initialisation (docs/program-format.md).
void fillNormal(std::vector<float> &out, uint64_t seed, const std::string &name, double stddev);

} // namespace halo::train

#endif // HALO_RUNTIME_TRAIN_TRAINER_H
