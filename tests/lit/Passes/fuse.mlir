// RUN: halo-opt %s -split-input-file --halo-fuse | FileCheck %s

// Tests the fused patterns: hadamard + quantize in one kernel (the rotated
// BF16 tensor stays inside it), the GEMM outside as a library call, add +
// rms_norm yielding both the residual sum and the normalised value, and
// silu + mul yielding silu(g) too because the backward pass reads it.
// CHECK-LABEL: func.func @patterns
func.func @patterns(%x: tensor<16x12xbf16>, %w: tensor<24x12xbf16>, %r: tensor<16x12xbf16>,
                    %g: tensor<12xbf16>) -> (tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<16x12xbf16>, tensor<16x12xbf16>) {
  // CHECK: %[[XQ:.+]]:2 = exec.kernel "halo_hadamard_quantize_16x12_{{[0-9a-f]+}}" kind "hadamard_quantize"(%arg0)
  // CHECK-NEXT: ^bb0(%[[A:.+]]: tensor<16x12xbf16>):
  // CHECK-NEXT: %[[H:.+]] = halo.hadamard %[[A]]
  // CHECK-NEXT: %[[Q:.+]], %[[S:.+]] = halo.quantize %[[H]]
  // CHECK-NEXT: exec.yield %[[Q]], %[[S]]
  %xh = halo.hadamard %x {side = #halo.side<right>} : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %xq, %xs = halo.quantize %xh {granularity = #halo.granularity<tensor>} : (tensor<16x12xbf16>) -> (tensor<16x12xf8E4M3FN>, tensor<f32>)
  // CHECK: %[[WQ:.+]]:2 = exec.kernel "halo_hadamard_quantize_24x12_{{[0-9a-f]+}}"
  %wh = halo.hadamard %w {side = #halo.side<right>} : (tensor<24x12xbf16>) -> tensor<24x12xbf16>
  %wq, %ws = halo.quantize %wh {granularity = #halo.granularity<tensor>} : (tensor<24x12xbf16>) -> (tensor<24x12xf8E4M3FN>, tensor<f32>)
  // CHECK: halo.qmatmul %[[XQ]]#0, %[[XQ]]#1, %[[WQ]]#0, %[[WQ]]#1
  %y = halo.qmatmul %xq, %xs, %wq, %ws {transpose_b} : (tensor<16x12xf8E4M3FN>, tensor<f32>, tensor<24x12xf8E4M3FN>, tensor<f32>) -> tensor<16x24xbf16>
  // CHECK: %[[N:.+]]:2 = exec.kernel "halo_add_rms_norm_16x12_{{[0-9a-f]+}}" kind "add_rms_norm"(%arg0, %arg2, %arg3)
  // CHECK: halo.add
  // CHECK-NEXT: halo.rms_norm
  // CHECK-NEXT: exec.yield
  %sum = halo.add %x, %r : (tensor<16x12xbf16>, tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %n = halo.rms_norm %sum, %g {eps = 1.0e-5 : f64} : (tensor<16x12xbf16>, tensor<12xbf16>) -> tensor<16x12xbf16>
  // CHECK: %[[SW:.+]]:2 = exec.kernel "halo_swiglu_16x12_{{[0-9a-f]+}}" kind "swiglu"
  %s = halo.silu %n : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %m = halo.mul %s, %sum : (tensor<16x12xbf16>, tensor<16x12xbf16>) -> tensor<16x12xbf16>
  // CHECK: return %{{.+}}, %[[N]]#0, %[[SW]]#0, %[[SW]]#1
  return %y, %sum, %s, %m : tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<16x12xbf16>, tensor<16x12xbf16>
}

// -----

// Tests that identical kernels share one name (one compiled image per shape)
// and that a group whose result is needed before its last op is not fused:
// here the hadamard result is also used directly, so it gets its own kernel.
// CHECK-LABEL: func.func @names
func.func @names(%a: tensor<16x12xbf16>, %b: tensor<16x12xbf16>) -> (tensor<16x12xbf16>, tensor<16x12xbf16>, tensor<16x12xf8E4M3FN>) {
  // CHECK: exec.kernel "[[SILU:halo_silu_16x12_[0-9a-f]+]]" kind "silu"(%arg0)
  // CHECK: exec.kernel "[[SILU]]" kind "silu"(%arg1)
  %x = halo.silu %a : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %y = halo.silu %b : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  // CHECK: exec.kernel "halo_hadamard_{{.*}}" kind "hadamard"
  // CHECK: exec.kernel "halo_quantize_{{.*}}" kind "quantize"
  %h = halo.hadamard %x {side = #halo.side<right>} : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %q, %s = halo.quantize %h {granularity = #halo.granularity<tensor>} : (tensor<16x12xbf16>) -> (tensor<16x12xf8E4M3FN>, tensor<f32>)
  return %h, %y, %q : tensor<16x12xbf16>, tensor<16x12xbf16>, tensor<16x12xf8E4M3FN>
}

// -----

// Tests that a quantize whose codes are read both row-major (the
// input-gradient GEMM) and transposed (the weight-gradient GEMM) writes both
// layouts from one kernel: the transpose moves up next to the quantize and
// the kernel yields the codes, the scale and the transposed codes; also
// after a right rotation. Codes the 64 x 64 tiles do not cover, and codes of
// a left rotation, keep a transpose kernel.
// CHECK-LABEL: func.func @both_layouts
func.func @both_layouts(%e: tensor<128x64xbf16>, %wq: tensor<192x64xf8E4M3FN>, %xt: tensor<192x128xf8E4M3FN>,
                        %s: tensor<f32>, %f: tensor<96x64xbf16>, %g: tensor<128x64xbf16>)
    -> (tensor<128x192xbf16>, tensor<64x192xf32>, tensor<64x96xf8E4M3FN>, tensor<96x64xf8E4M3FN>,
        tensor<64x128xf8E4M3FN>, tensor<128x64xf8E4M3FN>, tensor<64x128xf8E4M3FN>, tensor<128x64xf8E4M3FN>) {
  // CHECK: %[[E:.+]]:3 = exec.kernel "halo_quantize_128x64_{{[0-9a-f]+}}" kind "quantize"(%arg0)
  // CHECK-NEXT: ^bb0(%[[A:.+]]: tensor<128x64xbf16>):
  // CHECK-NEXT: %[[Q:.+]], %[[S:.+]] = halo.quantize %[[A]]
  // CHECK-NEXT: %[[T:.+]] = halo.transpose %[[Q]]
  // CHECK-NEXT: exec.yield %[[Q]], %[[S]], %[[T]]
  %eq, %es = halo.quantize %e {granularity = #halo.granularity<tensor>} : (tensor<128x64xbf16>) -> (tensor<128x64xf8E4M3FN>, tensor<f32>)
  // CHECK: halo.qmatmul %[[E]]#0, %[[E]]#1, %arg1, %arg3 {transpose_b}
  %dx = halo.qmatmul %eq, %es, %wq, %s {transpose_b} : (tensor<128x64xf8E4M3FN>, tensor<f32>, tensor<192x64xf8E4M3FN>, tensor<f32>) -> tensor<128x192xbf16>
  %et = halo.transpose %eq : (tensor<128x64xf8E4M3FN>) -> tensor<64x128xf8E4M3FN>
  // CHECK: halo.qmatmul %[[E]]#2, %[[E]]#1, %arg2, %arg3 {transpose_b}
  %dw = halo.qmatmul %et, %es, %xt, %s {transpose_b} : (tensor<64x128xf8E4M3FN>, tensor<f32>, tensor<192x128xf8E4M3FN>, tensor<f32>) -> tensor<64x192xf32>
  // CHECK: %[[F:[0-9]+]] = exec.kernel "halo_quantize_96x64_{{[0-9a-f]+}}" kind "quantize"
  // CHECK: exec.kernel "halo_transpose_64x96_{{[0-9a-f]+}}" kind "transpose"(%[[F]])
  %fq, %fs = halo.quantize %f {granularity = #halo.granularity<tensor>} : (tensor<96x64xbf16>) -> (tensor<96x64xf8E4M3FN>, tensor<f32>)
  %ft = halo.transpose %fq : (tensor<96x64xf8E4M3FN>) -> tensor<64x96xf8E4M3FN>
  // CHECK: %[[G:.+]]:2 = exec.kernel "halo_hadamard_quantize_128x64_{{[0-9a-f]+}}" kind "hadamard_quantize"(%arg5)
  // CHECK-NEXT: ^bb0
  // CHECK-NEXT: halo.hadamard
  // CHECK-NEXT: %[[GQ:.+]], %{{.+}} = halo.quantize
  // CHECK-NEXT: %[[GT:.+]] = halo.transpose %[[GQ]]
  // CHECK-NEXT: exec.yield %[[GQ]], %[[GT]]
  %gh = halo.hadamard %g {side = #halo.side<right>} : (tensor<128x64xbf16>) -> tensor<128x64xbf16>
  %gq, %gs = halo.quantize %gh {granularity = #halo.granularity<tensor>} : (tensor<128x64xbf16>) -> (tensor<128x64xf8E4M3FN>, tensor<f32>)
  %gt = halo.transpose %gq : (tensor<128x64xf8E4M3FN>) -> tensor<64x128xf8E4M3FN>
  // CHECK: %[[L:[0-9]+]] = exec.kernel "halo_hadamard_quantize_128x64_{{[0-9a-f]+}}" kind "hadamard_quantize"(%arg5)
  // CHECK: exec.kernel "halo_transpose_64x128_{{[0-9a-f]+}}" kind "transpose"(%[[L]])
  %lh = halo.hadamard %g {side = #halo.side<left>} : (tensor<128x64xbf16>) -> tensor<128x64xbf16>
  %lq, %ls = halo.quantize %lh {granularity = #halo.granularity<tensor>} : (tensor<128x64xbf16>) -> (tensor<128x64xf8E4M3FN>, tensor<f32>)
  %lt = halo.transpose %lq : (tensor<128x64xf8E4M3FN>) -> tensor<64x128xf8E4M3FN>
  return %dx, %dw, %ft, %fq, %gt, %gq, %lt, %lq : tensor<128x192xbf16>, tensor<64x192xf32>, tensor<64x96xf8E4M3FN>, tensor<96x64xf8E4M3FN>, tensor<64x128xf8E4M3FN>, tensor<128x64xf8E4M3FN>, tensor<64x128xf8E4M3FN>, tensor<128x64xf8E4M3FN>
}

// -----

// Tests that HALO-2's two quantizers of one E, Q(H_T E) for the input
// gradient and plain Q(E) read transposed by the weight gradient, become one
// kernel that yields the rotated codes and scale, the plain scale and the
// transposed plain codes; it moves up before the first GEMM. A plain
// quantize whose codes are also read row-major keeps a kernel of its own.
// CHECK-LABEL: func.func @left_and_plain
func.func @left_and_plain(%e: tensor<128x64xbf16>, %wq: tensor<64x32xf8E4M3FN>,
                          %xt: tensor<32x128xf8E4M3FN>, %s: tensor<f32>, %f: tensor<128x64xbf16>)
    -> (tensor<128x32xbf16>, tensor<64x32xf32>, tensor<128x64xf8E4M3FN>, tensor<64x128xf8E4M3FN>, tensor<128x64xf8E4M3FN>) {
  // CHECK: %[[K:.+]]:4 = exec.kernel "halo_hadamard_quantize_plain_128x64_{{[0-9a-f]+}}" kind "hadamard_quantize_plain"(%arg0)
  // CHECK-NEXT: ^bb0(%[[A:.+]]: tensor<128x64xbf16>):
  // CHECK-NEXT: %[[H:.+]] = halo.hadamard %[[A]] {side = #halo.side<left>}
  // CHECK-NEXT: %[[Q:.+]], %[[S:.+]] = halo.quantize %[[H]]
  // CHECK-NEXT: %[[P:.+]], %[[PS:.+]] = halo.quantize %[[A]]
  // CHECK-NEXT: %[[T:.+]] = halo.transpose %[[P]]
  // CHECK-NEXT: exec.yield %[[Q]], %[[S]], %[[PS]], %[[T]]
  %h = halo.hadamard %e {side = #halo.side<left>} : (tensor<128x64xbf16>) -> tensor<128x64xbf16>
  %hq, %hs = halo.quantize %h {granularity = #halo.granularity<tensor>} : (tensor<128x64xbf16>) -> (tensor<128x64xf8E4M3FN>, tensor<f32>)
  // CHECK: halo.qmatmul %[[K]]#0, %[[K]]#1, %arg1, %arg3 :
  %dx = halo.qmatmul %hq, %hs, %wq, %s : (tensor<128x64xf8E4M3FN>, tensor<f32>, tensor<64x32xf8E4M3FN>, tensor<f32>) -> tensor<128x32xbf16>
  %eq, %es = halo.quantize %e {granularity = #halo.granularity<tensor>} : (tensor<128x64xbf16>) -> (tensor<128x64xf8E4M3FN>, tensor<f32>)
  %et = halo.transpose %eq : (tensor<128x64xf8E4M3FN>) -> tensor<64x128xf8E4M3FN>
  // CHECK: halo.qmatmul %[[K]]#3, %[[K]]#2, %arg2, %arg3 {transpose_b}
  %dw = halo.qmatmul %et, %es, %xt, %s {transpose_b} : (tensor<64x128xf8E4M3FN>, tensor<f32>, tensor<32x128xf8E4M3FN>, tensor<f32>) -> tensor<64x32xf32>
  // CHECK: exec.kernel "halo_hadamard_quantize_128x64_{{[0-9a-f]+}}" kind "hadamard_quantize"(%arg4)
  // CHECK: exec.kernel "halo_quantize_128x64_{{[0-9a-f]+}}" kind "quantize"(%arg4)
  %fh = halo.hadamard %f {side = #halo.side<left>} : (tensor<128x64xbf16>) -> tensor<128x64xbf16>
  %fhq, %fhs = halo.quantize %fh {granularity = #halo.granularity<tensor>} : (tensor<128x64xbf16>) -> (tensor<128x64xf8E4M3FN>, tensor<f32>)
  %fq, %fs = halo.quantize %f {granularity = #halo.granularity<tensor>} : (tensor<128x64xbf16>) -> (tensor<128x64xf8E4M3FN>, tensor<f32>)
  %ft = halo.transpose %fq : (tensor<128x64xf8E4M3FN>) -> tensor<64x128xf8E4M3FN>
  return %dx, %dw, %fhq, %ft, %fq : tensor<128x32xbf16>, tensor<64x32xf32>, tensor<128x64xf8E4M3FN>, tensor<64x128xf8E4M3FN>, tensor<128x64xf8E4M3FN>
}

// -----

// Tests that the residual stream's gradient (rms_norm_grad's dx plus the
// gradient around the block) is summed inside the rms_norm_grad kernel, which
// yields dweight and the sum, while a dx read elsewhere keeps its own add.
// CHECK-LABEL: func.func @residual_grad
func.func @residual_grad(%h: tensor<8x64xbf16>, %w: tensor<64xbf16>, %dy: tensor<8x64xbf16>,
                         %dres: tensor<8x64xbf16>) -> (tensor<8x64xbf16>, tensor<64xf32>, tensor<8x64xbf16>, tensor<8x64xbf16>) {
  // CHECK: %[[K:.+]]:2 = exec.kernel "{{.*}}" kind "rms_norm_grad"(%arg0, %arg1, %arg2, %arg3)
  // CHECK: halo.rms_norm_grad
  // CHECK-NEXT: %[[S:.+]] = halo.add %arg{{[0-9]+}}, %dx
  // CHECK-NEXT: exec.yield %dweight, %[[S]]
  %dx, %dw = halo.rms_norm_grad %h, %w, %dy {eps = 1.0e-5} : (tensor<8x64xbf16>, tensor<64xbf16>, tensor<8x64xbf16>) -> (tensor<8x64xbf16>, tensor<64xf32>)
  %sum = halo.add %dres, %dx : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  // CHECK: kind "rms_norm_grad"(%arg0, %arg1, %arg3)
  // CHECK: kind "add"
  %dx2, %dw2 = halo.rms_norm_grad %h, %w, %dres {eps = 1.0e-5} : (tensor<8x64xbf16>, tensor<64xbf16>, tensor<8x64xbf16>) -> (tensor<8x64xbf16>, tensor<64xf32>)
  %sum2 = halo.add %dy, %dx2 : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  // CHECK: return %[[K]]#1, %[[K]]#0
  return %sum, %dw, %sum2, %dx2 : tensor<8x64xbf16>, tensor<64xf32>, tensor<8x64xbf16>, tensor<8x64xbf16>
}

// -----

// Tests that a right un-rotation read only by AdamW (and the return) joins
// the optimizer kernel, yielded when returned, and that one read by the
// global norm keeps its own kernel.
// CHECK-LABEL: func.func @unrotate_in_adamw
func.func @unrotate_in_adamw(%a: tensor<16x8xbf16>, %b: tensor<16x8xbf16>, %p: tensor<16x8xf32>,
                             %lr: tensor<f32>, %step: tensor<i32>)
    -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xbf16>) {
  // CHECK: %[[H:.+]] = exec.kernel "{{.*}}" kind "hadamard"(%arg1)
  // CHECK: %[[K:.+]]:{{[0-9]+}} = exec.kernel "{{.*}}" kind "optimizer"(%arg0, %[[H]],
  // CHECK-NEXT: ^bb0(
  // CHECK-NEXT: %[[G:.+]] = halo.hadamard %arg{{[0-9]+}} {side = #halo.side<right>, transposed}
  // CHECK-NEXT: halo.global_norm %arg{{[0-9]+}}, %arg{{[0-9]+}} :
  // CHECK: halo.adamw %arg{{[0-9]+}}, %[[G]],
  // CHECK: exec.yield %[[G]],
  %ga = halo.hadamard %a {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %gb = halo.hadamard %b {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %n = halo.global_norm %a, %gb : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<f32>
  %pa, %ma, %va = halo.adamw %p, %ga, %p, %p, %lr, %step, %n {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<16x8xf32>, tensor<16x8xbf16>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>)
  %pb, %mb, %vb = halo.adamw %p, %gb, %p, %p, %lr, %step, %n {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<16x8xf32>, tensor<16x8xbf16>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>)
  return %pa, %pb, %ga : tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xbf16>
}

// -----

// Tests that a right un-rotation read only by the SwiGLU backward (HALO-1/2's
// down_proj input gradient) joins that kernel, kind hadamard_swiglu_grad,
// which reads the rotated gradient, u and g and yields du and dg; a
// rotation that is also returned, or a left one, keeps its own kernel.
// CHECK-LABEL: func.func @unrotate_in_swiglu_grad
func.func @unrotate_in_swiglu_grad(%e: tensor<8x64xbf16>, %g: tensor<8x64xbf16>, %u: tensor<8x64xbf16>)
    -> (tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>,
        tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>) {
  // CHECK: %[[K:.+]]:2 = exec.kernel "halo_hadamard_swiglu_grad_8x64_{{[0-9a-f]+}}" kind "hadamard_swiglu_grad"(%arg0, %arg2, %arg1)
  // CHECK-NEXT: ^bb0(%[[E:.+]]: tensor<8x64xbf16>, %[[U:.+]]: tensor<8x64xbf16>, %[[G:.+]]: tensor<8x64xbf16>):
  // CHECK-NEXT: %[[DY:.+]] = halo.hadamard %[[E]] {side = #halo.side<right>, transposed}
  // CHECK-NEXT: %[[DS:.+]] = halo.mul %[[DY]], %[[U]]
  // CHECK-NEXT: %[[S:.+]] = halo.silu %[[G]]
  // CHECK-NEXT: %[[DU:.+]] = halo.mul %[[DY]], %[[S]]
  // CHECK-NEXT: %[[DG:.+]] = halo.silu_grad %[[G]], %[[DS]]
  // CHECK-NEXT: exec.yield %[[DU]], %[[DG]]
  %s = halo.silu %g : (tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %dy = halo.hadamard %e {side = #halo.side<right>, transposed} : (tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %ds = halo.mul %dy, %u : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %du = halo.mul %dy, %s : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %dg = halo.silu_grad %g, %ds : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  // CHECK: %[[H2:.+]] = exec.kernel "{{.*}}" kind "hadamard"(%arg0)
  // CHECK: exec.kernel "halo_swiglu_grad_8x64_{{[0-9a-f]+}}" kind "swiglu_grad"(%[[H2]], %arg2, %arg1)
  %dy2 = halo.hadamard %e {side = #halo.side<right>} : (tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %ds2 = halo.mul %dy2, %u : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %du2 = halo.mul %dy2, %s : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %dg2 = halo.silu_grad %g, %ds2 : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  // CHECK: %[[H3:.+]] = exec.kernel "{{.*}}" kind "hadamard"(%arg1)
  // CHECK: exec.kernel "halo_swiglu_grad_8x64_{{[0-9a-f]+}}" kind "swiglu_grad"(%[[H3]], %arg2, %arg1)
  %dy3 = halo.hadamard %g {side = #halo.side<left>, transposed} : (tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %ds3 = halo.mul %dy3, %u : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %du3 = halo.mul %dy3, %s : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %dg3 = halo.silu_grad %g, %ds3 : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  // CHECK: return %[[K]]#1, %[[K]]#0,
  return %dg, %du, %dg2, %du2, %dy2, %dg3, %du3, %s : tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>, tensor<8x64xbf16>
}

// -----

// Tests that a right un-rotation read only by an RMSNorm backward whose dx
// joins the residual stream's gradient (HALO-1/2's summed q/k/v and gate/up
// input gradients) joins that kernel, kind hadamard_rms_norm_grad; a left
// rotation keeps its own kernel.
// CHECK-LABEL: func.func @unrotate_in_rms_norm_grad
func.func @unrotate_in_rms_norm_grad(%h: tensor<8x64xbf16>, %w: tensor<64xbf16>, %e: tensor<8x64xbf16>,
                                     %dres: tensor<8x64xbf16>) -> (tensor<8x64xbf16>, tensor<64xf32>, tensor<8x64xbf16>, tensor<64xf32>) {
  // CHECK: %[[K:.+]]:2 = exec.kernel "{{.*}}" kind "hadamard_rms_norm_grad"(%arg2, %arg0, %arg1, %arg3)
  // CHECK-NEXT: ^bb0(%[[E:.+]]: tensor<8x64xbf16>, %[[H:.+]]: tensor<8x64xbf16>, %[[W:.+]]: tensor<64xbf16>, %[[R:.+]]: tensor<8x64xbf16>):
  // CHECK-NEXT: %[[DY:.+]] = halo.hadamard %[[E]] {side = #halo.side<right>, transposed}
  // CHECK-NEXT: %dx, %dweight = halo.rms_norm_grad %[[H]], %[[W]], %[[DY]]
  // CHECK-NEXT: %[[S:.+]] = halo.add %[[R]], %dx
  // CHECK-NEXT: exec.yield %dweight, %[[S]]
  %dy = halo.hadamard %e {side = #halo.side<right>, transposed} : (tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %dx, %dw = halo.rms_norm_grad %h, %w, %dy {eps = 1.0e-5} : (tensor<8x64xbf16>, tensor<64xbf16>, tensor<8x64xbf16>) -> (tensor<8x64xbf16>, tensor<64xf32>)
  %sum = halo.add %dres, %dx : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  // CHECK: %[[L:.+]] = exec.kernel "{{.*}}" kind "hadamard"(%arg2)
  // CHECK: kind "rms_norm_grad"(%arg0, %arg1, %[[L]], %arg3)
  %dy2 = halo.hadamard %e {side = #halo.side<left>, transposed} : (tensor<8x64xbf16>) -> tensor<8x64xbf16>
  %dx2, %dw2 = halo.rms_norm_grad %h, %w, %dy2 {eps = 1.0e-5} : (tensor<8x64xbf16>, tensor<64xbf16>, tensor<8x64xbf16>) -> (tensor<8x64xbf16>, tensor<64xf32>)
  %sum2 = halo.add %dres, %dx2 : (tensor<8x64xbf16>, tensor<8x64xbf16>) -> tensor<8x64xbf16>
  // CHECK: return %[[K]]#1, %[[K]]#0,
  return %sum, %dw, %sum2, %dw2 : tensor<8x64xbf16>, tensor<64xf32>, tensor<8x64xbf16>, tensor<64xf32>
}
