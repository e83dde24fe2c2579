//===- Autodiff.cpp - halo-autodiff: forward graph -> train_step ----------===//
//
// Reverse-mode differentiation of @forward plus the AdamW update. The forward
// body is cloned into @train_step; a forward sweep marks the values that
// depend on trainable parameters, and a reverse sweep emits each op's VJP,
// summing gradients of values with several uses. Linear layers are split into
// their three GEMMs here, because placement treats the three differently.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

namespace halo {
#define GEN_PASS_DEF_HALOAUTODIFF
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;

namespace {

struct TrainOptions {
  double lr, beta1, beta2, eps, weightDecay, gradClip;
  int64_t warmupSteps, totalSteps;
  LrSchedule schedule;
  bool bf16Moments = false;
  bool bf16Master = false;
};

FailureOr<TrainOptions> readTrainOptions(ModuleOp module) {
  auto dict = module->getAttrOfType<DictionaryAttr>("halo.train");
  if (!dict)
    return module.emitError("halo-autodiff: the module has no 'halo.train' dictionary "
                            "(haloc writes it from the model file's \"train\" section)");
  TrainOptions t;
  auto f64 = [&](StringRef key, double &out) -> LogicalResult {
    auto a = dict.getAs<FloatAttr>(key);
    if (!a)
      return module.emitError("halo-autodiff: halo.train.") << key << " must be a float";
    out = a.getValueAsDouble();
    return success();
  };
  auto i64 = [&](StringRef key, int64_t &out) -> LogicalResult {
    auto a = dict.getAs<IntegerAttr>(key);
    if (!a)
      return module.emitError("halo-autodiff: halo.train.") << key << " must be an integer";
    out = a.getInt();
    return success();
  };
  if (failed(f64("lr", t.lr)) || failed(f64("beta1", t.beta1)) ||
      failed(f64("beta2", t.beta2)) || failed(f64("eps", t.eps)) ||
      failed(f64("weight_decay", t.weightDecay)) || failed(f64("grad_clip", t.gradClip)) ||
      failed(i64("warmup_steps", t.warmupSteps)) || failed(i64("total_steps", t.totalSteps)))
    return failure();
  auto schedule = dict.getAs<StringAttr>("schedule");
  std::optional<LrSchedule> parsed =
      schedule ? symbolizeLrSchedule(schedule.getValue()) : std::nullopt;
  if (!parsed)
    return module.emitError("halo-autodiff: halo.train.schedule must be constant, linear or "
                            "cosine");
  t.schedule = *parsed;
  // Optional: modules written before the options existed keep FP32 states.
  for (auto [key, flag] : {std::pair{"moment_dtype", &t.bf16Moments},
                           std::pair{"master_dtype", &t.bf16Master}})
    if (auto type = dict.getAs<StringAttr>(key)) {
      if (type.getValue() != "f32" && type.getValue() != "bf16")
        return module.emitError("halo-autodiff: halo.train.") << key << " must be f32 or bf16";
      *flag = type.getValue() == "bf16";
    }
  return t;
}

RankedTensorType withElement(Type type, Type element) {
  return cast<RankedTensorType>(type).clone(element);
}

class TrainStepBuilder {
public:
  TrainStepBuilder(func::FuncOp forward, const TrainOptions &options, bool returnGrads)
      : forward(forward), opts(options), returnGrads(returnGrads), b(forward.getContext()) {}

  LogicalResult build();

private:
  struct Param {
    std::string name;
    StringAttr init;
    bool frozen;
    BlockArgument forwardArg;
    Value master, expAvg, expAvgSq; // train_step arguments
    // The BF16 copy the forward body reads: for a trainable parameter a
    // train_step argument too, which AdamW's cast of the new master replaces.
    Value compute;
  };

  Value castTo(Location loc, Value v, Type element) {
    if (cast_type(v).getElementType() == element)
      return v;
    return b.create<CastOp>(loc, withElement(v.getType(), element), v);
  }
  static RankedTensorType cast_type(Value v) { return llvm::cast<RankedTensorType>(v.getType()); }

  /// Adds g to the gradient of `primal`; mixed element types are summed in f32.
  void accumulate(Location loc, Value primal, Value g);
  Value gradOf(Value v) const { return grads.lookup(v); }
  bool needsGrad(Value v) const { return dependsOnParams.contains(v); }
  LogicalResult emitVjp(Operation *op);

  func::FuncOp forward;
  const TrainOptions &opts;
  bool returnGrads;
  OpBuilder b;
  SmallVector<Param> params;
  llvm::DenseSet<Value> dependsOnParams;
  DenseMap<Value, Value> grads;
};

void TrainStepBuilder::accumulate(Location loc, Value primal, Value g) {
  Value &slot = grads[primal];
  if (!slot) {
    slot = g;
    return;
  }
  Type f32 = b.getF32Type();
  Value lhs = slot, rhs = g;
  if (lhs.getType() != rhs.getType()) {
    lhs = castTo(loc, lhs, f32);
    rhs = castTo(loc, rhs, f32);
  }
  slot = b.create<AddOp>(loc, lhs, rhs);
}

LogicalResult TrainStepBuilder::emitVjp(Operation *op) {
  Location loc = op->getLoc();
  auto linearGrads = [&](Value x, Value w, Value dy, StringAttr layer) {
    MLIRContext *ctx = b.getContext();
    if (needsGrad(x))
      accumulate(loc, x,
                 b.create<MatmulOp>(loc, x.getType(), dy, w, /*acc=*/Value(), false, false, layer,
                                    MatmulRoleAttr::get(ctx, MatmulRole::bwd_input)));
    // The weight gradient stays in the compute type, as under PyTorch AMP and in
    // HALO's reference (8-bit GEMMs write BF16): AdamW and the global norm read
    // it directly, so no FP32 copy of every gradient is written and re-read.
    if (needsGrad(w))
      accumulate(loc, w,
                 b.create<MatmulOp>(loc, w.getType(), dy, x, /*acc=*/Value(),
                                    /*transpose_a=*/true, false, layer,
                                    MatmulRoleAttr::get(ctx, MatmulRole::bwd_weight)));
  };

  if (auto ce = dyn_cast<CrossEntropyOp>(op)) {
    // The loss is the root: its seed gradient is 1, folded into the op.
    if (needsGrad(ce.getLogits()))
      accumulate(loc, ce.getLogits(),
                 b.create<CrossEntropyGradOp>(loc, ce.getLogits().getType(), ce.getLogits(),
                                              ce.getTargets()));
    return success();
  }

  SmallVector<Value> dys;
  for (Value r : op->getResults())
    dys.push_back(gradOf(r));
  if (llvm::all_of(dys, [](Value v) { return !v; }))
    return success(); // Nothing downstream depends on this op.

  Value dy = dys[0];
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](LinearOp l) {
        linearGrads(l.getX(), l.getWeight(), dy, l.getLayerAttr());
        return success();
      })
      .Case([&](EmbeddingOp e) {
        if (needsGrad(e.getTable())) {
          auto table = cast_type(e.getTable());
          accumulate(loc, e.getTable(),
                     b.create<EmbeddingGradOp>(loc, table.clone(b.getF32Type()), e.getIds(), dy));
        }
        return success();
      })
      .Case([&](RmsNormOp n) {
        auto grad = b.create<RmsNormGradOp>(
            loc, n.getX().getType(), withElement(n.getWeight().getType(), b.getF32Type()),
            n.getX(), n.getWeight(), dy, n.getEpsAttr());
        if (needsGrad(n.getX()))
          accumulate(loc, n.getX(), grad.getDx());
        if (needsGrad(n.getWeight()))
          accumulate(loc, n.getWeight(), grad.getDweight());
        return success();
      })
      .Case([&](RopeOp r) {
        if (needsGrad(r.getX()))
          accumulate(loc, r.getX(),
                     b.create<RopeOp>(loc, dy.getType(), dy, r.getSeqLenAttr(),
                                      r.getHeadDimAttr(), r.getThetaAttr(),
                                      r.getInverse() ? UnitAttr() : b.getUnitAttr()));
        return success();
      })
      .Case([&](AttentionOp a) {
        if (!dy)
          return success(); // Only lse is used downstream; it is not differentiated.
        auto grad = b.create<AttentionGradOp>(
            loc, a.getQ().getType(), a.getK().getType(), a.getV().getType(), a.getQ(), a.getK(),
            a.getV(), a.getResult(), a.getLse(), dy, a.getBatchAttr(), a.getSeqLenAttr(),
            a.getNumHeadsAttr(), a.getNumKvHeadsAttr(), a.getHeadDimAttr());
        Value primals[] = {a.getQ(), a.getK(), a.getV()};
        for (auto [primal, g] : llvm::zip(primals, grad.getResults()))
          if (needsGrad(primal))
            accumulate(loc, primal, g);
        return success();
      })
      .Case([&](SiluOp s) {
        if (needsGrad(s.getX()))
          accumulate(loc, s.getX(), b.create<SiluGradOp>(loc, dy.getType(), s.getX(), dy));
        return success();
      })
      .Case([&](MulOp m) {
        if (needsGrad(m.getLhs()))
          accumulate(loc, m.getLhs(), b.create<MulOp>(loc, dy, m.getRhs()));
        if (needsGrad(m.getRhs()))
          accumulate(loc, m.getRhs(), b.create<MulOp>(loc, dy, m.getLhs()));
        return success();
      })
      .Case([&](AddOp a) {
        for (Value operand : {a.getLhs(), a.getRhs()})
          if (needsGrad(operand))
            accumulate(loc, operand, dy);
        return success();
      })
      .Case([&](CastOp c) {
        if (needsGrad(c.getX()))
          accumulate(loc, c.getX(), castTo(loc, dy, cast_type(c.getX()).getElementType()));
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitError("halo-autodiff: no vector-Jacobian rule for '")
               << other->getName() << "'";
      });
}

LogicalResult TrainStepBuilder::build() {
  MLIRContext *ctx = forward.getContext();
  Block &fwdBody = forward.getBody().front();
  auto ret = dyn_cast<func::ReturnOp>(fwdBody.getTerminator());
  if (!ret || ret.getNumOperands() != 1 || !ret.getOperand(0).getDefiningOp<CrossEntropyOp>())
    return forward.emitError("halo-autodiff: @forward must return one halo.cross_entropy loss");

  // Signature: inputs, step, then per parameter its master weight, then the
  // two AdamW moments and the BF16 compute copy of every trainable parameter.
  // The copy is state so that the optimizer writes it once per step (fused
  // into AdamW) instead of a cast at the start of the next step re-reading
  // every FP32 master. BF16 masters (train.master_dtype) are read directly
  // and need no copy.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  SmallVector<BlockArgument> inputs;
  auto attrs = [&](ArrayRef<NamedAttribute> list) { return b.getDictionaryAttr(list); };
  for (BlockArgument arg : fwdBody.getArguments()) {
    if (auto name = forward.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "halo.param")) {
      Param p;
      p.name = name.str();
      p.init = forward.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "halo.init");
      p.frozen = forward.getArgAttr(arg.getArgNumber(), "halo.frozen") != nullptr;
      p.forwardArg = arg;
      params.push_back(p);
    } else {
      inputs.push_back(arg);
    }
  }
  for (BlockArgument in : inputs) {
    argTypes.push_back(in.getType());
    argAttrs.push_back(forward.getArgAttrDict(in.getArgNumber()));
  }
  Type f32 = b.getF32Type();
  auto stepType = RankedTensorType::get({}, b.getI32Type());
  argTypes.push_back(stepType);
  argAttrs.push_back(attrs({b.getNamedAttr("halo.input", b.getStringAttr("step"))}));
  auto stateAttrs = [&](const Param &p, StringRef state) {
    SmallVector<NamedAttribute> list = {b.getNamedAttr("halo.param", b.getStringAttr(p.name)),
                                        b.getNamedAttr("halo.state", b.getStringAttr(state))};
    if (state == "param" && p.init)
      list.push_back(b.getNamedAttr("halo.init", p.init));
    if (p.frozen)
      list.push_back(b.getNamedAttr("halo.frozen", b.getUnitAttr()));
    return attrs(list);
  };
  const bool copies = !opts.bf16Master;
  for (Param &p : params) {
    // Frozen parameters are never updated, so they stay in their compute type.
    argTypes.push_back(p.frozen || !copies ? p.forwardArg.getType()
                                           : withElement(p.forwardArg.getType(), f32));
    argAttrs.push_back(stateAttrs(p, "param"));
  }
  Type momentType = opts.bf16Moments ? Type(b.getBF16Type()) : f32;
  for (StringRef state : {"exp_avg", "exp_avg_sq"})
    for (Param &p : params)
      if (!p.frozen) {
        argTypes.push_back(withElement(p.forwardArg.getType(), momentType));
        argAttrs.push_back(stateAttrs(p, state));
      }
  Type bf16 = b.getBF16Type();
  for (Param &p : params)
    if (!p.frozen && copies) {
      argTypes.push_back(withElement(p.forwardArg.getType(), bf16));
      argAttrs.push_back(stateAttrs(p, "compute"));
    }

  b.setInsertionPointAfter(forward);
  Location loc = NameLoc::get(b.getStringAttr("train_step"), forward.getLoc());
  auto step = b.create<func::FuncOp>(loc, "train_step", b.getFunctionType(argTypes, {}));
  Block *body = step.addEntryBlock();
  step.setAllArgAttrs(argAttrs);
  b.setInsertionPointToStart(body);

  IRMapping map;
  unsigned next = 0;
  for (BlockArgument in : inputs)
    map.map(in, body->getArgument(next++));
  Value stepArg = body->getArgument(next++);
  for (Param &p : params)
    p.master = body->getArgument(next++);
  for (Param &p : params)
    if (!p.frozen)
      p.expAvg = body->getArgument(next++);
  for (Param &p : params)
    if (!p.frozen)
      p.expAvgSq = body->getArgument(next++);
  for (Param &p : params) {
    p.compute = p.frozen || !copies ? p.master : body->getArgument(next++);
    if (!p.frozen)
      dependsOnParams.insert(p.compute);
    map.map(p.forwardArg, p.compute);
  }

  // Forward sweep: clone and mark what depends on trainable parameters.
  SmallVector<Operation *> cloned;
  for (Operation &op : fwdBody.without_terminator()) {
    Operation *copy = b.clone(op, map);
    cloned.push_back(copy);
    if (llvm::any_of(copy->getOperands(), [&](Value v) { return needsGrad(v); }))
      for (Value r : copy->getResults())
        if (isa<FloatType>(cast_type(r).getElementType()))
          dependsOnParams.insert(r);
  }
  Value loss = map.lookup(ret.getOperand(0));

  // Reverse sweep.
  for (Operation *op : llvm::reverse(cloned))
    if (failed(emitVjp(op)))
      return failure();

  // Linear layers become their forward GEMM, tagged like their backward ones.
  for (Operation *op : cloned)
    if (auto l = dyn_cast<LinearOp>(op)) {
      OpBuilder lb(l);
      Value y = lb.create<MatmulOp>(l.getLoc(), l.getType(), l.getX(), l.getWeight(),
                                    /*acc=*/Value(), false,
                                    /*transpose_b=*/true, l.getLayerAttr(),
                                    MatmulRoleAttr::get(ctx, MatmulRole::fwd));
      l.replaceAllUsesWith(y);
      l.erase();
    }

  // Optimizer: global norm, optional clipping, schedule, AdamW per parameter.
  SmallVector<Value> paramGrads;
  for (Param &p : params) {
    if (p.frozen)
      continue;
    Value g = gradOf(p.compute);
    if (!g)
      return forward.emitError("halo-autodiff: parameter '")
             << p.name << "' does not influence the loss, so it gets no gradient; mark it "
             << "frozen or remove it";
    paramGrads.push_back(g);
  }
  auto scalarF32 = RankedTensorType::get({}, f32);
  Value norm = b.create<GlobalNormOp>(loc, scalarF32, paramGrads);
  // Always a clip coefficient (max_norm 0: no clipping): it is also the
  // overflow guard, NaN for a non-finite norm, which makes AdamW skip the step.
  Value coef =
      b.create<ClipCoefOp>(loc, scalarF32, norm, b.getF64FloatAttr(std::max(0.0, opts.gradClip)));
  Value lr = b.create<LrScheduleOp>(loc, scalarF32, stepArg, b.getF64FloatAttr(opts.lr),
                                    b.getI64IntegerAttr(opts.warmupSteps),
                                    b.getI64IntegerAttr(opts.totalSteps),
                                    LrScheduleAttr::get(ctx, opts.schedule));
  SmallVector<Value> newParams, newM, newV, newCompute;
  SmallVector<DictionaryAttr> paramResultAttrs, mAttrs, vAttrs, computeAttrs;
  unsigned gi = 0;
  for (Param &p : params) {
    if (p.frozen)
      continue;
    auto adam = b.create<AdamWOp>(
        NameLoc::get(b.getStringAttr(p.name), loc), p.master.getType(), p.expAvg.getType(),
        p.expAvgSq.getType(), p.master, paramGrads[gi++], p.expAvg, p.expAvgSq, lr, stepArg, coef,
        b.getF64FloatAttr(opts.beta1), b.getF64FloatAttr(opts.beta2), b.getF64FloatAttr(opts.eps),
        b.getF64FloatAttr(opts.weightDecay));
    newParams.push_back(adam.getNewParam());
    newM.push_back(adam.getNewM());
    newV.push_back(adam.getNewV());
    if (copies) {
      newCompute.push_back(castTo(loc, adam.getNewParam(), bf16));
      computeAttrs.push_back(stateAttrs(p, "compute"));
    }
    paramResultAttrs.push_back(stateAttrs(p, "param"));
    mAttrs.push_back(stateAttrs(p, "exp_avg"));
    vAttrs.push_back(stateAttrs(p, "exp_avg_sq"));
  }

  SmallVector<Value> results = {loss, norm, lr};
  SmallVector<DictionaryAttr> resultAttrs;
  for (StringRef name : {"loss", "grad_norm", "lr"})
    resultAttrs.push_back(attrs({b.getNamedAttr("halo.output", b.getStringAttr(name))}));
  llvm::append_range(results, newParams);
  llvm::append_range(results, newM);
  llvm::append_range(results, newV);
  llvm::append_range(results, newCompute);
  llvm::append_range(resultAttrs, paramResultAttrs);
  llvm::append_range(resultAttrs, mAttrs);
  llvm::append_range(resultAttrs, vAttrs);
  llvm::append_range(resultAttrs, computeAttrs);
  if (returnGrads) {
    gi = 0;
    for (Param &p : params)
      if (!p.frozen) {
        results.push_back(paramGrads[gi++]);
        resultAttrs.push_back(stateAttrs(p, "grad"));
      }
  }
  b.create<func::ReturnOp>(loc, results);
  step.setFunctionType(b.getFunctionType(argTypes, ValueRange(results).getTypes()));
  step.setAllResultAttrs(resultAttrs);
  return success();
}

struct AutodiffPass : halo::impl::HaloAutodiffBase<AutodiffPass> {
  using HaloAutodiffBase::HaloAutodiffBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      module.emitError("halo-autodiff: the module has no @forward function");
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step")) {
      module.emitError("halo-autodiff: the module already has a @train_step");
      return signalPassFailure();
    }
    FailureOr<TrainOptions> options = readTrainOptions(module);
    if (failed(options) || failed(TrainStepBuilder(forward, *options, returnGrads).build()))
      return signalPassFailure();
  }
};

} // namespace
