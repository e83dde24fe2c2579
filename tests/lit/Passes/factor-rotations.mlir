// RUN: halo-opt %s --halo-factor-rotations | FileCheck %s

// Tests that a sum of identically rotated values is rotated once (nested sums
// and nested rotations included, as for HALO-2's q/k/v input gradients), and
// that sums of different rotations, or of rotations read elsewhere, stay.
// CHECK-LABEL: func.func @qkv
func.func @qkv(%q: tensor<16x8xbf16>, %k: tensor<16x8xbf16>, %v: tensor<16x8xbf16>) -> tensor<16x8xbf16> {
  // CHECK: %[[S1:.+]] = halo.add %arg2, %arg1
  // CHECK: %[[S2:.+]] = halo.add %[[S1]], %arg0
  // CHECK: %[[L:.+]] = halo.hadamard %[[S2]] {side = #halo.side<left>, transposed}
  // CHECK: %[[R:.+]] = halo.hadamard %[[L]] {side = #halo.side<right>, transposed}
  // CHECK-NEXT: return %[[R]]
  %vl = halo.hadamard %v {side = #halo.side<left>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %vr = halo.hadamard %vl {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %kl = halo.hadamard %k {side = #halo.side<left>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %kr = halo.hadamard %kl {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %vk = halo.add %vr, %kr : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %ql = halo.hadamard %q {side = #halo.side<left>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %qr = halo.hadamard %ql {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %sum = halo.add %vk, %qr : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  return %sum : tensor<16x8xbf16>
}

// CHECK-LABEL: func.func @kept
func.func @kept(%a: tensor<16x8xbf16>, %b: tensor<16x8xbf16>) -> (tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>) {
  // Different directions: not one rotation.
  // CHECK: %[[A:.+]] = halo.hadamard %arg0 {side = #halo.side<right>}
  // CHECK: %[[B:.+]] = halo.hadamard %arg1 {side = #halo.side<right>, transposed}
  // CHECK: halo.add %[[A]], %[[B]]
  %ra = halo.hadamard %a {side = #halo.side<right>} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %rb = halo.hadamard %b {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %s1 = halo.add %ra, %rb : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  // The rotated value is also returned: factoring would not save its rotation.
  // CHECK: %[[C:.+]] = halo.hadamard %arg0 {side = #halo.side<left>}
  // CHECK: %[[D:.+]] = halo.hadamard %arg1 {side = #halo.side<left>}
  // CHECK: halo.add %[[C]], %[[D]]
  %la = halo.hadamard %a {side = #halo.side<left>} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %lb = halo.hadamard %b {side = #halo.side<left>} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %s2 = halo.add %la, %lb : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  return %s1, %s2, %la : tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>
}

// Tests that the global norm reads weight gradients before their right
// un-rotation (the norm is rotation-invariant) where the rotation otherwise
// feeds AdamW or the return only, and keeps it where anything else reads it.
// CHECK-LABEL: func.func @norm
func.func @norm(%a: tensor<16x8xbf16>, %b: tensor<16x8xbf16>, %c: tensor<16x8xbf16>,
                %p: tensor<16x8xf32>, %lr: tensor<f32>, %step: tensor<i32>)
    -> (tensor<f32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xbf16>, tensor<16x8xbf16>) {
  // CHECK: %[[A:.+]] = halo.hadamard %arg0 {side = #halo.side<right>, transposed}
  // CHECK: %[[B:.+]] = halo.hadamard %arg1 {side = #halo.side<right>, transposed}
  // CHECK: %[[C:.+]] = halo.hadamard %arg2 {side = #halo.side<right>, transposed}
  // CHECK: %[[D:.+]] = halo.add %[[C]], %[[C]]
  // CHECK: halo.global_norm %arg0, %arg1, %[[C]] :
  %ga = halo.hadamard %a {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %gb = halo.hadamard %b {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %gc = halo.hadamard %c {side = #halo.side<right>, transposed} : (tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %d = halo.add %gc, %gc : (tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<16x8xbf16>
  %n = halo.global_norm %ga, %gb, %gc : (tensor<16x8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>) -> tensor<f32>
  %pa, %ma, %va = halo.adamw %p, %ga, %p, %p, %lr, %step, %lr {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<16x8xf32>, tensor<16x8xbf16>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>)
  %pc, %mc, %vc = halo.adamw %p, %gc, %p, %p, %lr, %step, %lr {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<16x8xf32>, tensor<16x8xbf16>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>)
  return %n, %pa, %pc, %gb, %d : tensor<f32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xbf16>, tensor<16x8xbf16>
}
