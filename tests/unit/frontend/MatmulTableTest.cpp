//===- MatmulTableTest.cpp - HALO presets, per-matmul tables, overrides ---===//
//
// The level presets against the paper's table (arXiv 2501.02625, section 1
// of halo-method.md), the rules of the research table (stranded rotations,
// row scales on the reduction dim, precision), the file's "matmuls" section,
// the CLI overrides and the canonical JSON of custom tables.
//
//===----------------------------------------------------------------------===//

#include "frontend/config/ModelConfig.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace halo::frontend;
using Json = nlohmann::json;

namespace {

constexpr HadamardSide N = HadamardSide::None;
constexpr HadamardSide L = HadamardSide::Left;
constexpr HadamardSide R = HadamardSide::Right;
constexpr QuantGranularity None = QuantGranularity::None;
constexpr QuantGranularity Tensor = QuantGranularity::Tensor;
constexpr QuantGranularity Row = QuantGranularity::Row;

/// A table from the six operands in slot order: fwd x, w; bwd_input e, w;
/// bwd_weight e, x.
MatmulTable table(std::initializer_list<OperandScheme> slots) {
  MatmulTable t;
  size_t i = 0;
  for (const OperandScheme &s : slots)
    schemeAt(t, i++) = s;
  return t;
}

Json withHalo(const Json &halo) {
  Json json = Json::parse(R"({
    "model": {"hidden_size": 64, "intermediate_size": 192,
              "num_hidden_layers": 2, "num_attention_heads": 4,
              "vocab_size": 256, "max_position_embeddings": 128}
  })");
  json["halo"] = halo;
  return json;
}

halo::StatusOr<ModelConfig> parse(const Json &json) {
  return parseModelConfigString(json.dump(), "model.json");
}

std::string parseError(const Json &json) {
  halo::StatusOr<ModelConfig> config = parse(json);
  EXPECT_FALSE(config.ok()) << json.dump();
  return config.status().message();
}

/// An error for a one-matmul table {matmul: {operand: scheme, ...}}.
std::string tableError(const Json &matmuls, const char *precision = "fp8") {
  return parseError(withHalo({{"precision", precision}, {"matmuls", matmuls}}));
}

} // namespace

//===----------------------------------------------------------------------===//
// Presets
//===----------------------------------------------------------------------===//

TEST(MatmulTable, Halo0QuantizesEverythingWithoutRotation) {
  // Q(X) Q(W)^T | Q(E) Q(W) | Q(E)^T Q(X)
  MatmulTable expected = table({{N, Tensor},
                                {N, Tensor},
                                {N, Tensor},
                                {N, Tensor},
                                {N, Tensor},
                                {N, Tensor}});
  EXPECT_EQ(presetTable(0, Precision::FP8), expected);
  EXPECT_EQ(presetTable(0, Precision::INT8), expected);
}

TEST(MatmulTable, Halo1RotatesForwardAndReusesRotatedOperands) {
  // Q(XH) Q(WH)^T | [Q(E) Q(WH)] H^T | [Q(E)^T Q(XH)] H^T
  MatmulTable expected = table({{R, Tensor},
                                {R, Tensor},
                                {N, Tensor},
                                {R, Tensor},
                                {N, Tensor},
                                {R, Tensor}});
  EXPECT_EQ(presetTable(1, Precision::FP8), expected);
  EXPECT_EQ(presetTable(1, Precision::INT8), expected);
}

TEST(MatmulTable, Halo2AddsTokenRotationOfTheError) {
  // Q(XH) Q(WH)^T | H_T^T [Q(H_T E) Q(WH)] H^T | [Q(E)^T Q(XH)] H^T
  MatmulTable expected = table({{R, Tensor},
                                {R, Tensor},
                                {L, Tensor},
                                {R, Tensor},
                                {N, Tensor},
                                {R, Tensor}});
  EXPECT_EQ(presetTable(2, Precision::FP8), expected);
  EXPECT_EQ(presetTable(2, Precision::INT8), expected);
  // Named access agrees with the slot order.
  MatmulTable t = presetTable(2, Precision::INT8);
  EXPECT_EQ(t.bwdInput.e.hadamard, L);
  EXPECT_EQ(t.bwdWeight.e.hadamard, N);
  EXPECT_EQ(t.bwdWeight.x.hadamard, R);
}

TEST(MatmulTable, Bf16IsTheUnquantizedBaseline) {
  for (int level = 0; level <= kMaxLevel; ++level)
    EXPECT_EQ(presetTable(level, Precision::BF16), MatmulTable()) << level;
}

TEST(MatmulTable, PresetsAreValid) {
  for (int level = 0; level <= kMaxLevel; ++level)
    for (Precision p : {Precision::FP8, Precision::INT8, Precision::BF16}) {
      halo::Status s = validateMatmulTable(presetTable(level, p), p);
      EXPECT_TRUE(s.ok()) << s.message();
    }
}

TEST(MatmulTable, PresetRotationsOnTheFreeDimensionOrPaired) {
  // Every preset rotation on a reduction dimension has its partner.
  for (int level = 0; level <= kMaxLevel; ++level) {
    MatmulTable t = presetTable(level, Precision::FP8);
    for (size_t i = 0; i < kOperandSlots.size(); ++i) {
      if (schemeAt(t, i).hadamard == kOperandSlots[i].reductionSide) {
        EXPECT_EQ(schemeAt(t, i ^ 1).hadamard,
                  kOperandSlots[i ^ 1].reductionSide)
            << level << " " << i;
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// The "matmuls" section
//===----------------------------------------------------------------------===//

TEST(MatmulTable, CustomTableWithoutLevel) {
  halo::StatusOr<ModelConfig> config = parse(withHalo(Json::parse(R"({
    "precision": "int8",
    "matmuls": {
      "fwd": {"x": {"hadamard": "right", "quant": "row"},
              "w": {"hadamard": "right", "quant": "row"}},
      "bwd_weight": {"e": {"hadamard": "left", "quant": "tensor"},
                     "x": {"hadamard": "left", "quant": "tensor"}}
    }
  })")));
  ASSERT_TRUE(config.ok()) << config.status().message();
  const HaloConfig &h = config->halo;
  EXPECT_FALSE(h.level.has_value());
  EXPECT_FALSE(h.isPreset());
  // Entries not given are unrotated and unquantized.
  EXPECT_EQ(h.matmuls, table({{R, Row},
                              {R, Row},
                              {N, None},
                              {N, None},
                              {L, Tensor},
                              {L, Tensor}}));
  EXPECT_NE(config->describe().find("custom matmul table int8"),
            std::string::npos)
      << config->describe();
}

TEST(MatmulTable, LevelWithTableOverridesPerEntry) {
  halo::StatusOr<ModelConfig> config = parse(withHalo(Json::parse(R"({
    "level": 1, "precision": "fp8",
    "matmuls": {"fwd": {"x": {"quant": "row"}, "w": {"quant": "row"}}}
  })")));
  ASSERT_TRUE(config.ok()) << config.status().message();
  const HaloConfig &h = config->halo;
  EXPECT_EQ(h.level, 1);
  MatmulTable expected = presetTable(1, Precision::FP8);
  expected.fwd.x.quant = Row;
  expected.fwd.w.quant = Row;
  EXPECT_EQ(h.matmuls, expected);
  EXPECT_FALSE(h.isPreset());
  EXPECT_NE(config->describe().find("HALO-1 fp8 with a modified matmul table"),
            std::string::npos)
      << config->describe();
}

TEST(MatmulTable, RotationWithoutQuantizationInBf16) {
  // Exactness experiments: rotations cancel, nothing is quantized.
  halo::StatusOr<ModelConfig> config = parse(withHalo(Json::parse(R"({
    "precision": "bf16",
    "matmuls": {"fwd": {"x": {"hadamard": "right"}, "w": {"hadamard": "right"}}}
  })")));
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->halo.matmuls.fwd.x, (OperandScheme{R, None}));
}

TEST(MatmulTable, StrandedForwardRotation) {
  EXPECT_EQ(tableError({{"fwd", {{"x", {{"hadamard", "right"}}}}}}),
            "model.json: halo.matmuls.fwd.x: Hadamard on the reduction "
            "dimension (m) of x without the same rotation on w strands the "
            "rotation; rotate w \"right\" too or remove it");
  EXPECT_EQ(tableError({{"fwd", {{"w", {{"hadamard", "right"}}}}}}),
            "model.json: halo.matmuls.fwd.w: Hadamard on the reduction "
            "dimension (m) of w without the same rotation on x strands the "
            "rotation; rotate x \"right\" too or remove it");
}

TEST(MatmulTable, StrandedRotationAgainstAFreeSideRotation) {
  EXPECT_EQ(tableError({{"fwd",
                         {{"x", {{"hadamard", "right"}}},
                          {"w", {{"hadamard", "left"}}}}}}),
            "model.json: halo.matmuls.fwd.x: Hadamard on the reduction "
            "dimension (m) of x without the same rotation on w strands the "
            "rotation; rotate w \"right\" (not \"left\") or remove it");
}

TEST(MatmulTable, StrandedBackwardInputRotation) {
  // Reduction n: e's columns, w's rows.
  EXPECT_EQ(tableError({{"bwd_input", {{"e", {{"hadamard", "right"}}}}}}),
            "model.json: halo.matmuls.bwd_input.e: Hadamard on the reduction "
            "dimension (n) of e without the same rotation on w strands the "
            "rotation; rotate w \"left\" too or remove it");
  EXPECT_EQ(tableError({{"bwd_input", {{"w", {{"hadamard", "left"}}}}}}),
            "model.json: halo.matmuls.bwd_input.w: Hadamard on the reduction "
            "dimension (n) of w without the same rotation on e strands the "
            "rotation; rotate e \"right\" too or remove it");
}

TEST(MatmulTable, StrandedBackwardWeightRotation) {
  // Reduction T: the rows of both e and x.
  EXPECT_EQ(tableError({{"bwd_weight",
                         {{"e", {{"hadamard", "left"}}},
                          {"x", {{"hadamard", "right"}}}}}}),
            "model.json: halo.matmuls.bwd_weight.e: Hadamard on the "
            "reduction dimension (T) of e without the same rotation on x "
            "strands the rotation; rotate x \"left\" (not \"right\") or "
            "remove it");
}

TEST(MatmulTable, PairedAndFreeRotationsAreValid) {
  const char *tables[] = {
      // Paired on the reduction dimension.
      R"({"bwd_input": {"e": {"hadamard": "right"}, "w": {"hadamard": "left"}}})",
      R"({"bwd_weight": {"e": {"hadamard": "left"}, "x": {"hadamard": "left"}}})",
      // Free dimensions, undone on the output.
      R"({"fwd": {"x": {"hadamard": "left"}, "w": {"hadamard": "left"}}})",
      R"({"bwd_input": {"e": {"hadamard": "left"}, "w": {"hadamard": "right"}}})",
      R"({"bwd_weight": {"e": {"hadamard": "right"}, "x": {"hadamard": "right"}}})",
  };
  for (const char *matmuls : tables) {
    halo::StatusOr<ModelConfig> config = parse(
        withHalo({{"precision", "fp8"}, {"matmuls", Json::parse(matmuls)}}));
    EXPECT_TRUE(config.ok()) << matmuls << ": " << config.status().message();
  }
}

TEST(MatmulTable, RowQuantOnTheReductionRowsIsRejected) {
  EXPECT_EQ(
      tableError({{"bwd_input",
                   {{"e", {{"quant", "tensor"}}}, {"w", {{"quant", "row"}}}}}}),
      "model.json: halo.matmuls.bwd_input.w.quant: \"row\" quantization "
      "gives each row of w its own scale, but its rows (n) are the reduction "
      "dimension of bwd_input, so the scales cannot be factored out of the "
      "GEMM; use \"tensor\"");
  std::string e = tableError(
      {{"bwd_weight", {{"e", {{"quant", "row"}}}, {"x", {{"quant", "row"}}}}}});
  EXPECT_EQ(e.rfind("model.json: halo.matmuls.bwd_weight.e.quant: \"row\"", 0),
            0u)
      << e;
  std::string x =
      tableError({{"bwd_weight",
                   {{"e", {{"quant", "tensor"}}}, {"x", {{"quant", "row"}}}}}});
  EXPECT_EQ(x.rfind("model.json: halo.matmuls.bwd_weight.x.quant: \"row\"", 0),
            0u)
      << x;
  EXPECT_NE(x.find("its rows (T) are the reduction dimension"),
            std::string::npos)
      << x;
}

TEST(MatmulTable, RowQuantOnFreeRowsIsValid) {
  halo::StatusOr<ModelConfig> config = parse(withHalo(Json::parse(R"({
    "precision": "fp8",
    "matmuls": {"fwd": {"x": {"quant": "row"}, "w": {"quant": "row"}},
                "bwd_input": {"e": {"quant": "row"}, "w": {"quant": "tensor"}}}
  })")));
  EXPECT_TRUE(config.ok()) << config.status().message();
}

TEST(MatmulTable, QuantizationNeedsAn8BitPrecision) {
  EXPECT_EQ(tableError({{"fwd",
                         {{"x", {{"quant", "tensor"}}},
                          {"w", {{"quant", "tensor"}}}}}},
                       "bf16"),
            "model.json: halo.matmuls.fwd.x.quant: \"tensor\" quantization "
            "needs an 8-bit precision, but halo.precision is \"bf16\"; set it "
            "to \"fp8\" or \"int8\" or use quant \"none\"");
}

TEST(MatmulTable, BothOperandsOrNeitherQuantized) {
  EXPECT_EQ(tableError({{"bwd_input", {{"w", {{"quant", "tensor"}}}}}}),
            "model.json: halo.matmuls.bwd_input: w is quantized (\"tensor\") "
            "but e is not; an 8-bit GEMM needs both operands in 8 bits, so "
            "quantize e too or neither");
}

TEST(MatmulTable, OverrideCanBreakAPreset) {
  // HALO-1 with the forward weight unrotated strands x's rotation.
  std::string message = parseError(withHalo(Json::parse(R"({
    "level": 1, "matmuls": {"fwd": {"w": {"hadamard": "none"}}}
  })")));
  EXPECT_EQ(message.rfind("model.json: halo.matmuls.fwd.x: Hadamard on the "
                          "reduction dimension (m)",
                          0),
            0u)
      << message;
}

TEST(MatmulTable, SectionErrors) {
  EXPECT_EQ(tableError({{"fwd", {{"x", {{"hadamard", "both"}}}}}}),
            "model.json: halo.matmuls.fwd.x.hadamard: unknown hadamard side "
            "\"both\"; valid choices are \"none\", \"left\", \"right\"");
  EXPECT_EQ(tableError({{"fwd", {{"x", {{"quant", "col"}}}}}}),
            "model.json: halo.matmuls.fwd.x.quant: unknown quantization "
            "\"col\"; valid choices are \"none\", \"tensor\", \"row\"");
  EXPECT_EQ(tableError({{"fwd", {{"e", Json::object()}}}}),
            "model.json: halo.matmuls.fwd.e: unknown key (valid keys: \"x\", "
            "\"w\")");
  EXPECT_EQ(tableError({{"bwd1", Json::object()}}),
            "model.json: halo.matmuls.bwd1: unknown key (did you mean "
            "\"bwd_input\"?)");
  EXPECT_EQ(tableError({{"fwd", {{"x", "right"}}}}),
            "model.json: halo.matmuls.fwd.x: expected an object, got string "
            "\"right\"");
  EXPECT_EQ(tableError({{"fwd", {{"x", {{"hadamrd", "right"}}}}}}),
            "model.json: halo.matmuls.fwd.x.hadamrd: unknown key (did you "
            "mean \"hadamard\"?)");
  EXPECT_EQ(parseError(withHalo({{"matmuls", Json::array()}})),
            "model.json: halo.matmuls: expected an object, got array []");
}

//===----------------------------------------------------------------------===//
// CLI overrides
//===----------------------------------------------------------------------===//

namespace {
ModelConfig configWith(const Json &halo) {
  halo::StatusOr<ModelConfig> config = parse(withHalo(halo));
  EXPECT_TRUE(config.ok()) << config.status().message();
  return config.ok() ? config.value() : ModelConfig();
}
} // namespace

TEST(ApplyOverrides, LevelReplacesTheTable) {
  ModelConfig config = configWith(Json::parse(R"({
    "precision": "int8",
    "matmuls": {"fwd": {"x": {"quant": "row"}, "w": {"quant": "row"}}}
  })"));
  ASSERT_TRUE(applyOverrides(config, 1, std::nullopt).ok());
  EXPECT_EQ(config.halo.level, 1);
  EXPECT_EQ(config.halo.precision, Precision::INT8);
  EXPECT_EQ(config.halo.matmuls, presetTable(1, Precision::INT8));
}

TEST(ApplyOverrides, LevelAndPrecision) {
  ModelConfig config = configWith({{"level", 2}, {"precision", "fp8"}});
  ASSERT_TRUE(applyOverrides(config, 0, Precision::INT8).ok());
  EXPECT_EQ(config.halo.level, 0);
  EXPECT_EQ(config.halo.precision, Precision::INT8);
  EXPECT_TRUE(config.halo.isPreset());
}

TEST(ApplyOverrides, PrecisionBetween8BitFormatsKeepsTheTable) {
  ModelConfig config = configWith(Json::parse(R"({
    "level": 1, "matmuls": {"fwd": {"x": {"quant": "row"}, "w": {"quant": "row"}}}
  })"));
  MatmulTable before = config.halo.matmuls;
  ASSERT_TRUE(applyOverrides(config, std::nullopt, Precision::INT8).ok());
  EXPECT_EQ(config.halo.precision, Precision::INT8);
  EXPECT_EQ(config.halo.matmuls, before);
}

TEST(ApplyOverrides, Bf16AndBack) {
  ModelConfig config = configWith({{"level", 2}});
  ASSERT_TRUE(applyOverrides(config, std::nullopt, Precision::BF16).ok());
  EXPECT_EQ(config.halo.matmuls, MatmulTable());
  EXPECT_EQ(config.describe().substr(config.describe().rfind("; ") + 2),
            "bf16 (no quantization)");
  ASSERT_TRUE(applyOverrides(config, std::nullopt, Precision::FP8).ok());
  EXPECT_EQ(config.halo.level, 2);
  EXPECT_EQ(config.halo.matmuls, presetTable(2, Precision::FP8));
}

TEST(ApplyOverrides, LeavingBf16NeedsALevel) {
  ModelConfig config = configWith(Json::parse(R"({
    "precision": "bf16",
    "matmuls": {"fwd": {"x": {"hadamard": "right"}, "w": {"hadamard": "right"}}}
  })"));
  config.sourcePath = "model.json";
  halo::Status s = applyOverrides(config, std::nullopt, Precision::INT8);
  EXPECT_EQ(s.message(),
            "--precision int8: model.json gives a custom bf16 halo.matmuls "
            "table without halo.level, so there is no preset to quantize "
            "with; pass --level too or set quant entries in the file");
  EXPECT_TRUE(applyOverrides(config, 2, Precision::INT8).ok());
}

TEST(ApplyOverrides, UnknownLevel) {
  ModelConfig config = configWith({{"level", 2}});
  EXPECT_EQ(applyOverrides(config, 5, std::nullopt).message(),
            "--level 5: unknown level; valid levels are 0, 1, 2");
  EXPECT_EQ(config.halo.level, 2);
}

TEST(ApplyOverrides, ParsePrecision) {
  EXPECT_EQ(parsePrecision("fp8"), Precision::FP8);
  EXPECT_EQ(parsePrecision("int8"), Precision::INT8);
  EXPECT_EQ(parsePrecision("bf16"), Precision::BF16);
  EXPECT_EQ(parsePrecision("fp16"), std::nullopt);
}

//===----------------------------------------------------------------------===//
// Canonical JSON
//===----------------------------------------------------------------------===//

TEST(ToJson, PresetWritesOnlyLevelAndPrecision) {
  Json out = Json::parse(toJson(configWith({{"level", 1}})));
  EXPECT_EQ(out["halo"], Json({{"level", 1}, {"precision", "fp8"}}));
  EXPECT_EQ(out["model"]["head_dim"], 16);
  EXPECT_EQ(out["train"]["seq_len"], 128);
  EXPECT_EQ(out["train"]["betas"], Json({0.9, 0.999}));
}

TEST(ToJson, CustomTablesRoundTrip) {
  const char *halos[] = {
      R"({"precision": "int8", "matmuls": {"bwd_weight": {
          "e": {"hadamard": "left", "quant": "tensor"},
          "x": {"hadamard": "left", "quant": "tensor"}}}})",
      R"({"level": 2, "matmuls": {"fwd": {"x": {"quant": "row"},
                                          "w": {"quant": "row"}}}})",
      R"({"level": 0, "precision": "bf16", "matmuls": {"fwd": {
          "x": {"hadamard": "right"}, "w": {"hadamard": "right"}}}})",
  };
  for (const char *halo : halos) {
    SCOPED_TRACE(halo);
    ModelConfig config = configWith(Json::parse(halo));
    std::string canonical = toJson(config);
    Json out = Json::parse(canonical);
    EXPECT_TRUE(out["halo"].contains("matmuls"));
    EXPECT_EQ(out["halo"].contains("level"), config.halo.level.has_value());
    halo::StatusOr<ModelConfig> again =
        parseModelConfigString(canonical, "canonical.json");
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(again->halo.matmuls, config.halo.matmuls);
    EXPECT_EQ(again->halo.level, config.halo.level);
    EXPECT_EQ(again->halo.precision, config.halo.precision);
    EXPECT_EQ(toJson(*again), canonical);
  }
}

TEST(ToJson, EveryFieldRoundTrips) {
  Json json = withHalo({{"level", 0}, {"precision", "int8"}});
  json["model"].update({{"num_key_value_heads", 2},
                        {"head_dim", 32},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", 500000.0},
                        {"initializer_range", 0.01},
                        {"tie_word_embeddings", true}});
  json["train"] = {
      {"batch_size", 3},      {"seq_len", 100},    {"steps", 77},
      {"lr", 1.5e-4},         {"warmup_steps", 7}, {"schedule", "constant"},
      {"betas", {0.8, 0.95}}, {"eps", 1e-6},       {"weight_decay", 0.05},
      {"grad_clip", 0.0},     {"moment_dtype", "bf16"}, {"master_dtype", "bf16"},
      {"seed", 1234}};
  halo::StatusOr<ModelConfig> parsed = parse(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  std::string canonical = toJson(*parsed);
  Json out = Json::parse(canonical);
  EXPECT_EQ(out["model"]["head_dim"], 32);
  EXPECT_EQ(out["train"], json["train"]);
  halo::StatusOr<ModelConfig> again =
      parseModelConfigString(canonical, "canonical.json");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(toJson(*again), canonical);
  EXPECT_EQ(again->train.seed, 1234u);
  EXPECT_DOUBLE_EQ(again->train.gradClip, 0.0);
  EXPECT_EQ(again->train.schedule, LrSchedule::Constant);
  EXPECT_TRUE(again->model.tieWordEmbeddings);
}
