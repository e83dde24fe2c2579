//===- GemmDescTest.cpp - Descriptors, validation, layout mapping ---------===//
//
// Runs without a GPU: the pure half of the GEMM layer (Gemm.h) and the
// epilogue kernel's NVRTC compilation.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/blas/Epilogue.h"
#include "runtime/cuda/blas/Gemm.h"
#include "runtime/cuda/blas/GemmEngine.h"

#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

using namespace halo::cuda;

namespace {

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

void expectError(const halo::Status &status, const std::string &part) {
  ASSERT_FALSE(status.ok()) << "expected an error containing '" << part
                            << "'";
  EXPECT_TRUE(contains(status.message(), part)) << status.message();
}

TEST(GemmDesc, Factories) {
  GemmDesc q = GemmDesc::quantized(GemmType::FP8E4M3, 8192, 4096, 14336);
  EXPECT_EQ(q.aType, GemmType::FP8E4M3);
  EXPECT_EQ(q.bType, GemmType::FP8E4M3);
  EXPECT_EQ(q.outType, GemmType::BF16);
  EXPECT_FALSE(q.transA);
  EXPECT_TRUE(q.transB);
  EXPECT_EQ(q.scaleA, ScaleMode::PerTensor);
  EXPECT_EQ(q.scaleB, ScaleMode::PerTensor);
  EXPECT_TRUE(validate(q).ok()) << validate(q).message();

  GemmDesc b = GemmDesc::bf16(3, 5, 7, true, false, GemmType::FP32);
  EXPECT_EQ(b.aType, GemmType::BF16);
  EXPECT_EQ(b.outType, GemmType::FP32);
  EXPECT_TRUE(b.transA);
  EXPECT_EQ(b.scaleA, ScaleMode::None);
  EXPECT_TRUE(validate(b).ok()) << validate(b).message();
  EXPECT_NE(q, b);
  EXPECT_EQ(q, GemmDesc::quantized(GemmType::FP8E4M3, 8192, 4096, 14336));
}

TEST(GemmDesc, Describe) {
  GemmDesc d = GemmDesc::quantized(GemmType::INT8, 64, 32, 16);
  d.scaleA = ScaleMode::PerRow;
  d.scaleB = ScaleMode::PerRow;
  d.accumulate = true;
  EXPECT_EQ(describe(d), "int8 x int8 -> bf16, M=64 N=32 K=16, A [M,K] "
                         "B^T [N,K], scales row/col, accumulate");
  GemmDesc f = GemmDesc::quantized(GemmType::FP8E4M3, 1, 16, 16, true, false,
                                   GemmType::FP32);
  f.fastAccum = true;
  EXPECT_EQ(describe(f), "fp8e4m3 x fp8e4m3 -> f32, M=1 N=16 K=16, A^T "
                         "[K,M] B [K,N], scales tensor/tensor, fast-accum");
}

TEST(GemmDesc, SizesAndFlops) {
  GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, 8, 32, 64);
  EXPECT_EQ(bytesA(d), 8 * 64);
  EXPECT_EQ(bytesB(d), 32 * 64);
  EXPECT_EQ(bytesC(d), 8 * 32 * 2);
  EXPECT_EQ(scaleElementsA(d), 1);
  d.scaleA = ScaleMode::PerRow;
  d.scaleB = ScaleMode::PerRow;
  EXPECT_EQ(scaleElementsA(d), 8);
  EXPECT_EQ(scaleElementsB(d), 32);
  d.scaleA = ScaleMode::None;
  EXPECT_EQ(scaleElementsA(d), 0);
  EXPECT_DOUBLE_EQ(gemmFlops(d), 2.0 * 8 * 32 * 64);
  EXPECT_EQ(gemmTypeSize(GemmType::INT32), 4);
  EXPECT_STREQ(gemmTypeName(GemmType::FP8E4M3), "fp8e4m3");
}

TEST(GemmValidate, AcceptsEverySupportedCombination) {
  for (GemmType format : {GemmType::FP8E4M3, GemmType::INT8})
    for (GemmType out : {GemmType::BF16, GemmType::FP32})
      for (ScaleMode a :
           {ScaleMode::None, ScaleMode::PerTensor, ScaleMode::PerRow})
        for (ScaleMode b :
             {ScaleMode::None, ScaleMode::PerTensor, ScaleMode::PerRow})
          for (bool accumulate : {false, true}) {
            GemmDesc d = GemmDesc::quantized(format, 24, 48, 64, false, true,
                                             out);
            d.scaleA = a;
            d.scaleB = b;
            d.accumulate = accumulate;
            EXPECT_TRUE(validate(d).ok()) << validate(d).message();
          }
  GemmDesc i32 = GemmDesc::quantized(GemmType::INT8, 16, 16, 16, false, true,
                                     GemmType::INT32);
  i32.scaleA = i32.scaleB = ScaleMode::None;
  EXPECT_TRUE(validate(i32).ok()) << validate(i32).message();
  // BF16: any shape and layout.
  for (int t = 0; t < 4; ++t)
    for (GemmType out : {GemmType::BF16, GemmType::FP32}) {
      GemmDesc b = GemmDesc::bf16(3, 5, 7, t & 2, t & 1, out);
      EXPECT_TRUE(validate(b).ok()) << validate(b).message();
    }
  GemmDesc fast = GemmDesc::quantized(GemmType::FP8E4M3, 16, 16, 16);
  fast.fastAccum = true;
  EXPECT_TRUE(validate(fast).ok());
  GemmDesc maxK = GemmDesc::quantized(GemmType::INT8, 16, 16, 131056);
  EXPECT_TRUE(validate(maxK).ok()) << validate(maxK).message();
}

TEST(GemmValidate, RejectsBadDescriptors) {
  GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, 0, 16, 16);
  expectError(validate(d), "M, N and K must be positive");
  d = GemmDesc::quantized(GemmType::FP8E4M3, 16, 16, -16);
  expectError(validate(d), "must be positive");
  d = GemmDesc::quantized(GemmType::FP8E4M3, int64_t(1) << 31, 16, 16);
  expectError(validate(d), "below 2^31");

  d = GemmDesc::quantized(GemmType::FP8E4M3, 16, 16, 16);
  d.bType = GemmType::INT8;
  expectError(validate(d), "mixed operand formats");
  d = GemmDesc::quantized(GemmType::FP8E4M3, 16, 16, 16);
  d.bType = GemmType::BF16;
  expectError(validate(d), "mixed operand formats");

  d = GemmDesc::quantized(GemmType::FP8E4M3, 16, 16, 16, false, true,
                          GemmType::FP8E4M3);
  expectError(validate(d), "fp8e4m3 GEMM writes bf16 or f32");
  d = GemmDesc::quantized(GemmType::FP8E4M3, 16, 16, 16, false, true,
                          GemmType::INT32);
  expectError(validate(d), "fp8e4m3 GEMM writes bf16 or f32");
  d = GemmDesc::quantized(GemmType::INT8, 16, 16, 16, false, true,
                          GemmType::INT8);
  expectError(validate(d), "int8 GEMM writes bf16, f32 or i32");
  d = GemmDesc::quantized(GemmType::INT8, 16, 16, 16, false, true,
                          GemmType::INT32);
  expectError(validate(d), "takes no scales");
  d = GemmDesc::bf16(16, 16, 16, false, false, GemmType::INT32);
  expectError(validate(d), "bf16 GEMM writes bf16 or f32");
  d = GemmDesc::bf16(16, 16, 16);
  d.scaleA = ScaleMode::PerTensor;
  expectError(validate(d), "bf16 GEMM takes no scales");
  d = GemmDesc::bf16(16, 16, 16);
  d.aType = d.bType = GemmType::FP32;
  expectError(validate(d), "operands of type f32 are not supported");
  d = GemmDesc::bf16(16, 16, 16);
  d.fastAccum = true;
  expectError(validate(d), "fastAccum applies to fp8e4m3 GEMMs only");
  d = GemmDesc::quantized(GemmType::INT8, 16, 16, 16);
  d.fastAccum = true;
  expectError(validate(d), "fastAccum");
}

TEST(GemmValidate, EightBitShapeRules) {
  GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, 7, 16, 24);
  expectError(validate(d), "K = 24 must be a multiple of 16");
  d = GemmDesc::quantized(GemmType::INT8, 7, 24, 32);
  expectError(validate(d), "N = 24 must be a multiple of 16");
  // M is free when A is K-contiguous, but a transposed A has rows of M.
  d = GemmDesc::quantized(GemmType::FP8E4M3, 7, 16, 32);
  EXPECT_TRUE(validate(d).ok()) << validate(d).message();
  d.transA = true;
  expectError(validate(d), "M = 7 must be a multiple of 16");
  d = GemmDesc::quantized(GemmType::INT8, 16, 16, 131072);
  expectError(validate(d), "can overflow the int32 accumulators");
  // The message names the descriptor.
  expectError(validate(d), "int8 x int8 -> bf16, M=16 N=16 K=131072");
}

TEST(GemmLayout, HopperFp8AndInt8AreTnOnly) {
  for (GemmType format : {GemmType::FP8E4M3, GemmType::INT8})
    for (int cc : {89, 90}) {
      GemmDesc d = GemmDesc::quantized(format, 32, 32, 32, false, true);
      EXPECT_TRUE(nativeLayoutError(d, cc / 10, cc % 10).ok());
      d.transB = false;
      expectError(nativeLayoutError(d, cc / 10, cc % 10),
                  "store B as [N,K] (transpose B)");
      d.transA = true;
      expectError(nativeLayoutError(d, cc / 10, cc % 10),
                  "store A as [M,K] and B as [N,K] (transpose both)");
      d.transB = true;
      halo::Status status = nativeLayoutError(d, cc / 10, cc % 10);
      expectError(status, "store A as [M,K] (transpose A)");
      EXPECT_TRUE(contains(status.message(),
                           "sm_" + std::to_string(cc) + " cuBLASLt runs " +
                               gemmTypeName(format)))
          << status.message();
      EXPECT_TRUE(contains(status.message(), "transA=false, transB=true"))
          << status.message();
    }
}

TEST(GemmLayout, Bf16AndBlackwellFp8TakeEveryLayout) {
  for (int t = 0; t < 4; ++t) {
    GemmDesc b = GemmDesc::bf16(32, 32, 32, t & 2, t & 1);
    EXPECT_TRUE(nativeLayoutError(b, 9, 0).ok());
    GemmDesc f = GemmDesc::quantized(GemmType::FP8E4M3, 32, 32, 32, t & 2,
                                     t & 1);
    EXPECT_TRUE(nativeLayoutError(f, 10, 0).ok());
    GemmDesc i = GemmDesc::quantized(GemmType::INT8, 32, 32, 32, t & 2, t & 1);
    EXPECT_EQ(nativeLayoutError(i, 10, 0).ok(), !(t & 2) && (t & 1));
  }
}

TEST(GemmLayout, RowMajorToColumnMajor) {
  // Y = X W^T: A [M,K], B [N,K] -> cuBLASLt "TN" with A' = W (K x N, ld K)
  // and B' = X (K x M, ld K), D = N x M with ld N.
  GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, 8192, 6144, 4096);
  LtProblem p = mapToColumnMajor(d);
  EXPECT_EQ(p.m, 6144u);
  EXPECT_EQ(p.n, 8192u);
  EXPECT_EQ(p.k, 4096u);
  EXPECT_EQ(p.form(), "TN");
  EXPECT_EQ(p.aRows, 4096u);
  EXPECT_EQ(p.aCols, 6144u);
  EXPECT_EQ(p.lda, 4096);
  EXPECT_EQ(p.bRows, 4096u);
  EXPECT_EQ(p.bCols, 8192u);
  EXPECT_EQ(p.ldb, 4096);
  EXPECT_EQ(p.cRows, 6144u);
  EXPECT_EQ(p.cCols, 8192u);
  EXPECT_EQ(p.ldc, 6144);

  // E_X = E W: A [M,K], B [K,N] -> "NN".
  p = mapToColumnMajor(GemmDesc::bf16(5, 7, 3));
  EXPECT_EQ(p.form(), "NN");
  EXPECT_EQ(p.m, 7u);
  EXPECT_EQ(p.n, 5u);
  EXPECT_EQ(p.aRows, 7u);
  EXPECT_EQ(p.aCols, 3u);
  EXPECT_EQ(p.lda, 7);
  EXPECT_EQ(p.bRows, 3u);
  EXPECT_EQ(p.bCols, 5u);
  EXPECT_EQ(p.ldb, 3);
  EXPECT_EQ(p.ldc, 7);

  // G = E^T X: A [K,M], B [K,N] -> "NT".
  p = mapToColumnMajor(GemmDesc::bf16(5, 7, 3, true, false));
  EXPECT_EQ(p.form(), "NT");
  EXPECT_EQ(p.bRows, 5u);
  EXPECT_EQ(p.bCols, 3u);
  EXPECT_EQ(p.ldb, 5);
  EXPECT_EQ(p.aRows, 7u);
  EXPECT_EQ(p.lda, 7);

  // Both transposed -> "TT".
  p = mapToColumnMajor(GemmDesc::bf16(5, 7, 3, true, true));
  EXPECT_EQ(p.form(), "TT");
  EXPECT_EQ(p.aRows, 3u);
  EXPECT_EQ(p.aCols, 7u);
  EXPECT_EQ(p.lda, 3);
  EXPECT_EQ(p.bRows, 5u);
  EXPECT_EQ(p.bCols, 3u);
  EXPECT_EQ(p.ldb, 5);
}

/// The mapping is a pure index identity: evaluate the column-major problem
/// on small integer matrices with the stored arrays and compare it with the
/// row-major definition, for every layout.
TEST(GemmLayout, ColumnMajorProblemComputesTheRowMajorProduct) {
  const int64_t M = 3, N = 4, K = 5;
  for (int t = 0; t < 4; ++t) {
    GemmDesc d = GemmDesc::bf16(M, N, K, t & 2, t & 1);
    std::vector<long> A(M * K), B(K * N);
    for (size_t i = 0; i < A.size(); ++i)
      A[i] = long(i * 7 % 11) - 5;
    for (size_t i = 0; i < B.size(); ++i)
      B[i] = long(i * 5 % 13) - 6;
    auto a = [&](int64_t i, int64_t k) {
      return d.transA ? A[k * M + i] : A[i * K + k];
    };
    auto b = [&](int64_t k, int64_t j) {
      return d.transB ? B[j * K + k] : B[k * N + j];
    };
    LtProblem p = mapToColumnMajor(d);
    // Column-major element (r, c) of a stored matrix is data[r + c * ld].
    auto opA = [&](uint64_t r, uint64_t k) { // A' is m x k after op
      return p.transa ? B[k + r * p.lda] : B[r + k * p.lda];
    };
    auto opB = [&](uint64_t k, uint64_t c) { // B' is k x n after op
      return p.transb ? A[c + k * p.ldb] : A[k + c * p.ldb];
    };
    std::vector<long> D(M * N);
    for (uint64_t c = 0; c < p.n; ++c)
      for (uint64_t r = 0; r < p.m; ++r) {
        long sum = 0;
        for (uint64_t k = 0; k < p.k; ++k)
          sum += opA(r, k) * opB(k, c);
        D[r + c * p.ldc] = sum;
      }
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        long sum = 0;
        for (int64_t k = 0; k < K; ++k)
          sum += a(i, k) * b(k, j);
        EXPECT_EQ(D[i * N + j], sum) << "layout " << t << " at " << i << ","
                                     << j;
      }
  }
}

TEST(GemmLayout, PointerAlignment) {
  EXPECT_EQ(pointerAlignment(0), 256u);
  EXPECT_EQ(pointerAlignment(0x7f0000000000), 256u);
  EXPECT_EQ(pointerAlignment(0x7f0000000010), 16u);
  EXPECT_EQ(pointerAlignment(0x7f0000000102), 2u);
  EXPECT_EQ(pointerAlignment(0x7f0000000001), 1u);
  EXPECT_EQ(pointerAlignment(0x80), 128u);
}

TEST(GemmEpilogue, KernelNames) {
  EXPECT_STREQ(epilogueKernelName(GemmType::INT32, GemmType::BF16),
               "halo_gemm_epilogue_i32_bf16");
  EXPECT_STREQ(epilogueKernelName(GemmType::FP32, GemmType::FP32),
               "halo_gemm_epilogue_f32_f32");
  EXPECT_EQ(epilogueKernelName(GemmType::BF16, GemmType::BF16), nullptr);
}

/// NVRTC needs no driver: the epilogue module must compile for Hopper on
/// any build machine, and contain every kernel the engine looks up.
TEST(GemmEpilogue, CompilesForHopper) {
  halo::cuda::testing::TempDir cacheDir;
  halo::cuda::testing::ScopedEnv cacheEnv("HALO_CACHE_DIR", cacheDir.path());
  KernelSource source;
  source.name = "halo_gemm_epilogue";
  source.source = epilogueSource();
  CompileOptions options;
  options.arch = "sm_90";
  options.output = OutputKind::Ptx;
  options.useCache = false;
  halo::StatusOr<CompiledKernel> compiled = compileKernel(source, options);
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  for (GemmType acc : {GemmType::INT32, GemmType::FP32})
    for (GemmType out : {GemmType::BF16, GemmType::FP32})
      EXPECT_TRUE(contains(compiled->image,
                           std::string(".entry ") +
                               epilogueKernelName(acc, out)))
          << epilogueKernelName(acc, out);
  options.output = OutputKind::Cubin;
  compiled = compileKernel(source, options);
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  EXPECT_FALSE(compiled->image.empty());
}

TEST(GemmEngineStatic, CublasLtVersionWithoutGpu) {
  // cublasLtGetVersion needs no driver; outer-vector scales need >= 12.9.
  size_t version = GemmEngine::cublasLtVersion();
  EXPECT_GE(version, 120900u) << version;
}

} // namespace
