//===- Interpreter.h - Execute a program Function on the CPU ----*- C++ -*-===//
//
// The oracle: runs the ops of a validated Function (Program.h) one after the
// other with the reference kernels of Kernels.h, computing in F (float for
// halo-run, double for finite-difference tests). bf16 results are rounded to
// bf16 unless `exact`; 8-bit results hold exact code values. Each value is
// freed right after its last reader, so peak memory is that of the live
// values, not of every intermediate of a training step.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CPU_INTERPRETER_H
#define HALO_RUNTIME_CPU_INTERPRETER_H

#include "halo/runtime/Status.h"
#include "runtime/cpu/Program.h"

#include <cstdint>
#include <vector>

namespace halo::cpu {

/// A dense row-major tensor. i32 tensors keep their elements in `ints`, every
/// other type in `data` (8-bit types as their code values, e.g. 448.0).
template <typename F> struct Tensor {
  ElementType type = ElementType::F32;
  std::vector<int64_t> shape; ///< [] is a 0-d scalar.
  std::vector<F> data;
  std::vector<int32_t> ints;

  int64_t numel() const;
  /// A zero-filled tensor of `type` and `shape`.
  static Tensor zeros(ElementType type, std::vector<int64_t> shape);
};

struct InterpreterOptions {
  /// Skip all bf16 rounding (finite-difference tests compare against exact
  /// derivatives).
  bool exact = false;
};

template <typename F> class Interpreter {
public:
  /// `function` must come from readProgram / parseFunction (validated).
  explicit Interpreter(Function function, InterpreterOptions options = {});

  const Function &function() const { return function_; }

  /// Runs the function. `inputs` follow function().inputs in order, each
  /// with the declared type and shape; bf16 inputs are rounded on entry
  /// (unless exact). Returns the outputs in function().outputs order. Fails
  /// on a mismatched input or on data-dependent errors (an embedding id or
  /// cross-entropy target outside the vocabulary), naming the op.
  StatusOr<std::vector<Tensor<F>>> run(const std::vector<Tensor<F>> &inputs);

  /// For each value, the index of the last op that reads it: -1 when no op
  /// does, kKeepAlive for function outputs (never freed).
  const std::vector<int64_t> &lastUse() const { return lastUse_; }
  static constexpr int64_t kKeepAlive = INT64_MAX;

  /// The most elements that op results (and rounded input copies) held at
  /// once during the last run.
  int64_t peakLiveElements() const { return peakLiveElements_; }

private:
  Status execute(size_t index, const std::vector<const Tensor<F> *> &view,
                 std::vector<Tensor<F>> &owned) const;

  Function function_;
  InterpreterOptions options_;
  std::vector<int64_t> lastUse_;
  int64_t peakLiveElements_ = 0;
};

/// Sets every "compute" input of `fn` (the BF16 copy of a trainable parameter
/// that train_step keeps between steps) to its "param" input's values. Call it
/// after filling or loading the parameters; bf16 inputs are rounded where
/// they enter (the interpreter, the device upload), which makes this the cast
/// that each step ends with.
template <typename F>
void deriveComputeCopies(const Function &fn, std::vector<Tensor<F>> &inputs);

extern template struct Tensor<float>;
extern template struct Tensor<double>;
extern template class Interpreter<float>;
extern template class Interpreter<double>;
extern template void deriveComputeCopies(const Function &, std::vector<Tensor<float>> &);
extern template void deriveComputeCopies(const Function &, std::vector<Tensor<double>> &);

} // namespace halo::cpu

#endif // HALO_RUNTIME_CPU_INTERPRETER_H
