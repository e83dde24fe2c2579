//===- Float8Test.cpp - Conversions against the CUDA host headers --------===//
//
// The reference is CUDA's own host code (cuda_bf16.h, cuda_fp8.h compiled by
// the host compiler): every BF16 and FP8 pattern is decoded, and millions of
// floats (all BF16 patterns times tie/halfway low halves, random bits, values
// inside the FP8 range, FP8 midpoints) are encoded and compared bit for bit.
// INT8 and the scale rule are checked against their written definitions.
//
//===----------------------------------------------------------------------===//
#include "runtime/numerics/Float8.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace halo::numerics {
namespace {

uint32_t bitsOf(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

float floatOf(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

uint16_t cudaFloatToBF16(float x) {
  __nv_bfloat16_raw raw = __float2bfloat16(x);
  return raw.x;
}

float cudaBF16ToFloat(uint16_t bits) {
  __nv_bfloat16_raw raw;
  raw.x = bits;
  return __bfloat162float(__nv_bfloat16(raw));
}

uint8_t cudaFloatToE4M3(float x) {
  return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
}

float cudaE4M3ToFloat(uint8_t code) {
  __nv_fp8_e4m3 value;
  value.__x = code;
  return static_cast<float>(value);
}

/// Equal bit patterns, or both NaN (payloads are not part of the contract).
bool sameFloat(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || bitsOf(a) == bitsOf(b);
}

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(BF16, DecodesEveryPatternLikeCuda) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits)
    ASSERT_EQ(bitsOf(bf16ToFloat(bits)), bitsOf(cudaBF16ToFloat(bits)))
        << std::hex << bits;
}

TEST(BF16, EncodesEveryPatternTimesLowHalvesLikeCuda) {
  std::vector<uint32_t> lows = {0x0000, 0x0001, 0x4000, 0x7FFE, 0x7FFF,
                                0x8000, 0x8001, 0xC000, 0xFFFE, 0xFFFF};
  std::mt19937 rng(1);
  while (lows.size() < 32)
    lows.push_back(rng() & 0xFFFF);
  for (uint32_t high = 0; high < 0x10000; ++high)
    for (uint32_t low : lows) {
      float x = floatOf(high << 16 | low);
      ASSERT_EQ(floatToBF16(x), cudaFloatToBF16(x)) << std::hex << bitsOf(x);
    }
}

TEST(BF16, RoundsTiesToEvenAndHandlesSpecials) {
  EXPECT_EQ(floatToBF16(floatOf(0x3F808000)), 0x3F80); // tie, even below
  EXPECT_EQ(floatToBF16(floatOf(0x3F818000)), 0x3F82); // tie, odd below
  EXPECT_EQ(floatToBF16(floatOf(0x3F808001)), 0x3F81);
  EXPECT_EQ(floatToBF16(floatOf(0x7F7FFFFF)), 0x7F80); // rounds to +inf
  EXPECT_EQ(floatToBF16(-kInf), 0xFF80);
  EXPECT_EQ(floatToBF16(kNaN), 0x7FFF);
  EXPECT_EQ(floatToBF16(floatOf(0xFFC00001)), 0x7FFF); // sign dropped
  EXPECT_EQ(floatToBF16(-0.0f), 0x8000);
  EXPECT_EQ(roundToBF16(1.0f + 1.0f / 256), 1.0f);
  EXPECT_EQ(roundToBF16(3.14159265f), 3.140625f);
}

TEST(FP8, DecodesEveryCodeLikeCuda) {
  for (int code = 0; code < 256; ++code)
    ASSERT_TRUE(sameFloat(e4m3ToFloat(code), cudaE4M3ToFloat(code))) << code;
  EXPECT_EQ(e4m3ToFloat(0x7E), 448.0f);
  EXPECT_EQ(e4m3ToFloat(0xFE), -448.0f);
  EXPECT_EQ(e4m3ToFloat(0x38), 1.0f);
  EXPECT_EQ(e4m3ToFloat(0x08), std::ldexp(1.0f, -6)); // smallest normal
  EXPECT_EQ(e4m3ToFloat(0x01), std::ldexp(1.0f, -9)); // smallest subnormal
  EXPECT_TRUE(std::signbit(e4m3ToFloat(0x80)));
  EXPECT_TRUE(std::isnan(e4m3ToFloat(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3ToFloat(0xFF)));
}

TEST(FP8, EveryCodeRoundTrips) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) != 0x7F) {
      EXPECT_EQ(floatToE4M3(e4m3ToFloat(code)), code) << code;
    }
  }
}

TEST(FP8, EncodesBF16PatternsAndRandomFloatsLikeCuda) {
  for (uint32_t high = 0; high < 0x10000; ++high) {
    float x = floatOf(high << 16);
    ASSERT_EQ(floatToE4M3(x), cudaFloatToE4M3(x)) << std::hex << high;
  }
  std::mt19937 rng(2);
  for (int i = 0; i < 2000000; ++i) {
    float x = floatOf(rng());
    ASSERT_EQ(floatToE4M3(x), cudaFloatToE4M3(x)) << std::hex << bitsOf(x);
  }
  // Uniform bits mostly saturate or flush; also cover exponents around the
  // FP8 range, 2^-12 .. 2^9, with random significands and signs.
  for (int i = 0; i < 2000000; ++i) {
    uint32_t bits = rng();
    uint32_t exp = 127 - 12 + (bits >> 23) % 22;
    float x = floatOf((bits & 0x807FFFFFu) | exp << 23);
    ASSERT_EQ(floatToE4M3(x), cudaFloatToE4M3(x)) << std::hex << bitsOf(x);
  }
}

TEST(FP8, HalfwayPointsTieToEven) {
  for (int code = 0; code < 0x7E; ++code) {
    float lo = e4m3ToFloat(code), hi = e4m3ToFloat(code + 1);
    float mid = (lo + hi) / 2; // Exact: 5 significant bits.
    int even = (code & 1) ? code + 1 : code;
    for (float sign : {1.0f, -1.0f}) {
      int signBit = sign < 0 ? 0x80 : 0;
      float below = std::nextafter(sign * mid, 0.0f);
      float above = std::nextafter(sign * mid, sign * kInf);
      EXPECT_EQ(floatToE4M3(sign * mid), even | signBit) << mid;
      EXPECT_EQ(floatToE4M3(below), code | signBit) << mid;
      EXPECT_EQ(floatToE4M3(above), (code + 1) | signBit) << mid;
      for (float x : {sign * mid, below, above})
        EXPECT_EQ(floatToE4M3(x), cudaFloatToE4M3(x)) << x;
    }
  }
}

TEST(FP8, SaturatesAndHandlesSpecialsLikeCuda) {
  std::vector<std::pair<float, int>> cases = {
      {448.0f, 0x7E},
      {464.0f, 0x7E}, // tie between 448 and 480 goes to even 448
      {std::nextafter(464.0f, kInf), 0x7E},
      {480.0f, 0x7E},
      {1e30f, 0x7E},
      {-464.0f, 0xFE},
      {-1e30f, 0xFE},
      {kInf, 0x7E},
      {-kInf, 0xFE},
      {kNaN, 0x7F},
      {-kNaN, 0x7F},
      {std::ldexp(1.0f, -10), 0x00}, // half the smallest subnormal
      {std::nextafter(std::ldexp(1.0f, -10), 1.0f), 0x01},
      {-std::ldexp(1.0f, -10), 0x80},
      {std::numeric_limits<float>::denorm_min(), 0x00},
      {-std::numeric_limits<float>::denorm_min(), 0x80},
      {0.0f, 0x00},
      {-0.0f, 0x80},
  };
  for (auto [x, code] : cases) {
    EXPECT_EQ(floatToE4M3(x), code) << x;
    EXPECT_EQ(floatToE4M3(x), cudaFloatToE4M3(x)) << x;
  }
}

TEST(INT8, RoundsHalfToEvenAndClamps) {
  std::vector<std::pair<float, int>> cases = {
      {0.5f, 0},        {1.5f, 2},
      {2.5f, 2},        {-0.5f, 0},
      {-1.5f, -2},      {-2.5f, -2},
      {126.5f, 126},    {-126.5f, -126},
      {0.49999997f, 0}, {std::nextafter(2.5f, 3.0f), 3},
      {127.4f, 127},    {127.5f, 127},
      {200.0f, 127},    {-1000.0f, -127},
      {kInf, 127},      {-kInf, -127},
      {kNaN, 0},        {-0.0f, 0},
      {-0.4f, 0},       {-3.7f, -4},
  };
  for (auto [x, value] : cases)
    EXPECT_EQ(floatToInt8(x), value) << x;
}

TEST(INT8, MatchesNearbyIntOnRandomValues) {
  // The default FE_TONEAREST mode makes nearbyint round half to even.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-140.0f, 140.0f);
  for (int i = 0; i < 200000; ++i) {
    float x = dist(rng);
    if (i % 2)
      x = std::round(x * 2) / 2; // exact halves
    float expected = std::fmin(127.0f, std::fmax(-127.0f, std::nearbyint(x)));
    ASSERT_EQ(floatToInt8(x), static_cast<int>(expected)) << x;
  }
}

TEST(Scale, DegenerateAbsmaxGivesOne) {
  for (QuantFormat format : {QuantFormat::FP8E4M3, QuantFormat::INT8}) {
    for (float absmax : {0.0f, -0.0f, -3.0f, kNaN, kInf,
                         std::numeric_limits<float>::denorm_min()})
      EXPECT_EQ(quantScale(absmax, format), 1.0f) << absmax;
    float scale = quantScale(0.0f, format);
    EXPECT_EQ(quantizeValue(0.0f, scale, format), 0.0f);
    EXPECT_EQ(quantizeValue(-0.0f, scale, format), 0.0f);
  }
  EXPECT_EQ(quantMax(QuantFormat::FP8E4M3), 448.0f);
  EXPECT_EQ(quantMax(QuantFormat::INT8), 127.0f);
  EXPECT_EQ(quantScale(448.0f, QuantFormat::FP8E4M3), 1.0f);
  EXPECT_EQ(quantScale(127.0f, QuantFormat::INT8), 1.0f);
  EXPECT_EQ(quantScale(10.0f, QuantFormat::INT8), 10.0f / 127.0f);
}

TEST(Scale, AbsmaxMapsToFormatMax) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  for (int i = 0; i < 100000; ++i) {
    float absmax = std::ldexp(mantissa(rng), static_cast<int>(rng() % 80) - 40);
    for (QuantFormat format : {QuantFormat::FP8E4M3, QuantFormat::INT8}) {
      float scale = quantScale(absmax, format);
      float max = quantMax(format);
      ASSERT_EQ(quantizeValue(absmax, scale, format), max) << absmax;
      ASSERT_EQ(quantizeValue(-absmax, scale, format), -max) << absmax;
    }
  }
}

TEST(Scale, QuantizeValueIsTheCodeOfTheScaledValue) {
  float scale = quantScale(3.0f, QuantFormat::FP8E4M3);
  float x = 1.2345f;
  EXPECT_EQ(quantizeValue(x, scale, QuantFormat::FP8E4M3),
            e4m3ToFloat(floatToE4M3(x / scale)));
  scale = quantScale(3.0f, QuantFormat::INT8);
  EXPECT_EQ(quantizeValue(x, scale, QuantFormat::INT8),
            static_cast<float>(floatToInt8(x / scale)));
  EXPECT_EQ(quantizeValue(x, scale, QuantFormat::INT8), 52.0f); // 52.26
  EXPECT_TRUE(std::isnan(quantizeValue(kNaN, 1.0f, QuantFormat::FP8E4M3)));
  EXPECT_EQ(quantizeValue(kNaN, 1.0f, QuantFormat::INT8), 0.0f);
}

TEST(StochasticRound, PicksANeighbourWithTheRightOdds) {
  // 1 + 2^-9 lies a quarter of the way from 1 to the next BF16 value 1 + 2^-7.
  const float x = 1.0f + 0x1p-9f;
  const float up = 1.0f + 0x1p-7f;
  int ups = 0;
  const int draws = 1 << 16;
  for (int i = 0; i < draws; ++i) {
    float r = stochasticRoundToBF16(x, hashBits32(uint32_t(i)));
    ASSERT_TRUE(r == 1.0f || r == up) << r;
    ups += r == up;
  }
  EXPECT_NEAR(double(ups) / draws, 0.25, 0.01);
  // Exact BF16 values never move; all-zero bits truncate; negatives mirror.
  EXPECT_EQ(stochasticRoundToBF16(1.5f, 0xFFFF), 1.5f);
  EXPECT_EQ(stochasticRoundToBF16(x, 0), 1.0f);
  EXPECT_EQ(stochasticRoundToBF16(-x, 0xFFFF), -up);
  EXPECT_TRUE(std::isnan(stochasticRoundToBF16(std::nanf(""), 0xFFFF)));
  EXPECT_EQ(stochasticRoundToBF16(INFINITY, 0xFFFF), INFINITY);
}

TEST(StochasticRound, MomentBitsDependOnEveryInput) {
  uint32_t base = momentRoundingBits(5, 1000);
  EXPECT_EQ(base, momentRoundingBits(5, 1000));
  EXPECT_NE(base, momentRoundingBits(6, 1000));
  EXPECT_NE(base, momentRoundingBits(5, 1001));
  EXPECT_NE(base, momentRoundingBits(5, 1000 + (int64_t(1) << 32)));
  // The two moments' halves are independent enough to differ here.
  EXPECT_NE(base & 0xFFFF, base >> 16);
}

} // namespace
} // namespace halo::numerics
