//===- QuantTest.cpp - hadamard, quantize, dequantize, qmatmul ------------===//
//
// The HALO ops against the shared numerics: codes and scales must equal
// quantScale / quantizeValue applied by hand for both formats and all three
// granularities, qmatmul must equal the scaled product of the codes, and
// Hadamard rotations must match the dense matrix and undo each other.
//
//===----------------------------------------------------------------------===//
#include "InterpTestUtil.h"

#include "runtime/numerics/Float8.h"
#include "runtime/numerics/Hadamard.h"

#include <algorithm>
#include <cmath>

namespace halo::cpu::test {
namespace {

using numerics::QuantFormat;

struct QuantCase {
  const char *type;
  QuantFormat format;
  const char *granularity;
};

class QuantizeTest : public ::testing::TestWithParam<QuantCase> {};

TEST_P(QuantizeTest, MatchesNumerics) {
  const QuantCase &c = GetParam();
  const int64_t R = 4, C = 6;
  std::string g = c.granularity;
  Shape scaleShape = g == "tensor" ? Shape{} : g == "row" ? Shape{R} : Shape{C};
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {R, C});
  auto q = b.opN("quantize", {x}, {{c.type, {R, C}}, {"f32", scaleShape}},
                 {{"granularity", g}});
  b.plainOutput(q[0]);
  b.plainOutput(q[1]);
  b.plainOutput(
      b.op("dequantize", {q[0], q[1]}, "f32", {R, C}, {{"granularity", g}}));
  Tensor<float> X = randomTensor<float>(ElementType::F32, {R, C}, 21, -3, 3);
  X.data[7] = 40.0f; // An outlier in row 1, column 1.
  auto out = runOk<float>(b.parse(), {X});
  ASSERT_EQ(out.size(), 3u);
  auto group = [&](int64_t i, int64_t j) {
    return g == "tensor" ? 0 : g == "row" ? i : j;
  };
  std::vector<float> absmax(g == "tensor" ? 1 : g == "row" ? R : C, 0.0f);
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j)
      absmax[group(i, j)] =
          std::max(absmax[group(i, j)], std::fabs(X.data[i * C + j]));
  for (size_t k = 0; k < absmax.size(); ++k)
    EXPECT_EQ(out[1].data[k], numerics::quantScale(absmax[k], c.format));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) {
      float s = numerics::quantScale(absmax[group(i, j)], c.format);
      float code = numerics::quantizeValue(X.data[i * C + j], s, c.format);
      EXPECT_EQ(out[0].data[i * C + j], code) << i << "," << j;
      EXPECT_EQ(out[2].data[i * C + j], code * s);
      EXPECT_LE(std::fabs(code), numerics::quantMax(c.format));
    }
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, QuantizeTest,
    ::testing::Values(QuantCase{"f8E4M3FN", QuantFormat::FP8E4M3, "tensor"},
                      QuantCase{"f8E4M3FN", QuantFormat::FP8E4M3, "row"},
                      QuantCase{"f8E4M3FN", QuantFormat::FP8E4M3, "col"},
                      QuantCase{"i8", QuantFormat::INT8, "tensor"},
                      QuantCase{"i8", QuantFormat::INT8, "row"},
                      QuantCase{"i8", QuantFormat::INT8, "col"}),
    [](const auto &info) {
      return std::string(info.param.format == QuantFormat::INT8 ? "int8"
                                                                : "fp8") +
             "_" + info.param.granularity;
    });

TEST(QuantTest, AllZeroTensorGetsScaleOne) {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {2, 2});
  auto q = b.opN("quantize", {x}, {{"i8", {2, 2}}, {"f32", {}}},
                 {{"granularity", "tensor"}});
  b.plainOutput(q[0]);
  b.plainOutput(q[1]);
  auto out =
      runOk<float>(b.parse(), {Tensor<float>::zeros(ElementType::F32, {2, 2})});
  EXPECT_EQ(out[1].data[0], 1.0f);
  EXPECT_EQ(out[0].data, std::vector<float>(4, 0.0f));
}

/// qmatmul(quantize(A), quantize(B)) with row scales on A and column scales on
/// B equals the hand-scaled product of the codes.
void checkQMatmul(const char *type, QuantFormat format) {
  const int64_t M = 4, N = 3, K = 8;
  FunctionBuilder b;
  int64_t a = b.plainInput("f32", {M, K});
  int64_t w = b.plainInput("f32", {N, K});
  auto qa = b.opN("quantize", {a}, {{type, {M, K}}, {"f32", {M}}},
                  {{"granularity", "row"}});
  auto qw = b.opN("quantize", {w}, {{type, {N, K}}, {"f32", {N}}},
                  {{"granularity", "row"}});
  b.plainOutput(b.op("qmatmul", {qa[0], qa[1], qw[0], qw[1]}, "f32", {M, N},
                     {{"transpose_b", true}, {"layer", "x"}, {"role", "fwd"}}));
  b.plainOutput(qa[0]);
  b.plainOutput(qa[1]);
  b.plainOutput(qw[0]);
  b.plainOutput(qw[1]);
  Tensor<float> A = randomTensor<float>(ElementType::F32, {M, K}, 22);
  Tensor<float> W = randomTensor<float>(ElementType::F32, {N, K}, 23);
  auto out = runOk<float>(b.parse(), {A, W});
  const auto &ca = out[1].data, &sa = out[2].data, &cw = out[3].data,
             &sw = out[4].data;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += ca[i * K + k] * cw[j * K + k];
      float expect = acc * sa[i] * sw[j];
      EXPECT_FLOAT_EQ(out[0].data[i * N + j], expect);
      // And it approximates the float product (FP8 keeps 3 mantissa bits).
      float exact = 0;
      for (int64_t k = 0; k < K; ++k)
        exact += A.data[i * K + k] * W.data[j * K + k];
      EXPECT_NEAR(out[0].data[i * N + j], exact,
                  format == QuantFormat::INT8 ? 0.05f : 0.3f)
          << type;
    }
}

/// qmatmul with an accumulator adds it after the scales.
TEST(QuantTest, QMatmulAccumulatorAddsAfterTheScales) {
  const int64_t M = 2, N = 2, K = 4;
  FunctionBuilder b;
  int64_t qa = b.plainInput("i8", {M, K});
  int64_t sa = b.plainInput("f32", {});
  int64_t qb = b.plainInput("i8", {N, K});
  int64_t sb = b.plainInput("f32", {});
  int64_t acc = b.plainInput("f32", {M, N});
  b.plainOutput(b.op("qmatmul", {qa, sa, qb, sb, acc}, "f32", {M, N},
                     {{"transpose_b", true}, {"layer", "x"}, {"role", "bwd_input"}}));
  Tensor<float> A{ElementType::I8, {M, K}, {1, 2, 3, 4, -1, 0, 1, 0}};
  Tensor<float> B{ElementType::I8, {N, K}, {1, 1, 1, 1, 2, 0, 0, -2}};
  Tensor<float> Sa{ElementType::F32, {}, {0.5f}}, Sb{ElementType::F32, {}, {0.25f}};
  Tensor<float> C{ElementType::F32, {M, N}, {100, 200, 300, 400}};
  auto out = runOk<float>(b.parse(), {A, Sa, B, Sb, C});
  // Products 10, -6 / 0, -2, scaled by 0.125.
  EXPECT_EQ(out[0].data, (std::vector<float>{101.25f, 199.25f, 300.0f, 399.75f}));
}

TEST(QuantTest, QMatmulFp8RowColScales) {
  checkQMatmul("f8E4M3FN", QuantFormat::FP8E4M3);
}

TEST(QuantTest, QMatmulInt8RowColScales) {
  checkQMatmul("i8", QuantFormat::INT8);
}

TEST(QuantTest, QMatmulTensorScalesTransposedA) {
  // a stored [K, M] (transpose_a), both scales 0-d: exact integer codes.
  FunctionBuilder b;
  int64_t a = b.plainInput("i8", {2, 3});
  int64_t sa = b.plainInput("f32", {});
  int64_t c = b.plainInput("i8", {2, 2});
  int64_t sc = b.plainInput("f32", {});
  b.plainOutput(
      b.op("qmatmul", {a, sa, c, sc}, "f32", {3, 2}, {{"transpose_a", true}}));
  auto out = runOk<float>(
      b.parse(), {tensor<float>(ElementType::I8, {2, 3}, {1, 2, 3, -4, 5, -6}),
                  tensor<float>(ElementType::F32, {}, {0.5}),
                  tensor<float>(ElementType::I8, {2, 2}, {7, 8, 9, 10}),
                  tensor<float>(ElementType::F32, {}, {2.0})});
  // op(a) = [[1, -4], [2, 5], [3, -6]]; op(a) c = [[-29, -32], [59, 66],
  // [-33, -36]]; times 0.5 * 2.
  EXPECT_EQ(out[0].data, (std::vector<float>{-29, -32, 59, 66, -33, -36}));
}

TEST(QuantTest, HadamardMatchesDenseAndRoundTrips) {
  for (const char *side : {"right", "left"}) {
    const int64_t R = 12, C = 8; // 12 = 12 * 1 exercises a non-symmetric H_K.
    bool right = std::string(side) == "right";
    FunctionBuilder b;
    int64_t x = b.plainInput("f32", {R, C});
    int64_t h = b.op("hadamard", {x}, "f32", {R, C}, {{"side", side}});
    b.plainOutput(h);
    b.plainOutput(b.op("hadamard", {h}, "f32", {R, C},
                       {{"side", side}, {"transposed", true}}));
    Tensor<double> X = randomTensor<double>(ElementType::F32, {R, C}, 24);
    auto out = runOk<double>(b.parse(), {X}, InterpreterOptions{true});
    int64_t n = right ? C : R;
    std::vector<double> H = numerics::denseHadamard(n);
    ASSERT_EQ(H.size(), size_t(n * n));
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) {
        double ref = 0;
        for (int64_t k = 0; k < n; ++k)
          ref += right ? X.data[i * C + k] * H[k * n + j]  // (x H)[i, j]
                       : H[i * n + k] * X.data[k * C + j]; // (H x)[i, j]
        EXPECT_NEAR(out[0].data[i * C + j], ref, 1e-12) << side;
        EXPECT_NEAR(out[1].data[i * C + j], X.data[i * C + j], 1e-12) << side;
      }
  }
}

} // namespace
} // namespace halo::cpu::test
