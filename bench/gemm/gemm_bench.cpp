//===- gemm_bench.cpp - TFLOP/s of halo's GEMMs (GemmEngine) --------------===//
//
// Times halo's GEMMs at the Llama-3-8B linear shapes (M = 8192 tokens;
// N x K = 4096x4096, 14336x4096, 4096x14336, 6144x4096), all in the forward
// layout Y[M,N] = X[M,K] W[N,K]^T:
//   fp8       FP8 E4M3, per-tensor device scales, BF16 out
//   fp8-row   FP8 E4M3, per-row (X) / per-column (W) scales, BF16 out
//   bf16      BF16, BF16 out
//   int8-i32  INT8 -> INT32 accumulators (what torch._int_mm computes)
//   int8      INT8, per-tensor scales, BF16 out (INT32 GEMM + epilogue)
// A suffix "@ab" (a, b in {n, t}) sets transA / transB (default "@nt"), e.g.
// "int8-i32@nn" is A [M,K] times B [K,N].
// Each is timed with CUDA events around every call after a warm-up; the
// median is reported. Usage:
//   halo-bench-gemm [--iters N] [--warmup N] [--m M] [--shapes NxK,...]
//                   [--kinds fp8,bf16,...] [--json FILE]
// --json writes one JSON object per line ({"kind", "M", "N", "K", "ms",
// "tflops", "plan"}); scripts/gpu/gemm/bench.sh merges it with the PyTorch
// baseline (bench/gemm/torch_gemm.py) into a ratio table.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/blas/GemmEngine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace halo;
using namespace halo::cuda;

namespace {

struct Config {
  int iters = 50;
  int warmup = 10;
  int64_t M = 8192;
  std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4096, 4096}, {14336, 4096}, {4096, 14336}, {6144, 4096}};
  std::vector<std::string> kinds = {"fp8", "fp8-row", "bf16", "int8-i32",
                                    "int8"};
  std::string json;
};

std::vector<std::string> split(const std::string &text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator))
    if (!part.empty())
      parts.push_back(part);
  return parts;
}

[[noreturn]] void usage(const char *why) {
  std::fprintf(stderr,
               "halo-bench-gemm: %s\nusage: halo-bench-gemm [--iters N] "
               "[--warmup N] [--m M] [--shapes NxK,...] [--kinds "
               "fp8,fp8-row,bf16,int8-i32,int8] [--json FILE]\n",
               why);
  std::exit(2);
}

std::optional<GemmDesc> descFor(const std::string &name, int64_t M, int64_t N,
                                int64_t K);

Config parse(int argc, char **argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc)
      usage(("missing value for " + flag).c_str());
    std::string value = argv[++i];
    if (flag == "--iters")
      config.iters = std::max(1, std::atoi(value.c_str()));
    else if (flag == "--warmup")
      config.warmup = std::max(0, std::atoi(value.c_str()));
    else if (flag == "--m")
      config.M = std::atoll(value.c_str());
    else if (flag == "--json")
      config.json = value;
    else if (flag == "--kinds")
      config.kinds = split(value, ',');
    else if (flag == "--shapes") {
      config.shapes.clear();
      for (const std::string &shape : split(value, ',')) {
        std::vector<std::string> nk = split(shape, 'x');
        if (nk.size() != 2)
          usage(("bad shape " + shape + " (want NxK)").c_str());
        config.shapes.push_back(
            {std::atoll(nk[0].c_str()), std::atoll(nk[1].c_str())});
      }
    } else {
      usage(("unknown flag " + flag).c_str());
    }
  }
  for (const std::string &kind : config.kinds)
    if (!descFor(kind, 16, 16, 16))
      usage(("unknown kind " + kind).c_str());
  return config;
}

std::optional<GemmDesc> descFor(const std::string &kind, int64_t M, int64_t N,
                                int64_t K, std::nullopt_t);

std::optional<GemmDesc> descFor(const std::string &name, int64_t M, int64_t N,
                                int64_t K) {
  // "kind@ab" picks the layout: a, b in {n, t} are transA and transB in
  // halo's row-major terms (default "@nt": A [M,K], B [N,K]).
  std::string kind = name.substr(0, name.find('@'));
  std::optional<GemmDesc> desc = descFor(kind, M, N, K, std::nullopt);
  if (!desc || kind.size() == name.size())
    return desc;
  std::string layout = name.substr(kind.size() + 1);
  if (layout.size() != 2 || layout.find_first_not_of("nt") != std::string::npos)
    return std::nullopt;
  desc->transA = layout[0] == 't';
  desc->transB = layout[1] == 't';
  return desc;
}

std::optional<GemmDesc> descFor(const std::string &kind, int64_t M, int64_t N,
                                int64_t K, std::nullopt_t) {
  if (kind == "fp8")
    return GemmDesc::quantized(GemmType::FP8E4M3, M, N, K);
  if (kind == "fp8-row") {
    GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, M, N, K);
    d.scaleA = d.scaleB = ScaleMode::PerRow;
    return d;
  }
  if (kind == "bf16")
    return GemmDesc::bf16(M, N, K, false, true);
  if (kind == "int8")
    return GemmDesc::quantized(GemmType::INT8, M, N, K);
  if (kind == "int8-i32") {
    GemmDesc d = GemmDesc::quantized(GemmType::INT8, M, N, K, false, true,
                                     GemmType::INT32);
    d.scaleA = d.scaleB = ScaleMode::None;
    return d;
  }
  return std::nullopt;
}

/// Valid, finite operand bytes (no FP8 NaN codes, no INT8 -128).
std::vector<uint8_t> randomBytes(GemmType type, int64_t count, uint64_t seed) {
  std::vector<uint8_t> bytes(size_t(count) * size_t(gemmTypeSize(type)));
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  if (type == GemmType::BF16) {
    for (size_t i = 0; i < bytes.size(); i += 2) {
      // |x| in [2^-2, 2): exponent 125..127, random mantissa and sign.
      uint64_t r = next();
      uint16_t bits = uint16_t(((r >> 20) & 0x8000) |
                               ((125 + r % 3) << 7) | ((r >> 8) & 0x7F));
      std::memcpy(&bytes[i], &bits, 2);
    }
  } else {
    for (size_t i = 0; i < bytes.size(); ++i) {
      uint8_t b = uint8_t(next() >> 24);
      if (type == GemmType::FP8E4M3 && (b & 0x7F) == 0x7F)
        b ^= 1; // NaN -> 448
      if (type == GemmType::INT8 && b == 0x80)
        b = 0x81; // -128 -> -127
      bytes[i] = b;
    }
  }
  return bytes;
}

struct Result {
  double ms = 0;
  std::string plan;
};

StatusOr<Result> bench(const CudaDriver &driver, GemmEngine &engine,
                       const GemmDesc &d, const Config &config,
                       CUstream stream) {
  auto upload = [&](const std::vector<uint8_t> &bytes)
      -> StatusOr<DeviceBuffer> {
    StatusOr<DeviceBuffer> buffer =
        DeviceBuffer::allocate(driver, std::max<size_t>(bytes.size(), 256));
    if (buffer.ok() && !bytes.empty())
      HALO_RETURN_IF_ERROR(buffer->copyFromHost(bytes.data(), bytes.size()));
    return buffer;
  };
  StatusOr<DeviceBuffer> A = upload(randomBytes(d.aType, d.M * d.K, 1));
  if (!A.ok())
    return A.status();
  StatusOr<DeviceBuffer> B = upload(randomBytes(d.bType, d.N * d.K, 2));
  if (!B.ok())
    return B.status();
  StatusOr<DeviceBuffer> C =
      upload(std::vector<uint8_t>(size_t(bytesC(d)), 0));
  if (!C.ok())
    return C.status();
  auto scales = [](int64_t count, float value) {
    std::vector<uint8_t> bytes(size_t(count) * 4);
    for (int64_t i = 0; i < count; ++i)
      std::memcpy(&bytes[size_t(i) * 4], &value, 4);
    return bytes;
  };
  StatusOr<DeviceBuffer> SA = upload(scales(scaleElementsA(d), 0.01f));
  if (!SA.ok())
    return SA.status();
  StatusOr<DeviceBuffer> SB = upload(scales(scaleElementsB(d), 0.02f));
  if (!SB.ok())
    return SB.status();

  GemmOperands ops;
  ops.a = A->pointer();
  ops.b = B->pointer();
  ops.c = C->pointer();
  ops.scaleA = d.scaleA == ScaleMode::None ? 0 : SA->pointer();
  ops.scaleB = d.scaleB == ScaleMode::None ? 0 : SB->pointer();
  StatusOr<GemmPlanInfo> info = engine.planInfo(d, &ops);
  if (!info.ok())
    return info.status();

  for (int i = 0; i < config.warmup; ++i)
    HALO_RETURN_IF_ERROR(engine.run(d, ops, stream));
  std::vector<CUevent> events(size_t(config.iters) + 1);
  for (CUevent &event : events)
    HALO_CU_RETURN_IF_ERROR(driver, cuEventCreate(&event, CU_EVENT_DEFAULT));
  HALO_CU_RETURN_IF_ERROR(driver, cuEventRecord(events[0], stream));
  for (int i = 0; i < config.iters; ++i) {
    HALO_RETURN_IF_ERROR(engine.run(d, ops, stream));
    HALO_CU_RETURN_IF_ERROR(driver,
                            cuEventRecord(events[size_t(i) + 1], stream));
  }
  HALO_CU_RETURN_IF_ERROR(driver, cuEventSynchronize(events.back()));
  std::vector<float> times;
  for (int i = 0; i < config.iters; ++i) {
    float ms = 0;
    HALO_CU_RETURN_IF_ERROR(
        driver, cuEventElapsedTime(&ms, events[size_t(i)],
                                   events[size_t(i) + 1]));
    times.push_back(ms);
  }
  for (CUevent event : events)
    driver.cuEventDestroy(event);
  std::sort(times.begin(), times.end());
  Result result;
  result.ms = times[times.size() / 2];
  result.plan = info->text;
  return result;
}

Status runAll(const Config &config) {
  StatusOr<const CudaDriver *> driver = CudaDriver::load();
  if (!driver.ok())
    return driver.status();
  StatusOr<CudaContext> context = CudaContext::create(**driver, 0);
  if (!context.ok())
    return context.status();
  StatusOr<std::unique_ptr<GemmEngine>> engine =
      GemmEngine::create(*context);
  if (!engine.ok())
    return engine.status();
  CUstream stream = nullptr;
  HALO_CU_RETURN_IF_ERROR(**driver,
                          cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  std::FILE *json = nullptr;
  if (!config.json.empty() && !(json = std::fopen(config.json.c_str(), "w")))
    return Status::error("cannot write " + config.json);

  std::printf("device: %s (sm_%d%d, %d SMs), cuBLASLt %zu\n",
              context->info().name.c_str(), context->info().ccMajor,
              context->info().ccMinor, context->info().smCount,
              GemmEngine::cublasLtVersion());
  std::printf("%-9s %6s %6s %6s %9s %9s  %s\n", "kind", "M", "N", "K", "ms",
              "TFLOP/s", "plan");
  for (auto [N, K] : config.shapes)
    for (const std::string &kind : config.kinds) {
      std::optional<GemmDesc> d = descFor(kind, config.M, N, K);
      if (!d)
        return Status::error("unknown kind " + kind);
      StatusOr<Result> result = bench(**driver, **engine, *d, config, stream);
      if (!result.ok())
        return result.status();
      double tflops = gemmFlops(*d) / (result->ms * 1e-3) / 1e12;
      std::printf("%-9s %6lld %6lld %6lld %9.4f %9.1f  %s\n", kind.c_str(),
                  (long long)d->M, (long long)N, (long long)K, result->ms,
                  tflops, result->plan.c_str());
      std::fflush(stdout);
      if (json)
        std::fprintf(json,
                     "{\"impl\": \"halo\", \"kind\": \"%s\", \"M\": %lld, "
                     "\"N\": %lld, \"K\": %lld, \"ms\": %.6f, \"tflops\": "
                     "%.2f, \"plan\": \"%s\"}\n",
                     kind.c_str(), (long long)d->M, (long long)N,
                     (long long)K, result->ms, tflops, result->plan.c_str());
    }
  if (json)
    std::fclose(json);
  (**driver).cuStreamDestroy(stream);
  return Status::success();
}

} // namespace

int main(int argc, char **argv) {
  Config config = parse(argc, argv);
  Status status = runAll(config);
  if (!status.ok()) {
    std::fprintf(stderr, "halo-bench-gemm: error: %s\n",
                 status.message().c_str());
    return 1;
  }
  return 0;
}
