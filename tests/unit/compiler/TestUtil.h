//===- TestUtil.h - Compile to a program and run it on the oracle -*- C++ -*-===//
#ifndef HALO_TESTS_UNIT_COMPILER_TESTUTIL_H
#define HALO_TESTS_UNIT_COMPILER_TESTUTIL_H

#include "runtime/cpu/Interpreter.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace halo::test {

/// Builds the forward graph of `configJson`, runs `pipeline` (textual pass
/// pipeline, e.g. "halo-autodiff,halo-place-rotations"), exports and
/// re-validates the program. Fails the current test on any error.
cpu::Program compileModel(const std::string &configJson, const std::string &pipeline);

/// Parses `mlirText`, runs `pipeline` and exports function `name`.
cpu::Function compileFunction(const std::string &mlirText, const std::string &pipeline,
                              const std::string &name);

/// Number of ops of `kind` in a function.
int64_t countOps(const cpu::Function &f, cpu::OpKind kind);

/// Inputs for `f`: tokens/targets uniform in [0, vocab), step 1, parameters
/// "ones"-initialised near 1 and others N(0, std), moments zero.
template <typename F>
std::vector<cpu::Tensor<F>> makeInputs(const cpu::Function &f, int64_t vocab, uint64_t seed,
                                       double std = 0.5);

/// Runs `f` and fails the test on error.
template <typename F>
std::vector<cpu::Tensor<F>> runOk(const cpu::Function &f, const std::vector<cpu::Tensor<F>> &in,
                                  bool exact);

/// max |a - b| / max(max |b|, tiny) over all elements.
template <typename F> double relDiff(const cpu::Tensor<F> &a, const cpu::Tensor<F> &b);

} // namespace halo::test

#endif // HALO_TESTS_UNIT_COMPILER_TESTUTIL_H
