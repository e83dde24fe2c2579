//===- HaloDialect.td - The halo training-graph dialect ----*- tablegen -*-===//
//
// `halo` models a LLaMA training step on value-semantic tensors: the model ops
// the frontend emits, their vector-Jacobian products, the optimizer, and the
// HALO rotation/quantization ops that placement inserts.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_DIALECT_TD
#define HALO_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Halo_Dialect : Dialect {
  let name = "halo";
  let summary = "Training graphs of LLaMA-family models with HALO 8-bit matmuls";
  let description = [{
    Tensors are 2-D [T, D] activations (T = batch * seq tokens, token t is
    (t / seq, t % seq)), weights in Hugging Face layout ([out, in] for linears),
    and 0-d scalars. Element types are the builtin bf16, f32, f8E4M3FN, i8 and
    i32. All ops are pure; a function is a dataflow graph.
  }];
  let cppNamespace = "::halo";
  let useDefaultAttributePrinterParser = 1;
}

class Halo_Op<string mnemonic, list<Trait> traits = []>
    : Op<Halo_Dialect, mnemonic, traits>;

#endif // HALO_DIALECT_TD
