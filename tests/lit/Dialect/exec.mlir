// RUN: halo-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// Tests that an exec.kernel round-trips with its body.
// CHECK-LABEL: func.func @kernel
// CHECK: %[[K:.+]] = exec.kernel "halo_silu_4x4_0" kind "silu"(%arg0) : (tensor<4x4xbf16>) -> tensor<4x4xbf16> {
// CHECK-NEXT: ^bb0(%[[A:.+]]: tensor<4x4xbf16>):
// CHECK-NEXT: %[[S:.+]] = halo.silu %[[A]]
// CHECK-NEXT: exec.yield %[[S]] : tensor<4x4xbf16>
func.func @kernel(%x: tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  %0 = exec.kernel "halo_silu_4x4_0" kind "silu"(%x) : (tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  ^bb0(%a: tensor<4x4xbf16>):
    %s = halo.silu %a : (tensor<4x4xbf16>) -> tensor<4x4xbf16>
    exec.yield %s : tensor<4x4xbf16>
  }
  return %0 : tensor<4x4xbf16>
}

// -----

func.func @arity(%x: tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  // expected-error @+1 {{'exec.kernel' op has 1 inputs but its body takes 2 arguments}}
  %0 = exec.kernel "k" kind "silu"(%x) : (tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  ^bb0(%a: tensor<4x4xbf16>, %b: tensor<4x4xbf16>):
    exec.yield %a : tensor<4x4xbf16>
  }
  return %0 : tensor<4x4xbf16>
}

// -----

func.func @yield_types(%x: tensor<4x4xbf16>) -> tensor<4x4xf32> {
  // expected-error @+1 {{'exec.kernel' op yields 1 values whose types differ from the kernel's results}}
  %0 = exec.kernel "k" kind "silu"(%x) : (tensor<4x4xbf16>) -> tensor<4x4xf32> {
  ^bb0(%a: tensor<4x4xbf16>):
    exec.yield %a : tensor<4x4xbf16>
  }
  return %0 : tensor<4x4xf32>
}

// -----

func.func @isolated(%x: tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  // expected-note @+1 {{required by region isolation constraints}}
  %0 = exec.kernel "k" kind "add"(%x) : (tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  ^bb0(%a: tensor<4x4xbf16>):
    // expected-error @+1 {{using value defined outside the region}}
    %s = halo.add %a, %x : (tensor<4x4xbf16>, tensor<4x4xbf16>) -> tensor<4x4xbf16>
    exec.yield %s : tensor<4x4xbf16>
  }
  return %0 : tensor<4x4xbf16>
}

// -----

func.func @no_yield(%x: tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  // expected-error @+1 {{'exec.kernel' op body must end with exec.yield}}
  %0 = exec.kernel "k" kind "silu"(%x) : (tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  ^bb0(%a: tensor<4x4xbf16>):
    func.return %a : tensor<4x4xbf16>
  }
  return %0 : tensor<4x4xbf16>
}
