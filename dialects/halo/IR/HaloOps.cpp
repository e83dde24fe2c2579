//===- HaloOps.cpp - Verifiers of the halo dialect -----------------------===//
//
// Each verifier checks the shape algebra of its op and names the offending
// shapes in the message, because these are the errors a user of halo-opt or a
// pass author sees first.
//
//===----------------------------------------------------------------------===//
#include "dialects/halo/IR/HaloOps.h"

#include "runtime/numerics/Hadamard.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace halo;

namespace {

RankedTensorType tensorType(Value v) { return cast<RankedTensorType>(v.getType()); }
ArrayRef<int64_t> shapeOf(Value v) { return tensorType(v).getShape(); }
Type elementOf(Value v) { return tensorType(v).getElementType(); }

/// Emits "'<name>' must be rank <rank>, got tensor<...>" unless v has the rank.
LogicalResult expectRank(Operation *op, Value v, StringRef name, int64_t rank) {
  if (tensorType(v).getRank() == rank)
    return success();
  return op->emitOpError() << name << " must be rank " << rank << ", got " << v.getType();
}

LogicalResult expectShape(Operation *op, Value v, StringRef name, ArrayRef<int64_t> shape) {
  if (shapeOf(v) == shape)
    return success();
  std::string want;
  llvm::raw_string_ostream os(want);
  llvm::interleave(shape, os, "x");
  return op->emitOpError() << name << " must have shape [" << want << "], got " << v.getType();
}

LogicalResult expectPositive(Operation *op, StringRef name, int64_t value) {
  if (value > 0)
    return success();
  return op->emitOpError() << name << " must be positive, got " << value;
}

/// Shared by attention and attention_grad.
LogicalResult verifyAttentionShapes(Operation *op, Value q, Value k, Value v, int64_t batch,
                                    int64_t seqLen, int64_t heads, int64_t kvHeads,
                                    int64_t headDim) {
  for (auto [name, value] :
       {std::pair<StringRef, int64_t>{"batch", batch}, {"seq_len", seqLen},
        {"num_heads", heads}, {"num_kv_heads", kvHeads}, {"head_dim", headDim}})
    if (failed(expectPositive(op, name, value)))
      return failure();
  if (heads % kvHeads != 0)
    return op->emitOpError() << "num_heads (" << heads << ") must be a multiple of num_kv_heads ("
                             << kvHeads << ")";
  int64_t tokens = batch * seqLen;
  if (failed(expectShape(op, q, "q", {tokens, heads * headDim})) ||
      failed(expectShape(op, k, "k", {tokens, kvHeads * headDim})) ||
      failed(expectShape(op, v, "v", {tokens, kvHeads * headDim})))
    return failure();
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  if (failed(expectRank(*this, getIds(), "ids", 1)) ||
      failed(expectRank(*this, getTable(), "table", 2)))
    return failure();
  int64_t tokens = shapeOf(getIds())[0], dim = shapeOf(getTable())[1];
  if (failed(expectShape(*this, getResult(), "result", {tokens, dim})))
    return failure();
  if (elementOf(getResult()) != elementOf(getTable()))
    return emitOpError() << "result element type " << elementOf(getResult())
                         << " differs from the table's " << elementOf(getTable());
  return success();
}

LogicalResult RmsNormOp::verify() {
  if (failed(expectRank(*this, getX(), "x", 2)))
    return failure();
  if (failed(expectShape(*this, getWeight(), "weight", {shapeOf(getX())[1]})))
    return failure();
  if (getResult().getType() != getX().getType())
    return emitOpError() << "result type " << getResult().getType() << " differs from x's "
                         << getX().getType();
  if (!(getEps().convertToDouble() > 0))
    return emitOpError() << "eps must be positive, got " << getEps().convertToDouble();
  return success();
}

LogicalResult LinearOp::verify() {
  if (failed(expectRank(*this, getX(), "x", 2)) ||
      failed(expectRank(*this, getWeight(), "weight", 2)))
    return failure();
  ArrayRef<int64_t> x = shapeOf(getX()), w = shapeOf(getWeight());
  if (x[1] != w[1])
    return emitOpError() << "x " << getX().getType() << " has " << x[1]
                         << " input features but weight " << getWeight().getType()
                         << " (layout [out, in]) expects " << w[1];
  return expectShape(*this, getResult(), "result", {x[0], w[0]});
}

LogicalResult RopeOp::verify() {
  if (failed(expectRank(*this, getX(), "x", 2)) ||
      failed(expectPositive(*this, "seq_len", getSeqLen())) ||
      failed(expectPositive(*this, "head_dim", getHeadDim())))
    return failure();
  ArrayRef<int64_t> x = shapeOf(getX());
  if (getHeadDim() % 2 != 0)
    return emitOpError() << "head_dim must be even for rotate-half RoPE, got " << getHeadDim();
  if (x[1] % getHeadDim() != 0)
    return emitOpError() << "width " << x[1] << " of " << getX().getType()
                         << " is not a multiple of head_dim " << getHeadDim();
  if (x[0] % getSeqLen() != 0)
    return emitOpError() << "token count " << x[0] << " is not a multiple of seq_len "
                         << getSeqLen();
  if (!(getTheta().convertToDouble() > 0))
    return emitOpError() << "theta must be positive";
  if (getResult().getType() != getX().getType())
    return emitOpError() << "result type must equal the input type " << getX().getType();
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(verifyAttentionShapes(*this, getQ(), getK(), getV(), getBatch(), getSeqLen(),
                                   getNumHeads(), getNumKvHeads(), getHeadDim())))
    return failure();
  if (getResult().getType() != getQ().getType())
    return emitOpError() << "result type " << getResult().getType() << " must equal q's "
                         << getQ().getType();
  return expectShape(*this, getLse(), "lse",
                     {static_cast<int64_t>(getBatch() * getNumHeads() * getSeqLen())});
}

LogicalResult CastOp::verify() {
  if (shapeOf(getX()) != shapeOf(getResult()))
    return emitOpError() << "cannot change shape: " << getX().getType() << " -> "
                         << getResult().getType();
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  if (failed(expectRank(*this, getLogits(), "logits", 2)))
    return failure();
  return expectShape(*this, getTargets(), "targets", {shapeOf(getLogits())[0]});
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

/// op(x) of a possibly transposed 2-D operand: {rows, cols}.
static std::pair<int64_t, int64_t> applied(Value v, bool transposed) {
  ArrayRef<int64_t> s = shapeOf(v);
  return transposed ? std::make_pair(s[1], s[0]) : std::make_pair(s[0], s[1]);
}

/// Shared by matmul and qmatmul: returns {M, N} or failure.
static FailureOr<std::pair<int64_t, int64_t>> verifyGemmShapes(Operation *op, Value a, Value b,
                                                               bool transA, bool transB,
                                                               Value result) {
  if (failed(expectRank(op, a, "a", 2)) || failed(expectRank(op, b, "b", 2)))
    return failure();
  auto [m, ka] = applied(a, transA);
  auto [kb, n] = applied(b, transB);
  if (ka != kb)
    return op->emitOpError() << "reduction sizes differ: op(a) of " << a.getType()
                             << (transA ? " (transposed)" : "") << " has K = " << ka
                             << ", op(b) of " << b.getType() << (transB ? " (transposed)" : "")
                             << " has K = " << kb;
  if (failed(expectShape(op, result, "result", {m, n})))
    return failure();
  return std::make_pair(m, n);
}

/// The accumulator, where there is one, is read as the result is written.
static LogicalResult verifyAccumulator(Operation *op, Value acc, Value result) {
  if (acc && acc.getType() != result.getType())
    return op->emitOpError() << "accumulator " << acc.getType() << " must have the result's type "
                             << result.getType();
  return success();
}

LogicalResult MatmulOp::verify() {
  if (getRole() && !getLayer())
    return emitOpError() << "a role needs the layer it belongs to";
  if (failed(verifyAccumulator(*this, getAcc(), getResult())))
    return failure();
  return verifyGemmShapes(*this, getA(), getB(), getTransposeA(), getTransposeB(), getResult());
}

LogicalResult EmbeddingGradOp::verify() {
  if (failed(expectRank(*this, getIds(), "ids", 1)) ||
      failed(expectRank(*this, getDy(), "dy", 2)) ||
      failed(expectRank(*this, getResult(), "result", 2)))
    return failure();
  if (shapeOf(getDy())[0] != shapeOf(getIds())[0])
    return emitOpError() << "dy " << getDy().getType() << " and ids " << getIds().getType()
                         << " disagree on the token count";
  if (shapeOf(getResult())[1] != shapeOf(getDy())[1])
    return emitOpError() << "result " << getResult().getType() << " and dy "
                         << getDy().getType() << " disagree on the embedding width";
  return success();
}

LogicalResult RmsNormGradOp::verify() {
  if (failed(expectRank(*this, getX(), "x", 2)) ||
      failed(expectShape(*this, getWeight(), "weight", {shapeOf(getX())[1]})) ||
      failed(expectShape(*this, getDy(), "dy", shapeOf(getX()))) ||
      failed(expectShape(*this, getDx(), "dx", shapeOf(getX()))) ||
      failed(expectShape(*this, getDweight(), "dweight", shapeOf(getWeight()))))
    return failure();
  return success();
}

LogicalResult AttentionGradOp::verify() {
  if (failed(verifyAttentionShapes(*this, getQ(), getK(), getV(), getBatch(), getSeqLen(),
                                   getNumHeads(), getNumKvHeads(), getHeadDim())) ||
      failed(expectShape(*this, getOut(), "out", shapeOf(getQ()))) ||
      failed(expectShape(*this, getDout(), "dout", shapeOf(getQ()))) ||
      failed(expectShape(*this, getLse(), "lse",
                         {static_cast<int64_t>(getBatch() * getNumHeads() * getSeqLen())})) ||
      failed(expectShape(*this, getDq(), "dq", shapeOf(getQ()))) ||
      failed(expectShape(*this, getDk(), "dk", shapeOf(getK()))) ||
      failed(expectShape(*this, getDv(), "dv", shapeOf(getV()))))
    return failure();
  return success();
}

LogicalResult SiluGradOp::verify() {
  if (failed(expectShape(*this, getDy(), "dy", shapeOf(getX()))) ||
      failed(expectShape(*this, getResult(), "result", shapeOf(getX()))))
    return failure();
  return success();
}

LogicalResult CrossEntropyGradOp::verify() {
  if (failed(expectRank(*this, getLogits(), "logits", 2)) ||
      failed(expectShape(*this, getTargets(), "targets", {shapeOf(getLogits())[0]})) ||
      failed(expectShape(*this, getResult(), "result", shapeOf(getLogits()))))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

LogicalResult GlobalNormOp::verify() {
  if (getTensors().empty())
    return emitOpError() << "needs at least one tensor";
  return success();
}

LogicalResult ClipCoefOp::verify() {
  if (!(getMaxNorm().convertToDouble() >= 0))
    return emitOpError() << "max_norm must be non-negative (0: no clipping), got "
                         << getMaxNorm().convertToDouble();
  return success();
}

LogicalResult LrScheduleOp::verify() {
  if (getPeakLr().convertToDouble() < 0)
    return emitOpError() << "peak_lr must be non-negative";
  if (getWarmupSteps() < 0 || getTotalSteps() < 1 || getWarmupSteps() > getTotalSteps())
    return emitOpError() << "need 0 <= warmup_steps (" << getWarmupSteps()
                         << ") <= total_steps (" << getTotalSteps() << ") and total_steps >= 1";
  return success();
}

LogicalResult AdamWOp::verify() {
  ArrayRef<int64_t> p = shapeOf(getParam());
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"grad", getGrad()}, {"m", getM()}, {"v", getV()},
        {"new_param", getNewParam()}, {"new_m", getNewM()}, {"new_v", getNewV()}})
    if (failed(expectShape(*this, value, name, p)))
      return failure();
  Type param = elementOf(getParam());
  if (!(param.isF32() || param.isBF16()) || elementOf(getNewParam()) != param)
    return emitOpError() << "param and new_param must share one type, f32 or bf16; got "
                         << getParam().getType() << " and " << getNewParam().getType();
  // BF16 moments are rounded stochastically (see the op description).
  Type moment = elementOf(getM());
  if (!(moment.isF32() || moment.isBF16()) || elementOf(getV()) != moment ||
      elementOf(getNewM()) != moment || elementOf(getNewV()) != moment)
    return emitOpError() << "moments m, v and their results must share one type, f32 or bf16";
  double b1 = getBeta1().convertToDouble(), b2 = getBeta2().convertToDouble();
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
    return emitOpError() << "betas must lie in [0, 1), got (" << b1 << ", " << b2 << ")";
  if (!(getEps().convertToDouble() > 0) || getWeightDecay().convertToDouble() < 0)
    return emitOpError() << "eps must be positive and weight_decay non-negative";
  return success();
}

//===----------------------------------------------------------------------===//
// HALO ops
//===----------------------------------------------------------------------===//

int64_t HadamardOp::getRotatedSize() {
  return shapeOf(getX())[getSide() == HadamardSide::right ? 1 : 0];
}

LogicalResult HadamardOp::verify() {
  if (failed(expectRank(*this, getX(), "x", 2)))
    return failure();
  int64_t n = getRotatedSize();
  if (!numerics::decomposeHadamardSize(n))
    return emitOpError() << "no Hadamard matrix of size " << n << " (the "
                         << (getSide() == HadamardSide::right ? "column" : "row")
                         << " dimension of " << getX().getType()
                         << "); supported sizes: " << numerics::supportedHadamardForms();
  return success();
}

/// The scale shape a granularity implies for a [rows, cols] tensor.
static SmallVector<int64_t> scaleShape(ArrayRef<int64_t> shape, Granularity g) {
  switch (g) {
  case Granularity::tensor:
    return {};
  case Granularity::row:
    return {shape[0]};
  case Granularity::col:
    return {shape[1]};
  }
  llvm_unreachable("unknown granularity");
}

LogicalResult QuantizeOp::verify() {
  if (failed(expectRank(*this, getX(), "x", 2)) ||
      failed(expectShape(*this, getData(), "data", shapeOf(getX()))))
    return failure();
  return expectShape(*this, getScale(), "scale",
                     scaleShape(shapeOf(getX()), getGranularity()));
}

LogicalResult DequantizeOp::verify() {
  if (failed(expectRank(*this, getData(), "data", 2)) ||
      failed(expectShape(*this, getResult(), "result", shapeOf(getData()))))
    return failure();
  return expectShape(*this, getScale(), "scale",
                     scaleShape(shapeOf(getData()), getGranularity()));
}

LogicalResult QMatmulOp::verify() {
  if (elementOf(getA()) != elementOf(getB()))
    return emitOpError() << "operands must share one 8-bit format, got " << getA().getType()
                         << " and " << getB().getType();
  if (getRole() && !getLayer())
    return emitOpError() << "a role needs the layer it belongs to";
  if (failed(verifyAccumulator(*this, getAcc(), getResult())))
    return failure();
  FailureOr<std::pair<int64_t, int64_t>> mn =
      verifyGemmShapes(*this, getA(), getB(), getTransposeA(), getTransposeB(), getResult());
  if (failed(mn))
    return failure();
  auto checkScale = [&](Value scale, StringRef name, int64_t outer) -> LogicalResult {
    ArrayRef<int64_t> s = shapeOf(scale);
    if (s.empty() || (s.size() == 1 && s[0] == outer))
      return success();
    return emitOpError() << name << " must be per-tensor (tensor<f32>) or one per "
                         << "non-reduction index (tensor<" << outer << "xf32>), got "
                         << scale.getType();
  };
  if (failed(checkScale(getScaleA(), "scale_a", mn->first)) ||
      failed(checkScale(getScaleB(), "scale_b", mn->second)))
    return failure();
  return success();
}

LogicalResult TransposeOp::verify() {
  if (failed(expectRank(*this, getX(), "x", 2)))
    return failure();
  ArrayRef<int64_t> x = shapeOf(getX());
  if (failed(expectShape(*this, getResult(), "result", {x[1], x[0]})))
    return failure();
  if (elementOf(getResult()) != elementOf(getX()))
    return emitOpError() << "cannot change the element type: " << getX().getType() << " -> "
                         << getResult().getType();
  return success();
}

#define GET_OP_CLASSES
#include "dialects/halo/IR/HaloOps.cpp.inc"
