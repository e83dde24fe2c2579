//===- Float8.cpp - Bit-exact 8/16-bit conversions and quantization -------===//
//
// All rounding is done on the integer bit patterns, never through the FPU's
// current rounding mode, so results match CUDA on every host. FP8 decoding is
// a constexpr table; encoding shifts the float significand so that its low
// bits are exactly the ones E4M3 drops (3 fraction bits when normal, the
// 2^-9 subnormal step below 2^-6) and rounds those to nearest even.
//
//===----------------------------------------------------------------------===//
#include "runtime/numerics/Float8.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace halo::numerics {

namespace {

uint32_t bitsOf(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

constexpr std::array<float, 256> makeE4M3Table() {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) {
    int exp = (code >> 3) & 0xF;
    int man = code & 0x7;
    // Normal: (8 + m) * 2^(e - 10); subnormal (e = 0): m * 2^(1 - 10).
    float value = static_cast<float>(exp ? 8 + man : man);
    for (int e = (exp ? exp : 1) - 10; e < 0; ++e)
      value *= 0.5f;
    for (int e = (exp ? exp : 1) - 10; e > 0; --e)
      value *= 2.0f;
    if ((code & 0x7F) == 0x7F)
      table[code] = std::numeric_limits<float>::quiet_NaN();
    else
      table[code] = (code & 0x80) ? -value : value;
  }
  return table;
}

constexpr std::array<float, 256> kE4M3Values = makeE4M3Table();

} // namespace

uint8_t floatToE4M3(float x) {
  uint32_t bits = bitsOf(x);
  auto sign = static_cast<uint8_t>((bits >> 24) & 0x80);
  uint32_t mag = bits & 0x7FFFFFFFu;
  if (mag > 0x7F800000u)
    return 0x7F;
  // 464 is the midpoint between 448 and the (non-existent) 480; it ties to
  // the even 448, and everything above saturates.
  if (mag >= 0x43E80000u)
    return sign | 0x7E;
  int exp = static_cast<int>(mag >> 23) - 127;
  // Below 2^-10 (half the smallest subnormal, a tie that goes to even 0), and
  // every float subnormal, rounds to a signed zero.
  if (exp < -10)
    return sign;
  uint32_t sig = (mag & 0x7FFFFFu) | 0x800000u;
  int shift = 20 + std::max(0, -6 - exp);
  // In the normal range (sig >> 20) is 8 + mantissa, which supplies the +1 of
  // the biased exponent exp + 7; a rounding carry moves into the exponent.
  uint32_t code =
      (static_cast<uint32_t>(std::max(0, exp + 6)) << 3) + (sig >> shift);
  uint32_t rem = sig & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (code & 1)))
    ++code;
  return sign | static_cast<uint8_t>(code);
}

float e4m3ToFloat(uint8_t code) { return kE4M3Values[code]; }

int8_t floatToInt8(float x) {
  if (std::isnan(x))
    return 0;
  if (x >= 127.0f)
    return 127;
  if (x <= -127.0f)
    return -127;
  float lo = std::floor(x);
  float frac = x - lo; // Exact for |x| < 128.
  int value = static_cast<int>(lo);
  if (frac > 0.5f || (frac == 0.5f && (value & 1)))
    ++value;
  return static_cast<int8_t>(value);
}

float quantMax(QuantFormat format) {
  return format == QuantFormat::FP8E4M3 ? 448.0f : 127.0f;
}

float quantScale(float absmax, QuantFormat format) {
  float scale = absmax / quantMax(format);
  return scale > 0.0f && std::isfinite(scale) ? scale : 1.0f;
}

float quantizeValue(float x, float scale, QuantFormat format) {
  float scaled = x / scale;
  if (format == QuantFormat::FP8E4M3)
    return e4m3ToFloat(floatToE4M3(scaled));
  return static_cast<float>(floatToInt8(scaled));
}

} // namespace halo::numerics
