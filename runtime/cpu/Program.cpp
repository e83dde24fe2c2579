//===- Program.cpp - Read, validate and write program files ---------------===//
//
// The manifest is untrusted input: every JSON access is kind-checked, every
// value id range-checked and every op checked against a table of operand and
// result type classes, attributes and shape rules before a Function is handed
// out. nlohmann exceptions never escape; they become Status with the file
// name. Messages name the function, op index, op name and loc.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Program.h"

#include "runtime/io/AtomicFile.h"
#include "runtime/numerics/Hadamard.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace halo::cpu {
namespace {

using json = nlohmann::json;

constexpr const char *kRecompileHint = "recompile with haloc";
// Bounds element counts so that byte sizes never overflow.
constexpr int64_t kMaxElements = int64_t(1) << 48;

//===----------------------------------------------------------------------===//
// Op table
//===----------------------------------------------------------------------===//

/// One row per OpKind, in enum order. Element-type classes, one letter per
/// operand/result: F bf16|f32, I i32, Q f8E4M3FN|i8, S f32.
struct OpSpec {
  OpKind kind;
  std::string_view name;
  std::string_view operands;
  std::string_view results;
  bool variadic; ///< One or more operands of the single class in `operands`.
  std::vector<std::string_view> required;
  std::vector<std::string_view> optional;
  /// Classes of operands that may follow `operands` (GEMMs: the accumulator).
  std::string_view optionalOperands = {};
};

const std::vector<OpSpec> &opSpecs() {
  static const std::vector<std::string_view> kAttentionAttrs = {
      "batch", "seq_len", "num_heads", "num_kv_heads", "head_dim"};
  static const std::vector<std::string_view> kGemmAttrs = {
      "transpose_a", "transpose_b", "layer", "role"};
  // clang-format off
  static const std::vector<OpSpec> specs = {
      {OpKind::Constant, "constant", "", "F", false, {"value"}, {}},
      {OpKind::Embedding, "embedding", "IF", "F", false, {}, {}},
      {OpKind::RmsNorm, "rms_norm", "FF", "F", false, {"eps"}, {}},
      {OpKind::Linear, "linear", "FF", "F", false, {}, {"layer"}},
      {OpKind::Rope, "rope", "F", "F", false, {"seq_len", "head_dim", "theta"}, {"inverse"}},
      {OpKind::Attention, "attention", "FFF", "FS", false, kAttentionAttrs, {}},
      {OpKind::Silu, "silu", "F", "F", false, {}, {}},
      {OpKind::Mul, "mul", "FF", "F", false, {}, {}},
      {OpKind::Add, "add", "FF", "F", false, {}, {}},
      {OpKind::Cast, "cast", "F", "F", false, {}, {}},
      {OpKind::CrossEntropy, "cross_entropy", "FI", "S", false, {}, {}},
      {OpKind::Matmul, "matmul", "FF", "F", false, {}, kGemmAttrs, "F"},
      {OpKind::EmbeddingGrad, "embedding_grad", "IF", "F", false, {}, {}},
      {OpKind::RmsNormGrad, "rms_norm_grad", "FFF", "FF", false, {"eps"}, {}},
      {OpKind::AttentionGrad, "attention_grad", "FFFFSF", "FFF", false, kAttentionAttrs, {}},
      {OpKind::SiluGrad, "silu_grad", "FF", "F", false, {}, {}},
      {OpKind::CrossEntropyGrad, "cross_entropy_grad", "FI", "F", false, {}, {}},
      {OpKind::GlobalNorm, "global_norm", "F", "S", true, {}, {}},
      {OpKind::ClipCoef, "clip_coef", "S", "S", false, {"max_norm"}, {}},
      {OpKind::LrSchedule, "lr_schedule", "I", "S", false,
       {"peak_lr", "warmup_steps", "total_steps", "schedule"}, {}},
      {OpKind::AdamW, "adamw", "FFFFSIS", "FFF", false,
       {"beta1", "beta2", "eps", "weight_decay"}, {}},
      {OpKind::Hadamard, "hadamard", "F", "F", false, {"side"}, {"transposed"}},
      {OpKind::Quantize, "quantize", "F", "QS", false, {"granularity"}, {}},
      {OpKind::Dequantize, "dequantize", "QS", "F", false, {"granularity"}, {}},
      {OpKind::QMatmul, "qmatmul", "QSQS", "F", false, {}, kGemmAttrs, "F"},
      {OpKind::Transpose, "transpose", "Q", "Q", false, {}, {}},
  };
  // clang-format on
  return specs;
}

const OpSpec *findSpec(std::string_view name) {
  for (const OpSpec &s : opSpecs())
    if (s.name == name)
      return &s;
  return nullptr;
}

const OpSpec &specOf(OpKind kind) {
  return opSpecs()[static_cast<size_t>(kind)];
}

std::string knownOps() {
  std::vector<std::string_view> names;
  for (const OpSpec &s : opSpecs())
    names.push_back(s.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

bool inClass(ElementType type, char cls) {
  switch (cls) {
  case 'F':
    return isFloatType(type);
  case 'I':
    return type == ElementType::I32;
  case 'Q':
    return isQuantType(type);
  default:
    return type == ElementType::F32;
  }
}

const char *className(char cls) {
  switch (cls) {
  case 'F':
    return "bf16 or f32";
  case 'I':
    return "i32";
  case 'Q':
    return "f8E4M3FN or i8";
  default:
    return "f32";
  }
}

//===----------------------------------------------------------------------===//
// JSON helpers
//===----------------------------------------------------------------------===//

std::string kindOf(const json &v) {
  if (v.is_number_integer())
    return fmt::format("integer {}", v.dump());
  if (v.is_number())
    return fmt::format("number {}", v.dump());
  if (v.is_string())
    return fmt::format("string {}", v.dump());
  return v.type_name();
}

std::optional<int64_t> asInt(const json &v) {
  if (!v.is_number_integer())
    return std::nullopt;
  if (v.is_number_unsigned() &&
      v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    return std::nullopt;
  return v.get<int64_t>();
}

/// Fails on the first key of `obj` not in `allowed`.
Status checkKeys(const json &obj,
                 std::initializer_list<std::string_view> allowed,
                 const std::string &where) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
      return Status::error(fmt::format("{}: unknown key \"{}\" (expected {})",
                                       where, it.key(),
                                       fmt::join(allowed, ", ")));
  return Status::success();
}

/// Reads one attribute into `attrs`; on a kind mismatch returns false with
/// the expected kind in `expected`.
bool readAttr(std::string_view key, const json &v, OpAttrs &a,
              std::string &expected) {
  auto number = [&](double &out) {
    expected = "a number";
    if (!v.is_number())
      return false;
    out = v.get<double>();
    return true;
  };
  auto integer = [&](int64_t &out) {
    // Sizes and step counts; the bound keeps their products in int64.
    expected = "an integer of magnitude below 2^31";
    std::optional<int64_t> i = asInt(v);
    if (!i || *i > std::numeric_limits<int32_t>::max() ||
        *i < std::numeric_limits<int32_t>::min())
      return false;
    out = *i;
    return true;
  };
  auto unit = [&](bool &out) {
    expected = "true (a unit attribute)";
    if (!v.is_boolean())
      return false;
    out = v.get<bool>();
    return true;
  };
  auto oneOf = [&](std::initializer_list<std::string_view> names, auto &out) {
    expected = fmt::format("one of \"{}\"", fmt::join(names, "\", \""));
    if (!v.is_string())
      return false;
    auto it = std::find(names.begin(), names.end(), v.get<std::string>());
    if (it == names.end())
      return false;
    out = static_cast<std::decay_t<decltype(out)>>(it - names.begin());
    return true;
  };
  if (key == "value")
    return number(a.value);
  if (key == "eps")
    return number(a.eps);
  if (key == "seq_len")
    return integer(a.seqLen);
  if (key == "head_dim")
    return integer(a.headDim);
  if (key == "theta")
    return number(a.theta);
  if (key == "inverse")
    return unit(a.inverse);
  if (key == "batch")
    return integer(a.batch);
  if (key == "num_heads")
    return integer(a.numHeads);
  if (key == "num_kv_heads")
    return integer(a.numKvHeads);
  if (key == "transpose_a")
    return unit(a.transposeA);
  if (key == "transpose_b")
    return unit(a.transposeB);
  if (key == "layer") {
    expected = "a string";
    if (!v.is_string())
      return false;
    a.layer = v.get<std::string>();
    return true;
  }
  if (key == "role") {
    expected = "one of \"fwd\", \"bwd_input\", \"bwd_weight\"";
    if (!v.is_string())
      return false;
    a.role = v.get<std::string>();
    return a.role == "fwd" || a.role == "bwd_input" || a.role == "bwd_weight";
  }
  if (key == "max_norm")
    return number(a.maxNorm);
  if (key == "peak_lr")
    return number(a.peakLr);
  if (key == "warmup_steps")
    return integer(a.warmupSteps);
  if (key == "total_steps")
    return integer(a.totalSteps);
  if (key == "schedule") // Same order as cpu::Schedule.
    return oneOf({"constant", "linear", "cosine"}, a.schedule);
  if (key == "beta1")
    return number(a.beta1);
  if (key == "beta2")
    return number(a.beta2);
  if (key == "weight_decay")
    return number(a.weightDecay);
  if (key == "side")
    return oneOf({"right", "left"}, a.side);
  if (key == "transposed")
    return unit(a.transposed);
  // The op table lists only the keys above, so this is "granularity".
  return oneOf({"tensor", "row", "col"}, a.granularity);
}

//===----------------------------------------------------------------------===//
// Per-op shape rules
//===----------------------------------------------------------------------===//

using Shape = std::vector<int64_t>;

/// Shape checks of one op; every failure names the op.
class OpVerifier {
public:
  OpVerifier(const Function &fn, const Op &op, std::string where)
      : fn_(fn), op_(op), where_(std::move(where)) {}

  Status verify();

private:
  const ValueInfo &in(size_t k) const { return fn_.values[op_.operands[k]]; }
  const ValueInfo &out(size_t k) const { return fn_.values[op_.results[k]]; }
  const Shape &inShape(size_t k) const { return in(k).shape; }

  Status fail(const std::string &msg) const {
    return Status::error(fmt::format("{}: {}", where_, msg));
  }
  std::string describe(bool result, size_t k) const {
    return fmt::format("{} {} (value {})", result ? "result" : "operand", k,
                       result ? op_.results[k] : op_.operands[k]);
  }
  Status expectRank(bool result, size_t k, size_t rank) const {
    const Shape &s = result ? out(k).shape : in(k).shape;
    if (s.size() == rank)
      return Status::success();
    return fail(fmt::format("{} has shape {}, expected rank {}",
                            describe(result, k), formatShape(s), rank));
  }
  Status expectShape(bool result, size_t k, const Shape &expected,
                     std::string_view why) const {
    const Shape &s = result ? out(k).shape : in(k).shape;
    if (s == expected)
      return Status::success();
    return fail(fmt::format("{} has shape {}, expected {} ({})",
                            describe(result, k), formatShape(s),
                            formatShape(expected), why));
  }
  Status expectOperand(size_t k, const Shape &e, std::string_view why) const {
    return expectShape(false, k, e, why);
  }
  Status expectResult(size_t k, const Shape &e, std::string_view why) const {
    return expectShape(true, k, e, why);
  }
  Status positive(std::string_view attr, int64_t v) const {
    if (v > 0)
      return Status::success();
    return fail(fmt::format("attribute '{}' is {}, expected > 0", attr, v));
  }

  Status verifyGemm(bool quantized);
  Status verifyAttention();
  Status verifyScale(size_t k, Granularity g, const Shape &x, bool result);

  const Function &fn_;
  const Op &op_;
  std::string where_;
};

Status OpVerifier::verifyGemm(bool quantized) {
  size_t ib = quantized ? 2 : 1;
  HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
  HALO_RETURN_IF_ERROR(expectRank(false, ib, 2));
  const OpAttrs &a = op_.attrs;
  const Shape &A = inShape(0), &B = inShape(ib);
  int64_t M = a.transposeA ? A[1] : A[0], K = a.transposeA ? A[0] : A[1];
  int64_t KB = a.transposeB ? B[1] : B[0], N = a.transposeB ? B[0] : B[1];
  if (K != KB)
    return fail(fmt::format(
        "reduction dimensions differ: op(a) is [{}, {}] and op(b) is [{}, {}] "
        "(a {}{}, b {}{})",
        M, K, KB, N, formatShape(A), a.transposeA ? " transposed" : "",
        formatShape(B), a.transposeB ? " transposed" : ""));
  if (quantized) {
    if (in(0).type != in(2).type)
      return fail(fmt::format("operands 0 and 2 are {} and {}; both must be "
                              "f8E4M3FN or both i8",
                              toString(in(0).type), toString(in(2).type)));
    if (!inShape(1).empty())
      HALO_RETURN_IF_ERROR(
          expectOperand(1, {M}, "scale_a: 0-d or one per output row"));
    if (!inShape(3).empty())
      HALO_RETURN_IF_ERROR(
          expectOperand(3, {N}, "scale_b: 0-d or one per output column"));
  }
  if (std::optional<size_t> acc = accumulatorOperand(op_)) {
    HALO_RETURN_IF_ERROR(
        expectOperand(*acc, {M, N}, "the accumulator is [M, N], like the result"));
    if (in(*acc).type != out(0).type)
      return fail(fmt::format("the accumulator is {} but the result is {}",
                              toString(in(*acc).type), toString(out(0).type)));
  }
  return expectResult(0, {M, N}, "op(a) op(b)");
}

Status OpVerifier::verifyAttention() {
  const OpAttrs &a = op_.attrs;
  HALO_RETURN_IF_ERROR(positive("batch", a.batch));
  HALO_RETURN_IF_ERROR(positive("seq_len", a.seqLen));
  HALO_RETURN_IF_ERROR(positive("num_heads", a.numHeads));
  HALO_RETURN_IF_ERROR(positive("num_kv_heads", a.numKvHeads));
  HALO_RETURN_IF_ERROR(positive("head_dim", a.headDim));
  if (a.numHeads % a.numKvHeads != 0)
    return fail(fmt::format("num_heads {} is not a multiple of num_kv_heads {}",
                            a.numHeads, a.numKvHeads));
  int64_t T = a.batch * a.seqLen;
  Shape q = {T, a.numHeads * a.headDim}, kv = {T, a.numKvHeads * a.headDim};
  const char *qWhy = "[batch * seq_len, num_heads * head_dim]";
  const char *kvWhy = "[batch * seq_len, num_kv_heads * head_dim]";
  HALO_RETURN_IF_ERROR(expectOperand(0, q, qWhy));
  HALO_RETURN_IF_ERROR(expectOperand(1, kv, kvWhy));
  HALO_RETURN_IF_ERROR(expectOperand(2, kv, kvWhy));
  Shape lse = {a.batch * a.numHeads * a.seqLen};
  const char *lseWhy = "[batch * num_heads * seq_len]";
  if (op_.kind == OpKind::Attention) {
    HALO_RETURN_IF_ERROR(expectResult(0, q, qWhy));
    return expectResult(1, lse, lseWhy);
  }
  HALO_RETURN_IF_ERROR(expectOperand(3, q, "out, like q"));
  HALO_RETURN_IF_ERROR(expectOperand(4, lse, lseWhy));
  HALO_RETURN_IF_ERROR(expectOperand(5, q, "dout, like q"));
  HALO_RETURN_IF_ERROR(expectResult(0, q, "dq, like q"));
  HALO_RETURN_IF_ERROR(expectResult(1, kv, "dk, like k"));
  return expectResult(2, kv, "dv, like v");
}

Status OpVerifier::verifyScale(size_t k, Granularity g, const Shape &x,
                               bool result) {
  switch (g) {
  case Granularity::Tensor:
    return expectShape(result, k, {}, "granularity tensor: one 0-d scale");
  case Granularity::Row:
    return expectShape(result, k, {x[0]}, "granularity row: one per row");
  case Granularity::Col:
    return expectShape(result, k, {x[1]}, "granularity col: one per column");
  }
  return Status::success();
}

Status OpVerifier::verify() {
  const OpAttrs &a = op_.attrs;
  auto sameAsOperand0 = [&](size_t first, size_t count) -> Status {
    for (size_t k = first; k < count; ++k)
      HALO_RETURN_IF_ERROR(
          expectOperand(k, inShape(0), "elementwise: same shape as operand 0"));
    return expectResult(0, inShape(0), "same shape as the operands");
  };
  switch (op_.kind) {
  case OpKind::Constant:
    return Status::success();
  case OpKind::Embedding:
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 1));
    HALO_RETURN_IF_ERROR(expectRank(false, 1, 2));
    return expectResult(0, {inShape(0)[0], inShape(1)[1]}, "[T, D]");
  case OpKind::RmsNorm:
  case OpKind::RmsNormGrad: {
    if (a.eps < 0)
      return fail(fmt::format("attribute 'eps' is {}, expected >= 0", a.eps));
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    const Shape &x = inShape(0);
    HALO_RETURN_IF_ERROR(expectOperand(1, {x[1]}, "x's last dimension"));
    HALO_RETURN_IF_ERROR(expectResult(0, x, "like x"));
    if (op_.kind == OpKind::RmsNorm)
      return Status::success();
    HALO_RETURN_IF_ERROR(expectOperand(2, x, "dy, like x"));
    return expectResult(1, {x[1]}, "dw, like w");
  }
  case OpKind::Linear:
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    HALO_RETURN_IF_ERROR(expectRank(false, 1, 2));
    if (inShape(1)[1] != inShape(0)[1])
      return fail(fmt::format("x is {} but w is {}: w must be [n, {}]",
                              formatShape(inShape(0)), formatShape(inShape(1)),
                              inShape(0)[1]));
    return expectResult(0, {inShape(0)[0], inShape(1)[0]}, "[T, n]");
  case OpKind::Rope: {
    HALO_RETURN_IF_ERROR(positive("seq_len", a.seqLen));
    HALO_RETURN_IF_ERROR(positive("head_dim", a.headDim));
    if (a.headDim % 2 != 0)
      return fail(
          fmt::format("head_dim {} is odd; RoPE rotates pairs", a.headDim));
    if (!(a.theta > 0))
      return fail(fmt::format("theta is {}, expected > 0", a.theta));
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    const Shape &x = inShape(0);
    if (x[1] % a.headDim != 0 || x[0] % a.seqLen != 0)
      return fail(fmt::format("x {} is not [k * seq_len, heads * head_dim] "
                              "with seq_len {} and head_dim {}",
                              formatShape(x), a.seqLen, a.headDim));
    return expectResult(0, x, "like x");
  }
  case OpKind::Attention:
  case OpKind::AttentionGrad:
    return verifyAttention();
  case OpKind::Silu:
  case OpKind::Cast:
    return sameAsOperand0(1, 1);
  case OpKind::Transpose: {
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    const Shape &x = inShape(0);
    if (out(0).type != in(0).type)
      return fail("the result must have the operand's element type");
    return expectResult(0, {x[1], x[0]}, "the transpose of x");
  }
  case OpKind::Mul:
  case OpKind::Add:
  case OpKind::SiluGrad:
    return sameAsOperand0(1, 2);
  case OpKind::CrossEntropy:
  case OpKind::CrossEntropyGrad:
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    HALO_RETURN_IF_ERROR(
        expectOperand(1, {inShape(0)[0]}, "one target per row of the logits"));
    if (op_.kind == OpKind::CrossEntropy)
      return expectResult(0, {}, "the mean loss is 0-d");
    return expectResult(0, inShape(0), "like the logits");
  case OpKind::Matmul:
    return verifyGemm(false);
  case OpKind::QMatmul:
    return verifyGemm(true);
  case OpKind::EmbeddingGrad:
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 1));
    HALO_RETURN_IF_ERROR(expectRank(false, 1, 2));
    HALO_RETURN_IF_ERROR(expectRank(true, 0, 2));
    HALO_RETURN_IF_ERROR(
        expectOperand(1, {inShape(0)[0], out(0).shape[1]}, "[T, D]"));
    return Status::success();
  case OpKind::GlobalNorm:
    return expectResult(0, {}, "0-d");
  case OpKind::ClipCoef:
    if (!(a.maxNorm >= 0))
      return fail(fmt::format("max_norm is {}, expected >= 0 (0: no clipping)", a.maxNorm));
    HALO_RETURN_IF_ERROR(expectOperand(0, {}, "0-d norm"));
    return expectResult(0, {}, "0-d");
  case OpKind::LrSchedule:
    if (a.warmupSteps < 0 || a.totalSteps < 0)
      return fail(fmt::format("warmup_steps {} and total_steps {} must be >= 0",
                              a.warmupSteps, a.totalSteps));
    HALO_RETURN_IF_ERROR(expectOperand(0, {}, "0-d step"));
    return expectResult(0, {}, "0-d");
  case OpKind::AdamW: {
    if (!(a.beta1 >= 0 && a.beta1 < 1 && a.beta2 >= 0 && a.beta2 < 1))
      return fail(
          fmt::format("betas ({}, {}) must lie in [0, 1)", a.beta1, a.beta2));
    const char *why = "param, grad, m and v share one shape";
    for (size_t k = 1; k < 4; ++k)
      HALO_RETURN_IF_ERROR(expectOperand(k, inShape(0), why));
    const char *names[] = {"lr", "step", "grad_scale"};
    for (size_t k = 4; k < 7; ++k)
      HALO_RETURN_IF_ERROR(
          expectOperand(k, {}, fmt::format("0-d {}", names[k - 4])));
    for (size_t k = 0; k < 3; ++k)
      HALO_RETURN_IF_ERROR(expectResult(k, inShape(0), why));
    return Status::success();
  }
  case OpKind::Hadamard: {
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    const Shape &x = inShape(0);
    int64_t n = a.side == HadamardSide::Right ? x[1] : x[0];
    if (!numerics::decomposeHadamardSize(n))
      return fail(fmt::format(
          "no Hadamard matrix of size {} (the {} dimension of {}); supported "
          "sizes: {}",
          n, a.side == HadamardSide::Right ? "column" : "row", formatShape(x),
          numerics::supportedHadamardForms()));
    return expectResult(0, x, "like x");
  }
  case OpKind::Quantize:
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    HALO_RETURN_IF_ERROR(expectResult(0, inShape(0), "codes, like x"));
    return verifyScale(1, a.granularity, inShape(0), true);
  case OpKind::Dequantize:
    HALO_RETURN_IF_ERROR(expectRank(false, 0, 2));
    HALO_RETURN_IF_ERROR(verifyScale(1, a.granularity, inShape(0), false));
    return expectResult(0, inShape(0), "like the codes");
  }
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Function parser
//===----------------------------------------------------------------------===//

class FunctionParser {
public:
  FunctionParser(std::string name, std::string where)
      : where_(std::move(where)) {
    fn_.name = std::move(name);
  }

  StatusOr<Function> parse(const json &obj);

private:
  Status fail(const std::string &msg) const {
    return Status::error(fmt::format("{}: {}", where_, msg));
  }
  Status parseValues(const json &values);
  Status parseBinding(const json &entry, bool isInput, size_t index);
  Status parseOp(const json &entry, size_t index);
  /// The id `v` names, or nullopt with the reason in `why`.
  std::optional<int64_t> valueId(const json &v, std::string &why) const;
  /// Checks a data input/output's declared type and shape.
  Status checkDataBinding(const Binding &b, std::string_view kind) const;
  Status checkParamOutputs() const;
  Status parsePlan(const json &obj);

  std::string where_;
  Function fn_;
  std::vector<bool> defined_;
};

std::optional<int64_t> FunctionParser::valueId(const json &v,
                                               std::string &why) const {
  std::optional<int64_t> id = asInt(v);
  if (!id) {
    why = fmt::format("expected a value id, got {}", kindOf(v));
    return std::nullopt;
  }
  if (*id < 0 || *id >= int64_t(fn_.values.size())) {
    why = fmt::format("value id {} is out of range (the function has {} "
                      "values)",
                      *id, fn_.values.size());
    return std::nullopt;
  }
  return id;
}

Status FunctionParser::parseValues(const json &values) {
  if (!values.is_array())
    return fail(
        fmt::format("\"values\" must be an array, got {}", kindOf(values)));
  for (size_t i = 0; i < values.size(); ++i) {
    const json &v = values[i];
    std::string what = fmt::format("values[{}]", i);
    if (!v.is_object())
      return fail(
          fmt::format("{}: expected an object, got {}", what, kindOf(v)));
    HALO_RETURN_IF_ERROR(checkKeys(v, {"type", "shape"}, where_ + ": " + what));
    if (!v.contains("type") || !v.contains("shape"))
      return fail(fmt::format("{}: needs \"type\" and \"shape\"", what));
    ValueInfo info;
    const json &type = v["type"];
    bool known = false;
    for (ElementType t :
         {ElementType::BF16, ElementType::F32, ElementType::F8E4M3FN,
          ElementType::I8, ElementType::I32})
      if (type.is_string() && type.get<std::string>() == toString(t)) {
        info.type = t;
        known = true;
      }
    if (!known)
      return fail(fmt::format("{}: unknown type {} (expected bf16, f32, "
                              "f8E4M3FN, i8 or i32)",
                              what, kindOf(type)));
    const json &shape = v["shape"];
    if (!shape.is_array())
      return fail(fmt::format("{}: \"shape\" must be an array, got {}", what,
                              kindOf(shape)));
    for (const json &d : shape) {
      std::optional<int64_t> dim = asInt(d);
      if (!dim || *dim < 1)
        return fail(fmt::format("{}: shape {} has a dimension that is not a "
                                "positive integer",
                                what, shape.dump()));
      if (*dim > kMaxElements / info.numel)
        return fail(fmt::format("{}: shape {} has too many elements", what,
                                shape.dump()));
      info.shape.push_back(*dim);
      info.numel *= *dim;
    }
    fn_.values.push_back(std::move(info));
  }
  defined_.assign(fn_.values.size(), false);
  return Status::success();
}

Status FunctionParser::checkDataBinding(const Binding &b,
                                        std::string_view kind) const {
  const ValueInfo &v = fn_.values[b.value];
  bool ids = b.name == "tokens" || b.name == "targets";
  ElementType want =
      ids || b.name == "step" ? ElementType::I32 : ElementType::F32;
  bool shapeOk = ids ? v.shape.size() == 1 : v.shape.empty();
  if (v.type == want && shapeOk)
    return Status::success();
  return fail(fmt::format("{} \"{}\" (value {}) is {} {}, expected {} {}", kind,
                          b.name, b.value, toString(v.type),
                          formatShape(v.shape), toString(want),
                          ids ? "[T]" : "0-d"));
}

Status FunctionParser::parseBinding(const json &entry, bool isInput,
                                    size_t index) {
  std::string what =
      fmt::format("{}[{}]", isInput ? "inputs" : "outputs", index);
  if (!entry.is_object())
    return fail(
        fmt::format("{}: expected an object, got {}", what, kindOf(entry)));
  const char *dataKey = isInput ? "input" : "output";
  HALO_RETURN_IF_ERROR(
      checkKeys(entry, {"value", dataKey, "param", "state", "init", "frozen"},
                where_ + ": " + what));
  if (!entry.contains("value"))
    return fail(fmt::format("{}: missing \"value\"", what));
  std::string why;
  std::optional<int64_t> id = valueId(entry["value"], why);
  if (!id)
    return fail(fmt::format("{}: {}", what, why));
  Binding b;
  b.value = *id;
  auto str = [&](const char *key, std::string &out) -> Status {
    if (!entry.contains(key))
      return Status::success();
    if (!entry[key].is_string())
      return fail(fmt::format("{}: \"{}\" must be a string, got {}", what, key,
                              kindOf(entry[key])));
    out = entry[key].get<std::string>();
    return Status::success();
  };
  HALO_RETURN_IF_ERROR(str(dataKey, b.name));
  HALO_RETURN_IF_ERROR(str("param", b.param));
  HALO_RETURN_IF_ERROR(str("state", b.state));
  HALO_RETURN_IF_ERROR(str("init", b.init));
  if (entry.contains("frozen")) {
    if (!entry["frozen"].is_boolean())
      return fail(fmt::format("{}: \"frozen\" must be true or false", what));
    b.frozen = entry["frozen"].get<bool>();
  }
  if (!b.name.empty() && !b.param.empty())
    return fail(
        fmt::format("{}: has both \"{}\" and \"param\"", what, dataKey));
  if (!b.isParam() && (!b.state.empty() || !b.init.empty() || b.frozen))
    return fail(fmt::format("{}: \"state\", \"init\" and \"frozen\" apply "
                            "to parameters only",
                            what));
  if (!b.name.empty()) {
    static const std::vector<std::string_view> kInputs = {"tokens", "targets",
                                                          "step"};
    static const std::vector<std::string_view> kOutputs = {"loss", "grad_norm",
                                                           "lr"};
    const std::vector<std::string_view> &names = isInput ? kInputs : kOutputs;
    if (std::find(names.begin(), names.end(), b.name) == names.end())
      return fail(fmt::format("{}: unknown {} \"{}\" (expected {})", what,
                              dataKey, b.name, fmt::join(names, ", ")));
    HALO_RETURN_IF_ERROR(checkDataBinding(b, dataKey));
    bool duplicate =
        isInput ? fn_.findInput(b.name) >= 0 : fn_.findOutput(b.name) >= 0;
    if (duplicate)
      return fail(
          fmt::format("{}: {} \"{}\" appears twice", what, dataKey, b.name));
  } else if (b.isParam()) {
    if (b.state.empty())
      b.state = "param";
    // Outputs may also carry gradients (halo-autodiff{return-grads}).
    bool known = b.state == "param" || b.state == "exp_avg" ||
                 b.state == "exp_avg_sq" || b.state == "compute" ||
                 (!isInput && b.state == "grad");
    if (!known)
      return fail(fmt::format("{}: unknown state \"{}\" of \"{}\" (expected "
                              "param, exp_avg, exp_avg_sq, compute{})",
                              what, b.state, b.param,
                              isInput ? "" : " or grad"));
    if (!b.init.empty() && b.init != "normal" && b.init != "ones")
      return fail(fmt::format("{}: unknown init \"{}\" of \"{}\" (expected "
                              "normal or ones)",
                              what, b.init, b.param));
    if (!isFloatType(fn_.values[b.value].type))
      return fail(fmt::format("{}: state \"{}\" of \"{}\" is {}, expected bf16 "
                              "or f32",
                              what, b.state, b.param,
                              toString(fn_.values[b.value].type)));
    const std::vector<Binding> &list = isInput ? fn_.inputs : fn_.outputs;
    for (const Binding &o : list)
      if (o.param == b.param && o.state == b.state)
        return fail(fmt::format("{}: state \"{}\" of \"{}\" appears twice",
                                what, b.state, b.param));
  }
  if (isInput) {
    if (defined_[b.value])
      return fail(
          fmt::format("{}: value {} is already an input", what, b.value));
    defined_[b.value] = true;
    fn_.inputs.push_back(std::move(b));
  } else {
    if (!defined_[b.value])
      return fail(fmt::format("{}: value {} is never defined", what, b.value));
    fn_.outputs.push_back(std::move(b));
  }
  return Status::success();
}

Status FunctionParser::parseOp(const json &entry, size_t index) {
  std::string what = fmt::format("op #{}", index);
  if (!entry.is_object())
    return fail(
        fmt::format("{}: expected an object, got {}", what, kindOf(entry)));
  if (!entry.contains("op") || !entry["op"].is_string())
    return fail(fmt::format("{}: missing \"op\" (the op name)", what));
  std::string name = entry["op"].get<std::string>();
  Op op;
  if (entry.contains("loc")) {
    if (!entry["loc"].is_string())
      return fail(fmt::format("{} '{}': \"loc\" must be a string", what, name));
    op.loc = entry["loc"].get<std::string>();
  }
  // From here on every message names the op and where it comes from.
  std::string opWhere =
      op.loc.empty()
          ? fmt::format("{}: {} '{}'", where_, what, name)
          : fmt::format("{}: {} '{}' ({})", where_, what, name, op.loc);
  auto opFail = [&](const std::string &msg) {
    return Status::error(fmt::format("{}: {}", opWhere, msg));
  };
  const OpSpec *spec = findSpec(name);
  if (!spec)
    return opFail(fmt::format("unknown op; known ops: {}; {} with a matching "
                              "version",
                              knownOps(), kRecompileHint));
  op.kind = spec->kind;
  HALO_RETURN_IF_ERROR(
      checkKeys(entry, {"op", "operands", "results", "attrs", "loc"}, opWhere));

  // Attributes.
  json attrs = entry.value("attrs", json::object());
  if (!attrs.is_object())
    return opFail(
        fmt::format("\"attrs\" must be an object, got {}", kindOf(attrs)));
  auto allowed = [&](const std::string &key) {
    auto has = [&](const std::vector<std::string_view> &l) {
      return std::find(l.begin(), l.end(), key) != l.end();
    };
    return has(spec->required) || has(spec->optional);
  };
  for (auto it = attrs.begin(); it != attrs.end(); ++it) {
    if (!allowed(it.key())) {
      std::vector<std::string_view> all = spec->required;
      all.insert(all.end(), spec->optional.begin(), spec->optional.end());
      return opFail(
          fmt::format("unknown attribute '{}' (this op takes: {})", it.key(),
                      all.empty() ? std::string("none")
                                  : fmt::format("{}", fmt::join(all, ", "))));
    }
    std::string expected;
    if (!readAttr(it.key(), it.value(), op.attrs, expected))
      return opFail(fmt::format("attribute '{}' is {}, expected {}", it.key(),
                                kindOf(it.value()), expected));
  }
  for (std::string_view key : spec->required)
    if (!attrs.contains(std::string(key)))
      return opFail(fmt::format("missing attribute '{}'", key));

  // Operands and results.
  auto ids = [&](const char *key, std::vector<int64_t> &out) -> Status {
    if (!entry.contains(key) || !entry[key].is_array())
      return opFail(fmt::format("\"{}\" must be an array of value ids", key));
    for (size_t k = 0; k < entry[key].size(); ++k) {
      std::string why;
      std::optional<int64_t> id = valueId(entry[key][k], why);
      if (!id)
        return opFail(fmt::format("{}[{}]: {}", key, k, why));
      out.push_back(*id);
    }
    return Status::success();
  };
  HALO_RETURN_IF_ERROR(ids("operands", op.operands));
  HALO_RETURN_IF_ERROR(ids("results", op.results));
  size_t wantOperands = spec->operands.size();
  size_t maxOperands = wantOperands + spec->optionalOperands.size();
  bool arityOk = spec->variadic ? !op.operands.empty()
                                : op.operands.size() >= wantOperands &&
                                      op.operands.size() <= maxOperands;
  if (!arityOk)
    return opFail(fmt::format(
        "has {} operands, expected {}", op.operands.size(),
        spec->variadic ? std::string("at least 1")
        : maxOperands == wantOperands
            ? std::to_string(wantOperands)
            : fmt::format("{} to {}", wantOperands, maxOperands)));
  if (op.results.size() != spec->results.size())
    return opFail(fmt::format("has {} results, expected {}", op.results.size(),
                              spec->results.size()));
  for (size_t k = 0; k < op.operands.size(); ++k) {
    int64_t id = op.operands[k];
    if (!defined_[id])
      return opFail(fmt::format("operand {} (value {}) is used before it is "
                                "defined",
                                k, id));
    char cls = spec->variadic         ? spec->operands[0]
               : k < wantOperands ? spec->operands[k]
                                  : spec->optionalOperands[k - wantOperands];
    ElementType t = fn_.values[id].type;
    if (!inClass(t, cls))
      return opFail(fmt::format("operand {} (value {}) is {}, expected {}", k,
                                id, toString(t), className(cls)));
  }
  for (size_t k = 0; k < op.results.size(); ++k) {
    int64_t id = op.results[k];
    if (defined_[id])
      return opFail(
          fmt::format("result {} (value {}) is already defined", k, id));
    defined_[id] = true;
    ElementType t = fn_.values[id].type;
    if (!inClass(t, spec->results[k]))
      return opFail(fmt::format("result {} (value {}) is {}, expected {}", k,
                                id, toString(t), className(spec->results[k])));
  }
  HALO_RETURN_IF_ERROR(OpVerifier(fn_, op, opWhere).verify());
  fn_.ops.push_back(std::move(op));
  return Status::success();
}

Status FunctionParser::checkParamOutputs() const {
  // A compute copy is derived from its master (deriveComputeCopies).
  for (const Binding &in : fn_.inputs) {
    if (in.state != "compute")
      continue;
    int64_t master = fn_.findParamInput(in.param, "param");
    if (master < 0 || fn_.values[fn_.inputs[master].value].shape != fn_.values[in.value].shape)
      return fail(fmt::format("input state \"compute\" of \"{}\" has no \"param\" input of "
                              "its shape to be derived from",
                              in.param));
  }
  for (const Binding &out : fn_.outputs) {
    if (!out.isParam())
      continue;
    // A gradient output is read by tests and tools; it updates no input.
    if (out.state == "grad") {
      if (fn_.findParamInput(out.param, "param") < 0)
        return fail(fmt::format("gradient output of \"{}\" names no parameter "
                                "input",
                                out.param));
      continue;
    }
    int64_t in = fn_.findParamInput(out.param, out.state);
    if (in < 0)
      return fail(fmt::format("output state \"{}\" of \"{}\" has no matching "
                              "input to update",
                              out.state, out.param));
    const ValueInfo &a = fn_.values[fn_.inputs[in].value];
    const ValueInfo &b = fn_.values[out.value];
    if (a.type != b.type || a.shape != b.shape)
      return fail(fmt::format("output state \"{}\" of \"{}\" is {} {} but the "
                              "input is {} {}",
                              out.state, out.param, toString(b.type),
                              formatShape(b.shape), toString(a.type),
                              formatShape(a.shape)));
  }
  return Status::success();
}

StatusOr<Function> FunctionParser::parse(const json &obj) {
  if (!obj.is_object())
    return fail(fmt::format("expected an object, got {}", kindOf(obj)));
  HALO_RETURN_IF_ERROR(
      checkKeys(obj, {"values", "inputs", "outputs", "ops", "schedule", "arena_bytes", "offsets"},
                where_));
  for (const char *key : {"values", "inputs", "outputs", "ops"})
    if (!obj.contains(key))
      return fail(fmt::format("missing \"{}\"", key));
  HALO_RETURN_IF_ERROR(parseValues(obj["values"]));
  for (const char *key : {"inputs", "outputs", "ops"})
    if (!obj[key].is_array())
      return fail(fmt::format("\"{}\" must be an array, got {}", key,
                              kindOf(obj[key])));
  for (size_t i = 0; i < obj["inputs"].size(); ++i)
    HALO_RETURN_IF_ERROR(parseBinding(obj["inputs"][i], true, i));
  for (size_t i = 0; i < obj["ops"].size(); ++i)
    HALO_RETURN_IF_ERROR(parseOp(obj["ops"][i], i));
  for (size_t v = 0; v < defined_.size(); ++v)
    if (!defined_[v])
      return fail(
          fmt::format("value {} is neither an input nor an op result", v));
  for (size_t i = 0; i < obj["outputs"].size(); ++i)
    HALO_RETURN_IF_ERROR(parseBinding(obj["outputs"][i], false, i));
  HALO_RETURN_IF_ERROR(checkParamOutputs());
  HALO_RETURN_IF_ERROR(parsePlan(obj));
  return std::move(fn_);
}

// The schedule must cover every op exactly once, in order, and the plan's
// buffers must fit the arena.
Status FunctionParser::parsePlan(const json &obj) {
  std::string why;
  auto ids = [&](const json &list, std::vector<int64_t> &out,
                 const std::string &what) -> Status {
    if (!list.is_array())
      return fail(fmt::format("{} must be an array", what));
    for (const json &v : list) {
      std::optional<int64_t> id = valueId(v, why);
      if (!id)
        return fail(fmt::format("{}: {}", what, why));
      out.push_back(*id);
    }
    return Status::success();
  };
  if (obj.contains("schedule")) {
    const json &steps = obj["schedule"];
    if (!steps.is_array())
      return fail("\"schedule\" must be an array");
    int64_t next = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      const json &e = steps[i];
      std::string what = fmt::format("schedule[{}]", i);
      if (!e.is_object())
        return fail(fmt::format("{} must be an object", what));
      HALO_RETURN_IF_ERROR(checkKeys(e, {"kernel", "ops", "inputs", "outputs"},
                                     where_ + ": " + what));
      ScheduleStep step;
      if (e.contains("kernel")) {
        if (!e["kernel"].is_string())
          return fail(fmt::format("{}.kernel must be a string", what));
        step.kernel = e["kernel"].get<std::string>();
      }
      const json &range = e.contains("ops") ? e["ops"] : json();
      std::optional<int64_t> first = range.is_array() && range.size() == 2 ? asInt(range[0]) : std::nullopt;
      std::optional<int64_t> count = range.is_array() && range.size() == 2 ? asInt(range[1]) : std::nullopt;
      if (!first || !count || *first != next || *count < 1 ||
          *first + *count > int64_t(fn_.ops.size()))
        return fail(fmt::format("{}.ops must be [first, count] continuing at op {} "
                                "(the schedule covers every op once, in order)",
                                what, next));
      step.firstOp = *first;
      step.numOps = *count;
      next = *first + *count;
      if (e.contains("inputs"))
        HALO_RETURN_IF_ERROR(ids(e["inputs"], step.inputs, what + ".inputs"));
      if (e.contains("outputs"))
        HALO_RETURN_IF_ERROR(ids(e["outputs"], step.outputs, what + ".outputs"));
      fn_.schedule.push_back(std::move(step));
    }
    if (next != int64_t(fn_.ops.size()))
      return fail(fmt::format("the schedule covers {} of {} ops", next, fn_.ops.size()));
  }
  fn_.offsets.assign(fn_.values.size(), -1);
  if (obj.contains("arena_bytes")) {
    std::optional<int64_t> arena = asInt(obj["arena_bytes"]);
    if (!arena || *arena < 0)
      return fail("\"arena_bytes\" must be a non-negative integer");
    fn_.arenaBytes = *arena;
  }
  if (obj.contains("offsets")) {
    const json &list = obj["offsets"];
    if (!list.is_array())
      return fail("\"offsets\" must be an array of [value, offset] pairs");
    for (const json &pair : list) {
      std::optional<int64_t> id =
          pair.is_array() && pair.size() == 2 ? valueId(pair[0], why) : std::nullopt;
      std::optional<int64_t> offset =
          pair.is_array() && pair.size() == 2 ? asInt(pair[1]) : std::nullopt;
      if (!id || !offset || *offset < 0)
        return fail(fmt::format("offsets: bad entry {}", pair.dump()));
      const ValueInfo &info = fn_.values[*id];
      int64_t bytes = info.numel * (info.type == ElementType::BF16       ? 2
                                    : isQuantType(info.type)             ? 1
                                                                         : 4);
      if (*offset + bytes > fn_.arenaBytes)
        return fail(fmt::format("offsets: value {} ({} bytes at {}) ends past the "
                                "{}-byte arena",
                                *id, bytes, *offset, fn_.arenaBytes));
      fn_.offsets[*id] = *offset;
    }
    // A GEMM with an accumulator adds into it in place (halo-plan-memory).
    for (size_t i = 0; i < fn_.ops.size(); ++i)
      if (std::optional<size_t> acc = accumulatorOperand(fn_.ops[i])) {
        int64_t a = fn_.ops[i].operands[*acc], r = fn_.ops[i].results[0];
        if (fn_.offsets[a] < 0 || fn_.offsets[a] != fn_.offsets[r])
          return fail(fmt::format("offsets: op #{}'s accumulator (value {}) and result (value "
                                  "{}) must share one arena offset, got {} and {}",
                                  i, a, r, fn_.offsets[a], fn_.offsets[r]));
      }
  }
  return Status::success();
}

/// The "cuda" section (docs/program-format.md).
Status parseCuda(const json &cuda, Program &program, const std::string &where) {
  if (!cuda.is_object())
    return Status::error(fmt::format("{}: \"cuda\" must be an object", where));
  HALO_RETURN_IF_ERROR(
      checkKeys(cuda, {"target_sm", "fp8_fast_accum", "sources", "kernels"}, where + ": cuda"));
  if (cuda.contains("fp8_fast_accum")) {
    const json &f = cuda["fp8_fast_accum"];
    if (!f.is_string() || (f != "none" && f != "fwd" && f != "all"))
      return Status::error(
          fmt::format("{}: cuda.fp8_fast_accum must be \"none\", \"fwd\" or \"all\"", where));
    program.cudaFp8FastAccum = f.get<std::string>();
  }
  if (cuda.contains("target_sm")) {
    std::optional<int64_t> sm = asInt(cuda["target_sm"]);
    if (!sm || *sm < 0 || *sm > 1000)
      return Status::error(fmt::format("{}: cuda.target_sm must be a compute capability x 10 "
                                       "(e.g. 90)",
                                       where));
    program.cudaTargetSm = static_cast<int>(*sm);
  }
  const json &sources = cuda.contains("sources") ? cuda["sources"] : json::object();
  const json &kernels = cuda.contains("kernels") ? cuda["kernels"] : json::object();
  if (!sources.is_object() || !kernels.is_object())
    return Status::error(fmt::format("{}: cuda.sources and cuda.kernels must be objects", where));
  for (auto it = sources.begin(); it != sources.end(); ++it) {
    if (!it.value().is_string())
      return Status::error(fmt::format("{}: cuda.sources.{} must be a string", where, it.key()));
    program.cudaSources[it.key()] = it.value().get<std::string>();
  }
  auto dims = [](const json &v, std::array<unsigned, 3> &out) {
    if (!v.is_array() || v.size() != 3)
      return false;
    for (size_t i = 0; i < 3; ++i) {
      std::optional<int64_t> d = asInt(v[i]);
      if (!d || *d < 1 || *d > int64_t(UINT32_MAX))
        return false;
      out[i] = unsigned(*d);
    }
    return true;
  };
  for (auto it = kernels.begin(); it != kernels.end(); ++it) {
    std::string what = fmt::format("{}: cuda.kernels.{}", where, it.key());
    const json &k = it.value();
    if (!k.is_object() || !k.contains("kind") || !k["kind"].is_string() ||
        !k.contains("parts") || !k["parts"].is_array())
      return Status::error(fmt::format("{}: needs \"kind\" and \"parts\"", what));
    CudaKernel kernel;
    kernel.kind = k["kind"].get<std::string>();
    for (const json &p : k["parts"]) {
      KernelPart part;
      if (!p.is_object() || !p.contains("program") || !p["program"].is_string() ||
          !p.contains("launches") || !p["launches"].is_array())
        return Status::error(fmt::format("{}: each part needs \"program\" and \"launches\"", what));
      part.program = p["program"].get<std::string>();
      if (!program.cudaSources.count(part.program))
        return Status::error(fmt::format("{}: no source for program \"{}\"", what, part.program));
      for (const char *key : {"workspace_bytes", "scratch_bytes"})
        if (p.contains(key)) {
          std::optional<int64_t> n = asInt(p[key]);
          if (!n || *n < 0)
            return Status::error(fmt::format("{}: {} must be a non-negative integer", what, key));
          (std::string_view(key) == "workspace_bytes" ? part.workspaceBytes : part.scratchBytes) =
              uint64_t(*n);
        }
      for (const json &l : p["launches"]) {
        KernelLaunch launch;
        if (!l.is_object() || !l.contains("entry") || !l["entry"].is_string() ||
            !l.contains("grid") || !dims(l["grid"], launch.grid) || !l.contains("block") ||
            !dims(l["block"], launch.block))
          return Status::error(fmt::format("{}: a launch needs \"entry\", \"grid\" and "
                                           "\"block\" (3 positive integers each)",
                                           what));
        launch.entry = l["entry"].get<std::string>();
        if (l.contains("shared_bytes"))
          launch.sharedBytes = unsigned(asInt(l["shared_bytes"]).value_or(0));
        if (l.contains("signature") && l["signature"].is_string())
          launch.signature = l["signature"].get<std::string>();
        part.launches.push_back(std::move(launch));
      }
      kernel.parts.push_back(std::move(part));
    }
    program.cudaKernels.emplace(it.key(), std::move(kernel));
  }
  return Status::success();
}

StatusOr<json> parseJson(const std::string &text, const std::string &where) {
  try {
    return json::parse(text);
  } catch (const json::exception &e) {
    return Status::error(fmt::format("{}: malformed manifest JSON: {}; {}",
                                     where, e.what(), kRecompileHint));
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// Public API
//===----------------------------------------------------------------------===//

std::string_view toString(ElementType type) {
  switch (type) {
  case ElementType::BF16:
    return "bf16";
  case ElementType::F32:
    return "f32";
  case ElementType::F8E4M3FN:
    return "f8E4M3FN";
  case ElementType::I8:
    return "i8";
  case ElementType::I32:
    return "i32";
  }
  return "?";
}

bool isFloatType(ElementType type) {
  return type == ElementType::BF16 || type == ElementType::F32;
}

bool isQuantType(ElementType type) {
  return type == ElementType::F8E4M3FN || type == ElementType::I8;
}

std::string_view toString(OpKind kind) { return specOf(kind).name; }

std::optional<size_t> accumulatorOperand(const Op &op) {
  size_t fixed = specOf(op.kind).operands.size();
  if ((op.kind != OpKind::Matmul && op.kind != OpKind::QMatmul) ||
      op.operands.size() <= fixed)
    return std::nullopt;
  return fixed;
}

std::string formatShape(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t Function::findInput(std::string_view name) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == name)
      return int64_t(i);
  return -1;
}

int64_t Function::findParamInput(std::string_view param,
                                 std::string_view state) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].param == param && inputs[i].state == state)
      return int64_t(i);
  return -1;
}

int64_t Function::findOutput(std::string_view name) const {
  for (size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].name == name)
      return int64_t(i);
  return -1;
}

const Function *Program::find(const std::string &name) const {
  auto it = functions.find(name);
  return it == functions.end() ? nullptr : &it->second;
}

StatusOr<Function> parseFunction(const std::string &functionJson,
                                 const std::string &name,
                                 const std::string &displayName) {
  StatusOr<json> obj = parseJson(functionJson, displayName);
  if (!obj.ok())
    return obj.status();
  return FunctionParser(name, fmt::format("{}: {}", displayName, name))
      .parse(*obj);
}

StatusOr<Program> parseProgramManifest(const std::string &manifestJson,
                                       const std::string &displayName) {
  StatusOr<json> parsed = parseJson(manifestJson, displayName);
  if (!parsed.ok())
    return parsed.status();
  const json &manifest = *parsed;
  if (!manifest.is_object())
    return Status::error(
        fmt::format("{}: the manifest is {}, not an object; {}", displayName,
                    kindOf(manifest), kRecompileHint));
  HALO_RETURN_IF_ERROR(
      checkKeys(manifest, {"model", "functions", "cuda"}, displayName));
  if (!manifest.contains("model") || !manifest["model"].is_object())
    return Status::error(
        fmt::format("{}: the manifest has no \"model\" object; {}", displayName,
                    kRecompileHint));
  if (!manifest.contains("functions") || !manifest["functions"].is_object())
    return Status::error(
        fmt::format("{}: the manifest has no \"functions\" object; {}",
                    displayName, kRecompileHint));
  const json &functions = manifest["functions"];
  HALO_RETURN_IF_ERROR(checkKeys(functions, {"train_step", "forward"},
                                 displayName + ": functions"));
  if (!functions.contains("train_step"))
    return Status::error(fmt::format("{}: no \"train_step\" function; {}",
                                     displayName, kRecompileHint));
  Program program;
  program.path = displayName;
  program.modelJson = manifest["model"].dump();
  for (auto it = functions.begin(); it != functions.end(); ++it) {
    StatusOr<Function> fn =
        FunctionParser(it.key(), fmt::format("{}: {}", displayName, it.key()))
            .parse(it.value());
    if (!fn.ok())
      return fn.status();
    if (fn->findOutput("loss") < 0)
      return Status::error(fmt::format("{}: {}: no \"loss\" output; {}",
                                       displayName, it.key(), kRecompileHint));
    program.functions.emplace(it.key(), std::move(*fn));
  }
  if (manifest.contains("cuda"))
    HALO_RETURN_IF_ERROR(parseCuda(manifest["cuda"], program, displayName));
  // Without a cuda section (a CPU-only export) kernel names are labels.
  for (auto &[name, fn] : program.functions)
    for (const ScheduleStep &step : fn.schedule)
      if (manifest.contains("cuda") && !step.kernel.empty() &&
          !program.cudaKernels.count(step.kernel))
        return Status::error(fmt::format("{}: {}: the schedule names kernel \"{}\" which the "
                                         "cuda section does not define; {}",
                                         displayName, name, step.kernel, kRecompileHint));
  return program;
}

StatusOr<Program> readProgram(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::error(fmt::format(
        "{}: cannot open the program file: {}; hint: compile one with "
        "`haloc <model.json> -o {}`",
        path, std::strerror(errno), path));
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (in.bad())
    return Status::error(
        fmt::format("{}: read error: {}", path, std::strerror(errno)));
  if (bytes.size() < kProgramHeaderBytes ||
      std::memcmp(bytes.data(), kProgramMagic, sizeof(kProgramMagic)) != 0)
    return Status::error(fmt::format(
        "{}: not a halo program (expected the magic \"HALOPROG\" in the first "
        "8 bytes); {}",
        path, kRecompileHint));
  auto le = [&](size_t offset, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i)
      v |= uint64_t(uint8_t(bytes[offset + i])) << (8 * i);
    return v;
  };
  uint64_t version = le(8, 4);
  if (version != kProgramVersion)
    return Status::error(fmt::format("{}: unsupported format version {} (this "
                                     "halo-run reads version {}); {}",
                                     path, version, kProgramVersion,
                                     kRecompileHint));
  uint64_t length = le(12, 8);
  uint64_t available = bytes.size() - kProgramHeaderBytes;
  if (length != available)
    return Status::error(fmt::format(
        "{}: the header declares a {}-byte manifest but {} bytes follow it "
        "({}); {}",
        path, length, available,
        length > available ? "truncated file" : "trailing bytes",
        kRecompileHint));
  return parseProgramManifest(bytes.substr(kProgramHeaderBytes), path);
}

Status writeProgram(const std::string &path, const std::string &manifestJson) {
  StatusOr<io::AtomicFileWriter> writer = io::AtomicFileWriter::create(
      path, "the previous program file (if any) is unchanged");
  if (!writer.ok())
    return writer.status();
  char header[kProgramHeaderBytes];
  std::memcpy(header, kProgramMagic, sizeof(kProgramMagic));
  uint64_t length = manifestJson.size();
  for (int i = 0; i < 4; ++i)
    header[8 + i] = char((kProgramVersion >> (8 * i)) & 0xFF);
  for (int i = 0; i < 8; ++i)
    header[12 + i] = char((length >> (8 * i)) & 0xFF);
  HALO_RETURN_IF_ERROR(writer->write(header, sizeof(header)));
  HALO_RETURN_IF_ERROR(writer->write(manifestJson.data(), manifestJson.size()));
  return writer->commit();
}

} // namespace halo::cpu
