//===- ModelConfig.h - The validated model description ----------*- C++ -*-===//
//
// A model file is JSON: a "model" section with Hugging Face LlamaConfig fields,
// a "train" section and a "halo" section (or a plain HF config.json). The
// reader turns it into ModelConfig with every default resolved and every
// constraint checked, so the compiler and halo-run never see an invalid model.
// MLIR-free: the runtime links it. docs/model-format.md documents the format.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_FRONTEND_CONFIG_MODELCONFIG_H
#define HALO_FRONTEND_CONFIG_MODELCONFIG_H

#include "halo/runtime/Status.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace halo::frontend {

/// The number format of the quantized matmul operands. BF16 is the
/// unquantized baseline.
enum class Precision { BF16, FP8, INT8 };

/// Where an operand is rotated, relative to its own 2-D layout [rows, cols]:
/// Right applies the Hadamard transform to every row (along the last dim,
/// A -> A H); Left applies the same transform to every column (along the
/// first dim, A -> H^T A). A pair on a shared reduction dimension therefore
/// cancels: (X H)(W H)^T = X W^T, (E H)(H^T W) = E W, (H^T E)^T (H^T X) = E^T
/// X.
enum class HadamardSide { None, Left, Right };

/// Symmetric absmax scaling: one scale per tensor, or one per row of the
/// operand's 2-D layout (valid only where the rows are not the reduction dim).
enum class QuantGranularity { None, Tensor, Row };

enum class LrSchedule { Constant, Linear, Cosine };

/// Storage of an optimizer state (AdamW's moments, the trained weights). BF16
/// halves its traffic; updates are rounded stochastically so small ones are
/// not lost (see docs/model-format.md).
enum class StateType { F32, BF16 };

inline constexpr int kMaxLevel = 2;
inline constexpr int kDefaultLevel = 2;
inline constexpr Precision kDefaultPrecision = Precision::FP8;

/// The LLaMA architecture's shapes (HF LlamaConfig names, camel-cased).
struct ModelShape {
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numHiddenLayers = 0;
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0;
  /// Resolved: the file's head_dim, else hiddenSize / numAttentionHeads.
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  int64_t maxPositionEmbeddings = 0;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  /// Standard deviation of the normal initialisation (training from scratch).
  double initializerRange = 0.02;
  bool tieWordEmbeddings = false;

  /// numAttentionHeads * headDim: q_proj's output and o_proj's input width.
  int64_t qDim() const { return numAttentionHeads * headDim; }
  /// numKeyValueHeads * headDim: k_proj's and v_proj's output width.
  int64_t kvDim() const { return numKeyValueHeads * headDim; }
  /// Trainable parameters: embeddings, attention, MLP, norms, lm_head unless
  /// tied.
  int64_t paramCount() const;
};

struct TrainConfig {
  int64_t batchSize = 8;
  /// The reader defaults it to min(512, maxPositionEmbeddings).
  int64_t seqLen = 512;
  int64_t steps = 1000;
  double lr = 3e-4;
  int64_t warmupSteps = 0;
  LrSchedule schedule = LrSchedule::Linear;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.0;
  /// Global gradient-norm clipping threshold; 0 disables clipping.
  double gradClip = 1.0;
  StateType momentDtype = StateType::F32;
  /// F32: FP32 master weights and BF16 compute copies; BF16: the weights
  /// themselves in BF16 (as PyTorch's BF16 modules keep them).
  StateType masterDtype = StateType::F32;
  uint64_t seed = 0;

  /// T, the token dimension of every linear layer's matmuls.
  int64_t tokensPerStep() const { return batchSize * seqLen; }
};

struct OperandScheme {
  HadamardSide hadamard = HadamardSide::None;
  QuantGranularity quant = QuantGranularity::None;

  bool operator==(const OperandScheme &o) const {
    return hadamard == o.hadamard && quant == o.quant;
  }
  bool operator!=(const OperandScheme &o) const { return !(*this == o); }
};

/// Forward Y = X W^T: x [T, m], w [n, m]; reduction over m.
struct ForwardScheme {
  OperandScheme x, w;
};
/// Input gradient E_X = E W: e [T, n], w [n, m]; reduction over n.
struct BackwardInputScheme {
  OperandScheme e, w;
};
/// Weight gradient G = E^T X: e [T, n], x [T, m]; reduction over T.
struct BackwardWeightScheme {
  OperandScheme e, x;
};

/// The paper's research form: rotation and quantization of each operand of
/// the three matmuls of every linear layer. The HALO levels are presets.
struct MatmulTable {
  ForwardScheme fwd;
  BackwardInputScheme bwdInput;
  BackwardWeightScheme bwdWeight;

  bool operator==(const MatmulTable &o) const;
  bool operator!=(const MatmulTable &o) const { return !(*this == o); }
};

enum class MatmulKind { Forward, BackwardInput, BackwardWeight };

/// The static layout of one of the table's six operand slots, for code that
/// walks the table generically. Slots 2k and 2k+1 are the two operands of one
/// matmul (the partner of slot i is slot i ^ 1).
struct OperandSlot {
  MatmulKind matmul;
  std::string_view matmulKey;  // "fwd", "bwd_input", "bwd_weight"
  std::string_view operandKey; // "x", "w", "e"
  std::string_view rowsDim;    // "T", "n" or "m"
  std::string_view colsDim;
  /// The side whose rotation acts on the matmul's reduction dimension.
  HadamardSide reductionSide;
};

inline constexpr std::array<OperandSlot, 6> kOperandSlots = {{
    {MatmulKind::Forward, "fwd", "x", "T", "m", HadamardSide::Right},
    {MatmulKind::Forward, "fwd", "w", "n", "m", HadamardSide::Right},
    {MatmulKind::BackwardInput, "bwd_input", "e", "T", "n",
     HadamardSide::Right},
    {MatmulKind::BackwardInput, "bwd_input", "w", "n", "m", HadamardSide::Left},
    {MatmulKind::BackwardWeight, "bwd_weight", "e", "T", "n",
     HadamardSide::Left},
    {MatmulKind::BackwardWeight, "bwd_weight", "x", "T", "m",
     HadamardSide::Left},
}};

OperandScheme &schemeAt(MatmulTable &table, size_t slot);
const OperandScheme &schemeAt(const MatmulTable &table, size_t slot);

/// The HALO-<level> table of arXiv 2501.02625 (level 0..kMaxLevel). With
/// Precision::BF16 every operand is unrotated and unquantized.
MatmulTable presetTable(int level, Precision precision);

/// Checks the stranded-rotation rule, row quantization against the reduction
/// dim, quantization against the precision and that both operands of a
/// matmul are 8-bit or neither. Messages start "halo.matmuls.<mm>.<operand>".
Status validateMatmulTable(const MatmulTable &table, Precision precision);

struct HaloConfig {
  /// The preset the table derives from; absent for a fully custom table.
  std::optional<int> level = kDefaultLevel;
  Precision precision = kDefaultPrecision;
  /// The effective table: the level's preset, with the file's per-entry
  /// overrides applied (or the file's table alone when level is absent).
  MatmulTable matmuls = presetTable(kDefaultLevel, kDefaultPrecision);

  /// True when the table is exactly the level's preset.
  bool isPreset() const {
    return level && matmuls == presetTable(*level, precision);
  }
};

struct ModelConfig {
  ModelShape model;
  TrainConfig train;
  HaloConfig halo;
  /// The file read (a checkpoint folder resolves to its config.json); empty
  /// when parsed from a string.
  std::string sourcePath;

  /// One line: parameter count, shapes, training setup, HALO level/precision.
  std::string describe() const;
};

/// Reads a model file, or <dir>/config.json when path is a directory (an HF
/// checkpoint folder). Errors read "<path>: <dotted.key>: <reason>".
StatusOr<ModelConfig> parseModelConfigFile(const std::string &path);
/// As above for JSON text; displayName stands for the file in messages.
StatusOr<ModelConfig> parseModelConfigString(const std::string &json,
                                             const std::string &displayName);

/// The CLI's --level / --precision. A level replaces the table with its
/// preset. A precision alone switches the 8-bit format and keeps the table;
/// bf16 clears it to the unquantized baseline, and leaving bf16 takes the
/// level's preset (an error for a custom table without a level).
Status applyOverrides(ModelConfig &config, std::optional<int> level,
                      std::optional<Precision> precision);

/// The canonical sectioned form with every default written out; the table
/// appears under "matmuls" only where it differs from the level's preset.
/// Parsing it yields the same configuration.
std::string toJson(const ModelConfig &config);

/// The model's shapes as a Hugging Face LlamaConfig config.json (model_type
/// "llama", LlamaForCausalLM, torch_dtype float32), so a halo checkpoint
/// folder loads with transformers' from_pretrained. Only config.model is
/// written (HF has no place for train/halo); parsing the text back yields the
/// same ModelShape.
std::string toHfConfigJson(const ModelConfig &config);

std::string_view toString(Precision precision);
std::string_view toString(HadamardSide side);
std::string_view toString(QuantGranularity quant);
std::string_view toString(LrSchedule schedule);
std::string_view toString(StateType type);
std::optional<Precision> parsePrecision(std::string_view name);

} // namespace halo::frontend

#endif // HALO_FRONTEND_CONFIG_MODELCONFIG_H
