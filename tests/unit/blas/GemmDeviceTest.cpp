//===- GemmDeviceTest.cpp - GemmEngine against a float64 reference -------===//
//
// Skipped without a driver. On a GPU, every supported combination runs on
// random data with outliers (1% of the values x40 before quantization, so
// FP8 codes span subnormals to +-448 and INT8 codes reach +-127) and is
// compared with a float64 reference computed from the exact operand values
// (FP8/INT8 codes and BF16 values are exact inputs; the reference applies
// the scales in float64 afterwards).
//
// Tolerance, per element, with s = |sA_i sB_j|, dot = sum_k a_ik b_kj,
// abs = sum_k |a_ik b_kj| (both exact in float64) and p = dot * sA_i * sB_j:
//   accumulation: abs * s * e_acc, where
//     INT8: e_acc = 0 (INT32 accumulation is exact; K <= 131071),
//     BF16: e_acc = K * 2^-23 + 2^-16 (each product is exact in FP32; every
//           FP32 addition, in any order, errs by at most 2^-23 relative to
//           a partial sum bounded by abs: K additions),
//     FP8:  e_acc = K * 2^-23 + 2^-9. Hopper's FP8 tensor cores do not add
//           in FP32: inside each MMA the products are aligned to the
//           largest and kept to ~13-14 bits before cuBLASLt promotes the
//           partial sums to FP32 registers. The rigorous worst case of that
//           (32 truncations per MMA) is ~2^-7 * abs; measured on an H100
//           (cuBLASLt 13.1, K = 128 ... 14336, ~70k elements with outliers)
//           the worst was 8.3e-4 * abs, so 2^-9 = 1.95e-3 keeps a 2.3x
//           margin. With fastAccum the whole reduction stays inside the
//           tensor core: e_acc = (K/32 + 1) * 2^-13.
//   scaling: 4 * 2^-24 * |p| (int->float conversion, sA*sB, product),
//   output: BF16 2^-8 (half an ulp is at most 2^-8 of the value), FP32
//           2^-23, times (|ref| + the above). cuBLASLt's FP8 kernels that
//           accumulate into a BF16 C round p to BF16 before adding C (seen
//           on the H100 as errors up to half an ulp of |p| when p and C
//           cancel), so that case adds 2^-8 |p|.
// Even at K = 14336 the FP8 bound (3.7e-3 * abs * s) is far below the
// O(|ref|) error of a wrong index, layout or scale mapping. Each case prints
// its max |err| / tol (and max |err| / (abs * s)) so the margin is visible.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"
#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/blas/GemmEngine.h"
#include "runtime/numerics/Float8.h"

#include "tests/unit/cuda/TestUtil.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <vector>

using namespace halo;
using namespace halo::cuda;
namespace num = halo::numerics;

namespace {

/// One operand as stored: raw bytes for the device and the exact values.
struct HostMatrix {
  GemmType type = GemmType::BF16;
  std::vector<uint8_t> bytes;
  std::vector<double> values;
  /// The per-tensor quantization scale (1 for BF16).
  float scale = 1;
};

HostMatrix makeMatrix(GemmType type, int64_t count, std::mt19937 &rng) {
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(0, 1);
  std::vector<float> x(static_cast<size_t>(count));
  float absmax = 0;
  for (float &v : x) {
    v = normal(rng);
    if (uniform(rng) < 0.01f)
      v *= 40.0f;
    absmax = std::max(absmax, std::fabs(v));
  }
  HostMatrix m;
  m.type = type;
  m.bytes.resize(size_t(count) * size_t(gemmTypeSize(type)));
  m.values.resize(size_t(count));
  if (type == GemmType::FP8E4M3) {
    m.scale = num::quantScale(absmax, num::QuantFormat::FP8E4M3);
    for (size_t i = 0; i < x.size(); ++i) {
      uint8_t code = num::floatToE4M3(x[i] / m.scale);
      m.bytes[i] = code;
      m.values[i] = num::e4m3ToFloat(code);
    }
  } else if (type == GemmType::INT8) {
    m.scale = num::quantScale(absmax, num::QuantFormat::INT8);
    for (size_t i = 0; i < x.size(); ++i) {
      int8_t code = num::floatToInt8(x[i] / m.scale);
      std::memcpy(&m.bytes[i], &code, 1);
      m.values[i] = code;
    }
  } else {
    for (size_t i = 0; i < x.size(); ++i) {
      uint16_t bits = num::floatToBF16(x[i]);
      std::memcpy(&m.bytes[2 * i], &bits, 2);
      m.values[i] = num::bf16ToFloat(bits);
    }
  }
  return m;
}

/// Scale values for a mode: empty (None), one, or `extent` distinct values
/// around `base` (so a swapped or transposed scale vector fails).
std::vector<float> makeScales(ScaleMode mode, int64_t extent, float base,
                              std::mt19937 &rng) {
  std::uniform_real_distribution<float> uniform(0.5f, 2.0f);
  std::vector<float> scales;
  if (mode == ScaleMode::PerTensor)
    scales.push_back(base * uniform(rng));
  else if (mode == ScaleMode::PerRow)
    for (int64_t i = 0; i < extent; ++i)
      scales.push_back(base * uniform(rng));
  return scales;
}

/// An initial C for accumulation tests: random values of the output type.
std::vector<uint8_t> makeOutput(GemmType type, int64_t count, double magnitude,
                                std::mt19937 &rng) {
  std::normal_distribution<double> normal(0, magnitude);
  std::vector<uint8_t> bytes(size_t(count) * size_t(gemmTypeSize(type)));
  for (int64_t i = 0; i < count; ++i) {
    double v = normal(rng);
    if (type == GemmType::BF16) {
      uint16_t bits = num::floatToBF16(float(v));
      std::memcpy(&bytes[size_t(i) * 2], &bits, 2);
    } else if (type == GemmType::FP32) {
      float f = float(v);
      std::memcpy(&bytes[size_t(i) * 4], &f, 4);
    } else {
      int32_t n = int32_t(std::lround(v));
      std::memcpy(&bytes[size_t(i) * 4], &n, 4);
    }
  }
  return bytes;
}

double decode(GemmType type, const std::vector<uint8_t> &bytes, size_t i) {
  if (type == GemmType::BF16) {
    uint16_t bits;
    std::memcpy(&bits, &bytes[i * 2], 2);
    return num::bf16ToFloat(bits);
  }
  if (type == GemmType::FP32) {
    float f;
    std::memcpy(&f, &bytes[i * 4], 4);
    return f;
  }
  int32_t n;
  std::memcpy(&n, &bytes[i * 4], 4);
  return n;
}

/// The exact products of a problem: dot and |.|-dot in float64.
struct Reference {
  std::vector<double> dot, abs;
};

Reference reference(const GemmDesc &d, const HostMatrix &a,
                    const HostMatrix &b) {
  Reference r;
  r.dot.assign(size_t(d.M * d.N), 0);
  r.abs.assign(size_t(d.M * d.N), 0);
  cpu::matmul<double>(a.values.data(), b.values.data(), r.dot.data(), d.M,
                      d.N, d.K, d.transA, d.transB);
  std::vector<double> absA(a.values.size()), absB(b.values.size());
  for (size_t i = 0; i < absA.size(); ++i)
    absA[i] = std::fabs(a.values[i]);
  for (size_t i = 0; i < absB.size(); ++i)
    absB[i] = std::fabs(b.values[i]);
  cpu::matmul<double>(absA.data(), absB.data(), r.abs.data(), d.M, d.N, d.K,
                      d.transA, d.transB);
  return r;
}

struct Comparison {
  double maxRatio = 0;  ///< max |err| / tol
  double maxRelErr = 0; ///< max |err| / (abs * s), the accumulation error
  int64_t failures = 0;
  std::string first;
};

/// `roundsProduct`: the GEMM rounds p to the output type before adding the
/// old C (cuBLASLt's native FP8 path with accumulate and a BF16 C).
Comparison compare(const GemmDesc &d, const Reference &ref,
                   const std::vector<float> &sA, const std::vector<float> &sB,
                   const std::vector<uint8_t> &oldC,
                   const std::vector<uint8_t> &got,
                   bool roundsProduct = false) {
  const double u = std::ldexp(1.0, -24);
  double eAcc = 0;
  if (d.aType == GemmType::BF16)
    eAcc = double(d.K) * 2 * u + std::ldexp(1.0, -16);
  else if (d.aType == GemmType::FP8E4M3)
    eAcc = d.fastAccum ? (double(d.K) / 32 + 1) * std::ldexp(1.0, -13)
                       : double(d.K) * 2 * u + std::ldexp(1.0, -9);
  const double eOut = d.outType == GemmType::BF16 ? std::ldexp(1.0, -8)
                      : d.outType == GemmType::FP32 ? 2 * u
                                                    : 0;
  Comparison c;
  for (int64_t i = 0; i < d.M; ++i)
    for (int64_t j = 0; j < d.N; ++j) {
      size_t at = size_t(i * d.N + j);
      double a = sA.empty() ? 1 : sA[sA.size() == 1 ? 0 : size_t(i)];
      double b = sB.empty() ? 1 : sB[sB.size() == 1 ? 0 : size_t(j)];
      double s = std::fabs(a * b);
      double expected = ref.dot[at] * a * b;
      if (d.accumulate)
        expected += decode(d.outType, oldC, at);
      double value = decode(d.outType, got, at);
      double err = std::fabs(value - expected);
      double accErr = ref.abs[at] * s * eAcc + 4 * u * std::fabs(ref.dot[at]) * s;
      double tol = accErr + eOut * (std::fabs(expected) + accErr);
      if (roundsProduct)
        tol += eOut * std::fabs(ref.dot[at] * a * b);
      if (d.outType == GemmType::INT32)
        tol = 0;
      double ratio = err == 0 ? 0 : tol == 0 ? INFINITY : err / tol;
      if (!std::isfinite(value))
        ratio = INFINITY;
      c.maxRatio = std::max(c.maxRatio, ratio);
      if (ref.abs[at] > 0)
        c.maxRelErr = std::max(c.maxRelErr, err / (ref.abs[at] * s));
      if (!(ratio <= 1)) {
        if (c.failures++ == 0)
          c.first = fmt::format("C[{},{}] = {} expected {} (tol {})", i, j,
                                value, expected, tol);
      }
    }
  return c;
}

class GemmDeviceTest : public ::testing::Test {
protected:
  void SetUp() override {
    StatusOr<const CudaDriver *> loaded = CudaDriver::load();
    if (!loaded.ok())
      GTEST_SKIP() << "no CUDA driver: " << loaded.status().message();
    driver = *loaded;
    StatusOr<CudaContext> created = CudaContext::create(*driver, 0);
    ASSERT_TRUE(created.ok()) << created.status().message();
    context.emplace(std::move(*created));
    ASSERT_EQ(driver->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
              CUDA_SUCCESS);
    // Every GEMM tuned, so that the tuned algorithms of all types are
    // checked against the bounds (the default tunes INT8 only).
    engine = makeEngine(tuneAll());
    ASSERT_NE(engine, nullptr);
  }
  void TearDown() override {
    engine.reset();
    if (stream)
      driver->cuStreamDestroy(stream);
  }

  static GemmEngineOptions tuneAll() {
    GemmEngineOptions options;
    options.autotune = GemmAutotune::All;
    return options;
  }

  std::unique_ptr<GemmEngine> makeEngine(GemmEngineOptions options) {
    StatusOr<std::unique_ptr<GemmEngine>> made =
        GemmEngine::create(*context, options);
    EXPECT_TRUE(made.ok()) << made.status().message();
    return made.ok() ? std::move(*made) : nullptr;
  }

  DeviceBuffer upload(const void *data, size_t bytes) {
    StatusOr<DeviceBuffer> buffer =
        DeviceBuffer::allocate(*driver, std::max<size_t>(bytes, 256));
    EXPECT_TRUE(buffer.ok()) << buffer.status().message();
    if (bytes)
      EXPECT_TRUE(buffer->copyFromHost(data, bytes).ok());
    return std::move(*buffer);
  }

  /// Runs `d` on device copies of a, b (and scales, and C when
  /// accumulating) and returns C. `offset` shifts A, B and C by that many
  /// bytes inside their allocations (alignment tests).
  StatusOr<std::vector<uint8_t>>
  runGemm(GemmEngine &e, const GemmDesc &d, const HostMatrix &a,
          const HostMatrix &b, const std::vector<float> &sA,
          const std::vector<float> &sB, const std::vector<uint8_t> &oldC,
          size_t offset = 0) {
    auto padded = [&](const std::vector<uint8_t> &bytes) {
      std::vector<uint8_t> out(offset + bytes.size());
      std::memcpy(out.data() + offset, bytes.data(), bytes.size());
      return out;
    };
    std::vector<uint8_t> hostA = padded(a.bytes), hostB = padded(b.bytes);
    size_t cBytes = size_t(bytesC(d));
    std::vector<uint8_t> hostC = d.accumulate
                                     ? padded(oldC)
                                     : std::vector<uint8_t>(offset + cBytes,
                                                            0xFF); // NaN
    DeviceBuffer A = upload(hostA.data(), hostA.size());
    DeviceBuffer B = upload(hostB.data(), hostB.size());
    DeviceBuffer C = upload(hostC.data(), hostC.size());
    DeviceBuffer SA = upload(sA.data(), sA.size() * 4);
    DeviceBuffer SB = upload(sB.data(), sB.size() * 4);
    GemmOperands ops;
    ops.a = A.pointer() + offset;
    ops.b = B.pointer() + offset;
    ops.c = C.pointer() + offset;
    ops.scaleA = sA.empty() ? 0 : SA.pointer();
    ops.scaleB = sB.empty() ? 0 : SB.pointer();
    HALO_RETURN_IF_ERROR(e.run(d, ops, stream));
    HALO_CU_RETURN_IF_ERROR(*driver, cuStreamSynchronize(stream));
    std::vector<uint8_t> result(offset + cBytes);
    HALO_RETURN_IF_ERROR(C.copyToHost(result.data(), result.size()));
    return std::vector<uint8_t>(result.begin() + long(offset), result.end());
  }

  /// Runs and compares one case; prints the margin.
  void check(GemmEngine &e, const GemmDesc &d, const HostMatrix &a,
             const HostMatrix &b, const Reference &ref, std::mt19937 &rng) {
    SCOPED_TRACE(describe(d));
    std::vector<float> sA = makeScales(d.scaleA, d.M, a.scale, rng);
    std::vector<float> sB = makeScales(d.scaleB, d.N, b.scale, rng);
    double typical = 1;
    for (size_t i = 0; i < std::min<size_t>(ref.dot.size(), 64); ++i)
      typical = std::max(typical, std::fabs(ref.dot[i]));
    typical *= (sA.empty() ? 1 : sA[0]) * (sB.empty() ? 1 : sB[0]);
    std::vector<uint8_t> oldC =
        d.accumulate ? makeOutput(d.outType, d.M * d.N, typical, rng)
                     : std::vector<uint8_t>();
    // prepare() first: run() alone would not autotune, and the tuned
    // algorithms must meet the same bounds.
    ASSERT_TRUE(e.prepare(d).ok());
    StatusOr<std::vector<uint8_t>> got = runGemm(e, d, a, b, sA, sB, oldC);
    ASSERT_TRUE(got.ok()) << got.status().message();
    StatusOr<GemmPlanInfo> info = e.planInfo(d);
    ASSERT_TRUE(info.ok()) << info.status().message();
    bool roundsProduct = info->path == GemmPath::Native &&
                         d.aType == GemmType::FP8E4M3 && d.accumulate &&
                         d.outType == GemmType::BF16;
    Comparison c = compare(d, ref, sA, sB, oldC, *got, roundsProduct);
    std::printf("[gemm] %-90s | %-60s | max err/tol %.3g, max err/(abs*s) "
                "%.3g\n",
                describe(d).c_str(), info->text.c_str(),
                c.maxRatio, c.maxRelErr);
    EXPECT_EQ(c.failures, 0) << c.first;
  }

  const CudaDriver *driver = nullptr;
  std::optional<CudaContext> context;
  CUstream stream = nullptr;
  std::unique_ptr<GemmEngine> engine;
  halo::cuda::testing::TempDir cacheDir;
  halo::cuda::testing::ScopedEnv cacheEnv{"HALO_CACHE_DIR", cacheDir.path()};
};

struct Shape {
  int64_t M, N, K;
};

/// FP8 and INT8 in the native TN layout: every scale mix, output and
/// accumulation, at a small shape and at K = 14336.
TEST_F(GemmDeviceTest, QuantizedTn) {
  std::mt19937 rng(1234);
  for (GemmType format : {GemmType::FP8E4M3, GemmType::INT8})
    for (Shape s : {Shape{200, 96, 14336}, Shape{64, 48, 272}}) {
      GemmDesc base = GemmDesc::quantized(format, s.M, s.N, s.K);
      HostMatrix a = makeMatrix(format, s.M * s.K, rng);
      HostMatrix b = makeMatrix(format, s.N * s.K, rng);
      Reference ref = reference(base, a, b);
      for (GemmType out : {GemmType::BF16, GemmType::FP32})
        for (auto [sa, sb] : {std::pair{ScaleMode::PerTensor,
                                        ScaleMode::PerTensor},
                              std::pair{ScaleMode::PerRow, ScaleMode::PerRow},
                              std::pair{ScaleMode::None, ScaleMode::None},
                              std::pair{ScaleMode::PerRow,
                                        ScaleMode::PerTensor}})
          for (bool accumulate : {false, true}) {
            GemmDesc d = base;
            d.outType = out;
            d.scaleA = sa;
            d.scaleB = sb;
            d.accumulate = accumulate;
            check(*engine, d, a, b, ref, rng);
          }
      if (format == GemmType::INT8)
        for (bool accumulate : {false, true}) {
          GemmDesc d = base;
          d.outType = GemmType::INT32;
          d.scaleA = d.scaleB = ScaleMode::None;
          d.accumulate = accumulate;
          check(*engine, d, a, b, ref, rng);
        }
    }
}

/// Per-row FP8 scales through the epilogue path (forced) agree with the
/// reference too, as does fast accumulation (looser bound).
TEST_F(GemmDeviceTest, Fp8EpiloguePathAndFastAccum) {
  GemmEngineOptions options;
  options.outerVectorScales = false;
  std::unique_ptr<GemmEngine> epilogueEngine = makeEngine(options);
  ASSERT_NE(epilogueEngine, nullptr);
  std::mt19937 rng(99);
  GemmDesc base = GemmDesc::quantized(GemmType::FP8E4M3, 128, 256, 4096);
  HostMatrix a = makeMatrix(GemmType::FP8E4M3, base.M * base.K, rng);
  HostMatrix b = makeMatrix(GemmType::FP8E4M3, base.N * base.K, rng);
  Reference ref = reference(base, a, b);
  for (GemmType out : {GemmType::BF16, GemmType::FP32})
    for (bool accumulate : {false, true}) {
      GemmDesc d = base;
      d.outType = out;
      d.scaleA = d.scaleB = ScaleMode::PerRow;
      d.accumulate = accumulate;
      check(*epilogueEngine, d, a, b, ref, rng);
      StatusOr<GemmPlanInfo> info = epilogueEngine->planInfo(d);
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->path, GemmPath::Epilogue);
    }
  GemmDesc fast = base;
  fast.fastAccum = true;
  check(*engine, fast, a, b, ref, rng);
}

/// BF16 in all four layouts, both outputs, with and without accumulation.
TEST_F(GemmDeviceTest, Bf16AllLayouts) {
  std::mt19937 rng(7);
  for (Shape s : {Shape{33, 17, 45}, Shape{128, 192, 4096}})
    for (int t = 0; t < 4; ++t) {
      GemmDesc base = GemmDesc::bf16(s.M, s.N, s.K, t & 2, t & 1);
      HostMatrix a = makeMatrix(GemmType::BF16, s.M * s.K, rng);
      HostMatrix b = makeMatrix(GemmType::BF16, s.N * s.K, rng);
      Reference ref = reference(base, a, b);
      for (GemmType out : {GemmType::BF16, GemmType::FP32})
        for (bool accumulate : {false, true}) {
          GemmDesc d = base;
          d.outType = out;
          d.accumulate = accumulate;
          check(*engine, d, a, b, ref, rng);
        }
    }
}

/// Non-TN 8-bit layouts are rejected with the documented message; with the
/// check off, report what this cuBLASLt actually does with them.
TEST_F(GemmDeviceTest, NonTnQuantizedLayouts) {
  GemmEngineOptions probeOptions;
  probeOptions.checkLayouts = false;
  std::unique_ptr<GemmEngine> probe = makeEngine(probeOptions);
  ASSERT_NE(probe, nullptr);
  std::mt19937 rng(5);
  for (GemmType format : {GemmType::FP8E4M3, GemmType::INT8})
    for (GemmType out : {GemmType::BF16, GemmType::INT32}) {
      if (format == GemmType::FP8E4M3 && out == GemmType::INT32)
        continue;
      for (int t = 0; t < 4; ++t) {
        GemmDesc d = GemmDesc::quantized(format, 64, 96, 128, t & 2, t & 1,
                                         out);
        if (out == GemmType::INT32)
          d.scaleA = d.scaleB = ScaleMode::None;
        Status expected = nativeLayoutError(d, context->info().ccMajor,
                                            context->info().ccMinor);
        Status prepared = engine->prepare(d);
        EXPECT_EQ(prepared.ok(), expected.ok()) << prepared.message();
        if (!expected.ok())
          EXPECT_EQ(prepared.message(), expected.message());
        // The probe: does cuBLASLt run it, and correctly?
        HostMatrix a = makeMatrix(format, d.M * d.K, rng);
        HostMatrix b = makeMatrix(format, d.N * d.K, rng);
        Reference ref = reference(d, a, b);
        std::vector<float> sA = makeScales(d.scaleA, d.M, a.scale, rng);
        std::vector<float> sB = makeScales(d.scaleB, d.N, b.scale, rng);
        StatusOr<std::vector<uint8_t>> got =
            runGemm(*probe, d, a, b, sA, sB, {});
        std::string verdict;
        if (!got.ok()) {
          verdict = "cuBLASLt refuses: " + got.status().message();
        } else {
          Comparison c = compare(d, ref, sA, sB, {}, *got);
          verdict = c.failures ? "runs but WRONG: " + c.first
                               : fmt::format("runs correctly (err/tol {:.3g})",
                                             c.maxRatio);
        }
        std::printf("[probe] %s %s -> %s: %s\n", gemmTypeName(format),
                    mapToColumnMajor(d).form().c_str(), gemmTypeName(out),
                    verdict.substr(0, 300).c_str());
      }
    }
}

/// run() after prepare() records into a CUDA graph without allocating, and
/// the replayed graph reproduces the eager results bit for bit.
TEST_F(GemmDeviceTest, GraphCapture) {
  std::mt19937 rng(42);
  struct Case {
    GemmDesc desc;
    HostMatrix a, b;
    std::vector<float> sA, sB;
    std::optional<DeviceBuffer> A, B, C, SA, SB;
    std::vector<uint8_t> eager;
  };
  std::vector<Case> cases(4);
  cases[0].desc = GemmDesc::quantized(GemmType::FP8E4M3, 256, 512, 1024);
  cases[1].desc = GemmDesc::quantized(GemmType::INT8, 256, 512, 1024);
  cases[2].desc = GemmDesc::bf16(256, 512, 1024, true, false);
  cases[3].desc = GemmDesc::quantized(GemmType::FP8E4M3, 256, 512, 1024);
  cases[3].desc.scaleA = cases[3].desc.scaleB = ScaleMode::PerRow;
  for (Case &c : cases) {
    const GemmDesc &d = c.desc;
    c.a = makeMatrix(d.aType, d.M * d.K, rng);
    c.b = makeMatrix(d.bType, d.N * d.K, rng);
    c.sA = makeScales(d.scaleA, d.M, c.a.scale, rng);
    c.sB = makeScales(d.scaleB, d.N, c.b.scale, rng);
    c.A.emplace(upload(c.a.bytes.data(), c.a.bytes.size()));
    c.B.emplace(upload(c.b.bytes.data(), c.b.bytes.size()));
    std::vector<uint8_t> zero(size_t(bytesC(d)), 0);
    c.C.emplace(upload(zero.data(), zero.size()));
    c.SA.emplace(upload(c.sA.data(), c.sA.size() * 4));
    c.SB.emplace(upload(c.sB.data(), c.sB.size() * 4));
  }
  auto operands = [](Case &c) {
    GemmOperands ops;
    ops.a = c.A->pointer();
    ops.b = c.B->pointer();
    ops.c = c.C->pointer();
    ops.scaleA = c.sA.empty() ? 0 : c.SA->pointer();
    ops.scaleB = c.sB.empty() ? 0 : c.SB->pointer();
    return ops;
  };
  for (Case &c : cases) {
    GemmOperands ops = operands(c);
    ASSERT_TRUE(engine->prepare(c.desc, &ops).ok());
    ASSERT_TRUE(engine->run(c.desc, ops, stream).ok());
  }
  ASSERT_EQ(driver->cuStreamSynchronize(stream), CUDA_SUCCESS);
  for (Case &c : cases) {
    c.eager.resize(size_t(bytesC(c.desc)));
    ASSERT_TRUE(c.C->copyToHost(c.eager.data(), c.eager.size()).ok());
    ASSERT_EQ(driver->cuMemsetD8(c.C->pointer(), 0, c.eager.size()),
              CUDA_SUCCESS);
  }
  size_t plans = engine->planCount(), scratch = engine->scratchBytes();

  CUgraph graph = nullptr;
  ASSERT_EQ(driver->cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL),
            CUDA_SUCCESS);
  for (Case &c : cases) {
    Status status = engine->run(c.desc, operands(c), stream);
    EXPECT_TRUE(status.ok()) << status.message();
  }
  ASSERT_EQ(driver->cuStreamEndCapture(stream, &graph), CUDA_SUCCESS);
  EXPECT_EQ(engine->planCount(), plans);
  EXPECT_EQ(engine->scratchBytes(), scratch);
  CUgraphExec exec = nullptr;
  ASSERT_EQ(driver->cuGraphInstantiateWithFlags(&exec, graph, 0),
            CUDA_SUCCESS);
  for (int replay = 0; replay < 2; ++replay)
    ASSERT_EQ(driver->cuGraphLaunch(exec, stream), CUDA_SUCCESS);
  ASSERT_EQ(driver->cuStreamSynchronize(stream), CUDA_SUCCESS);
  for (Case &c : cases) {
    std::vector<uint8_t> replayed(c.eager.size());
    ASSERT_TRUE(c.C->copyToHost(replayed.data(), replayed.size()).ok());
    EXPECT_TRUE(replayed == c.eager) << describe(c.desc);
  }
  driver->cuGraphExecDestroy(exec);
  driver->cuGraphDestroy(graph);
}

/// One plan per descriptor and alignment class; a 16-byte aligned operand
/// gets its own (correct) plan; misuse gives precise errors.
TEST_F(GemmDeviceTest, PlansAndErrors) {
  std::mt19937 rng(3);
  GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, 64, 64, 64);
  ASSERT_TRUE(engine->prepare(d).ok());
  ASSERT_TRUE(engine->prepare(d).ok());
  EXPECT_EQ(engine->planCount(), 1u);
  HostMatrix a = makeMatrix(d.aType, d.M * d.K, rng);
  HostMatrix b = makeMatrix(d.bType, d.N * d.K, rng);
  Reference ref = reference(d, a, b);
  std::vector<float> sA = makeScales(d.scaleA, d.M, a.scale, rng);
  std::vector<float> sB = makeScales(d.scaleB, d.N, b.scale, rng);
  StatusOr<std::vector<uint8_t>> got = runGemm(*engine, d, a, b, sA, sB, {});
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(engine->planCount(), 1u);
  got = runGemm(*engine, d, a, b, sA, sB, {}, 16);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(engine->planCount(), 2u);
  EXPECT_EQ(compare(d, ref, sA, sB, {}, *got).failures, 0);

  // 8-bit operands must be 16-byte aligned.
  got = runGemm(*engine, d, a, b, sA, sB, {}, 8);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("must be 16-byte aligned"),
            std::string::npos)
      << got.status().message();

  GemmOperands ops;
  Status status = engine->run(d, ops, stream);
  EXPECT_NE(status.message().find("one is null"), std::string::npos)
      << status.message();
  DeviceBuffer buffer = upload(nullptr, 0);
  ops.a = ops.b = ops.c = buffer.pointer();
  status = engine->run(d, ops, stream);
  EXPECT_NE(status.message().find("scaleA must be a device pointer"),
            std::string::npos)
      << status.message();
  GemmDesc bf = GemmDesc::bf16(16, 16, 16);
  ops.scaleA = buffer.pointer();
  status = engine->run(bf, ops, stream);
  EXPECT_NE(status.message().find("scaleA must be 0"), std::string::npos)
      << status.message();
  GemmDesc bad = GemmDesc::quantized(GemmType::FP8E4M3, 64, 64, 40);
  status = engine->prepare(bad);
  EXPECT_NE(status.message().find("K = 40 must be a multiple of 16"),
            std::string::npos)
      << status.message();
}

/// Autotuning: a fresh engine times the candidates and stores its choice;
/// the next one reuses it without timing; a corrupt entry is retuned with
/// a warning; HALO_GEMM_AUTOTUNE overrides the options; by default only
/// INT8 GEMMs are tuned.
TEST_F(GemmDeviceTest, Autotune) {
  // Large enough for several candidates, small enough to tune quickly.
  GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, 2048, 2048, 4096);
  auto plan = [&](GemmEngine &e) {
    StatusOr<GemmPlanInfo> info = e.planInfo(d);
    EXPECT_TRUE(info.ok()) << info.status().message();
    std::printf("[gemm] autotune: %s\n", info.ok() ? info->text.c_str() : "");
    return info.ok() ? *info : GemmPlanInfo();
  };
  GemmPlanInfo tuned = plan(*engine); // tuneAll()
  if (tuned.choice == "heuristic")
    GTEST_SKIP() << "cuBLASLt offers a single candidate here";
  EXPECT_EQ(tuned.choice, "tuned");
  EXPECT_GT(tuned.candidates, 1);
  EXPECT_GT(tuned.tunedMs, 0);
  EXPECT_LE(tuned.tunedMs, tuned.heuristicMs);

  auto entries = [&] {
    std::vector<std::string> found;
    for (const auto &entry :
         std::filesystem::directory_iterator(cacheDir.path())) {
      std::ifstream in(entry.path(), std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)),
                        std::istreambuf_iterator<char>());
      if (bytes.find("halo-gemm-tune") != std::string::npos)
        found.push_back(entry.path().string());
    }
    return found;
  };
  ASSERT_EQ(entries().size(), 1u);

  std::unique_ptr<GemmEngine> second = makeEngine(tuneAll());
  GemmPlanInfo cached = plan(*second);
  EXPECT_EQ(cached.choice, "cached");
  EXPECT_EQ(cached.candidate, tuned.candidate);
  EXPECT_EQ(cached.algoId, tuned.algoId);
  EXPECT_EQ(cached.tileId, tuned.tileId);
  EXPECT_EQ(cached.stagesId, tuned.stagesId);

  // A torn entry: ignored (with a warning on stderr), tuned and rewritten.
  std::string path = entries()[0];
  std::filesystem::resize_file(path, 60);
  std::unique_ptr<GemmEngine> third = makeEngine(tuneAll());
  EXPECT_EQ(plan(*third).choice, "tuned");
  EXPECT_EQ(plan(*makeEngine(tuneAll())).choice, "cached");

  // The default tunes INT8 only; the environment overrides the options.
  EXPECT_EQ(plan(*makeEngine({})).choice, "heuristic");
  {
    halo::cuda::testing::ScopedEnv off{"HALO_GEMM_AUTOTUNE", "0"};
    GemmPlanInfo heuristic = plan(*makeEngine(tuneAll()));
    EXPECT_EQ(heuristic.choice, "heuristic");
    EXPECT_EQ(heuristic.candidate, 0);
  }
  {
    halo::cuda::testing::ScopedEnv on{"HALO_GEMM_AUTOTUNE", "1"};
    EXPECT_EQ(plan(*makeEngine({})).choice, "cached");
  }
  {
    halo::cuda::testing::ScopedEnv bad{"HALO_GEMM_AUTOTUNE", "maybe"};
    StatusOr<std::unique_ptr<GemmEngine>> made = GemmEngine::create(*context);
    ASSERT_FALSE(made.ok());
    EXPECT_NE(made.status().message().find("HALO_GEMM_AUTOTUNE='maybe'"),
              std::string::npos)
        << made.status().message();
  }

  // run() of an unprepared descriptor does not tune (it may be capturing).
  std::unique_ptr<GemmEngine> lazy = makeEngine(tuneAll());
  std::mt19937 rng(5);
  HostMatrix a = makeMatrix(d.aType, d.M * d.K, rng);
  HostMatrix b = makeMatrix(d.bType, d.N * d.K, rng);
  std::vector<float> sA = makeScales(d.scaleA, d.M, a.scale, rng);
  std::vector<float> sB = makeScales(d.scaleB, d.N, b.scale, rng);
  ASSERT_TRUE(runGemm(*lazy, d, a, b, sA, sB, {}).ok());
  EXPECT_EQ(plan(*lazy).choice, "heuristic");
}

} // namespace
