//===- SafetensorsTest.cpp - Safetensors reader/writer --------------------===//
//
// Round trips every dtype (scalar and empty shapes, with and without
// metadata), exact float conversions, each validation error on hand-made
// headers, and atomic writes that fail early (bad directory, blocked temp
// path) or mid-stream (RLIMIT_FSIZE turns the write into EFBIG) without
// touching the existing file. Interop with HF safetensors runs only where
// python3 can import safetensors and numpy.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/Safetensors.h"

#include "IoTestUtil.h"

#include <cmath>
#include <csignal>
#include <cstring>
#include <sys/resource.h>

namespace halo::io::test {
namespace {

using ::testing::HasSubstr;

template <typename T> std::vector<uint8_t> toBytes(const std::vector<T> &v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

struct Owned {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<TensorBytes> views(const std::vector<Owned> &ts) {
  std::vector<TensorBytes> out;
  for (const Owned &t : ts)
    out.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
  return out;
}

/// One tensor of every dtype; names deliberately not in sorted order.
std::vector<Owned> allDTypes() {
  return {
      {"f32", DType::F32, {2, 3}, toBytes<float>({1, -2, 3.5f, 0, 1e-3f, 7})},
      {"bf16", DType::BF16, {3}, toBytes<uint16_t>({0x3F80, 0xC000, 0x7F80})},
      {"f16", DType::F16, {2}, toBytes<uint16_t>({0x3C00, 0x0001})},
      {"i32", DType::I32, {2}, toBytes<int32_t>({-5, 123456})},
      {"i64", DType::I64, {1, 2}, toBytes<int64_t>({-1, int64_t(1) << 40})},
      {"u8", DType::U8, {4}, {0, 1, 128, 255}},
      {"i8", DType::I8, {2, 2}, toBytes<int8_t>({-128, -1, 0, 127})},
      {"f8", DType::F8_E4M3, {3}, {0x38, 0xB8, 0x7E}},
      {"scalar", DType::F32, {}, toBytes<float>({42})},
      {"empty", DType::F16, {0, 3}, {}},
  };
}

/// A safetensors file with the given raw JSON header and data section.
std::vector<uint8_t> rawFile(const std::string &header,
                             const std::vector<uint8_t> &data) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<char>(uint64_t(header.size()) >> (8 * i));
  s += header;
  s.append(data.begin(), data.end());
  return {s.begin(), s.end()};
}

/// One header entry: "name": {"dtype": .., "shape": .., "data_offsets": ..}.
std::string entry(const std::string &name, const std::string &dtype,
                  const std::string &shape, const std::string &offsets) {
  return "\"" + name + "\": {\"dtype\": \"" + dtype +
         "\", \"shape\": " + shape + ", \"data_offsets\": " + offsets + "}";
}

/// A header object of the given entries.
std::string header(std::initializer_list<std::string> entries) {
  std::string h = "{";
  for (const std::string &e : entries)
    h += (h.size() > 1 ? ", " : "") + e;
  return h + "}";
}

class SafetensorsTest : public IoTest {
protected:
  /// Writes a raw file and returns the error of opening it.
  std::string openError(const std::string &header,
                        const std::vector<uint8_t> &data = {}) {
    std::string p = path("bad.safetensors");
    writeBytes(p, rawFile(header, data));
    auto f = SafetensorsFile::open(p);
    EXPECT_FALSE(f.ok());
    std::string msg = f.status().message();
    EXPECT_THAT(msg, HasSubstr(p));
    EXPECT_THAT(msg, HasSubstr("hint:"));
    return msg;
  }
};

TEST(DTypes, NamesSizesAndParsing) {
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64,
                  DType::U8, DType::I8, DType::F8_E4M3}) {
    auto parsed = parseDType(dtypeName(t));
    ASSERT_TRUE(parsed.has_value()) << dtypeName(t);
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::F8_E4M3), 1u);
  EXPECT_FALSE(parseDType("F64").has_value());
  EXPECT_FALSE(parseDType("f32").has_value());
}

TEST(FloatConversion, Bf16) {
  EXPECT_EQ(bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xC040), -3.0f);
  EXPECT_EQ(bf16ToFloat(0x0001), std::ldexp(1.0f, -133));
  EXPECT_TRUE(std::isinf(bf16ToFloat(0xFF80)));
  EXPECT_TRUE(std::isnan(bf16ToFloat(0x7FC0)));
}

TEST(FloatConversion, F16SpotValues) {
  EXPECT_EQ(f16ToFloat(0x3C00), 1.0f);
  EXPECT_EQ(f16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(f16ToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(f16ToFloat(0x0400), std::ldexp(1.0f, -14)); // smallest normal
  EXPECT_EQ(f16ToFloat(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
  EXPECT_EQ(f16ToFloat(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16ToFloat(0x3555), (1 + 0x155 / 1024.0f) * 0.25f); // ~1/3
  EXPECT_TRUE(std::signbit(f16ToFloat(0x8000)));
  EXPECT_EQ(f16ToFloat(0x8000), 0.0f);
  EXPECT_EQ(f16ToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16ToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16ToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(f16ToFloat(0x7C01)));
}

#ifdef __FLT16_MAX__
TEST(FloatConversion, F16MatchesCompilerForAllBitPatterns) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    _Float16 h;
    auto b16 = static_cast<uint16_t>(bits);
    std::memcpy(&h, &b16, 2);
    float want = static_cast<float>(h), got = f16ToFloat(b16);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << bits;
      continue;
    }
    uint32_t wantBits, gotBits;
    std::memcpy(&wantBits, &want, 4);
    std::memcpy(&gotBits, &got, 4);
    ASSERT_EQ(gotBits, wantBits) << "f16 bits 0x" << std::hex << bits;
  }
}
#endif

TEST_F(SafetensorsTest, RoundTripAllDTypesWithMetadata) {
  std::vector<Owned> ts = allDTypes();
  SafetensorsMetadata meta = {{"format", "pt"}, {"step", "7"}};
  std::string p = path("all.safetensors");
  Status s = writeSafetensors(p, views(ts), meta);
  ASSERT_TRUE(s.ok()) << s.message();
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->tensors().size(), ts.size());
  for (size_t i = 1; i < f->tensors().size(); ++i)
    EXPECT_LT(f->tensors()[i - 1].name, f->tensors()[i].name);
  for (const Owned &t : ts) {
    const TensorInfo *info = f->find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_EQ(info->dtype, t.dtype) << t.name;
    EXPECT_EQ(info->shape, t.shape) << t.name;
    EXPECT_EQ(info->bytes, t.bytes.size()) << t.name;
    EXPECT_EQ(info->numel, t.bytes.size() / dtypeSize(t.dtype)) << t.name;
    EXPECT_TRUE(std::equal(t.bytes.begin(), t.bytes.end(), f->bytes(*info)))
        << t.name;
  }
  const TensorInfo *scalar = f->find("scalar");
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->numel, 1u);
  EXPECT_EQ(f->find("empty")->numel, 0u);
  EXPECT_EQ(f->find("missing"), nullptr);
}

TEST_F(SafetensorsTest, WriterLayoutIsPaddedAndSortedByName) {
  std::string p = path("layout.safetensors");
  ASSERT_TRUE(writeSafetensors(p, views(allDTypes()), {}).ok());
  std::vector<uint8_t> b = readBytes(p);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= uint64_t(b[i]) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  std::string header(b.begin() + 8, b.begin() + 8 + n);
  EXPECT_EQ(header.find("__metadata__"), std::string::npos);
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->metadata().empty());
  uint64_t offset = 0;
  for (const TensorInfo &t : f->tensors()) { // sorted by name
    EXPECT_EQ(t.offset, offset) << t.name;
    offset += t.bytes;
  }
  EXPECT_EQ(b.size(), 8 + n + offset);
}

TEST_F(SafetensorsTest, NoTensorsAtAll) {
  std::string p = path("none.safetensors");
  ASSERT_TRUE(writeSafetensors(p, {}, {{"k", "v"}}).ok());
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->metadata().at("k"), "v");
}

TEST_F(SafetensorsTest, ToFloat) {
  std::string p = path("float.safetensors");
  ASSERT_TRUE(writeSafetensors(p, views(allDTypes()), {}).ok());
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok());
  auto f32 = f->toFloat("f32");
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(*f32, (std::vector<float>{1, -2, 3.5f, 0, 1e-3f, 7}));
  auto bf16 = f->toFloat("bf16");
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ((*bf16)[0], 1.0f);
  EXPECT_EQ((*bf16)[1], -2.0f);
  EXPECT_TRUE(std::isinf((*bf16)[2]));
  auto f16 = f->toFloat("f16");
  ASSERT_TRUE(f16.ok());
  EXPECT_EQ(*f16, (std::vector<float>{1.0f, std::ldexp(1.0f, -24)}));
  auto scalar = f->toFloat("scalar");
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(*scalar, std::vector<float>{42});

  auto i32 = f->toFloat("i32");
  ASSERT_FALSE(i32.ok());
  EXPECT_THAT(i32.status().message(), HasSubstr("tensor 'i32' has dtype I32"));
  auto missing = f->toFloat("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("no tensor named 'nope'"));
  EXPECT_THAT(missing.status().message(), HasSubstr("hint:"));
}

TEST_F(SafetensorsTest, MissingFile) {
  auto f = SafetensorsFile::open(path("nope.safetensors"));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("cannot open"));
  EXPECT_THAT(f.status().message(), HasSubstr("hint:"));
}

TEST_F(SafetensorsTest, TooShortForLength) {
  std::string p = path("short.safetensors");
  writeBytes(p, {1, 2, 3});
  auto f = SafetensorsFile::open(p);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("file is 3 bytes"));
}

TEST_F(SafetensorsTest, HeaderLengthLargerThanFile) {
  std::string p = path("len.safetensors");
  std::vector<uint8_t> b = rawFile("{}", {});
  b[0] = 200;
  writeBytes(p, b);
  auto f = SafetensorsFile::open(p);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(),
              HasSubstr("header length 200 exceeds the 2 bytes"));
}

TEST_F(SafetensorsTest, MalformedJson) {
  EXPECT_THAT(openError("{\"a\": {\"dtype\": "), HasSubstr("malformed JSON"));
  EXPECT_THAT(openError("[1, 2]  "), HasSubstr("not an object"));
}

TEST_F(SafetensorsTest, UnknownDType) {
  std::string msg = openError(header({entry("w", "F64", "[1]", "[0, 8]")}),
                              std::vector<uint8_t>(8));
  EXPECT_THAT(msg, HasSubstr("tensor 'w'"));
  EXPECT_THAT(msg, HasSubstr("unknown dtype \"F64\""));
  EXPECT_THAT(msg, HasSubstr("F8_E4M3"));
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  std::string msg = openError(header({entry("w", "F32", "[2]", "[0, 8]")}),
                              std::vector<uint8_t>(4));
  EXPECT_THAT(msg, HasSubstr("tensor 'w'"));
  EXPECT_THAT(msg, HasSubstr("[0, 8) lie outside the 4-byte data section"));
  msg = openError(header({entry("w", "U8", "[0]", "[3, 2]")}),
                  std::vector<uint8_t>(4));
  EXPECT_THAT(msg, HasSubstr("[3, 2)"));
  msg = openError(header({entry("w", "U8", "[1]", "[-1, 0]")}),
                  std::vector<uint8_t>(4));
  EXPECT_THAT(msg, HasSubstr("not a pair of non-negative integers"));
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  std::string msg = openError(header({entry("a", "F32", "[2]", "[0, 8]"),
                                      entry("b", "F32", "[1]", "[4, 8]")}),
                              std::vector<uint8_t>(8));
  EXPECT_THAT(msg, HasSubstr("tensor 'b' [4, 8) overlaps tensor 'a' [0, 8)"));
}

TEST_F(SafetensorsTest, EmptyTensorsNeverOverlap) {
  std::string p = path("empty.safetensors");
  writeBytes(p, rawFile(header({entry("a", "F32", "[0]", "[0, 0]"),
                                entry("b", "F32", "[1]", "[0, 4]")}),
                        std::vector<uint8_t>(4)));
  auto f = SafetensorsFile::open(p);
  EXPECT_TRUE(f.ok()) << f.status().message();
}

TEST_F(SafetensorsTest, SizeMismatch) {
  std::string msg = openError(header({entry("w", "BF16", "[2, 3]", "[0, 10]")}),
                              std::vector<uint8_t>(10));
  EXPECT_THAT(msg, HasSubstr("tensor 'w'"));
  EXPECT_THAT(msg, HasSubstr("size mismatch"));
  EXPECT_THAT(msg, HasSubstr("[2, 3] x BF16 needs 12 bytes"));
}

TEST_F(SafetensorsTest, BadEntryFields) {
  EXPECT_THAT(openError(R"({"w": 3})"), HasSubstr("not a JSON object"));
  EXPECT_THAT(openError(R"({"w": {"shape": [], "data_offsets": [0, 4]}})"),
              HasSubstr("missing string field \"dtype\""));
  EXPECT_THAT(openError(header({entry("w", "U8", "[-1]", "[0, 0]")})),
              HasSubstr("not an integer in [0, 2^63)"));
  EXPECT_THAT(openError(header(
                  {entry("w", "U8", "[4294967296, 4294967296]", "[0, 0]")})),
              HasSubstr("overflows"));
  EXPECT_THAT(openError(R"({"__metadata__": {"step": 7}})"),
              HasSubstr("metadata \"step\" is a number, not a string"));
}

TEST_F(SafetensorsTest, WriterRejectsBadEntries) {
  std::string p = path("w.safetensors");
  std::vector<uint8_t> four(4);
  Status s = writeSafetensors(p,
                              {{"a", DType::F32, {1}, four.data(), 4},
                               {"a", DType::F32, {1}, four.data(), 4}},
                              {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("tensor 'a': name appears twice"));
  s = writeSafetensors(p, {{"w", DType::F16, {3}, four.data(), 4}}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(),
              HasSubstr("4 bytes given but shape [3] x F16 needs 6"));
  s = writeSafetensors(p, {{"__metadata__", DType::U8, {4}, four.data(), 4}},
                       {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("reserved or empty name"));
  s = writeSafetensors(p, {{"w", DType::U8, {-4}, four.data(), 4}}, {});
  ASSERT_FALSE(s.ok());
  s = writeSafetensors(p, {{"bad\xff", DType::U8, {4}, four.data(), 4}}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("valid UTF-8"));
  EXPECT_FALSE(std::filesystem::exists(p));
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST_F(SafetensorsTest, WriteIntoMissingDirectoryFails) {
  std::string p = path("no/such/dir/ckpt.safetensors");
  Status s = writeSafetensors(p, views(allDTypes()), {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(p));
  EXPECT_THAT(s.message(), HasSubstr("No such file or directory"));
  EXPECT_THAT(s.message(), HasSubstr("hint:"));
}

TEST_F(SafetensorsTest, BlockedTempPathKeepsExistingFile) {
  std::string p = path("keep.safetensors");
  ASSERT_TRUE(writeSafetensors(p, views(allDTypes()), {{"v", "1"}}).ok());
  std::vector<uint8_t> before = readBytes(p);
  // A directory at the temp path makes creating it fail, even as root.
  std::filesystem::create_directory(p + ".tmp");
  Status s = writeSafetensors(p, {}, {{"v", "2"}});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("cannot create temp file"));
  EXPECT_EQ(readBytes(p), before);
}

TEST_F(SafetensorsTest, FailedWriteMidStreamKeepsExistingFile) {
  std::string p = path("full.safetensors");
  ASSERT_TRUE(writeSafetensors(p, views(allDTypes()), {{"v", "1"}}).ok());
  std::vector<uint8_t> before = readBytes(p);

  // A file-size limit makes write() fail with EFBIG once the temp file
  // reaches 4 KiB, like a disk filling up halfway through a checkpoint.
  std::vector<float> big(1 << 16, 1.0f);
  struct rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto oldHandler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  Status s = writeSafetensors(
      p, {{"big", DType::F32, {1 << 16}, big.data(), big.size() * 4}}, {});
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, oldHandler);

  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("writing"));
  EXPECT_THAT(s.message(), HasSubstr("File too large"));
  EXPECT_THAT(s.message(), HasSubstr("unchanged"));
  EXPECT_EQ(readBytes(p), before);
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->metadata().at("v"), "1");
}

TEST_F(SafetensorsTest, HuggingFaceInterop) {
  if (!runPython("-c 'import safetensors.numpy, numpy'"))
    GTEST_SKIP() << "python3 cannot import safetensors and numpy";
  // halo -> HF: numpy-representable dtypes by value, the rest by header.
  std::string ours = path("ours.safetensors");
  ASSERT_TRUE(
      writeSafetensors(ours, views(allDTypes()), {{"format", "np"}}).ok());
  std::string theirs = path("theirs.safetensors");
  std::string script = path("check.py");
  std::string code = R"PY(
import sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
ours, theirs = sys.argv[1], sys.argv[2]
with safe_open(ours, "numpy") as f:
    assert f.metadata() == {"format": "np"}, f.metadata()
    assert f.get_slice("bf16").get_dtype() == "BF16"
    assert f.get_slice("f8").get_dtype() == "F8_E4M3"
    assert f.get_slice("scalar").get_shape() == []
    assert (f.get_tensor("f32") ==
            np.array([[1, -2, 3.5], [0, 1e-3, 7]], np.float32)).all()
    assert (f.get_tensor("f16") == np.array([1, 2**-24], np.float16)).all()
    assert (f.get_tensor("i64") == np.array([[-1, 2**40]])).all()
    assert (f.get_tensor("i8") == np.array([[-128, -1], [0, 127]])).all()
    assert f.get_tensor("scalar") == np.float32(42)
    assert f.get_tensor("empty").shape == (0, 3)
save_file({"x": np.arange(6, dtype=np.float32).reshape(2, 3),
           "h": np.array([0.5, -65504], np.float16),
           "n": np.array([7, -7], np.int32)}, theirs, metadata={"by": "hf"})
)PY";
  writeBytes(script, std::vector<uint8_t>(code.begin(), code.end()));
  ASSERT_TRUE(runPython(shellQuote(script) + " " + shellQuote(ours) + " " +
                        shellQuote(theirs)))
      << "HF safetensors rejected or misread " << ours;

  // HF -> halo.
  auto f = SafetensorsFile::open(theirs);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->metadata().at("by"), "hf");
  auto x = f->toFloat("x");
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(*x, (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(f->find("x")->shape, (std::vector<int64_t>{2, 3}));
  auto h = f->toFloat("h");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, (std::vector<float>{0.5f, -65504.0f}));
  const TensorInfo *n = f->find("n");
  ASSERT_NE(n, nullptr);
  int32_t nv[2];
  std::memcpy(nv, f->bytes(*n), 8);
  EXPECT_EQ(nv[0], 7);
  EXPECT_EQ(nv[1], -7);
}

} // namespace
} // namespace halo::io::test
