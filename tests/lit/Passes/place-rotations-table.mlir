// RUN: halo-opt %s -split-input-file -verify-diagnostics --halo-place-rotations | FileCheck %s

// Tests the per-matmul research table from the module's halo.placement: row
// scales, and reduction-dimension rotations in the backward GEMMs, which must
// come as an H / H^T pair so that they cancel.

module attributes {halo.placement = {precision = "fp8",
    fwd = {x = {hadamard = "right", quant = "row"}, w = {hadamard = "right", quant = "row"}},
    bwd_input = {e = {hadamard = "right", quant = "row"}, w = {hadamard = "left", quant = "tensor"}},
    bwd_weight = {e = {hadamard = "left", quant = "tensor"}, x = {hadamard = "left", quant = "tensor"}}}} {
// CHECK-LABEL: func.func @table
func.func @table(%x: tensor<16x12xbf16>, %w: tensor<24x12xbf16>, %e: tensor<16x24xbf16>)
    -> (tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<24x12xf32>) {
  // Forward: per-token and per-output-channel scales.
  // CHECK: halo.quantize {{.*}} {granularity = #halo.granularity<row>} : (tensor<16x12xbf16>) -> (tensor<16x12xf8E4M3FN>, tensor<16xf32>)
  // CHECK: halo.quantize {{.*}} {granularity = #halo.granularity<row>} : (tensor<24x12xbf16>) -> (tensor<24x12xf8E4M3FN>, tensor<24xf32>)
  // CHECK: halo.qmatmul {{.*}} role = #halo.role<fwd>
  %y = halo.matmul %x, %w {transpose_b, layer = "l", role = #halo.role<fwd>} : (tensor<16x12xbf16>, tensor<24x12xbf16>) -> tensor<16x24xbf16>
  // Input gradient: (E H)(H^T W) over n = 24; nothing to undo on the output.
  // CHECK: halo.hadamard %arg2 {side = #halo.side<right>} : (tensor<16x24xbf16>)
  // CHECK: halo.hadamard %arg1 {side = #halo.side<left>, transposed} : (tensor<24x12xbf16>)
  // CHECK: %[[DX:.+]] = halo.qmatmul {{.*}} role = #halo.role<bwd_input>
  // CHECK-NOT: halo.hadamard %[[DX]]
  %dx = halo.matmul %e, %w {layer = "l", role = #halo.role<bwd_input>} : (tensor<16x24xbf16>, tensor<24x12xbf16>) -> tensor<16x12xbf16>
  // Weight gradient: (H E)^T (H X) = E^T X over T = 16.
  // CHECK: halo.hadamard %arg2 {side = #halo.side<left>} : (tensor<16x24xbf16>)
  // CHECK: halo.hadamard %arg0 {side = #halo.side<left>} : (tensor<16x12xbf16>)
  // CHECK: %[[DW:.+]] = halo.qmatmul {{.*}} role = #halo.role<bwd_weight>, transpose_a}
  // CHECK-NEXT: return %{{.*}}, %{{.*}}, %[[DW]]
  %dw = halo.matmul %e, %x {transpose_a, layer = "l", role = #halo.role<bwd_weight>} : (tensor<16x24xbf16>, tensor<16x12xbf16>) -> tensor<24x12xf32>
  return %y, %dx, %dw : tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<24x12xf32>
}
}

// -----

// Tests that a reduction rotation on one operand only is rejected.
// expected-error @+1 {{halo.matmuls.fwd}}
module attributes {halo.placement = {precision = "fp8",
    fwd = {x = {hadamard = "right", quant = "tensor"}, w = {hadamard = "none", quant = "tensor"}},
    bwd_input = {e = {hadamard = "none", quant = "tensor"}, w = {hadamard = "none", quant = "tensor"}},
    bwd_weight = {e = {hadamard = "none", quant = "tensor"}, x = {hadamard = "none", quant = "tensor"}}}} {
func.func @stranded(%x: tensor<16x12xbf16>, %w: tensor<24x12xbf16>) -> tensor<16x24xbf16> {
  %y = halo.matmul %x, %w {transpose_b, layer = "l", role = #halo.role<fwd>} : (tensor<16x12xbf16>, tensor<24x12xbf16>) -> tensor<16x24xbf16>
  return %y : tensor<16x24xbf16>
}
}

// -----

// Tests that a rotated dimension with no Hadamard matrix names the layer and size.
module attributes {halo.placement = {precision = "fp8", level = 1}} {
func.func @bad_size(%x: tensor<16x18xbf16>, %w: tensor<8x18xbf16>) -> tensor<16x8xbf16> {
  // expected-error @+1 {{layer 'model.layers.3.mlp.up_proj', fwd operand x 'tensor<16x18xbf16>': no Hadamard matrix of size 18 for the right rotation}}
  %y = halo.matmul %x, %w {transpose_b, layer = "model.layers.3.mlp.up_proj", role = #halo.role<fwd>} : (tensor<16x18xbf16>, tensor<8x18xbf16>) -> tensor<16x8xbf16>
  return %y : tensor<16x8xbf16>
}
}

// -----

// Tests the placer's own stranded-rotation check, for a GEMM whose layout is
// not the one autodiff writes: HALO-1 rotates x and w "right", but here w is
// stored [m, n], so its right side is the free dimension n and x's reduction
// rotation has no partner.
module attributes {halo.placement = {precision = "fp8", level = 1}} {
func.func @odd_layout(%x: tensor<16x12xbf16>, %w: tensor<12x24xbf16>) -> tensor<16x24xbf16> {
  // expected-error @+1 {{layer 'l', fwd: the rotation of x mixes the reduction dimension but w is not rotated the same way, so the rotation is stranded}}
  %y = halo.matmul %x, %w {layer = "l", role = #halo.role<fwd>} : (tensor<16x12xbf16>, tensor<12x24xbf16>) -> tensor<16x24xbf16>
  return %y : tensor<16x24xbf16>
}
}
