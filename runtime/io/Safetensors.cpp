//===- Safetensors.cpp - Checkpoint reader/writer (HF safetensors) --------===//
//
// The header is untrusted input: every JSON access is type-checked and every
// size product is overflow-checked before it is compared against the file.
// nlohmann's exceptions (parse errors, invalid UTF-8 on dump) are caught here
// and turned into Status; none escapes the API.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/Safetensors.h"

#include "runtime/io/AtomicFile.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace halo::io {

namespace {

using nlohmann::json;

constexpr const char *kReadHint =
    "the file is corrupt or not a safetensors checkpoint; re-save it with "
    "halo or HF safetensors";
constexpr const char *kWriteHint =
    "the old checkpoint, if any, is still valid; fix the cause and save again";
/// HF safetensors refuses headers above 100 MB; so do we, before parsing.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

constexpr DType kAllDTypes[] = {DType::F32, DType::BF16,   DType::F16,
                                DType::I32, DType::I64,    DType::U8,
                                DType::I8,  DType::F8_E4M3};

/// prod(shape), or nullopt on a negative dim or uint64 overflow.
std::optional<uint64_t> numelOf(const std::vector<int64_t> &shape) {
  if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; }))
    return std::nullopt;
  // A zero dim makes the product 0 even if the other dims would overflow.
  if (std::count(shape.begin(), shape.end(), 0) > 0)
    return 0;
  uint64_t n = 1;
  for (int64_t d : shape) {
    auto u = static_cast<uint64_t>(d);
    if (n > UINT64_MAX / u)
      return std::nullopt;
    n *= u;
  }
  return n;
}

std::string knownDTypes() {
  std::string s;
  for (DType t : kAllDTypes)
    s += (s.empty() ? "" : ", ") + std::string(dtypeName(t));
  return s;
}

std::string shapeStr(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

/// Parses one tensor entry; `where` is "<path>: tensor '<name>'".
StatusOr<TensorInfo> parseEntry(const std::string &where,
                                const std::string &name, const json &e,
                                uint64_t dataBytes) {
  auto bad = [&](const std::string &what) {
    return Status::error(
        fmt::format("{}: {}; hint: {}", where, what, kReadHint));
  };
  if (!e.is_object())
    return bad("entry is not a JSON object");
  auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string())
    return bad("missing string field \"dtype\"");
  std::optional<DType> dtype = parseDType(dt->get<std::string>());
  if (!dtype)
    return Status::error(fmt::format(
        "{}: unknown dtype \"{}\" (known: {}); hint: convert the tensor to a "
        "supported dtype before saving",
        where, dt->get<std::string>(), knownDTypes()));
  auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array())
    return bad("missing array field \"shape\"");
  std::vector<int64_t> shape;
  for (const json &d : *sh) {
    // nlohmann types non-negative JSON integers as unsigned.
    if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(INT64_MAX))
      return bad(fmt::format("shape {} has a dim that is not an integer in "
                             "[0, 2^63)",
                             sh->dump()));
    shape.push_back(d.get<int64_t>());
  }
  auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 ||
      !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    return bad("\"data_offsets\" is not a pair of non-negative integers");
  uint64_t begin = (*off)[0].get<uint64_t>();
  uint64_t end = (*off)[1].get<uint64_t>();
  if (begin > end || end > dataBytes)
    return bad(fmt::format("data_offsets [{}, {}) lie outside the {}-byte "
                           "data section",
                           begin, end, dataBytes));
  std::optional<uint64_t> numel = numelOf(shape);
  uint64_t elt = dtypeSize(*dtype);
  if (!numel || *numel > UINT64_MAX / elt)
    return bad(fmt::format("shape {} overflows 64-bit sizes", shapeStr(shape)));
  if (end - begin != *numel * elt)
    return bad(fmt::format("size mismatch: data_offsets [{}, {}) span {} bytes "
                           "but shape {} x {} needs {} bytes",
                           begin, end, end - begin, shapeStr(shape),
                           dtypeName(*dtype), *numel * elt));
  return TensorInfo{name, *dtype, std::move(shape), *numel, begin, end - begin};
}

} // namespace

uint64_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::I64:
    return 8;
  case DType::U8:
  case DType::I8:
  case DType::F8_E4M3:
    return 1;
  }
  return 0;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "F32";
  case DType::BF16:
    return "BF16";
  case DType::F16:
    return "F16";
  case DType::I32:
    return "I32";
  case DType::I64:
    return "I64";
  case DType::U8:
    return "U8";
  case DType::I8:
    return "I8";
  case DType::F8_E4M3:
    return "F8_E4M3";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view name) {
  for (DType t : kAllDTypes)
    if (name == dtypeName(t))
      return t;
  return std::nullopt;
}

float bf16ToFloat(uint16_t bits) {
  uint32_t u = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

float f16ToFloat(uint16_t bits) {
  uint32_t sign = uint32_t(bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1Fu;
  uint32_t mant = bits & 0x3FFu;
  uint32_t u;
  if (exp == 0x1F) {
    u = sign | 0x7F800000u | mant << 13; // inf, or NaN keeping its payload
  } else if (exp != 0) {
    u = sign | (exp + (127 - 15)) << 23 | mant << 13; // rebias 15 -> 127
  } else {
    // Zero or subnormal: mant * 2^-24, exactly representable in float.
    float mag = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -mag : mag;
  }
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

StatusOr<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  auto mapped = MappedFile::open(path, "check the checkpoint path");
  if (!mapped.ok())
    return mapped.status();
  SafetensorsFile f;
  f.file_ = *mapped;
  uint64_t fileSize = f.file_->size();
  const uint8_t *base = f.file_->data();
  if (fileSize < 8)
    return Status::error(fmt::format(
        "{}: file is {} bytes, too short for the 8-byte header length; hint: "
        "{}",
        path, fileSize, kReadHint));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= uint64_t(base[i]) << (8 * i);
  if (n > fileSize - 8 || n > kMaxHeaderBytes)
    return Status::error(fmt::format(
        "{}: header length {} exceeds the {} bytes after the 8-byte prefix "
        "(limit {}): truncated or not a safetensors file; hint: {}",
        path, n, fileSize - 8, kMaxHeaderBytes, kReadHint));
  uint64_t dataBytes = fileSize - 8 - n;
  f.dataSection_ = base + 8 + n;

  json header;
  try {
    header = json::parse(base + 8, base + 8 + n);
  } catch (const json::exception &e) {
    return Status::error(fmt::format("{}: malformed JSON header: {}; hint: {}",
                                     path, e.what(), kReadHint));
  }
  if (!header.is_object())
    return Status::error(
        fmt::format("{}: JSON header is a {}, not an object; hint: {}", path,
                    header.type_name(), kReadHint));

  for (const auto &[name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        return Status::error(
            fmt::format("{}: \"__metadata__\" is not a JSON object; hint: {}",
                        path, kReadHint));
      for (const auto &[key, value] : entry.items()) {
        if (!value.is_string())
          return Status::error(
              fmt::format("{}: metadata \"{}\" is a {}, not a string; hint: {}",
                          path, key, value.type_name(), kReadHint));
        f.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    auto info = parseEntry(fmt::format("{}: tensor '{}'", path, name), name,
                           entry, dataBytes);
    if (!info.ok())
      return info.status();
    f.tensors_.push_back(std::move(*info));
  }

  // Overlap check in offset order; empty tensors occupy no bytes.
  std::vector<const TensorInfo *> byOffset;
  for (const TensorInfo &t : f.tensors_)
    if (t.bytes > 0)
      byOffset.push_back(&t);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const TensorInfo *a, const TensorInfo *b) {
              return a->offset < b->offset;
            });
  for (size_t i = 1; i < byOffset.size(); ++i) {
    const TensorInfo &a = *byOffset[i - 1], &b = *byOffset[i];
    if (b.offset < a.offset + a.bytes)
      return Status::error(fmt::format(
          "{}: tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {}); hint: {}",
          path, b.name, b.offset, b.offset + b.bytes, a.name, a.offset,
          a.offset + a.bytes, kReadHint));
  }
  std::sort(
      f.tensors_.begin(), f.tensors_.end(),
      [](const TensorInfo &a, const TensorInfo &b) { return a.name < b.name; });
  return f;
}

const TensorInfo *SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(
      tensors_.begin(), tensors_.end(), name,
      [](const TensorInfo &t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

StatusOr<const TensorInfo *> SafetensorsFile::get(std::string_view name) const {
  if (const TensorInfo *t = find(name))
    return t;
  return Status::error(fmt::format(
      "{}: no tensor named '{}' ({} tensors in file); hint: check that the "
      "checkpoint matches the model config",
      path(), name, tensors_.size()));
}

Status SafetensorsFile::toFloat(const TensorInfo &t, float *out) const {
  const uint8_t *p = bytes(t);
  switch (t.dtype) {
  case DType::F32:
    std::memcpy(out, p, t.bytes);
    return Status::success();
  case DType::BF16:
  case DType::F16:
    for (uint64_t i = 0; i < t.numel; ++i) {
      auto bits = static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
      out[i] = t.dtype == DType::BF16 ? bf16ToFloat(bits) : f16ToFloat(bits);
    }
    return Status::success();
  default:
    return Status::error(fmt::format(
        "{}: tensor '{}' has dtype {}; only F32, BF16 and F16 convert to "
        "float; hint: read its raw bytes() instead",
        path(), t.name, dtypeName(t.dtype)));
  }
}

StatusOr<std::vector<float>>
SafetensorsFile::toFloat(std::string_view name) const {
  auto t = get(name);
  if (!t.ok())
    return t.status();
  std::vector<float> out((*t)->numel);
  HALO_RETURN_IF_ERROR(toFloat(**t, out.data()));
  return out;
}

Status writeSafetensors(const std::string &path,
                        const std::vector<TensorBytes> &tensors,
                        const SafetensorsMetadata &metadata) {
  std::vector<const TensorBytes *> sorted;
  for (const TensorBytes &t : tensors)
    sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorBytes *a, const TensorBytes *b) {
              return a->name < b->name;
            });

  json header = json::object();
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const TensorBytes &t = *sorted[i];
    auto bad = [&](const std::string &what, const std::string &hint) {
      return Status::error(fmt::format("{}: tensor '{}': {}; hint: {}", path,
                                       t.name, what, hint));
    };
    if (t.name.empty() || t.name == "__metadata__")
      return bad("reserved or empty name", "rename the tensor");
    if (i > 0 && sorted[i - 1]->name == t.name)
      return bad("name appears twice", "give every tensor a unique name");
    std::optional<uint64_t> numel = numelOf(t.shape);
    if (!numel || *numel > UINT64_MAX / dtypeSize(t.dtype))
      return bad(
          fmt::format("shape {} is negative or overflows", shapeStr(t.shape)),
          "pass non-negative dims");
    if (*numel * dtypeSize(t.dtype) != t.bytes)
      return bad(fmt::format("{} bytes given but shape {} x {} needs {}",
                             t.bytes, shapeStr(t.shape), dtypeName(t.dtype),
                             *numel * dtypeSize(t.dtype)),
                 "pass exactly numel * dtype size bytes");
    if (t.bytes > 0 && !t.data)
      return bad("data is null", "pass the tensor's host bytes");
    header[t.name] = {{"dtype", dtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
  }
  // HF writes no "__metadata__" key when there is none; match it.
  if (!metadata.empty())
    header["__metadata__"] = metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception &e) {
    return Status::error(fmt::format(
        "{}: cannot encode the header: {}; hint: tensor names and metadata "
        "must be valid UTF-8",
        path, e.what()));
  }
  // Pad with spaces (valid JSON whitespace) so the data section starts
  // 8-byte aligned, as HF's writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<uint8_t>(uint64_t(text.size()) >> (8 * i));

  auto writer = AtomicFileWriter::create(path, kWriteHint);
  if (!writer.ok())
    return writer.status();
  HALO_RETURN_IF_ERROR(writer->write(prefix, sizeof(prefix)));
  HALO_RETURN_IF_ERROR(writer->write(text.data(), text.size()));
  for (const TensorBytes *t : sorted)
    HALO_RETURN_IF_ERROR(writer->write(t->data, t->bytes));
  return writer->commit();
}

} // namespace halo::io
