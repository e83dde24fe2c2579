//===- GemmTuneCache.h - Persisted cuBLASLt algorithm choices ---*- C++ -*-===//
//
// The pure (GPU-free) half of GEMM autotuning (see GemmEngine.h): the key
// that names one tuned problem, the record kept for it, and where records
// live. They sit next to the NVRTC kernels, in the kernel cache directory
// (KernelCache.h: HALO_CACHE_DIR, else $XDG_CACHE_HOME/halo, else
// $HOME/.cache/halo), one KernelCache entry per key (its name is the SHA-256
// of the key text), so they share its atomic writes and checksums. The
// payload is text, readable with `tail -c +81 <entry>`:
//
//   halo-gemm-tune 1
//   key <key text>
//   algo <id> <tile> <stages> <splitK> <reduction> <swizzle> <custom>
//        <inner> <cluster>                   (one line)
//   candidate <index in the heuristic's order> <candidates timed>
//   ms <chosen median> <heuristic first's median>
//
// The key text names everything the heuristic's candidate list depends on:
// the device (name, compute capability, SM count), the cuBLASLt version, the
// descriptor, the plan's path and scale handling, the alignment classes and
// the workspace limit. A record is only a preference: the engine uses it
// when the heuristic still offers that exact configuration, else it tunes
// again and replaces the record.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_BLAS_GEMMTUNECACHE_H
#define HALO_RUNTIME_CUDA_BLAS_GEMMTUNECACHE_H

#include "halo/runtime/Status.h"
#include "runtime/cuda/blas/Gemm.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace halo::cuda {

/// The cublasLtMatmulAlgo config attributes that identify one candidate.
struct LtAlgoConfig {
  int algoId = -1;
  int tileId = 0;
  int stagesId = 0;
  int splitK = 1;
  int reduction = 0;
  int swizzle = 0;
  int customOption = 0;
  int innerShapeId = 0;
  int clusterShapeId = 0;

  bool operator==(const LtAlgoConfig &other) const;
  bool operator!=(const LtAlgoConfig &other) const { return !(*this == other); }
  /// "algo=66 tile=20 stages=15 splitk=1 ..." for logs and plan texts.
  std::string text() const;
};

/// What identifies one tuned problem (see the file comment).
struct GemmTuneKey {
  std::string deviceName;
  int ccMajor = 0, ccMinor = 0, smCount = 0;
  size_t ltVersion = 0;
  GemmDesc desc;
  /// The plan's path and scale handling, e.g. "native scalar".
  std::string plan;
  /// Alignment classes of the user's A, B, C as told to the heuristic.
  unsigned alignA = 256, alignB = 256, alignC = 256;
  size_t workspaceBytes = 0;
};

/// One line naming every field of `key`, spaces and all (no newline).
std::string gemmTuneKeyText(const GemmTuneKey &key);

struct GemmTuneRecord {
  std::string key;
  LtAlgoConfig algo;
  /// Index of the choice in the heuristic's order, and how many were timed.
  int candidate = 0;
  int candidates = 0;
  double ms = 0;
  double heuristicMs = 0;
};

std::string formatGemmTuneRecord(const GemmTuneRecord &record);
/// The record in `payload`; an error saying what is wrong for anything else
/// (another format version, a missing or malformed line).
StatusOr<GemmTuneRecord> parseGemmTuneRecord(std::string_view payload);

/// Which GEMMs GemmEngine::prepare() tunes.
enum class GemmAutotune : uint8_t {
  Off,
  /// INT8 operands only: the default, the only kind where tuning won on the
  /// H100 (see docs/gemm.md).
  Int8,
  All,
};

/// HALO_GEMM_AUTOTUNE: unset or empty -> `fallback`; "0"/"off"/"false" ->
/// Off; "int8" -> Int8; "1"/"on"/"true"/"all" -> All; anything else is an
/// error.
StatusOr<GemmAutotune> parseAutotuneSetting(const char *value,
                                            GemmAutotune fallback);

class GemmTuneCache {
public:
  explicit GemmTuneCache(std::string directory);

  const std::string &directory() const { return directory_; }
  std::string entryPath(const std::string &key) const;

  /// The record stored for `key`, or nullopt. An entry that exists but is
  /// corrupt, unparsable or stored for another key is nullopt too, with the
  /// reason in `*warning` (left empty for a plain miss).
  std::optional<GemmTuneRecord> lookup(const std::string &key,
                                       std::string *warning) const;
  /// Atomically writes (or replaces) the record under record.key.
  Status store(const GemmTuneRecord &record) const;

private:
  std::string directory_;
};

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_BLAS_GEMMTUNECACHE_H
