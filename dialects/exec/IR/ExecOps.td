//===- ExecOps.td - The exec dialect: kernels of a program -*- tablegen -*-===//
//
// `exec` is the level between the halo graph and CUDA: memory-bound chains of
// halo ops are outlined into `exec.kernel` regions (one GPU kernel each, the
// body still readable halo ops the oracle can execute), while GEMMs stay
// halo.matmul / halo.qmatmul library calls (cuBLASLt).
//
//===----------------------------------------------------------------------===//
#ifndef EXEC_OPS_TD
#define EXEC_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"

def Exec_Dialect : Dialect {
  let name = "exec";
  let summary = "Fused kernels of a halo training program";
  let cppNamespace = "::halo::exec";
}

class Exec_Op<string mnemonic, list<Trait> traits = []>
    : Op<Exec_Dialect, mnemonic, traits>;

def Exec_KernelOp : Exec_Op<"kernel", [IsolatedFromAbove, RecursiveMemoryEffects,
    SingleBlock]> {
  let summary = "one GPU kernel: a region of halo ops over its operands";
  let description = [{
    The region's block arguments are the kernel's inputs (the operands, in
    order); `exec.yield` gives its results. `name` identifies the generated
    CUDA function (kind, shapes and a hash of the body, so identical kernels
    share one compiled image); `kind` names the fused pattern.
    ```mlir
    %sum, %norm = exec.kernel "halo_add_rms_norm_512x64_1f2e3d4c" kind "add_rms_norm"
        (%h, %attn, %w) : (tensor<512x64xbf16>, tensor<512x64xbf16>, tensor<64xbf16>)
        -> (tensor<512x64xbf16>, tensor<512x64xbf16>) {
    ^bb0(%a: tensor<512x64xbf16>, %b: tensor<512x64xbf16>, %g: tensor<64xbf16>):
      %s = halo.add %a, %b : ...
      %n = halo.rms_norm %s, %g {eps = 1.0e-05 : f64} : ...
      exec.yield %s, %n : ...
    }
    ```
  }];
  let arguments = (ins Variadic<AnyType>:$inputs, StrAttr:$name, StrAttr:$kind);
  let results = (outs Variadic<AnyType>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $name `kind` $kind `(` $inputs `)` attr-dict `:` functional-type($inputs, $results) $body
  }];
  let hasVerifier = 1;
}

def Exec_YieldOp : Exec_Op<"yield", [Pure, Terminator, HasParent<"KernelOp">,
    ReturnLike]> {
  let summary = "the results of an exec.kernel";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

#endif // EXEC_OPS_TD
