//===- ConfigParser.cpp - JSON model file -> validated ModelConfig --------===//
//
// Reads the sectioned form {"model", "train", "halo"} or a plain HF
// config.json. Every message names the file, the dotted key and the reason;
// unknown keys get a did-you-mean from edit distance, common spellings of
// other codebases and the other sections. The first error found is reported.
//
//===----------------------------------------------------------------------===//

#include "frontend/config/ModelConfig.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

namespace halo::frontend {
namespace {

using Json = nlohmann::json;
using KeyList = std::vector<std::string_view>;

// Every size is a GEMM or tensor dimension; keep products in int64 range.
constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();
constexpr int64_t kDefaultMaxSeqLen = 512;

const KeyList kTopKeys = {"model", "train", "halo"};
const KeyList kModelKeys = {
    "hidden_size",         "intermediate_size",       "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads",     "head_dim",
    "vocab_size",          "max_position_embeddings", "rms_norm_eps",
    "rope_theta",          "initializer_range",       "tie_word_embeddings"};
// HF keys that would change the math: accepted only with LLaMA's value.
const KeyList kHfCheckedKeys = {
    "model_type",   "hidden_act",        "attention_bias",  "mlp_bias",
    "rope_scaling", "attention_dropout", "rope_interleaved"};
// HF keys with no effect on training math (ids, dtypes, bookkeeping).
const KeyList kHfIgnoredKeys = {"_name_or_path",
                                "architectures",
                                "bos_token_id",
                                "eos_token_id",
                                "pad_token_id",
                                "torch_dtype",
                                "dtype",
                                "transformers_version",
                                "use_cache",
                                "pretraining_tp",
                                "is_llama_config",
                                "output_attentions",
                                "output_hidden_states",
                                "return_dict"};
const KeyList kTrainKeys = {"batch_size",   "seq_len",   "steps", "lr",
                            "warmup_steps", "schedule",  "betas", "eps",
                            "weight_decay", "grad_clip", "moment_dtype", "master_dtype",
                            "seed"};
const KeyList kHaloKeys = {"level", "precision", "matmuls"};
const KeyList kMatmulKeys = {"fwd", "bwd_input", "bwd_weight"};
const KeyList kOperandFieldKeys = {"hadamard", "quant"};

// Spellings from other codebases (Meta's params.json, GPT-2, HF Trainer, the
// HALO reference's bwd1/bwd2) -> ours. An alias is suggested only where its
// target is a valid key of the section at hand.
const std::pair<std::string_view, std::string_view> kAliases[] = {
    {"num_layers", "num_hidden_layers"},
    {"n_layers", "num_hidden_layers"},
    {"n_layer", "num_hidden_layers"},
    {"num_heads", "num_attention_heads"},
    {"n_heads", "num_attention_heads"},
    {"n_head", "num_attention_heads"},
    {"num_kv_heads", "num_key_value_heads"},
    {"n_kv_heads", "num_key_value_heads"},
    {"dim", "hidden_size"},
    {"d_model", "hidden_size"},
    {"n_embd", "hidden_size"},
    {"ffn_dim", "intermediate_size"},
    {"ffn_hidden_size", "intermediate_size"},
    {"n_inner", "intermediate_size"},
    {"vocab", "vocab_size"},
    {"n_vocab", "vocab_size"},
    {"max_seq_len", "max_position_embeddings"},
    {"n_positions", "max_position_embeddings"},
    {"norm_eps", "rms_norm_eps"},
    {"layer_norm_eps", "rms_norm_eps"},
    {"max_seq_len", "seq_len"},
    {"sequence_length", "seq_len"},
    {"learning_rate", "lr"},
    {"max_steps", "steps"},
    {"num_steps", "steps"},
    {"warmup", "warmup_steps"},
    {"num_warmup_steps", "warmup_steps"},
    {"lr_scheduler_type", "schedule"},
    {"lr_schedule", "schedule"},
    {"max_grad_norm", "grad_clip"},
    {"per_device_train_batch_size", "batch_size"},
    {"adam_epsilon", "eps"},
    {"adam_beta1", "betas"},
    {"adam_beta2", "betas"},
    {"bwd1", "bwd_input"},
    {"bwd2", "bwd_weight"},
    {"forward", "fwd"},
    {"format", "precision"},
    {"side", "hadamard"},
    {"rotation", "hadamard"},
    {"granularity", "quant"},
    {"quantization", "quant"},
};

bool contains(const KeyList &list, std::string_view key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

std::string join(const std::string &prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

std::string quoted(const KeyList &list) {
  std::string out;
  for (std::string_view s : list)
    out += fmt::format("{}\"{}\"", out.empty() ? "" : ", ", s);
  return out;
}

/// Case-insensitive edit distance counting insertions, deletions,
/// substitutions and swaps of adjacent characters ("levle" -> "level": 1).
size_t editDistance(std::string_view a, std::string_view b) {
  auto same = [&](size_t i, size_t j) {
    return std::tolower(static_cast<unsigned char>(a[i])) ==
           std::tolower(static_cast<unsigned char>(b[j]));
  };
  std::vector<std::vector<size_t>> d(a.size() + 1,
                                     std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + !same(i - 1, j - 1)});
      if (i > 1 && j > 1 && same(i - 1, j - 2) && same(i - 2, j - 1))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

/// The valid spelling the user most likely meant, if any is close enough.
std::optional<std::string_view> suggest(std::string_view word,
                                        const KeyList &candidates) {
  for (const auto &[alias, target] : kAliases)
    if (alias == word && contains(candidates, target))
      return target;
  std::optional<std::string_view> best;
  size_t bestDistance = std::numeric_limits<size_t>::max();
  for (std::string_view c : candidates) {
    // Short words tolerate one edit, longer ones two; never suggest a word
    // that shares nothing with the key ("e" is not a typo of "x").
    size_t limit = std::clamp<size_t>(c.size() / 3, 1, 2);
    size_t d = editDistance(word, c);
    if (d <= limit && d < word.size() && d < c.size() && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best)
    return best;
  // A truncated key: "batch" -> "batch_size".
  constexpr size_t kMinPrefix = 3;
  for (std::string_view c : candidates)
    if (word.size() >= kMinPrefix && c.size() > word.size() &&
        editDistance(word, c.substr(0, word.size())) == 0)
      return c;
  return std::nullopt;
}

/// v as compact JSON, cut short so one message stays one readable line.
std::string shortDump(const Json &v) {
  constexpr size_t kMaxShown = 48;
  std::string text = v.dump();
  return text.size() > kMaxShown ? text.substr(0, kMaxShown) + "..." : text;
}

std::string describeValue(const Json &v) {
  std::string text = shortDump(v);
  switch (v.type()) {
  case Json::value_t::string:
    return "string " + text;
  case Json::value_t::boolean:
    return "boolean " + text;
  case Json::value_t::array:
    return "array " + text;
  case Json::value_t::object:
    return "object " + text;
  default:
    return text;
  }
}

/// The value of key, or nullptr when absent or null (null means "default").
const Json *lookup(const Json &obj, std::string_view key) {
  auto it = obj.find(std::string(key));
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

/// The integral value of v: a JSON integer, or a float with no fraction.
std::optional<int64_t> asInteger(const Json &v) {
  if (v.is_number_unsigned())
    return static_cast<int64_t>(std::min<uint64_t>(
        v.get<uint64_t>(), std::numeric_limits<int64_t>::max()));
  if (v.is_number_integer())
    return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9e18)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

/// Records the first key repeated within one object; nlohmann would silently
/// keep only the last value.
struct DuplicateKeyFinder {
  struct Frame {
    bool isObject;
    std::string path;
    std::set<std::string> keys;
    std::string lastKey;
  };
  std::vector<Frame> stack;
  std::optional<std::string> duplicate;

  void onEvent(Json::parse_event_t event, const Json &parsed) {
    switch (event) {
    case Json::parse_event_t::object_start:
    case Json::parse_event_t::array_start: {
      std::string path;
      if (!stack.empty())
        path = stack.back().isObject
                   ? join(stack.back().path, stack.back().lastKey)
                   : stack.back().path + "[]";
      stack.push_back(
          {event == Json::parse_event_t::object_start, path, {}, {}});
      break;
    }
    case Json::parse_event_t::object_end:
    case Json::parse_event_t::array_end:
      stack.pop_back();
      break;
    case Json::parse_event_t::key: {
      Frame &frame = stack.back();
      frame.lastKey = parsed.get<std::string>();
      if (!frame.keys.insert(frame.lastKey).second && !duplicate)
        duplicate = join(frame.path, frame.lastKey);
      break;
    }
    case Json::parse_event_t::value:
      break;
    }
  }
};

class Parser {
public:
  explicit Parser(std::string displayName)
      : displayName_(std::move(displayName)) {}

  StatusOr<ModelConfig> parse(const std::string &text);

private:
  Status fail(const std::string &path, const std::string &reason) const {
    return Status::error(fmt::format("{}: {}: {}", displayName_, path, reason));
  }

  Status checkKeys(const Json &obj, const std::string &path,
                   const KeyList &known, std::string_view section) const;
  Status expectObject(const Json &v, const std::string &path) const;
  Status readInt(const Json &obj, const std::string &prefix,
                 std::string_view key, int64_t &out,
                 std::optional<int64_t> fallback, int64_t min,
                 int64_t max = kMaxDim) const;
  Status readNumber(const Json &obj, const std::string &prefix,
                    std::string_view key, double &out) const;
  Status readPositive(const Json &obj, const std::string &prefix,
                      std::string_view key, double &out) const;
  Status readNonNegative(const Json &obj, const std::string &prefix,
                         std::string_view key, double &out,
                         std::string_view note = "") const;
  Status readBool(const Json &obj, const std::string &prefix,
                  std::string_view key, bool &out) const;
  template <typename T>
  Status readChoice(const Json &obj, const std::string &prefix,
                    std::string_view key, std::string_view noun,
                    const std::vector<std::pair<std::string_view, T>> &choices,
                    T &out) const;
  Status checkHfKeys(const Json &obj, const std::string &prefix) const;
  Status readModel(const Json &obj, const std::string &prefix,
                   ModelShape &m) const;
  Status readTrain(const Json &obj, const ModelShape &m, TrainConfig &t) const;
  Status readBetas(const Json &obj, TrainConfig &t) const;
  Status readHalo(const Json &obj, HaloConfig &h) const;
  Status readMatmuls(const Json &obj, MatmulTable &table) const;

  std::string displayName_;
  bool hfForm_ = false;
};

Status Parser::checkKeys(const Json &obj, const std::string &path,
                         const KeyList &known, std::string_view section) const {
  bool isModel = section == "model";
  KeyList accepted = known;
  if (isModel) {
    accepted.insert(accepted.end(), kHfCheckedKeys.begin(),
                    kHfCheckedKeys.end());
    accepted.insert(accepted.end(), kHfIgnoredKeys.begin(),
                    kHfIgnoredKeys.end());
  }
  for (const auto &item : obj.items()) {
    const std::string &key = item.key();
    if (contains(accepted, key))
      continue;
    std::string keyPath = join(path, key);
    if (std::optional<std::string_view> s = suggest(key, accepted))
      return fail(keyPath,
                  fmt::format("unknown key (did you mean \"{}\"?)", *s));
    const std::pair<std::string_view, const KeyList *> sections[] = {
        {"model", &kModelKeys}, {"train", &kTrainKeys}, {"halo", &kHaloKeys}};
    for (const auto &[other, keys] : sections) {
      if (other == section || !contains(*keys, key))
        continue;
      std::string hint = fmt::format("it belongs in the \"{}\" section", other);
      if (hfForm_)
        hint += "; put the model fields under \"model\" to add one";
      return fail(keyPath, fmt::format("unknown key ({})", hint));
    }
    return fail(keyPath,
                fmt::format("unknown key (valid keys: {})", quoted(known)));
  }
  return Status::success();
}

Status Parser::expectObject(const Json &v, const std::string &path) const {
  if (v.is_object())
    return Status::success();
  return fail(path, "expected an object, got " + describeValue(v));
}

Status Parser::readInt(const Json &obj, const std::string &prefix,
                       std::string_view key, int64_t &out,
                       std::optional<int64_t> fallback, int64_t min,
                       int64_t max) const {
  std::string path = join(prefix, key);
  const Json *v = lookup(obj, key);
  if (!v) {
    if (!fallback)
      return fail(path, "missing required key");
    out = *fallback;
    return Status::success();
  }
  std::string_view kind =
      min >= 1 ? "a positive integer" : "a non-negative integer";
  std::optional<int64_t> n = asInteger(*v);
  if (!n || *n < min)
    return fail(path,
                fmt::format("expected {}, got {}", kind, describeValue(*v)));
  if (*n > max)
    return fail(path,
                fmt::format("{} is too large (at most {})", v->dump(), max));
  out = *n;
  return Status::success();
}

Status Parser::readNumber(const Json &obj, const std::string &prefix,
                          std::string_view key, double &out) const {
  const Json *v = lookup(obj, key);
  if (!v)
    return Status::success();
  if (!v->is_number() || !std::isfinite(v->get<double>()))
    return fail(join(prefix, key),
                "expected a number, got " + describeValue(*v));
  out = v->get<double>();
  return Status::success();
}

Status Parser::readPositive(const Json &obj, const std::string &prefix,
                            std::string_view key, double &out) const {
  HALO_RETURN_IF_ERROR(readNumber(obj, prefix, key, out));
  if (out <= 0)
    return fail(join(prefix, key),
                fmt::format("must be positive, got {}", out));
  return Status::success();
}

Status Parser::readNonNegative(const Json &obj, const std::string &prefix,
                               std::string_view key, double &out,
                               std::string_view note) const {
  HALO_RETURN_IF_ERROR(readNumber(obj, prefix, key, out));
  if (out < 0)
    return fail(join(prefix, key),
                fmt::format("must be non-negative{}, got {}", note, out));
  return Status::success();
}

Status Parser::readBool(const Json &obj, const std::string &prefix,
                        std::string_view key, bool &out) const {
  const Json *v = lookup(obj, key);
  if (!v)
    return Status::success();
  if (!v->is_boolean())
    return fail(join(prefix, key),
                "expected true or false, got " + describeValue(*v));
  out = v->get<bool>();
  return Status::success();
}

template <typename T>
Status
Parser::readChoice(const Json &obj, const std::string &prefix,
                   std::string_view key, std::string_view noun,
                   const std::vector<std::pair<std::string_view, T>> &choices,
                   T &out) const {
  const Json *v = lookup(obj, key);
  if (!v)
    return Status::success();
  KeyList names;
  for (const auto &choice : choices)
    names.push_back(choice.first);
  std::string path = join(prefix, key);
  if (!v->is_string())
    return fail(path, fmt::format("expected one of {}, got {}", quoted(names),
                                  describeValue(*v)));
  std::string name = v->get<std::string>();
  for (const auto &[choiceName, value] : choices) {
    if (choiceName == name) {
      out = value;
      return Status::success();
    }
  }
  std::optional<std::string_view> s = suggest(name, names);
  return fail(
      path, fmt::format("unknown {} \"{}\"{}; valid choices are {}", noun, name,
                        s ? fmt::format(" (did you mean \"{}\"?)", *s) : "",
                        quoted(names)));
}

Status Parser::checkHfKeys(const Json &obj, const std::string &prefix) const {
  auto unsupported = [&](std::string_view key, const Json &v,
                         std::string_view why) {
    return fail(join(prefix, key),
                fmt::format("unsupported: {} {}; {}", key, shortDump(v), why));
  };
  if (const Json *v = lookup(obj, "model_type"); v && *v != "llama")
    return unsupported("model_type", *v,
                       "halo implements the LLaMA architecture (\"llama\")");
  if (const Json *v = lookup(obj, "hidden_act"); v && *v != "silu")
    return unsupported("hidden_act", *v,
                       "halo implements LLaMA's SwiGLU MLP, which needs "
                       "\"silu\"");
  for (std::string_view key : {"attention_bias", "mlp_bias"})
    if (const Json *v = lookup(obj, key); v && *v != false)
      return unsupported(key, *v,
                         "halo's linear layers have no bias (must be false)");
  if (const Json *v = lookup(obj, "rope_scaling"))
    return unsupported("rope_scaling", *v,
                       "halo implements plain RoPE (rope_scaling must be "
                       "null)");
  if (const Json *v = lookup(obj, "attention_dropout");
      v && !(v->is_number() && v->get<double>() == 0))
    return unsupported("attention_dropout", *v,
                       "halo's attention has no dropout (must be 0)");
  if (const Json *v = lookup(obj, "rope_interleaved"); v && *v != false)
    return unsupported("rope_interleaved", *v,
                       "halo rotates the two halves of each head like HF "
                       "LLaMA (must be false)");
  return Status::success();
}

Status Parser::readModel(const Json &obj, const std::string &prefix,
                         ModelShape &m) const {
  HALO_RETURN_IF_ERROR(checkKeys(obj, prefix, kModelKeys, "model"));
  HALO_RETURN_IF_ERROR(checkHfKeys(obj, prefix));
  HALO_RETURN_IF_ERROR(
      readInt(obj, prefix, "hidden_size", m.hiddenSize, std::nullopt, 1));
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "intermediate_size",
                               m.intermediateSize, std::nullopt, 1));
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "num_hidden_layers",
                               m.numHiddenLayers, std::nullopt, 1));
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "num_attention_heads",
                               m.numAttentionHeads, std::nullopt, 1));
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "num_key_value_heads",
                               m.numKeyValueHeads, m.numAttentionHeads, 1));
  HALO_RETURN_IF_ERROR(
      readInt(obj, prefix, "vocab_size", m.vocabSize, std::nullopt, 1));
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "max_position_embeddings",
                               m.maxPositionEmbeddings, std::nullopt, 1));
  HALO_RETURN_IF_ERROR(readPositive(obj, prefix, "rms_norm_eps", m.rmsNormEps));
  HALO_RETURN_IF_ERROR(readPositive(obj, prefix, "rope_theta", m.ropeTheta));
  HALO_RETURN_IF_ERROR(
      readPositive(obj, prefix, "initializer_range", m.initializerRange));
  HALO_RETURN_IF_ERROR(
      readBool(obj, prefix, "tie_word_embeddings", m.tieWordEmbeddings));

  std::string headsPath = join(prefix, "num_attention_heads");
  bool explicitHeadDim = lookup(obj, "head_dim") != nullptr;
  if (explicitHeadDim) {
    HALO_RETURN_IF_ERROR(
        readInt(obj, prefix, "head_dim", m.headDim, std::nullopt, 1));
  } else {
    if (m.hiddenSize % m.numAttentionHeads != 0)
      return fail(headsPath,
                  fmt::format("{} does not divide hidden_size {}; set "
                              "head_dim or change the head count",
                              m.numAttentionHeads, m.hiddenSize));
    m.headDim = m.hiddenSize / m.numAttentionHeads;
  }
  if (m.numAttentionHeads % m.numKeyValueHeads != 0)
    return fail(join(prefix, "num_key_value_heads"),
                fmt::format("{} does not divide num_attention_heads {}; "
                            "grouped-query attention shares each key/value "
                            "head among the same number of query heads",
                            m.numKeyValueHeads, m.numAttentionHeads));
  if (m.headDim % 2 != 0) {
    std::string_view why =
        "RoPE rotates pairs of dimensions, so head_dim must be even";
    if (explicitHeadDim)
      return fail(join(prefix, "head_dim"),
                  fmt::format("{} is odd; {}", m.headDim, why));
    return fail(headsPath,
                fmt::format("head_dim = hidden_size / num_attention_heads = "
                            "{} is odd; {}",
                            m.headDim, why));
  }
  return Status::success();
}

Status Parser::readBetas(const Json &obj, TrainConfig &t) const {
  const Json *v = lookup(obj, "betas");
  if (!v)
    return Status::success();
  if (!v->is_array() || v->size() != 2 || !(*v)[0].is_number() ||
      !(*v)[1].is_number())
    return fail("train.betas",
                "expected an array of two numbers [beta1, beta2], got " +
                    describeValue(*v));
  double betas[2] = {(*v)[0].get<double>(), (*v)[1].get<double>()};
  for (int i = 0; i < 2; ++i)
    if (!(betas[i] >= 0 && betas[i] < 1))
      return fail(fmt::format("train.betas[{}]", i),
                  fmt::format("must be in [0, 1), got {}", (*v)[i].dump()));
  t.beta1 = betas[0];
  t.beta2 = betas[1];
  return Status::success();
}

Status Parser::readTrain(const Json &obj, const ModelShape &m,
                         TrainConfig &t) const {
  const std::string prefix = "train";
  HALO_RETURN_IF_ERROR(checkKeys(obj, prefix, kTrainKeys, "train"));
  HALO_RETURN_IF_ERROR(
      readInt(obj, prefix, "batch_size", t.batchSize, t.batchSize, 1));
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "seq_len", t.seqLen, t.seqLen, 1));
  if (t.seqLen > m.maxPositionEmbeddings)
    return fail("train.seq_len",
                fmt::format("{} exceeds model.max_position_embeddings {}",
                            t.seqLen, m.maxPositionEmbeddings));
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "steps", t.steps, t.steps, 1));
  HALO_RETURN_IF_ERROR(readPositive(obj, prefix, "lr", t.lr));
  HALO_RETURN_IF_ERROR(
      readInt(obj, prefix, "warmup_steps", t.warmupSteps, t.warmupSteps, 0));
  if (t.warmupSteps > t.steps)
    return fail("train.warmup_steps", fmt::format("{} exceeds train.steps {}",
                                                  t.warmupSteps, t.steps));
  HALO_RETURN_IF_ERROR(
      readChoice<LrSchedule>(obj, prefix, "schedule", "schedule",
                             {{"constant", LrSchedule::Constant},
                              {"linear", LrSchedule::Linear},
                              {"cosine", LrSchedule::Cosine}},
                             t.schedule));
  HALO_RETURN_IF_ERROR(readBetas(obj, t));
  HALO_RETURN_IF_ERROR(readPositive(obj, prefix, "eps", t.eps));
  HALO_RETURN_IF_ERROR(
      readNonNegative(obj, prefix, "weight_decay", t.weightDecay));
  HALO_RETURN_IF_ERROR(readNonNegative(obj, prefix, "grad_clip", t.gradClip,
                                       " (0 disables clipping)"));
  HALO_RETURN_IF_ERROR(readChoice<StateType>(
      obj, prefix, "moment_dtype", "moment dtype",
      {{"f32", StateType::F32}, {"bf16", StateType::BF16}}, t.momentDtype));
  HALO_RETURN_IF_ERROR(readChoice<StateType>(
      obj, prefix, "master_dtype", "master weight dtype",
      {{"f32", StateType::F32}, {"bf16", StateType::BF16}}, t.masterDtype));
  int64_t seed = 0;
  HALO_RETURN_IF_ERROR(readInt(obj, prefix, "seed", seed, 0, 0,
                               std::numeric_limits<int64_t>::max()));
  t.seed = static_cast<uint64_t>(seed);
  return Status::success();
}

Status Parser::readMatmuls(const Json &obj, MatmulTable &table) const {
  const std::string prefix = "halo.matmuls";
  HALO_RETURN_IF_ERROR(expectObject(obj, prefix));
  HALO_RETURN_IF_ERROR(checkKeys(obj, prefix, kMatmulKeys, "matmuls"));
  for (size_t i = 0; i < kOperandSlots.size(); i += 2) {
    std::string_view matmulKey = kOperandSlots[i].matmulKey;
    const Json *matmul = lookup(obj, matmulKey);
    if (!matmul)
      continue;
    std::string matmulPath = join(prefix, matmulKey);
    HALO_RETURN_IF_ERROR(expectObject(*matmul, matmulPath));
    HALO_RETURN_IF_ERROR(checkKeys(
        *matmul, matmulPath,
        {kOperandSlots[i].operandKey, kOperandSlots[i + 1].operandKey},
        "matmul"));
    for (size_t slot : {i, i + 1}) {
      const Json *operand = lookup(*matmul, kOperandSlots[slot].operandKey);
      if (!operand)
        continue;
      std::string path = join(matmulPath, kOperandSlots[slot].operandKey);
      HALO_RETURN_IF_ERROR(expectObject(*operand, path));
      HALO_RETURN_IF_ERROR(
          checkKeys(*operand, path, kOperandFieldKeys, "operand"));
      OperandScheme &scheme = schemeAt(table, slot);
      HALO_RETURN_IF_ERROR(
          readChoice<HadamardSide>(*operand, path, "hadamard", "hadamard side",
                                   {{"none", HadamardSide::None},
                                    {"left", HadamardSide::Left},
                                    {"right", HadamardSide::Right}},
                                   scheme.hadamard));
      HALO_RETURN_IF_ERROR(
          readChoice<QuantGranularity>(*operand, path, "quant", "quantization",
                                       {{"none", QuantGranularity::None},
                                        {"tensor", QuantGranularity::Tensor},
                                        {"row", QuantGranularity::Row}},
                                       scheme.quant));
    }
  }
  return Status::success();
}

Status Parser::readHalo(const Json &obj, HaloConfig &h) const {
  HALO_RETURN_IF_ERROR(checkKeys(obj, "halo", kHaloKeys, "halo"));
  std::optional<int> level;
  if (const Json *v = lookup(obj, "level")) {
    std::optional<int64_t> n = asInteger(*v);
    if (!n)
      return fail("halo.level",
                  "expected a level 0, 1 or 2, got " + describeValue(*v));
    if (*n < 0 || *n > kMaxLevel)
      return fail(
          "halo.level",
          fmt::format("unknown level {}; valid levels are 0, 1, 2", v->dump()));
    level = static_cast<int>(*n);
  }
  HALO_RETURN_IF_ERROR(readChoice<Precision>(obj, "halo", "precision",
                                             "precision",
                                             {{"fp8", Precision::FP8},
                                              {"int8", Precision::INT8},
                                              {"bf16", Precision::BF16}},
                                             h.precision));
  const Json *matmuls = lookup(obj, "matmuls");
  if (!matmuls) {
    h.level = level.value_or(kDefaultLevel);
    h.matmuls = presetTable(*h.level, h.precision);
    return Status::success();
  }
  // With a level the table overrides the preset entry by entry; without
  // one, entries not given are unrotated and unquantized.
  h.level = level;
  h.matmuls = level ? presetTable(*level, h.precision) : MatmulTable();
  HALO_RETURN_IF_ERROR(readMatmuls(*matmuls, h.matmuls));
  Status valid = validateMatmulTable(h.matmuls, h.precision);
  if (!valid.ok())
    return Status::error(displayName_ + ": " + valid.message());
  return Status::success();
}

StatusOr<ModelConfig> Parser::parse(const std::string &text) {
  DuplicateKeyFinder duplicates;
  Json root;
  try {
    root = Json::parse(text, [&](int, Json::parse_event_t event, Json &parsed) {
      duplicates.onEvent(event, parsed);
      return true;
    });
  } catch (const Json::parse_error &e) {
    // e.byte is the 1-based offset of the last character read.
    size_t end = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    size_t line = 1, column = 1;
    for (size_t i = 0; i < end; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    // Drop nlohmann's "[json.exception...] parse error at line L, column C: ".
    std::string reason = e.what();
    size_t at = reason.find("column ");
    at = reason.find(": ", at == std::string::npos ? 0 : at);
    if (at != std::string::npos)
      reason = reason.substr(at + 2);
    return Status::error(fmt::format("{}:{}:{}: malformed JSON: {}",
                                     displayName_, line, column, reason));
  } catch (const Json::exception &e) {
    // Out-of-range numbers such as 1e400 carry no position.
    std::string reason = e.what();
    size_t at = reason.find("] ");
    return Status::error(
        fmt::format("{}: malformed JSON: {}", displayName_,
                    at == std::string::npos ? reason : reason.substr(at + 2)));
  }
  if (duplicates.duplicate)
    return fail(*duplicates.duplicate,
                "duplicate key (JSON would keep only the last value; remove "
                "one)");
  if (!root.is_object())
    return fail("top level",
                "expected a JSON object, got " + describeValue(root));

  ModelConfig config;
  hfForm_ = !root.contains("model") && !root.contains("train") &&
            !root.contains("halo");
  if (hfForm_) {
    // A plain HF config.json is the model section; train/halo take defaults.
    HALO_RETURN_IF_ERROR(readModel(root, "", config.model));
  } else {
    HALO_RETURN_IF_ERROR(checkKeys(root, "", kTopKeys, ""));
    const Json *model = lookup(root, "model");
    if (!model)
      return fail("model", "missing required section (the model's shapes: "
                           "hidden_size, num_hidden_layers, ...)");
    HALO_RETURN_IF_ERROR(expectObject(*model, "model"));
    HALO_RETURN_IF_ERROR(readModel(*model, "model", config.model));
  }
  config.train.seqLen =
      std::min(kDefaultMaxSeqLen, config.model.maxPositionEmbeddings);
  if (const Json *train = lookup(root, "train")) {
    HALO_RETURN_IF_ERROR(expectObject(*train, "train"));
    HALO_RETURN_IF_ERROR(readTrain(*train, config.model, config.train));
  }
  if (const Json *halo = lookup(root, "halo")) {
    HALO_RETURN_IF_ERROR(expectObject(*halo, "halo"));
    HALO_RETURN_IF_ERROR(readHalo(*halo, config.halo));
  }
  return config;
}

} // namespace

StatusOr<ModelConfig> parseModelConfigString(const std::string &json,
                                             const std::string &displayName) {
  return Parser(displayName).parse(json);
}

StatusOr<ModelConfig> parseModelConfigFile(const std::string &path) {
  namespace fs = std::filesystem;
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    // An HF checkpoint folder: its config.json describes the model.
    file = (fs::path(path) / "config.json").string();
    if (!fs::exists(file, ec))
      return Status::error(fmt::format(
          "{}: is a directory without a config.json; pass a model file or an "
          "HF checkpoint folder",
          path));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in)
    return Status::error(fmt::format("{}: cannot read the model file: {}", file,
                                     std::strerror(errno)));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad())
    return Status::error(fmt::format("{}: cannot read the model file: {}", file,
                                     std::strerror(errno)));
  StatusOr<ModelConfig> config = parseModelConfigString(text, file);
  if (config.ok())
    config->sourcePath = file;
  return config;
}

} // namespace halo::frontend
