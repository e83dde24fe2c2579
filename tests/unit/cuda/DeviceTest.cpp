//===- DeviceTest.cpp - Driver entry points on a real GPU -----------------===//
//
// Skipped without a driver. On a GPU these call every entry point in
// DriverSymbols.def at its pinned ABI (a wrong pin crashes or fails here,
// not in halo-run), check FP8/BF16 conversions on the device, and check that
// driver errors name the call, the CUDA error, the source line and a hint.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/Nvrtc.h"

#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace halo::cuda;
using halo::cuda::testing::ScopedEnv;
using halo::cuda::testing::TempDir;

namespace {

constexpr const char *kKernels = R"(
#include <cuda_bf16.h>
#include <cuda_fp8.h>

extern "C" __global__ void halo_convert(const float *in, unsigned char *fp8,
                                        unsigned short *bf16, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    fp8[i] = __nv_fp8_e4m3(in[i]).__x;
    bf16[i] = __bfloat16_as_ushort(__float2bfloat16_rn(in[i]));
  }
}

extern "C" __global__ void halo_add_one(int *p, int n) {
  extern __shared__ int scratch[];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  scratch[threadIdx.x] = i < n ? p[i] : 0;
  __syncthreads();
  if (i < n)
    p[i] = scratch[threadIdx.x] + 1;
}
)";

class DeviceTest : public ::testing::Test {
protected:
  void SetUp() override {
    halo::StatusOr<const CudaDriver *> loaded = CudaDriver::load();
    if (!loaded.ok())
      GTEST_SKIP() << "no CUDA driver: " << loaded.status().message();
    driver = *loaded;
    halo::StatusOr<CudaContext> created = CudaContext::create(*driver, 0);
    ASSERT_TRUE(created.ok()) << created.status().message();
    context.emplace(std::move(*created));

    KernelSource source;
    source.name = "halo_device_test";
    source.source = kKernels;
    CompileOptions options;
    options.arch = context->info().arch();
    halo::StatusOr<CompiledKernel> compiled = compileKernel(source, options);
    ASSERT_TRUE(compiled.ok()) << compiled.status().message();
    halo::StatusOr<CudaModule> loadedModule =
        CudaModule::load(*driver, compiled->image);
    ASSERT_TRUE(loadedModule.ok()) << loadedModule.status().message();
    module.emplace(std::move(*loadedModule));
  }

  CUfunction function(const char *name) {
    halo::StatusOr<CUfunction> f = module->function(name);
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? *f : nullptr;
  }

  TempDir cacheDir;
  ScopedEnv cacheEnv{"HALO_CACHE_DIR", cacheDir.path()};
  const CudaDriver *driver = nullptr;
  std::optional<CudaContext> context;
  std::optional<CudaModule> module;
};

TEST_F(DeviceTest, ContextDescribesTheDevice) {
  const DeviceInfo &info = context->info();
  EXPECT_FALSE(info.name.empty());
  EXPECT_GE(info.ccMajor, 7);
  EXPECT_GT(info.smCount, 0);
  EXPECT_GT(info.totalMemory, size_t(1) << 30);
  EXPECT_GT(info.maxSharedMemoryPerBlockOptin, 48 * 1024);
  halo::StatusOr<MemoryInfo> memory = context->memoryInfo();
  ASSERT_TRUE(memory.ok()) << memory.status().message();
  EXPECT_GT(memory->freeBytes, 0u);
  EXPECT_LE(memory->freeBytes, memory->totalBytes);
  EXPECT_TRUE(context->synchronize().ok());
}

TEST_F(DeviceTest, Fp8AndBf16ConversionsOnDevice) {
  // Exactly representable values, one that rounds, and saturation.
  std::vector<float> in = {1.0f,    -2.0f, 0.5f, 448.0f,
                           1000.0f, -1e9f, 0.0f, 1.0625f};
  std::vector<unsigned char> expectedFp8 = {0x38, 0xc0, 0x30, 0x7e,
                                            0x7e, 0xfe, 0x00, 0x38};
  std::vector<unsigned short> expectedBf16 = {0x3f80, 0xc000, 0x3f00, 0x43e0,
                                              0x447a, 0xce6e, 0x0000, 0x3f88};
  int n = int(in.size());
  auto input = DeviceBuffer::allocate(*driver, n * sizeof(float));
  auto fp8 = DeviceBuffer::allocate(*driver, n);
  auto bf16 = DeviceBuffer::allocate(*driver, n * sizeof(unsigned short));
  ASSERT_TRUE(input.ok() && fp8.ok() && bf16.ok());
  ASSERT_TRUE(input->copyFromHost(in.data(), input->size()).ok());
  CUdeviceptr inPtr = input->pointer(), fp8Ptr = fp8->pointer(),
              bf16Ptr = bf16->pointer();
  void *params[] = {&inPtr, &fp8Ptr, &bf16Ptr, &n};
  ASSERT_EQ(driver->cuLaunchKernel(function("halo_convert"), 1, 1, 1, 32, 1, 1,
                                   0, nullptr, params, nullptr),
            CUDA_SUCCESS);
  std::vector<unsigned char> gotFp8(n);
  std::vector<unsigned short> gotBf16(n);
  ASSERT_TRUE(fp8->copyToHost(gotFp8.data(), fp8->size()).ok());
  ASSERT_TRUE(bf16->copyToHost(gotBf16.data(), bf16->size()).ok());
  EXPECT_EQ(gotFp8, expectedFp8);
  EXPECT_EQ(gotBf16, expectedBf16);
}

// Streams, async copies, memset, events, dynamic shared memory and a graph
// recorded by stream capture: the entry points halo-run's executor uses.
TEST_F(DeviceTest, EveryEntryPointWorks) {
  const CudaDriver &d = *driver;
  constexpr int n = 4096, block = 256;
  CUfunction addOne = function("halo_add_one");
  ASSERT_NE(addOne, nullptr);
  ASSERT_EQ(
      d.cuFuncSetAttribute(
          addOne, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 * 1024),
      CUDA_SUCCESS);

  CUstream stream;
  ASSERT_EQ(d.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  CUevent start, stop;
  ASSERT_EQ(d.cuEventCreate(&start, CU_EVENT_DEFAULT), CUDA_SUCCESS);
  ASSERT_EQ(d.cuEventCreate(&stop, CU_EVENT_DEFAULT), CUDA_SUCCESS);
  auto a = DeviceBuffer::allocate(d, n * sizeof(int));
  auto b = DeviceBuffer::allocate(d, n * sizeof(int));
  ASSERT_TRUE(a.ok() && b.ok());

  std::vector<int> host(n);
  for (int i = 0; i < n; ++i)
    host[i] = i;
  ASSERT_EQ(d.cuMemsetD8Async(b->pointer(), 0, b->size(), stream),
            CUDA_SUCCESS);
  ASSERT_EQ(d.cuMemcpyHtoDAsync(a->pointer(), host.data(), a->size(), stream),
            CUDA_SUCCESS);
  ASSERT_EQ(d.cuEventRecord(start, stream), CUDA_SUCCESS);

  // Capture: add one to `a` twice, then copy it to `b`.
  CUdeviceptr aPtr = a->pointer();
  int count = n;
  void *params[] = {&aPtr, &count};
  ASSERT_EQ(d.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
            CUDA_SUCCESS);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(d.cuLaunchKernel(addOne, n / block, 1, 1, block, 1, 1, 60 * 1024,
                               stream, params, nullptr),
              CUDA_SUCCESS);
  ASSERT_EQ(d.cuMemcpyDtoDAsync(b->pointer(), a->pointer(), a->size(), stream),
            CUDA_SUCCESS);
  CUgraph graph;
  ASSERT_EQ(d.cuStreamEndCapture(stream, &graph), CUDA_SUCCESS);
  CUgraphExec exec;
  ASSERT_EQ(d.cuGraphInstantiateWithFlags(&exec, graph, 0), CUDA_SUCCESS);
  ASSERT_EQ(d.cuGraphLaunch(exec, stream), CUDA_SUCCESS);
  ASSERT_EQ(d.cuGraphLaunch(exec, stream), CUDA_SUCCESS);
  ASSERT_EQ(d.cuEventRecord(stop, stream), CUDA_SUCCESS);
  std::vector<int> result(n, -1);
  ASSERT_EQ(d.cuMemcpyDtoHAsync(result.data(), b->pointer(), b->size(), stream),
            CUDA_SUCCESS);
  ASSERT_EQ(d.cuStreamSynchronize(stream), CUDA_SUCCESS);
  ASSERT_EQ(d.cuEventSynchronize(stop), CUDA_SUCCESS);
  float ms = -1;
  ASSERT_EQ(d.cuEventElapsedTime(&ms, start, stop), CUDA_SUCCESS);
  EXPECT_GE(ms, 0.0f);
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(result[i], i + 4) << "element " << i;

  // The synchronous variants.
  ASSERT_EQ(d.cuMemsetD8(a->pointer(), 0, a->size()), CUDA_SUCCESS);
  ASSERT_EQ(d.cuMemcpyDtoD(b->pointer(), a->pointer(), a->size()),
            CUDA_SUCCESS);
  ASSERT_EQ(d.cuMemcpyHtoD(a->pointer(), host.data(), a->size()), CUDA_SUCCESS);
  ASSERT_EQ(d.cuMemcpyDtoH(result.data(), b->pointer(), b->size()),
            CUDA_SUCCESS);
  EXPECT_EQ(result, std::vector<int>(n, 0));
  ASSERT_EQ(d.cuCtxSynchronize(), CUDA_SUCCESS);

  EXPECT_EQ(d.cuGraphExecDestroy(exec), CUDA_SUCCESS);
  EXPECT_EQ(d.cuGraphDestroy(graph), CUDA_SUCCESS);
  EXPECT_EQ(d.cuEventDestroy(start), CUDA_SUCCESS);
  EXPECT_EQ(d.cuEventDestroy(stop), CUDA_SUCCESS);
  EXPECT_EQ(d.cuStreamDestroy(stream), CUDA_SUCCESS);
}

halo::Status allocateTooMuch(const CudaDriver &d) {
  CUdeviceptr pointer;
  HALO_CU_RETURN_IF_ERROR(d, cuMemAlloc(&pointer, size_t(1) << 50));
  return halo::Status::success();
}

TEST_F(DeviceTest, ErrorsNameCallErrorLineAndHint) {
  halo::Status status = allocateTooMuch(*driver);
  ASSERT_FALSE(status.ok());
  const std::string &message = status.message();
  EXPECT_NE(message.find("cuMemAlloc(&pointer, size_t(1) << 50) failed: "
                         "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("DeviceTest.cpp:"), std::string::npos) << message;
  EXPECT_NE(message.find("hint: the GPU is out of memory"), std::string::npos)
      << message;

  halo::StatusOr<CUfunction> missing = module->function("halo_missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("CUDA_ERROR_NOT_FOUND"),
            std::string::npos)
      << missing.status().message();

  halo::StatusOr<DeviceInfo> bad = queryDevice(*driver, 1000);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("CUDA device 1000 does not exist"),
            std::string::npos);
}

} // namespace
