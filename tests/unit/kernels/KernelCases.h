//===- KernelCases.h - Every kernel at the example models' shapes -*- C++ -*-===//
//
// The instantiations the compile test builds for sm_90 and sm_89: the tiny
// example (hidden 64, FFN 192 = 12 * 16, T = 512, vocab 256, 4 heads / 2 KV,
// head dim 16) and Llama-3-8B (hidden 4096, FFN 14336 = 28 * 512, T = 8192,
// 32 heads / 8 KV, head dim 128, vocab 128256), covering each template and
// each option at least once (the sm_90 cluster forms at Llama-3-8B only).
//
//===----------------------------------------------------------------------===//
#ifndef HALO_TESTS_UNIT_KERNELS_KERNELCASES_H
#define HALO_TESTS_UNIT_KERNELS_KERNELCASES_H

#include "runtime/cuda/kernels/KernelTemplates.h"

#include <functional>
#include <string>
#include <vector>

namespace halo::cuda::kernels::testing {

struct ModelShape {
  const char *name;
  int64_t hidden, ffn, tokens, seqLen, vocab, heads, kvHeads, headDim;
};

inline const std::vector<ModelShape> &modelShapes() {
  static const std::vector<ModelShape> shapes = {
      {"tiny", 64, 192, 512, 64, 256, 4, 2, 16},
      {"llama3_8b", 4096, 14336, 8192, 2048, 128256, 32, 8, 128},
  };
  return shapes;
}

struct KernelCase {
  std::string label;
  std::function<StatusOr<GeneratedKernel>()> make;
};

inline std::vector<KernelCase> kernelCases(const ModelShape &m) {
  using numerics::QuantFormat;
  std::vector<KernelCase> cases;
  auto hq = [&](std::string label, HadamardQuantizeParams p) {
    cases.push_back({std::move(label), [p] { return hadamardQuantizeKernel(p); }});
  };
  const int64_t T = m.tokens;
  for (int64_t n : {m.hidden, m.ffn}) {
    std::string s = std::to_string(n);
    HadamardQuantizeParams p;
    p.rows = T;
    p.cols = n;
    hq("hq_fp8_tensor_" + s, p);
    HadamardQuantizeParams t = p;
    t.format = QuantFormat::INT8;
    t.transposedOutput = true;
    hq("hq_i8_tensor_tout_" + s, t);
    HadamardQuantizeParams r = p;
    r.granularity = ScaleGranularity::Row;
    hq("hq_fp8_row_" + s, r);
    HadamardQuantizeParams fast = p;
    fast.order = HadamardOrder::Fast;
    if (n == m.ffn)
      hq("hq_fp8_tensor_fast_" + s, fast);
    HadamardQuantizeParams rt = r;
    rt.transposedOutput = true;
    rt.transposed = true;
    hq("hq_fp8_row_tout_ht_" + s, rt);
    HadamardQuantizeParams both = t;
    both.bothLayouts = true;
    hq("hq_i8_tensor_both_" + s, both);
  }
  {
    HadamardQuantizeParams p; // HALO-0: plain quantize, transposed for G
    p.rows = T;
    p.cols = m.hidden;
    p.rotate = false;
    p.transposedOutput = true;
    hq("q_fp8_tensor_tout", p);
    for (int64_t n : {m.hidden, m.ffn}) { // both layouts from the same tiles
      HadamardQuantizeParams b = p;
      b.cols = n;
      b.format = QuantFormat::INT8;
      b.bothLayouts = true;
      hq("q_i8_tensor_both_" + std::to_string(n), b);
    }
    HadamardQuantizeParams s; // SwiGLU product feeding down_proj
    s.rows = T;
    s.cols = m.ffn;
    s.swigluInput = true;
    hq("hq_fp8_tensor_swiglu", s);
    // HALO-1/2's swiglu_hadamard_quantize: both code layouts (down_proj's
    // forward and weight-gradient GEMMs); per-row scales.
    HadamardQuantizeParams sb = s;
    sb.transposedOutput = sb.bothLayouts = true;
    hq("hq_fp8_tensor_both_swiglu", sb);
    HadamardQuantizeParams sr = s;
    sr.format = QuantFormat::INT8;
    sr.granularity = ScaleGranularity::Row;
    hq("hq_i8_row_swiglu", sr);
    HadamardQuantizeParams l; // HALO-2: Q(H_T E)
    l.rows = T;
    l.cols = m.hidden;
    l.side = HadamardSide::Left;
    l.format = QuantFormat::INT8;
    hq("hql_i8_tensor", l);
    if (T >= 2048) { // the sm_90 cluster form (one pass)
      for (int64_t n : {m.hidden, m.ffn}) {
        HadamardQuantizeParams c = l;
        c.cols = n;
        c.format = QuantFormat::FP8E4M3;
        c.targetSm = 90;
        hq("hql_fp8_cluster_" + std::to_string(n), c);
        // With plain Q(E)^T from the same kernels (HALO-2's weight gradient).
        c.plainTransposed = true;
        c.format = n == m.ffn ? QuantFormat::FP8E4M3 : QuantFormat::INT8;
        hq(std::string("hql_") + (n == m.ffn ? "fp8" : "i8") + "_cluster_plain_" +
               std::to_string(n),
           c);
      }
    }
  }
  auto had = [&](std::string label, HadamardParams p) {
    cases.push_back({std::move(label), [p] { return hadamardKernel(p); }});
  };
  for (int64_t n : {m.hidden, m.ffn}) {
    HadamardParams p;
    p.rows = T;
    p.cols = n;
    p.transposed = true;
    had("h_right_ht_" + std::to_string(n), p);
    // HALO-1/2's un-rotation of down_proj's input gradient inside the SwiGLU
    // backward (rows of FFN, K = 28 at Llama-3-8B; of hidden: RowWide there).
    p.swigluGrad = true;
    had("h_right_swiglu_bwd_" + std::to_string(n), p);
  }
  {
    HadamardParams p;
    p.rows = T;
    p.cols = m.hidden;
    p.side = HadamardSide::Left;
    p.transposed = true;
    had("h_left_ht", p);
    if (T >= 2048) {
      HadamardParams c = p;
      c.targetSm = 90;
      had("h_left_cluster", c);
      c.output = ElemType::F32;
      had("h_left_cluster_of32", c);
    }
    HadamardParams f = p;
    f.side = HadamardSide::Right;
    f.transposed = false;
    f.input = ElemType::F32;
    f.output = ElemType::F32;
    had("h_right_f32", f);
  }
  for (bool res : {false, true}) {
    RmsNormParams p{T, m.hidden, 1e-5, res};
    cases.push_back({std::string("rmsnorm_fwd") + (res ? "_res" : ""),
                     [p] { return rmsNormForwardKernel(p); }});
    cases.push_back({std::string("rmsnorm_bwd") + (res ? "_res" : ""),
                     [p] { return rmsNormBackwardKernel(p); }});
  }
  { // HALO-1/2: the summed input gradient un-rotated inside the backward
    RmsNormParams p{T, m.hidden, 1e-5, true};
    p.rotateDy = true;
    p.transposed = true;
    cases.push_back({"rmsnorm_bwd_res_rot", [p] { return rmsNormBackwardKernel(p); }});
  }
  for (bool inv : {false, true}) {
    RopeParams p{T, m.seqLen, m.heads, m.kvHeads, m.headDim, 500000.0, inv};
    cases.push_back({std::string("rope") + (inv ? "_inv" : ""),
                     [p] { return ropeKernel(p); }});
  }
  int64_t ffnElems = T * m.ffn;
  cases.push_back({"swiglu_fwd", [=] { return swigluForwardKernel(ffnElems); }});
  cases.push_back({"swiglu_bwd", [=] { return swigluBackwardKernel(ffnElems); }});
  EmbeddingParams e{T, m.vocab, m.hidden};
  cases.push_back({"embedding", [=] { return embeddingKernel(e); }});
  CrossEntropyParams ce{T, m.vocab};
  cases.push_back({"cross_entropy", [=] { return crossEntropyKernel(ce); }});
  int64_t wElems = m.ffn * m.hidden;
  cases.push_back({"sumsq_f32", [=] { return sumSquaresKernel(wElems, ElemType::F32); }});
  cases.push_back({"global_norm", [] { return globalNormKernel(1.0); }});
  cases.push_back({"lr_cosine", [] {
                     return lrScheduleKernel({3e-4, 20, 1000, 2});
                   }});
  AdamWParams a;
  a.elements = wElems;
  cases.push_back({"adamw", [=] { return adamwKernel(a); }});
  AdamWParams ab = a; // BF16 gradients, writing the BF16 compute copy
  ab.grad = ElemType::BF16;
  ab.writeBf16Copy = true;
  cases.push_back({"adamw_bf16_grad", [=] { return adamwKernel(ab); }});
  AdamWParams am = ab; // BF16 moments, rounded stochastically; an odd tail
  am.moments = ElemType::BF16;
  am.elements = wElems + 3;
  cases.push_back({"adamw_bf16_moments", [=] { return adamwKernel(am); }});
  AdamWParams aw = am; // BF16 weights (no copy), rounded stochastically
  aw.param = ElemType::BF16;
  aw.writeBf16Copy = false;
  cases.push_back({"adamw_bf16_weights", [=] { return adamwKernel(aw); }});
  // Gradients un-rotated in the step: down_proj's rows of FFN (K > 1), and
  // gate/up's rows of hidden (RowWide at Llama-3-8B) with G written too.
  AdamWParams ar = am;
  ar.elements = wElems;
  ar.rotateRows = true;
  ar.transposed = true;
  ar.rowLength = m.ffn;
  cases.push_back({"adamw_rows_ffn", [=] { return adamwKernel(ar); }});
  AdamWParams arh = ab;
  arh.rotateRows = true;
  arh.transposed = true;
  arh.rowLength = m.hidden;
  arh.writeGrad = true;
  cases.push_back({"adamw_rows_hidden", [=] { return adamwKernel(arh); }});
  AdamWParams arw = arh; // the same on BF16 weights
  arw.param = ElemType::BF16;
  arw.writeBf16Copy = false;
  cases.push_back({"adamw_rows_hidden_bf16_weights", [=] { return adamwKernel(arw); }});
  AttentionParams at{T / m.seqLen, m.seqLen, m.heads, m.kvHeads, m.headDim};
  cases.push_back({"attention_fwd", [=] { return attentionForwardKernel(at); }});
  cases.push_back({"attention_bwd", [=] { return attentionBackwardKernel(at); }});
  // sm_90: wgmma kernels under sm_90a (head dims 64 and 128), else dK/dV by
  // warp pairs (attn_mma_dkdv2).
  AttentionParams at90 = at;
  at90.targetSm = 90;
  cases.push_back({"attention_fwd_sm90", [=] { return attentionForwardKernel(at90); }});
  cases.push_back({"attention_bwd_sm90", [=] { return attentionBackwardKernel(at90); }});
  return cases;
}

} // namespace halo::cuda::kernels::testing

#endif // HALO_TESTS_UNIT_KERNELS_KERNELCASES_H
