//===- ProgramExport.cpp - halo IR -> program manifest --------------------===//
#include "compiler/export/ProgramExport.h"

#include "dialects/exec/IR/ExecOps.h"
#include "dialects/halo/IR/HaloOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <functional>

using namespace mlir;
using json = nlohmann::json;

namespace halo {
namespace {

FailureOr<std::string> typeName(Operation *where, Type element) {
  if (element.isBF16())
    return std::string("bf16");
  if (element.isF32())
    return std::string("f32");
  if (isa<Float8E4M3FNType>(element))
    return std::string("f8E4M3FN");
  if (element.isSignlessInteger(8))
    return std::string("i8");
  if (element.isSignlessInteger(32))
    return std::string("i32");
  return where->emitError("program export: element type ") << element
         << " has no runtime representation";
}

FailureOr<json> attrValue(Operation *op, StringRef name, Attribute attr) {
  if (auto a = dyn_cast<UnitAttr>(attr))
    return json(true);
  if (auto a = dyn_cast<IntegerAttr>(attr))
    return json(a.getInt());
  if (auto a = dyn_cast<FloatAttr>(attr))
    return json(a.getValueAsDouble());
  if (auto a = dyn_cast<StringAttr>(attr))
    return json(a.str());
  if (auto a = dyn_cast<HadamardSideAttr>(attr))
    return json(stringifyHadamardSide(a.getValue()).str());
  if (auto a = dyn_cast<GranularityAttr>(attr))
    return json(stringifyGranularity(a.getValue()).str());
  if (auto a = dyn_cast<MatmulRoleAttr>(attr))
    return json(stringifyMatmulRole(a.getValue()).str());
  if (auto a = dyn_cast<LrScheduleAttr>(attr))
    return json(stringifyLrSchedule(a.getValue()).str());
  return op->emitError("program export: attribute '") << name << "' of kind " << attr
         << " has no runtime encoding";
}

std::string locName(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (std::string s = locName(inner); !s.empty())
        return s;
  return "";
}

/// Copies the halo.* argument/result attributes into a manifest entry.
json describe(DictionaryAttr attrs, unsigned value) {
  json entry = {{"value", value}};
  if (!attrs)
    return entry;
  for (NamedAttribute a : attrs) {
    StringRef key = a.getName().getValue();
    if (!key.consume_front("halo."))
      continue;
    if (isa<UnitAttr>(a.getValue()))
      entry[key.str()] = true;
    else if (auto s = dyn_cast<StringAttr>(a.getValue()))
      entry[key.str()] = s.str();
  }
  return entry;
}

} // namespace

FailureOr<json> exportFunction(func::FuncOp func) {
  if (!func.getBody().hasOneBlock())
    return func.emitError("program export: functions must have one block");
  DenseMap<Value, unsigned> ids;
  json values = json::array();
  auto define = [&](Operation *where, Value v) -> LogicalResult {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.hasStaticShape())
      return where->emitError("program export: values must be statically shaped tensors, got ")
             << v.getType();
    FailureOr<std::string> name = typeName(where, type.getElementType());
    if (failed(name))
      return failure();
    ids[v] = values.size();
    values.push_back({{"type", *name}, {"shape", type.getShape().vec()}});
    return success();
  };

  Block &body = func.getBody().front();
  json inputs = json::array();
  for (BlockArgument arg : body.getArguments()) {
    if (failed(define(func, arg)))
      return failure();
    inputs.push_back(describe(func.getArgAttrDict(arg.getArgNumber()), ids[arg]));
  }

  // exec.kernel regions are flattened: the oracle runs the same ops whether
  // or not they were fused (docs/program-format.md has no kernel boundary).
  // The schedule records the kernel boundaries for the GPU runtime: one step
  // per exec.kernel (its flattened op range, inputs and outputs) or per op
  // left outside kernels (GEMMs, constants).
  json ops = json::array();
  json schedule = json::array();
  bool fused = false;
  std::function<LogicalResult(Block &, bool)> exportBlock = [&](Block &block,
                                                                bool top) -> LogicalResult {
    for (Operation &op : block.without_terminator()) {
      if (auto kernel = dyn_cast<exec::KernelOp>(op)) {
        fused = true;
        Block &kb = kernel.getBody().front();
        for (auto [arg, in] : llvm::zip(kb.getArguments(), kernel.getInputs()))
          ids[arg] = ids.lookup(in);
        size_t first = ops.size();
        if (failed(exportBlock(kb, false)))
          return failure();
        json inputs = json::array(), outputs = json::array();
        for (Value in : kernel.getInputs())
          inputs.push_back(ids.lookup(in));
        for (auto [res, y] : llvm::zip(kernel.getResults(), kb.getTerminator()->getOperands())) {
          ids[res] = ids.lookup(y);
          outputs.push_back(ids[res]);
        }
        schedule.push_back({{"kernel", kernel.getName().str()},
                            {"ops", {first, ops.size() - first}},
                            {"inputs", inputs},
                            {"outputs", outputs}});
        continue;
      }
      if (top)
        schedule.push_back({{"ops", {ops.size(), 1}}});
      json entry;
      json attrs = json::object();
      if (auto c = dyn_cast<arith::ConstantOp>(op)) {
        auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
        if (!dense || !dense.isSplat() || !isa<FloatType>(dense.getElementType()))
          return op.emitError("program export: only splat float constants are supported");
        entry["op"] = "constant";
        attrs["value"] = dense.getSplatValue<APFloat>().convertToDouble();
      } else if (op.getDialect() && isa<HaloDialect>(op.getDialect())) {
        entry["op"] = op.getName().stripDialect().str();
        for (NamedAttribute a : op.getAttrs()) {
          // Discardable annotations (halo.offsets, ...) are not op semantics.
          if (a.getName().getValue().contains('.'))
            continue;
          FailureOr<json> v = attrValue(&op, a.getName().getValue(), a.getValue());
          if (failed(v))
            return failure();
          attrs[a.getName().str()] = *v;
        }
      } else {
        return op.emitError("program export: '") << op.getName() << "' cannot run in the runtime";
      }
      json operands = json::array(), results = json::array();
      for (Value v : op.getOperands())
        operands.push_back(ids.lookup(v));
      for (Value r : op.getResults()) {
        if (failed(define(&op, r)))
          return failure();
        results.push_back(ids[r]);
      }
      entry["operands"] = operands;
      entry["results"] = results;
      entry["attrs"] = attrs;
      entry["loc"] = locName(op.getLoc());
      ops.push_back(entry);
    }
    return success();
  };
  if (failed(exportBlock(body, true)))
    return failure();

  json outputs = json::array();
  Operation *ret = body.getTerminator();
  for (auto [i, v] : llvm::enumerate(ret->getOperands()))
    outputs.push_back(describe(func.getResultAttrDict(i), ids.lookup(v)));
  json f = {{"values", values}, {"inputs", inputs}, {"outputs", outputs}, {"ops", ops}};
  if (fused)
    f["schedule"] = schedule;
  // The memory plan: byte offsets of top-level results in one arena.
  if (auto arena = func->getAttrOfType<IntegerAttr>("halo.arena_bytes")) {
    f["arena_bytes"] = arena.getInt();
    json offsets = json::array();
    for (Operation &op : body.without_terminator())
      if (auto list = op.getAttrOfType<DenseI64ArrayAttr>("halo.offsets"))
        for (auto [r, offset] : llvm::zip(op.getResults(), list.asArrayRef()))
          if (offset >= 0)
            offsets.push_back({ids.lookup(r), offset});
    f["offsets"] = offsets;
  }
  return f;
}

FailureOr<json> exportProgram(ModuleOp module, const json &cuda) {
  auto config = module->getAttrOfType<StringAttr>("halo.model_config");
  if (!config)
    return module.emitError("program export: the module has no halo.model_config (the runtime "
                            "needs the model description haloc records there)");
  json manifest;
  manifest["model"] = json::parse(config.str(), nullptr, /*allow_exceptions=*/false);
  if (manifest["model"].is_discarded())
    return module.emitError("program export: halo.model_config is not valid JSON");
  json functions = json::object();
  for (StringRef name : {"train_step", "forward"}) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func)
      continue;
    FailureOr<json> f = exportFunction(func);
    if (failed(f))
      return failure();
    functions[name.str()] = *f;
  }
  if (!functions.contains("train_step"))
    return module.emitError("program export: no @train_step (run halo-autodiff first)");
  manifest["functions"] = functions;
  if (!cuda.is_null())
    manifest["cuda"] = cuda;
  return manifest;
}

} // namespace halo
