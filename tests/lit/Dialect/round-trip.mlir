// RUN: halo-opt %s | halo-opt | FileCheck %s
// RUN: halo-opt %s --mlir-print-op-generic | halo-opt | FileCheck %s

// Tests that every model op parses, verifies and prints back unchanged.
// CHECK-LABEL: func.func @model_ops
func.func @model_ops(%ids: tensor<8xi32>, %table: tensor<16x12xbf16>, %w: tensor<12xbf16>,
                     %wq: tensor<12x12xbf16>, %wkv: tensor<6x12xbf16>) -> tensor<f32> {
  // CHECK: halo.embedding %{{.*}}, %{{.*}} : (tensor<8xi32>, tensor<16x12xbf16>) -> tensor<8x12xbf16>
  %h = halo.embedding %ids, %table : (tensor<8xi32>, tensor<16x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.rms_norm {{.*}} {eps = 1.000000e-05 : f64}
  %n = halo.rms_norm %h, %w {eps = 1.0e-5 : f64} : (tensor<8x12xbf16>, tensor<12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.linear {{.*}} {layer = "model.layers.0.self_attn.q_proj"}
  %q = halo.linear %n, %wq {layer = "model.layers.0.self_attn.q_proj"} : (tensor<8x12xbf16>, tensor<12x12xbf16>) -> tensor<8x12xbf16>
  %k = halo.linear %n, %wkv {layer = "model.layers.0.self_attn.k_proj"} : (tensor<8x12xbf16>, tensor<6x12xbf16>) -> tensor<8x6xbf16>
  // CHECK: halo.rope {{.*}} {head_dim = 6 : i64, inverse, seq_len = 4 : i64, theta = 1.000000e+04 : f64}
  %qr = halo.rope %q {seq_len = 4, head_dim = 6, theta = 10000.0, inverse} : (tensor<8x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.attention {{.*}} -> (tensor<8x12xbf16>, tensor<16xf32>)
  %o, %lse = halo.attention %qr, %k, %k {batch = 2, seq_len = 4, num_heads = 2, num_kv_heads = 1, head_dim = 6} : (tensor<8x12xbf16>, tensor<8x6xbf16>, tensor<8x6xbf16>) -> (tensor<8x12xbf16>, tensor<16xf32>)
  // CHECK: halo.silu
  %s = halo.silu %o : (tensor<8x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.mul
  %m = halo.mul %s, %o : (tensor<8x12xbf16>, tensor<8x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.add
  %a = halo.add %m, %h : (tensor<8x12xbf16>, tensor<8x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.cast {{.*}} -> tensor<8x12xf32>
  %f = halo.cast %a : (tensor<8x12xbf16>) -> tensor<8x12xf32>
  // CHECK: halo.cross_entropy {{.*}} -> tensor<f32>
  %loss = halo.cross_entropy %f, %ids : (tensor<8x12xf32>, tensor<8xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// CHECK-LABEL: func.func @gradient_and_optimizer_ops
func.func @gradient_and_optimizer_ops(%ids: tensor<8xi32>, %x: tensor<8x12xbf16>, %w: tensor<12xbf16>,
    %wq: tensor<12x12xbf16>, %kv: tensor<8x6xbf16>, %lse: tensor<16xf32>, %p: tensor<12x12xf32>,
    %step: tensor<i32>) -> (tensor<12x12xf32>, tensor<12x12xf32>, tensor<12x12xf32>) {
  // CHECK: halo.matmul {{.*}} {layer = "l", role = #halo.role<bwd_input>, transpose_a}
  %dx = halo.matmul %wq, %wq {transpose_a, layer = "l", role = #halo.role<bwd_input>} : (tensor<12x12xbf16>, tensor<12x12xbf16>) -> tensor<12x12xbf16>
  // CHECK: halo.matmul %{{[^,]+}}, %{{[^,]+}}, %{{[^ ]+}} {layer = "l", role = #halo.role<bwd_input>}
  // CHECK-SAME: (tensor<12x12xbf16>, tensor<12x12xbf16>, tensor<12x12xbf16>) -> tensor<12x12xbf16>
  %dx2 = halo.matmul %wq, %wq, %dx {layer = "l", role = #halo.role<bwd_input>} : (tensor<12x12xbf16>, tensor<12x12xbf16>, tensor<12x12xbf16>) -> tensor<12x12xbf16>
  // CHECK: halo.embedding_grad
  %de = halo.embedding_grad %ids, %x : (tensor<8xi32>, tensor<8x12xbf16>) -> tensor<16x12xf32>
  // CHECK: halo.rms_norm_grad
  %gx, %gw = halo.rms_norm_grad %x, %w, %x {eps = 1.0e-5 : f64} : (tensor<8x12xbf16>, tensor<12xbf16>, tensor<8x12xbf16>) -> (tensor<8x12xbf16>, tensor<12xbf16>)
  // CHECK: halo.attention_grad
  %dq, %dk, %dv = halo.attention_grad %x, %kv, %kv, %x, %lse, %x {batch = 2, seq_len = 4, num_heads = 2, num_kv_heads = 1, head_dim = 6} : (tensor<8x12xbf16>, tensor<8x6xbf16>, tensor<8x6xbf16>, tensor<8x12xbf16>, tensor<16xf32>, tensor<8x12xbf16>) -> (tensor<8x12xbf16>, tensor<8x6xbf16>, tensor<8x6xbf16>)
  // CHECK: halo.silu_grad
  %ds = halo.silu_grad %x, %x : (tensor<8x12xbf16>, tensor<8x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.cross_entropy_grad
  %dl = halo.cross_entropy_grad %x, %ids : (tensor<8x12xbf16>, tensor<8xi32>) -> tensor<8x12xbf16>
  // CHECK: halo.global_norm
  %norm = halo.global_norm %p, %dx : (tensor<12x12xf32>, tensor<12x12xbf16>) -> tensor<f32>
  // CHECK: halo.clip_coef {{.*}} {max_norm = 1.000000e+00 : f64}
  %c = halo.clip_coef %norm {max_norm = 1.0} : (tensor<f32>) -> tensor<f32>
  // CHECK: halo.lr_schedule {{.*}} schedule = #halo.schedule<cosine>
  %lr = halo.lr_schedule %step {peak_lr = 3.0e-3, warmup_steps = 20, total_steps = 300, schedule = #halo.schedule<cosine>} : (tensor<i32>) -> tensor<f32>
  // CHECK: halo.adamw
  %np, %nm, %nv = halo.adamw %p, %dx, %p, %p, %lr, %step, %c {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<12x12xf32>, tensor<12x12xbf16>, tensor<12x12xf32>, tensor<12x12xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<12x12xf32>, tensor<12x12xf32>, tensor<12x12xf32>)
  return %np, %nm, %nv : tensor<12x12xf32>, tensor<12x12xf32>, tensor<12x12xf32>
}

// CHECK-LABEL: func.func @halo_ops
func.func @halo_ops(%x: tensor<8x12xbf16>, %w: tensor<24x12xbf16>) -> (tensor<8x24xbf16>, tensor<8x12xf32>) {
  // CHECK: halo.hadamard {{.*}} {side = #halo.side<right>}
  %xh = halo.hadamard %x {side = #halo.side<right>} : (tensor<8x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.hadamard {{.*}} {side = #halo.side<left>, transposed}
  %xl = halo.hadamard %x {side = #halo.side<left>, transposed} : (tensor<8x12xbf16>) -> tensor<8x12xbf16>
  // CHECK: halo.quantize {{.*}} -> (tensor<8x12xf8E4M3FN>, tensor<f32>)
  %xq, %xs = halo.quantize %xh {granularity = #halo.granularity<tensor>} : (tensor<8x12xbf16>) -> (tensor<8x12xf8E4M3FN>, tensor<f32>)
  // CHECK: halo.quantize {{.*}} {granularity = #halo.granularity<row>} {{.*}} -> (tensor<24x12xf8E4M3FN>, tensor<24xf32>)
  %wq, %ws = halo.quantize %w {granularity = #halo.granularity<row>} : (tensor<24x12xbf16>) -> (tensor<24x12xf8E4M3FN>, tensor<24xf32>)
  // CHECK: halo.qmatmul {{.*}} {layer = "l", role = #halo.role<fwd>, transpose_b}
  %y = halo.qmatmul %xq, %xs, %wq, %ws {transpose_b, layer = "l", role = #halo.role<fwd>} : (tensor<8x12xf8E4M3FN>, tensor<f32>, tensor<24x12xf8E4M3FN>, tensor<24xf32>) -> tensor<8x24xbf16>
  // CHECK: halo.quantize {{.*}} -> (tensor<8x12xi8>, tensor<12xf32>)
  %iq, %is = halo.quantize %xl {granularity = #halo.granularity<col>} : (tensor<8x12xbf16>) -> (tensor<8x12xi8>, tensor<12xf32>)
  // CHECK: halo.dequantize
  %d = halo.dequantize %iq, %is {granularity = #halo.granularity<col>} : (tensor<8x12xi8>, tensor<12xf32>) -> tensor<8x12xf32>
  return %y, %d : tensor<8x24xbf16>, tensor<8x12xf32>
}
