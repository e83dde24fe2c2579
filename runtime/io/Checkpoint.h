//===- Checkpoint.h - Training checkpoints, HF weight folders ---*- C++ -*-===//
//
// A halo checkpoint is a folder that is also a Hugging Face checkpoint:
//   config.json             HF LlamaConfig (frontend::toHfConfigJson's text)
//   model.safetensors       parameters, F32, HF names, {"format": "pt"}
//   optimizer.safetensors   AdamW moments, F32: exp_avg/<name>, exp_avg_sq/..
//   trainer_state.json      step, seed, program and data identity
// saveCheckpoint builds the folder beside the target and swaps it in with
// renames, so a crash or an error never loses the checkpoint already there.
// Data order and initialisation are pure functions of (seed, step), so step +
// seed + the data's identity is the whole training position: there is no RNG
// state to save. docs/formats.md documents the folder.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_IO_CHECKPOINT_H
#define HALO_RUNTIME_IO_CHECKPOINT_H

#include "halo/runtime/Status.h"
#include "runtime/io/Safetensors.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace halo::io {

inline constexpr const char *kCheckpointFormat = "halo-checkpoint";
inline constexpr int kCheckpointVersion = 1;
/// trainer_state.json "rng": every random draw in halo is counter-based
/// splitmix64 keyed by (seed, step, name). A future stateful generator must
/// change this value (and the version).
inline constexpr const char *kCheckpointRng = "splitmix64-counter";

/// 16 lower-case hex digits of the 64-bit FNV-1a hash of the bytes: the
/// fingerprint of a program file or a token dataset.
std::string fingerprint(const void *data, size_t bytes);

/// Where training stands; with the parameters and moments, everything a
/// resumed run needs to continue exactly as an uninterrupted one.
struct TrainerState {
  /// Optimizer steps completed; a resumed run trains step + 1 next, which is
  /// also AdamW's 1-based bias-correction step.
  int64_t step = 0;
  /// The seed of fillBatch(B, S, seed, step) and of the initialisation.
  uint64_t seed = 0;
  /// The program's canonical model JSON (cpu::Program::modelJson). Saved as
  /// a JSON object; loaded back as its compact dump with sorted keys, which
  /// is exactly what Program::modelJson holds.
  std::string programModelJson;
  std::string programFingerprint; ///< fingerprint() of the .halo file
  std::string dataPath;           ///< as given on the command line
  uint64_t dataTokens = 0;        ///< token count of the whole file
  std::string dataFingerprint;    ///< fingerprint() of the token file
};

/// One parameter to save: its F32 values and, unless it is frozen, its AdamW
/// moments (both null for a frozen parameter). Pointers must hold
/// prod(shape) floats and stay valid during saveCheckpoint.
struct ParamState {
  std::string name; ///< HF name, e.g. "model.layers.0.mlp.up_proj.weight"
  std::vector<int64_t> shape;
  const float *param = nullptr;
  const float *expAvg = nullptr;
  const float *expAvgSq = nullptr;
};

struct CheckpointContents {
  std::string configJson; ///< HF config.json text (frontend::toHfConfigJson)
  std::vector<ParamState> params;
  TrainerState state;
};

/// Writes the folder `dir` (its parent must exist): everything goes into
/// "<dir>.tmp-<pid>", every file and the folder are fsynced, then an existing
/// `dir` is renamed to "<dir>.old-<pid>", the temp folder to `dir`, and the
/// old one is deleted. An existing `dir` must be a halo checkpoint or empty
/// (anything else is refused, never deleted). On any error the previous
/// checkpoint is left in place and the temp folder is removed.
Status saveCheckpoint(const std::string &dir, const CheckpointContents &c);

/// Tests only: called at each stage of saveCheckpoint ("written": all files
/// are in the temp folder; "swapping": the old checkpoint has just been moved
/// aside). A non-ok Status fails the save there, as a real error would, so
/// tests can reach the rollback paths. Pass an empty function to clear it.
void setCheckpointFaultHookForTesting(
    std::function<Status(std::string_view stage)> hook);

/// What the program expects of one parameter (checkCompatible).
struct ExpectedParam {
  std::string name;
  std::vector<int64_t> shape;
  bool hasMoments = true; ///< false for frozen parameters
};

enum class Moment { ExpAvg, ExpAvgSq };

/// A loaded, validated checkpoint folder. Tensors stay memory-mapped.
class Checkpoint {
public:
  const std::string &dir() const { return dir_; }
  const TrainerState &state() const { return state_; }
  const std::string &configJson() const { return configJson_; }
  const SafetensorsFile &model() const { return model_; }
  const SafetensorsFile &optimizer() const { return optimizer_; }

  /// Null when there is no parameter `name`.
  const TensorInfo *findParam(std::string_view name) const;
  /// The parameter's values; an error names the folder and the tensor.
  StatusOr<std::vector<float>> param(std::string_view name) const;
  /// The moment of parameter `name`; an error if it has none (frozen).
  StatusOr<std::vector<float>> moment(Moment which,
                                      std::string_view name) const;
  /// As above, into `out` (numel floats): no copy through a vector.
  Status readParam(std::string_view name, float *out, uint64_t numel) const;
  Status readMoment(Moment which, std::string_view name, float *out,
                    uint64_t numel) const;

  /// The first difference from what the program expects, in `expected`'s
  /// order: a missing or misshaped parameter, missing moments, then a
  /// parameter the program does not have.
  Status checkCompatible(const std::vector<ExpectedParam> &expected) const;
  /// Errors when the token file differs from the one trained on (count or
  /// fingerprint), since the step alone then no longer fixes the batches.
  /// The path may differ (a moved file is fine).
  Status checkSameData(uint64_t tokens, const std::string &fingerprint) const;

private:
  friend StatusOr<Checkpoint> loadCheckpoint(const std::string &dir);
  Checkpoint(std::string dir, SafetensorsFile model, SafetensorsFile optimizer)
      : dir_(std::move(dir)), model_(std::move(model)),
        optimizer_(std::move(optimizer)) {}
  Status read(const std::string &tensor, const SafetensorsFile &file,
              float *out, uint64_t numel) const;

  std::string dir_;
  SafetensorsFile model_;
  SafetensorsFile optimizer_;
  std::string configJson_;
  TrainerState state_;
};

/// Opens and validates `dir`: all four files present, safetensors and JSON
/// well formed, format and version known, every tensor F32, every moment
/// paired and shaped like its parameter. Errors name the file and the cause.
StatusOr<Checkpoint> loadCheckpoint(const std::string &dir);

/// The "moment/name" key of optimizer.safetensors.
std::string momentKey(Moment which, std::string_view param);

/// The weights of an HF model folder (fine-tuning), possibly sharded.
class HfWeights {
public:
  const std::string &dir() const { return dir_; }
  /// The safetensors files read, in the order opened.
  std::vector<std::string> files() const;
  /// Every tensor name, sorted.
  std::vector<std::string> names() const;
  /// Null when no file has tensor `name`.
  const TensorInfo *find(std::string_view name) const;
  /// Converts an F32, BF16 or F16 tensor to floats (numel at `out`).
  Status toFloat(std::string_view name, float *out, uint64_t numel) const;
  StatusOr<std::vector<float>> toFloat(std::string_view name) const;

private:
  friend StatusOr<HfWeights> openHfWeights(const std::string &dir);
  std::string dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t, std::less<>> shardOf_; ///< name -> shard
};

/// Opens `dir`'s weights the way transformers does: model.safetensors, else
/// model.safetensors.index.json and the shards of its weight_map, else the
/// folder's only *.safetensors. `dir` may also be one .safetensors file. A
/// halo checkpoint folder is an HF folder, so this reads ours too.
StatusOr<HfWeights> openHfWeights(const std::string &dir);

} // namespace halo::io

#endif // HALO_RUNTIME_IO_CHECKPOINT_H
