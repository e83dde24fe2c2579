//===- CudaBackend.cpp - Training steps as a replayed CUDA graph ----------===//
//
// One stream. A step is three small host-to-device copies (tokens, targets,
// step) and one graph launch; nothing waits for the GPU until the Trainer
// asks for metrics (once per logged step), so the host prepares the next
// batch while the GPU runs this one.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/exec/CudaExecutor.h"
#include "runtime/numerics/Float8.h"
#include "runtime/train/Backend.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

namespace halo::train {
namespace {

using cpu::ElementType;

/// Host floats -> the device layout of `type` (parameters: f32 or bf16).
std::vector<uint8_t> toDevice(const Tensor &t, ElementType type) {
  std::vector<uint8_t> bytes(t.data.size() * cuda::elementBytes(type));
  if (type == ElementType::BF16) {
    for (size_t i = 0; i < t.data.size(); ++i) {
      uint16_t b = numerics::floatToBF16(t.data[i]);
      std::memcpy(&bytes[2 * i], &b, 2);
    }
  } else {
    std::memcpy(bytes.data(), t.data.data(), bytes.size());
  }
  return bytes;
}

class CudaBackend : public Backend {
public:
  static StatusOr<std::unique_ptr<Backend>> create(const cpu::Program &program,
                                                   BackendOptions options) {
    if (options.exact)
      return Status::error("--exact runs only on the CPU oracle (--device cpu)");
    StatusOr<const cuda::CudaDriver *> driver = cuda::CudaDriver::load();
    if (!driver.ok())
      return Status::error(driver.status().message() + "");
    StatusOr<cuda::CudaContext> context = cuda::CudaContext::create(**driver, 0);
    if (!context.ok())
      return context.status();
    std::unique_ptr<CudaBackend> b(new CudaBackend(std::move(*context)));
    HALO_RETURN_IF_ERROR(b->init(program, options));
    return std::unique_ptr<Backend>(std::move(b));
  }

  ~CudaBackend() override {
    step_.reset();
    forward_.reset();
    if (stream_)
      (void)context_.driver().cuStreamDestroy(stream_);
  }

  std::string describe() const override {
    const cuda::DeviceInfo &info = context_.info();
    return fmt::format("cuda: {} ({}), {} kernel programs ({} cached, {:.1f} s), {} launches + "
                       "{} GEMMs per step, {:.2f} GiB",
                       info.name, info.arch(), modules_->stats().programs,
                       modules_->stats().fromCache, modules_->stats().seconds,
                       step_->launchCount(), step_->gemmCount(),
                       double(step_->deviceBytes() + (forward_ ? forward_->deviceBytes() : 0)) /
                           double(1ull << 30));
  }

  Status upload(const std::vector<Tensor> &state) override {
    const cpu::Function &fn = step_->function();
    for (size_t i = 0; i < fn.inputs.size(); ++i)
      if (fn.inputs[i].isParam())
        HALO_RETURN_IF_ERROR(copyIn(step_->input(i), toDevice(state[i], type(fn, i))));
    forwardStale_ = true;
    return Status::success();
  }

  Status download(std::vector<Tensor> &state) override {
    const cpu::Function &fn = step_->function();
    HALO_CU_RETURN_IF_ERROR(driver(), cuStreamSynchronize(stream_));
    for (size_t i = 0; i < fn.inputs.size(); ++i) {
      if (!fn.inputs[i].isParam())
        continue;
      Tensor &t = state[i];
      t.data.resize(size_t(fn.values[fn.inputs[i].value].numel));
      if (type(fn, i) == ElementType::F32) {
        HALO_CU_RETURN_IF_ERROR(
            driver(), cuMemcpyDtoH(t.data.data(), step_->input(i), t.data.size() * sizeof(float)));
      } else if (type(fn, i) == ElementType::BF16) { // compute copies, frozen weights
        std::vector<uint16_t> bits(t.data.size());
        HALO_CU_RETURN_IF_ERROR(driver(),
                                cuMemcpyDtoH(bits.data(), step_->input(i), bits.size() * 2));
        for (size_t k = 0; k < bits.size(); ++k)
          t.data[k] = numerics::bf16ToFloat(bits[k]);
      } else {
        return Status::error(fmt::format("parameter state {} of \"{}\" is {}, expected f32 or bf16",
                                         fn.inputs[i].state, fn.inputs[i].param,
                                         cpu::toString(type(fn, i))));
      }
    }
    return Status::success();
  }

  Status step(int64_t s, const std::vector<int32_t> &tokens,
              const std::vector<int32_t> &targets) override {
    const cpu::Function &fn = step_->function();
    stepValue_ = int32_t(s);
    // Pageable copies: the driver stages them before returning, so the host
    // may refill its batch at once.
    HALO_CU_RETURN_IF_ERROR(driver(), cuMemcpyHtoDAsync(step_->input(fn.findInput("tokens")),
                                                        tokens.data(), tokens.size() * 4, stream_));
    HALO_CU_RETURN_IF_ERROR(driver(), cuMemcpyHtoDAsync(step_->input(fn.findInput("targets")),
                                                        targets.data(), targets.size() * 4,
                                                        stream_));
    HALO_CU_RETURN_IF_ERROR(driver(), cuMemcpyHtoDAsync(step_->input(fn.findInput("step")),
                                                        &stepValue_, 4, stream_));
    forwardStale_ = true;
    Status launched = step_->launchGraph(stream_);
    if (!launched.ok())
      return Status::error(fmt::format("step {}: {}", s, launched.message()));
    return Status::success();
  }

  StatusOr<StepMetrics> metrics() override {
    const cpu::Function &fn = step_->function();
    float v[3] = {0, 0, 0};
    const char *names[3] = {"loss", "lr", "grad_norm"};
    for (int k = 0; k < 3; ++k)
      if (int64_t o = fn.findOutput(names[k]); o >= 0)
        HALO_CU_RETURN_IF_ERROR(driver(), cuMemcpyDtoHAsync(&v[k],
                                                            step_->valuePointer(fn.outputs[o].value),
                                                            4, stream_));
    Status synced = sync("the training step");
    if (!synced.ok())
      return synced;
    return StepMetrics{v[0], v[1], v[2]};
  }

  StatusOr<std::vector<Tensor>> outputs() override {
    const cpu::Function &fn = step_->function();
    Status synced = sync("the training step");
    if (!synced.ok())
      return synced;
    std::vector<Tensor> outs(fn.outputs.size());
    for (size_t k = 0; k < fn.outputs.size(); ++k) {
      const cpu::ValueInfo &info = fn.values[fn.outputs[k].value];
      Tensor &t = outs[k];
      t.type = info.type;
      t.shape = info.shape;
      if (!cpu::isFloatType(info.type))
        continue;
      std::vector<uint8_t> bytes(size_t(info.numel) * cuda::elementBytes(info.type));
      HALO_CU_RETURN_IF_ERROR(driver(), cuMemcpyDtoH(bytes.data(),
                                                     step_->valuePointer(fn.outputs[k].value),
                                                     bytes.size()));
      t.data.resize(size_t(info.numel));
      for (size_t i = 0; i < t.data.size(); ++i) {
        if (info.type == ElementType::F32) {
          std::memcpy(&t.data[i], &bytes[4 * i], 4);
        } else {
          uint16_t b;
          std::memcpy(&b, &bytes[2 * i], 2);
          t.data[i] = numerics::bf16ToFloat(b);
        }
      }
    }
    return outs;
  }

  StatusOr<GuardStatus> guard() override {
    StatusOr<cuda::GuardReport> r = step_->readGuard(stream_);
    if (!r.ok())
      return r.status();
    if (r->badTokenId)
      return Status::error("an embedding read a token id outside the vocabulary");
    GuardStatus g{r->skippedSteps, r->firstBadStep, r->lastBadStep, ""};
    if (r->badTensor >= 0)
      g.tensor = step_->gradientName(r->badTensor);
    if (r->skippedSteps > 0 || r->badTensor >= 0)
      HALO_RETURN_IF_ERROR(step_->resetGuard(stream_));
    if (r->skippedSteps > 0 && std::getenv("HALO_LOCATE_NONFINITE")) {
      // Debugging: replay the last batch kernel by kernel to find the origin.
      StatusOr<std::string> where = step_->locateNonFinite(stream_);
      if (!where.ok())
        return where.status();
      fmt::print("HALO_LOCATE_NONFINITE: {}\n", where->empty() ? "not reproduced" : *where);
    }
    return g;
  }

  StatusOr<double> evalLoss(const std::vector<int32_t> &tokens,
                            const std::vector<int32_t> &targets) override {
    const cpu::Function &fwd = forward_->function();
    if (forwardStale_) {
      // forward reads BF16 compute copies: made from the FP32 masters here
      // (evaluation is rare; a copy through the host keeps the step graph
      // free of evaluation work).
      std::vector<Tensor> state(step_->function().inputs.size());
      HALO_RETURN_IF_ERROR(download(state));
      const cpu::Function &fn = step_->function();
      for (size_t i = 0; i < fwd.inputs.size(); ++i)
        if (fwd.inputs[i].isParam())
          HALO_RETURN_IF_ERROR(copyIn(
              forward_->input(i),
              toDevice(state[fn.findParamInput(fwd.inputs[i].param, "param")], type(fwd, i))));
      forwardStale_ = false;
    }
    HALO_RETURN_IF_ERROR(copyIn(forward_->input(fwd.findInput("tokens")),
                                {reinterpret_cast<const uint8_t *>(tokens.data()),
                                 reinterpret_cast<const uint8_t *>(tokens.data() + tokens.size())}));
    HALO_RETURN_IF_ERROR(copyIn(forward_->input(fwd.findInput("targets")),
                                {reinterpret_cast<const uint8_t *>(targets.data()),
                                 reinterpret_cast<const uint8_t *>(targets.data() + targets.size())}));
    HALO_RETURN_IF_ERROR(forward_->launchGraph(stream_));
    float loss = 0;
    HALO_CU_RETURN_IF_ERROR(
        driver(), cuMemcpyDtoHAsync(&loss, forward_->valuePointer(fwd.outputs[fwd.findOutput("loss")].value),
                                    4, stream_));
    HALO_RETURN_IF_ERROR(sync("evaluation"));
    return double(loss);
  }

private:
  explicit CudaBackend(cuda::CudaContext context) : context_(std::move(context)) {}

  const cuda::CudaDriver &driver() const { return context_.driver(); }
  static ElementType type(const cpu::Function &fn, size_t input) {
    return fn.values[fn.inputs[input].value].type;
  }

  Status init(const cpu::Program &program, BackendOptions options) {
    HALO_CU_RETURN_IF_ERROR(driver(), cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING));
    StatusOr<std::unique_ptr<cuda::GemmEngine>> gemms = cuda::GemmEngine::create(context_);
    if (!gemms.ok())
      return gemms.status();
    gemms_ = std::move(*gemms);
    StatusOr<std::unique_ptr<cuda::CudaModules>> modules =
        cuda::CudaModules::load(context_, program);
    if (!modules.ok())
      return modules.status();
    modules_ = std::move(*modules);
    StatusOr<std::unique_ptr<cuda::CudaFunction>> step = cuda::CudaFunction::create(
        context_, *gemms_, *modules_, program, *program.find("train_step"));
    if (!step.ok())
      return step.status();
    step_ = std::move(*step);
    if (options.evaluate) {
      StatusOr<std::unique_ptr<cuda::CudaFunction>> fwd = cuda::CudaFunction::create(
          context_, *gemms_, *modules_, program, *program.find("forward"));
      if (!fwd.ok())
        return fwd.status();
      forward_ = std::move(*fwd);
    }
    return Status::success();
  }

  Status copyIn(CUdeviceptr to, const std::vector<uint8_t> &bytes) {
    HALO_CU_RETURN_IF_ERROR(driver(), cuMemcpyHtoDAsync(to, bytes.data(), bytes.size(), stream_));
    // The source is a temporary: wait until the copy has read it.
    return sync("a host-to-device copy");
  }

  Status sync(const char *what) {
    CUresult r = driver().cuStreamSynchronize(stream_);
    if (r != CUDA_SUCCESS)
      return Status::error(fmt::format("{} failed on the GPU: {}", what, driver().describe(r)));
    return Status::success();
  }

  cuda::CudaContext context_;
  CUstream stream_ = nullptr;
  std::unique_ptr<cuda::GemmEngine> gemms_;
  std::unique_ptr<cuda::CudaModules> modules_;
  std::unique_ptr<cuda::CudaFunction> step_, forward_;
  int32_t stepValue_ = 0;
  bool forwardStale_ = true;
};

} // namespace

StatusOr<std::unique_ptr<Backend>> makeCudaBackend(const cpu::Program &program,
                                                   BackendOptions options) {
  return CudaBackend::create(program, options);
}

} // namespace halo::train
