//===- LlamaBuilder.cpp - Model description -> halo forward graph --------===//
//
// The graph follows HF LlamaForCausalLM: embed -> N x (RMSNorm, q/k/v proj,
// RoPE on q and k, causal GQA attention, o_proj, residual; RMSNorm, SwiGLU MLP,
// residual) -> final RMSNorm -> lm_head -> mean cross-entropy against the
// targets (the data loader supplies inputs and targets already shifted).
// Every op is located at the HF module it implements, so diagnostics and IR
// dumps name the layer.
//
//===----------------------------------------------------------------------===//
#include "frontend/builder/LlamaBuilder.h"

#include "dialects/halo/IR/HaloOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"

#include <nlohmann/json.hpp>

using namespace mlir;

namespace halo::frontend {
namespace {

class LlamaBuilder {
public:
  LlamaBuilder(MLIRContext &context, const ModelConfig &config)
      : ctx(context), cfg(config), m(config.model), b(&context),
        bf16(b.getBF16Type()) {}

  OwningOpRef<ModuleOp> build();

private:
  RankedTensorType tensor(ArrayRef<int64_t> shape, Type element) {
    return RankedTensorType::get(shape, element);
  }
  Location loc(const Twine &name) {
    return NameLoc::get(b.getStringAttr(name), FileLineColLoc::get(&ctx, fileName, 0, 0));
  }
  /// Adds a parameter argument named as in HF checkpoints.
  Value param(const std::string &name, ArrayRef<int64_t> shape, StringRef init);
  Value linear(Value x, const std::string &module, int64_t out);
  Value rmsNorm(Value x, const std::string &module);
  Value decoderLayer(Value h, int64_t layer);

  DictionaryAttr trainAttr();
  DictionaryAttr placementAttr();

  MLIRContext &ctx;
  const ModelConfig &cfg;
  const ModelShape &m;
  OpBuilder b;
  Type bf16;
  std::string fileName;
  func::FuncOp func;
  SmallVector<DictionaryAttr> argAttrs;
  int64_t tokens = 0;
};

Value LlamaBuilder::param(const std::string &name, ArrayRef<int64_t> shape, StringRef init) {
  // The function type and argument attributes are finalised in build().
  Value arg = func.getBody().front().addArgument(tensor(shape, bf16), loc(name));
  argAttrs.push_back(b.getDictionaryAttr(
      {b.getNamedAttr("halo.param", b.getStringAttr(name)),
       b.getNamedAttr("halo.init", b.getStringAttr(init))}));
  return arg;
}

Value LlamaBuilder::linear(Value x, const std::string &module, int64_t out) {
  int64_t in = cast<RankedTensorType>(x.getType()).getDimSize(1);
  Value w = param(module + ".weight", {out, in}, "normal");
  return b.create<LinearOp>(loc(module), tensor({tokens, out}, bf16), x, w,
                            b.getStringAttr(module));
}

Value LlamaBuilder::rmsNorm(Value x, const std::string &module) {
  Value w = param(module + ".weight", {m.hiddenSize}, "ones");
  return b.create<RmsNormOp>(loc(module), x.getType(), x, w, b.getF64FloatAttr(m.rmsNormEps));
}

Value LlamaBuilder::decoderLayer(Value h, int64_t layer) {
  std::string prefix = "model.layers." + std::to_string(layer);
  std::string attn = prefix + ".self_attn", mlp = prefix + ".mlp";
  const TrainConfig &t = cfg.train;

  Value n = rmsNorm(h, prefix + ".input_layernorm");
  Value q = linear(n, attn + ".q_proj", m.qDim());
  Value k = linear(n, attn + ".k_proj", m.kvDim());
  Value v = linear(n, attn + ".v_proj", m.kvDim());
  auto rope = [&](Value x) -> Value {
    return b.create<RopeOp>(loc(attn + ".rotary_emb"), x.getType(), x,
                            b.getI64IntegerAttr(t.seqLen), b.getI64IntegerAttr(m.headDim),
                            b.getF64FloatAttr(m.ropeTheta), /*inverse=*/UnitAttr());
  };
  q = rope(q);
  k = rope(k);
  auto attention = b.create<AttentionOp>(
      loc(attn), tensor({tokens, m.qDim()}, bf16),
      tensor({t.batchSize * m.numAttentionHeads * t.seqLen}, b.getF32Type()), q, k, v,
      t.batchSize, t.seqLen, m.numAttentionHeads, m.numKeyValueHeads, m.headDim);
  Value o = linear(attention.getResult(), attn + ".o_proj", m.hiddenSize);
  h = b.create<AddOp>(loc(prefix), h, o);

  n = rmsNorm(h, prefix + ".post_attention_layernorm");
  Value gate = linear(n, mlp + ".gate_proj", m.intermediateSize);
  Value up = linear(n, mlp + ".up_proj", m.intermediateSize);
  Value act = b.create<SiluOp>(loc(mlp + ".act_fn"), gate);
  Value prod = b.create<MulOp>(loc(mlp), act, up);
  Value down = linear(prod, mlp + ".down_proj", m.hiddenSize);
  return b.create<AddOp>(loc(prefix), h, down);
}

DictionaryAttr LlamaBuilder::trainAttr() {
  const TrainConfig &t = cfg.train;
  return b.getDictionaryAttr({
      b.getNamedAttr("lr", b.getF64FloatAttr(t.lr)),
      b.getNamedAttr("warmup_steps", b.getI64IntegerAttr(t.warmupSteps)),
      b.getNamedAttr("total_steps", b.getI64IntegerAttr(t.steps)),
      b.getNamedAttr("schedule", b.getStringAttr(toString(t.schedule))),
      b.getNamedAttr("beta1", b.getF64FloatAttr(t.beta1)),
      b.getNamedAttr("beta2", b.getF64FloatAttr(t.beta2)),
      b.getNamedAttr("eps", b.getF64FloatAttr(t.eps)),
      b.getNamedAttr("weight_decay", b.getF64FloatAttr(t.weightDecay)),
      b.getNamedAttr("grad_clip", b.getF64FloatAttr(t.gradClip)),
      b.getNamedAttr("moment_dtype", b.getStringAttr(toString(t.momentDtype))),
      b.getNamedAttr("master_dtype", b.getStringAttr(toString(t.masterDtype))),
  });
}

DictionaryAttr LlamaBuilder::placementAttr() {
  const HaloConfig &h = cfg.halo;
  SmallVector<NamedAttribute> entries;
  entries.push_back(b.getNamedAttr("precision", b.getStringAttr(toString(h.precision))));
  if (h.level)
    entries.push_back(b.getNamedAttr("level", b.getI64IntegerAttr(*h.level)));
  // The effective table, one {hadamard, quant} per operand slot.
  llvm::StringMap<SmallVector<NamedAttribute>> perMatmul;
  SmallVector<StringRef> order;
  for (size_t slot = 0; slot < kOperandSlots.size(); ++slot) {
    const OperandSlot &s = kOperandSlots[slot];
    const OperandScheme &scheme = schemeAt(h.matmuls, slot);
    StringRef key(s.matmulKey.data(), s.matmulKey.size());
    if (!perMatmul.count(key))
      order.push_back(key);
    perMatmul[key].push_back(b.getNamedAttr(
        StringRef(s.operandKey.data(), s.operandKey.size()),
        b.getDictionaryAttr(
            {b.getNamedAttr("hadamard", b.getStringAttr(toString(scheme.hadamard))),
             b.getNamedAttr("quant", b.getStringAttr(toString(scheme.quant)))})));
  }
  for (StringRef key : order)
    entries.push_back(b.getNamedAttr(key, b.getDictionaryAttr(perMatmul[key])));
  return b.getDictionaryAttr(entries);
}

OwningOpRef<ModuleOp> LlamaBuilder::build() {
  fileName = cfg.sourcePath.empty() ? "<model>" : cfg.sourcePath;
  tokens = cfg.train.tokensPerStep();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc(fileName));
  // Compact JSON keeps the IR dump readable; the runtime re-reads it.
  (*module)->setAttr("halo.model_config",
                     b.getStringAttr(nlohmann::json::parse(toJson(cfg)).dump()));
  (*module)->setAttr("halo.train", trainAttr());
  (*module)->setAttr("halo.placement", placementAttr());

  b.setInsertionPointToEnd(module->getBody());
  auto ids = tensor({tokens}, b.getI32Type());
  func = b.create<func::FuncOp>(loc("forward"), "forward", b.getFunctionType({}, {}));
  Block *entry = func.addEntryBlock();
  Value tokenIds = entry->addArgument(ids, loc("tokens"));
  Value targets = entry->addArgument(ids, loc("targets"));
  argAttrs.push_back(b.getDictionaryAttr(b.getNamedAttr("halo.input", b.getStringAttr("tokens"))));
  argAttrs.push_back(
      b.getDictionaryAttr(b.getNamedAttr("halo.input", b.getStringAttr("targets"))));
  b.setInsertionPointToStart(entry);

  Value embed = param("model.embed_tokens.weight", {m.vocabSize, m.hiddenSize}, "normal");
  Value h = b.create<EmbeddingOp>(loc("model.embed_tokens"), tensor({tokens, m.hiddenSize}, bf16),
                                  tokenIds, embed);
  for (int64_t layer = 0; layer < m.numHiddenLayers; ++layer)
    h = decoderLayer(h, layer);
  h = rmsNorm(h, "model.norm");
  Value logits;
  if (m.tieWordEmbeddings)
    logits = b.create<LinearOp>(loc("lm_head"), tensor({tokens, m.vocabSize}, bf16), h, embed,
                                b.getStringAttr("lm_head"));
  else
    logits = linear(h, "lm_head", m.vocabSize);
  Value loss = b.create<CrossEntropyOp>(loc("loss"), RankedTensorType::get({}, b.getF32Type()),
                                        logits, targets);
  b.create<func::ReturnOp>(loc("loss"), loss);

  func.setFunctionType(b.getFunctionType(entry->getArgumentTypes(), {loss.getType()}));
  func.setAllArgAttrs(argAttrs);
  func.setResultAttrs(0, b.getDictionaryAttr(
                             b.getNamedAttr("halo.output", b.getStringAttr("loss"))));
  return module;
}

} // namespace

OwningOpRef<ModuleOp> buildForwardModule(MLIRContext &context, const ModelConfig &config) {
  context.loadDialect<HaloDialect, func::FuncDialect>();
  return LlamaBuilder(context, config).build();
}

} // namespace halo::frontend
