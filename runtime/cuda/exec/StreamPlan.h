//===- StreamPlan.h - Two-stream schedule of a step's commands -*- C++ -*-===//
//
// Which steps of a CudaFunction run on the side stream and which step of the
// other stream each one waits for, from the device byte ranges each step
// reads and writes. Pure (no driver), so it is unit-tested without a GPU.
//
// The side stream takes the weight-gradient GEMMs and the kernels whose
// every read that an earlier step wrote was written on the side stream
// (their un-rotations). A step waits for the latest step of the other
// stream whose ranges conflict with its own (read after write, write after
// read, write after write); the stream's order covers everything before it.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_EXEC_STREAMPLAN_H
#define HALO_RUNTIME_CUDA_EXEC_STREAMPLAN_H

#include <cstdint>
#include <vector>

namespace halo::cuda {

/// A half-open range of device bytes.
struct ByteRange {
  uint64_t begin = 0, end = 0;
  bool overlaps(const ByteRange &o) const { return begin < o.end && o.begin < end; }
};

struct StepAccess {
  std::vector<ByteRange> reads, writes;
  bool weightGradient = false; ///< a GEMM of role bwd_weight
  bool gemm = false;
  bool empty = false; ///< enqueues nothing (constants)
};

struct StreamPlan {
  std::vector<bool> side;
  /// Per step: the step of the other stream to wait for, or -1.
  std::vector<int64_t> waitFor;
  /// Per step: another step waits for it (record an event after it). The
  /// last side step always signals: the main stream joins it at the end.
  std::vector<bool> signals;
  bool anySide = false;
};

StreamPlan planTwoStreams(const std::vector<StepAccess> &steps);

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_EXEC_STREAMPLAN_H
