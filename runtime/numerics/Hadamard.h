//===- Hadamard.h - Orthonormal Hadamard rotations -------------*- C++ -*-===//
//
// A size n = K * 2^k uses H = (H_K kron H_{2^k}) / sqrt(n): index i of H is
// a * 2^k + b with a in [0, K), b in [0, 2^k). H_{2^k} is Sylvester's
// (symmetric, applied by fast Walsh-Hadamard butterflies); H_K is a fixed +-1
// matrix that is NOT symmetric, so H and H^T differ and callers must pick the
// one the algebra needs (x -> xH is undone by x -> xH^T). The H_K are built
// once, on first use, from Paley I/II, Sylvester doubling and Williamson
// arrays; every device kernel must use exactly these matrices.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_NUMERICS_HADAMARD_H
#define HALO_RUNTIME_NUMERICS_HADAMARD_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace halo::numerics {

/// n = K * pow2, with K = 1 or one of the supported +-1 orders.
struct HadamardShape {
  int64_t K;
  int64_t pow2;
};

/// K = 1 when n is a power of two; otherwise the first K of the reference
/// order 172, 156, 140, 108, 100, 60, 52, 36, 28, 40, 20, 12, 44 that divides
/// n with a power-of-two quotient; nullopt when none does (or n < 1).
std::optional<HadamardShape> decomposeHadamardSize(int64_t n);

/// The supported sizes in words, for diagnostics.
std::string supportedHadamardForms();

/// Row-major K x K +-1 matrix with H_K H_K^T = K I, for K = 1 or a supported
/// order; nullptr for any other K. The storage lives for the whole program.
const int8_t *hadamardMatrixK(int K);

/// Each row r of the row-major [rows, n] buffer becomes r H (transposed =
/// false) or r H^T (transposed = true), H the orthonormal Hadamard of size n.
/// Instantiated for float and double; large inputs are split over threads.
/// Throws std::invalid_argument when n does not decompose.
template <typename F>
void hadamardRows(F *x, int64_t rows, int64_t n, bool transposed);

/// Left rotation over the row (token) dimension of the row-major [rows, cols]
/// buffer: X becomes H X (transposed = false) or H^T X, H the orthonormal
/// Hadamard of size rows; equivalently X^T becomes X^T H^T (or X^T H).
/// Instantiated for float and double; throws std::invalid_argument when rows
/// does not decompose.
template <typename F>
void hadamardCols(F *x, int64_t rows, int64_t cols, bool transposed);

/// The orthonormal H of size n as a dense row-major n x n matrix (for tests
/// and documentation); empty when n does not decompose.
std::vector<double> denseHadamard(int64_t n);

} // namespace halo::numerics

#endif // HALO_RUNTIME_NUMERICS_HADAMARD_H
