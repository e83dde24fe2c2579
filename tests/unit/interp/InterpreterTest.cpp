//===- InterpreterTest.cpp - Rounding, freeing, inputs, a training loop ---===//
//
// The interpreter-level rules: bf16 rounding of bf16 results and inputs only
// (none in exact mode), values freed after their last reader without
// breaking values read again later or returned, input checking, and a tiny
// hand-written train_step (embedding + linear + cross-entropy + AdamW) whose
// loss falls over 20 steps.
//
//===----------------------------------------------------------------------===//
#include "InterpTestUtil.h"

#include "runtime/cpu/Kernels.h"
#include "runtime/numerics/Float8.h"

#include <cmath>

namespace halo::cpu::test {
namespace {

// 1 + 2^-10 is a float but not a bf16 (7 mantissa bits): it rounds to 1.
constexpr double kOffGrid = 1.0 + 1.0 / 1024;

FunctionBuilder addBoth() {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {2});
  int64_t y = b.plainInput("bf16", {2});
  b.plainOutput(b.op("add", {x, x}, "bf16", {2}));
  b.plainOutput(b.op("add", {x, x}, "f32", {2}));
  b.plainOutput(b.op("cast", {y}, "f32", {2}));
  return b;
}

// Tests that deriveComputeCopies fills each "compute" input from its master
// (rounded where it enters: here by the interpreter) and touches nothing else.
TEST(InterpreterTest, ComputeCopiesComeFromTheirMasters) {
  FunctionBuilder b;
  int64_t w = b.param("w", "f32", {2});
  int64_t m = b.param("w", "f32", {2}, "exp_avg");
  int64_t c = b.param("w", "bf16", {2}, "compute");
  b.plainOutput(b.op("add", {w, m}, "f32", {2}));
  b.plainOutput(b.op("cast", {c}, "f32", {2}));
  Function fn = b.parse();
  std::vector<Tensor<float>> in = {tensor<float>(ElementType::F32, {2}, {kOffGrid, -2.0}),
                                   tensor<float>(ElementType::F32, {2}, {0.5, 0.25}),
                                   tensor<float>(ElementType::BF16, {2}, {7.0, 7.0})};
  deriveComputeCopies(fn, in);
  EXPECT_EQ(in[2].data, in[0].data);
  EXPECT_EQ(in[1].data, (std::vector<float>{0.5f, 0.25f}));
  auto out = runOk<float>(fn, in);
  EXPECT_EQ(out[1].data[0], numerics::roundToBF16(float(kOffGrid)));
  EXPECT_EQ(out[1].data[1], -2.0f);
}

TEST(InterpreterTest, RoundsBF16ResultsAndInputsOnly) {
  Function fn = addBoth().parse();
  std::vector<Tensor<float>> in = {
      tensor<float>(ElementType::F32, {2}, {kOffGrid, 3.0}),
      tensor<float>(ElementType::BF16, {2}, {kOffGrid, -kOffGrid})};
  auto out = runOk<float>(fn, in);
  float sum = float(kOffGrid) + float(kOffGrid);
  EXPECT_EQ(out[0].data[0], numerics::roundToBF16(sum));
  EXPECT_NE(out[0].data[0], sum);
  EXPECT_EQ(out[0].type, ElementType::BF16);
  EXPECT_EQ(out[1].data[0], sum); // f32 result: stored as computed
  EXPECT_EQ(out[2].data, (std::vector<float>{1.0f, -1.0f})); // input rounded
  // The caller's inputs are never modified.
  EXPECT_EQ(in[1].data[0], float(kOffGrid));
}

TEST(InterpreterTest, ExactModeSkipsRounding) {
  auto out = runOk<double>(
      addBoth().parse(),
      {tensor<double>(ElementType::F32, {2}, {kOffGrid, 3.0}),
       tensor<double>(ElementType::BF16, {2}, {kOffGrid, -kOffGrid})},
      InterpreterOptions{true});
  EXPECT_EQ(out[0].data[0], 2 * kOffGrid);
  EXPECT_EQ(out[2].data, (std::vector<double>{kOffGrid, -kOffGrid}));
}

TEST(InterpreterTest, RejectsMismatchedInputs) {
  Interpreter<float> interp(addBoth().parse("fwd"));
  auto count = interp.run({Tensor<float>::zeros(ElementType::F32, {2})});
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.status().message().find("fwd: got 1 inputs, expected 2"),
            std::string::npos);
  auto type = interp.run({Tensor<float>::zeros(ElementType::F32, {2}),
                          Tensor<float>::zeros(ElementType::F32, {2})});
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.status().message().find(
                "input 1 \"\" is f32 [2] with 2 elements, expected bf16 [2]"),
            std::string::npos)
      << type.status().message();
  auto shape = interp.run({Tensor<float>::zeros(ElementType::F32, {1, 2}),
                           Tensor<float>::zeros(ElementType::BF16, {2})});
  EXPECT_FALSE(shape.ok());
}

TEST(InterpreterTest, FreesAfterLastUseWithoutBreakingLaterReads) {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {3});
  int64_t a = b.op("silu", {x}, "f32", {3});      // op 0
  int64_t c1 = b.op("add", {a, x}, "f32", {3});   // op 1
  int64_t c2 = b.op("mul", {c1, c1}, "f32", {3}); // op 2
  int64_t d = b.op("add", {c2, a}, "f32", {3});   // op 3: reads a again
  int64_t e = b.op("silu", {c1}, "f32", {3});     // op 4: reads c1 again
  int64_t dead = b.op("silu", {x}, "f32", {3});   // op 5: never read
  b.plainOutput(d);
  b.plainOutput(e);
  b.plainOutput(c1); // also returned
  b.plainOutput(c1); // twice
  Interpreter<double> interp(b.parse(), InterpreterOptions{true});
  const std::vector<int64_t> &last = interp.lastUse();
  EXPECT_EQ(last[x], 5);
  EXPECT_EQ(last[a], 3);
  EXPECT_EQ(last[c1], Interpreter<double>::kKeepAlive);
  EXPECT_EQ(last[c2], 3);
  EXPECT_EQ(last[dead], -1);

  Tensor<double> X = randomTensor<double>(ElementType::F32, {3}, 31, -2, 2);
  for (int run = 0; run < 2; ++run) { // A second run starts from scratch.
    auto out = interp.run({X});
    ASSERT_TRUE(out.ok()) << out.status().message();
    ASSERT_EQ(out->size(), 4u);
    for (int i = 0; i < 3; ++i) {
      double xi = X.data[i], ai = xi / (1 + std::exp(-xi)), ci = ai + xi;
      EXPECT_NEAR((*out)[0].data[i], ci * ci + ai, 1e-12);
      EXPECT_NEAR((*out)[1].data[i], ci / (1 + std::exp(-ci)), 1e-12);
      EXPECT_EQ((*out)[2].data[i], ci);
      EXPECT_EQ((*out)[3].data[i], ci);
    }
  }
}

TEST(InterpreterTest, LongChainKeepsTwoValuesLive) {
  FunctionBuilder b;
  int64_t v = b.plainInput("f32", {100});
  for (int i = 0; i < 10; ++i)
    v = b.op("silu", {v}, "f32", {100});
  b.plainOutput(v);
  Interpreter<float> interp(b.parse());
  ASSERT_TRUE(interp.run({Tensor<float>::zeros(ElementType::F32, {100})}).ok());
  EXPECT_EQ(interp.peakLiveElements(), 200);
}

/// A tiny language model step: logits = embed(tokens) W^T, cross-entropy,
/// backward, global-norm clipping, AdamW on both weights.
Function tinyTrainStep(int64_t T, int64_t V, int64_t D) {
  FunctionBuilder b;
  int64_t tok = b.input("tokens", "i32", {T});
  int64_t tgt = b.input("targets", "i32", {T});
  int64_t step = b.input("step", "i32", {});
  const char *names[] = {"embed", "head"};
  int64_t p[2], m[2], v[2];
  for (int k = 0; k < 2; ++k)
    p[k] = b.param(names[k], "f32", {V, D}, "param", "normal");
  for (int k = 0; k < 2; ++k)
    m[k] = b.param(names[k], "f32", {V, D}, "exp_avg");
  for (int k = 0; k < 2; ++k)
    v[k] = b.param(names[k], "f32", {V, D}, "exp_avg_sq");
  int64_t e = b.op("cast", {p[0]}, "bf16", {V, D});
  int64_t w = b.op("cast", {p[1]}, "bf16", {V, D});
  int64_t h = b.op("embedding", {tok, e}, "bf16", {T, D});
  int64_t logits = b.op("linear", {h, w}, "bf16", {T, V});
  int64_t loss = b.op("cross_entropy", {logits, tgt}, "f32", {});
  int64_t dl = b.op("cross_entropy_grad", {logits, tgt}, "bf16", {T, V});
  int64_t dw = b.op("matmul", {dl, h}, "f32", {V, D}, {{"transpose_a", true}});
  int64_t dh = b.op("matmul", {dl, w}, "bf16", {T, D});
  int64_t de = b.op("embedding_grad", {tok, dh}, "f32", {V, D});
  int64_t norm = b.op("global_norm", {de, dw}, "f32", {});
  int64_t clip = b.op("clip_coef", {norm}, "f32", {}, {{"max_norm", 1.0}});
  int64_t lr = b.op("lr_schedule", {step}, "f32", {},
                    {{"peak_lr", 0.05},
                     {"warmup_steps", 0},
                     {"total_steps", 20},
                     {"schedule", "constant"}});
  b.output("loss", loss);
  b.output("grad_norm", norm);
  b.output("lr", lr);
  int64_t grads[2] = {de, dw};
  for (int k = 0; k < 2; ++k) {
    auto r = b.opN("adamw", {p[k], grads[k], m[k], v[k], lr, step, clip},
                   {{"f32", {V, D}}, {"f32", {V, D}}, {"f32", {V, D}}},
                   {{"beta1", 0.9},
                    {"beta2", 0.95},
                    {"eps", 1e-8},
                    {"weight_decay", 0.0}});
    b.paramOutput(names[k], "param", r[0]);
    b.paramOutput(names[k], "exp_avg", r[1]);
    b.paramOutput(names[k], "exp_avg_sq", r[2]);
  }
  return b.parse("train_step");
}

TEST(InterpreterTest, TinyTrainStepLossFalls) {
  const int64_t T = 16, V = 8, D = 8;
  Interpreter<float> interp(tinyTrainStep(T, V, D));
  const Function &fn = interp.function();
  std::vector<Tensor<float>> in(fn.inputs.size());
  for (size_t i = 0; i < fn.inputs.size(); ++i) {
    const ValueInfo &info = fn.values[fn.inputs[i].value];
    in[i] = Tensor<float>::zeros(info.type, info.shape);
  }
  in[3] = randomTensor<float>(ElementType::F32, {V, D}, 41, -0.1, 0.1);
  in[4] = randomTensor<float>(ElementType::F32, {V, D}, 42, -0.1, 0.1);
  for (int64_t t = 0; t < T; ++t) { // next token = (token * 3 + 1) mod V
    in[0].ints[t] = int32_t(t % V);
    in[1].ints[t] = int32_t((t % V * 3 + 1) % V);
  }
  std::vector<float> losses;
  for (int32_t s = 1; s <= 20; ++s) {
    in[2].ints[0] = s;
    auto out = interp.run(in);
    ASSERT_TRUE(out.ok()) << out.status().message();
    losses.push_back((*out)[0].data[0]);
    EXPECT_TRUE(std::isfinite((*out)[1].data[0]));
    EXPECT_FLOAT_EQ((*out)[2].data[0], 0.05f);
    // Feed the updated states back by (param, state).
    for (size_t k = 0; k < fn.outputs.size(); ++k)
      if (fn.outputs[k].isParam())
        in[fn.findParamInput(fn.outputs[k].param, fn.outputs[k].state)] =
            std::move((*out)[k]);
  }
  EXPECT_NEAR(losses.front(), std::log(double(V)), 0.05);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  for (size_t i = 1; i < losses.size(); ++i)
    EXPECT_LT(losses[i], losses[i - 1] + 1e-3) << "step " << i + 1;
}

} // namespace
} // namespace halo::cpu::test
