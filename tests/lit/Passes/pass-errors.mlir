// Tests the passes' errors for missing or bad configuration.
// RUN: not halo-opt %s --halo-place-rotations 2>&1 | FileCheck %s --check-prefix=NOPLACE
// NOPLACE: error: halo-place-rotations: no precision: pass precision=fp8|int8|bf16 or give the module a halo.placement attribute
// RUN: not halo-opt %s --halo-place-rotations='precision=fp4' 2>&1 | FileCheck %s --check-prefix=PREC
// PREC: error: halo-place-rotations: unknown precision 'fp4' (expected fp8, int8 or bf16)
// RUN: not halo-opt %s --halo-place-rotations='precision=fp8' 2>&1 | FileCheck %s --check-prefix=LEVEL
// LEVEL: error: halo-place-rotations: no valid HALO level: pass level=0|1|2
// RUN: not halo-opt %s --halo-autodiff 2>&1 | FileCheck %s --check-prefix=TRAIN
// TRAIN: error: halo-autodiff: the module has no 'halo.train' dictionary
// RUN: not halo-opt %s --halo-plan-memory='alignment=3' 2>&1 | FileCheck %s --check-prefix=ALIGN
// ALIGN: error: halo-plan-memory: alignment must be a power of two, got 3

func.func @forward(%x: tensor<16x12xbf16>, %w: tensor<24x12xbf16>, %t: tensor<16xi32>) -> tensor<f32> {
  %y = halo.linear %x, %w {layer = "l"} : (tensor<16x12xbf16>, tensor<24x12xbf16>) -> tensor<16x24xbf16>
  %l = halo.cross_entropy %y, %t : (tensor<16x24xbf16>, tensor<16xi32>) -> tensor<f32>
  return %l : tensor<f32>
}
