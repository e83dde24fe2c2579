//===- halo-run.cpp - Train a compiled halo program -----------------------===//
//
// halo-run <program.halo> --data <tokens.bin> [options]: loads and validates
// the program, initialises (or loads) the parameters, then repeats
// train_step on batches of the token file, feeding the updated parameters and
// AdamW moments back, logging loss / lr / grad norm / speed and optionally
// evaluating `forward` on held-out batches. Only the CPU interpreter exists
// so far; --device cuda says so. Every error is printed and exits 1.
//
//===----------------------------------------------------------------------===//
#include "frontend/config/ModelConfig.h"
#include "runtime/cpu/Interpreter.h"
#include "runtime/cpu/Program.h"
#include "runtime/cpu/ThreadPool.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/io/Safetensors.h"
#include "runtime/io/TokenDataset.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace halo::run {
namespace {

using cpu::ElementType;
using Tensor = cpu::Tensor<float>;

/// Tail of the token file never trained on, used by --eval-every.
constexpr double kHeldOutFraction = 0.05;

constexpr const char *kUsage = R"(halo-run: train a program compiled by haloc

Usage:
  halo-run <program.halo> --data <tokens.bin> [options]

Options:
  --data <file>          token dataset (.bin, docs/formats.md); required
  --device cpu|cuda      where to run (default: cuda when a CUDA driver loads,
                         else cpu; only cpu is implemented so far)
  --steps N              training steps (default: the model's train.steps)
  --log-every K          print and record every K steps (default 10; the first
                         and last steps are always logged)
  --metrics <file>       write one JSON object per logged step / evaluation
  --seed S               data order and initialisation seed (default:
                         train.seed)
  --eval-every K         every K steps (and at the end) report the loss of
                         `forward` on held-out batches (the last 5% of the
                         token file is never trained on)
  --eval-batches B       held-out batches per evaluation (default 4)
  --init <file>          start from these parameters (safetensors, HF names;
                         F32, BF16 or F16) instead of the random initialisation
  --save <file>          write the final parameters (F32 safetensors, HF names)
  --dump-step <file>     after step 1, write its parameters, gradients, batch
                         and loss (safetensors) for a reference check against
                         PyTorch (scripts/torch_reference.py); needs a program
                         compiled with haloc --return-grads
  --exact                compute without BF16 rounding (float32 throughout),
                         for reference comparisons
  --help                 show this text

Examples:
  halo-run tiny.halo --data examples/data/tiny.bin --device cpu
  halo-run tiny.halo --data examples/data/tiny.bin --steps 100 --log-every 5 \
      --metrics run.jsonl --eval-every 50 --save tiny.safetensors
  halo-run tiny.halo --data examples/data/tiny.bin --init tiny.safetensors
)";

struct Options {
  std::string program;
  std::string data;
  std::string device; ///< Empty: choose automatically.
  std::optional<int64_t> steps;
  int64_t logEvery = 10;
  std::string metrics;
  std::optional<uint64_t> seed;
  int64_t evalEvery = 0;
  int64_t evalBatches = 4;
  std::string init;
  std::string save;
  std::string dumpStep;
  bool exact = false;
  bool help = false;
};

StatusOr<uint64_t> parseCount(const std::string &flag, const std::string &text,
                              uint64_t min, uint64_t max) {
  size_t used = 0;
  unsigned long long v = 0;
  bool ok = !text.empty() && text[0] != '-';
  if (ok) {
    try {
      v = std::stoull(text, &used);
    } catch (const std::exception &) {
      ok = false;
    }
  }
  if (!ok || used != text.size() || v < min || v > max)
    return Status::error(fmt::format(
        "{}: expected an integer in [{}, {}], got '{}'", flag, min, max, text));
  return uint64_t(v);
}

StatusOr<Options> parseOptions(int argc, char **argv) {
  Options o;
  constexpr uint64_t kIntMax = std::numeric_limits<int32_t>::max();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    }
    if (arg == "--exact") {
      o.exact = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      if (!o.program.empty())
        return Status::error(fmt::format(
            "unexpected argument '{}' (the program is already '{}'); see "
            "halo-run --help",
            arg, o.program));
      o.program = arg;
      continue;
    }
    std::string flag = arg, value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Status::error(
          fmt::format("{} needs a value; see halo-run --help", flag));
    }
    auto count = [&](uint64_t min, uint64_t max) {
      return parseCount(flag, value, min, max);
    };
    StatusOr<uint64_t> n = uint64_t(0);
    if (flag == "--data") {
      o.data = value;
    } else if (flag == "--device") {
      if (value != "cpu" && value != "cuda")
        return Status::error(fmt::format(
            "--device: unknown device '{}' (expected cpu or cuda)", value));
      o.device = value;
    } else if (flag == "--steps") {
      if ((n = count(1, kIntMax)).ok())
        o.steps = int64_t(*n);
    } else if (flag == "--log-every") {
      if ((n = count(1, kIntMax)).ok())
        o.logEvery = int64_t(*n);
    } else if (flag == "--metrics") {
      o.metrics = value;
    } else if (flag == "--seed") {
      if ((n = count(0, std::numeric_limits<uint64_t>::max())).ok())
        o.seed = *n;
    } else if (flag == "--eval-every") {
      if ((n = count(1, kIntMax)).ok())
        o.evalEvery = int64_t(*n);
    } else if (flag == "--eval-batches") {
      if ((n = count(1, 1 << 20)).ok())
        o.evalBatches = int64_t(*n);
    } else if (flag == "--init") {
      o.init = value;
    } else if (flag == "--save") {
      o.save = value;
    } else if (flag == "--dump-step") {
      o.dumpStep = value;
    } else {
      return Status::error(
          fmt::format("unknown option '{}'; see halo-run --help", flag));
    }
    if (!n.ok())
      return n.status();
  }
  if (o.program.empty())
    return Status::error("missing the program file; usage: halo-run "
                         "<program.halo> --data <tokens.bin> (see --help)");
  if (o.data.empty())
    return Status::error(fmt::format(
        "missing --data <tokens.bin>: the token file to train on (e.g. "
        "`halo-run {} --data examples/data/tiny.bin`)",
        o.program));
  return o;
}

/// Only the CPU interpreter exists; a GPU, chosen or found, is an error
/// rather than a silent fallback.
Status resolveDevice(const Options &o) {
  if (o.device == "cpu")
    return Status::success();
  const char *notYet = "the GPU backend of halo-run is not built yet (it is "
                       "the next milestone); run with --device cpu";
  if (o.device == "cuda")
    return Status::error(fmt::format("--device cuda: {}", notYet));
  StatusOr<const cuda::CudaDriver *> driver = cuda::CudaDriver::load();
  if (!driver.ok())
    return Status::success();
  return Status::error(fmt::format(
      "a CUDA driver was found ({}), so the default device is cuda, but {}",
      (*driver)->libraryPath(), notYet));
}

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

uint64_t fnv1a64(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

/// N(0, stddev) from a generator seeded by (seed, name): draw k is
/// splitmix64(s + k) with s = splitmix64(seed ^ fnv1a64(name)); each pair of
/// draws gives two values by Box-Muller (docs/program-format.md).
void fillNormal(std::vector<float> &out, uint64_t seed, const std::string &name,
                double stddev) {
  constexpr double kTwoPi = 6.283185307179586476925;
  constexpr double kUnit = 1.0 / 9007199254740992.0; // 2^-53
  uint64_t start = io::splitmix64(seed ^ fnv1a64(name)), k = 0;
  for (size_t i = 0; i < out.size(); i += 2) {
    uint64_t a = io::splitmix64(start + k++), b = io::splitmix64(start + k++);
    double u1 = double((a >> 11) + 1) * kUnit; // (0, 1]: log stays finite
    double u2 = double(b >> 11) * kUnit;
    double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = float(stddev * r * std::cos(kTwoPi * u2));
    if (i + 1 < out.size())
      out[i + 1] = float(stddev * r * std::sin(kTwoPi * u2));
  }
}

/// Parameter states by train_step input, initialised per their `init`.
Status initParams(const cpu::Function &step, const frontend::ModelConfig &cfg,
                  uint64_t seed, const Options &o,
                  std::vector<Tensor> &inputs) {
  std::optional<io::SafetensorsFile> file;
  if (!o.init.empty()) {
    StatusOr<io::SafetensorsFile> opened = io::SafetensorsFile::open(o.init);
    if (!opened.ok())
      return Status::error("--init: " + opened.status().message());
    file = std::move(*opened);
  }
  size_t loaded = 0;
  for (size_t i = 0; i < step.inputs.size(); ++i) {
    const cpu::Binding &b = step.inputs[i];
    if (!b.isParam())
      continue;
    const cpu::ValueInfo &info = step.values[b.value];
    Tensor &t = inputs[i];
    t = Tensor::zeros(info.type, info.shape);
    if (b.state != "param")
      continue; // AdamW moments start at 0.
    if (file) {
      StatusOr<const io::TensorInfo *> found = file->get(b.param);
      if (!found.ok())
        return Status::error(fmt::format(
            "--init {}: no tensor \"{}\" (the program's parameter {}); hint: "
            "the checkpoint must come from the same model (HF names)",
            o.init, b.param, cpu::formatShape(info.shape)));
      const io::TensorInfo &ti = **found;
      if (ti.shape != info.shape)
        return Status::error(fmt::format(
            "--init {}: tensor \"{}\" has shape {} but the program expects {}; "
            "hint: the checkpoint is of a different model size",
            o.init, b.param, cpu::formatShape(ti.shape),
            cpu::formatShape(info.shape)));
      if (ti.dtype != io::DType::F32 && ti.dtype != io::DType::BF16 &&
          ti.dtype != io::DType::F16)
        return Status::error(fmt::format(
            "--init {}: tensor \"{}\" is {}; only F32, BF16 and F16 "
            "parameters can be loaded",
            o.init, b.param, io::dtypeName(ti.dtype)));
      HALO_RETURN_IF_ERROR(file->toFloat(ti, t.data.data()));
      ++loaded;
    } else if (b.init == "ones") {
      std::fill(t.data.begin(), t.data.end(), 1.0f);
    } else if (b.init == "normal") {
      fillNormal(t.data, seed, b.param, cfg.model.initializerRange);
    }
  }
  if (file)
    fmt::print("loaded {} parameters from {} ({} tensors in the file)\n",
               loaded, o.init, file->tensors().size());
  return Status::success();
}

Status saveParams(const cpu::Function &step, const std::vector<Tensor> &inputs,
                  const std::string &path, int64_t steps) {
  std::vector<io::TensorBytes> tensors;
  for (size_t i = 0; i < step.inputs.size(); ++i) {
    const cpu::Binding &b = step.inputs[i];
    if (!b.isParam() || b.state != "param")
      continue;
    const std::vector<float> &data = inputs[i].data;
    tensors.push_back({b.param, io::DType::F32, inputs[i].shape, data.data(),
                       data.size() * sizeof(float)});
  }
  return io::writeSafetensors(
      path, tensors, {{"format", "pt"}, {"halo_steps", std::to_string(steps)}});
}

/// --dump-step: one step's inputs and gradients, self-describing (the model
/// file rides in the metadata) so a PyTorch script can recompute them.
Status dumpStep(const cpu::Function &step, const std::vector<Tensor> &inputs,
                const std::vector<Tensor> &outputs, const cpu::Program &program,
                const Options &o) {
  std::vector<io::TensorBytes> tensors;
  for (size_t i = 0; i < step.inputs.size(); ++i) {
    const cpu::Binding &b = step.inputs[i];
    if (b.name == "tokens" || b.name == "targets")
      tensors.push_back({b.name, io::DType::I32, inputs[i].shape, inputs[i].ints.data(),
                         inputs[i].ints.size() * sizeof(int32_t)});
    else if (b.isParam() && b.state == "param")
      tensors.push_back({"param/" + b.param, io::DType::F32,
                         inputs[i].shape, inputs[i].data.data(),
                         inputs[i].data.size() * sizeof(float)});
  }
  size_t grads = 0;
  for (size_t k = 0; k < step.outputs.size(); ++k)
    if (step.outputs[k].state == "grad") {
      ++grads;
      tensors.push_back({"grad/" + step.outputs[k].param, io::DType::F32,
                         outputs[k].shape, outputs[k].data.data(),
                         outputs[k].data.size() * sizeof(float)});
    }
  if (grads == 0)
    return Status::error(fmt::format(
        "--dump-step: {} returns no gradients; recompile with haloc --return-grads",
        program.path));
  int64_t loss = step.findOutput("loss");
  return io::writeSafetensors(o.dumpStep, tensors,
                              {{"format", "pt"},
                               {"halo_model", program.modelJson},
                               {"halo_loss", fmt::format("{:.9g}", outputs[loss].data[0])},
                               {"halo_exact", o.exact ? "1" : "0"}});
}

//===----------------------------------------------------------------------===//
// Training loop
//===----------------------------------------------------------------------===//

class Trainer {
public:
  Trainer(const Options &o, const cpu::Program &program,
          const frontend::ModelConfig &cfg)
      : o_(o), program_(program), cfg_(cfg),
        step_(*program.find("train_step"), cpu::InterpreterOptions{o.exact}) {}

  Status run();

private:
  Status setUp();
  Status evaluate(int64_t step);
  Status record(const nlohmann::ordered_json &line);
  float scalar(const std::vector<Tensor> &outs, const char *name) const {
    int64_t k = step_.function().findOutput(name);
    return k < 0 ? NAN : outs[k].data[0];
  }

  const Options &o_;
  const cpu::Program &program_;
  const frontend::ModelConfig &cfg_;
  cpu::Interpreter<float> step_;
  std::optional<cpu::Interpreter<float>> forward_;
  std::optional<io::TokenSplit> split_;
  std::vector<Tensor> inputs_;
  /// For each train_step output, the input it replaces (or -1).
  std::vector<int64_t> feedback_;
  int64_t batch_ = 0, seq_ = 0, steps_ = 0;
  uint64_t seed_ = 0;
  std::ofstream metrics_;
};

/// halo-run feeds data inputs by name and parameters by (param, state); a
/// positional input (functions exported for oracle tests) has no source.
Status checkFeedable(const cpu::Function &fn, const std::string &path) {
  for (size_t i = 0; i < fn.inputs.size(); ++i)
    if (fn.inputs[i].name.empty() && !fn.inputs[i].isParam())
      return Status::error(fmt::format(
          "{}: {} input {} (value {}) is neither a named input nor a "
          "parameter, so halo-run cannot feed it; recompile with haloc",
          path, fn.name, i, fn.inputs[i].value));
  return Status::success();
}

Status Trainer::setUp() {
  const cpu::Function &fn = step_.function();
  const cpu::Program &p = program_;
  HALO_RETURN_IF_ERROR(checkFeedable(fn, p.path));
  for (const char *name : {"tokens", "targets", "step"})
    if (fn.findInput(name) < 0)
      return Status::error(fmt::format(
          "{}: train_step has no \"{}\" input; recompile with haloc", p.path,
          name));
  // tokens is [B * S]; the split into rows comes from the model's train
  // section and must agree with it.
  batch_ = cfg_.train.batchSize;
  seq_ = cfg_.train.seqLen;
  int64_t T = fn.values[fn.inputs[fn.findInput("tokens")].value].numel;
  if (T != batch_ * seq_)
    return Status::error(fmt::format(
        "{}: train_step reads {} tokens per step but the model's train "
        "section says batch {} x seq {}; recompile with haloc",
        p.path, T, batch_, seq_));
  steps_ = o_.steps.value_or(cfg_.train.steps);
  seed_ = o_.seed.value_or(cfg_.train.seed);

  StatusOr<io::TokenDataset> data = io::TokenDataset::open(o_.data);
  if (!data.ok())
    return data.status();
  HALO_RETURN_IF_ERROR(data->validateVocab(uint32_t(cfg_.model.vocabSize)));
  StatusOr<io::TokenSplit> split = data->split(kHeldOutFraction);
  if (!split.ok())
    return split.status();
  split_ = std::move(*split);
  if (split_->train.size() < uint64_t(seq_ + 1))
    return Status::error(fmt::format(
        "{}: {} training tokens cannot fill one sequence of {} (+1) tokens; "
        "hint: use a larger token file",
        o_.data, split_->train.size(), seq_));

  inputs_.resize(fn.inputs.size());
  for (size_t i = 0; i < fn.inputs.size(); ++i) {
    const cpu::ValueInfo &info = fn.values[fn.inputs[i].value];
    inputs_[i] = Tensor::zeros(info.type, info.shape);
  }
  HALO_RETURN_IF_ERROR(initParams(fn, cfg_, seed_, o_, inputs_));
  for (const cpu::Binding &out : fn.outputs)
    feedback_.push_back(out.isParam() ? fn.findParamInput(out.param, out.state)
                                      : -1);

  if (o_.evalEvery > 0) {
    const cpu::Function *fwd = p.find("forward");
    if (!fwd)
      return Status::error(fmt::format(
          "--eval-every: {} has no \"forward\" function to evaluate; "
          "recompile with haloc",
          p.path));
    HALO_RETURN_IF_ERROR(checkFeedable(*fwd, p.path));
    for (const char *name : {"tokens", "targets"})
      if (fwd->findInput(name) < 0)
        return Status::error(
            fmt::format("{}: forward has no \"{}\" input; recompile with haloc",
                        p.path, name));
    for (const cpu::Binding &b : fwd->inputs) {
      if (!b.isParam())
        continue;
      int64_t src = fn.findParamInput(b.param, "param");
      if (src < 0 || inputs_[src].shape != fwd->values[b.value].shape)
        return Status::error(fmt::format(
            "{}: forward's parameter \"{}\" {} has no train_step parameter of "
            "that shape; recompile with haloc",
            p.path, b.param, cpu::formatShape(fwd->values[b.value].shape)));
    }
    if (split_->validation.size() < uint64_t(seq_ + 1))
      return Status::error(fmt::format(
          "--eval-every: the held-out {}% of {} ({} tokens) cannot fill one "
          "sequence of {} (+1) tokens; hint: use a larger token file",
          kHeldOutFraction * 100, o_.data, split_->validation.size(), seq_));
    forward_.emplace(*fwd, cpu::InterpreterOptions{o_.exact});
  }
  if (!o_.metrics.empty()) {
    metrics_.open(o_.metrics, std::ios::out | std::ios::trunc);
    if (!metrics_)
      return Status::error(
          fmt::format("--metrics {}: cannot open for writing: {}", o_.metrics,
                      std::strerror(errno)));
  }

  int64_t params = 0;
  for (size_t i = 0; i < fn.inputs.size(); ++i)
    if (fn.inputs[i].isParam() && fn.inputs[i].state == "param")
      params += inputs_[i].numel();
  fmt::print("halo-run: {} | {} | device cpu, {} threads\n", p.path,
             cfg_.describe(), cpu::numThreads());
  fmt::print("data: {} ({} tokens: {} train, {} held out) | {} tokens/step | "
             "{} steps | seed {} | {} parameters{}\n",
             o_.data, data->size(), split_->train.size(),
             split_->validation.size(), T, steps_, seed_, params,
             o_.init.empty() ? " (initialised)" : "");
  return Status::success();
}

Status Trainer::record(const nlohmann::ordered_json &line) {
  if (!metrics_.is_open())
    return Status::success();
  metrics_ << line.dump() << '\n';
  metrics_.flush();
  if (!metrics_)
    return Status::error(fmt::format("--metrics {}: write failed: {}",
                                     o_.metrics, std::strerror(errno)));
  return Status::success();
}

Status Trainer::evaluate(int64_t step) {
  const cpu::Function &fn = step_.function();
  const cpu::Function &fwd = forward_->function();
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
  int64_t tok = fwd.findInput("tokens"), tgt = fwd.findInput("targets");
  int64_t lossIndex = fwd.findOutput("loss");
  double sum = 0;
  for (int64_t j = 0; j < o_.evalBatches; ++j) {
    HALO_RETURN_IF_ERROR(
        split_->validation.fillBatch(batch_, seq_, seed_, uint64_t(j),
                                     in[tok].ints.data(), in[tgt].ints.data()));
    StatusOr<std::vector<Tensor>> outs = forward_->run(in);
    if (!outs.ok())
      return Status::error(fmt::format("evaluation at step {}: {}", step,
                                       outs.status().message()));
    sum += (*outs)[lossIndex].data[0];
  }
  double loss = sum / double(o_.evalBatches);
  fmt::print("step {}/{} | eval_loss {:.4f} ({} held-out batches)\n", step,
             steps_, loss, o_.evalBatches);
  nlohmann::ordered_json line;
  line["step"] = step;
  line["eval_loss"] = loss;
  return record(line);
}

Status Trainer::run() {
  HALO_RETURN_IF_ERROR(setUp());
  const cpu::Function &fn = step_.function();
  int64_t tok = fn.findInput("tokens"), tgt = fn.findInput("targets"),
          stp = fn.findInput("step");
  if (steps_ > cfg_.train.steps &&
      cfg_.train.schedule != frontend::LrSchedule::Constant)
    fmt::print("note: {} steps exceed the schedule's {} (train.steps); the "
               "learning rate stays 0 after step {}\n",
               steps_, cfg_.train.steps, cfg_.train.steps);

  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now(), intervalStart = start;
  int64_t intervalSteps = 0;
  for (int64_t s = 1; s <= steps_; ++s) {
    HALO_RETURN_IF_ERROR(split_->train.fillBatch(
        batch_, seq_, seed_, uint64_t(s), inputs_[tok].ints.data(),
        inputs_[tgt].ints.data()));
    inputs_[stp].ints[0] = int32_t(s);
    StatusOr<std::vector<Tensor>> outs = step_.run(inputs_);
    if (!outs.ok())
      return Status::error(
          fmt::format("step {}: {}", s, outs.status().message()));
    ++intervalSteps;
    float loss = scalar(*outs, "loss"), lr = scalar(*outs, "lr"),
          gradNorm = scalar(*outs, "grad_norm");
    if (!std::isfinite(loss) ||
        (fn.findOutput("grad_norm") >= 0 && !std::isfinite(gradNorm))) {
      float bad = std::isfinite(loss) ? gradNorm : loss;
      return Status::error(fmt::format(
          "step {}: the {} is {}; training stopped (hint: lower train.lr, keep "
          "train.grad_clip on, or try a higher HALO level or precision bf16)",
          s, std::isfinite(loss) ? "gradient norm" : "loss",
          std::isnan(bad) ? "NaN"
          : bad > 0       ? "+inf"
                          : "-inf"));
    }
    if (s == 1 && !o_.dumpStep.empty()) {
      HALO_RETURN_IF_ERROR(dumpStep(fn, inputs_, *outs, program_, o_));
      fmt::print("wrote step 1's parameters, gradients and batch to {}\n", o_.dumpStep);
    }
    for (size_t k = 0; k < feedback_.size(); ++k)
      if (feedback_[k] >= 0)
        inputs_[feedback_[k]] = std::move((*outs)[k]);

    if (s == 1 || s % o_.logEvery == 0 || s == steps_) {
      Clock::time_point now = Clock::now();
      double seconds =
          std::chrono::duration<double>(now - intervalStart).count();
      double stepMs = 1000 * seconds / double(intervalSteps);
      double tokensPerS = double(batch_ * seq_ * intervalSteps) / seconds;
      std::string text =
          fmt::format("step {}/{} | loss {:.4f}", s, steps_, loss);
      nlohmann::ordered_json line;
      line["step"] = s;
      line["loss"] = loss;
      if (fn.findOutput("lr") >= 0) {
        text += fmt::format(" | lr {:.2e}", lr);
        line["lr"] = lr;
      }
      if (fn.findOutput("grad_norm") >= 0) {
        text += fmt::format(" | grad_norm {:.3f}", gradNorm);
        line["grad_norm"] = gradNorm;
      }
      text +=
          fmt::format(" | {:.0f} tok/s | {:.1f} ms/step", tokensPerS, stepMs);
      line["tokens_per_s"] = tokensPerS;
      line["step_ms"] = stepMs;
      fmt::print("{}\n", text);
      std::fflush(stdout);
      HALO_RETURN_IF_ERROR(record(line));
      intervalStart = now;
      intervalSteps = 0;
    }
    if (forward_ && (s % o_.evalEvery == 0 || s == steps_)) {
      HALO_RETURN_IF_ERROR(evaluate(s));
      intervalStart = Clock::now(); // Evaluation time is not step time.
    }
  }
  double total = std::chrono::duration<double>(Clock::now() - start).count();
  fmt::print("done: {} steps in {:.1f} s\n", steps_, total);
  if (!o_.save.empty()) {
    HALO_RETURN_IF_ERROR(saveParams(fn, inputs_, o_.save, steps_));
    fmt::print("saved the parameters to {}\n", o_.save);
  }
  return Status::success();
}

Status runMain(int argc, char **argv) {
  StatusOr<Options> options = parseOptions(argc, argv);
  if (!options.ok())
    return options.status();
  if (options->help) {
    fmt::print("{}", kUsage);
    return Status::success();
  }
  HALO_RETURN_IF_ERROR(resolveDevice(*options));
  StatusOr<cpu::Program> program = cpu::readProgram(options->program);
  if (!program.ok())
    return program.status();
  StatusOr<frontend::ModelConfig> cfg = frontend::parseModelConfigString(
      program->modelJson, options->program + " (model)");
  if (!cfg.ok())
    return cfg.status();
  return Trainer(*options, *program, *cfg).run();
}

} // namespace
} // namespace halo::run

int main(int argc, char **argv) {
  try {
    halo::Status status = halo::run::runMain(argc, argv);
    if (status.ok())
      return 0;
    fmt::print(stderr, "halo-run: error: {}\n", status.message());
  } catch (const std::exception &e) {
    // Allocation failures and other exceptions end the run with a message.
    fmt::print(stderr, "halo-run: error: {}\n", e.what());
  }
  return 1;
}
