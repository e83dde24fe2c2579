//===- CudaEmitter.cpp - exec.kernel -> CUDA C++ sources ------------------===//
//
// Each kernel kind maps to one generator of runtime/cuda/kernels; the
// parameters (shapes, sides, formats, epsilons) are read off the halo ops in
// the kernel's body. Simple elementwise kernels (residual and gradient adds,
// casts) are generated here.
//
//===----------------------------------------------------------------------===//
#include "compiler/codegen/CudaEmitter.h"

#include "dialects/exec/IR/ExecOps.h"
#include "dialects/halo/IR/HaloOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;
namespace ck = halo::cuda::kernels;

namespace halo {
namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }
int64_t dim(Value v, unsigned i) { return typeOf(v).getDimSize(i); }
int64_t numel(Value v) { return typeOf(v).getNumElements(); }
ck::ElemType elemOf(Value v) {
  return typeOf(v).getElementType().isF32() ? ck::ElemType::F32 : ck::ElemType::BF16;
}
const char *ctype(Value v) { return typeOf(v).getElementType().isF32() ? "float" : "__nv_bfloat16"; }

template <typename OpT> OpT find(Block &body) {
  for (Operation &op : body)
    if (auto o = dyn_cast<OpT>(op))
      return o;
  return OpT();
}

/// Appends a generated part, or reports the generator's error on `kernel`.
LogicalResult add(exec::KernelOp kernel, std::vector<ck::GeneratedKernel> &parts,
                  StatusOr<ck::GeneratedKernel> generated) {
  if (!generated.ok())
    return kernel.emitError("CUDA emission of ") << kernel.getName() << ": "
                                                 << generated.status().message();
  parts.push_back(std::move(*generated));
  return success();
}

/// The generator parameters of quantize `q` of (hadamard `h` of) x, or of
/// plain x when `h` is null.
ck::HadamardQuantizeParams quantizeParams(QuantizeOp q, HadamardOp h, int targetSm) {
  ck::HadamardQuantizeParams p;
  p.targetSm = targetSm;
  Value x = q.getX();
  if (h) {
    x = h.getX();
    p.side = h.getSide() == HadamardSide::left ? ck::HadamardSide::Left : ck::HadamardSide::Right;
    p.transposed = h.getTransposed();
  }
  p.rotate = static_cast<bool>(h);
  p.rows = dim(x, 0);
  p.cols = dim(x, 1);
  p.input = elemOf(x);
  p.format = typeOf(q.getData()).getElementType().isSignlessInteger(8)
                 ? numerics::QuantFormat::INT8
                 : numerics::QuantFormat::FP8E4M3;
  p.granularity =
      q.getGranularity() == Granularity::row ? ck::ScaleGranularity::Row : ck::ScaleGranularity::Tensor;
  auto users = q.getData().getUsers();
  p.transposedOutput = llvm::any_of(users, [](Operation *u) { return isa<TransposeOp>(u); });
  // The [rows, cols] codes leave the kernel too when other ops read them.
  p.bothLayouts = p.transposedOutput &&
                  llvm::any_of(users, [](Operation *u) { return isa<exec::YieldOp>(u); });
  return p;
}

/// hadamard_quantize / quantize: one quantizer. hadamard_quantize_plain
/// (Q(H x) and plain Q(x)^T of one x): one part that writes both where the
/// generator can (the left cluster form), else two parts, the rotated
/// quantizer and then the plain one (the GPU executor binds them in that
/// order).
LogicalResult emitHadamardQuantize(exec::KernelOp kernel, Block &body, int targetSm,
                                   std::vector<ck::GeneratedKernel> &parts) {
  auto h = find<HadamardOp>(body);
  QuantizeOp rotated, plain;
  for (Operation &op : body)
    if (auto q = dyn_cast<QuantizeOp>(op)) {
      if (q.getGranularity() == Granularity::col)
        return kernel.emitError("CUDA emission of ")
               << kernel.getName() << ": column-wise scales have no generator yet";
      (h && q.getX() == h.getResult() ? rotated : plain) = q;
    }
  if (!rotated || !plain)
    return add(kernel, parts,
               ck::hadamardQuantizeKernel(quantizeParams(rotated ? rotated : plain, h, targetSm)));
  ck::HadamardQuantizeParams p = quantizeParams(rotated, h, targetSm);
  ck::HadamardQuantizeParams pp = quantizeParams(plain, HadamardOp(), targetSm);
  p.plainTransposed = pp.format == p.format && pp.transposedOutput && !pp.bothLayouts;
  if (p.plainTransposed && ck::plainTransposedFits(p))
    return add(kernel, parts, ck::hadamardQuantizeKernel(p));
  p.plainTransposed = false;
  if (failed(add(kernel, parts, ck::hadamardQuantizeKernel(p))))
    return failure();
  return add(kernel, parts, ck::hadamardQuantizeKernel(pp));
}

LogicalResult emitOptimizer(exec::KernelOp kernel, Block &body,
                            std::vector<ck::GeneratedKernel> &parts) {
  double maxNorm = 0;
  if (auto clip = find<ClipCoefOp>(body))
    maxNorm = clip.getMaxNorm().convertToDouble();
  for (Operation &op : body) {
    if (auto norm = dyn_cast<GlobalNormOp>(op)) {
      for (Value t : norm.getTensors())
        if (failed(add(kernel, parts, ck::sumSquaresKernel(numel(t), elemOf(t)))))
          return failure();
      if (failed(add(kernel, parts, ck::globalNormKernel(maxNorm))))
        return failure();
    } else if (auto lr = dyn_cast<LrScheduleOp>(op)) {
      ck::LrScheduleParams p{lr.getPeakLr().convertToDouble(), int64_t(lr.getWarmupSteps()),
                             int64_t(lr.getTotalSteps()), int(lr.getSchedule())};
      if (failed(add(kernel, parts, ck::lrScheduleKernel(p))))
        return failure();
    } else if (auto adam = dyn_cast<AdamWOp>(op)) {
      ck::AdamWParams p;
      p.elements = numel(adam.getParam());
      p.beta1 = adam.getBeta1().convertToDouble();
      p.beta2 = adam.getBeta2().convertToDouble();
      p.eps = adam.getEps().convertToDouble();
      p.weightDecay = adam.getWeightDecay().convertToDouble();
      // The compute copy (halo-autodiff's cast of the new master) is
      // written by AdamW itself.
      p.writeBf16Copy = llvm::any_of(adam.getNewParam().getUsers(),
                                     [](Operation *u) { return isa<CastOp>(u); });
      p.grad = elemOf(adam.getGrad());
      p.moments = elemOf(adam.getM());
      p.param = elemOf(adam.getParam());
      // A right hadamard in this kernel (halo-fuse's weight-gradient
      // un-rotation) runs inside the step, row by row.
      if (auto h = adam.getGrad().getDefiningOp<HadamardOp>(); h && h->getBlock() == &body) {
        if (h.getSide() != HadamardSide::right)
          return kernel.emitError("CUDA emission of ")
                 << kernel.getName() << ": AdamW un-rotates right hadamards only";
        p.rotateRows = true;
        p.rowLength = dim(h.getX(), 1);
        p.transposed = h.getTransposed();
        p.writeGrad = !h->hasOneUse();
      }
      if (failed(add(kernel, parts, ck::adamwKernel(p))))
        return failure();
    }
  }
  return success();
}

/// The kinds that are one elementwise expression of their operands.
LogicalResult emitElementwise(exec::KernelOp kernel, Operation &op,
                              std::vector<ck::GeneratedKernel> &parts) {
  std::string expr;
  if (isa<AddOp>(op))
    expr = "a + b";
  else if (isa<MulOp>(op))
    expr = "a * b";
  else if (isa<SiluOp>(op))
    expr = "a / (1.0f + __expf(-a))";
  else if (isa<SiluGradOp>(op))
    expr = "b / (1.0f + __expf(-a)) * (1.0f + a * (1.0f - 1.0f / (1.0f + __expf(-a))))";
  else if (isa<CastOp>(op))
    expr = "a";
  else
    return kernel.emitError("CUDA emission of ")
           << kernel.getName() << ": no CUDA generator for kind '" << kernel.getKind() << "'";
  std::vector<std::string> inputs;
  for (Value v : op.getOperands())
    inputs.push_back(ctype(v));
  parts.push_back(elementwiseKernel(kernel.getName().str(), numel(op.getResult(0)), inputs,
                                    ctype(op.getResult(0)), expr));
  return success();
}

LogicalResult emitKernel(exec::KernelOp kernel, int targetSm,
                         std::vector<ck::GeneratedKernel> &parts) {
  Block &body = kernel.getBody().front();
  StringRef kind = kernel.getKind();
  if (kind == "hadamard_quantize" || kind == "quantize" || kind == "hadamard_quantize_plain")
    return emitHadamardQuantize(kernel, body, targetSm, parts);
  // hadamard_swiglu_grad: the SwiGLU backward on the rows of a right
  // rotation that only it reads (halo-fuse), one generated kernel.
  if (kind == "hadamard" || kind == "hadamard_swiglu_grad") {
    auto h = find<HadamardOp>(body);
    ck::HadamardParams p;
    p.targetSm = targetSm;
    p.rows = dim(h.getX(), 0);
    p.cols = dim(h.getX(), 1);
    p.side = h.getSide() == HadamardSide::left ? ck::HadamardSide::Left : ck::HadamardSide::Right;
    p.transposed = h.getTransposed();
    p.input = p.output = elemOf(h.getX());
    p.swigluGrad = kind == "hadamard_swiglu_grad";
    return add(kernel, parts, ck::hadamardKernel(p));
  }
  if (kind == "add_rms_norm" || kind == "rms_norm" || kind == "rms_norm_grad" ||
      kind == "hadamard_rms_norm_grad") {
    ck::RmsNormParams p;
    if (auto n = find<RmsNormOp>(body)) {
      p = {dim(n.getX(), 0), dim(n.getX(), 1), n.getEps().convertToDouble(), kind == "add_rms_norm"};
      return add(kernel, parts, ck::rmsNormForwardKernel(p));
    }
    auto g = find<RmsNormGradOp>(body);
    p = {dim(g.getX(), 0), dim(g.getX(), 1), g.getEps().convertToDouble(),
         static_cast<bool>(find<AddOp>(body))};
    // hadamard_rms_norm_grad: dy's right un-rotation (halo-fuse) runs inside.
    if (auto h = find<HadamardOp>(body)) {
      if (h.getSide() != HadamardSide::right)
        return kernel.emitError("CUDA emission of ")
               << kernel.getName() << ": the RMSNorm backward un-rotates right hadamards only";
      p.rotateDy = true;
      p.transposed = h.getTransposed();
    }
    return add(kernel, parts, ck::rmsNormBackwardKernel(p));
  }
  if (kind == "rope") {
    auto r = find<RopeOp>(body);
    ck::RopeParams p;
    p.tokens = dim(r.getX(), 0);
    p.seqLen = int64_t(r.getSeqLen());
    p.headDim = int64_t(r.getHeadDim());
    p.qHeads = dim(r.getX(), 1) / p.headDim;
    p.kvHeads = 0;
    p.theta = r.getTheta().convertToDouble();
    p.inverse = r.getInverse();
    return add(kernel, parts, ck::ropeKernel(p));
  }
  if (kind == "swiglu")
    return add(kernel, parts, ck::swigluForwardKernel(numel(find<MulOp>(body).getResult())));
  if (kind == "swiglu_grad")
    return add(kernel, parts, ck::swigluBackwardKernel(numel(find<SiluGradOp>(body).getResult())));
  if (kind == "cross_entropy") {
    auto ce = find<CrossEntropyOp>(body);
    return add(kernel, parts,
               ck::crossEntropyKernel({dim(ce.getLogits(), 0), dim(ce.getLogits(), 1)}));
  }
  if (kind == "embedding" || kind == "embedding_grad") {
    ck::EmbeddingParams p;
    bool forward = kind == "embedding";
    if (auto e = find<EmbeddingOp>(body))
      p = {numel(e.getIds()), dim(e.getTable(), 0), dim(e.getTable(), 1)};
    else if (auto g = find<EmbeddingGradOp>(body))
      p = {numel(g.getIds()), dim(g.getResult(), 0), dim(g.getResult(), 1)};
    if (failed(add(kernel, parts, ck::embeddingKernel(p))))
      return failure();
    // The generator makes both directions; keep the one this kernel runs.
    auto &launches = parts.back().launches;
    llvm::erase_if(launches, [&](const ck::LaunchSpec &l) {
      return StringRef(l.entry).ends_with("_fwd") != forward;
    });
    return success();
  }
  if (kind == "attention" || kind == "attention_grad") {
    ck::AttentionParams p;
    if (auto a = find<AttentionOp>(body)) {
      p = {int64_t(a.getBatch()), int64_t(a.getSeqLen()), int64_t(a.getNumHeads()),
           int64_t(a.getNumKvHeads()), int64_t(a.getHeadDim())};
      p.targetSm = targetSm;
      return add(kernel, parts, ck::attentionForwardKernel(p));
    }
    auto g = find<AttentionGradOp>(body);
    p = {int64_t(g.getBatch()), int64_t(g.getSeqLen()), int64_t(g.getNumHeads()),
         int64_t(g.getNumKvHeads()), int64_t(g.getHeadDim())};
    // sm_90: the dK/dV kernel of warp pairs (161 KiB of shared memory).
    p.targetSm = targetSm;
    return add(kernel, parts, ck::attentionBackwardKernel(p));
  }
  if (kind == "optimizer")
    return emitOptimizer(kernel, body, parts);
  if (kind == "transpose") {
    auto t = find<TransposeOp>(body);
    parts.push_back(transposeKernel(kernel.getName().str(), dim(t.getX(), 0), dim(t.getX(), 1)));
    return success();
  }
  // What is left are single-op kernels.
  if (std::next(body.begin()) != std::prev(body.end()))
    return kernel.emitError("CUDA emission of ")
           << kernel.getName() << ": no CUDA generator for kind '" << kind << "'";
  return emitElementwise(kernel, body.front(), parts);
}

} // namespace

cuda::kernels::GeneratedKernel elementwiseKernel(const std::string &program, int64_t elements,
                                                 const std::vector<std::string> &inputs,
                                                 const std::string &output,
                                                 const std::string &expr) {
  static const char *names[] = {"a", "b"};
  // 8 elements per thread through common.cuh's 16-byte loads and stores
  // (buffers are 256-byte aligned) when every type is BF16 or F32 and 8
  // divides the count; one element per thread otherwise.
  auto elem = [](const std::string &t) -> std::string {
    if (t == "float")
      return "halo::Elem<halo::kF32>";
    if (t == "__nv_bfloat16")
      return "halo::Elem<halo::kBF16>";
    return "";
  };
  bool vec = elements % 8 == 0 && !elem(output).empty();
  for (const std::string &t : inputs)
    vec &= !elem(t).empty();
  std::string params, loads, perElement;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string in = "in" + std::to_string(i), v = names[i];
    params += "const " + inputs[i] + "* __restrict__ " + in + ", ";
    if (vec) {
      loads += "  float " + v + "v[8];\n  " + elem(inputs[i]) + "::load8(" + in + " + i, " + v +
               "v);\n";
      perElement += "    const float " + v + " = " + v + "v[j];\n";
    } else {
      loads += "  float " + v + " = float(" + in + "[i]);\n";
    }
  }
  params += output + "* __restrict__ out";
  cuda::kernels::GeneratedKernel k;
  k.program = program;
  k.source = "// " + program + ": out = " + expr + " over " + std::to_string(elements) +
             " elements (generated by halo's CUDA emitter).\n";
  std::string head = "extern \"C\" __global__ void __launch_bounds__(256) " + program + "_map(" +
                     params + ") {\n";
  std::string count = std::to_string(elements) + "LL";
  if (vec)
    k.source += std::string(cuda::kernels::templateText("common.cuh")) + "\n" + head +
                "  const long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;\n"
                "  if (i >= " + count + ")\n    return;\n" + loads +
                "  float r[8];\n"
                "  for (int j = 0; j < 8; ++j) {\n" + perElement +
                "    r[j] = " + expr + ";\n  }\n  " + elem(output) + "::store8(out + i, r);\n}\n";
  else
    k.source += "#include <cuda_bf16.h>\n\n" + head +
                "  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
                "  if (i >= " + count + ")\n    return;\n" + loads +
                "  out[i] = " + output + "(" + expr + ");\n}\n";
  unsigned blocks = static_cast<unsigned>((elements / (vec ? 8 : 1) + 255) / 256);
  k.launches.push_back({program + "_map", {blocks, 1, 1}, {256, 1, 1}, 0, params});
  return k;
}

nlohmann::json cudaManifest(const std::vector<EmittedKernel> &kernels, int targetSm,
                            const std::string &fp8FastAccum) {
  nlohmann::json sources = nlohmann::json::object(), byName = nlohmann::json::object();
  for (const EmittedKernel &k : kernels) {
    nlohmann::json parts = nlohmann::json::array();
    for (const cuda::kernels::GeneratedKernel &g : k.parts) {
      sources[g.program] = g.source;
      nlohmann::json launches = nlohmann::json::array();
      for (const cuda::kernels::LaunchSpec &l : g.launches)
        launches.push_back({{"entry", l.entry},
                            {"grid", {l.grid.x, l.grid.y, l.grid.z}},
                            {"block", {l.block.x, l.block.y, l.block.z}},
                            {"shared_bytes", l.sharedBytes},
                            {"signature", l.signature}});
      parts.push_back({{"program", g.program},
                       {"launches", launches},
                       {"workspace_bytes", g.workspaceBytes},
                       {"scratch_bytes", g.scratchBytes}});
    }
    byName[k.name] = {{"kind", k.kind}, {"loc", k.loc}, {"parts", parts}};
  }
  return {{"target_sm", targetSm},
          {"fp8_fast_accum", fp8FastAccum},
          {"sources", sources},
          {"kernels", byName}};
}

cuda::kernels::GeneratedKernel transposeKernel(const std::string &program, int64_t rows,
                                              int64_t cols) {
  std::string params = "const unsigned char* __restrict__ in, unsigned char* __restrict__ out";
  std::string c = std::to_string(cols) + "LL", r = std::to_string(rows) + "LL";
  cuda::kernels::GeneratedKernel k;
  k.program = program;
  k.source = "// " + program + ": [" + std::to_string(rows) + ", " + std::to_string(cols) +
             "] 8-bit codes -> their transpose (generated by halo's CUDA emitter).\n\n";
  if (rows % 64 == 0 && cols % 64 == 0) {
    // 64 x 64 byte tiles, 32-bit accesses: each thread loads a 4 x 4 byte
    // block (4 words of 4 rows), transposes it in registers (prmt) and puts
    // its 4 columns into shared memory as words; then each warp writes two
    // 64-byte output rows. Both global sides move whole 64-byte row pieces.
    k.source +=
        "extern \"C\" __global__ void __launch_bounds__(256) " + program + "_t(" + params +
        ") {\n"
        "  __shared__ unsigned tile[64][17];\n"
        "  const int t = threadIdx.x, br = t >> 4, bc = t & 15;\n"
        "  const long long r0 = blockIdx.y * 64LL, c0 = blockIdx.x * 64LL;\n"
        "  unsigned w[4];\n"
        "  for (int i = 0; i < 4; ++i)\n"
        "    w[i] = *reinterpret_cast<const unsigned*>(in + (r0 + 4 * br + i) * " + c +
        " + c0 + 4 * bc);\n"
        "  // Column j of the 4 x 4 block: byte j of each row word.\n"
        "  const unsigned lo01 = __byte_perm(w[0], w[1], 0x5140), hi01 = __byte_perm(w[0], w[1], "
        "0x7362);\n"
        "  const unsigned lo23 = __byte_perm(w[2], w[3], 0x5140), hi23 = __byte_perm(w[2], w[3], "
        "0x7362);\n"
        "  tile[4 * bc + 0][br] = __byte_perm(lo01, lo23, 0x5410);\n"
        "  tile[4 * bc + 1][br] = __byte_perm(lo01, lo23, 0x7632);\n"
        "  tile[4 * bc + 2][br] = __byte_perm(hi01, hi23, 0x5410);\n"
        "  tile[4 * bc + 3][br] = __byte_perm(hi01, hi23, 0x7632);\n"
        "  __syncthreads();\n"
        "  for (int i = 0; i < 4; ++i) {\n"
        "    const int orow = (t >> 4) + 16 * i, word = t & 15;\n"
        "    *reinterpret_cast<unsigned*>(out + (c0 + orow) * " + r + " + r0 + 4 * word) =\n"
        "        tile[orow][word];\n"
        "  }\n"
        "}\n";
    k.launches.push_back({program + "_t",
                          {static_cast<unsigned>(cols / 64), static_cast<unsigned>(rows / 64), 1},
                          {256, 1, 1},
                          0,
                          params});
    return k;
  }
  // Other shapes: 32 x 32 byte tiles through shared memory (padded against
  // bank conflicts), so that both the reads and the writes are row-contiguous.
  k.source += "extern \"C\" __global__ void __launch_bounds__(256) " + program + "_t(" + params +
              ") {\n"
              "  __shared__ unsigned char tile[32][33];\n"
              "  const long long c = blockIdx.x * 32LL + threadIdx.x, r0 = blockIdx.y * 32LL;\n"
              "  for (int j = threadIdx.y; j < 32; j += 8)\n"
              "    if (r0 + j < " + r + " && c < " + c + ")\n"
              "      tile[j][threadIdx.x] = in[(r0 + j) * " + c + " + c];\n"
              "  __syncthreads();\n"
              "  const long long outCol = r0 + threadIdx.x, outRow0 = blockIdx.x * 32LL;\n"
              "  for (int j = threadIdx.y; j < 32; j += 8)\n"
              "    if (outRow0 + j < " + c + " && outCol < " + r + ")\n"
              "      out[(outRow0 + j) * " + r + " + outCol] = tile[threadIdx.x][j];\n"
              "}\n";
  k.launches.push_back({program + "_t",
                        {static_cast<unsigned>((cols + 31) / 32),
                         static_cast<unsigned>((rows + 31) / 32), 1},
                        {32, 8, 1},
                        0,
                        params});
  return k;
}

FailureOr<std::vector<EmittedKernel>> emitCudaKernels(ModuleOp module, int targetSm) {
  std::vector<EmittedKernel> kernels;
  llvm::StringSet<> seen;
  WalkResult walk = module.walk([&](exec::KernelOp kernel) {
    if (!seen.insert(kernel.getName()).second)
      return WalkResult::advance();
    std::string loc;
    if (auto name = dyn_cast<NameLoc>(kernel.getLoc()))
      loc = name.getName().str();
    EmittedKernel emitted{kernel.getName().str(), kernel.getKind().str(), loc, {}};
    if (failed(emitKernel(kernel, targetSm, emitted.parts)))
      return WalkResult::interrupt();
    kernels.push_back(std::move(emitted));
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  return kernels;
}

} // namespace halo
