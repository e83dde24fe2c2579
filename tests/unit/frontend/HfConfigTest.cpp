//===- HfConfigTest.cpp - toHfConfigJson: HF config.json writer -----------===//
//
// Writing a model's shapes as an HF config.json and parsing the text back
// (the plain HF form) must give the same ModelShape, for every shipped
// example and for the corners the writer must spell out: an explicit head_dim
// that is not hidden/heads, tied embeddings, non-default eps/theta/range.
//
//===----------------------------------------------------------------------===//

#include "frontend/config/ModelConfig.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace halo::frontend;
using Json = nlohmann::json;

namespace {

const std::string kExamples = std::string(HALO_SOURCE_DIR) + "/examples";

void expectSameShape(const ModelShape &a, const ModelShape &b) {
  EXPECT_EQ(a.hiddenSize, b.hiddenSize);
  EXPECT_EQ(a.intermediateSize, b.intermediateSize);
  EXPECT_EQ(a.numHiddenLayers, b.numHiddenLayers);
  EXPECT_EQ(a.numAttentionHeads, b.numAttentionHeads);
  EXPECT_EQ(a.numKeyValueHeads, b.numKeyValueHeads);
  EXPECT_EQ(a.headDim, b.headDim);
  EXPECT_EQ(a.vocabSize, b.vocabSize);
  EXPECT_EQ(a.maxPositionEmbeddings, b.maxPositionEmbeddings);
  // Doubles are written with round-trip precision: exact equality.
  EXPECT_EQ(a.rmsNormEps, b.rmsNormEps);
  EXPECT_EQ(a.ropeTheta, b.ropeTheta);
  EXPECT_EQ(a.initializerRange, b.initializerRange);
  EXPECT_EQ(a.tieWordEmbeddings, b.tieWordEmbeddings);
}

ModelConfig reparse(const ModelConfig &config) {
  halo::StatusOr<ModelConfig> back =
      parseModelConfigString(toHfConfigJson(config), "config.json");
  EXPECT_TRUE(back.ok()) << back.status().message();
  return back.ok() ? back.value() : ModelConfig();
}

TEST(HfConfig, ExamplesRoundTrip) {
  for (const char *name : {"tiny.json", "llama-125m.json", "llama-3-8b.json",
                           "hf-config/config.json"}) {
    SCOPED_TRACE(name);
    halo::StatusOr<ModelConfig> config =
        parseModelConfigFile(kExamples + "/" + name);
    ASSERT_TRUE(config.ok()) << config.status().message();
    expectSameShape(reparse(*config).model, config->model);
  }
}

TEST(HfConfig, SpellsOutTheArchitecture) {
  ModelConfig config;
  config.model = {64, 192, 2, 4, 2, 16, 256, 128};
  Json hf = Json::parse(toHfConfigJson(config));
  EXPECT_EQ(hf["model_type"], "llama");
  EXPECT_EQ(hf["architectures"], Json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(hf["torch_dtype"], "float32");
  EXPECT_EQ(hf["hidden_act"], "silu");
  EXPECT_EQ(hf["attention_bias"], false);
  EXPECT_EQ(hf["mlp_bias"], false);
  EXPECT_EQ(hf["head_dim"], 16);
  EXPECT_FALSE(hf.contains("train"));
  EXPECT_FALSE(hf.contains("halo"));
}

TEST(HfConfig, CornersRoundTrip) {
  ModelConfig config;
  ModelShape &m = config.model;
  m = {96, 256, 3, 4, 1, 32, 1000, 64};
  // head_dim 32 != 96 / 4: transformers must not derive it.
  m.rmsNormEps = 1e-5;
  m.ropeTheta = 500000.0;
  m.initializerRange = 0.041666666666666664;
  m.tieWordEmbeddings = true;
  expectSameShape(reparse(config).model, m);
}

} // namespace
