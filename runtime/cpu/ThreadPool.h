//===- ThreadPool.h - Tiny persistent pool for the CPU kernels --*- C++ -*-===//
//
// parallelFor splits [0, n) into one contiguous chunk per thread and runs the
// chunks on a lazily started pool of hardware_concurrency() - 1 workers plus
// the caller. It never nests: a call from inside a chunk, or one made while
// another thread owns the pool, runs inline on the calling thread. Kernels
// keep results independent of the split, so the thread count never changes
// the numbers.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CPU_THREADPOOL_H
#define HALO_RUNTIME_CPU_THREADPOOL_H

#include <cstdint>
#include <functional>

namespace halo::cpu {

/// Threads a parallelFor may use, the caller included (at least 1).
int numThreads();

/// Calls fn(begin, end) on disjoint chunks covering [0, n) and returns when
/// all are done.
void parallelFor(int64_t n, const std::function<void(int64_t, int64_t)> &fn);

} // namespace halo::cpu

#endif // HALO_RUNTIME_CPU_THREADPOOL_H
