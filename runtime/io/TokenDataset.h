//===- TokenDataset.h - Memory-mapped token files and batches ---*- C++ -*-===//
//
// A token file is a 1024-byte header of 256 little-endian uint32 words
// (magic "HTOK", version, token width 2 or 4, 64-bit token count, vocab size,
// zeros) followed by the tokens; docs/formats.md is the byte-exact spec.
// open() checks the header and the exact file size in O(1); token ids are
// only checked by validateVocab() (a full scan) and, for the sampled windows,
// by fillBatch(), so a corrupt id can never reach an embedding lookup.
// Batches are a pure function of (seed, step, batch, seq, span): a resumed run
// replays the same data without saving any sampler state.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_IO_TOKENDATASET_H
#define HALO_RUNTIME_IO_TOKENDATASET_H

#include "halo/runtime/Status.h"
#include "runtime/io/MappedFile.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace halo::io {

/// Header word 0; the file's first four bytes read "HTOK".
inline constexpr uint32_t kTokenMagic = 0x4B4F5448;
inline constexpr uint32_t kTokenVersion = 1;
inline constexpr uint64_t kTokenHeaderBytes = 256 * 4;

/// The splitmix64 finalizer (Steele et al.), the sampler's only hash.
uint64_t splitmix64(uint64_t x);

/// First token of sample `sample` of the batch at `step`, in [0, numStarts):
///   splitmix64(seed ^ splitmix64(step * batch + sample)) % numStarts
/// with uint64 wrap-around arithmetic.
uint64_t windowStart(uint64_t seed, uint64_t step, int64_t batch,
                     int64_t sample, uint64_t numStarts);

/// A contiguous range of a token file. Holds the mapping alive, so it stays
/// valid after the TokenDataset it came from is gone.
class TokenSpan {
public:
  /// The file path, plus " [train]" / " [validation]" for split halves.
  const std::string &name() const { return name_; }
  uint64_t size() const { return size_; }
  /// Token `i` (requires i < size()).
  uint32_t token(uint64_t i) const {
    const uint8_t *p = tokens_ + i * width_;
    uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8;
    if (width_ == 4)
      v |= uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    return v;
  }

  /// Fills inputs[batch*seq] and targets[batch*seq] (row-major [b][t]) with
  /// `batch` windows of seq+1 tokens: sample b starts at
  /// s = windowStart(seed, step, batch, b, size() - seq), and
  /// inputs[b*seq+t] = token(s+t), targets[b*seq+t] = token(s+t+1).
  /// Fails if the span is shorter than seq+1 tokens or a sampled id is >= the
  /// file's declared vocab size.
  Status fillBatch(int64_t batch, int64_t seq, uint64_t seed, uint64_t step,
                   int32_t *inputs, int32_t *targets) const;

private:
  friend class TokenDataset;
  std::shared_ptr<const MappedFile> file_;
  std::string name_;
  const uint8_t *tokens_ = nullptr;
  uint64_t size_ = 0;
  uint32_t width_ = 2;
  uint32_t vocab_ = 0;
};

/// Train is the leading part of the file, validation the trailing part, so no
/// window of one overlaps the other.
struct TokenSplit {
  TokenSpan train;
  TokenSpan validation;
};

class TokenDataset {
public:
  /// Maps `path` and validates magic, version, width, vocab size, reserved
  /// words and the exact file size.
  static StatusOr<TokenDataset> open(const std::string &path);

  const std::string &path() const { return all_.file_->path(); }
  uint64_t size() const { return all_.size(); }
  uint32_t token(uint64_t i) const { return all_.token(i); }
  /// Bytes per token: 2 (uint16) or 4 (uint32).
  int tokenWidth() const { return static_cast<int>(all_.width_); }
  /// The vocab size declared in the header; every id should be below it.
  uint32_t vocabSize() const { return all_.vocab_; }

  /// Scans every token; fails naming the first id >= vocabSize and its
  /// position.
  Status validateVocab(uint32_t vocabSize) const;

  /// The whole file as one span.
  const TokenSpan &all() const { return all_; }
  /// The last floor(size() * heldOutFraction) tokens become validation, the
  /// rest train. heldOutFraction must lie in [0, 1).
  StatusOr<TokenSplit> split(double heldOutFraction) const;

  /// all().fillBatch(...).
  Status fillBatch(int64_t batch, int64_t seq, uint64_t seed, uint64_t step,
                   int32_t *inputs, int32_t *targets) const {
    return all_.fillBatch(batch, seq, seed, step, inputs, targets);
  }

private:
  explicit TokenDataset(TokenSpan all) : all_(std::move(all)) {}
  TokenSpan all_;
};

/// Writes `tokens` as a token file of `width` bytes per token (2 or 4) and
/// declared vocab `vocabSize`, atomically: "<path>.tmp", fsync, rename. Fails
/// (leaving any existing file untouched) if a token is >= vocabSize or the
/// vocab does not fit the width.
Status writeTokenDataset(const std::string &path,
                         const std::vector<uint32_t> &tokens, int width,
                         uint32_t vocabSize);

} // namespace halo::io

#endif // HALO_RUNTIME_IO_TOKENDATASET_H
