//===- LtCommon.h - cuBLASLt status checks and descriptor owners -*- C++ -*-===//
//
// Shared by halo's two cuBLASLt users: GemmEngine (the program's GEMMs) and
// TensorCoreAttention (attention's strided-batched GEMMs).
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_BLAS_LTCOMMON_H
#define HALO_RUNTIME_CUDA_BLAS_LTCOMMON_H

#include "halo/runtime/Status.h"

#include <cublasLt.h>

#include <string>

namespace halo::cuda {

/// "CUBLAS_STATUS_NOT_SUPPORTED (15): the functionality requested is not supported".
std::string ltStatusText(cublasStatus_t status);

/// An error naming the call, the status, file:line and, for well-known
/// causes, a hint; success for CUBLAS_STATUS_SUCCESS.
Status ltCheck(cublasStatus_t status, const char *call, const char *file, int line);

#define HALO_LT_RETURN_IF_ERROR(expr)                                          \
  HALO_RETURN_IF_ERROR(::halo::cuda::ltCheck((expr), #expr, __FILE__, __LINE__))

/// Owner of one cublasLtMatmul problem: descriptor, layouts and the
/// algorithm chosen for them.
struct LtMatmul {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;

  LtMatmul() = default;
  LtMatmul(const LtMatmul &) = delete;
  LtMatmul &operator=(const LtMatmul &) = delete;
  ~LtMatmul() {
    for (cublasLtMatrixLayout_t l : {a, b, c})
      if (l)
        cublasLtMatrixLayoutDestroy(l);
    if (op)
      cublasLtMatmulDescDestroy(op);
  }
};

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_BLAS_LTCOMMON_H
