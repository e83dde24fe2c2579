// RUN: halo-opt %s -split-input-file --halo-accumulate-gemms | FileCheck %s

// Tests that q/k/v's summed input gradients become a chain of accumulating
// GEMMs, each where its add was and each adding into the earlier sum.
// CHECK-LABEL: func.func @qkv
func.func @qkv(%eq: tensor<16x8xbf16>, %ek: tensor<16x4xbf16>, %ev: tensor<16x4xbf16>,
               %wq: tensor<8x8xbf16>, %wk: tensor<4x8xbf16>, %wv: tensor<4x8xbf16>) -> tensor<16x8xbf16> {
  // CHECK: %[[V:.+]] = halo.matmul %arg2, %arg5 {layer = "l.v_proj"
  // CHECK-NEXT: %[[K:.+]] = halo.matmul %arg1, %arg4, %[[V]] {layer = "l.k_proj"
  // CHECK-NEXT: %[[Q:.+]] = halo.matmul %arg0, %arg3, %[[K]] {layer = "l.q_proj"
  // CHECK-SAME: (tensor<16x8xbf16>, tensor<8x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  // CHECK-NEXT: return %[[Q]]
  %v = halo.matmul %ev, %wv {layer = "l.v_proj", role = #halo.role<bwd_input>} : (tensor<16x4xbf16>, tensor<4x8xbf16>) -> tensor<16x8xbf16>
  %k = halo.matmul %ek, %wk {layer = "l.k_proj", role = #halo.role<bwd_input>} : (tensor<16x4xbf16>, tensor<4x8xbf16>) -> tensor<16x8xbf16>
  %vk = halo.add %v, %k : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %q = halo.matmul %eq, %wq {layer = "l.q_proj", role = #halo.role<bwd_input>} : (tensor<16x8xbf16>, tensor<8x8xbf16>) -> tensor<16x8xbf16>
  %sum = halo.add %vk, %q : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  return %sum : tensor<16x8xbf16>
}

// -----

// Tests the 8-bit GEMM: the accumulator follows the scales.
// CHECK-LABEL: func.func @quantized
func.func @quantized(%a: tensor<16x8xf8E4M3FN>, %sa: tensor<f32>, %b: tensor<8x8xf8E4M3FN>,
                     %sb: tensor<f32>, %x: tensor<16x8xbf16>) -> tensor<16x8xbf16> {
  // CHECK: %[[X:.+]] = halo.silu %arg4
  // CHECK-NEXT: %[[S:.+]] = halo.qmatmul %arg0, %arg1, %arg2, %arg3, %[[X]] {layer = "l.up_proj", role = #halo.role<bwd_input>, transpose_b}
  // CHECK-NEXT: return %[[S]]
  %g = halo.qmatmul %a, %sa, %b, %sb {transpose_b, layer = "l.up_proj", role = #halo.role<bwd_input>} : (tensor<16x8xf8E4M3FN>, tensor<f32>, tensor<8x8xf8E4M3FN>, tensor<f32>) -> tensor<16x8xbf16>
  %xs = halo.silu %x : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %sum = halo.add %g, %xs : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  return %sum : tensor<16x8xbf16>
}

// -----

// Tests the sums that stay adds: the other summand is an argument (state the
// GEMM must not overwrite) or is read again; the GEMM's result is read again;
// a forward GEMM (the residual add belongs to add_rms_norm).
// CHECK-LABEL: func.func @kept
func.func @kept(%e: tensor<16x8xbf16>, %w: tensor<8x8xbf16>, %x: tensor<16x8xbf16>)
    -> (tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>) {
  // CHECK-COUNT-4: halo.add
  // CHECK-NOT: halo.matmul %{{[^,]+}}, %{{[^,]+}}, %
  %m1 = halo.matmul %e, %w {layer = "l.a", role = #halo.role<bwd_input>} : (tensor<16x8xbf16>, tensor<8x8xbf16>) -> tensor<16x8xbf16>
  %s1 = halo.add %x, %m1 : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %y = halo.silu %x : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %m2 = halo.matmul %e, %w {layer = "l.b", role = #halo.role<bwd_input>} : (tensor<16x8xbf16>, tensor<8x8xbf16>) -> tensor<16x8xbf16>
  %s2 = halo.add %y, %m2 : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %z = halo.silu %x : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %m3 = halo.matmul %e, %w {layer = "l.c", role = #halo.role<bwd_input>} : (tensor<16x8xbf16>, tensor<8x8xbf16>) -> tensor<16x8xbf16>
  %s3 = halo.add %z, %m3 : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %u = halo.silu %x : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %f = halo.matmul %e, %w {layer = "l.d", role = #halo.role<fwd>, transpose_b} : (tensor<16x8xbf16>, tensor<8x8xbf16>) -> tensor<16x8xbf16>
  %s4 = halo.add %u, %f : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  return %s1, %s2, %y, %s3, %m3, %s4 : tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>
}
