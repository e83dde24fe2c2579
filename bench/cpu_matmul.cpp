//===- cpu_matmul.cpp - GFLOP/s of halo::cpu::matmul vs a naive loop ------===//
//
// For each shape and transpose combination, times the packed, threaded matmul
// (best of several runs after a warm-up) and a naive i-j-k triple loop, checks
// that they agree, and prints GFLOP/s for both. Usage:
// halo-bench-cpu-matmul [M N K]; without arguments a fixed set of training-like
// shapes is used.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"
#include "runtime/cpu/ThreadPool.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

struct Shape {
  int64_t M, N, K;
};

void naive(const float *A, const float *B, float *C, int64_t M, int64_t N,
           int64_t K, bool transA, bool transB) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0;
      for (int64_t p = 0; p < K; ++p)
        acc += (transA ? A[p * M + i] : A[i * K + p]) *
               (transB ? B[j * K + p] : B[p * N + j]);
      C[i * N + j] = acc;
    }
}

/// Best wall time in seconds of `runs` calls of fn.
template <typename Fn> double bestSeconds(int runs, Fn fn) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    best = std::min(best, dt.count());
  }
  return best;
}

void bench(const Shape &s, bool transA, bool transB) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N), ref(s.M * s.N);
  for (float &x : A)
    x = dist(rng);
  for (float &x : B)
    x = dist(rng);
  double flops = 2.0 * s.M * s.N * s.K;
  halo::cpu::matmul(A.data(), B.data(), C.data(), s.M, s.N, s.K, transA,
                    transB);
  double fast = bestSeconds(std::max(3, int(2e9 / flops)), [&] {
    halo::cpu::matmul(A.data(), B.data(), C.data(), s.M, s.N, s.K, transA,
                      transB);
  });
  double slow = bestSeconds(1, [&] {
    naive(A.data(), B.data(), ref.data(), s.M, s.N, s.K, transA, transB);
  });
  double maxErr = 0;
  for (size_t i = 0; i < C.size(); ++i)
    maxErr = std::max(maxErr, double(std::fabs(C[i] - ref[i])));
  std::printf("%5lld x %5lld x %5lld  %c%c  matmul %7.2f GFLOP/s  naive %6.2f "
              "GFLOP/s  speedup %6.1fx  max|diff| %.1e\n",
              (long long)s.M, (long long)s.N, (long long)s.K,
              transA ? 'T' : 'N', transB ? 'T' : 'N', flops / fast * 1e-9,
              flops / slow * 1e-9, slow / fast, maxErr);
}

} // namespace

int main(int argc, char **argv) {
  std::vector<Shape> shapes = {
      {512, 256, 256}, {512, 768, 256}, {512, 256, 768}, {1024, 1024, 1024}};
  if (argc == 4)
    shapes = {{std::atoll(argv[1]), std::atoll(argv[2]), std::atoll(argv[3])}};
  std::printf("threads: %d\n", halo::cpu::numThreads());
  for (const Shape &s : shapes)
    for (int t = 0; t < 4; ++t)
      bench(s, t & 2, t & 1);
  return 0;
}
