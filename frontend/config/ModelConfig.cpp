//===- ModelConfig.cpp - Presets, table rules, summaries, JSON out --------===//
//
// Everything about ModelConfig except reading JSON (ConfigParser.cpp): the
// HALO level presets, the rules a per-matmul table must satisfy, the CLI
// overrides, the one-line summary and the canonical JSON writer.
//
//===----------------------------------------------------------------------===//

#include "frontend/config/ModelConfig.h"

#include <cassert>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace halo::frontend {

int64_t ModelShape::paramCount() const {
  int64_t attention =
      hiddenSize * qDim() + 2 * hiddenSize * kvDim() + qDim() * hiddenSize;
  int64_t mlp = 3 * hiddenSize * intermediateSize;
  int64_t norms = 2 * hiddenSize;
  int64_t embeddings = vocabSize * hiddenSize;
  int64_t lmHead = tieWordEmbeddings ? 0 : vocabSize * hiddenSize;
  return embeddings + numHiddenLayers * (attention + mlp + norms) + hiddenSize +
         lmHead;
}

bool MatmulTable::operator==(const MatmulTable &o) const {
  for (size_t i = 0; i < kOperandSlots.size(); ++i)
    if (schemeAt(*this, i) != schemeAt(o, i))
      return false;
  return true;
}

OperandScheme &schemeAt(MatmulTable &table, size_t slot) {
  switch (slot) {
  case 0:
    return table.fwd.x;
  case 1:
    return table.fwd.w;
  case 2:
    return table.bwdInput.e;
  case 3:
    return table.bwdInput.w;
  case 4:
    return table.bwdWeight.e;
  default:
    assert(slot == 5 && "operand slot out of range");
    return table.bwdWeight.x;
  }
}

const OperandScheme &schemeAt(const MatmulTable &table, size_t slot) {
  return schemeAt(const_cast<MatmulTable &>(table), slot);
}

MatmulTable presetTable(int level, Precision precision) {
  assert(level >= 0 && level <= kMaxLevel && "HALO level out of range");
  MatmulTable t;
  if (precision == Precision::BF16)
    return t;
  for (size_t i = 0; i < kOperandSlots.size(); ++i)
    schemeAt(t, i).quant = QuantGranularity::Tensor;
  if (level >= 1) {
    // Q(XH) Q(WH)^T forward; the backward GEMMs reuse the saved rotated
    // operands (rotation on the free dim m, undone on the output).
    t.fwd.x.hadamard = HadamardSide::Right;
    t.fwd.w.hadamard = HadamardSide::Right;
    t.bwdInput.w.hadamard = HadamardSide::Right;
    t.bwdWeight.x.hadamard = HadamardSide::Right;
  }
  if (level >= 2)
    // H_T E: the error is rotated over tokens for the input gradient only.
    t.bwdInput.e.hadamard = HadamardSide::Left;
  return t;
}

static std::string slotPath(const OperandSlot &slot) {
  return fmt::format("halo.matmuls.{}.{}", slot.matmulKey, slot.operandKey);
}

static Status checkOperand(const MatmulTable &table, size_t i,
                           Precision precision) {
  const OperandSlot &slot = kOperandSlots[i];
  const OperandSlot &partner = kOperandSlots[i ^ 1];
  const OperandScheme &s = schemeAt(table, i);
  const OperandScheme &p = schemeAt(table, i ^ 1);
  std::string_view reductionDim =
      slot.reductionSide == HadamardSide::Right ? slot.colsDim : slot.rowsDim;
  if (s.hadamard == slot.reductionSide && p.hadamard != partner.reductionSide) {
    std::string fix =
        p.hadamard == HadamardSide::None
            ? fmt::format("rotate {} \"{}\" too or remove it",
                          partner.operandKey, toString(partner.reductionSide))
            : fmt::format("rotate {} \"{}\" (not \"{}\") or remove it",
                          partner.operandKey, toString(partner.reductionSide),
                          toString(p.hadamard));
    return Status::error(fmt::format(
        "{}: Hadamard on the reduction dimension ({}) of {} without the same "
        "rotation on {} strands the rotation; {}",
        slotPath(slot), reductionDim, slot.operandKey, partner.operandKey,
        fix));
  }
  if (s.quant != QuantGranularity::None && precision == Precision::BF16)
    return Status::error(fmt::format(
        "{}.quant: \"{}\" quantization needs an 8-bit precision, but "
        "halo.precision is \"bf16\"; set it to \"fp8\" or \"int8\" or use "
        "quant \"none\"",
        slotPath(slot), toString(s.quant)));
  if (s.quant == QuantGranularity::Row &&
      slot.reductionSide == HadamardSide::Left)
    return Status::error(fmt::format(
        "{}.quant: \"row\" quantization gives each row of {} its own scale, "
        "but its rows ({}) are the reduction dimension of {}, so the scales "
        "cannot be factored out of the GEMM; use \"tensor\"",
        slotPath(slot), slot.operandKey, slot.rowsDim, slot.matmulKey));
  return Status::success();
}

Status validateMatmulTable(const MatmulTable &table, Precision precision) {
  for (size_t i = 0; i < kOperandSlots.size(); i += 2) {
    HALO_RETURN_IF_ERROR(checkOperand(table, i, precision));
    HALO_RETURN_IF_ERROR(checkOperand(table, i + 1, precision));
    const OperandScheme &a = schemeAt(table, i);
    const OperandScheme &b = schemeAt(table, i + 1);
    bool aQuant = a.quant != QuantGranularity::None;
    bool bQuant = b.quant != QuantGranularity::None;
    if (aQuant != bQuant) {
      const OperandSlot &q = kOperandSlots[aQuant ? i : i + 1];
      const OperandSlot &u = kOperandSlots[aQuant ? i + 1 : i];
      return Status::error(fmt::format(
          "halo.matmuls.{}: {} is quantized (\"{}\") but {} is not; an 8-bit "
          "GEMM needs both operands in 8 bits, so quantize {} too or neither",
          q.matmulKey, q.operandKey, toString((aQuant ? a : b).quant),
          u.operandKey, u.operandKey));
    }
  }
  return Status::success();
}

static std::string formatCount(int64_t n) {
  if (n >= 1000000000)
    return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1000000)
    return fmt::format("{:.1f}M", n / 1e6);
  if (n >= 1000)
    return fmt::format("{:.1f}K", n / 1e3);
  return std::to_string(n);
}

static std::string describeHalo(const HaloConfig &h) {
  if (h.matmuls == MatmulTable())
    return h.precision == Precision::BF16
               ? "bf16 (no quantization)"
               : fmt::format("{} selected, but no operand is quantized",
                             toString(h.precision));
  if (h.isPreset())
    return fmt::format("HALO-{} {}", *h.level, toString(h.precision));
  if (h.level)
    return fmt::format("HALO-{} {} with a modified matmul table", *h.level,
                       toString(h.precision));
  return fmt::format("custom matmul table {}", toString(h.precision));
}

std::string ModelConfig::describe() const {
  const ModelShape &m = model;
  return fmt::format(
      "{} params: hidden {}, ffn {}, {} layers, {} heads ({} kv, head_dim {}), "
      "vocab {}{}; train batch {} x seq {}, {} steps, lr {} {}; {}",
      formatCount(m.paramCount()), m.hiddenSize, m.intermediateSize,
      m.numHiddenLayers, m.numAttentionHeads, m.numKeyValueHeads, m.headDim,
      m.vocabSize, m.tieWordEmbeddings ? ", tied embeddings" : "",
      train.batchSize, train.seqLen, train.steps, train.lr,
      toString(train.schedule), describeHalo(halo));
}

Status applyOverrides(ModelConfig &config, std::optional<int> level,
                      std::optional<Precision> precision) {
  HaloConfig &h = config.halo;
  if (level && (*level < 0 || *level > kMaxLevel))
    return Status::error(fmt::format(
        "--level {}: unknown level; valid levels are 0, 1, 2", *level));
  Precision p = precision.value_or(h.precision);
  if (level) {
    h.level = level;
    h.precision = p;
    h.matmuls = presetTable(*level, p);
    return Status::success();
  }
  if (!precision || p == h.precision)
    return Status::success();
  if (p == Precision::BF16) {
    h.matmuls = presetTable(h.level.value_or(0), p);
  } else if (h.precision == Precision::BF16) {
    // Leaving the baseline: quantization comes from the level's preset.
    if (!h.level)
      return Status::error(fmt::format(
          "--precision {}: {} gives a custom bf16 halo.matmuls table without "
          "halo.level, so there is no preset to quantize with; pass --level "
          "too or set quant entries in the file",
          toString(p),
          config.sourcePath.empty() ? "the model" : config.sourcePath));
    h.matmuls = presetTable(*h.level, p);
  }
  // Between fp8 and int8 the table is unchanged: only the format differs.
  h.precision = p;
  return Status::success();
}

std::string toJson(const ModelConfig &config) {
  using Json = nlohmann::ordered_json;
  const ModelShape &m = config.model;
  const TrainConfig &t = config.train;
  const HaloConfig &h = config.halo;

  Json model;
  model["hidden_size"] = m.hiddenSize;
  model["intermediate_size"] = m.intermediateSize;
  model["num_hidden_layers"] = m.numHiddenLayers;
  model["num_attention_heads"] = m.numAttentionHeads;
  model["num_key_value_heads"] = m.numKeyValueHeads;
  model["head_dim"] = m.headDim;
  model["vocab_size"] = m.vocabSize;
  model["max_position_embeddings"] = m.maxPositionEmbeddings;
  model["rms_norm_eps"] = m.rmsNormEps;
  model["rope_theta"] = m.ropeTheta;
  model["initializer_range"] = m.initializerRange;
  model["tie_word_embeddings"] = m.tieWordEmbeddings;

  Json train;
  train["batch_size"] = t.batchSize;
  train["seq_len"] = t.seqLen;
  train["steps"] = t.steps;
  train["lr"] = t.lr;
  train["warmup_steps"] = t.warmupSteps;
  train["schedule"] = toString(t.schedule);
  train["betas"] = Json::array({t.beta1, t.beta2});
  train["eps"] = t.eps;
  train["weight_decay"] = t.weightDecay;
  train["grad_clip"] = t.gradClip;
  train["moment_dtype"] = toString(t.momentDtype);
  train["master_dtype"] = toString(t.masterDtype);
  train["seed"] = t.seed;

  Json halo;
  if (h.level)
    halo["level"] = *h.level;
  halo["precision"] = toString(h.precision);
  if (!h.isPreset()) {
    Json table = Json::object();
    for (size_t i = 0; i < kOperandSlots.size(); ++i) {
      const OperandSlot &slot = kOperandSlots[i];
      const OperandScheme &s = schemeAt(h.matmuls, i);
      table[std::string(slot.matmulKey)][std::string(slot.operandKey)] = {
          {"hadamard", toString(s.hadamard)}, {"quant", toString(s.quant)}};
    }
    halo["matmuls"] = std::move(table);
  }

  Json root;
  root["model"] = std::move(model);
  root["train"] = std::move(train);
  root["halo"] = std::move(halo);
  return root.dump(2) + "\n";
}

std::string toHfConfigJson(const ModelConfig &config) {
  using Json = nlohmann::ordered_json;
  const ModelShape &m = config.model;
  Json hf;
  hf["architectures"] = Json::array({"LlamaForCausalLM"});
  hf["model_type"] = "llama";
  hf["hidden_size"] = m.hiddenSize;
  hf["intermediate_size"] = m.intermediateSize;
  hf["num_hidden_layers"] = m.numHiddenLayers;
  hf["num_attention_heads"] = m.numAttentionHeads;
  hf["num_key_value_heads"] = m.numKeyValueHeads;
  // Always explicit: transformers would otherwise derive hidden/heads, which
  // differs from halo's resolved value when the model file set head_dim.
  hf["head_dim"] = m.headDim;
  hf["vocab_size"] = m.vocabSize;
  hf["max_position_embeddings"] = m.maxPositionEmbeddings;
  hf["rms_norm_eps"] = m.rmsNormEps;
  hf["rope_theta"] = m.ropeTheta;
  hf["tie_word_embeddings"] = m.tieWordEmbeddings;
  hf["initializer_range"] = m.initializerRange;
  // The architecture choices halo implements, spelled out so transformers
  // cannot pick a different default.
  hf["hidden_act"] = "silu";
  hf["attention_bias"] = false;
  hf["attention_dropout"] = 0.0;
  hf["mlp_bias"] = false;
  // halo checkpoints store F32 parameters (model.safetensors).
  hf["torch_dtype"] = "float32";
  return hf.dump(2) + "\n";
}

std::string_view toString(Precision precision) {
  switch (precision) {
  case Precision::BF16:
    return "bf16";
  case Precision::FP8:
    return "fp8";
  case Precision::INT8:
    return "int8";
  }
  return "?";
}

std::string_view toString(HadamardSide side) {
  switch (side) {
  case HadamardSide::None:
    return "none";
  case HadamardSide::Left:
    return "left";
  case HadamardSide::Right:
    return "right";
  }
  return "?";
}

std::string_view toString(QuantGranularity quant) {
  switch (quant) {
  case QuantGranularity::None:
    return "none";
  case QuantGranularity::Tensor:
    return "tensor";
  case QuantGranularity::Row:
    return "row";
  }
  return "?";
}

std::string_view toString(LrSchedule schedule) {
  switch (schedule) {
  case LrSchedule::Constant:
    return "constant";
  case LrSchedule::Linear:
    return "linear";
  case LrSchedule::Cosine:
    return "cosine";
  }
  return "?";
}

std::string_view toString(StateType type) {
  return type == StateType::BF16 ? "bf16" : "f32";
}

std::optional<Precision> parsePrecision(std::string_view name) {
  for (Precision p : {Precision::FP8, Precision::INT8, Precision::BF16})
    if (toString(p) == name)
      return p;
  return std::nullopt;
}

} // namespace halo::frontend
