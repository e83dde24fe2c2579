//===- OpsTest.cpp - Each model/optimizer op against its kernel -----------===//
//
// One-op functions run in double with `exact` must reproduce the reference
// kernel called directly, bit for bit (or a hand-computed value where the op
// is simple); the float runs check the bf16 rounding of bf16 results.
//
//===----------------------------------------------------------------------===//
#include "InterpTestUtil.h"

#include "runtime/cpu/Kernels.h"
#include "runtime/numerics/Float8.h"

#include <cmath>

namespace halo::cpu::test {
namespace {

using T64 = Tensor<double>;
constexpr InterpreterOptions kExact{true};

TEST(OpsTest, Embedding) {
  FunctionBuilder b;
  int64_t ids = b.plainInput("i32", {4});
  int64_t table = b.plainInput("f32", {5, 3});
  b.plainOutput(b.op("embedding", {ids, table}, "f32", {4, 3}));
  T64 t = randomTensor<double>(ElementType::F32, {5, 3}, 1);
  auto out = runOk<double>(b.parse(), {idTensor<double>({4}, {4, 0, 2, 4}), t});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape, (Shape{4, 3}));
  for (int d = 0; d < 3; ++d) {
    EXPECT_EQ(out[0].data[0 * 3 + d], t.data[4 * 3 + d]);
    EXPECT_EQ(out[0].data[1 * 3 + d], t.data[0 * 3 + d]);
    EXPECT_EQ(out[0].data[2 * 3 + d], t.data[2 * 3 + d]);
  }
}

TEST(OpsTest, EmbeddingIdOutOfRangeNamesOpPositionAndId) {
  FunctionBuilder b;
  int64_t ids = b.plainInput("i32", {3});
  int64_t table = b.plainInput("f32", {5, 2});
  b.plainOutput(
      b.op("embedding", {ids, table}, "f32", {3, 2}, {}, "model.embed_tokens"));
  Interpreter<double> interp(b.parse("train_step"));
  auto out = interp.run(
      {idTensor<double>({3}, {1, 7, 0}), T64::zeros(ElementType::F32, {5, 2})});
  ASSERT_FALSE(out.ok());
  std::string msg = out.status().message();
  EXPECT_NE(msg.find("train_step: op #0 'embedding' (model.embed_tokens)"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("index 7 at position 1"), std::string::npos) << msg;
}

TEST(OpsTest, RmsNormAndGrad) {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {3, 4});
  int64_t w = b.plainInput("f32", {4});
  int64_t dy = b.plainInput("f32", {3, 4});
  b.plainOutput(b.op("rms_norm", {x, w}, "f32", {3, 4}, {{"eps", 1e-5}}));
  auto g = b.opN("rms_norm_grad", {x, w, dy}, {{"f32", {3, 4}}, {"f32", {4}}},
                 {{"eps", 1e-5}});
  b.plainOutput(g[0]);
  b.plainOutput(g[1]);
  T64 X = randomTensor<double>(ElementType::F32, {3, 4}, 2);
  T64 W = randomTensor<double>(ElementType::F32, {4}, 3);
  T64 DY = randomTensor<double>(ElementType::F32, {3, 4}, 4);
  auto out = runOk<double>(b.parse(), {X, W, DY}, kExact);
  std::vector<double> y(12), dx(12), dw(4);
  rmsNorm(X.data.data(), W.data.data(), 1e-5, y.data(), 3, 4);
  rmsNormBackward(X.data.data(), W.data.data(), 1e-5, DY.data.data(), dx.data(),
                  dw.data(), 3, 4);
  EXPECT_EQ(out[0].data, y);
  EXPECT_EQ(out[1].data, dx);
  EXPECT_EQ(out[2].data, dw);
}

TEST(OpsTest, LinearIsXWTranspose) {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {2, 3});
  int64_t w = b.plainInput("f32", {2, 3});
  b.plainOutput(b.op("linear", {x, w}, "f32", {2, 2}, {{"layer", "l"}}));
  auto out = runOk<double>(
      b.parse(),
      {tensor<double>(ElementType::F32, {2, 3}, {1, 2, 3, 4, 5, 6}),
       tensor<double>(ElementType::F32, {2, 3}, {1, 0, -1, 2, 1, 0})},
      kExact);
  EXPECT_EQ(out[0].data, (std::vector<double>{-2, 4, -2, 13}));
}

TEST(OpsTest, MatmulAllTransposes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t M = 3, N = 4, K = 5;
      FunctionBuilder b;
      int64_t a = b.plainInput("f32", ta ? Shape{K, M} : Shape{M, K});
      int64_t c = b.plainInput("f32", tb ? Shape{N, K} : Shape{K, N});
      json attrs = json::object();
      if (ta)
        attrs["transpose_a"] = true;
      if (tb)
        attrs["transpose_b"] = true;
      attrs["role"] = "bwd_weight";
      b.plainOutput(b.op("matmul", {a, c}, "f32", {M, N}, attrs));
      T64 A = randomTensor<double>(ElementType::F32,
                                   ta ? Shape{K, M} : Shape{M, K}, 5);
      T64 B = randomTensor<double>(ElementType::F32,
                                   tb ? Shape{N, K} : Shape{K, N}, 6);
      auto out = runOk<double>(b.parse(), {A, B}, kExact);
      std::vector<double> C(M * N);
      matmul(A.data.data(), B.data.data(), C.data(), M, N, K, ta, tb);
      EXPECT_EQ(out[0].data, C) << "ta " << ta << " tb " << tb;
    }
}

/// matmul with an accumulator: acc + product, rounded once to BF16 (not the
/// product rounded, then the sum).
TEST(OpsTest, MatmulAccumulatesRoundingOnce) {
  const int64_t M = 3, N = 4, K = 5;
  FunctionBuilder b;
  int64_t a = b.plainInput("bf16", {M, K});
  int64_t c = b.plainInput("bf16", {K, N});
  int64_t acc = b.plainInput("bf16", {M, N});
  b.plainOutput(b.op("matmul", {a, c, acc}, "bf16", {M, N},
                     {{"layer", "l"}, {"role", "bwd_input"}}));
  Tensor<float> A = randomTensor<float>(ElementType::BF16, {M, K}, 7);
  Tensor<float> B = randomTensor<float>(ElementType::BF16, {K, N}, 8);
  Tensor<float> C = randomTensor<float>(ElementType::BF16, {M, N}, 9);
  for (Tensor<float> *t : {&A, &B, &C}) // BF16 values, as the interpreter reads them
    for (float &x : t->data)
      x = numerics::roundToBF16(x);
  auto out = runOk<float>(b.parse(), {A, B, C});
  std::vector<float> P(M * N);
  matmul(A.data.data(), B.data.data(), P.data(), M, N, K, false, false);
  int roundedTwiceDiffers = 0;
  for (int64_t e = 0; e < M * N; ++e) {
    float once = numerics::roundToBF16(P[e] + C.data[e]);
    EXPECT_EQ(out[0].data[e], once) << e;
    roundedTwiceDiffers += numerics::roundToBF16(numerics::roundToBF16(P[e]) + C.data[e]) != once;
  }
  // Otherwise the test could not tell the two roundings apart.
  EXPECT_GT(roundedTwiceDiffers, 0);
}

TEST(OpsTest, RopeAndInverse) {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {8, 8});
  json attrs = {{"seq_len", 4}, {"head_dim", 4}, {"theta", 10000.0}};
  int64_t y = b.op("rope", {x}, "f32", {8, 8}, attrs);
  attrs["inverse"] = true;
  b.plainOutput(y);
  b.plainOutput(b.op("rope", {y}, "f32", {8, 8}, attrs));
  T64 X = randomTensor<double>(ElementType::F32, {8, 8}, 7);
  auto out = runOk<double>(b.parse(), {X}, kExact);
  std::vector<double> ref(64);
  rope(X.data.data(), 8, 4, 2, 4, 10000.0, false, ref.data());
  EXPECT_EQ(out[0].data, ref);
  for (size_t i = 0; i < 64; ++i)
    EXPECT_NEAR(out[1].data[i], X.data[i], 1e-6); // float cos/sin
}

TEST(OpsTest, AttentionAndGrad) {
  const int64_t B = 2, S = 4, H = 4, KV = 2, hd = 4, T = B * S;
  json attrs = {{"batch", B},
                {"seq_len", S},
                {"num_heads", H},
                {"num_kv_heads", KV},
                {"head_dim", hd}};
  FunctionBuilder b;
  int64_t q = b.plainInput("f32", {T, H * hd});
  int64_t k = b.plainInput("f32", {T, KV * hd});
  int64_t v = b.plainInput("f32", {T, KV * hd});
  int64_t dout = b.plainInput("f32", {T, H * hd});
  auto fwd = b.opN("attention", {q, k, v},
                   {{"f32", {T, H * hd}}, {"f32", {B * H * S}}}, attrs);
  auto bwd = b.opN(
      "attention_grad", {q, k, v, fwd[0], fwd[1], dout},
      {{"f32", {T, H * hd}}, {"f32", {T, KV * hd}}, {"f32", {T, KV * hd}}},
      attrs);
  for (int64_t id : {fwd[0], fwd[1], bwd[0], bwd[1], bwd[2]})
    b.plainOutput(id);
  T64 Q = randomTensor<double>(ElementType::F32, {T, H * hd}, 8);
  T64 K = randomTensor<double>(ElementType::F32, {T, KV * hd}, 9);
  T64 V = randomTensor<double>(ElementType::F32, {T, KV * hd}, 10);
  T64 D = randomTensor<double>(ElementType::F32, {T, H * hd}, 11);
  auto out = runOk<double>(b.parse(), {Q, K, V, D}, kExact);
  std::vector<double> o(T * H * hd), lse(B * H * S), dq(T * H * hd),
      dk(T * KV * hd), dv(T * KV * hd);
  attention(Q.data.data(), K.data.data(), V.data.data(), B, S, H, KV, hd,
            o.data(), lse.data());
  attentionBackward(Q.data.data(), K.data.data(), V.data.data(), o.data(),
                    lse.data(), D.data.data(), B, S, H, KV, hd, dq.data(),
                    dk.data(), dv.data());
  EXPECT_EQ(out[0].data, o);
  EXPECT_EQ(out[1].data, lse);
  EXPECT_EQ(out[2].data, dq);
  EXPECT_EQ(out[3].data, dk);
  EXPECT_EQ(out[4].data, dv);
}

TEST(OpsTest, ElementwiseOps) {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {2, 3});
  int64_t y = b.plainInput("f32", {2, 3});
  b.plainOutput(b.op("silu", {x}, "f32", {2, 3}));
  b.plainOutput(b.op("mul", {x, y}, "f32", {2, 3}));
  b.plainOutput(b.op("add", {x, y}, "f32", {2, 3}));
  b.plainOutput(b.op("silu_grad", {x, y}, "f32", {2, 3}));
  b.plainOutput(b.op("constant", {}, "f32", {2, 2}, {{"value", 1.5}}));
  T64 X = randomTensor<double>(ElementType::F32, {2, 3}, 12, -3, 3);
  T64 Y = randomTensor<double>(ElementType::F32, {2, 3}, 13);
  auto out = runOk<double>(b.parse(), {X, Y}, kExact);
  std::vector<double> s(6), ds(6);
  silu(X.data.data(), s.data(), 6);
  siluBackward(X.data.data(), Y.data.data(), ds.data(), 6);
  EXPECT_EQ(out[0].data, s);
  EXPECT_EQ(out[3].data, ds);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(out[1].data[i], X.data[i] * Y.data[i]);
    EXPECT_EQ(out[2].data[i], X.data[i] + Y.data[i]);
  }
  EXPECT_EQ(out[4].data, std::vector<double>(4, 1.5));
}

TEST(OpsTest, CrossEntropyAndGradIgnoreNegativeTargets) {
  FunctionBuilder b;
  int64_t logits = b.plainInput("f32", {3, 5});
  int64_t targets = b.plainInput("i32", {3});
  b.plainOutput(b.op("cross_entropy", {logits, targets}, "f32", {}));
  b.plainOutput(b.op("cross_entropy_grad", {logits, targets}, "f32", {3, 5}));
  T64 L = randomTensor<double>(ElementType::F32, {3, 5}, 14, -2, 2);
  std::vector<int32_t> tg = {4, -1, 0};
  auto out = runOk<double>(b.parse(), {L, idTensor<double>({3}, tg)}, kExact);
  double loss = crossEntropy(L.data.data(), tg.data(), 3, 5);
  std::vector<double> d(15);
  crossEntropyBackward(L.data.data(), tg.data(), 1.0, d.data(), 3, 5);
  EXPECT_EQ(out[0].shape, Shape{});
  EXPECT_EQ(out[0].data[0], loss);
  EXPECT_EQ(out[1].data, d);
  // Row 1 is ignored: its gradient is zero.
  for (int j = 0; j < 5; ++j)
    EXPECT_EQ(out[1].data[5 + j], 0.0);
}

TEST(OpsTest, CrossEntropyTargetOutOfRangeFails) {
  FunctionBuilder b;
  int64_t logits = b.plainInput("f32", {2, 4});
  int64_t targets = b.plainInput("i32", {2});
  b.plainOutput(
      b.op("cross_entropy", {logits, targets}, "f32", {}, {}, "loss"));
  Interpreter<double> interp(b.parse());
  auto out = interp.run(
      {T64::zeros(ElementType::F32, {2, 4}), idTensor<double>({2}, {0, 4})});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("'cross_entropy' (loss): targets"),
            std::string::npos)
      << out.status().message();
}

TEST(OpsTest, EmbeddingGradScatterAdds) {
  FunctionBuilder b;
  int64_t ids = b.plainInput("i32", {3});
  int64_t dy = b.plainInput("f32", {3, 2});
  b.plainOutput(b.op("embedding_grad", {ids, dy}, "f32", {4, 2}));
  auto out = runOk<double>(
      b.parse(),
      {idTensor<double>({3}, {2, 0, 2}),
       tensor<double>(ElementType::F32, {3, 2}, {1, 2, 3, 4, 5, 6})},
      kExact);
  EXPECT_EQ(out[0].data, (std::vector<double>{3, 4, 0, 0, 6, 8, 0, 0}));
}

TEST(OpsTest, GlobalNormClipAndSchedule) {
  FunctionBuilder b;
  int64_t a = b.plainInput("f32", {2});
  int64_t c = b.plainInput("bf16", {1, 2});
  int64_t step = b.input("step", "i32", {});
  int64_t norm = b.op("global_norm", {a, c}, "f32", {});
  b.plainOutput(norm);
  b.plainOutput(b.op("clip_coef", {norm}, "f32", {}, {{"max_norm", 2.0}}));
  b.plainOutput(b.op("clip_coef", {norm}, "f32", {}, {{"max_norm", 100.0}}));
  b.plainOutput(b.op("lr_schedule", {step}, "f32", {},
                     {{"peak_lr", 1e-3},
                      {"warmup_steps", 10},
                      {"total_steps", 100},
                      {"schedule", "cosine"}}));
  auto out = runOk<double>(b.parse(),
                           {tensor<double>(ElementType::F32, {2}, {3, 4}),
                            tensor<double>(ElementType::BF16, {1, 2}, {12, 0}),
                            stepTensor<double>(55)},
                           kExact);
  EXPECT_DOUBLE_EQ(out[0].data[0], 13.0);
  EXPECT_DOUBLE_EQ(out[1].data[0], 2.0 / (13.0 + 1e-6));
  EXPECT_EQ(out[2].data[0], 1.0);
  EXPECT_DOUBLE_EQ(out[3].data[0],
                   learningRate(55, 1e-3, 10, 100, Schedule::Cosine));
}

TEST(OpsTest, AdamWScalesTheGradient) {
  FunctionBuilder b;
  int64_t p = b.param("w", "f32", {4});
  int64_t m = b.param("w", "f32", {4}, "exp_avg");
  int64_t v = b.param("w", "f32", {4}, "exp_avg_sq");
  int64_t g = b.plainInput("f32", {4});
  int64_t lr = b.plainInput("f32", {});
  int64_t step = b.input("step", "i32", {});
  int64_t scale = b.plainInput("f32", {});
  auto r = b.opN(
      "adamw", {p, g, m, v, lr, step, scale},
      {{"f32", {4}}, {"f32", {4}}, {"f32", {4}}},
      {{"beta1", 0.9}, {"beta2", 0.99}, {"eps", 1e-8}, {"weight_decay", 0.1}});
  b.paramOutput("w", "param", r[0]);
  b.paramOutput("w", "exp_avg", r[1]);
  b.paramOutput("w", "exp_avg_sq", r[2]);
  T64 P = randomTensor<double>(ElementType::F32, {4}, 15);
  T64 M = randomTensor<double>(ElementType::F32, {4}, 16);
  T64 V = randomTensor<double>(ElementType::F32, {4}, 17, 0, 1);
  T64 G = randomTensor<double>(ElementType::F32, {4}, 18);
  auto out = runOk<double>(
      b.parse(),
      {P, M, V, G, tensor<double>(ElementType::F32, {}, {0.01}),
       stepTensor<double>(3), tensor<double>(ElementType::F32, {}, {0.5})},
      kExact);
  std::vector<double> p2 = P.data, m2 = M.data, v2 = V.data, g2 = G.data;
  for (double &x : g2)
    x *= 0.5;
  adamw(p2.data(), g2.data(), m2.data(), v2.data(), 4, 0.01, 0.9, 0.99, 1e-8,
        0.1, 3);
  EXPECT_EQ(out[0].data, p2);
  EXPECT_EQ(out[1].data, m2);
  EXPECT_EQ(out[2].data, v2);
}

} // namespace
} // namespace halo::cpu::test
