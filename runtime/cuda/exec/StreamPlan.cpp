//===- StreamPlan.cpp - Two-stream schedule of a step's commands ----------===//
#include "runtime/cuda/exec/StreamPlan.h"

#include <cstddef>

namespace halo::cuda {
namespace {

bool anyOverlap(const std::vector<ByteRange> &a, const std::vector<ByteRange> &b) {
  for (const ByteRange &x : a)
    for (const ByteRange &y : b)
      if (x.overlaps(y))
        return true;
  return false;
}

bool conflict(const StepAccess &later, const StepAccess &earlier) {
  return anyOverlap(later.writes, earlier.reads) || anyOverlap(later.writes, earlier.writes) ||
         anyOverlap(later.reads, earlier.writes);
}

} // namespace

StreamPlan planTwoStreams(const std::vector<StepAccess> &steps) {
  const std::size_t n = steps.size();
  StreamPlan plan;
  plan.side.assign(n, false);
  plan.waitFor.assign(n, -1);
  plan.signals.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    const StepAccess &st = steps[i];
    if (st.empty)
      continue;
    if (st.weightGradient) {
      plan.side[i] = true;
    } else if (!st.gemm) {
      bool fromSide = false, fromMain = false;
      for (const ByteRange &r : st.reads)
        for (std::size_t j = i; j-- > 0;)
          if (anyOverlap({r}, steps[j].writes)) {
            (plan.side[j] ? fromSide : fromMain) = true;
            break;
          }
      plan.side[i] = fromSide && !fromMain;
    }
    plan.anySide |= plan.side[i];
  }
  if (!plan.anySide)
    return plan;
  int64_t waited[2] = {-1, -1}; // per stream: the latest step it waited for
  for (std::size_t i = 0; i < n; ++i) {
    const bool side = plan.side[i];
    for (std::size_t j = i; j-- > 0 && int64_t(j) > waited[side];)
      if (plan.side[j] != side && conflict(steps[i], steps[j])) {
        plan.waitFor[i] = int64_t(j);
        waited[side] = int64_t(j);
        plan.signals[j] = true;
        break;
      }
  }
  for (std::size_t i = n; i-- > 0;)
    if (plan.side[i]) {
      plan.signals[i] = true;
      break;
    }
  return plan;
}

} // namespace halo::cuda
