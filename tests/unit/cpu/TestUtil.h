//===- TestUtil.h - Shared helpers for the CPU kernel tests -----*- C++ -*-===//
//
// Seeded random tensors, so every failure reproduces. Values are drawn
// uniformly from [lo, hi); integer ids from [lo, hi].
//
//===----------------------------------------------------------------------===//
#ifndef HALO_TESTS_UNIT_CPU_TESTUTIL_H
#define HALO_TESTS_UNIT_CPU_TESTUTIL_H

#include <cstdint>
#include <random>
#include <vector>

namespace halo::cpu::test {

template <typename F = double>
std::vector<F> randomVector(int64_t n, unsigned seed, double lo = -1,
                            double hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<F> v(n);
  for (F &x : v)
    x = F(dist(rng));
  return v;
}

inline std::vector<int32_t> randomIds(int64_t n, unsigned seed, int32_t lo,
                                      int32_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t &x : v)
    x = dist(rng);
  return v;
}

template <typename To, typename From>
std::vector<To> convert(const std::vector<From> &v) {
  return std::vector<To>(v.begin(), v.end());
}

} // namespace halo::cpu::test

#endif // HALO_TESTS_UNIT_CPU_TESTUTIL_H
