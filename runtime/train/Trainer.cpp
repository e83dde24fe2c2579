//===- Trainer.cpp - The training loop of halo-run ------------------------===//
#include "runtime/train/Trainer.h"

#include "runtime/io/Checkpoint.h"
#include "runtime/io/Safetensors.h"
#include "runtime/io/TokenDataset.h"
#include "runtime/numerics/Float8.h"
#include "runtime/train/Backend.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>

namespace halo::train {

/// Tail of the token file never trained on, used by --eval-every.
constexpr double kHeldOutFraction = 0.05;

double trainingFlopsPerStep(const frontend::ModelConfig &cfg) {
  const frontend::ModelShape &m = cfg.model;
  double tokens = double(cfg.train.batchSize * cfg.train.seqLen);
  double perLayer = double(m.hiddenSize) * double(2 * m.qDim() + 2 * m.kvDim()) +
                    3.0 * double(m.hiddenSize) * double(m.intermediateSize);
  double weights = double(m.numHiddenLayers) * perLayer + double(m.vocabSize * m.hiddenSize);
  double attention = 6.0 * double(cfg.train.batchSize) * double(cfg.train.seqLen) *
                     double(cfg.train.seqLen) * double(m.qDim()) * double(m.numHiddenLayers);
  return 6.0 * weights * tokens + attention;
}

namespace {

uint64_t fnv1a64(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

/// The token file's identity for resuming: its size and a fingerprint of
/// its first and last million tokens (hashing all of a large corpus would
/// cost more than the check is worth).
std::string dataFingerprint(const io::TokenDataset &data) {
  constexpr uint64_t kSample = 1 << 20;
  std::vector<uint32_t> tokens;
  uint64_t n = data.size();
  for (uint64_t i = 0; i < std::min(n, kSample); ++i)
    tokens.push_back(data.token(i));
  for (uint64_t i = n > kSample ? std::max(kSample, n - kSample) : n; i < n; ++i)
    tokens.push_back(data.token(i));
  return io::fingerprint(tokens.data(), tokens.size() * sizeof(uint32_t));
}

class Trainer {
public:
  Trainer(const TrainOptions &o, const cpu::Program &program, const frontend::ModelConfig &cfg)
      : o_(o), program_(program), cfg_(cfg), fn_(*program.find("train_step")) {}

  Status run();

private:
  Status setUp();
  Status initParams();
  Status loadResume();
  Status saveCheckpoint(const std::string &dir, int64_t step);
  Status evaluate(int64_t step);
  Status checkGuard(int64_t step);
  Status dumpStep(int64_t step, const std::vector<int32_t> &tokens,
                  const std::vector<int32_t> &targets);
  Status record(const nlohmann::ordered_json &line);

  const TrainOptions &o_;
  const cpu::Program &program_;
  const frontend::ModelConfig &cfg_;
  const cpu::Function &fn_;
  std::unique_ptr<Backend> backend_;
  std::optional<io::TokenDataset> data_;
  std::optional<io::TokenSplit> split_;
  std::vector<Tensor> state_; ///< train_step inputs: parameters and moments
  int64_t batch_ = 0, seq_ = 0, steps_ = 0, firstStep_ = 1, consecutiveSkips_ = 0;
  uint64_t seed_ = 0;
  std::ofstream metrics_;
};

/// halo-run feeds data inputs by name and parameters by (param, state).
Status checkFeedable(const cpu::Function &fn, const std::string &path) {
  for (size_t i = 0; i < fn.inputs.size(); ++i)
    if (fn.inputs[i].name.empty() && !fn.inputs[i].isParam())
      return Status::error(fmt::format(
          "{}: {} input {} (value {}) is neither a named input nor a parameter, so halo-run "
          "cannot feed it; recompile with haloc",
          path, fn.name, i, fn.inputs[i].value));
  return Status::success();
}

Status Trainer::initParams() {
  std::optional<io::HfWeights> weights;
  if (!o_.init.empty()) {
    StatusOr<io::HfWeights> opened = io::openHfWeights(o_.init);
    if (!opened.ok())
      return Status::error("--init: " + opened.status().message());
    weights = std::move(*opened);
  }
  size_t loaded = 0;
  for (size_t i = 0; i < fn_.inputs.size(); ++i) {
    const cpu::Binding &b = fn_.inputs[i];
    if (!b.isParam() || b.state != "param")
      continue;
    Tensor &t = state_[i];
    if (weights) {
      const io::TensorInfo *ti = weights->find(b.param);
      if (!ti)
        return Status::error(fmt::format(
            "--init {}: no tensor \"{}\" (the program's parameter {}); hint: the checkpoint "
            "must come from the same model (HF names)",
            o_.init, b.param, cpu::formatShape(t.shape)));
      if (ti->shape != t.shape)
        return Status::error(fmt::format(
            "--init {}: tensor \"{}\" has shape {} but the program expects {}; hint: the "
            "checkpoint is of a different model size",
            o_.init, b.param, cpu::formatShape(ti->shape), cpu::formatShape(t.shape)));
      HALO_RETURN_IF_ERROR(weights->toFloat(b.param, t.data.data(), t.data.size()));
      ++loaded;
    } else if (b.init == "ones") {
      std::fill(t.data.begin(), t.data.end(), 1.0f);
    } else if (b.init == "normal") {
      fillNormal(t.data, seed_, b.param, cfg_.model.initializerRange);
    }
    // BF16 weights (frozen ones, train.master_dtype bf16) hold what the
    // device holds, so a checkpoint saved before the first step matches it.
    if (fn_.values[b.value].type == cpu::ElementType::BF16)
      for (float &x : t.data)
        x = numerics::roundToBF16(x);
  }
  if (weights)
    fmt::print("loaded {} parameters from {} ({} tensors)\n", loaded, o_.init,
               weights->names().size());
  return Status::success();
}

Status Trainer::loadResume() {
  StatusOr<io::Checkpoint> ckpt = io::loadCheckpoint(o_.resume);
  if (!ckpt.ok())
    return Status::error("--resume: " + ckpt.status().message());
  std::vector<io::ExpectedParam> expected;
  for (const cpu::Binding &b : fn_.inputs)
    if (b.isParam() && b.state == "param")
      expected.push_back({b.param, fn_.values[b.value].shape, !b.frozen});
  HALO_RETURN_IF_ERROR(ckpt->checkCompatible(expected));
  if (ckpt->state().programModelJson != program_.modelJson)
    fmt::print("note: {} was trained with a different program (model or train settings "
               "differ); continuing with {}\n",
               o_.resume, o_.program);
  HALO_RETURN_IF_ERROR(ckpt->checkSameData(data_->size(), dataFingerprint(*data_)));
  for (size_t i = 0; i < fn_.inputs.size(); ++i) {
    const cpu::Binding &b = fn_.inputs[i];
    if (!b.isParam() || b.state == "compute") // derived after loading
      continue;
    float *out = state_[i].data.data();
    uint64_t n = state_[i].data.size();
    if (b.state == "param")
      HALO_RETURN_IF_ERROR(ckpt->readParam(b.param, out, n));
    else
      HALO_RETURN_IF_ERROR(ckpt->readMoment(
          b.state == "exp_avg" ? io::Moment::ExpAvg : io::Moment::ExpAvgSq, b.param, out, n));
  }
  firstStep_ = ckpt->state().step + 1;
  fmt::print("resumed from {} after step {}\n", o_.resume, ckpt->state().step);
  return Status::success();
}

Status Trainer::saveCheckpoint(const std::string &dir, int64_t step) {
  HALO_RETURN_IF_ERROR(backend_->download(state_));
  io::CheckpointContents c;
  c.configJson = frontend::toHfConfigJson(cfg_);
  for (size_t i = 0; i < fn_.inputs.size(); ++i) {
    const cpu::Binding &b = fn_.inputs[i];
    if (!b.isParam() || b.state != "param")
      continue;
    io::ParamState p{b.param, state_[i].shape, state_[i].data.data(), nullptr, nullptr};
    if (int64_t m = fn_.findParamInput(b.param, "exp_avg"); m >= 0)
      p.expAvg = state_[m].data.data();
    if (int64_t v = fn_.findParamInput(b.param, "exp_avg_sq"); v >= 0)
      p.expAvgSq = state_[v].data.data();
    c.params.push_back(p);
  }
  c.state.step = step;
  c.state.seed = seed_;
  c.state.programModelJson = program_.modelJson;
  c.state.programFingerprint = io::fingerprint(program_.modelJson.data(), program_.modelJson.size());
  c.state.dataPath = o_.data;
  c.state.dataTokens = data_->size();
  c.state.dataFingerprint = dataFingerprint(*data_);
  HALO_RETURN_IF_ERROR(io::saveCheckpoint(dir, c));
  fmt::print("saved checkpoint {} (step {})\n", dir, step);
  return Status::success();
}

Status Trainer::setUp() {
  const cpu::Program &p = program_;
  HALO_RETURN_IF_ERROR(checkFeedable(fn_, p.path));
  for (const char *name : {"tokens", "targets", "step"})
    if (fn_.findInput(name) < 0)
      return Status::error(
          fmt::format("{}: train_step has no \"{}\" input; recompile with haloc", p.path, name));
  batch_ = cfg_.train.batchSize;
  seq_ = cfg_.train.seqLen;
  int64_t T = fn_.values[fn_.inputs[fn_.findInput("tokens")].value].numel;
  if (T != batch_ * seq_)
    return Status::error(fmt::format("{}: train_step reads {} tokens per step but the model's "
                                     "train section says batch {} x seq {}; recompile with haloc",
                                     p.path, T, batch_, seq_));
  steps_ = o_.steps.value_or(cfg_.train.steps);
  seed_ = o_.seed.value_or(cfg_.train.seed);

  StatusOr<io::TokenDataset> data = io::TokenDataset::open(o_.data);
  if (!data.ok())
    return data.status();
  data_ = std::move(*data);
  HALO_RETURN_IF_ERROR(data_->validateVocab(uint32_t(cfg_.model.vocabSize)));
  StatusOr<io::TokenSplit> split = data_->split(kHeldOutFraction);
  if (!split.ok())
    return split.status();
  split_ = std::move(*split);
  if (split_->train.size() < uint64_t(seq_ + 1))
    return Status::error(fmt::format("{}: {} training tokens cannot fill one sequence of {} (+1) "
                                     "tokens; hint: use a larger token file",
                                     o_.data, split_->train.size(), seq_));
  if (o_.evalEvery > 0) {
    const cpu::Function *fwd = p.find("forward");
    if (!fwd)
      return Status::error(fmt::format(
          "--eval-every: {} has no \"forward\" function to evaluate; recompile with haloc",
          p.path));
    HALO_RETURN_IF_ERROR(checkFeedable(*fwd, p.path));
    for (const cpu::Binding &b : fwd->inputs)
      if (b.isParam() && (fn_.findParamInput(b.param, "param") < 0 ||
                          fn_.values[fn_.inputs[fn_.findParamInput(b.param, "param")].value]
                                  .shape != fwd->values[b.value].shape))
        return Status::error(fmt::format("{}: forward's parameter \"{}\" has no train_step "
                                         "parameter of that shape; recompile with haloc",
                                         p.path, b.param));
    if (split_->validation.size() < uint64_t(seq_ + 1))
      return Status::error(fmt::format(
          "--eval-every: the held-out {}% of {} ({} tokens) cannot fill one sequence of {} (+1) "
          "tokens; hint: use a larger token file",
          kHeldOutFraction * 100, o_.data, split_->validation.size(), seq_));
  }

  for (const cpu::Binding &b : fn_.inputs)
    state_.push_back(Tensor::zeros(fn_.values[b.value].type, fn_.values[b.value].shape));
  if (!o_.resume.empty())
    HALO_RETURN_IF_ERROR(loadResume());
  else
    HALO_RETURN_IF_ERROR(initParams());
  cpu::deriveComputeCopies(fn_, state_);

  // The device: cuda when asked, or by default when a GPU is usable.
  BackendOptions bo{o_.exact, o_.evalEvery > 0};
  if (o_.device == "cpu" || (o_.device.empty() && o_.exact)) {
    backend_ = makeCpuBackend(p, bo); // --exact is the oracle's mode
  } else {
    StatusOr<std::unique_ptr<Backend>> cuda = makeCudaBackend(p, bo);
    if (cuda.ok())
      backend_ = std::move(*cuda);
    else if (o_.device == "cuda")
      return Status::error("--device cuda: " + cuda.status().message());
    else {
      fmt::print("note: no usable GPU ({}); running on the CPU\n", cuda.status().message());
      backend_ = makeCpuBackend(p, bo);
    }
  }
  HALO_RETURN_IF_ERROR(backend_->upload(state_));

  if (!o_.metrics.empty()) {
    metrics_.open(o_.metrics, std::ios::out | (o_.resume.empty() ? std::ios::trunc : std::ios::app));
    if (!metrics_)
      return Status::error(fmt::format("--metrics {}: cannot open for writing: {}", o_.metrics,
                                       std::strerror(errno)));
  }
  int64_t params = 0;
  for (size_t i = 0; i < fn_.inputs.size(); ++i)
    if (fn_.inputs[i].isParam() && fn_.inputs[i].state == "param")
      params += state_[i].numel();
  fmt::print("halo-run: {} | {} | device {}\n", p.path, cfg_.describe(), backend_->describe());
  fmt::print("data: {} ({} tokens: {} train, {} held out) | {} tokens/step | steps {}..{} | seed "
             "{} | {} parameters{}\n",
             o_.data, data_->size(), split_->train.size(), split_->validation.size(), T,
             firstStep_, steps_, seed_, params,
             !o_.resume.empty() ? " (resumed)" : o_.init.empty() ? " (initialised)" : " (loaded)");
  return Status::success();
}

Status Trainer::record(const nlohmann::ordered_json &line) {
  if (!metrics_.is_open())
    return Status::success();
  metrics_ << line.dump() << '\n';
  metrics_.flush();
  if (!metrics_)
    return Status::error(
        fmt::format("--metrics {}: write failed: {}", o_.metrics, std::strerror(errno)));
  return Status::success();
}

Status Trainer::evaluate(int64_t step) {
  std::vector<int32_t> tokens(size_t(batch_ * seq_)), targets(tokens.size());
  double sum = 0;
  for (int64_t j = 0; j < o_.evalBatches; ++j) {
    HALO_RETURN_IF_ERROR(split_->validation.fillBatch(batch_, seq_, seed_, uint64_t(j),
                                                      tokens.data(), targets.data()));
    StatusOr<double> loss = backend_->evalLoss(tokens, targets);
    if (!loss.ok())
      return Status::error(fmt::format("evaluation at step {}: {}", step, loss.status().message()));
    sum += *loss;
  }
  double loss = sum / double(o_.evalBatches);
  fmt::print("step {}/{} | eval_loss {:.4f} ({} held-out batches)\n", step, steps_, loss,
             o_.evalBatches);
  nlohmann::ordered_json line;
  line["step"] = step;
  line["eval_loss"] = loss;
  return record(line);
}

/// --dump-step: the first step's parameters, batch, loss and gradients as
/// the backend computed them, self-describing (the model file rides in the
/// metadata) so that scripts/torch_reference.py can recompute them with
/// PyTorch. state_ still holds the parameters the step started from.
Status Trainer::dumpStep(int64_t step, const std::vector<int32_t> &tokens,
                         const std::vector<int32_t> &targets) {
  std::vector<Tensor> inputs = state_;
  inputs[fn_.findInput("tokens")].ints = tokens;
  inputs[fn_.findInput("targets")].ints = targets;
  StatusOr<std::vector<Tensor>> outs = backend_->outputs();
  if (!outs.ok())
    return outs.status();
  std::vector<io::TensorBytes> tensors;
  for (size_t i = 0; i < fn_.inputs.size(); ++i) {
    const cpu::Binding &b = fn_.inputs[i];
    const Tensor &t = inputs[i];
    if (b.name == "tokens" || b.name == "targets")
      tensors.push_back({b.name, io::DType::I32, t.shape, t.ints.data(), t.ints.size() * 4});
    else if (b.isParam() && b.state == "param")
      tensors.push_back({"param/" + b.param, io::DType::F32, t.shape, t.data.data(), t.data.size() * 4});
  }
  size_t grads = 0;
  for (size_t k = 0; k < fn_.outputs.size(); ++k)
    if (fn_.outputs[k].state == "grad") {
      ++grads;
      const Tensor &t = (*outs)[k];
      tensors.push_back({"grad/" + fn_.outputs[k].param, io::DType::F32, t.shape, t.data.data(),
                         t.data.size() * 4});
    }
  if (grads == 0)
    return Status::error(fmt::format(
        "--dump-step: {} returns no gradients; recompile with haloc --return-grads", program_.path));
  HALO_RETURN_IF_ERROR(io::writeSafetensors(
      o_.dumpStep, tensors,
      {{"format", "pt"},
       {"halo_model", program_.modelJson},
       {"halo_loss", fmt::format("{:.9g}", (*outs)[fn_.findOutput("loss")].data[0])},
       {"halo_exact", o_.exact ? "1" : "0"}}));
  fmt::print("wrote step {}'s parameters, gradients and batch to {}\n", step, o_.dumpStep);
  return Status::success();
}

/// Reports steps the overflow guard skipped since the last check; ends the
/// run when asked to, or when too many steps in a row were skipped.
Status Trainer::checkGuard(int64_t step) {
  StatusOr<GuardStatus> g = backend_->guard();
  if (!g.ok())
    return g.status();
  if (g->skippedSteps == 0) {
    consecutiveSkips_ = 0;
    return Status::success();
  }
  std::string where = g->tensor.empty() ? "" : fmt::format(" (first non-finite gradient: {})", g->tensor);
  std::string steps = g->firstBadStep == g->lastBadStep
                          ? fmt::format("step {}", g->firstBadStep)
                          : fmt::format("{} steps in {}..{}", g->skippedSteps, g->firstBadStep,
                                        g->lastBadStep);
  fmt::print("warning: {}: non-finite loss or gradient norm{}; update skipped\n", steps, where);
  nlohmann::ordered_json line;
  line["step"] = step;
  line["skipped_steps"] = g->skippedSteps;
  line["first_bad_step"] = g->firstBadStep;
  if (!g->tensor.empty())
    line["bad_tensor"] = g->tensor;
  HALO_RETURN_IF_ERROR(record(line));
  consecutiveSkips_ = g->lastBadStep == step ? consecutiveSkips_ + g->skippedSteps : 0;
  if (o_.stopOnNonFinite || consecutiveSkips_ >= o_.maxSkippedSteps)
    return Status::error(fmt::format(
        "stopped at step {} after non-finite values{} (hint: lower train.lr, keep "
        "train.grad_clip on, or try a higher HALO level or precision bf16)",
        step, where));
  return Status::success();
}

Status Trainer::run() {
  HALO_RETURN_IF_ERROR(setUp());
  if (steps_ > cfg_.train.steps && cfg_.train.schedule != frontend::LrSchedule::Constant)
    fmt::print("note: {} steps exceed the schedule's {} (train.steps); the learning rate stays 0 "
               "after step {}\n",
               steps_, cfg_.train.steps, cfg_.train.steps);
  if (firstStep_ > steps_)
    return Status::error(fmt::format("--resume: the checkpoint is at step {}, nothing left of {} "
                                     "steps; hint: raise --steps",
                                     firstStep_ - 1, steps_));
  double flops = trainingFlopsPerStep(cfg_);
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now(), intervalStart = start;
  int64_t intervalSteps = 0;
  std::vector<int32_t> tokens(size_t(batch_ * seq_)), targets(tokens.size());
  for (int64_t s = firstStep_; s <= steps_; ++s) {
    HALO_RETURN_IF_ERROR(split_->train.fillBatch(batch_, seq_, seed_, uint64_t(s), tokens.data(),
                                                 targets.data()));
    HALO_RETURN_IF_ERROR(backend_->step(s, tokens, targets));
    if (s == firstStep_ && !o_.dumpStep.empty())
      HALO_RETURN_IF_ERROR(dumpStep(s, tokens, targets));
    ++intervalSteps;
    bool logged = s == firstStep_ || s % o_.logEvery == 0 || s == steps_;
    if (logged) {
      StatusOr<StepMetrics> m = backend_->metrics();
      if (!m.ok())
        return Status::error(fmt::format("step {}: {}", s, m.status().message()));
      Clock::time_point now = Clock::now();
      double seconds = std::chrono::duration<double>(now - intervalStart).count();
      double stepMs = 1000 * seconds / double(intervalSteps);
      double tokensPerS = double(batch_ * seq_ * intervalSteps) / seconds;
      double tflops = flops * double(intervalSteps) / seconds / 1e12;
      std::string text = fmt::format("step {}/{} | loss {:.4f}", s, steps_, m->loss);
      nlohmann::ordered_json line;
      line["step"] = s;
      line["loss"] = m->loss;
      if (fn_.findOutput("lr") >= 0) {
        text += fmt::format(" | lr {:.2e}", m->lr);
        line["lr"] = m->lr;
      }
      if (fn_.findOutput("grad_norm") >= 0) {
        text += fmt::format(" | grad_norm {:.3f}", m->gradNorm);
        line["grad_norm"] = m->gradNorm;
      }
      text += fmt::format(" | {:.0f} tok/s | {:.1f} ms/step | {:.3g} TFLOP/s", tokensPerS, stepMs,
                          tflops);
      if (o_.peakTflops > 0)
        text += fmt::format(" ({:.1f}% MFU)", 100 * tflops / o_.peakTflops);
      line["tokens_per_s"] = tokensPerS;
      line["step_ms"] = stepMs;
      line["tflops"] = tflops;
      fmt::print("{}\n", text);
      std::fflush(stdout);
      HALO_RETURN_IF_ERROR(record(line));
      HALO_RETURN_IF_ERROR(checkGuard(s));
      intervalStart = Clock::now();
      intervalSteps = 0;
    }
    if (o_.evalEvery > 0 && (s % o_.evalEvery == 0 || s == steps_)) {
      HALO_RETURN_IF_ERROR(evaluate(s));
      intervalStart = Clock::now(); // Evaluation time is not step time.
      intervalSteps = 0;
    }
    if (!o_.save.empty() && o_.saveEvery > 0 && s % o_.saveEvery == 0 && s != steps_) {
      HALO_RETURN_IF_ERROR(saveCheckpoint(o_.save, s));
      intervalStart = Clock::now();
      intervalSteps = 0;
    }
  }
  double total = std::chrono::duration<double>(Clock::now() - start).count();
  fmt::print("done: {} steps in {:.1f} s\n", steps_ - firstStep_ + 1, total);
  if (!o_.save.empty())
    HALO_RETURN_IF_ERROR(saveCheckpoint(o_.save, steps_));
  return Status::success();
}

} // namespace

void fillNormal(std::vector<float> &out, uint64_t seed, const std::string &name, double stddev) {
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

Status train(const TrainOptions &options, const cpu::Program &program,
             const frontend::ModelConfig &cfg) {
  return Trainer(options, program, cfg).run();
}

} // namespace halo::train
