// RUN: halo-opt %s --halo-legalize-gemm-layouts | FileCheck %s
// RUN: halo-opt %s --halo-legalize-gemm-layouts --halo-fuse | FileCheck %s --check-prefix=FUSED

// Tests that every 8-bit GEMM ends up in the K-major "TN" form: the forward
// GEMM is untouched, the input-gradient GEMM transposes Q(W), the
// weight-gradient GEMM transposes Q(E) and Q(X); BF16 GEMMs are left alone.
// CHECK-LABEL: func.func @three_gemms
func.func @three_gemms(%xq: tensor<16x12xf8E4M3FN>, %wq: tensor<24x12xf8E4M3FN>,
                       %eq: tensor<16x24xf8E4M3FN>, %s: tensor<f32>, %x: tensor<16x12xbf16>,
                       %w: tensor<24x12xbf16>) -> (tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<24x12xf32>, tensor<12x12xbf16>) {
  // CHECK: halo.qmatmul %arg0, %arg3, %arg1, %arg3 {transpose_b}
  %y = halo.qmatmul %xq, %s, %wq, %s {transpose_b} : (tensor<16x12xf8E4M3FN>, tensor<f32>, tensor<24x12xf8E4M3FN>, tensor<f32>) -> tensor<16x24xbf16>
  // CHECK: %[[WT:.+]] = halo.transpose %arg1 : (tensor<24x12xf8E4M3FN>) -> tensor<12x24xf8E4M3FN>
  // CHECK: halo.qmatmul %arg2, %arg3, %[[WT]], %arg3 {transpose_b}
  %dx = halo.qmatmul %eq, %s, %wq, %s : (tensor<16x24xf8E4M3FN>, tensor<f32>, tensor<24x12xf8E4M3FN>, tensor<f32>) -> tensor<16x12xbf16>
  // CHECK: %[[ET:.+]] = halo.transpose %arg2 : (tensor<16x24xf8E4M3FN>) -> tensor<24x16xf8E4M3FN>
  // CHECK: %[[XT:.+]] = halo.transpose %arg0 : (tensor<16x12xf8E4M3FN>) -> tensor<12x16xf8E4M3FN>
  // CHECK: halo.qmatmul %[[ET]], %arg3, %[[XT]], %arg3 {transpose_b}
  %dw = halo.qmatmul %eq, %s, %xq, %s {transpose_a} : (tensor<16x24xf8E4M3FN>, tensor<f32>, tensor<16x12xf8E4M3FN>, tensor<f32>) -> tensor<24x12xf32>
  // CHECK: halo.matmul %arg4, %arg4 {transpose_a}
  %b = halo.matmul %x, %x {transpose_a} : (tensor<16x12xbf16>, tensor<16x12xbf16>) -> tensor<12x12xbf16>
  return %y, %dx, %dw, %b : tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<24x12xf32>, tensor<12x12xbf16>
}

// Tests that codes several GEMMs need transposed are transposed once.
// CHECK-LABEL: func.func @transpose_once
func.func @transpose_once(%eq: tensor<16x24xf8E4M3FN>, %fq: tensor<16x8xf8E4M3FN>,
                          %xq: tensor<16x12xf8E4M3FN>, %s: tensor<f32>) -> (tensor<24x12xf32>, tensor<8x12xf32>) {
  // CHECK: %[[XT:.+]] = halo.transpose %arg2
  // CHECK-NEXT: halo.qmatmul %{{.+}}, %arg3, %[[XT]], %arg3 {transpose_b}
  // CHECK-NOT: halo.transpose %arg2
  // CHECK: halo.transpose %arg1
  // CHECK-NEXT: halo.qmatmul %{{.+}}, %arg3, %[[XT]], %arg3 {transpose_b}
  %dw1 = halo.qmatmul %eq, %s, %xq, %s {transpose_a} : (tensor<16x24xf8E4M3FN>, tensor<f32>, tensor<16x12xf8E4M3FN>, tensor<f32>) -> tensor<24x12xf32>
  %dw2 = halo.qmatmul %fq, %s, %xq, %s {transpose_a} : (tensor<16x8xf8E4M3FN>, tensor<f32>, tensor<16x12xf8E4M3FN>, tensor<f32>) -> tensor<8x12xf32>
  return %dw1, %dw2 : tensor<24x12xf32>, tensor<8x12xf32>
}

// Tests that a transpose of codes nobody else reads joins the quantize kernel.
// FUSED-LABEL: func.func @fold_into_quantize
// FUSED: exec.kernel "halo_hadamard_quantize_{{.*}}" kind "hadamard_quantize"
// FUSED-NEXT: ^bb0
// FUSED-NEXT: halo.hadamard
// FUSED-NEXT: halo.quantize
// FUSED-NEXT: %[[T:.+]] = halo.transpose
// FUSED-NEXT: exec.yield %{{[a-z0-9_]+}}, %[[T]]
func.func @fold_into_quantize(%x: tensor<16x12xbf16>, %w: tensor<16x24xf8E4M3FN>, %s: tensor<f32>) -> tensor<12x24xf32> {
  %h = halo.hadamard %x {side = #halo.side<right>} : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %q, %qs = halo.quantize %h {granularity = #halo.granularity<tensor>} : (tensor<16x12xbf16>) -> (tensor<16x12xf8E4M3FN>, tensor<f32>)
  %g = halo.qmatmul %q, %qs, %w, %s {transpose_a} : (tensor<16x12xf8E4M3FN>, tensor<f32>, tensor<16x24xf8E4M3FN>, tensor<f32>) -> tensor<12x24xf32>
  return %g : tensor<12x24xf32>
}
