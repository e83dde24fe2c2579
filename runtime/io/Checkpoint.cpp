//===- Checkpoint.cpp - Training checkpoints and HF weight folders --------===//
//
// Saving never writes into the live checkpoint: the new folder is complete
// and fsynced before any rename, and the only window without `dir` (between
// the two renames) leaves both folders whole on disk; loadCheckpoint names
// them if a crash hit that window. Every file read here is untrusted: JSON is
// type-checked field by field and nlohmann's exceptions become Status.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/Checkpoint.h"

#include "runtime/io/AtomicFile.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace halo::io {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr const char *kConfigFile = "config.json";
constexpr const char *kModelFile = "model.safetensors";
constexpr const char *kOptimizerFile = "optimizer.safetensors";
constexpr const char *kStateFile = "trainer_state.json";
constexpr const char *kIndexFile = "model.safetensors.index.json";
constexpr const char *kSaveHint =
    "the previous checkpoint, if any, is unchanged; fix the cause and save "
    "again";

std::function<Status(std::string_view)> &faultHook() {
  static std::function<Status(std::string_view)> hook;
  return hook;
}

Status fault(std::string_view stage) {
  return faultHook() ? faultHook()(stage) : Status::success();
}

/// "ckpt/" and "ckpt" name the same folder; the suffixes must go after the
/// name, not inside the folder.
std::string stripTrailingSlashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  return dir;
}

std::string shapeStr(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

StatusOr<std::string> readTextFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::error(
        fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad())
    return Status::error(
        fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  return text;
}

Status writeTextFile(const std::string &path, const std::string &text) {
  auto writer = AtomicFileWriter::create(path, kSaveHint);
  if (!writer.ok())
    return writer.status();
  HALO_RETURN_IF_ERROR(writer->write(text.data(), text.size()));
  return writer->commit();
}

/// Best effort, like AtomicFileWriter: some file systems refuse fsync on a
/// directory, and what it would make durable is already complete.
void fsyncDir(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string parentOf(const std::string &dir) {
  fs::path parent = fs::path(dir).parent_path();
  return parent.empty() ? "." : parent.string();
}

/// prod(shape), or nullopt on a negative dim or overflow of the byte count.
std::optional<uint64_t> numelOf(const std::vector<int64_t> &shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return std::nullopt;
    if (d != 0 && n > UINT64_MAX / sizeof(float) / uint64_t(d))
      return std::nullopt;
    n *= uint64_t(d);
  }
  return n;
}

Status checkContents(const std::string &dir, const CheckpointContents &c) {
  auto bad = [&](const std::string &what) {
    return Status::error(
        fmt::format("checkpoint {}: {}; nothing was written", dir, what));
  };
  for (const auto &[text, what] :
       {std::pair{&c.configJson, "the config.json text"},
        std::pair{&c.state.programModelJson, "the program's model JSON"}}) {
    try {
      if (!Json::parse(*text).is_object())
        return bad(fmt::format("{} is not a JSON object", what));
    } catch (const Json::exception &e) {
      return bad(fmt::format("{} is malformed: {}", what, e.what()));
    }
  }
  if (c.state.step < 0)
    return bad(fmt::format("step {} is negative", c.state.step));
  std::set<std::string_view> seen;
  for (const ParamState &p : c.params) {
    std::optional<uint64_t> numel = numelOf(p.shape);
    if (!numel)
      return bad(fmt::format("parameter \"{}\": shape {} is negative or "
                             "overflows",
                             p.name, shapeStr(p.shape)));
    if (*numel > 0 && !p.param)
      return bad(fmt::format("parameter \"{}\" has no data", p.name));
    if ((p.expAvg == nullptr) != (p.expAvgSq == nullptr))
      return bad(fmt::format("parameter \"{}\" has only one of its two AdamW "
                             "moments (give both, or neither if frozen)",
                             p.name));
    if (!seen.insert(p.name).second)
      return bad(fmt::format("parameter \"{}\" appears twice", p.name));
  }
  return Status::success();
}

std::string trainerStateJson(const TrainerState &s) {
  OrderedJson state;
  state["format"] = kCheckpointFormat;
  state["version"] = kCheckpointVersion;
  state["step"] = s.step;
  state["seed"] = s.seed;
  state["rng"] = kCheckpointRng;
  state["program"]["fingerprint"] = s.programFingerprint;
  state["program"]["model"] = OrderedJson::parse(s.programModelJson);
  state["data"]["path"] = s.dataPath;
  state["data"]["tokens"] = s.dataTokens;
  state["data"]["fingerprint"] = s.dataFingerprint;
  return state.dump(2) + "\n";
}

/// Writes the four files into the (existing, empty) folder `tmp`.
Status writeFolder(const std::string &tmp, const CheckpointContents &c) {
  std::vector<TensorBytes> params, moments;
  std::vector<std::string> momentNames; // TensorBytes holds names by value
  for (const ParamState &p : c.params) {
    uint64_t bytes = *numelOf(p.shape) * sizeof(float);
    params.push_back({p.name, DType::F32, p.shape, p.param, bytes});
    if (p.expAvg) {
      moments.push_back({momentKey(Moment::ExpAvg, p.name), DType::F32, p.shape,
                         p.expAvg, bytes});
      moments.push_back({momentKey(Moment::ExpAvgSq, p.name), DType::F32,
                         p.shape, p.expAvgSq, bytes});
    }
  }
  HALO_RETURN_IF_ERROR(writeTextFile(tmp + "/" + kConfigFile, c.configJson));
  HALO_RETURN_IF_ERROR(
      writeSafetensors(tmp + "/" + kModelFile, params, {{"format", "pt"}}));
  HALO_RETURN_IF_ERROR(writeSafetensors(tmp + "/" + kOptimizerFile, moments,
                                        {{"format", "halo-adamw"}}));
  HALO_RETURN_IF_ERROR(
      writeTextFile(tmp + "/" + kStateFile, trainerStateJson(c.state)));
  fsyncDir(tmp);
  return fault("written");
}

/// An existing target is replaced only if it is a checkpoint (or empty): a
/// mistyped --checkpoint must never delete someone's folder.
Status checkReplaceable(const std::string &dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return Status::error(fmt::format(
        "checkpoint {}: exists and is not a folder; hint: choose another "
        "checkpoint path or remove the file",
        dir));
  if (fs::exists(dir + "/" + kStateFile, ec) || fs::is_empty(dir, ec))
    return Status::success();
  return Status::error(fmt::format(
      "checkpoint {}: the folder exists and is not a halo checkpoint (no {}); "
      "refusing to replace it; hint: choose a new checkpoint path",
      dir, kStateFile));
}

/// Removes the temp folder unless dismissed (the save succeeded).
class TempFolder {
public:
  explicit TempFolder(std::string path) : path_(std::move(path)) {}
  ~TempFolder() {
    std::error_code ec;
    if (!path_.empty())
      fs::remove_all(path_, ec);
  }
  void dismiss() { path_.clear(); }

private:
  std::string path_;
};

Status renameError(const std::string &dir, const std::string &from,
                   const std::string &to, int err, const std::string &state) {
  return Status::error(
      fmt::format("checkpoint {}: renaming {} to {} failed: {}; {}", dir, from,
                  to, std::strerror(err), state));
}

// ----- loading -------------------------------------------------------------

/// "checkpoint <dir>: <file>: <what>; hint: <hint>".
Status fileError(const std::string &dir, const char *file,
                 const std::string &what, const std::string &hint) {
  return Status::error(
      fmt::format("checkpoint {}: {}: {}; hint: {}", dir, file, what, hint));
}

StatusOr<Json> parseJsonFile(const std::string &dir, const char *file) {
  auto text = readTextFile(dir + "/" + file);
  if (!text.ok())
    return text.status();
  try {
    return Json::parse(*text);
  } catch (const Json::exception &e) {
    return fileError(dir, file, fmt::format("malformed JSON: {}", e.what()),
                     "the file is corrupt; restore it from a backup or save "
                     "the checkpoint again");
  }
}

/// Names leftovers of a save that crashed between its two renames.
std::string interruptedSaveHint(const std::string &dir) {
  fs::path target(dir);
  std::string prefix = target.filename().string();
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(parentOf(dir), ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix + ".old-", 0) == 0 ||
        name.rfind(prefix + ".tmp-", 0) == 0)
      found.push_back(e.path().string());
  }
  if (found.empty())
    return "check the path";
  std::sort(found.begin(), found.end());
  return fmt::format("a save was interrupted; {} hold(s) a checkpoint "
                     "(\".old-\": the previous one, \".tmp-\": the new one, "
                     "complete only if it has {}); rename one to {}",
                     fmt::join(found, ", "), kStateFile, dir);
}

Status parseTrainerState(const std::string &dir, const Json &j,
                         TrainerState &s) {
  const std::string hint = "the file is corrupt or was not written by halo";
  auto bad = [&](const std::string &what) {
    return fileError(dir, kStateFile, what, hint);
  };
  if (!j.is_object())
    return bad(fmt::format("is a JSON {}, not an object", j.type_name()));
  auto format = j.find("format");
  if (format == j.end() || *format != kCheckpointFormat)
    return fileError(dir, kStateFile,
                     fmt::format("\"format\" is {}, not \"{}\"",
                                 format == j.end() ? "missing" : format->dump(),
                                 kCheckpointFormat),
                     "this folder is not a halo checkpoint; to start from "
                     "plain HF weights, load them as weights (fine-tuning)");
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer())
    return bad("\"version\" is missing or not an integer");
  if (*version != kCheckpointVersion)
    return fileError(
        dir, kStateFile,
        fmt::format("unsupported version {} (this halo reads version {})",
                    version->dump(), kCheckpointVersion),
        "resume with the halo that wrote the checkpoint");
  for (const auto &[key, value] : j.items())
    if (key != "format" && key != "version" && key != "step" && key != "seed" &&
        key != "rng" && key != "program" && key != "data")
      return bad(fmt::format("unknown key \"{}\"", key));

  auto field = [&](const Json &obj, const char *key, const char *where,
                   bool (Json::*isKind)() const noexcept,
                   const char *kind) -> StatusOr<const Json *> {
    auto it = obj.find(key);
    if (it == obj.end() || !((*it).*isKind)())
      return bad(
          fmt::format("\"{}{}\" is missing or not {}", where, key, kind));
    return &*it;
  };
  auto uintField = [&](const Json &obj, const char *key, const char *where,
                       uint64_t &out) -> Status {
    auto v = field(obj, key, where, &Json::is_number_unsigned,
                   "a non-negative integer");
    if (!v.ok())
      return v.status();
    out = (*v)->get<uint64_t>();
    return Status::success();
  };
  auto stringField = [&](const Json &obj, const char *key, const char *where,
                         std::string &out) -> Status {
    auto v = field(obj, key, where, &Json::is_string, "a string");
    if (!v.ok())
      return v.status();
    out = (*v)->get<std::string>();
    return Status::success();
  };

  uint64_t step = 0;
  HALO_RETURN_IF_ERROR(uintField(j, "step", "", step));
  if (step > uint64_t(INT64_MAX))
    return bad("\"step\" is out of range");
  s.step = int64_t(step);
  HALO_RETURN_IF_ERROR(uintField(j, "seed", "", s.seed));
  std::string rng;
  HALO_RETURN_IF_ERROR(stringField(j, "rng", "", rng));
  if (rng != kCheckpointRng)
    return fileError(dir, kStateFile,
                     fmt::format("unknown rng \"{}\" (this halo uses \"{}\")",
                                 rng, kCheckpointRng),
                     "resume with the halo that wrote the checkpoint");

  auto program = field(j, "program", "", &Json::is_object, "an object");
  if (!program.ok())
    return program.status();
  HALO_RETURN_IF_ERROR(
      stringField(**program, "fingerprint", "program.", s.programFingerprint));
  auto model =
      field(**program, "model", "program.", &Json::is_object, "an object");
  if (!model.ok())
    return model.status();
  // Sorted keys, compact: the spelling of cpu::Program::modelJson.
  s.programModelJson = (*model)->dump();

  auto data = field(j, "data", "", &Json::is_object, "an object");
  if (!data.ok())
    return data.status();
  HALO_RETURN_IF_ERROR(stringField(**data, "path", "data.", s.dataPath));
  HALO_RETURN_IF_ERROR(uintField(**data, "tokens", "data.", s.dataTokens));
  HALO_RETURN_IF_ERROR(
      stringField(**data, "fingerprint", "data.", s.dataFingerprint));
  return Status::success();
}

/// Every tensor F32; every moment paired and shaped like its parameter.
Status checkTensors(const std::string &dir, const SafetensorsFile &model,
                    const SafetensorsFile &optimizer) {
  const std::string hint = "the checkpoint was not written by halo or was "
                           "edited; save it again";
  for (const SafetensorsFile *f : {&model, &optimizer})
    for (const TensorInfo &t : f->tensors())
      if (t.dtype != DType::F32)
        return fileError(
            dir, f == &model ? kModelFile : kOptimizerFile,
            fmt::format("tensor \"{}\" is {}, not F32", t.name,
                        dtypeName(t.dtype)),
            "a halo checkpoint stores F32 so that resuming is exact; to "
            "start from lower-precision weights, load them as HF weights "
            "(fine-tuning)");
  for (const TensorInfo &t : optimizer.tensors()) {
    size_t slash = t.name.find('/');
    std::string kind = t.name.substr(0, slash);
    if (slash == std::string::npos ||
        (kind != "exp_avg" && kind != "exp_avg_sq"))
      return fileError(dir, kOptimizerFile,
                       fmt::format("tensor \"{}\" is not named exp_avg/<name> "
                                   "or exp_avg_sq/<name>",
                                   t.name),
                       hint);
    std::string param = t.name.substr(slash + 1);
    const TensorInfo *p = model.find(param);
    if (!p)
      return fileError(dir, kOptimizerFile,
                       fmt::format("tensor \"{}\" belongs to no parameter of "
                                   "{}",
                                   t.name, kModelFile),
                       hint);
    if (p->shape != t.shape)
      return fileError(dir, kOptimizerFile,
                       fmt::format("tensor \"{}\" has shape {} but the "
                                   "parameter has {}",
                                   t.name, shapeStr(t.shape),
                                   shapeStr(p->shape)),
                       hint);
    std::string partner =
        momentKey(kind == "exp_avg" ? Moment::ExpAvgSq : Moment::ExpAvg, param);
    if (!optimizer.find(partner))
      return fileError(
          dir, kOptimizerFile,
          fmt::format("has \"{}\" but not \"{}\"", t.name, partner), hint);
  }
  return Status::success();
}

// ----- HF folders ----------------------------------------------------------

/// A shard name from an index: a file in the folder, never a path out of it.
bool isPlainFileName(const std::string &name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." &&
         name != "..";
}

} // namespace

void setCheckpointFaultHookForTesting(
    std::function<Status(std::string_view stage)> hook) {
  faultHook() = std::move(hook);
}

std::string fingerprint(const void *data, size_t bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto *p = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return fmt::format("{:016x}", h);
}

std::string momentKey(Moment which, std::string_view param) {
  return fmt::format("{}/{}",
                     which == Moment::ExpAvg ? "exp_avg" : "exp_avg_sq", param);
}

Status saveCheckpoint(const std::string &dirArg, const CheckpointContents &c) {
  std::string dir = stripTrailingSlashes(dirArg);
  if (dir.empty())
    return Status::error("checkpoint: empty folder path");
  HALO_RETURN_IF_ERROR(checkContents(dir, c));
  std::error_code ec;
  bool replacing = fs::exists(dir, ec);
  if (replacing)
    HALO_RETURN_IF_ERROR(checkReplaceable(dir));

  std::string pid = std::to_string(::getpid());
  std::string tmp = dir + ".tmp-" + pid;
  std::string old = dir + ".old-" + pid;
  // Same-pid leftovers can only be this process's own failed cleanups.
  fs::remove_all(tmp, ec);
  fs::remove_all(old, ec);
  if (::mkdir(tmp.c_str(), 0777) != 0)
    return Status::error(fmt::format(
        "checkpoint {}: cannot create the temp folder {}: {}; hint: check "
        "that the parent folder exists and is writable; {}",
        dir, tmp, std::strerror(errno), kSaveHint));
  TempFolder guard(tmp);
  HALO_RETURN_IF_ERROR(writeFolder(tmp, c));

  std::string parent = parentOf(dir);
  if (!replacing) {
    if (::rename(tmp.c_str(), dir.c_str()) != 0)
      return renameError(dir, tmp, dir, errno, "nothing was saved");
    guard.dismiss();
    fsyncDir(parent);
    return Status::success();
  }
  if (::rename(dir.c_str(), old.c_str()) != 0)
    return renameError(dir, dir, old, errno, kSaveHint);
  Status swapped = fault("swapping");
  if (swapped.ok() && ::rename(tmp.c_str(), dir.c_str()) != 0)
    swapped = renameError(dir, tmp, dir, errno, kSaveHint);
  if (!swapped.ok()) {
    // Put the previous checkpoint back; if even that fails, say where it is.
    if (::rename(old.c_str(), dir.c_str()) != 0)
      return Status::error(fmt::format(
          "{}; restoring the previous checkpoint also failed ({}): it is "
          "intact in {}; rename it to {}",
          swapped.message(), std::strerror(errno), old, dir));
    return swapped;
  }
  guard.dismiss();
  fsyncDir(parent);
  // The new checkpoint is durable; a failed delete only leaves disk garbage
  // (removed by this process's next save).
  fs::remove_all(old, ec);
  return Status::success();
}

StatusOr<Checkpoint> loadCheckpoint(const std::string &dirArg) {
  std::string dir = stripTrailingSlashes(dirArg);
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return Status::error(fmt::format("checkpoint {}: no such folder; hint: {}",
                                     dir, interruptedSaveHint(dir)));
  if (!fs::is_directory(dir, ec))
    return Status::error(fmt::format(
        "checkpoint {}: is a file, not a checkpoint folder; hint: pass the "
        "folder that holds {} and {}",
        dir, kStateFile, kModelFile));
  std::vector<std::string> missing;
  for (const char *file : {kConfigFile, kModelFile, kOptimizerFile, kStateFile})
    if (!fs::exists(dir + "/" + file, ec))
      missing.push_back(file);
  if (!missing.empty())
    return Status::error(fmt::format(
        "checkpoint {}: missing {}; hint: {}", dir, fmt::join(missing, ", "),
        fs::exists(dir + "/" + kStateFile, ec)
            ? "the checkpoint is incomplete; restore the missing files"
            : "not a halo checkpoint folder (an HF model folder can be "
              "loaded as weights for fine-tuning instead)"));

  auto state = parseJsonFile(dir, kStateFile);
  if (!state.ok())
    return state.status();
  TrainerState trainerState;
  HALO_RETURN_IF_ERROR(parseTrainerState(dir, *state, trainerState));

  auto config = readTextFile(dir + "/" + kConfigFile);
  if (!config.ok())
    return config.status();
  try {
    if (!Json::parse(*config).is_object())
      return fileError(dir, kConfigFile, "is not a JSON object",
                       "the file is corrupt; rewrite it from the model file");
  } catch (const Json::exception &e) {
    return fileError(dir, kConfigFile,
                     fmt::format("malformed JSON: {}", e.what()),
                     "the file is corrupt; rewrite it from the model file");
  }

  auto model = SafetensorsFile::open(dir + "/" + kModelFile);
  if (!model.ok())
    return Status::error("checkpoint " + dir + ": " + model.status().message());
  auto optimizer = SafetensorsFile::open(dir + "/" + kOptimizerFile);
  if (!optimizer.ok())
    return Status::error("checkpoint " + dir + ": " +
                         optimizer.status().message());
  HALO_RETURN_IF_ERROR(checkTensors(dir, *model, *optimizer));

  Checkpoint ckpt(dir, std::move(*model), std::move(*optimizer));
  ckpt.configJson_ = std::move(*config);
  ckpt.state_ = std::move(trainerState);
  return ckpt;
}

const TensorInfo *Checkpoint::findParam(std::string_view name) const {
  return model_.find(name);
}

Status Checkpoint::read(const std::string &tensor, const SafetensorsFile &file,
                        float *out, uint64_t numel) const {
  const TensorInfo *t = file.find(tensor);
  if (!t)
    return Status::error(fmt::format(
        "checkpoint {}: {} has no tensor \"{}\"; hint: the checkpoint is of "
        "another model, or the parameter is frozen (no moments)",
        dir_, fs::path(file.path()).filename().string(), tensor));
  if (t->numel != numel)
    return Status::error(fmt::format(
        "checkpoint {}: tensor \"{}\" has {} elements (shape {}) but {} were "
        "asked for; hint: call checkCompatible first",
        dir_, tensor, t->numel, shapeStr(t->shape), numel));
  return file.toFloat(*t, out);
}

Status Checkpoint::readParam(std::string_view name, float *out,
                             uint64_t numel) const {
  return read(std::string(name), model_, out, numel);
}

Status Checkpoint::readMoment(Moment which, std::string_view name, float *out,
                              uint64_t numel) const {
  return read(momentKey(which, name), optimizer_, out, numel);
}

StatusOr<std::vector<float>> Checkpoint::param(std::string_view name) const {
  const TensorInfo *t = model_.find(name);
  std::vector<float> out(t ? t->numel : 0);
  HALO_RETURN_IF_ERROR(readParam(name, out.data(), out.size()));
  return out;
}

StatusOr<std::vector<float>> Checkpoint::moment(Moment which,
                                                std::string_view name) const {
  const TensorInfo *t = optimizer_.find(momentKey(which, name));
  std::vector<float> out(t ? t->numel : 0);
  HALO_RETURN_IF_ERROR(readMoment(which, name, out.data(), out.size()));
  return out;
}

Status
Checkpoint::checkCompatible(const std::vector<ExpectedParam> &expected) const {
  const std::string hint =
      "the checkpoint was saved from a different model; its config.json "
      "(and program.model in trainer_state.json) describe that model: "
      "compile the program from it, or start a new run";
  std::set<std::string_view> wanted;
  for (const ExpectedParam &e : expected) {
    wanted.insert(e.name);
    const TensorInfo *t = model_.find(e.name);
    if (!t)
      return Status::error(fmt::format(
          "checkpoint {}: no tensor \"{}\" in {} (the program expects shape "
          "{}); hint: {}",
          dir_, e.name, kModelFile, shapeStr(e.shape), hint));
    if (t->shape != e.shape)
      return Status::error(fmt::format(
          "checkpoint {}: tensor \"{}\" has shape {} but the program expects "
          "{}; hint: {}",
          dir_, e.name, shapeStr(t->shape), shapeStr(e.shape), hint));
    // loadCheckpoint guarantees the moments come in pairs.
    bool hasMoments = optimizer_.find(momentKey(Moment::ExpAvg, e.name));
    if (e.hasMoments && !hasMoments)
      return Status::error(fmt::format(
          "checkpoint {}: {} has no AdamW moments for \"{}\" (it was frozen "
          "when saved) but the program trains it; hint: freeze it again, or "
          "start its optimizer state from zero in a new run",
          dir_, kOptimizerFile, e.name));
    if (!e.hasMoments && hasMoments)
      return Status::error(fmt::format(
          "checkpoint {}: \"{}\" has AdamW moments but the program freezes "
          "it; hint: {}",
          dir_, e.name, hint));
  }
  for (const TensorInfo &t : model_.tensors())
    if (!wanted.count(t.name))
      return Status::error(fmt::format(
          "checkpoint {}: tensor \"{}\" (shape {}) is not a parameter of the "
          "program; hint: {}",
          dir_, t.name, shapeStr(t.shape), hint));
  return Status::success();
}

Status Checkpoint::checkSameData(uint64_t tokens,
                                 const std::string &fingerprint) const {
  if (tokens == state_.dataTokens && fingerprint == state_.dataFingerprint)
    return Status::success();
  return Status::error(fmt::format(
      "checkpoint {}: trained on {} ({} tokens, fingerprint {}) but the data "
      "now has {} tokens, fingerprint {}; the step no longer fixes the "
      "batches; hint: resume with the same token file",
      dir_, state_.dataPath, state_.dataTokens, state_.dataFingerprint, tokens,
      fingerprint));
}

// ----- HF folders ----------------------------------------------------------

std::vector<std::string> HfWeights::files() const {
  std::vector<std::string> out;
  for (const SafetensorsFile &f : shards_)
    out.push_back(f.path());
  return out;
}

std::vector<std::string> HfWeights::names() const {
  std::vector<std::string> out;
  for (const auto &[name, shard] : shardOf_)
    out.push_back(name);
  return out;
}

const TensorInfo *HfWeights::find(std::string_view name) const {
  auto it = shardOf_.find(name);
  return it == shardOf_.end() ? nullptr : shards_[it->second].find(name);
}

Status HfWeights::toFloat(std::string_view name, float *out,
                          uint64_t numel) const {
  auto it = shardOf_.find(name);
  if (it == shardOf_.end())
    return Status::error(fmt::format(
        "{}: no tensor \"{}\" ({} tensors in {} file(s)); hint: the weights "
        "are of another model or use other names than HF LLaMA's",
        dir_, name, shardOf_.size(), shards_.size()));
  const SafetensorsFile &file = shards_[it->second];
  const TensorInfo &t = *file.find(name);
  if (t.numel != numel)
    return Status::error(fmt::format(
        "{}: tensor \"{}\" has {} elements (shape {}) but {} were asked for",
        file.path(), name, t.numel, shapeStr(t.shape), numel));
  return file.toFloat(t, out);
}

StatusOr<std::vector<float>> HfWeights::toFloat(std::string_view name) const {
  const TensorInfo *t = find(name);
  std::vector<float> out(t ? t->numel : 0);
  HALO_RETURN_IF_ERROR(toFloat(name, out.data(), out.size()));
  return out;
}

StatusOr<HfWeights> openHfWeights(const std::string &dirArg) {
  std::string dir = stripTrailingSlashes(dirArg);
  HfWeights w;
  w.dir_ = dir;
  std::error_code ec;
  auto addFile = [&](const std::string &path) -> Status {
    auto f = SafetensorsFile::open(path);
    if (!f.ok())
      return f.status();
    for (const TensorInfo &t : f->tensors())
      w.shardOf_.emplace(t.name, w.shards_.size());
    w.shards_.push_back(std::move(*f));
    return Status::success();
  };

  if (fs::is_regular_file(dir, ec)) {
    HALO_RETURN_IF_ERROR(addFile(dir));
    return w;
  }
  if (!fs::is_directory(dir, ec))
    return Status::error(fmt::format(
        "{}: no such folder or safetensors file; hint: pass an HF model "
        "folder (config.json + model.safetensors) or a .safetensors file",
        dir));
  // transformers' order: the single file wins over an index beside it.
  if (fs::exists(dir + "/" + kModelFile, ec)) {
    HALO_RETURN_IF_ERROR(addFile(dir + "/" + kModelFile));
    return w;
  }

  std::string indexPath = dir + "/" + kIndexFile;
  if (fs::exists(indexPath, ec)) {
    const std::string hint =
        "the index is corrupt; download model.safetensors.index.json again";
    auto bad = [&](const std::string &what, const std::string &h) {
      return Status::error(fmt::format("{}: {}; hint: {}", indexPath, what, h));
    };
    auto text = readTextFile(indexPath);
    if (!text.ok())
      return text.status();
    Json index;
    try {
      index = Json::parse(*text);
    } catch (const Json::exception &e) {
      return bad(fmt::format("malformed JSON: {}", e.what()), hint);
    }
    auto map = index.is_object() ? index.find("weight_map") : index.end();
    if (map == index.end() || !map->is_object())
      return bad("no \"weight_map\" object", hint);
    std::map<std::string, std::vector<std::string>> byShard;
    for (const auto &[name, shard] : map->items()) {
      if (!shard.is_string() || !isPlainFileName(shard.get<std::string>()))
        return bad(fmt::format("weight_map[\"{}\"] is {}, not a file name in "
                               "the folder",
                               name, shard.dump()),
                   hint);
      byShard[shard.get<std::string>()].push_back(name);
    }
    if (byShard.empty())
      return bad("\"weight_map\" is empty", hint);
    for (const auto &[shard, names] : byShard) {
      std::string path = dir + "/" + shard;
      if (!fs::exists(path, ec))
        return bad(fmt::format("shard \"{}\" ({} tensors, e.g. \"{}\") is "
                               "missing: {}",
                               shard, names.size(), names.front(), path),
                   "download every shard the index lists");
      auto f = SafetensorsFile::open(path);
      if (!f.ok())
        return f.status();
      for (const std::string &name : names) {
        if (!f->find(name))
          return bad(fmt::format("tensor \"{}\" is listed in shard \"{}\" "
                                 "but that file has no such tensor",
                                 name, shard),
                     "the index and the shards come from different "
                     "downloads; download them again together");
        w.shardOf_.emplace(name, w.shards_.size());
      }
      w.shards_.push_back(std::move(*f));
    }
    return w;
  }

  std::vector<std::string> found;
  for (const auto &e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors")
      found.push_back(e.path().filename().string());
  std::sort(found.begin(), found.end());
  if (found.size() == 1) {
    HALO_RETURN_IF_ERROR(addFile(dir + "/" + found.front()));
    return w;
  }
  if (found.size() > 1)
    return Status::error(fmt::format(
        "{}: several safetensors files ({}) and no {} to say which tensor is "
        "where; hint: add the index, or pass one file",
        dir, fmt::join(found, ", "), kIndexFile));
  bool torchBin = fs::exists(dir + "/pytorch_model.bin", ec) ||
                  fs::exists(dir + "/pytorch_model.bin.index.json", ec);
  return Status::error(fmt::format(
      "{}: no safetensors weights (looked for {}, {} and *.safetensors); "
      "hint: {}",
      dir, kModelFile, kIndexFile,
      torchBin ? "the folder has PyTorch .bin weights, which halo does not "
                 "read; convert them to safetensors (e.g. save_pretrained "
                 "with safe_serialization=True)"
               : "download the model's safetensors files into the folder"));
}

} // namespace halo::io
