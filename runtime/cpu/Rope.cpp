//===- Rope.cpp - Rotary position embedding (HF rotate_half) --------------===//
//
// The cos/sin table is built once per call for the S positions and hd/2
// frequencies, in float and in HF's order of operations (inv_freq =
// 1 / theta^(2i/hd), then pos * inv_freq, then cos/sin), so a float run sees
// the same angles as PyTorch. F = double only widens the rotation itself.
// The inverse negates sin rather than the angle, so it is exactly the
// transpose of the forward rotation (the VJP), not merely close to it.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"

#include <cmath>
#include <vector>

namespace halo::cpu {

template <typename F>
void rope(const F *x, int64_t T, int64_t S, int64_t H, int64_t hd, double theta,
          bool inverse, F *y) {
  int64_t half = hd / 2;
  std::vector<F> cosTable(S * half), sinTable(S * half); // [S, hd/2]
  for (int64_t i = 0; i < half; ++i) {
    float invFreq = 1.0f / std::pow(float(theta), float(2 * i) / float(hd));
    for (int64_t pos = 0; pos < S; ++pos) {
      float angle = float(pos) * invFreq;
      cosTable[pos * half + i] = F(std::cos(angle));
      sinTable[pos * half + i] =
          inverse ? -F(std::sin(angle)) : F(std::sin(angle));
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    const F *c = cosTable.data() + (t % S) * half;
    const F *s = sinTable.data() + (t % S) * half;
    for (int64_t h = 0; h < H; ++h) {
      const F *xh = x + (t * H + h) * hd;
      F *yh = y + (t * H + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        // Read both halves first: y may alias x.
        F lo = xh[i], hi = xh[i + half];
        yh[i] = lo * c[i] - hi * s[i];
        yh[i + half] = hi * c[i] + lo * s[i];
      }
    }
  }
}

template void rope<float>(const float *, int64_t, int64_t, int64_t, int64_t,
                          double, bool, float *);
template void rope<double>(const double *, int64_t, int64_t, int64_t, int64_t,
                           double, bool, double *);

} // namespace halo::cpu
