// RUN: halo-opt %s -split-input-file -verify-diagnostics --halo-autodiff | FileCheck %s
// RUN: halo-opt %s -split-input-file -verify-diagnostics --halo-autodiff=return-grads | FileCheck %s --check-prefix=GRADS
// GRADS: tensor<16x12xf32> {halo.param = "embed", halo.state = "grad"}, tensor<16x12xbf16> {halo.param = "head", halo.state = "grad"})
// GRADS: %[[DW:[^ ]+]] = halo.matmul {{.*}}role = #halo.role<bwd_weight>
// GRADS: %[[DE:[^ ]+]] = halo.embedding_grad
// GRADS: return {{.*}}, %[[DE]], %[[DW]] :

// Tests the train_step of a one-linear model: signature (inputs, step, FP32
// master weights, AdamW moments, BF16 compute copies), the linear's three GEMMs with their roles,
// BF16 weight gradients of the linear (FP32 for the embedding), clipping, the schedule and one AdamW per parameter.
module attributes {halo.train = {lr = 1.0e-3 : f64, warmup_steps = 2 : i64, total_steps = 10 : i64,
    schedule = "linear", beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
    weight_decay = 0.1 : f64, grad_clip = 1.0 : f64}} {
func.func @forward(%tok: tensor<8xi32> {halo.input = "tokens"}, %tgt: tensor<8xi32> {halo.input = "targets"},
                   %emb: tensor<16x12xbf16> {halo.param = "embed", halo.init = "normal"},
                   %w: tensor<16x12xbf16> {halo.param = "head", halo.init = "normal"}) -> tensor<f32> {
  %h = halo.embedding %tok, %emb : (tensor<8xi32>, tensor<16x12xbf16>) -> tensor<8x12xbf16>
  %y = halo.linear %h, %w {layer = "head"} : (tensor<8x12xbf16>, tensor<16x12xbf16>) -> tensor<8x16xbf16>
  %l = halo.cross_entropy %y, %tgt : (tensor<8x16xbf16>, tensor<8xi32>) -> tensor<f32>
  return %l : tensor<f32>
}
}
// The forward function is kept as is (for evaluation).
// CHECK: func.func @forward
// CHECK: halo.linear
// CHECK: func.func @train_step(%[[TOK:[^ ,:)]+]]: tensor<8xi32> {halo.input = "tokens"}, %[[TGT:[^ ,:)]+]]: tensor<8xi32> {halo.input = "targets"}, %[[STEP:[^ ,:)]+]]: tensor<i32> {halo.input = "step"},
// CHECK-SAME: %[[EMB:[^ ,:)]+]]: tensor<16x12xf32> {halo.init = "normal", halo.param = "embed", halo.state = "param"}, %[[W:[^ ,:)]+]]: tensor<16x12xf32> {halo.init = "normal", halo.param = "head", halo.state = "param"},
// CHECK-SAME: %[[M1:[^ ,:)]+]]: tensor<16x12xf32> {halo.param = "embed", halo.state = "exp_avg"}, %[[M2:[^ ,:)]+]]: tensor<16x12xf32> {halo.param = "head", halo.state = "exp_avg"},
// CHECK-SAME: %[[V1:[^ ,:)]+]]: tensor<16x12xf32> {halo.param = "embed", halo.state = "exp_avg_sq"}, %[[V2:[^ ,:)]+]]: tensor<16x12xf32> {halo.param = "head", halo.state = "exp_avg_sq"},
// CHECK-SAME: %[[EB:[^ ,:)]+]]: tensor<16x12xbf16> {halo.param = "embed", halo.state = "compute"}, %[[WB:[^ ,:)]+]]: tensor<16x12xbf16> {halo.param = "head", halo.state = "compute"})
// CHECK-SAME: -> (tensor<f32> {halo.output = "loss"}, tensor<f32> {halo.output = "grad_norm"}, tensor<f32> {halo.output = "lr"}, tensor<16x12xf32> {halo.init = "normal", halo.param = "embed", halo.state = "param"}
// CHECK-SAME: tensor<16x12xbf16> {halo.param = "head", halo.state = "compute"})
// The forward body reads the compute copies (state), not casts of the masters.
// CHECK-NOT: halo.cast %[[EMB]]
// CHECK: %[[H:[^ ,:)]+]] = halo.embedding %[[TOK]], %[[EB]]
// CHECK: %[[Y:[^ ,:)]+]] = halo.matmul %[[H]], %[[WB]] {layer = "head", role = #halo.role<fwd>, transpose_b}
// CHECK: %[[LOSS:[^ ,:)]+]] = halo.cross_entropy %[[Y]], %[[TGT]]
// CHECK: %[[DY:[^ ,:)]+]] = halo.cross_entropy_grad %[[Y]], %[[TGT]]
// CHECK: %[[DH:[^ ,:)]+]] = halo.matmul %[[DY]], %[[WB]] {layer = "head", role = #halo.role<bwd_input>} : (tensor<8x16xbf16>, tensor<16x12xbf16>) -> tensor<8x12xbf16>
// CHECK: %[[DW:[^ ,:)]+]] = halo.matmul %[[DY]], %[[H]] {layer = "head", role = #halo.role<bwd_weight>, transpose_a} : (tensor<8x16xbf16>, tensor<8x12xbf16>) -> tensor<16x12xbf16>
// CHECK: %[[DE:[^ ,:)]+]] = halo.embedding_grad %[[TOK]], %[[DH]] : (tensor<8xi32>, tensor<8x12xbf16>) -> tensor<16x12xf32>
// CHECK: %[[NORM:[^ ,:)]+]] = halo.global_norm %[[DE]], %[[DW]]
// CHECK: %[[COEF:[^ ,:)]+]] = halo.clip_coef %[[NORM]] {max_norm = 1.000000e+00 : f64}
// CHECK: %[[LR:[^ ,:)]+]] = halo.lr_schedule %[[STEP]] {peak_lr = 1.000000e-03 : f64, schedule = #halo.schedule<linear>, total_steps = 10 : i64, warmup_steps = 2 : i64}
// CHECK: %[[P1:[^ ,:)]+]], %[[NM1:[^ ,:)]+]], %[[NV1:[^ ,:)]+]] = halo.adamw %[[EMB]], %[[DE]], %[[M1]], %[[V1]], %[[LR]], %[[STEP]], %[[COEF]] {beta1 = 9.000000e-01 : f64, beta2 = {{.*}}, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
// CHECK: %[[C1:[^ ,:)]+]] = halo.cast %[[P1]] : (tensor<16x12xf32>) -> tensor<16x12xbf16>
// CHECK: %[[P2:[^ ,:)]+]], %[[NM2:[^ ,:)]+]], %[[NV2:[^ ,:)]+]] = halo.adamw %[[W]], %[[DW]], %[[M2]], %[[V2]], %[[LR]], %[[STEP]], %[[COEF]]
// CHECK: %[[C2:[^ ,:)]+]] = halo.cast %[[P2]] : (tensor<16x12xf32>) -> tensor<16x12xbf16>
// CHECK: return %[[LOSS]], %[[NORM]], %[[LR]], %[[P1]], %[[P2]], %[[NM1]], %[[NM2]], %[[NV1]], %[[NV2]], %[[C1]], %[[C2]]

// -----

// Tests that frozen parameters get no gradient and no optimizer state, and
// that grad_clip = 0 keeps the clip coefficient (the overflow guard) with
// max_norm 0, which means no clipping.
module attributes {halo.train = {lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64,
    schedule = "constant", beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
    weight_decay = 0.0 : f64, grad_clip = 0.0 : f64}} {
func.func @forward(%tok: tensor<8xi32> {halo.input = "tokens"}, %tgt: tensor<8xi32> {halo.input = "targets"},
                   %emb: tensor<16x12xbf16> {halo.param = "embed", halo.frozen},
                   %w: tensor<16x12xbf16> {halo.param = "head"}) -> tensor<f32> {
  %h = halo.embedding %tok, %emb : (tensor<8xi32>, tensor<16x12xbf16>) -> tensor<8x12xbf16>
  %y = halo.linear %h, %w {layer = "head"} : (tensor<8x12xbf16>, tensor<16x12xbf16>) -> tensor<8x16xbf16>
  %l = halo.cross_entropy %y, %tgt : (tensor<8x16xbf16>, tensor<8xi32>) -> tensor<f32>
  return %l : tensor<f32>
}
}
// CHECK: func.func @train_step({{.*}}tensor<16x12xbf16> {halo.frozen, halo.param = "embed", halo.state = "param"}
// CHECK-NOT: halo.embedding_grad
// CHECK-NOT: role = #halo.role<bwd_input>
// CHECK: role = #halo.role<bwd_weight>
// CHECK: halo.clip_coef %{{[^ ]+}} {max_norm = 0.000000e+00 : f64}
// CHECK-COUNT-1: halo.adamw
// CHECK-NOT: halo.adamw

// -----

// Tests that moment_dtype = "bf16" makes both moments BF16 state, in and out,
// while the master stays f32.
module attributes {halo.train = {lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64,
    schedule = "constant", beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
    weight_decay = 0.0 : f64, grad_clip = 1.0 : f64, moment_dtype = "bf16"}} {
func.func @forward(%tok: tensor<8xi32> {halo.input = "tokens"}, %tgt: tensor<8xi32> {halo.input = "targets"},
                   %w: tensor<16x12xbf16> {halo.param = "head"}, %emb: tensor<16x12xbf16> {halo.param = "embed", halo.frozen}) -> tensor<f32> {
  %h = halo.embedding %tok, %emb : (tensor<8xi32>, tensor<16x12xbf16>) -> tensor<8x12xbf16>
  %y = halo.linear %h, %w {layer = "head"} : (tensor<8x12xbf16>, tensor<16x12xbf16>) -> tensor<8x16xbf16>
  %l = halo.cross_entropy %y, %tgt : (tensor<8x16xbf16>, tensor<8xi32>) -> tensor<f32>
  return %l : tensor<f32>
}
}
// CHECK: func.func @train_step({{.*}}tensor<16x12xf32> {halo.param = "head", halo.state = "param"}
// CHECK-SAME: tensor<16x12xbf16> {halo.param = "head", halo.state = "exp_avg"}
// CHECK-SAME: tensor<16x12xbf16> {halo.param = "head", halo.state = "exp_avg_sq"}
// CHECK: halo.adamw {{.*}} : (tensor<16x12xf32>, tensor<16x12xbf16>, tensor<16x12xbf16>, tensor<16x12xbf16>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<16x12xf32>, tensor<16x12xbf16>, tensor<16x12xbf16>)

// -----

// Tests that master_dtype = "bf16" makes the trained weight BF16 state that the
// forward reads directly and AdamW updates in place: no f32 master, no
// compute copy, no cast.
module attributes {halo.train = {lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64,
    schedule = "constant", beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
    weight_decay = 0.0 : f64, grad_clip = 1.0 : f64, master_dtype = "bf16"}} {
func.func @forward(%tok: tensor<8xi32> {halo.input = "tokens"}, %tgt: tensor<8xi32> {halo.input = "targets"},
                   %w: tensor<16x12xbf16> {halo.param = "head"}, %emb: tensor<16x12xbf16> {halo.param = "embed", halo.frozen}) -> tensor<f32> {
  %h = halo.embedding %tok, %emb : (tensor<8xi32>, tensor<16x12xbf16>) -> tensor<8x12xbf16>
  %y = halo.linear %h, %w {layer = "head"} : (tensor<8x12xbf16>, tensor<16x12xbf16>) -> tensor<8x16xbf16>
  %l = halo.cross_entropy %y, %tgt : (tensor<8x16xbf16>, tensor<8xi32>) -> tensor<f32>
  return %l : tensor<f32>
}
}
// CHECK: func.func @train_step({{.*}}%[[W:[^:]+]]: tensor<16x12xbf16> {halo.param = "head", halo.state = "param"}
// CHECK-SAME: tensor<16x12xf32> {halo.param = "head", halo.state = "exp_avg"}
// CHECK-NOT: halo.state = "compute"
// CHECK: halo.matmul %{{[^,]+}}, %[[W]] {{.*}}role = #halo.role<fwd>
// CHECK-NOT: halo.cast
// CHECK: halo.adamw %[[W]], {{.*}} : (tensor<16x12xbf16>, tensor<16x12xbf16>, tensor<16x12xf32>, tensor<16x12xf32>, tensor<f32>, tensor<i32>, tensor<f32>) -> (tensor<16x12xbf16>, tensor<16x12xf32>, tensor<16x12xf32>)
// CHECK-NOT: halo.cast
// CHECK-NOT: halo.state = "compute"
// CHECK: return

// -----

// Tests that a forward function without a cross-entropy loss is rejected.
module attributes {halo.train = {lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64,
    schedule = "constant", beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
    weight_decay = 0.0 : f64, grad_clip = 0.0 : f64}} {
// expected-error @+1 {{halo-autodiff: @forward must return one halo.cross_entropy loss}}
func.func @forward(%x: tensor<8x12xbf16>) -> tensor<8x12xbf16> {
  return %x : tensor<8x12xbf16>
}
}

// -----

// Tests that an unknown master_dtype is rejected, naming the key.
// expected-error @+1 {{halo-autodiff: halo.train.master_dtype must be f32 or bf16}}
module attributes {halo.train = {lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64,
    schedule = "constant", beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
    weight_decay = 0.0 : f64, grad_clip = 0.0 : f64, master_dtype = "f16"}} {
func.func @forward(%x: tensor<8x12xbf16>) -> tensor<8x12xbf16> {
  return %x : tensor<8x12xbf16>
}
}

// -----

// Tests that an unknown moment_dtype is rejected, naming the key.
// expected-error @+1 {{halo-autodiff: halo.train.moment_dtype must be f32 or bf16}}
module attributes {halo.train = {lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64,
    schedule = "constant", beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
    weight_decay = 0.0 : f64, grad_clip = 0.0 : f64, moment_dtype = "fp16"}} {
func.func @forward(%x: tensor<8x12xbf16>) -> tensor<8x12xbf16> {
  return %x : tensor<8x12xbf16>
}
}
