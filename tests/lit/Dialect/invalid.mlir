// RUN: halo-opt %s -split-input-file -verify-diagnostics

// Tests that each verifier names the offending shapes or attributes.

func.func @embedding_width(%ids: tensor<8xi32>, %t: tensor<16x12xbf16>) {
  // expected-error @+1 {{'halo.embedding' op result must have shape [8x12], got 'tensor<8x10xbf16>'}}
  %0 = halo.embedding %ids, %t : (tensor<8xi32>, tensor<16x12xbf16>) -> tensor<8x10xbf16>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<8x12xbf16>, %w: tensor<10xbf16>) {
  // expected-error @+1 {{weight must have shape [12], got 'tensor<10xbf16>'}}
  %0 = halo.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<8x12xbf16>, tensor<10xbf16>) -> tensor<8x12xbf16>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<8x12xbf16>, %w: tensor<12xbf16>) {
  // expected-error @+1 {{eps must be positive, got 0}}
  %0 = halo.rms_norm %x, %w {eps = 0.0 : f64} : (tensor<8x12xbf16>, tensor<12xbf16>) -> tensor<8x12xbf16>
  return
}

// -----

func.func @linear_features(%x: tensor<8x12xbf16>, %w: tensor<24x10xbf16>) {
  // expected-error @+1 {{x 'tensor<8x12xbf16>' has 12 input features but weight 'tensor<24x10xbf16>' (layout [out, in]) expects 10}}
  %0 = halo.linear %x, %w {layer = "l"} : (tensor<8x12xbf16>, tensor<24x10xbf16>) -> tensor<8x18xbf16>
  return
}

// -----

func.func @rope_odd_head_dim(%x: tensor<8x12xbf16>) {
  // expected-error @+1 {{head_dim must be even for rotate-half RoPE, got 3}}
  %0 = halo.rope %x {seq_len = 4, head_dim = 3, theta = 10000.0} : (tensor<8x12xbf16>) -> tensor<8x12xbf16>
  return
}

// -----

func.func @rope_seq(%x: tensor<8x12xbf16>) {
  // expected-error @+1 {{token count 8 is not a multiple of seq_len 3}}
  %0 = halo.rope %x {seq_len = 3, head_dim = 6, theta = 10000.0} : (tensor<8x12xbf16>) -> tensor<8x12xbf16>
  return
}

// -----

func.func @attention_gqa(%q: tensor<8x18xbf16>, %k: tensor<8x12xbf16>) {
  // expected-error @+1 {{num_heads (3) must be a multiple of num_kv_heads (2)}}
  %o, %l = halo.attention %q, %k, %k {batch = 2, seq_len = 4, num_heads = 3, num_kv_heads = 2, head_dim = 6} : (tensor<8x18xbf16>, tensor<8x12xbf16>, tensor<8x12xbf16>) -> (tensor<8x18xbf16>, tensor<24xf32>)
  return
}

// -----

func.func @attention_k_shape(%q: tensor<8x12xbf16>, %k: tensor<8x12xbf16>) {
  // expected-error @+1 {{k must have shape [8x6], got 'tensor<8x12xbf16>'}}
  %o, %l = halo.attention %q, %k, %k {batch = 2, seq_len = 4, num_heads = 2, num_kv_heads = 1, head_dim = 6} : (tensor<8x12xbf16>, tensor<8x12xbf16>, tensor<8x12xbf16>) -> (tensor<8x12xbf16>, tensor<16xf32>)
  return
}

// -----

func.func @attention_lse(%q: tensor<8x12xbf16>, %k: tensor<8x6xbf16>) {
  // expected-error @+1 {{lse must have shape [16], got 'tensor<8xf32>'}}
  %o, %l = halo.attention %q, %k, %k {batch = 2, seq_len = 4, num_heads = 2, num_kv_heads = 1, head_dim = 6} : (tensor<8x12xbf16>, tensor<8x6xbf16>, tensor<8x6xbf16>) -> (tensor<8x12xbf16>, tensor<8xf32>)
  return
}

// -----

func.func @cast_shape(%x: tensor<8x12xbf16>) {
  // expected-error @+1 {{cannot change shape: 'tensor<8x12xbf16>' -> 'tensor<12x8xf32>'}}
  %0 = halo.cast %x : (tensor<8x12xbf16>) -> tensor<12x8xf32>
  return
}

// -----

func.func @cross_entropy_targets(%l: tensor<8x12xf32>, %t: tensor<7xi32>) {
  // expected-error @+1 {{targets must have shape [8], got 'tensor<7xi32>'}}
  %0 = halo.cross_entropy %l, %t : (tensor<8x12xf32>, tensor<7xi32>) -> tensor<f32>
  return
}

// -----

func.func @matmul_reduction(%a: tensor<8x12xbf16>, %b: tensor<10x4xbf16>) {
  // expected-error @+1 {{reduction sizes differ: op(a) of 'tensor<8x12xbf16>' has K = 12, op(b) of 'tensor<10x4xbf16>' has K = 10}}
  %0 = halo.matmul %a, %b : (tensor<8x12xbf16>, tensor<10x4xbf16>) -> tensor<8x4xbf16>
  return
}

// -----

func.func @matmul_role_without_layer(%a: tensor<8x12xbf16>, %b: tensor<12x4xbf16>) {
  // expected-error @+1 {{a role needs the layer it belongs to}}
  %0 = halo.matmul %a, %b {role = #halo.role<fwd>} : (tensor<8x12xbf16>, tensor<12x4xbf16>) -> tensor<8x4xbf16>
  return
}

// -----

func.func @matmul_accumulator_type(%a: tensor<8x12xbf16>, %b: tensor<12x4xbf16>, %c: tensor<8x4xf32>) {
  // expected-error @+1 {{accumulator 'tensor<8x4xf32>' must have the result's type 'tensor<8x4xbf16>'}}
  %0 = halo.matmul %a, %b, %c : (tensor<8x12xbf16>, tensor<12x4xbf16>, tensor<8x4xf32>) -> tensor<8x4xbf16>
  return
}

// -----

func.func @qmatmul_accumulator_shape(%a: tensor<8x12xi8>, %b: tensor<4x12xi8>, %s: tensor<f32>, %c: tensor<4x8xbf16>) {
  // expected-error @+1 {{accumulator 'tensor<4x8xbf16>' must have the result's type 'tensor<8x4xbf16>'}}
  %0 = halo.qmatmul %a, %s, %b, %s, %c {transpose_b} : (tensor<8x12xi8>, tensor<f32>, tensor<4x12xi8>, tensor<f32>, tensor<4x8xbf16>) -> tensor<8x4xbf16>
  return
}

// -----

func.func @embedding_grad_tokens(%ids: tensor<8xi32>, %dy: tensor<6x12xf32>) {
  // expected-error @+1 {{dy 'tensor<6x12xf32>' and ids 'tensor<8xi32>' disagree on the token count}}
  %0 = halo.embedding_grad %ids, %dy : (tensor<8xi32>, tensor<6x12xf32>) -> tensor<16x12xf32>
  return
}

// -----

func.func @rms_norm_grad_dy(%x: tensor<8x12xbf16>, %w: tensor<12xbf16>, %dy: tensor<8x10xbf16>) {
  // expected-error @+1 {{dy must have shape [8x12], got 'tensor<8x10xbf16>'}}
  %0, %1 = halo.rms_norm_grad %x, %w, %dy {eps = 1.0e-5 : f64} : (tensor<8x12xbf16>, tensor<12xbf16>, tensor<8x10xbf16>) -> (tensor<8x12xbf16>, tensor<12xbf16>)
  return
}

// -----

func.func @attention_grad_dout(%q: tensor<8x12xbf16>, %k: tensor<8x6xbf16>, %l: tensor<16xf32>, %d: tensor<8x6xbf16>) {
  // expected-error @+1 {{dout must have shape [8x12], got 'tensor<8x6xbf16>'}}
  %0, %1, %2 = halo.attention_grad %q, %k, %k, %q, %l, %d {batch = 2, seq_len = 4, num_heads = 2, num_kv_heads = 1, head_dim = 6} : (tensor<8x12xbf16>, tensor<8x6xbf16>, tensor<8x6xbf16>, tensor<8x12xbf16>, tensor<16xf32>, tensor<8x6xbf16>) -> (tensor<8x12xbf16>, tensor<8x6xbf16>, tensor<8x6xbf16>)
  return
}

// -----

func.func @silu_grad_shape(%x: tensor<8x12xbf16>, %dy: tensor<8x6xbf16>) {
  // expected-error @+1 {{dy must have shape [8x12], got 'tensor<8x6xbf16>'}}
  %0 = halo.silu_grad %x, %dy : (tensor<8x12xbf16>, tensor<8x6xbf16>) -> tensor<8x12xbf16>
  return
}

// -----

func.func @cross_entropy_grad_shape(%l: tensor<8x12xf32>, %t: tensor<8xi32>) {
  // expected-error @+1 {{result must have shape [8x12], got 'tensor<8x11xf32>'}}
  %0 = halo.cross_entropy_grad %l, %t : (tensor<8x12xf32>, tensor<8xi32>) -> tensor<8x11xf32>
  return
}

// -----

func.func @global_norm_empty() {
  // expected-error @+1 {{needs at least one tensor}}
  %0 = halo.global_norm : () -> tensor<f32>
  return
}

// -----

func.func @clip_coef_max(%n: tensor<f32>) {
  // expected-error @+1 {{max_norm must be non-negative (0: no clipping), got -1}}
  %0 = halo.clip_coef %n {max_norm = -1.0} : (tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @lr_schedule_warmup(%s: tensor<i32>) {
  // expected-error @+1 {{need 0 <= warmup_steps (50) <= total_steps (10) and total_steps >= 1}}
  %0 = halo.lr_schedule %s {peak_lr = 1.0e-3, warmup_steps = 50, total_steps = 10, schedule = #halo.schedule<linear>} : (tensor<i32>) -> tensor<f32>
  return
}

// -----

func.func @adamw_param_types(%p: tensor<4xbf16>, %s: tensor<f32>, %i: tensor<i32>) {
  // expected-error @+1 {{param and new_param must share one type, f32 or bf16; got 'tensor<4xbf16>' and 'tensor<4xf32>'}}
  %0, %1, %2 = halo.adamw %p, %p, %p, %p, %s, %i, %s {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<4xbf16>, tensor<4xbf16>, tensor<4xbf16>, tensor<4xbf16>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xbf16>, tensor<4xbf16>)
  return
}

// -----

func.func @adamw_mixed_moments(%p: tensor<4xf32>, %m: tensor<4xbf16>, %s: tensor<f32>, %i: tensor<i32>) {
  // expected-error @+1 {{moments m, v and their results must share one type, f32 or bf16}}
  %0, %1, %2 = halo.adamw %p, %p, %m, %p, %s, %i, %s {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<4xf32>, tensor<4xf32>, tensor<4xbf16>, tensor<4xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xbf16>, tensor<4xf32>)
  return
}

// -----

func.func @adamw_betas(%p: tensor<4xf32>, %s: tensor<f32>, %i: tensor<i32>) {
  // expected-error @+1 {{betas must lie in [0, 1), got (1.000000e+00, 9.990000e-01)}}
  %0, %1, %2 = halo.adamw %p, %p, %p, %p, %s, %i, %s {beta1 = 1.0, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @hadamard_size(%x: tensor<8x18xbf16>) {
  // expected-error @+1 {{no Hadamard matrix of size 18 (the column dimension of 'tensor<8x18xbf16>')}}
  %0 = halo.hadamard %x {side = #halo.side<right>} : (tensor<8x18xbf16>) -> tensor<8x18xbf16>
  return
}

// -----

func.func @quantize_scale(%x: tensor<8x12xbf16>) {
  // expected-error @+1 {{scale must have shape [8], got 'tensor<f32>'}}
  %0, %1 = halo.quantize %x {granularity = #halo.granularity<row>} : (tensor<8x12xbf16>) -> (tensor<8x12xf8E4M3FN>, tensor<f32>)
  return
}

// -----

func.func @quantize_data_type(%x: tensor<8x12xbf16>) {
  // expected-error @+1 {{result #0 must be ranked tensor of f8E4M3FN type or 8-bit signless integer values}}
  %0, %1 = halo.quantize %x {granularity = #halo.granularity<tensor>} : (tensor<8x12xbf16>) -> (tensor<8x12xbf16>, tensor<f32>)
  return
}

// -----

func.func @dequantize_shape(%q: tensor<8x12xi8>, %s: tensor<f32>) {
  // expected-error @+1 {{result must have shape [8x12], got 'tensor<8x6xf32>'}}
  %0 = halo.dequantize %q, %s {granularity = #halo.granularity<tensor>} : (tensor<8x12xi8>, tensor<f32>) -> tensor<8x6xf32>
  return
}

// -----

func.func @qmatmul_mixed_formats(%a: tensor<8x12xi8>, %b: tensor<4x12xf8E4M3FN>, %s: tensor<f32>) {
  // expected-error @+1 {{operands must share one 8-bit format, got 'tensor<8x12xi8>' and 'tensor<4x12xf8E4M3FN>'}}
  %0 = halo.qmatmul %a, %s, %b, %s {transpose_b} : (tensor<8x12xi8>, tensor<f32>, tensor<4x12xf8E4M3FN>, tensor<f32>) -> tensor<8x4xbf16>
  return
}

// -----

func.func @qmatmul_scale(%a: tensor<8x12xi8>, %b: tensor<4x12xi8>, %s: tensor<f32>, %r: tensor<12xf32>) {
  // expected-error @+1 {{scale_a must be per-tensor (tensor<f32>) or one per non-reduction index (tensor<8xf32>), got 'tensor<12xf32>'}}
  %0 = halo.qmatmul %a, %r, %b, %s {transpose_b} : (tensor<8x12xi8>, tensor<12xf32>, tensor<4x12xi8>, tensor<f32>) -> tensor<8x4xbf16>
  return
}

// -----

func.func @transpose_shape(%q: tensor<8x12xi8>) {
  // expected-error @+1 {{result must have shape [12x8], got 'tensor<8x12xi8>'}}
  %0 = halo.transpose %q : (tensor<8x12xi8>) -> tensor<8x12xi8>
  return
}
