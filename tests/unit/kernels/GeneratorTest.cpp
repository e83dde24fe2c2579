//===- GeneratorTest.cpp - Host-side checks of the kernel generators ------===//
//
// Launch geometry, validation errors, embedded templates and the generated
// H_K sign tables (against numerics::hadamardMatrixK), without compiling.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/kernels/KernelTemplates.h"

#include "runtime/numerics/Hadamard.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <regex>
#include <tuple>

namespace halo::cuda::kernels {
namespace {

TEST(Generator, TemplatesAreEmbedded) {
  for (const char *f : {"common.cuh", "hadamard_rows.cuh", "hadamard_cols.cuh",
                        "rmsnorm.cuh", "elementwise.cuh", "cross_entropy.cuh",
                        "attention.cuh", "attention_mma.cuh", "attention_wgmma.cuh"}) {
    std::string_view text = templateText(f);
    EXPECT_GT(text.size(), 500u) << f;
    EXPECT_NE(text.find("namespace halo"), std::string_view::npos) << f;
  }
  EXPECT_TRUE(templateText("nope.cuh").empty());
  EXPECT_EQ(templateFiles().size(), 9u);
}

TEST(Generator, FloatLiteralRoundTrips) {
  for (float v : {1.0f, 0.015625f, 1.0f / 3.0f, 0.0078125f * 1.4142135f,
                  1e-30f, 448.0f}) {
    std::string lit = floatLiteral(v);
    ASSERT_EQ(lit.back(), 'f');
    EXPECT_EQ(std::strtof(lit.c_str(), nullptr), v) << lit;
  }
}

/// The generated kSign table, parsed back, matches H_K (or its transpose).
void expectSignTable(const std::string &source, int K, bool inputMajor) {
  const int8_t *hk = numerics::hadamardMatrixK(K);
  size_t at = source.find("kSign[" + std::to_string(K) + "]");
  ASSERT_NE(at, std::string::npos);
  std::regex word("0x([0-9A-F]{8})u");
  auto begin = std::sregex_iterator(source.begin() + at, source.end(), word);
  int words = (K + 31) / 32;
  auto it = begin;
  for (int a = 0; a < K; ++a)
    for (int w = 0; w < words; ++w, ++it) {
      ASSERT_NE(it, std::sregex_iterator());
      uint32_t bits = std::stoul((*it)[1].str(), nullptr, 16);
      for (int i = 0; i < 32 && w * 32 + i < K; ++i) {
        int c = w * 32 + i;
        int v = inputMajor ? hk[a * K + c] : hk[c * K + a];
        EXPECT_EQ(((bits >> i) & 1u) != 0, v < 0) << "a " << a << " c " << c;
      }
    }
}

TEST(Generator, SignTablesFollowHadamardMatrixK) {
  HadamardQuantizeParams p;
  p.rows = 16;
  p.cols = 14336; // K = 28
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  expectSignTable(k->source, 28, true); // x H: output c mixes H_K[a][c]
  p.transposed = true;
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  expectSignTable(k->source, 28, false);
  HadamardParams l;
  l.rows = 192; // K = 12 on the left: H x mixes H_K[c][a]
  l.cols = 64;
  l.side = HadamardSide::Left;
  auto kl = hadamardKernel(l);
  ASSERT_TRUE(kl.ok()) << kl.status().message();
  expectSignTable(kl->source, 12, false);
  HadamardParams big; // K = 172: three words per row
  big.rows = 4;
  big.cols = 11008;
  auto kb = hadamardKernel(big);
  ASSERT_TRUE(kb.ok()) << kb.status().message();
  expectSignTable(kb->source, 172, true);
}

TEST(Generator, HadamardQuantizeLaunches) {
  HadamardQuantizeParams p;
  p.rows = 8192;
  p.cols = 4096;
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->launches.size(), 2u);
  const LaunchSpec *a = k->find("_absmax"), *q = k->find("_quant");
  ASSERT_TRUE(a && q);
  // Persistent grids: 6 resident 64-thread blocks per SM on 132 SMs.
  EXPECT_EQ(a->grid.x, 6u * 132);
  EXPECT_EQ(q->grid.x, 6u * 132);
  EXPECT_NE(k->source.find("__launch_bounds__(64, 6)"), std::string::npos);
  EXPECT_EQ(a->block.x, 64u); // RowWide: 64 threads x 64 elements
  EXPECT_NE(k->source.find("halo::RowWide<4096, 64>"), std::string::npos);
  EXPECT_EQ(a->sharedBytes, 4096u * 4 + 128);
  EXPECT_EQ(q->sharedBytes, 4096u * 4 + 4096 + 128);
  EXPECT_EQ(k->workspaceBytes, 8u);
  EXPECT_NE(k->source.find("0x1p-6f"), std::string::npos); // 1/sqrt(4096)
  p.transposedOutput = true; // tiles by 64: quantize, then transpose
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->launches.size(), 3u);
  EXPECT_EQ(k->find("_transpose")->grid.x, 4096u / 128);
  EXPECT_EQ(k->find("_transpose")->grid.y, 8192u / 64);
  EXPECT_EQ(k->find("_transpose")->block.x, 256u);
  EXPECT_EQ(k->scratchBytes, size_t{8192} * 4096);
  p.bothLayouts = true; // the [rows, cols] codes are an output: no scratch
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 3u);
  EXPECT_EQ(k->scratchBytes, 0u);
  EXPECT_NE(k->find("_quant")->signature.find("unsigned char* __restrict__ codes"),
            std::string::npos);
  EXPECT_EQ(k->find("_transpose")->signature,
            "const unsigned char* __restrict__ codes, unsigned char* __restrict__ codesT");
  p.bothLayouts = false;
  p.rows = 8192 + 16; // does not tile: 16 rows per block write the transpose
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->launches.size(), 2u);
  EXPECT_EQ(k->find("_quant")->grid.x, (8192u + 16) / 16);
  EXPECT_EQ(k->find("_quant")->block.x, 256u);
  p.cols = 14336;
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->find("_quant")->grid.x, (8192u + 16) / 4);
  EXPECT_LE(k->find("_quant")->sharedBytes, 113u * 1024);
  p.rows = 8192;
  p.granularity = ScaleGranularity::Row;
  p.transposedOutput = false;
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->launches.size(), 1u);
  EXPECT_TRUE(k->find("_rowq"));
  EXPECT_EQ(k->workspaceBytes, 0u);
}

TEST(Generator, PlainTransposedQuantizeTiles) {
  HadamardQuantizeParams p;
  p.rows = 8192;
  p.cols = 14336;
  p.rotate = false;
  p.transposedOutput = true;
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  // One pass straight into [cols, rows]: no scratch, no _transpose launch.
  ASSERT_EQ(k->launches.size(), 2u);
  EXPECT_FALSE(k->find("_transpose"));
  EXPECT_EQ(k->scratchBytes, 0u);
  const LaunchSpec *q = k->find("_quant");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->grid.x, 14336u / 128);
  EXPECT_EQ(q->grid.y, 8192u / 64);
  EXPECT_EQ(q->block.x, 256u);
  EXPECT_EQ(q->sharedBytes, 0u);
  EXPECT_NE(k->source.find("halo::quant_tiles_t<"), std::string::npos);
  EXPECT_EQ(q->signature.find("codesT"), std::string::npos);
  p.cols = 192; // not a multiple of 128: 64-column tiles
  p.bothLayouts = true;
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  q = k->find("_quant");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->grid.x, 3u);
  EXPECT_EQ(q->block.x, 128u);
  EXPECT_NE(q->signature.find("unsigned char* __restrict__ codes, unsigned char* __restrict__ codesT"),
            std::string::npos);
  EXPECT_NE(k->program.find("_both"), std::string::npos);
  // Both layouts only where the tiles apply.
  for (auto change : std::vector<std::function<void(HadamardQuantizeParams &)>>{
           [](HadamardQuantizeParams &q) { q.rows = 8192 + 16; },
           [](HadamardQuantizeParams &q) { q.transposedOutput = false; }}) {
    HadamardQuantizeParams bad = p;
    change(bad);
    auto r = hadamardQuantizeKernel(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("bothLayouts"), std::string::npos);
  }
  // Per-row scales keep the quantize-then-transpose form (a tile does not
  // hold whole rows), started from the rows _rowq wrote last.
  p.granularity = ScaleGranularity::Row;
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->launches.size(), 2u);
  EXPECT_EQ(k->find("_transpose")->signature,
            "const unsigned char* __restrict__ codes, unsigned char* __restrict__ codesT");
  EXPECT_NE(k->source.find("halo::transpose_codes<64, true>(codes, codesT"), std::string::npos);
}

TEST(Generator, FastOrderOnlyForGroupedK) {
  HadamardQuantizeParams p;
  p.rows = 64;
  p.cols = 14336;
  p.order = HadamardOrder::Fast;
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  EXPECT_NE(k->program.find("_fast"), std::string::npos);
  EXPECT_NE(k->source.find("28, 512, 256, true, true>"), std::string::npos);
  p.cols = 4096; // K = 1: nothing to group
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->program.find("_fast"), std::string::npos);
}

// The AdamW step over a rotated gradient: one block per row, the right
// Hadamard's row geometry (and its shared memory), the sign table of H^T,
// gradOut only when asked for; rows must tile the parameter.
TEST(Generator, AdamWRowsUnrotateTheGradient) {
  AdamWParams p;
  p.elements = int64_t{4096} * 14336;
  p.grad = ElemType::BF16;
  p.rotateRows = true;
  p.transposed = true;
  p.rowLength = 14336;
  auto k = adamwKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 1u);
  const LaunchSpec &l = k->launches[0];
  EXPECT_EQ(l.grid.x, 4096u);
  EXPECT_EQ(l.block.x, 256u);
  EXPECT_EQ(l.sharedBytes, 14336u * 4 + 128);
  EXPECT_NE(k->source.find("halo::RowHadamard<halo_gen::HK, 28, 512, 256, true, false>"),
            std::string::npos);
  EXPECT_NE(k->program.find("_rows14336_ht"), std::string::npos);
  EXPECT_EQ(l.signature.find("gradOut"), std::string::npos);
  p.rowLength = 4096; // K = 1: 256-thread RowHadamard, not RowWide; G written too
  p.elements = int64_t{14336} * 4096;
  p.writeGrad = true;
  k = adamwKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ(k->launches[0].grid.x, 14336u);
  EXPECT_EQ(k->launches[0].block.x, 256u);
  EXPECT_EQ(k->source.find("halo::RowWide"), std::string::npos);
  EXPECT_NE(k->source.find("halo::RowHadamard<halo_gen::HK, 1, 4096, 256"), std::string::npos);
  EXPECT_NE(k->launches[0].signature.find("gradOut"), std::string::npos);
  p.elements += 8; // not whole rows
  EXPECT_FALSE(adamwKernel(p).ok());
}

// SwiGLU-on-load (swigluInput, halo-fuse's swiglu_hadamard_quantize at
// HALO-1/2): the quantizer of a stored x with u after x in each launch that
// reads x, the same launches and geometry otherwise, and both code layouts as
// down_proj's x needs them (the transpose reads the codes, not x); per-row
// scales too; BF16 and the right side only.
TEST(Generator, SwigluOnLoadQuantizer) {
  const std::string xu =
      "const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ u, ";
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{512, 192}, {8192, 14336}}) {
    HadamardQuantizeParams p;
    p.rows = rows;
    p.cols = cols;
    p.transposedOutput = p.bothLayouts = true;
    auto stored = hadamardQuantizeKernel(p);
    p.swigluInput = true;
    auto k = hadamardQuantizeKernel(p);
    ASSERT_TRUE(stored.ok() && k.ok()) << k.status().message();
    EXPECT_EQ(k->program, stored->program + "_swiglu");
    ASSERT_EQ(k->launches.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      const LaunchSpec &a = k->launches[i], &b = stored->launches[i];
      EXPECT_EQ(a.entry.substr(k->program.size()), b.entry.substr(stored->program.size()));
      EXPECT_EQ(std::tie(a.grid.x, a.grid.y, a.block.x, a.sharedBytes),
                std::tie(b.grid.x, b.grid.y, b.block.x, b.sharedBytes))
          << a.entry;
    }
    EXPECT_EQ(k->launches[0].signature, xu + "unsigned* ws, float* scale, float* absmax");
    EXPECT_EQ(k->launches[1].signature,
              xu + "const float* __restrict__ scale, unsigned char* __restrict__ codes");
    EXPECT_EQ(k->launches[2].signature,
              "const unsigned char* __restrict__ codes, unsigned char* __restrict__ codesT");
    EXPECT_EQ(k->workspaceBytes, 8u);
    EXPECT_EQ(k->scratchBytes, 0u);
    EXPECT_NE(k->source.find("const auto ld = halo::LoadSwiGLU{x, u};"), std::string::npos);
    EXPECT_EQ(k->source.find("LoadPlain<halo::kBF16>{x}"), std::string::npos);
  }
  HadamardQuantizeParams p;
  p.rows = 512;
  p.cols = 192;
  p.swigluInput = true;
  p.granularity = ScaleGranularity::Row;
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 1u);
  EXPECT_EQ(k->launches[0].signature,
            xu + "float* __restrict__ rowScale, unsigned char* __restrict__ codes");
  p.input = ElemType::F32;
  k = hadamardQuantizeKernel(p);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("swigluInput needs BF16 inputs"), std::string::npos);
  p.input = ElemType::BF16;
  p.granularity = ScaleGranularity::Tensor;
  p.side = HadamardSide::Left;
  k = hadamardQuantizeKernel(p);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("swigluInput is for the right side only"),
            std::string::npos);
}

// The SwiGLU backward on right-rotated rows (hadamard_swiglu_grad): the right
// rotation's row geometry and sign table, one block per row, the rotated row
// parked in the exchange buffer (no staging: less shared memory than the plain
// rotation), BF16 only, and the same shape errors as the plain rotation.
TEST(Generator, HadamardSwigluGradRows) {
  HadamardParams p;
  p.rows = 8192;
  p.cols = 14336;
  p.transposed = true;
  auto plain = hadamardKernel(p);
  p.swigluGrad = true;
  auto k = hadamardKernel(p);
  ASSERT_TRUE(plain.ok() && k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 1u);
  const LaunchSpec &l = k->launches[0];
  EXPECT_EQ(l.entry, k->program + "_swiglu_bwd");
  EXPECT_NE(k->program, plain->program);
  EXPECT_EQ(l.grid.x, 8192u);
  EXPECT_EQ(l.block.x, plain->launches[0].block.x);
  EXPECT_EQ(l.block.x, 256u);
  EXPECT_EQ(l.sharedBytes, 14336u * 4 + 128);
  EXPECT_LT(l.sharedBytes, plain->launches[0].sharedBytes);
  EXPECT_EQ(l.signature, "const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ g, "
                         "const __nv_bfloat16* __restrict__ u, __nv_bfloat16* __restrict__ dg, "
                         "__nv_bfloat16* __restrict__ du");
  EXPECT_NE(k->source.find("halo::swiglu_bwd_rows<halo::RowHadamard<halo_gen::HK, 28, 512, 256, "
                           "true, false>>(halo::LoadPlain<halo::kBF16>{x}, 0x1.11aceep-7f, "
                           "g, u, dg, du);"),
            std::string::npos);
  EXPECT_EQ(k->workspaceBytes, 0u);
  EXPECT_EQ(k->scratchBytes, 0u);
  expectSignTable(k->source, 28, false); // x H^T
  p.cols = 4096; // K = 1: RowWide, as the plain rotation
  k = hadamardKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ(k->launches[0].block.x, 64u);
  EXPECT_NE(k->source.find("halo::swiglu_bwd_rows<halo::RowWide<4096, 64>"), std::string::npos);
  p.output = ElemType::F32;
  k = hadamardKernel(p);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("swigluGrad needs the right side with BF16"),
            std::string::npos);
  p.output = ElemType::BF16;
  p.side = HadamardSide::Left;
  EXPECT_FALSE(hadamardKernel(p).ok());
  p.side = HadamardSide::Right;
  p.cols = 4104; // no K * 2^k form: refused as by the plain rotation
  k = hadamardKernel(p);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("no Hadamard matrix of size 4104"), std::string::npos);
}

// The RMSNorm backward with dy's right un-rotation inside: the same launches
// and thread count as the plain backward, RowHadamard (not RowWide) at 4096
// so that its chunks are the backward's, the exchange buffer as dynamic
// shared memory, dyRot in place of dy; the forward refuses the option and
// row lengths the rotation does not take are refused as there.
TEST(Generator, RmsNormBackwardUnrotatesDy) {
  RmsNormParams p{8192, 4096, 1e-5, true};
  auto plain = rmsNormBackwardKernel(p);
  p.rotateDy = true;
  p.transposed = true;
  auto k = rmsNormBackwardKernel(p);
  ASSERT_TRUE(plain.ok() && k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 2u);
  EXPECT_EQ(k->program, plain->program + "_rotht");
  const LaunchSpec &b = k->launches[0], &pb = plain->launches[0];
  EXPECT_EQ(b.entry, k->program + "_bwd");
  EXPECT_EQ(b.grid.x, pb.grid.x);
  EXPECT_EQ(b.block.x, pb.block.x);
  EXPECT_EQ(b.block.x, 256u);
  EXPECT_EQ(pb.sharedBytes, 0u);
  EXPECT_EQ(b.sharedBytes, 4096u * 4);
  EXPECT_EQ(b.signature, "const __nv_bfloat16* __restrict__ h, const __nv_bfloat16* __restrict__ w, "
                         "const __nv_bfloat16* __restrict__ dyRot, "
                         "const __nv_bfloat16* __restrict__ dres, __nv_bfloat16* __restrict__ dx, "
                         "float* __restrict__ part");
  EXPECT_EQ(k->launches[1].signature, plain->launches[1].signature);
  EXPECT_EQ(k->scratchBytes, plain->scratchBytes);
  EXPECT_NE(k->source.find("halo::DyRotated<halo::RowHadamard<halo_gen::HK, 1, 4096, 256, true, "
                           "false>, halo::LoadPlain<halo::kBF16>>{{dyRot}, 0x1p-6f}"),
            std::string::npos);
  EXPECT_NE(plain->source.find("halo::DyStored<4096, 256>{dy}"), std::string::npos);
  EXPECT_EQ(plain->source.find("// ---- hadamard_rows.cuh"), std::string::npos);
  EXPECT_NE(k->source.find("// ---- hadamard_rows.cuh"), std::string::npos);
  p.dim = 3072; // K = 12: the sign table of H_12^T
  k = rmsNormBackwardKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  expectSignTable(k->source, 12, false);
  EXPECT_FALSE(rmsNormForwardKernel(p).ok());
  p.dim = 4104; // no K * 2^k form
  k = rmsNormBackwardKernel(p);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("no Hadamard matrix of size 4104"), std::string::npos);
}

// BF16 weights are the compute copy: a kernel that would also write one is
// refused; without it the parameter is a bf16 pointer.
TEST(Generator, AdamWOnBf16Weights) {
  AdamWParams p;
  p.elements = 4096;
  p.param = ElemType::BF16;
  EXPECT_FALSE(adamwKernel(p).ok());
  p.writeBf16Copy = false;
  auto k = adamwKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_NE(k->program.find("_bf16p"), std::string::npos);
  EXPECT_EQ(k->launches[0].signature.rfind("__nv_bfloat16* __restrict__ param", 0), 0u)
      << k->launches[0].signature;
  EXPECT_NE(k->source.find("halo::adamw<halo::kBF16, halo::kF32, halo::kF32"), std::string::npos);
}

TEST(Generator, LeftHadamardPasses) {
  HadamardQuantizeParams p;
  p.rows = 512;
  p.cols = 64;
  p.side = HadamardSide::Left;
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ(k->launches.size(), 2u); // one pass: absmax, quant
  EXPECT_EQ(k->scratchBytes, 0u);
  p.rows = 8192;
  p.cols = 4096;
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 3u); // pass1, absmax, quant
  EXPECT_TRUE(k->find("_pass1"));
  EXPECT_EQ(k->scratchBytes, size_t{8192} * 4096 * 4);
  EXPECT_EQ(k->find("_pass1")->grid.y, 8192u / 128);
  EXPECT_EQ(k->find("_absmax")->grid.y, 128u);
}

TEST(Generator, LeftHadamardClusterForm) {
  HadamardQuantizeParams p;
  p.rows = 8192;
  p.cols = 4096;
  p.side = HadamardSide::Left;
  p.targetSm = 90;
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 2u); // absmax, quant: one pass, no tmp
  EXPECT_EQ(k->scratchBytes, 0u);
  EXPECT_EQ(k->workspaceBytes, 16u); // absmax, arrivals, tile counter
  EXPECT_EQ(k->program, "halo_hql_8192x4096_fp8_cl8");
  // Persistent: 2 CTAs per SM on 132 SMs, clusters of 8.
  EXPECT_EQ(k->find("_quant")->grid.x, 33u * 8);
  // The quantizer takes tiles in pairs (256 of them here, >= 4 per cluster)
  // and stages a pair's first codes: 64 bytes per thread.
  EXPECT_EQ(k->find("_absmax")->sharedBytes, 1024u * 16 * 4 + 256);
  EXPECT_EQ(k->find("_quant")->sharedBytes, 1024u * 16 * 4 + 256 + 256 * 64);
  EXPECT_NE(k->source.find("hadc_apply<8, halo::kFP8, false, true>"), std::string::npos);
  p.cols = 1024; // 64 tiles: pairs would leave clusters idle
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->find("_quant")->sharedBytes, 1024u * 16 * 4 + 256);
  EXPECT_EQ(k->find("_quant")->grid.x, 33u * 8);
  EXPECT_NE(k->source.find("hadc_apply<8, halo::kFP8, false, false>"), std::string::npos);
  EXPECT_NE(k->find("_quant")->signature.find("unsigned* ws"), std::string::npos);
  EXPECT_NE(k->source.find("HALO_CLUSTER_DIMS(8)"), std::string::npos);
  p.rows = 2048; // clusters of 2
  p.cols = 32;   // 2 tiles: 2 clusters
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->find("_absmax")->grid.x, 2u * 2);
  // Two passes: an older or unknown device, K > 1, too many rows, columns
  // not a multiple of 16, or FP32 input.
  for (auto [rows, cols, sm] : {std::tuple{8192, 4096, 89}, {8192, 4096, 0},
                                {12288, 4096, 90}, {16384, 4096, 90}, {8192, 24, 90}}) {
    p.rows = rows;
    p.cols = cols;
    p.targetSm = sm;
    k = hadamardQuantizeKernel(p);
    ASSERT_TRUE(k.ok()) << k.status().message();
    EXPECT_TRUE(k->find("_pass1")) << rows << "x" << cols << " sm " << sm;
  }
  p.rows = 8192;
  p.cols = 4096;
  p.input = ElemType::F32;
  k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok());
  EXPECT_TRUE(k->find("_pass1"));
  HadamardParams h;
  h.rows = 4096;
  h.cols = 14336;
  h.side = HadamardSide::Left;
  h.targetSm = 90;
  auto r = hadamardKernel(h);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->launches.size(), 1u);
  EXPECT_EQ(r->launches[0].grid.x, 66u * 4);
  EXPECT_EQ(r->scratchBytes, 0u);
  EXPECT_EQ(r->workspaceBytes, 16u);
}

TEST(Generator, LeftHadamardWithPlainTransposed) {
  HadamardQuantizeParams p;
  p.rows = 8192;
  p.cols = 14336;
  p.side = HadamardSide::Left;
  p.targetSm = 90;
  p.plainTransposed = true;
  ASSERT_TRUE(plainTransposedFits(p));
  auto k = hadamardQuantizeKernel(p);
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->launches.size(), 2u); // the same two passes write both
  EXPECT_EQ(k->program, "halo_hql_8192x14336_fp8_cl8_plain");
  EXPECT_EQ(k->workspaceBytes, 24u); // + the plain absmax and its arrivals
  EXPECT_NE(k->find("_absmax")->signature.find("float* plainScale"), std::string::npos);
  EXPECT_NE(k->find("_quant")->signature.find("plainScale"), std::string::npos);
  EXPECT_NE(k->find("_quant")->signature.find("plainCodesT"), std::string::npos);
  EXPECT_NE(k->source.find("hadc_apply<8, halo::kFP8, true, true>"), std::string::npos);
  // Only the cluster form: elsewhere the emitter keeps two quantizers.
  auto fits = [&](auto change) {
    HadamardQuantizeParams q = p;
    change(q);
    EXPECT_FALSE(hadamardQuantizeKernel(q).ok());
    return plainTransposedFits(q);
  };
  EXPECT_FALSE(fits([](auto &q) { q.targetSm = 89; }));
  EXPECT_FALSE(fits([](auto &q) { q.rows = 512; }));
  EXPECT_FALSE(fits([](auto &q) { q.rows = 16384; }));
  EXPECT_FALSE(fits([](auto &q) { q.input = ElemType::F32; }));
  EXPECT_FALSE(fits([](auto &q) { q.side = HadamardSide::Right; }));
  EXPECT_FALSE(fits([](auto &q) { q.granularity = ScaleGranularity::Row; }));
}

TEST(Generator, RejectsBadShapes) {
  HadamardQuantizeParams p;
  p.rows = 4;
  p.cols = 4104; // 8 * 513: no K * 2^k form
  auto k = hadamardQuantizeKernel(p);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("no Hadamard matrix of size 4104"),
            std::string::npos);
  p.cols = 12; // 12 * 1: power-of-two part below 8
  EXPECT_FALSE(hadamardQuantizeKernel(p).ok());
  p.cols = 20;
  p.rotate = false; // plain quantize needs a multiple of 8 only
  EXPECT_FALSE(hadamardQuantizeKernel(p).ok());
  p.cols = 24;
  EXPECT_TRUE(hadamardQuantizeKernel(p).ok());
  HadamardQuantizeParams l;
  l.rows = 100; // K = 100 > 64 on the left
  l.cols = 64;
  l.side = HadamardSide::Left;
  EXPECT_FALSE(hadamardQuantizeKernel(l).ok());
  l.rows = 512;
  l.granularity = ScaleGranularity::Row;
  EXPECT_FALSE(hadamardQuantizeKernel(l).ok());
  EXPECT_FALSE(rmsNormForwardKernel({4, 12, 1e-5, false}).ok());
  EXPECT_FALSE(ropeKernel({100, 64, 4, 2, 16, 1e4, false}).ok());
  EXPECT_FALSE(attentionForwardKernel({1, 64, 4, 3, 16}).ok());
  EXPECT_FALSE(swigluForwardKernel(12).ok());
}

TEST(Generator, AttentionOnTensorCoresWhereTheHeadDimAllows) {
  // hd = 128: mma kernels, 128 threads, the tiles in dynamic shared memory.
  StatusOr<GeneratedKernel> f = attentionForwardKernel({4, 2048, 32, 8, 128});
  StatusOr<GeneratedKernel> b = attentionBackwardKernel({4, 2048, 32, 8, 128});
  ASSERT_TRUE(f.ok() && b.ok());
  // 4 warps of two m16 tiles: 128 queries per block; the tile is blockIdx.y.
  EXPECT_NE(f->source.find("halo::attn_mma_fwd<2048, 32, 8, 128, 4, 2>"), std::string::npos);
  EXPECT_EQ(f->launches[0].block.x, 128u);
  EXPECT_EQ(f->launches[0].grid.x, 4u * 32);
  EXPECT_EQ(f->launches[0].grid.y, 2048u / 128);
  // 128 query rows + two buffers of 64 key and 64 value rows.
  EXPECT_EQ(f->launches[0].sharedBytes, (128u + 4 * 64) * 128 * 2);
  ASSERT_EQ(b->launches.size(), 3u);
  EXPECT_EQ(b->launches[1].entry, b->program + "_dkdv");
  EXPECT_EQ(b->launches[1].grid.x, 4u * 8);
  EXPECT_EQ(b->launches[1].grid.y, 2048u / 64);
  EXPECT_EQ(b->launches[1].sharedBytes, (2u * 64 + 4 * 64) * 128 * 2 + 4 * 64 * 4);
  // dQ: 128 query rows (Q and dO) + two buffers of 32 key and 32 value rows.
  EXPECT_NE(b->source.find("halo::attn_mma_dq<2048, 32, 8, 128, 4, 2, 32>"), std::string::npos);
  EXPECT_EQ(b->launches[2].grid.y, 2048u / 128);
  EXPECT_EQ(b->launches[2].sharedBytes, (2u * 128 + 4 * 32) * 128 * 2);
  // Every default fits sm_89's per-block limit (99 KiB).
  for (int64_t hd : {16, 32, 64, 96, 128}) {
    StatusOr<GeneratedKernel> fh = attentionForwardKernel({2, 200, 4, 2, hd});
    StatusOr<GeneratedKernel> bh = attentionBackwardKernel({2, 200, 4, 2, hd});
    ASSERT_TRUE(fh.ok() && bh.ok()) << hd;
    EXPECT_LE(fh->launches[0].sharedBytes, 99u * 1024) << hd;
    for (const auto &l : bh->launches)
      EXPECT_LE(l.sharedBytes, 99u * 1024) << hd;
  }
  // sm_90: dK/dV by 4 warp pairs over 128-key blocks, P^T and dS^T shared
  // through [128][64] tiles; dQ unchanged.
  AttentionParams hopper{4, 2048, 32, 8, 128};
  hopper.targetSm = 90;
  StatusOr<GeneratedKernel> b90 = attentionBackwardKernel(hopper);
  ASSERT_TRUE(b90.ok());
  EXPECT_NE(b90->source.find("halo::attn_mma_dkdv2<2048, 32, 8, 128, 8>"), std::string::npos);
  EXPECT_EQ(b90->launches[1].block.x, 256u);
  EXPECT_EQ(b90->launches[1].grid.y, 2048u / 128);
  EXPECT_EQ(b90->launches[1].sharedBytes, 164864u);
  EXPECT_EQ(b90->launches[2].block.x, 128u);
  EXPECT_EQ(b90->launches[2].sharedBytes, b->launches[2].sharedBytes);
  // ... each entry point with its wgmma kernel (same geometry) under sm_90a,
  // the mma.sync one otherwise; none before sm_90 or at other head dims.
  StatusOr<GeneratedKernel> f90 = attentionForwardKernel(hopper);
  ASSERT_TRUE(f90.ok());
  EXPECT_NE(f90->source.find("#if defined(__CUDA_ARCH_FEAT_SM90_ALL)\n  halo::attn_wg_fwd<2048, "
                             "32, 8, 128>(q, k, v, out, lse);\n#else\n  halo::attn_mma_fwd<"),
            std::string::npos);
  EXPECT_EQ(f90->launches[0].sharedBytes, f->launches[0].sharedBytes);
  // dQ inside the dK/dV kernel under sm_90a: its entry takes dq, scratch (delta,
  // then the FP32 accumulator) and the workspace (a flag per 64-query tile);
  // the _dq entry is empty there.
  EXPECT_NE(b90->source.find("halo::attn_wg_bwd<2048, 32, 8, 128>(q, k, v, dout, lse, delta, "
                             "dk, dv, dq, tmp + 262144, ws);"),
            std::string::npos);
  EXPECT_NE(b90->launches[1].signature.find("dq, float* __restrict__ tmp, unsigned* "
                                            "__restrict__ ws"),
            std::string::npos);
  EXPECT_EQ(b90->source.find("attn_wg_dq<"), std::string::npos);
  EXPECT_NE(b90->source.find("#if defined(__CUDA_ARCH_FEAT_SM90_ALL)\n#else\n  halo::attn_mma_dq<"),
            std::string::npos);
  EXPECT_EQ(b90->workspaceBytes, 4u * 4 * 32 * (2048 / 64)); // batch x heads x tiles flags
  EXPECT_EQ(b90->scratchBytes, (4u * 2048 * 32 + 4u * 32 * 2048 * 128) * 4);
  hopper.separateDq = true;
  StatusOr<GeneratedKernel> sep = attentionBackwardKernel(hopper);
  ASSERT_TRUE(sep.ok());
  EXPECT_NE(sep->source.find("halo::attn_wg_dkdv<2048, 32, 8, 128>"), std::string::npos);
  EXPECT_NE(sep->source.find("halo::attn_wg_dq<2048, 32, 8, 128, 32>"), std::string::npos);
  EXPECT_EQ(sep->workspaceBytes, 0u);
  EXPECT_EQ(sep->scratchBytes, 4u * 2048 * 32 * 4);
  hopper.separateDq = false;
  EXPECT_EQ(f->source.find("attn_wg_"), std::string::npos);
  AttentionParams hopper96{2, 200, 4, 2, 96};
  hopper96.targetSm = 90;
  StatusOr<GeneratedKernel> b96 = attentionBackwardKernel(hopper96);
  ASSERT_TRUE(b96.ok());
  EXPECT_EQ(b96->source.find("attn_wg_"), std::string::npos);
  // 8 warps: 128-row blocks of one m16 tile per warp.
  StatusOr<GeneratedKernel> f8 = attentionForwardKernel({4, 2048, 32, 8, 128, 8});
  ASSERT_TRUE(f8.ok());
  EXPECT_NE(f8->source.find("halo::attn_mma_fwd<2048, 32, 8, 128, 8, 1>"), std::string::npos);
  EXPECT_EQ(f8->launches[0].block.x, 256u);
  EXPECT_EQ(f8->launches[0].grid.y, 2048u / 128);
  EXPECT_FALSE(attentionForwardKernel({4, 2048, 32, 8, 128, 6}).ok());
  // CUDA-core kernels (and the backward's _pre): a power-of-two group of
  // threads per row, so that its butterfly sums stay inside the row.
  for (auto [hd, threads] : {std::pair<int64_t, unsigned>{16, 64}, {64, 128}, {96, 256},
                             {160, 256}, {192, 512}, {256, 512}}) {
    StatusOr<GeneratedKernel> pre = attentionBackwardKernel({1, 64, 4, 2, hd});
    ASSERT_TRUE(pre.ok()) << hd;
    EXPECT_EQ(pre->launches[0].block.x, threads) << hd;
  }
  // hd = 8 (not a multiple of 16) and hd = 256 (too many registers): CUDA cores.
  for (int64_t hd : {8, 256}) {
    StatusOr<GeneratedKernel> c = attentionForwardKernel({1, 64, 4, 2, hd});
    ASSERT_TRUE(c.ok()) << hd;
    EXPECT_EQ(c->source.find("attn_mma_fwd"), std::string::npos) << hd;
    EXPECT_EQ(c->launches[0].sharedBytes, 0u) << hd;
  }
}

TEST(Generator, EmbeddingBackwardSegmentsLargeVocabs) {
  // Vocab 256 at dim 4096: 16-column slices hold the whole vocab.
  auto small = embeddingKernel({8192, 256, 4096});
  ASSERT_TRUE(small.ok());
  ASSERT_EQ(small->launches.size(), 2u);
  const LaunchSpec *b = small->find("_bwd");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->grid.x, 256u);
  EXPECT_EQ(b->grid.y, 1u);
  EXPECT_EQ(small->scratchBytes, 0u);
  EXPECT_EQ(b->sharedBytes, (256u * 16 + 512 * 8 + 1024) * 4);
  // Vocab 128256: segments of 512 rows x 32 columns, listed by _bwd_list.
  auto large = embeddingKernel({8192, 128256, 4096});
  ASSERT_TRUE(large.ok());
  ASSERT_EQ(large->launches.size(), 3u);
  EXPECT_EQ(large->launches[1].entry, large->program + "_bwd_list");
  EXPECT_EQ(large->launches[1].grid.x, 251u);
  EXPECT_EQ(large->launches[2].grid.x, 128u);
  EXPECT_EQ(large->launches[2].grid.y, 251u);
  EXPECT_EQ(large->launches[2].sharedBytes, (512u * 32 + 512 * 16 + 1024) * 4);
  EXPECT_EQ(large->scratchBytes, size_t(252 + 251 * 8192 * 2) * 4);
}

TEST(Generator, RopeSharesCosSinOverHeadGroups) {
  auto k = ropeKernel({8192, 2048, 32, 8, 128, 5e5, false});
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->launches.size(), 1u);
  EXPECT_EQ(k->launches[0].grid.x, 8192u * 8 / 256); // 8 pairs per thread
  EXPECT_EQ(k->launches[0].grid.y, 5u);              // 40 heads, 8 per block
  EXPECT_NE(k->source.find("halo::rope<2048, 32, 8, 128, 8, 8, false"), std::string::npos);
  auto odd = ropeKernel({64, 64, 3, 0, 6, 1e4, true}); // half 3: scalar pairs
  ASSERT_TRUE(odd.ok());
  EXPECT_NE(odd->source.find("halo::rope<64, 3, 0, 6, 1, 3, true"), std::string::npos);
}

TEST(Generator, ProgramsAreDistinctIdentifiers) {
  std::regex ident("[A-Za-z_][A-Za-z0-9_]*");
  HadamardQuantizeParams a, b;
  a.rows = b.rows = 512;
  a.cols = b.cols = 192;
  b.format = numerics::QuantFormat::INT8;
  auto ka = hadamardQuantizeKernel(a), kb = hadamardQuantizeKernel(b);
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_NE(ka->program, kb->program);
  EXPECT_TRUE(std::regex_match(ka->program, ident));
  for (const LaunchSpec &l : ka->launches)
    EXPECT_TRUE(std::regex_match(l.entry, ident));
}

} // namespace
} // namespace halo::cuda::kernels
