//===- Passes.td - halo passes ------------------------------*- tablegen -*-===//
#ifndef HALO_PASSES_TD
#define HALO_PASSES_TD

include "mlir/Pass/PassBase.td"

def HaloAutodiff : Pass<"halo-autodiff", "::mlir::ModuleOp"> {
  let summary = "Build @train_step: forward, loss, reverse-mode gradients and AdamW";
  let description = [{
    Reads `@forward` (parameters are the arguments carrying `halo.param`) and the
    module's `halo.train` dictionary, and adds `@train_step`, which takes the
    token batch, the 1-based step, FP32 master weights, AdamW moments and BF16
    compute copies of the weights, and returns loss, grad-norm, learning rate
    and the updated weights, moments and copies (a halo.cast of each new master,
    which the fused optimizer kernel writes).

    The forward body is cloned on the compute copies (state "compute"; frozen
    parameters are read as they are), then every op's vector-Jacobian product
    is emitted in reverse order. Each linear layer becomes its three GEMMs,
    tagged with the layer name and role (fwd, bwd_input, bwd_weight) for
    halo-place-rotations. Gradients
    keep the type of their value: BF16 for activations and for the weights of
    linear layers (whose GEMMs write BF16, as under PyTorch AMP), FP32 for the
    norm weights and the embedding table; AdamW reads them as they are.
    Parameters marked `halo.frozen` get no gradient and no optimizer state.

    Before:
    ```mlir
    func.func @forward(%tokens, %targets, %w {halo.param = "..."}) -> tensor<f32>
    ```
    After, in addition:
    ```mlir
    func.func @train_step(%tokens, %targets, %step, %w_master, %w_exp_avg, %w_exp_avg_sq, %w_bf16)
        -> (loss, grad_norm, lr, %w_new, %exp_avg_new, %exp_avg_sq_new, %w_bf16_new)
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
  let options = [
    Option<"returnGrads", "return-grads", "bool", "false",
           "also return every parameter's gradient (halo.state = grad), before "
           "clipping, for gradient checks against the oracle">,
  ];
}

def HaloPlaceRotations : Pass<"halo-place-rotations", "::mlir::ModuleOp"> {
  let summary = "Rewrite each linear layer's three GEMMs per the HALO level or per-matmul table";
  let description = [{
    For every `halo.matmul` with a `layer` and `role`, rotates and quantizes
    its operands as the table says (side relative to the operand's own layout)
    and undoes rotations on free dimensions on the output. Reduction-dimension
    rotations are emitted as an H / H^T pair so they cancel in exact arithmetic;
    a reduction rotation on one operand only is an error naming the layer,
    matmul and operand. Both operands quantized gives `halo.qmatmul`; one
    quantized operand is simulated with quantize + dequantize.

    The table comes from the module's `halo.placement` attribute unless the
    `level`/`precision` options are given. `lm_head` stays BF16.

    HALO-1, forward of one linear:
    ```mlir
    %xh = halo.hadamard %x {side = #halo.side<right>}
    %xq, %xs = halo.quantize %xh {granularity = #halo.granularity<tensor>}
    %wh = halo.hadamard %w {side = #halo.side<right>}
    %wq, %ws = halo.quantize %wh {granularity = #halo.granularity<tensor>}
    %y = halo.qmatmul %xq, %xs, %wq, %ws {transpose_b, role = #halo.role<fwd>, ...}
    ```
  }];
  let options = [
    Option<"level", "level", "int", "-1",
           "HALO level 0|1|2 (-1: take the module's halo.placement)">,
    Option<"precision", "precision", "std::string", "\"\"",
           "fp8|int8|bf16 (empty: take the module's halo.placement)">,
  ];
}

def HaloSimplify : Pass<"halo-simplify", "::mlir::ModuleOp"> {
  let summary = "Cancel H H^T pairs, share repeated rotations/quantizations, drop dead values";
  let description = [{
    - hadamard(hadamard(x, side, t), side, !t) -> x (the rotations cancel);
    - identical hadamard / quantize of one value are merged, so HALO-1/2's
      backward GEMMs reuse the forward's 8-bit rotated operands and HALO-0/1
      share one Q(E) between the two backward GEMMs;
    - ops whose results are unused are removed (the BF16 activations that only
      fed quantized GEMMs are not kept for the backward pass).
    Transposes never appear as ops: autodiff writes them as GEMM layout flags.
  }];
}

def HaloFactorRotations : Pass<"halo-factor-rotations", "::mlir::ModuleOp"> {
  let summary = "Rotate sums once: add(H^T a, H^T b) -> H^T (a + b)";
  let description = [{
    Linearity of the Hadamard rotation: when both operands of a `halo.add` are
    the same rotation (side, direction) of values used nowhere else, the sum is
    formed first and rotated once. At HALO-1/2 this un-rotates the summed
    input gradients of q/k/v and of gate/up once instead of per GEMM (at
    HALO-2 over both features and tokens). Also, `halo.global_norm` reads a
    weight gradient before its right un-rotation (the norm is
    rotation-invariant) where that rotation otherwise feeds only AdamW (or the
    return), so halo-fuse can run the un-rotation inside AdamW. Exact in real
    arithmetic; the sum is rounded before the rotation instead of after, so
    bits change.
    ```mlir
    %a = halo.hadamard %p {side = #halo.side<right>, transposed} : ...
    %b = halo.hadamard %q {side = #halo.side<right>, transposed} : ...
    %s = halo.add %a, %b : ...
    // ->
    %t = halo.add %p, %q : ...
    %s = halo.hadamard %t {side = #halo.side<right>, transposed} : ...
    ```
  }];
}

def HaloAccumulateGemms : Pass<"halo-accumulate-gemms", "::mlir::ModuleOp"> {
  let summary = "Add summed gradients in the GEMM epilogue: add(x, gemm) -> gemm(acc = x)";
  let description = [{
    A gradient GEMM (`role` bwd_input or bwd_weight, halo.matmul or
    halo.qmatmul) whose only user is a `halo.add` takes the other summand as
    its accumulator when that summand is an op result read by nothing else;
    the new GEMM sits where the add was. Of two GEMM summands the later one
    accumulates into the earlier, so q/k/v's three input gradients become a
    chain of two accumulating GEMMs. halo-plan-memory then places the result
    in the accumulator's buffer and the GEMM adds in place (beta = 1). Rounds
    the sum once instead of twice, so bits change.
    ```mlir
    %k = halo.matmul %ek, %wk {layer = "l.k_proj", role = #halo.role<bwd_input>} : ...
    %q = halo.matmul %eq, %wq {layer = "l.q_proj", role = #halo.role<bwd_input>} : ...
    %s = halo.add %k, %q : ...
    // ->
    %k = halo.matmul %ek, %wk {layer = "l.k_proj", role = #halo.role<bwd_input>} : ...
    %s = halo.matmul %eq, %wq, %k {layer = "l.q_proj", role = #halo.role<bwd_input>} : ...
    ```
  }];
}

def HaloPlanMemory : Pass<"halo-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Place every intermediate tensor in one arena by liveness; record peak bytes";
  let description = [{
    For each function, in program order, every op result lives from its
    definition to its last use (function results live to the end). Results are
    placed greedily, largest first, at the lowest offset that does not overlap
    a placed result with an intersecting lifetime (aligned to 256 bytes). Each
    op gets `halo.offsets` (one byte offset per result) and the function
    `halo.arena_bytes`, the arena size a runtime allocates once. Function
    arguments (weights, optimizer state, the batch) are persistent and not in
    the arena, and `halo.adamw` updates them in place (its results get no
    offsets). A GEMM with an accumulator writes its result over it: the two
    values share one buffer, live from the accumulator's definition to the
    result's last use (an error if anything reads the accumulator after the
    GEMM). Element sizes: bf16 2, f32/i32 4, f8E4M3FN/i8 1.

    ```mlir
    func.func @train_step(...) attributes {halo.arena_bytes = 123456 : i64} {
      %0 = halo.cast %arg3 {halo.offsets = [0]} : ...
    ```
  }];
  let options = [
    Option<"alignment", "alignment", "int64_t", "256", "byte alignment of every buffer">,
  ];
}

def HaloLegalizeGemmLayouts : Pass<"halo-legalize-gemm-layouts", "::mlir::ModuleOp"> {
  let summary = "Give every 8-bit GEMM K-major operands (A [M, K], B [N, K]) as Hopper requires";
  let description = [{
    cuBLASLt runs FP8 (and fast INT8) GEMMs on sm_90 only in the "TN" form:
    A stored [M, K] and B stored [N, K] (docs/gemm.md). A `halo.qmatmul` with
    `transpose_a`, or without `transpose_b`, gets a `halo.transpose` of that
    8-bit operand and the flag flipped. Per-tensor and per-row scales are
    unchanged (they index M and N, not the storage). The forward GEMM
    (X W^T) is already in that form; the input-gradient GEMM transposes
    Q(W), the weight-gradient GEMM Q(E) and Q(X).
    ```mlir
    %dw = halo.qmatmul %eq, %es, %xq, %xs {transpose_a} : ...
    // becomes
    %et = halo.transpose %eq : (tensor<512x64xf8E4M3FN>) -> tensor<64x512xf8E4M3FN>
    %xt = halo.transpose %xq : (tensor<512x64xf8E4M3FN>) -> tensor<64x512xf8E4M3FN>
    %dw = halo.qmatmul %et, %es, %xt, %xs {transpose_b} : ...
    ```
  }];
}

def HaloFuse : Pass<"halo-fuse", "::mlir::ModuleOp"> {
  let summary = "Outline memory-bound halo ops into exec.kernel regions; GEMMs stay library calls";
  let description = [{
    Groups, in this order, then gives every remaining non-GEMM op a kernel of
    its own:
    - `hadamard_quantize_plain`: HALO-2's two per-tensor quantizers of one E,
      quantize(hadamard(E) {side = left}) and quantize(E) whose codes only a
      transpose reads (same format), with that transpose: one kernel reads E
      once for both; its ops move up to the first of them, before the
      GEMMs that read its results;
    - `hadamard_quantize`: quantize(hadamard(x)) -- the rotated BF16 tensor
      never reaches memory; with the transpose of its codes when nothing
      else reads them (the kernel writes K-major codes directly);
    - `add_rms_norm`: rms_norm(add(a, b)), yielding the residual sum too;
    - `swiglu`: mul(silu(g), u), yielding silu(g) for the backward pass;
    - `swiglu_grad`: mul(dy, u), mul(dy, silu(g)), silu_grad(g, .);
    - `cross_entropy`: the loss and its gradient from one read of the logits;
    - `optimizer`: global_norm, clip_coef, lr_schedule and every adamw.
    A group is formed only when no result is needed before its last op, so
    the kernel can sit where that op was. GEMMs (halo.matmul, halo.qmatmul)
    (and lm_head's halo.linear in @forward) and constants are not outlined.
    Each kernel is named by kind, the shape
    of its first result and a hash of its body, so identical kernels (one per
    layer) share a name and a compiled image.
  }];
  let dependentDialects = ["::halo::exec::ExecDialect"];
}

#endif // HALO_PASSES_TD
