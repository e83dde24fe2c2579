//===- HaloAttrs.td - Enum attributes of the halo dialect ---*- tablegen -*-===//
#ifndef HALO_ATTRS_TD
#define HALO_ATTRS_TD

include "dialects/halo/IR/HaloDialect.td"

def Halo_SideRight : I32EnumAttrCase<"right", 0>;
def Halo_SideLeft : I32EnumAttrCase<"left", 1>;
def Halo_HadamardSide : I32EnumAttr<"HadamardSide",
    "which dimension of a 2-D tensor a Hadamard rotation mixes",
    [Halo_SideRight, Halo_SideLeft]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::halo";
}
def Halo_HadamardSideAttr : EnumAttr<Halo_Dialect, Halo_HadamardSide, "side"> {
  let assemblyFormat = "`<` $value `>`";
}

def Halo_GranTensor : I32EnumAttrCase<"tensor", 0>;
def Halo_GranRow : I32EnumAttrCase<"row", 1>;
def Halo_GranCol : I32EnumAttrCase<"col", 2>;
def Halo_Granularity : I32EnumAttr<"Granularity",
    "how many scales a quantized tensor has: one, one per row, one per column",
    [Halo_GranTensor, Halo_GranRow, Halo_GranCol]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::halo";
}
def Halo_GranularityAttr : EnumAttr<Halo_Dialect, Halo_Granularity, "granularity"> {
  let assemblyFormat = "`<` $value `>`";
}

def Halo_RoleFwd : I32EnumAttrCase<"fwd", 0>;
def Halo_RoleBwdInput : I32EnumAttrCase<"bwd_input", 1>;
def Halo_RoleBwdWeight : I32EnumAttrCase<"bwd_weight", 2>;
def Halo_MatmulRole : I32EnumAttr<"MatmulRole",
    "which of a linear layer's three matmuls a GEMM is",
    [Halo_RoleFwd, Halo_RoleBwdInput, Halo_RoleBwdWeight]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::halo";
}
def Halo_MatmulRoleAttr : EnumAttr<Halo_Dialect, Halo_MatmulRole, "role"> {
  let assemblyFormat = "`<` $value `>`";
}

def Halo_SchedConstant : I32EnumAttrCase<"constant", 0>;
def Halo_SchedLinear : I32EnumAttrCase<"linear", 1>;
def Halo_SchedCosine : I32EnumAttrCase<"cosine", 2>;
def Halo_LrSchedule : I32EnumAttr<"LrSchedule",
    "learning-rate decay after warm-up",
    [Halo_SchedConstant, Halo_SchedLinear, Halo_SchedCosine]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::halo";
}
def Halo_LrScheduleAttr : EnumAttr<Halo_Dialect, Halo_LrSchedule, "schedule"> {
  let assemblyFormat = "`<` $value `>`";
}

#endif // HALO_ATTRS_TD
