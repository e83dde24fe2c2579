//===- Interpreter.cpp - Execute a program Function on the CPU ------------===//
//
// Values live in two tables: `view` points at every live value (inputs are
// read in place, never copied unless rounded), `owned` holds op results.
// Shapes were checked at load, so each op only reads the dimensions it needs
// from the declared value shapes. Quantized codes are exact small integers or
// FP8 values, so qmatmul multiplies them with the ordinary matmul kernel.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Interpreter.h"

#include "runtime/cpu/Kernels.h"
#include "runtime/cpu/ThreadPool.h"
#include "runtime/numerics/Float8.h"
#include "runtime/numerics/Hadamard.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <mutex>

namespace halo::cpu {
namespace {

numerics::QuantFormat formatOf(ElementType type) {
  return type == ElementType::I8 ? numerics::QuantFormat::INT8
                                 : numerics::QuantFormat::FP8E4M3;
}

// Below this many elements a pool hand-off costs more than it saves.
constexpr int64_t kParallelMin = 1 << 14;

/// fn(begin, end) over [0, n), split over the kernels' pool when the n
/// indices cover enough elements (`width` each). Callers keep results
/// independent of the split.
void forRange(int64_t n, const std::function<void(int64_t, int64_t)> &fn,
              int64_t width = 1) {
  if (n * width < kParallelMin)
    fn(0, n);
  else
    parallelFor(n, fn);
}

template <typename F> void roundAllToBF16(std::vector<F> &data) {
  forRange(int64_t(data.size()), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      data[i] = F(numerics::roundToBF16(float(data[i])));
  });
}

/// The scale index of flat element e of a [R, C] tensor.
int64_t groupOf(Granularity g, int64_t e, int64_t C) {
  return g == Granularity::Row ? e / C : g == Granularity::Col ? e % C : 0;
}

std::string describeBinding(const Binding &b) {
  if (b.isParam())
    return fmt::format("\"{}\" (state {})", b.param, b.state);
  return fmt::format("\"{}\"", b.name);
}

} // namespace

template <typename F> int64_t Tensor<F>::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

template <typename F>
Tensor<F> Tensor<F>::zeros(ElementType type, std::vector<int64_t> shape) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  if (type == ElementType::I32)
    t.ints.assign(t.numel(), 0);
  else
    t.data.assign(t.numel(), F(0));
  return t;
}

template <typename F>
Interpreter<F>::Interpreter(Function function, InterpreterOptions options)
    : function_(std::move(function)), options_(options) {
  lastUse_.assign(function_.values.size(), -1);
  for (size_t i = 0; i < function_.ops.size(); ++i)
    for (int64_t v : function_.ops[i].operands)
      lastUse_[v] = int64_t(i);
  for (const Binding &out : function_.outputs)
    lastUse_[out.value] = kKeepAlive;
}

template <typename F>
StatusOr<std::vector<Tensor<F>>>
Interpreter<F>::run(const std::vector<Tensor<F>> &inputs) {
  const Function &fn = function_;
  if (inputs.size() != fn.inputs.size())
    return Status::error(fmt::format("{}: got {} inputs, expected {}", fn.name,
                                     inputs.size(), fn.inputs.size()));
  std::vector<const Tensor<F> *> view(fn.values.size(), nullptr);
  std::vector<Tensor<F>> owned(fn.values.size());
  int64_t live = 0;
  peakLiveElements_ = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Binding &b = fn.inputs[i];
    const ValueInfo &info = fn.values[b.value];
    const Tensor<F> &t = inputs[i];
    size_t stored = t.type == ElementType::I32 ? t.ints.size() : t.data.size();
    if (t.type != info.type || t.shape != info.shape ||
        int64_t(stored) != info.numel)
      return Status::error(fmt::format(
          "{}: input {} {} is {} {} with {} elements, expected {} {}", fn.name,
          i, describeBinding(b), toString(t.type), formatShape(t.shape), stored,
          toString(info.type), formatShape(info.shape)));
    if (t.type == ElementType::BF16 && !options_.exact) {
      owned[b.value] = t;
      roundAllToBF16(owned[b.value].data);
      view[b.value] = &owned[b.value];
      live += info.numel;
    } else {
      view[b.value] = &t;
    }
  }
  peakLiveElements_ = live;

  auto release = [&](int64_t v) {
    if (!owned[v].data.empty() || !owned[v].ints.empty())
      live -= fn.values[v].numel;
    owned[v] = Tensor<F>();
    view[v] = nullptr;
  };
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    const Op &op = fn.ops[i];
    for (int64_t r : op.results) {
      owned[r] = Tensor<F>::zeros(fn.values[r].type, fn.values[r].shape);
      view[r] = &owned[r];
      live += fn.values[r].numel;
    }
    peakLiveElements_ = std::max(peakLiveElements_, live);
    HALO_RETURN_IF_ERROR(execute(i, view, owned));
    if (!options_.exact)
      for (int64_t r : op.results)
        if (fn.values[r].type == ElementType::BF16)
          roundAllToBF16(owned[r].data);
    // Operands read for the last time and results nobody reads die here.
    for (const std::vector<int64_t> *ids : {&op.operands, &op.results})
      for (int64_t v : *ids)
        if (lastUse_[v] <= int64_t(i) && view[v])
          release(v);
  }

  std::vector<Tensor<F>> outputs;
  outputs.reserve(fn.outputs.size());
  for (size_t k = 0; k < fn.outputs.size(); ++k) {
    int64_t v = fn.outputs[k].value;
    // Move an op result out unless a later output entry names it again.
    bool repeated = false;
    for (size_t j = k + 1; j < fn.outputs.size(); ++j)
      repeated |= fn.outputs[j].value == v;
    if (view[v] == &owned[v] && !repeated)
      outputs.push_back(std::move(owned[v]));
    else
      outputs.push_back(*view[v]);
  }
  return outputs;
}

template <typename F>
Status Interpreter<F>::execute(size_t index,
                               const std::vector<const Tensor<F> *> &view,
                               std::vector<Tensor<F>> &owned) const {
  const Function &fn = function_;
  const Op &op = fn.ops[index];
  const OpAttrs &a = op.attrs;
  auto label = [&] {
    return op.loc.empty() ? fmt::format("{}: op #{} '{}'", fn.name, index,
                                        toString(op.kind))
                          : fmt::format("{}: op #{} '{}' ({})", fn.name, index,
                                        toString(op.kind), op.loc);
  };
  auto in = [&](size_t k) -> const F * {
    return view[op.operands[k]]->data.data();
  };
  auto ids = [&](size_t k) -> const int32_t * {
    return view[op.operands[k]]->ints.data();
  };
  auto shape = [&](size_t k) -> const std::vector<int64_t> & {
    return fn.values[op.operands[k]].shape;
  };
  auto numel = [&](size_t k) { return fn.values[op.operands[k]].numel; };
  auto out = [&](size_t k) -> F * { return owned[op.results[k]].data.data(); };
  auto resultType = [&](size_t k) { return fn.values[op.results[k]].type; };
  auto checkIds = [&](size_t k, int64_t limit, bool allowIgnored,
                      const char *what) -> Status {
    std::string name = fmt::format("{}: {}", label(), what);
    Status s =
        validateIndices(ids(k), numel(k), limit, allowIgnored, name.c_str());
    if (s.ok())
      return s;
    return Status::error(s.message() +
                         "; hint: the token file's ids exceed the model's "
                         "vocab_size");
  };

  switch (op.kind) {
  case OpKind::Constant:
    std::fill_n(out(0), fn.values[op.results[0]].numel, F(a.value));
    break;
  case OpKind::Embedding: {
    int64_t T = shape(0)[0], V = shape(1)[0], D = shape(1)[1];
    HALO_RETURN_IF_ERROR(checkIds(0, V, false, "token ids"));
    HALO_RETURN_IF_ERROR(embedding(ids(0), in(1), out(0), T, V, D));
    break;
  }
  case OpKind::RmsNorm:
    rmsNorm(in(0), in(1), F(a.eps), out(0), shape(0)[0], shape(0)[1]);
    break;
  case OpKind::Linear: // Y[T, n] = X[T, m] W[n, m]^T
    matmul(in(0), in(1), out(0), shape(0)[0], shape(1)[0], shape(0)[1], false,
           true);
    break;
  case OpKind::Rope:
    rope(in(0), shape(0)[0], a.seqLen, shape(0)[1] / a.headDim, a.headDim,
         a.theta, a.inverse, out(0));
    break;
  case OpKind::Attention:
    attention(in(0), in(1), in(2), a.batch, a.seqLen, a.numHeads, a.numKvHeads,
              a.headDim, out(0), out(1));
    break;
  case OpKind::Silu:
    silu(in(0), out(0), numel(0));
    break;
  case OpKind::Mul:
    mul(in(0), in(1), out(0), numel(0));
    break;
  case OpKind::Add:
    add(in(0), in(1), out(0), numel(0));
    break;
  case OpKind::Cast: // The result-type rounding does the conversion.
    std::copy_n(in(0), numel(0), out(0));
    break;
  case OpKind::Transpose: {
    int64_t R = shape(0)[0], C = shape(0)[1];
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c)
        out(0)[c * R + r] = in(0)[r * C + c];
    break;
  }
  case OpKind::CrossEntropy: {
    int64_t T = shape(0)[0], V = shape(0)[1];
    HALO_RETURN_IF_ERROR(checkIds(1, V, true, "targets"));
    out(0)[0] = crossEntropy(in(0), ids(1), T, V);
    break;
  }
  case OpKind::Matmul:
  case OpKind::QMatmul: {
    size_t ib = op.kind == OpKind::QMatmul ? 2 : 1;
    const std::vector<int64_t> &A = shape(0), &B = shape(ib);
    int64_t M = a.transposeA ? A[1] : A[0], K = a.transposeA ? A[0] : A[1];
    int64_t N = a.transposeB ? B[0] : B[1];
    F *C = out(0);
    matmul(in(0), in(ib), C, M, N, K, a.transposeA, a.transposeB);
    if (op.kind == OpKind::QMatmul) {
      // The scales factor out of the reduction: C[i, j] * sa[i] * sb[j].
      const F *sa = in(1), *sb = in(3);
      bool rowScales = !shape(1).empty(), colScales = !shape(3).empty();
      forRange(M * N, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e)
          C[e] = C[e] * sa[rowScales ? e / N : 0] * sb[colScales ? e % N : 0];
      });
    }
    // acc + product, rounded once with the result below.
    if (std::optional<size_t> acc = accumulatorOperand(op)) {
      const F *c = in(*acc);
      forRange(M * N, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e)
          C[e] += c[e];
      });
    }
    break;
  }
  case OpKind::EmbeddingGrad: {
    const std::vector<int64_t> &table = fn.values[op.results[0]].shape;
    HALO_RETURN_IF_ERROR(checkIds(0, table[0], false, "token ids"));
    HALO_RETURN_IF_ERROR(embeddingBackward(ids(0), in(1), out(0), shape(0)[0],
                                           table[0], table[1]));
    break;
  }
  case OpKind::RmsNormGrad:
    rmsNormBackward(in(0), in(1), F(a.eps), in(2), out(0), out(1), shape(0)[0],
                    shape(0)[1]);
    break;
  case OpKind::AttentionGrad:
    attentionBackward(in(0), in(1), in(2), in(3), in(4), in(5), a.batch,
                      a.seqLen, a.numHeads, a.numKvHeads, a.headDim, out(0),
                      out(1), out(2));
    break;
  case OpKind::SiluGrad:
    siluBackward(in(0), in(1), out(0), numel(0));
    break;
  case OpKind::CrossEntropyGrad: {
    int64_t T = shape(0)[0], V = shape(0)[1];
    HALO_RETURN_IF_ERROR(checkIds(1, V, true, "targets"));
    crossEntropyBackward(in(0), ids(1), F(1), out(0), T, V);
    break;
  }
  case OpKind::GlobalNorm: {
    double sum = 0;
    for (size_t k = 0; k < op.operands.size(); ++k)
      sum += sumSquares(in(k), numel(k));
    out(0)[0] = F(std::sqrt(sum));
    break;
  }
  case OpKind::ClipCoef:
    out(0)[0] = clipCoefficient(in(0)[0], a.maxNorm);
    break;
  case OpKind::LrSchedule:
    out(0)[0] = F(learningRate(ids(0)[0], a.peakLr, a.warmupSteps, a.totalSteps,
                               a.schedule));
    break;
  case OpKind::AdamW: {
    int64_t n = numel(0);
    std::copy_n(in(0), n, out(0));
    std::copy_n(in(2), n, out(1));
    std::copy_n(in(3), n, out(2));
    const F *grad = in(1);
    F gradScale = in(6)[0];
    if (!std::isfinite(gradScale))
      break; // The overflow guard: a non-finite gradient norm skips the step.
    std::vector<F> scaled;
    if (gradScale != F(1)) {
      scaled.assign(grad, grad + n);
      scale(scaled.data(), n, gradScale);
      grad = scaled.data();
    }
    auto bf16 = [&](int64_t value) {
      return !options_.exact && fn.values[value].type == ElementType::BF16;
    };
    adamw(out(0), grad, out(1), out(2), n, double(in(4)[0]), a.beta1, a.beta2,
          a.eps, a.weightDecay, int64_t(ids(5)[0]), bf16(op.results[1]), bf16(op.results[0]));
    break;
  }
  case OpKind::Hadamard: {
    int64_t R = shape(0)[0], C = shape(0)[1];
    std::copy_n(in(0), R * C, out(0));
    if (a.side == HadamardSide::Right)
      numerics::hadamardRows(out(0), R, C, a.transposed);
    else
      numerics::hadamardCols(out(0), R, C, a.transposed);
    break;
  }
  case OpKind::Quantize: {
    int64_t R = shape(0)[0], C = shape(0)[1];
    numerics::QuantFormat format = formatOf(resultType(0));
    const F *x = in(0);
    F *codes = out(0), *scales = out(1);
    Granularity g = a.granularity;
    // absmax per scale group; max is order-independent, so any split gives
    // the same scales.
    int64_t groups = fn.values[op.results[1]].numel;
    std::vector<float> absmax(groups, 0.0f);
    std::mutex mutex;
    forRange(
        g == Granularity::Col ? C : R,
        [&](int64_t begin, int64_t end) {
          if (g == Granularity::Col) {
            for (int64_t i = 0; i < R; ++i)
              for (int64_t j = begin; j < end; ++j)
                absmax[j] = std::max(absmax[j], std::fabs(float(x[i * C + j])));
            return;
          }
          float local = 0;
          for (int64_t i = begin; i < end; ++i) {
            float row = 0;
            for (int64_t j = 0; j < C; ++j)
              row = std::max(row, std::fabs(float(x[i * C + j])));
            if (g == Granularity::Row)
              absmax[i] = row;
            local = std::max(local, row);
          }
          if (g == Granularity::Tensor) {
            std::lock_guard<std::mutex> lock(mutex);
            absmax[0] = std::max(absmax[0], local);
          }
        },
        g == Granularity::Col ? R : C);
    std::vector<float> s(groups);
    for (int64_t k = 0; k < groups; ++k) {
      s[k] = numerics::quantScale(absmax[k], format);
      scales[k] = F(s[k]);
    }
    forRange(R * C, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e)
        codes[e] = F(
            numerics::quantizeValue(float(x[e]), s[groupOf(g, e, C)], format));
    });
    break;
  }
  case OpKind::Dequantize: {
    int64_t C = shape(0)[1];
    const F *codes = in(0), *s = in(1);
    F *y = out(0);
    forRange(numel(0), [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e)
        y[e] = codes[e] * s[groupOf(a.granularity, e, C)];
    });
    break;
  }
  }
  return Status::success();
}

template <typename F>
void deriveComputeCopies(const Function &fn, std::vector<Tensor<F>> &inputs) {
  for (size_t i = 0; i < fn.inputs.size() && i < inputs.size(); ++i)
    if (fn.inputs[i].state == "compute")
      if (int64_t master = fn.findParamInput(fn.inputs[i].param, "param"); master >= 0)
        inputs[i].data = inputs[master].data;
}

template struct Tensor<float>;
template struct Tensor<double>;
template class Interpreter<float>;
template class Interpreter<double>;
template void deriveComputeCopies(const Function &, std::vector<Tensor<float>> &);
template void deriveComputeCopies(const Function &, std::vector<Tensor<double>> &);

} // namespace halo::cpu
