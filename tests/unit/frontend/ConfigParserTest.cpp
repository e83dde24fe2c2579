//===- ConfigParserTest.cpp - Model file reader: errors and happy paths ---===//
//
// One test per validation rule, asserting the message names the file, the
// dotted key and the reason; every shipped example parses and round-trips
// through toJson; the plain HF config.json form; file and folder handling.
//
//===----------------------------------------------------------------------===//

#include "frontend/config/ModelConfig.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace halo::frontend;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kExamples = std::string(HALO_SOURCE_DIR) + "/examples";

Json baseConfig() {
  return Json::parse(R"({
    "model": {"hidden_size": 64, "intermediate_size": 192,
              "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 256,
              "max_position_embeddings": 128},
    "train": {"batch_size": 8, "seq_len": 64, "steps": 300, "lr": 0.003,
              "warmup_steps": 20},
    "halo": {"level": 2, "precision": "fp8"}
  })");
}

ModelConfig parseOk(const std::string &text) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigString(text, "model.json");
  EXPECT_TRUE(config.ok()) << config.status().message();
  return config.ok() ? config.value() : ModelConfig();
}
ModelConfig parseOk(const Json &json) { return parseOk(json.dump()); }

std::string parseError(const std::string &text) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigString(text, "model.json");
  EXPECT_FALSE(config.ok()) << "expected an error for: " << text;
  return config.status().message();
}

/// The message names the file and the key path, then gives the reason.
void expectError(const Json &json, const std::string &keyPath,
                 const std::string &reason) {
  std::string message = parseError(json.dump());
  std::string prefix = "model.json: " + keyPath + ": ";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
  EXPECT_NE(message.find(reason), std::string::npos) << message;
}

} // namespace

//===----------------------------------------------------------------------===//
// Syntax and structure
//===----------------------------------------------------------------------===//

TEST(ConfigParser, MalformedJsonReportsLineAndColumn) {
  std::string message =
      parseError("{\n  \"model\": {\n    \"hidden_size\": 64,,\n  }\n}\n");
  EXPECT_EQ(message.rfind("model.json:3:23: malformed JSON: ", 0), 0u)
      << message;
  EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;
}

TEST(ConfigParser, TruncatedJson) {
  std::string message = parseError("{\"model\": {\"hidden_size\": 64");
  EXPECT_EQ(message.rfind("model.json:1:", 0), 0u) << message;
  EXPECT_NE(message.find("malformed JSON"), std::string::npos) << message;
}

TEST(ConfigParser, TopLevelNotAnObject) {
  EXPECT_EQ(parseError("[1, 2]"),
            "model.json: top level: expected a JSON object, got array [1,2]");
}

TEST(ConfigParser, DuplicateKey) {
  std::string text = baseConfig().dump();
  text.insert(text.find("\"hidden_size\""), "\"hidden_size\": 32, ");
  std::string message = parseError(text);
  EXPECT_EQ(message.rfind("model.json: model.hidden_size: duplicate key", 0),
            0u)
      << message;
}

TEST(ConfigParser, SectionNotAnObject) {
  Json json = baseConfig();
  json["train"] = Json::array();
  expectError(json, "train", "expected an object, got array []");
}

TEST(ConfigParser, MissingModelSection) {
  Json json = baseConfig();
  json.erase("model");
  expectError(json, "model", "missing required section");
}

TEST(ConfigParser, MissingRequiredKey) {
  for (const char *key :
       {"hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "vocab_size", "max_position_embeddings"}) {
    Json json = baseConfig();
    json["model"].erase(key);
    expectError(json, std::string("model.") + key, "missing required key");
  }
}

//===----------------------------------------------------------------------===//
// Types and ranges
//===----------------------------------------------------------------------===//

TEST(ConfigParser, WrongTypeString) {
  Json json = baseConfig();
  json["model"]["hidden_size"] = "4096";
  expectError(json, "model.hidden_size",
              "expected a positive integer, got string \"4096\"");
}

TEST(ConfigParser, WrongTypeFractional) {
  Json json = baseConfig();
  json["train"]["steps"] = 10.5;
  expectError(json, "train.steps", "expected a positive integer, got 10.5");
}

TEST(ConfigParser, IntegralFloatIsAnInteger) {
  Json json = baseConfig();
  json["model"]["hidden_size"] = 64.0;
  EXPECT_EQ(parseOk(json).model.hiddenSize, 64);
}

TEST(ConfigParser, NonPositiveSizes) {
  for (const char *key :
       {"hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
        "max_position_embeddings"}) {
    Json json = baseConfig();
    json["model"][key] = 0;
    expectError(json, std::string("model.") + key,
                "expected a positive integer, got 0");
    json["model"][key] = -4;
    expectError(json, std::string("model.") + key,
                "expected a positive integer, got -4");
  }
}

TEST(ConfigParser, SizeTooLarge) {
  Json json = baseConfig();
  json["model"]["vocab_size"] = 10000000000LL;
  expectError(json, "model.vocab_size",
              "10000000000 is too large (at most 2147483647)");
}

TEST(ConfigParser, WrongTypeBool) {
  Json json = baseConfig();
  json["model"]["tie_word_embeddings"] = "true";
  expectError(json, "model.tie_word_embeddings",
              "expected true or false, got string \"true\"");
}

TEST(ConfigParser, WrongTypeNumber) {
  Json json = baseConfig();
  json["model"]["rope_theta"] = "1e4";
  expectError(json, "model.rope_theta", "expected a number, got string");
}

TEST(ConfigParser, NonPositiveModelReals) {
  for (const char *key : {"rms_norm_eps", "rope_theta", "initializer_range"}) {
    Json json = baseConfig();
    json["model"][key] = 0.0;
    expectError(json, std::string("model.") + key, "must be positive, got 0");
  }
}

//===----------------------------------------------------------------------===//
// Model shape rules
//===----------------------------------------------------------------------===//

TEST(ConfigParser, HeadsMustDivideHidden) {
  Json json = baseConfig();
  json["model"]["num_attention_heads"] = 6;
  json["model"]["num_key_value_heads"] = 6;
  expectError(json, "model.num_attention_heads",
              "6 does not divide hidden_size 64; set head_dim");
}

TEST(ConfigParser, ExplicitHeadDimNeedNotDivideHidden) {
  Json json = baseConfig();
  json["model"]["num_attention_heads"] = 6;
  json["model"]["num_key_value_heads"] = 3;
  json["model"]["head_dim"] = 16;
  ModelConfig config = parseOk(json);
  EXPECT_EQ(config.model.headDim, 16);
  EXPECT_EQ(config.model.qDim(), 96);
  EXPECT_EQ(config.model.kvDim(), 48);
}

TEST(ConfigParser, KvHeadsMustDivideHeads) {
  Json json = baseConfig();
  json["model"]["num_key_value_heads"] = 3;
  expectError(json, "model.num_key_value_heads",
              "3 does not divide num_attention_heads 4");
}

TEST(ConfigParser, KvHeadsDefaultToHeads) {
  Json json = baseConfig();
  json["model"].erase("num_key_value_heads");
  EXPECT_EQ(parseOk(json).model.numKeyValueHeads, 4);
}

TEST(ConfigParser, OddExplicitHeadDim) {
  Json json = baseConfig();
  json["model"]["head_dim"] = 15;
  expectError(json, "model.head_dim",
              "15 is odd; RoPE rotates pairs of dimensions");
}

TEST(ConfigParser, OddDerivedHeadDim) {
  Json json = baseConfig();
  json["model"]["hidden_size"] = 60;
  expectError(json, "model.num_attention_heads",
              "head_dim = hidden_size / num_attention_heads = 15 is odd");
}

//===----------------------------------------------------------------------===//
// Training rules
//===----------------------------------------------------------------------===//

TEST(ConfigParser, SeqLenExceedsMaxPositions) {
  Json json = baseConfig();
  json["train"]["seq_len"] = 256;
  expectError(json, "train.seq_len",
              "256 exceeds model.max_position_embeddings 128");
}

TEST(ConfigParser, LrMustBePositive) {
  Json json = baseConfig();
  json["train"]["lr"] = 0;
  expectError(json, "train.lr", "must be positive, got 0");
  json["train"]["lr"] = -1e-3;
  expectError(json, "train.lr", "must be positive, got -0.001");
}

TEST(ConfigParser, NegativeWarmup) {
  Json json = baseConfig();
  json["train"]["warmup_steps"] = -1;
  expectError(json, "train.warmup_steps",
              "expected a non-negative integer, got -1");
}

TEST(ConfigParser, WarmupExceedsSteps) {
  Json json = baseConfig();
  json["train"]["warmup_steps"] = 500;
  expectError(json, "train.warmup_steps", "500 exceeds train.steps 300");
}

TEST(ConfigParser, BetasOutOfRange) {
  Json json = baseConfig();
  json["train"]["betas"] = {0.9, 1.0};
  expectError(json, "train.betas[1]", "must be in [0, 1), got 1.0");
  json["train"]["betas"] = {-0.1, 0.99};
  expectError(json, "train.betas[0]", "must be in [0, 1), got -0.1");
}

TEST(ConfigParser, BetasWrongShape) {
  Json json = baseConfig();
  json["train"]["betas"] = {0.9};
  expectError(json, "train.betas",
              "expected an array of two numbers [beta1, beta2], got array "
              "[0.9]");
  json["train"]["betas"] = 0.9;
  expectError(json, "train.betas", "expected an array of two numbers");
}

TEST(ConfigParser, OptimizerRanges) {
  Json json = baseConfig();
  json["train"]["eps"] = 0;
  expectError(json, "train.eps", "must be positive, got 0");
  json = baseConfig();
  json["train"]["weight_decay"] = -0.1;
  expectError(json, "train.weight_decay", "must be non-negative, got -0.1");
  json = baseConfig();
  json["train"]["grad_clip"] = -1;
  expectError(json, "train.grad_clip",
              "must be non-negative (0 disables clipping), got -1");
  json = baseConfig();
  json["train"]["seed"] = -3;
  expectError(json, "train.seed", "expected a non-negative integer, got -3");
}

TEST(ConfigParser, UnknownSchedule) {
  Json json = baseConfig();
  json["train"]["schedule"] = "cosin";
  expectError(json, "train.schedule",
              "unknown schedule \"cosin\" (did you mean \"cosine\"?); valid "
              "choices are \"constant\", \"linear\", \"cosine\"");
  json["train"]["schedule"] = 2;
  expectError(json, "train.schedule",
              "expected one of \"constant\", \"linear\", \"cosine\", got 2");
}

// The two optimizer-state types: bf16 parses, anything else names the key.
TEST(ConfigParser, StateDtypes) {
  struct Case {
    const char *key, *what;
    StateType TrainConfig::*field;
  };
  for (const Case &c : {Case{"moment_dtype", "moment dtype", &TrainConfig::momentDtype},
                        Case{"master_dtype", "master weight dtype", &TrainConfig::masterDtype}}) {
    Json json = baseConfig();
    json["train"][c.key] = "bf16";
    EXPECT_EQ(parseOk(json).train.*c.field, StateType::BF16) << c.key;
    json["train"][c.key] = "fp16";
    expectError(json, std::string("train.") + c.key,
                std::string("unknown ") + c.what + " \"fp16\"; valid choices are \"f32\", \"bf16\"");
  }
}

//===----------------------------------------------------------------------===//
// HALO section
//===----------------------------------------------------------------------===//

TEST(ConfigParser, UnknownLevel) {
  Json json = baseConfig();
  json["halo"]["level"] = 3;
  expectError(json, "halo.level", "unknown level 3; valid levels are 0, 1, 2");
  json["halo"]["level"] = "2";
  expectError(json, "halo.level",
              "expected a level 0, 1 or 2, got string \"2\"");
}

TEST(ConfigParser, UnknownPrecision) {
  Json json = baseConfig();
  json["halo"]["precision"] = "fp16";
  expectError(json, "halo.precision",
              "unknown precision \"fp16\"; valid choices are \"fp8\", "
              "\"int8\", \"bf16\"");
  json["halo"]["precision"] = "INT8";
  expectError(json, "halo.precision", "(did you mean \"int8\"?)");
}

TEST(ConfigParser, HaloLevelAndPrecision) {
  Json json = baseConfig();
  json["halo"] = {{"level", 0}, {"precision", "int8"}};
  ModelConfig config = parseOk(json);
  EXPECT_EQ(config.halo.level, 0);
  EXPECT_EQ(config.halo.precision, Precision::INT8);
  EXPECT_EQ(config.halo.matmuls, presetTable(0, Precision::INT8));
  EXPECT_TRUE(config.halo.isPreset());
}

//===----------------------------------------------------------------------===//
// Unknown keys and did-you-mean
//===----------------------------------------------------------------------===//

TEST(ConfigParser, DidYouMeanEditDistance) {
  Json json = baseConfig();
  json["model"]["hiden_size"] = 64;
  EXPECT_EQ(parseError(json.dump()),
            "model.json: model.hiden_size: unknown key (did you mean "
            "\"hidden_size\"?)");
  json = baseConfig();
  json["halo"]["levle"] = 1;
  expectError(json, "halo.levle", "unknown key (did you mean \"level\"?)");
  json = baseConfig();
  json["train"]["Seq_Len"] = 32;
  expectError(json, "train.Seq_Len", "(did you mean \"seq_len\"?)");
}

TEST(ConfigParser, DidYouMeanTruncatedKey) {
  Json json = baseConfig();
  json["train"]["batch"] = 4;
  expectError(json, "train.batch", "(did you mean \"batch_size\"?)");
}

TEST(ConfigParser, DidYouMeanOtherCodebases) {
  Json json = baseConfig();
  json["model"]["n_layers"] = 2;
  expectError(json, "model.n_layers", "(did you mean \"num_hidden_layers\"?)");
  json = baseConfig();
  json["train"]["learning_rate"] = 1e-3;
  expectError(json, "train.learning_rate", "(did you mean \"lr\"?)");
}

TEST(ConfigParser, KeyInWrongSection) {
  Json json = baseConfig();
  json["hidden_size"] = 64;
  expectError(json, "hidden_size",
              "unknown key (it belongs in the \"model\" section)");
  json = baseConfig();
  json["halo"]["seq_len"] = 64;
  expectError(json, "halo.seq_len",
              "unknown key (it belongs in the \"train\" section)");
}

TEST(ConfigParser, UnknownKeyListsValidKeys) {
  Json json = baseConfig();
  json["halo"]["quantize_everything"] = true;
  expectError(json, "halo.quantize_everything",
              "unknown key (valid keys: \"level\", \"precision\", "
              "\"matmuls\")");
  json = baseConfig();
  json["optimizer"] = Json::object();
  expectError(json, "optimizer",
              "unknown key (valid keys: \"model\", \"train\", \"halo\")");
}

//===----------------------------------------------------------------------===//
// Hugging Face keys and the plain HF form
//===----------------------------------------------------------------------===//

TEST(ConfigParser, HfKeysThatChangeTheMath) {
  struct Case {
    const char *key;
    Json value;
    const char *reason;
  };
  const Case cases[] = {
      {"hidden_act", "gelu",
       "unsupported: hidden_act \"gelu\"; halo "
       "implements LLaMA's SwiGLU MLP"},
      {"attention_bias", true,
       "unsupported: attention_bias true; halo's "
       "linear layers have no bias"},
      {"mlp_bias", true, "unsupported: mlp_bias true"},
      {"rope_scaling",
       {{"rope_type", "llama3"}, {"factor", 8.0}},
       "unsupported: rope_scaling {\"factor\":8.0,\"rope_type\":\"llama3\"}; "
       "halo implements plain RoPE"},
      {"rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", 8.0},
        {"original_max_position_embeddings", 8192}},
       "unsupported: rope_scaling "
       "{\"factor\":8.0,\"original_max_position_embeddings\"...; "
       "halo implements plain RoPE"},
      {"attention_dropout", 0.1, "unsupported: attention_dropout 0.1"},
      {"model_type", "mistral",
       "unsupported: model_type \"mistral\"; halo "
       "implements the LLaMA architecture"},
      {"rope_interleaved", true, "unsupported: rope_interleaved true"},
  };
  for (const Case &c : cases) {
    Json json = baseConfig();
    json["model"][c.key] = c.value;
    expectError(json, std::string("model.") + c.key, c.reason);
  }
}

TEST(ConfigParser, HfKeysWithLlamaValuesAndBookkeepingAreAccepted) {
  Json json = baseConfig();
  json["model"].update(Json::parse(R"({
    "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
    "rope_scaling": null, "attention_dropout": 0.0, "model_type": "llama",
    "architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16",
    "bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": null,
    "pretraining_tp": 1, "transformers_version": "4.45.0", "use_cache": true,
    "_name_or_path": "meta-llama/Meta-Llama-3-8B"
  })"));
  EXPECT_EQ(parseOk(json).model.hiddenSize, 64);
}

TEST(ConfigParser, PlainHfConfigForm) {
  Json json = baseConfig()["model"];
  json["model_type"] = "llama";
  ModelConfig config = parseOk(json);
  EXPECT_EQ(config.model.hiddenSize, 64);
  // train and halo take their defaults; seq_len is capped by the model.
  EXPECT_EQ(config.train.seqLen, 128);
  EXPECT_EQ(config.train.batchSize, TrainConfig().batchSize);
  EXPECT_EQ(config.halo.level, kDefaultLevel);
  EXPECT_EQ(config.halo.precision, kDefaultPrecision);
  EXPECT_TRUE(config.halo.isPreset());
}

TEST(ConfigParser, PlainHfFormErrorsHaveNoSectionPrefix) {
  Json json = baseConfig()["model"];
  json["hidden_act"] = "relu";
  expectError(json, "hidden_act", "unsupported: hidden_act \"relu\"");
  json = baseConfig()["model"];
  json["seq_len"] = 64;
  expectError(json, "seq_len",
              "unknown key (it belongs in the \"train\" section; put the "
              "model fields under \"model\" to add one)");
}

//===----------------------------------------------------------------------===//
// Defaults
//===----------------------------------------------------------------------===//

TEST(ConfigParser, DefaultsWithModelOnly) {
  Json json = {{"model", baseConfig()["model"]}};
  json["model"]["max_position_embeddings"] = 4096;
  ModelConfig config = parseOk(json);
  const ModelShape &m = config.model;
  EXPECT_EQ(m.headDim, 16);
  EXPECT_DOUBLE_EQ(m.rmsNormEps, 1e-6);
  EXPECT_DOUBLE_EQ(m.ropeTheta, 10000.0);
  EXPECT_DOUBLE_EQ(m.initializerRange, 0.02);
  EXPECT_FALSE(m.tieWordEmbeddings);
  const TrainConfig &t = config.train;
  EXPECT_EQ(t.batchSize, 8);
  EXPECT_EQ(t.seqLen, 512);
  EXPECT_EQ(t.steps, 1000);
  EXPECT_DOUBLE_EQ(t.lr, 3e-4);
  EXPECT_EQ(t.warmupSteps, 0);
  EXPECT_EQ(t.schedule, LrSchedule::Linear);
  EXPECT_DOUBLE_EQ(t.beta1, 0.9);
  EXPECT_DOUBLE_EQ(t.beta2, 0.999);
  EXPECT_DOUBLE_EQ(t.eps, 1e-8);
  EXPECT_DOUBLE_EQ(t.weightDecay, 0.0);
  EXPECT_DOUBLE_EQ(t.gradClip, 1.0);
  EXPECT_EQ(t.momentDtype, StateType::F32);
  EXPECT_EQ(t.masterDtype, StateType::F32);
  EXPECT_EQ(t.seed, 0u);
  EXPECT_EQ(config.halo.level, 2);
  EXPECT_EQ(config.halo.precision, Precision::FP8);
  EXPECT_EQ(config.halo.matmuls, presetTable(2, Precision::FP8));
}

TEST(ConfigParser, NullMeansDefault) {
  Json json = baseConfig();
  json["model"]["head_dim"] = nullptr;
  json["train"]["schedule"] = nullptr;
  ModelConfig config = parseOk(json);
  EXPECT_EQ(config.model.headDim, 16);
  EXPECT_EQ(config.train.schedule, LrSchedule::Linear);
}

//===----------------------------------------------------------------------===//
// Files, folders and the shipped examples
//===----------------------------------------------------------------------===//

TEST(ConfigParser, FileNotFound) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigFile("/nonexistent/model.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "/nonexistent/model.json: cannot read the model file: No such "
            "file or directory");
}

TEST(ConfigParser, FolderWithoutConfigJson) {
  halo::StatusOr<ModelConfig> config = parseModelConfigFile(HALO_SOURCE_DIR);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("is a directory without a "
                                           "config.json"),
            std::string::npos)
      << config.status().message();
}

TEST(ConfigParser, CheckpointFolderReadsConfigJson) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigFile(kExamples + "/hf-config");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->sourcePath, kExamples + "/hf-config/config.json");
  EXPECT_EQ(config->model.hiddenSize, 576);
}

TEST(ConfigParser, ErrorsInFilesNameThePath) {
  fs::path file = fs::temp_directory_path() / "halo-frontend-bad-model.json";
  {
    std::ofstream out(file);
    out << R"({"model": {"hidden_size": "64"}})";
  }
  halo::StatusOr<ModelConfig> config = parseModelConfigFile(file.string());
  fs::remove(file);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            file.string() + ": model.hidden_size: expected a positive "
                            "integer, got string \"64\"");
}

// Every dimension a HALO preset rotates must have a Hadamard of that order:
// 2^k, or K * 2^k for the K of halo-method.md section 2.
static bool hasHadamard(int64_t n) {
  for (int64_t k : {1, 12, 20, 28, 36, 40, 44, 52, 60, 100, 108, 140, 156, 172})
    if (n % k == 0 && ((n / k) & (n / k - 1)) == 0)
      return true;
  return false;
}

TEST(ConfigParser, AllExamplesParse) {
  std::vector<std::string> files = {kExamples + "/hf-config/config.json"};
  for (const fs::directory_entry &entry : fs::directory_iterator(kExamples))
    if (entry.path().extension() == ".json")
      files.push_back(entry.path().string());
  ASSERT_GE(files.size(), 4u);
  for (const std::string &file : files) {
    SCOPED_TRACE(file);
    halo::StatusOr<ModelConfig> config = parseModelConfigFile(file);
    ASSERT_TRUE(config.ok()) << config.status().message();
    const ModelShape &m = config->model;
    EXPECT_TRUE(hasHadamard(m.hiddenSize)) << m.hiddenSize;
    EXPECT_TRUE(hasHadamard(m.intermediateSize)) << m.intermediateSize;
    EXPECT_TRUE(hasHadamard(m.qDim())) << m.qDim();
    EXPECT_TRUE(hasHadamard(config->train.tokensPerStep()))
        << config->train.tokensPerStep();
    // The canonical form parses back to the same configuration.
    std::string canonical = toJson(*config);
    ModelConfig again = parseOk(canonical);
    EXPECT_EQ(toJson(again), canonical);
    EXPECT_EQ(again.describe(), config->describe());
  }
}

TEST(ConfigParser, TinyExample) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigFile(kExamples + "/tiny.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->model.vocabSize, 256);
  EXPECT_EQ(config->model.intermediateSize, 192);
  EXPECT_EQ(config->model.kvDim(), 32);
  EXPECT_EQ(config->model.paramCount(), 115008);
  EXPECT_EQ(config->train.schedule, LrSchedule::Cosine);
  EXPECT_EQ(config->train.tokensPerStep(), 512);
}

TEST(ConfigParser, Llama3_8BExample) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigFile(kExamples + "/llama-3-8b.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  const ModelShape &m = config->model;
  EXPECT_EQ(m.headDim, 128);
  EXPECT_EQ(m.kvDim(), 1024);
  EXPECT_DOUBLE_EQ(m.ropeTheta, 500000.0);
  EXPECT_DOUBLE_EQ(m.rmsNormEps, 1e-5);
  EXPECT_EQ(m.paramCount(), 8030261248LL);
  EXPECT_EQ(config->halo.level, 2);
  EXPECT_EQ(config->halo.precision, Precision::FP8);
  EXPECT_EQ(config->describe(),
            "8.03B params: hidden 4096, ffn 14336, 32 layers, 32 heads (8 kv, "
            "head_dim 128), vocab 128256; train batch 4 x seq 2048, 1869 "
            "steps, lr 6e-06 linear; HALO-2 fp8");
}

TEST(ConfigParser, Llama125MExample) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigFile(kExamples + "/llama-125m.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->model.paramCount(), 124668672);
}

TEST(ConfigParser, HfConfigExampleIsSmolLM2Shaped) {
  halo::StatusOr<ModelConfig> config =
      parseModelConfigFile(kExamples + "/hf-config/config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  const ModelShape &m = config->model;
  EXPECT_EQ(m.headDim, 64);
  EXPECT_EQ(m.kvDim(), 192);
  EXPECT_TRUE(m.tieWordEmbeddings);
  EXPECT_DOUBLE_EQ(m.initializerRange, 0.041666666666666664);
  EXPECT_EQ(m.paramCount(), 134515008);
  EXPECT_EQ(config->train.seqLen, 512);
}
