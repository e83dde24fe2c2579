//===- Gemm.cpp - GEMM descriptors, validation, layout mapping ------------===//
#include "runtime/cuda/blas/Gemm.h"

#include <fmt/format.h>

namespace halo::cuda {

const char *gemmTypeName(GemmType type) {
  switch (type) {
  case GemmType::FP8E4M3:
    return "fp8e4m3";
  case GemmType::INT8:
    return "int8";
  case GemmType::BF16:
    return "bf16";
  case GemmType::FP32:
    return "f32";
  case GemmType::INT32:
    return "i32";
  }
  return "?";
}

int gemmTypeSize(GemmType type) {
  switch (type) {
  case GemmType::FP8E4M3:
  case GemmType::INT8:
    return 1;
  case GemmType::BF16:
    return 2;
  case GemmType::FP32:
  case GemmType::INT32:
    return 4;
  }
  return 0;
}

const char *scaleModeName(ScaleMode mode, bool forB) {
  switch (mode) {
  case ScaleMode::None:
    return "none";
  case ScaleMode::PerTensor:
    return "tensor";
  case ScaleMode::PerRow:
    return forB ? "col" : "row";
  }
  return "?";
}

GemmDesc GemmDesc::quantized(GemmType format, int64_t M, int64_t N, int64_t K,
                             bool transA, bool transB, GemmType outType) {
  GemmDesc d;
  d.M = M;
  d.N = N;
  d.K = K;
  d.transA = transA;
  d.transB = transB;
  d.aType = d.bType = format;
  d.outType = outType;
  d.scaleA = d.scaleB = ScaleMode::PerTensor;
  return d;
}

GemmDesc GemmDesc::bf16(int64_t M, int64_t N, int64_t K, bool transA,
                        bool transB, GemmType outType) {
  GemmDesc d;
  d.M = M;
  d.N = N;
  d.K = K;
  d.transA = transA;
  d.transB = transB;
  d.aType = d.bType = GemmType::BF16;
  d.outType = outType;
  return d;
}

bool GemmDesc::operator==(const GemmDesc &o) const {
  return M == o.M && N == o.N && K == o.K && transA == o.transA &&
         transB == o.transB && aType == o.aType && bType == o.bType &&
         outType == o.outType && scaleA == o.scaleA && scaleB == o.scaleB &&
         accumulate == o.accumulate && fastAccum == o.fastAccum;
}

std::string describe(const GemmDesc &d) {
  std::string text = fmt::format(
      "{} x {} -> {}, M={} N={} K={}, A{} B{}, scales {}/{}",
      gemmTypeName(d.aType), gemmTypeName(d.bType), gemmTypeName(d.outType),
      d.M, d.N, d.K, d.transA ? "^T [K,M]" : " [M,K]",
      d.transB ? "^T [N,K]" : " [K,N]", scaleModeName(d.scaleA, false),
      scaleModeName(d.scaleB, true));
  if (d.accumulate)
    text += ", accumulate";
  if (d.fastAccum)
    text += ", fast-accum";
  return text;
}

int64_t bytesA(const GemmDesc &d) { return d.M * d.K * gemmTypeSize(d.aType); }
int64_t bytesB(const GemmDesc &d) { return d.K * d.N * gemmTypeSize(d.bType); }
int64_t bytesC(const GemmDesc &d) {
  return d.M * d.N * gemmTypeSize(d.outType);
}

static int64_t scaleElements(ScaleMode mode, int64_t extent) {
  switch (mode) {
  case ScaleMode::None:
    return 0;
  case ScaleMode::PerTensor:
    return 1;
  case ScaleMode::PerRow:
    return extent;
  }
  return 0;
}
int64_t scaleElementsA(const GemmDesc &d) {
  return scaleElements(d.scaleA, d.M);
}
int64_t scaleElementsB(const GemmDesc &d) {
  return scaleElements(d.scaleB, d.N);
}

double gemmFlops(const GemmDesc &d) {
  return 2.0 * double(d.M) * double(d.N) * double(d.K);
}

static bool isQuantized(GemmType t) {
  return t == GemmType::FP8E4M3 || t == GemmType::INT8;
}

Status validate(const GemmDesc &d) {
  auto fail = [&](const std::string &why) {
    return Status::error(
        fmt::format("unsupported GEMM ({}): {}", describe(d), why));
  };
  if (d.M <= 0 || d.N <= 0 || d.K <= 0)
    return fail("M, N and K must be positive");
  // cuBLASLt takes 64-bit sizes, but the epilogue kernels and leading
  // dimensions stay within int32 elements per matrix row/column.
  constexpr int64_t kMaxExtent = int64_t(1) << 31;
  if (d.M >= kMaxExtent || d.N >= kMaxExtent || d.K >= kMaxExtent)
    return fail("M, N and K must be below 2^31");
  if (d.aType != d.bType)
    return fail("mixed operand formats are not supported: A and B must both "
                "be fp8e4m3, both int8 or both bf16");
  switch (d.aType) {
  case GemmType::FP8E4M3:
    if (d.outType != GemmType::BF16 && d.outType != GemmType::FP32)
      return fail("an fp8e4m3 GEMM writes bf16 or f32");
    break;
  case GemmType::INT8:
    if (d.outType == GemmType::INT32) {
      if (d.scaleA != ScaleMode::None || d.scaleB != ScaleMode::None)
        return fail("an i32 output holds the raw accumulators: it takes no "
                    "scales (write bf16 or f32 to apply them)");
    } else if (d.outType != GemmType::BF16 && d.outType != GemmType::FP32) {
      return fail("an int8 GEMM writes bf16, f32 or i32");
    }
    if (d.K > kMaxInt8K)
      return fail(fmt::format("K = {} can overflow the int32 accumulators "
                              "(at most {} for 8-bit codes); split K",
                              d.K, kMaxInt8K));
    break;
  case GemmType::BF16:
    if (d.outType != GemmType::BF16 && d.outType != GemmType::FP32)
      return fail("a bf16 GEMM writes bf16 or f32");
    if (d.scaleA != ScaleMode::None || d.scaleB != ScaleMode::None)
      return fail("a bf16 GEMM takes no scales (scales belong to quantized "
                  "fp8e4m3/int8 operands)");
    break;
  default:
    return fail(fmt::format("operands of type {} are not supported (use "
                            "fp8e4m3, int8 or bf16)",
                            gemmTypeName(d.aType)));
  }
  if (d.fastAccum && d.aType != GemmType::FP8E4M3)
    return fail("fastAccum applies to fp8e4m3 GEMMs only");
  if (isQuantized(d.aType)) {
    if (d.K % 16 != 0)
      return fail(fmt::format("K = {} must be a multiple of 16 for 8-bit "
                              "operands (16-byte aligned rows); pad K with "
                              "zeros",
                              d.K));
    if (d.N % 16 != 0)
      return fail(fmt::format("N = {} must be a multiple of 16 for 8-bit "
                              "operands (16-byte aligned rows of B and C)",
                              d.N));
    if (d.transA && d.M % 16 != 0)
      return fail(fmt::format("M = {} must be a multiple of 16 when A is "
                              "stored transposed [K,M]",
                              d.M));
  }
  return Status::success();
}

Status nativeLayoutError(const GemmDesc &d, int ccMajor, int ccMinor) {
  if (d.aType != GemmType::FP8E4M3 && d.aType != GemmType::INT8)
    return Status::success();
  // Blackwell's FP8 kernels take every layout.
  if (d.aType == GemmType::FP8E4M3 && ccMajor >= 10)
    return Status::success();
  if (!d.transA && d.transB)
    return Status::success();
  std::string fix;
  if (d.transA && !d.transB)
    fix = "store A as [M,K] and B as [N,K] (transpose both)";
  else if (d.transA)
    fix = "store A as [M,K] (transpose A)";
  else
    fix = "store B as [N,K] (transpose B)";
  // INT8 in the other forms is correct but runs on cuBLASLt's slow
  // non-IMMA kernels (~130 TOP/s against ~1400 in TN on an H100).
  const char *why =
      d.aType == GemmType::FP8E4M3
          ? "cuBLASLt runs fp8e4m3 GEMMs only"
          : "cuBLASLt runs int8 GEMMs fast (IMMA, ~10x the other forms) only";
  return Status::error(fmt::format(
      "unsupported GEMM layout ({}): on sm_{}{} {} with both operands "
      "K-contiguous (row-major A [M,K], B [N,K]: transA=false, "
      "transB=true; cuBLASLt's \"TN\" form); {} when quantizing",
      describe(d), ccMajor, ccMinor, why, fix));
}

std::string LtProblem::form() const {
  return std::string(transa ? "T" : "N") + (transb ? "T" : "N");
}

LtProblem mapToColumnMajor(const GemmDesc &d) {
  LtProblem p;
  p.m = uint64_t(d.N);
  p.n = uint64_t(d.M);
  p.k = uint64_t(d.K);
  // A' = B as stored; row-major [R,C] is column-major C x R with ld C.
  p.transa = d.transB;
  if (d.transB) { // stored [N,K]
    p.aRows = uint64_t(d.K);
    p.aCols = uint64_t(d.N);
    p.lda = d.K;
  } else { // stored [K,N]
    p.aRows = uint64_t(d.N);
    p.aCols = uint64_t(d.K);
    p.lda = d.N;
  }
  // B' = A as stored.
  p.transb = d.transA;
  if (d.transA) { // stored [K,M]
    p.bRows = uint64_t(d.M);
    p.bCols = uint64_t(d.K);
    p.ldb = d.M;
  } else { // stored [M,K]
    p.bRows = uint64_t(d.K);
    p.bCols = uint64_t(d.M);
    p.ldb = d.K;
  }
  p.cRows = uint64_t(d.N);
  p.cCols = uint64_t(d.M);
  p.ldc = d.N;
  return p;
}

unsigned pointerAlignment(uint64_t address) {
  if (address == 0)
    return 256;
  unsigned alignment = 1;
  while (alignment < 256 && address % (alignment * 2) == 0)
    alignment *= 2;
  return alignment;
}

} // namespace halo::cuda
