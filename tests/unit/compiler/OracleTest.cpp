//===- OracleTest.cpp - Passes proven on the CPU oracle --------------------===//
//
// Every test compiles a small LLaMA with the real frontend and passes, exports
// the program, and executes it on the interpreter: gradients against central
// finite differences in float64, rotations cancelling exactly without
// quantization, and each pass preserving what the program computes.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

using namespace halo;
using namespace halo::test;

namespace {

// Two layers, GQA (2 heads, 1 KV head, head_dim 12), FFN 48 = 12 * 4, T = 16:
// every rotated size has a Hadamard matrix (24 and 48 are K=12 forms).
std::string smallModel(const std::string &halo) {
  return R"({"model": {"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2,
      "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
      "max_position_embeddings": 8, "rms_norm_eps": 1e-5, "tie_word_embeddings": false},
    "train": {"batch_size": 2, "seq_len": 8, "steps": 10, "lr": 1e-2, "warmup_steps": 0,
      "schedule": "constant", "grad_clip": 0.0, "weight_decay": 0.01},
    "halo": )" + halo + "}";
}
constexpr int64_t kVocab = 32;

const cpu::Function &fn(const cpu::Program &p, const std::string &name) {
  const cpu::Function *f = p.find(name);
  EXPECT_NE(f, nullptr) << name;
  static cpu::Function empty;
  return f ? *f : empty;
}

// The forward function's inputs built from train_step's: same tokens and the
// master weights as compute copies.
std::vector<cpu::Tensor<double>> forwardInputs(const cpu::Function &forward,
                                               const cpu::Function &step,
                                               const std::vector<cpu::Tensor<double>> &in) {
  std::vector<cpu::Tensor<double>> out;
  for (const cpu::Binding &b : forward.inputs) {
    int64_t i = b.isParam() ? step.findParamInput(b.param, "param") : step.findInput(b.name);
    EXPECT_GE(i, 0) << b.name << b.param;
    cpu::Tensor<double> t = in[i];
    t.type = forward.values[b.value].type;
    out.push_back(std::move(t));
  }
  return out;
}

double forwardLoss(const cpu::Function &forward, const std::vector<cpu::Tensor<double>> &in) {
  std::vector<cpu::Tensor<double>> out = runOk(forward, in, /*exact=*/true);
  return out.empty() ? NAN : out[0].data[0];
}

// Tests every parameter gradient of a two-layer LLaMA against central finite
// differences of the loss in float64 (no rounding anywhere: exact mode), one
// random direction per parameter tensor. Central differences with h = 1e-5
// have truncation error O(h^2 |L'''|) ~ 1e-10 and rounding error
// O(eps |L| / h) ~ 1e-11 in double, so 1e-6 relative is a strict bound.
TEST(Oracle, GradientsMatchFiniteDifferences) {
  cpu::Program p =
      compileModel(smallModel(R"({"precision": "bf16"})"), "halo-autodiff{return-grads=true}");
  const cpu::Function &step = fn(p, "train_step");
  const cpu::Function &forward = fn(p, "forward");
  std::vector<cpu::Tensor<double>> in = makeInputs<double>(step, kVocab, 7);
  std::vector<cpu::Tensor<double>> out = runOk(step, in, /*exact=*/true);
  ASSERT_FALSE(out.empty());

  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  int checked = 0;
  for (size_t o = 0; o < step.outputs.size(); ++o) {
    const cpu::Binding &grad = step.outputs[o];
    if (grad.state != "grad")
      continue;
    std::vector<cpu::Tensor<double>> fin = forwardInputs(forward, step, in);
    size_t pi = 0;
    while (forward.inputs[pi].param != grad.param)
      ++pi;
    std::vector<double> dir(fin[pi].data.size());
    double analytic = 0;
    for (size_t i = 0; i < dir.size(); ++i) {
      dir[i] = normal(rng);
      analytic += dir[i] * out[o].data[i];
    }
    const double h = 1e-5;
    std::vector<double> base = fin[pi].data;
    for (size_t i = 0; i < dir.size(); ++i)
      fin[pi].data[i] = base[i] + h * dir[i];
    double plus = forwardLoss(forward, fin);
    for (size_t i = 0; i < dir.size(); ++i)
      fin[pi].data[i] = base[i] - h * dir[i];
    double minus = forwardLoss(forward, fin);
    double numeric = (plus - minus) / (2 * h);
    EXPECT_NEAR(analytic, numeric, 1e-6 * (1 + std::abs(numeric))) << grad.param;
    ++checked;
  }
  // 1 embedding + 9 per layer + final norm + untied lm_head.
  EXPECT_EQ(checked, 1 + 2 * 9 + 1 + 1);
}

// Tests that train_step's loss is the forward function's loss (autodiff keeps
// the forward computation as it was).
TEST(Oracle, AutodiffKeepsTheForwardLoss) {
  cpu::Program p = compileModel(smallModel(R"({"precision": "bf16"})"), "halo-autodiff");
  const cpu::Function &step = fn(p, "train_step");
  std::vector<cpu::Tensor<double>> in = makeInputs<double>(step, kVocab, 3);
  std::vector<cpu::Tensor<double>> out = runOk(step, in, true);
  ASSERT_FALSE(out.empty());
  double loss = out[step.findOutput("loss")].data[0];
  EXPECT_DOUBLE_EQ(loss, forwardLoss(fn(p, "forward"), forwardInputs(fn(p, "forward"), step, in)));
}

// The HALO level's rotations with quantization switched off.
std::string rotationsOnly(int level) {
  std::string eLeft = level == 2 ? "left" : "none";
  return R"({"precision": "bf16", "matmuls": {
      "fwd": {"x": {"hadamard": "right"}, "w": {"hadamard": "right"}},
      "bwd_input": {"e": {"hadamard": ")" + eLeft + R"("}, "w": {"hadamard": "right"}},
      "bwd_weight": {"x": {"hadamard": "right"}}}})";
}

// Tests that HALO-1 and HALO-2 rotations cancel: without quantization, the
// placed train_step (loss, grad-norm, every updated weight and moment) equals
// the unrotated one up to float64 rounding, also after halo-factor-rotations
// un-rotates the summed input gradients once.
TEST(Oracle, RotationsCancelWithoutQuantization) {
  cpu::Program plain = compileModel(smallModel(R"({"precision": "bf16"})"), "halo-autodiff");
  std::vector<cpu::Tensor<double>> in = makeInputs<double>(fn(plain, "train_step"), kVocab, 5);
  std::vector<cpu::Tensor<double>> want = runOk(fn(plain, "train_step"), in, true);
  for (int level : {1, 2}) {
    cpu::Program placed = compileModel(smallModel(rotationsOnly(level)),
                                       "halo-autodiff,halo-place-rotations,halo-simplify,"
                                       "halo-factor-rotations");
    const cpu::Function &step = fn(placed, "train_step");
    // 2 layers x (4 inputs + 7 weights + 7 weight-gradient and 4 input-gradient
    // un-rotations) [+ 7 token rotations of E and 4 token un-rotations].
    EXPECT_EQ(countOps(step, cpu::OpKind::Hadamard), level == 1 ? 44 : 66);
    EXPECT_EQ(countOps(step, cpu::OpKind::Quantize), 0);
    std::vector<cpu::Tensor<double>> got = runOk(step, in, true);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LT(relDiff(got[i], want[i]), 1e-10)
          << "HALO-" << level << " output " << i << " (" << step.outputs[i].name
          << step.outputs[i].param << " " << step.outputs[i].state << ")";
  }
}

// Tests the research form's reduction-dimension rotations: the input
// gradient rotated over n (E H, H^T W) and the weight gradient over the tokens
// (H E, H X) must cancel inside their GEMMs, with quantization off.
TEST(Oracle, TableReductionRotationsCancel) {
  cpu::Program plain = compileModel(smallModel(R"({"precision": "bf16"})"), "halo-autodiff");
  std::vector<cpu::Tensor<double>> in = makeInputs<double>(fn(plain, "train_step"), kVocab, 21);
  std::vector<cpu::Tensor<double>> want = runOk(fn(plain, "train_step"), in, true);
  cpu::Program table = compileModel(smallModel(R"({"precision": "bf16", "matmuls": {
      "bwd_input": {"e": {"hadamard": "right"}, "w": {"hadamard": "left"}},
      "bwd_weight": {"e": {"hadamard": "left"}, "x": {"hadamard": "left"}}}})"),
                                    "halo-autodiff,halo-place-rotations,halo-simplify");
  const cpu::Function &step = fn(table, "train_step");
  // Per layer: E right and E left for 7 linears, W left for 7, X left for the
  // 4 distinct inputs; none is undone on an output.
  EXPECT_EQ(countOps(step, cpu::OpKind::Hadamard), 2 * (7 + 7 + 7 + 4));
  std::vector<cpu::Tensor<double>> got = runOk(step, in, true);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LT(relDiff(got[i], want[i]), 1e-10) << "output " << i;
}

// Tests that halo-simplify changes no result bit: the merged rotations and
// quantizations compute exactly what the duplicated ones did (float, bf16
// rounding, FP8 and INT8 quantization all on).
TEST(Oracle, SimplifyPreservesResults) {
  for (const char *halo : {R"({"level": 2, "precision": "fp8"})",
                           R"({"level": 1, "precision": "int8"})"}) {
    cpu::Program before = compileModel(smallModel(halo), "halo-autodiff,halo-place-rotations");
    cpu::Program after =
        compileModel(smallModel(halo), "halo-autodiff,halo-place-rotations,halo-simplify");
    const cpu::Function &b = fn(before, "train_step"), &a = fn(after, "train_step");
    EXPECT_LT(a.ops.size(), b.ops.size()) << halo;
    std::vector<cpu::Tensor<float>> in = makeInputs<float>(b, kVocab, 9);
    std::vector<cpu::Tensor<float>> x = runOk(b, in, false), y = runOk(a, in, false);
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_EQ(x[i].data, y[i].data) << halo << " output " << i;
  }
}

// Tests that halo-legalize-gemm-layouts and halo-fuse change no result bit
// (transposes move exact codes; the exported program runs the
// kernels' bodies, the same ops in a dependence-respecting order).
TEST(Oracle, FusePreservesResults) {
  const char *halo = R"({"level": 2, "precision": "fp8"})";
  const std::string placed = "halo-autodiff,halo-place-rotations,halo-simplify";
  cpu::Program before = compileModel(smallModel(halo), placed);
  cpu::Program after = compileModel(
      smallModel(halo), placed + ",halo-legalize-gemm-layouts,halo-fuse,halo-plan-memory");
  for (const char *name : {"train_step", "forward"}) {
    const cpu::Function &b = fn(before, name), &a = fn(after, name);
    // Legalization adds transposes to train_step's backward GEMMs only.
    EXPECT_GE(a.ops.size(), b.ops.size()) << name;
    std::vector<cpu::Tensor<float>> in = makeInputs<float>(b, kVocab, 17);
    std::vector<cpu::Tensor<float>> x = runOk(b, in, false), y = runOk(a, in, false);
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_EQ(x[i].data, y[i].data) << name << " output " << i;
  }
}

// Tests that placement with quantization on stays close to the unquantized
// step (the 8-bit error is small on well-scaled data) yet is not identical
// (quantization really happens).
TEST(Oracle, QuantizedStepStaysCloseToBf16) {
  cpu::Program plain = compileModel(smallModel(R"({"precision": "bf16"})"), "halo-autodiff");
  std::vector<cpu::Tensor<float>> in =
      makeInputs<float>(fn(plain, "train_step"), kVocab, 13, /*std=*/0.1);
  std::vector<cpu::Tensor<float>> want = runOk(fn(plain, "train_step"), in, false);
  for (const char *halo : {R"({"level": 0, "precision": "fp8"})",
                           R"({"level": 2, "precision": "fp8"})",
                           R"({"level": 2, "precision": "int8"})"}) {
    cpu::Program p =
        compileModel(smallModel(halo), "halo-autodiff,halo-place-rotations,halo-simplify");
    const cpu::Function &step = fn(p, "train_step");
    EXPECT_GT(countOps(step, cpu::OpKind::QMatmul), 0);
    std::vector<cpu::Tensor<float>> got = runOk(step, in, false);
    ASSERT_EQ(got.size(), want.size());
    double lossWant = want[0].data[0], lossGot = got[0].data[0];
    EXPECT_NE(lossGot, lossWant) << halo;
    EXPECT_NEAR(lossGot, lossWant, 0.05 * std::abs(lossWant)) << halo;
  }
}

} // namespace
