//===- gpu_check.cpp - Run the kernel templates on a GPU, compare to CPU ---===//
//
// Built twice: as halo-kernels-gpu-check (with main, no GoogleTest; see
// scripts/gpu/kernels/check.sh) and into halo-kernels-tests
// (HALO_GPU_CHECK_NO_MAIN; GpuCheckTest.cpp calls runGpuChecks).
//
// Exactness argument for the quantizers: the kernels perform the FP32
// additions of the CPU oracle (numerics::hadamardRows/Cols) in the same order
// (see hadamard_rows.cuh), divide by the scale with IEEE division and round
// with the same RNE / saturating conversions, so codes and scales must match
// bit for bit; any mismatch is reported with its code-step histogram.
//
//===----------------------------------------------------------------------===//
#include "tests/unit/kernels/GpuCheck.h"
#include "tests/unit/kernels/KernelCases.h"

#include "runtime/cpu/Kernels.h"
#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/kernels/KernelTemplates.h"
#include "runtime/numerics/Float8.h"
#include "runtime/numerics/Hadamard.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

namespace halo::cuda::kernels::testing {
namespace {

using numerics::QuantFormat;

//===----------------------------------------------------------------------===//
// Device plumbing
//===----------------------------------------------------------------------===//

struct Loaded {
  GeneratedKernel kernel;
  std::unique_ptr<CudaModule> module;
  std::vector<CUfunction> functions;
};

class Gpu {
public:
  const CudaDriver *drv = nullptr;
  std::unique_ptr<CudaContext> ctx;
  std::string arch;

  StatusOr<std::unique_ptr<Loaded>> load(const GeneratedKernel &k) {
    CompileOptions options;
    options.arch = arch;
    auto compiled = compileKernel({k.program, k.source, {}}, options);
    if (!compiled.ok())
      return compiled.status();
    auto module = CudaModule::load(*drv, compiled->image);
    if (!module.ok())
      return module.status();
    auto out = std::make_unique<Loaded>();
    out->kernel = k;
    out->module = std::make_unique<CudaModule>(std::move(module.value()));
    for (const LaunchSpec &l : k.launches) {
      auto fn = out->module->function(l.entry);
      if (!fn.ok())
        return fn.status();
      if (l.sharedBytes > 48 * 1024)
        HALO_CU_RETURN_IF_ERROR(
            *drv, cuFuncSetAttribute(*fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                     static_cast<int>(l.sharedBytes)));
      out->functions.push_back(*fn);
    }
    return out;
  }
};

/// Kernel arguments: each is a device pointer (or null) or a scalar.
class Args {
public:
  Args &ptr(CUdeviceptr p) {
    values_.push_back(p);
    return *this;
  }
  /// An int argument (the kernel reads the low 4 bytes: little-endian).
  Args &i32(int v) {
    values_.push_back(CUdeviceptr(uint32_t(v)));
    return *this;
  }
  void **pointers() {
    ptrs_.clear();
    for (auto &v : values_)
      ptrs_.push_back(&v);
    return ptrs_.data();
  }

private:
  std::vector<CUdeviceptr> values_;
  std::vector<void *> ptrs_;
};

Status launch(Gpu &gpu, const Loaded &l, size_t i, Args args) {
  const LaunchSpec &s = l.kernel.launches[i];
  HALO_CU_RETURN_IF_ERROR(
      *gpu.drv, cuLaunchKernel(l.functions[i], s.grid.x, s.grid.y, s.grid.z,
                               s.block.x, s.block.y, s.block.z, s.sharedBytes,
                               nullptr, args.pointers(), nullptr));
  return Status::success();
}

struct Buf {
  std::unique_ptr<DeviceBuffer> b;
  CUdeviceptr p() const { return b ? b->pointer() : 0; }
};

Buf alloc(Gpu &gpu, size_t bytes, bool zero = true) {
  auto b = DeviceBuffer::allocate(*gpu.drv, std::max<size_t>(bytes, 16));
  if (!b.ok())
    throw std::runtime_error(b.status().message());
  Buf out{std::make_unique<DeviceBuffer>(std::move(b.value()))};
  if (zero)
    gpu.drv->cuMemsetD8(out.p(), 0, std::max<size_t>(bytes, 16));
  return out;
}

template <typename T> Buf upload(Gpu &gpu, const std::vector<T> &v) {
  Buf b = alloc(gpu, v.size() * sizeof(T), false);
  Status s = b.b->copyFromHost(v.data(), v.size() * sizeof(T));
  if (!s.ok())
    throw std::runtime_error(s.message());
  return b;
}

template <typename T> std::vector<T> download(const Buf &b, size_t count) {
  std::vector<T> v(count);
  Status s = b.b->copyToHost(v.data(), count * sizeof(T));
  if (!s.ok())
    throw std::runtime_error(s.message());
  return v;
}

void check(Status s) {
  if (!s.ok())
    throw std::runtime_error(s.message());
}

//===----------------------------------------------------------------------===//
// Data and comparisons
//===----------------------------------------------------------------------===//

std::vector<uint16_t> toBf16(const std::vector<float> &v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = numerics::floatToBF16(v[i]);
  return out;
}
std::vector<float> fromBf16(const std::vector<uint16_t> &v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = numerics::bf16ToFloat(v[i]);
  return out;
}

/// halo.hadamard {side = right, transposed}'s output for the rows of x: the
/// oracle's rotation, rounded to BF16.
std::vector<float> unrotatedRowsBf16(std::vector<float> x, size_t rows, size_t cols) {
  numerics::hadamardRows(x.data(), static_cast<int64_t>(rows), static_cast<int64_t>(cols), true);
  for (float &v : x)
    v = numerics::roundToBF16(v);
  return x;
}

/// Random FP32 masters and AdamW moments; BF16-exact moments (weights) when
/// the kernel stores them in BF16.
struct AdamWState {
  std::vector<float> param, m, v;
  AdamWState(size_t n, unsigned seed, bool bf16Moments, bool bf16Weights)
      : param(n), m(n), v(n) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (size_t i = 0; i < n; ++i) {
      param[i] = nd(rng);
      m[i] = 0.001f * nd(rng);
      v[i] = 1e-5f * std::fabs(nd(rng));
      if (bf16Moments) {
        m[i] = numerics::roundToBF16(m[i]);
        v[i] = numerics::roundToBF16(v[i]);
      }
      if (bf16Weights)
        param[i] = numerics::roundToBF16(param[i]);
    }
  }
};

/// Normal(0, sigma) rounded to BF16, with `outliers` channels (columns)
/// scaled by 50 (the activation outliers Hadamard rotations spread out).
std::vector<float> randomBf16(size_t rows, size_t cols, uint64_t seed,
                              float sigma = 1.0f, int outliers = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(rows * cols);
  std::vector<size_t> hot;
  for (int i = 0; i < outliers; ++i)
    hot.push_back((i * 7919 + 13) % cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c)
      v[r * cols + c] = nd(rng);
  for (size_t c : hot)
    for (size_t r = 0; r < rows; ++r)
      v[r * cols + c] *= 50.0f;
  for (float &x : v)
    x = numerics::roundToBF16(x);
  return v;
}

struct Report {
  std::ostream &log;
  int checks = 0, failures = 0;
  std::vector<std::string> json;

  void result(const std::string &name, bool ok, const std::string &detail) {
    ++checks;
    if (!ok)
      ++failures;
    log << (ok ? "[ OK ] " : "[FAIL] ") << name << ": " << detail << std::endl;
    std::string d = detail;
    std::replace(d.begin(), d.end(), '"', '\'');
    json.push_back("{\"name\": \"" + name + "\", \"ok\": " + (ok ? "true" : "false") +
                   ", \"detail\": \"" + d + "\"}");
  }
};

/// Signed ordinal of a code (codes of adjacent values differ by 1).
int ordinal(uint8_t code, QuantFormat f) {
  if (f == QuantFormat::INT8)
    return static_cast<int8_t>(code);
  int mag = code & 0x7F;
  return (code & 0x80) ? -mag : mag;
}

struct CodeDiff {
  size_t mismatches = 0, oneStep = 0;
  int maxStep = 0;
  std::string describe(size_t total) const {
    std::ostringstream os;
    os << mismatches << "/" << total << " codes differ";
    if (mismatches)
      os << " (" << oneStep << " by one step, max " << maxStep << " steps)";
    return os.str();
  }
};

CodeDiff compareCodes(const std::vector<uint8_t> &got,
                      const std::vector<uint8_t> &want, QuantFormat f) {
  CodeDiff d;
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i]) {
      ++d.mismatches;
      int step = std::abs(ordinal(got[i], f) - ordinal(want[i], f));
      // -0 vs +0 is a bit difference of zero steps; count it as one.
      step = std::max(step, 1);
      d.oneStep += step == 1;
      d.maxStep = std::max(d.maxStep, step);
    }
  return d;
}

struct Tol {
  double atol, rtol;
};

std::string compareFloats(const std::vector<float> &got,
                          const std::vector<float> &want, Tol tol, bool &ok) {
  double maxAbs = 0, maxRel = 0;
  size_t bad = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double a = got[i], b = want[i], e = std::fabs(a - b);
    if (!(e <= tol.atol + tol.rtol * std::fabs(b))) {
      if (!bad || e > std::fabs(got[worst] - want[worst]))
        worst = i;
      ++bad;
    }
    maxAbs = std::max(maxAbs, e);
    if (std::fabs(b) > 1e-3)
      maxRel = std::max(maxRel, e / std::fabs(b));
  }
  ok = bad == 0;
  std::ostringstream os;
  os << "max abs err " << std::setprecision(3) << maxAbs << ", max rel err "
     << maxRel << " (|x|>1e-3)";
  if (bad)
    os << "; " << bad << "/" << want.size() << " outside tolerance, e.g. [" << worst
       << "] got " << got[worst] << " want " << want[worst];
  return os.str();
}

/// CPU oracle of Q(x H): rotated values, scale(s), codes.
struct QuantRef {
  std::vector<float> scales; // 1 (tensor) or rows
  std::vector<uint8_t> codes; // [rows, cols]
  float absmax = 0;
};

uint8_t encode(float x, float scale, QuantFormat f) {
  float s = x / scale;
  return f == QuantFormat::FP8E4M3 ? numerics::floatToE4M3(s)
                                   : static_cast<uint8_t>(numerics::floatToInt8(s));
}

QuantRef quantRef(const std::vector<float> &rotated, size_t rows, size_t cols,
                  QuantFormat f, bool rowwise) {
  QuantRef r;
  r.codes.resize(rotated.size());
  if (!rowwise) {
    for (float v : rotated)
      r.absmax = std::max(r.absmax, std::fabs(v));
    float s = numerics::quantScale(r.absmax, f);
    r.scales = {s};
    for (size_t i = 0; i < rotated.size(); ++i)
      r.codes[i] = encode(rotated[i], s, f);
    return r;
  }
  for (size_t row = 0; row < rows; ++row) {
    float amax = 0;
    for (size_t c = 0; c < cols; ++c)
      amax = std::max(amax, std::fabs(rotated[row * cols + c]));
    float s = numerics::quantScale(amax, f);
    r.scales.push_back(s);
    for (size_t c = 0; c < cols; ++c)
      r.codes[row * cols + c] = encode(rotated[row * cols + c], s, f);
  }
  return r;
}

std::vector<uint8_t> transposeCodes(const std::vector<uint8_t> &t, size_t rows,
                                    size_t cols) {
  // t is [cols, rows]; returns [rows, cols].
  std::vector<uint8_t> out(rows * cols);
  for (size_t c = 0; c < cols; ++c)
    for (size_t r = 0; r < rows; ++r)
      out[r * cols + c] = t[c * rows + r];
  return out;
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Median milliseconds of `reps` runs of fn (after 3 warm-ups), CUDA events.
float timeMs(Gpu &gpu, const std::function<void()> &fn, int reps = 20) {
  CUevent a, b;
  check(gpu.drv->check(gpu.drv->cuEventCreate(&a, 0), "cuEventCreate", __FILE__, __LINE__));
  check(gpu.drv->check(gpu.drv->cuEventCreate(&b, 0), "cuEventCreate", __FILE__, __LINE__));
  for (int i = 0; i < 3; ++i)
    fn();
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    gpu.drv->cuEventRecord(a, nullptr);
    fn();
    gpu.drv->cuEventRecord(b, nullptr);
    gpu.drv->cuEventSynchronize(b);
    float t = 0;
    gpu.drv->cuEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  gpu.drv->cuEventDestroy(a);
  gpu.drv->cuEventDestroy(b);
  return median(ms);
}

//===----------------------------------------------------------------------===//
// The checks
//===----------------------------------------------------------------------===//

class Checker {
public:
  Checker(Gpu &gpu, Report &report, const GpuCheckOptions &options)
      : gpu_(gpu), rep_(report), opt_(options) {}

  bool wanted(const std::string &name) const {
    return opt_.filter.empty() || name.find(opt_.filter) != std::string::npos;
  }

  /// Compiles (in parallel) and caches every kernel the checks will use.
  std::unique_ptr<Loaded> get(StatusOr<GeneratedKernel> k) {
    if (!k.ok())
      throw std::runtime_error(k.status().message());
    auto l = gpu_.load(*k);
    if (!l.ok())
      throw std::runtime_error(l.status().message());
    return std::move(l.value());
  }

  void hadamardQuant(size_t rows, size_t cols, QuantFormat f, bool rowwise,
                     bool tout, bool transposedH, bool rotate, int outliers,
                     bool timing, bool fast = false, bool both = false);
  /// cluster: generate for this device (targetSm), which on sm_90 selects the
  /// one-pass cluster form; otherwise for an unknown device (two passes).
  void hadamardQuantLeft(size_t rows, size_t cols, QuantFormat f, bool timing,
                         bool cluster = false);
  /// Q(H x) and plain Q(x)^T from one kernel pair (plainTransposed, the
  /// cluster form for this device), timed against the two quantizers apart.
  void hadamardQuantLeftPlain(size_t rows, size_t cols, QuantFormat f, bool timing);
  /// Q(x H) of x = bf16(silu(g) * u) computed on load (swigluInput), one or
  /// both code layouts: bit for bit against swiglu_fwd + the quantizer of the
  /// stored x, which it is timed against, and against the CPU oracle.
  void swigluQuant(size_t rows, size_t cols, QuantFormat f, bool rowwise, bool both,
                   bool timing);
  void hadamardPlain(size_t rows, size_t cols, HadamardSide side, bool transposed,
                     ElemType in, ElemType out, bool timing, bool cluster = false);
  void rmsNorm(size_t rows, size_t dim, bool timing);
  /// The RMSNorm backward (+ dres) with dy's right un-rotation inside
  /// (rotateDy, dy = bf16(x H^T)) against numerics::hadamardRows +
  /// cpu::rmsNormBackward, and bit for bit against hadamardKernel + the plain
  /// backward apart, which it is timed against.
  void rmsNormRotated(size_t rows, size_t dim, bool timing);
  void rope(size_t tokens, size_t seq, size_t h, size_t kv, size_t hd, bool timing);
  void swiglu(size_t n);
  /// SwiGLU's backward on right-rotated rows (hadamardKernel's swigluGrad,
  /// dy = bf16(x H^T)) against numerics::hadamardRows + the oracle's SwiGLU
  /// ops, and bit for bit against the two kernels apart (hadamard, then
  /// swiglu_bwd), which it is timed against.
  void hadamardSwigluGrad(size_t rows, size_t cols, bool timing);
  void embedding(size_t tokens, size_t vocab, size_t dim, bool timing);
  void crossEntropy(size_t tokens, size_t vocab);
  void norms(size_t n);
  void adamw(size_t n, bool bf16Moments, bool bf16Weights, bool timing = false);
  /// Runs cpu::adamw on `state` with gradient g * gs and compares the
  /// kernel's weights (dp), moments (dm, dv) and BF16 copy (FP32 masters) with it.
  bool compareAdamW(AdamWState &state, const std::vector<float> &g, float gs, float lr, int step,
                    const AdamWParams &p, const Buf &dp, const Buf &dm, const Buf &dv,
                    const Buf &copy, std::string &detail);
  Buf uploadState(const std::vector<float> &x, bool bf16) {
    return bf16 ? upload(gpu_, toBf16(x)) : upload(gpu_, x);
  }
  std::vector<float> downloadState(const Buf &b, size_t n, bool bf16) {
    return bf16 ? fromBf16(download<uint16_t>(b, n)) : download<float>(b, n);
  }
  /// AdamW on a gradient stored rotated (rotateRows, G = G_rot H^T) against
  /// numerics::hadamardRows + cpu::adamw; timed against hadamardKernel +
  /// the plain step.
  void adamwRows(size_t rows, size_t cols, bool bf16Moments, bool writeGrad, bool timing,
                 bool bf16Weights = false);
  void overflowGuard(size_t n);
  void attention(size_t b, size_t s, size_t h, size_t kv, size_t hd, bool timing,
                 int64_t warps = 0);

  std::vector<std::string> timings;

private:
  Gpu &gpu_;
  Report &rep_;
  const GpuCheckOptions &opt_;
  float copyMs(size_t bytes, float *gbps);
  std::string plainTransposeUnfused(const HadamardQuantizeParams &p, CUdeviceptr x,
                                   float copyBw);
  int targetSm() const { return gpu_.ctx->info().ccMajor * 10 + gpu_.ctx->info().ccMinor; }
};

float Checker::copyMs(size_t bytes, float *gbps) {
  Buf a = alloc(gpu_, bytes), b = alloc(gpu_, bytes);
  float ms = timeMs(gpu_, [&] {
    gpu_.drv->cuMemcpyDtoDAsync(b.p(), a.p(), bytes, nullptr);
  });
  *gbps = static_cast<float>(2.0 * bytes / (ms * 1e-3) / 1e9);
  return ms;
}

/// Plain transposed quantization without quant_tiles_t, timed for
/// comparison: _absmax + _quant to [rows, cols] codes, then a separate byte
/// transpose (a rotated kernel's _transpose launch) into [cols, rows] (for
/// both layouts: the same launches, keeping both).
std::string Checker::plainTransposeUnfused(const HadamardQuantizeParams &p, CUdeviceptr x,
                                          float copyBw) {
  HadamardQuantizeParams rowMajor = p, rotated = p;
  rowMajor.transposedOutput = rowMajor.bothLayouts = false;
  rotated.rotate = true;
  rotated.bothLayouts = false;
  auto lq = get(hadamardQuantizeKernel(rowMajor)), lt = get(hadamardQuantizeKernel(rotated));
  const size_t elems = size_t(p.rows) * size_t(p.cols);
  Buf codes = alloc(gpu_, elems), codesT = alloc(gpu_, elems);
  Buf ws = alloc(gpu_, 8), scale = alloc(gpu_, 4);
  float ms = timeMs(gpu_, [&] {
    check(launch(gpu_, *lq, 0, Args().ptr(x).ptr(ws.p()).ptr(scale.p()).ptr(0)));
    check(launch(gpu_, *lq, 1, Args().ptr(x).ptr(scale.p()).ptr(codes.p())));
    check(launch(gpu_, *lt, 2, Args().ptr(codes.p()).ptr(codesT.p())));
  });
  double moved = 2.0 * elems * 2 + (p.bothLayouts ? 2.0 : 1.0) * elems;
  std::ostringstream os;
  os << "unfused (quantize, then a separate transpose launch): " << ms * 1e3 << " us = "
     << 100.0 * (moved / (ms * 1e-3) / 1e9) / copyBw << "% of copy bandwidth";
  return os.str();
}

void Checker::hadamardQuant(size_t rows, size_t cols, QuantFormat f, bool rowwise,
                            bool tout, bool transposedH, bool rotate,
                            int outliers, bool timing, bool fast, bool both) {
  std::ostringstream nm;
  nm << (rotate ? "hadamard_quant" : "quant") << "_" << rows << "x" << cols << "_"
     << (f == QuantFormat::FP8E4M3 ? "fp8" : "i8") << (rowwise ? "_row" : "_tensor")
     << (tout ? "_tout" : "") << (both ? "_both" : "") << (transposedH ? "_ht" : "")
     << (fast ? "_fast" : "");
  std::string name = nm.str();
  if (!wanted(name))
    return;
  HadamardQuantizeParams p;
  p.rows = static_cast<int64_t>(rows);
  p.cols = static_cast<int64_t>(cols);
  p.format = f;
  p.granularity = rowwise ? ScaleGranularity::Row : ScaleGranularity::Tensor;
  p.transposedOutput = tout;
  p.bothLayouts = both;
  p.transposed = transposedH;
  p.rotate = rotate;
  p.order = fast ? HadamardOrder::Fast : HadamardOrder::Exact;
  auto l = get(hadamardQuantizeKernel(p));
  std::vector<float> x = randomBf16(rows, cols, rows * 31 + cols, 1.0f, outliers);
  for (size_t i = 5; i < x.size(); i += 997) // signed zeros must keep their sign
    x[i] = (i / 997) % 2 ? -0.0f : 0.0f;
  Buf dx = upload(gpu_, toBf16(x));
  Buf codes = alloc(gpu_, rows * cols);
  Buf ws = alloc(gpu_, 8), scale = alloc(gpu_, 4), absmax = alloc(gpu_, 4);
  Buf rowScale = alloc(gpu_, rows * 4);
  // Transposed output: a transpose launch after the quantizer's (split),
  // from scratch or, with both layouts, from the [rows, cols] codes; the
  // transposed codes always go to `codes`.
  const bool split = l->kernel.find("_transpose") != nullptr;
  Buf tmp = alloc(gpu_, l->kernel.scratchBytes);
  Buf rowCodes = alloc(gpu_, both ? rows * cols : 0);
  const CUdeviceptr q = both ? rowCodes.p() : split ? tmp.p() : codes.p();
  auto quantArgs = [&] {
    Args a = Args().ptr(dx.p()).ptr(scale.p()).ptr(q);
    return both && !split ? a.ptr(codes.p()) : a;
  };
  const size_t transposeLaunch = rowwise ? 1 : 2;
  auto transpose = [&] {
    check(launch(gpu_, *l, transposeLaunch, Args().ptr(q).ptr(codes.p())));
  };
  auto run = [&] {
    if (rowwise) {
      check(launch(gpu_, *l, 0, Args().ptr(dx.p()).ptr(rowScale.p()).ptr(q)));
    } else {
      check(launch(gpu_, *l, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p())));
      check(launch(gpu_, *l, 1, quantArgs()));
    }
    if (split)
      transpose();
  };
  run();
  run(); // the workspace must be reusable
  check(gpu_.ctx->synchronize());
  std::vector<uint8_t> got = download<uint8_t>(codes, rows * cols);
  if (tout)
    got = transposeCodes(got, rows, cols);
  std::vector<float> rot = x;
  if (rotate)
    numerics::hadamardRows(rot.data(), static_cast<int64_t>(rows),
                           static_cast<int64_t>(cols), transposedH);
  QuantRef ref = quantRef(rot, rows, cols, f, rowwise);
  CodeDiff d = compareCodes(got, ref.codes, f);
  std::ostringstream os;
  bool scalesOk = true;
  if (both) {
    CodeDiff dr = compareCodes(download<uint8_t>(rowCodes, rows * cols), ref.codes, f);
    os << "[rows, cols] codes: " << dr.describe(rows * cols) << "; [cols, rows] codes: ";
    d.mismatches += dr.mismatches;
    d.maxStep = std::max(d.maxStep, dr.maxStep);
  }
  if (rowwise) {
    std::vector<float> s = download<float>(rowScale, rows);
    size_t bad = 0;
    for (size_t r = 0; r < rows; ++r)
      bad += std::memcmp(&s[r], &ref.scales[r], 4) != 0;
    scalesOk = bad == 0;
    os << bad << "/" << rows << " row scales differ; ";
  } else {
    float s = download<float>(scale, 1)[0], a = download<float>(absmax, 1)[0];
    scalesOk = std::memcmp(&s, &ref.scales[0], 4) == 0 &&
               std::memcmp(&a, &ref.absmax, 4) == 0;
    os << "scale " << s << (scalesOk ? " (bit-exact)" : " != ") << (scalesOk ? "" : std::to_string(ref.scales[0]))
       << ", absmax " << a << "; ";
    std::vector<uint32_t> w = download<uint32_t>(ws, 2);
    if (w[0] || w[1]) {
      scalesOk = false;
      os << "workspace not reset; ";
    }
  }
  os << d.describe(rows * cols);
  if (fast) {
    // A different rounding order of the K mix: the absmax (hence the scale)
    // may move by an ulp and codes by one step on a tiny fraction.
    os << " (grouped K mix; one-step differences on <= 1e-4 allowed)";
    rep_.result(name, d.maxStep <= 1 && d.mismatches * 10000 <= rows * cols, os.str());
  } else {
    rep_.result(name, scalesOk && d.mismatches == 0, os.str());
  }

  if (timing) {
    size_t inBytes = rows * cols * 2, outBytes = rows * cols;
    float copyBw = 0;
    float cms = copyMs(inBytes, &copyBw);
    std::ostringstream t;
    if (rowwise) {
      float ms = timeMs(gpu_, run);
      double bw = (inBytes + outBytes) / (ms * 1e-3) / 1e9;
      t << name << ": " << ms * 1e3 << " us, " << bw << " GB/s moved (R+W) = "
        << 100.0 * bw / copyBw << "% of copy bandwidth " << copyBw << " GB/s";
    } else {
      float m1 = timeMs(gpu_, [&] {
        check(launch(gpu_, *l, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p())));
      });
      float m2 = timeMs(gpu_, [&] { check(launch(gpu_, *l, 1, quantArgs())); });
      float m3 = split ? timeMs(gpu_, transpose) : 0.0f;
      float ms = timeMs(gpu_, run);
      if (both)
        outBytes *= 2;
      double moved = 2.0 * inBytes + outBytes, minimal = inBytes + outBytes;
      double bw = moved / (ms * 1e-3) / 1e9;
      t << name << ": " << ms * 1e3 << " us (absmax " << m1 * 1e3 << " us, quant "
        << m2 * 1e3 << " us";
      if (split) // the transpose alone moves 2 W bytes
        t << ", transpose " << m3 * 1e3 << " us = "
          << 100.0 * (2.0 * rows * cols / (m3 * 1e-3) / 1e9) / copyBw << "% of copy bandwidth";
      t << "); " << bw << " GB/s moved (2R+" << (both ? "2W" : "W") << ") = "
        << 100.0 * bw / copyBw << "% of copy bandwidth " << copyBw
        << " GB/s; vs a copy of R+W bytes: "
        << 100.0 * (minimal / (copyBw * 1e9)) / (ms * 1e-3) << "%; copy of the input "
        << cms * 1e3 << " us";
      if (!rotate && tout && cols % 8 == 0 && numerics::decomposeHadamardSize(cols))
        t << "; " << plainTransposeUnfused(p, dx.p(), copyBw);
      // The persistent grid's blocks per SM (a tuning knob): other values,
      // same codes (checked), timed the same way.
      if (rotate && !tout && !fast && f == QuantFormat::FP8E4M3) {
        const bool wideRow = cols <= 4096;
        for (int bps : wideRow ? std::vector<int>{4, 8} : std::vector<int>{1, 3}) {
          HadamardQuantizeParams pv = p;
          pv.blocksPerSm = bps;
          auto lv = get(hadamardQuantizeKernel(pv));
          auto runv = [&] {
            check(launch(gpu_, *lv, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p())));
            check(launch(gpu_, *lv, 1, Args().ptr(dx.p()).ptr(scale.p()).ptr(codes.p())));
          };
          gpu_.drv->cuMemsetD8(codes.p(), 0, rows * cols);
          runv();
          check(gpu_.ctx->synchronize());
          const bool same = download<uint8_t>(codes, rows * cols) == got;
          float v1 = timeMs(gpu_, [&] {
            check(launch(gpu_, *lv, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p())));
          });
          float vms = timeMs(gpu_, runv);
          t << "; blocksPerSm=" << bps << ": " << vms * 1e3 << " us (absmax " << v1 * 1e3
            << " us) = " << 100.0 * (moved / (vms * 1e-3) / 1e9) / copyBw << "%"
            << (same ? "" : " CODES DIFFER");
          if (!same)
            rep_.result(name + "_b" + std::to_string(bps), false, "codes differ");
        }
      }
    }
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::hadamardQuantLeft(size_t rows, size_t cols, QuantFormat f,
                                bool timing, bool cluster) {
  std::string name = "hadamard_quant_left_" + std::to_string(rows) + "x" +
                     std::to_string(cols) + (f == QuantFormat::FP8E4M3 ? "_fp8" : "_i8") +
                     (cluster ? "_cl" : "");
  if (!wanted(name))
    return;
  HadamardQuantizeParams p;
  p.rows = static_cast<int64_t>(rows);
  p.cols = static_cast<int64_t>(cols);
  p.side = HadamardSide::Left;
  p.format = f;
  p.targetSm = cluster ? targetSm() : 0;
  auto l = get(hadamardQuantizeKernel(p));
  std::vector<float> x = randomBf16(rows, cols, rows + 7 * cols, 0.01f, 4);
  Buf dx = upload(gpu_, toBf16(x));
  Buf codes = alloc(gpu_, rows * cols), ws = alloc(gpu_, 8);
  Buf scale = alloc(gpu_, 4), absmax = alloc(gpu_, 4);
  Buf tmp = alloc(gpu_, l->kernel.scratchBytes);
  const bool two = l->kernel.launches.size() == 3;
  const CUdeviceptr src = two ? tmp.p() : dx.p();
  auto pass1 = [&] { check(launch(gpu_, *l, 0, Args().ptr(dx.p()).ptr(tmp.p()))); };
  auto amax = [&] {
    check(launch(gpu_, *l, two, Args().ptr(src).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p())));
  };
  // The cluster form's tile counter is in ws (a fourth argument).
  const bool quantWs = l->kernel.find("_quant")->signature.find("ws") != std::string::npos;
  auto quant = [&] {
    Args a = Args().ptr(src).ptr(scale.p()).ptr(codes.p());
    if (quantWs)
      a.ptr(ws.p());
    check(launch(gpu_, *l, two + 1, a));
  };
  auto run = [&] {
    if (two)
      pass1();
    amax();
    quant();
  };
  run();
  run();
  check(gpu_.ctx->synchronize());
  std::vector<float> rot = x;
  numerics::hadamardCols(rot.data(), static_cast<int64_t>(rows),
                         static_cast<int64_t>(cols), false);
  QuantRef ref = quantRef(rot, rows, cols, f, false);
  CodeDiff d = compareCodes(download<uint8_t>(codes, rows * cols), ref.codes, f);
  float s = download<float>(scale, 1)[0];
  bool ok = std::memcmp(&s, &ref.scales[0], 4) == 0 && d.mismatches == 0;
  rep_.result(name, ok, "scale " + std::to_string(s) + "; " + d.describe(rows * cols) + " (" +
                            l->kernel.program + ", " +
                            std::to_string(l->kernel.launches.size()) + " launches)");
  if (timing) {
    float copyBw = 0;
    copyMs(rows * cols * 2, &copyBw);
    float ms = timeMs(gpu_, run);
    float ma = timeMs(gpu_, amax), mq = timeMs(gpu_, quant);
    float m1 = two ? timeMs(gpu_, pass1) : 0.0f;
    double rw = rows * cols * 3.0; // read the BF16 input once, write codes
    double bw = rw / (ms * 1e-3) / 1e9;
    std::ostringstream t;
    t << name << " (" << l->kernel.program << "): " << ms * 1e3 << " us ("
      << (two ? "pass1 " + std::to_string(m1 * 1e3) + " + " : std::string())
      << "absmax " << ma * 1e3 << " + quant " << mq * 1e3 << "); R+W " << bw
      << " GB/s = " << 100.0 * bw / copyBw << "% of copy bandwidth " << copyBw << " GB/s";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::hadamardQuantLeftPlain(size_t rows, size_t cols, QuantFormat f, bool timing) {
  std::string name = "hadamard_quant_left_plain_" + std::to_string(rows) + "x" +
                     std::to_string(cols) + (f == QuantFormat::FP8E4M3 ? "_fp8" : "_i8");
  if (!wanted(name))
    return;
  HadamardQuantizeParams p;
  p.rows = static_cast<int64_t>(rows);
  p.cols = static_cast<int64_t>(cols);
  p.side = HadamardSide::Left;
  p.format = f;
  p.targetSm = targetSm();
  p.plainTransposed = true;
  if (!plainTransposedFits(p)) {
    rep_.log << "[SKIP] " << name << ": no fused form for sm_" << targetSm() << std::endl;
    return;
  }
  auto l = get(hadamardQuantizeKernel(p));
  std::vector<float> x = randomBf16(rows, cols, rows + 5 * cols, 0.01f, 4);
  for (size_t i = 5; i < x.size(); i += 997) // signed zeros must keep their sign
    x[i] = (i / 997) % 2 ? -0.0f : 0.0f;
  Buf dx = upload(gpu_, toBf16(x));
  Buf codes = alloc(gpu_, rows * cols), plainT = alloc(gpu_, rows * cols);
  Buf ws = alloc(gpu_, l->kernel.workspaceBytes), scale = alloc(gpu_, 4),
      plainScale = alloc(gpu_, 4), absmax = alloc(gpu_, 4);
  auto fused = [&] {
    check(launch(gpu_, *l, 0,
                 Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p()).ptr(plainScale.p())));
    check(launch(gpu_, *l, 1,
                 Args().ptr(dx.p()).ptr(scale.p()).ptr(codes.p()).ptr(plainScale.p()).ptr(
                     plainT.p()).ptr(ws.p())));
  };
  fused();
  fused(); // the workspace must be zero again
  check(gpu_.ctx->synchronize());
  std::vector<float> rot = x;
  numerics::hadamardCols(rot.data(), static_cast<int64_t>(rows), static_cast<int64_t>(cols),
                         false);
  QuantRef ref = quantRef(rot, rows, cols, f, false), plainRef = quantRef(x, rows, cols, f, false);
  std::vector<uint8_t> plainRefT(rows * cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c)
      plainRefT[c * rows + r] = plainRef.codes[r * cols + c];
  CodeDiff d = compareCodes(download<uint8_t>(codes, rows * cols), ref.codes, f);
  CodeDiff dp = compareCodes(download<uint8_t>(plainT, rows * cols), plainRefT, f);
  float s = download<float>(scale, 1)[0], ps = download<float>(plainScale, 1)[0];
  bool ok = std::memcmp(&s, &ref.scales[0], 4) == 0 && std::memcmp(&ps, &plainRef.scales[0], 4) == 0 &&
            d.mismatches == 0 && dp.mismatches == 0;
  rep_.result(name, ok,
              "scale " + std::to_string(s) + ", plain " + std::to_string(ps) + "; rotated " +
                  d.describe(rows * cols) + "; plain transposed " + dp.describe(rows * cols) +
                  " (" + l->kernel.program + ")");
  if (timing) {
    // The same work apart: the left quantizer and the plain transposed one.
    HadamardQuantizeParams left = p, plain;
    left.plainTransposed = false;
    plain.rows = p.rows;
    plain.cols = p.cols;
    plain.format = f;
    plain.rotate = false;
    plain.transposedOutput = true;
    auto ll = get(hadamardQuantizeKernel(left));
    auto lp = get(hadamardQuantizeKernel(plain));
    auto apart = [&] {
      check(launch(gpu_, *ll, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p())));
      check(launch(gpu_, *ll, 1, Args().ptr(dx.p()).ptr(scale.p()).ptr(codes.p()).ptr(ws.p())));
      check(launch(gpu_, *lp, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(plainScale.p()).ptr(0)));
      check(launch(gpu_, *lp, 1, Args().ptr(dx.p()).ptr(plainScale.p()).ptr(plainT.p())));
    };
    float mf = timeMs(gpu_, fused), ma = timeMs(gpu_, apart);
    float fa = timeMs(gpu_, [&] {
      check(launch(gpu_, *l, 0,
                   Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p()).ptr(plainScale.p())));
    });
    float la = timeMs(gpu_, [&] {
      check(launch(gpu_, *ll, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(scale.p()).ptr(absmax.p())));
    });
    float pa = timeMs(gpu_, [&] {
      check(launch(gpu_, *lp, 0, Args().ptr(dx.p()).ptr(ws.p()).ptr(plainScale.p()).ptr(0)));
    });
    std::ostringstream t;
    t << name << " (" << l->kernel.program << "): fused " << mf * 1e3 << " us (absmax "
      << fa * 1e3 << " + quant " << (mf - fa) * 1e3 << "), apart " << ma * 1e3
      << " us (left absmax " << la * 1e3 << ", plain absmax " << pa * 1e3 << "): "
      << ma / mf << "x";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::swigluQuant(size_t rows, size_t cols, QuantFormat f, bool rowwise, bool both,
                          bool timing) {
  std::ostringstream nm;
  nm << "hadamard_quant_swiglu_" << rows << "x" << cols << "_"
     << (f == QuantFormat::FP8E4M3 ? "fp8" : "i8") << (rowwise ? "_row" : "_tensor")
     << (both ? "_both" : "");
  std::string name = nm.str();
  if (!wanted(name))
    return;
  const size_t n = rows * cols;
  HadamardQuantizeParams p;
  p.rows = static_cast<int64_t>(rows);
  p.cols = static_cast<int64_t>(cols);
  p.format = f;
  p.granularity = rowwise ? ScaleGranularity::Row : ScaleGranularity::Tensor;
  p.transposedOutput = p.bothLayouts = both;
  auto ls = get(hadamardQuantizeKernel(p)); // the quantizer of a stored x
  p.swigluInput = true;
  auto l = get(hadamardQuantizeKernel(p));
  auto lf = get(swigluForwardKernel(static_cast<int64_t>(n)));
  std::vector<float> g = randomBf16(rows, cols, 11, 2.0f), u = randomBf16(rows, cols, 12, 1.0f, 3);
  Buf dg = upload(gpu_, toBf16(g)), du = upload(gpu_, toBf16(u)), x = alloc(gpu_, n * 2);
  Buf ws = alloc(gpu_, 8);
  struct Out {
    Buf codes, codesT, scale;
  };
  auto outputs = [&] {
    return Out{alloc(gpu_, n), alloc(gpu_, both ? n : 0), alloc(gpu_, rowwise ? rows * 4 : 4)};
  };
  Out fo = outputs(), ao = outputs();
  // Quantizer k on `in` (g, u on load; or the stored x): its launches in order.
  auto steps = [&](const Loaded &k, std::vector<CUdeviceptr> in, const Out &o) {
    const Loaded *kp = &k;
    const Out *op = &o;
    auto args = [in] {
      Args a;
      for (CUdeviceptr ptr : in)
        a.ptr(ptr);
      return a;
    };
    auto run = [this, kp](size_t i, Args a) { check(launch(gpu_, *kp, i, a)); };
    std::vector<std::function<void()>> s;
    if (rowwise) {
      s.push_back([=] { run(0, args().ptr(op->scale.p()).ptr(op->codes.p())); });
    } else {
      const CUdeviceptr w = ws.p();
      s.push_back([=] { run(0, args().ptr(w).ptr(op->scale.p()).ptr(0)); });
      s.push_back([=] { run(1, args().ptr(op->scale.p()).ptr(op->codes.p())); });
    }
    if (both) {
      const size_t t = s.size();
      s.push_back([=] { run(t, Args().ptr(op->codes.p()).ptr(op->codesT.p())); });
    }
    return s;
  };
  auto fusedSteps = steps(*l, {dg.p(), du.p()}, fo), storedSteps = steps(*ls, {x.p()}, ao);
  auto swiglu = [&] { check(launch(gpu_, *lf, 0, Args().ptr(dg.p()).ptr(du.p()).ptr(x.p()))); };
  auto fused = [&] {
    for (auto &step : fusedSteps)
      step();
  };
  auto apart = [&] {
    swiglu();
    for (auto &step : storedSteps)
      step();
  };
  fused();
  fused(); // the workspace must be zero again
  apart();
  check(gpu_.ctx->synchronize());
  const size_t scales = rowwise ? rows : 1;
  const std::vector<uint8_t> codes = download<uint8_t>(fo.codes, n);
  const std::vector<float> scale = download<float>(fo.scale, scales);
  // Against swiglu_fwd + the quantizer of the stored x: the same x (the
  // same FP32 expression, rounded once), so bit for bit.
  bool sameAsApart = codes == download<uint8_t>(ao.codes, n) &&
                     std::memcmp(scale.data(), download<float>(ao.scale, scales).data(),
                                 scales * 4) == 0;
  bool layoutsAgree = true;
  if (both) {
    const std::vector<uint8_t> codesT = download<uint8_t>(fo.codesT, n);
    sameAsApart = sameAsApart && codesT == download<uint8_t>(ao.codesT, n);
    layoutsAgree = transposeCodes(codesT, rows, cols) == codes;
  }
  // The oracle: x = bf16(silu(g) * u) with std::exp, then the exact rotation.
  std::vector<float> y(n);
  for (size_t i = 0; i < n; ++i) {
    float s = 1.0f / (1.0f + std::exp(-g[i]));
    y[i] = numerics::roundToBF16(g[i] * s * u[i]);
  }
  numerics::hadamardRows(y.data(), p.rows, p.cols, false);
  QuantRef ref = quantRef(y, rows, cols, f, rowwise);
  CodeDiff d = compareCodes(codes, ref.codes, f);
  // expf on the device and std::exp may differ in the last bit, which can flip
  // a BF16 rounding of silu(g) * u; allow one-step differences on < 0.1%.
  bool ok = sameAsApart && layoutsAgree && d.maxStep <= 1 && d.mismatches * 1000 <= n;
  rep_.result(name, ok,
              "vs swiglu_fwd + the quantizer of the stored x: " +
                  std::string(sameAsApart ? "codes and scales bit-identical" : "DIFFER") +
                  (both ? std::string("; codesT ") +
                              (layoutsAgree ? "the transpose of codes" : "NOT the transpose")
                        : std::string()) +
                  "; oracle: " + d.describe(n) + " (" + l->kernel.program + ")");
  if (timing) {
    float copyBw = 0;
    copyMs(n * 2, &copyBw);
    float mf = timeMs(gpu_, fused), ma = timeMs(gpu_, apart), msw = timeMs(gpu_, swiglu);
    auto each = [&](std::vector<std::function<void()>> &s) {
      std::ostringstream os;
      const char *names[] = {"absmax", "quant", "transpose"};
      for (size_t i = 0; i < s.size(); ++i)
        os << (i ? " + " : "") << (rowwise ? (i ? "transpose" : "rowq") : names[i]) << " "
           << timeMs(gpu_, s[i]) * 1e3;
      return os.str();
    };
    // Fused: g and u read by each pass over x, codes written (and the
    // transpose's R + W of the codes).
    const double moved = n * ((rowwise ? 4.0 : 8.0) + 1.0 + (both ? 2.0 : 0.0));
    std::ostringstream t;
    t << name << " (" << l->kernel.program << "): fused " << mf * 1e3 << " us (" << each(fusedSteps)
      << ") = " << 100.0 * (moved / (mf * 1e-3) / 1e9) / copyBw << "% of copy bandwidth "
      << copyBw << " GB/s vs " << ma * 1e3 << " us apart (swiglu_fwd " << msw * 1e3 << " + "
      << each(storedSteps) << "): " << ma / mf << "x";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::hadamardPlain(size_t rows, size_t cols, HadamardSide side,
                            bool transposed, ElemType in, ElemType out, bool timing,
                            bool cluster) {
  std::ostringstream nm;
  nm << "hadamard_" << (side == HadamardSide::Right ? "right" : "left") << "_" << rows
     << "x" << cols << (transposed ? "_ht" : "") << (in == ElemType::F32 ? "_if32" : "")
     << (out == ElemType::F32 ? "_of32" : "") << (cluster ? "_cl" : "");
  std::string name = nm.str();
  if (!wanted(name))
    return;
  HadamardParams p;
  p.rows = static_cast<int64_t>(rows);
  p.cols = static_cast<int64_t>(cols);
  p.side = side;
  p.transposed = transposed;
  p.input = in;
  p.output = out;
  p.targetSm = cluster ? targetSm() : 0;
  auto l = get(hadamardKernel(p));
  std::vector<float> x = randomBf16(rows, cols, 99 + rows, 1.0f, 2);
  if (in == ElemType::F32) { // full-precision FP32 inputs
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
    for (float &v : x)
      v = ud(rng);
  }
  Buf dx = in == ElemType::F32 ? upload(gpu_, x) : upload(gpu_, toBf16(x));
  size_t ob = out == ElemType::F32 ? 4 : 2;
  Buf dy = alloc(gpu_, rows * cols * ob), tmp = alloc(gpu_, l->kernel.scratchBytes);
  Buf ws = alloc(gpu_, l->kernel.workspaceBytes);
  auto run = [&] {
    if (l->kernel.launches.size() == 2) {
      check(launch(gpu_, *l, 0, Args().ptr(dx.p()).ptr(tmp.p())));
      check(launch(gpu_, *l, 1, Args().ptr(tmp.p()).ptr(dy.p())));
    } else if (l->kernel.workspaceBytes) { // the cluster form's tile counter
      check(launch(gpu_, *l, 0, Args().ptr(dx.p()).ptr(dy.p()).ptr(ws.p())));
    } else {
      check(launch(gpu_, *l, 0, Args().ptr(dx.p()).ptr(dy.p())));
    }
  };
  run();
  run(); // the second run checks that the workspace was left zeroed
  check(gpu_.ctx->synchronize());
  std::vector<float> want = x;
  if (side == HadamardSide::Right)
    numerics::hadamardRows(want.data(), p.rows, p.cols, transposed);
  else
    numerics::hadamardCols(want.data(), p.rows, p.cols, transposed);
  std::vector<float> got;
  if (out == ElemType::F32) {
    got = download<float>(dy, rows * cols);
  } else {
    got = fromBf16(download<uint16_t>(dy, rows * cols));
    for (float &v : want)
      v = numerics::roundToBF16(v);
  }
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    bad += std::memcmp(&got[i], &want[i], 4) != 0;
  rep_.result(name, bad == 0, std::to_string(bad) + "/" + std::to_string(got.size()) +
                                  " values differ from the CPU oracle (bit-exact expected; " +
                                  l->kernel.program + ")");
  if (timing) {
    float copyBw = 0;
    copyMs(rows * cols * 2, &copyBw);
    float ms = timeMs(gpu_, run);
    double bytes = rows * cols * ((in == ElemType::F32 ? 4.0 : 2.0) + ob);
    double bw = bytes / (ms * 1e-3) / 1e9;
    std::ostringstream t;
    t << name << " (" << l->kernel.program << "): " << ms * 1e3 << " us, " << bw
      << " GB/s (R+W) = " << 100.0 * bw / copyBw << "% of copy bandwidth " << copyBw
      << " GB/s";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::rmsNorm(size_t rows, size_t dim, bool timing) {
  std::string name = "rmsnorm_" + std::to_string(rows) + "x" + std::to_string(dim);
  if (!wanted(name))
    return;
  const float eps = 1e-5f;
  RmsNormParams p{static_cast<int64_t>(rows), static_cast<int64_t>(dim), eps, true};
  auto lf = get(rmsNormForwardKernel(p));
  auto lb = get(rmsNormBackwardKernel(p));
  std::vector<float> x = randomBf16(rows, dim, 1), r = randomBf16(rows, dim, 2);
  std::vector<float> w = randomBf16(1, dim, 3, 0.5f), dy = randomBf16(rows, dim, 4);
  std::vector<float> dres = randomBf16(rows, dim, 5);
  for (float &v : w)
    v = numerics::roundToBF16(1.0f + v);
  Buf dX = upload(gpu_, toBf16(x)), dR = upload(gpu_, toBf16(r)), dW = upload(gpu_, toBf16(w));
  Buf dH = alloc(gpu_, rows * dim * 2), dYo = alloc(gpu_, rows * dim * 2);
  Buf rstd = alloc(gpu_, rows * 4);
  check(launch(gpu_, *lf, 0, Args().ptr(dX.p()).ptr(dR.p()).ptr(dW.p()).ptr(dH.p()).ptr(dYo.p()).ptr(rstd.p())));
  Buf dDy = upload(gpu_, toBf16(dy)), dDres = upload(gpu_, toBf16(dres));
  Buf dDx = alloc(gpu_, rows * dim * 2), part = alloc(gpu_, lb->kernel.scratchBytes);
  Buf dDw = alloc(gpu_, dim * 4);
  auto bwd = [&] {
    check(launch(gpu_, *lb, 0, Args().ptr(dH.p()).ptr(dW.p()).ptr(dDy.p()).ptr(dDres.p()).ptr(dDx.p()).ptr(part.p())));
    check(launch(gpu_, *lb, 1, Args().ptr(part.p()).ptr(dDw.p())));
  };
  bwd();
  check(gpu_.ctx->synchronize());
  std::vector<float> h(rows * dim), y(rows * dim), dx(rows * dim), dw(dim);
  for (size_t i = 0; i < h.size(); ++i)
    h[i] = numerics::roundToBF16(x[i] + r[i]);
  cpu::rmsNorm(h.data(), w.data(), eps, y.data(), p.rows, p.dim);
  cpu::rmsNormBackward(h.data(), w.data(), eps, dy.data(), dx.data(), dw.data(), p.rows, p.dim);
  for (size_t i = 0; i < dx.size(); ++i)
    dx[i] += dres[i];
  bool ok1, ok2, ok3, ok4;
  std::string s1 = compareFloats(fromBf16(download<uint16_t>(dH, rows * dim)), h, {0, 0}, ok1);
  std::string s2 = compareFloats(fromBf16(download<uint16_t>(dYo, rows * dim)), y, {1e-2, 8e-3}, ok2);
  std::string s3 = compareFloats(fromBf16(download<uint16_t>(dDx, rows * dim)), dx, {2e-2, 1e-2}, ok3);
  std::string s4 = compareFloats(download<float>(dDw, dim), dw, {1e-3 * std::sqrt((double)rows), 1e-4}, ok4);
  rep_.result(name + "_fwd_sum", ok1, s1);
  rep_.result(name + "_fwd_y", ok2, s2);
  rep_.result(name + "_bwd_dx", ok3, s3);
  rep_.result(name + "_bwd_dw", ok4, s4);
  if (timing) {
    float copyBw = 0;
    copyMs(rows * dim * 2, &copyBw);
    float ms = timeMs(gpu_, [&] {
      check(launch(gpu_, *lf, 0, Args().ptr(dX.p()).ptr(dR.p()).ptr(dW.p()).ptr(dH.p()).ptr(dYo.p()).ptr(rstd.p())));
    });
    float mb = timeMs(gpu_, bwd);
    double bwF = rows * dim * 8.0 / (ms * 1e-3) / 1e9, bwB = rows * dim * 8.0 / (mb * 1e-3) / 1e9;
    std::ostringstream t;
    t << name << ": fwd(res) " << ms * 1e3 << " us = " << 100 * bwF / copyBw
      << "% of copy bw; bwd(+dres, dw) " << mb * 1e3 << " us = " << 100 * bwB / copyBw << "%";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::rmsNormRotated(size_t rows, size_t dim, bool timing) {
  std::string name = "rmsnorm_bwd_rot_" + std::to_string(rows) + "x" + std::to_string(dim);
  if (!wanted(name))
    return;
  const size_t n = rows * dim;
  // eps = 2^-20 and h = 0 on even rows: r = 1024 and the correction term is
  // 0 there, so with weights of +-2^k dx = 1024 w dy exactly, in the kernel
  // and in the oracle: those rows check the rotated dy bit for bit.
  const float eps = 0x1p-20f;
  RmsNormParams p{static_cast<int64_t>(rows), static_cast<int64_t>(dim), eps, true};
  auto lp = get(rmsNormBackwardKernel(p));
  p.rotateDy = p.transposed = true;
  auto l = get(rmsNormBackwardKernel(p));
  HadamardParams hp;
  hp.rows = p.rows;
  hp.cols = p.dim;
  hp.transposed = true;
  auto lh = get(hadamardKernel(hp));
  std::vector<float> x = randomBf16(rows, dim, 51 + dim, 1.0f, 2);
  std::vector<float> h = randomBf16(rows, dim, 52), dres = randomBf16(rows, dim, 53);
  for (size_t r = 0; r < rows; r += 2) {
    std::fill(h.begin() + r * dim, h.begin() + (r + 1) * dim, 0.0f);
    std::fill(dres.begin() + r * dim, dres.begin() + (r + 1) * dim, 0.0f);
  }
  std::vector<float> w(dim);
  std::mt19937 rng(54);
  for (size_t d = 0; d < dim; ++d)
    w[d] = std::ldexp((rng() & 1) ? -1.0f : 1.0f, int(d % 3) - 1);
  Buf dX = upload(gpu_, toBf16(x)), dH = upload(gpu_, toBf16(h)), dW = upload(gpu_, toBf16(w));
  Buf dDres = upload(gpu_, toBf16(dres));
  Buf dx = alloc(gpu_, n * 2), dw = alloc(gpu_, dim * 4), part = alloc(gpu_, l->kernel.scratchBytes);
  Buf y = alloc(gpu_, n * 2), dx2 = alloc(gpu_, n * 2), dw2 = alloc(gpu_, dim * 4);
  auto run = [&](const Loaded &k, CUdeviceptr dy, CUdeviceptr out, CUdeviceptr outW) {
    check(launch(gpu_, k, 0,
                 Args().ptr(dH.p()).ptr(dW.p()).ptr(dy).ptr(dDres.p()).ptr(out).ptr(part.p())));
    check(launch(gpu_, k, 1, Args().ptr(part.p()).ptr(outW)));
  };
  auto fused = [&] { run(*l, dX.p(), dx.p(), dw.p()); };
  auto apart = [&] {
    check(launch(gpu_, *lh, 0, Args().ptr(dX.p()).ptr(y.p())));
    run(*lp, y.p(), dx2.p(), dw2.p());
  };
  fused();
  apart();
  check(gpu_.ctx->synchronize());
  // The oracle: halo.hadamard's BF16 output, rms_norm_grad's BF16 dx plus
  // dres (rounded), dw in FP32.
  std::vector<float> dy = unrotatedRowsBf16(x, p.rows, p.dim);
  std::vector<float> wdx(n), wdw(dim);
  cpu::rmsNormBackward(h.data(), w.data(), eps, dy.data(), wdx.data(), wdw.data(), p.rows, p.dim);
  for (size_t i = 0; i < n; ++i)
    wdx[i] = numerics::roundToBF16(numerics::roundToBF16(wdx[i]) + dres[i]);
  const std::vector<uint16_t> gotDx = download<uint16_t>(dx, n), apartDx = download<uint16_t>(dx2, n),
                              gotY = download<uint16_t>(y, n);
  const std::vector<float> gotDw = download<float>(dw, dim), apartDw = download<float>(dw2, dim);
  size_t vsApart = 0, badY = 0, badExact = 0;
  for (size_t i = 0; i < n; ++i) {
    vsApart += gotDx[i] != apartDx[i];
    badY += gotY[i] != numerics::floatToBF16(dy[i]);
    if ((i / dim) % 2 == 0)
      badExact += gotDx[i] != numerics::floatToBF16(wdx[i]);
  }
  for (size_t d = 0; d < dim; ++d)
    vsApart += std::memcmp(&gotDw[d], &apartDw[d], 4) != 0;
  bool okX, okW;
  std::string sX = compareFloats(fromBf16(gotDx), wdx, {2e-2, 1e-2}, okX);
  std::string sW = compareFloats(gotDw, wdw, {1e-3 * std::sqrt((double)rows), 1e-4}, okW);
  std::ostringstream d;
  d << "rows with h = 0: " << badExact << "/" << n / 2
    << " dx differ from the oracle (bit-exact expected); vs hadamard + backward apart: " << vsApart
    << "/" << n + dim << " dx, dw differ (bit-exact expected; the rotation apart: " << badY
    << " differ from the oracle); all rows, dx " << sX << ", dw " << sW << " ("
    << l->kernel.program << ")";
  rep_.result(name, badExact == 0 && vsApart == 0 && badY == 0 && okX && okW, d.str());
  if (timing) {
    float copyBw = 0;
    copyMs(n * 2, &copyBw);
    float mf = timeMs(gpu_, fused), ma = timeMs(gpu_, apart);
    float mh = timeMs(gpu_, [&] { check(launch(gpu_, *lh, 0, Args().ptr(dX.p()).ptr(y.p()))); });
    // h, dy (rotated), dres read and dx written: 4 BF16 tensors (apart: 6).
    const double moved = 4.0 * n * 2;
    std::ostringstream t;
    t << name << " (" << l->kernel.program << "): " << mf * 1e3 << " us = "
      << 100.0 * (moved / (mf * 1e-3) / 1e9) / copyBw << "% of copy bandwidth " << copyBw
      << " GB/s (4 BF16 tensors) vs " << ma * 1e3 << " us apart (hadamard " << mh * 1e3
      << " us + backward; " << ma / mf << "x)";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::rope(size_t tokens, size_t seq, size_t h, size_t kv, size_t hd, bool timing) {
  std::string name = "rope_" + std::to_string(tokens) + "_" + std::to_string(h) + "x" +
                     std::to_string(kv) + "x" + std::to_string(hd);
  if (!wanted(name))
    return;
  for (bool inv : {false, true}) {
    RopeParams p{static_cast<int64_t>(tokens), static_cast<int64_t>(seq),
                 static_cast<int64_t>(h), static_cast<int64_t>(kv),
                 static_cast<int64_t>(hd), 500000.0, inv};
    auto l = get(ropeKernel(p));
    std::vector<float> q = randomBf16(tokens, h * hd, 21), k = randomBf16(tokens, kv * hd, 22);
    Buf dq = upload(gpu_, toBf16(q)), dk = upload(gpu_, toBf16(k));
    Buf oq = alloc(gpu_, q.size() * 2), ok_ = alloc(gpu_, k.size() * 2);
    check(launch(gpu_, *l, 0, Args().ptr(dq.p()).ptr(dk.p()).ptr(oq.p()).ptr(ok_.p())));
    check(gpu_.ctx->synchronize());
    std::vector<float> wq(q.size()), wk(k.size());
    cpu::rope(q.data(), p.tokens, p.seqLen, p.qHeads, p.headDim, p.theta, inv, wq.data());
    cpu::rope(k.data(), p.tokens, p.seqLen, p.kvHeads, p.headDim, p.theta, inv, wk.data());
    bool a, b;
    std::string s1 = compareFloats(fromBf16(download<uint16_t>(oq, q.size())), wq, {1e-2, 8e-3}, a);
    std::string s2 = compareFloats(fromBf16(download<uint16_t>(ok_, k.size())), wk, {1e-2, 8e-3}, b);
    rep_.result(name + (inv ? "_inverse" : "_forward"), a && b, "q " + s1 + "; k " + s2);
    if (timing) {
      float copyBw = 0;
      copyMs(tokens * (h + kv) * hd * 2, &copyBw);
      float ms = timeMs(gpu_, [&] {
        check(launch(gpu_, *l, 0, Args().ptr(dq.p()).ptr(dk.p()).ptr(oq.p()).ptr(ok_.p())));
      });
      double moved = 2.0 * tokens * (h + kv) * hd * 2;
      std::ostringstream t;
      t << name << (inv ? " inverse: " : " forward: ") << ms * 1e3 << " us = "
        << 100 * (moved / (ms * 1e-3) / 1e9) / copyBw << "% of copy bandwidth " << copyBw << " GB/s";
      rep_.log << "[TIME] " << t.str() << std::endl;
      timings.push_back(t.str());
    }
  }
}

void Checker::swiglu(size_t n) {
  std::string name = "swiglu_" + std::to_string(n);
  if (!wanted(name))
    return;
  auto lf = get(swigluForwardKernel(static_cast<int64_t>(n)));
  auto lb = get(swigluBackwardKernel(static_cast<int64_t>(n)));
  std::vector<float> g = randomBf16(1, n, 31, 2.0f), u = randomBf16(1, n, 32), dy = randomBf16(1, n, 33);
  Buf dg = upload(gpu_, toBf16(g)), du = upload(gpu_, toBf16(u)), ddy = upload(gpu_, toBf16(dy));
  Buf y = alloc(gpu_, n * 2), og = alloc(gpu_, n * 2), ou = alloc(gpu_, n * 2);
  check(launch(gpu_, *lf, 0, Args().ptr(dg.p()).ptr(du.p()).ptr(y.p())));
  check(launch(gpu_, *lb, 0, Args().ptr(dg.p()).ptr(du.p()).ptr(ddy.p()).ptr(og.p()).ptr(ou.p())));
  check(gpu_.ctx->synchronize());
  std::vector<float> s(n), wy(n), wdg(n), wdu(n), one(n, 1.0f);
  cpu::silu(g.data(), s.data(), static_cast<int64_t>(n));
  cpu::mul(s.data(), u.data(), wy.data(), static_cast<int64_t>(n));
  cpu::mul(dy.data(), s.data(), wdu.data(), static_cast<int64_t>(n)); // du = dy silu(g)
  std::vector<float> dyu(n);
  cpu::mul(dy.data(), u.data(), dyu.data(), static_cast<int64_t>(n));
  cpu::siluBackward(g.data(), dyu.data(), wdg.data(), static_cast<int64_t>(n));
  bool a, b, c;
  std::string s1 = compareFloats(fromBf16(download<uint16_t>(y, n)), wy, {1e-2, 8e-3}, a);
  std::string s2 = compareFloats(fromBf16(download<uint16_t>(og, n)), wdg, {1e-2, 8e-3}, b);
  std::string s3 = compareFloats(fromBf16(download<uint16_t>(ou, n)), wdu, {1e-2, 8e-3}, c);
  rep_.result(name + "_fwd", a, s1);
  rep_.result(name + "_bwd", b && c, "dg " + s2 + "; du " + s3);
}

void Checker::hadamardSwigluGrad(size_t rows, size_t cols, bool timing) {
  std::string name = "hadamard_swiglu_grad_" + std::to_string(rows) + "x" + std::to_string(cols);
  if (!wanted(name))
    return;
  const size_t n = rows * cols;
  HadamardParams p;
  p.rows = static_cast<int64_t>(rows);
  p.cols = static_cast<int64_t>(cols);
  p.transposed = true;
  auto lh = get(hadamardKernel(p));
  p.swigluGrad = true;
  auto l = get(hadamardKernel(p));
  auto lb = get(swigluBackwardKernel(static_cast<int64_t>(n)));
  // x: the rotated gradient (outlier channels); g: on even rows 128, where
  // sigmoid(g) is exactly 1 in FP32 (exp(-128) underflows), so that du =
  // 128 dy and dg = bf16(dy u) exactly, in the kernel's arithmetic and in the
  // oracle's alike: there the rotated dy is compared bit for bit.
  std::vector<float> x = randomBf16(rows, cols, 41 + cols, 1.0f, 2);
  std::vector<float> g = randomBf16(rows, cols, 42, 2.0f), u = randomBf16(rows, cols, 43);
  for (size_t r = 0; r < rows; r += 2)
    std::fill(g.begin() + r * cols, g.begin() + (r + 1) * cols, 128.0f);
  Buf dx = upload(gpu_, toBf16(x)), dgate = upload(gpu_, toBf16(g)), dup = upload(gpu_, toBf16(u));
  Buf og = alloc(gpu_, n * 2), ou = alloc(gpu_, n * 2);
  Buf y = alloc(gpu_, n * 2), og2 = alloc(gpu_, n * 2), ou2 = alloc(gpu_, n * 2);
  auto fused = [&] {
    check(launch(gpu_, *l, 0,
                 Args().ptr(dx.p()).ptr(dgate.p()).ptr(dup.p()).ptr(og.p()).ptr(ou.p())));
  };
  auto apart = [&] {
    check(launch(gpu_, *lh, 0, Args().ptr(dx.p()).ptr(y.p())));
    check(launch(gpu_, *lb, 0,
                 Args().ptr(dgate.p()).ptr(dup.p()).ptr(y.p()).ptr(og2.p()).ptr(ou2.p())));
  };
  fused();
  apart();
  check(gpu_.ctx->synchronize());
  // The oracle: halo.hadamard's BF16 output, then the kernel body's mul,
  // silu, mul, silu_grad, each rounded to BF16 as the interpreter does.
  std::vector<float> dy = unrotatedRowsBf16(x, p.rows, p.cols);
  const int64_t ni = static_cast<int64_t>(n);
  std::vector<float> ds(n), sg(n), wdu(n), wdg(n);
  auto round = [](std::vector<float> &v) {
    for (float &e : v)
      e = numerics::roundToBF16(e);
  };
  cpu::mul(dy.data(), u.data(), ds.data(), ni);
  round(ds);
  cpu::silu(g.data(), sg.data(), ni);
  round(sg);
  cpu::mul(dy.data(), sg.data(), wdu.data(), ni);
  round(wdu);
  cpu::siluBackward(g.data(), ds.data(), wdg.data(), ni);
  round(wdg);
  const std::vector<uint16_t> gotG = download<uint16_t>(og, n), gotU = download<uint16_t>(ou, n);
  const std::vector<uint16_t> apartG = download<uint16_t>(og2, n),
                              apartU = download<uint16_t>(ou2, n), gotY = download<uint16_t>(y, n);
  size_t vsApart = 0, badY = 0, badExact = 0;
  for (size_t i = 0; i < n; ++i) {
    vsApart += gotG[i] != apartG[i] || gotU[i] != apartU[i];
    badY += gotY[i] != numerics::floatToBF16(dy[i]);
    if ((i / cols) % 2 == 0)
      badExact += gotG[i] != numerics::floatToBF16(wdg[i]) || gotU[i] != numerics::floatToBF16(wdu[i]);
  }
  bool okG, okU;
  std::string sG = compareFloats(fromBf16(gotG), wdg, {1e-2, 8e-3}, okG);
  std::string sU = compareFloats(fromBf16(gotU), wdu, {1e-2, 8e-3}, okU);
  std::ostringstream d;
  d << "rows with g = 128: " << badExact << "/" << n / 2
    << " elements differ from the oracle (bit-exact expected); vs hadamard + swiglu_bwd apart: "
    << vsApart << "/" << n << " differ (bit-exact expected; the rotation apart: " << badY
    << " differ from the oracle); all rows, dg " << sG << ", du " << sU << " ("
    << l->kernel.program << ")";
  rep_.result(name, badExact == 0 && vsApart == 0 && badY == 0 && okG && okU, d.str());
  if (timing) {
    float copyBw = 0;
    copyMs(n * 2, &copyBw);
    float mf = timeMs(gpu_, fused), ma = timeMs(gpu_, apart);
    float mh = timeMs(gpu_, [&] { check(launch(gpu_, *lh, 0, Args().ptr(dx.p()).ptr(y.p()))); });
    float mb = timeMs(gpu_, [&] {
      check(launch(gpu_, *lb, 0,
                   Args().ptr(dgate.p()).ptr(dup.p()).ptr(y.p()).ptr(og2.p()).ptr(ou2.p())));
    });
    // Read x, g, u and write dg, du: 5 BF16 tensors (apart: 7).
    const double moved = 5.0 * n * 2;
    std::ostringstream t;
    t << name << " (" << l->kernel.program << "): " << mf * 1e3 << " us = "
      << 100.0 * (moved / (mf * 1e-3) / 1e9) / copyBw << "% of copy bandwidth " << copyBw
      << " GB/s (5 BF16 tensors) vs " << ma * 1e3 << " us apart (hadamard " << mh * 1e3
      << " + swiglu_bwd " << mb * 1e3 << " us; " << ma / mf << "x)";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::embedding(size_t tokens, size_t vocab, size_t dim, bool timing) {
  std::string name = "embedding_" + std::to_string(tokens) + "_" + std::to_string(vocab) + "x" + std::to_string(dim);
  if (!wanted(name))
    return;
  auto l = get(embeddingKernel({static_cast<int64_t>(tokens), static_cast<int64_t>(vocab),
                                static_cast<int64_t>(dim)}));
  std::mt19937 rng(7);
  std::vector<int32_t> ids(tokens);
  for (auto &i : ids) // repeats (ids < vocab / 4) unless timed at the benchmark's spread
    i = static_cast<int32_t>(rng() % (timing ? vocab : std::max<size_t>(1, vocab / 4)));
  std::vector<float> dout = randomBf16(tokens, dim, 42);
  Buf dIds = upload(gpu_, ids), err = alloc(gpu_, 4), dOut = upload(gpu_, toBf16(dout));
  // Poisoned (NaN): the backward must write every element.
  Buf dTable = alloc(gpu_, vocab * dim * 4, false), part = alloc(gpu_, l->kernel.scratchBytes);
  gpu_.drv->cuMemsetD8(dTable.p(), 0xff, vocab * dim * 4);
  const bool list = l->kernel.find("_bwd_list") != nullptr;
  auto bwd = [&] {
    if (list) {
      check(launch(gpu_, *l, 1, Args().ptr(dIds.p()).ptr(part.p()).ptr(err.p())));
      check(launch(gpu_, *l, 2, Args().ptr(part.p()).ptr(dOut.p()).ptr(dTable.p())));
    } else {
      check(launch(gpu_, *l, 1, Args().ptr(dIds.p()).ptr(dOut.p()).ptr(dTable.p()).ptr(err.p())));
    }
  };
  bwd();
  check(gpu_.ctx->synchronize());
  std::string fwd = "fwd not checked";
  bool a = true, b;
  if (!timing) {
    std::vector<float> table = randomBf16(vocab, dim, 41), wout(tokens * dim);
    Buf dT = upload(gpu_, toBf16(table)), out = alloc(gpu_, tokens * dim * 2);
    check(launch(gpu_, *l, 0, Args().ptr(dIds.p()).ptr(dT.p()).ptr(out.p()).ptr(err.p())));
    check(gpu_.ctx->synchronize());
    check(cpu::embedding(ids.data(), table.data(), wout.data(), (int64_t)tokens, (int64_t)vocab, (int64_t)dim));
    fwd = "fwd " + compareFloats(fromBf16(download<uint16_t>(out, tokens * dim)), wout, {0, 0}, a);
  }
  std::vector<float> wdt(vocab * dim);
  check(cpu::embeddingBackward(ids.data(), dout.data(), wdt.data(), (int64_t)tokens, (int64_t)vocab, (int64_t)dim));
  // Token order per row, as the CPU adds: bit-identical.
  std::string s2 = compareFloats(download<float>(dTable, vocab * dim), wdt, {0, 0}, b);
  int e = download<int>(err, 1)[0];
  rep_.result(name, a && b && e == 0, fwd + "; bwd " + s2 + "; error flag " + std::to_string(e));
  if (timing) {
    float copyBw = 0;
    copyMs(tokens * dim * 2, &copyBw);
    float ms = timeMs(gpu_, bwd);
    float zero = timeMs(gpu_, [&] { gpu_.drv->cuMemsetD8Async(dTable.p(), 0, vocab * dim * 4, nullptr); });
    double moved = tokens * dim * 2.0 + vocab * dim * 4.0 + tokens * 4.0;
    std::ostringstream t;
    t << name << ": bwd " << ms * 1e3 << " us = " << 100 * (moved / (ms * 1e-3) / 1e9) / copyBw
      << "% of copy bandwidth " << copyBw << " GB/s (a memset of dtable: " << zero * 1e3 << " us)";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::crossEntropy(size_t tokens, size_t vocab) {
  std::string name = "cross_entropy_" + std::to_string(tokens) + "x" + std::to_string(vocab);
  if (!wanted(name))
    return;
  auto l = get(crossEntropyKernel({static_cast<int64_t>(tokens), static_cast<int64_t>(vocab)}));
  std::vector<float> logits = randomBf16(tokens, vocab, 51, 3.0f);
  std::mt19937 rng(8);
  std::vector<int32_t> targets(tokens);
  for (size_t t = 0; t < tokens; ++t)
    targets[t] = (t % 7 == 3) ? -100 : static_cast<int32_t>(rng() % vocab);
  const float dloss = 0.5f;
  Buf dl = upload(gpu_, toBf16(logits)), dt = upload(gpu_, targets);
  Buf dd = upload(gpu_, std::vector<float>{dloss}), grad = alloc(gpu_, tokens * vocab * 2);
  Buf rowLoss = alloc(gpu_, tokens * 4), ws = alloc(gpu_, 8), loss = alloc(gpu_, 4);
  for (int rep = 0; rep < 2; ++rep) {
    check(launch(gpu_, *l, 0, Args().ptr(dt.p()).ptr(ws.p())));
    check(launch(gpu_, *l, 1, Args().ptr(dl.p()).ptr(dt.p()).ptr(dd.p()).ptr(grad.p()).ptr(rowLoss.p()).ptr(ws.p()).ptr(loss.p())));
  }
  check(gpu_.ctx->synchronize());
  float want = cpu::crossEntropy(logits.data(), targets.data(), (int64_t)tokens, (int64_t)vocab);
  std::vector<float> wg(tokens * vocab);
  cpu::crossEntropyBackward(logits.data(), targets.data(), dloss, wg.data(), (int64_t)tokens, (int64_t)vocab);
  float got = download<float>(loss, 1)[0];
  bool a = std::fabs(got - want) <= 1e-5f * std::fabs(want) + 1e-6f, b;
  std::string s = compareFloats(fromBf16(download<uint16_t>(grad, tokens * vocab)), wg,
                                {1e-7, 8e-3}, b);
  std::ostringstream os;
  os << "loss " << got << " vs " << want << "; dlogits " << s;
  rep_.result(name, a && b, os.str());
}

void Checker::norms(size_t n) {
  std::string name = "global_norm_adamw_schedule_" + std::to_string(n);
  if (!wanted(name))
    return;
  auto ls = get(sumSquaresKernel(static_cast<int64_t>(n), ElemType::F32));
  auto lf = get(globalNormKernel(1.0));
  auto lr = get(lrScheduleKernel({3e-3, 5, 100, 2}));
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  std::vector<float> g(n);
  for (float &v : g)
    v = nd(rng);
  Buf dg = upload(gpu_, g), acc = alloc(gpu_, 8), norm = alloc(gpu_, 4), clip = alloc(gpu_, 4);
  Buf bad = upload(gpu_, std::vector<int>{INT32_MAX});
  check(launch(gpu_, *ls, 0, Args().ptr(dg.p()).ptr(acc.p()).ptr(bad.p()).i32(0)));
  check(launch(gpu_, *ls, 0, Args().ptr(dg.p()).ptr(acc.p()).ptr(bad.p()).i32(1))); // two tensors
  check(launch(gpu_, *lf, 0, Args().ptr(acc.p()).ptr(norm.p()).ptr(clip.p())));
  check(gpu_.ctx->synchronize());
  double ss = 2 * cpu::sumSquares(g.data(), static_cast<int64_t>(n));
  float wn = static_cast<float>(std::sqrt(ss));
  float gn = download<float>(norm, 1)[0], gc = download<float>(clip, 1)[0];
  float wc = std::min(1.0f, 1.0f / (wn + 1e-6f));
  bool a = std::fabs(gn - wn) <= 1e-6f * wn && std::fabs(gc - wc) <= 1e-6f * wc &&
           download<double>(acc, 1)[0] == 0.0 && download<int>(bad, 1)[0] == INT32_MAX;
  std::ostringstream os;
  os << "norm " << gn << " vs " << wn << ", clip " << gc << " vs " << wc;
  rep_.result(name + "_norm", a, os.str());
  bool lrOk = true;
  Buf step = alloc(gpu_, 4), lrv = alloc(gpu_, 4);
  for (int s : {1, 3, 5, 6, 50, 100, 120}) {
    check(step.b->copyFromHost(&s, 4));
    check(launch(gpu_, *lr, 0, Args().ptr(step.p()).ptr(lrv.p())));
    float got = download<float>(lrv, 1)[0];
    float want = static_cast<float>(cpu::learningRate(s, 3e-3, 5, 100, cpu::Schedule::Cosine));
    lrOk &= got == want;
  }
  rep_.result(name + "_lr_schedule", lrOk, "cosine schedule bit-exact at 7 steps");
  overflowGuard(n);
  adamw(n, false, false);
  adamw(n, true, false);
  adamw(n, true, true);
}

// A NaN gradient: sumsq names its tensor, the clip coefficient becomes NaN
// and AdamW leaves the parameter and moments untouched (the step is skipped).
void Checker::overflowGuard(size_t n) {
  std::string name = "overflow_guard_" + std::to_string(n);
  auto ls = get(sumSquaresKernel(static_cast<int64_t>(n), ElemType::F32));
  auto lf = get(globalNormKernel(0.0));
  auto la = get(adamwKernel(AdamWParams{static_cast<int64_t>(n), 0.9, 0.999, 1e-8, 0.1, false}));
  std::vector<float> g(n, 0.5f), param(n, 1.0f), m(n, 0.25f);
  g[n / 2] = NAN;
  Buf dg = upload(gpu_, g), dp = upload(gpu_, param), dm = upload(gpu_, m), dv = upload(gpu_, m);
  Buf acc = alloc(gpu_, 8), norm = alloc(gpu_, 4), clip = alloc(gpu_, 4);
  Buf bad = upload(gpu_, std::vector<int>{INT32_MAX});
  Buf lr = upload(gpu_, std::vector<float>{1e-3f}), step = upload(gpu_, std::vector<int>{3});
  check(launch(gpu_, *ls, 0, Args().ptr(dg.p()).ptr(acc.p()).ptr(bad.p()).i32(7)));
  check(launch(gpu_, *lf, 0, Args().ptr(acc.p()).ptr(norm.p()).ptr(clip.p())));
  check(launch(gpu_, *la, 0, Args().ptr(dp.p()).ptr(dg.p()).ptr(dm.p()).ptr(dv.p()).ptr(lr.p()).ptr(step.p()).ptr(clip.p()).ptr(0)));
  check(gpu_.ctx->synchronize());
  int tag = download<int>(bad, 1)[0];
  float c = download<float>(clip, 1)[0];
  bool untouched = download<float>(dp, n) == param && download<float>(dm, n) == m &&
                   download<float>(dv, n) == m;
  rep_.result(name, tag == 7 && std::isnan(c) && untouched && download<double>(acc, 1)[0] == 0.0,
              "bad tag " + std::to_string(tag) + ", clip " + std::to_string(c) +
                  (untouched ? ", AdamW skipped" : ", AdamW CHANGED the state"));
}

// BF16 moments: the same stochastic rounding bits as the oracle, so the
// stored moments match unless the FP32 value differs (FMA contraction), which
// can move a rounding by one BF16 step.
void Checker::adamw(size_t n, bool bf16Moments, bool bf16Weights, bool timing) {
  std::string name = std::string("adamw_") + (bf16Moments ? "bf16m_" : "") +
                     (bf16Weights ? "bf16w_" : "") + std::to_string(n);
  if (timing && !wanted(name))
    return;
  AdamWParams p;
  p.elements = static_cast<int64_t>(n);
  p.weightDecay = 0.01;
  p.moments = bf16Moments ? ElemType::BF16 : ElemType::F32;
  p.param = bf16Weights ? ElemType::BF16 : ElemType::F32;
  p.writeBf16Copy = !bf16Weights;
  auto l = get(adamwKernel(p));
  AdamWState state(n, 10, bf16Moments, bf16Weights);
  std::vector<float> grad = randomBf16(1, n, 11, 0.01f);
  const float lr = 3e-4f, gs = 0.5f;
  const int step = 7;
  Buf dp = uploadState(state.param, bf16Weights), dgr = upload(gpu_, grad),
      dm = uploadState(state.m, bf16Moments), dv = uploadState(state.v, bf16Moments);
  Buf dlr = upload(gpu_, std::vector<float>{lr}), dst = upload(gpu_, std::vector<int>{step});
  Buf dgs = upload(gpu_, std::vector<float>{gs}), copy = alloc(gpu_, n * 2);
  check(launch(gpu_, *l, 0, Args().ptr(dp.p()).ptr(dgr.p()).ptr(dm.p()).ptr(dv.p()).ptr(dlr.p()).ptr(dst.p()).ptr(dgs.p()).ptr(copy.p())));
  check(gpu_.ctx->synchronize());
  std::string detail;
  bool ok = compareAdamW(state, grad, gs, lr, step, p, dp, dm, dv, copy, detail);
  rep_.result(name, ok, detail);
  if (timing) {
    // Bytes each step moves: the gradient read, weights and moments read and
    // written, the BF16 copy written.
    const size_t ws = bf16Weights ? 2 : 4, ms = bf16Moments ? 2 : 4;
    const size_t moved = n * (2 + 2 * ws + 4 * ms + (p.writeBf16Copy ? 2 : 0));
    float copyBw = 0;
    copyMs(moved / 2, &copyBw);
    float t = timeMs(gpu_, [&] {
      check(launch(gpu_, *l, 0, Args().ptr(dp.p()).ptr(dgr.p()).ptr(dm.p()).ptr(dv.p()).ptr(dlr.p()).ptr(dst.p()).ptr(dgs.p()).ptr(copy.p())));
    });
    const double bw = moved / (t * 1e-3) / 1e9;
    std::ostringstream o;
    o << name << " (" << l->kernel.program << "): " << t * 1e3 << " us, " << bw
      << " GB/s = " << 100.0 * bw / copyBw << "% of copy bandwidth " << copyBw << " GB/s";
    rep_.log << "[TIME] " << o.str() << std::endl;
    timings.push_back(o.str());
  }
}

bool Checker::compareAdamW(AdamWState &state, const std::vector<float> &g, float gs, float lr,
                           int step, const AdamWParams &p, const Buf &dp, const Buf &dm,
                           const Buf &dv, const Buf &copy, std::string &detail) {
  const size_t n = state.param.size();
  const bool bf16Moments = p.moments == ElemType::BF16, bf16Weights = p.param == ElemType::BF16;
  std::vector<float> &param = state.param, &m = state.m, &v = state.v;
  std::vector<float> g2(n);
  for (size_t i = 0; i < n; ++i)
    g2[i] = g[i] * gs;
  cpu::adamw(param.data(), g2.data(), m.data(), v.data(), static_cast<int64_t>(n), lr, p.beta1,
             p.beta2, p.eps, p.weightDecay, step, bf16Moments, bf16Weights);
  bool a, b, c, d = true;
  // A stochastically rounded BF16 value may differ by one step where FMA
  // contraction moved the FP32 value across a rounding threshold.
  const double momentRel = bf16Moments ? 8e-3 : 1e-6;
  std::vector<float> gp = downloadState(dp, n, bf16Weights),
                     gm = downloadState(dm, n, bf16Moments),
                     gv = downloadState(dv, n, bf16Moments);
  std::string s1 = compareFloats(gp, param, {1e-7, bf16Weights ? 8e-3 : 1e-6}, a);
  std::string s2 = compareFloats(gm, m, {1e-9, momentRel}, b);
  std::string s3 = compareFloats(gv, v, {1e-12, momentRel}, c);
  detail = "param " + s1 + "; m " + s2 + "; v " + s3;
  if (p.writeBf16Copy) {
    std::vector<float> pc(n);
    for (size_t i = 0; i < n; ++i)
      pc[i] = numerics::roundToBF16(param[i]);
    detail += "; bf16 copy " +
              compareFloats(fromBf16(download<uint16_t>(copy, n)), pc, {1e-6, 8e-3}, d);
  }
  auto bitIdentical = [&](const char *what, const std::vector<float> &x,
                          const std::vector<float> &want) {
    size_t same = 0;
    for (size_t i = 0; i < n; ++i)
      same += x[i] == want[i];
    detail += std::string("; ") + what + " bit-identical " + std::to_string(same) + "/" +
              std::to_string(n);
  };
  if (bf16Moments) {
    bitIdentical("m", gm, m);
    bitIdentical("v", gv, v);
  }
  if (bf16Weights)
    bitIdentical("weights", gp, param);
  return a && b && c && d;
}

void Checker::adamwRows(size_t rows, size_t cols, bool bf16Moments, bool writeGrad,
                        bool timing, bool bf16Weights) {
  std::string name = "adamw_rows_" + std::to_string(rows) + "x" + std::to_string(cols) +
                     (bf16Moments ? "_bf16m" : "") + (bf16Weights ? "_bf16w" : "") +
                     (writeGrad ? "_g" : "");
  if (!wanted(name))
    return;
  const size_t n = rows * cols;
  AdamWParams p;
  p.elements = static_cast<int64_t>(n);
  p.weightDecay = 0.01;
  p.grad = ElemType::BF16;
  p.moments = bf16Moments ? ElemType::BF16 : ElemType::F32;
  p.param = bf16Weights ? ElemType::BF16 : ElemType::F32;
  p.writeBf16Copy = !bf16Weights;
  p.rotateRows = true;
  p.transposed = true;
  p.rowLength = static_cast<int64_t>(cols);
  p.writeGrad = writeGrad;
  auto l = get(adamwKernel(p));
  std::vector<float> grot = randomBf16(rows, cols, 31 + cols, 0.01f, 2);
  AdamWState state(n, 12, bf16Moments, bf16Weights);
  const float lr = 3e-4f, gs = 0.5f;
  const int step = 7;
  Buf dp = uploadState(state.param, bf16Weights), dg = upload(gpu_, toBf16(grot)),
      dm = uploadState(state.m, bf16Moments), dv = uploadState(state.v, bf16Moments);
  Buf dlr = upload(gpu_, std::vector<float>{lr}), dst = upload(gpu_, std::vector<int>{step});
  Buf dgs = upload(gpu_, std::vector<float>{gs}), copy = alloc(gpu_, n * 2),
      gout = alloc(gpu_, n * 2);
  auto args = [&] {
    Args a;
    a.ptr(dp.p()).ptr(dg.p()).ptr(dm.p()).ptr(dv.p()).ptr(dlr.p()).ptr(dst.p()).ptr(dgs.p()).ptr(
        copy.p());
    if (writeGrad)
      a.ptr(gout.p());
    return a;
  };
  check(launch(gpu_, *l, 0, args()));
  check(gpu_.ctx->synchronize());
  // The oracle: halo.hadamard's BF16 output, then AdamW on it.
  std::vector<float> g = unrotatedRowsBf16(grot, rows, cols);
  std::string detail;
  bool ok = compareAdamW(state, g, gs, lr, step, p, dp, dm, dv, copy, detail);
  size_t badG = 0;
  if (writeGrad) {
    std::vector<float> got = fromBf16(download<uint16_t>(gout, n));
    for (size_t i = 0; i < n; ++i)
      badG += std::memcmp(&got[i], &g[i], 4) != 0;
  }
  rep_.result(name, ok && badG == 0,
              detail +
                  (writeGrad ? "; G " + std::to_string(badG) + " values differ (bit-exact expected)"
                             : "") +
                  " (" + l->kernel.program + ")");
  if (timing) {
    // Before: the un-rotation kernel, then the plain step on G.
    HadamardParams hp;
    hp.rows = p.elements / p.rowLength;
    hp.cols = p.rowLength;
    hp.transposed = true;
    auto lh = get(hadamardKernel(hp));
    AdamWParams pp = p;
    pp.rotateRows = pp.writeGrad = false;
    auto lp = get(adamwKernel(pp));
    Buf gfull = alloc(gpu_, n * 2);
    float fused = timeMs(gpu_, [&] { check(launch(gpu_, *l, 0, args())); });
    float apart = timeMs(gpu_, [&] {
      check(launch(gpu_, *lh, 0, Args().ptr(dg.p()).ptr(gfull.p())));
      check(launch(gpu_, *lp, 0,
                   Args().ptr(dp.p()).ptr(gfull.p()).ptr(dm.p()).ptr(dv.p()).ptr(dlr.p()).ptr(
                       dst.p()).ptr(dgs.p()).ptr(copy.p())));
    });
    std::ostringstream t;
    t << name << " (" << l->kernel.program << "): " << fused * 1e3 << " us vs " << apart * 1e3
      << " us for hadamard + adamw apart (" << apart / fused << "x)";
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
}

void Checker::attention(size_t B, size_t S, size_t H, size_t KV, size_t hd, bool timing,
                        int64_t warps) {
  std::ostringstream nm;
  nm << "attention_" << B << "x" << S << "_" << H << "x" << KV << "x" << hd;
  if (warps)
    nm << "_w" << warps;
  std::string name = nm.str();
  if (!wanted(name))
    return;
  AttentionParams p{static_cast<int64_t>(B), static_cast<int64_t>(S), static_cast<int64_t>(H),
                    static_cast<int64_t>(KV), static_cast<int64_t>(hd), warps, targetSm()};
  auto lf = get(attentionForwardKernel(p));
  auto lb = get(attentionBackwardKernel(p));
  size_t T = B * S;
  std::vector<float> q = randomBf16(T, H * hd, 61), k = randomBf16(T, KV * hd, 62);
  std::vector<float> v = randomBf16(T, KV * hd, 63), dout = randomBf16(T, H * hd, 64);
  Buf dq = upload(gpu_, toBf16(q)), dk = upload(gpu_, toBf16(k)), dv = upload(gpu_, toBf16(v));
  Buf out = alloc(gpu_, T * H * hd * 2), lse = alloc(gpu_, B * H * S * 4);
  Buf ddo = upload(gpu_, toBf16(dout)), delta = alloc(gpu_, lb->kernel.scratchBytes);
  Buf gq = alloc(gpu_, T * H * hd * 2), gk = alloc(gpu_, T * KV * hd * 2), gv = alloc(gpu_, T * KV * hd * 2);
  Buf ws = alloc(gpu_, std::max<size_t>(lb->kernel.workspaceBytes, 16)); // zeroed
  auto fwd = [&] {
    check(launch(gpu_, *lf, 0, Args().ptr(dq.p()).ptr(dk.p()).ptr(dv.p()).ptr(out.p()).ptr(lse.p())));
  };
  // The dK/dV launch of `l` (its `i`-th), writing gk_ / gv_ (and gq_ where it
  // computes dQ too: attn_wg_bwd's signature ends with the workspace).
  auto dkdv = [&](const Loaded &l, size_t i, Buf &gq_, Buf &gk_, Buf &gv_) {
    Args a;
    a.ptr(dq.p()).ptr(dk.p()).ptr(dv.p()).ptr(ddo.p()).ptr(lse.p()).ptr(delta.p()).ptr(gk_.p()).ptr(gv_.p());
    if (l.kernel.launches[i].signature.find("* __restrict__ ws") != std::string::npos)
      a.ptr(gq_.p()).ptr(delta.p()).ptr(ws.p());
    check(launch(gpu_, l, i, a));
  };
  auto bwdOf = [&](const Loaded &l) {
    check(launch(gpu_, l, 0, Args().ptr(out.p()).ptr(ddo.p()).ptr(delta.p())));
    dkdv(l, 1, gq, gk, gv);
    check(launch(gpu_, l, 2, Args().ptr(dq.p()).ptr(dk.p()).ptr(dv.p()).ptr(ddo.p()).ptr(lse.p()).ptr(delta.p()).ptr(gq.p())));
  };
  auto bwd = [&] { bwdOf(*lb); };
  fwd();
  bwd();
  check(gpu_.ctx->synchronize());
  // Deterministic, and the workspace is left ready: a second run writes the same bits.
  std::vector<uint16_t> dq1 = download<uint16_t>(gq, q.size()), dk1 = download<uint16_t>(gk, k.size());
  bwd();
  check(gpu_.ctx->synchronize());
  bool same = dq1 == download<uint16_t>(gq, q.size()) && dk1 == download<uint16_t>(gk, k.size());
  // The oracle runs on the BF16 output the backward kernels saw.
  std::vector<float> wout(T * H * hd), wlse(B * H * S);
  cpu::attention(q.data(), k.data(), v.data(), p.batch, p.seqLen, p.heads, p.kvHeads, p.headDim,
                 wout.data(), wlse.data());
  std::vector<float> gout = fromBf16(download<uint16_t>(out, T * H * hd));
  std::vector<float> glse = download<float>(lse, B * H * S);
  std::vector<float> wq(q.size()), wk(k.size()), wv(v.size());
  cpu::attentionBackward(q.data(), k.data(), v.data(), gout.data(), glse.data(), dout.data(),
                         p.batch, p.seqLen, p.heads, p.kvHeads, p.headDim, wq.data(), wk.data(),
                         wv.data());
  bool a, b, c, d, e;
  std::string s1 = compareFloats(gout, wout, {1e-2, 1e-2}, a);
  std::string s2 = compareFloats(glse, wlse, {1e-4, 1e-5}, b);
  std::string s3 = compareFloats(fromBf16(download<uint16_t>(gq, q.size())), wq, {2e-2, 2e-2}, c);
  std::string s4 = compareFloats(fromBf16(download<uint16_t>(gk, k.size())), wk, {2e-2, 2e-2}, d);
  std::string s5 = compareFloats(fromBf16(download<uint16_t>(gv, v.size())), wv, {2e-2, 2e-2}, e);
  rep_.result(name + "_fwd", a && b, "out " + s1 + "; lse " + s2);
  rep_.result(name + "_bwd", c && d && e && same,
              "dq " + s3 + "; dk " + s4 + "; dv " + s5 +
                  (same ? "; a second run is bit-identical" : "; a second run DIFFERS"));
  if (timing) {
    float mf = timeMs(gpu_, fwd, 5), mb = timeMs(gpu_, bwd, 5);
    double flops = 4.0 * B * H * S * S / 2 * hd; // causal
    std::ostringstream t;
    t << name << ": fwd " << mf << " ms (" << flops / (mf * 1e-3) / 1e12 << " TFLOP/s), bwd "
      << mb << " ms (" << 2.5 * flops / (mb * 1e-3) / 1e12 << " TFLOP/s)";
    if (lb->kernel.workspaceBytes) {
      // The same backward with the separate dQ kernel, in this run.
      AttentionParams ps = p;
      ps.separateDq = true;
      auto lsep = get(attentionBackwardKernel(ps));
      float msep = timeMs(gpu_, [&] { bwdOf(*lsep); }, 5);
      t << "; separate dQ kernel: bwd " << msep << " ms";
    }
    rep_.log << "[TIME] " << t.str() << std::endl;
    timings.push_back(t.str());
  }
  // HALO_ATTN_VARIANTS=1 (tuning): each tensor-core kernel alone, with other
  // template arguments, checked against the oracle and timed.
  if (timing && !warps && std::getenv("HALO_ATTN_VARIANTS")) {
    struct V {
      int kind; // 0 fwd, 1 dkdv, 2 dq
      std::string fn; // the template, after attn_mma_ (attn_wg_ when wg)
      std::string extra; // template arguments after S, H, KV, HD
      unsigned warps, rows; // rows per block
      unsigned smem;
      bool wg = false; // attention_wgmma.cuh (the sm_90a branch of the entry)
    };
    const unsigned HDu = unsigned(hd), T2 = HDu * 2;
    // attn_mma_dkdv2 (warp pairs): K, V, two Q and dO buffers, P^T and dS^T, lse and delta.
    auto pairs = [&](unsigned w, unsigned kr) {
      return V{1, "dkdv2", std::to_string(w) + ", " + std::to_string(kr), w, 16 * w,
               (32 * w + 4 * kr) * T2 + 64 * w * kr + 16 * kr};
    };
    std::vector<V> vs = {
        {0, "fwd", "4, 2, 64", 4, 128, (128 + 256) * T2},
        {1, "dkdv", "4, 64, false", 4, 64, (128 + 256) * T2 + 1024},
        {1, "dkdv", "8, 64, false", 8, 128, (256 + 256) * T2 + 1024},
        pairs(4, 64), pairs(8, 64),
        {2, "dq", "4, 2, 32", 4, 128, (256 + 128) * T2},
        {2, "dq", "8, 2, 32", 8, 256, (512 + 128) * T2},
        {2, "dq", "32", 4, 128, (256 + 128) * T2, true},
        {2, "dq", "64", 4, 128, (256 + 256) * T2, true},
    };
    Buf out2 = alloc(gpu_, T * H * hd * 2), lse2 = alloc(gpu_, B * H * S * 4);
    Buf gq2 = alloc(gpu_, T * H * hd * 2), gk2 = alloc(gpu_, T * KV * hd * 2),
        gv2 = alloc(gpu_, T * KV * hd * 2);
    const char *names[] = {"fwd", "dkdv", "dq"};
    for (const V &vr : vs) {
      const GeneratedKernel &base = vr.kind == 0 ? lf->kernel : lb->kernel;
      GeneratedKernel g = base;
      // The default's call (attn_mma_dkdv or attn_mma_dkdv2) becomes the variant's.
      const std::string prefix = vr.wg ? "halo::attn_wg_" : "halo::attn_mma_";
      // Under sm_90a the entry points run the wgmma kernels: mma.sync variants do not apply.
      if (!vr.wg && g.source.find("halo::attn_wg_") != std::string::npos)
        continue;
      size_t at = g.source.find(prefix + names[vr.kind]);
      if (at == std::string::npos)
        continue;
      size_t close = g.source.find('>', at);
      std::ostringstream ta;
      ta << prefix << vr.fn << "<" << S << ", " << H << ", " << KV << ", " << hd
         << ", " << vr.extra;
      g.source.replace(at, close - at, ta.str());
      const LaunchSpec &ls = base.launches[vr.kind == 0 ? 0 : vr.kind];
      std::string lbk = "__launch_bounds__(", entry = ls.entry + "(";
      size_t e = g.source.find(entry);
      size_t lbp = g.source.rfind(lbk, e);
      size_t lbe = g.source.find(')', lbp);
      g.source.replace(lbp, lbe + 1 - lbp, lbk + std::to_string(32 * vr.warps) + ")");
      LaunchSpec l2 = ls;
      l2.block = {32 * vr.warps, 1, 1};
      l2.grid.y = unsigned((S + vr.rows - 1) / vr.rows); // the tile is blockIdx.y
      l2.sharedBytes = vr.smem;
      g.launches = {l2};
      std::string label = name + "_" + (vr.wg ? "wg_" : "") + vr.fn + "<" + vr.extra + ">";
      std::unique_ptr<Loaded> lv;
      try {
        lv = get(g);
      } catch (const std::exception &ex) {
        rep_.result(label, false, std::string("error: ") + ex.what());
        continue;
      }
      std::function<void()> run;
      if (vr.kind == 0)
        run = [&] { check(launch(gpu_, *lv, 0, Args().ptr(dq.p()).ptr(dk.p()).ptr(dv.p()).ptr(out2.p()).ptr(lse2.p()))); };
      else if (vr.kind == 1)
        run = [&] { dkdv(*lv, 0, gq2, gk2, gv2); };
      else
        run = [&] { check(launch(gpu_, *lv, 0, Args().ptr(dq.p()).ptr(dk.p()).ptr(dv.p()).ptr(ddo.p()).ptr(lse.p()).ptr(delta.p()).ptr(gq2.p()))); };
      run();
      check(gpu_.ctx->synchronize());
      bool ok1 = true, ok2 = true;
      std::string d1, d2;
      if (vr.kind == 0) {
        d1 = compareFloats(fromBf16(download<uint16_t>(out2, T * H * hd)), wout, {1e-2, 1e-2}, ok1);
        d2 = compareFloats(download<float>(lse2, B * H * S), wlse, {1e-4, 1e-5}, ok2);
      } else if (vr.kind == 1) {
        d1 = compareFloats(fromBf16(download<uint16_t>(gk2, k.size())), wk, {2e-2, 2e-2}, ok1);
        d2 = compareFloats(fromBf16(download<uint16_t>(gv2, v.size())), wv, {2e-2, 2e-2}, ok2);
      } else {
        d1 = compareFloats(fromBf16(download<uint16_t>(gq2, q.size())), wq, {2e-2, 2e-2}, ok1);
      }
      rep_.result(label, ok1 && ok2, d1 + "; " + d2);
      float ms = timeMs(gpu_, run, 10);
      double flops = 4.0 * B * H * S * S / 2 * hd * (vr.kind == 0 ? 1.0 : vr.kind == 1 ? 2.0 : 1.5);
      std::ostringstream t;
      t << label << ": " << ms << " ms (" << flops / (ms * 1e-3) / 1e12 << " TFLOP/s actual)";
      rep_.log << "[TIME] " << t.str() << std::endl;
      timings.push_back(t.str());
    }
    for (size_t i = 0; i < 3; ++i) {
      float ms = timeMs(gpu_, [&] {
        if (i == 0) check(launch(gpu_, *lb, 0, Args().ptr(out.p()).ptr(ddo.p()).ptr(delta.p())));
        if (i == 1) dkdv(*lb, 1, gq, gk, gv);
        if (i == 2) check(launch(gpu_, *lb, 2, Args().ptr(dq.p()).ptr(dk.p()).ptr(dv.p()).ptr(ddo.p()).ptr(lse.p()).ptr(delta.p()).ptr(gq.p())));
      }, 10);
      rep_.log << "[TIME] " << name << " default bwd launch " << i << ": " << ms << " ms" << std::endl;
    }
  }
}

} // namespace

GpuCheckResult runGpuChecks(const GpuCheckOptions &options, std::ostream &log) {
  GpuCheckResult result;
  auto drv = CudaDriver::load();
  if (!drv.ok()) {
    result.skipped = true;
    result.skipReason = "no CUDA driver: " + drv.status().message();
    return result;
  }
  auto count = deviceCount(**drv);
  if (!count.ok() || *count < 1) {
    result.skipped = true;
    result.skipReason = "no CUDA device";
    return result;
  }
  Gpu gpu;
  gpu.drv = *drv;
  auto ctx = CudaContext::create(**drv, 0);
  if (!ctx.ok()) {
    result.skipped = true;
    result.skipReason = ctx.status().message();
    return result;
  }
  gpu.ctx = std::make_unique<CudaContext>(std::move(ctx.value()));
  gpu.arch = gpu.ctx->info().kernelArch();
  log << "device: " << gpu.ctx->info().name << " (" << gpu.arch << ", "
      << gpu.ctx->info().smCount << " SMs), NVRTC " << nvrtcVersionString() << std::endl;
  Report report{log};
  Checker c(gpu, report, options);
  auto guard = [&](const std::string &what, const std::function<void()> &fn) {
    try {
      fn();
    } catch (const std::exception &e) {
      report.result(what, false, std::string("error: ") + e.what());
    }
  };
  const QuantFormat F8 = QuantFormat::FP8E4M3, I8 = QuantFormat::INT8;
  const bool T = options.timing;
  // --- 1. Hadamard + quantize (tiny and odd K first) ---
  for (size_t n : {64, 192}) {
    guard("hq tiny", [&] { c.hadamardQuant(512, n, F8, false, false, false, true, 2, false); });
    guard("hq tiny", [&] { c.hadamardQuant(512, n, I8, false, true, true, true, 2, false); });
    guard("hq tiny", [&] { c.hadamardQuant(512, n, F8, true, false, false, true, 2, false); });
    guard("hq tiny", [&] { c.hadamardQuant(512, n, I8, true, true, false, true, 2, false); });
  }
  for (size_t n : {1024, 2048, 4096}) { // RowWide, k even and odd
    guard("hq wide", [&] { c.hadamardQuant(128, n, F8, false, false, false, true, 3, false); });
    guard("hq wide", [&] { c.hadamardQuant(128, n, I8, true, false, true, true, 3, false); });
  }
  guard("hq tout fused", [&] { c.hadamardQuant(80, 4096, F8, false, true, false, true, 3, false); });
  guard("hq tout fused", [&] { c.hadamardQuant(48, 192, I8, true, true, false, true, 3, false); });
  guard("hq fast", [&] { c.hadamardQuant(512, 192, F8, false, false, false, true, 2, false, true); });
  guard("q plain", [&] { c.hadamardQuant(512, 64, F8, false, true, false, false, 2, false); });
  // Plain transposed codes from 64-row tiles (128- and 64-column tiles), one
  // or both layouts; shapes that do not tile keep the narrow direct stores.
  for (QuantFormat f : {F8, I8})
    for (bool both : {false, true}) {
      guard("q tiles", [&] { c.hadamardQuant(512, 192, f, false, true, false, false, 2, false, false, both); });
      guard("q tiles", [&] { c.hadamardQuant(192, 512, f, false, true, false, false, 2, false, false, both); });
    }
  guard("q tiles", [&] { c.hadamardQuant(80, 192, I8, false, true, false, false, 2, false); });
  // Rotated or per-row: quantize, then the tiled transpose (from the
  // [rows, cols] codes when both layouts are outputs).
  for (bool rowwise : {false, true}) {
    guard("hq tout both", [&] { c.hadamardQuant(512, 192, I8, rowwise, true, false, true, 2, false, false, true); });
    guard("hq tout both", [&] { c.hadamardQuant(192, 512, F8, rowwise, true, true, true, 2, false, false, true); });
  }
  for (size_t n : {576, 1536, 3072, 5632, 11008}) // K = 36, 12, 12, 44, 172
    guard("hq odd K", [&] { c.hadamardQuant(64, n, F8, false, false, n == 3072, true, 3, false); });
  // SwiGLU-on-load: rows of 192 (K = 12), 4096 (RowWide) and 14336 (K = 28);
  // both code layouts as halo-fuse's swiglu_hadamard_quantize writes them.
  guard("hq swiglu", [&] { c.swigluQuant(512, 192, F8, false, false, false); });
  guard("hq swiglu", [&] { c.swigluQuant(512, 192, F8, false, true, false); });
  guard("hq swiglu", [&] { c.swigluQuant(512, 192, I8, true, true, false); });
  guard("hq swiglu", [&] { c.swigluQuant(128, 4096, F8, false, true, false); });
  guard("hq swiglu", [&] { c.swigluQuant(64, 14336, I8, false, true, false); });
  guard("hql tiny", [&] { c.hadamardQuantLeft(512, 64, I8, false); });
  guard("h tiny", [&] { c.hadamardPlain(512, 192, HadamardSide::Right, true, ElemType::BF16, ElemType::BF16, false); });
  guard("h tiny", [&] { c.hadamardPlain(512, 64, HadamardSide::Right, false, ElemType::F32, ElemType::F32, false); });
  guard("h tiny", [&] { c.hadamardPlain(512, 64, HadamardSide::Left, true, ElemType::BF16, ElemType::F32, false); });
  guard("h tiny", [&] { c.hadamardPlain(192, 64, HadamardSide::Left, false, ElemType::BF16, ElemType::BF16, false); });
  // The sm_90 cluster form: clusters of 2, 4 and 8 (two passes elsewhere).
  guard("hql cluster", [&] { c.hadamardQuantLeft(2048, 64, I8, false, true); });
  guard("hql cluster", [&] { c.hadamardQuantLeft(4096, 48, F8, false, true); });
  guard("hql cluster", [&] { c.hadamardQuantLeft(8192, 32, F8, false, true); });
  // HALO-2's Q(H_T E) and Q(E)^T in one kernel pair (sm_90; skipped elsewhere).
  guard("hql plain", [&] { c.hadamardQuantLeftPlain(2048, 64, I8, false); });
  guard("hql plain", [&] { c.hadamardQuantLeftPlain(4096, 48, F8, false); });
  guard("hql plain", [&] { c.hadamardQuantLeftPlain(8192, 32, F8, false); });
  guard("h cluster", [&] { c.hadamardPlain(8192, 32, HadamardSide::Left, false, ElemType::BF16, ElemType::BF16, false, true); });
  guard("h cluster", [&] { c.hadamardPlain(4096, 16, HadamardSide::Left, true, ElemType::BF16, ElemType::F32, false, true); });
  guard("h cluster", [&] { c.hadamardPlain(2048, 48, HadamardSide::Left, false, ElemType::BF16, ElemType::BF16, false, true); });
  guard("h cluster", [&] { c.hadamardPlain(8192, 32, HadamardSide::Left, false, ElemType::F32, ElemType::F32, false, true); });
  // --- 3-5. the rest, tiny shapes ---
  guard("rmsnorm", [&] { c.rmsNorm(512, 64, false); });
  // Rows of 64, 3072 (K = 12, a partial second chunk per thread), 576
  // (K = 36) and 11008 (K = 172: the K mix through shared memory).
  for (auto [rows, dim] : {std::pair<size_t, size_t>{512, 64}, {64, 3072}, {40, 576}, {16, 11008}})
    guard("rmsnorm rot", [&] { c.rmsNormRotated(rows, dim, false); });
  guard("rope", [&] { c.rope(512, 64, 4, 2, 16, false); });
  guard("swiglu", [&] { c.swiglu(512 * 192); });
  // Rows of 192 (K = 12) and 64, 4096 (RowWide), 576 (K = 36), 14336 (K = 28)
  // and 11008 (K = 172: the K mix through shared memory).
  for (auto [rows, cols] : {std::pair<size_t, size_t>{512, 192}, {512, 64}, {64, 4096}, {40, 576},
                            {16, 14336}, {16, 11008}})
    guard("hadamard swiglu grad", [&] { c.hadamardSwigluGrad(rows, cols, false); });
  guard("embedding", [&] { c.embedding(512, 256, 64, false); });
  guard("embedding", [&] { c.embedding(512, 5000, 72, false); }); // vocab segments
  guard("xent", [&] { c.crossEntropy(512, 256); });
  guard("norms", [&] { c.norms(64 * 192 + 4); });
  // Row lengths 192 (K = 12), 64, 1024 (RowWide), 576 (K = 36) and 11008
  // (K = 172: the K mix through shared memory).
  guard("adamw rows", [&] { c.adamwRows(64, 192, false, false, false); });
  guard("adamw rows", [&] { c.adamwRows(192, 64, true, true, false); });
  guard("adamw rows", [&] { c.adamwRows(96, 1024, true, false, false); });
  guard("adamw rows", [&] { c.adamwRows(40, 576, false, true, false); });
  guard("adamw rows", [&] { c.adamwRows(16, 11008, true, true, false); });
  guard("adamw rows", [&] { c.adamwRows(96, 1024, true, false, false, true); });
  guard("attention", [&] { c.attention(8, 64, 4, 2, 16, false); });
  if (options.large) {
    guard("hq 8b", [&] { c.hadamardQuant(8192, 4096, F8, false, false, false, true, 8, T); });
    guard("hq 8b", [&] { c.hadamardQuant(8192, 14336, F8, false, false, false, true, 8, T); });
    guard("hq 8b", [&] { c.hadamardQuant(8192, 14336, F8, false, false, false, true, 8, T, true); });
    guard("hq 8b", [&] { c.hadamardQuant(8192, 14336, F8, true, false, false, true, 8, T, true); });
    guard("hq 8b", [&] { c.hadamardQuant(8192, 4096, I8, false, true, false, true, 8, T); });
    guard("hq 8b", [&] { c.hadamardQuant(8192, 14336, I8, false, true, true, true, 8, T); });
    guard("hq 8b", [&] { c.hadamardQuant(8192, 4096, F8, true, false, false, true, 8, T); });
    guard("hq 8b", [&] { c.hadamardQuant(8192, 14336, F8, true, false, false, true, 8, T); });
    guard("q 8b", [&] { c.hadamardQuant(8192, 4096, F8, false, false, false, false, 8, T); });
    for (size_t n : {4096, 14336})
      for (bool both : {false, true})
        guard("q 8b", [&] { c.hadamardQuant(8192, n, both ? I8 : F8, false, true, false, false, 8, T, false, both); });
    for (size_t n : {4096, 14336})
      guard("hq 8b", [&] { c.hadamardQuant(8192, n, F8, false, true, false, true, 8, T, false, true); });
    guard("hql 8b", [&] { c.hadamardQuantLeft(8192, 4096, I8, T); });
    for (size_t n : {1024, 4096, 14336})
      guard("hql plain 8b", [&] { c.hadamardQuantLeftPlain(8192, n, F8, T); });
    for (size_t n : {4096, 14336})
      for (bool cl : {false, true}) {
        guard("hql 8b", [&] { c.hadamardQuantLeft(8192, n, F8, T, cl); });
        guard("h 8b", [&] { c.hadamardPlain(8192, n, HadamardSide::Left, false, ElemType::BF16, ElemType::BF16, T, cl); });
      }
    guard("h 8b", [&] { c.hadamardPlain(8192, 4096, HadamardSide::Right, true, ElemType::BF16, ElemType::BF16, T); });
    guard("h 8b", [&] { c.hadamardPlain(8192, 14336, HadamardSide::Right, true, ElemType::BF16, ElemType::BF16, T); });
    guard("h 8b", [&] { c.hadamardPlain(8192, 4096, HadamardSide::Left, true, ElemType::BF16, ElemType::BF16, T); });
    guard("hq swiglu 8b", [&] { c.swigluQuant(8192, 14336, F8, false, true, T); });
    guard("hadamard swiglu grad 8b", [&] { c.hadamardSwigluGrad(8192, 14336, T); });
    guard("hadamard swiglu grad 8b", [&] { c.hadamardSwigluGrad(8192, 4096, T); });
    guard("adamw rows 8b", [&] { c.adamwRows(4096, 14336, true, false, T); });
    guard("adamw rows 8b", [&] { c.adamwRows(14336, 4096, true, false, T); });
    guard("adamw rows 8b", [&] { c.adamwRows(4096, 4096, false, false, T); });
    guard("adamw rows 8b", [&] { c.adamwRows(4096, 14336, true, false, T, true); });
    // Large enough for the grid-stride loop's paired vectors, with a tail.
    guard("adamw 8b", [&] { c.adamw(size_t{4096} * 14336 + 3, true, true, T); });
    guard("adamw 8b", [&] { c.adamw(size_t{4096} * 14336 + 3, true, false, T); });
    guard("rmsnorm 8b", [&] { c.rmsNorm(8192, 4096, T); });
    guard("rmsnorm rot 8b", [&] { c.rmsNormRotated(8192, 4096, T); });
    guard("rope 8b", [&] { c.rope(8192, 2048, 32, 8, 128, T); });
    guard("embedding 8b", [&] { c.embedding(8192, 256, 4096, T); });
    guard("embedding 8b", [&] { c.embedding(8192, 128256, 4096, T); });
    guard("attention", [&] { c.attention(1, 512, 8, 2, 128, false); });
    // S not a multiple of the tiles: padded rows and keys.
    guard("attention", [&] { c.attention(2, 200, 4, 2, 64, false); });
    guard("attention", [&] { c.attention(2, 200, 4, 2, 64, false, 8); });
    // Head dim 96: on sm_90 the mma.sync forward and dQ with attn_mma_dkdv2
    // (the wgmma kernels take 64 and 128 only).
    guard("attention", [&] { c.attention(2, 200, 4, 2, 96, false); });
    // Head dim 160: every kernel on CUDA cores, 4 threads of 40 dimensions per row.
    guard("attention", [&] { c.attention(2, 200, 4, 2, 160, false); });
    guard("attention 8b", [&] { c.attention(4, 2048, 32, 8, 128, T); });
    guard("attention 8b", [&] { c.attention(4, 2048, 32, 8, 128, T, 8); });
    // llama-125m's shape (head dim 64): bench's third configuration.
    guard("attention 125m", [&] { c.attention(8, 1024, 12, 12, 64, T); });
  }
  result.checks = report.checks;
  result.failures = report.failures;
  log << report.checks - report.failures << "/" << report.checks << " checks passed" << std::endl;
  if (!options.jsonPath.empty()) {
    std::ofstream js(options.jsonPath);
    js << "{\"device\": \"" << gpu.ctx->info().name << "\", \"checks\": [\n";
    for (size_t i = 0; i < report.json.size(); ++i)
      js << "  " << report.json[i] << (i + 1 < report.json.size() ? ",\n" : "\n");
    js << "], \"timings\": [\n";
    for (size_t i = 0; i < c.timings.size(); ++i)
      js << "  \"" << c.timings[i] << "\"" << (i + 1 < c.timings.size() ? ",\n" : "\n");
    js << "]}\n";
  }
  return result;
}

} // namespace halo::cuda::kernels::testing

#ifndef HALO_GPU_CHECK_NO_MAIN
int main(int argc, char **argv) {
  using namespace halo::cuda::kernels::testing;
  GpuCheckOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--small")
      options.large = false;
    else if (a == "--no-timing")
      options.timing = false;
    else if (a.rfind("--filter=", 0) == 0)
      options.filter = a.substr(9);
    else if (a.rfind("--json=", 0) == 0)
      options.jsonPath = a.substr(7);
    else if (a.rfind("--dump-sources=", 0) == 0) {
      // Writes every generated source of KernelCases.h (no GPU needed).
      std::string dir = a.substr(15);
      for (const ModelShape &m : modelShapes())
        for (const KernelCase &c : kernelCases(m)) {
          auto k = c.make();
          if (!k.ok()) {
            std::cerr << c.label << ": " << k.status().message() << "\n";
            return 1;
          }
          std::ofstream(dir + "/" + m.name + "_" + c.label + ".cu") << k->source;
        }
      return 0;
    }
    else {
      std::cerr << "usage: halo-kernels-gpu-check [--small] [--no-timing] "
                   "[--filter=SUBSTR] [--json=PATH] [--dump-sources=DIR]\n";
      return 2;
    }
  }
  GpuCheckResult r = runGpuChecks(options, std::cout);
  if (r.skipped) {
    std::cout << "skipped: " << r.skipReason << std::endl;
    return 0;
  }
  return r.failures ? 1 : 0;
}
#endif
