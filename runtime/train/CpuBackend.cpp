//===- CpuBackend.cpp - Training steps on the CPU interpreter ------------===//
#include "runtime/cpu/ThreadPool.h"
#include "runtime/train/Backend.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>

namespace halo::train {
namespace {

class CpuBackend : public Backend {
public:
  CpuBackend(const cpu::Program &program, BackendOptions options)
      : step_(*program.find("train_step"), cpu::InterpreterOptions{options.exact}) {
    const cpu::Function &fn = step_.function();
    for (const cpu::Binding &b : fn.inputs)
      inputs_.push_back(Tensor::zeros(fn.values[b.value].type, fn.values[b.value].shape));
    for (const cpu::Binding &out : fn.outputs)
      feedback_.push_back(out.isParam() ? fn.findParamInput(out.param, out.state) : -1);
    if (options.evaluate)
      if (const cpu::Function *fwd = program.find("forward"))
        forward_.emplace(*fwd, cpu::InterpreterOptions{options.exact});
  }

  std::string describe() const override {
    return fmt::format("cpu, {} threads", cpu::numThreads());
  }

  Status upload(const std::vector<Tensor> &state) override {
    for (size_t i = 0; i < inputs_.size(); ++i)
      if (step_.function().inputs[i].isParam())
        inputs_[i] = state[i];
    return Status::success();
  }

  Status download(std::vector<Tensor> &state) override {
    for (size_t i = 0; i < inputs_.size(); ++i)
      if (step_.function().inputs[i].isParam())
        state[i] = inputs_[i];
    return Status::success();
  }

  Status step(int64_t s, const std::vector<int32_t> &tokens,
              const std::vector<int32_t> &targets) override {
    const cpu::Function &fn = step_.function();
    inputs_[fn.findInput("tokens")].ints = tokens;
    inputs_[fn.findInput("targets")].ints = targets;
    inputs_[fn.findInput("step")].ints[0] = int32_t(s);
    StatusOr<std::vector<Tensor>> outs = step_.run(inputs_);
    if (!outs.ok())
      return Status::error(fmt::format("step {}: {}", s, outs.status().message()));
    last_ = {scalar(*outs, "loss"), scalar(*outs, "lr"), scalar(*outs, "grad_norm")};
    if (!std::isfinite(last_.loss) || !std::isfinite(last_.gradNorm)) {
      // The program's AdamW skipped the update (clip_coef is NaN).
      if (guard_.skippedSteps++ == 0)
        guard_.firstBadStep = int(s);
      guard_.lastBadStep = int(s);
    }
    lastOutputs_ = std::move(*outs);
    for (size_t k = 0; k < feedback_.size(); ++k)
      if (feedback_[k] >= 0)
        inputs_[feedback_[k]] = lastOutputs_[k];
    return Status::success();
  }

  StatusOr<std::vector<Tensor>> outputs() override { return lastOutputs_; }

  StatusOr<StepMetrics> metrics() override { return last_; }

  StatusOr<GuardStatus> guard() override {
    GuardStatus g = guard_;
    guard_ = {};
    return g;
  }

  StatusOr<double> evalLoss(const std::vector<int32_t> &tokens,
                            const std::vector<int32_t> &targets) override {
    const cpu::Function &fn = step_.function(), &fwd = forward_->function();
    std::vector<Tensor> in(fwd.inputs.size());
    for (size_t i = 0; i < fwd.inputs.size(); ++i) {
      const cpu::Binding &b = fwd.inputs[i];
      const cpu::ValueInfo &info = fwd.values[b.value];
      if (b.isParam()) {
        // The interpreter rounds bf16 inputs, which makes the compute copies.
        in[i].type = info.type;
        in[i].shape = info.shape;
        in[i].data = inputs_[fn.findParamInput(b.param, "param")].data;
      } else {
        in[i] = Tensor::zeros(info.type, info.shape);
      }
    }
    in[fwd.findInput("tokens")].ints = tokens;
    in[fwd.findInput("targets")].ints = targets;
    StatusOr<std::vector<Tensor>> outs = forward_->run(in);
    if (!outs.ok())
      return outs.status();
    return double((*outs)[fwd.findOutput("loss")].data[0]);
  }

private:
  float scalar(const std::vector<Tensor> &outs, const char *name) const {
    int64_t k = step_.function().findOutput(name);
    return k < 0 ? 0.0f : outs[k].data[0];
  }

  cpu::Interpreter<float> step_;
  std::optional<cpu::Interpreter<float>> forward_;
  std::vector<Tensor> inputs_;
  std::vector<int64_t> feedback_;
  std::vector<Tensor> lastOutputs_;
  StepMetrics last_;
  GuardStatus guard_;
};

} // namespace

std::unique_ptr<Backend> makeCpuBackend(const cpu::Program &program, BackendOptions options) {
  return std::make_unique<CpuBackend>(program, options);
}

} // namespace halo::train
