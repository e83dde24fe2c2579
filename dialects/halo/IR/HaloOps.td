//===- HaloOps.td - Operations of the halo dialect ---------*- tablegen -*-===//
//
// Three groups: model ops (what the frontend emits for a LLaMA forward pass),
// gradient and optimizer ops (what halo-autodiff adds), and HALO ops
// (hadamard / quantize / dequantize / qmatmul, what placement adds). Every op
// is pure and has a verifier that names the offending shapes.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_OPS_TD
#define HALO_OPS_TD

include "dialects/halo/IR/HaloAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def Halo_FloatTensor : RankedTensorOf<[BF16, F32]>;
def Halo_IdTensor : RankedTensorOf<[I32]>;
def Halo_QTensor : RankedTensorOf<[F8E4M3FN, I8]>;
def Halo_F32Scalar : 0DTensorOf<[F32]>;
def Halo_I32Scalar : 0DTensorOf<[I32]>;
def Halo_ScaleTensor : RankedTensorOf<[F32]>;

class Halo_PureOp<string mnemonic, list<Trait> traits = []>
    : Halo_Op<mnemonic, !listconcat([Pure], traits)> {
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

def Halo_EmbeddingOp : Halo_PureOp<"embedding"> {
  let summary = "token embedding lookup: result[t] = table[ids[t]]";
  let description = [{
    ```mlir
    %h = halo.embedding %ids, %table : (tensor<512xi32>, tensor<256x64xbf16>) -> tensor<512x64xbf16>
    ```
  }];
  let arguments = (ins Halo_IdTensor:$ids, Halo_FloatTensor:$table);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_RmsNormOp : Halo_PureOp<"rms_norm"> {
  let summary = "RMSNorm over the last dimension: x * rsqrt(mean(x^2) + eps) * w";
  let arguments = (ins Halo_FloatTensor:$x, Halo_FloatTensor:$weight, F64Attr:$eps);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_LinearOp : Halo_PureOp<"linear"> {
  let summary = "bias-free linear layer Y = X W^T with W in [out, in] layout";
  let description = [{
    The unit HALO reasons about: autodiff splits it into its three matmuls
    (roles fwd, bwd_input, bwd_weight), each tagged with `layer` so placement
    and diagnostics can name it.
    ```mlir
    %q = halo.linear %x, %wq {layer = "model.layers.0.self_attn.q_proj"}
        : (tensor<512x64xbf16>, tensor<64x64xbf16>) -> tensor<512x64xbf16>
    ```
  }];
  let arguments = (ins Halo_FloatTensor:$x, Halo_FloatTensor:$weight, StrAttr:$layer);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_RopeOp : Halo_PureOp<"rope"> {
  let summary = "rotary position embedding (HF rotate_half convention) on [T, heads*head_dim]";
  let description = [{
    Position of token t is t mod seq_len. With `inverse` the rotation angle is
    negated, which is also the op's vector-Jacobian product.
  }];
  let arguments = (ins Halo_FloatTensor:$x, I64Attr:$seq_len, I64Attr:$head_dim,
                       F64Attr:$theta, UnitAttr:$inverse);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_AttentionOp : Halo_PureOp<"attention"> {
  let summary = "causal grouped-query softmax attention; also returns the row log-sum-exp";
  let description = [{
    q: [T, num_heads*head_dim]; k, v: [T, num_kv_heads*head_dim]; T = batch*seq_len.
    Query head h reads kv head h / (num_heads / num_kv_heads); scores are scaled by
    1/sqrt(head_dim). `lse` ([batch*num_heads*seq_len], f32) is kept for the backward pass.
  }];
  let arguments = (ins Halo_FloatTensor:$q, Halo_FloatTensor:$k, Halo_FloatTensor:$v,
                       I64Attr:$batch, I64Attr:$seq_len, I64Attr:$num_heads,
                       I64Attr:$num_kv_heads, I64Attr:$head_dim);
  let results = (outs Halo_FloatTensor:$result, Halo_ScaleTensor:$lse);
}

def Halo_SiluOp : Halo_PureOp<"silu", [SameOperandsAndResultType]> {
  let summary = "x * sigmoid(x)";
  let arguments = (ins Halo_FloatTensor:$x);
  let results = (outs Halo_FloatTensor:$result);
  let hasVerifier = 0;
}

def Halo_MulOp : Halo_PureOp<"mul", [SameOperandsAndResultType]> {
  let summary = "elementwise product";
  let arguments = (ins Halo_FloatTensor:$lhs, Halo_FloatTensor:$rhs);
  let results = (outs Halo_FloatTensor:$result);
  let hasVerifier = 0;
}

def Halo_AddOp : Halo_PureOp<"add", [SameOperandsAndResultType]> {
  let summary = "elementwise sum (residuals, gradient accumulation)";
  let arguments = (ins Halo_FloatTensor:$lhs, Halo_FloatTensor:$rhs);
  let results = (outs Halo_FloatTensor:$result);
  let hasVerifier = 0;
}

def Halo_CastOp : Halo_PureOp<"cast"> {
  let summary = "element type conversion between bf16 and f32 (round to nearest even)";
  let arguments = (ins Halo_FloatTensor:$x);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_CrossEntropyOp : Halo_PureOp<"cross_entropy"> {
  let summary = "mean token cross-entropy of logits [T, V] against targets [T]; targets < 0 are ignored";
  let arguments = (ins Halo_FloatTensor:$logits, Halo_IdTensor:$targets);
  let results = (outs Halo_F32Scalar:$loss);
}

//===----------------------------------------------------------------------===//
// Gradient ops (emitted by halo-autodiff)
//===----------------------------------------------------------------------===//

def Halo_MatmulOp : Halo_PureOp<"matmul"> {
  let summary = "GEMM op(a) op(b) with FP32 accumulation";
  let description = [{
    op(a) is [M, K] (a stored [K, M] with `transpose_a`), op(b) is [K, N]. When the
    GEMM is one of a linear layer's three matmuls it carries `layer` and `role`,
    which halo-place-rotations reads. With the optional accumulator `acc` (same
    type as the result; halo-accumulate-gemms adds it) the result is
    acc + op(a) op(b), and halo-plan-memory gives the result acc's buffer, so
    the GEMM adds into it in place (cuBLASLt's beta = 1).
    ```mlir
    %dx = halo.matmul %e, %w {layer = "model.layers.0.mlp.up_proj", role = #halo.role<bwd_input>}
        : (tensor<512x192xbf16>, tensor<192x64xbf16>) -> tensor<512x64xbf16>
    %sum = halo.matmul %e2, %w2, %dx {layer = "model.layers.0.mlp.gate_proj", role = #halo.role<bwd_input>}
        : (tensor<512x192xbf16>, tensor<192x64xbf16>, tensor<512x64xbf16>) -> tensor<512x64xbf16>
    ```
  }];
  let arguments = (ins Halo_FloatTensor:$a, Halo_FloatTensor:$b,
                       Optional<Halo_FloatTensor>:$acc, UnitAttr:$transpose_a,
                       UnitAttr:$transpose_b, OptionalAttr<StrAttr>:$layer,
                       OptionalAttr<Halo_MatmulRoleAttr>:$role);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_EmbeddingGradOp : Halo_PureOp<"embedding_grad"> {
  let summary = "scatter-add of dy [T, D] into a [V, D] table gradient";
  let arguments = (ins Halo_IdTensor:$ids, Halo_FloatTensor:$dy);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_RmsNormGradOp : Halo_PureOp<"rms_norm_grad"> {
  let summary = "VJP of rms_norm: (dx, dweight)";
  let arguments = (ins Halo_FloatTensor:$x, Halo_FloatTensor:$weight, Halo_FloatTensor:$dy,
                       F64Attr:$eps);
  let results = (outs Halo_FloatTensor:$dx, Halo_FloatTensor:$dweight);
}

def Halo_AttentionGradOp : Halo_PureOp<"attention_grad"> {
  let summary = "VJP of attention: (dq, dk, dv) from q, k, v, out, lse, dout";
  let arguments = (ins Halo_FloatTensor:$q, Halo_FloatTensor:$k, Halo_FloatTensor:$v,
                       Halo_FloatTensor:$out, Halo_ScaleTensor:$lse, Halo_FloatTensor:$dout,
                       I64Attr:$batch, I64Attr:$seq_len, I64Attr:$num_heads,
                       I64Attr:$num_kv_heads, I64Attr:$head_dim);
  let results = (outs Halo_FloatTensor:$dq, Halo_FloatTensor:$dk, Halo_FloatTensor:$dv);
}

def Halo_SiluGradOp : Halo_PureOp<"silu_grad"> {
  let summary = "VJP of silu: dy * sigmoid(x) * (1 + x * (1 - sigmoid(x)))";
  let arguments = (ins Halo_FloatTensor:$x, Halo_FloatTensor:$dy);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_CrossEntropyGradOp : Halo_PureOp<"cross_entropy_grad"> {
  let summary = "gradient of the mean cross-entropy (seed 1) wrt the logits";
  let arguments = (ins Halo_FloatTensor:$logits, Halo_IdTensor:$targets);
  let results = (outs Halo_FloatTensor:$result);
}

//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

def Halo_GlobalNormOp : Halo_PureOp<"global_norm"> {
  let summary = "sqrt of the sum of squares of all elements of all operands";
  let arguments = (ins Variadic<Halo_FloatTensor>:$tensors);
  let results = (outs Halo_F32Scalar:$result);
}

def Halo_ClipCoefOp : Halo_PureOp<"clip_coef"> {
  let summary = "gradient scale for global-norm clipping and the overflow guard";
  let description = [{
    `min(1, max_norm / (norm + 1e-6))`, or 1 when `max_norm` is 0 (no
    clipping); NaN when `norm` is not finite, which makes `halo.adamw` skip
    the update.
  }];
  let arguments = (ins Halo_F32Scalar:$norm, F64Attr:$max_norm);
  let results = (outs Halo_F32Scalar:$result);
}

def Halo_LrScheduleOp : Halo_PureOp<"lr_schedule"> {
  let summary = "learning rate at a 1-based step: linear warm-up, then constant/linear/cosine decay to 0";
  let arguments = (ins Halo_I32Scalar:$step, F64Attr:$peak_lr, I64Attr:$warmup_steps,
                       I64Attr:$total_steps, Halo_LrScheduleAttr:$schedule);
  let results = (outs Halo_F32Scalar:$result);
}

def Halo_AdamWOp : Halo_PureOp<"adamw"> {
  let summary = "AdamW with decoupled weight decay and bias correction";
  let description = [{
    g = grad * grad_scale; m' = b1 m + (1-b1) g; v' = b2 v + (1-b2) g^2;
    p' = p (1 - lr wd) - lr (m'/(1-b1^step)) / (sqrt(v'/(1-b2^step)) + eps).
    The arithmetic is FP32. BF16 moments (train.moment_dtype) store m' and v'
    rounded stochastically: with round-to-nearest, v' = 0.999 v + 0.001 g^2
    would never decrease (the change is below half a BF16 ulp). BF16 weights
    (train.master_dtype) store p' the same way, so that updates below half an
    ulp still move the weight in expectation. The random bits are a hash of
    (step, element), so steps are reproducible.
  }];
  let arguments = (ins Halo_FloatTensor:$param, Halo_FloatTensor:$grad, Halo_FloatTensor:$m,
                       Halo_FloatTensor:$v, Halo_F32Scalar:$lr, Halo_I32Scalar:$step,
                       Halo_F32Scalar:$grad_scale, F64Attr:$beta1, F64Attr:$beta2,
                       F64Attr:$eps, F64Attr:$weight_decay);
  let results = (outs Halo_FloatTensor:$new_param, Halo_FloatTensor:$new_m,
                      Halo_FloatTensor:$new_v);
}

//===----------------------------------------------------------------------===//
// HALO ops (emitted by halo-place-rotations)
//===----------------------------------------------------------------------===//

def Halo_HadamardOp : Halo_PureOp<"hadamard", [SameOperandsAndResultType]> {
  let summary = "orthonormal Hadamard rotation of a 2-D tensor along one dimension";
  let description = [{
    side = right: x -> x H (mixes columns); side = left: x -> H x (mixes rows, e.g.
    HALO-2's token rotation). With `transposed`, H^T is applied instead, which
    undoes the rotation. H = (H_K kron H_2^k) / sqrt(n) where n = K * 2^k is the
    size of the mixed dimension; the verifier rejects sizes with no such form.
    ```mlir
    %xh = halo.hadamard %x {side = #halo.side<right>} : (tensor<512x192xbf16>) -> tensor<512x192xbf16>
    ```
  }];
  let arguments = (ins Halo_FloatTensor:$x, Halo_HadamardSideAttr:$side, UnitAttr:$transposed);
  let results = (outs Halo_FloatTensor:$result);
  let extraClassDeclaration = [{
    /// Size of the dimension the rotation mixes.
    int64_t getRotatedSize();
  }];
}

def Halo_QuantizeOp : Halo_PureOp<"quantize"> {
  let summary = "symmetric absmax quantization to FP8 E4M3 or INT8; returns data and scales";
  let description = [{
    scale = absmax / 448 (f8E4M3FN, saturating) or absmax / 127 (i8, round half
    to even, clamp +-127); absmax 0 gives scale 1. One scale for `tensor`
    granularity (0-d), one per row ([rows]) or per column ([cols]).
    ```mlir
    %q, %s = halo.quantize %x {granularity = #halo.granularity<tensor>}
        : (tensor<512x64xbf16>) -> (tensor<512x64xf8E4M3FN>, tensor<f32>)
    ```
  }];
  let arguments = (ins Halo_FloatTensor:$x, Halo_GranularityAttr:$granularity);
  let results = (outs Halo_QTensor:$data, Halo_ScaleTensor:$scale);
}

def Halo_DequantizeOp : Halo_PureOp<"dequantize"> {
  let summary = "data * scale, back to bf16 or f32";
  let arguments = (ins Halo_QTensor:$data, Halo_ScaleTensor:$scale,
                       Halo_GranularityAttr:$granularity);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_QMatmulOp : Halo_PureOp<"qmatmul"> {
  let summary = "8-bit GEMM: (op(a) op(b)) * scale_a * scale_b, FP32 accumulation";
  let description = [{
    a and b are both f8E4M3FN or both i8. Each scale is 0-d (per tensor) or a
    vector over the operand's non-reduction dimension (M for a, N for b), so it
    factors out of the sum and is applied in the epilogue. The optional `acc`
    works as halo.matmul's: result = acc + (op(a) op(b)) * scale_a * scale_b.
    ```mlir
    %y = halo.qmatmul %xq, %xs, %wq, %ws {transpose_b, layer = "model.layers.0.mlp.down_proj", role = #halo.role<fwd>}
        : (tensor<512x192xf8E4M3FN>, tensor<f32>, tensor<64x192xf8E4M3FN>, tensor<f32>) -> tensor<512x64xbf16>
    ```
  }];
  let arguments = (ins Halo_QTensor:$a, Halo_ScaleTensor:$scale_a, Halo_QTensor:$b,
                       Halo_ScaleTensor:$scale_b, Optional<Halo_FloatTensor>:$acc,
                       UnitAttr:$transpose_a, UnitAttr:$transpose_b,
                       OptionalAttr<StrAttr>:$layer, OptionalAttr<Halo_MatmulRoleAttr>:$role);
  let results = (outs Halo_FloatTensor:$result);
}

def Halo_TransposeOp : Halo_PureOp<"transpose"> {
  let summary = "2-D transpose of 8-bit codes (a K-major copy of a GEMM operand)";
  let description = [{
    Hopper's FP8/INT8 GEMMs read both operands K-major (A [M, K], B [N, K]);
    halo-legalize-gemm-layouts inserts this op where an 8-bit operand is
    stored the other way, and halo-fuse folds it into the quantize kernel
    that produces it when nothing else reads the untransposed codes.
    ```mlir
    %t = halo.transpose %q : (tensor<512x64xf8E4M3FN>) -> tensor<64x512xf8E4M3FN>
    ```
  }];
  let arguments = (ins Halo_QTensor:$x);
  let results = (outs Halo_QTensor:$result);
}

#endif // HALO_OPS_TD
