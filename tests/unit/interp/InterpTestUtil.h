//===- InterpTestUtil.h - Hand-built programs for the tests ----*- C++ -*-===//
//
// FunctionBuilder assembles a Function's manifest JSON value by value, the
// way the compiler's exporter does, so each test states only its ops.
// parse() runs it through the real validator; tensor helpers build inputs.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_TESTS_UNIT_INTERP_INTERPTESTUTIL_H
#define HALO_TESTS_UNIT_INTERP_INTERPTESTUTIL_H

#include "runtime/cpu/Interpreter.h"
#include "runtime/cpu/Program.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace halo::cpu::test {

using json = nlohmann::json;
using Shape = std::vector<int64_t>;

class FunctionBuilder {
public:
  /// Declares a value and returns its id.
  int64_t value(const std::string &type, const Shape &shape) {
    values_.push_back({{"type", type}, {"shape", shape}});
    return int64_t(values_.size()) - 1;
  }
  /// A data input ("tokens", "targets", "step").
  int64_t input(const std::string &name, const std::string &type,
                const Shape &shape) {
    int64_t v = value(type, shape);
    inputs_.push_back({{"value", v}, {"input", name}});
    return v;
  }
  /// A positional input.
  int64_t plainInput(const std::string &type, const Shape &shape) {
    int64_t v = value(type, shape);
    inputs_.push_back({{"value", v}});
    return v;
  }
  /// A parameter state input.
  int64_t param(const std::string &name, const std::string &type,
                const Shape &shape, const std::string &state = "param",
                const std::string &init = "") {
    int64_t v = value(type, shape);
    json entry = {{"value", v}, {"param", name}, {"state", state}};
    if (!init.empty())
      entry["init"] = init;
    inputs_.push_back(entry);
    return v;
  }
  /// Appends an op with fresh result values; returns their ids.
  std::vector<int64_t>
  opN(const std::string &name, const std::vector<int64_t> &operands,
      const std::vector<std::pair<std::string, Shape>> &results,
      const json &attrs = json::object(), const std::string &loc = "") {
    std::vector<int64_t> ids;
    for (const auto &[type, shape] : results)
      ids.push_back(value(type, shape));
    // `{}` at a call site is JSON null; the exporter always writes an object.
    json entry = {{"op", name},
                  {"operands", operands},
                  {"results", ids},
                  {"attrs", attrs.is_null() ? json::object() : attrs}};
    if (!loc.empty())
      entry["loc"] = loc;
    ops_.push_back(entry);
    return ids;
  }
  /// Single-result form of opN.
  int64_t op(const std::string &name, const std::vector<int64_t> &operands,
             const std::string &type, const Shape &shape,
             const json &attrs = json::object(), const std::string &loc = "") {
    return opN(name, operands, {{type, shape}}, attrs, loc)[0];
  }
  /// A positional output.
  void plainOutput(int64_t v) { outputs_.push_back({{"value", v}}); }
  void output(const std::string &name, int64_t v) {
    outputs_.push_back({{"value", v}, {"output", name}});
  }
  void paramOutput(const std::string &name, const std::string &state,
                   int64_t v) {
    outputs_.push_back({{"value", v}, {"param", name}, {"state", state}});
  }

  json build() const {
    return {{"values", values_},
            {"inputs", inputs_},
            {"outputs", outputs_},
            {"ops", ops_}};
  }
  /// Validates the function; fails the test on an error.
  Function parse(const std::string &name = "f") const {
    StatusOr<Function> fn = parseFunction(build().dump(), name, "test.halo");
    EXPECT_TRUE(fn.ok()) << fn.status().message();
    return fn.ok() ? std::move(*fn) : Function();
  }

  json &lastOp() { return ops_.back(); }

private:
  json values_ = json::array(), inputs_ = json::array(),
       outputs_ = json::array(), ops_ = json::array();
};

/// A manifest with a valid tiny model section around `functions`.
inline json manifest(const json &functions) {
  json model = {{"model",
                 {{"hidden_size", 16},
                  {"intermediate_size", 32},
                  {"num_hidden_layers", 1},
                  {"num_attention_heads", 2},
                  {"vocab_size", 32},
                  {"max_position_embeddings", 64}}},
                {"train", {{"batch_size", 2}, {"seq_len", 4}}}};
  return {{"model", model}, {"functions", functions}};
}

template <typename F>
Tensor<F> tensor(ElementType type, const Shape &shape,
                 const std::vector<double> &values) {
  Tensor<F> t = Tensor<F>::zeros(type, shape);
  for (size_t i = 0; i < values.size() && i < t.data.size(); ++i)
    t.data[i] = F(values[i]);
  return t;
}

template <typename F>
Tensor<F> randomTensor(ElementType type, const Shape &shape, unsigned seed,
                       double lo = -1, double hi = 1) {
  Tensor<F> t = Tensor<F>::zeros(type, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (F &x : t.data)
    x = F(dist(rng));
  return t;
}

template <typename F>
Tensor<F> idTensor(const Shape &shape, const std::vector<int32_t> &ids) {
  Tensor<F> t = Tensor<F>::zeros(ElementType::I32, shape);
  t.ints = ids;
  return t;
}

template <typename F> Tensor<F> stepTensor(int32_t step) {
  return idTensor<F>({}, {step});
}

/// Runs `fn` and fails the test on an error.
template <typename F>
std::vector<Tensor<F>> runOk(const Function &fn,
                             const std::vector<Tensor<F>> &inputs,
                             InterpreterOptions options = {}) {
  Interpreter<F> interp(fn, options);
  StatusOr<std::vector<Tensor<F>>> out = interp.run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().message();
  return out.ok() ? std::move(*out) : std::vector<Tensor<F>>();
}

} // namespace halo::cpu::test

#endif // HALO_TESTS_UNIT_INTERP_INTERPTESTUTIL_H
