// RUN: halo-opt %s --halo-place-rotations='level=0 precision=fp8' | FileCheck %s --check-prefix=L0
// RUN: halo-opt %s --halo-place-rotations='level=1 precision=fp8' | FileCheck %s --check-prefix=L1
// RUN: halo-opt %s --halo-place-rotations='level=2 precision=int8' | FileCheck %s --check-prefix=L2
// RUN: halo-opt %s --halo-place-rotations='level=2 precision=bf16' | FileCheck %s --check-prefix=BF16

// Tests the HALO table on the three GEMMs of one linear layer, X [T=16, m=12],
// W [n=24, m=12], E [T, n] (halo-method.md section 1).

func.func @one_linear(%x: tensor<16x12xbf16>, %w: tensor<24x12xbf16>, %e: tensor<16x24xbf16>)
    -> (tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<24x12xf32>) {
  %y = halo.matmul %x, %w {transpose_b, layer = "l", role = #halo.role<fwd>} : (tensor<16x12xbf16>, tensor<24x12xbf16>) -> tensor<16x24xbf16>
  %dx = halo.matmul %e, %w {layer = "l", role = #halo.role<bwd_input>} : (tensor<16x24xbf16>, tensor<24x12xbf16>) -> tensor<16x12xbf16>
  %dw = halo.matmul %e, %x {transpose_a, layer = "l", role = #halo.role<bwd_weight>} : (tensor<16x24xbf16>, tensor<16x12xbf16>) -> tensor<24x12xf32>
  return %y, %dx, %dw : tensor<16x24xbf16>, tensor<16x12xbf16>, tensor<24x12xf32>
}

// HALO-0: Q(X) Q(W)^T, Q(E) Q(W), Q(E)^T Q(X); no rotation anywhere.
// L0-LABEL: func.func @one_linear
// L0-NOT: halo.hadamard
// L0: %[[XQ:.+]], %[[XS:.+]] = halo.quantize %arg0 {granularity = #halo.granularity<tensor>} {{.*}} -> (tensor<16x12xf8E4M3FN>, tensor<f32>)
// L0: %[[WQ:.+]], %[[WS:.+]] = halo.quantize %arg1
// L0: halo.qmatmul %[[XQ]], %[[XS]], %[[WQ]], %[[WS]] {layer = "l", role = #halo.role<fwd>, transpose_b}
// L0: %[[EQ:.+]], %[[ES:.+]] = halo.quantize %arg2
// L0: %[[WQ2:.+]], %[[WS2:.+]] = halo.quantize %arg1
// L0: halo.qmatmul %[[EQ]], %[[ES]], %[[WQ2]], %[[WS2]] {layer = "l", role = #halo.role<bwd_input>}
// L0: %[[EQ2:.+]], %[[ES2:.+]] = halo.quantize %arg2
// L0: %[[XQ2:.+]], %[[XS2:.+]] = halo.quantize %arg0
// L0: halo.qmatmul %[[EQ2]], %[[ES2]], %[[XQ2]], %[[XS2]] {layer = "l", role = #halo.role<bwd_weight>, transpose_a}
// L0-NOT: halo.hadamard

// HALO-1: Q(XH) Q(WH)^T; [Q(E) Q(WH)] H^T; [Q(E)^T Q(XH)] H^T.
// L1-LABEL: func.func @one_linear
// L1: %[[XH:.+]] = halo.hadamard %arg0 {side = #halo.side<right>} : (tensor<16x12xbf16>)
// L1: %[[WH:.+]] = halo.hadamard %arg1 {side = #halo.side<right>} : (tensor<24x12xbf16>)
// L1: %[[XQ:.+]], %[[XS:.+]] = halo.quantize %[[XH]]
// L1: %[[WQ:.+]], %[[WS:.+]] = halo.quantize %[[WH]]
// L1: halo.qmatmul %[[XQ]], %[[XS]], %[[WQ]], %[[WS]] {layer = "l", role = #halo.role<fwd>, transpose_b}
// L1: %[[WH2:.+]] = halo.hadamard %arg1 {side = #halo.side<right>}
// L1: %[[EQ:.+]], %[[ES:.+]] = halo.quantize %arg2
// L1: %[[WQ2:.+]], %[[WS2:.+]] = halo.quantize %[[WH2]]
// L1: %[[DXR:.+]] = halo.qmatmul %[[EQ]], %[[ES]], %[[WQ2]], %[[WS2]] {layer = "l", role = #halo.role<bwd_input>}
// L1: halo.hadamard %[[DXR]] {side = #halo.side<right>, transposed} : (tensor<16x12xbf16>)
// L1: %[[XH2:.+]] = halo.hadamard %arg0 {side = #halo.side<right>}
// L1: %[[EQ2:.+]], %[[ES2:.+]] = halo.quantize %arg2
// L1: %[[XQ2:.+]], %[[XS2:.+]] = halo.quantize %[[XH2]]
// L1: %[[DWR:.+]] = halo.qmatmul %[[EQ2]], %[[ES2]], %[[XQ2]], %[[XS2]] {layer = "l", role = #halo.role<bwd_weight>, transpose_a}
// L1: halo.hadamard %[[DWR]] {side = #halo.side<right>, transposed} : (tensor<24x12xf32>)

// HALO-2 adds the token rotation of E for the input gradient only:
// H_T^T [Q(H_T E) Q(WH)] H^T, with INT8 operands.
// L2-LABEL: func.func @one_linear
// L2: halo.qmatmul {{.*}} role = #halo.role<fwd>{{.*}} : (tensor<16x12xi8>, tensor<f32>, tensor<24x12xi8>, tensor<f32>)
// L2: %[[EH:.+]] = halo.hadamard %arg2 {side = #halo.side<left>} : (tensor<16x24xbf16>)
// L2: %[[WH:.+]] = halo.hadamard %arg1 {side = #halo.side<right>}
// L2: %[[EQ:.+]], %[[ES:.+]] = halo.quantize %[[EH]]
// L2: %[[WQ:.+]], %[[WS:.+]] = halo.quantize %[[WH]]
// L2: %[[R:.+]] = halo.qmatmul %[[EQ]], %[[ES]], %[[WQ]], %[[WS]] {layer = "l", role = #halo.role<bwd_input>}
// L2: %[[R1:.+]] = halo.hadamard %[[R]] {side = #halo.side<left>, transposed}
// L2: halo.hadamard %[[R1]] {side = #halo.side<right>, transposed}
// L2: %[[EQ2:.+]], %[[ES2:.+]] = halo.quantize %arg2 {granularity = #halo.granularity<tensor>} : (tensor<16x24xbf16>) -> (tensor<16x24xi8>, tensor<f32>)
// L2: halo.qmatmul %[[EQ2]], %[[ES2]], {{.*}} role = #halo.role<bwd_weight>

// BF16 leaves the GEMMs alone.
// BF16-LABEL: func.func @one_linear
// BF16-NOT: halo.hadamard
// BF16-NOT: halo.quantize
// BF16-COUNT-3: halo.matmul
