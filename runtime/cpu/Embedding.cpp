//===- Embedding.cpp - Token embedding lookup and its scatter VJP ---------===//
//
// Ids come from data files, so they are validated before anything is written:
// a bad id yields a Status naming the position and value, never a stray read
// or write. The backward zeroes dTable and scatter-adds in token order, which
// keeps repeated ids deterministic.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"

#include <algorithm>
#include <string>

namespace halo::cpu {

Status validateIndices(const int32_t *ids, int64_t n, int64_t limit,
                       bool allowIgnored, const char *what) {
  for (int64_t i = 0; i < n; ++i) {
    int32_t id = ids[i];
    if (id < limit && (id >= 0 || allowIgnored))
      continue;
    return Status::error(std::string(what) + ": index " + std::to_string(id) +
                         " at position " + std::to_string(i) + " is outside [" +
                         (allowIgnored ? "-inf" : "0") + ", " +
                         std::to_string(limit) + ")");
  }
  return Status::success();
}

template <typename F>
Status embedding(const int32_t *ids, const F *table, F *out, int64_t T,
                 int64_t V, int64_t D) {
  HALO_RETURN_IF_ERROR(validateIndices(ids, T, V, false, "embedding"));
  for (int64_t t = 0; t < T; ++t)
    std::copy(table + ids[t] * D, table + (ids[t] + 1) * D, out + t * D);
  return Status::success();
}

template <typename F>
Status embeddingBackward(const int32_t *ids, const F *dOut, F *dTable,
                         int64_t T, int64_t V, int64_t D) {
  HALO_RETURN_IF_ERROR(validateIndices(ids, T, V, false, "embedding backward"));
  std::fill(dTable, dTable + V * D, F(0));
  for (int64_t t = 0; t < T; ++t) {
    F *row = dTable + ids[t] * D;
    const F *g = dOut + t * D;
    for (int64_t d = 0; d < D; ++d)
      row[d] += g[d];
  }
  return Status::success();
}

template Status embedding<float>(const int32_t *, const float *, float *,
                                 int64_t, int64_t, int64_t);
template Status embedding<double>(const int32_t *, const double *, double *,
                                  int64_t, int64_t, int64_t);
template Status embeddingBackward<float>(const int32_t *, const float *,
                                         float *, int64_t, int64_t, int64_t);
template Status embeddingBackward<double>(const int32_t *, const double *,
                                          double *, int64_t, int64_t, int64_t);

} // namespace halo::cpu
