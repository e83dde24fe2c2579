//===- GemmTuneCache.cpp - Persisted cuBLASLt algorithm choices -----------===//
#include "runtime/cuda/blas/GemmTuneCache.h"

#include "runtime/cuda/KernelCache.h"
#include "runtime/cuda/Sha256.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <sstream>
#include <tuple>

namespace halo::cuda {
namespace {

constexpr std::string_view kHeader = "halo-gemm-tune 1";

auto tie(const LtAlgoConfig &c) {
  return std::tie(c.algoId, c.tileId, c.stagesId, c.splitK, c.reduction,
                  c.swizzle, c.customOption, c.innerShapeId, c.clusterShapeId);
}

} // namespace

bool LtAlgoConfig::operator==(const LtAlgoConfig &other) const {
  return tie(*this) == tie(other);
}

std::string LtAlgoConfig::text() const {
  return fmt::format("algo={} tile={} stages={} splitk={} reduction={} "
                     "swizzle={} custom={} inner={} cluster={}",
                     algoId, tileId, stagesId, splitK, reduction, swizzle,
                     customOption, innerShapeId, clusterShapeId);
}

std::string gemmTuneKeyText(const GemmTuneKey &k) {
  const GemmDesc &d = k.desc;
  return fmt::format(
      "device={}|sm_{}{}|sms={}|cublasLt={}|{}x{}->{} M={} N={} K={} "
      "transA={} transB={} scales={}/{} accumulate={} fastAccum={}|plan={}|"
      "align={}/{}/{}|workspace={}",
      k.deviceName, k.ccMajor, k.ccMinor, k.smCount, k.ltVersion,
      gemmTypeName(d.aType), gemmTypeName(d.bType), gemmTypeName(d.outType),
      d.M, d.N, d.K, int(d.transA), int(d.transB),
      scaleModeName(d.scaleA, false), scaleModeName(d.scaleB, true),
      int(d.accumulate), int(d.fastAccum), k.plan, k.alignA, k.alignB, k.alignC,
      k.workspaceBytes);
}

std::string formatGemmTuneRecord(const GemmTuneRecord &r) {
  const LtAlgoConfig &a = r.algo;
  return fmt::format("{}\nkey {}\nalgo {} {} {} {} {} {} {} {} {}\n"
                     "candidate {} {}\nms {:.6f} {:.6f}\n",
                     kHeader, r.key, a.algoId, a.tileId, a.stagesId, a.splitK,
                     a.reduction, a.swizzle, a.customOption, a.innerShapeId,
                     a.clusterShapeId, r.candidate, r.candidates, r.ms,
                     r.heuristicMs);
}

StatusOr<GemmTuneRecord> parseGemmTuneRecord(std::string_view payload) {
  std::istringstream in{std::string(payload)};
  std::string line;
  if (!std::getline(in, line) || line != kHeader)
    return Status::error(fmt::format("not a '{}' record (first line '{}')",
                                     kHeader, line.substr(0, 40)));
  GemmTuneRecord r;
  // Each remaining line: a fixed tag, then values that must parse fully.
  auto fields = [&](const char *tag, auto &...values) -> Status {
    std::string text;
    if (!std::getline(in, text))
      return Status::error(fmt::format("missing '{}' line", tag));
    std::istringstream fieldsIn(text);
    std::string got;
    fieldsIn >> got;
    (fieldsIn >> ... >> values);
    if (got != tag || fieldsIn.fail() || !(fieldsIn >> std::ws).eof())
      return Status::error(
          fmt::format("malformed '{}' line '{}'", tag, text.substr(0, 80)));
    return Status::success();
  };
  if (!std::getline(in, line) || line.compare(0, 4, "key ") != 0 ||
      line.size() == 4)
    return Status::error("missing 'key' line");
  r.key = line.substr(4);
  LtAlgoConfig &a = r.algo;
  HALO_RETURN_IF_ERROR(fields("algo", a.algoId, a.tileId, a.stagesId, a.splitK,
                              a.reduction, a.swizzle, a.customOption,
                              a.innerShapeId, a.clusterShapeId));
  HALO_RETURN_IF_ERROR(fields("candidate", r.candidate, r.candidates));
  HALO_RETURN_IF_ERROR(fields("ms", r.ms, r.heuristicMs));
  if (r.candidate < 0 || r.candidates < 1 || a.algoId < 0 || !(r.ms > 0) ||
      !(r.heuristicMs > 0))
    return Status::error(fmt::format("implausible values: candidate {} of "
                                     "{}, algo {}, {} / {} ms",
                                     r.candidate, r.candidates, a.algoId, r.ms,
                                     r.heuristicMs));
  if (std::getline(in, line))
    return Status::error(
        fmt::format("unexpected line '{}'", line.substr(0, 80)));
  return r;
}

StatusOr<GemmAutotune> parseAutotuneSetting(const char *value,
                                            GemmAutotune fallback) {
  if (!value || !*value)
    return fallback;
  for (const char *off : {"0", "off", "false"})
    if (std::strcmp(value, off) == 0)
      return GemmAutotune::Off;
  if (std::strcmp(value, "int8") == 0)
    return GemmAutotune::Int8;
  for (const char *all : {"1", "on", "true", "all"})
    if (std::strcmp(value, all) == 0)
      return GemmAutotune::All;
  return Status::error(fmt::format("HALO_GEMM_AUTOTUNE='{}': expected "
                                   "0/off/false, int8, or 1/on/true/all",
                                   value));
}

GemmTuneCache::GemmTuneCache(std::string directory)
    : directory_(std::move(directory)) {}

std::string GemmTuneCache::entryPath(const std::string &key) const {
  return KernelCache(directory_).entryPath(sha256(key));
}

std::optional<GemmTuneRecord>
GemmTuneCache::lookup(const std::string &key, std::string *warning) const {
  warning->clear();
  std::string path = entryPath(key);
  std::error_code error;
  if (!std::filesystem::exists(path, error))
    return std::nullopt;
  std::optional<std::string> payload =
      KernelCache(directory_).lookup(sha256(key));
  if (!payload) {
    *warning = fmt::format("ignoring corrupt GEMM tuning entry {} (failed "
                           "its header or checksum)",
                           path);
    return std::nullopt;
  }
  StatusOr<GemmTuneRecord> record = parseGemmTuneRecord(*payload);
  if (!record.ok()) {
    *warning = fmt::format("ignoring unreadable GEMM tuning entry {}: {}", path,
                           record.status().message());
    return std::nullopt;
  }
  if (record->key != key) {
    *warning = fmt::format("ignoring GEMM tuning entry {}: stored for "
                           "another problem ({})",
                           path, record->key);
    return std::nullopt;
  }
  return std::move(*record);
}

Status GemmTuneCache::store(const GemmTuneRecord &record) const {
  return KernelCache(directory_)
      .store(sha256(record.key), formatGemmTuneRecord(record));
}

} // namespace halo::cuda
