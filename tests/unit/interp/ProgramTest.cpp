//===- ProgramTest.cpp - Program file round trip and every load error -----===//
//
// Files are written with writeProgram (or byte by byte for broken headers)
// into a per-test temp directory. Each validation error must name the file,
// the function, the op index, the op name and its loc where there is one.
//
//===----------------------------------------------------------------------===//
#include "InterpTestUtil.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace halo::cpu::test {
namespace {

namespace fs = std::filesystem;

class ProgramTest : public ::testing::Test {
protected:
  void SetUp() override {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("halo-interp-") + info->name() + "-" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string &name) const {
    return (dir_ / name).string();
  }

  void writeBytes(const std::string &p, const std::string &bytes) {
    std::ofstream(p, std::ios::binary) << bytes;
  }

  /// A valid train_step: loss = cross_entropy(linear(x, w), targets).
  static FunctionBuilder trainStep() {
    FunctionBuilder b;
    int64_t tok = b.input("tokens", "i32", {8});
    int64_t tgt = b.input("targets", "i32", {8});
    b.input("step", "i32", {});
    int64_t e = b.param("model.embed_tokens.weight", "f32", {32, 16}, "param",
                        "normal");
    int64_t h =
        b.op("embedding", {tok, e}, "f32", {8, 16}, {}, "model.embed_tokens");
    int64_t logits = b.op("linear", {h, e}, "f32", {8, 32},
                          {{"layer", "lm_head"}}, "lm_head");
    b.output("loss",
             b.op("cross_entropy", {logits, tgt}, "f32", {}, {}, "loss"));
    return b;
  }

  /// The error message of loading `fn` as train_step of a program file.
  std::string loadError(const json &fn) {
    std::string p = path("p.halo");
    Status s = writeProgram(p, manifest({{"train_step", fn}}).dump());
    EXPECT_TRUE(s.ok()) << s.message();
    StatusOr<Program> prog = readProgram(p);
    EXPECT_FALSE(prog.ok());
    return prog.ok() ? std::string() : prog.status().message();
  }

  fs::path dir_;
};

#define EXPECT_CONTAINS(haystack, needle)                                      \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "message: " << (haystack)

TEST_F(ProgramTest, RoundTrip) {
  json fns = {{"train_step", trainStep().build()}};
  std::string p = path("ok.halo");
  ASSERT_TRUE(writeProgram(p, manifest(fns).dump()).ok());
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  StatusOr<Program> prog = readProgram(p);
  ASSERT_TRUE(prog.ok()) << prog.status().message();
  EXPECT_EQ(prog->path, p);
  const Function *fn = prog->find("train_step");
  ASSERT_NE(fn, nullptr);
  EXPECT_EQ(prog->find("forward"), nullptr);
  EXPECT_EQ(fn->ops.size(), 3u);
  EXPECT_EQ(fn->ops[1].kind, OpKind::Linear);
  EXPECT_EQ(fn->ops[1].loc, "lm_head");
  EXPECT_EQ(fn->ops[1].attrs.layer, "lm_head");
  EXPECT_EQ(fn->inputs[3].param, "model.embed_tokens.weight");
  EXPECT_EQ(fn->inputs[3].init, "normal");
  EXPECT_EQ(fn->findInput("step"), 2);
  EXPECT_EQ(fn->findParamInput("model.embed_tokens.weight", "param"), 3);
  EXPECT_EQ(fn->findOutput("loss"), 0);
  EXPECT_EQ(json::parse(prog->modelJson), manifest(fns)["model"]);
}

TEST_F(ProgramTest, OpNamesFollowTheEnum) {
  EXPECT_EQ(toString(OpKind::Constant), "constant");
  EXPECT_EQ(toString(OpKind::AttentionGrad), "attention_grad");
  EXPECT_EQ(toString(OpKind::QMatmul), "qmatmul");
}

TEST_F(ProgramTest, HeaderErrors) {
  std::string manifestText =
      manifest({{"train_step", trainStep().build()}}).dump();
  std::string good = path("good.halo");
  ASSERT_TRUE(writeProgram(good, manifestText).ok());
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), 20 + manifestText.size());
  EXPECT_EQ(bytes.substr(0, 8), "HALOPROG");

  auto errorOf = [&](const std::string &content) {
    std::string p = path("bad.halo");
    writeBytes(p, content);
    StatusOr<Program> prog = readProgram(p);
    EXPECT_FALSE(prog.ok());
    return prog.ok() ? std::string() : prog.status().message();
  };
  std::string badMagic = bytes;
  badMagic[0] = 'X';
  std::string msg = errorOf(badMagic);
  EXPECT_CONTAINS(msg, "not a halo program");
  EXPECT_CONTAINS(msg, "recompile with haloc");
  EXPECT_CONTAINS(errorOf("HALO"), "not a halo program");

  std::string v1 = bytes; // version 1 had no schedule or cuda section
  v1[8] = 1;
  msg = errorOf(v1);
  EXPECT_CONTAINS(msg, "unsupported format version 1");
  EXPECT_CONTAINS(msg, "recompile with haloc");

  msg = errorOf(bytes.substr(0, bytes.size() - 5));
  EXPECT_CONTAINS(msg, "truncated file");
  msg = errorOf(bytes + "xx");
  EXPECT_CONTAINS(msg, "trailing bytes");

  std::string broken =
      bytes.substr(0, 20) + std::string(manifestText.size(), '{');
  EXPECT_CONTAINS(errorOf(broken), "malformed manifest JSON");

  StatusOr<Program> missing = readProgram(path("nope.halo"));
  ASSERT_FALSE(missing.ok());
  EXPECT_CONTAINS(missing.status().message(), "cannot open the program file");
}

TEST_F(ProgramTest, ManifestErrors) {
  auto errorOf = [&](const json &m) {
    std::string p = path("m.halo");
    EXPECT_TRUE(writeProgram(p, m.dump()).ok());
    StatusOr<Program> prog = readProgram(p);
    EXPECT_FALSE(prog.ok());
    return prog.ok() ? std::string() : prog.status().message();
  };
  json ok = manifest({{"train_step", trainStep().build()}});
  json extra = ok;
  extra["kernels"] = json::array();
  EXPECT_CONTAINS(errorOf(extra), "unknown key \"kernels\"");
  json noStep = manifest({{"forward", trainStep().build()}});
  EXPECT_CONTAINS(errorOf(noStep), "no \"train_step\" function");
  json other = manifest(
      {{"train_step", trainStep().build()}, {"eval", trainStep().build()}});
  EXPECT_CONTAINS(errorOf(other), "unknown key \"eval\"");
  FunctionBuilder noLoss;
  noLoss.plainOutput(noLoss.plainInput("f32", {2}));
  EXPECT_CONTAINS(errorOf(manifest({{"train_step", noLoss.build()}})),
                  "train_step: no \"loss\" output");
}

TEST_F(ProgramTest, UnknownOp) {
  json fn = trainStep().build();
  fn["ops"][1]["op"] = "linearr";
  std::string msg = loadError(fn);
  EXPECT_CONTAINS(msg,
                  "p.halo: train_step: op #1 'linearr' (lm_head): unknown op");
  EXPECT_CONTAINS(msg, "known ops: constant, embedding");
}

TEST_F(ProgramTest, UnknownAttributeAndWrongKind) {
  json fn = trainStep().build();
  fn["ops"][1]["attrs"]["bias"] = true;
  std::string msg = loadError(fn);
  EXPECT_CONTAINS(msg, "op #1 'linear' (lm_head): unknown attribute 'bias'");
  EXPECT_CONTAINS(msg, "this op takes: layer");

  fn = trainStep().build();
  fn["ops"][1]["attrs"]["layer"] = 3;
  EXPECT_CONTAINS(loadError(fn),
                  "attribute 'layer' is integer 3, expected a string");
}

TEST_F(ProgramTest, MissingAndBadAttributes) {
  FunctionBuilder b = trainStep();
  int64_t x = b.plainInput("f32", {4, 8});
  int64_t w = b.plainInput("f32", {8});
  b.op("rms_norm", {x, w}, "f32", {4, 8}, {}, "model.norm");
  EXPECT_CONTAINS(loadError(b.build()),
                  "op #3 'rms_norm' (model.norm): missing attribute 'eps'");

  b.lastOp()["attrs"] = {{"eps", "small"}};
  EXPECT_CONTAINS(loadError(b.build()),
                  "attribute 'eps' is string \"small\", expected a number");

  FunctionBuilder h = trainStep();
  int64_t y = h.plainInput("f32", {4, 8});
  h.op("hadamard", {y}, "f32", {4, 8}, {{"side", "top"}});
  EXPECT_CONTAINS(loadError(h.build()), "attribute 'side' is string \"top\", "
                                        "expected one of \"right\", \"left\"");
}

TEST_F(ProgramTest, OperandAndResultCounts) {
  json fn = trainStep().build();
  fn["ops"][2]["operands"].push_back(0);
  EXPECT_CONTAINS(loadError(fn),
                  "op #2 'cross_entropy' (loss): has 3 operands, expected 2");
  fn = trainStep().build();
  fn["ops"][0]["results"] = json::array();
  EXPECT_CONTAINS(loadError(fn), "has 0 results, expected 1");
  FunctionBuilder b = trainStep();
  b.opN("global_norm", {}, {{"f32", {}}});
  EXPECT_CONTAINS(loadError(b.build()), "has 0 operands, expected at least 1");
  // A GEMM takes an optional accumulator, nothing more.
  FunctionBuilder m = trainStep();
  int64_t a = m.plainInput("f32", {4, 3});
  m.op("matmul", {a, a, a, a}, "f32", {4, 3});
  EXPECT_CONTAINS(loadError(m.build()), "has 4 operands, expected 2 to 3");
}

TEST_F(ProgramTest, GemmAccumulatorShapeAndType) {
  // matmul [4, 3] x [3, 5] -> [4, 5] of `type` with an accumulator of accType / accShape.
  auto accumulatorError = [&](const char *type, const char *accType, Shape accShape) {
    FunctionBuilder m = trainStep();
    int64_t a = m.plainInput(type, {4, 3});
    int64_t c = m.plainInput(type, {3, 5});
    int64_t acc = m.plainInput(accType, accShape);
    m.op("matmul", {a, c, acc}, type, {4, 5});
    return std::string(loadError(m.build()));
  };
  EXPECT_CONTAINS(accumulatorError("f32", "f32", {5, 4}),
                  "expected [4, 5] (the accumulator is [M, N]");
  EXPECT_CONTAINS(accumulatorError("bf16", "f32", {4, 5}),
                  "the accumulator is f32 but the result is bf16");

  FunctionBuilder q = trainStep();
  int64_t qa = q.plainInput("i8", {4, 8});
  int64_t qs = q.plainInput("f32", {});
  int64_t ids = q.plainInput("i32", {4, 2});
  q.op("qmatmul", {qa, qs, qa, qs, ids}, "f32", {4, 4}, {{"transpose_b", true}});
  EXPECT_CONTAINS(loadError(q.build()), "operand 4 (value 9) is i32, expected bf16 or f32");
}

TEST_F(ProgramTest, ShapeMismatch) {
  FunctionBuilder b = trainStep();
  int64_t x = b.plainInput("bf16", {4, 64});
  int64_t w = b.plainInput("bf16", {32});
  b.op("rms_norm", {x, w}, "bf16", {4, 64}, {{"eps", 1e-5}},
       "model.layers.0.input_layernorm");
  EXPECT_CONTAINS(
      loadError(b.build()),
      "train_step: op #3 'rms_norm' (model.layers.0.input_layernorm): "
      "operand 1 (value 8) has shape [32], expected [64] (x's last "
      "dimension)");

  FunctionBuilder m = trainStep();
  int64_t a = m.plainInput("f32", {4, 3});
  int64_t c = m.plainInput("f32", {4, 5});
  m.op("matmul", {a, c}, "f32", {4, 5});
  EXPECT_CONTAINS(loadError(m.build()), "reduction dimensions differ");

  FunctionBuilder q = trainStep();
  int64_t qa = q.plainInput("i8", {4, 8});
  int64_t sa = q.plainInput("f32", {8});
  int64_t qb = q.plainInput("i8", {8, 2});
  int64_t sb = q.plainInput("f32", {});
  q.op("qmatmul", {qa, sa, qb, sb}, "f32", {4, 2});
  EXPECT_CONTAINS(loadError(q.build()),
                  "operand 1 (value 8) has shape [8], expected [4] (scale_a");

  FunctionBuilder r = trainStep();
  int64_t xr = r.plainInput("f32", {4, 6});
  r.opN("quantize", {xr}, {{"f8E4M3FN", {4, 6}}, {"f32", {4}}},
        {{"granularity", "col"}});
  EXPECT_CONTAINS(
      loadError(r.build()),
      "result 1 (value 9) has shape [4], expected [6] (granularity col");
}

TEST_F(ProgramTest, TypeErrors) {
  json fn = trainStep().build();
  fn["values"][0]["type"] = "f16";
  EXPECT_CONTAINS(loadError(fn), "values[0]: unknown type string \"f16\"");

  FunctionBuilder b = trainStep();
  int64_t qa = b.plainInput("i8", {4, 8});
  int64_t sa = b.plainInput("f32", {});
  int64_t qb = b.plainInput("f8E4M3FN", {8, 2});
  b.op("qmatmul", {qa, sa, qb, sa}, "f32", {4, 2});
  EXPECT_CONTAINS(loadError(b.build()), "both must be f8E4M3FN or both i8");

  FunctionBuilder e = trainStep();
  int64_t ids = e.plainInput("f32", {4});
  int64_t t = e.plainInput("f32", {8, 2});
  e.op("embedding", {ids, t}, "f32", {4, 2});
  EXPECT_CONTAINS(loadError(e.build()),
                  "operand 0 (value 7) is f32, expected i32");

  json badTokens = trainStep().build();
  badTokens["values"][0]["type"] = "f32";
  EXPECT_CONTAINS(loadError(badTokens),
                  "input \"tokens\" (value 0) is f32 [8], expected i32 [T]");
}

TEST_F(ProgramTest, ValueIdErrors) {
  json fn = trainStep().build();
  fn["ops"][1]["operands"][0] = 99;
  EXPECT_CONTAINS(
      loadError(fn),
      "op #1 'linear' (lm_head): operands[0]: value id 99 is out of "
      "range (the function has 7 values)");

  fn = trainStep().build();
  fn["ops"][0]["operands"][1] = 5; // op #1's result
  EXPECT_CONTAINS(loadError(fn),
                  "operand 1 (value 5) is used before it is defined");

  fn = trainStep().build();
  fn["ops"][1]["results"][0] = 4; // op #0's result
  EXPECT_CONTAINS(loadError(fn), "result 0 (value 4) is already defined");

  fn = trainStep().build();
  fn["values"].push_back({{"type", "f32"}, {"shape", {2}}});
  EXPECT_CONTAINS(loadError(fn),
                  "value 7 is neither an input nor an op result");

  fn = trainStep().build();
  fn["outputs"][0]["value"] = -1;
  EXPECT_CONTAINS(loadError(fn), "outputs[0]: value id -1 is out of range");

  fn = trainStep().build();
  fn["values"][4]["shape"] = {8, 0};
  EXPECT_CONTAINS(loadError(fn), "values[4]: shape [8,0] has a dimension that "
                                 "is not a positive integer");
}

TEST_F(ProgramTest, BindingErrors) {
  json fn = trainStep().build();
  fn["inputs"][3]["state"] = "momentum";
  EXPECT_CONTAINS(loadError(fn), "unknown state \"momentum\"");
  fn = trainStep().build();
  fn["inputs"][0]["input"] = "ids";
  EXPECT_CONTAINS(loadError(fn),
                  "unknown input \"ids\" (expected tokens, targets, step)");
  fn = trainStep().build();
  fn["inputs"][3]["init"] = "xavier";
  EXPECT_CONTAINS(loadError(fn), "unknown init \"xavier\"");
  fn = trainStep().build();
  fn["inputs"][0]["color"] = "red";
  EXPECT_CONTAINS(loadError(fn), "inputs[0]: unknown key \"color\"");
  // An updated state needs an input of the same (param, state).
  FunctionBuilder b = trainStep();
  b.paramOutput("model.norm.weight", "param", 4);
  EXPECT_CONTAINS(
      loadError(b.build()),
      "output state \"param\" of \"model.norm.weight\" has no matching input");
  // A compute copy is derived from a "param" input of its shape.
  b = trainStep();
  b.param("model.norm.weight", "bf16", {16}, "compute");
  EXPECT_CONTAINS(loadError(b.build()), "input state \"compute\" of \"model.norm.weight\" "
                                        "has no \"param\" input of its shape");
  b = trainStep();
  b.param("model.embed_tokens.weight", "bf16", {16, 32}, "compute");
  EXPECT_CONTAINS(loadError(b.build()),
                  "input state \"compute\" of \"model.embed_tokens.weight\"");
}

TEST_F(ProgramTest, HadamardSizeWithoutMatrix) {
  FunctionBuilder b = trainStep();
  int64_t x = b.plainInput("f32", {4, 14});
  b.op("hadamard", {x}, "f32", {4, 14}, {{"side", "right"}},
       "model.layers.0.mlp");
  std::string msg = loadError(b.build());
  EXPECT_CONTAINS(msg, "op #3 'hadamard' (model.layers.0.mlp): no Hadamard "
                       "matrix of size 14 (the column dimension of [4, 14])");
}

TEST_F(ProgramTest, ParseFunctionAcceptsPositionalBindings) {
  FunctionBuilder b;
  int64_t x = b.plainInput("f32", {2});
  b.plainOutput(b.op("silu", {x}, "f32", {2}));
  StatusOr<Function> fn = parseFunction(b.build().dump(), "g", "test");
  ASSERT_TRUE(fn.ok()) << fn.status().message();
  EXPECT_TRUE(fn->inputs[0].name.empty());
  EXPECT_FALSE(fn->inputs[0].isParam());
}

} // namespace
} // namespace halo::cpu::test
