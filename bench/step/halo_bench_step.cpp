//===- halo_bench_step.cpp - Time compiled training steps on one GPU ------===//
//
// halo's side of the step benchmark (issue 7; bench/torch_baseline.py is
// PyTorch's). For each program file:
//
//   1. start-up, each part timed: the driver and context (first program
//      only), readProgram, GemmEngine::create, CudaModules::load (NVRTC or
//      the kernel cache: the JSON says how many of the programs came from
//      the cache), CudaFunction::create (train_step), captureGraph, the
//      first step;
//   2. inputs: parameters N(0, initializer_range) (norm weights 1), moments
//      0, tokens and targets uniform in [0, vocab), step 1;
//   3. --warmup graph launches, then --iters launches, each bracketed by two
//      CUDA events and synchronised (as torch_baseline.py times its steps);
//      the median is the step time;
//   4. checks that the loss and the gradient norm are finite and that the
//      overflow guard skipped no step.
//
// Model FLOPs use torch_baseline.py's formula: 6 x linear parameters x
// tokens plus causal attention, 3 x 2 x b x s^2 x heads x head_dim per
// layer. "flops" counts the LM head; "head_flops" is its share (the 3-block
// PyTorch baseline has no head, so bench/report.py leaves it out there).
// Peak memory: free device memory (cuMemGetInfo) before the program's GEMM
// engine is created minus free memory after the timed steps (the executor
// allocates everything up front); "device_bytes" is what the CudaFunction
// itself allocated.
//
// --profile: after the timed steps, train_step runs 3 more times step by
// step without the graph, each schedule step between two CUDA events (all
// recorded in one pass, one sync); per step the median of the 3. Printed
// (and with --json written as "kind": "profile" rows) by category: the
// kernel kind, or "gemm:<role>:<operand 0's type>", sorted by time. For
// memory-bound kernels (all but attention*) the effective bandwidth: the
// bytes of the step's inputs and outputs (GEMMs: operands and results) per
// second, and as % of a device-to-device copy (1 GiB cuMemcpyDtoDAsync,
// median of 5, counted as 2 x 1 GiB moved). The last, "guard", is the
// overflow guard; the extra steps move the optimizer state on by 3 steps.
// --profile-steps N adds the N slowest schedule steps one by one (kernel
// name, or the GEMM's role and module), with their bandwidth.
//
// Usage:
//   halo-bench-step <program.halo>... [--warmup 5] [--iters 20]
//                   [--json out.jsonl] [--jobs N] [--tag NAME] [--profile]
//                   [--profile-steps N]
//   halo-bench-step <program.halo>... --compile-only [--arch sm_90a] [--jobs N]
// --jobs N compiles every CUDA source of all the programs with N threads
// into the kernel cache first (so that the timed loads are cache hits);
// --compile-only does only that (no GPU needed; --arch defaults to the
// device's kernel arch, else sm_90a) and prints each program's configuration. A cold
// start is measured by pointing HALO_CACHE_DIR at an empty directory
// (scripts/gpu/bench.sh); --tag NAME is copied into the JSON rows.
// The configuration name is the file name up to its first '.'
// ("blocks3-s2048.halo2-fp8.halo" -> "blocks3-s2048"); the mode comes from
// the program's "halo" section ("bf16", "halo2-fp8", ...), with "-f32m"
// appended when its AdamW moments are FP32 ("train.moment_dtype") and
// "-bf16w" when its weights are BF16 without masters ("train.master_dtype").
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Program.h"
#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/blas/GemmEngine.h"
#include "runtime/cuda/exec/CudaExecutor.h"
#include "runtime/numerics/Float8.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace halo;
using namespace halo::cuda;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Options {
  std::vector<std::string> programs;
  int warmup = 5;
  int iters = 20;
  std::string json;
  int jobs = 0;
  bool compileOnly = false;
  bool profile = false;
  int profileSteps = 0; ///< --profile-steps N: also the N slowest steps alone.
  std::string arch; ///< Default: the device's kernel arch, else sm_90a.
  std::string tag;
};

constexpr const char *kUsage =
    "usage: halo-bench-step <program.halo>... [--warmup N] [--iters N] [--json FILE] [--jobs N]\n"
    "                       [--tag NAME] [--profile] [--profile-steps N]\n"
    "       halo-bench-step <program.halo>... --compile-only [--arch sm_90a] [--jobs N]\n"
    "Times compiled training steps (CUDA graph replays, median of --iters after --warmup);\n"
    "see the comment at the top of bench/step/halo_bench_step.cpp and docs/performance.md.\n";

[[noreturn]] void usage(const std::string &why) {
  std::fprintf(stderr, "halo-bench-step: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a == "--compile-only") {
      o.compileOnly = true;
      continue;
    }
    if (a == "--profile") {
      o.profile = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      o.programs.push_back(a);
      continue;
    }
    if (i + 1 >= argc)
      usage("missing value for " + a);
    std::string v = argv[++i];
    if (a == "--warmup")
      o.warmup = std::max(0, std::atoi(v.c_str()));
    else if (a == "--iters")
      o.iters = std::max(1, std::atoi(v.c_str()));
    else if (a == "--json")
      o.json = v;
    else if (a == "--profile-steps") {
      o.profile = true;
      o.profileSteps = std::max(0, std::atoi(v.c_str()));
    }
    else if (a == "--jobs")
      o.jobs = std::max(0, std::atoi(v.c_str()));
    else if (a == "--arch")
      o.arch = v;
    else if (a == "--tag")
      o.tag = v;
    else
      usage("unknown flag " + a);
  }
  if (o.programs.empty())
    usage("no program files");
  return o;
}

/// What the benchmark needs from the program's model file.
struct Model {
  std::string config, mode;
  int64_t hidden = 0, ffn = 0, layers = 0, heads = 0, kvHeads = 0, headDim = 0, vocab = 0;
  int64_t batch = 0, seq = 0;
  double initRange = 0.02;

  int64_t tokens() const { return batch * seq; }
  int64_t linearParams() const {
    int64_t q = heads * headDim, kv = kvHeads * headDim;
    return layers * (hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * ffn);
  }
  double headFlops() const { return 6.0 * double(vocab * hidden) * double(tokens()); }
  double flops() const {
    double attention = 3.0 * double(layers) * 2 * double(batch) * double(seq) * double(seq) *
                       double(heads * headDim);
    return 6.0 * double(linearParams()) * double(tokens()) + headFlops() + attention;
  }
};

StatusOr<Model> describe(const cpu::Program &program) {
  try {
    json j = json::parse(program.modelJson);
    const json &m = j.at("model"), &t = j.at("train"), &h = j.at("halo");
    Model model;
    model.hidden = m.at("hidden_size");
    model.ffn = m.at("intermediate_size");
    model.layers = m.at("num_hidden_layers");
    model.heads = m.at("num_attention_heads");
    model.kvHeads = m.at("num_key_value_heads");
    model.headDim = m.at("head_dim");
    model.vocab = m.at("vocab_size");
    model.initRange = m.value("initializer_range", 0.02);
    model.batch = t.at("batch_size");
    model.seq = t.at("seq_len");
    std::string precision = h.value("precision", "fp8");
    if (precision == "bf16")
      model.mode = "bf16";
    else if (h.contains("level") && !h.contains("matmuls"))
      model.mode = fmt::format("halo{}-{}", h["level"].get<int>(), precision);
    else
      model.mode = "custom-" + precision;
    // The benchmark's rows keep BF16 moments (as PyTorch's); FP32 ones are marked.
    if (t.value("moment_dtype", "f32") == "f32")
      model.mode += "-f32m";
    // BF16 weights without FP32 masters (train.master_dtype), as PyTorch's.
    if (t.value("master_dtype", "f32") == "bf16")
      model.mode += "-bf16w";
    std::string stem = std::filesystem::path(program.path).filename().string();
    model.config = stem.substr(0, stem.find('.'));
    return model;
  } catch (const std::exception &e) {
    return Status::error(fmt::format("{}: the model section: {}", program.path, e.what()));
  }
}

/// Compiles every distinct source of `programs` into the kernel cache with
/// `jobs` threads (compileKernel is what CudaModules::load calls, with the
/// same options, so the loads that follow are cache hits).
Status compileAll(const std::vector<cpu::Program> &programs, const std::string &arch, int jobs) {
  std::vector<std::pair<std::string, const std::string *>> sources;
  std::set<std::pair<std::string, std::string>> seen;
  for (const cpu::Program &p : programs)
    for (const auto &[name, source] : p.cudaSources)
      if (seen.insert({name, source}).second)
        sources.push_back({name, &source});
  Clock::time_point start = Clock::now();
  std::atomic<size_t> next{0}, cached{0};
  std::mutex mutex;
  Status failed = Status::success();
  auto worker = [&] {
    CompileOptions options;
    options.arch = arch;
    for (size_t i; (i = next++) < sources.size();) {
      StatusOr<CompiledKernel> k = compileKernel({sources[i].first, *sources[i].second, {}}, options);
      std::lock_guard<std::mutex> lock(mutex);
      if (!k.ok() && failed.ok())
        failed = Status::error(fmt::format("kernel program {}: {}", sources[i].first,
                                           k.status().message()));
      else if (k.ok())
        cached += k->fromCache;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, jobs); ++t)
    threads.emplace_back(worker);
  for (std::thread &t : threads)
    t.join();
  HALO_RETURN_IF_ERROR(failed);
  std::printf("compiled %zu distinct kernel programs of %zu program files for %s with %d "
              "threads in %.1f s (%zu from the cache)\n",
              sources.size(), programs.size(), arch.c_str(), std::max(1, jobs), since(start),
              size_t(cached));
  std::fflush(stdout);
  return Status::success();
}

/// A pool of N(0, 1) values; tensors take windows of it at random offsets
/// (independent values are not needed for timing, and 650M normals would
/// take seconds on the host).
const std::vector<float> &normalPool() {
  static const std::vector<float> pool = [] {
    std::vector<float> p(size_t(1) << 22);
    std::mt19937_64 rng(0);
    std::normal_distribution<float> normal;
    for (float &x : p)
      x = normal(rng);
    return p;
  }();
  return pool;
}

/// Fills train_step's inputs (see the file comment).
Status fillInputs(const CudaContext &context, const CudaFunction &f, const Model &model,
                  uint64_t seed) {
  const CudaDriver &d = context.driver();
  const cpu::Function &fn = f.function();
  const std::vector<float> &pool = normalPool();
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> bytes;
  // Where each "normal" parameter starts in the pool: its compute copy
  // (state "compute") gets the same values.
  std::map<std::string, size_t> poolStart;
  for (size_t i = 0; i < fn.inputs.size(); ++i) {
    const cpu::Binding &b = fn.inputs[i];
    const cpu::ValueInfo &v = fn.values[b.value];
    size_t n = size_t(v.numel);
    std::vector<float> values;
    if (b.isParam()) {
      // A compute copy takes its master's values; moments (and anything
      // uninitialised) stay zero.
      int64_t master = b.state == "compute" ? fn.findParamInput(b.param, "param")
                       : b.state == "param" ? int64_t(i)
                                            : -1;
      if (master < 0)
        continue;
      const cpu::Binding &m = fn.inputs[size_t(master)];
      if (m.init != "normal" && m.init != "ones")
        continue;
      values.resize(n, 1.0f);
      if (m.init == "normal") {
        auto known = poolStart.find(b.param);
        size_t at = known != poolStart.end() ? known->second
                                             : (poolStart[b.param] = rng() % pool.size());
        for (size_t k = 0; k < n; ++k) {
          values[k] = float(model.initRange) * pool[at];
          at = at + 1 == pool.size() ? 0 : at + 1;
        }
      }
    } else if (b.name == "tokens" || b.name == "targets" || b.name == "step") {
      if (v.type != cpu::ElementType::I32)
        return Status::error(fmt::format("input '{}' is {}, expected i32", b.name,
                                         cpu::toString(v.type)));
      std::vector<int32_t> ids(n, 1);
      if (b.name != "step")
        for (int32_t &id : ids)
          id = int32_t(rng() % uint64_t(model.vocab));
      HALO_CU_RETURN_IF_ERROR(d, cuMemcpyHtoD(f.input(i), ids.data(), n * 4));
      continue;
    } else {
      continue;
    }
    if (v.type == cpu::ElementType::F32) {
      HALO_CU_RETURN_IF_ERROR(d, cuMemcpyHtoD(f.input(i), values.data(), n * 4));
      continue;
    }
    bytes.resize(n * 2);
    if (v.type == cpu::ElementType::BF16) {
      for (size_t k = 0; k < n; ++k) {
        uint16_t h = numerics::floatToBF16(values[k]);
        std::memcpy(&bytes[2 * k], &h, 2);
      }
    } else {
      return Status::error(fmt::format("parameter {} is {}, expected f32 or bf16", b.param,
                                       cpu::toString(v.type)));
    }
    HALO_CU_RETURN_IF_ERROR(d, cuMemcpyHtoD(f.input(i), bytes.data(), bytes.size()));
  }
  return Status::success();
}

StatusOr<float> readScalar(const CudaContext &context, const CudaFunction &f, const char *name,
                           CUstream stream) {
  int64_t o = f.function().findOutput(name);
  if (o < 0)
    return std::nanf("");
  float v = 0;
  const CudaDriver &d = context.driver();
  HALO_CU_RETURN_IF_ERROR(
      d, cuMemcpyDtoHAsync(&v, f.valuePointer(f.function().outputs[o].value), 4, stream));
  HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
  return v;
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (double(v[n / 2 - 1]) + v[n / 2]) / 2;
}

/// Device-to-device copy bandwidth, GB/s: 1 GiB, median of 5, read + write.
StatusOr<double> copyBandwidth(const CudaDriver &d, CUstream stream) {
  const size_t bytes = size_t(1) << 30;
  StatusOr<DeviceBuffer> src = DeviceBuffer::allocate(d, bytes);
  if (!src.ok())
    return src.status();
  StatusOr<DeviceBuffer> dst = DeviceBuffer::allocate(d, bytes);
  if (!dst.ok())
    return dst.status();
  CUevent e[6];
  for (CUevent &x : e)
    HALO_CU_RETURN_IF_ERROR(d, cuEventCreate(&x, CU_EVENT_DEFAULT));
  HALO_CU_RETURN_IF_ERROR(d, cuMemcpyDtoDAsync(dst->pointer(), src->pointer(), bytes, stream));
  HALO_CU_RETURN_IF_ERROR(d, cuEventRecord(e[0], stream));
  for (int i = 1; i < 6; ++i) {
    HALO_CU_RETURN_IF_ERROR(d, cuMemcpyDtoDAsync(dst->pointer(), src->pointer(), bytes, stream));
    HALO_CU_RETURN_IF_ERROR(d, cuEventRecord(e[i], stream));
  }
  HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
  std::vector<float> ms(5);
  for (int i = 0; i < 5; ++i)
    HALO_CU_RETURN_IF_ERROR(d, cuEventElapsedTime(&ms[i], e[i], e[i + 1]));
  for (CUevent x : e)
    (void)d.cuEventDestroy(x);
  return 2.0 * double(bytes) / median(ms) / 1e6;
}

/// --profile (see the file comment): one JSON row per category, by time.
StatusOr<json> profileSteps(const CudaContext &context, const cpu::Program &program,
                            CudaFunction &f, CUstream stream, double copyGBs, int slowest) {
  const CudaDriver &d = context.driver();
  const cpu::Function &fn = f.function();
  size_t steps = f.stepCount();
  std::vector<CUevent> events(steps + 1);
  for (CUevent &e : events)
    HALO_CU_RETURN_IF_ERROR(d, cuEventCreate(&e, CU_EVENT_DEFAULT));
  std::vector<std::vector<float>> times(steps);
  for (int rep = 0; rep < 3; ++rep) {
    HALO_CU_RETURN_IF_ERROR(d, cuEventRecord(events[0], stream));
    for (size_t i = 0; i < steps; ++i) {
      HALO_RETURN_IF_ERROR(f.runSteps(i, i + 1, stream));
      HALO_CU_RETURN_IF_ERROR(d, cuEventRecord(events[i + 1], stream));
    }
    HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
    for (size_t i = 0; i < steps; ++i) {
      float ms = 0;
      HALO_CU_RETURN_IF_ERROR(d, cuEventElapsedTime(&ms, events[i], events[i + 1]));
      times[i].push_back(ms);
    }
  }
  for (CUevent e : events)
    (void)d.cuEventDestroy(e);

  struct Category {
    int count = 0;
    double ms = 0, bytes = 0;
  };
  std::map<std::string, Category> categories;
  auto bytesOf = [&](const std::vector<int64_t> &ids) {
    double b = 0;
    for (int64_t id : ids)
      b += double(fn.values[id].numel) * double(elementBytes(fn.values[id].type));
    return b;
  };
  double total = 0;
  struct StepTime {
    std::string what;
    double ms, bytes;
  };
  std::vector<StepTime> perStep;
  for (size_t i = 0; i < steps; ++i) {
    std::string name = "guard", what = name; // category; the step's own label
    double bytes = 0;
    if (i < fn.schedule.size()) {
      const cpu::ScheduleStep &s = fn.schedule[i];
      if (!s.kernel.empty()) {
        name = program.cudaKernels.at(s.kernel).kind;
        what = s.kernel;
        bytes = bytesOf(s.inputs) + bytesOf(s.outputs);
      } else {
        name.clear();
        for (int64_t k = s.firstOp; k < s.firstOp + s.numOps; ++k) {
          const cpu::Op &op = fn.ops[k];
          if (op.kind == cpu::OpKind::Constant)
            continue;
          if (name.empty()) {
            name = fmt::format("gemm:{}:{}",
                               op.attrs.role.empty() ? cpu::toString(op.kind) : op.attrs.role,
                               cpu::toString(fn.values[op.operands[0]].type));
            what = fmt::format("{} {}", name, op.loc);
          }
          bytes += bytesOf(op.operands) + bytesOf(op.results);
        }
        if (name.empty())
          continue; // constants: filled at set-up, nothing runs
      }
    }
    Category &c = categories[name];
    double ms = median(times[i]);
    perStep.push_back({what, ms, bytes});
    c.count += 1;
    c.ms += ms;
    c.bytes += bytes;
    total += ms;
  }
  std::vector<std::pair<std::string, Category>> sorted(categories.begin(), categories.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto &a, const auto &b) { return a.second.ms > b.second.ms; });
  std::printf("  step by step (no graph, median of 3 per step): %.2f ms in %zu steps; "
              "device-to-device copy %.0f GB/s\n"
              "  %-28s %5s %10s %7s %8s %7s\n",
              total, steps, copyGBs, "category", "count", "total ms", "% step", "GB/s", "% copy");
  json rows = json::array();
  for (const auto &[name, c] : sorted) {
    json r = {{"kind", "profile"}, {"category", name}, {"count", c.count},
              {"ms", c.ms},        {"pct", 100 * c.ms / total}, {"bytes", c.bytes}};
    bool memoryBound = name.rfind("gemm:", 0) != 0 && name.rfind("attention", 0) != 0 &&
                       name != "guard" && c.ms > 0;
    std::string bw;
    if (memoryBound) {
      r["gb_s"] = c.bytes / c.ms / 1e6;
      if (copyGBs > 0)
        r["copy_pct"] = 100 * r["gb_s"].get<double>() / copyGBs;
      bw = fmt::format("{:8.0f} {:6.1f}%", r["gb_s"].get<double>(), r.value("copy_pct", 0.0));
    }
    std::printf("  %-28s %5d %10.3f %6.1f%% %s\n", name.c_str(), c.count, c.ms,
                100 * c.ms / total, bw.c_str());
    rows.push_back(r);
  }
  if (slowest > 0) {
    std::sort(perStep.begin(), perStep.end(),
              [](const StepTime &a, const StepTime &b) { return a.ms > b.ms; });
    perStep.resize(std::min(perStep.size(), size_t(slowest)));
    std::printf("  the %zu slowest steps:\n  %9s %8s %7s  %s\n", perStep.size(), "ms", "GB/s",
                "% copy", "kernel or GEMM");
    for (const StepTime &s : perStep) {
      double gbs = s.ms > 0 ? s.bytes / s.ms / 1e6 : 0;
      std::printf("  %9.3f %8.0f %6.1f%%  %s\n", s.ms, gbs, copyGBs > 0 ? 100 * gbs / copyGBs : 0,
                  s.what.c_str());
    }
  }
  std::fflush(stdout);
  return rows;
}

/// Benchmarks one program; returns its JSON row.
StatusOr<json> benchProgram(const CudaContext &context, const std::string &path,
                            const Options &o, CUstream stream, double contextSeconds,
                            double copyGBs) {
  const CudaDriver &d = context.driver();
  StatusOr<MemoryInfo> mem0 = context.memoryInfo();
  if (!mem0.ok())
    return mem0.status();
  json row;
  Clock::time_point t = Clock::now();
  StatusOr<cpu::Program> program = cpu::readProgram(path);
  if (!program.ok())
    return program.status();
  double readS = since(t);
  StatusOr<Model> model = describe(*program);
  if (!model.ok())
    return model.status();
  const cpu::Function *fn = program->find("train_step");
  if (!fn)
    return Status::error(path + ": no train_step function");

  t = Clock::now();
  StatusOr<std::unique_ptr<GemmEngine>> gemms = GemmEngine::create(context);
  if (!gemms.ok())
    return gemms.status();
  double engineS = since(t);
  t = Clock::now();
  StatusOr<std::unique_ptr<CudaModules>> modules = CudaModules::load(context, *program);
  if (!modules.ok())
    return modules.status();
  double loadS = since(t);
  t = Clock::now();
  StatusOr<std::unique_ptr<CudaFunction>> step =
      CudaFunction::create(context, **gemms, **modules, *program, *fn);
  if (!step.ok())
    return step.status();
  double createS = since(t);
  CudaFunction &f = **step;

  HALO_RETURN_IF_ERROR(fillInputs(context, f, *model, 1));
  t = Clock::now();
  HALO_RETURN_IF_ERROR(f.captureGraph(stream));
  double captureS = since(t);
  t = Clock::now();
  HALO_RETURN_IF_ERROR(f.launchGraph(stream));
  HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
  double firstS = since(t);

  for (int i = 0; i < o.warmup; ++i)
    HALO_RETURN_IF_ERROR(f.launchGraph(stream));
  HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
  CUevent a = nullptr, b = nullptr;
  HALO_CU_RETURN_IF_ERROR(d, cuEventCreate(&a, CU_EVENT_DEFAULT));
  HALO_CU_RETURN_IF_ERROR(d, cuEventCreate(&b, CU_EVENT_DEFAULT));
  std::vector<float> times;
  for (int i = 0; i < o.iters; ++i) {
    HALO_CU_RETURN_IF_ERROR(d, cuEventRecord(a, stream));
    HALO_RETURN_IF_ERROR(f.launchGraph(stream));
    HALO_CU_RETURN_IF_ERROR(d, cuEventRecord(b, stream));
    HALO_CU_RETURN_IF_ERROR(d, cuEventSynchronize(b));
    float ms = 0;
    HALO_CU_RETURN_IF_ERROR(d, cuEventElapsedTime(&ms, a, b));
    times.push_back(ms);
  }
  (void)d.cuEventDestroy(a);
  (void)d.cuEventDestroy(b);
  StatusOr<MemoryInfo> mem1 = context.memoryInfo();
  if (!mem1.ok())
    return mem1.status();
  StatusOr<float> loss = readScalar(context, f, "loss", stream);
  StatusOr<float> norm = readScalar(context, f, "grad_norm", stream);
  StatusOr<GuardReport> guard = f.readGuard(stream);
  if (!loss.ok() || !norm.ok() || !guard.ok())
    return !loss.ok() ? loss.status() : !norm.ok() ? norm.status() : guard.status();

  std::vector<float> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  double ms = median(times); // statistics.median, as torch_baseline.py takes it.
  bool finite = std::isfinite(*loss) && (f.function().findOutput("grad_norm") < 0 ||
                                         std::isfinite(*norm));
  bool ok = finite && guard->skippedSteps == 0 && !guard->badTokenId;
  const CudaModules::Stats &ls = (*modules)->stats();
  double peak = double(mem0->freeBytes) - double(mem1->freeBytes);
  row = {{"engine", "halo"},
         {"config", model->config},
         {"mode", model->mode},
         {"program", path},
         {"device", context.info().name},
         {"batch", model->batch},
         {"seq", model->seq},
         {"layers", model->layers},
         {"vocab", model->vocab},
         {"step_ms", ms},
         {"min_ms", sorted.front()},
         {"max_ms", sorted.back()},
         {"times_ms", times},
         {"tokens_per_s", double(model->tokens()) / ms * 1e3},
         {"flops", model->flops()},
         {"head_flops", model->headFlops()},
         {"tflops", model->flops() / ms / 1e9},
         {"peak_bytes", peak},
         {"peak_gib", peak / double(1ull << 30)},
         {"device_bytes", f.deviceBytes()},
         {"launches", f.launchCount()},
         {"gemms", f.gemmCount()},
         {"kernel_programs", ls.programs},
         {"from_cache", ls.fromCache},
         {"context_s", contextSeconds},
         {"read_s", readS},
         {"gemm_engine_s", engineS},
         {"load_s", ls.seconds},
         {"load_wall_s", loadS},
         {"create_s", createS},
         {"capture_s", captureS},
         {"first_step_s", firstS},
         {"start_s", contextSeconds + readS + engineS + loadS + createS + captureS + firstS},
         {"loss", *loss},
         {"grad_norm", *norm},
         {"skipped_steps", guard->skippedSteps},
         {"finite", ok},
         {"warmup", o.warmup},
         {"iters", o.iters}};
  if (!o.tag.empty())
    row["tag"] = o.tag;
  std::printf("%-14s %-10s b%lld s%-5lld %9.2f ms %10.0f tok/s %7.1f TFLOP/s %6.2f GiB  "
              "%zu launches + %zu GEMMs  load %.2f s (%zu/%zu cached)  start %.2f s  loss %.4f"
              "%s\n",
              model->config.c_str(), model->mode.c_str(), (long long)model->batch,
              (long long)model->seq, ms, double(model->tokens()) / ms * 1e3,
              model->flops() / ms / 1e9, peak / double(1ull << 30), f.launchCount(),
              f.gemmCount(), ls.seconds, ls.fromCache, ls.programs, row["start_s"].get<double>(),
              *loss, ok ? "" : "  NOT FINITE / STEPS SKIPPED");
  std::fflush(stdout);
  if (o.profile) {
    StatusOr<json> profile = profileSteps(context, *program, f, stream, copyGBs, o.profileSteps);
    if (!profile.ok()) {
      std::fprintf(stderr, "halo-bench-step: %s: --profile: %s\n", path.c_str(),
                   profile.status().message().c_str());
      row["profile_error"] = profile.status().message();
      return row;
    }
    for (json &r : *profile)
      for (const char *k : {"engine", "config", "mode", "program", "device", "tag"})
        if (row.contains(k))
          r[k] = row[k];
    row["profile"] = std::move(*profile);
  }
  return row;
}

int run(const Options &o) {
  Clock::time_point start = Clock::now();
  if (o.compileOnly || o.jobs > 0) {
    std::vector<cpu::Program> programs;
    for (const std::string &p : o.programs) {
      StatusOr<cpu::Program> program = cpu::readProgram(p);
      if (!program.ok()) {
        std::fprintf(stderr, "halo-bench-step: error: %s\n", program.status().message().c_str());
        return 1;
      }
      programs.push_back(std::move(*program));
    }
    std::string arch = o.arch;
    if (arch.empty()) {
      // The device's arch, as CudaModules::load uses it.
      StatusOr<const CudaDriver *> driver = CudaDriver::load();
      StatusOr<DeviceInfo> info =
          driver.ok() ? queryDevice(**driver, 0) : StatusOr<DeviceInfo>(driver.status());
      if (!info.ok() && !o.compileOnly) {
        std::fprintf(stderr, "halo-bench-step: error: %s\n", info.status().message().c_str());
        return 1;
      }
      arch = info.ok() ? info->kernelArch() : "sm_90a";
    }
    for (const cpu::Program &p : programs) {
      StatusOr<Model> m = describe(p);
      if (!m.ok()) {
        std::fprintf(stderr, "halo-bench-step: error: %s\n", m.status().message().c_str());
        return 1;
      }
      std::printf("%-14s %-10s b%lld s%-5lld %5.1fM params in linears, %.1f TFLOP a step "
                  "(LM head %.2f), %zu kernel programs: %s\n",
                  m->config.c_str(), m->mode.c_str(), (long long)m->batch, (long long)m->seq,
                  double(m->linearParams()) / 1e6, m->flops() / 1e12, m->headFlops() / 1e12,
                  p.cudaSources.size(), p.path.c_str());
    }
    Status s = compileAll(programs, arch, o.jobs);
    if (!s.ok()) {
      std::fprintf(stderr, "halo-bench-step: error: %s\n", s.message().c_str());
      return 1;
    }
    if (o.compileOnly)
      return 0;
  }

  Clock::time_point contextStart = Clock::now();
  StatusOr<const CudaDriver *> driver = CudaDriver::load();
  if (!driver.ok()) {
    std::fprintf(stderr, "halo-bench-step: error: %s\n", driver.status().message().c_str());
    return 1;
  }
  StatusOr<CudaContext> context = CudaContext::create(**driver, 0);
  if (!context.ok()) {
    std::fprintf(stderr, "halo-bench-step: error: %s\n", context.status().message().c_str());
    return 1;
  }
  double contextS = since(contextStart);
  CUstream stream = nullptr;
  if ((**driver).cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS) {
    std::fprintf(stderr, "halo-bench-step: error: cuStreamCreate failed\n");
    return 1;
  }
  std::FILE *out = nullptr;
  if (!o.json.empty() && !(out = std::fopen(o.json.c_str(), "a"))) {
    std::fprintf(stderr, "halo-bench-step: error: cannot write %s\n", o.json.c_str());
    return 1;
  }
  std::printf("device: %s (%s), NVRTC %s, %d warm-up + %d timed steps; set-up %.1f s\n",
              context->info().name.c_str(), context->info().arch().c_str(),
              nvrtcVersionString().c_str(), o.warmup, o.iters, since(start));
  double copyGBs = 0;
  if (o.profile) {
    StatusOr<double> bw = copyBandwidth(**driver, stream);
    if (!bw.ok())
      std::fprintf(stderr, "halo-bench-step: no copy bandwidth: %s\n", bw.status().message().c_str());
    copyGBs = bw.ok() ? *bw : 0;
  }
  int status = 0;
  for (size_t i = 0; i < o.programs.size(); ++i) {
    StatusOr<json> row =
        benchProgram(*context, o.programs[i], o, stream, i == 0 ? contextS : 0, copyGBs);
    if (!row.ok()) {
      std::fprintf(stderr, "halo-bench-step: error: %s: %s\n", o.programs[i].c_str(),
                   row.status().message().c_str());
      status = 1;
      if (out)
        std::fprintf(out, "%s\n",
                     json{{"engine", "halo"}, {"program", o.programs[i]}, {"tag", o.tag},
                          {"error", row.status().message()}}
                         .dump()
                         .c_str());
      continue;
    }
    if (!(*row)["finite"].get<bool>())
      status = 1;
    json profile = row->value("profile", json::array());
    row->erase("profile");
    if (out) {
      std::fprintf(out, "%s\n", row->dump().c_str());
      for (const json &r : profile)
        std::fprintf(out, "%s\n", r.dump().c_str());
      std::fflush(out);
    }
  }
  if (out)
    std::fclose(out);
  (void)(**driver).cuStreamDestroy(stream);
  return status;
}

} // namespace

int main(int argc, char **argv) { return run(parse(argc, argv)); }
