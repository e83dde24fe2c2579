// RUN: halo-opt %s --halo-simplify | FileCheck %s

// Tests that an H H^T pair cancels, that two identical rotations and
// quantizations of one value merge into one shared by both GEMMs, and that the
// dead BF16 rotation is removed.
// CHECK-LABEL: func.func @simplify
func.func @simplify(%x: tensor<16x12xbf16>, %w: tensor<24x12xbf16>) -> (tensor<16x12xbf16>, tensor<16x24xbf16>, tensor<16x24xf32>) {
  // CHECK-NOT: halo.hadamard %arg0 {side = #halo.side<left>}
  %a = halo.hadamard %x {side = #halo.side<left>} : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %b = halo.hadamard %a {side = #halo.side<left>, transposed} : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  // CHECK: %[[XH:.+]] = halo.hadamard %arg0 {side = #halo.side<right>}
  // CHECK-NOT: halo.hadamard %arg0 {side = #halo.side<right>}
  // CHECK: %[[XQ:[^ ,]+]], %[[XS:[^ ,]+]] = halo.quantize %[[XH]]
  // CHECK-NOT: halo.quantize %[[XH]]
  %xh1 = halo.hadamard %x {side = #halo.side<right>} : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %xh2 = halo.hadamard %x {side = #halo.side<right>} : (tensor<16x12xbf16>) -> tensor<16x12xbf16>
  %dead = halo.hadamard %w {side = #halo.side<right>} : (tensor<24x12xbf16>) -> tensor<24x12xbf16>
  %q1, %s1 = halo.quantize %xh1 {granularity = #halo.granularity<tensor>} : (tensor<16x12xbf16>) -> (tensor<16x12xf8E4M3FN>, tensor<f32>)
  %q2, %s2 = halo.quantize %xh2 {granularity = #halo.granularity<tensor>} : (tensor<16x12xbf16>) -> (tensor<16x12xf8E4M3FN>, tensor<f32>)
  %wq, %ws = halo.quantize %w {granularity = #halo.granularity<tensor>} : (tensor<24x12xbf16>) -> (tensor<24x12xf8E4M3FN>, tensor<f32>)
  // CHECK: halo.qmatmul %[[XQ]], %[[XS]]
  // CHECK: halo.qmatmul %[[XQ]], %[[XS]]
  %y1 = halo.qmatmul %q1, %s1, %wq, %ws {transpose_b} : (tensor<16x12xf8E4M3FN>, tensor<f32>, tensor<24x12xf8E4M3FN>, tensor<f32>) -> tensor<16x24xbf16>
  %y2 = halo.qmatmul %q2, %s2, %wq, %ws {transpose_b} : (tensor<16x12xf8E4M3FN>, tensor<f32>, tensor<24x12xf8E4M3FN>, tensor<f32>) -> tensor<16x24xf32>
  // CHECK: return %arg0,
  return %b, %y1, %y2 : tensor<16x12xbf16>, tensor<16x24xbf16>, tensor<16x24xf32>
}
// CHECK-NOT: halo.hadamard %arg1
