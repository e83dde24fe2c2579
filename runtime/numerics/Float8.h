//===- Float8.h - Bit-exact 8/16-bit conversions, quantization -*- C++ -*-===//
//
// Host reference conversions that the oracle and the CPU paths share with the
// CUDA kernels: FP8 E4M3 ("fn", saturating like __NV_SATFINITE), BF16 (RNE,
// every NaN becomes 0x7FFF like cuda_bf16's host __float2bfloat16) and INT8
// (ties to even, clamp to +-127). They are bit-exact against the CUDA headers
// and never depend on the FPU rounding mode. The scale rule is shared too:
// a per-tensor scale is absmax / qmax by IEEE division, and 1 whenever that
// is not a finite positive number, so absmax = 0 never yields NaN.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_NUMERICS_FLOAT8_H
#define HALO_RUNTIME_NUMERICS_FLOAT8_H

#include <cstdint>
#include <cstring>

namespace halo::numerics {

/// Float -> FP8 E4M3 code, round to nearest even. |x| >= 464 (including
/// infinity) saturates to +-448 (0x7E/0xFE); every NaN becomes 0x7F, the
/// positive canonical NaN CUDA produces. Tiny negatives give -0 (0x80).
uint8_t floatToE4M3(float x);
/// FP8 E4M3 code -> float (exact). 0x7F and 0xFF decode to a quiet NaN.
float e4m3ToFloat(uint8_t code);

// The BF16 conversions are inline: the interpreter rounds every element of
// every bf16 result, and a call per element cost ~10% of a CPU training step.

/// Float -> BF16 bits, round to nearest even; overflow rounds to infinity.
inline uint16_t floatToBF16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
    return 0x7FFF;
  // Adding 0x7FFF + lsb carries into bit 16 exactly when the dropped half is
  // above one half, or equal to it with an odd kept part.
  uint32_t lsb = (bits >> 16) & 1;
  return static_cast<uint16_t>((bits + 0x7FFFu + lsb) >> 16);
}
/// BF16 bits -> float (exact).
inline float bf16ToFloat(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float x;
  std::memcpy(&x, &wide, sizeof(x));
  return x;
}
/// x rounded to the nearest BF16 value, as a float.
inline float roundToBF16(float x) { return bf16ToFloat(floatToBF16(x)); }

/// Stochastic rounding to BF16: the magnitude rounds up with probability equal
/// to the dropped fraction, given 16 uniform random bits. NaN and infinity
/// round to nearest. The CUDA AdamW kernel uses the same operations.
inline float stochasticRoundToBF16(float x, uint32_t random16) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if ((bits & 0x7F800000u) == 0x7F800000u)
    return roundToBF16(x);
  bits = (bits + (random16 & 0xFFFFu)) & 0xFFFF0000u;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

/// The random bits of AdamW's BF16 moments: one hash of (step, element), so a
/// step is reproducible and the CPU oracle rounds exactly as the GPU does;
/// the low 16 bits round exp_avg, the high 16 exp_avg_sq. lowbias32
/// (C. Wellons) mixes each input.
inline uint32_t hashBits32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}
inline uint32_t momentRoundingBits(int64_t step, int64_t element) {
  uint32_t e = static_cast<uint32_t>(element) ^ (static_cast<uint32_t>(element >> 32) * 0x9E3779B9u);
  return hashBits32(e ^ hashBits32(static_cast<uint32_t>(step)));
}
/// The random bits of AdamW's BF16 weights (train.master_dtype; low 16 bits):
/// the moments' hash hashed once more, so the three roundings are independent.
inline uint32_t paramRoundingBits(int64_t step, int64_t element) {
  return hashBits32(momentRoundingBits(step, element) ^ 0x5851F42Du);
}

/// Float -> INT8, round half to even, clamped to [-127, 127]; NaN gives 0.
int8_t floatToInt8(float x);

enum class QuantFormat { FP8E4M3, INT8 };

/// Largest code magnitude of the format: 448 (FP8 E4M3) or 127 (INT8).
float quantMax(QuantFormat format);
/// Symmetric per-tensor scale: absmax / quantMax(format) when that quotient is
/// finite and positive; otherwise (absmax zero, negative, NaN, infinite, or so
/// small that the quotient underflows) 1, so that x / scale stays finite.
float quantScale(float absmax, QuantFormat format);
/// The code of x / scale as a float: e4m3ToFloat(floatToE4M3(x / scale)) or
/// float(floatToInt8(x / scale)). The dequantized value is this times scale;
/// the oracle applies both operand scales after the 8-bit matmul.
float quantizeValue(float x, float scale, QuantFormat format);

} // namespace halo::numerics

#endif // HALO_RUNTIME_NUMERICS_FLOAT8_H
