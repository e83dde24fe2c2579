//===- TokenDataset.cpp - Memory-mapped token files and batches -----------===//
//
// Header words are decoded byte by byte, so the format is little-endian on
// any host. Size arithmetic is done in uint64 with explicit overflow checks
// because the count comes from an untrusted file.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/TokenDataset.h"

#include "runtime/io/AtomicFile.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace halo::io {

namespace {

constexpr const char *kMakeHint =
    "create one with scripts/make_dataset.py (see docs/formats.md)";
/// Ids must fit the int32 inputs/targets of fillBatch.
constexpr uint64_t kMaxVocab4 = uint64_t(1) << 31;
constexpr uint64_t kMaxVocab2 = uint64_t(1) << 16;

uint32_t le32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
         uint32_t(p[3]) << 24;
}

void putLe32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

/// Empty if `vocab` is a legal vocab size for `width`-byte tokens.
std::string vocabProblem(uint32_t width, uint64_t vocab) {
  uint64_t max = width == 2 ? kMaxVocab2 : kMaxVocab4;
  if (vocab >= 1 && vocab <= max)
    return "";
  return fmt::format("vocab size {} is outside [1, {}] for {}-byte tokens",
                     vocab, max, width);
}

} // namespace

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t windowStart(uint64_t seed, uint64_t step, int64_t batch,
                     int64_t sample, uint64_t numStarts) {
  uint64_t key =
      step * static_cast<uint64_t>(batch) + static_cast<uint64_t>(sample);
  return splitmix64(seed ^ splitmix64(key)) % numStarts;
}

Status TokenSpan::fillBatch(int64_t batch, int64_t seq, uint64_t seed,
                            uint64_t step, int32_t *inputs,
                            int32_t *targets) const {
  if (batch <= 0 || seq <= 0)
    return Status::error(fmt::format(
        "{}: batch {} x seq {} is not a positive shape; hint: set batch_size "
        "and seq_len >= 1",
        name_, batch, seq));
  if (size_ < static_cast<uint64_t>(seq) + 1)
    return Status::error(fmt::format(
        "{}: {} tokens cannot hold one window of seq+1 = {} tokens; hint: use "
        "a shorter seq_len, a smaller held-out fraction, or a bigger dataset",
        name_, size_, seq + 1));
  uint64_t numStarts = size_ - static_cast<uint64_t>(seq);
  for (int64_t b = 0; b < batch; ++b) {
    uint64_t start = windowStart(seed, step, batch, b, numStarts);
    int32_t *in = inputs + b * seq;
    int32_t *tgt = targets + b * seq;
    for (int64_t t = 0; t <= seq; ++t) {
      uint32_t id = token(start + t);
      if (id >= vocab_) {
        uint64_t spanBegin =
            static_cast<uint64_t>(tokens_ - file_->data() - kTokenHeaderBytes) /
            width_;
        return Status::error(fmt::format(
            "{}: token id {} at position {} is >= the declared vocab size {}; "
            "hint: the file is corrupt; regenerate it with "
            "scripts/make_dataset.py",
            name_, id, spanBegin + start + t, vocab_));
      }
      if (t < seq)
        in[t] = static_cast<int32_t>(id);
      if (t > 0)
        tgt[t - 1] = static_cast<int32_t>(id);
    }
  }
  return Status::success();
}

StatusOr<TokenDataset> TokenDataset::open(const std::string &path) {
  auto mapped = MappedFile::open(path, kMakeHint);
  if (!mapped.ok())
    return mapped.status();
  std::shared_ptr<const MappedFile> file = *mapped;
  uint64_t fileSize = file->size();
  if (fileSize < kTokenHeaderBytes)
    return Status::error(fmt::format(
        "{}: file is {} bytes, shorter than the {}-byte header: not a halo "
        "token file; hint: {}",
        path, fileSize, kTokenHeaderBytes, kMakeHint));
  const uint8_t *h = file->data();
  uint32_t magic = le32(h);
  if (magic != kTokenMagic)
    return Status::error(fmt::format(
        "{}: bad magic 0x{:08X} (expected 0x{:08X}): not a halo token file; "
        "hint: {}",
        path, magic, kTokenMagic, kMakeHint));
  uint32_t version = le32(h + 4);
  if (version != kTokenVersion)
    return Status::error(fmt::format(
        "{}: unsupported version {} (this build reads version {}); hint: "
        "regenerate the file with this checkout's scripts/make_dataset.py",
        path, version, kTokenVersion));
  uint32_t width = le32(h + 8);
  if (width != 2 && width != 4)
    return Status::error(fmt::format(
        "{}: bad token width {} bytes (expected 2 or 4); hint: the header is "
        "corrupt; {}",
        path, width, kMakeHint));
  uint64_t count = uint64_t(le32(h + 12)) | uint64_t(le32(h + 16)) << 32;
  uint32_t vocab = le32(h + 20);
  if (std::string why = vocabProblem(width, vocab); !why.empty())
    return Status::error(fmt::format("{}: {}; hint: the header is corrupt; {}",
                                     path, why, kMakeHint));
  for (uint64_t w = 6; w < kTokenHeaderBytes / 4; ++w)
    if (uint32_t v = le32(h + 4 * w); v != 0)
      return Status::error(fmt::format(
          "{}: reserved header word {} is 0x{:08X}, expected 0; hint: the "
          "header is corrupt or from a newer writer; {}",
          path, w, v, kMakeHint));
  uint64_t payload = fileSize - kTokenHeaderBytes;
  if (count > payload / width || count * width != payload) {
    std::string expected =
        count > (UINT64_MAX - kTokenHeaderBytes) / width
            ? std::string("more than 2^64")
            : std::to_string(kTokenHeaderBytes + count * width);
    return Status::error(fmt::format(
        "{}: file is {} bytes but the header promises {} tokens x {} bytes + "
        "{}-byte header = {} bytes: the file is {}; hint: regenerate it, or "
        "re-copy it if a transfer was cut short",
        path, fileSize, count, width, kTokenHeaderBytes, expected,
        count > payload / width ? "truncated" : "oversized"));
  }
  TokenSpan all;
  all.file_ = file;
  all.name_ = path;
  all.tokens_ = h + kTokenHeaderBytes;
  all.size_ = count;
  all.width_ = width;
  all.vocab_ = vocab;
  return TokenDataset(std::move(all));
}

Status TokenDataset::validateVocab(uint32_t vocabSize) const {
  for (uint64_t i = 0; i < size(); ++i)
    if (uint32_t id = token(i); id >= vocabSize)
      return Status::error(fmt::format(
          "{}: token id {} at position {} is >= the model's vocab size {}; "
          "hint: use a model with vocab_size > {}, or re-tokenize the data "
          "for this vocabulary",
          path(), id, i, vocabSize, id));
  return Status::success();
}

StatusOr<TokenSplit> TokenDataset::split(double heldOutFraction) const {
  if (!(heldOutFraction >= 0.0 && heldOutFraction < 1.0))
    return Status::error(fmt::format(
        "{}: held-out fraction {} is outside [0, 1); hint: use e.g. 0.1 to "
        "keep the last 10% of tokens for validation",
        path(), heldOutFraction));
  auto heldOut = static_cast<uint64_t>(
      std::floor(static_cast<double>(size()) * heldOutFraction));
  TokenSplit s{all_, all_};
  s.train.name_ = path() + " [train]";
  s.train.size_ = size() - heldOut;
  s.validation.name_ = path() + " [validation]";
  s.validation.tokens_ += s.train.size_ * all_.width_;
  s.validation.size_ = heldOut;
  return s;
}

Status writeTokenDataset(const std::string &path,
                         const std::vector<uint32_t> &tokens, int width,
                         uint32_t vocabSize) {
  if (width != 2 && width != 4)
    return Status::error(fmt::format(
        "{}: token width {} is not 2 or 4 bytes; hint: use 2 for vocabularies "
        "up to 65536, else 4",
        path, width));
  auto w = static_cast<uint32_t>(width);
  if (std::string why = vocabProblem(w, vocabSize); !why.empty())
    return Status::error(fmt::format(
        "{}: {}; hint: use width 4 for vocabularies over 65536", path, why));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] >= vocabSize)
      return Status::error(fmt::format(
          "{}: token id {} at position {} is >= vocab size {}; hint: pass the "
          "tokenizer's full vocab size",
          path, tokens[i], i, vocabSize));

  auto writer = AtomicFileWriter::create(path, kMakeHint);
  if (!writer.ok())
    return writer.status();
  uint8_t header[kTokenHeaderBytes] = {};
  uint64_t count = tokens.size();
  putLe32(header, kTokenMagic);
  putLe32(header + 4, kTokenVersion);
  putLe32(header + 8, w);
  putLe32(header + 12, static_cast<uint32_t>(count));
  putLe32(header + 16, static_cast<uint32_t>(count >> 32));
  putLe32(header + 20, vocabSize);
  HALO_RETURN_IF_ERROR(writer->write(header, sizeof(header)));

  // Encode in fixed chunks: the byte image never needs a second full copy.
  constexpr size_t kChunk = 1 << 16;
  std::vector<uint8_t> buf(kChunk * w);
  for (size_t begin = 0; begin < tokens.size(); begin += kChunk) {
    size_t n = std::min(kChunk, tokens.size() - begin);
    for (size_t i = 0; i < n; ++i)
      for (uint32_t b = 0; b < w; ++b)
        buf[i * w + b] = static_cast<uint8_t>(tokens[begin + i] >> (8 * b));
    HALO_RETURN_IF_ERROR(writer->write(buf.data(), n * w));
  }
  return writer->commit();
}

} // namespace halo::io
