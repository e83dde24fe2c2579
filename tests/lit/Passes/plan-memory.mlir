// RUN: halo-opt %s -split-input-file -verify-diagnostics --halo-plan-memory | FileCheck %s

// Tests that buffers whose lifetimes intersect get disjoint bytes and that a
// buffer reuses the bytes of one that died: a [0,1], b [1,2], c [2,3];
// 16x16 bf16 = 512 bytes each.
// CHECK-LABEL: func.func @chain
// CHECK-SAME: attributes {halo.arena_bytes = 1024 : i64}
func.func @chain(%x: tensor<16x16xbf16>) -> tensor<16x16xbf16> {
  // CHECK: halo.silu %arg0 {halo.offsets = array<i64: 0>}
  %a = halo.silu %x : (tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: halo.silu %{{.*}} {halo.offsets = array<i64: 512>}
  %b = halo.silu %a : (tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: halo.silu %{{.*}} {halo.offsets = array<i64: 0>}
  %c = halo.silu %b : (tensor<16x16xbf16>) -> tensor<16x16xbf16>
  return %c : tensor<16x16xbf16>
}

// -----

// Tests that a value used late stays live (no reuse of its bytes), that
// small buffers are rounded up to the alignment, and that AdamW's in-place
// results take no arena bytes.
// CHECK-LABEL: func.func @long_lived
// CHECK-SAME: attributes {halo.arena_bytes = 1536 : i64}
func.func @long_lived(%x: tensor<16x16xbf16>, %p: tensor<4xf32>, %s: tensor<f32>, %i: tensor<i32>)
    -> (tensor<16x16xbf16>, tensor<4xf32>) {
  // CHECK: halo.silu %arg0 {halo.offsets = array<i64: 0>}
  %a = halo.silu %x : (tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: halo.silu %{{.*}} {halo.offsets = array<i64: 512>}
  %b = halo.silu %a : (tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: halo.silu %{{.*}} {halo.offsets = array<i64: 1024>}
  %c = halo.silu %b : (tensor<16x16xbf16>) -> tensor<16x16xbf16>
  %d = halo.add %c, %a : (tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: halo.adamw
  // CHECK-NOT: halo.offsets
  // CHECK-SAME: -> (tensor<4xf32>
  %np, %nm, %nv = halo.adamw %p, %p, %p, %p, %s, %i, %s {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %d, %np : tensor<16x16xbf16>, tensor<4xf32>
}

// -----

// Tests that the BF16 compute copy of an updated master (a cast of AdamW's
// new parameter) is state written in place: no arena bytes, like AdamW's
// results; a cast of anything else is an ordinary intermediate.
// CHECK-LABEL: func.func @compute_copy
func.func @compute_copy(%p: tensor<4xf32>, %s: tensor<f32>, %i: tensor<i32>)
    -> (tensor<4xf32>, tensor<4xbf16>, tensor<4xbf16>) {
  %np, %nm, %nv = halo.adamw %p, %p, %p, %p, %s, %i, %s {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  // CHECK: halo.cast %new_param
  // CHECK-NOT: halo.offsets
  // CHECK-SAME: -> tensor<4xbf16>
  %c = halo.cast %np : (tensor<4xf32>) -> tensor<4xbf16>
  // CHECK: halo.cast %arg0 {halo.offsets = array<i64: 0>}
  %d = halo.cast %p : (tensor<4xf32>) -> tensor<4xbf16>
  return %np, %c, %d : tensor<4xf32>, tensor<4xbf16>, tensor<4xbf16>
}

// -----

// Tests that an accumulating GEMM's result takes its accumulator's bytes and
// keeps them alive to its own last use: %b cannot reuse %k's bytes.
// CHECK-LABEL: func.func @accumulate
// CHECK-SAME: attributes {halo.arena_bytes = 1536 : i64}
func.func @accumulate(%e: tensor<16x16xbf16>, %w: tensor<16x16xbf16>) -> tensor<16x16xbf16> {
  // CHECK: halo.matmul %arg0, %arg1 {halo.offsets = array<i64: 0>
  %k = halo.matmul %e, %w {layer = "l.k", role = #halo.role<bwd_input>} : (tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: halo.matmul %arg0, %arg1, %{{.*}} {halo.offsets = array<i64: 0>
  %q = halo.matmul %e, %w, %k {layer = "l.q", role = #halo.role<bwd_input>} : (tensor<16x16xbf16>, tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: halo.silu %{{.*}} {halo.offsets = array<i64: 512>}
  %b = halo.silu %q : (tensor<16x16xbf16>) -> tensor<16x16xbf16>
  %c = halo.add %b, %q : (tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  return %c : tensor<16x16xbf16>
}

// -----

func.func @accumulator_read_later(%e: tensor<16x16xbf16>, %w: tensor<16x16xbf16>) -> tensor<16x16xbf16> {
  %k = halo.matmul %e, %w {layer = "l.k", role = #halo.role<bwd_input>} : (tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  // expected-error @+1 {{halo-plan-memory: the accumulator is read after the GEMM that overwrites it}}
  %q = halo.matmul %e, %w, %k {layer = "l.q", role = #halo.role<bwd_input>} : (tensor<16x16xbf16>, tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  %c = halo.add %k, %q : (tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  return %c : tensor<16x16xbf16>
}

// -----

func.func @accumulator_argument(%e: tensor<16x16xbf16>, %w: tensor<16x16xbf16>) -> tensor<16x16xbf16> {
  // expected-error @+1 {{halo-plan-memory: the accumulator must be an intermediate result}}
  %q = halo.matmul %e, %w, %e {layer = "l.q", role = #halo.role<bwd_input>} : (tensor<16x16xbf16>, tensor<16x16xbf16>, tensor<16x16xbf16>) -> tensor<16x16xbf16>
  return %q : tensor<16x16xbf16>
}
