//===- TokenDatasetTest.cpp - Token file format, reader, sampler ----------===//
//
// Round trips for both widths, every header/size error the reader reports,
// the vocab scan, split(), and the batch sampler's determinism and formula.
// Corrupt files are made by patching a valid one, so each test changes
// exactly one thing. The shipped examples/data/tiny.bin is checked too, and
// that scripts/make_dataset.py regenerates it byte for byte.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/TokenDataset.h"

#include "IoTestUtil.h"

#include <cmath>
#include <limits>

namespace halo::io::test {
namespace {

using ::testing::HasSubstr;

class TokenDatasetTest : public IoTest {
protected:
  /// A valid file of `n` tokens i % 256 (width 2, vocab 256) at `name`.
  std::string makeFile(const std::string &name, uint32_t n) {
    std::vector<uint32_t> tokens(n);
    for (uint32_t i = 0; i < n; ++i)
      tokens[i] = i % 256;
    std::string p = path(name);
    Status s = writeTokenDataset(p, tokens, 2, 256);
    EXPECT_TRUE(s.ok()) << s.message();
    return p;
  }

  /// Sets header word `word` of the file at `p` to `value`.
  static void patchWord(const std::string &p, int word, uint32_t value) {
    std::vector<uint8_t> bytes = readBytes(p);
    for (int i = 0; i < 4; ++i)
      bytes[4 * word + i] = static_cast<uint8_t>(value >> (8 * i));
    writeBytes(p, bytes);
  }

  /// The error of opening `p`; fails the test if it opens.
  static std::string openError(const std::string &p) {
    auto ds = TokenDataset::open(p);
    EXPECT_FALSE(ds.ok());
    std::string msg = ds.status().message();
    EXPECT_THAT(msg, HasSubstr(p));
    EXPECT_THAT(msg, HasSubstr("hint:"));
    return msg;
  }
};

TEST_F(TokenDatasetTest, RoundTripWidth2) {
  std::vector<uint32_t> tokens = {0, 1, 255, 256, 40000, 65535, 7};
  std::string p = path("w2.bin");
  ASSERT_TRUE(writeTokenDataset(p, tokens, 2, 65536).ok());
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ(ds->size(), tokens.size());
  EXPECT_EQ(ds->tokenWidth(), 2);
  EXPECT_EQ(ds->vocabSize(), 65536u);
  for (size_t i = 0; i < tokens.size(); ++i)
    EXPECT_EQ(ds->token(i), tokens[i]) << i;
  EXPECT_TRUE(ds->validateVocab(65536).ok());
}

TEST_F(TokenDatasetTest, RoundTripWidth4) {
  std::vector<uint32_t> tokens = {0, 65536, 128255, 0x7FFFFFFF, 3};
  std::string p = path("w4.bin");
  ASSERT_TRUE(writeTokenDataset(p, tokens, 4, 0x80000000u).ok());
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ(ds->size(), tokens.size());
  EXPECT_EQ(ds->tokenWidth(), 4);
  EXPECT_EQ(ds->vocabSize(), 0x80000000u);
  for (size_t i = 0; i < tokens.size(); ++i)
    EXPECT_EQ(ds->token(i), tokens[i]) << i;
}

TEST_F(TokenDatasetTest, ByteLayoutMatchesSpec) {
  std::string p = path("layout.bin");
  ASSERT_TRUE(writeTokenDataset(p, {0x1234, 0xABCD}, 2, 65536).ok());
  std::vector<uint8_t> b = readBytes(p);
  ASSERT_EQ(b.size(), kTokenHeaderBytes + 4);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "HTOK");
  std::vector<uint8_t> words(b.begin() + 4, b.begin() + 24);
  EXPECT_EQ(words, (std::vector<uint8_t>{1, 0, 0, 0, 2, 0, 0, 0, 2, 0,
                                         0, 0, 0, 0, 0, 0, 0, 0, 1, 0}));
  for (size_t i = 24; i < kTokenHeaderBytes; ++i)
    ASSERT_EQ(b[i], 0) << "reserved byte " << i;
  EXPECT_EQ(b[1024], 0x34);
  EXPECT_EQ(b[1025], 0x12);
  EXPECT_EQ(b[1026], 0xCD);
  EXPECT_EQ(b[1027], 0xAB);
}

TEST_F(TokenDatasetTest, SpanOutlivesDataset) {
  std::string p = makeFile("a.bin", 10);
  TokenSpan span;
  {
    auto ds = TokenDataset::open(p);
    ASSERT_TRUE(ds.ok());
    span = ds->all();
  }
  EXPECT_EQ(span.size(), 10u);
  EXPECT_EQ(span.token(9), 9u);
}

TEST_F(TokenDatasetTest, MissingFile) {
  std::string msg = openError(path("nope.bin"));
  EXPECT_THAT(msg, HasSubstr("cannot open"));
}

TEST_F(TokenDatasetTest, ShorterThanHeader) {
  std::string p = path("short.bin");
  writeBytes(p, {'H', 'T', 'O', 'K'});
  EXPECT_THAT(openError(p), HasSubstr("file is 4 bytes"));
}

TEST_F(TokenDatasetTest, WrongMagic) {
  std::string p = makeFile("magic.bin", 8);
  patchWord(p, 0, 20240520); // llm.c's magic
  std::string msg = openError(p);
  EXPECT_THAT(msg, HasSubstr("bad magic 0x0134D888"));
  EXPECT_THAT(msg, HasSubstr("expected 0x4B4F5448"));
  EXPECT_THAT(msg, HasSubstr("scripts/make_dataset.py"));
}

TEST_F(TokenDatasetTest, WrongVersion) {
  std::string p = makeFile("version.bin", 8);
  patchWord(p, 1, 2);
  EXPECT_THAT(openError(p), HasSubstr("unsupported version 2"));
}

TEST_F(TokenDatasetTest, BadWidth) {
  std::string p = makeFile("width.bin", 8);
  patchWord(p, 2, 3);
  EXPECT_THAT(openError(p), HasSubstr("bad token width 3"));
}

TEST_F(TokenDatasetTest, BadHeaderVocab) {
  std::string p = makeFile("vocab0.bin", 8);
  patchWord(p, 5, 0);
  EXPECT_THAT(openError(p), HasSubstr("vocab size 0 is outside [1, 65536]"));
  patchWord(p, 5, 70000);
  EXPECT_THAT(openError(p), HasSubstr("vocab size 70000"));
}

TEST_F(TokenDatasetTest, NonzeroReservedWord) {
  std::string p = makeFile("reserved.bin", 8);
  patchWord(p, 255, 1);
  EXPECT_THAT(openError(p), HasSubstr("reserved header word 255"));
}

TEST_F(TokenDatasetTest, TruncatedFile) {
  std::string p = makeFile("trunc.bin", 100);
  std::vector<uint8_t> b = readBytes(p);
  b.resize(b.size() - 3);
  writeBytes(p, b);
  std::string msg = openError(p);
  EXPECT_THAT(msg, HasSubstr("file is 1221 bytes"));
  EXPECT_THAT(msg, HasSubstr("= 1224 bytes"));
  EXPECT_THAT(msg, HasSubstr("truncated"));
}

TEST_F(TokenDatasetTest, OversizedFile) {
  std::string p = makeFile("over.bin", 100);
  std::vector<uint8_t> b = readBytes(p);
  b.push_back(0);
  b.push_back(0);
  writeBytes(p, b);
  std::string msg = openError(p);
  EXPECT_THAT(msg, HasSubstr("file is 1226 bytes"));
  EXPECT_THAT(msg, HasSubstr("= 1224 bytes"));
  EXPECT_THAT(msg, HasSubstr("oversized"));
}

TEST_F(TokenDatasetTest, HugeCountDoesNotOverflow) {
  std::string p = makeFile("huge.bin", 4);
  patchWord(p, 3, 0xFFFFFFFF);
  patchWord(p, 4, 0xFFFFFFFF);
  std::string msg = openError(p);
  EXPECT_THAT(msg, HasSubstr("more than 2^64"));
  EXPECT_THAT(msg, HasSubstr("truncated"));
}

TEST_F(TokenDatasetTest, ValidateVocabNamesFirstBadToken) {
  std::string p = path("v.bin");
  ASSERT_TRUE(writeTokenDataset(p, {1, 2, 3, 4, 5, 300, 7, 400}, 2, 1000).ok());
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok());
  EXPECT_TRUE(ds->validateVocab(401).ok());
  Status s = ds->validateVocab(256);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("token id 300 at position 5"));
  EXPECT_THAT(s.message(), HasSubstr("vocab size 256"));
  EXPECT_THAT(s.message(), HasSubstr("hint:"));
}

TEST_F(TokenDatasetTest, WriterRejectsBadInput) {
  std::string p = path("bad.bin");
  Status s = writeTokenDataset(p, {1, 256}, 2, 256);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("token id 256 at position 1"));
  s = writeTokenDataset(p, {1}, 3, 256);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("width 3"));
  s = writeTokenDataset(p, {1}, 2, 70000);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("hint: use width 4"));
  EXPECT_FALSE(std::filesystem::exists(p));
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST_F(TokenDatasetTest, FailedWriteKeepsExistingFile) {
  std::string p = makeFile("keep.bin", 16);
  std::vector<uint8_t> before = readBytes(p);
  // A directory at the temp path makes creating it fail, even as root.
  std::filesystem::create_directory(p + ".tmp");
  Status s = writeTokenDataset(p, {1, 2, 3}, 2, 256);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("cannot create temp file"));
  EXPECT_EQ(readBytes(p), before);

  s = writeTokenDataset(path("no/such/dir/x.bin"), {1}, 2, 256);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("no/such/dir/x.bin"));
  EXPECT_THAT(s.message(), HasSubstr("hint:"));
}

TEST_F(TokenDatasetTest, Split) {
  std::string p = makeFile("split.bin", 1000);
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok());
  auto split = ds->split(0.1);
  ASSERT_TRUE(split.ok()) << split.status().message();
  EXPECT_EQ(split->train.size(), 900u);
  EXPECT_EQ(split->validation.size(), 100u);
  EXPECT_EQ(split->validation.token(0), ds->token(900));
  EXPECT_EQ(split->train.token(899), ds->token(899));
  EXPECT_THAT(split->train.name(), HasSubstr("[train]"));
  EXPECT_THAT(split->validation.name(), HasSubstr("[validation]"));

  auto none = ds->split(0.0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->train.size(), 1000u);
  EXPECT_EQ(none->validation.size(), 0u);

  for (double bad : {-0.1, 1.0, std::nan("")}) {
    auto s = ds->split(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_THAT(s.status().message(), HasSubstr("outside [0, 1)"));
  }
}

TEST(TokenSampler, Splitmix64MatchesReference) {
  // First output of the reference splitmix64 generator seeded with 0.
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(windowStart(7, 3, 4, 2, 1000),
            splitmix64(7 ^ splitmix64(3 * 4 + 2)) % 1000);
}

TEST_F(TokenDatasetTest, BatchTargetsAreInputsShiftedByOne) {
  // token(i) = i, so a window is consecutive integers from its start.
  std::vector<uint32_t> tokens(5000);
  for (uint32_t i = 0; i < tokens.size(); ++i)
    tokens[i] = i;
  std::string p = path("seq.bin");
  ASSERT_TRUE(writeTokenDataset(p, tokens, 2, 65536).ok());
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok());
  constexpr int64_t B = 4, S = 16;
  std::vector<int32_t> in(B * S), tgt(B * S);
  ASSERT_TRUE(ds->fillBatch(B, S, 42, 5, in.data(), tgt.data()).ok());
  for (int64_t b = 0; b < B; ++b) {
    uint64_t start = windowStart(42, 5, B, b, tokens.size() - S);
    for (int64_t t = 0; t < S; ++t) {
      EXPECT_EQ(in[b * S + t], static_cast<int32_t>(start + t));
      EXPECT_EQ(tgt[b * S + t], static_cast<int32_t>(start + t + 1));
    }
  }
}

TEST_F(TokenDatasetTest, BatchesAreDeterministicPerStep) {
  std::string p = makeFile("det.bin", 100000);
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok());
  constexpr int64_t B = 8, S = 32;
  auto batch = [&](uint64_t seed, uint64_t step) {
    std::vector<int32_t> in(B * S), tgt(B * S);
    Status s = ds->fillBatch(B, S, seed, step, in.data(), tgt.data());
    EXPECT_TRUE(s.ok()) << s.message();
    in.insert(in.end(), tgt.begin(), tgt.end());
    return in;
  };
  EXPECT_EQ(batch(1, 10), batch(1, 10));
  EXPECT_NE(batch(1, 10), batch(1, 11));
  EXPECT_NE(batch(1, 10), batch(2, 10));
}

TEST_F(TokenDatasetTest, ValidationBatchesStayInValidation) {
  std::vector<uint32_t> tokens(1000);
  for (uint32_t i = 0; i < tokens.size(); ++i)
    tokens[i] = i;
  std::string p = path("val.bin");
  ASSERT_TRUE(writeTokenDataset(p, tokens, 2, 1000).ok());
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok());
  auto split = ds->split(0.2);
  ASSERT_TRUE(split.ok());
  std::vector<int32_t> in(16 * 8), tgt(16 * 8);
  for (uint64_t step = 0; step < 20; ++step) {
    ASSERT_TRUE(
        split->validation.fillBatch(16, 8, 9, step, in.data(), tgt.data())
            .ok());
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_GE(in[i], 800);
      ASSERT_LT(tgt[i], 1000);
    }
    ASSERT_TRUE(
        split->train.fillBatch(16, 8, 9, step, in.data(), tgt.data()).ok());
    for (int32_t t : tgt)
      ASSERT_LT(t, 800);
  }
}

TEST_F(TokenDatasetTest, FillBatchErrors) {
  std::string p = makeFile("small.bin", 8);
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok());
  std::vector<int32_t> in(64), tgt(64);
  Status s = ds->fillBatch(1, 8, 0, 0, in.data(), tgt.data());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("8 tokens cannot hold one window of "
                                     "seq+1 = 9 tokens"));
  s = ds->fillBatch(0, 4, 0, 0, in.data(), tgt.data());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("not a positive shape"));
}

TEST_F(TokenDatasetTest, FillBatchRejectsIdsOverDeclaredVocab) {
  std::string p = path("corrupt.bin");
  ASSERT_TRUE(writeTokenDataset(p, {1, 2, 3}, 2, 256).ok());
  std::vector<uint8_t> b = readBytes(p);
  b[kTokenHeaderBytes + 3] = 0x01; // token 1 becomes 0x0102 = 258
  writeBytes(p, b);
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok());
  std::vector<int32_t> in(2), tgt(2);
  Status s = ds->fillBatch(1, 2, 0, 0, in.data(), tgt.data());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("token id 258 at position 1"));
}

TEST(ShippedData, TinyBinOpensAndValidates) {
  std::string p = std::string(HALO_SOURCE_DIR) + "/examples/data/tiny.bin";
  auto ds = TokenDataset::open(p);
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ(ds->tokenWidth(), 2);
  EXPECT_EQ(ds->vocabSize(), 256u);
  EXPECT_GE(ds->size(), 100000u);
  Status s = ds->validateVocab(256);
  EXPECT_TRUE(s.ok()) << s.message();
  auto split = ds->split(0.1);
  ASSERT_TRUE(split.ok());
  std::vector<int32_t> in(4 * 256), tgt(4 * 256);
  EXPECT_TRUE(
      split->train.fillBatch(4, 256, 1337, 0, in.data(), tgt.data()).ok());
}

TEST_F(TokenDatasetTest, MakeDatasetRegeneratesTinyBin) {
  std::string script =
      shellQuote(std::string(HALO_SOURCE_DIR) + "/scripts/make_dataset.py");
  if (!runPython("--version"))
    GTEST_SKIP() << "python3 not on PATH";
  std::string out = path("tiny.bin");
  ASSERT_TRUE(
      runPython(script + " --synthetic 524288 --seed 1 -o " + shellQuote(out)));
  EXPECT_TRUE(readBytes(out) == readBytes(std::string(HALO_SOURCE_DIR) +
                                          "/examples/data/tiny.bin"))
      << "examples/data/tiny.bin is stale; regenerate it as docs/formats.md "
         "says";
}

TEST_F(TokenDatasetTest, MakeDatasetTextModeIsByteLevel) {
  std::string script =
      shellQuote(std::string(HALO_SOURCE_DIR) + "/scripts/make_dataset.py");
  if (!runPython("--version"))
    GTEST_SKIP() << "python3 not on PATH";
  std::string text = "hi\xff\n";
  writeBytes(path("in.txt"), std::vector<uint8_t>(text.begin(), text.end()));
  std::string out = path("text.bin");
  ASSERT_TRUE(runPython(script + " --text " + shellQuote(path("in.txt")) +
                        " --width 4 -o " + shellQuote(out)));
  auto ds = TokenDataset::open(out);
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ(ds->tokenWidth(), 4);
  EXPECT_EQ(ds->vocabSize(), 256u);
  ASSERT_EQ(ds->size(), 4u);
  EXPECT_EQ(ds->token(0), uint32_t('h'));
  EXPECT_EQ(ds->token(2), 0xFFu);
  EXPECT_EQ(ds->token(3), uint32_t('\n'));
  EXPECT_FALSE(runPython(script + " --text " + shellQuote(path("none.txt")) +
                         " -o " + shellQuote(out)));
}

} // namespace
} // namespace halo::io::test
