//===- ThreadPool.cpp - Tiny persistent pool for the CPU kernels ----------===//
//
// One job at a time: the submitter publishes (fn, n) under a mutex, bumps a
// generation counter, runs chunk 0 itself and waits for the workers' chunks.
// Workers are started on first use and joined when the process exits.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/ThreadPool.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace halo::cpu {
namespace {

// Set while a thread runs a chunk, so nested parallelFor calls run inline.
thread_local bool insideChunk = false;

class Pool {
public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i)
      workers_.emplace_back([this, i] { workerLoop(i); });
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread &w : workers_)
      w.join();
  }

  int threads() const { return threads_; }

  void run(int64_t n, const std::function<void(int64_t, int64_t)> &fn) {
    // A single chunk runs unmarked, so a parallelFor inside it still splits.
    if (n < 2 || threads_ == 1) {
      fn(0, n);
      return;
    }
    // Another thread owns the pool: do the work here rather than queue.
    std::unique_lock<std::mutex> submit(submitMutex_, std::try_to_lock);
    if (!submit.owns_lock()) {
      runChunk(fn, 0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      pending_ = threads_ - 1;
      ++generation_;
    }
    wake_.notify_all();
    runChunk(fn, chunkBegin(0), chunkBegin(1));
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    fn_ = nullptr;
  }

private:
  int64_t chunkBegin(int chunk) const { return n_ * chunk / threads_; }

  static void runChunk(const std::function<void(int64_t, int64_t)> &fn,
                       int64_t begin, int64_t end) {
    if (begin >= end)
      return;
    bool outer = insideChunk;
    insideChunk = true;
    fn(begin, end);
    insideChunk = outer;
  }

  void workerLoop(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_)
        return;
      seen = generation_;
      const std::function<void(int64_t, int64_t)> *fn = fn_;
      int64_t begin = chunkBegin(index), end = chunkBegin(index + 1);
      lock.unlock();
      runChunk(*fn, begin, end);
      lock.lock();
      if (--pending_ == 0)
        done_.notify_one();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex submitMutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int64_t)> *fn_ = nullptr;
  int64_t n_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

Pool &pool() {
  static Pool p(std::max(1u, std::thread::hardware_concurrency()));
  return p;
}

} // namespace

int numThreads() { return pool().threads(); }

void parallelFor(int64_t n, const std::function<void(int64_t, int64_t)> &fn) {
  if (n <= 0)
    return;
  if (insideChunk) {
    fn(0, n);
    return;
  }
  pool().run(n, fn);
}

} // namespace halo::cpu
